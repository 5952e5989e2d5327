"""The watch cache: every served object decoded once, every change fanned out once.

Why
---
Kubernetes' API server does not read etcd for each list or watch: a *cacher* per
resource keeps the current objects and a window of recent events, fed by one storage
watch. podlife does the same, for the same reasons -- lists and watches are the bulk
of the traffic (every informer of every component), and decoding or encoding an
object per reader would dominate the CPU.

How
---
:class:`WatchCache` registers as a synchronous store listener. Each committed batch is
routed by key prefix to the :class:`ResourceCache` of its resource, which

- updates its sorted map of :class:`CachedObject` (the object with its
  ``resourceVersion``, plus its JSON encoding, made once on first use and shared by
  every response and watcher);
- appends to its event window (the last ``window_seconds``, at least ``WINDOW_MIN``
  and at most ``window_max`` events -- a watch resuming from before the window gets
  410 Expired and lists again, as with Kubernetes);
- hands the event to every matching :class:`Watcher`, translating it for watchers
  with selectors the way Kubernetes does: an object that stops matching is DELETED
  for that watcher, one that starts matching is ADDED.

Because the listener runs before a write is acknowledged, a client that wrote an
object and then reads it from the cache always sees its own write. Cached objects are
shared and must never be mutated; writers work on fresh copies decoded from the store.
"""

from __future__ import annotations

import builtins

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from sortedcontainers import SortedDict

from ..registry.types import ResourceType
from ..store.base import Event, Store

WINDOW_SECONDS = 75.0
WINDOW_MIN = 1000
#: At most this many events per resource are kept for resuming watches (Kubernetes
#: keeps up to 102,400); every kept event holds an old version of an object alive.
WINDOW_MAX = 20_000


class CachedObject:
    """An immutable served object and its lazily made JSON encoding."""

    __slots__ = ("key", "obj", "rv", "_raw", "_stored")

    def __init__(self, key: str, obj: dict[str, Any], rv: int, stored: bytes | None = None) -> None:
        self.key = key
        self.obj = obj
        self.rv = rv
        self._raw: bytes | None = None
        # The store's encoding of ``obj`` (resourceVersion empty), when ``obj`` is the very
        # dict that was encoded: its encoding is then that one with the revision put in.
        self._stored = stored

    @property
    def raw(self) -> bytes:
        if self._raw is None:
            stored = self._stored
            self._raw = (stored is not None and _with_revision(stored, self.rv)) or orjson.dumps(self.obj)
            self._stored = None
        return self._raw

    @property
    def metadata(self) -> dict[str, Any]:
        return self.obj.get("metadata") or {}

    @property
    def namespace(self) -> str:
        return self.metadata.get("namespace") or ""

    @property
    def name(self) -> str:
        return self.metadata.get("name") or ""

    @property
    def labels(self) -> dict[str, str]:
        return self.metadata.get("labels") or {}

    def copy(self) -> dict[str, Any]:
        """A deep copy the caller may change (decoded from the shared encoding)."""
        return orjson.loads(self.raw)


_EMPTY_RV = b'"resourceVersion":""'
_METADATA_KEY = b'"metadata":'


def _with_revision(stored: bytes, rv: int) -> bytes | None:
    """``stored`` (``encode_for_storage``'s bytes) with ``rv`` as metadata's resourceVersion.

    Byte for byte what ``orjson.dumps`` gives for the object once the cache has set its
    resourceVersion (the key keeps its place in the dict), without encoding the object
    again. Only when the empty field is found where Kubernetes' field order puts it --
    in the first nested object, which is ``metadata``, after the few strings ahead of it
    -- else None (encode it instead).
    """
    at = stored.find(_EMPTY_RV)
    if at < 0:
        return None
    brace = stored.find(b"{", 1, at)
    if brace < 0 or stored.find(b"{", brace + 1, at) >= 0 or stored[brace - len(_METADATA_KEY):brace] != _METADATA_KEY:
        return None
    cut = at + len(_EMPTY_RV) - 1
    return b"".join((stored[:cut], str(rv).encode(), stored[cut:]))


@dataclass(slots=True)
class WatchEvent:
    type: str  # ADDED | MODIFIED | DELETED
    object: CachedObject
    _line: bytes | None = None

    @property
    def line(self) -> bytes:
        """``{"type":...,"object":...}\\n``, encoded once and shared by every watcher."""
        if self._line is None:
            self._line = b'{"type":"' + self.type.encode() + b'","object":' + self.object.raw + b"}\n"
        return self._line


