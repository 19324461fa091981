"""The `fetch | run | start | stop` verbs of both local servers: `--help` everywhere, and a failure is one
`error:` line with exit code 2, from `splade-connectors <kind>-server` and from `python -m` alike."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from splade_connectors.cli import main
from tests.conftest import REPO_ROOT

COMMANDS = ("opensearch-server", "qdrant-server")
VERBS = ("fetch", "run", "start", "stop")


@pytest.mark.parametrize("command", COMMANDS)
def test_the_command_has_help_listing_its_verbs(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: splade-connectors {command} [-h] VERB ...")
    assert all(verb in out for verb in VERBS)


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize("command", COMMANDS)
def test_every_verb_has_help(command: str, verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, verb, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: splade-connectors {command} {verb} [-h]")
    assert ("--pidfile PIDFILE" in out) == (verb in ("start", "stop"))


@pytest.mark.parametrize("command", COMMANDS)
def test_a_missing_pidfile_is_one_error_line(command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "stop", "--pidfile", str(tmp_path / "none.json")]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: no pidfile {tmp_path / 'none.json'}\n" and captured.out == ""


@pytest.mark.parametrize("command", COMMANDS)
def test_a_verb_is_required(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command]) == 2
    assert capsys.readouterr().err == (
        f"error: the following arguments are required: VERB (see splade-connectors {command} --help)\n"
    )


def test_a_pidfile_of_the_other_server_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pidfile = tmp_path / "q.json"
    pidfile.write_text('{"kind": "Qdrant", "pid": 1, "run_dir": ""}', encoding="utf-8")
    assert main(["opensearch-server", "stop", "--pidfile", str(pidfile)]) == 2
    assert capsys.readouterr().err == "error: the state is of a Qdrant server, not OpenSearch\n"
    assert pidfile.exists()  # kept: it still names a running Qdrant


def test_no_qdrant_binary_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nothing" / "qdrant.xz"
    assert main(["qdrant-server", "start", "--binary", str(missing), "--pidfile", str(tmp_path / "q.json")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: no Qdrant binary at {missing}\n"
    assert not (tmp_path / "q.json").exists()


def test_an_empty_api_key_variable_is_one_error_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("EMPTY_QDRANT_KEY", "")
    assert main(["qdrant-server", "start", "--api-key-env", "EMPTY_QDRANT_KEY", "--pidfile", str(tmp_path / "q.json")]) == 2
    assert capsys.readouterr().err == "error: $EMPTY_QDRANT_KEY is empty\n"


def test_a_bad_heap_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["opensearch-server", "start", "--heap", "lots", "--pidfile", str(tmp_path / "os.json")]) == 2
    assert capsys.readouterr().err == "error: heap must be a JVM size such as 512m or 2g, got 'lots'\n"


@pytest.mark.parametrize("module", ["opensearch_native", "qdrant_server"])
def test_python_dash_m_has_the_same_verbs_and_error_line(module: str, tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", f"splade_connectors.live.{module}", *args]
        return subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=120, check=False)

    helped = run("stop", "--help")
    assert helped.returncode == 0 and helped.stdout.startswith(f"usage: python -m splade_connectors.live.{module} stop")
    failed = run("stop", "--pidfile", str(tmp_path / "none.json"))
    assert (failed.returncode, failed.stderr, failed.stdout) == (2, f"error: no pidfile {tmp_path / 'none.json'}\n", "")


def test_qdrant_cluster_verb_has_help_and_refuses_no_nodes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["qdrant-server", "cluster", "--help"]) == 0
    assert "--nodes NODES" in capsys.readouterr().out
    assert main(["qdrant-server", "cluster", "--nodes", "0"]) == 2
    assert capsys.readouterr().err == "error: a cluster needs at least one node, not 0\n"


def test_opensearch_cluster_verb_has_help_and_refuses_no_nodes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["opensearch-server", "cluster", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--nodes NODES" in out and "--heap HEAP" in out and "--version VERSION" in out
    assert main(["opensearch-server", "cluster", "--nodes", "0"]) == 2
    assert capsys.readouterr().err == "error: a cluster needs at least one node, not 0\n"
    assert main(["opensearch-server", "cluster", "--heap", "lots"]) == 2
    assert "heap must be a JVM size" in capsys.readouterr().err
