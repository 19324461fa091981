"""The sparse vector: what the encoder produces and every store consumes.

A `SparseVector` holds vocabulary ids (sorted, unique, non-negative) and their weights (finite, > 0).
It is immutable and validated on construction, so an adapter can trust any instance it receives.
Batches convert to and from torch sparse COO tensors and scipy CSR matrices.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from trainer.errors import SpladeError

if TYPE_CHECKING:  # pragma: no cover
    import scipy.sparse
    import torch


class SparseVectorError(SpladeError, ValueError):
    """A sparse vector's indices or values break the type's invariants."""


@dataclass(frozen=True, eq=False)
class SparseVector:
    """Vocabulary ids with positive weights; indices sorted and unique, values finite and > 0."""

    indices: np.ndarray
    values: np.ndarray
    dim: int | None = field(default=None)

    def __post_init__(self) -> None:
        # Copies, never views: a caller mutating its arrays afterwards cannot break the invariants.
        indices = _index_array(self.indices)
        values = _value_array(self.values)
        if self.dim is not None and (isinstance(self.dim, bool) or not isinstance(self.dim, (int, np.integer)) or self.dim < 0):
            raise SparseVectorError(f"dim must be a non-negative integer, got {self.dim!r}")
        if indices.shape != values.shape:
            raise SparseVectorError(
                f"indices and values differ in length ({indices.size} != {values.size})"
            )
        if indices.size:
            if indices[0] < 0:
                raise SparseVectorError(f"negative index {int(indices.min())}")
            if indices.size > 1 and not bool(np.all(indices[1:] > indices[:-1])):
                raise SparseVectorError("indices must be sorted and unique (use SparseVector.from_pairs)")
            if not bool(np.all(np.isfinite(values))):
                raise SparseVectorError("values must be finite (found NaN or inf)")
            if not bool(np.all(values > 0)):
                raise SparseVectorError(f"values must be > 0 (found {float(values.min())})")
            if self.dim is not None and indices[-1] >= self.dim:
                raise SparseVectorError(f"index {int(indices[-1])} out of range for dim {self.dim}")
        indices.setflags(write=False)
        values.setflags(write=False)
        object.__setattr__(self, "indices", indices)
        object.__setattr__(self, "values", values)
        if self.dim is not None:
            object.__setattr__(self, "dim", int(self.dim))

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def empty(cls, dim: int | None = None) -> SparseVector:
        return cls(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32), dim)

    @classmethod
    def from_pairs(
        cls, pairs: Iterable[tuple[int, float]] | Mapping[int, float], dim: int | None = None
    ) -> SparseVector:
        """Build from (index, weight) pairs in any order; duplicate indices are an error."""
        items = list(pairs.items()) if isinstance(pairs, Mapping) else list(pairs)
        if not items:
            return cls.empty(dim)
        idx = _index_array([i for i, _ in items])
        val = _value_array([v for _, v in items])
        order = np.argsort(idx, kind="stable")
        idx, val = idx[order], val[order]
        if idx.size > 1 and bool(np.any(idx[1:] == idx[:-1])):
            dup = int(idx[1:][idx[1:] == idx[:-1]][0])
            raise SparseVectorError(f"duplicate index {dup}")
        return cls(idx, val, dim)

    @classmethod
    def from_dense(cls, dense: Sequence[float] | np.ndarray, min_weight: float = 0.0) -> SparseVector:
        arr = np.asarray(dense, dtype=np.float32).reshape(-1)
        keep = np.flatnonzero(arr > min_weight)
        return cls(keep, arr[keep], arr.size)

    @classmethod
    def from_token_weights(
        cls, weights: Mapping[str, float], vocab: Mapping[str, int], dim: int | None = None
    ) -> SparseVector:
        """Build from a token -> weight dict using a tokenizer vocabulary (token -> id)."""
        pairs = []
        for token, weight in weights.items():
            if token not in vocab:
                raise SparseVectorError(f"token {token!r} is not in the vocabulary")
            pairs.append((vocab[token], weight))
        return cls.from_pairs(pairs, dim if dim is not None else len(vocab))

    # ---- views ----------------------------------------------------------------------------------
    @property
    def nnz(self) -> int:
        return int(self.indices.size)

    def __len__(self) -> int:
        return self.nnz

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SparseVector):
            return NotImplemented
        return bool(
            np.array_equal(self.indices, other.indices) and np.array_equal(self.values, other.values)
        )

    def __repr__(self) -> str:
        head = ", ".join(f"{i}:{v:.3g}" for i, v in zip(self.indices[:5], self.values[:5]))
        more = ", ..." if self.nnz > 5 else ""
        return f"SparseVector(nnz={self.nnz}, {{{head}{more}}})"

    def as_dict(self) -> dict[int, float]:
        return {int(i): float(v) for i, v in zip(self.indices, self.values)}

    def to_token_weights(self, id_to_token: Sequence[str] | Mapping[int, str]) -> dict[str, float]:
        """Decode to token -> weight using a vocabulary (id -> token), highest weight first."""
        order = np.argsort(-self.values, kind="stable")
        return {id_to_token[int(self.indices[k])]: float(self.values[k]) for k in order}

    def to_lists(self) -> tuple[list[int], list[float]]:
        """Plain (indices, values) lists: the shape Qdrant's `SparseVector` takes."""
        return self.indices.tolist(), self.values.tolist()

    def to_dense(self, dim: int | None = None) -> np.ndarray:
        size = dim or self.dim
        if size is None:
            raise SparseVectorError("to_dense needs a dimension")
        out = np.zeros(size, dtype=np.float32)
        out[self.indices] = self.values
        return out

    # ---- algebra --------------------------------------------------------------------------------
    def dot(self, other: SparseVector) -> float:
        common, a, b = np.intersect1d(self.indices, other.indices, assume_unique=True, return_indices=True)
        if common.size == 0:
            return 0.0
        return float(np.dot(self.values[a].astype(np.float64), other.values[b].astype(np.float64)))

    def overlap(self, other: SparseVector) -> list[tuple[int, float, float]]:
        """Shared indices with both weights, largest contribution first (for explaining a hit)."""
        common, a, b = np.intersect1d(self.indices, other.indices, assume_unique=True, return_indices=True)
        contrib = self.values[a] * other.values[b]
        order = np.argsort(-contrib, kind="stable")
        return [(int(common[k]), float(self.values[a[k]]), float(other.values[b[k]])) for k in order]

    def top_k(self, k: int) -> SparseVector:
        """Keep the k largest weights (ties broken by lower index)."""
        if k < 0:
            raise SparseVectorError("k must be >= 0")
        if self.nnz <= k:
            return self
        order = np.lexsort((self.indices, -self.values))[:k]
        order.sort()
        return SparseVector(self.indices[order], self.values[order], self.dim)

    def prune(self, min_weight: float) -> SparseVector:
        keep = self.values > min_weight
        if bool(keep.all()):
            return self
        return SparseVector(self.indices[keep], self.values[keep], self.dim)

    @property
    def l1(self) -> float:
        return float(np.abs(self.values.astype(np.float64)).sum())

    def is_finite(self) -> bool:
        return all(math.isfinite(v) for v in self.values.tolist())


