"""Evaluation through the live stores, with sentence-transformers' metric definitions.

Modules: `datasets` (BEIR folders, NanoBEIR from the Hub or a local export), `encoding` (encode once),
`backends` (exact, Qdrant, OpenSearch), `runner` (`evaluate`), `report` (JSON, markdown, PNG).
BEIR reading, the exact ranking and the metrics live in the core (`trainer.retrieval`), shared with
the trainer's evaluation hook; they are re-exported here.
"""

from splade_connectors.errors import DatasetError
from splade_connectors.eval.datasets import (
    NANOBEIR_NAMES,
    HubUnavailableError,
    RetrievalDataset,
    load_beir_folder,
    load_nanobeir,
    load_nanobeir_export,
    load_retrieval_dataset,
)
from splade_connectors.eval.runner import EvaluationReport, evaluate
from trainer.retrieval.metrics import SparsityCounts, graded_ndcg, mean_over_datasets, retrieval_metrics

__all__ = [
    "NANOBEIR_NAMES",
    "DatasetError",
    "EvaluationReport",
    "HubUnavailableError",
    "RetrievalDataset",
    "SparsityCounts",
    "evaluate",
    "graded_ndcg",
    "load_beir_folder",
    "load_nanobeir",
    "load_nanobeir_export",
    "load_retrieval_dataset",
    "mean_over_datasets",
    "retrieval_metrics",
]
