"""Long documents: token windows with a stride, each encoded, merged into one vector by max.

A text longer than the window is split into windows of `chunk_tokens` tokens each (special tokens such
as [CLS]/[SEP] included, so every window is a well-formed model input); consecutive windows start
`chunk_stride` text tokens apart (default: `chunk_tokens` minus the special tokens, i.e. no overlap;
a smaller stride makes windows overlap by the difference). Every text token is in at least one window.

Merging by max is SPLADE's own pooling: the vector of a text is the max over its tokens of
log1p(relu(logits)), so the max over windows of the window vectors is the vector of all window tokens,
each seen with the context of its window. A text that fits one window gives exactly the unchunked vector.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from trainer.errors import ConfigError
from trainer.sparse import SparseVector


def content_per_window(chunk_tokens: int, special_tokens: int) -> int:
    """Text tokens one window holds: the window minus the special tokens the tokenizer adds."""
    content = chunk_tokens - special_tokens
    if content < 1:
        raise ConfigError(f"chunk_tokens ({chunk_tokens}) leaves no room for text after {special_tokens} special tokens")
    return content


def window_overlap(chunk_tokens: int, chunk_stride: int | None, special_tokens: int) -> int:
    """Tokens shared by consecutive windows (the tokenizer's `stride`), from the window size and the step.

    The step must be between 1 and the text tokens per window; a larger step would skip tokens.
    """
    content = content_per_window(chunk_tokens, special_tokens)
    step = content if chunk_stride is None else chunk_stride
    if not 1 <= step <= content:
        raise ConfigError(
            f"chunk_stride ({step}) must be between 1 and the text tokens per window "
            f"({content} = chunk_tokens {chunk_tokens} - {special_tokens} special tokens)"
        )
    return content - step


def window_starts(text_tokens: int, content: int, step: int) -> list[int]:
    """Start offsets (in text tokens) of the windows covering `text_tokens` tokens: 0, step, 2 x step, ..."""
    starts = [0]
    while starts[-1] + content < text_tokens:
        starts.append(starts[-1] + step)
    return starts


def max_merge(vectors: Sequence[SparseVector], dim: int | None = None) -> SparseVector:
    """Element-wise max of sparse vectors (union of their terms, the largest weight of each)."""
    if not vectors:
        return SparseVector.empty(dim)
    if len(vectors) == 1:
        return vectors[0]
    indices = np.concatenate([v.indices for v in vectors])
    values = np.concatenate([v.values for v in vectors])
    if indices.size == 0:
        return SparseVector.empty(dim if dim is not None else vectors[0].dim)
    order = np.lexsort((-values, indices))  # by index, largest value first within an index
    indices, values = indices[order], values[order]
    first = np.ones(indices.size, dtype=bool)
    first[1:] = indices[1:] != indices[:-1]
    return SparseVector(indices[first], values[first], dim if dim is not None else vectors[0].dim)


@dataclass(frozen=True)
class WindowVector:
    """One token window of a text, encoded on its own (passage-level retrieval): its vector and its character span.

    `start`/`end` index the text the caller gave (before any prompt or lowercasing): `text[start:end]`
    is the window's text, from its first to its last text token.
    """

    vector: SparseVector
    start: int
    end: int


def token_span(offsets: Sequence[tuple[int, int]], special: Sequence[int]) -> tuple[int, int]:
    """The character span of a window's text tokens (special tokens left out); (0, 0) for a window without any."""
    spans = [span for span, is_special in zip(offsets, special) if not is_special and span[1] > span[0]]
    if not spans:
        return 0, 0
    return min(s for s, _ in spans), max(e for _, e in spans)


class OffsetMap:
    """Maps character offsets of the prepared text (prompt + text, lowercased when the model lowercases)
    back to offsets in the caller's text. Lowercasing can change lengths (e.g. "İ" -> "i̇"), so those texts
    are mapped character by character; all others by subtracting the prompt's length."""

    def __init__(self, prompt: str, text: str, lowercase: bool) -> None:
        self.text_length = len(text)
        prefix = prompt.lower() if lowercase else prompt
        self._shift = len(prefix)
        self._ends: list[int] | None = None
        if lowercase and len(text.lower()) != len(text):
            ends, total = [], 0
            for char in text:
                total += len(char.lower())
                ends.append(total)
            self._ends = ends

    def position(self, prepared: int, *, end: bool = False) -> int:
        """The caller's offset of a prepared offset; an `end` inside a character's lowercase expansion rounds up."""
        local = prepared - self._shift
        if local <= 0:
            return 0
        if self._ends is None:
            return min(local, self.text_length)
        if end:
            return min(bisect.bisect_left(self._ends, local) + 1, self.text_length)
        return bisect.bisect_right(self._ends, local)

    def span(self, start: int, end: int) -> tuple[int, int]:
        return self.position(start), self.position(end, end=True)
