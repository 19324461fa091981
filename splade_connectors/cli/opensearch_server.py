"""`splade-connectors opensearch-server`: fetch and run a native OpenSearch (no Docker needed)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "opensearch-server",
        help="fetch/run a real single-node OpenSearch assembled from Maven Central (for tests and local use)",
        add_help=False,
    )
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="fetch | run | start --pidfile F | stop --pidfile F")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from splade_connectors.errors import StoreError
    from splade_connectors.live.opensearch_native import main

    try:
        return main(args.rest or ["--help"])
    except (RuntimeError, TimeoutError, ValueError) as exc:  # no JDK, download or start failure: one line, like any error
        raise StoreError(f"native OpenSearch: {exc}") from exc
