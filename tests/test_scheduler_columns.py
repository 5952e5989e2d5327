"""The scheduler's array path: node columns kept in sync, and decisions identical to the per-node path.

The array path (``NodeResourcesFit.filter_mask``/``score_array`` on the cache's
``NodeColumns``) must pick exactly the node the per-node path picks -- same
feasible set from the same rotating start, same scores, same tie set and random
pick, same FitError -- so every test here runs a twin scheduler whose resource
plugin has no array form and compares them step by step.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podlife.client.base import Obj
from podlife.scheduler import FitError, NodeInfo, NodeResourcesFit, PodInfo, Scheduler, ScorePlugin
from podlife.scheduler.columns import FIELDS, INITIAL_CAPACITY, NodeColumns, within_limit
from podlife.scheduler.node_resources import default_filters
from podlife.scheduler.scheduler import _rotated_first

# ---- helpers ------------------------------------------------------------------------------


class PerNodeFit(NodeResourcesFit):
    """NodeResourcesFit without its array form: forces the per-node path."""

    def filter_mask(self, pod: PodInfo, columns: NodeColumns, rows: Any) -> np.ndarray | None:
        return None

    def score_array(self, pod: PodInfo, columns: NodeColumns, rows: Any) -> np.ndarray | None:
        return None


class NameParity(ScorePlugin):
    """A score plugin with no array form (scores by the node name's last digit)."""

    name = "NameParity"

    def score(self, pod: PodInfo, node: NodeInfo) -> int:
        return 100 if node.name[-1] in "02468" else 0


def node_obj(name: str, *, cpu: str | None = "32", memory: str | None = "256Gi", pods: str | None = "110",
             ready: bool = True, unschedulable: bool = False, labels: dict[str, str] | None = None,
             taints: list[dict[str, str]] | None = None, status: bool = True) -> Obj:
    alloc = {k: v for k, v in (("cpu", cpu), ("memory", memory), ("pods", pods)) if v is not None}
    spec: dict[str, Any] = {"unschedulable": True} if unschedulable else {}
    if taints:
        spec["taints"] = taints
    obj: Obj = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels or {}}, "spec": spec}
    if status:
        obj["status"] = {"allocatable": alloc,
                         "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    return obj


def pod_obj(name: str, requests: dict[str, str] | None = None, node_name: str = "", **spec: Any) -> PodInfo:
    container = {"name": "app", "image": "x", "resources": {"requests": requests} if requests else {}}
    body: dict[str, Any] = {"containers": [container], **spec}
    if node_name:
        body["nodeName"] = node_name
    return PodInfo({"metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"}, "spec": body})


def twins(seed: int, **kwargs: Any) -> tuple[Scheduler, Scheduler]:
    """An array-path scheduler and a per-node one, with the same configuration and random seed."""
    fast = Scheduler(None, rng=random.Random(seed), **kwargs)  # type: ignore[arg-type]
    filters = [PerNodeFit() if isinstance(f, NodeResourcesFit) else f for f in default_filters()]
    slow = Scheduler(None, filters=filters, rng=random.Random(seed), **kwargs)  # type: ignore[arg-type]
    return fast, slow


def outcome(result: NodeInfo | FitError) -> str:
    return result.message if isinstance(result, FitError) else result.name


