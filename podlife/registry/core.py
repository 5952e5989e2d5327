"""Strategies of the core/v1 kinds other than pods, and coordination.k8s.io leases.

Their defaults are Kubernetes' (:mod:`podlife.registry.defaults`); what is here is
each kind's lifecycle and validation. A Node's status is completed the way Go's
encoding writes a ``NodeStatus``: ``nodeInfo`` with every field (empty strings for
what a registering client left out) and ``daemonEndpoints``, so clients that declare
those fields required can read any Node. The kinds' validation rules, Kubernetes'
messages included, live in :mod:`~podlife.registry.service_validation`,
:mod:`~podlife.registry.config_validation`, :mod:`~podlife.registry.storage_validation`
and :mod:`~podlife.registry.cluster_validation`.
"""

from __future__ import annotations

import base64
import ipaddress
import itertools
from collections.abc import Iterable

from ..machinery.timeutil import now_rfc3339
from .defaults import (
    STATUS_DEFAULTS,
    DefaultedStrategy,
    default_endpoints,
    default_namespace,
    default_secret,
    default_service,
    with_status_defaults,
)
from ..machinery.names import qualified_name_errors
from .cluster_validation import validate_lease, validate_namespace, validate_node, validate_node_update
from .config_validation import (
    validate_config_map,
    validate_config_map_update,
    validate_secret,
    validate_secret_update,
)
from .core_validation import validate_event, validate_service_account
from .service_validation import keep_cluster_ip, validate_endpoints, validate_service, validate_service_update
from .node_ports import DEFAULT_NODE_PORT_RANGE, allocate_node_ports, keep_node_ports, ports_in_use
from .storage_validation import validate_persistent_volume, validate_persistent_volume_update
from .types import FieldError, Obj, Strategy, invalid, not_supported, required

_NAMESPACE_STATUS = STATUS_DEFAULTS[("", "Namespace")]
_SERVICE_STATUS = STATUS_DEFAULTS[("", "Service")]


class NamespaceStrategy(Strategy):
    has_status = True
    name_rule = "label"

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_update(new, old)
        # only the finalize subresource changes spec.finalizers
        spec = new.get("spec")
        if isinstance(spec, dict):
            spec["finalizers"] = (old.get("spec") or {}).get("finalizers", [])

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = with_status_defaults(None, _NAMESPACE_STATUS)
        # a new namespace always carries the kubernetes finalizer (kept by updates)
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict):
            finalizers = spec.get("finalizers")
            finalizers = list(finalizers) if isinstance(finalizers, list) else []
            if "kubernetes" not in finalizers:
                finalizers.append("kubernetes")
            spec["finalizers"] = finalizers

    def default(self, obj: Obj) -> None:
        default_namespace(obj)

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_namespace(obj)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        merged = super().prepare_for_status_update(new, old)
        merged["status"] = with_status_defaults(merged.get("status"), _NAMESPACE_STATUS)
        return merged


