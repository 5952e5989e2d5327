"""The eviction manager's pure parts: flags, thresholds with grace, conditions, ranking, messages."""

from __future__ import annotations

from fractions import Fraction

import pytest

from podlife.kubelet.eviction import (
    DEFAULT_HARD, MEMORY_AVAILABLE, NODEFS_AVAILABLE, PID_AVAILABLE, EvictionConfig, EvictionConfigError,
    EvictionState, Observation, PodStats, empty_dir_violation, eviction_grace, eviction_message, meminfo,
    parse_duration, parse_grace_periods, parse_thresholds, rank_pods, synchronize, thresholds_met,
)
from podlife.node.node_status import node_conditions, pressure_conditions, pressure_taints

MI = 1024 * 1024
GI = 1024 * MI


def pod(name: str, *containers: dict, priority: int | None = None, volumes: list | None = None,
        grace: int | None = None) -> dict:
    spec: dict = {"containers": list(containers)}
    if priority is not None:
        spec["priority"] = priority
    if volumes is not None:
        spec["volumes"] = volumes
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    return {"metadata": {"name": name, "namespace": "default"}, "spec": spec}


def container(name: str = "c", **requests: str) -> dict:
    return {"name": name, "resources": {"requests": requests} if requests else {}}


# --------------------------------------------------------------------------- flags


def test_parse_thresholds_quantities_and_percentages() -> None:
    hard = parse_thresholds("memory.available<100Mi, nodefs.available<10%")
    assert [t.signal for t in hard] == [MEMORY_AVAILABLE, NODEFS_AVAILABLE]
    assert hard[0].value(8 * GI) == 100 * MI and hard[0].text(8 * GI) == "100Mi"
    assert hard[1].percentage == Fraction(1, 10) and hard[1].value(1000) == 100
    assert all(t.hard and t.grace == 0 for t in hard)


@pytest.mark.parametrize("text", ["memory.available>1Gi", "bogus.available<1Gi", "memory.available<x",
                                  "nodefs.available<0%", "nodefs.available<101%",
                                  "memory.available<1Gi,memory.available<2Gi"])
def test_parse_thresholds_rejects(text: str) -> None:
    with pytest.raises(EvictionConfigError):
        parse_thresholds(text)


def test_soft_thresholds_need_grace_periods() -> None:
    grace = parse_grace_periods("memory.available=1m30s")
    assert grace == {MEMORY_AVAILABLE: 90.0}
    soft = parse_thresholds("memory.available<1Gi", hard=False, grace_periods=grace)
    assert not soft[0].hard and soft[0].grace == 90.0
    with pytest.raises(EvictionConfigError, match="grace period must be specified"):
        parse_thresholds("nodefs.available<1Gi", hard=False, grace_periods=grace)


def test_durations() -> None:
    assert parse_duration("5m0s") == 300 and parse_duration("500ms") == 0.5 and parse_duration("0") == 0
    with pytest.raises(EvictionConfigError):
        parse_duration("5 minutes")


def test_default_config_is_kubernetes_hard_thresholds() -> None:
    config = EvictionConfig()
    assert config.pressure_transition_period == 300 and config.housekeeping_interval == 10
    assert config.max_pod_grace_period == 0
    signals = {t.signal for t in config.thresholds()}
    assert signals == {"memory.available", "nodefs.available", "imagefs.available", "nodefs.inodesFree"}
    assert DEFAULT_HARD.startswith("memory.available<100Mi")
    # giving --eviction-hard replaces every default
    assert [t.signal for t in EvictionConfig(hard="pid.available<10%").thresholds()] == [PID_AVAILABLE]
    assert EvictionConfig(hard="").thresholds() == []


# --------------------------------------------------------------------------- deciding


def test_thresholds_met() -> None:
    thresholds = parse_thresholds("memory.available<100Mi,nodefs.available<10%")
    obs = {MEMORY_AVAILABLE: Observation(50 * MI, 8 * GI), NODEFS_AVAILABLE: Observation(20, 100)}
    assert [t.signal for t in thresholds_met(thresholds, obs)] == [MEMORY_AVAILABLE]
    assert thresholds_met(thresholds, {}) == []


def test_soft_grace_and_pressure_transition_period() -> None:
    soft = parse_thresholds("memory.available<1Gi", hard=False, grace_periods={MEMORY_AVAILABLE: 30})
    low = {MEMORY_AVAILABLE: Observation(512 * MI, 8 * GI)}
    high = {MEMORY_AVAILABLE: Observation(4 * GI, 8 * GI)}
    state = EvictionState()
    first = synchronize(state, soft, low, now=100, transition_period=60)
    assert first.pressure == {"MemoryPressure"} and first.actionable == () and first.resource is None
    assert synchronize(state, soft, low, now=129, transition_period=60).actionable == ()
    due = synchronize(state, soft, low, now=130, transition_period=60)
    assert due.resource == "memory" and due.threshold == soft[0]
    # relieved: the condition stays for the transition period, the grace clock restarts
    relieved = synchronize(state, soft, high, now=140, transition_period=60)
    assert relieved.pressure == {"MemoryPressure"} and relieved.actionable == ()
    assert synchronize(state, soft, high, now=190, transition_period=60).pressure == frozenset()
    again = synchronize(state, soft, low, now=200, transition_period=60)
    assert again.actionable == ()


def test_memory_is_reclaimed_before_disk() -> None:
    hard = parse_thresholds("nodefs.available<10%,memory.available<100Mi")
    obs = {MEMORY_AVAILABLE: Observation(MI, GI), NODEFS_AVAILABLE: Observation(1, 100)}
    decision = synchronize(EvictionState(), hard, obs, now=0, transition_period=300)
    assert decision.pressure == {"MemoryPressure", "DiskPressure"}
    assert decision.resource == "memory"


