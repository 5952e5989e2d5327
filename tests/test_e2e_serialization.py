"""Bodies as Kubernetes writes them, and the APIService kind, through the real server.

Clients that print, diff or compare bodies (kubectl ``-v=8``, golden-file tests, operators
that hash objects) see the same bytes as from Kubernetes: ``kind``, ``apiVersion``,
``metadata``, ``spec``, ``status`` first, ``ObjectMeta`` in its struct order, ``Status``
errors in theirs, and a newline after every JSON body.
"""

from __future__ import annotations

import json

import pytest

from podlife.machinery.field_order import METADATA_ORDER, put_in_kubernetes_order

from .cluster_harness import PodlifeProcess


def raw_get(cluster: PodlifeProcess, path: str, method: str = "GET", body: bytes | None = None) -> tuple[int, bytes]:
    """Status and the exact bytes of an answer (no JSON decoding, which would hide order)."""
    answer = cluster.request(method, path, raw=body)
    return answer.status, answer.body


def keys_in_order(raw: bytes) -> list[str]:
    return list(json.loads(raw))  # json keeps the document's key order


# ---- field order, unit level -----------------------------------------------------------------


def test_reordering_puts_named_fields_first_and_keeps_unnamed_ones_after() -> None:
    obj = {"spec": {}, "status": {}, "zzz": 1, "metadata": {"labels": {}, "name": "a", "uid": "u"},
           "apiVersion": "v1", "kind": "Pod"}
    put_in_kubernetes_order(obj)
    assert list(obj) == ["kind", "apiVersion", "metadata", "spec", "status", "zzz"]
    assert list(obj["metadata"]) == ["name", "uid", "labels"]


def test_configmap_top_level_follows_its_struct() -> None:
    obj = {"data": {"a": "1"}, "binaryData": {}, "metadata": {"name": "c"}, "immutable": True,
           "kind": "ConfigMap", "apiVersion": "v1"}
    put_in_kubernetes_order(obj)
    assert list(obj) == ["kind", "apiVersion", "metadata", "immutable", "data", "binaryData"]


def test_an_ordered_object_is_left_as_it_is() -> None:
    meta = {"name": "a", "namespace": "n"}
    obj = {"kind": "Pod", "apiVersion": "v1", "metadata": meta, "spec": {}}
    put_in_kubernetes_order(obj)
    assert obj["metadata"] is meta and list(obj) == ["kind", "apiVersion", "metadata", "spec"]


# ---- through the server ------------------------------------------------------------------------


def test_objects_start_with_kind_api_version_metadata(cluster: PodlifeProcess) -> None:
    # kubectl writes apiVersion before kind; Kubernetes answers with kind first
    cluster.kubectl("create", "configmap", "ordered", "--from-literal=a=1")
    status, raw = raw_get(cluster, "/api/v1/namespaces/default/configmaps/ordered")
    assert status == 200
    assert raw.startswith(b'{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"ordered","namespace":"default"')
    assert keys_in_order(raw) == ["kind", "apiVersion", "metadata", "data"]
    assert raw.endswith(b"}\n")


def test_pod_metadata_follows_object_meta_order(cluster: PodlifeProcess) -> None:
    pod = {"spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "1"]}]},
           "metadata": {"annotations": {"a": "b"}, "labels": {"app": "x"}, "name": "ordered-pod"},
           "kind": "Pod", "apiVersion": "v1"}
    cluster.kubectl("create", "-f", "-", input=json.dumps(pod))
    cluster.kubectl("label", "pod", "ordered-pod", "extra=1")  # a patch adds to metadata
    status, raw = raw_get(cluster, "/api/v1/namespaces/default/pods/ordered-pod")
    assert status == 200
    assert keys_in_order(raw)[:5] == ["kind", "apiVersion", "metadata", "spec", "status"]
    meta_keys = list(json.loads(raw)["metadata"])
    assert meta_keys == [k for k in METADATA_ORDER if k in meta_keys]
    assert meta_keys.index("resourceVersion") < meta_keys.index("creationTimestamp") < meta_keys.index("managedFields")
    cluster.kubectl("delete", "pod", "ordered-pod", "--grace-period=0", "--force", check=False)


