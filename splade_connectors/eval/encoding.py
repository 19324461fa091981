"""Encode a dataset once: document and query vectors that every backend then searches with."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from splade_connectors.encoding import EncodingIdentity, IdentifiedEncoder, SparseEncoder, as_encoder
from splade_connectors.eval.datasets import RetrievalDataset
from splade_connectors.passages import encode_passages, with_passages
from splade_connectors.records import EncodedDocument, EncodedPassage
from splade_connectors.stored_encoding import encoder_vocabulary, encoding_record
from trainer.sparse import SparseVector

if TYPE_CHECKING:
    from sentence_transformers import SparseEncoder as SentenceTransformersModel

logger = logging.getLogger(__name__)

Progress = Callable[[int], None]
_T = TypeVar("_T")


@dataclass(frozen=True)
class EncodedDataset:
    """A dataset with its vectors: all documents, and the evaluated queries (those with relevant docs)."""

    dataset: RetrievalDataset
    doc_ids: list[str]
    doc_vectors: list[SparseVector]
    query_ids: list[str]
    query_vectors: list[SparseVector]
    dim: int
    encode_seconds: float = 0.0
    truncated_docs: int = 0  # documents longer than the window, truncated
    chunked_docs: int = 0  # documents longer than the window, encoded in windows merged by max
    encoding: dict[str, Any] | None = None  # the record a store keeps of the documents' encoding (`stored_encoding`)
    passages: list[list[EncodedPassage]] | None = None  # per document, its passages (`encode_dataset(passages=True)`)

    def encoded_documents(self, batch_size: int) -> Iterator[list[EncodedDocument]]:
        """`EncodedDocument` batches, ready for `SparseStore.upsert` (no re-encoding)."""
        corpus = self.dataset.corpus
        for start in range(0, len(self.doc_ids), batch_size):
            ids = self.doc_ids[start : start + batch_size]
            passages = self.passages[start : start + batch_size] if self.passages is not None else [None] * len(ids)
            yield [
                EncodedDocument(document=RetrievalDataset.to_document(d, corpus[d]), sparse=v, passages=p)
                for d, v, p in zip(ids, self.doc_vectors[start : start + batch_size], passages)
            ]


def _encode_chunked(
    encode: Callable[[list[str]], list[_T]], texts: Sequence[str], chunk: int, progress: Progress | None,
    on_batch: Callable[[], None] | None = None,
) -> list[_T]:
    out: list[_T] = []
    for start in range(0, len(texts), chunk):
        out.extend(encode(list(texts[start : start + chunk])))
        if on_batch:
            on_batch()
        if progress:
            progress(min(chunk, len(texts) - start))
    return out


def encode_dataset(
    encoder: SparseEncoder | SentenceTransformersModel,
    dataset: RetrievalDataset,
    *,
    chunk: int = 1024,
    progress: Progress | None = None,
    passages: bool = False,
) -> EncodedDataset:
    """Encode every document and every evaluated query once; `progress` gets counts of texts done.

    `passages`: documents are encoded as passages (one vector per token window, `splade_connectors.passages`);
    `doc_vectors` then holds each document's max-merged passages (for the sparsity statistics).
    """
    encoder = as_encoder(encoder)
    started = time.perf_counter()
    doc_ids = list(dataset.corpus)
    query_ids = dataset.eval_query_ids()
    long_docs = {"truncated": 0, "chunked": 0}

    def count_long_docs() -> None:  # the encoder's stats describe its last call
        long_docs["truncated"] += len(encoder.stats.truncated)
        long_docs["chunked"] += len(encoder.stats.chunked)

    texts = [dataset.document_text(d) for d in doc_ids]
    doc_passages: list[list[EncodedPassage]] | None = None
    if passages:
        windows = _encode_chunked(partial(encode_passages, encoder), texts, chunk, progress, count_long_docs)
        documents = [with_passages(RetrievalDataset.to_document(d, dataset.corpus[d]), w, dataset.with_title) for d, w in zip(doc_ids, windows)]
        doc_vectors = [d.sparse for d in documents]
        doc_passages = [d.passages or [] for d in documents]
    else:
        doc_vectors = _encode_chunked(encoder.encode_documents, texts, chunk, progress, count_long_docs)
    query_vectors = _encode_chunked(encoder.encode_queries, [dataset.queries[q] for q in query_ids], chunk, progress)
    seconds = time.perf_counter() - started
    logger.info("encoded %s: %d docs + %d queries in %.1f s", dataset.name, len(doc_ids), len(query_ids), seconds)
    return EncodedDataset(
        dataset=dataset, doc_ids=doc_ids, doc_vectors=doc_vectors, query_ids=query_ids,
        query_vectors=query_vectors, dim=int(encoder.model.vocab_size), encode_seconds=seconds,
        truncated_docs=long_docs["truncated"], chunked_docs=long_docs["chunked"],
        encoding=_record(encoder, dataset.with_title, passages), passages=doc_passages,
    )


def _record(encoder: object, with_title: bool, passages: bool) -> dict[str, Any] | None:
    """The encoding record of the documents, None for an encoder without `identity()`."""
    if not isinstance(encoder, IdentifiedEncoder):
        return None
    identity = EncodingIdentity.of(encoder.identity(), with_title=with_title, passages=passages)
    return encoding_record(identity, encoder_vocabulary(encoder))
