"""Retrieval quality per encoding precision: fp32 (the reference), bf16, int8.

Encodes SciFact (all 5,183 documents, title + newline + text, 300 test queries, binary relevance) and the
DL19 subset (5,000 passages, 43 queries, relevant if grade >= 2) once per precision with the shipped SPLADE,
ranks them by exact dot product (`splade_connectors.eval`, backend `exact`) and reports nDCG@10, recall@100
and the mean Jaccard overlap of active terms against the fp32 vectors (documents and queries apart), plus
the largest absolute weight difference. Each precision is encoded in its own subprocess (clean memory,
one precision's kernels do not warm the next one's caches).

    python bench/precision_quality.py                        # the definitive run (minutes per precision)
    python bench/precision_quality.py --max-docs 300 --max-queries 20   # smoke run

Quality does not depend on the machine beyond rounding order; speed does (see bench/encode.py).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("SPLADE_CONNECTORS_SHARED_DATA", REPO.parent / "shared" / "data"))
DATASETS = {"scifact": (SHARED / "beir" / "scifact", 1), "dl19": (SHARED / "beir" / "msmarco-dl19-subset", 2)}


def load(name: str, max_docs: int | None, max_queries: int | None) -> Any:
    """The dataset, optionally cut to its first queries and (all judged +) first documents, for smoke runs."""
    from splade_connectors.eval.datasets import load_retrieval_dataset

    folder, threshold = DATASETS[name]
    dataset = replace(load_retrieval_dataset(folder, relevance_threshold=threshold), name=name)
    if max_queries:
        kept = dataset.eval_query_ids()[:max_queries]
        dataset = replace(dataset, queries={q: dataset.queries[q] for q in kept}, qrels={q: dataset.qrels[q] for q in kept})
    if max_docs:
        judged = {d for q in dataset.eval_query_ids() for d in dataset.qrels[q]}
        doc_ids = [d for d in dataset.corpus if d in judged] + [d for d in dataset.corpus if d not in judged]
        dataset = dataset.subset(doc_ids[: max(max_docs, len(judged))])
    return dataset


def encode_child(args: argparse.Namespace) -> None:
    """Encode every dataset in one precision; pickle (ids, indices, values) for the parent."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from splade_connectors.eval.encoding import encode_dataset
    from trainer.encoder import EncodeOptions, SpladeEncoder
    from trainer.model import SpladeModel
    from trainer.models import shipped_model_dir

    encoder = SpladeEncoder(
        SpladeModel.from_pretrained(shipped_model_dir()), device="cpu", dtype=args.child,
        options=EncodeOptions(batch_size=args.batch_size),
    )
    out: dict[str, Any] = {"precision": encoder.precision.precision, "reason": encoder.precision.reason, "datasets": {}}
    for name in args.datasets:
        data = encode_dataset(encoder, load(name, args.max_docs, args.max_queries))
        out["datasets"][name] = {
            "doc_ids": data.doc_ids, "query_ids": data.query_ids, "seconds": data.encode_seconds,
            "docs": [(v.indices, v.values) for v in data.doc_vectors],
            "queries": [(v.indices, v.values) for v in data.query_vectors],
        }
    with open(args.pickle, "wb") as handle:
        pickle.dump(out, handle)


def jaccard(a: Any, b: Any) -> float:
    left, right = set(a[0].tolist()), set(b[0].tolist())
    return len(left & right) / len(left | right) if left | right else 1.0


def max_abs_difference(a: Any, b: Any) -> float:
    left, right = dict(zip(a[0].tolist(), a[1].tolist())), dict(zip(b[0].tolist(), b[1].tolist()))
    return max((abs(left.get(k, 0.0) - right.get(k, 0.0)) for k in left.keys() | right.keys()), default=0.0)


