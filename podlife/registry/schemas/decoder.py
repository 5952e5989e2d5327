"""The strict decoder: an object checked against its kind's compiled schema, as Go's decoder would.

Design.  Strict field validation (``fieldValidation=Strict``/``Warn``) must report
what Kubernetes' strict JSON decoder reports (``unknown field
"spec.containers[0].imagee"``, ``json: cannot unmarshal number into Go struct field
Container.spec.containers.image of type string``), and it runs on every create and
update, so :func:`validate_object` is a hand-written walker over the compiled tree
(:mod:`~podlife.registry.schemas.tree`) rather than a JSON-Schema validator.  It
avoids per-field allocations: the field path is a shared stack that is only
formatted when an issue is found.  :func:`duplicate_fields` re-reads a raw body for
duplicated keys (which parsed objects cannot show), and :func:`format_issues` renders
the Status message.

A kind's schema comes from the built-in definitions, or, for a custom kind, from the
API server's own :class:`~podlife.registry.schemas.custom.CustomSchemas` (the
``schemas`` argument); a kind found in neither has nothing to check.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from . import tree
from .custom import CustomSchemas
from .tree import (
    ANY,
    ARRAY,
    BOOLEAN,
    BYTES,
    DATETIME,
    INT_OR_STRING,
    INT_RANGES,
    INTEGER,
    MAP,
    NUMBER,
    OBJECT,
    QUANTITY,
    STRING,
    SchemaNode,
)

__all__ = ["FieldIssue", "duplicate_fields", "format_issues", "validate_object"]


@dataclass(frozen=True, slots=True)
class FieldIssue:
    """One problem found by :func:`validate_object`.

    ``kind`` is ``"unknown"`` (field not in the schema: strict validation rejects,
    warn mode reports), ``"duplicate"`` (a JSON key given twice, see
    :func:`duplicate_fields`), ``"type"`` (the Go decoder would fail: always an
    error) or ``"required"`` (a field the schema marks required is missing).
    ``field`` is the path as Kubernetes prints it (``spec.containers[0].image``) and
    ``message`` the text Kubernetes uses for this issue. ``location`` is, for an unknown
    field, the path as keys and indices (a map key as a 1-tuple), so that the field can
    be dropped as Kubernetes' decoder drops it.
    """

    kind: str
    field: str
    message: str
    location: tuple[Any, ...] = ()


_QUANTITY_RE = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
_QUANTITY_RE_TEXT = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
_RFC3339_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _format_path(path: list[Any], last: Any = None) -> str:
    parts: list[str] = []
    for seg in (path if last is None else [*path, last]):
        if type(seg) is int:
            parts.append(f"[{seg}]")
        else:
            key = seg[0] if type(seg) is tuple else seg
            parts.append(f".{key}" if parts else key)
    return "".join(parts)


def _go_field_path(path: list[Any]) -> str:
    """Struct-field path as Go decode errors print it: no indices, no map keys."""
    return ".".join(seg for seg in path if type(seg) is str)


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _type_issue(node: SchemaNode, value: Any, path: list[Any], owner: str) -> FieldIssue:
    field = _format_path(path)
    if node.crd:
        expected = {OBJECT: "object", MAP: "object", ARRAY: "array", STRING: "string",
                    BYTES: "string", DATETIME: "string", INTEGER: "integer", NUMBER: "number",
                    BOOLEAN: "boolean"}.get(node.code, "string")
        msg = (f'{field}: Invalid value: "{_json_kind(value)}": {field} in body must be of type '
               f'{expected}: "{_json_kind(value)}"')
        return FieldIssue("type", field, msg)
    jkind = _json_kind(value)
    if jkind == "number" and node.code == INTEGER:
        jkind = f"number {_go_number(value)}"
    gofield = _go_field_path(path)
    if gofield:
        where = f"Go struct field {owner}.{gofield}" if owner else f"Go struct field {gofield}"
    else:
        where = "Go value"
    msg = f"json: cannot unmarshal {jkind} into {where} of type {node.go_type or 'interface {}'}"
    return FieldIssue("type", field, msg)


def _go_number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return repr(value)
    return str(value)


def _check(node: SchemaNode, value: Any, path: list[Any], owner: str,
           out: list[FieldIssue], unknown: bool, required: bool) -> None:
    """Check a non-null ``value`` against ``node``; ``path`` is the location of value."""
    code = node.code
    if code == OBJECT:
        if type(value) is not dict:
            out.append(_type_issue(node, value, path, owner))
            return
        _check_object(node, value, path, out, unknown, required)
    elif code == ARRAY:
        if type(value) is not list:
            out.append(_type_issue(node, value, path, owner))
            return
        item = node.item
        if item is None or item.code == ANY:
            return
        for i, v in enumerate(value):
            if v is None:
                continue
            if not _scalar_ok(item, v):
                path.append(i)
                _check(item, v, path, owner, out, unknown, required)
                path.pop()
    elif code == MAP:
        if type(value) is not dict:
            out.append(_type_issue(node, value, path, owner))
            return
        val = node.value
        if val is None or val.code == ANY:
            return
        for k, v in value.items():
            if v is None:
                continue
            if not _scalar_ok(val, v):
                path.append((k,))
                _check(val, v, path, owner, out, unknown, required)
                path.pop()
    elif code == ANY:
        return
    elif not _scalar_ok(node, value):
        out.append(_scalar_issue(node, value, path, owner))


def _scalar_ok(node: SchemaNode, v: Any) -> bool:
    """Fast check for scalar codes; ``False`` for containers (checked separately)."""
    code = node.code
    t = type(v)
    if code == STRING:
        return t is str
    if code == INTEGER:
        if t is not int:
            return False
        lo, hi = node.int_range or INT_RANGES["int64"]
        return lo <= v <= hi
    if code == BOOLEAN:
        return t is bool
    if code == NUMBER:
        return t is int or t is float
    if code == INT_OR_STRING:
        return t is str or (t is int and -(2 ** 31) <= v < 2 ** 31)
    if code == QUANTITY:
        if t is str:
            return _QUANTITY_RE.match(v) is not None
        return t is int or t is float
    if code == DATETIME:
        return t is str and _RFC3339_RE.match(v) is not None
    if code == BYTES:
        if t is not str:
            return False
        try:
            base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError):
            return False
        return True
    return code == ANY


def _scalar_issue(node: SchemaNode, v: Any, path: list[Any], owner: str) -> FieldIssue:
    code = node.code
    field = _format_path(path)
    if code == QUANTITY:
        return FieldIssue("type", field,
                          f"quantities must match the regular expression '{_QUANTITY_RE_TEXT}'")
    if code == INT_OR_STRING:
        if type(v) is int:
            return FieldIssue("type", field,
                              f"json: cannot unmarshal number {v} into Go value of type int32")
        kind = _json_kind(v)
        if kind == "number":
            kind = f"number {_go_number(v)}"
        return FieldIssue("type", field, f"json: cannot unmarshal {kind} into Go value of type int32")
    if code == DATETIME and type(v) is str:
        return FieldIssue("type", field,
                          f'parsing time "{v}" as "2006-01-02T15:04:05Z07:00": cannot parse '
                          f'"{v}" as "2006"')
    if code == BYTES and type(v) is str:
        return FieldIssue("type", field, f"illegal base64 data at input byte {_bad_b64_offset(v)}")
    return _type_issue(node, v, path, owner)


def _bad_b64_offset(text: str) -> int:
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
    for i, ch in enumerate(text):
        if ch not in alphabet:
            return i
    return len(text)


def _check_object(node: SchemaNode, obj: dict[str, Any], path: list[Any],
                  out: list[FieldIssue], unknown: bool, required: bool) -> None:
    props = node.props
    owner = node.name
    for k, v in obj.items():
        child = props.get(k)
        if child is None:
            if unknown and not node.open:
                field = _format_path(path, k)
                out.append(FieldIssue("unknown", field, f'unknown field "{field}"', (*path, k)))
            continue
        if v is None:
            continue
        if child.code >= STRING:
            if not _scalar_ok(child, v):
                path.append(k)
                out.append(_scalar_issue(child, v, path, owner))
                path.pop()
            continue
        path.append(k)
        _check(child, v, path, owner, out, unknown, required)
        path.pop()
    if required and node.required:
        for r in node.required:
            if r not in obj:
                field = _format_path(path, r)
                out.append(FieldIssue("required", field, f"{field}: Required value"))


def validate_object(obj: Mapping[str, Any], group: str, version: str, kind: str, *,
                    schemas: CustomSchemas | None = None, unknown_fields: bool = True,
                    required: bool = True) -> list[FieldIssue]:
    """Check ``obj`` against the schema of ``group/version kind``.

    ``schemas`` are the custom kinds of the API server at hand (without it only
    built-in kinds are known).  Returns the issues in document order; an unknown kind
    returns ``[]`` (nothing to check).  ``unknown_fields=False`` skips unknown-field
    detection (``fieldValidation=Ignore``); ``required=False`` skips required-field
    checks.  Type issues are errors in every mode (the Go decoder cannot represent them).
    """
    node = schemas.compiled(group, version, kind) if schemas is not None else tree.compiled(group, version, kind)
    if node is None:
        return []
    out: list[FieldIssue] = []
    if type(obj) is not dict:
        out.append(_type_issue(node, obj, [], ""))
        return out
    _check_object(node, obj, [], out, unknown_fields, required)
    return out


def format_issues(issues: Iterable[FieldIssue], kind: str, version: str) -> str:
    """The Status message Kubernetes returns for strict-decoding failures.

    ``Pod in version "v1" cannot be handled as a Pod: strict decoding error:
    unknown field "spec.foo", unknown field "spec.bar"``; a type issue takes
    precedence, as the Go decoder stops at the first one.
    """
    issues = list(issues)
    prefix = f'{kind} in version "{version}" cannot be handled as a {kind}: '
    for issue in issues:
        if issue.kind == "type":
            return prefix + issue.message
    strict = [i.message for i in issues if i.kind in ("unknown", "duplicate")]
    if strict:
        return prefix + "strict decoding error: " + ", ".join(strict)
    return prefix + ", ".join(i.message for i in issues)


def duplicate_fields(raw: bytes | str) -> list[FieldIssue]:
    """Duplicate JSON keys in a request body, which strict validation rejects.

    Parsed objects cannot show duplicates, so this re-reads the raw body; call it
    only when ``fieldValidation`` is Strict or Warn.  Uses the stdlib parser's
    ``object_pairs_hook``, so it costs a few µs per KB.
    """
    import json

    found: list[FieldIssue] = []

    def walk(value: Any, path: list[Any]) -> None:
        if isinstance(value, _Pairs):
            seen: set[str] = set()
            for k, v in value.pairs:
                if k in seen:
                    field = _format_path(path, k)
                    found.append(FieldIssue("duplicate", field, f'duplicate field "{field}"'))
                seen.add(k)
                path.append(k)
                walk(v, path)
                path.pop()
        elif isinstance(value, list):
            for i, v in enumerate(value):
                path.append(i)
                walk(v, path)
                path.pop()

    try:
        doc = json.loads(raw, object_pairs_hook=_Pairs)
    except ValueError:
        return []
    walk(doc, [])
    return found


class _Pairs:
    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        self.pairs = pairs