def _index_array(data: Any) -> np.ndarray:
    """A fresh int64 copy of `data`; floats must be whole numbers, and strings or booleans are refused."""
    array = _numeric_array(data, "indices")
    if array.dtype.kind == "f":
        whole = np.isfinite(array) & (array == np.floor(array))
        if not bool(whole.all()):
            raise SparseVectorError(f"indices must be integers, got {float(array[~whole][0])!r}")
    elif array.dtype.kind == "u" and array.size and int(array.max()) > np.iinfo(np.int64).max:
        raise SparseVectorError(f"index {int(array.max())} is too large")
    return np.array(array, dtype=np.int64, copy=True)


def _value_array(data: Any) -> np.ndarray:
    """A fresh float32 copy of `data`; strings and other non-numbers are refused (not parsed)."""
    return np.array(_numeric_array(data, "values"), dtype=np.float32, copy=True)


def _numeric_array(data: Any, what: str) -> np.ndarray:
    """`data` as a flat int or float array, without parsing strings or accepting booleans."""
    array = np.asarray(data)
    if array.dtype == object:
        items = array.reshape(-1).tolist()
        bad = next((x for x in items if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating))), None)
        if bad is not None:
            raise SparseVectorError(f"{what} must be numbers, got {type(bad).__name__} {bad!r}")
        array = np.array(items, dtype=np.int64 if all(isinstance(x, (int, np.integer)) for x in items) else np.float64)
    kind = array.dtype.kind
    if kind not in "iuf" or (kind == "f" and array.dtype.itemsize > 8):
        found = {"U": "strings", "S": "bytes", "b": "booleans"}.get(kind, f"{array.dtype} values")
        raise SparseVectorError(f"{what} must be numbers, got {found}")
    return array.reshape(-1)


