"""Query DSL for the SPLADE index: exact dot-product queries, BM25 queries and filters.

Exact SPLADE score = sum over query terms of `query weight x stored document weight`, built as a
`bool.should` of `rank_feature` clauses with `"linear": {}` and `boost` = query weight.

Too many terms: OpenSearch rejects a query with more than `indices.query.bool.max_clause_count`
clauses (default 1024, counted over the whole query incl. filters). `fit_clause_budget` keeps the
largest query weights (a warning says how many were dropped and how much weight mass), or raises
`TooManyTermsError` with `on_too_many_terms="error"`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from splade_connectors.errors import ConfigError, StoreError
from splade_connectors.filters import field_matches
from splade_connectors.opensearch.features import FeatureCodec, compact_weights
from splade_connectors.opensearch.index import EXACT_FIELDS
from splade_connectors.two_phase import TwoPhase
from trainer.sparse import SparseVector

logger = logging.getLogger(__name__)

TooManyTerms = Literal["prune", "error"]


class TooManyTermsError(StoreError):
    """A query vector has more terms than the cluster's clause limit allows."""


@dataclass(frozen=True)
class NativeFilter:
    """One or more OpenSearch query clauses used as a filter, passed through unchanged."""

    clauses: Sequence[Mapping[str, Any]]

    @classmethod
    def of(cls, *clauses: Mapping[str, Any]) -> NativeFilter:
        return cls(tuple(clauses))


def filter_clauses(filter: Any) -> list[dict[str, Any]]:
    """Filter -> list of clauses for `bool.filter`.

    Simple dict: its meaning is the contract's (`splade_connectors.filters.field_matches`); each
    match becomes a `term` (one value) or `terms` (any of several) clause on the field that indexes
    its exact value: `doc_id`, a record field's keyword field (`title` -> `title.exact`), or the
    metadata path (`metadata.year`; metadata strings are mapped as keywords).
    `NativeFilter` (or a list of clause dicts): passed through unchanged. Anything else is a `ConfigError`.
    """
    if filter is None:
        return []
    if isinstance(filter, NativeFilter):
        return [dict(c) for c in filter.clauses]
    if isinstance(filter, list):
        if not all(isinstance(c, Mapping) for c in filter):
            raise ConfigError("a filter given as a list must hold OpenSearch query clauses (dicts)")
        return [dict(c) for c in filter]
    if not isinstance(filter, Mapping):
        raise ConfigError(f"filter must be a dict, a NativeFilter or a list of clauses, got {type(filter).__name__}")
    clauses: list[dict[str, Any]] = []
    for match in field_matches(filter):
        field = EXACT_FIELDS[match.path] if match.kind != "metadata" else match.path
        if len(match.values) == 1:
            clauses.append({"term": {field: match.values[0]}})
        else:
            clauses.append({"terms": {field: list(match.values)}})
    return clauses


def fit_clause_budget(vector: SparseVector, budget: int, on_too_many_terms: TooManyTerms = "prune") -> SparseVector:
    """Keep at most `budget` terms (the largest weights), warning about what was dropped."""
    if vector.nnz <= budget:
        return vector
    if on_too_many_terms == "error" or budget < 1:
        raise TooManyTermsError(
            f"query has {vector.nnz} terms but the cluster allows {budget} clauses "
            "(indices.query.bool.max_clause_count); prune it (SparseVector.top_k) or raise the limit"
        )
    kept = vector.top_k(budget)
    dropped_mass = 1.0 - kept.l1 / vector.l1 if vector.l1 else 0.0
    logger.warning(
        "query has %d terms, over the clause budget %d: kept the %d largest weights (dropped %.2f%% of the L1 mass)",
        vector.nnz, budget, budget, 100 * dropped_mass,
    )
    return kept


def sparse_query(
    vector: SparseVector, codec: FeatureCodec, field: str, filters: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """Exact dot product of `vector` with the stored `field` features (optionally filtered)."""
    should = [
        {"rank_feature": {"field": f"{field}.{name}", "linear": {}, "boost": w}}
        for name, w in zip(codec.names(vector.indices), compact_weights(vector.values))
    ]
    query: dict[str, Any] = {"bool": {"should": should}}
    if filters:
        query["bool"]["filter"] = list(filters)
        query["bool"]["minimum_should_match"] = 1
    return query


def text_query(text: str, fields: Sequence[str], filters: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """BM25 over `fields` (best field wins), optionally filtered."""
    match: dict[str, Any] = (
        {"match": {fields[0]: {"query": text}}}
        if len(fields) == 1
        else {"multi_match": {"query": text, "fields": list(fields), "type": "best_fields"}}
    )
    if not filters:
        return match
    return {"bool": {"must": [match], "filter": list(filters)}}


def source_spec(payload_fields: Sequence[str] | None, sparse_field: str, with_vectors: bool) -> dict[str, Any]:
    """The `_source` / `docvalue_fields` part of a search body: fetch only what the caller needs.

    `payload_fields=None`: the whole payload but the vector; `[]`: nothing but the id (a doc value,
    no `_source` decompression); `with_vectors` adds the vector (for explained hits).
    """
    if payload_fields is None:
        return {"_source": True if with_vectors else {"excludes": [sparse_field]}}
    fields = ["doc_id", *payload_fields, *([sparse_field] if with_vectors else [])]
    if fields == ["doc_id"]:
        return {"_source": False, "docvalue_fields": ["doc_id"]}
    return {"_source": {"includes": list(dict.fromkeys(fields))}}


def sparse_search_body(
    vector: SparseVector,
    codec: FeatureCodec,
    field: str,
    *,
    top_k: int,
    filters: Sequence[Mapping[str, Any]] = (),
    two_phase: TwoPhase | None = None,
    score_threshold: float | None = None,
    source: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One search body: exact, or two-phase (head terms query + `rescore` with the tail terms).

    Two-phase scores are exact for the returned hits (phase one + phase two = every term), but
    `min_score` would act on phase one's partial score: the caller applies `score_threshold` to the
    returned hits instead.
    """
    head, tail = two_phase.split(vector) if two_phase is not None else (vector, SparseVector.empty())
    body: dict[str, Any] = {"size": top_k, "query": sparse_query(head, codec, field, filters)}
    if tail.nnz:
        assert two_phase is not None
        body["rescore"] = {
            "window_size": two_phase.window(top_k),
            "query": {
                "rescore_query": sparse_query(tail, codec, field),
                "query_weight": 1,
                "rescore_query_weight": 1,
                "score_mode": "total",
            },
        }
    elif score_threshold is not None:
        body["min_score"] = score_threshold
    body.update(source or {})
    body["track_total_hits"] = False
    return body
