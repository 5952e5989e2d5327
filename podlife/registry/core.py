"""Strategies of the core/v1 kinds other than pods, and coordination.k8s.io leases.

Their defaults are Kubernetes' (:mod:`podlife.registry.defaults`); what is here is
each kind's lifecycle and validation. A Node's status is completed the way Go's
encoding writes a ``NodeStatus``: ``nodeInfo`` with every field (empty strings for
what a registering client left out) and ``daemonEndpoints``, so clients that declare
those fields required can read any Node.
"""

from __future__ import annotations

import base64
import binascii

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
from .types import FieldError, Obj, Strategy, invalid, not_supported, required
from ..machinery.names import qualified_name_errors

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

    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        merged = super().prepare_for_status_update(new, old)
        merged["status"] = with_status_defaults(merged.get("status"), _NAMESPACE_STATUS)
        return merged


class NodeStrategy(Strategy):
    has_status = True

    def prepare_for_create(self, obj: Obj) -> None:
        # Kubelets register with their status filled in; keep it (as Kubernetes does).
        obj["status"] = complete_node_status(obj.get("status"))

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
        elif involved.get("namespace") and involved["namespace"] != obj["metadata"].get("namespace"):
            errs.append(invalid("involvedObject.namespace", involved["namespace"], "does not match event.namespace"))
        if obj.get("type") not in ("Normal", "Warning"):
            errs.append(not_supported("type", obj.get("type"), ["Normal", "Warning"]))
        return errs


class ConfigMapStrategy(Strategy):
    def validate(self, obj: Obj) -> list[FieldError]:
        errs = []
        for field_name in ("data", "binaryData"):
            data = obj.get(field_name)
            if data is None:
                continue
            if not isinstance(data, dict):
                errs.append(invalid(field_name, data, "must be a map"))
                continue
            for k, v in data.items():
                if not _config_key_ok(k):
                    errs.append(invalid(f"{field_name}[{k}]", k, "a valid config key must consist of alphanumeric characters, "
                                                                 "'-', '_' or '.'"))
                if not isinstance(v, str):
                    errs.append(invalid(f"{field_name}[{k}]", v, "must be a string"))
        return errs


def _config_key_ok(key: str) -> bool:
    return bool(key) and len(key) <= 253 and all(ch.isalnum() or ch in "-_." for ch in key) and key not in (".", "..")


class SecretStrategy(Strategy):
    def default(self, obj: Obj) -> None:
        default_secret(obj)
        string_data = obj.pop("stringData", None)
        if isinstance(string_data, dict):
            data = obj.setdefault("data", {})
            for k, v in string_data.items():
                data[k] = base64.b64encode(str(v).encode()).decode()

    def validate(self, obj: Obj) -> list[FieldError]:
        errs = []
        data = obj.get("data") or {}
        if not isinstance(data, dict):
            return [invalid("data", data, "must be a map")]
        for k, v in data.items():
            if not _config_key_ok(k):
                errs.append(invalid(f"data[{k}]", k, "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"))
            try:
                base64.b64decode(v, validate=True)
            except (binascii.Error, TypeError, ValueError):
                errs.append(invalid(f"data[{k}]", "<secret contents redacted>", "illegal base64 data"))
        return errs


class ServiceStrategy(Strategy):
    has_status = True

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = with_status_defaults(None, _SERVICE_STATUS)

    def default(self, obj: Obj) -> None:
        default_service(obj)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        merged = super().prepare_for_status_update(new, old)
        merged["status"] = with_status_defaults(merged.get("status"), _SERVICE_STATUS)
        return merged

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [required("spec")]
        errs: list[FieldError] = []
        types = ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]
        if spec.get("type") not in types:
            errs.append(not_supported("spec.type", spec.get("type"), types))
        ports = spec.get("ports") or []
        if not ports and spec.get("type") != "ExternalName" and spec.get("clusterIP") != "None":
            errs.append(required("spec.ports"))
        for i, p in enumerate(ports):
            port = p.get("port") if isinstance(p, dict) else None
            if not isinstance(port, int) or not 0 < port < 65536:
                errs.append(invalid(f"spec.ports[{i}].port", port, "must be between 1 and 65535, inclusive"))
        return errs


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


class LeaseStrategy(Strategy):
    pass


class ServiceAccountStrategy(Strategy):
    pass


class EndpointsStrategy(Strategy):
    def default(self, obj: Obj) -> None:
        default_endpoints(obj)


def validate_finalizer_names(names: list[str], path: str) -> list[FieldError]:
    return [invalid(f"{path}[{i}]", n, m) for i, n in enumerate(names) for m in qualified_name_errors(n)]
