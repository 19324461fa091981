"""GradCache gives the same gradients as the plain full-batch loss (tiny random BERT)."""

from __future__ import annotations

import pytest
import torch

from trainer.model import SpladeModel
from trainer.training.gradcache import cached_backward, split_features
from trainer.training.losses import SpladeLoss

from .conftest import TEXTS


def _columns(model: SpladeModel, columns: int = 3) -> list[dict[str, torch.Tensor]]:
    rows = [TEXTS[i::columns] for i in range(columns)]  # 4 rows per column, different lengths
    out = []
    for texts in rows:
        enc = model.tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
        out.append({k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids")})
    return out


def _grads(model: SpladeModel) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _plain(model: SpladeModel, columns: list[dict[str, torch.Tensor]], loss: SpladeLoss) -> tuple[float, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    emb = [model(**c) for c in columns]
    parts = loss(emb[0], emb[1:])
    parts.total.backward()
    return float(parts.total.detach()), _grads(model)


def _cached(model: SpladeModel, columns: list[dict[str, torch.Tensor]], loss: SpladeLoss, mini: int) -> tuple[float, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    parts, _ = cached_backward(lambda f: model(**f), columns, loss, mini, device=torch.device("cpu"))
    return float(parts.total), _grads(model)


def _assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float) -> None:
    assert a.keys() == b.keys() and a
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=atol, rtol=1e-4, msg=name)


@pytest.mark.parametrize("mini", [1, 3, 4])
def test_gradcache_equals_full_batch_gradients(tiny_model_factory, mini: int) -> None:
    model = tiny_model_factory(dropout=0.0).double().train()  # fp64: compares algorithms, not rounding
    loss = SpladeLoss(lambda_query=1e-2, lambda_corpus=1e-2)  # large lambdas: regulariser grads matter too
    columns = _columns(model)
    plain_loss, plain = _plain(model, columns, loss)
    cached_loss, cached = _cached(model, columns, loss, mini)
    assert abs(plain_loss - cached_loss) < 1e-5
    _assert_close(plain, cached, atol=1e-5)


def test_gradcache_replays_dropout(tiny_model_factory) -> None:
    """With dropout on, the second (grad) pass must see the first pass's masks."""
    model = tiny_model_factory(dropout=0.3).train()
    loss = SpladeLoss()
    columns = _columns(model)
    torch.manual_seed(7)
    _, plain = _plain(model, columns, loss)
    after_plain = torch.get_rng_state()
    torch.manual_seed(7)
    _, cached = _cached(model, columns, loss, mini=4)  # one mini-batch per column: same RNG use as plain
    _assert_close(plain, cached, atol=1e-5)
    assert torch.equal(after_plain, torch.get_rng_state())  # the replay leaves the outer RNG stream alone


def test_split_features_trims_padding(tiny_model_factory) -> None:
    model = tiny_model_factory()
    column = _columns(model, 2)[0]
    chunks = split_features(column, 2)
    assert sum(c["input_ids"].shape[0] for c in chunks) == column["input_ids"].shape[0]
    for chunk in chunks:
        assert int(chunk["attention_mask"].sum(dim=1).max()) == chunk["input_ids"].shape[1]
