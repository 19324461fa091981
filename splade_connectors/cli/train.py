"""`splade-connectors train --config FILE`: run a pydantic-validated training recipe (YAML or JSON)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("train", help="train or fine-tune a SPLADE model from a config file")
    parser.add_argument("--config", type=Path, required=True, help="YAML or JSON training config")
    parser.add_argument("--output-dir", type=Path, default=None, help="override the config's output directory")
    parser.add_argument("--max-steps", type=int, default=None, help="override the config's step limit")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in the output directory")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from trainer.training import load_config, run_training

    config = load_config(args.config)
    overrides: dict[str, object] = {}
    if args.output_dir is not None:
        overrides["output_dir"] = args.output_dir
    if args.max_steps is not None:
        overrides["max_steps"] = args.max_steps
    if args.resume:
        overrides["resume"] = True
    if overrides:
        config = config.model_copy(update=overrides)
    path = run_training(config)
    print(f"saved model: {path}")
    return 0
