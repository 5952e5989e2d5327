"""The PV controller (``persistentvolume-binder-controller``): binds claims to volumes, reclaims released volumes.

kube-controller-manager's ``pkg/controller/volume/persistentvolume/pv_controller.go``;
the decisions are pure functions in :mod:`.binding`, the claim-to-volume match is
:func:`~podlife.machinery.storage.find_matching_volume`.

What it watches (shared informers): PersistentVolumeClaims, PersistentVolumes and
StorageClasses, with two indexes of its own: volumes by storage class (the candidates for a
claim, no scan of every volume) and claims not yet bound by storage class (who may take a
volume that just became Available, or a default class that just appeared), plus volumes
by the claim their ``claimRef`` names.

Two work queues, of claim keys and of volume names. Handlers only enqueue:

* a claim added or changed queues itself; a claim deleted queues the volumes naming it
  (they turn Released);
* a volume added or changed queues itself and the claim its ``claimRef`` names (a
  provisioned or pre-bound volume completes that claim's binding); a volume that is
  Available and free queues the unbound claims of its class; a volume deleted queues
  its claim (which turns Lost);
* a StorageClass added or changed queues the unbound claims.

Every ``--pvclaimbinder-sync-period`` (15 s) everything is queued
again, so a transition missed in a crash heals.

A claim's sync (``syncClaim``): without the ``bind-completed`` annotation it is unbound --
with no ``volumeName`` the best fitting volume is bound (only pre-bound ones when the class
waits for the first consumer and no node is selected yet); nothing fits: the
``WaitForFirstConsumer`` event (once per claim), the class's provisioner named in the
claim's annotations with ``ExternalProvisioning``, ``ProvisioningFailed`` or
``FailedBinding``; a claim that never named a class gets the default one first. With a
``volumeName``: bound when that volume is free and fits (else ``VolumeMismatch``) or
already names the claim. A bound claim whose volume is gone, or bound to another claim,
turns Lost (``ClaimLost``, ``ClaimMisbound``).

A volume's sync (``syncVolume``): no ``claimRef`` (or one without uid: reserved): Available;
its claim bound to it: Bound; its claim gone (not found in the cache nor the API, or
another uid): Released, then reclaimed (:func:`~.binding.reclaim_verdict`: Retain stays,
Delete is left to the provisioner that made it or fails, Recycle fails); a binding the
controller made to a claim now bound elsewhere is undone.

Writes: a binding is four updates, as Kubernetes' ``bind``: the volume's ``claimRef``, its
status (Bound), the claim's ``volumeName`` and annotations, its status (Bound, access modes,
capacity); each carries the resourceVersion read, so two syncs racing for one volume cannot
both win -- the loser gets 409 and its key comes back. What it wrote it remembers until the
informer has caught up (Kubernetes' ``storeObjectUpdate``), so a sync right after a write does
not act on the version before it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from ...client.base import PERSISTENT_VOLUME_CLAIMS, PERSISTENT_VOLUMES, STORAGE_CLASSES, Obj, Resource
from ...client.events import EventRecorder
from ...client.informer import Informer, object_key
from ...client.workqueue import WorkQueue
from ...machinery.errors import ApiError
from ...machinery.storage import (
    ANN_BOUND_BY_CONTROLLER,
    claim_class,
    claim_mismatch,
    default_class,
    find_matching_volume,
    is_volume_bound_to_claim,
    volume_class,
)
from ...machinery.timeutil import now_rfc3339
from ..manager import ControllerContext
from . import binding
from .binding import Event, VolumeVerdict

log = logging.getLogger(__name__)

#: the component Kubernetes' PV controller signs its events with (not its service account's name)
EVENT_SOURCE = "persistentvolume-controller"

WORKERS = 4
VOLUMES_BY_CLASS = "pv-binder/volumes-by-class"
UNBOUND_CLAIMS_BY_CLASS = "pv-binder/unbound-claims-by-class"
VOLUMES_BY_CLAIM = "pv-binder/volumes-by-claim"


def _volumes_by_class(volume: Obj) -> Iterable[str]:
    return (volume_class(volume),)


def _unbound_claims_by_class(claim: Obj) -> Iterable[str]:
    return () if binding.has_bind_completed(claim) else (claim_class(claim),)


def _volumes_by_claim(volume: Obj) -> Iterable[str]:
    ref = (volume.get("spec") or {}).get("claimRef") or {}
    return (f"{ref.get('namespace')}/{ref.get('name')}",) if ref.get("name") else ()


def _version(obj: Obj | None) -> int:
    try:
        return int(((obj or {}).get("metadata") or {}).get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


class _Newest:
    """An informer's cache, overlaid with what this controller wrote and the informer has not shown yet."""

    def __init__(self, informer: Informer) -> None:
        self.informer = informer
        self._written: dict[str, Obj] = {}

    def get(self, key: str) -> Obj | None:
        cached = self.informer.cache.get(key)
        mine = self._written.get(key)
        if mine is None:
            return cached
        if cached is None or _version(cached) >= _version(mine):  # deleted since, or caught up
            self._written.pop(key, None)
            return cached
        return mine

    def newest(self, objs: Iterable[Obj]) -> list[Obj]:
        return [obj for o in objs if (obj := self.get(object_key(o))) is not None]

    def wrote(self, obj: Obj) -> None:
        self._written[object_key(obj)] = obj

    def forget(self, key: str) -> None:
        self._written.pop(key, None)


