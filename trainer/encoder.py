"""Fast SPLADE encoding of queries and documents into `SparseVector`s, on CPU or GPU.

Why it is faster than pooling the full logits: inputs are tokenised once, sorted by length so
batches carry little padding, and the vocabulary max is taken on raw logits in bounded chunks
(`SpladeModel.pooled_logits`). Streams over iterables of any size in windows, so memory stays bounded.

Input rules (documented behaviour):
- `None` or a non-`str` value raises `EncodingInputError` naming its position.
- Empty or whitespace-only text gives an empty vector (or raises, with `empty_text="error"`).
- Text longer than `max_length` tokens is truncated; truncations are counted in `EncodeStats`
  and logged once per call.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from tokenizers import Tokenizer

from trainer.model import SpladeModel, resolve_device
from trainer.pooling import VocabProjection
from trainer.precision import PrecisionPlan, build_projection, resolve_precision
from trainer.sparse import SparseVector
from trainer.errors import SpladeError

logger = logging.getLogger(__name__)

Role = Literal["query", "document"]


class EncodingInputError(SpladeError, ValueError):
    """An input text is not encodable; names its position in the input."""

    def __init__(self, position: int, problem: str) -> None:
        super().__init__(f"input #{position}: {problem}")
        self.position = position
        self.problem = problem


class EncodeOptions(BaseModel):
    """Per-call encoding options; defaults suit document ingestion on CPU."""

    model_config = ConfigDict(frozen=True)

    batch_size: int = Field(32, ge=1)
    max_length: int | None = Field(None, ge=2, description="tokens, incl. special tokens; default: the model's")
    top_k: int | None = Field(None, ge=1, description="keep the k largest weights (max_active_dims)")
    min_weight: float = Field(0.0, ge=0.0, description="drop weights <= this")
    empty_text: Literal["empty", "error"] = "empty"
    window: int = Field(4096, ge=1, description="texts sorted by length together; bounds memory when streaming")


@dataclass
class EncodeStats:
    """What happened in the last call: counts of texts, truncations and empty inputs."""

    texts: int = 0
    truncated: list[int] = field(default_factory=list)
    empty: list[int] = field(default_factory=list)
    tokens: int = 0


@dataclass
class _Tokenized:
    ids: list[list[int]]
    type_ids: list[list[int]]
    truncated: list[bool]


class SpladeEncoder:
    """Turns text into SPLADE sparse vectors with a `SpladeModel` on a chosen device and dtype."""

    def __init__(
        self,
        model: SpladeModel,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        options: EncodeOptions | None = None,
        query_options: EncodeOptions | None = None,
    ) -> None:
        self.device = resolve_device(device)
        self.precision: PrecisionPlan = resolve_precision(self.device, dtype)
        self.dtype = self.precision.dtype
        decoder = model.output_embeddings
        bias = getattr(decoder, "bias", None)
        fp32_bias = None if bias is None else bias.detach().to(device=self.device, dtype=torch.float32, copy=True)
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        self._projection = build_projection(self.model.output_embeddings.weight, fp32_bias, self.precision)
        logger.info("encoding on %s in %s (%s)", self.device, self.precision.precision, self.precision.reason)
        self.options = options or EncodeOptions()
        self.query_options = query_options or self.options
        self.stats = EncodeStats()
        self._backend = Tokenizer.from_str(model.tokenizer.backend_tokenizer.to_str())
        self._pad_id = int(model.tokenizer.pad_token_id or 0)
        self._accepts_type_ids = "token_type_ids" in getattr(model.tokenizer, "model_input_names", [])

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        options: EncodeOptions | None = None,
        **model_kwargs: object,
    ) -> SpladeEncoder:
        return cls(SpladeModel.from_pretrained(name_or_path, **model_kwargs), device=device, dtype=dtype, options=options)  # type: ignore[arg-type]

    # ---- public API ---------------------------------------------------------------------------------
    @property
    def projection(self) -> VocabProjection:
        """The vocabulary projection this encoder pools with (dense in the model's dtype, or int8)."""
        return self._projection

    def encode_queries(self, texts: Iterable[str], **overrides: object) -> list[SparseVector]:
        return self.encode(texts, role="query", **overrides)

    def encode_documents(self, texts: Iterable[str], **overrides: object) -> list[SparseVector]:
        return self.encode(texts, role="document", **overrides)

    def encode(self, texts: Iterable[str] | str, *, role: Role = "document", **overrides: object) -> list[SparseVector]:
        """Encode all texts, returned in input order."""
        if isinstance(texts, str):
            raise TypeError("encode takes an iterable of texts; wrap a single text in a list")
        return list(self.iter_encode(texts, role=role, **overrides))

    def iter_encode(self, texts: Iterable[str], *, role: Role = "document", **overrides: object) -> Iterator[SparseVector]:
        """Stream vectors in input order; holds at most `window` texts and their vectors at once."""
        base = self.query_options if role == "query" else self.options
        options = base.model_copy(update=overrides) if overrides else base
        EncodeOptions.model_validate(options.model_dump())
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
                "%d of %d %ss were longer than %d tokens and were truncated",
                len(self.stats.truncated), self.stats.texts, role, self._max_length(options),
            )

    # ---- internals ------------------------------------------------------------------------------------
    def _max_length(self, options: EncodeOptions) -> int:
        return min(options.max_length or self.model.max_seq_length, self.model.max_seq_length)

    def _prepare(self, window: Sequence[object], offset: int, role: Role, options: EncodeOptions) -> list[str | None]:
        prompt = self.model.prompts.get(role, "")
        prepared: list[str | None] = []
        for i, text in enumerate(window):
            position = offset + i
            if text is None:
                raise EncodingInputError(position, "text is None")
            if not isinstance(text, str):
                raise EncodingInputError(position, f"expected str, got {type(text).__name__}")
            if not text.strip():
                if options.empty_text == "error":
                    raise EncodingInputError(position, "text is empty or whitespace-only")
                self.stats.empty.append(position)
                prepared.append(None)
                continue
            text = prompt + text
            prepared.append(text.lower() if self.model.do_lower_case else text)
        return prepared

    def _tokenize(self, texts: list[str], max_length: int) -> _Tokenized:
        backend = self._backend
        backend.no_padding()
        backend.enable_truncation(max_length=max_length)
        encodings = backend.encode_batch(texts, add_special_tokens=True)
        return _Tokenized(
            ids=[e.ids for e in encodings],
            type_ids=[e.type_ids for e in encodings],
            truncated=[bool(e.overflowing) for e in encodings],
        )

    def _encode_window(self, window: list[str], offset: int, role: Role, options: EncodeOptions) -> list[SparseVector]:
        prepared = self._prepare(window, offset, role, options)
        self.stats.texts += len(window)
        results: list[SparseVector] = [SparseVector.empty(self.model.vocab_size)] * len(window)
        live = [i for i, t in enumerate(prepared) if t is not None]
        if not live:
            return results
        tokens = self._tokenize([prepared[i] for i in live], self._max_length(options))  # type: ignore[misc]
        for j, was_truncated in enumerate(tokens.truncated):
            if was_truncated:
                self.stats.truncated.append(offset + live[j])
        order = sorted(range(len(live)), key=lambda j: len(tokens.ids[j]), reverse=True)
        for start in range(0, len(order), options.batch_size):
            batch = order[start : start + options.batch_size]
            vectors = self._encode_batch([tokens.ids[j] for j in batch], [tokens.type_ids[j] for j in batch], options)
            for j, vector in zip(batch, vectors):
                results[live[j]] = vector
        return results

    def _encode_batch(self, ids: list[list[int]], type_ids: list[list[int]], options: EncodeOptions) -> list[SparseVector]:
        length = max(len(x) for x in ids)
        self.stats.tokens += sum(len(x) for x in ids)
        input_ids = torch.full((len(ids), length), self._pad_id, dtype=torch.long)
        token_types = torch.zeros((len(ids), length), dtype=torch.long)
        attention = torch.zeros((len(ids), length), dtype=torch.long)
        for row, (seq, types) in enumerate(zip(ids, type_ids)):
            input_ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
            token_types[row, : len(seq)] = torch.tensor(types, dtype=torch.long)
            attention[row, : len(seq)] = 1
        extra = {"token_type_ids": self._to_device(token_types)} if self._accepts_type_ids else {}
        pooled = self.model.pooled_logits(self._to_device(input_ids), self._to_device(attention), projection=self._projection, **extra)
        return _to_sparse(pooled, options, self.model.vocab_size)

    def _to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        """Host batch -> device; on CUDA through pinned memory, without waiting for the copy."""
        if self.device.type == "cuda":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor.to(self.device)


def _to_sparse(pooled: torch.Tensor, options: EncodeOptions, dim: int) -> list[SparseVector]:
    """Turn a (batch, vocab) fp32 tensor into vectors, applying min_weight and top_k."""
    if options.top_k is not None and options.top_k < pooled.shape[1]:
        values, indices = pooled.topk(options.top_k, dim=1)
        pruned = torch.zeros_like(pooled).scatter_(1, indices, values)
        pooled = pruned
    pooled = pooled.cpu()
    rows, cols = torch.nonzero(pooled > options.min_weight, as_tuple=True)
    values = pooled[rows, cols].numpy()
    rows_np, cols_np = rows.numpy(), cols.numpy()
    bounds = np.searchsorted(rows_np, np.arange(pooled.shape[0] + 1))
    return [SparseVector(cols_np[bounds[r] : bounds[r + 1]], values[bounds[r] : bounds[r + 1]], dim) for r in range(pooled.shape[0])]
