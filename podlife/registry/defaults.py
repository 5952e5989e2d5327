"""Kubernetes' defaulting, kind by kind: what a real API server fills in before it stores.

Design
------
A Kubernetes API server runs the defaulting functions of the object's group version
(``pkg/apis/<group>/<version>/defaults.go`` plus the ``+default=`` markers of the API
types) on every object it decodes. A client therefore reads back a Deployment with a
``strategy``, a pod with a ``dnsPolicy``, a ReplicationController whose selector came
from its template. This module is podlife's copy of those rules, the one place where a
kind's defaults live: each kind has one ``default_<kind>`` function, and
:data:`DEFAULTERS` maps ``(group, kind)`` to it. Strategies (``pods.py``,
``workloads.py``, ``core.py``) call these functions from ``Strategy.default``; kinds
with no rules of their own are served by :class:`DefaultedStrategy`.

Status zero values. Kubernetes' Go structs write some status fields without
``omitempty`` (``DaemonSetStatus.numberReady``, ``ReplicaSetStatus.replicas``,
``PodDisruptionBudgetStatus.expectedPods`` ...), so a fresh object already carries them
as ``0``, and client libraries declare them required (the official Python client
raises ``ValueError`` when one is missing). :data:`STATUS_DEFAULTS` lists them, with
the status defaults of ``defaults.go`` (``Namespace`` ``Active``, PV/PVC ``Pending``),
and :func:`with_status_defaults` fills them on create and on every status write.

Cost. Pod creation is on the hot path (10,000 pods in a benchmark): the pod rules are
plain ``setdefault`` calls on the request's own dicts, with loops only over lists the
pod has (containers, volumes, ports); nothing is copied and no schema is walked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .types import Obj, Strategy

Defaulter = Callable[[Obj], None]


def _fill(obj: Any, defaults: Obj) -> None:
    """Set each of ``defaults`` that ``obj`` lacks (None and "" count as unset, as in Go)."""
    if not isinstance(obj, dict):
        return
    for key, value in defaults.items():
        if obj.get(key) in (None, ""):
            obj[key] = value


def _child(parent: Obj, key: str) -> Obj | None:
    """``parent[key]`` when it is an object, else None (a missing optional struct)."""
    value = parent.get(key)
    return value if isinstance(value, dict) else None


def _items(parent: Any, key: str) -> list[Obj]:
    """The objects of the list ``parent[key]`` (nothing when absent or malformed)."""
    if not isinstance(parent, dict):
        return []
    value = parent.get(key)
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, dict)]


# -- core/v1: containers -------------------------------------------------------------


def default_pull_policy(image: str) -> str:
    """``Always`` for a ``:latest`` or untagged image, otherwise ``IfNotPresent``.

    Kubernetes parses the reference: no tag means ``latest``, unless a digest pins it.
    """
    name, _, _digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        return "Always" if last.rsplit(":", 1)[1] == "latest" else "IfNotPresent"
    return "IfNotPresent" if _digest else "Always"


_PROBE_DEFAULTS = {"timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}
_HTTP_GET_DEFAULTS = {"path": "/", "scheme": "HTTP"}


def _default_handler(handler: Obj) -> None:
    """A probe's or lifecycle hook's action: ``httpGet`` path and scheme, ``grpc.service``."""
    http_get = _child(handler, "httpGet")
    if http_get is not None:
        _fill(http_get, _HTTP_GET_DEFAULTS)
    grpc = _child(handler, "grpc")
    if grpc is not None:
        grpc.setdefault("service", "")


def _default_field_ref(holder: Obj) -> None:
    field_ref = _child(holder, "fieldRef")
    if field_ref is not None:
        _fill(field_ref, {"apiVersion": "v1"})


def default_container(c: Obj) -> None:
    """SetDefaults_Container and the declarative defaults of its ports, env and probes."""
    if not isinstance(c, dict):
        return
    if not c.get("imagePullPolicy"):
        image = c.get("image")
        if isinstance(image, str):
            c["imagePullPolicy"] = default_pull_policy(image)
    if not c.get("terminationMessagePath"):
        c["terminationMessagePath"] = "/dev/termination-log"
    if not c.get("terminationMessagePolicy"):
        c["terminationMessagePolicy"] = "File"
    if "resources" not in c:
        c["resources"] = {}
    # the optional parts are absent from most pods: test before walking them
    if c.get("ports"):
        for port in _items(c, "ports"):
            if not port.get("protocol"):
                port["protocol"] = "TCP"
    if c.get("env"):
        for env in _items(c, "env"):
            value_from = env.get("valueFrom")
            if isinstance(value_from, dict):
                _default_field_ref(value_from)
    for probe_name in _PROBES:
        probe = c.get(probe_name)
        if isinstance(probe, dict):
            for key, value in _PROBE_DEFAULTS.items():
                if not probe.get(key):
                    probe[key] = value
            _default_handler(probe)
    lifecycle = c.get("lifecycle")
    if isinstance(lifecycle, dict):
        for hook_name in ("postStart", "preStop"):
            hook = lifecycle.get(hook_name)
            if isinstance(hook, dict):
                _default_handler(hook)


_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")


# -- core/v1: volumes ----------------------------------------------------------------

#: Field defaults of volume sources (SetDefaults_*VolumeSource), by source key.
_VOLUME_SOURCE_DEFAULTS: dict[str, Obj] = {
    "secret": {"defaultMode": 420},
    "configMap": {"defaultMode": 420},
    "downwardAPI": {"defaultMode": 420},
    "projected": {"defaultMode": 420},
    "hostPath": {"type": ""},
    "iscsi": {"iscsiInterface": "default"},
    "rbd": {"pool": "rbd", "user": "admin", "keyring": "/etc/ceph/keyring"},
    "azureDisk": {"cachingMode": "ReadWrite", "fsType": "ext4", "readOnly": False, "kind": "Shared"},
    "scaleIO": {"storageMode": "ThinProvisioned", "fsType": "xfs"},
}
#: Every volume source key: a volume with none of them is an emptyDir.
_VOLUME_SOURCES = frozenset({
    "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret", "nfs",
    "iscsi", "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder", "cephfs", "flocker",
    "downwardAPI", "fc", "azureFile", "configMap", "vsphereVolume", "quobyte", "azureDisk",
    "photonPersistentDisk", "projected", "portworxVolume", "scaleIO", "storageos", "csi", "ephemeral",
    "image",
})


def _default_volume_sources(volume: Obj) -> None:
    """The defaults of whichever sources ``volume`` (a Volume or a PV spec) names."""
    for key, defaults in _VOLUME_SOURCE_DEFAULTS.items():
        source = volume.get(key)
        if isinstance(source, dict):
            for field_name, value in defaults.items():
                # hostPath.type's default is "" itself: only a missing field is unset
                if source.get(field_name) is None:
                    source[field_name] = value


def default_volume(volume: Obj) -> None:
    if not isinstance(volume, dict):
        return
    if not any(key in volume for key in _VOLUME_SOURCES):
        volume["emptyDir"] = {}
        return
    _default_volume_sources(volume)
    for item in _items(volume.get("downwardAPI"), "items"):
        _default_field_ref(item)
    for source in _items(volume.get("projected"), "sources"):
        for item in _items(source.get("downwardAPI"), "items"):
            _default_field_ref(item)
        token = _child(source, "serviceAccountToken")
        if token is not None and token.get("expirationSeconds") is None:
            token["expirationSeconds"] = 3600
    image = _child(volume, "image")
    if image is not None and not image.get("pullPolicy"):
        reference = image.get("reference")
        image["pullPolicy"] = default_pull_policy(reference) if isinstance(reference, str) else "IfNotPresent"
    claim_template = _child(_child(volume, "ephemeral") or {}, "volumeClaimTemplate")
    if claim_template is not None:
        spec = _child(claim_template, "spec")
        if spec is not None:
            default_pvc_spec(spec)


# -- core/v1: pods and templates -----------------------------------------------------

_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


def default_pod_spec(spec: Obj) -> None:
    """SetDefaults_PodSpec and everything nested: what every PodSpec gets, templates too."""
    if not isinstance(spec, dict):
        return
    if not spec.get("dnsPolicy"):
        spec["dnsPolicy"] = "ClusterFirst"
    if not spec.get("restartPolicy"):
        spec["restartPolicy"] = "Always"
    if spec.get("securityContext") is None:
        spec["securityContext"] = {}
    if spec.get("terminationGracePeriodSeconds") is None:
        spec["terminationGracePeriodSeconds"] = 30
    if not spec.get("schedulerName"):
        spec["schedulerName"] = "default-scheduler"
    for key in _CONTAINER_LISTS:
        containers = spec.get(key)
        if containers and isinstance(containers, list):
            for c in containers:
                default_container(c)
    if spec.get("volumes"):
        for volume in _items(spec, "volumes"):
            default_volume(volume)


def _requests_from_limits(c: Any) -> None:
    """A pod's container that sets limits but not requests requests its limits."""
    resources = c.get("resources") if isinstance(c, dict) else None
    limits = resources.get("limits") if isinstance(resources, dict) else None
    if not limits or not isinstance(limits, dict):
        return
    requests = resources.get("requests")  # type: ignore[union-attr]
    if not isinstance(requests, dict):
        requests = resources["requests"] = {}  # type: ignore[index]
    for name, value in limits.items():
        requests.setdefault(name, value)


