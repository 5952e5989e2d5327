"""Resource usage for ``metrics.k8s.io``: what ``kubectl top`` shows, metrics-server's job in-process.

Design
------
:class:`ResourceMetrics` answers ``node_metrics()`` and ``pod_metrics(namespace)`` with
NodeMetrics and PodMetrics objects (``metrics.k8s.io/v1beta1``); the API that serves them,
with its selectors and tables, is :mod:`podlife.api.metrics_api`. Two kinds of node:

**Real nodes** (a kubelet endpoint on loopback). Like metrics-server, the provider scrapes
each kubelet's ``GET /metrics/resource`` (:mod:`podlife.kubelet.resource_usage`) with the API
server's kubelet client (its TLS session, client certificate and token, as ``kubectl logs``
reaches a kubelet: :func:`podlife.api.kubelets.kubelet_base_url`, which never dials anything
but loopback), every ``resolution`` seconds (``--metric-resolution``; metrics-server's
default is 15 s, podlife's 5 s). Nothing is scraped until the first request wants metrics;
that request scrapes at once, twice one second apart when there is no earlier sample, so
the first ``kubectl top`` answers. A request that finds the newest scrape older than the
resolution scrapes again. Each series keeps its last two points, by metrics-server's rules
(``pkg/storage``): CPU is the rate between them (the window is their distance), memory the
last working set; a restarted container (a new start time) starts its series again; a
decreasing counter gives no value; a pod shows only once every one of its containers has two
points.

**Simulated nodes** (kubelet port 0, :mod:`podlife.sim.nodes`): nothing runs, so usage is
declared. Per running container and per resource (cpu, memory), the first of: the pod's
annotations ``podlife.io/sim-usage-cpu`` / ``podlife.io/sim-usage-memory`` (each container
of the pod uses that much; KWOK's ``kwok.x-k8s.io/usage-*`` idea, and it works with a
simulator in another process); the in-process simulator's ``usage`` stages
(:attr:`ResourceMetrics.declared_usage`, wired by ``cluster.py``); the container's
requests; else 0. A node's usage is the sum of its running pods'. The window is the
resolution and the timestamp now. Declared usage is computed once per pod version
(cached by resourceVersion), so ``kubectl top nodes`` over 1,000 nodes and 10,000 pods is
one pass over the pod cache.

A node whose endpoint is neither (a port on an address that is not loopback) has no
metrics: it is never dialled.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from ..machinery import errors
from ..machinery.resources import BINARY_SI, Quantity, format_quantity, parse
from ..machinery.timeutil import now_rfc3339
from ..node.lifecycle import go_duration
from .keys import KUBELET_SESSION, KUBELET_TLS, KUBELET_TOKEN
from .kubelets import kubelet_base_url

__all__ = ["CPU_ANNOTATION", "DEFAULT_RESOLUTION", "MEMORY_ANNOTATION", "ResourceMetrics"]

log = logging.getLogger(__name__)

#: ``--metric-resolution``: how often real kubelets are scraped (metrics-server: 15 s)
DEFAULT_RESOLUTION = 5.0
#: the distance of the two scrapes a first request makes when there is no earlier sample
FIRST_WINDOW = 1.0
SCRAPE_TIMEOUT = 10.0
#: a simulated pod's declared usage, per container (quantities: ``250m``, ``64Mi``)
CPU_ANNOTATION = "podlife.io/sim-usage-cpu"
MEMORY_ANNOTATION = "podlife.io/sim-usage-memory"
NANO = 10**9

#: the simulator's usage stages: (pod, container name) -> {"cpu": "250m", "memory": "64Mi"} (either may be absent)
DeclaredUsage = Callable[[Mapping[str, Any], str], "Mapping[str, str] | None"]


@dataclass(frozen=True)
class Point:
    """One sample of a node or container: cumulative CPU (nanocore-seconds) and working set at ``timestamp``."""

    start: float
    timestamp: float
    cpu: float
    memory: int


@dataclass(frozen=True)
class Rate:
    """What a window between two points shows: nanocores, bytes, the last point's time and the window."""

    cpu: int
    memory: int
    timestamp: float
    window: float


