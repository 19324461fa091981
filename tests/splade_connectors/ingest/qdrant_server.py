"""A real Qdrant server for the ingestion tests and `bench/scale.py`, from `../shared/qdrant` (see its README).

The xz-compressed binary is decompressed once into a cache outside the clone, keyed by its sha256;
each server gets free ports and a temporary storage folder, and is stopped (SIGTERM) afterwards.
Stand-in until the shared fixture of `tests/live_stores.py` has a Qdrant server of its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import lzma
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

BINARY_NAME = "qdrant-1.18.3-x86_64-linux.xz"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "splade-connectors"


def shared_qdrant_xz(shared_data: Path) -> Path:
    """`../shared/qdrant/<binary>.xz` next to the shared data folder."""
    return shared_data.parent / "qdrant" / BINARY_NAME


def qdrant_binary(xz_path: Path) -> Path:
    """The decompressed server binary (cached by the archive's sha256; safe under concurrent callers)."""
    digest = hashlib.sha256(xz_path.read_bytes()).hexdigest()[:16]
    folder = CACHE / f"qdrant-{digest}"
    binary = folder / "qdrant"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not binary.exists():
            partial = folder / "qdrant.partial"
            with lzma.open(xz_path) as source, open(partial, "wb") as target:
                shutil.copyfileobj(source, target)
            partial.chmod(0o755)
            partial.rename(binary)
    return binary


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class QdrantServer:
    """One Qdrant server process on 127.0.0.1 with its own storage; `max_request_mb` caps request bodies."""

    def __init__(self, binary: Path, *, max_request_mb: int | None = None) -> None:
        self.binary = binary
        self.max_request_mb = max_request_mb
        self.folder: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.url: str | None = None

    def start(self, timeout: float = 90.0) -> str:
        self.folder = Path(tempfile.mkdtemp(prefix="splade-qdrant-"))
        http, grpc = _free_port(), _free_port()
        limit = f"  max_request_size_mb: {self.max_request_mb}\n" if self.max_request_mb else ""
        (self.folder / "config.yaml").write_text(
            f"storage:\n  storage_path: {self.folder / 'storage'}\n  snapshots_path: {self.folder / 'snapshots'}\n"
            f"service:\n  host: 127.0.0.1\n  http_port: {http}\n  grpc_port: {grpc}\n{limit}"
            "telemetry_disabled: true\n"
        )
        log = open(self.folder / "qdrant.log", "wb")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(
            [str(self.binary), "--config-path", str(self.folder / "config.yaml")],
            cwd=self.folder, stdout=log, stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{http}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"qdrant exited with {self.process.returncode}: {(self.folder / 'qdrant.log').read_text()[-500:]}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as response:
                    if response.status == 200:
                        return self.url
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"qdrant did not become ready within {timeout:.0f}s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
