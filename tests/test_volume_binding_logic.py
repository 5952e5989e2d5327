"""The PV controller's and the protection controllers' pure decisions (:mod:`podlife.controllers.volume.binding`,
the functions of :mod:`podlife.controllers.volume.protection`): objects in, verdicts or new objects out."""

from __future__ import annotations

from typing import Any

import pytest

from podlife.controllers.volume import binding
from podlife.controllers.volume.binding import VolumeVerdict
from podlife.controllers.volume.protection import (
    may_drop_finalizer,
    needs_finalizer,
    pod_is_shut_down,
    pod_uses_claim,
    pods_by_claim,
    volume_in_use,
    with_finalizers,
)

Obj = dict[str, Any]
NOW = "2026-01-02T03:04:05Z"


def claim(name: str = "data", *, uid: str = "c-uid", phase: str = "Pending", volume: str = "",
          annotations: dict[str, str] | None = None, **spec: Any) -> Obj:
    body: Obj = {"metadata": {"name": name, "namespace": "ns", "uid": uid, "resourceVersion": "7",
                              "annotations": annotations or {}},
                 "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}, **spec},
                 "status": {"phase": phase}}
    if volume:
        body["spec"]["volumeName"] = volume
    return body


def volume(name: str = "pv", *, phase: str = "Available", ref: Obj | None = None, policy: str = "Retain",
           annotations: dict[str, str] | None = None) -> Obj:
    body: Obj = {"metadata": {"name": name, "annotations": annotations or {}},
                 "spec": {"capacity": {"storage": "5Gi"}, "accessModes": ["ReadWriteOnce", "ReadOnlyMany"],
                          "persistentVolumeReclaimPolicy": policy},
                 "status": {"phase": phase}}
    if ref is not None:
        body["spec"]["claimRef"] = ref
    return body


REF = {"namespace": "ns", "name": "data", "uid": "c-uid"}


# --------------------------------------------------------------------------- claims


def test_delay_binding_only_for_wait_for_first_consumer_without_node() -> None:
    late = {"metadata": {"name": "late"}, "volumeBindingMode": "WaitForFirstConsumer"}
    assert binding.delays_binding(claim(), late)
    assert not binding.delays_binding(claim(annotations={"volume.kubernetes.io/selected-node": "n1"}), late)
    assert not binding.delays_binding(claim(), {"metadata": {"name": "now"}, "volumeBindingMode": "Immediate"})
    assert not binding.delays_binding(claim(), None)


def test_no_volume_verdicts() -> None:
    external = {"metadata": {"name": "ext"}, "provisioner": "example.com/p"}
    assert binding.no_volume_verdict(claim(storageClassName="ext"), None, delayed=True).event == binding.Event(
        "Normal", "WaitForFirstConsumer", "waiting for first consumer to be created before binding")
    assert binding.no_volume_verdict(claim(storageClassName=""), None, delayed=False).event == binding.Event(
        "Warning", "FailedBinding", "no persistent volumes available for this claim and no storage class is set")
    assert binding.no_volume_verdict(claim(storageClassName="gone"), None, delayed=False).event == binding.Event(
        "Warning", "ProvisioningFailed", 'storageclass.storage.k8s.io "gone" not found')
    verdict = binding.no_volume_verdict(claim(storageClassName="ext"), external, delayed=False)
    assert verdict.provisioner == "example.com/p"
    assert verdict.event is not None and verdict.event.reason == "ExternalProvisioning"
    assert verdict.event.message.startswith("Waiting for a volume to be created either by the external provisioner "
                                            "'example.com/p' or manually by the system administrator.")
    in_tree = {"metadata": {"name": "local"}, "provisioner": "kubernetes.io/no-provisioner"}
    verdict = binding.no_volume_verdict(claim(storageClassName="local"), in_tree, delayed=False)
    assert verdict.provisioner is None and verdict.event is not None and verdict.event.reason == "ProvisioningFailed"


