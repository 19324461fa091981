"""The dataset options of `eval` and `tune` (NanoBEIR names or BEIR folders), parsed and loaded the same way.

`eval` takes several datasets, `tune` one; everything else is the same option with the same
check: `--max-docs` (a slice of judged documents plus filler), `--relevance-threshold` (one grade,
or per dataset `NAME=N`), titles, split and the NanoBEIR Hub id.
"""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

from splade_connectors.cli.values import positive_int
from splade_connectors.errors import ConfigError

if TYPE_CHECKING:
    from splade_connectors.eval.datasets import RetrievalDataset

logger = logging.getLogger(__name__)

DEFAULT_NANOBEIR_ID = "sentence-transformers/NanoBEIR-en"


def add_dataset_options(parser: argparse.ArgumentParser, *, several: bool) -> None:
    """The dataset option group; `several`: the command takes several datasets (eval) or exactly one (tune)."""
    source = parser.add_argument_group("datasets" if several else "dataset (one)")
    source.add_argument(
        "--datasets", default=None,
        help="comma-separated NanoBEIR names (scifact,nfcorpus,...) or folders" if several
        else "a NanoBEIR name (scifact, nfcorpus, ...) or folder",
    )
    source.add_argument("--beir-dir", action="append", default=[], metavar="PATH",
                        help="a local BEIR folder" + (" (repeatable)" if several else ""))
    source.add_argument("--split", default="test", help="qrels split of BEIR folders (default: test)")
    source.add_argument("--nanobeir-id", default=DEFAULT_NANOBEIR_ID, help="Hub dataset id (or zeta-alpha-ai)")
    titles = source.add_mutually_exclusive_group()
    titles.add_argument("--with-title", dest="with_title", action="store_const", const=True, default=None,
                        help="prepend titles (default: yes for BEIR folders, no for NanoBEIR)")
    titles.add_argument("--no-title", dest="with_title", action="store_const", const=False)
    source.add_argument(
        "--relevance-threshold", default="1", metavar="N|NAME=N,...",
        help="lowest grade counted as relevant by binary metrics: one value, or per dataset (msmarco-dl19-subset=2)",
    )
    source.add_argument("--max-docs", type=positive_int, default=None, metavar="N",
                        help="a slice of each dataset: its judged documents plus filler up to N")


def load_datasets(args: argparse.Namespace) -> list[RetrievalDataset]:
    """The datasets the dataset options name, with their titles, thresholds and slice applied."""
    from splade_connectors.eval.datasets import load_retrieval_dataset

    specs: list[str] = [s.strip() for s in (args.datasets or "").split(",") if s.strip()] + list(args.beir_dir)
    if not specs:
        raise ConfigError("give --datasets NAMES or --beir-dir PATH")
    default, per_name = relevance_thresholds(args.relevance_threshold)
    loaded = []
    for spec in specs:
        dataset = load_retrieval_dataset(
            spec, split=args.split, with_title=args.with_title, relevance_threshold=default, dataset_id=args.nanobeir_id,
        )
        if dataset.name in per_name:
            dataset = dataset.with_options(relevance_threshold=per_name[dataset.name])
        if args.max_docs is not None:
            dataset = judged_slice(dataset, args.max_docs)
        logger.info("%s", dataset.describe())
        loaded.append(dataset)
    return loaded


def judged_slice(dataset: RetrievalDataset, max_docs: int) -> RetrievalDataset:
    """Every judged document, plus unjudged filler (in corpus order) up to `max_docs` documents."""
    judged = {d for docs in dataset.qrels.values() for d in docs}
    ids = [d for d in dataset.corpus if d in judged]
    ids += [d for d in dataset.corpus if d not in judged][: max(0, max_docs - len(ids))]
    return dataset.subset(ids)


def relevance_thresholds(text: str) -> tuple[int, dict[str, int]]:
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
