"""Kinds added by a CRD after start are cleaned up like built-in ones (issue 9: Client discovery).

The namespace controller empties a deleted namespace of every kind the server serves at that
moment, and the garbage collector follows CRDs as they come, so custom resources go with their
namespace and with their owners; an HTTP client discovers the same kinds the server serves.
"""

from __future__ import annotations

import asyncio
import json

from podlife.client.http import HTTPClient

from .cluster_harness import PodlifeProcess, wait_for

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.cleanup.example.io"},
    "spec": {"group": "cleanup.example.io", "scope": "Namespaced",
             "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]},
}


def widget(name: str, namespace: str, owner: dict | None = None) -> str:
    meta: dict = {"name": name, "namespace": namespace}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap", "name": owner["metadata"]["name"],
                                    "uid": owner["metadata"]["uid"]}]
    return json.dumps({"apiVersion": "cleanup.example.io/v1", "kind": "Widget", "metadata": meta, "spec": {"size": 1}})


def gone(cluster: PodlifeProcess, *args: str) -> bool:
    return cluster.kubectl("get", *args, check=False).returncode != 0


def ensure_crd(cluster: PodlifeProcess) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps(CRD))
    cluster.kubectl("wait", "--for=condition=Established", "crd/widgets.cleanup.example.io", "--timeout=30s")


def test_deleting_a_namespace_deletes_custom_resources_of_a_later_crd(cluster: PodlifeProcess) -> None:
    ensure_crd(cluster)
    cluster.kubectl("create", "namespace", "cleanup-ns")
    cluster.kubectl("create", "-f", "-", input=widget("in-ns", "cleanup-ns"))
    cluster.kubectl("delete", "namespace", "cleanup-ns", "--wait=false")
    wait_for(lambda: gone(cluster, "namespace", "cleanup-ns"), 60, what="the namespace and its widget gone")


def test_custom_resources_are_collected_with_their_owner(cluster: PodlifeProcess) -> None:
    ensure_crd(cluster)
    cluster.kubectl("create", "configmap", "widget-owner")
    owner = cluster.kubectl_json("get", "configmap", "widget-owner")
    cluster.kubectl("create", "-f", "-", input=widget("owned", "default", owner))
    cluster.kubectl("delete", "configmap", "widget-owner")
    wait_for(lambda: gone(cluster, "widget", "owned"), 60, what="the owned widget collected")


def test_http_discovery_lists_what_the_server_serves(cluster: PodlifeProcess) -> None:
    ensure_crd(cluster)

    async def discover() -> list:
        client = HTTPClient.from_kubeconfig(str(cluster.kubeconfig))
        try:
            return await client.discover()
        finally:
            await client.close()

    found = {(r.group, r.version, r.plural): r for r in asyncio.run(discover())}
    assert found[("", "v1", "pods")].namespaced and found[("", "v1", "pods")].kind == "Pod"
    assert not found[("", "v1", "nodes")].namespaced
    assert ("cleanup.example.io", "v1", "widgets") in found
    assert not any("/" in plural for _g, _v, plural in found)  # subresources are not kinds
    assert ("authorization.k8s.io", "v1", "selfsubjectaccessreviews") not in found  # create-only
