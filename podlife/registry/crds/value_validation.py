"""OpenAPI v3 value validation of custom resources, with kube-openapi's messages.

Design.  A custom resource is checked against its CRD version's structural schema the
way kube-openapi's validator (as converted by apiextensions-apiserver) checks it:
types (``nullable``, ``x-kubernetes-int-or-string``), ``enum``, ``minimum``/``maximum``
(exclusive too), ``multipleOf``, ``pattern``, lengths, item and property counts,
``required``, the string formats Kubernetes knows (date-time, date, uuid, ipv4, ipv6,
cidr, byte) and the junctors (``allOf``/``anyOf``/``oneOf``/``not``).  Messages and
field paths follow Kubernetes, e.g. ``spec.replicas: Invalid value: "string":
spec.replicas in body must be of type integer: "string"``.  The same checks validate
a schema's ``default`` values (:mod:`.structural`).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from ..types import FieldError
from .field_errors import (
    child_path,
    go_number,
    invalid_error,
    not_supported_error,
    required_error,
    too_long_error,
    too_many_error,
    type_invalid_error,
)

__all__ = ["ROOT_FIELDS", "compiled_pattern", "validate_custom_resource", "validate_value"]

#: the fields every object has at its root (and embedded resources): never pruned, not schema-checked
ROOT_FIELDS = ("apiVersion", "kind", "metadata")


def validate_custom_resource(obj: Mapping[str, Any], schema: Mapping[str, Any] | None) -> list[FieldError]:
    """Schema errors of a custom resource (``apiVersion``/``kind``/``metadata`` are not checked here)."""
    if schema is None:
        return []
    body = {k: v for k, v in obj.items() if k not in ROOT_FIELDS}
    root = dict(schema)
    root["properties"] = {k: v for k, v in (schema.get("properties") or {}).items() if k not in ROOT_FIELDS}
    root["required"] = [r for r in schema.get("required") or [] if r not in ROOT_FIELDS]
    errs: list[FieldError] = []
    validate_value(body, root, "", errs)
    return errs


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def _type_ok(value: Any, stype: str) -> bool:
    if stype == "object":
        return isinstance(value, dict)
    if stype == "array":
        return isinstance(value, list)
    if stype == "string":
        return isinstance(value, str)
    if stype == "boolean":
        return isinstance(value, bool)
    if stype == "integer":
        if isinstance(value, float):
            return value.is_integer()
        return isinstance(value, int) and not isinstance(value, bool)
    if stype == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return True


def validate_value(value: Any, schema: Mapping[str, Any], path: str, errs: list[FieldError]) -> None:
    """Append to ``errs`` what kube-openapi's schema validator reports for ``value``."""
    name = path or "."
    if not _check_type(value, schema, path, name, errs):
        return
    if value is None:
        return
    _check_enum(value, schema, path, errs)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        _check_number(value, schema, path, name, errs)
    elif isinstance(value, str):
        _check_string(value, schema, path, name, errs)
    elif isinstance(value, list):
        _check_array(value, schema, path, name, errs)
    elif isinstance(value, dict):
        _check_object(value, schema, path, name, errs)
    _check_junctors(value, schema, path, name, errs)


def _check_type(value: Any, schema: Mapping[str, Any], path: str, name: str, errs: list[FieldError]) -> bool:
    """Whether the value may be checked further (its type matched)."""
    actual = _json_type(value)
    if schema.get("x-kubernetes-int-or-string") is True:
        expected, ok = "integer,string", (actual in ("integer", "string"))
    else:
        expected = schema.get("type") or ""
        ok = not expected or _type_ok(value, expected)
    if value is None:
        ok = schema.get("nullable") is True or not expected
    if not ok:
        errs.append(type_invalid_error(path, actual, f'{name} in body must be of type {expected}: "{actual}"'))
    return ok


def _same_json(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_json(a[k], b[k]) for k in a)
    return bool(a == b)


def _check_enum(value: Any, schema: Mapping[str, Any], path: str, errs: list[FieldError]) -> None:
    enum = schema.get("enum")
    if isinstance(enum, list) and not any(_same_json(value, e) for e in enum):
        allowed = [e if isinstance(e, str) else orjson.dumps(e).decode() for e in enum]
        errs.append(not_supported_error(path, value, allowed))


def _check_number(value: float | int, schema: Mapping[str, Any], path: str, name: str, errs: list[FieldError]) -> None:
    maximum, minimum = schema.get("maximum"), schema.get("minimum")
    if isinstance(maximum, (int, float)):
        exclusive = schema.get("exclusiveMaximum") is True
        if value > maximum or (exclusive and value == maximum):
            word = "less than" if exclusive else "less than or equal to"
            errs.append(invalid_error(path, value, f"{name} in body should be {word} {go_number(maximum)}"))
    if isinstance(minimum, (int, float)):
        exclusive = schema.get("exclusiveMinimum") is True
        if value < minimum or (exclusive and value == minimum):
            word = "greater than" if exclusive else "greater than or equal to"
            errs.append(invalid_error(path, value, f"{name} in body should be {word} {go_number(minimum)}"))
    multiple = schema.get("multipleOf")
    if isinstance(multiple, (int, float)) and multiple > 0 and not _is_multiple(value, multiple):
        errs.append(invalid_error(path, value, f"{name} in body should be a multiple of {go_number(multiple)}"))


