"""Connection and index settings for OpenSearch, and the client factory.

The password is a `SecretStr`: it never appears in `repr`, `str`, logs or `model_dump()` output.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from splade_connectors.errors import ConfigError, mask_url
from splade_connectors.store import StoreConfigBase
from splade_connectors.two_phase import TwoPhase, coerce_two_phase
from splade_connectors.urls import parse_store_url

if TYPE_CHECKING:  # pragma: no cover
    from opensearchpy import AsyncOpenSearch, OpenSearch

logger = logging.getLogger(__name__)


class OpenSearchConfig(StoreConfigBase):
    """Where the cluster is, how to authenticate, and how the SPLADE index is laid out."""

    kind: ClassVar[str] = "opensearch"

    hosts: list[str] = Field(default_factory=lambda: ["http://localhost:9200"], min_length=1)
    username: str | None = None
    password: SecretStr | None = None
    verify_certs: bool = True
    ca_certs: Path | None = None
    timeout: float = Field(30.0, gt=0)
    max_retries: int = Field(3, ge=0, description="transport retries on connection errors and 502/503/504")
    index: str = Field("splade", min_length=1)
    shards: int = Field(1, ge=1, description="primary shards of a new index (named explicitly: an existing index must match)")
    replicas: int = Field(1, ge=0, description="copies of each shard beyond the primary (named explicitly: checked on open)")
    wait_for_active_shards: int | Literal["all"] | None = Field(
        None,
        description="shard copies that must be active before index creation and each _bulk write proceed "
        "(None: the server's default, 1 = the primary; 'all': primary and every replica)",
    )
    refresh_interval: str = Field("1s", description="restored after a bulk load")
    ingest_refresh_interval: str = Field("-1", description="during a bulk load (-1: no refresh)")
    ingest_replicas: int = Field(0, ge=0, description="replicas during a bulk load (restored to `replicas` after)")
    load_lease_seconds: float = Field(
        600.0, gt=0, description="a bulk load on another host whose heartbeat is older than this is taken for dead (see load_lease.py)"
    )
    sparse_field: str = "splade"
    codec: Literal["default", "best_compression"] = Field(
        "default", description="stored-fields codec: best_compression makes _source ~30% smaller, fetches slower"
    )
    # writes
    bulk_bytes: int = Field(8_000_000, ge=10_000, description="largest _bulk request body, bytes (before compression)")
    bulk_min_bytes: int = Field(
        256_000, ge=1_000, description="a batch is split into requests of at least this size to feed the parallel writers"
    )
    bulk_writers: int | None = Field(
        None, ge=1, le=64, description="parallel _bulk requests per upsert (None: the cluster's write threads, at most 8)"
    )
    compression: Literal["auto", "gzip", "none"] = Field(
        "auto", description="gzip request bodies; auto: only for hosts that are not loopback (it costs CPU, saves network)"
    )
    merge_after_ingest: int | None = Field(
        None, ge=1, description="force-merge to at most this many segments in finish_ingest (read-mostly indices)"
    )
    # reads
    two_phase: TwoPhase | None = Field(None, description="default two-phase query (None: exact queries)")
    payload_fields: list[str] | None = Field(
        None, description="payload fields search hits carry (None: all but the vector; []: ids and scores only)"
    )
    msearch_size: int | None = Field(
        None, ge=1, description="queries per _msearch request (None: 8 x the cluster's search threads)"
    )

    @model_validator(mode="after")
    def _enough_copies(self) -> OpenSearchConfig:
        """An int `wait_for_active_shards` can be met both in a bulk load (`ingest_replicas`) and after it."""
        wanted = self.wait_for_active_shards
        if isinstance(wanted, int):
            if wanted < 1:
                raise ValueError(f"wait_for_active_shards must be >= 1 or 'all', not {wanted}")
            copies = 1 + min(self.replicas, self.ingest_replicas)
            if wanted > copies:
                raise ValueError(
                    f"wait_for_active_shards {wanted} exceeds the {copies} shard copies an index has "
                    f"(replicas {self.replicas}, ingest_replicas {self.ingest_replicas} during a bulk load): "
                    "raise them or use 'all'"
                )
        return self

    @field_validator("two_phase", mode="before")
    @classmethod
    def _two_phase_spec(cls, value: Any) -> Any:
        return coerce_two_phase(value)

    @field_validator("hosts", mode="before")
    @classmethod
    def _one_url(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="before")
    @classmethod
    def _credentials_out_of_urls(cls, data: Any) -> Any:
        """`http://user:pass@host` -> host without credentials + username/password (never kept in a URL).

        Every host URL is parsed strictly (`splade_connectors.urls`): a malformed one, e.g. a password with an
        unencoded `/`, is a `ConfigError` naming the problem, credentials masked.
        """
        if not isinstance(data, dict) or data.get("hosts") is None:
            return data
        hosts = [data["hosts"]] if isinstance(data["hosts"], str) else list(data["hosts"])
        clean = []
        for host in hosts:
            if not isinstance(host, str):
                clean.append(host)  # pydantic refuses it
                continue
            parsed = parse_store_url(host, what="OpenSearch host URL")
            if parsed.username and not data.get("username"):
                data = {**data, "username": parsed.username}
            if parsed.password and not data.get("password"):
                data = {**data, "password": parsed.password}
            clean.append(parsed.url)
        return {**data, "hosts": clean}

    @field_validator("index")
    @classmethod
    def _index_name(cls, value: str) -> str:
        if value != value.lower() or value.startswith(("_", "-", "+")) or any(c in value for c in ' ,"*\\/<>|?#:'):
            raise ValueError(f"invalid OpenSearch index name {value!r}")
        return value

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> OpenSearchConfig:
        return cls(hosts=[url], **kwargs)

    @property
    def collection_name(self) -> str:
        return self.index

    def with_collection(self, name: str) -> OpenSearchConfig:
        return self.model_copy(update={"index": name})

    def location(self) -> str:
        """The hosts, with any URL credentials masked."""
        return ", ".join(mask_url(h) for h in self.hosts)

    def describe(self) -> str:
        """Safe one-liner for messages and logs (no credentials)."""
        who = f" as {self.username}" if self.username else ""
        return f"opensearch index {self.index!r} ({self.location()}{who})"

    def secrets(self) -> list[str]:
        return [self.password.get_secret_value()] if self.password else []


def connect(config: OpenSearchConfig) -> OpenSearch:
    """An opensearch-py client for `config` (TLS when a host URL is https)."""
    from opensearchpy import OpenSearch

    logger.debug("connecting to %s", config.describe())
    return OpenSearch(
        **_client_options(config),
        pool_maxsize=max(10, (config.bulk_writers or 8) + 2),  # one pooled connection per parallel request
    )


def connect_async(config: OpenSearchConfig) -> AsyncOpenSearch:
    """opensearch-py's async client for `config` (same options as `connect`), for async searches.

    It needs aiohttp (`pip install 'splade-connectors[async]'`); without it, a `ConfigError` says so.
    """
    if importlib.util.find_spec("aiohttp") is None:  # opensearch-py's async transport runs on it
        raise ConfigError("async search on OpenSearch needs the 'aiohttp' package: pip install 'splade-connectors[async]'")
    from opensearchpy import AsyncOpenSearch

    logger.debug("connecting (async) to %s", config.describe())
    return AsyncOpenSearch(**_client_options(config))


def _client_options(config: OpenSearchConfig) -> dict[str, Any]:
    """The client options of a config, shared by the blocking and the async client."""
    auth = None
    if config.username:
        auth = (config.username, config.password.get_secret_value() if config.password else "")
    return {
        "hosts": list(config.hosts),
        "http_auth": auth,
        "use_ssl": any(h.startswith("https://") for h in config.hosts),
        "verify_certs": config.verify_certs,
        "ssl_show_warn": config.verify_certs,
        "ca_certs": str(config.ca_certs) if config.ca_certs else None,
        "timeout": config.timeout,
        "max_retries": config.max_retries,
        "retry_on_timeout": False,
        "http_compress": False,  # bulk bodies are gzipped by the adapter itself (fast level, only where it pays)
    }


def is_loopback(config: OpenSearchConfig) -> bool:
    """Whether every host is on this machine (compression then costs more CPU than it saves)."""
    hosts = [urlsplit(h if "://" in h else f"http://{h}").hostname or "" for h in config.hosts]
    return all(h in ("localhost", "::1") or h.startswith("127.") for h in hosts)
