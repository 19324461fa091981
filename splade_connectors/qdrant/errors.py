"""The one place where Qdrant client errors become the project's errors.

qdrant-client raises `UnexpectedResponse` (HTTP status + body), `ResponseHandlingException` (httpx
trouble underneath: refused connections, timeouts), grpc `RpcError`s (with `prefer_grpc`), and in
local mode plain `ValueError`/`RuntimeError`s. `translate` maps each to a `StoreError` subclass whose
message names the store and the action, and whose `transient` flag drives the retry policy:
network trouble, timeouts, 429 and 5xx are transient; 4xx, validation, auth and missing
collections are permanent.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

from splade_connectors.errors import (
    AuthenticationError,
    NotFoundError,
    SpladeError,
    StoreError,
    StoreLockedError,
    StoreUnavailableError,
    TransientStoreError,
)

_TRANSIENT_GRPC = {"DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED", "INTERNAL", "UNKNOWN"}


def _grpc_code(error: BaseException) -> str | None:
    code = getattr(error, "code", None)
    if not callable(code):
        return None
    try:
        value = code()
    except Exception:  # noqa: BLE001 - not a grpc error after all
        return None
    return getattr(value, "name", None)


def _http_detail(error: BaseException) -> str:
    content = getattr(error, "content", b"")
    try:
        body = json.loads(content or b"{}")
        detail = body.get("status", {}).get("error") if isinstance(body.get("status"), dict) else body.get("status")
    except (ValueError, AttributeError):
        detail = None
    reason = getattr(error, "reason_phrase", "") or ""
    return str(detail or reason or content[:200])


def _root_message(error: BaseException) -> str:
    """The innermost cause's message (httpx/OS errors say what really happened)."""
    seen = error
    while seen.__cause__ is not None or seen.__context__ is not None:
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]
    text = str(seen) or type(seen).__name__
    return " ".join(text.split())[:300]


def translate(error: BaseException, where: str, action: str) -> StoreError:
    """The project error for a Qdrant client error raised while doing `action` on the store `where`."""
    if isinstance(error, StoreError):
        return error
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    prefix = f"{where}: {action} failed"
    if isinstance(error, UnexpectedResponse):
        status, detail = error.status_code, _http_detail(error)
        if status in (401, 403):
            return AuthenticationError(f"{prefix}: the server refused the API key (HTTP {status})")
        if status == 404:
            return NotFoundError(f"{prefix}: not found ({detail})")
        if status == 429 or (status is not None and status >= 500):
            return TransientStoreError(f"{prefix}: HTTP {status} {detail}")
        return StoreError(f"{prefix}: HTTP {status} {detail}")
    if isinstance(error, ResponseHandlingException) or _is_network_error(error):
        message = _root_message(error)
        if "timed out" in message.lower() or "timeout" in type(error).__name__.lower():
            return TransientStoreError(f"{prefix}: timed out ({message})")
        return StoreUnavailableError(f"{prefix}: cannot reach the server ({message})")
    code = _grpc_code(error) if type(error).__module__.startswith("grpc") else None
    if code is not None:
        details = getattr(error, "details", lambda: "")() or code
        if code == "UNAVAILABLE":
            return StoreUnavailableError(f"{prefix}: cannot reach the server ({details})")
        if code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
            return AuthenticationError(f"{prefix}: the server refused the API key ({code})")
        if code == "NOT_FOUND":
            return NotFoundError(f"{prefix}: not found ({details})")
        if code in _TRANSIENT_GRPC:
            return TransientStoreError(f"{prefix}: {code} {details}")
        return StoreError(f"{prefix}: {code} {details}")
    message = " ".join(str(error).split())[:300] or type(error).__name__
    if "already accessed by another instance" in message or isinstance(error, PermissionError):
        return StoreLockedError(f"{prefix}: the folder is in use by another process or not writable ({message})")
    if isinstance(error, OSError):
        return StoreLockedError(f"{prefix}: {message}")
    if "not found" in message.lower() and "collection" in message.lower():
        return NotFoundError(f"{prefix}: {message}")
    return StoreError(f"{prefix}: {type(error).__name__}: {message}")


def _is_network_error(error: BaseException) -> bool:
    if isinstance(error, (TimeoutError, ConnectionError)):
        return True
    try:
        import httpx
    except ImportError:  # pragma: no cover - qdrant-client depends on httpx
        return False
    return isinstance(error, (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError))


@contextlib.contextmanager
def mapped_errors(where: str, action: str) -> Iterator[None]:
    """Re-raise any client error inside the block as the project's error (ours pass through)."""
    try:
        yield
    except SpladeError:
        raise
    except Exception as exc:
        raise translate(exc, where, action) from exc
