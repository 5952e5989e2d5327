"""Node lifecycle and taint-based eviction (issue 14): the pure decisions, then a real cluster of simulated nodes.

Unit tests: node health (:func:`observe`, the Unknown conditions), NoSchedule and NoExecute
taint steps, zone states and eviction rates (:func:`disruption_step`, the token bucket and
the zone queue), and the taint manager's :func:`eviction_time`. End to end: a simulated
node whose heartbeats stop goes NotReady with the unreachable taints, its pods not Ready;
a pod tolerating the taint for 1 s is deleted, one tolerating it forever kept; the node's
heartbeats back, it is Ready and untainted again, and the deletion scheduled for a pod
with the default 300 s toleration is cancelled.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator

import pytest

from podlife.controllers.node_lifecycle import (
    FULL, INITIAL, NORMAL, NOT_READY_TAINT, NOTHING, PARTIAL, QUEUE, REMOVE, SWAP, UNREACHABLE_TAINT,
    UNSCHEDULABLE_TAINT, NodeHealth, TokenBucket, ZoneRules, ZoneTainter, compute_zone_state, disruption_step,
    grace_period, lease_renew_interval, no_execute_action, no_schedule_taints, not_ready_patch, observe,
    reconcile_no_schedule, swap_no_execute, unknown_conditions, zone_key, zone_rate,
)
from podlife.controllers.taint_eviction import eviction_time, tolerates

from .cluster_harness import PodlifeProcess, require_tool, wait_for

NOW = "2026-01-01T00:00:10Z"


def node(ready: str | None = "True", heartbeat: str = "2026-01-01T00:00:00Z", taints: list | None = None,
         labels: dict | None = None, unschedulable: bool = False) -> dict:
    conditions = [{"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
                   "lastHeartbeatTime": heartbeat, "lastTransitionTime": "2026-01-01T00:00:00Z"}]
    if ready is not None:
        conditions.append({"type": "Ready", "status": ready, "reason": "KubeletReady", "message": "ok",
                           "lastHeartbeatTime": heartbeat, "lastTransitionTime": "2026-01-01T00:00:00Z"})
    spec: dict = {"taints": taints or []}
    if unschedulable:
        spec["unschedulable"] = True
    return {"metadata": {"name": "n", "creationTimestamp": "2026-01-01T00:00:00Z", "labels": labels or {}},
            "spec": spec, "status": {"conditions": conditions}}


def lease(renew: str) -> dict:
    return {"spec": {"renewTime": renew}}


# --------------------------------------------------------------------------- health


def test_a_node_is_heard_when_its_lease_or_heartbeat_changes() -> None:
    first = observe(None, node(), lease("t1"), now=100.0)
    assert first == NodeHealth(100.0, "2026-01-01T00:00:00Z", "t1")
    same = observe(first, node(), lease("t1"), now=150.0)
    assert same.probe == 100.0  # nothing changed: still last heard at 100
    renewed = observe(same, node(), lease("t2"), now=160.0)
    assert renewed.probe == 160.0
    beat = observe(renewed, node(heartbeat="2026-01-01T00:01:00Z"), lease("t2"), now=170.0)
    assert beat.probe == 170.0


def test_a_node_that_never_posted_ready_counts_from_its_creation() -> None:
    created = 1767225600.0  # 2026-01-01T00:00:00Z
    health = observe(None, node(ready=None), None, now=1000.0, wall_now=created + 30)
    assert health.probe == pytest.approx(970.0)
    assert grace_period(node(ready=None), 40, 60) == 60 and grace_period(node(), 40, 60) == 40


def test_unknown_conditions_keep_heartbeats_and_add_the_missing_ones() -> None:
    conditions = unknown_conditions(node(), NOW)
    assert conditions is not None
    by_type = {c["type"]: c for c in conditions}
    assert set(by_type) == {"Ready", "MemoryPressure", "DiskPressure", "PIDPressure"}
    ready = by_type["Ready"]
    assert (ready["status"], ready["reason"], ready["message"]) == ("Unknown", "NodeStatusUnknown",
                                                                   "Kubelet stopped posting node status.")
    assert ready["lastHeartbeatTime"] == "2026-01-01T00:00:00Z" and ready["lastTransitionTime"] == NOW
    assert by_type["DiskPressure"]["reason"] == "NodeStatusNeverUpdated"
    assert by_type["DiskPressure"]["message"] == "Kubelet never posted node status."
    marked = node()
    marked["status"]["conditions"] = conditions
    assert unknown_conditions(marked, NOW) is None  # already Unknown: nothing to write


def test_lease_renewal_keeps_ahead_of_a_short_grace_period() -> None:
    assert lease_renew_interval(50.0) == 10.0
    assert lease_renew_interval(3.0) == 0.75


# --------------------------------------------------------------------------- taints


def test_no_schedule_taints_follow_ready_and_unschedulable() -> None:
    assert no_schedule_taints(node()) == set()
    assert no_schedule_taints(node("False")) == {NOT_READY_TAINT}
    assert no_schedule_taints(node("Unknown", unschedulable=True)) == {UNREACHABLE_TAINT, UNSCHEDULABLE_TAINT}
    other = {"key": "example.com/x", "effect": "NoSchedule"}
    swapped = reconcile_no_schedule([other, {"key": NOT_READY_TAINT, "effect": "NoSchedule"}], {UNREACHABLE_TAINT}, NOW)
    assert swapped == [other, {"key": UNREACHABLE_TAINT, "effect": "NoSchedule", "timeAdded": NOW}]
    assert reconcile_no_schedule(swapped, {UNREACHABLE_TAINT}, NOW) is None
    assert reconcile_no_schedule(swapped, set(), NOW) == [other]


def test_no_execute_taints_are_swapped_queued_or_removed() -> None:
    unreachable = {"key": UNREACHABLE_TAINT, "effect": "NoExecute", "timeAdded": "t0"}
    not_ready = {"key": NOT_READY_TAINT, "effect": "NoExecute", "timeAdded": "t0"}
    assert no_execute_action(node("Unknown"), "Unknown") == QUEUE
    assert no_execute_action(node("Unknown", taints=[unreachable]), "Unknown") == NOTHING
    assert no_execute_action(node("False", taints=[unreachable]), "False") == SWAP
    assert no_execute_action(node("True", taints=[not_ready]), "True") == REMOVE
    assert no_execute_action(node(), "True") == NOTHING
    assert swap_no_execute([unreachable], NOT_READY_TAINT, NOW) == [{"key": NOT_READY_TAINT, "effect": "NoExecute",
                                                                      "timeAdded": NOW}]
    assert swap_no_execute([unreachable], UNREACHABLE_TAINT, NOW) is None
    assert swap_no_execute([unreachable, {"key": "k", "effect": "NoExecute"}], None, NOW) == [{"key": "k", "effect": "NoExecute"}]


def test_pods_are_marked_not_ready_keeping_reason_and_message() -> None:
    pod = {"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "r", "lastTransitionTime": "t0"}]}}
    assert not_ready_patch(pod, NOW) == {"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "r",
                                                                    "lastTransitionTime": NOW}]}}
    assert not_ready_patch({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}, NOW) is None


# --------------------------------------------------------------------------- zones


def test_zone_keys_and_states() -> None:
    assert zone_key(node()) == ""
    assert zone_key(node(labels={"topology.kubernetes.io/zone": "a", "topology.kubernetes.io/region": "r"})) == "r:\x00:a"
    assert compute_zone_state(["True", "True", "False"]) == (1, NORMAL)
    assert compute_zone_state(["True", "False", "Unknown", None]) == (3, PARTIAL)  # 3 of 4 >= 0.55
    assert compute_zone_state(["True"] * 3 + ["False"] * 3, 0.55) == (3, NORMAL)  # 0.5 < 0.55
    assert compute_zone_state(["False", "Unknown"]) == (2, FULL)


def test_zone_rates() -> None:
    rules = ZoneRules(eviction_rate=0.1, secondary_eviction_rate=0.01, large_cluster_threshold=50)
    assert zone_rate(NORMAL, 10, rules) == 0.1
    assert zone_rate(PARTIAL, 10, rules) == 0.0  # small zone: stop
    assert zone_rate(PARTIAL, 51, rules) == 0.01
    assert zone_rate(FULL, 10, rules) == 0.1  # one zone down: its nodes are really gone


def test_disruption_step() -> None:
    rules = ZoneRules()
    healthy = {"a": ["True"] * 4, "b": ["True"] * 4}
    step = disruption_step({}, healthy, rules)
    assert step.states == {"a": NORMAL, "b": NORMAL} and step.rates == {"a": 0.1, "b": 0.1}
    assert not step.mark_all_reachable and not step.reset_probes
    # one zone fully down, the other fine: normal rate in the dead zone
    step = disruption_step(step.states, {"a": ["Unknown"] * 4, "b": ["True"] * 4}, rules)
    assert step.states == {"a": FULL, "b": NORMAL} and step.rates == {"a": 0.1}
    # every zone down: the control plane is the likely culprit -- no tainting at all
    step = disruption_step(step.states, {"a": ["Unknown"] * 4, "b": ["Unknown"] * 4}, rules)
    assert step.mark_all_reachable and step.rates == {"a": 0.0, "b": 0.0} and step.states == {"a": FULL, "b": FULL}
    assert not disruption_step(step.states, {"a": ["Unknown"] * 4, "b": ["Unknown"] * 4}, rules).mark_all_reachable
    # back: every node's grace starts again, rates as the new states say
    step = disruption_step(step.states, {"a": ["True"] * 4, "b": ["Unknown", "True", "True", "True"]}, rules)
    assert step.reset_probes and step.states == {"a": NORMAL, "b": NORMAL} and step.rates == {"a": 0.1, "b": 0.1}
    # a partially disrupted small zone stops tainting
    step = disruption_step(step.states, {"a": ["True"] * 4, "b": ["Unknown", "Unknown", "Unknown", "True"]}, rules)
    assert step.states["b"] == PARTIAL and step.rates == {"b": 0.0}
    assert disruption_step({}, {"z": ["True"]}, rules).states == {"z": NORMAL}
    assert INITIAL not in disruption_step({"gone": NORMAL}, {"z": ["True"]}, rules).states.values()


def test_token_bucket_and_zone_queue() -> None:
    bucket = TokenBucket(0.5, now=0.0)
    assert bucket.try_accept(0.0) and not bucket.try_accept(1.0) and bucket.try_accept(2.0)
    assert not TokenBucket(0.0, now=0.0).try_accept(100.0)
    tainter = ZoneTainter(1.0, now=0.0)
    assert tainter.add("a") and tainter.add("b") and not tainter.add("a")
    assert tainter.take(0.0) == ["a"]
    assert tainter.take(0.5) == []
    assert tainter.take(1.0) == ["b"]
    assert not tainter.add("a")  # processed: not queued again until forgotten
    tainter.forget("a")
    assert tainter.add("a")
    tainter.swap_rate(0.0, now=2.0)
    assert tainter.take(100.0) == []


# --------------------------------------------------------------------------- taint manager


def test_tolerations_match_as_kubernetes_says() -> None:
    taint = {"key": UNREACHABLE_TAINT, "effect": "NoExecute"}
    assert tolerates({"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute"}, taint)
    assert tolerates({"operator": "Exists"}, taint)
    assert not tolerates({"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoSchedule"}, taint)
    assert tolerates({"key": "k", "value": "v", "effect": "NoExecute"}, {"key": "k", "value": "v", "effect": "NoExecute"})
    assert not tolerates({"key": "k", "value": "w"}, {"key": "k", "value": "v", "effect": "NoExecute"})


def test_eviction_time() -> None:
    added = "2026-01-01T00:00:00Z"
    start = 1767225600.0
    taints = [{"key": UNREACHABLE_TAINT, "effect": "NoExecute", "timeAdded": added}]
    now = start + 5
    assert eviction_time(taints, [], now) == now  # not tolerated: now
    assert eviction_time([], [], now) is None
    forever = [{"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute"}]
    assert eviction_time(taints, forever, now) is None
    timed = [{"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]
    assert eviction_time(taints, timed, now) == start + 300  # from the taint's timeAdded
    assert eviction_time(taints, [{**timed[0], "tolerationSeconds": 0}], now) == now
    two = taints + [{"key": "other", "effect": "NoExecute", "timeAdded": added}]
    assert eviction_time(two, timed, now) == now  # "other" is not tolerated
    both = timed + [{"key": "other", "operator": "Exists", "tolerationSeconds": 10}]
    assert eviction_time(two, both, now) == start + 10  # the first to run out
    no_time = [{"key": UNREACHABLE_TAINT, "effect": "NoExecute"}]
    assert eviction_time(no_time, timed, now, {UNREACHABLE_TAINT: start + 1}) == start + 301


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def sim_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    proc = PodlifeProcess(tmp_path_factory.mktemp("nodelifecycle") / "data", "--nodes", "0", "--sim-nodes", "3",
                          "--node-monitor-grace-period=3s", "--node-monitor-period=1s",
                          kubectl=require_tool("kubectl")).start()
    try:
        yield proc
    finally:
        proc.stop()


def make_pod(cluster: PodlifeProcess, name: str, node_name: str, tolerations: list) -> None:
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                "spec": {"nodeSelector": {"kubernetes.io/hostname": node_name}, "tolerations": tolerations,
                         "terminationGracePeriodSeconds": 1, "containers": [{"name": "app", "image": "nginx:1.27"}]}}
    cluster.kubectl("create", "-f", "-", input=json.dumps(manifest))


def pod_condition(cluster: PodlifeProcess, name: str, type_: str) -> str | None:
    for c in cluster.kubectl_json("get", "pod", name).get("status", {}).get("conditions") or []:
        if c["type"] == type_:
            return str(c["status"])
    return None


def has_condition(cluster: PodlifeProcess, name: str, type_: str, status: str) -> bool:
    return pod_condition(cluster, name, type_) == status


def node_taints(cluster: PodlifeProcess, name: str) -> set[tuple[str, str]]:
    return {(t["key"], t["effect"]) for t in cluster.kubectl_json("get", "node", name).get("spec", {}).get("taints") or []}


def node_column(cluster: PodlifeProcess, name: str) -> str:
    return cluster.kubectl("get", "node", name, "--no-headers").stdout.split()[1]


def pod_names(cluster: PodlifeProcess) -> set[str]:
    return {p["metadata"]["name"] for p in cluster.kubectl_json("get", "pods")["items"]}


def events(cluster: PodlifeProcess, reason: str) -> list[str]:
    return [e["message"] for e in cluster.kubectl_json("get", "events")["items"] if e["reason"] == reason]


@pytest.mark.e2e
def test_a_node_that_stops_heartbeating_is_tainted_and_its_pods_evicted(sim_cluster: PodlifeProcess) -> None:
    node_name = "sim-node-0"
    unreachable = {"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute"}
    make_pod(sim_cluster, "short", node_name, [{**unreachable, "tolerationSeconds": 1}])
    make_pod(sim_cluster, "forever", node_name, [unreachable])
    make_pod(sim_cluster, "patient", node_name, [])  # the admission's 300 s tolerations
    make_pod(sim_cluster, "bystander", "sim-node-1", [])
    for name in ("short", "forever", "patient", "bystander"):
        wait_for(functools.partial(has_condition, sim_cluster, name, "Ready", "True"), what=f"{name} Ready")

    sim_cluster.kubectl("annotate", "node", node_name, "podlife.io/chaos=heartbeat-stop")
    wait_for(lambda: node_column(sim_cluster, node_name) == "NotReady", what="the node NotReady")
    ready = next(c for c in sim_cluster.kubectl_json("get", "node", node_name)["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("Unknown", "NodeStatusUnknown")
    wait_for(lambda: node_taints(sim_cluster, node_name) >= {(UNREACHABLE_TAINT, "NoSchedule"), (UNREACHABLE_TAINT, "NoExecute")},
             what="the unreachable taints")
    wait_for(lambda: pod_condition(sim_cluster, "forever", "Ready") == "False", what="the pod marked not Ready")
    # deleted: Terminating until the cut-off node can confirm (as on Kubernetes)
    wait_for(lambda: sim_cluster.kubectl_json("get", "pod", "short")["metadata"].get("deletionTimestamp"),
             what="the pod tolerating 1 s deleted")
    assert "Marking for deletion Pod default/short" in events(sim_cluster, "TaintManagerEviction")
    assert f"Node {node_name} status is now: NodeNotReady" in events(sim_cluster, "NodeNotReady")
    assert f"Registered Node {node_name} in Controller" in events(sim_cluster, "RegisteredNode")
    assert {"forever", "patient", "bystander"} <= pod_names(sim_cluster)  # forever; 300 s; on a healthy node
    assert pod_condition(sim_cluster, "bystander", "Ready") == "True"
    assert node_column(sim_cluster, "sim-node-1") == "Ready"

    sim_cluster.kubectl("annotate", "node", node_name, "podlife.io/chaos=heartbeat-start", "--overwrite")
    wait_for(lambda: node_column(sim_cluster, node_name) == "Ready", what="the node Ready again")
    wait_for(lambda: not {k for k, _ in node_taints(sim_cluster, node_name)} & {UNREACHABLE_TAINT, NOT_READY_TAINT},
             what="the taints removed")
    assert {"forever", "patient"} <= pod_names(sim_cluster)
    wait_for(lambda: "short" not in pod_names(sim_cluster), what="the deleted pod gone once its node is back")
    wait_for(lambda: "Cancelling deletion of Pod default/patient" in events(sim_cluster, "TaintManagerEviction"),
             what="the patient pod's deletion cancelled")
