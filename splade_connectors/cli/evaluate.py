"""`splade-connectors eval`: retrieval quality of a model through exact search, Qdrant and OpenSearch."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from splade_connectors.cli.common import add_model_options, load_encoder, positive_int, print_json, progress_bar
from splade_connectors.cli.stores import (
    add_opensearch_options,
    add_qdrant_options,
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
    source = parser.add_argument_group("datasets")
    source.add_argument("--datasets", default=None, help="comma-separated NanoBEIR names (scifact,nfcorpus,...) or folders")
    source.add_argument("--beir-dir", action="append", default=[], metavar="PATH", help="a local BEIR folder (repeatable)")
    source.add_argument("--split", default="test", help="qrels split of BEIR folders (default: test)")
    source.add_argument("--nanobeir-id", default="sentence-transformers/NanoBEIR-en", help="Hub dataset id (or zeta-alpha-ai)")
    titles = source.add_mutually_exclusive_group()
    titles.add_argument("--with-title", dest="with_title", action="store_const", const=True, default=None,
                        help="prepend titles (default: yes for BEIR folders, no for NanoBEIR)")
    titles.add_argument("--no-title", dest="with_title", action="store_const", const=False)
    source.add_argument(
        "--relevance-threshold", default="1", metavar="N|NAME=N,...",
        help="lowest grade counted as relevant by binary metrics: one value, or per dataset (msmarco-dl19-subset=2)",
    )
    source.add_argument("--max-docs", type=positive_int, default=None, help="evaluate on a slice: judged docs + filler up to N")

    backends = parser.add_argument_group("backends")
    backends.add_argument("--backends", default="exact,qdrant,opensearch", help="comma-separated: exact, qdrant, opensearch")
    backends.add_argument("--keep", action="store_true", help="keep the collections/indices created for the run")
    add_qdrant_options(parser, path_default="default: embedded in-memory")
    add_opensearch_options(parser)

    out = parser.add_argument_group("output")
    out.add_argument("--output-dir", type=Path, default=None, help="write results.json, results.md, results.png here")
    out.add_argument("--json", action="store_true", help="print the JSON report on stdout (instead of the table)")
    out.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_model_options(parser)
    parser.set_defaults(func=run)


def _datasets(args: argparse.Namespace) -> list[Any]:
    from splade_connectors.eval.datasets import load_retrieval_dataset

    specs: list[str] = [s.strip() for s in (args.datasets or "").split(",") if s.strip()] + list(args.beir_dir)
    if not specs:
        raise ConfigError("give --datasets NAMES or --beir-dir PATH")
    default, per_name = _thresholds(args.relevance_threshold)
    loaded = []
    for spec in specs:
        dataset = load_retrieval_dataset(
            spec, split=args.split, with_title=args.with_title, relevance_threshold=default, dataset_id=args.nanobeir_id,
        )
        if dataset.name in per_name:
            dataset = dataset.with_options(relevance_threshold=per_name[dataset.name])
        if args.max_docs:
            judged = {d for docs in dataset.qrels.values() for d in docs}
            ids = [d for d in dataset.corpus if d in judged]
            ids += [d for d in dataset.corpus if d not in judged][: max(0, args.max_docs - len(ids))]
            dataset = dataset.subset(ids)
        logger.info("%s", dataset.describe())
        loaded.append(dataset)
    return loaded


def _thresholds(text: str) -> tuple[int, dict[str, int]]:
    """`2` -> (2, {}); `msmarco-dl19-subset=2,1` -> (1, {"msmarco-dl19-subset": 2})."""
    default, per_name = 1, {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, _, value = part.rpartition("=")
        try:
            grade = int(value)
        except ValueError:
            raise ConfigError(f"--relevance-threshold {text!r}: {value!r} is not an integer grade") from None
        if name:
            per_name[name] = grade
        else:
            default = grade
    return default, per_name


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
    datasets = _datasets(args)
    encoder = load_encoder(args)
    bars = _Bars(enabled=not args.no_progress)
    try:
        report = evaluate(encoder, datasets, backends, progress=bars)
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
