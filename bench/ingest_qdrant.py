"""Benchmark: SPLADE ingestion into Qdrant vs encoding alone, vs sentence-transformers' helper.

    source scripts/env.sh && python bench/ingest_qdrant.py --docs 1000

Measures, on the same SciFact documents and the shipped trained SPLADE on CPU:
1. encode-only docs/s: `SpladeEncoder.encode_documents` over the same batches the pipeline uses;
2. end-to-end ingestion docs/s: the shared pipeline (validate, encode, upsert with overlap) into
   embedded in-memory Qdrant. Local mode is a pure-Python store (not the Qdrant engine), so this
   measures the pipeline's overhead over encoding, not Qdrant's write speed; target ratio <= 1.15;
3. query latency p50/p99 over the test queries: store search only, and query encoding + search;
4. sentence-transformers' `semantic_search_qdrant`: it builds its collection only on a server
   (hard-coded http://localhost:6333), so its ingestion is measured as what bounds it here, its
   SparseEncoder.encode docs/s on the same model and a subset of the documents; its search runs
   against our local-mode collection via `corpus_index=(client, name)` (per-query latency).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from splade_connectors.ingest import IngestConfig, ingest  # noqa: E402
from splade_connectors.search import search
from splade_connectors.qdrant import QdrantConfig, QdrantStore  # noqa: E402
from trainer.encoder import SpladeEncoder  # noqa: E402
from trainer.models import shipped_model_dir  # noqa: E402

logger = logging.getLogger("bench")


def load_scifact(folder: Path, docs: int) -> tuple[list[dict[str, str]], list[str]]:
    corpus = []
    with open(folder / "corpus.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            corpus.append({"_id": row["_id"], "title": row.get("title", ""), "text": row["text"]})
            if len(corpus) >= docs:
                break
    judged = set()
    with open(folder / "qrels" / "test.tsv", encoding="utf-8") as handle:
        next(handle)
        judged = {line.split("\t")[0] for line in handle}
    queries = []
    with open(folder / "queries.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if row["_id"] in judged:
                queries.append(row["text"])
    return corpus, queries


def text_of(doc: dict[str, str]) -> str:
    return f"{doc['title']}\n{doc['text']}" if doc["title"] else doc["text"]


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = np.array(samples) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "mean_ms": round(float(ms.mean()), 2),
    }


def bench_encode(encoder: SpladeEncoder, texts: list[str], batch: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(texts), batch):
        encoder.encode_documents(texts[start : start + batch])
    return time.perf_counter() - started


def bench_sentence_transformers(model_dir: Path, texts: list[str], queries: list[str], store: QdrantStore, top_k: int) -> dict[str, Any]:
    try:
        from sentence_transformers import SparseEncoder
        from sentence_transformers.sparse_encoder.search_engines import semantic_search_qdrant
    except ImportError as exc:
        return {"skipped": f"sentence-transformers not importable: {exc}"}
    st = SparseEncoder(str(model_dir), device="cpu")
    started = time.perf_counter()
    st.encode_document(texts, batch_size=32, convert_to_sparse_tensor=True)
    encode_seconds = time.perf_counter() - started
    query_embeddings = st.encode_query(queries, convert_to_sparse_tensor=True)
    latencies = []
    for row in range(query_embeddings.shape[0]):
        one = query_embeddings[row].coalesce().unsqueeze(0) if query_embeddings[row].is_sparse else query_embeddings[row : row + 1]
        started = time.perf_counter()
        semantic_search_qdrant(one.coalesce(), corpus_index=(store.client, store.name), top_k=top_k)
        latencies.append(time.perf_counter() - started)
    return {
        "encode_docs": len(texts),
        "encode_docs_per_s": round(len(texts) / encode_seconds, 2),
        "ingest": "not measurable here: semantic_search_qdrant creates its collection only on a server at http://localhost:6333",
        "search_latency_local_mode": percentiles(latencies),
        "mean_query_nnz": round(float(query_embeddings.coalesce().indices().shape[1]) / query_embeddings.shape[0], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "beir" / "scifact")
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=256, help="documents per pipeline batch (and per encode-only call)")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--st-docs", type=int, default=300, help="documents for the sentence-transformers encode comparison (0: skip)")
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(os.cpu_count() or 1)

    corpus, queries = load_scifact(args.data, args.docs)
    queries = queries[: args.queries]
    texts = [text_of(d) for d in corpus]
    model_dir = shipped_model_dir()
    encoder = SpladeEncoder.from_pretrained(model_dir, device="cpu")
    encoder.encode_documents(texts[:16])  # warm-up

    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        },
        "docs": len(corpus),
        "batch": args.batch,
        "queries": len(queries),
    }
    encode_seconds = bench_encode(encoder, texts, args.batch)
    results["encode_only"] = {"seconds": round(encode_seconds, 2), "docs_per_s": round(len(texts) / encode_seconds, 2)}
    print(f"encode only: {len(texts)} docs in {encode_seconds:.1f}s ({len(texts) / encode_seconds:.1f} docs/s)", flush=True)

    # sparse vector named "text" so sentence-transformers' helper can query the same collection
    store = QdrantStore(QdrantConfig(collection="bench", sparse_name="text")).open()
    report = ingest(corpus, encoder, store, IngestConfig(batch_size=args.batch))
    results["ingest_qdrant_in_memory"] = {
        "seconds": round(report.seconds, 2),
        "docs_per_s": round(report.docs_per_second, 2),
        "encode_seconds_inside": round(report.encode_seconds, 2),
        "write_seconds_inside": round(report.write_seconds, 2),
        "stored": store.count(),
        "ratio_to_encode_only": round(report.seconds / encode_seconds, 3),
        # same-run ratio: robust to load changes between the two measurements on a shared machine
        "ratio_to_encode_time_inside_pipeline": round(report.seconds / report.encode_seconds, 3),
    }
    print(
        f"ingest (in-memory Qdrant): {report.accepted} docs in {report.seconds:.1f}s ({report.docs_per_second:.1f} docs/s), "
        f"ratio to encode-only {report.seconds / encode_seconds:.3f} (writes {report.write_seconds:.1f}s, overlapped)",
        flush=True,
    )

    vectors = encoder.encode_queries(queries)
    search_only, end_to_end = [], []
    for text, vector in zip(queries, vectors):
        started = time.perf_counter()
        store.search_batch([vector], top_k=args.top_k)
        search_only.append(time.perf_counter() - started)
        started = time.perf_counter()
        search(store, encoder, [text], top_k=args.top_k)
        end_to_end.append(time.perf_counter() - started)
    started = time.perf_counter()
    store.search_batch(vectors, top_k=args.top_k)
    batch_seconds = time.perf_counter() - started
    results["query_latency"] = {
        "search_only": percentiles(search_only),
        "encode_and_search": percentiles(end_to_end),
        "batch_of_all_queries_s": round(batch_seconds, 2),
        "mean_query_nnz": round(statistics.mean(v.nnz for v in vectors), 1),
    }
    print(
        f"query latency, search only: {results['query_latency']['search_only']}; encode+search: {results['query_latency']['encode_and_search']}",
        flush=True,
    )

    if args.st_docs:
        results["sentence_transformers"] = bench_sentence_transformers(model_dir, texts[: args.st_docs], queries, store, args.top_k)
        print(f"sentence-transformers: {results['sentence_transformers']}", flush=True)
        ours = len(texts[: args.st_docs]) / bench_encode(encoder, texts[: args.st_docs], args.batch)
        results["sentence_transformers"]["our_encode_docs_per_s_same_subset"] = round(ours, 2)
    store.close()
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
