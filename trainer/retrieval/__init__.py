"""Retrieval evaluation shared by the trainer's evaluation hook and `splade_connectors.eval`.

One reading of BEIR folders (`beir`), one exact ranking by sparse dot product (`exact`) and one set
of metrics (`metrics`, sentence-transformers' definitions), so that training-time nDCG and the
evaluation of the stores are computed on the same document text with the same formulas.
"""

from trainer.retrieval.beir import BeirData, document_text, read_beir_folder, read_jsonl, read_qrels
from trainer.retrieval.exact import exact_rankings
from trainer.retrieval.metrics import (
    Ranking,
    SparsityCounts,
    graded_ndcg,
    mean_over_datasets,
    required_depth,
    retrieval_metrics,
    sorted_hits,
)

__all__ = [
    "BeirData",
    "Ranking",
    "SparsityCounts",
    "document_text",
    "exact_rankings",
    "graded_ndcg",
    "mean_over_datasets",
    "read_beir_folder",
    "read_jsonl",
    "read_qrels",
    "required_depth",
    "retrieval_metrics",
    "sorted_hits",
]
