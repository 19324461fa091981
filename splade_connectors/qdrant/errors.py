"""Which qdrant-client errors are worth retrying: network trouble, timeouts, 429 and 5xx.

4xx answers (bad request, wrong vector name, validation errors) are permanent: retrying them only
delays the report of a bug.
"""

from __future__ import annotations

from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from splade_connectors.store import StoreError, TransientStoreError

_TRANSIENT_GRPC = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED"}


def _grpc_code(error: BaseException) -> str | None:
    code = getattr(error, "code", None)
    if not callable(code):
        return None
    try:
        value = code()
    except Exception:  # noqa: BLE001 - not a grpc error after all
        return None
    return getattr(value, "name", None)


def is_transient(error: BaseException) -> bool:
    """Whether a Qdrant error is worth retrying."""
    if isinstance(error, TransientStoreError):
        return True
    if isinstance(error, StoreError):
        return False
    if isinstance(error, UnexpectedResponse):
        status = error.status_code
        return status is not None and (status == 429 or status >= 500)
    if isinstance(error, ResponseHandlingException):  # connection refused/reset, timeouts (httpx under it)
        return True
    if isinstance(error, (TimeoutError, ConnectionError)):
        return True
    try:
        import httpx
    except ImportError:  # pragma: no cover - qdrant-client depends on httpx
        httpx = None  # type: ignore[assignment]
    if httpx is not None and isinstance(error, (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)):
        return True
    if type(error).__module__.startswith("grpc"):
        return _grpc_code(error) in _TRANSIENT_GRPC
    return False
