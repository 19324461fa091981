"""SciFact slice in a live OpenSearch: exact-dot-product parity, nDCG@10, hybrid RRF by hand.

Tolerance: rank_features truncates each stored document weight to 9 significant bits, so a stored
weight is in (w * (1 - 2**-8), w] and, since query weights are exact positive boosts, the returned
score S' of a document with exact score S is in [S * (1 - 2**-8), S], widened by FLOAT_REL for
float32 products and sums. Two documents may swap only if their exact scores are that close.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from splade_connectors.opensearch import STORAGE_RELATIVE_ERROR, OpenSearchStore
from splade_connectors.search import HybridOptions, search
from trainer.encoder import SpladeEncoder
from trainer.sparse import to_csr

pytestmark = pytest.mark.live

DELTA = STORAGE_RELATIVE_ERROR  # 2**-8 ~ 0.39 %
FLOAT_REL = 2e-5
TOP = 10


def _bounds(exact: float) -> tuple[float, float]:
    """Interval the stored-precision score of a document with this exact score must fall in."""
    return exact * (1 - DELTA - FLOAT_REL) - 1e-6, exact * (1 + FLOAT_REL) + 1e-6


def _exact_scores(os_scifact: Any) -> tuple[list[str], list[str], np.ndarray]:
    doc_ids = list(os_scifact.doc_vectors)
    qids = list(os_scifact.query_vectors)
    docs = to_csr([os_scifact.doc_vectors[d] for d in doc_ids], 30522).astype(np.float64)
    queries = to_csr([os_scifact.query_vectors[q] for q in qids], 30522).astype(np.float64)
    return doc_ids, qids, np.asarray((queries @ docs.T).todense())


def _ndcg10(ranked: list[str], relevant: dict[str, int]) -> float:
    dcg = sum(1 / math.log2(r + 2) for r, d in enumerate(ranked[:TOP]) if relevant.get(d, 0) > 0)
    ideal = sum(1 / math.log2(r + 2) for r in range(min(TOP, sum(1 for s in relevant.values() if s > 0))))
    return dcg / ideal if ideal else 0.0


def test_top10_matches_exact_dot_product(scifact_store: tuple[OpenSearchStore, Any], os_scifact: Any) -> None:
    store, report = scifact_store
    corpus_size = len(os_scifact.slice.corpus)
    assert report.accepted == corpus_size and store.count() == corpus_size
    doc_ids, qids, scores = _exact_scores(os_scifact)
    results = store.search_batch([os_scifact.query_vectors[q] for q in qids], top_k=TOP)
    identical, swapped, ndcg_os, ndcg_exact, worst = 0, 0, [], [], 0.0
    for row, (qid, hits) in enumerate(zip(qids, results)):
        exact = {doc_ids[j]: float(scores[row, j]) for j in np.flatnonzero(scores[row] > 0)}
        order = sorted(exact, key=lambda d: -exact[d])[:TOP]
        got = [h.id for h in hits]
        assert len(got) == len(order), qid
        for hit in hits:  # every score within the quantisation bounds of its exact score
            low, high = _bounds(exact[hit.id])
            assert low <= hit.score <= high, (qid, hit.id, hit.score, exact[hit.id])
            worst = max(worst, (exact[hit.id] - hit.score) / exact[hit.id])
        if got == order:
            identical += 1
        else:
            swapped += 1
            cutoff = hits[-1].score  # lowest returned (stored-precision) score
            for doc in set(order) - set(got):  # left out: its stored score could be below the cutoff
                assert _bounds(exact[doc])[0] <= cutoff, (qid, doc, exact[doc], cutoff)
            for doc in set(got) - set(order):  # let in: it could beat the exact 10th
                assert _bounds(exact[doc])[1] >= _bounds(exact[order[-1]])[0], (qid, doc)
            for a, b in zip(got, got[1:]):  # out-of-order pairs are near-ties
                assert _bounds(exact[a])[1] >= _bounds(exact[b])[0], (qid, a, b)
        relevant = os_scifact.slice.qrels[qid]
        ndcg_os.append(_ndcg10(got, relevant))
        ndcg_exact.append(_ndcg10(order, relevant))
    mean_os, mean_exact = float(np.mean(ndcg_os)), float(np.mean(ndcg_exact))
    print(
        f"\n[opensearch parity] {len(qids)} queries: identical top-10 {identical}, near-tie swaps {swapped}; "
        f"max relative score error {worst:.5f} (bound {DELTA:.5f}); "
        f"nDCG@10 OpenSearch {mean_os:.5f} vs exact {mean_exact:.5f} (diff {mean_os - mean_exact:+.5f})"
    )
    assert abs(mean_os - mean_exact) < 0.005
    assert identical >= 0.9 * len(qids)


def test_fetch_vectors_and_explained_terms(scifact_store: tuple[OpenSearchStore, Any], os_scifact: Any) -> None:
    store, _ = scifact_store
    ids = list(os_scifact.doc_vectors)[:50]
    fetched = store.fetch_vectors(ids + ["no-such-doc"])
    assert set(fetched) == set(ids)
    assert all(fetched[d] == os_scifact.doc_vectors[d] for d in ids)
    qid = next(iter(os_scifact.query_vectors))
    query = os_scifact.query_vectors[qid]
    (hits,) = store.search_batch([query], top_k=3, with_terms=True)
    top = hits[0]
    assert top.terms and "splade" not in top.payload and top.payload["doc_id"] == top.id
    assert sum(t.contribution for t in top.terms) <= top.score / (1 - DELTA - FLOAT_REL)
    assert top.terms[0].token == store.vocabulary[top.terms[0].token_id]


def test_hybrid_rrf_matches_hand_computation(
    scifact_store: tuple[OpenSearchStore, Any], os_scifact: Any, encoder: SpladeEncoder
) -> None:
    store, _ = scifact_store
    texts = [os_scifact.slice.queries[q] for q in list(os_scifact.slice.queries)[:5]]
    vectors = encoder.encode_queries(texts)
    sparse = store.search_batch(vectors, top_k=20)
    bm25 = store.search_text_batch(texts, top_k=20)
    fused = search(store, encoder, texts, top_k=10, explain=True, hybrid=HybridOptions(candidates=20, fusion="rrf", rrf_k=60))
    for s_hits, b_hits, got in zip(sparse, bm25, fused):
        hand: dict[str, float] = {}
        for hits in (s_hits, b_hits):
            for rank, hit in enumerate(hits, start=1):
                hand[hit.id] = hand.get(hit.id, 0.0) + 1.0 / (60 + rank)
        best = sorted(hand.values(), reverse=True)[:10]
        assert [h.score for h in got] == pytest.approx(best)
        assert all(h.score == pytest.approx(hand[h.id]) for h in got)
        assert all(h.terms is not None for h in got)
        for hit in got:  # explained terms: shared tokens, query weight x stored weight
            if hit.terms:
                assert hit.terms[0].contribution >= hit.terms[-1].contribution
    linear = search(store, encoder, texts[:1], top_k=5, hybrid=HybridOptions(candidates=20, fusion="linear", weights=(0.5, 0.5)))
    assert len(linear[0]) == 5 and all(0 <= h.score <= 1.0 + 1e-9 for h in linear[0])
