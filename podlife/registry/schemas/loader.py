"""The Kubernetes 1.37 definitions, loaded from kubernetes-validate and normalized to OpenAPI v3.

Design.  Nothing is written by hand: the definitions come from the
``kubernetes-validate`` package, which ships the 1.37 OpenAPI definitions converted
to JSON Schema (``kubernetes-json-schema/v1.37.0-local/_definitions.json``),
complete with descriptions, ``x-kubernetes-group-version-kind``,
``x-kubernetes-patch-strategy``, ``x-kubernetes-patch-merge-key``,
``x-kubernetes-list-type`` and ``x-kubernetes-list-map-keys``.

:func:`definitions` loads the JSON once (on first use: most processes never need it)
and *normalizes* it back to the OpenAPI v3 form the real API server serves: one
``type`` string instead of ``["string", "null"]``, ``$ref`` pointing at
``#/components/schemas/<name>`` (wrapped in ``allOf`` when the property carries its
own description, as OpenAPI 3.0 requires), and the ``enum`` that the JSON-Schema
converter added to ``apiVersion``/``kind`` removed.  ``Quantity`` and
``IntOrString`` keep their ``oneOf`` form (so ``kubectl explain`` prints
``<Quantity>``), and get back a description, which the converter dropped.

Only the kinds compiled into Kubernetes live here, so everything in this module is
process-wide and immutable once loaded.  The schemas of custom kinds (CRDs) belong to
one API server's catalog (:mod:`podlife.registry.schemas.custom`).
"""

from __future__ import annotations

import threading
from importlib import resources
from typing import Any, Iterable, Mapping

import orjson

from ...machinery.constants import KUBERNETES_VERSION

__all__ = [
    "INT_OR_STRING_DEFINITION",
    "OBJECT_META_DEFINITION",
    "QUANTITY_DEFINITION",
    "REF_PREFIX",
    "TIME_DEFINITIONS",
    "definition_name",
    "definitions",
    "is_builtin",
    "referenced_definitions",
    "schema_for",
    "supports_strategic_merge",
]

_DATA_DIR = f"v{KUBERNETES_VERSION}.0-local"
REF_PREFIX = "#/components/schemas/"

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
QUANTITY_DEFINITION = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING_DEFINITION = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
OBJECT_META_DEFINITION = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
TIME_DEFINITIONS = frozenset({
    "io.k8s.apimachinery.pkg.apis.meta.v1.Time",
    "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime",
})

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
    if QUANTITY_DEFINITION in defs:
        defs[QUANTITY_DEFINITION].setdefault("description", _QUANTITY_DESCRIPTION)
    if INT_OR_STRING_DEFINITION in defs:
        defs[INT_OR_STRING_DEFINITION].setdefault("description", _INT_OR_STRING_DESCRIPTION)
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


def is_builtin(group: str, version: str, kind: str) -> bool:
    """Whether Kubernetes 1.37 itself defines this kind."""
    return (group, version, kind) in _index()


def supports_strategic_merge(group: str, version: str, kind: str) -> bool:
    """Strategic merge patch works only for kinds compiled into Kubernetes (not CRDs)."""
    return is_builtin(group, version, kind)


def definition_name(group: str, version: str, kind: str) -> str | None:
    """The OpenAPI definition name of a built-in kind (``None`` for any other kind)."""
    return _index().get((group, version, kind))


def schema_for(group: str, version: str, kind: str) -> dict[str, Any] | None:
    """The (normalized, OpenAPI v3) schema of a built-in kind, or ``None``."""
    name = definition_name(group, version, kind)
    return definitions().get(name) if name else None


def referenced_definitions(roots: Iterable[str]) -> list[str]:
    """Names of the definitions ``roots`` and every definition reachable from them, sorted."""
    defs = definitions()
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in seen or name not in defs:
            continue
        seen.add(name)
        stack.extend(r for r in _refs_in(name) if r not in seen)
    return sorted(seen)


_REFS_CACHE: dict[str, tuple[str, ...]] = {}


def _refs_in(name: str) -> tuple[str, ...]:
    cached = _REFS_CACHE.get(name)
    if cached is None:
        found: list[str] = []
        _collect_refs(definitions()[name], found)
        cached = _REFS_CACHE[name] = tuple(dict.fromkeys(found))
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
