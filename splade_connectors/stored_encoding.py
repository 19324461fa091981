"""The encoding a collection/index was written with, recorded in the store's own metadata, and the checks on it.

Vectors of two encoders do not mix: a dot product between a query of one model and documents of
another (or documents of one model cut at another length or top-k) ranks unrelated documents with
no error. So every collection records, in its own metadata (`SparseStore.record_encoding`: Qdrant
collection metadata, a file in the embedded engine's folder, the OpenSearch mapping's `_meta`), the
`EncodingIdentity` of the vectors written into it plus a digest of the vocabulary:

- `claim_for_ingest`: before an ingestion writes anything. A collection without a record (new, or
  written before records existed) gets this run's; one with the same document identity is accepted;
  another one is refused with one `EncodingMismatchError` line (the way out: re-encode everything,
  `reencode=True` / `--reencode`, which drops the collection and ingests the input into a new one,
  or another collection). The precision (`dtype`) is recorded but not compared: fp32, bf16 and the
  int8 routes give vectors of negligible difference, and `auto` picks per machine.
- `check_query_encoder`: before a search encodes its queries. Only the model fingerprint (the
  document side of the model: weights, tokenizer, pooling; an inference-free query side is not part
  of it) and the vocabulary are compared: query options (pruning, top-k, length) never change a
  stored vector. A mismatch is refused, or logged as a WARNING with `allow_mismatch`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, ValidationError

from splade_connectors.encoding import EncodingIdentity, IdentifiedEncoder
from splade_connectors.errors import ConfigMismatchError, EncodingMismatchError
from splade_connectors.retry import RetryPolicy
from splade_connectors.store import SparseStore

logger = logging.getLogger(__name__)

__all__ = [
    "StoredEncoding",
    "check_query_encoder",
    "claim_for_ingest",
    "encoder_vocabulary",
    "encoding_record",
    "stored_encoding",
    "vocabulary_digest",
]

RECORD_VERSION: Final = 1
NOT_COMPARED: Final = ("dtype",)  # recorded, not compared: precision routes of negligible quality difference
_SHOWN_HEX = 12


class StoredEncoding(BaseModel):
    """The record a collection holds: the encoding identity of its vectors and its vocabulary's digest."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    version: int = RECORD_VERSION
    encoding: EncodingIdentity
    vocabulary: str | None = None


def vocabulary_digest(tokens: Sequence[str]) -> str:
    """`SIZE:HEX` digest of a vocabulary (id -> token), as the OpenSearch feature naming records it too."""
    return f"{len(tokens)}:{hashlib.sha256(chr(10).join(tokens).encode('utf-8')).hexdigest()[:16]}"


def encoder_vocabulary(encoder: object) -> list[str] | None:
    """The vocabulary of an encoder that has one (`encoder.model.id_to_token()`), else None."""
    model = getattr(encoder, "model", None)
    id_to_token = getattr(model, "id_to_token", None)
    return list(id_to_token()) if callable(id_to_token) else None


def encoding_record(identity: EncodingIdentity, vocabulary: Sequence[str] | None) -> dict[str, Any]:
    """The JSON record of `identity` (and the vocabulary's digest) a store keeps in its metadata."""
    digest = vocabulary_digest(vocabulary) if vocabulary is not None else None
    return StoredEncoding(encoding=identity, vocabulary=digest).model_dump(mode="json")


def stored_encoding(store: SparseStore, retry: RetryPolicy | None = None) -> StoredEncoding | None:
    """The record `store` holds, None for a collection written before records existed (or by another tool)."""
    if retry is None:
        record = store.recorded_encoding()
    else:
        record = retry.call(store.recorded_encoding, what=f"read of {store.describe()}'s metadata")
    if record is None:
        return None
    try:
        return StoredEncoding.model_validate(record)
    except ValidationError:
        raise ConfigMismatchError(
            f"{store.describe()} holds an encoding record this version cannot read ({str(record)[:200]}); "
            "ingest into a new collection/index"
        ) from None


def _short(field: str, value: object) -> str:
    if field == "model" and isinstance(value, str):
        architecture, _, digest = value.partition(":")
        return f"{architecture}:{digest[:_SHOWN_HEX]}" if digest else value
    return str(value)


def _brief(identity: EncodingIdentity, fields: Sequence[str], vocabulary: str | None) -> str:
    values = identity.model_dump()
    parts = [f"{f}={_short(f, values[f])}" for f in fields if f in values]
    if "vocabulary" in fields:
        parts.append(f"vocabulary={vocabulary}")
    return " ".join(parts)


