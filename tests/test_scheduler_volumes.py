"""The scheduler's VolumeBinding plugin end to end: a real ``podlife up`` on three simulated nodes, driven with kubectl.

The cluster runs every controller but the PersistentVolume ones, so nothing but the scheduler
touches claims and volumes: the tests play the PV controller and the provisioner themselves
(a claim is bound by naming its volume, annotating ``pv.kubernetes.io/bind-completed`` and
setting phase Bound through the status subresource). Covered: the PreFilter's messages (a
missing claim, a missing or foreign ephemeral claim, a claim being deleted, an unbound
Immediate claim, a ReadWriteOncePod claim in use) and the re-queue when the claim changes or
its user goes; a bound claim's volume pins the pod to its node (only that node is judged, the
others are the plugin's), or to none; WaitForFirstConsumer with a provisioner (``selected-node`` set, the pod
bound only once the claim is, a provisioner giving up makes the scheduler try again); a static
WaitForFirstConsumer volume found on its node (the scheduler writes its ``claimRef``), waited
for when none exists yet; and, in process with a short bind timeout, a claim never bound
times out (``SchedulerError``, retried) without holding a bind worker.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from podlife.client.base import EVENTS, PERSISTENT_VOLUME_CLAIMS, PODS, STORAGE_CLASSES
from podlife.client.base import NODES as NODE_RESOURCE
from podlife.scheduler import Scheduler
from tests.cluster_harness import PodlifeProcess, async_wait_for, require_tool, wait_for
from tests.in_process import InProcessApi
from tests.test_scheduler import make_node

Obj = dict[str, Any]

NODES = ["sim-node-0", "sim-node-1", "sim-node-2"]
PV_CONTROLLERS = ["persistentvolume-binder-controller", "persistentvolume-protection-controller",
                  "persistentvolumeclaim-protection-controller", "persistentvolume-expander-controller",
                  "ephemeral-volume-controller"]
PREEMPTION = "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.."
EXTERNAL_PROVISIONER = "example.com/external"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    proc = PodlifeProcess(tmp_path_factory.mktemp("scheduler-volumes") / "data", "--nodes", "0", "--sim-nodes", "3",
                          "--controllers", ",".join(["*", *(f"-{c}" for c in PV_CONTROLLERS)]),
                          kubectl=require_tool("kubectl"))
    try:
        proc.start()
        wait_for(lambda: _ready_nodes(proc) == NODES, 60, 0.2, what="three Ready simulated nodes")
        for name, mode, provisioner in (("immediate", "Immediate", EXTERNAL_PROVISIONER),
                                        ("wffc-external", "WaitForFirstConsumer", EXTERNAL_PROVISIONER),
                                        ("wffc-static", "WaitForFirstConsumer", "kubernetes.io/no-provisioner")):
            apply(proc, {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name},
                         "provisioner": provisioner, "volumeBindingMode": mode})
        yield proc
    finally:
        proc.stop()


def _ready_nodes(proc: PodlifeProcess) -> list[str]:
    nodes = proc.kubectl_json("get", "nodes")["items"]
    return sorted(n["metadata"]["name"] for n in nodes
                  if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions") or []))


# ---- objects -------------------------------------------------------------------------------------------


def apply(proc: PodlifeProcess, obj: Obj) -> None:
    proc.kubectl("create", "-f", "-", input=json.dumps(obj))


def claim(name: str, storage_class: str, *, size: str = "1Gi", **meta: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, **meta},
            "spec": {"storageClassName": storage_class, "accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": size}}}}


def volume(name: str, storage_class: str, node: str, *, size: str = "1Gi", claim_ref: Obj | None = None,
           label: str = "kubernetes.io/hostname") -> Obj:
    """A volume pinned to ``node`` (or, with another ``label``, to nodes with that label's value ``node``);
    never mounted: the tests' pods run on simulated nodes."""
    spec: Obj = {"storageClassName": storage_class, "accessModes": ["ReadWriteOnce"], "capacity": {"storage": size},
                 "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": f"/tmp/podlife-test-{name}"},
                 "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                     {"key": label, "operator": "In", "values": [node]}]}]}}}
    if claim_ref is not None:
        spec["claimRef"] = claim_ref
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name}, "spec": spec}


