"""Run a real Qdrant server (the native binary, no Docker) on 127.0.0.1 for tests, benchmarks and local use.

The binary comes from ``$QDRANT_BINARY`` (a plain executable or an ``.xz`` archive, or a folder holding
one), else ``../shared/qdrant/`` beside the clone (or the current directory). An archive is decompressed
once into ``${SPLADE_CONNECTORS_CACHE:-~/.cache/splade-connectors}/qdrant/<sha256 of the archive>/qdrant``
(atomically, under a file lock, so parallel sessions share it).

Each server gets free HTTP and gRPC ports and a run folder (``config.yaml``, ``storage/``,
``snapshots/``, ``server.log``) that ``stop()`` deletes unless the storage folder was given by the caller.
An API key is passed through the environment (``QDRANT__SERVICE__API_KEY``), never written to a file.
The server is tied to the process that started it (it gets SIGTERM when that process dies) unless
started detached (``start --pidfile``). ``kill()`` + ``start()`` restarts it on the same storage and
ports: what the durability tests need (Qdrant's WAL keeps every acknowledged write across a SIGKILL).

Python API::

    from splade_connectors.live.qdrant_server import QdrantServer
    with QdrantServer(api_key=None) as server:
        print(server.url, server.grpc_port, server.version)

CLI (also ``splade-connectors qdrant-server ...``)::

    python -m splade_connectors.live.qdrant_server fetch              # decompress into the cache, print the path
    python -m splade_connectors.live.qdrant_server run [--storage DIR] [--api-key-env VAR]
    python -m splade_connectors.live.qdrant_server start --pidfile q.json
    python -m splade_connectors.live.qdrant_server stop --pidfile q.json
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import hashlib
import json
import logging
import lzma
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from splade_connectors.live.locks import file_lock

log = logging.getLogger(__name__)

BINARY_ENV = "QDRANT_BINARY"
ARCHIVE_PATTERN = "qdrant*.xz"
_REPO_ROOT = Path(__file__).resolve().parents[2]
_PR_SET_PDEATHSIG = 1


class QdrantBinaryNotFound(FileNotFoundError):
    """No Qdrant binary or archive where we looked (the message lists the places)."""


def cache_root() -> Path:
    """Cache root: ``$SPLADE_CONNECTORS_CACHE`` or ``$XDG_CACHE_HOME``/``~/.cache`` + ``/splade-connectors``."""
    override = os.environ.get("SPLADE_CONNECTORS_CACHE")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "splade-connectors"


def free_port(host: str = "127.0.0.1") -> int:
    """A currently free TCP port on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------- the binary


def _candidates(explicit: str | Path | None) -> list[Path]:
    found: list[Path] = []
    if explicit:
        found.append(Path(explicit).expanduser())
    if os.environ.get(BINARY_ENV):
        found.append(Path(os.environ[BINARY_ENV]).expanduser())
    found += [Path.cwd().parent / "shared" / "qdrant", Path.cwd() / "shared" / "qdrant", _REPO_ROOT.parent / "shared" / "qdrant"]
    return list(dict.fromkeys(found))


def _in_folder(folder: Path) -> Path | None:
    archives = sorted(folder.glob(ARCHIVE_PATTERN))
    if archives:
        return archives[-1]
    plain = folder / "qdrant"
    return plain if plain.is_file() else None


def find_binary_source(explicit: str | Path | None = None) -> Path:
    """The Qdrant executable or ``.xz`` archive to use: `explicit`, ``$QDRANT_BINARY``, else ``../shared/qdrant/``."""
    looked: list[str] = []
    for candidate in _candidates(explicit):
        looked.append(str(candidate))
        if candidate.is_dir():
            inside = _in_folder(candidate)
            if inside is not None:
                return inside
        elif candidate.is_file():
            return candidate
    raise QdrantBinaryNotFound(f"no Qdrant binary found (set {BINARY_ENV}); looked in: {', '.join(looked)}")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_binary(source: str | Path | None = None) -> Path:
    """An executable Qdrant: a plain binary as is, an ``.xz`` archive decompressed once into the cache."""
    path = find_binary_source(source) if source is None or Path(source).is_dir() else Path(source).expanduser()
    if not path.is_file():
        raise QdrantBinaryNotFound(f"no Qdrant binary at {path}")
    if path.suffix != ".xz":
        if not os.access(path, os.X_OK):
            raise PermissionError(f"{path} is not executable")
        return path
    dest = cache_root() / "qdrant" / sha256_of(path) / "qdrant"
    if dest.is_file() and os.access(dest, os.X_OK):
        return dest
    with file_lock(dest.parent / ".lock"):
        if not (dest.is_file() and os.access(dest, os.X_OK)):
            log.info("decompressing %s into %s", path, dest)
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".qdrant-")
            try:
                with os.fdopen(fd, "wb") as out, lzma.open(path, "rb") as archive:
                    shutil.copyfileobj(archive, out, 1 << 20)
                os.chmod(tmp, 0o755)
                os.replace(tmp, dest)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
    return dest


