"""Serving custom resources: the component that turns CRDs into served kinds.

Design
------
:class:`CRDController` follows the CRDs the way apiextensions-apiserver's naming,
establishing and finalizer controllers follow their CRD informer:

* a synchronous store listener (it runs after the watch cache, inside the commit)
  notes which CRD changed and wakes one short-lived worker task, which reconciles it:
  are its names free? -> register one :class:`~podlife.registry.crds.types.CustomResourceType`
  per served version in the catalog (discovery and OpenAPI follow), one REST per
  version, the schema for strict field validation and ``kubectl explain``; then write
  ``status`` (``NamesAccepted``, ``Established``, ``acceptedNames``);
* deletion follows the ``customresourcecleanup.apiextensions.k8s.io`` finalizer:
  :class:`~podlife.registry.crds.strategy.CRDStrategy` adds it and a ``Terminating`` condition on the first DELETE; the
  worker then refuses new custom resources (405), deletes the existing ones, waits
  until they are gone (their own finalizers, kopf's for instance, may hold them),
  and removes the finalizer. The CRD's DELETE event stops serving: 404 afterwards,
  open watches end.

Why a watch and not a hook in the REST layer: a CRD reaches the store by every path
(HTTP, the in-process client, a restart on a persisted store) and all of them must
lead to serving; and ``Established`` can only be written *after* the kinds are
served, which cannot happen inside the CRD's own write. It also keeps Kubernetes'
observable protocol: kubectl (``wait --for condition=established``) and kopf wait for
``Established``, which here follows the CRD's write within one event-loop turn.

Storage: all versions of a CRD share one key prefix (group + plural; conversion is
"None"). :class:`SharedStorage` is registered in the watch cache under that prefix
and feeds one :class:`VersionView` per served version: the same objects, each shown
with its version's ``apiVersion``. An object is stored once, in whatever version
wrote it; every read converts, which with "None" conversion is only ``apiVersion``.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from aiohttp import web

from ..registry.crds import strategy as rules
from ..registry.crds.field_errors import go_value
from ..registry.crds.strategy import CLEANUP_FINALIZER
from ..registry.crds.types import CustomResourceType, get_path, resource_types, set_path
from ..registry.schemas.custom import CustomSchemas
from ..registry.schemas.decoder import validate_object
from ..registry.types import Obj, ResourceType
from ..store.base import Event, KeyValue
from ..machinery import errors
from .cache import CachedObject, ResourceCache
from .fieldvalidation import SchemaChecker, report
from .handlers import PATCH_TYPES, Target, json_response, read_body
from ..machinery.patch import PatchError, apply_json_patch, apply_merge_patch
from .rest import INTERNAL, ApiContext, DeleteOptions, ResourceREST, now_rfc3339

log = logging.getLogger(__name__)

#: how soon a terminating CRD looks again at custom resources that are still there
RETRY_SECONDS = 1.0
_OPEN_SCHEMA = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
_controllers: weakref.WeakKeyDictionary[ApiContext, CRDController] = weakref.WeakKeyDictionary()


def is_custom(rt: ResourceType) -> bool:
    return isinstance(rt, CustomResourceType)


def controller_of(ctx: ApiContext) -> CRDController | None:
    """The CRD controller installed on ``ctx`` (tests use it to wait for reconciles)."""
    return _controllers.get(ctx)


async def install(ctx: ApiContext) -> CRDController | None:
    """Serve CRDs on ``ctx`` (and every custom resource the store already holds)."""
    crd_rt = ctx.catalog.lookup(rules.GROUP, rules.VERSION, rules.PLURAL)
    if crd_rt is None or ctx.rest_by(rules.GROUP, rules.VERSION, rules.PLURAL) is None:
        return None
    controller = CRDController(ctx, crd_rt)
    _controllers[ctx] = controller
    await controller.start()
    return controller


# ---------------------------------------------------------------------------
# Caches: one storage, one view per served version
# ---------------------------------------------------------------------------


def _as_version(obj: Obj, api_version: str) -> Obj:
    """``obj`` as served in another version: conversion "None" changes only apiVersion."""
    if obj.get("apiVersion") == api_version:
        return obj
    return {**obj, "apiVersion": api_version}


class VersionView(ResourceCache):
    """One served version's cache over the shared storage (objects shown in its version)."""

    def load(self, key: str, value: bytes, rv: int) -> None:
        super().load(key, value, rv)
        self.objects[key].obj["apiVersion"] = self.rt.api_version  # freshly decoded: ours to change

    def apply(self, ev: Event, now: float) -> None:
        if ev.type != "DELETE":
            obj = ev.kv.obj if ev.kv.obj is not None else orjson.loads(ev.kv.value)
            served = _as_version(obj, self.rt.api_version)
            # another version's object is not the stored bytes: no stored encoding to reuse
            kv = replace(ev.kv, obj=served) if served is obj else replace(ev.kv, obj=served, value=b"")
            ev = Event(ev.type, kv, ev.prev)
        super().apply(ev, now)

    def adopt(self, sibling: ResourceCache) -> None:
        """Start from another version's current objects (no history: older watches get 410)."""
        for key, co in sibling.objects.items():
            self.objects[key] = CachedObject(key, _as_version(co.obj, self.rt.api_version), co.rv)
        self.revision = self.floor = sibling.revision

    def close(self) -> None:
        for watcher in list(self.watchers):
            watcher.stop()


