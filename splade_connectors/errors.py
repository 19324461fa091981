"""One error hierarchy for everything the adapters raise, and the masking of secrets in messages.

    SpladeError (trainer.errors)             root: every error meant for the user
    ├── ConfigError                          an option value is invalid
    ├── DatasetError (trainer.errors)        an evaluation dataset cannot be found or read
    ├── (core) CheckpointError, EncodingInputError, SparseVectorError, DataError: model, text, vector, training data
    ├── InputError                           the input as a whole is unusable (empty file, no valid record)
    ├── StoreError                           a store refused or failed an operation (`transient` says retry or not)
    │   ├── TransientStoreError              worth retrying: timeouts, 429, 5xx, connection lost
    │   │   └── StoreUnavailableError        the store cannot be reached at all
    │   ├── AuthenticationError              wrong or missing credentials (401/403)
    │   ├── NotFoundError                    the collection or index does not exist
    │   ├── ConfigMismatchError              it exists but is configured differently
    │   │   └── EncodingMismatchError        it holds vectors of another model or encoding options
    │   ├── StoreLockedError                 an embedded store's folder is locked or read-only
    │   ├── RequestTooLargeError             a request was over the store's size limit (smaller ones may pass)
    │   ├── StorageFullError                 an embedded store's disk is full, or too full to write safely
    │   └── RejectedDocumentsError           the store refused some documents (by id, with reasons)
    ├── IngestError                          an ingestion stopped (earlier batches are stored)
    │   └── ResumeError                      a checkpoint is unreadable or belongs to another run or store
    └── ServerError                          a local server (`splade_connectors.live`) cannot be fetched, started or stopped

Each adapter maps its client library's exceptions into this hierarchy in one place (its `errors.py`),
so callers never see qdrant-client, qdrant-edge or opensearch-py exceptions. Messages name the store
(`SparseStore.describe()`: kind, location, collection) and never a secret: `mask_url` removes URL
credentials from a message, `mask_one_url` from one URL even when it is malformed (`splade_connectors.urls`),
and `redact` removes any known secret value from a message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from trainer.errors import ConfigError, DatasetError, SpladeError, config_error

__all__ = [
    "AuthenticationError",
    "ConfigError",
    "ConfigMismatchError",
    "DatasetError",
    "EncodingMismatchError",
    "IngestError",
    "InputError",
    "NotFoundError",
    "RejectedDocumentsError",
    "RequestTooLargeError",
    "ResumeError",
    "ServerError",
    "SpladeError",
    "StoreError",
    "StorageFullError",
    "StoreLockedError",
    "StoreUnavailableError",
    "TransientStoreError",
    "config_error",
    "mask_one_url",
    "mask_url",
    "redact",
]


class InputError(SpladeError):
    """The input as a whole cannot be used (missing file, no records, no valid record)."""


class StoreError(SpladeError):
    """A store refused or failed an operation. `transient` says whether retrying can help."""

    transient: bool = False


class TransientStoreError(StoreError):
    """Worth retrying: timeouts, throttling (429), server errors (5xx), a lost connection."""

    transient = True


class StoreUnavailableError(TransientStoreError):
    """The store cannot be reached (connection refused, DNS failure, timeout on connect)."""


class AuthenticationError(StoreError):
    """The store refused the credentials (HTTP 401/403, gRPC UNAUTHENTICATED/PERMISSION_DENIED)."""


class NotFoundError(StoreError):
    """The collection or index does not exist (and the operation does not create it)."""


class ConfigMismatchError(StoreError):
    """An existing collection or index does not have the configuration that was asked for."""


class EncodingMismatchError(ConfigMismatchError):
    """The collection or index was written with another encoder identity than the one at hand (`stored_encoding`)."""


class StoreLockedError(StoreError):
    """An embedded store's folder is in use by another process, or cannot be written."""


class RequestTooLargeError(StoreError):
    """The store refused a request for its size (Qdrant's `service.max_request_size_mb`, HTTP 413): smaller requests may pass."""


class StorageFullError(StoreError):
    """An embedded store's file system is full, or has less free space than a write needs plus the reserve.

    The embedded Qdrant engine writes through memory maps: on a full disk it is killed by SIGBUS, so
    writes are refused before the space runs out. Free space, then resume (a checkpointed run continues).
    """


class RejectedDocumentsError(StoreError):
    """The store refused some documents of a write; `failures` maps document id -> reason.

    `others_written` tells whether the other documents of the same write were stored (OpenSearch's
    `_bulk` writes item by item) or not (a Qdrant batch is applied whole or not at all).
    """

    def __init__(self, failures: Mapping[str, str], *, total: int, others_written: bool, store: str = "") -> None:
        self.failures = dict(failures)
        self.total = total
        self.others_written = others_written
        shown = "; ".join(f"{doc!r}: {reason}" for doc, reason in list(self.failures.items())[:3])
        more = f" (+{len(self.failures) - 3} more)" if len(self.failures) > 3 else ""
        where = f"{store}: " if store else ""
        super().__init__(f"{where}{len(self.failures)} of {total} documents rejected: {shown}{more}")


class IngestError(SpladeError):
    """An ingestion stopped; every batch before the failing one is stored and checkpointed."""


class ResumeError(IngestError):
    """A checkpoint cannot be used: unreadable, from another source/store/model, or the store lost data."""


class ServerError(SpladeError):
    """A local server of `splade_connectors.live` (native OpenSearch, Qdrant binary) cannot be fetched, started or stopped.

    The message says what failed (a download, no JDK, a port clash, the server's own log tail on a crash).
    """


# userinfo runs to the last "@" of the URL (a password may itself hold "@", ":", or unencoded "/", "?", "#":
# malformed, but masked all the same)
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>\S+)@")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def mask_url(url: str) -> str:
    """The URL with its credentials masked: `http://admin:secret@h` -> `http://admin:***@h`, `http://key@h` -> `http://***@h`."""
    return _URL_CREDENTIALS.sub(lambda m: f"{m.group('scheme')}{_mask_userinfo(m.group('userinfo'))}@", url)


def mask_one_url(url: str) -> str:
    """One URL, well-formed or not, for a message: what precedes its last `@` is masked as by `mask_url`; without
    an `@`, a port that is not a number is `***` with all after it (`http://admin:secret` is a password without a host)."""
    scheme = _SCHEME.match(url)
    prefix, rest = (url[: scheme.end()], url[scheme.end() :]) if scheme else ("", url)
    if "@" in rest:
        userinfo, _, after = rest.rpartition("@")
        return f"{prefix}{_mask_userinfo(userinfo)}@{after}"
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    host, colon, port = rest[:end].partition(":")
    if colon and not rest.startswith("[") and not (port.isascii() and port.isdigit()):
        return f"{prefix}{host}:***"
    return url


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with URL credentials masked and every given secret value replaced by `***`."""
    out = mask_url(text)
    for secret in secrets:
        if secret and len(secret) >= 3:
            out = out.replace(secret, "***")
    return out


def _mask_userinfo(userinfo: str) -> str:
    user, sep, _ = userinfo.partition(":")
    return f"{user}:***" if sep and not any(c in user for c in "/?#") else "***"
