"""The single-process ingestion pipeline: validate, classify, encode, write with overlap, resume.

Encoding of batch n+1 runs while batch n is written by one writer thread (a queue of one batch),
so ingestion costs little more than encoding, and memory holds at most three batches whatever the
corpus size. Writes keep input order; after each written batch the checkpoint records how many
input records are done, so an interrupted run resumes where it stopped (ids are deterministic: a
batch written twice is overwritten, never duplicated).

One bad record never stops the run under `on_invalid="skip"`: records refused by validation, by
the encoder or by the store are isolated (`isolation.py`), reported by position and id, and the
rest of their batch is stored. Under `on_invalid="fail"` the first one stops the run. Transient
store errors are retried (`RetryPolicy`); other store errors stop the run after the batches already
accepted are safe. An input without any record, or without a single usable one, is an `InputError`.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from splade_connectors.encoding import DocumentEncoder
from splade_connectors.errors import IngestError, InputError, ResumeError, StoreError
from splade_connectors.ingest.checkpoint import CheckpointFile, CheckpointState, RunIdentity, check_belongs, verify_store
from splade_connectors.ingest.config import IngestConfig
from splade_connectors.ingest.identity import run_identity, stored_hash
from splade_connectors.ingest.incremental import SourceIdSet, Status, classify, delete_missing
from splade_connectors.ingest.isolation import encode_isolating, write_isolating
from splade_connectors.ingest.report import IngestReport
from splade_connectors.ingest.sources import RawRecord
from splade_connectors.ingest.validate import InvalidRecord, to_document
from splade_connectors.records import Document, EncodedDocument
from splade_connectors.store import SparseStore

logger = logging.getLogger(__name__)

DenseEncoder = Callable[[list[str]], Sequence[Sequence[float]]]
_LOGGED_INVALID = 100


@dataclass
class _Pending:
    """Valid documents of one batch, their input positions, and the input records consumed so far."""

    docs: list[Document]
    positions: list[int]
    records_done: int


@dataclass
class _WriteJob:
    encoded: list[EncodedDocument]
    positions: list[int]
    statuses: list[Status]
    records_done: int
    ids: dict[str, str] = field(default_factory=dict)  # doc id -> content hash (for in-flight lookups)


class IngestPipeline:
    """Validate -> classify -> encode (SPLADE, optional dense) -> upsert, batch by batch, for any `SparseStore`."""

    def __init__(
        self,
        encoder: DocumentEncoder,
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

    def run(self, records: Iterable[RawRecord], *, source_name: str = "the input") -> IngestReport:
        """Ingest everything; see the module docstring for what stops a run and what does not."""
        return _Run(self, source_name).execute(records)


class _Run:
    """The state of one `IngestPipeline.run`: report, checkpoint, writer thread, in-flight ids."""

    def __init__(self, pipeline: IngestPipeline, source_name: str) -> None:
        self.pipeline = pipeline
        self.store = pipeline.store
        self.config = config = pipeline.config
        self.source_name = source_name
        self.report = IngestReport(max_invalid_kept=config.max_invalid_kept)
        self.identity = run_identity(pipeline.encoder, config)  # ConfigError when the run needs one the encoder lacks
        self.identity_key = self.identity.key() if self.identity is not None else None
        self.checkpoint = CheckpointFile(config.checkpoint)
        self.source_ids: SourceIdSet | None = None
        self.consumed = 0
        self.reported_done = 0
        self.in_flight: deque[dict[str, str]] = deque(maxlen=2)
        self.writes: queue.Queue[_WriteJob | None] = queue.Queue(maxsize=1)
        self.failure: list[BaseException] = []
        self.rng = random.Random(0)
        self.state = self._start_state()
        self.skip = self.state.records_done  # records done by earlier runs (the state moves on as batches are written)

    # ---- setup and teardown -------------------------------------------------------------------------
    def _start_state(self) -> CheckpointState:
        store, config = self.store, self.config
        run = RunIdentity(
            source=config.source_id, store_kind=store.kind, store=store.identity(), collection=store.name,
            encoding=self.identity,
        )
        state = self.checkpoint.load()
        if state is None:
            count = config.retry.call(store.count, what=f"count on {store.describe()}")
            return CheckpointState(run=run, store_count_at_start=count)
        assert config.checkpoint is not None
        moved = check_belongs(state, run, config.checkpoint)
        verify_store(store, state, config.checkpoint, config.retry, moved=moved)
        state.run = run
        logger.info("resuming %s after %d records", config.source_id, state.records_done)
        return state

    def execute(self, records: Iterable[RawRecord]) -> IngestReport:
        config, report = self.config, self.report
        started = time.perf_counter()
        report.skipped_by_resume = self.skip
        self.source_ids = SourceIdSet() if config.delete_missing else None
        try:
            self._load(records)
            self._check_input()
            if self.source_ids is not None:
                self._delete_missing()
            config.retry.call(self.store.finish_ingest, what=f"finish_ingest on {self.store.describe()}")
            report.stored = config.retry.call(self.store.count, what=f"count on {self.store.describe()}")
        finally:
            if self.source_ids is not None:
                self.source_ids.close()
        self.checkpoint.clear()
        report.seconds = time.perf_counter() - started
        report.finalize()
        return report

    def _load(self, records: Iterable[RawRecord]) -> None:
        """Read, encode and write everything (writer thread); earlier batches are safe whatever fails."""
        self.store.begin_ingest()
        writer = threading.Thread(target=self._write_loop, name="splade-ingest-writer", daemon=True)
        writer.start()
        try:
            for pending in self._batches(records):
                if self.failure:
                    break
                self.writes.put(self._prepare(pending))
        except BaseException as exc:
            self._stop_writer(writer)
            self._finish_after_failure()
            if isinstance(exc, StoreError):  # reading stored hashes failed: stopped like a failed write
                raise IngestError(f"ingestion stopped: {exc}") from exc
            raise
        self._stop_writer(writer)
        if self.failure:
            self._finish_after_failure()
            error = self.failure[0]
            if isinstance(error, IngestError):
                raise error
            raise IngestError(f"ingestion stopped: {error}") from error

    def _stop_writer(self, writer: threading.Thread) -> None:
        self.writes.put(None)
        writer.join()

    def _finish_after_failure(self) -> None:
        """Restore the store's normal settings after a failed run, without hiding the original error."""
        try:
            self.store.finish_ingest()
        except Exception as exc:  # noqa: BLE001 - the store may be the thing that failed
            logger.warning("could not finish ingestion on %s after the failure: %s", self.store.describe(), exc)

    def _check_input(self) -> None:
        """After the load: a checkpoint past the input's end, an empty input, no usable record are errors."""
        report, skip = self.report, self.skip
        report.records = max(0, self.consumed - skip)
        if self.consumed < skip:
            self._finish_after_failure()
            raise ResumeError(
                f"checkpoint {self.config.checkpoint} says {skip} records are done but {self.source_name} has only "
                f"{self.consumed}: it belongs to another version of the input; delete it to start over"
            )
        if self.consumed == 0:
            self._finish_after_failure()
            raise InputError(f"{self.source_name} has no records")
        if skip == 0 and report.accepted + report.unchanged == 0:
            self._finish_after_failure()
            self.checkpoint.clear()
            first = f" (first: {report.invalid[0].describe()})" if report.invalid else ""
            raise InputError(
                f"{self.source_name} has no valid record: all {report.invalid_count} of {self.consumed} records were refused{first}"
            )

    def _delete_missing(self) -> None:
        assert self.source_ids is not None
        retry, store = self.config.retry, self.store
        retry.call(store.finish_ingest, what=f"refresh of {store.describe()}")  # ids written by this run become listable

        def deleted(count: int) -> None:
            self.report.deleted += count
            self.state.deleted += count
            self.checkpoint.save(self.state)

        delete_missing(store, self.source_ids, retry, on_deleted=deleted)

    # ---- reading --------------------------------------------------------------------------------------
    def _batches(self, records: Iterable[RawRecord]) -> Iterator[_Pending]:
        """Valid documents in batches, with the number of input records consumed so far."""
        config, skip = self.config, self.skip
        docs: list[Document] = []
        positions: list[int] = []
        ids_in_batch: set[str] = set()
        for raw in records:
            self.consumed += 1
            if self.consumed <= skip:
                if self.source_ids is not None:
                    self._remember_id(to_document(raw, config.fields))
                continue
            result = to_document(raw, config.fields)
            self._remember_id(result)
            if isinstance(result, Document) and result.id in ids_in_batch:
                result = InvalidRecord(position=raw.position, doc_id=result.id, reason="duplicate id in the same batch")
            if isinstance(result, InvalidRecord):
                self._reject(result)
                continue
            docs.append(result)
            positions.append(raw.position)
            ids_in_batch.add(result.id)
            if len(docs) >= config.batch_size:
                yield _Pending(docs, positions, self.consumed)
                docs, positions, ids_in_batch = [], [], set()
        if docs or self.consumed > skip:
            yield _Pending(docs, positions, self.consumed)

    def _remember_id(self, result: Document | InvalidRecord) -> None:
        if self.source_ids is None:
            return
        doc_id = result.id if isinstance(result, Document) else result.doc_id
        if doc_id is not None:
            self.source_ids.add(doc_id)

    def _reject(self, record: InvalidRecord) -> None:
        """Report a refused record, or stop the run under `on_invalid="fail"` (any thread)."""
        if self.config.on_invalid == "fail":
            raise IngestError(f"invalid input, {record.describe()}")
        if self.report.invalid_count < _LOGGED_INVALID:
            logger.warning("skipping %s", record.describe())
        elif self.report.invalid_count == _LOGGED_INVALID:
            logger.warning("more invalid records: not logged one by one (see the report)")
        self.report.add_invalid(record)

    # ---- classifying and encoding (main thread) -------------------------------------------------------
    def _prepare(self, pending: _Pending) -> _WriteJob:
        if not pending.docs:
            return _WriteJob([], [], [], pending.records_done)
        config, report = self.config, self.report
        docs = [d.model_copy(update={"content_hash": stored_hash(d, self.identity_key)}) for d in pending.docs]
        in_flight = {k: v for batch in self.in_flight for k, v in batch.items()}
        statuses = classify(
            self.store, [d.id for d in docs], [d.content_hash or "" for d in docs],
            skip_unchanged=config.skip_unchanged, retry=config.retry, in_flight=in_flight,
        )
        todo = [i for i, status in enumerate(statuses) if status != "unchanged"]
        report.unchanged += len(docs) - len(todo)
        started = time.perf_counter()
        texts = [docs[i].text_to_encode(config.with_title) for i in todo]
        outcome = encode_isolating(self.pipeline.encoder, texts)
        report.truncated += len(outcome.truncated)
        report.chunked += len(outcome.chunked)
        for j, reason in sorted(outcome.refused.items()):
            i = todo[j]
            self._reject(InvalidRecord(position=pending.positions[i], doc_id=docs[i].id, reason=reason))
        kept = [j for j in range(len(todo)) if j not in outcome.refused]
        dense: list[list[float] | None] = [None] * len(kept)
        if self.pipeline.dense_encoder is not None and kept:
            dense = [list(v) for v in self.pipeline.dense_encoder([texts[j] for j in kept])]
        report.encode_seconds += time.perf_counter() - started
        encoded = []
        for j, vector in zip(kept, dense):
            sparse = outcome.vectors[j]
            assert sparse is not None
            encoded.append(EncodedDocument(document=docs[todo[j]], sparse=sparse, dense=vector))
        job = _WriteJob(
            encoded=encoded,
            positions=[pending.positions[todo[j]] for j in kept],
            statuses=[statuses[todo[j]] for j in kept],
            records_done=pending.records_done,
            ids={e.document.id: e.document.content_hash or "" for e in encoded},
        )
        self.in_flight.append(job.ids)
        return job

    # ---- writing (writer thread) ----------------------------------------------------------------------
    def _write_loop(self) -> None:
        while (job := self.writes.get()) is not None:
            if self.failure:
                continue
            try:
                self._write(job)
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                self.failure.append(exc)

    def _upsert(self, batch: Sequence[EncodedDocument]) -> None:
        self.config.retry.call(self.store.upsert, batch, what=f"write to {self.store.describe()}")

    def _write(self, job: _WriteJob) -> None:
        report, state = self.report, self.state
        refused: dict[str, str] = {}
        if job.encoded:
            started = time.perf_counter()
            refused = write_isolating(self._upsert, job.encoded)
            report.write_seconds += time.perf_counter() - started
            report.batches += 1
        if refused and report.accepted == 0 and len(refused) == len(job.encoded) >= 2:
            example = next(iter(refused.values()))
            raise IngestError(
                f"{self.store.describe()} refused every document of the first batch ({example}): "
                "the store's configuration, not the records, is the likely cause"
            )
        for item, position, status in zip(job.encoded, job.positions, job.statuses):
            doc_id = item.document.id
            if doc_id in refused:
                self._reject(InvalidRecord(position=position, doc_id=doc_id, reason=f"the store refused it: {refused[doc_id]}"))
                continue
            report.accepted += 1
            state.written += 1
            if status == "new":
                report.new += 1
                state.new += 1
            else:
                report.updated += 1
            state.offer_probe(doc_id, self.rng)
        state.records_done = job.records_done
        self.checkpoint.save(state)
        if self.pipeline.progress is not None:
            self.pipeline.progress(job.records_done - self.reported_done)
        self.reported_done = job.records_done
