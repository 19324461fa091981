"""Memory-lean max pooling: same values and gradients as the naive (batch, length, vocab) computation."""

from __future__ import annotations

import pytest
import torch

from trainer.model import SpladeModel, activate
from trainer.pooling import max_over_tokens


def _naive(hidden: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    logits = hidden @ weight.t()
    return logits.masked_fill(~mask.bool().unsqueeze(-1), float("-inf")).amax(dim=1)


@pytest.mark.parametrize("length", [5, 70])
def test_values_and_gradients_equal_the_naive_computation(length: int) -> None:
    torch.manual_seed(0)
    hidden = torch.randn(3, length, 16, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(9000, 16, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(9000, dtype=torch.float64)
    mask = torch.ones(3, length, dtype=torch.long)
    mask[1, length // 2 :] = 0
    mask[2, 1:] = 0
    upstream = torch.randn(3, 9000, dtype=torch.float64)

    def loss(fn):
        hidden.grad = weight.grad = None
        out = activate(fn(hidden, mask, weight) + bias, "relu")
        (out * upstream).sum().backward()
        return out.detach(), hidden.grad.clone(), weight.grad.clone()  # type: ignore[attr-defined]  # backward() just set them

    fast, naive = loss(max_over_tokens), loss(_naive)
    for a, b in zip(fast, naive):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    assert torch.all(fast[1][1, length // 2 :] == 0)  # padding gets no gradient


def test_model_forward_gradients_match_full_logits(trained_model_dir) -> None:
    model = SpladeModel.from_pretrained(trained_model_dir).double().train()
    batch = model.tokenizer(["who is cornelius in the book of acts", "a short one"], padding=True, return_tensors="pt")
    torch.manual_seed(1)
    fast = model(batch["input_ids"], batch["attention_mask"])
    fast.pow(2).sum().backward()
    fast_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    torch.manual_seed(1)  # same dropout masks
    logits = model.mlm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    mask = batch["attention_mask"].unsqueeze(-1).to(logits.dtype)
    naive = (activate(logits, "relu") * mask).max(dim=1).values
    naive.pow(2).sum().backward()
    torch.testing.assert_close(fast, naive, rtol=1e-9, atol=1e-9)
    for name, grad in fast_grads.items():
        torch.testing.assert_close(grad, dict(model.named_parameters())[name].grad, rtol=1e-7, atol=1e-9, msg=name)
