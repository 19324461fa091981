"""One clear next step per refusal (issue 26): a refused resume says only "start over"; `eval` reports the qrels
it cannot evaluate (their query id is not in the queries) instead of dropping them silently."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.splade_connectors.cli.conftest import CliRun, write_jsonl

Cli = Callable[..., CliRun]


def test_a_refused_resume_gives_one_next_step(cli: Cli, tmp_path: Path) -> None:
    corpus = write_jsonl(tmp_path / "docs.jsonl", [{"_id": "a", "text": "Cornelius was a centurion."}])
    checkpoint = tmp_path / "resume.json"
    store = ["--qdrant-path", str(tmp_path / "q"), "--collection", "c", "--no-progress"]
    for content in ("{truncated", json.dumps({"version": 2, "run": {}, "records_done": "x"})):
        checkpoint.write_text(content, encoding="utf-8")
        line = cli("ingest", "--input", str(corpus), *store, "--checkpoint", str(checkpoint)).error_line()
        assert line.endswith("delete it to start over"), line
        assert "rerun with --checkpoint" not in line and "to resume" not in line


def test_eval_reports_the_qrels_it_drops(cli: Cli, tiny_beir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with open(tiny_beir / "qrels" / "test.tsv", "a", encoding="utf-8") as qrels:
        qrels.write("q9\td1\t1\nq9\td2\t1\n")  # a query id the queries file lacks
    with caplog.at_level(logging.WARNING, logger="splade_connectors.eval.runner"):
        run = cli("eval", "--beir-dir", str(tiny_beir), "--backends", "exact", "--json", "--no-progress", "--device", "cpu")
    assert run.code == 0, run.err
    report = json.loads(run.out)
    assert report["datasets"]["tiny"]["dropped_qrels"] == {"judgements": 2, "query_ids": 1, "examples": ["q9"]}
    assert report["datasets"]["tiny"]["queries"] == 4  # the four real queries are still evaluated
    assert any("2 qrels of 1 query ids are not evaluated" in r.getMessage() and "'q9'" in r.getMessage() for r in caplog.records)
