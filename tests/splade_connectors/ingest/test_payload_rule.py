"""The payload rule (`splade_connectors.payload`) and bounded JSONL reading, without a store.

What every store then receives is checked on the stores themselves in
`tests/splade_connectors/cli/test_payload_contract.py`.
"""

from __future__ import annotations

import datetime as dt
import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from splade_connectors.ingest.sources import MAX_JSON_DEPTH, FieldMap, RawRecord, from_jsonl, parse_jsonl_line
from splade_connectors.ingest.validate import InvalidRecord, to_document
from splade_connectors.payload import MAX_BYTES, MAX_DEPTH, MAX_KEYS, PayloadRuleError, checked_metadata
from splade_connectors.records import Document


def _nested(levels: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(levels):
        value = {"k": value}
    return value


def test_non_finite_numbers_become_null_everywhere_in_metadata() -> None:
    line = b'{"_id": "n", "text": "t", "a": NaN, "b": {"c": [1.5, Infinity, -Infinity]}, "d": 1e400, "e": -0}\n'
    doc = to_document(parse_jsonl_line(0, line), FieldMap())
    assert isinstance(doc, Document)
    assert doc.metadata == {"a": None, "b": {"c": [1.5, None, None]}, "d": None, "e": 0}
    json.dumps(doc.payload(), allow_nan=False)  # what every store is sent is strict JSON


def test_allowed_values_are_kept_and_normalised() -> None:
    metadata = {
        "s": "x", "i": 2**63 - 1, "neg": -(2**63), "f": 1e300, "b": True, "n": None, "t": (1, 2),
        "when": dt.datetime(2024, 5, 1, 12, 30), "day": dt.date(2024, 5, 1), "nested": _nested(MAX_DEPTH),
        "arrays": [[1, 2], [3.5], [], None], "objects": [{"a": 1}, {"b": [None]}], "doc_id": "reserved names are fine",
    }
    checked = checked_metadata(metadata)
    assert checked["t"] == [1, 2] and checked["when"] == "2024-05-01T12:30:00" and checked["day"] == "2024-05-01"
    assert {k: v for k, v in checked.items() if k not in ("t", "when", "day")} == {
        k: v for k, v in metadata.items() if k not in ("t", "when", "day")
    }
    assert checked_metadata(checked) == checked  # the rule is idempotent


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ({"a.b": 1}, "metadata has a key with '.'"),
        ({"": 1}, "metadata has an empty or blank key"),
        ({"x": {"  ": 1}}, "metadata.x has an empty or blank key"),
        ({"big": 2**63}, "metadata.big is an integer outside the int64 range"),
        ({"small": -(2**63) - 1}, "metadata.small is an integer outside the int64 range"),
        ({"mix": [1, "a"]}, "metadata.mix mixes number and string in one array"),
        ({"mix": [[1], ["a"]]}, "metadata.mix mixes number and string in one array"),
        ({"mix": [{"a": 1}, 2]}, "metadata.mix mixes number and object in one array"),
        ({"mix": [True, 1]}, "metadata.mix mixes boolean and number in one array"),
        ({"raw": b"bytes"}, "metadata.raw is a bytes: metadata holds JSON values only"),
        ({"deep": _nested(MAX_DEPTH + 1)}, f"is nested more than {MAX_DEPTH} levels deep"),
        ({f"k{i}": i for i in range(MAX_KEYS + 1)}, f"metadata has more than {MAX_KEYS} keys"),
        ({"blob": "x" * (MAX_BYTES + 1)}, f"metadata is larger than {MAX_BYTES} bytes"),
        ({"blob": "é" * (MAX_BYTES // 2 + 1)}, "bytes of JSON, more than"),  # characters < bytes: the exact size decides
    ],
)
def test_metadata_outside_the_rule_is_refused_naming_the_path(metadata: dict[str, Any], reason: str) -> None:
    with pytest.raises(PayloadRuleError) as caught:
        checked_metadata(metadata)
    assert reason in str(caught.value)
    refused = to_document(RawRecord(7, {"_id": "r", "text": "t", **metadata}), FieldMap())
    assert isinstance(refused, InvalidRecord) and refused.position == 7 and refused.doc_id == "r"
    assert reason in refused.reason


def test_a_self_referencing_dict_is_refused_not_a_recursion_error() -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    refused = to_document(RawRecord(0, Document(id="d", text="t", metadata={"loop": loop})), FieldMap())
    assert isinstance(refused, InvalidRecord) and "nested more than" in refused.reason


def test_documents_from_iterables_follow_the_rule() -> None:
    result = to_document(RawRecord(0, Document(id="d", text="t", metadata={"x": float("nan")})), FieldMap())
    assert isinstance(result, Document) and result.metadata == {"x": None}


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH + 1, 5000, 200_000])
def test_a_deeply_nested_line_is_an_unreadable_record(levels: int) -> None:
    for line in (b"[" * levels + b"]" * levels, b'{"_id": "d", "text": "t", "m": ' + b"[" * levels + b"]" * levels + b"}"):
        record = parse_jsonl_line(4, line)
        assert record.data is None and record.error == f"line 5 nests arrays/objects more than {MAX_JSON_DEPTH} levels deep"


