"""What production users configure: gRPC and parallel upload (server), the sparse index datatype and
on-disk index (server and embedded engine), measured against exact scoring through the store."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from splade_connectors.ingest import IngestConfig, ingest
from splade_connectors.qdrant import QdrantConfig, QdrantStore
from splade_connectors.store import HybridQuery
from tests.live_stores import LiveStore, record_qdrant_backend
from tests.splade_connectors.qdrant.conftest import EncodedCorpus, QdrantTarget, ReplayEncoder, stored_doc_ids
from tests.splade_connectors.qdrant.test_parity import load
from trainer.retrieval.metrics import retrieval_metrics
from trainer.sparse import to_csr

pytestmark = pytest.mark.live

# nDCG@10 on SciFact through the store minus exact scoring, per sparse index datatype (measured: bench/README.md)
NDCG_BOUND = {"float32": 1e-9, "float16": 0.005, "uint8": 0.03}


def _server_config(live: LiveStore, name: str, **options: Any) -> QdrantConfig:
    return QdrantConfig(url=live.url, api_key=live.api_key, grpc_port=live.grpc_port, collection=name, **options)


def test_grpc_with_parallel_upload_equals_rest(
    qdrant_server_store: LiveStore, scifact_encoded: Any, replay_encoder: Callable[[], ReplayEncoder]
) -> None:
    """Ingest over gRPC with 4 concurrent upserts per batch; searching over gRPC and REST gives the same hits."""
    name = f"grpc-{uuid.uuid4().hex[:8]}"
    corpus = scifact_encoded.slice.corpus
    with QdrantStore(_server_config(qdrant_server_store, name, prefer_grpc=True, upload_parallel=4)) as grpc_store:
        report = ingest(corpus, replay_encoder(), grpc_store, IngestConfig(batch_size=200))
        assert report.accepted == len(corpus) == grpc_store.count()
        ids = stored_doc_ids(grpc_store)
        assert len(ids) == len(set(ids)) == len(corpus)
        queries = list(scifact_encoded.query_vectors.values())
        over_grpc = grpc_store.search_batch(queries, top_k=10, filter={"doc_id": [d["_id"] for d in corpus[:500]]})
        fused_grpc = grpc_store.hybrid_search_batch([HybridQuery(sparse=q) for q in queries[:20]], top_k=5)
        with QdrantStore(_server_config(qdrant_server_store, name)).open(create=False) as rest_store:
            over_rest = rest_store.search_batch(queries, top_k=10, filter={"doc_id": [d["_id"] for d in corpus[:500]]})
            fused_rest = rest_store.hybrid_search_batch([HybridQuery(sparse=q) for q in queries[:20]], top_k=5)
            assert rest_store.fetch_vectors(ids[:50]) == grpc_store.fetch_vectors(ids[:50])
        assert [[(h.id, h.score) for h in hits] for hits in over_grpc] == [[(h.id, h.score) for h in hits] for hits in over_rest]
        assert any(over_grpc)
        assert [[(h.id, h.score) for h in hits] for hits in fused_grpc] == [[(h.id, h.score) for h in hits] for hits in fused_rest]
        grpc_store.drop()


@pytest.fixture(scope="module", params=["server", "edge"])
def datatype_backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., QdrantConfig]]:
    if request.param == "server":
        live = request.getfixturevalue("qdrant_server_store")
        yield lambda name, **options: _server_config(live, name, **options)
    else:
        record_qdrant_backend("edge")
        folder = tmp_path_factory.mktemp("datatypes")
        yield lambda name, **options: QdrantConfig(path=str(folder), collection=name, **options)


def _ranking(store: QdrantStore, corpus: EncodedCorpus) -> dict[str, list[tuple[str, float]]]:
    results = store.search_batch(corpus.query_vectors, top_k=10)
    return {qid: [(h.id, h.score) for h in hits] for qid, hits in zip(corpus.query_ids, results)}


@pytest.fixture(scope="module")
def exact_ndcg(scifact_full: EncodedCorpus) -> float:
    scores = (to_csr(scifact_full.query_vectors, 30522).astype(np.float64) @ to_csr(scifact_full.doc_vectors, 30522).astype(np.float64).T).toarray()
    ranking = {}
    for row, qid in enumerate(scifact_full.query_ids):
        top = np.argsort(-scores[row], kind="stable")[:10]
        ranking[qid] = [(scifact_full.doc_ids[i], float(scores[row, i])) for i in top if scores[row, i] > 0]
    return retrieval_metrics(ranking, {q: set(r) for q, r in scifact_full.qrels.items()})["ndcg@10"]


@pytest.mark.slow
@pytest.mark.parametrize("datatype", ["float32", "float16", "uint8"])
@pytest.mark.parametrize("on_disk", [False, True], ids=["ram", "disk"])
def test_sparse_datatype_ndcg_against_exact(
    datatype_backend: Callable[..., QdrantConfig], scifact_full: EncodedCorpus, exact_ndcg: float, datatype: str, on_disk: bool
) -> None:
    """SciFact (5,183 documents, 300 queries) through the store per datatype and index placement."""
    config = datatype_backend(f"dtype-{datatype}-{uuid.uuid4().hex[:6]}", datatype=datatype, on_disk=on_disk)
    with load(QdrantStore(config).open(), scifact_full) as store:
        ndcg = retrieval_metrics(_ranking(store, scifact_full), {q: set(r) for q, r in scifact_full.qrels.items()})["ndcg@10"]
        if datatype != "float32":  # the stored vectors stay float32; only the index is quantised
            sample = scifact_full.doc_ids[:20]
            assert store.fetch_vectors(sample) == dict(zip(sample, scifact_full.doc_vectors[:20]))
        store.drop()
    print(f"{config.backend} {datatype} {'on disk' if on_disk else 'in RAM'}: nDCG@10 {ndcg:.4f} exact {exact_ndcg:.4f} delta {ndcg - exact_ndcg:+.4f}")
    assert abs(ndcg - exact_ndcg) <= NDCG_BOUND[datatype]


def test_local_mode_ignores_the_datatype(scifact_encoded: Any, replay_encoder: Callable[[], ReplayEncoder]) -> None:
    """Local mode (a pure-Python scan) accepts the setting but scores exactly: it differs from the engines on purpose."""
    record_qdrant_backend("local")
    target = QdrantTarget("local")
    try:
        exact_store = target.new_store("exact")
        uint8_store = target.new_store("uint8", datatype="uint8")
        corpus = scifact_encoded.slice.corpus[:300]
        for store in (exact_store, uint8_store):
            ingest(corpus, replay_encoder(), store, IngestConfig(batch_size=100))
        queries = list(scifact_encoded.query_vectors.values())[:30]
        a, b = exact_store.search_batch(queries, top_k=5), uint8_store.search_batch(queries, top_k=5)
        assert [[(h.id, h.score) for h in hits] for hits in a] == [[(h.id, h.score) for h in hits] for hits in b]
    finally:
        target.close()


def test_on_disk_embedded_index_survives_reopening(tmp_path: Path, scifact_encoded: Any, replay_encoder: Callable[[], ReplayEncoder]) -> None:
    config = QdrantConfig(path=str(tmp_path), collection="ondisk", on_disk=True, datatype="float16")
    corpus = scifact_encoded.slice.corpus[:200]
    query = scifact_encoded.doc_vectors[corpus[3]["_id"]]
    with QdrantStore(config) as store:
        ingest(corpus, replay_encoder(), store, IngestConfig(batch_size=64))
        before = store.search_batch([query], top_k=5)[0]
    with QdrantStore(QdrantConfig(path=str(tmp_path), collection="ondisk")).open(create=False) as again:
        assert again.search_batch([query], top_k=5)[0] == before and before[0].id == corpus[3]["_id"]


def test_embedded_engine_optimizes_during_a_large_ingestion(
    tmp_path: Path, scifact_encoded: Any, replay_encoder: Callable[[], ReplayEncoder], caplog: pytest.LogCaptureFixture
) -> None:
    """The embedded engine only optimizes and flushes when asked: a big ingestion must not grow one in-RAM
    appendable segment and the WAL to the whole corpus (13.7 GB of RSS at a million points), so the store does
    both every N points. The periodically optimized collection answers exactly as one optimized once at the end."""
    corpus = scifact_encoded.slice.corpus[:1200]
    queries = list(scifact_encoded.query_vectors.values())[:40]
    results: dict[int | None, Any] = {}
    optimizations: dict[int | None, int] = {}
    for every in (None, 400):
        caplog.clear()
        config = QdrantConfig(path=str(tmp_path / str(every)), collection="big", embedded_optimize_every=every)
        with caplog.at_level(logging.DEBUG, logger="splade_connectors.qdrant.edge_engine"), QdrantStore(config) as store:
            ingest(corpus, replay_encoder(), store, IngestConfig(batch_size=100))
            optimizations[every] = sum(r.getMessage().startswith("optimized ") for r in caplog.records)
            assert store.count() == len(corpus)
            results[every] = store.search_batch(queries, top_k=10)
    assert optimizations[None] == 1  # in finish_ingest only
    assert optimizations[400] >= 3  # at least twice during the ingestion, then in finish_ingest
    for periodic, once in zip(results[400], results[None]):  # equal up to float32 summation order
        assert [h.id for h in periodic] == [h.id for h in once]
        assert [h.score for h in periodic] == pytest.approx([h.score for h in once], rel=1e-5)
