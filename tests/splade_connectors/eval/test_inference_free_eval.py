"""End-to-end `eval` of an inference-free model equals sentence-transformers' evaluator on the same model.

The model: the shipped MLM for documents, SciFact IDF for queries (a sentence-transformers Router).
The data: a SciFact slice (all judged documents + filler, 400 documents, 300 queries), run through the
`splade-connectors eval` command with exact and Qdrant backends.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from splade_connectors.cli import main
from splade_connectors.eval.datasets import load_beir_folder
from tests.inference_free import build_st_router, scifact_idf
from trainer.retrieval.metrics import SPARSITY_KEYS

st = pytest.importorskip("sentence_transformers")

SLICE = 400


def test_eval_equals_sentence_transformers_evaluator(
    scifact_dir: Path, trained_model_dir: Path, splade_model, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sentence_transformers.sparse_encoder.evaluation import SparseInformationRetrievalEvaluator

    router = build_st_router(trained_model_dir, scifact_idf(scifact_dir, splade_model.tokenizer), tmp_path / "router")
    code = main([
        "eval", "--model", str(router), "--beir-dir", str(scifact_dir), "--max-docs", str(SLICE),
        "--backends", "exact,qdrant", "--json", "--no-progress", "--device", "cpu",
    ])
    assert code == 0
    ours = json.loads(capsys.readouterr().out)["results"]["scifact"]

    # the same slice the command took: judged documents first, then filler up to SLICE
    dataset = load_beir_folder(scifact_dir)
    judged = {d for docs in dataset.qrels.values() for d in docs}
    ids = [d for d in dataset.corpus if d in judged]
    ids += [d for d in dataset.corpus if d not in judged][: SLICE - len(ids)]
    dataset = dataset.subset(ids)
    evaluator = SparseInformationRetrievalEvaluator(
        queries={q: dataset.queries[q] for q in dataset.eval_query_ids()},
        corpus={d: dataset.document_text(d) for d in dataset.corpus},
        relevant_docs=dataset.relevant_docs(), name="scifact", batch_size=32, write_csv=False,
    )
    theirs = {k.removeprefix("scifact_").removeprefix("dot_"): float(v) for k, v in evaluator(st.SparseEncoder(str(router), device="cpu")).items()}
    compared = [k for k in theirs if k in ours["exact"]]
    assert len(compared) == 20, sorted(theirs)
    for key in compared:
        tolerance = 1e-3 * max(1.0, abs(theirs[key])) if key in SPARSITY_KEYS else 1e-4
        assert ours["exact"][key] == pytest.approx(theirs[key], abs=tolerance), key
        assert ours["qdrant"][key] == pytest.approx(ours["exact"][key], abs=1e-6), key
    assert theirs["ndcg@10"] > 0.5  # a working model, not two agreeing failures
    assert ours["exact"]["query_active_dims"] < ours["exact"]["corpus_active_dims"] / 10  # queries: just their tokens
