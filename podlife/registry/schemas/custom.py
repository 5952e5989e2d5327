"""The schemas of one API server's custom kinds (CRDs), and lookups over built-in and custom kinds.

Design.  Kubernetes' own kinds have one schema per process (:mod:`.loader`,
:mod:`.tree`); a kind added by a CustomResourceDefinition exists only in the API
server that serves the CRD.  So each :class:`~podlife.registry.catalog.Catalog` owns
one :class:`CustomSchemas`: the CRD controller registers the (structural) OpenAPI v3
schema of every served version there, and strict field validation, the field manager
and OpenAPI ask it.  Two API servers in one process (tests, a cluster and its
restarted server) therefore never see each other's CRDs.

Every lookup answers for built-in kinds first, from the process-wide definitions, so
a CRD can never shadow a Kubernetes kind.  Custom kinds compile with a compiler of
their own that takes the built-in definitions they refer to (``ObjectMeta``) from the
shared one; a registration change drops only the custom nodes.  Custom kinds are
*not* strategic-merge-able (:func:`~podlife.registry.schemas.loader.supports_strategic_merge`),
as in Kubernetes.
"""

from __future__ import annotations

import threading
from typing import Any, Mapping

from . import loader, tree
from .loader import OBJECT_META_DEFINITION, REF_PREFIX
from .tree import Compiler, SchemaNode

__all__ = ["CustomSchemas", "custom_definition_name"]


def custom_definition_name(group: str, version: str, kind: str) -> str:
    """The OpenAPI name Kubernetes gives a CRD kind: reversed group, version, kind.

    ``network.podlife.io/v1 Port`` becomes ``io.podlife.network.v1.Port``.
    """
    rev = ".".join(reversed(group.split("."))) if group else "core"
    return f"{rev}.{version}.{kind}"


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
        "description": "Standard object's metadata.",
        "allOf": [{"$ref": REF_PREFIX + OBJECT_META_DEFINITION}]})
    schema["properties"] = props
    schema.setdefault("type", "object")
    schema.setdefault("description", f"{kind} is a {group or 'core'}/{version} resource.")
    schema["x-kubernetes-group-version-kind"] = [
        {"group": group, "version": version, "kind": kind}]
    return schema


class CustomSchemas:
    """The custom kinds' schemas of one API server, and lookups that include the built-in kinds."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._by_gvk: dict[tuple[str, str, str], tuple[str, dict[str, Any]]] = {}
        self._by_name: dict[str, dict[str, Any]] = {}
        self._compiler = self._new_compiler()
        self._nodes: dict[tuple[str, str, str], SchemaNode] = {}

    def _new_compiler(self) -> Compiler:
        return Compiler(self._by_name.get, tree.node_for_definition)

    # -- registration (the CRD controller) ----------------------------------------

    def register(self, group: str, version: str, kind: str,
                 openapi_v3_schema: Mapping[str, Any]) -> str:
        """Register the (structural) OpenAPI v3 schema of a kind Kubernetes does not define.

        ``apiVersion``, ``kind`` and ``metadata`` (an ``ObjectMeta``) are added when the
        schema does not declare them, as the API server does for CRDs.  Returns the
        definition name.  Re-registering replaces the schema (CRD updates).
        """
        name = custom_definition_name(group, version, kind)
        schema = _complete_custom_schema(dict(openapi_v3_schema), group, version, kind)
        with self._lock:
            self._by_gvk[(group, version, kind)] = (name, schema)
            self._by_name[name] = schema
            self._forget_compiled()
        return name

    def unregister(self, group: str, version: str, kind: str) -> None:
        with self._lock:
            entry = self._by_gvk.pop((group, version, kind), None)
            if entry is not None:
                self._by_name.pop(entry[0], None)
                self._forget_compiled()

    def _forget_compiled(self) -> None:
        """Drop compiled custom nodes (a schema changed); callers hold the lock."""
        self._compiler = self._new_compiler()
        self._nodes = {}

    # -- lookups --------------------------------------------------------------------

    def schema(self, group: str, version: str, kind: str) -> dict[str, Any] | None:
        """The registered schema of a custom kind (see :meth:`register`)."""
        entry = self._by_gvk.get((group, version, kind))
        return entry[1] if entry else None

    def definition_name(self, group: str, version: str, kind: str) -> str | None:
        """The OpenAPI definition name of a kind, built-in or registered custom."""
        name = loader.definition_name(group, version, kind)
        if name is not None:
            return name
        entry = self._by_gvk.get((group, version, kind))
        return entry[0] if entry else None

    def schema_for(self, group: str, version: str, kind: str) -> dict[str, Any] | None:
        """The (OpenAPI v3) schema of a kind, built-in or registered custom, or ``None``."""
        builtin = loader.schema_for(group, version, kind)
        return builtin if builtin is not None else self.schema(group, version, kind)

    def compiled(self, group: str, version: str, kind: str) -> SchemaNode | None:
        """The compiled schema of a kind, built-in or registered custom, or ``None`` (cached)."""
        node = tree.compiled(group, version, kind)
        if node is not None:
            return node
        gvk = (group, version, kind)
        node = self._nodes.get(gvk)
        if node is None:
            with self._lock:
                entry = self._by_gvk.get(gvk)
                if entry is None:
                    return None
                node = self._nodes[gvk] = self._compiler.definition(entry[0])
        return node
