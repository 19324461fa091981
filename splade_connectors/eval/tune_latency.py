"""Choosing a deployment by measurement: quality, query latency and index size through the live store.

`tune --latency` sweeps four knobs on a dataset encoded once, in each store named:

- document side (one fresh collection/index per setting, loaded once): document pruning (`trainer.pruning`)
  x the index datatype (Qdrant's sparse `float32`/`float16`/`uint8`; OpenSearch's `rank_features` has one);
- query side (queries against that index, nothing re-indexed): query pruning x two-phase spec
  (`splade_connectors.two_phase`, off = the exact query).

Every configuration is measured through the store: nDCG@10 of the top 10 it returns (the `search` command's
default depth), p50/p99/mean latency of single queries (`search_batch` with one vector, timed around the
store call only, garbage collection paused: the query vectors are encoded once beforehand; every new index
first answers all queries once unmeasured, and each configuration runs `warmup` queries unmeasured before its
timed passes), and the index size the store reports (`SparseStore.storage_bytes`). Quality is compared with the
store's baseline (unpruned, float32, exact queries), as a relative nDCG@10 change, the same measure as `--max-loss`.

The Pareto set (no other configuration has higher nDCG@10, lower p99 and a smaller index all at once, one
of them strictly) is reported per store, and one configuration is recommended per store:
- without a latency budget: the fastest within the quality budget (p99 within `tolerance`, default 10%, of the
  lowest counts as equally fast; among those the smallest index, then the best nDCG@10);
- with `max_p99_ms`: the best nDCG@10 among those whose p99 is within it (and within the quality budget
  when one was given), ties to the faster, then smaller.
The recommendation is written as the `ingest` and `search` flags that rebuild it (`recommended_flags`).
"""

from __future__ import annotations

import gc
import itertools
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from splade_connectors.errors import ConfigError, StoreError
from splade_connectors.eval.backends import StoreFactory, collection_name
from splade_connectors.eval.encoding import EncodedDataset
from splade_connectors.eval.report import save_figure
from splade_connectors.eval.runner import pad_ranking
from splade_connectors.retry import RetryPolicy
from splade_connectors.two_phase import TwoPhase
from trainer.pruning import PRUNE_RULES, Pruning, prune_all
from trainer.retrieval.metrics import retrieval_metrics
from trainer.sparse import SparseVector

logger = logging.getLogger(__name__)

TOP_K = 10
DEFAULT_TOLERANCE = 0.1  # p99s within 10% of the fastest are equally fast (single-query p99 noise)
DATATYPES: tuple[str, ...] = ("float32", "float16", "uint8")  # Qdrant's sparse index datatypes
BASE_DATATYPE = "float32"
AXES: tuple[str, ...] = ("datatype", "two_phase")  # `--rules` names these beside the pruning rules

# the default grid: values that bracket the 0.5% budget on SciFact with the shipped model (docs/evaluation.md)
_DOC_GRID: dict[str, tuple[float, ...]] = {"top_k": (64, 128), "max_ratio": (0.2,), "alpha_mass": (0.9,)}
_QUERY_GRID: dict[str, tuple[float, ...]] = {"top_k": (16, 32), "max_ratio": (0.2,), "alpha_mass": (0.9,)}
_ABS_VALUE_QUANTILE = 0.25
DEFAULT_TWO_PHASE: tuple[str, ...] = ("ratio=0.4,expansion=5", "ratio=0.2,expansion=10", "count=8,expansion=20")


