"""The storage protection controllers: a claim in use by a pod, a volume bound to a claim, is not removed.

kube-controller-manager's ``persistentvolumeclaim-protection-controller`` and
``persistentvolume-protection-controller`` (``pkg/controller/volume/pvcprotection``,
``pvprotection``). The finalizers ``kubernetes.io/pvc-protection`` and
``kubernetes.io/pv-protection`` are put on every claim and volume when they are created
(the ``StorageObjectInUseProtection`` admission plugin); these controllers take them off
once deletion is safe, and -- as Kubernetes' do, for objects made while the plugin was
off -- put them on a live object that lacks them.

:class:`PVCProtectionController` watches claims and pods (with an index of pods by the
claims they use, ``namespace/claim``: no scan of a namespace's pods). A claim being deleted
keeps its finalizer while a pod uses it: a pod scheduled to a node (the kubelet starts no
pod on a claim being deleted, so an unscheduled one does not count) that is not shut down
(phase Succeeded/Failed, or deleted with no grace left) and names the claim in a
``persistentVolumeClaim`` volume or, for a generic ephemeral volume, as ``<pod>-<volume>``.
When the cache says no pod uses it, the API is asked once more (a pod just created may
not be cached yet) before the finalizer goes. Every change of a pod (added, deleted,
finished) queues the claims it names that are being deleted.

:class:`PVProtectionController` watches volumes: a volume being deleted keeps its
finalizer while its phase is Bound; the binder turns it Released when its claim goes,
and that update queues it again.

Both write with ``update`` and the resourceVersion read (RBAC grants no ``patch``); a
conflict brings the key back.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from ...client.base import PERSISTENT_VOLUME_CLAIMS, PERSISTENT_VOLUMES, PODS, Obj, Resource
from ...client.informer import object_key
from ...client.workqueue import WorkQueue
from ...machinery.errors import ApiError
from ...machinery.storage import (PV_PROTECTION_FINALIZER, PVC_PROTECTION_FINALIZER, ephemeral_claim_name,
                                  pod_claim_names)
from ..manager import ControllerContext

log = logging.getLogger(__name__)

WORKERS = 4
PODS_BY_CLAIM = "pvc-protection/pods-by-claim"


# --------------------------------------------------------------------------- pure decisions


def finalizers(obj: Mapping[str, Any]) -> list[str]:
    return list((obj.get("metadata") or {}).get("finalizers") or [])


def being_deleted(obj: Mapping[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def needs_finalizer(obj: Mapping[str, Any], finalizer: str) -> bool:
    """A live object without the finalizer (``NeedToAddFinalizer``)."""
    return not being_deleted(obj) and finalizer not in finalizers(obj)


def may_drop_finalizer(obj: Mapping[str, Any], finalizer: str) -> bool:
    """Being deleted and still held by the finalizer (``IsDeletionCandidate``)."""
    return being_deleted(obj) and finalizer in finalizers(obj)


def with_finalizers(obj: Mapping[str, Any], names: list[str]) -> Obj:
    new = copy.deepcopy(dict(obj))
    new.setdefault("metadata", {})["finalizers"] = names
    return new


def pod_is_shut_down(pod: Mapping[str, Any]) -> bool:
    """Finished (Succeeded/Failed), or deleted with no grace period left (``podIsShutDown``)."""
    meta = pod.get("metadata") or {}
    if meta.get("deletionTimestamp") and meta.get("deletionGracePeriodSeconds") == 0:
        return True
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def pod_uses_claim(pod: Mapping[str, Any], claim_name: str) -> bool:
    """``podUsesPVC``: a scheduled pod with a ``persistentVolumeClaim`` volume on the claim uses it for as
    long as the pod exists, finished or not (its data may still be read back: only deleting the pod
    releases the claim); an ``ephemeral`` volume's claim is used only until the pod shuts down."""
    spec = pod.get("spec") or {}
    if not spec.get("nodeName"):
        return False  # the kubelet will not start it on a claim being deleted
    pod_name = str((pod.get("metadata") or {}).get("name") or "")
    for volume in spec.get("volumes") or []:
        if (source := volume.get("persistentVolumeClaim")) is not None and source.get("claimName") == claim_name:
            return True
        if (volume.get("ephemeral") is not None and not pod_is_shut_down(pod)
                and ephemeral_claim_name(pod_name, str(volume.get("name") or "")) == claim_name):
            return True
    return False


