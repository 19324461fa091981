"""Every user or store error in the CLI is one `error:` line on stderr,
exit code 2, no traceback and no secret. Stores here are embedded Qdrant folders, unreachable URLs and a
local server that answers 401; the live OpenSearch cases are in `test_live_opensearch.py`.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from splade_connectors.live.qdrant_server import QdrantServer
from splade_connectors.registry import open_store, store_config
from tests.splade_connectors.cli.conftest import CliRun, cli_env, run_process, write_jsonl

Cli = Callable[..., CliRun]
DOCS = [
    {"_id": "a", "text": "Penguins live in the southern hemisphere and cannot fly."},
    {"_id": "b", "text": "The violin has four strings tuned in fifths."},
]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "docs.jsonl", DOCS)


@pytest.fixture
def qdrant_folder(tmp_path: Path, corpus: Path, cli: Cli) -> list[str]:
    """Options naming an embedded Qdrant folder with a collection `docs` holding DOCS."""
    store = ["--qdrant-path", str(tmp_path / "qdrant"), "--collection", "docs"]
    assert cli("ingest", "--input", str(corpus), *store, "--no-progress").code == 0
    return store


# ---- bad option values: refused while parsing or by the config, before any model or store is touched ----------
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["search", "-q", "x", "--batch-size", "0"], "argument --batch-size: must be >= 1, got 0"),
        (["search", "-q", "x", "--top-k", "0"], "argument --top-k: must be >= 1, got 0"),
        (["search", "-q", "x", "--top-k", "ten"], "argument --top-k: expected an integer, got 'ten'"),
        (["search", "-q", "x", "--max-length", "1"], "argument --max-length: must be >= 2, got 1"),
        (["search", "-q", "x", "--score-threshold", "nan"], "argument --score-threshold: must be a finite number"),
        (["search", "-q", "x", "--dtype", "fp8"], "argument --dtype: invalid choice: 'fp8'"),
        (["search", "-q", "x", "--qdrant-timeout", "0"], "argument --qdrant-timeout: must be >= 1, got 0"),
        (["search", "-q", "x", "--store", "elastic"], "argument --store: invalid choice: 'elastic'"),
        (["search", "-q", "x", "--store", "opensearch", "--index", "a b"], "index: invalid OpenSearch index name 'a b'"),
        (["search", "-q", "x", "--store", "opensearch", "--index", "UPPER"], "invalid OpenSearch index name 'UPPER'"),
        (["search", "-q", "x", "--filter", "year"], "--filter 'year': expected FIELD=VALUE"),
        (["search", "-q", "x", "--filter", "year:float=1.5"], "unknown type 'float'; use str, int or bool"),
        (["search", "-q", "x", "--filter", "year:int=soon"], "'soon' is not an integer"),
        (["search", "-q", "x", "--device", "warp-drive"], "--device 'warp-drive': not a device name"),
        (["search", "-q", "x", "--model", "shipped:nope"], "unknown shipped model 'nope'"),
        (["ingest", "--input", "x.jsonl", "--ingest-batch-size", "0"], "argument --ingest-batch-size: must be >= 1, got 0"),
        (["ingest", "--input", "x.jsonl", "--on-invalid", "ignore"], "argument --on-invalid: invalid choice: 'ignore'"),
        (["ingest", "--input", "/no/such/file.jsonl"], "no such file or BEIR folder: /no/such/file.jsonl"),
        (["eval", "--backends", "exact"], "give --datasets NAMES or --beir-dir PATH"),
        (["eval", "--beir-dir", "/no/such/dir", "--backends", "exact"], "'/no/such/dir' is neither a folder nor a NanoBEIR name"),
        (["eval", "--datasets", "scifact", "--backends", "exact,faiss"], "unknown backend 'faiss'"),
        (["eval", "--datasets", "scifact", "--backends", "exact", "--relevance-threshold", "high"], "'high' is not an integer grade"),
        (["eval", "--datasets", "scifact", "--max-docs", "-5"], "argument --max-docs: must be >= 1, got -5"),
        (["search"], "the following arguments are required: --query/-q"),
    ],
)
def test_bad_option_values_are_one_line(cli: Cli, args: list[str], expected: str) -> None:
    line = cli(*args).error_line()
    assert expected in line


def test_a_cuda_device_on_a_machine_without_one(cli: Cli) -> None:
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert "CUDA is not available" in cli("search", "-q", "x", "--device", "cuda").error_line()


def test_help_still_exits_zero(cli: Cli) -> None:
    run = cli("search", "--help")
    assert run.code == 0 and "--filter" in run.out and run.err == ""


# ---- bad model checkpoints ------------------------------------------------------------------------------------
def test_bad_model_checkpoints(cli: Cli, tmp_path: Path, trained_model_dir: Path) -> None:
    assert "does not exist" in cli("search", "-q", "x", "--model", str(tmp_path / "missing")).error_line()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "has neither modules.json nor config.json" in cli("search", "-q", "x", "--model", str(empty)).error_line()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json", encoding="utf-8")
    assert str(broken) in cli("search", "-q", "x", "--model", str(broken)).error_line()


# ---- stores: unreachable, refusing the credentials, locked or unwritable, missing collection ---------------------
def test_unreachable_qdrant_server(cli: Cli) -> None:
    line = cli("search", "--qdrant-url", "http://127.0.0.1:9", "-q", "anything").error_line()
    assert "qdrant collection 'splade' (http://127.0.0.1:9)" in line and "cannot reach the server" in line


def test_unreachable_opensearch(cli: Cli) -> None:
    line = cli("search", "--store", "opensearch", "--opensearch-url", "http://127.0.0.1:9", "-q", "anything").error_line()
    assert "opensearch index 'splade' (http://127.0.0.1:9)" in line and "Connection refused" in line


def test_qdrant_server_refusing_the_api_key(cli: Cli, refusing_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server answering 401 (a local stand-in; the real-server case is below)."""
    monkeypatch.setenv("QDRANT_API_KEY", "wrong-key-123")
    line = cli("search", "--qdrant-url", refusing_server, "-q", "anything").error_line()
    assert "refused the API key (HTTP 401: Unauthorized)" in line and "wrong-key-123" not in line