class NodeStrategy(Strategy):
    has_status = True

    def prepare_for_create(self, obj: Obj) -> None:
        # Kubelets register with their status filled in; keep it (as Kubernetes does).
        obj["status"] = complete_node_status(obj.get("status"))

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_node(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_node(new) + validate_node_update(new, old)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        merged = dict(old)
        merged["status"] = complete_node_status(new.get("status"))
        return merged


#: ``NodeSystemInfo``'s fields that Go always writes (no omitempty), in struct order.
NODE_INFO_FIELDS = ("machineID", "systemUUID", "bootID", "kernelVersion", "osImage", "containerRuntimeVersion",
                    "kubeletVersion", "kubeProxyVersion", "operatingSystem", "architecture")
_EMPTY_NODE_INFO = dict.fromkeys(NODE_INFO_FIELDS, "")


def complete_node_status(status: object) -> Obj:
    """``status`` with ``nodeInfo``'s every field, ``daemonEndpoints`` and allocatable.

    Returns ``status`` itself when nothing is missing (the kubelet's writes), so the
    common case costs a few lookups; never changes it in place.
    """
    status = status if isinstance(status, dict) else {}
    info = status.get("nodeInfo")
    endpoints = status.get("daemonEndpoints")
    info_complete = isinstance(info, dict) and all(k in info for k in NODE_INFO_FIELDS)
    endpoints_complete = isinstance(endpoints, dict) and isinstance(endpoints.get("kubeletEndpoint"), dict) \
        and "Port" in endpoints["kubeletEndpoint"]
    allocatable_complete = "allocatable" in status or "capacity" not in status
    if info_complete and endpoints_complete and allocatable_complete:
        return status
    status = dict(status)
    if not info_complete:
        status["nodeInfo"] = {**_EMPTY_NODE_INFO, **(info if isinstance(info, dict) else {})}
    if not endpoints_complete:
        kubelet = (endpoints or {}).get("kubeletEndpoint") if isinstance(endpoints, dict) else None
        status["daemonEndpoints"] = {**(endpoints if isinstance(endpoints, dict) else {}),
                                     "kubeletEndpoint": {"Port": 0, **(kubelet if isinstance(kubelet, dict) else {})}}
    if not allocatable_complete:
        status["allocatable"] = status["capacity"]  # SetDefaults_NodeStatus
    return status


class EventStrategy(Strategy):
    def default(self, obj: Obj) -> None:
        obj.setdefault("type", "Normal")
        obj.setdefault("count", 1)
        obj.setdefault("source", {})
        obj.setdefault("reportingComponent", (obj.get("source") or {}).get("component", ""))
        obj.setdefault("reportingInstance", (obj.get("source") or {}).get("host", ""))
        first = obj.get("firstTimestamp") or obj.get("eventTime") or obj["metadata"].get("creationTimestamp")
        obj.setdefault("firstTimestamp", first)
        obj.setdefault("lastTimestamp", first)

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        involved = obj.get("involvedObject")
        if not isinstance(involved, dict):
            errs.append(required("involvedObject"))
        if obj.get("type") not in ("Normal", "Warning"):
            errs.append(not_supported("type", obj.get("type"), ["Normal", "Warning"]))
        return errs + validate_event(obj)


class ConfigMapStrategy(Strategy):
    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_config_map(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_config_map_update(new, old)


class SecretStrategy(Strategy):
    def default(self, obj: Obj) -> None:
        default_secret(obj)
        string_data = obj.pop("stringData", None)
        if isinstance(string_data, dict):
            data = obj.setdefault("data", {})
            for k, v in string_data.items():
                data[k] = base64.b64encode(str(v).encode()).decode()

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_secret(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_secret_update(new, old)


#: the Service IP range (kube-apiserver's ``--service-cluster-ip-range``)
SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")
#: the range's first address, the ``kubernetes`` Service's
KUBERNETES_SERVICE_IP = str(SERVICE_CIDR.network_address + 1)


class ServiceStrategy(Strategy):
    """Services; :meth:`allocate` is their registry's ClusterIP and node port allocator.

    Kubernetes allocates a Service's ClusterIP in its service registry (not in admission):
    the lowest free address of the service range (the first one is reserved for the
    ``kubernetes`` Service), a requested ``spec.clusterIP`` if it is free and in range, none
    for headless (``None``) and ExternalName services. The used addresses are those of the
    existing services (the REST layer passes its watch cache's), so there is no second
    record of them to keep in sync. Node ports: :mod:`~podlife.registry.node_ports`, on
    create and (:meth:`allocate_update`) on update.
    """

    has_status = True
    #: ``--service-node-port-range``: where node ports come from (:mod:`~podlife.registry.node_ports`)
    node_port_range: tuple[int, int] = DEFAULT_NODE_PORT_RANGE

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = with_status_defaults(None, _SERVICE_STATUS)

    def default(self, obj: Obj) -> None:
        default_service(obj)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        merged = super().prepare_for_status_update(new, old)
        merged["status"] = with_status_defaults(merged.get("status"), _SERVICE_STATUS)
        return merged

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_update(new, old)
        keep_cluster_ip(new, old)
        keep_node_ports(new, old)

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_service(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_service(new) + validate_service_update(new, old)

    def allocate(self, obj: Obj, existing: Iterable[Obj]) -> list[FieldError]:
        """Give a validated new Service its ClusterIP (``spec.clusterIP``/``clusterIPs``) and its
        node ports; the errors are Kubernetes' allocation failures, for a 422."""
        others = list(existing)
        errs = self._allocate_cluster_ip(obj, others)
        spec = obj.get("spec")
        if errs or not isinstance(spec, dict):
            return errs
        return allocate_node_ports(spec, ports_in_use(others), self.node_port_range)

    def allocate_update(self, new: Obj, old: Obj, existing: Iterable[Obj]) -> list[FieldError]:
        """The node ports of an updated Service: new ones checked or picked, kept ones kept
        (:meth:`prepare_for_update` carried them over), dropped ones freed by their absence."""
        spec = new.get("spec")
        if not isinstance(spec, dict):
            return []
        meta = new.get("metadata") or {}
        used = ports_in_use(existing, skip=(meta.get("namespace"), meta.get("name")))
        return allocate_node_ports(spec, used, self.node_port_range)

    def _allocate_cluster_ip(self, obj: Obj, existing: list[Obj]) -> list[FieldError]:
        spec = obj.get("spec")
        if not isinstance(spec, dict) or spec.get("type") == "ExternalName":
            return []
        wanted = spec.get("clusterIP") or None
        if wanted == "None":
            spec["clusterIPs"] = ["None"]
            return []
        used = {str((other.get("spec") or {}).get("clusterIP")) for other in existing}
        if wanted is not None:
            problem = self._unavailable(str(wanted), used)
            if problem is not None:
                return [problem]
            chosen = str(wanted)
        else:
            free = self._lowest_free(used)
            if free is None:
                return [FieldError("FieldValueForbidden", "spec.clusterIPs", "failed to allocate IP: range is full")]
            chosen = free
        spec["clusterIP"] = chosen
        spec["clusterIPs"] = [chosen]
        return []

    @staticmethod
    def _unavailable(wanted: str, used: set[str]) -> FieldError | None:
        """Why a requested ClusterIP cannot be had, or None."""
        try:
            addr = ipaddress.ip_address(wanted)
        except ValueError:
            return invalid("spec.clusterIPs[0]", wanted, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")
        if addr not in SERVICE_CIDR:
            return invalid("spec.clusterIPs[0]", wanted, f"failed to allocate IP {wanted}: the provided IP ({wanted}) is "
                                                         f"not in the valid range. The range of valid IPs is {SERVICE_CIDR}")
        if wanted in used:
            return invalid("spec.clusterIPs[0]", wanted, f"failed to allocate IP {wanted}: provided IP is already allocated")
        return None

    @staticmethod
    def _lowest_free(used: set[str]) -> str | None:
        """The lowest free address of the dynamic band, else of the static one (KEP-3070).

        As kube-apiserver does, addresses given without a request come first from above
        the range's static band (its first 1/16, at least 16 and at most 256 addresses),
        which is left for Services that ask for a fixed ClusterIP, such as the cluster
        DNS Service at ``--cluster-dns`` (10.96.0.10). ``.1`` is the kubernetes Service's.
        """
        base, size = int(SERVICE_CIDR.network_address), SERVICE_CIDR.num_addresses
        static_band = min(max(16, size // 16), 256)
        for offset in itertools.chain(range(static_band, size - 1), range(2, static_band)):
            candidate = str(ipaddress.ip_address(base + offset))
            if candidate not in used:
                return candidate
        return None


class PersistentVolumeStrategy(DefaultedStrategy):
    """PVs record when their phase last changed (``status.lastPhaseTransitionTime``)."""

    def __init__(self) -> None:
        super().__init__("", "PersistentVolume", has_status=True)

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        obj["status"]["lastPhaseTransitionTime"] = obj["metadata"].get("creationTimestamp") or now_rfc3339()

    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        merged = super().prepare_for_status_update(new, old)
        before, after = old.get("status") or {}, merged["status"]
        moved = after.get("phase") != before.get("phase")
        if moved and after.get("lastPhaseTransitionTime") in (None, before.get("lastPhaseTransitionTime")):
            merged["status"] = {**after, "lastPhaseTransitionTime": now_rfc3339()}
        return merged

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_persistent_volume(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_persistent_volume(new) + validate_persistent_volume_update(new, old)


class LeaseStrategy(Strategy):
    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_lease(obj)


class ServiceAccountStrategy(Strategy):
    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_service_account(obj)


class EndpointsStrategy(Strategy):
    def default(self, obj: Obj) -> None:
        default_endpoints(obj)

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_endpoints(obj)


def validate_finalizer_names(names: list[str], path: str) -> list[FieldError]:
    return [invalid(f"{path}[{i}]", n, m) for i, n in enumerate(names) for m in qualified_name_errors(n)]
