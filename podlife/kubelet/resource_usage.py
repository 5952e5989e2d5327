"""The kubelet's resource metrics: ``GET /metrics/resource`` (what metrics-server scrapes).

Design
------
What it reads, on each request (blocking file reads, run in a thread):

* **Node.** CPU: the first line of ``/proc/stat`` (user, nice, system, irq, softirq and
  steal ticks; guest time is already in user), in core-seconds. Memory: ``MemTotal`` minus
  ``MemAvailable`` of ``/proc/meminfo``, the same reading the eviction manager's
  ``memory.available`` uses (Kubernetes takes the root cgroup's working set; the kernel's
  estimate is its counterpart on a host without one). Every podlife node on one machine
  reports the machine.
* **Real containers** (runc): each running container's own cgroup, as cAdvisor reads it
  (:meth:`~podlife.kubelet.oci.cgroups.CgroupLayout.stats`: v1 ``cpuacct.usage``, memory
  usage minus ``total_inactive_file``; v2 ``cpu.stat``/``memory.current``); a pod's numbers
  come from its pod cgroup (its pause container and every container in it).
* **Host-process containers** (the fallback runtime): the processes of the container's
  session, found in one pass over ``/proc/<pid>/stat`` per request: CPU is their
  ``utime + stime`` plus what their reaped children used (``cutime + cstime``), memory
  their resident pages (no cgroup tells the working set apart); a pod is the sum of its
  containers.

What it writes: Prometheus text (format 0.0.4) with the names, labels and help texts of
Kubernetes' resource metrics collector (``pkg/kubelet/metrics/collectors``):
``node_cpu_usage_seconds_total``, ``node_memory_working_set_bytes``,
``container_cpu_usage_seconds_total{container,pod,namespace}``,
``container_memory_working_set_bytes{...}``, ``container_start_time_seconds{...}``,
``pod_cpu_usage_seconds_total{pod,namespace}``, ``pod_memory_working_set_bytes{...}``, and
``scrape_error``/``resource_scrape_error`` (1 when the node could not be read). Usage samples
carry the time they were read (milliseconds), which is what metrics-server computes CPU
rates from; start times carry none, as in Kubernetes.

Why on request and not on a timer: nobody pays for it unless a scraper asks (the API
server's :mod:`podlife.api.resource_metrics` does, every ``--metric-resolution`` once
``kubectl top`` was used), and each answer is as fresh as it can be.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from .oci.cgroups import pod_cgroup_path

__all__ = ["CONTENT_TYPE", "ResourceSnapshot", "ResourceUsage", "Usage", "render"]

log = logging.getLogger(__name__)

#: what ``/metrics/resource`` answers with (the kubelet's Prometheus text format)
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
#: the /proc/stat cpu columns that are work (user nice system idle iowait irq softirq steal ...)
_BUSY_COLUMNS = (0, 1, 2, 5, 6, 7)


@dataclass(frozen=True)
class Usage:
    """Cumulative CPU (core-seconds) and the memory working set (bytes); None: could not be read."""

    cpu_seconds: float | None
    memory_bytes: int | None


@dataclass(frozen=True)
class ContainerSample:
    namespace: str
    pod: str
    container: str
    #: when the container started (epoch seconds)
    start_time: float
    usage: Usage


@dataclass(frozen=True)
class PodSample:
    namespace: str
    pod: str
    usage: Usage


@dataclass(frozen=True)
class ResourceSnapshot:
    """One reading of the node and its running containers, all at ``timestamp`` (epoch seconds)."""

    timestamp: float
    node: Usage
    containers: tuple[ContainerSample, ...]
    pods: tuple[PodSample, ...]
    #: 1 when something could not be read (Kubernetes' ``scrape_error``)
    error: int = 0


# --------------------------------------------------------------------------- reading


def node_usage() -> Usage:
    """The machine's CPU time and working set, from ``/proc/stat`` and ``/proc/meminfo``."""
    cpu: float | None = None
    memory: int | None = None
    try:
        with open("/proc/stat") as f:
            columns = f.readline().split()[1:]
        cpu = sum(int(columns[i]) for i in _BUSY_COLUMNS if i < len(columns)) / _CLOCK_TICKS
    except (OSError, ValueError, IndexError):
        pass
    try:
        info = {}
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("MemTotal", "MemAvailable"):
                    info[key] = int(rest.split()[0]) * 1024
        memory = max(0, info["MemTotal"] - info["MemAvailable"])
    except (OSError, ValueError, IndexError, KeyError):
        pass
    return Usage(cpu, memory)


