"""Store options shared by `ingest`, `search`, `eval` and `tune`, and opening the chosen store.

Each store has its option group (`add_qdrant_options`, `add_opensearch_options`) and turns the
parsed options into its config's fields (`qdrant_options`, `opensearch_options`); `ingest` and
`search` add both groups plus `--store`/`--collection` (`add_store_options`), `eval` and `tune` add
the two groups for the throwaway collections they create. The store itself is built by the registry (`splade_connectors.registry`),
as everywhere else. Bad values are refused while parsing or by the config (one `ConfigError` line); a
malformed store URL is refused naming the option or variable it came from (`splade_connectors.urls`).

Qdrant: `--qdrant-url` (server; API key from `--qdrant-api-key-env`, default `QDRANT_API_KEY`, so it
never appears in shell history or process lists) or `--qdrant-path` (the embedded Qdrant engine, on disk;
default ./qdrant_data for ingest/search, a temporary folder for eval; `--qdrant-local-mode` for
qdrant-client's local mode instead); `--qdrant-shards`, `--qdrant-replication-factor`, `--qdrant-write-consistency`
for a new collection on a server (refused with a path). OpenSearch: `--opensearch-url` (default $OPENSEARCH_URL, else
http://localhost:9200; credentials in the URL are moved out of it and never printed; `/?#@%` in them
percent-encoded), `--opensearch-user`
(default $OPENSEARCH_USERNAME), password from $OPENSEARCH_PASSWORD (or `--opensearch-password`, which
shows in process lists), `--no-verify-certs`, `--index` (default: --collection), `--opensearch-shards`,
`--opensearch-replicas`, `--opensearch-ingest-replicas`, `--opensearch-wait-for-active-shards` (named ones are
checked against an existing index).
Both stores: `--two-phase [SPEC]` (two-phase queries, see `splade_connectors.two_phase`).
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from splade_connectors.cli.values import int_at_least, non_negative_float, positive_int
from splade_connectors.errors import ConfigError
from splade_connectors.registry import STORE_KINDS, open_store, store_config
from splade_connectors.store import SparseStore, StoreConfigBase
from splade_connectors.urls import parse_store_url

if TYPE_CHECKING:
    from splade_connectors.encoding import QueryEncoder

DEFAULT_QDRANT_PATH = "./qdrant_data"
DEFAULT_OPENSEARCH_URL = "http://localhost:9200"


def add_store_options(parser: argparse.ArgumentParser) -> None:
    """`--store`, `--collection` and both stores' option groups (ingest, search)."""
    parser.add_argument("--store", choices=STORE_KINDS, default="qdrant", help="where the vectors live (default: qdrant)")
    parser.add_argument("--collection", default="splade", help="collection / index name (default: splade)")
    add_qdrant_options(parser, path_default=f"default: {DEFAULT_QDRANT_PATH}")
    add_opensearch_options(parser, with_index=True)
    add_query_options(parser)


def add_query_options(parser: argparse.ArgumentParser) -> None:
    """Query options both stores take (`--two-phase`); every command with store options adds them."""
    parser.add_argument_group("queries (both stores)").add_argument(
        "--two-phase", nargs="?", const="", default=None, metavar="SPEC",
        help="two-phase SPLADE queries: find candidates with the heaviest terms, score them with the whole query "
        "(SPEC: ratio=R or count=N, optional expansion=E; bare flag: ratio=0.4,expansion=5)",
    )


