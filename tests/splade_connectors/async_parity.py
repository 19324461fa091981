"""The async search check every store runs: many concurrent `asearch` calls give what `search` gives.

A web service makes one call per request, so the check is `CALLS` concurrent single-query calls
(`asyncio.gather`), cycling through the sample corpus' queries and through call shapes (plain,
filtered with a score threshold, explained, hybrid), each compared with the blocking `search` for
the same query and options: the same hits, ids, scores (exactly), payloads and explained terms.

Hits with equal scores come back in either order from the engines, even from two blocking calls
(fused RRF scores tie often), so hits are compared in (score, id) order, and the hybrid shape asks
for every document (`top_k` = the corpus size) so that no tie straddles the cut.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from splade_connectors import HybridOptions, asearch, search
from splade_connectors.errors import SpladeError
from splade_connectors.records import Hit
from splade_connectors.store import SparseStore
from trainer.encoder import SpladeEncoder

CALLS = 200
QUERIES = (
    "why do onions make my eyes water",
    "why is mars red",
    "how do comets get their tails",
    "what does a light-year measure",
    "why does bread dough need to rest",
    "phases of the moon",
    "protein folding in cells",
    "how far does light travel in a year",
)


def call_shapes(*, corpus_size: int, dense_encoder: Any = None) -> list[dict[str, Any]]:
    """The keyword arguments of each call shape: plain, filtered with a threshold, explained, hybrid RRF."""
    return [
        {"top_k": 5},
        {"top_k": 3, "filter": {"topic": ["astronomy", "cooking"]}, "score_threshold": 1.0},
        {"top_k": 4, "explain": True, "explain_terms": 3},
        {"top_k": corpus_size, "hybrid": HybridOptions(fusion="rrf", rrf_k=60), "dense_encoder": dense_encoder},
    ]


def check_concurrent_asearch_matches_search(
    store: SparseStore, encoder: SpladeEncoder, shapes: Sequence[dict[str, Any]], *, calls: int = CALLS
) -> list[list[Hit]]:
    """Run `calls` concurrent `asearch` calls and assert each equals the blocking call; returns the async results."""
    plan = [(QUERIES[i % len(QUERIES)], i % len(shapes)) for i in range(calls)]
    expected = {key: _ordered(search(store, encoder, [key[0]], **shapes[key[1]])[0]) for key in set(plan)}
    assert any(expected.values()), "the queries should find something"

    async def run_all() -> list[list[Hit]]:
        found = await asyncio.gather(*(asearch(store, encoder, [query], **shapes[shape]) for query, shape in plan))
        await _aclose(store)
        return [_ordered(hits) for (hits,) in found]

    results = asyncio.run(run_all())
    for (query, shape), hits in zip(plan, results):
        want = expected[(query, shape)]
        assert [(h.id, h.score) for h in hits] == [(h.id, h.score) for h in want], (query, shapes[shape])
        assert hits == want  # payloads and explained terms too
    return results


def _ordered(hits: list[Hit]) -> list[Hit]:
    return sorted(hits, key=lambda h: (-h.score, h.id))


def check_same_error(store: SparseStore, encoder: SpladeEncoder, break_store: Callable[[], None]) -> SpladeError:
    """After `break_store()`, `asearch` raises the same project error (class and message) as `search`."""
    break_store()
    with pytest.raises(SpladeError) as blocking:
        search(store, encoder, [QUERIES[0]], top_k=3)

    async def one() -> None:
        try:
            await asearch(store, encoder, [QUERIES[0]], top_k=3)
        finally:
            await _aclose(store)

    with pytest.raises(SpladeError) as awaited:
        asyncio.run(one())
    assert type(awaited.value) is type(blocking.value)
    assert str(awaited.value) == str(blocking.value)
    return awaited.value


async def _aclose(store: SparseStore) -> None:
    """Close the async clients of this loop (the store stays open for the blocking calls)."""
    closing = getattr(store, "_aclose_async_clients", None)
    if closing is not None:
        await closing()