def assert_columns_in_sync(sched: Scheduler) -> None:
    """Every listed node's row holds exactly its totals; unlisted nodes write nowhere."""
    cache, cols = sched.cache, sched.cache.columns
    assert cols.size == len(cache.node_list) <= cols.capacity
    exact = True
    for row, ni in enumerate(cache.node_list):
        assert ni.columns is cols and ni.row == row
        expected = (ni.free_cpu, ni.free_memory, ni.free_pods, ni.left_cpu, ni.left_memory,
                    max(ni.alloc_cpu, 1), max(ni.alloc_memory, 1), ni.free_ephemeral,
                    max(ni.alloc_ephemeral, 1), ni.alloc_cpu, ni.alloc_memory, ni.alloc_ephemeral,
                    ni.req_cpu, ni.req_memory)
        if within_limit(*expected) and min(ni.nz_cpu, ni.nz_memory, ni.req_cpu, ni.req_memory, ni.req_ephemeral,
                                           ni.alloc_cpu, ni.alloc_memory, ni.alloc_ephemeral) >= 0:
            assert tuple(int(getattr(cols, f)[row]) for f in FIELDS) == expected, ni.name
        else:
            exact = False
    assert cols.exact == exact
    listed = {id(ni) for ni in cache.node_list}
    for ni in cache.nodes.values():
        if id(ni) not in listed:
            assert ni.columns is None


class SearchPaths:
    """Which path the node searches of ``sched`` took from now on (from its stats)."""

    def __init__(self, sched: Scheduler) -> None:
        self.stats = sched.stats
        self.before = (sched.stats.array_searches, sched.stats.per_node_searches)

    @property
    def paths(self) -> Counter[str]:
        array, per_node = self.stats.array_searches - self.before[0], self.stats.per_node_searches - self.before[1]
        return +Counter({"array": array, "per-node": per_node})  # the paths taken at least once


# ---- random scenarios -----------------------------------------------------------------------

CPUS = ["32", "4", "2", "1500m", "0", "100m"]
MEMORIES = ["256Gi", "8Gi", "1Gi", "0", str(300 << 20)]
PODS = ["110", "3", "1", "0"]
REQUESTS: list[dict[str, str] | None] = [
    {"cpu": "100m", "memory": "128Mi"}, {"cpu": "100m", "memory": "128Mi"}, {"cpu": "1", "memory": "1Gi"},
    {"cpu": "250m"}, {"memory": "512Mi"}, None, {"cpu": "3", "memory": "6Gi"}, {"cpu": "0", "memory": "0"},
    {"cpu": "100m", "nvidia.com/gpu": "1"},  # an extended resource: the per-node path
    {"cpu": "lots"},  # an invalid request: the per-node path, and its own FitError
    {"memory": "1Ei"},  # too large for exact int64 arithmetic: the per-node path
]
TAINT = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}


def random_node(rng: random.Random, name: str) -> Obj:
    roll = rng.random()
    return node_obj(name, cpu=rng.choice(CPUS), memory=rng.choice(MEMORIES), pods=rng.choice(PODS),
                    ready=roll > 0.05, unschedulable=0.05 < roll < 0.08,
                    taints=[TAINT] if 0.08 < roll < 0.12 else None,
                    labels={"disk": "ssd"} if rng.random() < 0.3 else {}, status=roll < 0.98)


def random_pod(rng: random.Random, name: str) -> PodInfo:
    spec: dict[str, Any] = {}
    if rng.random() < 0.1:
        spec["tolerations"] = [{"key": "dedicated", "operator": "Exists"}]
    if rng.random() < 0.1:
        spec["nodeSelector"] = {"disk": "ssd"}
    return pod_obj(name, rng.choice(REQUESTS), **spec)


def apply_both(scheds: tuple[Scheduler, Scheduler], op: str, *args: Any) -> None:
    for sched in scheds:
        getattr(sched.cache, op)(*args)


