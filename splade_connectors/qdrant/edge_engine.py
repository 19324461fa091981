"""The embedded engine: the real Qdrant engine in-process (qdrant-edge), one shard per collection.

A collection is the shard folder `<path>/collections/<name>/` (`edge_config.json`, `wal/`,
`segments/`); without a path, a temporary folder that `close()` deletes. The shard's WAL is locked
while it is open, so a second store (in this or another process) on the same collection gets a
`StoreLockedError`. Updates go to the WAL before they are applied: everything `upsert` returned for
survives the process being killed (the WAL is replayed on the next open).

Differences from the server that the store hides: the engine does not validate input the way the
server's API layer does (the store only sends valid vectors, and checks dense sizes itself), it
runs optimizers and flushes only when asked (every `embedded_optimize_every` upserted points, so the in-RAM
appendable segment and the WAL stay bounded during a large ingestion, and in `finish_ingest`), and it has no API to
describe its configuration (it is read from `edge_config.json`), and none for collection metadata (kept
in `splade_metadata.json` beside it, written atomically).

Disk space: the engine writes through memory maps, so on a full file system it is killed by SIGBUS
(exit 135, no message), even when only opening a collection. So every open, upsert and optimize first
checks the folder's free space (`shutil.disk_usage`) against an estimate of what it writes plus
`embedded_free_reserve_mb`, and refuses with a `StorageFullError` (one line) instead; everything written
before stays (the WAL), and a checkpointed ingestion resumes once space is freed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from qdrant_client import models

from splade_connectors.errors import ConfigMismatchError, NotFoundError, StorageFullError, StoreError
from splade_connectors.qdrant.collection import check_layout, check_name, missing_indexes, wanted_sparse
from splade_connectors.qdrant.config import QdrantConfig
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
from splade_connectors.qdrant.filters import to_edge_filter
from splade_connectors.qdrant.sizing import payload_bytes
from trainer.sparse import SparseVector

logger = logging.getLogger(__name__)

CONFIG_FILE = "edge_config.json"
METADATA_FILE = "splade_metadata.json"  # the collection metadata the engine itself cannot keep
MB = 1024 * 1024
# Bytes one point takes on disk, estimated (WAL + appendable segment + sparse index, measured ~9 KB for
# 150 terms and 300 characters of payload): a margin over the real use, so a batch never overruns the check.
BYTES_PER_TERM = 64
BYTES_PER_POINT = 1024


def disk_bytes_estimate(point: PointData) -> int:
    """The estimated bytes a point adds to the shard folder (see `BYTES_PER_TERM`); not its request size."""
    dense = 8 * len(point.dense) if point.dense is not None else 0
    return BYTES_PER_POINT + BYTES_PER_TERM * point.sparse.nnz + 2 * payload_bytes(point) + 2 * dense


def existing_ancestor(path: Path) -> Path:
    """`path`, or its closest parent that exists (what `shutil.disk_usage` can measure before a folder is made)."""
    path = path.absolute()
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def collection_folder(root: Path, name: str) -> Path:
    return root / "collections" / name


def layout_from_file(path: Path) -> CollectionLayout:
    """The layout recorded in a shard's `edge_config.json`."""
    data = json.loads(path.read_text(encoding="utf-8"))
    sparse = {
        name: SparseSettings(
            idf=str(p.get("modifier") or "").lower() == "idf", datatype=str(p.get("datatype") or "float32").lower(),
            on_disk=bool(p.get("on_disk")),
        )
        for name, p in (data.get("sparse_vectors") or {}).items()
    }
    dense = {name: (int(p["size"]), str(p["distance"])) for name, p in (data.get("vectors") or {}).items()}
    return CollectionLayout(sparse=sparse, dense=dense)


