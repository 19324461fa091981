"""SPLADE max pooling over the vocabulary projection without the (batch, length, vocab) tensor.

max_t(h_t · w_v) is computed one cache-sized vocabulary slice at a time. For training, a custom autograd
function keeps only the winning token per (row, vocabulary entry): the gradient of a max flows to that
token alone, and only through entries that are active after log1p(relu) (a few hundred of 30,522), so
the backward pass is a handful of small gathers instead of a second (batch, length, vocab) GEMM.
"""

from __future__ import annotations

from typing import Any

import torch

VOCAB_SLICE = 4096  # vocabulary rows per GEMM on one text: keeps the (slice, length) logits in cache
SHORT_SEQUENCE = 64  # below this padded length, one GEMM over the whole batch beats per-text GEMMs


def sequence_max(states: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(length, H) states -> max over tokens of states @ weight.T and the winning token, both (vocab,)."""
    vocab = weight.shape[0]
    values = torch.empty(vocab, dtype=states.dtype, device=states.device)
    winners = torch.zeros(vocab, dtype=torch.long, device=states.device)
    if states.shape[0] == 0:
        return values.fill_(float("-inf")), winners
    columns = states.t().contiguous()
    for start in range(0, vocab, VOCAB_SLICE):
        stop = start + VOCAB_SLICE
        torch.max(weight[start:stop] @ columns, dim=1, out=(values[start:stop], winners[start:stop]))
    return values, winners


def batched_max(hidden: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor, chunk_elements: int = 1 << 19) -> torch.Tensor:
    """Masked max over tokens for a batch of short sequences, one GEMM per vocabulary slice: (B, vocab)."""
    batch, length, width = hidden.shape
    vocab = weight.shape[0]
    columns = hidden.reshape(batch * length, width).t().contiguous()
    padding = (~mask).reshape(1, batch, length)
    rows_per_slice = max(64, chunk_elements // max(1, batch * length))
    out = torch.empty(vocab, batch, dtype=hidden.dtype, device=hidden.device)
    for start in range(0, vocab, rows_per_slice):
        logits = (weight[start : start + rows_per_slice] @ columns).view(-1, batch, length)
        logits.masked_fill_(padding, float("-inf"))
        torch.amax(logits, dim=2, out=out[start : start + rows_per_slice])
    return out.t()


def sequence_sum(states: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, activation: Any) -> torch.Tensor:
    """sum over tokens of activation(states @ weight.T + bias), one vocabulary slice at a time: (vocab,)."""
    vocab = weight.shape[0]
    out = torch.zeros(vocab, dtype=torch.float32, device=states.device)
    columns = states.t().contiguous()
    for start in range(0, vocab, VOCAB_SLICE):
        logits = weight[start : start + VOCAB_SLICE] @ columns
        if bias is not None:
            logits = logits + bias[start : start + VOCAB_SLICE, None]
        out[start : start + VOCAB_SLICE] = activation(logits.float()).sum(dim=1)
    return out


class _MaxOverTokens(torch.autograd.Function):
    """max_t(hidden[b, t] · weight[v]) over real tokens, with a sparse backward through the winners."""

    @staticmethod
    def forward(ctx: Any, hidden: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        weight_c = weight.to(hidden.dtype)
        values, winners = [], []
        for row in range(hidden.shape[0]):
            positions = torch.nonzero(mask[row], as_tuple=True)[0]
            v, w = sequence_max(hidden[row, positions], weight_c)
            values.append(v)
            winners.append(positions[w] if positions.numel() else w)
        winner = torch.stack(winners)
        ctx.save_for_backward(hidden, weight, winner)
        return torch.stack(values)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, torch.Tensor | None]:  # type: ignore[override]
        hidden, weight, winner = ctx.saved_tensors
        grad_hidden = torch.zeros_like(hidden) if ctx.needs_input_grad[0] else None
        grad_weight = torch.zeros_like(weight) if ctx.needs_input_grad[2] else None
        for row in range(grad.shape[0]):
            active = torch.nonzero(grad[row], as_tuple=True)[0]
            if active.numel() == 0:
                continue
            g = grad[row, active].unsqueeze(1)
            tokens = winner[row, active]
            if grad_hidden is not None:
                grad_hidden[row].index_add_(0, tokens, (g * weight[active]).to(hidden.dtype))
            if grad_weight is not None:
                grad_weight.index_add_(0, active, (g * hidden[row, tokens]).to(weight.dtype))
        return grad_hidden, None, grad_weight


def max_over_tokens(hidden: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Differentiable (batch, vocab) max over real tokens of hidden @ weight.T (no bias)."""
    return _MaxOverTokens.apply(hidden, mask.bool(), weight)  # type: ignore[no-any-return]
