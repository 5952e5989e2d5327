"""The ReplicaSet and ReplicationController controllers: keep ``spec.replicas`` pods of a template running.

kube-controller-manager's ``replicaset`` and ``replicationcontroller`` controllers
(``pkg/controller/replicaset``; the ReplicationController one is the same code behind an
adapter, and so here: :class:`ReplicaController` parametrised by a :class:`Kind`).

What it watches (shared informers): its owners (ReplicaSets or ReplicationControllers)
and Pods, with the pods-by-controller index (the pods an owner controls, no scan) and an
index of the *orphan* pods (no controller reference) by namespace -- orphans are rare, so
looking for pods to adopt costs little even with 10,000 pods in one namespace.

Handlers only enqueue (the owner's ``namespace/name``):

* an owner added, deleted, or changed in what the sync reads (spec, labels, deletion);
  its selector is cached per namespace for the pod handlers;
* a pod with a controller reference to one of ours queues that owner -- when it appears
  (its creation is *observed*), goes or gets a ``deletionTimestamp`` (deletion observed),
  or changes in what the owner's status counts (finished, readiness, labels, deletion;
  not IPs, node or container states); a pod whose controller reference changed queues
  the old owner too;
* an orphan pod added or relabelled queues every owner of its namespace whose selector
  matches it (one may adopt it).

What a sync does (:meth:`ReplicaController.sync`), as Kubernetes' ``syncReplicaSet``:

1. claim the active pods (:func:`~podlife.controllers.pod_control.claim_decisions` and
   ``claim``) among those it controls and the orphans of its namespace: keep those that
   match, release those that no longer match, adopt matching orphans (never while the
   owner is being deleted);
2. only when the owner's expectations are satisfied (every creation and deletion asked
   for has been seen by the informer: a lagging watch never doubles pods) and it is not
   being deleted: create the missing pods from ``spec.template`` (controller reference,
   ``generateName`` ``<owner>-``) in slow-start batches, at most ``burstReplicas`` (500)
   per sync, or delete the surplus, the first in Kubernetes' ``ActivePodsWithRanks``
   order (:func:`pods_to_delete`: unscheduled, pending, not ready, lower deletion cost,
   on a node crowded with pods of the same Deployment's ReplicaSets, ready for less
   time, newer). Expectations that are never met (a lost event) expire after 5 minutes,
   and a sync is set for then;
3. write the status (a PUT of the ``status`` subresource -- RBAC grants ``update`` --
   only when it changed, once more after a fresh read on a conflict): ``replicas``
   (active pods), ``fullyLabeledReplicas`` (those carrying all the template's labels),
   ``readyReplicas``, ``availableReplicas`` (ready for ``minReadySeconds``; a sync comes
   back when the next ready pod turns available), ReplicaSets' ``terminatingReplicas``
   (controlled, matching pods being deleted and not finished; the
   DeploymentReplicaSetTerminatingReplicas field, on by default since 1.35, which
   ReplicationControllers lack), ``observedGeneration`` and the ``ReplicaFailure``
   condition (``FailedCreate``/``FailedDelete`` with the error, set when creating or
   deleting failed, kept while failures go on, removed by a sync without failure).

Events, as Kubernetes' pod control records them: ``SuccessfulCreate`` "Created pod: <name>",
``SuccessfulDelete`` "Deleted pod: <name>", ``FailedCreate`` "Error creating: <error>",
``FailedDelete`` "Error deleting: <error>". A failed sync comes back with a growing
backoff (0.1 s doubling to 60 s); a creation refused because the namespace is being
deleted is no failure (nothing to retry).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..client.base import PODS, REPLICA_SETS, REPLICATION_CONTROLLERS, Obj, Resource
from ..client.informer import object_key
from ..client.shared_informers import BY_CONTROLLER, ORPHANS_BY_NAMESPACE
from ..client.workqueue import WorkQueue
from ..machinery.errors import ApiError
from ..machinery.selectors import NOTHING, LabelSelector, SelectorError, label_selector_from_dict, label_selector_from_set
from ..machinery.timeutil import now_rfc3339
from . import pod_control
from .manager import ControllerContext

log = logging.getLogger(__name__)

#: Kubernetes' BurstReplicas: at most this many creations or deletions per sync
BURST_REPLICAS = 500
REPLICA_FAILURE = "ReplicaFailure"
#: backoff of a sync that failed to create or delete (Kubernetes' rate-limited requeue)
RETRY_BASE = 0.1
RETRY_MAX = 60.0


# --------------------------------------------------------------------------- the kinds


@dataclass(frozen=True)
class Kind:
    """What differs between ReplicaSets and ReplicationControllers."""

    res: Resource
    kind: str
    api_version: str
    #: ReplicationControllers' ``spec.selector`` is a plain label map
    map_selector: bool
    #: ``status.terminatingReplicas`` (ReplicaSets only: DeploymentReplicaSetTerminatingReplicas, on since 1.35)
    terminating_replicas: bool

    def selector(self, owner: Obj) -> LabelSelector | None:
        """The owner's pod selector; None when it has none that is valid (validation keeps such out)."""
        spec = owner.get("spec") or {}
        try:
            if self.map_selector:
                labels = spec.get("selector") or ((spec.get("template") or {}).get("metadata") or {}).get("labels")
                return label_selector_from_set(labels) if labels else None
            selector = spec.get("selector")
            return label_selector_from_dict(selector) if isinstance(selector, dict) else None
        except (SelectorError, ValueError, TypeError, AttributeError):
            return None