def score(name: str, encoded: dict[str, Any], args: argparse.Namespace) -> dict[str, float]:
    """nDCG@10 (and the rest of the evaluator's metrics) plus recall@100 through the exact backend."""
    import numpy as np

    from splade_connectors.eval.encoding import EncodedDataset
    from splade_connectors.eval.runner import evaluate_encoded, resolve_backends
    from trainer.sparse import SparseVector

    dataset = load(name, args.max_docs, args.max_queries)
    dim = 30522

    def vectors(rows: list[Any]) -> list[SparseVector]:
        return [SparseVector(np.asarray(i), np.asarray(v), dim) for i, v in rows]

    data = EncodedDataset(
        dataset=dataset, doc_ids=encoded["doc_ids"], doc_vectors=vectors(encoded["docs"]),
        query_ids=encoded["query_ids"], query_vectors=vectors(encoded["queries"]), dim=dim,
    )
    report = evaluate_encoded([data], resolve_backends(["exact"]), keep_rankings=True)
    metrics = report.results[name]["exact"]
    relevant = dataset.relevant_docs()
    ranking = report.rankings[name]["exact"]
    recall = [len({d for d, _ in ranking[q][:100]} & relevant[q]) / len(relevant[q]) for q in data.query_ids]
    return {"ndcg@10": metrics["ndcg@10"], "recall@100": float(np.mean(recall)), "mrr@10": metrics["mrr@10"],
            "doc_active": metrics.get("corpus_active_dims", float("nan"))}


def parent(args: argparse.Namespace) -> None:
    import numpy as np

    from trainer.cpu import cpu_features

    results: dict[str, Any] = {"cpu": cpu_features().describe(), "load_average": os.getloadavg()[0], "runs": {}}
    encodings: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in args.precisions:
            path = Path(tmp) / f"{precision}.pkl"
            cmd = [sys.executable, __file__, "--child", precision, "--pickle", str(path), "--batch-size", str(args.batch_size),
                   "--datasets", *args.datasets]
            for flag, value in (("--max-docs", args.max_docs), ("--max-queries", args.max_queries), ("--threads", args.threads)):
                if value:
                    cmd += [flag, str(value)]
            started = time.perf_counter()
            subprocess.run(cmd, check=True)
            print(f"encoded in {precision}: {time.perf_counter() - started:.0f} s", flush=True)
            with open(path, "rb") as handle:
                encodings[precision] = pickle.load(handle)
    reference = encodings.get("fp32")
    for precision, encoded in encodings.items():
        run: dict[str, Any] = {"reason": encoded["reason"]}
        for name in args.datasets:
            data = encoded["datasets"][name]
            row = score(name, data, args)
            row["encode_seconds"] = data["seconds"]
            if reference is not None:
                ref = reference["datasets"][name]
                row["jaccard_docs"] = float(np.mean([jaccard(a, b) for a, b in zip(data["docs"], ref["docs"])]))
                row["jaccard_docs_min"] = float(np.min([jaccard(a, b) for a, b in zip(data["docs"], ref["docs"])]))
                row["jaccard_queries"] = float(np.mean([jaccard(a, b) for a, b in zip(data["queries"], ref["queries"])]))
                row["max_abs_weight_diff"] = float(max(max_abs_difference(a, b) for a, b in zip(data["docs"], ref["docs"])))
            run[name] = row
        results["runs"][precision] = run
    print(f"\nCPU: {results['cpu']}; load average at start {results['load_average']:.1f}\n")
    print("| precision | dataset | nDCG@10 | recall@100 | Jaccard docs (mean / min) | Jaccard queries | max |Δw| | encode s |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for precision, run in results["runs"].items():
        for name in args.datasets:
            r = run[name]
            print(f"| {precision} | {name} | {r['ndcg@10']:.4f} | {r['recall@100']:.4f} | "
                  f"{r.get('jaccard_docs', 1):.4f} / {r.get('jaccard_docs_min', 1):.3f} | {r.get('jaccard_queries', 1):.4f} | "
                  f"{r.get('max_abs_weight_diff', 0):.3f} | {r['encode_seconds']:.0f} |")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "int8"])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-docs", type=int, default=None, help="smoke runs: judged documents + filler up to this")
    parser.add_argument("--max-queries", type=int, default=None, help="smoke runs: first evaluated queries only")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="write all numbers as JSON")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--pickle", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        encode_child(args)
    else:
        parent(args)


if __name__ == "__main__":
    main()
