"""Training-time evaluation: sentence-transformers' IR metrics (nDCG@10, MRR@10, ...) by exact dot product on a BEIR split.

Uses the core's one BEIR reader, exact ranking and metrics (`trainer.retrieval`), the ones
`splade_connectors.eval` uses, so training-time numbers equal the evaluation's exact backend:
documents are encoded as `title + "\\n" + text` (the text ingestion and evaluation encode), rankings
are exact with ties broken by doc id, and a document is relevant when its grade is >= 1.
A corpus slice (relevant documents + N random others) keeps evaluation cheap enough to run during training.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainer.encoder import EncodeOptions, SpladeEncoder
from trainer.model import SpladeModel
from trainer.retrieval import exact_rankings, read_beir_folder, required_depth, retrieval_metrics

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BeirSplit:
    """Queries, corpus (doc id -> the text that is encoded) and relevant documents of one split, already sliced."""

    queries: dict[str, str]
    corpus: dict[str, str]
    qrels: dict[str, set[str]]


def load_beir_split(
    directory: str | Path,
    split: str = "test",
    *,
    max_queries: int | None = None,
    extra_documents: int | None = None,
    seed: int = 0,
    relevance_threshold: int = 1,
) -> BeirSplit:
    """Read a BEIR folder (`trainer.retrieval.read_beir_folder`); optionally slice queries and corpus."""
    data = read_beir_folder(directory, split)
    relevant = {q: {d for d, grade in docs.items() if grade >= relevance_threshold} for q, docs in data.qrels.items()}
    queries = {q: text for q, text in data.queries.items() if relevant.get(q)}
    if max_queries is not None:
        queries = dict(sorted(queries.items())[:max_queries])
    qrels = {q: relevant[q] for q in queries}
    corpus = {doc_id: data.text(doc_id) for doc_id in data.corpus}
    if extra_documents is not None:
        judged = set().union(*qrels.values()) & set(corpus)
        others = sorted(set(corpus) - judged)
        rng = np.random.default_rng(seed)
        picked = rng.choice(len(others), size=min(extra_documents, len(others)), replace=False)
        keep = judged | {others[i] for i in picked}
        corpus = {k: v for k, v in corpus.items() if k in keep}
    return BeirSplit(queries, corpus, qrels)


class BeirEvaluator:
    """Callable `evaluate(model) -> {"ndcg@10", "mrr@10", "map@100", "recall@10", ..., "query_active_dims", "corpus_active_dims"}`."""

    def __init__(self, split: BeirSplit, *, batch_size: int = 32, max_length: int | None = None) -> None:
        self.split = split
        self.batch_size = batch_size
        self.max_length = max_length
        self._query_ids = list(split.queries)
        self._doc_ids = list(split.corpus)

    @classmethod
    def from_folder(
        cls, directory: str | Path, split: str = "test", *, batch_size: int = 32, max_length: int | None = None, **slicing: int | None
    ) -> BeirEvaluator:
        return cls(load_beir_split(directory, split, **slicing), batch_size=batch_size, max_length=max_length)  # type: ignore[arg-type]  # slicing holds only the limits the caller set

    def __call__(self, model: SpladeModel) -> dict[str, float]:
        was_training = model.training
        param = next(model.parameters())
        encoder = SpladeEncoder(model, device=param.device, dtype=param.dtype, options=EncodeOptions(batch_size=self.batch_size, max_length=self.max_length))
        try:
            q_vecs = encoder.encode_queries([self.split.queries[q] for q in self._query_ids])
            d_vecs = encoder.encode_documents([self.split.corpus[d] for d in self._doc_ids])
        finally:
            model.train(was_training)
        rankings = exact_rankings(
            self._query_ids, q_vecs, self._doc_ids, d_vecs, top_k=required_depth(), dim=model.vocab_size,
        )
        metrics = retrieval_metrics(rankings, self.split.qrels, self._query_ids)
        metrics["query_active_dims"] = float(np.mean([v.nnz for v in q_vecs])) if q_vecs else 0.0
        metrics["corpus_active_dims"] = float(np.mean([v.nnz for v in d_vecs])) if d_vecs else 0.0
        logger.info(
            "evaluation on %d queries / %d docs: ndcg@10=%.4f mrr@10=%.4f", len(q_vecs), len(d_vecs),
            metrics["ndcg@10"], metrics["mrr@10"],
        )
        return metrics


def evaluate_model(model: SpladeModel, directory: str | Path, split: str = "test", **kwargs: int | None) -> dict[str, float]:
    """One-shot convenience wrapper around `BeirEvaluator`."""
    with torch.inference_mode():
        return BeirEvaluator.from_folder(directory, split, **kwargs)(model)  # type: ignore[arg-type]  # slicing holds only the limits the caller set
