"""Passage-level retrieval: one stored point per token window of a document, results grouped per document.

What every store shares (the adapters keep only their store-specific calls):

- Encoding: `encode_passages` turns documents into `EncodedDocument`s whose `passages` are the encoder's
  token windows (`SpladeEncoder.encode_passages`), each with its character span in the document's
  *text* (a window over the title gets the part of its span inside the text; a title-only window an
  empty span at 0).
- Points (`store_points`): passage i of document d is a point with id `passage_point_id(d, i)`: passage 0
  has the document's own id (`records.point_id(d)`), so reads by document id (stored hashes of
  skip-unchanged, checkpoints' probes, `fetch_payloads`) find the document's first passage; passage
  i > 0 has a UUID5 of (d, i). Re-ingesting overwrites, never duplicates. Every point's payload is the
  document's payload (doc_id, title, metadata, content hash) plus `passage_index`, `passage_start`,
  `passage_end`, `passage_count` and `passage_text` (the window's text); the document's whole `text`
  is stored once, on passage 0 (a document of 500 windows would otherwise store its text 500 times).
- Re-ingestion with fewer windows: the store reads the stored `passage_count` of passage 0 before
  writing and deletes the passages past the new count (`stale_point_ids`). Deleting a document deletes
  all its passages; counting and listing documents count passage 0 only.
- The mode is part of the collection's encoding record (`EncodingIdentity.passages`): a document
  collection and a passage collection never mix (ingesting the other way is an `EncodingMismatchError`),
  and searches of a passage collection group by document automatically (`is_passage_collection`).
- Results (`passage_hit`): a document at most once, ranked by its best passage's score, with
  `Hit.passage` (index, span, text); the passage fields are moved out of `Hit.payload` into it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

from splade_connectors.errors import ConfigError
from splade_connectors.records import DOC_ID_FIELD, Document, EncodedDocument, EncodedPassage, Hit, Passage, point_id
from trainer.chunking import WindowVector, max_merge

if TYPE_CHECKING:
    from splade_connectors.store import SparseStore
from trainer.sparse import SparseVector

__all__ = [
    "PASSAGE_COUNT_FIELD",
    "PASSAGE_FIELDS",
    "PASSAGE_INDEX_FIELD",
    "PassageEncoder",
    "StorePoint",
    "check_search_mode",
    "encode_passages",
    "first_per_document",
    "is_passage_collection",
    "passage_hit",
    "passage_point_id",
    "stale_point_ids",
    "store_points",
]

PASSAGE_INDEX_FIELD: Final = "passage_index"
PASSAGE_START_FIELD: Final = "passage_start"
PASSAGE_END_FIELD: Final = "passage_end"
PASSAGE_COUNT_FIELD: Final = "passage_count"
PASSAGE_TEXT_FIELD: Final = "passage_text"
PASSAGE_FIELDS: Final = frozenset(
    {PASSAGE_INDEX_FIELD, PASSAGE_START_FIELD, PASSAGE_END_FIELD, PASSAGE_COUNT_FIELD, PASSAGE_TEXT_FIELD}
)
# Fixed namespace of passage point ids (passage 0 uses the document's own id, `records.point_id`).
_PASSAGE_NAMESPACE = uuid.UUID("0b6f0c55-52d4-5e0f-a1a6-3c2d5f1e7a94")


@runtime_checkable
class PassageEncoder(Protocol):
    """Encodes each document text into one vector per token window, with the window's character span."""

    def encode_passages(self, texts: Iterable[str], **overrides: object) -> list[list[WindowVector]]: ...


def require_passage_encoder(encoder: object) -> PassageEncoder:
    """`encoder` when it can encode passages; one `ConfigError` line otherwise."""
    if not isinstance(encoder, PassageEncoder):
        raise ConfigError(
            f"passages need an encoder with encode_passages() (a SpladeEncoder); {type(encoder).__qualname__} has none"
        )
    return encoder


def passage_point_id(doc_id: str, index: int) -> str:
    """The store id of passage `index` of `doc_id`: the document's own id for passage 0, a UUID5 of both after."""
    if index == 0:
        return point_id(doc_id)
    return str(uuid.uuid5(_PASSAGE_NAMESPACE, f"{doc_id}\x1f{index}"))


def stale_point_ids(stored: Mapping[str, int], batch: Sequence[EncodedDocument]) -> list[str]:
    """Ids of the passages documents stored before (`stored`: passage counts) that rewriting them with `batch` leaves
    behind: those past each document's new passage count."""
    written = {item.document.id: len(item.passages) for item in batch if item.passages is not None}
    return [passage_point_id(doc_id, i) for doc_id, count in stored.items() for i in range(written.get(doc_id, 0), count)]


def all_point_ids(doc_id: str, stored_count: int) -> list[str]:
    """Ids of every stored passage of a document (at least passage 0)."""
    return [passage_point_id(doc_id, i) for i in range(max(1, stored_count))]


def stored_count(payload: Mapping[str, Any] | None) -> int:
    """The `passage_count` a stored passage 0 holds (0 when the document is not stored)."""
    if not payload:
        return 0
    value = payload.get(PASSAGE_COUNT_FIELD)
    return int(value) if isinstance(value, int) else 1


