"""The volume expander: kube-controller-manager's expand controller and the external resizer of podlife's driver.

In Kubernetes two components grow a volume whose claim asks for more: the
``persistentvolume-expander-controller`` of kube-controller-manager
(``pkg/controller/volume/expand``), which expands the volumes of in-tree plugins and, for
every other volume, only says that someone else will (``ExternalExpanding``), and the
``external-resizer`` sidecar a CSI driver ships (``kubernetes-csi/external-resizer``),
which expands the volumes of that driver. :class:`VolumeExpander` is both, the resizer
for :data:`~podlife.machinery.storage.LOCAL_PATH_DRIVER` only: podlife has no in-tree
expandable plugin, so kube-controller-manager's part is the event, and a volume of
another CSI driver (or a hostPath or local PV) waits for a resizer that is not podlife's.

What it watches (shared informers): PersistentVolumeClaims -- a Bound claim whose
``spec.resources.requests.storage`` exceeds its ``status.capacity.storage`` is queued
(when it appears, and when its request, capacity, phase or volume change) -- and
PersistentVolumes, whose appearance or change (capacity, ``claimRef``) queues the claim
their ``claimRef`` names (the sync reads the volume from this cache). StorageClasses are
not read: ``allowVolumeExpansion`` is admission's to enforce, as in Kubernetes.

What a sync does (:meth:`VolumeExpander.sync`), once the claim needs more and its volume
is bound to it (``claimRef`` namespace and uid):

1. kube-controller-manager's part: a Normal ``ExternalExpanding`` event "waiting for an
   external controller to expand this PVC" (source ``volume_expand``), once per
   requested size;
2. for a volume of our driver, the external resizer's (its ``RecoverVolumeExpansionFailure``
   flow, source ``external-resizer local-path.podlife.io``), decided by the pure
   :func:`plan_expansion` from the claim's ``status.allocatedResources`` and
   ``status.allocatedResourceStatuses``, so a resize interrupted half way resumes where it
   stopped and a spurious event does nothing:

   a. the claim's status: ``allocatedResources.storage`` = the new size,
      ``allocatedResourceStatuses.storage`` = ``ControllerResizeInProgress``, condition
      ``Resizing`` True (skipped when ``allocatedResources`` already says that size);
   b. a Normal ``Resizing`` event "External resizer is resizing volume <pv>";
   c. the volume: ``spec.capacity.storage`` = the new size (a directory has no size to
      grow: the "ControllerExpandVolume" call is the PV's update);
   d. the claim's status: condition ``FileSystemResizePending`` True "Waiting for user to
      (re-)start a pod to finish file system resize of volume on node.",
      ``allocatedResourceStatuses.storage`` = ``NodeResizePending``, ``Resizing`` gone;
      a Normal ``FileSystemResizeRequired`` event "Require file system resize of volume
      on node".

   The node side (``podlife/node/volume_expansion.py``) finishes it: ``status.capacity``
   set, ``FileSystemResizePending`` and the ``storage`` status entry dropped. A claim
   grown again while the node has not finished waits for it, as the resizer waits.

Writes are PUTs with the resourceVersion read (status subresource for the claim, RBAC's
``system:controller:expand-controller`` grants ``update``); a conflict, or any other
failure, brings the claim back after a growing backoff (0.1 s doubling to 60 s), and the
plan then starts from what was written.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...client.base import PERSISTENT_VOLUME_CLAIMS, PERSISTENT_VOLUMES, Obj
from ...client.events import EventRecorder
from ...client.informer import object_key
from ...client.workqueue import WorkQueue
from ...machinery.errors import ApiError
from ...machinery.storage import (
    LOCAL_PATH_DRIVER,
    capacity_bytes,
    is_claim_bound,
    requested_bytes,
    storage_bytes,
)
from ...machinery.timeutil import now_rfc3339
from ..manager import ControllerContext

log = logging.getLogger(__name__)

STORAGE = "storage"
#: ``allocatedResourceStatuses`` values (``ClaimResourceStatus``)
CONTROLLER_RESIZE_IN_PROGRESS = "ControllerResizeInProgress"
CONTROLLER_RESIZE_INFEASIBLE = "ControllerResizeInfeasible"
NODE_RESIZE_PENDING = "NodeResizePending"
NODE_RESIZE_IN_PROGRESS = "NodeResizeInProgress"
NODE_RESIZE_INFEASIBLE = "NodeResizeInfeasible"
#: claim condition types
RESIZING = "Resizing"
FILE_SYSTEM_RESIZE_PENDING = "FileSystemResizePending"
#: the condition types the resizer owns (the others of a claim are left as they are)
RESIZE_CONDITIONS = frozenset((RESIZING, FILE_SYSTEM_RESIZE_PENDING, "ControllerResizeError", "NodeResizeError"))
FILE_SYSTEM_RESIZE_MESSAGE = "Waiting for user to (re-)start a pod to finish file system resize of volume on node."
#: event sources, Kubernetes' own
EXPAND_CONTROLLER_COMPONENT = "volume_expand"
RESIZER_COMPONENT = f"external-resizer {LOCAL_PATH_DRIVER}"
EXTERNAL_EXPANDING = "ExternalExpanding"
EXTERNAL_EXPANDING_MESSAGE = "waiting for an external controller to expand this PVC"
#: backoff of a failed sync (a rate-limited requeue)
RETRY_BASE = 0.1
RETRY_MAX = 60.0


# --------------------------------------------------------------------------- pure decisions


def _status(claim: Mapping[str, Any]) -> Mapping[str, Any]:
    return claim.get("status") or {}


def claim_capacity_bytes(claim: Mapping[str, Any]) -> int:
    return storage_bytes(_status(claim).get("capacity"))


def needs_expansion(claim: Mapping[str, Any]) -> bool:
    """A Bound claim asking for more than it has (``pvcNeedResize``)."""
    return is_claim_bound(claim) and requested_bytes(claim) > claim_capacity_bytes(claim)


def allocated_size(claim: Mapping[str, Any]) -> str | None:
    """``status.allocatedResources.storage``: the size a resize was last started for (None: none was)."""
    value = (_status(claim).get("allocatedResources") or {}).get(STORAGE)
    return str(value) if value is not None else None


def resize_state(claim: Mapping[str, Any]) -> str:
    """``status.allocatedResourceStatuses.storage`` ("" when unset)."""
    return str((_status(claim).get("allocatedResourceStatuses") or {}).get(STORAGE) or "")


def has_condition(claim: Mapping[str, Any], kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in _status(claim).get("conditions") or ())


def volume_bound_to(volume: Mapping[str, Any], claim: Mapping[str, Any]) -> bool:
    """The volume's ``claimRef`` is this claim (namespace and uid, as the expand controller checks)."""
    ref = (volume.get("spec") or {}).get("claimRef") or {}
    meta = claim.get("metadata") or {}
    return bool(ref) and ref.get("namespace") == meta.get("namespace") and ref.get("uid") == meta.get("uid")


