"""Scores and resource rules as Kubernetes computes them, on both the array and the per-node path.

Per rule, the numbers of Kubernetes' own test tables where they exist (least_allocated_test.go,
most_allocated_test.go, requested_to_capacity_ratio_test.go, balanced_allocation_test.go,
node_affinity_test.go, taint_toleration_test.go); then a randomized twin test: a scheduler whose
plugins have no array forms must choose exactly as the one using the arrays (the model of
tests/test_scheduler_columns.py), with every scoring strategy, preferred affinity,
PreferNoSchedule taints, images, ephemeral-storage and host ports in play; and the node lifecycle
controller's condition taints (TaintNodesByCondition).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from podlife.client.base import Obj
from podlife.controllers.node_lifecycle import (
    DISK_PRESSURE_TAINT,
    MEMORY_PRESSURE_TAINT,
    NETWORK_UNAVAILABLE_TAINT,
    NOT_READY_TAINT,
    PID_PRESSURE_TAINT,
    no_schedule_taints,
    reconcile_no_schedule,
)
from podlife.scheduler import FitError, NodeInfo, PodInfo, Scheduler
from podlife.scheduler.columns import NodeColumns
from podlife.scheduler.node_ports import NodePorts
from podlife.scheduler.node_scores import MB, BalancedAllocation, ImageLocality, image_priority
from podlife.scheduler.node_resources import NodeResourcesFit, broken_linear
from podlife.scheduler.plugins import (
    FilterPlugin,
    NodeAffinity,
    NodeName,
    NodeReady,
    NodeUnschedulable,
    ScorePlugin,
    TaintToleration,
    pod_requests,
)
from podlife.scheduler.profile import Profile

# ---- helpers ------------------------------------------------------------------------------


def node(name: str, cpu: str = "32", memory: str = "256Gi", *, pods: str = "110", ephemeral: str | None = None,
         labels: dict[str, str] | None = None, taints: list[dict[str, str]] | None = None,
         images: list[tuple[list[str], int]] | None = None, extra: dict[str, str] | None = None) -> Obj:
    alloc = {"cpu": cpu, "memory": memory, "pods": pods, **(extra or {})}
    if ephemeral is not None:
        alloc["ephemeral-storage"] = ephemeral
    status: dict[str, Any] = {"allocatable": alloc, "conditions": [{"type": "Ready", "status": "True"}]}
    if images:
        status["images"] = [{"names": names, "sizeBytes": size} for names, size in images]
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"taints": taints} if taints else {}, "status": status}


def pod(name: str = "p", *requests: dict[str, str], node_name: str = "", image: str = "x", **spec: Any) -> PodInfo:
    """A pod with one container per ``requests`` entry (none: a pod without containers, as
    kube's ``st.MakePod()``, which requests nothing, not even the scoring defaults)."""
    containers = [{"name": f"c{i}", "image": image, "resources": {"requests": r}} for i, r in enumerate(requests)]
    body: dict[str, Any] = {"containers": containers, **spec}
    if node_name:
        body["nodeName"] = node_name
    return PodInfo({"metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"}, "spec": body})


def scheduler(nodes: list[Obj], bound: list[PodInfo] = (), **kwargs: Any) -> Scheduler:  # type: ignore[assignment]
    sched = Scheduler(None, **kwargs)  # type: ignore[arg-type]
    for n in nodes:
        sched.cache.set_node(n)
    for p in bound:
        sched.cache.add_pod(p)
    return sched


def both_paths(plugin: ScorePlugin, sched: Scheduler, info: PodInfo) -> list[int]:
    """The plugin's normalized scores over every node, asserting its array and per-node forms agree."""
    nodes = sched.cache.node_list
    rows = np.arange(len(nodes))
    per_node = plugin.normalize(info, np.array(plugin.score_many(info, nodes), dtype=np.int64)).tolist()
    array = plugin.score_array(info, sched.cache.columns, rows)
    if array is not None:
        assert plugin.normalize(info, array).tolist() == per_node
    return per_node


