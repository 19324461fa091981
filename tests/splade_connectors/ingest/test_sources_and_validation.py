"""Reading inputs and validating records: every bad record is named, nothing is silently dropped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from splade_connectors.errors import InputError
from splade_connectors.ingest.sources import (
    FieldMap,
    RawRecord,
    beir_corpus_path,
    fingerprint,
    from_iterable,
    from_jsonl,
    open_source,
    source_format,
)
from splade_connectors.ingest.validate import InvalidRecord, to_document
from splade_connectors.records import Document, point_id


def test_jsonl_reader_reports_unreadable_lines_by_number(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_bytes(
        b'{"_id": "a", "text": "fine"}\n'
        b"\xff\xfe not utf-8\n"
        b"{broken json\n"
        b"\n"
        b"[1, 2]\n"
        b'{"_id": "b", "text": "also fine"}\n'
    )
    records = list(from_jsonl(path))
    assert [r.position for r in records] == [0, 1, 2, 3, 4, 5]
    assert records[0].data == {"_id": "a", "text": "fine"}
    assert "line 2 is not valid UTF-8" in (records[1].error or "")
    assert "line 3 is not valid JSON" in (records[2].error or "")
    assert records[3].error == "blank line"
    assert "not a JSON object" in (records[4].error or "")
    assert records[5].error is None


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"text": "no id"}, "missing id field '_id'"),
        ({"_id": "", "text": "empty id"}, "missing id field"),
        ({"_id": ["x"], "text": "list id"}, "id must be a string or integer"),
        ({"_id": True, "text": "bool id"}, "id must be a string or integer"),
        ({"_id": "d1"}, "missing text field 'text'"),
        ({"_id": "d1", "text": 12}, "text must be a string, got int"),
        ({"_id": "d1", "text": "   "}, "text is empty"),
        ({"_id": "d1", "text": "ok", "title": 5}, "title must be a string"),
    ],
)
def test_invalid_records_name_the_problem(data: dict, reason: str) -> None:
    result = to_document(RawRecord(7, data), FieldMap())
    assert isinstance(result, InvalidRecord)
    assert result.position == 7
    assert reason in result.reason
    assert "record #7" in result.describe()


def test_valid_record_keeps_title_and_metadata() -> None:
    result = to_document(RawRecord(0, {"_id": 12, "text": "body", "title": "Head", "lang": "en", "year": 2020}), FieldMap())
    assert isinstance(result, Document)
    assert result.id == "12"  # integer ids become strings
    assert result.metadata == {"lang": "en", "year": 2020}
    assert result.text_to_encode(with_title=True) == "Head\nbody"
    assert result.text_to_encode(with_title=False) == "body"
    assert result.payload() == {"doc_id": "12", "text": "body", "title": "Head", "metadata": {"lang": "en", "year": 2020}}


def test_custom_field_map() -> None:
    fields = FieldMap(id="pid", text="passage", title=None, metadata=["source"])
    result = to_document(RawRecord(0, {"pid": "p1", "passage": "hello", "source": "web", "junk": 1}), fields)
    assert isinstance(result, Document)
    assert result.metadata == {"source": "web"}


def test_documents_pass_through_from_iterables() -> None:
    records = list(from_iterable([Document(id="x", text="t"), {"_id": "y", "text": "u"}]))
    assert isinstance(to_document(records[0], FieldMap()), Document)
    assert isinstance(to_document(records[1], FieldMap()), Document)


def test_point_ids_are_deterministic_and_distinct() -> None:
    assert point_id("doc-1") == point_id("doc-1")
    assert point_id("doc-1") != point_id("doc-2")


def test_beir_folder_and_fingerprint(tmp_path: Path) -> None:
    (tmp_path / "corpus.jsonl").write_text(json.dumps({"_id": "a", "text": "x"}) + "\n")
    assert beir_corpus_path(tmp_path) == tmp_path / "corpus.jsonl"
    first = fingerprint(tmp_path / "corpus.jsonl")
    (tmp_path / "corpus.jsonl").write_text(json.dumps({"_id": "a", "text": "changed"}) + "\n")
    assert fingerprint(tmp_path / "corpus.jsonl") != first
    with pytest.raises(InputError, match="no such file or BEIR folder"):
        beir_corpus_path(tmp_path / "missing")


def test_utf8_bom_is_not_part_of_the_first_record(tmp_path: Path) -> None:
    """A UTF-8 BOM at the start of a JSONL file is skipped: the first record is valid (CRLF line ends too)."""
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"_id": "a", "text": "first"}\r\n{"_id": "b", "text": "second"}\r\n')
    records = list(from_jsonl(path))
    assert [r.error for r in records] == [None, None]
    assert [to_document(r, FieldMap()).id for r in records] == ["a", "b"]


def test_a_bom_elsewhere_than_the_file_start_is_still_an_error(tmp_path: Path) -> None:
    path = tmp_path / "bom2.jsonl"
    path.write_bytes(b'{"_id": "a", "text": "x"}\n\xef\xbb\xbf{"_id": "b", "text": "y"}\n')
    records = list(from_jsonl(path))
    assert records[0].error is None and "line 2 is not valid JSON" in (records[1].error or "")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"_id": "s", "text": "bad \ud800 x"}, "text has a lone surrogate (U+D800 at character 4)"),
        ({"_id": "s", "text": "ok", "title": "\udfff"}, "title has a lone surrogate (U+DFFF at character 0)"),
        ({"_id": "s", "text": "ok", "tags": ["fine", "x\udc00"]}, "metadata.tags[1] has a lone surrogate (U+DC00 at character 1)"),
        ({"_id": "s", "text": "ok", "meta": {"k\ud801": 1}}, "metadata.meta has a key with a lone surrogate"),
    ],
)
def test_lone_surrogates_are_refused_naming_field_and_position(data: dict, reason: str) -> None:
    """A lone surrogate in text, title, metadata values or keys is refused at validation, naming the field and
    the character position, before it can reach the tokenizer."""
    result = to_document(RawRecord(3, data), FieldMap())
    assert isinstance(result, InvalidRecord) and result.doc_id == "s"
    assert reason in result.reason and "not valid Unicode" in result.reason


def test_lone_surrogate_in_json_escapes_and_in_ids(tmp_path: Path) -> None:
    path = tmp_path / "surr.jsonl"
    path.write_bytes(b'{"_id": "a", "text": "fine \\ud83d\\ude00 pair"}\n{"_id": "x\\ud800", "text": "t"}\n')
    first, second = (to_document(r, FieldMap()) for r in from_jsonl(path))
    assert isinstance(first, Document) and first.text == "fine \U0001F600 pair"  # a valid pair is one character
    assert isinstance(second, InvalidRecord) and second.doc_id is None and "id has a lone surrogate" in second.reason


def test_documents_from_iterables_are_checked_for_surrogates_too() -> None:
    result = to_document(RawRecord(0, Document(id="d", text="a\ud800")), FieldMap())
    assert isinstance(result, InvalidRecord) and result.doc_id == "d" and "lone surrogate" in result.reason


def test_parquet_source_numbers_rows(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "corpus.parquet"
    table = pa.table({"_id": [f"d{i}" for i in range(2500)], "text": [f"text {i}" for i in range(2500)]})
    pq.write_table(table, path, row_group_size=1000)
    records = list(open_source(path))
    assert [r.position for r in records] == list(range(2500))
    assert records[2499].data == {"_id": "d2499", "text": "text 2499"}
    assert source_format(path) == "parquet" and source_format(tmp_path / "c.jsonl") == "jsonl"
