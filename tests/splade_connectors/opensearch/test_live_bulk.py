"""Fast writes and batched reads on a live server: parallel byte-sized `_bulk`, gzip, load settings, `_msearch` chunks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from splade_connectors.errors import RejectedDocumentsError
from splade_connectors.opensearch import OpenSearchStore
from splade_connectors.opensearch.bulk import plan_requests
from splade_connectors.opensearch.index import get_index_settings
from splade_connectors.records import Document, EncodedDocument
from trainer.sparse import SparseVector

pytestmark = pytest.mark.live

MakeStore = Callable[..., OpenSearchStore]


def _docs(os_scifact: Any, count: int, **metadata: Any) -> list[EncodedDocument]:
    corpus = os_scifact.slice.corpus[:count]
    return [
        EncodedDocument(
            document=Document(id=d["_id"], text=d["text"], title=d["title"] or None, metadata={"position": n, **metadata}),
            sparse=os_scifact.doc_vectors[d["_id"]],
        )
        for n, d in enumerate(corpus)
    ]


def test_parallel_gzip_requests_write_every_document_exactly(make_store: MakeStore, os_scifact: Any) -> None:
    store = make_store("par", bulk_writers=3, bulk_min_bytes=20_000, bulk_bytes=60_000, compression="gzip")
    docs = _docs(os_scifact, 200, source="scifact")
    lines = store.bulk_lines(docs)
    requests = plan_requests([d.document.id for d in docs], lines, writers=3, min_bytes=20_000, max_bytes=60_000)
    assert len(requests) > 10  # the batch really goes out as many parallel requests
    store.begin_ingest()
    store.upsert(docs)
    store.finish_ingest()
    assert store.count() == 200
    ids = [d.document.id for d in docs]
    stored = store.fetch_vectors(ids)
    assert all(stored[d.document.id] == d.sparse for d in docs)  # compact decimals read back to the same float32
    payloads = store.fetch_payloads(ids, ["title", "text", "metadata"])
    assert all(payloads[d.document.id] == {k: v for k, v in d.document.payload().items() if k != "doc_id"} for d in docs)


def test_item_errors_in_several_requests_name_every_document(make_store: MakeStore, os_scifact: Any) -> None:
    store = make_store("perr", bulk_writers=3, bulk_min_bytes=10_000)
    vector = SparseVector.from_pairs({2000: 1.0})
    first = EncodedDocument(document=Document(id="first", text="x", metadata={"year": 2020}), sparse=vector)
    store.upsert([first])  # metadata.year is a long from now on
    batch = _docs(os_scifact, 90)
    bad = {batch[i].document.id for i in (3, 44, 88)}  # far apart: different requests
    batch = [
        d.model_copy(update={"document": d.document.model_copy(update={"metadata": {"year": "not a year"}})})
        if d.document.id in bad else d
        for d in batch
    ]
    assert len(plan_requests([d.document.id for d in batch], store.bulk_lines(batch), writers=3, min_bytes=10_000,
                             max_bytes=store.config.bulk_bytes)) == 3
    with pytest.raises(RejectedDocumentsError) as info:
        store.upsert(batch)
    assert set(info.value.failures) == bad and info.value.others_written and not info.value.transient
    assert all(reason.startswith("[400]") for reason in info.value.failures.values())
    store.refresh()
    assert store.count() == 1 + 90 - 3


def test_load_settings_are_restored_even_by_another_process(make_store: MakeStore) -> None:
    store = make_store("load", replicas=1, refresh_interval="2s")
    settings = ("index.refresh_interval", "index.number_of_replicas")
    assert get_index_settings(store.client, store.name, *settings) == {"index.refresh_interval": "2s", "index.number_of_replicas": "1"}
    store.begin_ingest()
    assert get_index_settings(store.client, store.name, *settings) == {"index.refresh_interval": "-1", "index.number_of_replicas": "0"}
    store.finish_ingest()
    assert get_index_settings(store.client, store.name, *settings) == {"index.refresh_interval": "2s", "index.number_of_replicas": "1"}
    store.begin_ingest()  # ... and the process dies here; a new one restores the configured values
    other = OpenSearchStore(store.config, vocabulary=store.codec.vocabulary).open(create=False)
    other.finish_ingest()
    assert get_index_settings(store.client, store.name, *settings) == {"index.refresh_interval": "2s", "index.number_of_replicas": "1"}
    other.close()


def test_msearch_chunks_keep_every_answer_in_place(make_store: MakeStore, os_scifact: Any) -> None:
    store = make_store("msearch", msearch_size=7)
    docs = _docs(os_scifact, 120)
    store.begin_ingest()
    store.upsert(docs)
    store.finish_ingest()
    queries = list(os_scifact.query_vectors.values())[:40]
    nowhere = SparseVector.from_pairs({1: 1.0})  # [unused0]: no document has it -> no hits
    queries[5] = queries[17] = nowhere
    queries[9] = SparseVector.empty()
    whole = OpenSearchStore(store.config.model_copy(update={"msearch_size": 1000}), vocabulary=store.codec.vocabulary).open()
    chunked = store.search_batch(queries, top_k=5)
    assert chunked == whole.search_batch(queries, top_k=5)
    assert chunked[5] == chunked[9] == chunked[17] == [] and all(chunked[i] for i in (0, 6, 10, 18, 39))
    assert store.search_batch(queries[:1], top_k=3, payload_fields=[])[0][0].payload == {}
    assert set(store.search_batch(queries[:1], top_k=3, payload_fields=["title"])[0][0].payload) == {"doc_id", "title"}
    assert "splade" not in store.search_batch(queries[:1], top_k=3)[0][0].payload
    whole.close()
