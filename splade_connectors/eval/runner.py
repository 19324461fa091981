"""One call: encode each dataset once, rank it with every backend, score with the same metrics.

Store rankings are padded the way sentence-transformers' evaluator sees the corpus: documents a
store did not return have score 0 (stores drop zero scores), so they follow in ascending id order
up to `top_k`. The exact backend already ranks zero scores that way, so all backends are comparable.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from splade_connectors.encoding import SparseEncoder
from splade_connectors.eval.backends import Backend, Ranking, build_backends
from splade_connectors.eval.datasets import RetrievalDataset
from splade_connectors.eval.encoding import EncodedDataset, Progress, encode_dataset
from trainer.retrieval.metrics import (
    GRADED_NDCG_AT_K,
    Metrics,
    SparsityCounts,
    graded_ndcg,
    mean_over_datasets,
    required_depth,
    retrieval_metrics,
)

if TYPE_CHECKING:
    from sentence_transformers import SparseEncoder as SentenceTransformersModel

logger = logging.getLogger(__name__)

MEAN = "mean"
DROPPED_SHOWN = 5  # query ids named when qrels are dropped
# Called with (stage, dataset, backend or None, total) and returns a progress callback (or None).
ProgressFactory = Callable[[str, str, str | None, int], Progress | None]


@dataclass
class EvaluationReport:
    """dataset -> backend -> metric -> value (plus a `mean` row across datasets), deltas and timings."""

    results: dict[str, dict[str, Metrics]] = field(default_factory=dict)
    deltas: dict[str, dict[str, Metrics]] = field(default_factory=dict)  # backend minus exact
    timings: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    backends: list[str] = field(default_factory=list)
    reference: str | None = None
    rankings: dict[str, dict[str, Ranking]] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "results": self.results, "deltas": self.deltas, "timings": self.timings,
            "datasets": self.datasets, "backends": self.backends, "reference": self.reference,
            "seconds": self.seconds,
        }


def pad_ranking(ranking: Ranking, doc_ids_sorted: Sequence[str], top_k: int) -> Ranking:
    """Fill each query's hits up to `top_k` with unreturned documents at score 0, in ascending id order."""
    padded: Ranking = {}
    for qid, hits in ranking.items():
        hits = [h for h in hits if h[1] > 0]
        if len(hits) < top_k:
            seen = {d for d, _ in hits}
            fill: list[tuple[str, float]] = []
            for doc_id in doc_ids_sorted:
                if len(hits) + len(fill) >= top_k:
                    break
                if doc_id not in seen:
                    fill.append((doc_id, 0.0))
            hits = hits + fill
        padded[qid] = hits[:top_k]
    return padded


def score_ranking(ranking: Ranking, data: EncodedDataset, counts: SparsityCounts) -> Metrics:
    """All metrics of one backend on one dataset."""
    dataset = data.dataset
    metrics = retrieval_metrics(ranking, dataset.relevant_docs(), data.query_ids)
    for k in GRADED_NDCG_AT_K:
        metrics[f"graded_ndcg@{k}"] = graded_ndcg(ranking, dataset.qrels, data.query_ids, k)
    metrics.update(counts.metrics())
    return metrics


def _delta(metrics: Metrics, reference: Metrics) -> Metrics:
    return {k: metrics[k] - reference[k] for k in metrics if k in reference}


def evaluate(
    encoder: SparseEncoder | SentenceTransformersModel,
    datasets: Sequence[RetrievalDataset],
    backends: Sequence[str | Backend] = ("exact", "qdrant", "opensearch"),
    *,
    backend_options: Mapping[str, Mapping[str, Any]] | None = None,
    keep: bool = False,
    top_k: int | None = None,
    progress: ProgressFactory | None = None,
    keep_rankings: bool = False,
    passages: bool = False,
) -> EvaluationReport:
    """Evaluate `encoder` on each dataset through each backend, encoding every dataset once.

    `passages`: documents are stored as passages (one point per token window) and ranked by their best
    passage (`splade_connectors.passages`); the metrics score documents either way.

    Backends are names (`exact`, `qdrant`, `opensearch`; options per name in `backend_options`,
    e.g. `{"qdrant": {"url": ...}, "opensearch": {"url": ...}}`) or `Backend` objects.
    Differences are reported against `exact` when it is among the backends.
    """
    resolved = resolve_backends(backends, backend_options, keep=keep)  # fail fast, before encoding

    def encoded() -> Iterator[EncodedDataset]:
        for dataset in datasets:
            total = len(dataset.corpus) + len(dataset.eval_query_ids())
            bar = progress("encode", dataset.name, None, total) if progress else None
            yield encode_dataset(encoder, dataset, progress=bar, passages=passages)

    return evaluate_encoded(encoded(), resolved, top_k=top_k, progress=progress, keep_rankings=keep_rankings)


