"""No-duplicates batch sampler: no text twice in a batch, deterministic, resumable."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from trainer.training.data import DataError, load_jsonl_examples
from trainer.training.sampler import NoDuplicatesBatchSampler


def _rows(n: int = 400, seed: int = 0) -> list[tuple[str, str, str]]:
    rng = random.Random(seed)
    passages = [f"passage {i}" for i in range(60)]  # few passages: many clashes, like squad
    return [(f"query {i % 350}", rng.choice(passages), rng.choice(passages)) for i in range(n)]


@pytest.mark.parametrize("batch_size", [2, 8, 16])
def test_no_text_twice_in_a_batch(batch_size: int) -> None:
    rows = _rows()
    sampler = NoDuplicatesBatchSampler(rows, batch_size, seed=3)
    batches = list(sampler)
    assert batches
    for batch in batches:
        assert len(batch) == batch_size
        texts = [t for i in batch for t in rows[i]]
        assert len(texts) == len(set(texts))
    flat = [i for b in batches for i in b]
    assert len(flat) == len(set(flat))  # each row at most once per epoch


def test_rows_with_internal_duplicates_are_skipped() -> None:
    rows = [("a", "a"), ("b", "c"), ("d", "e")]
    batches = NoDuplicatesBatchSampler(rows, 2, seed=0).epoch_batches(0)
    assert all(0 not in b for b in batches)


def test_deterministic_given_seed_and_epoch() -> None:
    rows = _rows()
    a = NoDuplicatesBatchSampler(rows, 8, seed=1)
    b = NoDuplicatesBatchSampler(rows, 8, seed=1)
    assert a.epoch_batches(0) == b.epoch_batches(0)
    assert a.epoch_batches(1) != a.epoch_batches(0)
    assert NoDuplicatesBatchSampler(rows, 8, seed=2).epoch_batches(0) != a.epoch_batches(0)


def test_state_resume_continues_exactly() -> None:
    rows = _rows()
    full = NoDuplicatesBatchSampler(rows, 8, seed=5)
    reference = list(full) + list(full)  # two epochs
    partial = NoDuplicatesBatchSampler(rows, 8, seed=5)
    first = [b for _, b in zip(range(7), partial)]
    restored = NoDuplicatesBatchSampler(rows, 8, seed=5)
    restored.load_state_dict(partial.state_dict())
    assert partial.state_dict() == {"epoch": 0, "position": 7}
    rest = list(restored) + list(restored)
    assert first + rest == reference


def test_jsonl_loader(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps({"q": f"q{i}", "p": f"p{i}"}) for i in range(5)) + "\n")
    examples = load_jsonl_examples(path, query="q", positive="p")
    assert examples.columns == ("q", "p") and len(examples) == 5 and examples[0] == ("q0", "p0")
    with pytest.raises(DataError, match="missing field 'query'"):
        load_jsonl_examples(path)
