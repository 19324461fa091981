"""Fast, safe `_bulk` writes: compact NDJSON, requests sized by bytes, parallel writers, gzip where it pays.

One `upsert(batch)` becomes:
1. one compact NDJSON line pair per document (`{"index":{"_id":..}}` + `_source`); every vector is
   checked before anything is sent, so a bad vector rejects the batch with nothing written; the
   rank_features objects are written by numpy (`feature_json.py`), the rest by `json`;
2. requests of about `total / writers` bytes (between `bulk_min_bytes` and `bulk_bytes`), so every
   writer has work even for a mid-sized batch and no request grows past what the cluster handles well;
   lines are written slice by slice and each request leaves as soon as it is full, so the server
   indexes the first request while the client writes the next;
3. the requests sent in parallel on a small thread pool (gzip level 1 in the worker, where enabled:
   zlib releases the GIL), each answered with only `errors` and every item's `status`/`error`
   (`filter_path`), which keeps the per-item bookkeeping cheap;
4. the outcome, once every request has finished: item errors by document id (`RejectedDocumentsError`,
   `others_written=True`); only 429s and 502/503/504s (throttled, or a shard with no active copy while a
   node leaves a cluster) -> `TransientStoreError` (the batch is retried whole: ids are deterministic, so a
   retry overwrites); a request that failed transiently -> `TransientStoreError`.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from splade_connectors.errors import RejectedDocumentsError, StoreError, TransientStoreError
from splade_connectors.opensearch.errors import TRANSIENT_STATUS, mapped_errors
from splade_connectors.opensearch.feature_json import FeatureJson
from splade_connectors.opensearch.features import FeatureCodec
from splade_connectors.passages import StorePoint
from trainer.sparse import SparseVector

logger = logging.getLogger(__name__)

MIN_NORMAL_WEIGHT = float(np.finfo(np.float32).tiny)
BULK_FILTER_PATH = "errors,items.*.status,items.*.error"
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


class BadDocument(ValueError):
    """A document whose vector cannot be indexed."""

    def __init__(self, doc_id: str, reason: str) -> None:
        super().__init__(reason)
        self.doc_id, self.reason = doc_id, reason


@dataclass
class BulkRequest:
    """Consecutive documents of a batch and their NDJSON lines."""

    doc_ids: list[str] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)
    size: int = 0

    def body(self) -> bytes:
        return b"".join(self.lines)


@dataclass
class BulkOutcome:
    """What the requests of one batch reported: failed items and failed requests."""

    items: dict[str, tuple[int, str]] = field(default_factory=dict)  # doc id -> (status, reason)
    request_errors: list[tuple[list[str], StoreError]] = field(default_factory=list)


class SourceEncoder:
    """Documents -> `_bulk` index lines: compact JSON, the rank_features objects written by `FeatureJson`."""

    def __init__(self, codec: FeatureCodec, sparse_field: str) -> None:
        self.codec, self.sparse_field = codec, sparse_field
        self._features = FeatureJson(codec)
        self._field_key = f',{_dumps(sparse_field)}:'.encode()

    def lines(self, batch: Sequence[StorePoint], checked: Sequence[tuple[np.ndarray, np.ndarray]] | None = None) -> list[bytes]:
        """`{"index":{"_id":..}}\\n{source}\\n` per point (`checked`: the batch's `check` result, if done already)."""
        pairs = list(checked) if checked is not None else self.check(batch)
        objects = self._features.objects(pairs)
        lines = []
        for point, features in zip(batch, objects):
            payload = _dumps(point.payload).encode()  # always holds doc_id: never "{}"
            action = f'{{"index":{{"_id":"{point.id}"}}}}\n'.encode()
            lines.append(b"".join((action, payload[:-1], self._field_key, features, b"}\n")))
        return lines

    def check(self, batch: Sequence[StorePoint]) -> list[tuple[np.ndarray, np.ndarray]]:
        """(indices, values) to index per point; `BadDocument` (naming its document) for a vector OpenSearch would refuse."""
        return [self._checked(point) for point in batch]

    def _checked(self, point: StorePoint) -> tuple[np.ndarray, np.ndarray]:
        doc_id, vector = point.doc_id, point.sparse
        if not isinstance(vector, SparseVector):
            raise BadDocument(doc_id, f"sparse must be a SparseVector, got {type(vector).__name__}")
        indices, values = vector.indices, vector.values
        if not values.size:
            return indices, values
        if not (bool(np.all(np.isfinite(values))) and bool(values.min() > 0)):
            raise BadDocument(doc_id, "weights must be finite and > 0")
        if self.codec.vocabulary is not None and int(indices.max()) >= len(self.codec.vocabulary):
            raise BadDocument(doc_id, f"token id {int(indices.max())} is outside the vocabulary (size {len(self.codec.vocabulary)})")
        if float(values.min()) < MIN_NORMAL_WEIGHT:  # rank_features refuses float32 subnormals; they cannot change a score
            keep = values >= MIN_NORMAL_WEIGHT
            logger.warning("document %r: dropped %d subnormal weights (< %g)", doc_id, int((~keep).sum()), MIN_NORMAL_WEIGHT)
            indices, values = indices[keep], values[keep]
        return indices, values


class RequestPlanner:
    """Groups consecutive documents into requests of about total/writers bytes, as their lines arrive.

    The target is `estimated_total / writers` bytes, within [min_bytes, max_bytes]; a request closes
    once it reached the target, or before a line would take it past `max_bytes` (a document larger than
    that is sent alone). With the exact total, there are at most `writers` requests unless some reach
    `max_bytes`.
    """

    def __init__(self, *, writers: int, min_bytes: int, max_bytes: int) -> None:
        self.writers, self.min_bytes, self.max_bytes = max(1, writers), min_bytes, max_bytes
        self.target = max_bytes
        self.current = BulkRequest()

    def expect(self, total_bytes: int) -> None:
        self.target = int(min(self.max_bytes, max(self.min_bytes, -(-total_bytes // self.writers))))

    def add(self, doc_id: str, line: bytes) -> BulkRequest | None:
        """Add one document; returns the request it closed, if any."""
        closed = None
        current = self.current
        if current.lines and (current.size >= self.target or current.size + len(line) > self.max_bytes):
            closed, current = current, BulkRequest()
            self.current = current
        current.doc_ids.append(doc_id)
        current.lines.append(line)
        current.size += len(line)
        return closed

    def finish(self) -> BulkRequest | None:
        closed, self.current = self.current, BulkRequest()
        return closed if closed.lines else None


def plan_requests(
    doc_ids: Sequence[str], lines: Sequence[bytes], *, writers: int, min_bytes: int, max_bytes: int
) -> list[BulkRequest]:
    """All the requests of a batch whose lines are known (see `RequestPlanner`)."""
    planner = RequestPlanner(writers=writers, min_bytes=min_bytes, max_bytes=max_bytes)
    planner.expect(sum(len(line) for line in lines))
    requests = [r for r in (planner.add(d, line) for d, line in zip(doc_ids, lines)) if r is not None]
    last = planner.finish()
    return requests + ([last] if last is not None else [])


def item_failures(response: Mapping[str, Any], doc_ids: Sequence[str]) -> dict[str, tuple[int, str]]:
    """doc id -> (status, reason) for every failed item of one `_bulk` response (items are in request order)."""
    if not response.get("errors"):
        return {}
    items = response.get("items") or []
    if len(items) != len(doc_ids):
        raise StoreError(f"_bulk answered {len(items)} items for {len(doc_ids)} documents")
    failures: dict[str, tuple[int, str]] = {}
    for doc_id, item in zip(doc_ids, items):
        result = next(iter(item.values()))
        if "error" in result:
            error = result["error"]
            reason = f"{error.get('type')}: {error.get('reason')}" if isinstance(error, Mapping) else str(error)
            failures[doc_id] = (int(result.get("status", 0)), reason)
    return failures


class BulkSender:
    """Sends the requests of one batch on an executor as they are ready, and gathers what they report."""

    def __init__(
        self, client: Any, index: str, where: str, *, gzip: bool, executor: Callable[[], Executor],
        wait_for_active_shards: int | str | None = None,
    ) -> None:
        self.client, self.index, self.where, self.gzip, self._executor = client, index, where, gzip, executor
        self.params = {"filter_path": BULK_FILTER_PATH}
        if wait_for_active_shards is not None:
            self.params["wait_for_active_shards"] = str(wait_for_active_shards)
        self._pending: list[tuple[BulkRequest, Future[Mapping[str, Any]]]] = []

    def send(self, requests: Sequence[BulkRequest]) -> BulkOutcome:
        """Send these requests (in parallel when more than one) and gather what they report."""
        for request in requests[:-1]:
            self.submit(request)
        return self.finish(requests[-1] if requests else None)

    def submit(self, request: BulkRequest) -> None:
        """Start sending one request on the executor."""
        self._pending.append((request, self._executor().submit(self._send_one, request)))

    def finish(self, last: BulkRequest | None = None) -> BulkOutcome:
        """Send `last` (in this thread when it is the only request: no hand-off) and wait for every request."""
        outcome = BulkOutcome()
        if last is not None and not self._pending:
            self._collect(outcome, last, lambda: self._send_one(last))
            return outcome
        if last is not None:
            self.submit(last)
        pending, self._pending = self._pending, []
        for request, future in pending:  # wait for every request before reporting anything
            self._collect(outcome, request, future.result)
        return outcome

    def _collect(self, outcome: BulkOutcome, request: BulkRequest, result: Callable[[], Mapping[str, Any]]) -> None:
        try:
            outcome.items.update(item_failures(result(), request.doc_ids))
        except StoreError as exc:
            outcome.request_errors.append((request.doc_ids, exc))

    def _send_one(self, request: BulkRequest) -> Mapping[str, Any]:
        body = request.body()
        headers = {"content-type": "application/x-ndjson"}
        if self.gzip:
            compressor = zlib.compressobj(1, zlib.DEFLATED, 31)  # gzip container, fastest level
            body = compressor.compress(body) + compressor.flush()
            headers["content-encoding"] = "gzip"
        with mapped_errors(self.where, f"bulk upsert of {len(request.doc_ids)} documents"):
            response = self.client.transport.perform_request(
                "POST", f"/{self.index}/_bulk", params=self.params, body=body, headers=headers,
            )
        return response  # type: ignore[no-any-return]  # opensearch-py's transport returns Any


def raise_for_outcome(outcome: BulkOutcome, total: int, where: str) -> None:
    """The batch's error, if any (see the module docstring for which)."""
    permanent = [(ids, err) for ids, err in outcome.request_errors if not err.transient]
    failures = {doc: f"[{status}] {reason}" for doc, (status, reason) in outcome.items.items()}
    if permanent:
        ids, error = permanent[0]
        if "HTTP 413" in str(error):  # too large for the cluster: name the documents, the pipeline can isolate them
            failures.update({doc: str(error) for ids_, err in permanent for doc in ids_})
        else:
            raise error
    transient = [err for _, err in outcome.request_errors if err.transient]
    if transient:  # some documents may be unwritten without being named: the whole batch is retried
        raise TransientStoreError(
            f"{where}: {len(transient)} bulk requests failed transiently ({transient[0]}); retrying the batch"
        )
    if not failures:
        return
    if not permanent and all(status in TRANSIENT_STATUS for status, _ in outcome.items.values()):
        statuses = "/".join(str(s) for s in sorted({status for status, _ in outcome.items.values()}))
        raise TransientStoreError(f"{where}: {len(failures)} of {total} documents failed transiently (HTTP {statuses}); retrying the batch")
    raise RejectedDocumentsError(failures, total=total, others_written=True, store=where)
