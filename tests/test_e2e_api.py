"""API behaviour through the real server: auth, bad input, versions, watch, selectors, restart."""

from __future__ import annotations

import json

import pytest

from .cluster_harness import PodlifeProcess, wait_for

pytestmark = pytest.mark.e2e


def test_version_and_health_are_public(cluster: PodlifeProcess) -> None:
    status, version = cluster.http("GET", "/version/?timeout=5s", auth=False)
    assert status == 200 and version["major"] == "1" and version["minor"] == "37"
    for path in ("/healthz", "/livez", "/readyz"):
        assert cluster.http("GET", path, auth=False)[0] == 200


def test_requests_without_a_valid_token_get_401(cluster: PodlifeProcess) -> None:
    status, body = cluster.http("GET", "/api/v1/pods", auth=False)
    assert status == 401 and body["kind"] == "Status" and body["reason"] == "Unauthorized"
    status, body = cluster.http("GET", "/api/v1/pods", auth=False, headers={"Authorization": "Bearer nope"})
    assert status == 401


def test_discovery_for_kubectl(cluster: PodlifeProcess) -> None:
    out = cluster.kubectl("api-resources").stdout
    for name in ("pods", "nodes", "namespaces", "events", "configmaps", "secrets", "services", "endpoints", "leases",
                 "ports", "subnets"):
        assert f"\n{name} " in "\n" + out, f"{name} missing from api-resources"
    status, body = cluster.http("GET", "/api/v1")
    names = {r["name"] for r in body["resources"]}
    assert {"pods/status", "pods/binding", "pods/log", "nodes/status"} <= names


@pytest.mark.parametrize(("manifest", "field"), [
    ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "Bad_Name"},
      "spec": {"containers": [{"name": "c", "image": "x"}]}}, "metadata.name"),
    ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nocontainers"}, "spec": {"containers": []}},
     "spec.containers"),
    ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "noimage"}, "spec": {"containers": [{"name": "c"}]}},
     "spec.containers[0].image"),
    ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "UPPER"}}, "metadata.name"),
])
def test_invalid_objects_get_422_naming_the_field(cluster: PodlifeProcess, manifest: dict, field: str) -> None:
    plural = "pods" if manifest["kind"] == "Pod" else "configmaps"
    status, body = cluster.http("POST", f"/api/v1/namespaces/default/{plural}", manifest)
    assert status == 422, body
    assert body["reason"] == "Invalid" and field in body["message"]
    assert field in [c["field"] for c in body["details"]["causes"]]
    assert cluster.http("GET", f"/api/v1/namespaces/default/{plural}/{manifest['metadata']['name']}")[0] == 404


@pytest.mark.parametrize(("raw", "content_type"), [
    (b'{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"', "application/json"),
    (b"apiVersion: v1\nkind: Pod\nmetadata: {name: [unclosed", "application/yaml"),
    (b"", "application/json"),
    (b"[1, 2]", "application/json"),
])
def test_malformed_bodies_get_400_and_nothing_is_stored(cluster: PodlifeProcess, raw: bytes, content_type: str) -> None:
    before = cluster.http("GET", "/api/v1/namespaces/default/pods")[1]["items"]
    status, body = cluster.http("POST", "/api/v1/namespaces/default/pods", raw=raw, content_type=content_type)
    assert status == 400 and body["kind"] == "Status" and body["reason"] == "BadRequest", body
    assert cluster.http("GET", "/api/v1/namespaces/default/pods")[1]["items"] == before


def test_unknown_field_rejected_by_kubectl_create(cluster: PodlifeProcess) -> None:
    manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "typo"}, "dataa": {"a": "b"}}
    result = cluster.kubectl("create", "-f", "-", input=json.dumps(manifest), check=False)
    assert result.returncode != 0 and 'unknown field "dataa"' in result.stderr
    assert cluster.kubectl("get", "configmap", "typo", check=False).returncode != 0


