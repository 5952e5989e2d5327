"""Kubernetes' validation of PodDisruptionBudgets and HorizontalPodAutoscalers.

What it checks: ``policy/v1`` PodDisruptionBudget and ``autoscaling/v2``
HorizontalPodAutoscaler, as ``pkg/apis/policy/validation`` and
``pkg/apis/autoscaling/validation`` do (with the options the registry strategies pass on
create). Why: nothing schema-invalid is stored, and each refusal is the field error
Kubernetes writes -- the disruption controller and an autoscaler act on what is stored, so
a budget with both bounds or an autoscaler whose ``maxReplicas`` is below its
``minReplicas`` would misbehave far from the user.

Kubernetes facts followed (release 1.37, feature gates at their defaults: ``HPAScaleToZero``
off, ``HPAConfigurableTolerance`` on):

* PodDisruptionBudget: ``minAvailable`` and ``maxUnavailable`` not both set (the whole spec
  is the bad value); each a non-negative integer or a percent of at most 100%;
  ``selector`` a valid label selector (invalid label values refused on create);
  ``unhealthyPodEvictionPolicy`` ``AlwaysAllow`` or ``IfHealthyBudget``;
* HorizontalPodAutoscaler: ``minReplicas`` at least 1 (0 only behind ``HPAScaleToZero``,
  and then only with an Object or External metric), ``maxReplicas`` at least 1 and not
  below ``minReplicas``; ``scaleTargetRef`` (and an Object metric's ``describedObject``)
  with a kind and a name that are URL path segments and a parseable ``apiVersion``, which
  for the scale target must name an API group unless the kind is ReplicationController;
  each metric of a known type carrying exactly the source of its type, with a metric name
  (a path segment), a target of type Utilization/Value/AverageValue, positive values and
  the per-source required/forbidden target fields; ``behavior`` rules with
  ``stabilizationWindowSeconds`` 0..3600, ``selectPolicy`` Max/Min/Disabled, at least one
  policy, each of type Pods/Percent with a positive value and a ``periodSeconds`` of
  1..1800, and a non-negative ``tolerance``.

A bad quantity is shown as Go's ``%#v`` of ``resource.Quantity`` (its fields as
``ParseQuantity`` leaves them), the way kube-apiserver shows a ``*resource.Quantity``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from ..machinery.names import path_segment_errors, qualified_name_errors
from ..machinery.selectors import go_quote
from .field_rules import (
    go_pointer,
    go_struct,
    int_or_percent_errors,
    is_int,
    label_errors,
    percent_over_100,
    quantity,
)
from .rbac import GoValue, validate_label_selector
from .types import FieldError, Obj, forbidden, invalid, not_supported, required

# --------------------------------------------------------------------------- PodDisruptionBudget

UNHEALTHY_POD_EVICTION_POLICIES = ["AlwaysAllow", "IfHealthyBudget"]  # sorted, as sets.List gives them


def validate_pod_disruption_budget(obj: Obj) -> list[FieldError]:
    """``ValidatePodDisruptionBudgetSpec`` with the create options (no invalid label values)."""
    spec = _dict(obj.get("spec"))
    errs: list[FieldError] = []
    min_available, max_unavailable = spec.get("minAvailable"), spec.get("maxUnavailable")
    if min_available is not None and max_unavailable is not None:
        errs.append(invalid("spec", _go_pdb_spec(spec), "minAvailable and maxUnavailable cannot be both set"))
    for key, value in (("minAvailable", min_available), ("maxUnavailable", max_unavailable)):
        errs += int_or_percent_errors(value, f"spec.{key}")
        errs += percent_over_100(value, f"spec.{key}")
    selector = spec.get("selector")
    if selector is not None:
        errs += validate_label_selector(selector, "spec.selector")
    policy = spec.get("unhealthyPodEvictionPolicy")
    if policy is not None and policy not in UNHEALTHY_POD_EVICTION_POLICIES:
        errs.append(not_supported("spec.unhealthyPodEvictionPolicy", policy, UNHEALTHY_POD_EVICTION_POLICIES))
    return errs


def _go_pdb_spec(spec: Obj) -> GoValue:
    """The internal ``policy.PodDisruptionBudgetSpec`` as ``%#v`` prints it (its fields are pointers)."""
    return go_struct("policy.PodDisruptionBudgetSpec", [
        ("MinAvailable", go_pointer("intstr.IntOrString", spec.get("minAvailable"))),
        ("Selector", go_pointer("v1.LabelSelector", spec.get("selector"))),
        ("MaxUnavailable", go_pointer("intstr.IntOrString", spec.get("maxUnavailable"))),
        ("UnhealthyPodEvictionPolicy", go_pointer("policy.UnhealthyPodEvictionPolicyType",
                                                  spec.get("unhealthyPodEvictionPolicy"))),
    ])


