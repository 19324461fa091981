"""Long documents: token windows with a stride, encoded and merged by max."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainer.chunking import max_merge, window_overlap, window_starts
from trainer.encoder import SpladeEncoder
from trainer.errors import ConfigError
from trainer.sparse import SparseVector

# 60 text tokens with the shipped uncased tokenizer (each "wordN" is one word piece + one digit piece)
LONG = " ".join(f"cell{i % 10}" for i in range(30))


def _window_vector(encoder: SpladeEncoder, ids: list[int]) -> SparseVector:
    """The SPLADE vector of one window, straight from the model (the definition, no encoder logic)."""
    input_ids = torch.tensor([ids])
    pooled = encoder.model.pooled_logits(input_ids, torch.ones_like(input_ids), token_type_ids=torch.zeros_like(input_ids))
    return SparseVector.from_dense(pooled[0].numpy())


def test_a_document_of_three_windows_gets_the_max_over_its_windows(encoder: SpladeEncoder) -> None:
    text_ids = encoder._backend.encode(LONG, add_special_tokens=False).ids
    assert len(text_ids) == 60
    cls, sep = encoder.model.tokenizer.cls_token_id, encoder.model.tokenizer.sep_token_id
    # windows of 32 tokens = 30 text tokens + [CLS] + [SEP]; stride 25 -> starts 0, 25, 50 (overlap 5)
    assert window_starts(60, 30, 25) == [0, 25, 50]
    windows = [[cls, *text_ids[start : start + 30], sep] for start in (0, 25, 50)]
    expected = max_merge([_window_vector(encoder, w) for w in windows])

    merged = encoder.encode_documents([LONG, "short text"], chunk_tokens=32, chunk_stride=25)
    assert encoder.stats.chunked == [0] and encoder.stats.windows == 4 and encoder.stats.truncated == []
    assert merged[0].indices.tolist() == expected.indices.tolist()
    np.testing.assert_allclose(merged[0].values, expected.values, atol=1e-6)
    # the max really is over windows: every window contributes terms the others lack or weigh less
    per_window = [_window_vector(encoder, w).to_dense(30522) for w in windows]
    winners = np.argmax(np.stack(per_window), axis=0)[merged[0].indices]
    assert set(winners.tolist()) == {0, 1, 2}
    # a text that fits one window is encoded as without chunking (batch padding aside)
    alone = encoder.encode_documents(["short text"])[0]
    assert merged[1].indices.tolist() == alone.indices.tolist()
    np.testing.assert_allclose(merged[1].values, alone.values, atol=1e-5)


def test_truncation_stays_the_default(encoder: SpladeEncoder) -> None:
    vector = encoder.encode_documents([LONG], max_length=32)[0]
    assert encoder.stats.truncated == [0] and encoder.stats.chunked == []
    first = [encoder.model.tokenizer.cls_token_id, *encoder._backend.encode(LONG, add_special_tokens=False).ids[:30],
             encoder.model.tokenizer.sep_token_id]
    np.testing.assert_allclose(vector.values, _window_vector(encoder, first).values, atol=1e-6)


def test_default_stride_means_no_overlap_and_every_token_is_covered() -> None:
    assert window_overlap(32, None, 2) == 0
    assert window_overlap(32, 25, 2) == 5
    assert window_starts(60, 30, 30) == [0, 30]
    assert window_starts(61, 30, 30) == [0, 30, 60]
    assert window_starts(10, 30, 30) == [0]


@pytest.mark.parametrize(("tokens", "stride", "message"), [(32, 31, "between 1 and"), (2, None, "no room")])
def test_bad_window_options_are_clear(tokens: int, stride: int | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        window_overlap(tokens, stride, 2)


def test_window_larger_than_the_model_is_refused(encoder: SpladeEncoder) -> None:
    with pytest.raises(ConfigError, match="exceeds the model's window"):
        encoder.encode_documents([LONG], chunk_tokens=600)
    with pytest.raises(ValueError, match="chunk_stride needs chunk_tokens"):
        encoder.encode_documents([LONG], chunk_stride=10)


def test_max_merge() -> None:
    a = SparseVector.from_pairs({1: 0.5, 4: 2.0}, dim=10)
    b = SparseVector.from_pairs({1: 1.5, 6: 0.2}, dim=10)
    assert max_merge([a, b]).as_dict() == pytest.approx({1: 1.5, 4: 2.0, 6: 0.2})
    assert max_merge([a]) is a
    assert max_merge([], dim=10).nnz == 0
