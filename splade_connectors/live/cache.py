"""Where the local servers keep what they download or unpack once: one cache root for both."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$SPLADE_CONNECTORS_CACHE``, else ``$XDG_CACHE_HOME`` (or ``~/.cache``) + ``/splade-connectors``."""
    override = os.environ.get("SPLADE_CONNECTORS_CACHE")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "splade-connectors"
