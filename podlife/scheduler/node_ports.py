"""NodePorts: a pod's hostPorts must be free on the node (kube's NodePorts filter).

Design
------
What it reads: each pod's hostPorts (``PodInfo.host_ports``: containers and sidecar init
containers, hostIP defaulted to 0.0.0.0 and protocol to TCP, as kube's HostPortInfo
sanitizes them) and, through ``SchedulerCache.pod_listeners``, every charge (+1) and
un-charge (-1) of a pod to a node, bound or assumed. What it writes: only its own index,
``(protocol, port) -> node -> hostIP -> count``, which moves with the cache and is never
rebuilt by a scan.

Kube's conflict rule (``HostPortInfo.CheckConflict``): a wanted (ip, protocol, port)
conflicts with a used one of the same protocol and port when either ip is 0.0.0.0 or both
are the same. So a pod's verdicts come from the few nodes that use one of its ports: the
array form marks exactly those rows False and every other row True, a handful of dict
lookups whatever the cluster size. Pods without hostPorts (nearly all) are skipped by
:meth:`NodePorts.applies`. A rejected node's reason is kube's, ``Unschedulable`` (making
room could help).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .columns import NodeColumns, Rows
from .plugins import DEFAULT_BIND_ALL_HOST_IP, UNSCHEDULABLE, FilterPlugin, NodeInfo, PodInfo, Status

if TYPE_CHECKING:
    from .cache import SchedulerCache
    from .scheduler import Scheduler

ERR_REASON = "node(s) didn't have free ports for the requested pod ports"


class NodePorts(FilterPlugin):
    name = "NodePorts"
    _conflict = Status(UNSCHEDULABLE, (ERR_REASON,), "NodePorts")

    def __init__(self) -> None:
        self._cache: SchedulerCache | None = None
        #: (protocol, port) -> node name -> host IP -> how many charged pods use it there
        self._used: dict[tuple[str, int], dict[str, dict[str, int]]] = {}

    def attach(self, scheduler: Scheduler) -> None:
        self.attach_cache(scheduler.cache)

    def attach_cache(self, cache: SchedulerCache) -> None:
        """Follow ``cache``'s charges, starting from what is charged now."""
        self._cache = cache
        self._used.clear()
        cache.pod_listeners.append(self.on_pod)
        for info, node_name in cache.pods.values():
            self.on_pod(info, node_name, 1)

    def on_pod(self, pod: PodInfo, node_name: str, sign: int) -> None:
        """A pod charged to (+1) or un-charged from (-1) ``node_name``."""
        for ip, protocol, port in pod.host_ports:
            nodes = self._used.setdefault((protocol, port), {})
            ips = nodes.setdefault(node_name, {})
            count = ips.get(ip, 0) + sign
            if count > 0:
                ips[ip] = count
                continue
            ips.pop(ip, None)
            if not ips:
                del nodes[node_name]
                if not nodes:
                    del self._used[(protocol, port)]

    def applies(self, pod: PodInfo) -> bool:
        return bool(pod.host_ports)

    def conflicting_nodes(self, pod: PodInfo) -> set[str]:
        """The names of the nodes where one of the pod's hostPorts is taken."""
        found: set[str] = set()
        for ip, protocol, port in pod.host_ports:
            nodes = self._used.get((protocol, port))
            if not nodes:
                continue
            if ip == DEFAULT_BIND_ALL_HOST_IP:
                found.update(nodes)
            else:
                found.update(name for name, ips in nodes.items() if ip in ips or DEFAULT_BIND_ALL_HOST_IP in ips)
        return found

    def _fits(self, pod: PodInfo, node_name: str) -> bool:
        for ip, protocol, port in pod.host_ports:
            ips = self._used.get((protocol, port), {}).get(node_name)
            if ips and (ip == DEFAULT_BIND_ALL_HOST_IP or ip in ips or DEFAULT_BIND_ALL_HOST_IP in ips):
                return False
        return True

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        return None if self._fits(pod, node.name) else self._conflict

    def filter_mask(self, pod: PodInfo, columns: NodeColumns, rows: Rows) -> np.ndarray | None:
        cache = self._cache
        if cache is None or cache.columns is not columns:
            return None
        taken = [ni.row for name in self.conflicting_nodes(pod)
                 if (ni := cache.nodes.get(name)) is not None and ni.columns is columns]
        if isinstance(rows, slice):
            start, stop, _ = rows.indices(columns.size)
            mask = np.ones(stop - start, dtype=bool)
            for row in taken:
                if start <= row < stop:
                    mask[row - start] = False
            return mask
        if not taken:
            return np.ones(len(rows), dtype=bool)
        return ~np.isin(rows, np.array(taken, dtype=rows.dtype))
