"""LlamaIndex end to end on the real Qdrant server (and OpenSearch for the retriever over a `SparseStore`).

LlamaIndex's own `QdrantVectorStore(enable_hybrid=True)` is given our sparse functions; documents go
in through `VectorStoreIndex.from_documents`, queries through the index's retriever, and the hits
must be what our `search()` finds on that same collection with the same model. LlamaIndex's payload
keeps metadata at top level and the source document id in `doc_id` (which our hits report as id).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("llama_index.core")
pytest.importorskip("llama_index.vector_stores.qdrant")

from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.embeddings import BaseEmbedding
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import QueryBundle
from llama_index.core.vector_stores import MetadataFilter, MetadataFilters
from llama_index.vector_stores.qdrant import QdrantVectorStore
from pydantic import PrivateAttr
from qdrant_client import QdrantClient, models

from splade_connectors.integrations.llamaindex import SpladeRetriever, sparse_doc_fn, sparse_query_fn
from splade_connectors.qdrant import QdrantConfig, QdrantStore
from splade_connectors.search import HybridOptions, search
from tests.splade_connectors.integrations.conftest import BY_ID, QUERY, SAMPLE, LibraryStore
from trainer.encoder import SpladeEncoder

pytestmark = pytest.mark.live

QUERIES = [QUERY, "why is the sky blue", "how do vaccines train the immune system"]


class DenseEmbedding(BaseEmbedding):
    """The test's real dense model (mean-pooled MiniLM) as a LlamaIndex embedding."""

    _model: Any = PrivateAttr()

    def __init__(self, model: Any) -> None:
        super().__init__(model_name="all-minilm-l6-v2")
        self._model = model

    def _get_query_embedding(self, query: str) -> list[float]:
        return list(self._model([query])[0])

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return list(self._model([text])[0])

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return [list(v) for v in self._model(texts)]


class LlamaCollection:
    def __init__(self, index: VectorStoreIndex, ours: QdrantStore) -> None:
        self.index, self.ours = index, ours


@pytest.fixture(scope="module")
def llama(qdrant_server_store: Any, encoder: SpladeEncoder, dense_model: Any) -> Iterator[LlamaCollection]:
    """The sample corpus added through LlamaIndex (one node per document), and our store on that collection."""
    live = qdrant_server_store
    name = f"test-llama-{uuid.uuid4().hex[:8]}"
    client = QdrantClient(url=live.url, api_key=live.api_key, check_compatibility=False)
    vector_store = QdrantVectorStore(
        name, client=client, enable_hybrid=True, sparse_doc_fn=sparse_doc_fn(encoder), sparse_query_fn=sparse_query_fn(encoder),
    )
    documents = [Document(id_=d["_id"], text=d["text"], metadata={"topic": d["topic"], "title": d["title"]}) for d in SAMPLE]
    index = VectorStoreIndex.from_documents(
        documents, storage_context=StorageContext.from_defaults(vector_store=vector_store),
        embed_model=DenseEmbedding(dense_model), transformations=[SentenceSplitter(chunk_size=1024)],
    )
    # Our store on LlamaIndex's collection: its sparse and dense vector names, no IDF (LlamaIndex adds none for these functions).
    ours = QdrantStore(
        QdrantConfig(url=live.url, api_key=live.api_key, collection=name, sparse_name="text-sparse-new",
                     dense_name="text-dense", dense_size=dense_model.dim)
    ).open(create=False)
    try:
        assert ours.count() == len(SAMPLE)  # one node per (short) document
        yield LlamaCollection(index, ours)
    finally:
        ours.drop()
        ours.close()
        client.close()


def test_sparse_functions_return_our_vectors(encoder: SpladeEncoder) -> None:
    texts = [SAMPLE[0]["text"], SAMPLE[1]["text"]]
    indices, values = sparse_doc_fn(encoder)(texts)
    for i, v, ours in zip(indices, values, encoder.encode_documents(texts)):
        assert (i, v) == ours.to_lists()
    q_indices, q_values = sparse_query_fn(encoder, top_k=5)([QUERY])
    assert (q_indices[0], q_values[0]) == encoder.encode_queries([QUERY], top_k=5)[0].to_lists() and len(q_indices[0]) == 5


@pytest.mark.parametrize("query", QUERIES)
def test_llamaindex_sparse_retriever_equals_search(llama: LlamaCollection, encoder: SpladeEncoder, query: str) -> None:
    retriever = llama.index.as_retriever(vector_store_query_mode="sparse", similarity_top_k=5, sparse_top_k=5)
    nodes = retriever.retrieve(query)
    hits = search(llama.ours, encoder, [query], top_k=5)[0]
    assert len(nodes) == len(hits) == 5
    assert [n.node.ref_doc_id for n in nodes] == [h.id for h in hits]
    assert [n.score for n in nodes] == pytest.approx([h.score for h in hits], rel=1e-6)
    assert [n.node.get_content() for n in nodes] == [BY_ID[h.id]["text"] for h in hits]


