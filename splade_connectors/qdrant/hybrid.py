"""Hybrid search in Qdrant: the candidate lists (SPLADE, dense) and the fusion done inside the engine.

Used by `QdrantStore.hybrid_search_batch` (linear fusion is done client-side by `splade_connectors.fusion`).

RRF scores each document sum_i 1 / (k + rank_i) over the candidate lists, rank counted from 1 as
in the RRF paper (Cormack et al. 2009) and in OpenSearch/Elasticsearch's `rank_constant`. `rrf_k`
is explicit and defaults to 60, the paper's constant. Two Qdrant conventions differ, and this
module hides both: Qdrant's default k is 2 (the first ranks dominate far more), and Qdrant counts
positions from 0 (`1 / (k + position)`), so Qdrant's k is our k + 1; we send `rrf_k + 1`. With
`weights` a list's rank is divided by its weight: 1 / (rank / w + k). DBSF normalises each list's
scores (mean +- 3 std) and sums them. The server and the embedded engine run the same fusion code.

The sparse list drops zero-score points (`queries.MIN_SCORE`) so local mode fuses the same lists as the engine;
with a two-phase spec it is a two-phase query (`queries.sparse_query`), nested in the fusion's prefetch.
"""

from __future__ import annotations

from collections.abc import Sequence

from qdrant_client import models

from splade_connectors.errors import ConfigError
from splade_connectors.qdrant.config import QdrantConfig
from splade_connectors.qdrant.engine import FusedQuery, NearestQuery
from splade_connectors.qdrant.queries import sparse_query
from splade_connectors.store import DEFAULT_RRF_K, Fusion
from splade_connectors.two_phase import TwoPhase
from trainer.sparse import SparseVector


def qdrant_rrf_k(rrf_k: int) -> int:
    """Qdrant's RRF constant for the paper's `rrf_k` (Qdrant counts positions from 0)."""
    if rrf_k < 1:
        raise ConfigError("rrf_k must be >= 1")
    return rrf_k + 1


def fusion_query(fusion: Fusion, rrf_k: int = DEFAULT_RRF_K, weights: Sequence[float] | None = None) -> models.Query:
    """The qdrant-client query object for a fusion method (`rrf_k` in the paper's convention, see module doc)."""
    if fusion == "rrf":
        return models.RrfQuery(rrf=models.Rrf(k=qdrant_rrf_k(rrf_k), weights=list(weights) if weights is not None else None))
    if fusion == "dbsf":
        if weights is not None:
            raise ConfigError("weights apply to RRF only")
        return models.FusionQuery(fusion=models.Fusion.DBSF)
    raise ConfigError(f"unknown fusion {fusion!r} (rrf or dbsf)")


def candidate_lists(
    config: QdrantConfig, sparse: SparseVector | None, dense: Sequence[float] | None, *, limit: int,
    filter: models.Filter | None = None, two_phase: TwoPhase | None = None,
) -> list[NearestQuery]:
    """The sparse (exact or `two_phase`) and dense candidate lists (each top-`limit`), in that order."""
    out: list[NearestQuery] = []
    if sparse is not None and sparse.nnz:
        out.append(sparse_query(config.sparse_name, sparse, limit=limit, filter=filter, two_phase=two_phase))
    if dense is not None:
        if config.dense_name is None:
            raise ConfigError(f"{config.describe()} has no dense vector configured")
        if len(dense) != config.dense_size:
            raise ConfigError(f"dense query has {len(dense)} dims, {config.describe()} expects {config.dense_size}")
        out.append(NearestQuery(using=config.dense_name, limit=limit, dense=list(dense), filter=filter))
    return out


def fused_query(
    sources: Sequence[NearestQuery], fusion: Fusion, *, top_k: int, rrf_k: int, weights: Sequence[float] | None
) -> FusedQuery:
    """The engine-side fusion of the candidate lists (RRF or DBSF)."""
    if fusion == "rrf":
        if weights is not None and any(w < 0 for w in weights):
            raise ConfigError("RRF weights must be >= 0")
        return FusedQuery(sources=sources, fusion="rrf", limit=top_k, rrf_k=qdrant_rrf_k(rrf_k), weights=weights)
    if fusion == "dbsf":
        if weights is not None:
            raise ConfigError("weights apply to RRF only")
        return FusedQuery(sources=sources, fusion="dbsf", limit=top_k)
    raise ConfigError(f"unknown fusion {fusion!r} (rrf, dbsf or linear)")