def attached(plugin: Any, sched: Scheduler) -> Any:
    plugin.attach(sched)
    return plugin


# ---- NodeResourcesFit: requests, the filter, ephemeral-storage ---------------------------------


def test_scoring_defaults_apply_to_missing_requests_not_to_zero_ones() -> None:
    spec = {"containers": [{"name": "a"}, {"name": "b", "resources": {"requests": {"cpu": "0", "memory": "0"}}}]}
    requests, nonzero = pod_requests(spec)
    assert requests == {"cpu": 0, "memory": 0}
    assert nonzero == {"cpu": 100, "memory": 200 * MB}  # a's defaults; b's explicit zeros stay 0


def test_pod_level_requests_replace_the_containers_sum() -> None:
    spec = {"resources": {"requests": {"cpu": "2"}},
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}],
            "overhead": {"cpu": "100m"}}
    requests, nonzero = pod_requests(spec)
    assert requests == {"cpu": 2100, "memory": 1 << 30}
    assert nonzero == {"cpu": 2100, "memory": 1 << 30}


def test_ephemeral_storage_is_filtered_on_the_arrays() -> None:
    sched = scheduler([node("small", ephemeral="1Gi"), node("big", ephemeral="10Gi"), node("none")])
    info = pod("p", {"ephemeral-storage": "2Gi"})
    fit = sched.profiles["default-scheduler"].plugin("NodeResourcesFit")
    assert isinstance(fit, NodeResourcesFit)
    mask = fit.filter_mask(info, sched.cache.columns, sched.cache.columns.all_rows())
    assert mask is not None and mask.tolist() == [False, True, False]
    result = sched._find_node(info)
    assert isinstance(result, NodeInfo) and result.name == "big"
    assert sched.stats.array_searches == 1 and sched.stats.per_node_searches == 0
    sched.cache.assume(info, "big")
    assert sched.cache.nodes["big"].free_ephemeral == 8 << 30
    error = sched._find_node(pod("q", {"ephemeral-storage": "9Gi"}))
    assert isinstance(error, FitError)
    assert error.message.startswith("0/3 nodes are available: 3 Insufficient ephemeral-storage.")


def test_extended_resources_are_checked_node_by_node() -> None:
    sched = scheduler([node("gpu", extra={"example.com/gpu": "2"}), node("plain")])
    result = sched._find_node(pod("p", {"example.com/gpu": "1"}))
    assert isinstance(result, NodeInfo) and result.name == "gpu"
    assert sched.stats.per_node_searches == 1


def test_unknown_strategy_is_refused() -> None:
    with pytest.raises(ValueError, match="scoring strategy"):
        NodeResourcesFit(strategy="Spread")


# ---- the strategies, with Kubernetes' test tables ----------------------------------------------

#: kube's "nothing scheduled, resources requested, differently sized nodes": 3000 cores and 5000
#: bytes asked, on nodes of 4000 / 6000 cores and 10000 bytes
DIFFERENT_NODES = [node("node1", "4000", "10000"), node("node2", "6000", "10000")]
BIG_POD = pod("p", {"cpu": "1000", "memory": "2000"}, {"cpu": "2000", "memory": "3000"})


@pytest.mark.parametrize(("strategy", "expected"), [
    ("LeastAllocated", [37, 50]),
    ("MostAllocated", [62, 50]),
])
def test_least_and_most_allocated_as_kube(strategy: str, expected: list[int]) -> None:
    sched = scheduler(DIFFERENT_NODES)
    assert both_paths(NodeResourcesFit(strategy=strategy), sched, BIG_POD) == expected


