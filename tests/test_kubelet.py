"""Tests for the kubelet: a real API in-process, real processes, the pod status sequence.

Each test builds the API on a MemoryStore, talks to it with a LocalClient, and
runs a :class:`Kubelet` whose ProcessRuntime starts real processes under
``tmp_path``. No network controller runs: tests write the
``network.podlife.io/port`` annotation themselves, after the kubelet has shown
``ContainerCreating`` -- the race of the seeds, which makes the CNI step retry.

Every kubelet is stopped in a ``finally`` (which kills whatever it started), and
tests wait for conditions (watch events, processes) -- never for a fixed time.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from podlife.client.base import CONFIGMAPS, EVENTS, LEASES, NODES, PODS, Client, Obj
from podlife.api.local_client import LocalClient
from podlife.kubelet.kubelet import Kubelet, KubeletConfig
from podlife.node.node_status import meminfo_total_ki, os_image
from podlife.kubelet.environment import expand
from podlife.kubelet.pod_worker import WorkerConfig
from podlife.node.lifecycle import CrashBackoff, go_duration, image_id
from podlife.kubelet.runtime import PodKey, ProcessRuntime
from podlife.node.status import (
    ContainerView, PodFacts, Running, Terminated, Waiting, build_pod_status, pod_conditions, pod_phase,
    status_patch,
)
from podlife.machinery.constants import PORT_ANNOTATION
from podlife.node.cni import CNIPlugin
from podlife.registry.tables.pods import pod_status_reason

from .cluster_harness import async_wait_for
from .in_process import InProcessApi

NODE = "node-1"
NS = "default"
TERM_TRAPPING = "trap 'echo bye; exit 0' TERM; echo ready; while :; do sleep 0.1; done"
TERM_IGNORING = "trap '' TERM; echo ready; while :; do sleep 0.1; done"
FAST = KubeletConfig(
    lease_renew_interval=0.2,
    node_status_update_frequency=0.2,
    pods=WorkerConfig(backoff_initial=0.2, backoff_max=0.8, network_retry_initial=0.05, network_retry_max=0.2),
)


# --------------------------------------------------------------------------- harness


class PodWatch:
    """Every watch event of one pod, as ``(type, object, monotonic time)``."""

    def __init__(self, client: Client, name: str) -> None:
        self.events: list[tuple[str, Obj, float]] = []
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._run(client, name))

    async def _run(self, client: Client, name: str) -> None:
        async for ev in client.watch(PODS, NS, field_selector=f"metadata.name={name}"):
            self.events.append((ev.type, json.loads(json.dumps(ev.object)), time.monotonic()))
            self._changed.set()

    @property
    def objects(self) -> list[Obj]:
        return [obj for _, obj, _ in self.events]

    @property
    def last(self) -> Obj:
        return self.events[-1][1]

    async def wait_for(self, predicate: Callable[[str, Obj], bool], timeout: float = 15.0, what: str = "") -> Obj:
        """The first recorded (or future) event satisfying ``predicate``."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for type_, obj, _ in self.events[seen:]:
                if predicate(type_, obj):
                    return obj
            seen = len(self.events)
            self._changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"timed out waiting for {what or 'a pod event'}; last: {self.events[-1:]}")
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass

    async def wait_status(self, predicate: Callable[[Obj], bool], what: str, timeout: float = 15.0) -> Obj:
        return await self.wait_for(lambda t, o: t != "DELETED" and predicate(o), timeout, what)

    async def wait_deleted(self, timeout: float = 15.0) -> float:
        await self.wait_for(lambda t, o: t == "DELETED", timeout, "the pod to be deleted")
        return next(at for t, _, at in self.events if t == "DELETED")

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def container_state(pod: Obj, index: int = 0) -> Obj:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return statuses[index]["state"] if len(statuses) > index else {}


def restart_count(pod: Obj, index: int = 0) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return statuses[index]["restartCount"] if len(statuses) > index else 0


