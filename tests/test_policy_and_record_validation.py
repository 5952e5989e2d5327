"""PodDisruptionBudgets, HPAs, ServiceAccounts, events.k8s.io Events, PodTemplates and
ControllerRevisions refuse what Kubernetes refuses, with Kubernetes' 422 message, and store nothing.

Table-driven against one real ``podlife up`` for the module: each bad manifest is POSTed
over HTTPS (one through ``kubectl apply -f -``) and must get 422 ``Invalid`` with exactly
the message ``pkg/apis/{policy,autoscaling,core,apps}/validation`` writes, and a GET
afterwards must find nothing; each bad case's good twin (the same manifest with the fault
mended) is created (201). Update rules (a ControllerRevision's frozen data, an HPA's bounds
on update) are driven with PUTs of an object read back from the server.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from .cluster_harness import PodlifeProcess

pytestmark = pytest.mark.e2e

Obj = dict[str, Any]
NS = "default"

PATHS = {
    "PodDisruptionBudget": "/apis/policy/v1/namespaces/default/poddisruptionbudgets",
    "HorizontalPodAutoscaler": "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers",
    "ServiceAccount": "/api/v1/namespaces/default/serviceaccounts",
    "Event": "/apis/events.k8s.io/v1/namespaces/default/events",
    "PodTemplate": "/api/v1/namespaces/default/podtemplates",
    "ControllerRevision": "/apis/apps/v1/namespaces/default/controllerrevisions",
}
API_VERSIONS = {"PodDisruptionBudget": "policy/v1", "HorizontalPodAutoscaler": "autoscaling/v2",
                "ServiceAccount": "v1", "Event": "events.k8s.io/v1", "PodTemplate": "v1",
                "ControllerRevision": "apps/v1"}
QUALIFIED = {"PodDisruptionBudget": "PodDisruptionBudget.policy", "HorizontalPodAutoscaler": "HorizontalPodAutoscaler.autoscaling",
             "Event": "Event.events.k8s.io", "ControllerRevision": "ControllerRevision.apps"}

SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
                 "must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
                 "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
             "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
             "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
QUALIFIED_MSG = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                 "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
                 "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
POINTER = "(0xc000000000)"  # Go prints an address for a set pointer; podlife prints this one


def manifest(kind: str, name: str, **body: Any) -> Obj:
    meta: Obj = {"name": name, "namespace": NS, **body.pop("metadata", {})}
    return {"apiVersion": API_VERSIONS[kind], "kind": kind, "metadata": meta, **body}


def pdb(name: str, **spec: Any) -> Obj:
    spec.setdefault("selector", {"matchLabels": {"app": "web"}})
    return manifest("PodDisruptionBudget", name, spec=spec)


def hpa(name: str, **spec: Any) -> Obj:
    spec.setdefault("scaleTargetRef", {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"})
    spec.setdefault("maxReplicas", 5)
    return manifest("HorizontalPodAutoscaler", name, spec=spec)


def metric(kind: str, **source: Any) -> Obj:
    """One HPA metric of ``kind`` whose source is ``source`` (under the type's own field)."""
    field = {"ContainerResource": "containerResource"}.get(kind, kind.lower())
    return {"type": kind, field: source}


def cpu(target: Obj | None = None) -> Obj:
    return metric("Resource", name="cpu", target=target or {"type": "Utilization", "averageUtilization": 50})


def event(name: str, **body: Any) -> Obj:
    fields: Obj = {"eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "example.com/ctl",
                   "reportingInstance": "ctl-1", "action": "Create", "reason": "Created", "type": "Normal",
                   "regarding": {"kind": "Pod", "name": "p", "namespace": NS}}
    fields.update(body)
    return manifest("Event", name, **fields)


def pod_template(name: str, **spec: Any) -> Obj:
    spec.setdefault("containers", [{"name": "c", "image": "busybox"}])
    return manifest("PodTemplate", name, template={"metadata": {"labels": {"app": "web"}}, "spec": spec})


def revision(name: str, **body: Any) -> Obj:
    return manifest("ControllerRevision", name, **body)


def policies(**rules: Any) -> Obj:
    rules.setdefault("policies", [{"type": "Pods", "value": 1, "periodSeconds": 60}])
    return rules


QUANTITY_ZERO = ('resource.Quantity{i:resource.int64Amount{value:0, scale:0}, d:resource.infDecAmount{'
                 'Dec:(*inf.Dec)(nil)}, s:"0", Format:"DecimalSI"}')
METRIC_TYPES = '"ContainerResource", "External", "Object", "Pods", "Resource"'

#: (id, bad manifest, the message after `<Kind> "<name>" is invalid: `, its good twin)
CASES: list[tuple[str, Obj, str, Obj]] = [
    # --- PodDisruptionBudget
    ("pdb-both-bounds", pdb("p1", minAvailable=1, maxUnavailable=1),
     f"spec: Invalid value: policy.PodDisruptionBudgetSpec{{MinAvailable:(*intstr.IntOrString){POINTER}, "
     f"Selector:(*v1.LabelSelector){POINTER}, MaxUnavailable:(*intstr.IntOrString){POINTER}, "
     "UnhealthyPodEvictionPolicy:(*policy.UnhealthyPodEvictionPolicyType)(nil)}: "
     "minAvailable and maxUnavailable cannot be both set",
     pdb("good-p1", maxUnavailable=1)),
    ("pdb-negative", pdb("p2", minAvailable=-1), "spec.minAvailable: Invalid value: -1: must be greater than or equal to 0",
     pdb("good-p2", minAvailable=0)),
    ("pdb-bad-percent", pdb("p3", maxUnavailable="5x"),
     'spec.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:"5x"}: a valid percent string '
     "must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
     pdb("good-p3", maxUnavailable="5%")),
    ("pdb-over-100", pdb("p4", minAvailable="150%"),
     'spec.minAvailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:"150%"}: must not be greater than 100%',
     pdb("good-p4", minAvailable="100%")),
    ("pdb-selector", pdb("p5", minAvailable=1, selector={"matchExpressions": [{"key": "app", "operator": "Sometimes"}]}),
     'spec.selector.matchExpressions[0].operator: Invalid value: "Sometimes": not a valid selector operator',
     pdb("good-p5", minAvailable=1, selector={"matchExpressions": [{"key": "app", "operator": "Exists"}]})),
    ("pdb-eviction-policy", pdb("p6", minAvailable=1, unhealthyPodEvictionPolicy="Never"),
     'spec.unhealthyPodEvictionPolicy: Unsupported value: "Never": supported values: "AlwaysAllow", "IfHealthyBudget"',
     pdb("good-p6", minAvailable=1, unhealthyPodEvictionPolicy="AlwaysAllow")),
    # --- HorizontalPodAutoscaler: replicas and the scale target
    ("hpa-min-zero", hpa("h1", minReplicas=0),  # HPAScaleToZero is off; and no Object/External metric
     "[spec.minReplicas: Invalid value: 0: must be greater than or equal to 1, spec.metrics: Forbidden: must specify "
     "at least one Object or External metric to support scaling to zero replicas]",
     hpa("good-h1", minReplicas=1)),
    ("hpa-max-below-min", hpa("h2", minReplicas=3, maxReplicas=2),
     "spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`",
     hpa("good-h2", minReplicas=3, maxReplicas=3)),
    ("hpa-no-max", hpa("h3", maxReplicas=None),
     "[spec.maxReplicas: Invalid value: 0: must be greater than 0, spec.maxReplicas: Invalid value: 0: must be greater "
     "than or equal to `minReplicas`]",
     hpa("good-h3", maxReplicas=1)),
    ("hpa-target-required", hpa("h4", scaleTargetRef={"apiVersion": "apps/v1"}),
     "[spec.scaleTargetRef.kind: Required value, spec.scaleTargetRef.name: Required value]",
     hpa("good-h4", scaleTargetRef={"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db"})),
    ("hpa-target-path", hpa("h5", scaleTargetRef={"apiVersion": "apps/v1", "kind": "Deployment", "name": "a/b"}),
     "spec.scaleTargetRef.name: Invalid value: \"a/b\": may not contain '/'",
     hpa("good-h5", scaleTargetRef={"apiVersion": "apps/v1", "kind": "Deployment", "name": "a.b"})),
    ("hpa-target-group", hpa("h6", scaleTargetRef={"apiVersion": "v1", "kind": "Deployment", "name": "web"}),
     'spec.scaleTargetRef.apiVersion: Invalid value: "v1": apiVersion must specify API group',
     hpa("good-h6", scaleTargetRef={"apiVersion": "v1", "kind": "ReplicationController", "name": "web"})),
    ("hpa-target-version", hpa("h7", scaleTargetRef={"apiVersion": "apps/v1/x", "kind": "Deployment", "name": "web"}),
     'spec.scaleTargetRef.apiVersion: Invalid value: "apps/v1/x": unexpected GroupVersion string: apps/v1/x',
     hpa("good-h7", scaleTargetRef={"apiVersion": "apps/v1beta2", "kind": "Deployment", "name": "web"})),
    # --- HPA metrics
    ("hpa-metric-type", hpa("h8", metrics=[{**cpu(), "type": "Memory"}]),
     f'spec.metrics[0].type: Unsupported value: "Memory": supported values: {METRIC_TYPES}',
     hpa("good-h8", metrics=[cpu()])),
    ("hpa-metric-no-source", hpa("h9", metrics=[{"type": "Pods"}]),
     "spec.metrics[0].pods: Required value: must populate information for the given metric source",
     hpa("good-h9", metrics=[metric("Pods", metric={"name": "qps"}, target={"type": "AverageValue", "averageValue": "10"})])),
    ("hpa-metric-two-sources", hpa("h10", metrics=[{**cpu(), "pods": {
        "metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "10"}}}]),
     "spec.metrics[0].pods: Forbidden: must populate the given metric source only",
     hpa("good-h10", metrics=[cpu(), metric("Pods", metric={"name": "qps"},
                                            target={"type": "AverageValue", "averageValue": "10"})])),
    ("hpa-target-type", hpa("h11", metrics=[cpu({"type": "Percent", "averageUtilization": 50})]),
     'spec.metrics[0].resource.target.type: Invalid value: "Percent": must be either Utilization, Value, or AverageValue',
     hpa("good-h11", metrics=[cpu({"type": "AverageValue", "averageValue": "500m"})])),
    ("hpa-utilization-zero", hpa("h12", metrics=[cpu({"type": "Utilization", "averageUtilization": 0})]),
     "spec.metrics[0].resource.target.averageUtilization: Invalid value: 0: must be greater than 0",
     hpa("good-h12", metrics=[cpu({"type": "Utilization", "averageUtilization": 1})])),
    ("hpa-average-value-zero", hpa("h13", metrics=[metric("Pods", metric={"name": "qps"},
                                                          target={"type": "AverageValue", "averageValue": "0"})]),
     f"spec.metrics[0].pods.target.averageValue: Invalid value: {QUANTITY_ZERO}: must be positive",
     hpa("good-h13", metrics=[metric("Pods", metric={"name": "qps"},
                                     target={"type": "AverageValue", "averageValue": "1m"})])),
    ("hpa-resource-both-targets", hpa("h14", metrics=[cpu({"type": "Utilization", "averageUtilization": 50,
                                                          "averageValue": "100m"})]),
     "spec.metrics[0].resource.target.averageValue: Forbidden: may not set both a target raw value and a target "
     "utilization",
     hpa("good-h14", metrics=[cpu({"type": "AverageValue", "averageValue": "100m"})])),
    ("hpa-resource-no-target", hpa("h15", metrics=[metric("Resource", name="memory", target={"type": "Utilization"})]),
     "spec.metrics[0].resource.target.averageUtilization: Required value: must set either a target raw value or a "
     "target utilization",
     hpa("good-h15", metrics=[metric("Resource", name="memory", target={"type": "Utilization", "averageUtilization": 70})])),
    ("hpa-external-both-targets", hpa("h16", metrics=[metric("External", metric={"name": "queue"}, target={
        "type": "Value", "value": "10", "averageValue": "1"})]),
     "spec.metrics[0].external.target.value: Forbidden: may not set both a target value for metric and a per-pod target",
     hpa("good-h16", metrics=[metric("External", metric={"name": "queue"}, target={"type": "Value", "value": "10"})])),
    ("hpa-object-no-value", hpa("h17", metrics=[metric("Object", metric={"name": "requests"}, target={"type": "Value"},
                                                       describedObject={"apiVersion": "v1", "kind": "Service",
                                                                        "name": "svc"})]),
     "spec.metrics[0].object.target.averageValue: Required value: must set either a target value or averageValue",
     hpa("good-h17", metrics=[metric("Object", metric={"name": "requests"}, target={"type": "Value", "value": "2k"},
                                     describedObject={"apiVersion": "v1", "kind": "Service", "name": "svc"})])),
    ("hpa-metric-name", hpa("h18", metrics=[metric("Pods", metric={"name": ".."},
                                                   target={"type": "AverageValue", "averageValue": "1"})]),
     "spec.metrics[0].pods.metric.name: Invalid value: \"..\": may not be '..'",
     hpa("good-h18", metrics=[metric("Pods", metric={"name": "a.b"},
                                     target={"type": "AverageValue", "averageValue": "1"})])),
    ("hpa-container-name", hpa("h19", metrics=[metric("ContainerResource", name="cpu", container="Web", target={
        "type": "Utilization", "averageUtilization": 60})]),
     f'spec.metrics[0].containerResource.container: Invalid value: "Web": {LABEL_MSG}',
     hpa("good-h19", metrics=[metric("ContainerResource", name="cpu", container="web", target={
         "type": "Utilization", "averageUtilization": 60})])),
    # --- HPA behavior
    ("hpa-window-too-long", hpa("h20", behavior={"scaleDown": policies(stabilizationWindowSeconds=3601)}),
     "spec.behavior.scaleDown.stabilizationWindowSeconds: Invalid value: 3601: must be less than or equal to 3600",
     hpa("good-h20", behavior={"scaleDown": policies(stabilizationWindowSeconds=3600)})),
    ("hpa-window-negative", hpa("h21", behavior={"scaleUp": policies(stabilizationWindowSeconds=-1)}),
     "spec.behavior.scaleUp.stabilizationWindowSeconds: Invalid value: -1: must be greater than or equal to zero",
     hpa("good-h21", behavior={"scaleUp": policies(stabilizationWindowSeconds=0)})),
    ("hpa-select-policy", hpa("h22", behavior={"scaleUp": policies(selectPolicy="Sometimes")}),
     'spec.behavior.scaleUp.selectPolicy: Unsupported value: "Sometimes": supported values: "Disabled", "Max", "Min"',
     hpa("good-h22", behavior={"scaleUp": policies(selectPolicy="Disabled")})),
    ("hpa-no-policies", hpa("h23", behavior={"scaleDown": {"policies": []}}),
     "spec.behavior.scaleDown.policies: Required value: must specify at least one Policy",
     hpa("good-h23", behavior={"scaleDown": {}})),  # unset policies are defaulted
    ("hpa-policy", hpa("h24", behavior={"scaleUp": {"policies": [{"type": "Minutes", "value": 0, "periodSeconds": 1801}]}}),
     '[spec.behavior.scaleUp.policies[0].type: Unsupported value: "Minutes": supported values: "Percent", "Pods", '
     "spec.behavior.scaleUp.policies[0].value: Invalid value: 0: must be greater than zero, "
     "spec.behavior.scaleUp.policies[0].periodSeconds: Invalid value: 1801: must be less than or equal to 1800]",
     hpa("good-h24", behavior={"scaleUp": {"policies": [{"type": "Percent", "value": 10, "periodSeconds": 1800}]}})),
    ("hpa-tolerance", hpa("h25", behavior={"scaleUp": policies(tolerance="-0.1")}),
     'spec.behavior.scaleUp.tolerance: Invalid value: "-100m": must be greater than or equal to 0',
     hpa("good-h25", behavior={"scaleUp": policies(tolerance="0.05")})),
    # --- ServiceAccount: Kubernetes checks its metadata only (secret names are not names it validates)
    ("sa-name", manifest("ServiceAccount", "Bad_Name"),
     f'metadata.name: Invalid value: "Bad_Name": {SUBDOMAIN_MSG}',
     manifest("ServiceAccount", "good-sa", secrets=[{"name": "Not A Name"}], imagePullSecrets=[{"name": "UPPER"}])),
    # --- events.k8s.io Event (paths are the internal field names, as Kubernetes writes them)
    ("ev-no-time", event("e1", eventTime=None), "eventTime: Required value", event("good-e1")),
    ("ev-namespace", event("e2", eventTime=None, regarding={"kind": "Pod", "name": "p", "namespace": "other"}),
     '[involvedObject.namespace: Invalid value: "other": does not match event.namespace, eventTime: Required value]',
     event("good-e2", regarding={"kind": "Node", "name": "n1"})),  # a cluster-scoped object's Event in default
    ("ev-controller", event("e3", reportingController="my controller"),
     f'reportingController: Invalid value: "my controller": {QUALIFIED_MSG}',
     event("good-e3", reportingController="my-controller")),
    ("ev-no-instance", event("e4", reportingInstance=None), "reportingInstance: Required value",
     event("good-e4", reportingInstance="i" * 128)),
    ("ev-long-action", event("e5", action="a" * 129), 'action: Invalid value: "": can have at most 128 characters',
     event("good-e5", action="a" * 128)),
    ("ev-no-reason", event("e6", reason=None), "reason: Required value", event("good-e6", reason="Scheduled")),
    ("ev-long-note", event("e7", note="x" * 1025), 'message: Invalid value: "": can have at most 1024 characters',
     event("good-e7", note="x" * 1024)),
    ("ev-type", event("e8", type="Info"), 'type: Invalid value: "": has invalid value: Info',
     event("good-e8", type="Warning")),
    ("ev-series", event("e9", series={"count": 1, "lastObservedTime": "2026-01-01T00:00:01.000000Z"}),
     'series.count: Invalid value: "": should be at least 2',
     event("good-e9", series={"count": 2, "lastObservedTime": "2026-01-01T00:00:01.000000Z"})),
    ("ev-deprecated", event("e10", deprecatedCount=2, deprecatedSource={"component": "kubelet"}),
     '[count: Invalid value: "": needs to be unset, source: Invalid value: "": needs to be unset]',
     event("good-e10", deprecatedCount=0, deprecatedSource={})),
    # --- PodTemplate: `template` is validated as a workload's pod template is
    ("pt-no-template", manifest("PodTemplate", "t1"), "template.spec.containers: Required value", pod_template("good-t1")),
    ("pt-container-name", pod_template("t2", containers=[{"name": "Web", "image": "busybox"}]),
     f'template.spec.containers[0].name: Invalid value: "Web": {LABEL_MSG}',
     pod_template("good-t2", containers=[{"name": "web", "image": "busybox"}])),
    ("pt-restart-policy", pod_template("t3", restartPolicy="Sometimes"),
     'template.spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"',
     pod_template("good-t3", restartPolicy="Never")),  # any pod restart policy: a template is not a workload
    ("pt-ephemeral", pod_template("t4", ephemeralContainers=[{"name": "debug", "image": "busybox"}]),
     "template.spec.ephemeralContainers: Forbidden: ephemeral containers not allowed in pod template",
     pod_template("good-t4", initContainers=[{"name": "debug", "image": "busybox"}])),
    # --- ControllerRevision
    ("cr-no-data", revision("r1", revision=1), "data: Required value: data is mandatory",
     revision("good-r1", data={}, revision=1)),
    ("cr-negative", revision("r2", data={"spec": {}}, revision=-1),
     "revision: Invalid value: -1: must be greater than or equal to 0",
     revision("good-r2", data={"spec": {}})),  # an unset revision is 0
]


def path_of(obj: Obj) -> str:
    return PATHS[obj["kind"]]


def expected(obj: Obj, message: str) -> str:
    return f'{QUALIFIED.get(obj["kind"], obj["kind"])} "{obj["metadata"]["name"]}" is invalid: {message}'


def strip_none(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: strip_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [strip_none(v) for v in obj]
    return obj


def assert_not_stored(cluster: PodlifeProcess, obj: Obj) -> None:
    status, _ = cluster.http("GET", f'{path_of(obj)}/{obj["metadata"]["name"]}')
    assert status == 404, f'{obj["kind"]} {obj["metadata"]["name"]} was stored'


def create(cluster: PodlifeProcess, obj: Obj) -> Obj:
    status, body = cluster.http("POST", path_of(obj), strip_none(obj))
    assert status == 201, body
    return body


@pytest.mark.parametrize("case,obj,message,twin", CASES, ids=[c[0] for c in CASES])
def test_invalid_manifest_is_refused(cluster: PodlifeProcess, case: str, obj: Obj, message: str, twin: Obj) -> None:
    obj = strip_none(obj)
    status, body = cluster.http("POST", path_of(obj), obj)
    assert status == 422, body
    assert body["reason"] == "Invalid"
    assert body["message"] == expected(obj, message)
    assert body["details"]["causes"], body
    assert_not_stored(cluster, obj)


@pytest.mark.parametrize("case,obj,message,twin", CASES, ids=[c[0] for c in CASES])
def test_good_twin_is_created(cluster: PodlifeProcess, case: str, obj: Obj, message: str, twin: Obj) -> None:
    create(cluster, twin)


def test_kubectl_apply_shows_the_kubernetes_error(cluster: PodlifeProcess) -> None:
    obj = hpa("kubectl-h", minReplicas=4, maxReplicas=2)
    result = cluster.kubectl("apply", "-f", "-", input=json.dumps(obj), check=False)
    assert result.returncode != 0
    assert "spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`" in result.stderr, \
        result.stderr
    assert_not_stored(cluster, obj)
    obj["spec"]["maxReplicas"] = 4
    cluster.kubectl("apply", "-f", "-", input=json.dumps(obj))


# --------------------------------------------------------------------------- updates


def put(cluster: PodlifeProcess, obj: Obj, raw: bytes | None = None) -> tuple[int, Any]:
    """An unconditional update (no resourceVersion): a controller's status write in between (the disruption
    controller's, say) must not turn the validation under test into a conflict."""
    body = {**obj, "metadata": {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}}
    return cluster.http("PUT", f'{path_of(obj)}/{obj["metadata"]["name"]}', None if raw else body, raw=raw)


def test_controller_revision_data_is_immutable(cluster: PodlifeProcess) -> None:
    stored = create(cluster, revision("upd-r", data={"a": 1}, revision=1))
    changed = copy.deepcopy(stored)
    changed["data"] = {"a": 2}
    compact = json.dumps(changed, separators=(",", ":")).encode()  # the bytes Kubernetes would show are these
    status, body = put(cluster, changed, raw=compact)
    data_bytes = ", ".join(f"0x{b:x}" for b in b'{"a":2}')
    assert status == 422, body
    assert body["message"] == ('ControllerRevision.apps "upd-r" is invalid: data: Invalid value: runtime.Unknown{'
                               'TypeMeta:runtime.TypeMeta{APIVersion:"", Kind:""}, Raw:[]byte{' + data_bytes + '}, '
                               'ContentEncoding:"", ContentType:"application/json"}: field is immutable')
    renumbered = copy.deepcopy(stored)
    renumbered["revision"] = 2
    status, body = put(cluster, renumbered)
    assert status == 200 and body["revision"] == 2 and body["data"] == {"a": 1}, body


def test_hpa_and_pdb_rules_hold_on_update(cluster: PodlifeProcess) -> None:
    stored = create(cluster, hpa("upd-h", minReplicas=2, maxReplicas=4))
    shrunk = copy.deepcopy(stored)
    shrunk["spec"]["maxReplicas"] = 1
    status, body = put(cluster, shrunk)
    assert (status, body["message"]) == (422, 'HorizontalPodAutoscaler.autoscaling "upd-h" is invalid: '
                                              "spec.maxReplicas: Invalid value: 1: must be greater than or equal to "
                                              "`minReplicas`")
    grown = copy.deepcopy(stored)
    grown["spec"]["maxReplicas"] = 8
    assert put(cluster, grown)[0] == 200
    budget = create(cluster, pdb("upd-p", minAvailable=1))
    budget["spec"]["maxUnavailable"] = "10%"
    status, body = put(cluster, budget)
    assert status == 422 and body["message"].endswith(": minAvailable and maxUnavailable cannot be both set"), body
