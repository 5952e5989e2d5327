"""Tests for podlife.api.openapi: the /openapi/v3 root and per-group-version documents."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import orjson
import pytest

from podlife.api import openapi as O
from podlife.api.openapi import ResourceInfo
from podlife.registry.schemas.custom import CustomSchemas

CORE = [
    ResourceInfo("pods", "Pod", True,
                 ("status", "log", "exec", "attach", "portforward", "binding", "eviction", "ephemeralcontainers")),
    ResourceInfo("namespaces", "Namespace", False, ("status", "finalize")),
    ResourceInfo("configmaps", "ConfigMap", True),
    ResourceInfo("events", "Event", True),
]
APPS = [ResourceInfo("deployments", "Deployment", True, ("status", "scale"))]
PORT_SCHEMA = {
    "type": "object",
    "description": "Port is a network port of a pod on a simulated node.",
    "properties": {
        "spec": {"type": "object", "description": "Desired port.",
                 "properties": {"nodeName": {"type": "string", "description": "Node of the port."},
                                "number": {"type": "integer", "format": "int32"}}},
        "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
    },
}
NETWORK = [ResourceInfo("ports", "Port", True, ("status",), schema=PORT_SCHEMA),
           ResourceInfo("subnets", "Subnet", True)]


def doc(group: str, version: str, resources: list[Any], schemas: CustomSchemas | None = None) -> dict[str, Any]:
    return orjson.loads(O.openapi_v3_document(group, version, resources, schemas))


@pytest.fixture(scope="module")
def core() -> dict[str, Any]:
    return doc("", "v1", CORE)


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Follow $ref / single allOf like kubectl explain does."""
    while True:
        ref = schema.get("$ref")
        if ref is None and len(schema.get("allOf", [])) == 1 and "properties" not in schema:
            ref = schema["allOf"][0].get("$ref")
        if ref is None:
            return schema
        schema = document["components"]["schemas"][ref.rsplit("/", 1)[-1]]


def explain(document: dict[str, Any], kind: str, *path: str) -> dict[str, Any]:
    schema = next(s for s in document["components"]["schemas"].values()
                  if any(g["kind"] == kind for g in s.get("x-kubernetes-group-version-kind", ())))
    for field in path:
        schema = resolve(document, schema)
        while "items" in schema:
            schema = resolve(document, schema["items"])
        schema = schema["properties"][field]
    return schema


# ---------------------------------------------------------------------------
# Root
# ---------------------------------------------------------------------------


def test_root_lists_group_versions_with_hashes() -> None:
    root = O.openapi_v3_root([("", "v1", CORE), ("apps", "v1", APPS)])
    assert set(root["paths"]) == {"api/v1", "apis/apps/v1"}
    url = root["paths"]["api/v1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/api/v1?hash=")
    digest = url.split("hash=")[1]
    assert len(digest) == 128 and digest == digest.upper()
    assert digest == O.document_hash("", "v1", CORE)
    assert root["paths"]["apis/apps/v1"]["serverRelativeURL"].startswith("/openapi/v3/apis/apps/v1?hash=")


def test_root_accepts_pairs_and_mappings() -> None:
    by_map = O.openapi_v3_root({("", "v1"): CORE})
    O.openapi_v3_document("", "v1", CORE)
    by_pairs = O.openapi_v3_root([("", "v1")])
    assert by_map == by_pairs


def test_hash_is_stable_and_tracks_inputs() -> None:
    h = O.document_hash("", "v1", CORE)
    assert h == O.document_hash("", "v1", list(reversed(CORE)))
    assert h != O.document_hash("", "v1", CORE[:2])
    assert h != O.document_hash("", "v2", CORE)
    changed = [*NETWORK[:1], ResourceInfo("subnets", "Subnet", True, schema={"type": "object"})]
    assert O.document_hash("network.podlife.io", "v1", NETWORK) != O.document_hash(
        "network.podlife.io", "v1", changed)
    assert O.document_etag("", "v1", CORE) == f'"{h}"'


