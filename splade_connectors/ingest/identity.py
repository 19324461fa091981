"""What a stored point was made from: the encoder's identity, the title rule, the content hash.

- `EncodingIdentity` (defined in `splade_connectors.encoding`): the encoder's own `identity()`
  (`trainer.identity.EncoderIdentity`: weights fingerprint, tokenizer, pooling, precision, max length,
  top-k, min weight, pruning, chunk windows) plus whether the title is encoded. Both engines (single
  process, Ray) build it the same way; a checkpoint records it; the content hash includes it; the
  collection records it (`splade_connectors.stored_encoding`). Nothing here looks inside an encoder.
- `run_identity(encoder, config)`: the identity of one ingestion run, or None for an encoder without
  `identity()`: such an encoder still ingests, but a run that compares with earlier runs
  (skip-unchanged, a checkpoint, delete-missing) is refused with one `ConfigError` line, and its
  points carry no content hash (so nothing can ever be skipped as "unchanged" against them).
- `content_hash(doc, identity_key)`: a hash of the encoding identity and the document's payload (id,
  text, title, metadata). Stored in each point's payload: `skip_unchanged` compares it, so an edit
  of any field, or another model or option, makes the document be encoded and written again.
"""

from __future__ import annotations

import hashlib
import json

from splade_connectors.encoding import EncodingIdentity, IdentifiedEncoder, require_identity
from splade_connectors.ingest.config import IngestConfig
from splade_connectors.records import Document

__all__ = ["EncodingIdentity", "content_hash", "encoding_identity", "run_identity", "stored_hash"]


def encoding_identity(encoder: object, *, with_title: bool, passages: bool = False) -> EncodingIdentity:
    """The identity of what `encoder` stores for documents; `ConfigError` when it has no `identity()`."""
    return EncodingIdentity.of(require_identity(encoder, "content hashes"), with_title=with_title, passages=passages)


def run_identity(encoder: object, config: IngestConfig) -> EncodingIdentity | None:
    """The encoding identity of a run; None for an encoder without `identity()`, refused (one `ConfigError`
    line) when the run needs one: skip_unchanged, a checkpoint or delete_missing."""
    needs = [
        name for name, wanted in (
            ("skip_unchanged (--skip-unchanged)", config.skip_unchanged),
            ("a checkpoint (--checkpoint)", config.checkpoint is not None),
            ("delete_missing (--delete-missing)", config.delete_missing),
        ) if wanted
    ]
    if needs:
        return EncodingIdentity.of(
            require_identity(encoder, " and ".join(needs)), with_title=config.with_title, passages=config.passages
        )
    if isinstance(encoder, IdentifiedEncoder):
        return encoding_identity(encoder, with_title=config.with_title, passages=config.passages)
    return None


def stored_hash(doc: Document, identity_key: str | None) -> str | None:
    """The content hash a point stores: `content_hash`, or None when the encoder has no identity."""
    return content_hash(doc, identity_key) if identity_key is not None else None


def content_hash(doc: Document, identity_key: str) -> str:
    """Hash of the encoding identity (its `key()`) and the document's payload (without an older hash)."""
    payload = doc.model_dump(exclude={"content_hash"})
    text = json.dumps(payload, sort_keys=True, ensure_ascii=True, default=str)
    digest = hashlib.sha256(identity_key.encode())
    digest.update(b"\x00")
    digest.update(text.encode("ascii"))
    return digest.hexdigest()[:32]
