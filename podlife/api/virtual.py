"""Read-only API resources served from a provider instead of the store.

Design
------
Some resources are views of state the API server keeps elsewhere: the pod traces
(``trace.podlife.io`` ``podtraces``, read from ``ctx.trace``) and resource usage
(``metrics.k8s.io`` ``nodes``/``pods``, read from ``ctx.resource_metrics``, what
metrics-server serves on a Kubernetes cluster). Nothing about them is stored, so they
have no watch cache and no :class:`~podlife.api.rest.ResourceREST`; yet clients must
find them exactly as they find stored kinds.

So each is a :class:`VirtualType`: a :class:`~podlife.registry.types.ResourceType`
(names, scope, verbs, OpenAPI schema) that also says which ``ApiContext`` attribute
holds its source and how to read it (a :class:`Provider`). :class:`VirtualAPI` puts the
types whose source is present into the catalog (:meth:`VirtualAPI.sync`, re-checked on
every request for a few attribute reads), so discovery (``/apis``, aggregated v2 and
v2beta1), ``/openapi/v3`` and RBAC see them with no code of their own; a type whose
source is ``None`` (``--no-trace``) is not served at all. Because their verbs lack
``delete``, the namespace controller, the garbage collector and quota, which follow
Kubernetes in only touching deletable kinds, leave them alone.

Requests are routed here before the store-backed resolver (``server.py``):

- ``get``: the provider's object, or a 404 ``NotFound`` naming the resource as its
  Kubernetes server does (``podtraces.trace.podlife.io "x" not found``; metrics-server's
  ``podmetrics.metrics.k8s.io "default/x" not found``);
- ``list``: the provider's objects in namespace/name order, filtered by label and field
  selectors (``metadata.name``, ``metadata.namespace``) with the watch cache's own
  :class:`~podlife.api.cache.Filter`; ``limit`` is ignored (the whole list is one page,
  which the API allows); a ``meta.k8s.io`` Table when ``kubectl get`` asks for one;
- ``watch`` (only for providers that can ``subscribe``): served by
  :func:`podlife.api.watch_stream.serve_watch` itself, through a small adapter that
  looks like a ResourceREST to it, so timeouts, Table rows, bookmarks and the 2 ms
  write coalescing are the stored kinds' own. A watch from no or ``"0"``
  resourceVersion starts with an ADDED per current object; from version N, with a
  MODIFIED per object newer than N (there is no history to replay, so that is the
  closest catch-up); then every change, translated per selector as the watch cache
  does (an object leaving the selection is DELETED for that watcher);
- a watch of a kind that cannot watch is 405 ``MethodNotAllowed`` (``watch is not
  supported on resources of kind "nodes.metrics.k8s.io"``, as Kubernetes' list handler
  says for storage without a watcher), and so is every write: the Status Kubernetes
  answers for a method the resource does not serve.

Cost: nothing runs for these kinds unless they are asked for; a watcher subscribes to
its provider only while it is open, so writes pay nothing when nobody watches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import orjson
from aiohttp import web

from ..machinery import errors
from ..registry import tables
from ..registry.types import ResourceType
from .cache import CachedObject, Filter, WatchEvent
from .handlers import (
    Target, _include_object, _int_param, check_boolean_parameters, check_url_name, is_watch, json_response, wants_table,
)
from .rest import ApiContext, ResourceREST, selector_filter

Obj = dict[str, Any]
READ_VERBS = ("get", "list", "watch")
#: the verbs of a kind whose provider cannot follow changes (metrics-server's)
GET_LIST = ("get", "list")


class Provider(Protocol):
    """What a virtual resource is read from (one per served kind)."""

    async def get(self, namespace: str | None, name: str) -> Obj | None:
        """The object, or None (a 404)."""

    async def objects(self, namespace: str | None) -> list[Obj]:
        """Every object (of ``namespace``, or of all namespaces and cluster-scoped kinds: None)."""

    @property
    def revision(self) -> int | None:
        """The list's resourceVersion; None when the kind has none (metrics)."""

    # -- asked only of kinds that serve ``watch`` --

    def snapshot(self, namespace: str | None) -> list[Obj]:
        """The objects now, read synchronously: a watch subscribes and reads in one step of the loop."""

    def subscribe(self, fn: Callable[[str, Obj], None]) -> Callable[[], None]:
        """Call ``fn(event_type, object)`` after each change until the returned function is called."""


def _no_provider(source: Any) -> Provider:
    raise TypeError("a VirtualType needs a provider")


