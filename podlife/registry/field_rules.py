"""Small validation rules every kind's validation shares, worded as Kubernetes words them.

What it reads: one field of a decoded object at a time. What it writes: nothing but
:class:`~podlife.registry.types.FieldError` lists. Why one place: Deployments, Services,
PersistentVolumes and quotas all need the same "must be greater than or equal to 0",
int-or-percent, quantity and "field is immutable" rules, and the same rendering of a bad
value, so each kind's module (``workload_validation``, ``service_validation``,
``storage_validation``, ``core_validation``, ``cluster_validation``) stays a list of its
own rules.

Kubernetes facts followed (``pkg/apis/core/validation/validation.go``:
``ValidateNonnegativeField``, ``ValidatePositiveField``, ``ValidateImmutableField``,
``ValidateResourceQuantityValue``; ``pkg/apis/apps/validation/validation.go``:
``ValidatePositiveIntOrPercent``, ``IsNotMoreThan100Percent``; apimachinery's
``field.Error.ErrorBody``): a bad value is printed with Go's ``%v`` for numbers and
booleans, ``%q`` for strings and ``%#v`` for structs, maps and slices -- so
``map[string]string{"app":"web"}``, ``v1.LabelSelector{...}`` and
``intstr.IntOrString{Type:1, IntVal:0, StrVal:"50%"}`` are rendered the same way here
(:class:`~podlife.registry.rbac.GoValue`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Any, TypeGuard

from ..machinery.names import dns1123_label_errors, dns1123_subdomain_errors, qualified_name_errors, regex_error
from ..machinery.quantity import QuantityError, parse_quantity
from ..machinery.selectors import go_quote
from .rbac import GoValue
from .types import FieldError, invalid, not_supported

__all__ = [
    "GoValue", "FIELD_IMMUTABLE", "go_bool", "go_string_map", "go_label_selector", "go_int_or_string", "go_strings",
    "go_struct", "is_int", "non_negative", "positive", "int_or_percent_errors", "int_or_percent_value",
    "percent_over_100", "immutable", "retarget", "quantity", "quantity_errors", "label_errors", "subdomain_errors",
    "qualified_errors", "too_long",
]

FIELD_IMMUTABLE = "field is immutable"
_PERCENT_RE = re.compile(r"^[0-9]+%$")


# --------------------------------------------------------------------------- Go renderings


def go_bool(value: bool) -> GoValue:
    return GoValue("true" if value else "false")


def go_scalar(value: Any) -> str:
    """One value inside a Go composite literal (``%#v`` style)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return go_quote(value)
    if value is None:
        return "nil"
    return str(value)


def go_string_map(labels: Any) -> GoValue:
    """``map[string]string{"a":"b"}`` (keys sorted, as Go prints maps); an absent map is ``(nil)``."""
    if not isinstance(labels, Mapping):
        return GoValue("map[string]string(nil)")
    items = ", ".join(f"{go_quote(str(k))}:{go_quote(str(v))}" for k, v in sorted(labels.items()))
    return GoValue("map[string]string{" + items + "}")


def go_strings(values: Any) -> GoValue:
    if not isinstance(values, list):
        return GoValue("[]string(nil)")
    return GoValue("[]string{" + ", ".join(go_quote(str(v)) for v in values) + "}")


def go_label_selector(selector: Any, package: str = "v1") -> GoValue:
    """A ``metav1.LabelSelector`` as ``%#v`` shows it (the pointer is dereferenced by ``ErrorBody``)."""
    if not isinstance(selector, Mapping):
        return GoValue("null")
    labels = go_string_map(selector.get("matchLabels")).text
    exprs = selector.get("matchExpressions")
    if not isinstance(exprs, list):
        shown = f"[]{package}.LabelSelectorRequirement(nil)"
    else:
        parts = []
        for e in exprs:
            e = e if isinstance(e, Mapping) else {}
            parts.append(f"{package}.LabelSelectorRequirement{{Key:{go_quote(str(e.get('key') or ''))}, "
                         f"Operator:{go_quote(str(e.get('operator') or ''))}, Values:{go_strings(e.get('values')).text}}}")
        shown = f"[]{package}.LabelSelectorRequirement{{" + ", ".join(parts) + "}"
    return GoValue(f"{package}.LabelSelector{{MatchLabels:{labels}, MatchExpressions:{shown}}}")


def go_int_or_string(value: Any) -> GoValue:
    """``intstr.IntOrString{Type:0, IntVal:5, StrVal:""}`` (Type 0 is Int, 1 is String)."""
    if isinstance(value, str):
        return GoValue(f"intstr.IntOrString{{Type:1, IntVal:0, StrVal:{go_quote(value)}}}")
    number = value if is_int(value) else 0
    return GoValue(f'intstr.IntOrString{{Type:0, IntVal:{number}, StrVal:""}}')


def go_struct(type_name: str, fields: Iterable[tuple[str, str]]) -> GoValue:
    """``pkg.Type{A:..., B:...}`` from already rendered field values."""
    return GoValue(type_name + "{" + ", ".join(f"{k}:{v}" for k, v in fields) + "}")


def go_pointer(type_name: str, value: Any) -> str:
    """A nil or non-nil pointer field inside a struct (Go prints an address for the latter)."""
    return f"(*{type_name})(nil)" if value is None else f"(*{type_name})(0xc000000000)"


# --------------------------------------------------------------------------- numbers


def is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def non_negative(value: Any, path: str) -> list[FieldError]:
    """``ValidateNonnegativeField`` for an optional integer (``None`` passes)."""
    if value is None:
        return []
    if not is_int(value) or value < 0:
        return [invalid(path, value, "must be greater than or equal to 0")]
    return []


def positive(value: Any, path: str) -> list[FieldError]:
    """``ValidatePositiveField``."""
    if value is None:
        return []
    if not is_int(value) or value <= 0:
        return [invalid(path, value, "must be greater than 0")]
    return []


def int_or_percent_errors(value: Any, path: str) -> list[FieldError]:
    """``ValidatePositiveIntOrPercent``: a non-negative integer or ``"<digits>%"``."""
    if value is None:
        return []
    if isinstance(value, str):
        if not _PERCENT_RE.match(value):
            message = regex_error("a valid percent string must be a numeric string followed by an ending '%'",
                                  "[0-9]+%", "1%", "93%")
            return [invalid(path, go_int_or_string(value), message)]
        return []
    if is_int(value):
        return non_negative(value, path)
    return [invalid(path, go_int_or_string(value), "must be an integer or percentage (e.g '5%')")]


def int_or_percent_value(value: Any) -> int:
    """``getIntOrPercentValue``: the number of a percent or an int (a bad string counts 0)."""
    if isinstance(value, str):
        return int(value[:-1]) if _PERCENT_RE.match(value) else 0
    return value if is_int(value) else 0


def percent_over_100(value: Any, path: str) -> list[FieldError]:
    """``IsNotMoreThan100Percent``."""
    if isinstance(value, str) and _PERCENT_RE.match(value) and int(value[:-1]) > 100:
        return [invalid(path, go_int_or_string(value), "must not be greater than 100%")]
    return []


# --------------------------------------------------------------------------- other shared rules


def immutable(new: Any, old: Any, path: str, shown: Any = None) -> list[FieldError]:
    """``ValidateImmutableField``: ``shown`` is the new value as Kubernetes prints it."""
    if new == old:
        return []
    return [invalid(path, new if shown is None else shown, FIELD_IMMUTABLE)]


def retarget(errs: Iterable[FieldError], old_prefix: str, new_prefix: str) -> list[FieldError]:
    """The same errors with ``old_prefix`` of each field path replaced (e.g. a pod spec in a template)."""
    out = []
    for e in errs:
        field = e.field
        if field == old_prefix or field.startswith(old_prefix + ".") or field.startswith(old_prefix + "["):
            field = new_prefix + field[len(old_prefix):]
        out.append(FieldError(e.type, field, e.detail, e.value))
    return out


def quantity(value: Any) -> Fraction | None:
    """The value of a resource quantity, or ``None`` when it is not one."""
    try:
        return parse_quantity(value)
    except QuantityError:
        return None


def malformed_quantity(value: Any, path: str) -> FieldError:
    """The error for a value that is not a resource quantity at all."""
    return invalid(path, value, "quantities must match the regular expression "
                                "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")


def unique_supported(values: list[Any], allowed: list[str], path: str) -> tuple[list[FieldError], set[str]]:
    """Each of ``values`` one of ``allowed`` and none twice (NotSupported, Duplicate), and the set seen."""
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, value in enumerate(values):
        if value not in allowed:
            errs.append(not_supported(f"{path}[{i}]", value, allowed))
        elif value in seen:
            errs.append(FieldError("FieldValueDuplicate", f"{path}[{i}]", "", value))
        seen.add(str(value))
    return errs, seen


def quantity_errors(value: Any, path: str) -> list[FieldError]:
    """``ValidateResourceQuantityValue`` (non-negative); a malformed one is named too."""
    parsed = quantity(value)
    if parsed is None:
        return [malformed_quantity(value, path)]
    if parsed < 0:
        return [invalid(path, value, "must be greater than or equal to 0")]
    return []


def label_errors(value: Any, path: str) -> list[FieldError]:
    """A DNS-1123 label (``ValidateDNS1123Label``)."""
    if not isinstance(value, str):
        return [invalid(path, value, "must be a string")]
    return [invalid(path, value, m) for m in dns1123_label_errors(value)]


def subdomain_errors(value: Any, path: str) -> list[FieldError]:
    if not isinstance(value, str):
        return [invalid(path, value, "must be a string")]
    return [invalid(path, value, m) for m in dns1123_subdomain_errors(value)]


def qualified_errors(value: Any, path: str) -> list[FieldError]:
    if not isinstance(value, str):
        return [invalid(path, value, "must be a string")]
    return [invalid(path, value, m) for m in qualified_name_errors(value)]


def too_long(path: str, limit: int) -> FieldError:
    """``field.TooLong``: the value is not shown."""
    return FieldError("FieldValueTooLong", path, f"must have at most {limit} bytes")
