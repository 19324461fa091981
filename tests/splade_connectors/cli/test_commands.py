"""`splade-connectors train`: a config file in, a model directory that the encoder loads out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from splade_connectors.cli import main
from trainer.encoder import SpladeEncoder
from trainer.model import SpladeModel

PAIRS = [
    ("who wrote pride and prejudice", "jane austen wrote pride and prejudice"),
    ("what causes tides", "tides are caused by the moon's gravity"),
    ("capital of france", "paris is the capital of france"),
    ("when did rome fall", "the western roman empire fell in 476"),
    ("how do vaccines work", "vaccines train the immune system with an antigen"),
    ("who was cornelius", "cornelius was a centurion in the book of acts"),
]


def test_train_command_runs_a_config_and_saves_a_loadable_model(tmp_path: Path, trained_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps({"query": q, "positive": p}) + "\n" for q, p in PAIRS))
    config = {
        "model": {"name_or_path": str(trained_model_dir), "max_seq_length": 32},
        "data": {"path": "pairs.jsonl"},
        "output_dir": str(tmp_path / "unused"),
        "optim": {"batch_size": 3, "max_steps": 50, "learning_rate": 1e-4, "device": "cpu"},
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    code = main(["train", "--config", str(tmp_path / "config.json"), "--data-root", str(tmp_path),
                 "--output-dir", str(tmp_path / "out"), "--max-steps", "2", "--precision", "bf16"])
    assert code == 0
    saved = Path(capsys.readouterr().out.strip().split("saved model: ", 1)[1])
    assert saved.is_relative_to(tmp_path / "out")
    metrics = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert max(m.get("step", 0) for m in metrics) == 2  # --max-steps overrode the config's 50
    assert json.loads((tmp_path / "out" / "training_config.json").read_text())["optim"]["precision"] == "bf16"
    vectors = SpladeEncoder(SpladeModel.from_pretrained(saved), device="cpu").encode_queries(["who was cornelius"])
    assert vectors[0].nnz > 0


def test_train_command_rejects_an_invalid_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.yaml").write_text("model: {name_or_path: x}\noptim: {batch_size: 1}\n")
    assert main(["train", "--config", str(tmp_path / "bad.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "optim.batch_size" in err[0] and "Traceback" not in err[0]


def test_unreachable_store_is_a_clean_error_not_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["search", "--store", "opensearch", "--opensearch-url", "http://127.0.0.1:9", "-q", "anything"])
    assert code == 2
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert last_line.startswith("error: ") and "Connection refused" in last_line
