"""The contract every store adapter (Qdrant, OpenSearch) fulfils, for ingestion, search and evaluation.

A store is built from its config without any I/O, then opened (`open()` or `with store:`): opening
connects, and creates the collection/index (`create=True`) or requires it to exist (`create=False`,
`NotFoundError` otherwise); an existing one configured differently gives `ConfigMismatchError`.
Every method raises only the project's errors (`splade_connectors.errors`): each adapter maps its
client library's exceptions in one place. `describe()` names the store for messages and logs
(kind, location, collection) and never contains a secret; `identity()` is the same without
presentation, for checkpoints.

`StoreBase` owns what derives from the config (name, describe, identity), the open/close
bookkeeping and context management; an adapter supplies only `_connect` and `_disconnect`, and
where the collection keeps its encoding record (`_read_encoding`, `_write_encoding`; the record
itself and the checks on it are `splade_connectors.stored_encoding`'s).
Search arguments are validated by the rules here (`require_top_k`, `require_batch_size`,
`hybrid_depth`), so every store refuses the same values with the same message.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Final, Generic, Literal, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict

from splade_connectors.errors import ConfigError, ConfigMismatchError, StoreError, TransientStoreError
from splade_connectors.records import EncodedDocument, Hit
from trainer.sparse import SparseVector

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self is Python 3.11+; the project supports 3.10

__all__ = [
    "AliasStore",
    "AsyncSearchStore",
    "ConfigMismatchError",
    "Filter",
    "Fusion",
    "HybridQuery",
    "SparseStore",
    "StoreBase",
    "StoreConfigBase",
    "StoreError",
    "TransientStoreError",
]

# A payload filter: exact match on metadata fields ({"field": value} or {"field": [v1, v2]}; `doc_id`
# addresses the document id), or an adapter-native filter object passed through unchanged.
Filter = dict[str, Any] | Any

Fusion = Literal["rrf", "dbsf", "linear"]
DEFAULT_RRF_K = 60


class _Default(enum.Enum):
    """The type of `CONFIGURED`: an argument left out, so the config's value applies (None means something else)."""

    CONFIGURED = "configured"


CONFIGURED: Final = _Default.CONFIGURED
Configured = Literal[_Default.CONFIGURED]


