"""The ResourceQuota controller: every quota's ``status.hard`` and ``status.used``.

What it watches: ResourceQuotas, and the objects quotas count -- pods, services,
configmaps, secrets, persistentvolumeclaims, replicationcontrollers, resourcequotas and any
other resource a quota names as ``count/<resource>[.<group>]`` (found by discovery) --
each through the shared informers, started lazily once some quota counts the resource
(a cluster without quotas watches nothing more than it already did).

What it writes: ``status`` of each ResourceQuota through ``resourcequotas/status``:
``hard`` (``spec.hard`` in canonical quantities) and ``used`` (the namespace's usage of
every resource of ``spec.hard`` that something counts), and only when that changes.

When (Kubernetes' ``pkg/controller/resourcequota``): a quota is synced when it is created,
when its ``spec.hard`` changes (or its status does not show it), when an object it counts
is added or deleted in its namespace or changes what it uses (a pod going terminal, being
deleted, past its grace period), and every ``--resource-quota-sync-period`` for all of
them. Counting uses the namespace index of each informer, never a scan of every object.

Why: admission (:mod:`podlife.api.resource_quota`) refuses what would exceed a quota,
counting from the API server's caches; this controller makes the usage visible
(``kubectl describe quota`` shows Used/Hard). Both count with the same rules,
:mod:`podlife.machinery.quota`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone

from ..client.base import (
    CONFIGMAPS, DEPLOYMENTS, JOBS, PERSISTENT_VOLUME_CLAIMS, PODS, REPLICA_SETS, REPLICATION_CONTROLLERS,
    RESOURCE_QUOTAS, SECRETS, SERVICES, STATEFUL_SETS, DAEMON_SETS, CRON_JOBS, POD_DISRUPTION_BUDGETS,
    Obj, Resource,
)
from ..client.informer import object_key
from ..client.shared_informers import BY_NAMESPACE
from ..client.workqueue import WorkQueue
from ..machinery.errors import ApiError
from ..machinery.resources import format_quantity
from ..machinery.quota import Evaluator, count_target, counted_evaluators, hard_of, in_nanos, scope_selectors, usage_of
from .manager import ControllerContext

log = logging.getLogger(__name__)

#: the resources whose Resource (version, kind) is known without discovery
KNOWN: dict[tuple[str, str], Resource] = {(r.group, r.plural): r for r in (
    PODS, SERVICES, CONFIGMAPS, SECRETS, PERSISTENT_VOLUME_CLAIMS, REPLICATION_CONTROLLERS, RESOURCE_QUOTAS,
    DEPLOYMENTS, REPLICA_SETS, STATEFUL_SETS, DAEMON_SETS, JOBS, CRON_JOBS, POD_DISRUPTION_BUDGETS,
)}
#: a missing resource is asked of discovery at most this often
DISCOVERY_INTERVAL = 30.0


# ---- pure decisions ---------------------------------------------------------------------

def desired_status(quota: Obj, objects_of: Callable[[Evaluator], list[Obj]] | None,
                   served: Callable[[str, str], bool], now: datetime) -> Obj:
    """``{"hard": ..., "used": ...}`` for ``quota``; ``objects_of(ev)`` lists the namespace's objects of ``ev``."""
    hard = hard_of(quota)
    selectors = scope_selectors(quota)
    used = {}
    for ev in counted_evaluators(hard, served):
        names = ev.matching(hard)
        if names and objects_of is not None:
            used.update(usage_of(ev, objects_of(ev), names, selectors, now))
    return {"hard": {name: format_quantity(q) for name, q in sorted(hard.items())},
            "used": {name: format_quantity(used[name]) for name in sorted(used)}}


def status_differs(quota: Obj, status: Obj) -> bool:
    current = quota.get("status") or {}
    return bool((current.get("hard") or {}) != status["hard"] or (current.get("used") or {}) != status["used"])


def usage_changed(ev: Evaluator, old: Obj, new: Obj, now: datetime) -> bool:
    """An update that changes what the object uses (a pod's phase, resources, deletion)."""
    return in_nanos(ev.usage(old, now)) != in_nanos(ev.usage(new, now))


# ---- the controller ---------------------------------------------------------------------

