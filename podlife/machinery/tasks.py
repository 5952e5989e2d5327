"""Supervised background tasks: start named tasks, log the ones that crash, stop them all.

Every long-running part of podlife (the cluster's controllers, a kubelet's loops,
a pod worker's helpers, the simulator, the scheduler's status writes) starts
asyncio tasks it does not await right away. Left to themselves such tasks fail
silently (asyncio only complains when the task is garbage-collected) and outlive
their owner. A :class:`Supervisor` is the one place that handles both:

- :meth:`Supervisor.start` starts a task under a name and keeps a reference to
  it while it runs (asyncio holds only weak ones);
- when a task ends with an exception other than cancellation, that is logged at
  once, with the task's name and the traceback -- the task is not restarted:
  what a crash means is its owner's business;
- :meth:`Supervisor.stop` cancels every task still running and waits for them
  all; :meth:`Supervisor.cancel` only cancels (for owners that cannot wait,
  such as a ``finally`` that must not block), :meth:`Supervisor.wait` only
  waits (to let best-effort work such as event writes finish).

It is like :class:`asyncio.TaskGroup` without the group's all-or-nothing
semantics: one task crashing does not cancel its siblings. Tasks are forgotten
as they finish, so a supervisor may start any number of short tasks over its
life at the cost of a set insertion and a done callback each.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterator
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class Supervisor:
    """Owns the background tasks of one component (``owner`` names it in crash reports)."""

    def __init__(self, owner: str = "", *, logger: logging.Logger | None = None) -> None:
        self.owner = owner
        self._log = logger or log
        self._tasks: set[asyncio.Task[Any]] = set()

    def __repr__(self) -> str:
        return f"<Supervisor {self.owner or '?'}: {len(self._tasks)} tasks>"

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[asyncio.Task[Any]]:
        return iter(list(self._tasks))

    def start(self, work: Awaitable[T], name: str | None = None) -> asyncio.Task[T]:
        """Run ``work`` (a coroutine or other awaitable) as a supervised task."""
        coro = work if asyncio.iscoroutine(work) else _awaited(work)
        task: asyncio.Task[T] = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def cancel(self) -> None:
        """Cancel every running task without waiting for them."""
        for task in self._tasks:
            task.cancel()

    async def wait(self) -> None:
        """Wait until every task running now has ended (without cancelling any)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def stop(self) -> None:
        """Cancel every running task and wait until all have ended (their errors are only logged)."""
        while self._tasks:
            pending = list(self._tasks)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            self._tasks.difference_update(pending)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            where = f"{self.owner}: " if self.owner else ""
            self._log.error("%stask %s crashed", where, task.get_name(), exc_info=error)


async def _awaited(work: Awaitable[T]) -> T:
    """A coroutine awaiting ``work`` (a future, say), so that it runs as a named task."""
    return await work
