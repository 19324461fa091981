"""`--passages` on the command line (embedded engine): ingest stores passages, search prints each document once with
its best passage (span and text), `search --passages` on a document collection is one error line, and `eval
--passages` reports the passages and document metrics equal to exact scoring."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.splade_connectors.cli.conftest import DOCS, CliRun


def test_cli_passages_ingest_search_eval(tiny_beir: Path, tmp_path: Path, cli: Callable[..., CliRun]) -> None:
    path = tmp_path / "qdrant"
    windows = ["--chunk-tokens", "16", "--device", "cpu"]
    store = ["--qdrant-path", str(path), "--collection", "docs"]
    done = cli("ingest", "--input", str(tiny_beir), *store, "--passages", "--no-progress", "--json", *windows)
    assert done.code == 0, done.err
    assert json.loads(done.out)["stored"] == 5  # documents, not passages

    done = cli("search", *store, "-q", "who is cornelius in the book of acts", "--passages", "--json", "--device", "cpu")
    assert done.code == 0, done.err
    hits = json.loads(done.out)["results"][0]["hits"]
    assert len({h["id"] for h in hits}) == len(hits) and hits[0]["id"] == "d1"
    for hit in hits:
        passage = hit["passage"]
        assert DOCS[hit["id"]][1][passage["start"] : passage["end"]] == passage["text"]
    assert "cornelius" in hits[0]["passage"]["text"].lower()
    table = cli("search", *store, "-q", "who is cornelius", "--device", "cpu")
    assert table.code == 0 and "passage " in table.out

    other = ["--qdrant-path", str(path), "--collection", "whole"]
    assert cli("ingest", "--input", str(tiny_beir), *other, "--no-progress", "--device", "cpu").code == 0
    line = cli("search", *other, "-q", "cornelius", "--passages", "--device", "cpu").error_line()
    assert "not passages" in line and "--passages" in line

    done = cli("eval", "--beir-dir", str(tiny_beir), "--backends", "exact,qdrant", "--passages", "--json", "--no-progress", *windows)
    assert done.code == 0, done.err
    report = json.loads(done.out)
    dataset = next(iter(report["datasets"].values()))
    assert dataset["passages"] > 5
    results = next(iter(report["results"].values()))
    assert results["qdrant"]["ndcg@10"] == results["exact"]["ndcg@10"]
