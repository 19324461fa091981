"""Hugging Face dataset loading and the built-in evaluator's BEIR slice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer.training.data import DataError, load_hf_examples
from trainer.training.evaluate import load_beir_split


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


def test_beir_slice_keeps_relevant_documents(data_root: Path) -> None:
    split = load_beir_split(data_root / "beir" / "scifact", "test", max_queries=20, extra_documents=50, seed=0)
    relevant = set().union(*split.qrels.values())
    assert len(split.queries) == 20 and relevant <= set(split.corpus)
    assert len(split.corpus) == len(relevant) + 50
    assert all("\n" in split.corpus[d] for d in relevant)  # title + "\n" + text, as ingestion encodes