@dataclass(frozen=True)
class LatencyGrid:
    """The values of each knob; None is the knob's baseline (unpruned, exact) and is always measured."""

    doc_pruning: tuple[Pruning | None, ...] = (None,)
    datatypes: tuple[str, ...] = (BASE_DATATYPE,)
    query_pruning: tuple[Pruning | None, ...] = (None,)
    two_phase: tuple[TwoPhase | None, ...] = (None,)

    def __post_init__(self) -> None:
        unknown = [d for d in self.datatypes if d not in DATATYPES]
        if unknown:
            raise ConfigError(f"unknown datatype {unknown[0]!r}; choose from {', '.join(DATATYPES)}")
        # the baseline of every knob first, duplicates dropped (order kept)
        object.__setattr__(self, "doc_pruning", _with_first(None, self.doc_pruning))
        object.__setattr__(self, "datatypes", _with_first(BASE_DATATYPE, self.datatypes))
        object.__setattr__(self, "query_pruning", _with_first(None, self.query_pruning))
        object.__setattr__(self, "two_phase", _with_first(None, self.two_phase))

    @property
    def document_sides(self) -> int:
        return len(self.doc_pruning) * len(self.datatypes)

    @property
    def query_sides(self) -> int:
        return len(self.query_pruning) * len(self.two_phase)


def _with_first(first: Any, values: Iterable[Any]) -> tuple[Any, ...]:
    out: list[Any] = [first]
    for value in values:
        if value not in out:
            out.append(value)
    return tuple(out)


def _two_digits(value: float) -> float:
    return float(f"{value:.2g}")


def _rule_values(rule: str, grid: Mapping[str, tuple[float, ...]], vectors: Sequence[SparseVector]) -> list[float]:
    largest = max((v.nnz for v in vectors), default=0)
    if rule == "abs_value":
        if not vectors:
            return []
        weights = np.concatenate([v.values for v in vectors])
        value = _two_digits(float(np.quantile(weights, _ABS_VALUE_QUANTILE))) if weights.size else 0.0
        return [value] if value > 0 else []
    values = grid.get(rule, ())
    return [v for v in values if rule != "top_k" or v < largest]


def default_grid(
    data: EncodedDataset, rules: Sequence[str] | None = None, *, datatypes: Sequence[str] = DATATYPES,
    apply_to: str = "both",
) -> LatencyGrid:
    """The default sweep, restricted to `rules` (pruning rules and/or `datatype`, `two_phase`) when given.

    Documents: top_k 64/128, max_ratio 0.2, alpha_mass 0.9, abs_value at the 25% weight quantile; queries:
    top_k 16/32, max_ratio 0.2, alpha_mass 0.9, abs_value likewise; datatypes: all the store has; two-phase:
    off and three specs from bench/README.md. `apply_to` documents/queries leaves the other side unpruned."""
    chosen = list(rules) if rules is not None else [*PRUNE_RULES, *AXES]
    unknown = [r for r in chosen if r not in (*PRUNE_RULES, *AXES)]
    if unknown:
        raise ConfigError(f"--rules: unknown {unknown[0]!r}; choose from {', '.join((*PRUNE_RULES, *AXES))}")
    prune_rules = [r for r in PRUNE_RULES if r in chosen]
    docs: list[Pruning | None] = []
    queries: list[Pruning | None] = []
    if apply_to in ("documents", "both"):
        docs = [Pruning(rule=r, value=v) for r in prune_rules for v in _rule_values(r, _DOC_GRID, data.doc_vectors)]
    if apply_to in ("queries", "both"):
        queries = [Pruning(rule=r, value=v) for r in prune_rules for v in _rule_values(r, _QUERY_GRID, data.query_vectors)]
    return LatencyGrid(
        doc_pruning=tuple(docs),
        datatypes=tuple(datatypes) if "datatype" in chosen else (BASE_DATATYPE,),
        query_pruning=tuple(queries),
        two_phase=tuple(TwoPhase.parse(s) for s in DEFAULT_TWO_PHASE) if "two_phase" in chosen else (None,),
    )


_PREFIXES = {"docs": "docs", "documents": "docs", "queries": "queries", "datatype": "datatype",
             "two-phase": "two_phase", "two_phase": "two_phase"}


