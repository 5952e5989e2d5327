"""``apiregistration.k8s.io/v1`` APIService: the kube-aggregator's registration of an API group-version.

podlife serves the objects (create/get/list/watch/update/delete, status) so that manifests
and charts that ship an APIService apply unchanged, with Kubernetes' defaults and
validation. It does not proxy aggregated APIs, so an APIService that names a Service is
never available: its ``Available`` condition is False, as Kubernetes reports it while the
backing service cannot be reached. A local APIService (no ``spec.service``) is what the
API server itself serves, and is Available.
"""

from __future__ import annotations

from typing import Any

from ..machinery.timeutil import now_rfc3339
from .types import FieldError, Obj, Strategy

GROUP_PRIORITY_MAX = 20000
VERSION_PRIORITY_MAX = 1000
DEFAULT_SERVICE_PORT = 443


def expected_name(spec: dict[str, Any]) -> str:
    """``<version>.<group>``, the only name Kubernetes accepts (``v1.`` for the core group)."""
    return f'{spec.get("version") or ""}.{spec.get("group") or ""}'


def availability(spec: dict[str, Any]) -> dict[str, str]:
    """The ``Available`` condition podlife can truthfully report for ``spec``."""
    service = spec.get("service")
    if not service:
        return {"type": "Available", "status": "True", "reason": "Local",
                "message": "Local APIServices are always available"}
    return {"type": "Available", "status": "False", "reason": "ServiceNotFound",
            "message": f'service/{service.get("name")} in "{service.get("namespace")}" is not reachable: '
                       "podlife does not proxy aggregated APIs"}


def _priority_errors(spec: dict[str, Any], field: str, maximum: int) -> list[FieldError]:
    value = spec.get(field)
    path = f"spec.{field}"
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= maximum:
        return [FieldError("FieldValueInvalid", path, f"{field} must be positive and less than {maximum + 1}", value)]
    return []


class APIServiceStrategy(Strategy):
    has_status = True
    name_rule = "path"  # the core group's is "v1.", not a DNS subdomain

    def default(self, obj: Obj) -> None:
        service = (obj.get("spec") or {}).get("service")
        if isinstance(service, dict) and service.get("port") is None:
            service["port"] = DEFAULT_SERVICE_PORT

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        spec: dict[str, Any] = obj["spec"] if isinstance(obj.get("spec"), dict) else {}
        condition = availability(spec)
        condition["lastTransitionTime"] = now_rfc3339()
        obj["status"] = {"conditions": [condition]}

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [FieldError("FieldValueRequired", "spec")]
        errs: list[FieldError] = []
        name = (obj.get("metadata") or {}).get("name")
        if not spec.get("version"):
            errs.append(FieldError("FieldValueRequired", "spec.version"))
        elif name != expected_name(spec):
            errs.append(FieldError("FieldValueInvalid", "metadata.name", f"must be {expected_name(spec)}", name))
        errs += _priority_errors(spec, "groupPriorityMinimum", GROUP_PRIORITY_MAX)
        errs += _priority_errors(spec, "versionPriority", VERSION_PRIORITY_MAX)
        service = spec.get("service")
        if isinstance(service, dict):
            for part in ("namespace", "name"):
                if not service.get(part):
                    errs.append(FieldError("FieldValueRequired", f"spec.service.{part}"))
            if spec.get("insecureSkipTLSVerify") and spec.get("caBundle"):
                errs.append(FieldError("FieldValueInvalid", "spec.insecureSkipTLSVerify",
                                       "may not be true if caBundle is present", True))
        return errs
