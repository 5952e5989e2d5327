"""API Priority and Fairness, in spirit: bounded concurrency per priority level, fair queuing per user.

Why: without a bound, a flood of requests from one client (a runaway controller, a
loop in a script) makes every request slower until nothing answers -- the API server
itself collapses. kube-apiserver bounds how many requests execute at once and lets
the rest wait in queues, fairly per *flow* (a user), and answers ``429 Too Many
Requests`` with ``Retry-After`` when a queue is full or a request waited too long.
podlife does the same, with Kubernetes' default configuration in its shape:

* **Priority levels** with nominal shares of the server's total concurrency (the
  default ``--max-requests-inflight`` 400 plus ``--max-mutating-requests-inflight``
  200 = 600 seats): ``system`` (nodes, 30), ``node-high`` (40), ``workload-high``
  (the control plane's own components, 40), ``workload-low`` (service accounts, 100),
  ``global-default`` (other authenticated users, 20), ``catch-all`` (5). Seats per
  level are ``ceil(600 * shares / sum of shares)``.
* **exempt**: members of ``system:masters`` (the admin), as Kubernetes' ``exempt``
  FlowSchema, and long-running requests (watches, exec/attach/port-forward, following
  logs), which are never counted, as in Kubernetes.
* **Fair queuing**: a request that finds its level's seats taken waits in its user's
  queue; when a seat frees, the next request is taken round-robin over the users that
  have one waiting, so one busy user cannot starve the others. A user's queue holds at
  most ``queue_length`` requests; a request waits at most ``queue_wait`` seconds
  (Kubernetes: a quarter of the 60 s request timeout). Either way the answer is a
  ``429`` Status (``TooManyRequests``, "Too many requests, please try again later.")
  with ``Retry-After: 1``.

Cost on the fast path (a seat is free): a dict lookup for the level, a counter up and
down. In-process components (the ``LocalClient``) do not pass through HTTP and are not
counted.
"""

from __future__ import annotations

import asyncio
import math
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..machinery import errors
from ..machinery.query import TRUE_WORDS
from .identity import UserInfo
from .keys import USER

TOTAL_SEATS = 600  # kube-apiserver's default max-requests-inflight + max-mutating-requests-inflight
TOO_MANY_MESSAGE = "Too many requests, please try again later."
LONG_RUNNING_SUBRESOURCES = frozenset({"exec", "attach", "portforward", "proxy"})


@dataclass(frozen=True)
class LevelConfig:
    name: str
    shares: int
    queue_length: int = 50
    queue_wait: float = 15.0


#: Kubernetes' default priority levels (nominal concurrency shares).
DEFAULT_LEVELS = (
    LevelConfig("system", 30),
    LevelConfig("node-high", 40),
    LevelConfig("workload-high", 40),
    LevelConfig("workload-low", 100),
    LevelConfig("global-default", 20),
    LevelConfig("catch-all", 5, queue_length=10),
)

#: The users the control plane's components act as (the workload-high FlowSchema).
CONTROL_PLANE_USERS = frozenset({"system:kube-controller-manager", "system:kube-scheduler"})


def classify(user: UserInfo | None) -> str | None:
    """The priority level of ``user``'s requests; None: exempt (never queued)."""
    if user is None:
        return "catch-all"
    groups = user.groups
    if "system:masters" in groups:
        return None
    if "system:nodes" in groups:
        return "node-high"
    if user.username in CONTROL_PLANE_USERS or "system:serviceaccounts:kube-system" in groups:
        return "workload-high"
    if "system:serviceaccounts" in groups:
        return "workload-low"
    if "system:authenticated" in groups:
        return "global-default"
    return "catch-all"


def long_running(request: web.Request) -> bool:
    """Watches, streams and followed logs: not counted against any level (as in Kubernetes)."""
    query = request.query
    if "/watch/" in request.path or _true(query.get("watch")) or _true(query.get("follow")):
        return True
    last = request.path.rstrip("/").rsplit("/", 1)[-1]
    return last in LONG_RUNNING_SUBRESOURCES


def _true(value: str | None) -> bool:
    """A true ParseBool value (a malformed one is not: its handler answers it with a 400)."""
    return value is not None and value in TRUE_WORDS


class Rejected(Exception):
    """The request may not run now (queue full, or it waited too long)."""


@dataclass
class Level:
    """One priority level: its seats and the per-user queues of requests waiting for one."""

    config: LevelConfig
    seats: int
    executing: int = 0
    queues: OrderedDict[str, deque[asyncio.Future[None]]] = field(default_factory=OrderedDict)
    rejected: int = 0

    async def acquire(self, flow: str) -> None:
        if self.executing < self.seats and not self.queues:
            self.executing += 1
            return
        queue = self.queues.get(flow)
        if queue is None:
            queue = self.queues[flow] = deque()
        if len(queue) >= self.config.queue_length:
            self.rejected += 1
            raise Rejected(f"queue of {flow!r} full")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.config.queue_wait)
        except TimeoutError:
            if waiter.done() and not waiter.cancelled():  # granted just as the wait ran out: keep it
                return
            waiter.cancel()
            self._drop(flow, waiter)
            self.rejected += 1
            raise Rejected(f"waited {self.config.queue_wait}s") from None
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # granted, but the client went away
            else:
                waiter.cancel()
                self._drop(flow, waiter)
            raise

    def release(self) -> None:
        """A request ended: hand its seat to the next waiting request, round-robin over users."""
        while self.queues:
            flow, queue = next(iter(self.queues.items()))
            waiter = queue.popleft()
            if queue:
                self.queues.move_to_end(flow)  # this user had its turn
            else:
                del self.queues[flow]
            if not waiter.done():
                waiter.set_result(None)  # the seat passes on: executing stays the same
                return
        self.executing -= 1

    def _drop(self, flow: str, waiter: asyncio.Future[None]) -> None:
        queue = self.queues.get(flow)
        if queue is None:
            return
        try:
            queue.remove(waiter)
        except ValueError:
            return
        if not queue:
            del self.queues[flow]


class FlowControl:
    """The levels of one API server, and the middleware that puts requests through them."""

    def __init__(self, levels: tuple[LevelConfig, ...] = DEFAULT_LEVELS, total_seats: int = TOTAL_SEATS,
                 classifier: Callable[[UserInfo | None], str | None] = classify) -> None:
        shares = sum(level.shares for level in levels)
        self.levels = {c.name: Level(c, max(1, math.ceil(total_seats * c.shares / shares))) for c in levels}
        self.classifier = classifier

    def level_for(self, user: UserInfo | None) -> Level | None:
        name = self.classifier(user)
        return None if name is None else self.levels.get(name) or self.levels.get("catch-all")

    @property
    def middleware(self) -> Any:
        @web.middleware
        async def flow_control(request: web.Request,
                               handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
            user = request.get(USER)
            level = self.level_for(user)
            if level is None or long_running(request):
                return await handler(request)
            try:
                await level.acquire(user.username if user is not None else "system:anonymous")
            except Rejected:
                raise too_many_requests() from None
            try:
                return await handler(request)
            finally:
                level.release()

        return flow_control


def too_many_requests(retry_after: int = 1) -> errors.ApiError:
    """Kubernetes' 429 for a request priority and fairness turned away."""
    exc = errors.ApiError(429, "TooManyRequests", TOO_MANY_MESSAGE, {"retryAfterSeconds": retry_after})
    exc.retry_after = retry_after
    return exc


__all__ = ["DEFAULT_LEVELS", "FlowControl", "LevelConfig", "classify", "long_running", "too_many_requests"]
