"""What a search filter means, on every store: the user's `{field: value}` dict as typed field matches.

Every store writes the same payload (`records.Document.payload`): `doc_id`, `text`, `title`,
`content_hash` at top level and the document's own metadata under `metadata`. A filter key is read
against that layout here, once; each adapter only translates the resulting `FieldMatch`es into its
query language (Qdrant conditions, OpenSearch `term`/`terms` clauses) and decides nothing itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from splade_connectors.errors import ConfigError
from splade_connectors.records import DOC_ID_FIELD, METADATA_FIELD, TOP_LEVEL_FIELDS

__all__ = ["FieldKind", "FieldMatch", "Scalar", "field_matches", "payload_path"]

FieldKind = Literal["document_id", "record_field", "metadata"]
Scalar = str | int | bool

# Top-level fields no filter matches exactly: the document text is searched, not compared whole
# (OpenSearch keeps it analysed only, so an exact match cannot mean the same there).
_NOT_MATCHABLE = {"text": "the document text is searched, not matched exactly"}
_COLLECTIONS = (list, tuple, set, frozenset)
# A field-name segment: letters, digits, `_` and `-` (any script). Every store reads other characters
# its own way (Qdrant parses `*`, `[]`, quotes and spaces as path syntax; OpenSearch `*` as a wildcard),
# so a filter that would mean different things, or fail deep inside an engine, is refused here.
_SEGMENT = re.compile(r"\w[\w-]*")
# Stores keep integers as signed 64-bit (Qdrant's integer payload, OpenSearch's `long`).
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class FieldMatch:
    """One condition of a filter: the field at `path` (a payload path) equals any of `values`.

    `kind` says which part of the payload layout the field is: the document id (`doc_id`; values
    are strings), a top-level record field (`title`, `content_hash`) or a metadata field
    (`metadata.<key>`, dotted for nested metadata). `key` is the user's key, for messages.
    """

    key: str
    kind: FieldKind
    path: str
    values: tuple[Scalar, ...]


def payload_path(key: str) -> tuple[FieldKind, str]:
    """Where a user-facing field name lives in the payload (also used for Qdrant payload indexes).

    - `doc_id`: the document id.
    - `title`, `text`, `content_hash`: those top-level record fields.
    - `metadata.<path>`: that metadata path (`metadata.source.name`).
    - anything else is a metadata field, a dotted key a path into nested metadata:
      `year` -> `metadata.year`, `source.name` -> `metadata.source.name`. (A metadata field that is
      named like a record field is reached as `metadata.title`.)

    Empty keys or segments (`""`, `.a`, `a..b`), segments with characters other than letters, digits,
    `_` and `-` (`*`, `a b`, `tags[]`), bare `metadata`, and paths into a record field (`title.x`) are a
    `ConfigError`.
    """
    if not isinstance(key, str):
        raise ConfigError(f"field name {key!r} is not a string")
    segments = key.split(".")
    if not key.strip() or any(not s.strip() for s in segments):
        raise ConfigError(f"field name {key!r} is empty or has an empty dotted segment")
    bad = next((s for s in segments if not _SEGMENT.fullmatch(s)), None)
    if bad is not None:
        raise ConfigError(
            f"field name {key!r}: {bad!r} is not a valid field name (letters, digits, '_' and '-', dots between nested fields)"
        )
    head = segments[0]
    if head == METADATA_FIELD:
        if len(segments) == 1:
            raise ConfigError(f"field name {key!r} names the metadata object itself; name a field in it, e.g. 'metadata.source'")
        return "metadata", key
    if head in TOP_LEVEL_FIELDS:
        if len(segments) > 1:
            raise ConfigError(f"field name {key!r}: {head!r} is a record field holding a string, it has no sub-fields")
        return ("document_id" if key == DOC_ID_FIELD else "record_field"), key
    return "metadata", f"{METADATA_FIELD}.{key}"


def field_matches(filter: Mapping[str, Any]) -> list[FieldMatch]:
    """The typed field matches of a user filter, ANDed; `{}` gives none.

    `{field: value}` matches documents whose field equals the value; `{field: [v1, v2]}` any of them.
    Field names follow `payload_path`: `doc_id` is the document id, `title` and `content_hash` the
    top-level record fields, every other key a metadata field (dotted keys are paths into nested
    metadata; `metadata.x` is the same as `x`).

    Values are str, int or bool (or a non-empty list of them) and are matched as that type: the
    CLI's `--filter year=2020` gives `["2020", 2020]` to match a string or an integer field, and its
    `FIELD:int=` / `:str=` / `:bool=` forms give one type. (Qdrant compares types strictly; OpenSearch
    also converts a value to the field's mapped type, so `"2020"` finds an integer 2020 there too.)
    Document ids are strings: a number or boolean given for `doc_id` means its text (`4983` ->
    `"4983"`, `True` -> `"true"`). Duplicate values are dropped (`1` and `True` stay distinct).

    Anything else is a `ConfigError` naming the key: a non-dict filter, a bad key (see
    `payload_path`), `text` (not matchable exactly), a float, None, dict or nested list value, an
    integer outside the signed 64-bit range, an empty list.
    """
    if not isinstance(filter, Mapping):
        raise ConfigError(f"filter must be a dict of field: value(s), got {type(filter).__name__}")
    matches: list[FieldMatch] = []
    for key, value in filter.items():
        kind, path = payload_path(key)
        if key in _NOT_MATCHABLE:
            raise ConfigError(f"filter on {key!r}: {_NOT_MATCHABLE[key]}; filter on a metadata field (or 'metadata.{key}')")
        values = _values(key, value)
        if kind == "document_id":
            values = [_as_document_id(v) for v in values]
        matches.append(FieldMatch(key=key, kind=kind, path=path, values=_distinct(values)))
    return matches


def _values(key: str, value: Any) -> list[Scalar]:
    items = list(value) if isinstance(value, _COLLECTIONS) else [value]
    if not items:
        raise ConfigError(f"filter on {key!r} has an empty list of values")
    for item in items:
        if not isinstance(item, (str, int)):  # bool is an int
            raise ConfigError(
                f"filter on {key!r}: exact match needs a str, int or bool (or a list of them), got {type(item).__name__}"
            )
        if isinstance(item, int) and not isinstance(item, bool) and not INT64_MIN <= item <= INT64_MAX:
            raise ConfigError(f"filter on {key!r}: integer {item} is out of the 64-bit range stores keep")
    return items


def _as_document_id(value: Scalar) -> str:
    """Document ids are stored as strings: a number or boolean means its text (as the CLI reads it)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _distinct(values: list[Scalar]) -> tuple[Scalar, ...]:
    """The values without repeats, in order; by type and value (`True == 1` in Python, not in a store)."""
    return tuple({(type(v), v): v for v in values}.values())