def run_scenario(seed: int, steps: int = 150) -> Counter[str]:
    rng = random.Random(seed)
    fast, slow = twins(seed, percentage_of_nodes_to_score=rng.choice([0, 0, 10, 30, 100]))
    searches = SearchPaths(fast)
    num_nodes = rng.choice([1, 3, 40, 120, 260])
    names = [f"node-{i}" for i in range(num_nodes)]
    for name in names:
        apply_both((fast, slow), "set_node", random_node(rng, name))
    for i in range(num_nodes // 2):  # usage from pods already bound, some overcommitting, some on unknown nodes
        bound = pod_obj(f"bound-{i}", rng.choice(REQUESTS[:8]), node_name=rng.choice(names + ["ghost"]))
        apply_both((fast, slow), "add_pod", bound)
    charged: list[PodInfo] = []
    for step in range(steps):
        roll = rng.random()
        if roll < 0.75:
            pod = random_pod(rng, f"p-{step}")
            got, want = fast._find_node(pod), slow._find_node(pod)
            assert outcome(got) == outcome(want), f"seed {seed} step {step}"
            assert fast._next_start == slow._next_start
            if isinstance(got, NodeInfo):
                apply_both((fast, slow), "assume", pod, got.name)
                charged.append(pod)
        elif roll < 0.85 and charged:
            pod = charged.pop(rng.randrange(len(charged)))
            if rng.random() < 0.5:
                apply_both((fast, slow), "forget", pod.key, pod.uid)  # a failed binding
            else:
                apply_both((fast, slow), "remove_pod", pod.key)  # the pod went away
        elif roll < 0.92 and names:
            apply_both((fast, slow), "remove_node", names.pop(rng.randrange(len(names))))
        else:
            name = rng.choice(names) if names and rng.random() < 0.5 else f"node-new-{step}"
            if name not in names:
                names.append(name)
            apply_both((fast, slow), "set_node", random_node(rng, name))
        assert_columns_in_sync(fast)
    return searches.paths


@pytest.mark.parametrize("seed", range(40))
def test_array_path_chooses_as_the_per_node_path(seed: int) -> None:
    paths = run_scenario(seed)
    assert paths["array"] > 0


def test_scenarios_exercise_both_paths() -> None:
    total: Counter[str] = Counter()
    for seed in range(10):
        total += run_scenario(seed, steps=60)
    assert total["array"] > total["per-node"] > 0


# ---- the same decisions, in detail ------------------------------------------------------------


def fill(scheds: tuple[Scheduler, ...], nodes: list[Obj]) -> None:
    for sched in scheds:
        for node in nodes:
            sched.cache.set_node(node)


def test_ties_are_broken_by_the_same_random_pick() -> None:
    fast, slow = twins(7)
    fill((fast, slow), [node_obj(f"n-{i}") for i in range(1000)])  # all alike: every score ties
    searches = SearchPaths(fast)
    for i in range(300):
        pod = pod_obj(f"p-{i}", {"cpu": "100m", "memory": "128Mi"} if i % 2 else None)
        got, want = fast._find_node(pod), slow._find_node(pod)
        assert isinstance(got, NodeInfo) and isinstance(want, NodeInfo) and got.name == want.name
        assert fast._next_start == slow._next_start
        fast.cache.assume(pod, got.name)
        slow.cache.assume(pod, want.name)
    assert searches.paths == {"array": 300}
    assert fast._rng.random() == slow._rng.random()  # the same number of draws


def test_rotating_start_wraps_around_like_the_per_node_search() -> None:
    fast, slow = twins(3, start_node_index=190)
    # 200 nodes, only every third one has room: the search wraps past the end
    fill((fast, slow), [node_obj(f"n-{i}", cpu="4" if i % 3 == 0 else "100m") for i in range(200)])
    for i in range(50):
        pod = pod_obj(f"p-{i}", {"cpu": "500m"})
        got, want = fast._find_node(pod), slow._find_node(pod)
        assert outcome(got) == outcome(want)
        assert fast._next_start == slow._next_start


def test_nothing_fits_gives_the_same_fit_error() -> None:
    fast, slow = twins(1)
    fill((fast, slow), [node_obj("small", cpu="1"), node_obj("full", pods="0"), node_obj("down", ready=False)])
    pod = pod_obj("big", {"cpu": "2"})
    got, want = fast._find_node(pod), slow._find_node(pod)
    assert isinstance(got, FitError) and got.message == want.message  # type: ignore[union-attr]
    assert got.message.startswith("0/3 nodes are available: 1 Insufficient cpu, 1 Too many pods, "
                                  "1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }.")


def test_weighted_score_plugins_add_up_as_on_the_per_node_path() -> None:
    heavy, light = NodeResourcesFit(), NodeResourcesFit()
    heavy.weight = 3
    fast = Scheduler(None, scores=[heavy, light], rng=random.Random(5))  # type: ignore[arg-type]
    slow_heavy, slow_light = PerNodeFit(), PerNodeFit()
    slow_heavy.weight = 3
    filters = [PerNodeFit() if isinstance(f, NodeResourcesFit) else f for f in default_filters()]
    slow = Scheduler(None, filters=filters, scores=[slow_heavy, slow_light],  # type: ignore[arg-type]
                     rng=random.Random(5))
    rng = random.Random(11)
    fill((fast, slow), [node_obj(f"n-{i}", cpu=rng.choice(CPUS[:4]), memory=rng.choice(MEMORIES[:3]))
                        for i in range(150)])
    for i in range(100):
        pod = pod_obj(f"p-{i}", rng.choice(REQUESTS[:6]))
        got, want = fast._find_node(pod), slow._find_node(pod)
        assert outcome(got) == outcome(want)
        if isinstance(got, NodeInfo):
            fast.cache.assume(pod, got.name)
            slow.cache.assume(pod, got.name)


def test_score_plugin_without_arrays_scores_node_by_node() -> None:
    fast = Scheduler(None, scores=[NodeResourcesFit(), NameParity()], rng=random.Random(2))  # type: ignore[arg-type]
    slow = Scheduler(None, filters=[PerNodeFit() if isinstance(f, NodeResourcesFit) else f  # type: ignore[arg-type]
                                    for f in default_filters()],
                     scores=[PerNodeFit(), NameParity()], rng=random.Random(2))
    fill((fast, slow), [node_obj(f"n-{i}", cpu=str(1 + i % 5)) for i in range(130)])
    for i in range(60):
        pod = pod_obj(f"p-{i}", {"cpu": "300m"})
        got, want = fast._find_node(pod), slow._find_node(pod)
        assert outcome(got) == outcome(want)
        assert isinstance(got, NodeInfo) and got.name[-1] in "02468"
        fast.cache.assume(pod, got.name)
        slow.cache.assume(pod, got.name)


def test_least_allocated_arrays_match_score_many() -> None:
    fit, rng = NodeResourcesFit(), random.Random(4)
    sched = Scheduler(None)  # type: ignore[arg-type]
    fill((sched,), [node_obj(f"n-{i}", cpu=rng.choice(CPUS), memory=rng.choice(MEMORIES)) for i in range(300)])
    for i in range(200):
        sched.cache.add_pod(pod_obj(f"b-{i}", rng.choice(REQUESTS[:8]), node_name=f"n-{rng.randrange(300)}"))
    nodes = sched.cache.node_list
    rows = np.arange(len(nodes))
    for requests in REQUESTS[:8]:
        pod = pod_obj("p", requests)
        scores = fit.score_array(pod, sched.cache.columns, rows)
        assert scores is not None and scores.tolist() == fit.score_many(pod, nodes)
        everywhere = fit.score_array(pod, sched.cache.columns, sched.cache.columns.all_rows())
        assert everywhere is not None and everywhere.tolist() == scores.tolist()
        mask = fit.filter_mask(pod, sched.cache.columns, rows)
        assert mask is not None and mask.tolist() == [fit.filter(pod, n) is None for n in nodes]
    assert_columns_in_sync(sched)  # scoring a slice (views) wrote nothing back


# ---- when the arrays decline ---------------------------------------------------------------------


def test_huge_values_fall_back_to_the_per_node_path() -> None:
    fast, slow = twins(9)
    fill((fast, slow), [node_obj(f"n-{i}", memory="8Gi") for i in range(10)] + [node_obj("vast", memory="1Ei")])
    searches = SearchPaths(fast)
    assert not fast.cache.columns.exact
    pod = pod_obj("p", {"cpu": "100m", "memory": "128Mi"})
    got, want = fast._find_node(pod), slow._find_node(pod)
    assert outcome(got) == outcome(want) == "vast"  # emptiest by far
    assert searches.paths == {"per-node": 1}
    for sched in (fast, slow):
        sched.cache.remove_node("vast")
    assert fast.cache.columns.exact
    assert outcome(fast._find_node(pod)) == outcome(slow._find_node(pod))
    assert searches.paths == {"per-node": 1, "array": 1}


def test_huge_bound_pod_makes_its_node_inexact_until_it_goes() -> None:
    sched = Scheduler(None)  # type: ignore[arg-type]
    fill((sched,), [node_obj("a"), node_obj("b")])
    huge = pod_obj("huge", {"memory": "16Ei"}, node_name="a")  # beyond int64 itself
    sched.cache.add_pod(huge)
    assert not sched.cache.columns.exact
    assert_columns_in_sync(sched)
    assert outcome(sched._find_node(pod_obj("p", {"cpu": "1"}))) == "b"
    sched.cache.remove_pod(huge.key)
    assert sched.cache.columns.exact
    assert_columns_in_sync(sched)


def test_negative_requests_make_a_node_inexact() -> None:
    """A negative request (a quantity may be signed) can push ``left`` above allocatable;
    the per-node path then scores above 100 (a zero allocatable leaves the resource out of
    the score, as kube does) -- the arrays must not quietly differ."""
    fast, slow = twins(6)
    fill((fast, slow), [node_obj("a", cpu="1"), node_obj("b", cpu="0"), node_obj("c")])
    searches = SearchPaths(fast)
    for sched in (fast, slow):
        sched.cache.add_pod(pod_obj("neg-a", {"cpu": "-2"}, node_name="a"))
    assert not fast.cache.columns.exact
    pod = pod_obj("p", {"memory": "1Gi"})
    # a's cpu share is 290 %, b has no cpu (left out of its scores): b wins on balance
    assert outcome(fast._find_node(pod)) == outcome(slow._find_node(pod)) == "b"
    for sched in (fast, slow):
        sched.cache.add_pod(pod_obj("neg-b", {"cpu": "-2"}, node_name="b"))
    assert outcome(fast._find_node(pod)) == outcome(slow._find_node(pod))
    assert searches.paths == {"per-node": 2}


def test_extended_resources_and_invalid_requests_use_the_per_node_path() -> None:
    fast, slow = twins(4)
    gpu = node_obj("gpu")
    gpu["status"]["allocatable"]["nvidia.com/gpu"] = "2"
    fill((fast, slow), [node_obj("plain"), gpu])
    searches = SearchPaths(fast)
    for i in range(3):
        pod = pod_obj(f"g-{i}", {"cpu": "1", "nvidia.com/gpu": "1"})
        got, want = fast._find_node(pod), slow._find_node(pod)
        assert outcome(got) == outcome(want)
        if isinstance(got, NodeInfo):
            fast.cache.assume(pod, got.name)
            slow.cache.assume(pod, got.name)
    assert outcome(got) == outcome(want) == (  # the third does not fit
        "0/2 nodes are available: 2 Insufficient nvidia.com/gpu.")
    bad = pod_obj("bad", {"cpu": "lots"})
    assert outcome(fast._find_node(bad)) == outcome(slow._find_node(bad))
    assert searches.paths == {"per-node": 4}


# ---- the columns themselves ------------------------------------------------------------------------


def test_columns_follow_assume_forget_and_removal() -> None:
    sched = Scheduler(None)  # type: ignore[arg-type]
    cache = sched.cache
    fill((sched,), [node_obj(f"n-{i}", cpu=str(i + 1)) for i in range(5)])
    pod = pod_obj("p", {"cpu": "500m", "memory": "1Gi"})
    cache.assume(pod, "n-1")
    assert cache.columns.free_cpu[1] == 2000 - 500
    assert cache.columns.free_pods[1] == 109
    assert cache.forget(pod.key, pod.uid)
    assert cache.columns.free_cpu[1] == 2000
    cache.assume(pod, "n-4")
    cache.remove_node("n-1")  # n-4 moves into row 1
    assert [ni.name for ni in cache.node_list] == ["n-0", "n-4", "n-2", "n-3"]
    assert cache.columns.free_cpu[:4].tolist() == [1000, 5000 - 500, 3000, 4000]
    assert_columns_in_sync(sched)
    cache.remove_pod(pod.key)
    assert cache.columns.free_cpu[1] == 5000
    cache.remove_node("n-3")  # the last row: nothing moves
    cache.set_node(node_obj("n-2", cpu="7"))  # allocatable changed in place
    assert cache.columns.free_cpu[:3].tolist() == [1000, 5000, 7000]
    assert_columns_in_sync(sched)


def test_removed_node_no_longer_writes_its_old_row() -> None:
    sched = Scheduler(None)  # type: ignore[arg-type]
    cache = sched.cache
    fill((sched,), [node_obj("a"), node_obj("b"), node_obj("c")])
    bound = pod_obj("x", {"cpu": "1"}, node_name="a")
    cache.add_pod(bound)
    cache.remove_node("a")  # keeps its NodeInfo: a pod is still charged to it
    assert "a" in cache.nodes and cache.nodes["a"].columns is None
    cache.remove_pod(bound.key)  # must not touch row 0, which is "c" now
    assert cache.node_list[0].name == "c"
    assert_columns_in_sync(sched)
    cache.set_node(node_obj("a"))  # it comes back at the end
    assert [ni.name for ni in cache.node_list] == ["c", "b", "a"]
    assert_columns_in_sync(sched)


def test_columns_grow_by_doubling() -> None:
    sched = Scheduler(None)  # type: ignore[arg-type]
    fill((sched,), [node_obj(f"n-{i}", cpu=str(i % 7 + 1)) for i in range(INITIAL_CAPACITY * 4 + 1)])
    assert sched.cache.columns.capacity == INITIAL_CAPACITY * 8
    assert_columns_in_sync(sched)
    for i in range(INITIAL_CAPACITY * 4 + 1):
        sched.cache.remove_node(f"n-{i}")
    assert sched.cache.columns.size == 0
    assert_columns_in_sync(sched)


def test_static_positions_follow_the_node_list() -> None:
    sched = Scheduler(None)  # type: ignore[arg-type]
    fill((sched,), [node_obj("a"), node_obj("b", ready=False), node_obj("c"), node_obj("d")])
    pod = pod_obj("p", {"cpu": "1"})
    static = sched._static_for(pod, sched.profiles["default-scheduler"])
    assert static.positions.tolist() == [0, 2, 3] and not static.everywhere
    sched.cache.remove_node("a")  # d moves to row 0: a new generation, new positions
    static = sched._static_for(pod, sched.profiles["default-scheduler"])
    assert [ni.name for ni in static.candidates] == ["d", "c"] and static.positions.tolist() == [0, 2]
    sched.cache.remove_node("b")
    static = sched._static_for(pod, sched.profiles["default-scheduler"])
    assert static.everywhere and static.rows == slice(0, 2)


# ---- rotation ------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 60).flatmap(lambda n: st.tuples(
    st.just(n), st.lists(st.booleans(), min_size=n, max_size=n), st.integers(0, n - 1), st.integers(1, n + 2))))
def test_rotated_first_is_the_per_node_search_order(case: tuple[int, list[bool], int, int]) -> None:
    n, passes, start, wanted = case
    expected = [i for i in list(range(start, n)) + list(range(start)) if passes[i]][:wanted]
    passing = np.flatnonzero(np.array(passes, dtype=bool))
    assert _rotated_first(passing, start, wanted).tolist() == expected
