"""Tests for podlife.registry.schemas: loading, compiled trees and patch metadata, validation, custom kinds."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest

from podlife.machinery.constants import KUBERNETES_MINOR, KUBERNETES_VERSION

from podlife.registry.schemas import loader, tree
from podlife.registry.schemas.custom import CustomSchemas, custom_definition_name
from podlife.registry.schemas.decoder import FieldIssue, duplicate_fields, format_issues, validate_object

POD = "io.k8s.api.core.v1.Pod"


def real_pod() -> dict[str, Any]:
    """A pod as the API server stores it: spec, defaults, status, managed fields."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-7d4b9c-x2x9z",
            "generateName": "web-7d4b9c-",
            "namespace": "default",
            "uid": "0b7f5f6e-8d1c-4f8e-9a43-1f4f1e3c2a11",
            "resourceVersion": "12345",
            "creationTimestamp": "2025-01-02T03:04:05Z",
            "labels": {"app": "web", "pod-template-hash": "7d4b9c"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2025-01-02T03:00:00Z"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c",
                                 "uid": "9f1c", "controller": True, "blockOwnerDeletion": True}],
            "finalizers": ["example.com/cleanup"],
            "managedFields": [{"manager": "kube-controller-manager", "operation": "Update",
                               "apiVersion": "v1", "time": "2025-01-02T03:04:05Z",
                               "fieldsType": "FieldsV1",
                               "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}}}],
        },
        "spec": {
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "nodeName": "node-1",
            "schedulerName": "default-scheduler",
            "priority": 0,
            "enableServiceLinks": True,
            "securityContext": {"runAsNonRoot": True, "fsGroup": 2000,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                             "effect": "NoExecute", "tolerationSeconds": 300}],
            "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                                    "labelSelector": {"matchLabels": {"app": "web"}}}}]}},
            "initContainers": [{"name": "init", "image": "busybox:1.36", "command": ["sh", "-c", "true"]}],
            "containers": [{
                "name": "web",
                "image": "nginx:1.27",
                "imagePullPolicy": "IfNotPresent",
                "args": ["-g", "daemon off;"],
                "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
                "env": [{"name": "MODE", "value": "prod"},
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1",
                                                                        "fieldPath": "metadata.name"}}},
                        {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory",
                                                                           "divisor": "1Mi"}}}],
                "envFrom": [{"configMapRef": {"name": "web-config", "optional": True}}],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                              "limits": {"cpu": 1, "memory": "128Mi", "ephemeral-storage": 1.5e9}},
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
                                  "initialDelaySeconds": 3, "periodSeconds": 10, "failureThreshold": 3},
                "readinessProbe": {"tcpSocket": {"port": 80}},
                "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}},
                "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": False}],
                "securityContext": {"allowPrivilegeEscalation": False,
                                    "capabilities": {"drop": ["ALL"]}},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
            }],
            "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "1Gi"}},
                        {"name": "cfg", "configMap": {"name": "web-config", "defaultMode": 420,
                                                      "items": [{"key": "a", "path": "a.conf"}]}},
                        {"name": "token", "projected": {"sources": [
                            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}]}}],
        },
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.5",
            "podIPs": [{"ip": "10.0.0.5"}],
            "hostIP": "192.168.1.10",
            "startTime": "2025-01-02T03:04:06Z",
            "qosClass": "Burstable",
            "conditions": [{"type": "Ready", "status": "True",
                            "lastTransitionTime": "2025-01-02T03:04:09Z", "lastProbeTime": None}],
            "containerStatuses": [{"name": "web", "ready": True, "started": True, "restartCount": 0,
                                   "image": "nginx:1.27", "imageID": "docker.io/library/nginx@sha256:ab",
                                   "containerID": "containerd://abc",
                                   "state": {"running": {"startedAt": "2025-01-02T03:04:07.123456Z"}},
                                   "lastState": {}}],
        },
    }


def issues_of(obj: dict[str, Any], group: str = "", version: str = "v1", kind: str = "Pod",
              **kw: Any) -> list[FieldIssue]:
    return validate_object(obj, group, version, kind, **kw)


# ---------------------------------------------------------------------------
# Definitions
# ---------------------------------------------------------------------------


