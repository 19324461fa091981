"""Fast SPLADE encoding of queries and documents into `SparseVector`s, on CPU or GPU.

Why it is faster than pooling the full logits: inputs are tokenised once, sorted by length so
batches carry little padding, and the vocabulary max is taken on raw logits in bounded chunks
(`SpladeModel.pooled_logits`). Streams over iterables of any size in windows, so memory stays bounded.

Input rules (documented behaviour):
- `None` or a non-`str` value raises `EncodingInputError` naming its position.
- Text that is not valid Unicode (a lone surrogate such as "\\ud800", which UTF-8 cannot encode)
  raises `EncodingInputError` naming its position and the character.
- Empty text, or text made only of whitespace, control and zero-width/format characters (nothing
  the tokenizer keeps), gives an empty vector (or raises, with `empty_text="error"`).
- An unknown option or an invalid option value raises `ConfigError` naming it.
- Text longer than `max_length` tokens is truncated; truncations are counted in `EncodeStats`
  and logged once per call. With `chunk_tokens` it is split into token windows instead, each
  encoded, merged by max (`trainer.chunking`); chunked texts are counted in `EncodeStats.chunked`.

Inference-free models (`SpladeModel.is_inference_free`) encode queries by tokenisation and a weight
lookup (`trainer.static`), without a model forward. Every vector then goes through `min_weight`,
`top_k` and the optional OpenSearch pruning rule (`trainer.pruning`), in that order.
"""

from __future__ import annotations

import itertools
import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeGuard

import numpy as np
import torch
from tokenizers import Tokenizer

from trainer.chunking import OffsetMap, WindowVector, max_merge, token_span, window_overlap
from trainer.errors import ConfigError, SpladeError, config_error
from trainer.identity import EncoderIdentity, encoder_identity, model_fingerprint
from trainer.model import SpladeModel, resolve_device
from trainer.options import EncodeOptions as EncodeOptions  # re-exported: the public home of the options is still trainer.encoder
from trainer.pooling import VocabProjection
from trainer.precision import PrecisionPlan, resolve_precision
from trainer.sparse import SparseVector
from trainer.text import lone_surrogate

logger = logging.getLogger(__name__)

Role = Literal["query", "document"]


class EncodingInputError(SpladeError, ValueError):
    """An input text is not encodable; names its position in the input."""

    def __init__(self, position: int, problem: str) -> None:
        super().__init__(f"input #{position}: {problem}")
        self.position = position
        self.problem = problem


@dataclass
class EncodeStats:
    """What happened in the last call: counts of texts, truncations and empty inputs."""

    texts: int = 0
    truncated: list[int] = field(default_factory=list)
    empty: list[int] = field(default_factory=list)
    tokens: int = 0
    chunked: list[int] = field(default_factory=list)
    windows: int = 0


_Window = tuple[list[int], list[int], tuple[int, int]]  # token ids, type ids, character span in the prepared text


@dataclass
class _Tokenized:
    ids: list[list[int]]
    type_ids: list[list[int]]
    truncated: list[bool]


class RoleEncoder:
    """`encode_queries`, `encode_documents` and `encode` on top of a subclass's `iter_encode`: one meaning for every
    encoder of the core (ours and the sentence-transformers adapter)."""

    def iter_encode(self, texts: Iterable[str], *, role: Role = "document", **overrides: object) -> Iterator[SparseVector]:
        raise NotImplementedError

    def encode_queries(self, texts: Iterable[str], **overrides: object) -> list[SparseVector]:
        return self.encode(texts, role="query", **overrides)

    def encode_documents(self, texts: Iterable[str], **overrides: object) -> list[SparseVector]:
        return self.encode(texts, role="document", **overrides)

    def encode(self, texts: Iterable[str] | str, *, role: Role = "document", **overrides: object) -> list[SparseVector]:
        """Encode all texts, returned in input order."""
        if isinstance(texts, str):
            raise TypeError("encode takes an iterable of texts; wrap a single text in a list")
        return list(self.iter_encode(texts, role=role, **overrides))