def _is_multiple(value: float | int, multiple: float | int) -> bool:
    quotient = value / multiple
    return abs(quotient - round(quotient)) < 1e-9


def _check_string(value: str, schema: Mapping[str, Any], path: str, name: str, errs: list[FieldError]) -> None:
    max_length, min_length = schema.get("maxLength"), schema.get("minLength")
    if isinstance(max_length, int) and len(value) > max_length:
        errs.append(too_long_error(path, max_length))
    if isinstance(min_length, int) and len(value) < min_length:
        errs.append(invalid_error(path, value, f"{name} in body should be at least {min_length} chars long"))
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        compiled = compiled_pattern(pattern)
        if compiled is not None and compiled.search(value) is None:
            errs.append(invalid_error(path, value, f"{name} in body should match '{pattern}'"))
    fmt = schema.get("format")
    check = _STRING_FORMATS.get(fmt or "")
    if check is not None and not check(value):
        errs.append(type_invalid_error(path, value, f'{name} in body must be of type {fmt}: "{value}"'))


_PATTERNS: dict[str, re.Pattern[str] | None] = {}


def compiled_pattern(pattern: str) -> re.Pattern[str] | None:
    if pattern not in _PATTERNS:
        try:
            _PATTERNS[pattern] = re.compile(pattern)
        except re.error:
            _PATTERNS[pattern] = None
    return _PATTERNS[pattern]


_DATE_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return len(text) == 36


def _is_ip(text: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False


def _is_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return "/" in text


def _is_byte(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


_STRING_FORMATS: dict[str, Callable[[str], bool]] = {
    "date-time": lambda s: _DATE_TIME_RE.match(s) is not None,
    "date": lambda s: _DATE_RE.match(s) is not None,
    "uuid": _is_uuid,
    "ipv4": lambda s: _is_ip(s, 4),
    "ipv6": lambda s: _is_ip(s, 6),
    "cidr": _is_cidr,
    "byte": _is_byte,
}


def _check_array(value: list[Any], schema: Mapping[str, Any], path: str, name: str, errs: list[FieldError]) -> None:
    max_items, min_items = schema.get("maxItems"), schema.get("minItems")
    if isinstance(max_items, int) and len(value) > max_items:
        errs.append(too_many_error(path, len(value), max_items))
    if isinstance(min_items, int) and len(value) < min_items:
        errs.append(invalid_error(path, len(value), f"{name} in body should have at least {min_items} items"))
    items = schema.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(value):
            validate_value(item, items, f"{path}[{i}]", errs)


def _check_object(value: dict[str, Any], schema: Mapping[str, Any], path: str, name: str,
                  errs: list[FieldError]) -> None:
    for key in schema.get("required") or []:
        if key not in value:
            errs.append(required_error(child_path(path, key)))
    max_props, min_props = schema.get("maxProperties"), schema.get("minProperties")
    if isinstance(max_props, int) and len(value) > max_props:
        errs.append(too_many_error(path, len(value), max_props))
    if isinstance(min_props, int) and len(value) < min_props:
        errs.append(invalid_error(path, len(value), f"{name} in body should have at least {min_props} properties"))
    props = schema.get("properties") or {}
    addl = schema.get("additionalProperties")
    for key, sub_value in value.items():
        sub = props.get(key) if key in props else (addl if isinstance(addl, dict) else None)
        if isinstance(sub, dict):
            validate_value(sub_value, sub, child_path(path, key), errs)


def _check_junctors(value: Any, schema: Mapping[str, Any], path: str, name: str, errs: list[FieldError]) -> None:
    for sub in schema.get("allOf") or []:
        if isinstance(sub, dict):
            validate_value(value, sub, path, errs)
    any_of = [s for s in schema.get("anyOf") or [] if isinstance(s, dict)]
    if any_of and not any(_passes(value, s, path) for s in any_of):
        errs.append(invalid_error(path, value, f"{name} in body must validate at least one schema (anyOf)"))
    one_of = [s for s in schema.get("oneOf") or [] if isinstance(s, dict)]
    if one_of and sum(1 for s in one_of if _passes(value, s, path)) != 1:
        errs.append(invalid_error(path, value, f"{name} in body must validate one and only one schema (oneOf)"))
    not_ = schema.get("not")
    if isinstance(not_, dict) and _passes(value, not_, path):
        errs.append(invalid_error(path, value, f"{name} in body must not validate the schema (not)"))


def _passes(value: Any, schema: Mapping[str, Any], path: str) -> bool:
    found: list[FieldError] = []
    validate_value(value, schema, path, found)
    return not found

