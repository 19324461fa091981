"""Training-time evaluation: nDCG@10 by exact dot product on a BEIR folder split.

Small and self-contained on purpose (the full evaluation suite lives in `splade_connectors.eval`,
which the trainer must not import). Relevance is binary (qrels score > 0); documents are
"title text" as in the BEIR corpus. A corpus slice (relevant documents + N random others) keeps
evaluation cheap enough to run during training.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainer.encoder import EncodeOptions, SpladeEncoder
from trainer.model import SpladeModel
from trainer.sparse import to_csr

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BeirSplit:
    """Queries, corpus and binary qrels of one split, already sliced."""

    queries: dict[str, str]
    corpus: dict[str, str]
    qrels: dict[str, set[str]]


def _read_jsonl(path: Path) -> list[dict[str, object]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _read_qrels(path: Path) -> dict[str, set[str]]:
    qrels: dict[str, set[str]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        for row in reader:
            if len(row) < 3 or row[0] == "query-id":
                continue
            if float(row[2]) > 0:
                qrels.setdefault(row[0], set()).add(row[1])
    return qrels


def load_beir_split(
    directory: str | Path,
    split: str = "test",
    *,
    max_queries: int | None = None,
    extra_documents: int | None = None,
    seed: int = 0,
) -> BeirSplit:
    """Read corpus.jsonl / queries.jsonl / qrels/{split}.tsv; optionally slice queries and corpus."""
    directory = Path(directory)
    qrels = _read_qrels(directory / "qrels" / f"{split}.tsv")
    queries = {str(r["_id"]): str(r["text"]) for r in _read_jsonl(directory / "queries.jsonl") if str(r["_id"]) in qrels}
    if max_queries is not None:
        queries = dict(sorted(queries.items())[:max_queries])
    qrels = {q: qrels[q] for q in queries}
    corpus_rows = _read_jsonl(directory / "corpus.jsonl")
    corpus = {str(r["_id"]): " ".join(s for s in (str(r.get("title") or ""), str(r.get("text") or "")) if s) for r in corpus_rows}
    if extra_documents is not None:
        relevant = set().union(*qrels.values()) & set(corpus)
        others = sorted(set(corpus) - relevant)
        rng = np.random.default_rng(seed)
        picked = rng.choice(len(others), size=min(extra_documents, len(others)), replace=False)
        keep = relevant | {others[i] for i in picked}
        corpus = {k: v for k, v in corpus.items() if k in keep}
    return BeirSplit(queries, corpus, qrels)


def ndcg_at_k(ranked: list[str], relevant: set[str], k: int = 10) -> float:
    """Binary nDCG@k; the ideal DCG counts min(k, |relevant|) relevant documents."""
    dcg = sum(1.0 / math.log2(rank + 2) for rank, doc in enumerate(ranked[:k]) if doc in relevant)
    ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(k, len(relevant))))
    return dcg / ideal if ideal else 0.0


class BeirEvaluator:
    """Callable `evaluate(model) -> {"ndcg@10", "query_active_dims", "corpus_active_dims"}`."""

    def __init__(self, split: BeirSplit, *, batch_size: int = 32, max_length: int | None = None, k: int = 10) -> None:
        self.split = split
        self.batch_size = batch_size
        self.max_length = max_length
        self.k = k
        self._query_ids = list(split.queries)
        self._doc_ids = list(split.corpus)

    @classmethod
    def from_folder(
        cls, directory: str | Path, split: str = "test", *, batch_size: int = 32, max_length: int | None = None, **slicing: int | None
    ) -> BeirEvaluator:
        return cls(load_beir_split(directory, split, **slicing), batch_size=batch_size, max_length=max_length)  # type: ignore[arg-type]

    def __call__(self, model: SpladeModel) -> dict[str, float]:
        was_training = model.training
        param = next(model.parameters())
        encoder = SpladeEncoder(model, device=param.device, dtype=param.dtype, options=EncodeOptions(batch_size=self.batch_size, max_length=self.max_length))
        try:
            q_vecs = encoder.encode_queries([self.split.queries[q] for q in self._query_ids])
            d_vecs = encoder.encode_documents([self.split.corpus[d] for d in self._doc_ids])
        finally:
            model.train(was_training)
        dim = model.vocab_size
        scores = (to_csr(q_vecs, dim) @ to_csr(d_vecs, dim).T).toarray()
        ndcgs = []
        for row, qid in enumerate(self._query_ids):
            top = np.argsort(-scores[row], kind="stable")[: self.k]
            ranked = [self._doc_ids[i] for i in top if scores[row, i] > 0]
            ndcgs.append(ndcg_at_k(ranked, self.split.qrels[qid], self.k))
        metrics = {
            f"ndcg@{self.k}": float(np.mean(ndcgs)) if ndcgs else 0.0,
            "query_active_dims": float(np.mean([v.nnz for v in q_vecs])) if q_vecs else 0.0,
            "corpus_active_dims": float(np.mean([v.nnz for v in d_vecs])) if d_vecs else 0.0,
        }
        logger.info("evaluation on %d queries / %d docs: %s", len(q_vecs), len(d_vecs), metrics)
        return metrics


def evaluate_model(model: SpladeModel, directory: str | Path, split: str = "test", **kwargs: int | None) -> dict[str, float]:
    """One-shot convenience wrapper around `BeirEvaluator`."""
    with torch.inference_mode():
        return BeirEvaluator.from_folder(directory, split, **kwargs)(model)  # type: ignore[arg-type]