def test_llamaindex_sparse_finds_the_onion_document(llama: LlamaCollection) -> None:
    nodes = llama.index.as_retriever(vector_store_query_mode="sparse", similarity_top_k=3, sparse_top_k=3).retrieve(QUERY)
    assert nodes[0].node.ref_doc_id == "cook-03" and nodes[0].node.metadata["topic"] == "cooking"


def test_llamaindex_metadata_filter_equals_search_with_native_filter(llama: LlamaCollection, encoder: SpladeEncoder) -> None:
    """LlamaIndex keeps metadata at the top of the payload: our search reaches it with a native Qdrant filter."""
    filters = MetadataFilters(filters=[MetadataFilter(key="topic", value="biology")])
    retriever = llama.index.as_retriever(vector_store_query_mode="sparse", similarity_top_k=4, sparse_top_k=4, filters=filters)
    nodes = retriever.retrieve(QUERY)
    native = models.Filter(must=[models.FieldCondition(key="topic", match=models.MatchValue(value="biology"))])
    hits = search(llama.ours, encoder, [QUERY], top_k=4, filter=native)[0]
    assert nodes and all(n.node.metadata["topic"] == "biology" for n in nodes)
    assert [n.node.ref_doc_id for n in nodes] == [h.id for h in hits]


def test_llamaindex_hybrid_equals_our_linear_fusion(llama: LlamaCollection, encoder: SpladeEncoder, dense_model: Any) -> None:
    """LlamaIndex's hybrid mode (relative score fusion of the dense and sparse top-k) is our linear fusion, weights (1 - alpha, alpha)."""
    alpha, k = 0.3, 6
    retriever = llama.index.as_retriever(
        vector_store_query_mode="hybrid", similarity_top_k=k, sparse_top_k=k, hybrid_top_k=k, alpha=alpha
    )
    for query in QUERIES:
        nodes = retriever.retrieve(query)
        hits = search(
            llama.ours, encoder, [query], top_k=k, dense_encoder=dense_model,
            hybrid=HybridOptions(fusion="linear", weights=(1 - alpha, alpha), candidates=k),
        )[0]
        assert [n.node.ref_doc_id for n in nodes] == [h.id for h in hits]
        assert [n.score for n in nodes] == pytest.approx([h.score for h in hits], rel=1e-5)


# ---- the retriever over any SparseStore (Qdrant server, OpenSearch) -------------------------------------


def test_retriever_over_store_equals_search(library_store: LibraryStore, encoder: SpladeEncoder) -> None:
    retriever = SpladeRetriever(library_store.store, encoder, top_k=5)
    for query in QUERIES:
        nodes = retriever.retrieve(query)
        hits = search(library_store.store, encoder, [query], top_k=5)[0]
        assert [n.node.node_id for n in nodes] == [h.id for h in hits] and len(hits) == 5
        assert [n.score for n in nodes] == [h.score for h in hits]
        for node in nodes:
            doc = BY_ID[node.node.node_id]
            assert node.node.get_content() == doc["text"]
            assert node.node.metadata == {"topic": doc["topic"], "reading_minutes": doc["reading_minutes"], "title": doc["title"]}
    assert retriever.retrieve(QueryBundle(QUERY))[0].node.node_id == "cook-03"


def test_retriever_over_store_filters(library_store: LibraryStore, encoder: SpladeEncoder) -> None:
    retriever = SpladeRetriever(library_store.store, encoder, top_k=4, filter={"topic": "biology"})
    nodes = retriever.retrieve(QUERY)
    hits = search(library_store.store, encoder, [QUERY], top_k=4, filter={"topic": "biology"})[0]
    assert nodes and [n.node.node_id for n in nodes] == [h.id for h in hits]
    assert all(n.node.metadata["topic"] == "biology" for n in nodes)


def test_retriever_over_store_hybrid(library_store: LibraryStore, encoder: SpladeEncoder) -> None:
    """Hybrid from LlamaIndex: BM25 beside SPLADE on OpenSearch, the dense vector on Qdrant."""
    options = HybridOptions(fusion="rrf", rrf_k=60)
    retriever = SpladeRetriever(library_store.store, encoder, top_k=5, hybrid=options, dense_encoder=library_store.dense)
    nodes = retriever.retrieve(QUERY)
    hits = search(library_store.store, encoder, [QUERY], top_k=5, hybrid=options, dense_encoder=library_store.dense)[0]
    sparse_only = search(library_store.store, encoder, [QUERY], top_k=5)[0]
    assert [n.node.node_id for n in nodes] == [h.id for h in hits] and len(nodes) == 5
    assert [n.score for n in nodes] == [h.score for h in hits]
    assert [n.score for n in nodes] != [h.score for h in sparse_only]  # fused scores, not SPLADE's