# --------------------------------------------------------------------------- HorizontalPodAutoscaler

#: ``MaxStabilizationWindowSeconds`` and ``MaxPeriodSeconds``
MAX_STABILIZATION_WINDOW_SECONDS = 3600
MAX_PERIOD_SECONDS = 1800
#: with ``HPAScaleToZero`` off (its default) a minReplicas of 0 is refused
MIN_REPLICAS_LOWER_BOUND = 1
METRIC_SOURCE_TYPES = ["ContainerResource", "External", "Object", "Pods", "Resource"]
#: a metric type and the field that holds its source
SOURCE_FIELDS = {"Object": "object", "Pods": "pods", "Resource": "resource", "External": "external",
                 "ContainerResource": "containerResource"}
#: the order ``validateMetricSpec`` looks at the sources in
SOURCE_ORDER = ("object", "external", "pods", "resource", "containerResource")
METRIC_TARGET_TYPES = ("Utilization", "Value", "AverageValue")
SELECT_POLICIES = ["Disabled", "Max", "Min"]
SCALING_POLICY_TYPES = ["Percent", "Pods"]
#: ``IsStandardContainerResourceName`` (plus ``hugepages-*``)
STANDARD_CONTAINER_RESOURCES = frozenset({"cpu", "memory", "ephemeral-storage"})
#: core/v1 helper's ``standardResources`` (plus quota hugepages)
STANDARD_RESOURCES = STANDARD_CONTAINER_RESOURCES | {
    "requests.cpu", "requests.memory", "requests.ephemeral-storage", "limits.cpu", "limits.memory",
    "limits.ephemeral-storage", "pods", "resourcequotas", "services", "replicationcontrollers", "secrets",
    "configmaps", "persistentvolumeclaims", "storage", "requests.storage", "services.nodeports",
    "services.loadbalancers"}


@dataclass(frozen=True)
class ReferenceOptions:
    """``CrossVersionObjectReferenceValidationOptions``: how strict a reference's ``apiVersion`` rule is."""

    allow_empty_api_group: bool = False
    allow_invalid_api_version: bool = False


def validate_horizontal_pod_autoscaler(obj: Obj) -> list[FieldError]:
    """``validateHorizontalPodAutoscalerSpec`` with the options ``Validate`` (create) passes."""
    spec = _dict(obj.get("spec"))
    ref = _dict(spec.get("scaleTargetRef"))
    # the only scalable kind of the core group may name no group (registry strategy)
    target_options = ReferenceOptions(allow_empty_api_group=ref.get("kind") == "ReplicationController")
    errs = _replica_bounds(spec)
    errs += _cross_version_reference(ref, "spec.scaleTargetRef", target_options)
    errs += _metrics(spec.get("metrics"), spec.get("minReplicas"), "spec.metrics")
    behavior = spec.get("behavior")
    if isinstance(behavior, dict):
        for key in ("scaleUp", "scaleDown"):
            if isinstance(behavior.get(key), dict):
                errs += _scaling_rules(behavior[key], f"spec.behavior.{key}")
    return errs


