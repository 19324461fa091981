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

    def encode(self, vector: SparseVector) -> dict[str, float]:
        """Vector -> {feature name: weight} (weights as Python floats)."""
        return {self.name(int(i)): float(v) for i, v in zip(vector.indices, vector.values)}

    def decode(self, features: dict[str, float]) -> SparseVector:
        """{feature name: weight} -> vector (dimension = vocabulary size when known)."""
        dim = len(self.vocabulary) if self.vocabulary is not None else None
        return SparseVector.from_pairs(((self.token_id(n), float(w)) for n, w in features.items()), dim)
