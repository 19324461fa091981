"""Ingestion into any store: sources, validation and the shared batched pipeline."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from splade_connectors.errors import IngestError
from splade_connectors.ingest.pipeline import DenseEncoder, IngestConfig, IngestPipeline, IngestReport
from splade_connectors.ingest.sources import FieldMap, RawRecord, beir_corpus_path, fingerprint, from_iterable, from_jsonl
from splade_connectors.ingest.validate import InvalidRecord
from splade_connectors.records import Document
from splade_connectors.retry import RetryPolicy
from splade_connectors.store import SparseStore
from trainer.encoder import SpladeEncoder

__all__ = [
    "FieldMap",
    "IngestConfig",
    "IngestError",
    "IngestPipeline",
    "IngestReport",
    "InvalidRecord",
    "RawRecord",
    "RetryPolicy",
    "ingest",
    "ingest_file",
]


def ingest(
    documents: Iterable[Mapping[str, Any] | Document],
    encoder: SpladeEncoder,
    store: SparseStore,
    config: IngestConfig | None = None,
    *,
    dense_encoder: DenseEncoder | None = None,
    progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Ingest an iterable of `Document`s or dicts (fields per `config.fields`)."""
    pipeline = IngestPipeline(encoder, store, config, dense_encoder=dense_encoder, progress=progress)
    return pipeline.run(from_iterable(documents))


def ingest_file(
    path: str | Path,
    encoder: SpladeEncoder,
    store: SparseStore,
    config: IngestConfig | None = None,
    *,
    dense_encoder: DenseEncoder | None = None,
    progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Ingest a JSONL file or a BEIR folder (its corpus.jsonl); resumable with `config.checkpoint`."""
    corpus = beir_corpus_path(path)
    config = (config or IngestConfig()).model_copy(update={"source_id": f"{corpus.name}:{fingerprint(corpus)}"})
    pipeline = IngestPipeline(encoder, store, config, dense_encoder=dense_encoder, progress=progress)
    return pipeline.run(from_jsonl(corpus))
