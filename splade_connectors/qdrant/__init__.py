"""Qdrant adapter: config and connection, collection checks, the `SparseStore`, hybrid search, explain."""

from __future__ import annotations

from splade_connectors.qdrant.collection import ensure_collection
from splade_connectors.qdrant.config import QdrantConfig, connect
from splade_connectors.qdrant.errors import is_transient
from splade_connectors.qdrant.filters import build_filter
from splade_connectors.qdrant.hybrid import DEFAULT_RRF_K, hybrid_search
from splade_connectors.qdrant.store import QdrantStore

__all__ = [
    "DEFAULT_RRF_K",
    "QdrantConfig",
    "QdrantStore",
    "build_filter",
    "connect",
    "ensure_collection",
    "hybrid_search",
    "is_transient",
]
