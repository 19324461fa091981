"""A sentence-transformers `SparseEncoder` as an encoder of this library (`SentenceTransformersEncoder`).

Users who already hold a `sentence_transformers.SparseEncoder` pass it wherever an encoder goes: it
is wrapped here into the same contract `SpladeEncoder` fulfils (`splade_connectors.encoding`):
`encode_documents` / `encode_queries` / `iter_encode` returning `SparseVector`s, `model` (the
vocabulary), `stats` and `identity()`. sentence-transformers computes the vectors (its own prompts,
routing of inference-free models, backends); this wrapper only converts them and applies the same
input rules and per-call options as `SpladeEncoder`, so an option means one thing on both:

- `min_weight`, `top_k` and `prune` (OpenSearch's four rules) run here, on the full vector, by the
  same code as `SpladeEncoder` (not through sentence-transformers' `max_active_dims`; a
  `max_active_dims` set on the model itself still applies first and enters the identity).
- `max_length` sets the model's window for the call (never above the model's `max_seq_length`).
- `batch_size` and `window` as in `SpladeEncoder`; `chunk_tokens` is refused (sentence-transformers
  truncates); use `SpladeEncoder.from_pretrained(directory)` for long-document windows.
- `None`, non-`str` and non-Unicode inputs raise `EncodingInputError`; empty text gives an empty vector.

`identity()`: the fingerprint of what sentence-transformers runs (every module's type and
configuration, the transformers config, tokenizer, prompts, `max_active_dims`, and the same sampled
weights digest as `trainer.identity`), the parameters' dtype and the document options. It differs
from a `SpladeEncoder`'s on the same checkpoint (the two agree to float tolerance, not bit for bit).

sentence-transformers is imported only by `from_pretrained`; wrapping an existing object needs nothing more.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tokenizers import Tokenizer

from trainer.encoder import (
    EncodeStats,
    Role,
    RoleEncoder,
    _finish,
    _with_overrides,
    checked_text,
)
from trainer.errors import ConfigError
from trainer.identity import EncoderIdentity, clean_config, update_with_weights
from trainer.options import EncodeOptions
from trainer.sparse import SparseVector, from_torch

if TYPE_CHECKING:
    from sentence_transformers import SparseEncoder as STSparseEncoder

logger = logging.getLogger(__name__)

_DTYPES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
_MODEL_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def is_sentence_transformers_encoder(obj: object) -> bool:
    """Whether `obj` is a `sentence_transformers.SparseEncoder` (checked without importing sentence-transformers)."""
    module = sys.modules.get("sentence_transformers")
    cls = getattr(module, "SparseEncoder", None) if module is not None else None
    return isinstance(cls, type) and isinstance(obj, cls)


class STVocabulary:
    """The vocabulary a sentence-transformers model's vector indices refer to (`encoding.Vocabulary`)."""

    def __init__(self, tokenizer: Any, vocab_size: int) -> None:
        self._tokenizer = tokenizer
        self._vocab_size = int(vocab_size)

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    def id_to_token(self) -> list[str]:
        vocab: dict[str, int] = self._tokenizer.get_vocab() if self._tokenizer is not None else {}
        tokens = [""] * max(self._vocab_size, len(vocab))
        for token, idx in vocab.items():
            if idx < len(tokens):
                tokens[idx] = token
        return tokens


