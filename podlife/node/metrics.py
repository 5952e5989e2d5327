"""A node agent's Prometheus metrics, with the kubelet's names, labels and buckets.

Design
------
Both drivers of a pod's life -- the kubelet and the simulator -- run the same
lifecycle, so both measure pod startup the same way, here. What it reads: the pods as
the agent sees them and writes them (hooks in the kubelet's pod worker and in the
simulator), image pulls and init containers (kubelet hooks). What it writes: one
:class:`NodeMetrics` registry per agent; each joins the process registry through
:data:`~podlife.machinery.metrics.merged_kubelets` (summed there), and a kubelet's own
``/metrics`` serves its registry alone.

``kubelet_pod_start_sli_duration_seconds`` follows the kubelet's
``PodStartupLatencyTracker`` (the pod startup latency SLI of sig-scalability):

- a pod is tracked only if the agent first sees it without ``status.startTime`` (it
  was scheduled while the agent ran) and it was never seen with ``PodScheduled=False``;
- the moment it is *running* is the first status write in which every container
  (``containerStatuses``: the app containers) is running with a start time;
- the SLI is that moment minus ``metadata.creationTimestamp``, minus the time spent
  pulling images (overlapping pulls counted once) and running init containers;
  observed once per pod. Kubernetes takes the moment from the watch event of that
  write; podlife's agents skip the echoes of their own writes, and the write is in the
  watch cache before it returns, so the write's return is the same moment;
- pods with a volume that is not ephemeral (anything but secret, configMap,
  downwardAPI, emptyDir, projected, gitRepo, image, ephemeral, CSI ephemeral) are
  stateful: left out of the SLI, kept in ``kubelet_pod_start_total_duration_seconds``
  (the same span with pulls and init containers included).

``kubelet_pod_start_duration_seconds``: from the agent first seeing the pod to its
phase becoming Running. ``prober_probe_total`` counts probe runs by result,
``kubelet_evictions`` evictions by signal (Kubernetes' name, which has no ``_total``:
exposed untyped, as prometheus_client would rename a counter), ``kubelet_running_pods``
and ``kubelet_running_containers`` are read at scrape time from the agent.

Cost: the hooks are a dict lookup by pod uid; a pod's state is dropped once its
startup was observed (or it ended), so memory follows the pods that are starting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

from ..machinery.metrics import POD_STARTUP_BUCKETS, Children, merged_kubelets

__all__ = ["NodeMetrics", "PodStartTracker", "is_stateful"]

Obj = dict[str, Any]

#: volume sources that keep a pod stateless for the SLI (the kubelet's isStatefulPod)
_STATELESS_SOURCES = ("secret", "configMap", "downwardAPI", "emptyDir", "projected", "gitRepo", "image", "ephemeral")


def is_stateful(pod: Obj) -> bool:
    """A volume with a source other than the ephemeral ones (the SLI leaves such pods out)."""
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        if any(source in volume for source in _STATELESS_SOURCES):
            continue
        csi = volume.get("csi")
        if csi is not None and (csi.get("volumeAttributes") or {}).get("csi.storage.k8s.io/ephemeral") == "true":
            continue
        return True
    return False


def _unschedulable(pod: Obj) -> bool:
    return any(c.get("type") == "PodScheduled" and c.get("status") == "False"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _started(status: Obj) -> bool:
    """Every app container running with a start time (the kubelet's hasPodStartedSLO)."""
    for cs in status.get("containerStatuses") or []:
        running = (cs.get("state") or {}).get("running")
        if not running or not running.get("startedAt"):
            return False
    return True


def _epoch(stamp: str) -> float | None:
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except (AttributeError, ValueError):
        return None


@dataclass(slots=True)
class _PodState:
    first_seen: float
    pulls: list[tuple[float, float]] = field(default_factory=list)
    pull_starts: list[float] = field(default_factory=list)
    init_runtime: float = 0.0
    init_started: float = 0.0
    running_recorded: bool = False  # kubelet_pod_start_duration_seconds observed


def _pulling_time(sessions: list[tuple[float, float]]) -> float:
    """The time covered by the pull sessions, overlaps counted once."""
    total, end = 0.0, float("-inf")
    for start, finish in sorted(sessions):
        if start >= end:
            total += finish - start
            end = finish
        elif finish > end:
            total += finish - end
            end = finish
    return total


class PodStartTracker:
    """The kubelet's pod startup latency tracker; times are epoch seconds (``time.time()``)."""

    def __init__(self, metrics: NodeMetrics) -> None:
        self._metrics = metrics
        self._pods: dict[str, _PodState] = {}
        self._excluded: set[str] = set()

    def seen(self, pod: Obj, now: float) -> None:
        """The agent got this version of the pod (ObservedPodOnWatch's first half)."""
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        uid = meta.get("uid") or ""
        if status.get("phase") in ("Succeeded", "Failed"):
            self._pods.pop(uid, None)
            return
        if uid in self._pods or uid in self._excluded:
            if uid in self._pods and _unschedulable(pod):
                del self._pods[uid]
                self._excluded.add(uid)
            return
        if not status.get("startTime"):
            if _unschedulable(pod):
                self._excluded.add(uid)
            else:
                self._pods[uid] = _PodState(first_seen=now)

    def pull_started(self, uid: str, now: float) -> None:
        if (state := self._pods.get(uid)) is not None:
            state.pull_starts.append(now)

    def pull_finished(self, uid: str, now: float) -> None:
        if (state := self._pods.get(uid)) is not None and state.pull_starts:
            state.pulls.append((state.pull_starts.pop(0), now))

    def init_started(self, uid: str, now: float) -> None:
        if (state := self._pods.get(uid)) is not None:
            state.init_started = now

    def init_finished(self, uid: str, now: float) -> None:
        if (state := self._pods.get(uid)) is not None and state.init_started:
            state.init_runtime += max(now - state.init_started, 0.0)
            state.init_started = 0.0

    def written(self, pod: Obj, now: float) -> None:
        """A status write of the agent returned with ``pod`` (also the moment a watch sees it)."""
        uid = (pod.get("metadata") or {}).get("uid") or ""
        state = self._pods.get(uid)
        if state is None:
            return
        status = pod.get("status") or {}
        phase = status.get("phase")
        if phase in ("Succeeded", "Failed"):
            del self._pods[uid]
            return
        if phase == "Running" and not state.running_recorded:
            state.running_recorded = True
            self._metrics.pod_start_duration.observe(max(now - state.first_seen, 0.0))
        if not status.get("containerStatuses") or not _started(status):
            return
        created = _epoch((pod.get("metadata") or {}).get("creationTimestamp") or "")
        del self._pods[uid]  # observed once: the pod is not tracked any more
        if created is None:
            return
        total = max(now - created, 0.0)
        self._metrics.pod_start_total.observe(total)
        if not is_stateful(pod):
            sli = total - _pulling_time(state.pulls) - state.init_runtime
            self._metrics.pod_start_sli.observe(max(sli, 0.0))

    def forget(self, uid: str) -> None:
        """The pod is gone from the agent."""
        self._pods.pop(uid, None)
        self._excluded.discard(uid)

    def __len__(self) -> int:
        return len(self._pods)


class NodeMetrics:
    """The metrics of one node agent, in a registry of its own (joined to the process registry).

    ``running()`` (optional) answers ``(running pods, {container_state: count})`` at
    scrape time.
    """

    def __init__(self, running: Callable[[], tuple[int, dict[str, int]]] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.pod_start_sli = Histogram(
            "kubelet_pod_start_sli_duration_seconds",
            "Duration in seconds to start a pod, excluding time to pull images and run init containers, measured "
            "from pod creation timestamp to when all its containers are reported as started and observed via watch",
            buckets=POD_STARTUP_BUCKETS, registry=self.registry)
        self.pod_start_total = Histogram(
            "kubelet_pod_start_total_duration_seconds",
            "Duration in seconds to start a pod since creation, including time to pull images and run init "
            "containers, measured from pod creation timestamp to when all its containers are reported as started "
            "and observed via watch", buckets=POD_STARTUP_BUCKETS, registry=self.registry)
        self.pod_start_duration = Histogram(
            "kubelet_pod_start_duration_seconds",
            "Duration in seconds from kubelet seeing a pod for the first time to the pod starting to run",
            buckets=POD_STARTUP_BUCKETS, registry=self.registry)
        probes = Counter("prober_probe_total", "Cumulative number of a liveness, readiness or startup probe for a "
                         "container by result.", ["probe_type", "result", "container", "pod", "namespace"],
                         registry=self.registry)
        self._probes: Children[Any] = Children(probes)
        self._evictions: dict[str, int] = {}
        self._running = running
        self.registry.register(_AgentCollector(self))  # type: ignore[arg-type,unused-ignore]
        self.pods = PodStartTracker(self)
        merged_kubelets.add(self.registry)

    def probed(self, probe_type: str, ok: bool, container: str, pod: str, namespace: str) -> None:
        """One probe run (``probe_type``: Liveness, Readiness or Startup)."""
        self._probes.get((probe_type, "successful" if ok else "failed", container, pod, namespace)).inc()

    def evicted(self, signal: str) -> None:
        """The agent evicted a pod for ``signal`` (``memory.available``, ``emptydirfs.limit``, ...)."""
        self._evictions[signal] = self._evictions.get(signal, 0) + 1

    def close(self) -> None:
        """Leave the process registry (the agent stopped)."""
        merged_kubelets.discard(self.registry)


class _AgentCollector:
    """What is read when scraped: evictions, running pods and containers."""

    def __init__(self, metrics: NodeMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        metrics = self._metrics
        evictions = Metric("kubelet_evictions", "Cumulative number of pod evictions by eviction signal", "unknown")
        for signal, n in sorted(metrics._evictions.items()):
            evictions.add_sample("kubelet_evictions", {"eviction_signal": signal}, n)
        yield evictions
        if metrics._running is None:
            return
        pods, containers = metrics._running()
        running_pods = GaugeMetricFamily("kubelet_running_pods", "Number of pods that have a running pod sandbox")
        running_pods.add_metric([], pods)
        yield running_pods
        running_containers = GaugeMetricFamily("kubelet_running_containers", "Number of containers currently running",
                                               labels=["container_state"])
        for state, n in sorted(containers.items()):
            running_containers.add_metric([state], n)
        yield running_containers