def parse_grid(text: str, apply_to: str = "both") -> LatencyGrid:
    """`--settings` of a latency sweep: comma-separated `AXIS:VALUE` entries, each axis listing its values:
    `docs:top_k=128`, `queries:top_k=16`, `datatype:uint8`, `two-phase:ratio=0.4,expansion=5` (a two-phase
    spec keeps its own commas). An entry without an axis is a pruning rule for the side(s) `apply_to` names.
    Axes not named keep only their baseline (unpruned, float32, exact)."""
    entries: list[tuple[str, str]] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        axis, sep, value = part.partition(":")
        if sep and axis.strip().lower() in _PREFIXES:
            entries.append((_PREFIXES[axis.strip().lower()], value.strip()))
        elif entries and entries[-1][0] == "two_phase" and part.split("=")[0].strip() not in PRUNE_RULES:
            entries[-1] = ("two_phase", f"{entries[-1][1]},{part}")  # expansion=E / max_window=W continue a spec
        else:
            sides = {"documents": ["docs"], "queries": ["queries"]}.get(apply_to, ["docs", "queries"])
            entries.extend((side, part) for side in sides)
    if not entries:
        raise ConfigError("--settings: no setting given")
    docs: list[Pruning | None] = []
    queries: list[Pruning | None] = []
    datatypes: list[str] = []
    phases: list[TwoPhase | None] = []
    for axis, value in entries:
        off = value.lower() in ("off", "none", "unpruned", "exact")
        if axis == "docs":
            docs.append(None if off else Pruning.parse(value))
        elif axis == "queries":
            queries.append(None if off else Pruning.parse(value))
        elif axis == "datatype":
            datatypes.append(value.lower())
        else:
            phases.append(None if off else TwoPhase.parse(value))
    return LatencyGrid(doc_pruning=tuple(docs), datatypes=tuple(datatypes), query_pruning=tuple(queries), two_phase=tuple(phases))


# ---- measurements --------------------------------------------------------------------------------------
@dataclass
class LatencyRow:
    """One configuration on one store: what it costs and what it returns."""

    store: str
    doc_pruning: str | None
    datatype: str | None
    query_pruning: str | None
    two_phase: str | None
    ndcg_at_10: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    index_bytes: int | None
    doc_terms: float
    query_terms: float
    ndcg_change: float = 0.0
    within_budget: bool = True
    pareto: bool = False

    @property
    def label(self) -> str:
        parts = [f"docs {self.doc_pruning or 'unpruned'}"]
        if self.datatype is not None:
            parts.append(self.datatype)
        parts.append(f"queries {self.query_pruning or 'unpruned'}")
        parts.append(f"two-phase {self.two_phase}" if self.two_phase else "exact")
        return ", ".join(parts)

    @property
    def is_baseline(self) -> bool:
        return (self.doc_pruning, self.query_pruning, self.two_phase) == (None, None, None) and self.datatype in (None, BASE_DATATYPE)

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": self.store, "label": self.label, "doc_pruning": self.doc_pruning, "datatype": self.datatype,
            "query_pruning": self.query_pruning, "two_phase": self.two_phase, "ndcg@10": self.ndcg_at_10,
            "ndcg@10_change": self.ndcg_change, "p50_ms": self.p50_ms, "p99_ms": self.p99_ms, "mean_ms": self.mean_ms,
            "index_bytes": self.index_bytes, "doc_terms": self.doc_terms, "query_terms": self.query_terms,
            "within_budget": self.within_budget, "pareto": self.pareto,
        }


@dataclass
class StoreTarget:
    """A store to sweep: its kind (qdrant/opensearch), how it is described, and a factory per datatype."""

    name: str
    describe: str
    factory: Callable[[str | None], StoreFactory]  # datatype (None: the store has none) -> collection factory
    datatypes: bool = True  # whether the store has an index datatype


