"""The pod garbage collector: terminated pods beyond a threshold, orphans, and pods stuck terminating.

As kube-controller-manager's ``podgc`` controller (``pkg/controller/podgc``). Every
``gcCheckPeriod`` (20 s) it looks at the shared Pod and Node informers' caches and:

* terminated pods (phase neither Pending, Running nor Unknown): when there are more than
  ``--terminated-pod-gc-threshold`` (<= 0: never), the surplus is deleted, evicted pods
  first, then oldest ``creationTimestamp`` first, then by name
  (``byEvictionAndCreationTimestamp``);
* terminating pods on a node that is not Ready and has the
  ``node.kubernetes.io/out-of-service`` taint: deleted;
* orphans, pods bound to a node that does not exist: the node name waits out a 40 s
  quarantine (a node may be created after its pods are bound), then is asked for by a
  live GET; if it is still not found, each of its pods gets the ``DisruptionTarget``
  condition, reason ``DeletionByPodGC``, message ``PodGC: node no longer exists``, and is
  deleted -- so pods of a deleted Node never hang in Terminating;
* terminating pods that were never scheduled: deleted.

Each deletion first sets phase ``Failed`` (when the pod is not terminal already, with the
condition if any; a strategic patch of ``pods/status`` -- no kubelet will ever do it for
such a pod), then force-deletes (grace period 0, the pod's uid as precondition).

What it keeps so a pass scans no pod list: the keys of terminated pods and of terminating
pods, maintained by the pod informer's handlers, and the nodes that have pods (the shared
``BY_NODE`` index). The decisions are pure functions (:func:`terminated_to_delete`,
:func:`missing_nodes`, :func:`gc_reason`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from ..client.base import NODES, PODS, Obj
from ..client.informer import object_key
from ..client.shared_informers import BY_NODE
from ..machinery.errors import ApiError
from ..machinery.timeutil import now_rfc3339

log = logging.getLogger(__name__)

#: ``gcCheckPeriod`` and ``quarantineTime``
GC_CHECK_PERIOD = 20.0
QUARANTINE_TIME = 40.0
OUT_OF_SERVICE_TAINT = "node.kubernetes.io/out-of-service"
ORPHAN_CONDITION = {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC",
                    "message": "PodGC: node no longer exists"}


# --------------------------------------------------------------------------- pure decisions


def is_terminated(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") not in (None, "", "Pending", "Running", "Unknown")


def is_terminating(pod: Obj) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def is_evicted(pod: Obj) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Failed" and status.get("reason") == "Evicted"


def gc_order(pod: Obj) -> tuple[bool, str, str]:
    """``byEvictionAndCreationTimestamp``: evicted first, then oldest, then by name."""
    meta = pod.get("metadata") or {}
    return (not is_evicted(pod), str(meta.get("creationTimestamp") or ""), str(meta.get("name") or ""))


def terminated_to_delete(terminated: Iterable[Obj], threshold: int) -> list[Obj]:
    """The terminated pods to delete so that ``threshold`` remain (none when threshold <= 0)."""
    if threshold <= 0:
        return []
    pods = list(terminated)
    surplus = len(pods) - threshold
    return sorted(pods, key=gc_order)[:surplus] if surplus > 0 else []


def node_ready(node: Obj) -> bool:
    return any(isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or ())


def out_of_service(node: Obj | None) -> bool:
    """Not Ready and tainted ``node.kubernetes.io/out-of-service``: its terminating pods may go."""
    if node is None or node_ready(node):
        return False
    return any(isinstance(t, dict) and t.get("key") == OUT_OF_SERVICE_TAINT for t in (node.get("spec") or {}).get("taints") or ())


def gc_reason(pod: Obj, nodes: dict[str, Obj]) -> str | None:
    """Why a terminating pod goes now: ``unscheduled`` or ``out-of-service`` (None: it stays)."""
    if not is_terminating(pod):
        return None
    node_name = (pod.get("spec") or {}).get("nodeName")
    if not node_name:
        return "unscheduled"
    return "out-of-service" if out_of_service(nodes.get(node_name)) else None


def missing_nodes(pod_nodes: Iterable[str], nodes: dict[str, Obj]) -> set[str]:
    """The nodes pods are bound to that the cache does not have."""
    return {name for name in pod_nodes if name and name not in nodes}


def failed_patch(pod: Obj, condition: Obj | None, now: str) -> Obj | None:
    """The status patch that makes a pod Failed before it is force-deleted (None: it is terminal already)."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return None
    status: Obj = {"phase": "Failed"}
    if condition is not None:
        status["conditions"] = [{**condition, "lastTransitionTime": now}]
    return {"status": status}


