"""LangChain: SPLADE sparse embeddings in langchain-qdrant's own store on the real Qdrant server (the same hits as
`search()` on our store), and our retriever over a SparseStore passing LangChain's standard retriever tests on the
Qdrant server and OpenSearch, with filters and hybrid search reachable through `invoke`."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("langchain_qdrant")
pytest.importorskip("langchain_tests")
# the imports below come after the skips: the [langchain] extra may be missing

from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_qdrant import QdrantVectorStore, RetrievalMode
from langchain_tests.integration_tests import RetrieversIntegrationTests
from qdrant_client import QdrantClient

from splade_connectors.errors import ConfigError
from splade_connectors.ingest import IngestConfig, ingest
from splade_connectors.integrations.langchain import SparseStoreRetriever, SpladeSparseEmbeddings
from splade_connectors.records import point_id
from splade_connectors.registry import build_store, store_config
from splade_connectors.search import HybridOptions, search
from splade_connectors.store import SparseStore
from tests.live_stores import LiveStore
from trainer.encoder import SpladeEncoder

pytestmark = [pytest.mark.live, pytest.mark.filterwarnings("ignore:Qdrant client version:UserWarning")]

QUERIES = ["vitamin D and bone density", "cancer cells and tumour growth", "antibiotic resistance of bacteria"]


@pytest.fixture(scope="module")
def docs(scifact_dir: Path) -> list[dict[str, Any]]:
    """60 real SciFact records (title as text), with a metadata field to filter on."""
    rows: list[dict[str, Any]] = []
    with open(scifact_dir / "corpus.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if row.get("title"):
                rows.append({"_id": row["_id"], "text": row["title"], "half": "even" if len(rows) % 2 == 0 else "odd"})
            if len(rows) == 60:
                break
    return rows


def _config(kind: str, live: LiveStore, name: str) -> Any:
    if kind == "qdrant":
        return store_config("qdrant", url=live.url, api_key=live.api_key, collection=name)
    return store_config(
        "opensearch", hosts=[live.url], username=live.username, password=live.password,
        verify_certs=live.verify_certs, index=name, replicas=0,
    )


def _filled_store(kind: str, live: LiveStore, encoder: SpladeEncoder, docs: list[dict[str, Any]]) -> Iterator[SparseStore]:
    store = build_store(_config(kind, live, f"langchain-{uuid.uuid4().hex[:8]}"), vocabulary=encoder.model.id_to_token())
    store.open(create=True)
    try:
        assert ingest(docs, encoder, store, IngestConfig(batch_size=30)).stored == len(docs)
        yield store
    finally:
        store.drop()
        store.close()


@pytest.fixture(scope="module")
def qdrant_filled(qdrant_server_store: LiveStore, encoder: SpladeEncoder, docs: list[dict[str, Any]]) -> Iterator[SparseStore]:
    yield from _filled_store("qdrant", qdrant_server_store, encoder, docs)


@pytest.fixture(scope="module")
def opensearch_filled(opensearch_store: LiveStore, encoder: SpladeEncoder, docs: list[dict[str, Any]]) -> Iterator[SparseStore]:
    yield from _filled_store("opensearch", opensearch_store, encoder, docs)


# ---- langchain-qdrant's own store with our sparse embeddings ------------------------------------------------
@pytest.fixture
def langchain_collection(qdrant_server_store: LiveStore) -> Iterator[tuple[str, QdrantClient]]:
    client = QdrantClient(url=qdrant_server_store.url, api_key=qdrant_server_store.api_key)
    name = f"langchain-own-{uuid.uuid4().hex[:8]}"
    try:
        yield name, client
    finally:
        client.delete_collection(name)
        client.close()


def test_qdrant_vector_store_finds_what_search_finds(
    langchain_collection: tuple[str, QdrantClient], qdrant_server_store: LiveStore, qdrant_filled: SparseStore,
    encoder: SpladeEncoder, docs: list[dict[str, Any]],
) -> None:
    name, client = langchain_collection
    embeddings = SpladeSparseEmbeddings(encoder)
    texts, ids = [d["text"] for d in docs], [d["_id"] for d in docs]
    metadatas = [{"doc_id": i} for i in ids]
    half = len(docs) // 2
    store = QdrantVectorStore.from_texts(  # LangChain's own API: first half at creation, the rest through add_texts
        texts[:half], metadatas=metadatas[:half], ids=[point_id(i) for i in ids[:half]], url=qdrant_server_store.url,
        api_key=qdrant_server_store.api_key, collection_name=name, retrieval_mode=RetrievalMode.SPARSE, sparse_embedding=embeddings,
    )
    store.add_texts(texts[half:], metadatas=metadatas[half:], ids=[point_id(i) for i in ids[half:]])
    assert client.count(name).count == len(docs)

    retriever = store.as_retriever(search_kwargs={"k": 5})
    expected = search(qdrant_filled, encoder, QUERIES, top_k=5)
    for query, hits in zip(QUERIES, expected):
        found = retriever.invoke(query)
        assert [d.metadata["doc_id"] for d in found] == [h.id for h in hits]
        assert [d.page_content for d in found] == [h.payload["text"] for h in hits]
        scored = store.similarity_search_with_score(query, k=5)
        np.testing.assert_allclose([s for _, s in scored], [h.score for h in hits], rtol=1e-5)


def test_qdrant_vector_store_hybrid_mode_uses_the_splade_list(
    langchain_collection: tuple[str, QdrantClient], qdrant_server_store: LiveStore, encoder: SpladeEncoder,
    docs: list[dict[str, Any]],
) -> None:
    name, _ = langchain_collection
    texts = [d["text"] for d in docs]
    common = {"url": qdrant_server_store.url, "api_key": qdrant_server_store.api_key, "collection_name": name}
    store = QdrantVectorStore.from_texts(
        texts, embedding=DeterministicFakeEmbedding(size=16), sparse_embedding=SpladeSparseEmbeddings(encoder),
        retrieval_mode=RetrievalMode.HYBRID, **common,
    )
    sparse_only = QdrantVectorStore(
        client=store.client, collection_name=name, retrieval_mode=RetrievalMode.SPARSE,
        sparse_embedding=SpladeSparseEmbeddings(encoder), embedding=DeterministicFakeEmbedding(size=16),
    )
    for query in QUERIES:
        top = sparse_only.similarity_search(query, k=1)[0].page_content
        fused = [d.page_content for d in store.similarity_search(query, k=10)]
        assert len(fused) == 10 and top in fused  # RRF (Qdrant's k=2) keeps the SPLADE winner in the top 10


def test_embeddings_are_the_encoders_vectors(encoder: SpladeEncoder) -> None:
    embeddings = SpladeSparseEmbeddings(encoder)
    (document,) = embeddings.embed_documents(["Cornelius was a centurion"])
    expected = encoder.encode_documents(["Cornelius was a centurion"])[0]
    assert document.indices == expected.indices.tolist() and np.allclose(document.values, expected.values)
    query = embeddings.embed_query("who is cornelius")
    assert query.indices == encoder.encode_queries(["who is cornelius"])[0].indices.tolist()
    with pytest.raises(ConfigError, match="needs an encoder with encode_documents and encode_queries"):
        SpladeSparseEmbeddings(object())


# ---- our retriever over a SparseStore --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["qdrant", "opensearch"])
def test_retriever_reaches_filters_and_scores(kind: str, request: pytest.FixtureRequest, encoder: SpladeEncoder) -> None:
    store: SparseStore = request.getfixturevalue(f"{kind}_filled")
    retriever = SparseStoreRetriever(store=store, encoder=encoder, k=5, explain=True)
    for query in QUERIES:
        hits = search(store, encoder, [query], top_k=5, filter={"half": "odd"})[0]
        found = retriever.invoke(query, filter={"half": "odd"})
        assert [d.id for d in found] == [h.id for h in hits] and all(d.metadata["half"] == "odd" for d in found)
        assert [d.page_content for d in found] == [h.payload["text"] for h in hits]
        np.testing.assert_allclose([d.metadata["score"] for d in found], [h.score for h in hits], rtol=1e-6)
        assert found[0].metadata["terms"] and found[0].metadata["doc_id"] == found[0].id
    with pytest.raises(ConfigError, match="unknown retriever option"):
        retriever.invoke(QUERIES[0], top_k=3)


def test_retriever_reaches_hybrid_search_on_opensearch(opensearch_filled: SparseStore, encoder: SpladeEncoder) -> None:
    options = HybridOptions(fusion="rrf", rrf_k=60)
    retriever = SparseStoreRetriever(store=opensearch_filled, encoder=encoder, k=5, hybrid=options)
    for query in QUERIES:
        hits = search(opensearch_filled, encoder, [query], top_k=5, hybrid=options)[0]
        assert [d.id for d in retriever.invoke(query)] == [h.id for h in hits]


# ---- LangChain's standard retriever tests, on the Qdrant server and on OpenSearch ---------------------------
class _StandardTests(RetrieversIntegrationTests):
    # Standard tests must not be overridden; the marker runs the async one (the project has no asyncio_mode=auto)
    pytestmark = [
        pytest.mark.asyncio,
        pytest.mark.filterwarnings("ignore:The test <Function .* but it is not an async function:pytest.PytestWarning"),
    ]
    params: dict[str, Any] = {}

    @property
    def retriever_constructor(self) -> type[SparseStoreRetriever]:
        return SparseStoreRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return self.params

    @property
    def retriever_query_example(self) -> str:
        return "vitamin D and bone density"


class TestStandardRetrieverOnQdrant(_StandardTests):
    @pytest.fixture(autouse=True)
    def _store(self, qdrant_filled: SparseStore, encoder: SpladeEncoder) -> None:
        self.params = {"store": qdrant_filled, "encoder": encoder}


class TestStandardRetrieverOnOpenSearch(_StandardTests):
    @pytest.fixture(autouse=True)
    def _store(self, opensearch_filled: SparseStore, encoder: SpladeEncoder) -> None:
        self.params = {"store": opensearch_filled, "encoder": encoder}


def test_documents_are_langchain_documents(qdrant_filled: SparseStore, encoder: SpladeEncoder) -> None:
    (document,) = SparseStoreRetriever(store=qdrant_filled, encoder=encoder, k=1).invoke("vitamin D")
    assert isinstance(document, Document) and set(document.metadata) >= {"doc_id", "score", "half"}
