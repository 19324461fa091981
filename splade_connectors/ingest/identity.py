"""What a stored point was made from: the model's identity, the encoding options, the content hash.

- `model_identity(model)`: a fingerprint of a loaded `SpladeModel`: its architecture settings,
  tokenizer, pooling, and a strided sample of every weight tensor rounded to bfloat16 (so the
  same checkpoint gives the same identity in fp32 and in bf16, on CPU and GPU, from any path).
- `EncodingIdentity`: the model identity plus every option that changes a vector (effective max
  length, top-k, min weight, pruning rule, chunking windows, precision, whether the title is
  encoded). Both engines (single process, Ray) build it the same way; a checkpoint records it; the content hash includes it.
- `content_hash(doc, identity)`: a hash of the encoding identity and the document's payload (id,
  text, title, metadata). Stored in each point's payload: `skip_unchanged` compares it, so an edit
  of any field, or another model or option, makes the document be encoded and written again.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict

from splade_connectors.records import Document

_WEIGHT_SAMPLES = 4096
# model.config entries that say where or how a checkpoint was saved, not what it computes
_CONFIG_NOISE = {"_name_or_path", "transformers_version", "torch_dtype", "dtype", "_attn_implementation_autoset"}


class EncodingIdentity(BaseModel):
    """Everything that decides a document's vector besides its text."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    max_length: int | None = None
    top_k: int | None = None
    min_weight: float = 0.0
    prune: str | None = None
    chunk_tokens: int | None = None
    chunk_stride: int | None = None
    dtype: str | None = None
    with_title: bool = True

    def key(self) -> str:
        """A canonical string of all fields (what hashes and checkpoints record)."""
        return json.dumps(self.model_dump(), sort_keys=True)

    def differences(self, other: EncodingIdentity) -> list[str]:
        """Names of the fields that differ ("model", "max_length", ...)."""
        mine, theirs = self.model_dump(), other.model_dump()
        return [name for name in mine if mine[name] != theirs[name]]


def model_identity(model: Any) -> str:
    """Fingerprint of a `SpladeModel` (see the module docstring); cheap: samples the weights."""
    import torch

    digest = hashlib.sha256()
    config = getattr(getattr(model, "mlm", None), "config", None)
    settings: dict[str, Any] = {
        "architecture": type(getattr(model, "mlm", model)).__name__,
        "config": {k: v for k, v in (config.to_dict() if config is not None else {}).items() if k not in _CONFIG_NOISE},
        "pooling": model.pooling.model_dump() if hasattr(model, "pooling") else None,
        "max_seq_length": getattr(model, "max_seq_length", None),
        "do_lower_case": getattr(model, "do_lower_case", None),
        "prompts": getattr(model, "prompts", None),
    }
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    tokenizer = getattr(model, "tokenizer", None)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        digest.update(backend.to_str().encode())
    with torch.no_grad():
        for name, tensor in sorted(model.state_dict().items()):
            flat = tensor.detach().reshape(-1)
            step = max(1, flat.numel() // _WEIGHT_SAMPLES)
            sample = flat[::step][:_WEIGHT_SAMPLES].to(device="cpu", dtype=torch.bfloat16)
            digest.update(f"{name}|{tuple(tensor.shape)}|".encode())
            digest.update(sample.view(torch.int16).numpy().tobytes())
    return f"{settings['architecture']}:{digest.hexdigest()[:24]}"


def encoding_identity(encoder: Any, *, with_title: bool) -> EncodingIdentity:
    """The identity of what `encoder` produces for documents.

    Works on a `SpladeEncoder`; encoders without a model (test doubles, custom callables) are
    identified by their class name, and can give their own with an `encoding_identity()` method.
    """
    own = getattr(encoder, "encoding_identity", None)
    if callable(own):
        return own(with_title=with_title)  # type: ignore[no-any-return]  # the encoder's own encoding_identity()
    model = getattr(encoder, "model", None)
    options = getattr(encoder, "options", None)
    if model is None or not hasattr(model, "state_dict"):
        return EncodingIdentity(model=f"unidentified:{type(encoder).__qualname__}", with_title=with_title)
    limit = int(getattr(model, "max_seq_length", 0)) or None
    requested = getattr(options, "max_length", None)
    max_length = min(requested, limit) if requested and limit else (requested or limit)
    dtype = _precision_name(encoder)
    prune = getattr(options, "prune", None)
    return EncodingIdentity(
        model=model_identity(model),
        max_length=max_length,
        top_k=getattr(options, "top_k", None),
        min_weight=float(getattr(options, "min_weight", 0.0) or 0.0),
        prune=f"{prune.rule}={prune.value:g}" if prune is not None else None,
        chunk_tokens=getattr(options, "chunk_tokens", None),
        chunk_stride=getattr(options, "chunk_stride", None),
        dtype=dtype,
        with_title=with_title,
    )


def _precision_name(encoder: Any) -> str | None:
    """fp32 / bf16 / fp16 / int8: the encoder's precision plan, else its torch dtype by the same name."""
    plan: Any = getattr(encoder, "precision", None)  # int8 runs with an fp32 dtype: only the plan tells
    if getattr(plan, "precision", None):
        return str(plan.precision)
    dtype = getattr(encoder, "dtype", None)
    if dtype is None:
        return None
    from trainer.precision import parse_precision

    try:
        return str(parse_precision(dtype))
    except ValueError:
        return str(dtype).removeprefix("torch.")


def content_hash(doc: Document, identity_key: str) -> str:
    """Hash of the encoding identity (its `key()`) and the document's payload (without an older hash)."""
    payload = doc.model_dump(exclude={"content_hash"})
    text = json.dumps(payload, sort_keys=True, ensure_ascii=True, default=str)
    digest = hashlib.sha256(identity_key.encode())
    digest.update(b"\x00")
    digest.update(text.encode("ascii"))
    return digest.hexdigest()[:32]