class SpladeEncoder(RoleEncoder):
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
        plan = resolve_precision(self.device, dtype)
        if plan.measure:
            from trainer.probe import fastest_precision

            plan = fastest_precision(model, self.device)
        self.precision: PrecisionPlan = plan
        self.dtype = self.precision.dtype
        self._fingerprint: str | None = None  # None: taken from the model at each identity() call
        if plan.int8_body:  # in place: the encoder owns the model it encodes with (pass a copy to keep an fp32 one)
            self._fingerprint = model_fingerprint(model)  # before int8 layers replace the weights it samples
        self._projection = model.prepare_route(self.device, self.precision)
        self.model = model
        logger.info("encoding on %s in %s (%s)", self.device, self.precision.precision, self.precision.reason)
        self.options = options or EncodeOptions()
        self.query_options = query_options or self.options
        self.stats = EncodeStats()
        self._backend = Tokenizer.from_str(model.tokenizer.backend_tokenizer.to_str())
        self._static_backend: Tokenizer | None = None
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
        query_options: EncodeOptions | None = None,
        **model_kwargs: object,
    ) -> SpladeEncoder:
        model = SpladeModel.from_pretrained(name_or_path, **model_kwargs)  # type: ignore[arg-type]  # model_kwargs holds from_pretrained keywords only
        return cls(model, device=device, dtype=dtype, options=options, query_options=query_options)

    # ---- public API ---------------------------------------------------------------------------------
    @property
    def projection(self) -> VocabProjection:
        """The vocabulary projection this encoder pools with (dense in the model's dtype, or int8)."""
        return self._projection

    def identity(self) -> EncoderIdentity:
        """What this encoder's document vectors are made from (`trainer.identity`): equal identities, equal vectors."""
        return encoder_identity(self.model, self.options, self.precision.precision, fingerprint=self._fingerprint)

    def iter_encode(self, texts: Iterable[str], *, role: Role = "document", **overrides: object) -> Iterator[SparseVector]:
        """Stream vectors in input order; holds at most `window` texts and their vectors at once."""
        base = self.query_options if role == "query" else self.options
        options = _with_overrides(base, overrides) if overrides else base
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
        if self.stats.chunked:
            logger.info(
                "%d of %d %ss were longer than %d tokens and were encoded in windows (%d windows in all)",
                len(self.stats.chunked), self.stats.texts, role, options.chunk_tokens, self.stats.windows,
            )

    # ---- internals ------------------------------------------------------------------------------------
    def _max_length(self, options: EncodeOptions) -> int:
        return min(options.max_length or self.model.max_seq_length, self.model.max_seq_length)

    def _prepare(self, window: Sequence[object], offset: int, role: Role, options: EncodeOptions) -> list[str | None]:
        prompt = self.model.prompts.get(role, "")
        prepared: list[str | None] = []
        for i, text in enumerate(window):
            if not checked_text(text, offset + i, options, self.stats):
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

    def chunk_overlap(self, options: EncodeOptions) -> int | None:
        """Tokens shared by consecutive windows under these options (None: no chunking); `ConfigError` when
        `chunk_tokens` exceeds the model's window or `chunk_stride` does not fit the window."""
        if options.chunk_tokens is None:
            return None
        limit = self._max_length(options)
        if options.chunk_tokens > limit:
            raise ConfigError(f"chunk_tokens ({options.chunk_tokens}) exceeds the model's window of {limit} tokens")
        return window_overlap(options.chunk_tokens, options.chunk_stride, self._backend.num_special_tokens_to_add(False))

    def _chunk_windows(self, texts: list[str], options: EncodeOptions) -> list[list[_Window]]:
        """Per text, its token windows (ids, type ids, character span), each with the special tokens (`trainer.chunking`)."""
        assert options.chunk_tokens is not None
        overlap = self.chunk_overlap(options)
        backend = self._backend
        backend.no_padding()
        backend.enable_truncation(max_length=options.chunk_tokens, stride=overlap)
        try:
            encodings = backend.encode_batch(texts, add_special_tokens=True)
        finally:
            backend.no_truncation()
        return [
            [(w.ids, w.type_ids, token_span(w.offsets, w.special_tokens_mask)) for w in [e, *e.overflowing]]
            for e in encodings
        ]

    def _encode_static_queries(self, texts: list[str], offset: int, live: list[int], options: EncodeOptions) -> list[SparseVector]:
        """Inference-free queries: tokens (no special tokens) -> their weights; no model forward."""
        static = self.model.query_static
        assert static is not None
        if self._static_backend is None:
            self._static_backend = Tokenizer.from_str(static.tokenizer.backend_tokenizer.to_str())
            self._static_backend.no_padding()
        limit = min(options.max_length or static.max_seq_length, static.max_seq_length)
        self._static_backend.enable_truncation(max_length=limit)
        encodings = self._static_backend.encode_batch(texts, add_special_tokens=False)
        for j, encoding in enumerate(encodings):
            self.stats.tokens += len(encoding.ids)
            if encoding.overflowing:
                self.stats.truncated.append(offset + live[j])
        return static.vectors_from_ids([e.ids for e in encodings], self.model.vocab_size)

    def _encode_window(self, window: list[str], offset: int, role: Role, options: EncodeOptions) -> list[SparseVector]:
        prepared = self._prepare(window, offset, role, options)
        self.stats.texts += len(window)
        results: list[SparseVector] = [SparseVector.empty(self.model.vocab_size)] * len(window)
        live = [i for i, t in enumerate(prepared) if t is not None]
        if not live:
            return results
        texts: list[str] = [prepared[i] for i in live]  # type: ignore[misc]  # live holds the indices of non-empty texts
        if role == "query" and self.model.query_static is not None:
            vectors = self._encode_static_queries(texts, offset, live, options)
        else:
            vectors = self._encode_with_model(texts, offset, live, options)
        for j, vector in enumerate(vectors):
            results[live[j]] = _finish(vector, options)
        return results

    def _encode_with_model(self, texts: list[str], offset: int, live: list[int], options: EncodeOptions) -> list[SparseVector]:
        """Unpruned MLM vectors, one per text: truncated, or (with `chunk_tokens`) windows merged by max."""
        per_text = self._window_vectors(texts, offset, live, options)
        return [max_merge([vector for vector, _ in windows], self.model.vocab_size) for windows in per_text]

    def _window_vectors(
        self, texts: list[str], offset: int, live: list[int], options: EncodeOptions
    ) -> list[list[tuple[SparseVector, tuple[int, int]]]]:
        """Unpruned MLM vectors of every window of every text (one window when truncating), with its span."""
        windows: list[list[_Window]]
        if options.chunk_tokens is None:
            tokens = self._tokenize(texts, self._max_length(options))
            for j, was_truncated in enumerate(tokens.truncated):
                if was_truncated:
                    self.stats.truncated.append(offset + live[j])
            windows = [[(ids, types, (0, len(text)))] for ids, types, text in zip(tokens.ids, tokens.type_ids, texts)]
        else:
            windows = self._chunk_windows(texts, options)
            for j, text_windows in enumerate(windows):
                if len(text_windows) > 1:
                    self.stats.chunked.append(offset + live[j])
        flat = [(j, w) for j, text_windows in enumerate(windows) for w in text_windows]
        self.stats.windows += len(flat)
        per_text: list[list[tuple[int, SparseVector, tuple[int, int]]]] = [[] for _ in texts]
        order = sorted(range(len(flat)), key=lambda k: len(flat[k][1][0]), reverse=True)
        for start in range(0, len(order), options.batch_size):
            batch = order[start : start + options.batch_size]
            vectors = self._encode_batch([flat[k][1][0] for k in batch], [flat[k][1][1] for k in batch], _UNPRUNED)
            for k, vector in zip(batch, vectors):
                per_text[flat[k][0]].append((k, vector, flat[k][1][2]))
        return [[(vector, span) for _, vector, span in sorted(items, key=lambda item: item[0])] for items in per_text]

    def encode_passages(self, texts: Iterable[str], **overrides: object) -> list[list[WindowVector]]:
        """Documents as passages: per text, one vector per token window, in text order, with the window's span.

        Windows are those of `chunk_tokens` / `chunk_stride` (default: windows of the max length, no
        overlap); each vector goes through `min_weight`, `top_k` and pruning like a document vector. The
        spans index the given text (`text[start:end]` is the window's text). A text with nothing to encode
        (empty, whitespace) gives one empty passage spanning it, so every document keeps a passage.
        """
        options = _with_overrides(self.options, overrides) if overrides else self.options
        if options.chunk_tokens is None:
            options = options.model_copy(update={"chunk_tokens": self._max_length(options)})
        self.stats = EncodeStats()
        prompt = self.model.prompts.get("document", "")
        iterator = iter(texts)
        results: list[list[WindowVector]] = []
        offset = 0
        while window := list(itertools.islice(iterator, options.window)):
            prepared = self._prepare(window, offset, "document", options)
            self.stats.texts += len(window)
            out = [[WindowVector(SparseVector.empty(self.model.vocab_size), 0, len(text))] for text in window]
            live = [i for i, t in enumerate(prepared) if t is not None]
            if live:
                per_text = self._window_vectors([prepared[i] for i in live], offset, live, options)  # type: ignore[misc]  # live: non-empty texts
                for j, text_windows in enumerate(per_text):
                    mapper = OffsetMap(prompt, window[live[j]], self.model.do_lower_case)
                    out[live[j]] = [WindowVector(_finish(vector, options), *mapper.span(*span)) for vector, span in text_windows]
            results.extend(out)
            offset += len(window)
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
        pooled = self.model.pooled_logits(self._to_device(input_ids), self._to_device(attention), projection=self._projection, **extra)  # type: ignore[arg-type]  # extra holds token_type_ids only
        return _to_sparse(pooled, options, self.model.vocab_size)

    def _to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        """Host batch -> device; on CUDA through pinned memory, without waiting for the copy."""
        if self.device.type == "cuda":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor.to(self.device)


