"""Changing the model with no downtime: build a new collection, evaluate it against the live one, switch an alias.

Users read and write through an alias (a Qdrant collection alias, an OpenSearch index alias); every
command accepts one wherever it takes a collection or index. `migrate` then:

1. builds a new collection `<alias>__<UTC timestamp>` (or a given name: rerunning with the same name
   resumes it) by the caller's normal ingestion (`build`, resumable, Ray allowed);
2. evaluates old (through the alias, with the old encoder) against new (with the new encoder) on a
   retrieval dataset (a BEIR folder or the user's queries and qrels): nDCG@10 through the stores;
3. switches the alias to the new collection only if new >= old + `min_delta` (or `force`), in one
   atomic request that also points `<alias>__previous` at the old collection (the only state kept:
   no local file, so `rollback` works from any machine);
4. replays the source into the alias (now the new collection) with `skip_unchanged`: documents
   added to or changed in the source while the new collection was built, and already written to the
   old collection through the alias, reach the new one too. Writes that do not come from the source
   must be paused during a migration (they would stay in the old collection only);
5. deletes the old collection only when asked (`delete_old`, or `cleanup` later).

`rollback` swaps the alias and `<alias>__previous` (a second rollback rolls forward again).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from splade_connectors.errors import ConfigError, NotFoundError
from splade_connectors.registry import build_store, open_store
from splade_connectors.store import AliasStore, SparseStore, StoreConfigBase
from trainer.retrieval.metrics import retrieval_metrics

if TYPE_CHECKING:
    from splade_connectors.encoding import SparseEncoder
    from splade_connectors.eval.datasets import RetrievalDataset

__all__ = [
    "Build", "MigrationReport", "cleanup", "current_target", "migrate", "new_collection_name", "previous_alias", "rollback",
    "store_score",
]

logger = logging.getLogger(__name__)

PREVIOUS_SUFFIX = "__previous"
METRIC = "ndcg@10"

# (target store config, catch_up) -> anything (e.g. an IngestReport). `catch_up` is False for the full
# build of the new collection and True for the replay through the alias after the switch, which must
# skip documents stored unchanged (`IngestConfig(skip_unchanged=True)`).
Build = Callable[[StoreConfigBase, bool], Any]


@dataclass
class MigrationReport:
    """What a migration did: collections, scores, the decision and why."""

    alias: str
    new: str
    old: str | None = None
    old_score: float | None = None
    new_score: float | None = None
    switched: bool = False
    reason: str = ""
    deleted_old: bool = False
    builds: list[Any] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "alias": self.alias, "old": self.old, "new": self.new, "metric": METRIC, "old_score": self.old_score,
            "new_score": self.new_score, "switched": self.switched, "reason": self.reason, "deleted_old": self.deleted_old,
        }


def previous_alias(alias: str) -> str:
    """The alias that remembers the collection a migration replaced (for rollback and cleanup)."""
    return alias + PREVIOUS_SUFFIX


def new_collection_name(alias: str) -> str:
    """`<alias>__<UTC timestamp>`: sortable, and unique per second."""
    return f"{alias}__{time.strftime('%Y%m%d%H%M%S', time.gmtime())}"


def _aliases(store: SparseStore) -> AliasStore:
    if not isinstance(store, AliasStore):
        raise ConfigError(f"{store.describe()}: this store has no aliases")
    return store


def _open(config: StoreConfigBase, encoder: SparseEncoder | None, *, create: bool = False) -> SparseStore:
    vocabulary = encoder.model.id_to_token() if encoder is not None else None
    return open_store(config, vocabulary=vocabulary, create=create)


def current_target(config: StoreConfigBase, encoder: SparseEncoder | None = None) -> str | None:
    """The collection the alias names now; None when nothing has that name. A collection of that name is an error."""
    alias = config.collection_name
    try:
        store = _open(config, encoder)
    except NotFoundError:
        return None
    with store:
        target = _aliases(store).resolve(alias)
    if target == alias:
        raise ConfigError(
            f"{config.describe()} is a collection, not an alias: migrate needs the users to read and write through an alias "
            "(ingest into another name, then point an alias at it)"
        )
    return target


def store_score(store: SparseStore, encoder: SparseEncoder, dataset: RetrievalDataset, *, top_k: int = 10) -> float:
    """nDCG@10 of the store's SPLADE search on the dataset's judged queries (queries encoded by `encoder`)."""
    query_ids = dataset.eval_query_ids()
    vectors = encoder.encode_queries([dataset.queries[q] for q in query_ids])
    hits = store.search_batch(vectors, top_k=top_k)
    ranking = {q: [(h.id, h.score) for h in found] for q, found in zip(query_ids, hits)}
    return float(retrieval_metrics(ranking, dataset.relevant_docs(), query_ids)[METRIC])


def migrate(
    config: StoreConfigBase,
    *,
    build: Build,
    new_encoder: SparseEncoder,
    old_encoder: SparseEncoder | None = None,
    dataset: RetrievalDataset | None = None,
    min_delta: float = 0.0,
    force: bool = False,
    delete_old: bool = False,
    new_name: str | None = None,
) -> MigrationReport:
    """Build a new collection for the alias `config` names, evaluate, switch if at least as good (see the module doc)."""
    alias = config.collection_name
    store = build_store(config, vocabulary=new_encoder.model.id_to_token())
    if not isinstance(store, AliasStore) or not store.supports_aliases:
        raise ConfigError(f"{config.describe()}: migrate needs aliases, which this store has not (use a Qdrant server or OpenSearch)")
    old = current_target(config, old_encoder or new_encoder)
    report = MigrationReport(alias=alias, new=new_name or new_collection_name(alias), old=old)
    if report.new in (alias, old, previous_alias(alias)):
        raise ConfigError(f"the new collection cannot be named {report.new!r} (the alias, or the collection it names)")
    if old is not None and dataset is None and not force:
        raise ConfigError("migrate needs evaluation data (a BEIR folder or queries + qrels) to compare the collections, or force")
    target = config.with_collection(report.new)
    logger.info("building %s for alias %s (now %s)", target.describe(), alias, old or "missing")
    report.builds.append(build(target, False))
    with _open(target, new_encoder) as new_store:
        if dataset is not None:
            report.new_score = store_score(new_store, new_encoder, dataset)
        if old is not None and dataset is not None:
            with _open(config, old_encoder or new_encoder) as old_store:
                report.old_score = store_score(old_store, old_encoder or new_encoder, dataset)
        report.switched, report.reason = _decide(report, min_delta, force)
        if not report.switched:
            logger.warning("alias %s left on %s: %s (new collection %s kept)", alias, old, report.reason, report.new)
            return report
        changes: dict[str, str | None] = {alias: report.new}
        if old is not None:
            changes[previous_alias(alias)] = old
        _aliases(new_store).update_aliases(changes)
        logger.info("alias %s -> %s (previous: %s)", alias, report.new, old)
    report.builds.append(build(config, True))  # catch-up: what reached the source during the build
    if delete_old and old is not None:
        cleanup(config, encoder=new_encoder)
        report.deleted_old = True
    return report


def _decide(report: MigrationReport, min_delta: float, force: bool) -> tuple[bool, str]:
    if report.old is None:
        return True, "the alias named no collection yet"
    if force:
        return True, "forced"
    assert report.old_score is not None and report.new_score is not None
    needed = report.old_score + min_delta
    if report.new_score >= needed:
        return True, f"{METRIC} {report.new_score:.4f} >= {report.old_score:.4f} + {min_delta:g}"
    return False, f"{METRIC} {report.new_score:.4f} < {report.old_score:.4f} + {min_delta:g}"


def _alias_pair(config: StoreConfigBase, encoder: SparseEncoder | None) -> tuple[SparseStore, str, str]:
    alias = config.collection_name
    store = _open(config, encoder)
    aliases = _aliases(store).aliases()
    current, previous = aliases.get(alias), aliases.get(previous_alias(alias))
    if current is None or previous is None:
        store.close()
        raise NotFoundError(f"{config.describe()}: no previous collection recorded (alias {previous_alias(alias)!r} is missing)")
    return store, current, previous


def rollback(config: StoreConfigBase, *, encoder: SparseEncoder | None = None) -> tuple[str, str]:
    """Point the alias back at the previous collection (and `__previous` at the one it leaves), atomically; (now, previous)."""
    alias = config.collection_name
    store, current, previous = _alias_pair(config, encoder)
    with store:
        _aliases(store).update_aliases({alias: previous, previous_alias(alias): current})
    logger.info("alias %s -> %s (previous: %s)", alias, previous, current)
    return previous, current


def cleanup(config: StoreConfigBase, *, encoder: SparseEncoder | None = None) -> str:
    """Delete the previous collection and its `__previous` alias (no rollback afterwards); the deleted name."""
    alias = config.collection_name
    store, _, previous = _alias_pair(config, encoder)
    with store:
        _aliases(store).update_aliases({previous_alias(alias): None})
    with _open(config.with_collection(previous), encoder) as old_store:
        old_store.drop()
    logger.info("deleted %s", previous)
    return previous

