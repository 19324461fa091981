"""The encoder contract: what the library calls on a SPLADE encoder, as typed protocols.

`trainer.encoder.SpladeEncoder` fulfils all of it. Each caller asks only for the part it uses, so a
custom encoder (a cache, a remote service, a test double) implements just that part:

- `DocumentEncoder`: `encode_documents(texts, **overrides)`; what ingestion needs.
- `QueryEncoder`: `encode_queries(texts, **overrides)` and `model` (its vocabulary: `vocab_size`,
  `id_to_token()`); what search needs (`explain` decodes term ids with the vocabulary).
- `IdentifiedEncoder`: `identity()`, the `EncoderIdentity` the core computes (weights fingerprint,
  tokenizer, pooling, precision, document options). Whatever compares vectors across runs needs
  it: skip-unchanged, checkpoints, delete-missing (`require_identity` refuses an encoder without one).
- `SparseEncoder`: all of the above plus the streaming form `iter_encode`.

`EncodingIdentity` is what a stored document's vector is made from: the encoder's identity plus the
title rule. Ingestion checkpoints, content hashes and the collection's own record
(`splade_connectors.stored_encoding`) all use it.

A sentence-transformers `SparseEncoder` object goes wherever an encoder goes: the entry points (ingest,
search, evaluation) wrap it with `as_encoder` into `trainer.st_encoder.SentenceTransformersEncoder`,
which fulfils the whole contract (identity included) without this module importing sentence-transformers.

Per-call `overrides` are `EncodeOptions` fields (`top_k=...`, `max_length=...`); an unknown one is a
`ConfigError`. `stats` (`EncodeStats` of the last call) is part of `SparseEncoder`; ingestion reads
it for its truncation and chunking counts when a `DocumentEncoder` has it.
"""

from __future__ import annotations

import json
import sys
import weakref
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, runtime_checkable

from splade_connectors.errors import ConfigError
from trainer.identity import EncoderIdentity
from trainer.sparse import SparseVector

if TYPE_CHECKING:
    from sentence_transformers import SparseEncoder as SentenceTransformersModel

    from trainer.encoder import EncodeStats

__all__ = [
    "DocumentEncoder",
    "EncoderIdentity",
    "EncodingIdentity",
    "IdentifiedEncoder",
    "QueryEncoder",
    "SparseEncoder",
    "Vocabulary",
    "as_encoder",
    "require_identity",
]


class Vocabulary(Protocol):
    """The vocabulary a sparse vector's indices refer to (a `SpladeModel` is one)."""

    @property
    def vocab_size(self) -> int: ...

    def id_to_token(self) -> list[str]: ...


@runtime_checkable
class DocumentEncoder(Protocol):
    """Encodes documents into sparse vectors, one per text, in input order."""

    def encode_documents(self, texts: Iterable[str], **overrides: object) -> list[SparseVector]: ...


@runtime_checkable
class QueryEncoder(Protocol):
    """Encodes queries into sparse vectors and tells which vocabulary their indices refer to."""

    @property
    def model(self) -> Vocabulary: ...

    def encode_queries(self, texts: Iterable[str], **overrides: object) -> list[SparseVector]: ...


@runtime_checkable
class IdentifiedEncoder(Protocol):
    """Knows what its document vectors are made from: equal identities give equal vectors."""

    def identity(self) -> EncoderIdentity: ...


@runtime_checkable
class SparseEncoder(DocumentEncoder, QueryEncoder, IdentifiedEncoder, Protocol):
    """The whole contract (`SpladeEncoder`): queries, documents, streaming, vocabulary, identity, stats."""

    @property
    def stats(self) -> EncodeStats:
        """What happened in the last call (texts, truncated and chunked positions)."""
        ...

    def iter_encode(
        self, texts: Iterable[str], *, role: Literal["query", "document"] = "document", **overrides: object
    ) -> Iterator[SparseVector]: ...


class EncodingIdentity(EncoderIdentity):
    """Everything that decides a stored document's vector besides its text: the encoder's identity, the title rule,
    and whether documents are stored as passages (one point per window, `splade_connectors.passages`)."""

    with_title: bool = True
    passages: bool = False

    @classmethod
    def of(cls, encoder_identity: EncoderIdentity, *, with_title: bool, passages: bool = False) -> EncodingIdentity:
        fields = {name: getattr(encoder_identity, name) for name in EncoderIdentity.model_fields}
        return cls(**fields, with_title=with_title, passages=passages)

    def key(self) -> str:
        """As `EncoderIdentity.key`; `passages` enters only when set, so documents written before it keep their hashes."""
        return json.dumps(self.model_dump(exclude=set() if self.passages else {"passages"}), sort_keys=True)


def require_identity(encoder: object, needed_by: str) -> EncoderIdentity:
    """`encoder.identity()`; a one-line `ConfigError` naming `needed_by` (what wanted it) when the encoder has none."""
    if not isinstance(encoder, IdentifiedEncoder):
        raise ConfigError(
            f"cannot use {needed_by} with {type(encoder).__qualname__}: it has no identity() (what its vectors "
            "are made from); use a SpladeEncoder or implement identity()"
        )
    identity = encoder.identity()
    if not isinstance(identity, EncoderIdentity):
        raise ConfigError(
            f"{type(encoder).__qualname__}.identity() returned {type(identity).__name__}, not a trainer.identity.EncoderIdentity"
        )
    return identity


_Encoder = TypeVar("_Encoder")
_WRAPPED: weakref.WeakKeyDictionary[object, Any] = weakref.WeakKeyDictionary()


def as_encoder(encoder: _Encoder | SentenceTransformersModel) -> _Encoder:
    """`encoder` itself, or a sentence-transformers `SparseEncoder` wrapped as a full `SparseEncoder` of this library."""
    module = sys.modules.get("sentence_transformers")  # an object of it exists only once it is imported
    model_class = getattr(module, "SparseEncoder", None)
    if isinstance(model_class, type) and isinstance(encoder, model_class):
        wrapped = _WRAPPED.get(encoder)
        if wrapped is None:  # one wrapper per model object: repeated search() calls do not re-read its tokenizer
            from trainer.st_encoder import SentenceTransformersEncoder

            wrapped = _WRAPPED[encoder] = SentenceTransformersEncoder(encoder)  # type: ignore[arg-type]  # checked above
        return wrapped  # type: ignore[return-value]  # a SentenceTransformersEncoder fulfils every protocol
    return encoder  # type: ignore[return-value]  # not a sentence-transformers model, so one of the protocols
