"""`splade-connectors tune`: choose a pruning setting by measuring it.

Encodes a BEIR / NanoBEIR dataset once, then for each pruning setting (OpenSearch's rules `top_k`,
`max_ratio`, `alpha_mass`, `abs_value`, applied to document and/or query vectors) measures nDCG@10 and
recall@100 against the unpruned vectors, mean active dims, and the index size in real stores (a fresh
collection/index per setting, size as the store reports it). Recommends the smallest setting within
`--max-loss` (relative nDCG@10, default 0.5%) and writes tune.json, tune.md and tune.png.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import tempfile
from collections.abc import Iterator
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
from splade_connectors.registry import STORE_KINDS

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("tune", help="sweep pruning settings: quality against index size, with a recommendation",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataset_options(parser, several=False)

    sweep = parser.add_argument_group("sweep")
    sweep.add_argument("--settings", default=None, metavar="RULE=VALUE,...",
                       help="settings to measure, e.g. top_k=64,max_ratio=0.1 (default: a grid over the four rules)")
    sweep.add_argument("--rules", default=None, help="restrict the default grid to these rules (comma-separated)")
    sweep.add_argument("--apply-to", choices=("documents", "queries", "both"), default="documents",
                       help="prune document vectors, query vectors or both (default: documents)")
    sweep.add_argument("--max-loss", type=float, default=0.005,
                       help="largest relative nDCG@10 loss accepted for the recommendation (default: 0.005 = 0.5%%)")

    stores = parser.add_argument_group("index size")
    stores.add_argument("--stores", default="qdrant",
                        help="stores that measure the index size: qdrant, opensearch, both comma-separated, or none")
    stores.add_argument("--opensearch-native", action="store_true",
                        help="start a throwaway native OpenSearch for the run (needs a JDK; see opensearch-server)")
    add_qdrant_options(parser, path_default="default: a temporary folder, removed afterwards")
    add_opensearch_options(parser)
    add_query_options(parser)

    out = parser.add_argument_group("output")
    out.add_argument("--output-dir", type=Path, default=Path("tune-results"), help="where tune.json/.md/.png go (default: ./tune-results)")
    out.add_argument("--json", action="store_true", help="print the JSON report on stdout (instead of the table)")
    out.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_model_options(parser)
    parser.set_defaults(func=run)


def _store_names(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip() and s.strip() != "none"]
    unknown = [n for n in names if n not in STORE_KINDS]
    if unknown:
        raise ConfigError(f"--stores: unknown store {unknown[0]!r}; choose from {', '.join(STORE_KINDS)} or none")
    return names


@contextlib.contextmanager
def _store_factories(args: argparse.Namespace, names: list[str]) -> Iterator[dict[str, Any]]:
    """Store factories for the sizes, with the temp folder / native server they need, cleaned up afterwards."""
    from splade_connectors.eval.backends import store_factory

    factories: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        if "qdrant" in names:
            qdrant = qdrant_options(args, default_path=None)
            if qdrant["url"] is None and qdrant["path"] is None:  # embedded on disk: the only embedded mode with a size on disk
                qdrant["path"] = stack.enter_context(tempfile.TemporaryDirectory(prefix="splade-tune-qdrant-"))
            factories["qdrant"] = store_factory("qdrant", qdrant)
        if "opensearch" in names:
            url = opensearch_url(args)
            if args.opensearch_native:
                from splade_connectors.live.opensearch_native import NativeOpenSearch

                url = stack.enter_context(NativeOpenSearch()).url
            if not url:
                raise ConfigError("the opensearch store needs --opensearch-url (or $OPENSEARCH_URL) or --opensearch-native")
            factories["opensearch"] = store_factory("opensearch", {**opensearch_options(args), "hosts": [url]})
        yield factories


def run(args: argparse.Namespace) -> int:
    from splade_connectors.eval.encoding import encode_dataset
    from splade_connectors.eval.tune import default_settings, markdown_table, parse_settings, tune, write_all

    if not 0 <= args.max_loss < 1:
        raise ConfigError(f"--max-loss must be in [0, 1) (relative nDCG@10 loss), got {args.max_loss}")
    names = _store_names(args.stores)
    datasets = load_datasets(args)
    if len(datasets) != 1:
        raise ConfigError(f"tune measures one dataset at a time; got {len(datasets)}")
    dataset = datasets[0]
    encoder = load_encoder(args)
    show = not args.no_progress
    with progress_bar(len(dataset.corpus) + len(dataset.eval_query_ids()), f"{dataset.name}: encode", unit="text", enabled=show) as bar:
        data = encode_dataset(encoder, dataset, progress=bar.update)
    if args.settings:
        settings = parse_settings(args.settings, args.apply_to)
    else:
        rules = [r.strip() for r in args.rules.split(",") if r.strip()] if args.rules else None
        settings = default_settings(data, args.apply_to, *([rules] if rules else []))
    logger.info("measuring %d settings on %s (sizes: %s)", len(settings), dataset.name, ", ".join(names) or "none")
    with _store_factories(args, names) as factories, progress_bar(len(settings) + 1, "tune", unit="setting", enabled=show) as bar:

        def advance(label: str) -> None:
            bar.set_postfix_str(label)
            bar.update(1)

        report = tune(data, settings, stores=factories, max_loss=args.max_loss, apply_to=args.apply_to, progress=advance)
    write_all(report, args.output_dir)
    if args.json:
        print_json(report.to_dict())
    else:
        print(markdown_table(report), end="")
        print(f"\nwritten to {args.output_dir}/tune.json, tune.md, tune.png")
    return 0