@dataclass
class LatencyReport:
    """Every configuration measured, per store; budgets, recommendations, Pareto sets and the time taken."""

    dataset: str
    documents: int
    queries: int
    max_loss: float | None
    max_p99_ms: float | None
    rows: list[LatencyRow]
    stores: dict[str, str]  # name -> description
    tolerance: float = DEFAULT_TOLERANCE
    recommended: dict[str, int | None] = field(default_factory=dict)  # store -> index into rows
    seconds: dict[str, float] = field(default_factory=dict)  # encode / index / queries / total
    warmup: int = 0
    repeats: int = 1
    flags: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # store -> {"ingest": [...], "search": [...]}
    load_average: list[float] = field(default_factory=list)

    def store_rows(self, store: str) -> list[LatencyRow]:
        return [r for r in self.rows if r.store == store]

    def recommendation(self, store: str) -> LatencyRow | None:
        index = self.recommended.get(store)
        return None if index is None else self.rows[index]

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": "latency", "dataset": self.dataset, "documents": self.documents, "queries": self.queries,
            "max_loss": self.max_loss, "max_p99_ms": self.max_p99_ms, "p99_tolerance": self.tolerance, "stores": self.stores, "top_k": TOP_K,
            "warmup": self.warmup, "repeats": self.repeats, "seconds": self.seconds, "load_average": self.load_average,
            "recommended": {s: (None if i is None else self.rows[i].label) for s, i in self.recommended.items()},
            "flags": self.flags, "rows": [r.to_dict() for r in self.rows],
        }


def percentile_ms(seconds: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(seconds, dtype=np.float64), q) * 1000.0) if seconds else 0.0


def _load(factory: StoreFactory, data: EncodedDataset, docs: list[SparseVector], batch_size: int = 256) -> Any:
    """A fresh collection/index holding the (pruned) documents, ingest finished (segments optimized)."""
    store = factory(collection_name("splade-tune-latency", data.dataset.name))
    store.open(create=True)
    try:
        retrying = RetryPolicy(attempts=5, max_wait=10.0).retrying(f"tuning on {store.describe()}")
        store.begin_ingest()
        pruned = EncodedDataset(dataset=data.dataset, doc_ids=data.doc_ids, doc_vectors=docs, query_ids=[], query_vectors=[], dim=data.dim)
        for batch in pruned.encoded_documents(batch_size):
            retrying(store.upsert, batch)
        store.finish_ingest()
        stored = store.count()
        if stored != len(data.doc_ids):
            raise StoreError(f"{store.describe()} holds {stored} documents, expected {len(data.doc_ids)}")
    except BaseException:
        _drop(store)
        raise
    return store


def _drop(store: Any) -> None:
    try:
        store.drop()
    except Exception as exc:  # noqa: BLE001 - cleanup must not hide the real error
        logger.warning("could not drop %s: %s", store.describe(), exc)
    store.close()


def time_queries(
    store: Any, vectors: Sequence[SparseVector], two_phase: Any, *, warmup: int, repeats: int, top_k: int = TOP_K,
) -> tuple[list[list[tuple[str, float]]], list[float]]:
    """Single-query searches through the store: (hits of the first timed pass, every timed latency in seconds).
    The first `warmup` queries run once unmeasured first. `two_phase`: a `TwoPhase`, None (exact) or the
    store's `CONFIGURED` marker (its config's setting)."""
    for vector in vectors[:warmup]:
        store.search_batch([vector], top_k=top_k, two_phase=two_phase)
    hits: list[list[tuple[str, float]]] = []
    seconds: list[float] = []
    gc.collect()
    collecting = gc.isenabled()
    gc.disable()  # as timeit does: a collection inside one timed call is the harness's cost, not the store's
    try:
        for round_ in range(repeats):
            for vector in vectors:
                started = time.perf_counter()
                found = store.search_batch([vector], top_k=top_k, two_phase=two_phase)[0]
                seconds.append(time.perf_counter() - started)
                if round_ == 0:
                    hits.append([(hit.id, float(hit.score)) for hit in found])
    finally:
        if collecting:
            gc.enable()
    return hits, seconds


def ndcg_at_10(data: EncodedDataset, hits: Sequence[Sequence[tuple[str, float]]], sorted_ids: Sequence[str]) -> float:
    ranking = pad_ranking(dict(zip(data.query_ids, [list(h) for h in hits])), sorted_ids, TOP_K)
    return float(retrieval_metrics(ranking, data.dataset.relevant_docs(), data.query_ids)["ndcg@10"])