def test_definitions_are_complete_and_normalized() -> None:
    defs = loader.definitions()
    assert len(defs) > 600
    assert loader.definitions() is defs  # cached
    pod = defs[POD]
    assert pod["description"].startswith("Pod is a collection of containers")
    assert pod["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "Pod", "version": "v1"}]
    assert pod["type"] == "object"
    assert "enum" not in pod["properties"]["kind"]
    assert pod["properties"]["spec"]["allOf"] == [{"$ref": "#/components/schemas/io.k8s.api.core.v1.PodSpec"}]
    containers = defs["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["items"] == {"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    assert containers["x-kubernetes-list-type"] == "map"


def test_no_json_schema_leftovers() -> None:
    """No nullable type lists and no #/$defs refs survive normalization."""
    bad: list[str] = []

    def walk(value: Any, where: str) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("type"), list):
                bad.append(where)
            ref = value.get("$ref")
            if isinstance(ref, str) and not ref.startswith(loader.REF_PREFIX):
                bad.append(where)
            for k, v in value.items():
                walk(v, f"{where}/{k}")
        elif isinstance(value, list):
            for v in value:
                walk(v, where)

    walk(loader.definitions(), "")
    assert bad == []


def test_quantity_and_int_or_string_keep_one_of_and_get_descriptions() -> None:
    q = loader.definitions()["io.k8s.apimachinery.pkg.api.resource.Quantity"]
    ios = loader.definitions()["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert "oneOf" in q and "type" not in q and q["description"]
    assert "oneOf" in ios and "type" not in ios and ios["description"]


@pytest.mark.parametrize("gvk,name", [
    (("", "v1", "Pod"), "io.k8s.api.core.v1.Pod"),
    (("", "v1", "PodList"), "io.k8s.api.core.v1.PodList"),
    (("apps", "v1", "Deployment"), "io.k8s.api.apps.v1.Deployment"),
    (("coordination.k8s.io", "v1", "Lease"), "io.k8s.api.coordination.v1.Lease"),
    (("", "v1", "Status"), "io.k8s.apimachinery.pkg.apis.meta.v1.Status"),
    (("", "v1", "DeleteOptions"), "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"),
    (("apps", "v1", "DeleteOptions"), "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"),
    (("autoscaling", "v1", "Scale"), "io.k8s.api.autoscaling.v1.Scale"),
    (("", "v1", "NoSuchKind"), None),
    (("example.com", "v1", "Widget"), None),
])
def test_definition_name(gvk: tuple[str, str, str], name: str | None) -> None:
    assert loader.definition_name(*gvk) == name


def test_schema_for() -> None:
    dep = loader.schema_for("apps", "v1", "Deployment")
    assert dep is not None
    assert dep["x-kubernetes-group-version-kind"][0]["kind"] == "Deployment"
    assert loader.schema_for("nope", "v1", "Nope") is None


def test_referenced_definitions_closure() -> None:
    names = loader.referenced_definitions([POD])
    for n in (POD, "io.k8s.api.core.v1.PodSpec", "io.k8s.api.core.v1.Container",
              "io.k8s.api.core.v1.Probe", "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
              "io.k8s.apimachinery.pkg.api.resource.Quantity",
              "io.k8s.apimachinery.pkg.util.intstr.IntOrString"):
        assert n in names
    assert "io.k8s.api.apps.v1.Deployment" not in names
    assert names == sorted(names)


# ---------------------------------------------------------------------------
# Patch metadata
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("root,path,strategy,merge_key,retain", [
    (POD, ("spec", "containers"), "merge", "name", False),
    (POD, ("spec", "initContainers"), "merge", "name", False),
    (POD, ("spec", "containers", "env"), "merge", "name", False),
    (POD, ("spec", "containers", "ports"), "merge", "containerPort", False),
    (POD, ("spec", "containers", "volumeMounts"), "merge", "mountPath", False),
    (POD, ("spec", "volumes"), "merge", "name", True),
    (POD, ("spec", "imagePullSecrets"), "merge", "name", False),
    (POD, ("metadata", "finalizers"), "merge", None, False),
    (POD, ("metadata", "ownerReferences"), "merge", "uid", False),
    (POD, ("spec", "tolerations"), "", None, False),
    (POD, ("spec", "containers", "args"), "", None, False),
    (POD, ("status", "conditions"), "merge", "type", False),
    ("io.k8s.api.apps.v1.Deployment", ("spec", "template", "spec", "containers"), "merge", "name", False),
    ("io.k8s.api.apps.v1.Deployment", ("spec", "strategy"), "", None, True),
    (POD, ("spec", "nosuchfield", "deeper"), "", None, False),
])
def test_patch_meta(root: str, path: tuple[str, ...], strategy: str, merge_key: str | None,
                    retain: bool) -> None:
    meta = tree.patch_meta(root, path)
    assert meta.strategy == strategy
    assert meta.merge_key == merge_key
    assert meta.retain_keys is retain


def test_patch_meta_list_type_and_keys() -> None:
    ports = tree.patch_meta(POD, ("spec", "containers", "ports"))
    assert ports.list_type == "map"
    assert ports.list_map_keys == ("containerPort", "protocol")
    fin = tree.patch_meta(POD, ("metadata", "finalizers"))
    assert fin.list_type == "set"
    assert tree.patch_meta(POD, ("spec", "volumes")).strategies == ("merge", "retainKeys")


def test_patch_meta_accepts_node_and_inline_schema() -> None:
    node = tree.compiled("", "v1", "Pod")
    assert node is not None
    assert tree.patch_meta(node, ("spec", "containers")).merge_key == "name"
    inline = {"type": "object", "properties": {"items": {
        "type": "array", "items": {"type": "object", "properties": {"id": {"type": "string"}}},
        "x-kubernetes-patch-strategy": "merge", "x-kubernetes-patch-merge-key": "id"}}}
    assert tree.patch_meta(inline, ("items",)).merge_key == "id"


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


def test_real_pod_is_valid() -> None:
    assert issues_of(real_pod()) == []


def test_unknown_field_in_container() -> None:
    pod = real_pod()
    pod["spec"]["containers"][0]["imagee"] = "nginx"
    assert issues_of(pod) == [FieldIssue("unknown", "spec.containers[0].imagee",
                                           'unknown field "spec.containers[0].imagee"',
                                           ("spec", "containers", 0, "imagee"))]


def test_unknown_fields_at_several_levels_in_document_order() -> None:
    pod = real_pod()
    pod["foo"] = 1
    pod["metadata"]["labelz"] = {}
    pod["spec"]["volumes"][1]["configMap"]["items"][0]["mode2"] = 1
    fields = [i.field for i in issues_of(pod)]
    assert fields == ["metadata.labelz", "spec.volumes[1].configMap.items[0].mode2", "foo"]


def test_unknown_fields_ignored_when_disabled() -> None:
    pod = real_pod()
    pod["spec"]["containers"][0]["imagee"] = "nginx"
    assert issues_of(pod, unknown_fields=False) == []


def test_format_issues_matches_kubernetes_wording() -> None:
    pod = real_pod()
    pod["spec"]["foo"] = 1
    pod["spec"]["containers"][0]["imagee"] = "x"
    msg = format_issues(issues_of(pod), "Pod", "v1")
    assert msg == ('Pod in version "v1" cannot be handled as a Pod: strict decoding error: '
                   'unknown field "spec.containers[0].imagee", unknown field "spec.foo"')


@pytest.mark.parametrize("mutate,field,message", [
    (lambda p: p["spec"]["containers"][0].__setitem__("image", 5), "spec.containers[0].image",
     "json: cannot unmarshal number into Go struct field Container.spec.containers.image of type string"),
    (lambda p: p["metadata"]["labels"].__setitem__("n", 1), "metadata.labels.n",
     "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type string"),
    (lambda p: p["metadata"].__setitem__("labels", "app=web"), "metadata.labels",
     "json: cannot unmarshal string into Go struct field ObjectMeta.metadata.labels of type map[string]string"),
    (lambda p: p["spec"]["containers"][0]["ports"][0].__setitem__("containerPort", "80"),
     "spec.containers[0].ports[0].containerPort",
     "json: cannot unmarshal string into Go struct field ContainerPort.spec.containers.ports.containerPort "
     "of type int32"),
    (lambda p: p["spec"].__setitem__("containers", {"name": "x"}), "spec.containers",
     "json: cannot unmarshal object into Go struct field PodSpec.spec.containers of type []v1.Container"),
    (lambda p: p["spec"].__setitem__("hostNetwork", "true"), "spec.hostNetwork",
     "json: cannot unmarshal string into Go struct field PodSpec.spec.hostNetwork of type bool"),
    (lambda p: p["spec"].__setitem__("terminationGracePeriodSeconds", 1.5),
     "spec.terminationGracePeriodSeconds",
     "json: cannot unmarshal number 1.5 into Go struct field PodSpec.spec.terminationGracePeriodSeconds "
     "of type int64"),
    (lambda p: p["spec"]["containers"][0].__setitem__("args", ["a", 2]), "spec.containers[0].args[1]",
     "json: cannot unmarshal number into Go struct field Container.spec.containers.args of type string"),
    (lambda p: p["spec"].__setitem__("securityContext", []), "spec.securityContext",
     "json: cannot unmarshal array into Go struct field PodSpec.spec.securityContext of type "
     "v1.PodSecurityContext"),
])
def test_type_errors(mutate: Any, field: str, message: str) -> None:
    pod = real_pod()
    mutate(pod)
    issues = issues_of(pod)
    assert [(i.kind, i.field, i.message) for i in issues] == [("type", field, message)]
    assert format_issues(issues, "Pod", "v1") == f'Pod in version "v1" cannot be handled as a Pod: {message}'


def test_bool_is_not_an_integer_and_int32_range() -> None:
    pod = real_pod()
    pod["spec"]["containers"][0]["ports"][0]["containerPort"] = True
    pod["spec"]["containers"][0]["livenessProbe"]["periodSeconds"] = 2 ** 31
    assert [i.field for i in issues_of(pod)] == [
        "spec.containers[0].ports[0].containerPort", "spec.containers[0].livenessProbe.periodSeconds"]


@pytest.mark.parametrize("value,ok", [("http", True), (8080, True), ("25%", True), (True, False),
                                      (1.5, False), ([1], False)])
def test_int_or_string(value: Any, ok: bool) -> None:
    pod = real_pod()
    pod["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"] = value
    issues = issues_of(pod)
    assert (issues == []) is ok
    if not ok:
        assert issues[0].kind == "type"
        assert issues[0].field == "spec.containers[0].livenessProbe.httpGet.port"


@pytest.mark.parametrize("value,ok", [("100m", True), ("1.5Gi", True), ("1e3", True), (2, True),
                                      (0.5, True), ("1 Gi", False), ("lots", False), (True, False),
                                      ({}, False)])
def test_quantity(value: Any, ok: bool) -> None:
    pod = real_pod()
    pod["spec"]["containers"][0]["resources"]["limits"]["memory"] = value
    issues = issues_of(pod)
    assert (issues == []) is ok, issues
    if not ok:
        assert issues[0].field == "spec.containers[0].resources.limits.memory"
        assert issues[0].message.startswith("quantities must match the regular expression")


def test_time_format() -> None:
    pod = real_pod()
    pod["metadata"]["creationTimestamp"] = "yesterday"
    issues = issues_of(pod)
    assert [i.field for i in issues] == ["metadata.creationTimestamp"]
    assert issues[0].message.startswith('parsing time "yesterday"')


def test_secret_data_must_be_base64() -> None:
    good = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "data": {"password": "c2VjcmV0"}, "stringData": {"plain": "text"}, "type": "Opaque"}
    assert validate_object(good, "", "v1", "Secret") == []
    bad = copy.deepcopy(good)
    bad["data"]["password"] = "not base64!"
    issues = validate_object(bad, "", "v1", "Secret")
    assert [(i.kind, i.field) for i in issues] == [("type", "data.password")]
    assert issues[0].message == "illegal base64 data at input byte 3"


def test_nulls_are_accepted_everywhere() -> None:
    pod = real_pod()
    pod["spec"]["nodeName"] = None
    pod["metadata"]["labels"]["x"] = None
    pod["spec"]["containers"][0]["args"] = None
    assert issues_of(pod) == []


def test_required_fields() -> None:
    pod = real_pod()
    del pod["spec"]["containers"][0]["name"]
    del pod["spec"]["containers"][0]["ports"][0]["containerPort"]
    issues = issues_of(pod)
    assert [(i.kind, i.field, i.message) for i in issues] == [
        ("required", "spec.containers[0].ports[0].containerPort",
         "spec.containers[0].ports[0].containerPort: Required value"),
        ("required", "spec.containers[0].name", "spec.containers[0].name: Required value"),
    ]
    assert issues_of(pod, required=False) == []


def test_free_form_objects_accept_anything() -> None:
    pod = real_pod()
    pod["metadata"]["managedFields"][0]["fieldsV1"] = {"f:spec": {"anything": [1, 2]}}
    assert issues_of(pod) == []


def test_other_kinds() -> None:
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "nginx"}]}}},
        "status": {"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3,
                   "availableReplicas": 3, "conditions": [{"type": "Available", "status": "True",
                                                           "reason": "MinimumReplicasAvailable"}]},
    }
    assert validate_object(deployment, "apps", "v1", "Deployment") == []
    deployment["spec"]["replicas"] = "3"
    assert [i.field for i in validate_object(deployment, "apps", "v1", "Deployment")] == ["spec.replicas"]
    pod_list = {"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "5", "continue": ""},
                "items": [real_pod()]}
    assert validate_object(pod_list, "", "v1", "PodList") == []
    status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "NotFound",
              "code": 404, "message": "x", "details": {"name": "x", "kind": "pods",
                                                        "causes": [{"reason": "FieldValueInvalid", "field": "a"}]}}
    assert validate_object(status, "", "v1", "Status") == []
    event = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e", "namespace": "default"},
             "involvedObject": {"kind": "Pod", "name": "x"}, "reason": "Started", "count": 1,
             "firstTimestamp": "2025-01-01T00:00:00Z", "eventTime": "2025-01-01T00:00:00.123456Z"}
    assert validate_object(event, "", "v1", "Event") == []


