"""Two-phase SPLADE queries: find candidates with the heaviest terms, score them with the whole query.

A SPLADE query's cost grows with the postings its terms touch, and the many light terms (often
common words) touch the most. Both stores run the same spec (`TwoPhase`), each in its engine:

- OpenSearch (`opensearch.queries`): phase one is a `bool.should` of the *head* terms; phase two a
  `rescore` of the top `window` hits with the *tail* terms (`score_mode` total), so a hit's score is
  its dot product over all terms (within rank_features' storage precision). Like neural-search's
  two-phase pipeline, built from a plain `rescore`.
- Qdrant (`qdrant.store`): a `prefetch` of the top `window` points by the head terms, then the main
  query with the full sparse vector over those candidates (Query API), so a hit's score is its exact
  dot product as in the exact query.

What it can miss: a document outside phase one's top `window` (or matching no head term) that the
tail terms would have lifted into the top k. Recall against the exact query is measured, not promised.

The head is chosen by `ratio` (neural-search's `prune_ratio`: keep terms whose weight is at least
`ratio` x the query's largest weight) or by `count` (keep the `count` heaviest terms). The window is
`top_k x expansion` (neural-search's `expansion_rate`), capped at `max_window` (OpenSearch's
`index.max_rescore_window`, 10,000 by default). A query whose head is all of it runs as the exact query.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from splade_connectors.errors import ConfigError
from trainer.sparse import SparseVector

DEFAULT_RATIO = 0.4
DEFAULT_EXPANSION = 5.0


class TwoPhase(BaseModel):
    """How a two-phase query splits the query vector and how deep it rescores."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ratio: float | None = Field(None, ge=0.0, le=1.0, description="head = terms with weight >= ratio x max weight")
    count: int | None = Field(None, ge=1, description="head = the `count` heaviest terms")
    expansion: float = Field(DEFAULT_EXPANSION, ge=1.0, description="rescore window = top_k x expansion")
    max_window: int = Field(10_000, ge=1, description="cap on the rescore window (index.max_rescore_window)")

    @model_validator(mode="before")
    @classmethod
    def _one_rule(cls, data: Any) -> Any:
        if isinstance(data, dict):
            ratio, count = data.get("ratio"), data.get("count")
            if ratio is not None and count is not None:
                raise ValueError("give ratio or count, not both")
            if ratio is None and count is None:
                return {**data, "ratio": DEFAULT_RATIO}
        return data

    @classmethod
    def parse(cls, spec: str) -> TwoPhase:
        """`"ratio=0.4"`, `"count=8,expansion=10"`, a bare number (`"0.4"` ratio, `"8"` count), or `""` (defaults)."""
        spec = spec.strip()
        options: dict[str, Any] = {}
        if spec and "=" not in spec:
            number = float(spec) if _is_number(spec) else None
            if number is None:
                raise ConfigError(f"two-phase spec {spec!r}: expected ratio=R, count=N, expansion=E or max_window=W")
            options["count" if number >= 1 and number.is_integer() and "." not in spec else "ratio"] = number
        elif spec:
            for part in spec.split(","):
                key, sep, value = (p.strip() for p in part.partition("="))
                if not sep or key not in cls.model_fields or not _is_number(value):
                    raise ConfigError(
                        f"two-phase spec {spec!r}: {part.strip()!r} is not one of ratio=R, count=N, expansion=E, max_window=W"
                    )
                options[key] = float(value) if key in ("ratio", "expansion") else int(float(value))
        try:
            return cls(**options)
        except ValueError as exc:
            from splade_connectors.errors import config_error

            raise config_error(exc, f"two-phase spec {spec!r}") from None

    def describe(self) -> str:
        rule = f"ratio={self.ratio:g}" if self.count is None else f"count={self.count}"
        window = f",max_window={self.max_window}" if self.max_window != 10_000 else ""
        return f"{rule},expansion={self.expansion:g}{window}"

    def window(self, top_k: int) -> int:
        """Candidates phase two rescores (never fewer than `top_k`)."""
        return max(top_k, min(self.max_window, math.ceil(top_k * self.expansion)))

    def split(self, vector: SparseVector) -> tuple[SparseVector, SparseVector]:
        """(head, tail): head = the terms phase one scores with, tail = the rest (both in index order)."""
        if vector.nnz == 0:
            return vector, vector
        values = vector.values
        if self.count is not None:
            if self.count >= vector.nnz:
                return vector, SparseVector.empty(vector.dim)
            # the `count` heaviest, ties broken towards lower ids (stable on the index order)
            order = np.argsort(-values, kind="stable")
            head = np.zeros(vector.nnz, dtype=bool)
            head[order[: self.count]] = True
        else:
            head = values >= np.float32(self.ratio or 0.0) * values.max()
        if bool(head.all()):
            return vector, SparseVector.empty(vector.dim)
        tail = ~head
        return (
            SparseVector(vector.indices[head], values[head], vector.dim),
            SparseVector(vector.indices[tail], values[tail], vector.dim),
        )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return math.isfinite(float(text))


def coerce_two_phase(value: Any) -> TwoPhase | None:
    """Config/CLI input -> `TwoPhase` (a spec string, a dict, a `TwoPhase`) or None (off: None, False, "off")."""
    if value is None or value is False or (isinstance(value, str) and value.strip().lower() in ("off", "none", "false", "no")):
        return None
    if value is True:
        return TwoPhase()
    if isinstance(value, str):
        return TwoPhase.parse(value)
    if isinstance(value, TwoPhase):
        return value
    if isinstance(value, dict):
        return TwoPhase(**value)
    raise ConfigError(f"two_phase must be a spec string, a dict or a TwoPhase, got {type(value).__name__}")
