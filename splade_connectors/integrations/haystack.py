"""Haystack: SPLADE sparse-embedder components, and a retriever component over any `SparseStore`.

    pip install "splade-connectors[haystack]"

    from haystack_integrations.document_stores.qdrant import QdrantDocumentStore
    from haystack_integrations.components.retrievers.qdrant import QdrantSparseEmbeddingRetriever
    from splade_connectors.integrations.haystack import SpladeDocumentEmbedder, SpladeRetriever, SpladeTextEmbedder

    documents = SpladeDocumentEmbedder(model="naver/splade-v3").run(documents)["documents"]
    document_store.write_documents(documents)          # QdrantDocumentStore(use_sparse_embeddings=True)
    sparse = SpladeTextEmbedder(model="naver/splade-v3").run("who is cornelius")["sparse_embedding"]
    QdrantSparseEmbeddingRetriever(document_store).run(query_sparse_embedding=sparse)

`SpladeDocumentEmbedder` sets each Haystack `Document.sparse_embedding` (document vectors: the meta
fields named in `meta_fields_to_embed`, then the content, joined by `embedding_separator`, as
Haystack's own embedders do); `SpladeTextEmbedder` turns a query into a `SparseEmbedding` (query
vectors). Both feed qdrant-haystack's `QdrantDocumentStore(use_sparse_embeddings=True)` and its
`QdrantSparseEmbeddingRetriever` / `QdrantHybridRetriever`. Scores are plain dot products when the
store has no IDF modifier (`sparse_idf=False`, its default). Each takes either an encoder object of
this library (`encoder=`) or a model directory / Hub id (`model=`, loaded by `warm_up()`); only the
latter can be serialized into a pipeline YAML.

`SpladeRetriever` searches a store this library ingested (Qdrant, OpenSearch, any `SparseStore`) with
`splade_connectors.search.search`, so filters (the project's `{field: value}` meaning, not Haystack's
filter syntax), score thresholds and hybrid search are reachable from a pipeline. Each hit becomes a
`Document` whose id is the document id, content the stored text, meta the document's metadata plus
`title`, score the store's score.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict
from haystack.dataclasses import SparseEmbedding

from splade_connectors.encoding import DocumentEncoder, QueryEncoder
from splade_connectors.errors import ConfigError
from splade_connectors.records import METADATA_FIELD, Hit
from splade_connectors.search import DenseQueryEncoder, HybridOptions, search
from splade_connectors.store import Filter, SparseStore, require_top_k
from trainer.sparse import SparseVector

__all__ = ["SpladeDocumentEmbedder", "SpladeRetriever", "SpladeTextEmbedder", "hit_to_document", "to_sparse_embedding"]


def to_sparse_embedding(vector: SparseVector) -> SparseEmbedding:
    """A SPLADE vector as Haystack's `SparseEmbedding` (vocabulary ids and weights)."""
    indices, values = vector.to_lists()
    return SparseEmbedding(indices=indices, values=values)


def hit_to_document(hit: Hit) -> Document:
    """A hit as Haystack sees it: id = document id, content = text, meta = metadata plus `title`, score."""
    payload = hit.payload
    meta: dict[str, Any] = dict(payload.get(METADATA_FIELD) or {})
    if payload.get("title") is not None:
        meta["title"] = payload["title"]
    return Document(id=hit.id, content=payload.get("text"), meta=meta, score=hit.score)


class _SpladeComponent:
    """What both embedders share: an encoder given as an object or loaded from `model` by `warm_up()`."""

    def __init__(self, encoder: Any, model: str | Path | None, device: str | None) -> None:
        if (encoder is None) == (model is None):
            raise ConfigError(f"{type(self).__name__} takes either encoder= (an encoder object) or model= (a directory or Hub id)")
        self._encoder = encoder
        self.model = None if model is None else str(model)
        self.device = device

    def warm_up(self) -> None:
        """Load the model named by `model` (once); nothing to do when an encoder object was given."""
        if self._encoder is None:
            from trainer.encoder import SpladeEncoder

            assert self.model is not None  # __init__ requires encoder or model
            self._encoder = SpladeEncoder.from_pretrained(self.model, device=self.device)

    def _loaded(self) -> Any:
        if self._encoder is None:
            self.warm_up()
        return self._encoder

    def _init_parameters(self) -> dict[str, Any]:
        if self.model is None:
            raise ConfigError(
                f"{type(self).__name__} built from an encoder object cannot be serialized: build it with model= instead"
            )
        return {"model": self.model, "device": self.device}