def document_differences(stored: StoredEncoding, identity: EncodingIdentity, vocabulary: str | None) -> list[str]:
    """Fields whose difference would mix encodings in one collection (`NOT_COMPARED` left out)."""
    changed = [f for f in stored.encoding.differences(identity) if f not in NOT_COMPARED]
    if stored.vocabulary is not None and vocabulary is not None and stored.vocabulary != vocabulary:
        changed.append("vocabulary")
    return changed


def claim_for_ingest(
    store: SparseStore,
    identity: EncodingIdentity | None,
    vocabulary: Sequence[str] | None,
    *,
    reencode: bool = False,
    retry: RetryPolicy | None = None,
    before_drop: Callable[[], None] | None = None,
) -> bool:
    """Make `store` a collection of `identity` before anything is written; True when it was dropped and re-created.

    No record: this run's is recorded. The same document identity: accepted. Another one: with
    `reencode` the collection is dropped and created again (empty) with this run's record, else
    `EncodingMismatchError`. `before_drop` (a callable) may refuse the drop first. An encoder without
    `identity()` is checked by its vocabulary only and records nothing.
    """
    stored = stored_encoding(store, retry)
    digest = vocabulary_digest(vocabulary) if vocabulary is not None else None
    if identity is None:
        if stored is not None and stored.vocabulary is not None and digest is not None and stored.vocabulary != digest:
            raise EncodingMismatchError(
                f"{store.describe()} was written with another vocabulary ({stored.vocabulary}, this encoder {digest}); "
                "ingest into a new collection/index"
            )
        logger.info("%s: the encoder has no identity(); its encoding is neither checked nor recorded", store.describe())
        return False
    record = encoding_record(identity, vocabulary)
    if stored is None:
        logger.info("%s: recording the encoding of its vectors (model %s)", store.describe(), _short("model", identity.model))
        store.record_encoding(record)
        return False
    changed = document_differences(stored, identity, digest)
    if not changed:
        return False
    ours = _brief(identity, changed, digest)
    theirs = _brief(stored.encoding, changed, stored.vocabulary)
    if not reencode:
        raise EncodingMismatchError(
            f"{store.describe()} holds vectors of another encoding (stored: {theirs}; this run: {ours}): adding these would "
            "mix encodings and make scores meaningless; re-encode the whole collection from the source with "
            "reencode=True (--reencode: drops it, then ingests this input), or ingest into a new collection/index"
        )
    if before_drop is not None:
        before_drop()
    logger.warning("%s holds vectors of another encoding (%s); dropping it to re-encode (%s)", store.describe(), theirs, ours)
    store.drop()
    store.close()
    store.open(create=True)
    store.record_encoding(record)
    return True


def check_query_encoder(
    store: SparseStore, encoder: object, *, allow_mismatch: bool = False, retry: RetryPolicy | None = None
) -> str | None:
    """Refuse (`EncodingMismatchError`) a query encoder of another model than the one that wrote `store`.

    With `allow_mismatch` the mismatch is logged as a WARNING and returned (the message), not raised.
    Returns None when the models match, the collection has no record, or nothing can be compared.
    """
    stored = stored_encoding(store, retry)
    if stored is None:
        logger.debug("%s has no encoding record: the query encoder is not checked", store.describe())
        return None
    changed: list[str] = []
    ours: list[str] = []
    theirs: list[str] = []
    if isinstance(encoder, IdentifiedEncoder):
        model = encoder.identity().model
        if model != stored.encoding.model:
            changed.append("model")
            ours.append(f"model={_short('model', model)}")
            theirs.append(f"model={_short('model', stored.encoding.model)}")
    # an equal model fingerprint covers the tokenizer, so the vocabulary (~15 ms to rebuild and hash, on every
    # search) is compared only when the encoder has no identity or its model already differs
    same_model = isinstance(encoder, IdentifiedEncoder) and not changed
    vocabulary = None if same_model else encoder_vocabulary(encoder)
    digest = vocabulary_digest(vocabulary) if vocabulary is not None else None
    if stored.vocabulary is not None and digest is not None and stored.vocabulary != digest:
        changed.append("vocabulary")
        ours.append(f"vocabulary={digest}")
        theirs.append(f"vocabulary={stored.vocabulary}")
    if not changed:
        return None
    message = (
        f"{store.describe()} was written by another model ({' '.join(theirs)}) than the query encoder "
        f"({' '.join(ours)}): its scores would rank unrelated documents"
    )
    if allow_mismatch:
        logger.warning("%s; searching anyway (allow_model_mismatch)", message)
        return message
    raise EncodingMismatchError(
        f"{message}; search with the model that wrote it (--model), or pass allow_model_mismatch=True "
        "(--allow-model-mismatch) to search anyway"
    )

