"""A component's own writes, and the watch events that only echo them.

What
----
Every write a component makes comes back to it as a watch event, and that event
holds nothing it did not already see: the write's answer *was* that version of the
object. Reacting to it (a sync, a reconcile) finds nothing to do, and at scale that
idle work is a large part of a component's cost -- a pod's status is written three or
four times in its life by its node alone. :class:`OwnWrites` remembers, per object
key (``namespace/name``, or ``name`` when cluster-scoped, as
:func:`podlife.client.informer.object_key` makes it), the resourceVersions that this
component's writes returned and whose events have not come yet. An event carrying
one of them is an *echo*: :meth:`OwnWrites.is_echo` says so and forgets that version
(each echo arrives once). :class:`TrackingClient` wraps any :class:`Client` and records
its writes there; an :class:`~podlife.client.informer.Informer` made with
``skip_own_writes`` uses it to keep echoes from its ``on_update`` handlers (its cache
is still updated at once).

The contract that makes dropping an echo safe: the component *reads what its writes
return* (it carries on with that object), and every handler on the informer belongs
to the component that writes. A write that changed nothing (the API answers with the
current object, resourceVersion unchanged) returns a version whose event may be
somebody else's, not yet delivered -- the writer saw its content in the answer all the
same. resourceVersions are unique across a server's objects (etcd's revision, the
store's here), so keys of two kinds that share a name (a pod and its port) can share
one record without ever mistaking one's event for the other's.

The in-flight rule
------------------
An event can arrive *before* the write that caused it returns: the in-process
:class:`~podlife.api.local_client.LocalClient` hands events to subscribed informers
synchronously inside the commit, and over HTTP the watch stream may simply be faster
than the response. Such an event cannot be judged yet -- its resourceVersion is not
known to be ours. So every write is bracketed by :meth:`OwnWrites.begin` and
:meth:`OwnWrites.end` (a counter per key: writes on one key may overlap), and while a
key has a write in flight an informer holds that key's updates. When the last write on
the key ends, :meth:`OwnWrites.end` records what it returned and then calls the
listeners (:meth:`OwnWrites.add_listener`): the informer judges what it held -- all
echoes: dropped; else one ``on_update(oldest old, newest)`` -- before the writer even
sees its answer.

Bounds and costs
----------------
- Only resources someone skips echoes of are recorded (:meth:`OwnWrites.track`; an
  informer made with ``skip_own_writes`` tracks its resource): writes to others --
  Events above all -- would be remembered with no reader to consume them.
- At most :data:`MAX_PER_KEY` versions per key: more means their events were lost (a
  relist), so that key's set starts over. A key's set goes when its object is deleted
  (:meth:`OwnWrites.discard`) or every set when an informer relists
  (:meth:`OwnWrites.forget`: events may have been lost). What stays is at most
  ``MAX_PER_KEY`` versions of writes whose events never come (a write that changed
  nothing returns a version already delivered; the informer consumes those when the
  write ends), per live object.
- Per write: a counter up and down, one set insert, one call per listener. Per event
  of an informer that skips echoes: a dict lookup (none at all when nothing is
  remembered). Forgetting an echo too early costs one handler call; never is an event
  somebody else caused taken for an echo.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from .base import Client, Obj, Resource, WatchEvent
from .informer import object_key

log = logging.getLogger(__name__)

#: How many resourceVersions one key keeps waiting for their echoes. A component writes
#: an object a few times in a row at most; more pile up only when events were lost.
MAX_PER_KEY = 8

#: Called with a key whose last write in flight has just ended (see OwnWrites.add_listener).
EndListener = Callable[[str], None]


def write_key(res: Resource, namespace: str | None, name: str) -> str:
    """The object key a write to ``res`` names: the one its watch events will carry."""
    return f"{namespace}/{name}" if namespace and res.namespaced else name


class OwnWrites:
    """The resourceVersions this component's writes returned, per object key, until their echoes arrive."""

    __slots__ = ("_rvs", "_flying", "_gone", "_listeners", "_resources")

    def __init__(self) -> None:
        self._rvs: dict[str, set[str]] = {}  # key -> versions our writes returned, events still to come
        self._flying: dict[str, int] = {}  # key -> writes in flight
        self._gone: set[str] = set()  # in-flight keys whose object was deleted meanwhile
        self._listeners: tuple[EndListener, ...] = ()
        self._resources: set[tuple[str, str]] = set()  # (group, plural) whose writes are recorded

    # ------------------------------------------------------------------ which writes

    def track(self, res: Resource) -> None:
        """Record writes to ``res`` (every version of it) from now on."""
        self._resources.add((res.group, res.plural))

    def tracks(self, res: Resource) -> bool:
        return (res.group, res.plural) in self._resources

    # ------------------------------------------------------------------ around a write

    def begin(self, key: str) -> None:
        """A write on ``key`` starts: its key's updates are held until it ends."""
        self._flying[key] = self._flying.get(key, 0) + 1

    def end(self, key: str, obj: Obj | None) -> None:
        """A write on ``key`` ended with ``obj`` (None: it failed); the last one in flight wakes the listeners.

        An ``end`` without its ``begin`` records and wakes all the same: a miscounted
        write must not fail the caller whose write succeeded.
        """
        if obj is not None and key not in self._gone:
            self._record(key, obj)
        left = self._flying.pop(key, 1) - 1
        if left > 0:
            self._flying[key] = left
            return
        self._gone.discard(key)
        for listener in self._listeners:
            try:
                listener(key)
            except Exception:
                log.exception("own writes: a listener failed for %s", key)

    def _record(self, key: str, obj: Obj) -> None:
        if obj.get("kind") == "Status":  # binding, eviction: no object version to echo
            return
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if not rv:
            return
        rvs = self._rvs.get(key)
        if rvs is None:
            self._rvs[key] = {rv}
            return
        if len(rvs) >= MAX_PER_KEY:  # their events were lost (a relist): start over
            rvs.clear()
        rvs.add(rv)

    def in_flight(self, key: str) -> bool:
        """Whether a write on ``key`` has begun and not ended."""
        return key in self._flying

    # ------------------------------------------------------------------ the events

    def is_echo(self, obj: Obj, key: str | None = None) -> bool:
        """Whether ``obj`` is a version one of our writes returned; that version is then forgotten.

        ``key`` spares working it out again when the caller has it (an informer does).
        """
        if not self._rvs:
            return False
        if key is None:
            key = object_key(obj)
        rvs = self._rvs.get(key)
        if rvs is None:
            return False
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if rv not in rvs:
            return False
        rvs.discard(rv)
        if not rvs:
            del self._rvs[key]
        return True

    def discard(self, key: str) -> None:
        """``key``'s object is gone: forget its versions, and those of writes in flight on it now."""
        self._rvs.pop(key, None)
        if key in self._flying:
            self._gone.add(key)

    def forget(self) -> None:
        """Forget every version (an informer relisted: events may have been lost). Writes in flight stay counted."""
        self._rvs.clear()

    def remembered(self, key: str | None = None) -> int:
        """How many versions wait for their echoes: ``key``'s, or every key's (for tests and debugging).

        Not ``__len__``: an empty record must not be falsy where ``skip_own_writes`` is tested.
        """
        if key is not None:
            return len(self._rvs.get(key, ()))
        return sum(len(rvs) for rvs in self._rvs.values())

    # ------------------------------------------------------------------ listeners

    def add_listener(self, listener: EndListener) -> Callable[[], None]:
        """Call ``listener(key)`` whenever the last write in flight on a key ends; returns the remover.

        It runs inside :meth:`end`, after the write's version is recorded and before the
        writer sees its answer, so what it does must be quick (an informer releases the
        updates it held for the key).
        """
        self._listeners = (*self._listeners, listener)

        def remove() -> None:
            self._listeners = tuple(fn for fn in self._listeners if fn is not listener)

        return remove


