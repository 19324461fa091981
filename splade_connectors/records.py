"""Records that flow into the stores and hits that come back, shared by every adapter."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trainer.retrieval.beir import document_text
from trainer.sparse import SparseVector

# Fixed namespace: a document id maps to the same store id on every machine and every run.
_ID_NAMESPACE = uuid.UUID("6f1c7f3e-2d7b-5a1e-9c59-5f2b1d8a9e30")


# Payload field holding `Document.content_hash` (see `splade_connectors.ingest.identity`).
CONTENT_HASH_FIELD = "content_hash"

# The payload layout every store writes (`Document.payload`): these fields at top level, the
# document's own metadata under `metadata`. `splade_connectors.filters` reads filter keys against it.
DOC_ID_FIELD = "doc_id"
METADATA_FIELD = "metadata"
TOP_LEVEL_FIELDS = frozenset({DOC_ID_FIELD, "text", "title", CONTENT_HASH_FIELD})


def point_id(doc_id: str) -> str:
    """Deterministic store id (UUID5 string) of a document id: re-ingesting overwrites, never duplicates."""
    return str(uuid.uuid5(_ID_NAMESPACE, doc_id))


class Document(BaseModel):
    """One input record: an id, its text, and optional title and metadata (kept in the payload).

    `content_hash`, set by the ingestion pipeline, fingerprints what the stored point is made of
    (encoded text, model, encoding options, payload); it is written to the payload so a re-run
    with `skip_unchanged` can tell unchanged documents without re-encoding them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    text: str
    title: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    content_hash: str | None = None

    def text_to_encode(self, with_title: bool) -> str:
        """Title, newline, text (`trainer.retrieval.document_text`, shared with evaluation and training)."""
        return document_text(self.title if with_title else None, self.text)

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {DOC_ID_FIELD: self.id, "text": self.text}
        if self.title is not None:
            data["title"] = self.title
        if self.metadata:
            data[METADATA_FIELD] = dict(self.metadata)
        if self.content_hash is not None:
            data[CONTENT_HASH_FIELD] = self.content_hash
        return data


class EncodedPassage(BaseModel):
    """One passage (token window) of a document: its own vector and its character span in the document's text."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    sparse: SparseVector
    start: int = Field(ge=0)
    end: int = Field(ge=0)


class EncodedDocument(BaseModel):
    """A document with its sparse vector (and optional dense vector for hybrid search).

    `passages` (passage-level retrieval, `splade_connectors.passages`): the document's passages, each
    written as its own point; `sparse` is then their max-merged vector (what the document as a whole
    holds), not written.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    document: Document
    sparse: SparseVector
    dense: list[float] | None = None
    passages: list[EncodedPassage] | None = None


class TermContribution(BaseModel):
    """One shared term of a query and a hit: the decoded token and both weights."""

    model_config = ConfigDict(frozen=True)

    token: str
    token_id: int
    query_weight: float
    document_weight: float

    @property
    def contribution(self) -> float:
        return self.query_weight * self.document_weight


class Passage(BaseModel):
    """The best passage of a document hit on a passage collection: its index, span in the document's text, and text.

    `text` equals `document_text[start:end]`.
    """

    model_config = ConfigDict(frozen=True)

    index: int
    start: int
    end: int
    text: str


class Hit(BaseModel):
    """A search result: the document id, the store's score and the stored payload.

    On a passage collection the score is the document's best passage's, and `passage` is that passage.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    score: float
    payload: dict[str, Any] = Field(default_factory=dict)
    terms: list[TermContribution] | None = None
    passage: Passage | None = None
