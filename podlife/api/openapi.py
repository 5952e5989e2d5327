"""OpenAPI v3 documents (``/openapi/v3`` and ``/openapi/v3/<api|apis/group>/<version>``).

Design.  kubectl (1.30 to 1.37) refuses ``create -f``/``apply -f`` until it has downloaded
OpenAPI, and ``explain`` is built entirely on it, so the server publishes the same
per-group-version v3 documents as the real API server:

* the root (:func:`openapi_v3_root`) lists one ``serverRelativeURL`` per
  group-version, carrying ``?hash=<sha512>``;
* each document (:func:`openapi_v3_document`) has ``paths`` with the operations of
  every served resource — each carrying ``x-kubernetes-group-version-kind`` and
  the ``dryRun``/``fieldManager``/``fieldValidation`` parameters inline (kubectl
  looks for ``fieldValidation`` on the PATCH operation to decide it may leave
  validation to the server, and for ``application/strategic-merge-patch+json`` in
  its request body to compute client-side apply patches from this document) —
  and ``components.schemas`` with every definition reachable from the served
  kinds, taken from :mod:`podlife.registry.schemas.loader` (descriptions, GVK and patch
  extensions included), which is what ``kubectl explain pod.spec.containers``
  walks.

Kinds Kubernetes does not define (our ``network.podlife.io`` kinds, CRDs) take
their schema from the resource (``schema`` attribute) or from the API server's
:class:`~podlife.registry.schemas.custom.CustomSchemas` (the ``schemas`` argument),
get a generated ``<Kind>List``, and, like CRDs, do not offer strategic merge patch.

Performance: nothing is built at import or start-up.  The hash is computed from
the *inputs* of a document (group-version, resources, custom schemas, schema data
version) — cheap and stable across restarts — so the root never has to build the
documents; a document is built on its first request and cached by that hash as
serialized bytes (``orjson`` with sorted keys, so identical inputs give identical
bytes).  ``document_etag`` gives the ``ETag`` header for the server's HTTP layer.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Protocol, Sequence

import orjson

from podlife.registry.schemas.custom import CustomSchemas, custom_definition_name
from podlife.registry.schemas.loader import REF_PREFIX, definition_name, definitions, is_builtin, referenced_definitions
from podlife.machinery.constants import KUBERNETES_VERSION

__all__ = [
    "ResourceInfo",
    "build_document",
    "ResourceLike",
    "document_etag",
    "document_hash",
    "document_path",
    "openapi_v3_document",
    "openapi_v3_root",
]

# Bump when the generated document format changes, so cached hashes change.
_FORMAT_VERSION = "podlife-openapi-3"
_DEFAULT_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
_STATUS = _META + "Status"
_DELETE_OPTIONS = _META + "DeleteOptions"
_PATCH = _META + "Patch"
_WATCH_EVENT = _META + "WatchEvent"
_LIST_META = _META + "ListMeta"
_RESOURCE_LIST = _META + "APIResourceList"
_SCALE = "io.k8s.api.autoscaling.v1.Scale"

_JSON_TYPES = ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf")
_WATCH_TYPES = ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf",
                "application/json;stream=watch", "application/vnd.kubernetes.protobuf;stream=watch")
_PATCH_TYPES_BUILTIN = ("application/apply-patch+yaml", "application/json-patch+json",
                        "application/merge-patch+json", "application/strategic-merge-patch+json")
_PATCH_TYPES_CUSTOM = ("application/apply-patch+yaml", "application/json-patch+json",
                       "application/merge-patch+json")


class ResourceLike(Protocol):
    """Anything describing a served resource (``ResourceInfo``, the registry's ``ResourceType``)."""

    plural: str
    kind: str
    namespaced: bool
    subresources: Sequence[str]
    verbs: Sequence[str]


@dataclass(frozen=True)
class ResourceInfo:
    """A served resource.  ``schema`` is the OpenAPI v3 schema of a kind Kubernetes
    does not define (otherwise the served release's definition is used)."""

    plural: str
    kind: str
    namespaced: bool
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = _DEFAULT_VERBS
    schema: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)


# ---------------------------------------------------------------------------
# Hashes and the root document
# ---------------------------------------------------------------------------

_lock = threading.Lock()
_documents: dict[str, bytes] = {}          # hash -> serialized document, oldest first
_MAX_CACHED_DOCUMENTS = 128
_last_resources: dict[tuple[str, str], tuple[Any, ...]] = {}


