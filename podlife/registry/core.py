"""Strategies of the core/v1 kinds other than pods, and coordination.k8s.io leases."""

from __future__ import annotations

import base64
import binascii

from .types import FieldError, Obj, Strategy, invalid, not_supported, required
from .validation import qualified_name_errors


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
        obj["status"] = {"phase": "Active"}

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict):
            spec.setdefault("finalizers", ["kubernetes"])
        labels = obj["metadata"].setdefault("labels", {})
        if isinstance(labels, dict) and obj["metadata"].get("name"):
            labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]


class NodeStrategy(Strategy):
    has_status = True

    def prepare_for_create(self, obj: Obj) -> None:
        # Kubelets register with their status filled in; keep it (as Kubernetes does).
        pass

    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        merged = dict(old)
        merged["status"] = new.get("status") or {}
        return merged


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
                    errs.append(invalid(f"{field_name}[{k}]", k, "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"))
                if not isinstance(v, str):
                    errs.append(invalid(f"{field_name}[{k}]", v, "must be a string"))
        return errs


def _config_key_ok(key: str) -> bool:
    return bool(key) and len(key) <= 253 and all(ch.isalnum() or ch in "-_." for ch in key) and key not in (".", "..")


class SecretStrategy(Strategy):
    def default(self, obj: Obj) -> None:
        obj.setdefault("type", "Opaque")
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
        obj["status"] = {"loadBalancer": {}}

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        for p in spec.get("ports") or []:
            if isinstance(p, dict):
                p.setdefault("protocol", "TCP")
                p.setdefault("targetPort", p.get("port"))

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


class LeaseStrategy(Strategy):
    pass


class ServiceAccountStrategy(Strategy):
    pass


class EndpointsStrategy(Strategy):
    pass


def validate_finalizer_names(names: list[str], path: str) -> list[FieldError]:
    return [invalid(f"{path}[{i}]", n, m) for i, n in enumerate(names) for m in qualified_name_errors(n)]