class Filter:
    """What one reader asked for: a namespace and label/field selectors."""

    __slots__ = ("namespace", "labels", "fields", "checks", "name", "everything")

    def __init__(self, rt: ResourceType, namespace: str | None = None, labels: Any = None, fields: Any = None) -> None:
        self.namespace = namespace or None
        self.labels = labels if labels is not None and not labels.empty else None
        self.fields = fields if fields is not None and fields.requirements else None
        self.name = fields.exact("metadata.name") if self.fields is not None else None
        # Field terms compiled once: every event of a watched resource is matched
        # against every watcher, so this is a hot path. A field the resource cannot
        # select on reads as "" (the request was validated before a Filter is made).
        getters = rt.field_getters
        self.checks: tuple[tuple[Callable[[dict], str], bool, str], ...] = tuple(
            (getters.get(field, _empty_field), operator == "=", value)
            for field, operator, value in (self.fields.requirements if self.fields is not None else ()))
        # Most in-process informers watch a whole resource: every event is theirs, as it is.
        self.everything = self.namespace is None and self.labels is None and not self.checks

    def matches(self, co: CachedObject) -> bool:
        if self.namespace is not None and co.namespace != self.namespace:
            return False
        if self.labels is not None and not self.labels.matches(co.labels):
            return False
        obj = co.obj
        for get, equal, value in self.checks:
            if (get(obj) == value) is not equal:
                return False
        return True


def _empty_field(obj: dict) -> str:
    return ""


class Watcher:
    """One open watch: a queue of events (``None`` ends it), or a ``sink`` called with each.

    A sink receives the events synchronously, while the store publishes a commit: that
    is how in-process informers subscribe (see :meth:`podlife.api.local_client.LocalClient.subscribe`),
    without a queue, a task switch and an async generator per event and watcher.
    """

    __slots__ = ("filter", "queue", "closed", "cache", "put")

    def __init__(self, cache: ResourceCache, flt: Filter, sink: Callable[[WatchEvent], None] | None = None) -> None:
        self.cache = cache
        self.filter = flt
        self.queue: asyncio.Queue[WatchEvent | None] = asyncio.Queue()
        self.put: Callable[[WatchEvent], None] = sink if sink is not None else self.queue.put_nowait
        self.closed = False

    def offer(self, ev: WatchEvent, prev: CachedObject | None) -> None:
        f = self.filter
        if f.everything:  # both versions match: the event goes on unchanged
            self.put(ev)
            return
        now = f.matches(ev.object)
        if ev.type == "DELETED":
            if now:
                self.put(ev)
            return
        before = prev is not None and f.matches(prev)
        if now and before:
            self.put(ev)
        elif now:
            self.put(ev if ev.type == "ADDED" else WatchEvent("ADDED", ev.object))
        elif before:
            self.put(WatchEvent("DELETED", ev.object))

    def stop(self) -> None:
        if not self.closed:
            self.closed = True
            self.cache.watchers.discard(self)
            self.queue.put_nowait(None)