class PersistentVolumeBinder:
    """kube-controller-manager's PersistentVolumeController (see the module docstring)."""

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.recorder = EventRecorder(ctx.client, EVENT_SOURCE)
        self.resync_period = ctx.options.pvclaimbinder_sync_period
        self.claim_queue = WorkQueue()
        self.volume_queue = WorkQueue()
        self.claims = _Newest(ctx.informers.informer(PERSISTENT_VOLUME_CLAIMS))
        self.volumes = _Newest(ctx.informers.informer(PERSISTENT_VOLUMES))
        self.classes = ctx.informers.informer(STORAGE_CLASSES)
        self.volumes_by_class = ctx.informers.index(PERSISTENT_VOLUMES, VOLUMES_BY_CLASS, _volumes_by_class)
        self.volumes_by_claim = ctx.informers.index(PERSISTENT_VOLUMES, VOLUMES_BY_CLAIM, _volumes_by_claim)
        self.unbound_claims = ctx.informers.index(PERSISTENT_VOLUME_CLAIMS, UNBOUND_CLAIMS_BY_CLASS,
                                                  _unbound_claims_by_class)
        self._told_to_wait: set[str] = set()  # claim uids that got their WaitForFirstConsumer event
        self.claims.informer.add_handlers(self._claim_changed, lambda _old, new: self._claim_changed(new),
                                          self._claim_deleted)
        self.volumes.informer.add_handlers(self._volume_changed, lambda _old, new: self._volume_changed(new),
                                           self._volume_deleted)
        self.classes.add_handlers(self._class_changed, lambda _old, new: self._class_changed(new), None)

    async def run(self) -> None:
        await self.ctx.informers.wait_synced(PERSISTENT_VOLUME_CLAIMS, PERSISTENT_VOLUMES, STORAGE_CLASSES)
        self._queue_everything()
        await asyncio.gather(self.claim_queue.run_workers(self.sync_claim, WORKERS),
                             self.volume_queue.run_workers(self.sync_volume, WORKERS),
                             self._resync())

    # ------------------------------------------------------------------ handlers (enqueue only)

    def _claim_changed(self, claim: Obj) -> None:
        self.claim_queue.add(object_key(claim))

    def _claim_deleted(self, claim: Obj) -> None:
        key = object_key(claim)
        self.claims.forget(key)
        self._told_to_wait.discard(str(claim["metadata"].get("uid")))
        if name := (claim.get("spec") or {}).get("volumeName"):
            self.volume_queue.add(name)
        for volume in self.volumes_by_claim.get(key):
            self.volume_queue.add(object_key(volume))

    def _volume_changed(self, volume: Obj) -> None:
        self.volume_queue.add(object_key(volume))
        ref = (volume.get("spec") or {}).get("claimRef") or {}
        if ref.get("name"):
            self.claim_queue.add(f"{ref.get('namespace')}/{ref['name']}")
        elif binding.phase(volume) == "Available" and not (volume.get("metadata") or {}).get("deletionTimestamp"):
            for claim in self.unbound_claims.get(volume_class(volume)):
                self.claim_queue.add(object_key(claim))

    def _volume_deleted(self, volume: Obj) -> None:
        self.volumes.forget(object_key(volume))
        ref = (volume.get("spec") or {}).get("claimRef") or {}
        if ref.get("name"):
            self.claim_queue.add(f"{ref.get('namespace')}/{ref['name']}")

    def _class_changed(self, _storage_class: Obj) -> None:
        for class_name in self.unbound_claims.keys():
            for claim in self.unbound_claims.get(class_name):
                self.claim_queue.add(object_key(claim))

    def _queue_everything(self) -> None:
        for key in list(self.claims.informer.cache):
            self.claim_queue.add(key)
        for key in list(self.volumes.informer.cache):
            self.volume_queue.add(key)

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self.resync_period)
            self._queue_everything()

    # ------------------------------------------------------------------ writes

    async def _update(self, res: Resource, kind: str, obj: Obj, *, status: bool = False) -> Obj:
        """PUT (of the status with ``status``) with the version read; the answer is remembered as the newest."""
        body = {**obj, "kind": kind, "apiVersion": "v1"}
        written = await self.client.update(res, body, subresource="status" if status else None)
        (self.claims if res is PERSISTENT_VOLUME_CLAIMS else self.volumes).wrote(written)
        return written

    async def _update_claim(self, claim: Obj) -> Obj:
        return await self._update(PERSISTENT_VOLUME_CLAIMS, "PersistentVolumeClaim", claim)

    async def _set_claim_phase(self, claim: Obj, phase: str, volume: Obj | None, event: Event | None = None) -> Obj:
        status = binding.claim_status(claim, phase, volume)
        if status is None:
            return claim
        claim = await self._update(PERSISTENT_VOLUME_CLAIMS, "PersistentVolumeClaim", {**claim, "status": status},
                                   status=True)
        if event is not None:
            self._record(claim, "PersistentVolumeClaim", event)
        return claim

    async def _set_volume_phase(self, volume: Obj, phase: str, event: Event | None = None) -> Obj:
        status = binding.volume_status(volume, phase, event.message if event else "", now_rfc3339())
        if status is None:
            return volume
        volume = await self._update(PERSISTENT_VOLUMES, "PersistentVolume", {**volume, "status": status}, status=True)
        if event is not None:
            self._record(volume, "PersistentVolume", event)
        return volume

    def _record(self, obj: Obj, kind: str, event: Event) -> None:
        self.recorder.event({**obj, "kind": kind, "apiVersion": "v1"}, event.type, event.reason, event.message)

    async def _live(self, res: Resource, name: str, namespace: str | None = None) -> Obj | None:
        """A fresh read, for when the cache says "gone" and acting on a lagging cache would lose data."""
        try:
            return await self.client.get(res, name, namespace)
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise

    # ------------------------------------------------------------------ claims

    async def sync_claim(self, key: str) -> None:
        claim = self.claims.get(key)
        if claim is None:
            return
        try:
            if binding.has_bind_completed(claim):
                await self._sync_bound_claim(claim)
            else:
                await self._sync_unbound_claim(claim)
        except ApiError as exc:
            if exc.code == 409:  # someone wrote first: read again and decide again
                self.claim_queue.retry(key)
                return
            if exc.code == 404:
                return
            raise

    async def _sync_unbound_claim(self, claim: Obj) -> None:
        volume_name = (claim.get("spec") or {}).get("volumeName")
        if not volume_name:
            await self._bind_any(claim)
            return
        volume = self.volumes.get(volume_name)
        if volume is None:  # the user asked for a volume that does not exist (yet)
            await self._set_claim_phase(claim, "Pending", None)
            return
        ref = (volume.get("spec") or {}).get("claimRef")
        if not ref:
            why = claim_mismatch(claim, volume)
            if why is not None:
                self._record(claim, "PersistentVolumeClaim",
                             Event("Warning", "VolumeMismatch", f'Cannot bind to requested volume "{volume_name}": {why}'))
                await self._set_claim_phase(claim, "Pending", None)
                return
            await self._bind(volume, claim)
        elif is_volume_bound_to_claim(volume, claim):
            await self._bind(volume, claim)
        else:  # bound to another claim: the user's pre-binding waits; a binding of ours is wrong
            if ANN_BOUND_BY_CONTROLLER in ((claim.get("metadata") or {}).get("annotations") or {}):
                log.warning("claim %s: bound by the controller to volume %s, which is bound to another claim",
                            object_key(claim), volume_name)
            await self._set_claim_phase(claim, "Pending", None)

    async def _bind_any(self, claim: Obj) -> None:
        """An unbound claim that names no volume: the best fitting one, else wait, provision or fail."""
        class_name = claim_class(claim)
        storage_class = self.classes.get(None, class_name) if class_name else None
        delayed = binding.delays_binding(claim, storage_class)
        candidates = self.volumes.newest(self.volumes_by_class.get(class_name))
        volume = find_matching_volume(claim, candidates, delay_binding=delayed)
        if volume is not None:
            await self._bind(dict(volume), claim)
            return
        default = binding.retroactive_class(claim, default_class(self.classes.cache.values()))
        if default is not None:
            updated = {**claim, "spec": {**claim["spec"], "storageClassName": default}}
            await self._update_claim(updated)  # its update event brings it back, with its class
            return
        verdict = binding.no_volume_verdict(claim, storage_class, delayed)
        if verdict.provisioner is not None and (annotated := binding.with_provisioner(claim, verdict.provisioner)):
            claim = await self._update_claim(annotated)
        event = verdict.event
        if event is not None and event.reason == "WaitForFirstConsumer":
            uid = str(claim["metadata"].get("uid"))
            if uid in self._told_to_wait:
                event = None
            self._told_to_wait.add(uid)
        if event is not None:
            self._record(claim, "PersistentVolumeClaim", event)
        await self._set_claim_phase(claim, "Pending", None)

    async def _sync_bound_claim(self, claim: Obj) -> None:
        volume_name = (claim.get("spec") or {}).get("volumeName")
        if not volume_name:
            await self._claim_lost(claim, Event("Warning", "ClaimLost", binding.CLAIM_LOST_REFERENCE))
            return
        volume = self.volumes.get(volume_name) or await self._live(PERSISTENT_VOLUMES, volume_name)
        if volume is None:
            await self._claim_lost(claim, Event("Warning", "ClaimLost", binding.CLAIM_LOST))
        elif not (volume.get("spec") or {}).get("claimRef") or is_volume_bound_to_claim(volume, claim):
            await self._bind(volume, claim)  # finishes a half-done binding; writes nothing when all is done
        else:
            await self._claim_lost(claim, Event("Warning", "ClaimMisbound", binding.CLAIM_MISBOUND))

    async def _claim_lost(self, claim: Obj, event: Event) -> None:
        if binding.phase(claim) != "Lost":
            await self._set_claim_phase(claim, "Lost", None, event)

    async def _bind(self, volume: Obj, claim: Obj) -> None:
        """Kubernetes' ``bind``: the volume's claimRef, its phase, the claim's volumeName, its phase -- each
        skipped when already so."""
        if (bound := binding.volume_bound_to(volume, claim)) is not None:
            volume = await self._update(PERSISTENT_VOLUMES, "PersistentVolume", bound)
        volume = await self._set_volume_phase(volume, "Bound")
        if (named := binding.claim_bound_to(claim, volume)) is not None:
            claim = await self._update_claim(named)
        await self._set_claim_phase(claim, "Bound", volume)

    # ------------------------------------------------------------------ volumes

    async def sync_volume(self, key: str) -> None:
        volume = self.volumes.get(key)
        if volume is None:
            return
        try:
            await self._sync_volume(volume)
        except ApiError as exc:
            if exc.code == 409:
                self.volume_queue.retry(key)
                return
            if exc.code == 404:
                return
            raise

    async def _claim_of(self, volume: Obj) -> Obj | None:
        """The claim the volume's claimRef names: from the cache, else from the API (a claim just created may
        not be cached yet, and releasing its volume would be wrong)."""
        ref = (volume.get("spec") or {}).get("claimRef") or {}
        namespace, name = str(ref.get("namespace") or ""), str(ref.get("name") or "")
        claim = self.claims.get(f"{namespace}/{name}")
        if claim is None or claim["metadata"].get("uid") != ref.get("uid"):
            claim = await self._live(PERSISTENT_VOLUME_CLAIMS, name, namespace) or claim
        return claim

    async def _sync_volume(self, volume: Obj) -> None:
        ref = (volume.get("spec") or {}).get("claimRef") or {}
        claim = await self._claim_of(volume) if ref.get("uid") else None
        verdict = binding.volume_verdict(volume, claim)
        if verdict is VolumeVerdict.AVAILABLE:
            await self._set_volume_phase(volume, "Available")
        elif verdict is VolumeVerdict.BOUND:
            await self._set_volume_phase(volume, "Bound")
        elif verdict is VolumeVerdict.RELEASED:
            await self._release(volume)
        elif verdict is VolumeVerdict.HALF_BOUND:
            self.claim_queue.add(f"{ref.get('namespace')}/{ref.get('name')}")
        elif verdict is VolumeVerdict.UNBIND:
            volume = await self._update(PERSISTENT_VOLUMES, "PersistentVolume", binding.volume_unbound(volume))
            await self._set_volume_phase(volume, "Available")

    async def _release(self, volume: Obj) -> None:
        if binding.phase(volume) == "Failed":
            return
        volume = await self._set_volume_phase(volume, "Released")
        reclaim = binding.reclaim_verdict(volume)
        if reclaim.phase is not None:
            await self._set_volume_phase(volume, reclaim.phase, reclaim.event)

