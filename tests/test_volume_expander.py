"""The volume expander (kube-controller-manager's expand controller and our driver's external resizer).

First the pure decisions (which size a resize starts or resumes for, the claim's status
at each step), then a real ``podlife up`` running only the expander, driven with kubectl:
a claim bound by hand to a PV of ``local-path.podlife.io`` grows -- the PV's capacity, the
claim's ``allocatedResources``/``allocatedResourceStatuses``/conditions and the events of
both components, as Kubernetes shows them -- and grows again once the node has finished;
a claim on a hostPath PV only gets kube-controller-manager's ``ExternalExpanding``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from podlife.controllers.volume.expander import (
    FILE_SYSTEM_RESIZE_MESSAGE,
    Expansion,
    in_progress_status,
    merge_resize_conditions,
    node_pending_status,
    plan_expansion,
)
from podlife.machinery.storage import LOCAL_PATH_DRIVER
from tests.cluster_harness import PodlifeProcess, require_tool, wait_for

Obj = dict[str, Any]

NOW = "2026-01-01T00:00:00Z"


def bound_claim(request: str, capacity: str, **status: Any) -> Obj:
    return {"metadata": {"namespace": "ns", "name": "c", "uid": "u1"},
            "spec": {"volumeName": "pv", "resources": {"requests": {"storage": request}}},
            "status": {"phase": "Bound", "capacity": {"storage": capacity}, **status}}


def volume(capacity: str) -> Obj:
    return {"metadata": {"name": "pv"}, "spec": {"capacity": {"storage": capacity}, "csi": {"driver": LOCAL_PATH_DRIVER},
                                                 "claimRef": {"namespace": "ns", "name": "c", "uid": "u1"}}}


# --------------------------------------------------------------------------- pure decisions


def test_a_new_request_starts_a_resize_for_the_requested_size() -> None:
    assert plan_expansion(bound_claim("2Gi", "1Gi"), volume("1Gi")) == Expansion("2Gi", True, True)


def test_a_resize_left_after_marking_resumes_without_marking_again() -> None:
    claim = bound_claim("2Gi", "1Gi", allocatedResources={"storage": "2Gi"},
                        allocatedResourceStatuses={"storage": "ControllerResizeInProgress"})
    assert plan_expansion(claim, volume("1Gi")) == Expansion("2Gi", False, True)
    # the volume grew but the claim was not told: only the last step is left
    assert plan_expansion(claim, volume("2Gi")) == Expansion("2Gi", False, False)


def test_a_resize_in_the_controller_finishes_its_own_size_before_a_newer_request() -> None:
    claim = bound_claim("3Gi", "1Gi", allocatedResources={"storage": "2Gi"},
                        allocatedResourceStatuses={"storage": "ControllerResizeInProgress"})
    assert plan_expansion(claim, volume("1Gi")) == Expansion("2Gi", False, True)


def test_while_the_node_finishes_nothing_more_is_done() -> None:
    pending = {"allocatedResources": {"storage": "2Gi"}, "allocatedResourceStatuses": {"storage": "NodeResizePending"}}
    assert plan_expansion(bound_claim("2Gi", "1Gi", **pending), volume("2Gi")) is None
    assert plan_expansion(bound_claim("3Gi", "1Gi", **pending), volume("2Gi")) is None  # grown again: wait first


def test_once_the_node_finished_a_bigger_request_starts_a_new_resize() -> None:
    claim = bound_claim("3Gi", "2Gi", allocatedResources={"storage": "2Gi"})
    assert plan_expansion(claim, volume("2Gi")) == Expansion("3Gi", True, True)


def test_resize_conditions_are_replaced_and_others_kept() -> None:
    other = {"type": "ModifyingVolume", "status": "True"}
    old = [{"type": "Resizing", "status": "True"}, other]
    new = {"type": "FileSystemResizePending", "status": "True"}
    assert merge_resize_conditions(old, [new]) == [other, new]
    assert merge_resize_conditions([new, other], [dict(new, message="m")]) == [dict(new, message="m"), other]


def test_the_status_of_each_step() -> None:
    started = in_progress_status({"phase": "Bound", "capacity": {"storage": "1Gi"}}, "2Gi", NOW)
    assert started["allocatedResources"] == {"storage": "2Gi"}
    assert started["allocatedResourceStatuses"] == {"storage": "ControllerResizeInProgress"}
    assert [(c["type"], c["status"]) for c in started["conditions"]] == [("Resizing", "True")]
    pending = node_pending_status(started, NOW)
    assert pending["allocatedResourceStatuses"] == {"storage": "NodeResizePending"}
    assert pending["capacity"] == {"storage": "1Gi"} and pending["allocatedResources"] == {"storage": "2Gi"}
    assert [(c["type"], c["message"]) for c in pending["conditions"]] == [
        ("FileSystemResizePending", FILE_SYSTEM_RESIZE_MESSAGE)]


# --------------------------------------------------------------------------- a real cluster


@pytest.fixture(scope="module")
def proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    cluster = PodlifeProcess(tmp_path_factory.mktemp("expander") / "data", "--nodes", "0",
                             "--controllers", "persistentvolume-expander-controller,namespace-controller",
                             kubectl=require_tool("kubectl"))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def apply(proc: PodlifeProcess, *objects: Obj) -> None:
    proc.kubectl("create", "-f", "-", input="\n---\n".join(json.dumps(o) for o in objects))


def get(proc: PodlifeProcess, kind: str, name: str, ns: str | None = None) -> Obj:
    return proc.kubectl_json("get", kind, name, *(["-n", ns] if ns else []))


def claim_events(proc: PodlifeProcess, ns: str, claim: str) -> list[Obj]:
    listed = proc.kubectl_json("get", "events", "-n", ns, "--field-selector",
                               f"involvedObject.kind=PersistentVolumeClaim,involvedObject.name={claim}")
    return listed["items"]


def reasons(events: list[Obj]) -> dict[str, Obj]:
    return {e["reason"]: e for e in events}


def bind_by_hand(proc: PodlifeProcess, ns: str, claim: str, pv: str, size: str, source: Obj,
                 storage_class: str) -> None:
    """A claim naming ``pv`` and a PV pre-bound to it, then the claim marked Bound (the binder's work)."""
    apply(proc, {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": claim, "namespace": ns},
                 "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": storage_class, "volumeName": pv,
                          "resources": {"requests": {"storage": size}}}})
    uid = get(proc, "pvc", claim, ns)["metadata"]["uid"]
    apply(proc, {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv},
                 "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                          "storageClassName": storage_class, "persistentVolumeReclaimPolicy": "Retain",
                          "claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": ns,
                                       "name": claim, "uid": uid}, **source}})
    proc.kubectl("patch", "pvc", claim, "-n", ns, "--subresource=status", "--type=merge", "-p", json.dumps(
        {"status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": size}}}))


