"""`evaluate()` and `splade-connectors eval` on a tiny BEIR folder: encodes once, writes consistent outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from splade_connectors.cli import main
from splade_connectors.eval.datasets import load_beir_folder
from splade_connectors.eval.runner import evaluate
from tests.conftest import write_beir_folder
from trainer.encoder import SpladeEncoder

DOCS = {
    "d1": ("Cornelius", "Cornelius was a centurion in the book of Acts."),
    "d2": ("Paris", "Paris is the capital and largest city of France."),
    "d3": ("Photosynthesis", "Plants turn light, water and carbon dioxide into sugar."),
    "d4": ("Acts", "The Acts of the Apostles is the fifth book of the New Testament."),
}
QUERIES = {"q1": "who is cornelius in the book of acts", "q2": "capital of france", "q3": "how do plants make sugar"}
QRELS = [("q1", "d1", 2), ("q1", "d4", 1), ("q2", "d2", 1), ("q3", "d3", 1)]


@pytest.fixture
def tiny_beir(tmp_path: Path) -> Path:
    return write_beir_folder(tmp_path / "tiny", DOCS, QUERIES, QRELS)


def test_evaluate_encodes_each_dataset_once(tiny_beir: Path, encoder: SpladeEncoder, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"document": 0, "query": 0}
    original = encoder.encode

    def counting(texts, *, role="document", **overrides):
        texts = list(texts)
        calls[role] += len(texts)
        return original(texts, role=role, **overrides)

    monkeypatch.setattr(encoder, "encode", counting)
    dataset = load_beir_folder(tiny_beir)
    report = evaluate(encoder, [dataset, dataset.with_options(relevance_threshold=2).subset(list(DOCS), name="tiny-t2")], ["exact", "qdrant"])
    assert calls == {"document": 8, "query": 3 + 1}  # 4 docs x 2 datasets; 3 + 1 evaluated queries
    assert set(report.results) == {"tiny", "tiny-t2", "mean"}
    assert report.results["tiny"]["qdrant"] == report.results["tiny"]["exact"]
    assert report.results["tiny"]["exact"]["ndcg@10"] > 0.9
    mean = report.results["mean"]["exact"]["ndcg@10"]
    assert mean == pytest.approx((report.results["tiny"]["exact"]["ndcg@10"] + report.results["tiny-t2"]["exact"]["ndcg@10"]) / 2)


def test_cli_writes_json_markdown_png(tiny_beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code = main([
        "eval", "--beir-dir", str(tiny_beir), "--backends", "exact,qdrant", "--output-dir", str(out), "--json",
        "--no-progress", "--device", "cpu",
    ])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert printed["results"] == saved["results"]
    assert set(saved["results"]["tiny"]) == {"exact", "qdrant"}
    assert saved["deltas"]["tiny"]["qdrant"]["ndcg@10"] == 0.0
    assert "| tiny | qdrant |" in (out / "results.md").read_text(encoding="utf-8")
    assert (out / "results.png").read_bytes().startswith(b"\x89PNG")


def test_cli_needs_an_opensearch_url(tiny_beir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENSEARCH_URL", raising=False)
    assert main(["eval", "--beir-dir", str(tiny_beir), "--backends", "exact,opensearch", "--no-progress"]) == 2
