"""Passage-level retrieval on every store: one point per window, results grouped per document with the best passage.

The same checks run on the Qdrant server, the embedded Qdrant engine, qdrant-client's local mode and
OpenSearch: each document at most once, ranked by its best passage's score (the exact maximum over its
passages' dot products, computed here), spans that point at the passage text, re-ingestion without
duplicates (and without the passages a shorter document no longer has), skip-unchanged and
delete-missing per document, the mode recorded in the collection, and evaluation scoring documents.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from splade_connectors.errors import ConfigError, EncodingMismatchError
from splade_connectors.eval.backends import ExactBackend, StoreBackend, store_factory
from splade_connectors.eval.datasets import RetrievalDataset
from splade_connectors.eval.runner import evaluate
from splade_connectors.ingest import IngestConfig, ingest
from splade_connectors.passages import passage_point_id
from splade_connectors.records import point_id
from splade_connectors.registry import open_store, store_config
from splade_connectors.search import HybridOptions, search
from splade_connectors.store import SparseStore
from trainer.encoder import EncodeOptions, SpladeEncoder
from trainer.model import SpladeModel

pytestmark = pytest.mark.live

WINDOW = 32  # tokens per passage: the documents below have several
FILLER = "The telescope recorded faint light from distant galaxies across the night sky. "


def _corpus() -> list[dict[str, Any]]:
    return [
        {"_id": "long", "title": "Astronomy notes", "text": FILLER * 8 + "Cornelius was a centurion of the Italian band in Caesarea. " + FILLER * 3,
         "topic": "history"},
        {"_id": "short", "title": "Acts", "text": "Peter met Cornelius, a centurion, in Caesarea.", "topic": "history"},
        {"_id": "onions", "title": "Cooking", "text": "Cutting onions releases a gas that makes eyes water. " * 6, "topic": "cooking"},
        {"_id": "tariffs", "title": "Trade", "text": "Tariffs are taxes on imports paid by the importer. " * 5, "topic": "economics"},
    ]


@pytest.fixture(scope="module")
def passage_encoder(splade_model: SpladeModel) -> SpladeEncoder:
    return SpladeEncoder(splade_model, device="cpu", options=EncodeOptions(chunk_tokens=WINDOW), query_options=EncodeOptions())


def _config(kind: str, request: pytest.FixtureRequest, name: str) -> Any:
    if kind == "qdrant-server":
        server = request.getfixturevalue("qdrant_server_store")
        return store_config("qdrant", url=server.url, api_key=server.api_key, grpc_port=server.grpc_port, collection=name)
    if kind == "qdrant-embedded":
        return store_config("qdrant", collection=name)
    if kind == "qdrant-local":
        return store_config("qdrant", collection=name, local_mode=True)
    live = request.getfixturevalue("opensearch_store")
    return store_config(
        "opensearch", hosts=[live.url], username=live.username, password=live.password,
        verify_certs=live.verify_certs, index=name, replicas=0,
    )


@pytest.fixture(params=["qdrant-server", "qdrant-embedded", "qdrant-local", "opensearch"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(kind: str, request: pytest.FixtureRequest, passage_encoder: SpladeEncoder) -> Iterator[SparseStore]:
    config = _config(kind, request, f"passages-{uuid.uuid4().hex[:8]}")
    opened = open_store(config, vocabulary=passage_encoder.model.id_to_token())
    try:
        yield opened
    finally:
        opened.drop()
        opened.close()


def _points(store: Any) -> int:
    """Every point/document the store holds (passages included): what `count()` does not show."""
    if store.kind == "opensearch":
        store.refresh()
        return int(store.client.count(index=store.name)["count"])
    return int(store.engine.count())


def _expected(encoder: SpladeEncoder, docs: list[dict[str, Any]], query: str) -> list[tuple[str, float]]:
    """Documents by their best passage's exact dot product with the query (positive scores only), best first."""
    vector = encoder.encode_queries([query])[0]
    weights = dict(zip(vector.indices.tolist(), vector.values.tolist()))
    best = {}
    for doc in docs:
        windows = encoder.encode_passages([f"{doc['title']}\n{doc['text']}"])[0]
        scores = [sum(weights.get(int(i), 0.0) * float(v) for i, v in zip(w.vector.indices, w.vector.values)) for w in windows]
        if max(scores) > 0:
            best[doc["_id"]] = max(scores)
    return sorted(best.items(), key=lambda item: -item[1])


