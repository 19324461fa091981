"""Async search on every Qdrant engine: 200 concurrent `asearch` calls return what `search` returns.

The server is searched through qdrant-client's `AsyncQdrantClient`, the embedded engine and local
mode in worker threads (their calls serialised); errors are the blocking path's.
"""

from __future__ import annotations

import asyncio

import pytest

from splade_connectors import Hit, asearch, ingest_file, search
from splade_connectors.errors import ConfigError, NotFoundError, StoreError
from splade_connectors.qdrant import QdrantStore
from splade_connectors.qdrant.dense import MeanPooledEncoder
from splade_connectors.samples import SAMPLE_CORPUS
from splade_connectors.store import AsyncSearchStore
from tests.splade_connectors.async_parity import call_shapes, check_concurrent_asearch_matches_search, check_same_error
from tests.splade_connectors.qdrant.conftest import QdrantTarget
from trainer.encoder import SpladeEncoder

pytestmark = pytest.mark.live


@pytest.fixture(scope="session")
def dense_encoder() -> MeanPooledEncoder:
    return MeanPooledEncoder()


@pytest.fixture(scope="module")
def sample_store(qdrant_target: QdrantTarget, encoder: SpladeEncoder, dense_encoder: MeanPooledEncoder) -> QdrantStore:
    store = qdrant_target.new_store("async", dense_name="dense", dense_size=dense_encoder.dim, payload_indexes={"topic": "keyword"})
    ingest_file(SAMPLE_CORPUS, encoder, store, dense_encoder=dense_encoder)
    return store


def test_concurrent_asearch_equals_search(
    sample_store: QdrantStore, encoder: SpladeEncoder, dense_encoder: MeanPooledEncoder
) -> None:
    assert isinstance(sample_store, AsyncSearchStore)
    results = check_concurrent_asearch_matches_search(sample_store, encoder, call_shapes(corpus_size=sample_store.count(), dense_encoder=dense_encoder))
    assert all(results[i] for i in range(0, len(results), 8))  # the first query finds documents in every shape


def test_async_errors_are_the_blocking_ones(qdrant_target: QdrantTarget, encoder: SpladeEncoder) -> None:
    store = qdrant_target.new_store("async-gone")
    with pytest.raises(ConfigError, match="top_k"):
        asyncio.run(asearch(store, encoder, ["mars"], top_k=0))
    error = check_same_error(store, encoder, store.drop)
    # the server answers 404 (the async client's error mapped as the blocking one's); in process the engine is gone
    assert isinstance(error, NotFoundError if qdrant_target.backend == "server" else StoreError)


@pytest.mark.parametrize("qdrant_target", ["server"], indirect=True)  # in-process engines use worker threads by design
def test_the_server_is_searched_through_the_async_client(
    qdrant_target: QdrantTarget, sample_store: QdrantStore, encoder: SpladeEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a server, `asearch` never runs the blocking client (it would hold a worker thread per request)."""
    from splade_connectors.qdrant.client_engine import ClientEngine

    expected = search(sample_store, encoder, ["why is mars red"], top_k=3)

    def blocking(*_: object, **__: object) -> None:
        raise AssertionError("the blocking client was used")

    monkeypatch.setattr(ClientEngine, "query_batch", blocking)

    async def run() -> list[list[Hit]]:
        try:
            return await asearch(sample_store, encoder, ["why is mars red"], top_k=3)
        finally:
            await sample_store._aclose_async_clients()

    assert asyncio.run(run()) == expected