def test_conflict_on_stale_resource_version(cluster: PodlifeProcess) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cas"}, "data": {"v": "1"}}
    status, created = cluster.http("POST", "/api/v1/namespaces/default/configmaps", cm)
    assert status == 201
    first = dict(created, data={"v": "2"})
    assert cluster.http("PUT", "/api/v1/namespaces/default/configmaps/cas", first)[0] == 200
    stale = dict(created, data={"v": "3"})
    status, body = cluster.http("PUT", "/api/v1/namespaces/default/configmaps/cas", stale)
    assert status == 409 and body["reason"] == "Conflict"
    assert cluster.http("GET", "/api/v1/namespaces/default/configmaps/cas")[1]["data"] == {"v": "2"}


def test_generate_name_uid_and_patches(cluster: PodlifeProcess) -> None:
    status, created = cluster.http("POST", "/api/v1/namespaces/default/configmaps",
                                   {"metadata": {"generateName": "gen-"}, "data": {"a": "1"}})
    assert status == 201
    name = created["metadata"]["name"]
    assert name.startswith("gen-") and len(name) == 9 and created["metadata"]["uid"]
    assert created["metadata"]["creationTimestamp"].endswith("Z")
    path = f"/api/v1/namespaces/default/configmaps/{name}"
    status, merged = cluster.http("PATCH", path, {"data": {"b": "2"}}, content_type="application/merge-patch+json")
    assert status == 200 and merged["data"] == {"a": "1", "b": "2"}
    status, patched = cluster.http("PATCH", path, [{"op": "replace", "path": "/data/a", "value": "9"}],
                                   content_type="application/json-patch+json")
    assert status == 200 and patched["data"]["a"] == "9"
    status, body = cluster.http("PATCH", path, [{"op": "test", "path": "/data/a", "value": "nope"}],
                                content_type="application/json-patch+json")
    assert status == 422, body
    cluster.kubectl("patch", "configmap", name, "-p", '{"data":{"c":"3"}}')  # strategic merge (kubectl's default)
    assert cluster.kubectl_json("get", "configmap", name)["data"] == {"a": "9", "b": "2", "c": "3"}


def test_label_and_field_selectors(cluster: PodlifeProcess) -> None:
    for i, tier in enumerate(["web", "db", "web"]):
        cluster.http("POST", "/api/v1/namespaces/default/configmaps",
                     {"metadata": {"name": f"sel-{i}", "labels": {"tier": tier, "sel": "yes"}}})
    names = cluster.kubectl("get", "configmaps", "-l", "tier=web,sel", "-o", "name").stdout.split()
    assert names == ["configmap/sel-0", "configmap/sel-2"]
    names = cluster.kubectl("get", "configmaps", "-l", "tier notin (web)", "-o", "name").stdout.split()
    assert "configmap/sel-1" in names and "configmap/sel-0" not in names
    names = cluster.kubectl("get", "configmaps", "--field-selector", "metadata.name=sel-1", "-o", "name").stdout.split()
    assert names == ["configmap/sel-1"]
    status, body = cluster.http("GET", "/api/v1/namespaces/default/configmaps?fieldSelector=spec.nope%3Dx")
    assert status == 400 and "field label not supported" in body["message"]


def test_watch_from_resource_version_and_too_old(cluster: PodlifeProcess) -> None:
    listed = cluster.http("GET", "/api/v1/namespaces/default/configmaps")[1]
    rv = listed["metadata"]["resourceVersion"]
    cluster.http("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "watched"}})
    events = cluster.watch_events(f"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=1")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "watched")]
    status, body = cluster.http("GET", "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=-1&timeoutSeconds=1")
    assert status == 400 and body["reason"] == "BadRequest"


