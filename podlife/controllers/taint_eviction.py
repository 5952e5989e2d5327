"""The taint eviction controller: pods go from nodes with NoExecute taints they do not tolerate.

As kube-controller-manager's ``taint-eviction-controller`` (``pkg/controller/tainteviction``,
the NoExecute taint manager).

What it watches (shared informers): Nodes and Pods (``BY_NODE`` index). A node event whose
NoExecute taints changed queues the pods on that node; a pod event queues the pod when it
is bound to a node with NoExecute taints, or has a deletion scheduled (so a cancelled one
is noticed). Nothing else costs more than two dict lookups.

What it decides (:func:`eviction_time`, pure), per pod bound to a node with NoExecute taints:

* a taint no toleration tolerates: delete now;
* every taint tolerated, some with ``tolerationSeconds``: delete when the first of them
  runs out -- for each taint, its ``timeAdded`` (or, lacking one, when the controller
  first saw it) plus the seconds of the first toleration that tolerates it
  (``GetMatchingTolerations``); seconds <= 0 mean now;
* every taint tolerated forever: keep.

Each queued pod is decided again from the caches, so a scheduled deletion whose taint
went, or whose pod changed, is cancelled (event ``TaintManagerEviction`` ``Cancelling
deletion of Pod ns/name``) or moved; one timer per pod at most.

What it writes, to delete a pod: event ``TaintManagerEviction`` ``Marking for deletion Pod
ns/name``; the pod condition ``DisruptionTarget`` True, reason ``DeletionByTaintManager``,
message ``Taint manager: deleting due to NoExecute taint`` (strategic patch of
``pods/status``); then a delete with the pod's uid as precondition (its own grace period).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ..client.base import NODES, PODS, Obj
from ..client.informer import object_key
from ..client.shared_informers import BY_NODE
from ..client.workqueue import WorkQueue
from ..machinery.errors import ApiError
from ..machinery.timeutil import now_rfc3339
from ..machinery.scheduling import tolerates
from .pod_control import parse_time

log = logging.getLogger(__name__)

NO_EXECUTE = "NoExecute"
EVICTION_REASON = "TaintManagerEviction"
#: a deadline this close is due (timers may fire a little early against the wall clock)
DUE_SLACK = 0.05
DISRUPTION_CONDITION = {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
                        "message": "Taint manager: deleting due to NoExecute taint"}


# --------------------------------------------------------------------------- pure decisions


def no_execute_taints(node: Obj | None) -> list[Obj]:
    if node is None:
        return []
    return [t for t in (node.get("spec") or {}).get("taints") or () if isinstance(t, dict) and t.get("effect") == NO_EXECUTE]


def taints_view(taints: list[Obj]) -> tuple[tuple[Any, ...], ...]:
    """What of the NoExecute taints decisions depend on (a node event that leaves it alone queues nothing)."""
    return tuple((t.get("key"), t.get("value"), t.get("timeAdded")) for t in taints)


def eviction_time(taints: list[Obj], tolerations: list[Obj], now: float, first_seen: dict[str, float] | None = None) -> float | None:
    """When a pod with ``tolerations`` on a node with NoExecute ``taints`` is to be deleted (wall-clock seconds).

    None: keep it (no taint, or all tolerated forever). ``first_seen``: taint key -> when
    the controller first saw a taint that lacks ``timeAdded``.
    """
    when: float | None = None
    for taint in taints:
        match = next((t for t in tolerations if isinstance(t, dict) and tolerates(t, taint)), None)
        if match is None:
            return now
        seconds = match.get("tolerationSeconds")
        if seconds is None:
            continue
        if seconds <= 0:
            return now
        added = parse_time(taint.get("timeAdded"))
        start = added.timestamp() if added is not None else (first_seen or {}).get(str(taint.get("key")), now)
        deadline = start + float(seconds)
        when = deadline if when is None else min(when, deadline)
    return when


def pod_view(pod: Obj | None) -> tuple[Any, ...] | None:
    """What of a pod decisions depend on."""
    if pod is None:
        return None
    spec, meta = pod.get("spec") or {}, pod.get("metadata") or {}
    return (spec.get("nodeName"), repr(spec.get("tolerations")), bool(meta.get("deletionTimestamp")), meta.get("uid"))


# --------------------------------------------------------------------------- the controller


class TaintEvictionController:
    def __init__(self, ctx: Any, *, workers: int = 4) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.recorder = ctx.recorder()
        self.nodes = ctx.informers.informer(NODES)
        self.pods = ctx.informers.informer(PODS)
        self.pods_by_node = ctx.informers.index(PODS, BY_NODE)
        self.queue = WorkQueue()
        self.workers = workers
        #: pod key -> (deadline, its timer)
        self.scheduled: dict[str, tuple[float, asyncio.TimerHandle]] = {}
        #: node -> taint key -> when a taint of it without timeAdded was first seen
        self.first_seen: dict[str, dict[str, float]] = {}
        self.nodes.add_handlers(on_add=lambda node: self._node_changed(None, node), on_update=self._node_changed,
                                on_delete=lambda node: self._node_changed(node, None))
        self.pods.add_handlers(on_add=lambda pod: self._pod_changed(None, pod), on_update=self._pod_changed,
                               on_delete=lambda pod: self._pod_changed(pod, None))

    # ---- handlers: only enqueue

    def _node_changed(self, old: Obj | None, new: Obj | None) -> None:
        before, after = taints_view(no_execute_taints(old)), taints_view(no_execute_taints(new))
        if before == after:
            return
        node = new if new is not None else old
        assert node is not None
        for pod in self.pods_by_node.get((node.get("metadata") or {}).get("name", "")):
            self.queue.add(object_key(pod))

    def _pod_changed(self, old: Obj | None, new: Obj | None) -> None:
        pod = new if new is not None else old
        assert pod is not None
        key = object_key(pod)
        if key in self.scheduled:
            if pod_view(old) != pod_view(new):
                self.queue.add(key)
            return
        if new is None:
            return
        node_name = (new.get("spec") or {}).get("nodeName")
        if node_name and no_execute_taints(self.nodes.cache.get(node_name)) and pod_view(old) != pod_view(new):
            self.queue.add(key)

    # ---- the loop

    async def run(self) -> None:
        await self.ctx.informers.wait_synced(NODES, PODS)
        for node in list(self.nodes.cache.values()):
            if no_execute_taints(node):
                for pod in self.pods_by_node.get((node.get("metadata") or {}).get("name", "")):
                    self.queue.add(object_key(pod))
        try:
            await self.queue.run_workers(self.sync, self.workers)
        finally:
            for _, timer in self.scheduled.values():
                timer.cancel()

    def _taints_with_memory(self, node_name: str, taints: list[Obj], now: float) -> dict[str, float]:
        """When each of the node's taints without ``timeAdded`` was first seen (those gone are forgotten)."""
        untimed = {str(t.get("key")) for t in taints if not t.get("timeAdded")}
        remembered = self.first_seen.get(node_name, {})
        seen = {key: remembered.get(key, now) for key in untimed}
        if seen:
            self.first_seen[node_name] = seen
        else:
            self.first_seen.pop(node_name, None)
        return seen

    async def sync(self, key: str) -> None:
        namespace, _, name = key.partition("/")
        pod = self.pods.get(namespace, name)
        if pod is None or (pod.get("metadata") or {}).get("deletionTimestamp"):
            self._cancel(key, pod, quiet=True)
            return
        node_name = (pod.get("spec") or {}).get("nodeName") or ""
        taints = no_execute_taints(self.nodes.cache.get(node_name)) if node_name else []
        now = time.time()
        when = eviction_time(taints, (pod.get("spec") or {}).get("tolerations") or [], now,
                             self._taints_with_memory(node_name, taints, now))
        if when is None:
            self._cancel(key, pod)
            return
        if when <= now + DUE_SLACK:
            self._cancel(key, pod, quiet=True)
            await self._evict(pod)
            return
        scheduled = self.scheduled.get(key)
        if scheduled is not None and scheduled[0] == when:
            return
        if scheduled is not None:
            scheduled[1].cancel()
        timer = asyncio.get_running_loop().call_later(when - now, self._due, key)
        self.scheduled[key] = (when, timer)

    def _due(self, key: str) -> None:
        """A scheduled deletion's time came: decided again now."""
        self.scheduled.pop(key, None)
        self.queue.add(key)

    def _cancel(self, key: str, pod: Obj | None, *, quiet: bool = False) -> None:
        scheduled = self.scheduled.pop(key, None)
        if scheduled is None:
            return
        scheduled[1].cancel()
        if not quiet and pod is not None:
            self.recorder.event({**pod, "kind": "Pod", "apiVersion": "v1"}, "Normal", EVICTION_REASON,
                                f"Cancelling deletion of Pod {object_key(pod)}")

    async def _evict(self, pod: Obj) -> None:
        meta = pod.get("metadata") or {}
        name, namespace = meta.get("name", ""), meta.get("namespace")
        log.info("taint eviction: deleting pod %s/%s", namespace, name)
        self.recorder.event({**pod, "kind": "Pod", "apiVersion": "v1"}, "Normal", EVICTION_REASON,
                            f"Marking for deletion Pod {namespace}/{name}")
        try:
            if not any(isinstance(c, dict) and c.get("type") == "DisruptionTarget" and c.get("status") == "True"
                       for c in (pod.get("status") or {}).get("conditions") or ()):
                await self.client.patch(PODS, name, {"status": {"conditions": [
                    {**DISRUPTION_CONDITION, "lastTransitionTime": now_rfc3339()}]}}, namespace,
                    patch_type="strategic", subresource="status")
            await self.client.delete(PODS, name, namespace, preconditions={"uid": meta.get("uid")})
        except ApiError as exc:
            if exc.code in (404, 409):  # gone, or another pod of that name now
                return
            raise
