"""The search API: the same call for every store, sparse or hybrid, with explained hits.

    hits = search(store, encoder, ["vitamin D and bone density"], top_k=10, explain=True)
    hits = search(store, encoder, queries, hybrid=HybridOptions(fusion="rrf"), dense_encoder=minilm)
    hits = await asearch(store, encoder, ["vitamin D"], top_k=10)      # the same, from an event loop

Queries are encoded once, searched in one batch, and (with `explain`) each hit gets the decoded
terms it shares with its query, with both weights (`Hit.terms`). Hybrid search fuses SPLADE with
what the store has beside it: BM25 on the text (OpenSearch) or a dense vector (Qdrant, given a
`dense_encoder`); see `SparseStore.hybrid_search_batch`.

Before encoding, the query encoder is checked against the model that wrote the collection (its
encoding record, `splade_connectors.stored_encoding`): another model is refused with one
`EncodingMismatchError` line, or searched anyway with a logged WARNING under `allow_model_mismatch`.
A collection without a record (written before records existed) is searched unchecked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from splade_connectors.aio import serialised
from splade_connectors.encoding import QueryEncoder, as_encoder
from splade_connectors.errors import ConfigError
from splade_connectors.explain import with_terms
from splade_connectors.passages import check_search_mode
from splade_connectors.records import Hit
from splade_connectors.store import (
    DEFAULT_RRF_K,
    AsyncSearchStore,
    Filter,
    Fusion,
    HybridQuery,
    SparseStore,
    require_top_k,
)
from splade_connectors.stored_encoding import check_query_encoder
from trainer.sparse import SparseVector

if TYPE_CHECKING:
    from sentence_transformers import SparseEncoder as SentenceTransformersModel

DenseQueryEncoder = Callable[[list[str]], Sequence[Sequence[float]]]


class HybridOptions(BaseModel):
    """How SPLADE is fused with the store's other list: method, RRF k, list weights, list depth."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fusion: Fusion = "rrf"
    rrf_k: int = Field(DEFAULT_RRF_K, ge=1, description="textbook RRF constant: 1/(k + rank), rank from 1")
    weights: tuple[float, float] | None = Field(None, description="(SPLADE, other) list weights")
    candidates: int | None = Field(None, ge=1, description="depth of each list (default max(50, 5 x top_k))")
    use_text: bool = Field(True, description="send the query text for a lexical list (stores that have one)")


@dataclass(frozen=True)
class _SearchCall:
    """One `search` / `asearch` call, checked: how its queries are encoded and which store method runs them."""

    queries: list[str]
    top_k: int
    filter: Filter | None
    score_threshold: float | None
    hybrid: HybridOptions | None
    dense_encoder: DenseQueryEncoder | None

    def __post_init__(self) -> None:
        require_top_k(self.top_k)  # before encoding: the store would refuse it after the work
        if self.hybrid is None and self.dense_encoder is not None:
            raise ConfigError("a dense encoder is used by hybrid search only: pass hybrid=HybridOptions(...)")
        if self.hybrid is not None and self.score_threshold is not None:
            raise ConfigError("score_threshold applies to SPLADE scores, not to fused hybrid scores")

    def encode(self, encoder: QueryEncoder) -> tuple[list[SparseVector], list[list[float] | None]]:
        """The SPLADE vectors of the queries and, for hybrid search with a dense encoder, their dense vectors."""
        vectors = encoder.encode_queries(self.queries)
        if self.dense_encoder is None:
            return vectors, [None] * len(self.queries)
        return vectors, [list(v) for v in self.dense_encoder(self.queries)]

    def run(self, store: SparseStore, vectors: list[SparseVector], dense: list[list[float] | None]) -> list[list[Hit]]:
        """The store's blocking search: `search_batch`, or `hybrid_search_batch` with the hybrid options."""
        if self.hybrid is None:
            return store.search_batch(vectors, top_k=self.top_k, filter=self.filter, score_threshold=self.score_threshold)
        hybrid = self.hybrid
        return store.hybrid_search_batch(
            self.hybrid_queries(vectors, dense), top_k=self.top_k, fusion=hybrid.fusion, rrf_k=hybrid.rrf_k,
            weights=hybrid.weights, candidates=hybrid.candidates, filter=self.filter,
        )

    async def arun(self, store: AsyncSearchStore, vectors: list[SparseVector], dense: list[list[float] | None]) -> list[list[Hit]]:
        """`run` through the store's async methods (same arguments)."""
        if self.hybrid is None:
            return await store.asearch_batch(vectors, top_k=self.top_k, filter=self.filter, score_threshold=self.score_threshold)
        hybrid = self.hybrid
        return await store.ahybrid_search_batch(
            self.hybrid_queries(vectors, dense), top_k=self.top_k, fusion=hybrid.fusion, rrf_k=hybrid.rrf_k,
            weights=hybrid.weights, candidates=hybrid.candidates, filter=self.filter,
        )

    def hybrid_queries(self, vectors: list[SparseVector], dense: list[list[float] | None]) -> list[HybridQuery]:
        use_text = self.hybrid is not None and self.hybrid.use_text
        return [HybridQuery(sparse=v, text=q if use_text else None, dense=d) for q, v, d in zip(self.queries, vectors, dense)]


