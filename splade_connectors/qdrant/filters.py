"""Turning the store-neutral filter dict into a Qdrant `Filter`.

`{"topic": "biology"}` matches `metadata.topic == "biology"`; `{"topic": ["a", "b"]}` matches any
of the values (of any mix of str, int and bool: Qdrant compares types strictly, so `["2020", 2020]`
matches the string or the integer); `doc_id` (and keys already containing a dot, e.g.
`metadata.year`) address the payload directly. Conditions are ANDed. A `models.Filter` is passed through unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qdrant_client import models

from splade_connectors.errors import ConfigError

_TOP_LEVEL = {"doc_id", "title", "text"}


def payload_key(field: str) -> str:
    return field if field in _TOP_LEVEL or "." in field else f"metadata.{field}"


def _condition(field: str, value: Any) -> models.FieldCondition | models.Filter:
    key = payload_key(field)
    if isinstance(value, (list, tuple, set, frozenset)):
        values = list(value)
        if not values:
            raise ConfigError(f"filter on {field!r} has an empty list of values")
        # Qdrant matches types strictly and MatchAny takes one type: a mixed list (e.g. the CLI's
        # ["4983", 4983]) becomes one condition per type, any of which may match.
        by_type: dict[type, list[Any]] = {}
        for item in values:
            by_type.setdefault(_match_type(field, item), []).append(item)
        conditions: list[models.FieldCondition] = []
        for kind, items in by_type.items():
            if kind is bool:
                conditions += [models.FieldCondition(key=key, match=models.MatchValue(value=v)) for v in dict.fromkeys(items)]
            else:
                conditions.append(models.FieldCondition(key=key, match=models.MatchAny(any=items)))
        return conditions[0] if len(conditions) == 1 else models.Filter(should=list(conditions))
    _match_type(field, value)
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def _match_type(field: str, value: Any) -> type:
    for kind in (bool, str, int):  # bool first: it is an int too
        if isinstance(value, kind):
            return kind
    raise ConfigError(
        f"filter on {field!r}: exact match needs a str, int or bool (or a list of them), got {type(value).__name__}"
    )


def build_filter(spec: Mapping[str, Any] | models.Filter | None) -> models.Filter | None:
    """A Qdrant filter from a {field: value | [values]} dict, a native Filter, or None."""
    if spec is None or isinstance(spec, models.Filter):
        return spec
    if not isinstance(spec, Mapping):
        raise TypeError(f"filter must be a dict or qdrant_client.models.Filter, got {type(spec).__name__}")
    if not spec:
        return None
    return models.Filter(must=[_condition(str(field), value) for field, value in spec.items()])
