"""A kubelet's Prometheus metrics: its :class:`~podlife.node.metrics.NodeMetrics`, fed by its workers.

Design
------
What it reads: the kubelet's pod workers (their lifecycle machines) when scraped, for
``kubelet_running_pods`` (pods whose sandbox is up) and ``kubelet_running_containers
{container_state}`` (``running`` and ``exited`` instances the runtime holds). The
startup, probe and eviction metrics are observed where they happen (hooks in
:mod:`podlife.kubelet.pod_worker`, :mod:`podlife.kubelet.prober`'s callback,
:mod:`podlife.kubelet.eviction`), into the same registry. What it writes: that
registry, which the kubelet's HTTPS server answers ``GET /metrics`` with (this node
only), and which the process registry sums with every other agent's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..machinery.metrics import exposition
from ..node.machine import Terminated
from ..node.metrics import NodeMetrics

__all__ = ["kubelet_metrics", "render"]


def kubelet_metrics(workers: Callable[[], Iterable[Any]]) -> NodeMetrics:
    """The metrics of a kubelet whose pod workers ``workers()`` gives (read when scraped)."""

    def running() -> tuple[int, dict[str, int]]:
        pods = 0
        states = {"running": 0, "exited": 0}
        for worker in list(workers()):
            machine = worker.machine
            if machine.sandbox_ready:
                pods += 1
            for rec in machine.all_containers:
                if rec.alive:
                    states["running"] += 1
                elif isinstance(rec.current, Terminated):
                    states["exited"] += 1
        return pods, states

    return NodeMetrics(running)


def render(metrics: NodeMetrics) -> Callable[[], bytes]:
    """What the kubelet server answers ``/metrics`` with: this node's registry, text format."""
    return lambda: exposition(metrics.registry)
