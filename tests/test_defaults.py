"""Kubernetes' defaulting, as clients read it back from a real podlife (issue 8).

Each kind is created through the real server with only its required fields, and the
answer must carry the fields a Kubernetes API server fills in (``defaults.go`` and the
``+default`` markers), the zero-valued status counters its Go structs always write, and
Node ``nodeInfo`` complete. The official ``kubernetes`` client reads them with its
typed models, which raise ``ValueError`` when a field they declare required is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from podlife.registry.schemas.decoder import validate_object

from .cluster_harness import PodlifeProcess, require_module, require_tool

pytestmark = pytest.mark.e2e

NS = "default"
#: the controllers that write the status of the kinds checked here: off, so a read shows what the API stored
WORKLOAD_CONTROLLERS_OFF = ",".join(["*"] + [f"-{name}" for name in (
    "replicaset-controller", "replicationcontroller-controller", "deployment-controller", "daemonset-controller",
    "statefulset-controller", "job-controller", "cronjob-controller", "disruption-controller",
    "resourcequota-controller", "persistentvolume-binder-controller", "persistentvolume-expander-controller")])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    """``podlife up`` without the workload and volume controllers: defaults are the API's, not a controller's
    later status."""
    proc = PodlifeProcess(tmp_path_factory.mktemp("cluster") / "data", "--controllers", WORKLOAD_CONTROLLERS_OFF,
                          kubectl=require_tool("kubectl"))
    try:
        yield proc.start()
    finally:
        proc.stop()
IMAGE = "registry.example/app:1.0"
CONTAINER = {"name": "c", "image": IMAGE}
TEMPLATE = {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [CONTAINER]}}
SELECTOR = {"matchLabels": {"app": "x"}}

#: What every PodSpec (pods and templates) is given.
POD_SPEC_DEFAULTS = {"restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
                     "securityContext": {}, "schedulerName": "default-scheduler"}
CONTAINER_DEFAULTS = {"imagePullPolicy": "IfNotPresent", "terminationMessagePath": "/dev/termination-log",
                      "terminationMessagePolicy": "File", "resources": {}}


def assert_subset(actual: Any, expected: Any, path: str = "") -> None:
    """Every field of ``expected`` is in ``actual`` with the same value (recursively)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected an object, got {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{path}.{key} missing in {actual!r}"
            assert_subset(actual[key], value, f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{path}: {actual!r} != {expected!r}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_subset(a, e, f"{path}[{i}]")
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


def create(cluster: PodlifeProcess, path: str, body: dict) -> dict:
    """POST ``body``; the answer must be 201 and hold only fields of the kind's 1.37 schema."""
    status, obj = cluster.http("POST", path, body)
    assert status == 201, obj
    group, _, version = obj["apiVersion"].rpartition("/")
    issues = validate_object(obj, group, version, obj["kind"])
    assert not issues, [i.message for i in issues]  # defaults are fields Kubernetes has
    return obj


def test_pod_defaults(cluster: PodlifeProcess) -> None:
    # a hostPath volume is beyond the baseline PodSecurity level: this namespace allows it whatever the default
    cluster.kubectl("create", "namespace", "defaults-privileged")
    cluster.kubectl("label", "namespace", "defaults-privileged", "pod-security.kubernetes.io/enforce=privileged")
    pod = create(cluster, "/api/v1/namespaces/defaults-privileged/pods", {"metadata": {"name": "defaults-pod"}, "spec": {
        "containers": [{
            "name": "c", "image": "busybox",
            "ports": [{"containerPort": 80}],
            "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
            "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
            "livenessProbe": {"httpGet": {"port": 80}},
            "readinessProbe": {"grpc": {"port": 81}},
            "lifecycle": {"preStop": {"httpGet": {"port": 80}}},
        }],
        "initContainers": [{"name": "init", "image": "busybox:latest"}],
        "volumes": [
            {"name": "s", "secret": {"secretName": "s"}},
            {"name": "m", "configMap": {"name": "m"}},
            {"name": "h", "hostPath": {"path": "/tmp"}},
            {"name": "d", "downwardAPI": {"items": [{"path": "n", "fieldRef": {"fieldPath": "metadata.name"}}]}},
            {"name": "p", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}},
            {"name": "e"},
            {"name": "eph", "ephemeral": {"volumeClaimTemplate": {"spec": {"accessModes": ["ReadWriteOnce"],
                                                                           "resources": {"requests": {"storage": "1Gi"}}}}}},
        ],
    }})
    spec = pod["spec"]
    assert_subset(spec, {**POD_SPEC_DEFAULTS, "enableServiceLinks": True, "priority": 0,
                         "preemptionPolicy": "PreemptLowerPriority", "serviceAccountName": "default"})
    c = spec["containers"][0]
    assert_subset(c, {**CONTAINER_DEFAULTS, "imagePullPolicy": "Always"})  # untagged: latest
    assert c["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert c["env"][0]["valueFrom"]["fieldRef"] == {"apiVersion": "v1", "fieldPath": "spec.nodeName"}
    assert c["resources"]["requests"] == {"cpu": "500m", "memory": "64Mi"}  # requests default to limits
    assert c["livenessProbe"] == {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
                                  "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}
    assert c["readinessProbe"]["grpc"] == {"port": 81, "service": ""}
    assert c["lifecycle"]["preStop"]["httpGet"] == {"port": 80, "path": "/", "scheme": "HTTP"}
    assert spec["initContainers"][0]["imagePullPolicy"] == "Always"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["s"]["secret"] == {"secretName": "s", "defaultMode": 420}
    assert volumes["m"]["configMap"] == {"name": "m", "defaultMode": 420}
    assert volumes["h"]["hostPath"] == {"path": "/tmp", "type": ""}
    assert volumes["d"]["downwardAPI"] == {"defaultMode": 420, "items": [
        {"path": "n", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}]}
    assert volumes["p"]["projected"] == {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}]}
    assert volumes["e"] == {"name": "e", "emptyDir": {}}
    assert volumes["eph"]["ephemeral"]["volumeClaimTemplate"]["spec"]["volumeMode"] == "Filesystem"
    assert pod["status"] == {"phase": "Pending", "qosClass": "Burstable"}  # the init container sets none


def test_pull_policy_follows_the_tag(cluster: PodlifeProcess) -> None:
    images = {"a": "busybox", "b": "busybox:latest", "c": "busybox:1.36", "d": "localhost:5000/busybox",
              "e": "busybox@sha256:" + "0" * 64, "f": "busybox:latest@sha256:" + "0" * 64}
    pod = create(cluster, f"/api/v1/namespaces/{NS}/pods", {"metadata": {"name": "pull-policy"}, "spec": {
        "containers": [{"name": n, "image": i} for n, i in images.items()]}})
    got = {c["name"]: c["imagePullPolicy"] for c in pod["spec"]["containers"]}
    assert got == {"a": "Always", "b": "Always", "c": "IfNotPresent", "d": "Always", "e": "IfNotPresent",
                   "f": "Always"}


def test_workload_templates_get_pod_spec_defaults_only(cluster: PodlifeProcess) -> None:
    """Templates get PodSpec defaults; Pod-only and admission defaults wait for the pod."""
    deploy = create(cluster, f"/apis/apps/v1/namespaces/{NS}/deployments", {
        "metadata": {"name": "tmpl"}, "spec": {"selector": SELECTOR, "template": TEMPLATE}})
    spec = deploy["spec"]["template"]["spec"]
    assert_subset(spec, POD_SPEC_DEFAULTS)
    assert_subset(spec["containers"][0], CONTAINER_DEFAULTS)
    for pod_only in ("enableServiceLinks", "tolerations", "priority", "serviceAccountName"):
        assert pod_only not in spec, pod_only


# (path, body, expected subset of the answer)
KIND_DEFAULTS: list[tuple[str, str, dict, dict]] = [
    ("deployment", "/apis/apps/v1/namespaces/default/deployments",
     {"spec": {"selector": SELECTOR, "template": TEMPLATE}},
     {"spec": {"replicas": 1, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
               "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}},
      "status": {}}),
    ("replicaset", "/apis/apps/v1/namespaces/default/replicasets",
     {"spec": {"selector": SELECTOR, "template": TEMPLATE}},
     {"spec": {"replicas": 1}, "status": {"replicas": 0}}),
    ("statefulset", "/apis/apps/v1/namespaces/default/statefulsets",
     {"spec": {"selector": SELECTOR, "template": TEMPLATE, "serviceName": "s",
               "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}]}},
     {"spec": {"replicas": 1, "revisionHistoryLimit": 10, "podManagementPolicy": "OrderedReady",
               "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
               "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
               "volumeClaimTemplates": [{"spec": {"volumeMode": "Filesystem"}, "status": {"phase": "Pending"}}]},
      "status": {"replicas": 0, "availableReplicas": 0}}),
    ("daemonset", "/apis/apps/v1/namespaces/default/daemonsets",
     {"spec": {"selector": SELECTOR, "template": TEMPLATE}},
     {"spec": {"revisionHistoryLimit": 10,
               "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}},
      "status": {"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0,
                 "numberReady": 0}}),
    ("rc", "/api/v1/namespaces/default/replicationcontrollers",
     {"spec": {"template": TEMPLATE}},
     {"metadata": {"labels": {"app": "x"}}, "spec": {"replicas": 1, "selector": {"app": "x"}},
      "status": {"replicas": 0}}),
    ("job", "/apis/batch/v1/namespaces/default/jobs",
     {"spec": {"template": {"spec": {"containers": [CONTAINER], "restartPolicy": "Never"}}}},
     {"spec": {"parallelism": 1, "completions": 1, "backoffLimit": 6, "completionMode": "NonIndexed",
               "suspend": False, "podReplacementPolicy": "TerminatingOrFailed", "manualSelector": False},
      "status": {}}),
    ("cronjob", "/apis/batch/v1/namespaces/default/cronjobs",
     {"spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {
         "spec": {"containers": [CONTAINER], "restartPolicy": "OnFailure"}}}}}},
     {"spec": {"concurrencyPolicy": "Allow", "suspend": False, "successfulJobsHistoryLimit": 3,
               "failedJobsHistoryLimit": 1,
               "jobTemplate": {"spec": {"template": {"spec": {**POD_SPEC_DEFAULTS, "restartPolicy": "OnFailure"}}}}}}),
    ("service", "/api/v1/namespaces/default/services",
     {"spec": {"ports": [{"port": 80}], "selector": {"app": "x"}}},
     {"spec": {"type": "ClusterIP", "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
               "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"],
               "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}]},
      "status": {"loadBalancer": {}}}),
    ("service-lb", "/api/v1/namespaces/default/services",
     {"spec": {"type": "LoadBalancer", "ports": [{"port": 80}], "sessionAffinity": "ClientIP"}},
     {"spec": {"externalTrafficPolicy": "Cluster", "allocateLoadBalancerNodePorts": True,
               "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}}}}),
    ("service-headless", "/api/v1/namespaces/default/services", {"spec": {"clusterIP": "None"}},
     {"spec": {"clusterIP": "None", "ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4"]}}),
    ("service-externalname", "/api/v1/namespaces/default/services",
     {"spec": {"type": "ExternalName", "externalName": "example.com"}},
     {"spec": {"type": "ExternalName", "sessionAffinity": "None"}}),
    ("secret", "/api/v1/namespaces/default/secrets", {}, {"type": "Opaque"}),
    ("endpoints", "/api/v1/namespaces/default/endpoints",
     {"subsets": [{"addresses": [{"ip": "192.0.2.1"}], "ports": [{"port": 80}]}]},
     {"subsets": [{"ports": [{"port": 80, "protocol": "TCP"}]}]}),
    ("pv", "/api/v1/persistentvolumes",
     {"spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/tmp/pv"}}},
     {"spec": {"persistentVolumeReclaimPolicy": "Retain", "volumeMode": "Filesystem",
               "hostPath": {"path": "/tmp/pv", "type": ""}}, "status": {"phase": "Pending"}}),
    ("pvc", "/api/v1/namespaces/default/persistentvolumeclaims",
     {"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}},
     {"spec": {"volumeMode": "Filesystem"}, "status": {"phase": "Pending"}}),
    ("limitrange", "/api/v1/namespaces/default/limitranges",
     {"spec": {"limits": [{"type": "Container", "max": {"cpu": "1"}, "min": {"memory": "8Mi"}}]}},
     {"spec": {"limits": [{"default": {"cpu": "1"}, "defaultRequest": {"cpu": "1", "memory": "8Mi"}}]}}),
    ("podtemplate", "/api/v1/namespaces/default/podtemplates", {"template": TEMPLATE},
     {"template": {"spec": {**POD_SPEC_DEFAULTS, "containers": [CONTAINER_DEFAULTS]}}}),
    ("hpa", "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers",
     {"spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"}, "maxReplicas": 3,
               "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}},
     {"spec": {"minReplicas": 1, "metrics": [{"type": "Resource", "resource": {
         "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}],
               "behavior": {"scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
                   {"type": "Pods", "value": 4, "periodSeconds": 15},
                   {"type": "Percent", "value": 100, "periodSeconds": 15}]},
                            "scaleDown": {"stabilizationWindowSeconds": 60, "selectPolicy": "Max", "policies": [
                                {"type": "Percent", "value": 100, "periodSeconds": 15}]}}},
      "status": {"desiredReplicas": 0}}),
    ("pdb", "/apis/policy/v1/namespaces/default/poddisruptionbudgets",
     {"spec": {"minAvailable": 1, "selector": SELECTOR}},
     {"status": {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}}),
    ("networkpolicy", "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies",
     {"spec": {"podSelector": {}, "egress": [{"ports": [{"port": 53}]}]}},
     {"spec": {"policyTypes": ["Ingress", "Egress"], "egress": [{"ports": [{"port": 53, "protocol": "TCP"}]}]}}),
    ("ingressclass", "/apis/networking.k8s.io/v1/ingressclasses",
     {"spec": {"controller": "example.com/ingress", "parameters": {"kind": "Params", "name": "p"}}},
     {"spec": {"parameters": {"scope": "Cluster"}}}),
    ("ingress", "/apis/networking.k8s.io/v1/namespaces/default/ingresses",
     {"spec": {"defaultBackend": {"service": {"name": "s", "port": {"number": 80}}}}},
     {"status": {"loadBalancer": {}}}),
    ("rolebinding", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
     {"roleRef": {"kind": "Role", "name": "r"},
      "subjects": [{"kind": "User", "name": "u"}, {"kind": "ServiceAccount", "name": "sa", "namespace": "default"}]},
     {"roleRef": {"apiGroup": "rbac.authorization.k8s.io"},
      "subjects": [{"apiGroup": "rbac.authorization.k8s.io"}, {"apiGroup": ""}]}),
    ("clusterrolebinding", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
     {"roleRef": {"kind": "ClusterRole", "name": "r"}, "subjects": [{"kind": "Group", "name": "g"}]},
     {"roleRef": {"apiGroup": "rbac.authorization.k8s.io"}, "subjects": [{"apiGroup": "rbac.authorization.k8s.io"}]}),
    ("priorityclass", "/apis/scheduling.k8s.io/v1/priorityclasses", {"value": 1000},
     {"preemptionPolicy": "PreemptLowerPriority"}),
    ("storageclass", "/apis/storage.k8s.io/v1/storageclasses", {"provisioner": "example.com/p"},
     {"reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"}),
    ("csidriver", "/apis/storage.k8s.io/v1/csidrivers", {"spec": {}},
     {"spec": {"attachRequired": True, "podInfoOnMount": False, "storageCapacity": False, "requiresRepublish": False,
               "fsGroupPolicy": "ReadWriteOnceWithFSType", "volumeLifecycleModes": ["Persistent"]}}),
    ("volumeattachment", "/apis/storage.k8s.io/v1/volumeattachments",
     {"spec": {"attacher": "example.com/p", "nodeName": "n", "source": {"persistentVolumeName": "pv"}}},
     {"status": {"attached": False}}),
    ("endpointslice", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
     {"addressType": "IPv4", "endpoints": [{"addresses": ["192.0.2.1"]}], "ports": [{"port": 80}]},
     {"ports": [{"port": 80, "name": "", "protocol": "TCP"}]}),
    ("validatingwebhook", "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
     {"webhooks": [{"name": "v.example.com", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                    "clientConfig": {"service": {"name": "s", "namespace": "default"}},
                    "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                               "resources": ["pods"]}]}]},
     {"webhooks": [{"failurePolicy": "Fail", "matchPolicy": "Equivalent", "namespaceSelector": {},
                    "objectSelector": {}, "timeoutSeconds": 10, "sideEffects": "None",
                    "clientConfig": {"service": {"port": 443}}, "rules": [{"scope": "*"}]}]}),
    ("mutatingwebhook", "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
     {"webhooks": [{"name": "m.example.com", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                    "clientConfig": {"url": "https://127.0.0.1:1/hook"}}]},
     {"webhooks": [{"failurePolicy": "Fail", "reinvocationPolicy": "Never", "timeoutSeconds": 10}]}),
    # kinds without defaults of their own: the answer must still be schema-complete
    ("resourcequota", "/api/v1/namespaces/default/resourcequotas", {"spec": {"hard": {"pods": "10"}}},
     {"status": {}}),
    ("configmap", "/api/v1/namespaces/default/configmaps", {"data": {"a": "1"}}, {"data": {"a": "1"}}),
    ("serviceaccount", "/api/v1/namespaces/default/serviceaccounts", {}, {}),
    ("role", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles",
     {"rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]}, {}),
    ("clusterrole", "/apis/rbac.authorization.k8s.io/v1/clusterroles", {"rules": []}, {}),
    ("csinode", "/apis/storage.k8s.io/v1/csinodes", {"spec": {"drivers": []}}, {}),
    ("controllerrevision", "/apis/apps/v1/namespaces/default/controllerrevisions", {"data": {}, "revision": 1}, {}),
    ("lease", "/apis/coordination.k8s.io/v1/namespaces/default/leases", {"spec": {"holderIdentity": "h"}}, {}),
    ("event", "/apis/events.k8s.io/v1/namespaces/default/events",
     {"eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "c", "reportingInstance": "i",
      "action": "A", "reason": "R", "type": "Normal", "regarding": {"kind": "Pod", "name": "p"}}, {}),
]


@pytest.mark.parametrize(("name", "path", "body", "expected"), KIND_DEFAULTS, ids=[k[0] for k in KIND_DEFAULTS])
def test_kind_defaults(cluster: PodlifeProcess, name: str, path: str, body: dict, expected: dict) -> None:
    obj = create(cluster, path, {"metadata": {"name": f"defaults-{name}"}, **body})
    assert_subset(obj, expected)
    if name == "service-externalname":  # no cluster IP, so no IP families or traffic policy
        assert not {"ipFamilies", "ipFamilyPolicy", "internalTrafficPolicy", "clusterIP"} & set(obj["spec"])
    status, read = cluster.http("GET", f"{path}/defaults-{name}")
    assert status == 200, read
    assert_subset(read, expected)


def test_job_defaults_follow_parallelism_and_failure_policy(cluster: PodlifeProcess) -> None:
    job = create(cluster, f"/apis/batch/v1/namespaces/{NS}/jobs", {"metadata": {"name": "work-queue"}, "spec": {
        "parallelism": 3, "backoffLimitPerIndex": 1, "completionMode": "Indexed", "completions": 4,
        "podFailurePolicy": {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]},
        "template": {"metadata": {"labels": {"team": "a"}}, "spec": {"containers": [CONTAINER], "restartPolicy": "Never"}}}})
    spec = job["spec"]
    assert (spec["parallelism"], spec["completions"], spec["backoffLimit"]) == (3, 4, 2147483647)
    assert spec["podReplacementPolicy"] == "Failed"
    assert spec["podFailurePolicy"]["rules"][0]["onPodConditions"] == [{"type": "DisruptionTarget", "status": "True"}]
    labels = job["metadata"]["labels"]  # from the template, with the labels the server gave it
    assert labels["team"] == "a" and labels["batch.kubernetes.io/job-name"] == "work-queue"
    no_completions = create(cluster, f"/apis/batch/v1/namespaces/{NS}/jobs", {"metadata": {"name": "queue"}, "spec": {
        "parallelism": 2, "template": {"spec": {"containers": [CONTAINER], "restartPolicy": "Never"}}}})
    assert "completions" not in no_completions["spec"]  # a work queue: only both unset default to 1


def test_replication_controller_needs_a_selector_or_template_labels(cluster: PodlifeProcess) -> None:
    status, body = cluster.http("POST", f"/api/v1/namespaces/{NS}/replicationcontrollers", {
        "metadata": {"name": "no-labels"}, "spec": {"template": {"spec": {"containers": [CONTAINER]}}}})
    assert status == 422, body
    assert body["reason"] == "Invalid" and body["details"]["causes"][0]["field"] == "spec.selector"
    status, body = cluster.http("POST", f"/apis/apps/v1/namespaces/{NS}/deployments", {
        "metadata": {"name": "no-selector"}, "spec": {"template": TEMPLATE}})
    assert status == 422, body  # apps/v1 does not default the selector
    assert body["details"]["causes"][0]["field"] == "spec.selector"


def test_status_writes_keep_the_zero_values(cluster: PodlifeProcess) -> None:
    path = f"/apis/apps/v1/namespaces/{NS}/daemonsets"
    ds = create(cluster, path, {"metadata": {"name": "status-ds"}, "spec": {"selector": SELECTOR, "template": TEMPLATE}})
    ds["status"] = {"numberReady": 2, "observedGeneration": 1}
    status, written = cluster.http("PUT", f"{path}/status-ds/status", ds)
    assert status == 200, written
    assert written["status"] == {"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0,
                                 "numberReady": 2, "observedGeneration": 1}
    status, patched = cluster.http("PATCH", f"{path}/status-ds/status", {"status": None},
                                   content_type="application/merge-patch+json")
    assert status == 200, patched
    assert patched["status"]["numberReady"] == 0 and patched["status"]["desiredNumberScheduled"] == 0


def test_node_info_is_complete_even_for_nodes_registered_without_it(cluster: PodlifeProcess) -> None:
    node = create(cluster, "/api/v1/nodes", {"metadata": {"name": "bare-node"},
                                              "status": {"capacity": {"cpu": "2", "pods": "10"}}})
    info = node["status"]["nodeInfo"]
    assert set(info) >= {"machineID", "systemUUID", "bootID", "kernelVersion", "osImage", "containerRuntimeVersion",
                         "kubeletVersion", "kubeProxyVersion", "operatingSystem", "architecture"}
    assert all(v == "" for v in info.values())
    assert node["status"]["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 0}}
    assert node["status"]["allocatable"] == {"cpu": "2", "pods": "10"}
    status, local = cluster.http("GET", "/api/v1/nodes")
    assert status == 200, local
    registered = [n for n in local["items"] if n["metadata"]["name"] != "bare-node"]
    assert registered, "podlife up registers its own node"
    for n in registered:  # the kubelet's own node: real values, kube-proxy's version too
        assert n["status"]["nodeInfo"]["kubeProxyVersion"] == n["status"]["nodeInfo"]["kubeletVersion"] != ""


# ---- the official client's typed models -----------------------------------------------------


@pytest.fixture(scope="module")
def k8s(cluster: PodlifeProcess):
    kubernetes = require_module("kubernetes")
    return kubernetes.config.new_client_from_config(str(cluster.kubeconfig))


def test_official_client_reads_rc_selector_defaulted_from_template(k8s) -> None:
    from kubernetes import client

    core = client.CoreV1Api(k8s)
    core.create_namespaced_replication_controller(NS, {
        "metadata": {"name": "py-rc"}, "spec": {"template": TEMPLATE}})
    rc = core.read_namespaced_replication_controller("py-rc", NS)
    assert rc.spec.selector == {"app": "x"} and rc.metadata.labels == {"app": "x"}
    assert rc.spec.replicas == 1 and rc.status.replicas == 0


def test_official_client_typed_workloads(k8s) -> None:
    from kubernetes import client

    apps, batch = client.AppsV1Api(k8s), client.BatchV1Api(k8s)
    spec = {"selector": SELECTOR, "template": TEMPLATE}
    ds = apps.create_namespaced_daemon_set(NS, {"metadata": {"name": "py-ds"}, "spec": spec})
    assert ds.status.number_ready == 0 and ds.status.desired_number_scheduled == 0
    assert apps.read_namespaced_daemon_set("py-ds", NS).spec.update_strategy.rolling_update.max_surge == 0
    rs = apps.create_namespaced_replica_set(NS, {"metadata": {"name": "py-rs"}, "spec": spec})
    assert rs.status.replicas == 0 and apps.read_namespaced_replica_set("py-rs", NS).spec.replicas == 1
    deploy = apps.create_namespaced_deployment(NS, {"metadata": {"name": "py-deploy"}, "spec": spec})
    assert deploy.spec.strategy.rolling_update.max_unavailable == "25%"
    assert apps.read_namespaced_deployment("py-deploy", NS).spec.progress_deadline_seconds == 600
    sts = apps.create_namespaced_stateful_set(NS, {"metadata": {"name": "py-sts"}, "spec": {**spec, "serviceName": "s"}})
    assert sts.status.replicas == 0 and sts.spec.pod_management_policy == "OrderedReady"
    assert apps.read_namespaced_stateful_set("py-sts", NS).status.available_replicas == 0
    job = batch.create_namespaced_job(NS, {"metadata": {"name": "py-job"}, "spec": {"template": {
        "spec": {"containers": [CONTAINER], "restartPolicy": "Never"}}}})
    assert job.spec.backoff_limit == 6 and job.spec.completion_mode == "NonIndexed"
    assert batch.read_namespaced_job("py-job", NS).spec.template.spec.dns_policy == "ClusterFirst"
    # the lists of every workload kind decode too
    for lister in (apps.list_daemon_set_for_all_namespaces, apps.list_replica_set_for_all_namespaces,
                   apps.list_deployment_for_all_namespaces, apps.list_stateful_set_for_all_namespaces,
                   batch.list_job_for_all_namespaces, batch.list_cron_job_for_all_namespaces,
                   client.CoreV1Api(k8s).list_replication_controller_for_all_namespaces,
                   client.AutoscalingV2Api(k8s).list_horizontal_pod_autoscaler_for_all_namespaces,
                   client.PolicyV1Api(k8s).list_pod_disruption_budget_for_all_namespaces,
                   client.StorageV1Api(k8s).list_volume_attachment):
        assert lister().items is not None


def test_official_client_list_node(k8s) -> None:
    from kubernetes import client

    nodes = client.CoreV1Api(k8s).list_node().items
    assert nodes
    for node in nodes:
        info = node.status.node_info
        assert info.kube_proxy_version is not None and info.machine_id is not None


def test_namespace_defaults(cluster: PodlifeProcess) -> None:
    ns = create(cluster, "/api/v1/namespaces", {"metadata": {"name": "defaults-ns"},
                                                "spec": {"finalizers": ["example.com/ns"]}})
    assert ns["spec"]["finalizers"] == ["example.com/ns", "kubernetes"]  # a create always adds kubernetes
    assert ns["status"] == {"phase": "Active"}
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "defaults-ns"}


def test_kubectl_creates_an_rc_without_selector(cluster: PodlifeProcess) -> None:
    manifest = """
apiVersion: v1
kind: ReplicationController
metadata:
  name: kubectl-rc
spec:
  template:
    metadata:
      labels: {app: kubectl-rc}
    spec:
      containers: [{name: c, image: "registry.example/app:1.0"}]
"""
    cluster.kubectl("create", "-f", "-", input=manifest)
    rc = cluster.kubectl_json("get", "rc", "kubectl-rc", "-o", "json")
    assert rc["spec"]["selector"] == {"app": "kubectl-rc"} and rc["metadata"]["labels"] == {"app": "kubectl-rc"}
    assert rc["spec"]["replicas"] == 1 and rc["status"] == {"replicas": 0}


def test_lightkube_typed_models_read_defaulted_objects(cluster: PodlifeProcess) -> None:
    """lightkube's models take required fields positionally: a missing one fails to load."""
    require_module("lightkube")
    from lightkube import Client, KubeConfig
    from lightkube.models.apps_v1 import DaemonSetSpec
    from lightkube.models.core_v1 import Container, PodSpec, PodTemplateSpec
    from lightkube.models.meta_v1 import LabelSelector, ObjectMeta
    from lightkube.resources.apps_v1 import DaemonSet
    from lightkube.resources.core_v1 import Node

    lk = Client(KubeConfig.from_file(str(cluster.kubeconfig)))
    lk.create(DaemonSet(metadata=ObjectMeta(name="lk-ds"), spec=DaemonSetSpec(
        selector=LabelSelector(matchLabels={"app": "lk"}),
        template=PodTemplateSpec(metadata=ObjectMeta(labels={"app": "lk"}),
                                 spec=PodSpec(containers=[Container(name="c", image=IMAGE)])))), namespace=NS)
    ds = lk.get(DaemonSet, "lk-ds", namespace=NS)
    assert ds.status.numberReady == 0 and ds.spec.updateStrategy.type == "RollingUpdate"
    assert all(n.status.nodeInfo.kubeProxyVersion is not None for n in lk.list(Node))


def test_persistent_volume_records_its_phase_transitions(cluster: PodlifeProcess) -> None:
    path = "/api/v1/persistentvolumes"
    pv = create(cluster, path, {"metadata": {"name": "phase-pv"}, "spec": {
        "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/tmp/phase-pv"}}})
    assert pv["status"]["phase"] == "Pending"
    assert pv["status"]["lastPhaseTransitionTime"] == pv["metadata"]["creationTimestamp"]
    given = "2020-01-01T00:00:00Z"
    status, written = cluster.http("PUT", f"{path}/phase-pv/status",
                                   {**pv, "status": {"phase": "Available", "lastPhaseTransitionTime": given}})
    assert status == 200, written
    assert written["status"] == {"phase": "Available", "lastPhaseTransitionTime": given}  # a writer's own time wins
    status, written = cluster.http("PATCH", f"{path}/phase-pv/status", {"status": {"phase": "Released"}},
                                   content_type="application/merge-patch+json")
    assert status == 200, written
    assert written["status"]["phase"] == "Released" and written["status"]["lastPhaseTransitionTime"] > given
