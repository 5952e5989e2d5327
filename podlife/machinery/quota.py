"""Quota's usage rules: what each object uses of a ResourceQuota's resources, and which scopes it matches.

Pure functions, no I/O: both the ResourceQuota admission plugin
(:mod:`podlife.api.resource_quota`, which counts from the API server's watch caches) and
the ResourceQuota controller (:mod:`podlife.controllers.resource_quota`, which counts
from its informers and writes ``status.used``) use them, so each rule is in one place.
They are Kubernetes' quota evaluators (``pkg/quota/v1/evaluator/core``):

* an :class:`Evaluator` per resource: the names it can limit (``count/<resource>[.<group>]``
  and the legacy names ``pods``, ``services``, ``configmaps``, ...), the scopes it can
  match (only pods -- Terminating, NotTerminating, BestEffort, NotBestEffort,
  PriorityClass, CrossNamespacePodAffinity -- and claims -- VolumeAttributesClass), the
  constraints it puts on a create (``must specify limits.cpu for: a``) and an object's usage;
* a pod's usage (:func:`pod_usage`) is its effective request (the larger of its
  containers' sum and its largest init container, sidecars added, plus overhead) in
  quota's names; a terminal pod, or one past its deletion grace period, uses only
  ``count/pods``;
* :class:`Tally` sums usages as ``Quantity.Add`` does: in nano units, a sum taking the
  format of its first non-zero term.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from typing import Any

from .resources import (
    DECIMAL_SI, HUGEPAGES as _HUGEPAGES, NANO as _NANO, ONE, POD_LEVEL as _POD_LEVEL, ZERO,
    Quantity, ResourceList,
    add_into as _add_into, container_list as _container_list, containers_of as _containers,
    parse, pod_level as _pod_level, pod_level_set as _pod_level_set, pod_limits,
    pod_requests, resource_list as _resource_list,
)

Obj = dict[str, Any]

#: resources quota never counts (Kubernetes' ``DefaultIgnoredResources``)
IGNORED_RESOURCES = frozenset({
    ("", "bindings"), ("", "componentstatuses"), ("", "events"), ("events.k8s.io", "events"),
    ("authentication.k8s.io", "tokenreviews"), ("authentication.k8s.io", "selfsubjectreviews"),
    ("authorization.k8s.io", "subjectaccessreviews"), ("authorization.k8s.io", "selfsubjectaccessreviews"),
    ("authorization.k8s.io", "localsubjectaccessreviews"), ("authorization.k8s.io", "selfsubjectrulesreviews"),
})

def pretty(values: Mapping[str, Quantity], names: Iterable[str]) -> str:
    return ",".join(f"{name}={values[name]}" for name in sorted(names) if name in values)


# ---- pods: what one uses --------------------------------------------------------------

_REQUESTS = "requests."
#: what a quota on pods may limit (besides hugepages and extended resources)
POD_RESOURCES = frozenset({"count/pods", "pods", "cpu", "memory", "ephemeral-storage", "requests.cpu", "requests.memory",
                           "requests.ephemeral-storage", "limits.cpu", "limits.memory", "limits.ephemeral-storage"})
#: if a quota limits one of these, every container must set it (Kubernetes' "validationSet")
_MUST_SPECIFY = frozenset({"cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"})


def _spec(obj: Obj) -> Obj:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def _is_extended(name: str) -> bool:
    native = "/" not in name or "kubernetes.io/" in name
    return not native and not name.startswith(_REQUESTS)


def _compute_usage(requests: ResourceList, limits: ResourceList) -> ResourceList:
    """What requests and limits use in quota's names (``podComputeUsageHelper``)."""
    out: ResourceList = {"pods": ONE}
    for name in ("cpu", "memory", "ephemeral-storage"):
        if name in requests:
            out[name] = out[_REQUESTS + name] = requests[name]
        if name in limits:
            out["limits." + name] = limits[name]
    for name, q in requests.items():
        if name.startswith(_HUGEPAGES):
            out[name] = out[_REQUESTS + name] = q
        if _is_extended(name):
            out[_REQUESTS + name] = q
    return out


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def pod_is_charged(pod: Obj, now: datetime) -> bool:
    """Quota charges a pod's compute until it is terminal or stuck terminating past its grace period."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    meta = pod.get("metadata") or {}
    deleted, grace = _parse_time(meta.get("deletionTimestamp")), meta.get("deletionGracePeriodSeconds")
    if deleted is not None and isinstance(grace, int) and not isinstance(grace, bool):
        return now <= deleted + timedelta(seconds=grace)
    return True


def pod_usage(pod: Obj, now: datetime | None = None) -> ResourceList:
    """What a pod uses (``PodUsageFunc``): ``count/pods`` always, the rest while it is charged."""
    usage: ResourceList = {"count/pods": ONE}
    if not pod_is_charged(pod, now or datetime.now(timezone.utc)):
        return usage
    spec = _spec(pod)
    _add_into(usage, _compute_usage(pod_requests(spec), pod_limits(spec)))
    return usage


def _best_effort(pod: Obj) -> bool:
    qos = (pod.get("status") or {}).get("qosClass")
    if qos:
        return bool(qos == "BestEffort")
    spec = _spec(pod)
    if _pod_level_set(spec):
        lists = [_pod_level(spec, "requests"), _pod_level(spec, "limits")]
    else:
        lists = [_container_list(c, kind) for key in ("containers", "initContainers")
                 for c in _containers(spec, key) for kind in ("requests", "limits")]
    return not any(q.value > 0 for values in lists for name, q in values.items() if name in _POD_LEVEL)


def _terminating(pod: Obj) -> bool:
    deadline = _spec(pod).get("activeDeadlineSeconds")
    return isinstance(deadline, int) and not isinstance(deadline, bool) and deadline >= 0


def _cross_namespace_affinity(pod: Obj) -> bool:
    affinity = _spec(pod).get("affinity")
    if not isinstance(affinity, dict):
        return False
    for kind in ("podAffinity", "podAntiAffinity"):
        terms = affinity.get(kind)
        if not isinstance(terms, dict):
            continue
        candidates = list(terms.get("requiredDuringSchedulingIgnoredDuringExecution") or [])
        candidates += [w.get("podAffinityTerm") for w in terms.get("preferredDuringSchedulingIgnoredDuringExecution") or []
                       if isinstance(w, dict)]
        if any(isinstance(t, dict) and (t.get("namespaces") or t.get("namespaceSelector") is not None) for t in candidates):
            return True
    return False


def _selector_matches(selector: Obj, scope: str, values: set[str]) -> bool:
    """A scope selector's expression as a label selector on ``{scope: value}`` for each value (none: ``{}``)."""
    operator, wanted = selector.get("operator"), set(selector.get("values") or [])
    if operator == "Exists":
        return bool(values)
    if operator == "DoesNotExist":
        return not values
    if operator == "In":
        return bool(values & wanted)
    if operator == "NotIn":
        return not values or bool(values - wanted)
    return False


