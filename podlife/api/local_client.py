"""The in-process client: the API server's REST layer, called without HTTP.

Same rules as over HTTP (it calls :class:`podlife.api.rest.ResourceREST`), so a
component cannot tell which transport it runs on. ``get`` and ``list`` return fresh
copies; watch events carry the watch cache's shared objects (read-only).

What a write returns is a fresh copy too, unless the client is made with
``shared_results=True``: then it is the watch cache's object itself, which the caller
must only read. The cluster's own components use that (they read what their writes
return -- a resourceVersion, a port's address -- and never change it, just as they never
change the objects their informers hand them), which spares a decode of the whole
object for every write; code that edits what it gets back keeps the default.
Request bodies are always copied, so callers may keep and reuse theirs.
"""

from __future__ import annotations

import builtins

from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from ..machinery import errors
from ..client.base import Client, Obj, Resource, WatchEvent
from .cache import CachedObject
from .rest import ApiContext, DeleteOptions, ResourceREST


def _own(value: CachedObject | Obj) -> Obj:
    if isinstance(value, CachedObject):
        return value.copy()
    return orjson.loads(orjson.dumps(value))


class LocalClient(Client):
    def __init__(self, ctx: ApiContext, *, shared_results: bool = False) -> None:
        self.ctx = ctx
        self.shared_results = shared_results

    def _result(self, value: CachedObject | Obj) -> Obj:
        """What a write returns: the cache's object when results are shared, else a copy."""
        if self.shared_results:
            return value.obj if isinstance(value, CachedObject) else value
        return _own(value)

    def _rest(self, res: Resource) -> ResourceREST:
        rest = self.ctx.rest_by(res.group, res.version, res.plural)
        if rest is None:
            raise errors.path_not_found(res.path())
        return rest

    async def get(self, res: Resource, name: str, namespace: str | None = None) -> Obj:
        return self._rest(res).get(namespace, name).copy()

    async def list(self, res: Resource, namespace: str | None = None, *, label_selector: str | None = None,
                   field_selector: str | None = None, limit: int = 0, continue_token: str | None = None) -> Obj:
        rest = self._rest(res)
        result = rest.list(namespace, label_selector=label_selector, field_selector=field_selector,
                           limit=limit, continue_token=continue_token)
        meta: dict[str, Any] = {"resourceVersion": str(result.resource_version)}
        if result.continue_token:
            meta["continue"] = result.continue_token
        return {"kind": rest.rt.list_kind, "apiVersion": rest.rt.api_version, "metadata": meta,
                "items": [co.copy() for co in result.items]}

    async def watch(self, res: Resource, namespace: str | None = None, *, label_selector: str | None = None,
                    field_selector: str | None = None, resource_version: str | None = None,
                    timeout_seconds: int | None = None, bookmarks: bool = False) -> AsyncIterator[WatchEvent]:
        import asyncio

        rest = self._rest(res)
        watcher = rest.watch(namespace, label_selector=label_selector, field_selector=field_selector,
                             resource_version=resource_version)
        deadline = asyncio.get_running_loop().time() + timeout_seconds if timeout_seconds else None
        try:
            while True:
                if deadline is None:
                    ev = await watcher.queue.get()
                else:
                    remaining = deadline - asyncio.get_running_loop().time()
                    if remaining <= 0:
                        return
                    try:
                        ev = await asyncio.wait_for(watcher.queue.get(), remaining)
                    except TimeoutError:
                        return
                if ev is None:
                    return
                yield WatchEvent(ev.type, ev.object.obj)
        finally:
            watcher.stop()

    def subscribe(self, res: Resource, namespace: str | None = None, *, label_selector: str | None = None,
                  field_selector: str | None = None,
                  on_event: Callable[[str, Obj], None]) -> Callable[[], None] | None:
        """A watch whose events are handed to ``on_event`` as the store publishes them.

        No queue, no task and no async generator per event: for the informers of the
        cluster's own components this is most of what a watch event costs.
        """
        watcher = self._rest(res).watch(namespace, label_selector=label_selector, field_selector=field_selector,
                                        sink=lambda ev: on_event(ev.type, ev.object.obj))
        return watcher.stop

    async def discover(self) -> builtins.list[Resource]:
        return [Resource(t.group, t.version, t.plural, t.kind, t.namespaced) for t in self.ctx.catalog.types
                if "list" in t.verbs and "watch" in t.verbs]

    async def create(self, res: Resource, obj: Obj, namespace: str | None = None) -> Obj:
        created, _ = await self._rest(res).create(_own(obj), namespace or (obj.get("metadata") or {}).get("namespace"),
                                                  field_validation=None)
        return self._result(created)

    async def create_subresource(self, res: Resource, name: str, subresource: str, obj: Obj,
                                 namespace: str | None = None) -> Obj:
        from ..api.subresources import create_subresource

        return await create_subresource(self.ctx, self._rest(res), namespace, name, subresource, _own(obj))

    async def update(self, res: Resource, obj: Obj, *, subresource: str | None = None) -> Obj:
        meta = obj.get("metadata") or {}
        updated, _ = await self._rest(res).update(meta.get("namespace"), meta.get("name", ""), _own(obj),
                                                  subresource=subresource, field_validation=None)
        return self._result(updated)

    async def patch(self, res: Resource, name: str, patch: Any, namespace: str | None = None, *,
                    patch_type: str = "merge", subresource: str | None = None) -> Obj:
        patched, _ = await self._rest(res).patch(namespace, name, patch_type, _own(patch), subresource=subresource,
                                                 field_validation=None)
        return self._result(patched)

    async def delete(self, res: Resource, name: str, namespace: str | None = None, *,
                     grace_period_seconds: int | None = None, propagation_policy: str | None = None,
                     preconditions: dict | None = None) -> Obj:
        pre = preconditions or {}
        opts = DeleteOptions(grace_period_seconds, propagation_policy, pre.get("uid"), pre.get("resourceVersion"))
        return self._result(await self._rest(res).delete(namespace, name, opts))