@dataclass(frozen=True)
class VirtualType(ResourceType):
    """A resource answered by a :class:`Provider` built from ``getattr(ctx, source)``."""

    #: the ApiContext attribute holding what the provider reads (served only while it is not None)
    source: str = ""
    #: builds the provider from that attribute's value
    provider: Callable[[Any], Provider] = field(default=_no_provider, compare=False, hash=False, repr=False)
    #: the resource a 404 names, when not the plural (metrics-server's ``nodemetrics``/``podmetrics``)
    missing_resource: str = ""
    #: whether a namespaced 404 names ``<namespace>/<name>`` (metrics-server's pods do)
    missing_with_namespace: bool = False

    def not_found(self, namespace: str | None, name: str) -> errors.ApiError:
        """The 404 of a get, naming the resource as its Kubernetes server does."""
        if not self.missing_resource and not self.missing_with_namespace:
            return errors.not_found(self, name)
        resource = self.missing_resource or self.plural
        shown = f"{namespace}/{name}" if self.missing_with_namespace and namespace else name
        return errors.ApiError(404, "NotFound", f'{resource}.{self.group} "{shown}" not found',
                               {"name": shown, "group": self.group, "kind": resource})

    @property
    def watchable(self) -> bool:
        return "watch" in self.verbs


@dataclass(slots=True)
class VirtualTarget:
    """One request's resource: which kind, namespace and name (None: the collection)."""

    rt: VirtualType
    provider: Provider
    namespace: str | None
    name: str | None


class VirtualAPI:
    """The virtual kinds of one API server: kept in its catalog while their sources exist, and served."""

    def __init__(self, ctx: ApiContext, types: Iterable[VirtualType]) -> None:
        self.ctx = ctx
        self.types = tuple(types)
        self._served: tuple[bool, ...] = ()  # which types the catalog was last synced to serve
        self._group_versions: frozenset[tuple[str, str]] = frozenset()
        self._providers: dict[str, tuple[Any, Provider]] = {}
        self.sync()

    # ---- what is served ------------------------------------------------------------

    def sync(self) -> None:
        """Serve exactly the kinds whose source is set (cheap when nothing changed: a few getattrs)."""
        ctx = self.ctx
        served = tuple(getattr(ctx, vt.source, None) is not None for vt in self.types)
        if served == self._served:
            return
        catalog = ctx.catalog
        for vt, on in zip(self.types, served):
            present = catalog.lookup(vt.group, vt.version, vt.plural)
            if on and present is not vt:
                catalog.add(vt)
            elif not on and present is vt:
                catalog.remove(vt.group, vt.version, vt.plural)
        self._served = served
        self._group_versions = frozenset((vt.group, vt.version) for vt, on in zip(self.types, served) if on)

    def served_group_versions(self) -> set[tuple[str, str]]:
        """The group-versions served now (their APIServices are registered like the built-in ones)."""
        self.sync()
        return set(self._group_versions)

    def _provider(self, vt: VirtualType) -> Provider | None:
        source = getattr(self.ctx, vt.source, None)
        if source is None:
            return None
        cached = self._providers.get(vt.plural + "." + vt.group)
        if cached is not None and cached[0] is source:
            return cached[1]
        provider = vt.provider(source)
        self._providers[vt.plural + "." + vt.group] = (source, provider)
        return provider

    # ---- routing -------------------------------------------------------------------

    def resolve(self, group: str, version: str, segs: list[str]) -> VirtualTarget | None:
        """The virtual resource a path after ``/apis/<group>/<version>`` names, or None (not ours)."""
        if (group, version) not in self._group_versions:
            return None
        namespace: str | None = None
        if len(segs) >= 3 and segs[0] == "namespaces":
            namespace, segs = segs[1], segs[2:]
        rt = self.ctx.catalog.lookup(group, version, segs[0]) if segs else None
        if not isinstance(rt, VirtualType):
            return None
        provider = self._provider(rt)
        if provider is None or len(segs) > 2 or (namespace is not None and not rt.namespaced):
            raise errors.path_not_found("/".join(segs))  # no subresources; a cluster kind has no namespaces
        name = segs[1] if len(segs) > 1 else None
        if rt.namespaced and namespace is None and name is not None:
            raise errors.path_not_found("/".join(segs))
        return VirtualTarget(rt, provider, namespace, name)

    # ---- serving -------------------------------------------------------------------

    async def handle(self, request: web.Request, target: VirtualTarget) -> web.StreamResponse:
        check_boolean_parameters(request)
        rt = target.rt
        if request.method != "GET":
            raise errors.method_not_allowed()  # a read-only resource: no create, update, patch or delete
        if target.name is not None:
            check_url_name(target.name)
            return await self._get(request, target, target.name)
        _int_param(request, "timeoutSeconds")  # malformed is a 400 before any answer, as for stored kinds
        if is_watch(request):
            if not rt.watchable:
                raise errors.ApiError(405, "MethodNotAllowed",
                                      f'watch is not supported on resources of kind "{rt.group_resource}"',
                                      {"group": rt.group, "kind": rt.plural})
            from .watch_stream import serve_watch  # it builds on handlers, as this module does

            adapter = _WatchAdapter(rt, target.provider)
            return await serve_watch(request, Target(cast(ResourceREST, adapter), target.namespace, None, None))
        return await self._list(request, target)

    async def _get(self, request: web.Request, target: VirtualTarget, name: str) -> web.Response:
        rt = target.rt
        obj = await target.provider.get(target.namespace if rt.namespaced else None, name)
        if obj is None:
            raise rt.not_found(target.namespace, name)
        if wants_table(request):
            table = tables.to_table([obj], rt.kind, rt.group, include_object=_include_object(request),
                                    resource_version=_meta(obj).get("resourceVersion") or "")
            return json_response(orjson.dumps(table))
        return json_response(orjson.dumps(obj))

    async def _list(self, request: web.Request, target: VirtualTarget) -> web.Response:
        rt, q = target.rt, request.query
        flt = selector_filter(rt, target.namespace, q.get("labelSelector"), q.get("fieldSelector"))
        items = await target.provider.objects(target.namespace if rt.namespaced else None)
        chosen = sorted((o for o in items if flt.matches(CachedObject("", o, 0))), key=_order)
        revision = target.provider.revision
        rv = "" if revision is None else str(revision)
        if wants_table(request):
            table = tables.to_table(chosen, rt.kind, rt.group, include_object=_include_object(request),
                                    resource_version=rv)
            return json_response(orjson.dumps(table))
        meta = {"resourceVersion": rv} if rv else {}
        return json_response(orjson.dumps({"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": meta,
                                           "items": chosen}))


