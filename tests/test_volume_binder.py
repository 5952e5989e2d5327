"""The PV controller and the protection controllers end to end: a real ``podlife up``, driven with kubectl.

Only the storage controllers (and the service-account ones, so pods can be created) run,
with no node: volumes are pre-created hostPath PVs nobody mounts. Binding by label
selector, by ``volumeName``, smallest fit; an access-mode mismatch (``VolumeMismatch``);
a class with a provisioner (``ExternalProvisioning`` and the provisioner annotations) and a
missing class; reclaim Retain (Released) and Delete without a provisioner (Failed,
``VolumeFailedDelete``); the claim lost with its volume; a claim in use by a pod kept until
the pod is gone; a Bound volume kept until its claim is gone; a retroactive default class.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster_harness import PodlifeProcess, require_tool, wait_for

Obj = dict[str, Any]

CONTROLLERS = ("serviceaccount-token-controller,serviceaccount-controller,persistentvolume-binder-controller,"
               "persistentvolume-protection-controller,persistentvolumeclaim-protection-controller")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    proc = PodlifeProcess(tmp_path_factory.mktemp("pvbinder") / "data", "--nodes", "0", "--controllers", CONTROLLERS,
                          kubectl=require_tool("kubectl"))
    try:
        yield proc.start()
    finally:
        proc.stop()


def apply(proc: PodlifeProcess, *objs: Obj) -> None:
    proc.kubectl("create", "-f", "-", input="\n---\n".join(json.dumps(obj) for obj in objs))


def pv(name: str, size: str, *, modes: tuple[str, ...] = ("ReadWriteOnce",), policy: str = "Retain",
       labels: dict[str, str] | None = None, class_name: str = "", claim_ref: Obj | None = None) -> Obj:
    spec: Obj = {"capacity": {"storage": size}, "accessModes": list(modes), "persistentVolumeReclaimPolicy": policy,
                 "hostPath": {"path": f"/tmp/podlife-test-pv/{name}"}}
    if class_name:
        spec["storageClassName"] = class_name
    if claim_ref is not None:
        spec["claimRef"] = claim_ref
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name, "labels": labels or {}},
            "spec": spec}


def pvc(name: str, size: str, *, modes: tuple[str, ...] = ("ReadWriteOnce",), selector: Obj | None = None,
        volume_name: str = "", class_name: str | None = "") -> Obj:
    spec: Obj = {"accessModes": list(modes), "resources": {"requests": {"storage": size}}}
    if class_name is not None:
        spec["storageClassName"] = class_name
    if selector is not None:
        spec["selector"] = selector
    if volume_name:
        spec["volumeName"] = volume_name
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": spec}


def get(proc: PodlifeProcess, kind: str, name: str) -> Obj | None:
    result = proc.kubectl("get", kind, name, "-o", "json", check=False)
    if result.returncode != 0:
        assert "NotFound" in result.stderr, result.stderr
        return None
    obj: Obj = json.loads(result.stdout)
    return obj


def phase(proc: PodlifeProcess, kind: str, name: str) -> str:
    obj = get(proc, kind, name)
    return str(((obj or {}).get("status") or {}).get("phase") or "")


def wait_phase(proc: PodlifeProcess, kind: str, name: str, wanted: str, timeout: float = 20) -> Obj:
    def reached() -> Obj:
        obj = get(proc, kind, name)
        return obj if obj and (obj.get("status") or {}).get("phase") == wanted else {}
    return wait_for(reached, timeout, 0.1, what=f"{kind} {name} {wanted}")


def events_of(proc: PodlifeProcess, kind: str, name: str) -> list[tuple[str, str, str]]:
    listed = proc.kubectl_json("get", "events", "-A", "--field-selector",
                               f"involvedObject.kind={kind},involvedObject.name={name}")
    return [(e["type"], e["reason"], e["message"]) for e in listed["items"]]


def wait_event(proc: PodlifeProcess, kind: str, name: str, reason: str) -> tuple[str, str, str]:
    def seen() -> tuple[str, str, str] | tuple[()]:
        return next((e for e in events_of(proc, kind, name) if e[1] == reason), ())
    event = wait_for(seen, 20, 0.2, what=f"{reason} event on {kind} {name}")
    assert event
    return event


def delete(proc: PodlifeProcess, kind: str, *names: str) -> None:
    proc.kubectl("delete", kind, *names, "--ignore-not-found", "--wait=false")


def gone(proc: PodlifeProcess, kind: str, name: str, timeout: float = 20) -> None:
    wait_for(lambda: get(proc, kind, name) is None, timeout, 0.1, what=f"{kind} {name} gone")


def test_binds_by_label_selector(cluster: PodlifeProcess) -> None:
    apply(cluster, pv("sel-fast", "1Gi", labels={"tier": "fast"}), pv("sel-slow", "1Gi", labels={"tier": "slow"}))
    wait_phase(cluster, "pv", "sel-fast", "Available")
    apply(cluster, pvc("sel-claim", "1Gi", selector={"matchLabels": {"tier": "fast"}}))
    claim = wait_phase(cluster, "pvc", "sel-claim", "Bound")
    assert claim["spec"]["volumeName"] == "sel-fast"
    annotations = claim["metadata"]["annotations"]
    assert annotations["pv.kubernetes.io/bind-completed"] == "yes"
    assert annotations["pv.kubernetes.io/bound-by-controller"] == "yes"
    assert claim["status"]["capacity"] == {"storage": "1Gi"}
    assert claim["status"]["accessModes"] == ["ReadWriteOnce"]
    volume = wait_phase(cluster, "pv", "sel-fast", "Bound")
    ref = volume["spec"]["claimRef"]
    assert (ref["namespace"], ref["name"], ref["uid"]) == ("default", "sel-claim", claim["metadata"]["uid"])
    assert volume["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"] == "yes"
    assert volume["status"]["lastPhaseTransitionTime"]
    assert phase(cluster, "pv", "sel-slow") == "Available"
    table = cluster.kubectl("get", "pvc", "sel-claim").stdout
    assert "Bound" in table and "sel-fast" in table


def test_binds_by_volume_name(cluster: PodlifeProcess) -> None:
    apply(cluster, pv("named-a", "2Gi"), pv("named-b", "2Gi"))
    apply(cluster, pvc("named-claim", "1Gi", volume_name="named-b"))
    claim = wait_phase(cluster, "pvc", "named-claim", "Bound")
    assert claim["spec"]["volumeName"] == "named-b"
    assert "pv.kubernetes.io/bound-by-controller" not in claim["metadata"]["annotations"]  # the user chose it
    assert claim["status"]["capacity"] == {"storage": "2Gi"}  # the volume's size, not the request
    wait_phase(cluster, "pv", "named-b", "Bound")
    assert phase(cluster, "pv", "named-a") == "Available"


def test_pre_bound_volume_waits_for_its_claim(cluster: PodlifeProcess) -> None:
    apply(cluster, pv("reserved", "1Gi", claim_ref={"namespace": "default", "name": "reserved-claim"}))
    wait_phase(cluster, "pv", "reserved", "Available")
    apply(cluster, pvc("other-claim", "1Gi", selector={"matchLabels": {"none": "x"}}))
    apply(cluster, pvc("reserved-claim", "1Gi"))
    claim = wait_phase(cluster, "pvc", "reserved-claim", "Bound")
    assert claim["spec"]["volumeName"] == "reserved"
    assert phase(cluster, "pvc", "other-claim") == "Pending"


def test_smallest_fit_wins(cluster: PodlifeProcess) -> None:
    apply(cluster, pv("fit-big", "10Gi", labels={"fit": "t"}), pv("fit-small", "3Gi", labels={"fit": "t"}),
          pv("fit-tiny", "1Gi", labels={"fit": "t"}))
    wait_phase(cluster, "pv", "fit-tiny", "Available")
    apply(cluster, pvc("fit-claim", "2Gi", selector={"matchLabels": {"fit": "t"}}))
    assert wait_phase(cluster, "pvc", "fit-claim", "Bound")["spec"]["volumeName"] == "fit-small"
    assert phase(cluster, "pv", "fit-big") == "Available"


def test_access_mode_mismatch_stays_pending(cluster: PodlifeProcess) -> None:
    apply(cluster, pv("rwo-only", "1Gi"))
    apply(cluster, pvc("rwx-claim", "1Gi", modes=("ReadWriteMany",), volume_name="rwo-only"))
    event = wait_event(cluster, "PersistentVolumeClaim", "rwx-claim", "VolumeMismatch")
    assert event == ("Warning", "VolumeMismatch", 'Cannot bind to requested volume "rwo-only": incompatible accessMode')
    assert phase(cluster, "pvc", "rwx-claim") == "Pending"
    assert phase(cluster, "pv", "rwo-only") == "Available"
    assert "VolumeMismatch" in cluster.kubectl("describe", "pvc", "rwx-claim").stdout
    sources = {e["source"].get("component") for e in cluster.kubectl_json(
        "get", "events", "-A", "--field-selector", "involvedObject.name=rwx-claim")["items"]}
    assert sources == {"persistentvolume-controller"}  # the component Kubernetes' PV controller signs with


def test_no_class_and_missing_class_and_provisioner(cluster: PodlifeProcess) -> None:
    apply(cluster, pvc("lonely", "100Ti"))
    assert wait_event(cluster, "PersistentVolumeClaim", "lonely", "FailedBinding") == (
        "Warning", "FailedBinding", "no persistent volumes available for this claim and no storage class is set")
    apply(cluster, pvc("classless", "1Gi", class_name="no-such-class"))
    assert wait_event(cluster, "PersistentVolumeClaim", "classless", "ProvisioningFailed") == (
        "Warning", "ProvisioningFailed", 'storageclass.storage.k8s.io "no-such-class" not found')
    apply(cluster, {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "external"},
                    "provisioner": "example.com/external"},
          pvc("provisioned", "1Gi", class_name="external"))
    type_, _, message = wait_event(cluster, "PersistentVolumeClaim", "provisioned", "ExternalProvisioning")
    assert type_ == "Normal" and "external provisioner 'example.com/external'" in message
    annotations = get(cluster, "pvc", "provisioned")["metadata"]["annotations"]  # type: ignore[index]
    assert annotations["volume.kubernetes.io/storage-provisioner"] == "example.com/external"
    assert annotations["volume.beta.kubernetes.io/storage-provisioner"] == "example.com/external"
    # the provisioner's volume, pre-bound to the claim with its uid, completes the binding
    uid = get(cluster, "pvc", "provisioned")["metadata"]["uid"]  # type: ignore[index]
    made = pv("pvc-provisioned", "1Gi", class_name="external", policy="Delete",
              claim_ref={"namespace": "default", "name": "provisioned", "uid": uid})
    made["metadata"]["annotations"] = {"pv.kubernetes.io/provisioned-by": "example.com/external"}
    apply(cluster, made)
    assert wait_phase(cluster, "pvc", "provisioned", "Bound")["spec"]["volumeName"] == "pvc-provisioned"
    # Delete of a provisioned volume is its provisioner's: Released, not Failed
    delete(cluster, "pvc", "provisioned")
    gone(cluster, "pvc", "provisioned")
    wait_phase(cluster, "pv", "pvc-provisioned", "Released")
    assert not [e for e in events_of(cluster, "PersistentVolume", "pvc-provisioned") if e[1] == "VolumeFailedDelete"]
    delete(cluster, "pv", "pvc-provisioned")
    delete(cluster, "pvc", "lonely", "classless")
    delete(cluster, "storageclass", "external")


def test_wait_for_first_consumer(cluster: PodlifeProcess) -> None:
    apply(cluster, {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "late"},
                    "provisioner": "example.com/late", "volumeBindingMode": "WaitForFirstConsumer"},
          pv("late-pv", "1Gi", class_name="late"), pvc("late-claim", "1Gi", class_name="late"))
    assert wait_event(cluster, "PersistentVolumeClaim", "late-claim", "WaitForFirstConsumer") == (
        "Normal", "WaitForFirstConsumer", "waiting for first consumer to be created before binding")
    assert phase(cluster, "pvc", "late-claim") == "Pending"
    assert phase(cluster, "pv", "late-pv") == "Available"  # the scheduler picks it, once it knows the node
    delete(cluster, "pvc", "late-claim")
    delete(cluster, "pv", "late-pv")
    delete(cluster, "storageclass", "late")


def test_retain_leaves_volume_released(cluster: PodlifeProcess) -> None:
    apply(cluster, pv("keep-pv", "1Gi", labels={"r": "keep"}),
          pvc("keep-claim", "1Gi", selector={"matchLabels": {"r": "keep"}}))
    wait_phase(cluster, "pvc", "keep-claim", "Bound")
    delete(cluster, "pvc", "keep-claim")
    gone(cluster, "pvc", "keep-claim")
    volume = wait_phase(cluster, "pv", "keep-pv", "Released")
    assert volume["spec"]["claimRef"]["name"] == "keep-claim"  # kept: the data is the claim's until an admin says
    assert "Released" in cluster.kubectl("get", "pv", "keep-pv").stdout


def test_delete_without_provisioner_fails(cluster: PodlifeProcess) -> None:
    apply(cluster, pv("del-pv", "1Gi", policy="Delete", labels={"r": "del"}),
          pvc("del-claim", "1Gi", selector={"matchLabels": {"r": "del"}}))
    wait_phase(cluster, "pvc", "del-claim", "Bound")
    delete(cluster, "pvc", "del-claim")
    volume = wait_phase(cluster, "pv", "del-pv", "Failed")
    message = 'error getting deleter volume plugin for volume "del-pv": no deletable volume plugin matched'
    assert volume["status"]["message"] == message
    assert wait_event(cluster, "PersistentVolume", "del-pv", "VolumeFailedDelete") == (
        "Warning", "VolumeFailedDelete", message)


def test_claim_lost_with_its_volume(cluster: PodlifeProcess) -> None:
    apply(cluster, pv("lost-pv", "1Gi", labels={"r": "lost"}),
          pvc("lost-claim", "1Gi", selector={"matchLabels": {"r": "lost"}}))
    wait_phase(cluster, "pvc", "lost-claim", "Bound")
    # the volume goes from under the claim (its protection finalizer removed by hand, as an admin forcing it)
    delete(cluster, "pv", "lost-pv")
    cluster.kubectl("patch", "pv", "lost-pv", "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    gone(cluster, "pv", "lost-pv")
    claim = wait_phase(cluster, "pvc", "lost-claim", "Lost")
    assert "capacity" not in claim["status"]
    assert wait_event(cluster, "PersistentVolumeClaim", "lost-claim", "ClaimLost") == (
        "Warning", "ClaimLost", "Bound claim has lost its PersistentVolume. Data on the volume is lost!")


def test_claim_in_use_is_kept_until_its_pod_is_gone(cluster: PodlifeProcess) -> None:
    apply(cluster, pv("used-pv", "1Gi", labels={"r": "used"}),
          pvc("used-claim", "1Gi", selector={"matchLabels": {"r": "used"}}))
    wait_phase(cluster, "pvc", "used-claim", "Bound")
    wait_for(lambda: "kubernetes.io/pvc-protection" in (get(cluster, "pvc", "used-claim") or {})["metadata"].get(
        "finalizers", []), 20, 0.1, what="the pvc-protection finalizer")
    wait_for(lambda: cluster.kubectl("get", "serviceaccount", "default", check=False).returncode == 0, 30, 0.2,
             what="the default service account")
    # a pod on a node that does not exist: nothing runs it, but it uses the claim
    apply(cluster, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "user"}, "spec": {
        "nodeName": "no-such-node", "containers": [{"name": "c", "image": "busybox"}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "used-claim"}}]}})
    delete(cluster, "pvc", "used-claim")
    wait_for(lambda: (get(cluster, "pvc", "used-claim") or {}).get("metadata", {}).get("deletionTimestamp"), 20, 0.1,
             what="the claim Terminating")
    assert "Terminating" in cluster.kubectl("get", "pvc", "used-claim").stdout
    claim = get(cluster, "pvc", "used-claim")
    assert claim is not None and claim["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    # the volume is still Bound: the binder leaves a claim being deleted bound
    assert phase(cluster, "pv", "used-pv") == "Bound"
    cluster.kubectl("delete", "pod", "user", "--grace-period=0", "--force")
    gone(cluster, "pvc", "used-claim")
    wait_phase(cluster, "pv", "used-pv", "Released")


def test_bound_volume_is_kept_until_its_claim_is_gone(cluster: PodlifeProcess) -> None:
    apply(cluster, pv("held-pv", "1Gi", labels={"r": "held"}),
          pvc("held-claim", "1Gi", selector={"matchLabels": {"r": "held"}}))
    wait_phase(cluster, "pvc", "held-claim", "Bound")
    wait_for(lambda: "kubernetes.io/pv-protection" in (get(cluster, "pv", "held-pv") or {})["metadata"].get(
        "finalizers", []), 20, 0.1, what="the pv-protection finalizer")
    delete(cluster, "pv", "held-pv")
    wait_for(lambda: "Terminating" in cluster.kubectl("get", "pv", "held-pv").stdout, 20, 0.1,
             what="the volume Terminating")
    assert phase(cluster, "pvc", "held-claim") == "Bound"
    delete(cluster, "pvc", "held-claim")
    gone(cluster, "pvc", "held-claim")
    gone(cluster, "pv", "held-pv")


def test_retroactive_default_class(cluster: PodlifeProcess) -> None:
    default = "storageclass.kubernetes.io/is-default-class"
    cluster.kubectl("annotate", "storageclass", "local-path", f"{default}=false", "--overwrite")
    try:
        # a selector no volume matches: a classless claim first binds to a classless volume if one fits
        apply(cluster, pvc("no-class-yet", "1Gi", class_name=None, selector={"matchLabels": {"r": "retro"}}))
        claim = get(cluster, "pvc", "no-class-yet")
        assert claim is not None and "storageClassName" not in claim["spec"]
    finally:
        cluster.kubectl("annotate", "storageclass", "local-path", f"{default}=true", "--overwrite")
    wait_for(lambda: (get(cluster, "pvc", "no-class-yet") or {}).get("spec", {}).get("storageClassName") == "local-path",
             20, 0.1, what="the default class given to the claim")
    mode = (get(cluster, "storageclass", "local-path") or {}).get("volumeBindingMode")
    wait_event(cluster, "PersistentVolumeClaim", "no-class-yet",
               "WaitForFirstConsumer" if mode == "WaitForFirstConsumer" else "ExternalProvisioning")
    delete(cluster, "pvc", "no-class-yet")
