"""The managed-server base both runners stand on, tried on a tiny HTTP server (no OpenSearch, no Qdrant needed):
retry on a port clash, stop (SIGTERM, SIGKILL when ignored, a frozen server too), a crash or a hang as a
`ServerError` carrying the log tail, and detach + `stop_detached` from the pidfile state."""

from __future__ import annotations

import logging
import os
import socket
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from splade_connectors.errors import ServerError, SpladeError
from splade_connectors.live.managed import Launch, ManagedServer, free_port, read_pidfile, write_pidfile

TOY = textwrap.dedent(
    """
    import http.server, signal, sys, time
    port, mode = int(sys.argv[1]), sys.argv[2]
    if mode == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if mode == "crash":
        print("toy: broken config, giving up", flush=True)
        sys.exit(3)
    if mode == "slow":
        time.sleep(60)

    class Ready(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    try:
        server = http.server.HTTPServer(("127.0.0.1", port), Ready)
    except OSError as exc:
        print(f"toy: {exc}", flush=True)  # [Errno 98] Address already in use
        sys.exit(1)
    server.serve_forever()
    """
)


class ToyServer(ManagedServer):
    """An HTTP server in a child Python; ``ports`` are tried in order before free ones."""

    kind = "Toy"
    run_prefix = "splade-toy-"
    log_name = "toy.log"
    process_markers = (b"splade-toy-server",)
    clash_markers = ("address already in use",)
    poll_interval = 0.05

    def __init__(self, *, ports: list[int] | None = None, mode: str = "serve", startup_timeout: float = 20.0) -> None:
        super().__init__(host="127.0.0.1", startup_timeout=startup_timeout, tie_to_parent=True)
        self.ports = list(ports or [])
        self.mode = mode
        self.version = "0.1"

    def _prepare(self) -> None:
        pass

    def _choose_ports(self, retry: bool) -> None:
        self.http_port = self.ports.pop(0) if self.ports else free_port(self.host)

    def _launch(self, tie: bool) -> Launch:
        if self.run_dir is None:
            self.run_dir = Path(tempfile.mkdtemp(prefix=self.run_prefix))
        script = self.run_dir / "toy.py"
        script.write_text(TOY, encoding="utf-8")
        argv = [sys.executable, str(script), str(self.http_port), self.mode, "splade-toy-server"]
        return Launch(argv, dict(os.environ))

    def _is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url, timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def _gone(pid: int, timeout: float = 10.0) -> bool:
    """True once ``pid`` is no server process any more (exited, or a zombie)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not ToyServer.is_server_process(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another socket listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_a_port_clash_is_retried_on_new_ports(taken_port: int, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING), ToyServer(ports=[taken_port]) as server:
        assert server.http_port != taken_port and _answers(server.url)
        assert "port clash on attempt 1" in caplog.text
        assert server.describe().startswith(f"Toy 0.1 at {server.url} (pid {server.pid}, ready after ")


def test_ports_that_stay_taken_are_a_server_error_and_leave_nothing_behind(taken_port: int) -> None:
    server = ToyServer(ports=[taken_port, taken_port])
    with pytest.raises(ServerError, match=rf"could not bind Toy ports after 2 attempts \(last tried http://127.0.0.1:{taken_port}\)"):
        server.start(attempts=2)
    assert server.run_dir is None and server.pid is None


def test_stop_terminates_the_server_and_deletes_its_run_folder() -> None:
    server = ToyServer()
    url = server.start()
    pid, run_dir = server.pid, server.run_dir
    assert pid is not None and run_dir is not None and run_dir.is_dir() and server.running
    server.stop()
    assert not server.running and server.pid is None and server.run_dir is None
    assert not run_dir.exists() and not _answers(url) and _gone(pid)
    assert server.returncode is not None  # reaped, not left a zombie


def test_stop_kills_a_server_that_ignores_sigterm() -> None:
    server = ToyServer(mode="ignore-term")
    url = server.start()
    started = time.monotonic()
    server.stop(timeout=1.0)
    assert time.monotonic() - started < 10 and not _answers(url) and server.returncode == -9


def test_a_frozen_server_still_stops() -> None:
    server = ToyServer()
    server.start()
    server.freeze()
    server.stop(timeout=10.0)
    assert server.returncode == -15  # it got SIGCONT, then acted on SIGTERM (no SIGKILL needed)


def test_kill_keeps_the_run_folder_and_start_restarts() -> None:
    with ToyServer() as server:
        run_dir, pid = server.run_dir, server.pid
        server.kill()
        assert not server.running and run_dir is not None and run_dir.is_dir()
        server.start()
        assert server.running and server.pid != pid and _answers(server.url)


def test_a_crash_during_startup_is_a_server_error_with_the_log_tail() -> None:
    server = ToyServer(mode="crash")
    with pytest.raises(ServerError, match="Toy exited with 3 during startup; log tail:\ntoy: broken config, giving up") as info:
        server.start()
    assert isinstance(info.value, SpladeError) and server.run_dir is None


def test_a_server_that_does_not_answer_in_time_is_stopped() -> None:
    server = ToyServer(mode="slow", startup_timeout=1.0)
    with pytest.raises(ServerError, match="Toy not ready after 1s"):
        server.start()
    assert server.pid is None and server.run_dir is None


class NotExecutable(ToyServer):
    def _launch(self, tie: bool) -> Launch:
        super()._launch(tie)
        assert self.run_dir is not None
        return Launch([str(self.run_dir / "toy.py")], {})  # written without the executable bit


def test_a_server_that_cannot_be_spawned_is_a_server_error_and_leaves_nothing_behind() -> None:
    server = NotExecutable()
    with pytest.raises(ServerError, match=r"cannot start Toy: \[Errno 13\] Permission denied"):
        server.start()
    assert server.run_dir is None and server.pid is None


def test_a_second_start_while_running_is_refused() -> None:
    with ToyServer() as server, pytest.raises(ServerError, match="already running: Toy 0.1 at"):
        server.start()


def test_detach_leaves_it_running_and_stop_detached_stops_it_from_the_pidfile(tmp_path: Path) -> None:
    server = ToyServer()
    url = server.start()
    state = server.detach()
    assert server.pid is None and server.run_dir is None  # forgotten: the caller's exit does not stop it
    assert state["kind"] == "Toy" and state["url"] == url and _answers(url)
    pidfile = tmp_path / "toy.json"
    write_pidfile(pidfile, state)
    ToyServer.stop_detached(read_pidfile(pidfile), timeout=10)
    assert _gone(int(str(state["pid"]))) and not _answers(url) and not Path(str(state["run_dir"])).exists()


def test_stop_detached_never_signals_a_pid_that_is_not_its_server(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        ToyServer.stop_detached({"kind": "Toy", "pid": os.getpid(), "run_dir": ""})
    assert "is not a Toy server (stale pidfile?); not signalling it" in caplog.text


def test_stop_detached_refuses_another_kind_of_server() -> None:
    with pytest.raises(ServerError, match="the state is of a Qdrant server, not Toy"):
        ToyServer.stop_detached({"kind": "Qdrant", "pid": os.getpid()})


def test_a_missing_or_foreign_pidfile_is_a_server_error(tmp_path: Path) -> None:
    with pytest.raises(ServerError, match="no pidfile"):
        read_pidfile(tmp_path / "missing.json")
    (tmp_path / "other.json").write_text('{"url": "x"}', encoding="utf-8")
    with pytest.raises(ServerError, match="is not a server pidfile"):
        read_pidfile(tmp_path / "other.json")