def _replica_bounds(spec: Obj) -> list[FieldError]:
    min_replicas, max_replicas = spec.get("minReplicas"), spec.get("maxReplicas")
    max_replicas = _int32(max_replicas)
    errs: list[FieldError] = []
    if is_int(min_replicas) and min_replicas < MIN_REPLICAS_LOWER_BOUND:
        errs.append(invalid("spec.minReplicas", min_replicas,
                            f"must be greater than or equal to {MIN_REPLICAS_LOWER_BOUND}"))
    if max_replicas < 1:
        errs.append(invalid("spec.maxReplicas", max_replicas, "must be greater than 0"))
    if is_int(min_replicas) and max_replicas < min_replicas:
        errs.append(invalid("spec.maxReplicas", max_replicas, "must be greater than or equal to `minReplicas`"))
    return errs


def _cross_version_reference(ref: Obj, path: str, options: ReferenceOptions) -> list[FieldError]:
    """``ValidateCrossVersionObjectReference``: kind and name are path segments; ``ValidateAPIVersion``."""
    errs: list[FieldError] = []
    for key in ("kind", "name"):
        value = ref.get(key)
        if not value:
            errs.append(required(f"{path}.{key}"))
        elif isinstance(value, str):
            errs += [invalid(f"{path}.{key}", value, m) for m in path_segment_errors(value)]
    api_version = ref.get("apiVersion")
    api_version = api_version if isinstance(api_version, str) else ""
    problem = _api_version_error(api_version, options)
    if problem is not None:
        errs.append(invalid(f"{path}.apiVersion", api_version, problem))
    return errs


def _api_version_error(api_version: str, options: ReferenceOptions) -> str | None:
    """``ValidateAPIVersion``: what ``schema.ParseGroupVersion`` refuses, or a missing group."""
    if options.allow_invalid_api_version:
        return None
    if api_version.count("/") > 1:
        return f"unexpected GroupVersion string: {api_version}"
    group = api_version.split("/")[0] if "/" in api_version else ""
    if not options.allow_empty_api_group and not group:
        return "apiVersion must specify API group"
    return None


def _metrics(metrics: Any, min_replicas: Any, path: str) -> list[FieldError]:
    """``validateMetrics``: each metric, and an Object or External one when scaling to zero."""
    metrics = metrics if isinstance(metrics, list) else []
    errs: list[FieldError] = []
    for i, metric in enumerate(metrics):
        errs += _metric(_dict(metric), f"{path}[{i}]")
    types = {_dict(m).get("type") for m in metrics}
    if min_replicas == 0 and not types & {"Object", "External"}:
        errs.append(forbidden(path, "must specify at least one Object or External metric to support scaling to "
                                    "zero replicas"))
    return errs


def _metric(metric: Obj, path: str) -> list[FieldError]:
    """``validateMetricSpec``: a known type whose source, and only it, is filled in."""
    kind = metric.get("type")
    errs: list[FieldError] = []
    if not kind:
        errs.append(required(f"{path}.type", "must specify a metric source type"))
    if kind not in METRIC_SOURCE_TYPES:  # Kubernetes says this twice; its aggregate message shows it once
        errs.append(not_supported(f"{path}.type", kind if isinstance(kind, str) else "", METRIC_SOURCE_TYPES))
    present = [key for key in SOURCE_ORDER if metric.get(key) is not None]
    if present:  # only the first source found is looked into
        errs += SOURCE_CHECKS[present[0]](_dict(metric[present[0]]), f"{path}.{present[0]}")
    expected = SOURCE_FIELDS.get(kind) if isinstance(kind, str) else None
    if expected is not None and metric.get(expected) is None:
        errs.append(required(f"{path}.{expected}", "must populate information for the given metric source"))
    if len(present) != 1:
        errs += [forbidden(f"{path}.{key}", "must populate the given metric source only")
                 for key in present if key != expected]
    return errs


