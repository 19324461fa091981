"""Filling `Hit.terms`: which decoded terms a query shares with each hit, with both weights.

Works with any `SparseStore` (it only needs `fetch_vectors`). The weights are the raw SPLADE
weights; with Qdrant's IDF modifier on, the store's score also multiplies each term by its IDF.
"""

from __future__ import annotations

from collections.abc import Sequence

from splade_connectors.explain import overlapping_terms
from splade_connectors.records import Hit, TermContribution
from splade_connectors.store import SparseStore
from trainer.sparse import SparseVector


def explain_ids(
    store: SparseStore, query: SparseVector, doc_ids: Sequence[str], id_to_token: Sequence[str], *, limit: int | None = 10
) -> dict[str, list[TermContribution]]:
    """Top shared terms (largest query x document weight first) for each stored document id."""
    vectors = store.fetch_vectors(list(dict.fromkeys(doc_ids)))
    return {doc_id: overlapping_terms(query, vector, id_to_token, limit=limit) for doc_id, vector in vectors.items()}


def with_terms(
    store: SparseStore, query: SparseVector, hits: Sequence[Hit], id_to_token: Sequence[str], *, limit: int | None = 10
) -> list[Hit]:
    """The same hits, each with `terms` filled (empty when its vector is no longer stored)."""
    terms = explain_ids(store, query, [h.id for h in hits], id_to_token, limit=limit)
    return [hit.model_copy(update={"terms": terms.get(hit.id, [])}) for hit in hits]
