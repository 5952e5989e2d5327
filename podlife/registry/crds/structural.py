"""Structural schemas: whether a CRD's schema is one, and pruning and defaulting with it.

Design.  Kubernetes requires every CRD version's ``openAPIV3Schema`` to be
*structural* — every field typed, no ``$ref``, no ``additionalProperties`` beside
``properties``, ``metadata`` restricted to ``name``/``generateName``, valid
``default`` values — because the API server then uses that schema to shape stored
objects: :func:`validate_structural` checks it (with Kubernetes' field paths and
messages); :func:`prune` drops the fields a schema does not declare (unless
``x-kubernetes-preserve-unknown-fields``), and :func:`apply_defaults` fills
``default:`` values, top-down.  Value checks are :mod:`.value_validation`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ..types import FieldError
from .field_errors import (
    forbidden_error,
    invalid_error,
    not_supported_error,
    required_error,
)
from .value_validation import ROOT_FIELDS, compiled_pattern, validate_value

__all__ = ["SCHEMA_TYPES", "apply_defaults", "json_copy", "prune", "validate_structural"]

SCHEMA_TYPES = ("array", "boolean", "integer", "number", "object", "string")


def json_copy(value: Any) -> Any:
    """A deep copy of a JSON value (defaults and statuses are never shared)."""
    return orjson.loads(orjson.dumps(value))


def validate_structural(schema: Any, path: str, level: str = "root") -> list[FieldError]:
    """Is ``schema`` structural (every field typed, no ``$ref``, ...)? Errors like Kubernetes'."""
    if not isinstance(schema, dict):
        return [invalid_error(path, schema, "must be an object")]
    errs = _structural_type(schema, path, level)
    errs += _structural_keywords(schema, path, level)
    errs += _structural_children(schema, path, level)
    if "default" in schema:
        errs += _validate_default(schema, path, level)
    return errs


_LEVEL_DETAIL = {"root": "must not be empty at the root", "item": "must not be empty for specified array items",
                 "field": "must not be empty for specified object fields"}


def _structural_type(schema: Mapping[str, Any], path: str, level: str) -> list[FieldError]:
    stype = schema.get("type")
    preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
    int_or_string = schema.get("x-kubernetes-int-or-string") is True
    if schema.get("x-kubernetes-embedded-resource") is True and stype != "object":
        if not stype:
            return [required_error(f"{path}.type", "must be object if x-kubernetes-embedded-resource is true")]
        return [invalid_error(f"{path}.type", stype, "must be object if x-kubernetes-embedded-resource is true")]
    if not stype:
        return [] if int_or_string or preserve else [required_error(f"{path}.type", _LEVEL_DETAIL[level])]
    if stype not in SCHEMA_TYPES:
        return [not_supported_error(f"{path}.type", stype, SCHEMA_TYPES)]
    if level == "root" and stype != "object":
        return [invalid_error(f"{path}.type", stype, "must be object at the root")]
    return []


