"""Loading and saving checkpoints: plain MLM, sentence-transformers v5 and v6 layouts, encoder-only."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from trainer.checkpoint import CheckpointError, PoolingConfig
from trainer.encoder import SpladeEncoder
from trainer.model import SpladeModel, activate

TEXTS = ["who is cornelius in the book of acts", "Photosynthesis converts light into chemical energy.", "word"]


def _reference_vectors(model: SpladeModel, texts: list[str]) -> list[torch.Tensor]:
    """Straightforward SPLADE on full logits, one text at a time (the definition, not the fast path)."""
    out = []
    with torch.no_grad():
        for text in texts:
            batch = model.tokenizer([text], truncation=True, max_length=model.max_seq_length, return_tensors="pt")
            logits = model.mlm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[0]
            activated = activate(logits, model.pooling.activation_function)
            out.append(activated.max(dim=0).values if model.pooling.pooling_strategy == "max" else activated.sum(dim=0))
    return out


def _assert_matches_reference(model: SpladeModel, texts: list[str]) -> None:
    ours = SpladeEncoder(model, device="cpu").encode_documents(texts)
    for vector, ref in zip(ours, _reference_vectors(model, texts)):
        expected = torch.nonzero(ref > 0).flatten()
        assert vector.indices.tolist() == expected.tolist()
        np.testing.assert_allclose(vector.values, ref[expected].numpy(), atol=1e-4)


def _write_v5_layout(source: Path, target: Path, *, max_seq_length: int, pooling: dict) -> Path:
    transformer = target / "0_MLMTransformer"
    shutil.copytree(source, transformer)
    (transformer / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_seq_length, "do_lower_case": False}))
    (target / "1_SpladePooling").mkdir()
    (target / "1_SpladePooling" / "config.json").write_text(json.dumps(pooling))
    modules = [
        {"idx": 0, "name": "0", "path": "0_MLMTransformer", "type": "sentence_transformers.sparse_encoder.models.MLMTransformer"},
        {"idx": 1, "name": "1", "path": "1_SpladePooling", "type": "sentence_transformers.sparse_encoder.models.SpladePooling"},
    ]
    (target / "modules.json").write_text(json.dumps(modules))
    (target / "config_sentence_transformers.json").write_text(json.dumps({"model_type": "SparseEncoder", "prompts": {"query": "", "document": ""}}))
    return target


def test_plain_mlm_checkpoint_defaults(splade_model: SpladeModel) -> None:
    assert splade_model.pooling == PoolingConfig(pooling_strategy="max", activation_function="relu")
    assert splade_model.max_seq_length == 512
    assert splade_model.vocab_size == 30522


def test_v5_layout_honours_max_length_and_pooling(trained_model_dir: Path, tmp_path: Path) -> None:
    pooling = {"pooling_strategy": "sum", "activation_function": "log1p_relu", "word_embedding_dimension": 30522}
    directory = _write_v5_layout(trained_model_dir, tmp_path / "v5", max_seq_length=48, pooling=pooling)
    model = SpladeModel.from_pretrained(directory)
    assert model.max_seq_length == 48
    assert model.pooling == PoolingConfig(pooling_strategy="sum", activation_function="log1p_relu")
    _assert_matches_reference(model, TEXTS + ["many words " * 100])


@pytest.mark.parametrize("pooling_strategy", ["max", "sum"])
@pytest.mark.parametrize("activation_function", ["relu", "log1p_relu"])
def test_fast_path_equals_definition_for_every_pooling(
    trained_model_dir: Path, pooling_strategy: str, activation_function: str
) -> None:
    model = SpladeModel.from_pretrained(
        trained_model_dir,
        pooling=PoolingConfig(pooling_strategy=pooling_strategy, activation_function=activation_function),
    )
    _assert_matches_reference(model, TEXTS + ["long " * 90 + "text"])


def test_v6_layout_round_trip_keeps_configuration(trained_model_dir: Path, tmp_path: Path) -> None:
    model = SpladeModel.from_pretrained(
        trained_model_dir, max_seq_length=128, pooling=PoolingConfig(pooling_strategy="sum")
    )
    saved = model.save(tmp_path / "v6")
    modules = json.loads((saved / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", "SpladePooling"]
    reloaded = SpladeModel.from_pretrained(saved)
    assert reloaded.max_seq_length == 128
    assert reloaded.pooling.pooling_strategy == "sum"


def test_encoder_only_checkpoint_gets_a_tied_head_with_a_warning(
    base_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING"):
        model = SpladeModel.from_pretrained(base_model_dir)
    assert "no trained MLM head" in caplog.text
    embeddings = model.mlm.get_input_embeddings().weight  # type: ignore[operator]  # a transformers model, typed as nn.Module
    assert model.output_embeddings.weight.data_ptr() == embeddings.data_ptr()
    vectors = SpladeEncoder(model, device="cpu").encode_documents(["an untrained head still yields valid vectors"])
    assert vectors[0].nnz > 0


def test_other_architectures_work(trained_model_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertForMaskedLM

    tokenizer = AutoTokenizer.from_pretrained(str(trained_model_dir))
    config = DistilBertConfig(vocab_size=tokenizer.vocab_size, dim=32, hidden_dim=64, n_layers=1, n_heads=2)
    torch.manual_seed(0)
    DistilBertForMaskedLM(config).save_pretrained(str(tmp_path / "distil"))
    tokenizer.save_pretrained(str(tmp_path / "distil"))
    model = SpladeModel.from_pretrained(tmp_path / "distil")
    _assert_matches_reference(model, TEXTS)


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        SpladeModel.from_pretrained(tmp_path / "nope" / "model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="neither modules.json nor config.json"):
        SpladeModel.from_pretrained(tmp_path / "empty")


def test_hub_id_offline_fails_fast_and_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    with pytest.raises(CheckpointError, match="Hugging Face Hub"):
        SpladeModel.from_pretrained("naver/splade-v3-not-cached-here")
    assert time.perf_counter() - started < 10


def test_router_checkpoint_without_its_config_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "modules.json").write_text(json.dumps([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.base.modules.router.Router"}]))
    with pytest.raises(CheckpointError, match="Router checkpoint without router_config.json"):
        SpladeModel.from_pretrained(tmp_path)
