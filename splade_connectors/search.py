"""The search API: the same call for every store, sparse or hybrid, with explained hits.

    hits = search(store, encoder, ["vitamin D and bone density"], top_k=10, explain=True)
    hits = search(store, encoder, queries, hybrid=HybridOptions(fusion="rrf"), dense_encoder=minilm)

Queries are encoded once, searched in one batch, and (with `explain`) each hit gets the decoded
terms it shares with its query, with both weights (`Hit.terms`). Hybrid search fuses SPLADE with
what the store has beside it: BM25 on the text (OpenSearch) or a dense vector (Qdrant, given a
`dense_encoder`); see `SparseStore.hybrid_search_batch`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from splade_connectors.encoding import QueryEncoder, as_encoder
from splade_connectors.errors import ConfigError
from splade_connectors.explain import with_terms
from splade_connectors.records import Hit
from splade_connectors.store import DEFAULT_RRF_K, Filter, Fusion, HybridQuery, SparseStore, require_top_k
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
) -> list[list[Hit]]:
    """Encode `queries` with the SPLADE `encoder` and search `store`; one list of hits per query."""
    if isinstance(queries, str):
        raise ConfigError("queries must be a list of texts; wrap a single query in a list")
    require_top_k(top_k)  # before encoding: the store would refuse it after the work
    queries = list(queries)
    query_encoder: QueryEncoder = as_encoder(encoder)
    vectors = query_encoder.encode_queries(queries)
    if hybrid is None:
        if dense_encoder is not None:
            raise ConfigError("a dense encoder is used by hybrid search only: pass hybrid=HybridOptions(...)")
        results = store.search_batch(vectors, top_k=top_k, filter=filter, score_threshold=score_threshold)
    else:
        if score_threshold is not None:
            raise ConfigError("score_threshold applies to SPLADE scores, not to fused hybrid scores")
        dense = [list(v) for v in dense_encoder(queries)] if dense_encoder is not None else [None] * len(queries)
        requests = [
            HybridQuery(sparse=v, text=q if hybrid.use_text else None, dense=d) for q, v, d in zip(queries, vectors, dense)
        ]
        results = store.hybrid_search_batch(
            requests, top_k=top_k, fusion=hybrid.fusion, rrf_k=hybrid.rrf_k, weights=hybrid.weights,
            candidates=hybrid.candidates, filter=filter,
        )
    if explain:
        results = explain_results(store, vectors, results, query_encoder.model.id_to_token(), limit=explain_terms)
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