def add_qdrant_options(parser: argparse.ArgumentParser, *, path_default: str = "default: in-memory") -> None:
    qdrant = parser.add_argument_group("qdrant")
    where = qdrant.add_mutually_exclusive_group()
    where.add_argument("--qdrant-url", default=None, help="Qdrant server URL (default: $QDRANT_URL, else embedded --qdrant-path)")
    where.add_argument("--qdrant-path", default=None, help=f"embedded Qdrant folder ({path_default})")
    qdrant.add_argument("--qdrant-api-key-env", default="QDRANT_API_KEY", metavar="VAR", help="environment variable holding the API key")
    qdrant.add_argument("--sparse-name", default="splade", help="name of the sparse vector (default: splade)")
    qdrant.add_argument("--idf", action="store_true", help="create the collection with Qdrant's IDF modifier (default: plain dot product)")
    qdrant.add_argument("--on-disk", action="store_true", default=None, help="keep the sparse index on disk")
    qdrant.add_argument("--sparse-datatype", choices=("float32", "float16", "uint8"), default=None,
                        help="sparse index datatype when creating (default float32)")
    qdrant.add_argument("--payload-index", action="append", default=[], metavar="FIELD[:TYPE]",
                        help="index a metadata field for filtering at creation (TYPE keyword|integer|float|bool|text|datetime|uuid, "
                             "default keyword; repeatable); doc_id is always indexed")
    qdrant.add_argument("--qdrant-local-mode", action="store_true", help="qdrant-client's pure-Python local mode instead of the embedded engine")
    qdrant.add_argument("--qdrant-timeout", type=positive_int, default=60, help="request timeout, seconds (server)")
    qdrant.add_argument("--prefer-grpc", action="store_true", help="talk gRPC to the server")
    qdrant.add_argument("--qdrant-grpc-port", type=positive_int, default=None, help="server gRPC port (default 6334)")
    qdrant.add_argument("--qdrant-free-reserve-mb", type=non_negative_float, default=64.0, metavar="MB",
                        help="embedded engine: free space its folder's disk must keep; writes that would go below are refused (default 64; 0: no check)")
    qdrant.add_argument("--upload-parallel", type=positive_int, default=1, help="concurrent upsert requests per batch (server)")
    qdrant.add_argument("--qdrant-shards", type=positive_int, default=None, metavar="N",
                        help="shards of a new collection (server or cluster; default: the server's, 1)")
    qdrant.add_argument("--qdrant-replication-factor", type=positive_int, default=None, metavar="N",
                        help="copies of each shard on a cluster, the first included (default: the server's, 1)")
    qdrant.add_argument("--qdrant-write-consistency", type=positive_int, default=None, metavar="N",
                        help="copies that must acknowledge each write (default: the server's, 1)")
    qdrant.add_argument("--qdrant-max-request-mb", type=positive_int, default=32, metavar="MB",
                        help="the server's request size limit, MiB (its service.max_request_size_mb; default 32): "
                             "upserts are split under it, a larger document is refused and reported")


def add_opensearch_options(parser: argparse.ArgumentParser, *, with_index: bool = False) -> None:
    opensearch = parser.add_argument_group("opensearch")
    opensearch.add_argument(
        "--opensearch-url", default=None, help=f"OpenSearch URL (default: $OPENSEARCH_URL, else {DEFAULT_OPENSEARCH_URL})"
    )
    opensearch.add_argument("--opensearch-user", default=None, help="basic-auth user (default: $OPENSEARCH_USERNAME)")
    opensearch.add_argument("--opensearch-password", default=None, help="basic-auth password (prefer $OPENSEARCH_PASSWORD: arguments show in process lists)")
    opensearch.add_argument("--no-verify-certs", action="store_true", help="do not verify TLS certificates (self-signed clusters)")
    opensearch.add_argument("--ca-certs", default=None, help="CA bundle for TLS verification")
    if with_index:
        opensearch.add_argument("--index", default=None, help="OpenSearch index name (default: --collection)")
    opensearch.add_argument("--opensearch-shards", type=positive_int, default=None, metavar="N",
                            help="primary shards of a new index (default: 1; named: an existing index must have as many)")
    opensearch.add_argument("--opensearch-replicas", type=int_at_least(0), default=None, metavar="N",
                            help="replicas of each shard (default: 1; named: an existing index must have as many)")
    opensearch.add_argument("--opensearch-ingest-replicas", type=int_at_least(0), default=None, metavar="N",
                            help="replicas during a bulk load (default: 0, rebuilt after it; on a cluster, as many as "
                            "--opensearch-replicas keeps every write on two nodes)")
    opensearch.add_argument("--opensearch-wait-for-active-shards", type=_active_shards, default=None, metavar="N|all",
                            help="shard copies that must be active before index creation and each bulk write (default: the server's, 1)")


def _active_shards(text: str) -> int | str:
    """`--opensearch-wait-for-active-shards`: a positive integer or `all`."""
    return "all" if text.strip().lower() == "all" else positive_int(text)