def test_requested_to_capacity_ratio_as_kube() -> None:
    shape = ((0, 10), (100, 0))
    fit = NodeResourcesFit(strategy="RequestedToCapacityRatio", shape=shape)
    # pods without containers request nothing at all (kube's st.MakePod())
    empty = [pod("e1", node_name="node1"), pod("e2", node_name="node1")]
    sched = scheduler([node("node1", "4000", "10000"), node("node2", "4000", "10000")], empty)
    assert both_paths(fit, sched, pod("p")) == [100, 100]
    sched = scheduler(DIFFERENT_NODES, empty)
    assert both_paths(fit, sched, BIG_POD) == [38, 50]  # round(37.5)
    used = [pod("u1", {"cpu": "3000", "memory": "5000"}, node_name="node1"),
            pod("u2", {"cpu": "3000", "memory": "5000"}, node_name="node2")]
    sched = scheduler(DIFFERENT_NODES, used)
    assert both_paths(fit, sched, pod("p")) == [38, 50]


def test_requested_to_capacity_ratio_on_an_extended_resource_as_kube() -> None:
    fit = NodeResourcesFit(strategy="RequestedToCapacityRatio", resources=(("intel.com/foo", 1),),
                           shape=((0, 0), (100, 1)))
    nodes = [node("node1", "4000", "10000Mi", extra={"intel.com/foo": "8"}),
             node("node2", "4000", "10000Mi", extra={"intel.com/foo": "4"})]
    sched = scheduler(nodes)
    assert both_paths(fit, sched, pod("p")) == [0, 0]  # not requested: left out, no resource counts
    assert both_paths(fit, sched, pod("p", {"intel.com/foo": "2"})) == [2, 5]
    sched = scheduler(nodes, [pod("b", {"intel.com/foo": "2"}, node_name="node2")])
    assert both_paths(fit, sched, pod("p", {"intel.com/foo": "2"})) == [2, 10]


@pytest.mark.parametrize(("points", "cases"), [
    (((10, 1), (90, 9)), [(-10, 1), (0, 1), (9, 1), (10, 1), (15, 1), (19, 1), (20, 2), (89, 8), (90, 9),
                          (99, 9), (100, 9), (110, 9)]),
    (((0, 2), (40, 10), (100, 0)), [(-10, 2), (0, 2), (20, 6), (30, 8), (40, 10), (70, 5), (100, 0), (110, 0)]),
])
def test_broken_linear_function_as_kube(points: tuple[tuple[int, int], ...], cases: list[tuple[int, int]]) -> None:
    assert [broken_linear(points, p) for p, _ in cases] == [want for _, want in cases]


def test_a_resource_a_node_lacks_is_left_out_of_its_score() -> None:
    sched = scheduler([node("no-cpu", "0", "10000"), node("both", "4000", "10000")])
    fit = NodeResourcesFit()
    # no-cpu: memory alone (50); both: (25 + 50) / 2
    assert both_paths(fit, sched, BIG_POD) == [50, 37]
    assert sched.cache.columns.zero_allocatable("cpu")


