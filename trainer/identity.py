"""What an encoder's document vectors are made from: the model's fingerprint and every option that changes them.

- `model_fingerprint(model)`: a fingerprint of a loaded `SpladeModel`: its architecture settings,
  tokenizer, pooling, and a strided sample of every weight tensor rounded to bfloat16 (so the same
  checkpoint gives the same fingerprint in fp32 and in bf16, on CPU and GPU, from any path). The
  query token weights of an inference-free model do not enter: they never change a document vector
  (the same MLM with or without an idf.json query side has one fingerprint).
- `EncoderIdentity`: the fingerprint plus the precision the encoder runs in and the document
  encoding options (effective max length, top-k, min weight, pruning rule, chunking windows).
  Two encoders with equal identities give the same document vectors; any change of model, weights,
  tokenizer, pooling, precision or option changes it. Frozen (hashable) and JSON-serialisable, so
  the ingestion layer can store it in checkpoints and hash it into every stored point.
- `encoder_identity(model, options, precision)`: builds it; `SpladeEncoder.identity()` calls it.
- `update_with_weights`, `clean_config`: the weights sample and the config cleaning, shared with the
  fingerprint of a sentence-transformers model (`trainer.st_encoder`).

Query options do not enter: they never change a stored vector.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from trainer.model import SpladeModel
    from trainer.options import EncodeOptions

_WEIGHT_SAMPLES = 4096
_QUERY_SIDE = "query_static."  # state-dict prefix of an inference-free model's query token weights
# model.config entries that say where or how a checkpoint was saved, not what it computes
_CONFIG_NOISE = {"_name_or_path", "transformers_version", "torch_dtype", "dtype", "_attn_implementation_autoset"}


class EncoderIdentity(BaseModel):
    """Everything that decides a document's vector besides its text (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    max_length: int | None = None
    top_k: int | None = None
    min_weight: float = 0.0
    prune: str | None = None
    chunk_tokens: int | None = None
    chunk_stride: int | None = None
    dtype: str | None = None

    def key(self) -> str:
        """A canonical string of all fields (what hashes and checkpoints record)."""
        return json.dumps(self.model_dump(), sort_keys=True)

    def differences(self, other: EncoderIdentity) -> list[str]:
        """Names of the fields that differ ("model", "max_length", ...)."""
        mine, theirs = self.model_dump(), other.model_dump()
        return [name for name in mine if mine[name] != theirs.get(name)]


def model_fingerprint(model: SpladeModel) -> str:
    """`ARCHITECTURE:HEX` fingerprint of a `SpladeModel` (see the module docstring); cheap: samples the weights."""
    digest = hashlib.sha256()
    mlm = model.mlm
    config = getattr(mlm, "config", None)
    settings: dict[str, Any] = {
        "architecture": type(mlm).__name__,
        "config": clean_config(config),
        "pooling": model.pooling.model_dump(),
        "max_seq_length": model.max_seq_length,
        "do_lower_case": model.do_lower_case,
        "prompts": model.prompts,
    }
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    backend = getattr(model.tokenizer, "backend_tokenizer", None)
    if backend is not None:
        digest.update(backend.to_str().encode())
    # an inference-free query side never changes a document vector: it is not part of the fingerprint
    update_with_weights(digest, {k: v for k, v in model.state_dict().items() if not k.startswith(_QUERY_SIDE)})
    return f"{settings['architecture']}:{digest.hexdigest()[:24]}"


def clean_config(config: object) -> dict[str, Any]:
    """A transformers config as a dict without the entries that say where or how it was saved."""
    to_dict = getattr(config, "to_dict", None)
    return {k: v for k, v in (to_dict() if callable(to_dict) else {}).items() if k not in _CONFIG_NOISE}


def update_with_weights(digest: Any, state_dict: Mapping[str, Any]) -> None:
    """Feed `digest` a strided sample of every tensor, rounded to bfloat16 (any dtype, device or path: same bytes)."""
    import torch

    with torch.no_grad():
        for name, tensor in sorted(state_dict.items()):
            flat = tensor.detach().reshape(-1)
            step = max(1, flat.numel() // _WEIGHT_SAMPLES)
            sample = flat[::step][:_WEIGHT_SAMPLES].to(device="cpu", dtype=torch.bfloat16)
            digest.update(f"{name}|{tuple(tensor.shape)}|".encode())
            digest.update(sample.view(torch.int16).numpy().tobytes())


def encoder_identity(model: SpladeModel, options: EncodeOptions, precision: str, *, fingerprint: str | None = None) -> EncoderIdentity:
    """The identity of the document vectors `model` gives under `options` in `precision` (fp32, bf16, fp16, int8,
    int8-full); `fingerprint`: the model's, taken before its layers were quantised (int8 layers hold no weights)."""
    limit = int(model.max_seq_length) or None
    requested = options.max_length
    max_length = min(requested, limit) if requested and limit else (requested or limit)
    prune = options.prune
    return EncoderIdentity(
        model=fingerprint or model_fingerprint(model),
        max_length=max_length,
        top_k=options.top_k,
        min_weight=float(options.min_weight),
        prune=f"{prune.rule}={prune.value:g}" if prune is not None else None,
        chunk_tokens=options.chunk_tokens,
        chunk_stride=options.chunk_stride,
        dtype=str(precision),
    )
