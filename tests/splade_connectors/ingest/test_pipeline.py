"""The single-process pipeline on real stores: bad records never stop a run, bad inputs are errors.

A lone surrogate, documents OpenSearch refuses, an empty or all-invalid input and a leading BOM, through the
CLI and the Python API, on a Qdrant server and on OpenSearch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from splade_connectors.cli import main
from splade_connectors.errors import IngestError, InputError
from splade_connectors.ingest import IngestConfig, ingest, ingest_file
from splade_connectors.store import SparseStore, StoreConfigBase
from tests.splade_connectors.ingest.conftest import write_jsonl
from trainer.encoder import SpladeEncoder

pytestmark = [pytest.mark.live, pytest.mark.filterwarnings("ignore:Qdrant client version:UserWarning")]


def cli_store_args(config: StoreConfigBase) -> list[str]:
    """The `ingest` options that name the store `config` names (no secrets in these tests)."""
    data = config.model_dump()
    if config.kind == "qdrant":
        return ["--store", "qdrant", "--qdrant-url", data["url"], "--collection", data["collection"]]
    return ["--store", "opensearch", "--opensearch-url", data["hosts"][0], "--index", data["index"]]


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Exit code, stdout, and the `error:` lines of stderr (model-loading progress bars left out)."""
    code = main(["ingest", "--no-progress", *args])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    errors = "".join(line + "\n" for line in captured.err.replace("\r", "\n").splitlines() if line.startswith("error:"))
    return code, captured.out, errors


def test_lone_surrogate_is_reported_and_the_run_goes_on(
    make_config: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A lone surrogate in one record is refused by name; the rest of its batch is stored and the run exits 0.
    With `--on-invalid fail` the same record is one `error:` line and exit code 2."""
    path = tmp_path / "surr.jsonl"
    path.write_bytes(
        b'\xef\xbb\xbf{"_id":"a","text":"fine"}\n{"_id":"sur","text":"bad \\ud800 x"}\n{"_id":"b","text":"also fine"}\n'
    )
    config = make_config("surr")
    code, out, err = run_cli(capsys, "--input", str(path), "--json", *cli_store_args(config))
    assert code == 0, err
    report = json.loads(out)
    assert (report["accepted"], report["invalid"], report["stored"]) == (2, 1, 2)
    assert report["invalid_examples"] == [
        "record #1 (id 'sur'): text has a lone surrogate (U+D800 at character 4): not valid Unicode"
    ]
    code, _, err = run_cli(capsys, "--input", str(path), "--on-invalid", "fail", *cli_store_args(config))
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: invalid input, record #1 (id 'sur')")


def test_documents_the_store_refuses_are_isolated(
    store_kind: str, make_store: Any, encoder: SpladeEncoder, tmp_path: Path
) -> None:
    """OpenSearch refuses a type change and a 33 KB id; later documents are still written, the refused ones are
    reported by position and id. An array mixing objects and strings is outside the payload rule on every store."""
    long_id = "x" * 33_000
    rows = [
        {"_id": "d0", "text": "alpha helix", "year": 2001},
        {"_id": "d1", "text": "beta sheet", "year": 2002},
        {"_id": "bad-type", "text": "gamma", "year": "not a number"},
        {"_id": "d3", "text": "delta rays", "year": 2003},
        {"_id": "bad-array", "text": "epsilon", "authors": [{"name": "Ada"}, "Grace"]},
        {"_id": long_id, "text": "zeta function", "year": 2004},
        {"_id": "d6", "text": "eta carinae", "year": 2005},
        {"_id": "d7", "text": "theta waves", "year": 2006},
    ]
    path = write_jsonl(tmp_path / "mixed.jsonl", rows)
    store = make_store("refuse")
    report = ingest_file(path, encoder, store, IngestConfig(batch_size=3))
    refused = {r.position: r for r in report.invalid}
    assert refused[4].doc_id == "bad-array" and "metadata.authors mixes" in refused[4].reason
    if store_kind == "qdrant":
        assert sorted(refused) == [4] and report.accepted == 7 and store.count() == 7
        return
    assert sorted(refused) == [2, 4, 5]
    assert refused[2].doc_id == "bad-type" and "the store refused it: [400]" in refused[2].reason
    assert refused[5].doc_id == long_id and "(33000 characters)" in refused[5].describe()
    assert report.accepted == 5 and store.count() == 5
    assert set(store.fetch_payloads([r["_id"] for r in rows], [])) == {"d0", "d1", "d3", "d6", "d7"}
    # with on_invalid="fail" the run stops at the first refusal it meets: validation (#4) may come before the store's (#2)
    with pytest.raises(IngestError, match=r"invalid input, record #(2 \(id 'bad-type'\): the store refused it|4 \(id 'bad-array'\): metadata)"):
        ingest_file(path, encoder, store, IngestConfig(batch_size=3, on_invalid="fail"))


def test_empty_input_is_an_input_error(make_config: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An empty file, or one whose every record is invalid, is one `error:` line and exit code 2, not a success."""
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    invalid = write_jsonl(tmp_path / "invalid.jsonl", [{"_id": "a"}, b"", b"{broken", {"text": "no id"}])
    config = make_config("empty")
    code, out, err = run_cli(capsys, "--input", str(empty), *cli_store_args(config))
    assert (code, out) == (2, "") and err == f"error: {empty} has no records\n"
    code, out, err = run_cli(capsys, "--input", str(invalid), *cli_store_args(config))
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: {invalid} has no valid record: all 4 of 4 records were refused (first: record #0")


def test_all_invalid_iterable_is_an_input_error(make_store: Any, encoder: SpladeEncoder) -> None:
    store = make_store("allbad")
    with pytest.raises(InputError, match="no valid record: all 2 of 2"):
        ingest([{"_id": "a", "text": " "}, {"_id": "b"}], encoder, store)
    with pytest.raises(InputError, match="has no records"):
        ingest([], encoder, store)
    assert store.count() == 0


def test_memory_is_bounded_by_batches_not_corpus(make_store: Any, encoder: SpladeEncoder, short_docs: list[dict[str, Any]]) -> None:
    """The pipeline pulls records only a few batches ahead of what the store has accepted, so memory
    follows the batch size, not the corpus size."""
    store: SparseStore = make_store("bounded")
    batch = 20
    written = [0]
    ahead: list[int] = []

    def source() -> Iterator[dict[str, Any]]:
        for pulled, doc in enumerate(short_docs[:300]):
            ahead.append(pulled - written[0])
            yield doc

    def progress(records: int) -> None:
        written[0] += records

    report = ingest(source(), encoder, store, IngestConfig(batch_size=batch), progress=progress)
    assert report.accepted == 300 and written[0] == 300
    assert max(ahead) <= 3 * batch + 1  # one batch being read, one queued, one being written
