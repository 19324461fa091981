"""Loss values match sentence-transformers' SpladeLoss / SparseMNRL / FlopsLoss on the same embeddings."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainer.training.losses import RegularizerSchedule, SpladeLoss, flops, sparse_mnrl_loss

st_losses = pytest.importorskip("sentence_transformers.sparse_encoder.losses")


class _FixedEmbeddings(nn.Module):
    """Stands in for a SparseEncoder: each 'feature dict' already carries its embedding."""

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"sentence_embedding": features["embedding"]}


def _embeddings(batch: int, columns: int, dim: int = 300, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(columns):
        dense = torch.relu(torch.randn(batch, dim, generator=g, dtype=torch.float64)) * 0.7
        out.append(dense * (torch.rand(batch, dim, generator=g, dtype=torch.float64) < 0.2))
    return out


@pytest.mark.parametrize("columns", [2, 3, 4])
@pytest.mark.parametrize("scale", [1.0, 20.0])
def test_sparse_mnrl_matches_sentence_transformers(columns: int, scale: float) -> None:
    emb = _embeddings(8, columns)
    reference = st_losses.SparseMultipleNegativesRankingLoss(_FixedEmbeddings(), scale=scale)
    expected = reference.compute_loss_from_embeddings(emb, None)
    got = sparse_mnrl_loss(emb[0], emb[1:], scale)
    assert abs(float(got) - float(expected)) < 1e-6


@pytest.mark.parametrize("threshold", [None, 55, 60])
def test_flops_matches_sentence_transformers(threshold: int | None) -> None:
    emb = torch.cat(_embeddings(16, 1))
    expected = st_losses.FlopsLoss(_FixedEmbeddings(), threshold=threshold).compute_loss_from_embeddings(emb)
    assert abs(float(flops(emb, threshold)) - float(expected)) < 1e-9


@pytest.mark.parametrize("columns", [2, 3])
def test_splade_loss_parts_match_sentence_transformers(columns: int) -> None:
    from sentence_transformers.base.losses.merged_forward import column_merging_disabled

    emb = _embeddings(6, columns, seed=1)
    fake = _FixedEmbeddings()
    reference = st_losses.SpladeLoss(
        fake, st_losses.SparseMultipleNegativesRankingLoss(fake), document_regularizer_weight=3e-5, query_regularizer_weight=5e-5
    )
    with column_merging_disabled():
        expected = reference([{"embedding": e} for e in emb], None)
    parts = SpladeLoss()(emb[0], emb[1:])
    assert abs(float(parts.base) - float(expected["base_loss"])) < 1e-6
    assert abs(float(parts.document_regularizer) - float(expected["document_regularizer_loss"])) < 1e-9
    assert abs(float(parts.query_regularizer) - float(expected["query_regularizer_loss"])) < 1e-9
    assert abs(float(parts.total) - float(sum(expected.values()))) < 1e-6
    # the document regulariser covers positives and hard negatives together
    assert abs(float(parts.document_regularizer) - 3e-5 * float(flops(torch.cat(emb[1:])))) < 1e-12


def test_splade_loss_float32_gradients_flow() -> None:
    emb = [e.float().requires_grad_() for e in _embeddings(4, 3)]
    SpladeLoss()(emb[0], emb[1:]).total.backward()
    assert all(e.grad is not None and torch.isfinite(e.grad).all() for e in emb)


@pytest.mark.parametrize("total_steps,ratio", [(30, 1 / 3), (100, 0.1), (7, 0.5), (2, 1 / 3)])
@pytest.mark.parametrize("kind", ["quadratic", "linear"])
def test_regularizer_warmup_matches_sentence_transformers_callback(total_steps: int, ratio: float, kind: str) -> None:
    from sentence_transformers.sparse_encoder.callbacks.splade_callbacks import SpladeRegularizerWeightSchedulerCallback
    from transformers.trainer_callback import TrainerState

    fake = _FixedEmbeddings()
    reference = st_losses.SpladeLoss(
        fake, st_losses.SparseMultipleNegativesRankingLoss(fake), document_regularizer_weight=3e-5, query_regularizer_weight=5e-5
    )
    callback = SpladeRegularizerWeightSchedulerCallback(reference, scheduler_type=kind, warmup_ratio=ratio)
    state = TrainerState(max_steps=total_steps)
    callback.on_train_begin(None, state, None)
    ours = RegularizerSchedule(5e-5, 3e-5, total_steps, ratio, kind)
    assert ours.warmup_steps == callback.warmup_steps
    for step in range(total_steps):
        state.global_step = step
        callback.on_step_begin(None, state, None)
        lq, lc = ours.lambdas(step)
        assert lq == reference.query_regularizer_weight
        assert lc == reference.document_regularizer_weight