def _meta(obj: Obj) -> Obj:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _order(obj: Obj) -> tuple[str, str]:
    meta = _meta(obj)
    return (meta.get("namespace") or "", meta.get("name") or "")


def _rv(obj: Obj) -> int:
    try:
        return int(_meta(obj).get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


def _cached(obj: Obj) -> CachedObject:
    """The object with its encoding made now: the provider may reuse its dict after the call."""
    co = CachedObject("", obj, _rv(obj))
    _ = co.raw
    return co


# ---- watches -------------------------------------------------------------------------


class _VirtualWatcher:
    """One open watch on a provider: the queue ``serve_watch`` reads, fed by the provider's callbacks."""

    def __init__(self, flt: Filter) -> None:
        self.filter = flt
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.seen: set[tuple[str, str]] = set()  # what this watcher was told exists (selectors only)
        self._unsubscribe: Callable[[], None] | None = None
        self.closed = False

    def start(self, provider: Provider, current: list[Obj], since: int | None) -> None:
        """Subscribe, then queue the replay: every current object as ADDED (``since`` None), else those
        changed after ``since`` as MODIFIED -- the client listed the rest, so all of them count as seen."""
        self._unsubscribe = provider.subscribe(self.offer)
        for obj in sorted(current, key=_order):
            if self.filter.matches(CachedObject("", obj, 0)):
                if not self.filter.everything:  # only selectors translate events (see offer)
                    self.seen.add(_order(obj))
                if since is None:
                    self.queue.put_nowait(WatchEvent("ADDED", _cached(obj)))
                elif _rv(obj) > since:
                    self.queue.put_nowait(WatchEvent("MODIFIED", _cached(obj)))

    def offer(self, event_type: str, obj: Obj) -> None:
        """A provider's change, as this watcher's selectors see it (the cache's ``Watcher.offer`` rules)."""
        if self.closed:
            return
        co = _cached(obj)
        if self.filter.everything:
            self.queue.put_nowait(WatchEvent(event_type, co))
            return
        key, matches = _order(obj), self.filter.matches(co)
        if event_type == "DELETED":
            if key in self.seen:
                self.seen.discard(key)
                self.queue.put_nowait(WatchEvent("DELETED", co))
        elif matches:  # new to this watcher: ADDED; else the provider's word (ADDED is a new life of the name)
            self.queue.put_nowait(WatchEvent(event_type if key in self.seen else "ADDED", co))
            self.seen.add(key)
        elif key in self.seen:
            self.seen.discard(key)
            self.queue.put_nowait(WatchEvent("DELETED", co))

    def stop(self) -> None:
        if not self.closed:
            self.closed = True
            if self._unsubscribe is not None:
                self._unsubscribe()
            self.queue.put_nowait(None)


class _WatchAdapter:
    """What :func:`~podlife.api.watch_stream.serve_watch` uses of a ResourceREST: ``rt``, ``cache.revision``, ``watch``."""

    def __init__(self, rt: VirtualType, provider: Provider) -> None:
        self.rt = rt
        self.provider = provider
        self.cache = self  # serve_watch reads ``cache.revision`` for its bookmarks

    @property
    def revision(self) -> int:
        return self.provider.revision or 0

    def watch(self, namespace: str | None, *, label_selector: str | None = None, field_selector: str | None = None,
              resource_version: str | None = None) -> _VirtualWatcher:
        """Subscribed and primed before serve_watch looks at the queue (nothing runs in between)."""
        flt = selector_filter(self.rt, namespace, label_selector, field_selector)
        watcher = _VirtualWatcher(flt)
        since = _since(resource_version)
        watcher.start(self.provider, self.provider.snapshot(namespace if self.rt.namespaced else None), since)
        return watcher


def _since(resource_version: str | None) -> int | None:
    """None: replay the current state; else the version after which changes are wanted."""
    if resource_version in (None, "", "0"):
        return None
    try:
        return int(resource_version or 0)
    except ValueError:
        raise errors.bad_request(f'invalid resource version "{resource_version}"') from None