REPLICA_SET = Kind(REPLICA_SETS, "ReplicaSet", "apps/v1", map_selector=False, terminating_replicas=True)
REPLICATION_CONTROLLER = Kind(REPLICATION_CONTROLLERS, "ReplicationController", "v1", map_selector=True,
                              terminating_replicas=False)


# --------------------------------------------------------------------------- pure decisions


def desired_replicas(owner: Obj) -> int:
    replicas = (owner.get("spec") or {}).get("replicas", 1)
    return int(replicas) if isinstance(replicas, int) else 1


def min_ready_seconds(owner: Obj) -> int:
    value = (owner.get("spec") or {}).get("minReadySeconds") or 0
    return int(value) if isinstance(value, int) else 0


def fully_labeled(pod: Obj, template_labels: dict[str, str]) -> bool:
    labels = pod["metadata"].get("labels") or {}
    return all(labels.get(k) == v for k, v in template_labels.items())


def replica_diff(active: int, owner: Obj) -> int:
    """Pods to create (> 0) or delete (< 0), bounded by :data:`BURST_REPLICAS`."""
    diff = desired_replicas(owner) - active
    return max(-BURST_REPLICAS, min(BURST_REPLICAS, diff))


def pods_to_delete(active: list[Obj], count: int, related: list[Obj] | None = None,
                   now: datetime | None = None) -> list[Obj]:
    """The ``count`` pods a scale-down deletes: the first in Kubernetes' ranking (``getPodsToDelete``).

    ``related``: the pods of every ReplicaSet with the same controller (a Deployment's), the
    owner's own included; a pod shares its node with more of them: deleted sooner. Without
    them the owner's own pods are counted.
    """
    if count <= 0:
        return []
    if count >= len(active):
        return list(active)
    per_node: dict[str, int] = {}
    for pod in related if related is not None else active:
        node = (pod.get("spec") or {}).get("nodeName")
        if node and pod_control.is_active(pod):
            per_node[node] = per_node.get(node, 0) + 1
    at = now or datetime.now(timezone.utc)
    ranked = sorted(active, key=lambda p: pod_control.deletion_order_key(
        p, per_node.get((p.get("spec") or {}).get("nodeName") or "", 0), at))
    return ranked[:count]