class EdgeEngine:
    """A collection as a shard of the embedded Qdrant engine."""

    def __init__(self, config: QdrantConfig) -> None:
        self.config = config
        self._shard: Any = None
        self._temp_root: Path | None = None
        self.folder: Path | None = None
        self._unoptimized = 0  # points upserted since the optimizers last ran

    def _errors(self, action: str) -> Any:
        return mapped_errors(self.config.describe(), action, edge=True)

    @property
    def shard(self) -> Any:
        if self._shard is None:
            raise StoreError(f"{self.config.describe()} is not open")
        return self._shard

    # ---- lifecycle --------------------------------------------------------------------------------------
    def open(self, *, create: bool) -> bool:
        import qdrant_edge as qe

        config = self.config
        problem = check_name(config)
        if problem:
            raise StoreError(f"{config.describe()}: open failed: {problem}")
        if config.path:
            root = Path(config.path).expanduser()
        else:
            self._temp_root = root = Path(tempfile.mkdtemp(prefix="splade-qdrant-embedded-"))
        folder = self.folder = collection_folder(root, config.collection)
        try:
            self.require_space(0, "open")  # even a search maps (and writes) the WAL
            with self._errors("open"):
                if (folder / CONFIG_FILE).is_file():
                    layout = layout_from_file(folder / CONFIG_FILE)
                    check_layout(layout, config)
                    self._shard = qe.EdgeShard.load(str(folder))
                    indexed = {path: str(info.data_type) for path, info in self._shard.info().payload_schema.items()}
                    self._create_indexes(missing_indexes(CollectionLayout(sparse={}, indexed_fields=indexed), config))
                    logger.debug("opened existing %s", config.describe())
                    return False
                self._refuse_local_mode_folder(root)
                if not create:
                    raise NotFoundError(f"{config.describe()} does not exist")
                folder.mkdir(parents=True, exist_ok=True)
                self._shard = qe.EdgeShard.create(str(folder), self._edge_config())
                self._create_indexes(config.index_fields())
                logger.info("created %s", config.describe())
                return True
        except BaseException:
            self.close()
            raise

    def _refuse_local_mode_folder(self, root: Path) -> None:
        if (root / "collection" / self.config.collection / "storage.sqlite").is_file():
            raise ConfigMismatchError(
                f"{self.config.describe()}: the folder holds a qdrant-client local-mode collection of that name; "
                "open it with local_mode=True (--qdrant-local-mode) or ingest again into the embedded engine"
            )

    def _edge_config(self) -> Any:
        import qdrant_edge as qe

        config, sparse = self.config, wanted_sparse(self.config)
        datatypes = {"float32": qe.VectorStorageDatatype.Float32, "float16": qe.VectorStorageDatatype.Float16, "uint8": qe.VectorStorageDatatype.Uint8}
        vectors = {}
        if config.dense_name is not None and config.dense_size is not None:
            vectors = {config.dense_name: qe.EdgeVectorParams(size=config.dense_size, distance=getattr(qe.Distance, config.dense_distance))}
        return qe.EdgeConfig(
            vectors=vectors,
            sparse_vectors={
                config.sparse_name: qe.EdgeSparseVectorParams(
                    modifier=qe.Modifier.Idf if sparse.idf else None, datatype=datatypes[sparse.datatype], on_disk=sparse.on_disk,
                )
            },
        )

    def _create_indexes(self, fields: Mapping[str, str]) -> None:
        import qdrant_edge as qe

        schema = {
            "keyword": qe.PayloadSchemaType.Keyword, "integer": qe.PayloadSchemaType.Integer, "float": qe.PayloadSchemaType.Float,
            "bool": qe.PayloadSchemaType.Bool, "text": qe.PayloadSchemaType.Text, "datetime": qe.PayloadSchemaType.Datetime,
            "uuid": qe.PayloadSchemaType.Uuid,
        }
        for path, kind in fields.items():
            self.shard.update(qe.UpdateOperation.create_field_index(path, schema[kind]))
            logger.debug("payload index %s (%s) on %s", path, kind, self.config.describe())

    def close(self) -> None:
        shard, self._shard = self._shard, None
        if shard is not None:
            with self._errors("close"):
                shard.close()
        if self._temp_root is not None:
            shutil.rmtree(self._temp_root, ignore_errors=True)
            self._temp_root = None

    def drop(self) -> None:
        folder = self.folder
        shard, self._shard = self._shard, None
        if shard is not None:
            with self._errors("drop"):
                shard.close()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    # ---- writes -----------------------------------------------------------------------------------------
    def _point(self, point: PointData) -> Any:
        import qdrant_edge as qe

        indices, values = point.sparse.to_lists()
        vector: dict[str, Any] = {self.config.sparse_name: qe.SparseVector(indices, values)}
        if point.dense is not None and self.config.dense_name is not None:
            vector[self.config.dense_name] = [float(v) for v in point.dense]
        return qe.Point(point.id, vector, point.payload)

    def require_space(self, needed: int, action: str) -> None:
        """Refuse (`StorageFullError`) an action whose `needed` bytes would leave less than the reserve free."""
        reserve = int(self.config.embedded_free_reserve_mb * MB)
        if self.folder is None or reserve == 0:
            return
        where = existing_ancestor(self.folder)
        try:
            free = shutil.disk_usage(where).free
        except OSError as exc:
            logger.debug("cannot measure the free space of %s: %s", where, exc)
            return
        if free - needed < reserve:
            raise StorageFullError(
                f"{self.config.describe()}: {action} refused: {free / MB:.1f} MB free on the folder's file system, "
                f"{needed / MB:.1f} MB needed plus a reserve of {reserve / MB:g} MB (the embedded engine dies on a full "
                "disk); free space, then rerun (an ingestion resumes from its checkpoint), or lower --qdrant-free-reserve-mb"
            )

    def upsert(self, points: Sequence[PointData]) -> None:
        import qdrant_edge as qe

        self.require_space(sum(disk_bytes_estimate(p) for p in points), f"upsert of {len(points)} points")
        edge_points = [self._point(p) for p in points]
        with self._errors(f"upsert of {len(edge_points)} points"):
            self.shard.update(qe.UpdateOperation.upsert_points(edge_points))
        self._unoptimized += len(edge_points)
        every = self.config.embedded_optimize_every
        if every is not None and self._unoptimized >= every:
            self._optimize()

    def _optimize(self) -> None:
        """Optimize, then flush: appendable segments (held in RAM) become optimized ones, and the flushed WAL
        can be truncated. Without both, a large ingestion grows memory and the WAL with the corpus.

        Merging segments writes new ones before the old go: it may need up to the shard's size again, so
        with less free space than that (plus the reserve) only the flush runs, with a warning: the data is
        safe and searchable, just not merged yet."""
        optimize = True
        if self._unoptimized and self.folder is not None:
            try:
                self.require_space(disk_bytes(self.folder) or 0, "optimize")
            except StorageFullError as exc:
                logger.warning("not optimizing (flush only): %s", exc)
                optimize = False
        with self._errors("optimize and flush"):
            optimized = self.shard.optimize() if optimize else False
            self.shard.flush()
        logger.debug("optimized %s after %d points (%s)", self.config.describe(), self._unoptimized, optimized)
        self._unoptimized = 0

    def delete(self, ids: Sequence[str]) -> None:
        import qdrant_edge as qe

        with self._errors(f"delete of {len(ids)} points"):
            self.shard.update(qe.UpdateOperation.delete_points(list(ids)))

    def finish_ingest(self) -> None:
        """Persist the segments and run the optimizers (the server does both in the background)."""
        self._optimize()

    # ---- collection metadata (a file in the shard folder) -----------------------------------------------
    def _metadata(self) -> dict[str, Any]:
        self.shard  # noqa: B018 - raises when the collection is not open
        assert self.folder is not None
        path = self.folder / METADATA_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StoreError(f"{self.config.describe()}: cannot read {path}: {exc}") from None
        return data if isinstance(data, dict) else {}

    def read_metadata(self, key: str) -> Any:
        return self._metadata().get(key)

    def write_metadata(self, key: str, value: Any) -> None:
        data = {**self._metadata(), key: value}
        assert self.folder is not None
        path = self.folder / METADATA_FILE
        tmp = path.with_suffix(".json.tmp")
        try:
            tmp.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            raise StoreError(f"{self.config.describe()}: cannot write {path}: {exc.strerror or exc}") from None

    # ---- reads ------------------------------------------------------------------------------------------
    def count(self, filter: models.Filter | None = None) -> int:
        import qdrant_edge as qe

        with self._errors("count"):
            return int(self.shard.count(qe.CountRequest(exact=True, filter=to_edge_filter(filter))))

    def _nearest(self, query: NearestQuery) -> Any:
        import qdrant_edge as qe

        if query.sparse is not None:
            indices, values = query.sparse.to_lists()
            return qe.Query.Nearest(qe.SparseVector(indices, values), using=query.using)
        return qe.Query.Nearest([float(v) for v in query.dense or []], using=query.using)

    def _prefetch(self, query: NearestQuery) -> Any:
        import qdrant_edge as qe

        return qe.Prefetch(
            limit=query.limit, query=self._nearest(query), prefetches=self._candidates(query),
            filter=to_edge_filter(query.filter), score_threshold=query.score_threshold,
        )

    def _candidates(self, query: NearestQuery) -> list[Any] | None:
        """Phase one of a two-phase query: the prefetch whose points the query rescores."""
        return [self._prefetch(query.candidates)] if query.candidates is not None else None

    def _request(self, query: Query) -> Any:
        import qdrant_edge as qe

        if isinstance(query, NearestQuery):
            return qe.QueryRequest(
                limit=query.limit, query=self._nearest(query), prefetches=self._candidates(query),
                filter=to_edge_filter(query.filter), score_threshold=query.score_threshold,
                with_payload=_payload(query.payload), with_vector=False,
            )
        prefetches = [self._prefetch(s) for s in query.sources]
        fusion: qe.Fusion.Rrf | qe.Fusion.Dbsf
        if query.fusion == "rrf":
            fusion = qe.Fusion.Rrf(k=query.rrf_k, weights=list(query.weights) if query.weights is not None else None)
        else:
            fusion = qe.Fusion.Dbsf()
        return qe.QueryRequest(
            limit=query.limit, prefetches=prefetches, query=fusion,  # type: ignore[arg-type]  # the stubs miss that Fusion.Rrf/Dbsf are Fusions
            with_payload=_payload(query.payload), with_vector=False,
        )

    def query_batch(self, queries: Sequence[Query]) -> list[list[ScoredPoint]]:
        import qdrant_edge as qe

        with self._errors(f"search of {len(queries)} queries"):  # a request the engine cannot build is one line too
            requests = [self._request(q) for q in queries]
            responses = self.shard.query_batch(qe.QueryBatchRequest(requests))
        return [[ScoredPoint(id=str(p.id), score=float(p.score), payload=dict(p.payload or {})) for p in points] for points in responses]

    def query_groups(self, queries: Sequence[NearestQuery], group_by: str) -> list[list[ScoredPoint]]:
        """Grouped search: qdrant-edge 0.9 has no groups API, so the engine's ranked points are read deeper until
        `limit` groups are found or the ranking ends; each group's first point is its best (exact, like the server's)."""
        depth = [max(16, 4 * q.limit) for q in queries]
        results: list[list[ScoredPoint] | None] = [None] * len(queries)
        todo = list(range(len(queries)))
        while todo:
            ranked = self.query_batch([replace(queries[i], limit=depth[i]) for i in todo])
            again = []
            for i, points in zip(todo, ranked):
                best = _first_per_group(points, group_by, queries[i].limit)
                if len(best) < queries[i].limit and len(points) >= depth[i]:
                    depth[i] *= 4
                    again.append(i)
                else:
                    results[i] = best
            todo = again
        return [r or [] for r in results]

    def retrieve(self, ids: Sequence[str], *, payload: bool | Sequence[str], sparse: bool) -> list[StoredPoint]:
        with self._errors("retrieve"):
            records = self.shard.retrieve(list(ids), _payload(payload), [self.config.sparse_name] if sparse else False)
        return [self._stored(r, sparse) for r in records]

    def _stored(self, record: Any, sparse: bool) -> StoredPoint:
        vector = None
        if sparse and isinstance(record.vector, dict):
            found = record.vector.get(self.config.sparse_name)
            if found is not None:
                vector = SparseVector(found.indices, found.values)
        return StoredPoint(id=str(record.id), payload=dict(record.payload or {}), sparse=vector)

    def scroll(
        self, limit: int, offset: Any, *, payload: bool | Sequence[str], filter: models.Filter | None = None
    ) -> tuple[list[StoredPoint], Any]:
        import qdrant_edge as qe

        with self._errors("scroll"):
            records, next_offset = self.shard.scroll(
                qe.ScrollRequest(offset=offset, limit=limit, filter=to_edge_filter(filter), with_payload=_payload(payload), with_vector=False)
            )
        return [self._stored(r, False) for r in records], next_offset

    def storage_bytes(self) -> int | None:
        """Bytes the shard folder (segments, WAL, config) takes on disk, after a flush."""
        if self.folder is None:
            return None
        with self._errors("flush"):
            self.shard.flush()
        return disk_bytes(self.folder)


def _first_per_group(points: Sequence[ScoredPoint], group_by: str, limit: int) -> list[ScoredPoint]:
    """The first point of each `group_by` value in ranked `points`, at most `limit` of them."""
    seen: set[Any] = set()
    best: list[ScoredPoint] = []
    for point in points:
        key = json.dumps(point.payload.get(group_by), sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        best.append(point)
        if len(best) >= limit:
            break
    return best


def _payload(selection: bool | Sequence[str]) -> bool | list[str]:
    return selection if isinstance(selection, bool) else list(selection)