class SentenceTransformersEncoder(RoleEncoder):
    """A `sentence_transformers.SparseEncoder` behind this library's encoder contract (see the module docstring)."""

    def __init__(
        self,
        model: STSparseEncoder,
        *,
        options: EncodeOptions | None = None,
        query_options: EncodeOptions | None = None,
    ) -> None:
        if not is_sentence_transformers_encoder(model):
            raise ConfigError(f"expected a sentence_transformers.SparseEncoder, got {type(model).__qualname__}")
        self.sentence_transformer = model
        self.options = options or EncodeOptions()
        self.query_options = query_options or self.options
        for role, opts in (("document", self.options), ("query", self.query_options)):
            _check_options(opts, role)
        dim = _embedding_dimension(model)
        tokenizer = getattr(model, "tokenizer", None)
        self.model = STVocabulary(tokenizer, dim)
        self.stats = EncodeStats()
        backend = getattr(tokenizer, "backend_tokenizer", None)
        self._counter: Tokenizer | None = Tokenizer.from_str(backend.to_str()) if backend is not None else None

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        *,
        device: str | None = None,
        dtype: str | None = None,
        options: EncodeOptions | None = None,
        query_options: EncodeOptions | None = None,
    ) -> SentenceTransformersEncoder:
        """Load a directory or Hub id with `sentence_transformers.SparseEncoder` and wrap it.

        `dtype`: fp32 (default), bf16 or fp16; this library's int8 routes and `auto` belong to `SpladeEncoder`.
        """
        if dtype is not None and dtype not in _MODEL_DTYPES:
            raise ConfigError(f"dtype {dtype!r}: a sentence-transformers encoder runs in fp32, bf16 or fp16")
        try:
            from sentence_transformers import SparseEncoder
        except ModuleNotFoundError:
            raise ConfigError("a sentence-transformers encoder needs the package: pip install sentence-transformers") from None
        try:
            model = SparseEncoder(str(name_or_path), device=device)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"sentence-transformers cannot load {name_or_path}: {exc}") from None
        if dtype is not None and dtype != "fp32":
            model = model.to(_MODEL_DTYPES[dtype])
        return cls(model, options=options, query_options=query_options)

    # ---- the encoder contract ---------------------------------------------------------------------
    @property
    def precision(self) -> str:
        """fp32, bf16 or fp16: the dtype of the model's parameters."""
        param = next(iter(self.sentence_transformer.parameters()), None)
        return _DTYPES.get(param.dtype, str(param.dtype)) if param is not None else "fp32"

    def identity(self) -> EncoderIdentity:
        """What this encoder's document vectors are made from (see the module docstring)."""
        options = self.options
        limit = int(self.sentence_transformer.max_seq_length or 0) or None
        requested = options.max_length
        prune = options.prune
        return EncoderIdentity(
            model=sentence_transformers_fingerprint(self.sentence_transformer),  # taken each time: the model may change
            max_length=min(requested, limit) if requested and limit else (requested or limit),
            top_k=options.top_k,
            min_weight=float(options.min_weight),
            prune=f"{prune.rule}={prune.value:g}" if prune is not None else None,
            dtype=self.precision,
        )

    def iter_encode(self, texts: Iterable[str], *, role: Role = "document", **overrides: object) -> Iterator[SparseVector]:
        """Stream vectors in input order, `options.window` texts at a time."""
        base = self.query_options if role == "query" else self.options
        options = _with_overrides(base, overrides) if overrides else base
        _check_options(options, role)
        self.stats = EncodeStats()
        iterator = iter(texts)
        offset = 0
        while True:
            window = list(itertools.islice(iterator, options.window))
            if not window:
                break
            yield from self._encode_window(window, offset, role, options)
            offset += len(window)
        if self.stats.truncated:
            logger.warning(
                "%d of %d %ss were longer than the model's window and were truncated",
                len(self.stats.truncated), self.stats.texts, role,
            )

    # ---- internals ----------------------------------------------------------------------------------
    def _encode_window(self, window: list[Any], offset: int, role: Role, options: EncodeOptions) -> list[SparseVector]:
        dim = self.model.vocab_size
        results = [SparseVector.empty(dim)] * len(window)
        live: list[int] = []
        for i, text in enumerate(window):
            if checked_text(text, offset + i, options, self.stats):
                live.append(i)
        self.stats.texts += len(window)
        if not live:
            return results
        texts = [window[i] for i in live]
        model = self.sentence_transformer
        with self._window_length(options) as max_length:
            self._count_tokens(texts, offset, live, max_length)
            encode = model.encode_query if role == "query" else model.encode_document
            tensor = encode(texts, batch_size=options.batch_size, convert_to_tensor=True, convert_to_sparse_tensor=True)
        vectors = from_torch(tensor if tensor.dim() == 2 else tensor.unsqueeze(0))
        for j, vector in zip(live, vectors):
            results[j] = _finish(SparseVector(vector.indices, vector.values, dim), options)
        return results

    @contextlib.contextmanager
    def _window_length(self, options: EncodeOptions) -> Iterator[int | None]:
        """The model's window for this call: `max_length` when given (never above the model's own)."""
        model = self.sentence_transformer
        own = model.max_seq_length
        wanted = min(options.max_length, own) if options.max_length and own else own
        if wanted == own:
            yield own
            return
        model.max_seq_length = wanted
        try:
            yield wanted
        finally:
            model.max_seq_length = own

    def _count_tokens(self, texts: list[str], offset: int, live: list[int], max_length: int | None) -> None:
        """Token counts and truncations for `stats` (ingestion and evaluation report them)."""
        if self._counter is None:
            return
        self._counter.no_truncation()
        self._counter.no_padding()
        for j, encoding in enumerate(self._counter.encode_batch(texts, add_special_tokens=True)):
            length = len(encoding.ids)
            self.stats.tokens += min(length, max_length) if max_length else length
            if max_length and length > max_length:
                self.stats.truncated.append(offset + live[j])
        self.stats.windows += len(texts)