# ---------------------------------------------------------------- the server


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


def _tie_to_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask the kernel to SIGTERM this (child) process when the thread that started it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def _tail(path: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


class QdrantServer:
    """A Qdrant server on 127.0.0.1 with free ports and its own storage (context manager)."""

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
        self.binary_source = binary
        self.api_key = api_key
        self.host = host
        self.http_port, self.grpc_port = http_port, grpc_port
        self.startup_timeout = startup_timeout
        self.tie_to_parent = tie_to_parent
        self.extra_env = dict(extra_env or {})
        self._own_storage = storage_dir is None
        self.storage_dir: Path | None = Path(storage_dir).expanduser().resolve() if storage_dir else None
        self.run_dir: Path | None = None
        self.binary: Path | None = None
        self.version: str | None = None
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # ---- properties -------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self.http_port is None:
            raise RuntimeError("the server has not been started")
        return f"http://{self.host}:{self.http_port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_file(self) -> Path | None:
        return self.run_dir / "server.log" if self.run_dir else None

    def describe(self) -> str:
        return f"Qdrant {self.version or '?'} at {self.url} (gRPC port {self.grpc_port}, pid {self.pid})"

    def __enter__(self) -> QdrantServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # ---- lifecycle --------------------------------------------------------------------------------------
    def start(self, attempts: int = 3) -> str:
        """Start (or restart on the same storage and ports) and wait until ``/readyz`` answers; returns the URL."""
        if self.running:
            raise RuntimeError(f"already running: {self.describe()}")
        self.binary = self.binary or ensure_binary(self.binary_source)
        if self.run_dir is None:
            self.run_dir = Path(tempfile.mkdtemp(prefix="splade-qdrant-"))
        if self.storage_dir is None:
            self.storage_dir = self.run_dir / "storage"
        fixed_ports = self.http_port is not None
        for attempt in range(1, attempts + 1):
            if not fixed_ports:
                self.http_port, self.grpc_port = free_port(self.host), free_port(self.host)
            elif self.grpc_port is None:
                self.grpc_port = free_port(self.host)
            try:
                self._launch()
                self._wait_ready()
                atexit.register(self.stop)  # a server left running by a crashed caller
                return self.url
            except _PortClash:
                if fixed_ports and attempt == attempts:
                    raise RuntimeError(f"ports {self.http_port}/{self.grpc_port} are in use") from None
                log.warning("port clash on attempt %d, retrying", attempt)
                if fixed_ports:
                    time.sleep(1.0)  # a restart on the same ports: wait for the old socket to go
        raise RuntimeError(f"could not bind Qdrant ports after {attempts} attempts")

    def _launch(self) -> None:
        assert self.run_dir is not None and self.storage_dir is not None and self.binary is not None
        assert self.http_port is not None and self.grpc_port is not None
        config = self.run_dir / "config.yaml"
        config.write_text(_config_yaml(self.run_dir, self.storage_dir, self.host, self.http_port, self.grpc_port), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("QDRANT__")}
        env.update(self.extra_env)
        if self.api_key:
            env["QDRANT__SERVICE__API_KEY"] = self.api_key
        tie = self.tie_to_parent and threading.current_thread() is threading.main_thread()
        with (self.run_dir / "server.log").open("ab") as out:
            self._proc = subprocess.Popen(
                [str(self.binary), "--config-path", str(config), "--disable-telemetry"],
                cwd=self.run_dir, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_tie_to_parent if tie else None,  # noqa: PLW1509 - the child only makes one prctl call
            )
        log.debug("spawned Qdrant pid %d on ports %d/%d", self._proc.pid, self.http_port, self.grpc_port)

    def _wait_ready(self) -> None:
        assert self._proc is not None and self.log_file is not None
        started = time.monotonic()
        log_size = self.log_file.stat().st_size if self.log_file.exists() else 0
        while time.monotonic() - started < self.startup_timeout:
            if self._proc.poll() is not None:
                tail = self.log_file.read_bytes()[log_size:].decode(errors="replace")
                self._proc = None
                if "Address already in use" in tail or "address in use" in tail.lower():
                    raise _PortClash()
                raise RuntimeError(f"Qdrant exited during startup; log tail:\n{tail[-3000:]}")
            with contextlib.suppress(OSError):
                status, _ = _http_get(f"{self.url}/readyz")
                if status == 200:
                    self.startup_seconds = time.monotonic() - started
                    self.version = self._read_version()
                    log.info("%s ready after %.1fs", self.describe(), self.startup_seconds)
                    return
            time.sleep(0.1)
        tail = _tail(self.log_file)
        self.stop()
        raise TimeoutError(f"Qdrant not ready after {self.startup_timeout:.0f}s; log tail:\n{tail}")

    def _read_version(self) -> str | None:
        request = urllib.request.Request(self.url + "/", headers={"api-key": self.api_key} if self.api_key else {})
        with contextlib.suppress(OSError, ValueError):
            with urllib.request.urlopen(request, timeout=5) as response:
                return str(json.loads(response.read()).get("version"))
        return None

    def kill(self) -> None:
        """SIGKILL the server (storage, ports and run folder are kept: `start()` restarts it)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()

    def freeze(self) -> None:
        """SIGSTOP the server: requests hang (and time out) until `thaw()`."""
        if self._proc is not None:
            os.kill(self._proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        if self._proc is not None:
            os.kill(self._proc.pid, signal.SIGCONT)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (SIGKILL after `timeout`), then delete the run folder (and storage we created)."""
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)
                proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("Qdrant pid %d ignored SIGTERM for %.0fs; killing", proc.pid, timeout)
                proc.kill()
                proc.wait()
        if self.run_dir is not None:  # a caller's storage folder lives elsewhere and is kept
            shutil.rmtree(self.run_dir, ignore_errors=True)
            self.run_dir = None
            if self._own_storage:
                self.storage_dir = None

    def detach(self) -> dict[str, object]:
        """Forget the running server without stopping it; the state `stop_detached` needs."""
        if self._proc is None:
            raise RuntimeError("not started")
        state: dict[str, object] = {
            "pid": self._proc.pid, "url": self.url, "grpc_port": self.grpc_port, "version": self.version,
            "run_dir": str(self.run_dir), "storage": str(self.storage_dir), "own_storage": self._own_storage,
        }
        atexit.unregister(self.stop)
        self._proc, self.run_dir = None, None
        return state


