"""Choosing pruning by measurement: sweep pruning settings on a dataset encoded once.

For every setting (an OpenSearch pruning rule applied to the document and/or query vectors,
`trainer.pruning`) the already-encoded vectors are pruned, ranked by exact dot product, and scored
with the same metrics as `eval` (nDCG@10, recall@100, active dims, FLOPS); the pruned documents are
also loaded into each requested store (a fresh collection/index per setting) to read the index size
the store reports (`SparseStore.storage_bytes`). Quality is compared with the unpruned vectors, and
the recommendation is the setting with the smallest index (else the fewest document terms; the fewest query
terms when only queries are pruned) whose nDCG@10 is within `max_loss` (relative, default 0.5%) of unpruned.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from splade_connectors.errors import ConfigError, StoreError
from splade_connectors.eval.backends import ExactBackend, StoreFactory, collection_name
from splade_connectors.eval.encoding import EncodedDataset
from splade_connectors.eval.report import save_figure
from splade_connectors.eval.runner import pad_ranking, score_ranking
from splade_connectors.retry import RetryPolicy
from trainer.pruning import PRUNE_RULES, Pruning, prune_all
from trainer.retrieval.metrics import SparsityCounts, required_depth

logger = logging.getLogger(__name__)

ApplyTo = Literal["documents", "queries", "both"]
DEFAULT_MAX_LOSS = 0.005
RECALL_DEPTH = 100
BASELINE = "unpruned"

# value grids of the default sweep; abs_value thresholds come from the data (weights differ per model)
_GRID: dict[str, tuple[float, ...]] = {
    "top_k": (16, 32, 64, 128, 256),
    "max_ratio": (0.05, 0.1, 0.2, 0.3),
    "alpha_mass": (0.8, 0.9, 0.95, 0.99),
}
_QUERY_TOP_K = (4, 8, 16, 32)
_ABS_VALUE_QUANTILES = (0.1, 0.25, 0.5)


@dataclass(frozen=True)
class TuneSetting:
    """One pruning setting: a rule for document vectors, query vectors, or both (None: unpruned)."""

    documents: Pruning | None = None
    queries: Pruning | None = None

    @property
    def label(self) -> str:
        if self.documents is None and self.queries is None:
            return BASELINE
        if self.documents is None or self.queries is None or self.queries == self.documents:
            return str(self.documents or self.queries)  # one rule (the report says what it applies to)
        return f"docs {self.documents}, queries {self.queries}"

    @property
    def rule(self) -> str | None:
        chosen = self.documents or self.queries
        return chosen.rule if chosen else None

    @property
    def value(self) -> float | None:
        chosen = self.documents or self.queries
        return chosen.value if chosen else None

    @classmethod
    def of(cls, pruning: Pruning, apply_to: ApplyTo = "documents") -> TuneSetting:
        return cls(
            documents=pruning if apply_to in ("documents", "both") else None,
            queries=pruning if apply_to in ("queries", "both") else None,
        )


def _two_digits(value: float) -> float:
    return float(f"{value:.2g}")


def default_settings(data: EncodedDataset, apply_to: ApplyTo = "documents", rules: Sequence[str] = PRUNE_RULES) -> list[TuneSetting]:
    """A sweep over the four rules: fixed grids, top_k below the largest vector, abs_value at weight quantiles."""
    unknown = [r for r in rules if r not in PRUNE_RULES]
    if unknown:
        raise ConfigError(f"unknown pruning rules {unknown}; choose from {', '.join(PRUNE_RULES)}")
    vectors = data.query_vectors if apply_to == "queries" else data.doc_vectors
    largest = max((v.nnz for v in vectors), default=0)
    weights = np.concatenate([v.values for v in vectors]) if vectors else np.zeros(0, np.float32)
    settings: list[TuneSetting] = []
    for rule in rules:
        if rule == "top_k":
            values: Iterable[float] = [k for k in (_QUERY_TOP_K if apply_to == "queries" else _GRID["top_k"]) if k < largest]
        elif rule == "abs_value":
            values = sorted({_two_digits(float(np.quantile(weights, q))) for q in _ABS_VALUE_QUANTILES} - {0.0}) if weights.size else []
        else:
            values = _GRID[rule]
        settings.extend(TuneSetting.of(Pruning(rule=rule, value=v), apply_to) for v in values)
    return settings


def parse_settings(text: str, apply_to: ApplyTo = "documents") -> list[TuneSetting]:
    """`top_k=64,max_ratio=0.1` -> settings (each rule applied as `apply_to` says)."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise ConfigError("no pruning settings given")
    return [TuneSetting.of(Pruning.parse(p), apply_to) for p in parts]


