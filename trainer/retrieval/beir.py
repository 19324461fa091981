"""Reading BEIR folders (`corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv`), and the document text.

The one reader of BEIR data: the trainer's evaluation hook and `splade_connectors.eval` both use it.
- Documents keep title and text apart; `document_text` is the text that is encoded: title, a newline,
  then the text (the text alone without a title). Ingestion (`records.Document.text_to_encode`) uses
  the same function, so training-time evaluation, store evaluation and ingestion encode the same text.
- Documents and queries with empty text are dropped (as sentence-transformers' evaluators do).
- Qrels keep their integer grades; the header line, if any, is skipped.
Unreadable files give a `DatasetError` naming the file and line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.errors import DatasetError

__all__ = ["BeirData", "DatasetError", "document_text", "read_beir_folder", "read_jsonl", "read_qrels"]


def document_text(title: str | None, text: str) -> str:
    """The text encoded for a document: `title + "\\n" + text`, or the text alone without a title."""
    return f"{title}\n{text}" if title else text


@dataclass(frozen=True)
class BeirData:
    """A BEIR folder's content: corpus (id -> {"title", "text"}), queries (id -> text), graded qrels."""

    corpus: dict[str, dict[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    def text(self, doc_id: str, *, with_title: bool = True) -> str:
        doc = self.corpus[doc_id]
        return document_text(doc["title"] if with_title else None, doc["text"])


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """JSON objects of a JSONL file, one a line (blank lines skipped); bad lines are a `DatasetError`."""
    try:
        with open(path, encoding="utf-8-sig") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DatasetError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
                if not isinstance(row, dict):
                    raise DatasetError(f"{path}:{number}: expected a JSON object")
                yield row
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror or exc}") from None


def read_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """`query-id<TAB>corpus-id<TAB>score` lines -> query id -> {doc id: grade} (a header line is skipped)."""
    qrels: dict[str, dict[str, int]] = {}
    try:
        with open(path, encoding="utf-8-sig") as handle:
            for number, line in enumerate(handle, 1):
                parts = line.rstrip("\r\n").split("\t")
                if len(parts) < 3:
                    if line.strip():
                        raise DatasetError(f"{path}:{number}: expected query-id, corpus-id, score")
                    continue
                try:
                    grade = int(float(parts[2]))
                except ValueError:
                    if number == 1:
                        continue  # header
                    raise DatasetError(f"{path}:{number}: score {parts[2]!r} is not a number") from None
                qrels.setdefault(parts[0], {})[parts[1]] = grade
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror or exc}") from None
    return qrels


def read_beir_folder(folder: str | Path, split: str = "test") -> BeirData:
    """Read a BEIR folder; a missing file is a `DatasetError` listing what is missing."""
    root = Path(folder)
    paths = {"corpus": root / "corpus.jsonl", "queries": root / "queries.jsonl", "qrels": root / "qrels" / f"{split}.tsv"}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise DatasetError(f"{root} is not a BEIR folder: missing {', '.join(missing)}")
    corpus: dict[str, dict[str, str]] = {}
    for row in read_jsonl(paths["corpus"]):
        doc_id, text = _field(row, "_id", paths["corpus"]), str(row.get("text") or "")
        if text:
            corpus[doc_id] = {"title": str(row.get("title") or ""), "text": text}
    queries: dict[str, str] = {}
    for row in read_jsonl(paths["queries"]):
        text = str(row.get("text") or "")
        if text:
            queries[_field(row, "_id", paths["queries"])] = text
    return BeirData(corpus=corpus, queries=queries, qrels=read_qrels(paths["qrels"]))


def _field(row: dict[str, Any], name: str, path: Path) -> str:
    value = row.get(name)
    if value is None or value == "":
        raise DatasetError(f"{path}: a record has no {name!r} field: {json.dumps(row)[:120]}")
    return str(value)