def pod(name: str, volumes: list[Obj]) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 0, "volumes": volumes,
                     "containers": [{"name": "main", "image": "nginx:1.25",
                                     "volumeMounts": [{"name": v["name"], "mountPath": f"/{v['name']}"}
                                                      for v in volumes]}]}}


def claim_volume(claim_name: str, volume_name: str = "data") -> Obj:
    return {"name": volume_name, "persistentVolumeClaim": {"claimName": claim_name}}


def get(proc: PodlifeProcess, kind: str, name: str) -> Obj:
    result: Obj = proc.kubectl_json("get", kind, name)
    return result


def bind_claim(proc: PodlifeProcess, claim_name: str, volume_name: str) -> None:
    """What the PV controller does once a volume is the claim's: name it, mark the binding complete, phase Bound."""
    proc.kubectl("patch", "pvc", claim_name, "--type=merge", "-p", json.dumps(
        {"metadata": {"annotations": {"pv.kubernetes.io/bind-completed": "yes"}}, "spec": {"volumeName": volume_name}}))
    proc.kubectl("patch", "pvc", claim_name, "--subresource=status", "--type=merge",
                 "-p", json.dumps({"status": {"phase": "Bound"}}))


def claim_ref_of(proc: PodlifeProcess, claim_name: str) -> Obj:
    meta = get(proc, "pvc", claim_name)["metadata"]
    return {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": "default", "name": claim_name,
            "uid": meta["uid"]}


def node_of(proc: PodlifeProcess, pod_name: str) -> str:
    return str(get(proc, "pod", pod_name)["spec"].get("nodeName") or "")


def wait_node(proc: PodlifeProcess, pod_name: str) -> str:
    return wait_for(lambda: node_of(proc, pod_name), 30, 0.1, what=f"pod {pod_name} bound")


def unschedulable_message(proc: PodlifeProcess, pod_name: str) -> str:
    conditions = get(proc, "pod", pod_name).get("status", {}).get("conditions") or []
    condition = next((c for c in conditions if c["type"] == "PodScheduled" and c["status"] == "False"), None)
    return str(condition["message"]) if condition else ""


def wait_message(proc: PodlifeProcess, pod_name: str, reason: str, preemption: str = PREEMPTION) -> str:
    expected = f"0/3 nodes are available: {reason}. {preemption}"
    return wait_for(lambda: expected if unschedulable_message(proc, pod_name) == expected else "", 30, 0.1,
                    what=f"pod {pod_name} unschedulable with {expected!r} "
                         f"(last: {unschedulable_message(proc, pod_name)!r})")


def events(proc: PodlifeProcess, pod_name: str, reason: str) -> list[str]:
    listed = proc.kubectl_json("get", "events", "--field-selector", f"involvedObject.name={pod_name},reason={reason}")
    return [e["message"] for e in listed["items"]]


# ---- PreFilter -------------------------------------------------------------------------------------------


def test_missing_claim_then_unbound_immediate_then_bound(sim: PodlifeProcess) -> None:
    apply(sim, pod("needs-claim", [claim_volume("later")]))
    wait_message(sim, "needs-claim", 'persistentvolumeclaim "later" not found')
    assert any('persistentvolumeclaim "later" not found' in m for m in events(sim, "needs-claim", "FailedScheduling"))

    apply(sim, claim("later", "immediate"))  # the claim's event re-queues the pod
    wait_message(sim, "needs-claim", "pod has unbound immediate PersistentVolumeClaims")

    apply(sim, volume("later-pv", "immediate", NODES[1], claim_ref=claim_ref_of(sim, "later")))
    bind_claim(sim, "later", "later-pv")
    assert wait_node(sim, "needs-claim") == NODES[1]