def test_weighted_resources() -> None:
    sched = scheduler(DIFFERENT_NODES)
    fit = NodeResourcesFit(resources=(("cpu", 3), ("memory", 1)))
    assert both_paths(fit, sched, BIG_POD) == [(25 * 3 + 50) // 4, 50]


# ---- BalancedAllocation -------------------------------------------------------------------------


def test_balanced_allocation_as_kube() -> None:
    sched = scheduler(DIFFERENT_NODES)
    balanced = BalancedAllocation()
    assert both_paths(balanced, sched, BIG_POD) == [87, 100]  # std (0.75 - 0.5) / 2; equal fractions


def test_balanced_allocation_uses_requests_and_skips_best_effort_pods() -> None:
    balanced = BalancedAllocation()
    assert not balanced.applies(pod("p", {}))  # kube's Skip: nothing requested
    assert balanced.applies(pod("p", {"cpu": "1"}))
    # requests, not the scoring defaults: a memory-only pod sees cpu 0 used
    sched = scheduler([node("n", "4000", "10000")])
    assert both_paths(balanced, sched, pod("p", {"memory": "5000"})) == [75]


def test_balanced_allocation_with_three_resources() -> None:
    balanced = BalancedAllocation(resources=(("cpu", 1), ("memory", 1), ("ephemeral-storage", 1)))
    sched = scheduler([node("n", "4000", "10000", ephemeral="10000")])
    info = pod("p", {"cpu": "1000", "memory": "5000", "ephemeral-storage": "10000"})
    fractions = [0.25, 0.5, 1.0]
    mean = sum(fractions) / 3
    std = (sum((f - mean) ** 2 for f in fractions) / 3) ** 0.5
    assert both_paths(balanced, sched, info) == [int((1 - std) * 100)]


# ---- TaintToleration and NodeAffinity scores ----------------------------------------------------


def prefer(key: str, value: str) -> dict[str, str]:
    return {"key": key, "value": value, "effect": "PreferNoSchedule"}


def test_taint_toleration_score_as_kube() -> None:
    nodes = [node("none"), node("one", taints=[prefer("foo", "bar")]),
             node("two", taints=[prefer("foo", "bar"), prefer("cpu-type", "arm64")])]
    sched = scheduler(nodes)
    plugin = attached(TaintToleration(), sched)
    assert plugin.weight == 3
    assert both_paths(plugin, sched, pod("p")) == [100, 50, 0]
    tolerant = pod("t", tolerations=[{"key": "foo", "operator": "Equal", "value": "bar", "effect": "PreferNoSchedule"},
                                     {"key": "cpu-type", "operator": "Exists"}])
    assert both_paths(plugin, sched, tolerant) == [100, 100, 100]
    # a NoSchedule toleration does not tolerate a PreferNoSchedule taint
    other = pod("o", tolerations=[{"key": "foo", "operator": "Exists", "effect": "NoSchedule"}])
    assert both_paths(plugin, sched, other) == [100, 50, 0]


def test_no_prefer_taints_anywhere_scores_every_node_alike() -> None:
    sched = scheduler([node("a"), node("b", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}])])
    plugin = attached(TaintToleration(), sched)
    assert both_paths(plugin, sched, pod("p")) == [100, 100]


def preferred(*terms: tuple[int, dict[str, str]]) -> dict[str, Any]:
    return {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": w, "preference": {"matchExpressions": [
            {"key": k, "operator": "In", "values": [v]} for k, v in labels.items()]}} for w, labels in terms]}}


def test_preferred_node_affinity_as_kube() -> None:
    nodes = [node("node1", labels={"foo": "bar"}), node("node2", labels={"key": "value"}),
             node("node3", labels={"foo": "bar", "key": "value", "az": "az1"})]
    sched = scheduler(nodes)
    plugin = attached(NodeAffinity(), sched)
    assert plugin.weight == 2
    affinity = preferred((2, {"foo": "bar"}), (4, {"key": "value"}), (5, {"foo": "bar", "key": "value", "az": "az1"}))
    assert both_paths(plugin, sched, pod("p", affinity=affinity)) == [18, 36, 100]
    assert both_paths(plugin, sched, pod("none")) == [0, 0, 0]  # no preferred terms: kube skips
    empty_term = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 7, "preference": {}}]}}
    assert both_paths(plugin, sched, pod("e", affinity=empty_term)) == [0, 0, 0]  # an empty term matches nothing


def test_declared_scores_follow_node_changes() -> None:
    sched = scheduler([node("a"), node("b")])
    plugin = attached(NodeAffinity(), sched)
    info = pod("p", affinity=preferred((10, {"disk": "ssd"})))
    assert both_paths(plugin, sched, info) == [0, 0]
    sched.cache.set_node(node("b", labels={"disk": "ssd"}))  # a new generation
    assert both_paths(plugin, sched, info) == [0, 100]


# ---- ImageLocality ---------------------------------------------------------------------------------


