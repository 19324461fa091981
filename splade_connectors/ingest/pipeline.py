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

import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from splade_connectors.encoding import DocumentEncoder, as_encoder
from splade_connectors.errors import ConfigError, IngestError
from splade_connectors.ingest.config import IngestConfig
from splade_connectors.ingest.identity import run_identity
from splade_connectors.ingest.incremental import Status
from splade_connectors.ingest.isolation import encode_isolating, write_isolating
from splade_connectors.ingest.report import IngestReport
from splade_connectors.ingest.session import (
    FirstIdWins,
    IngestSession,
    claim_store,
    duplicate,
    start_state,
    stopped,
    stored_statuses,
    with_content_hash,
)
from splade_connectors.ingest.sources import RawRecord
from splade_connectors.ingest.validate import InvalidRecord, to_document
from splade_connectors.passages import encode_passages, require_passage_encoder, with_passages
from splade_connectors.records import Document, EncodedDocument
from splade_connectors.store import SparseStore
from splade_connectors.stored_encoding import encoder_vocabulary

if TYPE_CHECKING:
    from sentence_transformers import SparseEncoder as SentenceTransformersModel

DenseEncoder = Callable[[list[str]], Sequence[Sequence[float]]]


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
        encoder: DocumentEncoder | SentenceTransformersModel,
        store: SparseStore,
        config: IngestConfig | None = None,
        *,
        dense_encoder: DenseEncoder | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.encoder: DocumentEncoder = as_encoder(encoder)
        self.store = store
        self.config = config or IngestConfig()
        self.dense_encoder = dense_encoder
        self.progress = progress

    def run(self, records: Iterable[RawRecord], *, source_name: str = "the input") -> IngestReport:
        """Ingest everything; see the module docstring for what stops a run and what does not."""
        return _Run(self, source_name).execute(records)


