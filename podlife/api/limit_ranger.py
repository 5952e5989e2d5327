"""LimitRanger admission: a namespace's LimitRanges default and bound what pods ask for.

What: a LimitRange in a namespace lists, per ``type`` (``Container``, ``Pod``), default
limits (``default``), default requests (``defaultRequest``), ``min``, ``max`` and
``maxLimitRequestRatio``. On a pod's create, as Kubernetes' LimitRanger plugin
(``plugin/pkg/admission/limitranger``), in its two halves:

1. the mutating half (:func:`admit`, Kubernetes' ``Admit``): containers without a limit
   (request) for a resource get the ``default`` (``defaultRequest``, else ``default``) of
   each ``Container`` item, and the pod is annotated ``kubernetes.io/limit-ranger`` with
   what was set. It runs among the mutating plugins, right after NamespaceLifecycle, so
   the pod's own validation (requests within limits), the webhooks and the admission
   policies all see the defaulted pod, and its QoS class follows the defaults;
2. the validating half (:func:`validate`, ``Validate``): every container, and the pod as
   a whole for ``Pod`` items, must stay within ``min`` and ``max`` and the ratio; a
   violation is Kubernetes' 403, e.g. ``pods "p" is forbidden: maximum cpu usage per
   Container is 1, but limit is 2`` (several: ``[a, b]``, Go's aggregate).

Pod updates are not looked at (Kubernetes' plugin skips them: containers' resources
cannot change there).
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING, Any

from ..machinery import errors
from ..machinery.quantity import QuantityError, parse_quantity
from ..registry.pods import qos_class
from .admission_plugin import CREATE_ONLY, AdmissionPlugin, Attributes

if TYPE_CHECKING:
    from .rest import ResourceREST

Obj = dict[str, Any]
NAME = "LimitRanger"
ANNOTATION = "kubernetes.io/limit-ranger"


def _limit_ranges(rest: ResourceREST, namespace: str) -> list[Obj]:
    lr_rest = rest.ctx.rest_by("", "v1", "limitranges")
    if lr_rest is None or not lr_rest.cache.objects:  # the usual case: nothing to look up
        return []
    return [co.obj for co in lr_rest.cache.in_namespace(namespace)]


def _q(value: Any) -> Fraction | None:
    try:
        return parse_quantity(value)
    except (QuantityError, TypeError, ValueError):
        return None


def _items(ranges: list[Obj], kind: str) -> list[Obj]:
    return [item for lr in ranges for item in ((lr.get("spec") or {}).get("limits") or [])
            if isinstance(item, dict) and item.get("type") == kind]


def _containers(spec: Obj) -> list[Obj]:
    return [c for key in ("initContainers", "containers") for c in spec.get(key) or [] if isinstance(c, dict)]


def _apply_defaults(spec: Obj, items: list[Obj]) -> list[str]:
    """Set missing limits/requests from the Container items; returns the annotation's phrases."""
    said: list[str] = []
    for c in _containers(spec):
        resources = c.setdefault("resources", {})
        limits = resources.setdefault("limits", {})
        requests = resources.setdefault("requests", {})
        set_limits, set_requests = [], []
        for item in items:
            default = item.get("default") or {}
            default_request = item.get("defaultRequest") or default
            for name, value in default.items():
                if name not in limits:
                    limits[name] = value
                    set_limits.append(name)
            for name, value in default_request.items():
                if name not in requests:
                    requests[name] = value
                    set_requests.append(name)
        if not limits:
            resources.pop("limits")
        if not requests:
            resources.pop("requests")
        if not resources:
            c.pop("resources")
        name = c.get("name", "")
        if set_requests:
            said.append(f"{', '.join(set_requests)} request for container {name}")
        if set_limits:
            said.append(f"{', '.join(set_limits)} limit for container {name}")
    return said