def document_path(group: str, version: str) -> str:
    """``api/v1`` or ``apis/<group>/<version>`` (relative to ``/openapi/v3/``)."""
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def _custom_schema_of(group: str, version: str, r: Any, schemas: CustomSchemas | None) -> Mapping[str, Any] | None:
    own = getattr(r, "schema", None)
    if isinstance(own, Mapping):
        return own
    if is_builtin(group, version, r.kind) or schemas is None:
        return None
    return schemas.schema(group, version, r.kind)


def _resource_fingerprint(group: str, version: str, r: Any, schemas: CustomSchemas | None) -> list[Any]:
    custom = _custom_schema_of(group, version, r, schemas)
    return [r.plural, r.kind, bool(r.namespaced), sorted(r.subresources or ()),
            sorted(r.verbs or ()), custom]


def document_hash(group: str, version: str, resources: Iterable[Any] | None,
                  schemas: CustomSchemas | None = None) -> str:
    """Stable hash of a document's inputs (uppercase hex SHA-512, as Kubernetes).

    ``schemas`` (here and below): the API server's custom kinds, for resources that
    carry no schema of their own.
    """
    res = list(resources) if resources is not None else None
    payload = {
        "format": _FORMAT_VERSION,
        "kubernetes": KUBERNETES_VERSION,
        "data": _data_version(),
        "gv": [group, version],
        "resources": sorted((_resource_fingerprint(group, version, r, schemas) for r in res), key=_sort_key)
        if res is not None else None,
    }
    blob = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS, default=_json_default)
    return hashlib.sha512(blob).hexdigest().upper()


def _sort_key(fp: list[Any]) -> tuple[str, str]:
    return (fp[0], fp[1])


def _json_default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"not JSON serializable: {value!r}")


_DATA_VERSION: str | None = None


def _data_version() -> str:
    global _DATA_VERSION
    if _DATA_VERSION is None:
        try:
            from importlib.metadata import version

            _DATA_VERSION = version("kubernetes-validate")
        except Exception:  # pragma: no cover - metadata missing in odd installs
            _DATA_VERSION = "unknown"
    return _DATA_VERSION


def document_etag(group: str, version: str, resources: Iterable[Any] | None,
                  schemas: CustomSchemas | None = None) -> str:
    """The ``ETag`` header value (quoted hash) of a group-version document."""
    return f'"{document_hash(group, version, resources, schemas)}"'


def openapi_v3_root(group_versions: Iterable[tuple[str, str]]
                    | Iterable[tuple[str, str, Sequence[Any]]]
                    | Mapping[tuple[str, str], Sequence[Any]],
                    schemas: CustomSchemas | None = None) -> dict[str, Any]:
    """The ``/openapi/v3`` discovery document.

    Accepts ``(group, version)`` pairs, ``(group, version, resources)`` triples or a
    mapping ``{(group, version): resources}``.  With resources the hash is exactly
    the document's; with bare pairs it is taken from the resources last passed to
    :func:`openapi_v3_document` for that group-version (or from the group-version
    alone before the first document request).
    """
    paths: dict[str, Any] = {}
    for group, version, res in _iter_group_versions(group_versions):
        if res is None:
            res = _last_resources.get((group, version))
        h = document_hash(group, version, res, schemas)
        rel = document_path(group, version)
        paths[rel] = {"serverRelativeURL": f"/openapi/v3/{rel}?hash={h}"}
    return {"paths": paths}


def _iter_group_versions(arg: Any) -> Iterable[tuple[str, str, Sequence[Any] | None]]:
    if isinstance(arg, Mapping):
        for (group, version), res in arg.items():
            yield group, version, list(res)
        return
    for entry in arg:
        if len(entry) == 3:
            yield entry[0], entry[1], list(entry[2])
        else:
            yield entry[0], entry[1], None


def openapi_v3_document(group: str, version: str, resources: Iterable[Any],
                        schemas: CustomSchemas | None = None) -> bytes:
    """The serialized OpenAPI v3 document of one group-version (built once, cached)."""
    res = list(resources)
    _last_resources[(group, version)] = tuple(res)
    h = document_hash(group, version, res, schemas)
    cached = _documents.get(h)
    if cached is not None:
        return cached
    with _lock:
        cached = _documents.get(h)
        if cached is None:
            doc = build_document(group, version, res, schemas)
            cached = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS, default=_json_default)
            while len(_documents) >= _MAX_CACHED_DOCUMENTS:   # stale versions (CRD edits)
                _documents.pop(next(iter(_documents)))
            _documents[h] = cached
    return cached


