"""Every served group-version has its local APIService, as ``kubectl get apiservices`` shows on Kubernetes."""

from __future__ import annotations

import json

from .cluster_harness import PodlifeProcess, wait_for

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "gadgets.registration.example.io"},
    "spec": {"group": "registration.example.io", "scope": "Namespaced",
             "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {"type": "object"}}},
                          {"name": "v2", "served": False, "storage": False,
                           "schema": {"openAPIV3Schema": {"type": "object"}}}]},
}


def api_service(cluster: PodlifeProcess, name: str) -> dict | None:
    status, body = cluster.http("GET", f"/apis/apiregistration.k8s.io/v1/apiservices/{name}")
    return body if status == 200 else None


def test_builtin_group_versions_are_local_and_available(cluster: PodlifeProcess) -> None:
    core = wait_for(lambda: api_service(cluster, "v1."), 30, what="the APIService v1.")
    assert core["spec"] == {"group": "", "version": "v1", "groupPriorityMinimum": 18000, "versionPriority": 1}
    assert core["metadata"]["labels"] == {"kube-aggregator.kubernetes.io/automanaged": "onstart"}
    assert {c["type"]: c["status"] for c in core["status"]["conditions"]} == {"Available": "True"}
    apps = wait_for(lambda: api_service(cluster, "v1.apps"), 30, what="the APIService v1.apps")
    assert (apps["spec"]["groupPriorityMinimum"], apps["spec"]["versionPriority"]) == (17800, 15)
    table = cluster.kubectl("get", "apiservices").stdout
    assert any(line.split()[:3] == ["v1.apps", "Local", "True"] for line in table.splitlines()), table


def test_crd_versions_come_and_go_with_the_crd(cluster: PodlifeProcess) -> None:
    cluster.kubectl("create", "-f", "-", input=json.dumps(CRD))
    served = wait_for(lambda: api_service(cluster, "v1.registration.example.io"), 30, what="the CRD's APIService")
    assert served["metadata"]["labels"] == {"kube-aggregator.kubernetes.io/automanaged": "true"}
    assert served["spec"]["groupPriorityMinimum"] == 1000
    assert api_service(cluster, "v2.registration.example.io") is None  # not served
    cluster.kubectl("delete", "crd", "gadgets.registration.example.io")
    wait_for(lambda: api_service(cluster, "v1.registration.example.io") is None, 30, what="the APIService removed")


def test_a_changed_builtin_api_service_is_put_back(cluster: PodlifeProcess) -> None:
    wait_for(lambda: api_service(cluster, "v1.batch"), 30, what="the APIService v1.batch")
    cluster.kubectl("patch", "apiservice", "v1.batch", "--type=merge", "-p", '{"spec":{"versionPriority":3}}')
    # the registration controller watches APIServices, as Kubernetes' autoregister controller does
    wait_for(lambda: api_service(cluster, "v1.batch")["spec"]["versionPriority"] == 15, 30, what="v1.batch restored")
