"""`OpenSearchStore`: the `SparseStore` protocol on an OpenSearch index with a `rank_features` field.

Behaviour worth knowing:
- Ids: `_id = point_id(doc_id)` (UUID5), so re-ingesting overwrites and never duplicates. A passage index
  (`splade_connectors.passages`) holds one document per window (`passage_point_id`); its searches `collapse` on
  `doc_id`, so each document comes back once, by its best passage.
- Precision: rank_features keeps ~9 significant bits of each *document* weight (the float's bits
  shifted right by 15, i.e. truncated: stored value in (w * (1 - 2**-8), w]). Query weights are exact
  boosts, so a score is in (S * (1 - 2**-8), S] for the exact dot product S (plus float32 rounding).
  `_source` keeps the exact weights (as 9-digit decimals that read back to the same float32):
  `fetch_vectors` returns them unchanged.
- Bad weights: `SparseVector` already rejects NaN, inf, zero and negative weights; `upsert`
  checks again (defence in depth) and drops float32-subnormal weights (< 1.2e-38), which
  rank_features refuses and which cannot change a score.
- Empty vectors are indexed without features: found by BM25 and filters, never by SPLADE queries.
- Writes (`bulk.py`): a batch becomes compact NDJSON sent as byte-sized `_bulk` requests by parallel
  writers; per-item failures raise `RejectedDocumentsError` naming every failed doc id (items that
  succeeded stay indexed); when every failure is a 429, or a request failed transiently, the whole
  batch is retried instead (`TransientStoreError`).
- Bulk loads: `begin_ingest` records a lease in the index's `_meta`, then switches refresh off and replicas
  to `ingest_replicas`; `finish_ingest` restores both (the pipeline calls it after failures too), refreshes,
  and optionally force-merges. Every open heals load settings a dead ingestion left (`load_lease.py`).
- Queries: exact (a `rank_feature` clause per term) or two-phase (`two_phase.py`: heaviest terms, then
  a rescore with the rest); batches go through `_msearch` sized to the cluster (`msearch.py`); hits
  fetch only the payload fields asked for (`payload_fields`). Queries over the clause limit are pruned
  to their largest weights with a warning (see `queries.py`).
- Counts and searches see writes after a refresh; during `begin_ingest`..`finish_ingest` refresh is off.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from splade_connectors.aio import LoopClient
from splade_connectors.errors import ConfigError, RejectedDocumentsError, StoreError
from splade_connectors.explain import overlapping_terms
from splade_connectors.fusion import fuse
from splade_connectors.opensearch.bulk import (
    MIN_NORMAL_WEIGHT,
    BadDocument,
    BulkSender,
    RequestPlanner,
    SourceEncoder,
    raise_for_outcome,
)
from splade_connectors.opensearch.config import OpenSearchConfig, connect, connect_async, is_loopback
from splade_connectors.opensearch.errors import mapped_errors
from splade_connectors.opensearch.features import FeatureCodec
from splade_connectors.opensearch.index import (
    bulk_load_settings,
    ensure_index,
    get_index_settings,
    read_encoding_meta,
    read_meta,
    thread_pool_sizes,
    write_encoding_meta,
    write_meta,
)
from splade_connectors.opensearch.load_lease import (
    LEASE_KEY,
    Heartbeat,
    describe_holders,
    holder_entry,
    holder_key,
    live_holders,
)
from splade_connectors.opensearch.msearch import MultiSearch
from splade_connectors.opensearch.queries import (
    TooManyTerms,
    filter_clauses,
    fit_clause_budget,
    source_spec,
    sparse_search_body,
    text_query,
)
from splade_connectors.passages import (
    PASSAGE_COUNT_FIELD,
    PASSAGE_FIELDS,
    PASSAGE_INDEX_FIELD,
    all_point_ids,
    is_passage_collection,
    passage_hit,
    refuse,
    stale_point_ids,
    store_points,
    stored_count,
)
from splade_connectors.records import DOC_ID_FIELD, EncodedDocument, Hit, point_id
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

__all__ = ["MIN_NORMAL_WEIGHT", "STORAGE_RELATIVE_ERROR", "OpenSearchStore"]

MAX_CLAUSE_SETTING = "indices.query.bool.max_clause_count"
DEFAULT_MAX_CLAUSES = 1024
STORAGE_RELATIVE_ERROR = 2.0**-8  # rank_features truncates weights to 9 significant bits
DEFAULT_THREADS = 2  # write/search threads assumed when the cluster does not say
MAX_BULK_WRITERS = 8
_MGET_CHUNK = 500
# The documents that stand for their document on a passage index (one per document): passage 0.
_FIRST_PASSAGE: dict[str, Any] = {"term": {PASSAGE_INDEX_FIELD: 0}}
SERIALISE_SLICE = 64  # documents written per vectorised pass (requests leave between passes)


@dataclass(frozen=True)
class _Plan:
    """One search, planned: the search bodies to send, and how their responses become the hits to return.

    The blocking and the async searches run the same plans (`_execute`, `_aexecute`).
    """

    bodies: list[dict[str, Any]]
    finish: Callable[[list[dict[str, Any]]], list[list[Hit]]]


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class OpenSearchStore(StoreBase[OpenSearchConfig]):
    """SPLADE documents in one OpenSearch index; exact or two-phase dot-product search via `rank_feature` clauses."""

    kind = "opensearch"
    takes_vocabulary = True  # `rank_features` keys are the tokens themselves (see `features.py`)

    def __init__(
        self,
        config: OpenSearchConfig,
        *,
        vocabulary: Sequence[str] | None = None,
        client: Any | None = None,
        on_too_many_terms: TooManyTerms = "prune",
        filter_clause_reserve: int = 32,
    ) -> None:
        super().__init__(config)
        self.codec = FeatureCodec(vocabulary)
        self.vocabulary: Sequence[str] = self.codec.vocabulary or []
        self._client = client
        self._owns_client = client is None
        self.on_too_many_terms = on_too_many_terms
        self.filter_clause_reserve = filter_clause_reserve
        self._max_clauses: int | None = None
        self._threads: dict[str, int] | None = None
        self._restore: dict[str, Any] | None = None
        self._heartbeat: Heartbeat | None = None
        self._refresh_before_read = False  # set on open when a live ingestion holds the index with refresh off
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        self._sources = SourceEncoder(self.codec, config.sparse_field)
        # async searches: opensearch-py's AsyncOpenSearch, one per event loop (made on first use)
        self._async: LoopClient[Any] = LoopClient(lambda: connect_async(self.config), _close_async)

    # ---- lifecycle ----------------------------------------------------------------------------------
    @property
    def sparse_field(self) -> str:
        return self.config.sparse_field

    @property
    def client(self) -> Any:
        if self._client is None:
            self._require_open()
        return self._client

    def _connect(self, *, create: bool) -> bool:
        """Connect, then create the index (`create`) or require it; check an existing index's mapping."""
        if self._client is None:
            self._client = connect(self.config)
        try:
            with mapped_errors(self.describe(), "open"):
                created = ensure_index(self._client, self.config, self.codec, create=create)
                if not created:
                    self._heal()
                return created
        except BaseException:
            self._close_client()
            raise

    def _disconnect(self) -> None:
        """Stop the writer threads and close the client's connections (when this store made the client)."""
        self._stop_heartbeat()
        with self._executor_lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
        self._close_client()

    def _close_client(self) -> None:
        self._async.discard()
        if self._owns_client and self._client is not None:
            close = getattr(self._client, "close", None)
            self._client = None
            if callable(close):
                close()

    def _pool(self) -> ThreadPoolExecutor:
        """The threads parallel `_bulk` and `_msearch` requests run on (made on first use)."""
        with self._executor_lock:
            if self._executor is None:
                workers = max(self.bulk_writers(), 2)
                self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"opensearch-{self.name}")
            return self._executor

    def cluster_threads(self) -> dict[str, int]:
        """The `write` and `search` thread-pool sizes of the cluster's data nodes, read once."""
        if self._threads is None:
            try:
                self._threads = thread_pool_sizes(self.client)
            except Exception as exc:  # noqa: BLE001 - sizing falls back to a safe default
                logger.warning("could not read the cluster's thread pools (%s); assuming %d threads", exc, DEFAULT_THREADS)
                self._threads = {}
        return self._threads

    def bulk_writers(self) -> int:
        """Parallel `_bulk` requests per upsert: the config's, else the cluster's write threads (at most 8)."""
        if self.config.bulk_writers is not None:
            return self.config.bulk_writers
        return max(1, min(MAX_BULK_WRITERS, self.cluster_threads().get("write", DEFAULT_THREADS)))

    def _gzip(self) -> bool:
        return self.config.compression == "gzip" or (self.config.compression == "auto" and not is_loopback(self.config))

    # ---- aliases ------------------------------------------------------------------------------------
    @property
    def supports_aliases(self) -> bool:
        """Index aliases are always there."""
        return True

    def aliases(self) -> dict[str, str]:
        """Every index alias -> the index it writes to (its write index, else its only or first index)."""
        with mapped_errors(self.describe(), "list aliases"):
            answer = self.client.indices.get_alias()
        out: dict[str, str] = {}
        for index in sorted(answer):
            for alias, spec in ((answer[index] or {}).get("aliases") or {}).items():
                if (spec or {}).get("is_write_index") or alias not in out:
                    out[alias] = index
        return out

    def resolve(self, name: str | None = None) -> str:
        """The index behind `name` (default: this store's): the alias's write index, or `name` itself."""
        name = name or self.name
        return self.aliases().get(name, name)

    def update_aliases(self, changes: Mapping[str, str | None]) -> None:
        """Point each alias at one index as its write index (None deletes the alias), in one atomic `_aliases` request."""
        current = self.aliases()
        actions: list[dict[str, Any]] = []
        for alias, target in changes.items():
            if alias in current:
                actions.append({"remove": {"index": "*", "alias": alias}})
            if target is not None:
                actions.append({"add": {"index": target, "alias": alias, "is_write_index": True}})
        if actions:
            with mapped_errors(self.describe(), "alias update"):
                self.client.indices.update_aliases(body={"actions": actions})

    # ---- writes -------------------------------------------------------------------------------------
    def _rejected(self, doc_id: str, reason: str) -> RejectedDocumentsError:
        return RejectedDocumentsError({doc_id: reason}, total=1, others_written=False, store=self.describe())

    def bulk_lines(self, batch: Sequence[EncodedDocument]) -> list[bytes]:
        """The `_bulk` NDJSON of a batch (action + source per document); a bad vector rejects the batch."""
        try:
            return self._sources.lines(store_points(batch))
        except BadDocument as exc:
            raise self._rejected(exc.doc_id, exc.reason) from exc

    def upsert(self, batch: Sequence[EncodedDocument]) -> None:
        """Index a batch: compact `_bulk` requests sized by bytes, sent by parallel writers (see `bulk.py`).

        Every vector is checked before anything is sent, so a bad vector writes nothing. Lines are
        written slice by slice and each request leaves as soon as it is full.
        """
        self._require_open()
        if not batch:
            return
        passages = [item.document.id for item in batch if item.passages is not None]
        stored = self._passage_counts(passages) if passages else {}
        points = store_points(batch)
        try:
            checked = self._sources.check(points)
        except BadDocument as exc:
            raise self._rejected(exc.doc_id, exc.reason) from exc
        writers = self.bulk_writers()
        planner = RequestPlanner(writers=writers, min_bytes=self.config.bulk_min_bytes, max_bytes=self.config.bulk_bytes)
        sender = BulkSender(
            self.client, self.name, self.describe(), gzip=self._gzip(), executor=self._pool,
            wait_for_active_shards=self.config.wait_for_active_shards,
        )
        step = max(SERIALISE_SLICE, -(-len(points) // (4 * writers)))
        try:
            for start in range(0, len(points), step):
                part = points[start : start + step]
                lines = self._sources.lines(part, checked[start : start + step])
                if start == 0:  # the first slice's bytes per point estimate the batch's size
                    planner.expect(sum(map(len, lines)) * len(points) // len(part))
                for point, line in zip(part, lines):
                    if (full := planner.add(point.doc_id, line)) is not None:
                        sender.submit(full)
        except BaseException:
            sender.finish()  # never leave requests running behind an error
            raise
        raise_for_outcome(sender.finish(planner.finish()), len(batch), self.describe())
        stale = stale_point_ids(stored, batch)
        if stale:  # a document re-ingested with fewer windows: its passages past the new count
            self._delete_ids(stale)

    def _passage_counts(self, doc_ids: Sequence[str]) -> dict[str, int]:
        """How many passages each of these documents has stored (real-time `mget`; documents not stored left out)."""
        found = self.fetch_payloads(doc_ids, [PASSAGE_COUNT_FIELD])
        return {doc_id: stored_count(payload) for doc_id, payload in found.items()}

    def _passage_collection(self) -> bool:
        """Whether the index's encoding record says it holds passages (`splade_connectors.passages`)."""
        return is_passage_collection(self.recorded_encoding())

    def delete(self, doc_ids: Sequence[str]) -> None:
        """Delete these documents (every passage of each, on a passage index)."""
        self._require_open()
        if not doc_ids:
            return
        if self._passage_collection():
            counts = self._passage_counts(doc_ids)
            self._delete_ids([pid for doc_id, count in counts.items() for pid in all_point_ids(doc_id, count)])
        else:
            self._delete_ids([point_id(d) for d in doc_ids])

    def _delete_ids(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        body = [{"delete": {"_index": self.name, "_id": i}} for i in ids]
        with mapped_errors(self.describe(), f"bulk delete of {len(ids)} documents"):
            response = self.client.bulk(body=body)
        failures = [
            item["delete"] for item in response.get("items", []) if item.get("delete", {}).get("status") not in (200, 404)
        ]
        if failures:
            raise StoreError(f"{self.describe()}: {len(failures)} deletes failed: {failures[0].get('error')}")

    def _load_settings(self) -> dict[str, str]:
        return get_index_settings(self.client, self.name, "index.refresh_interval", "index.number_of_replicas")

    def _heal(self) -> None:
        """On open: restore bulk-load settings no live ingestion holds (a dead one left them), else refresh.

        An index in load settings hides acknowledged documents (no refresh). A load whose holders
        are all dead (`load_lease.py`), or load settings without any lease (a version without one),
        is finished here; while another ingestion is alive only a refresh is made, which shows what
        it wrote without touching its settings.
        """
        client = self.client
        meta = read_meta(client, self.name)
        lease = meta.get(LEASE_KEY)
        current = get_index_settings(client, self.name, "index.refresh_interval", "index.number_of_replicas")
        load, _ = bulk_load_settings(current, self.config)
        in_load = current.get("index.refresh_interval") == str(load["refresh_interval"]) != self.config.refresh_interval
        if lease is None and not in_load:
            return
        if live_holders(lease, self.config.load_lease_seconds, exclude=holder_key()):
            # reads refresh once first (`_before_read`); a writer (e.g. a Ray write task) never pays for it
            logger.info("%s: an ingestion is running (%s); refreshing before reads", self.describe(), describe_holders(lease))
            self._refresh_before_read = True
            return
        restore = self._restore_values(lease, current)
        logger.warning(
            "%s was left in bulk-load settings by an ingestion that is gone (%s): restoring %s",
            self.describe(), describe_holders(lease) if lease else "no lease", restore,
        )
        client.indices.put_settings(index=self.name, body={"index": restore})
        if lease is not None:
            meta.pop(LEASE_KEY, None)
            write_meta(client, self.name, meta)
        client.indices.refresh(index=self.name)

    def _restore_values(self, lease: dict[str, Any] | None, current: dict[str, str]) -> dict[str, Any]:
        """What to put back after a load: the lease's record, else the current values unless they are load values."""
        recorded = (lease or {}).get("restore")
        if isinstance(recorded, dict) and recorded:
            return dict(recorded)
        return bulk_load_settings(current, self.config)[1]

    def _before_read(self) -> None:
        """Refresh once before the first count or search of an index a live ingestion holds (see `_heal`)."""
        if self._refresh_before_read:
            self._refresh_before_read = False
            self.refresh()

    def _renew_lease(self) -> None:
        meta = read_meta(self.client, self.name)
        lease = dict(meta.get(LEASE_KEY) or {})
        holders = dict(lease.get("holders") or {})
        holders[holder_key()] = holder_entry()
        meta[LEASE_KEY] = {**lease, "holders": holders}
        write_meta(self.client, self.name, meta)

    def _stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None

    def begin_ingest(self) -> None:
        """Record this load in the index's lease, then switch refresh off and replicas to `ingest_replicas`.

        The lease (`load_lease.py`) keeps the settings to restore, so that any later open restores them
        if this process dies before `finish_ingest`; a heartbeat thread renews it while the load runs.
        """
        self._require_open()
        with mapped_errors(self.describe(), "begin_ingest"):
            current = self._load_settings()
            meta = read_meta(self.client, self.name)
            lease = meta.get(LEASE_KEY)
            others = live_holders(lease, self.config.load_lease_seconds, exclude=holder_key())
            # another live load's record is the truth; otherwise what the index has now (unless it is load values)
            restore = self._restore_values(lease if others else None, current)
            load, _ = bulk_load_settings(current, self.config)
            meta[LEASE_KEY] = {"holders": {**others, holder_key(): holder_entry()}, "restore": restore}
            write_meta(self.client, self.name, meta)  # the lease first: settings never change without one
            self.client.indices.put_settings(index=self.name, body={"index": load})
        self._restore = restore
        self._stop_heartbeat()
        self._heartbeat = Heartbeat(self._renew_lease, self.config.load_lease_seconds / 4)

    def finish_ingest(self) -> None:
        """Leave the lease; restore refresh and replicas unless another live load holds them; refresh; optionally force-merge.

        Also finishes a load an earlier process left (nothing begun here): the lease's values are restored.
        """
        self._require_open()
        self._stop_heartbeat()
        with mapped_errors(self.describe(), "finish_ingest"):
            meta = read_meta(self.client, self.name)
            lease = meta.get(LEASE_KEY)
            others = live_holders(lease, self.config.load_lease_seconds, exclude=holder_key())
            if others:  # another ingestion still loads: keep its settings, leave the lease
                assert lease is not None
                meta[LEASE_KEY] = {**lease, "holders": others}
                write_meta(self.client, self.name, meta)
            else:
                restore = self._restore or self._restore_values(lease, self._load_settings())
                self.client.indices.put_settings(index=self.name, body={"index": restore})
                if lease is not None:  # settings first: load settings never remain without a lease
                    meta.pop(LEASE_KEY, None)
                    write_meta(self.client, self.name, meta)
            self.client.indices.refresh(index=self.name)
        self._restore = None
        if self.config.merge_after_ingest is not None:
            self.force_merge(self.config.merge_after_ingest)

    def force_merge(self, max_segments: int = 1) -> None:
        """Merge the index down to `max_segments` per shard (fewer, larger segments: faster queries; blocks until done)."""
        self._require_open()
        with mapped_errors(self.describe(), f"force merge to {max_segments} segments"):
            self.client.indices.forcemerge(
                index=self.name, max_num_segments=max_segments, params={"request_timeout": 3600}
            )

    def refresh(self) -> None:
        self._require_open()
        with mapped_errors(self.describe(), "refresh"):
            self.client.indices.refresh(index=self.name)

    def drop(self) -> None:
        self._require_open()
        with mapped_errors(self.describe(), "drop"):
            self.client.indices.delete(index=self.name, ignore_unavailable=True)

    def _read_encoding(self) -> dict[str, Any] | None:
        """The encoding record: `_meta.splade_connectors.encoding` of the index mapping."""
        with mapped_errors(self.describe(), "read of the mapping's _meta"):
            return read_encoding_meta(self.client, self.name)

    def _write_encoding(self, record: dict[str, Any]) -> None:
        with mapped_errors(self.describe(), "update of the mapping's _meta"):
            write_encoding_meta(self.client, self.name, record)

    # ---- reads --------------------------------------------------------------------------------------
    def count(self) -> int:
        self._require_open()
        self._before_read()
        with mapped_errors(self.describe(), "count"):
            if self._passage_collection():  # one first passage per document
                return int(self.client.count(index=self.name, body={"query": _FIRST_PASSAGE})["count"])
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

    def _two_phase(self, two_phase: TwoPhase | str | bool | None | Configured) -> TwoPhase | None:
        return self.config.two_phase if two_phase is CONFIGURED else coerce_two_phase(two_phase)

    def _fields(self, payload_fields: Sequence[str] | None | Configured) -> Sequence[str] | None:
        return self.config.payload_fields if payload_fields is CONFIGURED else payload_fields

    def _multi_search(self) -> MultiSearch:
        threads = self.cluster_threads().get("search", DEFAULT_THREADS)
        return MultiSearch(
            self.client, self.name, self.describe(), threads=threads, size=self.config.msearch_size, executor=self._pool
        )

    def _execute(self, plan: _Plan) -> list[list[Hit]]:
        """Send a plan's search bodies (batched `_msearch`) and turn the responses into hits."""
        return plan.finish(self._multi_search().run(plan.bodies) if plan.bodies else [])

    async def _aexecute(self, plan: _Plan) -> list[list[Hit]]:
        """`_execute` through opensearch-py's async client (`AsyncOpenSearch`, needs aiohttp)."""
        return plan.finish(await self._multi_search().arun(self._async.get(), plan.bodies) if plan.bodies else [])

    async def _prepare_async(self) -> None:
        """Read, once and off the loop, the cluster settings that plans and batches are sized by."""
        self._require_open()
        if self._max_clauses is None or self._threads is None:
            await asyncio.to_thread(lambda: (self.max_clauses(), self.cluster_threads()))

    async def _aclose_async_clients(self) -> None:
        await self._async.aclose()

    def search_batch(
        self,
        vectors: Sequence[SparseVector],
        *,
        top_k: int = 10,
        filter: Filter | None = None,
        score_threshold: float | None = None,
        with_terms: bool = False,
        two_phase: TwoPhase | str | bool | None | Configured = CONFIGURED,
        payload_fields: Sequence[str] | None | Configured = CONFIGURED,
    ) -> list[list[Hit]]:
        """SPLADE top-k per query vector (batched `_msearch`); empty queries get no hits.

        `two_phase`: a `TwoPhase` (or spec string such as `"ratio=0.4"`) for a two-phase query, `None`
        or `False` for the exact query; default: the config's. Returned scores are exact dot products
        either way (within the storage precision). `score_threshold` keeps hits scoring at least that
        (on the stored, quantised score, at most 0.4% below the exact one). `payload_fields`: the
        payload each hit carries (default: the config's; `None` all of it, `[]` ids and scores only).
        `with_terms` fills `Hit.terms` from the stored document vectors.
        """
        return self._execute(
            self._sparse_plan(
                vectors, top_k=top_k, filter=filter, score_threshold=score_threshold, with_terms=with_terms,
                two_phase=two_phase, payload_fields=payload_fields,
            )
        )

    async def asearch_batch(
        self,
        vectors: Sequence[SparseVector],
        *,
        top_k: int = 10,
        filter: Filter | None = None,
        score_threshold: float | None = None,
        with_terms: bool = False,
        two_phase: TwoPhase | str | bool | None | Configured = CONFIGURED,
        payload_fields: Sequence[str] | None | Configured = CONFIGURED,
    ) -> list[list[Hit]]:
        """`search_batch` for an event loop, through `AsyncOpenSearch`: the same bodies, hits and errors."""
        await self._prepare_async()
        return await self._aexecute(
            self._sparse_plan(
                vectors, top_k=top_k, filter=filter, score_threshold=score_threshold, with_terms=with_terms,
                two_phase=two_phase, payload_fields=payload_fields,
            )
        )

    def _sparse_plan(
        self,
        vectors: Sequence[SparseVector],
        *,
        top_k: int,
        filter: Filter | None,
        score_threshold: float | None,
        with_terms: bool,
        two_phase: TwoPhase | str | bool | None | Configured,
        payload_fields: Sequence[str] | None | Configured,
    ) -> _Plan:
        self._require_open()
        self._before_read()
        require_top_k(top_k)
        phased = self._two_phase(two_phase)
        fields = self._fields(payload_fields)
        grouped = self._passage_collection()
        if grouped:
            if phased is not None:  # OpenSearch refuses `collapse` together with `rescore`
                raise refuse(self.describe(), "two-phase search (OpenSearch cannot collapse rescored hits)")
            if fields is not None:
                fields = [*fields, *sorted(PASSAGE_FIELDS)]
        filters = filter_clauses(filter)
        budget = self._clause_budget(filters)
        source = source_spec(fields, self.sparse_field, with_terms)
        searches: list[tuple[int, SparseVector, dict[str, Any]]] = []
        for position, vector in enumerate(vectors):
            if vector.nnz == 0:
                continue
            vector = fit_clause_budget(vector, budget, self.on_too_many_terms)
            body = sparse_search_body(
                vector, self.codec, self.sparse_field, top_k=top_k, filters=filters, two_phase=phased,
                score_threshold=score_threshold, source=source,
            )
            if grouped:  # one hit per document: its best passage (collapse keeps each doc_id's top-scoring hit)
                body["collapse"] = {"field": DOC_ID_FIELD}
            searches.append((position, vector, body))

        def finish(responses: list[dict[str, Any]]) -> list[list[Hit]]:
            results: list[list[Hit]] = [[] for _ in vectors]
            for (position, vector, body), response in zip(searches, responses):
                hits = self._hits(response, vector if with_terms else None)
                if grouped:
                    hits = [passage_hit(hit) for hit in hits]
                if score_threshold is not None and "rescore" in body:  # min_score would see phase one's partial score
                    hits = [h for h in hits if h.score >= score_threshold]
                results[position] = hits
            return results

        return _Plan([s[2] for s in searches], finish)

    def search_text_batch(
        self,
        texts: Sequence[str],
        *,
        top_k: int = 10,
        filter: Filter | None = None,
        fields: Sequence[str] = ("text",),
        explain_vectors: Sequence[SparseVector] | None = None,
        payload_fields: Sequence[str] | None | Configured = CONFIGURED,
    ) -> list[list[Hit]]:
        """BM25 top-k per query text; with `explain_vectors` (the SPLADE queries) hits carry `terms`."""
        return self._execute(
            self._text_plan(texts, top_k=top_k, filter=filter, fields=fields, explain_vectors=explain_vectors, payload_fields=payload_fields)
        )

    def _text_plan(
        self,
        texts: Sequence[str],
        *,
        top_k: int,
        filter: Filter | None,
        fields: Sequence[str],
        explain_vectors: Sequence[SparseVector] | None,
        payload_fields: Sequence[str] | None | Configured,
    ) -> _Plan:
        self._require_open()
        self._before_read()
        require_top_k(top_k)
        filters = filter_clauses(filter)
        source = source_spec(self._fields(payload_fields), self.sparse_field, explain_vectors is not None)
        bodies = [
            {"size": top_k, "query": text_query(text, fields, filters), **source, "track_total_hits": False}
            for text in texts
        ]

        def finish(responses: list[dict[str, Any]]) -> list[list[Hit]]:
            return [
                self._hits(resp, explain_vectors[i] if explain_vectors is not None else None)
                for i, resp in enumerate(responses)
            ]

        return _Plan(bodies, finish)

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
        two_phase: TwoPhase | str | bool | None | Configured = CONFIGURED,
        payload_fields: Sequence[str] | None | Configured = CONFIGURED,
    ) -> list[list[Hit]]:
        """SPLADE (exact or two-phase, as `search_batch`) fused client-side with BM25 on `text_fields`.

        Dense vectors are not stored in the OpenSearch index: a query carrying one is refused. The
        SPLADE and the BM25 searches of all queries go out in one batch of `_msearch` requests.
        """
        return self._execute(
            self._hybrid_plan(
                queries, top_k=top_k, fusion=fusion, rrf_k=rrf_k, weights=weights, candidates=candidates, filter=filter,
                text_fields=text_fields, two_phase=two_phase, payload_fields=payload_fields,
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
        text_fields: Sequence[str] = ("text",),
        two_phase: TwoPhase | str | bool | None | Configured = CONFIGURED,
        payload_fields: Sequence[str] | None | Configured = CONFIGURED,
    ) -> list[list[Hit]]:
        """`hybrid_search_batch` for an event loop, through `AsyncOpenSearch`."""
        await self._prepare_async()
        return await self._aexecute(
            self._hybrid_plan(
                queries, top_k=top_k, fusion=fusion, rrf_k=rrf_k, weights=weights, candidates=candidates, filter=filter,
                text_fields=text_fields, two_phase=two_phase, payload_fields=payload_fields,
            )
        )

    def _hybrid_plan(
        self,
        queries: Sequence[HybridQuery],
        *,
        top_k: int,
        fusion: Fusion,
        rrf_k: int,
        weights: Sequence[float] | None,
        candidates: int | None,
        filter: Filter | None,
        text_fields: Sequence[str],
        two_phase: TwoPhase | str | bool | None | Configured,
        payload_fields: Sequence[str] | None | Configured,
    ) -> _Plan:
        self._require_open()
        if self._passage_collection():
            raise refuse(self.describe(), "hybrid search")
        if any(q.dense is not None for q in queries):
            raise ConfigError(f"{self.describe()} stores no dense vectors: hybrid search uses BM25 on the text")
        depth = hybrid_depth(top_k, candidates=candidates, rrf_k=rrf_k)
        empty = SparseVector.empty()
        sparse = self._sparse_plan(
            [q.sparse or empty for q in queries], top_k=depth, filter=filter, score_threshold=None, with_terms=False,
            two_phase=two_phase, payload_fields=payload_fields,
        )
        with_text = [i for i, q in enumerate(queries) if q.text]
        lexical = self._text_plan(
            [queries[i].text or "" for i in with_text], top_k=depth, filter=filter, fields=text_fields, explain_vectors=None,
            payload_fields=payload_fields,
        )
        split = len(sparse.bodies)

        def finish(responses: list[dict[str, Any]]) -> list[list[Hit]]:
            by_text: list[list[Hit]] = [[] for _ in queries]
            for i, hits in zip(with_text, lexical.finish(responses[split:])):
                by_text[i] = hits
            return [
                fuse([s, b], fusion, rrf_k=rrf_k, weights=weights, top_k=top_k)
                for s, b in zip(sparse.finish(responses[:split]), by_text)
            ]

        return _Plan([*sparse.bodies, *lexical.bodies], finish)

    def _hits(self, response: Mapping[str, Any], query: SparseVector | None) -> list[Hit]:
        hits: list[Hit] = []
        for raw in (response.get("hits") or {}).get("hits") or []:
            source = dict(raw.get("_source") or {})
            features = source.pop(self.sparse_field, None)
            terms = None
            if query is not None:
                terms = overlapping_terms(query, self.codec.decode(features or {}), self.vocabulary)
            doc_id = source.get("doc_id")
            if doc_id is None:
                doc_id = ((raw.get("fields") or {}).get("doc_id") or [raw["_id"]])[0]
            hits.append(Hit(id=str(doc_id), score=float(raw["_score"]), payload=source, terms=terms))
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
        self._before_read()
        require_batch_size(batch_size)
        passages = self._passage_collection()
        after: list[Any] | None = None
        while True:
            body: dict[str, Any] = {
                "size": batch_size, "query": _FIRST_PASSAGE if passages else {"match_all": {}}, "sort": [{"doc_id": "asc"}],
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


async def _close_async(client: Any) -> None:
    await client.close()
