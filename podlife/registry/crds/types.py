"""The custom kinds: one served ResourceType per version of a CRD, with its strategy.

Design.  :func:`resource_types` turns a CRD into one :class:`CustomResourceType` per
served version, in Kubernetes' version priority order.  All versions share one key
prefix (group + plural): conversion is "None", so an object is stored once and each
version serves it with its own ``apiVersion``.  Each version carries a
:class:`CustomResourceStrategy` built from its schema and subresources (prune,
default, validate: :mod:`.structural`, :mod:`.value_validation`), so the generic REST
layer needs nothing CRD-specific.  :func:`crd_resource_type` is the
``customresourcedefinitions`` resource itself; :func:`get_path`/:func:`set_path`
read and write the scale subresource's simple JSON paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..types import FieldError, Obj, ResourceType, Strategy
from .strategy import (
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    CRDStrategy,
    crd_spec,
    spec_names,
    spec_versions,
    version_priority,
    version_schema,
)
from .structural import apply_defaults, json_copy, prune
from .value_validation import validate_custom_resource

__all__ = [
    "CustomResourceStrategy", "CustomResourceType", "crd_resource_type", "get_path", "published_schema",
    "resource_types", "set_path",
]


def crd_resource_type() -> ResourceType:
    """The ``customresourcedefinitions`` resource itself (cluster-scoped, ``crd``/``crds``)."""
    return ResourceType(GROUP, VERSION, KIND, PLURAL, False, CRDStrategy(), short_names=("crd", "crds"),
                        categories=("api-extensions",), subresources=("status",))


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
                new["status"] = json_copy(old["status"])  # a private copy: defaulting may write into it
            else:
                new.pop("status", None)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        merged = json_copy(old)
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
    spec = crd_spec(crd)
    served = [v for v in spec_versions(spec) if v.get("served") is True]
    served.sort(key=lambda v: version_priority(str(v.get("name"))))
    return [_resource_type(crd, spec, v) for v in served]


def _resource_type(crd: Mapping[str, Any], spec: Mapping[str, Any], version: Mapping[str, Any]) -> CustomResourceType:
    names = spec_names(spec)
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
