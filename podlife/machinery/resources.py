"""Resource quantities and a pod's requests and limits, as Kubernetes computes them.

Pure helpers shared by admission (``api/resource_quota.py``, ``api/limit_ranger.py``) and
the node (``kubelet/eviction.py`` ranks pods by usage above requests): a :class:`Quantity`
keeps the exact amount *and* the format Kubernetes prints it in (``1536Mi``, ``1500m``),
and :func:`pod_requests`/:func:`pod_limits` are ``resourcehelper.PodRequests``/
``PodLimits``: containers summed, each init container with the sidecars started before
it, the larger of the two, pod-level resources winning, overhead added.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from .quantity import QuantityError, parse_quantity

Obj = dict[str, Any]

# ---- quantities as Kubernetes keeps them ---------------------------------------------

DECIMAL_SI, BINARY_SI, DECIMAL_EXPONENT = "DecimalSI", "BinarySI", "DecimalExponent"
NANO = 10**9
_DECIMAL_SUFFIX = {-9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"}
_BINARY_SUFFIX = {0: "", 10: "Ki", 20: "Mi", 30: "Gi", 40: "Ti", 50: "Pi", 60: "Ei"}


@dataclass(frozen=True, slots=True)
class Quantity:
    """An exact amount and the format Kubernetes prints it in (that of the text it was parsed from)."""

    value: Fraction
    format: str = DECIMAL_SI

    def plus(self, other: Quantity) -> Quantity:
        """The sum, in this one's format unless this one is zero (``Quantity.Add``)."""
        return Quantity(self.value + other.value, other.format if self.value == 0 else self.format)

    def __str__(self) -> str:
        return format_quantity(self)


ZERO = Quantity(Fraction(0))
ONE = Quantity(Fraction(1))


def parse(value: Any) -> Quantity | None:
    """A quantity (rounded up to nano units, as Kubernetes parses), or None if it is not one."""
    try:
        amount = parse_quantity(value)
    except (QuantityError, TypeError, ValueError):
        return None
    if amount.denominator != 1 and (amount * NANO).denominator != 1:
        magnitude = Fraction(math.ceil(abs(amount) * NANO), NANO)
        amount = magnitude if amount > 0 else -magnitude
    text = value.strip() if isinstance(value, str) else ""
    if text[-2:] in ("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"):
        return Quantity(amount, BINARY_SI)
    body = text.lstrip("+-")
    mark = max(body.rfind("e"), body.rfind("E"))
    if 0 < mark < len(body) - 1:  # 1e3, 5E-2 (a trailing E is the exa suffix)
        return Quantity(amount, DECIMAL_EXPONENT)
    return Quantity(amount, DECIMAL_SI)


def format_quantity(q: Quantity) -> str:
    """Kubernetes' canonical text: the largest suffix (or exponent) that keeps the number whole.

    Binary quantities keep binary suffixes when they are whole bytes of at least 1Ki
    (``1536Mi``), else print as decimal; decimal ones use exponents of 3 (``1500m``,
    ``2k``); zero is ``0``.
    """
    if q.value == 0:
        return "0"
    sign = "-" if q.value < 0 else ""
    amount = abs(q.value)
    fmt = q.format
    if fmt == BINARY_SI:
        if amount < 1024 or amount.denominator != 1:
            fmt = DECIMAL_SI
        else:
            number, exponent = amount.numerator, 0
            while exponent < 60 and number % 1024 == 0:
                number, exponent = number // 1024, exponent + 10
            return f"{sign}{number}{_BINARY_SUFFIX[exponent]}"
    exponent = 0
    while amount.denominator != 1:
        amount, exponent = amount * 10, exponent - 1
    number = amount.numerator
    while number % 10 == 0:
        number, exponent = number // 10, exponent + 1
    while exponent % 3:
        number, exponent = number * 10, exponent - 1
    if fmt == DECIMAL_SI and exponent in _DECIMAL_SUFFIX:
        return f"{sign}{number}{_DECIMAL_SUFFIX[exponent]}"
    return f"{sign}{number}e{exponent}" if exponent else f"{sign}{number}"


ResourceList = dict[str, Quantity]


def resource_list(values: Any) -> ResourceList:
    if not isinstance(values, dict):
        return {}
    out = {}
    for name, value in values.items():
        q = parse(value)
        if q is not None:
            out[str(name)] = q
    return out


def add_into(total: ResourceList, more: Mapping[str, Quantity]) -> None:
    for name, q in more.items():
        total[name] = total[name].plus(q) if name in total else q


def max_into(total: ResourceList, more: Mapping[str, Quantity]) -> None:
    for name, q in more.items():
        if name not in total or q.value > total[name].value:
            total[name] = q


# ---- a pod's requests and limits ------------------------------------------------------

POD_LEVEL = ("cpu", "memory")
HUGEPAGES = "hugepages-"
def containers_of(spec: Obj, key: str) -> list[Obj]:
    items = spec.get(key)
    return [c for c in items if isinstance(c, dict)] if isinstance(items, list) else []


def container_list(c: Obj, kind: str) -> ResourceList:
    resources = c.get("resources")
    return resource_list(resources.get(kind)) if isinstance(resources, dict) else {}


def pod_level(spec: Obj, kind: str) -> ResourceList:
    resources = spec.get("resources")
    return resource_list(resources.get(kind)) if isinstance(resources, dict) else {}


def pod_level_supported(name: str) -> bool:
    return name in POD_LEVEL or name.startswith(HUGEPAGES)


def pod_level_set(spec: Obj, kind: str | None = None) -> bool:
    kinds = (kind,) if kind else ("requests", "limits")
    return any(pod_level_supported(name) for k in kinds for name in pod_level(spec, k))


def aggregate(spec: Obj, kind: str) -> ResourceList:
    """Containers summed; each init container with the sidecars before it; the larger of the two."""
    total: ResourceList = {}
    for c in containers_of(spec, "containers"):
        add_into(total, container_list(c, kind))
    sidecars: ResourceList = {}
    init: ResourceList = {}
    for c in containers_of(spec, "initContainers"):
        own = container_list(c, kind)
        if c.get("restartPolicy") == "Always":
            add_into(total, own)
            add_into(sidecars, own)
            max_into(init, sidecars)
        else:
            combined: ResourceList = {}
            add_into(combined, own)
            add_into(combined, sidecars)
            max_into(init, combined)
    max_into(total, init)
    return total


def pod_requests(spec: Obj) -> ResourceList:
    """A pod's effective requests (``resourcehelper.PodRequests``): pod-level ones win, overhead added."""
    reqs = aggregate(spec, "requests")
    if pod_level_set(spec, "requests"):
        reqs.update({n: q for n, q in pod_level(spec, "requests").items() if pod_level_supported(n)})
    add_into(reqs, resource_list(spec.get("overhead")))
    return reqs


def pod_limits(spec: Obj) -> ResourceList:
    """A pod's effective limits (``resourcehelper.PodLimits``): overhead added to the limits it has."""
    limits = aggregate(spec, "limits")
    if pod_level_set(spec):
        limits.update({n: q for n, q in pod_level(spec, "limits").items() if pod_level_supported(n)})
    for name, q in resource_list(spec.get("overhead")).items():
        if name in limits and limits[name].value != 0:
            limits[name] = limits[name].plus(q)
    return limits
