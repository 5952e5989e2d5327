"""The garbage collector: removes objects whose owners are gone, and carries out the
``foregroundDeletion`` and ``orphan`` finalizers that DELETE requests leave behind.

Design
------
*Watches.* One informer per resource it is given (Events excluded, as in Kubernetes),
through :class:`MetadataClient`, which strips every object down to ``apiVersion``,
``kind`` and ``metadata``: owner references, finalizers and the deletion timestamp are
all the collector reads, so the informer caches stay small however big the objects.

*Graph.* :class:`DependencyGraph` maps uid -> :class:`Node` and keeps, for each node,
its owner references and the uids of its dependents. To stay cheap on a cluster of
10,000 pods it holds only objects that matter: objects with ``ownerReferences``,
objects being deleted with a collector finalizer, and owners that some dependent
points at. An owner not in the graph yet is read from its informer's cache when it
is there (the usual case: a pod becomes a node when its Port appears, with no API
call); otherwise it is a *virtual* node until it is verified with a live GET (after
the informers' full sync): found, it becomes a real node; absent (not
found, or another object under that name), it is dropped and its dependents are
examined. Events for any other object cost one dict lookup.

*Queues.* Graph changes never call the API; they only enqueue uids, de-duplicated by
:class:`~podlife.client.workqueue.WorkQueue` and retried with backoff:

- ``attempt to delete`` -- examine one object (Kubernetes' ``attemptToDeleteItem``):
  read it live, classify its owners with live GETs (absent owners are remembered in a
  small LRU, since uids never come back) into *solid*, *dangling* and *waiting for
  dependents deletion*; then

  * solid owners remain: keep it, but drop references to dangling and waiting owners;
  * only waiting owners, and it has dependents itself: delete it in the foreground;
  * otherwise: delete it (Background, or Orphan/Foreground if it already carries that
    finalizer), with a uid precondition so a same-named successor is never hit.

  An owner with ``foregroundDeletion`` is examined here too: once no dependent with
  ``blockOwnerDeletion: true`` remains in the graph, the finalizer is removed;
  meanwhile its blocking dependents are queued.
- ``attempt to orphan`` -- for an owner being deleted with the ``orphan`` finalizer:
  remove its owner reference from every dependent, then remove the finalizer.

*Writes.* DELETE of dependents (uid precondition), and merge patches of
``metadata.ownerReferences`` (dependents) and ``metadata.finalizers`` (owners), each
pinned to the ``resourceVersion`` it was computed from: a conflict re-queues the uid
and the next attempt starts from the live object again, so every step is idempotent.
Removing the last finalizer is what lets the API server remove the owner.

*Where.* In the controller manager as ``garbage-collector-controller``, acting as the
``generic-garbage-collector`` service account. Its metadata informers are its own (the
shared informers hold whole objects; Kubernetes' collector too uses metadata informers).

*Why* this shape: it is Kubernetes' garbage collector (graph builder + two queues),
so ``kubectl delete --cascade=background|foreground|orphan`` behaves as users expect;
decisions are taken on live reads, never on the (possibly lagging) graph alone.

Not covered: owners of kinds outside the given resources are never resolved (their
dependents are left alone, like Kubernetes does with unknown kinds); a cluster-scoped
dependent naming a namespaced owner kind is invalid and left alone, as in Kubernetes.
"""

from __future__ import annotations

import builtins

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..machinery.errors import ApiError
from ..client.base import CRDS, Client, Obj, Resource, WatchEvent, one_version_each
from ..client.informer import Informer
from ..machinery.tasks import Supervisor
from ..client.workqueue import WorkQueue
from .manager import ControllerContext

log = logging.getLogger(__name__)

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
#: (group, plural) of resources the collector never watches (as kube-controller-manager)
IGNORED_RESOURCES: frozenset[tuple[str, str]] = frozenset({("", "events"), ("events.k8s.io", "events")})
CONFLICT_DELAY = 0.05
ABSENT_CACHE_SIZE = 1000

AbsentKey = tuple[str, str, str, str, str]  # group, plural, namespace, name, uid


# ---- the metadata-only view -------------------------------------------------------------


def metadata_only(obj: Obj) -> Obj:
    """``apiVersion``, ``kind`` and ``metadata`` of ``obj`` (the metadata is shared, not copied)."""
    return {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "metadata": obj.get("metadata") or {}}


