"""The disruption controller: each PodDisruptionBudget's status, which the eviction API obeys.

Kubernetes' ``pkg/controller/disruption``. What it watches: PodDisruptionBudgets, pods
(an event wakes the budgets of the pod's namespace whose selector selects it, found
through the namespace index), and the pods' controllers -- ReplicaSets, Deployments,
StatefulSets, ReplicationControllers -- read from their informers when a budget needs
their scale. What it writes: ``poddisruptionbudgets/status``, only when it changes, and
``pods/status`` to clear a stale ``DisruptionTarget`` condition. Why: the eviction
subresource (:mod:`podlife.api.eviction`) allows an eviction only while
``status.disruptionsAllowed > 0`` and the status is of the budget's generation.

The status of a budget (:func:`compute_status`, pure):

* its pods: those of its namespace its selector selects (``{}`` selects every pod);
* ``expectedPods`` and ``desiredHealthy``: for an integer ``minAvailable``, the number of
  pods and ``minAvailable``; for a percentage ``minAvailable`` or any ``maxUnavailable``,
  the sum of the scales of the pods' controllers (a ReplicaSet's Deployment, else the
  ReplicaSet, a StatefulSet, a ReplicationController), and ``desiredHealthy`` the
  percentage of it rounded up, or that sum less ``maxUnavailable`` (at least 0); pods
  without a controller are left out (a Warning ``UnmanagedPods``), a controller that
  cannot be found fails the sync;
* ``currentHealthy``: pods Ready, not being deleted, and not in ``disruptedPods``;
* ``disruptedPods``: the eviction API's entries for pods not yet being deleted, each
  dropped after :data:`~podlife.machinery.disruption.DELETION_TIMEOUT` (2 min; the budget
  is synced again when the first one expires);
* ``disruptionsAllowed``: ``currentHealthy - desiredHealthy``, 0 if negative or when no
  pod is expected; ``observedGeneration``; the ``DisruptionAllowed`` condition
  (``SufficientPods``/``InsufficientPods``).

A sync that fails (a controller not found) writes the fail-safe status:
``disruptionsAllowed`` 0 and ``DisruptionAllowed`` False ``SyncFailed`` with the error.
A pod whose ``DisruptionTarget`` True condition (not the kubelet's) is older than 2 minutes
while it is neither terminating nor terminal had its eviction fail: the condition is set
back to False.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from ..client.base import (
    DEPLOYMENTS, POD_DISRUPTION_BUDGETS, PODS, REPLICA_SETS, REPLICATION_CONTROLLERS, STATEFUL_SETS, Obj,
)
from ..client.informer import object_key
from ..client.shared_informers import BY_NAMESPACE
from ..client.workqueue import WorkQueue
from ..machinery.errors import ApiError
from ..machinery.selectors import SelectorError, label_selector_from_dict
from ..machinery.timeutil import format_rfc3339
from ..machinery import disruption as rules
from .manager import ControllerContext
from .pod_control import controller_of, is_terminal, parse_time

log = logging.getLogger(__name__)

#: a DisruptionTarget condition not followed by a deletion this long is stale
STALE_POD_DISRUPTION_TIMEOUT = 120.0
#: the kubelet's own DisruptionTarget reason: never stale
TERMINATION_BY_KUBELET = "TerminationByKubelet"


class SyncError(Exception):
    """The budget's status cannot be computed (its message goes to the ``SyncFailed`` condition)."""


@dataclass(frozen=True)
class Scale:
    uid: str
    replicas: int


#: (controller reference, namespace) -> the controller's uid and scale, or None when not found
Finder = Callable[[Obj, str], Scale | None]


# ---- pure decisions ---------------------------------------------------------------------

def selects(pdb: Obj, pod: Obj) -> bool:
    """The budget's selector selects the pod (``{}``: every pod; none or invalid: none)."""
    try:
        selector = label_selector_from_dict((pdb.get("spec") or {}).get("selector"))
    except SelectorError:
        return False
    return selector.matches((pod.get("metadata") or {}).get("labels") or {})


def scaled(value: Any, total: int) -> int:
    """``GetScaledValueFromIntOrPercent`` rounding up: an int as is, ``"N%"`` of ``total``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.endswith("%"):
        try:
            percent = int(value[:-1])
        except ValueError:
            raise SyncError(f'invalid value for IntOrString: invalid value "{value}"') from None
        return math.ceil(percent * total / 100)
    raise SyncError(f"invalid value for IntOrString: invalid type: string is not a percentage: {value!r}")


def expected_scale(pods: list[Obj], finder: Finder) -> tuple[int, list[str]]:
    """The sum of the scales of the pods' controllers, and the pods without a controller."""
    scales: dict[str, int] = {}
    unmanaged: list[str] = []
    for pod in pods:
        ref = controller_of(pod)
        if ref is None:
            unmanaged.append(str(pod["metadata"].get("name") or ""))
            continue
        if ref.get("uid") in scales:
            continue
        found = finder(ref, str(pod["metadata"].get("namespace") or ""))
        if found is None:
            raise SyncError(f'found no controllers for pod "{pod["metadata"].get("name")}"')
        scales[found.uid] = found.replicas
    return sum(scales.values()), unmanaged