def _mean_terms(vectors: Sequence[SparseVector]) -> float:
    return float(np.mean([v.nnz for v in vectors])) if vectors else 0.0


def sweep(
    data: EncodedDataset,
    grid: LatencyGrid,
    stores: Sequence[StoreTarget],
    *,
    warmup: int = 20,
    repeats: int = 1,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[LatencyRow], dict[str, float]]:
    """Measure every configuration of `grid` on every store: one index per document side, all query sides on it."""
    if not stores:
        raise ConfigError("a latency sweep needs a store (--stores qdrant and/or opensearch)")
    seconds = {"index": 0.0, "queries": 0.0}
    rows: list[LatencyRow] = []
    sorted_ids = sorted(data.doc_ids)
    query_sides = [(qp, prune_all(data.query_vectors, qp), tp) for qp, tp in itertools.product(grid.query_pruning, grid.two_phase)]
    for target in stores:
        datatypes: tuple[str | None, ...] = grid.datatypes if target.datatypes else (None,)
        for doc_pruning, datatype in itertools.product(grid.doc_pruning, datatypes):
            docs = prune_all(data.doc_vectors, doc_pruning)
            started = time.perf_counter()
            store = _load(target.factory(datatype), data, docs)
            try:
                size = store.storage_bytes()
                seconds["index"] += time.perf_counter() - started
                started = time.perf_counter()
                for vector in data.query_vectors:  # a new index is cold: one unmeasured pass, so the first query side is not penalised
                    store.search_batch([vector], top_k=TOP_K, two_phase=None)
                for query_pruning, vectors, two_phase in query_sides:
                    hits, latencies = time_queries(store, vectors, two_phase, warmup=warmup, repeats=repeats)
                    row = LatencyRow(
                        store=target.name, doc_pruning=None if doc_pruning is None else str(doc_pruning), datatype=datatype,
                        query_pruning=None if query_pruning is None else str(query_pruning),
                        two_phase=None if two_phase is None else two_phase.describe(),
                        ndcg_at_10=ndcg_at_10(data, hits, sorted_ids), p50_ms=percentile_ms(latencies, 50),
                        p99_ms=percentile_ms(latencies, 99), mean_ms=float(np.mean(latencies) * 1000.0) if latencies else 0.0,
                        index_bytes=size, doc_terms=_mean_terms(docs), query_terms=_mean_terms(vectors),
                    )
                    rows.append(row)
                    logger.info("%s %s: nDCG@10 %.4f, p50/p99 %.2f/%.2f ms", target.name, row.label, row.ndcg_at_10, row.p50_ms, row.p99_ms)
                    if progress:
                        progress(f"{target.name}: {row.label}")
                seconds["queries"] += time.perf_counter() - started
            finally:
                _drop(store)
    return rows, seconds


def _dominates(a: LatencyRow, b: LatencyRow) -> bool:
    size_a = a.index_bytes if a.index_bytes is not None else 0
    size_b = b.index_bytes if b.index_bytes is not None else 0
    no_worse = a.ndcg_at_10 >= b.ndcg_at_10 and a.p99_ms <= b.p99_ms and size_a <= size_b
    better = a.ndcg_at_10 > b.ndcg_at_10 or a.p99_ms < b.p99_ms or size_a < size_b
    return no_worse and better


def pareto(rows: Sequence[LatencyRow]) -> list[LatencyRow]:
    """The rows no other row dominates (higher nDCG@10, lower p99, smaller index; one of them strictly)."""
    return [r for r in rows if not any(_dominates(o, r) for o in rows if o is not r)]


