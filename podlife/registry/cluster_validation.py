"""Validation of Namespaces, Nodes, LimitRanges, ResourceQuotas and Leases.

What it reads: the object after defaulting and, on update, the stored one. What it
writes: field errors for the strategies of :mod:`podlife.registry.core` and
:mod:`podlife.registry.validated_kinds`. Why: the scheduler reads node taints and pod
CIDRs, the LimitRanger and ResourceQuota admission read limits and quotas; a taint
without an effect, a quota for a made-up resource or a limit whose minimum is above its
maximum would be stored and then apply silently wrong rules.

Kubernetes facts followed (``pkg/apis/core/validation/validation.go``: ``ValidateNamespace``,
``validateFinalizerName``, ``ValidateNode``, ``ValidateNodeUpdate``, ``validateNodeTaints``,
``ValidateLimitRange``, ``ValidateResourceQuotaSpec``, ``validateResourceQuotaScopes``;
``pkg/apis/coordination/validation/validation.go`` ``ValidateLeaseSpec``):

* a namespace finalizer is a qualified name, and one without a ``/`` must be a standard
  one (``kubernetes``);
* a node's pod CIDRs are CIDRs, at most one per IP family, and may only go from unset to
  set, like its ``providerID``; taints have a label-name key, a label-value value, an
  effect NoSchedule/PreferNoSchedule/NoExecute, and are unique by key and effect;
* a LimitRange item is Pod/Container/PersistentVolumeClaim, each type once; Pod items have
  no defaults; min <= defaultRequest <= default <= max; maxLimitRequestRatio >= 1;
* a ResourceQuota's hard resources are standard quota resources (or ``<prefix>/<name>``),
  non-negative, whole numbers for object counts; scopes are standard, apply to the
  resources limited, and are not contradictory;
* a Lease's duration is positive and its transitions non-negative.

Quantities in messages are shown as the user wrote them (Kubernetes prints some with Go's
``%#v`` of ``resource.Quantity``, an internal struct podlife does not imitate).
"""

from __future__ import annotations

import ipaddress
from fractions import Fraction
from typing import Any

from ..machinery.names import label_value_errors, qualified_name_errors
from .field_rules import GoValue, non_negative, positive, quantity, quantity_errors
from .types import FieldError, Obj, forbidden, invalid, not_supported, required

STANDARD_FINALIZERS = ("kubernetes", "orphan", "foregroundDeletion")
TAINT_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"]
_CIDR_MESSAGE = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"


# --------------------------------------------------------------------------- Namespace


def _spec_of(obj: Obj) -> Obj:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def finalizer_name_errors(name: Any, path: str) -> list[FieldError]:
    """``validateFinalizerName``: a qualified name; without a prefix, a standard one."""
    if not isinstance(name, str):
        return [invalid(path, name, "must be a string")]
    errs = [invalid(path, name, m) for m in qualified_name_errors(name)]
    if "/" not in name and name not in STANDARD_FINALIZERS:
        errs.append(invalid(path, name, "name is neither a standard finalizer name nor is it fully qualified"))
    return errs


def validate_namespace(obj: Obj) -> list[FieldError]:
    spec = _spec_of(obj)
    errs: list[FieldError] = []
    for i, name in enumerate(spec.get("finalizers") or []):
        errs += finalizer_name_errors(name, f"spec.finalizers[{i}]")
    return errs


# --------------------------------------------------------------------------- Node


def _pod_cidrs(spec: Obj) -> list[Any]:
    cidrs = spec.get("podCIDRs")
    if isinstance(cidrs, list) and cidrs:
        return cidrs
    return [spec["podCIDR"]] if spec.get("podCIDR") else []


def validate_node(obj: Obj) -> list[FieldError]:
    spec = _spec_of(obj)
    errs: list[FieldError] = []
    cidrs = _pod_cidrs(spec)
    families: list[int] = []
    for i, cidr in enumerate(cidrs):
        try:
            if "/" not in str(cidr):
                raise ValueError(cidr)  # Go's ParseCIDR needs the prefix length
            families.append(ipaddress.ip_network(str(cidr), strict=False).version)
        except ValueError:
            errs.append(invalid(f"spec.podCIDRs[{i}]", cidr, _CIDR_MESSAGE))
    if len(cidrs) > 1 and not errs and (len(cidrs) > 2 or len(set(families)) != len(families)):
        shown = GoValue("[]string{" + ", ".join(f'"{c}"' for c in cidrs) + "}")
        errs.append(invalid("spec.podCIDRs", shown, "may specify no more than one CIDR for each IP family"))
    errs += validate_taints(spec.get("taints"), "spec.taints")
    return errs


