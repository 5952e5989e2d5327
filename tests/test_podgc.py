"""The pod garbage collector (issue 14): pure decisions, the controller on an in-process API, a real cluster.

In process (the real API and the real controller, with a short period and quarantine):
orphaned pods -- terminating ones too -- are failed with ``DisruptionTarget``/``DeletionByPodGC``
and force-deleted only after the quarantine, terminating pods on an out-of-service node
are force-deleted. End to end: with ``--terminated-pod-gc-threshold=2`` the oldest completed
pods go, and a pod of a deleted simulated Node is removed.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import pytest

from podlife.client.base import NODES, PODS, Client
from podlife.client.shared_informers import SharedInformers
from podlife.controllers.manager import ControllerContext
from podlife.controllers.options import ControllerManagerOptions
from podlife.controllers.podgc import (
    ORPHAN_CONDITION, PodGCController, failed_patch, gc_reason, is_terminated, missing_nodes, terminated_to_delete,
)
from podlife.machinery.errors import ApiError

from .cluster_harness import PodlifeProcess, async_wait_for, require_tool, wait_for
from .in_process import InProcessApi


def pod(name: str, *, phase: str = "Running", created: str = "2026-01-01T00:00:00Z", node: str = "n",
        deleting: bool = False, reason: str | None = None) -> dict:
    meta: dict = {"name": name, "namespace": "default", "creationTimestamp": created}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:01:00Z"
    status: dict = {"phase": phase}
    if reason:
        status["reason"] = reason
    return {"metadata": meta, "spec": {"nodeName": node}, "status": status}


def node(name: str, ready: str = "True", taints: list | None = None) -> dict:
    return {"metadata": {"name": name}, "spec": {"taints": taints or []},
            "status": {"conditions": [{"type": "Ready", "status": ready}]}}


# --------------------------------------------------------------------------- pure


def test_terminated_pods_beyond_the_threshold_go_evicted_then_oldest_first() -> None:
    pods = [pod("c", phase="Succeeded", created="2026-01-01T00:00:03Z"),
            pod("a", phase="Failed", created="2026-01-01T00:00:01Z"),
            pod("b", phase="Succeeded", created="2026-01-01T00:00:01Z"),
            pod("e", phase="Failed", created="2026-01-01T00:00:09Z", reason="Evicted")]
    assert [p["metadata"]["name"] for p in terminated_to_delete(pods, 2)] == ["e", "a"]
    assert terminated_to_delete(pods, 4) == [] and terminated_to_delete(pods, 0) == []
    assert is_terminated(pod("x", phase="Succeeded")) and not is_terminated(pod("x", phase="Unknown"))
    assert not is_terminated(pod("x", phase="Pending"))


def test_which_terminating_pods_go() -> None:
    nodes = {"ok": node("ok"), "oos": node("oos", "False", [{"key": "node.kubernetes.io/out-of-service", "effect": "NoExecute"}]),
             "down": node("down", "Unknown")}
    assert gc_reason(pod("p", node="", deleting=True), nodes) == "unscheduled"
    assert gc_reason(pod("p", node="oos", deleting=True), nodes) == "out-of-service"
    assert gc_reason(pod("p", node="down", deleting=True), nodes) is None  # no out-of-service taint: wait
    assert gc_reason(pod("p", node="ok", deleting=True), nodes) is None
    assert gc_reason(pod("p", node="oos"), nodes) is None  # not terminating
    assert missing_nodes(["ok", "gone", ""], nodes) == {"gone"}


def test_pods_are_failed_before_they_are_force_deleted() -> None:
    assert failed_patch(pod("p"), ORPHAN_CONDITION, "t") == {"status": {"phase": "Failed", "conditions": [
        {**ORPHAN_CONDITION, "lastTransitionTime": "t"}]}}
    assert failed_patch(pod("p"), None, "t") == {"status": {"phase": "Failed"}}
    assert failed_patch(pod("p", phase="Succeeded"), ORPHAN_CONDITION, "t") is None


# --------------------------------------------------------------------------- in process


async def _create_node(client: Client, name: str, ready: str = "True", taints: list | None = None) -> None:
    await client.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                                "spec": {"taints": taints or []}})
    now = "2026-01-01T00:00:00Z"
    await client.patch(NODES, name, {"status": {"conditions": [
        {"type": "Ready", "status": ready, "reason": "r", "lastHeartbeatTime": now, "lastTransitionTime": now}]}},
        subresource="status")


async def _create_pod(client: Client, name: str, node_name: str) -> None:
    await client.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
                               "spec": {"nodeName": node_name, "containers": [{"name": "c", "image": "busybox"}]}},
                        "default")


async def _exists(client: Client, name: str) -> dict | None:
    try:
        return await client.get(PODS, name, "default")
    except ApiError as exc:
        if exc.code == 404:
            return None
        raise


@pytest.fixture
async def podgc(local_api: InProcessApi) -> AsyncIterator[tuple[Client, PodGCController]]:
    client = local_api.client
    informers = SharedInformers(client)
    context = ControllerContext(client, informers, ControllerManagerOptions(terminated_pod_gc_threshold=100),
                                "pod-garbage-collector")
    controller = PodGCController(context, period=0.1, quarantine=1.0)
    tasks = [asyncio.ensure_future(informers.run()), asyncio.ensure_future(controller.run())]
    try:
        yield client, controller
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_orphans_are_failed_and_force_deleted_after_the_quarantine(podgc: tuple[Client, PodGCController]) -> None:
    client, controller = podgc
    deleted: list[dict] = []
    await _create_node(client, "real")
    await _create_pod(client, "kept", "real")
    await _create_pod(client, "orphan", "ghost")
    await _create_pod(client, "orphan-terminating", "ghost")
    await client.delete(PODS, "orphan-terminating", "default")  # no kubelet: it would stay Terminating
    assert (await client.get(PODS, "orphan-terminating", "default"))["metadata"].get("deletionTimestamp")
    await async_wait_for(lambda: "ghost" in controller.quarantine, what="the missing node quarantined")
    assert await _exists(client, "orphan") is not None  # not before the quarantine is over

    watched = asyncio.ensure_future(_collect_deleted(client, deleted))
    try:
        async def both_gone() -> bool:
            return await _gone(client, "orphan") and await _gone(client, "orphan-terminating")

        await async_wait_for(cast(Any, both_gone), timeout=20, what="the orphans deleted")
    finally:
        watched.cancel()
    assert await _exists(client, "kept") is not None
    last = {p["metadata"]["name"]: p for p in deleted}
    for name in ("orphan", "orphan-terminating"):
        status = last[name]["status"]
        assert status["phase"] == "Failed"
        condition = next(c for c in status["conditions"] if c["type"] == "DisruptionTarget")
        assert (condition["reason"], condition["message"]) == ("DeletionByPodGC", "PodGC: node no longer exists")


async def _collect_deleted(client: Client, into: list[dict]) -> None:
    async for event in client.watch(PODS, "default"):
        if event.type == "DELETED":
            into.append(event.object)


async def test_terminating_pods_on_an_out_of_service_node_are_force_deleted(podgc: tuple[Client, PodGCController]) -> None:
    client, _ = podgc
    await _create_node(client, "down", "False", [{"key": "node.kubernetes.io/out-of-service", "effect": "NoExecute"}])
    await _create_node(client, "lost", "Unknown")
    for name, node_name in (("on-oos", "down"), ("on-lost", "lost")):
        await _create_pod(client, name, node_name)
        await client.delete(PODS, name, "default")
    async def gone() -> bool:
        return await _gone(client, "on-oos")

    await async_wait_for(cast(Any, gone), timeout=20, what="the pod on the out-of-service node deleted")
    pod_left = await _exists(client, "on-lost")  # without the taint, it waits for its node
    assert pod_left is not None and pod_left["metadata"].get("deletionTimestamp")


async def _gone(client: Client, name: str) -> bool:
    return await _exists(client, name) is None


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def gc_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    proc = PodlifeProcess(tmp_path_factory.mktemp("podgc") / "data", "--nodes", "0", "--sim-nodes", "2",
                          "--terminated-pod-gc-threshold=2", kubectl=require_tool("kubectl")).start()
    try:
        yield proc
    finally:
        proc.stop()


def pod_names(cluster: PodlifeProcess) -> set[str]:
    return {p["metadata"]["name"] for p in cluster.kubectl_json("get", "pods")["items"]}


def phase(cluster: PodlifeProcess, name: str) -> str:
    return str(cluster.kubectl_json("get", "pod", name).get("status", {}).get("phase"))


@pytest.mark.e2e
def test_terminated_pods_beyond_the_threshold_and_orphans_are_removed(gc_cluster: PodlifeProcess) -> None:
    orphan = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "orphan"},
              "spec": {"nodeSelector": {"kubernetes.io/hostname": "sim-node-1"},
                       "containers": [{"name": "app", "image": "nginx:1.27"}]}}
    gc_cluster.kubectl("create", "-f", "-", input=json.dumps(orphan))
    wait_for(lambda: phase(gc_cluster, "orphan") == "Running", what="the pod running")
    gc_cluster.kubectl("delete", "node", "sim-node-1")

    for i in range(5):  # creation timestamps have one-second resolution: one a second, so the order is known
        done = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": f"done-{i}", "annotations": {"podlife.io/sim-duration": "0s"}},
                "spec": {"restartPolicy": "Never", "nodeSelector": {"kubernetes.io/hostname": "sim-node-0"},
                         "containers": [{"name": "app", "image": "busybox"}]}}
        gc_cluster.kubectl("create", "-f", "-", input=json.dumps(done))
        wait_for(functools.partial(_has_phase, gc_cluster, f"done-{i}", "Succeeded"), what=f"done-{i} completed")
        if i < 4:
            created = gc_cluster.kubectl_json("get", "pod", f"done-{i}")["metadata"]["creationTimestamp"]
            wait_for(functools.partial(_later_than, created), interval=0.1,
                     what="the next second")  # the server runs on this host: same clock
    wait_for(lambda: {n for n in pod_names(gc_cluster) if n.startswith("done-")} == {"done-3", "done-4"},
             timeout=60, what="the three oldest completed pods collected")
    wait_for(lambda: "orphan" not in pod_names(gc_cluster), timeout=90, what="the orphaned pod removed")



def _has_phase(cluster: PodlifeProcess, name: str, wanted: str) -> bool:
    return phase(cluster, name) == wanted


def _later_than(timestamp: str) -> bool:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) > timestamp
