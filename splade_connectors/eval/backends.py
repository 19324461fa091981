"""Search backends for evaluation: the same pre-encoded vectors ranked in memory, in Qdrant or in OpenSearch.

- `ExactBackend`: the core's exact ranking (`trainer.retrieval.exact_rankings`: scipy CSR matmul,
  float64 accumulation, top-k in the (-score, doc id) order sentence-transformers uses, zero scores
  included), the same ranking the trainer's evaluation hook uses.
- `StoreBackend`: any `SparseStore`: a fresh collection/index per dataset, filled with the
  pre-encoded `EncodedDocument`s by `upsert` (no re-encoding; transient errors retried), then
  `search_batch`; dropped afterwards unless `keep` (a kept collection records the encoding of its vectors,
  `splade_connectors.stored_encoding`, so a later `search` checks its model).
- Store factories import their adapter lazily, only when that backend is requested.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from splade_connectors.errors import ConfigError, StoreError
from splade_connectors.eval.encoding import EncodedDataset, Progress
from splade_connectors.registry import build_store, store_config
from splade_connectors.retry import RetryPolicy
from splade_connectors.store import SparseStore
from trainer.retrieval import exact_rankings

logger = logging.getLogger(__name__)

Ranking = dict[str, list[tuple[str, float]]]
StoreFactory = Callable[[str], SparseStore]  # collection/index name -> an open, empty store


@dataclass
class BackendTimings:
    """Seconds spent loading the corpus and searching all queries."""

    index_seconds: float = 0.0
    search_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class Backend(Protocol):
    """Ranks the encoded queries of a dataset against its encoded documents."""

    name: str

    def rank(self, data: EncodedDataset, top_k: int, progress: Progress | None = None) -> tuple[Ranking, BackendTimings]:
        ...


class ExactBackend:
    """In-memory exact dot product (`trainer.retrieval.exact_rankings`): the reference every store is compared with."""

    name = "exact"

    def __init__(self, query_chunk: int = 256) -> None:
        self.query_chunk = query_chunk

    def rank(self, data: EncodedDataset, top_k: int, progress: Progress | None = None) -> tuple[Ranking, BackendTimings]:
        started = time.perf_counter()
        if data.passages is not None:
            ranking = self._rank_passages(data, top_k, progress)
        else:
            ranking = exact_rankings(
                data.query_ids, data.query_vectors, data.doc_ids, data.doc_vectors,
                top_k=top_k, dim=data.dim, chunk=self.query_chunk, progress=progress,
            )
        return ranking, BackendTimings(search_seconds=time.perf_counter() - started)

    def _rank_passages(self, data: EncodedDataset, top_k: int, progress: Progress | None) -> Ranking:
        """Documents by their best passage: the exact passage ranking, deep enough to hold `top_k` documents
        (`top_k` x the most passages of one document), each document kept at its first (best) passage."""
        assert data.passages is not None
        owners: list[str] = []
        keys: list[str] = []
        vectors = []
        for doc_id, passages in zip(data.doc_ids, data.passages):
            for passage in passages:
                owners.append(doc_id)
                keys.append(f"{len(keys):012d}")
                vectors.append(passage.sparse)
        owner = dict(zip(keys, owners))
        deepest = max((len(p) for p in data.passages), default=1)
        ranked = exact_rankings(
            data.query_ids, data.query_vectors, keys, vectors,
            top_k=min(len(keys), top_k * max(1, deepest)), dim=data.dim, chunk=self.query_chunk, progress=progress,
        )
        ranking: Ranking = {}
        for qid, hits in ranked.items():
            best: dict[str, float] = {}
            for key, score in hits:
                best.setdefault(owner[key], score)
            ranking[qid] = sorted(best.items(), key=lambda item: (-item[1], item[0]))[:top_k]
        return ranking


def collection_name(prefix: str, dataset: str) -> str:
    """A fresh, valid name for Qdrant and OpenSearch alike (lowercase, no odd characters)."""
    slug = re.sub(r"[^a-z0-9]+", "-", dataset.lower()).strip("-") or "dataset"
    return f"{prefix}-{slug}-{uuid.uuid4().hex[:8]}"


class StoreBackend:
    """A live store: fresh collection per dataset, upsert of pre-encoded docs, batched search, cleanup."""

    def __init__(
        self,
        name: str,
        factory: StoreFactory,
        *,
        keep: bool = False,
        upsert_batch: int = 256,
        query_batch: int = 32,
        prefix: str = "splade-eval",
        attempts: int = 5,
    ) -> None:
        self.name, self.factory, self.keep = name, factory, keep
        self.upsert_batch, self.query_batch, self.prefix, self.attempts = upsert_batch, query_batch, prefix, attempts
        self.created: list[str] = []

    def rank(self, data: EncodedDataset, top_k: int, progress: Progress | None = None) -> tuple[Ranking, BackendTimings]:
        collection = collection_name(self.prefix, data.dataset.name)
        store = self.factory(collection)
        store.open(create=True)
        self.created.append(collection)
        timings = BackendTimings(extra={"collection": collection})
        try:
            retrying = RetryPolicy(attempts=self.attempts, max_wait=10.0).retrying(f"evaluation on {store.describe()}")
            started = time.perf_counter()
            if data.encoding is not None:
                store.record_encoding(data.encoding)
            store.begin_ingest()
            for batch in data.encoded_documents(self.upsert_batch):
                retrying(store.upsert, batch)
            store.finish_ingest()
            stored = store.count()  # documents: on a passage collection, one first passage each
            if stored != len(data.doc_ids):
                raise StoreError(f"{store.describe()} holds {stored} documents, expected {len(data.doc_ids)}")
            timings.index_seconds = time.perf_counter() - started
            started = time.perf_counter()
            ranking: Ranking = {}
            for start in range(0, len(data.query_ids), self.query_batch):
                qids = data.query_ids[start : start + self.query_batch]
                vectors = data.query_vectors[start : start + self.query_batch]
                hits = retrying(store.search_batch, vectors, top_k=top_k)
                for qid, found in zip(qids, hits):
                    ranking[qid] = [(hit.id, float(hit.score)) for hit in found]
                if progress:
                    progress(len(qids))
            timings.search_seconds = time.perf_counter() - started
            return ranking, timings
        finally:
            if self.keep:
                logger.info("keeping %s %s", self.name, collection)
            else:
                try:
                    store.drop()
                except Exception as exc:  # noqa: BLE001 - cleanup must not hide the real error
                    logger.warning("could not drop %s %s: %s", self.name, collection, exc)
            store.close()


# ---- store factories (the registry imports an adapter only when its backend is requested) ---------------
def store_factory(kind: str, options: Mapping[str, Any] | None = None) -> StoreFactory:
    """Stores of one kind, one fresh collection/index per dataset, sharing one client where the adapter can.

    Qdrant without a url is embedded; OpenSearch evaluation indices get 0 replicas (single-node friendly).
    """
    options = {k: v for k, v in (options or {}).items() if v is not None}
    if kind == "opensearch":
        if not options.get("url") and not options.get("hosts"):
            raise ConfigError("the opensearch backend needs a url (e.g. --opensearch-url http://localhost:9200)")
        options.setdefault("replicas", 0)
        if "url" in options:
            options["hosts"] = [options.pop("url")]
    base = store_config(kind, **options)

    def make(collection: str) -> SparseStore:
        return build_store(base.with_collection(collection))

    return make


def build_backends(names: list[str], options: Mapping[str, Mapping[str, Any]] | None = None, *, keep: bool = False) -> list[Backend]:
    """Backends by name (`exact`, `qdrant`, `opensearch`); `options[name]` goes to that store's factory."""
    options = options or {}
    backends: list[Backend] = []
    for name in names:
        if name == "exact":
            backends.append(ExactBackend())
        elif name in ("qdrant", "opensearch"):
            backends.append(StoreBackend(name, store_factory(name, options.get(name)), keep=keep))
        else:
            raise ConfigError(f"unknown backend {name!r}; choose from exact, qdrant, opensearch")
    return backends