class MetadataClient(Client):
    """A client whose ``list`` and ``watch`` return metadata only (like client-go's metadata client).

    Every other verb is passed through unchanged.
    """

    def __init__(self, inner: Client) -> None:
        self.inner = inner

    async def get(self, res: Resource, name: str, namespace: str | None = None) -> Obj:
        return metadata_only(await self.inner.get(res, name, namespace))

    async def list(self, res: Resource, namespace: str | None = None, *, label_selector: str | None = None,
                   field_selector: str | None = None, limit: int = 0, continue_token: str | None = None) -> Obj:
        listed = await self.inner.list(res, namespace, label_selector=label_selector, field_selector=field_selector,
                                       limit=limit, continue_token=continue_token)
        return {**listed, "items": [metadata_only(o) for o in listed["items"]]}

    async def watch(self, res: Resource, namespace: str | None = None, *, label_selector: str | None = None,
                    field_selector: str | None = None, resource_version: str | None = None,
                    timeout_seconds: int | None = None, bookmarks: bool = False) -> AsyncIterator[WatchEvent]:
        async for ev in self.inner.watch(res, namespace, label_selector=label_selector, field_selector=field_selector,
                                         resource_version=resource_version, timeout_seconds=timeout_seconds,
                                         bookmarks=bookmarks):
            yield WatchEvent(ev.type, metadata_only(ev.object))

    def subscribe(self, res: Resource, namespace: str | None = None, *, label_selector: str | None = None,
                  field_selector: str | None = None,
                  on_event: Callable[[str, Obj], None]) -> Callable[[], None] | None:
        return self.inner.subscribe(res, namespace, label_selector=label_selector, field_selector=field_selector,
                                    on_event=lambda type_, obj: on_event(type_, metadata_only(obj)))

    async def discover(self) -> builtins.list[Resource]:
        return await self.inner.discover()

    async def create(self, res: Resource, obj: Obj, namespace: str | None = None) -> Obj:
        return await self.inner.create(res, obj, namespace)

    async def create_subresource(self, res: Resource, name: str, subresource: str, obj: Obj,
                                 namespace: str | None = None) -> Obj:
        return await self.inner.create_subresource(res, name, subresource, obj, namespace)

    async def update(self, res: Resource, obj: Obj, *, subresource: str | None = None) -> Obj:
        return await self.inner.update(res, obj, subresource=subresource)

    async def patch(self, res: Resource, name: str, patch: Any, namespace: str | None = None, *,
                    patch_type: str = "merge", subresource: str | None = None) -> Obj:
        return await self.inner.patch(res, name, patch, namespace, patch_type=patch_type, subresource=subresource)

    async def delete(self, res: Resource, name: str, namespace: str | None = None, *,
                     grace_period_seconds: int | None = None, propagation_policy: str | None = None,
                     preconditions: dict[str, Any] | None = None) -> Obj:
        return await self.inner.delete(res, name, namespace, grace_period_seconds=grace_period_seconds,
                                       propagation_policy=propagation_policy, preconditions=preconditions)


# ---- the graph ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OwnerRef:
    uid: str
    api_version: str
    kind: str
    name: str
    block: bool = False


def owner_refs(meta: Mapping[str, Any]) -> tuple[OwnerRef, ...]:
    """The well-formed owner references of an object's metadata."""
    refs = []
    for raw in meta.get("ownerReferences") or ():
        if isinstance(raw, dict) and raw.get("uid"):
            refs.append(OwnerRef(str(raw["uid"]), str(raw.get("apiVersion") or ""), str(raw.get("kind") or ""),
                                 str(raw.get("name") or ""), raw.get("blockOwnerDeletion") is True))
    return tuple(refs)


@dataclass(frozen=True, slots=True)
class Identity:
    """Where an object lives. ``resource`` is None for a kind the collector does not serve."""

    resource: Resource | None
    namespace: str  # "" for cluster-scoped objects
    name: str
    uid: str

    def matches(self, ref: OwnerRef, dependent_namespace: str) -> bool:
        """Whether ``ref`` (held by a dependent in ``dependent_namespace``) designates this object."""
        res = self.resource
        if res is None or ref.name != self.name or (ref.api_version, ref.kind) != (res.api_version, res.kind):
            return False
        return not res.namespaced or self.namespace == dependent_namespace


