"""Pruning sparse vectors with the four rules of OpenSearch's sparse encoding (`prune_type` / `prune_ratio`).

The rules keep, of a vector's (positive) weights:

- `top_k` (value k, an integer >= 1): the k largest weights (ties: the lower vocabulary id wins).
- `max_ratio` (0 < r < 1): the weights w with w / max(w) >= r.
- `abs_value` (t > 0): the weights w >= t.
- `alpha_mass` (0 < a < 1): the largest weights, in decreasing order, up to and including the first one
  at which their running sum reaches a x the vector's total (sum >= a x total).

These are the definitions and value ranges of OpenSearch neural-search's `PruneUtils` (the `sparse_encoding`
ingest processor and the neural_sparse query), so a setting measured here (`splade-connectors tune`) means the
same thing in an OpenSearch pipeline. Sums and ratios are computed in float64 (OpenSearch uses float32), which
can only matter for a weight that sits exactly on a threshold.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator

from trainer.errors import ConfigError
from trainer.sparse import SparseVector

PruneRule = Literal["top_k", "max_ratio", "alpha_mass", "abs_value"]
PRUNE_RULES: tuple[str, ...] = ("top_k", "max_ratio", "alpha_mass", "abs_value")


class Pruning(BaseModel):
    """One pruning rule and its value, validated as OpenSearch validates `prune_ratio`."""

    model_config = ConfigDict(frozen=True)

    rule: PruneRule
    value: float

    @model_validator(mode="after")
    def _check(self) -> Pruning:
        v = self.value
        if not math.isfinite(v):
            raise ValueError(f"{self.rule} needs a finite value, got {v}")
        if self.rule == "top_k" and not (v >= 1 and float(v).is_integer()):
            raise ValueError(f"top_k needs an integer >= 1, got {v:g}")
        if self.rule in ("max_ratio", "alpha_mass") and not 0 < v < 1:
            raise ValueError(f"{self.rule} needs a value in (0, 1), got {v:g}")
        if self.rule == "abs_value" and not v > 0:
            raise ValueError(f"abs_value needs a value > 0, got {v:g}")
        return self

    @classmethod
    def parse(cls, text: str) -> Pruning:
        """`RULE=VALUE` (e.g. `max_ratio=0.1`, `top_k=64`) -> a validated rule; bad text is a `ConfigError`."""
        rule, sep, value = text.strip().partition("=")
        rule = rule.strip().replace("-", "_")
        if not sep or rule not in PRUNE_RULES:
            raise ConfigError(f"pruning {text!r}: expected RULE=VALUE with RULE one of {', '.join(PRUNE_RULES)}")
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"pruning {text!r}: {value.strip()!r} is not a number") from None
        try:
            return cls(rule=rule, value=number)
        except ValueError as exc:
            problem = exc.errors()[0]["msg"].removeprefix("Value error, ") if hasattr(exc, "errors") else str(exc)
            raise ConfigError(f"pruning {text!r}: {problem}") from None

    def __str__(self) -> str:
        return f"{self.rule}={int(self.value) if self.rule == 'top_k' else f'{self.value:g}'}"

    def keep_mask(self, values: np.ndarray) -> np.ndarray:
        """Which of these (positive) weights the rule keeps, as a boolean mask in the same order."""
        values = np.asarray(values)
        if values.size == 0:
            return np.zeros(0, dtype=bool)
        if self.rule == "abs_value":
            return values >= self.value
        if self.rule == "max_ratio":
            return values.astype(np.float64) / float(values.max()) >= self.value
        # top_k and alpha_mass keep a prefix of the weights sorted in decreasing order (ties: input order)
        order = np.argsort(-values.astype(np.float64), kind="stable")
        if self.rule == "top_k":
            count = min(int(self.value), values.size)
        else:
            running = np.cumsum(values[order].astype(np.float64))
            reached = np.flatnonzero(running / running[-1] >= self.value)
            count = int(reached[0]) + 1 if reached.size else values.size
        mask = np.zeros(values.size, dtype=bool)
        mask[order[:count]] = True
        return mask

    def apply(self, vector: SparseVector) -> SparseVector:
        """The vector with only the weights this rule keeps (the same object when nothing is dropped)."""
        if vector.nnz == 0:
            return vector
        keep = self.keep_mask(vector.values)
        if bool(keep.all()):
            return vector
        return SparseVector(vector.indices[keep], vector.values[keep], vector.dim)


def prune_all(vectors: list[SparseVector], pruning: Pruning | None) -> list[SparseVector]:
    """Every vector pruned by the rule (unchanged when `pruning` is None)."""
    if pruning is None:
        return vectors
    return [pruning.apply(v) for v in vectors]
