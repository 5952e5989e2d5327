"""Tests for podlife.scheduler: plugins, quantities, the queue, and the scheduler against the in-process API."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from fractions import Fraction
from typing import Any

import pytest

from podlife.client.base import EVENTS, NODES, PODS, Client, Obj
from podlife.api.local_client import LocalClient
from podlife.machinery.errors import ApiError
from podlife.scheduler import (
    DefaultBinder,
    FitError,
    NodeAffinity,
    NodeInfo,
    NodeResourcesFit,
    PodInfo,
    QuantityError,
    Scheduler,
    SchedulingQueue,
    TaintToleration,
    milli_value,
    num_feasible_nodes_to_find,
    parse_quantity,
)
from podlife.scheduler.plugins import pod_requests
from podlife.machinery.quantity import int_value

from .cluster_harness import async_wait_for
from .in_process import InProcessApi

# ---- helpers -----------------------------------------------------------------------------


def make_node(name: str, *, cpu: str = "4", memory: str = "8Gi", pods: str = "110", ready: bool = True,
              unschedulable: bool = False, labels: dict[str, str] | None = None,
              taints: list[dict[str, str]] | None = None) -> Obj:
    spec: dict[str, Any] = {}
    if unschedulable:
        spec["unschedulable"] = True
    if taints:
        spec["taints"] = taints
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": spec,
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, "pods": pods},
            "capacity": {"cpu": cpu, "memory": memory, "pods": pods},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def make_pod(name: str, *, cpu: str | None = "100m", memory: str | None = "128Mi", namespace: str = "default",
             **spec: Any) -> Obj:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    container = {"name": "app", "image": "nginx:1.25", "resources": {"requests": requests} if requests else {}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
            "spec": {"containers": [container], **spec}}


async def bound_node(client: Client, name: str, namespace: str = "default") -> str:
    pod = await client.get(PODS, name, namespace)
    return pod["spec"].get("nodeName") or ""


async def wait_bound(client: Client, name: str, timeout: float = 10.0) -> str:
    async def check() -> str:
        return await bound_node(client, name)
    return await async_wait_for(check, timeout, what=f"pod {name} to be bound")


def scheduled_condition(pod: Obj) -> Obj | None:
    return next((c for c in pod.get("status", {}).get("conditions") or [] if c["type"] == "PodScheduled"), None)


async def wait_unschedulable(client: Client, name: str) -> Obj:
    async def check() -> Obj | None:
        cond = scheduled_condition(await client.get(PODS, name, "default"))
        return cond if cond and cond["status"] == "False" else None
    return await async_wait_for(check, what=f"pod {name} to be marked unschedulable")


async def events_for(client: Client, name: str, reason: str) -> list[Obj]:
    listed = await client.list(EVENTS, "default", field_selector=f"involvedObject.name={name},reason={reason}")
    return listed["items"]


@pytest.fixture
def client(local_api: InProcessApi) -> LocalClient:
    return local_api.client


@pytest.fixture
async def run_scheduler(client: LocalClient) -> AsyncIterator[Callable[..., Awaitable[Scheduler]]]:
    tasks: list[asyncio.Task[None]] = []

    async def start(**kwargs: Any) -> Scheduler:
        kwargs.setdefault("initial_backoff", 0.05)
        kwargs.setdefault("max_backoff", 0.2)
        scheduler = Scheduler(client, **kwargs)
        tasks.append(asyncio.create_task(scheduler.run()))
        await asyncio.wait_for(scheduler.wait_synced(), 5)
        return scheduler

    try:
        yield start
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# ---- quantities ----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [
    ("100m", Fraction(1, 10)), ("1", 1), ("0.5", Fraction(1, 2)), ("128Mi", 128 << 20), ("1Gi", 1 << 30),
    ("1e3", 1000), ("500k", 500_000), ("2M", 2_000_000), ("1.5Gi", 3 << 29), ("5E-1", Fraction(1, 2)),
    ("+3", 3), (".5", Fraction(1, 2)), ("250u", Fraction(1, 4000)), (7, 7), (0.25, Fraction(1, 4)),
])
def test_parse_quantity(text: str | int | float, value: Fraction | int) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1x", "Mi", "1.2.3", "1 Gi", "--1", "1e", "1e999"])
def test_parse_quantity_rejects(text: str) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(text)


def test_quantity_units_round_up() -> None:
    assert milli_value("100m") == 100
    assert milli_value("1") == 1000
    assert milli_value("0.0001") == 1  # Kubernetes' MilliValue rounds up
    assert int_value("1.5") == 2
    assert int_value("128Mi") == 134217728


# ---- plugins --------------------------------------------------------------------------------


def node_info(name: str = "n", **kwargs: Any) -> NodeInfo:
    ni = NodeInfo(name)
    ni.set_node(make_node(name, **kwargs))
    return ni


def pod_info(name: str = "p", **kwargs: Any) -> PodInfo:
    pod = make_pod(name, **kwargs)
    pod["metadata"]["uid"] = f"uid-{name}"
    return PodInfo(pod)


def test_pod_requests_sum_containers_and_take_init_peak() -> None:
    spec = {
        "containers": [{"resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
                       {"resources": {"requests": {"cpu": "200m"}}}],
        "initContainers": [{"resources": {"requests": {"cpu": "1", "memory": "32Mi"}}}],
        "overhead": {"cpu": "10m"},
    }
    requests, nonzero = pod_requests(spec)
    assert requests == {"cpu": 1010, "memory": 64 << 20}
    # LeastAllocated counts 200Mi for the container that requests no memory
    assert nonzero["memory"] == (64 << 20) + (200 << 20)


def test_sidecar_init_containers_add_up_with_app_containers() -> None:
    spec = {
        "containers": [{"resources": {"requests": {"cpu": "100m"}}}],
        "initContainers": [{"restartPolicy": "Always", "resources": {"requests": {"cpu": "50m"}}},
                           {"resources": {"requests": {"cpu": "500m"}}}],
    }
    requests, _ = pod_requests(spec)
    assert requests["cpu"] == 550  # the init container runs next to the sidecar


def test_resources_fit_reasons() -> None:
    fit = NodeResourcesFit()
    node = node_info(cpu="1", memory="1Gi", pods="1")
    assert fit.filter(pod_info(cpu="1", memory="1Gi"), node) is None
    status = fit.filter(pod_info(cpu="2", memory="2Gi"), node)
    assert status is not None and status.reasons == ("Insufficient cpu", "Insufficient memory")
    node.add_pod(pod_info("other", cpu=None, memory=None))
    status = fit.filter(pod_info(cpu="10m"), node)
    assert status is not None and status.reasons == ("Too many pods",)


def test_least_allocated_prefers_emptier_nodes() -> None:
    fit = NodeResourcesFit()
    empty, busy = node_info("empty"), node_info("busy")
    busy.add_pod(pod_info("x", cpu="2", memory="4Gi"))
    pod = pod_info(cpu="1", memory="2Gi")
    assert fit.score(pod, empty) == 75
    assert fit.score(pod, busy) == 25
    assert fit.score_many(pod, [empty, busy]) == [75, 25]


@pytest.mark.parametrize(("toleration", "ok"), [
    ({"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}, True),
    ({"key": "dedicated", "value": "gpu"}, True),
    ({"key": "dedicated", "operator": "Exists"}, True),
    ({"operator": "Exists"}, True),
    ({"key": "dedicated", "value": "cpu", "effect": "NoSchedule"}, False),
    ({"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}, False),
])
def test_toleration_rules(toleration: dict[str, str], ok: bool) -> None:
    node = node_info(taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])
    status = TaintToleration().filter(pod_info(tolerations=[toleration]), node)
    assert (status is None) is ok
    if not ok:
        assert status is not None and status.reasons == ("node(s) had untolerated taint {dedicated: gpu}",)


def test_prefer_no_schedule_taints_do_not_filter() -> None:
    node = node_info(taints=[{"key": "soft", "value": "", "effect": "PreferNoSchedule"}])
    assert TaintToleration().filter(pod_info(), node) is None


@pytest.mark.parametrize(("expressions", "ok"), [
    ([{"key": "zone", "operator": "In", "values": ["a", "b"]}], True),
    ([{"key": "zone", "operator": "NotIn", "values": ["a"]}], False),
    ([{"key": "gpu", "operator": "DoesNotExist"}], True),
    ([{"key": "zone", "operator": "Exists"}, {"key": "cores", "operator": "Gt", "values": ["8"]}], True),
    ([{"key": "cores", "operator": "Lt", "values": ["8"]}], False),
])
def test_node_affinity_expressions(expressions: list[dict], ok: bool) -> None:
    node = node_info(labels={"zone": "a", "cores": "16"})
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": expressions}]}}}
    assert (NodeAffinity().filter(pod_info(affinity=affinity), node) is None) is ok


def test_node_affinity_match_fields_on_name() -> None:
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}}}
    pod = pod_info(affinity=affinity)
    assert NodeAffinity().filter(pod, node_info("n1")) is None
    assert NodeAffinity().filter(pod, node_info("n2")) is not None


def test_num_feasible_nodes_to_find() -> None:
    assert num_feasible_nodes_to_find(50) == 50
    assert num_feasible_nodes_to_find(100) == 100  # 48 % of 100, but never fewer than 100
    assert num_feasible_nodes_to_find(1000) == 420  # 50 - 1000/125 = 42 %
    assert num_feasible_nodes_to_find(5000) == 500  # 10 %
    assert num_feasible_nodes_to_find(10_000) == 500  # floor of 5 %
    assert num_feasible_nodes_to_find(1000, percentage=100) == 1000


def test_fit_error_message_matches_kubernetes() -> None:
    error = FitError(3, Counter({"Insufficient cpu": 2, "Insufficient memory": 1}), unresolvable=0, resolvable=3)
    assert error.message == "0/3 nodes are available: 1 Insufficient memory, 2 Insufficient cpu."  # no PostFilter ran
    error.post_filter_message = "preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
    assert error.message == ("0/3 nodes are available: 1 Insufficient memory, 2 Insufficient cpu. "
                             "preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod..")
    error.post_filter_message = ""  # preemption made room: the histogram only
    assert error.message == "0/3 nodes are available: 1 Insufficient memory, 2 Insufficient cpu."
    assert FitError(0).message == "no nodes available to schedule pods"


async def test_queue_backoff_doubles_up_to_the_limit() -> None:
    queue = SchedulingQueue()
    assert [queue.backoff_duration(n) for n in (1, 2, 3, 4, 5, 9)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


async def test_queue_orders_by_priority_then_arrival() -> None:
    queue = SchedulingQueue()
    for name, prio in (("a", 0), ("b", 10), ("c", 0)):
        queue.add(pod_info(name, priority=prio))
    batch = await queue.pop_batch(10)
    assert [qp.info.name for qp in batch] == ["b", "a", "c"]


async def test_queue_unschedulable_pods_wait_for_a_cluster_change() -> None:
    queue = SchedulingQueue(initial_backoff=0.0)
    queue.add(pod_info("a"))
    (qp,) = await queue.pop_batch(10)
    queue.unschedulable(qp)
    assert queue.where("default/a") == "unschedulable"
    queue.add(pod_info("a"))  # a status-only update is no reason to retry
    assert queue.where("default/a") == "unschedulable"
    queue.move_all()
    assert queue.where("default/a") == "active"


# ---- the scheduler against the API ---------------------------------------------------------------


async def test_binds_pod_to_ready_node_and_records_event(client: LocalClient, run_scheduler) -> None:
    await client.create(NODES, make_node("node-1"))
    await run_scheduler()
    await client.create(PODS, make_pod("nginx"), "default")
    assert await wait_bound(client, "nginx") == "node-1"
    pod = await client.get(PODS, "nginx", "default")
    assert (scheduled_condition(pod) or {}).get("status") == "True"

    async def scheduled_events() -> list[Obj]:
        return await events_for(client, "nginx", "Scheduled")
    (event,) = await async_wait_for(scheduled_events, what="Scheduled event")
    assert event["message"] == "Successfully assigned default/nginx to node-1"
    assert event["type"] == "Normal"
    assert event["source"]["component"] == "default-scheduler"
    assert event["reportingComponent"] == "default-scheduler"


async def test_skips_not_ready_and_cordoned_nodes(client: LocalClient, run_scheduler) -> None:
    await client.create(NODES, make_node("down", ready=False))
    await client.create(NODES, make_node("cordoned", unschedulable=True))
    await run_scheduler()
    await client.create(PODS, make_pod("web"), "default")
    cond = await wait_unschedulable(client, "web")
    assert cond["reason"] == "Unschedulable"
    assert cond["message"] == ("0/2 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, "
                               "1 node(s) were unschedulable. "
                               "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling..")
    await client.create(NODES, make_node("up"))
    assert await wait_bound(client, "web") == "up"
    for i in range(5):
        await client.create(PODS, make_pod(f"more-{i}"), "default")
    assert {await wait_bound(client, f"more-{i}") for i in range(5)} == {"up"}


async def test_node_becoming_ready_gets_pods(client: LocalClient, run_scheduler) -> None:
    await client.create(NODES, make_node("late", ready=False))
    await run_scheduler()
    await client.create(PODS, make_pod("waiting"), "default")
    await wait_unschedulable(client, "waiting")
    await client.patch(NODES, "late", {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
                       subresource="status")
    assert await wait_bound(client, "waiting") == "late"


async def test_pod_that_does_not_fit_waits_for_a_node(client: LocalClient, run_scheduler) -> None:
    await client.create(NODES, make_node("small", cpu="1"))
    await run_scheduler()
    await client.create(PODS, make_pod("big", cpu="2"), "default")
    cond = await wait_unschedulable(client, "big")
    assert cond["reason"] == "Unschedulable"
    assert cond["message"] == ("0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: "
                               "1 No preemption victims found for incoming pod..")

    async def failed_events() -> list[Obj]:
        return await events_for(client, "big", "FailedScheduling")
    (event,) = await async_wait_for(failed_events, what="FailedScheduling event")
    assert event["type"] == "Warning" and event["message"] == cond["message"]
    assert (await client.get(PODS, "big", "default"))["status"]["phase"] == "Pending"

    await client.create(NODES, make_node("large", cpu="8"))
    assert await wait_bound(client, "big") == "large"
    assert (scheduled_condition(await client.get(PODS, "big", "default")) or {}).get("status") == "True"


async def test_bound_pods_count_and_deletion_frees_room(client: LocalClient, run_scheduler) -> None:
    await client.create(NODES, make_node("only", cpu="1"))
    await run_scheduler()
    await client.create(PODS, make_pod("first", cpu="600m"), "default")
    assert await wait_bound(client, "first") == "only"
    await client.create(PODS, make_pod("second", cpu="600m"), "default")
    await wait_unschedulable(client, "second")
    await client.delete(PODS, "first", "default", grace_period_seconds=0)
    assert await wait_bound(client, "second") == "only"


async def test_finished_pods_free_their_requests(client: LocalClient, run_scheduler) -> None:
    await client.create(NODES, make_node("only", cpu="1"))
    await run_scheduler()
    await client.create(PODS, make_pod("job", cpu="800m", restartPolicy="Never"), "default")
    await wait_bound(client, "job")
    await client.create(PODS, make_pod("next", cpu="800m"), "default")
    await wait_unschedulable(client, "next")
    await client.patch(PODS, "job", {"status": {"phase": "Succeeded"}}, "default", subresource="status")
    assert await wait_bound(client, "next") == "only"


async def test_restart_accounts_for_pods_already_bound(client: LocalClient, run_scheduler) -> None:
    await client.create(NODES, make_node("only", cpu="1"))
    await client.create(PODS, make_pod("pinned", cpu="800m", nodeName="only"), "default")
    await client.create(PODS, make_pod("pending", cpu="500m"), "default")
    await run_scheduler()
    cond = await wait_unschedulable(client, "pending")
    assert "1 Insufficient cpu" in cond["message"]
    assert await events_for(client, "pinned", "Scheduled") == []  # already bound: not the scheduler's


async def test_node_selector(client: LocalClient, run_scheduler) -> None:
    await client.create(NODES, make_node("plain"))
    await client.create(NODES, make_node("fast", labels={"disk": "ssd"}))
    await run_scheduler()
    for i in range(4):
        await client.create(PODS, make_pod(f"db-{i}", nodeSelector={"disk": "ssd"}), "default")
    assert {await wait_bound(client, f"db-{i}") for i in range(4)} == {"fast"}
    await client.create(PODS, make_pod("nowhere", nodeSelector={"disk": "nvme"}), "default")
    cond = await wait_unschedulable(client, "nowhere")
    assert cond["message"].startswith("0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.")
    await client.patch(NODES, "plain", {"metadata": {"labels": {"disk": "nvme"}}})
    assert await wait_bound(client, "nowhere") == "plain"


async def test_taints_and_tolerations(client: LocalClient, run_scheduler) -> None:
    await client.create(NODES, make_node("gpu", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]))
    await run_scheduler()
    await client.create(PODS, make_pod("plain"), "default")
    cond = await wait_unschedulable(client, "plain")
    assert cond["message"].startswith("0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}.")
    toleration = {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}
    await client.create(PODS, make_pod("trainer", tolerations=[toleration]), "default")
    assert await wait_bound(client, "trainer") == "gpu"
    await client.create(NODES, make_node("general"))
    assert await wait_bound(client, "plain") == "general"


async def test_ignores_pods_for_other_schedulers(client: LocalClient, run_scheduler) -> None:
    await client.create(NODES, make_node("node-1"))
    await run_scheduler()
    await client.create(PODS, make_pod("theirs", schedulerName="other-scheduler"), "default")
    await client.create(PODS, make_pod("ours"), "default")
    await wait_bound(client, "ours")
    assert await bound_node(client, "theirs") == ""
    assert scheduled_condition(await client.get(PODS, "theirs", "default")) is None


class FlakyBinder(DefaultBinder):
    """Fails the first binding, as an API server under pressure might."""

    def __init__(self) -> None:
        self.failures = 0

    async def bind(self, client: Client, pod: PodInfo, node_name: str) -> None:
        if not self.failures:
            self.failures += 1
            raise ApiError(500, "InternalError", "etcdserver: request timed out")
        await super().bind(client, pod, node_name)


async def test_failed_binding_is_retried_with_backoff(client: LocalClient, run_scheduler) -> None:
    await client.create(NODES, make_node("node-1", cpu="1"))
    scheduler = await run_scheduler(binder=FlakyBinder())
    await client.create(PODS, make_pod("retry", cpu="800m"), "default")
    assert await wait_bound(client, "retry") == "node-1"
    assert scheduler.stats.bind_errors == 1 and scheduler.stats.scheduled == 1

    async def failed_events() -> list[Obj]:
        return await events_for(client, "retry", "FailedScheduling")
    (event,) = await async_wait_for(failed_events, what="FailedScheduling event")
    assert event["message"] == "Binding rejected: etcdserver: request timed out"
    node = scheduler.cache.nodes["node-1"]
    assert (node.req_cpu, node.req_pods) == (800, 1)  # charged once, not twice


async def test_no_nodes_message(client: LocalClient, run_scheduler) -> None:
    await run_scheduler()
    await client.create(PODS, make_pod("lonely"), "default")
    cond = await wait_unschedulable(client, "lonely")
    assert cond["message"] == "no nodes available to schedule pods"


async def test_thousand_pods_on_hundred_nodes_spread_within_capacity(client: LocalClient, run_scheduler) -> None:
    for i in range(100):
        await client.create(NODES, make_node(f"node-{i}", cpu="4", memory="8Gi", pods="110"))
    scheduler = await run_scheduler()
    await asyncio.gather(*(client.create(PODS, make_pod(f"p-{i}", cpu="250m", memory="256Mi"), "default")
                           for i in range(1000)))

    async def all_bound() -> bool:
        return scheduler.stats.scheduled >= 1000
    await async_wait_for(all_bound, 60, what="1000 bindings")
    pods = (await client.list(PODS, "default"))["items"]
    per_node = Counter(p["spec"].get("nodeName") for p in pods)
    assert None not in per_node and len(per_node) == 100
    # 4 cores / 250m = 16 pods fit per node; LeastAllocated spreads 10 per node
    assert max(per_node.values()) <= 16
    assert max(per_node.values()) - min(per_node.values()) <= 4
    assert scheduler.stats.bind_errors == 0


async def test_no_node_is_overcommitted_when_pods_exceed_capacity(client: LocalClient, run_scheduler) -> None:
    for i in range(10):
        await client.create(NODES, make_node(f"node-{i}", cpu="1", pods="110"))
    scheduler = await run_scheduler()
    await asyncio.gather(*(client.create(PODS, make_pod(f"p-{i}", cpu="300m"), "default") for i in range(40)))

    async def settled() -> bool:
        return scheduler.stats.scheduled == 30 and scheduler.queue.counts().get("unschedulable") == 10
    await async_wait_for(settled, what="30 bound and 10 unschedulable")
    pods = (await client.list(PODS, "default"))["items"]
    per_node = Counter(p["spec"].get("nodeName") for p in pods if p["spec"].get("nodeName"))
    assert set(per_node.values()) == {3}  # 3 x 300m fit in 1 core, a 4th does not


async def test_gated_pod_waits_until_its_gates_are_removed(client: LocalClient, run_scheduler) -> None:
    await client.create(NODES, make_node("n1"))
    pod = make_pod("gated")
    pod["spec"]["schedulingGates"] = [{"name": "example.com/quota"}, {"name": "example.com/review"}]
    created = await client.create(PODS, pod, "default")
    cond = scheduled_condition(created)
    assert cond is not None and (cond["status"], cond["reason"], cond["message"]) == (
        "False", "SchedulingGated", "Scheduling is blocked due to non-empty scheduling gates")
    await run_scheduler()
    await client.create(PODS, make_pod("plain"), "default")
    await wait_bound(client, "plain")  # the scheduler has run past the gated pod
    assert not (await client.get(PODS, "gated", "default"))["spec"].get("nodeName")
    with pytest.raises(ApiError) as added:
        await client.patch(PODS, "gated", {"spec": {"schedulingGates": [{"name": "example.com/quota"},
                                                                          {"name": "example.com/new"}]}}, "default")
    assert added.value.code == 422 and "only deletion is allowed, but found new scheduling gate 'example.com/new'" in str(added.value)
    await client.patch(PODS, "gated", {"spec": {"schedulingGates": [{"name": "example.com/quota"}]}}, "default")
    await client.patch(PODS, "gated", {"spec": {"schedulingGates": None}}, "default")
    assert await wait_bound(client, "gated") == "n1"


async def test_scheduling_gates_are_validated(client: LocalClient) -> None:
    pod = make_pod("bad-gates")
    pod["spec"]["schedulingGates"] = [{"name": "a"}, {"name": "a"}, {"name": "-bad-"}]
    with pytest.raises(ApiError) as bad:
        await client.create(PODS, pod, "default")
    assert bad.value.code == 422
    assert 'spec.schedulingGates[1].name: Duplicate value: "a"' in str(bad.value)
    assert "spec.schedulingGates[2].name: Invalid value" in str(bad.value)
    pod = make_pod("bound-and-gated")
    pod["spec"].update(schedulingGates=[{"name": "a"}], nodeName="n1")
    with pytest.raises(ApiError) as bound:
        await client.create(PODS, pod, "default")
    assert "spec.nodeName: Forbidden: cannot be set until all schedulingGates have been cleared" in str(bound.value)
