"""Turning raw input into `Document`s, or into `InvalidRecord`s that name the record and the problem.

The same rules hold for every engine (single process, Ray) and every source. Besides shapes and
types, text must be encodable: a lone UTF-16 surrogate (JSON `"\\ud800"` without its pair) is not
valid Unicode, makes the tokenizer raise, and cannot be written as UTF-8 to a store, so it is
refused here, naming the field and the character position. Metadata follows the payload rule
(`splade_connectors.payload`: JSON values, non-finite numbers as null, key names, depth, sizes),
the same for every store.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from splade_connectors.ingest.sources import FieldMap, RawRecord
from splade_connectors.payload import PayloadRuleError, checked_metadata
from splade_connectors.records import Document
from trainer.text import lone_surrogate

_SHOWN_ID_CHARS = 80


class InvalidRecord(BaseModel):
    """A record that was not ingested: its position in the input, its id if it had one, and why."""

    model_config = ConfigDict(frozen=True)

    position: int
    doc_id: str | None
    reason: str

    def describe(self) -> str:
        return f"record #{self.position} ({self.who()}): {self.reason}"

    def who(self) -> str:
        """The id for messages; a very long one (a store may refuse it for that) is shortened."""
        if self.doc_id is None:
            return "no id"
        if len(self.doc_id) <= _SHOWN_ID_CHARS:
            return f"id {self.doc_id!r}"
        return f"id {self.doc_id[:_SHOWN_ID_CHARS]!r}... ({len(self.doc_id)} characters)"


def _id_problem(doc_id: str) -> str | None:
    found = lone_surrogate(doc_id)
    return f"id has a lone surrogate ({found}): not valid Unicode" if found else None


def _unicode_problem(text: str, title: str | None) -> str | None:
    for field, value in (("text", text), ("title", title)):
        if value is not None and (found := lone_surrogate(value)):
            return f"{field} has a lone surrogate ({found}): not valid Unicode"
    return None


def _checked(position: int, doc_id: str, metadata: Mapping[str, Any]) -> dict[str, Any] | InvalidRecord:
    """The metadata under the payload rule (`splade_connectors.payload`), or the record's refusal."""
    try:
        return checked_metadata(metadata)
    except PayloadRuleError as exc:
        return InvalidRecord(position=position, doc_id=doc_id, reason=str(exc))


def to_document(raw: RawRecord, fields: FieldMap) -> Document | InvalidRecord:
    """Validate one raw record. Ids may be str or int (ints become strings); text must be a non-blank str."""
    if raw.error is not None or raw.data is None:
        return InvalidRecord(position=raw.position, doc_id=None, reason=raw.error or "empty record")
    if isinstance(raw.data, Document):
        doc = raw.data
        if not doc.text.strip():
            return InvalidRecord(position=raw.position, doc_id=doc.id, reason="text is empty")
        if problem := _id_problem(doc.id):
            return InvalidRecord(position=raw.position, doc_id=None, reason=problem)
        if problem := _unicode_problem(doc.text, doc.title):
            return InvalidRecord(position=raw.position, doc_id=doc.id, reason=problem)
        checked = _checked(raw.position, doc.id, doc.metadata)
        return checked if isinstance(checked, InvalidRecord) else doc.model_copy(update={"metadata": checked})
    data: Mapping[str, Any] = raw.data
    doc_id = data.get(fields.id)
    if doc_id is None or doc_id == "":
        return InvalidRecord(position=raw.position, doc_id=None, reason=f"missing id field {fields.id!r}")
    if isinstance(doc_id, bool) or not isinstance(doc_id, (str, int)):
        return InvalidRecord(
            position=raw.position, doc_id=None, reason=f"id must be a string or integer, got {type(doc_id).__name__}"
        )
    doc_id = str(doc_id)
    if problem := _id_problem(doc_id):
        return InvalidRecord(position=raw.position, doc_id=None, reason=problem)
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
    if problem := _unicode_problem(text, title):
        return InvalidRecord(position=raw.position, doc_id=doc_id, reason=problem)
    checked = _checked(raw.position, doc_id, metadata)
    if isinstance(checked, InvalidRecord):
        return checked
    return Document(id=doc_id, text=text, title=title or None, metadata=checked)