# Candidates for a visible character: anything but whitespace and C0/C1 control characters.
# Format (Cf: zero-width space/joiners, BOM, bidi marks, soft hyphen) and private-use (Co)
# characters are dropped by BERT's normalizer too, so candidates are checked one by one, which
# stops at the first visible character (O(1) for ordinary text).
_NOT_SPACE_OR_CONTROL = re.compile("[^\\s\x00-\x1f\x7f-\x9f]")
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs"})


def checked_text(text: object, position: int, options: EncodeOptions, stats: EncodeStats) -> TypeGuard[str]:
    """The input rule every encoder of the core applies: an `EncodingInputError` for a non-string or invalid Unicode;
    False (and the position noted in `stats.empty`) for a text with nothing visible, unless `empty_text="error"`."""
    if text is None:
        raise EncodingInputError(position, "text is None")
    if not isinstance(text, str):
        raise EncodingInputError(position, f"expected str, got {type(text).__name__}")
    if found := lone_surrogate(text):
        raise EncodingInputError(position, f"text is not valid Unicode: lone surrogate {found}")
    if not _has_visible_character(text):
        if options.empty_text == "error":
            raise EncodingInputError(position, "text is empty or has only whitespace, control or zero-width characters")
        stats.empty.append(position)
        return False
    return True


