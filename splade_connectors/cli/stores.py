"""Store options shared by `ingest` and `search`, and opening the chosen store.

Each store adds its option group in `add_store_options` and its branch in `store_config_from_args`;
the store itself is built by the registry (`splade_connectors.registry`), as everywhere else.
Qdrant: `--qdrant-url` (server; API key from `--qdrant-api-key-env`, default `QDRANT_API_KEY`, so it
never appears in shell history or process lists) or `--qdrant-path` (embedded, on disk;
default ./qdrant_data). OpenSearch: `--opensearch-url` (default $OPENSEARCH_URL, else http://localhost:9200),
`--opensearch-user` (default $OPENSEARCH_USERNAME), password from $OPENSEARCH_PASSWORD (or
`--opensearch-password`, which shows in process lists), `--no-verify-certs`, `--index` (default: --collection),
`--two-phase [SPEC]` (two-phase queries, see `splade_connectors.opensearch.two_phase`), `--opensearch-shards`.
"""

from __future__ import annotations

import argparse
import os

from splade_connectors.registry import STORE_KINDS, open_store, store_config
from splade_connectors.store import SparseStore, StoreConfigBase
from trainer.encoder import SpladeEncoder

DEFAULT_QDRANT_PATH = "./qdrant_data"


def add_store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", choices=STORE_KINDS, default="qdrant", help="where the vectors live (default: qdrant)")
    parser.add_argument("--collection", default="splade", help="collection / index name (default: splade)")
    qdrant = parser.add_argument_group("qdrant")
    where = qdrant.add_mutually_exclusive_group()
    where.add_argument("--qdrant-url", default=None, help="Qdrant server URL (default: $QDRANT_URL, else embedded --qdrant-path)")
    where.add_argument("--qdrant-path", default=None, help=f"embedded Qdrant folder (default: {DEFAULT_QDRANT_PATH})")
    qdrant.add_argument("--qdrant-api-key-env", default="QDRANT_API_KEY", metavar="VAR", help="environment variable holding the API key")
    qdrant.add_argument("--sparse-name", default="splade", help="name of the sparse vector (default: splade)")
    qdrant.add_argument("--idf", action="store_true", help="create the collection with Qdrant's IDF modifier (default: plain dot product)")
    qdrant.add_argument("--on-disk", action="store_true", help="keep the sparse index on disk (server)")
    qdrant.add_argument("--qdrant-timeout", type=int, default=60, help="request timeout, seconds (server)")
    qdrant.add_argument("--prefer-grpc", action="store_true", help="talk gRPC to the server")
    opensearch = parser.add_argument_group("opensearch")
    opensearch.add_argument("--opensearch-url", default=None, help="OpenSearch URL (default: $OPENSEARCH_URL, else http://localhost:9200)")
    opensearch.add_argument("--opensearch-user", default=None, help="basic-auth user (default: $OPENSEARCH_USERNAME)")
    opensearch.add_argument("--opensearch-password", default=None, help="basic-auth password (prefer $OPENSEARCH_PASSWORD: arguments show in process lists)")
    opensearch.add_argument("--no-verify-certs", action="store_true", help="do not verify TLS certificates (self-signed clusters)")
    opensearch.add_argument("--ca-certs", default=None, help="CA bundle for TLS verification")
    opensearch.add_argument("--index", default=None, help="OpenSearch index name (default: --collection)")
    opensearch.add_argument(
        "--two-phase", nargs="?", const="", default=None, metavar="SPEC",
        help="two-phase SPLADE queries: score with the heaviest terms, rescore the top candidates with the rest "
        "(SPEC: ratio=R or count=N, optional expansion=E; bare flag: ratio=0.4,expansion=5)",
    )
    opensearch.add_argument("--opensearch-shards", type=int, default=1, metavar="N", help="primary shards of a new index (default: 1)")


def store_config_from_args(args: argparse.Namespace) -> StoreConfigBase:
    """The store config the options name (validated: bad values are one `ConfigError`)."""
    if args.store == "qdrant":
        url = args.qdrant_url or (None if args.qdrant_path else os.environ.get("QDRANT_URL") or None)
        path = None if url else (args.qdrant_path or DEFAULT_QDRANT_PATH)
        api_key = (os.environ.get(args.qdrant_api_key_env) or None) if url else None
        return store_config(
            "qdrant", url=url, path=path, api_key=api_key, collection=args.collection, sparse_name=args.sparse_name,
            idf=args.idf, on_disk=args.on_disk, timeout=args.qdrant_timeout, prefer_grpc=args.prefer_grpc,
        )
    password = args.opensearch_password or os.environ.get("OPENSEARCH_PASSWORD") or None
    return store_config(
        args.store,
        hosts=[args.opensearch_url or os.environ.get("OPENSEARCH_URL") or "http://localhost:9200"],
        username=args.opensearch_user or os.environ.get("OPENSEARCH_USERNAME") or None,
        password=password, verify_certs=not args.no_verify_certs, ca_certs=args.ca_certs,
        index=args.index or args.collection, two_phase=args.two_phase, shards=args.opensearch_shards,
    )


def open_store_from_args(args: argparse.Namespace, encoder: SpladeEncoder | None = None, *, create: bool = True) -> SparseStore:
    """The store the options name, opened: created if missing (`create`), else `NotFoundError`."""
    vocabulary = encoder.model.id_to_token() if encoder is not None else None
    return open_store(store_config_from_args(args), vocabulary=vocabulary, create=create)
