"""Informers: list, then watch, keeping a local cache and calling handlers.

The pattern of client-go's shared informers, in asyncio: :meth:`Informer.run` lists
the resource, remembers the list's resourceVersion, and watches from it; every event
updates :attr:`Informer.cache` (``namespace/name`` -> object) and calls the handlers.
When the watch ends it is resumed from the last seen resourceVersion; on 410 Expired
the informer lists again and emits the differences, so handlers never miss a change.

Handlers are plain functions (``on_add(obj)``, ``on_update(old, new)``,
``on_delete(obj)``) and should only enqueue work (see :mod:`podlife.client.workqueue`):
the informer calls them inline, in order.

With a client in the API server's process, the informer *subscribes* instead
(:meth:`~podlife.client.base.Client.subscribe`): the current state and then every
change are handed to it synchronously as the store publishes them, so handlers run
inside the commit that caused them -- one more reason they must only enqueue. At
scale this matters: a pod's life is a dozen events for each of several components'
informers, and a queue, a task switch and an async generator per event and informer
cost more than the handlers themselves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from ..machinery.errors import ApiError
from .base import Client, Obj, Resource

log = logging.getLogger(__name__)

Handler = Callable[..., None]


def object_key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name')}" if ns else meta.get("name", "")


class Informer:
    def __init__(self, client: Client, res: Resource, namespace: str | None = None, *,
                 label_selector: str | None = None, field_selector: str | None = None) -> None:
        self.client = client
        self.res = res
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.cache: dict[str, Obj] = {}
        self.resource_version = ""
        self._handlers: list[tuple[Handler | None, Handler | None, Handler | None]] = []
        self._synced = asyncio.Event()

    def add_handlers(self, on_add: Handler | None = None, on_update: Handler | None = None,
                     on_delete: Handler | None = None) -> None:
        self._handlers.append((on_add, on_update, on_delete))

    def get(self, namespace: str | None, name: str) -> Obj | None:
        return self.cache.get(f"{namespace}/{name}" if namespace else name)

    async def wait_synced(self) -> None:
        await self._synced.wait()

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    def _emit(self, index: int, *args: Any) -> None:
        for handlers in self._handlers:
            fn = handlers[index]
            if fn is not None:
                try:
                    fn(*args)
                except Exception:
                    log.exception("informer %s: handler failed", self.res.plural)

    async def _relist(self) -> None:
        listed = await self.client.list(self.res, self.namespace, label_selector=self.label_selector,
                                        field_selector=self.field_selector)
        fresh = {object_key(o): o for o in listed["items"]}
        old = self.cache
        self.cache = fresh
        for key, obj in fresh.items():
            before = old.get(key)
            if before is None:
                self._emit(0, obj)
            elif (before.get("metadata") or {}).get("resourceVersion") != (obj.get("metadata") or {}).get("resourceVersion"):
                self._emit(1, before, obj)
        for key, obj in old.items():
            if key not in fresh:
                self._emit(2, obj)
        self.resource_version = listed["metadata"]["resourceVersion"]
        self._synced.set()

    async def run(self) -> None:
        unsubscribe = self.client.subscribe(self.res, self.namespace, label_selector=self.label_selector,
                                            field_selector=self.field_selector, on_event=self._on_event)
        if unsubscribe is not None:
            await self._follow(unsubscribe)
            return
        backoff = 0.1
        while True:
            try:
                if not self.resource_version:
                    await self._relist()
                async for ev in self.client.watch(self.res, self.namespace, label_selector=self.label_selector,
                                                  field_selector=self.field_selector,
                                                  resource_version=self.resource_version, bookmarks=True):
                    self._on_event(ev.type, ev.object)
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except ApiError as exc:
                if exc.code == 410:
                    self.resource_version = ""
                    continue
                log.warning("informer %s: %s; retrying", self.res.plural, exc)
            except Exception as exc:  # connection trouble: retry with backoff
                log.warning("informer %s: watch failed (%s); retrying", self.res.plural, exc)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def _follow(self, unsubscribe: Callable[[], None]) -> None:
        """Wait while a subscription delivers the events, until cancelled."""
        self._synced.set()  # the current state was delivered during subscribe()
        try:
            await asyncio.get_running_loop().create_future()  # never set: only cancellation ends it
        finally:
            unsubscribe()

    def _on_event(self, type_: str, obj: Obj) -> None:
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if rv:
            self.resource_version = rv
        if type_ == "BOOKMARK":
            return
        key = object_key(obj)
        if type_ == "DELETED":
            old = self.cache.pop(key, None)
            self._emit(2, old if old is not None else obj)
            return
        old = self.cache.get(key)
        self.cache[key] = obj
        if old is None:
            self._emit(0, obj)
        else:
            self._emit(1, old, obj)
