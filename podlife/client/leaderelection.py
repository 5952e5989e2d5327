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
* on a clean stop the leader releases the Lease (holder ``""``, ``leaseDurationSeconds: 1``, as client-go)
  so a standby takes over at once instead of after the lease duration.

The first attempt is made at once (no retry period first), so a candidate on a fresh
cluster -- or one restarted under the identity that still holds the Lease -- starts its
work within one read and one write.

:func:`run_while_leading` is what a component runs (``podlife scheduler``,
``podlife controller-manager``, and the scheduler and controllers of ``podlife up``): its
work at once without election (``--leader-elect=false``), else while it holds the Lease;
a lost Lease ends it with :class:`LeaderElectionLost` (kube-scheduler and
kube-controller-manager exit then: "leaderelection lost"), an error of the work is
raised as it is. :class:`LeaderElectionConfig` holds component-base's
``LeaderElectionConfiguration`` (the ``--leader-elect*`` flags), and :func:`together`
runs several works as one (the controllers and the network controller under one Lease).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
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
        #: set when :meth:`run` returned because the Lease could not be renewed (not because the work ended)
        self.lost = False

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
                self.lost = True
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
            if self._observed is None or self._observed[0][0] != holder:  # once per holder: who is waited for
                log.info("%s: the lease %s/%s is held by %s; standing by", self.identity, self.namespace,
                         self.name, holder)
            self._observed = (record, now)
        duration = spec.get("leaseDurationSeconds") or self.lease_duration
        return now - self._observed[1] < duration

    async def _try_acquire_or_renew(self) -> bool:
        """One attempt; any failure (the API server unreachable too, over HTTP) is a failed attempt, as in
        client-go: a standby keeps trying, a leader keeps trying until its renew deadline."""
        try:
            return await self._acquire_or_renew()
        except Exception as exc:  # connection errors, timeouts: retried after the retry period
            log.debug("%s: lease %s/%s attempt failed: %s", self.identity, self.namespace, self.name, exc)
            return False

    async def _acquire_or_renew(self) -> bool:
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
        lease["spec"] = {**lease["spec"], "holderIdentity": "", "leaseDurationSeconds": 1,
                         "renewTime": micro_time()}
        await self.client.update(LEASES, lease)


@dataclass(frozen=True)
class LeaderElectionConfig:
    """component-base's ``LeaderElectionConfiguration``: the ``--leader-elect*`` flags, their defaults."""

    #: ``--leader-elect-resource-name``: the Lease (``kube-scheduler``, ``kube-controller-manager``)
    resource_name: str
    #: ``--leader-elect-resource-namespace``
    resource_namespace: str = "kube-system"
    #: ``--leader-elect``: take the Lease before working (false: work at once, alone by assumption)
    leader_elect: bool = True
    #: ``--leader-elect-lease-duration``: how long a standby waits after the last seen renewal
    lease_duration: float = 15.0
    #: ``--leader-elect-renew-deadline``: how long the leader retries renewing before it stops
    renew_deadline: float = 10.0
    #: ``--leader-elect-retry-period``: how often candidates try to acquire or renew
    retry_period: float = 2.0

    def problems(self) -> list[str]:
        """What component-base's validation refuses (kube-scheduler and kube-controller-manager exit on it)."""
        if not self.leader_elect:
            return []
        found = [f"leaderElection.{name} must be greater than zero"
                 for name, value in (("leaseDuration", self.lease_duration), ("renewDeadline", self.renew_deadline),
                                     ("retryPeriod", self.retry_period)) if value <= 0]
        if self.lease_duration <= self.renew_deadline:
            found.append("leaderElection.leaseDuration must be greater than renewDeadline")
        if not self.resource_name:
            found.append("leaderElection.resourceName must not be empty")
        return found


class LeaderElectionLost(Exception):
    """The leader could not renew its Lease within the renew deadline; its work was stopped."""


async def run_while_leading(client: Client, config: LeaderElectionConfig, identity: str,
                            work: Callable[[], Awaitable[None]]) -> None:
    """Run ``work`` while this candidate holds ``config``'s Lease (at once without election).

    Waits as a standby while another holds it. Ends when ``work`` ends (its error raised as
    it is), with :class:`LeaderElectionLost` when the Lease is lost (``work`` cancelled
    first), or by cancellation (``work`` cancelled, the Lease released for a standby).
    """
    if not config.leader_elect:
        await work()
        return
    failure: list[BaseException] = []

    async def guarded() -> None:
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # LeaderElector.run swallows it: kept to raise after the Lease is released
            failure.append(exc)

    elector = LeaderElector(client, config.resource_name, config.resource_namespace, identity,
                            lease_duration=config.lease_duration, renew_deadline=config.renew_deadline,
                            retry_period=config.retry_period)
    await elector.run(guarded)
    if failure:
        raise failure[0]
    if elector.lost:
        raise LeaderElectionLost(f"{identity} lost the lease {config.resource_namespace}/{config.resource_name}")


def together(*works: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """One work made of several: they run at once; when one ends (or fails) the others are cancelled."""

    async def run_all() -> None:
        tasks = [asyncio.ensure_future(work()) for work in works]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # an error of one of them, raised
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    return run_all