def test_unknown_kind_has_nothing_to_check() -> None:
    assert validate_object({"anything": 1}, "example.com", "v1", "Widget") == []


def test_duplicate_fields() -> None:
    raw = (b'{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","name":"b"},'
           b'"spec":{"containers":[{"name":"x","image":"a","image":"b"}]}}')
    issues = duplicate_fields(raw)
    assert [(i.kind, i.field, i.message) for i in issues] == [
        ("duplicate", "metadata.name", 'duplicate field "metadata.name"'),
        ("duplicate", "spec.containers[0].image", 'duplicate field "spec.containers[0].image"'),
    ]
    assert duplicate_fields(b'{"a": 1}') == []
    assert duplicate_fields(b"not json") == []


def test_validation_is_fast() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}},
           "spec": {"containers": [{"name": "web", "image": "nginx",
                                    "ports": [{"containerPort": 80}],
                                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}
    validate_object(pod, "", "v1", "Pod")  # compile
    n = 2000
    start = time.perf_counter()
    for _ in range(n):
        validate_object(pod, "", "v1", "Pod")
    per_call = (time.perf_counter() - start) / n
    assert per_call < 100e-6, f"{per_call * 1e6:.1f} µs per small pod"


def test_supports_strategic_merge() -> None:
    assert loader.supports_strategic_merge("", "v1", "Pod")
    assert loader.supports_strategic_merge("apps", "v1", "Deployment")
    assert not loader.supports_strategic_merge("network.podlife.io", "v1", "Port")
    assert not loader.supports_strategic_merge("example.com", "v1", "Widget")


# ---------------------------------------------------------------------------
# Custom schemas (CRD-style)
# ---------------------------------------------------------------------------

WIDGET_SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["size"],
            "properties": {
                "size": {"type": "integer", "format": "int32"},
                "color": {"type": "string"},
                "port": {"x-kubernetes-int-or-string": True},
                "tags": {"type": "array", "items": {"type": "string"},
                         "x-kubernetes-list-type": "set"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "config": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "template": {"type": "object", "x-kubernetes-embedded-resource": True,
                             "x-kubernetes-preserve-unknown-fields": True},
            },
        },
        "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
    },
}