# ---------------------------------------------------------------------------
# Building one document
# ---------------------------------------------------------------------------


def _camel(text: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in text.replace("-", ".").split(".") if p)


def _group_camel(group: str) -> str:
    if not group:
        return "Core"
    trimmed = group[: -len(".k8s.io")] if group.endswith(".k8s.io") else group
    return _camel(trimmed)


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": REF_PREFIX + name}


def _gvk(group: str, version: str, kind: str) -> dict[str, str]:
    return {"group": group, "version": version, "kind": kind}


def _content(name: str, types: Sequence[str] = _JSON_TYPES) -> dict[str, Any]:
    return {t: {"schema": _ref(name)} for t in types}


def _response(name: str, codes: Sequence[str] = ("200",), types: Sequence[str] = _JSON_TYPES) -> dict[str, Any]:
    out: dict[str, Any] = {c: {"description": _CODE_TEXT[c], "content": _content(name, types)} for c in codes}
    out["401"] = {"description": "Unauthorized"}
    return out


_CODE_TEXT = {"200": "OK", "201": "Created", "202": "Accepted"}


def _q(name: str, description: str, type_: str = "string", unique: bool = True) -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": "query", "description": description,
                             "schema": {"type": type_, "uniqueItems": unique}}
    return param


_P_PRETTY = _q("pretty", "If 'true', the output is pretty printed.")
_P_DRY_RUN = _q("dryRun", "When present, modifications are not persisted. The only valid value is "
                          "\"All\": run every stage of the request except storing the result.")
_P_FIELD_MANAGER = _q("fieldManager", "Name of the actor making the change, recorded for field "
                                      "ownership. Up to 128 printable characters.")
_P_FIELD_VALIDATION = _q(
    "fieldValidation",
    "How to treat fields the schema does not know and duplicated fields in the request body: "
    "\"Ignore\" drops them silently, \"Warn\" drops them and returns a warning for each, "
    "\"Strict\" rejects the request with BadRequest.")
_P_FORCE = _q("force", "Apply requests only: take ownership of fields that other managers own "
                       "instead of failing with a conflict.", "boolean")
_P_GRACE = _q("gracePeriodSeconds", "Seconds to wait before the object is deleted; 0 deletes "
                                    "immediately. Defaults to the kind's own default.", "integer")
_P_ORPHAN = _q("orphanDependents", "Deprecated: use propagationPolicy. Whether dependents are "
                                   "orphaned.", "boolean")
_P_PROPAGATION = _q("propagationPolicy", "Whether and how garbage collection deletes dependents: "
                                         "\"Orphan\", \"Background\" or \"Foreground\".")
_P_LIST = [
    _q("allowWatchBookmarks", "Ask for BOOKMARK watch events. Servers may ignore it.", "boolean"),
    _q("continue", "Continue token from a previous limited list call."),
    _q("fieldSelector", "Restrict the list to objects whose fields match this selector."),
    _q("labelSelector", "Restrict the list to objects whose labels match this selector."),
    _q("limit", "Maximum number of items to return; use the continue token for more.", "integer"),
    _q("resourceVersion", "Which version of the collection to serve; see the API concepts docs."),
    _q("resourceVersionMatch", "How resourceVersion is applied to list calls."),
    _q("sendInitialEvents", "With watch=true, start with synthetic events for the current "
                            "state, then a bookmark.", "boolean"),
    _q("timeoutSeconds", "Timeout for the list/watch call.", "integer"),
    _q("watch", "Watch for changes and stream them as add, update and remove events.", "boolean"),
]


def _path_param(name: str, what: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": what,
            "schema": {"type": "string", "uniqueItems": True}}


_P_NAME = _path_param("name", "name of the object")
_P_NAMESPACE = _path_param("namespace", "object name and auth scope, such as for teams and projects")