# ---- evaluators: what each resource uses and which scopes it can match -----------------

class Evaluator:
    """Kubernetes' quota evaluator of one resource: a plain object count unless specialised."""

    def __init__(self, group: str, plural: str, alias: str | None = None) -> None:
        self.group, self.plural = group, plural
        self.count_name = f"count/{plural}.{group}" if group else f"count/{plural}"
        self.names = frozenset({self.count_name, *([alias] if alias else [])})

    def matching(self, names: Iterable[str]) -> list[str]:
        return sorted(n for n in names if n in self.names)

    def matches_scope(self, selector: Obj, obj: Obj) -> bool:
        return False  # object counts match no scope: a scoped quota never counts them

    def constraints(self, required: list[str], obj: Obj) -> str | None:
        return None

    def usage(self, obj: Obj, now: datetime) -> ResourceList:
        return {name: ONE for name in self.names}

    def changes_with_time(self, obj: Obj) -> bool:
        return False


class _Pods(Evaluator):
    def __init__(self) -> None:
        super().__init__("", "pods")
        self.names = POD_RESOURCES

    def matching(self, names: Iterable[str]) -> list[str]:
        return sorted(n for n in names if n in POD_RESOURCES or n.startswith((_HUGEPAGES, _REQUESTS + _HUGEPAGES))
                      or (n.startswith(_REQUESTS) and _is_extended(n[len(_REQUESTS):])))

    def matches_scope(self, selector: Obj, pod: Obj) -> bool:
        scope = selector.get("scopeName")
        if scope == "Terminating":
            return _terminating(pod)
        if scope == "NotTerminating":
            return not _terminating(pod)
        if scope == "BestEffort":
            return _best_effort(pod)
        if scope == "NotBestEffort":
            return not _best_effort(pod)
        if scope == "PriorityClass":
            name = _spec(pod).get("priorityClassName")
            return _selector_matches(selector, scope, {name} if isinstance(name, str) and name else set())
        if scope == "CrossNamespacePodAffinity":
            return _cross_namespace_affinity(pod)
        return False

    def constraints(self, required: list[str], pod: Obj) -> str | None:
        """``must specify <resource> for: <containers>; ...`` for cpu/memory a container leaves unset."""
        spec = _spec(pod)
        if _pod_level_set(spec):
            return None
        wanted = _MUST_SPECIFY.intersection(required)
        missing: dict[str, set[str]] = {}
        for c in _containers(spec, "containers") + _containers(spec, "initContainers"):
            has = _compute_usage(_container_list(c, "requests"), _container_list(c, "limits"))
            for name in wanted - set(has):
                missing.setdefault(name, set()).add(str(c.get("name") or ""))
        if not missing:
            return None
        return "must specify " + "; ".join(f"{name} for: {','.join(sorted(missing[name]))}" for name in sorted(missing))

    def usage(self, pod: Obj, now: datetime) -> ResourceList:
        return pod_usage(pod, now)

    def changes_with_time(self, pod: Obj) -> bool:
        return bool((pod.get("metadata") or {}).get("deletionTimestamp"))  # stops being charged past its grace


