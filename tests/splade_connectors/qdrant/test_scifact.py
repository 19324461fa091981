"""The SciFact slice ingested through the real pipeline: exact top-10, vectors, explain, re-ingest."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from splade_connectors.explain import explain_ids
from splade_connectors.ingest import IngestConfig, ingest
from splade_connectors.qdrant import QdrantStore
from splade_connectors.search import explain_results
from tests.splade_connectors.qdrant.conftest import QdrantTarget, ReplayEncoder
from trainer.sparse import to_csr

pytestmark = pytest.mark.live

TOP_K = 10
REL = 1e-5


@pytest.fixture(scope="module")
def scifact_store(qdrant_target: QdrantTarget, scifact_encoded: Any, replay_encoder: Callable[[], ReplayEncoder]) -> QdrantStore:
    store = qdrant_target.new_store("scifact")
    report = ingest(scifact_encoded.slice.corpus, replay_encoder(), store, IngestConfig(batch_size=128))
    assert report.accepted == len(scifact_encoded.slice.corpus) and not report.invalid
    return store


@pytest.fixture(scope="module")
def exact_scores(scifact_encoded: Any) -> tuple[list[str], list[str], np.ndarray]:
    """(query ids, doc ids, float64 dot products query x doc) computed in memory."""
    doc_ids = list(scifact_encoded.doc_vectors)
    query_ids = list(scifact_encoded.query_vectors)
    docs = to_csr([scifact_encoded.doc_vectors[d] for d in doc_ids], 30522).astype(np.float64)
    queries = to_csr([scifact_encoded.query_vectors[q] for q in query_ids], 30522).astype(np.float64)
    return query_ids, doc_ids, (queries @ docs.T).toarray()


def test_count_is_exact(scifact_store: QdrantStore, scifact_encoded: Any) -> None:
    assert scifact_store.count() == len(scifact_encoded.slice.corpus)


def test_top10_equals_exact_dot_product(
    scifact_store: QdrantStore, scifact_encoded: Any, exact_scores: tuple[list[str], list[str], np.ndarray]
) -> None:
    query_ids, doc_ids, scores = exact_scores
    column = {d: i for i, d in enumerate(doc_ids)}
    results = scifact_store.search_batch([scifact_encoded.query_vectors[q] for q in query_ids], top_k=TOP_K)
    assert len(results) == len(query_ids) >= 250
    for row, (qid, hits) in enumerate(zip(query_ids, results)):
        exact = scores[row]
        positive = np.sort(exact[exact > 0])[::-1][:TOP_K]
        assert len(hits) == len(positive), qid
        got = np.array([h.score for h in hits])
        np.testing.assert_allclose(got, positive, rtol=REL, atol=1e-6, err_msg=qid)
        for hit in hits:  # each hit's own score is its exact dot product ...
            assert hit.score == pytest.approx(exact[column[hit.id]], rel=REL, abs=1e-6), (qid, hit.id)
        boundary = positive[-1] * (1 + 1e-4) if len(positive) == TOP_K else 0.0
        must_have = {doc_ids[i] for i in np.flatnonzero(exact > boundary)}
        assert must_have <= {h.id for h in hits}, qid  # ... and nothing above the 10th score (ties aside) is missing
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert all(h.payload["doc_id"] == h.id for h in hits)


def test_fetch_vectors_round_trips(scifact_store: QdrantStore, scifact_encoded: Any) -> None:
    ids = list(scifact_encoded.doc_vectors)[:300] + ["no-such-doc"]
    fetched = scifact_store.fetch_vectors(ids)
    assert set(fetched) == set(ids[:300])
    for doc_id, vector in fetched.items():
        assert vector == scifact_encoded.doc_vectors[doc_id]


def test_explain_terms_are_the_vectors_weights(scifact_store: QdrantStore, scifact_encoded: Any, encoder: Any) -> None:
    vocab = encoder.model.id_to_token()
    qid = next(iter(scifact_encoded.query_vectors))
    query = scifact_encoded.query_vectors[qid]
    hits = explain_results(scifact_store, [query], scifact_store.search_batch([query], top_k=5), vocab, limit=None)[0]
    assert hits and all(h.terms for h in hits)
    q = query.as_dict()
    for hit in hits:
        d = scifact_encoded.doc_vectors[hit.id].as_dict()
        assert hit.terms is not None
        assert {t.token_id for t in hit.terms} == set(q) & set(d)
        for term in hit.terms:
            assert term.token == vocab[term.token_id]
            assert term.query_weight == q[term.token_id] and term.document_weight == d[term.token_id]
        contributions = [t.contribution for t in hit.terms]
        assert contributions == sorted(contributions, reverse=True)
        assert sum(contributions) == pytest.approx(hit.score, rel=1e-4)
    top3 = explain_ids(scifact_store, query, [h.id for h in hits], vocab, limit=3)
    assert set(top3) == {h.id for h in hits} and all(len(v) <= 3 for v in top3.values())
    assert top3[hits[0].id] == hits[0].terms[:3]


def test_reingest_keeps_count_and_updates_payload(
    qdrant_target: QdrantTarget, scifact_encoded: Any, replay_encoder: Callable[[], ReplayEncoder]
) -> None:
    corpus = scifact_encoded.slice.corpus[:100]
    store = qdrant_target.new_store("reingest")
    ingest(corpus, replay_encoder(), store, IngestConfig(batch_size=32))
    assert store.count() == 100
    changed = [{**doc, "revision": 2} for doc in corpus]
    encoder = replay_encoder()
    report = ingest(changed, encoder, store, IngestConfig(batch_size=32))
    assert report.accepted == 100 and store.count() == 100
    hits = store.search_batch([scifact_encoded.doc_vectors[corpus[0]["_id"]]], top_k=100)[0]
    assert len(hits) == len({h.id for h in hits})
    assert all(h.payload["metadata"] == {"revision": 2} for h in hits)