def recommend(
    rows: Sequence[LatencyRow], *, max_loss: float | None, max_p99_ms: float | None, tolerance: float = DEFAULT_TOLERANCE,
) -> LatencyRow | None:
    """The fastest row within the quality budget, or (with `max_p99_ms`) the best quality within the latency
    budget (and within `max_loss` when given); None when nothing is within the budgets.

    "Fastest": p99 within `tolerance` (relative) of the lowest p99 counts as equally fast, since single-query
    p99s a few percent apart are within a run's noise; among those the smallest index wins, then nDCG@10."""
    candidates = [r for r in rows if r.within_budget]
    if max_p99_ms is not None:
        candidates = [r for r in candidates if r.p99_ms <= max_p99_ms]
        return min(candidates, key=lambda r: (-r.ndcg_at_10, r.p99_ms, r.index_bytes or 0), default=None)
    if not candidates:
        return None
    fastest = min(r.p99_ms for r in candidates)
    near = [r for r in candidates if r.p99_ms <= fastest * (1 + tolerance)]
    return min(near, key=lambda r: (r.index_bytes or 0, -r.ndcg_at_10, r.p99_ms))


def _relative(value: float, base: float) -> float:
    return (value - base) / base if base else 0.0


def judge(
    rows: list[LatencyRow], *, max_loss: float | None, max_p99_ms: float | None, tolerance: float = DEFAULT_TOLERANCE,
) -> dict[str, int | None]:
    """Fill in each row's change against its store's baseline, budget and Pareto flags; the recommendation per store."""
    if max_loss is not None and not 0 <= max_loss < 1:
        raise ConfigError(f"max_loss must be in [0, 1) (a relative nDCG@10 loss), got {max_loss}")
    if max_p99_ms is not None and not max_p99_ms > 0:
        raise ConfigError(f"max_p99_ms must be > 0, got {max_p99_ms}")
    if not tolerance >= 0:
        raise ConfigError(f"tolerance must be >= 0, got {tolerance}")
    recommended: dict[str, int | None] = {}
    for store in dict.fromkeys(r.store for r in rows):
        mine = [r for r in rows if r.store == store]
        base = next((r for r in mine if r.is_baseline), mine[0])
        for row in mine:
            row.ndcg_change = _relative(row.ndcg_at_10, base.ndcg_at_10)
            row.within_budget = max_loss is None or -row.ndcg_change <= max_loss + 1e-12
        front = pareto(mine)
        for row in mine:
            row.pareto = any(row is f for f in front)
        chosen = recommend(mine, max_loss=max_loss, max_p99_ms=max_p99_ms, tolerance=tolerance)
        recommended[store] = None if chosen is None else next(i for i, r in enumerate(rows) if r is chosen)
    return recommended


# ---- the flags that rebuild a configuration -------------------------------------------------------------
def configuration_flags(row: LatencyRow) -> dict[str, list[str]]:
    """The `ingest` (document side) and `search` (query side) flags of one configuration, without the
    options both share (store location, model), which `recommended_flags` adds."""
    ingest = ["--store", row.store]
    search = ["--store", row.store, "--top-k", str(TOP_K)]
    if row.doc_pruning:
        ingest += ["--prune", row.doc_pruning]
    if row.datatype is not None:
        ingest += ["--sparse-datatype", row.datatype]
    if row.query_pruning:
        search += ["--query-prune", row.query_pruning]
    if row.two_phase:
        search += ["--two-phase", row.two_phase]
    return {"ingest": ingest, "search": search}


def recommended_flags(row: LatencyRow, *, shared: Sequence[str] = (), ingest_only: Sequence[str] = (),
                      store_flags: Sequence[str] = ()) -> dict[str, list[str]]:
    """`configuration_flags` plus the store location (`store_flags`), the model options both commands need
    (`shared`) and the document-only ones (`ingest_only`: titles, windows)."""
    flags = configuration_flags(row)
    return {
        "ingest": [*flags["ingest"], *store_flags, *shared, *ingest_only],
        "search": [*flags["search"], *store_flags, *shared],
    }