class _Services(Evaluator):
    def __init__(self) -> None:
        super().__init__("", "services")
        self.names = frozenset({"count/services", "services", "services.loadbalancers", "services.nodeports"})

    def usage(self, svc: Obj, now: datetime) -> ResourceList:
        spec = _spec(svc)
        ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
        out: ResourceList = {"count/services": ONE, "services": ONE, "services.loadbalancers": ZERO, "services.nodeports": ZERO}
        kind = spec.get("type")
        if kind == "NodePort":
            out["services.nodeports"] = Quantity(Fraction(len(ports)))
        elif kind == "LoadBalancer":
            if spec.get("allocateLoadBalancerNodePorts") is False:  # only the node ports asked for by number
                out["services.nodeports"] = Quantity(Fraction(sum(1 for p in ports if p.get("nodePort"))))
            else:
                out["services.nodeports"] = Quantity(Fraction(len(ports)))
            out["services.loadbalancers"] = ONE
        return out


_STORAGE_CLASS = ".storageclass.storage.k8s.io/"
_BETA_CLASS = "volume.beta.kubernetes.io/storage-class"


class _Claims(Evaluator):
    def __init__(self) -> None:
        super().__init__("", "persistentvolumeclaims")
        self.names = frozenset({"count/persistentvolumeclaims", "persistentvolumeclaims", "requests.storage"})

    def matching(self, names: Iterable[str]) -> list[str]:
        return sorted(n for n in names if n in self.names
                      or n.endswith((_STORAGE_CLASS + "persistentvolumeclaims", _STORAGE_CLASS + "requests.storage")))

    def matches_scope(self, selector: Obj, claim: Obj) -> bool:
        if selector.get("scopeName") != "VolumeAttributesClass":
            return False
        status = claim.get("status") or {}
        names = {_spec(claim).get("volumeAttributesClassName"), status.get("currentVolumeAttributesClassName"),
                 (status.get("modifyVolumeStatus") or {}).get("targetVolumeAttributesClassName")}
        return _selector_matches(selector, "VolumeAttributesClass", {n for n in names if isinstance(n, str) and n})

    def usage(self, claim: Obj, now: datetime) -> ResourceList:
        spec = _spec(claim)
        out: ResourceList = {"persistentvolumeclaims": ONE, "count/persistentvolumeclaims": ONE}
        annotations = (claim.get("metadata") or {}).get("annotations") or {}
        # the beta annotation, when present, names the class before the field does
        storage_class = annotations.get(_BETA_CLASS, spec.get("storageClassName"))
        if isinstance(storage_class, str) and storage_class:
            out[storage_class + _STORAGE_CLASS + "persistentvolumeclaims"] = ONE
        requested = parse(((spec.get("resources") or {}).get("requests") or {}).get("storage"))
        if requested is not None:
            allocated = parse(((claim.get("status") or {}).get("allocatedResources") or {}).get("storage"))
            if allocated is not None and allocated.value > requested.value:
                requested = allocated
            if requested.value.denominator != 1:  # counted in whole bytes
                requested = Quantity(Fraction(math.ceil(requested.value)), requested.format)
            out["requests.storage"] = requested
            if isinstance(storage_class, str) and storage_class:
                out[storage_class + _STORAGE_CLASS + "requests.storage"] = requested
        return out