def test_restart_keeps_objects(fresh_cluster: PodlifeProcess) -> None:
    fresh_cluster.start()
    fresh_cluster.kubectl("create", "configmap", "survivor", "--from-literal=k=v")
    before = fresh_cluster.kubectl_json("get", "configmap", "survivor")
    assert fresh_cluster.stop() == 0
    fresh_cluster.start()
    after = fresh_cluster.kubectl_json("get", "configmap", "survivor")
    assert after["metadata"]["uid"] == before["metadata"]["uid"] and after["data"] == {"k": "v"}
    assert int(after["metadata"]["resourceVersion"]) == int(before["metadata"]["resourceVersion"])
    wait_for(lambda: " Ready " in fresh_cluster.kubectl("get", "nodes").stdout, 30, what="node Ready after restart")
    # the new server's watch window starts at its start: an older version is 410 Expired
    old_rv = int(before["metadata"]["resourceVersion"]) - 1
    event = fresh_cluster.watch_events(f"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={old_rv}")[0]
    assert event["type"] == "ERROR" and event["object"]["code"] == 410 and event["object"]["reason"] == "Expired"


def test_paged_list_is_one_consistent_snapshot(cluster: PodlifeProcess) -> None:
    for i in range(5):
        cluster.http("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": f"page-{i}", "labels": {"page": "y"}}})
    status, first = cluster.http("GET", "/api/v1/namespaces/default/configmaps?labelSelector=page%3Dy&limit=2")
    assert status == 200 and [i["metadata"]["name"] for i in first["items"]] == ["page-0", "page-1"]
    # changes after the first page do not show in the next pages
    cluster.http("DELETE", "/api/v1/namespaces/default/configmaps/page-3")
    cluster.http("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "page-9", "labels": {"page": "y"}}})
    names, page = [], first
    while page["metadata"].get("continue"):
        token = page["metadata"]["continue"]
        status, page = cluster.http("GET", f"/api/v1/namespaces/default/configmaps?labelSelector=page%3Dy&limit=2&continue={token}")
        assert status == 200 and page["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
        names += [i["metadata"]["name"] for i in page["items"]]
    assert names == ["page-2", "page-3", "page-4"]
    status, body = cluster.http("GET", "/api/v1/namespaces/default/configmaps?continue=bm90LWEtdG9rZW4")
    assert status == 400


def test_resource_version_match(cluster: PodlifeProcess) -> None:
    status, created = cluster.http("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "rvm"}, "data": {"v": "1"}})
    rv = created["metadata"]["resourceVersion"]
    cluster.http("PATCH", "/api/v1/namespaces/default/configmaps/rvm", {"data": {"v": "2"}}, content_type="application/merge-patch+json")
    status, exact = cluster.http("GET", f"/api/v1/namespaces/default/configmaps?resourceVersion={rv}&resourceVersionMatch=Exact")
    assert status == 200 and exact["metadata"]["resourceVersion"] == rv
    assert next(i for i in exact["items"] if i["metadata"]["name"] == "rvm")["data"] == {"v": "1"}
    status, newer = cluster.http("GET", f"/api/v1/namespaces/default/configmaps?resourceVersion={rv}&resourceVersionMatch=NotOlderThan")
    assert next(i for i in newer["items"] if i["metadata"]["name"] == "rvm")["data"] == {"v": "2"}
    assert cluster.http("GET", "/api/v1/namespaces/default/configmaps?resourceVersionMatch=Exact")[0] == 422
    status, body = cluster.http("GET", "/api/v1/namespaces/default/configmaps?resourceVersion=999999999&resourceVersionMatch=Exact")
    assert status == 504 and body["reason"] == "Timeout"


def test_kubelets_are_only_dialled_on_loopback(cluster: PodlifeProcess) -> None:
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "far-away"},
            "status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.10"}],
                       "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}}
    assert cluster.http("POST", "/api/v1/nodes", node)[0] == 201
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "far-pod"},
           "spec": {"nodeName": "far-away", "containers": [{"name": "c", "image": "x"}]}}
    assert cluster.http("POST", "/api/v1/namespaces/default/pods", pod)[0] == 201
    status, body = cluster.http("GET", "/api/v1/namespaces/default/pods/far-pod/log")
    assert status == 400 and "only connects to kubelets on this machine" in body["message"]
    cluster.http("DELETE", "/api/v1/namespaces/default/pods/far-pod", {"gracePeriodSeconds": 0})
    cluster.http("DELETE", "/api/v1/nodes/far-away")