def expected_pod_count(pdb: Obj, pods: list[Obj], finder: Finder) -> tuple[int, int, list[str]]:
    """``(expectedPods, desiredHealthy, unmanaged pods)`` (``getExpectedPodCount``)."""
    spec = pdb.get("spec") or {}
    if spec.get("maxUnavailable") is not None:
        expected, unmanaged = expected_scale(pods, finder)
        return expected, max(0, expected - scaled(spec["maxUnavailable"], expected)), unmanaged
    min_available = spec.get("minAvailable")
    if isinstance(min_available, int) and not isinstance(min_available, bool):
        return len(pods), min_available, []
    if isinstance(min_available, str):
        expected, unmanaged = expected_scale(pods, finder)
        return expected, scaled(min_available, expected), unmanaged
    return 0, 0, []


def disrupted_pod_map(pdb: Obj, pods: list[Obj], now: datetime) -> tuple[dict[str, str], datetime | None, list[Obj]]:
    """``buildDisruptedPodMap``: the entries still pending, the earliest expiry, and the pods whose entry expired."""
    recorded = (pdb.get("status") or {}).get("disruptedPods") or {}
    kept: dict[str, str] = {}
    recheck: datetime | None = None
    expired: list[Obj] = []
    if not recorded:
        return kept, None, expired
    for pod in pods:
        name = pod["metadata"].get("name")
        if pod["metadata"].get("deletionTimestamp") or name not in recorded:
            continue
        stamp = parse_time(recorded[name])
        if stamp is None:
            continue
        due = stamp + timedelta(seconds=rules.DELETION_TIMEOUT)
        if due < now:
            expired.append(pod)
        else:
            recheck = due if recheck is None or due < recheck else recheck
            kept[name] = recorded[name]
    return kept, recheck, expired


def count_healthy(pods: list[Obj], disrupted: dict[str, str], now: datetime) -> int:
    """Pods Ready, not being deleted and not about to be (``countHealthyPods``)."""
    healthy = 0
    for pod in pods:
        if pod["metadata"].get("deletionTimestamp"):
            continue
        stamp = parse_time(disrupted.get(pod["metadata"].get("name"), ""))
        if stamp is not None and stamp + timedelta(seconds=rules.DELETION_TIMEOUT) > now:
            continue
        if rules.is_pod_ready(pod):
            healthy += 1
    return healthy


def compute_status(pdb: Obj, current_healthy: int, desired_healthy: int, expected: int,
                   disrupted: dict[str, str], now: str) -> Obj | None:
    """The new status, or None when the stored one says the same (``updatePdbStatus``)."""
    allowed = current_healthy - desired_healthy
    if expected <= 0 or allowed <= 0:
        allowed = 0
    status = pdb.get("status") or {}
    generation = int(pdb["metadata"].get("generation") or 0)
    if (status.get("currentHealthy") == current_healthy and status.get("desiredHealthy") == desired_healthy
            and status.get("expectedPods") == expected and status.get("disruptionsAllowed") == allowed
            and (status.get("disruptedPods") or {}) == disrupted and int(status.get("observedGeneration") or 0) == generation
            and rules.conditions_up_to_date(pdb)):
        return None
    new: Obj = {"observedGeneration": generation}
    if disrupted:
        new["disruptedPods"] = disrupted
    new.update(disruptionsAllowed=allowed, currentHealthy=current_healthy, desiredHealthy=desired_healthy,
               expectedPods=expected, conditions=list(status.get("conditions") or []))
    return rules.with_disruption_allowed_condition(new, now)


def fail_safe_status(pdb: Obj, error: str, now: str) -> Obj:
    """``failSafe``: no disruption allowed, and why."""
    status = dict(pdb.get("status") or {})
    status["disruptionsAllowed"] = 0
    status["conditions"] = rules.set_condition(list(status.get("conditions") or []), rules.DISRUPTION_ALLOWED, "False",
                                               rules.SYNC_FAILED, error, int(status.get("observedGeneration") or 0), now)
    return status


