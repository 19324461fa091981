"""`splade-connectors ingest`: a JSONL/Parquet file or BEIR folder -> SPLADE vectors -> a store.

Runs the shared pipeline (validation, isolation of records the encoder or store refuses, batched
encoding overlapped with writes, retries of transient store errors), in this process or on Ray
(`--engine ray`). With `--checkpoint FILE` an interrupted single-process run resumes where it
stopped; `--skip-unchanged` skips documents stored with the same content hash (and resumes a Ray
job); `--delete-missing` removes stored documents that are not in the input. A collection written
with another model or encoding options is refused (one line); `--reencode` drops it and ingests the
input into a new one.
"""

from __future__ import annotations

import argparse

from splade_connectors.cli.ingesting import add_ingest_options, ingest_config, run_ray, run_single
from splade_connectors.cli.model import add_model_options
from splade_connectors.cli.output import ingest_report_to_json, print_ingest_report, print_json
from splade_connectors.cli.stores import add_store_options
from splade_connectors.ingest.sources import beir_corpus_path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("ingest", help="encode a JSONL/Parquet file or BEIR folder into a store", description=__doc__)
    add_ingest_options(parser, input_required=True)
    add_store_options(parser)
    add_model_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    corpus = beir_corpus_path(args.input)
    config = ingest_config(args)
    report, where = run_ray(args, corpus, config) if args.engine == "ray" else run_single(args, corpus, config)
    if args.json:
        print_json({"store": args.store, "collection": args.index or args.collection, "input": str(corpus), **ingest_report_to_json(report)})
    else:
        print_ingest_report(report, where)
    return 0
