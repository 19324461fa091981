"""Hybrid search: SPLADE sparse + dense vectors fused inside Qdrant (prefetch + fusion query).

RRF scores each document sum_i 1 / (k + rank_i) over the prefetch lists, rank counted from 1 as
in the RRF paper (Cormack et al. 2009) and in OpenSearch/Elasticsearch's `rank_constant`. `rrf_k`
is explicit and defaults to 60, the paper's constant. Two Qdrant conventions differ, and this
module hides both: Qdrant's default k is 2 (the first ranks dominate far more), and Qdrant counts
positions from 0 (`1 / (k + position)`), so Qdrant's k is our k + 1; we send `rrf_k + 1`. With
`weights` a list's rank is divided by its weight: 1 / (rank / w + k). DBSF normalises each list's
scores (mean +- 3 std) and sums them.

Sparse prefetch drops zero-score points (see `store.MIN_SCORE`) so local mode and the server fuse
the same lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from qdrant_client import models

from splade_connectors.qdrant.filters import build_filter
from splade_connectors.qdrant.store import MIN_SCORE, QdrantStore, to_hit, to_qdrant_sparse
from splade_connectors.records import Hit
from splade_connectors.store import Filter
from trainer.sparse import SparseVector

Fusion = Literal["rrf", "dbsf"]
DEFAULT_RRF_K = 60


def fusion_query(fusion: Fusion, rrf_k: int = DEFAULT_RRF_K, weights: Sequence[float] | None = None) -> models.Query:
    """The Qdrant query object for a fusion method (`rrf_k` in the paper's convention, see module doc)."""
    if fusion == "rrf":
        if rrf_k < 1:
            raise ValueError("rrf_k must be >= 1")
        # Qdrant: 1 / (k_q + position), position from 0; paper: 1 / (k + rank), rank from 1 -> k_q = k + 1.
        return models.RrfQuery(rrf=models.Rrf(k=rrf_k + 1, weights=list(weights) if weights is not None else None))
    if fusion == "dbsf":
        if weights is not None:
            raise ValueError("weights apply to RRF only")
        return models.FusionQuery(fusion=models.Fusion.DBSF)
    raise ValueError(f"unknown fusion {fusion!r} (rrf or dbsf)")


def prefetches(
    store: QdrantStore, sparse: SparseVector | None, dense: Sequence[float] | None, *, limit: int, filter: Filter | None = None
) -> list[models.Prefetch]:
    """The sparse and dense candidate lists (each top-`limit`), in that order."""
    config, native_filter = store.config, build_filter(filter)
    out: list[models.Prefetch] = []
    if sparse is not None and sparse.nnz:
        out.append(models.Prefetch(
            query=to_qdrant_sparse(sparse), using=config.sparse_name, limit=limit, filter=native_filter, score_threshold=MIN_SCORE,
        ))
    if dense is not None:
        if config.dense_name is None:
            raise ValueError(f"{config.describe()} has no dense vector configured")
        out.append(models.Prefetch(query=list(dense), using=config.dense_name, limit=limit, filter=native_filter))
    return out


def hybrid_search(
    store: QdrantStore,
    sparse: SparseVector | None,
    dense: Sequence[float] | None,
    *,
    top_k: int = 10,
    fusion: Fusion = "rrf",
    rrf_k: int = DEFAULT_RRF_K,
    weights: Sequence[float] | None = None,
    prefetch_limit: int | None = None,
    filter: Filter | None = None,
) -> list[Hit]:
    """Fused top-k of the sparse and dense candidate lists (`prefetch_limit` each, default max(50, 5 x top_k)).

    `weights` (RRF only) weight the sparse and dense lists, in that order.
    """
    limit = prefetch_limit or max(50, 5 * top_k)
    sources = prefetches(store, sparse, dense, limit=limit, filter=filter)
    if not sources:
        return []
    if weights is not None and len(weights) != len(sources):
        raise ValueError(f"{len(weights)} weights for {len(sources)} prefetch lists")
    response = store.client.query_points(
        collection_name=store.name, prefetch=sources, query=fusion_query(fusion, rrf_k, weights), limit=top_k, with_payload=True,
    )
    return [to_hit(point) for point in response.points]