def test_opensearch_refusing_the_credentials(cli: Cli, refusing_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server answering 401 (the live OpenSearch behind a basic-auth proxy is in test_live_opensearch.py)."""
    monkeypatch.setenv("OPENSEARCH_PASSWORD", "wrong-password-123")
    line = cli("search", "--store", "opensearch", "--opensearch-url", refusing_server, "--opensearch-user", "admin", "-q", "x").error_line()
    assert "refused the credentials (HTTP 401)" in line and "wrong-password-123" not in line


@pytest.mark.live
def test_real_qdrant_server_with_a_wrong_api_key(cli: Cli, qdrant_binary: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The native server started with an API key: a wrong key is one line naming neither key."""
    right = "right-key-5a1c9e"
    with QdrantServer(qdrant_binary, api_key=right) as server:
        monkeypatch.setenv("QDRANT_API_KEY", "definitely-wrong-key")
        line = cli("search", "--qdrant-url", server.url, "-q", "x").error_line()
    assert "refused the API key" in line and "definitely-wrong-key" not in line and right not in line


def test_locked_qdrant_folder(cli: Cli, qdrant_folder: list[str], tmp_path: Path) -> None:
    # another store (as another process would) holds the embedded collection
    with open_store(store_config("qdrant", path=str(tmp_path / "qdrant"), collection="docs"), create=False):
        line = cli("search", *qdrant_folder, "-q", "birds").error_line()
    assert "qdrant collection 'docs'" in line and "in use by another process" in line


def test_unwritable_qdrant_folder(cli: Cli, corpus: Path, tmp_path: Path) -> None:
    """A folder that cannot be created (its parent is a file; chmod does not stop root, which CI may be)."""
    (tmp_path / "a-file").write_text("x", encoding="utf-8")
    line = cli("ingest", "--input", str(corpus), "--qdrant-path", str(tmp_path / "a-file" / "qdrant"), "--no-progress").error_line()
    assert "qdrant collection 'splade' (embedded" in line and "Not a directory" in line


def test_search_on_a_missing_collection_does_not_create_it(cli: Cli, qdrant_folder: list[str], tmp_path: Path) -> None:
    other = ["--qdrant-path", str(tmp_path / "qdrant"), "--collection", "nope"]
    assert "qdrant collection 'nope'" in cli("search", *other, "-q", "birds").error_line()
    assert "does not exist" in cli("search", *other, "-q", "birds").error_line()  # still missing: not created
    assert sorted(p.name for p in (tmp_path / "qdrant" / "collections").iterdir()) == ["docs"]


def test_a_mismatching_collection_config_is_one_line(cli: Cli, qdrant_folder: list[str]) -> None:
    assert "IDF modifier" in cli("search", *qdrant_folder, "--idf", "-q", "birds").error_line()


# ---- input and checkpoints: the pipeline's InputError / ResumeError reach the user as one line -------------------


def test_an_empty_input_file_exits_2(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("", encoding="utf-8")
    line = cli("ingest", "--input", str(tmp_path / "empty.jsonl"), "--qdrant-path", str(tmp_path / "q"), "--no-progress").error_line()
    assert "empty.jsonl" in line


def test_an_input_without_a_valid_record_exits_2(cli: Cli, tmp_path: Path) -> None:
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"_id": "", "text": "no id"}, {"_id": "x", "text": ""}])
    run = cli("ingest", "--input", str(bad), "--qdrant-path", str(tmp_path / "q"), "--no-progress")
    assert run.code == 2 and run.err.strip().splitlines()[-1].startswith("error: ") and "Traceback" not in run.err


