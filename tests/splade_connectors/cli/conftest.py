"""Helpers for CLI tests: run the command in-process or as a real process, check the one-line error form,
and a tiny HTTP proxy that demands basic-auth credentials in front of a store that has none; a tiny BEIR
folder whose documents are long enough to need windows of 16 tokens.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from splade_connectors.cli import main
from tests.conftest import REPO_ROOT, write_beir_folder


@dataclass(frozen=True)
class CliRun:
    code: int
    out: str
    err: str

    def error_line(self) -> str:
        """The single stderr line of a failed run (asserts there is exactly one, and no traceback)."""
        lines = [line for line in self.err.splitlines() if line.strip()]
        assert self.code == 2, f"exit code {self.code}, stderr: {self.err!r}"
        assert "Traceback" not in self.err, self.err
        assert len(lines) == 1, f"expected one stderr line, got {lines!r}"
        assert lines[0].startswith("error: "), lines[0]
        return lines[0]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliRun]:
    """Run `splade-connectors ARGS...` in this process (main() must return, never raise)."""

    def run(*args: str) -> CliRun:
        capsys.readouterr()
        root = logging.getLogger()
        level = root.level
        try:
            code = main(list(args))
        finally:
            root.setLevel(level)  # main sets the process's log level; later tests keep theirs
        captured = capsys.readouterr()
        return CliRun(code, captured.out, captured.err)

    return run


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess: this checkout first on the path, offline, no inherited store secrets."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENSEARCH_", "QDRANT_"))}
    env.update(PYTHONPATH=str(REPO_ROOT), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def run_process(args: Sequence[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> CliRun:
    """Run the CLI as a real process: what a user sees on stdout and stderr, logging and warnings included."""
    done = subprocess.run(
        [sys.executable, "-m", "splade_connectors.cli", *args], cwd=cwd, env=env or cli_env(),
        capture_output=True, text=True, timeout=timeout,
    )
    return CliRun(done.returncode, done.stdout, done.stderr)


def write_jsonl(path: Path, rows: Sequence[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


class BasicAuthProxy:
    """An HTTP proxy on 127.0.0.1 that answers 401 unless the request carries the expected basic-auth
    credentials, and forwards authorised requests to `upstream` (a store without a security plugin).

    Lets tests exercise wrong and right credentials end to end against the native OpenSearch, which
    runs without the security plugin. `authorised` counts the requests that carried the right credentials.
    """

    def __init__(self, upstream: str, username: str, password: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.expected = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.authorised = 0
        self.refused = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # the stdlib's signature
                pass

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Authorization") != proxy.expected:
                    proxy.refused += 1
                    self._reply(401, b'{"error":"Unauthorized","status":401}', {"WWW-Authenticate": 'Basic realm="test"'})
                    return
                proxy.authorised += 1
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "authorization", "content-length")}
                request = urllib.request.Request(proxy.upstream + self.path, data=body or None, method=self.command, headers=headers)
                try:
                    with urllib.request.urlopen(request, timeout=60) as response:
                        self._reply(response.status, response.read(), {"Content-Type": response.headers.get("Content-Type", "application/json")})
                except urllib.error.HTTPError as exc:
                    self._reply(exc.code, exc.read(), {"Content-Type": "application/json"})

            def _reply(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> BasicAuthProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def refusing_server() -> Iterator[str]:
    """A local HTTP server that answers every request with 401 (a store that refuses the credentials)."""
    with BasicAuthProxy("http://127.0.0.1:9", "nobody", "never-sent") as proxy:
        yield proxy.url


DOCS = {
    "d1": ("Cornelius", "Cornelius was a centurion in the book of Acts. He was the first gentile baptised by Peter, "
                        "after a vision in Caesarea, and his household followed him."),
    "d2": ("Paris", "Paris is the capital and largest city of France. It sits on the Seine and is known for "
                    "its museums, its cafes and the tower Gustave Eiffel built for a world fair."),
    "d3": ("Photosynthesis", "Plants turn light, water and carbon dioxide into sugar and oxygen. Chlorophyll in "
                             "the chloroplasts absorbs red and blue light and reflects green."),
    "d4": ("Acts", "The Acts of the Apostles is the fifth book of the New Testament."),
    "d5": ("Tides", "Tides are caused by the gravity of the moon and, less, the sun."),
}
QUERIES = {"q1": "who is cornelius in the book of acts", "q2": "capital of france", "q3": "how do plants make sugar",
           "q4": "what causes tides"}
QRELS = [("q1", "d1", 2), ("q1", "d4", 1), ("q2", "d2", 1), ("q3", "d3", 1), ("q4", "d5", 1)]


@pytest.fixture
def tiny_beir(tmp_path: Path) -> Path:
    return write_beir_folder(tmp_path / "tiny", DOCS, QUERIES, QRELS)
