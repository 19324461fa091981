"""The process half every local server shares: ports, run folder, launch, readiness wait, stop, detach.

A subclass says what to run and where (`_prepare`, `_choose_ports`, `_launch`), how to tell it is ready
(`_is_ready`) and which log text means its ports were taken (`clash_markers`). This base starts it in its
own session on free ports (retrying on a port clash), tied to the starting thread unless asked not to,
waits until it answers (a crash or a hang stops it and raises `ServerError` with the log tail), and
stops (SIGTERM, SIGKILL after a timeout, the run folder deleted), kills, freezes or detaches it. A detached
server outlives this process; `stop_detached` stops it later from the state `detach` returned (a pidfile).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import ClassVar, TypeVar

from splade_connectors.errors import ServerError

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
TAIL_LINES = 40


def free_port(host: str = "127.0.0.1") -> int:
    """A currently free TCP port on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path, *, since: int = 0, lines: int = TAIL_LINES) -> str:
    """The last lines of a log file written after byte offset ``since`` (empty if missing)."""
    with contextlib.suppress(OSError), path.open("rb") as handle:
        handle.seek(since)
        return "\n".join(handle.read().decode(errors="replace").splitlines()[-lines:])
    return ""


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to the process group led by ``pid`` (a server runs in its own session); gone groups are fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask the kernel to SIGTERM this (child) process when the thread that started it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def wait_for_signal() -> None:
    """Block until SIGINT or SIGTERM."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass


def write_pidfile(path: Path, state: Mapping[str, object]) -> None:
    """Write the state of a detached server (what `ManagedServer.stop_detached` needs) as JSON."""
    path.write_text(json.dumps(dict(state), indent=2), encoding="utf-8")


def read_pidfile(path: Path) -> dict[str, object]:
    """The state `write_pidfile` wrote; `ServerError` if the file is missing or is not such a state."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ServerError(f"no pidfile {path}") from None
    except (OSError, ValueError) as exc:
        raise ServerError(f"unreadable pidfile {path}: {exc}") from exc
    if not isinstance(state, dict) or "pid" not in state:
        raise ServerError(f"{path} is not a server pidfile (no pid)")
    return state


@dataclass(frozen=True)
class Launch:
    """What to spawn: the command, its environment, and an optional hook run in the child before exec."""

    argv: list[str]
    env: dict[str, str]
    preexec: Callable[[], None] | None = None


class PortClash(Exception):
    """The server could not bind its pre-picked ports (internal: `start` retries on new ports)."""


_Server = TypeVar("_Server", bound="ManagedServer")


