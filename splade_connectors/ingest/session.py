"""One ingestion session for every engine: the store's lifecycle around loading the records.

    begin_ingest -> load (the engine's) -> check the input -> delete-missing -> finish_ingest -> count

An engine supplies only the load: the single-process encode/write loop (`pipeline.py`) or the Ray
Data pipeline (`ray_engine/engine.py`). The load fills the session's `IngestReport`, classifies
documents with `stored_statuses` (the stored-hash read of skip-unchanged), stops on a refused record
with `fail_on` under `on_invalid="fail"`, and returns how many input records it read. The session
then refuses an empty input, one without a usable record, and a checkpoint past the input's end;
deletes the stored documents the source no longer holds; finishes and counts. Whatever fails after
`begin_ingest`, the store's normal settings are restored (`finish_ingest`, best effort) before the
error leaves; a store error during the load stops the run as an `IngestError` ("ingestion stopped:
..."), from which a checkpointed run resumes.

Before the session, `claim_store` makes the store a collection of this run's encoding (checked
against, or written into, the collection's own record: `splade_connectors.stored_encoding`), so a
run never mixes vectors of two encodings in one collection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from splade_connectors.errors import IngestError, InputError, ResumeError, StoreError
from splade_connectors.ingest.checkpoint import CheckpointFile, CheckpointState, RunIdentity, check_belongs, verify_store
from splade_connectors.ingest.config import IngestConfig
from splade_connectors.ingest.identity import EncodingIdentity, stored_hash
from splade_connectors.ingest.incremental import SourceIdSet, Status, classify, delete_missing
from splade_connectors.ingest.report import IngestReport
from splade_connectors.ingest.sources import RawRecord
from splade_connectors.ingest.validate import InvalidRecord, to_document
from splade_connectors.records import Document
from splade_connectors.store import SparseStore
from splade_connectors.stored_encoding import claim_for_ingest

logger = logging.getLogger(__name__)

_LOGGED_INVALID = 100


def with_content_hash(document: Document, identity_key: str | None) -> Document:
    """The document with the content hash skip-unchanged compares (model identity + payload)."""
    return document.model_copy(update={"content_hash": stored_hash(document, identity_key)})


def stored_statuses(
    store: SparseStore, documents: Sequence[Document], config: IngestConfig, *, in_flight: Mapping[str, str] | None = None
) -> list[Status]:
    """One real-time read of the stored hashes: "new", "updated" or "unchanged" (skipped) per hashed document."""
    return classify(
        store, [d.id for d in documents], [d.content_hash or "" for d in documents],
        skip_unchanged=config.skip_unchanged, retry=config.retry, in_flight=in_flight,
    )


# Duplicate ids: the first valid record of an id wins, every later one is refused (reported) with this reason.
# Why first: it is decided while streaming (no look-ahead), and a later copy is never written, so engines that
# write batches in parallel (Ray) store the same copy as the single-process engine, whatever the write order.
DUPLICATE_REASON = "duplicate id: an earlier record of the input has it (the first one is kept)"


def duplicate(position: int, doc_id: str) -> InvalidRecord:
    """The refused record of a later occurrence of `doc_id` (see `DUPLICATE_REASON`)."""
    return InvalidRecord(position=position, doc_id=doc_id, reason=DUPLICATE_REASON)


class FirstIdWins:
    """The ids of the valid records kept so far (on disk: memory stays bounded), deciding batch by batch."""

    def __init__(self) -> None:
        self.ids = SourceIdSet()

    def earlier(self, doc_ids: Sequence[str]) -> set[str]:
        """The ids of `doc_ids` an earlier kept record has."""
        return set(doc_ids) - set(self.ids.missing(doc_ids))

    def keep(self, doc_ids: Iterable[str]) -> None:
        self.ids.update(doc_ids)

    def close(self) -> None:
        self.ids.close()


def later_duplicates(records: Iterable[RawRecord], config: IngestConfig) -> set[int]:
    """Positions of the valid records whose id an earlier valid record has: one pass over the source, for
    engines that validate in parallel workers (Ray) and so cannot see which occurrence came first."""
    positions: set[int] = set()
    seen = FirstIdWins()
    try:
        batch: list[tuple[int, str]] = []

        def decide() -> None:
            earlier = seen.earlier([d for _, d in batch])
            first: dict[str, int] = {}
            for position, doc_id in batch:
                if doc_id in earlier or doc_id in first:
                    positions.add(position)
                else:
                    first[doc_id] = position
            seen.keep(first)
            batch.clear()

        for raw in records:
            result = to_document(raw, config.fields)
            if isinstance(result, Document):
                batch.append((raw.position, result.id))
                if len(batch) >= 4096:
                    decide()
        decide()
    finally:
        seen.close()
    return positions


def fail_on(record: InvalidRecord, config: IngestConfig) -> None:
    """Under `on_invalid="fail"`, the first refused record stops the run (any engine, any worker)."""
    if config.on_invalid == "fail":
        raise IngestError(f"invalid input, {record.describe()}")


def stopped(cause: object) -> IngestError:
    """The error of a run a failure stopped after the batches already accepted were safe (resumable)."""
    return IngestError(f"ingestion stopped: {cause}")


def claim_store(
    store: SparseStore, config: IngestConfig, identity: EncodingIdentity | None, vocabulary: Sequence[str] | None
) -> bool:
    """Before anything is written: refuse a collection of another encoding (or, with `reencode`, drop and re-create
    it: True), record this run's encoding in a collection without one. A checkpointed run calls it after
    `start_state` (a checkpoint of another run is refused first) and never drops what a checkpoint resumes."""

    def refuse_with_checkpoint() -> None:
        if CheckpointFile(config.checkpoint).load() is not None:
            raise ResumeError(
                f"checkpoint {config.checkpoint} resumes a run into {store.describe()}, which holds vectors of another "
                f"encoding: delete {config.checkpoint} to re-encode from the start"
            )

    return claim_for_ingest(
        store, identity, vocabulary, reencode=config.reencode, retry=config.retry, before_drop=refuse_with_checkpoint,
    )


def start_state(store: SparseStore, config: IngestConfig, identity: EncodingIdentity | None) -> CheckpointState:
    """The checkpoint state a run starts from: the saved one (checked against this run and the store), else a new one."""
    run = RunIdentity(
        source=config.source_id, store_kind=store.kind, store=store.identity(), collection=store.name, encoding=identity,
    )
    state = CheckpointFile(config.checkpoint).load()
    if state is None:
        count = config.retry.call(store.count, what=f"count on {store.describe()}")
        return CheckpointState(run=run, store_count_at_start=count)
    assert config.checkpoint is not None
    moved = check_belongs(state, run, config.checkpoint)
    verify_store(store, state, config.checkpoint, config.retry, moved=moved)
    state.run = run
    logger.info("resuming %s after %d records", config.source_id, state.records_done)
    return state


class IngestSession:
    """One run against one open store: its report, its checkpoint (if any) and the source's ids for delete-missing.

    `state` is the checkpoint state of an engine that keeps one (`start_state`); its `records_done`
    input records are skipped by the load and counted as `skipped_by_resume`.
    """

    def __init__(
        self,
        store: SparseStore,
        config: IngestConfig,
        *,
        source_name: str,
        engine: str = "single-process",
        state: CheckpointState | None = None,
    ) -> None:
        self.store, self.config, self.source_name, self.state = store, config, source_name, state
        self.report = IngestReport(engine=engine, max_invalid_kept=config.max_invalid_kept)
        self.checkpoint = CheckpointFile(config.checkpoint)
        self.skip = state.records_done if state is not None else 0  # records done by earlier runs
        self.source_ids: SourceIdSet | None = None

    # ---- what a load calls -----------------------------------------------------------------------------
    def remember(self, result: Document | InvalidRecord) -> None:
        """Note a source record's id for delete-missing (refused records with an id count as present)."""
        if self.source_ids is None:
            return
        doc_id = result.id if isinstance(result, Document) else result.doc_id
        if doc_id is not None:
            self.source_ids.add(doc_id)

    def reject(self, record: InvalidRecord) -> None:
        """Report a refused record (logging the first ones), or stop the run under `on_invalid="fail"` (any thread)."""
        fail_on(record, self.config)
        if self.report.invalid_count < _LOGGED_INVALID:
            logger.warning("skipping %s", record.describe())
        elif self.report.invalid_count == _LOGGED_INVALID:
            logger.warning("more invalid records: not logged one by one (see the report)")
        self.report.add_invalid(record)

    # ---- the session -----------------------------------------------------------------------------------
    def run(self, load: Callable[[], int], *, reread: Callable[[], Iterable[RawRecord]] | None = None) -> IngestReport:
        """Begin, `load` (returns the input records it read, skipped ones included), check, delete-missing, finish.

        An engine whose load cannot see the source's ids (Ray reads on workers) gives `reread`: the
        source again, read on this process for delete-missing; others `remember` ids while loading.
        """
        config, report, store = self.config, self.report, self.store
        started = time.perf_counter()
        report.skipped_by_resume = self.skip
        self.source_ids = SourceIdSet() if config.delete_missing else None
        try:
            store.begin_ingest()
            try:
                self._check_input(self._load(load))
                if self.source_ids is not None:
                    self._delete_missing(reread)
            except BaseException:
                self._finish_after_failure()
                raise
            config.retry.call(store.finish_ingest, what=f"finish_ingest on {store.describe()}")
            report.stored = config.retry.call(store.count, what=f"count on {store.describe()}")
        finally:
            if self.source_ids is not None:
                self.source_ids.close()
        self.checkpoint.clear()
        report.seconds = time.perf_counter() - started
        report.finalize()
        return report

    def _load(self, load: Callable[[], int]) -> int:
        try:
            return load()
        except StoreError as exc:  # e.g. reading stored hashes failed: stopped like a failed write
            raise stopped(exc) from exc

    def _finish_after_failure(self) -> None:
        """Restore the store's normal settings after a failed run, without hiding the original error."""
        try:
            self.store.finish_ingest()
        except Exception as exc:  # noqa: BLE001 - the store may be the thing that failed
            logger.warning("could not finish ingestion on %s after the failure: %s", self.store.describe(), exc)

    def _check_input(self, consumed: int) -> None:
        """After the load: a checkpoint past the input's end, an empty input, no usable record are errors."""
        report, skip = self.report, self.skip
        report.records = max(0, consumed - skip)
        if consumed < skip:
            raise ResumeError(
                f"checkpoint {self.config.checkpoint} says {skip} records are done but {self.source_name} has only "
                f"{consumed}: it belongs to another version of the input; delete it to start over"
            )
        if consumed == 0:
            raise InputError(f"{self.source_name} has no records")
        if skip == 0 and report.accepted + report.unchanged == 0:
            self.checkpoint.clear()
            first = f" (first: {report.invalid[0].describe()})" if report.invalid else ""
            raise InputError(
                f"{self.source_name} has no valid record: all {report.invalid_count} of {consumed} records were refused{first}"
            )

    def _delete_missing(self, reread: Callable[[], Iterable[RawRecord]] | None) -> None:
        """Make this run's writes listable, then delete the stored documents whose id the source lacks."""
        assert self.source_ids is not None
        retry, store = self.config.retry, self.store
        retry.call(store.finish_ingest, what=f"refresh of {store.describe()}")  # ids written by this run become listable
        if reread is not None:
            for raw in reread():
                self.remember(to_document(raw, self.config.fields))

        def deleted(count: int) -> None:
            self.report.deleted += count
            if self.state is not None:
                self.state.deleted += count
                self.checkpoint.save(self.state)

        delete_missing(store, self.source_ids, retry, on_deleted=deleted)
