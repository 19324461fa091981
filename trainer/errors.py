"""The root of every error this project raises on purpose.

The core (`trainer`) owns the root so that its own errors (bad checkpoints, unencodable input,
invalid sparse vectors, bad configs) and the adapters' errors (stores, ingestion) share one base:
`except SpladeError` catches everything a user can act on, and nothing else.
"""

from __future__ import annotations


class SpladeError(Exception):
    """Base class of all splade-connectors errors: a message meant for the user, one line."""


class ConfigError(SpladeError, ValueError):
    """An option or configuration value is invalid; the message names it and says what is allowed."""


class DatasetError(SpladeError, ValueError):
    """An evaluation dataset cannot be found or read, or has nothing to evaluate; the message says what to do."""
