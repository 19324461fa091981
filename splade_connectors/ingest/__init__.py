"""Ingestion into any store: sources, validation, and two engines behind one contract.

- `ingest` / `ingest_file`: the single-process pipeline (`pipeline.py`), resumable with a checkpoint.
- `ingest_file_ray`: the same contract on a Ray cluster (`ray_engine.py`; needs the `[ray]` extra,
  imported only when called).
Both validate with the same rules, isolate records the encoder or the store refuses, store a
content hash per document (`skip_unchanged`), can delete documents gone from the source
(`delete_missing`), and return one `IngestReport`. The encoder is any `DocumentEncoder`
(`splade_connectors.encoding`); skip-unchanged, checkpoints and delete-missing need its `identity()`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from splade_connectors.encoding import DocumentEncoder
from splade_connectors.errors import IngestError, InputError, ResumeError
from splade_connectors.ingest.config import IngestConfig
from splade_connectors.ingest.identity import EncodingIdentity, content_hash, encoding_identity
from splade_connectors.ingest.pipeline import DenseEncoder, IngestPipeline
from splade_connectors.ingest.report import IngestReport
from splade_connectors.ingest.sources import (
    FieldMap,
    RawRecord,
    beir_corpus_path,
    fingerprint,
    from_iterable,
    open_source,
    source_id,
)
from splade_connectors.ingest.validate import InvalidRecord
from splade_connectors.records import Document
from splade_connectors.retry import RetryPolicy
from splade_connectors.store import SparseStore, StoreConfigBase

if TYPE_CHECKING:
    from sentence_transformers import SparseEncoder as SentenceTransformersModel

    from splade_connectors.ingest.ray_engine import EncoderSpec, RayOptions

__all__ = [
    "DenseEncoder",
    "DocumentEncoder",
    "EncodingIdentity",
    "FieldMap",
    "IngestConfig",
    "IngestError",
    "IngestPipeline",
    "IngestReport",
    "InputError",
    "InvalidRecord",
    "RawRecord",
    "ResumeError",
    "RetryPolicy",
    "content_hash",
    "encoding_identity",
    "fingerprint",
    "ingest",
    "ingest_file",
    "ingest_file_ray",
]


def ingest(
    documents: Iterable[Mapping[str, Any] | Document],
    encoder: DocumentEncoder | SentenceTransformersModel,
    store: SparseStore,
    config: IngestConfig | None = None,
    *,
    dense_encoder: DenseEncoder | None = None,
    progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Ingest an iterable of `Document`s or dicts (fields per `config.fields`) into an open store."""
    pipeline = IngestPipeline(encoder, store, config, dense_encoder=dense_encoder, progress=progress)
    return pipeline.run(from_iterable(documents))


def ingest_file(
    path: str | Path,
    encoder: DocumentEncoder | SentenceTransformersModel,
    store: SparseStore,
    config: IngestConfig | None = None,
    *,
    dense_encoder: DenseEncoder | None = None,
    progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Ingest a JSONL or Parquet file, or a BEIR folder (its corpus.jsonl); resumable with `config.checkpoint`."""
    corpus = beir_corpus_path(path)
    config = (config or IngestConfig()).model_copy(update={"source_id": source_id(corpus)})
    pipeline = IngestPipeline(encoder, store, config, dense_encoder=dense_encoder, progress=progress)
    return pipeline.run(open_source(corpus), source_name=str(corpus))


def ingest_file_ray(
    path: str | Path,
    encoder: EncoderSpec,
    store: StoreConfigBase,
    config: IngestConfig | None = None,
    options: RayOptions | None = None,
) -> IngestReport:
    """`ingest_file` on Ray Data: sharded reading, a pool of encoder actors, a store Datasink.

    Takes what workers need to rebuild the encoder and the store (`EncoderSpec`, a store config)
    rather than live objects; see `splade_connectors.ingest.ray_engine`.
    """
    from splade_connectors.ingest.ray_engine import ingest_file_ray as run_on_ray

    return run_on_ray(path, encoder, store, config, options)