def test_claim_of_no_known_class_is_immediate(sim: PodlifeProcess) -> None:
    apply(sim, claim("classless", "no-such-class"))
    apply(sim, pod("classless-pod", [claim_volume("classless")]))
    wait_message(sim, "classless-pod", "pod has unbound immediate PersistentVolumeClaims")


def test_ephemeral_claims_missing_and_not_owned(sim: PodlifeProcess) -> None:
    template = {"volumeClaimTemplate": {"spec": {"storageClassName": "wffc-external", "accessModes": ["ReadWriteOnce"],
                                                 "resources": {"requests": {"storage": "1Gi"}}}}}
    apply(sim, pod("eph", [{"name": "scratch", "ephemeral": template}]))
    wait_message(sim, "eph", 'waiting for ephemeral volume controller to create the persistentvolumeclaim "eph-scratch"')
    apply(sim, claim("eph-scratch", "wffc-external"))  # made by someone else: no owner
    wait_message(sim, "eph", "PVC default/eph-scratch was not created for pod default/eph (pod is not owner)")


def test_claim_being_deleted(sim: PodlifeProcess) -> None:
    apply(sim, claim("going", "immediate", finalizers=["example.com/hold"]))
    sim.kubectl("delete", "pvc", "going", "--wait=false")
    try:
        apply(sim, pod("uses-going", [claim_volume("going")]))
        wait_message(sim, "uses-going", 'persistentvolumeclaim "going" is being deleted')
    finally:
        sim.kubectl("patch", "pvc", "going", "--type=merge", "-p", '{"metadata":{"finalizers":null}}')


# ---- Filter: bound claims ----------------------------------------------------------------------------


def test_bound_claims_pin_pods_to_their_volumes_nodes(sim: PodlifeProcess) -> None:
    # the reverse of the order LeastAllocated would spread three pods in
    targets = {"pinned-0": NODES[2], "pinned-1": NODES[0], "pinned-2": NODES[1]}
    for name, node in targets.items():
        bound_claim(sim, name, node)
    for name in targets:
        apply(sim, pod(name, [claim_volume(name)]))
    assert {name: wait_node(sim, name) for name in targets} == targets


def bound_claim(proc: PodlifeProcess, name: str, node: str, **volume_options: Any) -> None:
    apply(proc, claim(name, "immediate"))
    apply(proc, volume(f"{name}-pv", "immediate", node, claim_ref=claim_ref_of(proc, name), **volume_options))
    bind_claim(proc, name, f"{name}-pv")


def test_bound_claims_on_no_node(sim: PodlifeProcess) -> None:
    # pinned to a zone no node is in: the Filter rejects every node
    bound_claim(sim, "zoned", "zone-z", label="topology.kubernetes.io/zone")
    apply(sim, pod("zoned-pod", [claim_volume("zoned")]))
    wait_message(sim, "zoned-pod", "3 node(s) didn't match PersistentVolume's node affinity")
    # pinned to a hostname no node has: the PreFilter leaves no node to try
    bound_claim(sim, "nowhere", "gone-node")
    apply(sim, pod("nowhere-pod", [claim_volume("nowhere")]))
    wait_message(sim, "nowhere-pod", "3 node(s) didn't satisfy plugin(s) [VolumeBinding]")
    # two volumes pinned to different nodes: no node has both
    bound_claim(sim, "split-a", NODES[0])
    bound_claim(sim, "split-b", NODES[1])
    apply(sim, pod("split-pod", [claim_volume("split-a", "a"), claim_volume("split-b", "b")]))
    wait_message(sim, "split-pod", "node(s) didn't satisfy plugin VolumeBinding")


