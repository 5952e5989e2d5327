"""Compiled schema trees: one :class:`SchemaNode` per place in an object, with its patch metadata.

Design.  The strict decoder (:mod:`~podlife.registry.schemas.decoder`), strategic
merge patch and the field manager walk objects against schemas on every write, so
they do not read the OpenAPI dicts: a :class:`Compiler` turns a definition into a
tree of :class:`SchemaNode` once (one node per named definition, shared, so
recursive types such as ``JSONSchemaProps`` are fine).  Each node knows its fields,
its element and value types, its Go type as decode errors print it, and the patch
metadata (:class:`PatchMeta`, from the ``x-kubernetes-*`` extensions) of its fields.

The built-in definitions are compiled by one process-wide compiler that is never
reset (:func:`node_for_definition`, :func:`compiled`): a type used by many kinds
(``PodSpec`` in Pod, Deployment, Job, ...) is compiled once per process.  Custom
kinds are compiled by a compiler of their own catalog
(:class:`~podlife.registry.schemas.custom.CustomSchemas`), which takes the built-in
definitions they refer to (``ObjectMeta``) from the shared compiler.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Mapping

from .loader import (
    INT_OR_STRING_DEFINITION,
    OBJECT_META_DEFINITION,
    QUANTITY_DEFINITION,
    TIME_DEFINITIONS,
    definition_name,
    definitions,
)

__all__ = [
    "ANY", "ARRAY", "BOOLEAN", "BYTES", "DATETIME", "INTEGER", "INT_OR_STRING", "INT_RANGES",
    "MAP", "NUMBER", "NO_PATCH_META", "OBJECT", "QUANTITY", "STRING",
    "Compiler",
    "PatchMeta",
    "SchemaNode",
    "compiled",
    "node_for_definition",
    "patch_meta",
]


@dataclass(frozen=True, slots=True)
class PatchMeta:
    """Patch metadata of one field, from the ``x-kubernetes-*`` extensions.

    ``strategies`` is the comma-separated ``x-kubernetes-patch-strategy`` split up,
    e.g. ``("merge", "retainKeys")`` for ``PodSpec.volumes``.
    """

    strategies: tuple[str, ...] = ()
    merge_key: str | None = None
    list_type: str | None = None
    list_map_keys: tuple[str, ...] = ()
    map_type: str | None = None

    @property
    def strategy(self) -> str:
        """``"merge"``, ``"replace"`` or ``""`` (the default), ignoring ``retainKeys``."""
        for s in self.strategies:
            if s != "retainKeys":
                return s
        return ""

    @property
    def retain_keys(self) -> bool:
        return "retainKeys" in self.strategies


NO_PATCH_META = PatchMeta()

# Node codes.  Containers and ANY sort below STRING; every code >= STRING is a scalar.
ANY, OBJECT, MAP, ARRAY, STRING, BYTES, DATETIME, INTEGER, NUMBER, BOOLEAN, INT_OR_STRING, QUANTITY = range(12)

INT_RANGES = {"int32": (-(2 ** 31), 2 ** 31 - 1), "int64": (-(2 ** 63), 2 ** 63 - 1)}


class SchemaNode:
    """A compiled schema: what one JSON value at some place in an object must be.

    Object nodes of named definitions are shared, so the tree may be cyclic
    (``JSONSchemaProps``).  Treat nodes as read-only.
    """

    __slots__ = ("code", "name", "go_type", "props", "metas", "required", "item", "value",
                 "open", "int_range", "crd", "description")

    def __init__(self, code: int, name: str = "", go_type: str = "") -> None:
        self.code = code
        self.name = name               # short struct name (``Container``) for object nodes
        self.go_type = go_type         # Go type as decode errors print it (``[]v1.Container``)
        self.props: dict[str, SchemaNode] = {}
        self.metas: dict[str, PatchMeta] = {}
        self.required: tuple[str, ...] = ()
        self.item: SchemaNode | None = None    # array element
        self.value: SchemaNode | None = None   # map value
        self.open = False              # object accepts unknown fields
        self.int_range: tuple[int, int] | None = None
        self.crd = False               # custom-resource node: CRD-style messages
        self.description = ""

    # -- navigation used by strategic merge patch and patch_meta ----------------

    def field(self, key: str) -> tuple[SchemaNode | None, PatchMeta]:
        """The node of field ``key`` and its patch metadata (lists stay lists)."""
        node: SchemaNode | None = self
        while node is not None and node.code == ARRAY:
            node = node.item
        if node is None:
            return None, NO_PATCH_META
        if node.code == OBJECT:
            child = node.props.get(key)
            return child, node.metas.get(key, NO_PATCH_META)
        if node.code == MAP:
            return node.value, NO_PATCH_META
        return None, NO_PATCH_META

    def items(self) -> SchemaNode | None:
        """The element node of an array node (``self`` for anything else)."""
        return self.item if self.code == ARRAY else self

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"SchemaNode({self.code}, {self.name or self.go_type!r})"


def _short_name(def_name: str) -> str:
    return def_name.rsplit(".", 1)[-1]


def _go_package(def_name: str) -> str:
    parts = def_name.split(".")
    return parts[-2] if len(parts) >= 2 else ""


def _go_named(def_name: str) -> str:
    pkg = _go_package(def_name)
    return f"{pkg}.{_short_name(def_name)}" if pkg else _short_name(def_name)


class Compiler:
    """Builds SchemaNode trees, memoizing named definitions.

    ``resolve`` gives the schema of a definition name (``None``: unknown, compiled as
    "anything").  A compiler given ``builtin`` (a name -> node function, such as
    :func:`node_for_definition`) takes every built-in definition from it; the
    definitions it compiles itself are then custom ones (CRD-style messages).
    """

    def __init__(self, resolve: Callable[[str], Mapping[str, Any] | None],
                 builtin: Callable[[str], SchemaNode] | None = None) -> None:
        self.named: dict[str, SchemaNode] = {}
        self._resolve = resolve
        self._builtin = builtin

    def definition(self, name: str) -> SchemaNode:
        node = self.named.get(name)
        if node is not None:
            return node
        if self._builtin is not None and name in definitions():
            return self._builtin(name)
        schema = self._resolve(name)
        if schema is None:
            node = SchemaNode(ANY, _short_name(name), _go_named(name))
            self.named[name] = node
            return node
        if name == QUANTITY_DEFINITION:
            node = SchemaNode(QUANTITY, "Quantity", "resource.Quantity")
        elif name == INT_OR_STRING_DEFINITION:
            node = SchemaNode(INT_OR_STRING, "IntOrString", "intstr.IntOrString")
        elif name in TIME_DEFINITIONS:
            node = SchemaNode(DATETIME, _short_name(name), _go_named(name))
        else:
            node = SchemaNode(ANY, _short_name(name), _go_named(name))
            self.named[name] = node   # register before filling: recursive types
            self._fill(node, schema, crd=name not in definitions())
            return node
        node.description = schema.get("description", "")
        self.named[name] = node
        return node

    def inline(self, schema: Mapping[str, Any], owner: str, crd: bool) -> SchemaNode:
        ref = _ref_of(schema)
        if ref is not None:
            return self.definition(ref)
        node = SchemaNode(ANY, owner)
        self._fill(node, schema, crd=crd)
        return node

    def _fill(self, node: SchemaNode, schema: Mapping[str, Any], crd: bool) -> None:
        node.crd = crd
        node.description = schema.get("description", "")
        stype = schema.get("type")
        fmt = schema.get("format")
        if schema.get("x-kubernetes-int-or-string"):
            node.code, node.go_type = INT_OR_STRING, "intstr.IntOrString"
        elif stype == "object" or (stype is None and "properties" in schema):
            self._fill_object(node, schema, crd)
        elif stype == "array":
            node.code = ARRAY
            items = schema.get("items")
            node.item = self.inline(items, node.name, crd) if isinstance(items, dict) else SchemaNode(ANY)
            node.go_type = "[]" + (node.item.go_type or "interface {}")
        elif stype == "string":
            if fmt == "byte":
                node.code, node.go_type = BYTES, "[]uint8"
            elif fmt == "date-time" and crd:
                node.code, node.go_type = DATETIME, "string"
            else:
                node.code, node.go_type = STRING, "string"
        elif stype == "integer":
            node.code, node.go_type = INTEGER, fmt if fmt in INT_RANGES else "int64"
            node.int_range = INT_RANGES.get(fmt or "int64", INT_RANGES["int64"])
        elif stype == "number":
            node.code, node.go_type = NUMBER, "float64"
        elif stype == "boolean":
            node.code, node.go_type = BOOLEAN, "bool"
        else:
            node.code, node.go_type = ANY, node.go_type or "interface {}"

    def _fill_object(self, node: SchemaNode, schema: Mapping[str, Any], crd: bool) -> None:
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        if not props and isinstance(addl, dict):
            node.code = MAP
            node.value = self.inline(addl, node.name, crd)
            node.go_type = "map[string]" + (node.value.go_type or "interface {}")
            return
        node.code = OBJECT
        node.go_type = node.go_type or ("map[string]interface {}" if crd else node.name)
        # Built-in structs without properties (FieldsV1, RawExtension) hold free-form
        # JSON; a custom (CRD) object without properties prunes everything, as in
        # Kubernetes, unless it preserves unknown fields.
        node.open = bool(
            (not props and not crd)
            or schema.get("x-kubernetes-preserve-unknown-fields")
            or addl is True or isinstance(addl, dict))
        node.required = tuple(schema.get("required") or ())
        owner = node.name
        for pname, pschema in (props or {}).items():
            node.props[pname] = self.inline(pschema, owner, crd)
            meta = _patch_meta_of(pschema)
            if meta is not NO_PATCH_META:
                node.metas[pname] = meta
        if schema.get("x-kubernetes-embedded-resource"):
            for pname in ("apiVersion", "kind"):
                node.props.setdefault(pname, SchemaNode(STRING, owner, "string"))
            node.props.setdefault("metadata", self.definition(OBJECT_META_DEFINITION))


def _ref_of(schema: Mapping[str, Any]) -> str | None:
    ref = schema.get("$ref")
    if ref is None:
        all_of = schema.get("allOf")
        if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict):
            ref = all_of[0].get("$ref")
    if isinstance(ref, str):
        return ref.rsplit("/", 1)[-1]
    return None


def _patch_meta_of(schema: Mapping[str, Any]) -> PatchMeta:
    strategy = schema.get("x-kubernetes-patch-strategy")
    merge_key = schema.get("x-kubernetes-patch-merge-key")
    list_type = schema.get("x-kubernetes-list-type")
    map_keys = schema.get("x-kubernetes-list-map-keys")
    map_type = schema.get("x-kubernetes-map-type")
    if not (strategy or merge_key or list_type or map_keys or map_type):
        return NO_PATCH_META
    return PatchMeta(
        strategies=tuple(s.strip() for s in strategy.split(",") if s.strip()) if strategy else (),
        merge_key=merge_key or None,
        list_type=list_type or None,
        list_map_keys=tuple(map_keys or ()),
        map_type=map_type or None,
    )


def _unknown(name: str) -> None:
    return None


_builtin_lock = threading.RLock()
_builtin_compiler = Compiler(lambda name: definitions().get(name))


@lru_cache(maxsize=None)
def node_for_definition(name: str) -> SchemaNode:
    """The compiled node of a built-in definition, cached for the process.

    All built-in definitions share one compiler, so a type used by many kinds
    (``PodSpec`` in Pod, Deployment, Job, ...) is compiled once.  An unknown name
    compiles to a node that accepts anything.
    """
    with _builtin_lock:
        return _builtin_compiler.definition(name)


@lru_cache(maxsize=None)
def compiled(group: str, version: str, kind: str) -> SchemaNode | None:
    """The compiled schema of a built-in kind, or ``None`` for any other kind (cached)."""
    name = definition_name(group, version, kind)
    return node_for_definition(name) if name else None


def patch_meta(schema_or_name: SchemaNode | str | Mapping[str, Any],
               path: tuple[str, ...] | list[str]) -> PatchMeta:
    """Patch metadata of the field at ``path`` (field names; list levels are implicit).

    ``patch_meta("io.k8s.api.core.v1.Pod", ("spec", "containers"))`` is
    ``PatchMeta(strategies=("merge",), merge_key="name", list_type="map", ...)``.
    ``schema_or_name`` may be a built-in definition name, a :class:`SchemaNode` or an
    inline OpenAPI schema.  Unknown paths give an empty :class:`PatchMeta`.
    """
    node: SchemaNode | None
    if isinstance(schema_or_name, SchemaNode):
        node = schema_or_name
    elif isinstance(schema_or_name, str):
        node = node_for_definition(schema_or_name)
    else:
        node = Compiler(_unknown, node_for_definition).inline(schema_or_name, "", crd=False)
    meta = NO_PATCH_META
    for key in path:
        if node is None:
            return NO_PATCH_META
        node, meta = node.field(key)
    return meta
