"""Apply the flags `tune --latency` printed and measure again: does the recommendation reproduce?

    python bench/tune_reproduce.py --tune-dir tune-results --beir-dir ../shared/data/beir/scifact \
        --vectors-cache ~/.cache/splade-connectors/tune-vectors [--store qdrant] [--repeats 1]

1. The recommended `ingest` flags of tune.json are parsed by the real `ingest` parser (plus `--input`, a fresh
   `--collection` and, for the embedded engine, a temporary `--qdrant-path`); the store config (datatype, ...)
   and the document encoding options (`--prune`) come from those parsed options, as `ingest` takes them.
   The documents are the encoded dataset of the tune run (`--vectors-cache`; encoding the corpus again takes
   most of an hour on a loaded 2-core machine), pruned by the parsed `--prune` exactly as the encoder prunes
   (`EncodeOptions.prune`, applied last) and upserted into a new collection made from the parsed config.
2. The `search` flags are parsed by the real `search` parser; the encoder they load (with `--query-prune`)
   encodes the queries again, and the store they configure (with `--two-phase`) answers them one at a time
   at `--top-k`, after the same warm-up as tune (every query once, then `warmup` queries): nDCG@10 and p50/p99
   of the store call.
Printed beside the row tune measured. The whole `ingest` command is exercised by
tests/splade_connectors/cli/test_tune_latency.py on a small folder.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from splade_connectors.cli import build_parser  # noqa: E402 - after the sys.path insert
from splade_connectors.cli.datasets import load_datasets  # noqa: E402
from splade_connectors.cli.model import encode_options, load_encoder  # noqa: E402
from splade_connectors.cli.stores import store_config_from_args  # noqa: E402
from splade_connectors.eval.encoding import EncodedDataset, encode_dataset_cached  # noqa: E402
from splade_connectors.eval.tune_latency import ndcg_at_10, percentile_ms, time_queries  # noqa: E402
from splade_connectors.registry import open_store  # noqa: E402
from trainer.pruning import prune_all  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tune-dir", type=Path, required=True, help="where tune --latency wrote tune.json")
    parser.add_argument("--beir-dir", required=True)
    parser.add_argument("--vectors-cache", type=Path, required=True)
    parser.add_argument("--store", default="qdrant")
    parser.add_argument("--warmup", type=int, default=None, help="default: tune's")
    parser.add_argument("--repeats", type=int, default=None, help="default: tune's")
    opts = parser.parse_args()

    report = json.loads((opts.tune_dir / "tune.json").read_text(encoding="utf-8"))
    flags = report["flags"][opts.store]
    label = report["recommended"][opts.store]
    measured = next(r for r in report["rows"] if r["store"] == opts.store and r["label"] == label)
    warmup = report["warmup"] if opts.warmup is None else opts.warmup
    repeats = report["repeats"] if opts.repeats is None else opts.repeats
    collection = f"tune-reproduce-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="tune-reproduce-") as folder:
        where = [] if any(f in flags["ingest"] for f in ("--qdrant-url", "--opensearch-url")) or opts.store != "qdrant" else ["--qdrant-path", folder]
        ingest = build_parser().parse_args(["ingest", *flags["ingest"], "--input", opts.beir_dir, "--collection", collection, *where])
        search = build_parser().parse_args(["search", *flags["search"], "--query", "-", "--collection", collection, *where])
        print("ingest " + " ".join(flags["ingest"]))
        print("search " + " ".join(flags["search"]))

        # the tune run's encoded dataset (its model options: the flags' minus the pruning they add)
        tune_args = build_parser().parse_args(["tune", "--beir-dir", opts.beir_dir, *_model_only(flags["search"])])
        dataset = load_datasets(tune_args)[0]
        data = encode_dataset_cached(load_encoder(tune_args), dataset, opts.vectors_cache)
        documents, _ = encode_options(ingest)
        docs = prune_all(data.doc_vectors, documents.prune)
        config = store_config_from_args(ingest)
        started = time.perf_counter()
        store = open_store(config, create=True)
        try:
            store.begin_ingest()
            pruned = EncodedDataset(dataset=dataset, doc_ids=data.doc_ids, doc_vectors=docs, query_ids=[], query_vectors=[], dim=data.dim)
            for batch in pruned.encoded_documents(256):
                store.upsert(batch)
            store.finish_ingest()
            _wait_for_optimizer(config)
            size = store.storage_bytes()
            index_seconds = time.perf_counter() - started
            store.close()

            encoder = load_encoder(search)
            texts = [dataset.queries[q] for q in data.query_ids]
            queries = encoder.encode_queries(texts)
            with open_store(store_config_from_args(search), create=False) as searching:
                for vector in queries:  # as tune: a new index answers every query once unmeasured first
                    searching.search_batch([vector], top_k=search.top_k)
                load_before = os.getloadavg()
                hits, seconds = time_queries(searching, queries, _configured(), warmup=warmup, repeats=repeats, top_k=search.top_k)
                load_after = os.getloadavg()
            ndcg = ndcg_at_10(data, hits, sorted(data.doc_ids))
        finally:
            with open_store(config, create=False) as cleanup:
                cleanup.drop()
    row = {
        "ndcg@10": ndcg, "p50_ms": percentile_ms(seconds, 50), "p99_ms": percentile_ms(seconds, 99), "index_bytes": size,
        "doc_terms": float(np.mean([v.nnz for v in docs])), "query_terms": float(np.mean([v.nnz for v in queries])),
    }
    print(f"index built in {index_seconds:.1f} s; load average before/after the queries {load_before[0]:.2f} / {load_after[0]:.2f}")
    print("| run | nDCG@10 | p50 ms | p99 ms | index MB | doc terms | query terms |")
    print("|---|---|---|---|---|---|---|")
    for name, r in (("tune (measured)", measured), ("flags applied", row)):
        print(f"| {name} | {r['ndcg@10']:.4f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {(r['index_bytes'] or 0) / 1e6:.2f} | "
              f"{r['doc_terms']:.1f} | {r['query_terms']:.1f} |")
    return 0


def _wait_for_optimizer(config: object, timeout: float = 120.0) -> None:
    """A server optimizes in the background after writes; time the queries once the collection is green."""
    url = getattr(config, "url", None)
    if not url:
        return
    from qdrant_client import QdrantClient, models

    client = QdrantClient(url=url, api_key=getattr(config, "api_key", None))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get_collection(config.collection_name).status == models.CollectionStatus.GREEN:  # type: ignore[attr-defined]  # a QdrantConfig
            break
        time.sleep(0.5)
    client.close()


def _model_only(search_flags: list[str]) -> list[str]:
    """The model options among the search flags (what the tune run was given), without the query side's pruning."""
    keep = {"--model", "--encoder-backend", "--query-weights", "--dtype", "--max-length", "--top-k-terms"}
    out: list[str] = []
    for flag, value in zip(search_flags, search_flags[1:]):
        if flag in keep:
            out += [flag, value]
    return out


def _configured() -> object:
    """The two-phase setting the store's config has (from --two-phase), as `search` uses it."""
    from splade_connectors.store import CONFIGURED

    return CONFIGURED


if __name__ == "__main__":
    raise SystemExit(main())
