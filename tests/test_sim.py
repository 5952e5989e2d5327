"""Tests for simulated nodes: registration, leases, the pod status sequence, deletion, chaos.

Each test gets the in-process API (the ``local_api`` fixture) and runs a
:class:`Simulator` with short intervals (lease period 0.2 s, crash backoff 0.1 s).
No network controller runs: tests write the ``network.podlife.io/port`` annotation
themselves -- after ContainerCreating when the test is about that race. Tests wait
for conditions (watch events, API state) with a timeout, never for a fixed time,
and stop the simulator in ``finally``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from podlife.machinery.errors import ApiError
from podlife.client.base import LEASES, NODES, PODS, Client, Obj
from podlife.client.workqueue import WorkQueue
from podlife.api.local_client import LocalClient
from podlife.sim.nodes import KUBELET_VERSION, LEASE_NAMESPACE, NODE_RANGE, node_ip
from podlife.node.machine import NEVER_RAN_MESSAGE, PodLifecycle
from podlife.node.status import status_patch
from podlife.machinery.constants import (
    CHAOS_ACK_ANNOTATION,
    CHAOS_ANNOTATION,
    PORT_ANNOTATION,
    SIM_DURATION_ANNOTATION,
)
from podlife.sim.simulator import (
    Simulator,
    Step,
    port_ip,
)
from podlife.sim.stages import COMPLETE, StageSet, parse_stages

from .cluster_harness import async_wait_for
from .in_process import InProcessApi

NS = "default"
FAST: dict[str, Any] = {"lease_period": 0.2, "restart_backoff": 0.1, "max_restart_backoff": 0.4,
                        "pull_duration": 0.05, "node_status_period": 0.4, "seed": 1}


# --------------------------------------------------------------------------- harness


@pytest.fixture
def client(local_api: InProcessApi) -> LocalClient:
    return local_api.client


@asynccontextmanager
async def simulator(client: Client, nodes: int = 2, **kwargs: Any) -> AsyncIterator[Simulator]:
    sim = Simulator(client, nodes, **{**FAST, **kwargs})
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


def port_annotation(ip: str) -> str:
    return json.dumps({"id": "port-1", "fixed_ips": [{"ip_address": ip, "subnet_id": "default-0"}]})


def pod_manifest(name: str, *, restart_policy: str | None = None, annotations: dict[str, str] | None = None,
                 labels: dict[str, str] | None = None, image: str = "nginx:1.27", containers: int = 1) -> Obj:
    spec: Obj = {"containers": [{"name": "c" if i == 0 else f"c{i}", "image": image} for i in range(containers)]}
    if restart_policy:
        spec["restartPolicy"] = restart_policy
    return {"metadata": {"name": name, "namespace": NS, "annotations": dict(annotations or {}),
                         "labels": dict(labels or {})}, "spec": spec}


async def run_pod(client: Client, name: str, node: str = "sim-node-0", *, ip: str | None = "10.244.0.10",
                  **manifest: Any) -> Obj:
    """Create a pod (with its port annotation unless ``ip`` is None) and bind it to ``node``."""
    pod = pod_manifest(name, **manifest)
    if ip is not None:
        pod["metadata"]["annotations"][PORT_ANNOTATION] = port_annotation(ip)
    created = await client.create(PODS, pod)
    await client.create_subresource(PODS, name, "binding", {"target": {"name": node}}, NS)
    return created


async def give_port(client: Client, name: str, ip: str = "10.244.0.10") -> None:
    await client.patch(PODS, name, {"metadata": {"annotations": {PORT_ANNOTATION: port_annotation(ip)}}}, NS)


async def get_pod(client: Client, name: str) -> Obj | None:
    try:
        return await client.get(PODS, name, NS)
    except ApiError as exc:
        if exc.code == 404:
            return None
        raise


def container(pod: Obj | None, index: int = 0) -> Obj:
    """Container status ``index`` of ``pod`` ({} while there is none)."""
    statuses = ((pod or {}).get("status") or {}).get("containerStatuses") or []
    return statuses[index] if index < len(statuses) else {}


def condition(pod: Obj, type_: str) -> Obj:
    return next(c for c in pod["status"]["conditions"] if c["type"] == type_)


async def pod_where(client: Client, name: str, check: Callable[[Obj], Any], timeout: float = 5.0,
                    what: str = "pod state") -> Obj:
    async def probe() -> Obj | None:
        pod = await get_pod(client, name)
        return pod if pod is not None and check(pod) else None

    return await async_wait_for(probe, timeout, what=f"{name}: {what}")


def running(pod: Obj) -> bool:
    return pod["status"].get("phase") == "Running" and "running" in (container(pod).get("state") or {})


def state_keys(pod: Obj, index: int = 0) -> dict[str, Any]:
    return container(pod, index).get("state") or {}


class Recorder:
    """Every distinct status of one pod, in order, as a watch sees it (and whether it was deleted)."""

    def __init__(self, client: Client, name: str) -> None:
        self.client = client
        self.name = name
        self.statuses: list[Obj] = []
        self.deleted = False
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Recorder:
        listed = await self.client.list(PODS, NS)
        self._task = asyncio.get_running_loop().create_task(self._run(listed["metadata"]["resourceVersion"]))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self, rv: str) -> None:
        async for ev in self.client.watch(PODS, NS, field_selector=f"metadata.name={self.name}", resource_version=rv):
            if ev.type == "DELETED":
                self.deleted = True
                continue
            status = ev.object.get("status") or {}
            if not self.statuses or self.statuses[-1] != status:
                self.statuses.append(json.loads(json.dumps(status)))

    def written(self) -> list[Obj]:
        """The statuses a node wrote (the ones with container statuses)."""
        return [s for s in self.statuses if s.get("containerStatuses")]

    async def until(self, check: Callable[[list[Obj]], Any], timeout: float = 5.0, what: str = "statuses") -> Any:
        async def probe() -> Any:
            return check(self.written())

        return await async_wait_for(probe, timeout, what=f"{self.name}: {what}")


def state_of(status: Obj, index: int = 0) -> tuple[str, str]:
    """(state, reason) of a container in a status: ("waiting", "ContainerCreating"), ("running", "")..."""
    state = status["containerStatuses"][index]["state"]
    kind = next(iter(state))
    return kind, state[kind].get("reason", "")


# --------------------------------------------------------------------------- nodes


async def test_nodes_register_ready_with_capacity_labels_and_leases(client: LocalClient) -> None:
    async with simulator(client, 3) as sim:
        nodes = {n["metadata"]["name"]: n for n in (await client.list(NODES))["items"]}
        assert sorted(nodes) == ["sim-node-0", "sim-node-1", "sim-node-2"] == sorted(sim.node_names)
        node = nodes["sim-node-1"]
        labels = node["metadata"]["labels"]
        assert labels["kubernetes.io/hostname"] == "sim-node-1"
        assert labels["type"] == "simulated"
        assert labels["kubernetes.io/os"] == "linux" and labels["kubernetes.io/arch"] == "amd64"
        status = node["status"]
        assert status["capacity"]["cpu"] == "32" and status["capacity"]["memory"] == "256Gi"
        assert status["capacity"]["pods"] == "110" and status["allocatable"]["pods"] == "110"
        assert status["nodeInfo"]["kubeletVersion"] == KUBELET_VERSION == "v1.37.0-podlife-sim"
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True" and ready["reason"] == "KubeletReady"
        internal = next(a["address"] for a in status["addresses"] if a["type"] == "InternalIP")
        assert ipaddress.ip_address(internal) in NODE_RANGE and internal == node_ip(1)
        assert status["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 0  # nothing dials a simulated node
        ips = {next(a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP") for n in nodes.values()}
        assert len(ips) == 3

        lease = await client.get(LEASES, "sim-node-1", LEASE_NAMESPACE)
        assert lease["spec"]["holderIdentity"] == "sim-node-1"
        assert lease["spec"]["leaseDurationSeconds"] == 40
        assert lease["metadata"]["ownerReferences"][0]["uid"] == node["metadata"]["uid"]
        first = lease["spec"]["renewTime"]

        async def renewed() -> bool:
            return (await client.get(LEASES, "sim-node-1", LEASE_NAMESPACE))["spec"]["renewTime"] != first

        await async_wait_for(renewed, what="lease renewal")


async def test_capacity_and_labels_are_configurable(client: LocalClient) -> None:
    async with simulator(client, 1, capacity={"cpu": 4, "memory": "8Gi"}, labels={"zone": "a"},
                                          name_prefix="big"):
        node = await client.get(NODES, "big-0")
        assert node["status"]["capacity"]["cpu"] == "4" and node["status"]["capacity"]["memory"] == "8Gi"
        assert node["status"]["capacity"]["pods"] == "110"
        assert node["metadata"]["labels"]["zone"] == "a" and node["metadata"]["labels"]["type"] == "simulated"


async def test_a_restarted_simulator_takes_its_nodes_over(client: LocalClient) -> None:
    async with simulator(client, 1):
        uid = (await client.get(NODES, "sim-node-0"))["metadata"]["uid"]
        await run_pod(client, "p")
        await pod_where(client, "p", running, what="Running")
    async with simulator(client, 1) as sim:
        assert (await client.get(NODES, "sim-node-0"))["metadata"]["uid"] == uid
        await async_wait_for(lambda: sim.sims.get(f"{NS}/p"), what="adoption")
        assert sim.sims[f"{NS}/p"].step is Step.RUNNING
        await client.delete(PODS, "p", NS)
        await async_wait_for(lambda: _none(get_pod(client, "p")), what="deletion")


async def _none(aw: Awaitable[Any]) -> bool:
    return (await aw) is None


async def test_node_status_is_rewritten_every_status_period(client: LocalClient) -> None:
    async with simulator(client, 1):
        def heartbeat(node: Obj) -> str:
            return next(c for c in node["status"]["conditions"] if c["type"] == "Ready")["lastHeartbeatTime"]

        node = await client.get(NODES, "sim-node-0")
        first, transition = heartbeat(node), next(c for c in node["status"]["conditions"]
                                                  if c["type"] == "Ready")["lastTransitionTime"]

        async def moved() -> Obj | None:
            n = await client.get(NODES, "sim-node-0")
            return n if heartbeat(n) != first else None

        node = await async_wait_for(moved, 5, what="node status heartbeat")
        ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        assert ready["lastTransitionTime"] == transition  # only the heartbeat moves


# --------------------------------------------------------------------------- the pod status sequence


async def test_pod_goes_through_the_seed_sequence_waiting_for_the_port(client: LocalClient) -> None:
    async with simulator(client) as sim:
        async with Recorder(client, "web") as rec:
            await run_pod(client, "web", "sim-node-1", ip=None)
            creating = await rec.until(lambda s: s[-1] if s else None, what="ContainerCreating")
            # (1) ContainerCreating: Initialized True, Ready False, hostIP, startTime; no IP yet
            assert creating["phase"] == "Pending" and "podIP" not in creating
            conds = {c["type"]: c for c in creating["conditions"]}
            assert conds["Initialized"]["status"] == "True"
            assert conds["Ready"]["status"] == "False" and conds["Ready"]["reason"] == "ContainersNotReady"
            assert conds["Ready"]["message"] == "containers with unready status: [c]"
            assert conds["ContainersReady"]["status"] == "False"
            assert conds["PodScheduled"]["status"] == "True"
            assert creating["hostIP"] == node_ip(1) and creating["startTime"]
            cs = creating["containerStatuses"][0]
            assert cs["state"] == {"waiting": {"reason": "ContainerCreating"}}
            assert cs["ready"] is False and cs["restartCount"] == 0 and cs["image"] == "nginx:1.27"
            assert cs["imageID"] == "" and "containerID" not in cs
            assert sim.sims[f"{NS}/web"].step is Step.CREATING
            # (2) the network controller's port arrives: nothing holds the run, so the
            # pod IP comes with Running, as on a real cluster
            await give_port(client, "web", "10.244.3.7")
            await rec.until(lambda s: s[-1]["phase"] == "Running", what="Running")
        written = rec.written()
        assert [(s["phase"], s.get("podIP"), state_of(s)) for s in written] == [
            ("Pending", None, ("waiting", "ContainerCreating")),
            ("Running", "10.244.3.7", ("running", "")),
        ]
        # (3) Running: containers running and ready, Ready True
        final = written[-1]
        cs = final["containerStatuses"][0]
        assert cs["ready"] is True and cs["started"] is True and cs["state"]["running"]["startedAt"]
        assert cs["containerID"].startswith("podlife-sim://") and len(cs["containerID"]) == len("podlife-sim://") + 64
        assert cs["imageID"].startswith("nginx@sha256:")
        conds = {c["type"]: c for c in final["conditions"]}
        assert conds["Ready"]["status"] == "True" and "reason" not in conds["Ready"]
        assert conds["PodScheduled"] == {c["type"]: c for c in written[0]["conditions"]}["PodScheduled"]
        assert final["podIPs"] == [{"ip": "10.244.3.7"}] and final["hostIPs"] == [{"ip": node_ip(1)}]
        assert final["qosClass"] == "BestEffort"


async def test_container_creating_then_running_with_the_ip_when_the_port_is_already_there(client: LocalClient) -> None:
    """The shape of shared/reference/real-kubectl-watch.txt: no IP while ContainerCreating."""
    async with simulator(client):
        async with Recorder(client, "quick") as rec:
            await run_pod(client, "quick")
            await rec.until(lambda s: s and s[-1]["phase"] == "Running", what="Running")
        assert [(s["phase"], "podIP" in s) for s in rec.written()] == [("Pending", False), ("Running", True)]


async def test_a_run_delay_makes_the_pod_ip_a_write_of_its_own(client: LocalClient) -> None:
    stages = parse_stages("""
