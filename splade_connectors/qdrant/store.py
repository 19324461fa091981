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
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from qdrant_client import QdrantClient, models
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential, wait_random

from splade_connectors.qdrant.collection import ensure_collection
from splade_connectors.qdrant.config import QdrantConfig, connect
from splade_connectors.qdrant.errors import is_transient
from splade_connectors.explain import explain_ids, with_terms
from splade_connectors.qdrant.filters import build_filter
from splade_connectors.records import EncodedDocument, Hit, TermContribution, point_id
from splade_connectors.store import Filter, StoreError
from trainer.encoder import SpladeEncoder
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


class QdrantStore:
    """A SPLADE collection in Qdrant; creates it on first use, refuses one configured differently."""

    def __init__(self, config: QdrantConfig | None = None, *, client: QdrantClient | None = None, search_attempts: int = 3) -> None:
        self.config = config or QdrantConfig()
        self._owns_client = client is None
        self.client = client if client is not None else connect(self.config)
        self._search_retry = Retrying(
            retry=retry_if_exception(is_transient),
            stop=stop_after_attempt(max(1, search_attempts)),
            wait=wait_exponential(multiplier=0.2, max=5.0) + wait_random(0, 0.2),
            reraise=True,
        )
        try:
            self.created = ensure_collection(self.client, self.config)
        except BaseException:
            self.close()
            raise

    # ---- SparseStore ----------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.config.collection

    def upsert(self, batch: Sequence[EncodedDocument]) -> None:
        """Write a batch and wait until it is applied (searchable when this returns)."""
        if not batch:
            return
        points = [self._point(item) for item in batch]
        self.client.upsert(collection_name=self.name, points=points, wait=True)

    def count(self) -> int:
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
        if top_k < 1:
            raise ValueError("top_k must be >= 1")
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
        responses = self._search_retry(self.client.query_batch_points, collection_name=self.name, requests=requests)
        for i, response in zip(todo, responses):
            results[i] = [to_hit(p) for p in response.points if p.score > 0 and p.score >= floor]
        return results

    def fetch_vectors(self, doc_ids: Sequence[str]) -> dict[str, SparseVector]:
        """Stored sparse vectors by document id; ids not stored are left out."""
        by_point = {point_id(d): d for d in doc_ids}
        ids = list(by_point)
        found: dict[str, SparseVector] = {}
        for start in range(0, len(ids), _RETRIEVE_CHUNK):
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

    def is_transient(self, error: BaseException) -> bool:
        return is_transient(error)

    def begin_ingest(self) -> None:
        """Nothing to relax: upserts wait until applied and Qdrant indexes in the background."""

    def finish_ingest(self) -> None:
        """Nothing to restore (see `begin_ingest`); logs the final count."""
        logger.info("%s holds %d documents", self.config.describe(), self.count())

    def drop(self) -> None:
        self.client.delete_collection(collection_name=self.name)

    # ---- beyond the protocol ----------------------------------------------------------------------------
    def search(
        self,
        query: SparseVector | str,
        *,
        encoder: SpladeEncoder | None = None,
        top_k: int = 10,
        filter: Filter | None = None,
        score_threshold: float | None = None,
        explain: bool = False,
        id_to_token: Sequence[str] | None = None,
        explain_limit: int | None = 10,
    ) -> list[Hit]:
        """Search with one query vector, or a query text (needs `encoder`); `explain` fills `Hit.terms`."""
        if isinstance(query, str):
            if encoder is None:
                raise ValueError("searching by text needs an encoder")
            vector = encoder.encode_queries([query])[0]
        else:
            vector = query
        hits = self.search_batch([vector], top_k=top_k, filter=filter, score_threshold=score_threshold)[0]
        if explain:
            vocab = id_to_token if id_to_token is not None else (encoder.model.id_to_token() if encoder else None)
            if vocab is None:
                raise ValueError("explain needs id_to_token or an encoder")
            hits = with_terms(self, vector, hits, vocab, limit=explain_limit)
        return hits

    def explain(
        self, query: SparseVector, hit_ids: Sequence[str], id_to_token: Sequence[str], limit: int | None = 10
    ) -> dict[str, list[TermContribution]]:
        """Decoded shared terms with query and document weights, for each stored hit id."""
        return explain_ids(self, query, hit_ids, id_to_token, limit=limit)

    def close(self) -> None:
        """Close the client if this store opened it (releases a local path's lock)."""
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> QdrantStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # ---- internals ------------------------------------------------------------------------------------
    def _point(self, item: EncodedDocument) -> models.PointStruct:
        vector: dict[str, Any] = {self.config.sparse_name: to_qdrant_sparse(item.sparse)}
        if item.dense is not None:
            if self.config.dense_name is None:
                raise StoreError(f"document {item.document.id!r} has a dense vector but the collection has no dense vector configured")
            if len(item.dense) != self.config.dense_size:
                raise StoreError(
                    f"document {item.document.id!r}: dense vector has {len(item.dense)} dims, collection expects {self.config.dense_size}"
                )
            vector[self.config.dense_name] = list(item.dense)
        return models.PointStruct(id=point_id(item.document.id), vector=vector, payload=item.document.payload())


def payload_summary(payload: Mapping[str, Any], width: int = 80) -> str:
    """A one-line title or text excerpt of a hit's payload (for tables)."""
    text = str(payload.get("title") or payload.get("text") or "")
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
