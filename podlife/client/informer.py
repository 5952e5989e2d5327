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

Own writes: an informer made with ``skip_own_writes`` (the
:class:`~podlife.client.own_writes.OwnWrites` of the component's
:class:`~podlife.client.own_writes.TrackingClient`, passed explicitly so that the
informer may read through any client, and several informers share one record) keeps
the echoes of the component's own writes from its ``on_update`` handlers. Its cache is
always updated at once; an update that echoes a write is not handed on; an update for a
key with a write in flight is held until that write ends, then judged (all echoes:
dropped; else one ``on_update`` with the oldest old and the newest object). ADDED and
DELETED are always handed on (a DELETED drops what was held for its key: the deletion
supersedes it), and so is what a relist finds; a relist, the first list included, also
forgets every remembered version, since events may have been lost. Every handler on
such an informer must belong to the component that writes (see
:mod:`podlife.client.own_writes`). Without ``skip_own_writes`` nothing of this runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..machinery.errors import ApiError
from .base import Client, Obj, Resource

if TYPE_CHECKING:
    from .own_writes import OwnWrites

log = logging.getLogger(__name__)

Handler = Callable[..., None]


def object_key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name')}" if ns else meta.get("name", "")


@dataclass(slots=True)
class _Held:
    """Updates of one key that arrived while our write on it was in flight."""

    old: Obj  # the version before the first of them
    news: list[Obj]  # each of them, oldest first (each may be an echo to consume)


class Informer:
    def __init__(self, client: Client, res: Resource, namespace: str | None = None, *,
                 label_selector: str | None = None, field_selector: str | None = None,
                 skip_own_writes: OwnWrites | None = None) -> None:
        self.client = client
        self.res = res
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.cache: dict[str, Obj] = {}
        self.resource_version = ""
        self._handlers: list[tuple[Handler | None, Handler | None, Handler | None]] = []
        self._synced = asyncio.Event()
        #: The component's own writes, whose echoes reach no ``on_update`` (None: every update does).
        self.own_writes = skip_own_writes
        self._held: dict[str, _Held] = {}  # key -> updates waiting for our write on it to end
        #: What takes each event: the plain path unless echoes are skipped (so others pay nothing).
        self._dispatch: Callable[[str, Obj], None] = self._on_event
        if skip_own_writes is not None:
            self._own: OwnWrites = skip_own_writes  # only the paths that skip echoes read it
            skip_own_writes.track(res)
            self._dispatch = self._on_event_skipping_own

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
        if self.own_writes is not None:
            self._relisting()
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
        own = self.own_writes
        if own is None:
            await self._run()
            return
        stop_listening = own.add_listener(self._own_write_ended)
        try:
            await self._run()
        finally:
            stop_listening()

    async def _run(self) -> None:
        if self.own_writes is not None:
            self._relisting()  # a subscription starts with the current state, as a list does
        unsubscribe = self.client.subscribe(self.res, self.namespace, label_selector=self.label_selector,
                                            field_selector=self.field_selector, on_event=self._dispatch)
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
                    self._dispatch(ev.type, ev.object)
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

    # ------------------------------------------------------------------ skipping our own writes

    def _on_event_skipping_own(self, type_: str, obj: Obj) -> None:
        """:meth:`_on_event`, keeping the echoes of our own writes from ``on_update`` (module docstring)."""
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if rv:
            self.resource_version = rv
        if type_ == "BOOKMARK":
            return
        own = self._own
        key = object_key(obj)
        if type_ == "DELETED":
            old = self.cache.pop(key, None)
            self._held.pop(key, None)  # the deletion supersedes them: on_delete gets the newest version
            own.discard(key)
            self._emit(2, old if old is not None else obj)
            return
        old = self.cache.get(key)
        self.cache[key] = obj
        if old is None:
            own.is_echo(obj, key)  # consumed, never skipped: an ADDED is news to every handler
            self._emit(0, obj)
            return
        if type_ == "ADDED":  # known already (a resumed watch): handed on, with whatever was held
            held = self._held.pop(key, None)
            own.is_echo(obj, key)
            self._emit(1, held.old if held is not None else old, obj)
            return
        if own.in_flight(key):
            held = self._held.get(key)
            if held is None:
                self._held[key] = _Held(old, [obj])
            else:
                held.news.append(obj)
        elif not own.is_echo(obj, key):
            self._emit(1, old, obj)

    def _own_write_ended(self, key: str) -> None:
        """The last write in flight on ``key`` ended: judge what was held for it.

        Then the cached version, if a write returned it, is consumed as well: its event
        has come already (a write that changed nothing answers with the version it
        found), so remembering it would only cost memory.
        """
        own = self._own
        held = self._held.pop(key, None)
        if held is not None:
            echoes = [own.is_echo(new, key) for new in held.news]  # every one consumed
            if not all(echoes):
                self._emit(1, held.old, held.news[-1])
        current = self.cache.get(key)
        if current is not None:
            own.is_echo(current, key)

    def _relisting(self) -> None:
        """Before a list (or subscription) is dispatched: hand on what was held, unjudged, and forget.

        Events may have been lost, so every remembered version goes (:meth:`OwnWrites.forget`);
        updates still held for a write in flight could then never be judged, so they go
        to the handlers now -- before the list's differences, to keep versions in order --
        at the price of, at most, one needless call each.
        """
        held, self._held = self._held, {}
        for h in held.values():
            self._emit(1, h.old, h.news[-1])
        self._own.forget()
