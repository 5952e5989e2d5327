"""The workloads of kube-scheduler's ``scheduler_perf``, as podlife objects, and how to judge their placement.

What was read (kubernetes/kubernetes ``test/integration/scheduler_perf``: ``misc/``,
``affinity/``, ``topology_spreading/`` and ``default_preemption/performance-config.yaml``,
``templates/``), per workload at 5,000 nodes -- the CI case and its threshold (pods/s,
``SchedulingThroughput`` average):

=================  ==========================================  =========  ========  =========
workload           scheduler_perf case                          init pods  measured  threshold
=================  ==========================================  =========  ========  =========
basic              SchedulingBasic/5000Nodes_10000Pods           1,000      10,000    680
node-affinity      SchedulingNodeAffinity/5000Nodes_10000Pods    5,000      10,000    220
pod-anti-affinity  SchedulingPodAntiAffinity/5000Nodes_2000Pods  1,000      2,000     60
pod-affinity       SchedulingPodAffinity/5000Nodes_5000Pods      5,000      5,000     35
spread-required    TopologySpreading/5000Nodes_5000Pods          5,000      5,000     460
spread-preferred   PreferredTopologySpreading/5000Nodes_5000Pods 5,000      5,000     340
preemption         PreemptionBasic/1000Nodes (1,000 nodes)       4,000      1,000     none
=================  ==========================================  =========  ========  =========

(``SchedulingBasic/5000Nodes_50000Pods`` has 810. PreemptionBasic's 5,000-node case --
20,000 init, 5,000 measured -- is commented out there, "always seems to fail", so the
preemption workload runs on at most 1,000 nodes, its largest CI case.)

The shapes, from the templates:

- **nodes** (``node-default.yaml``): capacity ``cpu: 4``, ``memory: 32Gi``, ``pods: 110``,
  condition Ready=True. Node affinity and pod affinity label every node
  ``topology.kubernetes.io/zone: zone1``; both spreading workloads ``moon-1``, ``moon-2``,
  ``moon-3`` (scheduler_perf's ``labelNodePrepareStrategy`` picks a value per node; here
  round-robin, so the zones are equal). podlife's nodes also carry
  ``kubernetes.io/hostname`` (as every kubelet writes it; anti-affinity's topology key).
- **pods** (``pod-default.yaml``): one ``pause`` container, ``containerPort: 80``,
  requests = limits = ``cpu: 100m, memory: 500Mi``. The affinity templates add
  ``color: green`` + required anti-affinity to ``color: green`` over
  ``kubernetes.io/hostname``; ``color: blue`` + required affinity to ``color: blue`` over
  the zone; both with ``namespaces: [sched-1, sched-0]`` (init pods in ``sched-0``,
  measured in ``sched-1``). Spreading: ``color: blue``, ``maxSkew: 5`` over the zone,
  ``DoNotSchedule`` / ``ScheduleAnyway``. Node affinity: required zone ``In [zone1, zone2]``.
- **preemption** (``pod-low-priority.yaml``, ``pod-high-priority.yaml``): 4 init pods per
  node of ``cpu: 900m`` (3.6 of 4 CPUs), ``terminationGracePeriodSeconds: 0``; measured
  pods of ``cpu: 3`` with priority 10 (here through a PriorityClass ``bench-high``, since
  podlife's Priority admission, like Kubernetes', refuses a bare ``spec.priority``), so
  each must evict 3 of a node's 4 low-priority pods.

Counts scale with ``--nodes`` from the 5,000-node case (1,000 for preemption), never
below one pod; ``--pods`` overrides the measured count (clamped where a workload
cannot hold more: anti-affinity fits one green pod per node, preemption one 3-CPU pod
per node).

Init pods are created already bound (``spec.nodeName``, round-robin over the nodes),
where scheduler_perf lets the scheduler place them unmeasured: round-robin is the
placement LeastAllocated converges to for equal pods on equal nodes, satisfies every
init pod's own rule (one green pod per node, blue pods all in zone1), and costs one write
per pod instead of three.

This module only builds objects and judges results; :mod:`scheduler` (the benchmark)
creates them and runs the scheduler.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ZONE = "topology.kubernetes.io/zone"
HOSTNAME = "kubernetes.io/hostname"
INIT_NS = "sched-0"
MEASURED_NS = "sched-1"
SCHEDULER_NAME = "bench-scheduler"
HIGH_PRIORITY_CLASS = "bench-high"
HIGH_PRIORITY = 10
NODE_CPU_MILLI = 4000
PAUSE_IMAGE = "registry.k8s.io/pause:3.10.1"

Obj = dict[str, Any]


# ---- objects ------------------------------------------------------------------------------


def node_manifest(name: str, labels: dict[str, str]) -> Obj:
    """``node-default.yaml``: 4 CPUs, 32Gi, 110 pods, Ready (no kubelet: nothing renews it)."""
    resources = {"cpu": "4", "memory": "32Gi", "pods": "110"}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {HOSTNAME: name, "kubernetes.io/os": "linux", **labels}},
            "spec": {},
            "status": {"capacity": resources, "allocatable": resources, "phase": "Running",
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                       "message": "benchmark node (no kubelet)"}]}}


def _container(cpu: str = "100m", memory: str = "500Mi") -> Obj:
    requests = {"cpu": cpu, "memory": memory}
    return {"name": "pause", "image": PAUSE_IMAGE, "ports": [{"containerPort": 80}],
            "resources": {"limits": dict(requests), "requests": requests}}


def pod_manifest(name: str, spec_extra: Obj | None = None, labels: dict[str, str] | None = None,
                 cpu: str = "100m") -> Obj:
    """``pod-default.yaml`` with a template's additions (labels, affinity, spreading, priority)."""
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"bench": "scheduler", **(labels or {})}},
            "spec": {"containers": [_container(cpu)], **(spec_extra or {})}}


