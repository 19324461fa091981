"""`splade-connectors demo`: the whole job offline in a few seconds.

Ingests the sample corpus the package carries into embedded in-memory Qdrant with the shipped
trained SPLADE model, runs a few built-in queries (or `--query`), and prints ranked hits with the
terms that matched.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from splade_connectors.cli.model import add_model_options, load_encoder
from splade_connectors.cli.output import format_results, ingest_report_to_json, print_json, results_to_json
from splade_connectors.cli.values import positive_int
from splade_connectors.ingest import ingest_file
from splade_connectors.registry import open_store, store_config
from splade_connectors.samples import SAMPLE_CORPUS
from splade_connectors.search import search

# Built-in queries and the sample document each should find first.
DEMO_QUERIES: dict[str, str] = {
    "why do onions make my eyes water": "cook-03",
    "how do bees turn nectar into honey": "bio-01",
    "what makes a volcano erupt": "geo-01",
    "do antibiotics work against a cold": "med-02",
}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("demo", help="offline demo: sample corpus -> embedded Qdrant -> search", description=__doc__)
    parser.add_argument("--query", "-q", action="append", default=None, help="your own query (repeatable)")
    parser.add_argument("--top-k", type=positive_int, default=3)
    parser.add_argument("--terms", type=positive_int, default=4, help="matching terms shown per hit")
    parser.add_argument("--corpus", type=Path, default=SAMPLE_CORPUS, help="JSONL corpus (default: the bundled sample)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    add_model_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    queries = args.query or list(DEMO_QUERIES)
    started = time.perf_counter()
    encoder = load_encoder(args)
    with open_store(store_config("qdrant", collection="demo")) as store:
        report = ingest_file(args.corpus, encoder, store)
        results = search(store, encoder, queries, top_k=args.top_k, explain=True, explain_terms=args.terms)
    seconds = time.perf_counter() - started
    if args.json:
        print_json({
            "store": "qdrant (embedded, in-memory)", "collection": "demo", "corpus": str(args.corpus),
            "ingest": ingest_report_to_json(report), "seconds": round(seconds, 2),
            "results": results_to_json(queries, results),
        })
        return 0
    print(f"ingested {report.accepted} documents from {args.corpus.name} into embedded Qdrant "
          f"in {report.seconds:.1f}s; term(contribution = query weight x document weight)\n")
    for query, hits in zip(queries, results):
        print(format_results(query, hits))
        print()
    print(f"done in {seconds:.1f}s. Try: splade-connectors demo --query \"your question\"")
    return 0