def test_node_conditions_follow_pressure() -> None:
    assert pressure_conditions({"DiskPressure"}) == [
        ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        ("DiskPressure", "True", "KubeletHasDiskPressure", "kubelet has disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ]
    healthy = node_conditions("t0")
    pressed = node_conditions("t1", healthy, {"MemoryPressure", "PIDPressure"})
    by_type = {c["type"]: c for c in pressed}
    assert by_type["MemoryPressure"]["reason"] == "KubeletHasInsufficientMemory"
    assert by_type["MemoryPressure"]["message"] == "kubelet has insufficient memory available"
    assert by_type["MemoryPressure"]["lastTransitionTime"] == "t1"
    assert by_type["PIDPressure"]["reason"] == "KubeletHasInsufficientPID"
    assert by_type["DiskPressure"]["lastTransitionTime"] == "t0"  # unchanged
    assert by_type["Ready"]["status"] == "True"


def test_pressure_taints_added_and_removed() -> None:
    other = {"key": "dedicated", "value": "x", "effect": "NoSchedule"}
    tainted = pressure_taints([other], {"MemoryPressure"})
    assert tainted == [other, {"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"}]
    assert pressure_taints(tainted, set()) == [other]


# --------------------------------------------------------------------------- ranking and messages


def test_rank_memory_over_requests_then_priority_then_usage() -> None:
    besteffort = PodStats(pod("besteffort", container()), memory={"c": 10 * MI})
    burstable_under = PodStats(pod("under", container(memory="512Mi")), memory={"c": 100 * MI})
    burstable_over = PodStats(pod("over", container(memory="64Mi")), memory={"c": 300 * MI})
    important = PodStats(pod("important", container(), priority=1000), memory={"c": 500 * MI})
    ranked = rank_pods([burstable_under, important, besteffort, burstable_over], "memory")
    # over requests: over (236Mi above) and besteffort (10Mi) at priority 0, then important; then under
    assert [s.pod["metadata"]["name"] for s in ranked] == ["over", "besteffort", "important", "under"]


def test_rank_disk_counts_volumes_and_logs() -> None:
    small = PodStats(pod("small", container()), logs={"c": MI})
    big = PodStats(pod("big", container()), logs={"c": MI}, volumes={"scratch": 400 * MI})
    requested = PodStats(pod("requested", container(**{"ephemeral-storage": "1Gi"})), volumes={"v": 500 * MI})
    ranked = rank_pods([requested, small, big], "ephemeral-storage")
    assert [s.pod["metadata"]["name"] for s in ranked] == ["big", "small", "requested"]


def test_rank_pids_by_priority_then_processes() -> None:
    few = PodStats(pod("few", container()), pids=2)
    many = PodStats(pod("many", container()), pids=200)
    high = PodStats(pod("high", container(), priority=10), pids=1000)
    assert [s.pod["metadata"]["name"] for s in rank_pods([high, few, many], "pids")] == ["many", "few", "high"]


def test_eviction_message_is_kubernetes() -> None:
    threshold = parse_thresholds("memory.available<100Mi")
    stats = PodStats(pod("p", container("c"), container("d", memory="1Gi")), memory={"c": 200 * MI, "d": MI})
    message = eviction_message("memory", stats, threshold, {MEMORY_AVAILABLE: Observation(50 * MI, 8 * GI)})
    assert message == ("The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi. "
                       "Container c was using 200Mi, request is 0, has larger consumption of memory. ")


def test_eviction_message_percentage_threshold_and_requests() -> None:
    threshold = parse_thresholds("nodefs.available<10%")
    stats = PodStats(pod("p", container("c", **{"ephemeral-storage": "1Mi"})), logs={"c": 3 * MI})
    obs = {NODEFS_AVAILABLE: Observation(51200 * 1024 + 512, 1000 * MI)}
    message = eviction_message("ephemeral-storage", stats, threshold, obs)
    assert message == ("The node was low on resource: ephemeral-storage. Threshold quantity: 100Mi, "
                       "available: 52429312. Container c was using 3Mi, request is 1Mi, "
                       "has larger consumption of ephemeral-storage. ")


def test_empty_dir_size_limit() -> None:
    volumes = [{"name": "cache", "emptyDir": {}}, {"name": "x", "emptyDir": {"sizeLimit": "1Mi"}}]
    over = PodStats(pod("p", container(), volumes=volumes), volumes={"cache": GI, "x": 2 * MI})
    assert empty_dir_violation(over) == 'Usage of EmptyDir volume "x" exceeds the limit "1Mi". '
    within = PodStats(pod("p", container(), volumes=volumes), volumes={"cache": GI, "x": MI})
    assert empty_dir_violation(within) is None


def test_eviction_grace() -> None:
    hard = parse_thresholds("memory.available<1Gi")[0]
    soft = parse_thresholds("memory.available<1Gi", hard=False, grace_periods={MEMORY_AVAILABLE: 10})[0]
    assert eviction_grace(hard, pod("p", grace=30), 60) == 0
    assert eviction_grace(soft, pod("p", grace=30), 60) == 30
    assert eviction_grace(soft, pod("p", grace=30), 20) == 20


def test_meminfo() -> None:
    assert meminfo("MemTotal:  1000 kB\nMemAvailable: 400 kB\nHugePages_Total: 0\n") == {
        "MemTotal": 1000, "MemAvailable": 400, "HugePages_Total": 0}