def _pod_terms(selector: dict[str, str], topology_key: str) -> list[Obj]:
    return [{"labelSelector": {"matchLabels": selector}, "topologyKey": topology_key,
             "namespaces": [MEASURED_NS, INIT_NS]}]


ANTI_AFFINITY: Obj = {"affinity": {"podAntiAffinity": {
    "requiredDuringSchedulingIgnoredDuringExecution": _pod_terms({"color": "green"}, HOSTNAME)}}}
POD_AFFINITY: Obj = {"affinity": {"podAffinity": {
    "requiredDuringSchedulingIgnoredDuringExecution": _pod_terms({"color": "blue"}, ZONE)}}}
NODE_AFFINITY: Obj = {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
    "nodeSelectorTerms": [{"matchExpressions": [{"key": ZONE, "operator": "In", "values": ["zone1", "zone2"]}]}]}}}}


def _spreading(when: str) -> Obj:
    return {"topologySpreadConstraints": [{"maxSkew": 5, "topologyKey": ZONE, "whenUnsatisfiable": when,
                                           "labelSelector": {"matchLabels": {"color": "blue"}}}]}


# ---- workloads ----------------------------------------------------------------------------


PodFactory = Callable[[str], Obj]


@dataclass(frozen=True)
class Workload:
    """One scheduler_perf case: its nodes, init pods and measured pods, at ``ref_nodes`` nodes."""

    name: str
    case: str
    ref_nodes: int
    ref_init: int
    ref_measured: int
    threshold: float | None
    zones: tuple[str, ...]
    init_pod: PodFactory
    measured_pod: PodFactory
    #: the plugin whose work this workload measures (None: only the default filters)
    plugin: str | None = None
    max_nodes: int | None = None
    #: how many measured pods the nodes can hold at most (None: no limit)
    capacity: Callable[[int, int], int] | None = None
    priority_classes: tuple[tuple[str, int], ...] = field(default_factory=tuple)

    def counts(self, nodes: int, measured: int | None = None) -> tuple[int, int, int]:
        """(nodes, init pods, measured pods) for a run asked for ``nodes`` nodes."""
        n = min(nodes, self.max_nodes) if self.max_nodes else nodes
        init = max(1, round(self.ref_init * n / self.ref_nodes))
        m = measured if measured is not None else max(1, round(self.ref_measured * n / self.ref_nodes))
        if self.capacity is not None:
            m = min(m, self.capacity(n, init))
        return n, init, m

    def node_labels(self, index: int) -> dict[str, str]:
        return {ZONE: self.zones[index % len(self.zones)]} if self.zones else {}


def _default(name: str) -> Obj:
    return pod_manifest(name)