def test_image_locality_sizes_spread_and_thresholds() -> None:
    nodes = [node("big", images=[(["registry/app:1"], 600 * MB), (["registry/small:1"], 10 * MB)]),
             node("none"),
             node("both", images=[(["registry/app:1"], 600 * MB)])]
    sched = scheduler(nodes)
    plugin = attached(ImageLocality(), sched)
    info = pod("p", {}, image="registry/app:1")
    assert plugin.applies(info)
    expected = image_priority(int(600 * MB * (2 / 3)), 1)  # on two of three nodes
    assert both_paths(plugin, sched, info) == [expected, 0, expected]
    assert expected == 100 * (400 * MB - 23 * MB) // (1000 * MB - 23 * MB)
    small = pod("s", {}, image="registry/small:1")
    assert both_paths(plugin, sched, small) == [0, 0, 0]  # below the 23 MB threshold
    assert not plugin.applies(pod("q", {}, image="elsewhere/x"))  # no node holds it: skipped
    untagged = pod("u", {}, image="registry/app")  # looked up as registry/app:latest
    assert untagged.images == ("registry/app:latest",)


# ---- NodePorts ----------------------------------------------------------------------------------------


def port_pod(name: str, *ports: dict[str, Any], node_name: str = "") -> PodInfo:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "x", "ports": list(ports)}]}
    if node_name:
        spec["nodeName"] = node_name
    return PodInfo({"metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"}, "spec": spec})


@pytest.mark.parametrize(("used", "wanted", "fits"), [
    ({"hostPort": 8080, "protocol": "UDP", "hostIP": "127.0.0.1"},
     {"hostPort": 8080, "protocol": "UDP", "hostIP": "127.0.0.1"}, False),
    ({"hostPort": 8080, "protocol": "UDP", "hostIP": "127.0.0.1"},
     {"hostPort": 8080, "protocol": "TCP", "hostIP": "127.0.0.1"}, True),  # other protocol
    ({"hostPort": 8080, "hostIP": "127.0.0.1"}, {"hostPort": 8080, "hostIP": "127.0.0.2"}, True),  # other IP
    ({"hostPort": 8080, "hostIP": "127.0.0.1"}, {"hostPort": 8080}, False),  # wanted on every IP
    ({"hostPort": 8080}, {"hostPort": 8080, "hostIP": "127.0.0.1"}, False),  # used on every IP
    ({"hostPort": 8080}, {"hostPort": 8081}, True),
    ({"containerPort": 80}, {"containerPort": 80}, True),  # no hostPort: nothing to conflict
])
def test_node_ports_conflicts_as_kube(used: dict[str, Any], wanted: dict[str, Any], fits: bool) -> None:
    sched = scheduler([node("a"), node("b")])
    plugin = NodePorts()
    plugin.attach(sched)
    sched.cache.add_pod(port_pod("old", used, node_name="a"))
    info = port_pod("new", wanted)
    assert plugin.applies(info) == ("hostPort" in wanted)
    status = plugin.filter(info, sched.cache.nodes["a"])
    assert (status is None) == fits
    if status is not None:
        assert status.reasons == ("node(s) didn't have free ports for the requested pod ports",)
        assert not status.unresolvable  # making room could help
    for rows in (sched.cache.columns.all_rows(), np.array([1, 0])):
        mask = plugin.filter_mask(info, sched.cache.columns, rows)
        verdicts = [plugin.filter(info, sched.cache.node_list[r]) is None for r in np.arange(2)[rows]]
        assert mask is not None and mask.tolist() == verdicts


def test_node_ports_follow_charges_and_sidecars() -> None:
    sched = scheduler([node("a")])
    plugin = NodePorts()
    plugin.attach(sched)
    sidecar = PodInfo({"metadata": {"name": "s", "namespace": "default", "uid": "u-s"}, "spec": {
        "nodeName": "a", "containers": [{"name": "c", "image": "x"}],
        "initContainers": [{"name": "i", "image": "x", "restartPolicy": "Always", "ports": [{"hostPort": 9000}]},
                           {"name": "j", "image": "x", "ports": [{"hostPort": 9001}]}]}})
    assert sidecar.host_ports == (("0.0.0.0", "TCP", 9000),)  # an ordinary init container's ports are not held
    sched.cache.add_pod(sidecar)
    wanted = port_pod("w", {"hostPort": 9000})
    assert plugin.filter(wanted, sched.cache.nodes["a"]) is not None
    sched.cache.remove_pod(sidecar.key)
    assert plugin.filter(wanted, sched.cache.nodes["a"]) is None
    sched.cache.assume(wanted, "a")  # an assumed pod holds its ports too
    assert plugin.filter(port_pod("x", {"hostPort": 9000}), sched.cache.nodes["a"]) is not None
    assert sched.cache.forget(wanted.key, wanted.uid)
    assert plugin._used == {}