@dataclass(eq=False, slots=True)
class Node:
    identity: Identity
    owners: tuple[OwnerRef, ...] = ()
    dependents: set[str] = field(default_factory=set)
    observed: bool = False  # False: a virtual node, known only from dependents' references
    being_deleted: bool = False
    orphaning: bool = False  # being deleted with the orphan finalizer
    deleting_dependents: bool = False  # being deleted with the foregroundDeletion finalizer
    #: what the collector read from the object's metadata when an informer last showed it
    #: (owner references, finalizers, deletion timestamp), to skip events that change none
    seen: tuple[Any, Any, Any] | None = None

    @property
    def uid(self) -> str:
        return self.identity.uid

    @property
    def pending(self) -> bool:
        """Whether the collector owes this object some work (a finalizer of its own)."""
        return self.orphaning or self.deleting_dependents


class DependencyGraph:
    """Owner -> dependents, by uid, fed synchronously by informer events.

    It never calls the API: changes that need work enqueue uids through
    ``enqueue_delete`` (examine the object) and ``enqueue_orphan`` (orphan its dependents).
    """

    def __init__(self, kinds: Mapping[tuple[str, str], Resource], enqueue_delete: Callable[[str], None],
                 enqueue_orphan: Callable[[str], None],
                 find_observed: Callable[[Identity], Mapping[str, Any] | None] | None = None) -> None:
        self._kinds = kinds
        self._enqueue_delete = enqueue_delete
        self._enqueue_orphan = enqueue_orphan
        self._find_observed = find_observed or (lambda identity: None)
        self._nodes: dict[str, Node] = {}

    def __len__(self) -> int:
        return len(self._nodes)

    def get(self, uid: str) -> Node | None:
        return self._nodes.get(uid)

    def dependents(self, node: Node) -> list[Node]:
        return [d for d in (self._nodes.get(uid) for uid in node.dependents) if d is not None]

    def blocking_dependents(self, node: Node) -> list[Node]:
        """Dependents whose reference to ``node`` has ``blockOwnerDeletion: true``."""
        return [d for d in self.dependents(node) if any(r.uid == node.uid and r.block for r in d.owners)]

    # -- events ---------------------------------------------------------------------------

    def observe(self, res: Resource, meta: Mapping[str, Any]) -> None:
        """An object was added or changed (from an informer, or read live)."""
        uid = meta.get("uid")
        if not uid:
            return
        seen = (meta.get("ownerReferences"), meta.get("finalizers"), meta.get("deletionTimestamp"))
        node = self._nodes.get(uid)
        if node is not None and node.seen is not None and node.seen == seen:
            return  # a status write, say: nothing the collector reads has changed
        owners = owner_refs(meta)
        finalizers = meta.get("finalizers") or ()
        being_deleted = bool(meta.get("deletionTimestamp"))
        has_work = being_deleted and (ORPHAN in finalizers or FOREGROUND in finalizers)
        identity = Identity(res, str(meta.get("namespace") or ""), str(meta.get("name") or ""), str(uid))
        node = self._nodes.get(identity.uid)
        if node is None:
            if not owners and not has_work:
                return  # nothing owns it, nothing points at it: not the collector's business
            node = self._nodes[identity.uid] = Node(identity)
        elif not node.observed:
            self._recheck_mismatched_dependents(node, identity)
        node.identity = identity
        node.observed = True
        node.seen = seen
        self._set_owners(node, owners)
        self._set_deletion_state(node, being_deleted, finalizers)
        self._prune(node)

    def remove(self, uid: str) -> Node | None:
        """An object is gone (deleted, or a virtual owner verified absent)."""
        node = self._nodes.pop(uid, None)
        if node is None:
            return None
        for ref in node.owners:
            self._unlink(node, ref.uid)
        for dep in node.dependents:
            self._enqueue_delete(dep)
        return node

    # -- internals ------------------------------------------------------------------------

    def _set_owners(self, node: Node, owners: tuple[OwnerRef, ...]) -> None:
        before = {r.uid: r for r in node.owners}
        after = {r.uid: r for r in owners}
        node.owners = owners
        for uid, ref in before.items():
            if uid not in after:
                self._unlink(node, uid)
            elif ref.block and not after[uid].block:
                self._wake_if_deleting_dependents(uid)  # no longer blocks that owner
        for uid, ref in after.items():
            if uid not in before:
                self._link(node, ref)

    def _link(self, dependent: Node, ref: OwnerRef) -> None:
        owner = self._nodes.get(ref.uid)
        if owner is None:
            identity = self._virtual_identity(dependent, ref)
            owner = self._nodes[ref.uid] = Node(identity)
            seen = self._find_observed(identity) if identity.resource is not None else None
            if seen is not None:
                self._adopt(owner, seen)  # an informer has it: no live GET needed
            else:
                self._enqueue_delete(ref.uid)  # verify that the owner exists
        owner.dependents.add(dependent.uid)
        if owner.deleting_dependents:
            self._enqueue_delete(dependent.uid)

    def _adopt(self, node: Node, meta: Mapping[str, Any]) -> None:
        """Make a just-linked owner a real node from the metadata an informer holds for it.

        The graph keeps only objects that matter (see the module docstring), so the
        owner of a new dependent -- a pod, when its Port appears -- is usually in an
        informer's cache but not in the graph; reading it there is what Kubernetes'
        graph builder, which holds every object, gets for free.
        """
        node.observed = True
        self._set_owners(node, owner_refs(meta))
        finalizers = meta.get("finalizers") or ()
        self._set_deletion_state(node, bool(meta.get("deletionTimestamp")), finalizers)

    def _unlink(self, dependent: Node, owner_uid: str) -> None:
        owner = self._nodes.get(owner_uid)
        if owner is None:
            return
        owner.dependents.discard(dependent.uid)
        self._wake_if_deleting_dependents(owner_uid)
        self._prune(owner)

    def _wake_if_deleting_dependents(self, uid: str) -> None:
        owner = self._nodes.get(uid)
        if owner is not None and owner.deleting_dependents:
            self._enqueue_delete(uid)

    def _virtual_identity(self, dependent: Node, ref: OwnerRef) -> Identity:
        res = self._kinds.get((ref.api_version, ref.kind))
        namespace = dependent.identity.namespace if res is None or res.namespaced else ""
        return Identity(res, namespace, ref.name, ref.uid)

    def _recheck_mismatched_dependents(self, virtual: Node, observed: Identity) -> None:
        """Dependents that named this uid with other coordinates must be examined again."""
        for dep in self.dependents(virtual):
            for ref in dep.owners:
                if ref.uid == virtual.uid and not observed.matches(ref, dep.identity.namespace):
                    self._enqueue_delete(dep.uid)

    def _set_deletion_state(self, node: Node, being_deleted: bool, finalizers: Iterable[str]) -> None:
        finalizers = tuple(finalizers)
        orphaning = being_deleted and ORPHAN in finalizers
        deleting_dependents = being_deleted and FOREGROUND in finalizers
        if orphaning and not node.orphaning:
            self._enqueue_orphan(node.uid)
        if deleting_dependents and not node.deleting_dependents:
            for dep in node.dependents:
                self._enqueue_delete(dep)
            self._enqueue_delete(node.uid)
        node.being_deleted, node.orphaning, node.deleting_dependents = being_deleted, orphaning, deleting_dependents

    def _prune(self, node: Node) -> None:
        if not node.owners and not node.dependents and not node.pending:
            self._nodes.pop(node.uid, None)


