"""Haystack end to end on the real Qdrant server (and OpenSearch for the retriever over a `SparseStore`).

qdrant-haystack's `QdrantDocumentStore(use_sparse_embeddings=True)` gets documents through a Haystack
indexing pipeline (our `SpladeDocumentEmbedder` -> `DocumentWriter`); queries run through query
pipelines (our `SpladeTextEmbedder` -> `QdrantSparseEmbeddingRetriever` / `QdrantHybridRetriever`),
and the hits must be what our `search()` finds on that same collection with the same model.
Haystack's payload keeps the Haystack id in `id` and the metadata under `meta`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")  # Haystack reports usage online unless told not to
pytest.importorskip("haystack")
pytest.importorskip("haystack_integrations.document_stores.qdrant")

from haystack import Document, Pipeline, component
from haystack.components.writers import DocumentWriter
from haystack.utils import Secret
from haystack_integrations.components.retrievers.qdrant import (
    QdrantHybridRetriever,
    QdrantSparseEmbeddingRetriever,
)
from haystack_integrations.document_stores.qdrant import QdrantDocumentStore
from qdrant_client import models

from splade_connectors.errors import ConfigError
from splade_connectors.integrations.haystack import (
    SpladeDocumentEmbedder,
    SpladeRetriever,
    SpladeTextEmbedder,
)
from splade_connectors.qdrant import QdrantConfig, QdrantStore
from splade_connectors.search import HybridOptions, search
from tests.splade_connectors.integrations.conftest import BY_ID, QUERY, SAMPLE, LibraryStore
from trainer.encoder import SpladeEncoder

QUERIES = [QUERY, "why is the sky blue", "how do vaccines train the immune system"]


@component
class DenseTextEmbedder:
    """The test's real dense model (mean-pooled MiniLM) as a Haystack text embedder."""

    def __init__(self, model: Any) -> None:
        self.model = model

    @component.output_types(embedding=list[float])
    def run(self, text: str) -> dict[str, list[float]]:
        return {"embedding": list(self.model([text])[0])}


class HaystackCollection:
    def __init__(self, document_store: QdrantDocumentStore, ours: QdrantStore) -> None:
        self.document_store, self.ours = document_store, ours


@pytest.fixture(scope="module")
def haystack(qdrant_server_store: Any, encoder: SpladeEncoder, dense_model: Any) -> Iterator[HaystackCollection]:
    """The sample corpus written through a Haystack indexing pipeline, and our store on that collection."""
    live = qdrant_server_store
    name = f"test-haystack-{uuid.uuid4().hex[:8]}"
    document_store = QdrantDocumentStore(
        url=live.url, client_kwargs={"check_compatibility": False}, grpc_port=live.grpc_port or 6334, api_key=Secret.from_token(live.api_key) if live.api_key else None,
        index=name, embedding_dim=dense_model.dim, use_sparse_embeddings=True, recreate_index=True, progress_bar=False,
    )
    documents = [
        Document(id=d["_id"], content=d["text"], meta={"topic": d["topic"], "title": d["title"]}, embedding=dense)
        for d, dense in zip(SAMPLE, dense_model([d["text"] for d in SAMPLE]))
    ]
    indexing = Pipeline()
    indexing.add_component("sparse", SpladeDocumentEmbedder(encoder, meta_fields_to_embed=["title"]))
    indexing.add_component("writer", DocumentWriter(document_store))
    indexing.connect("sparse.documents", "writer.documents")
    assert indexing.run({"sparse": {"documents": documents}})["writer"]["documents_written"] == len(SAMPLE)
    # Our store on qdrant-haystack's collection: its vector names, cosine dense vectors, no IDF (sparse_idf=False).
    ours = QdrantStore(
        QdrantConfig(url=live.url, api_key=live.api_key, collection=name, sparse_name="text-sparse",
                     dense_name="text-dense", dense_size=dense_model.dim)
    ).open(create=False)
    try:
        assert ours.count() == len(SAMPLE)
        yield HaystackCollection(document_store, ours)
    finally:
        ours.drop()
        ours.close()
        document_store.close()


def sparse_pipeline(embedder: SpladeTextEmbedder, retriever: Any) -> Pipeline:
    pipeline = Pipeline()
    pipeline.add_component("text", embedder)
    pipeline.add_component("retriever", retriever)
    pipeline.connect("text.sparse_embedding", "retriever.query_sparse_embedding")
    return pipeline


@pytest.mark.live
def test_stored_sparse_embeddings_are_our_document_vectors(haystack: HaystackCollection, encoder: SpladeEncoder) -> None:
    """`meta_fields_to_embed=["title"]` encodes title, newline, text: the library's own document text."""
    ids = [d["_id"] for d in SAMPLE]
    stored = {d.id: d.sparse_embedding for d in haystack.document_store.get_documents_by_id(ids)}
    ours = encoder.encode_documents([f"{d['title']}\n{d['text']}" for d in SAMPLE])  # the same batch as the pipeline's
    for doc_id, vector in zip(ids, ours):
        assert stored[doc_id] is not None
        assert stored[doc_id].indices == vector.indices.tolist()
        assert np.array_equal(np.asarray(stored[doc_id].values, dtype=np.float32), vector.values)


