"""The rank_features JSON objects of many vectors at once, written with numpy instead of `json.dumps`.

Serialising ~300 weights per document is most of the client's work in a bulk load: `json.dumps` of a
`{name: float}` dict formats each float with Python's shortest-repr algorithm, one by one. Here the
whole batch is written in a few vectorised passes:

- each weight becomes exactly 13 bytes, `MMMMMMMMMe±XX`: a 9-digit integer mantissa and a decimal
  exponent (valid JSON). 9 significant digits identify a float32, so the number reads back (in Python,
  in Java) to the same float32: `_source` keeps the exact weights;
- each feature name's JSON key (`"name":`, escaped once per vocabulary entry) is copied from one
  precomputed byte buffer.

`FeatureJson.objects(vectors)` returns one `{...}` bytes object per vector.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from splade_connectors.opensearch.features import FeatureCodec

NUMBER_BYTES = 13  # 9 mantissa digits, "e", sign, 2 exponent digits


def format_weights(values: np.ndarray) -> np.ndarray:
    """(n, 13) uint8: each positive, normal float32 as `MMMMMMMMMe±XX` (value = M x 10**±XX)."""
    exact = np.asarray(values, dtype=np.float32).astype(np.float64)
    exponent = np.floor(np.log10(exact)).astype(np.int64)
    shift = 8 - exponent  # M = value x 10**shift, 9 digits
    # 10**shift is inexact for some shifts: M may be off by one in its 9th digit, which still reads
    # back to the same float32 (1.5e-8 relative at most, below half a float32 ulp, 3e-8)
    scaled = exact * np.power(10.0, shift.astype(np.float64))
    mantissa = np.rint(scaled).astype(np.int64)
    # log10 rounding or rint can land on 10**9 or just below 10**8: renormalise to 9 digits
    high = mantissa >= 1_000_000_000
    mantissa[high] = np.rint(mantissa[high] / 10.0).astype(np.int64)
    shift[high] -= 1
    low = mantissa < 100_000_000
    mantissa[low] = np.rint(scaled[low] * 10.0).astype(np.int64)
    shift[low] += 1
    power = -shift  # value = mantissa x 10**power
    out = np.empty((exact.size, NUMBER_BYTES), dtype=np.uint8)
    digits = mantissa.copy()
    for column in range(8, -1, -1):
        out[:, column] = 48 + digits % 10
        digits //= 10
    out[:, 9] = ord("e")
    out[:, 10] = np.where(power < 0, ord("-"), ord("+"))
    magnitude = np.abs(power)
    out[:, 11] = 48 + magnitude // 10
    out[:, 12] = 48 + magnitude % 10
    return out


class FeatureJson:
    """Writes rank_features objects for one codec (feature names from its vocabulary or token ids)."""

    def __init__(self, codec: FeatureCodec) -> None:
        self.codec = codec
        self._size = 0
        self._keys = np.zeros(0, dtype=np.uint8)
        self._starts = np.zeros(0, dtype=np.int64)
        self._lengths = np.zeros(0, dtype=np.int64)
        if codec.vocabulary is not None:
            self._build(len(codec.vocabulary))

    def _build(self, size: int) -> None:
        """The `"name":` keys of token ids 0..size-1 in one buffer (grown on demand for token-id names)."""
        keys = [(json.dumps(self.codec.name(i), ensure_ascii=False) + ":").encode() for i in range(size)]
        self._lengths = np.array([len(k) for k in keys], dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(self._lengths)[:-1]]).astype(np.int64)
        self._keys = np.frombuffer(b"".join(keys), dtype=np.uint8)
        self._size = size

    def objects(self, vectors: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[bytes]:
        """`{"name":weight,...}` per (indices, values) pair; ids must be valid for the codec, weights normal > 0."""
        counts = np.array([idx.size for idx, _ in vectors], dtype=np.int64)
        if not counts.sum():
            return [b"{}"] * len(vectors)
        indices = np.concatenate([idx for idx, _ in vectors]).astype(np.int64)
        values = np.concatenate([val for _, val in vectors])
        if self.codec.vocabulary is None and int(indices.max()) >= self._size:
            self._build(max(int(indices.max()) + 1, 2 * self._size, 32768))
        key_lengths = self._lengths[indices]
        piece = key_lengths + NUMBER_BYTES + 1  # key, number, comma
        ends = np.cumsum(piece)
        starts = ends - piece
        out = np.empty(int(ends[-1]), dtype=np.uint8)
        # keys: a variable-length copy, as one gather
        key_total = int(key_lengths.sum())
        key_offsets = np.arange(key_total) - np.repeat(np.cumsum(key_lengths) - key_lengths, key_lengths)
        out[np.repeat(starts, key_lengths) + key_offsets] = self._keys[np.repeat(self._starts[indices], key_lengths) + key_offsets]
        number_at = starts + key_lengths
        out[number_at[:, None] + np.arange(NUMBER_BYTES)] = format_weights(values)
        out[ends - 1] = ord(",")
        buffer = out.tobytes()
        result: list[bytes] = []
        position = 0  # first term of the current vector
        bounds = np.concatenate([[0], ends]).tolist()
        for count in counts.tolist():
            if count == 0:
                result.append(b"{}")
                continue
            first, last = bounds[position], bounds[position + count]
            result.append(b"{" + buffer[first : last - 1] + b"}")
            position += count
        return result