def is_resizer_volume(volume: Mapping[str, Any]) -> bool:
    """A volume of podlife's driver, the one the resizer serves (``CanSupport``)."""
    return ((volume.get("spec") or {}).get("csi") or {}).get("driver") == LOCAL_PATH_DRIVER


def requested_size(claim: Mapping[str, Any]) -> str:
    return str((((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}).get(STORAGE) or "0")


@dataclass(frozen=True)
class Expansion:
    """What the resizer does for a claim (:func:`plan_expansion`)."""

    #: the quantity the volume grows to (``allocatedResources.storage``), as written in the claim
    size: str
    #: record the start of the resize on the claim (False: ``allocatedResources`` already holds ``size``)
    mark_in_progress: bool
    #: the volume's capacity is below ``size``
    grow_volume: bool


def expansion_size(claim: Mapping[str, Any], volume: Mapping[str, Any]) -> str | None:
    """The size the resizer (re)starts a resize for, None when it leaves the claim alone (``expandAndRecover``).

    While the node has a resize to finish (``NodeResizePending``/``InProgress``) the volume is
    not grown further: the resize under way goes first. A controller resize left half done
    resumes for the size it was started for (``allocatedResources``), not a newer request.
    """
    request = requested_size(claim)
    allocated = allocated_size(claim)
    state = resize_state(claim)
    volume_size = capacity_bytes(volume)
    if volume_size < requested_bytes(claim):
        if state in (NODE_RESIZE_PENDING, NODE_RESIZE_IN_PROGRESS):
            size = allocated or request
            return None if volume_size >= storage_bytes({STORAGE: size}) else size
        if state in (NODE_RESIZE_INFEASIBLE, CONTROLLER_RESIZE_IN_PROGRESS):
            return allocated or request
        return request
    # the volume is big enough already: a spurious event, or our own writes left half done
    if state in (NODE_RESIZE_PENDING, NODE_RESIZE_IN_PROGRESS):
        return None
    if state in (NODE_RESIZE_INFEASIBLE, CONTROLLER_RESIZE_IN_PROGRESS, CONTROLLER_RESIZE_INFEASIBLE):
        return allocated or request
    if not state and allocated:
        return allocated
    if has_condition(claim, FILE_SYSTEM_RESIZE_PENDING):
        return None
    return request


def plan_expansion(claim: Mapping[str, Any], volume: Mapping[str, Any]) -> Expansion | None:
    """What the resizer does for a claim that needs more (None: nothing, now)."""
    size = expansion_size(claim, volume)
    if size is None:
        return None
    size_bytes = storage_bytes({STORAGE: size})
    allocated = allocated_size(claim)
    marked = allocated is not None and storage_bytes({STORAGE: allocated}) == size_bytes
    return Expansion(size, mark_in_progress=not marked, grow_volume=capacity_bytes(volume) < size_bytes)


def merge_resize_conditions(conditions: list[Obj], new: list[Obj]) -> list[Obj]:
    """``MergeResizeConditionsOfPVC``: other conditions stay; resize conditions become ``new``
    (in the place of one of the same type, else appended)."""
    wanted = {c["type"]: c for c in new}
    merged: list[Obj] = []
    for condition in conditions:
        kind = condition.get("type")
        if kind not in RESIZE_CONDITIONS:
            merged.append(condition)
        elif kind in wanted:
            merged.append(wanted.pop(kind))
    merged.extend(wanted.values())
    return merged


def _with_storage_entry(mapping: Mapping[str, Any] | None, value: str) -> Obj:
    return {**(mapping or {}), STORAGE: value}


def in_progress_status(status: Mapping[str, Any], size: str, now: str) -> Obj:
    """The claim's status once the controller resize starts (``markControllerResizeInProgress``)."""
    new = dict(status)
    new["conditions"] = merge_resize_conditions(list(status.get("conditions") or ()), [
        {"type": RESIZING, "status": "True", "lastProbeTime": None, "lastTransitionTime": now}])
    new["allocatedResourceStatuses"] = _with_storage_entry(status.get("allocatedResourceStatuses"),
                                                           CONTROLLER_RESIZE_IN_PROGRESS)
    new["allocatedResources"] = _with_storage_entry(status.get("allocatedResources"), size)
    return new


def node_pending_status(status: Mapping[str, Any], now: str) -> Obj:
    """The claim's status once the volume has grown and the node must finish (``markForPendingNodeExpansion``)."""
    new = dict(status)
    new["conditions"] = merge_resize_conditions(list(status.get("conditions") or ()), [
        {"type": FILE_SYSTEM_RESIZE_PENDING, "status": "True", "lastProbeTime": None, "lastTransitionTime": now,
         "message": FILE_SYSTEM_RESIZE_MESSAGE}])
    new["allocatedResourceStatuses"] = _with_storage_entry(status.get("allocatedResourceStatuses"), NODE_RESIZE_PENDING)
    return new


def claim_view(claim: Mapping[str, Any] | None) -> tuple[Any, ...] | None:
    """What of a claim decides whether it needs the expander: a change elsewhere queues nothing."""
    if claim is None:
        return None
    return (_status(claim).get("phase"), (claim.get("spec") or {}).get("volumeName"), requested_bytes(claim),
            claim_capacity_bytes(claim))


def volume_view(volume: Mapping[str, Any] | None) -> tuple[Any, ...] | None:
    if volume is None:
        return None
    ref = (volume.get("spec") or {}).get("claimRef") or {}
    return capacity_bytes(volume), ref.get("namespace"), ref.get("name"), ref.get("uid")


def claim_key_of(volume: Mapping[str, Any]) -> str | None:
    """``namespace/name`` of the claim the volume's ``claimRef`` names."""
    ref = (volume.get("spec") or {}).get("claimRef") or {}
    if not ref.get("namespace") or not ref.get("name"):
        return None
    return f"{ref['namespace']}/{ref['name']}"


# --------------------------------------------------------------------------- the controller


def _typed(obj: Obj, kind: str) -> Obj:
    return {**obj, "kind": kind, "apiVersion": "v1"}


class VolumeExpander:
    """kube-controller-manager's expand controller and our driver's external resizer (see the module docstring)."""

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.expand_events = EventRecorder(ctx.client, EXPAND_CONTROLLER_COMPONENT)
        self.resizer_events = EventRecorder(ctx.client, RESIZER_COMPONENT)
        self.queue = WorkQueue()
        self.claims = ctx.informers.informer(PERSISTENT_VOLUME_CLAIMS)
        self.volumes = ctx.informers.informer(PERSISTENT_VOLUMES)
        self._announced: dict[str, tuple[str, int]] = {}  # claim key -> (uid, requested bytes) ExternalExpanding told
        self._failures: dict[str, int] = {}  # claim key -> failed syncs in a row
        self.claims.add_handlers(self._claim_added, self._claim_updated, self._claim_deleted)
        self.volumes.add_handlers(self._volume_added, self._volume_updated, None)

    async def run(self) -> None:
        await self.ctx.informers.wait_synced(PERSISTENT_VOLUME_CLAIMS, PERSISTENT_VOLUMES)
        await self.queue.run_workers(self.sync, 2)

    # ------------------------------------------------------------------ handlers (enqueue only)

    def _claim_added(self, claim: Obj) -> None:
        if needs_expansion(claim):
            self.queue.add(object_key(claim))

    def _claim_updated(self, old: Obj, new: Obj) -> None:
        if needs_expansion(new) and claim_view(old) != claim_view(new):
            self.queue.add(object_key(new))

    def _claim_deleted(self, claim: Obj) -> None:
        key = object_key(claim)
        self._announced.pop(key, None)
        self._failures.pop(key, None)

    def _volume_added(self, volume: Obj) -> None:
        key = claim_key_of(volume)
        if key is not None:
            self._queue_if_needed(key)

    def _volume_updated(self, old: Obj, new: Obj) -> None:
        if volume_view(old) != volume_view(new):
            self._volume_added(new)

    def _queue_if_needed(self, key: str) -> None:
        namespace, _, name = key.partition("/")
        claim = self.claims.get(namespace, name)
        if claim is not None and needs_expansion(claim):
            self.queue.add(key)

    # ------------------------------------------------------------------ the sync

    async def sync(self, key: str) -> None:
        try:
            await self._sync(key)
        except ApiError as exc:
            if exc.code == 404:  # the claim or the volume went: nothing to grow
                self._failures.pop(key, None)
                return
            log.log(logging.DEBUG if exc.code == 409 else logging.WARNING,
                    "expanding the volume of claim %s: %s; will retry", key, exc.message)
            self._retry(key)
            return
        self._failures.pop(key, None)

    def _retry(self, key: str) -> None:
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        self.queue.add_after(key, min(RETRY_BASE * (2 ** n), RETRY_MAX))

    async def _sync(self, key: str) -> None:
        namespace, _, name = key.partition("/")
        cached = self.claims.get(namespace, name)
        if cached is None or not needs_expansion(cached):
            return
        claim = _typed(cached, "PersistentVolumeClaim")
        volume = self.volumes.get(None, str(claim["spec"]["volumeName"]))
        if volume is None or not volume_bound_to(volume, claim):
            return  # the volume's appearance or binding queues the claim again
        self._announce_external_expansion(key, claim)
        if not is_resizer_volume(volume):
            return
        plan = plan_expansion(claim, volume)
        if plan is not None:
            await self._expand(claim, _typed(volume, "PersistentVolume"), plan)

    def _announce_external_expansion(self, key: str, claim: Obj) -> None:
        """kube-controller-manager's word: no in-tree plugin expands this volume (once per requested size)."""
        seen = (str(claim["metadata"].get("uid") or ""), requested_bytes(claim))
        if self._announced.get(key) == seen:
            return
        self._announced[key] = seen
        self.expand_events.event(claim, "Normal", EXTERNAL_EXPANDING, EXTERNAL_EXPANDING_MESSAGE)

    async def _expand(self, claim: Obj, volume: Obj, plan: Expansion) -> None:
        """The external resizer's steps a-d (see the module docstring) for ``plan``."""
        if plan.mark_in_progress:
            claim = await self._write_status(claim, in_progress_status(_status(claim), plan.size, now_rfc3339()))
        volume_name = volume["metadata"]["name"]
        self.resizer_events.event(claim, "Normal", RESIZING, f"External resizer is resizing volume {volume_name}")
        if plan.grow_volume:
            spec = volume.get("spec") or {}
            await self.client.update(PERSISTENT_VOLUMES, {
                **volume, "spec": {**spec, "capacity": {**(spec.get("capacity") or {}), STORAGE: plan.size}}})
        claim = await self._write_status(claim, node_pending_status(_status(claim), now_rfc3339()))
        self.resizer_events.event(claim, "Normal", "FileSystemResizeRequired",
                                  "Require file system resize of volume on node")

    async def _write_status(self, claim: Obj, status: Obj) -> Obj:
        written = await self.client.update(PERSISTENT_VOLUME_CLAIMS, {**claim, "status": status}, subresource="status")
        return _typed(written, "PersistentVolumeClaim")
