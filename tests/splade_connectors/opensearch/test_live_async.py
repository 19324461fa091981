"""Async search on OpenSearch (opensearch-py's `AsyncOpenSearch`): 200 concurrent `asearch` calls return what
`search` returns, sparse, filtered, explained and hybrid with BM25; errors are the blocking path's."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from splade_connectors import Hit, asearch, ingest_file, search
from splade_connectors.errors import ConfigError, NotFoundError
from splade_connectors.opensearch import OpenSearchStore
from splade_connectors.samples import SAMPLE_CORPUS
from splade_connectors.store import AsyncSearchStore
from tests.splade_connectors.async_parity import call_shapes, check_concurrent_asearch_matches_search, check_same_error
from trainer.encoder import SpladeEncoder

pytestmark = pytest.mark.live

pytest.importorskip("aiohttp", reason="opensearch-py's async client needs aiohttp (in requirements/ci.lock)")

MakeStore = Callable[..., OpenSearchStore]


def test_concurrent_asearch_equals_search(make_store: MakeStore, encoder: SpladeEncoder, monkeypatch: pytest.MonkeyPatch) -> None:
    store = make_store("async", payload_fields=None)
    ingest_file(SAMPLE_CORPUS, encoder, store)
    assert isinstance(store, AsyncSearchStore)
    shapes = call_shapes(corpus_size=store.count())
    results = check_concurrent_asearch_matches_search(store, encoder, shapes)
    assert all(results[i] for i in range(0, len(results), 8))

    # the async path never sends through the blocking client (it would hold a thread per request)
    expected = search(store, encoder, ["why is mars red", "phases of the moon"], top_k=3)
    monkeypatch.setattr(store.client.transport, "perform_request", _forbidden)

    async def run() -> list[list[Hit]]:
        try:
            return await asearch(store, encoder, ["why is mars red", "phases of the moon"], top_k=3)
        finally:
            await store._aclose_async_clients()

    assert asyncio.run(run()) == expected


def test_async_errors_are_the_blocking_ones(make_store: MakeStore, encoder: SpladeEncoder) -> None:
    store = make_store("async-gone")
    with pytest.raises(ConfigError, match="top_k"):
        asyncio.run(asearch(store, encoder, ["mars"], top_k=0))
    with OpenSearchStore(store.config, vocabulary=store.vocabulary) as other:
        other.drop()  # the index is deleted behind the store's back
    assert isinstance(check_same_error(store, encoder, lambda: None), NotFoundError)


def _forbidden(*_: Any, **__: Any) -> None:
    raise AssertionError("the blocking client was used")
