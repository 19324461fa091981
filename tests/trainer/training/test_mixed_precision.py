"""bf16 autocast training on CPU: a step close to fp32's, the max-pooling backward under autocast, and `auto`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from trainer.cpu import CpuFeatures
from trainer.pooling import max_over_tokens
from trainer.training import mixed_precision
from trainer.training.config import parse_config
from trainer.training.data import TrainingExamples
from trainer.training.loop import Trainer
from trainer.training.mixed_precision import AutocastPlan, cached_measure, resolve_autocast

from .conftest import TEXTS

CPU = torch.device("cpu")
NATIVE_BF16 = CpuFeatures.from_flags("avx512f avx512_bf16 avx512_vnni")
AVX2_ONLY = CpuFeatures.from_flags("avx2 fma")


def _trainer(tmp_path: Path, model: Any, precision: str, mini_batch_size: int | None = None) -> Trainer:
    rows = [(f"{TEXTS[i % 12]} number {i}", f"{TEXTS[(i + 1) % 12]} passage {i}", f"{TEXTS[(i + 5) % 12]} other {i}") for i in range(16)]
    config = parse_config({
        "model": {"name_or_path": "unused", "max_seq_length": 24},
        "data": {"path": "unused.jsonl"},
        "output_dir": str(tmp_path / precision),
        "loss": {"mini_batch_size": mini_batch_size, "lambda_query": 1e-3, "lambda_corpus": 1e-3},
        "optim": {"batch_size": 4, "max_steps": 2, "seed": 3, "device": "cpu", "precision": precision},
    })
    return Trainer(model, TrainingExamples(rows, ("query", "positive", "negative")), config)


@pytest.mark.parametrize("mini_batch_size", [None, 2])
def test_bf16_autocast_step_is_close_to_fp32(tmp_path: Path, tiny_model_factory, mini_batch_size: int | None) -> None:
    """Same weights and batch: the bf16 autocast loss within 2% of fp32's, every parameter's gradient with cosine
    similarity >= 0.99 to fp32's (and the whole gradient's relative error < 5%); master weights and gradients fp32."""
    results = {}
    for precision in ("fp32", "bf16"):
        trainer = _trainer(tmp_path, tiny_model_factory(dropout=0.0, seed=5), precision, mini_batch_size)
        assert trainer.autocast_plan.precision == precision
        parts, _ = trainer._backward(trainer._columns([0, 1, 2, 3]), 1.0)
        grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
        assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
        assert all(g.dtype == torch.float32 for g in grads.values())
        results[precision] = (float(parts.total.detach()), grads)
    (loss32, grads32), (loss16, grads16) = results["fp32"], results["bf16"]
    assert loss16 == pytest.approx(loss32, rel=2e-2)
    assert grads16.keys() == grads32.keys() and len(grads32) > 10
    for name, reference in grads32.items():
        if reference.norm() > 1e-6 * max(g.norm() for g in grads32.values()):
            cosine = torch.nn.functional.cosine_similarity(grads16[name].flatten(), reference.flatten(), dim=0)
            assert cosine >= 0.99, (name, float(cosine))
    flat32 = torch.cat([g.flatten() for g in grads32.values()])
    flat16 = torch.cat([grads16[n].flatten() for n in grads32])
    assert float((flat16 - flat32).norm() / flat32.norm()) < 5e-2


def _tie_free_inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """hidden (3, 6, 16), mask, weight (40, 16) whose logits over tokens are ~1 apart for every (row, entry):
    token t carries a distinct integer rank along dimension 0 and |weight[:, 0]| >= 1, so bf16 rounding (~0.03 here)
    cannot make two tokens tie and both computations must pick the same winner."""
    generator = torch.Generator().manual_seed(seed)
    batch, length, width, vocab = 3, 6, 16, 40
    # per row a shared state plus small per-token noise (|noise . weight| < 0.1), and the rank along dimension 0
    hidden = torch.randn(batch, 1, width, generator=generator) * 0.3 + torch.randn(batch, length, width, generator=generator) * 0.01
    for row in range(batch):
        hidden[row, :, 0] = torch.randperm(length, generator=generator).float()
    weight = torch.randn(vocab, width, generator=generator) * 0.5
    sign = torch.where(torch.rand(vocab, generator=generator) < 0.5, -1.0, 1.0)
    weight[:, 0] = sign * (1.0 + torch.rand(vocab, generator=generator))
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[1, 4:] = 0
    mask[2, 2:] = 0
    return hidden, mask, weight


def test_max_pooling_backward_under_autocast_matches_naive() -> None:
    """Under CPU bf16 autocast the custom max over tokens gives the naive (batch, length, vocab) computation's
    values (bf16 logits) and its gradients for the fp32 states and fp32 weight, within bf16 rounding."""
    hidden, mask, weight = _tie_free_inputs()
    bias = torch.randn(weight.shape[0], generator=torch.Generator().manual_seed(1))
    coefficients = torch.randn(hidden.shape[0], weight.shape[0], generator=torch.Generator().manual_seed(2))

    def run(custom: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = hidden.clone().requires_grad_()
        w = weight.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            if custom:
                raw = max_over_tokens(h, mask, w)
            else:
                logits = h @ w.T  # autocast: a bf16 GEMM, as nn.Linear would run it
                raw = logits.masked_fill(~mask.bool().unsqueeze(-1), float("-inf")).amax(dim=1)
        assert raw.dtype == torch.bfloat16
        vectors = torch.log1p(torch.relu(raw.float() + bias))
        (vectors * coefficients).sum().backward()
        assert h.grad is not None and w.grad is not None
        assert h.grad.dtype == torch.float32 and w.grad.dtype == torch.float32
        return vectors.detach(), h.grad, w.grad

    values, grad_hidden, grad_weight = run(custom=True)
    naive_values, naive_hidden, naive_weight = run(custom=False)
    assert int((values > 0).sum()) > 20  # enough active entries to exercise the backward
    torch.testing.assert_close(values, naive_values, rtol=0, atol=0)
    # the naive backward runs a bf16 GEMM (bf16 operands and result), ours multiplies in fp32: they differ by bf16
    # rounding (2^-8 relative) of the terms of each sum, so the tolerance is relative to the gradient's scale
    for ours, naive in ((grad_hidden, naive_hidden), (grad_weight, naive_weight)):
        torch.testing.assert_close(ours, naive, rtol=0, atol=float(naive.abs().max()) * 2**-6)
        assert torch.equal(ours != 0, naive != 0)  # the same winners receive gradient
    assert float(grad_hidden[1, 4:].abs().sum()) == 0.0  # padding gets no gradient


def test_auto_picks_the_precision_the_probe_measured() -> None:
    calls: list[str] = []

    def timings(values: dict[str, float]) -> Any:
        def measure(precision: str) -> float:
            calls.append(precision)
            return values[precision]

        return measure

    plan = resolve_autocast("auto", CPU, measure=timings({"fp32": 2.0, "bf16": 1.0}), features=NATIVE_BF16)
    assert plan.precision == "bf16" and dict(plan.timings) == {"fp32": 2.0, "bf16": 1.0}
    assert sorted(calls) == ["bf16", "fp32"]
    # bf16 measured slower, or not faster by the margin: fp32 (never slower than fp32 in the measurement)
    assert resolve_autocast("auto", CPU, measure=timings({"fp32": 1.0, "bf16": 1.5}), features=NATIVE_BF16).precision == "fp32"
    assert resolve_autocast("auto", CPU, measure=timings({"fp32": 1.0, "bf16": 0.95}), features=NATIVE_BF16).precision == "fp32"
    # no native bf16: fp32 without measuring (emulated bf16 is always slower)
    calls.clear()
    plan = resolve_autocast("auto", CPU, measure=timings({"fp32": 2.0, "bf16": 1.0}), features=AVX2_ONLY)
    assert plan.precision == "fp32" and calls == [] and plan.timings == ()
    # explicit choices are kept, and never measured
    assert resolve_autocast("bf16", CPU, features=AVX2_ONLY).precision == "bf16"
    assert resolve_autocast("fp32", CPU, features=NATIVE_BF16).precision == "fp32"
    assert calls == []


def test_trainer_auto_uses_the_cached_probe(tmp_path: Path, tiny_model_factory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Trainer's `auto` probes its own model once (one micro-step per precision, no gradient or RNG left behind),
    caches the timings, and a second Trainer reads them instead of measuring."""
    monkeypatch.setenv("SPLADE_CONNECTORS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(mixed_precision, "cpu_features", lambda: NATIVE_BF16)
    measured: list[str] = []
    real_probe = mixed_precision.probe_step

    def probe(model: Any, device: torch.device, precision: Any, batch: int, length: int) -> float:
        measured.append(precision)
        rng = torch.get_rng_state()
        real_probe(model, device, precision, batch, length)
        assert torch.equal(torch.get_rng_state(), rng)
        assert all(p.grad is None for p in model.parameters())
        return {"fp32": 3.0, "bf16": 1.0}[precision]

    monkeypatch.setattr(mixed_precision, "probe_step", probe)
    first = _trainer(tmp_path, tiny_model_factory(), "auto")
    assert first.autocast_plan.precision == "bf16" and sorted(measured) == ["bf16", "fp32"]
    assert (tmp_path / "cache" / mixed_precision.CACHE_FILE).is_file()
    second = _trainer(tmp_path, tiny_model_factory(), "auto")
    assert second.autocast_plan == AutocastPlan("bf16", second.autocast_plan.reason, (("fp32", 3.0), ("bf16", 1.0)))
    assert len(measured) == 2  # read from the cache
    assert cached_measure(second.model, CPU, 4)("fp32") == 3.0