def resolve_backends(
    backends: Sequence[str | Backend], options: Mapping[str, Mapping[str, Any]] | None = None, *, keep: bool = False
) -> list[Backend]:
    return [
        b for spec in backends
        for b in (build_backends([spec], options, keep=keep) if isinstance(spec, str) else [spec])
    ]


def evaluate_encoded(
    encoded: Iterable[EncodedDataset],
    backends: Sequence[Backend],
    *,
    top_k: int | None = None,
    progress: ProgressFactory | None = None,
    keep_rankings: bool = False,
) -> EvaluationReport:
    """Rank already-encoded datasets with each backend and score them (see `evaluate`)."""
    started = time.perf_counter()
    depth = top_k or required_depth()
    report = EvaluationReport(backends=[b.name for b in backends])
    report.reference = "exact" if "exact" in report.backends else None
    all_counts: list[SparsityCounts] = []
    per_backend: dict[str, list[Metrics]] = {b.name: [] for b in backends}
    for data in encoded:
        dataset = data.dataset
        if dataset.name in report.results:
            raise ValueError(f"two datasets are named {dataset.name!r}; rename one (RetrievalDataset.subset(name=...))")
        counts = SparsityCounts.of(data.query_vectors, data.doc_vectors, data.dim)
        all_counts.append(counts)
        doc_ids_sorted = sorted(data.doc_ids)
        report.datasets[dataset.name] = {
            "documents": len(data.doc_ids), "queries": len(data.query_ids), "with_title": dataset.with_title,
            "relevance_threshold": dataset.relevance_threshold, "source": dataset.source,
            "truncated_documents": data.truncated_docs, "chunked_documents": data.chunked_docs,
        }
        if data.passages is not None:
            report.datasets[dataset.name]["passages"] = sum(len(p) for p in data.passages)
        dropped = dataset.dropped_qrels()
        if dropped:
            examples = list(dropped)[:DROPPED_SHOWN]
            report.datasets[dataset.name]["dropped_qrels"] = {
                "judgements": sum(dropped.values()), "query_ids": len(dropped), "examples": examples,
            }
            logger.warning(
                "%s: %d qrels of %d query ids are not evaluated: those ids are not in the queries (e.g. %s)",
                dataset.name, sum(dropped.values()), len(dropped), ", ".join(map(repr, examples)),
            )
        report.timings[dataset.name] = {"encode": {"seconds": data.encode_seconds}}
        report.results[dataset.name] = {}
        for backend in backends:
            logger.info("ranking %s with %s", dataset.name, backend.name)
            bar = progress("search", dataset.name, backend.name, len(data.query_ids)) if progress else None
            ranking, timings = backend.rank(data, depth, bar)
            ranking = pad_ranking(ranking, doc_ids_sorted, depth)
            metrics = score_ranking(ranking, data, counts)
            report.results[dataset.name][backend.name] = metrics
            per_backend[backend.name].append(metrics)
            report.timings[dataset.name][backend.name] = {
                "index_seconds": timings.index_seconds, "search_seconds": timings.search_seconds,
            }
            if keep_rankings:
                report.rankings.setdefault(dataset.name, {})[backend.name] = ranking
    if len(report.results) > 1:
        report.results[MEAN] = {name: mean_over_datasets(values, all_counts) for name, values in per_backend.items()}
    if report.reference:
        for dataset_name, by_backend in report.results.items():
            reference = by_backend[report.reference]
            report.deltas[dataset_name] = {
                name: _delta(metrics, reference) for name, metrics in by_backend.items() if name != report.reference
            }
    report.seconds = time.perf_counter() - started
    return report
