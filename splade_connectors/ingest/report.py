"""What an ingestion did: one report for every engine, with bounded memory.

Invalid records are all counted (`invalid_count`) but only the first `max_invalid_kept` are kept
(`invalid`, sorted by position), so a corpus full of bad lines cannot exhaust memory.
"""

from __future__ import annotations

import threading
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from splade_connectors.ingest.validate import InvalidRecord


class IngestReport(BaseModel):
    """Counts and timings of one ingestion run.

    `accepted` documents were written (`new` + `updated`); `unchanged` ones were skipped by their
    content hash; `deleted` stored documents were absent from the source (`delete_missing`);
    `stored` is the store's count once the run finished.
    """

    model_config = ConfigDict(validate_assignment=False)

    engine: str = "single-process"
    records: int = 0
    accepted: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    stored: int | None = None
    invalid: list[InvalidRecord] = Field(default_factory=list)
    invalid_count: int = 0
    skipped_by_resume: int = 0
    batches: int = 0
    truncated: int = 0
    chunked: int = 0
    seconds: float = 0.0
    encode_seconds: float = 0.0
    write_seconds: float = 0.0
    max_invalid_kept: int = 1000

    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def docs_per_second(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0

    def add_invalid(self, record: InvalidRecord) -> None:
        """Count an invalid record; keep it if fewer than `max_invalid_kept` are kept (thread-safe)."""
        with self._lock:
            self.invalid_count += 1
            if len(self.invalid) < self.max_invalid_kept:
                self.invalid.append(record)

    def finalize(self) -> None:
        """Order the kept invalid records by input position."""
        self.invalid.sort(key=lambda r: r.position)

    def summary(self) -> dict[str, Any]:
        """The counts as a plain dict (for JSON output and logs)."""
        return {
            "engine": self.engine,
            "records": self.records,
            "accepted": self.accepted,
            "new": self.new,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
            "stored": self.stored,
            "invalid": self.invalid_count,
            "skipped_by_resume": self.skipped_by_resume,
            "truncated": self.truncated,
            "chunked": self.chunked,
            "batches": self.batches,
            "seconds": round(self.seconds, 3),
            "encode_seconds": round(self.encode_seconds, 3),
            "write_seconds": round(self.write_seconds, 3),
            "docs_per_second": round(self.docs_per_second, 2),
        }