def test_a_host_port_pair_cannot_share_a_node() -> None:
    sched = scheduler([node("a"), node("b")])
    first = port_pod("first", {"hostPort": 8080})
    chosen = sched._find_node(first)
    assert isinstance(chosen, NodeInfo)
    sched.cache.assume(first, chosen.name)
    second = sched._find_node(port_pod("second", {"hostPort": 8080}))
    assert isinstance(second, NodeInfo) and second.name != chosen.name
    sched.cache.assume(port_pod("second", {"hostPort": 8080}), second.name)
    third = sched._find_node(port_pod("third", {"hostPort": 8080}))
    assert isinstance(third, FitError)
    assert "2 node(s) didn't have free ports for the requested pod ports" in third.message


# ---- the array path chooses as the per-node path --------------------------------------------------


class PerNodeFit(NodeResourcesFit):
    def filter_mask(self, pod: PodInfo, columns: NodeColumns, rows: Any) -> np.ndarray | None:
        return None

    def score_array(self, pod: PodInfo, columns: NodeColumns, rows: Any) -> np.ndarray | None:
        return None


class PerNodeTaints(TaintToleration):
    def score_array(self, pod: PodInfo, columns: NodeColumns, rows: Any) -> np.ndarray | None:
        return None


class PerNodeAffinity(NodeAffinity):
    def score_array(self, pod: PodInfo, columns: NodeColumns, rows: Any) -> np.ndarray | None:
        return None


class PerNodePorts(NodePorts):
    def filter_mask(self, pod: PodInfo, columns: NodeColumns, rows: Any) -> np.ndarray | None:
        return None


class PerNodeBalanced(BalancedAllocation):
    def score_array(self, pod: PodInfo, columns: NodeColumns, rows: Any) -> np.ndarray | None:
        return None


class PerNodeImages(ImageLocality):
    def score_array(self, pod: PodInfo, columns: NodeColumns, rows: Any) -> np.ndarray | None:
        return None


FIT_CONFIGS: list[dict[str, Any]] = [
    {},
    {"strategy": "MostAllocated"},
    {"strategy": "RequestedToCapacityRatio", "shape": ((0, 0), (50, 10), (100, 2))},
    {"resources": (("cpu", 2), ("memory", 1), ("ephemeral-storage", 3))},
    {"strategy": "MostAllocated", "resources": (("cpu", 1), ("example.com/gpu", 5))},
]
BALANCED_RESOURCES = [(("cpu", 1), ("memory", 1)), (("cpu", 1), ("memory", 1), ("ephemeral-storage", 1))]


def twin_profile(per_node: bool, fit_kwargs: dict[str, Any], balanced: tuple[tuple[str, int], ...]) -> Profile:
    taints = PerNodeTaints() if per_node else TaintToleration()
    affinity = PerNodeAffinity() if per_node else NodeAffinity()
    fit = PerNodeFit(**fit_kwargs) if per_node else NodeResourcesFit(**fit_kwargs)
    ports = PerNodePorts() if per_node else NodePorts()
    filters: list[FilterPlugin] = [NodeUnschedulable(), NodeName(), NodeReady(), taints, affinity, ports, fit]
    scores: list[ScorePlugin] = [taints, affinity, fit,
                                 PerNodeBalanced(resources=balanced) if per_node else BalancedAllocation(resources=balanced),
                                 PerNodeImages() if per_node else ImageLocality()]
    return Profile("default-scheduler", filters, scores, [])


