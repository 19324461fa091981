"""LangChain: SPLADE sparse embeddings for `QdrantVectorStore`, and a retriever over any `SparseStore`.

`pip install "splade-connectors[langchain]"` (langchain-core, langchain-qdrant). Two entry points:

- `SpladeSparseEmbeddings`: a `langchain_qdrant.SparseEmbeddings`, so LangChain's own Qdrant store runs
  SPLADE: `QdrantVectorStore(..., retrieval_mode=RetrievalMode.SPARSE or HYBRID, sparse_embedding=...)`.
  Any SPLADE model: a `SpladeEncoder`, a sentence-transformers `SparseEncoder`, any encoder of this
  library, or a checkpoint directory / Hub id (`SpladeSparseEmbeddings.from_pretrained`). Documents are
  encoded with the encoder's document options (pruning, top-k, windows), queries with its query options.
- `SparseStoreRetriever`: a LangChain `BaseRetriever` over a store of this library (Qdrant, OpenSearch),
  through `splade_connectors.search.search`, so filters, score thresholds and hybrid search (BM25 in
  OpenSearch, dense in Qdrant) are reachable from a chain. `invoke(query, k=..., filter=...,
  score_threshold=..., hybrid=...)` overrides the retriever's own settings for one call.

A hit becomes a LangChain `Document`: `page_content` is the stored text, `id` the document id, and
`metadata` the document's own metadata plus `doc_id`, `score`, `title` (when stored) and, with
`explain=True`, `terms` (the shared terms and both weights).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_qdrant import SparseEmbeddings, SparseVector as LangChainSparseVector
from pydantic import ConfigDict, Field, field_validator

from splade_connectors.encoding import DocumentEncoder, QueryEncoder, as_encoder
from splade_connectors.errors import ConfigError
from splade_connectors.records import METADATA_FIELD, Hit
from splade_connectors.search import DenseQueryEncoder, HybridOptions, search
from splade_connectors.store import Filter, SparseStore
from trainer.sparse import SparseVector

if TYPE_CHECKING:
    from sentence_transformers import SparseEncoder as SentenceTransformersModel

__all__ = ["SparseStoreRetriever", "SpladeSparseEmbeddings", "hit_to_document", "to_langchain"]


def to_langchain(vector: SparseVector) -> LangChainSparseVector:
    """This library's sparse vector as langchain-qdrant's (plain lists of indices and values)."""
    indices, values = vector.to_lists()
    return LangChainSparseVector(indices=indices, values=values)


class SpladeSparseEmbeddings(SparseEmbeddings):
    """SPLADE as LangChain sparse embeddings for `langchain_qdrant.QdrantVectorStore` (see the module docstring)."""

    def __init__(self, encoder: Any) -> None:
        """`encoder`: a `SpladeEncoder`, a sentence-transformers `SparseEncoder`, or any object with
        `encode_documents` and `encode_queries` (this library's encoder protocols)."""
        wrapped = as_encoder(encoder)
        if not (isinstance(wrapped, DocumentEncoder) and isinstance(wrapped, QueryEncoder)):
            raise ConfigError(
                f"SpladeSparseEmbeddings needs an encoder with encode_documents and encode_queries, got {type(encoder).__qualname__}"
            )
        self.encoder: Any = wrapped

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, **kwargs: Any) -> SpladeSparseEmbeddings:
        """Load a checkpoint directory or Hub id with `SpladeEncoder.from_pretrained(name_or_path, **kwargs)`."""
        from trainer.encoder import SpladeEncoder

        return cls(SpladeEncoder.from_pretrained(name_or_path, **kwargs))

    def embed_documents(self, texts: list[str]) -> list[LangChainSparseVector]:
        return [to_langchain(v) for v in self.encoder.encode_documents(list(texts))]

    def embed_query(self, text: str) -> LangChainSparseVector:
        return to_langchain(self.encoder.encode_queries([text])[0])


def hit_to_document(hit: Hit) -> Document:
    """A hit as a LangChain `Document` (see the module docstring for the metadata layout)."""
    payload = hit.payload
    metadata: dict[str, Any] = dict(payload.get(METADATA_FIELD) or {})
    metadata["doc_id"] = hit.id
    metadata["score"] = hit.score
    if payload.get("title") is not None:
        metadata["title"] = payload["title"]
    if hit.terms is not None:
        metadata["terms"] = [t.model_dump() for t in hit.terms]
    return Document(page_content=str(payload.get("text", "")), metadata=metadata, id=hit.id)


_CALL_OPTIONS = frozenset({"k", "filter", "score_threshold", "hybrid"})
_LANGCHAIN_OPTIONS = frozenset({"verbose"})  # passed on by BaseRetriever.invoke; not a search option


class SparseStoreRetriever(BaseRetriever):
    """A LangChain retriever over an open `SparseStore` of this library (see the module docstring).

    `encoder`: the SPLADE model the store was filled with (a `SpladeEncoder`, a sentence-transformers
    `SparseEncoder`, or any `QueryEncoder`). The store stays the caller's: open it before, close it after.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    store: SparseStore
    encoder: Any
    k: int = Field(4, ge=1, description="hits per query")
    filter: Filter | None = Field(None, description="metadata filter, splade_connectors.filters rules")
    score_threshold: float | None = Field(None, description="drop SPLADE hits scoring below this (not with hybrid)")
    hybrid: HybridOptions | None = Field(None, description="fuse with the store's BM25 (OpenSearch) or dense list (Qdrant)")
    dense_encoder: DenseQueryEncoder | None = Field(None, description="query -> dense vector, for hybrid search on Qdrant")
    explain: bool = Field(False, description="add each hit's shared terms to its metadata (`terms`)")

    @field_validator("encoder")
    @classmethod
    def _query_encoder(cls, value: QueryEncoder | SentenceTransformersModel) -> QueryEncoder:
        encoder: QueryEncoder = as_encoder(value)
        if not isinstance(encoder, QueryEncoder):
            raise ValueError(f"needs a query encoder (encode_queries and model), got {type(value).__qualname__}")
        return encoder

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        unknown = sorted(set(kwargs) - _CALL_OPTIONS - _LANGCHAIN_OPTIONS)
        if unknown:
            raise ConfigError(f"unknown retriever option(s) {', '.join(unknown)}; known: {', '.join(sorted(_CALL_OPTIONS))}")
        hybrid = kwargs.get("hybrid", self.hybrid)
        hits = search(
            self.store, self.encoder, [query], top_k=int(kwargs.get("k", self.k)),
            filter=kwargs.get("filter", self.filter), score_threshold=kwargs.get("score_threshold", self.score_threshold),
            explain=self.explain, hybrid=hybrid, dense_encoder=self.dense_encoder if hybrid is not None else None,
        )[0]
        return documents(hits)


def documents(hits: Sequence[Hit]) -> list[Document]:
    """Hits as LangChain documents, in rank order."""
    return [hit_to_document(h) for h in hits]
