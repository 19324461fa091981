"""The contract every store adapter (Qdrant, OpenSearch) fulfils for ingestion, search and evaluation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from splade_connectors.records import EncodedDocument, Hit
from trainer.sparse import SparseVector

# A payload filter: exact match on metadata fields ({"field": value} or {"field": [v1, v2]}),
# or an adapter-native filter object passed through unchanged.
Filter = dict[str, Any] | Any


class StoreError(RuntimeError):
    """A store rejected an operation."""


class TransientStoreError(StoreError):
    """A store error worth retrying (timeouts, connection loss, 429, 5xx)."""


class ConfigMismatchError(StoreError):
    """An existing collection or index does not have the configuration that was asked for."""


@runtime_checkable
class SparseStore(Protocol):
    """What the ingestion pipeline, the search helpers and the evaluator need from a store."""

    @property
    def name(self) -> str:
        """Collection or index name."""
        ...

    def upsert(self, batch: Sequence[EncodedDocument]) -> None:
        """Write documents under ids derived from their document ids (idempotent)."""
        ...

    def count(self) -> int:
        """Number of documents stored."""
        ...

    def search_batch(
        self,
        vectors: Sequence[SparseVector],
        *,
        top_k: int = 10,
        filter: Filter | None = None,
        score_threshold: float | None = None,
    ) -> list[list[Hit]]:
        """Top-k hits by dot product for each query vector, best first."""
        ...

    def fetch_vectors(self, doc_ids: Sequence[str]) -> dict[str, SparseVector]:
        """Stored sparse vectors of these documents (missing ids are left out)."""
        ...

    def is_transient(self, error: BaseException) -> bool:
        """Whether an error raised by this store is worth retrying."""
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
