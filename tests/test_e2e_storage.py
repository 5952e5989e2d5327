"""Storage end to end, as a user drives it: the real kubectl against ``podlife up`` with real containers.

Every part runs: the admission plugins (default class, protection finalizers), the PV
controller, the scheduler's VolumeBinding, the node's local-path provisioner, the kubelet
mounting the directory into busybox containers, the protection, expander and ephemeral
volume controllers. Each test removes what it provisioned (claims, volumes, directories);
the module's cluster leaves no container or mount behind (``oci_cluster``).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podlife.machinery.storage import ANN_SELECTED_NODE, LOCAL_PATH_CLASS, LOCAL_PATH_DRIVER, PATH_ATTRIBUTE

from .cluster_harness import PodlifeProcess, wait_for
from .test_e2e_containers import busybox, delete, exec_out, oci_cluster, pod_manifest, wait_ready

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    with oci_cluster(tmp_path_factory.mktemp("storage") / "data") as proc:
        yield proc


def apply(cluster: PodlifeProcess, *objects: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(o) for o in objects))


def claim(name: str, size: str = "64Mi", storage_class: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": spec}


def claim_pod(name: str, claim_name: str, *command: str, **spec: Any) -> dict[str, Any]:
    return pod_manifest(name, busybox("c", *command, volumeMounts=[{"name": "d", "mountPath": "/d"}]),
                        volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": claim_name}}], **spec)


def get(cluster: PodlifeProcess, kind: str, name: str) -> dict[str, Any] | None:
    found = cluster.kubectl("get", kind, name, "-o", "json", check=False)
    return json.loads(found.stdout) if found.returncode == 0 else None


def phase(cluster: PodlifeProcess, kind: str, name: str) -> str:
    return ((get(cluster, kind, name) or {}).get("status") or {}).get("phase", "")


def events(cluster: PodlifeProcess, name: str) -> list[str]:
    items = cluster.kubectl_json("get", "events", f"--field-selector=involvedObject.name={name}")["items"]
    return [e["reason"] for e in items]


def volume_dir(pv: dict[str, Any]) -> Path:
    return Path(pv["spec"]["csi"]["volumeAttributes"][PATH_ATTRIBUTE])


def bound_volume(cluster: PodlifeProcess, claim_name: str) -> dict[str, Any]:
    wait_for(lambda: phase(cluster, "pvc", claim_name) == "Bound", 60, what=f"claim {claim_name} Bound")
    pv = get(cluster, "pv", cluster.kubectl_json("get", "pvc", claim_name)["spec"]["volumeName"])
    assert pv is not None
    return pv


def remove_claim(cluster: PodlifeProcess, *names: str) -> None:
    cluster.kubectl("delete", "pvc", *names, "--wait=true", "--timeout=60s", check=False, timeout=90)


def test_a_claim_on_the_default_class_keeps_its_data_for_the_next_pod(cluster: PodlifeProcess) -> None:
    node = cluster.kubectl_json("get", "nodes")["items"][0]["metadata"]["name"]
    apply(cluster, claim("data"))
    try:
        created = cluster.kubectl_json("get", "pvc", "data")
        assert created["spec"]["storageClassName"] == LOCAL_PATH_CLASS  # DefaultStorageClass admission
        assert "kubernetes.io/pvc-protection" in created["metadata"]["finalizers"]
        # WaitForFirstConsumer: nothing is provisioned before a pod is scheduled
        wait_for(lambda: "WaitForFirstConsumer" in events(cluster, "data"), 30, what="the WaitForFirstConsumer event")
        assert phase(cluster, "pvc", "data") == "Pending"
        assert ANN_SELECTED_NODE not in (created["metadata"].get("annotations") or {})

        apply(cluster, claim_pod("writer", "data", "sh", "-c", "echo kept > /d/f", restartPolicy="Never"))
        wait_for(lambda: phase(cluster, "pod", "writer") == "Succeeded", 90, what="the writer done")
        pv = bound_volume(cluster, "data")
        assert pv["spec"]["csi"]["driver"] == LOCAL_PATH_DRIVER
        assert pv["spec"]["claimRef"]["name"] == "data" and pv["status"]["phase"] == "Bound"
        terms = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
        assert terms[0]["matchExpressions"][0]["values"] == [node]
        assert cluster.kubectl_json("get", "pvc", "data")["metadata"]["annotations"][ANN_SELECTED_NODE] == node
        directory = volume_dir(pv)
        assert directory.is_relative_to(cluster.data_dir) and (directory / "f").read_text() == "kept\n"
        assert {"Provisioning", "ProvisioningSucceeded"} <= set(events(cluster, "data"))

        delete(cluster, "writer")
        apply(cluster, claim_pod("reader", "data", "cat", "/d/f", restartPolicy="Never"))
        wait_for(lambda: phase(cluster, "pod", "reader") == "Succeeded", 90, what="the reader done")
        assert cluster.kubectl("logs", "reader").stdout == "kept\n"
        delete(cluster, "reader")
        remove_claim(cluster, "data")
        # reclaim policy Delete (the class's): the volume and its directory go
        wait_for(lambda: get(cluster, "pv", pv["metadata"]["name"]) is None, 60, what="the volume deleted")
        assert not directory.exists()
    finally:
        delete(cluster, "writer", "reader")
        remove_claim(cluster, "data")


def test_a_claim_in_use_stays_until_its_pod_is_gone(cluster: PodlifeProcess) -> None:
    apply(cluster, claim("busy"), claim_pod("user", "busy"))
    try:
        wait_ready(cluster, "user")
        cluster.kubectl("delete", "pvc", "busy", "--wait=false")
        terminating = get(cluster, "pvc", "busy")
        assert terminating is not None and terminating["metadata"].get("deletionTimestamp")
        # the pod's own write waits on the claim being gone: it is there, and usable, while the pod runs
        assert exec_out(cluster, "user", "sh", "-c", "echo still > /d/f && cat /d/f").strip() == "still"
        assert get(cluster, "pvc", "busy") is not None
        delete(cluster, "user")
        wait_for(lambda: get(cluster, "pvc", "busy") is None, 60, what="the claim gone with its pod")
    finally:
        delete(cluster, "user")
        remove_claim(cluster, "busy")


def test_retain_leaves_the_volume_released_and_its_directory(cluster: PodlifeProcess) -> None:
    keep = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "keep"},
            "provisioner": LOCAL_PATH_DRIVER, "reclaimPolicy": "Retain", "volumeBindingMode": "WaitForFirstConsumer"}
    apply(cluster, keep, claim("kept", storage_class="keep"),
          claim_pod("keeper", "kept", "sh", "-c", "echo mine > /d/f", restartPolicy="Never"))
    retained: dict[str, Any] | None = None
    try:
        wait_for(lambda: phase(cluster, "pod", "keeper") == "Succeeded", 90, what="the keeper done")
        retained = pv = bound_volume(cluster, "kept")
        assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
        delete(cluster, "keeper")
        remove_claim(cluster, "kept")
        wait_for(lambda: phase(cluster, "pv", pv["metadata"]["name"]) == "Released", 60, what="the volume Released")
        assert (volume_dir(pv) / "f").read_text() == "mine\n"
    finally:
        delete(cluster, "keeper")
        remove_claim(cluster, "kept")
        if retained is not None:  # a retained volume is the admin's to remove, and so is its directory
            cluster.kubectl("delete", "pv", retained["metadata"]["name"], "--wait=true", "--timeout=60s",
                            check=False, timeout=90)
            shutil.rmtree(volume_dir(retained), ignore_errors=True)
        cluster.kubectl("delete", "storageclass", "keep", check=False)


def test_expanding_a_claim_grows_its_capacity(cluster: PodlifeProcess) -> None:
    apply(cluster, claim("grow", size="64Mi"), claim_pod("grower", "grow"))
    try:
        wait_ready(cluster, "grower")
        pv = bound_volume(cluster, "grow")
        cluster.kubectl("patch", "pvc", "grow", "-p", '{"spec":{"resources":{"requests":{"storage":"128Mi"}}}}')
        wait_for(lambda: (get(cluster, "pv", pv["metadata"]["name"]) or {})["spec"]["capacity"]["storage"] == "128Mi",
                 60, what="the volume grown")
        # the pod has it mounted: the kubelet finishes the node's part, the claim shows the new size
        wait_for(lambda: cluster.kubectl_json("get", "pvc", "grow")["status"]["capacity"]["storage"] == "128Mi", 90,
                 what="the claim's capacity")
        conditions = cluster.kubectl_json("get", "pvc", "grow")["status"].get("conditions") or []
        assert not [c for c in conditions if c["type"] == "FileSystemResizePending"]
        assert "FileSystemResizeSuccessful" in events(cluster, "grower")
    finally:
        delete(cluster, "grower")
        remove_claim(cluster, "grow")


def test_an_ephemeral_volume_comes_and_goes_with_its_pod(cluster: PodlifeProcess) -> None:
    template = {"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "16Mi"}}}}
    apply(cluster, pod_manifest("eph", busybox(volumeMounts=[{"name": "s", "mountPath": "/s"}]),
                                volumes=[{"name": "s", "ephemeral": {"volumeClaimTemplate": template}}]))
    try:
        wait_ready(cluster, "eph")
        pv = bound_volume(cluster, "eph-s")
        owner = cluster.kubectl_json("get", "pvc", "eph-s")["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["controller"]) == ("Pod", "eph", True)
        assert exec_out(cluster, "eph", "sh", "-c", "echo tmp > /s/f && cat /s/f").strip() == "tmp"
        delete(cluster, "eph")
        wait_for(lambda: get(cluster, "pvc", "eph-s") is None, 60, what="the claim gone with its pod")
        wait_for(lambda: get(cluster, "pv", pv["metadata"]["name"]) is None, 60, what="its volume deleted")
        assert not volume_dir(pv).exists()
    finally:
        delete(cluster, "eph")
        remove_claim(cluster, "eph-s")
