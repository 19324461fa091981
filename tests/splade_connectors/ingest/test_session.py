"""The ingestion session both engines run: the store's lifecycle around a load, whatever the load is.

A recording store stands in for a real one (the engines are tested on real stores in the other
files): what matters here is the order of the store calls, what a failure leaves the store in, and
the errors that leave the session.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from splade_connectors.errors import IngestError, InputError, ResumeError, StoreError
from splade_connectors.ingest import IngestConfig, RawRecord
from splade_connectors.ingest.checkpoint import CheckpointState, RunIdentity
from splade_connectors.ingest.identity import EncodingIdentity
from splade_connectors.ingest.session import IngestSession
from splade_connectors.ingest.validate import InvalidRecord
from splade_connectors.records import Document


class RecordingStore:
    """The store calls a session makes, recorded; `fail` names the one call that raises a `StoreError`."""

    kind, name = "recording", "docs"

    def __init__(self, stored: list[str] | None = None, fail: str | None = None) -> None:
        self.stored = list(stored or [])
        self.fail = fail
        self.calls: list[str] = []

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name == self.fail:
            raise StoreError(f"{name} failed (injected)")

    def describe(self) -> str:
        return "recording store"

    def begin_ingest(self) -> None:
        self._call("begin_ingest")

    def finish_ingest(self) -> None:
        self._call("finish_ingest")

    def count(self) -> int:
        self._call("count")
        return len(self.stored)

    def iter_doc_ids(self, page_size: int) -> Iterator[list[str]]:
        self._call("iter_doc_ids")
        yield list(self.stored)

    def delete(self, doc_ids: list[str]) -> None:
        self._call("delete")
        self.stored = [doc_id for doc_id in self.stored if doc_id not in doc_ids]


def session(store: RecordingStore, **config: object) -> IngestSession:
    return IngestSession(store, IngestConfig(**config), source_name="corpus.jsonl")


def accepting(run: IngestSession, records: int) -> int:
    """A load that accepted every record."""
    run.report.accepted = run.report.new = records
    return records


def test_a_finished_session_begins_finishes_and_counts() -> None:
    store = RecordingStore(stored=["a", "b"])
    run = session(store)
    report = run.run(lambda: accepting(run, 2))
    assert store.calls == ["begin_ingest", "finish_ingest", "count"]
    assert (report.records, report.accepted, report.stored, report.engine) == (2, 2, 2, "single-process")


def test_a_store_error_in_the_load_stops_the_run_and_finishes_the_store() -> None:
    store = RecordingStore()
    run = session(store)

    def load() -> int:
        raise StoreError("read of recording store: connection reset")

    with pytest.raises(IngestError, match=r"^ingestion stopped: read of recording store: connection reset$") as info:
        run.run(load)
    assert isinstance(info.value.__cause__, StoreError)
    assert store.calls == ["begin_ingest", "finish_ingest"]


def test_a_failing_finish_after_a_failure_does_not_hide_the_error(caplog: pytest.LogCaptureFixture) -> None:
    store = RecordingStore(fail="finish_ingest")
    run = session(store)

    def load() -> int:
        raise IngestError("invalid input, record #3 (no id): missing id field '_id'")

    with pytest.raises(IngestError, match=r"^invalid input, record #3"):
        run.run(load)
    assert store.calls == ["begin_ingest", "finish_ingest"]
    assert "could not finish ingestion on recording store after the failure" in caplog.text


def test_empty_input_and_input_without_a_valid_record_are_input_errors() -> None:
    store = RecordingStore()
    with pytest.raises(InputError, match=r"^corpus.jsonl has no records$"):
        session(store).run(lambda: 0)
    assert store.calls == ["begin_ingest", "finish_ingest"]

    run = session(store)

    def all_refused() -> int:
        run.reject(InvalidRecord(position=1, doc_id="b", reason="text is empty"))
        run.reject(InvalidRecord(position=0, doc_id=None, reason="missing id field '_id'"))
        return 2

    with pytest.raises(InputError) as info:
        run.run(all_refused)
    assert str(info.value) == (
        "corpus.jsonl has no valid record: all 2 of 2 records were refused (first: record #1 (id 'b'): text is empty)"
    )


def test_checkpoint_past_the_end_of_the_input_is_a_resume_error(tmp_path: Path) -> None:
    run_identity = RunIdentity(
        source="corpus.jsonl:abc", store_kind="recording", store="memory", collection="docs",
        encoding=EncodingIdentity(model="sha256:0"),
    )
    state = CheckpointState(run=run_identity, records_done=5, written=5, new=5)
    store = RecordingStore()
    run = IngestSession(store, IngestConfig(checkpoint=tmp_path / "c.ckpt"), source_name="corpus.jsonl", state=state)
    assert run.skip == 5
    with pytest.raises(ResumeError, match=r"says 5 records are done but corpus.jsonl has only 3: it belongs to another version"):
        run.run(lambda: 3)
    assert store.calls == ["begin_ingest", "finish_ingest"]


def test_delete_missing_uses_the_ids_the_load_remembered() -> None:
    store = RecordingStore(stored=["a", "b", "gone", "refused"])
    run = session(store, delete_missing=True)

    def load() -> int:
        for doc_id in ("a", "b"):
            run.remember(Document(id=doc_id, text="x"))
        run.remember(InvalidRecord(position=2, doc_id="refused", reason="text is empty"))  # refused with an id: present
        return accepting(run, 3)

    report = run.run(load)
    assert store.stored == ["a", "b", "refused"] and report.deleted == 1
    assert store.calls == ["begin_ingest", "finish_ingest", "iter_doc_ids", "delete", "finish_ingest", "count"]


def test_delete_missing_rereads_the_source_when_the_load_could_not_remember() -> None:
    store = RecordingStore(stored=["a", "gone"])
    run = session(store, delete_missing=True)
    records = [RawRecord(position=0, data={"_id": "a", "text": "x"}), RawRecord(position=1, data={"_id": "b", "text": "y"})]
    report = run.run(lambda: accepting(run, 2), reread=lambda: iter(records))
    assert store.stored == ["a"] and report.deleted == 1


def test_a_failed_delete_missing_finishes_the_store_and_raises_the_store_error() -> None:
    store = RecordingStore(stored=["a", "gone"], fail="delete")
    run = session(store, delete_missing=True)
    with pytest.raises(StoreError, match="delete failed"):
        run.run(lambda: accepting(run, 1))
    assert store.calls == ["begin_ingest", "finish_ingest", "iter_doc_ids", "delete", "finish_ingest"]
