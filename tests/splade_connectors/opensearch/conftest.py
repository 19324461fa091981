"""Fixtures for the OpenSearch adapter tests: vocabulary, stores on the session's live server."""

from __future__ import annotations

import os
import pickle
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from splade_connectors.ingest import IngestConfig, IngestReport, ingest
from trainer.encoder import EncodeStats, SpladeEncoder
from trainer.identity import EncoderIdentity
from trainer.sparse import SparseVector

opensearchpy = pytest.importorskip("opensearchpy")

from splade_connectors.opensearch import OpenSearchConfig, OpenSearchStore  # noqa: E402 - after the importorskip above


@pytest.fixture(scope="session")
def vocabulary(trained_model_dir: Any) -> list[str]:
    """id -> token of the shipped model's tokenizer (30,522 entries), without loading the model."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(trained_model_dir / "tokenizer.json"))
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    tokens = [""] * len(vocab)
    for token, idx in vocab.items():
        tokens[idx] = token
    return tokens


class CachedEncoder:
    """Looks vectors up by text (encoded once per session), encoding only the misses.

    Lets tests run the shared ingestion pipeline without paying for encoding twice.
    """

    def __init__(self, encoder: SpladeEncoder, cache: dict[str, SparseVector]) -> None:
        self.encoder, self.cache, self.stats = encoder, cache, EncodeStats()

    def encode_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        missing = [t for t in texts if t not in self.cache]
        if missing:
            self.cache.update(zip(missing, self.encoder.encode_documents(missing)))
        self.stats = EncodeStats(texts=len(texts))
        return [self.cache[t] for t in texts]

    def encode_queries(self, texts: Sequence[str]) -> list[SparseVector]:
        return self.encoder.encode_queries(texts)

    def identity(self) -> EncoderIdentity:
        """The wrapped encoder's: the cached vectors are the ones it made."""
        return self.encoder.identity()


def doc_text(doc: dict[str, str]) -> str:
    return f"{doc['title']}\n{doc['text']}" if doc.get("title") else doc["text"]


@pytest.fixture(scope="session")
def os_scifact(request: pytest.FixtureRequest) -> Any:
    """The shared `scifact_encoded`; with SPLADE_CONNECTORS_TEST_VECTOR_CACHE=<file> kept on disk (dev loop)."""
    cache = os.environ.get("SPLADE_CONNECTORS_TEST_VECTOR_CACHE")
    if cache and Path(cache).exists():
        with open(cache, "rb") as handle:
            return pickle.load(handle)
    value = request.getfixturevalue("scifact_encoded")
    if cache:
        with open(cache, "wb") as handle:
            pickle.dump(value, handle)
    return value


@pytest.fixture(scope="session")
def cached_encoder(os_scifact: Any, encoder: SpladeEncoder) -> CachedEncoder:
    cache = {doc_text(d): os_scifact.doc_vectors[d["_id"]] for d in os_scifact.slice.corpus}
    return CachedEncoder(encoder, cache)


def live_config(live: Any, index: str, **overrides: Any) -> OpenSearchConfig:
    """Config for the live store fixture (any source: env, testcontainers, native)."""
    return OpenSearchConfig(
        hosts=[live.url], username=live.username, password=live.password, verify_certs=live.verify_certs,
        index=index, **{"replicas": 0, **overrides},
    )


@pytest.fixture
def make_store(opensearch_store: Any, vocabulary: list[str]) -> Iterator[Callable[..., OpenSearchStore]]:
    """Factory of stores on fresh, uniquely named indices; all dropped afterwards."""
    made: list[OpenSearchStore] = []

    def make(prefix: str = "t", **kwargs: Any) -> OpenSearchStore:
        index = f"splade-{prefix}-{uuid.uuid4().hex[:8]}"
        store_kwargs = {k: kwargs.pop(k) for k in ("on_too_many_terms", "client") if k in kwargs}
        store = OpenSearchStore(live_config(opensearch_store, index, **kwargs), vocabulary=vocabulary, **store_kwargs).open()
        made.append(store)
        return store

    yield make
    for store in made:
        store.drop()


@pytest.fixture(scope="session")
def scifact_store(
    opensearch_store: Any, vocabulary: list[str], os_scifact: Any, cached_encoder: CachedEncoder
) -> Iterator[tuple[OpenSearchStore, IngestReport]]:
    """The 1,000-doc SciFact slice ingested through the shared pipeline (session-wide, read-only)."""
    store = OpenSearchStore(live_config(opensearch_store, f"splade-scifact-{uuid.uuid4().hex[:8]}"), vocabulary=vocabulary).open()
    report = ingest(os_scifact.slice.corpus, cached_encoder, store, IngestConfig(batch_size=100))
    yield store, report
    store.drop()
