"""The namespace controller: empties a namespace being deleted, then lets it go.

Design
------
*Watches* Namespaces only (the controller manager's shared informer; it runs there as
``namespace-controller``, acting as the ``namespace-controller`` service account). A namespace whose ``metadata.deletionTimestamp``
is set -- the API server has already set ``status.phase: Terminating`` and refuses new
content in it -- is queued by name while ``spec.finalizers`` still holds
``kubernetes``, the finalizer that belongs to this controller.

*Reconcile* (one namespace at a time per worker, de-duplicated by the work queue):

1. delete every object of every namespaced resource in it (what the server serves at
   that moment, from :meth:`Client.discover`, so custom resources of CRDs created after
   start go too; or a fixed list given by the caller), with Background propagation,
   skipping objects already being deleted;
2. list again and count what remains: per resource, per finalizer, and how long the
   pods' grace periods still run (the estimate);
3. write the deletion conditions Kubernetes reports in ``status.conditions``
   (``NamespaceDeletionDiscoveryFailure``, ``NamespaceDeletionGroupVersionParsingFailure``,
   ``NamespaceDeletionContentFailure``, ``NamespaceContentRemaining``,
   ``NamespaceFinalizersRemaining``) through the ``status`` subresource, only when they
   change;
4. if content remains, come back later -- after the grace estimate when pods are
   terminating, otherwise with a growing backoff (objects held by finalizers of other
   controllers), both capped at ``max_backoff`` -- rather than watching every kind;
5. when nothing remains, remove ``kubernetes`` from ``spec.finalizers``. The API server
   removes the namespace once no finalizer (spec or metadata) remains.

*Writes*: DELETEs of the namespace's content, the namespace's status, and its finalize
step. Kubernetes does the last through ``PUT .../namespaces/<name>/finalize``; when the
server does not serve that subresource (podlife's REST layer does not yet) the
controller falls back to a plain update of ``spec.finalizers``, which podlife accepts.

*Why*: this is what makes ``kubectl delete namespace`` delete everything in it, and
what keeps a namespace ``Terminating`` while its pods shut down gracefully.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..machinery.timeutil import format_rfc3339
from ..machinery.errors import ApiError
from ..client.base import NAMESPACES, Obj, Resource, one_version_each
from ..client.workqueue import WorkQueue
from .manager import ControllerContext

log = logging.getLogger(__name__)

FINALIZER = "kubernetes"
DELETE_BATCH = 64
MIN_REQUEUE = 0.1

#: condition type -> (reason, message) when all is well, in Kubernetes' order
OK_CONDITIONS: dict[str, tuple[str, str]] = {
    "NamespaceDeletionDiscoveryFailure": ("ResourcesDiscovered", "All resources successfully discovered"),
    "NamespaceDeletionGroupVersionParsingFailure": ("ParsedGroupVersions", "All legacy kube types successfully parsed"),
    "NamespaceDeletionContentFailure": ("ContentDeleted",
                                        "All content successfully deleted, may be waiting on finalization"),
    "NamespaceContentRemaining": ("ContentRemoved", "All content successfully removed"),
    "NamespaceFinalizersRemaining": ("ContentHasNoFinalizers", "All content-preserving finalizers finished"),
}


# ---- what is left in a namespace ---------------------------------------------------------


@dataclass
class Content:
    """What a deletion pass left behind in one namespace."""

    remaining: dict[str, int] = field(default_factory=dict)  # "plural.group" -> objects
    finalizers: dict[str, int] = field(default_factory=dict)  # finalizer -> objects holding it
    errors: list[str] = field(default_factory=list)
    estimate: float = 0.0  # seconds until the longest graceful deletion should be over

    @property
    def empty(self) -> bool:
        return not self.remaining and not self.errors

    def count(self, res: Resource, items: list[Obj], now: datetime) -> None:
        if not items:
            return
        self.remaining[f"{res.plural}.{res.group}"] = len(items)
        for item in items:
            meta = item.get("metadata") or {}
            for fin in meta.get("finalizers") or ():
                self.finalizers[fin] = self.finalizers.get(fin, 0) + 1
            if meta.get("deletionGracePeriodSeconds"):
                self.estimate = max(self.estimate, _seconds_until(meta.get("deletionTimestamp"), now))


def _seconds_until(stamp: Any, now: datetime) -> float:
    try:
        when = datetime.strptime(str(stamp), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return 0.0
    return max((when - now).total_seconds(), 0.0)


def _now() -> datetime:
    return datetime.now(timezone.utc)


_stamp = format_rfc3339


# ---- status conditions -------------------------------------------------------------------


def deletion_conditions(content: Content) -> dict[str, tuple[str, str, str]]:
    """condition type -> (status, reason, message) for one pass, as Kubernetes words them."""
    out = {ctype: ("False", reason, message) for ctype, (reason, message) in OK_CONDITIONS.items()}
    if content.errors:
        msgs = ", ".join(sorted(content.errors))
        out["NamespaceDeletionContentFailure"] = (
            "True", "ContentDeletionFailed",
            f"Failed to delete all resource types, {len(content.errors)} remaining: {msgs}")
    if content.remaining:
        left = ", ".join(sorted(f"{gr} has {n} resource instances" for gr, n in content.remaining.items()))
        out["NamespaceContentRemaining"] = ("True", "SomeResourcesRemain", f"Some resources are remaining: {left}")
    if content.finalizers:
        left = ", ".join(sorted(f"{fin} in {n} resource instances" for fin, n in content.finalizers.items()))
        out["NamespaceFinalizersRemaining"] = (
            "True", "SomeFinalizersRemain", f"Some content in the namespace has finalizers remaining: {left}")
    return out


def merge_conditions(current: list[dict[str, Any]], wanted: dict[str, tuple[str, str, str]],
                     now: datetime) -> list[dict[str, Any]] | None:
    """``current`` with the ``wanted`` deletion conditions applied, or None if nothing changes.

    Conditions of other types are kept; ``lastTransitionTime`` moves only when a
    condition's status flips.
    """
    merged = [dict(c) for c in current if isinstance(c, dict)]
    by_type = {c.get("type"): c for c in merged}
    changed = False
    for ctype, (status, reason, message) in wanted.items():
        old = by_type.get(ctype)
        if old is None:
            merged.append({"type": ctype, "status": status, "lastTransitionTime": _stamp(now),
                           "reason": reason, "message": message})
            changed = True
        elif (old.get("status"), old.get("reason"), old.get("message")) != (status, reason, message):
            if old.get("status") != status:
                old["lastTransitionTime"] = _stamp(now)
            old.update(status=status, reason=reason, message=message)
            changed = True
    return merged if changed else None


# ---- the controller ----------------------------------------------------------------------


class NamespaceController:
    """Deletes the content of terminating namespaces, then finalizes them."""

    def __init__(self, ctx: ControllerContext, resources: Iterable[Resource] | None = None, *, workers: int = 2,
                 max_backoff: float = 5.0) -> None:
        self.client = ctx.client
        self._fixed = [r for r in resources if r.namespaced] if resources is not None else None
        self.workers = workers
        self.max_backoff = max_backoff
        self.queue = WorkQueue()
        self.informer = ctx.informers.informer(NAMESPACES)
        self.informer.add_handlers(on_add=self._enqueue, on_update=lambda _old, new: self._enqueue(new))
        self._waits: dict[str, int] = {}
        self._finalize_served: bool | None = None  # unknown until the first finalize

    async def run(self) -> None:
        await self.informer.wait_synced()
        await self.queue.run_workers(self.sync, self.workers)

    def _enqueue(self, ns: Obj) -> None:
        meta = ns.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            self.queue.add(meta.get("name", ""))

    async def sync(self, name: str) -> None:
        """One reconcile of namespace ``name``; re-queues itself while content remains."""
        ns = await self._get(name)
        if ns is None or not (ns.get("metadata") or {}).get("deletionTimestamp"):
            self._waits.pop(name, None)
            return
        if FINALIZER not in ((ns.get("spec") or {}).get("finalizers") or ()):
            return  # finalized; the API server removes it when its other finalizers go
        content = await self.delete_content(name)
        try:
            ns = await self._update_conditions(ns, content)
            if content.empty:
                await self._finalize(ns)
                self._waits.pop(name, None)
                return
        except ApiError as exc:
            if exc.code != 409:
                raise
            log.debug("namespace %s: conflict (%s); retrying", name, exc.message)
        self.queue.add_after(name, self._requeue_delay(name, content))

    def _requeue_delay(self, name: str, content: Content) -> float:
        if content.estimate > 0:  # pods shutting down: look again when they should be done
            return min(max(content.estimate, MIN_REQUEUE), self.max_backoff)
        attempt = self._waits.get(name, 0)
        self._waits[name] = attempt + 1
        return min(MIN_REQUEUE * 2.0 ** attempt, self.max_backoff)

    async def _get(self, name: str) -> Obj | None:
        try:
            return await self.client.get(NAMESPACES, name)
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise

    # -- content ---------------------------------------------------------------------------

    async def delete_content(self, namespace: str) -> Content:
        """Delete everything in ``namespace`` and report what is still there."""
        content = Content()
        now = _now()
        for res in await self.namespaced_resources():
            try:
                content.count(res, await self._delete_all(res, namespace), now)
            except ApiError as exc:
                content.errors.append(f"{res.plural}.{res.group}: {exc.message}")
        return content

    async def namespaced_resources(self) -> list[Resource]:
        """The namespaced kinds to empty: the fixed list, else what the server serves now (CRDs included)."""
        if self._fixed is not None:
            return self._fixed
        return one_version_each(r for r in await self.client.discover() if r.namespaced)

    async def _delete_all(self, res: Resource, namespace: str) -> list[Obj]:
        """Delete the objects of one resource in ``namespace``; return those still present."""
        items: list[Obj] = (await self.client.list(res, namespace))["items"]
        doomed = [o for o in items if not (o.get("metadata") or {}).get("deletionTimestamp")]
        if not doomed:
            return items
        for start in range(0, len(doomed), DELETE_BATCH):
            results = await asyncio.gather(*(self._delete_one(res, namespace, o)
                                             for o in doomed[start:start + DELETE_BATCH]), return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise result
        remaining: list[Obj] = (await self.client.list(res, namespace))["items"]
        return remaining

    async def _delete_one(self, res: Resource, namespace: str, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        try:
            await self.client.delete(res, meta.get("name", ""), namespace, propagation_policy="Background",
                                     preconditions={"uid": meta.get("uid")})
        except ApiError as exc:
            if exc.code not in (404, 409):  # gone, or replaced by a newer object (next pass)
                raise

    # -- namespace writes ------------------------------------------------------------------

    async def _update_conditions(self, ns: Obj, content: Content) -> Obj:
        status = ns.get("status") or {}
        merged = merge_conditions(status.get("conditions") or [], deletion_conditions(content), _now())
        if merged is None:
            return ns
        updated = copy.deepcopy(ns)
        updated["status"] = {**status, "conditions": merged}
        return await self.client.update(NAMESPACES, updated, subresource="status")

    async def _finalize(self, ns: Obj) -> None:
        """Remove this controller's finalizer from ``spec.finalizers``."""
        name = ns["metadata"]["name"]
        body = copy.deepcopy(ns)
        spec = body.setdefault("spec", {})
        spec["finalizers"] = [f for f in spec.get("finalizers") or () if f != FINALIZER]
        if self._finalize_served is not False:
            try:
                await self.client.update(NAMESPACES, body, subresource="finalize")
                self._finalize_served = True
                log.info("namespace %s: finalized", name)
                return
            except ApiError as exc:
                if not await self._finalize_unsupported(exc, name):
                    raise
                log.info("the API server does not serve namespaces/finalize; updating spec.finalizers instead")
                self._finalize_served = False
        result = await self.client.update(NAMESPACES, body)
        if FINALIZER in ((result.get("spec") or {}).get("finalizers") or ()):
            raise RuntimeError(f"namespace {name}: the API server kept spec.finalizers on update; "
                               "it must serve the finalize subresource")
        log.info("namespace %s: finalized", name)

    async def _finalize_unsupported(self, exc: ApiError, name: str) -> bool:
        """Whether ``exc`` says the subresource is not served (rather than the namespace gone)."""
        if exc.code == 405:
            return True
        return exc.code == 404 and await self._get(name) is not None
