"""Reversible names for SPLADE terms inside a `rank_features` field.

A `rank_feature` query splits its field path at the last dot, so a feature named `u.s.` is indexed
but never found. Names here are the readable vocabulary token with two escapes, `.` -> `%2E` and
`%` -> `%25` (nothing else changes), so `u.s.` becomes `u%2Es%2E` and `##ing` stays `##ing`.
Without a vocabulary, names are token ids (`t1012`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from splade_connectors.errors import ConfigError
from trainer.sparse import SparseVector

_ESCAPES = {".": "%2E", "%": "%25"}
_UNESCAPES = {v: k for k, v in _ESCAPES.items()}
_ESCAPE_RE = re.compile(r"[.%]")
_UNESCAPE_RE = re.compile(r"%(?:2E|25)")


class FeatureNameError(ConfigError):
    """A feature name that this codec did not produce (unknown token or bad escape)."""


def escape_token(token: str) -> str:
    """Token -> feature name without dots (`.` -> `%2E`, `%` -> `%25`)."""
    return _ESCAPE_RE.sub(lambda m: _ESCAPES[m.group(0)], token)


def unescape_name(name: str) -> str:
    """Inverse of `escape_token`."""
    return _UNESCAPE_RE.sub(lambda m: _UNESCAPES[m.group(0)], name)


class FeatureCodec:
    """Token id <-> rank_features name, readable when a vocabulary (id -> token) is given."""

    def __init__(self, vocabulary: Sequence[str] | None = None) -> None:
        self.vocabulary = list(vocabulary) if vocabulary is not None else None
        self._names: list[str] = []
        self._ids: dict[str, int] = {}
        if self.vocabulary is not None:
            self._names = [escape_token(t) if t else f"[{i}]" for i, t in enumerate(self.vocabulary)]
            self._ids = {name: i for i, name in enumerate(self._names)}
            if len(self._ids) != len(self._names):
                raise FeatureNameError("the vocabulary has duplicate tokens; feature names would collide")
        self._name_array = np.array(self._names, dtype=object)

    @property
    def scheme(self) -> str:
        """Identifies the naming scheme and vocabulary (recorded in the index `_meta`)."""
        if self.vocabulary is None:
            return "token-id-v1"
        digest = hashlib.sha256("\n".join(self.vocabulary).encode("utf-8")).hexdigest()[:16]
        return f"token-escape-v1:{len(self.vocabulary)}:{digest}"

    def name(self, token_id: int) -> str:
        if self.vocabulary is None:
            return f"t{token_id}"
        if not 0 <= token_id < len(self._names):
            raise FeatureNameError(f"token id {token_id} is outside the vocabulary (size {len(self._names)})")
        return self._names[token_id]

    def token_id(self, name: str) -> int:
        if self.vocabulary is None:
            if not (name.startswith("t") and name[1:].isdigit()):
                raise FeatureNameError(f"not a token-id feature name: {name!r}")
            return int(name[1:])
        try:
            return self._ids[name]
        except KeyError:
            raise FeatureNameError(f"feature {name!r} is not a vocabulary token") from None

    def names(self, indices: np.ndarray) -> list[str]:
        """Feature names of many token ids at once (what `name` gives one by one)."""
        if self.vocabulary is None:
            return [f"t{i}" for i in indices.tolist()]
        if indices.size and (int(indices[0]) < 0 or int(indices.max()) >= len(self._names)):
            bad = int(indices.max()) if int(indices.max()) >= len(self._names) else int(indices[0])
            raise FeatureNameError(f"token id {bad} is outside the vocabulary (size {len(self._names)})")
        return self._name_array[indices].tolist()  # type: ignore[no-any-return]  # numpy's tolist() returns Any

    def encode(self, vector: SparseVector) -> dict[str, float]:
        """Vector -> {feature name: weight}; weights as short floats that read back to the same float32."""
        return dict(zip(self.names(vector.indices), compact_weights(vector.values)))

    def decode(self, features: dict[str, float]) -> SparseVector:
        """{feature name: weight} -> vector (dimension = vocabulary size when known)."""
        dim = len(self.vocabulary) if self.vocabulary is not None else None
        return SparseVector.from_pairs(((self.token_id(n), float(w)) for n, w in features.items()), dim)


def compact_weights(values: np.ndarray) -> list[float]:
    """float32 weights as Python floats that print short (9 significant digits) and read back exactly.

    `float(np.float32(0.1))` prints as `0.10000000149011612`; 9 significant digits always identify a
    float32, so `0.100000001` reads back to the same float32 with half the JSON. Values whose rounding
    does not read back (far outside SPLADE's range) keep their full form.
    """
    exact = np.asarray(values, dtype=np.float32)
    if exact.size == 0:
        return []
    wide = exact.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        digits = 8 - np.floor(np.log10(wide))
    usable = np.isfinite(digits) & (digits >= 0) & (digits <= 22)  # 10**d is an exact double up to 1e22
    scale = np.power(10.0, np.where(usable, digits, 0.0))
    rounded = np.where(usable, np.round(wide * scale) / scale, wide)
    wrong = rounded.astype(np.float32) != exact
    if bool(wrong.any()):
        rounded[wrong] = wide[wrong]
    return rounded.tolist()  # type: ignore[no-any-return]  # numpy's tolist() returns Any