# --------------------------------------------------------------------------- the controller


class PodGCController:
    def __init__(self, ctx: Any, *, period: float = GC_CHECK_PERIOD, quarantine: float = QUARANTINE_TIME) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.threshold = ctx.options.terminated_pod_gc_threshold
        self.period = min(period, GC_CHECK_PERIOD)
        self.quarantine_time = quarantine
        self.pods = ctx.informers.informer(PODS)
        self.nodes = ctx.informers.informer(NODES)
        self.pods_by_node = ctx.informers.index(PODS, BY_NODE)
        self.terminated: set[str] = set()
        self.terminating: set[str] = set()
        #: missing node name -> when it was first found missing (loop time)
        self.quarantine: dict[str, float] = {}
        self.pods.add_handlers(on_add=self._pod_changed, on_update=lambda _old, new: self._pod_changed(new),
                               on_delete=self._pod_deleted)

    # ---- handlers: only bookkeeping

    def _pod_changed(self, pod: Obj) -> None:
        key = object_key(pod)
        (self.terminated.add if is_terminated(pod) else self.terminated.discard)(key)
        (self.terminating.add if is_terminating(pod) else self.terminating.discard)(key)

    def _pod_deleted(self, pod: Obj) -> None:
        key = object_key(pod)
        self.terminated.discard(key)
        self.terminating.discard(key)

    # ---- the loop

    async def run(self) -> None:
        await self.ctx.informers.wait_synced(PODS, NODES)
        for pod in list(self.pods.cache.values()):
            self._pod_changed(pod)
        while True:
            try:
                await self.gc()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("pod gc: a pass failed")
            await asyncio.sleep(self.period)

    def _cached(self, keys: Iterable[str]) -> list[Obj]:
        return [pod for pod in (self.pods.cache.get(key) for key in list(keys)) if pod is not None]

    async def gc(self) -> None:
        """One pass (``gc``): terminated, terminating on out-of-service nodes, orphaned, unscheduled terminating."""
        for pod in terminated_to_delete(self._cached(self.terminated), self.threshold):
            await self._delete(pod, None, "terminated")
        nodes = self.nodes.cache
        for pod in sorted(self._cached(self.terminating), key=gc_order):
            reason = gc_reason(pod, nodes)
            if reason is not None:
                await self._delete(pod, None, reason)
        await self._gc_orphaned()

    async def _gc_orphaned(self) -> None:
        now = asyncio.get_running_loop().time()
        missing = missing_nodes(self.pods_by_node.keys(), self.nodes.cache)
        for name in list(self.quarantine):
            if name not in missing:
                del self.quarantine[name]
        for name in missing:
            since = self.quarantine.setdefault(name, now)
            if now - since < self.quarantine_time:
                continue
            del self.quarantine[name]  # found again next pass if its pods remain
            if await self._node_exists(name):
                continue
            for pod in sorted(self.pods_by_node.get(name), key=gc_order):
                log.info("pod gc: pod %s is bound to node %s, which no longer exists", object_key(pod), name)
                await self._delete(pod, ORPHAN_CONDITION, "orphaned")

    async def _node_exists(self, name: str) -> bool:
        try:
            await self.client.get(NODES, name)
            return True
        except ApiError as exc:
            if exc.code == 404:
                return False
            log.warning("pod gc: checking node %s failed: %s", name, exc)
            return True

    async def _delete(self, pod: Obj, condition: Obj | None, why: str) -> None:
        """``markFailedAndDeletePodWithCondition``: Failed first (unless terminal), then a forced delete."""
        meta = pod.get("metadata") or {}
        name, namespace = meta.get("name", ""), meta.get("namespace")
        log.info("pod gc: force deleting pod %s/%s (%s)", namespace, name, why)
        try:
            patch = failed_patch(pod, condition, now_rfc3339())
            if patch is not None:
                await self.client.patch(PODS, name, patch, namespace, patch_type="strategic", subresource="status")
            await self.client.delete(PODS, name, namespace, grace_period_seconds=0, preconditions={"uid": meta.get("uid")})
        except ApiError as exc:
            if exc.code not in (404, 409):
                log.warning("pod gc: deleting pod %s/%s failed: %s", namespace, name, exc)