class ManagedServer(ABC):
    """A server process on ``host`` with its own run folder (context manager: start on enter, stop on exit)."""

    kind: ClassVar[str]  # "OpenSearch", "Qdrant": names the server in messages
    run_prefix: ClassVar[str]  # prefix of the temporary run folder
    log_name: ClassVar[str]  # the server's stdout and stderr, relative to the run folder
    process_markers: ClassVar[tuple[bytes, ...]]  # all in /proc/<pid>/cmdline of a live server (guards reused pids)
    clash_markers: ClassVar[tuple[str, ...]]  # any in the (lower-cased) log of a failed start: the ports were taken
    poll_interval: ClassVar[float] = 0.25

    def __init__(self, *, host: str, startup_timeout: float, tie_to_parent: bool) -> None:
        self.host = host
        self.startup_timeout = startup_timeout
        self.tie_to_parent = tie_to_parent
        self.http_port: int | None = None
        self.version: str | None = None
        self.run_dir: Path | None = None
        self.startup_seconds: float | None = None
        self.returncode: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # ---- what a subclass provides --------------------------------------------------------------------------
    @abstractmethod
    def _prepare(self) -> None:
        """Once per `start`: fetch or unpack what the server runs from, create the run folder if it is kept."""

    @abstractmethod
    def _choose_ports(self, retry: bool) -> None:
        """Set ``http_port`` (and any other port) for the next launch; ``retry`` after a port clash."""

    @abstractmethod
    def _launch(self, tie: bool) -> Launch:
        """Write the run folder's config (setting ``run_dir``) and say what to spawn; ``tie``: die with this thread."""

    @abstractmethod
    def _is_ready(self) -> bool:
        """True once the server answers requests."""

    def _on_ready(self) -> None:  # noqa: B027 - an optional hook, empty by default
        """Called once the server answers (read or check its version)."""

    def _forget_run(self) -> None:  # noqa: B027 - an optional hook, empty by default
        """Called by `stop` after the run folder is deleted (forget what lived in it)."""

    def _details(self) -> list[str]:
        """Extra facts for `describe` (ports, storage, heap)."""
        return []

    def _detach_state(self) -> dict[str, object]:
        """Extra entries of the pidfile state."""
        return {}

    # ---- state -----------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The HTTP base URL (`ServerError` before the first start)."""
        if self.http_port is None:
            raise ServerError(f"the {self.kind} server has not been started")
        return f"http://{self.host}:{self.http_port}"

    @property
    def pid(self) -> int | None:
        """PID (and process group id) of the server, while it runs."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_file(self) -> Path | None:
        """The server's stdout and stderr, while the run folder exists."""
        return self.run_dir / self.log_name if self.run_dir is not None else None

    def describe(self) -> str:
        """One line: kind, version, URL, details, pid."""
        where = f"http://{self.host}:{self.http_port}" if self.http_port is not None else "(not started)"
        details = [*self._details(), f"pid {self.pid}"]
        if self.startup_seconds is not None:
            details.append(f"ready after {self.startup_seconds:.1f}s")
        return f"{self.kind} {self.version or '?'} at {where} ({', '.join(details)})"

    def __enter__(self: _Server) -> _Server:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # ---- lifecycle -------------------------------------------------------------------------------------------
    def start(self, attempts: int = 3) -> str:
        """Start on the ports `_choose_ports` gives (again after a port clash) and wait until it answers; returns the URL.

        A server that dies (other than by a port clash) or does not answer within ``startup_timeout`` is
        stopped (its run folder deleted) and `ServerError` carries the tail of its log.
        """
        if self.running:
            raise ServerError(f"already running: {self.describe()}")
        self._reap()  # a server that died on its own since the last start
        self._prepare()
        for attempt in range(1, attempts + 1):
            started = time.monotonic()
            self._choose_ports(retry=attempt > 1)
            try:
                self._wait_ready(started, self._spawn())
            except PortClash:
                log.warning("%s port clash on attempt %d of %d", self.kind, attempt, attempts)
                continue
            except BaseException:
                self.stop()  # a crash, a hang, Ctrl-C: nothing half-started is left behind
                raise
            return self.url
        where = self.url
        self.stop()
        raise ServerError(f"could not bind {self.kind} ports after {attempts} attempts (last tried {where})")

    def _spawn(self) -> int:
        """Spawn the server in its own session, output appended to its log; returns the log size before."""
        tie = self.tie_to_parent and threading.current_thread() is threading.main_thread()
        launch = self._launch(tie)
        assert self.run_dir is not None
        log_path = self.run_dir / self.log_name
        offset = log_path.stat().st_size if log_path.exists() else 0
        try:
            with log_path.open("ab") as out:
                self._proc = subprocess.Popen(
                    launch.argv, cwd=self.run_dir, env=launch.env, stdin=subprocess.DEVNULL, stdout=out,
                    stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=launch.preexec,  # noqa: PLW1509 - the launches' preexec only ties the child to its parent (one prctl call)
                )
        except OSError as exc:  # not executable, no such file
            raise ServerError(f"cannot start {self.kind}: {exc}") from exc
        atexit.register(self.stop)  # a server left running by a crashed caller
        log.debug("spawned %s pid %d: %s", self.kind, self._proc.pid, launch.argv)
        return offset

    def _wait_ready(self, started: float, log_offset: int) -> None:
        """Poll `_is_ready` until the deadline; `PortClash`, or `ServerError` with the log tail if it dies or hangs."""
        assert self._proc is not None and self.log_file is not None
        log_file = self.log_file
        while time.monotonic() - started < self.startup_timeout:
            if self._proc.poll() is not None:
                tail = log_tail(log_file, since=log_offset)
                self._reap()
                if any(marker in tail.lower() for marker in self.clash_markers):
                    raise PortClash()
                raise ServerError(f"{self.kind} exited with {self.returncode} during startup; log tail:\n{tail}")
            if self._is_ready():
                self.startup_seconds = time.monotonic() - started
                self._on_ready()
                log.info("%s ready", self.describe())
                return
            time.sleep(self.poll_interval)
        raise ServerError(f"{self.kind} not ready after {self.startup_timeout:.0f}s; log tail:\n{log_tail(log_file, since=log_offset)}")

    def _reap(self) -> None:
        """Forget a process that has exited, and kill what is left of its group."""
        proc, self._proc = self._proc, None
        atexit.unregister(self.stop)
        if proc is not None:
            signal_group(proc.pid, signal.SIGKILL)  # stray children of the group, if any
            self.returncode = proc.wait()

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the server (SIGKILL after ``timeout``), then delete its run folder."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            signal_group(proc.pid, signal.SIGCONT)  # a frozen server cannot act on SIGTERM
            signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s pid %d ignored SIGTERM for %.0fs; killing", self.kind, proc.pid, timeout)
                signal_group(proc.pid, signal.SIGKILL)
        self._reap()
        if self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            self.run_dir = None
        self._forget_run()

    def kill(self) -> None:
        """SIGKILL the server; the run folder (storage, ports) is kept, so `start()` restarts it."""
        if self._proc is not None and self._proc.poll() is None:
            signal_group(self._proc.pid, signal.SIGKILL)
        self._reap()

    def freeze(self) -> None:
        """SIGSTOP the server: requests hang (and time out) until `thaw()`."""
        if self._proc is not None:
            signal_group(self._proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT a frozen server."""
        if self._proc is not None:
            signal_group(self._proc.pid, signal.SIGCONT)

    def detach(self) -> dict[str, object]:
        """Forget the running server without stopping it; returns the state `stop_detached` needs."""
        if self._proc is None:
            raise ServerError(f"the {self.kind} server is not running")
        state: dict[str, object] = {
            "kind": self.kind, "pid": self._proc.pid, "url": self.url, "version": self.version,
            "run_dir": str(self.run_dir), "startup_seconds": self.startup_seconds, **self._detach_state(),
        }
        atexit.unregister(self.stop)
        self._proc, self.run_dir = None, None
        return state

    @classmethod
    def is_server_process(cls, pid: int) -> bool:
        """True if ``pid`` is a live server of this kind (not a reused pid, not a zombie)."""
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        return all(marker in cmdline for marker in cls.process_markers)

    @classmethod
    def stop_detached(cls, state: Mapping[str, object], timeout: float = 30.0) -> None:
        """Stop a server `detach` left running (SIGTERM, SIGKILL after ``timeout``) and delete its run folder."""
        kind = state.get("kind", cls.kind)
        if kind != cls.kind:
            raise ServerError(f"the state is of a {kind} server, not {cls.kind}")
        pid = int(str(state["pid"]))
        if cls.is_server_process(pid):
            signal_group(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while cls.is_server_process(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if cls.is_server_process(pid):
                signal_group(pid, signal.SIGKILL)
        else:
            log.warning("pid %d is not a %s server (stale pidfile?); not signalling it", pid, cls.kind)
        run_dir = state.get("run_dir")
        if run_dir:
            shutil.rmtree(str(run_dir), ignore_errors=True)
