"""Run a real Qdrant server from the native binary ($QDRANT_BINARY or ../shared/qdrant; no Docker; for tests and local use).

`QdrantServer` runs it on 127.0.0.1. The binary is found and unpacked by `qdrant_binary` (``$QDRANT_BINARY``, else ``../shared/qdrant/``).
Each server gets free HTTP and gRPC ports and a run folder (``config.yaml``, ``storage/``,
``snapshots/``, ``server.log``) that ``stop()`` deletes unless the storage folder was given by the caller.
An API key is passed through the environment (``QDRANT__SERVICE__API_KEY``), never written to a file.
The server is tied to the process that started it (it gets SIGTERM when that process dies) unless
started detached (``start --pidfile``). ``kill()`` + ``start()`` restarts it on the same storage and
ports: what the durability tests need (Qdrant's WAL keeps every acknowledged write across a SIGKILL).
The process half (ports, readiness, stop, detach) is `managed.ManagedServer`.

Python API::

    from splade_connectors.live.qdrant_server import QdrantServer
    with QdrantServer(api_key=None) as server:
        print(server.url, server.grpc_port, server.version)

CLI (also ``splade-connectors qdrant-server ...``; each verb has ``--help``)::

    python -m splade_connectors.live.qdrant_server fetch              # decompress into the cache, print the path
    python -m splade_connectors.live.qdrant_server run [--storage DIR] [--api-key-env VAR]
    python -m splade_connectors.live.qdrant_server start --pidfile q.json
    python -m splade_connectors.live.qdrant_server stop --pidfile q.json
    python -m splade_connectors.live.qdrant_server cluster --nodes 3   # a local cluster (`qdrant_cluster`), Ctrl-C stops
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from splade_connectors.errors import ConfigError
from splade_connectors.live.cache import cache_root
from splade_connectors.live.commands import ExtraVerb, ServerCommands
from splade_connectors.live.managed import Launch, ManagedServer, die_with_parent, free_port
from splade_connectors.live.qdrant_binary import BINARY_ENV, QdrantBinaryNotFound, ensure_binary, find_binary_source, sha256_of

__all__ = [
    "BINARY_ENV",
    "QdrantBinaryNotFound",
    "QdrantServer",
    "cache_root",
    "ensure_binary",
    "find_binary_source",
    "free_port",
    "main",
    "sha256_of",
]

log = logging.getLogger(__name__)


def _config_yaml(run_dir: Path, storage: Path, host: str, http_port: int, grpc_port: int) -> str:
    return "\n".join([
        "storage:",
        f"  storage_path: {json.dumps(str(storage))}",
        f"  snapshots_path: {json.dumps(str(run_dir / 'snapshots'))}",
        "service:",
        f"  host: {json.dumps(host)}",
        f"  http_port: {http_port}",
        f"  grpc_port: {grpc_port}",
        "telemetry_disabled: true",
        "",
    ])


class QdrantServer(ManagedServer):
    """A Qdrant server on 127.0.0.1 with free ports and its own storage (context manager)."""

    kind = "Qdrant"
    run_prefix = "splade-qdrant-"
    log_name = "server.log"
    process_markers = (b"qdrant", b"--config-path")
    clash_markers = ("address already in use", "address in use")
    poll_interval = 0.1

    def __init__(
        self,
        binary: str | Path | None = None,
        *,
        api_key: str | None = None,
        storage_dir: str | Path | None = None,
        host: str = "127.0.0.1",
        http_port: int | None = None,
        grpc_port: int | None = None,
        startup_timeout: float = 60.0,
        tie_to_parent: bool = True,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(host=host, startup_timeout=startup_timeout, tie_to_parent=tie_to_parent)
        self.binary_source = binary
        self.api_key = api_key
        self.http_port, self.grpc_port = http_port, grpc_port
        self._keep_ports = False
        self.extra_env = dict(extra_env or {})
        self._own_storage = storage_dir is None
        self.storage_dir: Path | None = Path(storage_dir).expanduser().resolve() if storage_dir else None
        self.binary: Path | None = None

    def _prepare(self) -> None:
        """The binary (unpacked once) and the run folder, kept across `kill()` + `start()`."""
        self.binary = self.binary or ensure_binary(self.binary_source)
        if self.run_dir is None:
            self.run_dir = Path(tempfile.mkdtemp(prefix=self.run_prefix))
        if self.storage_dir is None:
            self.storage_dir = self.run_dir / "storage"
        self._keep_ports = self.http_port is not None  # the caller's, or a restart's

    def _choose_ports(self, retry: bool) -> None:
        """Free ports, unless kept: then wait for the old socket to go before retrying the same ones."""
        if not self._keep_ports:
            self.http_port, self.grpc_port = free_port(self.host), free_port(self.host)
            return
        if self.grpc_port is None:
            self.grpc_port = free_port(self.host)
        if retry:
            time.sleep(1.0)

    def _launch(self, tie: bool) -> Launch:
        assert self.run_dir is not None and self.storage_dir is not None and self.binary is not None
        assert self.http_port is not None and self.grpc_port is not None
        config = self.run_dir / "config.yaml"
        config.write_text(_config_yaml(self.run_dir, self.storage_dir, self.host, self.http_port, self.grpc_port), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("QDRANT__")}
        env.update(self.extra_env)
        if self.api_key:
            env["QDRANT__SERVICE__API_KEY"] = self.api_key
        argv = [str(self.binary), "--config-path", str(config), "--disable-telemetry"]
        return Launch(argv, env, die_with_parent if tie else None)

    def _is_ready(self) -> bool:
        """``/readyz`` answers 200."""
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=2.0) as response:
                return bool(response.status == 200)
        except OSError:  # refused, or an HTTP error status
            return False

    def _on_ready(self) -> None:
        """Read the version the server reports."""
        request = urllib.request.Request(self.url + "/", headers={"api-key": self.api_key} if self.api_key else {})
        self.version = None
        with contextlib.suppress(OSError, ValueError), urllib.request.urlopen(request, timeout=5) as response:
            self.version = str(json.loads(response.read()).get("version"))

    def _forget_run(self) -> None:
        """The temporary storage lived in the run folder (ports are kept for a restart)."""
        if self._own_storage:
            self.storage_dir = None

    def _details(self) -> list[str]:
        return [f"gRPC port {self.grpc_port}", f"storage {self.storage_dir}"]

    def _detach_state(self) -> dict[str, object]:
        return {"grpc_port": self.grpc_port, "storage": str(self.storage_dir), "own_storage": self._own_storage}


# ---------------------------------------------------------------- CLI


def _add_options(parser: argparse.ArgumentParser, verb: str) -> None:
    if verb in ("fetch", "run", "start"):
        parser.add_argument("--binary", default=None, help=f"executable or .xz archive (default: ${BINARY_ENV}, else ../shared/qdrant)")
    if verb in ("run", "start"):
        parser.add_argument("--storage", type=Path, default=None, help="storage folder to keep (default: a temporary one)")
        parser.add_argument("--http-port", type=int, default=None, help="default: a free port")
        parser.add_argument("--grpc-port", type=int, default=None, help="default: a free port")
        parser.add_argument("--api-key-env", default=None, metavar="VAR", help="environment variable holding an API key to require")


def _server(args: argparse.Namespace, tie_to_parent: bool) -> QdrantServer:
    api_key = os.environ.get(args.api_key_env) if args.api_key_env else None
    if args.api_key_env and not api_key:
        raise ConfigError(f"${args.api_key_env} is empty")
    return QdrantServer(
        args.binary, api_key=api_key, storage_dir=args.storage, http_port=args.http_port, grpc_port=args.grpc_port,
        tie_to_parent=tie_to_parent,
    )


def _cluster_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--binary", default=None, help=f"executable or .xz archive (default: ${BINARY_ENV}, else ../shared/qdrant)")
    parser.add_argument("--nodes", type=int, default=3, help="number of nodes (default: 3)")
    parser.add_argument("--api-key-env", default=None, metavar="VAR", help="environment variable holding an API key to require")


def _cluster(args: argparse.Namespace) -> Any:
    """The local cluster ``cluster`` runs (a `QdrantCluster`)."""
    from splade_connectors.live.qdrant_cluster import QdrantCluster  # it builds on this module

    api_key = os.environ.get(args.api_key_env) if args.api_key_env else None
    if args.api_key_env and not api_key:
        raise ConfigError(f"${args.api_key_env} is empty")
    return QdrantCluster(args.nodes, args.binary, api_key=api_key)


COMMANDS = ServerCommands(
    server_class=QdrantServer,
    fetch_help="decompress the binary into the cache and print its path",
    add_options=_add_options,
    fetch=lambda args: ensure_binary(args.binary),
    server=_server,
    extra_verbs={
        "cluster": ExtraVerb(
            help="start a local Qdrant cluster (--nodes, each its own ports, storage and process) until Ctrl-C or SIGTERM",
            add_options=_cluster_options,
            open=_cluster,
        )
    },
)


main = COMMANDS.main  # the CLI; failures raise `ServerError`

if __name__ == "__main__":
    sys.exit(COMMANDS.script())
