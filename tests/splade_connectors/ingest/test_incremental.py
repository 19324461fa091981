"""Incremental re-ingestion on both stores: unchanged documents are neither encoded nor written, edited ones
are, removed ones are deleted on request, and a model change re-encodes all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from splade_connectors.errors import EncodingMismatchError
from splade_connectors.ingest import IngestConfig, content_hash, encoding_identity, ingest, ingest_file
from splade_connectors.ingest.incremental import SourceIdSet
from splade_connectors.records import CONTENT_HASH_FIELD, Document
from tests.splade_connectors.ingest.conftest import CountingEncoder, write_jsonl
from trainer.encoder import EncodeOptions, SpladeEncoder
from trainer.model import SpladeModel

pytestmark = pytest.mark.filterwarnings("ignore:Qdrant client version:UserWarning")

BATCH = 25


def edit(docs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """Version 2 of a corpus: 5 texts edited, 3 metadata edited, 10 removed, 7 added."""
    v2 = [dict(d) for d in docs]
    for d in v2[10:15]:
        d["text"] += " (revised)"
    for d in v2[20:23]:
        d["year"] = 1999
    removed = [d["_id"] for d in v2[90:100]]
    v2 = v2[:90] + [{"_id": f"new-{i}", "text": f"newly added finding number {i}", "year": 2024} for i in range(7)]
    changes = {
        "text": [d["_id"] for d in v2[10:15]],
        "metadata": [d["_id"] for d in v2[20:23]],
        "removed": removed,
        "new": [f"new-{i}" for i in range(7)],
    }
    return v2, changes


@pytest.mark.live
def test_skip_unchanged_and_delete_missing(make_store: Any, encoder: SpladeEncoder, short_docs: list[dict[str, Any]], tmp_path: Path) -> None:
    store = make_store("incremental")
    v1 = short_docs[:100]
    first = ingest_file(write_jsonl(tmp_path / "v1.jsonl", v1), encoder, store, IngestConfig(batch_size=BATCH, skip_unchanged=True))
    assert (first.new, first.updated, first.unchanged, first.accepted) == (100, 0, 0, 100)
    stored = store.fetch_payloads([d["_id"] for d in v1], [CONTENT_HASH_FIELD])
    assert len(stored) == 100 and all(len(p[CONTENT_HASH_FIELD]) == 32 for p in stored.values())

    v2, changes = edit(v1)
    path2 = write_jsonl(tmp_path / "v2.jsonl", v2)
    counting = CountingEncoder(encoder)
    second = ingest_file(path2, counting, store, IngestConfig(batch_size=BATCH, skip_unchanged=True, delete_missing=True))
    assert (second.unchanged, second.updated, second.new, second.deleted) == (82, 8, 7, 10)
    assert second.accepted == 15 and second.stored == 97 and store.count() == 97
    edited = set(changes["text"] + changes["metadata"] + changes["new"])
    assert sorted(counting.texts) == sorted(d["text"] for d in v2 if d["_id"] in edited)  # nothing else re-encoded
    payloads = store.fetch_payloads([d["_id"] for d in v1] + changes["new"], ["text", "metadata"])
    assert not set(changes["removed"]) & set(payloads)
    assert all(payloads[i]["text"].endswith(" (revised)") for i in changes["text"])
    assert all(payloads[i]["metadata"]["year"] == 1999 for i in changes["metadata"])

    again = CountingEncoder(encoder)
    third = ingest_file(path2, again, store, IngestConfig(batch_size=BATCH, skip_unchanged=True, delete_missing=True))
    assert (third.unchanged, third.accepted, third.deleted, third.batches) == (97, 0, 0, 0) and again.texts == []


@pytest.mark.live
def test_without_skip_unchanged_everything_is_rewritten_and_counted(make_store: Any, encoder: SpladeEncoder, short_docs: list[dict[str, Any]]) -> None:
    store = make_store("rewrite")
    ingest(short_docs[:50], encoder, store, IngestConfig(batch_size=BATCH))
    report = ingest(short_docs[:60], encoder, store, IngestConfig(batch_size=BATCH))
    assert (report.updated, report.new, report.unchanged) == (50, 10, 0) and store.count() == 60


@pytest.mark.live
def test_model_or_option_change_invalidates_every_hash(
    make_store: Any, encoder: SpladeEncoder, splade_model: SpladeModel, base_model_dir: Path, short_docs: list[dict[str, Any]]
) -> None:
    store = make_store("model")
    docs = short_docs[:40]
    config = IngestConfig(batch_size=BATCH, skip_unchanged=True)
    ingest(docs, encoder, store, config)
    assert ingest(docs, encoder, store, config).unchanged == 40
    pruned = SpladeEncoder(splade_model, device="cpu", options=EncodeOptions(top_k=16))
    with pytest.raises(EncodingMismatchError, match="top_k"):  # one collection, one encoding (stored_encoding)
        ingest(docs, pruned, store, config)
    reencode = config.model_copy(update={"reencode": True})
    report = ingest(docs, pruned, store, reencode)
    assert (report.new, report.unchanged) == (40, 0)
    assert all(v.nnz <= 16 for v in store.fetch_vectors([d["_id"] for d in docs]).values())
    other_model = SpladeEncoder(SpladeModel.from_pretrained(base_model_dir), device="cpu")
    report = ingest(docs, other_model, store, reencode)
    assert (report.new, report.unchanged) == (40, 0)
    assert ingest(docs, other_model, store, reencode).unchanged == 40  # no mismatch: reencode changes nothing


def test_content_hash_covers_text_metadata_model_and_options(encoder: SpladeEncoder, trained_model_dir: Path) -> None:
    doc = Document(id="d", text="body", title="Head", metadata={"year": 2020})
    key = encoding_identity(encoder, with_title=True).key()
    base = content_hash(doc, key)
    assert content_hash(doc.model_copy(update={"content_hash": "old"}), key) == base  # a stored hash is not hashed
    for changed in (
        doc.model_copy(update={"text": "body!"}),
        doc.model_copy(update={"title": "Head!"}),
        doc.model_copy(update={"metadata": {"year": 2021}}),
    ):
        assert content_hash(changed, key) != base
    assert content_hash(doc, encoding_identity(encoder, with_title=False).key()) != base
    bf16 = SpladeEncoder(SpladeModel.from_pretrained(trained_model_dir), device="cpu", dtype="bf16")  # its own copy
    assert encoding_identity(bf16, with_title=True).model == encoding_identity(encoder, with_title=True).model
    assert content_hash(doc, encoding_identity(bf16, with_title=True).key()) != base  # dtype changes vectors


def test_source_id_set_is_on_disk_and_exact(tmp_path: Path) -> None:
    with SourceIdSet(directory=str(tmp_path)) as ids:
        ids.update(f"doc-{i}" for i in range(50_000))
        ids.add("doc-7")
        assert len(ids) == 50_000
        assert ids.missing(["doc-1", "gone-1", "doc-49999", "gone-2"]) == ["gone-1", "gone-2"]
        folders = list(tmp_path.iterdir())
        assert len(folders) == 1 and (folders[0] / "ids.sqlite").stat().st_size > 0
    assert not list(tmp_path.iterdir())
