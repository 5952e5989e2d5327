"""CustomResourceDefinitions: the rules of the CRD kind and of the kinds CRDs define.

Design
------
Everything here is pure (no I/O, no API-layer imports), in three parts:

1. **The CRD kind** (``apiextensions.k8s.io/v1``): :class:`CRDStrategy` defaults a
   CRD (singular, listKind, conversion), validates it the way apiextensions-apiserver
   does (name ``<plural>.<group>``, scope, exactly one storage version, DNS-1035 names,
   a *structural* ``openAPIV3Schema`` for every version, printer columns, scale paths,
   immutable group/plural) and keeps ``status.storedVersions``.
2. **Structural schemas at work**: :func:`prune` drops fields a schema does not
   declare (unless ``x-kubernetes-preserve-unknown-fields``), :func:`apply_defaults`
   fills ``default:`` values, :func:`validate_value` checks types and the basic value
   keywords (enum, minimum/maximum, pattern, lengths, item and property counts,
   required, formats, allOf/anyOf/oneOf/not). Messages and field paths follow
   kube-openapi as converted by apiextensions-apiserver, e.g. ``spec.replicas:
   Invalid value: "string": spec.replicas in body must be of type integer: "string"``.
3. **The custom kinds**: :func:`resource_types` turns a CRD into one
   :class:`CustomResourceType` per served version. All versions share one key prefix
   (group + plural): conversion is "None", so an object is stored once and each
   version serves it with its own ``apiVersion``. Each version carries a
   :class:`CustomResourceStrategy` built from its schema and subresources, so the
   generic REST layer needs nothing CRD-specific.

Why pure: the component that serves CRDs (:mod:`podlife.api.crds`) and the tests both
use these rules, and keeping them free of the API layer keeps the REST layer generic,
exactly as Kubernetes keeps the CRD's strategy apart from its handler.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from .types import FieldError, Obj, ResourceType, Strategy
from .validation import dns1123_subdomain_errors

GROUP = "apiextensions.k8s.io"
VERSION = "v1"
KIND = "CustomResourceDefinition"
PLURAL = "customresourcedefinitions"
CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
APPROVAL_ANNOTATION = "api-approved.kubernetes.io"

PRINTER_COLUMN_TYPES = ("boolean", "date", "integer", "number", "string")
PRINTER_COLUMN_FORMATS = ("byte", "date", "date-time", "double", "float", "int32", "int64", "password")
SCHEMA_TYPES = ("array", "boolean", "integer", "number", "object", "string")


# ---------------------------------------------------------------------------
# Field errors rendered as Go's field.Error
# ---------------------------------------------------------------------------


class SchemaFieldError(FieldError):
    """A :class:`FieldError` whose message renders values and types as Go does.

    Adds ``FieldValueTooMany`` (``Too many: 3: must have at most 2 items``) and prints
    ``true``/``null``/``1.5`` the way apimachinery's ``field.Error`` prints them.
    """

    __slots__ = ()

    _HEADS = {
        "FieldValueRequired": "Required value",
        "FieldValueForbidden": "Forbidden",
        "FieldValueTooLong": "Too long",
        "FieldValueTooMany": "Too many",
        "FieldValueNotSupported": "Unsupported value",
        "FieldValueDuplicate": "Duplicate value",
        "FieldValueTypeInvalid": "Invalid value",
        "FieldValueInvalid": "Invalid value",
    }
    _NO_VALUE = ("FieldValueRequired", "FieldValueForbidden", "FieldValueTooLong")

    @property
    def message(self) -> str:
        head = self._HEADS.get(self.type, "Invalid value")
        body = head if self.type in self._NO_VALUE else f"{head}: {go_value(self.value)}"
        return f"{body}: {self.detail}" if self.detail else body


def go_value(value: Any) -> str:
    """A JSON value as Go's ``%v``/``%q`` prints it in field errors."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return orjson.dumps(value).decode()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_number(value)
    return orjson.dumps(value).decode()