@pytest.fixture()
def custom() -> CustomSchemas:
    """The custom kinds of one API server (each catalog owns such a set)."""
    return CustomSchemas()


@pytest.fixture()
def widget(custom: CustomSchemas) -> Any:
    name = custom.register("example.com", "v1", "Widget", WIDGET_SCHEMA)
    yield name
    custom.unregister("example.com", "v1", "Widget")


def test_custom_schema_registration(custom: CustomSchemas, widget: str) -> None:
    assert widget == "com.example.v1.Widget"
    assert custom.definition_name("example.com", "v1", "Widget") == widget
    schema = custom.schema_for("example.com", "v1", "Widget")
    assert schema is not None
    assert schema["x-kubernetes-group-version-kind"] == [
        {"group": "example.com", "version": "v1", "kind": "Widget"}]
    assert set(schema["properties"]) >= {"apiVersion", "kind", "metadata", "spec", "status"}
    assert custom_definition_name("network.podlife.io", "v1", "Port") == "io.podlife.network.v1.Port"
    assert not loader.supports_strategic_merge("example.com", "v1", "Widget")


def test_custom_schema_validation(custom: CustomSchemas, widget: str) -> None:
    ok = {"apiVersion": "example.com/v1", "kind": "Widget",
          "metadata": {"name": "w", "labels": {"a": "b"}},
          "spec": {"size": 3, "color": "red", "port": "http", "tags": ["a"], "labels": {"x": "y"},
                   "config": {"anything": {"goes": [1]}},
                   "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}},
          "status": {"ready": True}}
    assert validate_object(ok, "example.com", "v1", "Widget", schemas=custom) == []
    bad = copy.deepcopy(ok)
    bad["spec"]["size"] = "three"
    bad["spec"]["colour"] = "red"
    bad["metadata"]["labelz"] = 1
    issues = validate_object(bad, "example.com", "v1", "Widget", schemas=custom)
    assert [(i.kind, i.field) for i in issues] == [
        ("unknown", "metadata.labelz"), ("type", "spec.size"), ("unknown", "spec.colour")]
    assert issues[1].message == ('spec.size: Invalid value: "string": spec.size in body must be of type '
                                 'integer: "string"')
    missing = copy.deepcopy(ok)
    del missing["spec"]["size"]
    assert [(i.kind, i.field) for i in validate_object(missing, "example.com", "v1", "Widget", schemas=custom)] == [
        ("required", "spec.size")]


def test_reregistering_replaces_the_schema(custom: CustomSchemas, widget: str) -> None:
    obj = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
           "spec": {"size": 1, "shape": "round"}}
    assert [i.field for i in validate_object(obj, "example.com", "v1", "Widget", schemas=custom)] == ["spec.shape"]
    updated = copy.deepcopy(WIDGET_SCHEMA)
    updated["properties"]["spec"]["properties"]["shape"] = {"type": "string"}
    custom.register("example.com", "v1", "Widget", updated)
    assert validate_object(obj, "example.com", "v1", "Widget", schemas=custom) == []


