"""The one retry policy for store operations: bounded exponential backoff, transient errors only.

Adapters translate their client's exceptions into the project's `StoreError`s, whose `transient`
flag decides: timeouts, throttling, 5xx and lost connections are retried; everything else (bad
requests, authentication, missing collections, rejected documents) fails at once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from splade_connectors.errors import StoreError

logger = logging.getLogger(__name__)

T = TypeVar("T")


def is_transient(error: BaseException) -> bool:
    """Whether retrying can help: a `StoreError` flagged transient."""
    return isinstance(error, StoreError) and error.transient


class RetryPolicy(BaseModel):
    """Bounded exponential backoff (with jitter) for transient store errors."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    attempts: int = Field(5, ge=1, description="tries in all, the first included")
    initial_wait: float = Field(0.5, ge=0, description="seconds before the first retry; doubles each time")
    max_wait: float = Field(20.0, ge=0, description="cap on one wait, seconds")

    def retrying(self, what: str = "store operation") -> Retrying:
        """A tenacity `Retrying` for this policy; logs each retry with the error that caused it."""
        return Retrying(**self._options(what))

    def _options(self, what: str) -> dict[str, Any]:
        """The tenacity options of this policy, shared by the blocking and the async form."""

        def log_retry(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            logger.warning("%s failed (attempt %d of %d), retrying: %s", what, state.attempt_number, self.attempts, error)

        return {
            "retry": retry_if_exception(is_transient),
            "stop": stop_after_attempt(self.attempts),
            "wait": wait_exponential(multiplier=self.initial_wait, max=self.max_wait) + wait_random(0, self.initial_wait),
            "before_sleep": log_retry,
            "reraise": True,
        }

    def call(self, fn: Callable[..., T], *args: object, what: str = "store operation", **kwargs: object) -> T:
        """`fn(*args, **kwargs)`, retried on transient store errors."""
        return self.retrying(what)(fn, *args, **kwargs)

    async def acall(self, fn: Callable[..., Awaitable[T]], *args: object, what: str = "store operation", **kwargs: object) -> T:
        """`await fn(*args, **kwargs)`, retried on transient store errors (waits without blocking the event loop)."""
        return await AsyncRetrying(**self._options(what))(fn, *args, **kwargs)


DEFAULT_RETRY = RetryPolicy()