class ResourceCache:
    def __init__(self, rt: ResourceType, revision: int, *, window_seconds: float = WINDOW_SECONDS,
                 window_max: int = WINDOW_MAX) -> None:
        self.rt = rt
        self.objects: SortedDict[str, CachedObject] = SortedDict()
        self.revision = revision
        # Events with rv > floor are all in the window.
        self.floor = revision
        self.window: deque[tuple[int, float, WatchEvent, CachedObject | None]] = deque()
        self.window_seconds = window_seconds
        self.window_max = window_max
        self.watchers: set[Watcher] = set()

    # ---- feeding --------------------------------------------------------------------

    def load(self, key: str, value: bytes, rv: int) -> None:
        obj = orjson.loads(value)
        obj.setdefault("metadata", {})["resourceVersion"] = str(rv)
        self.objects[key] = CachedObject(key, obj, rv)

    def apply(self, ev: Event, now: float) -> None:
        key = ev.kv.key
        prev = self.objects.get(key)
        rv = ev.revision
        if ev.type == "DELETE":
            if prev is None:
                return
            del self.objects[key]
            gone = dict(prev.obj)
            gone["metadata"] = {**prev.metadata, "resourceVersion": str(rv)}
            wev = WatchEvent("DELETED", CachedObject(key, gone, rv))
        else:
            obj = ev.kv.obj
            stored: bytes | None = ev.kv.value
            if obj is None:
                obj, stored = orjson.loads(ev.kv.value), None
            obj.setdefault("metadata", {})["resourceVersion"] = str(rv)
            co = CachedObject(key, obj, rv, stored)
            self.objects[key] = co
            wev = WatchEvent("ADDED" if prev is None else "MODIFIED", co)
        self.window.append((rv, now, wev, prev))
        for w in self.watchers:
            w.offer(wev, prev)

    def advance(self, revision: int, now: float) -> None:
        self.revision = revision
        window = self.window
        while window and (len(window) > self.window_max or (len(window) > WINDOW_MIN and now - window[0][1] > self.window_seconds)):
            self.floor = window.popleft()[0]

    # ---- reading --------------------------------------------------------------------

    def get(self, key: str) -> CachedObject | None:
        return self.objects.get(key)

    def list(self, flt: Filter, start_after: str = "", limit: int = 0) -> tuple[list[CachedObject], str | None]:
        """Matching objects in key order; the key to continue after when ``limit`` cut it."""
        prefix = self.rt.key_prefix(flt.namespace)
        if flt.name is not None and (flt.namespace or not self.rt.namespaced):
            co = self.objects.get(self.rt.key(flt.namespace, flt.name))
            found = co is not None and flt.matches(co) and co.key > start_after
            return ([co] if found else []), None
        lo = max(prefix, start_after + "\x00") if start_after else prefix
        out: list[CachedObject] = []
        objects = self.objects
        for key in objects.irange(minimum=lo):
            if not key.startswith(prefix):
                break
            co = objects[key]
            if flt.matches(co):
                if limit and len(out) == limit:
                    return out, out[-1].key
                out.append(co)
        return out, None

    def list_at(self, revision: int, flt: Filter, start_after: str = "", limit: int = 0) -> tuple[builtins.list[CachedObject], str | None]:
        """Like :meth:`list`, for the state at ``revision``, rebuilt by undoing newer events.

        Raises :class:`TooOld` when the window no longer reaches ``revision``.
        """
        if revision < self.floor:
            raise TooOld(revision, self.floor)
        prefix = self.rt.key_prefix(flt.namespace)
        state: dict[str, CachedObject | None] = {}
        for rv, _, wev, prev in reversed(self.window):
            if rv <= revision:
                break
            key = wev.object.key
            if key.startswith(prefix):
                # oldest-last: what remains is the version before the first newer event
                state[key] = prev
        snapshot = SortedDict((k, self.objects[k]) for k in self._keys_with(prefix))
        for key, co in state.items():
            if co is None:
                snapshot.pop(key, None)
            else:
                snapshot[key] = co
        out: list[CachedObject] = []
        lo = start_after + "\x00" if start_after else ""
        for key in snapshot.irange(minimum=lo or None):
            co = snapshot[key]
            if flt.matches(co):
                if limit and len(out) == limit:
                    return out, out[-1].key
                out.append(co)
        return out, None

    def _keys_with(self, prefix: str) -> builtins.list[str]:
        return [co.key for co in self.with_prefix(prefix)]

    def with_prefix(self, prefix: str) -> Iterator[CachedObject]:
        """The cached objects whose keys start with ``prefix`` (e.g. one namespace's), in key order."""
        objects = self.objects
        for key in objects.irange(minimum=prefix):
            if not key.startswith(prefix):
                return
            yield objects[key]

    def in_namespace(self, namespace: str | None) -> Iterator[CachedObject]:
        """The cached objects of ``namespace`` (every object for None or a cluster-scoped kind)."""
        return self.with_prefix(self.rt.key_prefix(namespace))

    def watch(self, flt: Filter, since: int | None, sink: Callable[[WatchEvent], None] | None = None) -> Watcher:
        """A watcher replaying events after ``since``, or (``None``) the current state as ADDED.

        With a ``sink``, the replay is delivered to it before this returns.
        Raises :class:`TooOld` when the window no longer reaches ``since``.
        """
        w = Watcher(self, flt, sink)
        if since is None:
            for co in self.list(flt)[0]:
                w.put(WatchEvent("ADDED", co))
        elif since < self.floor:
            raise TooOld(since, self.floor)
        else:
            for rv, _, wev, prev in self.window:
                if rv > since:
                    w.offer(wev, prev)
        self.watchers.add(w)
        return w


class TooOld(Exception):
    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested = requested
        self.oldest = oldest


class WatchCache:
    """All resource caches, fed by one store listener."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.caches: dict[str, ResourceCache] = {}  # by key prefix
        self._changed: asyncio.Event | None = None
        store.add_listener(self._on_events)

    @staticmethod
    def _prefix_of(key: str) -> str:
        # "/registry/<group>/<plural>/..." -> "/registry/<group>/<plural>/"
        end = key.find("/", key.find("/", 10) + 1)
        return key[: end + 1]

    async def add(self, rt: ResourceType) -> ResourceCache:
        prefix = rt.key_prefix()
        existing = self.caches.get(prefix)
        if existing is not None:
            return existing
        res = await self.store.range(prefix)
        cache = ResourceCache(rt, self.store.revision)
        for kv in res.kvs:
            cache.load(kv.key, kv.value, kv.mod_revision)
        self.caches[prefix] = cache
        return cache

    def cache_for(self, rt: ResourceType) -> ResourceCache:
        return self.caches[rt.key_prefix()]

    def _on_events(self, events: list[Event]) -> None:
        now = time.monotonic()
        caches = self.caches
        for ev in events:
            cache = caches.get(self._prefix_of(ev.kv.key))
            if cache is not None:
                cache.apply(ev, now)
        revision = events[-1].revision
        for cache in caches.values():
            cache.advance(revision, now)
