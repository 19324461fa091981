"""A search service with one endpoint, serving SPLADE queries without blocking its event loop (`asearch`).

    pip install fastapi uvicorn
    uvicorn examples.async_service:app                      # the sample corpus, in the embedded Qdrant engine
    QDRANT_URL=http://localhost:6333 COLLECTION=docs uvicorn examples.async_service:app
    OPENSEARCH_URL=http://localhost:9200 COLLECTION=docs uvicorn examples.async_service:app
    curl 'http://127.0.0.1:8000/search?q=why+is+mars+red&k=3'
    curl 'http://127.0.0.1:8000/search?q=mars&topic=astronomy&hybrid=true'   # hybrid: BM25 on OpenSearch

`asearch` encodes the query in a worker thread and awaits the store's async client (qdrant-client's
`AsyncQdrantClient`, opensearch-py's `AsyncOpenSearch`; the embedded engine runs in a worker thread),
so one process serves many requests at once. Bad requests answer 400, a store that is down 503, each
with the library's one-line message. The collection is read as it is (created with the sample corpus
when empty). OpenSearch credentials: OPENSEARCH_USERNAME / OPENSEARCH_PASSWORD; Qdrant: QDRANT_API_KEY.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException

from splade_connectors import (
    AsyncSearchStore,
    ConfigError,
    HybridOptions,
    SpladeEncoder,
    StoreConfigBase,
    StoreError,
    TransientStoreError,
    asearch,
    ingest_file,
    open_store,
    shipped_model_dir,
    store_config,
)
from splade_connectors.samples import SAMPLE_CORPUS


def config_from_env() -> StoreConfigBase:
    """The store the service searches: a Qdrant server, OpenSearch, or (neither set) the embedded engine."""
    collection = os.environ.get("COLLECTION", "splade-service")
    if os.environ.get("OPENSEARCH_URL"):
        return store_config(
            "opensearch", hosts=[os.environ["OPENSEARCH_URL"]], index=collection, replicas=0,
            username=os.environ.get("OPENSEARCH_USERNAME") or None, password=os.environ.get("OPENSEARCH_PASSWORD") or None,
        )
    return store_config(
        "qdrant", url=os.environ.get("QDRANT_URL") or None, api_key=os.environ.get("QDRANT_API_KEY") or None,
        collection=collection,
    )


def create_app(config: StoreConfigBase | None = None, model: str | None = None) -> FastAPI:
    """The service for a store config (default: from the environment) and a SPLADE model (default: the shipped one)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        encoder = SpladeEncoder.from_pretrained(model or shipped_model_dir(), device="cpu")
        store = open_store(config or config_from_env(), vocabulary=encoder.model.id_to_token())
        if store.count() == 0:
            ingest_file(SAMPLE_CORPUS, encoder, store)  # at startup, before any request: blocking is fine here
        app.state.encoder, app.state.store = encoder, store
        try:
            yield
        finally:
            if isinstance(store, AsyncSearchStore):
                await store.aclose()  # closes the async clients too
            else:
                store.close()

    app = FastAPI(title="SPLADE search", lifespan=lifespan)

    @app.get("/search")
    async def search_endpoint(q: str, k: int = 10, topic: str | None = None, hybrid: bool = False) -> dict[str, Any]:
        """The top-k documents for the query `q` (optionally only those of a `topic`; hybrid with the store's other list)."""
        try:
            (hits,) = await asearch(
                app.state.store, app.state.encoder, [q], top_k=k, filter={"topic": topic} if topic else None,
                hybrid=HybridOptions() if hybrid else None,
            )
        except ConfigError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
        except TransientStoreError as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from None
        except StoreError as exc:
            raise HTTPException(status_code=502, detail=str(exc)) from None
        return {
            "query": q,
            "hits": [{"id": h.id, "score": h.score, "title": h.payload.get("title")} for h in hits],
        }

    return app


app = create_app()  # cheap: the model and the store are loaded when the server starts (lifespan)
