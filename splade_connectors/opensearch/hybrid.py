"""Hybrid search: BM25 on `text` + exact SPLADE, fused client-side.

Fusion is done here, not by a server-side search pipeline: the plain OpenSearch server has no
neural-search plugin (whose `normalization-processor`/hybrid query would do it), and client-side
fusion behaves the same on every cluster.

- RRF: score(d) = sum_i w_i / (k + rank_i(d)), ranks from 1, `k` explicit (default 60; note Qdrant's
  default is 2). A document missing from a list gets nothing from it.
- Linear: per list min-max normalise scores to [0, 1] (a list whose scores are all equal maps to 1),
  then sum_i w_i * norm_i(d).
Ties keep the order of first appearance (SPLADE list first).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from splade_connectors.opensearch.store import OpenSearchStore
from splade_connectors.records import Hit
from splade_connectors.store import Filter

if TYPE_CHECKING:  # pragma: no cover
    from trainer.encoder import SpladeEncoder

Fusion = Literal["rrf", "linear"]


def _weights(n: int, weights: Sequence[float] | None) -> list[float]:
    if weights is None:
        return [1.0] * n
    if len(weights) != n:
        raise ValueError(f"{len(weights)} weights for {n} result lists")
    if any(w < 0 for w in weights):
        raise ValueError("fusion weights must be >= 0")
    return [float(w) for w in weights]


def _fused(scores: dict[str, float], first: dict[str, Hit], top_k: int | None) -> list[Hit]:
    order = {doc: n for n, doc in enumerate(first)}
    ranked = sorted(scores, key=lambda d: (-scores[d], order[d]))
    ranked = ranked[:top_k] if top_k is not None else ranked
    return [first[d].model_copy(update={"score": scores[d]}) for d in ranked]


def _remember(first: dict[str, Hit], hit: Hit) -> None:
    """Keep the first hit seen per document, but prefer one that carries explained terms."""
    if hit.id not in first or (first[hit.id].terms is None and hit.terms is not None):
        first[hit.id] = hit if hit.id not in first else first[hit.id].model_copy(update={"terms": hit.terms})


def rrf_fuse(
    lists: Sequence[Sequence[Hit]], *, k: float = 60.0, weights: Sequence[float] | None = None, top_k: int | None = None
) -> list[Hit]:
    """Reciprocal rank fusion of ranked hit lists (best first)."""
    if k <= 0:
        raise ValueError("RRF k must be > 0")
    w = _weights(len(lists), weights)
    scores: dict[str, float] = {}
    first: dict[str, Hit] = {}
    for weight, hits in zip(w, lists):
        for rank, hit in enumerate(hits, start=1):
            _remember(first, hit)
            scores[hit.id] = scores.get(hit.id, 0.0) + weight / (k + rank)
    return _fused(scores, first, top_k)


def linear_fuse(
    lists: Sequence[Sequence[Hit]], *, weights: Sequence[float] | None = None, top_k: int | None = None
) -> list[Hit]:
    """Weighted sum of per-list min-max normalised scores."""
    w = _weights(len(lists), weights)
    scores: dict[str, float] = {}
    first: dict[str, Hit] = {}
    for weight, hits in zip(w, lists):
        if not hits:
            continue
        low, high = min(h.score for h in hits), max(h.score for h in hits)
        for hit in hits:
            _remember(first, hit)
            norm = (hit.score - low) / (high - low) if high > low else 1.0
            scores[hit.id] = scores.get(hit.id, 0.0) + weight * norm
    return _fused(scores, first, top_k)


class HybridSearcher:
    """Encodes queries, runs SPLADE and BM25 on one `OpenSearchStore`, fuses client-side."""

    def __init__(self, store: OpenSearchStore, encoder: SpladeEncoder, *, text_fields: Sequence[str] = ("text",)) -> None:
        self.store, self.encoder, self.text_fields = store, encoder, tuple(text_fields)

    def search(
        self,
        queries: Sequence[str],
        *,
        top_k: int = 10,
        candidates: int = 100,
        fusion: Fusion = "rrf",
        rrf_k: float = 60.0,
        weights: Sequence[float] = (1.0, 1.0),
        filter: Filter | None = None,
        explain: bool = True,
    ) -> list[list[Hit]]:
        """Fused top-k per query; `weights` = (SPLADE, BM25); `explain` fills `Hit.terms`."""
        vectors = self.encoder.encode_queries(list(queries))
        sparse = self.store.search_batch(vectors, top_k=candidates, filter=filter, with_terms=explain)
        lexical = self.store.search_text_batch(
            queries, top_k=candidates, filter=filter, fields=self.text_fields,
            explain_vectors=vectors if explain else None,
        )
        fused: list[list[Hit]] = []
        for s_hits, b_hits in zip(sparse, lexical):
            if fusion == "rrf":
                fused.append(rrf_fuse([s_hits, b_hits], k=rrf_k, weights=weights, top_k=top_k))
            elif fusion == "linear":
                fused.append(linear_fuse([s_hits, b_hits], weights=weights, top_k=top_k))
            else:
                raise ValueError(f"unknown fusion {fusion!r} (rrf or linear)")
        return fused
