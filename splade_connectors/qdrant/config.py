"""Where the Qdrant collection lives and how it is configured; the location picks the engine.

- `url`: a Qdrant server, through qdrant-client (REST, or gRPC with `prefer_grpc`).
- `path`: the embedded Qdrant engine (qdrant-edge, in-process) persisted to that folder; each
  collection is a shard in `<path>/collections/<name>/`.
- neither: the embedded engine in a temporary folder, deleted on close ("in-memory"; the default,
  for demos and tests).
- `shard_number`, `replication_factor`, `write_consistency_factor`: how a server (or a Qdrant cluster)
  spreads a new collection over its nodes; None leaves the server's default when creating and accepts
  any value when opening. Only a server has shards: the config refuses them with `path` or in memory.
- `local_mode=True` (with `path` or nothing): qdrant-client's pure-Python local mode instead of the
  engine. Kept for folders written by earlier versions (`<path>/collection/<name>/storage.sqlite`)
  and for platforms without a qdrant-edge wheel; it is a brute-force scan (~0.6 s per query at 5k
  documents) and ignores payload indexes and the sparse datatype.

The API key is a `SecretStr`: it never shows up in reprs, logs or `model_dump()`.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from qdrant_client import AsyncQdrantClient, QdrantClient

from splade_connectors.errors import ConfigError, mask_one_url, mask_url
from splade_connectors.filters import payload_path
from splade_connectors.store import StoreConfigBase
from splade_connectors.two_phase import TwoPhase, coerce_two_phase
from splade_connectors.urls import parse_store_url

logger = logging.getLogger(__name__)

DenseDistance = Literal["Cosine", "Dot", "Euclid", "Manhattan"]
SparseDatatype = Literal["float32", "float16", "uint8"]
PayloadIndexType = Literal["keyword", "integer", "float", "bool", "text", "datetime", "uuid"]
Backend = Literal["server", "edge", "local"]

class QdrantConfig(StoreConfigBase):
    """A Qdrant collection for SPLADE vectors (named sparse vector, optional named dense vector)."""

    kind: ClassVar[str] = "qdrant"

    url: str | None = Field(None, description="server URL, e.g. http://localhost:6333")
    path: str | None = Field(None, description="embedded store persisted to this folder")
    local_mode: bool = Field(False, description="qdrant-client's pure-Python local mode instead of the embedded engine")
    api_key: SecretStr | None = None
    collection: str = Field("splade", min_length=1, max_length=255)
    sparse_name: str = Field("splade", min_length=1, description="name of the sparse vector")
    idf: bool = Field(False, description="Qdrant's IDF modifier; off = plain dot product (SPLADE's score)")
    datatype: SparseDatatype | None = Field(
        None, description="sparse index datatype (None: float32 when creating, any when opening)"
    )
    on_disk: bool | None = Field(None, description="sparse index on disk (None: in RAM when creating, any when opening)")
    payload_indexes: dict[str, PayloadIndexType] = Field(
        default_factory=dict, description="fields to index for filtering, e.g. {'topic': 'keyword'}; doc_id always is"
    )
    dense_name: str | None = Field(None, description="name of an optional dense vector for hybrid search")
    dense_size: int | None = Field(None, ge=1)
    dense_distance: DenseDistance = "Cosine"
    timeout: int = Field(60, ge=1, description="request timeout in seconds (server)")
    prefer_grpc: bool = Field(False, description="talk gRPC to the server")
    grpc_port: int | None = Field(None, ge=1, le=65535, description="server gRPC port (default 6334)")
    shard_number: int | None = Field(None, ge=1, description="shards of a new collection (server; None: the server's default, 1)")
    replication_factor: int | None = Field(
        None, ge=1, description="copies of each shard on a cluster, the first included (server; None: the server's default, 1)"
    )
    write_consistency_factor: int | None = Field(
        None, ge=1, description="copies that must acknowledge a write (server; None: the server's default, 1)"
    )
    upload_parallel: int = Field(1, ge=1, le=64, description="concurrent upsert requests per written batch (server)")
    max_request_mb: int = Field(
        32, ge=1,
        description="server: the largest request it takes, MiB (its service.max_request_size_mb, 32 by default); "
        "upserts are split to stay under it and a point larger than it is refused (see `qdrant.sizing`)",
    )
    embedded_optimize_every: int | None = Field(
        50_000, ge=1,
        description="embedded engine: optimize and flush after this many upserted points (None: only in "
        "finish_ingest); bounds the in-RAM appendable segment and the WAL during large ingestions",
    )
    two_phase: TwoPhase | None = Field(None, description="default two-phase query (None: exact queries)")

    @field_validator("two_phase", mode="before")
    @classmethod
    def _two_phase_spec(cls, value: Any) -> Any:
        return coerce_two_phase(value)

    @field_validator("url")
    @classmethod
    def _server_url(cls, value: str | None) -> str | None:
        """A well-formed server URL (`splade_connectors.urls`); credentials in it are refused: qdrant-client drops them."""
        if value is None:
            return None
        parsed = parse_store_url(value, what="Qdrant URL")
        if parsed.username is not None or parsed.password is not None:
            raise ConfigError(
                f"Qdrant URL {mask_one_url(value)}: credentials in the URL are not used by the Qdrant client; "
                "give the API key as api_key (CLI: $QDRANT_API_KEY or --qdrant-api-key-env)"
            )
        return parsed.url
    embedded_free_reserve_mb: float = Field(
        64.0, ge=0,
        description="embedded engine: free space (MB) its folder's file system must keep after a write; opens and "
        "writes that would go below are refused (the engine dies with SIGBUS on a full disk); 0 disables the check",
    )

    @field_validator("payload_indexes")
    @classmethod
    def _index_fields(cls, value: dict[str, PayloadIndexType]) -> dict[str, PayloadIndexType]:
        for field in value:
            payload_path(field)  # a ConfigError (a ValueError) for a name that is no field
        return value

    @model_validator(mode="after")
    def _check(self) -> QdrantConfig:
        if self.url and self.path:
            raise ValueError("give either url or path, not both")
        if self.url and self.local_mode:
            raise ValueError("local_mode is an embedded store: it takes a path (or nothing), not a url")
        cluster = {
            name: value for name in ("shard_number", "replication_factor", "write_consistency_factor")
            if (value := getattr(self, name)) is not None
        }
        if cluster and not self.url:
            raise ValueError(
                f"{', '.join(cluster)} only apply to a Qdrant server (url): the embedded engine and local mode hold one shard"
            )
        if self.write_consistency_factor is not None and self.write_consistency_factor > (self.replication_factor or 1):
            raise ValueError(
                f"write_consistency_factor {self.write_consistency_factor} exceeds replication_factor {self.replication_factor or 1}"
            )
        if (self.dense_name is None) != (self.dense_size is None):
            raise ValueError("dense_name and dense_size go together")
        if self.dense_name is not None and self.dense_name == self.sparse_name:
            raise ValueError("dense and sparse vectors need different names")
        return self

    # ---- where -----------------------------------------------------------------------------------------
    @property
    def backend(self) -> Backend:
        """Which engine serves this config: a server, the embedded engine (qdrant-edge) or local mode."""
        return "server" if self.url else "local" if self.local_mode else "edge"

    @property
    def mode(self) -> Literal["server", "path", "memory"]:
        return "server" if self.url else "path" if self.path else "memory"

    @property
    def embedded(self) -> bool:
        """Whether the store runs in this process (embedded engine or local mode)."""
        return self.backend != "server"

    @property
    def in_process(self) -> bool:
        return self.embedded

    @property
    def collection_name(self) -> str:
        return self.collection

    def with_collection(self, name: str) -> QdrantConfig:
        return self.model_copy(update={"collection": name})

    def location(self) -> str:
        """Where the collection lives, without secrets."""
        if self.url:
            return mask_url(self.url)
        engine = "local mode" if self.local_mode else "embedded"
        return f"{engine} {self.path}" if self.path else f"{engine}, in-memory"

    def describe(self) -> str:
        """Where the collection is, without secrets."""
        return f"qdrant collection {self.collection!r} ({self.location()})"

    def secrets(self) -> list[str]:
        return [self.api_key.get_secret_value()] if self.api_key else []

    # ---- what ------------------------------------------------------------------------------------------
    def index_fields(self) -> dict[str, PayloadIndexType]:
        """Payload paths to index at creation: `doc_id` (keyword) plus the configured fields.

        Field names mean what they mean in a filter (`splade_connectors.filters.payload_path`):
        `topic` -> `metadata.topic`, `source.name` -> `metadata.source.name`, `title` as is.
        """
        return {"doc_id": "keyword", **{payload_path(f)[1]: t for f, t in self.payload_indexes.items()}}


def connect(config: QdrantConfig) -> QdrantClient:
    """A qdrant-client for a server config, or for local mode (`:memory:` or the path).

    Local path mode opens SQLite without the same-thread check because the ingestion pipeline
    writes from its writer thread; the pipeline never writes from two threads at once.
    """
    logger.debug("connecting to %s", config.describe())  # describe() never holds the API key
    if config.url:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # qdrant-client's version warning: checked (and logged) by the store
            return QdrantClient(**_server_options(config))
    if config.path:
        return QdrantClient(path=config.path, force_disable_check_same_thread=True)
    return QdrantClient(location=":memory:")


def connect_async(config: QdrantConfig) -> AsyncQdrantClient:
    """qdrant-client's async client for a server config (same options as `connect`), for async searches."""
    if not config.url:
        raise ConfigError(f"{config.describe()}: only a server has an async client")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AsyncQdrantClient(**_server_options(config))


def _server_options(config: QdrantConfig) -> dict[str, Any]:
    """The client options of a server config, shared by the blocking and the async client."""
    options: dict[str, Any] = {
        "url": config.url,
        "api_key": config.api_key.get_secret_value() if config.api_key else None,
        "timeout": config.timeout,
        "prefer_grpc": config.prefer_grpc,
        "check_compatibility": False,
    }
    if config.grpc_port is not None:
        options["grpc_port"] = config.grpc_port
    return options
