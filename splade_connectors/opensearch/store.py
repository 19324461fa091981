"""`OpenSearchStore`: the `SparseStore` protocol on an OpenSearch index with a `rank_features` field.

Behaviour worth knowing:
- Ids: `_id = point_id(doc_id)` (UUID5), so re-ingesting overwrites and never duplicates.
- Precision: rank_features keeps ~9 significant bits of each *document* weight (the float's bits
  shifted right by 15, i.e. truncated: stored value in (w * (1 - 2**-8), w]). Query weights are exact
  boosts, so a score is in (S * (1 - 2**-8), S] for the exact dot product S (plus float32 rounding).
  `_source` keeps the exact weights: `fetch_vectors` returns them unchanged.
- Bad weights: `SparseVector` already rejects NaN, inf, zero and negative weights; `upsert`
  checks again (defence in depth) and drops float32-subnormal weights (< 1.2e-38), which
  rank_features refuses and which cannot change a score.
- Empty vectors are indexed without features: found by BM25 and filters, never by SPLADE queries.
- Per-item bulk failures raise `BulkItemsError` naming every failed doc id; it is transient (retried by
  the pipeline) only when every failure is a 429, else permanent. Items that succeeded stay indexed.
- Queries over the clause limit are pruned to their largest weights with a warning (see `queries.py`).
- Counts and searches see writes after a refresh; during `begin_ingest`..`finish_ingest` refresh is off.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from splade_connectors.explain import overlapping_terms
from splade_connectors.opensearch.config import OpenSearchConfig, connect
from splade_connectors.opensearch.features import FeatureCodec, FeatureNameError
from splade_connectors.opensearch.index import ensure_index, get_refresh_interval, set_refresh_interval
from splade_connectors.opensearch.queries import (
    TooManyTerms,
    filter_clauses,
    fit_clause_budget,
    sparse_query,
    text_query,
)
from splade_connectors.records import EncodedDocument, Hit, point_id
from splade_connectors.store import Filter, StoreError, TransientStoreError
from trainer.sparse import SparseVector

logger = logging.getLogger(__name__)

TRANSIENT_STATUS = frozenset({429, 502, 503, 504})
MAX_CLAUSE_SETTING = "indices.query.bool.max_clause_count"
DEFAULT_MAX_CLAUSES = 1024
MIN_NORMAL_WEIGHT = float(np.finfo(np.float32).tiny)
STORAGE_RELATIVE_ERROR = 2.0**-8  # rank_features truncates weights to 9 significant bits
_MSEARCH_CHUNK = 100
_MGET_CHUNK = 500


class BulkItemsError(StoreError):
    """Some documents of a bulk request were rejected; `failures` maps doc id -> (status, reason)."""

    def __init__(self, failures: dict[str, tuple[int, str]], total: int) -> None:
        self.failures = failures
        shown = "; ".join(f"{doc}: [{status}] {reason}" for doc, (status, reason) in list(failures.items())[:10])
        more = f" (+{len(failures) - 10} more)" if len(failures) > 10 else ""
        super().__init__(f"{len(failures)} of {total} documents rejected: {shown}{more}")


class TransientBulkItemsError(BulkItemsError, TransientStoreError):
    """Every rejected item was throttled (429): worth retrying the batch."""


def _is_transient_exception(error: BaseException) -> bool:
    from opensearchpy.exceptions import ConnectionError, SSLError, TransportError

    if isinstance(error, TransientStoreError):
        return True
    if isinstance(error, SSLError):
        return False
    if isinstance(error, ConnectionError):  # includes ConnectionTimeout
        return True
    return isinstance(error, TransportError) and error.status_code in TRANSIENT_STATUS


def _wrap(error: Exception, what: str) -> StoreError:
    """An opensearch-py error as a (Transient)StoreError that keeps the cause."""
    cls = TransientStoreError if _is_transient_exception(error) else StoreError
    wrapped = cls(f"{what} failed: {type(error).__name__}: {str(error)[:500]}")
    wrapped.__cause__ = error
    return wrapped


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class OpenSearchStore:
    """SPLADE documents in one OpenSearch index; exact dot-product search via `rank_feature` clauses."""

    def __init__(
        self,
        config: OpenSearchConfig,
        *,
        vocabulary: Sequence[str] | None = None,
        client: Any | None = None,
        create: bool = True,
        on_too_many_terms: TooManyTerms = "prune",
        filter_clause_reserve: int = 32,
    ) -> None:
        self.config = config
        self.codec = FeatureCodec(vocabulary)
        self.vocabulary: Sequence[str] = self.codec.vocabulary or []
        self.client = client if client is not None else connect(config)
        self.on_too_many_terms = on_too_many_terms
        self.filter_clause_reserve = filter_clause_reserve
        self._max_clauses: int | None = None
        self._restore_refresh: str | None = None
        if create:
            try:
                ensure_index(self.client, config, self.codec)
            except StoreError:
                raise
            except Exception as exc:
                raise _wrap(exc, f"opening index {config.index!r}") from exc

    @property
    def name(self) -> str:
        return self.config.index

    @property
    def sparse_field(self) -> str:
        return self.config.sparse_field

    # ---- writes -------------------------------------------------------------------------------------
    def _features(self, encoded: EncodedDocument) -> dict[str, float]:
        vector = encoded.sparse
        doc_id = encoded.document.id
        if not isinstance(vector, SparseVector):
            raise StoreError(f"document {doc_id!r}: sparse must be a SparseVector, got {type(vector).__name__}")
        values = vector.values
        if values.size and not (bool(np.all(np.isfinite(values))) and bool(np.all(values > 0))):
            raise StoreError(f"document {doc_id!r}: weights must be finite and > 0")
        keep = values >= MIN_NORMAL_WEIGHT
        if not bool(keep.all()):
            logger.warning("document %r: dropped %d subnormal weights (< %g)", doc_id, int((~keep).sum()), MIN_NORMAL_WEIGHT)
            vector = SparseVector(vector.indices[keep], values[keep], vector.dim)
        try:
            return self.codec.encode(vector)
        except FeatureNameError as exc:
            raise StoreError(f"document {doc_id!r}: {exc}") from exc

    def _source(self, encoded: EncodedDocument) -> dict[str, Any]:
        source = encoded.document.payload()
        source[self.sparse_field] = self._features(encoded)
        return source

    def upsert(self, batch: Sequence[EncodedDocument]) -> None:
        """Index a batch with one `_bulk` request (sources are built first: a bad vector sends nothing)."""
        if not batch:
            return
        body: list[dict[str, Any]] = []
        for encoded in batch:
            body.append({"index": {"_index": self.name, "_id": point_id(encoded.document.id)}})
            body.append(self._source(encoded))
        try:
            response = self.client.bulk(body=body)
        except Exception as exc:
            raise _wrap(exc, f"bulk upsert of {len(batch)} documents") from exc
        if response.get("errors"):
            self._raise_item_errors(response, batch)

    def _raise_item_errors(self, response: Mapping[str, Any], batch: Sequence[EncodedDocument]) -> None:
        failures: dict[str, tuple[int, str]] = {}
        for encoded, item in zip(batch, response.get("items", [])):
            result = next(iter(item.values()))
            if "error" in result:
                error = result["error"]
                reason = f"{error.get('type')}: {error.get('reason')}" if isinstance(error, Mapping) else str(error)
                failures[encoded.document.id] = (int(result.get("status", 0)), reason)
        if not failures:
            return
        if all(status == 429 for status, _ in failures.values()):
            raise TransientBulkItemsError(failures, len(batch))
        raise BulkItemsError(failures, len(batch))

    def begin_ingest(self) -> None:
        """Switch refresh off for a bulk load (remembering the value to restore)."""
        try:
            current = get_refresh_interval(self.client, self.name)
            target = self.config.ingest_refresh_interval
            # a value equal to the bulk value was left by an interrupted load: restore the configured one
            self._restore_refresh = current if current not in (None, target) else self.config.refresh_interval
            set_refresh_interval(self.client, self.name, target)
        except Exception as exc:
            raise _wrap(exc, "begin_ingest") from exc

    def finish_ingest(self) -> None:
        """Restore the refresh interval and refresh, so everything written is searchable."""
        try:
            set_refresh_interval(self.client, self.name, self._restore_refresh or self.config.refresh_interval)
            self.client.indices.refresh(index=self.name)
        except Exception as exc:
            raise _wrap(exc, "finish_ingest") from exc
        self._restore_refresh = None

    def refresh(self) -> None:
        self.client.indices.refresh(index=self.name)

    def drop(self) -> None:
        self.client.indices.delete(index=self.name, ignore_unavailable=True)

    def close(self) -> None:
        """Close the client's connections."""
        close = getattr(self.client, "close", None)
        if callable(close):
            close()

    # ---- reads --------------------------------------------------------------------------------------
    def count(self) -> int:
        try:
            return int(self.client.count(index=self.name)["count"])
        except Exception as exc:
            raise _wrap(exc, "count") from exc

    def max_clauses(self) -> int:
        """The cluster's `indices.query.bool.max_clause_count`, read once."""
        if self._max_clauses is None:
            try:
                settings = self.client.cluster.get_settings(include_defaults=True, flat_settings=True)
                value = next(
                    (settings.get(s, {}).get(MAX_CLAUSE_SETTING) for s in ("transient", "persistent", "defaults")
                     if settings.get(s, {}).get(MAX_CLAUSE_SETTING) is not None),
                    None,
                )
            except Exception as exc:  # noqa: BLE001 - an unreadable setting falls back to the default
                logger.warning("could not read %s (%s); assuming %d", MAX_CLAUSE_SETTING, exc, DEFAULT_MAX_CLAUSES)
                value = None
            self._max_clauses = int(value) if value is not None else DEFAULT_MAX_CLAUSES
        return self._max_clauses

    def _clause_budget(self, filters: Sequence[Mapping[str, Any]]) -> int:
        reserve = self.filter_clause_reserve if filters else 0
        return max(1, self.max_clauses() - reserve)

    def _source_fields(self, with_vectors: bool) -> dict[str, Any] | bool:
        return True if with_vectors else {"excludes": [self.sparse_field]}

    def search_batch(
        self,
        vectors: Sequence[SparseVector],
        *,
        top_k: int = 10,
        filter: Filter | None = None,
        score_threshold: float | None = None,
        with_terms: bool = False,
    ) -> list[list[Hit]]:
        """Exact SPLADE top-k per query vector (one `_msearch`); empty queries get no hits.

        `score_threshold` is `min_score` on the stored (quantised) score, which is at most 0.4% below
        the exact one. `with_terms` fills `Hit.terms` from the stored document vectors.
        """
        filters = filter_clauses(filter)
        budget = self._clause_budget(filters)
        searches: list[tuple[int, SparseVector, dict[str, Any]]] = []
        for position, vector in enumerate(vectors):
            if vector.nnz == 0:
                continue
            vector = fit_clause_budget(vector, budget, self.on_too_many_terms)
            body: dict[str, Any] = {
                "size": top_k,
                "query": sparse_query(vector, self.codec, self.sparse_field, filters),
                "_source": self._source_fields(with_terms),
                "track_total_hits": False,
            }
            if score_threshold is not None:
                body["min_score"] = score_threshold
            searches.append((position, vector, body))
        results: list[list[Hit]] = [[] for _ in vectors]
        for (position, vector, _), response in zip(searches, self._msearch([s[2] for s in searches])):
            results[position] = self._hits(response, position, vector if with_terms else None)
        return results

    def search_text_batch(
        self,
        texts: Sequence[str],
        *,
        top_k: int = 10,
        filter: Filter | None = None,
        fields: Sequence[str] = ("text",),
        explain_vectors: Sequence[SparseVector] | None = None,
    ) -> list[list[Hit]]:
        """BM25 top-k per query text; with `explain_vectors` (the SPLADE queries) hits carry `terms`."""
        filters = filter_clauses(filter)
        bodies = [
            {
                "size": top_k,
                "query": text_query(text, fields, filters),
                "_source": self._source_fields(explain_vectors is not None),
                "track_total_hits": False,
            }
            for text in texts
        ]
        responses = self._msearch(bodies)
        return [
            self._hits(resp, i, explain_vectors[i] if explain_vectors is not None else None)
            for i, resp in enumerate(responses)
        ]

    def _msearch(self, bodies: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        responses: list[dict[str, Any]] = []
        for offset, chunk in enumerate(_chunks(bodies, _MSEARCH_CHUNK)):
            lines: list[dict[str, Any]] = []
            for body in chunk:
                lines += [{"index": self.name}, body]
            try:
                answer = self.client.msearch(body=lines)
            except Exception as exc:
                raise _wrap(exc, f"msearch of {len(chunk)} queries") from exc
            for k, response in enumerate(answer["responses"]):
                if "error" in response:
                    status = int(response.get("status", 0))
                    cls = TransientStoreError if status in TRANSIENT_STATUS else StoreError
                    error = response["error"]
                    reason = error.get("root_cause", [error])[0].get("reason", error) if isinstance(error, Mapping) else error
                    raise cls(f"query #{offset * _MSEARCH_CHUNK + k} failed [{status}]: {reason}")
                responses.append(response)
        return responses

    def _hits(self, response: Mapping[str, Any], position: int, query: SparseVector | None) -> list[Hit]:
        hits: list[Hit] = []
        for raw in response["hits"]["hits"]:
            source = dict(raw.get("_source") or {})
            features = source.pop(self.sparse_field, None)
            terms = None
            if query is not None:
                terms = overlapping_terms(query, self.codec.decode(features or {}), self.vocabulary)
            hits.append(Hit(id=str(source.get("doc_id", raw["_id"])), score=float(raw["_score"]), payload=source, terms=terms))
        return hits

    def fetch_vectors(self, doc_ids: Sequence[str]) -> dict[str, SparseVector]:
        """Stored (exact, from `_source`) vectors of these documents; missing ids are left out."""
        out: dict[str, SparseVector] = {}
        for chunk in _chunks(list(doc_ids), _MGET_CHUNK):
            try:
                answer = self.client.mget(
                    index=self.name, body={"ids": [point_id(d) for d in chunk]},
                    _source_includes=[self.sparse_field, "doc_id"],
                )
            except Exception as exc:
                raise _wrap(exc, f"mget of {len(chunk)} documents") from exc
            for doc in answer["docs"]:
                if doc.get("found"):
                    source = doc["_source"]
                    out[str(source["doc_id"])] = self.codec.decode(source.get(self.sparse_field) or {})
        return out

    def is_transient(self, error: BaseException) -> bool:
        """Connection errors/timeouts, HTTP 429/502/503/504 and throttled bulk items are transient."""
        return _is_transient_exception(error)
