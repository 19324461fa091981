"""Benchmark: long documents as truncation, windows merged by max, or passages, through Qdrant.

    python bench/passages.py --beir-dir ../shared/data/beir/scifact --max-length 128 --threads 1 --out passages.json
    python bench/passages.py ... --qdrant-url http://127.0.0.1:6333        # a server as well as the embedded engine

Every window of `--max-length` tokens of every document is encoded once with the shipped model, and the three
document modes are made from those window vectors: truncation (a document's first window: exactly the tokens a
`--max-length` cut keeps), windows merged by max (the element-wise max over a document's windows, which is what
`--chunk-tokens` computes: `tests/trainer/test_chunking.py`), and passages (one point per window, searched grouped
per document). Queries are encoded once too, so the three modes differ in their documents only. Each mode is written into a fresh collection
of the embedded Qdrant engine on disk (and of a server with `--qdrant-url`), then, per engine:
nDCG@10 / MAP@100 of the store's ranking (and of exact in-memory scoring, for reference), points and
documents stored, the collection's bytes (`storage_bytes`: the embedded shard folder after flush and optimize;
on a server what its telemetry reports), and single-query latency p50/p99 over every test query
(`search_batch([query], top_k=10)`, after one warm-up pass). The load average is printed with the result.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


class _FilledStore:
    """An evaluation backend over a store already filled (so its size and latency can be measured too)."""

    def __init__(self, name: str, store: Any) -> None:
        self.name, self.store = name, store

    def rank(self, data: Any, top_k: int, progress: Any = None) -> tuple[dict[str, list[tuple[str, float]]], Any]:
        from splade_connectors.eval.backends import BackendTimings

        ranking: dict[str, list[tuple[str, float]]] = {}
        started = time.perf_counter()
        for start in range(0, len(data.query_ids), 32):
            hits = self.store.search_batch(data.query_vectors[start : start + 32], top_k=top_k)
            for qid, found in zip(data.query_ids[start : start + 32], hits):
                ranking[qid] = [(h.id, float(h.score)) for h in found]
        return ranking, BackendTimings(search_seconds=time.perf_counter() - started)


def _fill(config: Any, data: Any) -> tuple[Any, dict[str, Any]]:
    from splade_connectors.registry import open_store

    store = open_store(config)
    if store.count():
        store.drop()
        store.close()
        store = open_store(config)
    started = time.perf_counter()
    if data.encoding is not None:
        store.record_encoding(data.encoding)
    store.begin_ingest()
    for batch in data.encoded_documents(256):
        store.upsert(batch)
    store.finish_ingest()
    seconds = time.perf_counter() - started
    points = sum(len(p) for p in data.passages) if data.passages is not None else len(data.doc_ids)
    return store, {"documents": store.count(), "points": points, "index_seconds": round(seconds, 1), "bytes": store.storage_bytes()}


def _latency(store: Any, vectors: list[Any], top_k: int = 10) -> dict[str, float]:
    for vector in vectors:  # warm-up pass
        store.search_batch([vector], top_k=top_k)
    times = []
    for vector in vectors:
        started = time.perf_counter()
        store.search_batch([vector], top_k=top_k)
        times.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": round(statistics.median(times), 3), "p99_ms": round(_percentile(times, 0.99), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--beir-dir", type=Path, required=True)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for encoding")
    parser.add_argument("--folder", type=Path, default=None, help="embedded collections here (default: a temporary folder)")
    parser.add_argument("--qdrant-url", default=None, help="also measure on this Qdrant server")
    parser.add_argument("--modes", default="truncation,max-merged,passages")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON result here")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from splade_connectors.eval.backends import ExactBackend
    from splade_connectors.eval.datasets import load_beir_folder
    from splade_connectors.eval.encoding import encode_dataset
    from splade_connectors.eval.runner import evaluate_encoded
    from splade_connectors.registry import store_config
    from trainer import SpladeEncoder
    from trainer.encoder import EncodeOptions
    from trainer.models import shipped_model_dir

    dataset = load_beir_folder(args.beir_dir)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    windowed = SpladeEncoder.from_pretrained(
        shipped_model_dir(), device="cpu", options=EncodeOptions(max_length=args.max_length, chunk_tokens=args.max_length),
        query_options=EncodeOptions(max_length=args.max_length),
    )
    started = time.perf_counter()
    passages = encode_dataset(windowed, dataset, passages=True)  # every window of every document, encoded once
    encode_seconds = time.perf_counter() - started

    def record(**changes: Any) -> Any:
        copied = json.loads(json.dumps(passages.encoding))
        if copied is not None:
            copied["encoding"].update(changes)
        return copied

    assert passages.passages is not None
    encoded: dict[str, Any] = {
        "passages": passages,
        # the max over a document's window vectors: what --chunk-tokens encodes (tests/trainer/test_chunking.py)
        "max-merged": dataclasses.replace(passages, passages=None, encoding=record(passages=False)),
        # the first window: the tokens a 128-token cut keeps ([CLS] + the first text tokens + [SEP])
        "truncation": dataclasses.replace(
            passages, passages=None, doc_vectors=[p[0].sparse for p in passages.passages],
            encoding=record(passages=False, chunk_tokens=None),
        ),
    }

    folder = args.folder or Path(tempfile.mkdtemp(prefix="bench-passages-"))
    engines = [("embedded", lambda name: store_config("qdrant", path=str(folder), collection=name))]
    if args.qdrant_url:
        engines.append(("server", lambda name: store_config("qdrant", url=args.qdrant_url, collection=name)))
    load_start = os.getloadavg()
    result: dict[str, Any] = {
        "cpu": _cpu(), "cores": os.cpu_count(), "threads": args.threads, "max_length": args.max_length,
        "dataset": str(args.beir_dir), "documents": len(dataset.corpus), "encode_seconds": round(encode_seconds, 1),
        "load_average_start": load_start, "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "rows": [],
    }
    for engine, make in engines:
        for mode in modes:
            data = encoded[mode]
            store, stats = _fill(make(f"bench-{mode}"), data)
            try:
                report = evaluate_encoded([data], [ExactBackend(), _FilledStore("qdrant", store)])
                metrics = report.results[data.dataset.name]
                latency = _latency(store, [v for v in data.query_vectors if v.nnz])
            finally:
                store.drop()
                store.close()
            row = {
                "engine": engine, "mode": mode, **stats, **latency,
                "ndcg@10": round(metrics["qdrant"]["ndcg@10"], 4), "map@100": round(metrics["qdrant"]["map@100"], 4),
                "exact_ndcg@10": round(metrics["exact"]["ndcg@10"], 4),
                "load_average": os.getloadavg(),
            }
            result["rows"].append(row)
            print(json.dumps(row), flush=True)
    result["load_average_end"] = os.getloadavg()
    result["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    if args.folder is None:
        shutil.rmtree(folder, ignore_errors=True)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
