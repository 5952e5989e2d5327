"""The scheduling queue: which pending pod the scheduler tries next, and when a failed one is retried.

As kube-scheduler's ``PriorityQueue``, a pod is in one of three places:

- **active**: a heap in QueueSort order (:class:`~podlife.scheduler.plugins.PrioritySort`:
  priority, then age), which the scheduler loop pops in batches;
- **backoff**: a heap by the time its backoff ends (1 s, doubling to 10 s per
  attempt); a timer moves it to active when that time comes;
- **unschedulable**: it fitted nowhere and waits for a cluster change -- a node
  added or changed, an assigned pod gone (:meth:`SchedulingQueue.move_all`), or an
  update of its own scheduling constraints; for a pod with claims, an event of its claims,
  of a volume or of a class (:meth:`SchedulingQueue.move_where`) -- and at the latest five
  minutes (checked every 30 s); it then goes back through backoff.

A pod the loop has popped is *in flight* until it is bound or comes back, so
informer updates for it do not queue it twice. Heap entries carry a token: an
entry whose pod has moved on (or gone) is skipped when popped, which spares
removing anything from the middle of a heap.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import Counter
from collections.abc import Callable
from typing import Any

from .plugins import PodInfo, PrioritySort

INITIAL_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 10.0
#: an unschedulable pod is retried after this long even if nothing changed
MAX_UNSCHEDULABLE_SECONDS = 300.0
LEFTOVER_FLUSH_SECONDS = 30.0

ACTIVE, BACKOFF, UNSCHEDULABLE, IN_FLIGHT = "active", "backoff", "unschedulable", "in-flight"


class QueuedPod:
    __slots__ = ("info", "where", "attempts", "token", "backoff_until", "failed_at")

    def __init__(self, info: PodInfo) -> None:
        self.info = info
        self.where = ""
        self.attempts = 0
        self.token = 0
        self.backoff_until = 0.0
        self.failed_at = 0.0


class SchedulingQueue:
    """kube-scheduler's three queues: active (a heap in QueueSort order), backoff
    (a heap by the time the backoff ends) and unschedulable (waiting for a cluster
    change). A pod the loop has popped stays known as *in flight* until it is bound
    or comes back, so informer updates for it do not queue it twice.
    """

    def __init__(self, sort: PrioritySort | None = None, *, initial_backoff: float = INITIAL_BACKOFF_SECONDS,
                 max_backoff: float = MAX_BACKOFF_SECONDS,
                 max_unschedulable: float = MAX_UNSCHEDULABLE_SECONDS) -> None:
        self.sort = sort or PrioritySort()
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.max_unschedulable = max_unschedulable
        self._pods: dict[str, QueuedPod] = {}
        self._active: list[tuple[Any, int, str]] = []
        self._backoff: list[tuple[float, int, str]] = []
        self._unschedulable: dict[str, QueuedPod] = {}
        #: the unschedulable pods with claims (a superset: entries that left ``_unschedulable``
        #: are dropped when met), so volume events look at them only
        self._unschedulable_with_claims: dict[str, QueuedPod] = {}
        self._tokens = itertools.count(1)
        self._ready = asyncio.Event()
        self._backoff_timer: asyncio.TimerHandle | None = None
        self._backoff_timer_at = 0.0
        self._leftover_timer: asyncio.TimerHandle | None = None

    # -- lifecycle --

    def start(self) -> None:
        self._schedule_leftover_flush()

    def stop(self) -> None:
        for timer in (self._backoff_timer, self._leftover_timer):
            if timer is not None:
                timer.cancel()
        self._backoff_timer = self._leftover_timer = None

    # -- introspection --

    def __len__(self) -> int:
        return len(self._pods)

    def __contains__(self, key: str) -> bool:
        return key in self._pods

    def where(self, key: str) -> str:
        qp = self._pods.get(key)
        return qp.where if qp is not None else ""

    def counts(self) -> dict[str, int]:
        return dict(Counter(qp.where for qp in self._pods.values()))

    # -- informer side --

    def add(self, info: PodInfo) -> None:
        """A pending pod was added or changed."""
        qp = self._pods.get(info.key)
        if qp is None:
            qp = self._pods[info.key] = QueuedPod(info)
            self._push_active(qp)
            return
        changed = qp.info.uid != info.uid or _constraints(qp.info) != _constraints(info)
        qp.info = info
        if changed and qp.where == UNSCHEDULABLE:
            del self._unschedulable[info.key]
            self._requeue(qp, asyncio.get_running_loop().time())

    def delete(self, key: str) -> None:
        """The pod was bound, deleted, or is no longer this scheduler's."""
        qp = self._pods.pop(key, None)
        if qp is not None and qp.where == UNSCHEDULABLE:
            self._unschedulable.pop(key, None)
            self._unschedulable_with_claims.pop(key, None)
        # heap entries of removed pods are skipped when popped

    def move_all(self) -> None:
        """A cluster change may have made unschedulable pods schedulable."""
        if not self._unschedulable:
            return
        now = asyncio.get_running_loop().time()
        waiting, self._unschedulable = self._unschedulable, {}
        for qp in waiting.values():
            self._requeue(qp, now)

    def move_where(self, wanted: Callable[[PodInfo], bool]) -> None:
        """A volume event may have made some unschedulable pods with claims schedulable: those ``wanted`` picks."""
        if not self._unschedulable_with_claims:
            return
        now = asyncio.get_running_loop().time()
        for key, qp in list(self._unschedulable_with_claims.items()):
            if self._unschedulable.get(key) is not qp:
                del self._unschedulable_with_claims[key]
            elif wanted(qp.info):
                del self._unschedulable_with_claims[key]
                del self._unschedulable[key]
                self._requeue(qp, now)

    # -- scheduler side --

    async def pop_batch(self, limit: int) -> list[QueuedPod]:
        """Up to ``limit`` pods in QueueSort order; waits while none is active."""
        while True:
            batch: list[QueuedPod] = []
            while self._active and len(batch) < limit:
                _, token, key = heapq.heappop(self._active)
                qp = self._pods.get(key)
                if qp is None or qp.where != ACTIVE or qp.token != token:
                    continue
                qp.where = IN_FLIGHT
                qp.attempts += 1
                batch.append(qp)
            if batch:
                return batch
            self._ready.clear()
            await self._ready.wait()

    def done(self, key: str, uid: str | None = None) -> None:
        """The pod is bound (or gone): forget it (only if it still has ``uid``, when given)."""
        qp = self._pods.get(key)
        if qp is not None and (uid is None or qp.info.uid == uid):
            self.delete(key)

    def unschedulable(self, qp: QueuedPod) -> None:
        """The pod fits nowhere now: wait for a cluster change (or five minutes)."""
        if self._pods.get(qp.info.key) is not qp:
            return
        now = asyncio.get_running_loop().time()
        qp.failed_at = now
        qp.backoff_until = now + self.backoff_duration(qp.attempts)
        qp.where = UNSCHEDULABLE
        self._unschedulable[qp.info.key] = qp
        if qp.info.claims:
            self._unschedulable_with_claims[qp.info.key] = qp

    def backoff(self, key: str) -> None:
        """Scheduling or binding failed for another reason: retry after the backoff."""
        qp = self._pods.get(key)
        if qp is None or qp.where not in (IN_FLIGHT, ""):
            return
        now = asyncio.get_running_loop().time()
        qp.failed_at = now
        qp.backoff_until = now + self.backoff_duration(qp.attempts)
        self._requeue(qp, now)

    def backoff_duration(self, attempts: int) -> float:
        if attempts <= 1:
            return self.initial_backoff
        return min(self.initial_backoff * (2 ** min(attempts - 1, 30)), self.max_backoff)

    # -- internals --

    def _push_active(self, qp: QueuedPod) -> None:
        qp.where = ACTIVE
        qp.token = next(self._tokens)
        heapq.heappush(self._active, (self.sort.sort_key(qp.info, qp.token), qp.token, qp.info.key))
        self._ready.set()

    def _requeue(self, qp: QueuedPod, now: float) -> None:
        if qp.backoff_until <= now:
            self._push_active(qp)
            return
        qp.where = BACKOFF
        qp.token = next(self._tokens)
        heapq.heappush(self._backoff, (qp.backoff_until, qp.token, qp.info.key))
        self._arm_backoff_timer()

    def _arm_backoff_timer(self) -> None:
        if not self._backoff:
            return
        at = self._backoff[0][0]
        if self._backoff_timer is not None and self._backoff_timer_at <= at:
            return
        if self._backoff_timer is not None:
            self._backoff_timer.cancel()
        loop = asyncio.get_running_loop()
        self._backoff_timer_at = at
        self._backoff_timer = loop.call_at(at, self._flush_backoff)

    def _flush_backoff(self) -> None:
        self._backoff_timer = None
        now = asyncio.get_running_loop().time()
        while self._backoff and self._backoff[0][0] <= now:
            _, token, key = heapq.heappop(self._backoff)
            qp = self._pods.get(key)
            if qp is not None and qp.where == BACKOFF and qp.token == token:
                self._push_active(qp)
        self._arm_backoff_timer()

    def _schedule_leftover_flush(self) -> None:
        loop = asyncio.get_running_loop()
        self._leftover_timer = loop.call_later(LEFTOVER_FLUSH_SECONDS, self._flush_leftover)

    def _flush_leftover(self) -> None:
        now = asyncio.get_running_loop().time()
        stale = [qp for qp in self._unschedulable.values() if now - qp.failed_at >= self.max_unschedulable]
        for qp in stale:
            del self._unschedulable[qp.info.key]
            self._requeue(qp, now)
        self._schedule_leftover_flush()


def _constraints(info: PodInfo) -> tuple:
    """What an update must change for an unschedulable pod to deserve a new try."""
    return (info.resources_key(), info.tolerations, info.node_selector, info.affinity, info.priority, info.deleting)

