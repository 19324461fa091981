"""The payload rule: what a record's metadata may hold, one rule that every store honours identically.

Every store keeps the metadata under `metadata` in the payload (`records.Document.payload`). The
stores differ in what they accept: the embedded Qdrant engine refuses NaN/Infinity (and, through
them, the object holding them) and objects nested past 127 levels; OpenSearch refuses non-finite
numbers, maps a dotted key as an object path, refuses empty keys, objects deeper than 20 levels,
more than 1,000 fields, and arrays mixing kinds of values (`[1, "a"]`, `[{"a": 1}, 2]`); the Qdrant
server takes almost anything. Validation (`ingest.validate`) applies this rule before encoding, so
the same input gives the same stored payloads, refusals and counts on every store:

- values are JSON values: strings, booleans, null, integers in the int64 range, finite floats,
  arrays, objects with string keys; tuples become arrays, dates and times ISO 8601 strings;
- NaN, Infinity and -Infinity (also `1e400`, which JSON readers take for Infinity) become null;
- keys are non-empty, not blank, without `.` (a filter's dotted key is a path into nested metadata);
- arrays hold one kind of value (strings, numbers, booleans, objects; nulls anywhere; nested arrays
  count by their elements, as OpenSearch flattens them);
- at most `MAX_DEPTH` nested arrays/objects, `MAX_KEYS` keys in all, `MAX_BYTES` of JSON (UTF-8);
- strings and keys are valid Unicode (no lone UTF-16 surrogate).

A record outside the rule is refused (`InvalidRecord`, with the path of the first problem); the
walk recurses at most `MAX_DEPTH` levels, whatever the input (a self-referencing dict included).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from typing import Any

from trainer.text import lone_surrogate

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_KEYS", "checked_metadata"]

MAX_DEPTH = 16  # arrays/objects nested inside `metadata` (OpenSearch's default object depth limit is 20)
MAX_KEYS = 500  # keys counted over every nested object (OpenSearch's default index-wide limit is 1,000 fields)
MAX_BYTES = 1024 * 1024  # the metadata's JSON encoding, UTF-8
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

class PayloadRuleError(ValueError):
    """A metadata value outside the payload rule; the message names its path and the problem."""


class _Walk:
    """One walk over a metadata dict: the normalised copy, its key count and a running size bound."""

    def __init__(self) -> None:
        self.keys = 0
        self.chars = 0  # characters of strings and keys so far: a lower bound of the JSON size, to stop early

    def value(self, value: Any, path: str, depth: int) -> tuple[Any, frozenset[str]]:
        """The normalised value and the kinds it holds (an array's: its elements', flattened)."""
        if value is None:
            return None, frozenset()
        if isinstance(value, bool):
            return value, frozenset({"boolean"})
        if isinstance(value, int):
            if not INT64_MIN <= value <= INT64_MAX:
                raise PayloadRuleError(f"{path} is an integer outside the int64 range")
            return int(value), frozenset({"number"})
        if isinstance(value, float):
            return (float(value) if math.isfinite(value) else None), frozenset({"number"})
        if isinstance(value, str):
            return self.string(value, path), frozenset({"string"})
        if isinstance(value, (dt.datetime, dt.date, dt.time)):
            return value.isoformat(), frozenset({"string"})
        if isinstance(value, (Mapping, list, tuple)):
            if depth >= MAX_DEPTH:
                raise PayloadRuleError(f"{path} is nested more than {MAX_DEPTH} levels deep")
            if isinstance(value, Mapping):
                return self.mapping(value, path, depth + 1), frozenset({"object"})
            return self.array(value, path, depth + 1)
        raise PayloadRuleError(
            f"{path} is a {type(value).__name__}: metadata holds JSON values only "
            "(strings, numbers, booleans, null, arrays, objects; dates become ISO 8601 strings)"
        )

    def string(self, text: str, path: str) -> str:
        if found := lone_surrogate(text):
            raise PayloadRuleError(f"{path} has a lone surrogate ({found}): not valid Unicode")
        self.chars += len(text)
        if self.chars > MAX_BYTES:
            raise PayloadRuleError(f"metadata is larger than {MAX_BYTES} bytes of JSON")
        return str(text)

    def mapping(self, value: Mapping[Any, Any], path: str, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise PayloadRuleError(f"{path} has a key that is not a string ({type(key).__name__})")
            if found := lone_surrogate(key):
                raise PayloadRuleError(f"{path} has a key with a lone surrogate ({found}): not valid Unicode")
            if not key.strip():
                raise PayloadRuleError(f"{path} has an empty or blank key")
            if "." in key:
                raise PayloadRuleError(f"{path} has a key with '.' ({key[:40]!r}): dots are reserved for paths")
            self.keys += 1
            if self.keys > MAX_KEYS:
                raise PayloadRuleError(f"metadata has more than {MAX_KEYS} keys")
            self.chars += len(key)
            out[key], _ = self.value(item, f"{path}.{key}", depth)
        return out

    def array(self, value: list[Any] | tuple[Any, ...], path: str, depth: int) -> tuple[list[Any], frozenset[str]]:
        out: list[Any] = []
        kinds: frozenset[str] = frozenset()
        for index, item in enumerate(value):
            cleaned, item_kinds = self.value(item, f"{path}[{index}]", depth)
            kinds |= item_kinds
            if len(kinds) > 1:
                raise PayloadRuleError(f"{path} mixes {' and '.join(sorted(kinds))} in one array")
            out.append(cleaned)
        return out, kinds


def checked_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata under the payload rule (non-finite numbers as null, tuples as lists, dates as strings).

    Raises `PayloadRuleError` naming the first value outside the rule (`metadata.tags[2] ...`).
    """
    walk = _Walk()
    cleaned = walk.mapping(metadata, "metadata", 0)
    size = len(json.dumps(cleaned, ensure_ascii=False, allow_nan=False).encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise PayloadRuleError(f"metadata is {size} bytes of JSON, more than {MAX_BYTES}")
    return cleaned