def stale_disruption_in(pod: Obj, now: datetime) -> float | None:
    """Seconds until the pod's DisruptionTarget condition is stale (0: now); None when it cannot be."""
    if pod["metadata"].get("deletionTimestamp") or is_terminal(pod):
        return None
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if cond.get("type") == rules.DISRUPTION_TARGET:
            if cond.get("status") != "True" or cond.get("reason") == TERMINATION_BY_KUBELET:
                return None
            since = parse_time(cond.get("lastTransitionTime")) or now
            return max(0.0, STALE_POD_DISRUPTION_TIMEOUT - (now - since).total_seconds())
    return None


def _relevant_change(old: Obj, new: Obj) -> bool:
    """A pod update that can change a budget: labels, readiness, deletion, phase, owner, DisruptionTarget."""
    om, nm = old.get("metadata") or {}, new.get("metadata") or {}
    if (om.get("labels"), om.get("deletionTimestamp"), om.get("ownerReferences")) != \
            (nm.get("labels"), nm.get("deletionTimestamp"), nm.get("ownerReferences")):
        return True
    return bool(rules.is_pod_ready(old) != rules.is_pod_ready(new)
                or (old.get("status") or {}).get("phase") != (new.get("status") or {}).get("phase"))


# ---- the controller ---------------------------------------------------------------------

