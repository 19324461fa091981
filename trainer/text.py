"""Text checks shared by the core's encoders and the adapters' payload rule (no torch import)."""

from __future__ import annotations

import re

__all__ = ["lone_surrogate"]

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def lone_surrogate(text: str) -> str | None:
    """Where `text` holds a lone UTF-16 surrogate ("U+D800 at character 4"), or None when it is valid Unicode.

    UTF-8 cannot encode a lone surrogate, so neither a tokenizer nor a store can take such text.
    """
    match = _LONE_SURROGATE.search(text)
    if match is None:
        return None
    return f"U+{ord(match.group()):04X} at character {match.start()}"