@dataclass
class TuneRow:
    """What one setting gives: quality, its change against unpruned, sparsity and index sizes."""

    setting: str
    rule: str | None
    value: float | None
    ndcg_at_10: float
    recall_at_100: float
    query_active_dims: float
    corpus_active_dims: float
    avg_flops: float
    ndcg_change: float = 0.0  # relative to unpruned: (x - base) / base
    recall_change: float = 0.0
    index_bytes: dict[str, int | None] = field(default_factory=dict)
    within_budget: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "setting": self.setting, "rule": self.rule, "value": self.value,
            "ndcg@10": self.ndcg_at_10, "recall@100": self.recall_at_100,
            "ndcg@10_change": self.ndcg_change, "recall@100_change": self.recall_change,
            "query_active_dims": self.query_active_dims, "corpus_active_dims": self.corpus_active_dims,
            "avg_flops": self.avg_flops, "index_bytes": self.index_bytes, "within_budget": self.within_budget,
        }


@dataclass
class TuneReport:
    """The sweep: the unpruned baseline first, then every setting; the recommended one by label."""

    dataset: str
    documents: int
    queries: int
    apply_to: ApplyTo
    max_loss: float
    rows: list[TuneRow]
    stores: list[str]
    recommended: str | None = None
    seconds: float = 0.0

    @property
    def baseline(self) -> TuneRow:
        return self.rows[0]

    def row(self, label: str) -> TuneRow:
        return next(r for r in self.rows if r.setting == label)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset, "documents": self.documents, "queries": self.queries, "apply_to": self.apply_to,
            "max_loss": self.max_loss, "stores": self.stores, "recommended": self.recommended,
            "rows": [r.to_dict() for r in self.rows], "seconds": self.seconds,
        }


def recall_at(ranking: Mapping[str, Sequence[tuple[str, float]]], relevant: Mapping[str, set[str]], query_ids: Sequence[str], k: int) -> float:
    """Mean over queries of |relevant in the top k| / |relevant|."""
    values = []
    for qid in query_ids:
        rel = relevant.get(qid) or set()
        if not rel:
            continue
        top = {doc for doc, _ in list(ranking.get(qid, []))[:k]}
        values.append(len(top & rel) / len(rel))
    return float(np.mean(values)) if values else 0.0


def index_bytes(factory: StoreFactory, data: EncodedDataset, *, prefix: str = "splade-tune", batch_size: int = 256) -> int | None:
    """Load the documents into a fresh collection/index, read the size the store reports, drop it."""
    store = factory(collection_name(prefix, data.dataset.name))
    store.open(create=True)
    try:
        retrying = RetryPolicy(attempts=5, max_wait=10.0).retrying(f"tuning on {store.describe()}")
        store.begin_ingest()
        for batch in data.encoded_documents(batch_size):
            retrying(store.upsert, batch)
        store.finish_ingest()
        stored = store.count()
        if stored != len(data.doc_ids):
            raise StoreError(f"{store.describe()} holds {stored} documents, expected {len(data.doc_ids)}")
        return store.storage_bytes()
    finally:
        try:
            store.drop()
        except Exception as exc:  # noqa: BLE001 - cleanup must not hide the real error
            logger.warning("could not drop %s: %s", store.describe(), exc)
        store.close()