class _PortClash(Exception):
    """The server could not bind its pre-picked ports."""


def _is_qdrant(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"qdrant" in cmdline and b"--config-path" in cmdline


def stop_detached(state: Mapping[str, object], timeout: float = 30.0) -> None:
    """Stop a server started by ``start --pidfile`` and delete its run folder."""
    pid = int(str(state["pid"]))
    if _is_qdrant(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _is_qdrant(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _is_qdrant(pid):
            os.kill(pid, signal.SIGKILL)
    else:
        log.warning("pid %d is not a Qdrant server (stale pidfile?); not signalling it", pid)
    run_dir = state.get("run_dir")
    if run_dir:
        shutil.rmtree(str(run_dir), ignore_errors=True)


# ---------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="splade-connectors qdrant-server", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in [
        ("fetch", "decompress the binary into the cache and print its path"),
        ("run", "start, print the URL, block until Ctrl-C/SIGTERM, stop"),
        ("start", "start in the background and write --pidfile"),
        ("stop", "stop the server of --pidfile"),
    ]:
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--binary", default=None, help=f"executable or .xz archive (default: ${BINARY_ENV}, else ../shared/qdrant)")
        if name in ("run", "start"):
            cmd.add_argument("--storage", type=Path, default=None, help="storage folder to keep (default: a temporary one)")
            cmd.add_argument("--http-port", type=int, default=None, help="default: a free port")
            cmd.add_argument("--grpc-port", type=int, default=None, help="default: a free port")
            cmd.add_argument("--api-key-env", default=None, metavar="VAR", help="environment variable holding an API key to require")
        if name in ("start", "stop"):
            cmd.add_argument("--pidfile", type=Path, required=True)
    return parser


def _server_from_args(args: argparse.Namespace, *, tie_to_parent: bool) -> QdrantServer:
    api_key = os.environ.get(args.api_key_env) if args.api_key_env else None
    if args.api_key_env and not api_key:
        raise SystemExit(f"error: ${args.api_key_env} is empty")
    return QdrantServer(
        args.binary, api_key=api_key, storage_dir=args.storage, http_port=args.http_port, grpc_port=args.grpc_port,
        tie_to_parent=tie_to_parent,
    )


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "fetch":
        print(ensure_binary(args.binary))
        return 0
    if args.command == "run":
        with _server_from_args(args, tie_to_parent=True) as server:
            print(f"{server.describe()}; storage {server.storage_dir}; Ctrl-C stops", flush=True)
            _wait_for_signal()
        print("stopped", flush=True)
        return 0
    if args.command == "start":
        server = _server_from_args(args, tie_to_parent=False)
        server.start()
        state = server.detach()
        args.pidfile.write_text(json.dumps(state, indent=2), encoding="utf-8")
        print(f"Qdrant {state['version']} at {state['url']} (gRPC port {state['grpc_port']}, pid {state['pid']}, pidfile {args.pidfile})")
        return 0
    if not args.pidfile.is_file():
        print(f"no pidfile {args.pidfile}", file=sys.stderr)
        return 1
    stop_detached(json.loads(args.pidfile.read_text(encoding="utf-8")))
    args.pidfile.unlink()
    print("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