def _call(
    queries: Sequence[str], top_k: int, filter: Filter | None, score_threshold: float | None,
    hybrid: HybridOptions | None, dense_encoder: DenseQueryEncoder | None,
) -> _SearchCall:
    if isinstance(queries, str):
        raise ConfigError("queries must be a list of texts; wrap a single query in a list")
    return _SearchCall(list(queries), top_k, filter, score_threshold, hybrid, dense_encoder)


def search(
    store: SparseStore,
    encoder: QueryEncoder | SentenceTransformersModel,
    queries: Sequence[str],
    *,
    top_k: int = 10,
    filter: Filter | None = None,
    score_threshold: float | None = None,
    explain: bool = False,
    explain_terms: int | None = 5,
    hybrid: HybridOptions | None = None,
    dense_encoder: DenseQueryEncoder | None = None,
    allow_model_mismatch: bool = False,
    passages: bool | None = None,
) -> list[list[Hit]]:
    """Encode `queries` with the SPLADE `encoder` and search `store`; one list of hits per query.

    `allow_model_mismatch`: search a collection written by another model anyway (a WARNING is logged).
    `passages`: a passage collection (ingested with `passages=True`) is always searched per document (each
    document once, by its best passage, `Hit.passage`); True or False asserts which kind `store` is.
    """
    call = _call(queries, top_k, filter, score_threshold, hybrid, dense_encoder)
    query_encoder: QueryEncoder = as_encoder(encoder)  # a sentence-transformers SparseEncoder is wrapped
    check_search_mode(store, passages, explain=explain)
    check_query_encoder(store, query_encoder, allow_mismatch=allow_model_mismatch)
    vectors, dense = call.encode(query_encoder)
    results = call.run(store, vectors, dense)
    if explain:
        results = explain_results(store, vectors, results, query_encoder.model.id_to_token(), limit=explain_terms)
    return results


async def asearch(
    store: SparseStore,
    encoder: QueryEncoder | SentenceTransformersModel,
    queries: Sequence[str],
    *,
    top_k: int = 10,
    filter: Filter | None = None,
    score_threshold: float | None = None,
    explain: bool = False,
    explain_terms: int | None = 5,
    hybrid: HybridOptions | None = None,
    dense_encoder: DenseQueryEncoder | None = None,
    allow_model_mismatch: bool = False,
    passages: bool | None = None,
) -> list[list[Hit]]:
    """`search` for an event loop: same arguments, results and errors, without blocking the loop.

    Encoding (CPU work) runs in a worker thread, one call at a time per encoder (an encoder is not
    safe to share between threads: it keeps per-call state and swaps its model's projection); the store's async
    search (`AsyncSearchStore`: the async client of a server, a worker thread for an in-process
    engine) runs the queries; a store without async methods is searched in a worker thread.
    """
    call = _call(queries, top_k, filter, score_threshold, hybrid, dense_encoder)
    query_encoder: QueryEncoder = as_encoder(encoder)  # one wrapper per sentence-transformers model, so one lock

    def encode() -> tuple[list[SparseVector], list[list[float] | None], list[str] | None]:
        # the vocabulary is read under the encoder's lock too: encoding swaps the model's projection meanwhile
        check_search_mode(store, passages, explain=explain)
        check_query_encoder(store, query_encoder, allow_mismatch=allow_model_mismatch)
        vectors, dense = call.encode(query_encoder)
        return vectors, dense, query_encoder.model.id_to_token() if explain else None

    vectors, dense, vocabulary = await asyncio.to_thread(serialised(query_encoder, encode))
    if isinstance(store, AsyncSearchStore):
        results = await call.arun(store, vectors, dense)
    else:
        results = await asyncio.to_thread(call.run, store, vectors, dense)
    if vocabulary is not None:
        results = await asyncio.to_thread(explain_results, store, vectors, results, vocabulary, limit=explain_terms)
    return results


def explain_results(
    store: SparseStore, vectors: Sequence[SparseVector], results: Sequence[Sequence[Hit]], id_to_token: Sequence[str],
    *, limit: int | None = 5,
) -> list[list[Hit]]:
    """Fill `Hit.terms` of every hit that does not carry them yet (from the stored vectors)."""
    out: list[list[Hit]] = []
    for vector, hits in zip(vectors, results):
        if all(h.terms is not None for h in hits):
            out.append(list(hits))
        else:
            out.append(with_terms(store, vector, hits, id_to_token, limit=limit))
    return out