class TrackingClient(Client):
    """A client that records every write it makes in :attr:`own_writes` (see the module docstring).

    Writes to resources ``own_writes`` does not track pass straight through. Reads,
    watches and subscriptions are the inner client's, unchanged; objects are never copied.
    """

    def __init__(self, inner: Client, own_writes: OwnWrites | None = None) -> None:
        self.inner = inner
        self.own_writes = own_writes if own_writes is not None else OwnWrites()

    def tracking(self) -> TrackingClient:
        return self  # already tracking: one record per component

    # ------------------------------------------------------------------ reads, unchanged

    async def get(self, res: Resource, name: str, namespace: str | None = None) -> Obj:
        return await self.inner.get(res, name, namespace)

    async def list(self, res: Resource, namespace: str | None = None, *, label_selector: str | None = None,
                   field_selector: str | None = None, limit: int = 0, continue_token: str | None = None) -> Obj:
        return await self.inner.list(res, namespace, label_selector=label_selector, field_selector=field_selector,
                                     limit=limit, continue_token=continue_token)

    def watch(self, res: Resource, namespace: str | None = None, *, label_selector: str | None = None,
              field_selector: str | None = None, resource_version: str | None = None,
              timeout_seconds: int | None = None, bookmarks: bool = False) -> AsyncIterator[WatchEvent]:
        return self.inner.watch(res, namespace, label_selector=label_selector, field_selector=field_selector,
                                resource_version=resource_version, timeout_seconds=timeout_seconds, bookmarks=bookmarks)

    def subscribe(self, res: Resource, namespace: str | None = None, *, label_selector: str | None = None,
                  field_selector: str | None = None,
                  on_event: Callable[[str, Obj], None]) -> Callable[[], None] | None:
        return self.inner.subscribe(res, namespace, label_selector=label_selector, field_selector=field_selector,
                                    on_event=on_event)

    async def discover(self) -> builtins.list[Resource]:
        return await self.inner.discover()

    async def close(self) -> None:
        await self.inner.close()

    # ------------------------------------------------------------------ writes, recorded

    async def create(self, res: Resource, obj: Obj, namespace: str | None = None) -> Obj:
        meta = obj.get("metadata") or {}
        name = meta.get("name")
        own = self.own_writes
        if not name or not own.tracks(res):  # generateName: no key before the answer (and ADDED is never an echo)
            return await self.inner.create(res, obj, namespace)
        key = write_key(res, namespace or meta.get("namespace"), name)
        own.begin(key)
        try:
            created = await self.inner.create(res, obj, namespace)
        except BaseException:
            own.end(key, None)
            raise
        own.end(key, created)
        return created

    async def create_subresource(self, res: Resource, name: str, subresource: str, obj: Obj,
                                 namespace: str | None = None) -> Obj:
        own = self.own_writes
        if not own.tracks(res):
            return await self.inner.create_subresource(res, name, subresource, obj, namespace)
        key = write_key(res, namespace, name)
        own.begin(key)
        try:
            answer = await self.inner.create_subresource(res, name, subresource, obj, namespace)
        except BaseException:
            own.end(key, None)
            raise
        # Binding and eviction answer with a Status: only an object of this kind is a version of it.
        own.end(key, answer if answer.get("kind") == res.kind else None)
        return answer

    async def update(self, res: Resource, obj: Obj, *, subresource: str | None = None) -> Obj:
        own = self.own_writes
        if not own.tracks(res):
            return await self.inner.update(res, obj, subresource=subresource)
        meta = obj.get("metadata") or {}
        key = write_key(res, meta.get("namespace"), meta.get("name", ""))
        own.begin(key)
        try:
            updated = await self.inner.update(res, obj, subresource=subresource)
        except BaseException:
            own.end(key, None)
            raise
        own.end(key, updated)
        return updated

    async def patch(self, res: Resource, name: str, patch: Any, namespace: str | None = None, *,
                    patch_type: str = "merge", subresource: str | None = None) -> Obj:
        own = self.own_writes
        if not own.tracks(res):
            return await self.inner.patch(res, name, patch, namespace, patch_type=patch_type, subresource=subresource)
        key = write_key(res, namespace, name)
        own.begin(key)
        try:
            patched = await self.inner.patch(res, name, patch, namespace, patch_type=patch_type, subresource=subresource)
        except BaseException:
            own.end(key, None)
            raise
        own.end(key, patched)
        return patched

    async def delete(self, res: Resource, name: str, namespace: str | None = None, *,
                     grace_period_seconds: int | None = None, propagation_policy: str | None = None,
                     preconditions: dict | None = None) -> Obj:
        own = self.own_writes
        if not own.tracks(res):
            return await self.inner.delete(res, name, namespace, grace_period_seconds=grace_period_seconds,
                                           propagation_policy=propagation_policy, preconditions=preconditions)
        key = write_key(res, namespace, name)
        own.begin(key)
        try:
            answer = await self.inner.delete(res, name, namespace, grace_period_seconds=grace_period_seconds,
                                             propagation_policy=propagation_policy, preconditions=preconditions)
        except BaseException:
            own.end(key, None)
            raise
        # A graceful delete returns the object marked for deletion (its MODIFIED event is an echo);
        # a final one its last version, whose DELETED event is never skipped and discards the key.
        own.end(key, answer)
        return answer