def rate(last: Point, prev: Point) -> Rate | None:
    """metrics-server's ``resourceUsage``: None for a counter that went down or a window of zero."""
    window = last.timestamp - prev.timestamp
    if window <= 0 or last.cpu < prev.cpu or last.start < prev.start:
        return None
    return Rate(int((last.cpu - prev.cpu) / window), last.memory, last.timestamp, window)


def _next_prev(new: Point, last: Point | None, prev: Point | None) -> Point | None:
    """Which point a new one is measured against (metrics-server's ``Store``): the last one, unless the
    container restarted since (its start moved) or the new one is no newer (then the older previous stays)."""
    if last is None or new.start != last.start:
        return None
    if new.timestamp > last.timestamp:
        return last
    if prev is not None and prev.start == new.start and prev.timestamp < new.timestamp:
        return prev
    return None


@dataclass
class _Scrape:
    """One kubelet answer: the node's point and each pod's containers' points."""

    node: Point | None
    pods: dict[tuple[str, str], dict[str, Point]]


def parse_scrape(text: str) -> _Scrape:
    """``/metrics/resource`` text as points (CPU in nanocore-seconds); samples without a time are skipped."""
    cpu: dict[tuple[str, str, str], tuple[float, float]] = {}
    memory: dict[tuple[str, str, str], int] = {}
    start: dict[tuple[str, str, str], float] = {}
    node_cpu: tuple[float, float] | None = None
    node_memory: int | None = None
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.labels.get("namespace", ""), s.labels.get("pod", ""), s.labels.get("container", ""))
            if s.name == "container_start_time_seconds":
                start[key] = s.value
            elif s.timestamp is None:
                continue
            elif s.name == "container_cpu_usage_seconds_total":
                cpu[key] = (float(s.timestamp), s.value * NANO)
            elif s.name == "container_memory_working_set_bytes":
                memory[key] = int(s.value)
            elif s.name == "node_cpu_usage_seconds_total":
                node_cpu = (float(s.timestamp), s.value * NANO)
            elif s.name == "node_memory_working_set_bytes":
                node_memory = int(s.value)
    pods: dict[tuple[str, str], dict[str, Point]] = {}
    for key, (ts, used) in cpu.items():
        if key in memory:
            pods.setdefault(key[:2], {})[key[2]] = Point(start.get(key, 0.0), ts, used, memory[key])
    node = None if node_cpu is None or node_memory is None else Point(0.0, node_cpu[0], node_cpu[1], node_memory)
    return _Scrape(node, pods)


class _NodeSeries:
    """The last two points of a real node and of each of its containers."""

    def __init__(self) -> None:
        self.node_last: Point | None = None
        self.node_prev: Point | None = None
        self.last: dict[tuple[str, str], dict[str, Point]] = {}
        self.prev: dict[tuple[str, str], dict[str, Point]] = {}

    def store(self, scrape: _Scrape) -> None:
        if scrape.node is not None:
            self.node_prev = _next_prev(scrape.node, self.node_last, self.node_prev)
            self.node_last = scrape.node
        prev_pods: dict[tuple[str, str], dict[str, Point]] = {}
        for pod, containers in scrape.pods.items():
            last_pod, prev_pod = self.last.get(pod, {}), self.prev.get(pod, {})
            kept = {}
            for name, point in containers.items():
                before = _next_prev(point, last_pod.get(name), prev_pod.get(name))
                if before is not None:
                    kept[name] = before
            if kept:
                prev_pods[pod] = kept
        self.last, self.prev = scrape.pods, prev_pods

    def node_rate(self) -> Rate | None:
        if self.node_last is None or self.node_prev is None:
            return None
        return rate(self.node_last, self.node_prev)

    def pod_rates(self, pod: tuple[str, str]) -> dict[str, Rate] | None:
        """Each container's rate, or None unless every container of the pod has two points."""
        last, prev = self.last.get(pod), self.prev.get(pod)
        if not last or prev is None:
            return None
        rates = {}
        for name, point in last.items():
            if name not in prev:
                return None
            r = rate(point, prev[name])
            if r is not None:
                rates[name] = r
        return rates

    def complete(self) -> bool:
        """Whether the node has two points (a rate can be told)."""
        return self.node_prev is not None


