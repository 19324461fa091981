"""`splade-connectors eval`: retrieval quality of a model through exact search, Qdrant and OpenSearch."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from splade_connectors.cli.datasets import add_dataset_options, load_datasets
from splade_connectors.cli.model import add_model_options, load_encoder
from splade_connectors.cli.output import print_json, progress_bar
from splade_connectors.cli.stores import (
    add_opensearch_options,
    add_qdrant_options,
    add_query_options,
    opensearch_options,
    opensearch_url,
    qdrant_options,
)
from splade_connectors.errors import ConfigError

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "eval", help="evaluate a model on NanoBEIR / BEIR through exact search, Qdrant and OpenSearch",
        description=(
            "Encode each dataset once, rank it with every backend, report sentence-transformers' metrics "
            "(plus graded nDCG@10) and each backend's difference from exact search."
        ),
    )
    add_dataset_options(parser, several=True)

    backends = parser.add_argument_group("backends")
    backends.add_argument("--backends", default="exact,qdrant,opensearch", help="comma-separated: exact, qdrant, opensearch")
    backends.add_argument("--keep", action="store_true", help="keep the collections/indices created for the run")
    backends.add_argument("--passages", action="store_true",
                          help="store documents as passages (one point per token window) and rank each by its best passage")
    add_qdrant_options(parser, path_default="default: embedded in-memory")
    add_opensearch_options(parser)
    add_query_options(parser)

    out = parser.add_argument_group("output")
    out.add_argument("--output-dir", type=Path, default=None, help="write results.json, results.md, results.png here")
    out.add_argument("--json", action="store_true", help="print the JSON report on stdout (instead of the table)")
    out.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_model_options(parser)
    parser.set_defaults(func=run)


def _backend_options(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Store options per backend, from the same option groups (and parsing) as `ingest` and `search`."""
    opensearch = opensearch_options(args)
    if opensearch_url(args) is None:
        del opensearch["hosts"]  # no default server for evaluation: the backend asks for a URL
    return {"qdrant": qdrant_options(args, default_path=None), "opensearch": opensearch}


class _Bars:
    """One tqdm bar per stage; the previous one is closed when the next starts."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._current: Any = None

    def __call__(self, stage: str, dataset: str, backend: str | None, total: int) -> Any:
        self.close()
        desc = f"{dataset}: encode" if backend is None else f"{dataset}: {backend}"
        self._context = progress_bar(total, desc, unit="text" if backend is None else "query", enabled=self.enabled)
        self._current = self._context.__enter__()
        return self._current.update

    def close(self) -> None:
        if self._current is not None:
            self._context.__exit__(None, None, None)
            self._current = None


def run(args: argparse.Namespace) -> int:
    from splade_connectors.eval.backends import build_backends
    from splade_connectors.eval.report import markdown_table, write_all
    from splade_connectors.eval.runner import evaluate

    names = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not names:
        raise ConfigError("--backends: give at least one of exact, qdrant, opensearch")
    backends = build_backends(names, _backend_options(args), keep=args.keep)  # bad options fail before any work
    datasets = load_datasets(args)
    encoder = load_encoder(args)
    bars = _Bars(enabled=not args.no_progress)
    try:
        report = evaluate(encoder, datasets, backends, progress=bars, passages=args.passages)
    finally:
        bars.close()
    if args.output_dir:
        write_all(report, args.output_dir)
    if args.json:
        print_json(report.to_dict())
    else:
        print(markdown_table(report), end="")
    logger.info("evaluation took %.1f s", report.seconds)
    return 0
