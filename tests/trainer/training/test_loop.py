"""The training loop: exact resume, logging/metrics files, checkpoints, config loading."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from trainer.errors import ConfigError
from trainer.training.config import bundled_config, load_config, parse_config
from trainer.training.data import TrainingExamples
from trainer.training.loop import Trainer
from trainer.training.state import STATE_FILE, list_checkpoints

from .conftest import TEXTS


def _examples(n: int = 40) -> TrainingExamples:
    rows = [(f"{TEXTS[i % 12]} number {i}", f"{TEXTS[(i + 1) % 12]} passage {i}", f"{TEXTS[(i + 5) % 12]} other {i}") for i in range(n)]
    return TrainingExamples(rows, ("query", "positive", "negative"))


def _config(tmp_path: Path, name: str, **optim: Any) -> Any:
    return parse_config({
        "model": {"name_or_path": "unused", "max_seq_length": 24},
        "data": {"path": "unused.jsonl"},
        "output_dir": str(tmp_path / name),
        "loss": {"mini_batch_size": optim.pop("mini_batch_size", None), "lambda_query": 1e-3, "lambda_corpus": 1e-3},
        "optim": {"batch_size": 4, "gradient_accumulation_steps": 2, "max_steps": 6, "learning_rate": 1e-3,
                  "warmup_ratio": 0.3, "weight_decay": 0.01, "seed": 11, "device": "cpu", **optim},
        "run": {"logging_steps": 2, "save_steps": 3, "save_total_limit": 5},
    })


@pytest.mark.parametrize("mini_batch_size", [None, 2])
def test_resume_gives_identical_weights(tmp_path: Path, tiny_model_factory, mini_batch_size: int | None) -> None:
    examples = _examples()
    full = Trainer(tiny_model_factory(dropout=0.1), examples, _config(tmp_path, "full", mini_batch_size=mini_batch_size))
    full.train()
    checkpoint = full.output_dir / "checkpoint-3"
    assert (checkpoint / STATE_FILE).is_file() and (checkpoint / "modules.json").is_file()

    resumed = Trainer(tiny_model_factory(dropout=0.1, seed=99), examples, _config(tmp_path, "resumed", mini_batch_size=mini_batch_size))
    resumed.train(resume_from=checkpoint)
    assert resumed.step == full.step == 6
    reference = full.model.state_dict()
    for name, value in resumed.model.state_dict().items():
        assert torch.equal(value, reference[name]), name


def test_metrics_file_and_checkpoints(tmp_path: Path, tiny_model_factory) -> None:
    calls: list[int] = []

    def evaluate(model: Any) -> dict[str, float]:
        calls.append(1)
        assert not model.training
        return {"ndcg@10": 0.5}

    trainer = Trainer(tiny_model_factory(), _examples(), _config(tmp_path, "m"), evaluate=evaluate)
    final = trainer.train()
    assert (final / "modules.json").is_file() and calls == [1]
    records = [json.loads(line) for line in (trainer.output_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train] == [2, 4, 6]
    for key in ("loss", "base_loss", "document_regularizer_loss", "query_regularizer_loss", "lambda_query",
                "lambda_corpus", "query_active_dims", "corpus_active_dims", "lr", "grad_norm"):
        assert key in train[0], key
    assert train[0]["lambda_query"] < train[-1]["lambda_query"] == pytest.approx(1e-3)
    assert [r for r in records if r["kind"] == "eval"][0]["ndcg@10"] == 0.5
    assert [p.name for p in list_checkpoints(trainer.output_dir)] == ["checkpoint-3"]


def test_config_errors_are_clear(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {name_or_path: x}\ndata: {path: y}\noutput_dir: o\noptim: {batch_size: 1, learning_rate: -1}\n")
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert "optim.batch_size" in str(err.value) and "optim.learning_rate" in str(err.value)
    with pytest.raises(ConfigError, match="mini_batch_size"):
        parse_config({"model": {"name_or_path": "x"}, "data": {"path": "y"}, "output_dir": "o",
                      "optim": {"batch_size": 4}, "loss": {"mini_batch_size": 8}})


@pytest.mark.parametrize("name", ["cpu-small", "nq-distilbert-gpu", "gooaq-distilbert-gpu"])
def test_bundled_configs_validate(name: str) -> None:
    config = load_config(bundled_config(name), data_root="/data")
    if name == "cpu-small":
        assert config.resolve_path(config.data.path) == Path("/data/train/scifact-train.jsonl")
    if name == "nq-distilbert-gpu":
        assert (config.optim.batch_size, config.loss.mini_batch_size, config.optim.precision) == (512, 32, "bf16")


def test_saved_model_loads_in_sentence_transformers(tmp_path: Path, tiny_model_factory) -> None:
    st = pytest.importorskip("sentence_transformers.sparse_encoder")
    from trainer.encoder import SpladeEncoder
    from trainer.model import SpladeModel

    config = _config(tmp_path, "st", max_steps=2)
    final = Trainer(tiny_model_factory(), _examples(), config).train()
    ours = SpladeEncoder(SpladeModel.from_pretrained(final), device="cpu").encode_documents(TEXTS)
    reference = st.SparseEncoder(str(final), device="cpu").encode_document(TEXTS, convert_to_tensor=True)
    dense = reference.to_dense().numpy() if reference.is_sparse else reference.numpy()
    for row, vector in enumerate(ours):
        assert abs(vector.to_dense(dense.shape[1]) - dense[row]).max() < 1e-4


def test_run_training_from_config_with_builtin_eval(tmp_path: Path, tiny_model_factory) -> None:
    from trainer.training import run_training

    base = tiny_model_factory().save(tmp_path / "base")
    data = tmp_path / "data"
    (data / "beir" / "qrels").mkdir(parents=True)
    (data / "train.jsonl").write_text("\n".join(json.dumps({"query": q, "positive": p}) for q, p, _ in _examples(24).rows) + "\n")
    (data / "beir" / "corpus.jsonl").write_text("\n".join(json.dumps({"_id": f"d{i}", "title": "", "text": t}) for i, t in enumerate(TEXTS)) + "\n")
    (data / "beir" / "queries.jsonl").write_text("\n".join(json.dumps({"_id": f"q{i}", "text": TEXTS[i]}) for i in range(0, 12, 2)) + "\n")
    (data / "beir" / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i + 1}\t1\n" for i in range(0, 12, 2)))
    config = parse_config({
        "model": {"name_or_path": str(base), "max_seq_length": 24},
        "data": {"path": "train.jsonl"},
        "output_dir": str(tmp_path / "out"),
        "optim": {"batch_size": 4, "max_steps": 3, "device": "cpu"},
        "eval": {"beir_dir": "beir", "extra_documents": 2},
        "run": {"logging_steps": 1, "eval_at_start": True, "save_steps": 2},
    }, data_root=data)
    final = run_training(config)
    assert (final / "config_sentence_transformers.json").is_file()
    assert (tmp_path / "out" / "training_config.json").is_file()
    evals = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines() if '"eval"' in line]
    assert [e["step"] for e in evals] == [0, 3] and all(0.0 <= e["ndcg@10"] <= 1.0 for e in evals)
    assert [p.name for p in list_checkpoints(tmp_path / "out")] == ["checkpoint-2"]