def test_passages_are_grouped_per_document_with_their_spans(store: SparseStore, passage_encoder: SpladeEncoder) -> None:
    docs = _corpus()
    report = ingest(docs, passage_encoder, store, IngestConfig(passages=True, batch_size=2))
    windows = [len(passage_encoder.encode_passages([f"{d['title']}\n{d['text']}"])[0]) for d in docs]
    assert report.accepted == 4 and store.count() == 4  # documents, not passages
    assert windows[0] >= 4 and _points(store) == sum(windows)
    assert sorted(i for batch in store.iter_doc_ids() for i in batch) == sorted(d["_id"] for d in docs)

    query = "who was cornelius the centurion in caesarea"
    (hits,) = search(store, passage_encoder, [query], top_k=4)
    expected = _expected(passage_encoder, docs, query)
    assert [h.id for h in hits] == [doc_id for doc_id, _ in expected]  # each document once, by its best passage
    rel = 1e-2 if store.kind == "opensearch" else 1e-4  # rank_features keeps ~9 significant bits of document weights
    np.testing.assert_allclose([h.score for h in hits], [score for _, score in expected], rtol=rel)
    texts = {d["_id"]: d["text"] for d in docs}
    for hit in hits:
        assert hit.passage is not None
        assert texts[hit.id][hit.passage.start : hit.passage.end] == hit.passage.text
        assert hit.payload["title"] and hit.payload["metadata"]["topic"]  # the document's other fields are kept
        assert not any(key.startswith("passage_") for key in hit.payload)
    long_hit = next(h for h in hits if h.id == "long")
    assert long_hit.passage is not None and long_hit.passage.index > 0
    assert "Cornelius" in long_hit.passage.text and len(long_hit.passage.text) < len(texts["long"]) / 3

    (filtered,) = search(store, passage_encoder, [query], top_k=4, filter={"topic": "history"})  # filters still apply
    assert [h.id for h in filtered] == [doc_id for doc_id, _ in expected if doc_id in ("long", "short")]
    (top1,) = search(store, passage_encoder, [query], top_k=1, passages=True)
    assert [h.id for h in top1] == [expected[0][0]]


def test_reingestion_is_idempotent_and_drops_stale_passages(store: SparseStore, passage_encoder: SpladeEncoder) -> None:
    docs = _corpus()
    ingest(docs, passage_encoder, store, IngestConfig(passages=True))
    points = _points(store)
    again = ingest(docs, passage_encoder, store, IngestConfig(passages=True, skip_unchanged=True))
    assert again.unchanged == 4 and again.accepted == 0  # per document
    ingest(docs, passage_encoder, store, IngestConfig(passages=True))  # rewritten: same ids, no duplicates
    assert _points(store) == points and store.count() == 4

    shorter = [dict(docs[0], text="Cornelius was a centurion."), *docs[1:]]  # one window instead of several
    report = ingest(shorter, passage_encoder, store, IngestConfig(passages=True, skip_unchanged=True))
    assert report.updated == 1 and report.unchanged == 3
    old_windows = len(passage_encoder.encode_passages([f"{docs[0]['title']}\n{docs[0]['text']}"])[0])
    assert _points(store) == points - (old_windows - 1)
    (hits,) = search(store, passage_encoder, ["telescope galaxies night sky"], top_k=4)
    long_hits = [h for h in hits if h.id == "long"]  # its title still matches; its removed passages are gone
    assert all(h.passage is not None and (h.passage.index, h.passage.text) == (0, "Cornelius was a centurion.") for h in long_hits)
    assert store.fetch_payloads(["long"], ["passage_count"]) == {"long": {"passage_count": 1}}

    report = ingest(shorter[1:], passage_encoder, store, IngestConfig(passages=True, skip_unchanged=True, delete_missing=True))
    assert report.deleted == 1 and store.count() == 3
    assert _points(store) == points - old_windows