class _DocBuilder:
    def __init__(self, group: str, version: str, schemas: CustomSchemas | None) -> None:
        self.group = group
        self.version = version
        self.schemas = schemas
        self.paths: dict[str, Any] = {}
        self.roots: set[str] = {_STATUS, _DELETE_OPTIONS, _PATCH, _WATCH_EVENT, _RESOURCE_LIST}
        self.extra: dict[str, dict[str, Any]] = {}
        self.base = f"/api/{version}" if not group else f"/apis/{group}/{version}"
        self.tag = f"{(group.split('.')[0] if group else 'core')}_{version}"
        self.op_prefix = _group_camel(group) + _camel(version)

    # -- schemas -------------------------------------------------------------

    def kind_schema(self, r: Any) -> tuple[str, str | None, bool]:
        """(definition name, list definition name, builtin?) of a resource's kind."""
        g, v, kind = self.group, self.version, r.kind
        if is_builtin(g, v, kind):
            name = definition_name(g, v, kind)
            assert name is not None
            list_name = definition_name(g, v, kind + "List")
            self.roots.add(name)
            if list_name:
                self.roots.add(list_name)
            return name, list_name, True
        name = custom_definition_name(g, v, kind)
        custom = _custom_schema_of(g, v, r, self.schemas)
        if custom is None:
            custom = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        body = _complete_custom(custom, g, v, kind)
        self.extra[name] = body
        list_name = name + "List"
        self.extra[list_name] = _list_schema(name, g, v, kind)
        self.roots.add(_LIST_META)
        self.roots.update(_refs_of(body))
        return name, list_name, False

    def components(self) -> dict[str, Any]:
        defs = definitions()
        out = {n: defs[n] for n in referenced_definitions(self.roots) if n in defs}
        out.update(self.extra)
        return out

    # -- paths ---------------------------------------------------------------

    def add_resource(self, r: Any) -> None:
        name, list_name, builtin = self.kind_schema(r)
        verbs = set(r.verbs or _DEFAULT_VERBS)
        gvk = _gvk(self.group, self.version, r.kind)
        ns = "/namespaces/{namespace}" if r.namespaced else ""
        coll = f"{self.base}{ns}/{r.plural}"
        item = f"{coll}/{{name}}"
        scope = "Namespaced" if r.namespaced else ""
        common = [_P_NAMESPACE] if r.namespaced else []
        ops = self._collection_ops(r.kind, scope, name, list_name, verbs, gvk)
        if ops:
            self.paths[coll] = {**ops, "parameters": [*common, _P_PRETTY]}
        ops = self._item_ops(r.kind, scope, name, verbs, gvk, builtin)
        if ops:
            self.paths[item] = {**ops, "parameters": [_P_NAME, *common, _P_PRETTY]}
        if r.namespaced and "list" in verbs and list_name:
            self.paths[f"{self.base}/{r.plural}"] = {
                "get": self._op("list", f"{r.kind}ForAllNamespaces", "list or watch objects of kind " + r.kind,
                                gvk, [*_P_LIST], _response(list_name, types=_WATCH_TYPES), action="list"),
                "parameters": [_P_PRETTY],
            }
        for sub in r.subresources or ():
            self._add_subresource(r, sub, item, scope, name, gvk, builtin, common)

    def _op(self, verb: str, what: str, summary: str, gvk: dict[str, str],
            params: list[dict[str, Any]], responses: dict[str, Any], *, action: str,
            body: dict[str, Any] | None = None) -> dict[str, Any]:
        op: dict[str, Any] = {
            "tags": [self.tag],
            "description": summary,
            "operationId": f"{verb}{self.op_prefix}{what}",
            "responses": responses,
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
        }
        if params:
            op["parameters"] = params
        if body is not None:
            op["requestBody"] = body
        return op

    def _collection_ops(self, kind: str, scope: str, name: str, list_name: str | None,
                        verbs: set[str], gvk: dict[str, str]) -> dict[str, Any]:
        ops: dict[str, Any] = {}
        what = f"{scope}{kind}"
        if "list" in verbs and list_name:
            ops["get"] = self._op("list", what, f"list or watch objects of kind {kind}", gvk,
                                  list(_P_LIST), _response(list_name, types=_WATCH_TYPES), action="list")
        if "create" in verbs:
            ops["post"] = self._op("create", what, f"create a {kind}", gvk,
                                   [_P_DRY_RUN, _P_FIELD_MANAGER, _P_FIELD_VALIDATION],
                                   _response(name, ("200", "201", "202")), action="post",
                                   body={"content": {"*/*": {"schema": _ref(name)}}, "required": True})
        if "deletecollection" in verbs:
            ops["delete"] = self._op("deletecollection", what, f"delete collection of {kind}", gvk,
                                     [_P_DRY_RUN, _P_GRACE, _P_ORPHAN, _P_PROPAGATION, *_P_LIST],
                                     _response(_STATUS), action="deletecollection",
                                     body={"content": {"*/*": {"schema": _ref(_DELETE_OPTIONS)}}})
        return ops

    def _item_ops(self, kind: str, scope: str, name: str, verbs: set[str],
                  gvk: dict[str, str], builtin: bool) -> dict[str, Any]:
        ops: dict[str, Any] = {}
        what = f"{scope}{kind}"
        if "get" in verbs:
            ops["get"] = self._op("read", what, f"read the specified {kind}", gvk, [],
                                  _response(name), action="get")
        if "update" in verbs:
            ops["put"] = self._update_op("replace", what, f"replace the specified {kind}", name, gvk)
        if "patch" in verbs:
            ops["patch"] = self._patch_op(what, f"partially update the specified {kind}", name, gvk, builtin)
        if "delete" in verbs:
            ops["delete"] = self._op("delete", what, f"delete a {kind}", gvk,
                                     [_P_DRY_RUN, _P_GRACE, _P_ORPHAN, _P_PROPAGATION],
                                     _response(_STATUS, ("200", "202")), action="delete",
                                     body={"content": {"*/*": {"schema": _ref(_DELETE_OPTIONS)}}})
        return ops

    def _update_op(self, verb: str, what: str, summary: str, name: str,
                   gvk: dict[str, str]) -> dict[str, Any]:
        return self._op(verb, what, summary, gvk,
                        [_P_DRY_RUN, _P_FIELD_MANAGER, _P_FIELD_VALIDATION],
                        _response(name, ("200", "201")), action="put",
                        body={"content": {"*/*": {"schema": _ref(name)}}, "required": True})

    def _patch_op(self, what: str, summary: str, name: str, gvk: dict[str, str],
                  strategic: bool) -> dict[str, Any]:
        types = _PATCH_TYPES_BUILTIN if strategic else _PATCH_TYPES_CUSTOM
        return self._op("patch", what, summary, gvk,
                        [_P_DRY_RUN, _P_FIELD_MANAGER, _P_FIELD_VALIDATION, _P_FORCE],
                        _response(name, ("200", "201")), action="patch",
                        body={"content": {t: {"schema": _ref(_PATCH)} for t in types}, "required": True})

    def _add_subresource(self, r: Any, sub: str, item: str, scope: str, name: str,
                         gvk: dict[str, str], builtin: bool, common: list[dict[str, Any]]) -> None:
        path = f"{item}/{sub}"
        what = f"{scope}{r.kind}{_camel(sub)}"
        params = [_P_NAME, *common, _P_PRETTY]
        if sub in ("status", "ephemeralcontainers", "resize", "approval", "finalize"):
            ops: dict[str, Any] = {}
            if sub not in ("finalize",):
                ops["get"] = self._op("read", what, f"read {sub} of the specified {r.kind}", gvk, [],
                                      _response(name), action="get")
            ops["put"] = self._update_op("replace", what, f"replace {sub} of the specified {r.kind}", name, gvk)
            if sub != "finalize":
                ops["patch"] = self._patch_op(what, f"partially update {sub} of the specified {r.kind}",
                                              name, gvk, builtin)
            self.paths[path] = {**ops, "parameters": params}
        elif sub == "scale":
            self.roots.add(_SCALE)
            sgvk = _gvk("autoscaling", "v1", "Scale")
            self.paths[path] = {
                "get": self._op("read", what, f"read scale of the specified {r.kind}", sgvk, [],
                                _response(_SCALE), action="get"),
                "put": self._update_op("replace", what, f"replace scale of the specified {r.kind}", _SCALE, sgvk),
                "patch": self._patch_op(what, f"partially update scale of the specified {r.kind}",
                                        _SCALE, sgvk, True),
                "parameters": params,
            }
        elif sub in _POST_SUBRESOURCES:
            group, version, kind = _POST_SUBRESOURCES[sub]
            sub_name = definition_name(group, version, kind)
            if sub_name is None:
                return
            self.roots.add(sub_name)
            self.paths[path] = {
                "post": self._op("create", what, f"create {sub} of a {r.kind}", _gvk(group, version, kind),
                                 [_P_DRY_RUN, _P_FIELD_MANAGER, _P_FIELD_VALIDATION],
                                 _response(sub_name, ("200", "201", "202")), action="post",
                                 body={"content": {"*/*": {"schema": _ref(sub_name)}}, "required": True}),
                "parameters": params,
            }
        else:  # log, exec, attach, portforward, proxy: streaming "connect" endpoints
            text = {"text/plain": {"schema": {"type": "string"}}}
            methods = ("get",) if sub == "log" else ("get", "post")
            self.paths[path] = {
                m: {"tags": [self.tag], "description": f"connect {m.upper()} requests to {sub} of {r.kind}",
                    "operationId": f"{'read' if sub == 'log' else 'connect' + _camel(m)}{self.op_prefix}{what}",
                    "responses": {"200": {"description": "OK", "content": text},
                                  "401": {"description": "Unauthorized"}},
                    "x-kubernetes-action": "get" if sub == "log" else "connect",
                    "x-kubernetes-group-version-kind": _gvk(self.group, self.version, r.kind)}
                for m in methods
            }
            self.paths[path]["parameters"] = params

    def add_resource_list_path(self) -> None:
        self.paths[self.base + "/"] = {
            "get": {"tags": [self.tag], "description": "get available resources",
                    "operationId": f"get{self.op_prefix}APIResources",
                    "responses": _response(_RESOURCE_LIST, types=("application/json", "application/yaml",
                                                                  "application/vnd.kubernetes.protobuf"))},
        }