apiVersion: sim.podlife.io/v1alpha1
kind: Stage
metadata: {name: slow-start}
spec:
  resourceRef: {kind: Pod}
  delay: {duration: 50ms}
  next: {action: run}
""")
    async with simulator(client, stages=stages):
        async with Recorder(client, "slow") as rec:
            await run_pod(client, "slow")
            await rec.until(lambda s: s and s[-1]["phase"] == "Running", what="Running")
        assert [(s["phase"], s.get("podIP"), state_of(s)) for s in rec.written()] == [
            ("Pending", None, ("waiting", "ContainerCreating")),
            ("Pending", "10.244.0.10", ("waiting", "ContainerCreating")),
            ("Running", "10.244.0.10", ("running", "")),
        ]


async def test_conditions_of_others_are_kept(client: LocalClient) -> None:
    """A condition the kubelet does not own (here a readiness gate's) survives the simulator's writes."""
    gate = {"type": "example.com/Gate", "status": "True", "lastProbeTime": None,
            "lastTransitionTime": "2024-01-01T00:00:00Z"}
    async with simulator(client):
        await run_pod(client, "gated", ip=None)
        pod = await pod_where(client, "gated", lambda p: container(p).get("state", {}).get("waiting"),
                              what="creating")
        await client.patch(PODS, "gated", {"status": {"conditions": [gate, *pod["status"]["conditions"]]}}, NS,
                           subresource="status")
        await give_port(client, "gated")
        pod = await pod_where(client, "gated", running, what="Running")
        assert pod["status"]["conditions"][0] == gate
        assert [c["type"] for c in pod["status"]["conditions"][1:]] == [
            "PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]


async def test_pods_of_other_nodes_are_left_alone(client: LocalClient) -> None:
    async with simulator(client, 1) as sim:
        await client.create(NODES, {"metadata": {"name": "real-node"}})
        await run_pod(client, "elsewhere", "real-node")
        await run_pod(client, "mine")
        await pod_where(client, "mine", running, what="Running")
        assert (await client.get(PODS, "elsewhere", NS))["status"].get("containerStatuses") is None
        assert f"{NS}/elsewhere" not in sim.sims


async def test_host_network_pods_use_the_node_ip_without_a_port(client: LocalClient) -> None:
    async with simulator(client, 1):
        pod = pod_manifest("hostnet")
        pod["spec"]["hostNetwork"] = True
        await client.create(PODS, pod)
        await client.create_subresource(PODS, "hostnet", "binding", {"target": {"name": "sim-node-0"}}, NS)
        ready = await pod_where(client, "hostnet", running, what="Running")
        assert ready["status"]["podIP"] == ready["status"]["hostIP"] == node_ip(0)


@pytest.mark.parametrize("policy", ["Never", "OnFailure"])
async def test_sim_duration_completes_never_and_on_failure_pods(client: LocalClient, policy: str) -> None:
    async with simulator(client) as sim:
        await run_pod(client, "always", restart_policy="Always", annotations={SIM_DURATION_ANNOTATION: "100ms"})
        async with Recorder(client, "job") as rec:
            await run_pod(client, "job", restart_policy=policy, annotations={SIM_DURATION_ANNOTATION: "100ms"})
            done = await rec.until(lambda s: s and s[-1]["phase"] == "Succeeded" and s[-1], what="Succeeded")
        assert [s["phase"] for s in rec.written()] == ["Pending", "Running", "Succeeded"]
        term = done["containerStatuses"][0]["state"]["terminated"]
        assert term["exitCode"] == 0 and term["reason"] == "Completed" and term["containerID"].startswith("podlife-sim://")
        conds = {c["type"]: c for c in done["conditions"]}
        assert conds["Ready"]["status"] == "False" and conds["Ready"]["reason"] == "PodCompleted"
        # sim-duration is for pods that may finish; an Always pod runs until deleted
        await pod_where(client, "always", running, what="Running")
        assert COMPLETE not in sim.sims[f"{NS}/always"].armed


async def test_deletion_stops_the_containers_then_deletes_with_uid_precondition(client: LocalClient) -> None:
    async with simulator(client):
        await run_pod(client, "bye")
        await pod_where(client, "bye", running, what="Running")
        async with Recorder(client, "bye") as rec:
            await client.delete(PODS, "bye", NS)  # graceful: 30 s by default
            await async_wait_for(lambda: rec.deleted, what="DELETED")
        last = rec.written()[-1]
        cs = last["containerStatuses"][0]
        assert cs["state"]["terminated"]["exitCode"] == 0 and cs["state"]["terminated"]["reason"] == "Completed"
        assert cs["ready"] is False
        assert {c["type"]: c["status"] for c in last["conditions"]}["Ready"] == "False"


async def test_deleting_a_pod_that_never_ran_ends_its_containers_as_the_kubelet_does(client: LocalClient) -> None:
    """One final write (ContainerStatusUnknown, as Kubernetes reports a container that never ran), then the delete."""
    async with simulator(client):
        await run_pod(client, "early", ip=None)
        await pod_where(client, "early", lambda p: container(p).get("state", {}).get("waiting"), what="creating")
        async with Recorder(client, "early") as rec:
            await client.delete(PODS, "early", NS)
            await async_wait_for(lambda: rec.deleted, what="DELETED")
        assert [state_of(s) for s in rec.written()] == [("waiting", "ContainerCreating"),
                                                        ("terminated", "ContainerStatusUnknown")]
        final = rec.written()[-1]["containerStatuses"][0]["state"]["terminated"]
        assert final["exitCode"] == 137 and final["message"] == NEVER_RAN_MESSAGE


async def test_delete_stage_delay_and_exit_code(client: LocalClient) -> None:
    stages = parse_stages("""
apiVersion: sim.podlife.io/v1alpha1
kind: Stage
metadata: {name: slow-stop}
spec:
  resourceRef: {kind: Pod}
  delay: {duration: 50ms}
  next: {action: delete, exitCode: 143}
""")
    async with simulator(client, stages=stages) as sim:
        await run_pod(client, "term")
        await pod_where(client, "term", running, what="Running")
        async with Recorder(client, "term") as rec:
            await client.delete(PODS, "term", NS)
            await async_wait_for(lambda: sim.sims.get(f"{NS}/term") and sim.sims[f"{NS}/term"].step is Step.TERMINATING,
                           what="terminating")
            await async_wait_for(lambda: rec.deleted, what="DELETED")
        term = rec.written()[-1]["containerStatuses"][0]["state"]["terminated"]
        assert term["exitCode"] == 143 and term["reason"] == "Error"


# --------------------------------------------------------------------------- chaos on demand


async def test_pod_chaos_crash_acts_once_per_value_and_is_acknowledged(client: LocalClient) -> None:
    async with simulator(client):
        await run_pod(client, "victim")
        await pod_where(client, "victim", running, what="Running")
        await client.patch(PODS, "victim", {"metadata": {"annotations": {CHAOS_ANNOTATION: "crash"}}}, NS)
        pod = await pod_where(client, "victim", lambda p: p["metadata"]["annotations"].get(CHAOS_ACK_ANNOTATION) == "crash"
                              and container(p)["restartCount"] == 1 and running(p), what="crash acknowledged")
        last = container(pod)["lastState"]["terminated"]
        assert last["exitCode"] == 1 and last["reason"] == "Error"
        # the same value again does nothing; removing it clears the ack, setting it again acts again
        await client.patch(PODS, "victim", {"metadata": {"annotations": {CHAOS_ANNOTATION: None}}}, NS)
        await pod_where(client, "victim", lambda p: CHAOS_ACK_ANNOTATION not in p["metadata"]["annotations"],
                        what="ack removed")
        assert container(await get_pod(client, "victim"))["restartCount"] == 1
        await client.patch(PODS, "victim", {"metadata": {"annotations": {CHAOS_ANNOTATION: "crash"}}}, NS)
        await pod_where(client, "victim", lambda p: container(p)["restartCount"] == 2 and running(p),
                        what="second crash (after a back-off)")


async def test_pod_chaos_oom_and_readiness(client: LocalClient) -> None:
    async with simulator(client):
        await run_pod(client, "flaky")
        await pod_where(client, "flaky", running, what="Running")
        await client.patch(PODS, "flaky", {"metadata": {"annotations": {CHAOS_ANNOTATION: "unready"}}}, NS)
        pod = await pod_where(client, "flaky", lambda p: container(p)["ready"] is False, what="unready")
        assert pod["status"]["phase"] == "Running" and "running" in container(pod)["state"]
        assert condition(pod, "Ready")["status"] == "False" and condition(pod, "ContainersReady")["status"] == "False"
        await client.patch(PODS, "flaky", {"metadata": {"annotations": {CHAOS_ANNOTATION: "ready"}}}, NS)
        pod = await pod_where(client, "flaky", lambda p: container(p)["ready"] is True, what="ready again")
        assert condition(pod, "Ready")["status"] == "True"
        await client.patch(PODS, "flaky", {"metadata": {"annotations": {CHAOS_ANNOTATION: "oom"}}}, NS)
        pod = await pod_where(client, "flaky", lambda p: container(p)["restartCount"] == 1, what="OOM restart")
        assert container(pod)["lastState"]["terminated"]["reason"] == "OOMKilled"
        assert container(pod)["lastState"]["terminated"]["exitCode"] == 137


async def test_pod_chaos_waits_until_the_pod_runs(client: LocalClient) -> None:
    async with simulator(client):
        await run_pod(client, "later", ip=None, restart_policy="Never",
                      annotations={CHAOS_ANNOTATION: "crash"})
        await pod_where(client, "later", lambda p: container(p).get("state", {}).get("waiting"), what="creating")
        assert CHAOS_ACK_ANNOTATION not in (await client.get(PODS, "later", NS))["metadata"]["annotations"]
        await give_port(client, "later")
        pod = await pod_where(client, "later", lambda p: p["status"]["phase"] == "Failed", what="Failed")
        assert container(pod)["state"]["terminated"]["exitCode"] == 1
        assert pod["metadata"]["annotations"][CHAOS_ACK_ANNOTATION] == "crash"


async def _renewals(client: Client, node: str) -> str:
    return (await client.get(LEASES, node, LEASE_NAMESPACE))["spec"]["renewTime"]


async def wait_renewals(client: Client, node: str, count: int) -> None:
    """Wait until ``node``'s Lease has been renewed ``count`` more times."""
    for _ in range(count):
        before = await _renewals(client, node)

        async def moved(before: str = before) -> bool:
            return await _renewals(client, node) != before

        await async_wait_for(moved, what=f"{node} lease renewal")


async def assert_heartbeats_stopped(client: Client, stopped: str, alive: str) -> None:
    """``stopped``'s Lease stays put while ``alive``'s is renewed (a full period and more)."""
    await wait_renewals(client, alive, 1)  # a renewal already in flight has landed by now
    frozen = await _renewals(client, stopped)
    status = (await client.get(NODES, stopped))["status"]
    await wait_renewals(client, alive, 3)
    assert await _renewals(client, stopped) == frozen
    assert (await client.get(NODES, stopped))["status"] == status


async def test_node_chaos_heartbeat_stop_and_start(client: LocalClient) -> None:
    async with simulator(client, 2) as sim:
        await client.patch(NODES, "sim-node-1", {"metadata": {"annotations": {CHAOS_ANNOTATION: "heartbeat-stop"}}})
        await async_wait_for(lambda: not sim.pool.nodes["sim-node-1"].beating, what="heartbeats stopped")
        await assert_heartbeats_stopped(client, "sim-node-1", "sim-node-0")
        frozen = await _renewals(client, "sim-node-1")
        await client.patch(NODES, "sim-node-1", {"metadata": {"annotations": {CHAOS_ANNOTATION: "heartbeat-start"}}})
        await async_wait_for(lambda: _not_equal(_renewals(client, "sim-node-1"), frozen), what="heartbeats resumed")


async def test_node_chaos_removing_the_annotation_resumes(client: LocalClient) -> None:
    async with simulator(client, 2) as sim:
        await client.patch(NODES, "sim-node-0", {"metadata": {"annotations": {CHAOS_ANNOTATION: "heartbeat-stop"}}})
        await async_wait_for(lambda: not sim.pool.nodes["sim-node-0"].beating, what="heartbeats stopped")
        await assert_heartbeats_stopped(client, "sim-node-0", "sim-node-1")
        await client.patch(NODES, "sim-node-0", {"metadata": {"annotations": {CHAOS_ANNOTATION: None}}})
        await async_wait_for(lambda: sim.pool.nodes["sim-node-0"].beating, what="heartbeats resumed")
        await wait_renewals(client, "sim-node-0", 2)


async def _not_equal(aw: Awaitable[Any], value: Any) -> bool:
    return (await aw) != value


# --------------------------------------------------------------------------- helpers


def test_port_ip_reads_the_network_controllers_annotation() -> None:
    assert port_ip({"metadata": {"annotations": {PORT_ANNOTATION: port_annotation("10.244.1.2")}}}) == "10.244.1.2"
    assert port_ip({"metadata": {}}) is None
    assert port_ip({"metadata": {"annotations": {PORT_ANNOTATION: "{not json"}}}) is None
    assert port_ip({"metadata": {"annotations": {PORT_ANNOTATION: '{"fixed_ips": []}'}}}) is None


def test_status_patch_is_an_exact_merge_patch() -> None:
    stored = {"phase": "Pending", "qosClass": "BestEffort", "containerStatuses": [{"name": "c"}], "old": 1}
    wanted = {"phase": "Running", "qosClass": "BestEffort", "containerStatuses": [{"name": "c", "ready": True}]}
    assert status_patch(stored, wanted) == {"phase": "Running", "containerStatuses": [{"name": "c", "ready": True}],
                                            "old": None}
    assert status_patch(wanted, dict(wanted)) is None


async def test_simulated_pods_live_through_the_nodes_state_machine(client: LocalClient) -> None:
    """The lifecycle rules are the kubelet's own machine (podlife.node.machine), not a copy."""
    async with simulator(client) as sim:
        await run_pod(client, "m")
        await pod_where(client, "m", running, what="Running")
        machine = sim.sims[f"{NS}/m"].machine
        assert type(machine) is PodLifecycle
        assert [rec.name for rec in machine.containers if rec.alive] == ["c"]


# --------------------------------------------------------------------------- echoes of our own writes


class RecordingQueue(WorkQueue):
    """The simulator's work queue, recording each pod key it hands a worker: one sync each."""

    def __init__(self) -> None:
        super().__init__()
        self.handed_out: list[str] = []

    async def get(self) -> str:
        key = await super().get()
        self.handed_out.append(key)
        return key


async def test_a_pod_with_its_port_costs_one_sync_for_its_writes(client: LocalClient) -> None:
    queue = RecordingQueue()
    sim = Simulator(client, 1, queue=queue, **FAST)
    await sim.start()
    try:
        async with Recorder(client, "one") as rec:
            await run_pod(client, "one")
            await rec.until(lambda s: s and s[-1]["phase"] == "Running", what="Running")
        state = sim.sims[f"{NS}/one"]
        own = sim.client.own_writes
        await async_wait_for(lambda: own.remembered(state.key) == 0 and not own.in_flight(state.key), what="the echoes")
        assert len(rec.written()) == 2 and queue.handed_out == [f"{NS}/one"] and len(sim.queue) == 0
    finally:
        await sim.stop()


def test_negative_node_count_is_refused() -> None:
    with pytest.raises(ValueError):
        Simulator(None, -1, stages=StageSet())  # type: ignore[arg-type]


async def test_works_over_http_as_podlife_sim_does(local_api: InProcessApi) -> None:
    """The same simulator against the HTTP API (what ``podlife sim`` runs in its own process)."""
    from podlife.api.server import APIServer
    from podlife.client.http import HTTPClient

    server = APIServer(local_api.ctx, token="t")
    client = HTTPClient(await server.start("127.0.0.1", 0, None), token="t")
    try:
        async with simulator(client, 2) as sim:
            assert sorted(n["metadata"]["name"] for n in (await client.list(NODES))["items"]) == sim.node_names
            await run_pod(client, "remote", "sim-node-1")
            pod = await pod_where(client, "remote", running, what="Running")
            assert pod["status"]["podIP"] == "10.244.0.10"
            await client.delete(PODS, "remote", NS)
            await async_wait_for(lambda: _none(get_pod(client, "remote")), what="deletion")
    finally:
        await client.close()
        await server.stop()
