"""What the API server needs to know about one kind of resource.

A :class:`ResourceType` names the resource (group, version, kind, plural, short names,
categories, subresources), says where it lives in the store, which field selectors it
supports, and carries a :class:`Strategy`: the kind's own rules for create, update,
status update and delete. The REST layer (:mod:`podlife.api.rest`) is generic and asks
the strategy at each step, the way Kubernetes' generic registry asks its
``RESTCreateStrategy``/``RESTUpdateStrategy``. Adding a kind means writing a strategy
and registering a ResourceType in :mod:`podlife.registry.catalog`; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

Obj = dict[str, Any]

DEFAULT_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True, slots=True)
class FieldError:
    """One invalid field, as a Kubernetes ``StatusCause``.

    ``type`` is the cause reason (``FieldValueRequired``, ``FieldValueInvalid``,
    ``FieldValueNotSupported``, ``FieldValueDuplicate``, ``FieldValueForbidden``,
    ``FieldValueTooLong``); ``detail`` is the human part after the standard prefix.
    """

    type: str
    field: str
    detail: str = ""
    value: Any = None

    _PREFIX = {
        "FieldValueRequired": "Required value",
        "FieldValueInvalid": "Invalid value",
        "FieldValueNotSupported": "Unsupported value",
        "FieldValueDuplicate": "Duplicate value",
        "FieldValueNotFound": "Not found",
        "FieldValueForbidden": "Forbidden",
        "FieldValueTooLong": "Too long",
        "FieldValueTypeInvalid": "Invalid value",
    }

    @property
    def message(self) -> str:
        prefix = self._PREFIX.get(self.type, "Invalid value")
        if self.type in ("FieldValueInvalid", "FieldValueNotSupported", "FieldValueDuplicate", "FieldValueTypeInvalid",
                         "FieldValueNotFound"):
            shown = f'"{self.value}"' if isinstance(self.value, str) else repr(self.value) if self.value is not None else "null"
            prefix = f"{prefix}: {shown}"
        return f"{prefix}: {self.detail}" if self.detail else prefix

    def cause(self) -> dict[str, str]:
        return {"reason": self.type, "message": self.message, "field": self.field}

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def required(path: str, detail: str = "") -> FieldError:
    return FieldError("FieldValueRequired", path, detail)


def invalid(path: str, value: Any, detail: str) -> FieldError:
    return FieldError("FieldValueInvalid", path, detail, value)


def not_supported(path: str, value: Any, allowed: list[str]) -> FieldError:
    return FieldError("FieldValueNotSupported", path, "supported values: " + ", ".join(f'"{a}"' for a in allowed), value)


def forbidden(path: str, detail: str) -> FieldError:
    return FieldError("FieldValueForbidden", path, detail)


class Strategy:
    """A kind's rules. The defaults suit a plain object with spec/status or data.

    Methods that take ``obj`` may change it in place (it is the REST layer's own copy).
    """

    #: kinds whose ``status`` is only written through the ``status`` subresource
    has_status: bool = False
    #: name validation: "subdomain" (most kinds), "label" (namespaces), "path" (any segment-safe)
    name_rule: str = "subdomain"
    #: whether metadata.generation tracks spec changes
    tracks_generation: bool = False
    #: False for review kinds (SelfSubjectAccessReview...): a create is answered, not stored
    stored: bool = True

    def prepare_for_create(self, obj: Obj) -> None:
        if self.has_status:
            obj.pop("status", None)

    def default(self, obj: Obj) -> None:
        """Fill in defaults (after prepare, before validate)."""

    def validate(self, obj: Obj) -> list[FieldError]:
        return []

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        if self.has_status:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)

    def default_update(self, new: Obj, old: Obj) -> None:
        """Fill in defaults on update (Kubernetes defaults every object it decodes)."""
        self.default(new)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return self.validate(new)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        """Keep everything of ``old`` except its status, which comes from ``new``."""
        merged = dict(old)
        merged["metadata"] = new.get("metadata", old.get("metadata"))
        if "status" in new:
            merged["status"] = new["status"]
        else:
            merged.pop("status", None)
        return merged

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return []

    #: subresources besides ``status`` written with PUT/PATCH under the kind's own rules
    #: (a CertificateSigningRequest's ``approval``)
    update_subresources: tuple[str, ...] = ()

    def prepare_for_subresource_update(self, subresource: str, new: Obj, old: Obj) -> Obj:
        """The object to store for a write to one of :attr:`update_subresources`."""
        return new

    def validate_subresource_update(self, subresource: str, new: Obj, old: Obj) -> list[FieldError]:
        return []

    def spec_changed(self, new: Obj, old: Obj) -> bool:
        return new.get("spec") != old.get("spec")

    # -- deletion ------------------------------------------------------------------

    def prepare_for_delete(self, obj: Obj, now: str) -> None:
        """Change ``obj`` on the first delete request, e.g. add a cleanup finalizer."""

    def grace_period(self, obj: Obj, requested: int | None) -> int:
        """Seconds of graceful deletion; 0 deletes at once (the default for most kinds)."""
        return 0


FieldGetter = Callable[[Obj], str]


def _meta(field_name: str) -> FieldGetter:
    return lambda o: (o.get("metadata") or {}).get(field_name) or ""


def path_getter(path: str) -> FieldGetter:
    """A getter for a dotted field path such as ``spec.nodeName``."""
    parts = path.split(".")

    def get(obj: Obj) -> str:
        cur: Any = obj
        for p in parts:
            if not isinstance(cur, dict):  # decoded JSON: dicts only (an ABC check costs more)
                return ""
            cur = cur.get(p)
        if cur is None:
            return ""
        if isinstance(cur, bool):
            return "true" if cur else "false"
        return str(cur)

    return get


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    strategy: Strategy = field(default_factory=Strategy)
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = DEFAULT_VERBS
    extra_field_selectors: tuple[str, ...] = ()
    storage_name: str = ""  # defaults to plural; lets two group-versions share storage
    #: a custom resource's additionalPrinterColumns (None: the kind's built-in table)
    printer_columns: tuple[dict, ...] | None = None
    #: a custom resource's OpenAPI v3 schema (for OpenAPI documents); None for built-ins
    schema: dict | None = field(default=None, compare=False, hash=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()

    @property
    def group_resource(self) -> str:
        """``pods`` or ``deployments.apps``, as Kubernetes error messages name resources."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def key_prefix(self, namespace: str | None = None) -> str:
        base = f"/registry/{self.group or 'core'}/{self.storage_name or self.plural}/"
        if self.namespaced and namespace:
            return f"{base}{namespace}/"
        return base

    def key(self, namespace: str | None, name: str) -> str:
        if self.namespaced:
            return f"{self.key_prefix(namespace)}{name}"
        return f"{self.key_prefix()}{name}"

    @cached_property
    def field_getters(self) -> dict[str, FieldGetter]:
        getters: dict[str, FieldGetter] = {"metadata.name": _meta("name")}
        if self.namespaced:
            getters["metadata.namespace"] = _meta("namespace")
        for f in self.extra_field_selectors:
            getters[f] = path_getter(f)
        return getters
