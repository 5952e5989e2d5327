"""Shared informers: one watch per resource for every controller, with indexes on the cache.

client-go's ``SharedInformerFactory``: kube-controller-manager runs thirty controllers
but watches Pods once. :class:`SharedInformers` hands out one
:class:`~podlife.client.informer.Informer` per resource (every caller of
:meth:`SharedInformers.informer` gets the same one and adds its handlers), and
:meth:`SharedInformers.run` runs them all; an informer asked for after ``run`` started
starts at once.

Indexes (client-go's ``Indexer``): a controller that asks "the pods this ReplicaSet
controls" or "the pods on this node" must not scan 10,000 cached pods per sync.
:meth:`SharedInformers.index` keeps, for a function from object to index values, the
objects under each value, updated by the informer's handlers before any controller
looks (handlers only enqueue; workers read later). Indexes are shared by name, like the
informers. The common ones are here: :data:`BY_NAMESPACE`, :data:`BY_CONTROLLER`
(the ``controller: true`` owner reference's uid), :data:`BY_NODE` (``spec.nodeName``),
:data:`ORPHANS_BY_NAMESPACE` (objects no controller controls -- rare, so a controller
looking for pods to adopt reads a short list, not its namespace).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from ..machinery.tasks import Supervisor
from .base import Client, Obj, Resource
from .informer import Informer, object_key

IndexFunc = Callable[[Obj], Iterable[str]]


def by_namespace(obj: Obj) -> Iterable[str]:
    namespace = (obj.get("metadata") or {}).get("namespace")
    return (namespace,) if namespace else ()


def by_controller(obj: Obj) -> Iterable[str]:
    """The uid of the object's managing controller (its owner reference with ``controller: true``)."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller") and ref.get("uid"):
            return (ref["uid"],)
    return ()


def orphans_by_namespace(obj: Obj) -> Iterable[str]:
    """The namespace of an object no controller controls (what a controller may adopt)."""
    meta = obj.get("metadata") or {}
    if not meta.get("namespace") or any(ref.get("controller") for ref in meta.get("ownerReferences") or ()):
        return ()
    return (meta["namespace"],)


def by_node(obj: Obj) -> Iterable[str]:
    node = (obj.get("spec") or {}).get("nodeName")
    return (node,) if node else ()


BY_NAMESPACE = "namespace"
BY_CONTROLLER = "controller"
BY_NODE = "node"
ORPHANS_BY_NAMESPACE = "orphans-by-namespace"
_STANDARD: dict[str, IndexFunc] = {BY_NAMESPACE: by_namespace, BY_CONTROLLER: by_controller, BY_NODE: by_node,
                                   ORPHANS_BY_NAMESPACE: orphans_by_namespace}


class Index:
    """Cached objects by index value: ``get(value)`` is every object indexed under it.

    The index keeps keys, not objects, and reads the objects from the informer's cache
    when asked: an update that leaves an object's index values as they were (nearly
    every update: a status change) costs one call of the index function and one
    comparison, nothing more.
    """

    def __init__(self, func: IndexFunc, informer: Informer) -> None:
        self._func = func
        self._informer = informer
        self._keys: dict[str, dict[str, None]] = {}  # value -> keys under it (a dict: insertion-ordered set)
        self._values: dict[str, tuple[str, ...]] = {}  # key -> its values

    def get(self, value: str) -> list[Obj]:
        cache = self._informer.cache
        return [obj for key in self._keys.get(value, ()) if (obj := cache.get(key)) is not None]

    def keys(self) -> list[str]:
        """Every index value some object is under."""
        return list(self._keys)

    def _put(self, obj: Obj) -> None:
        key = object_key(obj)
        values = tuple(self._func(obj))
        if self._values.get(key, ()) == values:
            return
        self._drop(key)
        if values:
            self._values[key] = values
            for value in values:
                self._keys.setdefault(value, {})[key] = None

    def _drop(self, key: str) -> None:
        for value in self._values.pop(key, ()):
            bucket = self._keys.get(value)
            if bucket is not None:
                bucket.pop(key, None)
                if not bucket:
                    del self._keys[value]

    def _on_update(self, _old: Obj, new: Obj) -> None:
        self._put(new)

    def _on_delete(self, obj: Obj) -> None:
        self._drop(object_key(obj))


class SharedInformers:
    def __init__(self, client: Client) -> None:
        self.client = client
        self._informers: dict[Resource, Informer] = {}
        self._indexes: dict[tuple[Resource, str], Index] = {}
        self._tasks: Supervisor | None = None

    def informer(self, res: Resource) -> Informer:
        """The one informer of ``res`` (made, and started if :meth:`run` is running, on first ask)."""
        informer = self._informers.get(res)
        if informer is None:
            informer = self._informers[res] = Informer(self.client, res)
            if self._tasks is not None:
                self._tasks.start(informer.run(), f"informer {res.plural}")
        return informer

    def index(self, res: Resource, name: str, func: IndexFunc | None = None) -> Index:
        """The index ``name`` of ``res``'s cache; ``func`` may be left out for the standard ones."""
        index = self._indexes.get((res, name))
        if index is None:
            func = func or _STANDARD[name]
            informer = self.informer(res)
            index = self._indexes[(res, name)] = Index(func, informer)
            for obj in informer.cache.values():
                index._put(obj)
            informer.add_handlers(index._put, index._on_update, index._on_delete)
        return index

    async def wait_synced(self, *resources: Resource) -> None:
        await asyncio.gather(*(self.informer(res).wait_synced() for res in resources))

    async def run(self) -> None:
        """Run every informer (and any asked for later) until cancelled."""
        self._tasks = Supervisor("shared informers")
        for res, informer in list(self._informers.items()):
            self._tasks.start(informer.run(), f"informer {res.plural}")
        try:
            await asyncio.get_running_loop().create_future()
        finally:
            tasks, self._tasks = self._tasks, None
            await tasks.stop()
