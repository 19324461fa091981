"""The ingestion pipeline every store shares: validate, encode in batches, upsert with overlap, resume.

Encoding of batch n+1 runs while batch n is written by one writer thread, so ingestion costs little
more than encoding. Writes keep input order; after each written batch a checkpoint records how many
input records are done, so an interrupted run resumes where it stopped (ids are deterministic, so a
batch written twice is overwritten, never duplicated). Transient store errors are retried with
bounded exponential backoff; anything else stops the run after the batches already accepted are safe.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from splade_connectors.errors import IngestError
from splade_connectors.ingest.sources import FieldMap, RawRecord
from splade_connectors.ingest.validate import InvalidRecord, to_document
from splade_connectors.records import Document, EncodedDocument
from splade_connectors.retry import RetryPolicy
from splade_connectors.store import SparseStore
from trainer.encoder import SpladeEncoder

logger = logging.getLogger(__name__)

DenseEncoder = Callable[[list[str]], Sequence[Sequence[float]]]


class IngestConfig(BaseModel):
    """How to ingest: batch size, what to do with bad records, titles, retries and resume state."""

    model_config = ConfigDict(frozen=True)

    batch_size: int = Field(64, ge=1)
    on_invalid: Literal["skip", "fail"] = "skip"
    with_title: bool = True
    fields: FieldMap = Field(default_factory=FieldMap)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    checkpoint: Path | None = None
    source_id: str = "iterable"


class IngestReport(BaseModel):
    """What an ingestion did."""

    accepted: int = 0
    invalid: list[InvalidRecord] = Field(default_factory=list)
    skipped_by_resume: int = 0
    batches: int = 0
    truncated: int = 0
    chunked: int = 0
    seconds: float = 0.0
    encode_seconds: float = 0.0
    write_seconds: float = 0.0

    @property
    def docs_per_second(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0


class _Checkpoint:
    """Progress of one source in a JSON file, written atomically after each stored batch."""

    def __init__(self, path: Path | None, source_id: str) -> None:
        self.path, self.source_id = path, source_id

    def load(self) -> int:
        if self.path is None or not self.path.exists():
            return 0
        state = json.loads(self.path.read_text(encoding="utf-8"))
        if state.get("source_id") != self.source_id:
            raise IngestError(
                f"checkpoint {self.path} belongs to another source ({state.get('source_id')!r}); "
                "delete it to start over"
            )
        return int(state["records_done"])

    def save(self, records_done: int) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(json.dumps({"source_id": self.source_id, "records_done": records_done}), encoding="utf-8")
        os.replace(tmp, self.path)

    def clear(self) -> None:
        if self.path is not None and self.path.exists():
            self.path.unlink()


class _Batch(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    encoded: list[EncodedDocument]
    records_done: int


class IngestPipeline:
    """Validate -> encode (SPLADE, optional dense) -> upsert, batch by batch, for any `SparseStore`."""

    def __init__(
        self,
        encoder: SpladeEncoder,
        store: SparseStore,
        config: IngestConfig | None = None,
        *,
        dense_encoder: DenseEncoder | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.encoder, self.store = encoder, store
        self.config = config or IngestConfig()
        self.dense_encoder = dense_encoder
        self.progress = progress

    def run(self, records: Iterable[RawRecord]) -> IngestReport:
        """Ingest everything; raises `IngestError` (after securing earlier batches) on a permanent failure."""
        config, report = self.config, IngestReport()
        checkpoint = _Checkpoint(config.checkpoint, config.source_id)
        already_done = checkpoint.load()
        if already_done:
            logger.info("resuming %s after %d records", config.source_id, already_done)
        report.skipped_by_resume = already_done
        started = time.perf_counter()
        writes: queue.Queue[_Batch | None] = queue.Queue(maxsize=1)
        failure: list[BaseException] = []
        writer = threading.Thread(target=self._write_loop, args=(writes, checkpoint, report, failure), daemon=True)
        self.store.begin_ingest()
        writer.start()
        try:
            for batch_docs, records_done in self._batches(records, already_done, report):
                if failure:
                    break
                encoded = self._encode(batch_docs, report)
                writes.put(_Batch(encoded=encoded, records_done=records_done))
        except BaseException:
            writes.put(None)
            writer.join()
            self._finish_after_failure()
            raise
        writes.put(None)
        writer.join()
        if failure:
            self._finish_after_failure()
            raise IngestError(f"ingestion stopped: {failure[0]}") from failure[0]
        self.store.finish_ingest()
        checkpoint.clear()
        report.seconds = time.perf_counter() - started
        return report

    def _finish_after_failure(self) -> None:
        """Restore the store's normal settings after a failed run, without hiding the original error."""
        try:
            self.store.finish_ingest()
        except Exception as exc:  # noqa: BLE001 - the store may be the thing that failed
            logger.warning("could not finish ingestion on %s after the failure: %s", self.store.name, exc)

    # ---- stages ---------------------------------------------------------------------------------------
    def _batches(self, records: Iterable[RawRecord], skip: int, report: IngestReport) -> Iterator[tuple[list[Document], int]]:
        """Valid documents in batches, with the number of input records consumed so far."""
        batch: list[Document] = []
        ids_in_batch: set[str] = set()
        consumed = 0
        for raw in records:
            consumed += 1
            if consumed <= skip:
                continue
            result = to_document(raw, self.config.fields)
            if isinstance(result, Document) and result.id in ids_in_batch:
                result = InvalidRecord(position=raw.position, doc_id=result.id, reason="duplicate id in the same batch")
            if isinstance(result, InvalidRecord):
                self._reject(result, report)
                continue
            batch.append(result)
            ids_in_batch.add(result.id)
            if len(batch) >= self.config.batch_size:
                yield batch, consumed
                batch, ids_in_batch = [], set()
        if batch or consumed > skip:
            yield batch, consumed

    def _reject(self, record: InvalidRecord, report: IngestReport) -> None:
        if self.config.on_invalid == "fail":
            raise IngestError(f"invalid input, {record.describe()}")
        logger.warning("skipping %s", record.describe())
        report.invalid.append(record)

    def _encode(self, docs: list[Document], report: IngestReport) -> list[EncodedDocument]:
        if not docs:
            return []
        started = time.perf_counter()
        texts = [d.text_to_encode(self.config.with_title) for d in docs]
        sparse = self.encoder.encode_documents(texts)
        report.truncated += len(self.encoder.stats.truncated)
        report.chunked += len(self.encoder.stats.chunked)
        dense = list(self.dense_encoder(texts)) if self.dense_encoder else [None] * len(docs)
        report.encode_seconds += time.perf_counter() - started
        return [
            EncodedDocument(document=d, sparse=s, dense=list(v) if v is not None else None)
            for d, s, v in zip(docs, sparse, dense)
        ]

    def _write_loop(self, writes: queue.Queue[_Batch | None], checkpoint: _Checkpoint, report: IngestReport, failure: list[BaseException]) -> None:
        retrying = self.config.retry.retrying(f"write to {self.store.describe()}")
        while (item := writes.get()) is not None:
            if failure:
                continue
            try:
                started = time.perf_counter()
                if item.encoded:
                    retrying(self.store.upsert, item.encoded)
                report.write_seconds += time.perf_counter() - started
                report.accepted += len(item.encoded)
                report.batches += 1
                checkpoint.save(item.records_done)
                if self.progress:
                    self.progress(len(item.encoded))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                failure.append(exc)