class SharedStorage(ResourceCache):
    """Registered in the watch cache under the CRD's key prefix; feeds each version's view."""

    def __init__(self, rt: ResourceType, revision: int, seed: list[KeyValue]) -> None:
        super().__init__(rt, revision)
        self.views: dict[str, VersionView] = {}
        self._seed = seed

    def apply(self, ev: Event, now: float) -> None:
        for view in self.views.values():
            view.apply(ev, now)

    def advance(self, revision: int, now: float) -> None:
        self.revision = revision
        for view in self.views.values():
            view.advance(revision, now)

    def view_for(self, rt: CustomResourceType) -> VersionView:
        view = self.views.get(rt.version)
        if view is not None:
            view.rt = rt
            return view
        view = VersionView(rt, self.revision)
        sibling = next(iter(self.views.values()), None)
        if sibling is not None:
            view.adopt(sibling)
        else:
            for kv in self._seed:
                view.load(kv.key, kv.value, kv.mod_revision)
        self._seed = []
        self.views[rt.version] = view
        return view

    def drop(self, version: str) -> None:
        view = self.views.pop(version, None)
        if view is not None:
            view.close()


# ---------------------------------------------------------------------------
# REST of CRDs and of custom resources
# ---------------------------------------------------------------------------


@dataclass
class ServedCRD:
    """What one CRD currently serves."""

    name: str
    storage: SharedStorage
    types: dict[str, CustomResourceType] = field(default_factory=dict)
    generation: int = -1
    terminating: bool = False


class CustomResourceREST(ResourceREST):
    """A served version's REST: objects are served in this version; no creates while terminating."""

    def __init__(self, rt: CustomResourceType, ctx: ApiContext, cache: ResourceCache, served: ServedCRD) -> None:
        super().__init__(rt, ctx, cache)
        self.served = served

    async def create(self, obj: Any, namespace: str | None = None,
                     **options: Any) -> tuple[CachedObject | Obj, list[str]]:
        if self.served.terminating:
            raise errors.ApiError(405, "MethodNotAllowed",
                                  "create not allowed while custom resource definition is terminating",
                                  {"group": self.rt.group, "kind": self.rt.plural})
        return await super().create(obj, namespace, **options)

    def from_storage(self, obj: Obj, mod_revision: int) -> Obj:
        obj = super().from_storage(obj, mod_revision)
        obj["apiVersion"] = self.rt.api_version  # all versions share storage ("None" conversion)
        return obj


# ---------------------------------------------------------------------------
# Strict field validation of custom resources
# ---------------------------------------------------------------------------

Checker = Callable[[ResourceType, Obj, str], list[str]]


