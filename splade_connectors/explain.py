"""Explaining hits: the terms a query and a document share, decoded, with both weights.

Works with any `SparseStore` (it only needs `fetch_vectors`). The weights are the raw SPLADE weights;
a store that rescales terms (Qdrant's IDF modifier) scores differently from their plain product.
"""

from __future__ import annotations

from collections.abc import Sequence

from splade_connectors.records import Hit, TermContribution
from splade_connectors.store import SparseStore
from trainer.sparse import SparseVector


def overlapping_terms(
    query: SparseVector, document: SparseVector, id_to_token: Sequence[str], *, limit: int | None = 10
) -> list[TermContribution]:
    """Shared terms, largest contribution (query weight x document weight) first."""
    shared = query.overlap(document)
    if limit is not None:
        shared = shared[:limit]
    return [
        TermContribution(
            token=id_to_token[idx] if idx < len(id_to_token) else f"[{idx}]",
            token_id=idx,
            query_weight=qw,
            document_weight=dw,
        )
        for idx, qw, dw in shared
    ]


def explain_ids(
    store: SparseStore, query: SparseVector, doc_ids: Sequence[str], id_to_token: Sequence[str], *, limit: int | None = 10
) -> dict[str, list[TermContribution]]:
    """Top shared terms for each stored document id (ids no longer stored are left out)."""
    vectors = store.fetch_vectors(list(dict.fromkeys(doc_ids)))
    return {doc_id: overlapping_terms(query, vector, id_to_token, limit=limit) for doc_id, vector in vectors.items()}


def with_terms(
    store: SparseStore, query: SparseVector, hits: Sequence[Hit], id_to_token: Sequence[str], *, limit: int | None = 10
) -> list[Hit]:
    """The same hits, each with `terms` filled (empty when its vector is no longer stored)."""
    terms = explain_ids(store, query, [h.id for h in hits], id_to_token, limit=limit)
    return [hit.model_copy(update={"terms": terms.get(hit.id, [])}) for hit in hits]
