"""The ephemeral volume controller: the claims of pods' generic ephemeral volumes.

kube-controller-manager's ``ephemeral-volume-controller`` (``pkg/controller/volume/ephemeral``).
A pod volume ``ephemeral: {volumeClaimTemplate: ...}`` is a claim made for that pod: named
``<pod>-<volume>`` (:func:`~podlife.machinery.storage.ephemeral_claim_name`), in the pod's
namespace, with the template's labels, annotations and spec, and owned by the pod (a
controller reference with ``blockOwnerDeletion``), so the garbage collector deletes it
with the pod. From there it is a claim like any other: bound or provisioned by the PV
controller, mounted by the node.

What it watches (shared informers): Pods -- a pod is queued when it appears with at least
one ``ephemeral`` volume (the check is a scan of its volume list and nothing else for the
many pods without one; a pod's volumes are immutable, so its updates are not looked at,
and its deletion is the garbage collector's business) -- and PersistentVolumeClaims: a
claim deleted while a pod still names it queues that pod (the :data:`BY_EPHEMERAL_CLAIM`
index on the pods' cache finds it), which gets it back.

What a sync does (:meth:`EphemeralVolumeController.sync`): nothing for a pod that is gone,
being deleted or finished; else, volume by volume, the missing claim is created. A claim
of that name that the pod does not control is not touched: the pod cannot use it, which a
Warning ``FailedBinding`` event on the pod says as Kubernetes says it ("ephemeral volume
<volume>: PVC <namespace>/<claim> was not created for pod <namespace>/<pod> (pod is not
owner)"); so does a failed creation ("ephemeral volume <volume>: create PVC <claim>:
<error>"). Either failure brings the pod back after a growing backoff (0.1 s doubling to
60 s); the first failing volume ends the sync, as in Kubernetes. Events have Kubernetes'
source, ``ephemeral_volume``.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from ...client.base import PERSISTENT_VOLUME_CLAIMS, PODS, Obj
from ...client.events import EventRecorder
from ...client.informer import object_key
from ...client.workqueue import WorkQueue
from ...machinery.errors import ApiError
from ...machinery.storage import ephemeral_claim_name, ephemeral_claim_problem
from ..manager import ControllerContext

log = logging.getLogger(__name__)

#: the pods' cache indexed by the ``namespace/claim`` of each of their ephemeral volumes
BY_EPHEMERAL_CLAIM = "ephemeral-claim"
COMPONENT = "ephemeral_volume"
FAILED_BINDING = "FailedBinding"
TERMINAL_PHASES = ("Succeeded", "Failed")
RETRY_BASE = 0.1
RETRY_MAX = 60.0


class VolumeError(Exception):
    """Why one ephemeral volume of a pod has no usable claim (the message is Kubernetes' wording)."""


# --------------------------------------------------------------------------- pure decisions


def ephemeral_volumes(pod: Mapping[str, Any]) -> list[Obj]:
    """The pod's volumes with an ``ephemeral`` source, in order."""
    return [v for v in (pod.get("spec") or {}).get("volumes") or () if v.get("ephemeral") is not None]


def has_ephemeral_volumes(pod: Mapping[str, Any]) -> bool:
    return any(v.get("ephemeral") is not None for v in (pod.get("spec") or {}).get("volumes") or ())


def ephemeral_claim_keys(pod: Mapping[str, Any]) -> Iterable[str]:
    """Index function of :data:`BY_EPHEMERAL_CLAIM`: ``namespace/claim`` of each ephemeral volume."""
    if not has_ephemeral_volumes(pod):
        return ()
    meta = pod.get("metadata") or {}
    namespace, name = meta.get("namespace") or "", meta.get("name") or ""
    return tuple(f"{namespace}/{ephemeral_claim_name(name, str(v.get('name') or ''))}" for v in ephemeral_volumes(pod))


def wants_claims(pod: Mapping[str, Any]) -> bool:
    """The pod may still run, and so needs its ephemeral claims: not being deleted, not finished."""
    if not has_ephemeral_volumes(pod) or (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return (pod.get("status") or {}).get("phase") not in TERMINAL_PHASES


def pod_owner_reference(pod: Mapping[str, Any]) -> Obj:
    meta = pod.get("metadata") or {}
    return {"apiVersion": "v1", "kind": "Pod", "name": meta.get("name"), "uid": meta.get("uid"),
            "controller": True, "blockOwnerDeletion": True}


def claim_for(pod: Mapping[str, Any], volume: Mapping[str, Any]) -> Obj:
    """The claim of one ephemeral volume: the template's labels, annotations and spec, owned by the pod."""
    template = (volume.get("ephemeral") or {}).get("volumeClaimTemplate") or {}
    template_meta = template.get("metadata") or {}
    pod_meta = pod.get("metadata") or {}
    metadata: Obj = {"name": ephemeral_claim_name(str(pod_meta.get("name") or ""), str(volume.get("name") or "")),
                     "namespace": pod_meta.get("namespace"), "ownerReferences": [pod_owner_reference(pod)]}
    for field in ("labels", "annotations"):
        if template_meta.get(field):
            metadata[field] = dict(template_meta[field])
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": metadata,
            "spec": copy.deepcopy(template.get("spec") or {})}


# --------------------------------------------------------------------------- the controller


class EphemeralVolumeController:
    """Creates the claims of generic ephemeral volumes (see the module docstring)."""

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.recorder = EventRecorder(ctx.client, COMPONENT)
        self.queue = WorkQueue()
        self.pods = ctx.informers.informer(PODS)
        self.claims = ctx.informers.informer(PERSISTENT_VOLUME_CLAIMS)
        self.by_claim = ctx.informers.index(PODS, BY_EPHEMERAL_CLAIM, ephemeral_claim_keys)
        self._failures: dict[str, int] = {}  # pod key -> failed syncs in a row
        self.pods.add_handlers(self._pod_added, None, self._pod_deleted)
        self.claims.add_handlers(None, None, self._claim_deleted)

    async def run(self) -> None:
        await self.ctx.informers.wait_synced(PODS, PERSISTENT_VOLUME_CLAIMS)
        await self.queue.run_workers(self.sync, 2)

    # ------------------------------------------------------------------ handlers (enqueue only)

    def _pod_added(self, pod: Obj) -> None:
        if wants_claims(pod):
            self.queue.add(object_key(pod))

    def _pod_deleted(self, pod: Obj) -> None:
        self._failures.pop(object_key(pod), None)

    def _claim_deleted(self, claim: Obj) -> None:
        for pod in self.by_claim.get(object_key(claim)):
            self._pod_added(pod)

    # ------------------------------------------------------------------ the sync

    async def sync(self, key: str) -> None:
        namespace, _, name = key.partition("/")
        pod = self.pods.get(namespace, name)
        if pod is None or not wants_claims(pod):
            self._failures.pop(key, None)
            return
        pod = {**pod, "kind": "Pod", "apiVersion": "v1"}
        for volume in ephemeral_volumes(pod):
            try:
                await self._ensure_claim(pod, volume)
            except VolumeError as why:
                self.recorder.event(pod, "Warning", FAILED_BINDING, f"ephemeral volume {volume.get('name')}: {why}")
                self._retry(key)
                return
        self._failures.pop(key, None)

    def _retry(self, key: str) -> None:
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        self.queue.add_after(key, min(RETRY_BASE * (2 ** n), RETRY_MAX))

    async def _ensure_claim(self, pod: Obj, volume: Obj) -> None:
        """The volume's claim exists and is the pod's, or :class:`VolumeError` says why not."""
        wanted = claim_for(pod, volume)
        namespace, name = wanted["metadata"]["namespace"], wanted["metadata"]["name"]
        existing = self.claims.get(namespace, name)
        if existing is None:
            try:
                await self.client.create(PERSISTENT_VOLUME_CLAIMS, wanted, namespace)
                return
            except ApiError as exc:
                if exc.code != 409:
                    raise VolumeError(f"create PVC {name}: {exc.message}") from exc
                existing = await self._read_claim(namespace, name)  # our cache is behind: judge the one there
                if existing is None:
                    raise VolumeError(f"create PVC {name}: {exc.message}") from exc
        if (problem := ephemeral_claim_problem(pod, existing)) is not None:
            raise VolumeError(problem)

    async def _read_claim(self, namespace: str, name: str) -> Obj | None:
        try:
            return await self.client.get(PERSISTENT_VOLUME_CLAIMS, name, namespace)
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise VolumeError(f"create PVC {name}: {exc.message}") from exc
