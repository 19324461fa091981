"""Hugging Face dataset loading and the built-in nDCG@10 evaluator."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from trainer.training.data import DataError, load_hf_examples
from trainer.training.evaluate import load_beir_split, ndcg_at_k


def test_hf_dataset_from_local_folder(tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    folder = tmp_path / "ds"
    folder.mkdir()
    rows = [{"question": f"q{i}", "answer": f"a{i}", "hard": f"n{i}"} for i in range(6)]
    (folder / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    examples = load_hf_examples(str(folder))
    assert examples.columns == ("question", "answer", "hard") and examples[2] == ("q2", "a2", "n2")
    pairs = load_hf_examples(str(folder), query="question", positive="answer", limit=3)
    assert pairs.columns == ("question", "answer") and len(pairs) == 3
    with pytest.raises(DataError, match="no column"):
        load_hf_examples(str(folder), query="nope", positive="answer")


def test_ndcg_at_10() -> None:
    assert ndcg_at_k(["a", "b"], {"a"}) == 1.0
    assert ndcg_at_k(["x", "a"], {"a"}) == pytest.approx(1 / math.log2(3))
    assert ndcg_at_k(["x", "a", "b"], {"a", "b"}) == pytest.approx((1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3)))
    assert ndcg_at_k([], {"a"}) == 0.0


def test_beir_slice_keeps_relevant_documents(data_root: Path) -> None:
    split = load_beir_split(data_root / "beir" / "scifact", "test", max_queries=20, extra_documents=50, seed=0)
    relevant = set().union(*split.qrels.values())
    assert len(split.queries) == 20 and relevant <= set(split.corpus)
    assert len(split.corpus) == len(relevant) + 50
