"""Explaining a hit: the terms a query and a document share, decoded, with both weights."""

from __future__ import annotations

from collections.abc import Sequence

from splade_connectors.records import TermContribution
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
