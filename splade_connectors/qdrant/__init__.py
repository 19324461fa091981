"""Qdrant adapter: one `QdrantStore` on every engine (server, embedded Qdrant engine, qdrant-client local mode).

`config` (where and how), `engine` (the internal engine interface) with `client_engine` (server,
local mode) and `edge_engine` (the embedded engine), `collection` (layout checks), `errors` (the
one error mapping), `filters`, `hybrid` (candidate lists and fusion), `store` (the `SparseStore`).
"""

from __future__ import annotations

from splade_connectors.qdrant.config import QdrantConfig, connect
from splade_connectors.qdrant.errors import translate
from splade_connectors.qdrant.filters import build_filter
from splade_connectors.qdrant.store import QdrantStore

__all__ = [
    "QdrantConfig",
    "QdrantStore",
    "build_filter",
    "connect",
    "translate",
]