def custom_aware(checker: SchemaChecker) -> Checker:
    """Wrap the schema checker: custom resources only report unknown fields there.

    Their type errors are schema validation (422 ``Invalid``, from the strategy), as in
    Kubernetes, not decoding errors (400).
    """

    def check(rt: ResourceType, obj: Obj, mode: str) -> list[str]:
        if isinstance(rt, CustomResourceType):
            return unknown_field_checker(rt, obj, mode, checker.schemas)
        return checker(rt, obj, mode)

    return check


def unknown_field_checker(rt: ResourceType, obj: Obj, mode: str, schemas: CustomSchemas) -> list[str]:
    if mode == "Ignore":
        return []
    issues = validate_object(obj, rt.group, rt.version, rt.kind, schemas=schemas, unknown_fields=True, required=False)
    return report(rt, [i for i in issues if i.kind == "unknown"], mode)


# ---------------------------------------------------------------------------
# The controller
# ---------------------------------------------------------------------------


class CRDController:
    """Keeps what is served in step with the CRDs (see the module docstring)."""

    def __init__(self, ctx: ApiContext, crd_rt: ResourceType) -> None:
        self.ctx = ctx
        base = ctx.rest_for(crd_rt)
        self.crd_rest = ResourceREST(crd_rt, ctx, base.cache)
        self.served: dict[str, ServedCRD] = {}
        self._prefix = crd_rt.key_prefix()
        self._dirty: set[str] = set()
        self._worker: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._retries: dict[str, asyncio.TimerHandle] = {}
        self._cleanup: dict[str, str] = {}  # storage prefix -> terminating CRD
        self._closed = False

    async def start(self) -> None:
        ctx = self.ctx
        ctx.rest[(self.crd_rest.rt.group, self.crd_rest.rt.version, self.crd_rest.rt.plural)] = self.crd_rest
        ctx.object_checkers[:] = [custom_aware(c) if isinstance(c, SchemaChecker) else c for c in ctx.object_checkers]
        ctx.store.add_listener(self._on_events)
        for co in list(self.crd_rest.cache.objects.values()):
            await self.reconcile(co.name)

    # ---- scheduling -------------------------------------------------------------------

    def _on_events(self, events: list[Event]) -> None:
        if self._closed:
            return
        for ev in events:
            key = ev.kv.key
            if key.startswith(self._prefix):
                self.kick(key[len(self._prefix):])
            elif self._cleanup:
                for prefix, name in self._cleanup.items():
                    if key.startswith(prefix):
                        self.kick(name)
                        break

    def kick(self, name: str) -> None:
        """Reconcile ``name`` soon (from the running event loop)."""
        self._dirty.add(name)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._drain(), name="crd-controller")

    async def _drain(self) -> None:
        while self._dirty:
            name = self._dirty.pop()
            try:
                await self.reconcile(name)
            except Exception:  # never let one CRD stop the others
                log.exception("reconciling CustomResourceDefinition %s failed", name)
                self._retry_later(name)

    def _retry_later(self, name: str) -> None:
        handle = self._retries.pop(name, None)
        if handle is not None:
            handle.cancel()
        self._retries[name] = asyncio.get_running_loop().call_later(RETRY_SECONDS, self.kick, name)

    async def settle(self) -> None:
        """Wait until every pending reconcile has run (for tests and orderly shutdown)."""
        while self._worker is not None and not self._worker.done():
            await self._worker

    async def close(self) -> None:
        """Stop following CRDs and serving their kinds (and forget their schemas in the catalog)."""
        await self.settle()
        self._closed = True  # the store listener cannot be removed: it ignores events from now on
        self._cleanup.clear()
        for name in list(self.served):
            self._unserve(name)
        for handle in self._retries.values():
            handle.cancel()
        self._retries.clear()

    # ---- reconcile ----------------------------------------------------------------------

    async def reconcile(self, name: str) -> None:
        async with self._lock:
            co = self.crd_rest.cache.get(self.crd_rest.rt.key(None, name))
            if co is None:
                self._unserve(name)
                self._kick_rejected(name)  # names it held may now be free
                return
            crd = co.obj
            if crd["metadata"].get("deletionTimestamp"):
                await self._terminate(crd)
                return
            conflict = self._name_conflict(crd)
            if conflict is not None:
                await self._reject_names(name, *conflict)
                return
            await self._serve(crd)
            await self._accept(crd)

    def _kick_rejected(self, freed_by: str) -> None:
        for co in self.crd_rest.cache.objects.values():
            if co.name != freed_by and not rules.is_condition_true(co.obj, "NamesAccepted"):
                self.kick(co.name)

    def _name_conflict(self, crd: Obj) -> tuple[str, str] | None:
        """(reason, message) when another kind of the CRD's group already uses one of its names."""
        wanted = rules.names_of(crd)
        group = crd["spec"]["group"]
        for rt in self.ctx.catalog.types:
            if rt.group == group and not isinstance(rt, CustomResourceType):
                if rt.plural == wanted["plural"]:
                    return "PluralConflict", f'"{rt.plural}" is already in use'
                if rt.kind == wanted["kind"]:
                    return "KindConflict", f'"{rt.kind}" is already in use'
        for other in self.crd_rest.cache.objects.values():
            if other.name == crd["metadata"]["name"] or other.obj.get("spec", {}).get("group") != group:
                continue
            found = _names_clash(wanted, (other.obj.get("status") or {}).get("acceptedNames") or {})
            if found is not None:
                return found
        return None

    async def _serve(self, crd: Obj) -> None:
        name = crd["metadata"]["name"]
        types = resource_types(crd)
        served = self.served.get(name)
        generation = int(crd["metadata"].get("generation") or 0)
        if served is not None and served.generation == generation:
            return
        if served is not None and (not types or _layout_changed(served, types[0])):
            self._unserve(name)
            served = None
        if not types:
            return
        if served is None:
            served = ServedCRD(name, await self._open_storage(types[0]))
            self.served[name] = served
        self._register(served, types)
        served.generation = generation

    async def _open_storage(self, rt: CustomResourceType) -> SharedStorage:
        prefix = rt.key_prefix()
        res = await self.ctx.store.range(prefix)
        storage = SharedStorage(rt, res.revision, res.kvs)
        self.ctx.watch_cache.caches[prefix] = storage
        return storage

    def _register(self, served: ServedCRD, types: list[CustomResourceType]) -> None:
        wanted = {rt.version for rt in types}
        for version in [v for v in served.types if v not in wanted]:
            self._drop_version(served, version)
        for rt in types:  # re-added below in priority order: discovery lists the preferred first
            self.ctx.catalog.remove(rt.group, rt.version, rt.plural)
        for rt in types:
            view = served.storage.view_for(rt)
            self.ctx.rest[(rt.group, rt.version, rt.plural)] = CustomResourceREST(rt, self.ctx, view, served)
            self.ctx.catalog.add(rt)
            self.ctx.catalog.schemas.register(rt.group, rt.version, rt.kind, rt.schema or _OPEN_SCHEMA)
            served.types[rt.version] = rt

    def _drop_version(self, served: ServedCRD, version: str) -> None:
        rt = served.types.pop(version)
        self.ctx.catalog.remove(rt.group, rt.version, rt.plural)
        self.ctx.rest.pop((rt.group, rt.version, rt.plural), None)
        self.ctx.catalog.schemas.unregister(rt.group, rt.version, rt.kind)
        served.storage.drop(version)

    def _unserve(self, name: str) -> None:
        handle = self._retries.pop(name, None)
        if handle is not None:
            handle.cancel()
        served = self.served.pop(name, None)
        if served is None:
            return
        for version in list(served.types):
            self._drop_version(served, version)
        prefix = served.storage.rt.key_prefix()
        self._cleanup.pop(prefix, None)
        if self.ctx.watch_cache.caches.get(prefix) is served.storage:
            del self.ctx.watch_cache.caches[prefix]

    # ---- status -------------------------------------------------------------------------

    async def _write_status(self, name: str, change: Callable[[dict[str, Any]], None]) -> None:
        def mutate(current: Obj) -> Obj:
            change(rules.status_dict(current))
            return current

        try:
            await self.crd_rest.guaranteed_update(None, name, mutate, subresource="status")
        except errors.ApiError as exc:
            if exc.code != 404:
                raise

    async def _accept(self, crd: Obj) -> None:
        names, now = rules.names_of(crd), now_rfc3339()

        def change(status: dict[str, Any]) -> None:
            status["acceptedNames"] = names
            rules.set_condition(status, "NamesAccepted", "True", "NoConflicts", "no conflicts found", now)
            rules.set_condition(status, "Established", "True", "InitialNamesAccepted",
                                "the initial names have been accepted", now)

        await self._write_status(crd["metadata"]["name"], change)

    async def _reject_names(self, name: str, reason: str, message: str) -> None:
        now = now_rfc3339()

        def change(status: dict[str, Any]) -> None:
            rules.set_condition(status, "NamesAccepted", "False", reason, message, now)
            established = next((c for c in status.get("conditions") or [] if c.get("type") == "Established"), None)
            if established is None or established.get("status") != "True":
                rules.set_condition(status, "Established", "False", "NotAccepted", "not all names are accepted", now)

        await self._write_status(name, change)

    # ---- deletion -----------------------------------------------------------------------

    async def _terminate(self, crd: Obj) -> None:
        name = crd["metadata"]["name"]
        served = self.served.get(name)
        if served is None and rules.is_condition_true(crd, "Established"):
            await self._serve(crd)  # after a restart: serve again, to delete what is stored
            served = self.served.get(name)
        if served is not None:
            served.terminating = True
        if CLEANUP_FINALIZER not in (crd["metadata"].get("finalizers") or []):
            return  # other finalizers hold it; serving stops when it is gone
        if served is None or not served.types:
            await self._finish(name, "NeverEstablished", "resource was never established")
            return
        self._cleanup[served.storage.rt.key_prefix()] = name
        remaining = await self._delete_instances(served)
        if remaining:
            now = now_rfc3339()
            await self._write_status(name, lambda s: rules.set_condition(
                s, "Terminating", "True", "InstanceDeletionInProgress", "CustomResource deletion is in progress", now))
            self._retry_later(name)
            return
        await self._finish(name, "InstanceDeletionCompleted", "removed all instances")

    async def _delete_instances(self, served: ServedCRD) -> int:
        """Delete every custom resource of the CRD; how many are still there."""
        rest = self.ctx.rest_by(*_gvr(next(iter(served.types.values()))))
        assert rest is not None
        for co in list(rest.cache.objects.values()):
            if co.metadata.get("deletionTimestamp"):
                continue
            try:
                await rest.delete(co.namespace or None, co.name, DeleteOptions())
            except errors.ApiError as exc:
                if exc.code not in (404, 409):
                    raise
        return len(rest.cache.objects)

    async def _finish(self, name: str, reason: str, message: str) -> None:
        """Mark the cleanup done and drop the finalizer (the CRD goes if nothing else holds it)."""
        now = now_rfc3339()

        def mutate(current: Obj) -> Obj:
            meta = current["metadata"]
            meta["finalizers"] = [f for f in meta.get("finalizers") or [] if f != CLEANUP_FINALIZER]
            if not meta["finalizers"]:
                del meta["finalizers"]
            rules.set_condition(rules.status_dict(current), "Terminating", "False", reason, message, now)
            return current

        try:
            await self.crd_rest.guaranteed_update(None, name, mutate, subresource=INTERNAL)
        except errors.ApiError as exc:
            if exc.code != 404:
                raise