@pytest.mark.parametrize("content", ["{truncated", "[]"], ids=["truncated", "not-an-object"])
def test_a_bad_ingestion_checkpoint_is_one_line(cli: Cli, corpus: Path, tmp_path: Path, content: str) -> None:
    checkpoint = tmp_path / "resume.json"
    checkpoint.write_text(content, encoding="utf-8")
    line = cli("ingest", "--input", str(corpus), "--qdrant-path", str(tmp_path / "q"), "--checkpoint", str(checkpoint), "--no-progress").error_line()
    assert "checkpoint" in line.lower()


def test_a_checkpoint_of_another_source_is_one_line(cli: Cli, corpus: Path, tmp_path: Path) -> None:
    checkpoint = tmp_path / "resume.json"
    checkpoint.write_text(json.dumps({"source_id": "other.jsonl:0", "records_done": 1}), encoding="utf-8")
    line = cli("ingest", "--input", str(corpus), "--qdrant-path", str(tmp_path / "q"), "--checkpoint", str(checkpoint), "--no-progress").error_line()
    assert "resume.json" in line


# ---- what a user really sees: a separate process, with logging, warnings and progress bars -----------------------
def test_a_real_process_prints_exactly_one_line(tmp_path: Path) -> None:
    run = run_process(["search", "--qdrant-url", "http://127.0.0.1:9", "-q", "anything"], cwd=tmp_path)
    assert run.error_line().startswith("error: qdrant collection 'splade' (http://127.0.0.1:9): open failed: cannot reach")
    assert run.out == ""


def test_ctrl_c_during_ingestion(tmp_path: Path, scifact_dir: Path) -> None:
    """Ctrl-C: one line, exit 130, no traceback; the checkpoint written so far is kept for a resume."""
    checkpoint = tmp_path / "resume.json"
    args = ["ingest", "--input", str(scifact_dir), "--qdrant-path", str(tmp_path / "q"), "--collection", "sf",
            "--checkpoint", str(checkpoint), "--ingest-batch-size", "8", "--batch-size", "8", "--no-progress"]
    process = subprocess.Popen(
        [sys.executable, "-m", "splade_connectors.cli", *args], cwd=tmp_path, env=cli_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # as from a terminal: a shell's background job (`cmd &`, nohup) starts with SIGINT ignored, which the
        # child would inherit (and Python then installs no KeyboardInterrupt handler)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509 - only resets one signal
    )
    try:
        deadline = time.monotonic() + 300
        while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert checkpoint.exists(), "ingestion never wrote its first checkpoint"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1] == "error: interrupted"
    # one error line; anything before it is a log warning of the run (e.g. documents truncated at 512 tokens)
    assert all(" WARNING " in line for line in lines[:-1]), lines
    assert checkpoint.exists() and json.loads(checkpoint.read_text(encoding="utf-8"))["records_done"] > 0

