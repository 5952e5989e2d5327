"""Unknown fields are dropped as Kubernetes' decoder drops them, and ``Warn`` is the default.

Through the real server: a body with a field the 1.37 schema does not know is refused
with ``Strict``, stored without the field and answered with a ``Warning`` header with
``Warn`` (also when the client sends no ``fieldValidation``, as the official Python
client does), and stored without it silently with ``Ignore``.
"""

from __future__ import annotations

import json

import pytest

from podlife.api.fieldvalidation import drop_field

from .cluster_harness import PodlifeProcess

CM = "/api/v1/namespaces/default/configmaps"


def post(cluster: PodlifeProcess, path: str, body: dict) -> tuple[int, dict, str]:
    """Status, decoded body and the Warning headers (joined) of a POST."""
    answer = cluster.request("POST", path, body)
    return answer.status, json.loads(answer.body), "\n".join(answer.headers.get_all("Warning") or [])


def configmap(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"a": "b"}, "colour": "red"},
            "data": {"k": "v"}, "extra": {"deep": 1}}


@pytest.mark.parametrize("query, warned", [("", True), ("?fieldValidation=Warn", True), ("?fieldValidation=Ignore", False)])
def test_unknown_fields_are_dropped(cluster: PodlifeProcess, query: str, warned: bool) -> None:
    name = f"unknown-{query.rpartition('=')[2].lower() or 'default'}"
    status, created, warning = post(cluster, CM + query, configmap(name))
    assert status == 201, created
    assert "extra" not in created and "colour" not in created["metadata"]
    stored = cluster.http("GET", f"{CM}/{name}")[1]
    assert "extra" not in stored and "colour" not in stored["metadata"] and stored["data"] == {"k": "v"}
    assert stored["metadata"]["labels"] == {"a": "b"}
    assert warning.splitlines() == ([r'299 - "unknown field \"metadata.colour\""', r'299 - "unknown field \"extra\""']
                                    if warned else [])
    assert bool(warning) is warned


def test_a_warning_with_control_characters_is_left_out_and_the_write_answered(cluster: PodlifeProcess) -> None:
    """An unknown field named with a NUL and a line break: no raw bytes in a header, a clean 201."""
    body = {**configmap("unknown-control"), "bad\u0000name\r\nX-Injected: 1": 1}
    status, created, warning = post(cluster, CM, body)
    assert status == 201, created
    assert warning.splitlines() == [r'299 - "unknown field \"metadata.colour\""', r'299 - "unknown field \"extra\""']
    assert cluster.http("GET", f"{CM}/unknown-control")[0] == 200


def test_strict_refuses_unknown_fields_and_stores_nothing(cluster: PodlifeProcess) -> None:
    status, body, _ = post(cluster, CM + "?fieldValidation=Strict", configmap("unknown-strict"))
    assert status == 400 and body["reason"] == "BadRequest"
    assert 'strict decoding error: unknown field "metadata.colour", unknown field "extra"' in body["message"]
    assert cluster.http("GET", f"{CM}/unknown-strict")[0] == 404


def test_a_pod_keeps_every_known_field(cluster: PodlifeProcess) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "unknown-in-container"},
           "spec": {"containers": [{"name": "c", "image": "busybox", "imagee": "typo",
                                    "command": ["sleep", "1"], "lifecycle": {"stopSignal": "SIGUSR1"}}]}}
    status, created, warning = post(cluster, "/api/v1/namespaces/default/pods", pod)
    assert status == 201, created
    container = created["spec"]["containers"][0]
    assert "imagee" not in container and container["lifecycle"] == {"stopSignal": "SIGUSR1"}
    assert warning == r'299 - "unknown field \"spec.containers[0].imagee\""'
    cluster.http("DELETE", "/api/v1/namespaces/default/pods/unknown-in-container?gracePeriodSeconds=0")


def test_dropping_copies_what_it_passes_through() -> None:
    shared = {"containers": [{"name": "c", "imagee": "x"}]}
    obj = {"spec": shared}
    drop_field(obj, ("spec", "containers", 0, "imagee"))
    assert obj == {"spec": {"containers": [{"name": "c"}]}}
    assert shared == {"containers": [{"name": "c", "imagee": "x"}]}  # the shared version is untouched


def test_dropping_a_map_entry() -> None:
    obj = {"data": {"a": {"x": 1, "y": 2}}}
    drop_field(obj, ("data", ("a",), "y"))
    assert obj == {"data": {"a": {"x": 1}}}


def test_kubectl_prints_the_warning_as_kubernetes_sends_it(cluster: PodlifeProcess) -> None:
    manifest = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kubectl-warned"},
                           "data": {"k": "v"}, "extra": 1})
    result = cluster.kubectl("create", "--validate=warn", "-f", "-", input=manifest)
    assert 'Warning: unknown field "extra"' in result.stderr
    assert "extra" not in cluster.kubectl_json("get", "configmap", "kubectl-warned")