def build_report(
    data: EncodedDataset, grid: LatencyGrid, stores: Sequence[StoreTarget], *, max_loss: float | None,
    max_p99_ms: float | None, warmup: int = 20, repeats: int = 1, progress: Callable[[str], None] | None = None,
    flags: Callable[[LatencyRow], dict[str, list[str]]] | None = None, encode_seconds: float = 0.0,
    tolerance: float = DEFAULT_TOLERANCE,
) -> LatencyReport:
    """Sweep, judge, and attach the flags of each store's recommendation."""
    started = time.perf_counter()
    rows, seconds = sweep(data, grid, stores, warmup=warmup, repeats=repeats, progress=progress)
    recommended = judge(rows, max_loss=max_loss, max_p99_ms=max_p99_ms, tolerance=tolerance)
    report = LatencyReport(
        dataset=data.dataset.name, documents=len(data.doc_ids), queries=len(data.query_ids), max_loss=max_loss,
        max_p99_ms=max_p99_ms, rows=rows, stores={s.name: s.describe for s in stores}, tolerance=tolerance, recommended=recommended,
        warmup=warmup, repeats=repeats, load_average=_load_average(),
    )
    report.seconds = {"encode": encode_seconds, **seconds, "sweep": time.perf_counter() - started}
    for store, index in recommended.items():
        if index is not None:
            row = rows[index]
            report.flags[store] = flags(row) if flags else configuration_flags(row)
    return report


def _load_average() -> list[float]:
    try:
        import os

        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):  # not on every platform
        return []


# ---- output ------------------------------------------------------------------------------------------
def _mb(size: int | None) -> str:
    return "n/a" if size is None else f"{size / 1e6:.2f}"