def default_pod(obj: Obj) -> None:
    """A Pod: SetDefaults_Pod (only pods, not templates) then the PodSpec defaults."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    for key in ("containers", "initContainers"):
        containers = spec.get(key)
        if containers and isinstance(containers, list):
            for c in containers:
                _requests_from_limits(c)
    if spec.get("enableServiceLinks") is None:
        spec["enableServiceLinks"] = True
    if spec.get("hostNetwork"):
        for key in ("containers", "initContainers"):
            for c in _items(spec, key):
                for port in _items(c, "ports"):
                    if not port.get("hostPort"):
                        port["hostPort"] = port.get("containerPort")
    default_pod_spec(spec)


def default_pod_template(template: Any) -> None:
    """A PodTemplateSpec inside a workload: the PodSpec defaults (no Pod-only ones)."""
    if not isinstance(template, dict):
        return
    spec = template.get("spec")
    if isinstance(spec, dict):
        default_pod_spec(spec)


def default_podtemplate(obj: Obj) -> None:
    default_pod_template(obj.get("template"))


# -- core/v1: other kinds ------------------------------------------------------------


def default_replicationcontroller(obj: Obj) -> None:
    """Selector and labels from the template's labels; one replica."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    template = _child(spec, "template")
    labels = (_child(template, "metadata") or {}).get("labels") if template is not None else None
    if isinstance(labels, dict) and labels:
        if not spec.get("selector"):
            spec["selector"] = dict(labels)
        meta = obj.setdefault("metadata", {})
        if not meta.get("labels"):
            meta["labels"] = dict(labels)
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    default_pod_template(template)


