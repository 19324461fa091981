"""Isolating the records an encoder or a store refuses: the rest of their batch is encoded and stored."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from splade_connectors.errors import RejectedDocumentsError, StoreError
from splade_connectors.ingest.isolation import encode_isolating, write_isolating
from splade_connectors.records import Document, EncodedDocument
from trainer.encoder import SpladeEncoder
from trainer.sparse import SparseVector

pytestmark = pytest.mark.filterwarnings("ignore:Qdrant client version:UserWarning")


def test_real_tokenizer_refusal_is_isolated_by_bisection(encoder: SpladeEncoder) -> None:
    """A lone surrogate makes the tokenizer raise for the whole batch; bisection refuses just those texts, by
    position, and the rest get the vectors they get when encoded alone."""
    texts = [f"protein folding study number {i}" for i in range(7)]
    texts[2] = "bad \ud800 x"
    texts[5] = "worse \udfff"
    with pytest.raises((TypeError, ValueError)):
        encoder.encode_documents(texts)  # the problem: one bad text fails the batch
    outcome = encode_isolating(encoder, texts)
    assert sorted(outcome.refused) == [2, 5]
    assert all(reason.startswith("the encoder refused it: ") for reason in outcome.refused.values())
    good = [i for i in range(7) if i not in (2, 5)]
    alone = encoder.encode_documents([texts[i] for i in good])
    for i, reference in zip(good, alone):
        vector = outcome.vectors[i]
        assert vector is not None and np.array_equal(vector.indices, reference.indices)
        assert np.allclose(vector.values, reference.values, atol=1e-5)
    assert outcome.vectors[2] is None and outcome.vectors[5] is None


def test_non_input_errors_of_the_encoder_propagate(encoder: SpladeEncoder) -> None:
    class OutOfMemory:
        stats = None

        def encode_documents(self, texts: list[str]) -> list[SparseVector]:
            raise MemoryError("CUDA out of memory")

    with pytest.raises(MemoryError):
        encode_isolating(OutOfMemory(), ["a", "b"])


def _encoded(doc_id: str, text: str = "text") -> EncodedDocument:
    return EncodedDocument(document=Document(id=doc_id, text=text), sparse=SparseVector.from_pairs([(7, 1.0), (42, 0.5)]))


class AllOrNothingStore:
    """A real store behind a batch-level refusal: any batch holding a marked text is refused whole and
    unnamed (the way a Qdrant server answers a bad request), and nothing of it is written."""

    def __init__(self, inner: Any, marker: str) -> None:
        self.inner, self.marker, self.calls = inner, marker, 0

    def upsert(self, batch: Sequence[EncodedDocument]) -> None:
        self.calls += 1
        if any(self.marker in item.document.text for item in batch):
            raise RejectedDocumentsError({}, total=len(batch), others_written=False, store="test")
        self.inner.upsert(batch)


@pytest.mark.live
def test_whole_batch_refusal_is_bisected_to_the_bad_documents(make_store: Any) -> None:
    store = make_store("bisect")
    batch = [_encoded(f"d{i}", "BAD" if i in (3, 11) else f"text {i}") for i in range(16)]
    wrapped = AllOrNothingStore(store, "BAD")
    refused = write_isolating(wrapped.upsert, batch)
    assert sorted(refused) == ["d11", "d3"]
    store.finish_ingest()
    assert store.count() == 14
    assert set(store.fetch_payloads([f"d{i}" for i in range(16)], [])) == {f"d{i}" for i in range(16)} - {"d3", "d11"}
    assert wrapped.calls <= 2 * 2 * 4 + 1  # ~2 log2(16) calls per bad document, not one per document


@pytest.mark.live
def test_named_refusals_are_set_aside_and_the_rest_written(make_store: Any) -> None:
    """OpenSearch names refused items and wrote the others; Qdrant names them and wrote nothing."""
    store = make_store("named")
    batch = [_encoded(f"n{i}") for i in range(5)]

    calls: list[list[str]] = []

    def upsert(part: Sequence[EncodedDocument]) -> None:
        ids = [item.document.id for item in part]
        calls.append(ids)
        if "n1" in ids:
            raise RejectedDocumentsError({"n1": "mapper_parsing_exception"}, total=len(part), others_written=False)
        store.upsert(part)

    assert write_isolating(upsert, batch) == {"n1": "mapper_parsing_exception"}
    assert calls == [["n0", "n1", "n2", "n3", "n4"], ["n0", "n2", "n3", "n4"]]
    store.finish_ingest()
    assert store.count() == 4


def test_other_store_errors_propagate() -> None:
    def upsert(part: Sequence[EncodedDocument]) -> None:
        raise StoreError("disk full")

    with pytest.raises(StoreError, match="disk full"):
        write_isolating(upsert, [_encoded("a"), _encoded("b")])
