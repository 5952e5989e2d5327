"""Every built-in kind refuses what Kubernetes refuses, with Kubernetes' 422 message, and stores nothing.

Table-driven against a real ``podlife up``: each bad manifest is POSTed over HTTPS (a few
through ``kubectl apply -f -``), must get 422 ``Invalid`` with exactly the message
``pkg/apis/<group>/validation`` writes, and a GET afterwards must find nothing; each
matching good manifest is created (201). Update rules (immutable selectors, frozen
ConfigMaps, Secret types, cluster IPs, Job templates) are driven with PUTs of a changed
object read back from the server.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from .cluster_harness import PodlifeProcess

pytestmark = pytest.mark.e2e

Obj = dict[str, Any]
NS = "default"

PATHS = {
    "Deployment": "/apis/apps/v1/namespaces/default/deployments",
    "ReplicaSet": "/apis/apps/v1/namespaces/default/replicasets",
    "StatefulSet": "/apis/apps/v1/namespaces/default/statefulsets",
    "DaemonSet": "/apis/apps/v1/namespaces/default/daemonsets",
    "ReplicationController": "/api/v1/namespaces/default/replicationcontrollers",
    "Job": "/apis/batch/v1/namespaces/default/jobs",
    "CronJob": "/apis/batch/v1/namespaces/default/cronjobs",
    "Service": "/api/v1/namespaces/default/services",
    "ConfigMap": "/api/v1/namespaces/default/configmaps",
    "Secret": "/api/v1/namespaces/default/secrets",
    "Endpoints": "/api/v1/namespaces/default/endpoints",
    "Namespace": "/api/v1/namespaces",
    "Node": "/api/v1/nodes",
    "PersistentVolume": "/api/v1/persistentvolumes",
    "PersistentVolumeClaim": "/api/v1/namespaces/default/persistentvolumeclaims",
    "LimitRange": "/api/v1/namespaces/default/limitranges",
    "ResourceQuota": "/api/v1/namespaces/default/resourcequotas",
    "StorageClass": "/apis/storage.k8s.io/v1/storageclasses",
    "Lease": "/apis/coordination.k8s.io/v1/namespaces/default/leases",
}
API_VERSIONS = {"Deployment": "apps/v1", "ReplicaSet": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1",
                "Job": "batch/v1", "CronJob": "batch/v1", "StorageClass": "storage.k8s.io/v1",
                "Lease": "coordination.k8s.io/v1"}
QUALIFIED = {"Deployment": "Deployment.apps", "ReplicaSet": "ReplicaSet.apps", "StatefulSet": "StatefulSet.apps",
             "DaemonSet": "DaemonSet.apps", "Job": "Job.batch", "CronJob": "CronJob.batch",
             "StorageClass": "StorageClass.storage.k8s.io", "Lease": "Lease.coordination.k8s.io"}
CLUSTER_SCOPED = {"Namespace", "Node", "PersistentVolume", "StorageClass"}


def manifest(kind: str, name: str, **body: Any) -> Obj:
    meta: Obj = {"name": name}
    if kind not in CLUSTER_SCOPED:
        meta["namespace"] = NS
    meta.update(body.pop("metadata", {}))
    return {"apiVersion": API_VERSIONS.get(kind, "v1"), "kind": kind, "metadata": meta, **body}


def template(restart: str | None = None, labels: Obj | None = None, **spec: Any) -> Obj:
    pod: Obj = {"containers": [{"name": "c", "image": "busybox"}], **spec}
    if restart:
        pod["restartPolicy"] = restart
    return {"metadata": {"labels": {"app": "web"} if labels is None else labels}, "spec": pod}


def deployment(name: str, **spec: Any) -> Obj:
    spec.setdefault("selector", {"matchLabels": {"app": "web"}})
    spec.setdefault("template", template())
    return manifest("Deployment", name, spec=spec)


def apps(kind: str, name: str, **spec: Any) -> Obj:
    spec.setdefault("selector", {"matchLabels": {"app": "web"}})
    spec.setdefault("template", template())
    return manifest(kind, name, spec=spec)


def job(name: str, **spec: Any) -> Obj:
    spec.setdefault("template", template("Never", labels={}))
    return manifest("Job", name, spec=spec)


def cronjob(name: str, schedule: str = "*/5 * * * *", **spec: Any) -> Obj:
    spec.setdefault("jobTemplate", {"spec": {"template": template("OnFailure", labels={})}})
    return manifest("CronJob", name, spec={"schedule": schedule, **spec})


def service(name: str, **spec: Any) -> Obj:
    spec.setdefault("ports", [{"port": 80}])
    return manifest("Service", name, spec=spec)


def pv(name: str, **spec: Any) -> Obj:
    spec.setdefault("accessModes", ["ReadWriteOnce"])
    spec.setdefault("capacity", {"storage": "1Gi"})
    if not any(k in spec for k in ("hostPath", "nfs", "local", "csi")):
        spec["hostPath"] = {"path": "/tmp/pv"}
    return manifest("PersistentVolume", name, spec=spec)


def pvc(name: str, **spec: Any) -> Obj:
    spec.setdefault("accessModes", ["ReadWriteOnce"])
    spec.setdefault("resources", {"requests": {"storage": "1Gi"}})
    return manifest("PersistentVolumeClaim", name, spec=spec)


def b64(text: str) -> str:
    import base64
    return base64.b64encode(text.encode()).decode()


RU = "spec.strategy.rollingUpdate"
NOT_MATCH = "`selector` does not match template `labels`"

#: (id, bad manifest, the message after `<Kind> "<name>" is invalid: `)
INVALID: list[tuple[str, Obj, str]] = [
    # --- Deployment
    ("deploy-no-selector", deployment("d1", selector=None),
     '[spec.selector: Required value, spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
     + NOT_MATCH + "]"),
    ("deploy-empty-selector", deployment("d2", selector={}),
     "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
     "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"),
    ("deploy-labels-mismatch", deployment("d3", template=template(labels={"app": "db"})),
     'spec.template.metadata.labels: Invalid value: map[string]string{"app":"db"}: ' + NOT_MATCH),
    ("deploy-restart-onfailure", deployment("d4", template=template("OnFailure")),
     'spec.template.spec.restartPolicy: Unsupported value: "OnFailure": supported values: "Always"'),
    ("deploy-no-containers", deployment("d5", template={"metadata": {"labels": {"app": "web"}}, "spec": {}}),
     "spec.template.spec.containers: Required value"),
    ("deploy-bad-container-name", deployment("d6", template={"metadata": {"labels": {"app": "web"}}, "spec": {
        "containers": [{"name": "Web", "image": "nginx"}]}}),
     'spec.template.spec.containers[0].name: Invalid value: "Web": a lowercase RFC 1123 label must consist of lower '
     "case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  "
     "or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"),
    ("deploy-negative-replicas", deployment("d7", replicas=-1),
     "spec.replicas: Invalid value: -1: must be greater than or equal to 0"),
    ("deploy-both-zero", deployment("d8", strategy={"type": "RollingUpdate",
                                                    "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}),
     f'{RU}.maxUnavailable: Invalid value: intstr.IntOrString{{Type:0, IntVal:0, StrVal:""}}: '
     "may not be 0 when `maxSurge` is 0"),
    ("deploy-bad-percent", deployment("d9", strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "5x"}}),
     f'{RU}.maxSurge: Invalid value: intstr.IntOrString{{Type:1, IntVal:0, StrVal:"5x"}}: a valid percent string must '
     "be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"),
    ("deploy-over-100", deployment("d10", strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "150%"}}),
     f'{RU}.maxUnavailable: Invalid value: intstr.IntOrString{{Type:1, IntVal:0, StrVal:"150%"}}: '
     "must not be greater than 100%"),
    ("deploy-recreate-rolling", deployment("d11", strategy={"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}),
     "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"),
    ("deploy-history", deployment("d12", revisionHistoryLimit=-2),
     "spec.revisionHistoryLimit: Invalid value: -2: must be greater than or equal to 0"),
    ("deploy-deadline", deployment("d13", minReadySeconds=10, progressDeadlineSeconds=5),
     "spec.progressDeadlineSeconds: Invalid value: 5: must be greater than minReadySeconds"),
    # --- ReplicaSet, DaemonSet, StatefulSet, ReplicationController
    ("rs-deadline-in-template", apps("ReplicaSet", "r1", template=template(activeDeadlineSeconds=5)),
     "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in ReplicaSet is not Supported"),
    ("ds-restart-never", apps("DaemonSet", "ds1", template=template("Never")),
     'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"'),
    ("ds-both-nonzero", apps("DaemonSet", "ds2", updateStrategy={"type": "RollingUpdate",
                                                                "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}}),
     "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: intstr.IntOrString{Type:0, IntVal:1, StrVal:\"\"}: "
     "may not be set when maxUnavailable is non-zero"),
    ("sts-pod-management", apps("StatefulSet", "s1", serviceName="s", podManagementPolicy="Random"),
     'spec.podManagementPolicy: Invalid value: "Random": must be \'OrderedReady\' or \'Parallel\''),
    ("sts-partition", apps("StatefulSet", "s2", updateStrategy={"type": "RollingUpdate",
                                                               "rollingUpdate": {"partition": -1}}),
     "spec.updateStrategy.rollingUpdate.partition: Invalid value: -1: must be greater than or equal to 0"),
    ("sts-empty-selector", apps("StatefulSet", "s3", selector={}),
     "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
     "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for statefulset"),
    ("rc-mismatch", manifest("ReplicationController", "rc1", spec={"selector": {"app": "x"}, "template": template()}),
     'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: ' + NOT_MATCH),
    # --- Job, CronJob
    ("job-restart-always", job("j1", template=template("Always", labels={})),
     'spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"'),
    ("job-negative-completions", job("j2", completions=-1),
     "spec.completions: Invalid value: -1: must be greater than or equal to 0"),
    ("job-backoff", job("j3", backoffLimit=-1), "spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0"),
    ("job-completion-mode", job("j4", completionMode="Sometimes"),
     'spec.completionMode: Unsupported value: "Sometimes": supported values: "NonIndexed", "Indexed"'),
    ("job-indexed-needs-completions", job("j5", completionMode="Indexed", parallelism=2),
     "spec.completions: Required value: when completion mode is Indexed"),
    ("cron-fields", cronjob("c1", "* * *"),
     'spec.schedule: Invalid value: "* * *": expected exactly 5 fields, found 3: [* * *]'),
    ("cron-range", cronjob("c2", "61 * * * *"),
     'spec.schedule: Invalid value: "61 * * * *": end of range (61) above maximum (59): 61'),
    ("cron-descriptor", cronjob("c3", "@fortnightly"),
     'spec.schedule: Invalid value: "@fortnightly": unrecognized descriptor: @fortnightly'),
    ("cron-every", cronjob("c4", "@every 5x"),
     'spec.schedule: Invalid value: "@every 5x": failed to parse duration @every 5x: time: unknown unit "x" in duration "5x"'),
    ("cron-tz-in-schedule", cronjob("c5", "TZ=UTC 0 * * * *"),
     'spec.schedule: Invalid value: "TZ=UTC 0 * * * *": cannot use TZ or CRON_TZ in schedule, use timeZone field instead'),
    ("cron-time-zone", cronjob("c6", timeZone="Mars/Olympus"),
     'spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus'),
    ("cron-concurrency", cronjob("c7", concurrencyPolicy="Sometimes"),
     'spec.concurrencyPolicy: Unsupported value: "Sometimes": supported values: "Allow", "Forbid", "Replace"'),
    ("cron-job-restart", cronjob("c8", jobTemplate={"spec": {"template": template(labels={})}}),
     'spec.jobTemplate.spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"'),
    ("cron-long-name", cronjob("c" * 53),
     f'metadata.name: Invalid value: "{"c" * 53}": must be no more than 52 characters'),
    # --- Service
    ("svc-no-ports", manifest("Service", "v1", spec={"selector": {"app": "web"}}), "spec.ports: Required value"),
    ("svc-port-range", service("v2", ports=[{"port": 70000}]),
     "[spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive, "
     "spec.ports[0].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive]"),  # defaulted from port
    ("svc-unnamed-ports", service("v3", ports=[{"port": 80, "name": "http"}, {"port": 81}]),
     "spec.ports[1].name: Required value"),
    ("svc-duplicate-names", service("v4", ports=[{"port": 80, "name": "http"}, {"port": 81, "name": "http"}]),
     'spec.ports[1].name: Duplicate value: "http"'),
    ("svc-protocol", service("v5", ports=[{"port": 80, "protocol": "ICMP"}]),
     'spec.ports[0].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"'),
    ("svc-target-name", service("v6", ports=[{"port": 80, "targetPort": "http_web"}]),
     'spec.ports[0].targetPort: Invalid value: "http_web": must contain only alpha-numeric characters (a-z, 0-9), '
     "and hyphens (-)"),
    ("svc-type", service("v7", type="Internal"),
     'spec.type: Unsupported value: "Internal": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"'),
    ("svc-nodeport-on-clusterip", service("v8", ports=[{"port": 80, "nodePort": 30080}]),
     "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"),
    ("svc-nodeport-range", service("v9", type="NodePort", ports=[{"port": 80, "nodePort": 80}]),
     "spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. "
     "The range of valid ports is 30000-32767"),
    ("svc-external-name", manifest("Service", "v10", spec={"type": "ExternalName", "externalName": "Bad_Name"}),
     'spec.externalName: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist of lower case '
     "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
     "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"),
    ("svc-affinity", service("v11", sessionAffinity="Sticky"),
     'spec.sessionAffinity: Unsupported value: "Sticky": supported values: "ClientIP", "None"'),
    ("svc-ip-family", service("v12", ipFamilies=["IPv5"]),
     'spec.ipFamilies[0]: Unsupported value: "IPv5": supported values: "IPv4", "IPv6"'),
    # --- ConfigMap, Secret
    ("cm-key", manifest("ConfigMap", "m1", data={"a b": "x"}),
     'data[a b]: Invalid value: "a b": a valid config key must consist of alphanumeric characters, \'-\', \'_\' or '
     "'.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"),
    ("cm-too-big", manifest("ConfigMap", "m2", data={"a": "x" * (1024 * 1024 + 1)}),
     "[]: Too long: must have at most 1048576 bytes"),
    ("cm-dup-binary", manifest("ConfigMap", "m3", data={"a": "x"}, binaryData={"a": b64("y")}),
     '[data[a]: Invalid value: "a": duplicate of key present in binaryData, '
     'binaryData[a]: Invalid value: "a": duplicate of key present in data]'),
    ("secret-tls", manifest("Secret", "s1", type="kubernetes.io/tls", data={"tls.crt": b64("c")}),
     "data[tls.key]: Required value"),
    ("secret-dockerconfigjson", manifest("Secret", "s2", type="kubernetes.io/dockerconfigjson"),
     "data[.dockerconfigjson]: Required value"),
    ("secret-basic-auth", manifest("Secret", "s3", type="kubernetes.io/basic-auth", data={}),
     "[data[username]: Required value, data[password]: Required value]"),
    ("secret-ssh", manifest("Secret", "s4", type="kubernetes.io/ssh-auth", data={"x": b64("y")}),
     "data[ssh-privatekey]: Required value"),
    ("secret-sa-token", manifest("Secret", "s5", type="kubernetes.io/service-account-token"),
     "metadata.annotations[kubernetes.io/service-account.name]: Required value"),
    # --- Namespace, Node
    ("ns-finalizer", manifest("Namespace", "n1", spec={"finalizers": ["custom"]}),
     'spec.finalizers[0]: Invalid value: "custom": name is neither a standard finalizer name nor is it fully qualified'),
    ("node-taint-effect", manifest("Node", "node-x1", spec={"taints": [{"key": "a", "effect": "Sometimes"}]}),
     'spec.taints[0].effect: Unsupported value: "Sometimes": supported values: "NoSchedule", "PreferNoSchedule", '
     '"NoExecute"'),
    ("node-pod-cidr", manifest("Node", "node-x2", spec={"podCIDR": "10.1.0.0"}),
     'spec.podCIDRs[0]: Invalid value: "10.1.0.0": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)'),
    # --- storage
    ("pv-no-modes", pv("pv1", accessModes=[]), "spec.accessModes: Required value"),
    ("pv-mode", pv("pv2", accessModes=["ReadSometimes"]),
     'spec.accessModes: Unsupported value: "ReadSometimes": supported values: "ReadOnlyMany", "ReadWriteMany", '
     '"ReadWriteOnce", "ReadWriteOncePod"'),
    ("pv-zero-capacity", pv("pv3", capacity={"storage": "0"}),
     'spec.capacity[storage]: Invalid value: "0": must be greater than zero'),
    ("pv-two-sources", pv("pv4", hostPath={"path": "/a"}, nfs={"server": "s", "path": "/b"}),
     "spec.nfs: Forbidden: may not specify more than 1 volume type"),
    ("pv-no-source", manifest("PersistentVolume", "pv5", spec={"accessModes": ["ReadWriteOnce"],
                                                               "capacity": {"storage": "1Gi"}}),
     "spec: Required value: must specify a volume type"),
    ("pv-reclaim", pv("pv6", persistentVolumeReclaimPolicy="Shred"),
     'spec.persistentVolumeReclaimPolicy: Unsupported value: "Shred": supported values: "Delete", "Recycle", "Retain"'),
    ("pvc-no-storage", pvc("c1", resources={"requests": {}}), "spec.resources[storage]: Required value"),
    ("pvc-no-modes", pvc("c2", accessModes=[]), "spec.accessModes: Required value: at least 1 access mode is required"),
    ("pvc-volume-mode", pvc("c3", volumeMode="Raw"),
     'spec.volumeMode: Unsupported value: "Raw": supported values: "Block", "Filesystem"'),
    ("sc-no-provisioner", manifest("StorageClass", "sc1"), "provisioner: Required value"),
    ("sc-binding", manifest("StorageClass", "sc2", provisioner="example.com/p", volumeBindingMode="Later"),
     'volumeBindingMode: Unsupported value: "Later": supported values: "Immediate", "WaitForFirstConsumer"'),
    ("sc-reclaim", manifest("StorageClass", "sc3", provisioner="example.com/p", reclaimPolicy="Recycle"),
     'reclaimPolicy: Unsupported value: "Recycle": supported values: "Delete", "Retain"'),
    # --- quotas and limits
    ("quota-resource", manifest("ResourceQuota", "q1", spec={"hard": {"gpus": "1"}}),
     'spec.hard[gpus]: Invalid value: "gpus": must be a standard resource for quota'),
    ("quota-integer", manifest("ResourceQuota", "q2", spec={"hard": {"pods": "1500m"}}),
     'spec.hard[pods]: Invalid value: "1500m": must be an integer'),
    ("quota-scopes", manifest("ResourceQuota", "q3", spec={"hard": {"pods": "1"},
                                                           "scopes": ["BestEffort", "NotBestEffort"]}),
     'spec.scopes: Invalid value: []core.ResourceQuotaScope{"BestEffort", "NotBestEffort"}: conflicting scopes'),
    ("limit-min-max", manifest("LimitRange", "l1", spec={"limits": [{"type": "Container", "min": {"cpu": "2"},
                                                                      "max": {"cpu": "1"}}]}),
     # default and defaultRequest are defaulted from max, as Kubernetes does, so they are named too
     '[spec.limits[0].min[cpu]: Invalid value: "2": min value 2 is greater than max value 1, '
     'spec.limits[0].defaultRequest[cpu]: Invalid value: "1": min value 2 is greater than default request value 1, '
     'spec.limits[0].default[cpu]: Invalid value: "2": min value 2 is greater than default value 1]'),
    ("limit-pod-default", manifest("LimitRange", "l2", spec={"limits": [{"type": "Pod", "default": {"cpu": "1"}}]}),
     "spec.limits[0].default: Forbidden: may not be specified when `type` is 'Pod'"),
    # --- others, metadata
    ("lease-duration", manifest("Lease", "le1", spec={"leaseDurationSeconds": 0}),
     "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"),
    ("endpoints-no-address", manifest("Endpoints", "e1", subsets=[{"ports": [{"port": 80}]}]),
     "subsets[0]: Required value: must specify `addresses` or `notReadyAddresses`"),
    ("owner-ref-uid", manifest("ConfigMap", "m4", metadata={"ownerReferences": [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "x"}]}),
     'metadata.ownerReferences.uid: Invalid value: "": uid must not be empty'),
    ("owner-two-controllers", manifest("ConfigMap", "m5", metadata={"ownerReferences": [
        {"apiVersion": "v1", "kind": "A", "name": "a", "uid": "1", "controller": True},
        {"apiVersion": "v1", "kind": "B", "name": "b", "uid": "2", "controller": True}]}),
     'metadata.ownerReferences: Invalid value: []v1.OwnerReference{...}: Only one reference can have Controller set to '
     'true. Found "true" in references for A/a and B/b'),
]

#: (id, good manifest): each must be created
VALID: list[tuple[str, Obj]] = [
    ("deploy", deployment("good-d", strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0,
                                                                                         "maxUnavailable": "50%"}})),
    ("deploy-recreate", deployment("good-d2", strategy={"type": "Recreate"})),
    ("rs", apps("ReplicaSet", "good-rs")),
    ("ds", apps("DaemonSet", "good-ds")),
    ("sts", apps("StatefulSet", "good-sts", serviceName="web", template=template(
        containers=[{"name": "c", "image": "busybox", "volumeMounts": [{"name": "data", "mountPath": "/d"}]}]),
        volumeClaimTemplates=[{"metadata": {"name": "data"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}])),
    ("rc", manifest("ReplicationController", "good-rc", spec={"template": template()})),
    ("job", job("good-job", completionMode="Indexed", completions=3, parallelism=2)),
    ("cron", cronjob("good-cron", "0 */2 * JAN-MAR MON-FRI", timeZone="Europe/Paris")),
    ("cron-macro", cronjob("good-cron2", "@hourly")),
    ("cron-every", cronjob("good-cron3", "@every 1h30m")),
    ("svc", service("good-svc", ports=[{"port": 80, "name": "http", "targetPort": "http"},
                                        {"port": 443, "name": "https", "targetPort": 8443}])),
    ("svc-headless", manifest("Service", "good-headless", spec={"clusterIP": "None", "selector": {"app": "w"}})),
    ("svc-external", manifest("Service", "good-ext", spec={"type": "ExternalName", "externalName": "example.com."})),
    ("svc-nodeport", service("good-np", type="NodePort", ports=[{"port": 80, "nodePort": 30080}])),
    ("cm", manifest("ConfigMap", "good-cm", data={"app.properties": "a=b"}, binaryData={"b.bin": b64("x")})),
    ("secret-tls", manifest("Secret", "good-tls", type="kubernetes.io/tls",
                            data={"tls.crt": b64("c"), "tls.key": b64("k")})),
    ("secret-docker", manifest("Secret", "good-docker", type="kubernetes.io/dockerconfigjson",
                               data={".dockerconfigjson": b64('{"auths": {}}')})),
    ("ns", manifest("Namespace", "good-ns", spec={"finalizers": ["example.com/keep"]})),
    ("node", manifest("Node", "good-node", spec={"podCIDR": "10.244.9.0/24",
                                                 "taints": [{"key": "a", "effect": "NoSchedule"}]})),
    ("pv", pv("good-pv")),
    ("pvc", pvc("good-pvc")),
    ("sc", manifest("StorageClass", "good-sc", provisioner="example.com/p", parameters={"type": "fast"})),
    ("quota", manifest("ResourceQuota", "good-quota", spec={"hard": {"pods": "10", "requests.cpu": "2",
                                                                     "count/deployments.apps": "3"},
                                                            "scopes": ["NotTerminating"]})),
    ("limits", manifest("LimitRange", "good-limits", spec={"limits": [{"type": "Container", "min": {"cpu": "100m"},
                                                                       "max": {"cpu": "2"}, "default": {"cpu": "1"}}]})),
    ("lease", manifest("Lease", "good-lease", spec={"leaseDurationSeconds": 15, "holderIdentity": "me"})),
    ("endpoints", manifest("Endpoints", "good-ep", subsets=[{"addresses": [{"ip": "10.0.0.5"}],
                                                             "ports": [{"port": 80}]}])),
]


def path_of(obj: Obj) -> str:
    return PATHS[obj["kind"]]


def expected(obj: Obj, message: str) -> str:
    return f'{QUALIFIED.get(obj["kind"], obj["kind"])} "{obj["metadata"]["name"]}" is invalid: {message}'


def assert_not_stored(cluster: PodlifeProcess, obj: Obj) -> None:
    status, _ = cluster.http("GET", f'{path_of(obj)}/{obj["metadata"]["name"]}')
    assert status == 404, f'{obj["kind"]} {obj["metadata"]["name"]} was stored'


def strip_none(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: strip_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [strip_none(v) for v in obj]
    return obj


@pytest.mark.parametrize("case,obj,message", INVALID, ids=[c[0] for c in INVALID])
def test_invalid_manifest_is_refused(cluster: PodlifeProcess, case: str, obj: Obj, message: str) -> None:
    obj = strip_none(obj)
    status, body = cluster.http("POST", path_of(obj), obj)
    assert status == 422, body
    assert body["reason"] == "Invalid"
    assert body["message"] == expected(obj, message)
    assert body["details"]["causes"], body
    assert_not_stored(cluster, obj)


@pytest.mark.parametrize("case,obj", VALID, ids=[c[0] for c in VALID])
def test_valid_manifest_is_accepted(cluster: PodlifeProcess, case: str, obj: Obj) -> None:
    status, body = cluster.http("POST", path_of(obj), obj)
    assert status == 201, body


KUBECTL_CASES = [c for c in INVALID if c[0] in ("deploy-restart-onfailure", "job-restart-always", "cron-range",
                                                   "svc-protocol", "secret-tls", "pvc-no-storage")]


@pytest.mark.parametrize("case,obj,message", KUBECTL_CASES, ids=[c[0] for c in KUBECTL_CASES])
def test_kubectl_apply_shows_the_kubernetes_error(cluster: PodlifeProcess, case: str, obj: Obj, message: str) -> None:
    import json
    result = cluster.kubectl("apply", "-f", "-", input=json.dumps(strip_none(obj)), check=False)
    assert result.returncode != 0
    assert expected(obj, message).split(" is invalid: ")[1] in result.stderr, result.stderr
    assert_not_stored(cluster, obj)


# --------------------------------------------------------------------------- updates


def create(cluster: PodlifeProcess, obj: Obj) -> Obj:
    status, body = cluster.http("POST", path_of(obj), obj)
    assert status == 201, body
    return body


def put(cluster: PodlifeProcess, obj: Obj) -> tuple[int, Any]:
    """An unconditional update (no resourceVersion): a controller's status write in between must not turn the
    validation under test into a conflict."""
    body = {**obj, "metadata": {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}}
    return cluster.http("PUT", f'{path_of(obj)}/{obj["metadata"]["name"]}', body)


def test_deployment_selector_is_immutable(cluster: PodlifeProcess) -> None:
    stored = create(cluster, deployment("upd-d"))
    changed = copy.deepcopy(stored)
    changed["spec"]["selector"] = {"matchLabels": {"app": "web", "tier": "x"}}
    changed["spec"]["template"]["metadata"]["labels"]["tier"] = "x"
    status, body = put(cluster, changed)
    assert status == 422, body
    assert body["message"] == ('Deployment.apps "upd-d" is invalid: spec.selector: Invalid value: v1.LabelSelector{'
                               'MatchLabels:map[string]string{"app":"web", "tier":"x"}, '
                               "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable")
    scaled = copy.deepcopy(stored)
    scaled["spec"]["replicas"] = 3
    assert put(cluster, scaled)[0] == 200


def test_immutable_configmap_and_secret_type(cluster: PodlifeProcess) -> None:
    stored = create(cluster, manifest("ConfigMap", "upd-cm", data={"a": "1"}, immutable=True))
    changed = copy.deepcopy(stored)
    changed["data"]["a"] = "2"
    status, body = put(cluster, changed)
    assert (status, body["message"]) == (422, 'ConfigMap "upd-cm" is invalid: data: Forbidden: field is immutable '
                                              "when `immutable` is set")
    secret = create(cluster, manifest("Secret", "upd-secret", data={"tls.crt": b64("c"), "tls.key": b64("k")}))
    secret["type"] = "kubernetes.io/tls"
    status, body = put(cluster, secret)
    assert (status, body["message"]) == (422, 'Secret "upd-secret" is invalid: type: Invalid value: "kubernetes.io/tls": '
                                              "field is immutable")


def test_service_cluster_ip_cannot_change(cluster: PodlifeProcess) -> None:
    stored = create(cluster, service("upd-svc"))
    kept = copy.deepcopy(stored)
    del kept["spec"]["clusterIP"], kept["spec"]["clusterIPs"]
    status, body = put(cluster, kept)
    assert status == 200 and body["spec"]["clusterIP"] == stored["spec"]["clusterIP"], body
    moved = copy.deepcopy(body)
    moved["spec"]["clusterIP"], moved["spec"]["clusterIPs"] = "10.96.200.200", ["10.96.200.200"]
    status, body = put(cluster, moved)
    assert (status, body["message"]) == (422, 'Service "upd-svc" is invalid: spec.clusterIPs[0]: Invalid value: '
                                              '[]string{"10.96.200.200"}: may not change once set')


def test_job_template_and_storage_class_are_immutable(cluster: PodlifeProcess) -> None:
    stored = create(cluster, job("upd-job"))
    changed = copy.deepcopy(stored)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "alpine"
    status, body = put(cluster, changed)
    assert status == 422 and body["message"].startswith('Job.batch "upd-job" is invalid: spec.template: Invalid value:')
    assert body["message"].endswith(": field is immutable")
    sc = create(cluster, manifest("StorageClass", "upd-sc", provisioner="example.com/p"))
    sc["provisioner"] = "example.com/q"
    status, body = put(cluster, sc)
    assert (status, body["message"]) == (422, 'StorageClass.storage.k8s.io "upd-sc" is invalid: provisioner: Forbidden: '
                                              "updates to provisioner are forbidden.")
