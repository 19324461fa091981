"""`splade-connectors ingest`: a JSONL file or BEIR folder -> SPLADE vectors -> a store.

Runs the shared pipeline (validation, batched encoding overlapped with writes, retries of
transient store errors). With `--checkpoint FILE` an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from splade_connectors.cli.common import add_model_options, load_encoder, print_json, progress_bar
from splade_connectors.cli.stores import add_store_options, open_store_from_args
from splade_connectors.errors import IngestError
from splade_connectors.ingest import FieldMap, IngestConfig, IngestReport, ingest_file
from splade_connectors.ingest.sources import beir_corpus_path

_SHOWN_INVALID = 10


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("ingest", help="encode a JSONL file or BEIR folder into a store", description=__doc__)
    parser.add_argument("--input", "-i", required=True, help="JSONL file, or BEIR folder with corpus.jsonl")
    parser.add_argument("--id-field", default="_id")
    parser.add_argument("--text-field", default="text")
    parser.add_argument("--title-field", default="title", help="title field, prepended to the text when encoding")
    parser.add_argument("--no-title", action="store_true", help="encode the text only")
    parser.add_argument("--on-invalid", choices=("skip", "fail"), default="skip", help="bad records: skip and report, or stop")
    parser.add_argument("--checkpoint", type=Path, default=None, help="resume file (deleted when the run completes)")
    parser.add_argument("--ingest-batch-size", type=int, default=64, help="documents per store write")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="machine-readable report")
    add_store_options(parser)
    add_model_options(parser)
    parser.set_defaults(func=run)


def _count_lines(path: Path) -> int | None:
    try:
        with open(path, "rb") as handle:
            return sum(1 for line in handle if line.strip())
    except OSError:
        return None


def report_to_json(report: IngestReport, stored: int) -> dict[str, Any]:
    return {
        "accepted": report.accepted,
        "invalid": len(report.invalid),
        "invalid_examples": [r.describe() for r in report.invalid[:_SHOWN_INVALID]],
        "skipped_by_resume": report.skipped_by_resume,
        "truncated": report.truncated,
        "chunked": report.chunked,
        "batches": report.batches,
        "seconds": round(report.seconds, 3),
        "encode_seconds": round(report.encode_seconds, 3),
        "write_seconds": round(report.write_seconds, 3),
        "docs_per_second": round(report.docs_per_second, 2),
        "stored": stored,
    }


def run(args: argparse.Namespace) -> int:
    corpus = beir_corpus_path(args.input)
    config = IngestConfig(
        batch_size=args.ingest_batch_size, on_invalid=args.on_invalid, with_title=not args.no_title,
        fields=FieldMap(id=args.id_field, text=args.text_field, title=None if args.no_title else args.title_field),
        checkpoint=args.checkpoint,
    )
    encoder = load_encoder(args)
    with open_store_from_args(args, encoder) as store:  # errors are reported by the CLI's main
        try:
            show = not args.no_progress and sys.stderr.isatty()
            with progress_bar(_count_lines(corpus), f"ingest -> {store.name}", enabled=show) as bar:
                report = ingest_file(corpus, encoder, store, config, progress=bar.update)
        except IngestError as exc:
            if args.checkpoint:
                exc.args = (f"{exc}; rerun with --checkpoint {args.checkpoint} to resume",)
            raise
        stored = store.count()
    if args.json:
        print_json({"store": args.store, "collection": store.name, "input": str(corpus), **report_to_json(report, stored)})
    else:
        print(
            f"{store.describe()}: {report.accepted} documents ingested in {report.seconds:.1f}s "
            f"({report.docs_per_second:.1f} docs/s), {stored} stored"
            + (f", {report.skipped_by_resume} records skipped by resume" if report.skipped_by_resume else "")
            + (f", {report.truncated} truncated" if report.truncated else "")
            + (f", {report.chunked} encoded in windows" if report.chunked else "")
        )
        if report.invalid:
            print(f"{len(report.invalid)} invalid records skipped:")
            for record in report.invalid[:_SHOWN_INVALID]:
                print(f"  {record.describe()}")
    return 0
