"""Retrieval and sparsity metrics, defined exactly as sentence-transformers' `SparseInformationRetrievalEvaluator`.

The one set of metrics: the trainer's evaluation hook and `splade_connectors.eval` both use it.
Backend-independent: functions take rankings (query id -> list of (doc id, score)) and qrels.
- Rankings are re-sorted by (-score, doc id) before scoring, as sentence-transformers does.
- Averages run over the evaluated queries (those with >= 1 relevant document); a query with no
  ranking counts as retrieving nothing.
- accuracy@k: a relevant doc in the top k; precision@k = hits/k; recall@k = hits/|rel|;
  MRR@k: 1/rank of the first relevant doc; nDCG@k: binary gains, ideal DCG from |rel| ones;
  MAP@k: sum of precisions at relevant ranks / min(k, |rel|).
- Extra: graded nDCG@k (gain = grade, ideal from all positive grades; not in sentence-transformers).
- Sparsity: mean active dims of queries and documents, sparsity ratio = 1 - active/dim,
  avg_flops = sum_j p_q(j) * p_d(j) with p(j) the fraction of vectors active on term j.
- Across datasets (as `SparseNanoBEIREvaluator`): retrieval metrics are an unweighted mean;
  active dims / sparsity ratios are weighted by the number of queries / documents; avg_flops is
  computed from the pooled activation counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from trainer.errors import DatasetError
from trainer.sparse import SparseVector

Ranking = Mapping[str, Sequence[tuple[str, float]]]
Metrics = dict[str, float]

ACCURACY_AT_K = (1, 3, 5, 10)
PRECISION_RECALL_AT_K = (1, 3, 5, 10)
MRR_AT_K = (10,)
NDCG_AT_K = (10,)
MAP_AT_K = (100,)
GRADED_NDCG_AT_K = (10,)
SPARSITY_KEYS = ("query_active_dims", "query_sparsity_ratio", "corpus_active_dims", "corpus_sparsity_ratio", "avg_flops")


def required_depth() -> int:
    """How many hits per query the metrics look at (MAP@100 -> 100)."""
    return max((*ACCURACY_AT_K, *PRECISION_RECALL_AT_K, *MRR_AT_K, *NDCG_AT_K, *MAP_AT_K, *GRADED_NDCG_AT_K))


def _dcg(gains: Sequence[float], k: int) -> float:
    dcg: float = sum(gains[i] / np.log2(i + 2) for i in range(min(len(gains), k)))
    return dcg


def sorted_hits(hits: Sequence[tuple[str, float]]) -> list[tuple[str, float]]:
    """Best first, ties broken by ascending doc id (sentence-transformers' total order)."""
    return sorted(hits, key=lambda h: (-h[1], h[0]))


def retrieval_metrics(rankings: Ranking, relevant: Mapping[str, set[str]], query_ids: Sequence[str] | None = None) -> Metrics:
    """accuracy/precision/recall@{1,3,5,10}, mrr@10, ndcg@10, map@100 over `query_ids` (default: all with relevant docs)."""
    qids = [q for q in (query_ids if query_ids is not None else list(relevant)) if relevant.get(q)]
    if not qids:
        raise DatasetError("no query with a relevant document to evaluate (check the qrels and the relevance threshold)")
    hits_at = dict.fromkeys(ACCURACY_AT_K, 0)
    precision: dict[int, list[float]] = {k: [] for k in PRECISION_RECALL_AT_K}
    recall: dict[int, list[float]] = {k: [] for k in PRECISION_RECALL_AT_K}
    mrr = dict.fromkeys(MRR_AT_K, 0.0)
    ndcg: dict[int, list[float]] = {k: [] for k in NDCG_AT_K}
    ap: dict[int, list[float]] = {k: [] for k in MAP_AT_K}
    for qid in qids:
        ranked = [doc for doc, _ in sorted_hits(rankings.get(qid, ()))]
        rel = relevant[qid]
        flags = [1 if doc in rel else 0 for doc in ranked]
        for k in ACCURACY_AT_K:
            hits_at[k] += 1 if any(flags[:k]) else 0
        for k in PRECISION_RECALL_AT_K:
            correct = sum(flags[:k])
            precision[k].append(correct / k)
            recall[k].append(correct / len(rel))
        for k in MRR_AT_K:
            first = next((rank for rank, flag in enumerate(flags[:k]) if flag), None)
            mrr[k] += 0.0 if first is None else 1.0 / (first + 1)
        for k in NDCG_AT_K:
            ndcg[k].append(_dcg(flags[:k], k) / _dcg([1] * len(rel), k))
        for k in MAP_AT_K:
            correct, total = 0, 0.0
            for rank, flag in enumerate(flags[:k]):
                if flag:
                    correct += 1
                    total += correct / (rank + 1)
            ap[k].append(total / min(k, len(rel)))
    n = len(qids)
    out: Metrics = {}
    out.update({f"accuracy@{k}": hits_at[k] / n for k in ACCURACY_AT_K})
    for k in PRECISION_RECALL_AT_K:
        out[f"precision@{k}"] = float(np.mean(precision[k]))
        out[f"recall@{k}"] = float(np.mean(recall[k]))
    out.update({f"mrr@{k}": mrr[k] / n for k in MRR_AT_K})
    out.update({f"ndcg@{k}": float(np.mean(ndcg[k])) for k in NDCG_AT_K})
    out.update({f"map@{k}": float(np.mean(ap[k])) for k in MAP_AT_K})
    return out


def graded_ndcg(rankings: Ranking, qrels: Mapping[str, Mapping[str, int]], query_ids: Sequence[str] | None = None, k: int = 10) -> float:
    """Mean nDCG@k with gain = grade (linear, as trec_eval), over queries with a positive grade."""
    qids = [q for q in (query_ids if query_ids is not None else list(qrels)) if any(g > 0 for g in qrels.get(q, {}).values())]
    if not qids:
        raise DatasetError("no query with a positive grade to evaluate")
    values = []
    for qid in qids:
        grades = qrels[qid]
        gains = [max(grades.get(doc, 0), 0) for doc, _ in sorted_hits(rankings.get(qid, ()))[:k]]
        ideal = sorted((g for g in grades.values() if g > 0), reverse=True)
        values.append(_dcg(gains, k) / _dcg(ideal, k))
    return float(np.mean(values))


@dataclass(frozen=True)
class SparsityCounts:
    """What sparsity metrics need from a set of query and document vectors, poolable across datasets."""

    dim: int
    queries: int
    documents: int
    query_nnz: int
    document_nnz: int
    query_terms: np.ndarray  # per vocabulary id: number of queries active on it
    document_terms: np.ndarray

    @classmethod
    def of(cls, query_vectors: Sequence[SparseVector], document_vectors: Sequence[SparseVector], dim: int) -> SparsityCounts:
        return cls(
            dim=dim, queries=len(query_vectors), documents=len(document_vectors),
            query_nnz=sum(v.nnz for v in query_vectors), document_nnz=sum(v.nnz for v in document_vectors),
            query_terms=_term_counts(query_vectors, dim), document_terms=_term_counts(document_vectors, dim),
        )

    def metrics(self) -> Metrics:
        q_active = self.query_nnz / self.queries if self.queries else 0.0
        d_active = self.document_nnz / self.documents if self.documents else 0.0
        return {
            "query_active_dims": q_active,
            "query_sparsity_ratio": 1.0 - q_active / self.dim,
            "corpus_active_dims": d_active,
            "corpus_sparsity_ratio": 1.0 - d_active / self.dim,
            "avg_flops": self.avg_flops(),
        }

    def avg_flops(self) -> float:
        if not self.queries or not self.documents:
            return 0.0
        p_q = self.query_terms.astype(np.float64) / self.queries
        p_d = self.document_terms.astype(np.float64) / self.documents
        return float(np.dot(p_q, p_d))

    @staticmethod
    def pool(counts: Iterable[SparsityCounts]) -> SparsityCounts:
        items = list(counts)
        if len({c.dim for c in items}) != 1:
            raise DatasetError("cannot pool sparsity counts of different dimensions")
        return SparsityCounts(
            dim=items[0].dim,
            queries=sum(c.queries for c in items), documents=sum(c.documents for c in items),
            query_nnz=sum(c.query_nnz for c in items), document_nnz=sum(c.document_nnz for c in items),
            query_terms=np.sum([c.query_terms for c in items], axis=0),
            document_terms=np.sum([c.document_terms for c in items], axis=0),
        )


def _term_counts(vectors: Sequence[SparseVector], dim: int) -> np.ndarray:
    counts = np.zeros(dim, dtype=np.int64)
    if vectors:
        np.add.at(counts, np.concatenate([v.indices for v in vectors]), 1)
    return counts


def mean_over_datasets(per_dataset: Sequence[Metrics], counts: Sequence[SparsityCounts] | None = None) -> Metrics:
    """Unweighted mean of every metric; sparsity metrics from the pooled counts when given (as NanoBEIR does)."""
    if not per_dataset:
        raise DatasetError("no dataset to average")
    keys = [k for k in per_dataset[0] if all(k in m for m in per_dataset)]
    out = {k: float(np.mean([m[k] for m in per_dataset])) for k in keys}
    if counts:
        out.update(SparsityCounts.pool(counts).metrics())
    return {k: v for k, v in out.items() if not (isinstance(v, float) and math.isnan(v))}