class DisruptionController:
    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.recorder = ctx.recorder()
        self.queue = WorkQueue()
        self.stale_queue = WorkQueue()
        informers = ctx.informers
        self.pdbs = informers.informer(POD_DISRUPTION_BUDGETS)
        self.pdbs_by_ns = informers.index(POD_DISRUPTION_BUDGETS, BY_NAMESPACE)
        self.pods = informers.informer(PODS)
        self.pods_by_ns = informers.index(PODS, BY_NAMESPACE)
        self.replica_sets = informers.informer(REPLICA_SETS)
        self.deployments = informers.informer(DEPLOYMENTS)
        self.stateful_sets = informers.informer(STATEFUL_SETS)
        self.rcs = informers.informer(REPLICATION_CONTROLLERS)
        self.pdbs.add_handlers(self._enqueue_pdb, lambda _old, new: self._enqueue_pdb(new), self._enqueue_pdb)
        self.pods.add_handlers(self._pod_added, self._pod_updated, self._pod_deleted)

    # -- handlers (enqueue only) --

    def _enqueue_pdb(self, pdb: Obj) -> None:
        self.queue.add(object_key(pdb))

    def _enqueue_for_pod(self, pod: Obj) -> None:
        namespace = (pod.get("metadata") or {}).get("namespace")
        if not namespace:
            return
        for pdb in self.pdbs_by_ns.get(namespace):
            if selects(pdb, pod):
                self.queue.add(object_key(pdb))

    def _check_stale(self, pod: Obj) -> None:
        due = stale_disruption_in(pod, datetime.now(timezone.utc))
        if due is not None:
            self.stale_queue.add_after(object_key(pod), due + 0.01)

    def _pod_added(self, pod: Obj) -> None:
        self._enqueue_for_pod(pod)
        self._check_stale(pod)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if self.pdbs.cache and _relevant_change(old, new):  # no budget anywhere: nothing to wake
            self._enqueue_for_pod(new)
            if (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels"):
                self._enqueue_for_pod(old)
        self._check_stale(new)

    def _pod_deleted(self, pod: Obj) -> None:
        self._enqueue_for_pod(pod)

    # -- finding controllers' scales --

    @staticmethod
    def _kind_in(ref: Obj, kind: str, groups: tuple[str, ...]) -> bool:
        api_version = str(ref.get("apiVersion") or "")
        group = api_version.rpartition("/")[0] if "/" in api_version else ""
        return ref.get("kind") == kind and group in groups

    @staticmethod
    def _replicas(obj: Obj) -> int:
        replicas = (obj.get("spec") or {}).get("replicas")
        return replicas if isinstance(replicas, int) and not isinstance(replicas, bool) else 1

    def find_scale(self, ref: Obj, namespace: str) -> Scale | None:
        """The scale of the pod's controller (``finders``): RC, Deployment via its ReplicaSet, ReplicaSet, StatefulSet."""
        name, uid = str(ref.get("name") or ""), ref.get("uid")
        if self._kind_in(ref, "ReplicationController", ("",)):
            rc = self.rcs.get(namespace, name)
            return Scale(uid, self._replicas(rc)) if rc is not None and rc["metadata"].get("uid") == uid else None
        if self._kind_in(ref, "ReplicaSet", ("apps", "extensions")):
            rs = self.replica_sets.get(namespace, name)
            if rs is None or rs["metadata"].get("uid") != uid:
                return None
            owner = controller_of(rs)
            if owner is not None and self._kind_in(owner, "Deployment", ("apps", "extensions")):
                deployment = self.deployments.get(namespace, str(owner.get("name") or ""))
                if deployment is not None and deployment["metadata"].get("uid") == owner.get("uid"):
                    return Scale(str(owner.get("uid")), self._replicas(deployment))
            return Scale(uid, self._replicas(rs))
        if self._kind_in(ref, "StatefulSet", ("apps",)):
            ss = self.stateful_sets.get(namespace, name)
            return Scale(uid, self._replicas(ss)) if ss is not None and ss["metadata"].get("uid") == uid else None
        return None

    # -- sync --

    async def run(self) -> None:
        await self.ctx.informers.wait_synced(POD_DISRUPTION_BUDGETS, PODS, REPLICA_SETS, DEPLOYMENTS, STATEFUL_SETS,
                                             REPLICATION_CONTROLLERS)
        await asyncio.gather(self.queue.run_workers(self.sync, 2), self.stale_queue.run_workers(self.sync_stale_pod, 1))

    def _event(self, obj: Obj, kind: str, type_: str, reason: str, message: str) -> None:
        self.recorder.event({"kind": kind, "apiVersion": "policy/v1" if kind == "PodDisruptionBudget" else "v1", **obj},
                            type_, reason, message)

    async def sync(self, key: str) -> None:
        namespace, _, name = key.partition("/")
        pdb = self.pdbs.get(namespace, name)
        if pdb is None:
            return
        now = datetime.now(timezone.utc)
        stamp = format_rfc3339(now)
        try:
            status, recheck = self._status(pdb, now, stamp)
        except SyncError as exc:
            self._event(pdb, "PodDisruptionBudget", "Warning", "CalculateExpectedPodCountFailed",
                        f"Failed to calculate the number of expected pods: {exc}")
            await self._write(pdb, fail_safe_status(pdb, str(exc), stamp))
            return
        if status is not None:
            await self._write(pdb, status)
        if recheck is not None:
            self.queue.add_after(key, max(0.0, (recheck - now).total_seconds()) + 0.01)

    def _status(self, pdb: Obj, now: datetime, stamp: str) -> tuple[Obj | None, datetime | None]:
        namespace = str(pdb["metadata"].get("namespace") or "")
        pods = [pod for pod in self.pods_by_ns.get(namespace) if selects(pdb, pod)]
        if not pods:
            self._event(pdb, "PodDisruptionBudget", "Normal", "NoPods", "No matching pods found")
        expected, desired, unmanaged = expected_pod_count(pdb, pods, self.find_scale)
        if unmanaged:
            selector = (pdb.get("spec") or {}).get("selector")
            self._event(pdb, "PodDisruptionBudget", "Warning", "UnmanagedPods",
                        f"Pods selected by this PodDisruptionBudget (selector: {selector}) were found to be unmanaged. "
                        "As a result, the status of the PDB cannot be calculated correctly, which may result in undefined "
                        'behavior. To account for these pods please set ".spec.minAvailable" field of the PDB to an integer value.')
        disrupted, recheck, expired = disrupted_pod_map(pdb, pods, now)
        for pod in expired:
            self._event(pod, "Pod", "Warning", "NotDeleted",
                        f"Pod was expected by PDB {namespace}/{pdb['metadata'].get('name')} to be deleted but it wasn't")
        healthy = count_healthy(pods, disrupted, now)
        return compute_status(pdb, healthy, desired, expected, disrupted, stamp), recheck

    async def _write(self, pdb: Obj, status: Obj) -> None:
        try:
            await self.client.update(POD_DISRUPTION_BUDGETS, {**pdb, "status": status}, subresource="status")
        except ApiError as exc:
            if exc.code == 409:  # written meanwhile (an eviction): count again on the newer budget
                self.queue.add_after(object_key(pdb), 0.05)
            elif exc.code != 404:
                raise

    async def sync_stale_pod(self, key: str) -> None:
        """Set a stale ``DisruptionTarget`` back to False (``syncStalePodDisruption``)."""
        namespace, _, name = key.partition("/")
        pod = self.pods.get(namespace, name)
        if pod is None:
            return
        due = stale_disruption_in(pod, datetime.now(timezone.utc))
        if due is None:
            return
        if due > 0:
            self.stale_queue.add_after(key, due + 0.01)
            return
        stamp = format_rfc3339(datetime.now(timezone.utc))
        conditions = [dict(c) for c in (pod.get("status") or {}).get("conditions") or []]
        for cond in conditions:
            if cond.get("type") == rules.DISRUPTION_TARGET:
                cond.update(status="False", lastTransitionTime=stamp)
                cond.pop("reason", None)
                cond.pop("message", None)
        try:
            await self.client.update(PODS, {**pod, "status": {**(pod.get("status") or {}), "conditions": conditions}},
                                     subresource="status")
        except ApiError as exc:
            if exc.code != 404:
                raise