def grow(proc: PodlifeProcess, ns: str, claim: str, size: str) -> None:
    proc.kubectl("patch", "pvc", claim, "-n", ns, "--type=merge", "-p",
                 json.dumps({"spec": {"resources": {"requests": {"storage": size}}}}))


def conditions(claim: Obj) -> dict[str, Obj]:
    return {c["type"]: c for c in (claim.get("status") or {}).get("conditions") or []}


def wait_node_pending(proc: PodlifeProcess, ns: str, claim: str, size: str) -> Obj:
    def pending() -> Obj:
        found = get(proc, "pvc", claim, ns)
        status = found.get("status") or {}
        if (status.get("allocatedResourceStatuses") or {}).get("storage") != "NodeResizePending" \
                or (status.get("allocatedResources") or {}).get("storage") != size:
            return {}
        return found
    return wait_for(pending, 20, 0.1, what=f"claim {claim} waiting for the node at {size}")


def finish_on_node(proc: PodlifeProcess, ns: str, claim: str, size: str) -> None:
    """What the node does once it has grown the file system (``node/volume_expansion.py``)."""
    found = get(proc, "pvc", claim, ns)
    status = found["status"]
    status["capacity"] = {"storage": size}
    status["conditions"] = [c for c in status.get("conditions") or [] if c["type"] != "FileSystemResizePending"]
    statuses = {k: v for k, v in (status.get("allocatedResourceStatuses") or {}).items() if k != "storage"}
    if statuses:
        status["allocatedResourceStatuses"] = statuses
    else:
        status.pop("allocatedResourceStatuses", None)
    proc.kubectl("replace", "--subresource=status", "-f", "-", input=json.dumps(found))


