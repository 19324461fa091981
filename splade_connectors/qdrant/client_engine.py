"""The qdrant-client engine: a Qdrant server (REST or gRPC), or qdrant-client's local mode.

Both speak qdrant-client's API, so one class serves them; the differences that remain are local
mode's: payload indexes are no-ops there (so none are created), it reports no storage size in
memory, and it scans every point per query. Writes wait until the server has applied them, so a
batch is searchable (and a checkpoint after it is safe) when `upsert` returns. On a server a batch
is sent in requests sized by bytes under its request limit (`qdrant.sizing`); with
`upload_parallel > 1` it is split into at least that many requests sent concurrently.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from qdrant_client import AsyncQdrantClient, QdrantClient, models

from splade_connectors.aio import LoopClient
from splade_connectors.errors import NotFoundError, RejectedDocumentsError, RequestTooLargeError, StoreError
from splade_connectors.qdrant.collection import CLUSTER_SETTINGS, check_layout, cluster_settings, missing_indexes, wanted_sparse
from splade_connectors.qdrant.config import QdrantConfig, connect, connect_async
from splade_connectors.qdrant.engine import (
    CollectionLayout,
    NearestQuery,
    PointData,
    Query,
    ScoredPoint,
    SparseSettings,
    StoredPoint,
    disk_bytes,
)
from splade_connectors.qdrant.errors import mapped_errors
from splade_connectors.qdrant.hybrid import fusion_query
from splade_connectors.qdrant.sizing import plan_requests, request_budget, request_bytes, too_large_reason
from trainer.sparse import SparseVector

logger = logging.getLogger(__name__)

_SCHEMA = {
    "keyword": models.PayloadSchemaType.KEYWORD, "integer": models.PayloadSchemaType.INTEGER,
    "float": models.PayloadSchemaType.FLOAT, "bool": models.PayloadSchemaType.BOOL, "text": models.PayloadSchemaType.TEXT,
    "datetime": models.PayloadSchemaType.DATETIME, "uuid": models.PayloadSchemaType.UUID,
}
_DATATYPE = {"float32": models.Datatype.FLOAT32, "float16": models.Datatype.FLOAT16, "uint8": models.Datatype.UINT8}


def to_qdrant_sparse(vector: SparseVector) -> models.SparseVector:
    indices, values = vector.to_lists()
    return models.SparseVector(indices=indices, values=values)


def from_qdrant_sparse(vector: models.SparseVector) -> SparseVector:
    return SparseVector.from_pairs(zip(vector.indices, vector.values))


def _point_id(value: Any) -> str:
    text = str(value)
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return text


def layout_of(info: models.CollectionInfo) -> CollectionLayout:
    """The engine-neutral layout of a collection as qdrant-client describes it."""
    params = info.config.params
    sparse = {
        name: SparseSettings(
            idf=p.modifier == models.Modifier.IDF,
            datatype=(p.index.datatype.value if p.index and p.index.datatype else "float32"),
            on_disk=bool(p.index and p.index.on_disk),
        )
        for name, p in (params.sparse_vectors or {}).items()
    }
    vectors = params.vectors
    if isinstance(vectors, models.VectorParams):
        vectors = {"": vectors}
    dense = {name: (v.size, v.distance.value) for name, v in (vectors or {}).items()}
    indexed = {path: str(getattr(schema.data_type, "value", schema.data_type)) for path, schema in (info.payload_schema or {}).items()}
    cluster = {
        name: int(value) for name in CLUSTER_SETTINGS
        if (value := getattr(params, name, None)) is not None
    }
    return CollectionLayout(sparse=sparse, dense=dense, indexed_fields=indexed, cluster=cluster)


class ClientEngine:
    """A collection on a Qdrant server or in qdrant-client local mode."""

    def __init__(self, config: QdrantConfig, client: QdrantClient | None = None) -> None:
        self.config = config
        self._client = client
        self._owns_client = client is None
        self._pool: ThreadPoolExecutor | None = None
        self.local = _is_local(client) if client is not None else config.url is None
        # async searches of a server: qdrant-client's AsyncQdrantClient, one per event loop (made on first use)
        self._async: LoopClient[AsyncQdrantClient] = LoopClient(lambda: connect_async(self.config), _close_async)

    def _errors(self, action: str) -> Any:
        return mapped_errors(self.config.describe(), action, self.config.secrets())

    @property
    def client(self) -> QdrantClient:
        if self._client is None:
            raise StoreError(f"{self.config.describe()} is not open")
        return self._client

    @property
    def name(self) -> str:
        return self.config.collection

    # ---- lifecycle --------------------------------------------------------------------------------------
    def open(self, *, create: bool) -> bool:
        with self._errors("open"):
            if self._client is None:
                self._client = connect(self.config)
            try:
                return self._ensure_collection(create)
            except BaseException:
                self.close()
                raise

    def _ensure_collection(self, create: bool) -> bool:
        config = self.config
        if self.client.collection_exists(self.name):
            layout = layout_of(self.client.get_collection(self.name))
            check_layout(layout, config)
            self._create_indexes(missing_indexes(layout, config))
            logger.debug("opened existing %s", config.describe())
            return False
        if not create:
            raise NotFoundError(f"{config.describe()} does not exist")
        sparse = wanted_sparse(config)
        dense = {}
        if config.dense_name is not None and config.dense_size is not None:
            dense = {config.dense_name: models.VectorParams(size=config.dense_size, distance=models.Distance(config.dense_distance))}
        self.client.create_collection(
            collection_name=self.name,
            vectors_config=dense,
            sparse_vectors_config={
                config.sparse_name: models.SparseVectorParams(
                    index=models.SparseIndexParams(on_disk=sparse.on_disk, datatype=_DATATYPE[sparse.datatype]),
                    modifier=models.Modifier.IDF if sparse.idf else None,
                )
            },
            **cluster_settings(config),  # type: ignore[arg-type]  # shard_number, replication_factor, write_consistency_factor
        )
        self._create_indexes(config.index_fields())
        logger.info("created %s", config.describe())
        return True

    def _create_indexes(self, fields: Mapping[str, str]) -> None:
        if self.local or not fields:
            return  # local mode keeps no payload index (filters scan the payload)
        for path, kind in fields.items():
            self.client.create_payload_index(self.name, field_name=path, field_schema=_SCHEMA[kind], wait=True)
            logger.debug("payload index %s (%s) on %s", path, kind, self.config.describe())

    def close(self) -> None:
        self._async.discard()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._owns_client and self._client is not None:
            try:
                self._client.close()
            finally:
                self._client = None

    def drop(self) -> None:
        with self._errors("drop"):
            self.client.delete_collection(collection_name=self.name)

    # ---- aliases ----------------------------------------------------------------------------------------
    def aliases(self) -> dict[str, str]:
        """Every alias of the server (or local store) -> the collection it names."""
        with self._errors("list aliases"):
            return {a.alias_name: a.collection_name for a in self.client.get_aliases().aliases}

    def update_aliases(self, changes: Mapping[str, str | None]) -> None:
        """Point each alias at its collection (None deletes it), all in one request: Qdrant applies it atomically."""
        current = self.aliases()
        operations: list[Any] = []
        for alias, target in changes.items():
            if alias in current:
                operations.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias)))
            if target is not None:
                operations.append(
                    models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=target, alias_name=alias))
                )
        if operations:
            with self._errors("alias update"):
                self.client.update_collection_aliases(change_aliases_operations=operations)

    # ---- writes -----------------------------------------------------------------------------------------
    def _struct(self, point: PointData) -> models.PointStruct:
        vector: dict[str, Any] = {self.config.sparse_name: to_qdrant_sparse(point.sparse)}
        if point.dense is not None and self.config.dense_name is not None:
            vector[self.config.dense_name] = list(point.dense)
        return models.PointStruct(id=point.id, vector=vector, payload=point.payload)

    def upsert(self, points: Sequence[PointData]) -> None:
        """Write `points`; on a server, in requests sized by bytes (`qdrant.sizing`), `upload_parallel` at a time.

        A point too large for any request, or one the server refuses as too large when sent alone, is
        named in a `RejectedDocumentsError` (by point id); a larger request the server refuses as too large
        is a `RejectedDocumentsError` naming none, so that the caller splits the batch. Nothing is
        written when a point is refused before sending; other requests of the batch may be written
        when the server refuses one (rewriting them is harmless: ids are deterministic).
        """
        if not points:
            return
        if self.local:  # local mode takes points of any size, in one call
            structs = [self._struct(p) for p in points]
            with self._errors(f"upsert of {len(structs)} points"):
                self.client.upsert(collection_name=self.name, points=structs, wait=True)
            return
        config = self.config
        budget = request_budget(config.max_request_mb)
        sizes = [request_bytes(p) for p in points]
        too_large = {p.id: too_large_reason(size, config.max_request_mb) for p, size in zip(points, sizes) if size > budget}
        if too_large:
            raise RejectedDocumentsError(too_large, total=len(points), others_written=False, store=config.describe())
        parts = config.upload_parallel if len(points) >= 2 * config.upload_parallel else 1
        ranges = plan_requests(sizes, budget=budget, parts=parts)
        if len(ranges) > 1:
            logger.debug("upsert of %d points (~%d bytes) in %d requests", len(points), sum(sizes), len(ranges))
        requests = [[self._struct(points[i]) for i in r] for r in ranges]
        refused = [(r, reason) for r, reason in zip(ranges, self._send(requests, parallel=parts > 1)) if reason is not None]
        if refused:  # a request alone names its point; a larger one names none: the caller splits the batch
            named = {points[r.start].id: reason for r, reason in refused if len(r) == 1}
            raise RejectedDocumentsError(named, total=len(points), others_written=False, store=config.describe())

    def _send(self, requests: Sequence[list[models.PointStruct]], *, parallel: bool) -> list[str | None]:
        """Send the requests (concurrently when `parallel`), wait for all; per request, why the server refused it as too large.

        Any other error is raised once every request has finished (none is left running behind it).
        """
        def send(points: list[models.PointStruct]) -> str | None:
            try:
                with self._errors(f"upsert of {len(points)} points"):
                    self.client.upsert(collection_name=self.name, points=points, wait=True)
            except RequestTooLargeError as exc:
                return str(exc)
            return None

        if not parallel or len(requests) == 1:
            return [send(request) for request in requests]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.config.upload_parallel, thread_name_prefix="qdrant-upload")
        futures = [self._pool.submit(send, request) for request in requests]
        wait(futures)
        return [future.result() for future in futures]

    def delete(self, ids: Sequence[str]) -> None:
        with self._errors(f"delete of {len(ids)} points"):
            self.client.delete(collection_name=self.name, points_selector=models.PointIdsList(points=list(ids)), wait=True)

    def finish_ingest(self) -> None:
        """Nothing to do: writes were applied when acknowledged; the server indexes in the background."""

    # ---- collection metadata (server 1.16+, local mode) ------------------------------------------------
    def read_metadata(self, key: str) -> Any:
        with self._errors("read of the collection metadata"):
            info = self.client.get_collection(self.name)
        return (info.config.metadata or {}).get(key)

    def write_metadata(self, key: str, value: Any) -> None:
        """Qdrant merges the given keys into the stored metadata: the value of `key` is replaced, others are kept."""
        with self._errors("update of the collection metadata"):
            self.client.update_collection(collection_name=self.name, metadata={key: value})

    # ---- reads ------------------------------------------------------------------------------------------
    def count(self, filter: models.Filter | None = None) -> int:
        with self._errors("count"):
            return int(self.client.count(collection_name=self.name, count_filter=filter, exact=True).count)

    def _nearest(self, query: NearestQuery) -> Any:
        if query.sparse is not None:
            return to_qdrant_sparse(query.sparse)
        return list(query.dense or [])

    def _prefetch(self, query: NearestQuery) -> models.Prefetch:
        return models.Prefetch(
            prefetch=self._candidates(query), query=self._nearest(query), using=query.using, limit=query.limit,
            filter=query.filter, score_threshold=query.score_threshold,
        )

    def _candidates(self, query: NearestQuery) -> list[models.Prefetch] | None:
        """Phase one of a two-phase query: the prefetch whose points the query rescores."""
        return [self._prefetch(query.candidates)] if query.candidates is not None else None

    def _request(self, query: Query) -> models.QueryRequest:
        if isinstance(query, NearestQuery):
            return models.QueryRequest(
                prefetch=self._candidates(query), query=self._nearest(query), using=query.using, limit=query.limit,
                filter=query.filter, score_threshold=query.score_threshold, with_payload=_payload(query.payload),
            )
        prefetch = [self._prefetch(s) for s in query.sources]
        fusion = (
            models.RrfQuery(rrf=models.Rrf(k=query.rrf_k, weights=list(query.weights) if query.weights is not None else None))
            if query.fusion == "rrf" else fusion_query("dbsf")
        )
        return models.QueryRequest(prefetch=prefetch, query=fusion, limit=query.limit, with_payload=_payload(query.payload))

    def query_batch(self, queries: Sequence[Query]) -> list[list[ScoredPoint]]:
        requests = [self._request(q) for q in queries]
        with self._errors(f"search of {len(requests)} queries"):
            responses = self.client.query_batch_points(collection_name=self.name, requests=requests)
        return _scored(responses)

    async def aquery_batch(self, queries: Sequence[Query]) -> list[list[ScoredPoint]]:
        """`query_batch` through the async client of a server (same requests, results and error mapping)."""
        requests = [self._request(q) for q in queries]
        with self._errors(f"search of {len(requests)} queries"):
            responses = await self._async.get().query_batch_points(collection_name=self.name, requests=requests)
        return _scored(responses)

    def _groups_arguments(self, query: NearestQuery, group_by: str) -> dict[str, Any]:
        return {
            "collection_name": self.name, "group_by": group_by, "group_size": 1, "limit": query.limit,
            "query": self._nearest(query), "using": query.using, "prefetch": self._candidates(query),
            "query_filter": query.filter, "score_threshold": query.score_threshold, "with_payload": _payload(query.payload),
        }

    def query_groups(self, queries: Sequence[NearestQuery], group_by: str) -> list[list[ScoredPoint]]:
        """Qdrant's groups search (`query_points_groups`, group_size 1): grouped in the engine, one request per query."""
        out = []
        with self._errors(f"grouped search of {len(queries)} queries"):
            for query in queries:
                result = self.client.query_points_groups(**self._groups_arguments(query, group_by))
                out.append(_best_of_groups(result))
        return out

    async def aquery_groups(self, queries: Sequence[NearestQuery], group_by: str) -> list[list[ScoredPoint]]:
        """`query_groups` through the async client of a server."""
        out = []
        with self._errors(f"grouped search of {len(queries)} queries"):
            for query in queries:
                result = await self._async.get().query_points_groups(**self._groups_arguments(query, group_by))
                out.append(_best_of_groups(result))
        return out

    async def aclose_async(self) -> None:
        """Close the async client of the running loop."""
        await self._async.aclose()

    def retrieve(self, ids: Sequence[str], *, payload: bool | Sequence[str], sparse: bool) -> list[StoredPoint]:
        with self._errors("retrieve"):
            records = self.client.retrieve(
                collection_name=self.name, ids=list(ids), with_payload=_payload(payload),
                with_vectors=[self.config.sparse_name] if sparse else False,
            )
        return [self._stored(r, sparse) for r in records]

    def _stored(self, record: models.Record, sparse: bool) -> StoredPoint:
        vector = None
        if sparse and isinstance(record.vector, dict):
            found = record.vector.get(self.config.sparse_name)
            vector = from_qdrant_sparse(found) if isinstance(found, models.SparseVector) else None
        return StoredPoint(id=_point_id(record.id), payload=dict(record.payload or {}), sparse=vector)

    def scroll(
        self, limit: int, offset: Any, *, payload: bool | Sequence[str], filter: models.Filter | None = None
    ) -> tuple[list[StoredPoint], Any]:
        with self._errors("scroll"):
            records, next_offset = self.client.scroll(
                collection_name=self.name, scroll_filter=filter, limit=limit, offset=offset, with_payload=_payload(payload),
                with_vectors=False,
            )
        return [self._stored(r, False) for r in records], next_offset

    def storage_bytes(self) -> int | None:
        """Local path: the collection's folder. Server: stored vectors + payloads as its telemetry reports them
        (`vectors_size_bytes + payloads_size_bytes` of the collection's shards; the sparse index and the WAL
        are not included); None when the telemetry API is not available to this key. In memory: None."""
        if self.local:
            if self.config.path is None:
                return None
            return disk_bytes(Path(self.config.path) / "collection" / self.name)
        return self._telemetry_bytes()

    def _telemetry_bytes(self) -> int | None:
        import httpx

        assert self.config.url is not None
        headers = {"api-key": self.config.api_key.get_secret_value()} if self.config.api_key else {}
        try:
            response = httpx.get(
                self.config.url.rstrip("/") + "/telemetry", params={"details_level": 3}, headers=headers, timeout=self.config.timeout,
            )
            response.raise_for_status()
            collections = response.json()["result"]["collections"]["collections"]
        except (httpx.HTTPError, KeyError, TypeError, ValueError) as exc:
            logger.debug("no storage size for %s: %s", self.config.describe(), type(exc).__name__)
            return None
        total = None
        concrete = self.aliases().get(self.name, self.name)  # telemetry names collections, never aliases
        for collection in collections:
            if collection.get("id") != concrete:
                continue
            for shard in collection.get("shards") or []:
                local = shard.get("local") or {}
                total = (total or 0) + int(local.get("vectors_size_bytes") or 0) + int(local.get("payloads_size_bytes") or 0)
        return total


def _scored(responses: Sequence[models.QueryResponse]) -> list[list[ScoredPoint]]:
    return [
        [ScoredPoint(id=_point_id(p.id), score=float(p.score), payload=dict(p.payload or {})) for p in response.points]
        for response in responses
    ]


def _best_of_groups(result: models.GroupsResult) -> list[ScoredPoint]:
    """The best (only) point of each group, in the groups' order (best group first)."""
    return [
        ScoredPoint(id=_point_id(group.hits[0].id), score=float(group.hits[0].score), payload=dict(group.hits[0].payload or {}))
        for group in result.groups if group.hits
    ]


async def _close_async(client: AsyncQdrantClient) -> None:
    await client.close()


def _is_local(client: QdrantClient) -> bool:
    from qdrant_client.local.qdrant_local import QdrantLocal

    return isinstance(getattr(client, "_client", None), QdrantLocal)


def _payload(selection: bool | Sequence[str]) -> bool | list[str]:
    return selection if isinstance(selection, bool) else list(selection)
