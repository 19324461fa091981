"""`splade-connectors qdrant-server`: run the native Qdrant server binary (no Docker needed)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "qdrant-server",
        help="run a real Qdrant server from the native binary ($QDRANT_BINARY or ../shared/qdrant) for tests and local use",
        add_help=False,
    )
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="fetch | run | start --pidfile F | stop --pidfile F")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from splade_connectors.live.qdrant_server import main

    return main(args.rest or ["--help"])