def _bound_errors(kind: str, amounts: dict[str, dict[str, Any]], item: Obj) -> list[str]:
    """min/max/ratio of one item against a container's (or the pod's) requests and limits."""
    problems = []
    requests, limits = amounts.get("requests") or {}, amounts.get("limits") or {}
    for name, bound in (item.get("min") or {}).items():
        low = _q(bound)
        for what, values in (("request", requests), ("limit", limits)):
            got = _q(values.get(name)) if name in values else None
            if low is not None and got is not None and got < low:
                problems.append(f"minimum {name} usage per {kind} is {bound}, but {what} is {values[name]}")
                break
        else:
            if low is not None and name not in requests and name not in limits:
                problems.append(f"minimum {name} usage per {kind} is {bound}.  No request is specified")
    for name, bound in (item.get("max") or {}).items():
        high = _q(bound)
        got = _q(limits.get(name)) if name in limits else None
        if high is not None and got is None:
            problems.append(f"maximum {name} usage per {kind} is {bound}.  No limit is specified")
        elif high is not None and got is not None and got > high:
            problems.append(f"maximum {name} usage per {kind} is {bound}, but limit is {limits[name]}")
    for name, bound in (item.get("maxLimitRequestRatio") or {}).items():
        ratio, limit, request = _q(bound), _q(limits.get(name)), _q(requests.get(name))
        if ratio is not None and limit is not None and request:
            if Fraction(limit) / Fraction(request) > ratio:
                shown = f"{float(Fraction(limit) / Fraction(request)):g}"
                problems.append(f"{name} max limit to request ratio per {kind} is {bound}, but provided ratio is "
                                f"{shown}")
    return problems


def _pod_amounts(spec: Obj) -> dict[str, dict[str, Any]]:
    """The pod's total requests and limits over its regular containers (as quantities' text)."""
    total: dict[str, dict[str, Fraction]] = {"requests": {}, "limits": {}}
    for c in spec.get("containers") or []:
        for kind in ("requests", "limits"):
            for name, value in ((c.get("resources") or {}).get(kind) or {}).items():
                amount = _q(value)
                if amount is not None:
                    total[kind][name] = total[kind].get(name, Fraction(0)) + amount
    return {kind: {name: _format(v) for name, v in values.items()} for kind, values in total.items()}


def _format(amount: Fraction) -> str:
    """A summed quantity as Kubernetes prints it: binary suffixes when exact (memory), millis for fractions."""
    if amount.denominator == 1:
        value = amount.numerator
        for suffix, size in (("Ei", 1 << 60), ("Pi", 1 << 50), ("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20),
                             ("Ki", 1 << 10)):
            if value >= size and value % size == 0:
                return f"{value // size}{suffix}"
        return str(value)
    milli = amount * 1000
    return f"{int(milli)}m" if milli.denominator == 1 else f"{float(amount):g}"


def admit(rest: ResourceREST, pod: Obj, old: Obj | None, attrs: Attributes) -> list[str]:
    """The mutating half: fill in the Container items' defaults, and say so in the annotation."""
    spec = pod.get("spec")
    meta = pod.get("metadata") or {}
    if not isinstance(spec, dict):
        return []
    ranges = _limit_ranges(rest, str(meta.get("namespace") or ""))
    if not ranges:
        return []
    said = _apply_defaults(spec, _items(ranges, "Container"))
    if said:
        meta.setdefault("annotations", {})[ANNOTATION] = "LimitRanger plugin set: " + "; ".join(said)
        status = pod.get("status")
        if isinstance(status, dict):
            status["qosClass"] = qos_class(spec)
    return []


def validate(rest: ResourceREST, pod: Obj, old: Obj | None, attrs: Attributes) -> list[str]:
    """The validating half: refuse (403) a pod out of its LimitRanges' bounds."""
    spec = pod.get("spec")
    meta = pod.get("metadata") or {}
    if not isinstance(spec, dict):
        return []
    ranges = _limit_ranges(rest, str(meta.get("namespace") or ""))
    if not ranges:
        return []
    container_items, pod_items = _items(ranges, "Container"), _items(ranges, "Pod")
    problems: list[str] = []
    for c in _containers(spec):
        for item in container_items:
            problems += _bound_errors("Container", c.get("resources") or {}, item)
    for item in pod_items:
        problems += _bound_errors("Pod", _pod_amounts(spec), item)
    if problems:
        name = str(meta.get("name") or "")
        text = problems[0] if len(problems) == 1 else "[" + ", ".join(problems) + "]"
        raise errors.ApiError(403, "Forbidden", f'pods "{name}" is forbidden: {text}', {"name": name, "kind": "pods"})
    return []


PLUGIN = AdmissionPlugin(NAME, frozenset({("", "pods")}), CREATE_ONLY, mutate=admit, validate=validate)

__all__ = ["ANNOTATION", "PLUGIN"]