def sentence_transformers_fingerprint(model: STSparseEncoder) -> str:
    """`sentence-transformers/ARCHITECTURE:HEX`: modules and their configuration, transformers config, tokenizer,
    prompts, `max_active_dims`, and the sampled weights digest of `trainer.identity`."""
    digest = hashlib.sha256()
    transformer = getattr(model, "transformers_model", None)
    architecture = type(transformer).__name__ if transformer is not None else type(model).__name__
    modules = []
    for name, module in model.named_children():
        get_config = getattr(module, "get_config_dict", None)
        modules.append({
            "name": name,
            "type": f"{type(module).__module__}.{type(module).__qualname__}",
            "config": get_config() if callable(get_config) else {},
        })
    settings = {
        "modules": modules,
        "transformer": clean_config(getattr(transformer, "config", None)),
        "prompts": dict(getattr(model, "prompts", None) or {}),
        "default_prompt_name": getattr(model, "default_prompt_name", None),
        "max_active_dims": getattr(model, "max_active_dims", None),
    }
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    backend = getattr(getattr(model, "tokenizer", None), "backend_tokenizer", None)
    if backend is not None:
        digest.update(backend.to_str().encode())
    update_with_weights(digest, model.state_dict())
    return f"sentence-transformers/{architecture}:{digest.hexdigest()[:24]}"


def _embedding_dimension(model: Any) -> int:
    """The vocabulary size of the model's vectors: its MLM's output projection (sentence-transformers' own
    dimension is the hidden size when a plain MLM folder is loaded without a SpladePooling config)."""
    transformer = getattr(model, "transformers_model", None)
    get_output = getattr(transformer, "get_output_embeddings", None)
    output = get_output() if callable(get_output) else None
    weight = getattr(output, "weight", None)
    if weight is not None:
        return int(weight.shape[0])
    for name in ("get_embedding_dimension", "get_sentence_embedding_dimension"):
        method = getattr(model, name, None)
        if callable(method):
            dim = method()
            if dim:
                return int(dim)
    raise ConfigError(f"{type(model).__qualname__}: cannot tell the vocabulary size of its vectors")


def _check_options(options: EncodeOptions, role: str) -> None:
    if options.chunk_tokens is not None:
        raise ConfigError(
            f"chunk_tokens ({role} options): a sentence-transformers encoder truncates long texts; "
            "for windows load the checkpoint with SpladeEncoder.from_pretrained"
        )
