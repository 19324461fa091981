"""Every collection records the encoding that wrote it, on every store: ingestion refuses another encoding (count
unchanged), search refuses another model (or warns with `allow_model_mismatch`), a collection written before
records existed is accepted and gets one. Runs on the Qdrant server, the embedded engine, local mode and OpenSearch.
"""

from __future__ import annotations

import copy
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from splade_connectors.errors import EncodingMismatchError
from splade_connectors.ingest import IngestConfig, ingest
from splade_connectors.records import Document, EncodedDocument
from splade_connectors.registry import open_store, store_config
from splade_connectors.search import search
from splade_connectors.store import SparseStore
from splade_connectors.stored_encoding import StoredEncoding, encoding_record, vocabulary_digest
from trainer.encoder import EncodeOptions, SpladeEncoder
from trainer.model import SpladeModel

pytestmark = pytest.mark.live

DOCS = [
    {"_id": "d1", "title": "Cornelius", "text": "Cornelius was a centurion in the book of Acts, baptised by Peter."},
    {"_id": "d2", "title": "Paris", "text": "Paris is the capital and largest city of France, on the Seine."},
    {"_id": "d3", "title": "Photosynthesis", "text": "Plants turn light, water and carbon dioxide into sugar."},
]
MORE = [{"_id": "d4", "title": "Tides", "text": "Tides are caused by the gravity of the moon and the sun."}]


def _config(kind: str, request: pytest.FixtureRequest, name: str) -> Any:
    if kind == "qdrant-server":
        server = request.getfixturevalue("qdrant_server_store")
        return store_config("qdrant", url=server.url, api_key=server.api_key, grpc_port=server.grpc_port, collection=name)
    if kind == "qdrant-embedded":
        path = request.getfixturevalue("tmp_path")
        return store_config("qdrant", path=str(path / "qdrant"), collection=name)
    if kind == "qdrant-local":
        path = request.getfixturevalue("tmp_path")
        return store_config("qdrant", path=str(path / "local"), collection=name, local_mode=True)
    live = request.getfixturevalue("opensearch_store")
    return store_config(
        "opensearch", hosts=[live.url], username=live.username, password=live.password,
        verify_certs=live.verify_certs, index=name, replicas=0,
    )