# ---- batches ------------------------------------------------------------------------------------
def _batch_dim(vectors: Sequence[SparseVector], dim: int | None) -> int:
    top = max((int(v.indices[-1]) for v in vectors if v.nnz), default=-1)
    if dim is not None:
        if dim < 0:
            raise SparseVectorError(f"dim must be >= 0, got {dim}")
        if top >= dim:
            raise SparseVectorError(f"index {top} out of range for dim {dim}")
        return dim
    dims = {v.dim for v in vectors if v.dim is not None}
    if len(dims) == 1:
        return dims.pop()
    return top + 1

def to_csr(vectors: Sequence[SparseVector], dim: int | None = None) -> scipy.sparse.csr_matrix:
    """Stack vectors into a scipy CSR matrix (rows = vectors)."""
    import scipy.sparse

    width = _batch_dim(vectors, dim)
    indptr = np.zeros(len(vectors) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([v.nnz for v in vectors])
    indices = np.concatenate([v.indices for v in vectors]) if vectors else np.zeros(0, np.int64)
    data = np.concatenate([v.values for v in vectors]) if vectors else np.zeros(0, np.float32)
    return scipy.sparse.csr_matrix((data, indices, indptr), shape=(len(vectors), width))


def from_csr(matrix: Any) -> list[SparseVector]:
    """Split a scipy sparse matrix into row vectors, dropping explicit zeros and negatives."""
    csr = matrix.tocsr()
    csr.sort_indices()
    out = []
    for row in range(csr.shape[0]):
        start, end = csr.indptr[row], csr.indptr[row + 1]
        idx, val = csr.indices[start:end], csr.data[start:end]
        keep = val > 0
        out.append(SparseVector(idx[keep], val[keep], csr.shape[1]))
    return out


def to_torch_sparse(vectors: Sequence[SparseVector], dim: int | None = None) -> torch.Tensor:
    """Stack vectors into a coalesced torch sparse COO tensor of shape (len, dim)."""
    import torch

    width = _batch_dim(vectors, dim)
    rows = np.concatenate([np.full(v.nnz, r, dtype=np.int64) for r, v in enumerate(vectors)] or [np.zeros(0, np.int64)])
    cols = np.concatenate([v.indices for v in vectors] or [np.zeros(0, np.int64)])
    vals = np.concatenate([v.values for v in vectors] or [np.zeros(0, np.float32)])
    index = torch.from_numpy(np.stack([rows, cols]))
    return torch.sparse_coo_tensor(
        index, torch.from_numpy(vals), (len(vectors), width), check_invariants=True
    ).coalesce()


def from_torch(tensor: torch.Tensor) -> list[SparseVector]:
    """Split a 2-D torch tensor (dense or sparse) into row vectors, keeping weights > 0."""
    import torch

    if tensor.dim() != 2:
        raise SparseVectorError(f"expected a 2-D tensor, got shape {tuple(tensor.shape)}")
    width = int(tensor.shape[1])
    if tensor.is_sparse:
        coo = tensor.coalesce()
        idx = coo.indices().cpu().numpy()
        val = coo.values().detach().float().cpu().numpy()
        out = []
        for row in range(int(tensor.shape[0])):
            sel = idx[0] == row
            cols, vals = idx[1][sel], val[sel]
            keep = vals > 0
            order = np.argsort(cols[keep])
            out.append(SparseVector(cols[keep][order], vals[keep][order], width))
        return out
    dense = tensor.detach().to(torch.float32).cpu()
    rows, cols = torch.nonzero(dense > 0, as_tuple=True)
    vals = dense[rows, cols].numpy()
    rows_np, cols_np = rows.numpy(), cols.numpy()
    bounds = np.searchsorted(rows_np, np.arange(int(tensor.shape[0]) + 1))
    return [
        SparseVector(cols_np[bounds[r] : bounds[r + 1]], vals[bounds[r] : bounds[r + 1]], width)
        for r in range(int(tensor.shape[0]))
    ]
