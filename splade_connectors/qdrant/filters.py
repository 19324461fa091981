"""Turning the store-neutral filter dict into a Qdrant `Filter`.

`{"topic": "biology"}` matches `metadata.topic == "biology"`; `{"topic": ["a", "b"]}` matches any
of the values; `doc_id` (and keys already containing a dot, e.g. `metadata.year`) address the
payload directly. Conditions are ANDed. A `models.Filter` is passed through unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qdrant_client import models

_TOP_LEVEL = {"doc_id", "title", "text"}


def payload_key(field: str) -> str:
    return field if field in _TOP_LEVEL or "." in field else f"metadata.{field}"


def _condition(field: str, value: Any) -> models.FieldCondition:
    key = payload_key(field)
    if isinstance(value, (list, tuple, set, frozenset)):
        values = list(value)
        if not values:
            raise ValueError(f"filter on {field!r} has an empty list of values")
        return models.FieldCondition(key=key, match=models.MatchAny(any=values))
    if isinstance(value, (str, int, bool)):
        return models.FieldCondition(key=key, match=models.MatchValue(value=value))
    raise ValueError(f"filter on {field!r}: exact match needs a str, int or bool (or a list of them), got {type(value).__name__}")


def build_filter(spec: Mapping[str, Any] | models.Filter | None) -> models.Filter | None:
    """A Qdrant filter from a {field: value | [values]} dict, a native Filter, or None."""
    if spec is None or isinstance(spec, models.Filter):
        return spec
    if not isinstance(spec, Mapping):
        raise TypeError(f"filter must be a dict or qdrant_client.models.Filter, got {type(spec).__name__}")
    if not spec:
        return None
    return models.Filter(must=[_condition(str(field), value) for field, value in spec.items()])
