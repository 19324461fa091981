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


def config_error(error: Exception, what: str) -> ConfigError:
    """A pydantic `ValidationError` (or any error) as a one-line `ConfigError` naming each bad field."""
    errors = getattr(error, "errors", None)
    if callable(errors):
        parts = []
        for item in errors():
            field = ".".join(str(p) for p in item.get("loc", ())) or "value"
            message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
            parts.append(f"{field}: {message}")
        return ConfigError(f"invalid {what}: " + "; ".join(parts))
    return ConfigError(f"invalid {what}: {error}")