CPUS = ["32", "4", "2", "1500m", "0", "100m"]
MEMORIES = ["256Gi", "8Gi", "1Gi", "0", str(300 << 20)]
EPHEMERAL = [None, "100Gi", "10Gi", "0"]
IMAGES = [(["registry/app:1"], 300 * MB), (["registry/db:2", "registry/db@sha256:ab"], 900 * MB),
          (["registry/tiny:1"], 5 * MB)]
LABELS = [{}, {"disk": "ssd"}, {"zone": "a"}, {"disk": "ssd", "zone": "b"}]
TAINTS = [[], [prefer("noisy", "yes")], [prefer("noisy", "yes"), prefer("old", "1")],
          [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]]
REQUESTS: list[dict[str, str]] = [
    {"cpu": "100m", "memory": "128Mi"}, {"cpu": "1", "memory": "1Gi", "ephemeral-storage": "1Gi"},
    {"cpu": "250m"}, {"memory": "512Mi"}, {}, {"cpu": "0", "memory": "0"}, {"ephemeral-storage": "5Gi"},
    {"cpu": "100m", "example.com/gpu": "1"},
    {"cpu": "-1m", "memory": "-1"},  # a signed quantity: the arrays must decline, not differ
]


def random_node(rng: random.Random, name: str) -> Obj:
    extra = {"example.com/gpu": rng.choice(["1", "4"])} if rng.random() < 0.2 else None
    return node(name, rng.choice(CPUS), rng.choice(MEMORIES), pods=rng.choice(["110", "3"]),
                ephemeral=rng.choice(EPHEMERAL), labels=rng.choice(LABELS), taints=rng.choice(TAINTS),
                images=rng.sample(IMAGES, rng.randrange(len(IMAGES) + 1)), extra=extra)


def random_pod(rng: random.Random, name: str, node_name: str = "", signed: bool = True) -> PodInfo:
    """A random pod; ``signed``: its requests may be negative (never charged: a node charged
    with one is inexact for good, and the arrays would decline from then on)."""
    spec: dict[str, Any] = {}
    if rng.random() < 0.3:
        spec["affinity"] = preferred(*[(rng.randrange(1, 100), rng.choice(LABELS[1:]))
                                       for _ in range(rng.randrange(1, 3))])
    if rng.random() < 0.2:
        spec["tolerations"] = [{"key": "noisy", "operator": "Exists", "effect": rng.choice(["", "PreferNoSchedule"])}]
    containers: list[dict[str, Any]] = [{"name": "c", "image": rng.choice(["registry/app:1", "registry/db:2", "registry/other:1"]),
                   "resources": {"requests": rng.choice(REQUESTS if signed else REQUESTS[:-1])}}]
    if rng.random() < 0.2:
        containers[0]["ports"] = [{"hostPort": rng.choice([80, 443]), "hostIP": rng.choice(["", "127.0.0.1"]),
                                   "protocol": rng.choice(["TCP", "UDP"])}]
    spec["containers"] = containers
    if node_name:
        spec["nodeName"] = node_name
    return PodInfo({"metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"}, "spec": spec})


def outcome(result: NodeInfo | FitError) -> str:
    return result.message if isinstance(result, FitError) else result.name


