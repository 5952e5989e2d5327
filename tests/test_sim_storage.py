"""Storage on simulated nodes (issue 15), through the real server and kubectl.

The simulator provisions its nodes' ``local-path`` volumes (API objects only), and a pod
with claims starts its containers only once every claim is Bound to a volume whose node
affinity admits the pod's node; until then it stays ContainerCreating with the kubelet's
``FailedMount`` event. A node expansion of a mounted claim is finished by the node.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from podlife.machinery.storage import pod_claims
from podlife.node.claim_mounts import claim_problem, unable_to_mount, volume_problem

from .cluster_harness import PodlifeProcess, require_tool, wait_for

pytestmark = pytest.mark.e2e

SIM_NODES = 3


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    proc = PodlifeProcess(tmp_path_factory.mktemp("sim-storage") / "data", "--nodes", "0",
                          "--sim-nodes", str(SIM_NODES), kubectl=require_tool("kubectl")).start()
    try:
        yield proc
    finally:
        proc.stop()


def create(cluster: PodlifeProcess, obj: dict) -> None:
    cluster.kubectl("create", "-f", "-", input=json.dumps(obj))


def claim(name: str, size: str = "1Gi", storage_class: str | None = None) -> dict:
    spec: dict = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": spec}


def pod(name: str, claim_name: str, node: str | None = None) -> dict:
    spec: dict = {"terminationGracePeriodSeconds": 1,
                  "containers": [{"name": "app", "image": "nginx:1.27",
                                  "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                  "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}]}
    if node is not None:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def pinned_volume(name: str, node: str, size: str = "1Gi") -> dict:
    """A statically made volume of no class, pinned to ``node`` (reclaim Retain, the default)."""
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
            "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                     "local": {"path": f"/var/lib/podlife-sim/static/{name}"},
                     "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                         {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}}}


def get(cluster: PodlifeProcess, kind: str, name: str) -> dict:
    return cluster.kubectl_json("get", kind, name)


def exists(cluster: PodlifeProcess, kind: str, name: str) -> bool:
    return cluster.kubectl("get", kind, name, "--ignore-not-found", "-o", "name").stdout.strip() != ""


def phase(cluster: PodlifeProcess, kind: str, name: str) -> str:
    return str(get(cluster, kind, name).get("status", {}).get("phase"))


def waiting_reason(cluster: PodlifeProcess, name: str) -> str:
    statuses = get(cluster, "pod", name).get("status", {}).get("containerStatuses") or [{}]
    return str((statuses[0].get("state") or {}).get("waiting", {}).get("reason"))


def events(cluster: PodlifeProcess, name: str, reason: str, kind: str = "Pod") -> list[dict]:
    listed = cluster.kubectl_json("get", "events", "--field-selector",
                                  f"involvedObject.name={name},involvedObject.kind={kind},reason={reason}")
    return list(listed["items"])


def delete(cluster: PodlifeProcess, *what: str) -> None:
    cluster.kubectl("delete", *what, "--ignore-not-found", "--wait=true", timeout=60)


# ---------------------------------------------------------------------- through the cluster


def test_claim_on_default_class_is_provisioned_on_the_pods_node_and_reclaimed(cluster: PodlifeProcess) -> None:
    create(cluster, claim("web-data"))
    create(cluster, pod("web", "web-data"))
    wait_for(lambda: phase(cluster, "pod", "web") == "Running", 60, what="web Running")
    pvc = get(cluster, "pvc", "web-data")
    assert pvc["status"]["phase"] == "Bound" and pvc["spec"]["storageClassName"] == "local-path"
    node = get(cluster, "pod", "web")["spec"]["nodeName"]
    pv = get(cluster, "pv", pvc["spec"]["volumeName"])
    terms = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0]["values"] == [node], pv
    assert pv["spec"]["csi"]["driver"] == "local-path.podlife.io" and pv["spec"]["claimRef"]["name"] == "web-data"
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == node
    csinode = get(cluster, "csinode", node)
    assert [d["name"] for d in csinode["spec"]["drivers"]] == ["local-path.podlife.io"]
    assert not events(cluster, "web", "FailedMount")  # bound before it was scheduled: mounted at once

    delete(cluster, "pod", "web")
    delete(cluster, "pvc", "web-data")
    wait_for(lambda: not exists(cluster, "pv", pv["metadata"]["name"]), 60, what="the PV reclaimed (Delete)")


def test_pod_waits_for_its_claim_and_mounts_only_where_the_volume_is(cluster: PodlifeProcess) -> None:
    create(cluster, claim("pinned-data", storage_class=""))
    create(cluster, pod("pinned-a", "pinned-data", node="sim-node-0"))
    try:
        wait_for(lambda: events(cluster, "pinned-a", "FailedMount"), 30, what="FailedMount for the unbound claim")
        event = events(cluster, "pinned-a", "FailedMount")[0]
        assert event["type"] == "Warning" and event["source"] == {"component": "kubelet", "host": "sim-node-0"}
        assert event["message"] == ("Unable to attach or mount volumes: unmounted volumes=[data], unattached "
                                    "volumes=[], failed to process volumes=[data]: error processing PVC "
                                    "default/pinned-data: PVC is not bound")
        assert phase(cluster, "pod", "pinned-a") == "Pending" and waiting_reason(cluster, "pinned-a") == "ContainerCreating"

        create(cluster, pinned_volume("pinned-pv", "sim-node-0"))  # the binder binds it; the node retries
        wait_for(lambda: phase(cluster, "pod", "pinned-a") == "Running", 60, what="pinned-a Running once bound")
        assert get(cluster, "pvc", "pinned-data")["spec"]["volumeName"] == "pinned-pv"

        create(cluster, pod("pinned-b", "pinned-data", node="sim-node-1"))  # the volume is not on sim-node-1
        wait_for(lambda: events(cluster, "pinned-b", "FailedMount"), 30, what="FailedMount for the node affinity")
        assert events(cluster, "pinned-b", "FailedMount")[0]["message"] == (
            'MountVolume.NodeAffinity check failed for volume "pinned-pv" : no matching NodeSelectorTerms')
        assert phase(cluster, "pod", "pinned-b") == "Pending" and waiting_reason(cluster, "pinned-b") == "ContainerCreating"
    finally:
        delete(cluster, "pod", "pinned-a", "pinned-b")
        delete(cluster, "pvc", "pinned-data")
        delete(cluster, "pv", "pinned-pv")


def test_node_expansion_of_a_mounted_claim(cluster: PodlifeProcess) -> None:
    create(cluster, claim("grow-data"))
    create(cluster, pod("grow", "grow-data"))
    try:
        wait_for(lambda: phase(cluster, "pod", "grow") == "Running", 60, what="grow Running")
        assert get(cluster, "pvc", "grow-data")["status"]["capacity"]["storage"] == "1Gi"
        cluster.kubectl("patch", "pvc", "grow-data", "--type=merge",
                        "-p", '{"spec":{"resources":{"requests":{"storage":"2Gi"}}}}')

        def grown() -> bool:
            status = get(cluster, "pvc", "grow-data")["status"]
            return (status.get("capacity", {}).get("storage") == "2Gi"
                    and not any(c["type"] == "FileSystemResizePending" for c in status.get("conditions") or []))

        wait_for(grown, 60, what="the claim's capacity grown by the node")
        node = get(cluster, "pod", "grow")["spec"]["nodeName"]
        volume = get(cluster, "pvc", "grow-data")["spec"]["volumeName"]
        assert get(cluster, "pv", volume)["spec"]["capacity"]["storage"] == "2Gi"
        message = f'MountVolume.NodeExpandVolume succeeded for volume "{volume}" {node}'
        wait_for(lambda: events(cluster, "grow", "FileSystemResizeSuccessful"), 30, what="the pod's resize event")
        assert events(cluster, "grow", "FileSystemResizeSuccessful")[0]["message"] == message
        assert phase(cluster, "pod", "grow") == "Running"
    finally:
        delete(cluster, "pod", "grow")
        delete(cluster, "pvc", "grow-data")


def test_ephemeral_volume_comes_and_goes_with_its_pod(cluster: PodlifeProcess) -> None:
    template = {"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
    scratch = pod("scratch", "unused")
    scratch["spec"]["volumes"] = [{"name": "data", "ephemeral": {"volumeClaimTemplate": template}}]
    create(cluster, scratch)
    try:
        wait_for(lambda: phase(cluster, "pod", "scratch") == "Running", 60, what="scratch Running")
        pvc = get(cluster, "pvc", "scratch-data")
        assert pvc["status"]["phase"] == "Bound"
        assert pvc["metadata"]["ownerReferences"][0]["uid"] == get(cluster, "pod", "scratch")["metadata"]["uid"]
        volume = pvc["spec"]["volumeName"]
    finally:
        delete(cluster, "pod", "scratch")
    wait_for(lambda: not exists(cluster, "pvc", "scratch-data"), 60, what="the claim gone with its pod")
    wait_for(lambda: not exists(cluster, "pv", volume), 60, what="its volume reclaimed")


# ---------------------------------------------------------------------- the kubelet's words (pure)


def test_claim_volumes_are_the_persistent_and_ephemeral_ones_in_order() -> None:
    spec = {"metadata": {"name": "p"}, "spec": {"volumes": [
        {"name": "cfg", "configMap": {"name": "c"}},
        {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
        {"name": "data", "persistentVolumeClaim": {"claimName": "d", "readOnly": True}}]}}
    assert pod_claims(spec) == (("scratch", "p-scratch", True, False), ("data", "d", False, True))
    assert pod_claims({"metadata": {"name": "q"}, "spec": {"volumes": [{"name": "x", "emptyDir": {}}]}}) == ()


def test_claim_and_volume_problems_are_worded_as_the_kubelets() -> None:
    the_pod = {"metadata": {"name": "p", "namespace": "ns", "uid": "pod-uid"}}
    bound = {"metadata": {"name": "c", "namespace": "ns", "uid": "claim-uid"},
             "spec": {"volumeName": "pv-1"}, "status": {"phase": "Bound"}}
    assert claim_problem(the_pod, False, 'persistentvolumeclaims "c" not found', "c") == (
        'error processing PVC ns/c: failed to fetch PVC from API server: persistentvolumeclaims "c" not found')
    assert claim_problem(the_pod, False, {**bound, "status": {"phase": "Pending"}}, "c") == (
        "error processing PVC ns/c: PVC is not bound")
    assert claim_problem(the_pod, False, bound, "c") is None
    assert claim_problem(the_pod, True, bound, "c") == "PVC ns/c was not created for pod ns/p (pod is not owner)"
    owned = {**bound, "metadata": {**bound["metadata"], "ownerReferences": [{"uid": "pod-uid", "controller": True}]}}
    assert claim_problem(the_pod, True, owned, "c") is None
    assert volume_problem(bound, {"spec": {"claimRef": {"uid": "claim-uid"}}}) is None
    assert volume_problem(bound, {"spec": {}}) == (
        "error processing PVC ns/c: found PV object pv-1 but it has a nil pv.Spec.ClaimRef indicating it is not yet "
        "bound to the claim")
    assert unable_to_mount(["b", "a"], ["a"], ["e1", "e2"]) == (
        "Unable to attach or mount volumes: unmounted volumes=[a b], unattached volumes=[], "
        "failed to process volumes=[a]: e1; e2")


def test_a_stateful_set_gets_a_volume_per_pod_that_stays_with_its_name(cluster: PodlifeProcess) -> None:
    """``volumeClaimTemplates`` on the default class: each pod's claim is provisioned on that pod's node, and
    a pod deleted and made again by the controller comes back to its claim -- so to its volume's node."""
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
           "spec": {"serviceName": "db", "replicas": 2, "selector": {"matchLabels": {"app": "db"}},
                    "template": {"metadata": {"labels": {"app": "db"}},
                                 "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                                     {"name": "db", "image": "nginx:1.27",
                                      "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}},
                    "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}}
    create(cluster, sts)
    try:
        cluster.kubectl("rollout", "status", "statefulset/db", "--timeout=60s", timeout=90)

        def placement() -> dict[str, tuple[str, str]]:
            """pod -> (its node, the node its claim's volume is pinned to)."""
            found = {}
            for index in range(2):
                pod_obj = cluster.kubectl_json("get", "pod", f"db-{index}")
                claim_obj = cluster.kubectl_json("get", "pvc", f"data-db-{index}")
                assert claim_obj["status"]["phase"] == "Bound"
                pv = cluster.kubectl_json("get", "pv", claim_obj["spec"]["volumeName"])
                terms = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
                found[f"db-{index}"] = (pod_obj["spec"]["nodeName"], terms[0]["matchExpressions"][0]["values"][0])
            return found

        before = placement()
        assert all(node == pinned for node, pinned in before.values())
        volume = cluster.kubectl_json("get", "pvc", "data-db-0")["spec"]["volumeName"]
        old_uid = cluster.kubectl_json("get", "pod", "db-0")["metadata"]["uid"]
        cluster.kubectl("delete", "pod", "db-0", "--wait=true", "--timeout=60s", timeout=90)

        def made_again() -> bool:
            found = cluster.kubectl("get", "pod", "db-0", "-o", "json", check=False)
            if found.returncode != 0:
                return False
            again = json.loads(found.stdout)
            return again["metadata"]["uid"] != old_uid and again.get("status", {}).get("phase") == "Running"

        wait_for(made_again, 60, what="db-0 made again and Running")
        assert cluster.kubectl_json("get", "pvc", "data-db-0")["spec"]["volumeName"] == volume
        assert placement()["db-0"] == before["db-0"]  # back on its volume's node
    finally:
        cluster.kubectl("delete", "statefulset", "db", "--wait=true", "--timeout=60s", check=False, timeout=90)
        cluster.kubectl("delete", "pvc", "data-db-0", "data-db-1", "--wait=true", "--timeout=60s", check=False,
                        timeout=90)


def test_a_restarted_simulator_keeps_its_pods_claims_mounted(tmp_path_factory: pytest.TempPathFactory) -> None:
    """After ``podlife up`` restarts on its data dir, a running simulated pod's claim is still in use on its
    node: no FailedMount, and an expansion of it is finished by that node."""
    proc = PodlifeProcess(tmp_path_factory.mktemp("sim-storage-restart") / "data", "--nodes", "0",
                          "--sim-nodes", "1", kubectl=require_tool("kubectl")).start()
    try:
        create(proc, claim("kept-data"))
        create(proc, pod("kept", "kept-data"))
        wait_for(lambda: phase(proc, "pod", "kept") == "Running", 60, what="kept Running")
        uid = get(proc, "pod", "kept")["metadata"]["uid"]
        proc.stop()
        proc.start()
        proc.kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=60s", timeout=90)
        assert get(proc, "pod", "kept")["metadata"]["uid"] == uid and phase(proc, "pod", "kept") == "Running"
        proc.kubectl("patch", "pvc", "kept-data", "--type=merge",
                     "-p", '{"spec":{"resources":{"requests":{"storage":"2Gi"}}}}')
        wait_for(lambda: get(proc, "pvc", "kept-data")["status"].get("capacity", {}).get("storage") == "2Gi", 60,
                 what="the expansion finished by the pod's node after the restart")
        wait_for(lambda: events(proc, "kept", "FileSystemResizeSuccessful"), 30, what="the pod's resize event")
        assert not events(proc, "kept", "FailedMount")
    finally:
        proc.stop()
