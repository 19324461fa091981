"""Two-phase queries on the live SciFact slice: exact scores for returned hits, recall against exact, explain, hybrid."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from splade_connectors.explain import explain_ids
from splade_connectors.opensearch import STORAGE_RELATIVE_ERROR, OpenSearchStore, TwoPhase
from splade_connectors.search import HybridOptions, search
from trainer.encoder import SpladeEncoder

pytestmark = pytest.mark.live

SETTINGS = [TwoPhase(ratio=0.4, expansion=5), TwoPhase(ratio=0.2, expansion=10), TwoPhase(count=8, expansion=20)]


def _queries(os_scifact: Any) -> list[Any]:
    return list(os_scifact.query_vectors.values())


def _exact_scores_of(store: OpenSearchStore, query: Any, doc_ids: list[str]) -> dict[str, float]:
    """The exact query's scores of these documents (the exact query restricted to their ids)."""
    (hits,) = store.search_batch([query], top_k=len(doc_ids), filter={"doc_id": doc_ids}, two_phase=None, payload_fields=[])
    return {h.id: h.score for h in hits}


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.describe())
def test_returned_hits_carry_the_exact_query_scores(
    scifact_store: tuple[OpenSearchStore, Any], os_scifact: Any, setting: TwoPhase
) -> None:
    store, _ = scifact_store
    queries = _queries(os_scifact)
    exact = store.search_batch(queries, top_k=10, two_phase=None, payload_fields=[])
    phased = store.search_batch(queries, top_k=10, two_phase=setting, payload_fields=[])
    recalls, rescored = [], 0
    for query, exact_hits, hits in zip(queries, exact, phased):
        assert len(hits) == len(exact_hits)
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)
        truth = _exact_scores_of(store, query, [h.id for h in hits])
        for hit in hits:  # the rescored total is the exact query's score of that document
            assert hit.score == pytest.approx(truth[hit.id], rel=1e-5, abs=1e-6), (hit.id, setting)
        rescored += setting.split(query)[1].nnz > 0
        recalls.append(len({h.id for h in hits} & {h.id for h in exact_hits}) / len(exact_hits))
    recall = float(np.mean(recalls))
    head_terms = np.mean([setting.split(q)[0].nnz for q in queries])
    print(f"\n[two-phase {setting.describe()}] recall@10 vs exact {recall:.4f} over {len(queries)} queries; "
          f"phase one keeps {head_terms:.1f} of {np.mean([q.nnz for q in queries]):.1f} terms; {rescored} queries rescored")
    assert rescored > 0.9 * len(queries)  # the setting really splits the queries


@pytest.mark.parametrize("setting", [TwoPhase(ratio=0.0), TwoPhase(count=10_000)], ids=["ratio=0", "count=all"])
def test_keeping_every_term_in_phase_one_is_the_exact_query(
    scifact_store: tuple[OpenSearchStore, Any], os_scifact: Any, setting: TwoPhase
) -> None:
    store, _ = scifact_store
    queries = _queries(os_scifact)
    exact = store.search_batch(queries, top_k=10, two_phase=None)
    phased = store.search_batch(queries, top_k=10, two_phase=setting)
    assert [[(h.id, h.score) for h in hits] for hits in phased] == [[(h.id, h.score) for h in hits] for hits in exact]


def test_two_phase_scores_within_storage_precision_of_numpy(scifact_store: tuple[OpenSearchStore, Any], os_scifact: Any) -> None:
    store, _ = scifact_store
    qids = list(os_scifact.query_vectors)[:50]
    results = store.search_batch([os_scifact.query_vectors[q] for q in qids], top_k=10, two_phase=TwoPhase())
    for qid, hits in zip(qids, results):
        query = os_scifact.query_vectors[qid]
        for hit in hits:
            exact = query.dot(os_scifact.doc_vectors[hit.id])
            assert exact * (1 - STORAGE_RELATIVE_ERROR - 2e-5) - 1e-6 <= hit.score <= exact * (1 + 2e-5) + 1e-6


def test_explain_threshold_and_hybrid_work_with_two_phase(
    scifact_store: tuple[OpenSearchStore, Any], os_scifact: Any, encoder: SpladeEncoder, vocabulary: list[str]
) -> None:
    base, _ = scifact_store
    store = OpenSearchStore(base.config.model_copy(update={"two_phase": TwoPhase(ratio=0.4)}), vocabulary=vocabulary).open(create=False)
    texts = [os_scifact.slice.queries[q] for q in list(os_scifact.slice.queries)[:6]]
    vectors = encoder.encode_queries(texts)
    explained = search(store, encoder, texts, top_k=5, explain=True)
    plain = store.search_batch(vectors, top_k=5)
    explained_tail = 0
    for hits, reference, query in zip(explained, plain, vectors):
        assert [(h.id, h.score) for h in hits] == [(h.id, h.score) for h in reference]
        full = explain_ids(store, query, [h.id for h in hits], vocabulary, limit=None)
        for hit in hits:  # the shared terms, phase-one and phase-two terms alike, make up the exact score
            contributions = [t.contribution for t in full[hit.id]]
            assert sum(contributions) == pytest.approx(query.dot(os_scifact.doc_vectors[hit.id]), rel=1e-5)
            assert hit.score <= sum(contributions) * (1 + 2e-5) + 1e-6
            assert hit.terms and [t.token_id for t in hit.terms] == [t.token_id for t in full[hit.id][:5]]
            tail = set(TwoPhase(ratio=0.4).split(query)[1].indices.tolist())
            explained_tail += bool({t.token_id for t in full[hit.id]} & tail)
    assert explained_tail > 0  # terms only phase two scored show up in the explanation too
    threshold = plain[0][2].score
    (kept,) = store.search_batch(vectors[:1], top_k=5, score_threshold=threshold)
    assert [h.id for h in kept] == [h.id for h in plain[0] if h.score >= threshold]
    sparse = store.search_batch(vectors, top_k=20)
    bm25 = store.search_text_batch(texts, top_k=20)
    fused = search(store, encoder, texts, top_k=10, hybrid=HybridOptions(candidates=20, fusion="rrf", rrf_k=60))
    for s_hits, b_hits, got in zip(sparse, bm25, fused):
        hand: dict[str, float] = {}
        for hits in (s_hits, b_hits):
            for rank, hit in enumerate(hits, start=1):
                hand[hit.id] = hand.get(hit.id, 0.0) + 1.0 / (60 + rank)
        assert {h.id: h.score for h in got} == pytest.approx({h.id: hand[h.id] for h in got})
        assert sorted(hand.values(), reverse=True)[:10] == pytest.approx([h.score for h in got])
    store.close()