def qdrant_options(args: argparse.Namespace, *, default_path: str | None) -> dict[str, Any]:
    """`QdrantConfig` fields from the Qdrant options (server, else embedded at `default_path` or in memory)."""
    url = args.qdrant_url or (None if args.qdrant_path else os.environ.get("QDRANT_URL") or None)
    if url:
        parse_store_url(url, what="--qdrant-url" if args.qdrant_url else "$QDRANT_URL")  # the option named, not a field
    path = None if url else (args.qdrant_path or default_path)
    api_key = (os.environ.get(args.qdrant_api_key_env) or None) if url else None
    return {
        "url": url, "path": path, "api_key": api_key, "sparse_name": args.sparse_name, "idf": args.idf,
        "on_disk": args.on_disk, "timeout": args.qdrant_timeout, "prefer_grpc": args.prefer_grpc,
        "local_mode": args.qdrant_local_mode, "datatype": args.sparse_datatype,
        "payload_indexes": _payload_indexes(args.payload_index), "grpc_port": args.qdrant_grpc_port,
        "upload_parallel": args.upload_parallel, "two_phase": args.two_phase, "shard_number": args.qdrant_shards,
        "replication_factor": args.qdrant_replication_factor, "write_consistency_factor": args.qdrant_write_consistency,
        "max_request_mb": args.qdrant_max_request_mb, "embedded_free_reserve_mb": args.qdrant_free_reserve_mb,
    }


def _payload_indexes(specs: list[str]) -> dict[str, str]:
    """`--payload-index topic` / `--payload-index year:integer` -> {field: type}."""
    out: dict[str, str] = {}
    for spec in specs:
        field, _, kind = spec.partition(":")
        if not field:
            raise ConfigError(f"--payload-index {spec!r}: expected FIELD or FIELD:TYPE")
        out[field] = kind or "keyword"
    return out


def opensearch_url(args: argparse.Namespace) -> str | None:
    """The OpenSearch URL given by option or environment (None when neither); a malformed one is a `ConfigError`."""
    url = args.opensearch_url or os.environ.get("OPENSEARCH_URL") or None
    if url:
        parse_store_url(url, what="--opensearch-url" if args.opensearch_url else "$OPENSEARCH_URL")
    return url


def opensearch_options(args: argparse.Namespace) -> dict[str, Any]:
    """`OpenSearchConfig` fields from the OpenSearch options (URL credentials are moved out by the config)."""
    return {
        "hosts": [opensearch_url(args) or DEFAULT_OPENSEARCH_URL],
        "username": args.opensearch_user or os.environ.get("OPENSEARCH_USERNAME") or None,
        "password": args.opensearch_password or os.environ.get("OPENSEARCH_PASSWORD") or None,
        "verify_certs": not args.no_verify_certs,
        "ca_certs": args.ca_certs,
        "two_phase": args.two_phase,
        **{
            field: value
            for field, value in (
                ("shards", args.opensearch_shards), ("replicas", args.opensearch_replicas),
                ("ingest_replicas", args.opensearch_ingest_replicas),
                ("wait_for_active_shards", args.opensearch_wait_for_active_shards),
            )
            if value is not None  # unnamed: the config's default, and any existing index is fine
        },
    }


def store_config_from_args(args: argparse.Namespace) -> StoreConfigBase:
    """The store config the options name (validated: bad values are one `ConfigError`)."""
    if args.store == "qdrant":
        return store_config("qdrant", collection=args.collection, **qdrant_options(args, default_path=DEFAULT_QDRANT_PATH))
    return store_config(args.store, index=args.index or args.collection, **opensearch_options(args))


def open_store_from_args(
    args: argparse.Namespace,
    encoder: QueryEncoder | None = None,
    *,
    create: bool = True,
    config: StoreConfigBase | None = None,
) -> SparseStore:
    """The store the options (or an already validated `config`) name, opened: created if missing (`create`), else `NotFoundError`."""
    vocabulary = encoder.model.id_to_token() if encoder is not None else None
    return open_store(config or store_config_from_args(args), vocabulary=vocabulary, create=create)