def _measure(data: EncodedDataset, setting: TuneSetting, stores: Mapping[str, StoreFactory]) -> TuneRow:
    pruned = replace(
        data,
        doc_vectors=prune_all(data.doc_vectors, setting.documents),
        query_vectors=prune_all(data.query_vectors, setting.queries),
    )
    depth = max(required_depth(), RECALL_DEPTH)
    ranking, _ = ExactBackend().rank(pruned, depth)
    ranking = pad_ranking(ranking, sorted(pruned.doc_ids), depth)
    counts = SparsityCounts.of(pruned.query_vectors, pruned.doc_vectors, pruned.dim)
    metrics = score_ranking(ranking, pruned, counts)
    row = TuneRow(
        setting=setting.label, rule=setting.rule, value=setting.value,
        ndcg_at_10=metrics["ndcg@10"],
        recall_at_100=recall_at(ranking, pruned.dataset.relevant_docs(), pruned.query_ids, RECALL_DEPTH),
        query_active_dims=metrics["query_active_dims"], corpus_active_dims=metrics["corpus_active_dims"],
        avg_flops=metrics["avg_flops"],
    )
    for name, factory in stores.items():
        row.index_bytes[name] = index_bytes(factory, pruned)
    return row


def _relative(value: float, base: float) -> float:
    return (value - base) / base if base else 0.0


def size_key(row: TuneRow, stores: Sequence[str], apply_to: ApplyTo = "documents") -> float:
    """What "smallest" means: the first store's index size when it reports one, else mean document terms;
    mean query terms when only queries are pruned (the index does not change)."""
    if apply_to == "queries":
        return row.query_active_dims
    for name in stores:
        size = row.index_bytes.get(name)
        if size is not None:
            return float(size)
    return row.corpus_active_dims


def tune(
    data: EncodedDataset,
    settings: Sequence[TuneSetting],
    *,
    stores: Mapping[str, StoreFactory] | None = None,
    max_loss: float = DEFAULT_MAX_LOSS,
    apply_to: ApplyTo = "documents",
    progress: Callable[[str], None] | None = None,
) -> TuneReport:
    """Measure the unpruned vectors and every setting; recommend the smallest within `max_loss` nDCG@10."""
    if not 0 <= max_loss < 1:
        raise ConfigError(f"max_loss must be in [0, 1) (a relative nDCG@10 loss), got {max_loss}")
    started = time.perf_counter()
    stores = dict(stores or {})
    rows: list[TuneRow] = []
    for setting in [TuneSetting(), *settings]:
        logger.info("measuring %s", setting.label)
        if progress:
            progress(setting.label)
        rows.append(_measure(data, setting, stores))
    base = rows[0]
    names = list(stores)
    for row in rows:
        row.ndcg_change = _relative(row.ndcg_at_10, base.ndcg_at_10)
        row.recall_change = _relative(row.recall_at_100, base.recall_at_100)
        row.within_budget = -row.ndcg_change <= max_loss + 1e-12
    candidates = [r for r in rows[1:] if r.within_budget]
    recommended = min(candidates, key=lambda r: (size_key(r, names, apply_to), -r.ndcg_at_10)).setting if candidates else None
    return TuneReport(
        dataset=data.dataset.name, documents=len(data.doc_ids), queries=len(data.query_ids), apply_to=apply_to,
        max_loss=max_loss, rows=rows, stores=names, recommended=recommended, seconds=time.perf_counter() - started,
    )


# ---- output ------------------------------------------------------------------------------------------
def _mb(size: int | None) -> str:
    return "n/a" if size is None else f"{size / 1e6:.2f}"


