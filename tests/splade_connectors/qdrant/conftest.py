"""Qdrant test fixtures: one target per variant (embedded always, a server when available),
stores made on it, an encoder that replays precomputed vectors, and wrappers that inject failures."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pytest
from qdrant_client import QdrantClient

from splade_connectors.qdrant import QdrantConfig, QdrantStore
from splade_connectors.records import EncodedDocument
from tests.live_stores import LiveStore
from trainer.encoder import EncodeStats, SpladeEncoder
from trainer.sparse import SparseVector


class QdrantTarget:
    """Makes uniquely named collections on one Qdrant (a shared in-memory client, or a server)."""

    def __init__(self, live: LiveStore) -> None:
        self.live = live
        self.client: QdrantClient | None = QdrantClient(location=":memory:") if live.url is None else None
        self._stores: list[QdrantStore] = []

    @property
    def variant(self) -> str:
        return "embedded" if self.live.url is None else "server"

    def config(self, prefix: str, **options: Any) -> QdrantConfig:
        name = f"test-{prefix}-{uuid.uuid4().hex[:8]}"
        return QdrantConfig(url=self.live.url, api_key=self.live.api_key, collection=name, **options)

    def store(self, config: QdrantConfig) -> QdrantStore:
        store = QdrantStore(config, client=self.client).open()
        self._stores.append(store)
        return store

    def new_store(self, prefix: str, **options: Any) -> QdrantStore:
        return self.store(self.config(prefix, **options))

    def close(self) -> None:
        for store in self._stores:
            try:
                if store.client.collection_exists(store.name):
                    store.drop()
            finally:
                store.close()
        if self.client is not None:
            self.client.close()


@pytest.fixture(scope="module", params=["embedded", "server"])
def qdrant_target(request: pytest.FixtureRequest) -> Iterator[QdrantTarget]:
    """Each live test runs on embedded local mode, and on a real server when one is available."""
    if request.param == "embedded":
        live = LiveStore("qdrant", None, "embedded")
    else:
        live = request.getfixturevalue("qdrant_server_store")
    target = QdrantTarget(live)
    try:
        yield target
    finally:
        target.close()


class ReplayEncoder:
    """Stands in for `SpladeEncoder` in the pipeline: returns precomputed vectors by text, counts calls.

    Encoding SciFact once per session is the slow part; replaying keeps pipeline tests fast while
    everything after encoding (batching, writer thread, retries, checkpoints) is the real pipeline.
    """

    def __init__(self, vectors: Mapping[str, SparseVector], fallback: SpladeEncoder | None = None) -> None:
        self.vectors, self.fallback = dict(vectors), fallback
        self.stats = EncodeStats()
        self.encoded: list[str] = []
        self.model = fallback.model if fallback is not None else None

    def encode_documents(self, texts: Sequence[str], **_: object) -> list[SparseVector]:
        texts = list(texts)
        self.encoded.extend(texts)
        self.stats = EncodeStats(texts=len(texts))
        missing = [t for t in texts if t not in self.vectors]
        if missing:
            if self.fallback is None:
                raise KeyError(f"no precomputed vector for {missing[0][:60]!r}")
            self.vectors.update(zip(missing, self.fallback.encode_documents(missing)))
        return [self.vectors[t] for t in texts]

    def encode_queries(self, texts: Sequence[str], **_: object) -> list[SparseVector]:
        assert self.fallback is not None
        return self.fallback.encode_queries(list(texts))


class FaultyStore:
    """Wraps a store; its upsert raises `error` on calls after the first `after`, `times` times."""

    def __init__(self, inner: QdrantStore, *, after: int, error: BaseException, times: int = 1) -> None:
        self.inner, self.after, self.error, self.times = inner, after, error, times
        self.calls = 0
        self.raised = 0

    def upsert(self, batch: Sequence[EncodedDocument]) -> None:
        self.calls += 1
        if self.calls > self.after and self.raised < self.times:
            self.raised += 1
            raise self.error
        self.inner.upsert(batch)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def doc_text(doc: Mapping[str, str]) -> str:
    """The text the pipeline encodes for a BEIR record (title + newline + text)."""
    return f"{doc['title']}\n{doc['text']}" if doc.get("title") else doc["text"]


@pytest.fixture(scope="session")
def replay_encoder(scifact_encoded: Any, encoder: SpladeEncoder) -> Callable[[], ReplayEncoder]:
    """Factory of fresh replay encoders over the SciFact slice's vectors."""
    by_text = {doc_text(d): scifact_encoded.doc_vectors[d["_id"]] for d in scifact_encoded.slice.corpus}
    return lambda: ReplayEncoder(by_text, encoder)
