"""Server-side apply and managedFields through the real server, driven by each kubectl of the matrix."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from .cluster_harness import PodlifeProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster(kubectl_matrix_cluster: PodlifeProcess) -> Iterator[PodlifeProcess]:
    yield kubectl_matrix_cluster

APPLY = "application/apply-patch+yaml"


def configmap(name: str, data: dict[str, str], labels: dict[str, str] | None = None) -> str:
    meta: dict[str, Any] = {"name": name}
    if labels:
        meta["labels"] = labels
    return yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data})


def deployment(name: str, containers: list[dict[str, Any]], replicas: int | None = 1) -> str:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": containers}},
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return yaml.safe_dump({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec})


def managers(obj: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["manager"], e["operation"]): e for e in obj["metadata"].get("managedFields") or []}


def get(cluster: PodlifeProcess, kind: str, name: str) -> dict[str, Any]:
    return json.loads(cluster.kubectl("get", kind, name, "-o", "json", "--show-managed-fields").stdout)


def test_apply_twice_updates_values_and_removes_dropped_fields(cluster: PodlifeProcess) -> None:
    out = cluster.kubectl("apply", "--server-side", "-f", "-", input=configmap("ssa-twice", {"a": "1", "b": "2"}, {"team": "x"}))
    assert "serverside-applied" in out.stdout
    cm = get(cluster, "configmap", "ssa-twice")
    entry = managers(cm)[("kubectl", "Apply")]
    assert entry["fieldsType"] == "FieldsV1" and entry["apiVersion"] == "v1" and entry["time"]
    assert entry["fieldsV1"] == {"f:data": {"f:a": {}, "f:b": {}}, "f:metadata": {"f:labels": {"f:team": {}}}}

    cluster.kubectl("apply", "--server-side", "-f", "-", input=configmap("ssa-twice", {"a": "3"}))
    cm = get(cluster, "configmap", "ssa-twice")
    assert cm["data"] == {"a": "3"}
    assert "labels" not in cm["metadata"]
    assert managers(cm)[("kubectl", "Apply")]["fieldsV1"] == {"f:data": {"f:a": {}}}


def test_conflicting_manager_fails_until_it_forces(cluster: PodlifeProcess) -> None:
    cluster.kubectl("apply", "--server-side", "-f", "-", input=configmap("ssa-conflict", {"a": "1", "b": "2"}))
    other = configmap("ssa-conflict", {"a": "changed"})
    failed = cluster.kubectl("apply", "--server-side", "--field-manager=other", "-f", "-", input=other, check=False)
    assert failed.returncode != 0
    assert 'Apply failed with 1 conflict: conflict with "kubectl": .data.a' in failed.stderr
    assert get(cluster, "configmap", "ssa-conflict")["data"] == {"a": "1", "b": "2"}

    same = configmap("ssa-conflict", {"a": "1"})  # the same value: shared, no conflict
    cluster.kubectl("apply", "--server-side", "--field-manager=sharer", "-f", "-", input=same)

    cluster.kubectl("apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", "-", input=other)
    cm = get(cluster, "configmap", "ssa-conflict")
    assert cm["data"] == {"a": "changed", "b": "2"}
    owners = managers(cm)
    assert owners[("other", "Apply")]["fieldsV1"] == {"f:data": {"f:a": {}}}
    assert owners[("kubectl", "Apply")]["fieldsV1"] == {"f:data": {"f:b": {}}}
    assert ("sharer", "Apply") not in owners  # its only field was taken over


def test_conflict_status_over_http(cluster: PodlifeProcess) -> None:
    cluster.kubectl("create", "-f", "-", input=configmap("ssa-status", {"a": "1"}))
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa-status"}, "data": {"a": "2"}}
    path = "/api/v1/namespaces/default/configmaps/ssa-status"
    status, answer = cluster.http("PATCH", path + "?fieldManager=tool", body, content_type=APPLY)
    assert status == 409, answer
    assert answer["reason"] == "Conflict"
    assert answer["message"] == 'Apply failed with 1 conflict: conflict with "kubectl-create" using v1: .data.a'
    assert answer["details"]["causes"] == [{"reason": "FieldManagerConflict",
                                            "message": 'conflict with "kubectl-create" using v1', "field": ".data.a"}]
    status, answer = cluster.http("PATCH", path, body, content_type=APPLY)
    assert status == 422 and answer["reason"] == "Invalid"
    assert answer["message"] == 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch'
    status, answer = cluster.http("PATCH", path + "?fieldManager=tool&force=true&dryRun=All", body, content_type=APPLY)
    assert status == 200 and answer["data"] == {"a": "2"}
    assert cluster.http("GET", path)[1]["data"] == {"a": "1"}
    stale = {**body, "metadata": {"name": "ssa-status", "resourceVersion": "1"}}
    status, answer = cluster.http("PATCH", path + "?fieldManager=tool&force=true", stale, content_type=APPLY)
    assert status == 409 and "the object has been modified" in answer["message"]


def test_client_side_apply_then_server_side_migrates(cluster: PodlifeProcess) -> None:
    cluster.kubectl("apply", "-f", "-", input=configmap("ssa-migrate", {"a": "1", "b": "2"}))
    cm = get(cluster, "configmap", "ssa-migrate")
    assert ("kubectl-client-side-apply", "Update") in managers(cm)
    other = cluster.kubectl("apply", "--server-side", "--field-manager=other", "-f", "-",
                            input=configmap("ssa-migrate", {"a": "9"}), check=False)
    assert other.returncode != 0
    assert 'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using v1: .data.a' in other.stderr

    cluster.kubectl("apply", "--server-side", "-f", "-", input=configmap("ssa-migrate", {"a": "3", "b": "2"}))
    cm = get(cluster, "configmap", "ssa-migrate")
    assert cm["data"] == {"a": "3", "b": "2"}
    assert ("kubectl", "Apply") in managers(cm)
    last = json.loads(cm["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"])
    assert last["data"] == {"a": "3", "b": "2"}

    cluster.kubectl("apply", "--server-side", "-f", "-", input=configmap("ssa-migrate", {"a": "3"}))
    assert get(cluster, "configmap", "ssa-migrate")["data"] == {"a": "3"}


def test_get_shows_managed_fields_only_when_asked(cluster: PodlifeProcess) -> None:
    cluster.kubectl("apply", "--server-side", "-f", "-", input=configmap("ssa-show", {"a": "1"}))
    plain = cluster.kubectl("get", "configmap", "ssa-show", "-o", "yaml").stdout
    assert "managedFields" not in plain
    shown = yaml.safe_load(cluster.kubectl("get", "configmap", "ssa-show", "-o", "yaml", "--show-managed-fields").stdout)
    entry = shown["metadata"]["managedFields"][0]
    assert entry["manager"] == "kubectl" and entry["operation"] == "Apply"
    assert entry["fieldsV1"] == {"f:data": {"f:a": {}}}


def test_kubectl_diff_server_side(cluster: PodlifeProcess) -> None:
    manifest = configmap("ssa-diff", {"a": "1"})
    cluster.kubectl("apply", "--server-side", "-f", "-", input=manifest)
    same = cluster.kubectl("diff", "--server-side", "-f", "-", input=manifest, check=False)
    assert same.returncode == 0, same.stderr
    changed = cluster.kubectl("diff", "--server-side", "-f", "-", input=configmap("ssa-diff", {"a": "2"}), check=False)
    assert changed.returncode == 1, changed.stderr
    assert '-  a: "1"' in changed.stdout and '+  a: "2"' in changed.stdout
    assert get(cluster, "configmap", "ssa-diff")["data"] == {"a": "1"}  # a dry run


def test_deployment_containers_merge_by_name(cluster: PodlifeProcess) -> None:
    name = "ssa-deploy"
    cluster.kubectl("apply", "--server-side", "-f", "-", input=deployment(name, [{"name": "app", "image": "nginx:1"}]))
    sidecar = deployment(name, [{"name": "sidecar", "image": "busybox:1"}], replicas=None)
    cluster.kubectl("apply", "--server-side", "--field-manager=mesh", "-f", "-", input=sidecar)
    dep = get(cluster, "deployment", name)
    containers = dep["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [("app", "nginx:1"), ("sidecar", "busybox:1")]

    cluster.kubectl("apply", "--server-side", "-f", "-", input=deployment(name, [{"name": "app", "image": "nginx:2"}]))
    dep = get(cluster, "deployment", name)
    containers = dep["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [("app", "nginx:2"), ("sidecar", "busybox:1")]
    owners = managers(dep)
    mesh = owners[("mesh", "Apply")]["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
    assert list(mesh) == ['k:{"name":"sidecar"}']
    assert dep["spec"]["replicas"] == 1


def test_plain_writes_record_update_entries(cluster: PodlifeProcess) -> None:
    cluster.kubectl("create", "configmap", "ssa-updates", "--from-literal=a=1")
    cm = get(cluster, "configmap", "ssa-updates")
    assert managers(cm)[("kubectl-create", "Update")]["fieldsV1"] == {"f:data": {".": {}, "f:a": {}}}
    cluster.kubectl("label", "configmap", "ssa-updates", "team=x")
    cm = get(cluster, "configmap", "ssa-updates")
    assert managers(cm)[("kubectl-label", "Update")]["fieldsV1"] == {"f:metadata": {"f:labels": {".": {}, "f:team": {}}}}
    status, body = cluster.http("PATCH", "/api/v1/namespaces/default/configmaps/ssa-updates", {"data": {"a": "2"}},
                                content_type="application/merge-patch+json", headers={"User-Agent": "my-tool/1.0 (linux)"})
    assert status == 200
    owners = managers(body)
    assert owners[("my-tool", "Update")]["fieldsV1"] == {"f:data": {"f:a": {}}}
    assert owners[("kubectl-create", "Update")]["fieldsV1"] == {"f:data": {}}  # the map itself, no longer a


def test_status_subresource_apply(cluster: PodlifeProcess) -> None:
    name = "ssa-status-sub"
    cluster.kubectl("apply", "--server-side", "-f", "-", input=deployment(name, [{"name": "app", "image": "nginx:1"}], replicas=0))
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "status": {"conditions": [{"type": "Custom", "status": "True", "reason": "Test", "message": "set by apply"}]}}
    path = f"/apis/apps/v1/namespaces/default/deployments/{name}/status?fieldManager=status-tool&force=true"
    status, answer = cluster.http("PATCH", path, body, content_type=APPLY)
    assert status == 200, answer
    entry = managers(answer)[("status-tool", "Apply")]
    assert entry["subresource"] == "status"
    assert list(entry["fieldsV1"]) == ["f:status"]