def _object_source(source: Obj, path: str) -> list[FieldError]:
    options = ReferenceOptions(allow_empty_api_group=True)  # ObjectMetricsValidationOptions
    errs = _cross_version_reference(_dict(source.get("describedObject")), f"{path}.describedObject", options)
    errs += _metric_identifier(_dict(source.get("metric")), f"{path}.metric")
    target = _dict(source.get("target"))
    errs += _metric_target(target, f"{path}.target")
    if target.get("value") is None and target.get("averageValue") is None:
        errs.append(required(f"{path}.target.averageValue", "must set either a target value or averageValue"))
    return errs


def _external_source(source: Obj, path: str) -> list[FieldError]:
    errs = _metric_identifier(_dict(source.get("metric")), f"{path}.metric")
    target = _dict(source.get("target"))
    errs += _metric_target(target, f"{path}.target")
    value, average = target.get("value"), target.get("averageValue")
    if value is None and average is None:
        errs.append(required(f"{path}.target.averageValue", "must set either a target value for metric or a per-pod "
                                                            "target"))
    if value is not None and average is not None:
        errs.append(forbidden(f"{path}.target.value", "may not set both a target value for metric and a per-pod target"))
    return errs


def _pods_source(source: Obj, path: str) -> list[FieldError]:
    errs = _metric_identifier(_dict(source.get("metric")), f"{path}.metric")
    target = _dict(source.get("target"))
    errs += _metric_target(target, f"{path}.target")
    if target.get("averageValue") is None:
        errs.append(required(f"{path}.target.averageValue", "must specify a positive target averageValue"))
    return errs