def test_pinned_node_without_room(sim: PodlifeProcess) -> None:
    """The one node a bound volume leaves is judged by every filter; the others are the plugin's."""
    bound_claim(sim, "crowded", NODES[0])
    big = pod("crowded-pod", [claim_volume("crowded")])
    big["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "1000"}}
    apply(sim, big)
    wait_message(sim, "crowded-pod", "1 Insufficient cpu, 2 node(s) didn't satisfy plugin(s) [VolumeBinding]",
                 "preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, "
                 "2 Preemption is not helpful for scheduling..")


# ---- WaitForFirstConsumer ------------------------------------------------------------------------------


def test_wait_for_first_consumer_provisioning(sim: PodlifeProcess) -> None:
    apply(sim, claim("late", "wffc-external"))
    assert "volume.kubernetes.io/selected-node" not in (get(sim, "pvc", "late")["metadata"].get("annotations") or {})
    apply(sim, pod("late-pod", [claim_volume("late")]))

    def selected() -> str:
        annotations = get(sim, "pvc", "late")["metadata"].get("annotations") or {}
        return str(annotations.get("volume.kubernetes.io/selected-node") or "")
    node = wait_for(selected, 30, 0.1, what="the claim's selected node")
    assert node in NODES
    assert node_of(sim, "late-pod") == ""  # waiting for its claim
    assert not events(sim, "late-pod", "Scheduled")

    # the provisioner: a volume on that node, bound to the claim; then the PV controller's part
    apply(sim, volume("late-pv", "wffc-external", node, claim_ref=claim_ref_of(sim, "late")))
    bind_claim(sim, "late", "late-pv")
    assert wait_node(sim, "late-pod") == node
    assert events(sim, "late-pod", "Scheduled") == [f"Successfully assigned default/late-pod to {node}"]


def test_provisioner_giving_up_is_retried(sim: PodlifeProcess) -> None:
    apply(sim, claim("flaky", "wffc-external"))
    apply(sim, pod("flaky-pod", [claim_volume("flaky")]))

    def selected() -> str:
        annotations = get(sim, "pvc", "flaky")["metadata"].get("annotations") or {}
        return str(annotations.get("volume.kubernetes.io/selected-node") or "")
    wait_for(selected, 30, 0.1, what="the claim's selected node")
    sim.kubectl("annotate", "pvc", "flaky", "volume.kubernetes.io/selected-node-")  # the provisioner failed
    expected = 'running PreBind plugin "VolumeBinding": binding volumes: provisioning failed for PVC "flaky"'
    wait_for(lambda: expected in events(sim, "flaky-pod", "FailedScheduling"), 30, 0.1, what="the PreBind failure event")
    node = wait_for(selected, 30, 0.1, what="the claim placed again")  # the retry, after the backoff
    assert node_of(sim, "flaky-pod") == ""
    apply(sim, volume("flaky-pv", "wffc-external", node, claim_ref=claim_ref_of(sim, "flaky")))
    bind_claim(sim, "flaky", "flaky-pv")
    assert wait_node(sim, "flaky-pod") == node


def test_static_wait_for_first_consumer_volume(sim: PodlifeProcess) -> None:
    apply(sim, claim("local", "wffc-static", size="2Gi"))
    apply(sim, pod("local-pod", [claim_volume("local")]))
    wait_message(sim, "local-pod", "3 node(s) didn't find available persistent volumes to bind")

    apply(sim, volume("local-small", "wffc-static", NODES[0], size="1Gi"))  # too small: still nowhere
    apply(sim, volume("local-pv", "wffc-static", NODES[2], size="5Gi"))
    for name in ("local-small", "local-pv"):  # the PV controller's part; the volume's event re-queues the pod
        sim.kubectl("patch", "pv", name, "--subresource=status", "--type=merge",
                    "-p", json.dumps({"status": {"phase": "Available"}}))

    def claimed() -> Obj:
        ref: Obj = get(sim, "pv", "local-pv")["spec"].get("claimRef") or {}
        return ref
    ref = wait_for(claimed, 30, 0.1, what="the scheduler's claimRef on the volume")
    assert (ref["namespace"], ref["name"], ref["uid"]) == ("default", "local", claim_ref_of(sim, "local")["uid"])
    assert get(sim, "pv", "local-pv")["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"] == "yes"
    assert not get(sim, "pv", "local-small")["spec"].get("claimRef")
    assert node_of(sim, "local-pod") == ""

    bind_claim(sim, "local", "local-pv")
    assert wait_node(sim, "local-pod") == NODES[2]


# ---- the binding task, in process (a short bindTimeout) -------------------------------------------


async def test_bind_timeout_retries_and_holds_no_bind_worker(local_api: InProcessApi) -> None:
    """A claim nobody provisions times out (the pod is retried, its claim placed again) while a pod
    without claims, created later, is bound at once: the wait holds none of the bind workers."""
    client = local_api.client
    for name in NODES:
        await client.create(NODE_RESOURCE, make_node(name))
    await client.create(STORAGE_CLASSES, {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                                          "metadata": {"name": "slow"}, "provisioner": EXTERNAL_PROVISIONER,
                                          "volumeBindingMode": "WaitForFirstConsumer"})
    await client.create(PERSISTENT_VOLUME_CLAIMS, claim("never", "slow"), "default")
    scheduler = Scheduler(client, bind_timeout=0.3, max_binds_in_flight=1, initial_backoff=0.05, max_backoff=0.1)
    task = asyncio.create_task(scheduler.run())
    try:
        await asyncio.wait_for(scheduler.wait_synced(), 5)
        await client.create(PODS, pod("waits", [claim_volume("never")]), "default")

        async def selected() -> str:
            found = await client.get(PERSISTENT_VOLUME_CLAIMS, "never", "default")
            return str((found["metadata"].get("annotations") or {}).get("volume.kubernetes.io/selected-node") or "")
        assert await async_wait_for(selected, 10, what="the claim placed") in NODES
        await client.create(PODS, pod("free", []), "default")

        async def bound(name: str) -> str:
            return str((await client.get(PODS, name, "default"))["spec"].get("nodeName") or "")
        assert await async_wait_for(lambda: bound("free"), 10, what="the pod without claims bound") in NODES

        async def timed_out() -> list[Obj]:
            listed = await client.list(EVENTS, "default", field_selector="involvedObject.name=waits,reason=FailedScheduling")
            return listed["items"]
        failures = await async_wait_for(timed_out, 10, what="the PreBind timeout")
        assert failures[0]["message"] == ('running PreBind plugin "VolumeBinding": '
                                          "binding volumes: context deadline exceeded")
        condition = next(c for c in (await client.get(PODS, "waits", "default"))["status"]["conditions"]
                         if c["type"] == "PodScheduled")
        assert (condition["status"], condition["reason"]) == ("False", "SchedulerError")
        assert await bound("waits") == ""
        await async_wait_for(lambda: scheduler.stats.bind_errors >= 2, 10, what="a second attempt timing out")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_read_write_once_pod_claim_in_use(sim: PodlifeProcess) -> None:
    solo = claim("solo", "immediate")
    solo["spec"]["accessModes"] = ["ReadWriteOncePod"]
    apply(sim, solo)
    apply(sim, volume("solo-pv", "immediate", NODES[1], claim_ref=claim_ref_of(sim, "solo")))
    bind_claim(sim, "solo", "solo-pv")
    apply(sim, pod("solo-first", [claim_volume("solo")]))
    assert wait_node(sim, "solo-first") == NODES[1]
    apply(sim, pod("solo-second", [claim_volume("solo")]))
    wait_message(sim, "solo-second",
                 "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode",
                 "preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod..")
    sim.kubectl("delete", "pod", "solo-first", "--wait=false")  # its going re-queues the second
    assert wait_node(sim, "solo-second") == NODES[1]
