"""DefaultPreemption (podlife.scheduler.preemption) and the nominated-pod bookkeeping of the scheduler.

The pure rules (node choice, budgets) are driven directly; victim choice, messages and the
writes run a real Scheduler on the in-process API. There is no kubelet there, so a test
finishes a victim's graceful deletion itself, as a node would.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from podlife.api.local_client import LocalClient
from podlife.api.priority_admission import PRIORITY_CLASSES
from podlife.client.base import EVENTS, NODES, POD_DISRUPTION_BUDGETS, PODS, Client, Obj
from podlife.machinery.errors import ApiError
from podlife.scheduler import FitError, PodInfo, Scheduler
from podlife.scheduler.cache import SchedulerCache
from podlife.scheduler.node_resources import NodeResourcesFit
from podlife.scheduler.plugins import FilterPlugin, NodeInfo, Status
from podlife.scheduler.preemption import Candidate, DefaultPreemption, pick_one_node, split_by_budget
from podlife.scheduler.profile import Profile

from .cluster_harness import async_wait_for
from .in_process import InProcessApi

NEVER = "preemption: not eligible due to preemptionPolicy=Never."

# ---- helpers -----------------------------------------------------------------------------


def make_node(name: str, *, cpu: str = "4", taints: list[dict[str, str]] | None = None) -> Obj:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {"taints": taints} if taints else {},
            "status": {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
                       "capacity": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def make_pod(name: str, *, cpu: str = "1", priority_class: str | None = None, node: str | None = None,
             labels: dict[str, str] | None = None, **spec: Any) -> Obj:
    body: dict[str, Any] = {"containers": [{"name": "app", "image": "nginx:1.25",
                                            "resources": {"requests": {"cpu": cpu}}}], **spec}
    if priority_class:
        body["priorityClassName"] = priority_class
    if node:
        body["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "labels": labels or {}},
            "spec": body}


def pod_info(name: str, priority: int, *, cpu: str = "1") -> PodInfo:
    pod = make_pod(name, cpu=cpu)
    pod["metadata"]["uid"] = f"uid-{name}"
    pod["spec"]["priority"] = priority
    return PodInfo(pod)


async def get_pod(client: Client, name: str) -> Obj | None:
    try:
        return await client.get(PODS, name, "default")
    except ApiError as exc:
        if exc.code == 404:
            return None
        raise


def condition(pod: Obj | None, kind: str) -> Obj | None:
    return next((c for c in ((pod or {}).get("status") or {}).get("conditions") or [] if c["type"] == kind), None)


async def wait_message(client: Client, name: str, expected: str) -> None:
    async def check() -> bool:
        cond = condition(await get_pod(client, name), "PodScheduled")
        return bool(cond and cond["status"] == "False" and cond["message"] == expected)
    try:
        await async_wait_for(check, 10, what=f"{name}'s message")
    except Exception:
        cond = condition(await get_pod(client, name), "PodScheduled")
        raise AssertionError(f"{name}: {cond and cond.get('message')!r} != {expected!r}") from None


async def wait_terminating(client: Client, name: str) -> Obj:
    async def check() -> Obj | None:
        pod = await get_pod(client, name)
        return pod if pod and pod["metadata"].get("deletionTimestamp") else None
    return await async_wait_for(check, 10, what=f"{name} to be terminating")


async def finish_deletion(client: Client, name: str) -> None:
    """What the node does at the end of a graceful deletion."""
    await wait_terminating(client, name)
    await client.delete(PODS, name, "default", grace_period_seconds=0)


async def wait_bound(client: Client, name: str) -> str:
    async def check() -> str:
        pod = await get_pod(client, name)
        return str(((pod or {}).get("spec") or {}).get("nodeName") or "")
    return await async_wait_for(check, 10, what=f"{name} to be bound")


async def wait_nominated(client: Client, name: str) -> str:
    async def check() -> str:
        pod = await get_pod(client, name)
        return str(((pod or {}).get("status") or {}).get("nominatedNodeName") or "")
    return await async_wait_for(check, 10, what=f"{name} to be nominated")


@pytest.fixture
def client(local_api: InProcessApi) -> LocalClient:
    return local_api.client


@pytest.fixture
async def cluster(client: LocalClient) -> AsyncIterator[Callable[..., Awaitable[Scheduler]]]:
    """Nodes and priority classes, then a scheduler whose profile has DefaultPreemption."""
    tasks: list[asyncio.Task[None]] = []

    async def start(nodes: list[Obj], classes: dict[str, int] | None = None, pods: list[Obj] | None = None,
                    never: tuple[str, ...] = ()) -> Scheduler:
        for name, value in (classes or {}).items():
            pc: Obj = {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
                       "value": value}
            if name in never:
                pc["preemptionPolicy"] = "Never"
            await client.create(PRIORITY_CLASSES, pc)
        for node in nodes:
            await client.create(NODES, node)
        for pod in pods or []:
            await client.create(PODS, pod, "default")
        scheduler = Scheduler(client, profiles=[Profile("default-scheduler",
                                                        post_filters=[DefaultPreemption(rng=random.Random(1))])],
                              initial_backoff=0.05, max_backoff=0.2)
        tasks.append(asyncio.create_task(scheduler.run()))
        await asyncio.wait_for(scheduler.wait_synced(), 5)
        return scheduler

    try:
        yield start
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# ---- pure rules ------------------------------------------------------------------------------


def test_pick_prefers_fewest_violations_then_lowest_top_priority_then_sum_then_count() -> None:
    low, mid, high = pod_info("low", 1), pod_info("mid", 5), pod_info("high", 9)
    violating = Candidate("a", [low], 1)
    top_high = Candidate("b", [high], 0)
    top_mid = Candidate("c", [mid, low], 0)
    assert pick_one_node([violating, top_high, top_mid], {}).node == "c"  # no violation, then lowest top
    bigger_sum = Candidate("d", [mid, mid], 0)
    smaller_sum = Candidate("e", [mid, low], 0)
    assert pick_one_node([bigger_sum, smaller_sum], {}).node == "e"
    # negative priorities count from -2^31, so fewer victims of the same priority sum less
    neg = pod_info("neg", -10)
    assert pick_one_node([Candidate("f", [neg, neg], 0), Candidate("g", [neg], 0)], {}).node == "g"


def test_pick_breaks_ties_by_latest_start_of_the_top_victims() -> None:
    early, late = pod_info("early", 3), pod_info("late", 3)
    starts = {early.key: 100.0, late.key: 200.0}
    assert pick_one_node([Candidate("a", [early], 0), Candidate("b", [late], 0)], starts).node == "b"
    assert pick_one_node([Candidate("a", [early], 0), Candidate("b", [early], 0)], starts).node == "a"


def test_budgets_split_victims_in_order() -> None:
    pods = [pod_info(n, 1) for n in ("a", "b", "c")]
    objs = [{**p.obj, "metadata": {**p.obj["metadata"], "labels": {"app": "x" if p.name != "c" else "y"}}} for p in pods]
    pdb = {"metadata": {"name": "x", "namespace": "default"}, "spec": {"selector": {"matchLabels": {"app": "x"}}},
           "status": {"disruptionsAllowed": 1}}
    violating, ok = split_by_budget(pods, objs, [pdb])
    assert [p.name for p in violating] == ["b"] and [p.name for p in ok] == ["a", "c"]
    pdb["status"]["disruptedPods"] = {"a": "2026-01-01T00:00:00Z"}  # already counted by the API
    violating, ok = split_by_budget(pods, objs, [pdb])
    assert violating == [] and [p.name for p in ok] == ["a", "b", "c"]


def test_num_candidates() -> None:
    plugin = DefaultPreemption(min_candidate_nodes_percentage=10, min_candidate_nodes_absolute=100)
    assert (plugin.num_candidates(50), plugin.num_candidates(500), plugin.num_candidates(5000)) == (50, 100, 500)


async def test_nominated_room_is_not_taken_by_lower_or_equal_priority(client: LocalClient) -> None:
    scheduler = Scheduler(client)
    scheduler.cache.set_node(make_node("n1", cpu="2"))
    scheduler.cache.set_node(make_node("n2", cpu="1"))
    nominated = pod_info("nominated", 100, cpu="2")
    scheduler.cache.nominate(nominated, "n1")
    before = scheduler.cache.nodes["n1"].free_cpu
    for priority in (50, 100):
        chosen = scheduler._find_node(pod_info(f"p{priority}", priority, cpu="2"))
        assert isinstance(chosen, FitError), priority
        assert chosen.message.startswith("0/2 nodes are available: 2 Insufficient cpu.")
    higher = scheduler._find_node(pod_info("higher", 101, cpu="2"))
    assert not isinstance(higher, FitError) and higher.name == "n1"
    # the nominated pod itself goes to its node, and the reservation never stays charged
    own = scheduler._find_node(nominated)
    assert not isinstance(own, FitError) and own.name == "n1"
    assert scheduler.cache.nodes["n1"].free_cpu == before


# ---- the scheduler with DefaultPreemption ------------------------------------------------------


async def test_preempts_the_lowest_priority_pod_and_the_preemptor_takes_its_room(
        client: LocalClient, cluster: Callable[..., Awaitable[Scheduler]]) -> None:
    await cluster([make_node("n1", cpu="4")], {"low": 10, "mid": 50, "high": 1000}, [
        make_pod("low", cpu="2", priority_class="low", node="n1"),
        make_pod("mid", cpu="2", priority_class="mid", node="n1"),
    ])
    await client.create(PODS, make_pod("high", cpu="2", priority_class="high"), "default")
    assert await wait_nominated(client, "high") == "n1"
    victim = await wait_terminating(client, "low")
    target = condition(victim, "DisruptionTarget")
    assert target is not None and (target["status"], target["reason"], target["message"]) == (
        "True", "PreemptionByScheduler", "default-scheduler: preempting to accommodate a higher priority pod")
    assert (await get_pod(client, "mid") or {}).get("metadata", {}).get("deletionTimestamp") is None
    high = await get_pod(client, "high")
    assert high is not None
    cond = condition(high, "PodScheduled")
    assert cond is not None and cond["message"] == "0/1 nodes are available: 1 Insufficient cpu."

    async def preempted() -> list[Obj]:
        listed = await client.list(EVENTS, "default", field_selector="involvedObject.name=low,reason=Preempted")
        return listed["items"]
    events = await async_wait_for(preempted, 10, what="the Preempted event")
    assert events[0]["message"] == f"Preempted by pod {high['metadata']['uid']} on node n1"
    assert events[0]["type"] == "Normal"
    await client.delete(PODS, "low", "default", grace_period_seconds=0)
    assert await wait_bound(client, "high") == "n1"


async def test_fewest_victims_and_lowest_priority_node_are_chosen(
        client: LocalClient, cluster: Callable[..., Awaitable[Scheduler]]) -> None:
    # n1: one 2-cpu pod of priority 5 would do; n2: two 1-cpu pods of priority 5; n3: one pod of priority 20
    await cluster([make_node("n1", cpu="2"), make_node("n2", cpu="2"), make_node("n3", cpu="2")],
                  {"five": 5, "twenty": 20, "high": 1000}, [
        make_pod("n1-a", cpu="2", priority_class="five", node="n1"),
        make_pod("n2-a", cpu="1", priority_class="five", node="n2"),
        make_pod("n2-b", cpu="1", priority_class="five", node="n2"),
        make_pod("n3-a", cpu="2", priority_class="twenty", node="n3"),
    ])
    await client.create(PODS, make_pod("high", cpu="2", priority_class="high"), "default")
    assert await wait_nominated(client, "high") == "n1"
    await finish_deletion(client, "n1-a")
    assert await wait_bound(client, "high") == "n1"
    for other in ("n2-a", "n2-b", "n3-a"):
        assert (await get_pod(client, other) or {})["metadata"].get("deletionTimestamp") is None


async def test_budgets_are_respected_where_possible(client: LocalClient,
                                                    cluster: Callable[..., Awaitable[Scheduler]]) -> None:
    pdb = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "guarded"},
           "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "guarded"}}}}
    await client.create(POD_DISRUPTION_BUDGETS, pdb, "default")
    stored = await client.get(POD_DISRUPTION_BUDGETS, "guarded", "default")
    await client.update(POD_DISRUPTION_BUDGETS, {**stored, "status": {
        "disruptionsAllowed": 0, "currentHealthy": 1, "desiredHealthy": 1, "expectedPods": 1, "observedGeneration": 1}},
        subresource="status")
    # same priorities everywhere: the node whose victim no budget guards wins
    await cluster([make_node("n1", cpu="2"), make_node("n2", cpu="2")], {"low": 1, "high": 1000}, [
        make_pod("guarded", cpu="2", priority_class="low", node="n1", labels={"app": "guarded"}),
        make_pod("free", cpu="2", priority_class="low", node="n2", labels={"app": "free"}),
    ])
    await client.create(PODS, make_pod("high", cpu="2", priority_class="high"), "default")
    assert await wait_nominated(client, "high") == "n2"
    await finish_deletion(client, "free")
    assert await wait_bound(client, "high") == "n2"
    # only guarded pods left: the budget is violated rather than not scheduling at all
    await client.create(PODS, make_pod("high2", cpu="2", priority_class="high"), "default")
    assert await wait_nominated(client, "high2") == "n1"
    await finish_deletion(client, "guarded")
    assert await wait_bound(client, "high2") == "n1"


async def test_on_one_node_budget_guarded_victims_are_reprieved_first(
        client: LocalClient, cluster: Callable[..., Awaitable[Scheduler]]) -> None:
    pdb = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "keep"},
           "spec": {"maxUnavailable": 0, "selector": {"matchLabels": {"app": "keep"}}}}
    await client.create(POD_DISRUPTION_BUDGETS, pdb, "default")
    await cluster([make_node("n1", cpu="4")], {"low": 1, "high": 1000}, [
        make_pod("keep", cpu="2", priority_class="low", node="n1", labels={"app": "keep"}),
        make_pod("other", cpu="2", priority_class="low", node="n1", labels={"app": "other"}),
    ])
    await client.create(PODS, make_pod("high", cpu="2", priority_class="high"), "default")
    await finish_deletion(client, "other")
    assert await wait_bound(client, "high") == "n1"
    assert (await get_pod(client, "keep") or {})["metadata"].get("deletionTimestamp") is None


async def test_never_policy_does_not_preempt(client: LocalClient, cluster: Callable[..., Awaitable[Scheduler]]) -> None:
    await cluster([make_node("n1", cpu="2")], {"low": 1, "polite": 1000}, [
        make_pod("low", cpu="2", priority_class="low", node="n1"),
    ], never=("polite",))
    await client.create(PODS, make_pod("polite", cpu="2", priority_class="polite"), "default")
    await wait_message(client, "polite", f"0/1 nodes are available: 1 Insufficient cpu. {NEVER}.")
    assert (await get_pod(client, "low") or {})["metadata"].get("deletionTimestamp") is None
    listed = await client.list(EVENTS, "default", field_selector="involvedObject.name=polite,reason=FailedScheduling")
    assert listed["items"][0]["message"] == f"0/1 nodes are available: 1 Insufficient cpu. {NEVER}."


async def test_messages_when_preemption_cannot_help(client: LocalClient,
                                                    cluster: Callable[..., Awaitable[Scheduler]]) -> None:
    taint = {"key": "dedicated", "value": "infra", "effect": "NoSchedule"}
    await cluster([make_node("n1", cpu="2"), make_node("n2", cpu="2"), make_node("n3", cpu="8", taints=[taint])],
                  {"same": 100, "low": 1}, [
        make_pod("peer", cpu="2", priority_class="same", node="n1"),
        make_pod("small", cpu="1", priority_class="low", node="n2"),
    ])
    # n1: only an equal-priority pod; n2: evicting its low pod still leaves too little; n3: tainted
    await client.create(PODS, make_pod("big", cpu="3", priority_class="same"), "default")
    await wait_message(client, "big", (
        "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: infra}, 2 Insufficient cpu. "
        "preemption: 0/3 nodes are available: 1 Insufficient cpu, 1 No preemption victims found for incoming pod, "
        "1 Preemption is not helpful for scheduling.."))
    assert (await get_pod(client, "small") or {})["metadata"].get("deletionTimestamp") is None


async def test_a_nominated_pod_waits_for_its_terminating_victims(
        client: LocalClient, cluster: Callable[..., Awaitable[Scheduler]]) -> None:
    await cluster([make_node("n1", cpu="2")], {"low": 1, "high": 1000}, [
        make_pod("low", cpu="2", priority_class="low", node="n1"),
    ])
    await client.create(PODS, make_pod("high", cpu="2", priority_class="high"), "default")
    await wait_terminating(client, "low")
    assert await wait_nominated(client, "high") == "n1"
    await client.create(NODES, make_node("tiny", cpu="1"))  # a cluster change: high is tried again
    await wait_message(client, "high", "0/2 nodes are available: 2 Insufficient cpu. "
                                       "preemption: not eligible due to a terminating pod on the nominated node..")
    await client.delete(PODS, "low", "default", grace_period_seconds=0)
    assert await wait_bound(client, "high") == "n1"


async def test_lower_priority_pod_does_not_take_the_room_made_for_a_nominated_pod(
        client: LocalClient, cluster: Callable[..., Awaitable[Scheduler]]) -> None:
    await cluster([make_node("n1", cpu="2")], {"low": 1, "mid": 500, "high": 1000}, [
        make_pod("low", cpu="2", priority_class="low", node="n1"),
    ])
    await client.create(PODS, make_pod("high", cpu="2", priority_class="high"), "default")
    await wait_terminating(client, "low")
    await client.create(PODS, make_pod("mid", cpu="2", priority_class="mid"), "default")
    await wait_message(client, "mid", "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are "
                                      "available: 1 Insufficient cpu..")
    await client.delete(PODS, "low", "default", grace_period_seconds=0)
    assert await wait_bound(client, "high") == "n1"
    mid = await get_pod(client, "mid")
    assert mid is not None and not mid["spec"].get("nodeName")


async def test_a_higher_preemptor_clears_lower_nominations_on_its_node(
        client: LocalClient, cluster: Callable[..., Awaitable[Scheduler]]) -> None:
    scheduler = await cluster([make_node("n1", cpu="4")], {"low": 1, "mid": 500, "high": 1000}, [
        make_pod("low", cpu="4", priority_class="low", node="n1"),
    ])
    await client.create(PODS, make_pod("mid", cpu="2", priority_class="mid"), "default")
    assert await wait_nominated(client, "mid") == "n1"
    await wait_terminating(client, "low")
    # high does not leave room for the lower mid: it needs the whole node, and takes the nomination
    await client.create(PODS, make_pod("high", cpu="4", priority_class="high"), "default")
    assert await wait_nominated(client, "high") == "n1"

    async def mid_cleared() -> bool:
        pod = await get_pod(client, "mid")
        return pod is not None and not (pod.get("status") or {}).get("nominatedNodeName")
    await async_wait_for(mid_cleared, 10, what="mid's nomination to be cleared")
    assert scheduler.cache.nominated_node("default/mid") == ""
    await client.delete(PODS, "low", "default", grace_period_seconds=0)
    assert await wait_bound(client, "high") == "n1"
    mid = await get_pod(client, "mid")
    assert mid is not None and not mid["spec"].get("nodeName")


# ---- the fast paths give the general path's answers ---------------------------------------------


class PassAll(FilterPlugin):
    """A dynamic filter that passes every node: with it NodeResourcesFit is not alone, so the dry run
    takes the general path (a node copy judged by every filter)."""

    name = "PassAll"

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        return None


def budget(name: str, app: str, allowed: int) -> Obj:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": app}}}, "status": {"disruptionsAllowed": allowed}}


def placed_pod(name: str, priority: int, cpu_m: int, node: str, *, app: str = "", started: int = 0,
               count: int = 0) -> PodInfo:
    pod = make_pod(name, cpu=f"{cpu_m}m", labels={"app": app} if app else None)
    pod["metadata"]["uid"] = f"uid-{name}"
    pod["spec"]["priority"] = priority
    pod["spec"]["nodeName"] = node
    if started:
        pod["status"] = {"startTime": f"2024-01-01T00:00:{started:02d}Z"}
    return PodInfo(pod)


async def test_dry_run_on_totals_and_the_resource_precheck_agree_with_the_node_copy(client: LocalClient) -> None:
    rng = random.Random(7)
    for _ in range(30):
        plugin = DefaultPreemption(rng=random.Random(1))
        scheduler = Scheduler(client, profiles=[Profile("default-scheduler", post_filters=[plugin])])
        fit = next(f for f in scheduler.profiles["default-scheduler"].filters if isinstance(f, NodeResourcesFit))
        static = scheduler.profiles["default-scheduler"].static_filters
        for n in range(6):
            scheduler.cache.set_node(make_node(f"n{n}", cpu=str(rng.choice((2, 4)))))
            for i in range(rng.randrange(0, 5)):
                scheduler.cache.add_pod(placed_pod(f"p{n}-{i}", rng.choice((0, 1, 5, 20)), rng.choice((300, 500, 900)),
                                                   f"n{n}", app=rng.choice(("", "web", "db")),
                                                   started=rng.randrange(1, 50)))
        for n in rng.sample(range(6), 2):
            scheduler.cache.nominate(pod_info(f"nominated-{n}", rng.choice((5, 10, 20)), cpu="1"), f"n{n}")
        pdbs = [budget("web", "web", rng.randrange(0, 3)), budget("db", "db", 0)]
        pod = pod_info("preemptor", 10, cpu=rng.choice(("1", "2", "3")))
        for node in scheduler.cache.node_list:
            fast = plugin.select_victims(pod, node, [*static, fit], pdbs)
            general = plugin.select_victims(pod, node, [*static, fit, PassAll()], pdbs)
            if isinstance(general, Status):
                assert isinstance(fast, Status) and fast.reasons == general.reasons, node.name
            else:
                assert isinstance(fast, Candidate), node.name
                assert ([v.key for v in fast.victims], fast.pdb_violations) == (
                    [v.key for v in general.victims], general.pdb_violations), node.name
            if not plugin._may_fit(pod, node):  # the pre-check only refuses nodes the dry run refuses
                assert isinstance(general, Status), node.name


async def test_bulk_reservation_moves_the_totals_and_columns_as_charging_one_by_one(client: LocalClient) -> None:
    caches = [Scheduler(client).cache, Scheduler(client).cache]
    for cache in caches:
        for n in range(12):
            cache.set_node(make_node(f"n{n}", cpu="4"))
            cache.add_pod(placed_pod(f"p{n}", 0, 900, f"n{n}"))
        for i in range(20):
            cache.nominate(pod_info(f"nominated-{i}", 10 + i % 3, cpu=f"{100 + 50 * i}m"), f"n{i % 12}")

    def state(cache: SchedulerCache) -> tuple:
        totals = [(ni.req_cpu, ni.req_memory, ni.req_pods, ni.nz_cpu, ni.nz_memory, ni.free_cpu, ni.free_memory,
                   ni.free_pods, ni.free_ephemeral, ni.left_cpu, ni.left_memory) for ni in cache.node_list]
        return totals, cache.columns._data[:, :cache.columns.size].tolist()

    before = state(caches[0])
    assert before == state(caches[1])
    pod = pod_info("searching", 11)
    bulk = caches[0].reserve_nominated(pod, notify=False)
    one_by_one = caches[1].reserve_nominated(pod, notify=True)
    assert bulk.plan is not None and one_by_one.plan is None
    assert len(bulk.pods) == 13 and state(caches[0]) == state(caches[1]) != before
    caches[0].release_nominated(bulk)
    caches[1].release_nominated(one_by_one)
    assert state(caches[0]) == state(caches[1]) == before


async def test_the_loop_yielding_within_a_batch_still_schedules_every_pod(client: LocalClient) -> None:
    await client.create(NODES, make_node("n1", cpu="8"))
    scheduler = Scheduler(client)
    scheduler.yield_after = 0.0  # yield after every decision
    task = asyncio.create_task(scheduler.run())
    try:
        await asyncio.wait_for(scheduler.wait_synced(), 5)
        for i in range(6):
            await client.create(PODS, make_pod(f"p{i}"), "default")
        for i in range(6):
            assert await wait_bound(client, f"p{i}") == "n1"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_preemptor_is_gated_while_its_victims_are_still_there(
        client: LocalClient, cluster: Callable[..., Awaitable[Scheduler]]) -> None:
    scheduler = await cluster([make_node("n1", cpu="2")], {"low": 1}, [
        make_pod("low", cpu="2", priority_class="low", node="n1"),
    ])
    plugin = next(p for p in scheduler.profiles["default-scheduler"].post_filters if isinstance(p, DefaultPreemption))
    preemptor = pod_info("high", 1000)
    await async_wait_for(lambda: scheduler.pod_informer.get("default", "low") is not None, 10, what="low seen")
    assert not plugin.running_preemption(preemptor)  # no eviction asked for
    plugin._preempting[preemptor.key] = ["default/low"]  # as post_filter records it while evicting
    assert plugin.running_preemption(preemptor)
    await client.delete(PODS, "low", "default", grace_period_seconds=0)
    await async_wait_for(lambda: scheduler.pod_informer.get("default", "low") is None, 10, what="low gone")
    assert not plugin.running_preemption(preemptor)  # the victim is gone: the pod may be tried
