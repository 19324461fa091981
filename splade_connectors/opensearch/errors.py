"""The one place where opensearch-py errors become the project's errors.

- `ConnectionError` (refused, DNS, reset) -> `StoreUnavailableError`; `ConnectionTimeout` -> transient.
- `SSLError` -> permanent (a certificate problem does not heal by retrying).
- HTTP 401/403 -> `AuthenticationError`; 404 `index_not_found` -> `NotFoundError`;
  429, 502, 503, 504 -> transient; other 4xx/5xx -> permanent.
Messages name the store (hosts with credentials masked) and never include a password.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from splade_connectors.errors import (
    AuthenticationError,
    NotFoundError,
    SpladeError,
    StoreError,
    StoreUnavailableError,
    TransientStoreError,
    mask_url,
)

TRANSIENT_STATUS = frozenset({429, 502, 503, 504})


def _reason(error: Any) -> str:
    info = getattr(error, "info", None)
    if isinstance(info, Mapping):
        err = info.get("error")
        if isinstance(err, Mapping):
            root = (err.get("root_cause") or [err])[0]
            if isinstance(root, Mapping):
                return f"{root.get('type')}: {root.get('reason')}"
        if isinstance(err, str):
            return err
    text = getattr(error, "error", None) or str(error)
    return mask_url(" ".join(str(text).split()))[:300]


def _network_cause(error: BaseException) -> str:
    cause: BaseException | None = getattr(error, "info", None) if isinstance(getattr(error, "info", None), BaseException) else None
    cause = cause or error.__cause__ or error.__context__
    text = str(cause) if cause is not None else str(error)
    for marker in ("Connection refused", "Name or service not known", "timed out", "No route to host", "Connection reset"):
        if marker.lower() in text.lower():
            return marker
    return mask_url(" ".join(text.split()))[:200]


def translate(error: BaseException, where: str, action: str) -> StoreError:
    """The project error for an opensearch-py error raised while doing `action` on the store `where`."""
    if isinstance(error, StoreError):
        return error
    from opensearchpy.exceptions import ConnectionError, ConnectionTimeout, SSLError, TransportError

    prefix = f"{where}: {action} failed"
    if isinstance(error, SSLError):
        return StoreError(f"{prefix}: TLS error ({_network_cause(error)}); check --ca-certs or --no-verify-certs")
    if isinstance(error, ConnectionTimeout):
        return TransientStoreError(f"{prefix}: timed out")
    if isinstance(error, ConnectionError):
        return StoreUnavailableError(f"{prefix}: cannot reach the server ({_network_cause(error)})")
    if isinstance(error, TransportError):
        status = error.status_code if isinstance(error.status_code, int) else 0
        reason = _reason(error)
        if status in (401, 403):
            return AuthenticationError(f"{prefix}: the server refused the credentials (HTTP {status})")
        if status == 404 and "index_not_found" in reason:
            return NotFoundError(f"{prefix}: the index does not exist")
        if status in TRANSIENT_STATUS:
            return TransientStoreError(f"{prefix}: HTTP {status} {reason}")
        return StoreError(f"{prefix}: HTTP {status} {reason}")
    return StoreError(f"{prefix}: {type(error).__name__}: {mask_url(str(error))[:300]}")


@contextlib.contextmanager
def mapped_errors(where: str, action: str) -> Iterator[None]:
    """Re-raise any client error inside the block as the project's error (ours pass through)."""
    try:
        yield
    except SpladeError:
        raise
    except Exception as exc:
        raise translate(exc, where, action) from exc