# ---- the collector -----------------------------------------------------------------------


class AbsentOwners:
    """Owners verified absent (uids never come back, so this never goes stale); LRU-bounded."""

    def __init__(self, size: int = ABSENT_CACHE_SIZE) -> None:
        self._keys: OrderedDict[AbsentKey, None] = OrderedDict()
        self._size = size

    def __contains__(self, key: AbsentKey) -> bool:
        if key in self._keys:
            self._keys.move_to_end(key)
            return True
        return False

    def add(self, key: AbsentKey) -> None:
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self._size:
            self._keys.popitem(last=False)


def absent_key(res: Resource, namespace: str, name: str, uid: str) -> AbsentKey:
    return (res.group, res.plural, namespace if res.namespaced else "", name, uid)


@dataclass
class Classified:
    """A dependent's owner references, sorted by what their owners' live state says."""

    solid: list[OwnerRef] = field(default_factory=list)
    dangling: list[OwnerRef] = field(default_factory=list)
    waiting: list[OwnerRef] = field(default_factory=list)  # owner deleting its dependents first
    unresolvable: list[OwnerRef] = field(default_factory=list)


def _meta(obj: Obj) -> dict[str, Any]:
    return obj.get("metadata") or {}


def _is_api_error(exc: BaseException, *codes: int) -> bool:
    return isinstance(exc, ApiError) and exc.code in codes


