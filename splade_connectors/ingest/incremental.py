"""Incremental re-ingestion: which documents are new, updated or unchanged; which stored ones are gone.

- `classify`: one real-time read per batch (`fetch_payloads(ids, ["content_hash"])`) tells, for
  each document, whether the store holds it and with which content hash. Unchanged documents
  (same hash) are skipped when `skip_unchanged` is on; the others are "new" or "updated". The read
  also gives the exact number of new documents, which the checkpoint uses to check a resumed store.
- `SourceIdSet`: the ids a source holds, kept in a temporary SQLite file rather than in memory,
  for `delete_missing` on corpora of any size.
- `delete_missing`: streams the stored ids (`iter_doc_ids`) and deletes those not in the source.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Literal

from splade_connectors.records import CONTENT_HASH_FIELD
from splade_connectors.retry import RetryPolicy
from splade_connectors.store import SparseStore

logger = logging.getLogger(__name__)

Status = Literal["new", "updated", "unchanged"]
_SQL_CHUNK = 500
_INSERT_BUFFER = 10_000


def classify(
    store: SparseStore,
    doc_ids: Sequence[str],
    hashes: Sequence[str],
    *,
    skip_unchanged: bool,
    retry: RetryPolicy,
    in_flight: Mapping[str, str] | None = None,
) -> list[Status]:
    """For each document: "new" (not stored), "updated" (stored, to be written) or "unchanged" (same hash, skipped).

    `in_flight` maps ids (to their hashes) of batches handed to the writer but maybe not stored
    yet, so a document repeated in the next batch is not counted as new twice.
    """
    if not doc_ids:
        return []
    stored = retry.call(store.fetch_payloads, list(doc_ids), [CONTENT_HASH_FIELD], what=f"read of {store.describe()}")
    pending = in_flight or {}
    statuses: list[Status] = []
    for doc_id, new_hash in zip(doc_ids, hashes):
        if doc_id in stored:
            old_hash = stored[doc_id].get(CONTENT_HASH_FIELD)
        elif doc_id in pending:
            old_hash = pending[doc_id]
        else:
            statuses.append("new")
            continue
        statuses.append("unchanged" if skip_unchanged and old_hash == new_hash else "updated")
    return statuses


class SourceIdSet:
    """A set of document ids on disk (temporary SQLite file): memory stays bounded at any corpus size."""

    def __init__(self, directory: str | None = None) -> None:
        self._folder = tempfile.mkdtemp(prefix="splade-source-ids-", dir=directory)
        self._db = sqlite3.connect(os.path.join(self._folder, "ids.sqlite"), check_same_thread=False)
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-8192", "temp_store=FILE"):
            self._db.execute(f"PRAGMA {pragma}")
        self._db.execute("CREATE TABLE ids (id TEXT PRIMARY KEY) WITHOUT ROWID")
        self._buffer: list[tuple[str]] = []

    def add(self, doc_id: str) -> None:
        self._buffer.append((doc_id,))
        if len(self._buffer) >= _INSERT_BUFFER:
            self.flush()

    def update(self, doc_ids: Iterable[str]) -> None:
        for doc_id in doc_ids:
            self.add(doc_id)

    def flush(self) -> None:
        if self._buffer:
            self._db.executemany("INSERT OR IGNORE INTO ids VALUES (?)", self._buffer)
            self._db.commit()
            self._buffer = []

    def __len__(self) -> int:
        self.flush()
        return int(self._db.execute("SELECT COUNT(*) FROM ids").fetchone()[0])

    def missing(self, doc_ids: Sequence[str]) -> list[str]:
        """The ids of `doc_ids` that are not in the set, in their order."""
        self.flush()
        present: set[str] = set()
        for start in range(0, len(doc_ids), _SQL_CHUNK):
            chunk = list(doc_ids[start : start + _SQL_CHUNK])
            marks = ",".join("?" * len(chunk))
            present.update(row[0] for row in self._db.execute(f"SELECT id FROM ids WHERE id IN ({marks})", chunk))
        return [doc_id for doc_id in doc_ids if doc_id not in present]

    def close(self) -> None:
        try:
            self._db.close()
        finally:
            shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> SourceIdSet:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def delete_missing(
    store: SparseStore,
    source_ids: SourceIdSet,
    retry: RetryPolicy,
    *,
    page_size: int = 1000,
    on_deleted: Callable[[int], None] | None = None,
) -> int:
    """Delete every stored document whose id is not in `source_ids`; returns how many were deleted.

    Call it after everything was written and made visible (`finish_ingest`): OpenSearch lists ids as
    of its last refresh. Deleting behind the scan is safe on both stores (Qdrant scrolls by point id,
    OpenSearch pages with `search_after` on `doc_id`, and deletions show only after a refresh).
    """
    deleted = 0
    where = store.describe()
    for stored in store.iter_doc_ids(page_size):
        gone = source_ids.missing(stored)
        if not gone:
            continue
        retry.call(store.delete, gone, what=f"delete on {where}")
        deleted += len(gone)
        if on_deleted is not None:
            on_deleted(len(gone))
    if deleted:
        logger.info("deleted %d documents of %s that are not in the source", deleted, where)
    return deleted