@pytest.mark.parametrize("seed", range(30))
def test_array_path_chooses_as_the_per_node_path(seed: int) -> None:
    rng = random.Random(seed)
    fit_kwargs = FIT_CONFIGS[seed % len(FIT_CONFIGS)]
    balanced = BALANCED_RESOURCES[seed % 2]
    fast = Scheduler(None, profiles=[twin_profile(False, fit_kwargs, balanced)],  # type: ignore[arg-type]
                     rng=random.Random(seed), percentage_of_nodes_to_score=rng.choice([0, 30, 100]))
    slow = Scheduler(None, profiles=[twin_profile(True, fit_kwargs, balanced)],  # type: ignore[arg-type]
                     rng=random.Random(seed), percentage_of_nodes_to_score=fast.percentage_of_nodes_to_score)
    names = [f"n-{i}" for i in range(rng.choice([3, 40, 150]))]
    for name in names:
        obj = random_node(rng, name)
        fast.cache.set_node(obj)
        slow.cache.set_node(obj)
    for i in range(len(names)):
        bound = random_pod(rng, f"b-{i}", rng.choice(names), signed=False)
        fast.cache.add_pod(bound)
        slow.cache.add_pod(bound)
    placed = 0
    for step in range(120):
        if rng.random() < 0.08:  # a node changes its labels, taints or images: a new generation
            obj = random_node(rng, rng.choice(names))
            fast.cache.set_node(obj)
            slow.cache.set_node(obj)
        info = random_pod(rng, f"p-{step}")
        got, want = fast._find_node(info), slow._find_node(info)
        assert outcome(got) == outcome(want), f"seed {seed} step {step}"
        assert fast._next_start == slow._next_start
        if isinstance(got, NodeInfo) and min(info.cpu, info.memory) >= 0:
            placed += 1
            fast.cache.assume(info, got.name)
            slow.cache.assume(info, got.name)
    assert placed
    assert fast.stats.array_searches > 0


def test_every_score_has_its_array_form_for_plain_pods() -> None:
    """The default profile's scores never fall back to node-by-node work for ordinary pods."""
    sched = scheduler([node(f"n-{i}", labels=LABELS[i % 4], taints=TAINTS[i % 3]) for i in range(50)])
    rows = np.arange(50)
    info = pod("p", {"cpu": "100m", "memory": "128Mi"}, affinity=preferred((5, {"disk": "ssd"})))
    names = set()
    for plugin in sched.profiles["default-scheduler"].score_plugins:
        if plugin.name in ("NodeResourcesFit", "NodeResourcesBalancedAllocation", "TaintToleration",
                           "NodeAffinity", "ImageLocality"):
            names.add(plugin.name)
            assert plugin.score_array(info, sched.cache.columns, rows) is not None, plugin.name
    assert len(names) == 5


# ---- node condition taints (the node lifecycle controller's TaintNodesByCondition) -----------------


def conditions(**status: str) -> Obj:
    return {"status": {"conditions": [{"type": t, "status": s} for t, s in status.items()]}}


def test_condition_taints() -> None:
    assert no_schedule_taints(conditions(Ready="True", MemoryPressure="False")) == set()
    assert no_schedule_taints(conditions(Ready="True", MemoryPressure="True")) == {MEMORY_PRESSURE_TAINT}
    assert no_schedule_taints(conditions(Ready="False", DiskPressure="True", PIDPressure="True",
                                         NetworkUnavailable="True")) == {
        NOT_READY_TAINT, DISK_PRESSURE_TAINT, PID_PRESSURE_TAINT, NETWORK_UNAVAILABLE_TAINT}
    # MemoryPressure Unknown (an unheard node) is no pressure taint
    assert no_schedule_taints(conditions(Ready="True", MemoryPressure="Unknown")) == set()
    # the kubelet's own pressure taint (no timeAdded) is taken as present: no write
    kubelet_taint = {"key": MEMORY_PRESSURE_TAINT, "effect": "NoSchedule"}
    assert reconcile_no_schedule([kubelet_taint], {MEMORY_PRESSURE_TAINT}, "now") is None
    assert reconcile_no_schedule([kubelet_taint], set(), "now") == []


def test_memory_pressure_taint_keeps_new_pods_away() -> None:
    sched = scheduler([node("pressed", taints=[{"key": MEMORY_PRESSURE_TAINT, "effect": "NoSchedule"}]),
                       node("fine")])
    for i in range(10):
        result = sched._find_node(pod(f"p-{i}", {"cpu": "100m"}))
        assert isinstance(result, NodeInfo) and result.name == "fine"
    tolerant = pod("ds", tolerations=[{"key": MEMORY_PRESSURE_TAINT, "operator": "Exists", "effect": "NoSchedule"}])
    assert sched._static_for(tolerant, sched.profiles["default-scheduler"]).everywhere