# --------------------------------------------------------------------------- formatting


def cpu_text(nanocores: int | Fraction) -> str:
    """Nanocores as Kubernetes prints a CPU quantity (``123456789n``, ``250m``, ``2``)."""
    return format_quantity(Quantity(Fraction(nanocores) / NANO))


def memory_text(used: int | Fraction) -> str:
    """Bytes as a binary quantity (``64Mi``, ``1234Ki``, ``1000``)."""
    return format_quantity(Quantity(Fraction(used), BINARY_SI))


def _rfc3339(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _window(seconds: float) -> str:
    return go_duration(round(seconds, 3))


def _node_kind(node: Mapping[str, Any]) -> str:
    """"sim" (kubelet port 0), "real" (a port), as the Node object says."""
    status = node.get("status") or {}
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    return "real" if port else "sim"


def _running_containers(pod: Mapping[str, Any]) -> list[str]:
    """The names of the pod's running containers (sidecars too), as its status says."""
    status = pod.get("status") or {}
    names = []
    for key in ("initContainerStatuses", "containerStatuses"):
        for cs in status.get(key) or ():
            if "running" in (cs.get("state") or {}):
                names.append(cs.get("name", ""))
    return names


def _requests(pod: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    spec = pod.get("spec") or {}
    out: dict[str, Mapping[str, Any]] = {}
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or ():
            out[c.get("name", "")] = (c.get("resources") or {}).get("requests") or {}
    return out


def _amount(value: Any, unit: int) -> int | None:
    """A quantity in ``unit`` (NANO for nanocores, 1 for bytes), rounded down to whole units; None if not one."""
    q = parse(value) if value is not None else None
    return None if q is None or q.value < 0 else int(q.value * unit)


class ResourceMetrics:
    """NodeMetrics and PodMetrics from real kubelets' scrapes and simulated nodes' declarations.

    ``app`` is the API server's aiohttp application: its kubelet session, token and TLS (None: no
    real node is scraped). ``declared_usage`` is the in-process simulator's usage stages (may be set later).
    """

    def __init__(self, ctx: Any, app: Any = None, *, resolution: float = DEFAULT_RESOLUTION,
                 declared_usage: DeclaredUsage | None = None) -> None:
        if resolution <= 0:
            raise ValueError(f"--metric-resolution must be positive, not {resolution}")
        self.ctx = ctx
        self.app = app
        self.resolution = resolution
        self.declared_usage = declared_usage
        self._series: dict[str, _NodeSeries] = {}
        self._last_scrape = float("-inf")  # monotonic time of the newest scrape of every real node
        self._lock = asyncio.Lock()
        self._wanted = asyncio.Event()
        #: per pod key: (resourceVersion, {container: (nanocores, bytes)}) of simulated pods
        self._declared: dict[str, tuple[int, dict[str, tuple[int, int]]]] = {}

    # ------------------------------------------------------------------ the API

    async def node_metrics(self) -> list[dict[str, Any]]:
        """A NodeMetrics for every node with a sample (real: two scrapes; simulated: always)."""
        await self._refresh()
        nodes = self._nodes()
        sim_totals = self._sim_node_totals({name for name, node in nodes.items() if _node_kind(node) == "sim"})
        now, created = time.time(), now_rfc3339()
        out = []
        for name, node in nodes.items():
            if _node_kind(node) == "sim":
                cpu, memory = sim_totals.get(name, (0, 0))
                out.append(self._node_object(node, created, now, self.resolution, cpu_text(cpu), memory_text(memory)))
                continue
            series = self._series.get(name)
            r = series.node_rate() if series is not None else None
            if r is not None:
                out.append(self._node_object(node, created, r.timestamp, r.window, cpu_text(r.cpu), memory_text(r.memory)))
        return out

    async def pod_metrics(self, namespace: str | None) -> list[dict[str, Any]]:
        """A PodMetrics for every pod (of ``namespace``; None: all) whose containers all have samples."""
        await self._refresh()
        nodes = self._nodes()
        pods = self.ctx.rest_by("", "v1", "pods")
        if pods is None:
            return []
        self._prune(pods.cache)
        now, created = time.time(), now_rfc3339()
        out = []
        for co in pods.cache.in_namespace(namespace):
            pod = co.obj
            node = nodes.get((pod.get("spec") or {}).get("nodeName") or "")
            if node is None:
                continue
            if _node_kind(node) == "sim":
                usage = self._sim_usage(co)
                if usage:
                    containers = [{"name": n, "usage": {"cpu": cpu_text(c), "memory": memory_text(m)}}
                                  for n, (c, m) in usage.items()]
                    out.append(self._pod_object(pod, created, now, self.resolution, containers))
                continue
            series = self._series.get(node["metadata"]["name"])
            rates = series.pod_rates((co.namespace, co.name)) if series is not None else None
            if rates:
                containers = [{"name": n, "usage": {"cpu": cpu_text(r.cpu), "memory": memory_text(r.memory)}}
                              for n, r in sorted(rates.items())]
                first = min(rates.values(), key=lambda r: r.timestamp)
                out.append(self._pod_object(pod, created, first.timestamp, first.window, containers))
        return out

    # ------------------------------------------------------------------ objects

    @staticmethod
    def _node_object(node: Mapping[str, Any], created: str, timestamp: float, window: float, cpu: str,
                     memory: str) -> dict[str, Any]:
        meta = node.get("metadata") or {}
        return {"metadata": {"name": meta.get("name"), "creationTimestamp": created, "labels": dict(meta.get("labels") or {})},
                "timestamp": _rfc3339(timestamp), "window": _window(window),
                "usage": {"cpu": cpu, "memory": memory}}

    @staticmethod
    def _pod_object(pod: Mapping[str, Any], created: str, timestamp: float, window: float,
                    containers: list[dict[str, Any]]) -> dict[str, Any]:
        meta = pod.get("metadata") or {}
        return {"metadata": {"name": meta.get("name"), "namespace": meta.get("namespace"), "creationTimestamp": created,
                             "labels": dict(meta.get("labels") or {})},
                "timestamp": _rfc3339(timestamp), "window": _window(window), "containers": containers}

    def _nodes(self) -> dict[str, Mapping[str, Any]]:
        nodes = self.ctx.rest_by("", "v1", "nodes")
        if nodes is None:
            return {}
        return {co.name: co.obj for co in nodes.cache.in_namespace(None)}

    # ------------------------------------------------------------------ simulated nodes

    def _sim_usage(self, co: Any) -> dict[str, tuple[int, int]]:
        """The declared usage of a simulated pod's running containers (cached per pod version)."""
        cached = self._declared.get(co.key)
        if cached is not None and cached[0] == co.rv:
            return cached[1]
        pod = co.obj
        annotations = (pod.get("metadata") or {}).get("annotations") or {}
        requests = _requests(pod)
        usage: dict[str, tuple[int, int]] = {}
        for name in _running_containers(pod):
            declared = self.declared_usage(pod, name) if self.declared_usage is not None else None
            declared = declared or {}
            wanted = requests.get(name, {})
            cpu = next((a for a in (_amount(annotations.get(CPU_ANNOTATION), NANO), _amount(declared.get("cpu"), NANO),
                                    _amount(wanted.get("cpu"), NANO)) if a is not None), 0)
            memory = next((a for a in (_amount(annotations.get(MEMORY_ANNOTATION), 1), _amount(declared.get("memory"), 1),
                                       _amount(wanted.get("memory"), 1)) if a is not None), 0)
            usage[name] = (cpu, memory)
        self._declared[co.key] = (co.rv, usage)
        return usage

    def _prune(self, cache: Any) -> None:
        """Forget the declared usage of pods that are gone, once they could be a good part of the cache."""
        if len(self._declared) > 1024 + len(cache.objects):
            self._declared = {k: v for k, v in self._declared.items() if cache.get(k) is not None}

    def _sim_node_totals(self, sim_nodes: set[str]) -> dict[str, tuple[int, int]]:
        """Each simulated node's usage: the sum of its running pods' declared usage."""
        pods = self.ctx.rest_by("", "v1", "pods")
        if not sim_nodes or pods is None:
            return {}
        self._prune(pods.cache)
        totals: dict[str, tuple[int, int]] = {}
        for co in pods.cache.in_namespace(None):
            node = (co.obj.get("spec") or {}).get("nodeName")
            if node not in sim_nodes:
                continue
            usage = self._sim_usage(co)
            if usage:
                cpu, memory = totals.get(node, (0, 0))
                totals[node] = (cpu + sum(c for c, _ in usage.values()), memory + sum(m for _, m in usage.values()))
        return totals

    # ------------------------------------------------------------------ real nodes

    async def run(self) -> None:
        """Scrape every real kubelet each ``resolution`` once the first request asked for metrics."""
        await self._wanted.wait()
        while True:
            await asyncio.sleep(self.resolution)
            try:
                async with self._lock:
                    await self._scrape_all()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - logged; the next round tries again
                log.exception("scraping the kubelets' resource metrics failed")

    async def _refresh(self) -> None:
        """Make sure the real nodes' samples are fresh: scrape now when the newest is older than the resolution."""
        self._wanted.set()
        if self.app is None or time.monotonic() - self._last_scrape < self.resolution:
            return
        async with self._lock:
            if time.monotonic() - self._last_scrape < self.resolution:
                return  # another request scraped while this one waited
            await self._scrape_all()
            if any(not s.complete() for s in self._series.values()):
                await asyncio.sleep(FIRST_WINDOW)  # a rate needs two points: the first request makes both
                await self._scrape_all()

    def _real_nodes(self) -> list[str]:
        return [name for name, node in self._nodes().items() if _node_kind(node) == "real"]

    async def _scrape_all(self) -> None:
        names = self._real_nodes()
        for gone in set(self._series) - set(names):
            del self._series[gone]
        await asyncio.gather(*(self._scrape(name) for name in names))
        self._last_scrape = time.monotonic()

    async def _scrape(self, name: str) -> None:
        """One kubelet's ``/metrics/resource`` into its series; a failure is logged and leaves the series as it was."""
        app = self.app
        scheme = "https" if app.get(KUBELET_TLS) is not None else "http"
        try:
            base = kubelet_base_url(self.ctx, name, "resource metrics", scheme)  # loopback only
        except errors.ApiError as exc:
            log.debug("no resource metrics for node %s: %s", name, exc.message)
            return
        session: aiohttp.ClientSession = app[KUBELET_SESSION]
        headers = {"Authorization": f"Bearer {app[KUBELET_TOKEN]}"}
        try:
            async with session.get(f"{base}/metrics/resource", headers=headers,
                                   timeout=aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT)) as resp:
                text = await resp.text()
                if resp.status != 200:
                    log.warning("kubelet of node %s answered /metrics/resource with %d", name, resp.status)
                    return
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            log.warning("failed to scrape the kubelet of node %s: %s", name, exc)
            return
        self._series.setdefault(name, _NodeSeries()).store(parse_scrape(text))