def default_service(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    _fill(spec, {"sessionAffinity": "None", "type": "ClusterIP"})
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        client_ip = (_child(spec, "sessionAffinityConfig") or {}).get("clientIP")
        if not isinstance(client_ip, dict) or client_ip.get("timeoutSeconds") is None:
            spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": 10800}}
    for port in _items(spec, "ports"):
        if not port.get("protocol"):
            port["protocol"] = "TCP"
        if port.get("targetPort") in (None, 0, ""):
            port["targetPort"] = port.get("port")
    service_type = spec["type"]
    externally_accessible = service_type in ("LoadBalancer", "NodePort") or (
        service_type == "ClusterIP" and bool(spec.get("externalIPs")))
    if externally_accessible and not spec.get("externalTrafficPolicy"):
        spec["externalTrafficPolicy"] = "Cluster"
    if service_type == "ExternalName":
        return
    if spec.get("internalTrafficPolicy") is None:
        spec["internalTrafficPolicy"] = "Cluster"
    if service_type == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is None:
        spec["allocateLoadBalancerNodePorts"] = True
    # what the REST layer's IP allocation records for a single-stack IPv4 cluster;
    # a headless service without selector may serve any family it is given endpoints of
    spec.setdefault("ipFamilies", ["IPv4"])
    if spec.get("ipFamilyPolicy") is None:
        selectorless_headless = spec.get("clusterIP") == "None" and not spec.get("selector")
        spec["ipFamilyPolicy"] = "RequireDualStack" if selectorless_headless else "SingleStack"


def default_endpoints(obj: Obj) -> None:
    for subset in _items(obj, "subsets"):
        for port in _items(subset, "ports"):
            if not port.get("protocol"):
                port["protocol"] = "TCP"


def default_secret(obj: Obj) -> None:
    if not obj.get("type"):
        obj["type"] = "Opaque"


def default_namespace(obj: Obj) -> None:
    """The ``kubernetes.io/metadata.name`` label (named namespaces only)."""
    meta = obj.setdefault("metadata", {})
    name = meta.get("name")
    if name:
        labels = meta.get("labels")
        if not isinstance(labels, dict):
            labels = meta["labels"] = {}
        labels["kubernetes.io/metadata.name"] = name


def default_pvc_spec(spec: Obj) -> None:
    if spec.get("volumeMode") is None:
        spec["volumeMode"] = "Filesystem"


def default_persistentvolumeclaim(obj: Obj) -> None:
    spec = obj.get("spec")
    if isinstance(spec, dict):
        default_pvc_spec(spec)


def default_persistentvolume(obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    _fill(spec, {"persistentVolumeReclaimPolicy": "Retain"})
    if spec.get("volumeMode") is None:
        spec["volumeMode"] = "Filesystem"
    _default_volume_sources(spec)


def default_limitrange(obj: Obj) -> None:
    """Container limits: default from max, defaultRequest from default, then from min."""
    for item in _items(obj.get("spec"), "limits"):
        if item.get("type") != "Container":
            continue
        default, request = _child(item, "default") or {}, _child(item, "defaultRequest") or {}
        for name, value in (_child(item, "max") or {}).items():
            default.setdefault(name, value)
        for name, value in default.items():
            request.setdefault(name, value)
        for name, value in (_child(item, "min") or {}).items():
            request.setdefault(name, value)
        if default:
            item["default"] = default
        if request:
            item["defaultRequest"] = request


# -- apps/v1 -------------------------------------------------------------------------


def _default_rolling_update(strategy: Obj, rolling: Obj) -> None:
    """``type: RollingUpdate`` unless set; then the rolling parameters' defaults."""
    if not strategy.get("type"):
        strategy["type"] = "RollingUpdate"
    if strategy["type"] != "RollingUpdate":
        return
    params = strategy.get("rollingUpdate")
    if not isinstance(params, dict):
        params = strategy["rollingUpdate"] = {}
    for key, value in rolling.items():
        if params.get(key) is None:
            params[key] = value


def _spec_dict(obj: Obj, key: str) -> Obj:
    value = obj.get(key)
    if not isinstance(value, dict):
        value = obj[key] = {}
    return value


def default_deployment(obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    _default_rolling_update(_spec_dict(spec, "strategy"), {"maxUnavailable": "25%", "maxSurge": "25%"})
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    if spec.get("progressDeadlineSeconds") is None:
        spec["progressDeadlineSeconds"] = 600
    default_pod_template(spec.get("template"))


def default_daemonset(obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    _default_rolling_update(_spec_dict(spec, "updateStrategy"), {"maxUnavailable": 1, "maxSurge": 0})
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    default_pod_template(spec.get("template"))


def default_statefulset(obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    _fill(spec, {"podManagementPolicy": "OrderedReady"})
    strategy = _spec_dict(spec, "updateStrategy")
    if not strategy.get("type"):
        # only an unset type brings an (empty) rollingUpdate to fill below
        strategy["type"] = "RollingUpdate"
        if not isinstance(strategy.get("rollingUpdate"), dict):
            strategy["rollingUpdate"] = {}
    rolling = _child(strategy, "rollingUpdate")
    if strategy["type"] == "RollingUpdate" and rolling is not None and rolling.get("partition") is None:
        rolling["partition"] = 0
    _fill(_spec_dict(spec, "persistentVolumeClaimRetentionPolicy"), {"whenDeleted": "Retain", "whenScaled": "Retain"})
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    default_pod_template(spec.get("template"))
    for claim in _items(spec, "volumeClaimTemplates"):
        claim_spec = _child(claim, "spec")
        if claim_spec is not None:
            default_pvc_spec(claim_spec)
        # a PVC's own defaults apply to the templates too
        claim["status"] = with_status_defaults(claim.get("status"), STATUS_DEFAULTS[("", "PersistentVolumeClaim")])


def default_replicaset(obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    default_pod_template(spec.get("template"))


# -- batch/v1 ------------------------------------------------------------------------


def _default_pod_failure_policy(job_spec: Obj) -> None:
    for rule in _items(job_spec.get("podFailurePolicy"), "rules"):
        for pattern in _items(rule, "onPodConditions"):
            if not pattern.get("status"):
                pattern["status"] = "True"


def default_job(obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    if spec.get("parallelism") is None:
        spec["parallelism"] = 1
    if spec.get("backoffLimit") is None:
        spec["backoffLimit"] = 2147483647 if spec.get("backoffLimitPerIndex") is not None else 6
    template = _child(spec, "template")
    labels = (_child(template, "metadata") or {}).get("labels") if template is not None else None
    meta = obj.setdefault("metadata", {})
    if isinstance(labels, dict) and not meta.get("labels"):
        meta["labels"] = dict(labels)
    if spec.get("completionMode") is None:
        spec["completionMode"] = "NonIndexed"
    if spec.get("suspend") is None:
        spec["suspend"] = False
    if spec.get("podReplacementPolicy") is None:
        spec["podReplacementPolicy"] = "Failed" if spec.get("podFailurePolicy") is not None else "TerminatingOrFailed"
    if spec.get("manualSelector") is None:
        spec["manualSelector"] = False
    _default_pod_failure_policy(spec)
    default_pod_template(template)


def default_cronjob(obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    _fill(spec, {"concurrencyPolicy": "Allow"})
    for key, value in (("suspend", False), ("successfulJobsHistoryLimit", 3), ("failedJobsHistoryLimit", 1)):
        if spec.get(key) is None:
            spec[key] = value
    job_spec = _child(_child(spec, "jobTemplate") or {}, "spec")
    if job_spec is not None:
        _default_pod_failure_policy(job_spec)
        default_pod_template(job_spec.get("template"))


# -- autoscaling/v2 ------------------------------------------------------------------

_SCALE_UP_RULES = {
    "stabilizationWindowSeconds": 0,
    "selectPolicy": "Max",
    "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                 {"type": "Percent", "value": 100, "periodSeconds": 15}],
}
_SCALE_DOWN_RULES = {"selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}


def _scaling_rules(given: Any, defaults: Obj) -> Obj:
    """The given rules with every unset part taken from ``defaults`` (fresh lists)."""
    rules = {k: ([dict(p) for p in v] if isinstance(v, list) else v) for k, v in defaults.items()}
    if isinstance(given, dict):
        rules.update({k: v for k, v in given.items() if v is not None})
    return rules


def default_horizontalpodautoscaler(obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    if spec.get("minReplicas") is None:
        spec["minReplicas"] = 1
    if not spec.get("metrics"):
        spec["metrics"] = [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]
    behavior = _child(spec, "behavior")
    if behavior is not None:
        behavior["scaleUp"] = _scaling_rules(behavior.get("scaleUp"), _SCALE_UP_RULES)
        behavior["scaleDown"] = _scaling_rules(behavior.get("scaleDown"), _SCALE_DOWN_RULES)


# -- networking.k8s.io/v1 ------------------------------------------------------------


def default_networkpolicy(obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    for rule_key, peer_ports in (("ingress", "ports"), ("egress", "ports")):
        for rule in _items(spec, rule_key):
            for port in _items(rule, peer_ports):
                if port.get("protocol") is None:
                    port["protocol"] = "TCP"
    if not spec.get("policyTypes"):
        spec["policyTypes"] = ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]


def default_ingressclass(obj: Obj) -> None:
    parameters = _child(obj.get("spec") or {}, "parameters")
    if parameters is not None and parameters.get("scope") is None:
        parameters["scope"] = "Cluster"


# -- rbac.authorization.k8s.io/v1 ----------------------------------------------------

_RBAC_GROUP = "rbac.authorization.k8s.io"


def default_rolebinding(obj: Obj) -> None:
    """RoleBindings and ClusterRoleBindings: roleRef's and the subjects' apiGroup."""
    role_ref = _child(obj, "roleRef")
    if role_ref is not None and not role_ref.get("apiGroup"):
        role_ref["apiGroup"] = _RBAC_GROUP
    for subject in _items(obj, "subjects"):
        if not subject.get("apiGroup"):
            if subject.get("kind") in ("User", "Group"):
                subject["apiGroup"] = _RBAC_GROUP
            elif subject.get("kind") == "ServiceAccount":
                subject["apiGroup"] = ""


# -- scheduling, storage, discovery, admissionregistration ---------------------------


def default_priorityclass(obj: Obj) -> None:
    if obj.get("preemptionPolicy") is None:
        obj["preemptionPolicy"] = "PreemptLowerPriority"


def default_storageclass(obj: Obj) -> None:
    if obj.get("reclaimPolicy") is None:
        obj["reclaimPolicy"] = "Delete"
    if obj.get("volumeBindingMode") is None:
        obj["volumeBindingMode"] = "Immediate"


_CSI_DRIVER_DEFAULTS = {"attachRequired": True, "podInfoOnMount": False, "storageCapacity": False,
                        "fsGroupPolicy": "ReadWriteOnceWithFSType", "requiresRepublish": False,
                        "seLinuxMount": False}


def default_csidriver(obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    for key, value in _CSI_DRIVER_DEFAULTS.items():
        if spec.get(key) is None:
            spec[key] = value
    if not spec.get("volumeLifecycleModes"):
        spec["volumeLifecycleModes"] = ["Persistent"]


def default_endpointslice(obj: Obj) -> None:
    for port in _items(obj, "ports"):
        if port.get("name") is None:
            port["name"] = ""
        if port.get("protocol") is None:
            port["protocol"] = "TCP"


_WEBHOOK_DEFAULTS = {"failurePolicy": "Fail", "matchPolicy": "Equivalent", "sideEffects": "Unknown",
                     "timeoutSeconds": 10}  # admissionregistration v1 (v1beta1 had 30)


def _default_webhook(webhook: Obj, mutating: bool) -> None:
    for key, value in _WEBHOOK_DEFAULTS.items():
        if webhook.get(key) is None:
            webhook[key] = value
    for key in ("namespaceSelector", "objectSelector"):
        if webhook.get(key) is None:
            webhook[key] = {}
    if mutating and webhook.get("reinvocationPolicy") is None:
        webhook["reinvocationPolicy"] = "Never"
    if not webhook.get("admissionReviewVersions"):
        webhook["admissionReviewVersions"] = ["v1"]
    for rule in _items(webhook, "rules"):
        if rule.get("scope") is None:
            rule["scope"] = "*"
    service = _child(_child(webhook, "clientConfig") or {}, "service")
    if service is not None and service.get("port") is None:
        service["port"] = 443


def default_validatingwebhookconfiguration(obj: Obj) -> None:
    for webhook in _items(obj, "webhooks"):
        _default_webhook(webhook, mutating=False)


def default_mutatingwebhookconfiguration(obj: Obj) -> None:
    for webhook in _items(obj, "webhooks"):
        _default_webhook(webhook, mutating=True)


#: Each kind's defaulting function, by (group, kind).
DEFAULTERS: dict[tuple[str, str], Defaulter] = {
    ("", "Pod"): default_pod,
    ("", "PodTemplate"): default_podtemplate,
    ("", "ReplicationController"): default_replicationcontroller,
    ("", "Service"): default_service,
    ("", "Endpoints"): default_endpoints,
    ("", "Secret"): default_secret,
    ("", "Namespace"): default_namespace,
    ("", "PersistentVolume"): default_persistentvolume,
    ("", "PersistentVolumeClaim"): default_persistentvolumeclaim,
    ("", "LimitRange"): default_limitrange,
    ("apps", "Deployment"): default_deployment,
    ("apps", "DaemonSet"): default_daemonset,
    ("apps", "StatefulSet"): default_statefulset,
    ("apps", "ReplicaSet"): default_replicaset,
    ("batch", "Job"): default_job,
    ("batch", "CronJob"): default_cronjob,
    ("autoscaling", "HorizontalPodAutoscaler"): default_horizontalpodautoscaler,
    ("networking.k8s.io", "NetworkPolicy"): default_networkpolicy,
    ("networking.k8s.io", "IngressClass"): default_ingressclass,
    (_RBAC_GROUP, "RoleBinding"): default_rolebinding,
    (_RBAC_GROUP, "ClusterRoleBinding"): default_rolebinding,
    ("scheduling.k8s.io", "PriorityClass"): default_priorityclass,
    ("storage.k8s.io", "StorageClass"): default_storageclass,
    ("storage.k8s.io", "CSIDriver"): default_csidriver,
    ("discovery.k8s.io", "EndpointSlice"): default_endpointslice,
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"): default_validatingwebhookconfiguration,
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"): default_mutatingwebhookconfiguration,
}


# -- status --------------------------------------------------------------------------

#: Status fields a fresh object carries (Go fields without omitempty, and the status
#: defaults of defaults.go), in Go struct order, by (group, kind).
STATUS_DEFAULTS: dict[tuple[str, str], Obj] = {
    ("", "ReplicationController"): {"replicas": 0},
    ("apps", "ReplicaSet"): {"replicas": 0},
    ("apps", "StatefulSet"): {"replicas": 0, "availableReplicas": 0},
    ("apps", "DaemonSet"): {"currentNumberScheduled": 0, "numberMisscheduled": 0,
                            "desiredNumberScheduled": 0, "numberReady": 0},
    ("apps", "Deployment"): {},
    ("batch", "Job"): {},
    ("batch", "CronJob"): {},
    ("autoscaling", "HorizontalPodAutoscaler"): {"desiredReplicas": 0},
    ("policy", "PodDisruptionBudget"): {"disruptionsAllowed": 0, "currentHealthy": 0,
                                        "desiredHealthy": 0, "expectedPods": 0},
    ("storage.k8s.io", "VolumeAttachment"): {"attached": False},
    ("", "Namespace"): {"phase": "Active"},
    ("", "PersistentVolume"): {"phase": "Pending"},
    ("", "PersistentVolumeClaim"): {"phase": "Pending"},
    ("", "Service"): {"loadBalancer": {}},
    ("networking.k8s.io", "Ingress"): {"loadBalancer": {}},
    ("", "ResourceQuota"): {},
}


def with_status_defaults(status: Any, defaults: Obj) -> Obj:
    """``status`` with the missing ``defaults`` added; ``status`` itself when complete.

    Never changes ``status`` in place: on updates it may be the stored object's.
    """
    if not isinstance(status, dict):
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in defaults.items()}
    for key in defaults:
        if key not in status:
            return {**{k: (dict(v) if isinstance(v, dict) else v) for k, v in defaults.items()}, **status}
    return status


class DefaultedStrategy(Strategy):
    """A kind with no rules beyond Kubernetes' defaults (and status zero values)."""

    def __init__(self, group: str, kind: str, *, has_status: bool = False) -> None:
        self.has_status = has_status
        self._defaulter = DEFAULTERS.get((group, kind))
        self._status_defaults = STATUS_DEFAULTS.get((group, kind), {}) if has_status else None

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        if self._status_defaults is not None:
            obj["status"] = with_status_defaults(None, self._status_defaults)

    def default(self, obj: Obj) -> None:
        if self._defaulter is not None:
            self._defaulter(obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_update(new, old)  # the stored status (older stores may lack the zeros)
        if self._status_defaults is not None:
            new["status"] = with_status_defaults(new.get("status"), self._status_defaults)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        merged = super().prepare_for_status_update(new, old)
        if self._status_defaults is not None:
            merged["status"] = with_status_defaults(merged.get("status"), self._status_defaults)
        return merged