def test_custom_object_without_properties_prunes_like_kubernetes(custom: CustomSchemas) -> None:
    custom.register("example.com", "v1", "Blob", {
        "type": "object", "properties": {"spec": {"type": "object"},
                                         "data": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}})
    try:
        obj = {"apiVersion": "example.com/v1", "kind": "Blob", "metadata": {"name": "b"},
               "spec": {"x": 1}, "data": {"y": 2}}
        assert [(i.kind, i.field) for i in validate_object(obj, "example.com", "v1", "Blob", schemas=custom)] == [
            ("unknown", "spec.x")]
    finally:
        custom.unregister("example.com", "v1", "Blob")


def test_the_served_release_is_1_37() -> None:
    assert (KUBERNETES_VERSION, KUBERNETES_MINOR) == ("1.37", "37")


def test_fields_of_current_releases_are_known() -> None:
    """lifecycle.stopSignal, pod-level resources and resizePolicy validate; a typo next to them does not."""
    pod = real_pod()
    pod["spec"]["os"] = {"name": "linux"}
    pod["spec"]["resources"] = {"limits": {"cpu": "1", "memory": "256Mi"}}
    container = pod["spec"]["containers"][0]
    container["lifecycle"] = {"stopSignal": "SIGUSR1"}
    container["resizePolicy"] = [{"resourceName": "memory", "restartPolicy": "RestartContainer"}]
    assert validate_object(pod, "", "v1", "Pod") == []
    container["lifecycle"]["stopSignall"] = "SIGTERM"
    assert [i.field for i in validate_object(pod, "", "v1", "Pod")] == ["spec.containers[0].lifecycle.stopSignall"]
    assert tree.patch_meta(POD, ("spec", "containers")).merge_key == "name"
