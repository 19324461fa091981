"""Write an `EvaluationReport`: JSON (dataset -> backend -> metric), a markdown table and a PNG chart."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from splade_connectors.eval.runner import EvaluationReport

logger = logging.getLogger(__name__)

TABLE_METRICS = ("ndcg@10", "graded_ndcg@10", "mrr@10", "map@100", "recall@10", "accuracy@1", "query_active_dims", "corpus_active_dims", "avg_flops")
CHART_METRICS = ("ndcg@10", "graded_ndcg@10", "mrr@10", "map@100")


def write_json(report: EvaluationReport, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report.to_dict(), indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return out


def _fmt(value: float, metric: str) -> str:
    return f"{value:.1f}" if metric.endswith("active_dims") else f"{value:.2f}" if metric == "avg_flops" else f"{value:.4f}"


def markdown_table(report: EvaluationReport, metrics: Sequence[str] = TABLE_METRICS) -> str:
    """One row per (dataset, backend); a `Δ nDCG@10 vs exact` column when exact was run."""
    columns = [m for m in metrics if any(m in r for by in report.results.values() for r in by.values())]
    header = ["dataset", "backend", *columns]
    if report.reference:
        header.append(f"Δ ndcg@10 vs {report.reference}")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for dataset, by_backend in report.results.items():
        for backend, values in by_backend.items():
            row = [dataset, backend, *(_fmt(values[m], m) if m in values else "" for m in columns)]
            if report.reference:
                delta = report.deltas.get(dataset, {}).get(backend, {}).get("ndcg@10")
                row.append("—" if delta is None else f"{delta:+.4f}")
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def write_markdown(report: EvaluationReport, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown_table(report), encoding="utf-8")
    return out


def write_chart(report: EvaluationReport, path: str | Path, metrics: Sequence[str] = CHART_METRICS) -> Path:
    """Grouped bars: one panel per dataset, metrics on the x axis, one bar per backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    datasets = list(report.results)
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.5 * len(datasets) + 1, 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        by_backend = report.results[dataset]
        shown = [m for m in metrics if all(m in v for v in by_backend.values())]
        x = np.arange(len(shown))
        width = 0.8 / max(1, len(by_backend))
        for i, (backend, values) in enumerate(by_backend.items()):
            ax.bar(x + (i - (len(by_backend) - 1) / 2) * width, [values[m] for m in shown], width, label=backend)
        ax.set_xticks(x, shown, rotation=20)
        ax.set_ylim(0, 1.05)
        ax.set_title(dataset)
    axes[0][0].legend(loc="lower left", fontsize="small")
    fig.suptitle("SPLADE retrieval quality per backend")
    return save_figure(fig, path)


def write_all(report: EvaluationReport, output_dir: str | Path) -> dict[str, Path]:
    """`results.json`, `results.md`, `results.png` in `output_dir`."""
    folder = Path(output_dir)
    written = {
        "json": write_json(report, folder / "results.json"),
        "markdown": write_markdown(report, folder / "results.md"),
        "chart": write_chart(report, folder / "results.png"),
    }
    logger.info("wrote %s", ", ".join(str(p) for p in written.values()))
    return written


def save_figure(fig: Any, path: str | Path) -> Path:
    """Lay out, write (PNG, 110 dpi; parent folders made) and close a matplotlib figure: every chart of `eval`/`tune`."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