class ResourceQuotaController:
    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.queue = WorkQueue()
        self.quotas = ctx.informers.informer(RESOURCE_QUOTAS)
        self.quotas_by_ns = ctx.informers.index(RESOURCE_QUOTAS, BY_NAMESPACE)
        self.quotas.add_handlers(self._quota_added, self._quota_updated, None)
        self._watched: dict[tuple[str, str], Resource] = {}
        self._discovered: dict[tuple[str, str], Resource] = {}
        self._discovered_at = 0.0

    # -- handlers (enqueue only) --

    def _quota_added(self, quota: Obj) -> None:
        self.queue.add(object_key(quota))

    def _quota_updated(self, old: Obj, new: Obj) -> None:
        spec_hard = (new.get("spec") or {}).get("hard")
        if spec_hard != (old.get("spec") or {}).get("hard") or new.get("spec") != old.get("spec") \
                or set((new.get("status") or {}).get("hard") or {}) != set(spec_hard or {}):
            self.queue.add(object_key(new))

    def _namespace_changed(self, obj: Obj) -> None:
        namespace = (obj.get("metadata") or {}).get("namespace")
        if namespace:
            for quota in self.quotas_by_ns.get(namespace):
                self.queue.add(object_key(quota))

    def _watch(self, res: Resource, ev: Evaluator) -> None:
        """Start counting ``res``: its informer's events in a namespace wake that namespace's quotas."""
        key = (res.group, res.plural)
        if key in self._watched:
            return
        self._watched[key] = res

        def on_update(old: Obj, new: Obj) -> None:
            if not self.quotas_by_ns.get(str((new.get("metadata") or {}).get("namespace") or "")):
                return  # no quota in its namespace: nothing to count
            if usage_changed(ev, old, new, datetime.now(timezone.utc)):
                self._namespace_changed(new)
            if ev.changes_with_time(new):  # charged until its grace period ends
                self._recheck_after_grace(new)

        informer = self.ctx.informers.informer(res)
        self.ctx.informers.index(res, BY_NAMESPACE)
        informer.add_handlers(self._namespace_changed, on_update, self._namespace_changed)

    def _recheck_after_grace(self, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        grace = meta.get("deletionGracePeriodSeconds")
        namespace = meta.get("namespace")
        if isinstance(grace, int) and namespace:
            for quota in self.quotas_by_ns.get(namespace):
                self.queue.add_after(object_key(quota), grace + 1.0)

    # -- resources --

    def _resource(self, group: str, plural: str) -> Resource | None:
        return KNOWN.get((group, plural)) or self._discovered.get((group, plural))

    def _served(self, group: str, plural: str) -> bool:
        return self._resource(group, plural) is not None

    async def _discover(self, quota: Obj) -> None:
        """Ask discovery for ``count/`` resources of ``quota`` not known yet (rate-limited)."""
        wanted = [target for target in map(count_target, hard_of(quota)) if target is not None]
        if all(self._served(*target) for target in wanted) or time.monotonic() - self._discovered_at < DISCOVERY_INTERVAL:
            return
        self._discovered_at = time.monotonic()
        try:
            resources = await self.client.discover()
        except ApiError as exc:
            log.warning("resource quota: discovery failed: %s", exc)
            return
        for res in resources:
            if res.namespaced:
                self._discovered.setdefault((res.group, res.plural), res)

    # -- sync --

    async def run(self) -> None:
        await self.ctx.informers.wait_synced(RESOURCE_QUOTAS)
        await asyncio.gather(self.queue.run_workers(self.sync, self.ctx.options.concurrent_resource_quota_syncs),
                             self._resync())

    async def _resync(self) -> None:
        """Every ``--resource-quota-sync-period``: recount every quota."""
        period = max(self.ctx.options.resource_quota_sync_period, 1.0)
        while True:
            await asyncio.sleep(period)
            for quota in list(self.quotas.cache.values()):
                self.queue.add(object_key(quota))

    async def sync(self, key: str) -> None:
        namespace, _, name = key.partition("/")
        quota = self.quotas.get(namespace, name)
        if quota is None:
            return
        await self._discover(quota)
        evaluators = counted_evaluators(hard_of(quota), self._served)
        resources = []
        for ev in evaluators:
            res = self._resource(ev.group, ev.plural)
            if res is not None:
                self._watch(res, ev)
                resources.append(res)
        await self.ctx.informers.wait_synced(*resources)
        quota = self.quotas.get(namespace, name)  # the newest, after waiting
        if quota is None:
            return

        def objects_of(ev: Evaluator) -> list[Obj]:
            res = self._resource(ev.group, ev.plural)
            return self.ctx.informers.index(res, BY_NAMESPACE).get(namespace) if res is not None else []

        status = desired_status(quota, objects_of, self._served, datetime.now(timezone.utc))
        if not status_differs(quota, status):
            return
        updated = dict(quota)
        updated["status"] = {**(quota.get("status") or {}), **status}
        try:
            await self.client.update(RESOURCE_QUOTAS, updated, subresource="status")
        except ApiError as exc:
            if exc.code == 404:
                return
            if exc.code == 409:  # a newer quota is coming through the informer: count again then
                self.queue.add_after(key, 0.1)
                return
            raise