def _structural_keywords(schema: Mapping[str, Any], path: str, level: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if "$ref" in schema:
        errs.append(forbidden_error(f"{path}.$ref", "$ref is not supported"))
    if schema.get("uniqueItems") is True:
        errs.append(forbidden_error(f"{path}.uniqueItems",
                               "uniqueItems cannot be set to true since the runtime complexity becomes quadratic"))
    addl = schema.get("additionalProperties")
    if addl is not None and schema.get("properties") and (addl is False or isinstance(addl, dict)):
        errs.append(forbidden_error(f"{path}.additionalProperties",
                               "additionalProperties and properties are mutual exclusive"))
    if addl is not None and level == "root":
        errs.append(forbidden_error(f"{path}.additionalProperties", "must not be used at the root"))
    if schema.get("type") == "array" and not isinstance(schema.get("items"), dict):
        if isinstance(schema.get("items"), list):
            errs.append(forbidden_error(f"{path}.items", "items must be a schema object and not an array"))
        else:
            errs.append(required_error(f"{path}.items", "must be specified"))
    if schema.get("x-kubernetes-int-or-string") is True and schema.get("x-kubernetes-preserve-unknown-fields") is True:
        errs.append(invalid_error(f"{path}.x-kubernetes-preserve-unknown-fields", True,
                             "must be false if x-kubernetes-int-or-string is true"))
    pattern = schema.get("pattern")
    if isinstance(pattern, str) and compiled_pattern(pattern) is None:
        errs.append(invalid_error(f"{path}.pattern", pattern, "must be a valid regular expression, but isn't"))
    if level == "root":
        errs += _structural_root_metadata(schema, path)
    return errs


def _structural_root_metadata(schema: Mapping[str, Any], path: str) -> list[FieldError]:
    metadata = (schema.get("properties") or {}).get("metadata")
    if not isinstance(metadata, dict):
        return []
    extra = set(metadata) - {"type", "properties", "description"}
    props = set(metadata.get("properties") or {}) - {"name", "generateName"}
    if extra or props or metadata.get("type", "object") != "object":
        return [forbidden_error(f"{path}.properties[metadata]",
                           "must not specify anything other than name and generateName, but metadata is "
                           "implicitly specified")]
    return []


def _structural_children(schema: Mapping[str, Any], path: str, level: str) -> list[FieldError]:
    errs: list[FieldError] = []
    props = schema.get("properties")
    if isinstance(props, dict):
        for key, sub in props.items():
            if level == "root" and key == "metadata":
                continue  # checked by _structural_root_metadata
            errs += validate_structural(sub, f"{path}.properties[{key}]", "field")
    items = schema.get("items")
    if isinstance(items, dict):
        errs += validate_structural(items, f"{path}.items", "item")
    addl = schema.get("additionalProperties")
    if isinstance(addl, dict):
        errs += validate_structural(addl, f"{path}.additionalProperties", "field")
    for junctor in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(schema.get(junctor) or []):
            if isinstance(sub, dict) and "$ref" in sub:
                errs.append(forbidden_error(f"{path}.{junctor}[{i}].$ref", "$ref is not supported"))
    return errs


def _validate_default(schema: Mapping[str, Any], path: str, level: str) -> list[FieldError]:
    if level == "root":
        return [forbidden_error(f"{path}.default", "must not be set at the root")]
    value = json_copy(schema["default"])
    body = {k: v for k, v in schema.items() if k != "default"}
    problems: list[FieldError] = []
    validate_value(value, body, f"{path}.default", problems)
    return problems


# ---- pruning and defaulting ----------------------------------------------------------------


def prune(obj: Any, schema: Mapping[str, Any] | None, *, root: bool = True) -> None:
    """Drop, in place, every field ``schema`` does not specify (structural pruning).

    ``apiVersion``, ``kind`` and ``metadata`` are kept at the root and in embedded
    resources; ``x-kubernetes-preserve-unknown-fields`` keeps unknown fields at its
    level; values of the wrong type are left for validation to report.  ``null`` values
    of fields that are not ``nullable`` go too (so that defaults apply to them).
    """
    if schema is None:
        return
    if isinstance(obj, dict):
        _prune_object(obj, schema, root)
    elif isinstance(obj, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for item in obj:
                prune(item, items, root=False)


def _prune_object(obj: dict[str, Any], schema: Mapping[str, Any], root: bool) -> None:
    props = schema.get("properties") or {}
    addl = schema.get("additionalProperties")
    keep_unknown = schema.get("x-kubernetes-preserve-unknown-fields") is True or addl is True
    embedded = root or schema.get("x-kubernetes-embedded-resource") is True
    for key in list(obj):
        if embedded and key in ROOT_FIELDS:
            continue
        sub = props.get(key) if isinstance(props, dict) else None
        if sub is None and isinstance(addl, dict):
            sub = addl
        if sub is None:
            if not keep_unknown:
                del obj[key]
        elif obj[key] is None and sub.get("nullable") is not True:
            del obj[key]
        else:
            prune(obj[key], sub, root=False)


def apply_defaults(obj: Any, schema: Mapping[str, Any] | None) -> None:
    """Fill in ``default:`` values of absent fields, top-down, in place."""
    if schema is None:
        return
    if isinstance(obj, dict):
        props = schema.get("properties") or {}
        for key, sub in props.items():
            if key not in obj and isinstance(sub, dict) and "default" in sub:
                obj[key] = json_copy(sub["default"])
        addl = schema.get("additionalProperties")
        for key, value in obj.items():
            sub = props.get(key) if key in props else (addl if isinstance(addl, dict) else None)
            if isinstance(sub, dict):
                apply_defaults(value, sub)
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for item in obj:
            apply_defaults(item, schema["items"])

