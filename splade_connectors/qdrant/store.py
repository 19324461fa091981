"""`QdrantStore`: the `SparseStore` for Qdrant, on every engine (server, embedded engine, local mode).

The config's location picks the engine (`QdrantConfig.backend`); the store speaks only the small
`qdrant.engine.Engine` interface, so everything here behaves the same on all of them.

Point ids are `point_id(doc_id)` (UUID5), so re-ingesting overwrites instead of duplicating; the
payload is `Document.payload()` (doc_id, text, title, metadata). Searches use Qdrant's sparse
dot product (exact, no approximation) on the named sparse vector, or two-phase queries (heaviest terms
find candidates, the full query scores them, in one Query API request: `qdrant.queries`), whose
returned scores are exact too.

Passage collections (`splade_connectors.passages`) hold one point per window of each document; their searches
return each document once, by its best passage: grouped in the engine (`Engine.query_groups`: the Query API's
groups search on a server and in local mode, a deepened ranking on the embedded engine).

Local mode can return documents that share no term with the query (score 0); this store drops
hits with score <= 0 on every engine, so results are the same.

The encoding record (`splade_connectors.stored_encoding`) is the collection metadata key
`splade_connectors_encoding` on a server and in local mode, and a file in the embedded engine's
collection folder (the engine has no collection metadata); never a point, so counts stay exact.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

from splade_connectors.errors import ConfigError, RejectedDocumentsError, StoreError
from splade_connectors.fusion import fuse
from splade_connectors.passages import (
    PASSAGE_COUNT_FIELD,
    PASSAGE_INDEX_FIELD,
    all_point_ids,
    first_per_document,
    is_passage_collection,
    passage_hit,
    refuse,
    stale_point_ids,
    store_points,
    stored_count,
)
from splade_connectors.qdrant.config import QdrantConfig
from splade_connectors.qdrant.engine import Engine, NearestQuery, PointData, Query, ScoredPoint, SerialEngine
from splade_connectors.qdrant.filters import build_filter
from splade_connectors.qdrant.hybrid import candidate_lists, fused_query
from splade_connectors.qdrant.queries import MIN_SCORE, sparse_query
from splade_connectors.records import DOC_ID_FIELD, EncodedDocument, Hit, point_id
from splade_connectors.retry import RetryPolicy
from splade_connectors.store import (
    CONFIGURED,
    DEFAULT_RRF_K,
    Configured,
    Filter,
    Fusion,
    HybridQuery,
    StoreBase,
    hybrid_depth,
    require_batch_size,
    require_top_k,
)
from splade_connectors.two_phase import TwoPhase, coerce_two_phase
from trainer.sparse import SparseVector

logger = logging.getLogger(__name__)

ENCODING_KEY = "splade_connectors_encoding"  # collection metadata key of the encoding record
_RETRIEVE_CHUNK = 256
_QUERY_CHUNK = 256  # queries per engine round trip


@dataclass(frozen=True)
class _Plan:
    """One search, planned: the engine queries to run, and how their ranked points become the hits to return.

    The blocking and the async searches run the same plans (`_execute`, `_aexecute`).
    """

    queries: Sequence[Query]
    finish: Callable[[list[list[ScoredPoint]]], list[list[Hit]]]
    grouped: bool = False  # passage collection: best point per document (`Engine.query_groups`)


# The points that stand for their document on a passage collection (one per document): passage 0.
_FIRST_PASSAGE = models.Filter(must=[models.FieldCondition(key=PASSAGE_INDEX_FIELD, match=models.MatchValue(value=0))])


def _nearest(queries: Sequence[Query]) -> list[NearestQuery]:
    """The queries of a grouped plan (always single ranked lists)."""
    return [q for q in queries if isinstance(q, NearestQuery)]


def _chunks(queries: Sequence[Query]) -> list[Sequence[Query]]:
    return [queries[start : start + _QUERY_CHUNK] for start in range(0, len(queries), _QUERY_CHUNK)]


def to_hit(point: ScoredPoint) -> Hit:
    """A hit with the engine's float32 score as its exact value: REST prints the shortest decimal of a float32
    (8.669551), gRPC and the embedded engine give the float32 itself (8.669550895690918); both become the latter."""
    payload = dict(point.payload)
    return Hit(id=str(payload.get("doc_id", point.id)), score=float(np.float32(point.score)), payload=payload)


def make_engine(config: QdrantConfig, client: QdrantClient | None = None) -> Engine:
    """The engine for a config (a given qdrant-client always means the qdrant-client engine)."""
    if client is not None or config.backend in ("server", "local"):
        from splade_connectors.qdrant.client_engine import ClientEngine

        engine = ClientEngine(config, client)
        return SerialEngine(engine) if engine.local else engine
    try:
        import qdrant_edge  # noqa: F401 - imported only to check that qdrant-edge-py is installed
    except ImportError as exc:
        raise ConfigError(
            "the embedded Qdrant engine needs the 'qdrant-edge-py' package (pip install 'splade-connectors[qdrant]'), "
            "or use a server (url) or local_mode=True"
        ) from exc
    from splade_connectors.qdrant.edge_engine import EdgeEngine

    return SerialEngine(EdgeEngine(config))


class QdrantStore(StoreBase[QdrantConfig]):
    """A SPLADE collection in Qdrant: created on `open()` when missing, refused when configured differently."""

    kind = "qdrant"

    def __init__(
        self,
        config: QdrantConfig | None = None,
        *,
        client: QdrantClient | None = None,
        search_retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(config or QdrantConfig())
        self._given_client = client
        self._engine: Engine | None = None
        self._search_retry = search_retry or RetryPolicy(attempts=3, initial_wait=0.2, max_wait=5.0)

    # ---- lifecycle --------------------------------------------------------------------------------------
    @property
    def backend(self) -> str:
        """`server`, `edge` (the embedded engine) or `local` (qdrant-client local mode)."""
        if self._given_client is not None:
            from splade_connectors.qdrant.client_engine import _is_local

            return "local" if _is_local(self._given_client) else "server"
        return self.config.backend

    @property
    def engine(self) -> Engine:
        self._require_open()
        assert self._engine is not None
        return self._engine

    @property
    def client(self) -> QdrantClient:
        """The qdrant-client of a server or local-mode store (the embedded engine has none)."""
        from splade_connectors.qdrant.client_engine import ClientEngine

        engine = getattr(self.engine, "inner", self.engine)
        if not isinstance(engine, ClientEngine):
            raise StoreError(f"{self.describe()} runs the embedded engine: it has no qdrant-client (use the store's methods)")
        return engine.client

    def _connect(self, *, create: bool) -> bool:
        engine = make_engine(self.config, self._given_client)
        created = engine.open(create=create)
        self._engine = engine
        return created

    def _disconnect(self) -> None:
        """Close the engine (releases connections, or the embedded folder's lock)."""
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.close()

    # ---- aliases ----------------------------------------------------------------------------------------
    @property
    def supports_aliases(self) -> bool:
        """Whether this engine has collection aliases (a server and local mode do; the embedded engine does not)."""
        return self.backend != "edge"

    def _alias_engine(self) -> Any:
        from splade_connectors.qdrant.client_engine import ClientEngine

        engine = self.engine
        if not isinstance(engine, ClientEngine):
            raise ConfigError(f"{self.describe()}: the embedded engine (qdrant-edge-py) has no collection aliases; use a Qdrant server")
        return engine

    def aliases(self) -> dict[str, str]:
        """Every collection alias -> the collection it names (server or local mode; the embedded engine has none)."""
        return dict(self._alias_engine().aliases())

    def resolve(self, name: str | None = None) -> str:
        """The collection behind `name` (default: this store's): the aliased collection, or `name` itself."""
        name = name or self.name
        return self.aliases().get(name, name)

    def update_aliases(self, changes: Mapping[str, str | None]) -> None:
        """Point each alias at a collection (None deletes the alias), atomically in one request."""
        self._alias_engine().update_aliases(changes)

    # ---- writes -----------------------------------------------------------------------------------------
    def upsert(self, batch: Sequence[EncodedDocument]) -> None:
        """Write a batch and wait until it is applied (searchable when this returns).

        `RejectedDocumentsError` names the documents the store cannot take (a dense vector that does not
        fit, a document too large for one request to the server); the ingestion sets them aside and
        writes the rest of the batch again (`ingest.isolation`).
        """
        engine = self.engine
        if not batch:
            return
        failures = {item.document.id: reason for item in batch if (reason := self._dense_problem(item))}
        if failures:
            raise RejectedDocumentsError(failures, total=len(batch), others_written=False, store=self.describe())
        passages = [item.document.id for item in batch if item.passages is not None]
        stored = self._passage_counts(passages) if passages else {}
        planned = store_points(batch)
        points = [PointData(id=p.id, sparse=p.sparse, payload=p.payload, dense=p.dense) for p in planned]
        try:
            engine.upsert(points)
        except RejectedDocumentsError as exc:  # the engine names points (too large for a request): name their documents
            doc_ids = {point.id: point.doc_id for point in planned}
            failures = {doc_ids.get(key, key): reason for key, reason in exc.failures.items()}
            raise RejectedDocumentsError(failures, total=len(batch), others_written=exc.others_written, store=self.describe()) from exc
        stale = stale_point_ids(stored, batch)
        if stale:  # a document re-ingested with fewer windows: its passages past the new count
            engine.delete(stale)

    def _passage_counts(self, doc_ids: Sequence[str]) -> dict[str, int]:
        """How many passages each of these documents has stored (documents not stored are left out)."""
        found = self.fetch_payloads(doc_ids, [PASSAGE_COUNT_FIELD])
        return {doc_id: stored_count(payload) for doc_id, payload in found.items()}

    def _passage_collection(self) -> bool:
        """Whether the collection's encoding record says it holds passages (`splade_connectors.passages`)."""
        return is_passage_collection(self.recorded_encoding())

    def delete(self, doc_ids: Sequence[str]) -> None:
        """Delete these documents (every passage of each, on a passage collection)."""
        engine = self.engine
        if not doc_ids:
            return
        if self._passage_collection():
            counts = self._passage_counts(doc_ids)
            engine.delete([pid for doc_id, count in counts.items() for pid in all_point_ids(doc_id, count)])
        else:
            engine.delete([point_id(d) for d in doc_ids])

    def begin_ingest(self) -> None:
        """Nothing to relax: upserts are applied when acknowledged and Qdrant indexes as it goes."""
        self._require_open()

    def finish_ingest(self) -> None:
        """Make everything durable and fully indexed (the embedded engine flushes and optimizes); logs the count."""
        self.engine.finish_ingest()
        logger.info("%s holds %d documents", self.describe(), self.count())

    def drop(self) -> None:
        self.engine.drop()

    def _read_encoding(self) -> dict[str, Any] | None:
        value = self.engine.read_metadata(ENCODING_KEY)
        return dict(value) if isinstance(value, dict) else None

    def _write_encoding(self, record: dict[str, Any]) -> None:
        self.engine.write_metadata(ENCODING_KEY, record)

    # ---- reads ------------------------------------------------------------------------------------------
    def count(self) -> int:
        """Documents stored: points, or on a passage collection the first passages (one per document)."""
        engine = self.engine
        return engine.count(_FIRST_PASSAGE if self._passage_collection() else None)

    def search_batch(
        self,
        vectors: Sequence[SparseVector],
        *,
        top_k: int = 10,
        filter: Filter | None = None,
        score_threshold: float | None = None,
        two_phase: TwoPhase | str | bool | None | Configured = CONFIGURED,
    ) -> list[list[Hit]]:
        """Top-k by sparse dot product for each query, in one round trip per 256 queries.

        Hits with score <= 0 are dropped; `score_threshold` keeps hits with score >= it (inclusive).
        `two_phase`: a `TwoPhase` (or spec such as `"ratio=0.4"`) for two-phase queries, `None` or `False`
        for exact ones; default: the config's. Returned scores are exact dot products either way.
        """
        return self._execute(self._search_plan(vectors, top_k=top_k, filter=filter, score_threshold=score_threshold, two_phase=two_phase))

    async def asearch_batch(
        self,
        vectors: Sequence[SparseVector],
        *,
        top_k: int = 10,
        filter: Filter | None = None,
        score_threshold: float | None = None,
        two_phase: TwoPhase | str | bool | None | Configured = CONFIGURED,
    ) -> list[list[Hit]]:
        """`search_batch` for an event loop: the server's async client, or a worker thread in process."""
        return await self._aexecute(
            self._search_plan(vectors, top_k=top_k, filter=filter, score_threshold=score_threshold, two_phase=two_phase)
        )

    def _search_plan(
        self, vectors: Sequence[SparseVector], *, top_k: int, filter: Filter | None, score_threshold: float | None,
        two_phase: TwoPhase | str | bool | None | Configured,
    ) -> _Plan:
        self._require_open()
        require_top_k(top_k)
        phased = self._two_phase(two_phase)
        native_filter = self._filter(filter)
        floor = max(score_threshold, MIN_SCORE) if score_threshold is not None else MIN_SCORE
        # local mode's threshold is exclusive: ask for a hair less and apply ">=" here, on every engine
        engine_floor = max(floor * (1 - 1e-6), MIN_SCORE)
        todo = [i for i, v in enumerate(vectors) if v.nnz]
        queries: list[Query] = [
            sparse_query(self.config.sparse_name, vectors[i], limit=top_k, filter=native_filter, score_threshold=engine_floor, two_phase=phased)
            for i in todo
        ]
        grouped = self._passage_collection()

        def finish(ranked: list[list[ScoredPoint]]) -> list[list[Hit]]:
            results: list[list[Hit]] = [[] for _ in vectors]
            for i, points in zip(todo, ranked):
                hits = [hit for hit in map(to_hit, points) if hit.score > 0 and hit.score >= floor]
                results[i] = [passage_hit(hit) for hit in first_per_document(hits, top_k)] if grouped else hits
            return results

        return _Plan(queries, finish, grouped=grouped)

    def dense_search_batch(self, vectors: Sequence[Sequence[float]], *, top_k: int = 10, filter: Filter | None = None) -> list[list[Hit]]:
        """Top-k by the collection's dense vector (for comparing hybrid results with their dense list)."""
        self._require_open()
        require_top_k(top_k)
        config = self.config
        if config.dense_name is None:
            raise ConfigError(f"{self.describe()} has no dense vector configured")
        if self._passage_collection():
            raise refuse(self.describe(), "dense search")
        native_filter = self._filter(filter)
        queries: list[Query] = []
        for vector in vectors:
            queries.extend(candidate_lists(config, None, vector, limit=top_k, filter=native_filter))
        return self._execute(_Plan(queries, lambda ranked: [[to_hit(p) for p in points] for points in ranked]))

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
        two_phase: TwoPhase | str | bool | None | Configured = CONFIGURED,
    ) -> list[list[Hit]]:
        """Sparse + dense lists fused inside Qdrant (RRF, DBSF) or here (linear); see `qdrant.hybrid`.

        The sparse list is exact or two-phase (`two_phase`, as in `search_batch`)."""
        return self._execute(
            self._hybrid_plan(
                queries, top_k=top_k, fusion=fusion, rrf_k=rrf_k, weights=weights, candidates=candidates, filter=filter,
                two_phase=two_phase,
            )
        )

    async def ahybrid_search_batch(
        self,
        queries: Sequence[HybridQuery],
        *,
        top_k: int = 10,
        fusion: Fusion = "rrf",
        rrf_k: int = DEFAULT_RRF_K,
        weights: Sequence[float] | None = None,
        candidates: int | None = None,
        filter: Filter | None = None,
        two_phase: TwoPhase | str | bool | None | Configured = CONFIGURED,
    ) -> list[list[Hit]]:
        """`hybrid_search_batch` for an event loop: the server's async client, or a worker thread in process."""
        return await self._aexecute(
            self._hybrid_plan(
                queries, top_k=top_k, fusion=fusion, rrf_k=rrf_k, weights=weights, candidates=candidates, filter=filter,
                two_phase=two_phase,
            )
        )

    def _hybrid_plan(
        self, queries: Sequence[HybridQuery], *, top_k: int, fusion: Fusion, rrf_k: int, weights: Sequence[float] | None,
        candidates: int | None, filter: Filter | None, two_phase: TwoPhase | str | bool | None | Configured,
    ) -> _Plan:
        self._require_open()
        if self._passage_collection():
            raise refuse(self.describe(), "hybrid search")
        limit = hybrid_depth(top_k, candidates=candidates, rrf_k=rrf_k)
        native_filter = self._filter(filter)
        phased = self._two_phase(two_phase)
        lists_per_query: list[list[NearestQuery]] = []
        for query in queries:
            if query.text is not None and query.dense is None and query.sparse is None:
                raise ConfigError(f"{self.describe()} has no lexical index: hybrid search needs a dense vector")
            sources = candidate_lists(self.config, query.sparse, query.dense, limit=limit, filter=native_filter, two_phase=phased)
            if weights is not None and sources and len(weights) != len(sources):
                raise ConfigError(f"{len(weights)} fusion weights for {len(sources)} lists")
            lists_per_query.append(sources)
        if fusion == "linear":

            def fuse_here(ranked_lists: list[list[ScoredPoint]]) -> list[list[Hit]]:
                ranked = iter(ranked_lists)
                out = []
                for sources in lists_per_query:
                    lists = [[to_hit(p) for p in next(ranked) if p.score > 0 or s.dense is not None] for s in sources]
                    out.append(fuse(lists, "linear", weights=weights, top_k=top_k) if lists else [])
                return out

            return _Plan([source for sources in lists_per_query for source in sources], fuse_here)

        def fused_hits(ranked_lists: list[list[ScoredPoint]]) -> list[list[Hit]]:
            ranked = iter(ranked_lists)
            return [[to_hit(p) for p in next(ranked)] if sources else [] for sources in lists_per_query]

        fused: list[Query] = [fused_query(s, fusion, top_k=top_k, rrf_k=rrf_k, weights=weights) for s in lists_per_query if s]
        return _Plan(fused, fused_hits)

    def _execute(self, plan: _Plan) -> list[list[Hit]]:
        """Run a plan's queries on the engine, `_QUERY_CHUNK` per round trip (transient errors retried)."""
        engine = self.engine
        ranked: list[list[ScoredPoint]] = []
        for chunk in _chunks(plan.queries):
            if plan.grouped:
                ranked.extend(self._search_retry.call(engine.query_groups, _nearest(chunk), DOC_ID_FIELD, what=f"search on {self.describe()}"))
            else:
                ranked.extend(self._search_retry.call(engine.query_batch, chunk, what=f"search on {self.describe()}"))
        return plan.finish(ranked)

    async def _aexecute(self, plan: _Plan) -> list[list[Hit]]:
        """`_execute` without blocking the loop: a server through its async client, the in-process engines
        (embedded, local mode) in a worker thread (their calls are serialised: `SerialEngine`)."""
        engine = getattr(self.engine, "inner", self.engine)
        from splade_connectors.qdrant.client_engine import ClientEngine

        if not isinstance(engine, ClientEngine) or engine.local:
            return await asyncio.to_thread(self._execute, plan)
        ranked: list[list[ScoredPoint]] = []
        for chunk in _chunks(plan.queries):
            if plan.grouped:
                ranked.extend(
                    await self._search_retry.acall(engine.aquery_groups, _nearest(chunk), DOC_ID_FIELD, what=f"search on {self.describe()}")
                )
            else:
                ranked.extend(await self._search_retry.acall(engine.aquery_batch, chunk, what=f"search on {self.describe()}"))
        return plan.finish(ranked)

    async def _aclose_async_clients(self) -> None:
        from splade_connectors.qdrant.client_engine import ClientEngine

        engine = getattr(self._engine, "inner", self._engine)
        if isinstance(engine, ClientEngine):
            await engine.aclose_async()

    def _two_phase(self, two_phase: TwoPhase | str | bool | None | Configured) -> TwoPhase | None:
        return self.config.two_phase if two_phase is CONFIGURED else coerce_two_phase(two_phase)

    def _filter(self, filter: Filter | None) -> Any:
        try:
            return build_filter(filter)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{self.describe()}: invalid filter: {exc}") from None

    def fetch_vectors(self, doc_ids: Sequence[str]) -> dict[str, SparseVector]:
        """Stored sparse vectors by document id; ids not stored are left out."""
        engine = self.engine
        by_point = {point_id(d): d for d in doc_ids}
        ids = list(by_point)
        found: dict[str, SparseVector] = {}
        for start in range(0, len(ids), _RETRIEVE_CHUNK):
            for record in engine.retrieve(ids[start : start + _RETRIEVE_CHUNK], payload=False, sparse=True):
                doc_id = by_point.get(record.id)
                if doc_id is not None and record.sparse is not None:
                    found[doc_id] = record.sparse
        return {d: found[d] for d in doc_ids if d in found}

    def fetch_payloads(self, doc_ids: Sequence[str], fields: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The named payload fields by document id; ids not stored are left out."""
        engine = self.engine
        wanted = list(dict.fromkeys(["doc_id", *fields]))
        ids = [point_id(d) for d in dict.fromkeys(doc_ids)]
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), _RETRIEVE_CHUNK):
            for record in engine.retrieve(ids[start : start + _RETRIEVE_CHUNK], payload=wanted, sparse=False):
                doc_id = record.payload.get("doc_id")
                if doc_id is not None:
                    found[str(doc_id)] = {f: record.payload[f] for f in fields if f in record.payload}
        return found

    def iter_doc_ids(self, batch_size: int = 1000) -> Iterator[list[str]]:
        """Every stored document id, scrolled in batches."""
        engine = self.engine
        require_batch_size(batch_size)
        offset: Any = None
        first_passages = _FIRST_PASSAGE if self._passage_collection() else None
        while True:
            records, offset = engine.scroll(batch_size, offset, payload=["doc_id"], filter=first_passages)
            ids = [str(r.payload["doc_id"]) for r in records if "doc_id" in r.payload]
            if ids:
                yield ids
            if offset is None:
                return

    def storage_bytes(self) -> int | None:
        """Embedded engine: the shard folder; local mode on disk: its folder; server: stored vectors + payloads
        as its telemetry reports them (None without telemetry access); in-memory local mode: None."""
        return self.engine.storage_bytes()

    # ---- internals ------------------------------------------------------------------------------------
    def _dense_problem(self, item: EncodedDocument) -> str | None:
        """Why the store cannot take this document's dense vector (None when it can, or has none)."""
        if item.dense is None:
            return None
        if self.config.dense_name is None:
            return "has a dense vector but the collection has no dense vector configured"
        if len(item.dense) != self.config.dense_size:
            return f"dense vector has {len(item.dense)} dims, the collection expects {self.config.dense_size}"
        return None

