"""The ephemeral volume controller: a pod's generic ephemeral volumes get their claims, owned by the pod.

First the pure decisions (the claim made from a template, whose claim is the pod's), then
a real ``podlife up`` without nodes (pods stay Pending: the claims are the controller's,
not the node's), driven with kubectl: the claim appears with the template's labels,
annotations and spec and the pod as controller; deleted, it comes back; the pod deleted,
the garbage collector removes it; a claim of that name made by someone else is left
alone and a Warning event on the pod says why.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from podlife.controllers.volume.ephemeral import claim_for, ephemeral_claim_keys, wants_claims
from podlife.machinery.storage import ephemeral_claim_problem
from tests.cluster_harness import PodlifeProcess, require_tool, wait_for

Obj = dict[str, Any]

TEMPLATE_SPEC: Obj = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}


def pod_manifest(name: str, *volumes: str, ns: str = "default") -> Obj:
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}"},
        "spec": {"terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"],
                                 "volumeMounts": [{"name": v, "mountPath": f"/{v}"} for v in volumes]}],
                 "volumes": [{"name": v, "ephemeral": {"volumeClaimTemplate": {
                     "metadata": {"labels": {"volume": v}, "annotations": {"note": f"scratch {v}"}},
                     "spec": TEMPLATE_SPEC}}} for v in volumes]},
    }


# --------------------------------------------------------------------------- pure decisions


def test_the_claim_of_a_template_is_named_after_pod_and_volume_and_owned_by_the_pod() -> None:
    pod = pod_manifest("web", "scratch")
    claim = claim_for(pod, pod["spec"]["volumes"][0])
    assert claim["metadata"] == {
        "name": "web-scratch", "namespace": "default", "labels": {"volume": "scratch"},
        "annotations": {"note": "scratch scratch"},
        "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "uid-web", "controller": True,
                             "blockOwnerDeletion": True}]}
    assert claim["spec"] == TEMPLATE_SPEC and claim["spec"] is not TEMPLATE_SPEC
    assert ephemeral_claim_problem(pod, claim) is None
    assert ephemeral_claim_problem(pod, {**claim, "metadata": {**claim["metadata"], "ownerReferences": []}}) == (
        f"PVC {claim['metadata']['namespace']}/{claim['metadata']['name']} was not created for pod "
        f"{pod['metadata']['namespace']}/{pod['metadata']['name']} (pod is not owner)")
    assert ephemeral_claim_problem(pod, {**claim, "metadata": {**claim["metadata"], "namespace": "other"}}) is not None


def test_which_pods_want_claims() -> None:
    pod = pod_manifest("web", "a", "b")
    assert wants_claims(pod)
    assert list(ephemeral_claim_keys(pod)) == ["default/web-a", "default/web-b"]
    plain = {"metadata": {"name": "p", "namespace": "default"}, "spec": {"volumes": [{"name": "x", "emptyDir": {}}]}}
    assert not wants_claims(plain) and not list(ephemeral_claim_keys(plain))
    assert not wants_claims({**pod, "metadata": {**pod["metadata"], "deletionTimestamp": "2026-01-01T00:00:00Z"}})
    assert not wants_claims({**pod, "status": {"phase": "Succeeded"}})


# --------------------------------------------------------------------------- a real cluster


@pytest.fixture(scope="module")
def proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    controllers = ",".join(("ephemeral-volume-controller", "garbage-collector-controller", "namespace-controller",
                            "serviceaccount-controller", "persistentvolumeclaim-protection-controller"))
    cluster = PodlifeProcess(tmp_path_factory.mktemp("ephemeral") / "data", "--nodes", "0", "--controllers",
                             controllers, kubectl=require_tool("kubectl"))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def namespace(proc: PodlifeProcess, name: str) -> str:
    proc.kubectl("create", "namespace", name)
    wait_for(lambda: proc.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0,
             20, 0.1, what=f"the default ServiceAccount of {name}")
    return name


def create_pod(proc: PodlifeProcess, ns: str, name: str, *volumes: str) -> Obj:
    body = pod_manifest(name, *volumes, ns=ns)
    del body["metadata"]["uid"]
    proc.kubectl("create", "-f", "-", input=json.dumps(body))
    return proc.kubectl_json("get", "pod", name, "-n", ns)


def claim_or_none(proc: PodlifeProcess, ns: str, name: str) -> Obj | None:
    found = proc.kubectl("get", "pvc", name, "-n", ns, "-o", "json", "--ignore-not-found")
    return json.loads(found.stdout) if found.stdout.strip() else None


def claim(proc: PodlifeProcess, ns: str, name: str) -> Obj:
    """The claim (``{}`` while there is none)."""
    return claim_or_none(proc, ns, name) or {}


def test_a_pod_gets_its_claims_they_come_back_and_go_with_the_pod(proc: PodlifeProcess) -> None:
    ns = namespace(proc, "eph")
    pod = create_pod(proc, ns, "worker", "scratch", "cache")
    uid = pod["metadata"]["uid"]
    def both_claims() -> list[Obj]:
        found = [claim(proc, ns, f"worker-{v}") for v in ("scratch", "cache")]
        return found if all(found) else []

    claims = wait_for(both_claims, 20, 0.1, what="the ephemeral claims")
    for made, volume in zip(claims, ("scratch", "cache"), strict=True):
        meta = made["metadata"]
        assert meta["ownerReferences"] == [{"apiVersion": "v1", "kind": "Pod", "name": "worker", "uid": uid,
                                            "controller": True, "blockOwnerDeletion": True}]
        assert meta["labels"] == {"volume": volume}
        assert meta["annotations"]["note"] == f"scratch {volume}"
        assert made["spec"]["accessModes"] == ["ReadWriteOnce"]
        assert made["spec"]["resources"]["requests"]["storage"] == "1Gi"

    # someone deletes a claim the pod still needs: it comes back, still the pod's
    old_uid = claims[0]["metadata"]["uid"]
    proc.kubectl("delete", "pvc", "worker-scratch", "-n", ns, "--wait=false")
    def made_again() -> Obj:
        found = claim(proc, ns, "worker-scratch")
        meta = found.get("metadata") or {}
        return found if meta.get("uid") not in (None, old_uid) and not meta.get("deletionTimestamp") else {}

    again = wait_for(made_again, 20, 0.1, what="the claim made again")
    assert again["metadata"]["ownerReferences"][0]["uid"] == uid

    # the pod goes (no node runs it: forced): the garbage collector takes its claims
    proc.kubectl("delete", "pod", "worker", "-n", ns, "--grace-period=0", "--force")
    wait_for(lambda: all(claim_or_none(proc, ns, f"worker-{v}") is None for v in ("scratch", "cache")), 30, 0.1,
             what="the claims deleted with their pod")


def test_a_claim_of_that_name_made_by_someone_else_is_left_alone(proc: PodlifeProcess) -> None:
    ns = namespace(proc, "foreign")
    proc.kubectl("create", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "job-data", "namespace": ns},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "5Gi"}}}}))
    before = claim(proc, ns, "job-data")
    assert before
    create_pod(proc, ns, "job", "data")

    def warning() -> Obj:
        events = proc.kubectl_json("get", "events", "-n", ns, "--field-selector",
                                   "involvedObject.kind=Pod,involvedObject.name=job,reason=FailedBinding")["items"]
        return events[0] if events else {}

    event = wait_for(warning, 20, 0.1, what="the FailedBinding event")
    assert event["type"] == "Warning"
    assert event["message"] == (f"ephemeral volume data: PVC {ns}/job-data was not created for pod {ns}/job "
                                "(pod is not owner)")
    assert event["source"]["component"] == "ephemeral_volume"
    after = claim(proc, ns, "job-data")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert "ownerReferences" not in after["metadata"]
    proc.kubectl("delete", "pod", "job", "-n", ns, "--grace-period=0", "--force")
    proc.kubectl("delete", "pvc", "job-data", "-n", ns, "--wait=false")
