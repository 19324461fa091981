"""Training examples (query, positive[, negatives...]) from JSONL or a Hugging Face dataset.

Examples are plain tuples of strings; column order is query, positive, then hard negatives.
`datasets` is imported only when a Hub/HF dataset is asked for.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.errors import SpladeError
from trainer.training.sampler import NoDuplicatesBatchSampler, SamplerState

logger = logging.getLogger(__name__)

__all__ = [
    "DataError",
    "Example",
    "NoDuplicatesBatchSampler",
    "SamplerState",
    "TrainingExamples",
    "load_hf_examples",
    "load_jsonl_examples",
]

Example = tuple[str, ...]


class DataError(SpladeError, ValueError):
    """Training data is missing, malformed, or lacks a configured column."""


@dataclass(frozen=True)
class TrainingExamples:
    """Rows of (query, positive, negative_1, ..., negative_n); every row has the same width."""

    rows: list[Example]
    columns: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> Example:
        return self.rows[index]

    @property
    def num_negatives(self) -> int:
        return len(self.columns) - 2


def _row(record: dict[str, Any], columns: Sequence[str], where: str) -> Example:
    values = []
    for column in columns:
        if column not in record:
            raise DataError(f"{where}: missing field {column!r} (have {sorted(record)})")
        value = record[column]
        if not isinstance(value, str) or not value.strip():
            raise DataError(f"{where}: field {column!r} must be a non-empty string")
        values.append(value)
    return tuple(values)


def load_jsonl_examples(
    path: str | Path,
    *,
    query: str = "query",
    positive: str = "positive",
    negatives: Sequence[str] = ("negative",),
    limit: int | None = None,
) -> TrainingExamples:
    """Read a JSONL file; negative fields absent from the first record are dropped (pairs stay pairs)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"training file {path} does not exist")
    rows: list[Example] = []
    columns: tuple[str, ...] | None = None
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{line_no}: invalid JSON ({exc})") from exc
            if columns is None:
                present = [n for n in negatives if n in record]
                columns = (query, positive, *present)
                if len(present) < len(negatives):
                    logger.info("%s: no field(s) %s; training on %s", path, sorted(set(negatives) - set(present)), columns)
            rows.append(_row(record, columns, f"{path}:{line_no}"))
            if limit is not None and len(rows) >= limit:
                break
    if not rows or columns is None:
        raise DataError(f"{path} holds no examples")
    return TrainingExamples(rows, columns)


def load_hf_examples(
    name: str,
    *,
    subset: str | None = None,
    split: str = "train",
    query: str | None = None,
    positive: str | None = None,
    negatives: Sequence[str] | None = None,
    limit: int | None = None,
    revision: str | None = None,
) -> TrainingExamples:
    """Load a Hugging Face dataset (Hub id or local path) via `datasets`.

    Column names default to the dataset's own order (first = query, second = positive, rest =
    negatives), the convention of sentence-transformers' training sets such as natural-questions.
    """
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DataError("loading a Hugging Face dataset needs `pip install datasets`") from exc
    dataset = datasets.load_dataset(name, subset, split=split, revision=revision)
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    names = list(dataset.column_names)
    if query is None and positive is None and negatives is None:
        columns = tuple(names)
    else:
        columns = (query or names[0], positive or names[1], *(negatives or ()))
    missing = [c for c in columns if c not in names]
    if missing:
        raise DataError(f"dataset {name}: no column(s) {missing} (have {names})")
    if len(columns) < 2:
        raise DataError(f"dataset {name}: need at least a query and a positive column, have {names}")
    table = {c: dataset[c] for c in columns}
    rows = [
        _row({c: table[c][i] for c in columns}, columns, f"{name}[{i}]") for i in range(len(dataset))
    ]
    return TrainingExamples(rows, columns)