@pytest.mark.live
@pytest.mark.parametrize("query", QUERIES)
def test_haystack_sparse_retriever_equals_search(haystack: HaystackCollection, encoder: SpladeEncoder, query: str) -> None:
    pipeline = sparse_pipeline(SpladeTextEmbedder(encoder), QdrantSparseEmbeddingRetriever(haystack.document_store, top_k=5))
    documents = pipeline.run({"text": {"text": query}})["retriever"]["documents"]
    hits = search(haystack.ours, encoder, [query], top_k=5)[0]
    assert len(documents) == len(hits) == 5
    assert [d.id for d in documents] == [h.payload["id"] for h in hits]
    assert [d.score for d in documents] == pytest.approx([h.score for h in hits], rel=1e-6)
    assert [d.content for d in documents] == [BY_ID[d.id]["text"] for d in documents]


@pytest.mark.live
def test_haystack_filter_equals_search_with_native_filter(haystack: HaystackCollection, encoder: SpladeEncoder) -> None:
    """qdrant-haystack keeps metadata under `meta`: our search reaches it with a native Qdrant filter."""
    retriever = QdrantSparseEmbeddingRetriever(
        haystack.document_store, top_k=4, filters={"field": "meta.topic", "operator": "==", "value": "biology"}
    )
    documents = sparse_pipeline(SpladeTextEmbedder(encoder), retriever).run({"text": {"text": QUERY}})["retriever"]["documents"]
    native = models.Filter(must=[models.FieldCondition(key="meta.topic", match=models.MatchValue(value="biology"))])
    hits = search(haystack.ours, encoder, [QUERY], top_k=4, filter=native)[0]
    assert documents and all(d.meta["topic"] == "biology" for d in documents)
    assert [d.id for d in documents] == [h.payload["id"] for h in hits]


@pytest.mark.live
def test_haystack_hybrid_retriever_equals_search(haystack: HaystackCollection, encoder: SpladeEncoder, dense_model: Any) -> None:
    """QdrantHybridRetriever (RRF inside Qdrant over two prefetches of Qdrant's default depth, 10) is our RRF.

    Qdrant counts ranks from 0, so its `rrf_k` 61 is the paper's (and our) k = 60.
    """
    pipeline = Pipeline()
    pipeline.add_component("sparse", SpladeTextEmbedder(encoder))
    pipeline.add_component("dense", DenseTextEmbedder(dense_model))
    pipeline.add_component("retriever", QdrantHybridRetriever(haystack.document_store, top_k=5, rrf_k=61))
    pipeline.connect("sparse.sparse_embedding", "retriever.query_sparse_embedding")
    pipeline.connect("dense.embedding", "retriever.query_embedding")
    for query in QUERIES:
        documents = pipeline.run({"sparse": {"text": query}, "dense": {"text": query}})["retriever"]["documents"]
        hits = search(
            haystack.ours, encoder, [query], top_k=5, dense_encoder=dense_model,
            hybrid=HybridOptions(fusion="rrf", rrf_k=60, candidates=10),
        )[0]
        deeper = search(
            haystack.ours, encoder, [query], top_k=10, dense_encoder=dense_model,
            hybrid=HybridOptions(fusion="rrf", rrf_k=60, candidates=10),
        )[0]
        assert len(documents) == 5
        assert [d.score for d in documents] == pytest.approx([h.score for h in hits], rel=1e-6)
        # RRF ties (rank r in one list only, on either side) are common; Qdrant orders tied points as it likes, so
        # the ids are compared where the scores differ, and every document must have that fused score in ours.
        fused = {h.payload["id"]: h.score for h in deeper}
        assert all(d.score == pytest.approx(fused.get(d.id), rel=1e-6) for d in documents)
        untied = [i for i, d in enumerate(documents) if [e.score for e in documents].count(d.score) == 1 and i < 4]
        assert [documents[i].id for i in untied] == [hits[i].payload["id"] for i in untied]


# ---- the components themselves -------------------------------------------------------------------------


def test_embedders_return_our_vectors(encoder: SpladeEncoder) -> None:
    doc = Document(id="x", content="Onions release a gas when cut.", meta={"title": "Onions", "topic": "cooking"})
    out = SpladeDocumentEmbedder(encoder, meta_fields_to_embed=["title", "missing"]).run([doc])["documents"][0]
    expected = encoder.encode_documents(["Onions\nOnions release a gas when cut."])[0]
    assert out.sparse_embedding is not None and doc.sparse_embedding is None  # a new document, the input unchanged
    assert (out.id, out.content, out.meta) == (doc.id, doc.content, doc.meta)
    assert (out.sparse_embedding.indices, out.sparse_embedding.values) == expected.to_lists()
    query = SpladeTextEmbedder(encoder).run(QUERY)["sparse_embedding"]
    assert (query.indices, query.values) == encoder.encode_queries([QUERY])[0].to_lists()