WORKLOADS: dict[str, Workload] = {w.name: w for w in (
    Workload("basic", "SchedulingBasic/5000Nodes_10000Pods", 5000, 1000, 10000, 680, (),
             _default, _default),
    Workload("node-affinity", "SchedulingNodeAffinity/5000Nodes_10000Pods", 5000, 5000, 10000, 220, ("zone1",),
             _default, lambda name: pod_manifest(name, NODE_AFFINITY), plugin="NodeAffinity"),
    Workload("pod-anti-affinity", "SchedulingPodAntiAffinity/5000Nodes_2000Pods", 5000, 1000, 2000, 60, (),
             lambda name: pod_manifest(name, ANTI_AFFINITY, {"color": "green"}),
             lambda name: pod_manifest(name, ANTI_AFFINITY, {"color": "green"}), plugin="InterPodAffinity",
             capacity=lambda nodes, init: max(0, nodes - init)),
    Workload("pod-affinity", "SchedulingPodAffinity/5000Nodes_5000Pods", 5000, 5000, 5000, 35, ("zone1",),
             lambda name: pod_manifest(name, POD_AFFINITY, {"color": "blue"}),
             lambda name: pod_manifest(name, POD_AFFINITY, {"color": "blue"}), plugin="InterPodAffinity"),
    Workload("spread-required", "TopologySpreading/5000Nodes_5000Pods", 5000, 5000, 5000, 460,
             ("moon-1", "moon-2", "moon-3"), _default,
             lambda name: pod_manifest(name, _spreading("DoNotSchedule"), {"color": "blue"}), plugin="PodTopologySpread"),
    Workload("spread-preferred", "PreferredTopologySpreading/5000Nodes_5000Pods", 5000, 5000, 5000, 340,
             ("moon-1", "moon-2", "moon-3"), _default,
             lambda name: pod_manifest(name, _spreading("ScheduleAnyway"), {"color": "blue"}), plugin="PodTopologySpread"),
    Workload("preemption", "PreemptionBasic/1000Nodes", 1000, 4000, 1000, None, (),
             lambda name: pod_manifest(name, {"terminationGracePeriodSeconds": 0}, cpu="900m"),
             lambda name: pod_manifest(name, {"priorityClassName": HIGH_PRIORITY_CLASS}, cpu="3"),
             plugin="DefaultPreemption", max_nodes=1000, capacity=lambda nodes, init: nodes,
             priority_classes=((HIGH_PRIORITY_CLASS, HIGH_PRIORITY),)),
)}


# ---- placement quality --------------------------------------------------------------------


def _milli_cpu(pod: Obj) -> int:
    total = 0
    for c in (pod.get("spec") or {}).get("containers") or []:
        value = str(((c.get("resources") or {}).get("requests") or {}).get("cpu", "0"))
        total += int(value[:-1]) if value.endswith("m") else int(float(value) * 1000)
    return total


def _labels(pod: Obj) -> dict[str, str]:
    return (pod.get("metadata") or {}).get("labels") or {}


def quality(workload: Workload, nodes: list[Obj], pods: list[Obj]) -> dict[str, Any]:
    """How the pods ended up: requested CPU across nodes (CV, max/min, overcommitted nodes), the measured
    pods' spread over the zones (max skew), and the pods whose own rule is broken (must be 0)."""
    node_labels = {n["metadata"]["name"]: (n["metadata"].get("labels") or {}) for n in nodes}
    cpu: dict[str, int] = dict.fromkeys(node_labels, 0)
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if node in cpu:
            cpu[node] += _milli_cpu(pod)
    values = list(cpu.values())
    mean = sum(values) / len(values) if values else 0.0
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)) if values else 0.0
    out: dict[str, Any] = {
        "cpu_requested_cv": round(std / mean, 4) if mean else 0.0,
        "cpu_requested_max_milli": max(values, default=0),
        "cpu_requested_min_milli": min(values, default=0),
        "overcommitted_nodes": sum(1 for v in values if v > NODE_CPU_MILLI),
    }
    measured = [p for p in pods if p["metadata"].get("namespace") == MEASURED_NS]
    if workload.zones:
        per_zone = Counter(node_labels.get(p["spec"].get("nodeName"), {}).get(ZONE) for p in measured
                           if p["spec"].get("nodeName"))
        counts = [per_zone.get(z, 0) for z in sorted(set(workload.zones))]
        out["zone_pods"] = dict(zip(sorted(set(workload.zones)), counts, strict=True))
        out["zone_max_skew"] = max(counts) - min(counts)
    out["rule_violations"] = _violations(workload, node_labels, pods, measured)
    return out


def _violations(workload: Workload, node_labels: dict[str, dict[str, str]], pods: list[Obj],
                measured: list[Obj]) -> int:
    """Measured pods on a node their rule forbids."""
    def zone_of(pod: Obj) -> str | None:
        return node_labels.get(pod["spec"].get("nodeName"), {}).get(ZONE)

    bound = [p for p in measured if p["spec"].get("nodeName")]
    if workload.name == "node-affinity":
        return sum(1 for p in bound if zone_of(p) not in ("zone1", "zone2"))
    if workload.name == "pod-anti-affinity":
        green = Counter(p["spec"].get("nodeName") for p in pods
                        if _labels(p).get("color") == "green" and p["spec"].get("nodeName"))
        return sum(1 for p in bound if green[p["spec"]["nodeName"]] > 1)
    if workload.name == "pod-affinity":
        blue: dict[str | None, int] = defaultdict(int)
        for p in pods:
            if _labels(p).get("color") == "blue" and p["spec"].get("nodeName"):
                blue[zone_of(p)] += 1
        return sum(1 for p in bound if zone_of(p) is None or blue[zone_of(p)] < 2)
    if workload.name == "spread-required":
        per_zone = Counter(zone_of(p) for p in bound)
        counts = [per_zone.get(z, 0) for z in set(workload.zones)]
        return max(0, max(counts) - min(counts) - 5)  # pods beyond maxSkew
    return 0
