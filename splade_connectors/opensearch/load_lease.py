"""Who holds an index in bulk-load settings, so that settings a dead ingestion left behind heal themselves.

`begin_ingest` switches refresh off and replicas to `ingest_replicas`; a process killed before
`finish_ingest` (SIGKILL, a crash, a lost machine) leaves the index that way: acknowledged documents
are neither counted nor searchable. So a load first records itself in the index's mapping `_meta`
(key `splade_connectors_load`): `holders` (`host:pid` -> host, pid, heartbeat time) and `restore`
(the settings to put back). A holder's heartbeat is renewed every `lease/4` seconds while it loads.

A holder is alive when its heartbeat is younger than the lease and, on this host, its pid runs: a
killed ingestion on the same machine is seen dead at once, one on another machine when its lease
expires. Every open of an existing index (`inspect` + `OpenSearchStore._heal`) then either restores
the settings of a load with no live holder, or, while another ingestion is alive, only refreshes before
the opener's first count or search (the ingestion must not be disturbed; a refresh makes what it wrote
visible without changing its settings, and a store opened only to write, such as a Ray write task, skips it).

The `_meta` update is read-modify-write (other keys are kept); two loads starting in the same instant
can lose one holder entry, which then costs at most a slower load (refresh back on), never data.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

logger = logging.getLogger(__name__)

LEASE_KEY = "splade_connectors_load"


def holder_key() -> str:
    """This process's name in the lease: `host:pid`."""
    return f"{socket.gethostname()}:{os.getpid()}"


def holder_entry(now: float | None = None) -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "heartbeat": time.time() if now is None else now}


def _pid_runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    except OSError:
        return True
    return True


def is_alive(entry: Mapping[str, Any], lease_seconds: float, now: float | None = None) -> bool:
    """A fresh heartbeat, and on this host a running pid (a same-host process killed is dead at once)."""
    now = time.time() if now is None else now
    try:
        heartbeat, pid, host = float(entry["heartbeat"]), int(entry["pid"]), str(entry["host"])
    except (KeyError, TypeError, ValueError):
        return False
    if now - heartbeat > lease_seconds:
        return False
    return host != socket.gethostname() or _pid_runs(pid)


def live_holders(lease: Mapping[str, Any] | None, lease_seconds: float, *, exclude: str | None = None) -> dict[str, Any]:
    """The lease's holders that are alive (without `exclude`)."""
    holders = (lease or {}).get("holders") or {}
    return {k: v for k, v in holders.items() if k != exclude and isinstance(v, Mapping) and is_alive(v, lease_seconds)}


def describe_holders(lease: Mapping[str, Any] | None) -> str:
    holders = (lease or {}).get("holders") or {}
    return ", ".join(f"pid {v.get('pid')} on {v.get('host')}" for v in holders.values() if isinstance(v, Mapping)) or "unknown"


class Heartbeat:
    """Renews this process's heartbeat in the lease every `interval` seconds until stopped (a daemon thread)."""

    def __init__(self, renew: Callable[[], None], interval: float) -> None:
        self._renew, self._interval = renew, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="opensearch-load-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._renew()
            except Exception as exc:  # noqa: BLE001 - a missed beat only shortens the lease; the load goes on
                logger.debug("could not renew the load lease: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