def condition(pod: Obj, type_: str) -> Obj:
    return next((c for c in (pod.get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


def is_creating(pod: Obj) -> bool:
    return container_state(pod).get("waiting", {}).get("reason") == "ContainerCreating"


def pod_spec(name: str, *containers: Obj, restart_policy: str = "Always", grace: int = 30) -> Obj:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"containers": list(containers), "restartPolicy": restart_policy,
                 "terminationGracePeriodSeconds": grace},
    }


def sh(name: str, script: str, **extra: Any) -> Obj:
    return {"name": name, "image": "busybox:1.36", "command": ["/bin/sh", "-c", script], **extra}


def port_annotation(pod: Obj, index: int = 5) -> str:
    """What the network controller writes for ``pod`` (a Neutron-style port)."""
    return json.dumps({
        "id": f"port-{index}", "name": pod["metadata"]["name"], "mac_address": f"fa:16:3e:00:00:{index:02x}",
        "fixed_ips": [{"ip_address": f"10.244.0.{index}"}], "binding:host_id": NODE,
        "subnet": {"cidr": "10.244.0.0/24", "gateway_ip": "10.244.0.1"},
    })


async def annotate_port(client: Client, name: str, index: int = 5) -> None:
    pod = await client.get(PODS, name, NS)
    await client.patch(PODS, name, {"metadata": {"annotations": {PORT_ANNOTATION: port_annotation(pod, index)}}}, NS)


async def bind(client: Client, name: str, node: str = NODE) -> None:
    await client.create_subresource(PODS, name, "binding", {"target": {"kind": "Node", "name": node}}, NS)


@pytest.fixture
def client(local_api: InProcessApi) -> LocalClient:
    return local_api.client


def new_kubelet(client: Client, root: Path, config: KubeletConfig = FAST) -> Kubelet:
    return Kubelet(client, NODE, root_dir=root, runtime=ProcessRuntime(root), cni=CNIPlugin(NODE, "127.0.0.1"), config=config)


@pytest.fixture
async def kubelet(client: LocalClient, tmp_path: Path) -> AsyncIterator[Kubelet]:
    kl = new_kubelet(client, tmp_path / "kubelet")
    await kl.start()
    try:
        yield kl
    finally:
        await kl.stop()


async def run_pod(client: Client, pod: Obj, index: int = 5) -> PodWatch:
    """Create, bind and network ``pod``; return its watch once the kubelet shows ContainerCreating."""
    name = pod["metadata"]["name"]
    watch = PodWatch(client, name)
    await client.create(PODS, pod, NS)
    await bind(client, name)
    await watch.wait_status(is_creating, "ContainerCreating")
    await annotate_port(client, name, index)
    return watch


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def events_of(client: Client, name: str) -> list[Obj]:
    listed = await client.list(EVENTS, NS, field_selector=f"involvedObject.name={name}")
    return listed["items"]


# --------------------------------------------------------------------------- pure status functions


def test_phase_follows_kubernetes_get_phase() -> None:
    run = Running("2024-01-01T00:00:00Z", "podlife://a")
    ok = Terminated(0, "Completed", "t0", "t1", "podlife://a")
    bad = Terminated(3, "Error", "t0", "t1", "podlife://b")
    v = lambda state, last=None: ContainerView("c", "img", state, last)  # noqa: E731
    assert pod_phase("Always", [v(Waiting())]) == "Pending"
    assert pod_phase("Always", [v(run), v(Waiting())]) == "Pending"
    assert pod_phase("Never", [v(run), v(ok)]) == "Running"
    assert pod_phase("Never", [v(ok), v(ok)]) == "Succeeded"
    assert pod_phase("Never", [v(ok), v(bad)]) == "Failed"
    assert pod_phase("OnFailure", [v(ok), v(bad)]) == "Running"
    assert pod_phase("OnFailure", [v(ok)]) == "Succeeded"
    assert pod_phase("Always", [v(ok)]) == "Running"
    assert pod_phase("Always", [v(Waiting("CrashLoopBackOff"), bad)]) == "Running"
    assert pod_phase("Always", [v(ok)], terminal=True) == "Succeeded"
    assert pod_phase("Always", [v(bad)], terminal=True) == "Failed"


def test_conditions_order_reasons_and_transition_times() -> None:
    scheduled = {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": "t0"}
    gate = {"type": "example.com/gate", "status": "True"}
    views = [ContainerView("c1", "i"), ContainerView("c2", "i")]
    first = pod_conditions(views, "Pending", sandbox_ready=False, previous=[scheduled, gate], now="t1")
    assert [c["type"] for c in first] == ["example.com/gate", "PodReadyToStartContainers", "Initialized", "Ready",
                                          "ContainersReady", "PodScheduled"]
    ready = first[3]
    assert ready == {"type": "Ready", "status": "False", "lastProbeTime": None, "lastTransitionTime": "t1",
                     "reason": "ContainersNotReady", "message": "containers with unready status: [c1 c2]"}
    assert first[-1] is scheduled
    running = Running("t2", "id")
    ready_views = [ContainerView("c1", "i", running, ready=True), ContainerView("c2", "i", running, ready=True)]
    second = pod_conditions(ready_views, "Running", sandbox_ready=True, previous=first, now="t2")
    by_type = {c["type"]: c for c in second}
    assert by_type["Ready"] == {"type": "Ready", "status": "True", "lastProbeTime": None, "lastTransitionTime": "t2"}
    assert by_type["Initialized"]["lastTransitionTime"] == "t1"  # unchanged status keeps its time
    # A readiness probe result only has to flip ContainerView.ready:
    probe_failed = [ready_views[0], ContainerView("c2", "i", running, ready=False)]
    third = {c["type"]: c for c in pod_conditions(probe_failed, "Running", sandbox_ready=True, previous=second, now="t3")}
    assert third["Ready"]["message"] == "containers with unready status: [c2]"
    done = {c["type"]: c for c in pod_conditions(views, "Succeeded", sandbox_ready=False, previous=second, now="t4")}
    assert (done["Ready"]["reason"], done["ContainersReady"]["reason"], done["Initialized"]["reason"]) == (
        "PodCompleted", "PodCompleted", "PodCompleted")


def test_build_status_and_patch_are_minimal() -> None:
    pod = pod_spec("p", sh("c", "true"))
    previous = {"phase": "Pending", "qosClass": "BestEffort"}
    facts = PodFacts(host_ip="127.0.0.1", start_time="t0")
    views = [ContainerView("c", "busybox:1.36")]
    status = build_pod_status(pod, views, facts, previous=previous, now="t0")
    assert status["qosClass"] == "BestEffort" and "podIP" not in status
    assert status["containerStatuses"] == [{"name": "c", "state": {"waiting": {"reason": "ContainerCreating"}},
                                            "lastState": {}, "ready": False, "restartCount": 0,
                                            "image": "busybox:1.36", "imageID": "", "started": False}]
    again = build_pod_status(pod, views, facts, previous=status, now="t9")
    assert status_patch(status, again) is None  # nothing changed: no write
    with_ip = build_pod_status(pod, views, PodFacts("127.0.0.1", "t0", ("10.244.0.5",), True), previous=status, now="t1")
    assert set(status_patch(status, with_ip)) == {"podIP", "podIPs", "conditions"}
    finished = build_pod_status(pod, views, facts, previous={**status, "phase": "Failed"}, now="t2")
    assert finished["phase"] == "Failed"  # never out of a terminal phase


def test_crash_backoff_doubles_caps_and_resets() -> None:
    b = CrashBackoff(10, 300)
    assert b.remaining(finished=0, now=0) == 0  # the first restart is immediate
    b.restarted(0)
    assert b.remaining(finished=5, now=6) == 9
    waits = []
    finished = 5.0
    for _ in range(7):
        waits.append(b.delay)
        b.restarted(finished)
        finished += 1
    assert waits == [10, 20, 40, 80, 160, 300, 300]
    assert b.remaining(finished=finished + 700, now=finished + 700) == 0  # ran 10+ minutes: forgotten
    b.restarted(finished + 700)
    assert b.delay == 10


def test_small_helpers() -> None:
    assert [go_duration(s) for s in (0.2, 10, 20, 80, 160, 300, 1.5)] == [
        "200ms", "10s", "20s", "1m20s", "2m40s", "5m0s", "1.5s"]
    assert expand("$(A)-$(B)-$$(A)-$(", {"A": "x"}) == "x-$(B)-$(A)-$("
    assert re.fullmatch(r"docker.io/library/nginx@sha256:[0-9a-f]{64}", image_id("docker.io/library/nginx:1.27"))
    assert meminfo_total_ki("MemTotal:       24684084 kB\nMemFree: 1 kB\n") == 24684084
    assert os_image('NAME="Debian"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n') == "Debian GNU/Linux 12 (bookworm)"


# --------------------------------------------------------------------------- node


async def test_node_registration_and_lease(client: LocalClient, kubelet: Kubelet) -> None:
    node = await client.get(NODES, NODE)
    status = node["status"]
    assert status["capacity"]["cpu"] == str(os.cpu_count())
    assert re.fullmatch(r"\d+Ki", status["capacity"]["memory"]) and status["capacity"]["pods"] == "110"
    assert status["allocatable"]["cpu"] == str(os.cpu_count())
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == NODE
    assert node["metadata"]["labels"]["kubernetes.io/os"] == "linux"
    info = status["nodeInfo"]
    assert (info["kubeletVersion"], info["containerRuntimeVersion"], info["operatingSystem"]) == (
        "v1.37.0-podlife", "podlife://0.1", "linux")
    assert info["kernelVersion"] == os.uname().release
    assert status["daemonEndpoints"]["kubeletEndpoint"]["Port"] == kubelet.server.port
    assert {"type": "InternalIP", "address": "127.0.0.1"} in status["addresses"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert [c["type"] for c in status["conditions"]] == ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
    assert conditions["Ready"]["status"] == "True" and conditions["Ready"]["reason"] == "KubeletReady"
    assert conditions["Ready"]["message"] == "kubelet is posting ready status"
    assert all(c["status"] == "False" for t, c in conditions.items() if t != "Ready")

    lease = await client.get(LEASES, NODE, "kube-node-lease")
    assert lease["spec"]["holderIdentity"] == NODE and lease["spec"]["leaseDurationSeconds"] == 40
    assert lease["metadata"]["ownerReferences"][0]["uid"] == node["metadata"]["uid"]
    first = lease["spec"]["renewTime"]

    async def renewed() -> bool:
        return (await client.get(LEASES, NODE, "kube-node-lease"))["spec"]["renewTime"] > first

    await async_wait_for(renewed, what="the lease to be renewed")
    # Only heartbeats changed: the node status is not rewritten (every 5 minutes by default).
    assert (await client.get(NODES, NODE))["metadata"]["resourceVersion"] == node["metadata"]["resourceVersion"]

    # A node controller that saw the lease lapse marks the node Unknown; the kubelet corrects it.
    unknown = [{**c, "status": "Unknown", "reason": "NodeStatusUnknown"} if c["type"] == "Ready" else c
               for c in status["conditions"]]
    await client.patch(NODES, NODE, {"status": {"conditions": unknown}}, subresource="status")
    ready: list[Obj] = []

    async def ready_again() -> bool:
        ready[:] = [c for c in (await client.get(NODES, NODE))["status"]["conditions"] if c["type"] == "Ready"]
        return ready[0]["status"] == "True"

    await async_wait_for(ready_again, what="the node to be Ready again")
    assert ready[0]["reason"] == "KubeletReady" and ready[0]["lastTransitionTime"] >= conditions["Ready"]["lastTransitionTime"]


# --------------------------------------------------------------------------- the status sequence


async def test_status_sequence_follows_the_seed(client: LocalClient, kubelet: Kubelet) -> None:
    pod = pod_spec("seq", sh("c1", "exec sleep 600"), sh("c2", "exec sleep 600"))
    watch = PodWatch(client, "seq")
    try:
        await client.create(PODS, pod, NS)
        await bind(client, "seq")
        creating = await watch.wait_status(is_creating, "ContainerCreating")
        # (a) immediately, before any network: Initialized, Ready=False, host IP, start time
        st = creating["status"]
        assert st["phase"] == "Pending" and "podIP" not in st
        assert st["hostIP"] == "127.0.0.1" and st["hostIPs"] == [{"ip": "127.0.0.1"}] and st["startTime"]
        assert [c["type"] for c in st["conditions"]] == [
            "PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
        assert condition(creating, "Initialized")["status"] == "True"
        for type_ in ("Ready", "ContainersReady"):
            assert condition(creating, type_)["reason"] == "ContainersNotReady"
            assert condition(creating, type_)["message"] == "containers with unready status: [c1 c2]"
        assert [cs["name"] for cs in st["containerStatuses"]] == ["c1", "c2"]
        assert all(cs["ready"] is False and cs["restartCount"] == 0 and cs["image"] == "busybox:1.36"
                   and cs["imageID"] == "" and cs["started"] is False for cs in st["containerStatuses"])
        assert pod_status_reason(creating) == "ContainerCreating"

        await annotate_port(client, "seq", 7)  # the network controller, late (the seed's race)
        running = await watch.wait_status(lambda o: o["status"].get("phase") == "Running", "Running")
        st = running["status"]
        assert st["podIP"] == "10.244.0.7" and st["podIPs"] == [{"ip": "10.244.0.7"}]
        assert condition(running, "Ready")["status"] == "True" and "reason" not in condition(running, "Ready")
        assert condition(running, "ContainersReady")["status"] == "True"
        assert condition(running, "PodReadyToStartContainers")["status"] == "True"
        for cs in st["containerStatuses"]:
            assert cs["ready"] is True and cs["started"] is True
            assert "startedAt" in cs["state"]["running"]
            assert re.fullmatch(r"podlife://[0-9a-f]{64}", cs["containerID"])
            assert cs["imageID"].startswith("busybox@sha256:")
        assert condition(running, "PodScheduled") == condition(creating, "PodScheduled")
        assert pod_status_reason(running) == "Running"

        # The order of the writes is the seed's: ContainerCreating, then the IP (still
        # Pending), then Running -- each its own write.
        # Status writes only: the annotation patch above is a MODIFIED event too.
        modified = [o for (t, o, _), (_, before, _) in zip(watch.events[1:], watch.events)
                    if t == "MODIFIED" and o["spec"].get("nodeName") and o["status"] != before["status"]]
        kinds = []
        for obj in modified:
            if obj["status"].get("phase") == "Running":
                kinds.append("running")
            elif obj["status"].get("podIP"):
                kinds.append("ip")
            elif obj["status"].get("containerStatuses"):
                kinds.append("creating")
            else:
                kinds.append("bound")
        assert kinds[:4] == ["bound", "creating", "ip", "running"], kinds
        ip_write = modified[kinds.index("ip")]
        assert ip_write["status"]["phase"] == "Pending" and is_creating(ip_write)
        assert pod_status_reason(ip_write) == "ContainerCreating"
    finally:
        await watch.close()


async def test_events_record_what_the_kubelet_did(client: LocalClient, kubelet: Kubelet) -> None:
    watch = await run_pod(client, pod_spec("ev", sh("app", TERM_TRAPPING)))
    try:
        running = await watch.wait_status(lambda o: o["status"].get("phase") == "Running", "Running")
        await client.delete(PODS, "ev", NS)
        await watch.wait_deleted()
        await kubelet.recorder.flush()
        events = await events_of(client, "ev")
        by_reason = {e["reason"]: e for e in events}
        assert {"Pulled", "Created", "Started", "Killing"} <= set(by_reason)
        assert by_reason["Pulled"]["message"] == 'Container image "busybox:1.36" already present on machine'
        assert by_reason["Created"]["message"] == "Created container app"
        assert by_reason["Started"]["message"] == "Started container app"
        assert by_reason["Killing"]["message"] == "Stopping container app"
        for ev in by_reason.values():
            involved = ev["involvedObject"]
            assert (involved["kind"], involved["name"], involved["uid"]) == ("Pod", "ev", running["metadata"]["uid"])
            assert involved["fieldPath"] == "spec.containers{app}"
            assert ev["source"] == {"component": "kubelet", "host": NODE}
    finally:
        await watch.close()


# --------------------------------------------------------------------------- termination


async def wait_ready_line(kubelet: Kubelet, pod: Obj, container: str = "app") -> None:
    """Wait until the container printed ``ready`` (its TERM trap is in place)."""
    meta = pod["metadata"]
    path = kubelet.runtime.log_path(PodKey(meta["namespace"], meta["name"], meta["uid"]), container, 0)
    await async_wait_for(lambda: path.exists() and b" ready\n" in path.read_bytes(), what="the container to be ready")


async def test_term_trapping_container_is_deleted_well_inside_its_grace(client: LocalClient, kubelet: Kubelet) -> None:
    watch = await run_pod(client, pod_spec("trap", sh("app", TERM_TRAPPING), grace=30))
    try:
        running = await watch.wait_status(lambda o: o["status"].get("phase") == "Running", "Running")
        await wait_ready_line(kubelet, running)
        started = time.monotonic()
        await client.delete(PODS, "trap", NS)
        deleted_at = await watch.wait_deleted(timeout=20)
        assert deleted_at - started < 10  # far before the 30 s grace period ends
        updates = [o for t, o, _ in watch.events if t == "MODIFIED" and o["metadata"].get("deletionTimestamp")]
        unready = next(o for o in updates if condition(o, "Ready")["status"] == "False")
        assert "running" in container_state(unready)  # unready first, still running
        final = updates[-1]["status"]["containerStatuses"][0]
        assert final["state"]["terminated"]["exitCode"] == 0
        assert final["state"]["terminated"]["reason"] == "Completed" and final["ready"] is False
        assert pod_status_reason(updates[-1]) == "Terminating"
        assert kubelet.runtime.running_containers() == []
    finally:
        await watch.close()


async def test_term_ignoring_container_is_killed_after_its_grace(client: LocalClient, kubelet: Kubelet) -> None:
    watch = await run_pod(client, pod_spec("stubborn", sh("app", TERM_IGNORING), grace=30))
    try:
        running = await watch.wait_status(lambda o: o["status"].get("phase") == "Running", "Running")
        await wait_ready_line(kubelet, running)
        started = time.monotonic()
        await client.delete(PODS, "stubborn", NS, grace_period_seconds=2)
        deleted_at = await watch.wait_deleted(timeout=20)
        assert 1.8 <= deleted_at - started < 8
        last = [o for t, o, _ in watch.events if t == "MODIFIED"][-1]
        terminated = container_state(last)["terminated"]
        assert (terminated["exitCode"], terminated["reason"]) == (137, "Error")  # SIGKILL, as Kubernetes records it
        assert terminated["containerID"] == running["status"]["containerStatuses"][0]["containerID"]
    finally:
        await watch.close()


async def test_pod_removed_from_the_api_has_its_processes_stopped(client: LocalClient, kubelet: Kubelet) -> None:
    watch = await run_pod(client, pod_spec("forced", sh("app", "exec sleep 600")))
    try:
        await watch.wait_status(lambda o: o["status"].get("phase") == "Running", "Running")
        pids = [h.pid for h in kubelet.runtime.running_containers()]
        assert len(pids) == 1
        await client.delete(PODS, "forced", NS, grace_period_seconds=0)  # force: gone from the API at once
        await async_wait_for(lambda: not pid_alive(pids[0]), what="the process to stop")
        await async_wait_for(lambda: "default/forced" not in kubelet.workers, what="the worker to end")
    finally:
        await watch.close()


async def test_pod_deleted_while_waiting_for_its_network(client: LocalClient, kubelet: Kubelet) -> None:
    watch = PodWatch(client, "early")
    try:
        await client.create(PODS, pod_spec("early", sh("app", "exec sleep 600")), NS)
        await bind(client, "early")
        await watch.wait_status(is_creating, "ContainerCreating")  # no port annotation will come
        await client.delete(PODS, "early", NS)
        await watch.wait_deleted()
        final = [o for t, o, _ in watch.events if t == "MODIFIED"][-1]
        terminated = container_state(final)["terminated"]
        assert (terminated["reason"], terminated["exitCode"]) == ("ContainerStatusUnknown", 137)
        assert kubelet.runtime.running_containers() == []
    finally:
        await watch.close()


async def test_lifecycle_hooks(client: LocalClient, kubelet: Kubelet, tmp_path: Path) -> None:
    post, pre = tmp_path / "post-start", tmp_path / "pre-stop"
    lifecycle = {"postStart": {"exec": {"command": ["/bin/sh", "-c", f"echo $HOSTNAME > {post}"]}},
                 "preStop": {"exec": {"command": ["/bin/sh", "-c", f"echo stopping > {pre}"]}}}
    watch = await run_pod(client, pod_spec("hooks", sh("app", TERM_TRAPPING, lifecycle=lifecycle)))
    try:
        running = await watch.wait_status(lambda o: o["status"].get("phase") == "Running", "Running")
        assert post.read_text() == "hooks\n"  # ran before the container was reported running
        await wait_ready_line(kubelet, running)
        await client.delete(PODS, "hooks", NS)
        await watch.wait_deleted()
        assert pre.read_text() == "stopping\n"
    finally:
        await watch.close()


async def test_failing_post_start_hook_kills_the_container(client: LocalClient, kubelet: Kubelet) -> None:
    lifecycle = {"postStart": {"exec": {"command": ["/bin/sh", "-c", "echo no; exit 2"]}}}
    pod = pod_spec("hookfail", sh("app", "exec sleep 600", lifecycle=lifecycle), restart_policy="Never")
    watch = await run_pod(client, pod)
    try:
        failed = await watch.wait_status(lambda o: o["status"].get("phase") == "Failed", "Failed")
        assert container_state(failed)["terminated"]["reason"] == "Error"
        await kubelet.recorder.flush()
        hook_events = [e for e in await events_of(client, "hookfail") if e["reason"] == "FailedPostStartHook"]
        assert len(hook_events) == 1
        assert hook_events[0]["message"].startswith(
            'Exec lifecycle hook ([/bin/sh -c echo no; exit 2]) for Container "app" in Pod "hookfail_default(')
        assert "exited with 2: no" in hook_events[0]["message"]
    finally:
        await watch.close()


# --------------------------------------------------------------------------- exits and restarts


async def test_never_exit_zero_succeeds_and_stays(client: LocalClient, kubelet: Kubelet) -> None:
    watch = await run_pod(client, pod_spec("ok", sh("app", "echo done"), restart_policy="Never"))
    try:
        done = await watch.wait_status(lambda o: o["status"].get("phase") == "Succeeded", "Succeeded")
        terminated = container_state(done)["terminated"]
        assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
        assert terminated["startedAt"] <= terminated["finishedAt"] and terminated["containerID"]
        assert condition(done, "Ready")["reason"] == "PodCompleted"
        assert pod_status_reason(done) == "Completed"
        assert (await client.get(PODS, "ok", NS))["status"]["phase"] == "Succeeded"  # kept until deleted
        await client.delete(PODS, "ok", NS)
        await watch.wait_deleted()
    finally:
        await watch.close()


async def test_never_exit_three_fails(client: LocalClient, kubelet: Kubelet) -> None:
    watch = await run_pod(client, pod_spec("bad", sh("app", "exit 3"), restart_policy="Never"))
    try:
        failed = await watch.wait_status(lambda o: o["status"].get("phase") == "Failed", "Failed")
        terminated = container_state(failed)["terminated"]
        assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")
        assert condition(failed, "ContainersReady")["reason"] == "PodFailed"
        assert pod_status_reason(failed) == "Error"
        assert failed["status"]["containerStatuses"][0]["restartCount"] == 0
    finally:
        await watch.close()


async def test_on_failure_restarts_until_success(client: LocalClient, kubelet: Kubelet, tmp_path: Path) -> None:
    marker = tmp_path / "tried"
    script = f"if [ -e {marker} ]; then exit 0; fi; touch {marker}; exit 1"
    watch = await run_pod(client, pod_spec("retry", sh("app", script), restart_policy="OnFailure"))
    try:
        done = await watch.wait_status(lambda o: o["status"].get("phase") == "Succeeded", "Succeeded")
        cs = done["status"]["containerStatuses"][0]
        assert cs["restartCount"] == 1 and cs["lastState"]["terminated"]["exitCode"] == 1
    finally:
        await watch.close()


async def test_always_crash_loops_with_growing_restart_count(client: LocalClient, kubelet: Kubelet) -> None:
    watch = await run_pod(client, pod_spec("crash", sh("app", "echo boom; exit 1")))
    try:
        looping = await watch.wait_status(
            lambda o: container_state(o).get("waiting", {}).get("reason") == "CrashLoopBackOff", "CrashLoopBackOff")
        uid = looping["metadata"]["uid"]
        message = container_state(looping)["waiting"]["message"]
        assert re.fullmatch(rf"back-off \d+ms restarting failed container=app pod=crash_default\({uid}\)", message)
        cs = looping["status"]["containerStatuses"][0]
        assert cs["lastState"]["terminated"]["exitCode"] == 1 and cs["ready"] is False
        assert looping["status"]["phase"] == "Running" and condition(looping, "Ready")["status"] == "False"
        assert pod_status_reason(looping) == "CrashLoopBackOff"
        await watch.wait_status(lambda o: restart_count(o) >= 3, "3 restarts")
        counts = [restart_count(o) for o in watch.objects]
        assert counts == sorted(counts)  # never goes back
        backoffs = {container_state(o)["waiting"]["message"].split()[1] for o in watch.objects
                    if container_state(o).get("waiting", {}).get("reason") == "CrashLoopBackOff"}
        assert "200ms" in backoffs
    finally:
        await watch.close()


# --------------------------------------------------------------------------- environment and logs


async def test_env_and_logs_through_the_kubelet_server(client: LocalClient, kubelet: Kubelet) -> None:
    await client.create(CONFIGMAPS, {"metadata": {"name": "cfg"}, "data": {"greeting": "hello"}}, NS)
    env = [
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}}},
        {"name": "BOTH", "value": "$(GREETING)-$(POD)"},
    ]
    script = 'echo "$POD $POD_IP $NODE $BOTH"; echo line2; echo oops >&2'
    watch = await run_pod(client, pod_spec("logs", sh("app", script, env=env), restart_policy="Never"), index=9)
    url = f"{kubelet.server_url}/containerLogs/{NS}/logs"
    auth = {"Authorization": f"Bearer {kubelet.server_token}"}
    try:
        await watch.wait_status(lambda o: o["status"].get("phase") == "Succeeded", "Succeeded")
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/app", headers=auth) as resp:
                assert resp.status == 200 and resp.content_type == "text/plain"
                body = await resp.text()
            assert "logs 10.244.0.9 node-1 hello-logs\n" in body and "line2\n" in body and "oops\n" in body
            async with http.get(f"{url}/app?tailLines=1&follow=true", headers=auth) as resp:
                assert resp.status == 200 and len((await resp.text()).splitlines()) == 1
            async with http.get(f"{url}/app") as resp:
                assert resp.status == 401
            async with http.get(f"{url}/nope", headers=auth) as resp:
                status = await resp.json()
                assert resp.status == 404
                assert (status["kind"], status["reason"], status["code"]) == ("Status", "NotFound", 404)
                assert status["message"] == 'container "nope" in pod "logs" not found'
            async with http.get(f"{url}/app?previous=true", headers=auth) as resp:
                assert resp.status == 400
                assert (await resp.json())["message"] == 'previous terminated container "app" in pod "logs" not found'
            async with http.get(f"{kubelet.server_url}/containerLogs/{NS}/ghost/app", headers=auth) as resp:
                assert resp.status == 404
            async with http.get(f"{kubelet.server_url}/healthz") as resp:
                assert resp.status == 200 and await resp.text() == "ok"
    finally:
        await watch.close()


async def test_logs_follow_streams_and_waiting_container_is_a_bad_request(client: LocalClient,
                                                                          kubelet: Kubelet) -> None:
    script = "echo first; sleep 1; echo second"
    url = f"{kubelet.server_url}/containerLogs/{NS}/follow/app"
    auth = {"Authorization": f"Bearer {kubelet.server_token}"}
    watch = PodWatch(client, "follow")
    try:
        await client.create(PODS, pod_spec("follow", sh("app", script), restart_policy="Never"), NS)
        await bind(client, "follow")
        await watch.wait_status(is_creating, "ContainerCreating")
        async with aiohttp.ClientSession() as http:
            async with http.get(url, headers=auth) as resp:
                assert resp.status == 400
                assert (await resp.json())["message"] == (
                    'container "app" in pod "follow" is waiting to start: ContainerCreating')
            await annotate_port(client, "follow")
            await watch.wait_status(lambda o: "running" in container_state(o), "running")
            async with http.get(f"{url}?follow=true", headers=auth) as resp:
                assert resp.status == 200
                body = await resp.text()  # ends when the container exits
            assert body == "first\nsecond\n"
    finally:
        await watch.close()


# --------------------------------------------------------------------------- stop and restart


async def test_stop_leaves_no_process_running(client: LocalClient, tmp_path: Path) -> None:
    kl = new_kubelet(client, tmp_path / "kubelet")
    await kl.start()
    watch: PodWatch | None = None
    try:
        watch = await run_pod(client, pod_spec("sleepy", sh("a", "exec sleep 600"), sh("b", TERM_IGNORING)))
        await watch.wait_status(lambda o: o["status"].get("phase") == "Running", "Running")
        pids = [h.pid for h in kl.runtime.running_containers()]
        assert len(pids) == 2
    finally:
        await kl.stop()
        if watch is not None:
            await watch.close()
    assert not any(pid_alive(pid) for pid in pids)
    assert kl.runtime.running_containers() == []


async def test_restarted_kubelet_recovers_its_running_pods(client: LocalClient, tmp_path: Path) -> None:
    root = tmp_path / "kubelet"
    first = new_kubelet(client, root)
    await first.start()
    watch: PodWatch | None = None
    try:
        watch = await run_pod(client, pod_spec("survivor", sh("app", "echo hi; exec sleep 600")))
        before = await watch.wait_status(lambda o: o["status"].get("phase") == "Running", "Running")
    finally:
        await first.stop()
    second = new_kubelet(client, root)
    await second.start()
    try:
        assert watch is not None
        after = await watch.wait_status(
            lambda o: restart_count(o) == 1 and "running" in container_state(o),
            "the container to run again")
        cs = after["status"]["containerStatuses"][0]
        assert cs["lastState"]["terminated"]["reason"] == "ContainerStatusUnknown"
        assert cs["lastState"]["terminated"]["exitCode"] == 137
        assert cs["containerID"] != before["status"]["containerStatuses"][0]["containerID"]
        assert after["status"]["startTime"] == before["status"]["startTime"]
        assert after["status"]["podIP"] == before["status"]["podIP"]
        node = await client.get(NODES, NODE)
        assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == second.server.port
        await client.delete(PODS, "survivor", NS, grace_period_seconds=2)
        await watch.wait_deleted()
    finally:
        await second.stop()
        if watch is not None:
            await watch.close()


async def test_pod_of_another_node_is_left_alone(client: LocalClient, kubelet: Kubelet) -> None:
    await client.create(PODS, pod_spec("elsewhere", sh("app", "exec sleep 600")), NS)
    await bind(client, "elsewhere", "node-2")
    await client.create(PODS, pod_spec("here", sh("app", "exec sleep 600")), NS)
    watch = PodWatch(client, "here")
    try:
        await bind(client, "here")
        await watch.wait_status(is_creating, "ContainerCreating")
        other = await client.get(PODS, "elsewhere", NS)
        assert "containerStatuses" not in other["status"]
        assert "default/elsewhere" not in kubelet.workers
    finally:
        await watch.close()