def test_embedders_refuse_the_wrong_input(encoder: SpladeEncoder) -> None:
    with pytest.raises(ConfigError, match="SpladeTextEmbedder"):
        SpladeDocumentEmbedder(encoder).run("a query")
    with pytest.raises(ConfigError, match="SpladeDocumentEmbedder"):
        SpladeTextEmbedder(encoder).run([Document(content="x")])
    with pytest.raises(ConfigError, match="either encoder= .* or model="):
        SpladeTextEmbedder()


def test_embedders_built_from_a_model_serialize(trained_model_dir: Path, encoder: SpladeEncoder) -> None:
    """Built with model=, the components go into a pipeline YAML and come back; built from an object, they say why not."""
    pipeline = Pipeline()
    pipeline.add_component("text", SpladeTextEmbedder(model=trained_model_dir, device="cpu"))
    pipeline.add_component("docs", SpladeDocumentEmbedder(model=trained_model_dir, device="cpu", meta_fields_to_embed=["title"]))
    restored = Pipeline.loads(pipeline.dumps(), allowed_modules=["splade_connectors.integrations.haystack"])
    text = restored.get_component("text")
    docs = restored.get_component("docs")
    assert isinstance(text, SpladeTextEmbedder) and isinstance(docs, SpladeDocumentEmbedder)
    assert docs.meta_fields_to_embed == ["title"] and text.model == str(trained_model_dir)
    text.warm_up()
    query = text.run(QUERY)["sparse_embedding"]
    assert (query.indices, query.values) == encoder.encode_queries([QUERY])[0].to_lists()
    with pytest.raises(ConfigError, match="cannot be serialized"):
        SpladeTextEmbedder(encoder).to_dict()


# ---- the retriever over any SparseStore (Qdrant server, OpenSearch) -------------------------------------


@pytest.mark.live
def test_retriever_over_store_equals_search(library_store: LibraryStore, encoder: SpladeEncoder) -> None:
    pipeline = Pipeline()
    pipeline.add_component("retriever", SpladeRetriever(library_store.store, encoder, top_k=5))
    for query in QUERIES:
        documents = pipeline.run({"retriever": {"query": query}})["retriever"]["documents"]
        hits = search(library_store.store, encoder, [query], top_k=5)[0]
        assert [d.id for d in documents] == [h.id for h in hits] and len(hits) == 5
        assert [d.score for d in documents] == [h.score for h in hits]
        for document in documents:
            doc = BY_ID[document.id]
            assert document.content == doc["text"]
            assert document.meta == {"topic": doc["topic"], "reading_minutes": doc["reading_minutes"], "title": doc["title"]}


@pytest.mark.live
def test_retriever_over_store_filters_and_top_k(library_store: LibraryStore, encoder: SpladeEncoder) -> None:
    retriever = SpladeRetriever(library_store.store, encoder, top_k=5, filter={"topic": "cooking"})
    cooking = retriever.run(QUERY)["documents"]
    assert cooking[0].id == "cook-03" and all(d.meta["topic"] == "cooking" for d in cooking)
    documents = retriever.run(QUERY, top_k=3, filters={"topic": "biology"})["documents"]  # per-run values replace the retriever's
    hits = search(library_store.store, encoder, [QUERY], top_k=3, filter={"topic": "biology"})[0]
    assert documents and [d.id for d in documents] == [h.id for h in hits]
    assert all(d.meta["topic"] == "biology" for d in documents)


@pytest.mark.live
def test_retriever_over_store_hybrid(library_store: LibraryStore, encoder: SpladeEncoder) -> None:
    """Hybrid from Haystack: BM25 beside SPLADE on OpenSearch, the dense vector on Qdrant."""
    options = HybridOptions(fusion="rrf", rrf_k=60)
    retriever = SpladeRetriever(library_store.store, encoder, top_k=5, hybrid=options, dense_encoder=library_store.dense)
    documents = retriever.run(QUERY)["documents"]
    hits = search(library_store.store, encoder, [QUERY], top_k=5, hybrid=options, dense_encoder=library_store.dense)[0]
    sparse_only = search(library_store.store, encoder, [QUERY], top_k=5)[0]
    assert [d.id for d in documents] == [h.id for h in hits] and len(documents) == 5
    assert [d.score for d in documents] == [h.score for h in hits]
    assert [d.score for d in documents] != [h.score for h in sparse_only]  # fused scores, not SPLADE's
