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
- Per-item bulk failures raise `RejectedDocumentsError` naming every failed doc id (items that succeeded
  stay indexed); when every failure is a 429 the whole batch is retried instead (`TransientStoreError`).
- Queries over the clause limit are pruned to their largest weights with a warning (see `queries.py`).
- Counts and searches see writes after a refresh; during `begin_ingest`..`finish_ingest` refresh is off.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from splade_connectors.errors import ConfigError, RejectedDocumentsError, StoreError, TransientStoreError
from splade_connectors.explain import overlapping_terms
from splade_connectors.fusion import fuse
from splade_connectors.opensearch.config import OpenSearchConfig, connect
from splade_connectors.opensearch.errors import TRANSIENT_STATUS, mapped_errors
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
from splade_connectors.store import DEFAULT_RRF_K, Filter, Fusion, HybridQuery, StoreBase, default_candidates
from trainer.sparse import SparseVector

logger = logging.getLogger(__name__)

MAX_CLAUSE_SETTING = "indices.query.bool.max_clause_count"
DEFAULT_MAX_CLAUSES = 1024
MIN_NORMAL_WEIGHT = float(np.finfo(np.float32).tiny)
STORAGE_RELATIVE_ERROR = 2.0**-8  # rank_features truncates weights to 9 significant bits
_MSEARCH_CHUNK = 100
_MGET_CHUNK = 500


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class OpenSearchStore(StoreBase):
    """SPLADE documents in one OpenSearch index; exact dot-product search via `rank_feature` clauses."""

    kind = "opensearch"

    def __init__(
        self,
        config: OpenSearchConfig,
        *,
        vocabulary: Sequence[str] | None = None,
        client: Any | None = None,
        on_too_many_terms: TooManyTerms = "prune",
        filter_clause_reserve: int = 32,
    ) -> None:
        self.config = config
        self.codec = FeatureCodec(vocabulary)
        self.vocabulary: Sequence[str] = self.codec.vocabulary or []
        self._client = client
        self._owns_client = client is None
        self.on_too_many_terms = on_too_many_terms
        self.filter_clause_reserve = filter_clause_reserve
        self._max_clauses: int | None = None
        self._restore_refresh: str | None = None
        self.created = False

    # ---- lifecycle ----------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.config.index

    @property
    def sparse_field(self) -> str:
        return self.config.sparse_field

    @property
    def client(self) -> Any:
        if self._client is None:
            self._require_open()
        return self._client

    def describe(self) -> str:
        return self.config.describe()

    def identity(self) -> str:
        return f"opensearch|{self.config.location()}|{self.config.index}"

    def open(self, *, create: bool = True) -> OpenSearchStore:
        """Connect, then create the index (`create`) or require it; check an existing index's mapping."""
        if self._opened:
            return self
        if self._client is None:
            self._client = connect(self.config)
        try:
            with mapped_errors(self.describe(), "open"):
                self.created = ensure_index(self._client, self.config, self.codec, create=create)
        except BaseException:
            self._close_client()
            raise
        self._opened = True
        return self

    def close(self) -> None:
        """Close the client's connections (when this store made the client)."""
        self._opened = False
        self._close_client()

    def _close_client(self) -> None:
        if self._owns_client and self._client is not None:
            close = getattr(self._client, "close", None)
            self._client = None
            if callable(close):
                close()

    # ---- writes -------------------------------------------------------------------------------------
    def _features(self, encoded: EncodedDocument) -> dict[str, float]:
        vector = encoded.sparse
        doc_id = encoded.document.id
        if not isinstance(vector, SparseVector):
            raise self._rejected(doc_id, f"sparse must be a SparseVector, got {type(vector).__name__}")
        values = vector.values
        if values.size and not (bool(np.all(np.isfinite(values))) and bool(np.all(values > 0))):
            raise self._rejected(doc_id, "weights must be finite and > 0")
        keep = values >= MIN_NORMAL_WEIGHT
        if not bool(keep.all()):
            logger.warning("document %r: dropped %d subnormal weights (< %g)", doc_id, int((~keep).sum()), MIN_NORMAL_WEIGHT)
            vector = SparseVector(vector.indices[keep], values[keep], vector.dim)
        try:
            return self.codec.encode(vector)
        except FeatureNameError as exc:
            raise self._rejected(doc_id, str(exc)) from exc

    def _rejected(self, doc_id: str, reason: str) -> RejectedDocumentsError:
        return RejectedDocumentsError({doc_id: reason}, total=1, others_written=False, store=self.describe())

    def _source(self, encoded: EncodedDocument) -> dict[str, Any]:
        source = encoded.document.payload()
        source[self.sparse_field] = self._features(encoded)
        return source

    def upsert(self, batch: Sequence[EncodedDocument]) -> None:
        """Index a batch with one `_bulk` request (sources are built first: a bad vector sends nothing)."""
        self._require_open()
        if not batch:
            return
        body: list[dict[str, Any]] = []
        for encoded in batch:
            body.append({"index": {"_index": self.name, "_id": point_id(encoded.document.id)}})
            body.append(self._source(encoded))
        with mapped_errors(self.describe(), f"bulk upsert of {len(batch)} documents"):
            response = self.client.bulk(body=body)
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
            raise TransientStoreError(
                f"{self.describe()}: {len(failures)} of {len(batch)} documents throttled (HTTP 429); retrying the batch"
            )
        raise RejectedDocumentsError(
            {doc: f"[{status}] {reason}" for doc, (status, reason) in failures.items()},
            total=len(batch), others_written=True, store=self.describe(),
        )

    def delete(self, doc_ids: Sequence[str]) -> None:
        self._require_open()
        if not doc_ids:
            return
        body = [{"delete": {"_index": self.name, "_id": point_id(d)}} for d in doc_ids]
        with mapped_errors(self.describe(), f"bulk delete of {len(doc_ids)} documents"):
            response = self.client.bulk(body=body)
        failures = [
            item["delete"] for item in response.get("items", []) if item.get("delete", {}).get("status") not in (200, 404)
        ]
        if failures:
            raise StoreError(f"{self.describe()}: {len(failures)} deletes failed: {failures[0].get('error')}")

    def begin_ingest(self) -> None:
        """Switch refresh off for a bulk load (remembering the value to restore)."""
        self._require_open()
        with mapped_errors(self.describe(), "begin_ingest"):
            current = get_refresh_interval(self.client, self.name)
            target = self.config.ingest_refresh_interval
            # a value equal to the bulk value was left by an interrupted load: restore the configured one
            self._restore_refresh = current if current not in (None, target) else self.config.refresh_interval
            set_refresh_interval(self.client, self.name, target)

    def finish_ingest(self) -> None:
        """Restore the refresh interval and refresh, so everything written is searchable."""
        self._require_open()
        with mapped_errors(self.describe(), "finish_ingest"):
            set_refresh_interval(self.client, self.name, self._restore_refresh or self.config.refresh_interval)
            self.client.indices.refresh(index=self.name)
        self._restore_refresh = None

    def refresh(self) -> None:
        self._require_open()
        with mapped_errors(self.describe(), "refresh"):
            self.client.indices.refresh(index=self.name)

    def drop(self) -> None:
        self._require_open()
        with mapped_errors(self.describe(), "drop"):
            self.client.indices.delete(index=self.name, ignore_unavailable=True)

    # ---- reads --------------------------------------------------------------------------------------
    def count(self) -> int:
        self._require_open()
        with mapped_errors(self.describe(), "count"):
            return int(self.client.count(index=self.name)["count"])

    def storage_bytes(self) -> int | None:
        """Primary store size of the index (`_stats`), after a refresh and flush so every segment is counted."""
        self._require_open()
        with mapped_errors(self.describe(), "index stats"):
            self.client.indices.refresh(index=self.name)
            self.client.indices.flush(index=self.name)
            stats = self.client.indices.stats(index=self.name, metric="store")
        return int(stats["_all"]["primaries"]["store"]["size_in_bytes"])

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
        self._require_open()
        if top_k < 1:
            raise ConfigError("top_k must be >= 1")
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
        self._require_open()
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

    def hybrid_search_batch(
        self,
        queries: Sequence[HybridQuery],
        *,
        top_k: int = 10,
        fusion: Fusion = "rrf",
        rrf_k: int = DEFAULT_RRF_K,
        weights: Sequence[float] | None = None,
        candidates: int | None = None,
        filter: Filter | None = None,
        text_fields: Sequence[str] = ("text",),
    ) -> list[list[Hit]]:
        """Exact SPLADE fused client-side with BM25 on `text_fields` (`splade_connectors.fusion`).

        Dense vectors are not stored in the OpenSearch index: a query carrying one is refused.
        """
        self._require_open()
        if any(q.dense is not None for q in queries):
            raise ConfigError(f"{self.describe()} stores no dense vectors: hybrid search uses BM25 on the text")
        depth = default_candidates(top_k, candidates)
        empty = SparseVector.empty()
        sparse = self.search_batch([q.sparse or empty for q in queries], top_k=depth, filter=filter)
        texts = [q.text for q in queries]
        with_text = [i for i, t in enumerate(texts) if t]
        lexical: list[list[Hit]] = [[] for _ in queries]
        if with_text:
            found = self.search_text_batch([texts[i] for i in with_text], top_k=depth, filter=filter, fields=text_fields)  # type: ignore[misc]
            for i, hits in zip(with_text, found):
                lexical[i] = hits
        return [fuse([s, b], fusion, rrf_k=rrf_k, weights=weights, top_k=top_k) for s, b in zip(sparse, lexical)]

    def _msearch(self, bodies: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        responses: list[dict[str, Any]] = []
        for offset, chunk in enumerate(_chunks(bodies, _MSEARCH_CHUNK)):
            lines: list[dict[str, Any]] = []
            for body in chunk:
                lines += [{"index": self.name}, body]
            with mapped_errors(self.describe(), f"msearch of {len(chunk)} queries"):
                answer = self.client.msearch(body=lines)
            for k, response in enumerate(answer["responses"]):
                if "error" in response:
                    status = int(response.get("status", 0))
                    cls = TransientStoreError if status in TRANSIENT_STATUS else StoreError
                    error = response["error"]
                    reason = error.get("root_cause", [error])[0].get("reason", error) if isinstance(error, Mapping) else error
                    raise cls(f"{self.describe()}: query #{offset * _MSEARCH_CHUNK + k} failed [{status}]: {reason}")
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

    def fetch_payloads(self, doc_ids: Sequence[str], fields: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The named `_source` fields by document id (real-time: no refresh needed); missing ids left out."""
        self._require_open()
        out: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(list(dict.fromkeys(doc_ids)), _MGET_CHUNK):
            with mapped_errors(self.describe(), f"mget of {len(chunk)} documents"):
                answer = self.client.mget(
                    index=self.name, body={"ids": [point_id(d) for d in chunk]}, _source_includes=["doc_id", *fields],
                )
            for doc in answer["docs"]:
                if doc.get("found"):
                    source = doc["_source"]
                    out[str(source["doc_id"])] = {f: source[f] for f in fields if f in source}
        return out

    def iter_doc_ids(self, batch_size: int = 1000) -> Iterator[list[str]]:
        """Every document id (as of the last refresh), paged with `search_after` on the `doc_id` keyword."""
        self._require_open()
        after: list[Any] | None = None
        while True:
            body: dict[str, Any] = {
                "size": batch_size, "query": {"match_all": {}}, "sort": [{"doc_id": "asc"}],
                "_source": False, "docvalue_fields": ["doc_id"], "track_total_hits": False,
            }
            if after is not None:
                body["search_after"] = after
            with mapped_errors(self.describe(), "scan of document ids"):
                hits = self.client.search(index=self.name, body=body)["hits"]["hits"]
            if not hits:
                return
            yield [str(h["fields"]["doc_id"][0]) for h in hits]
            after = hits[-1]["sort"]

    def fetch_vectors(self, doc_ids: Sequence[str]) -> dict[str, SparseVector]:
        """Stored (exact, from `_source`) vectors of these documents; missing ids are left out."""
        self._require_open()
        out: dict[str, SparseVector] = {}
        for chunk in _chunks(list(doc_ids), _MGET_CHUNK):
            with mapped_errors(self.describe(), f"mget of {len(chunk)} documents"):
                answer = self.client.mget(
                    index=self.name, body={"ids": [point_id(d) for d in chunk]},
                    _source_includes=[self.sparse_field, "doc_id"],
                )
            for doc in answer["docs"]:
                if doc.get("found"):
                    source = doc["_source"]
                    out[str(source["doc_id"])] = self.codec.decode(source.get(self.sparse_field) or {})
        return out
