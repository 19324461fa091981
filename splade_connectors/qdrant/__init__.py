"""Qdrant adapter: config and connection, collection checks, the `SparseStore`, hybrid search, explain."""

from __future__ import annotations

from splade_connectors.qdrant.collection import ensure_collection
from splade_connectors.qdrant.config import QdrantConfig, connect
from splade_connectors.qdrant.errors import translate
from splade_connectors.qdrant.filters import build_filter
from splade_connectors.qdrant.store import QdrantStore

__all__ = [
    "QdrantConfig",
    "QdrantStore",
    "build_filter",
    "connect",
    "ensure_collection",
    "translate",
]
