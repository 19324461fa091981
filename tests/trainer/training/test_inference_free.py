"""Training an inference-free model: the document side learns against the static query side, as in
sentence-transformers (Router model, router_mapping query/document, no query regulariser)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from trainer.model import SpladeModel
from trainer.static import SparseStaticEmbedding
from trainer.training.config import parse_config
from trainer.training.data import TrainingExamples
from trainer.training.loop import Trainer
from trainer.training.losses import SpladeLoss

from .conftest import TEXTS


def _inference_free(factory: Any, *, frozen: bool, seed: int = 0) -> SpladeModel:
    model: SpladeModel = factory(dropout=0.0, seed=seed)
    generator = torch.Generator().manual_seed(5)
    weights = torch.rand(model.vocab_size, generator=generator) * 3
    model.set_query_static(SparseStaticEmbedding(model.tokenizer, weights, frozen=frozen))
    return model


def _examples(n: int = 24) -> TrainingExamples:
    rows = [(f"{TEXTS[i % 12]} number {i}", f"{TEXTS[(i + 1) % 12]} passage {i}") for i in range(n)]
    return TrainingExamples(rows, ("query", "positive"))


def _config(tmp_path: Path, name: str, **extra: Any) -> Any:
    loss = {"lambda_corpus": 1e-2, "mini_batch_size": extra.pop("mini_batch_size", None)}
    optim = {"batch_size": 4, "max_steps": 4, "learning_rate": 1e-3, "seed": 3, "device": "cpu", **extra}
    return parse_config({
        "model": {"name_or_path": "unused", "max_seq_length": 24},
        "data": {"path": "unused.jsonl"},
        "output_dir": str(tmp_path / name),
        "loss": loss,
        "optim": optim,
        "run": {"logging_steps": 2, "save_steps": 2, "save_total_limit": 5},
    })


def _grads(model: torch.nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    return {prefix + n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("mini_batch_size", [None, 2])
def test_loss_and_gradients_equal_sentence_transformers(tmp_path: Path, tiny_model_factory, mini_batch_size: int | None) -> None:
    st = pytest.importorskip("sentence_transformers.sparse_encoder")
    from sentence_transformers.sparse_encoder.losses import SparseMultipleNegativesRankingLoss, SpladeLoss as StSpladeLoss

    model = _inference_free(tiny_model_factory, frozen=False)
    saved = model.save(tmp_path / "router")
    reference = st.SparseEncoder(str(saved), device="cpu")
    reference.train()

    trainer = Trainer(model, _examples(), _config(tmp_path, "ours", mini_batch_size=mini_batch_size))
    assert trainer.loss.lambda_query == 0.0  # inference-free: no FLOPS on the static query side
    trainer.model.train()
    indices = [0, 1, 2, 3]
    trainer.regularizer.apply(trainer.loss, trainer.total_steps)  # full lambdas, no warm-up
    parts, _ = trainer._backward(trainer._columns(indices), 1.0)

    rows = [trainer.examples[i] for i in indices]
    features = [
        reference.preprocess([r[0] for r in rows], task="query"),
        reference.preprocess([r[1] for r in rows], task="document"),
    ]
    loss = StSpladeLoss(
        reference, SparseMultipleNegativesRankingLoss(reference), document_regularizer_weight=1e-2, query_regularizer_weight=None
    )
    losses = loss(features, None)
    total = sum(losses.values())
    total.backward()

    assert float(parts.total) == pytest.approx(float(total.detach()), abs=1e-5)
    ours_static = model.query_static.weight.grad
    router = reference[0]
    theirs_static = router.sub_modules["query"][0].weight.grad
    assert ours_static is not None and theirs_static is not None and ours_static.abs().sum() > 0
    torch.testing.assert_close(ours_static, theirs_static, atol=1e-5, rtol=1e-4)
    ours_mlm = _grads(model.mlm)
    theirs_mlm = _grads(router.sub_modules["document"][0].model)
    assert ours_mlm.keys() == theirs_mlm.keys() and ours_mlm
    for name in ours_mlm:
        torch.testing.assert_close(ours_mlm[name], theirs_mlm[name], atol=1e-5, rtol=1e-4, msg=name)


def test_frozen_query_weights_stay_and_the_result_is_a_router(tmp_path: Path, tiny_model_factory) -> None:
    st = pytest.importorskip("sentence_transformers.sparse_encoder")
    model = _inference_free(tiny_model_factory, frozen=True)
    before = model.query_static.weight.detach().clone()
    mlm_before = model.mlm.get_input_embeddings().weight.detach().clone()  # type: ignore[operator]  # a transformers model, typed as nn.Module
    final = Trainer(model, _examples(), _config(tmp_path, "frozen")).train()
    assert torch.equal(model.query_static.weight.detach(), before)
    assert not torch.equal(model.mlm.get_input_embeddings().weight.detach(), mlm_before)  # type: ignore[operator]  # as above
    reloaded = SpladeModel.from_pretrained(final)
    assert reloaded.is_inference_free and reloaded.query_static.frozen
    reference = st.SparseEncoder(str(final), device="cpu")
    expected = reference.encode_query(TEXTS[:3], convert_to_tensor=True).to_dense()
    from trainer.encoder import SpladeEncoder

    for row, vector in zip(expected, SpladeEncoder(reloaded, device="cpu").encode_queries(TEXTS[:3])):
        assert torch.equal(torch.from_numpy(vector.to_dense(row.shape[0])), row.float())


def test_trainable_query_weights_learn_at_their_own_rate_and_resume_exactly(tmp_path: Path, tiny_model_factory) -> None:
    config = _config(tmp_path, "full", query_weights_learning_rate=5e-2)
    model = _inference_free(tiny_model_factory, frozen=False)
    before = model.query_static.weight.detach().clone()
    full = Trainer(model, _examples(), config)
    rates = sorted(group["lr"] for group in full.optimizer.param_groups)
    assert rates[-1] > rates[0]  # the static weights have their own group
    full.train()
    assert not torch.equal(model.query_static.weight.detach(), before)

    resumed = Trainer(_inference_free(tiny_model_factory, frozen=False, seed=9), _examples(), _config(tmp_path, "resumed", query_weights_learning_rate=5e-2))
    resumed.train(resume_from=full.output_dir / "checkpoint-2")
    reference = full.model.state_dict()
    for name, value in resumed.model.state_dict().items():
        assert torch.equal(value, reference[name]), name


def test_query_weights_in_the_config_make_the_model_inference_free(tmp_path: Path, tiny_model_factory) -> None:
    from trainer.training import run_training

    base = tiny_model_factory().save(tmp_path / "base")
    static = SparseStaticEmbedding(SpladeModel.from_pretrained(base).tokenizer, torch.rand(30522))
    static.to_idf_json(tmp_path / "idf.json")
    (tmp_path / "train.jsonl").write_text(
        "".join(f'{{"query": "{q}", "positive": "{p}"}}\n' for q, p in _examples(8).rows), encoding="utf-8"
    )
    config = parse_config({
        "model": {"name_or_path": str(base), "max_seq_length": 24, "query_weights": "idf.json", "freeze_query_weights": False},
        "data": {"path": "train.jsonl"},
        "output_dir": str(tmp_path / "out"),
        "optim": {"batch_size": 4, "max_steps": 2, "device": "cpu"},
    }, data_root=tmp_path)
    final = run_training(config)
    trained = SpladeModel.from_pretrained(final)
    assert trained.is_inference_free and not trained.query_static.frozen


def test_plain_models_keep_the_query_regulariser(tmp_path: Path, tiny_model_factory) -> None:
    trainer = Trainer(tiny_model_factory(), _examples(), _config(tmp_path, "plain"))
    assert isinstance(trainer.loss, SpladeLoss) and trainer.regularizer.max_lambda_query > 0