EVALUATORS: dict[tuple[str, str], Evaluator] = {
    ("", "pods"): _Pods(),
    ("", "services"): _Services(),
    ("", "persistentvolumeclaims"): _Claims(),
    **{("", plural): Evaluator("", plural, plural)
       for plural in ("configmaps", "resourcequotas", "replicationcontrollers", "secrets")},
}


def evaluator_for(group: str, plural: str) -> Evaluator | None:
    if (group, plural) in IGNORED_RESOURCES:
        return None
    return EVALUATORS.get((group, plural)) or Evaluator(group, plural)


def count_target(name: str) -> tuple[str, str] | None:
    """``count/deployments.apps`` -> ``("apps", "deployments")``."""
    if not name.startswith("count/"):
        return None
    plural, _, group = name[len("count/"):].partition(".")
    return (group, plural) if plural else None


# ---- a quota's spec --------------------------------------------------------------------

def hard_of(quota: Obj) -> ResourceList:
    """``spec.hard`` as quantities."""
    return _resource_list(_spec(quota).get("hard"))


def scope_selectors(quota: Obj) -> list[Obj]:
    """``spec.scopes`` and ``spec.scopeSelector`` as one list of scope selector expressions."""
    spec = _spec(quota)
    selectors: list[Obj] = [{"scopeName": s, "operator": "Exists"} for s in spec.get("scopes") or []]
    expressions = (spec.get("scopeSelector") or {}).get("matchExpressions") or []
    return selectors + [e for e in expressions if isinstance(e, dict)]


def matches_scopes(ev: Evaluator, selectors: list[Obj], obj: Obj) -> bool:
    """The object is in every scope of the quota (no scope: every object is)."""
    return all(ev.matches_scope(s, obj) for s in selectors)


def counted_evaluators(hard: Iterable[str], served: Any = None) -> list[Evaluator]:
    """The evaluators that count some resource of ``hard``.

    The built-in ones, plus a plain object count for each other ``count/<resource>.<group>``
    whose resource ``served(group, plural)`` says is served (Kubernetes counts every
    discoverable resource).
    """
    names = list(hard)
    evaluators = [ev for ev in EVALUATORS.values() if ev.matching(names)]
    for name in names:
        target = count_target(name)
        if target is None or any(name in ev.matching([name]) for ev in EVALUATORS.values()):
            continue
        ev = evaluator_for(*target)
        if ev is not None and (served is None or served(*target)):
            evaluators.append(ev)
    return evaluators


# ---- summing ---------------------------------------------------------------------------

Nanos = dict[str, tuple[int, str]]


def in_nanos(usage: ResourceList) -> Nanos:
    """A usage in integer nano units (quantities are rounded up there), with each amount's format."""
    return {name: (math.ceil(q.value * _NANO), q.format) for name, q in usage.items()}


class Tally:
    """Sums of some resource names over many objects' usages (``Quantity.Add`` semantics)."""

    def __init__(self, names: Iterable[str]) -> None:
        self.sums = dict.fromkeys(names, 0)
        self.formats = dict.fromkeys(self.sums, DECIMAL_SI)

    def add(self, usage: Nanos) -> None:
        for name in self.sums:
            amount = usage.get(name)
            if amount is not None:
                if self.sums[name] == 0:  # a sum takes the format of its first non-zero term
                    self.formats[name] = amount[1]
                self.sums[name] += amount[0]

    def result(self) -> ResourceList:
        return {name: Quantity(Fraction(total, _NANO), self.formats[name]) for name, total in self.sums.items()}


def usage_of(ev: Evaluator, objects: Iterable[Obj], names: list[str], selectors: list[Obj], now: datetime) -> ResourceList:
    """What the objects in every scope of ``selectors`` use of ``names``."""
    tally = Tally(names)
    for obj in objects:
        if matches_scopes(ev, selectors, obj):
            tally.add(in_nanos(ev.usage(obj, now)))
    return tally.result()


__all__ = [
    "EVALUATORS", "Evaluator", "IGNORED_RESOURCES", "POD_RESOURCES", "Nanos", "Quantity", "ResourceList", "Tally",
    "count_target", "counted_evaluators", "evaluator_for", "hard_of", "in_nanos", "matches_scopes", "parse",
    "pod_is_charged", "pod_limits", "pod_requests", "pod_usage", "pretty", "scope_selectors", "usage_of",
]