@dataclass(frozen=True)
class _Process:
    session: int
    cpu_ticks: int
    rss_pages: int


def _processes() -> Iterator[_Process]:
    """Every process's session, CPU ticks (own and reaped children's) and resident pages."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rpartition(b")")[2].split()
            # field N of proc(5) is fields[N - 3]: session 6, utime..cstime 14-17, rss 24
            yield _Process(int(fields[3]), sum(int(x) for x in fields[11:15]), int(fields[21]))
        except (OSError, ValueError, IndexError):
            continue


def session_usage(sessions: Iterable[int]) -> dict[int, Usage]:
    """CPU and resident memory of the processes of each session (a host-process container's pid)."""
    wanted = set(sessions)
    ticks: dict[int, int] = dict.fromkeys(wanted, 0)
    pages: dict[int, int] = dict.fromkeys(wanted, 0)
    for proc in _processes():
        if proc.session in wanted:
            ticks[proc.session] += proc.cpu_ticks
            pages[proc.session] += proc.rss_pages
    return {s: Usage(ticks[s] / _CLOCK_TICKS, pages[s] * _PAGE_SIZE) for s in wanted}


def _sum(usages: Iterable[Usage]) -> Usage:
    cpu: float | None = 0.0
    memory: int | None = 0
    for u in usages:
        cpu = None if cpu is None or u.cpu_seconds is None else cpu + u.cpu_seconds
        memory = None if memory is None or u.memory_bytes is None else memory + u.memory_bytes
    return Usage(cpu, memory)


class ResourceUsage:
    """Reads a node's usage from its runtime's containers (see the module's design)."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime

    def running(self) -> list[Any]:
        """The running containers (on the event loop: the runtime's tables are the loop's)."""
        return [h for h in self.runtime.running_containers() if h.running]

    def snapshot(self, handles: list[Any] | None = None) -> ResourceSnapshot:
        """The node and the running containers (``handles``, default :meth:`running`) now.

        Blocking file reads: call in a thread, with ``handles`` taken on the loop.
        """
        timestamp = time.time()
        node = node_usage()
        handles = self.running() if handles is None else handles
        oci: Any = getattr(self.runtime, "oci", None)
        real = [h for h in handles if oci is not None and hasattr(h, "cgroup_path")]
        hosted = [h for h in handles if not (oci is not None and hasattr(h, "cgroup_path"))
                  and isinstance(getattr(h, "pid", None), int)]
        containers: list[ContainerSample] = []
        pods: dict[tuple[str, str], list[Usage]] = {}
        pod_cgroups: dict[tuple[str, str], str] = {}
        for h in real:
            stats = oci.stats(h)
            usage = Usage(None if stats.cpu_usage_nanoseconds is None else stats.cpu_usage_nanoseconds / 1e9,
                          stats.memory_working_set_bytes)
            containers.append(_sample(h, usage))
            key = (h.pod_key.namespace, h.pod_key.name)
            pods.setdefault(key, []).append(usage)
            pod_cgroups[key] = pod_cgroup_path(h.pod_key.uid, getattr(oci, "cgroup_parent", "podlife"))
        if hosted:
            by_session = session_usage(h.pid for h in hosted)
            for h in hosted:
                containers.append(_sample(h, by_session[h.pid]))
                pods.setdefault((h.pod_key.namespace, h.pod_key.name), []).append(by_session[h.pid])
        pod_samples = []
        for key, usages in pods.items():
            total = _sum(usages)
            if key in pod_cgroups:  # the pod cgroup: the pause container and every container of the pod
                stats = oci.cgroups.stats(pod_cgroups[key])
                if stats.cpu_usage_nanoseconds is not None and stats.memory_working_set_bytes is not None:
                    total = Usage(stats.cpu_usage_nanoseconds / 1e9, stats.memory_working_set_bytes)
            pod_samples.append(PodSample(key[0], key[1], total))
        error = int(node.cpu_seconds is None or node.memory_bytes is None)
        return ResourceSnapshot(timestamp, node, tuple(_newest_per_name(containers)), tuple(pod_samples), error)

    async def render_text(self) -> bytes:
        """``/metrics/resource``'s body: a snapshot read in a thread, as Prometheus text."""
        try:
            snapshot = await asyncio.to_thread(self.snapshot, self.running())
        except Exception:  # noqa: BLE001 - answered as Kubernetes does: scrape_error 1, nothing else
            log.exception("reading resource usage failed")
            snapshot = ResourceSnapshot(time.time(), Usage(None, None), (), (), error=1)
        return render(snapshot)


def _sample(handle: Any, usage: Usage) -> ContainerSample:
    return ContainerSample(handle.pod_key.namespace, handle.pod_key.name, handle.name,
                           handle.started_at.timestamp(), usage)


def _newest_per_name(samples: list[ContainerSample]) -> list[ContainerSample]:
    """One sample per container name of a pod: the newest start (a restart overlapping its predecessor)."""
    newest: dict[tuple[str, str, str], ContainerSample] = {}
    for s in samples:
        key = (s.namespace, s.pod, s.container)
        if key not in newest or newest[key].start_time < s.start_time:
            newest[key] = s
    return list(newest.values())


# --------------------------------------------------------------------------- rendering

_CONTAINER_LABELS = ["container", "pod", "namespace"]
_POD_LABELS = ["pod", "namespace"]


class _SnapshotCollector:
    """Yields one snapshot as Kubernetes' resource metrics families (help texts with their stability)."""

    def __init__(self, snapshot: ResourceSnapshot) -> None:
        self.s = snapshot

    def collect(self) -> Iterator[Metric]:
        s, ts = self.s, self.s.timestamp
        node_cpu = CounterMetricFamily("node_cpu_usage_seconds",
                                       "[STABLE] Cumulative cpu time consumed by the node in core-seconds")
        node_memory = GaugeMetricFamily("node_memory_working_set_bytes", "[STABLE] Current working set of the node in bytes")
        if s.node.cpu_seconds is not None:
            node_cpu.add_metric([], s.node.cpu_seconds, timestamp=ts)
        if s.node.memory_bytes is not None:
            node_memory.add_metric([], s.node.memory_bytes, timestamp=ts)
        start = GaugeMetricFamily("container_start_time_seconds",
                                  "[STABLE] Start time of the container since unix epoch in seconds",
                                  labels=_CONTAINER_LABELS)
        cpu = CounterMetricFamily("container_cpu_usage_seconds",
                                  "[STABLE] Cumulative cpu time consumed by the container in core-seconds",
                                  labels=_CONTAINER_LABELS)
        memory = GaugeMetricFamily("container_memory_working_set_bytes",
                                   "[STABLE] Current working set of the container in bytes", labels=_CONTAINER_LABELS)
        for c in s.containers:
            labels = [c.container, c.pod, c.namespace]
            start.add_metric(labels, c.start_time)
            if c.usage.cpu_seconds is not None:
                cpu.add_metric(labels, c.usage.cpu_seconds, timestamp=ts)
            if c.usage.memory_bytes is not None:
                memory.add_metric(labels, c.usage.memory_bytes, timestamp=ts)
        pod_cpu = CounterMetricFamily("pod_cpu_usage_seconds",
                                      "[STABLE] Cumulative cpu time consumed by the pod in core-seconds",
                                      labels=_POD_LABELS)
        pod_memory = GaugeMetricFamily("pod_memory_working_set_bytes", "[STABLE] Current working set of the pod in bytes",
                                       labels=_POD_LABELS)
        for p in s.pods:
            if p.usage.cpu_seconds is not None:
                pod_cpu.add_metric([p.pod, p.namespace], p.usage.cpu_seconds, timestamp=ts)
            if p.usage.memory_bytes is not None:
                pod_memory.add_metric([p.pod, p.namespace], p.usage.memory_bytes, timestamp=ts)
        scrape_error = GaugeMetricFamily(
            "scrape_error", "[ALPHA] (Deprecated since 1.29.0) 1 if there was an error while getting container "
                            "metrics, 0 otherwise")
        scrape_error.add_metric([], s.error)
        resource_scrape_error = GaugeMetricFamily(
            "resource_scrape_error", "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise")
        resource_scrape_error.add_metric([], s.error)
        yield from (start, cpu, memory, node_cpu, node_memory, pod_cpu, pod_memory, resource_scrape_error, scrape_error)


def render(snapshot: ResourceSnapshot) -> bytes:
    """``snapshot`` as Prometheus text (format 0.0.4), on a registry of its own (not the process-wide one)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot))
    return generate_latest(registry)
