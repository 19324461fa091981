"""Exact ranking by sparse dot product: the reference every store is compared with.

Scores accumulate in float64 (scipy CSR matmul); each query's top k are ordered by (-score, doc id),
sentence-transformers' total order, with zero scores included so that every query gets k documents
(as sentence-transformers' evaluator, which scores the whole corpus, sees them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from trainer.sparse import SparseVector, to_csr

Rankings = dict[str, list[tuple[str, float]]]


def _top_k_rows(scores: np.ndarray, doc_rank: np.ndarray, top_k: int) -> list[np.ndarray]:
    """Per row, the column indices of the top_k scores, ties broken by ascending `doc_rank`."""
    n = scores.shape[1]
    k = min(top_k, n)
    out = []
    for row in scores:
        if k < n:
            threshold = np.partition(row, n - k)[n - k]
            candidates = np.flatnonzero(row >= threshold)
        else:
            candidates = np.arange(n)
        order = np.lexsort((doc_rank[candidates], -row[candidates]))[:k]
        out.append(candidates[order])
    return out


def exact_rankings(
    query_ids: Sequence[str],
    query_vectors: Sequence[SparseVector],
    doc_ids: Sequence[str],
    doc_vectors: Sequence[SparseVector],
    *,
    top_k: int,
    dim: int,
    chunk: int = 256,
    progress: Callable[[int], None] | None = None,
) -> Rankings:
    """query id -> its top_k (doc id, score), best first, ties by ascending doc id; `progress` gets query counts."""
    if not doc_ids:
        return {qid: [] for qid in query_ids}
    docs = to_csr(doc_vectors, dim).astype(np.float64).T.tocsc()
    doc_rank = np.empty(len(doc_ids), dtype=np.int64)
    doc_rank[np.argsort(np.array(doc_ids, dtype=object), kind="stable")] = np.arange(len(doc_ids))
    rankings: Rankings = {}
    for start in range(0, len(query_ids), chunk):
        qids = query_ids[start : start + chunk]
        queries = to_csr(query_vectors[start : start + chunk], dim).astype(np.float64)
        scores = np.asarray((queries @ docs).todense())
        for qid, row, cols in zip(qids, scores, _top_k_rows(scores, doc_rank, top_k)):
            rankings[qid] = [(doc_ids[c], float(row[c])) for c in cols]
        if progress:
            progress(len(qids))
    return rankings