def test_a_claim_of_our_driver_grows_its_volume_and_waits_for_the_node(proc: PodlifeProcess) -> None:
    ns = "grow"
    proc.kubectl("create", "namespace", ns)
    apply(proc, {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "growable"},
                 "provisioner": LOCAL_PATH_DRIVER, "allowVolumeExpansion": True, "volumeBindingMode": "Immediate"})
    csi = {"csi": {"driver": LOCAL_PATH_DRIVER, "volumeHandle": "grow-pv",
                   "volumeAttributes": {"local-path.podlife.io/path": "/nonexistent/grow-pv"}}}
    bind_by_hand(proc, ns, "data", "grow-pv", "1Gi", csi, "growable")

    grow(proc, ns, "data", "2Gi")
    claim = wait_node_pending(proc, ns, "data", "2Gi")
    assert get(proc, "pv", "grow-pv")["spec"]["capacity"]["storage"] == "2Gi"
    assert claim["status"]["capacity"] == {"storage": "1Gi"}  # the node has not grown the file system yet
    conds = conditions(claim)
    assert "Resizing" not in conds
    assert conds["FileSystemResizePending"]["status"] == "True"
    assert conds["FileSystemResizePending"]["message"] == FILE_SYSTEM_RESIZE_MESSAGE

    def resize_events() -> dict[str, Obj]:
        found = reasons(claim_events(proc, ns, "data"))
        return found if {"ExternalExpanding", "Resizing", "FileSystemResizeRequired"} <= set(found) else {}

    events = wait_for(resize_events, 20, 0.1, what="the resize events")
    assert events["ExternalExpanding"]["message"] == "waiting for an external controller to expand this PVC"
    assert events["ExternalExpanding"]["source"]["component"] == "volume_expand"
    assert events["Resizing"]["message"] == "External resizer is resizing volume grow-pv"
    assert events["FileSystemResizeRequired"]["message"] == "Require file system resize of volume on node"
    for reason in ("Resizing", "FileSystemResizeRequired"):
        assert events[reason]["type"] == "Normal"
        assert events[reason]["source"]["component"] == f"external-resizer {LOCAL_PATH_DRIVER}"

    # grown again before the node finished: the resize under way ends first, then the next starts
    grow(proc, ns, "data", "3Gi")
    finish_on_node(proc, ns, "data", "2Gi")
    claim = wait_node_pending(proc, ns, "data", "3Gi")
    assert get(proc, "pv", "grow-pv")["spec"]["capacity"]["storage"] == "3Gi"
    assert claim["status"]["capacity"] == {"storage": "2Gi"}
    assert "Resizing" not in conditions(claim)

    finish_on_node(proc, ns, "data", "3Gi")
    done = get(proc, "pvc", "data", ns)
    assert done["status"]["capacity"] == {"storage": "3Gi"}
    assert "FileSystemResizePending" not in conditions(done)
    assert proc.kubectl("get", "pvc", "data", "-n", ns, "-o", "jsonpath={.status.capacity.storage}").stdout == "3Gi"


def test_a_volume_no_podlife_resizer_serves_only_gets_the_external_expanding_event(proc: PodlifeProcess) -> None:
    ns = "external"
    proc.kubectl("create", "namespace", ns)
    apply(proc, {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "elsewhere"},
                 "provisioner": "example.com/elsewhere", "allowVolumeExpansion": True,
                 "volumeBindingMode": "Immediate"})
    bind_by_hand(proc, ns, "data", "external-pv", "1Gi", {"hostPath": {"path": "/nonexistent/external-pv"}},
                 "elsewhere")

    grow(proc, ns, "data", "2Gi")
    event = wait_for(lambda: reasons(claim_events(proc, ns, "data")).get("ExternalExpanding") or {}, 20, 0.1,
                     what="the ExternalExpanding event")
    assert event["type"] == "Normal"
    assert event["message"] == "waiting for an external controller to expand this PVC"
    assert event["count"] == 1
    # the decision was made before the event was recorded: nothing else was written
    assert set(reasons(claim_events(proc, ns, "data"))) == {"ExternalExpanding"}
    assert get(proc, "pv", "external-pv")["spec"]["capacity"]["storage"] == "1Gi"
    status = get(proc, "pvc", "data", ns)["status"]
    assert "allocatedResources" not in status and "allocatedResourceStatuses" not in status
    assert not conditions({"status": status})
