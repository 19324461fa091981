"""The small interface every Qdrant engine implements, and the engine-neutral data it exchanges.

`QdrantStore` speaks only this interface; each engine (qdrant-client for a server or local mode in
`client_engine`, the embedded Qdrant engine in `edge_engine`) translates it to its library, maps
that library's errors (`qdrant.errors`) and hides its quirks. Filters travel as qdrant-client
`models.Filter` (the type users already know); the embedded engine converts them.

Point ids are UUID strings (`records.point_id`); payloads are plain JSON-like dicts.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from qdrant_client import models

from trainer.sparse import SparseVector


@dataclass(frozen=True)
class PointData:
    """One point to write: id, SPLADE vector, optional dense vector, payload."""

    id: str
    sparse: SparseVector
    payload: dict[str, Any]
    dense: Sequence[float] | None = None


@dataclass(frozen=True)
class ScoredPoint:
    """One search result: point id, engine score, requested payload."""

    id: str
    score: float
    payload: dict[str, Any]


@dataclass(frozen=True)
class StoredPoint:
    """A retrieved or scrolled point: id, requested payload, and its sparse vector when asked for."""

    id: str
    payload: dict[str, Any]
    sparse: SparseVector | None = None


@dataclass(frozen=True)
class NearestQuery:
    """One ranked list: nearest points by the named vector (sparse or dense), best first.

    With `candidates` (a two-phase query) only the points that query returns are scored: a `prefetch`
    in the engine, so the returned scores are this query's exact scores. Its filter applies there.
    """

    using: str
    limit: int
    sparse: SparseVector | None = None
    dense: Sequence[float] | None = None
    filter: models.Filter | None = None
    score_threshold: float | None = None
    payload: bool | Sequence[str] = True
    candidates: NearestQuery | None = None


@dataclass(frozen=True)
class FusedQuery:
    """Several ranked lists fused inside the engine.

    `rrf_k` is Qdrant's own constant (1 / (k + position), position from 0); `weights` weight the lists.
    """

    sources: Sequence[NearestQuery]
    fusion: Literal["rrf", "dbsf"]
    limit: int
    rrf_k: int = 2
    weights: Sequence[float] | None = None
    payload: bool | Sequence[str] = True


Query = NearestQuery | FusedQuery


@dataclass(frozen=True)
class SparseSettings:
    """The settings of one sparse vector that change scores or storage."""

    idf: bool
    datatype: str = "float32"
    on_disk: bool = False


@dataclass(frozen=True)
class CollectionLayout:
    """What an existing collection holds: its sparse vectors (name -> settings) and dense vectors (name -> size, distance).

    `cluster`: its shard_number, replication_factor and write_consistency_factor as a server reports them
    (empty for the embedded engines, which have one shard).
    """

    sparse: dict[str, SparseSettings]
    dense: dict[str, tuple[int, str]] = field(default_factory=dict)
    indexed_fields: dict[str, str] = field(default_factory=dict)
    cluster: dict[str, int] = field(default_factory=dict)


class Engine(Protocol):
    """What `QdrantStore` needs from an engine. Every method raises only the project's errors."""

    def open(self, *, create: bool) -> bool:
        """Connect; create the collection (returns True) or check the existing one (False); `NotFoundError` if missing and not `create`."""
        ...

    def close(self) -> None:
        """Release connections / the folder lock (idempotent)."""
        ...

    def drop(self) -> None:
        """Delete the collection."""
        ...

    def upsert(self, points: Sequence[PointData]) -> None:
        """Write points (whole batch applied when this returns)."""
        ...

    def delete(self, ids: Sequence[str]) -> None:
        ...

    def count(self, filter: models.Filter | None = None) -> int:
        """Exact count of the points (matching `filter`)."""
        ...

    def query_batch(self, queries: Sequence[Query]) -> list[list[ScoredPoint]]:
        """Run several queries in one round trip (one planned batch for the embedded engine)."""
        ...

    def query_groups(self, queries: Sequence[NearestQuery], group_by: str) -> list[list[ScoredPoint]]:
        """Per query, the best point of each of the best `limit` groups of points sharing the payload value `group_by`."""
        ...

    def retrieve(self, ids: Sequence[str], *, payload: bool | Sequence[str], sparse: bool) -> list[StoredPoint]:
        """Points by id (ids not stored are left out)."""
        ...

    def scroll(
        self, limit: int, offset: Any, *, payload: bool | Sequence[str], filter: models.Filter | None = None
    ) -> tuple[list[StoredPoint], Any]:
        """One page of points (matching `filter`) and the offset of the next page (None at the end)."""
        ...

    def finish_ingest(self) -> None:
        """Make everything written durable and fully indexed."""
        ...

    def storage_bytes(self) -> int | None:
        """Bytes the collection takes, or None when the engine cannot tell."""
        ...

    def read_metadata(self, key: str) -> Any:
        """The value of `key` in the collection's own metadata (None when absent)."""
        ...

    def write_metadata(self, key: str, value: Any) -> None:
        """Set `key` in the collection's own metadata (other keys are kept)."""
        ...


def disk_bytes(folder: Path) -> int | None:
    """Bytes allocated on disk by the files under `folder` (preallocated mmap files count what they use)."""
    if not folder.exists():
        return None
    return sum(f.stat().st_blocks * 512 for f in folder.rglob("*") if f.is_file())


class SerialEngine:
    """An engine whose calls run one at a time, from whichever thread makes them.

    The embedded engine and qdrant-client's local mode are not documented as thread-safe, and async
    searches (and `explain`) run them in worker threads; this lock keeps those calls, and any blocking
    call made meanwhile, from overlapping. Other attributes are the wrapped engine's.
    """

    def __init__(self, engine: Engine) -> None:
        self.inner = engine
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def open(self, *, create: bool) -> bool:
        with self._lock:
            return self.inner.open(create=create)

    def close(self) -> None:
        with self._lock:
            self.inner.close()

    def drop(self) -> None:
        with self._lock:
            self.inner.drop()

    def upsert(self, points: Sequence[PointData]) -> None:
        with self._lock:
            self.inner.upsert(points)

    def delete(self, ids: Sequence[str]) -> None:
        with self._lock:
            self.inner.delete(ids)

    def count(self, filter: models.Filter | None = None) -> int:
        with self._lock:
            return self.inner.count(filter)

    def query_batch(self, queries: Sequence[Query]) -> list[list[ScoredPoint]]:
        with self._lock:
            return self.inner.query_batch(queries)

    def query_groups(self, queries: Sequence[NearestQuery], group_by: str) -> list[list[ScoredPoint]]:
        with self._lock:
            return self.inner.query_groups(queries, group_by)

    def retrieve(self, ids: Sequence[str], *, payload: bool | Sequence[str], sparse: bool) -> list[StoredPoint]:
        with self._lock:
            return self.inner.retrieve(ids, payload=payload, sparse=sparse)

    def scroll(
        self, limit: int, offset: Any, *, payload: bool | Sequence[str], filter: models.Filter | None = None
    ) -> tuple[list[StoredPoint], Any]:
        with self._lock:
            return self.inner.scroll(limit, offset, payload=payload, filter=filter)

    def finish_ingest(self) -> None:
        with self._lock:
            self.inner.finish_ingest()

    def storage_bytes(self) -> int | None:
        with self._lock:
            return self.inner.storage_bytes()