def test_with_provisioner_sets_both_annotations_once() -> None:
    annotated = binding.with_provisioner(claim(), "example.com/p")
    assert annotated is not None
    assert annotated["metadata"]["annotations"] == {"volume.kubernetes.io/storage-provisioner": "example.com/p",
                                                    "volume.beta.kubernetes.io/storage-provisioner": "example.com/p"}
    assert binding.with_provisioner(annotated, "example.com/p") is None


def test_retroactive_class_only_for_claims_that_never_named_one() -> None:
    default = {"metadata": {"name": "std"}}
    assert binding.retroactive_class(claim(), default) == "std"
    assert binding.retroactive_class(claim(storageClassName=""), default) is None  # "" is a choice: no class
    assert binding.retroactive_class(claim(storageClassName="x"), default) is None
    assert binding.retroactive_class(claim(annotations={"volume.beta.kubernetes.io/storage-class": "x"}), default) is None
    assert binding.retroactive_class(claim(volume="pv"), default) is None
    assert binding.retroactive_class(claim(phase="Bound"), default) is None
    assert binding.retroactive_class(claim(), None) is None


def test_claim_bound_to_volume() -> None:
    new = binding.claim_bound_to(claim(), volume())
    assert new is not None
    assert new["spec"]["volumeName"] == "pv"
    assert new["metadata"]["annotations"] == {"pv.kubernetes.io/bind-completed": "yes",
                                              "pv.kubernetes.io/bound-by-controller": "yes"}
    assert binding.claim_bound_to(new, volume()) is None
    user_chosen = binding.claim_bound_to(claim(volume="pv"), volume())
    assert user_chosen is not None
    assert user_chosen["metadata"]["annotations"] == {"pv.kubernetes.io/bind-completed": "yes"}


def test_claim_status_copies_the_volume_once() -> None:
    status = binding.claim_status(claim(), "Bound", volume())
    assert status == {"phase": "Bound", "accessModes": ["ReadWriteOnce", "ReadOnlyMany"], "capacity": {"storage": "5Gi"}}
    bound = {**claim(phase="Bound"), "status": status}
    assert binding.claim_status(bound, "Bound", volume()) is None
    resizing = {**bound, "status": {**status, "capacity": {"storage": "8Gi"}}}
    assert binding.claim_status(resizing, "Bound", volume()) is None  # not the binder's to shrink back
    assert binding.claim_status(bound, "Lost", None) == {"phase": "Lost"}


# --------------------------------------------------------------------------- volumes


def test_volume_bound_to_claim() -> None:
    new = binding.volume_bound_to(volume(), claim())
    assert new is not None
    assert new["spec"]["claimRef"] == {"kind": "PersistentVolumeClaim", "namespace": "ns", "name": "data",
                                       "uid": "c-uid", "apiVersion": "v1", "resourceVersion": "7"}
    assert new["metadata"]["annotations"] == {"pv.kubernetes.io/bound-by-controller": "yes"}
    assert binding.volume_bound_to(new, claim()) is None
    reserved = binding.volume_bound_to(volume(ref={"namespace": "ns", "name": "data"}), claim())
    assert reserved is not None and reserved["spec"]["claimRef"]["uid"] == "c-uid"
    assert "pv.kubernetes.io/bound-by-controller" not in reserved["metadata"]["annotations"]  # the user reserved it


def test_volume_unbound() -> None:
    ours = volume(ref=REF, annotations={"pv.kubernetes.io/bound-by-controller": "yes"})
    undone = binding.volume_unbound(ours)
    assert "claimRef" not in undone["spec"] and undone["metadata"]["annotations"] == {}
    users = binding.volume_unbound(volume(ref=REF))
    assert users["spec"]["claimRef"] == {"namespace": "ns", "name": "data"}


def test_volume_status_phase_and_transition_time() -> None:
    status = binding.volume_status(volume(phase="Pending"), "Available", "", NOW)
    assert status == {"phase": "Available", "lastPhaseTransitionTime": NOW}
    assert binding.volume_status({**volume(), "status": status}, "Available", "", "later") is None
    failed = binding.volume_status(volume(phase="Released"), "Failed", "why", NOW)
    assert failed == {"phase": "Failed", "message": "why", "lastPhaseTransitionTime": NOW}


