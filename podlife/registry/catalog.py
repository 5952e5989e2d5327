"""The catalog of every kind the API server serves, and lookups into it.

Discovery, OpenAPI, the REST router and the client all read this one list, so a kind
registered here is served everywhere at once.  Each catalog also owns the schemas of
its custom kinds (:class:`~podlife.registry.schemas.custom.CustomSchemas`): strict
field validation, the field manager and OpenAPI find a CRD's schema there, so two API
servers in one process never share their CRDs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .admission_policies import BindingStrategy, PolicyStrategy, WebhookConfigurationStrategy
from .apiregistration import APIServiceStrategy
from .certificates import CertificateSigningRequestStrategy
from .core import (
    ConfigMapStrategy,
    EndpointsStrategy,
    EventStrategy,
    LeaseStrategy,
    NamespaceStrategy,
    NodeStrategy,
    PersistentVolumeStrategy,
    SecretStrategy,
    ServiceAccountStrategy,
    ServiceStrategy,
)
from .crds.types import crd_resource_type
from .defaults import DefaultedStrategy
from .network import PortStrategy, SubnetStrategy
from .pods import PodStrategy
from .priorityclasses import PriorityClassStrategy
from .rbac import RBAC_GROUP, rbac_strategy
from .schemas.custom import CustomSchemas
from .types import ResourceType, Strategy
from .validated_kinds import (
    controller_revision_strategy,
    endpoint_slice_strategy,
    events_event_strategy,
    horizontal_pod_autoscaler_strategy,
    ingress_class_strategy,
    ingress_strategy,
    limit_range_strategy,
    network_policy_strategy,
    pod_disruption_budget_strategy,
    pod_template_strategy,
    pvc_strategy,
    resource_quota_strategy,
    storage_class_strategy,
)
from .workloads import CronJobStrategy, JobStrategy, ReplicatedStrategy

NETWORK_GROUP = "network.podlife.io"


def builtin_types() -> list[ResourceType]:
    return [
        ResourceType("", "v1", "Namespace", "namespaces", False, NamespaceStrategy(), short_names=("ns",),
                     subresources=("status", "finalize"), extra_field_selectors=("status.phase",)),
        ResourceType("", "v1", "Pod", "pods", True, PodStrategy(), short_names=("po",), categories=("all",),
                     subresources=("status", "binding", "log", "exec", "attach", "portforward", "eviction", "ephemeralcontainers"),
                     extra_field_selectors=("spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
                                            "spec.serviceAccountName", "spec.hostNetwork", "status.phase",
                                            "status.podIP", "status.nominatedNodeName")),
        ResourceType("", "v1", "Node", "nodes", False, NodeStrategy(), short_names=("no",),
                     subresources=("status",), extra_field_selectors=("spec.unschedulable",)),
        ResourceType("", "v1", "Event", "events", True, EventStrategy(), short_names=("ev",),
                     extra_field_selectors=("involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                                            "involvedObject.uid", "involvedObject.apiVersion",
                                            "involvedObject.resourceVersion", "involvedObject.fieldPath",
                                            "reason", "reportingComponent", "source", "type")),
        ResourceType("", "v1", "ConfigMap", "configmaps", True, ConfigMapStrategy(), short_names=("cm",)),
        ResourceType("", "v1", "Secret", "secrets", True, SecretStrategy(), extra_field_selectors=("type",)),
        ResourceType("", "v1", "Service", "services", True, ServiceStrategy(), short_names=("svc",),
                     categories=("all",), subresources=("status",)),
        ResourceType("", "v1", "Endpoints", "endpoints", True, EndpointsStrategy(), short_names=("ep",)),
        ResourceType("", "v1", "ServiceAccount", "serviceaccounts", True, ServiceAccountStrategy(), short_names=("sa",),
                     subresources=("token",)),
        ResourceType("coordination.k8s.io", "v1", "Lease", "leases", True, LeaseStrategy()),
        ResourceType(NETWORK_GROUP, "v1", "Port", "ports", True, PortStrategy(), categories=("network",),
                     subresources=("status",), extra_field_selectors=("spec.nodeName", "spec.podName", "status.phase")),
        ResourceType(NETWORK_GROUP, "v1", "Subnet", "subnets", True, SubnetStrategy(), categories=("network",),
                     subresources=("status",), extra_field_selectors=("spec.node",)),
        *served_types(),
        crd_resource_type(),
        *review_types(),
    ]


def _plain(group: str, version: str, kind: str, plural: str, namespaced: bool = True, **kw) -> ResourceType:
    strategy = rbac_strategy(kind) if group == RBAC_GROUP else DefaultedStrategy(group, kind)
    return ResourceType(group, version, kind, plural, namespaced, strategy, **kw)


def _with_status(group: str, version: str, kind: str, plural: str, namespaced: bool = True, **kw) -> ResourceType:
    strategy = DefaultedStrategy(group, kind, has_status=True)
    return ResourceType(group, version, kind, plural, namespaced, strategy, subresources=("status",), **kw)


class ReviewStrategy(Strategy):
    stored = False


def review_types() -> list[ResourceType]:
    """Kinds whose create is a question answered at once (nothing is stored)."""
    def review(group: str, kind: str, plural: str, namespaced: bool = False) -> ResourceType:
        return ResourceType(group, "v1", kind, plural, namespaced, ReviewStrategy(), verbs=("create",))

    return [
        review("authorization.k8s.io", "SelfSubjectAccessReview", "selfsubjectaccessreviews"),
        review("authorization.k8s.io", "SelfSubjectRulesReview", "selfsubjectrulesreviews"),
        review("authorization.k8s.io", "SubjectAccessReview", "subjectaccessreviews"),
        review("authorization.k8s.io", "LocalSubjectAccessReview", "localsubjectaccessreviews", True),
        review("authentication.k8s.io", "SelfSubjectReview", "selfsubjectreviews"),
        review("authentication.k8s.io", "TokenReview", "tokenreviews"),
    ]


def served_types() -> list[ResourceType]:
    """Kinds podlife stores and serves with Kubernetes' defaults (no controllers yet)."""
    scaled = ("status", "scale")
    return [
        ResourceType("apps", "v1", "Deployment", "deployments", True, ReplicatedStrategy("Deployment"),
                     short_names=("deploy",), categories=("all",), subresources=scaled),
        ResourceType("apps", "v1", "ReplicaSet", "replicasets", True, ReplicatedStrategy("ReplicaSet"),
                     short_names=("rs",), categories=("all",), subresources=scaled),
        ResourceType("apps", "v1", "StatefulSet", "statefulsets", True, ReplicatedStrategy("StatefulSet"),
                     short_names=("sts",), categories=("all",), subresources=scaled),
        ResourceType("apps", "v1", "DaemonSet", "daemonsets", True, ReplicatedStrategy("DaemonSet"),
                     short_names=("ds",), categories=("all",), subresources=("status",)),
        ResourceType("apps", "v1", "ControllerRevision", "controllerrevisions", True, controller_revision_strategy()),
        ResourceType("", "v1", "ReplicationController", "replicationcontrollers", True,
                     ReplicatedStrategy("ReplicationController"), short_names=("rc",), categories=("all",),
                     subresources=scaled),
        ResourceType("batch", "v1", "Job", "jobs", True, JobStrategy(), categories=("all",), subresources=("status",)),
        ResourceType("batch", "v1", "CronJob", "cronjobs", True, CronJobStrategy(), short_names=("cj",),
                     categories=("all",), subresources=("status",)),
        ResourceType("", "v1", "PersistentVolume", "persistentvolumes", False, PersistentVolumeStrategy(),
                     short_names=("pv",), subresources=("status",)),
        ResourceType("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True, pvc_strategy(),
                     short_names=("pvc",), subresources=("status",)),
        ResourceType("", "v1", "ResourceQuota", "resourcequotas", True, resource_quota_strategy(),
                     short_names=("quota",), subresources=("status",)),
        ResourceType("", "v1", "LimitRange", "limitranges", True, limit_range_strategy(), short_names=("limits",)),
        ResourceType("", "v1", "PodTemplate", "podtemplates", True, pod_template_strategy()),
        _plain("rbac.authorization.k8s.io", "v1", "Role", "roles"),
        _plain("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings"),
        _plain("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
        _plain("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False),
        ResourceType("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", True, pod_disruption_budget_strategy(),
                     short_names=("pdb",), subresources=("status",)),
        ResourceType("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", False, PriorityClassStrategy(),
                     short_names=("pc",)),
        ResourceType("storage.k8s.io", "v1", "StorageClass", "storageclasses", False, storage_class_strategy(),
                     short_names=("sc",)),
        _plain("storage.k8s.io", "v1", "CSIDriver", "csidrivers", False),
        _plain("storage.k8s.io", "v1", "CSINode", "csinodes", False),
        _with_status("storage.k8s.io", "v1", "VolumeAttachment", "volumeattachments", False),
        ResourceType("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration",
                     "validatingwebhookconfigurations", False,
                     WebhookConfigurationStrategy("ValidatingWebhookConfiguration")),
        ResourceType("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration",
                     "mutatingwebhookconfigurations", False, WebhookConfigurationStrategy("MutatingWebhookConfiguration")),
        ResourceType("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicy", "validatingadmissionpolicies",
                     False, PolicyStrategy(mutating=False), categories=("api-extensions",), subresources=("status",)),
        ResourceType("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicyBinding",
                     "validatingadmissionpolicybindings", False, BindingStrategy(mutating=False),
                     categories=("api-extensions",)),
        ResourceType("admissionregistration.k8s.io", "v1", "MutatingAdmissionPolicy", "mutatingadmissionpolicies",
                     False, PolicyStrategy(mutating=True), categories=("api-extensions",)),
        ResourceType("admissionregistration.k8s.io", "v1", "MutatingAdmissionPolicyBinding",
                     "mutatingadmissionpolicybindings", False, BindingStrategy(mutating=True),
                     categories=("api-extensions",)),
        ResourceType("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True, endpoint_slice_strategy()),
        ResourceType("events.k8s.io", "v1", "Event", "events", True, events_event_strategy(), short_names=("ev",)),
        ResourceType("networking.k8s.io", "v1", "Ingress", "ingresses", True, ingress_strategy(), short_names=("ing",),
                     subresources=("status",)),
        ResourceType("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", True, network_policy_strategy(),
                     short_names=("netpol",)),
        ResourceType("networking.k8s.io", "v1", "IngressClass", "ingressclasses", False, ingress_class_strategy()),
        ResourceType("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True,
                     horizontal_pod_autoscaler_strategy(), short_names=("hpa",), categories=("all",),
                     subresources=("status",)),
        ResourceType("certificates.k8s.io", "v1", "CertificateSigningRequest", "certificatesigningrequests", False,
                     CertificateSigningRequestStrategy(), short_names=("csr",), subresources=("status", "approval"),
                     extra_field_selectors=("spec.signerName",)),
        ResourceType("apiregistration.k8s.io", "v1", "APIService", "apiservices", False, APIServiceStrategy(),
                     categories=("api-extensions",), subresources=("status",)),
    ]


@dataclass
class Catalog:
    types: list[ResourceType] = field(default_factory=builtin_types)
    #: the schemas of the custom kinds this catalog serves (registered by the CRD controller)
    schemas: CustomSchemas = field(default_factory=CustomSchemas, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_gvr: dict[tuple[str, str, str], ResourceType] = {}
        self._reindex()

    def _reindex(self) -> None:
        self._by_gvr = {(t.group, t.version, t.plural): t for t in self.types}

    def add(self, rt: ResourceType) -> None:
        self.types = [t for t in self.types if (t.group, t.version, t.plural) != (rt.group, rt.version, rt.plural)]
        self.types.append(rt)
        self._reindex()

    def remove(self, group: str, version: str, plural: str) -> ResourceType | None:
        """Stop serving a kind (a CRD version that went away); returns what was removed."""
        gone = self._by_gvr.get((group, version, plural))
        if gone is not None:
            self.types = [t for t in self.types if t is not gone]
            self._reindex()
        return gone

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_gvr.get((group, version, plural))

    def by_kind(self, kind: str, group: str | None = None) -> ResourceType | None:
        for t in self.types:
            if t.kind == kind and (group is None or t.group == group):
                return t
        return None

    def group_versions(self) -> list[tuple[str, str]]:
        seen: dict[tuple[str, str], None] = {}
        for t in self.types:
            seen[(t.group, t.version)] = None
        return list(seen)

    def in_group_version(self, group: str, version: str) -> Iterable[ResourceType]:
        return [t for t in self.types if t.group == group and t.version == version]
