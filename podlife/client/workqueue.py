"""A work queue of keys with de-duplication and per-key retry backoff.

As in client-go: a key is queued once however often it is added while waiting; a key
being processed is not handed to a second worker, and is queued again afterwards if it
was added meanwhile. Failed keys come back after an exponential backoff. This lets a
controller react to a burst of events for one object with one reconcile.

Each key added wakes one idle worker, not all of them: a component that keeps
hundreds of workers (so that it gets its share of a busy event loop) must not pay
hundreds of task wake-ups per key.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
import logging

log = logging.getLogger(__name__)


class WorkQueue:
    def __init__(self, base_delay: float = 0.05, max_delay: float = 30.0) -> None:
        self._queue: deque[str] = deque()
        self._queued: set[str] = set()
        self._processing: set[str] = set()
        self._dirty: set[str] = set()
        self._failures: dict[str, int] = {}
        self._idle: deque[asyncio.Future[None]] = deque()  # workers waiting for a key
        self.base_delay = base_delay
        self.max_delay = max_delay

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, key: str) -> None:
        if key in self._processing:
            self._dirty.add(key)
            return
        if key in self._queued:
            return
        self._queued.add(key)
        self._queue.append(key)
        self._wake_one()

    def _wake_one(self) -> None:
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def add_after(self, key: str, delay: float) -> None:
        asyncio.get_running_loop().call_later(delay, self.add, key)

    def retry(self, key: str) -> None:
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        self.add_after(key, min(self.base_delay * (2 ** n), self.max_delay))

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    async def get(self) -> str:
        while not self._queue:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._idle.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # woken, then cancelled: hand the wake-up on
                raise
        key = self._queue.popleft()
        self._queued.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    async def run_workers(self, handler: Callable[[str], Awaitable[None]], workers: int = 4) -> None:
        """Process keys forever with ``workers`` concurrent handlers; failures retry with backoff."""

        async def worker() -> None:
            while True:
                key = await self.get()
                try:
                    await handler(key)
                    self.forget(key)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("work queue: handling %s failed; will retry", key)
                    self.retry(key)
                finally:
                    self.done(key)

        await asyncio.gather(*(worker() for _ in range(workers)))