def _gvr(rt: ResourceType) -> tuple[str, str, str]:
    return rt.group, rt.version, rt.plural


def _layout_changed(served: ServedCRD, rt: CustomResourceType) -> bool:
    """Scope or kind changed (only possible before Established): start storage afresh."""
    current = next(iter(served.types.values()), None)
    return current is not None and (current.namespaced != rt.namespaced or current.kind != rt.kind)


def _names_clash(wanted: dict[str, Any], other: dict[str, Any]) -> tuple[str, str] | None:
    """Kubernetes' naming-controller checks against another CRD of the same group."""
    taken = {other.get("plural"), other.get("singular"), *(other.get("shortNames") or [])} - {None, ""}
    if wanted["plural"] in taken:
        return "PluralConflict", f'"{wanted["plural"]}" is already in use'
    if wanted["singular"] in taken:
        return "SingularConflict", f'"{wanted["singular"]}" is already in use'
    for short in wanted.get("shortNames") or []:
        if short in taken:
            return "ShortNamesConflict", f'"{short}" is already in use'
    kinds = {other.get("kind"), other.get("listKind")} - {None, ""}
    if wanted["kind"] in kinds:
        return "KindConflict", f'"{wanted["kind"]}" is already in use'
    if wanted["listKind"] in kinds:
        return "ListKindConflict", f'"{wanted["listKind"]}" is already in use'
    return None


