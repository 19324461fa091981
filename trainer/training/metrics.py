"""Training metrics: running means over a logging window, written to `logging` and a JSONL file."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path

import torch

logger = logging.getLogger("trainer.training")

METRICS_FILE = "metrics.jsonl"


def active_dims(embeddings: torch.Tensor) -> float:
    """Mean number of non-zero dimensions per row."""
    return float((embeddings != 0).sum(dim=1).float().mean()) if embeddings.numel() else 0.0


class MetricsLog:
    """Accumulates per-micro-batch values and emits their means every `logging_steps` steps."""

    def __init__(self, output_dir: Path) -> None:
        self.path = output_dir / METRICS_FILE
        self._sums: dict[str, float] = defaultdict(float)
        self._counts: dict[str, int] = defaultdict(int)

    def add(self, values: dict[str, float]) -> None:
        for key, value in values.items():
            self._sums[key] += value
            self._counts[key] += 1

    def flush(self, step: int, extra: dict[str, float]) -> dict[str, float]:
        record = {k: self._sums[k] / self._counts[k] for k in self._sums}
        record.update(extra)
        self._sums.clear()
        self._counts.clear()
        self.write(step, "train", record)
        return record

    def write(self, step: int, kind: str, record: dict[str, float]) -> None:
        shown = " ".join(f"{k}={v:.4g}" for k, v in record.items())
        logger.info("step %d %s: %s", step, kind, shown)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"step": step, "kind": kind, **record}) + "\n")
