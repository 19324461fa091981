"""Our encoder equals sentence-transformers' SparseEncoder on the same checkpoint (CPU, fp32)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch

from trainer.encoder import SpladeEncoder
from trainer.model import SpladeModel

if TYPE_CHECKING:
    from sentence_transformers import SparseEncoder

st = pytest.importorskip("sentence_transformers", reason="sentence-transformers is the test-only reference")

LONG_TEXT = " ".join(f"word{i % 97} research evidence cells" for i in range(500))  # 2,000 words
PARITY_TEXTS = [
    "who is cornelius in the book of acts",
    "Ünïcödé façade naïve café — 北京大学 東京 Москва ☃ 🚀",
    "?!... ;;; --- ***",
    "word",
    LONG_TEXT,
    "The U.S. e.g. i.e. Dr. Smith's 3.14 p.m. results (n=42) were significant.",
]


def _reference(model: SparseEncoder, texts: list[str]) -> torch.Tensor:
    return model.encode_document(texts, convert_to_tensor=True, batch_size=4).to_dense().float()


def _assert_same(ours: list, reference: torch.Tensor) -> None:
    assert len(ours) == reference.shape[0]
    for i, (vector, row) in enumerate(zip(ours, reference)):
        expected = torch.nonzero(row > 0).flatten().numpy()
        assert vector.indices.tolist() == expected.tolist(), f"text #{i}: active index sets differ"
        np.testing.assert_allclose(vector.values, row[expected].numpy(), atol=1e-4, rtol=0, err_msg=f"text #{i}")


@pytest.fixture(scope="module")
def st_model(trained_model_dir: Path) -> SparseEncoder:
    return st.SparseEncoder(str(trained_model_dir), device="cpu")


def test_long_text_is_two_thousand_words() -> None:
    assert len(LONG_TEXT.split()) == 2000


def test_identical_to_sentence_transformers(encoder: SpladeEncoder, st_model: SparseEncoder) -> None:
    _assert_same(encoder.encode_documents(PARITY_TEXTS), _reference(st_model, PARITY_TEXTS))
    assert encoder.stats.truncated == [PARITY_TEXTS.index(LONG_TEXT)]


def test_queries_identical_to_sentence_transformers(encoder: SpladeEncoder, st_model: SparseEncoder) -> None:
    reference = st_model.encode_query(PARITY_TEXTS, convert_to_tensor=True).to_dense().float()
    _assert_same(encoder.encode_queries(PARITY_TEXTS), reference)


def test_identical_on_real_documents(encoder: SpladeEncoder, st_model: SparseEncoder, scifact_slice) -> None:
    texts = [d["text"] for d in scifact_slice.corpus[:40]]
    _assert_same(encoder.encode_documents(texts), _reference(st_model, texts))


def test_saved_model_loads_in_sentence_transformers_with_the_same_vectors(
    splade_model: SpladeModel, encoder: SpladeEncoder, tmp_path: Path
) -> None:
    saved = splade_model.save(tmp_path / "saved")
    reloaded_st = st.SparseEncoder(str(saved), device="cpu")
    assert reloaded_st.max_seq_length == splade_model.max_seq_length
    _assert_same(encoder.encode_documents(PARITY_TEXTS), _reference(reloaded_st, PARITY_TEXTS))
    ours_reloaded = SpladeEncoder(SpladeModel.from_pretrained(saved), device="cpu")
    _assert_same(ours_reloaded.encode_documents(PARITY_TEXTS), _reference(reloaded_st, PARITY_TEXTS))


def test_sentence_transformers_saved_directory_loads_with_same_vectors(
    st_model: SparseEncoder, tmp_path: Path
) -> None:
    st_model.save(str(tmp_path / "st_saved"))
    ours = SpladeEncoder(SpladeModel.from_pretrained(tmp_path / "st_saved"), device="cpu")
    _assert_same(ours.encode_documents(PARITY_TEXTS), _reference(st_model, PARITY_TEXTS))