@dataclass(frozen=True)
class StorePoint:
    """One point to write: the document it belongs to, its store id, sparse vector, payload, optional dense vector."""

    doc_id: str
    id: str
    sparse: SparseVector
    payload: dict[str, Any]
    dense: list[float] | None = None


def store_points(batch: Sequence[EncodedDocument]) -> list[StorePoint]:
    """The points of a batch: one per document, or one per passage of a document that has passages."""
    points: list[StorePoint] = []
    for item in batch:
        document = item.document
        if item.passages is None:
            points.append(StorePoint(document.id, point_id(document.id), item.sparse, document.payload(), item.dense))
            continue
        if item.dense is not None:
            raise ConfigError(f"document {document.id!r}: passages take no dense vector (hybrid search is not supported with passages)")
        base = document.payload()
        text = base.pop("text", "")
        count = len(item.passages)
        for index, passage in enumerate(item.passages):
            payload = dict(base)
            if index == 0:
                payload["text"] = text
            payload.update({
                PASSAGE_INDEX_FIELD: index, PASSAGE_START_FIELD: passage.start, PASSAGE_END_FIELD: passage.end,
                PASSAGE_COUNT_FIELD: count, PASSAGE_TEXT_FIELD: document.text[passage.start : passage.end],
            })
            points.append(StorePoint(document.id, passage_point_id(document.id, index), passage.sparse, payload))
    return points


def text_spans(document: Document, with_title: bool, windows: Sequence[WindowVector]) -> list[EncodedPassage]:
    """The windows of `document.text_to_encode(with_title)` as passages of the document's text (spans shifted past the title)."""
    prefix = len(document.text_to_encode(with_title)) - len(document.text)
    size = len(document.text)
    passages = []
    for window in windows:
        start = min(size, max(0, window.start - prefix))
        end = min(size, max(start, window.end - prefix))
        passages.append(EncodedPassage(sparse=window.vector, start=start, end=end))
    return passages


def with_passages(document: Document, windows: Sequence[WindowVector], with_title: bool, dim: int | None = None) -> EncodedDocument:
    """The `EncodedDocument` of a document encoded as passages (its `sparse`: the passages' max-merged vector)."""
    passages = text_spans(document, with_title, windows)
    merged = max_merge([p.sparse for p in passages], dim)
    return EncodedDocument(document=document, sparse=merged, passages=passages)


def encode_passages(encoder: object, texts: Sequence[str]) -> list[list[WindowVector]]:
    """The passages of each text (`PassageEncoder.encode_passages`), checked to be one list per text."""
    windows = require_passage_encoder(encoder).encode_passages(list(texts))
    if len(windows) != len(texts):
        raise RuntimeError(f"the encoder returned passages of {len(windows)} texts for {len(texts)}")
    return windows


def is_passage_collection(record: Mapping[str, Any] | None) -> bool:
    """Whether a collection's encoding record (`stored_encoding`) says it holds passages."""
    encoding = (record or {}).get("encoding")
    return bool(isinstance(encoding, Mapping) and encoding.get("passages"))


def passage_hit(hit: Hit) -> Hit:
    """A hit on a passage point as a document hit: the passage fields moved from the payload into `Hit.passage`."""
    payload = dict(hit.payload)
    fields = {name: payload.pop(name, None) for name in PASSAGE_FIELDS}
    index, start, end = fields[PASSAGE_INDEX_FIELD], fields[PASSAGE_START_FIELD], fields[PASSAGE_END_FIELD]
    if not isinstance(index, int) or not isinstance(start, int) or not isinstance(end, int):
        return hit.model_copy(update={"payload": payload})
    text = fields[PASSAGE_TEXT_FIELD]
    passage = Passage(index=index, start=start, end=end, text=text if isinstance(text, str) else "")
    return hit.model_copy(update={"payload": payload, "passage": passage})


def first_per_document(hits: Iterable[Hit], top_k: int) -> list[Hit]:
    """Each document's first (best) hit of a ranked passage list, at most `top_k` documents, in rank order."""
    seen: set[str] = set()
    out: list[Hit] = []
    for hit in hits:
        doc_id = str(hit.payload.get(DOC_ID_FIELD, hit.id))
        if doc_id in seen:
            continue
        seen.add(doc_id)
        out.append(hit)
        if len(out) >= top_k:
            break
    return out


def refuse(store_description: str, what: str) -> ConfigError:
    """The one-line refusal of something a passage collection does not support."""
    return ConfigError(f"{store_description} holds passages: {what} is not supported on a passage collection")


def check_search_mode(store: SparseStore, passages: bool | None, *, explain: bool = False) -> bool:
    """Whether `store` holds passages (its encoding record), checked against what the caller asked for.

    `passages=None` takes the collection as it is (a passage collection is searched grouped per document);
    True or False assert it, with one `ConfigError` line when the collection is the other kind.
    """
    held = is_passage_collection(store.recorded_encoding())
    if passages is True and not held:
        raise ConfigError(
            f"{store.describe()} holds whole documents, not passages: ingest it with --passages (passages=True) "
            "to search passages, or search without --passages"
        )
    if passages is False and held:
        raise ConfigError(
            f"{store.describe()} holds passages (ingested with --passages): its searches return documents with their "
            "best passage; search it without passages=False"
        )
    if held and explain:
        raise refuse(store.describe(), "explain (--explain)")
    return held
