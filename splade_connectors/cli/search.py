"""`splade-connectors search`: encode queries with the SPLADE model, search a store, print ranked hits.

With `--explain` each hit lists its top shared terms (decoded token, query weight x document weight).
Also holds the hit formatting (table and JSON) that `demo` reuses.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from splade_connectors.cli.common import add_model_options, load_encoder, print_json
from splade_connectors.cli.stores import add_store_options, open_store_from_args
from splade_connectors.errors import ConfigError
from splade_connectors.records import Hit
from splade_connectors.search import search


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("search", help="search a store with text queries", description=__doc__)
    parser.add_argument("--query", "-q", action="append", required=True, help="query text (repeatable)")
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--filter", action="append", default=[], metavar="FIELD=VALUE",
                        help="exact match on a metadata field (or doc_id); repeat to AND; VALUE a|b matches any")
    parser.add_argument("--score-threshold", type=float, default=None)
    parser.add_argument("--explain", action="store_true", help="show the top shared terms of each hit")
    parser.add_argument("--explain-terms", type=int, default=5, help="terms shown per hit with --explain")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    add_store_options(parser)
    add_model_options(parser)
    parser.set_defaults(func=run)


def parse_filters(specs: Sequence[str]) -> dict[str, Any] | None:
    """`field=value` / `field=a|b` options to the store-neutral filter dict."""
    out: dict[str, Any] = {}
    for spec in specs:
        field, sep, value = spec.partition("=")
        if not sep or not field:
            raise ConfigError(f"--filter {spec!r}: expected FIELD=VALUE")
        values: list[Any] = value.split("|")  # exact string match: ids like "4983" stay strings
        out[field] = values if len(values) > 1 else values[0]
    return out or None


def hit_to_json(rank: int, hit: Hit) -> dict[str, Any]:
    data: dict[str, Any] = {"rank": rank, "id": hit.id, "score": round(hit.score, 6), "title": hit.payload.get("title")}
    if hit.payload.get("metadata"):
        data["metadata"] = hit.payload["metadata"]
    if hit.terms is not None:
        data["terms"] = [
            {"token": t.token, "query_weight": round(t.query_weight, 4), "document_weight": round(t.document_weight, 4),
             "contribution": round(t.contribution, 4)}
            for t in hit.terms
        ]
    return data


def results_to_json(queries: Sequence[str], results: Sequence[Sequence[Hit]]) -> list[dict[str, Any]]:
    return [{"query": q, "hits": [hit_to_json(r, h) for r, h in enumerate(hits, 1)]} for q, hits in zip(queries, results)]


def _excerpt(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def format_results(query: str, hits: Sequence[Hit], width: int = 48) -> str:
    """A plain-text table of one query's hits (rank, score, id, title, top terms)."""
    lines = [f'query: "{query}"']
    if not hits:
        return "\n".join([*lines, "  (no hits)"])
    id_width = max(4, *(len(h.id) for h in hits))
    lines.append(f"  {'#':>2}  {'score':>8}  {'id':<{id_width}}  {'title / text':<{width}}  top terms")
    for rank, hit in enumerate(hits, 1):
        title = _excerpt(str(hit.payload.get("title") or hit.payload.get("text") or ""), width)
        terms = ", ".join(f"{t.token}({t.contribution:.1f})" for t in hit.terms or [])
        lines.append(f"  {rank:>2}  {hit.score:>8.3f}  {hit.id:<{id_width}}  {title:<{width}}  {terms}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    filters = parse_filters(args.filter)
    encoder = load_encoder(args)
    with open_store_from_args(args, encoder, create=False) as store:  # errors are reported by the CLI's main
        results = search(
            store, encoder, args.query, top_k=args.top_k, explain=args.explain, explain_terms=args.explain_terms,
            filter=filters, score_threshold=args.score_threshold,
        )
    if args.json:
        print_json({"store": args.store, "collection": store.name, "results": results_to_json(args.query, results)})
    else:
        print(store.describe())
        for query, hits in zip(args.query, results):
            print(format_results(query, hits))
    return 0
