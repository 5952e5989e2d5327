"""The catalog of every kind the API server serves, and lookups into it.

Discovery, OpenAPI, the REST router and the client all read this one list, so a kind
registered here is served everywhere at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .core import (
    ConfigMapStrategy,
    EndpointsStrategy,
    EventStrategy,
    LeaseStrategy,
    NamespaceStrategy,
    NodeStrategy,
    SecretStrategy,
    ServiceAccountStrategy,
    ServiceStrategy,
)
from .network import PortStrategy, SubnetStrategy
from .pods import PodStrategy
from .types import ResourceType

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
        ResourceType("", "v1", "ServiceAccount", "serviceaccounts", True, ServiceAccountStrategy(), short_names=("sa",)),
        ResourceType("coordination.k8s.io", "v1", "Lease", "leases", True, LeaseStrategy()),
        ResourceType(NETWORK_GROUP, "v1", "Port", "ports", True, PortStrategy(), categories=("network",),
                     extra_field_selectors=("spec.nodeName", "spec.podName")),
        ResourceType(NETWORK_GROUP, "v1", "Subnet", "subnets", True, SubnetStrategy(), categories=("network",)),
    ]


@dataclass
class Catalog:
    types: list[ResourceType] = field(default_factory=builtin_types)

    def __post_init__(self) -> None:
        self._by_gvr: dict[tuple[str, str, str], ResourceType] = {}
        self._reindex()

    def _reindex(self) -> None:
        self._by_gvr = {(t.group, t.version, t.plural): t for t in self.types}

    def add(self, rt: ResourceType) -> None:
        self.types = [t for t in self.types if (t.group, t.version, t.plural) != (rt.group, rt.version, rt.plural)]
        self.types.append(rt)
        self._reindex()

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
