"""Turning raw input into `Document`s, or into `InvalidRecord`s that name the record and the problem."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from splade_connectors.ingest.sources import FieldMap, RawRecord
from splade_connectors.records import Document


class InvalidRecord(BaseModel):
    """A record that was not ingested: its position in the input, its id if it had one, and why."""

    model_config = ConfigDict(frozen=True)

    position: int
    doc_id: str | None
    reason: str

    def describe(self) -> str:
        who = f"id {self.doc_id!r}" if self.doc_id is not None else "no id"
        return f"record #{self.position} ({who}): {self.reason}"


def to_document(raw: RawRecord, fields: FieldMap) -> Document | InvalidRecord:
    """Validate one raw record. Ids may be str or int (ints become strings); text must be a non-blank str."""
    if raw.error is not None or raw.data is None:
        return InvalidRecord(position=raw.position, doc_id=None, reason=raw.error or "empty record")
    if isinstance(raw.data, Document):
        doc = raw.data
        if not doc.text.strip():
            return InvalidRecord(position=raw.position, doc_id=doc.id, reason="text is empty")
        return doc
    data: Mapping[str, Any] = raw.data
    doc_id = data.get(fields.id)
    if doc_id is None or doc_id == "":
        return InvalidRecord(position=raw.position, doc_id=None, reason=f"missing id field {fields.id!r}")
    if isinstance(doc_id, bool) or not isinstance(doc_id, (str, int)):
        return InvalidRecord(position=raw.position, doc_id=str(doc_id), reason=f"id must be a string or integer, got {type(doc_id).__name__}")
    doc_id = str(doc_id)
    text = data.get(fields.text)
    if text is None:
        return InvalidRecord(position=raw.position, doc_id=doc_id, reason=f"missing text field {fields.text!r}")
    if not isinstance(text, str):
        return InvalidRecord(position=raw.position, doc_id=doc_id, reason=f"text must be a string, got {type(text).__name__}")
    if not text.strip():
        return InvalidRecord(position=raw.position, doc_id=doc_id, reason="text is empty")
    title = data.get(fields.title) if fields.title else None
    if title is not None and not isinstance(title, str):
        return InvalidRecord(position=raw.position, doc_id=doc_id, reason=f"title must be a string, got {type(title).__name__}")
    reserved = {fields.id, fields.text, fields.title}
    if fields.metadata is None:
        metadata = {k: v for k, v in data.items() if k not in reserved}
    else:
        metadata = {k: data[k] for k in fields.metadata if k in data}
    if isinstance(data.get("metadata"), dict) and fields.metadata is None:
        metadata = {**{k: v for k, v in metadata.items() if k != "metadata"}, **data["metadata"]}
    return Document(id=doc_id, text=text, title=title or None, metadata=metadata)