def _resource_source(source: Obj, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if not source.get("name"):
        errs.append(required(f"{path}.name", "must specify a resource name"))
    return errs + _utilization_or_value(_dict(source.get("target")), f"{path}.target")


def _container_resource_source(source: Obj, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    name, container = source.get("name"), source.get("container")
    if not name:
        errs.append(required(f"{path}.name", "must specify a resource name"))
    elif isinstance(name, str):
        errs += _container_resource_name(name, f"{path}.name")
    if not container:
        errs.append(required(f"{path}.container", "must specify a container"))
    else:
        errs += label_errors(container, f"{path}.container")
    return errs + _utilization_or_value(_dict(source.get("target")), f"{path}.target")


def _utilization_or_value(target: Obj, path: str) -> list[FieldError]:
    """A (Container)Resource metric's target: a utilization or an average value, not both."""
    errs = _metric_target(target, path)
    utilization, average = target.get("averageUtilization"), target.get("averageValue")
    if utilization is None and average is None:
        errs.append(required(f"{path}.averageUtilization", "must set either a target raw value or a target utilization"))
    if utilization is not None and average is not None:
        errs.append(forbidden(f"{path}.averageValue", "may not set both a target raw value and a target utilization"))
    return errs


SOURCE_CHECKS = {"object": _object_source, "external": _external_source, "pods": _pods_source,
                 "resource": _resource_source, "containerResource": _container_resource_source}


def _container_resource_name(name: str, path: str) -> list[FieldError]:
    """core/v1 ``ValidateContainerResourceName``: qualified, and standard unless it has a prefix."""
    errs = [invalid(path, name, m) for m in qualified_name_errors(name)]
    if "/" in name:
        return errs
    if not errs and name not in STANDARD_RESOURCES and not name.startswith(("hugepages-", "requests.hugepages-")):
        errs.append(invalid(path, name, "must be a standard resource type or fully qualified"))
    if name not in STANDARD_CONTAINER_RESOURCES and not name.startswith("hugepages-"):
        errs.append(invalid(path, name, "must be a standard resource for containers"))
    return errs


def _metric_identifier(identifier: Obj, path: str) -> list[FieldError]:
    name = identifier.get("name")
    if not name:
        return [required(f"{path}.name", "must specify a metric name")]
    return [invalid(f"{path}.name", name, m) for m in path_segment_errors(name)] if isinstance(name, str) else []


def _metric_target(target: Obj, path: str) -> list[FieldError]:
    """``validateMetricTarget``: the type, positive values, a utilization of at least 1."""
    kind = target.get("type")
    kind = kind if isinstance(kind, str) else ""
    errs: list[FieldError] = []
    if not kind:
        errs.append(required(f"{path}.type", "must specify a metric target type"))
    if kind not in METRIC_TARGET_TYPES:
        errs.append(invalid(f"{path}.type", kind, "must be either Utilization, Value, or AverageValue"))
    for key in ("value", "averageValue"):
        value = target.get(key)
        if value is not None and not _positive_quantity(value):
            errs.append(invalid(f"{path}.{key}", go_quantity(value), "must be positive"))
    utilization = target.get("averageUtilization")
    if is_int(utilization) and utilization < 1:
        errs.append(invalid(f"{path}.averageUtilization", utilization, "must be greater than 0"))
    return errs


def _positive_quantity(value: Any) -> bool:
    parsed = quantity(value)
    return parsed is None or parsed > 0  # a malformed one is refused when it is decoded


def _scaling_rules(rules: Obj, path: str) -> list[FieldError]:
    """``validateScalingRules`` (after defaulting, which fills in unset policies)."""
    errs: list[FieldError] = []
    window = rules.get("stabilizationWindowSeconds")
    if is_int(window) and window < 0:
        errs.append(invalid(f"{path}.stabilizationWindowSeconds", window, "must be greater than or equal to zero"))
    if is_int(window) and window > MAX_STABILIZATION_WINDOW_SECONDS:
        errs.append(invalid(f"{path}.stabilizationWindowSeconds", window,
                            f"must be less than or equal to {MAX_STABILIZATION_WINDOW_SECONDS}"))
    select = rules.get("selectPolicy")
    if select is not None and select not in SELECT_POLICIES:
        errs.append(not_supported(f"{path}.selectPolicy", select, SELECT_POLICIES))
    policies = rules.get("policies")
    policies = policies if isinstance(policies, list) else []
    if not policies:
        errs.append(required(f"{path}.policies", "must specify at least one Policy"))
    for i, policy in enumerate(policies):
        errs += _scaling_policy(_dict(policy), f"{path}.policies[{i}]")
    tolerance = rules.get("tolerance")
    parsed = quantity(tolerance) if tolerance is not None else None
    if parsed is not None and parsed < 0:
        errs.append(invalid(f"{path}.tolerance", canonical_quantity(tolerance), "must be greater than or equal to 0"))
    return errs


def _scaling_policy(policy: Obj, path: str) -> list[FieldError]:
    kind = policy.get("type")
    errs: list[FieldError] = []
    if kind not in SCALING_POLICY_TYPES:
        errs.append(not_supported(f"{path}.type", kind if isinstance(kind, str) else "", SCALING_POLICY_TYPES))
    value, period = _int32(policy.get("value")), _int32(policy.get("periodSeconds"))
    if value <= 0:
        errs.append(invalid(f"{path}.value", value, "must be greater than zero"))
    if period <= 0:
        errs.append(invalid(f"{path}.periodSeconds", period, "must be greater than zero"))
    if period > MAX_PERIOD_SECONDS:
        errs.append(invalid(f"{path}.periodSeconds", period, f"must be less than or equal to {MAX_PERIOD_SECONDS}"))
    return errs


# --------------------------------------------------------------------------- quantities as Go shows them

_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_MAX_INT64_FACTORS = 18  # decimal digits an int64 always holds
_NANO = -9


def go_quantity(value: Any) -> GoValue:
    """``%#v`` of the ``resource.Quantity`` that ``ParseQuantity`` makes of ``value``.

    The int64 fast path (value, scale, and the original text kept when it is already
    canonical) is reproduced; a quantity that needs ``inf.Dec`` shows a pointer instead.
    """
    text = value if isinstance(value, str) else str(value)
    text = text.strip()
    if text == "0":
        return _go_quantity_fields(0, 0, None, "0", "DecimalSI")
    parts = _split_quantity(text)
    if parts is None:
        return GoValue(go_quote(text))
    positive, num, denom, suffix = parts
    base_exponent = _suffix_exponent(suffix)
    if base_exponent is None:
        return GoValue(go_quote(text))
    binary, exponent, form = base_exponent
    fast = _int64_amount(positive, num, denom, binary, exponent, form)
    if fast is None:
        return _go_quantity_fields(0, 0, "dec", "", form)
    amount, scale, canonical = fast
    return _go_quantity_fields(amount, scale, None, text if canonical else "", form)


def _go_quantity_fields(amount: int, scale: int, dec: str | None, cached: str, form: str) -> GoValue:
    return GoValue(f"resource.Quantity{{i:resource.int64Amount{{value:{amount}, scale:{scale}}}, "
                   f"d:resource.infDecAmount{{Dec:{go_pointer('inf.Dec', dec)}}}, s:{go_quote(cached)}, "
                   f"Format:{go_quote(form)}}}")


def _split_quantity(text: str) -> tuple[bool, str, str, str] | None:
    """``parseQuantityString``: sign, numerator without leading zeros, denominator, suffix."""
    positive = not text.startswith("-")
    body = text[1:] if text[:1] in "+-" and text else text
    i = 0
    while i < len(body) and body[i].isdigit():
        i += 1
    num = body[:i].lstrip("0") or "0"
    denom = ""
    if i < len(body) and body[i] == ".":
        j = i + 1
        while j < len(body) and body[j].isdigit():
            j += 1
        denom, i = body[i + 1:j], j
    suffix = body[i:]
    if not suffix or suffix in _DECIMAL_SUFFIXES or suffix in _BINARY_SUFFIXES or _exponent(suffix) is not None:
        return positive, num, denom, suffix
    return None


def _exponent(suffix: str) -> int | None:
    if suffix[:1] in ("e", "E") and len(suffix) > 1:
        try:
            return int(suffix[1:])
        except ValueError:
            return None
    return None


def _suffix_exponent(suffix: str) -> tuple[bool, int, str] | None:
    """(binary, exponent, format) of a suffix, as the quantity suffixer interprets it."""
    if suffix in _BINARY_SUFFIXES:
        return True, _BINARY_SUFFIXES[suffix], "BinarySI"
    if suffix in _DECIMAL_SUFFIXES:
        return False, _DECIMAL_SUFFIXES[suffix], "DecimalSI"
    exponent = _exponent(suffix)
    return None if exponent is None else (False, exponent, "DecimalExponent")


def _int64_amount(positive: bool, num: str, denom: str, binary: bool, exponent: int,
                  form: str) -> tuple[int, int, bool] | None:
    """``ParseQuantity``'s int64 path: (value, scale, text is canonical), or None for the inf.Dec path."""
    mantissa = 1
    if binary:
        scale = 0
        if exponent < 0 or denom:
            return None
        mantissa <<= exponent
        precision = 15 - len(num) - int(exponent * 3 / 10) - 1
    else:
        scale = exponent
        precision = _MAX_INT64_FACTORS - (len(num) + len(denom))
    if precision < 0:
        return None
    scale -= len(denom)
    if scale < _NANO:
        return None
    shifted = num + denom
    amount = int(shifted) * mantissa
    if amount >= 1 << 63:
        return None
    amount = amount if positive else -amount
    if binary:
        canonical = exponent % 10 == 0 and int(shifted) & 0x07 != 0
    else:
        canonical = scale % 3 == 0 and not shifted.endswith("000") and shifted[0] != "0"
    return amount, scale, canonical


def canonical_quantity(value: Any) -> str:
    """``Quantity.String()`` for a decimal quantity: the largest SI suffix that keeps it whole."""
    parsed = quantity(value)
    if parsed is None:
        return str(value)
    for suffix, exponent in sorted(_DECIMAL_SUFFIXES.items(), key=lambda item: -item[1]):
        scaled = parsed / Fraction(10) ** exponent
        if scaled.denominator == 1 and (scaled != 0 or exponent == 0):
            return f"{scaled.numerator}{suffix}"
    return str(value)


def _int32(value: Any) -> int:
    """An int32 field as Go holds it: 0 when unset."""
    return value if is_int(value) else 0


def _dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}
