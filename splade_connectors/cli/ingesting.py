"""The input, ingestion and engine options, and running an ingestion: shared by `ingest` and `migrate`.

`migrate` ingests into a new collection (`target`) with the encoder it already loaded; `ingest` into
the store its options name.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from splade_connectors.cli.model import encode_options, load_encoder
from splade_connectors.cli.output import progress_bar
from splade_connectors.cli.stores import open_store_from_args, store_config_from_args
from splade_connectors.cli.values import positive_float, positive_int
from splade_connectors.errors import ConfigError, IngestError, ResumeError, config_error
from splade_connectors.ingest import FieldMap, IngestConfig, IngestReport, ingest_file
from splade_connectors.store import StoreConfigBase

if TYPE_CHECKING:
    from splade_connectors.encoding import SparseEncoder


def add_ingest_options(parser: argparse.ArgumentParser, *, input_required: bool) -> None:
    """The input, ingestion and engine options (`ingest`, and `migrate`, which ingests into a new collection)."""
    parser.add_argument("--input", "-i", required=input_required, help="JSONL or Parquet file, or BEIR folder with corpus.jsonl")
    parser.add_argument("--id-field", default="_id")
    parser.add_argument("--text-field", default="text")
    parser.add_argument("--title-field", default="title", help="title field, prepended to the text when encoding")
    parser.add_argument("--no-title", action="store_true", help="encode the text only")
    parser.add_argument("--on-invalid", choices=("skip", "fail"), default="skip", help="bad records: skip and report, or stop")
    parser.add_argument("--checkpoint", type=Path, default=None, help="resume file (deleted when the run completes; single engine)")
    parser.add_argument("--ingest-batch-size", type=positive_int, default=64, help="documents per store write")
    parser.add_argument("--skip-unchanged", action="store_true", help="skip documents stored with the same content hash")
    parser.add_argument("--delete-missing", action="store_true", help="delete stored documents that are not in the input")
    parser.add_argument("--reencode", action="store_true",
                        help="if the collection holds vectors of another model or encoding options, drop it and ingest "
                             "this input into a new one (the input must hold every document to keep)")
    parser.add_argument("--passages", action="store_true",
                        help="store each document as passages, one point per token window (--chunk-tokens; default: "
                             "windows of the max length); searches return documents with their best passage")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="machine-readable report")
    engine = parser.add_argument_group("engine")
    engine.add_argument("--engine", choices=("single", "ray"), default="single", help="this process, or a Ray cluster")
    engine.add_argument("--ray-address", default=None, help="Ray cluster address (default: a running Ray, else a local one)")
    engine.add_argument("--encoders", type=positive_int, default=1, help="encoder actors (Ray)")
    engine.add_argument("--gpus-per-encoder", type=float, default=None, help="GPUs per encoder actor (Ray; 0 = CPU; default: 1 when the cluster has GPUs)")
    engine.add_argument("--cpus-per-encoder", type=positive_float, default=1.0, help="CPUs per encoder actor (Ray)")


def _count_lines(path: Path) -> int | None:
    """Records of a JSONL file (one per line, as the reader numbers them); None for other files."""
    if path.suffix.lower() in (".parquet", ".pq"):
        return None
    try:
        with open(path, "rb") as handle:
            return sum(1 for _ in handle)
    except OSError:
        return None


def ingest_config(args: argparse.Namespace) -> IngestConfig:
    try:
        return IngestConfig(
            batch_size=args.ingest_batch_size, on_invalid=args.on_invalid, with_title=not args.no_title,
            fields=FieldMap(id=args.id_field, text=args.text_field, title=None if args.no_title else args.title_field),
            checkpoint=args.checkpoint, skip_unchanged=args.skip_unchanged, delete_missing=args.delete_missing,
            reencode=args.reencode, passages=getattr(args, "passages", False),
        )
    except ValidationError as exc:
        raise config_error(exc, "ingest options") from None


def run_single(
    args: argparse.Namespace, corpus: Path, config: IngestConfig, *, target: StoreConfigBase | None = None,
    encoder: SparseEncoder | None = None,
) -> tuple[IngestReport, str]:
    """Ingest in this process into `target` (default: the store the options name) with `encoder` (default: the options')."""
    store_config = target or store_config_from_args(args)  # bad store options fail here, before the model loads
    encoder = encoder or load_encoder(args)
    with open_store_from_args(args, encoder, config=store_config) as store:  # errors are reported by the CLI's main
        try:
            show = not args.no_progress and sys.stderr.isatty()
            with progress_bar(_count_lines(corpus), f"ingest -> {store.name}", unit="record", enabled=show) as bar:
                report = ingest_file(corpus, encoder, store, config, progress=bar.update)
        except IngestError as exc:
            # a stopped run resumes; a refused resume (ResumeError) already says its one next step (start over)
            if args.checkpoint and not isinstance(exc, ResumeError):
                exc.args = (f"{exc}; rerun with --checkpoint {args.checkpoint} to resume",)
            raise
        return report, store.describe()


def run_ray(
    args: argparse.Namespace, corpus: Path, config: IngestConfig, *, target: StoreConfigBase | None = None,
) -> tuple[IngestReport, str]:
    """Ingest on Ray into `target` (default: the store the options name)."""
    from splade_connectors.ingest.ray_engine import EncoderSpec, RayOptions, ingest_file_ray

    try:
        spec = EncoderSpec(
            model=args.model, device=args.device, dtype=args.dtype, backend=args.encoder_backend,
            options=encode_options(args)[0],
        )
        options = RayOptions(
            address=args.ray_address, encoders=args.encoders, gpus_per_encoder=args.gpus_per_encoder,
            cpus_per_encoder=args.cpus_per_encoder, show_progress=not args.no_progress and sys.stderr.isatty(),
        )
    except ValidationError as exc:
        raise config_error(exc, "Ray engine options") from None
    if config.checkpoint is not None:
        raise ConfigError("--checkpoint is for the single engine; a Ray job resumes with --skip-unchanged")
    target = target or store_config_from_args(args)
    report = ingest_file_ray(corpus, spec, target, config, options)
    return report, target.describe()

