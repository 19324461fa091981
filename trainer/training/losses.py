"""SPLADE training losses on embeddings: sparse MNRL, FLOPS regulariser, and their weighted sum.

The functions take (batch, vocab) tensors rather than a model, so they are testable without one and
shared by the plain and the GradCache (`gradcache.py`) training paths. Values match
sentence-transformers' `SparseMultipleNegativesRankingLoss`, `FlopsLoss` and `SpladeLoss` (defaults:
query_to_doc direction, joint partition, no hardness weighting) and its
`SpladeRegularizerWeightSchedulerCallback` warm-up of the regulariser weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

DEFAULT_LAMBDA_QUERY = 5e-5
DEFAULT_LAMBDA_CORPUS = 3e-5


def sparse_mnrl_loss(queries: torch.Tensor, documents: Sequence[torch.Tensor], scale: float = 1.0) -> torch.Tensor:
    """In-batch-negatives cross-entropy on dot-product scores.

    `documents[0]` holds the positives (row i pairs with query i); further tensors are hard negatives,
    one per query, which join the candidate set of every query. The positive of query i sits at column i.
    """
    if not documents:
        raise ValueError("need at least the positive documents")
    candidates = torch.cat(list(documents), dim=0)
    scores = (queries @ candidates.T) * scale
    rows = torch.arange(queries.shape[0], device=queries.device)
    positive = scores[rows, rows]
    return -(positive - torch.logsumexp(scores, dim=1)).mean()


def flops(embeddings: torch.Tensor, threshold: int | None = None) -> torch.Tensor:
    """FLOPS regulariser sum_j (mean_i w_ij)^2; rows with <= `threshold` active dims are zeroed first."""
    if threshold is not None:
        active = (embeddings != 0).sum(dim=1)
        embeddings = embeddings * (active > threshold).to(embeddings.dtype).unsqueeze(1)
    return torch.sum(torch.mean(embeddings, dim=0) ** 2)


@dataclass(frozen=True)
class LossParts:
    """Each part of the SPLADE loss; regulariser parts are already multiplied by their lambdas."""

    base: torch.Tensor
    document_regularizer: torch.Tensor
    query_regularizer: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        return self.base + self.document_regularizer + self.query_regularizer

    def as_floats(self) -> dict[str, float]:
        return {
            "loss": float(self.total.detach()),
            "base_loss": float(self.base.detach()),
            "document_regularizer_loss": float(self.document_regularizer.detach()),
            "query_regularizer_loss": float(self.query_regularizer.detach()),
        }


class SpladeLoss:
    """Sparse MNRL + lambda_corpus * FLOPS(all documents, incl. hard negatives) + lambda_query * FLOPS(queries).

    `lambda_query` / `lambda_corpus` are the current (possibly warmed-up) weights; the loop sets them
    from a `RegularizerSchedule` before each optimiser step.
    """

    def __init__(
        self,
        *,
        scale: float = 1.0,
        lambda_query: float = DEFAULT_LAMBDA_QUERY,
        lambda_corpus: float = DEFAULT_LAMBDA_CORPUS,
        query_threshold: int | None = None,
        document_threshold: int | None = None,
    ) -> None:
        self.scale = scale
        self.lambda_query = lambda_query
        self.lambda_corpus = lambda_corpus
        self.query_threshold = query_threshold
        self.document_threshold = document_threshold

    def __call__(self, queries: torch.Tensor, documents: Sequence[torch.Tensor]) -> LossParts:
        base = sparse_mnrl_loss(queries, documents, self.scale)
        doc_reg = flops(torch.cat(list(documents), dim=0), self.document_threshold) * self.lambda_corpus
        query_reg = flops(queries, self.query_threshold) * self.lambda_query
        return LossParts(base=base, document_regularizer=doc_reg, query_regularizer=query_reg)


class RegularizerSchedule:
    """Warm-up of the regulariser weights from 0 to their maximum, as sentence-transformers does it.

    warmup_steps = max(1, int(total_steps * warmup_ratio)); at optimiser step `step` (steps already
    taken) the weight is max * (step / warmup_steps) ** 2 (or ** 1 for "linear") until warm-up ends.
    """

    def __init__(
        self,
        max_lambda_query: float,
        max_lambda_corpus: float,
        total_steps: int,
        warmup_ratio: float = 1 / 3,
        kind: Literal["quadratic", "linear"] = "quadratic",
    ) -> None:
        if not 0 < warmup_ratio <= 1:
            raise ValueError(f"warmup_ratio must be in (0, 1], got {warmup_ratio}")
        self.max_lambda_query = max_lambda_query
        self.max_lambda_corpus = max_lambda_corpus
        self.kind = kind
        self.warmup_steps = max(1, int(total_steps * warmup_ratio))

    def factor(self, step: int) -> float:
        if step >= self.warmup_steps:
            return 1.0
        ratio = step / self.warmup_steps
        return ratio**2 if self.kind == "quadratic" else ratio

    def lambdas(self, step: int) -> tuple[float, float]:
        """(lambda_query, lambda_corpus) for the optimiser step about to be taken."""
        if step >= self.warmup_steps:
            return self.max_lambda_query, self.max_lambda_corpus
        f = self.factor(step)
        return self.max_lambda_query * f, self.max_lambda_corpus * f

    def apply(self, loss: SpladeLoss, step: int) -> None:
        loss.lambda_query, loss.lambda_corpus = self.lambdas(step)
