"""Encode a dataset once: document and query vectors that every backend then searches with."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

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


# ---- a cache of encoded datasets (`tune --vectors-cache`): encode once, sweep many times -----------------
def encoding_cache_key(encoder: SparseEncoder | SentenceTransformersModel, dataset: RetrievalDataset) -> str | None:
    """What decides the vectors of `encode_dataset`: the encoder's identity for both roles and the exact texts;
    None for an encoder without an identity (it is never cached)."""
    encoder = as_encoder(encoder)
    if not isinstance(encoder, IdentifiedEncoder):
        return None
    digest = hashlib.sha256()
    query_options = getattr(encoder, "query_options", None)
    head = {
        "documents": encoder.identity().model_dump(mode="json"),
        "queries": query_options.model_dump(mode="json") if query_options is not None and hasattr(query_options, "model_dump") else repr(query_options),
        "dataset": dataset.name, "with_title": dataset.with_title,
    }
    digest.update(json.dumps(head, sort_keys=True).encode())
    for doc_id in dataset.corpus:
        digest.update(f"\0d{doc_id}\0{dataset.document_text(doc_id)}".encode())
    for query_id in dataset.eval_query_ids():
        digest.update(f"\0q{query_id}\0{dataset.queries[query_id]}".encode())
    return digest.hexdigest()


def _pack(vectors: Sequence[SparseVector]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    indptr = np.zeros(len(vectors) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([v.nnz for v in vectors])
    indices = np.concatenate([v.indices for v in vectors]) if vectors else np.zeros(0, np.int64)
    values = np.concatenate([v.values for v in vectors]) if vectors else np.zeros(0, np.float32)
    return indptr, indices, values


def _unpack(indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, dim: int) -> list[SparseVector]:
    return [SparseVector(indices[a:b], values[a:b], dim) for a, b in zip(indptr[:-1], indptr[1:])]


def encode_dataset_cached(
    encoder: SparseEncoder | SentenceTransformersModel,
    dataset: RetrievalDataset,
    cache_dir: str | Path | None,
    *,
    progress: Progress | None = None,
) -> EncodedDataset:
    """`encode_dataset` (documents whole, not passages), reusing the vectors saved in `cache_dir` by an earlier run with the same encoder
    identity and texts (`encoding_cache_key`); without a cache folder, or an identity, it just encodes."""
    key = encoding_cache_key(encoder, dataset) if cache_dir is not None else None
    if key is None or cache_dir is None:
        return encode_dataset(encoder, dataset, progress=progress)
    path = Path(cache_dir) / f"encoded-{key[:24]}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as saved:
            if str(saved["key"]) == key:
                doc_ids, query_ids = [str(x) for x in saved["doc_ids"]], [str(x) for x in saved["query_ids"]]
                dim = int(saved["dim"])
                logger.info("encoded %s read from %s", dataset.name, path)
                if progress:
                    progress(len(doc_ids) + len(query_ids))
                return EncodedDataset(
                    dataset=dataset, doc_ids=doc_ids, query_ids=query_ids, dim=dim,
                    doc_vectors=_unpack(saved["doc_indptr"], saved["doc_indices"], saved["doc_values"], dim),
                    query_vectors=_unpack(saved["query_indptr"], saved["query_indices"], saved["query_values"], dim),
                    truncated_docs=int(saved["truncated_docs"]), chunked_docs=int(saved["chunked_docs"]),
                    encoding=_record(as_encoder(encoder), dataset.with_title, passages=False),
                )
    data = encode_dataset(encoder, dataset, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    docs, queries = _pack(data.doc_vectors), _pack(data.query_vectors)
    staging = path.with_name(f".{path.stem}.{os.getpid()}.npz")
    np.savez(
        staging, key=np.array(key), doc_ids=np.array(data.doc_ids), query_ids=np.array(data.query_ids), dim=np.array(data.dim),
        doc_indptr=docs[0], doc_indices=docs[1], doc_values=docs[2],
        query_indptr=queries[0], query_indices=queries[1], query_values=queries[2],
        truncated_docs=np.array(data.truncated_docs), chunked_docs=np.array(data.chunked_docs),
    )
    os.replace(staging, path)  # whole or absent: a crash never leaves half a cache behind
    logger.info("encoded %s saved to %s", dataset.name, path)
    return data