def go_number(value: float | int) -> str:
    """A number as Go's ``%v`` prints a float64 (``1``, ``1.5``, ``1e+21``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return repr(value)


def _required(path: str, detail: str = "") -> FieldError:
    return SchemaFieldError("FieldValueRequired", path, detail)


def _invalid(path: str, value: Any, detail: str) -> FieldError:
    return SchemaFieldError("FieldValueInvalid", path, detail, value)


def _type_invalid(path: str, value: Any, detail: str) -> FieldError:
    return SchemaFieldError("FieldValueTypeInvalid", path, detail, value)


def _not_supported(path: str, value: Any, allowed: Iterable[str]) -> FieldError:
    quoted = ", ".join(orjson.dumps(a).decode() for a in allowed)
    return SchemaFieldError("FieldValueNotSupported", path, f"supported values: {quoted}", value)


def _forbidden(path: str, detail: str) -> FieldError:
    return SchemaFieldError("FieldValueForbidden", path, detail)


def _too_long(path: str, limit: int) -> FieldError:
    return SchemaFieldError("FieldValueTooLong", path, f"may not be longer than {limit}")


def _too_many(path: str, actual: int, limit: int) -> FieldError:
    return SchemaFieldError("FieldValueTooMany", path, f"must have at most {limit} items", actual)


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


# ---------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------

_DNS1035_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_RE = re.compile(f"^{_DNS1035_FMT}$")
_DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
    f"regex used for validation is '{_DNS1035_FMT}')"
)


def dns1035_label_errors(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not _DNS1035_RE.match(value):
        errs.append(_DNS1035_MSG)
    return errs


_KUBE_VERSION_RE = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(name: str) -> tuple[int, int, int, str]:
    """Sort key putting versions in Kubernetes' discovery order (v2, v1, v1beta1, v1alpha1, foo)."""
    m = _KUBE_VERSION_RE.match(name)
    if m is None:
        return (3, 0, 0, name)
    stage = {None: 0, "beta": 1, "alpha": 2}[m.group(2)]
    return (stage, -int(m.group(1)), -int(m.group(3) or 0), name)


# ---------------------------------------------------------------------------
# The CRD kind
# ---------------------------------------------------------------------------


def crd_resource_type() -> ResourceType:
    """The ``customresourcedefinitions`` resource itself (cluster-scoped, ``crd``/``crds``)."""
    return ResourceType(GROUP, VERSION, KIND, PLURAL, False, CRDStrategy(), short_names=("crd", "crds"),
                        categories=("api-extensions",), subresources=("status",))


def _spec(crd: Mapping[str, Any]) -> dict[str, Any]:
    spec = crd.get("spec")
    return spec if isinstance(spec, dict) else {}


def _names(spec: Mapping[str, Any]) -> dict[str, Any]:
    names = spec.get("names")
    return names if isinstance(names, dict) else {}