@component
class SpladeDocumentEmbedder(_SpladeComponent):
    """Sets `sparse_embedding` on Haystack documents with a SPLADE document encoder."""

    def __init__(
        self,
        encoder: DocumentEncoder | None = None,
        *,
        model: str | Path | None = None,
        device: str | None = None,
        meta_fields_to_embed: list[str] | None = None,
        embedding_separator: str = "\n",
    ) -> None:
        _SpladeComponent.__init__(self, encoder, model, device)  # not super(): @component rebuilds the class
        self.meta_fields_to_embed = list(meta_fields_to_embed or [])
        self.embedding_separator = embedding_separator

    def text_of(self, document: Document) -> str:
        """The text encoded for a document: the named meta fields, then the content, joined by the separator."""
        meta = [str(document.meta[k]) for k in self.meta_fields_to_embed if document.meta.get(k) is not None]
        return self.embedding_separator.join([*meta, document.content or ""])

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document]) -> dict[str, list[Document]]:
        """The same documents (new objects) with their `sparse_embedding` set."""
        if not isinstance(documents, list) or not all(isinstance(d, Document) for d in documents):
            raise ConfigError(f"{type(self).__name__} takes a list of Haystack Documents; use SpladeTextEmbedder for a query")
        encoder: DocumentEncoder = self._loaded()
        vectors = encoder.encode_documents([self.text_of(d) for d in documents])
        return {"documents": [replace(d, sparse_embedding=to_sparse_embedding(v)) for d, v in zip(documents, vectors)]}

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(
            self, **self._init_parameters(), meta_fields_to_embed=self.meta_fields_to_embed,
            embedding_separator=self.embedding_separator,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpladeDocumentEmbedder:
        return default_from_dict(cls, data)


@component
class SpladeTextEmbedder(_SpladeComponent):
    """Turns a query into a Haystack `SparseEmbedding` with a SPLADE query encoder."""

    def __init__(self, encoder: QueryEncoder | None = None, *, model: str | Path | None = None, device: str | None = None) -> None:
        _SpladeComponent.__init__(self, encoder, model, device)  # not super(): @component rebuilds the class

    @component.output_types(sparse_embedding=SparseEmbedding)
    def run(self, text: str) -> dict[str, SparseEmbedding]:
        if not isinstance(text, str):
            raise ConfigError(f"{type(self).__name__} takes one string; use SpladeDocumentEmbedder for documents")
        encoder: QueryEncoder = self._loaded()
        return {"sparse_embedding": to_sparse_embedding(encoder.encode_queries([text])[0])}

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, **self._init_parameters())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpladeTextEmbedder:
        return default_from_dict(cls, data)


@component
class SpladeRetriever:
    """A Haystack retriever over any `SparseStore`: SPLADE (or hybrid) search with the library's options.

    `top_k`, `filter`, `score_threshold`, `hybrid` and `dense_encoder` mean what they mean in
    `splade_connectors.search.search`; `run` may override `top_k` and `filters` per query. The store
    must be open (the caller owns it and closes it). Not serializable (it holds a live store).
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
    ) -> None:
        self.store, self.encoder = store, encoder
        self.top_k = require_top_k(top_k)
        self.filter, self.score_threshold = filter, score_threshold
        self.hybrid, self.dense_encoder = hybrid, dense_encoder

    @component.output_types(documents=list[Document])
    def run(self, query: str, top_k: int | None = None, filters: Filter | None = None) -> dict[str, list[Document]]:
        """The best documents for `query`, best first (`filters` replaces the retriever's filter for this query)."""
        hits = search(
            self.store, self.encoder, [query], top_k=self.top_k if top_k is None else top_k,
            filter=self.filter if filters is None else filters, score_threshold=self.score_threshold,
            hybrid=self.hybrid, dense_encoder=self.dense_encoder,
        )[0]
        return {"documents": [hit_to_document(hit) for hit in hits]}
