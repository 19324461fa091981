"""Where documents come from: iterables, JSONL files, Parquet files and BEIR corpus folders.

Sources yield `RawRecord`s (position + the raw data, or the reason a line could not be read) and
never validate: validation is one job (`validate.py`), reading is another. Every reader streams:
memory holds one line (JSONL) or one record batch (Parquet) at a time, whatever the file's size.

`parse_jsonl_line` is the one reading of a JSONL line, shared by the single-process pipeline and
the Ray engine, so both report the same positions and reasons. A UTF-8 byte-order mark at the start
of a file is not part of the first record. Reading is bounded: a line longer than `MAX_LINE_BYTES` is
refused without being held (the reader skips it in chunks), and one nested deeper than
`MAX_JSON_DEPTH` is refused before `json.loads` (which recurses) sees it; so is an integer too long
for Python to convert. Such lines are unreadable records, reported like any other.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from splade_connectors.errors import InputError
from splade_connectors.records import Document

UTF8_BOM = b"\xef\xbb\xbf"
SourceFormat = Literal["jsonl", "parquet"]
_PARQUET_SUFFIXES = (".parquet", ".pq")
_PARQUET_BATCH_ROWS = 1024
MAX_LINE_BYTES = 32 * 1024 * 1024  # a JSONL line (one record); the Qdrant server's default request limit
MAX_JSON_DEPTH = 64  # nested arrays/objects in one line, the record object included
_SKIP_CHUNK = 1024 * 1024
# A JSON string (skipped whole, so brackets inside it do not count) or one bracket.
_JSON_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
_OPENING = frozenset(b"[{")


class FieldMap(BaseModel):
    """Which input fields hold the id, text and title; all other fields become metadata."""

    model_config = ConfigDict(frozen=True)

    id: str = "_id"
    text: str = "text"
    title: str | None = "title"
    metadata: list[str] | None = None  # None: every other field; []: none


@dataclass(frozen=True)
class RawRecord:
    """One input item before validation; `error` set when it could not even be parsed."""

    position: int
    data: Mapping[str, Any] | Document | None
    error: str | None = None


def from_iterable(items: Iterable[Mapping[str, Any] | Document]) -> Iterator[RawRecord]:
    for position, item in enumerate(items):
        yield RawRecord(position, item)


def nested_deeper_than(line: bytes, limit: int) -> bool:
    """Whether the JSON text `line` nests arrays/objects more than `limit` deep (brackets in strings do not count)."""
    if line.count(b"[") + line.count(b"{") <= limit:
        return False
    depth = 0
    for token in _JSON_TOKENS.finditer(line):
        char = line[token.start()]
        if char in _OPENING:
            depth += 1
            if depth > limit:
                return True
        elif char != 0x22:  # a closing bracket (0x22: a string)
            depth -= 1
    return False


def content_size(line: bytes) -> int:
    """A line's size in bytes without its line ending (the size `MAX_LINE_BYTES` bounds)."""
    return len(line) - (2 if line.endswith(b"\r\n") else 1 if line.endswith((b"\n", b"\r")) else 0)


def too_long(position: int, size: int | None, limit: int = MAX_LINE_BYTES) -> RawRecord:
    """The refusal of a line longer than `limit` bytes."""
    return RawRecord(position, None, f"line {position + 1} is longer than {limit} bytes" + (f" ({size} bytes)" if size else ""))