def _versions(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    versions = spec.get("versions")
    return [v for v in versions if isinstance(v, dict)] if isinstance(versions, list) else []


def storage_version(crd: Mapping[str, Any]) -> str | None:
    for v in _versions(_spec(crd)):
        if v.get("storage") is True:
            return v.get("name")
    return None


def version_schema(version: Mapping[str, Any]) -> dict[str, Any] | None:
    holder = version.get("schema")
    schema = holder.get("openAPIV3Schema") if isinstance(holder, dict) else None
    return schema if isinstance(schema, dict) else None


def condition(crd: Mapping[str, Any], type_: str) -> dict[str, Any] | None:
    for cond in (crd.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == type_:
            return cond
    return None


def is_condition_true(crd: Mapping[str, Any], type_: str) -> bool:
    cond = condition(crd, type_)
    return cond is not None and cond.get("status") == "True"


def status_dict(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj["status"]``, made an empty object when missing or malformed."""
    status = obj.get("status")
    if not isinstance(status, dict):
        status = obj["status"] = {}
    return status


def set_condition(status: dict[str, Any], type_: str, value: str, reason: str, message: str, now: str) -> None:
    """Set one condition in ``status``; ``lastTransitionTime`` moves only when ``status`` changes."""
    conditions = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
    for i, cond in enumerate(conditions):
        if cond.get("type") == type_:
            moved = cond.get("status") != value
            stamp = now if moved or not cond.get("lastTransitionTime") else cond["lastTransitionTime"]
            conditions[i] = {"type": type_, "status": value, "lastTransitionTime": stamp,
                             "reason": reason, "message": message}
            break
    else:
        conditions.append({"type": type_, "status": value, "lastTransitionTime": now,
                           "reason": reason, "message": message})
    status["conditions"] = conditions


def names_of(crd: Mapping[str, Any]) -> dict[str, Any]:
    """The names a CRD asks for, as ``status.acceptedNames`` shows them once accepted."""
    names = _names(_spec(crd))
    out: dict[str, Any] = {"plural": names.get("plural", ""), "singular": names.get("singular", ""),
                           "kind": names.get("kind", ""), "listKind": names.get("listKind", "")}
    if names.get("shortNames"):
        out["shortNames"] = list(names["shortNames"])
    if names.get("categories"):
        out["categories"] = list(names["categories"])
    return out


def _copy(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value))


class CRDStrategy(Strategy):
    """Create/update/status rules of CustomResourceDefinition, after apiextensions-apiserver."""

    has_status = True
    tracks_generation = True

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"acceptedNames": {"plural": "", "kind": ""}, "storedVersions": []}
        _record_storage_version(obj)

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        names = spec.get("names")
        if isinstance(names, dict) and isinstance(names.get("kind"), str) and names["kind"]:
            names.setdefault("singular", names["kind"].lower())
            names.setdefault("listKind", names["kind"] + "List")
        if not isinstance(spec.get("conversion"), dict):
            spec["conversion"] = {"strategy": "None"}

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_crd(obj)

    def prepare_for_delete(self, obj: Obj, now: str) -> None:
        """The first DELETE: the cleanup finalizer holds the CRD until its custom resources are gone."""
        meta = obj["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if CLEANUP_FINALIZER not in finalizers:
            meta["finalizers"] = [*finalizers, CLEANUP_FINALIZER]
        set_condition(status_dict(obj), "Terminating", "True", "InstanceDeletionPending",
                      "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon", now)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        new["status"] = _copy(old.get("status") or {})  # never share the cached status
        _record_storage_version(new)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_crd(new) + validate_crd_update(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        accepted = (new.get("status") or {}).get("acceptedNames") or {}
        return _validate_names(accepted, "status.acceptedNames") if isinstance(accepted, dict) else []


def _record_storage_version(crd: Obj) -> None:
    """``status.storedVersions`` gains the storage version (Kubernetes does this on every write)."""
    stored = storage_version(crd)
    status = crd.setdefault("status", {})
    versions = status.get("storedVersions")
    if not isinstance(versions, list):
        versions = status["storedVersions"] = []
    if stored and stored not in versions:
        versions.append(stored)


# ---- CRD validation ---------------------------------------------------------------------


def validate_crd(crd: Mapping[str, Any]) -> list[FieldError]:
    """Static validation of a CRD (apiextensions' ValidateCustomResourceDefinition, v1 rules)."""
    spec = _spec(crd)
    errs = _validate_crd_name(crd, spec)
    errs += _validate_group(spec, crd)
    errs += _validate_scope(spec)
    errs += _validate_versions(spec)
    errs += _validate_spec_names(spec)
    errs += _validate_conversion(spec)
    if spec.get("preserveUnknownFields") is True:
        errs.append(_invalid("spec.preserveUnknownFields", True, "must be false"))
    return errs


def _validate_crd_name(crd: Mapping[str, Any], spec: Mapping[str, Any]) -> list[FieldError]:
    name = (crd.get("metadata") or {}).get("name") or ""
    names = _names(spec)
    if name and name != f"{names.get('plural', '')}.{spec.get('group', '')}":
        return [_invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group')]
    return []


def _validate_group(spec: Mapping[str, Any], crd: Mapping[str, Any]) -> list[FieldError]:
    group = spec.get("group")
    if not group:
        return [_required("spec.group")]
    if not isinstance(group, str):
        return [_invalid("spec.group", group, "must be a string")]
    errs = dns1123_subdomain_errors(group)
    if errs:
        return [_invalid("spec.group", group, ",".join(errs))]
    if "." not in group:
        return [_invalid("spec.group", group, "should be a domain with at least one dot")]
    return _validate_approval(group, crd)


def _validate_approval(group: str, crd: Mapping[str, Any]) -> list[FieldError]:
    """Groups under k8s.io / kubernetes.io need the API-review approval annotation."""
    protected = group in ("k8s.io", "kubernetes.io") or group.endswith((".k8s.io", ".kubernetes.io"))
    annotations = (crd.get("metadata") or {}).get("annotations") or {}
    if protected and not annotations.get(APPROVAL_ANNOTATION):
        return [_required(f"metadata.annotations[{APPROVAL_ANNOTATION}]",
                          f'protected groups must have approval annotation "{APPROVAL_ANNOTATION}", '
                          "see https://github.com/kubernetes/enhancements/pull/1111")]
    return []


def _validate_scope(spec: Mapping[str, Any]) -> list[FieldError]:
    scope = spec.get("scope")
    if not scope:
        return [_required("spec.scope")]
    if scope not in ("Cluster", "Namespaced"):
        return [_not_supported("spec.scope", scope, ["Cluster", "Namespaced"])]
    return []


def _validate_versions(spec: Mapping[str, Any]) -> list[FieldError]:
    versions = _versions(spec)
    errs: list[FieldError] = []
    seen: set[str] = set()
    unique = True
    for i, version in enumerate(versions):
        name = version.get("name")
        if isinstance(name, str) and name in seen:
            unique = False
        seen.add(str(name))
        errs += _validate_version(version, f"spec.versions[{i}]")
    shown = [v.get("name") for v in versions]
    if not unique:
        errs.append(_invalid("spec.versions", shown, "must contain unique version names"))
    if sum(1 for v in versions if v.get("storage") is True) != 1:
        errs.append(_invalid("spec.versions", shown, "must have exactly one version marked as storage version"))
    return errs


def _validate_version(version: Mapping[str, Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    name = version.get("name")
    if not name:
        errs.append(_required(f"{path}.name"))
    elif not isinstance(name, str) or dns1035_label_errors(name):
        errs.append(_invalid(f"{path}.name", name, ",".join(dns1035_label_errors(str(name)))))
    for flag in ("served", "storage"):
        if not isinstance(version.get(flag, False), bool):
            errs.append(_invalid(f"{path}.{flag}", version.get(flag), "must be a boolean"))
    schema = version_schema(version)
    schema_path = f"{path}.schema.openAPIV3Schema"
    if schema is None:
        errs.append(_required(schema_path, "schemas are required"))
    else:
        errs += validate_structural(schema, schema_path)
    errs += _validate_printer_columns(version.get("additionalPrinterColumns"), f"{path}.additionalPrinterColumns")
    errs += _validate_subresources(version.get("subresources"), f"{path}.subresources")
    errs += _validate_selectable_fields(version.get("selectableFields"), f"{path}.selectableFields")
    return errs


def _validate_printer_columns(columns: Any, path: str) -> list[FieldError]:
    if columns is None:
        return []
    if not isinstance(columns, list):
        return [_invalid(path, columns, "must be a list")]
    errs: list[FieldError] = []
    for i, col in enumerate(columns):
        here = f"{path}[{i}]"
        if not isinstance(col, dict):
            errs.append(_invalid(here, col, "must be an object"))
            continue
        if not col.get("name"):
            errs.append(_required(f"{here}.name"))
        ctype = col.get("type")
        if not ctype:
            errs.append(_required(f"{here}.type"))
        elif ctype not in PRINTER_COLUMN_TYPES:
            errs.append(_not_supported(f"{here}.type", ctype, PRINTER_COLUMN_TYPES))
        fmt = col.get("format")
        if fmt and fmt not in PRINTER_COLUMN_FORMATS:
            errs.append(_not_supported(f"{here}.format", fmt, PRINTER_COLUMN_FORMATS))
        if not col.get("jsonPath"):
            errs.append(_required(f"{here}.jsonPath"))
        elif not _simple_json_path(col["jsonPath"], allow_any=True):
            errs.append(_invalid(f"{here}.jsonPath", col["jsonPath"], "must be a simple json path"))
    return errs


_SIMPLE_PATH_RE = re.compile(r"^(\.[A-Za-z0-9_-]+)+$")


def _simple_json_path(path: Any, allow_any: bool = False) -> bool:
    if not isinstance(path, str) or not path.startswith("."):
        return False
    return allow_any or _SIMPLE_PATH_RE.match(path) is not None


def _validate_subresources(subs: Any, path: str) -> list[FieldError]:
    if subs is None:
        return []
    if not isinstance(subs, dict):
        return [_invalid(path, subs, "must be an object")]
    scale = subs.get("scale")
    if scale is None:
        return []
    if not isinstance(scale, dict):
        return [_invalid(f"{path}.scale", scale, "must be an object")]
    errs: list[FieldError] = []
    errs += _scale_path(scale, "specReplicasPath", f"{path}.scale", (".spec.",), required=True)
    errs += _scale_path(scale, "statusReplicasPath", f"{path}.scale", (".status.",), required=True)
    errs += _scale_path(scale, "labelSelectorPath", f"{path}.scale", (".spec.", ".status."), required=False)
    return errs


def _scale_path(scale: Mapping[str, Any], key: str, path: str, under: tuple[str, ...],
                required: bool) -> list[FieldError]:
    value = scale.get(key)
    if not value:
        return [_required(f"{path}.{key}")] if required else []
    if not _simple_json_path(value):
        return [_invalid(f"{path}.{key}", value, "must be a simple json path")]
    if not value.startswith(under):
        where = " or ".join(u.rstrip(".") for u in under)
        return [_invalid(f"{path}.{key}", value, f"should be a json path under {where}")]
    return []


def _validate_selectable_fields(fields: Any, path: str) -> list[FieldError]:
    if fields is None:
        return []
    if not isinstance(fields, list):
        return [_invalid(path, fields, "must be a list")]
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, f in enumerate(fields):
        json_path = f.get("jsonPath") if isinstance(f, dict) else None
        here = f"{path}[{i}].jsonPath"
        if not json_path:
            errs.append(_required(here))
        elif not _simple_json_path(json_path):
            errs.append(_invalid(here, json_path, "must be a simple json path"))
        elif json_path in seen:
            errs.append(SchemaFieldError("FieldValueDuplicate", here, "", json_path))
        seen.add(str(json_path))
    return errs


def _validate_spec_names(spec: Mapping[str, Any]) -> list[FieldError]:
    names = _names(spec)
    errs = [_required(f"spec.names.{key}") for key in ("plural", "singular", "kind", "listKind") if not names.get(key)]
    return errs + _validate_names(names, "spec.names")


def _validate_names(names: Mapping[str, Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for key in ("plural", "singular"):
        value = names.get(key)
        if value and (not isinstance(value, str) or dns1035_label_errors(value)):
            errs.append(_invalid(f"{path}.{key}", value, ",".join(dns1035_label_errors(str(value)))))
    for key in ("kind", "listKind"):
        value = names.get(key)
        if value and (not isinstance(value, str) or dns1035_label_errors(value.lower())):
            problems = ",".join(dns1035_label_errors(str(value).lower()))
            detail = "may have mixed case, but should otherwise match: " + problems
            errs.append(_invalid(f"{path}.{key}", value, detail))
    for key in ("shortNames", "categories"):
        for i, value in enumerate(names.get(key) or []):
            if not isinstance(value, str) or dns1035_label_errors(value):
                errs.append(_invalid(f"{path}.{key}[{i}]", value, ",".join(dns1035_label_errors(str(value)))))
    if names.get("kind") and names.get("kind") == names.get("listKind"):
        errs.append(_invalid(f"{path}.listKind", names["listKind"], "kind and listKind may not be the same"))
    return errs


def _validate_conversion(spec: Mapping[str, Any]) -> list[FieldError]:
    conversion = spec.get("conversion")
    if not isinstance(conversion, dict):
        return []
    strategy = conversion.get("strategy")
    if strategy not in ("None", "Webhook"):
        return [_not_supported("spec.conversion.strategy", strategy, ["None", "Webhook"])]
    return []


def validate_crd_update(new: Mapping[str, Any], old: Mapping[str, Any]) -> list[FieldError]:
    """Immutable fields, and stored versions that must stay in ``spec.versions``."""
    spec, old_spec = _spec(new), _spec(old)
    checks = [("spec.group", spec.get("group"), old_spec.get("group")),
              ("spec.names.plural", _names(spec).get("plural"), _names(old_spec).get("plural"))]
    if is_condition_true(old, "Established"):
        checks += [("spec.scope", spec.get("scope"), old_spec.get("scope")),
                   ("spec.names.kind", _names(spec).get("kind"), _names(old_spec).get("kind"))]
    errs = [_invalid(path, value, "field is immutable") for path, value, was in checks if value != was]
    names = {v.get("name") for v in _versions(spec)}
    for i, stored in enumerate((new.get("status") or {}).get("storedVersions") or []):
        if stored not in names:
            errs.append(_invalid(f"status.storedVersions[{i}]", stored, "must appear in spec.versions"))
    return errs


# ---- structural schemas --------------------------------------------------------------------


def validate_structural(schema: Any, path: str, level: str = "root") -> list[FieldError]:
    """Is ``schema`` structural (every field typed, no ``$ref``, ...)? Errors like Kubernetes'."""
    if not isinstance(schema, dict):
        return [_invalid(path, schema, "must be an object")]
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
            return [_required(f"{path}.type", "must be object if x-kubernetes-embedded-resource is true")]
        return [_invalid(f"{path}.type", stype, "must be object if x-kubernetes-embedded-resource is true")]
    if not stype:
        return [] if int_or_string or preserve else [_required(f"{path}.type", _LEVEL_DETAIL[level])]
    if stype not in SCHEMA_TYPES:
        return [_not_supported(f"{path}.type", stype, SCHEMA_TYPES)]
    if level == "root" and stype != "object":
        return [_invalid(f"{path}.type", stype, "must be object at the root")]
    return []


def _structural_keywords(schema: Mapping[str, Any], path: str, level: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if "$ref" in schema:
        errs.append(_forbidden(f"{path}.$ref", "$ref is not supported"))
    if schema.get("uniqueItems") is True:
        errs.append(_forbidden(f"{path}.uniqueItems",
                               "uniqueItems cannot be set to true since the runtime complexity becomes quadratic"))
    addl = schema.get("additionalProperties")
    if addl is not None and schema.get("properties") and (addl is False or isinstance(addl, dict)):
        errs.append(_forbidden(f"{path}.additionalProperties",
                               "additionalProperties and properties are mutual exclusive"))
    if addl is not None and level == "root":
        errs.append(_forbidden(f"{path}.additionalProperties", "must not be used at the root"))
    if schema.get("type") == "array" and not isinstance(schema.get("items"), dict):
        if isinstance(schema.get("items"), list):
            errs.append(_forbidden(f"{path}.items", "items must be a schema object and not an array"))
        else:
            errs.append(_required(f"{path}.items", "must be specified"))
    if schema.get("x-kubernetes-int-or-string") is True and schema.get("x-kubernetes-preserve-unknown-fields") is True:
        errs.append(_invalid(f"{path}.x-kubernetes-preserve-unknown-fields", True,
                             "must be false if x-kubernetes-int-or-string is true"))
    pattern = schema.get("pattern")
    if isinstance(pattern, str) and _compile(pattern) is None:
        errs.append(_invalid(f"{path}.pattern", pattern, "must be a valid regular expression, but isn't"))
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
        return [_forbidden(f"{path}.properties[metadata]",
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
                errs.append(_forbidden(f"{path}.{junctor}[{i}].$ref", "$ref is not supported"))
    return errs


def _validate_default(schema: Mapping[str, Any], path: str, level: str) -> list[FieldError]:
    if level == "root":
        return [_forbidden(f"{path}.default", "must not be set at the root")]
    value = _copy(schema["default"])
    body = {k: v for k, v in schema.items() if k != "default"}
    problems: list[FieldError] = []
    validate_value(value, body, f"{path}.default", problems)
    return problems


# ---------------------------------------------------------------------------
# Structural schemas at work: pruning, defaulting, validation
# ---------------------------------------------------------------------------

_ROOT_KEPT = ("apiVersion", "kind", "metadata")


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
        if embedded and key in _ROOT_KEPT:
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
                obj[key] = _copy(sub["default"])
        addl = schema.get("additionalProperties")
        for key, value in obj.items():
            sub = props.get(key) if key in props else (addl if isinstance(addl, dict) else None)
            if isinstance(sub, dict):
                apply_defaults(value, sub)
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for item in obj:
            apply_defaults(item, schema["items"])


def validate_custom_resource(obj: Mapping[str, Any], schema: Mapping[str, Any] | None) -> list[FieldError]:
    """Schema errors of a custom resource (``apiVersion``/``kind``/``metadata`` are not checked here)."""
    if schema is None:
        return []
    body = {k: v for k, v in obj.items() if k not in _ROOT_KEPT}
    root = dict(schema)
    root["properties"] = {k: v for k, v in (schema.get("properties") or {}).items() if k not in _ROOT_KEPT}
    root["required"] = [r for r in schema.get("required") or [] if r not in _ROOT_KEPT]
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
        errs.append(_type_invalid(path, actual, f'{name} in body must be of type {expected}: "{actual}"'))
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
        errs.append(_not_supported(path, value, allowed))


def _check_number(value: float | int, schema: Mapping[str, Any], path: str, name: str, errs: list[FieldError]) -> None:
    maximum, minimum = schema.get("maximum"), schema.get("minimum")
    if isinstance(maximum, (int, float)):
        exclusive = schema.get("exclusiveMaximum") is True
        if value > maximum or (exclusive and value == maximum):
            word = "less than" if exclusive else "less than or equal to"
            errs.append(_invalid(path, value, f"{name} in body should be {word} {go_number(maximum)}"))
    if isinstance(minimum, (int, float)):
        exclusive = schema.get("exclusiveMinimum") is True
        if value < minimum or (exclusive and value == minimum):
            word = "greater than" if exclusive else "greater than or equal to"
            errs.append(_invalid(path, value, f"{name} in body should be {word} {go_number(minimum)}"))
    multiple = schema.get("multipleOf")
    if isinstance(multiple, (int, float)) and multiple > 0 and not _is_multiple(value, multiple):
        errs.append(_invalid(path, value, f"{name} in body should be a multiple of {go_number(multiple)}"))


def _is_multiple(value: float | int, multiple: float | int) -> bool:
    quotient = value / multiple
    return abs(quotient - round(quotient)) < 1e-9


def _check_string(value: str, schema: Mapping[str, Any], path: str, name: str, errs: list[FieldError]) -> None:
    max_length, min_length = schema.get("maxLength"), schema.get("minLength")
    if isinstance(max_length, int) and len(value) > max_length:
        errs.append(_too_long(path, max_length))
    if isinstance(min_length, int) and len(value) < min_length:
        errs.append(_invalid(path, value, f"{name} in body should be at least {min_length} chars long"))
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        compiled = _compile(pattern)
        if compiled is not None and compiled.search(value) is None:
            errs.append(_invalid(path, value, f"{name} in body should match '{pattern}'"))
    fmt = schema.get("format")
    check = _STRING_FORMATS.get(fmt or "")
    if check is not None and not check(value):
        errs.append(_type_invalid(path, value, f'{name} in body must be of type {fmt}: "{value}"'))


_PATTERNS: dict[str, re.Pattern[str] | None] = {}


def _compile(pattern: str) -> re.Pattern[str] | None:
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
        errs.append(_too_many(path, len(value), max_items))
    if isinstance(min_items, int) and len(value) < min_items:
        errs.append(_invalid(path, len(value), f"{name} in body should have at least {min_items} items"))
    items = schema.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(value):
            validate_value(item, items, f"{path}[{i}]", errs)


def _check_object(value: dict[str, Any], schema: Mapping[str, Any], path: str, name: str,
                  errs: list[FieldError]) -> None:
    for key in schema.get("required") or []:
        if key not in value:
            errs.append(_required(_child(path, key)))
    max_props, min_props = schema.get("maxProperties"), schema.get("minProperties")
    if isinstance(max_props, int) and len(value) > max_props:
        errs.append(_too_many(path, len(value), max_props))
    if isinstance(min_props, int) and len(value) < min_props:
        errs.append(_invalid(path, len(value), f"{name} in body should have at least {min_props} properties"))
    props = schema.get("properties") or {}
    addl = schema.get("additionalProperties")
    for key, sub_value in value.items():
        sub = props.get(key) if key in props else (addl if isinstance(addl, dict) else None)
        if isinstance(sub, dict):
            validate_value(sub_value, sub, _child(path, key), errs)


def _check_junctors(value: Any, schema: Mapping[str, Any], path: str, name: str, errs: list[FieldError]) -> None:
    for sub in schema.get("allOf") or []:
        if isinstance(sub, dict):
            validate_value(value, sub, path, errs)
    any_of = [s for s in schema.get("anyOf") or [] if isinstance(s, dict)]
    if any_of and not any(_passes(value, s, path) for s in any_of):
        errs.append(_invalid(path, value, f"{name} in body must validate at least one schema (anyOf)"))
    one_of = [s for s in schema.get("oneOf") or [] if isinstance(s, dict)]
    if one_of and sum(1 for s in one_of if _passes(value, s, path)) != 1:
        errs.append(_invalid(path, value, f"{name} in body must validate one and only one schema (oneOf)"))
    not_ = schema.get("not")
    if isinstance(not_, dict) and _passes(value, not_, path):
        errs.append(_invalid(path, value, f"{name} in body must not validate the schema (not)"))


def _passes(value: Any, schema: Mapping[str, Any], path: str) -> bool:
    found: list[FieldError] = []
    validate_value(value, schema, path, found)
    return not found


# ---------------------------------------------------------------------------
# The custom kinds
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomResourceType(ResourceType):
    """A served version of a CRD: a ResourceType that knows its CRD and its scale paths."""

    crd_name: str = ""
    list_kind_name: str = ""
    #: the version's ``subresources.scale`` (specReplicasPath, statusReplicasPath, labelSelectorPath)
    scale: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)

    @property
    def list_kind(self) -> str:
        return self.list_kind_name or self.kind + "List"


class CustomResourceStrategy(Strategy):
    """A CRD version's rules: prune, default and validate against its structural schema.

    With a ``status`` subresource, the main resource ignores ``status`` and ``/status``
    changes nothing else; ``metadata.generation`` moves on any change outside metadata
    (and status, when it is a subresource), as for Kubernetes' custom resources.
    """

    tracks_generation = True

    def __init__(self, schema: Mapping[str, Any] | None, *, status: bool) -> None:
        self.schema = schema
        self.has_status = status

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        prune(obj, self.schema)

    def default(self, obj: Obj) -> None:
        apply_defaults(obj, self.schema)

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_custom_resource(obj, self.schema)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        prune(new, self.schema)
        if self.has_status:
            if "status" in old:
                new["status"] = _copy(old["status"])  # a private copy: defaulting may write into it
            else:
                new.pop("status", None)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        merged = _copy(old)
        if "status" in new:
            merged["status"] = new["status"]
        else:
            merged.pop("status", None)
        prune(merged, self.schema)
        apply_defaults(merged, self.schema)
        return merged

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_custom_resource(new, self.schema)

    def spec_changed(self, new: Obj, old: Obj) -> bool:
        skipped = ("metadata", "status") if self.has_status else ("metadata",)
        keys = (set(new) | set(old)) - set(skipped) - {"apiVersion"}
        return any(new.get(k) != old.get(k) for k in keys)


def resource_types(crd: Mapping[str, Any]) -> list[CustomResourceType]:
    """One ResourceType per served version, in Kubernetes' version priority order."""
    spec = _spec(crd)
    served = [v for v in _versions(spec) if v.get("served") is True]
    served.sort(key=lambda v: version_priority(str(v.get("name"))))
    return [_resource_type(crd, spec, v) for v in served]


def _resource_type(crd: Mapping[str, Any], spec: Mapping[str, Any], version: Mapping[str, Any]) -> CustomResourceType:
    names = _names(spec)
    schema = version_schema(version)
    raw_subs = version.get("subresources")
    subs: dict[str, Any] = raw_subs if isinstance(raw_subs, dict) else {}
    selectable = tuple(str(f["jsonPath"]).lstrip(".") for f in version.get("selectableFields") or []
                       if isinstance(f, dict) and f.get("jsonPath"))
    return CustomResourceType(
        spec["group"], version["name"], names["kind"], names["plural"], spec.get("scope") == "Namespaced",
        CustomResourceStrategy(schema, status="status" in subs),
        singular=names.get("singular") or names["kind"].lower(),
        short_names=tuple(names.get("shortNames") or ()),
        categories=tuple(names.get("categories") or ()),
        subresources=tuple(s for s in ("status", "scale") if s in subs),
        extra_field_selectors=selectable,
        printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
        schema=published_schema(schema),
        crd_name=(crd.get("metadata") or {}).get("name", ""),
        list_kind_name=names.get("listKind", ""),
        scale=subs.get("scale") if isinstance(subs.get("scale"), dict) else None,
    )


def published_schema(schema: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The schema OpenAPI and strict field validation see: root ``metadata`` is an ObjectMeta.

    Generated CRDs often declare ``metadata: {type: object}``; Kubernetes publishes the
    full ObjectMeta there instead, and so must we, or every metadata field would be
    "unknown".
    """
    if schema is None:
        return None
    props = schema.get("properties")
    if not isinstance(props, dict) or "metadata" not in props:
        return dict(schema)
    return {**schema, "properties": {k: v for k, v in props.items() if k != "metadata"}}


# ---- simple JSON paths (scale subresource) ----------------------------------------------


def get_path(obj: Mapping[str, Any], path: str) -> Any:
    """The value at a simple JSON path such as ``.spec.replicas`` (None when absent)."""
    cur: Any = obj
    for part in path.strip(".").split("."):
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(part)
    return cur


def set_path(obj: dict[str, Any], path: str, value: Any) -> None:
    """Set the value at a simple JSON path, creating the objects on the way."""
    parts = path.strip(".").split(".")
    cur = obj
    for part in parts[:-1]:
        nxt = cur.get(part)
        if not isinstance(nxt, dict):
            nxt = cur[part] = {}
        cur = nxt
    cur[parts[-1]] = value