# ---------------------------------------------------------------------------
# The scale subresource of custom resources
# ---------------------------------------------------------------------------


_SCALE_META = ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")


def scale_of(obj: Obj, rt: CustomResourceType) -> Obj:
    """The ``autoscaling/v1`` Scale of a custom resource, read through the CRD's paths."""
    paths = rt.scale or {}
    meta = obj.get("metadata") or {}
    spec_replicas = get_path(obj, str(paths.get("specReplicasPath", ".spec.replicas")))
    status_replicas = get_path(obj, str(paths.get("statusReplicasPath", ".status.replicas")))
    status: Obj = {"replicas": status_replicas if isinstance(status_replicas, int) else 0}
    if paths.get("labelSelectorPath"):
        selector = get_path(obj, str(paths["labelSelectorPath"]))
        if isinstance(selector, str) and selector:
            status["selector"] = selector
    return {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in _SCALE_META if k in meta},
        "spec": {"replicas": spec_replicas if isinstance(spec_replicas, int) else 0},
        "status": status,
    }


async def serve_custom_scale(request: web.Request, target: Target) -> web.Response:
    """GET/PUT/PATCH ``.../<plural>/<name>/scale`` of a custom resource."""
    rt = target.rt
    assert isinstance(rt, CustomResourceType) and target.name is not None
    if request.method == "GET":
        return json_response(orjson.dumps(scale_of(target.rest.get(target.namespace, target.name).obj, rt)))
    if request.method not in ("PUT", "PATCH"):
        raise errors.method_not_allowed()
    body = await read_body(request)
    patch_type = PATCH_TYPES.get((request.content_type or "").lower()) if request.method == "PATCH" else None
    name = target.name

    def mutate(current: Obj) -> Obj:
        wanted = _wanted_scale(scale_of(current, rt), body, request.method, patch_type, request.content_type)
        rv = (wanted.get("metadata") or {}).get("resourceVersion")
        if rv and rv != current["metadata"].get("resourceVersion"):
            raise errors.conflict(rt, name, errors.STALE_OBJECT)
        replicas = (wanted.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise _invalid_replicas(name, replicas)
        set_path(current, str((rt.scale or {}).get("specReplicasPath", ".spec.replicas")), replicas)
        return current

    updated = await target.rest.guaranteed_update(target.namespace, name, mutate)
    obj = updated.obj if isinstance(updated, CachedObject) else updated
    return json_response(orjson.dumps(scale_of(obj, rt)))


def _invalid_replicas(name: str, replicas: Any) -> errors.ApiError:
    detail = "must be greater than or equal to 0"
    return errors.ApiError(
        422, "Invalid", f'Scale.autoscaling "{name}" is invalid: spec.replicas: Invalid value: '
                        f"{go_value(replicas)}: {detail}",
        {"name": name, "group": "autoscaling", "kind": "Scale",
         "causes": [{"reason": "FieldValueInvalid", "message": f"Invalid value: {go_value(replicas)}: {detail}",
                     "field": "spec.replicas"}]})


def _wanted_scale(scale: Obj, body: Any, method: str, patch_type: str | None, ctype: str | None) -> Obj:
    try:
        if method == "PUT":
            wanted = body
        elif patch_type == "json":
            wanted = apply_json_patch(scale, body)
        elif patch_type in ("merge", "strategic"):
            wanted = apply_merge_patch(scale, body)
        else:
            raise errors.unsupported_patch_type(errors.SCALE_PATCH_TYPES)
    except PatchError as exc:
        raise errors.ApiError(422, "Invalid", str(exc)) from None
    if not isinstance(wanted, dict):
        raise errors.bad_request("the body must be a Scale object")
    return wanted