def markdown_table(report: TuneReport) -> str:
    """One row per setting; changes are relative to unpruned; the recommended setting in bold."""
    header = ["setting", "nDCG@10", "Δ nDCG@10", "recall@100", "Δ recall@100", "doc terms", "query terms", "FLOPS",
              *(f"{name} MB" for name in report.stores), "within budget"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in report.rows:
        name = f"**{row.setting}** (recommended)" if row.setting == report.recommended else row.setting
        cells = [
            name, f"{row.ndcg_at_10:.4f}", f"{100 * row.ndcg_change:+.2f}%", f"{row.recall_at_100:.4f}",
            f"{100 * row.recall_change:+.2f}%", f"{row.corpus_active_dims:.1f}", f"{row.query_active_dims:.1f}",
            f"{row.avg_flops:.2f}", *(_mb(row.index_bytes.get(n)) for n in report.stores),
            "—" if row.setting == BASELINE else ("yes" if row.within_budget else "no"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    verdict = (
        f"Recommended: **{report.recommended}**, the smallest setting within {100 * report.max_loss:g}% relative "
        f"nDCG@10 of unpruned." if report.recommended else
        f"No setting stays within {100 * report.max_loss:g}% relative nDCG@10 of unpruned: keep the vectors unpruned."
    )
    intro = f"{report.dataset}: {report.documents} documents, {report.queries} queries; pruning applied to {report.apply_to}."
    return intro + "\n\n" + "\n".join(lines) + "\n\n" + verdict + "\n"


def write_chart(report: TuneReport, path: str | Path) -> Path:
    """nDCG@10 against index size (per store; mean document terms without a store), one line per rule."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes_specs: list[tuple[str, Callable[[TuneRow], float | None]]]
    if report.apply_to == "queries":  # the index does not change: quality against query terms (latency)
        axes_specs = [("mean query terms", lambda r: r.query_active_dims)]
    else:
        axes_specs = [
            (f"{name} index size (MB)", lambda r, n=name: None if r.index_bytes.get(n) is None else r.index_bytes[n] / 1e6)  # type: ignore[misc]  # n=name binds the loop value; mypy cannot type lambda defaults
            for name in report.stores if any(r.index_bytes.get(name) is not None for r in report.rows)
        ] or [("mean document terms", lambda r: r.corpus_active_dims)]
    fig, axes = plt.subplots(1, len(axes_specs), figsize=(6 * len(axes_specs), 4.5), squeeze=False)
    base = report.baseline
    for ax, (xlabel, x_of) in zip(axes[0], axes_specs):
        for rule in PRUNE_RULES:
            points = sorted((x, r.ndcg_at_10) for r in report.rows if r.rule == rule and (x := x_of(r)) is not None)
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=rule)
        bx = x_of(base)
        if bx is not None:
            ax.scatter([bx], [base.ndcg_at_10], marker="*", s=180, color="black", zorder=5, label=BASELINE)
        ax.axhline(base.ndcg_at_10 * (1 - report.max_loss), linestyle="--", color="grey", linewidth=1,
                   label=f"-{100 * report.max_loss:g}% nDCG@10")
        if report.recommended:
            chosen = report.row(report.recommended)
            cx = x_of(chosen)
            if cx is not None:
                ax.scatter([cx], [chosen.ndcg_at_10], s=320, facecolors="none", edgecolors="red", linewidths=2,
                           zorder=6, label=f"recommended: {chosen.setting}")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("nDCG@10")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(loc="lower right", fontsize="small")
    fig.suptitle(f"Pruning on {report.dataset}: quality against size ({report.apply_to})")
    return save_figure(fig, path)


def write_all(report: TuneReport, output_dir: str | Path) -> dict[str, Path]:
    """`tune.json`, `tune.md`, `tune.png` in `output_dir`."""
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / "tune.json"
    json_path.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    md_path = folder / "tune.md"
    md_path.write_text(markdown_table(report), encoding="utf-8")
    written = {"json": json_path, "markdown": md_path, "chart": write_chart(report, folder / "tune.png")}
    logger.info("wrote %s", ", ".join(str(p) for p in written.values()))
    return written
