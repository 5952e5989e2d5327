"""PodTopologySpread: Kubernetes' filter and score, default constraints, array and per-node forms agreeing.

Unit tests drive a real :class:`Scheduler` (no API server) whose profile lists the
plugin explicitly (helpers from :mod:`tests.test_scheduler_affinity`); the
end-to-end test spreads pods 3/3 across two zones of simulated nodes with kubectl.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from podlife.scheduler import FitError, NodeInfo
from podlife.scheduler.topology_spread import ERR_CONSTRAINTS, ERR_MISSING_LABEL, PodTopologySpread

from .cluster_harness import PodlifeProcess, require_tool, running_podlife, wait_for
from .test_scheduler_affinity import HOST, ZONE, node_obj, outcome, place, pod_info, scheduler, verdicts_agree, \
    zone_of


def spread(key: str = ZONE, skew: int = 1, when: str = "DoNotSchedule", labels: dict[str, str] | None = None,
           **extra: Any) -> dict[str, Any]:
    return {"maxSkew": skew, "topologyKey": key, "whenUnsatisfiable": when,
            "labelSelector": {"matchLabels": labels or {"app": "web"}}, **extra}


def zones(sched: Any, names: list[str]) -> Counter[str]:
    return Counter(zone_of(sched, n) for n in names)


# ---- filter ------------------------------------------------------------------------------------------


def test_required_spread_splits_3_3_across_two_zones() -> None:
    plugin = PodTopologySpread(defaulting_type="List")
    sched = scheduler(plugin)
    for i, zone in enumerate("aaab"):  # zone a has three nodes, b one: spreading is by zone, not node
        sched.cache.set_node(node_obj(f"n{i}", zone))
    names = [outcome(place(sched, pod_info(f"web-{i}", {"app": "web"}, spread=[spread()]))) for i in range(6)]
    assert zones(sched, names) == {"a": 3, "b": 3}


def test_skew_and_missing_label_reasons() -> None:
    plugin = PodTopologySpread(defaulting_type="List")
    sched = scheduler(plugin)
    sched.cache.set_node(node_obj("n0", "a"))
    sched.cache.set_node(node_obj("n1", "b"))
    sched.cache.set_node(node_obj("bare"))
    for i in range(2):
        sched.cache.add_pod(pod_info(f"old-{i}", {"app": "web"}, node="n0"))
    sched.cache.add_pod(pod_info("b-0", {"app": "web"}, node="n1"))
    pod = pod_info("web", {"app": "web"}, spread=[spread()])
    verdicts_agree(plugin, sched, pod)
    skew = plugin.filter(pod, sched.cache.nodes["n0"])
    assert skew is not None and skew.reasons == (ERR_CONSTRAINTS,) and not skew.unresolvable
    missing = plugin.filter(pod, sched.cache.nodes["bare"])
    assert missing is not None and missing.reasons == (ERR_MISSING_LABEL,) and missing.unresolvable
    assert plugin.filter(pod, sched.cache.nodes["n1"]) is None
    # with n1 full, nothing fits: 1 skew (resolvable), 1 missing label, 1 too many pods
    sched.cache.set_node({**node_obj("n1", "b"), "status": {"allocatable": {"cpu": "32", "memory": "64Gi", "pods": "1"},
                                                             "conditions": [{"type": "Ready", "status": "True"}]}})
    result = place(sched, pod_info("web-2", {"app": "web"}, spread=[spread()]))
    assert isinstance(result, FitError)
    assert result.message == f"0/3 nodes are available: 1 Too many pods, 1 {ERR_CONSTRAINTS}, 1 {ERR_MISSING_LABEL}."
    assert (result.resolvable, result.unresolvable) == (2, 1)


def test_pods_being_deleted_and_other_namespaces_do_not_count() -> None:
    sched = scheduler(PodTopologySpread(defaulting_type="List"))
    sched.cache.set_node(node_obj("n0", "a"))
    sched.cache.set_node(node_obj("n1", "b"))
    for i in range(3):
        sched.cache.add_pod(pod_info(f"other-{i}", {"app": "web"}, ns="other", node="n0"))
    gone = pod_info("gone", {"app": "web"}, node="n0")
    gone.deleting = True
    sched.cache.add_pod(gone)
    sched.cache.add_pod(pod_info("b-0", {"app": "web"}, node="n1"))
    assert outcome(place(sched, pod_info("web", {"app": "web"}, spread=[spread()]))) == "n0"


def test_min_domains_counts_missing_domains_as_empty() -> None:
    sched = scheduler(PodTopologySpread(defaulting_type="List"))
    for i, zone in enumerate("ab"):
        sched.cache.set_node(node_obj(f"n{i}", zone))
    constraint = spread(skew=1, minDomains=3)
    placed = [place(sched, pod_info(f"w-{i}", {"app": "web"}, spread=[constraint])) for i in range(3)]
    # global minimum stays 0 with fewer than 3 domains: at most maxSkew (1) pod per zone
    assert sorted(outcome(p) for p in placed[:2]) == ["n0", "n1"]
    assert isinstance(placed[2], FitError)
    assert f"2 {ERR_CONSTRAINTS}" in placed[2].message


def test_node_affinity_policy_and_node_taints_policy() -> None:
    taint = {"key": "dedicated", "value": "x", "effect": "NoSchedule"}
    sched = scheduler(PodTopologySpread(defaulting_type="List"))
    sched.cache.set_node(node_obj("a0", "a", pool="yes"))
    sched.cache.set_node(node_obj("b0", "b", pool="yes"))
    sched.cache.set_node(node_obj("c0", "c", pool="no"))  # excluded by the pod's nodeSelector
    tainted = node_obj("d0", "d", pool="yes")
    tainted["spec"]["taints"] = [taint]
    sched.cache.set_node(tainted)
    # Honor (default): zone c, outside the nodeSelector, does not pin the minimum to 0;
    # Ignore (default taints policy): tainted zone d, empty, does
    honor = [spread(skew=1)]
    for i in range(2):
        sched.cache.add_pod(pod_info(f"a-{i}", {"app": "web"}, node="a0"))
    sched.cache.add_pod(pod_info("b-0", {"app": "web"}, node="b0"))
    probe = pod_info("p", {"app": "web"}, spread=honor, nodeSelector={"pool": "yes"})
    result = place(sched, probe)
    assert isinstance(result, FitError)  # min is d's 0: b0 has skew 2
    probe2 = pod_info("p2", {"app": "web"}, nodeSelector={"pool": "yes"},
                      spread=[spread(skew=1, nodeTaintsPolicy="Honor")])
    assert outcome(place(sched, probe2)) == "b0"  # d no longer counts: min is b's 1
    ignore = [spread(skew=1, nodeAffinityPolicy="Ignore", nodeTaintsPolicy="Honor")]
    probe3 = pod_info("p3", {"app": "web"}, spread=ignore, nodeSelector={"pool": "yes"})
    assert isinstance(place(sched, probe3), FitError)  # zone c (0 pods) counts again


def test_match_label_keys_spread_each_revision_on_its_own() -> None:
    sched = scheduler(PodTopologySpread(defaulting_type="List"))
    for i, zone in enumerate("ab"):
        sched.cache.set_node(node_obj(f"n{i}", zone))
    for i in range(3):  # revision 1 crowds zone a
        sched.cache.add_pod(pod_info(f"r1-{i}", {"app": "web", "rev": "1"}, node="n0"))
    constraint = spread(skew=1, matchLabelKeys=["rev"])
    names = [outcome(place(sched, pod_info(f"r2-{i}", {"app": "web", "rev": "2"}, spread=[constraint])))
             for i in range(4)]
    assert zones(sched, names) == {"a": 2, "b": 2}


# ---- score ---------------------------------------------------------------------------------------------


def test_preferred_spread_scores_as_kubernetes() -> None:
    plugin = PodTopologySpread(defaulting_type="List")
    sched = scheduler(plugin)
    for i, zone in enumerate("aabc"):
        sched.cache.set_node(node_obj(f"n{i}", zone))
    sched.cache.set_node(node_obj("bare"))
    for node, count in (("n0", 2), ("n1", 1), ("n2", 1)):
        for i in range(count):
            sched.cache.add_pod(pod_info(f"{node}-{i}", {"app": "web"}, node=node))
    pod = pod_info("web", {"app": "web"}, spread=[spread(when="ScheduleAnyway", skew=2),
                                                   spread(key=HOST, when="ScheduleAnyway", skew=1)])
    assert plugin.applies(pod)
    rows = np.arange(5)
    plugin.pre_score(pod, rows)
    raw = plugin.score_array(pod, sched.cache.columns, rows)
    assert raw is not None
    # zone: domains among the scored nodes a, b, c (bare is ignored): weight log(3 + 2); host: log(4 + 2)
    zone_w, host_w = math.log(5), math.log(6)
    expected = [round(3 * zone_w + 1 + 2 * host_w), round(3 * zone_w + 1 + 1 * host_w),
                round(1 * zone_w + 1 + 1 * host_w), round(0 * zone_w + 1 + 0 * host_w), 0]
    assert list(raw) == expected
    assert [plugin.score(pod, n) for n in sched.cache.node_list] == expected
    normalized = plugin.normalize(pod, raw)
    low, high = min(expected[:4]), max(expected[:4])
    assert list(normalized) == [100 * (high + low - s) // high for s in expected[:4]] + [0]
    assert outcome(place(sched, pod)) == "n3"


def test_system_default_spreading_for_pods_of_a_replicaset() -> None:
    plugin = PodTopologySpread()  # defaultingType System
    sched = scheduler(plugin)
    for i in range(3):
        sched.cache.set_node(node_obj(f"n{i}"))  # no zone labels: System defaults still spread by hostname
    plugin.owners.set("ReplicaSet", {"metadata": {"name": "web-rs", "namespace": "default"},
                                     "spec": {"selector": {"matchLabels": {"app": "web"}}}})
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-rs", "controller": True, "uid": "rs"}
    loose = pod_info("loose", {"app": "web"})
    assert not plugin.applies(loose)
    names = [outcome(place(sched, pod_info(f"web-{i}", {"app": "web"}, owner=owner))) for i in range(6)]
    assert Counter(names) == {"n0": 2, "n1": 2, "n2": 2}
    # List defaulting with configured constraints (and none configured: nothing applies)
    listed = PodTopologySpread(default_constraints=[spread(key=HOST, when="DoNotSchedule", labels={})],
                               defaulting_type="List")
    listed.owners.set("Service", {"metadata": {"name": "svc", "namespace": "default"},
                                  "spec": {"selector": {"app": "api"}}})
    sched2 = scheduler(listed)
    for i in range(2):
        sched2.cache.set_node(node_obj(f"m{i}"))
    api = [place(sched2, pod_info(f"api-{i}", {"app": "api"})) for i in range(3)]
    assert sorted(outcome(p) for p in api[:2]) == ["m0", "m1"]
    assert isinstance(place(sched2, pod_info("other", {"app": "other"})), NodeInfo)
    assert not PodTopologySpread(defaulting_type="List").applies(pod_info("api-x", {"app": "api"}))


# ---- agreement -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_array_and_per_node_paths_decide_the_same(seed: int) -> None:
    rng = random.Random(seed)
    fast_plugin, slow_plugin = PodTopologySpread(), PodTopologySpread()
    fast, slow = scheduler(fast_plugin, seed=seed), scheduler(slow_plugin, per_node=True, seed=seed)
    for i in range(10):
        labels = {"pool": "yes"} if rng.random() < 0.7 else {}
        obj = node_obj(f"n{i}", rng.choice(["a", "b", "c", None]), **labels)
        if rng.random() < 0.2:
            obj["spec"]["taints"] = [{"key": "t", "value": "", "effect": "NoSchedule"}]
        fast.cache.set_node(obj)
        slow.cache.set_node(obj)
    for plugin in (fast_plugin, slow_plugin):
        plugin.owners.set("Service", {"metadata": {"name": "s", "namespace": "default"}, "spec": {"selector": {"app": "a"}}})
    for i in range(60):
        app = rng.choice("abc")
        constraints = [spread(key=rng.choice([ZONE, HOST]), skew=rng.randint(1, 3),
                              when=rng.choice(["DoNotSchedule", "ScheduleAnyway"]), labels={"app": app},
                              nodeTaintsPolicy=rng.choice(["Honor", "Ignore"]),
                              nodeAffinityPolicy=rng.choice(["Honor", "Ignore"]))
                       for _ in range(rng.randint(0, 2))]
        extra = {"nodeSelector": {"pool": "yes"}} if rng.random() < 0.3 else {}
        a, b = (pod_info(f"p{i}", {"app": app}, spread=constraints, **extra) for _ in range(2))
        if fast_plugin.applies(a):
            verdicts_agree(fast_plugin, fast, a)
        assert outcome(place(fast, a)) == outcome(place(slow, b))
        if rng.random() < 0.2 and fast.cache.pods:
            key = rng.choice(sorted(fast.cache.pods))
            fast.cache.remove_pod(key)
            slow.cache.remove_pod(key)
    assert fast.stats.array_searches and slow.stats.per_node_searches and not slow.stats.array_searches


# ---- end to end ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    with running_podlife(tmp_path_factory.mktemp("spread") / "data", "--nodes", "0", "--sim-nodes", "3",
                         kubectl=require_tool("kubectl")) as proc:
        yield proc


@pytest.mark.e2e
def test_e2e_required_spread_across_two_zones_with_kubectl(cluster: PodlifeProcess) -> None:
    nodes = sorted(n["metadata"]["name"] for n in cluster.kubectl_json("get", "nodes")["items"])
    assert len(nodes) == 3
    # two nodes in zone a, one in zone b: spreading by zone puts three pods in each zone
    for name, zone in zip(nodes, ["a", "a", "b"]):
        cluster.kubectl("label", "node", name, f"{ZONE}={zone}", "--overwrite")
    zone_of_node = dict(zip(nodes, ["a", "a", "b"]))
    wait_for(lambda: all(n["metadata"]["labels"].get(ZONE) for n in cluster.kubectl_json("get", "nodes")["items"]),
             30, what="zone labels")
    constraint = spread(labels={"app": "e2e-spread"})
    for i in range(6):
        manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"spread-{i}", "labels": {"app": "e2e-spread"}},
                    "spec": {"terminationGracePeriodSeconds": 1, "topologySpreadConstraints": [constraint],
                             "containers": [{"name": "app", "image": "nginx:1.27"}]}}
        cluster.kubectl("create", "-f", "-", input=json.dumps(manifest))
        # one at a time, so each decision sees the previous one's binding
        wait_for(lambda i=i: cluster.kubectl_json("get", "pod", f"spread-{i}")["spec"].get("nodeName"), 60,
                 what=f"spread-{i} bound")
    placed = [cluster.kubectl_json("get", "pod", f"spread-{i}")["spec"]["nodeName"] for i in range(6)]
    assert Counter(zone_of_node[n] for n in placed) == {"a": 3, "b": 3}
    # kept to zone a, which would be the only domain, with minDomains 2: the minimum counts as 0, so
    # a fourth pod there is too much skew and stays Pending, with Kubernetes' reason
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "spread-x", "labels": {"app": "e2e-spread"}},
                "spec": {"terminationGracePeriodSeconds": 1,
                         "topologySpreadConstraints": [{**constraint, "minDomains": 2}],
                         "nodeSelector": {ZONE: "a"}, "containers": [{"name": "app", "image": "nginx:1.27"}]}}
    cluster.kubectl("create", "-f", "-", input=json.dumps(manifest))

    def described() -> str:
        out = cluster.kubectl("describe", "pod", "spread-x").stdout
        return out if "FailedScheduling" in out else ""
    assert ERR_CONSTRAINTS in wait_for(described, 60, what="FailedScheduling event")
    cluster.kubectl("delete", "pod", "spread-x", *[f"spread-{i}" for i in range(6)], "--wait=false")


def test_bound_pod_turning_terminating_or_relabelled_stops_counting() -> None:
    """The scheduler's pod informer updates the cache when a bound pod's labels or deletion change."""
    sched = scheduler(PodTopologySpread(defaulting_type="List"))
    sched.cache.set_node(node_obj("n0", "a"))
    sched.cache.set_node(node_obj("n1", "b"))
    old = pod_info("old", {"app": "web"}, node="n0").obj
    sched._on_pod_add(old)
    relabelled = {**old, "metadata": {**old["metadata"], "labels": {"app": "other"}}}
    sched._on_pod_update(old, relabelled)
    sched.cache.add_pod(pod_info("b-0", {"app": "web"}, node="n1"))
    assert outcome(place(sched, pod_info("p0", {"app": "web"}, spread=[spread()]))) == "n0"
    sched.cache.remove_pod("default/p0")
    back = {**relabelled, "metadata": {**relabelled["metadata"], "labels": {"app": "web"}}}
    sched._on_pod_update(relabelled, back)
    sched.cache.add_pod(pod_info("b-1", {"app": "web"}, node="n1"))
    plugin = sched.profiles["default-scheduler"].filters[-1]
    probe = pod_info("probe", {"app": "web"}, spread=[spread(skew=2)])
    probe.cycle.clear()
    plugin.pre_filter(probe)
    assert plugin.filter(probe, sched.cache.nodes["n1"]) is None  # a=1, b=2: skew 2 on b is allowed
    terminating = {**back, "metadata": {**back["metadata"], "deletionTimestamp": "2026-01-01T00:00:00Z"}}
    sched._on_pod_update(back, terminating)
    probe.cycle.clear()
    plugin.pre_filter(probe)
    assert plugin.filter(probe, sched.cache.nodes["n1"]) is not None  # a=0 now: skew 3 on b
