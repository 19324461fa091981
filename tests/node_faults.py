"""Shared by the cluster fault tests (Qdrant, OpenSearch) and the version smoke test: an instant deterministic
encoder, the documents, an ingestion with a node killed part-way, and the checks that nothing was lost or doubled."""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from splade_connectors.ingest import IngestConfig, IngestReport, ingest
from splade_connectors.records import Document
from splade_connectors.retry import RetryPolicy
from splade_connectors.store import SparseStore
from trainer.sparse import SparseVector


class HashingEncoder:
    """Each word of a text -> a term id (crc32 mod 30522) with weight 1 + its length / 10: deterministic, instant."""

    def encode_documents(self, texts: Iterable[str], **overrides: object) -> list[SparseVector]:
        return [self.encode(t) for t in texts]

    @staticmethod
    def encode(text: str) -> SparseVector:
        weights = {zlib.crc32(w.encode()) % 30522: 1.0 + len(w) / 10 for w in text.split()}
        return SparseVector.from_pairs(sorted(weights.items()))


def fault_documents(count: int) -> list[Document]:
    return [Document(id=f"doc-{i}", text=f"topic{i % 17} item{i} word{i % 101} shared") for i in range(count)]


def ingest_through_a_kill(
    writer: SparseStore, reader: SparseStore, documents: list[Document], kill: Callable[[], None], *,
    kill_after: int, after_kill: Callable[[], None] | None = None, wait: float = 120,
) -> tuple[IngestReport, int]:
    """Ingest `documents` into `writer`, call `kill` once `kill_after` are acknowledged (the writer waits for it, so the
    node dies mid-ingestion), query `reader` during the outage (every query answered in full); the report and how many
    documents were acknowledged at the kill."""
    encoder = HashingEncoder()
    acknowledged = 0
    reached, killed = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    def progress(done: int) -> None:
        nonlocal acknowledged
        acknowledged += done
        if acknowledged >= kill_after and not killed.is_set():
            reached.set()
            killed.wait(wait)

    def run() -> None:
        try:
            retry = RetryPolicy(attempts=10, initial_wait=0.5, max_wait=4.0)
            outcome["report"] = ingest(documents, encoder, writer, IngestConfig(batch_size=50, retry=retry), progress=progress)
        except BaseException as exc:  # reported by the test thread
            outcome["error"] = exc
        finally:
            reached.set()

    thread = threading.Thread(target=run, name="ingest")
    try:
        thread.start()
        assert reached.wait(300)
        kill()
        killed_at = acknowledged
        killed.set()
        if after_kill is not None:
            after_kill()
        queries = [encoder.encode(f"topic{t} shared") for t in range(5)]
        answered = 0
        while thread.is_alive() or answered < 3:  # queries during the outage (and while ingestion goes on)
            hits = reader.search_batch(queries, top_k=5)
            assert all(len(h) == 5 for h in hits)
            answered += 1
            time.sleep(0.2)
        thread.join()
    finally:
        killed.set()
        thread.join(300)
    assert "error" not in outcome, outcome.get("error")
    assert 0 < killed_at < len(documents), "the node must die part-way through the ingestion"
    return outcome["report"], killed_at


def assert_stored_exactly(writer: SparseStore, reader: SparseStore, documents: list[Document]) -> None:
    """The count is exact, every id is there once, and a sample of stored vectors equals the encoder's."""
    assert writer.count() == len(documents)
    ids = [d for page in reader.iter_doc_ids(batch_size=500) for d in page]
    assert len(ids) == len(documents) and set(ids) == {d.id for d in documents}  # none lost, none twice
    sample = [documents[i] for i in range(0, len(documents), 97)]
    stored = reader.fetch_vectors([d.id for d in sample])
    for document in sample:
        indices, values = stored[document.id].to_lists()
        want_indices, want_values = HashingEncoder.encode(document.text).to_lists()
        assert indices == want_indices and values == pytest.approx(want_values, rel=1e-6)