def test_the_collection_records_the_passage_mode(store: SparseStore, passage_encoder: SpladeEncoder) -> None:
    docs = _corpus()
    ingest(docs, passage_encoder, store, IngestConfig(passages=True))
    with pytest.raises(EncodingMismatchError, match="passages"):  # whole documents never mix with passages
        ingest(docs, passage_encoder, store, IngestConfig())
    with pytest.raises(ConfigError, match="holds passages"):
        search(store, passage_encoder, ["cornelius"], passages=False)
    with pytest.raises(ConfigError, match="explain"):
        search(store, passage_encoder, ["cornelius"], explain=True)
    with pytest.raises(ConfigError, match="hybrid search"):
        search(store, passage_encoder, ["cornelius"], hybrid=HybridOptions())
    if store.kind == "opensearch":
        with pytest.raises(ConfigError, match="two-phase"):
            store.search_batch(passage_encoder.encode_queries(["cornelius centurion"]), two_phase="ratio=0.5")  # type: ignore[call-arg]
    else:  # two-phase on Qdrant keeps every term in phase one here: the exact grouped result
        vectors = passage_encoder.encode_queries(["cornelius centurion"])
        exact = store.search_batch(vectors, top_k=3)
        phased = store.search_batch(vectors, top_k=3, two_phase="count=1000,expansion=50")  # type: ignore[call-arg]
        assert [(h.id, h.passage) for h in phased[0]] == [(h.id, h.passage) for h in exact[0]]


def test_document_collections_refuse_passage_searches(store: SparseStore, passage_encoder: SpladeEncoder) -> None:
    ingest(_corpus(), passage_encoder, store, IngestConfig())
    with pytest.raises(ConfigError, match="not passages"):
        search(store, passage_encoder, ["cornelius"], passages=True)
    (hits,) = search(store, passage_encoder, ["cornelius"], top_k=2)
    assert hits and all(h.passage is None for h in hits)


def test_passage_point_ids_are_deterministic() -> None:
    assert passage_point_id("d1", 0) == point_id("d1")  # the document's own id: reads by document id find it
    assert passage_point_id("d1", 1) == passage_point_id("d1", 1) != passage_point_id("d1", 2)
    assert passage_point_id("d1", 1) != passage_point_id("d2", 1)


def test_eval_scores_documents_through_the_stores(request: pytest.FixtureRequest, passage_encoder: SpladeEncoder, tmp_path: Path) -> None:
    docs = _corpus()
    dataset = RetrievalDataset(
        name="passages", corpus={d["_id"]: {"title": d["title"], "text": d["text"]} for d in docs},
        queries={"q1": "who was cornelius the centurion", "q2": "why do onions make eyes water"},
        qrels={"q1": {"long": 1}, "q2": {"onions": 1}},
    )
    opensearch = request.getfixturevalue("opensearch_store")
    backends = [
        ExactBackend(),
        StoreBackend("qdrant", store_factory("qdrant", {})),
        StoreBackend("opensearch", store_factory("opensearch", {"url": opensearch.url, "username": opensearch.username,
                                                                "password": opensearch.password})),
    ]
    report = evaluate(passage_encoder, [dataset], backends, passages=True, keep_rankings=True)
    assert report.datasets["passages"]["passages"] > len(docs)
    rankings = report.rankings["passages"]
    for name in ("exact", "qdrant", "opensearch"):
        for qid, hits in rankings[name].items():
            ids = [doc_id for doc_id, score in hits if score > 0]
            assert len(ids) == len(set(ids)) and set(ids) <= set(dataset.corpus), (name, qid)  # documents, once each
        assert report.results["passages"][name]["ndcg@10"] == pytest.approx(report.results["passages"]["exact"]["ndcg@10"], abs=1e-9)
    assert [d for d, _ in rankings["qdrant"]["q1"]][:2] == [d for d, _ in rankings["exact"]["q1"]][:2]
