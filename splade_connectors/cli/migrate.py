"""`splade-connectors migrate`: a new model or new options with no downtime, behind an alias.

`--collection`/`--index` name the alias users read and write through. The command ingests the
input into a new collection `<alias>__<UTC timestamp>` (`--new-collection NAME` to choose it, or to
resume an interrupted build) with the model options given (the new model), evaluates old against new
through the stores (nDCG@10 on `--eval-beir FOLDER`, or `--eval-queries` + `--eval-qrels`; the old
collection's queries are encoded with `--old-model-options`), switches the alias atomically when new >=
old + `--min-delta` (or `--force`), then replays the input with `--skip-unchanged` into the alias so
documents that reached the source during the build are not lost. `<alias>__previous` names the old
collection: `migrate --rollback` switches back, `migrate --cleanup` (or `--delete-old`) deletes it.
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from splade_connectors.cli.ingesting import add_ingest_options, ingest_config, run_ray, run_single
from splade_connectors.cli.model import add_model_options, load_encoder
from splade_connectors.cli.output import print_json
from splade_connectors.cli.stores import add_store_options, store_config_from_args
from splade_connectors.errors import ConfigError
from splade_connectors.ingest.sources import beir_corpus_path
from splade_connectors.store import StoreConfigBase

if TYPE_CHECKING:
    from splade_connectors.eval.datasets import RetrievalDataset


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("migrate", help="re-encode into a new collection and switch an alias to it, with rollback",
                                   description=__doc__)
    action = parser.add_argument_group("migration")
    mode = action.add_mutually_exclusive_group()
    mode.add_argument("--rollback", action="store_true", help="point the alias back at the previous collection")
    mode.add_argument("--cleanup", action="store_true", help="delete the previous collection (no rollback afterwards)")
    action.add_argument("--new-collection", default=None, metavar="NAME",
                        help="name of the new collection (default: <alias>__<UTC timestamp>; give it again to resume a build)")
    action.add_argument("--old-model-options", default="", metavar="OPTIONS",
                        help="model options the current collection was built with, to encode its queries, "
                             "e.g. \"--model DIR --top-k-terms 64\" (default: the defaults)")
    action.add_argument("--eval-beir", type=Path, default=None, metavar="FOLDER",
                        help="BEIR folder whose queries.jsonl and qrels/<split>.tsv judge the collections")
    action.add_argument("--eval-split", default="test", help="qrels split of --eval-beir (default: test)")
    action.add_argument("--eval-queries", type=Path, default=None, metavar="JSONL", help="your queries ({_id, text} per line)")
    action.add_argument("--eval-qrels", type=Path, default=None, metavar="TSV", help="your qrels (query-id, corpus-id, score)")
    action.add_argument("--min-delta", type=float, default=0.0, help="switch only if new nDCG@10 >= old + this (default 0)")
    action.add_argument("--force", action="store_true", help="switch whatever the evaluation says (or without one)")
    action.add_argument("--delete-old", action="store_true", help="delete the old collection after the switch")
    add_ingest_options(parser, input_required=False)
    add_store_options(parser)
    add_model_options(parser)
    parser.set_defaults(func=run)


def _old_model_args(text: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="--old-model-options", add_help=False, exit_on_error=False)
    add_model_options(parser)
    try:
        known, unknown = parser.parse_known_args(shlex.split(text))
    except (argparse.ArgumentError, ValueError) as exc:
        raise ConfigError(f"--old-model-options: {exc}") from None
    if unknown:
        raise ConfigError(f"--old-model-options: not a model option: {' '.join(unknown)}")
    return known


def load_eval_data(args: argparse.Namespace) -> RetrievalDataset | None:
    """Queries and qrels that judge old against new (None when none were given)."""
    from splade_connectors.eval.datasets import RetrievalDataset

    if args.eval_beir is not None:
        if args.eval_queries or args.eval_qrels:
            raise ConfigError("give --eval-beir or --eval-queries + --eval-qrels, not both")
        queries_path, qrels_path = args.eval_beir / "queries.jsonl", args.eval_beir / "qrels" / f"{args.eval_split}.tsv"
    elif args.eval_queries or args.eval_qrels:
        if not (args.eval_queries and args.eval_qrels):
            raise ConfigError("--eval-queries and --eval-qrels go together")
        queries_path, qrels_path = args.eval_queries, args.eval_qrels
    else:
        return None
    queries: dict[str, str] = {}
    with open(queries_path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                queries[str(row["_id"])] = str(row["text"])
    qrels: dict[str, dict[str, int]] = {}
    with open(qrels_path, encoding="utf-8", newline="") as handle:
        for fields in csv.reader(handle, delimiter="\t"):
            if len(fields) < 3 or not fields[2].strip().lstrip("-").isdigit():
                continue  # header or blank line
            qrels.setdefault(fields[0], {})[fields[1]] = int(fields[2])
    data = RetrievalDataset(name=qrels_path.stem, corpus={}, queries=queries, qrels=qrels, source=str(qrels_path))
    if not data.eval_query_ids():
        raise ConfigError(f"{qrels_path}: no judged query of {queries_path} has a relevant document")
    return data


def run(args: argparse.Namespace) -> int:
    from splade_connectors import migrate

    config = store_config_from_args(args)
    if args.rollback or args.cleanup:
        encoder = load_encoder(args) if args.store != "qdrant" else None  # OpenSearch checks the index's vocabulary
        if args.rollback:
            now, previous = migrate.rollback(config, encoder=encoder)
            result: dict[str, Any] = {"alias": config.collection_name, "now": now, "previous": previous}
        else:
            result = {"alias": config.collection_name, "deleted": migrate.cleanup(config, encoder=encoder)}
        _print(args, result)
        return 0
    if not args.input:
        raise ConfigError("give --input (the source to build the new collection from), or --rollback / --cleanup")
    corpus = beir_corpus_path(args.input)
    dataset = load_eval_data(args)
    full = ingest_config(args)
    catch_up = full.model_copy(update={"skip_unchanged": True, "checkpoint": None})
    new_encoder = load_encoder(args)
    old_encoder = load_encoder(_old_model_args(args.old_model_options)) if dataset is not None else None

    def build(target: StoreConfigBase, replay: bool) -> Any:
        settings = catch_up if replay else full
        if args.engine == "ray":
            return run_ray(args, corpus, settings, target=target)[0]
        return run_single(args, corpus, settings, target=target, encoder=new_encoder)[0]

    report = migrate.migrate(
        config, build=build, new_encoder=new_encoder, old_encoder=old_encoder, dataset=dataset, min_delta=args.min_delta,
        force=args.force, delete_old=args.delete_old, new_name=args.new_collection,
    )
    _print(args, report.to_dict())
    return 0


def _print(args: argparse.Namespace, result: dict[str, Any]) -> None:
    if args.json:
        print_json(result)
    else:
        print(", ".join(f"{key}: {value}" for key, value in result.items() if value is not None))

