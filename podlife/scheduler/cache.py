"""The scheduler cache: every node and what is charged to it, bound pods and assumed ones.

Pods bound to a node (seen by the scheduler's pod informer) and pods the
scheduler has *assumed* there (decided, binding in flight) are both charged to
the node's :class:`~podlife.scheduler.plugins.NodeInfo`, so the next decision
already sees the new usage without waiting for the API server. When the
informer sees an assumed pod bound where it was assumed, the assumption is
confirmed; a failed binding forgets it, which un-charges the node.

The cache owns the node list in a stable order and the numpy columns that
mirror it (:mod:`podlife.scheduler.columns`, row ``i`` is ``node_list[i]``); a
removed node's slot is filled with the last node, so rows stay dense.
``generation`` is bumped whenever a position or a node's declared attributes
change: the scheduler's cache of static filter verdicts is valid for one
generation.

Plugins that judge a pod by the pods around it (inter-pod affinity, topology
spread, host ports) keep their own indexes; they register in ``pod_listeners``
and hear every charge (+1) and un-charge (-1) of a pod to a node, bound or
assumed, so their indexes move with the cache and never rescan it.

*Nominated pods* (Kubernetes' nominator): a pending pod that preempted others is
nominated to the node where room is being made (``status.nominatedNodeName``, or
at once in memory when the scheduler decides it). While a pod is filtered, the
nominated pods of at least its priority are charged to their nodes for the search
(:meth:`SchedulerCache.reserve_nominated`, undone by ``release_nominated``), so a
pod of lower or equal priority cannot take the room freed for them. Preemption keeps
hundreds of pods nominated at once, so a reservation no listener needs to hear is
applied in bulk: each node's totals once, and every row of the columns in a few numpy
operations (:meth:`SchedulerCache._charge_rows`), its plan kept for the release.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..client.base import Obj
from .columns import SAFE_LIMIT, NodeColumns
from .plugins import NodeInfo, PodInfo


#: told of every pod charged to (+1) or un-charged from (-1) a node: (pod, node name, sign)
PodListener = Callable[[PodInfo, str, int], None]


class SchedulerCache:
    """Nodes and what is charged to them: bound pods (from the informer) and assumed ones."""

    def __init__(self) -> None:
        self.nodes: dict[str, NodeInfo] = {}
        #: nodes that exist as Node objects, in a stable order
        self.node_list: list[NodeInfo] = []
        self._position: dict[str, int] = {}
        #: the running totals of ``node_list[i]`` in row ``i``, for the array plugins
        self.columns = NodeColumns()
        self.pods: dict[str, tuple[PodInfo, str]] = {}
        self.assumed: set[str] = set()
        #: bumped whenever the node list (so any node's position) or a node's
        #: declared attributes change
        self.generation = 0
        self.pod_listeners: list[PodListener] = []
        #: nominated pending pods: key -> (pod, node name), and node name -> keys
        self.nominated: dict[str, tuple[PodInfo, str]] = {}
        self._nominated_on: dict[str, set[str]] = {}

    def _node(self, name: str) -> NodeInfo:
        ni = self.nodes.get(name)
        if ni is None:
            ni = self.nodes[name] = NodeInfo(name)
        return ni

    def set_node(self, node: Obj) -> bool:
        """Add or update a node; True when that may let pending pods fit."""
        name = (node.get("metadata") or {}).get("name") or ""
        ni = self._node(name)
        is_new = ni.node is None
        static_changed, alloc_changed = ni.set_node(node)
        if is_new:
            self._position[name] = len(self.node_list)
            self.node_list.append(ni)
            self.columns.attach(ni, self._position[name])
        if is_new or static_changed:
            self.generation += 1
        return is_new or static_changed or alloc_changed

    def remove_node(self, name: str) -> None:
        ni = self.nodes.get(name)
        pos = self._position.pop(name, None)
        if ni is None or pos is None:
            return
        last = self.node_list.pop()
        if last is not ni:
            self.node_list[pos] = last
            self._position[last.name] = pos
            self.columns.attach(last, pos)
        self.columns.detach(ni)
        self.columns.truncate(len(self.node_list))
        ni.set_node(None)
        if not ni.req_pods:
            del self.nodes[name]
        self.generation += 1

    def add_pod(self, info: PodInfo) -> None:
        """A pod bound to ``info.node_name`` (confirms an assumption for the same node)."""
        current = self.pods.get(info.key)
        if current is not None:
            old, node_name = current
            if old.uid == info.uid and node_name == info.node_name:
                self.assumed.discard(info.key)
                return
            self.remove_pod(info.key)
        self._charge(info, info.node_name)

    def remove_pod(self, key: str) -> bool:
        """Uncharge a pod; True when it was charged somewhere."""
        current = self.pods.pop(key, None)
        self.assumed.discard(key)
        if current is None:
            return False
        info, node_name = current
        ni = self.nodes.get(node_name)
        if ni is not None:
            ni.remove_pod(info)
            if ni.node is None and not ni.req_pods:
                del self.nodes[node_name]
        for listener in self.pod_listeners:
            listener(info, node_name, -1)
        return True

    def _charge(self, info: PodInfo, node_name: str) -> None:
        self._node(node_name).add_pod(info)
        self.pods[info.key] = (info, node_name)
        for listener in self.pod_listeners:
            listener(info, node_name, 1)

    def assume(self, info: PodInfo, node_name: str) -> None:
        self.remove_nominated(info.key)  # kube's DeleteNominatedPodIfExists: it has its node now
        self.remove_pod(info.key)
        self._charge(info, node_name)
        self.assumed.add(info.key)

    def confirm(self, key: str) -> bool:
        """The informer saw an assumed pod bound where it was assumed; True if it was assumed."""
        if key not in self.assumed:
            return False
        self.assumed.discard(key)
        return True

    def forget(self, key: str, uid: str) -> bool:
        """Drop an assumption whose binding failed; True if it was still assumed."""
        current = self.pods.get(key)
        if key not in self.assumed or current is None or current[0].uid != uid:
            return False
        return self.remove_pod(key)

    def is_assumed(self, key: str) -> bool:
        return key in self.assumed

    def holds(self, key: str, uid: str) -> bool:
        current = self.pods.get(key)
        return current is not None and current[0].uid == uid

    # -- nominated pods --

    def nominate(self, info: PodInfo, node_name: str) -> None:
        """``info`` (pending) is nominated to ``node_name``; an empty name drops its nomination."""
        self.remove_nominated(info.key)
        if not node_name:
            return
        self.nominated[info.key] = (info, node_name)
        self._nominated_on.setdefault(node_name, set()).add(info.key)

    def remove_nominated(self, key: str) -> None:
        current = self.nominated.pop(key, None)
        if current is None:
            return
        keys = self._nominated_on.get(current[1])
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._nominated_on[current[1]]

    def nominated_node(self, key: str) -> str:
        current = self.nominated.get(key)
        return current[1] if current is not None else ""

    def nominated_on(self, node_name: str) -> list[PodInfo]:
        """The pods nominated to ``node_name``."""
        return [self.nominated[key][0] for key in self._nominated_on.get(node_name, ())]

    def nominated_keys_on(self, node_name: str) -> set[str] | tuple[()]:
        """The keys of the pods nominated to ``node_name`` (read-only; for per-node loops)."""
        return self._nominated_on.get(node_name, ())

    def nominated_for(self, pod: PodInfo, node_name: str | None = None) -> list[tuple[PodInfo, str]]:
        """The nominated pods (with their nodes; on ``node_name`` only, when given) that ``pod``
        must leave room for: priority at least its own, not itself (kube's addGENominatedPods)."""
        if not self.nominated:
            return []
        if node_name is not None:
            entries = [self.nominated[key] for key in self._nominated_on.get(node_name, ())]
        else:
            entries = list(self.nominated.values())
        return [(other, node) for other, node in entries
                if other.priority >= pod.priority and other.uid != pod.uid and node in self.nodes]

    def reserve_nominated(self, pod: PodInfo, node_name: str | None = None, *, notify: bool = True) -> Reservation:
        """Charge the nominated pods ``pod`` must leave room for (see :meth:`nominated_for`) until
        :meth:`release_nominated`. ``notify`` False spares the listeners (no plugin that judges
        this pod keeps a pod index): each node's totals then move with one write of its row."""
        reserved = Reservation(self.nominated_for(pod, node_name), notify)
        self._charge_many(reserved, 1)
        return reserved

    def release_nominated(self, reserved: Reservation) -> None:
        self._charge_many(reserved, -1)

    def _charge_many(self, reserved: Reservation, sign: int) -> None:
        if not reserved.pods:
            return
        if reserved.plan is not None or (not reserved.notify and len(reserved.pods) >= _BULK_MIN_PODS
                                         and self.columns.exact and _non_negative(reserved.pods)):
            self._charge_rows(reserved, sign)
            return
        by_node: dict[str, list[PodInfo]] = {}
        for other, node in reserved.pods:
            by_node.setdefault(node, []).append(other)
        for node, pods in by_node.items():
            ni = self.nodes.get(node)
            if ni is None:
                continue
            for other in pods:
                ni.add_requests(other.cpu, other.memory, other.ephemeral, 1, other.nz_cpu, other.nz_memory,
                                other.scalar.items(), sign, write_row=False)
            if ni.columns is not None:  # the row written once for all of them
                ni.columns.store(ni.row, ni)
            if reserved.notify:
                for other in pods:
                    for listener in self.pod_listeners:
                        listener(other, node, sign)

    def _charge_rows(self, reserved: Reservation, sign: int) -> None:
        """:meth:`_charge_many` for many nodes and no listeners: each node's totals move in Python
        (``NodeInfo.add_requests`` without its row write), then the columns'
        rows all at once. The plan (per node: its summed requests; the rows and deltas as arrays) is
        made once per reservation and serves its release too. A row the arrays could not hold exactly
        is written by ``NodeColumns.store``, which marks it, and written so again on release."""
        plan = reserved.plan
        if plan is None:
            plan = reserved.plan = self._plan(reserved.pods)
        for ni, *requests in plan.entries:
            ni.add_requests(*requests, sign, write_row=False)
        if not len(plan.rows):
            return
        if plan.stored:
            for ni in plan.attached:
                self.columns.store(ni.row, ni)
            return
        columns, at, d = self.columns, plan.rows, plan.deltas if sign > 0 else -plan.deltas
        columns.free_cpu[at] -= d[0]
        columns.free_memory[at] -= d[1]
        columns.free_ephemeral[at] -= d[2]
        columns.free_pods[at] -= d[3]
        columns.left_cpu[at] -= d[4]
        columns.left_memory[at] -= d[5]
        columns.used_cpu[at] += d[0]
        columns.used_memory[at] += d[1]
        if sign > 0 and max(int(np.abs(c[at]).max()) for c in (
                columns.free_cpu, columns.free_memory, columns.free_ephemeral, columns.free_pods,
                columns.left_cpu, columns.left_memory, columns.used_cpu, columns.used_memory)) > SAFE_LIMIT:
            plan.stored = True  # some row left what int64 holds exactly: store marks it, release rewrites it
            for ni in plan.attached:
                columns.store(ni.row, ni)

    def _plan(self, pods: list[tuple[PodInfo, str]]) -> _Plan:
        """Per node (each once), what the reservation's pods there request; the attached nodes' rows."""
        by_node: dict[str, list[PodInfo]] = {}
        for other, node in pods:
            group = by_node.get(node)
            if group is None:
                by_node[node] = [other]
            else:
                group.append(other)
        nodes, columns = self.nodes, self.columns
        entries: list[tuple] = []
        attached: list[NodeInfo] = []
        deltas: list[tuple] = []
        for node, group in by_node.items():
            ni = nodes.get(node)
            if ni is None:
                continue
            if len(group) == 1:
                o = group[0]
                entry: tuple = (ni, o.cpu, o.memory, o.ephemeral, 1, o.nz_cpu, o.nz_memory, tuple(o.scalar.items()))
            else:
                entry = (ni, sum(o.cpu for o in group), sum(o.memory for o in group),
                         sum(o.ephemeral for o in group), len(group), sum(o.nz_cpu for o in group),
                         sum(o.nz_memory for o in group), tuple(kv for o in group for kv in o.scalar.items()))
            entries.append(entry)
            if ni.columns is columns:
                attached.append(ni)
                deltas.append(entry[1:7])
        return _Plan(entries, np.array([ni.row for ni in attached], dtype=np.intp),
                     np.array(deltas, dtype=np.int64).reshape(-1, 6).T.copy(), attached)


@dataclass
class _Plan:
    """A reservation's charges, grouped per node (:meth:`SchedulerCache._charge_rows`)."""

    entries: list[tuple]
    rows: np.ndarray
    #: one row per quantity (cpu, memory, ephemeral-storage, pods, counted cpu, counted memory)
    deltas: np.ndarray
    attached: list[NodeInfo]
    stored: bool = False


#: below this many nodes a reservation writes each node's row on its own (the arrays' fixed cost wins)
_BULK_MIN_PODS = 8


@dataclass
class Reservation:
    """Nominated pods charged for one search (:meth:`SchedulerCache.reserve_nominated`)."""

    pods: list[tuple[PodInfo, str]]
    notify: bool = True
    #: the bulk form of the charges, once made (:meth:`SchedulerCache._charge_rows`)
    plan: _Plan | None = None


def _non_negative(pods: list[tuple[PodInfo, str]]) -> bool:
    """Every request is >= 0 (as validation ensures), so charging them keeps exact rows' counts >= 0."""
    return all(min(p.cpu, p.memory, p.ephemeral, p.nz_cpu, p.nz_memory) >= 0 for p, _ in pods)
