"""SparseVector invariants and conversions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from trainer.sparse import SparseVector, SparseVectorError, from_csr, from_torch, to_csr, to_torch_sparse


def test_valid_vector_is_immutable_and_typed() -> None:
    v = SparseVector(np.array([3, 7, 10]), np.array([0.5, 1.25, 2.0]), dim=20)
    assert v.indices.dtype == np.int64 and v.values.dtype == np.float32
    assert v.nnz == 3
    with pytest.raises(ValueError):
        v.indices[0] = 5


@pytest.mark.parametrize(
    ("indices", "values", "message"),
    [
        ([1, 1], [0.5, 0.5], "sorted and unique"),
        ([2, 1], [0.5, 0.5], "sorted and unique"),
        ([-1, 2], [0.5, 0.5], "negative index"),
        ([1, 2], [0.5, math.nan], "finite"),
        ([1, 2], [0.5, math.inf], "finite"),
        ([1, 2], [0.5, -0.1], "> 0"),
        ([1, 2], [0.5, 0.0], "> 0"),
        ([1, 2], [0.5], "differ in length"),
    ],
)
def test_invalid_vectors_are_rejected(indices: list[int], values: list[float], message: str) -> None:
    with pytest.raises(SparseVectorError, match=message):
        SparseVector(np.array(indices), np.array(values))


def test_index_out_of_declared_dim_is_rejected() -> None:
    with pytest.raises(SparseVectorError, match="out of range"):
        SparseVector(np.array([5]), np.array([1.0]), dim=5)


def test_from_pairs_sorts_and_rejects_duplicates() -> None:
    v = SparseVector.from_pairs({9: 1.0, 2: 3.0, 5: 2.0})
    assert v.indices.tolist() == [2, 5, 9]
    assert v.values.tolist() == [3.0, 2.0, 1.0]
    with pytest.raises(SparseVectorError, match="duplicate index 4"):
        SparseVector.from_pairs([(4, 1.0), (4, 2.0)])


def test_token_weight_round_trip() -> None:
    vocab = {"[PAD]": 0, "cat": 1, "u.s.": 2, "##ing": 3}
    id_to_token = ["[PAD]", "cat", "u.s.", "##ing"]
    v = SparseVector.from_token_weights({"u.s.": 1.5, "cat": 0.25}, vocab)
    assert v.to_token_weights(id_to_token) == {"u.s.": 1.5, "cat": 0.25}
    assert list(v.to_token_weights(id_to_token)) == ["u.s.", "cat"]  # highest weight first
    with pytest.raises(SparseVectorError, match="not in the vocabulary"):
        SparseVector.from_token_weights({"dog": 1.0}, vocab)


def test_dot_overlap_topk_prune() -> None:
    a = SparseVector.from_pairs({1: 1.0, 3: 2.0, 8: 4.0})
    b = SparseVector.from_pairs({3: 0.5, 8: 0.25, 9: 7.0})
    assert a.dot(b) == pytest.approx(2.0 * 0.5 + 4.0 * 0.25)
    assert a.overlap(b) == [(3, 2.0, 0.5), (8, 4.0, 0.25)]  # equal contributions: lower index first
    c = SparseVector.from_pairs({3: 0.1, 8: 1.0})
    assert [i for i, _, _ in a.overlap(c)] == [8, 3]  # largest contribution first
    top = a.top_k(2)
    assert top.indices.tolist() == [3, 8]
    assert a.prune(1.5).indices.tolist() == [3, 8]
    assert SparseVector.empty().dot(a) == 0.0


def test_batch_conversions_round_trip() -> None:
    vectors = [
        SparseVector.from_pairs({0: 1.0, 7: 2.5}, dim=10),
        SparseVector.empty(dim=10),
        SparseVector.from_pairs({9: 0.125}, dim=10),
    ]
    csr = to_csr(vectors)
    assert csr.shape == (3, 10)
    assert from_csr(csr) == vectors
    coo = to_torch_sparse(vectors)
    assert coo.shape == (3, 10)
    assert from_torch(coo) == vectors
    assert from_torch(coo.to_dense()) == vectors
    dense = torch.tensor([[0.0, -1.0, 2.0]])
    assert from_torch(dense)[0].indices.tolist() == [2]


def test_from_dense_and_to_dense() -> None:
    v = SparseVector.from_dense([0.0, 0.3, 0.0, 1.2], min_weight=0.5)
    assert v.indices.tolist() == [3]
    np.testing.assert_allclose(v.to_dense(), [0, 0, 0, 1.2], rtol=1e-6)


def test_vector_copies_the_callers_arrays() -> None:
    """The vector copies its input: mutating the caller's arrays afterwards cannot unsort it or make it negative."""
    indices = np.array([2, 5, 9])
    values = np.array([0.5, 1.0, 2.0], dtype=np.float32)
    v = SparseVector(indices, values, dim=10)
    indices[0], indices[2] = 9, 2
    values[1] = -3.0
    assert v.indices.tolist() == [2, 5, 9] and v.values.tolist() == [0.5, 1.0, 2.0]
    assert not np.shares_memory(v.indices, indices) and not np.shares_memory(v.values, values)


@pytest.mark.parametrize(
    ("indices", "values", "message"),
    [
        ([1.7, 2.2], [0.5, 0.5], "indices must be integers, got 1.7"),
        (np.array([1.0, 2.5]), [0.5, 0.5], "indices must be integers, got 2.5"),
        ([1.0, math.nan], [0.5, 0.5], "indices must be integers"),
        (["1", "2"], [0.5, 0.5], "indices must be numbers, got strings"),
        ([1, "2"], [0.5, 0.5], "indices must be numbers, got strings"),
        ([True, False], [0.5, 0.5], "indices must be numbers, got booleans"),
        ([1, 2], ["0.5", "0.5"], "values must be numbers, got strings"),
    ],
)
def test_indices_are_integers_and_values_numbers(indices: object, values: object, message: str) -> None:
    """Fractional or NaN indices are refused, not truncated; strings and booleans are refused, not parsed."""
    with pytest.raises(SparseVectorError, match=message):
        SparseVector(indices, values)


def test_whole_float_indices_are_accepted() -> None:
    assert SparseVector(np.array([1.0, 4.0]), [0.5, 0.5]).indices.tolist() == [1, 4]


def test_from_pairs_refuses_fractional_and_string_indices() -> None:
    with pytest.raises(SparseVectorError, match="integers"):
        SparseVector.from_pairs([(1.5, 1.0)])  # type: ignore[list-item]  # the wrong type is the point
    with pytest.raises(SparseVectorError, match="strings"):
        SparseVector.from_pairs({"3": 1.0})


def test_batch_dimension_smaller_than_an_index_is_an_error() -> None:
    """`to_csr(..., dim=3)` or `to_torch_sparse` with an index 7 raises instead of building an invalid matrix."""
    vectors = [SparseVector.from_pairs({1: 1.0}), SparseVector.from_pairs({7: 2.0})]
    with pytest.raises(SparseVectorError, match="index 7 out of range for dim 3"):
        to_csr(vectors, dim=3)
    with pytest.raises(SparseVectorError, match="index 7 out of range for dim 3"):
        to_torch_sparse(vectors, dim=3)
    assert to_csr(vectors, dim=8).shape == (2, 8)
