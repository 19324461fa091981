"""Upsert requests sized by bytes, so that no request is larger than a Qdrant server takes.

A Qdrant server refuses a REST request body larger than its `service.max_request_size_mb` (32 MiB by
default) with HTTP 400 "JSON payload (N bytes) is larger than allowed"; it does not report that limit
through its API, so the store is told it (`QdrantConfig.max_request_mb`). Requests over gRPC are held
to the same size, so that what is stored does not depend on the transport.

Each point's size is estimated from above, cheaply: its payload as ASCII-escaped JSON (never smaller
than the UTF-8 JSON qdrant-client sends, nor than the protobuf strings of gRPC) plus a bound per sparse
index/value and per dense value. A batch is split into consecutive requests of at most the budget
(the limit less `MARGIN` for the request's envelope and the gRPC encoding); a point whose estimate
alone is over the budget cannot be sent in any request and is refused. The embedded engine and local
mode take points of any size (checked with a 40 MB payload): nothing is split or refused there.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from splade_connectors.qdrant.engine import PointData

MIB = 1024 * 1024
MARGIN = 0.1  # share of the limit kept free: the request envelope, gRPC's per-value framing
POINT_OVERHEAD = 512  # id, vector names, keys and brackets of one point
SPARSE_ENTRY_BYTES = 40  # an index (<= 10 digits) and a float as JSON (<= 24 characters) with their separators
DENSE_VALUE_BYTES = 28  # a float as JSON with its separator


def request_budget(max_request_mb: int) -> int:
    """The largest estimated size of one upsert request for a server limit of `max_request_mb` MiB."""
    return int(max_request_mb * MIB * (1 - MARGIN))


def payload_bytes(point: PointData) -> int:
    """The length of the point's payload as ASCII JSON (one byte per character, escapes included)."""
    return len(json.dumps(point.payload, default=str))


def request_bytes(point: PointData) -> int:
    """An upper bound of the bytes this point takes in an upsert request (REST JSON or gRPC)."""
    dense = len(point.dense) if point.dense is not None else 0
    return POINT_OVERHEAD + payload_bytes(point) + SPARSE_ENTRY_BYTES * point.sparse.nnz + DENSE_VALUE_BYTES * dense


def plan_requests(sizes: Sequence[int], *, budget: int, parts: int = 1) -> list[range]:
    """Consecutive ranges of points, each estimated at most `budget` bytes (every size must be within it).

    With `parts > 1` (parallel requests) the batch is cut into requests of about `total / parts`
    bytes, so each writer has work, and never more than `budget`.
    """
    if any(size > budget for size in sizes):
        raise ValueError("a point is larger than the request budget")
    target = min(budget, max(1, -(-sum(sizes) // max(1, parts))))
    ranges: list[range] = []
    start, size = 0, 0
    for i, point_size in enumerate(sizes):
        if i > start and (size >= target or size + point_size > budget):
            ranges.append(range(start, i))
            start, size = i, 0
        size += point_size
    if start < len(sizes):
        ranges.append(range(start, len(sizes)))
    return ranges


def too_large_reason(size: int, max_request_mb: int) -> str:
    """Why a point of `size` estimated bytes is refused (the message names the setting that raises the limit)."""
    return (
        f"too large for one request to the server: about {size / MIB:.1f} MiB as a point, over the request limit of "
        f"{max_request_mb} MiB less a {MARGIN:.0%} margin (the server's service.max_request_size_mb; raise both it and "
        "QdrantConfig.max_request_mb / --qdrant-max-request-mb to store it)"
    )
