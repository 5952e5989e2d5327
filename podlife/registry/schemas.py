"""The Kubernetes 1.37 API schemas: one source for validation, OpenAPI and patch metadata.

Design.  Every schema-driven feature of the API server — strict field validation
on create/update, the ``/openapi/v3`` documents that ``kubectl create -f``,
``apply`` and ``explain`` download, and the patch strategies that strategic
merge patch needs (``containers`` merge by ``name``, ``finalizers`` merge as a
set, ...) — reads the definitions loaded here, so the three can never disagree.
Nothing is written by hand: the definitions come from the ``kubernetes-validate``
package, which ships the 1.37 OpenAPI definitions converted to JSON Schema
(``kubernetes-json-schema/v1.37.0-local/_definitions.json``), complete with
descriptions, ``x-kubernetes-group-version-kind``, ``x-kubernetes-patch-strategy``,
``x-kubernetes-patch-merge-key``, ``x-kubernetes-list-type`` and
``x-kubernetes-list-map-keys``.

Three layers, each built lazily and cached, because the API server must start
fast and most processes (the kubelet, the simulator) never touch schemas:

1. :func:`definitions` loads the JSON once and *normalizes* it back to the
   OpenAPI v3 form the real API server serves: one ``type`` string instead of
   ``["string", "null"]``, ``$ref`` pointing at ``#/components/schemas/<name>``
   (wrapped in ``allOf`` when the property carries its own description, as
   OpenAPI 3.0 requires), and the ``enum`` that the JSON-Schema converter added to
   ``apiVersion``/``kind`` removed.  ``Quantity`` and ``IntOrString`` keep their
   ``oneOf`` form (so ``kubectl explain`` prints ``<Quantity>``), and get back a
   description, which the converter dropped.
2. :func:`compiled` turns one definition into a tree of :class:`SchemaNode` (one
   node per definition, shared, so recursive types are fine).  Each node knows its
   fields, element and value types, and the patch metadata of its fields.
3. :func:`validate_object` walks an object against that tree.  It is a hand-written
   walker rather than a JSON-Schema validator: it needs to report what the Go
   decoder reports (``unknown field "spec.containers[0].imagee"``, ``json: cannot
   unmarshal number into Go struct field Container.spec.containers.image of type
   string``) and it runs on every create, so it avoids per-field allocations: the
   field path is a shared stack that is only formatted when an issue is found.

Custom kinds (our ``network.podlife.io`` kinds, CRDs later) register an OpenAPI v3
(structural) schema with :func:`register_custom_schema`; they validate the same way,
appear in the OpenAPI documents, and are *not* strategic-merge-able
(:func:`supports_strategic_merge`), as in Kubernetes.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Iterable, Mapping

import orjson

__all__ = [
    "KUBERNETES_MINOR",
    "KUBERNETES_VERSION",
    "REF_PREFIX",
    "FieldIssue",
    "PatchMeta",
    "SchemaNode",
    "compiled",
    "custom_definition_name",
    "custom_schema",
    "definition_name",
    "definitions",
    "duplicate_fields",
    "format_issues",
    "is_builtin",
    "node_for_definition",
    "patch_meta",
    "referenced_definitions",
    "register_custom_schema",
    "schema_for",
    "supports_strategic_merge",
    "unregister_custom_schema",
    "validate_object",
]

#: The Kubernetes release whose API podlife serves; ``/version`` reports its minor.
KUBERNETES_VERSION = "1.37"
KUBERNETES_MINOR = KUBERNETES_VERSION.split(".")[1]
_DATA_DIR = f"v{KUBERNETES_VERSION}.0-local"
REF_PREFIX = "#/components/schemas/"
_SOURCE_REF_PREFIX = "#/$defs/"

# Descriptions the JSON-Schema conversion dropped (written for podlife).
_QUANTITY_DESCRIPTION = (
    "Quantity is a fixed-point number with an optional unit suffix, written as a string "
    "(\"500m\", \"1.5Gi\", \"2\") or as a plain number. Binary suffixes are Ki, Mi, Gi, Ti, Pi, Ei; "
    "decimal suffixes are m, k, M, G, T, P, E; exponents such as 1e3 are also accepted."
)
_INT_OR_STRING_DESCRIPTION = (
    "IntOrString holds either a 32-bit integer or a string, for fields such as a port that may be "
    "given by number (8080) or by name (\"http\"), or an amount that may be absolute (1) or a "
    "percentage (\"25%\")."
)
_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_TIME_DEFS = frozenset({
    "io.k8s.apimachinery.pkg.apis.meta.v1.Time",
    "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime",
})


# ---------------------------------------------------------------------------
# Public value types
# ---------------------------------------------------------------------------


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


_NO_PATCH_META = PatchMeta()


# ---------------------------------------------------------------------------
# Layer 1: load and normalize the definitions
# ---------------------------------------------------------------------------

_lock = threading.RLock()
_definitions: dict[str, dict[str, Any]] | None = None
_gvk_index: dict[tuple[str, str, str], str] | None = None


def _load_raw() -> dict[str, Any]:
    ref = resources.files("kubernetes_validate").joinpath(
        "kubernetes-json-schema", _DATA_DIR, "_definitions.json")
    raw = orjson.loads(ref.read_bytes())
    return raw.get("$defs") or raw.get("definitions") or {}


def _normalize_type(t: Any) -> Any:
    if isinstance(t, list):
        non_null = [x for x in t if x != "null"]
        return non_null[0] if len(non_null) == 1 else non_null
    return t


def _normalize(schema: Mapping[str, Any], *, top_level: bool = False) -> dict[str, Any]:
    """Convert one converter-produced JSON Schema back to OpenAPI v3 form."""
    out: dict[str, Any] = {}
    ref_target: str | None = None
    for key, value in schema.items():
        if key == "$ref":
            name = value.rsplit("/", 1)[-1]
            ref_target = REF_PREFIX + name
        elif key == "type":
            out["type"] = _normalize_type(value)
        elif key == "properties":
            props: dict[str, Any] = {}
            for pname, pschema in value.items():
                norm = _normalize(pschema)
                if pname in ("apiVersion", "kind"):
                    norm.pop("enum", None)
                props[pname] = norm
            out["properties"] = props
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _normalize(value)
        elif key in ("oneOf", "anyOf", "allOf") and isinstance(value, list):
            out[key] = [_normalize(v) for v in value]
        else:
            out[key] = value
    if ref_target is not None:
        if out or top_level:
            out["allOf"] = [{"$ref": ref_target}]
        else:
            out["$ref"] = ref_target
    return out


def _build_definitions() -> dict[str, dict[str, Any]]:
    defs = {name: _normalize(schema, top_level=True) for name, schema in _load_raw().items()}
    if _QUANTITY in defs:
        defs[_QUANTITY].setdefault("description", _QUANTITY_DESCRIPTION)
    if _INT_OR_STRING in defs:
        defs[_INT_OR_STRING].setdefault("description", _INT_OR_STRING_DESCRIPTION)
    return defs


def definitions() -> dict[str, dict[str, Any]]:
    """All 1.37 definitions keyed by OpenAPI name (``io.k8s.api.core.v1.Pod``).

    Loaded on first call and cached; treat the result as read-only.  Refs are in
    OpenAPI v3 form (``#/components/schemas/<name>``).
    """
    global _definitions
    if _definitions is None:
        with _lock:
            if _definitions is None:
                _definitions = _build_definitions()
    return _definitions


def _index() -> dict[tuple[str, str, str], str]:
    global _gvk_index
    if _gvk_index is None:
        with _lock:
            if _gvk_index is None:
                index: dict[tuple[str, str, str], str] = {}
                for name, schema in definitions().items():
                    for gvk in schema.get("x-kubernetes-group-version-kind", ()):
                        key = (gvk.get("group", ""), gvk.get("version", ""), gvk.get("kind", ""))
                        # Shared meta types (DeleteOptions, WatchEvent, ...) list many GVKs;
                        # the first definition claiming a GVK wins.
                        index.setdefault(key, name)
                _gvk_index = index
    return _gvk_index


# Custom (non-Kubernetes) kinds: our own network.podlife.io kinds and CRDs.
_custom: dict[tuple[str, str, str], tuple[str, dict[str, Any]]] = {}


def custom_definition_name(group: str, version: str, kind: str) -> str:
    """The OpenAPI name Kubernetes gives a CRD kind: reversed group, version, kind.

    ``network.podlife.io/v1 Port`` becomes ``io.podlife.network.v1.Port``.
    """
    rev = ".".join(reversed(group.split("."))) if group else "core"
    return f"{rev}.{version}.{kind}"


def register_custom_schema(group: str, version: str, kind: str,
                           openapi_v3_schema: Mapping[str, Any]) -> str:
    """Register the (structural) OpenAPI v3 schema of a kind Kubernetes does not define.

    ``apiVersion``, ``kind`` and ``metadata`` (an ``ObjectMeta``) are added when the
    schema does not declare them, as the API server does for CRDs.  Returns the
    definition name.  Re-registering replaces the schema (CRD updates).
    """
    name = custom_definition_name(group, version, kind)
    schema = _complete_custom_schema(dict(openapi_v3_schema), group, version, kind)
    with _lock:
        _custom[(group, version, kind)] = (name, schema)
        _reset_compiled()
    return name


def unregister_custom_schema(group: str, version: str, kind: str) -> None:
    with _lock:
        if _custom.pop((group, version, kind), None) is not None:
            _reset_compiled()


def _complete_custom_schema(schema: dict[str, Any], group: str, version: str,
                            kind: str) -> dict[str, Any]:
    props = dict(schema.get("properties") or {})
    props.setdefault("apiVersion", {
        "description": "APIVersion defines the versioned schema of this representation of an object.",
        "type": "string"})
    props.setdefault("kind", {
        "description": "Kind is a string value representing the REST resource this object represents.",
        "type": "string"})
    props.setdefault("metadata", {
        "description": "Standard object's metadata.", "allOf": [{"$ref": REF_PREFIX + _OBJECT_META}]})
    schema["properties"] = props
    schema.setdefault("type", "object")
    schema.setdefault("description", f"{kind} is a {group or 'core'}/{version} resource.")
    schema["x-kubernetes-group-version-kind"] = [
        {"group": group, "version": version, "kind": kind}]
    return schema


def custom_schema(group: str, version: str, kind: str) -> dict[str, Any] | None:
    """The registered schema of a custom kind (see :func:`register_custom_schema`)."""
    entry = _custom.get((group, version, kind))
    return entry[1] if entry else None


def is_builtin(group: str, version: str, kind: str) -> bool:
    """Whether Kubernetes 1.37 itself defines this kind."""
    return (group, version, kind) in _index()


def supports_strategic_merge(group: str, version: str, kind: str) -> bool:
    """Strategic merge patch works only for kinds compiled into Kubernetes (not CRDs)."""
    return is_builtin(group, version, kind)


def definition_name(group: str, version: str, kind: str) -> str | None:
    """The OpenAPI definition name of a kind, built-in or registered custom."""
    name = _index().get((group, version, kind))
    if name is not None:
        return name
    entry = _custom.get((group, version, kind))
    return entry[0] if entry else None


def _definition(name: str) -> dict[str, Any] | None:
    schema = definitions().get(name)
    if schema is not None:
        return schema
    for cname, cschema in _custom.values():
        if cname == name:
            return cschema
    return None


def schema_for(group: str, version: str, kind: str) -> dict[str, Any] | None:
    """The (normalized, OpenAPI v3) schema of a kind, or ``None`` if unknown."""
    name = definition_name(group, version, kind)
    return _definition(name) if name else None


def referenced_definitions(roots: Iterable[str]) -> list[str]:
    """Names of ``roots`` and every definition reachable from them, sorted."""
    seen: set[str] = set()
    stack = [r for r in roots]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        schema = _definition(name)
        if schema is None:
            continue
        seen.add(name)
        stack.extend(r for r in _refs_in(name) if r not in seen)
    return sorted(seen)


_REFS_CACHE: dict[str, tuple[str, ...]] = {}


def _refs_in(name: str) -> tuple[str, ...]:
    cached = _REFS_CACHE.get(name)
    if cached is None:
        found: list[str] = []
        _collect_refs(_definition(name) or {}, found)
        cached = tuple(dict.fromkeys(found))
        if name in definitions():
            _REFS_CACHE[name] = cached
    return cached


def _collect_refs(value: Any, out: list[str]) -> None:
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF_PREFIX):
            out.append(ref[len(REF_PREFIX):])
        for v in value.values():
            if isinstance(v, (dict, list)):
                _collect_refs(v, out)
    elif isinstance(value, list):
        for v in value:
            _collect_refs(v, out)


# ---------------------------------------------------------------------------
# Layer 2: compiled schema trees
# ---------------------------------------------------------------------------

# Node codes.  Containers and ANY sort below STRING; every code >= STRING is a scalar.
ANY, OBJECT, MAP, ARRAY, STRING, BYTES, DATETIME, INTEGER, NUMBER, BOOLEAN, INT_OR_STRING, QUANTITY = range(12)

_INT_RANGES = {"int32": (-(2 ** 31), 2 ** 31 - 1), "int64": (-(2 ** 63), 2 ** 63 - 1)}


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
            return None, _NO_PATCH_META
        if node.code == OBJECT:
            child = node.props.get(key)
            return child, node.metas.get(key, _NO_PATCH_META)
        if node.code == MAP:
            return node.value, _NO_PATCH_META
        return None, _NO_PATCH_META

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


class _Compiler:
    """Builds SchemaNode trees; one instance per compile, memoizing named defs."""

    def __init__(self) -> None:
        self.named: dict[str, SchemaNode] = {}

    def definition(self, name: str) -> SchemaNode:
        node = self.named.get(name)
        if node is not None:
            return node
        schema = _definition(name)
        if schema is None:
            node = SchemaNode(ANY, _short_name(name), _go_named(name))
            self.named[name] = node
            return node
        if name == _QUANTITY:
            node = SchemaNode(QUANTITY, "Quantity", "resource.Quantity")
        elif name == _INT_OR_STRING:
            node = SchemaNode(INT_OR_STRING, "IntOrString", "intstr.IntOrString")
        elif name in _TIME_DEFS:
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
            node.code, node.go_type = INTEGER, fmt if fmt in _INT_RANGES else "int64"
            node.int_range = _INT_RANGES.get(fmt or "int64", _INT_RANGES["int64"])
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
            if meta is not _NO_PATCH_META:
                node.metas[pname] = meta
        if schema.get("x-kubernetes-embedded-resource"):
            for pname in ("apiVersion", "kind"):
                node.props.setdefault(pname, SchemaNode(STRING, owner, "string"))
            node.props.setdefault("metadata", self.definition(_OBJECT_META))


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
        return _NO_PATCH_META
    return PatchMeta(
        strategies=tuple(s.strip() for s in strategy.split(",") if s.strip()) if strategy else (),
        merge_key=merge_key or None,
        list_type=list_type or None,
        list_map_keys=tuple(map_keys or ()),
        map_type=map_type or None,
    )


_compiler = _Compiler()


def _reset_compiled() -> None:
    """Forget compiled trees (a custom schema changed); callers hold ``_lock``."""
    global _compiler
    _compiler = _Compiler()
    compiled.cache_clear()
    node_for_definition.cache_clear()


@lru_cache(maxsize=None)
def node_for_definition(name: str) -> SchemaNode:
    """The compiled node of a definition (built-in or custom), cached.

    All definitions share one compiler, so a type used by many kinds (``PodSpec``
    in Pod, Deployment, Job, ...) is compiled once.
    """
    with _lock:
        return _compiler.definition(name)


@lru_cache(maxsize=None)
def compiled(group: str, version: str, kind: str) -> SchemaNode | None:
    """The compiled schema of a kind, or ``None`` for an unknown kind (cached)."""
    name = definition_name(group, version, kind)
    return node_for_definition(name) if name else None


def patch_meta(schema_or_name: SchemaNode | str | Mapping[str, Any],
               path: tuple[str, ...] | list[str]) -> PatchMeta:
    """Patch metadata of the field at ``path`` (field names; list levels are implicit).

    ``patch_meta("io.k8s.api.core.v1.Pod", ("spec", "containers"))`` is
    ``PatchMeta(strategies=("merge",), merge_key="name", list_type="map", ...)``.
    ``schema_or_name`` may be a definition name, a :class:`SchemaNode` or an inline
    OpenAPI schema.  Unknown paths give an empty :class:`PatchMeta`.
    """
    node: SchemaNode | None
    if isinstance(schema_or_name, SchemaNode):
        node = schema_or_name
    elif isinstance(schema_or_name, str):
        node = node_for_definition(schema_or_name)
    else:
        node = _Compiler().inline(schema_or_name, "", crd=False)
    meta = _NO_PATCH_META
    for key in path:
        if node is None:
            return _NO_PATCH_META
        node, meta = node.field(key)
    return meta


# ---------------------------------------------------------------------------
# Layer 3: validation
# ---------------------------------------------------------------------------

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
        lo, hi = node.int_range or _INT_RANGES["int64"]
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
                    unknown_fields: bool = True, required: bool = True) -> list[FieldIssue]:
    """Check ``obj`` against the schema of ``group/version kind``.

    Returns the issues in document order; an unknown kind returns ``[]`` (nothing to
    check).  ``unknown_fields=False`` skips unknown-field detection
    (``fieldValidation=Ignore``); ``required=False`` skips required-field checks.
    Type issues are errors in every mode (the Go decoder cannot represent them).
    """
    node = compiled(group, version, kind)
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
