"""The CustomResourceDefinition kind (``apiextensions.k8s.io/v1``): defaulting, validation, status.

Design.  :class:`CRDStrategy` defaults a CRD (singular, listKind, conversion),
validates it the way apiextensions-apiserver does (name ``<plural>.<group>``, scope,
exactly one storage version, DNS-1035 names, a *structural* ``openAPIV3Schema`` for
every version (:mod:`.structural`), printer columns, scale paths, immutable
group/plural) and keeps ``status.storedVersions``.  The helpers that read a CRD
(its spec, names, versions, conditions) are here too, for the controller that serves
CRDs (:mod:`podlife.api.crds`) and for the custom kinds (:mod:`.types`).

Pure (no I/O, no API-layer imports), exactly as Kubernetes keeps the CRD's strategy
apart from its handler.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..types import FieldError, Obj, Strategy
from ...machinery.names import dns1123_subdomain_errors
from .field_errors import (
    SchemaFieldError,
    invalid_error,
    not_supported_error,
    required_error,
)
from .structural import json_copy, validate_structural

GROUP = "apiextensions.k8s.io"
VERSION = "v1"
KIND = "CustomResourceDefinition"
PLURAL = "customresourcedefinitions"
CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
APPROVAL_ANNOTATION = "api-approved.kubernetes.io"

PRINTER_COLUMN_TYPES = ("boolean", "date", "integer", "number", "string")
PRINTER_COLUMN_FORMATS = ("byte", "date", "date-time", "double", "float", "int32", "int64", "password")


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
# Reading a CRD
# ---------------------------------------------------------------------------


def crd_spec(crd: Mapping[str, Any]) -> dict[str, Any]:
    """``crd["spec"]`` (an empty object when missing or malformed)."""
    spec = crd.get("spec")
    return spec if isinstance(spec, dict) else {}


def spec_names(spec: Mapping[str, Any]) -> dict[str, Any]:
    names = spec.get("names")
    return names if isinstance(names, dict) else {}


def spec_versions(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    versions = spec.get("versions")
    return [v for v in versions if isinstance(v, dict)] if isinstance(versions, list) else []


def storage_version(crd: Mapping[str, Any]) -> str | None:
    for v in spec_versions(crd_spec(crd)):
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
    names = spec_names(crd_spec(crd))
    out: dict[str, Any] = {"plural": names.get("plural", ""), "singular": names.get("singular", ""),
                           "kind": names.get("kind", ""), "listKind": names.get("listKind", "")}
    if names.get("shortNames"):
        out["shortNames"] = list(names["shortNames"])
    if names.get("categories"):
        out["categories"] = list(names["categories"])
    return out



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
        new["status"] = json_copy(old.get("status") or {})  # never share the cached status
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
    spec = crd_spec(crd)
    errs = _validate_crd_name(crd, spec)
    errs += _validate_group(spec, crd)
    errs += _validate_scope(spec)
    errs += _validate_versions(spec)
    errs += _validate_spec_names(spec)
    errs += _validate_conversion(spec)
    if spec.get("preserveUnknownFields") is True:
        errs.append(invalid_error("spec.preserveUnknownFields", True, "must be false"))
    return errs


def _validate_crd_name(crd: Mapping[str, Any], spec: Mapping[str, Any]) -> list[FieldError]:
    name = (crd.get("metadata") or {}).get("name") or ""
    names = spec_names(spec)
    if name and name != f"{names.get('plural', '')}.{spec.get('group', '')}":
        return [invalid_error("metadata.name", name, 'must be spec.names.plural+"."+spec.group')]
    return []


def _validate_group(spec: Mapping[str, Any], crd: Mapping[str, Any]) -> list[FieldError]:
    group = spec.get("group")
    if not group:
        return [required_error("spec.group")]
    if not isinstance(group, str):
        return [invalid_error("spec.group", group, "must be a string")]
    errs = dns1123_subdomain_errors(group)
    if errs:
        return [invalid_error("spec.group", group, ",".join(errs))]
    if "." not in group:
        return [invalid_error("spec.group", group, "should be a domain with at least one dot")]
    return _validate_approval(group, crd)


def _validate_approval(group: str, crd: Mapping[str, Any]) -> list[FieldError]:
    """Groups under k8s.io / kubernetes.io need the API-review approval annotation."""
    protected = group in ("k8s.io", "kubernetes.io") or group.endswith((".k8s.io", ".kubernetes.io"))
    annotations = (crd.get("metadata") or {}).get("annotations") or {}
    if protected and not annotations.get(APPROVAL_ANNOTATION):
        return [required_error(f"metadata.annotations[{APPROVAL_ANNOTATION}]",
                          f'protected groups must have approval annotation "{APPROVAL_ANNOTATION}", '
                          "see https://github.com/kubernetes/enhancements/pull/1111")]
    return []


def _validate_scope(spec: Mapping[str, Any]) -> list[FieldError]:
    scope = spec.get("scope")
    if not scope:
        return [required_error("spec.scope")]
    if scope not in ("Cluster", "Namespaced"):
        return [not_supported_error("spec.scope", scope, ["Cluster", "Namespaced"])]
    return []


def _validate_versions(spec: Mapping[str, Any]) -> list[FieldError]:
    versions = spec_versions(spec)
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
        errs.append(invalid_error("spec.versions", shown, "must contain unique version names"))
    if sum(1 for v in versions if v.get("storage") is True) != 1:
        errs.append(invalid_error("spec.versions", shown, "must have exactly one version marked as storage version"))
    return errs


def _validate_version(version: Mapping[str, Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    name = version.get("name")
    if not name:
        errs.append(required_error(f"{path}.name"))
    elif not isinstance(name, str) or dns1035_label_errors(name):
        errs.append(invalid_error(f"{path}.name", name, ",".join(dns1035_label_errors(str(name)))))
    for flag in ("served", "storage"):
        if not isinstance(version.get(flag, False), bool):
            errs.append(invalid_error(f"{path}.{flag}", version.get(flag), "must be a boolean"))
    schema = version_schema(version)
    schema_path = f"{path}.schema.openAPIV3Schema"
    if schema is None:
        errs.append(required_error(schema_path, "schemas are required"))
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
        return [invalid_error(path, columns, "must be a list")]
    errs: list[FieldError] = []
    for i, col in enumerate(columns):
        here = f"{path}[{i}]"
        if not isinstance(col, dict):
            errs.append(invalid_error(here, col, "must be an object"))
            continue
        if not col.get("name"):
            errs.append(required_error(f"{here}.name"))
        ctype = col.get("type")
        if not ctype:
            errs.append(required_error(f"{here}.type"))
        elif ctype not in PRINTER_COLUMN_TYPES:
            errs.append(not_supported_error(f"{here}.type", ctype, PRINTER_COLUMN_TYPES))
        fmt = col.get("format")
        if fmt and fmt not in PRINTER_COLUMN_FORMATS:
            errs.append(not_supported_error(f"{here}.format", fmt, PRINTER_COLUMN_FORMATS))
        if not col.get("jsonPath"):
            errs.append(required_error(f"{here}.jsonPath"))
        elif not _simple_json_path(col["jsonPath"], allow_any=True):
            errs.append(invalid_error(f"{here}.jsonPath", col["jsonPath"], "must be a simple json path"))
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
        return [invalid_error(path, subs, "must be an object")]
    scale = subs.get("scale")
    if scale is None:
        return []
    if not isinstance(scale, dict):
        return [invalid_error(f"{path}.scale", scale, "must be an object")]
    errs: list[FieldError] = []
    errs += _scale_path(scale, "specReplicasPath", f"{path}.scale", (".spec.",), required=True)
    errs += _scale_path(scale, "statusReplicasPath", f"{path}.scale", (".status.",), required=True)
    errs += _scale_path(scale, "labelSelectorPath", f"{path}.scale", (".spec.", ".status."), required=False)
    return errs


def _scale_path(scale: Mapping[str, Any], key: str, path: str, under: tuple[str, ...],
                required: bool) -> list[FieldError]:
    value = scale.get(key)
    if not value:
        return [required_error(f"{path}.{key}")] if required else []
    if not _simple_json_path(value):
        return [invalid_error(f"{path}.{key}", value, "must be a simple json path")]
    if not value.startswith(under):
        where = " or ".join(u.rstrip(".") for u in under)
        return [invalid_error(f"{path}.{key}", value, f"should be a json path under {where}")]
    return []


def _validate_selectable_fields(fields: Any, path: str) -> list[FieldError]:
    if fields is None:
        return []
    if not isinstance(fields, list):
        return [invalid_error(path, fields, "must be a list")]
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, f in enumerate(fields):
        json_path = f.get("jsonPath") if isinstance(f, dict) else None
        here = f"{path}[{i}].jsonPath"
        if not json_path:
            errs.append(required_error(here))
        elif not _simple_json_path(json_path):
            errs.append(invalid_error(here, json_path, "must be a simple json path"))
        elif json_path in seen:
            errs.append(SchemaFieldError("FieldValueDuplicate", here, "", json_path))
        seen.add(str(json_path))
    return errs


def _validate_spec_names(spec: Mapping[str, Any]) -> list[FieldError]:
    names = spec_names(spec)
    errs = [required_error(f"spec.names.{key}") for key in ("plural", "singular", "kind", "listKind") if not names.get(key)]
    return errs + _validate_names(names, "spec.names")


def _validate_names(names: Mapping[str, Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for key in ("plural", "singular"):
        value = names.get(key)
        if value and (not isinstance(value, str) or dns1035_label_errors(value)):
            errs.append(invalid_error(f"{path}.{key}", value, ",".join(dns1035_label_errors(str(value)))))
    for key in ("kind", "listKind"):
        value = names.get(key)
        if value and (not isinstance(value, str) or dns1035_label_errors(value.lower())):
            problems = ",".join(dns1035_label_errors(str(value).lower()))
            detail = "may have mixed case, but should otherwise match: " + problems
            errs.append(invalid_error(f"{path}.{key}", value, detail))
    for key in ("shortNames", "categories"):
        for i, value in enumerate(names.get(key) or []):
            if not isinstance(value, str) or dns1035_label_errors(value):
                errs.append(invalid_error(f"{path}.{key}[{i}]", value, ",".join(dns1035_label_errors(str(value)))))
    if names.get("kind") and names.get("kind") == names.get("listKind"):
        errs.append(invalid_error(f"{path}.listKind", names["listKind"], "kind and listKind may not be the same"))
    return errs


def _validate_conversion(spec: Mapping[str, Any]) -> list[FieldError]:
    conversion = spec.get("conversion")
    if not isinstance(conversion, dict):
        return []
    strategy = conversion.get("strategy")
    if strategy not in ("None", "Webhook"):
        return [not_supported_error("spec.conversion.strategy", strategy, ["None", "Webhook"])]
    return []


def validate_crd_update(new: Mapping[str, Any], old: Mapping[str, Any]) -> list[FieldError]:
    """Immutable fields, and stored versions that must stay in ``spec.versions``."""
    spec, old_spec = crd_spec(new), crd_spec(old)
    checks = [("spec.group", spec.get("group"), old_spec.get("group")),
              ("spec.names.plural", spec_names(spec).get("plural"), spec_names(old_spec).get("plural"))]
    if is_condition_true(old, "Established"):
        checks += [("spec.scope", spec.get("scope"), old_spec.get("scope")),
                   ("spec.names.kind", spec_names(spec).get("kind"), spec_names(old_spec).get("kind"))]
    errs = [invalid_error(path, value, "field is immutable") for path, value, was in checks if value != was]
    names = {v.get("name") for v in spec_versions(spec)}
    for i, stored in enumerate((new.get("status") or {}).get("storedVersions") or []):
        if stored not in names:
            errs.append(invalid_error(f"status.storedVersions[{i}]", stored, "must appear in spec.versions"))
    return errs