def test_nesting_is_counted_outside_strings_only() -> None:
    brackets = "[{" * 200
    record = parse_jsonl_line(0, json.dumps({"_id": "d", "text": brackets, "q": 'a "quoted" \\ [' * 50}).encode())
    assert record.data is not None and record.data["text"] == brackets
    at_limit = b"[" * (MAX_JSON_DEPTH - 1) + b"]" * (MAX_JSON_DEPTH - 1)
    assert parse_jsonl_line(0, b'{"m": ' + at_limit + b"}").data is not None


def test_an_integer_too_long_to_convert_is_an_unreadable_record() -> None:
    record = parse_jsonl_line(0, b'{"_id": "d", "text": "t", "n": ' + b"7" * 5000 + b"}")
    assert record.data is None and record.error == "line 1 is not readable JSON (a number has too many digits)"


def test_a_line_past_the_size_limit_is_refused_and_skipped_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    limit = 64 * 1024
    big = b'{"_id": "big", "text": "' + b"x" * (8 * 1024 * 1024) + b'"}'
    at_limit = b'{"_id": "b", "text": "' + b"y" * (limit - 24) + b'"}'
    past = b'{"_id": "c", "text": "' + b"z" * (limit - 23) + b'"}'
    assert len(at_limit) == limit and len(past) == limit + 1
    with open(path, "wb") as handle:  # a BOM, CRLF, and a last line without newline
        handle.write(b'\xef\xbb\xbf{"_id": "a", "text": "first"}\n' + big + b"\r\n" + at_limit + b"\r\n" + past)
    tracemalloc.start()
    try:
        records = list(from_jsonl(path, max_line_bytes=limit))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [r.position for r in records] == [0, 1, 2, 3]
    assert records[0].data == {"_id": "a", "text": "first"} and records[2].data is not None
    assert records[1].error == f"line 2 is longer than {limit} bytes ({len(big)} bytes)"
    assert records[3].error == f"line 4 is longer than {limit} bytes ({limit + 1} bytes)"
    assert peak < 4 * 1024 * 1024  # never the 8 MiB line


def test_parquet_nan_and_timestamps_follow_the_rule(tmp_path: Path) -> None:
    """A float column with NaN (pandas' missing value) is stored as null; timestamps as ISO 8601 strings."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from splade_connectors.ingest.sources import from_parquet

    path = tmp_path / "corpus.parquet"
    table = pa.table({
        "_id": ["a", "b"], "text": ["one", "two"], "score": [float("nan"), 2.5],
        "when": pa.array([dt.datetime(2024, 5, 1, 8, 0), None], pa.timestamp("s")),
    })
    pq.write_table(table, path)
    first, second = (to_document(raw, FieldMap()) for raw in from_parquet(path))
    assert isinstance(first, Document) and first.metadata == {"score": None, "when": "2024-05-01T08:00:00"}
    assert isinstance(second, Document) and second.metadata == {"score": 2.5, "when": None}
