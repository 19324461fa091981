"""`QdrantStore`: the `SparseStore` for Qdrant (server, or qdrant-client's embedded local mode).

Point ids are `point_id(doc_id)` (UUID5), so re-ingesting overwrites instead of duplicating; the
payload is `Document.payload()` (doc_id, text, title, metadata). Searches use Qdrant's sparse
dot product (exact, no approximation) on the named sparse vector.

Local mode and the server differ on zero scores (local mode can return documents that share no
term with the query); this store drops hits with score <= 0 in both, so results are the same.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from qdrant_client import QdrantClient, models

from splade_connectors.errors import ConfigError, RejectedDocumentsError
from splade_connectors.fusion import fuse
from splade_connectors.qdrant.collection import ensure_collection
from splade_connectors.qdrant.config import QdrantConfig, connect
from splade_connectors.qdrant.errors import mapped_errors
from splade_connectors.qdrant.filters import build_filter
from splade_connectors.records import EncodedDocument, Hit, point_id
from splade_connectors.retry import RetryPolicy
from splade_connectors.store import DEFAULT_RRF_K, Filter, Fusion, HybridQuery, StoreBase, default_candidates
from trainer.sparse import SparseVector

logger = logging.getLogger(__name__)

# Server-side floor for scores: positive, representable in float32, below any real SPLADE score.
# Makes local mode drop zero-score points the way the server never returns them.
MIN_SCORE = 1e-30
_RETRIEVE_CHUNK = 256


def to_qdrant_sparse(vector: SparseVector) -> models.SparseVector:
    indices, values = vector.to_lists()
    return models.SparseVector(indices=indices, values=values)


def from_qdrant_sparse(vector: models.SparseVector) -> SparseVector:
    return SparseVector.from_pairs(zip(vector.indices, vector.values))


def to_hit(point: models.ScoredPoint) -> Hit:
    payload = dict(point.payload or {})
    return Hit(id=str(payload.get("doc_id", point.id)), score=float(point.score), payload=payload)


class QdrantStore(StoreBase):
    """A SPLADE collection in Qdrant: created on `open()` when missing, refused when configured differently."""

    kind = "qdrant"

    def __init__(
        self,
        config: QdrantConfig | None = None,
        *,
        vocabulary: Sequence[str] | None = None,
        client: QdrantClient | None = None,
        search_retry: RetryPolicy | None = None,
    ) -> None:
        self.config = config or QdrantConfig()
        self.vocabulary = vocabulary
        self._owns_client = client is None
        self._client = client
        self._search_retry = search_retry or RetryPolicy(attempts=3, initial_wait=0.2, max_wait=5.0)
        self.created = False

    # ---- lifecycle --------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.config.collection

    @property
    def client(self) -> QdrantClient:
        if self._client is None:
            self._require_open()
        assert self._client is not None
        return self._client

    def describe(self) -> str:
        return self.config.describe()

    def identity(self) -> str:
        return f"qdrant|{self.config.location()}|{self.config.collection}"

    def open(self, *, create: bool = True) -> QdrantStore:
        if self._opened:
            return self
        with mapped_errors(self.describe(), "open"):
            if self._client is None:
                self._client = connect(self.config)
            try:
                self.created = ensure_collection(self._client, self.config, create=create)
            except BaseException:
                self._close_client()
                raise
        self._opened = True
        return self

    def close(self) -> None:
        """Close the client if this store opened it (releases a local path's lock)."""
        self._opened = False
        self._close_client()

    def _close_client(self) -> None:
        if self._owns_client and self._client is not None:
            try:
                self._client.close()
            finally:
                self._client = None

    # ---- writes -----------------------------------------------------------------------------------------
    def upsert(self, batch: Sequence[EncodedDocument]) -> None:
        """Write a batch and wait until it is applied (searchable when this returns)."""
        self._require_open()
        if not batch:
            return
        points = [self._point(item) for item in batch]
        with mapped_errors(self.describe(), f"upsert of {len(points)} points"):
            self.client.upsert(collection_name=self.name, points=points, wait=True)

    def delete(self, doc_ids: Sequence[str]) -> None:
        self._require_open()
        if not doc_ids:
            return
        with mapped_errors(self.describe(), f"delete of {len(doc_ids)} points"):
            self.client.delete(
                collection_name=self.name, points_selector=models.PointIdsList(points=[point_id(d) for d in doc_ids]), wait=True,
            )

    def begin_ingest(self) -> None:
        """Nothing to relax: upserts wait until applied and Qdrant indexes in the background."""

    def finish_ingest(self) -> None:
        """Nothing to restore (see `begin_ingest`); logs the final count."""
        logger.info("%s holds %d documents", self.describe(), self.count())

    def drop(self) -> None:
        self._require_open()
        with mapped_errors(self.describe(), "drop"):
            self.client.delete_collection(collection_name=self.name)

    # ---- reads ------------------------------------------------------------------------------------------
    def count(self) -> int:
        self._require_open()
        with mapped_errors(self.describe(), "count"):
            return int(self.client.count(collection_name=self.name, exact=True).count)

    def search_batch(
        self,
        vectors: Sequence[SparseVector],
        *,
        top_k: int = 10,
        filter: Filter | None = None,
        score_threshold: float | None = None,
    ) -> list[list[Hit]]:
        """Top-k by sparse dot product for each query, in one round trip.

        Hits with score <= 0 are dropped; `score_threshold` keeps hits with score >= it (inclusive).
        """
        self._require_open()
        if top_k < 1:
            raise ConfigError("top_k must be >= 1")
        native_filter = build_filter(filter)
        floor = max(score_threshold, MIN_SCORE) if score_threshold is not None else MIN_SCORE
        # Qdrant's threshold is exclusive in local mode; ask for a hair less and apply ">=" here.
        server_floor = max(floor * (1 - 1e-6), MIN_SCORE)
        todo = [i for i, v in enumerate(vectors) if v.nnz]
        results: list[list[Hit]] = [[] for _ in vectors]
        if not todo:
            return results
        requests = [
            models.QueryRequest(
                query=to_qdrant_sparse(vectors[i]), using=self.config.sparse_name, limit=top_k,
                filter=native_filter, score_threshold=server_floor, with_payload=True,
            )
            for i in todo
        ]
        responses = self._search_retry.call(self._query_batch, requests, what=f"search on {self.describe()}")
        for i, response in zip(todo, responses):
            results[i] = [to_hit(p) for p in response.points if p.score > 0 and p.score >= floor]
        return results

    def _query_batch(self, requests: list[models.QueryRequest]) -> list[models.QueryResponse]:
        with mapped_errors(self.describe(), f"search of {len(requests)} queries"):
            return self.client.query_batch_points(collection_name=self.name, requests=requests)

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
    ) -> list[list[Hit]]:
        """Sparse + dense lists fused inside Qdrant (RRF, DBSF) or here (linear); see `qdrant.hybrid`."""
        from splade_connectors.qdrant.hybrid import fusion_query, prefetches

        self._require_open()
        limit = default_candidates(top_k, candidates)
        results: list[list[Hit]] = []
        for query in queries:
            if query.text is not None and query.dense is None and query.sparse is None:
                raise ConfigError(f"{self.describe()} has no lexical index: hybrid search needs a dense vector")
            sources = prefetches(self, query.sparse, query.dense, limit=limit, filter=filter)
            if not sources:
                results.append([])
                continue
            if weights is not None and len(weights) != len(sources):
                raise ConfigError(f"{len(weights)} fusion weights for {len(sources)} lists")
            if fusion == "linear":
                lists = [self._prefetch_hits(source) for source in sources]
                results.append(fuse(lists, "linear", weights=weights, top_k=top_k))
                continue
            with mapped_errors(self.describe(), "hybrid search"):
                response = self.client.query_points(
                    collection_name=self.name, prefetch=sources, query=fusion_query(fusion, rrf_k, weights),
                    limit=top_k, with_payload=True,
                )
            results.append([to_hit(point) for point in response.points])
        return results

    def _prefetch_hits(self, source: models.Prefetch) -> list[Hit]:
        with mapped_errors(self.describe(), "search"):
            response = self.client.query_points(
                collection_name=self.name, query=source.query, using=source.using, limit=source.limit,
                query_filter=source.filter, score_threshold=source.score_threshold, with_payload=True,
            )
        return [to_hit(p) for p in response.points]

    def fetch_vectors(self, doc_ids: Sequence[str]) -> dict[str, SparseVector]:
        """Stored sparse vectors by document id; ids not stored are left out."""
        self._require_open()
        by_point = {point_id(d): d for d in doc_ids}
        ids = list(by_point)
        found: dict[str, SparseVector] = {}
        for start in range(0, len(ids), _RETRIEVE_CHUNK):
            with mapped_errors(self.describe(), "retrieve"):
                records = self.client.retrieve(
                    collection_name=self.name, ids=ids[start : start + _RETRIEVE_CHUNK],
                    with_vectors=[self.config.sparse_name], with_payload=False,
                )
            for record in records:
                vector = (record.vector or {}).get(self.config.sparse_name) if isinstance(record.vector, dict) else None
                doc_id = by_point.get(str(uuid.UUID(str(record.id))))
                if doc_id is not None and isinstance(vector, models.SparseVector):
                    found[doc_id] = from_qdrant_sparse(vector)
        return {d: found[d] for d in doc_ids if d in found}

    def fetch_payloads(self, doc_ids: Sequence[str], fields: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The named payload fields by document id; ids not stored are left out."""
        self._require_open()
        wanted = list(dict.fromkeys(["doc_id", *fields]))
        ids = [point_id(d) for d in dict.fromkeys(doc_ids)]
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), _RETRIEVE_CHUNK):
            with mapped_errors(self.describe(), "retrieve"):
                records = self.client.retrieve(
                    collection_name=self.name, ids=ids[start : start + _RETRIEVE_CHUNK], with_payload=wanted, with_vectors=False,
                )
            for record in records:
                payload = dict(record.payload or {})
                doc_id = payload.get("doc_id")
                if doc_id is not None:
                    found[str(doc_id)] = {f: payload[f] for f in fields if f in payload}
        return found

    def iter_doc_ids(self, batch_size: int = 1000) -> Iterator[list[str]]:
        """Every stored document id, scrolled in batches."""
        self._require_open()
        offset: Any = None
        while True:
            with mapped_errors(self.describe(), "scroll"):
                records, offset = self.client.scroll(
                    collection_name=self.name, limit=batch_size, offset=offset, with_payload=["doc_id"], with_vectors=False,
                )
            ids = [str(r.payload["doc_id"]) for r in records if r.payload and "doc_id" in r.payload]
            if ids:
                yield ids
            if offset is None:
                return

    def storage_bytes(self) -> int | None:
        """Size of the collection's folder for an embedded store on disk; None otherwise (not exposed by the API)."""
        self._require_open()
        if self.config.path is None:
            return None
        folder = Path(self.config.path) / "collection" / self.name
        return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.exists() else None

    # ---- internals ------------------------------------------------------------------------------------
    def _point(self, item: EncodedDocument) -> models.PointStruct:
        vector: dict[str, Any] = {self.config.sparse_name: to_qdrant_sparse(item.sparse)}
        doc_id = item.document.id
        if item.dense is not None:
            if self.config.dense_name is None:
                raise RejectedDocumentsError(
                    {doc_id: "has a dense vector but the collection has no dense vector configured"},
                    total=1, others_written=False, store=self.describe(),
                )
            if len(item.dense) != self.config.dense_size:
                raise RejectedDocumentsError(
                    {doc_id: f"dense vector has {len(item.dense)} dims, the collection expects {self.config.dense_size}"},
                    total=1, others_written=False, store=self.describe(),
                )
            vector[self.config.dense_name] = list(item.dense)
        return models.PointStruct(id=point_id(doc_id), vector=vector, payload=item.document.payload())


def payload_summary(payload: Mapping[str, Any], width: int = 80) -> str:
    """A one-line title or text excerpt of a hit's payload (for tables)."""
    text = str(payload.get("title") or payload.get("text") or "")
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
