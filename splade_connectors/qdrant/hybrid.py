"""Hybrid search in Qdrant: the prefetch lists (SPLADE, dense) and the server-side fusion query.

Used by `QdrantStore.hybrid_search_batch` (linear fusion is done client-side by `splade_connectors.fusion`).

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

from qdrant_client import models

from splade_connectors.errors import ConfigError
from splade_connectors.qdrant.filters import build_filter
from splade_connectors.qdrant.store import MIN_SCORE, QdrantStore, to_qdrant_sparse
from splade_connectors.store import DEFAULT_RRF_K, Filter, Fusion
from trainer.sparse import SparseVector


def fusion_query(fusion: Fusion, rrf_k: int = DEFAULT_RRF_K, weights: Sequence[float] | None = None) -> models.Query:
    """The Qdrant query object for a fusion method (`rrf_k` in the paper's convention, see module doc)."""
    if fusion == "rrf":
        if rrf_k < 1:
            raise ConfigError("rrf_k must be >= 1")
        # Qdrant: 1 / (k_q + position), position from 0; paper: 1 / (k + rank), rank from 1 -> k_q = k + 1.
        return models.RrfQuery(rrf=models.Rrf(k=rrf_k + 1, weights=list(weights) if weights is not None else None))
    if fusion == "dbsf":
        if weights is not None:
            raise ConfigError("weights apply to RRF only")
        return models.FusionQuery(fusion=models.Fusion.DBSF)
    raise ConfigError(f"unknown fusion {fusion!r} (rrf or dbsf)")


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
            raise ConfigError(f"{config.describe()} has no dense vector configured")
        out.append(models.Prefetch(query=list(dense), using=config.dense_name, limit=limit, filter=native_filter))
    return out