class HybridQuery(BaseModel):
    """One hybrid query: the SPLADE vector plus the other signals a store can fuse with it.

    `text` feeds a lexical (BM25) list where the store has one (OpenSearch); `dense` feeds a dense
    vector list where the collection has one (Qdrant). Signals a store cannot use are an error.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    sparse: SparseVector | None = None
    text: str | None = None
    dense: list[float] | None = None


@runtime_checkable
class SparseStore(Protocol):
    """What the ingestion pipeline, the search API and the evaluator need from a store."""

    kind: ClassVar[str]

    @property
    def name(self) -> str:
        """Collection or index name."""
        ...

    def describe(self) -> str:
        """Kind, location and collection for messages (no secrets)."""
        ...

    def identity(self) -> str:
        """A stable identifier of kind, location and collection (no secrets), recorded in checkpoints."""
        ...

    def open(self, *, create: bool = True) -> SparseStore:
        """Connect; create the collection (`create`) or require that it exists. Returns self."""
        ...

    def close(self) -> None:
        """Release connections (and an embedded store's folder lock). Idempotent."""
        ...

    def __enter__(self) -> SparseStore: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def upsert(self, batch: Sequence[EncodedDocument]) -> None:
        """Write documents under ids derived from their document ids (idempotent).

        Documents the store refuses raise `RejectedDocumentsError` naming them.
        """
        ...

    def delete(self, doc_ids: Sequence[str]) -> None:
        """Delete these documents (ids not stored are ignored)."""
        ...

    def count(self) -> int:
        """Number of documents stored (everything written is counted once `finish_ingest` returned)."""
        ...

    def search_batch(
        self,
        vectors: Sequence[SparseVector],
        *,
        top_k: int = 10,
        filter: Filter | None = None,
        score_threshold: float | None = None,
    ) -> list[list[Hit]]:
        """Top-k hits by SPLADE dot product for each query vector, best first; empty vectors get none."""
        ...

    def hybrid_search_batch(
        self,
        queries: Sequence[HybridQuery],
        *,
        top_k: int = 10,
        fusion: Fusion = "rrf",
        rrf_k: int = DEFAULT_RRF_K,
        weights: Sequence[float] | None = None,
        candidates: int | None = None,
        filter: Filter | None = None,
    ) -> list[list[Hit]]:
        """SPLADE fused with the store's other signals (see `HybridQuery`), best first.

        RRF uses the textbook 1/(k + rank), rank from 1; `weights` weight the lists in the order
        sparse, then text or dense; `candidates` is the depth of each list (default max(50, 5 x top_k)).
        """
        ...

    def fetch_vectors(self, doc_ids: Sequence[str]) -> dict[str, SparseVector]:
        """Stored sparse vectors of these documents (ids not stored are left out)."""
        ...

    def fetch_payloads(self, doc_ids: Sequence[str], fields: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The named top-level payload fields of these documents (ids not stored are left out)."""
        ...

    def iter_doc_ids(self, batch_size: int = 1000) -> Iterator[list[str]]:
        """Every stored document id, in batches (streamed: memory bounded by `batch_size`)."""
        ...

    def storage_bytes(self) -> int | None:
        """Bytes the collection/index takes in the store (after `finish_ingest`); None when the store cannot tell."""
        ...

    def begin_ingest(self) -> None:
        """Prepare for a bulk load (e.g. relax refresh)."""
        ...

    def finish_ingest(self) -> None:
        """Make everything written searchable and restore normal settings."""
        ...

    def drop(self) -> None:
        """Delete the collection or index."""
        ...

    def recorded_encoding(self) -> dict[str, Any] | None:
        """The encoding record kept in the collection's own metadata (`stored_encoding`); None when it has none."""
        ...

    def record_encoding(self, record: dict[str, Any]) -> None:
        """Keep this encoding record in the collection's own metadata (replacing an earlier one)."""
        ...


@runtime_checkable
class AsyncSearchStore(Protocol):
    """The async form of a store's searches, for event loops (`splade_connectors.search.asearch`).

    Same arguments, results and errors as `search_batch` / `hybrid_search_batch`; a server store
    awaits its client library's async client, an in-process one runs the search in a worker thread.
    `aclose` releases the async clients too (the store's `close` can only drop them).
    """

    async def asearch_batch(
        self,
        vectors: Sequence[SparseVector],
        *,
        top_k: int = 10,
        filter: Filter | None = None,
        score_threshold: float | None = None,
    ) -> list[list[Hit]]: ...

    async def ahybrid_search_batch(
        self,
        queries: Sequence[HybridQuery],
        *,
        top_k: int = 10,
        fusion: Fusion = "rrf",
        rrf_k: int = DEFAULT_RRF_K,
        weights: Sequence[float] | None = None,
        candidates: int | None = None,
        filter: Filter | None = None,
    ) -> list[list[Hit]]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class AliasStore(Protocol):
    """A store whose collections/indexes can be named through aliases (Qdrant server and local mode, OpenSearch).

    Every command reads and writes through an alias as through the collection it names; `migrate`
    builds a new collection and moves the alias to it in one atomic request (`update_aliases`).
    """

    @property
    def supports_aliases(self) -> bool:
        """Whether this store (engine) has aliases; the methods below refuse with `ConfigError` when not."""
        ...

    def aliases(self) -> dict[str, str]:
        """Every alias -> the collection/index it names (for OpenSearch, the one it writes to)."""
        ...

    def resolve(self, name: str | None = None) -> str:
        """The collection behind `name` (default: this store's name): the aliased one, or `name` itself."""
        ...

    def update_aliases(self, changes: Mapping[str, str | None]) -> None:
        """Point each alias at a collection (None deletes the alias), all applied atomically."""
        ...


class StoreConfigBase(BaseModel):
    """What every store config has: its kind, where it lives, the collection/index it names, and its secrets."""

    # hide_input_in_errors: a refused value (a URL with a password in it) never shows in a validation error
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    kind: ClassVar[str] = "store"

    @property
    def collection_name(self) -> str:  # pragma: no cover - every adapter overrides
        raise NotImplementedError

    def with_collection(self, name: str) -> Self:  # pragma: no cover - every adapter overrides
        """The same config for another collection/index."""
        raise NotImplementedError

    def location(self) -> str:  # pragma: no cover - every adapter overrides
        """Where the collection lives (server URLs, folder or in-memory), without secrets."""
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - every adapter overrides
        """Kind, location and collection, without secrets."""
        raise NotImplementedError

    def secrets(self) -> list[str]:
        """Secret values this config holds (passwords, API keys), for redaction of messages."""
        return []

    @property
    def in_process(self) -> bool:
        """Whether the store lives inside the process that opens it (an embedded engine's folder, memory): no
        other process can write to it at the same time, so it cannot take writes from distributed workers."""
        return False


ConfigT = TypeVar("ConfigT", bound=StoreConfigBase)


class StoreBase(Generic[ConfigT]):
    """What every adapter shares: everything derived from its config, the open/close bookkeeping, context management.

    An adapter implements `_connect` (connect, then create or require the collection) and
    `_disconnect` (release what `_connect` took); `open` and `close` call them once per open state.
    Adapters whose documents name features by token (`takes_vocabulary`) accept a `vocabulary`.
    """

    kind: ClassVar[str] = "store"
    takes_vocabulary: ClassVar[bool] = False

    def __init__(self, config: ConfigT) -> None:
        self.config = config
        self.created = False  # whether the last `open()` created the collection/index
        self._opened = False
        self._encoding: dict[str, Any] | None = None  # the encoding record, once read (`recorded_encoding`)
        self._encoding_read = False

    @property
    def name(self) -> str:
        """Collection or index name."""
        return self.config.collection_name

    def describe(self) -> str:
        """Kind, location and collection for messages (no secrets)."""
        return self.config.describe()

    def identity(self) -> str:
        """A stable identifier of kind, location and collection (no secrets), recorded in checkpoints."""
        return f"{self.kind}|{self.config.location()}|{self.name}"

    def open(self, *, create: bool = True) -> Self:
        """Connect; create the collection (`create`) or require that it exists. Returns self; a no-op when open."""
        if self._opened:
            return self
        self.created = self._connect(create=create)
        self._opened = True
        self._encoding, self._encoding_read = None, False
        return self

    def close(self) -> None:
        """Release connections (and an embedded store's folder lock). Idempotent."""
        self._opened = False
        self._encoding, self._encoding_read = None, False
        self._disconnect()

    async def aclose(self) -> None:
        """`close()` from a coroutine: also closes the async clients the async searches made on this loop."""
        await self._aclose_async_clients()
        self.close()

    async def _aclose_async_clients(self) -> None:
        """Close the async clients (adapters that have some override this)."""

    def recorded_encoding(self) -> dict[str, Any] | None:
        """The encoding record the collection keeps in its own metadata, None when it has none (read once per open)."""
        self._require_open()
        if not self._encoding_read:
            self._encoding = self._read_encoding()
            self._encoding_read = True
        return self._encoding

    def record_encoding(self, record: dict[str, Any]) -> None:
        """Keep this encoding record in the collection's own metadata (replacing an earlier one)."""
        self._require_open()
        self._write_encoding(dict(record))
        self._encoding, self._encoding_read = dict(record), True

    def _read_encoding(self) -> dict[str, Any] | None:  # pragma: no cover - every adapter overrides
        """The record as the collection's metadata holds it (None when absent)."""
        raise NotImplementedError

    def _write_encoding(self, record: dict[str, Any]) -> None:  # pragma: no cover - every adapter overrides
        """Write the record into the collection's metadata."""
        raise NotImplementedError

    def _connect(self, *, create: bool) -> bool:  # pragma: no cover - every adapter overrides
        """Connect and create or require the collection; True when it was created. Releases what it took on failure."""
        raise NotImplementedError

    def _disconnect(self) -> None:  # pragma: no cover - every adapter overrides
        """Release what `_connect` took (safe to call when nothing was taken)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        if not self._opened:
            self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _require_open(self) -> None:
        if not self._opened:
            raise StoreError(f"{self.describe()} is not open: call open() or use `with store:`")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}{'' if self._opened else ' (closed)'}>"


# ---- search arguments: one rule each, applied by every store (and by `search()` before encoding) ----------
def require_top_k(top_k: int) -> int:
    """`top_k`, refused unless >= 1."""
    if top_k < 1:
        raise ConfigError(f"top_k must be >= 1, got {top_k}")
    return top_k


def require_batch_size(batch_size: int) -> int:
    """A page size (`iter_doc_ids`), refused unless >= 1."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    return batch_size


def hybrid_depth(top_k: int, *, candidates: int | None, rrf_k: int) -> int:
    """The depth of each list hybrid search fuses (default max(50, 5 x top_k)), after checking every hybrid argument."""
    require_top_k(top_k)
    if rrf_k < 1:
        raise ConfigError(f"rrf_k must be >= 1, got {rrf_k}")
    if candidates is not None:
        if candidates < top_k:
            raise ConfigError(f"candidates ({candidates}) must be >= top_k ({top_k})")
        return candidates
    return max(50, 5 * top_k)