def _has_visible_character(text: str) -> bool:
    """Whether the text has a character the tokenizer keeps."""
    return any(unicodedata.category(m.group()) not in _INVISIBLE_CATEGORIES for m in _NOT_SPACE_OR_CONTROL.finditer(text))


def _with_overrides(base: EncodeOptions, overrides: dict[str, object]) -> EncodeOptions:
    """`base` with per-call overrides, validated: an unknown option or a bad value is a `ConfigError`."""
    unknown = sorted(set(overrides) - set(EncodeOptions.model_fields))
    if unknown:
        raise ConfigError(
            f"unknown encoder option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(EncodeOptions.model_fields)}"
        )
    try:
        return EncodeOptions.model_validate({**base.model_dump(), **overrides})
    except ValueError as exc:  # pydantic's ValidationError
        raise config_error(exc, "encoder option") from None


_UNPRUNED = EncodeOptions()


def _finish(vector: SparseVector, options: EncodeOptions) -> SparseVector:
    """A text's final vector: `min_weight`, then `top_k`, then the pruning rule."""
    if options.min_weight > 0:
        vector = vector.prune(options.min_weight)
    if options.top_k is not None:
        vector = vector.top_k(options.top_k)
    if options.prune is not None:
        vector = options.prune.apply(vector)
    return vector


def _to_sparse(pooled: torch.Tensor, options: EncodeOptions, dim: int) -> list[SparseVector]:
    """Turn a (batch, vocab) fp32 tensor into vectors, applying min_weight and top_k."""
    if options.top_k is not None and options.top_k < pooled.shape[1]:
        top_values, indices = pooled.topk(options.top_k, dim=1)
        pruned = torch.zeros_like(pooled).scatter_(1, indices, top_values)
        pooled = pruned
    pooled = pooled.cpu()
    rows, cols = torch.nonzero(pooled > options.min_weight, as_tuple=True)
    values = pooled[rows, cols].numpy()
    rows_np, cols_np = rows.numpy(), cols.numpy()
    bounds = np.searchsorted(rows_np, np.arange(pooled.shape[0] + 1))
    return [SparseVector(cols_np[bounds[r] : bounds[r + 1]], values[bounds[r] : bounds[r + 1]], dim) for r in range(pooled.shape[0])]
