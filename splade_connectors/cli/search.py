"""`splade-connectors search`: encode queries with the SPLADE model, search a store, print ranked hits.

With `--explain` each hit lists its top shared terms (decoded token, query weight x document weight).
The query path itself (encode, search, explain) is the library's `splade_connectors.search.search`;
this module parses options; hits are printed by `cli.output` (table and JSON, as `demo` prints them).

Filters (`--filter`, repeat to AND; `a|b` matches any of the values):
- `FIELD=VALUE` matches the value as a string, and also as a number or boolean when the value
  reads as one (`2020`, `-3`, `true`): stores compare types strictly (Qdrant), and document ids such
  as SciFact's `4983` are strings while a `year` metadata field may be an integer, so
  `--filter doc_id=4983` and `--filter year=2020` both find what they name, on every store.
- `FIELD:str=VALUE`, `FIELD:int=VALUE`, `FIELD:bool=VALUE` match that type only.
FIELD means what a filter key means on every store (`splade_connectors.filters`): `doc_id` the
document id, `title` the title (whole, exactly), any other field the document's metadata (a dotted
FIELD such as `source.name` a nested metadata field).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import Any

from splade_connectors.cli.model import add_model_options, load_encoder
from splade_connectors.cli.output import format_results, print_json, results_to_json
from splade_connectors.cli.stores import add_store_options, open_store_from_args, store_config_from_args
from splade_connectors.cli.values import finite_float, positive_int
from splade_connectors.errors import ConfigError
from splade_connectors.search import search

_FILTER = re.compile(r"^(?P<field>[^=:]+)(?::(?P<type>[^=]*))?=(?P<value>.*)$", re.DOTALL)
_CANONICAL_INT = re.compile(r"^-?(0|[1-9][0-9]*)$")
_BOOLS = {"true": True, "false": False}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("search", help="search a store with text queries", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--query", "-q", action="append", required=True, help="query text (repeatable)")
    parser.add_argument("--top-k", type=positive_int, default=10)
    parser.add_argument("--filter", action="append", default=[], metavar="FIELD[:TYPE]=VALUE",
                        help="exact match on a metadata field (or doc_id, title); repeat to AND; VALUE a|b matches any; "
                             "TYPE str, int or bool (default: the string, or the number/boolean it reads as)")
    parser.add_argument("--score-threshold", type=finite_float, default=None)
    parser.add_argument("--explain", action="store_true", help="show the top shared terms of each hit")
    parser.add_argument("--explain-terms", type=positive_int, default=5, help="terms shown per hit with --explain")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--passages", action="store_true",
                        help="require a passage collection (ingested with --passages); it is searched per document either "
                             "way: each document once, by its best passage, shown with its span and text")
    parser.add_argument("--allow-model-mismatch", action="store_true",
                        help="search a collection written by another model anyway (warns; scores are then meaningless)")
    add_store_options(parser)
    add_model_options(parser)
    parser.set_defaults(func=run)


def _typed(spec: str, kind: str | None, text: str) -> list[Any]:
    """The values one `--filter` alternative matches."""
    if kind == "str":
        return [text]
    if kind == "int":
        try:
            return [int(text)]
        except ValueError:
            raise ConfigError(f"--filter {spec!r}: {text!r} is not an integer") from None
    if kind == "bool":
        if text.lower() not in _BOOLS:
            raise ConfigError(f"--filter {spec!r}: {text!r} is not true or false")
        return [_BOOLS[text.lower()]]
    if _CANONICAL_INT.match(text):
        return [text, int(text)]
    if text in _BOOLS:
        return [text, _BOOLS[text]]
    return [text]


def parse_filters(specs: Sequence[str]) -> dict[str, Any] | None:
    """`FIELD[:TYPE]=VALUE` / `FIELD=a|b` options to the store-neutral filter dict (a list = any of)."""
    out: dict[str, Any] = {}
    for spec in specs:
        match = _FILTER.match(spec)
        if match is None or not match.group("field").strip():
            raise ConfigError(f"--filter {spec!r}: expected FIELD=VALUE or FIELD:TYPE=VALUE")
        field, kind = match.group("field").strip(), match.group("type")
        if kind is not None and kind not in ("str", "int", "bool"):
            raise ConfigError(f"--filter {spec!r}: unknown type {kind!r}; use str, int or bool")
        if field in out:
            raise ConfigError(f"--filter {spec!r}: {field!r} is filtered twice; use {field}=a|b to match any of several values")
        values = [v for text in match.group("value").split("|") for v in _typed(spec, kind, text)]
        out[field] = values if len(values) > 1 else values[0]
    return out or None


def run(args: argparse.Namespace) -> int:
    filters = parse_filters(args.filter)
    config = store_config_from_args(args)  # bad store options fail here, before the model loads
    encoder = load_encoder(args)
    # create=False: a missing collection/index is a NotFoundError, never created by a search
    with open_store_from_args(args, encoder, create=False, config=config) as store:
        results = search(
            store, encoder, args.query, top_k=args.top_k, explain=args.explain, explain_terms=args.explain_terms,
            filter=filters, score_threshold=args.score_threshold, allow_model_mismatch=args.allow_model_mismatch,
            passages=True if args.passages else None,
        )
    if args.json:
        print_json({"store": args.store, "collection": store.name, "results": results_to_json(args.query, results)})
    else:
        print(store.describe())
        for query, hits in zip(args.query, results):
            print(format_results(query, hits))
    return 0
