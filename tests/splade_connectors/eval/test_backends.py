"""The same vectors through every backend: exact = sentence-transformers, Qdrant = exact, OpenSearch ~ exact."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from splade_connectors.eval.backends import ExactBackend, StoreBackend
from splade_connectors.eval.encoding import EncodedDataset
from splade_connectors.eval.report import markdown_table, write_all
from splade_connectors.eval.runner import EvaluationReport, evaluate_encoded
from tests.conftest import BeirSlice
from trainer.retrieval.metrics import SPARSITY_KEYS

OPENSEARCH_NDCG_BOUND = 0.01  # rank_features keeps ~9 significant bits (<= 0.4% per weight)


@pytest.fixture(scope="module")
def exact_report(scifact_eval_data: EncodedDataset) -> EvaluationReport:
    return evaluate_encoded([scifact_eval_data], [ExactBackend()], keep_rankings=True)


def _qdrant_backend(qdrant_store, keep: bool = False) -> tuple[StoreBackend, object]:
    from splade_connectors.qdrant.config import QdrantConfig, connect
    from splade_connectors.qdrant.store import QdrantStore

    base = QdrantConfig(url=qdrant_store.url, api_key=qdrant_store.api_key)
    client = connect(base)
    backend = StoreBackend(
        "qdrant", lambda name: QdrantStore(base.model_copy(update={"collection": name}), client=client), keep=keep
    )
    return backend, client


@pytest.fixture(scope="module")
def qdrant_report(scifact_eval_data: EncodedDataset, qdrant_store) -> tuple[EvaluationReport, StoreBackend, object]:
    backend, client = _qdrant_backend(qdrant_store)
    report = evaluate_encoded([scifact_eval_data], [ExactBackend(), backend], keep_rankings=True)
    return report, backend, client


def test_exact_equals_sentence_transformers_evaluator(
    exact_report: EvaluationReport, scifact_slice: BeirSlice, trained_model_dir: Path
) -> None:
    """End to end on the same model and data: ST encodes and ranks itself; metrics agree to 1e-4."""
    st = pytest.importorskip("sentence_transformers")
    from sentence_transformers.sparse_encoder.evaluation import SparseInformationRetrievalEvaluator

    model = st.SparseEncoder(str(trained_model_dir), device="cpu")
    evaluator = SparseInformationRetrievalEvaluator(
        queries=scifact_slice.queries,
        corpus={d["_id"]: f"{d['title']}\n{d['text']}" if d["title"] else d["text"] for d in scifact_slice.corpus},
        relevant_docs={q: set(r) for q, r in scifact_slice.qrels.items()},
        name="scifact", batch_size=32, write_csv=False,
    )
    theirs = {k.removeprefix("scifact_").removeprefix("dot_"): float(v) for k, v in evaluator(model).items()}
    ours = exact_report.results["scifact-1k"]["exact"]
    compared = [k for k in theirs if k in ours]
    assert len(compared) == 20, sorted(theirs)
    for key in compared:
        tolerance = 1e-3 * max(1.0, abs(theirs[key])) if key in SPARSITY_KEYS else 1e-4
        assert ours[key] == pytest.approx(theirs[key], abs=tolerance), key


def test_qdrant_equals_exact(qdrant_report: tuple[EvaluationReport, StoreBackend, object]) -> None:
    report = qdrant_report[0]
    exact, qdrant = report.results["scifact-1k"]["exact"], report.results["scifact-1k"]["qdrant"]
    assert set(exact) == set(qdrant)
    for key, value in exact.items():
        assert qdrant[key] == pytest.approx(value, abs=1e-6), key
    assert all(abs(v) <= 1e-6 for v in report.deltas["scifact-1k"]["qdrant"].values())


def test_qdrant_collections_are_dropped(qdrant_report: tuple[EvaluationReport, StoreBackend, object]) -> None:
    _, backend, client = qdrant_report
    names = {c.name for c in client.get_collections().collections}  # type: ignore[attr-defined]  # the QdrantClient behind the backend
    assert backend.created and not names & set(backend.created)


def test_keep_leaves_the_collection(qdrant_store, scifact_eval_data: EncodedDataset) -> None:
    small = scifact_eval_data.dataset.subset(scifact_eval_data.doc_ids[:50], name="tiny")
    doc_vectors = dict(zip(scifact_eval_data.doc_ids, scifact_eval_data.doc_vectors))
    query_vectors = dict(zip(scifact_eval_data.query_ids, scifact_eval_data.query_vectors))
    query_ids = small.eval_query_ids()[:5]
    data = EncodedDataset(
        dataset=small, doc_ids=list(small.corpus), doc_vectors=[doc_vectors[d] for d in small.corpus],
        query_ids=query_ids, query_vectors=[query_vectors[q] for q in query_ids], dim=scifact_eval_data.dim,
    )
    backend, client = _qdrant_backend(qdrant_store, keep=True)
    evaluate_encoded([data], [backend])
    try:
        assert client.count(backend.created[0]).count == 50  # type: ignore[attr-defined]  # the QdrantClient behind the backend
    finally:
        client.delete_collection(backend.created[0])  # type: ignore[attr-defined]  # the QdrantClient behind the backend


@pytest.mark.live
def test_opensearch_close_to_exact(scifact_eval_data: EncodedDataset, opensearch_store, exact_report: EvaluationReport) -> None:
    from splade_connectors.eval.backends import store_factory

    factory = store_factory("opensearch", {
        "url": opensearch_store.url, "username": opensearch_store.username, "password": opensearch_store.password,
        "verify_certs": opensearch_store.verify_certs,
    })
    backend = StoreBackend("opensearch", factory)
    report = evaluate_encoded([scifact_eval_data], [backend], keep_rankings=True)
    exact, opensearch = exact_report.results["scifact-1k"]["exact"], report.results["scifact-1k"]["opensearch"]
    assert abs(opensearch["ndcg@10"] - exact["ndcg@10"]) <= OPENSEARCH_NDCG_BOUND
    assert abs(opensearch["map@100"] - exact["map@100"]) <= 2 * OPENSEARCH_NDCG_BOUND
    for key in SPARSITY_KEYS:  # same vectors, so identical
        assert opensearch[key] == exact[key]
    # rankings: the same documents at the top for almost every query
    same_top = sum(
        report.rankings["scifact-1k"]["opensearch"][q][0][0] == exact_report.rankings["scifact-1k"]["exact"][q][0][0]
        for q in scifact_eval_data.query_ids
    )
    assert same_top >= 0.97 * len(scifact_eval_data.query_ids)


def test_outputs_are_consistent(qdrant_report: tuple[EvaluationReport, StoreBackend, object], tmp_path: Path) -> None:
    report = qdrant_report[0]
    written = write_all(report, tmp_path)
    data = json.loads(written["json"].read_text(encoding="utf-8"))
    assert data["results"] == json.loads(json.dumps(report.results))
    assert set(data["results"]["scifact-1k"]) == {"exact", "qdrant"}
    table = written["markdown"].read_text(encoding="utf-8")
    assert table == markdown_table(report)
    for backend in ("exact", "qdrant"):
        row = next(line for line in table.splitlines() if line.startswith(f"| scifact-1k | {backend} |"))
        assert f"{report.results['scifact-1k'][backend]['ndcg@10']:.4f}" in row
    png = written["chart"].read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000


def test_adapters_are_imported_only_when_requested() -> None:
    code = (
        "import sys, splade_connectors.eval as e, splade_connectors.eval.backends as b, splade_connectors.eval.report;"
        "b.build_backends(['exact']);"
        "assert not any(m.startswith(('splade_connectors.qdrant', 'splade_connectors.opensearch', 'qdrant_client', 'opensearchpy')) for m in sys.modules), "
        "[m for m in sys.modules if 'qdrant' in m or 'opensearch' in m]"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