def test_hash_is_stable_across_processes() -> None:
    code = ("from podlife.api.openapi import ResourceInfo, document_hash;"
            "print(document_hash('apps', 'v1', [ResourceInfo('deployments', 'Deployment', True, ('status', 'scale'))]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == O.document_hash("apps", "v1", APPS)


def test_import_builds_nothing() -> None:
    code = ("import podlife.api.openapi, podlife.api.strategic_merge;"
            "from podlife.registry.schemas import loader; print(loader._definitions is None)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


# ---------------------------------------------------------------------------
# Documents
# ---------------------------------------------------------------------------


def test_document_header(core: dict[str, Any]) -> None:
    assert core["openapi"] == "3.0.0"
    assert core["info"]["title"] == "Kubernetes"
    assert core["info"]["version"].startswith("v1.37")


def test_document_is_cached_bytes() -> None:
    first = O.openapi_v3_document("", "v1", CORE)
    assert isinstance(first, bytes)
    assert O.openapi_v3_document("", "v1", list(CORE)) is first


def test_pod_schema_has_gvk_and_descriptions(core: dict[str, Any]) -> None:
    schemas = core["components"]["schemas"]
    pod = schemas["io.k8s.api.core.v1.Pod"]
    assert pod["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "Pod", "version": "v1"}]
    assert pod["description"]
    assert pod["properties"]["spec"]["allOf"] == [{"$ref": "#/components/schemas/io.k8s.api.core.v1.PodSpec"}]
    for name in ("io.k8s.api.core.v1.PodList", "io.k8s.api.core.v1.Container", "io.k8s.api.core.v1.Probe",
                 "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
                 "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions", "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
                 "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent", "io.k8s.api.core.v1.Binding",
                 "io.k8s.api.policy.v1.Eviction", "io.k8s.apimachinery.pkg.api.resource.Quantity"):
        assert name in schemas, name
    assert "io.k8s.api.apps.v1.Deployment" not in schemas


def test_every_ref_resolves(core: dict[str, Any]) -> None:
    schemas = core["components"]["schemas"]
    missing: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            ref = value.get("$ref")
            if isinstance(ref, str) and ref.rsplit("/", 1)[-1] not in schemas:
                missing.append(ref)
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(core)
    assert missing == []


def test_explain_pod_spec_containers_liveness_probe(core: dict[str, Any]) -> None:
    probe = explain(core, "Pod", "spec", "containers", "livenessProbe")
    assert "liveness" in probe["description"]
    fields = resolve(core, probe)["properties"]
    assert {"httpGet", "exec", "tcpSocket", "grpc", "initialDelaySeconds"} <= set(fields)
    port = explain(core, "Pod", "spec", "containers", "livenessProbe", "httpGet", "port")
    assert resolve(core, port)["oneOf"]
    assert explain(core, "Pod", "spec", "containers", "image")["type"] == "string"


def test_patch_operations_carry_gvk_and_field_validation(core: dict[str, Any]) -> None:
    item = core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]
    patch = item["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert patch["operationId"] == "patchCoreV1NamespacedPod"
    assert {p["name"] for p in patch["parameters"]} >= {"fieldValidation", "dryRun", "fieldManager", "force"}
    content = patch["requestBody"]["content"]
    assert set(content) == {"application/apply-patch+yaml", "application/json-patch+json",
                            "application/merge-patch+json", "application/strategic-merge-patch+json"}
    assert content["application/strategic-merge-patch+json"]["schema"] == {
        "$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"}
    # Every PATCH for the Pod GVK (kubectl checks the first one it finds) has the parameter.
    for path_item in core["paths"].values():
        op = path_item.get("patch")
        if op and op["x-kubernetes-group-version-kind"]["kind"] == "Pod":
            assert "fieldValidation" in {p["name"] for p in op["parameters"]}


def test_crud_operations(core: dict[str, Any]) -> None:
    paths = core["paths"]
    coll = paths["/api/v1/namespaces/{namespace}/pods"]
    assert coll["get"]["operationId"] == "listCoreV1NamespacedPod"
    assert coll["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/io.k8s.api.core.v1.PodList"}
    assert {p["name"] for p in coll["get"]["parameters"]} >= {"labelSelector", "fieldSelector", "watch", "limit"}
    assert coll["post"]["operationId"] == "createCoreV1NamespacedPod"
    assert "fieldValidation" in {p["name"] for p in coll["post"]["parameters"]}
    assert coll["delete"]["x-kubernetes-action"] == "deletecollection"
    assert coll["parameters"][0]["name"] == "namespace"
    item = paths["/api/v1/namespaces/{namespace}/pods/{name}"]
    assert set(item) >= {"get", "put", "patch", "delete", "parameters"}
    for method in ("get", "put", "patch", "delete"):
        assert item[method]["x-kubernetes-group-version-kind"]["kind"] == "Pod"
    assert paths["/api/v1/pods"]["get"]["operationId"] == "listCoreV1PodForAllNamespaces"
    # Cluster-scoped kinds have no namespace segment.
    assert "/api/v1/namespaces/{name}" in paths
    assert "/api/v1/namespaces" in paths


def test_subresources(core: dict[str, Any]) -> None:
    paths = core["paths"]
    status = paths["/api/v1/namespaces/{namespace}/pods/{name}/status"]
    assert set(status) >= {"get", "put", "patch"}
    assert status["patch"]["operationId"] == "patchCoreV1NamespacedPodStatus"
    eviction = paths["/api/v1/namespaces/{namespace}/pods/{name}/eviction"]["post"]
    assert eviction["x-kubernetes-group-version-kind"] == {"group": "policy", "version": "v1", "kind": "Eviction"}
    log = paths["/api/v1/namespaces/{namespace}/pods/{name}/log"]
    assert set(log) == {"get", "parameters"}
    assert "post" in paths["/api/v1/namespaces/{namespace}/pods/{name}/exec"]
    assert "put" in paths["/api/v1/namespaces/{name}/finalize"]


def test_scale_subresource_uses_autoscaling_scale() -> None:
    apps = doc("apps", "v1", APPS)
    scale = apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
    assert scale["patch"]["x-kubernetes-group-version-kind"] == {"group": "autoscaling", "version": "v1",
                                                                 "kind": "Scale"}
    assert "io.k8s.api.autoscaling.v1.Scale" in apps["components"]["schemas"]
    deployment = apps["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"]
    assert {"group": "apps", "kind": "Deployment", "version": "v1"} in deployment["x-kubernetes-group-version-kind"]
    assert apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"][
        "operationId"] == "patchAppsV1NamespacedDeployment"


def test_patch_metadata_survives_in_components() -> None:
    """kubectl computes client-side apply patches from these extensions."""
    apps = doc("apps", "v1", APPS)
    spec = apps["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]
    assert spec["containers"]["x-kubernetes-patch-merge-key"] == "name"
    assert spec["volumes"]["x-kubernetes-patch-strategy"] == "merge,retainKeys"


def test_no_type_lists_anywhere(core: dict[str, Any]) -> None:
    def walk(value: Any) -> None:
        if isinstance(value, dict):
            assert not isinstance(value.get("type"), list)
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(core["components"])


# ---------------------------------------------------------------------------
# Kinds Kubernetes does not define
# ---------------------------------------------------------------------------


def test_custom_kind_with_provided_schema() -> None:
    net = doc("network.podlife.io", "v1", NETWORK)
    schemas = net["components"]["schemas"]
    port = schemas["io.podlife.network.v1.Port"]
    assert port["x-kubernetes-group-version-kind"] == [
        {"group": "network.podlife.io", "version": "v1", "kind": "Port"}]
    assert port["properties"]["spec"]["properties"]["nodeName"]["description"] == "Node of the port."
    assert port["properties"]["metadata"]["allOf"][0]["$ref"].endswith("ObjectMeta")
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in schemas
    port_list = schemas["io.podlife.network.v1.PortList"]
    assert port_list["properties"]["items"]["items"] == {"$ref": "#/components/schemas/io.podlife.network.v1.Port"}
    # No schema at all: still explainable, accepts anything.
    subnet = schemas["io.podlife.network.v1.Subnet"]
    assert subnet["x-kubernetes-preserve-unknown-fields"] is True
    patch = net["paths"]["/apis/network.podlife.io/v1/namespaces/{namespace}/ports/{name}"]["patch"]
    assert "application/strategic-merge-patch+json" not in patch["requestBody"]["content"]
    assert "application/merge-patch+json" in patch["requestBody"]["content"]
    assert "fieldValidation" in {p["name"] for p in patch["parameters"]}
    assert explain(net, "Port", "spec", "number")["type"] == "integer"


def test_custom_kind_from_schema_registry() -> None:
    schemas = CustomSchemas()
    schemas.register("example.com", "v1", "Widget", {
        "type": "object", "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}})
    try:
        widgets = [ResourceInfo("widgets", "Widget", False)]
        before = O.document_hash("example.com", "v1", widgets, schemas)
        d = doc("example.com", "v1", widgets, schemas)
        widget = d["components"]["schemas"]["com.example.v1.Widget"]
        assert widget["properties"]["spec"]["properties"]["size"] == {"type": "integer"}
        assert "/apis/example.com/v1/widgets/{name}" in d["paths"]
        schemas.register("example.com", "v1", "Widget", {"type": "object"})
        assert O.document_hash("example.com", "v1", widgets, schemas) != before
    finally:
        schemas.unregister("example.com", "v1", "Widget")


def test_accepts_registry_resource_types() -> None:
    """Anything with plural/kind/namespaced/subresources/verbs works (duck typing)."""

    class ResourceType:
        def __init__(self) -> None:
            self.plural, self.kind, self.namespaced = "leases", "Lease", True
            self.subresources: tuple[str, ...] = ()
            self.verbs = ("get", "list", "watch", "create", "update", "patch", "delete")

    d = doc("coordination.k8s.io", "v1", [ResourceType()])
    item = d["paths"]["/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"]
    assert item["patch"]["operationId"] == "patchCoordinationV1NamespacedLease"
    assert "delete" not in d["paths"]["/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"]
