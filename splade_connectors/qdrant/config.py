"""Where the Qdrant collection lives and how it is configured, and opening a client for it.

One of `url` (a server), `path` (embedded local mode persisted to disk) or neither (embedded,
in-memory: the default, good for tests and demos). The API key is a `SecretStr`: it never shows
up in reprs, logs or `model_dump()`.
"""

from __future__ import annotations

import logging
from typing import ClassVar, Literal

from pydantic import Field, SecretStr, model_validator
from qdrant_client import QdrantClient

from splade_connectors.errors import mask_url
from splade_connectors.store import StoreConfigBase

logger = logging.getLogger(__name__)

DenseDistance = Literal["Cosine", "Dot", "Euclid", "Manhattan"]


class QdrantConfig(StoreConfigBase):
    """A Qdrant collection for SPLADE vectors (named sparse vector, optional named dense vector)."""

    kind: ClassVar[str] = "qdrant"

    url: str | None = Field(None, description="server URL, e.g. http://localhost:6333")
    path: str | None = Field(None, description="embedded local mode persisted to this folder")
    api_key: SecretStr | None = None
    collection: str = Field("splade", min_length=1)
    sparse_name: str = Field("splade", min_length=1, description="name of the sparse vector")
    idf: bool = Field(False, description="Qdrant's IDF modifier; off = plain dot product (SPLADE's score)")
    on_disk: bool = Field(False, description="keep the sparse index on disk (server only)")
    dense_name: str | None = Field(None, description="name of an optional dense vector for hybrid search")
    dense_size: int | None = Field(None, ge=1)
    dense_distance: DenseDistance = "Cosine"
    timeout: int = Field(60, ge=1, description="request timeout in seconds (server only)")
    prefer_grpc: bool = False

    @model_validator(mode="after")
    def _check(self) -> QdrantConfig:
        if self.url and self.path:
            raise ValueError("give either url or path, not both")
        if (self.dense_name is None) != (self.dense_size is None):
            raise ValueError("dense_name and dense_size go together")
        if self.dense_name is not None and self.dense_name == self.sparse_name:
            raise ValueError("dense and sparse vectors need different names")
        return self

    @property
    def mode(self) -> Literal["server", "path", "memory"]:
        return "server" if self.url else "path" if self.path else "memory"

    @property
    def embedded(self) -> bool:
        """Whether this is qdrant-client local mode (a pure-Python scan, not the Qdrant engine)."""
        return self.mode != "server"

    @property
    def collection_name(self) -> str:
        return self.collection

    def with_collection(self, name: str) -> QdrantConfig:
        return self.model_copy(update={"collection": name})

    def location(self) -> str:
        """Where the collection lives, without secrets."""
        return {"server": mask_url(self.url or ""), "path": f"path {self.path}", "memory": "in-memory"}[self.mode]

    def describe(self) -> str:
        """Where the collection is, without secrets."""
        return f"qdrant collection {self.collection!r} ({self.location()})"

    def secrets(self) -> list[str]:
        return [self.api_key.get_secret_value()] if self.api_key else []


def connect(config: QdrantConfig) -> QdrantClient:
    """A client for the configured location.

    Local path mode opens SQLite without the same-thread check because the ingestion pipeline
    writes from its writer thread; the pipeline never writes from two threads at once.
    """
    logger.debug("connecting to %s", config.describe())  # describe() never holds the API key
    if config.url:
        return QdrantClient(
            url=config.url,
            api_key=config.api_key.get_secret_value() if config.api_key else None,
            timeout=config.timeout,
            prefer_grpc=config.prefer_grpc,
        )
    if config.path:
        return QdrantClient(path=config.path, force_disable_check_same_thread=True)
    return QdrantClient(location=":memory:")