def validate_taints(taints: Any, path: str) -> list[FieldError]:
    if not taints:
        return []
    if not isinstance(taints, list):
        return [invalid(path, taints, "must be a list")]
    errs: list[FieldError] = []
    seen: set[tuple[Any, Any]] = set()
    for i, taint in enumerate(taints):
        taint = taint if isinstance(taint, dict) else {}
        tpath = f"{path}[{i}]"
        key, value, effect = taint.get("key") or "", taint.get("value") or "", taint.get("effect") or ""
        errs += [invalid(f"{tpath}.key", key, m) for m in qualified_name_errors(str(key))]
        problems = label_value_errors(str(value))
        if problems:
            errs.append(invalid(f"{tpath}.value", value, ";".join(problems)))
        if not effect:
            errs.append(required(f"{tpath}.effect"))
        elif effect not in TAINT_EFFECTS:
            errs.append(not_supported(f"{tpath}.effect", effect, TAINT_EFFECTS))
        if (key, effect) in seen:
            shown = GoValue(f'core.Taint{{Key:"{key}", Value:"{value}", Effect:"{effect}", TimeAdded:<nil>}}')
            errs.append(FieldError("FieldValueDuplicate", tpath, "taints must be unique by key and effect pair", shown))
            continue
        seen.add((key, effect))
    return errs


_NODE_CIDR_RULE = 'node updates may not change podCIDR except from "" to valid'
_NODE_PROVIDER_RULE = 'node updates may not change providerID except from "" to valid'


def validate_node_update(new: Obj, old: Obj) -> list[FieldError]:
    new_spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
    errs: list[FieldError] = []
    before, after = _pod_cidrs(old_spec), _pod_cidrs(new_spec)
    if before and (len(before) > len(after) or any(b != a for b, a in zip(before, after))):
        errs.append(forbidden("spec.podCIDRs", _NODE_CIDR_RULE))
    if old_spec.get("providerID") and old_spec.get("providerID") != new_spec.get("providerID"):
        errs.append(forbidden("spec.providerID", _NODE_PROVIDER_RULE))
    return errs


# --------------------------------------------------------------------------- LimitRange

LIMIT_TYPES = ("Pod", "Container", "PersistentVolumeClaim")
_LIMIT_MAPS = ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio")


def validate_limit_range(obj: Obj) -> list[FieldError]:
    spec = _spec_of(obj)
    limits = spec.get("limits") or []
    if not isinstance(limits, list):
        return [invalid("spec.limits", limits, "must be a list")]
    errs: list[FieldError] = []
    types: set[Any] = set()
    for i, item in enumerate(limits):
        item = item if isinstance(item, dict) else {}
        path = f"spec.limits[{i}]"
        kind = item.get("type")
        errs += _limit_type_errors(kind, f"{path}.type")
        if kind in types:
            errs.append(FieldError("FieldValueDuplicate", f"{path}.type", "", kind))
        types.add(kind)
        errs += _limit_item(item, kind, path)
    return errs


def _limit_type_errors(kind: Any, path: str) -> list[FieldError]:
    if not isinstance(kind, str) or not kind:
        return [invalid(path, kind or "", m) for m in qualified_name_errors("")]
    errs = [invalid(path, kind, m) for m in qualified_name_errors(kind)]
    if "/" not in kind and kind not in LIMIT_TYPES:
        errs.append(invalid(path, kind, "must be a standard limit type or fully qualified"))
    return errs


