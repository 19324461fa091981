"""OpenSearchStore against a live server: mapping, dotted tokens, bad input, idempotence, filters."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from splade_connectors.errors import RejectedDocumentsError
from splade_connectors.ingest import IngestConfig, IngestError, ingest, ingest_file
from splade_connectors.opensearch import NativeFilter, OpenSearchStore, TooManyTermsError
from splade_connectors.opensearch.index import get_refresh_interval
from splade_connectors.records import Document, EncodedDocument, point_id
from splade_connectors.store import ConfigMismatchError
from trainer.encoder import SpladeEncoder
from trainer.sparse import SparseVector

pytestmark = pytest.mark.live

MakeStore = Callable[..., OpenSearchStore]


def _doc(doc_id: str, vector: SparseVector, text: str = "", **metadata: Any) -> EncodedDocument:
    return EncodedDocument(document=Document(id=doc_id, text=text or f"text {doc_id}", metadata=metadata), sparse=vector)


def _load(store: OpenSearchStore, docs: list[EncodedDocument]) -> None:
    store.begin_ingest()
    store.upsert(docs)
    store.finish_ingest()


def test_dotted_tokens_are_found(make_store: MakeStore, encoder: SpladeEncoder, vocabulary: list[str]) -> None:
    store = make_store("dots")
    text = "u.s. policy on e.g. trade tariffs, see sec. 4.2 of the act."
    (vector,) = encoder.encode_documents([text])
    dotted = [i for i in vector.indices.tolist() if "." in vocabulary[i]]
    assert dotted, "the document vector should hold tokens containing '.'"
    filler = encoder.encode_documents(["a text about cell biology and protein folding"])[0]
    _load(store, [_doc("dotted", vector, text), _doc("other", filler)])
    weights = dict(zip(vector.indices.tolist(), vector.values.tolist()))
    for token_id in dotted:
        query = SparseVector.from_pairs({token_id: 1.0})
        hits = store.search_batch([query], top_k=5)[0]
        assert [h.id for h in hits][:1] == ["dotted"], vocabulary[token_id]
        assert hits[0].score == pytest.approx(weights[token_id], rel=2**-8)
    # the raw dotted field name (what the sentence-transformers helper sends) silently matches nothing
    token = vocabulary[dotted[0]]
    raw = {"rank_feature": {"field": f"splade.{token}", "linear": {}}}
    assert store.client.search(index=store.name, body={"query": raw})["hits"]["hits"] == []
    assert store.fetch_vectors(["dotted"])["dotted"] == vector  # exact weights from _source


def test_mapping_refresh_and_mismatch(make_store: MakeStore, opensearch_store: Any, vocabulary: list[str]) -> None:
    store = make_store("map")
    mapping = next(iter(store.client.indices.get_mapping(index=store.name).values()))["mappings"]
    assert mapping["properties"]["splade"]["type"] == "rank_features"
    assert mapping["properties"]["doc_id"]["type"] == "keyword"
    store.begin_ingest()
    assert get_refresh_interval(store.client, store.name) == "-1"
    store.finish_ingest()
    assert get_refresh_interval(store.client, store.name) == "1s"
    reopened = OpenSearchStore(store.config, vocabulary=vocabulary).open(create=False)  # same config: opens fine
    assert reopened.count() == 0
    with pytest.raises(ConfigMismatchError, match="feature naming"):
        OpenSearchStore(store.config, vocabulary=None).open()  # token-id names on a token-name index
    other = f"{store.name}-plain"
    store.client.indices.create(index=other, body={"mappings": {"properties": {"splade": {"type": "float"}}}})
    try:
        with pytest.raises(ConfigMismatchError, match="'splade' is 'float'"):
            OpenSearchStore(store.config.model_copy(update={"index": other}), vocabulary=vocabulary).open()
    finally:
        store.client.indices.delete(index=other)


def test_empty_vector_and_3000_terms(make_store: MakeStore, vocabulary: list[str]) -> None:
    store = make_store("big")
    rng = np.random.default_rng(1)
    ids = np.sort(rng.choice(np.arange(1000, 30000), 3000, replace=False))
    big = SparseVector(ids, rng.random(3000).astype(np.float32) + 0.1)
    empty = SparseVector.empty(30522)
    _load(store, [_doc("big", big, "many words"), _doc("empty", empty, "nothing encoded here")])
    assert store.count() == 2
    assert store.fetch_vectors(["big", "empty"]) == {"big": big, "empty": empty}
    # the empty doc exists (BM25, filters) but no SPLADE query can find it
    assert [h.id for h in store.search_text_batch(["encoded"])[0]] == ["empty"]
    hits = store.search_batch([big], top_k=5)[0]  # 3,000-term query: pruned to the clause budget
    assert [h.id for h in hits] == ["big"]
    kept = big.top_k(store.max_clauses())
    assert hits[0].score == pytest.approx(kept.dot(big), rel=2**-8)


def test_over_long_query_pruned_or_rejected(make_store: MakeStore, caplog: pytest.LogCaptureFixture) -> None:
    store = make_store("long")
    assert store.max_clauses() == 1024  # the server default, read from the cluster settings
    doc = SparseVector.from_pairs(dict.fromkeys(range(2000, 2100), 1.0))
    _load(store, [_doc("d", doc)])
    query = SparseVector.from_pairs({i: 1.0 + i / 10000 for i in range(1000, 3000)})  # 2,000 terms
    # unpruned, the server itself refuses it
    raw = store.client.search(index=store.name, body={"query": {"bool": {"should": [
        {"rank_feature": {"field": f"splade.{store.codec.name(i)}", "linear": {}}} for i in query.indices.tolist()
    ]}}}, ignore=[400, 500])
    assert "error" in raw, raw
    assert any(s in json.dumps(raw) for s in ("maxClauseCount", "too_many")), json.dumps(raw)[:500]
    with caplog.at_level(logging.WARNING):
        hits = store.search_batch([query])[0]
    assert "over the clause budget" in caplog.text
    assert [h.id for h in hits] == ["d"]  # the top weights (ids 1976..2999) cover the doc's terms
    strict = make_store("long", on_too_many_terms="error")
    with pytest.raises(TooManyTermsError):
        strict.search_batch([query])


def test_item_errors_are_reported_and_nothing_is_lost(make_store: MakeStore) -> None:
    store = make_store("items")
    vec = SparseVector.from_pairs({2000: 1.0})
    _load(store, [_doc("first", vec, year=2020)])
    with pytest.raises(RejectedDocumentsError) as info:  # "year" is a long now: a text value cannot be indexed
        store.upsert([_doc("good", vec, year=2021), _doc("bad", vec, year="not a year")])
    assert list(info.value.failures) == ["bad"] and info.value.failures["bad"].startswith("[400]")
    assert not info.value.transient and info.value.others_written
    store.refresh()
    assert store.count() == 2 and set(store.fetch_vectors(["first", "good", "bad"])) == {"first", "good"}


def test_ingest_file_reports_bad_utf8_by_line(make_store: MakeStore, tmp_path: Path, cached_encoder: Any) -> None:
    store = make_store("utf8")
    lines = [
        json.dumps({"_id": "a", "text": "alpha helix proteins"}).encode(),
        b'{"_id": "b", "text": "caf\xe9 \xff broken"}',
        json.dumps({"_id": "c", "text": "gamma rays and cancer"}).encode(),
        json.dumps({"_id": "d", "text": "   "}).encode(),
    ]
    path = tmp_path / "corpus.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    report = ingest_file(path, cached_encoder, store, IngestConfig(batch_size=2))
    assert report.accepted == 2
    reasons = {r.position: r.reason for r in report.invalid}
    assert "line 2 is not valid UTF-8" in reasons[1] and reasons[3] == "text is empty"
    assert store.count() == 2
    with pytest.raises(IngestError, match="not valid UTF-8"):
        ingest_file(path, cached_encoder, store, IngestConfig(batch_size=2, on_invalid="fail"))
    store.refresh()
    assert store.count() == 2  # a failed run loses nothing already indexed


def test_reingest_is_idempotent_and_filters(make_store: MakeStore, os_scifact: Any, cached_encoder: Any) -> None:
    store = make_store("idem")
    corpus = [dict(d, source="even" if n % 2 == 0 else "odd") for n, d in enumerate(os_scifact.slice.corpus[:60])]
    for _ in range(2):
        report = ingest(corpus, cached_encoder, store, IngestConfig(batch_size=25))
        assert report.accepted == 60
    assert store.count() == 60
    query = os_scifact.doc_vectors[corpus[0]["_id"]]
    (hits,) = store.search_batch([query], top_k=60, filter={"source": "odd"})
    assert hits and all(h.payload["metadata"]["source"] == "odd" for h in hits)
    (hits,) = store.search_batch([query], top_k=60, filter={"doc_id": [corpus[0]["_id"], corpus[1]["_id"]]})
    assert {h.id for h in hits} <= {corpus[0]["_id"], corpus[1]["_id"]} and hits[0].id == corpus[0]["_id"]
    (hits,) = store.search_batch([query], top_k=60, filter=NativeFilter.of({"ids": {"values": [point_id(corpus[2]["_id"])]}}))
    assert [h.id for h in hits] in ([corpus[2]["_id"]], [])
    (all_hits,) = store.search_batch([query], top_k=60)
    threshold = all_hits[4].score
    (hits,) = store.search_batch([query], top_k=60, score_threshold=threshold)
    assert [h.id for h in hits] == [h.id for h in all_hits if h.score >= threshold]
    assert store.search_batch([SparseVector.empty()]) == [[]]
