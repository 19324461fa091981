"""What the async API shares: async clients bound to their event loop, and blocking work kept off the loop.

- `LoopClient`: an async client (qdrant-client's `AsyncQdrantClient`, opensearch-py's `AsyncOpenSearch`)
  belongs to the event loop it was first used on (its connection pool does). One is made per running
  loop on first use; a call from another loop (a new `asyncio.run`, a test) gets a fresh one.
- `serialised`: one lock per object (an encoder), so the worker threads that keep blocking work
  (`asyncio.to_thread`) off the loop use it one call at a time: an encoder keeps per-call state
  (`stats`), and its model runs its own intra-op threads already.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
ClientT = TypeVar("ClientT")

_LOCKS: weakref.WeakKeyDictionary[object, threading.Lock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()
_SHARED_LOCK = threading.Lock()  # for objects that cannot be weakly referenced


def lock_for(owner: object) -> threading.Lock:
    """The lock of `owner` (made on first use, forgotten with the object)."""
    with _LOCKS_GUARD:
        try:
            lock = _LOCKS.get(owner)
            if lock is None:
                lock = _LOCKS[owner] = threading.Lock()
            return lock
        except TypeError:  # not weakly referenceable or not hashable
            return _SHARED_LOCK


def serialised(owner: object, fn: Callable[..., T]) -> Callable[..., T]:
    """`fn` holding the lock of `owner` while it runs."""

    @functools.wraps(fn)
    def locked(*args: object, **kwargs: object) -> T:
        with lock_for(owner):
            return fn(*args, **kwargs)

    return locked


class LoopClient(Generic[ClientT]):
    """An async client per running event loop, made on first use; `aclose` closes the current one."""

    def __init__(self, make: Callable[[], ClientT], close: Callable[[ClientT], Awaitable[object]]) -> None:
        self._make, self._close = make, close
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: ClientT | None = None

    def get(self) -> ClientT:
        """The client of the running loop (call from a coroutine)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            if self._client is not None:  # made on a loop that is gone or another one: its pool cannot be used here
                logger.debug("new async client for another event loop")
            self._client, self._loop = self._make(), loop
        return self._client

    async def aclose(self) -> None:
        """Close the client, when it belongs to the running loop (a client of another loop is dropped)."""
        client, loop = self._client, self._loop
        self._client = self._loop = None
        if client is not None and loop is asyncio.get_running_loop():
            await self._close(client)

    def discard(self) -> None:
        """Forget the client without awaiting its close (from blocking code: `close()` of a store).

        When its loop is still running, the close is scheduled on it; otherwise the pool went with the loop.
        """
        client, loop = self._client, self._loop
        self._client = self._loop = None
        if client is None or loop is None or loop.is_closed() or not loop.is_running():
            return
        with contextlib.suppress(RuntimeError):  # the loop stopped meanwhile
            asyncio.run_coroutine_threadsafe(_quietly(self._close(client)), loop)


async def _quietly(closing: Awaitable[object]) -> None:
    try:
        await closing
    except Exception as exc:  # noqa: BLE001 - closing a client that is going away anyway
        logger.debug("closing an async client failed: %s", exc)
