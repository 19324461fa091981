"""Filters: the contract's field matches as a Qdrant `Filter`, and that filter for the embedded engine.

What a filter dict means (which key is the document id, a record field, a metadata path) is decided
once for every store by `splade_connectors.filters.field_matches`; this module only translates each
match into a condition on its payload path. Qdrant compares types strictly and `MatchAny` takes one
type, so a match of mixed types (the CLI's `["2020", 2020]`) becomes one condition per type, any of
which may match; booleans are matched one `MatchValue` each. Conditions are ANDed. A qdrant-client
`models.Filter` (or a qdrant-edge filter) is passed through unchanged; `to_edge_filter` converts one
for the embedded engine (qdrant-edge has its own classes of the same shape), so users write one
filter type for every engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qdrant_client import models

from splade_connectors.errors import ConfigError
from splade_connectors.filters import FieldMatch, Scalar, field_matches


def _condition(match: FieldMatch) -> models.FieldCondition | models.Filter:
    if len(match.values) == 1:
        return models.FieldCondition(key=match.path, match=models.MatchValue(value=match.values[0]))
    by_type: dict[type, list[Scalar]] = {}
    for value in match.values:
        by_type.setdefault(type(value), []).append(value)
    conditions: list[models.FieldCondition] = []
    for kind, values in by_type.items():
        if kind is bool:
            conditions += [models.FieldCondition(key=match.path, match=models.MatchValue(value=v)) for v in values]
        else:
            conditions.append(models.FieldCondition(key=match.path, match=models.MatchAny(any=values)))
    return conditions[0] if len(conditions) == 1 else models.Filter(should=list(conditions))


def build_filter(spec: Mapping[str, Any] | models.Filter | None) -> models.Filter | None:
    """A Qdrant filter from a {field: value | [values]} dict, a native Filter, or None.

    Anything else, and an invalid dict (see `field_matches`), is a `ConfigError`.
    """
    if spec is None or isinstance(spec, models.Filter):
        return spec
    if type(spec).__module__.startswith("qdrant_edge"):
        return spec  # type: ignore[return-value]  # an embedded-engine filter: the edge engine takes it as is
    if not isinstance(spec, Mapping):
        raise ConfigError(f"filter must be a dict or qdrant_client.models.Filter, got {type(spec).__name__}")
    matches = field_matches(spec)
    return models.Filter(must=[_condition(m) for m in matches]) if matches else None


# ---- qdrant-client models -> qdrant-edge --------------------------------------------------------------


def to_edge_filter(native: Any) -> Any:
    """The qdrant-edge `Filter` for a qdrant-client `models.Filter` (an edge filter passes through)."""
    import qdrant_edge as qe

    if native is None or isinstance(native, qe.Filter):
        return native
    if not isinstance(native, models.Filter):
        raise ConfigError(f"filter must be a qdrant_client.models.Filter, got {type(native).__name__}")

    def many(conditions: Any) -> list[Any] | None:
        if conditions is None:
            return None
        items = conditions if isinstance(conditions, list) else [conditions]
        return [_edge_condition(c) for c in items]

    min_should = None
    if native.min_should is not None:
        min_should = qe.MinShould(conditions=many(native.min_should.conditions) or [], min_count=native.min_should.min_count)
    return qe.Filter(must=many(native.must), should=many(native.should), must_not=many(native.must_not), min_should=min_should)


def _edge_condition(condition: Any) -> Any:
    import qdrant_edge as qe

    if isinstance(condition, models.Filter):
        return to_edge_filter(condition)
    if isinstance(condition, models.FieldCondition):
        return qe.FieldCondition(
            key=condition.key, match=_edge_match(condition.match), range=_edge_range(condition.range),
            values_count=_edge_values_count(condition.values_count),
            is_empty=condition.is_empty, is_null=condition.is_null,
        )
    if isinstance(condition, models.IsEmptyCondition):
        return qe.IsEmptyCondition(key=condition.is_empty.key)
    if isinstance(condition, models.IsNullCondition):
        return qe.IsNullCondition(key=condition.is_null.key)
    if isinstance(condition, models.HasIdCondition):
        return qe.HasIdCondition(point_ids=set(condition.has_id))
    if isinstance(condition, models.NestedCondition):
        return qe.NestedCondition(key=condition.nested.key, filter=to_edge_filter(condition.nested.filter))
    raise ConfigError(f"the embedded Qdrant engine does not support the filter condition {type(condition).__name__}")


def _edge_match(match: Any) -> Any:
    import qdrant_edge as qe

    if match is None:
        return None
    if isinstance(match, models.MatchValue):
        if isinstance(match.value, bool):
            # qdrant-edge-py 0.9.0 reads a Python bool as the integer 1/0 (which matches no stored
            # boolean); numpy's bool reaches its boolean variant.
            import numpy as np

            return qe.MatchValue(np.bool_(match.value))  # type: ignore[arg-type]  # numpy's bool on purpose, see above
        return qe.MatchValue(match.value)
    if isinstance(match, models.MatchAny):
        return qe.MatchAny(match.any.copy())
    if isinstance(match, models.MatchExcept):
        return qe.MatchExcept(match.except_.copy())
    if isinstance(match, models.MatchText):
        return qe.MatchText(match.text)
    if isinstance(match, models.MatchPhrase):
        return qe.MatchPhrase(match.phrase)
    raise ConfigError(f"the embedded Qdrant engine does not support the match {type(match).__name__}")


def _edge_range(value: Any) -> Any:
    import qdrant_edge as qe

    if value is None:
        return None
    if isinstance(value, models.Range):
        return qe.RangeFloat(gte=value.gte, gt=value.gt, lte=value.lte, lt=value.lt)
    if isinstance(value, models.DatetimeRange):
        text = [None if v is None else (v if isinstance(v, str) else v.isoformat()) for v in (value.gte, value.gt, value.lte, value.lt)]
        return qe.RangeDateTime(gte=text[0], gt=text[1], lte=text[2], lt=text[3])
    raise ConfigError(f"the embedded Qdrant engine does not support the range {type(value).__name__}")


def _edge_values_count(value: Any) -> Any:
    import qdrant_edge as qe

    if value is None:
        return None
    return qe.ValuesCount(lt=value.lt, gt=value.gt, lte=value.lte, gte=value.gte)
