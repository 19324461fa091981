"""Where documents come from: iterables, JSONL files and BEIR corpus folders.

Sources yield `RawRecord`s (position + the raw data, or the reason a line could not be read) and
never validate: validation is one job (`validate.py`), reading is another.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from splade_connectors.errors import InputError
from splade_connectors.records import Document


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


def from_jsonl(path: str | Path) -> Iterator[RawRecord]:
    """Read a JSONL file line by line; unreadable lines (bad UTF-8, bad JSON) become errors, not crashes."""
    with open(path, "rb") as handle:
        for position, line in enumerate(handle):
            if not line.strip():
                yield RawRecord(position, None, "blank line")
                continue
            try:
                data = json.loads(line.decode("utf-8"))
            except UnicodeDecodeError as exc:
                yield RawRecord(position, None, f"line {position + 1} is not valid UTF-8 ({exc.reason} at byte {exc.start})")
                continue
            except json.JSONDecodeError as exc:
                yield RawRecord(position, None, f"line {position + 1} is not valid JSON ({exc.msg})")
                continue
            if not isinstance(data, dict):
                yield RawRecord(position, None, f"line {position + 1} is not a JSON object")
                continue
            yield RawRecord(position, data)


def beir_corpus_path(folder: str | Path) -> Path:
    path = Path(folder)
    corpus = path / "corpus.jsonl" if path.is_dir() else path
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
