"""The store contract, checked the same way on every store: lifecycle, writes, reads, errors.

Each adapter must behave identically where the contract says so; a test here that needs a
store-specific branch is a contract bug.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from splade_connectors.errors import ConfigError, NotFoundError, StoreError
from splade_connectors.records import Document, EncodedDocument
from splade_connectors.registry import build_store, open_store, store_config
from splade_connectors.store import HybridQuery, SparseStore
from trainer.sparse import SparseVector

pytestmark = pytest.mark.live


def _config(kind: str, request: pytest.FixtureRequest, name: str) -> Any:
    if kind == "qdrant-server":
        server = request.getfixturevalue("qdrant_server_store")
        return store_config("qdrant", url=server.url, api_key=server.api_key, grpc_port=server.grpc_port, collection=name)
    if kind == "qdrant-embedded":
        return store_config("qdrant", collection=name)  # the real engine in-process, temporary folder
    if kind == "qdrant-local":
        return store_config("qdrant", collection=name, local_mode=True)
    live = request.getfixturevalue("opensearch_store")
    return store_config(
        "opensearch", hosts=[live.url], username=live.username, password=live.password,
        verify_certs=live.verify_certs, index=name, replicas=0,
    )


@pytest.fixture(params=["qdrant-server", "qdrant-embedded", "qdrant-local", "opensearch"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(kind: str, request: pytest.FixtureRequest, vocabulary_list: list[str]) -> Iterator[SparseStore]:
    config = _config(kind, request, f"contract-{uuid.uuid4().hex[:8]}")
    opened = open_store(config, vocabulary=vocabulary_list)
    try:
        yield opened
    finally:
        opened.drop()
        opened.close()


@pytest.fixture(scope="session")
def vocabulary_list(encoder: Any) -> list[str]:
    return list(encoder.model.id_to_token())


def _docs(n: int) -> list[EncodedDocument]:
    return [
        EncodedDocument(
            document=Document(id=f"doc-{i}", text=f"text number {i} about proteins", metadata={"group": f"g{i % 2}"}),
            sparse=SparseVector.from_pairs({2000 + i: 1.0, 3000: 0.5 + i / 10}),
        )
        for i in range(n)
    ]


def _load(store: SparseStore, docs: list[EncodedDocument]) -> None:
    store.begin_ingest()
    store.upsert(docs)
    store.finish_ingest()


def test_missing_collection_is_not_created_when_opening_for_reading(kind: str, request: pytest.FixtureRequest) -> None:
    config = _config(kind, request, f"missing-{uuid.uuid4().hex[:8]}")
    with pytest.raises(NotFoundError, match=config.collection_name):
        open_store(config, create=False)
    with pytest.raises(NotFoundError):  # still missing: the failed open created nothing
        open_store(config, create=False)


def test_closed_store_refuses_work_and_context_closes(kind: str, request: pytest.FixtureRequest) -> None:
    config = _config(kind, request, f"closed-{uuid.uuid4().hex[:8]}")
    store = build_store(config)
    with pytest.raises(StoreError, match="is not open"):
        store.count()
    with store:
        assert store.count() == 0
        store.drop()
    with pytest.raises(StoreError, match="is not open"):
        store.count()


def test_writes_reads_and_deletes(store: SparseStore) -> None:
    docs = _docs(6)
    _load(store, docs)
    assert store.count() == 6
    assert sorted(i for batch in store.iter_doc_ids(batch_size=4) for i in batch) == sorted(d.document.id for d in docs)
    payloads = store.fetch_payloads(["doc-1", "doc-2", "nope"], ["text", "metadata"])
    assert set(payloads) == {"doc-1", "doc-2"}
    assert payloads["doc-1"] == {"text": "text number 1 about proteins", "metadata": {"group": "g1"}}
    assert store.fetch_vectors(["doc-3"])["doc-3"] == docs[3].sparse
    size = store.storage_bytes()
    raw = sum(len(d.document.text.encode()) + 8 * d.sparse.nnz for d in docs)
    assert size is None or size >= raw  # whatever a store reports holds at least the data; None: cannot tell (in-memory local mode)
    store.delete(["doc-0", "doc-5", "never-stored"])
    if hasattr(store, "refresh"):
        store.refresh()
    assert store.count() == 4
    assert set(store.fetch_vectors(["doc-0", "doc-1"])) == {"doc-1"}


def test_search_and_filters_and_hybrid_share_one_signature(store: SparseStore) -> None:
    _load(store, _docs(6))
    query = SparseVector.from_pairs({2003: 2.0, 3000: 1.0})
    (hits,) = store.search_batch([query], top_k=3)
    assert hits[0].id == "doc-3" and hits[0].score == pytest.approx(2.0 + 0.8, rel=1e-2)
    (odd,) = store.search_batch([query], top_k=10, filter={"group": "g0"})
    assert odd and all(h.payload["metadata"]["group"] == "g0" for h in odd)
    (by_id,) = store.search_batch([query], top_k=10, filter={"doc_id": "doc-4"})
    assert [h.id for h in by_id] == ["doc-4"]
    (fused,) = store.hybrid_search_batch([HybridQuery(sparse=query)], top_k=3, fusion="rrf", rrf_k=60)
    assert fused[0].id == "doc-3" and fused[0].score == pytest.approx(1 / 61)


def _filter_docs() -> list[EncodedDocument]:
    """Six documents whose title, metadata (flat, nested, typed) and a metadata `id` tell every kind of key apart."""
    return [
        EncodedDocument(
            document=Document(
                id=f"doc-{i}", text=f"text number {i}", title=f"Title {i}: Bone Density",
                metadata={
                    "group": f"g{i % 2}", "year": 2020 if i < 3 else 2019, "open": i % 3 == 0,
                    "source": {"name": "pubmed" if i in (1, 2, 4) else "arxiv"},
                    **({"id": "doc-0"} if i == 5 else {}),  # a metadata field named `id`, pointing elsewhere
                },
            ),
            sparse=SparseVector.from_pairs({2000 + i: 1.0, 3000: 0.5 + i / 10}),
        )
        for i in range(6)
    ]


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ({"doc_id": "doc-4"}, ["doc-4"]),
        ({"doc_id": ["doc-1", "doc-2", "nope"]}, ["doc-1", "doc-2"]),
        ({"title": "Title 3: Bone Density"}, ["doc-3"]),  # the whole title, exactly (not one of its words)
        ({"title": "bone"}, []),
        ({"group": "g0"}, ["doc-0", "doc-2", "doc-4"]),
        ({"metadata.group": "g0"}, ["doc-0", "doc-2", "doc-4"]),
        ({"id": "doc-0"}, ["doc-5"]),  # `id` is a metadata field, not the document id
        ({"year": 2019, "open": True}, ["doc-3"]),
        ({"year": ["2020", 2020], "open": ["false", False]}, ["doc-1", "doc-2"]),  # what `--filter year=2020` gives
        ({"source.name": "pubmed"}, ["doc-1", "doc-2", "doc-4"]),
        ({"metadata.source.name": "pubmed", "group": "g1"}, ["doc-1"]),
    ],
)
def test_a_filter_means_the_same_on_every_store(store: SparseStore, filter: dict[str, Any], expected: list[str]) -> None:
    _load(store, _filter_docs())
    query = SparseVector.from_pairs({3000: 1.0})
    (hits,) = store.search_batch([query], top_k=10, filter=filter)
    assert sorted(h.id for h in hits) == expected
    (fused,) = store.hybrid_search_batch([HybridQuery(sparse=query)], top_k=10, filter=filter)
    assert sorted(h.id for h in fused) == expected


def test_a_bad_filter_is_a_config_error_on_every_store(store: SparseStore) -> None:
    _load(store, _filter_docs()[:2])
    query = SparseVector.from_pairs({3000: 1.0})
    bad_filters: list[Any] = ["group=g0", {"year": 1.5}, {"year": None}, {"tags": []}, {"": "x"}, {"text": "whole"}, {"title.x": "y"},
                             {"*": "x"}, {"a b": 1}, {"year": 2**64}]
    for bad in bad_filters:
        with pytest.raises(ConfigError):
            store.search_batch([query], top_k=3, filter=bad)
        with pytest.raises(ConfigError):
            store.hybrid_search_batch([HybridQuery(sparse=query)], top_k=3, filter=bad)


def test_describe_names_the_store_without_secrets(kind: str, request: pytest.FixtureRequest) -> None:
    config = _config(kind, request, "described") if kind == "opensearch" else None
    if kind.startswith("qdrant"):
        config = store_config("qdrant", url="http://127.0.0.1:1", api_key="s3cret-key", collection="described")
    else:
        config = config.model_copy(update={"password": None}).with_collection("described")
        config = store_config("opensearch", hosts=["http://admin:s3cret-key@127.0.0.1:1"], index="described")
    text = build_store(config).describe() + repr(config) + str(config.model_dump())
    assert "described" in text and "s3cret-key" not in text


def test_search_arguments_are_refused_the_same_way_by_every_store(store: SparseStore) -> None:
    query = SparseVector.from_pairs({2003: 2.0})
    refused = [
        ("top_k must be >= 1, got 0", lambda: store.search_batch([query], top_k=0)),
        ("top_k must be >= 1, got 0", lambda: store.hybrid_search_batch([HybridQuery(sparse=query)], top_k=0)),
        ("rrf_k must be >= 1, got 0", lambda: store.hybrid_search_batch([HybridQuery(sparse=query)], rrf_k=0)),
        (r"candidates \(3\) must be >= top_k \(5\)",
         lambda: store.hybrid_search_batch([HybridQuery(sparse=query)], top_k=5, candidates=3)),
        ("batch_size must be >= 1, got 0", lambda: next(store.iter_doc_ids(batch_size=0))),
    ]
    for message, call in refused:
        with pytest.raises(ConfigError, match=message):
            call()