def test_lists_and_watch_events_share_the_order(cluster: PodlifeProcess) -> None:
    cluster.kubectl("create", "configmap", "ordered-list", "--from-literal=a=1")
    status, raw = raw_get(cluster, "/api/v1/namespaces/default/configmaps?fieldSelector=metadata.name%3Dordered-list")
    assert status == 200 and raw.endswith(b"]}\n")
    assert keys_in_order(raw) == ["kind", "apiVersion", "metadata", "items"]
    assert list(json.loads(raw)["items"][0])[:3] == ["kind", "apiVersion", "metadata"]
    status, raw = raw_get(cluster, "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1"
                                   "&fieldSelector=metadata.name%3Dordered-list")
    first = raw.splitlines()[0]
    assert status == 200 and first.startswith(b'{"type":"ADDED","object":{"kind":"ConfigMap","apiVersion":"v1"')


def test_status_errors_follow_the_status_struct(cluster: PodlifeProcess) -> None:
    cluster.kubectl("create", "configmap", "twice")
    status, raw = raw_get(cluster, "/api/v1/namespaces/default/configmaps", "POST",
                          json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "twice"}}).encode())
    assert status == 409
    assert keys_in_order(raw) == ["kind", "apiVersion", "metadata", "status", "message", "reason", "details", "code"]
    assert raw.endswith(b',"code":409}\n')
    status, raw = raw_get(cluster, "/api/v1/namespaces/default/configmaps/absent")
    assert status == 404 and keys_in_order(raw)[-2:] == ["details", "code"]


# ---- APIService ---------------------------------------------------------------------------------

API_SERVICE = """apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1alpha1.wardle.example.io}
spec: {group: wardle.example.io, version: v1alpha1, groupPriorityMinimum: 1000, versionPriority: 15,
       service: {name: api, namespace: default}}
"""


def test_apiservice_is_served(cluster: PodlifeProcess) -> None:
    cluster.kubectl("create", "-f", "-", input=API_SERVICE)
    got = cluster.kubectl_json("get", "apiservice", "v1alpha1.wardle.example.io")
    assert got["spec"]["service"] == {"name": "api", "namespace": "default", "port": 443}
    available = {c["type"]: c for c in got["status"]["conditions"]}["Available"]
    assert available["status"] == "False" and available["reason"] == "ServiceNotFound"
    table = cluster.kubectl("get", "apiservices").stdout
    assert "v1alpha1.wardle.example.io" in table and "default/api" in table
    cluster.kubectl("delete", "apiservice", "v1alpha1.wardle.example.io")
    assert cluster.kubectl("get", "apiservice", "v1alpha1.wardle.example.io", check=False).returncode != 0


@pytest.mark.parametrize("old, new, field", [
    ("name: v1alpha1.wardle.example.io", "name: wrong.wardle.example.io", "metadata.name"),
    ("groupPriorityMinimum: 1000", "groupPriorityMinimum: 0", "spec.groupPriorityMinimum"),
    ("versionPriority: 15", "versionPriority: 1001", "spec.versionPriority"),
    ("service: {name: api, namespace: default}", "service: {name: api}", "spec.service.namespace"),
])
def test_apiservice_validation_names_the_field(cluster: PodlifeProcess, old: str, new: str, field: str) -> None:
    result = cluster.kubectl("create", "-f", "-", input=API_SERVICE.replace(old, new), check=False)
    assert result.returncode != 0 and field in result.stderr and "is invalid" in result.stderr
    assert "wardle" not in cluster.kubectl("get", "apiservices", "-o", "name").stdout