def volume_in_use(volume: Mapping[str, Any]) -> bool:
    """A volume is protected while Bound (``isBeingUsed`` of the PV protection controller)."""
    return (volume.get("status") or {}).get("phase") == "Bound"


def pods_by_claim(pod: Obj) -> Iterable[str]:
    namespace = (pod.get("metadata") or {}).get("namespace") or ""
    return tuple(dict.fromkeys(f"{namespace}/{name}" for name in pod_claim_names(pod) if name))


# --------------------------------------------------------------------------- shared sync shape


class _FinalizerController:
    """Adds the finalizer to live objects, removes it from deleted ones that nothing uses any more."""

    res: Resource
    kind: str
    finalizer: str

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.queue = WorkQueue()
        self.objects = ctx.informers.informer(self.res)
        self.objects.add_handlers(self._changed, lambda _old, new: self._changed(new), None)

    def _changed(self, obj: Obj) -> None:
        if needs_finalizer(obj, self.finalizer) or may_drop_finalizer(obj, self.finalizer):
            self.queue.add(object_key(obj))

    async def in_use(self, obj: Obj) -> bool:
        raise NotImplementedError

    async def run(self) -> None:
        await self.ctx.informers.wait_synced(self.res, *self.watched())
        for obj in list(self.objects.cache.values()):
            self._changed(obj)
        await self.queue.run_workers(self.sync, WORKERS)

    def watched(self) -> tuple[Resource, ...]:
        return ()

    async def sync(self, key: str) -> None:
        obj = self.objects.cache.get(key)
        if obj is None:
            return
        names = finalizers(obj)
        if needs_finalizer(obj, self.finalizer):
            new = with_finalizers(obj, [*names, self.finalizer])
        elif may_drop_finalizer(obj, self.finalizer) and not await self.in_use(obj):
            new = with_finalizers(obj, [n for n in names if n != self.finalizer])
        else:
            return
        try:
            await self.client.update(self.res, {**new, "kind": self.kind, "apiVersion": "v1"})
        except ApiError as exc:
            if exc.code == 404:
                return
            if exc.code == 409:  # changed meanwhile: its update event (or this retry) brings it back
                self.queue.retry(key)
                return
            raise


class PVCProtectionController(_FinalizerController):
    """``kubernetes.io/pvc-protection`` (see the module docstring)."""

    res = PERSISTENT_VOLUME_CLAIMS
    kind = "PersistentVolumeClaim"
    finalizer = PVC_PROTECTION_FINALIZER

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.pods = ctx.informers.informer(PODS)
        self.pods_by_claim = ctx.informers.index(PODS, PODS_BY_CLAIM, pods_by_claim)
        self.pods.add_handlers(self._pod_changed, lambda _old, new: self._pod_changed(new), self._pod_changed)

    def watched(self) -> tuple[Resource, ...]:
        return (PODS,)

    def _pod_changed(self, pod: Obj) -> None:
        for key in pods_by_claim(pod):
            claim = self.objects.cache.get(key)
            if claim is not None and may_drop_finalizer(claim, self.finalizer):
                self.queue.add(key)

    async def in_use(self, obj: Obj) -> bool:
        meta = obj["metadata"]
        name, namespace = str(meta["name"]), str(meta["namespace"])
        if any(pod_uses_claim(pod, name) for pod in self.pods_by_claim.get(f"{namespace}/{name}")):
            return True
        listed = await self.client.list(PODS, namespace)  # the cache may lag a pod just created
        return any(pod_uses_claim(pod, name) for pod in listed.get("items") or [])


class PVProtectionController(_FinalizerController):
    """``kubernetes.io/pv-protection`` (see the module docstring)."""

    res = PERSISTENT_VOLUMES
    kind = "PersistentVolume"
    finalizer = PV_PROTECTION_FINALIZER

    async def in_use(self, obj: Obj) -> bool:
        return volume_in_use(obj)