def parse_jsonl_line(position: int, line: bytes, *, max_bytes: int = MAX_LINE_BYTES) -> RawRecord:
    """One JSONL line (bytes, any line ending) as a record; unreadable lines (bad UTF-8, bad JSON, too long,
    too deep) become errors."""
    if position == 0 and line.startswith(UTF8_BOM):
        line = line[len(UTF8_BOM):]
    if content_size(line) > max_bytes:
        return too_long(position, content_size(line), max_bytes)
    if not line.strip():
        return RawRecord(position, None, "blank line")
    if nested_deeper_than(line, MAX_JSON_DEPTH):
        return RawRecord(position, None, f"line {position + 1} nests arrays/objects more than {MAX_JSON_DEPTH} levels deep")
    try:
        data = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return RawRecord(position, None, f"line {position + 1} is not valid UTF-8 ({exc.reason} at byte {exc.start})")
    except json.JSONDecodeError as exc:
        return RawRecord(position, None, f"line {position + 1} is not valid JSON ({exc.msg})")
    except (ValueError, RecursionError) as exc:  # an integer past Python's digit limit; nesting the scan missed
        why = "a number has too many digits" if "integer string conversion" in str(exc) else " ".join(str(exc).split())[:120]
        return RawRecord(position, None, f"line {position + 1} is not readable JSON ({why})")
    if not isinstance(data, dict):
        return RawRecord(position, None, f"line {position + 1} is not a JSON object")
    return RawRecord(position, data)


def from_jsonl(path: str | Path, *, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[RawRecord]:
    """Read a JSONL file line by line (streamed); every line is one record position, blank ones included.

    Memory holds at most `max_line_bytes` (+ a BOM) of one line: a longer line is read past in chunks and refused.
    """
    read_at_most = max_line_bytes + len(UTF8_BOM) + 2  # the content, a BOM, a CRLF
    with open(path, "rb") as handle:
        position = 0
        while line := handle.readline(read_at_most):
            if not line.endswith(b"\n") and len(line) == read_at_most:  # cut: the line is too long
                size = len(line)
                while not line.endswith(b"\n") and (line := handle.readline(_SKIP_CHUNK)):
                    size += len(line)
                yield too_long(position, size - (len(line) - content_size(line)), max_line_bytes)
            else:
                yield parse_jsonl_line(position, line, max_bytes=max_line_bytes)
            position += 1


def from_parquet(path: str | Path) -> Iterator[RawRecord]:
    """Read a Parquet file one record batch at a time; each row is a record (position = row number)."""
    import pyarrow.parquet as pq

    position = 0
    with pq.ParquetFile(path) as parquet:
        for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH_ROWS):
            for row in batch.to_pylist():
                yield RawRecord(position, row)
                position += 1


def source_format(path: str | Path) -> SourceFormat:
    """Parquet for `.parquet`/`.pq` files, JSONL otherwise."""
    return "parquet" if Path(path).suffix.lower() in _PARQUET_SUFFIXES else "jsonl"


def open_source(path: str | Path) -> Iterator[RawRecord]:
    """The records of a JSONL or Parquet file (chosen by suffix)."""
    return from_parquet(path) if source_format(path) == "parquet" else from_jsonl(path)


def beir_corpus_path(folder: str | Path) -> Path:
    """The file to read: the path itself, or `corpus.jsonl` (else `corpus.parquet`) inside a BEIR folder."""
    path = Path(folder)
    if path.is_dir():
        corpus = next((path / name for name in ("corpus.jsonl", "corpus.parquet") if (path / name).exists()), path / "corpus.jsonl")
    else:
        corpus = path
    if not corpus.exists():
        raise InputError(f"no such file or BEIR folder: {folder}" if not path.exists() else f"no corpus.jsonl in {folder}")
    return corpus


def fingerprint(path: str | Path) -> str:
    """Identifies a file's content cheaply (size, mtime, head and tail), for resume checks."""
    file = Path(path)
    stat = file.stat()
    digest = hashlib.sha256(f"{file.resolve()}|{stat.st_size}|{int(stat.st_mtime)}".encode())
    with open(file, "rb") as handle:
        digest.update(handle.read(65536))
        if stat.st_size > 65536:
            handle.seek(-65536, 2)
            digest.update(handle.read())
    return digest.hexdigest()[:32]


def source_id(path: str | Path) -> str:
    """What a checkpoint records about the file it belongs to: its name and content fingerprint."""
    return f"{Path(path).name}:{fingerprint(path)}"
