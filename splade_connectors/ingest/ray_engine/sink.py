"""The Ray Datasink that writes encoded rows through the project's store code.

Each write task builds the store from its config with the registry (`build_store`), writes rows in
batches of `IngestConfig.batch_size` with `SparseStore.upsert` under the same retry policy and the
same isolation of refused documents as the single-process engine, and returns a tally. Point ids
are deterministic, so a retried or re-executed task overwrites what it wrote, never duplicates it;
a tally is only counted for the attempt that succeeded. `on_write_complete` (on the driver) adds
the tallies into the session's `IngestReport`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import ray
from ray.data.block import Block, BlockAccessor
from ray.data.datasource import Datasink

from splade_connectors.errors import IngestError
from splade_connectors.ingest.config import IngestConfig
from splade_connectors.ingest.isolation import write_isolating
from splade_connectors.ingest.ray_engine.stages import ENCODE, INVALID, UNCHANGED, document_from_row
from splade_connectors.ingest.report import IngestReport
from splade_connectors.ingest.session import fail_on
from splade_connectors.ingest.validate import InvalidRecord
from splade_connectors.records import EncodedDocument
from splade_connectors.registry import build_store
from splade_connectors.store import SparseStore, StoreConfigBase
from trainer.sparse import SparseVector

# Invalid records each write task sends back as examples (all are counted): bounds the driver's memory
# even when most of a huge corpus is invalid (a job has about corpus size / 256 write tasks).
_KEPT_PER_TASK = 20
_RECORD_FIELDS = ("positions", "doc_ids", "statuses", "existed", "reasons", "documents", "indices", "values", "truncated", "chunked")


class _Tally:
    """What one write task did; plain data so it travels back to the driver."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.counts = {"records": 0, "accepted": 0, "new": 0, "updated": 0, "unchanged": 0, "invalid": 0, "truncated": 0, "chunked": 0, "batches": 0}
        self.invalid: list[dict[str, Any]] = []
        self.write_seconds = 0.0

    def add_invalid(self, position: int, doc_id: str | None, reason: str) -> None:
        self.counts["invalid"] += 1
        if len(self.invalid) < self.keep:
            self.invalid.append({"position": position, "doc_id": doc_id, "reason": reason})

    def as_dict(self) -> dict[str, Any]:
        return {**self.counts, "invalid_kept": self.invalid, "write_seconds": self.write_seconds}


class StoreDatasink(Datasink[dict[str, Any]]):
    """Writes "encode" rows to the store; counts "unchanged" and "invalid" rows for the report."""

    def __init__(self, store_config: StoreConfigBase, vocabulary: list[str], config: IngestConfig) -> None:
        self.store_config = store_config
        self.vocabulary_ref = ray.put(vocabulary)
        self.vocab_size = len(vocabulary)
        self.config = config
        self.tallies: list[dict[str, Any]] = []

    def get_name(self) -> str:
        return f"Write{self.store_config.kind.capitalize()}"

    def write(self, blocks: Iterable[Block], ctx: Any) -> dict[str, Any]:
        store = build_store(self.store_config, vocabulary=ray.get(self.vocabulary_ref)).open(create=False)
        try:
            return self._write(store, blocks)
        finally:
            store.close()

    def _write(self, store: SparseStore, blocks: Iterable[Block]) -> dict[str, Any]:
        tally = _Tally(min(self.config.max_invalid_kept, _KEPT_PER_TASK))
        batch: list[tuple[EncodedDocument, int, bool]] = []  # (document, position, existed)
        for block in blocks:
            for group in BlockAccessor.for_block(block).to_arrow().to_pylist():
                for record in zip(*(group[name] for name in _RECORD_FIELDS)):
                    position, doc_id, status, existed, reason, document, indices, values, truncated, chunked = record
                    tally.counts["records"] += 1
                    tally.counts["truncated"] += bool(truncated)
                    tally.counts["chunked"] += bool(chunked)
                    if status == UNCHANGED:
                        tally.counts["unchanged"] += 1
                    elif status == INVALID:
                        tally.add_invalid(position, doc_id, reason)
                    elif status == ENCODE:
                        sparse = SparseVector(indices, values, self.vocab_size)
                        batch.append((EncodedDocument(document=document_from_row(document), sparse=sparse), position, existed))
                        if len(batch) >= self.config.batch_size:
                            self._flush(store, batch, tally)
                            batch = []
        if batch:
            self._flush(store, batch, tally)
        return tally.as_dict()

    def _flush(self, store: SparseStore, batch: list[tuple[EncodedDocument, int, bool]], tally: _Tally) -> None:
        retry = self.config.retry
        started = time.perf_counter()
        refused = write_isolating(
            lambda part: retry.call(store.upsert, part, what=f"write to {store.describe()}"), [item for item, _, _ in batch]
        )
        tally.write_seconds += time.perf_counter() - started
        tally.counts["batches"] += 1
        if refused and tally.counts["accepted"] == 0 and len(refused) == len(batch) >= 2:
            raise IngestError(
                f"{store.describe()} refused every document of a write task's first batch ({next(iter(refused.values()))}): "
                "the store's configuration, not the records, is the likely cause"
            )
        for item, position, existed in batch:
            doc_id = item.document.id
            if doc_id in refused:
                record = InvalidRecord(position=position, doc_id=doc_id, reason=f"the store refused it: {refused[doc_id]}")
                fail_on(record, self.config)
                tally.add_invalid(position, doc_id, record.reason)
                continue
            tally.counts["accepted"] += 1
            tally.counts["updated" if existed else "new"] += 1

    def on_write_complete(self, write_result: Any) -> None:
        self.tallies = list(write_result.write_returns)

    def add_to(self, report: IngestReport) -> None:
        """Add the tallies of every write task to `report` (invalid records sorted by position, capped)."""
        keep = report.max_invalid_kept
        for tally in self.tallies:
            for name in ("records", "accepted", "new", "updated", "unchanged", "truncated", "chunked", "batches"):
                setattr(report, name, getattr(report, name) + int(tally[name]))
            report.write_seconds += float(tally["write_seconds"])
            report.invalid_count += int(tally["invalid"])
            kept = report.invalid + [InvalidRecord(**item) for item in tally["invalid_kept"]]
            report.invalid = sorted(kept, key=lambda r: r.position)[:keep]
