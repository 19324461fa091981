"""The encoder's contract: valid vectors, options, input rules, order, streaming."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import pytest

from trainer.encoder import EncodeOptions, EncodingInputError, SpladeEncoder

TEXTS = [
    "who is cornelius in the book of acts",
    "SPLADE expands documents with related vocabulary terms.",
    "a much longer text " * 40,
    "short",
]


def test_vectors_are_sorted_unique_finite_positive(encoder: SpladeEncoder) -> None:
    for vector in encoder.encode_documents(TEXTS):
        assert vector.nnz > 0
        assert np.all(np.diff(vector.indices) > 0)
        assert np.all(np.isfinite(vector.values)) and np.all(vector.values > 0)
        assert vector.dim == encoder.model.vocab_size


def test_trained_model_ranks_the_relevant_document_first(encoder: SpladeEncoder) -> None:
    query = encoder.encode_queries(["who is cornelius in the book of acts"])[0]
    docs = encoder.encode_documents([
        "Cornelius was a Roman centurion whose conversion is told in the Book of Acts.",
        "The stock market fell sharply on Tuesday amid inflation fears.",
        "Photosynthesis converts light energy into chemical energy in plants.",
    ])
    scores = [query.dot(d) for d in docs]
    assert scores[0] > 2 * max(scores[1:])
    tokens = encoder.model.id_to_token()
    top_terms = list(query.to_token_weights(tokens))[:8]
    assert "cornelius" in top_terms


def test_batch_order_and_batch_size_do_not_change_results(encoder: SpladeEncoder) -> None:
    together = encoder.encode_documents(TEXTS, batch_size=3)
    alone = [encoder.encode_documents([t], batch_size=1)[0] for t in TEXTS]
    for a, b in zip(together, alone):
        assert np.array_equal(a.indices, b.indices)
        np.testing.assert_allclose(a.values, b.values, rtol=1e-4, atol=1e-5)


def test_top_k_and_min_weight(encoder: SpladeEncoder) -> None:
    full = encoder.encode_documents(TEXTS[:2])
    top = encoder.encode_documents(TEXTS[:2], top_k=5)
    for f, t in zip(full, top):
        assert t.nnz == 5
        assert set(t.indices) <= set(f.indices)
        assert t.values.min() >= np.sort(f.values)[-5]
    pruned = encoder.encode_documents(TEXTS[:1], min_weight=0.5)[0]
    assert pruned.values.min() > 0.5
    assert set(pruned.indices) == set(full[0].indices[full[0].values > 0.5])


@pytest.mark.parametrize(("bad", "problem"), [(None, "None"), (42, "expected str, got int"), (b"bytes", "got bytes")])
def test_non_text_inputs_name_their_position(encoder: SpladeEncoder, bad: object, problem: str) -> None:
    with pytest.raises(EncodingInputError, match=problem) as info:
        encoder.encode_documents(["fine", bad])  # type: ignore[list-item]  # the wrong type is the point
    assert info.value.position == 1


def test_empty_text_gives_an_empty_vector_or_an_error(encoder: SpladeEncoder) -> None:
    vectors = encoder.encode_documents(["real text", "", "   \n\t"])
    assert vectors[0].nnz > 0 and vectors[1].nnz == 0 and vectors[2].nnz == 0
    assert encoder.stats.empty == [1, 2]
    with pytest.raises(EncodingInputError, match="input #1: text is empty"):
        encoder.encode_documents(["real text", " "], empty_text="error")


def test_a_single_string_is_refused(encoder: SpladeEncoder) -> None:
    with pytest.raises(TypeError, match="iterable of texts"):
        encoder.encode_documents("not a list")


def test_truncation_is_reported(encoder: SpladeEncoder, caplog: pytest.LogCaptureFixture) -> None:
    long_text = " ".join(["word"] * 2000)
    with caplog.at_level("WARNING"):
        vectors = encoder.encode_documents(["short text", long_text, long_text], max_length=64)
    assert encoder.stats.truncated == [1, 2]
    assert "2 of 3 documents were longer than 64 tokens" in caplog.text
    assert vectors[1] == vectors[2]


def test_max_length_keeps_only_the_first_tokens(encoder: SpladeEncoder) -> None:
    text = "alpha " * 100 + "cornelius was a centurion in the book of acts"
    full = encoder.encode_documents([text])[0]
    cut = encoder.encode_documents([text], max_length=32)[0]
    prefix = encoder.encode_documents(["alpha " * 30])[0]  # [CLS] + 30 tokens + [SEP] = 32
    assert cut.indices.tolist() == prefix.indices.tolist()
    np.testing.assert_allclose(cut.values, prefix.values, rtol=1e-4, atol=1e-5)
    assert full != cut


def test_streaming_consumes_input_lazily_in_windows(encoder: SpladeEncoder) -> None:
    consumed = 0

    def generate() -> Iterator[str]:
        nonlocal consumed
        for i in itertools.count():
            consumed += 1
            yield f"document number {i} about topic {i % 7}"

    stream = encoder.iter_encode(generate(), role="document", window=8, batch_size=4)
    first = list(itertools.islice(stream, 10))
    assert len(first) == 10
    assert consumed <= 16  # two windows, never the whole (infinite) input
    expected = encoder.encode_documents([f"document number {i} about topic {i % 7}" for i in range(10)])
    assert all(a == b or np.allclose(a.values, b.values, rtol=1e-4) for a, b in zip(first, expected))


def test_invalid_options_are_rejected(encoder: SpladeEncoder) -> None:
    with pytest.raises(ValueError):
        EncodeOptions(batch_size=0)
    with pytest.raises(ValueError):
        encoder.encode_documents(["x"], top_k=0)
