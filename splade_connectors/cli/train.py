"""`splade-connectors train --config FILE`: run a pydantic-validated training recipe (YAML or JSON)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from splade_connectors.cli.values import positive_int


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("train", help="train or fine-tune a SPLADE model from a config file")
    parser.add_argument(
        "--config", required=True,
        help="YAML/JSON training config, or bundled:NAME (cpu-small, nq-distilbert-gpu, gooaq-distilbert-gpu)",
    )
    parser.add_argument("--data-root", type=Path, default=None, help="base for relative data paths in the config")
    parser.add_argument("--output-dir", type=Path, default=None, help="override the config's output directory")
    parser.add_argument("--max-steps", type=positive_int, default=None, help="override the config's step limit")
    parser.add_argument(
        "--precision", choices=("fp32", "bf16", "auto"), default=None,
        help="override optim.precision: bf16 autocast mixed precision (CPU or CUDA), or auto (bf16 where it measures faster)",
    )
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in the output directory")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from trainer.training import bundled_config, load_config, run_training

    source = bundled_config(args.config.split(":", 1)[1]) if args.config.startswith("bundled:") else Path(args.config)
    config = load_config(source, data_root=args.data_root)
    if args.output_dir is not None:
        config = config.model_copy(update={"output_dir": str(args.output_dir)})
    if args.max_steps is not None:
        config = config.model_copy(update={"optim": config.optim.model_copy(update={"max_steps": args.max_steps})})
    if args.precision is not None:
        config = config.model_copy(update={"optim": config.optim.model_copy(update={"precision": args.precision})})
    if args.resume:
        config = config.model_copy(update={"resume_from": "latest"})
    path = run_training(config)
    print(f"saved model: {path}")
    return 0
