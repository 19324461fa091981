"""The one BEIR reader: document text, grades, headers, dropped empty records, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer.errors import DatasetError, SpladeError
from trainer.retrieval import document_text, read_beir_folder


def _write(folder: Path, corpus: list[dict[str, str]], queries: list[dict[str, str]], qrels: str) -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus), encoding="utf-8")
    (folder / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries), encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text(qrels, encoding="utf-8")
    return folder


def test_document_text_is_title_newline_text() -> None:
    assert document_text("Title", "Body.") == "Title\nBody."
    assert document_text("", "Body.") == "Body." and document_text(None, "Body.") == "Body."


def test_reads_grades_titles_and_drops_empty_records(tmp_path: Path) -> None:
    data = read_beir_folder(_write(
        tmp_path / "b",
        [{"_id": "1", "title": "T", "text": "one"}, {"_id": "2", "text": "two"}, {"_id": "3", "title": "t", "text": ""}],
        [{"_id": "q1", "text": "query"}, {"_id": "q2", "text": ""}],
        "query-id\tcorpus-id\tscore\nq1\t1\t2\nq1\t2\t0\n",
    ))
    assert data.corpus == {"1": {"title": "T", "text": "one"}, "2": {"title": "", "text": "two"}}
    assert data.queries == {"q1": "query"}
    assert data.qrels == {"q1": {"1": 2, "2": 0}}
    assert data.text("1") == "T\none" and data.text("1", with_title=False) == "one" and data.text("2") == "two"


def test_qrels_without_header_and_with_bom(tmp_path: Path) -> None:
    folder = _write(tmp_path / "b", [{"_id": "1", "text": "x"}], [{"_id": "q", "text": "y"}], "\ufeffq\t1\t1\n")
    assert read_beir_folder(folder).qrels == {"q": {"1": 1}}


@pytest.mark.parametrize(
    ("corpus_line", "qrels", "message"),
    [
        ('{"_id": "1", "text": "x"}\n{not json}\n', "q\t1\t1\n", r"corpus.jsonl:2: not valid JSON"),
        ('{"text": "no id"}\n', "q\t1\t1\n", r"has no '_id' field"),
        ('{"_id": "1", "text": "x"}\n', "q\t1\n", r"test.tsv:1: expected query-id, corpus-id, score"),
        ('{"_id": "1", "text": "x"}\n', "q\t1\t1\nq\t2\thigh\n", r"test.tsv:2: score 'high' is not a number"),
    ],
)
def test_bad_files_are_one_line_dataset_errors(tmp_path: Path, corpus_line: str, qrels: str, message: str) -> None:
    folder = _write(tmp_path / "b", [], [{"_id": "q", "text": "y"}], qrels)
    (folder / "corpus.jsonl").write_text(corpus_line, encoding="utf-8")
    with pytest.raises(DatasetError, match=message) as info:
        read_beir_folder(folder)
    assert isinstance(info.value, SpladeError) and "\n" not in str(info.value)


def test_missing_files_are_listed(tmp_path: Path) -> None:
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "corpus.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"not a BEIR folder: missing .*queries.jsonl, .*test.tsv"):
        read_beir_folder(tmp_path / "half")