_POST_SUBRESOURCES = {
    "binding": ("", "v1", "Binding"),
    "eviction": ("policy", "v1", "Eviction"),
    "token": ("authentication.k8s.io", "v1", "TokenRequest"),
}


def _complete_custom(schema: Mapping[str, Any], group: str, version: str, kind: str) -> dict[str, Any]:
    body = dict(schema)
    props = dict(body.get("properties") or {})
    props.setdefault("apiVersion", {"description": "APIVersion defines the versioned schema of this "
                                                   "representation of an object.", "type": "string"})
    props.setdefault("kind", {"description": "Kind is a string value representing the REST resource "
                                             "this object represents.", "type": "string"})
    props.setdefault("metadata", {"description": "Standard object's metadata.",
                                  "allOf": [_ref(_META + "ObjectMeta")]})
    body["properties"] = props
    body.setdefault("type", "object")
    body.setdefault("description", f"{kind} is a {group or 'core'}/{version} resource.")
    body["x-kubernetes-group-version-kind"] = [_gvk(group, version, kind)]
    return body


def _list_schema(item_name: str, group: str, version: str, kind: str) -> dict[str, Any]:
    return {
        "description": f"{kind}List is a list of {kind}",
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"description": "APIVersion defines the versioned schema of this "
                                          "representation of an object.", "type": "string"},
            "items": {"description": f"List of {kind.lower()}s.", "type": "array", "items": _ref(item_name)},
            "kind": {"description": "Kind is a string value representing the REST resource this "
                                    "object represents.", "type": "string"},
            "metadata": {"description": "Standard list metadata.", "allOf": [_ref(_LIST_META)]},
        },
        "x-kubernetes-group-version-kind": [_gvk(group, version, kind + "List")],
    }


def _refs_of(schema: Mapping[str, Any]) -> set[str]:
    found: set[str] = set()

    def walk(v: Any) -> None:
        if isinstance(v, Mapping):
            ref = v.get("$ref")
            if isinstance(ref, str) and ref.startswith(REF_PREFIX):
                found.add(ref[len(REF_PREFIX):])
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(schema)
    return found


def build_document(group: str, version: str, resources: Iterable[Any],
                   schemas: CustomSchemas | None = None) -> dict[str, Any]:
    """The OpenAPI v3 document of one group-version, as a dict (uncached)."""
    b = _DocBuilder(group, version, schemas)
    b.add_resource_list_path()
    for r in sorted(resources, key=lambda r: r.plural):
        b.add_resource(r)
    title = "Kubernetes"
    return {
        "openapi": "3.0.0",
        "info": {"title": title, "version": f"v{KUBERNETES_VERSION}.0"},
        "paths": b.paths,
        "components": {
            "schemas": b.components(),
            "securitySchemes": {"BearerToken": {"type": "apiKey", "description": "Bearer Token authentication",
                                                "name": "authorization", "in": "header"}},
        },
        "security": [{"BearerToken": []}],
    }
