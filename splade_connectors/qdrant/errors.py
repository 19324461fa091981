"""The one place where errors of every Qdrant engine become the project's errors.

- qdrant-client (server, local mode) raises `UnexpectedResponse` (HTTP status + body),
  `ResponseHandlingException` (httpx trouble underneath: refused connections, timeouts), grpc
  `RpcError`s (with `prefer_grpc`), and in local mode plain `ValueError`/`RuntimeError`s.
- the embedded engine (qdrant-edge) raises plain `Exception`s whose message is the engine's error
  text, and pyo3 `PanicException` (a `BaseException`) when the engine panics.

`translate` maps each to a `StoreError` subclass with one line naming the store (collection and
location, never the API key), the action and the cause; its `transient` flag drives the retry
policy: network trouble, timeouts, 429, 5xx and gRPC UNAVAILABLE/DEADLINE_EXCEEDED are transient;
validation, authentication, missing collections, locked folders and engine errors are permanent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable, Iterator

from splade_connectors.errors import (
    AuthenticationError,
    NotFoundError,
    SpladeError,
    StoreError,
    StoreLockedError,
    StoreUnavailableError,
    TransientStoreError,
    redact,
)

_TRANSIENT_GRPC = {"DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED", "INTERNAL", "UNKNOWN"}
_MAX_DETAIL = 300


def _one_line(text: str) -> str:
    return " ".join(text.split())[:_MAX_DETAIL]


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
    content = getattr(error, "content", b"") or b""
    try:
        body = json.loads(content or b"{}")
        status = body.get("status")
        if isinstance(status, dict):  # Qdrant: {"status": {"error": "..."}}
            detail = status.get("error")
        else:  # a proxy's or gateway's JSON: a text status, else its "error"
            detail = status if isinstance(status, str) else body.get("error") if isinstance(body.get("error"), str) else None
    except (ValueError, AttributeError):
        detail = content.decode(errors="replace") if isinstance(content, bytes) else str(content)
    reason = getattr(error, "reason_phrase", "") or ""
    return _one_line(str(detail or reason or ""))


def _root_message(error: BaseException) -> str:
    """The innermost cause's message (httpx/OS errors say what really happened)."""
    seen = error
    while seen.__cause__ is not None or seen.__context__ is not None:
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]  # the loop condition says one of them is set
    return _one_line(str(seen) or type(seen).__name__)


def _is_network_error(error: BaseException) -> bool:
    if isinstance(error, (TimeoutError, ConnectionError)):
        return True
    try:
        import httpx
    except ImportError:  # pragma: no cover - qdrant-client depends on httpx
        return False
    return isinstance(error, (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError))


def _is_timeout(error: BaseException, message: str) -> bool:
    names = [type(e).__name__.lower() for e in (error, error.__cause__, error.__context__) if e is not None]
    return "timed out" in message.lower() or any("timeout" in n for n in names)


def translate(error: BaseException, where: str, action: str, *, edge: bool = False) -> StoreError:
    """The project error for an engine error raised while doing `action` on the store `where`.

    `edge`: the error comes from the embedded engine (qdrant-edge), not from qdrant-client.
    """
    if isinstance(error, StoreError):
        return error
    prefix = f"{where}: {action} failed"
    if edge or type(error).__name__ == "PanicException":
        return _translate_edge(error, prefix, _one_line(str(error)) or type(error).__name__)
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    if isinstance(error, UnexpectedResponse):
        status, detail = error.status_code, _http_detail(error)
        if status in (401, 403):
            return AuthenticationError(f"{prefix}: the server refused the API key (HTTP {status}: {detail or 'unauthorized'})")
        if status == 404:
            return NotFoundError(f"{prefix}: not found ({detail})")
        if status == 429 or (status is not None and status >= 500):
            return TransientStoreError(f"{prefix}: HTTP {status} {detail}")
        return StoreError(f"{prefix}: the server refused the request (HTTP {status}: {detail})")
    if isinstance(error, ResponseHandlingException) or _is_network_error(error):
        message = _root_message(error)
        if _is_timeout(error, message):
            return TransientStoreError(f"{prefix}: timed out ({message})")
        return StoreUnavailableError(f"{prefix}: cannot reach the server ({message})")
    code = _grpc_code(error) if type(error).__module__.startswith("grpc") else None
    if code is not None:
        details = _one_line(getattr(error, "details", lambda: "")() or code)
        if code == "UNAVAILABLE":
            return StoreUnavailableError(f"{prefix}: cannot reach the server ({details})")
        if code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
            return AuthenticationError(f"{prefix}: the server refused the API key ({code}: {details})")
        if code == "NOT_FOUND":
            return NotFoundError(f"{prefix}: not found ({details})")
        if code == "DEADLINE_EXCEEDED":
            return TransientStoreError(f"{prefix}: timed out ({details})")
        if code in _TRANSIENT_GRPC:
            return TransientStoreError(f"{prefix}: {code} {details}")
        return StoreError(f"{prefix}: the server refused the request ({code}: {details})")
    message = _one_line(str(error)) or type(error).__name__
    if "already accessed by another instance" in message or isinstance(error, PermissionError):
        return StoreLockedError(f"{prefix}: the folder is in use by another process or not writable ({message})")
    if isinstance(error, OSError):
        return StoreLockedError(f"{prefix}: {message}")
    if "not found" in message.lower() and "collection" in message.lower():
        return NotFoundError(f"{prefix}: {message}")
    return StoreError(f"{prefix}: {type(error).__name__}: {message}")


def _translate_edge(error: BaseException, prefix: str, message: str) -> StoreError:
    """The embedded engine's errors: all permanent (nothing to retry in-process)."""
    if type(error).__name__ == "PanicException":
        return StoreError(f"{prefix}: the embedded Qdrant engine panicked ({message})")
    lowered = message.lower()
    if "wouldblock" in lowered or "resource temporarily unavailable" in lowered:
        return StoreLockedError(f"{prefix}: the folder is in use by another process or store ({message})")
    if isinstance(error, PermissionError) or "permission denied" in lowered or "read-only file system" in lowered:
        return StoreLockedError(f"{prefix}: the folder is not writable ({message})")
    if "not found" in lowered and ("collection" in lowered or "shard" in lowered):
        return NotFoundError(f"{prefix}: {message}")
    return StoreError(f"{prefix}: the embedded Qdrant engine refused it ({message})")


@contextlib.contextmanager
def mapped_errors(where: str, action: str, secrets: Iterable[str] = (), *, edge: bool = False) -> Iterator[None]:
    """Re-raise any engine error inside the block as the project's error (ours pass through).

    Messages are redacted of `secrets` as a last line of defence (they never should contain one).
    """
    try:
        yield
    except SpladeError:
        raise
    except (KeyboardInterrupt, SystemExit, GeneratorExit, asyncio.CancelledError):  # an async search's cancellation too
        raise
    except BaseException as exc:  # pyo3's PanicException is a BaseException
        mapped = translate(exc, where, action, edge=edge)
        secret_list = [s for s in secrets if s]
        if secret_list and mapped is not exc:
            mapped.args = (redact(str(mapped), secret_list),)
        raise mapped from exc