def _limit_item(item: Obj, kind: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    maps: dict[str, dict[str, Fraction]] = {}
    for key in _LIMIT_MAPS:
        values = item.get(key) or {}
        values = values if isinstance(values, dict) else {}
        if kind == "Pod" and key in ("default", "defaultRequest") and values:
            errs.append(forbidden(f"{path}.{key}", "may not be specified when `type` is 'Pod'"))
        parsed: dict[str, Fraction] = {}
        for name, value in values.items():
            problems = quantity_errors(value, f"{path}.{key}[{name}]")
            errs += problems
            q = quantity(value)
            if not problems and q is not None:
                parsed[name] = q
        maps[key] = parsed
    raw = {key: (item.get(key) or {}) for key in _LIMIT_MAPS}
    names = sorted(set().union(*(set(m) for m in maps.values())))
    for name in names:
        errs += _limit_order(maps, raw, name, path)
    return errs


def _limit_order(maps: dict[str, dict[str, Fraction]], raw: dict[str, Any], name: str, path: str) -> list[FieldError]:
    lo, hi = maps["min"].get(name), maps["max"].get(name)
    default, request = maps["default"].get(name), maps["defaultRequest"].get(name)
    ratio = maps["maxLimitRequestRatio"].get(name)

    def shown(key: str) -> str:
        return str(raw[key].get(name))

    errs = []
    if lo is not None and hi is not None and lo > hi:
        errs.append(invalid(f"{path}.min[{name}]", shown("min"), f"min value {shown('min')} is greater than max value {shown('max')}"))
    if request is not None and lo is not None and lo > request:
        errs.append(invalid(f"{path}.defaultRequest[{name}]", shown("defaultRequest"),
                            f"min value {shown('min')} is greater than default request value {shown('defaultRequest')}"))
    if request is not None and hi is not None and request > hi:
        errs.append(invalid(f"{path}.defaultRequest[{name}]", shown("defaultRequest"),
                            f"default request value {shown('defaultRequest')} is greater than max value {shown('max')}"))
    if request is not None and default is not None and request > default:
        errs.append(invalid(f"{path}.defaultRequest[{name}]", shown("defaultRequest"),
                            f"default request value {shown('defaultRequest')} is greater than default limit value {shown('default')}"))
    if default is not None and lo is not None and lo > default:
        errs.append(invalid(f"{path}.default[{name}]", shown("min"),
                            f"min value {shown('min')} is greater than default value {shown('default')}"))
    if default is not None and hi is not None and default > hi:
        errs.append(invalid(f"{path}.default[{name}]", shown("max"),
                            f"default value {shown('default')} is greater than max value {shown('max')}"))
    if ratio is not None and ratio < 1:
        errs.append(invalid(f"{path}.maxLimitRequestRatio[{name}]", shown("maxLimitRequestRatio"),
                            f"ratio {shown('maxLimitRequestRatio')} is less than 1"))
    return errs


# --------------------------------------------------------------------------- ResourceQuota

_COMPUTE = ("cpu", "memory", "ephemeral-storage", "requests.cpu", "requests.memory", "requests.ephemeral-storage",
            "limits.cpu", "limits.memory", "limits.ephemeral-storage")
_OBJECT_COUNTS = ("pods", "services", "replicationcontrollers", "resourcequotas", "secrets", "configmaps",
                  "persistentvolumeclaims", "services.nodeports", "services.loadbalancers")
STANDARD_QUOTA_RESOURCES = frozenset(_COMPUTE + _OBJECT_COUNTS + ("requests.storage",))
QUOTA_SCOPES = ("Terminating", "NotTerminating", "BestEffort", "NotBestEffort", "PriorityClass",
                "CrossNamespacePodAffinity", "VolumeAttributesClass")
_SCOPE_RESOURCES = {
    "BestEffort": frozenset(("pods",)),
    "CrossNamespacePodAffinity": frozenset(("pods",)),
    "VolumeAttributesClass": frozenset(("persistentvolumeclaims", "requests.storage")),
}
_POD_SCOPE_RESOURCES = frozenset(_COMPUTE + ("pods",))


def _standard_quota_resource(name: str) -> bool:
    return name in STANDARD_QUOTA_RESOURCES or name.startswith(("hugepages-", "requests.hugepages-"))


def _integer_resource(name: str) -> bool:
    return name in _OBJECT_COUNTS or name.startswith("count/")


def validate_resource_quota(obj: Obj) -> list[FieldError]:
    spec = _spec_of(obj)
    hard = spec.get("hard") or {}
    hard = hard if isinstance(hard, dict) else {}
    errs: list[FieldError] = []
    for name, value in hard.items():
        path = f"spec.hard[{name}]"
        errs += [invalid(path, name, m) for m in qualified_name_errors(name)]
        if "/" not in name and not _standard_quota_resource(name):
            errs.append(invalid(path, name, "must be a standard resource for quota"))
            continue
        problems = quantity_errors(value, path)
        errs += problems
        q = quantity(value)
        if not problems and q is not None and _integer_resource(name) and q.denominator != 1:
            errs.append(invalid(path, str(value), "must be an integer"))
    errs += _quota_scopes(spec.get("scopes") or [], hard)
    return errs


def _quota_scopes(scopes: Any, hard: dict[str, Any]) -> list[FieldError]:
    if not scopes or not isinstance(scopes, list):
        return []
    shown = GoValue("[]core.ResourceQuotaScope{" + ", ".join(f'"{s}"' for s in scopes) + "}")
    errs: list[FieldError] = []
    for scope in scopes:
        if scope not in QUOTA_SCOPES:
            errs.append(invalid("spec.scopes", shown, "unsupported scope"))
        allowed = _SCOPE_RESOURCES.get(scope, _POD_SCOPE_RESOURCES)
        for name in sorted(hard):
            if _standard_quota_resource(name) and name not in allowed:
                errs.append(invalid("spec.scopes", shown, "unsupported scope applied to resource"))
    for pair in (("BestEffort", "NotBestEffort"), ("Terminating", "NotTerminating")):
        if all(s in scopes for s in pair):
            errs.append(invalid("spec.scopes", shown, "conflicting scopes"))
    return errs


# --------------------------------------------------------------------------- Lease


def validate_lease(obj: Obj) -> list[FieldError]:
    spec = _spec_of(obj)
    errs = positive(spec.get("leaseDurationSeconds"), "spec.leaseDurationSeconds")
    errs += non_negative(spec.get("leaseTransitions"), "spec.leaseTransitions")
    strategy = spec.get("strategy")
    if strategy is not None and strategy != "OldestEmulationVersion":
        errs.append(not_supported("spec.strategy", strategy, ["OldestEmulationVersion"]))
    if spec.get("preferredHolder") and not spec.get("strategy"):
        errs.append(forbidden("spec.preferredHolder", "may only be specified if `strategy` is defined"))
    return errs
