"""Qdrant test fixtures: one target per backend (a real server, the embedded engine, qdrant-client local
mode), stores made on it, an encoder that replays precomputed vectors, and wrappers that inject failures."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qdrant_client import QdrantClient

from splade_connectors.errors import StoreError
from splade_connectors.live.qdrant_server import cache_root
from splade_connectors.qdrant import QdrantConfig, QdrantStore
from splade_connectors.records import EncodedDocument
from tests.live_stores import LiveStore, record_qdrant_backend
from trainer.encoder import EncodeStats, SpladeEncoder
from trainer.identity import EncoderIdentity
from trainer.retrieval.beir import read_beir_folder
from trainer.sparse import SparseVector, from_csr, to_csr

BACKENDS = ("server", "edge", "local")


class QdrantTarget:
    """Makes uniquely named collections on one Qdrant backend.

    - `server`: a real Qdrant server (see `tests.live_stores`);
    - `edge`: the embedded engine, every collection a shard under one folder of this module;
    - `local`: qdrant-client local mode, one in-memory client shared by the module's stores.
    """

    def __init__(self, backend: str, live: LiveStore | None = None, folder: Path | None = None) -> None:
        self.backend, self.live, self.folder = backend, live, folder
        self.client: QdrantClient | None = QdrantClient(location=":memory:") if backend == "local" else None
        self._stores: list[QdrantStore] = []

    @property
    def variant(self) -> str:
        return self.backend

    def config(self, prefix: str, **options: Any) -> QdrantConfig:
        name = f"test-{prefix}-{uuid.uuid4().hex[:8]}"
        if self.backend == "server":
            assert self.live is not None
            where: dict[str, Any] = {"url": self.live.url, "api_key": self.live.api_key, "grpc_port": self.live.grpc_port}
        elif self.backend == "edge":
            where = {"path": str(self.folder)}
        else:
            where = {"local_mode": True}
        return QdrantConfig(collection=name, **where, **options)

    def build(self, config: QdrantConfig) -> QdrantStore:
        """A store on this backend, not opened (local mode shares the module's client)."""
        return QdrantStore(config, client=self.client)

    def store(self, config: QdrantConfig, *, create: bool = True) -> QdrantStore:
        """An opened store, dropped and closed when the module ends."""
        store = self.build(config).open(create=create)
        self._stores.append(store)
        return store

    def new_store(self, prefix: str, **options: Any) -> QdrantStore:
        return self.store(self.config(prefix, **options))

    def close(self) -> None:
        for store in self._stores:
            try:
                if store._opened:
                    store.drop()
            except StoreError:
                pass
            finally:
                store.close()
        if self.client is not None:
            self.client.close()


@pytest.fixture(scope="module", params=BACKENDS)
def qdrant_target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[QdrantTarget]:
    """Each Qdrant behaviour test runs on a real server, the embedded engine and local mode."""
    backend = str(request.param)
    if backend == "server":
        target = QdrantTarget(backend, live=request.getfixturevalue("qdrant_server_store"))
    else:
        record_qdrant_backend(backend)
        target = QdrantTarget(backend, folder=tmp_path_factory.mktemp("qdrant-embedded") if backend == "edge" else None)
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

    def identity(self) -> EncoderIdentity:
        """The fallback's: the replayed vectors are the ones it made."""
        assert self.fallback is not None
        return self.fallback.identity()


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


def stored_doc_ids(store: QdrantStore) -> list[str]:
    """Every stored document id, duplicates kept (scrolls the whole collection)."""
    return [doc_id for batch in store.iter_doc_ids(batch_size=256) for doc_id in batch]


# ---- the full SciFact corpus, encoded once per machine -----------------------------------------------------


@dataclass(frozen=True)
class EncodedCorpus:
    """A whole BEIR corpus and its judged test queries, encoded with the shipped model."""

    doc_ids: list[str]
    doc_vectors: list[SparseVector]
    query_ids: list[str]
    query_vectors: list[SparseVector]
    qrels: dict[str, dict[str, int]]


ENCODING_VERSION = "1"  # the same value as bench/qdrant.py's


def encoded_cache_file(folder: Path, model_dir: Path) -> Path:
    """Where a BEIR dataset encoded with a model is cached: keyed by the data and the model files only, plus
    ENCODING_VERSION (bump it when the encoder's output changes); bench/qdrant.py uses the same files."""
    digest = hashlib.sha256(ENCODING_VERSION.encode())
    model_files = sorted(p for p in model_dir.iterdir() if p.is_file())
    for path in [folder / "corpus.jsonl", folder / "queries.jsonl", folder / "qrels" / "test.tsv", *model_files]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return cache_root() / "bench" / f"encoded-{folder.name}-{digest.hexdigest()[:20]}.npz"


def _read_beir(folder: Path) -> tuple[list[tuple[str, str]], dict[str, str], dict[str, dict[str, int]]]:
    """(id, encoded text) of every document, the judged test queries, and the qrels (the core's BEIR reader)."""
    data = read_beir_folder(folder)
    docs = [(doc_id, data.text(doc_id)) for doc_id in data.corpus]
    return docs, {q: text for q, text in data.queries.items() if q in data.qrels}, data.qrels


@pytest.fixture(scope="session")
def scifact_full(scifact_dir: Path, trained_model_dir: Path, encoder: SpladeEncoder) -> EncodedCorpus:
    """All 5,183 SciFact documents and the 300 test queries, encoded once and cached on disk.

    The cache (`encoded_cache_file`, ~/.cache/splade-connectors/bench/) is keyed by the data files and the
    model files (and ENCODING_VERSION), so a change to them encodes again; `python bench/qdrant.py prepare`
    fills it too.
    """
    import scipy.sparse

    docs, queries, qrels = _read_beir(scifact_dir)
    cache = encoded_cache_file(scifact_dir, trained_model_dir)
    if not cache.is_file():
        doc_matrix = to_csr(encoder.encode_documents([text for _, text in docs]), 30522)
        query_matrix = to_csr(encoder.encode_queries(list(queries.values())), 30522)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}.npz")
        np.savez(
            tmp, doc_ids=np.array([d for d, _ in docs]), query_ids=np.array(list(queries)),
            doc_values=doc_matrix.data, doc_indices=doc_matrix.indices, doc_indptr=doc_matrix.indptr,
            query_values=query_matrix.data, query_indices=query_matrix.indices, query_indptr=query_matrix.indptr,
        )
        os.replace(tmp, cache)
    data = np.load(cache)
    assert list(data["doc_ids"]) == [d for d, _ in docs] and list(data["query_ids"]) == list(queries)
    doc_matrix = scipy.sparse.csr_matrix((data["doc_values"], data["doc_indices"], data["doc_indptr"]), shape=(len(docs), 30522))
    query_matrix = scipy.sparse.csr_matrix((data["query_values"], data["query_indices"], data["query_indptr"]), shape=(len(queries), 30522))
    doc_vectors, query_vectors = from_csr(doc_matrix), from_csr(query_matrix)
    return EncodedCorpus([d for d, _ in docs], doc_vectors, list(queries), query_vectors, qrels)