def _table(rows: Sequence[LatencyRow], chosen: LatencyRow | None) -> list[str]:
    header = ["doc pruning", "datatype", "query pruning", "two-phase", "nDCG@10", "Δ nDCG@10", "p50 ms", "p99 ms",
              "index MB", "doc terms", "query terms", "within budget", "Pareto"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        mark = "**" if row is chosen else ""
        cells = [
            f"{mark}{row.doc_pruning or 'unpruned'}{mark}", row.datatype or "—", row.query_pruning or "unpruned",
            row.two_phase or "off", f"{row.ndcg_at_10:.4f}", f"{100 * row.ndcg_change:+.2f}%", f"{row.p50_ms:.2f}",
            f"{row.p99_ms:.2f}", _mb(row.index_bytes), f"{row.doc_terms:.1f}", f"{row.query_terms:.1f}",
            "yes" if row.within_budget else "no", "yes" if row.pareto else "",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def command_line(command: str, args: Sequence[str]) -> str:
    import shlex

    return "splade-connectors " + " ".join(shlex.quote(a) for a in [command, *args])


def budget_text(report: LatencyReport) -> str:
    loss = None if report.max_loss is None else f"nDCG@10 within {100 * report.max_loss:g}% of the baseline"
    if report.max_p99_ms is not None:
        return f"the best nDCG@10 with p99 <= {report.max_p99_ms:g} ms" + (f" and {loss}" if loss else "")
    return f"the fastest (p99 within {100 * report.tolerance:g}% of the lowest, then the smallest index) with {loss}"


def recommendation_text(report: LatencyReport, *, ingest_tail: str = "", search_tail: str = "") -> str:
    """Per store: the recommended configuration, its figures and the exact commands."""
    lines = []
    for store, description in report.stores.items():
        chosen = report.recommendation(store)
        if chosen is None:
            lines.append(f"{description}: no configuration meets the budget ({budget_text(report)}).")
            continue
        lines.append(
            f"Recommended on {description} ({budget_text(report)}): {chosen.label}: nDCG@10 {chosen.ndcg_at_10:.4f} "
            f"({100 * chosen.ndcg_change:+.2f}%), p50/p99 {chosen.p50_ms:.2f}/{chosen.p99_ms:.2f} ms, index {_mb(chosen.index_bytes)} MB"
        )
        flags = report.flags.get(store, configuration_flags(chosen))
        lines.append("")
        lines.append("    " + command_line("ingest", flags["ingest"]) + ingest_tail)
        lines.append("    " + command_line("search", flags["search"]) + search_tail)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def markdown(report: LatencyReport, *, full: bool = True, ingest_tail: str = "", search_tail: str = "") -> str:
    """The Pareto set per store (and every row when `full`), the recommendation with its flags, the time taken."""
    out = [
        f"{report.dataset}: {report.documents} documents, {report.queries} queries; top {TOP_K} per query, single queries "
        f"through the store after {report.warmup} warm-up queries, {report.repeats} timed pass(es)"
        + (f"; load average {' / '.join(f'{x:g}' for x in report.load_average)}" if report.load_average else "") + ".",
        "",
    ]
    for store, description in report.stores.items():
        mine = report.store_rows(store)
        chosen = report.recommendation(store)
        front = sorted((r for r in mine if r.pareto), key=lambda r: (r.p99_ms, -r.ndcg_at_10))
        out += [f"### {description}: Pareto set (nDCG@10 vs p99 vs index size), {len(front)} of {len(mine)}", "", *_table(front, chosen), ""]
        if full:
            out += [f"### {description}: every configuration", "", *_table(mine, chosen), ""]
    out.append(recommendation_text(report, ingest_tail=ingest_tail, search_tail=search_tail))
    secs = report.seconds
    out.append(
        "Time: " + ", ".join(f"{name} {value:.1f} s" for name, value in secs.items()) + "\n"
    )
    return "\n".join(out)


def write_chart(report: LatencyReport, path: str | Path) -> Path:
    """nDCG@10 against p99 latency and against index size, one colour per store; Pareto points filled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), squeeze=False)
    colours = ["tab:blue", "tab:orange", "tab:green"]
    specs: list[tuple[str, Callable[[LatencyRow], float | None]]] = [
        ("p99 latency, single query (ms)", lambda r: r.p99_ms),
        ("index size (MB)", lambda r: None if r.index_bytes is None else r.index_bytes / 1e6),
    ]
    for ax, (xlabel, x_of) in zip(axes[0], specs):
        for colour, (store, description) in zip(itertools.cycle(colours), report.stores.items()):
            mine = [r for r in report.store_rows(store) if x_of(r) is not None]
            rest = [r for r in mine if not r.pareto]
            front = [r for r in mine if r.pareto]
            ax.scatter([x_of(r) for r in rest], [r.ndcg_at_10 for r in rest], s=14, alpha=0.35, color=colour)
            ax.scatter([x_of(r) for r in front], [r.ndcg_at_10 for r in front], s=40, color=colour, label=f"{description} (Pareto)")
            base = next((r for r in mine if r.is_baseline), None)
            if base is not None:
                ax.scatter([x_of(base)], [base.ndcg_at_10], marker="*", s=180, color="black", zorder=5)
                if report.max_loss is not None:
                    ax.axhline(base.ndcg_at_10 * (1 - report.max_loss), linestyle="--", color=colour, linewidth=1)
            chosen = report.recommendation(store)
            if chosen is not None and x_of(chosen) is not None:
                ax.scatter([x_of(chosen)], [chosen.ndcg_at_10], s=320, facecolors="none", edgecolors="red", linewidths=2, zorder=6)
        if report.max_p99_ms is not None and xlabel.startswith("p99"):
            ax.axvline(report.max_p99_ms, linestyle=":", color="grey", linewidth=1)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("nDCG@10")
        ax.grid(alpha=0.3)
    axes[0][0].legend(loc="lower right", fontsize="small")
    fig.suptitle(f"{report.dataset}: quality against latency and size (star: baseline; red circle: recommended)")
    return save_figure(fig, path)


def write_all(report: LatencyReport, output_dir: str | Path, *, ingest_tail: str = "", search_tail: str = "") -> dict[str, Path]:
    """`tune.json`, `tune.md`, `tune.png` in `output_dir` (the same names as the size sweep)."""
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / "tune.json"
    json_path.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    md_path = folder / "tune.md"
    md_path.write_text(markdown(report, ingest_tail=ingest_tail, search_tail=search_tail), encoding="utf-8")
    written = {"json": json_path, "markdown": md_path, "chart": write_chart(report, folder / "tune.png")}
    logger.info("wrote %s", ", ".join(str(p) for p in written.values()))
    return written
