"""Leader election on a ``coordination.k8s.io`` Lease, as client-go's ``leaderelection`` does it.

Why: a controller set (or a scheduler) that two servers run must act from one of them
only. Each candidate runs :meth:`LeaderElector.run`; the one holding the Lease runs the
work, the others wait.

The rules (client-go's ``LeaseLock`` and ``LeaderElector``):

* the Lease ``spec`` has ``holderIdentity``, ``leaseDurationSeconds``, ``acquireTime``,
  ``renewTime`` and ``leaseTransitions`` (counted up each time the holder changes);
* a candidate takes the Lease when there is none, when it has no holder, or when the
  record has not changed for ``lease_duration`` *by the candidate's own clock* (the time
  it last saw the record change, not the holder's ``renewTime``: clocks of two hosts
  need not agree); every write is an update pinned to the read ``resourceVersion``, so
  of two candidates only one wins;
* the leader renews every ``retry_period``; when it cannot renew for
  ``renew_deadline`` it stops its work (the work is cancelled) and :meth:`run` returns;
* on a clean stop the leader releases the Lease (no holder, ``leaseDurationSeconds: 1``)
  so a standby takes over at once instead of after the lease duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..machinery.errors import ApiError
from ..machinery.timeutil import micro_time
from .base import LEASES, Client, Obj

log = logging.getLogger(__name__)


class LeaderElector:
    def __init__(self, client: Client, name: str, namespace: str, identity: str, *, lease_duration: float = 15.0,
                 renew_deadline: float = 10.0, retry_period: float = 2.0) -> None:
        self.client = client
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self._observed: tuple[Any, float] | None = None  # (the record's spec as last seen, when it was seen to change)
        self.is_leader = False

    async def run(self, work: Callable[[], Awaitable[None]]) -> None:
        """Wait for the Lease, run ``work`` while holding it; return when it is lost (``work`` cancelled)."""
        while not await self._try_acquire_or_renew():
            await asyncio.sleep(self.retry_period)
        self.is_leader = True
        log.info("%s became leader of %s/%s", self.identity, self.namespace, self.name)
        task = asyncio.ensure_future(work())
        try:
            await self._renew_until_lost(task)
        finally:
            self.is_leader = False
            if not task.done():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            with contextlib.suppress(Exception):
                await asyncio.shield(self._release())

    async def _renew_until_lost(self, task: asyncio.Future[None]) -> None:
        last_renewed = time.monotonic()
        while not task.done():
            done, _ = await asyncio.wait({task}, timeout=self.retry_period)
            if done:
                return
            if await self._try_acquire_or_renew():
                last_renewed = time.monotonic()
            elif time.monotonic() - last_renewed > self.renew_deadline:
                log.warning("%s lost the lease %s/%s", self.identity, self.namespace, self.name)
                return

    def _spec(self, old: Obj | None, now: str) -> Obj:
        previous = (old or {}).get("spec") or {}
        ours = previous.get("holderIdentity") == self.identity
        transitions = previous.get("leaseTransitions", 0) + (0 if ours or old is None else 1)
        return {"holderIdentity": self.identity, "leaseDurationSeconds": max(1, round(self.lease_duration)),
                "acquireTime": previous.get("acquireTime") if ours else now, "renewTime": now,
                "leaseTransitions": transitions}

    def _held_by_other(self, lease: Obj) -> bool:
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        if not holder or holder == self.identity:
            return False
        record = (holder, spec.get("renewTime"), spec.get("leaseDurationSeconds"))
        now = time.monotonic()
        if self._observed is None or self._observed[0] != record:
            self._observed = (record, now)
        duration = spec.get("leaseDurationSeconds") or self.lease_duration
        return now - self._observed[1] < duration

    async def _try_acquire_or_renew(self) -> bool:
        now = micro_time()
        try:
            lease = await self.client.get(LEASES, self.name, self.namespace)
        except ApiError as exc:
            if exc.code != 404:
                return False
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace}, "spec": self._spec(None, now)}
            try:
                await self.client.create(LEASES, body, self.namespace)
                return True
            except ApiError:
                return False
        if self._held_by_other(lease):
            return False
        lease["spec"] = self._spec(lease, now)
        try:
            await self.client.update(LEASES, lease)
            return True
        except ApiError:
            return False

    async def _release(self) -> None:
        lease = await self.client.get(LEASES, self.name, self.namespace)
        if (lease.get("spec") or {}).get("holderIdentity") != self.identity:
            return
        lease["spec"] = {**lease["spec"], "holderIdentity": None, "leaseDurationSeconds": 1,
                         "renewTime": micro_time()}
        await self.client.update(LEASES, lease)
