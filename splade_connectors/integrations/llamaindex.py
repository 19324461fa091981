"""LlamaIndex: SPLADE sparse functions for LlamaIndex's Qdrant store, and a retriever over any `SparseStore`.

    pip install "splade-connectors[llamaindex]"

    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from splade_connectors.integrations.llamaindex import SpladeRetriever, sparse_doc_fn, sparse_query_fn

    vector_store = QdrantVectorStore(
        "docs", client=client, enable_hybrid=True,
        sparse_doc_fn=sparse_doc_fn(encoder), sparse_query_fn=sparse_query_fn(encoder),
    )
    retriever = SpladeRetriever(store, encoder, top_k=5, filter={"topic": "cooking"})

`sparse_doc_fn` / `sparse_query_fn` make the callables `QdrantVectorStore(enable_hybrid=True)` calls
instead of its default FastEmbed model: a batch of texts in, (indices, values) lists out, computed by
any SPLADE encoder of this library (documents and queries each with their own options). Scores are
plain dot products only when the collection has no IDF modifier (LlamaIndex adds one for FastEmbed's
BM25-style models only, never for these functions).

`SpladeRetriever` is a LlamaIndex `BaseRetriever` over a store this library ingested (Qdrant,
OpenSearch, any `SparseStore`): it runs `splade_connectors.search.search`, so filters (the project's
`{field: value}` meaning, `docs/filters.md`), score thresholds and hybrid search (BM25 on OpenSearch,
a dense vector on Qdrant) are reachable from a query engine or a chain. Each hit becomes a `TextNode`
whose id is the document id, text the stored text, metadata the document's metadata plus `title`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks.base import CallbackManager
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from splade_connectors.encoding import DocumentEncoder, QueryEncoder
from splade_connectors.records import METADATA_FIELD, Hit
from splade_connectors.search import DenseQueryEncoder, HybridOptions, search
from splade_connectors.store import Filter, SparseStore, require_top_k
from trainer.sparse import SparseVector

__all__ = ["BatchSparseEncoding", "SpladeRetriever", "hit_to_node", "sparse_doc_fn", "sparse_query_fn"]

# What LlamaIndex's Qdrant store expects from a sparse function: per text, its indices and its values.
BatchSparseEncoding = tuple[list[list[int]], list[list[float]]]


def _as_batch(vectors: Sequence[SparseVector]) -> BatchSparseEncoding:
    indices: list[list[int]] = []
    values: list[list[float]] = []
    for vector in vectors:
        i, v = vector.to_lists()
        indices.append(i)
        values.append(v)
    return indices, values


def sparse_doc_fn(encoder: DocumentEncoder, **overrides: object) -> Callable[[list[str]], BatchSparseEncoding]:
    """`QdrantVectorStore(sparse_doc_fn=...)`: document vectors of `encoder` (with per-call `EncodeOptions` overrides)."""

    def encode(texts: list[str]) -> BatchSparseEncoding:
        return _as_batch(encoder.encode_documents(list(texts), **overrides))

    return encode


def sparse_query_fn(encoder: QueryEncoder, **overrides: object) -> Callable[[list[str]], BatchSparseEncoding]:
    """`QdrantVectorStore(sparse_query_fn=...)`: query vectors of `encoder` (with per-call `EncodeOptions` overrides)."""

    def encode(texts: list[str]) -> BatchSparseEncoding:
        return _as_batch(encoder.encode_queries(list(texts), **overrides))

    return encode


def hit_to_node(hit: Hit) -> NodeWithScore:
    """A hit as LlamaIndex sees it: node id = document id, text, metadata (with `title`), the store's score."""
    payload = hit.payload
    metadata: dict[str, Any] = dict(payload.get(METADATA_FIELD) or {})
    if payload.get("title") is not None:
        metadata["title"] = payload["title"]
    node = TextNode(id_=hit.id, text=str(payload.get("text") or ""), metadata=metadata)
    return NodeWithScore(node=node, score=hit.score)


class SpladeRetriever(BaseRetriever):
    """A LlamaIndex retriever over any `SparseStore`: SPLADE (or hybrid) search with the library's options.

    `top_k`, `filter`, `score_threshold`, `hybrid` and `dense_encoder` mean what they mean in
    `splade_connectors.search.search`; the store must be open (the caller owns it and closes it).
    """

    def __init__(
        self,
        store: SparseStore,
        encoder: QueryEncoder,
        *,
        top_k: int = 10,
        filter: Filter | None = None,
        score_threshold: float | None = None,
        hybrid: HybridOptions | None = None,
        dense_encoder: DenseQueryEncoder | None = None,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        super().__init__(callback_manager=callback_manager, verbose=verbose)
        self.store, self.encoder = store, encoder
        self.top_k = require_top_k(top_k)
        self.filter, self.score_threshold = filter, score_threshold
        self.hybrid, self.dense_encoder = hybrid, dense_encoder

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = search(
            self.store, self.encoder, [query_bundle.query_str], top_k=self.top_k, filter=self.filter,
            score_threshold=self.score_threshold, hybrid=self.hybrid, dense_encoder=self.dense_encoder,
        )[0]
        return [hit_to_node(hit) for hit in hits]