class GarbageCollector:
    """Kubernetes' garbage collector over every served kind (see the module docstring).

    ``resources`` fixes the kinds watched; without it the collector asks the server
    (:meth:`Client.discover`) at start and again whenever a CustomResourceDefinition
    changes, so the custom resources of a CRD created later are collected too.
    """

    def __init__(self, ctx: ControllerContext, resources: Iterable[Resource] | None = None, *, workers: int = 4,
                 ignored: frozenset[tuple[str, str]] = IGNORED_RESOURCES) -> None:
        client = self.client = ctx.client
        self.ignored = ignored
        self._fixed = list(resources) if resources is not None else None
        self._kinds: dict[tuple[str, str], Resource] = {}  # owner references may name any version
        self.workers = workers
        self.delete_queue = WorkQueue()
        self.orphan_queue = WorkQueue()
        self.graph = DependencyGraph(self._kinds, self.delete_queue.add, self.orphan_queue.add, self._find_observed)
        self.absent = AbsentOwners()
        self._view = MetadataClient(client)
        self._informer_of: dict[tuple[str, str], Informer] = {}
        #: every informer's task, and each watched kind's by its (group, plural)
        self._informers = Supervisor("garbage collector", logger=log)
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._crds = Informer(client, CRDS)
        self._kinds_changed = asyncio.Event()
        self._crds.add_handlers(on_add=lambda _crd: self._kinds_changed.set(),
                                on_update=lambda _old, _new: self._kinds_changed.set(),
                                on_delete=lambda _crd: self._kinds_changed.set())
        self._synced = asyncio.Event()

    @property
    def resources(self) -> list[Resource]:
        """The kinds watched now, one version each."""
        return [inf.res for inf in self._informer_of.values()]

    async def run(self) -> None:
        """Watch, wait for the full sync, then work the queues until cancelled."""
        follow = self._fixed is None
        if follow:
            self._informers.start(self._crds.run(), "gc-crd-informer")
        try:
            await self._watch_kinds(self._fixed if self._fixed is not None else await self.client.discover())
            await asyncio.gather(*(inf.wait_synced() for inf in self._informer_of.values()))
            self._synced.set()
            log.info("garbage collector: synced %d resources, %d graph nodes", len(self._informer_of), len(self.graph))
            work = [self.delete_queue.run_workers(self._attempt_to_delete, self.workers),
                    self.orphan_queue.run_workers(self._attempt_to_orphan, max(1, self.workers // 2))]
            await asyncio.gather(*work, *([self._follow_kinds()] if follow else []))
        finally:
            await self._informers.stop()

    async def _follow_kinds(self) -> None:
        """Watch the kinds that CRDs add; stop watching those that went away."""
        while True:
            await self._kinds_changed.wait()
            self._kinds_changed.clear()
            await self._watch_kinds(await self.client.discover())

    async def _watch_kinds(self, resources: Iterable[Resource]) -> None:
        served = [r for r in resources if (r.group, r.plural) not in self.ignored]
        self._kinds.clear()
        self._kinds.update({(r.api_version, r.kind): r for r in served})
        wanted = {(r.group, r.plural): r for r in one_version_each(served)}
        for key in [k for k in self._informer_of if k not in wanted]:
            self._informer_of.pop(key)
            task = self._tasks.pop(key)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        for key, res in wanted.items():
            if key not in self._informer_of:
                informer = self._informer(self._view, res)
                self._informer_of[key] = informer
                self._tasks[key] = self._informers.start(informer.run(), f"gc-informer-{res.plural}")

    async def wait_synced(self) -> None:
        await self._synced.wait()

    # -- informer handlers (synchronous: they only change the graph) -----------------------

    def _informer(self, view: Client, res: Resource) -> Informer:
        informer = Informer(view, res)
        informer.add_handlers(on_add=lambda obj: self.graph.observe(res, _meta(obj)),
                              on_update=lambda old, new: self._on_update(res, old, new),
                              on_delete=self._on_delete)
        return informer

    def _find_observed(self, identity: Identity) -> Mapping[str, Any] | None:
        """The metadata an informer holds for ``identity`` (same uid), if any."""
        res = identity.resource
        informer = self._informer_of.get((res.group, res.plural)) if res is not None else None
        obj = informer.get(identity.namespace or None, identity.name) if informer is not None else None
        meta = _meta(obj) if obj is not None else None
        return meta if meta is not None and meta.get("uid") == identity.uid else None

    def _on_update(self, res: Resource, old: Obj, new: Obj) -> None:
        old_uid = _meta(old).get("uid")
        if old_uid and old_uid != _meta(new).get("uid"):
            self._on_delete(old)  # replaced under the same name (seen on a relist)
        self.graph.observe(res, _meta(new))

    def _on_delete(self, obj: Obj) -> None:
        node = self.graph.get(str(_meta(obj).get("uid") or ""))
        if node is None:
            return
        ident = node.identity
        if node.dependents and ident.resource is not None:
            self.absent.add(absent_key(ident.resource, ident.namespace, ident.name, ident.uid))
        self.graph.remove(node.uid)

    # -- attempt to delete -----------------------------------------------------------------

    async def _attempt_to_delete(self, uid: str) -> None:
        node = self.graph.get(uid)
        if node is None:
            return
        try:
            if node.observed:
                await self._examine(node)
            else:
                await self._verify_virtual(node)
        except ApiError as exc:
            if exc.code != 409:
                raise
            log.debug("garbage collector: conflict on %s (%s); retrying", uid, exc.message)
            self.delete_queue.add_after(uid, CONFLICT_DELAY)

    async def _verify_virtual(self, node: Node) -> None:
        """An owner known only from references: adopt it if it exists, else drop it."""
        ident = node.identity
        if ident.resource is None:
            return  # a kind we do not serve: its dependents are left alone
        key = absent_key(ident.resource, ident.namespace, ident.name, ident.uid)
        known_absent = key in self.absent
        live = None if known_absent else await self._get_live(ident)
        current = self.graph.get(ident.uid)
        if current is not node or node.observed:
            return  # the informer got there first
        if live is not None:
            self.graph.observe(ident.resource, _meta(live))
            return
        if not known_absent:
            self.absent.add(key)
            log.info("garbage collector: owner %s %s/%s (uid %s) does not exist", ident.resource.kind,
                     ident.namespace, ident.name, ident.uid)
        self.graph.remove(ident.uid)

    async def _examine(self, node: Node) -> None:
        if node.being_deleted and not node.deleting_dependents:
            return  # on its way out; its dependents are examined when it is gone
        live = await self._get_live(node.identity)
        if live is None:
            self.graph.remove(node.uid)  # gone before the informer said so
            return
        meta = _meta(live)
        if meta.get("deletionTimestamp"):
            if FOREGROUND in (meta.get("finalizers") or ()):
                await self._finish_foreground(node)
            return
        refs = owner_refs(meta)
        if refs:
            await self._collect_if_orphaned(node, live, await self._classify(node.identity, refs))

    async def _collect_if_orphaned(self, node: Node, live: Obj, owners: Classified) -> None:
        ident = node.identity
        if owners.unresolvable:
            log.warning("garbage collector: %s/%s has owner references that cannot be resolved (%s); leaving it",
                        ident.namespace, ident.name, ", ".join(f"{r.kind} {r.name}" for r in owners.unresolvable))
            return
        if owners.solid:
            stale = {r.uid for r in owners.dangling + owners.waiting}
            if stale:
                await self._patch_owner_refs(ident, live, lambda refs: [r for r in refs if r.get("uid") not in stale])
            return
        if owners.waiting and node.dependents:
            if any(dep.deleting_dependents for dep in self.graph.dependents(node)):
                # break a possible cycle of owners waiting on each other
                await self._patch_owner_refs(ident, live, lambda refs: [{**r, "blockOwnerDeletion": False}
                                                                        if r.get("blockOwnerDeletion") else r
                                                                        for r in refs])
            await self._delete(ident, "Foreground")
            return
        finalizers = _meta(live).get("finalizers") or ()
        policy = "Orphan" if ORPHAN in finalizers else "Foreground" if FOREGROUND in finalizers else "Background"
        await self._delete(ident, policy)

    async def _classify(self, ident: Identity, refs: Iterable[OwnerRef]) -> Classified:
        out = Classified()
        for ref in refs:
            res = self._kinds.get((ref.api_version, ref.kind))
            if res is None or (res.namespaced and not ident.namespace):
                out.unresolvable.append(ref)
                continue
            key = absent_key(res, ident.namespace, ref.name, ref.uid)
            owner = None if key in self.absent else await self._get(res, ref.name, ident.namespace)
            if owner is None or _meta(owner).get("uid") != ref.uid:
                self.absent.add(key)
                out.dangling.append(ref)
            elif _meta(owner).get("deletionTimestamp") and FOREGROUND in (_meta(owner).get("finalizers") or ()):
                out.waiting.append(ref)
            else:
                out.solid.append(ref)
        return out

    async def _finish_foreground(self, owner: Node) -> None:
        """Foreground deletion: remove the finalizer once no blocking dependent remains."""
        blocking = self.graph.blocking_dependents(owner)
        if not blocking:
            await self._remove_finalizer(owner.identity, FOREGROUND)
            return
        for dep in blocking:
            if not dep.deleting_dependents:
                self.delete_queue.add(dep.uid)

    # -- attempt to orphan -----------------------------------------------------------------

    async def _attempt_to_orphan(self, uid: str) -> None:
        node = self.graph.get(uid)
        if node is None or not node.observed:
            return
        try:
            results = await asyncio.gather(*(self._drop_owner_ref(dep.identity, uid)
                                             for dep in self.graph.dependents(node)), return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            await self._remove_finalizer(node.identity, ORPHAN)
        except ApiError as exc:
            if exc.code != 409:
                raise
            log.debug("garbage collector: conflict orphaning %s (%s); retrying", uid, exc.message)
            self.orphan_queue.add_after(uid, CONFLICT_DELAY)

    async def _drop_owner_ref(self, ident: Identity, owner_uid: str) -> None:
        live = await self._get_live(ident)
        if live is None or not any(r.get("uid") == owner_uid for r in _meta(live).get("ownerReferences") or ()):
            return
        await self._patch_owner_refs(ident, live, lambda refs: [r for r in refs if r.get("uid") != owner_uid])

    # -- API calls -------------------------------------------------------------------------

    async def _get(self, res: Resource, name: str, namespace: str) -> Obj | None:
        try:
            return await self.client.get(res, name, namespace if res.namespaced else None)
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise

    async def _get_live(self, ident: Identity) -> Obj | None:
        """The object now, or None if it is gone (or another object has its name)."""
        if ident.resource is None:
            return None
        obj = await self._get(ident.resource, ident.name, ident.namespace)
        if obj is None or _meta(obj).get("uid") != ident.uid:
            return None
        return obj

    async def _delete(self, ident: Identity, policy: str) -> None:
        assert ident.resource is not None
        log.info("garbage collector: deleting %s %s/%s (propagation %s)", ident.resource.kind, ident.namespace,
                 ident.name, policy)
        try:
            await self.client.delete(ident.resource, ident.name, ident.namespace or None, propagation_policy=policy,
                                     preconditions={"uid": ident.uid})
        except ApiError as exc:
            if exc.code != 404:
                raise

    async def _patch_metadata(self, ident: Identity, live: Obj, changes: dict[str, Any]) -> None:
        """A merge patch of metadata, pinned to the resourceVersion ``changes`` were computed from."""
        assert ident.resource is not None
        body = {"metadata": {**changes, "resourceVersion": _meta(live).get("resourceVersion")}}
        try:
            await self.client.patch(ident.resource, ident.name, body, ident.namespace or None, patch_type="merge")
        except ApiError as exc:
            if exc.code != 404:
                raise

    async def _patch_owner_refs(self, ident: Identity, live: Obj,
                                change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> None:
        refs = [r for r in _meta(live).get("ownerReferences") or () if isinstance(r, dict)]
        new = change(refs)
        if new != refs:
            await self._patch_metadata(ident, live, {"ownerReferences": new or None})

    async def _remove_finalizer(self, ident: Identity, finalizer: str) -> None:
        live = await self._get_live(ident)
        finalizers = list(_meta(live).get("finalizers") or ()) if live is not None else []
        if live is None or finalizer not in finalizers:
            return
        remaining = [f for f in finalizers if f != finalizer]
        await self._patch_metadata(ident, live, {"finalizers": remaining or None})
