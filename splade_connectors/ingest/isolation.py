"""Finding the records an encoder or a store refuses, so one bad record never costs its batch.

Encoding: when encoding a batch raises an input error (`TypeError`, `ValueError` - which includes
`EncodingInputError` - or `UnicodeError`), the batch is bisected until each refused text stands
alone; every other text is encoded normally. Other errors (out of memory, a broken model) are not
about a record and propagate.

Writing: a `RejectedDocumentsError` names refused documents. When the store wrote the others
(`others_written`, OpenSearch's item-by-item `_bulk`), the named ones are the whole answer. When it
applied nothing (a Qdrant batch is all or nothing), named documents are set aside and the rest is
written again; a rejection naming none of the batch is bisected. Every other error (transient ones
after the retry policy gave up, permanent store errors) propagates: it is about the store.
Re-writing is safe because point ids are deterministic (an upsert twice is one document).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from splade_connectors.encoding import DocumentEncoder
from splade_connectors.errors import RejectedDocumentsError
from splade_connectors.records import EncodedDocument

# What an encoder raises for an input it cannot take (EncodingInputError is a ValueError).
RECORD_ERRORS: tuple[type[BaseException], ...] = (TypeError, ValueError, UnicodeError)


def one_line(error: BaseException, limit: int = 300) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class EncodeOutcome:
    """Vectors aligned with the input texts (None where refused), reasons by index, truncated and chunked indices."""

    vectors: list[Any]  # a SparseVector (or, for passages, a list of `WindowVector`s) per text; None where refused
    refused: dict[int, str] = field(default_factory=dict)
    truncated: list[int] = field(default_factory=list)
    chunked: list[int] = field(default_factory=list)


def _reason(error: BaseException) -> str:
    problem = getattr(error, "problem", None)  # EncodingInputError: without its position in the sub-batch
    return f"the encoder refused it: {problem if isinstance(problem, str) else one_line(error)}"


def encode_isolating(
    encoder: DocumentEncoder, texts: Sequence[str], encode: Callable[[list[str]], Sequence[Any]] | None = None
) -> EncodeOutcome:
    """Encode `texts` as documents (or with `encode`, e.g. into passages); texts the encoder refuses are isolated by bisection."""
    outcome = EncodeOutcome(vectors=[None] * len(texts))
    run = encode or encoder.encode_documents

    def attempt(lo: int, hi: int) -> None:
        try:
            vectors = run(list(texts[lo:hi]))
        except RECORD_ERRORS as exc:
            if hi - lo == 1:
                outcome.refused[lo] = _reason(exc)
                return
            mid = (lo + hi) // 2
            attempt(lo, mid)
            attempt(mid, hi)
            return
        if len(vectors) != hi - lo:
            raise RuntimeError(f"the encoder returned {len(vectors)} vectors for {hi - lo} texts")
        outcome.vectors[lo:hi] = vectors
        stats = getattr(encoder, "stats", None)
        outcome.truncated.extend(lo + int(i) for i in (getattr(stats, "truncated", None) or ()))
        outcome.chunked.extend(lo + int(i) for i in (getattr(stats, "chunked", None) or ()))

    if texts:
        attempt(0, len(texts))
    return outcome


def write_isolating(upsert: Callable[[Sequence[EncodedDocument]], None], batch: Sequence[EncodedDocument]) -> dict[str, str]:
    """Write `batch` with `upsert`; returns the documents the store refused (id -> reason), all others written."""
    refused: dict[str, str] = {}
    pending: list[Sequence[EncodedDocument]] = [batch]
    while pending:
        part = pending.pop()
        if not part:
            continue
        try:
            upsert(part)
            continue
        except RejectedDocumentsError as exc:
            ids = [item.document.id for item in part]
            in_part = set(ids)
            named = {doc_id: reason for doc_id, reason in exc.failures.items() if doc_id in in_part}
            if exc.others_written:
                refused.update(named or {doc_id: one_line(exc) for doc_id in ids})
                continue
            if len(part) == 1:
                refused[ids[0]] = named.get(ids[0]) or one_line(exc)
                continue
            if named:
                refused.update(named)
                pending.append([item for item in part if item.document.id not in named])
                continue
            mid = len(part) // 2
            pending.extend([part[mid:], part[:mid]])
    return refused