@pytest.mark.parametrize(("vol", "found", "verdict"), [
    (volume(), None, VolumeVerdict.AVAILABLE),
    (volume(ref={"namespace": "ns", "name": "data"}), None, VolumeVerdict.AVAILABLE),
    (volume(ref=REF), None, VolumeVerdict.RELEASED),
    (volume(ref=REF), claim(uid="other"), VolumeVerdict.RELEASED),
    (volume(ref=REF), claim(), VolumeVerdict.HALF_BOUND),
    (volume(ref=REF), claim(volume="pv"), VolumeVerdict.BOUND),
    (volume(ref=REF), claim(volume="elsewhere"), VolumeVerdict.WAIT),
    (volume(ref=REF, annotations={"pv.kubernetes.io/bound-by-controller": "yes"}), claim(volume="elsewhere"),
     VolumeVerdict.UNBIND),
])
def test_volume_verdict(vol: Obj, found: Obj | None, verdict: VolumeVerdict) -> None:
    assert binding.volume_verdict(vol, found) is verdict


def test_reclaim_verdicts() -> None:
    assert binding.reclaim_verdict(volume(policy="Retain")) == binding.ReclaimVerdict()
    provisioned = volume(policy="Delete", annotations={"pv.kubernetes.io/provisioned-by": "local-path.podlife.io"})
    assert binding.reclaim_verdict(provisioned) == binding.ReclaimVerdict()
    failed = binding.reclaim_verdict(volume(policy="Delete"))
    assert failed.phase == "Failed" and failed.event == binding.Event(
        "Warning", "VolumeFailedDelete",
        'error getting deleter volume plugin for volume "pv": no deletable volume plugin matched')
    recycled = binding.reclaim_verdict(volume(policy="Recycle"))
    assert recycled.phase == "Failed" and recycled.event is not None and recycled.event.reason == "VolumeFailedRecycle"


# --------------------------------------------------------------------------- protection


def pod(*, node: str = "n1", phase: str = "Running", volumes: list[Obj] | None = None, **meta: Any) -> Obj:
    return {"metadata": {"name": "p", "namespace": "ns", **meta},
            "spec": {"nodeName": node, "volumes": volumes if volumes is not None else
                     [{"name": "v", "persistentVolumeClaim": {"claimName": "data"}}]},
            "status": {"phase": phase}}


def test_pod_uses_claim() -> None:
    assert pod_uses_claim(pod(), "data")
    assert not pod_uses_claim(pod(), "other")
    assert not pod_uses_claim(pod(node=""), "data")  # not scheduled: the kubelet will not start it on a dying claim
    # a finished pod still holds its claim: only deleting the pod releases it (Kubernetes' podUsesPVC)
    assert pod_uses_claim(pod(phase="Succeeded"), "data")
    assert pod_uses_claim(pod(phase="Failed"), "data")
    assert pod_uses_claim(pod(deletionTimestamp=NOW, deletionGracePeriodSeconds=30), "data")  # still stopping
    assert pod_is_shut_down(pod(deletionTimestamp=NOW, deletionGracePeriodSeconds=0))
    ephemeral = pod(volumes=[{"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}])
    assert pod_uses_claim(ephemeral, "p-scratch")
    finished = pod(phase="Succeeded", volumes=[{"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}])
    assert not pod_uses_claim(finished, "p-scratch")  # an ephemeral claim is released when its pod shuts down
    assert list(pods_by_claim(ephemeral)) == ["ns/p-scratch"]


def test_finalizer_decisions() -> None:
    live = {"metadata": {"name": "x", "finalizers": []}}
    assert needs_finalizer(live, "f")
    kept = with_finalizers(live, ["f"])
    assert not needs_finalizer(kept, "f") and not may_drop_finalizer(kept, "f")
    dying = {"metadata": {"name": "x", "finalizers": ["f"], "deletionTimestamp": NOW}}
    assert may_drop_finalizer(dying, "f") and not needs_finalizer(dying, "f")
    assert volume_in_use(volume(phase="Bound")) and not volume_in_use(volume(phase="Released"))
