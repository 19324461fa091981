"""Training throughput: our loop vs sentence-transformers' SparseEncoderTrainer, same work per step.

Both train the same checkpoint (`--arch shipped|distilbert|bert-base` from bench/archs.py, or `--model DIR`; the
real-size architectures have random weights: throughput only) on the first rows of SciFact's training pairs with
SpladeLoss(SparseMultipleNegativesRankingLoss), lambda_q=5e-5, lambda_d=3e-5, a no-duplicates batch sampler, the
same batch size, max length, LR schedule and AdamW, on CPU. `--cached N` runs the GradCache variant on both
sides (ours: `loss.mini_batch_size=N`; sentence-transformers: `CachedSpladeLoss(mini_batch_size=N)`).
Engines (`--engines`): `ours-fp32`, `ours-bf16` (`optim.precision: bf16`, autocast with fp32 master weights),
`ours-auto` (bf16 where a timed micro-step says it is faster), `st-fp32`, `st-bf16`
(`SparseEncoderTrainingArguments(bf16=True, use_cpu=True)`: the same autocast mixed precision).
Each engine runs in its own subprocess (its peak RSS is its own); the first `--warmup` steps are excluded from the
timing. sentence-transformers' trainer needs `datasets` and `accelerate` (bench/test-only dependencies).

    python bench/train.py --steps 30 --batch-size 16 --max-length 128
    python bench/train.py --arch distilbert --steps 7 --warmup 1 --batch-size 8 --max-length 128 --threads 1
    python bench/train.py --arch distilbert --steps 7 --warmup 1 --batch-size 8 --max-length 128 --threads 1 --cached 4
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


ENGINES = ("ours-fp32", "ours-bf16", "ours-auto", "st-fp32", "st-bf16")
LABELS = {
    "ours-fp32": "ours fp32", "ours-bf16": "ours bf16 autocast", "ours-auto": "ours precision auto",
    "st-fp32": "sentence-transformers fp32", "st-bf16": "sentence-transformers bf16",
}


def run_ours(args: argparse.Namespace, pairs: list[tuple[str, str]], model_dir: str, out: str) -> dict[str, Any]:
    from trainer.model import SpladeModel
    from trainer.training import Trainer, TrainingExamples, parse_config

    config = parse_config({
        "model": {"name_or_path": model_dir, "max_seq_length": args.max_length},
        "data": {"path": "unused"},
        "output_dir": out,
        "optim": {"batch_size": args.batch_size, "max_steps": args.steps, "learning_rate": 2e-5,
                  "warmup_ratio": 0.1, "seed": 42, "device": "cpu", "precision": args.engine.split("-", 1)[1]},
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
    plan = trainer.autocast_plan
    return {"steps_per_second": clock.rate(args.warmup), "wall_seconds": time.perf_counter() - start,
            "precision": plan.precision, "reason": plan.reason}


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
        bf16=args.engine == "st-bf16",
    )
    trainer = SparseEncoderTrainer(model=model, args=training_args, train_dataset=dataset, loss=loss, callbacks=[Clock()])
    start = time.perf_counter()
    trainer.train()
    return {"steps_per_second": clock.rate(args.warmup), "wall_seconds": time.perf_counter() - start,
            "precision": "bf16" if args.engine == "st-bf16" else "fp32"}


def child(args: argparse.Namespace) -> None:
    import torch
    from archs import model_dir as model_dir_for  # type: ignore[import-not-found]  # bench/archs.py, on sys.path when run

    if args.threads:
        torch.set_num_threads(args.threads)
    pairs = load_pairs(args.data, args.batch_size * (args.steps + 2) * 2)
    model_dir = str(args.model or model_dir_for(args.arch))
    with tempfile.TemporaryDirectory() as out:
        runner = run_ours if args.engine.startswith("ours") else run_st
        result = runner(args, pairs, model_dir, out)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result))


def run_engine(args: argparse.Namespace, engine: str) -> dict[str, Any]:
    """One engine in its own subprocess; its RESULT line."""
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
    result: dict[str, Any] = json.loads(line[len("RESULT "):])
    return result


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
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=["ours-fp32", "ours-bf16", "st-fp32", "st-bf16"])
    parser.add_argument("--engine", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=1, help="run every engine this many times, alternating the order; best counts")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    if args.engine:
        child(args)
        return
    from trainer.cpu import cpu_features, cpu_model_name

    load_start = os.getloadavg()
    runs: dict[str, list[dict[str, Any]]] = {engine: [] for engine in args.engines}
    for round_ in range(args.rounds):
        order = args.engines if round_ % 2 == 0 else list(reversed(args.engines))  # alternate: load drift hits all alike
        for engine in order:
            runs[engine].append(run_engine(args, engine))
            print(f"round {round_ + 1} {engine}: {runs[engine][-1]}", file=sys.stderr, flush=True)
    # best of the rounds per engine: the run least disturbed by other jobs on a shared machine (when the load drifts
    # during a run, the per-round ratios in the last column are the fairer comparison)
    results = {engine: max(rs, key=lambda r: r["steps_per_second"]) for engine, rs in runs.items()}
    load_end = os.getloadavg()
    label = str(args.model) if args.model else args.arch
    print(f"CPU: {cpu_model_name()} ({cpu_features().describe()}), threads {args.threads or 'default'}, "
          f"load average {load_start[0]:.2f} at the start, {load_end[0]:.2f} at the end")
    print(f"model {label}, {args.rounds} round(s) (best per engine), batch {args.batch_size}, max length {args.max_length}, {args.steps} steps "
          f"(first {args.warmup} untimed), {'GradCache mini-batch ' + str(args.cached) if args.cached else 'plain SpladeLoss'}")
    if args.model is None and args.arch != "shipped":
        print("NOTE: random weights: these numbers measure throughput only")
    anchors = [name for name in ("st-fp32", "st-bf16") if name in results]
    header = "| engine | precision | steps/s | " + " | ".join(f"vs {a}" for a in anchors) + " | peak RSS | wall | every round (vs st-fp32) |"
    print(header)
    print("| --- " * (header.count("|") - 1) + "|")
    for name, r in results.items():
        ratios = " | ".join(f"{r['steps_per_second'] / results[a]['steps_per_second']:.2f}x" for a in anchors)
        every = " / ".join(  # each round's rate and its ratio to sentence-transformers fp32 of the same round
            f"{x['steps_per_second']:.3f}" + (f" ({x['steps_per_second'] / runs['st-fp32'][i]['steps_per_second']:.2f}x)" if "st-fp32" in runs else "")
            for i, x in enumerate(runs[name])
        )
        print(f"| {LABELS[name]} | {r['precision']} | {r['steps_per_second']:.3f} | {ratios} | {r['peak_rss_mb']:,.0f} MB | "
              f"{r['wall_seconds']:.0f} s | {every} |")
    for name, r in results.items():
        if r.get("reason") and name == "ours-auto":
            print(f"{name}: {r['reason']}")
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu_model_name(), "load": [load_start[0], load_end[0]], "args": {
            k: str(v) for k, v in vars(args).items()}, "results": results, "runs": runs}, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
