"""Client-side fusion of ranked hit lists, for stores (or fusion methods) without server-side fusion.

- RRF: score(d) = sum_i w_i / (k + rank_i(d)), ranks from 1, `k` explicit (default 60, the paper's
  constant; Qdrant's own default is 2). A document missing from a list gets nothing from it.
- Linear: per list min-max normalise scores to [0, 1] (a list whose scores are all equal maps to 1),
  then sum_i w_i * norm_i(d).
- DBSF (distribution-based score fusion, as Qdrant defines it): per list normalise scores with
  mean +- 3 standard deviations as the [0, 1] range, then sum.
Ties keep the order of first appearance (the SPLADE list first).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from splade_connectors.errors import ConfigError
from splade_connectors.records import Hit
from splade_connectors.store import DEFAULT_RRF_K, Fusion


def _weights(n: int, weights: Sequence[float] | None) -> list[float]:
    if weights is None:
        return [1.0] * n
    if len(weights) != n:
        raise ConfigError(f"{len(weights)} fusion weights for {n} result lists")
    if any(w < 0 for w in weights):
        raise ConfigError("fusion weights must be >= 0")
    return [float(w) for w in weights]


def _remember(first: dict[str, Hit], hit: Hit) -> None:
    """Keep the first hit seen per document, but prefer one that carries explained terms."""
    if hit.id not in first:
        first[hit.id] = hit
    elif first[hit.id].terms is None and hit.terms is not None:
        first[hit.id] = first[hit.id].model_copy(update={"terms": hit.terms})


def _fused(scores: dict[str, float], first: dict[str, Hit], top_k: int | None) -> list[Hit]:
    order = {doc: n for n, doc in enumerate(first)}
    ranked = sorted(scores, key=lambda d: (-scores[d], order[d]))
    ranked = ranked[:top_k] if top_k is not None else ranked
    return [first[d].model_copy(update={"score": scores[d]}) for d in ranked]


def rrf_fuse(
    lists: Sequence[Sequence[Hit]], *, k: float = DEFAULT_RRF_K, weights: Sequence[float] | None = None, top_k: int | None = None
) -> list[Hit]:
    """Reciprocal rank fusion of ranked hit lists (best first)."""
    if k <= 0:
        raise ConfigError("RRF k must be > 0")
    scores: dict[str, float] = {}
    first: dict[str, Hit] = {}
    for weight, hits in zip(_weights(len(lists), weights), lists):
        for rank, hit in enumerate(hits, start=1):
            _remember(first, hit)
            scores[hit.id] = scores.get(hit.id, 0.0) + weight / (k + rank)
    return _fused(scores, first, top_k)


def _normalised_fuse(
    lists: Sequence[Sequence[Hit]], weights: Sequence[float] | None, top_k: int | None, *, dbsf: bool
) -> list[Hit]:
    scores: dict[str, float] = {}
    first: dict[str, Hit] = {}
    for weight, hits in zip(_weights(len(lists), weights), lists):
        if not hits:
            continue
        values = [h.score for h in hits]
        if dbsf:
            mean = statistics.fmean(values)
            spread = 3 * statistics.pstdev(values) if len(values) > 1 else 0.0
            low, high = mean - spread, mean + spread
        else:
            low, high = min(values), max(values)
        for hit in hits:
            _remember(first, hit)
            norm = (hit.score - low) / (high - low) if high > low else 1.0
            scores[hit.id] = scores.get(hit.id, 0.0) + weight * norm
    return _fused(scores, first, top_k)


def linear_fuse(lists: Sequence[Sequence[Hit]], *, weights: Sequence[float] | None = None, top_k: int | None = None) -> list[Hit]:
    """Weighted sum of per-list min-max normalised scores."""
    return _normalised_fuse(lists, weights, top_k, dbsf=False)


def dbsf_fuse(lists: Sequence[Sequence[Hit]], *, weights: Sequence[float] | None = None, top_k: int | None = None) -> list[Hit]:
    """Sum of per-list scores normalised with mean +- 3 std as the range (Qdrant's DBSF)."""
    return _normalised_fuse(lists, weights, top_k, dbsf=True)


def fuse(
    lists: Sequence[Sequence[Hit]], fusion: Fusion, *, rrf_k: float = DEFAULT_RRF_K, weights: Sequence[float] | None = None,
    top_k: int | None = None,
) -> list[Hit]:
    """Fuse with the named method."""
    if fusion == "rrf":
        return rrf_fuse(lists, k=rrf_k, weights=weights, top_k=top_k)
    if fusion == "linear":
        return linear_fuse(lists, weights=weights, top_k=top_k)
    if fusion == "dbsf":
        return dbsf_fuse(lists, weights=weights, top_k=top_k)
    raise ConfigError(f"unknown fusion {fusion!r}; choose rrf, dbsf or linear")