def failure_condition(status: Obj) -> Obj | None:
    for cond in status.get("conditions") or ():
        if cond.get("type") == REPLICA_FAILURE:
            return cond
    return None


def compute_status(owner: Obj, active: list[Obj], failure: tuple[str, str] | None, now: str | None = None, *,
                   terminating: int | None = None) -> Obj:
    """The owner's new status (Kubernetes' ``calculateStatus``) from its active pods.

    ``failure``: (reason, message) of this sync's failed creation or deletion, if any.
    An existing ``ReplicaFailure`` condition is kept while failures go on, and removed by
    a sync without one; other conditions stay. ``terminating``: the count for
    ``terminatingReplicas`` (None: the kind has no such field). ``now``: the new
    condition's ``lastTransitionTime``.
    """
    old = owner.get("status") or {}
    template_labels = (((owner.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
    min_ready = min_ready_seconds(owner)
    ready = [p for p in active if pod_control.is_ready(p)]
    status: Obj = {"replicas": len(active)}
    labeled = sum(1 for p in active if fully_labeled(p, template_labels))
    available = sum(1 for p in ready if pod_control.is_available(p, min_ready))
    if labeled:
        status["fullyLabeledReplicas"] = labeled
    if ready:
        status["readyReplicas"] = len(ready)
    if available:
        status["availableReplicas"] = available
    if terminating is not None:
        status["terminatingReplicas"] = terminating
    generation = owner["metadata"].get("generation")
    if generation is not None:
        status["observedGeneration"] = generation
    conditions = [c for c in old.get("conditions") or () if c.get("type") != REPLICA_FAILURE]
    existing = failure_condition(old)
    if failure is not None:
        if existing is not None:
            conditions.append(existing)
        else:
            reason, message = failure
            conditions.append({"type": REPLICA_FAILURE, "status": "True", "lastTransitionTime": now or now_rfc3339(),
                               "reason": reason, "message": message})
    if conditions:
        status["conditions"] = conditions
    return status


STATUS_FIELDS = ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas", "terminatingReplicas",
                 "observedGeneration", "conditions")


def status_changed(old: Obj, new: Obj) -> bool:
    """Whether the status fields this controller writes differ (no change: no write)."""
    return any(old.get(key) != new.get(key) for key in STATUS_FIELDS)


def next_available_check(active: list[Obj], min_ready: int) -> float | None:
    """Seconds until the next ready pod turns available (None: none is waiting)."""
    if min_ready <= 0:
        return None
    waits = [w for p in active if (w := pod_control.available_in(p, min_ready)) is not None and w > 0]
    return min(waits) if waits else None


def status_view(pod: Obj | None) -> tuple[Any, ...] | None:
    """What of a pod its owner's status counts: a change elsewhere (IPs, node, container states) queues nothing."""
    if pod is None:
        return None
    meta = pod["metadata"]
    return (meta.get("uid"), pod_control.is_terminal(pod), pod_control.ready_since(pod), bool(meta.get("deletionTimestamp")),
            meta.get("labels"))


# --------------------------------------------------------------------------- the controller


class ReplicaController:
    """One controller of :class:`Kind` ``kind`` (see the module docstring)."""

    kind: Kind = REPLICA_SET

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.recorder = ctx.recorder()
        self.queue = WorkQueue()
        self.expectations = pod_control.Expectations()
        self.owners = ctx.informers.informer(self.kind.res)
        self.pods = ctx.informers.informer(PODS)
        self.by_controller = ctx.informers.index(PODS, BY_CONTROLLER)
        self.orphans = ctx.informers.index(PODS, ORPHANS_BY_NAMESPACE)
        self._selectors: dict[str, dict[str, LabelSelector]] = {}  # namespace -> owner key -> selector
        self._failures: dict[str, int] = {}  # owner key -> failed syncs in a row
        self._rechecks: set[str] = set()  # owner keys with a sync set for when their expectations expire
        self.by_owner_controller = ctx.informers.index(self.kind.res, BY_CONTROLLER)
        self.owners.add_handlers(self._owner_added, self._owner_updated, self._owner_deleted)
        self.pods.add_handlers(self._pod_added, self._pod_updated, self._pod_deleted)

    @property
    def workers(self) -> int:
        return self.ctx.options.concurrent_replicaset_syncs

    async def run(self) -> None:
        await self.ctx.informers.wait_synced(self.kind.res, PODS)
        await self.queue.run_workers(self.sync, max(1, self.workers))

    # ------------------------------------------------------------------ handlers (enqueue only)

    def _remember_selector(self, owner: Obj) -> None:
        meta = owner["metadata"]
        self._selectors.setdefault(meta.get("namespace") or "", {})[object_key(owner)] = self.kind.selector(owner) or NOTHING

    def _owner_added(self, owner: Obj) -> None:
        self._remember_selector(owner)
        self.queue.add(object_key(owner))

    def _owner_updated(self, old: Obj, new: Obj) -> None:
        self._remember_selector(new)
        om, nm = old["metadata"], new["metadata"]
        if (old.get("spec") != new.get("spec") or om.get("labels") != nm.get("labels")
                or om.get("deletionTimestamp") != nm.get("deletionTimestamp") or om.get("uid") != nm.get("uid")):
            self.queue.add(object_key(new))

    def _owner_deleted(self, owner: Obj) -> None:
        key = object_key(owner)
        self._selectors.get(owner["metadata"].get("namespace") or "", {}).pop(key, None)
        self.expectations.forget(key)
        self._failures.pop(key, None)

    def _owner_key_of(self, pod: Obj, ref: Obj | None) -> str | None:
        """Our owner's key a controller reference names (None: not one of ours, or not cached)."""
        if ref is None or ref.get("kind") != self.kind.kind or ref.get("apiVersion", "").split("/")[0] != \
                self.kind.api_version.split("/")[0]:
            return None
        owner = self.owners.get(pod["metadata"].get("namespace"), ref.get("name", ""))
        if owner is None or owner["metadata"].get("uid") != ref.get("uid"):
            return None
        return object_key(owner)

    def _queue_matching_owners(self, pod: Obj) -> None:
        labels = pod["metadata"].get("labels") or {}
        for key, selector in self._selectors.get(pod["metadata"].get("namespace") or "", {}).items():
            if selector.matches(labels):
                self.queue.add(key)

    def _pod_added(self, pod: Obj) -> None:
        if pod["metadata"].get("deletionTimestamp"):
            self._pod_deleted(pod)  # a restart found it going: that is its deletion as far as counts go
            return
        ref = pod_control.controller_of(pod)
        if ref is not None:
            key = self._owner_key_of(pod, ref)
            if key is not None:
                self.expectations.creation_observed(key)
                self.queue.add(key)
            return
        self._queue_matching_owners(pod)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        old_ref, new_ref = pod_control.controller_of(old), pod_control.controller_of(new)
        ref_changed = old_ref != new_ref
        if ref_changed:
            old_key = self._owner_key_of(old, old_ref)
            if old_key is not None:
                self.queue.add(old_key)
        if new_ref is None:  # an orphan: whoever matches it now may adopt it
            if ref_changed or old["metadata"].get("labels") != new["metadata"].get("labels"):
                self._queue_matching_owners(new)
            return
        key = self._owner_key_of(new, new_ref)
        if key is None:
            return
        if new["metadata"].get("deletionTimestamp") and not old["metadata"].get("deletionTimestamp"):
            self.expectations.deletion_observed(key, object_key(new))
        if ref_changed or status_view(old) != status_view(new):
            self.queue.add(key)

    def _pod_deleted(self, pod: Obj) -> None:
        key = self._owner_key_of(pod, pod_control.controller_of(pod))
        if key is not None:
            self.expectations.deletion_observed(key, object_key(pod))
            self.queue.add(key)

    # ------------------------------------------------------------------ the sync

    async def sync(self, key: str) -> None:
        namespace, _, name = key.partition("/")
        cached = self.owners.get(namespace, name)
        if cached is None:
            self.expectations.forget(key)
            return
        owner = {**cached, "kind": self.kind.kind, "apiVersion": self.kind.api_version}
        satisfied = self.expectations.satisfied(key)
        selector = self.kind.selector(owner)
        if selector is None:
            log.warning("%s %s has no valid selector; left alone", self.kind.kind, key)
            return
        ref = pod_control.controller_ref(owner, self.kind.api_version, self.kind.kind)
        mine = self.by_controller.get(owner["metadata"]["uid"])
        active = await self._claim(owner, selector, ref, mine)
        failure: tuple[str, str] | None = None
        if not satisfied:
            self._recheck_after_timeout(key)
        elif not owner["metadata"].get("deletionTimestamp"):
            failure = await self._manage(key, owner, ref, active)
        terminating = sum(1 for p in mine if is_terminating(p) and selector.matches(p["metadata"].get("labels"))) \
            if self.kind.terminating_replicas else None
        await self._write_status(owner, compute_status(owner, active, failure, terminating=terminating))
        if failure is not None:
            self._retry(key)
            return
        self._failures.pop(key, None)
        wait = next_available_check(active, min_ready_seconds(owner))
        if wait is not None:
            self.queue.add_after(key, wait + 0.05)

    def _retry(self, key: str) -> None:
        """Come back after a failed creation or deletion, later each time (a rate-limited requeue)."""
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        self.queue.add_after(key, min(RETRY_BASE * (2 ** n), RETRY_MAX))

    def _recheck_after_timeout(self, key: str) -> None:
        """Expectations never met (an event lost) expire: make sure a sync comes then, once per key."""
        if key in self._rechecks:
            return
        self._rechecks.add(key)

        def recheck() -> None:
            self._rechecks.discard(key)
            self.queue.add(key)

        asyncio.get_running_loop().call_later(self.expectations.timeout + 1.0, recheck)

    async def _claim(self, owner: Obj, selector: LabelSelector, ref: Obj, mine: list[Obj]) -> list[Obj]:
        """The active pods the owner controls after adopting and releasing (``claimPods``)."""
        meta = owner["metadata"]
        candidates = [p for p in mine + self.orphans.get(meta.get("namespace") or "") if pod_control.is_active(p)]
        decisions = pod_control.claim_decisions(owner, selector, candidates)
        if not decisions.adopt and not decisions.release:
            return decisions.owned
        return await pod_control.claim(self.client, PODS, self.kind.res, owner, ref, decisions)

    def _related_pods(self, owner: Obj) -> list[Obj] | None:
        """The pods of every owner of our kind with the same controller (a Deployment's ReplicaSets)."""
        controller = pod_control.controller_of(owner)
        if controller is None:
            return None
        related: dict[str, Obj] = {}
        for sibling in self.by_owner_controller.get(controller["uid"]):
            for pod in self.by_controller.get(sibling["metadata"]["uid"]):
                related.setdefault(pod["metadata"]["uid"], pod)
        return list(related.values())

    async def _manage(self, key: str, owner: Obj, ref: Obj, active: list[Obj]) -> tuple[str, str] | None:
        """Create or delete towards ``spec.replicas``; the failure (reason, message), if any."""
        diff = replica_diff(len(active), owner)
        if diff > 0:
            return await self._create(key, owner, ref, diff)
        if diff < 0:
            return await self._delete(key, owner, pods_to_delete(active, -diff, self._related_pods(owner)))
        return None

    async def _create(self, key: str, owner: Obj, ref: Obj, count: int) -> tuple[str, str] | None:
        template = (owner.get("spec") or {}).get("template") or {}
        self.expectations.expect_creations(key, count)

        async def create_one() -> None:
            pod = pod_control.pod_from_template(template, owner, ref)
            try:
                created = await self.client.create(PODS, pod, owner["metadata"]["namespace"])
            except ApiError as exc:
                self.recorder.event(owner, "Warning", "FailedCreate", f"Error creating: {exc.message}")
                if namespace_terminating(exc):
                    return  # every creation fails while the namespace goes: nothing to retry
                raise
            self.recorder.event(owner, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")

        done, error = await pod_control.slow_start_batch(count, create_one)
        if done < count:
            self.expectations.creation_failed(key, count - done)
        if error is None:
            return None
        if not isinstance(error, ApiError):
            log.warning("%s %s: creating pods failed: %r", self.kind.kind, key, error)
        return "FailedCreate", error.message if isinstance(error, ApiError) else str(error)

    async def _delete(self, key: str, owner: Obj, pods: list[Obj]) -> tuple[str, str] | None:
        self.expectations.expect_deletions(key, [object_key(p) for p in pods])

        async def delete_one(pod: Obj) -> None:
            meta = pod["metadata"]
            try:
                await self.client.delete(PODS, meta["name"], meta["namespace"], preconditions={"uid": meta["uid"]})
            except ApiError as exc:
                self.expectations.deletion_observed(key, object_key(pod))
                if exc.code in (404, 409):  # gone already (409: the uid precondition -- another pod of that name)
                    return
                self.recorder.event(owner, "Warning", "FailedDelete", f"Error deleting: {exc.message}")
                raise
            self.recorder.event(owner, "Normal", "SuccessfulDelete", f"Deleted pod: {meta['name']}")

        results = await asyncio.gather(*(delete_one(p) for p in pods), return_exceptions=True)
        for result in results:
            if isinstance(result, asyncio.CancelledError):
                raise result
        errors = [r for r in results if isinstance(r, BaseException)]
        if not errors:
            return None
        error = errors[0]
        return "FailedDelete", error.message if isinstance(error, ApiError) else str(error)

    async def _write_status(self, owner: Obj, status: Obj) -> None:
        """PUT the new status when it differs (RBAC grants ``update`` on ``status``); once more on a conflict.

        As Kubernetes' ``updateReplicaSetStatus``: the retry puts the same status onto a fresh
        read, so ``observedGeneration`` stays the generation this sync acted on.
        """
        for attempt in range(2):
            if not status_changed(owner.get("status") or {}, status):
                return
            try:
                await self.client.update(self.kind.res, {**owner, "status": status}, subresource="status")
                return
            except ApiError as exc:
                if exc.code == 404:
                    return
                if exc.code != 409 or attempt:
                    raise
            fresh = await self._fresh(owner)  # the same status onto the latest version: observedGeneration stays ours
            if fresh is None:
                return
            owner = fresh

    async def _fresh(self, owner: Obj) -> Obj | None:
        meta = owner["metadata"]
        try:
            fresh = await self.client.get(self.kind.res, meta["name"], meta["namespace"])
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise
        if fresh["metadata"].get("uid") != meta["uid"]:
            return None
        return {**fresh, "kind": self.kind.kind, "apiVersion": self.kind.api_version}


def is_terminating(pod: Obj) -> bool:
    """Being deleted and not finished: counted in ``terminatingReplicas``."""
    return bool(pod["metadata"].get("deletionTimestamp")) and not pod_control.is_terminal(pod)


def namespace_terminating(exc: ApiError) -> bool:
    causes = (exc.details or {}).get("causes") or ()
    return any(cause.get("reason") == "NamespaceTerminating" for cause in causes)


class ReplicaSetController(ReplicaController):
    kind = REPLICA_SET


class ReplicationControllerController(ReplicaController):
    kind = REPLICATION_CONTROLLER

    @property
    def workers(self) -> int:
        return self.ctx.options.concurrent_rc_syncs
