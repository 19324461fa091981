"""Training throughput: our loop vs sentence-transformers' SparseEncoderTrainer, same work per step.

Both train the same checkpoint (`--arch shipped|distilbert|bert-base` from bench/archs.py, or `--model DIR`; the
real-size architectures have random weights: throughput only) on the first rows of SciFact's training pairs with
SpladeLoss(SparseMultipleNegativesRankingLoss), lambda_q=5e-5, lambda_d=3e-5, a no-duplicates batch sampler, the
same batch size, max length, LR schedule and AdamW, on CPU fp32. `--cached N` runs the GradCache variant on both
sides (ours: `loss.mini_batch_size=N`; sentence-transformers: `CachedSpladeLoss(mini_batch_size=N)`).
Each engine runs in its own subprocess (its peak RSS is its own); the first `--warmup` steps are excluded from the
timing. sentence-transformers' trainer needs `datasets` and `accelerate` (bench/test-only dependencies).

    python bench/train.py --steps 30 --batch-size 16 --max-length 128
    python bench/train.py --arch distilbert --steps 8 --warmup 2 --batch-size 16 --max-length 128 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
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
        "loss": {"mini_batch_size": args.cached},
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
    loss: losses.SpladeLoss
    if args.cached:
        loss = losses.CachedSpladeLoss(model, losses.SparseMultipleNegativesRankingLoss(model), mini_batch_size=args.cached,
                                       document_regularizer_weight=3e-5, query_regularizer_weight=5e-5)
    else:
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
    from archs import model_dir as model_dir_for  # type: ignore[import-not-found]  # bench/archs.py, on sys.path when run

    if args.threads:
        torch.set_num_threads(args.threads)
    pairs = load_pairs(args.data, args.batch_size * (args.steps + 2) * 2)
    model_dir = str(args.model or model_dir_for(args.arch))
    with tempfile.TemporaryDirectory() as out:
        runner = run_ours if args.engine == "ours" else run_st
        result = runner(args, pairs, model_dir, out)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3, help="initial steps left out of the rate")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--arch", choices=("shipped", "distilbert", "bert-base"), default="shipped")
    parser.add_argument("--model", type=Path, default=None, help="any checkpoint directory instead of --arch")
    parser.add_argument("--cached", type=int, default=None, metavar="N", help="GradCache / CachedSpladeLoss with mini-batches of N")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--engine", choices=["ours", "st"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:
        child(args)
        return
    results = {}
    for engine in ("ours", "st"):
        cmd = [sys.executable, __file__, "--engine", engine, "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--batch-size", str(args.batch_size), "--max-length", str(args.max_length), "--data", str(args.data),
               "--arch", args.arch]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        if args.model:
            cmd += ["--model", str(args.model)]
        if args.cached:
            cmd += ["--cached", str(args.cached)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
        line = next((out for out in proc.stdout.splitlines() if out.startswith("RESULT ")), None)
        if proc.returncode != 0 or line is None:
            sys.stderr.write(proc.stderr[-3000:])
            raise SystemExit(f"{engine} run failed (exit {proc.returncode})")
        results[engine] = json.loads(line[len("RESULT "):])
    from trainer.cpu import cpu_features, cpu_model_name

    ours, st = results["ours"]["steps_per_second"], results["st"]["steps_per_second"]
    label = str(args.model) if args.model else args.arch
    print(f"CPU: {cpu_model_name()} ({cpu_features().describe()}), threads {args.threads or 'default'}, load average {os.getloadavg()[0]:.2f}")
    print(f"model {label}, CPU fp32, batch {args.batch_size}, max length {args.max_length}, {args.steps} steps "
          f"(first {args.warmup} untimed){', GradCache mini-batch ' + str(args.cached) if args.cached else ''}")
    if args.model is None and args.arch != "shipped":
        print("NOTE: random weights: these numbers measure throughput only")
    for name, label in (("ours", "ours"), ("st", "sentence-transformers")):
        r = results[name]
        print(f"{label + ':':<23}{r['steps_per_second']:.3f} steps/s  (wall {r['wall_seconds']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB)")
    print(f"ratio ours/ST:         {ours / st:.2f}x")


if __name__ == "__main__":
    main()