@pytest.fixture(params=["qdrant-server", "qdrant-embedded", "qdrant-local", "opensearch"])
def config(request: pytest.FixtureRequest) -> Any:
    return _config(str(request.param), request, f"encoding-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def store(config: Any, encoder: SpladeEncoder) -> Iterator[SparseStore]:
    opened = open_store(config, vocabulary=encoder.model.id_to_token())
    try:
        yield opened
    finally:
        opened.close()
        with open_store(config, vocabulary=encoder.model.id_to_token()) as cleanup:
            cleanup.drop()


@pytest.fixture(scope="module")
def other_model(splade_model: SpladeModel) -> SpladeModel:
    """The shipped model with one weight changed: another fingerprint, the same vocabulary."""
    model = copy.deepcopy(splade_model)
    with torch.no_grad():
        next(model.mlm.parameters()).add_(0.01)
    return model


def _reopen(store: SparseStore, config: Any, encoder: SpladeEncoder) -> SparseStore:
    """A new store object on the same collection: what a later process sees."""
    store.close()
    return open_store(config, vocabulary=encoder.model.id_to_token(), create=False)


@pytest.mark.parametrize("change", ["max_length", "top_k", "model"])
def test_a_second_ingest_of_another_encoding_is_refused_and_writes_nothing(
    store: SparseStore, config: Any, encoder: SpladeEncoder, other_model: SpladeModel, change: str
) -> None:
    ingest(DOCS, encoder, store)
    assert store.count() == 3
    other = {
        "max_length": lambda: SpladeEncoder(encoder.model, device="cpu", options=EncodeOptions(max_length=16)),
        "top_k": lambda: SpladeEncoder(encoder.model, device="cpu", options=EncodeOptions(top_k=8)),
        "model": lambda: SpladeEncoder(other_model, device="cpu"),
    }[change]()
    reopened = _reopen(store, config, encoder)
    try:
        with pytest.raises(EncodingMismatchError) as refused:
            ingest(MORE, other, reopened)
        message = str(refused.value)
        assert "\n" not in message and change in message and "reencode" in message and "new collection" in message
        if change == "max_length":
            assert "max_length=512" in message and "max_length=16" in message  # both identities, briefly
        assert reopened.count() == 3  # nothing written
        assert reopened.fetch_payloads(["d4"], []) == {}
        ingest(MORE, encoder, reopened)  # the encoding that wrote it still adds documents
        assert reopened.count() == 4
    finally:
        reopened.close()


def test_the_record_is_kept_in_the_store_and_reencode_replaces_the_collection(
    store: SparseStore, config: Any, encoder: SpladeEncoder
) -> None:
    ingest(DOCS, encoder, store)
    reopened = _reopen(store, config, encoder)
    try:
        recorded = StoredEncoding.model_validate(reopened.recorded_encoding())
        assert recorded.encoding.model == encoder.identity().model and recorded.encoding.with_title
        assert recorded.vocabulary == vocabulary_digest(encoder.model.id_to_token())
        assert reopened.count() == 3  # the record is metadata, never a document
        short = SpladeEncoder(encoder.model, device="cpu", options=EncodeOptions(top_k=8))
        report = ingest(MORE, short, reopened, IngestConfig(reencode=True))
        assert report.accepted == 1 and reopened.count() == 1  # dropped, then this input only
        assert sorted(i for batch in reopened.iter_doc_ids() for i in batch) == ["d4"]
        assert StoredEncoding.model_validate(reopened.recorded_encoding()).encoding.top_k == 8
    finally:
        reopened.close()
    again = open_store(config, vocabulary=encoder.model.id_to_token(), create=False)
    try:
        assert StoredEncoding.model_validate(again.recorded_encoding()).encoding.top_k == 8
        with pytest.raises(EncodingMismatchError, match="top_k"):
            ingest(DOCS, encoder, again)
    finally:
        again.close()


def test_search_with_another_model_is_refused_or_warned(
    store: SparseStore, encoder: SpladeEncoder, other_model: SpladeModel, caplog: pytest.LogCaptureFixture
) -> None:
    ingest(DOCS, encoder, store)
    (hits,) = search(store, encoder, ["who is cornelius"], top_k=2)
    assert hits[0].id == "d1"
    pruned = SpladeEncoder(encoder.model, device="cpu", query_options=EncodeOptions(top_k=3, max_length=16))
    (hits,) = search(store, pruned, ["who is cornelius"], top_k=2)  # query options never change a stored vector
    assert hits[0].id == "d1"
    other = SpladeEncoder(other_model, device="cpu")
    with pytest.raises(EncodingMismatchError) as refused:
        search(store, other, ["who is cornelius"], top_k=2)
    assert "allow_model_mismatch" in str(refused.value) and "model=" in str(refused.value)
    with caplog.at_level(logging.WARNING, logger="splade_connectors.stored_encoding"):
        (hits,) = search(store, other, ["who is cornelius"], top_k=2, allow_model_mismatch=True)
    assert hits  # searched anyway
    assert any(r.levelno == logging.WARNING and "another model" in r.getMessage() for r in caplog.records)


def test_a_collection_without_record_is_accepted_and_gets_one(
    store: SparseStore, config: Any, encoder: SpladeEncoder, other_model: SpladeModel
) -> None:
    """Written before records existed (upserts only): searched unchecked; the next ingestion records its encoding."""
    vectors = encoder.encode_documents([f"{d['title']}\n{d['text']}" for d in DOCS])
    store.begin_ingest()
    store.upsert([EncodedDocument(document=Document(id=d["_id"], text=d["text"], title=d["title"]), sparse=v) for d, v in zip(DOCS, vectors)])
    store.finish_ingest()
    assert store.recorded_encoding() is None
    (hits,) = search(store, SpladeEncoder(other_model, device="cpu"), ["who is cornelius"], top_k=2)  # nothing to compare
    assert hits
    ingest(MORE, encoder, store)
    assert store.count() == 4
    reopened = _reopen(store, config, encoder)
    try:
        assert reopened.recorded_encoding() == encoding_record(
            StoredEncoding.model_validate(reopened.recorded_encoding()).encoding, encoder.model.id_to_token()
        )
        assert StoredEncoding.model_validate(reopened.recorded_encoding()).encoding.model == encoder.identity().model
    finally:
        reopened.close()