class _Run:
    """The state of one `IngestPipeline.run`: its session, writer thread, in-flight ids; the load of the session."""

    def __init__(self, pipeline: IngestPipeline, source_name: str) -> None:
        self.pipeline = pipeline
        self.store = pipeline.store
        self.config = config = pipeline.config
        if config.passages:
            require_passage_encoder(pipeline.encoder)
            if pipeline.dense_encoder is not None:
                raise ConfigError("passages take no dense vectors: hybrid search is not supported on a passage collection")
        identity = run_identity(pipeline.encoder, config)  # ConfigError when the run needs one the encoder lacks
        self.identity_key = identity.key() if identity is not None else None
        self.state = start_state(self.store, config, identity)  # a checkpoint of another run is refused first
        if claim_store(self.store, config, identity, encoder_vocabulary(pipeline.encoder)):
            self.state.store_count_at_start = 0  # dropped and re-created (reencode)
        self.session = IngestSession(self.store, config, source_name=source_name, state=self.state)
        self.report = self.session.report
        self.consumed = 0
        self.reported_done = 0
        self.in_flight: deque[dict[str, str]] = deque(maxlen=2)
        self.writes: queue.Queue[_WriteJob | None] = queue.Queue(maxsize=1)
        self.failure: list[BaseException] = []
        self.rng = random.Random(0)
        self.skip = self.session.skip  # records done by earlier runs (the state moves on as batches are written)

    def execute(self, records: Iterable[RawRecord]) -> IngestReport:
        return self.session.run(lambda: self._load(records))

    def _load(self, records: Iterable[RawRecord]) -> int:
        """Read, encode and write everything (writer thread); earlier batches are safe whatever fails."""
        writer = threading.Thread(target=self._write_loop, name="splade-ingest-writer", daemon=True)
        writer.start()
        try:
            for pending in self._batches(records):
                if self.failure:
                    break
                self.writes.put(self._prepare(pending))
        finally:
            self.writes.put(None)
            writer.join()
        if self.failure:
            error = self.failure[0]
            if isinstance(error, IngestError):
                raise error
            raise stopped(error) from error
        return self.consumed

    # ---- reading --------------------------------------------------------------------------------------
    def _batches(self, records: Iterable[RawRecord]) -> Iterator[_Pending]:
        """Valid documents in batches, with the number of input records consumed so far.

        A duplicate id keeps its first valid record (`session.DUPLICATE_REASON`): later ones in the batch, or
        whose id an earlier batch kept, are refused. Records done by an earlier run are read for their ids.
        """
        config, skip = self.config, self.skip
        docs: list[Document] = []
        positions: list[int] = []
        ids_in_batch: set[str] = set()
        seen = FirstIdWins()

        def kept() -> _Pending:
            earlier = seen.earlier([d.id for d in docs])
            keep = [i for i, d in enumerate(docs) if d.id not in earlier]
            for i in (i for i, d in enumerate(docs) if d.id in earlier):
                self.session.reject(duplicate(positions[i], docs[i].id))
            seen.keep(docs[i].id for i in keep)
            return _Pending([docs[i] for i in keep], [positions[i] for i in keep], self.consumed)

        try:
            for raw in records:
                self.consumed += 1
                result = to_document(raw, config.fields)
                if self.consumed <= skip:
                    self.session.remember(result)
                    if isinstance(result, Document):
                        seen.keep([result.id])  # refused later copies were refused then too: adding is enough
                    continue
                self.session.remember(result)
                if isinstance(result, Document) and result.id in ids_in_batch:
                    result = duplicate(raw.position, result.id)
                if isinstance(result, InvalidRecord):
                    self.session.reject(result)
                    continue
                docs.append(result)
                positions.append(raw.position)
                ids_in_batch.add(result.id)
                if len(docs) >= config.batch_size:
                    yield kept()
                    docs, positions, ids_in_batch = [], [], set()
            if docs or self.consumed > skip:
                yield kept()
        finally:
            seen.close()

    # ---- classifying and encoding (main thread) -------------------------------------------------------
    def _prepare(self, pending: _Pending) -> _WriteJob:
        if not pending.docs:
            return _WriteJob([], [], [], pending.records_done)
        config, report = self.config, self.report
        docs = [with_content_hash(d, self.identity_key) for d in pending.docs]
        in_flight = {k: v for batch in self.in_flight for k, v in batch.items()}
        statuses = stored_statuses(self.store, docs, config, in_flight=in_flight)
        todo = [i for i, status in enumerate(statuses) if status != "unchanged"]
        report.unchanged += len(docs) - len(todo)
        started = time.perf_counter()
        texts = [docs[i].text_to_encode(config.with_title) for i in todo]
        encoder = self.pipeline.encoder
        outcome = encode_isolating(encoder, texts, partial(encode_passages, encoder) if config.passages else None)
        report.truncated += len(outcome.truncated)
        report.chunked += len(outcome.chunked)
        for j, reason in sorted(outcome.refused.items()):
            i = todo[j]
            self.session.reject(InvalidRecord(position=pending.positions[i], doc_id=docs[i].id, reason=reason))
        kept = [j for j in range(len(todo)) if j not in outcome.refused]
        dense: list[list[float] | None] = [None] * len(kept)
        if self.pipeline.dense_encoder is not None and kept:
            dense = [list(v) for v in self.pipeline.dense_encoder([texts[j] for j in kept])]
        report.encode_seconds += time.perf_counter() - started
        encoded = []
        for j, vector in zip(kept, dense):
            sparse = outcome.vectors[j]
            assert sparse is not None
            if config.passages:
                encoded.append(with_passages(docs[todo[j]], sparse, config.with_title))
            else:
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
                self.session.reject(InvalidRecord(position=position, doc_id=doc_id, reason=f"the store refused it: {refused[doc_id]}"))
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
        self.session.checkpoint.save(state)
        if self.pipeline.progress is not None:
            self.pipeline.progress(job.records_done - self.reported_done)
        self.reported_done = job.records_done
