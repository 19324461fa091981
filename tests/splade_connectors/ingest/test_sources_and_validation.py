"""Reading inputs and validating records: every bad record is named, nothing is silently dropped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from splade_connectors.errors import InputError
from splade_connectors.ingest.sources import FieldMap, RawRecord, beir_corpus_path, fingerprint, from_iterable, from_jsonl
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
