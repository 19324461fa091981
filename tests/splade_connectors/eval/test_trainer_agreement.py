"""The trainer's evaluation hook and `splade_connectors.eval` read BEIR the same way and compute the same metrics.

The hook builds document text as ingestion and eval do (title and text joined by a newline) and ranks and scores
as the exact backend does (same metrics, same tie order), so the nDCG@10 seen while training is the one
`splade-connectors eval --backends exact` reports.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from splade_connectors.eval.datasets import load_beir_folder
from splade_connectors.eval.runner import evaluate
from splade_connectors.records import Document
from tests.conftest import load_beir_slice
from trainer.encoder import EncodeOptions, SpladeEncoder
from trainer.model import SpladeModel
from trainer.training.evaluate import BeirEvaluator, load_beir_split


@pytest.fixture(scope="module")
def small_beir(scifact_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SciFact slice written as a BEIR folder: 20 queries, their judged documents and filler (80 docs)."""
    piece = load_beir_slice(scifact_dir, 0)
    queries = dict(sorted(piece.queries.items())[:20])
    judged = {d for q in queries for d in piece.qrels[q]}
    corpus = [d for d in piece.corpus if d["_id"] in judged]
    filler = [d for d in load_beir_slice(scifact_dir, 400).corpus if d["_id"] not in judged][: 80 - len(corpus)]
    folder = tmp_path_factory.mktemp("beir") / "scifact-small"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus + filler), encoding="utf-8")
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in queries.items()), encoding="utf-8")
    rows = "".join(f"{q}\t{d}\t{g}\n" for q in queries for d, g in piece.qrels[q].items())
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows, encoding="utf-8")
    return folder


def test_the_same_document_text_as_ingestion_and_eval(small_beir: Path) -> None:
    split = load_beir_split(small_beir)
    dataset = load_beir_folder(small_beir)
    assert set(split.corpus) == set(dataset.corpus)
    for doc_id, doc in dataset.corpus.items():
        ingested = Document(id=doc_id, text=doc["text"], title=doc["title"] or None).text_to_encode(with_title=True)
        assert split.corpus[doc_id] == dataset.document_text(doc_id) == ingested
    assert any("\n" in text for text in split.corpus.values())


def test_trainer_hook_metrics_equal_the_exact_backend(small_beir: Path, splade_model: SpladeModel) -> None:
    encoder = SpladeEncoder(splade_model, device="cpu", options=EncodeOptions(batch_size=16, max_length=96))  # short: cheap
    hook = BeirEvaluator.from_folder(small_beir, batch_size=16, max_length=96)(splade_model)
    report = evaluate(encoder, [load_beir_folder(small_beir)], ["exact"])
    exact = report.results["scifact-small"]["exact"]
    shared = [k for k in hook if k in exact]
    assert {"ndcg@10", "mrr@10", "map@100", "recall@10", "query_active_dims", "corpus_active_dims"} <= set(shared)
    assert {k: hook[k] for k in shared} == pytest.approx({k: exact[k] for k in shared}, abs=1e-12)
    assert 0.3 < hook["ndcg@10"] < 1.0
