"""The VolumeBinding plugin: a pod's PersistentVolumeClaims decide where it may go, and are bound before it is.

Kubernetes' ``volumebinding`` plugin (with the PreFilter checks of ``volumerestrictions``),
at the same extension points and with the same words:

- **PreFilter** (:meth:`VolumeBinding.pre_filter`), once per scheduling attempt: every claim
  of the pod (:func:`~podlife.machinery.storage.pod_claim_names`) must exist (``persistentvolumeclaim
  "data" not found``; for a generic ephemeral volume ``waiting for ephemeral volume controller to
  create the persistentvolumeclaim "web-0-data"``), not be Lost or being deleted, and an ephemeral
  one must be controlled by the pod; a claim that is not bound yet must be of a
  ``WaitForFirstConsumer`` class (the scheduler's to place) -- an unbound claim of an ``Immediate``
  class, of no class, or pre-bound with ``volumeName``, is the PV controller's to bind first
  (``pod has unbound immediate PersistentVolumeClaims``). Any of these fails the pod on every node,
  UnschedulableAndUnresolvable. The result (:class:`PodVolumes`) is what the per-node checks need,
  resolved once: the bound claims' volumes' node affinity compiled, the unbound claims sorted by size
  with the static volumes that could serve each.
- **Filter** (:meth:`VolumeBinding.filter`, :meth:`VolumeBinding.filter_mask`), per node: a bound
  claim's volume must admit the node (``node(s) didn't match PersistentVolume's node affinity``, the
  words since Kubernetes 1.33; ``node(s) unavailable due to one or more pvc(s) bound to non-existent
  pv(s)`` when it is gone); an unbound claim needs a static volume that fits on the node
  (:func:`~podlife.machinery.storage.find_matching_volume`, smallest first, one volume per claim) or a
  class with a provisioner whose ``allowedTopologies`` admit the node (else ``node(s) didn't find
  available persistent volumes to bind``); a claim that already has a ``selected-node`` fits only
  there. A pod whose claims constrain no node skips the per-node work entirely.
- **Reserve** (:meth:`VolumeBinding.reserve`): the chosen node's plan -- which claim gets which static
  volume, which claims are to be provisioned there -- is *assumed*: later decisions see those volumes
  taken and those claims' selected node at once, before any write lands (Kubernetes' assume cache).
- **PreBind** (:meth:`VolumeBinding.bind_pod_volumes`), in the pod's own binding task: each static
  volume gets ``spec.claimRef`` and ``pv.kubernetes.io/bound-by-controller: "yes"`` (the PV controller
  completes the claim side); each claim to provision gets ``volume.kubernetes.io/selected-node`` (the
  provisioner acts on it). Then it waits -- on informer events, not by polling -- until every one of
  those claims is fully bound (``volumeName`` and the ``bind-completed`` annotation or phase Bound),
  at most ``bind_timeout`` (kube-scheduler's ``bindTimeoutSeconds``, 600). A volume whose ``claimRef``
  was dropped, a claim whose ``selected-node`` was removed (the provisioner gave up) or a volume that
  does not admit the node fails the attempt; the scheduler then un-assumes the pod and retries it
  with backoff. Only then is the pod bound.

What it watches: PersistentVolumeClaims, PersistentVolumes and StorageClasses (its own informers,
run by the scheduler). Every add or update of them may make a waiting pod schedulable, so the
scheduler re-queues the unschedulable pods concerned (:attr:`VolumeBinding.requeue`: the pods
using that claim, or every pod with claims for a volume or a class), as Kubernetes' ``EventsToRegister``
and queueing hints do; the same events wake the binding tasks waiting on those objects.

What it writes: PersistentVolumes' ``claimRef`` and claims' ``selected-node`` annotation, with the
version it decided on as precondition (a conflict fails the attempt, which is retried).

The PreFilter also narrows the nodes, as Kubernetes' ``GetEligibleNodes``: bound volumes pinned
to hostnames (``kubernetes.io/hostname In``) leave only those nodes to try (:attr:`PodVolumes.eligible`);
the others count as ``node(s) didn't satisfy plugin(s) [VolumeBinding]``, and volumes pinned to
disjoint nodes fail the pod with ``node(s) didn't satisfy plugin VolumeBinding``.

VolumeRestrictions' PreFilter is here too: a ``ReadWriteOncePod`` claim another scheduled pod uses
rejects the pod (``node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod
access mode``, Unschedulable: preempting that pod would help).

Not done (Kubernetes has them): storage capacity (CSIStorageCapacity) checks and the capacity score,
CSI volume limits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..client.base import PERSISTENT_VOLUME_CLAIMS, PERSISTENT_VOLUMES, STORAGE_CLASSES, Client, Obj
from ..client.informer import Informer
from ..machinery.errors import ApiError
from ..machinery.scheduling import Terms, node_matches_terms, node_selector_terms
from ..machinery.storage import (
    ANN_BIND_COMPLETED,
    ANN_BOUND_BY_CONTROLLER,
    ANN_SELECTED_NODE,
    claim_class,
    claim_ref,
    ephemeral_claim_problem,
    find_matching_volume,
    is_volume_bound_to_claim,
    pod_claims,
    requested_bytes,
    volume_admits_node,
    volume_class,
)
from .columns import NodeColumns, Rows
from .plugins import UNRESOLVABLE, FilterPlugin, NodeInfo, PodInfo, Status

log = logging.getLogger(__name__)

#: kube-scheduler's ``bindTimeoutSeconds``
DEFAULT_BIND_TIMEOUT_SECONDS = 600.0
#: a class whose provisioner is this provisions nothing (static volumes only)
NOT_SUPPORTED_PROVISIONER = "kubernetes.io/no-provisioner"
WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"

ERR_BIND_CONFLICT = "node(s) didn't find available persistent volumes to bind"
ERR_NODE_CONFLICT = "node(s) didn't match PersistentVolume's node affinity"
ERR_PV_NOT_EXIST = "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)"
ERR_UNBOUND_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"
#: the nodes a PreFilterResult left out, and the PreFilter's verdict when it leaves none
ERR_NOT_ELIGIBLE = "node(s) didn't satisfy plugin(s) [VolumeBinding]"
ERR_NO_ELIGIBLE = "node(s) didn't satisfy plugin VolumeBinding"
HOSTNAME_LABEL = "kubernetes.io/hostname"
ERR_READ_WRITE_ONCE_POD_CONFLICT = "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode"

PLUGIN = "VolumeBinding"


@dataclass(frozen=True, slots=True)
class Rejection:
    """A PreFilter verdict: the pod fits on no node, for this reason (preemption may help when resolvable)."""

    message: str
    resolvable: bool = False


class VolumeBindError(Exception):
    """The PreBind step failed: the attempt is retried (the message is Kubernetes')."""


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def _version(obj: Mapping[str, Any] | None) -> int:
    try:
        return int(_meta(obj or {}).get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


def is_claim_fully_bound(claim: Mapping[str, Any]) -> bool:
    """Bound as the scheduler must see it (``isPVCFullyBound``): a volume named and the PV controller done
    with it -- its ``bind-completed`` annotation, or phase Bound."""
    if not (claim.get("spec") or {}).get("volumeName"):
        return False
    return ANN_BIND_COMPLETED in (_meta(claim).get("annotations") or {}) or (claim.get("status") or {}).get("phase") == "Bound"


def topology_admits(storage_class: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """``MatchTopologySelectorTerms`` on the class's ``allowedTopologies`` (none: every node)."""
    terms = storage_class.get("allowedTopologies") or []
    if not terms:
        return True
    for term in terms:
        expressions = (term or {}).get("matchLabelExpressions") or []
        if all(labels.get(str(e.get("key") or "")) in [str(v) for v in e.get("values") or []] for e in expressions):
            return True
    return False


def volume_node_names(volume: Mapping[str, Any]) -> frozenset[str]:
    """``GetLocalPersistentVolumeNodeNames``: the hostnames the volume's required node affinity names with
    ``kubernetes.io/hostname In`` (per term the intersection, over the terms the union); empty: no such pin."""
    required = ((volume.get("spec") or {}).get("nodeAffinity") or {}).get("required") or {}
    names: set[str] = set()
    for term in required.get("nodeSelectorTerms") or []:
        pinned: set[str] | None = None
        for expression in (term or {}).get("matchExpressions") or []:
            if expression.get("key") == HOSTNAME_LABEL and expression.get("operator") == "In":
                values = {str(v) for v in expression.get("values") or []}
                pinned = values if pinned is None else pinned & values
        names |= pinned or set()
    return frozenset(names)


def can_provision(storage_class: Mapping[str, Any] | None) -> bool:
    provisioner = (storage_class or {}).get("provisioner") or ""
    return bool(provisioner) and provisioner != NOT_SUPPORTED_PROVISIONER


# ---- what the PreFilter found, and what a node's check decides ----------------------------------------


@dataclass(slots=True)
class DelayedClaim:
    """An unbound claim of a WaitForFirstConsumer class, with what could serve it."""

    claim: Obj
    storage_class: Obj
    #: the static volumes worth matching: unclaimed ones of its class, and ones pre-bound to it
    candidates: list[Obj]
    #: the node it is already placed on (its annotation, or our assumption), "" if none
    selected_node: str


@dataclass(slots=True)
class PodVolumes:
    """A pod's claims as the PreFilter resolved them (Kubernetes' ``PodVolumeClaims``)."""

    #: bound claims' volumes' required node affinity, in volume order (volumes without one left out);
    #: None for a volume that does not exist (the check stops there, as Kubernetes' does)
    bound: list[Terms | None] = field(default_factory=list)
    #: unbound WaitForFirstConsumer claims, smallest request first
    delayed: list[DelayedClaim] = field(default_factory=list)
    #: no per-node check can fail: every node passes
    everywhere: bool = True
    #: the only nodes worth trying (Kubernetes' PreFilterResult from bound volumes pinned to
    #: hostnames, ``GetEligibleNodes``); None: every node
    eligible: frozenset[str] | None = None


@dataclass(slots=True)
class VolumePlan:
    """What binding the pod's claims on one node takes (Kubernetes' ``PodVolumes``)."""

    #: (claim, static volume) pairs to bind
    static: list[tuple[Obj, Obj]] = field(default_factory=list)
    #: claims to provision on the node
    provision: list[Obj] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.static and not self.provision


_STATUSES: dict[tuple[str, ...], Status] = {}


def _status(reasons: tuple[str, ...]) -> Status:
    status = _STATUSES.get(reasons)
    if status is None:
        status = _STATUSES[reasons] = Status(UNRESOLVABLE, reasons, PLUGIN)
    return status


def check_node(volumes: PodVolumes, node: NodeInfo) -> tuple[tuple[str, ...], VolumePlan]:
    """Kubernetes' ``FindPodVolumes`` for one node: the conflict reasons (empty: the node fits) and the plan."""
    plan = VolumePlan()
    bound_ok = volumes_found = unbound_ok = True
    for terms in volumes.bound:
        if terms is None:
            volumes_found = False
            break
        if not node_matches_terms(terms, node.labels, node.name):
            bound_ok = False
            break
    if volumes.delayed:
        unbound_ok = _check_delayed(volumes.delayed, node, plan)
    reasons: list[str] = []
    if not bound_ok:
        reasons.append(ERR_NODE_CONFLICT)
    if not unbound_ok:
        reasons.append(ERR_BIND_CONFLICT)
    if not volumes_found:
        reasons.append(ERR_PV_NOT_EXIST)
    return tuple(reasons), plan


def _check_delayed(delayed: list[DelayedClaim], node: NodeInfo, plan: VolumePlan) -> bool:
    to_provision: list[DelayedClaim] = []
    to_match: list[DelayedClaim] = []
    for claim in delayed:
        if claim.selected_node:
            if claim.selected_node != node.name:
                return False  # placed elsewhere already
            to_provision.append(claim)
        else:
            to_match.append(claim)
    satisfied = True
    if to_match:
        chosen: set[str] = set()
        node_obj = node.node or {"metadata": {"name": node.name, "labels": node.labels}}
        for claim in to_match:
            volume = (find_matching_volume(claim.claim, claim.candidates, node=node_obj, excluded=frozenset(chosen))
                      if claim.candidates else None)
            if volume is None:
                to_provision.append(claim)
                satisfied = False
                continue
            chosen.add(str(_meta(volume).get("name") or ""))
            plan.static.append((claim.claim, dict(volume)))
    if to_provision:
        for claim in to_provision:
            if not can_provision(claim.storage_class) or not topology_admits(claim.storage_class, node.labels):
                plan.provision.clear()
                return False
            plan.provision.append(claim.claim)
        satisfied = True
    return satisfied


# ---- the plugin -------------------------------------------------------------------------------------


class VolumeBinding(FilterPlugin):
    """The plugin and its caches; see the module docstring. The scheduler runs :meth:`informers`."""

    name = PLUGIN
    node_local = True

    def __init__(self, client: Client, *, bind_timeout: float = DEFAULT_BIND_TIMEOUT_SECONDS) -> None:
        self.client = client
        self.bind_timeout = bind_timeout
        self.claims = Informer(client, PERSISTENT_VOLUME_CLAIMS)
        self.volumes = Informer(client, PERSISTENT_VOLUMES)
        self.classes = Informer(client, STORAGE_CLASSES)
        #: set by the scheduler: re-queue the unschedulable pods a predicate picks
        self.requeue: Callable[[Callable[[PodInfo], bool]], None] = lambda wanted: None
        #: set by the scheduler: the node list rows index (for :meth:`filter_mask`)
        self.node_list: Callable[[], list[NodeInfo]] = list
        #: set by the scheduler: whether another scheduled or assumed pod uses one of these claims
        #: (of the pod's namespace)
        self.claim_users: Callable[[PodInfo, list[str]], bool] = lambda pod, names: False
        #: volumes without a claimRef, by class; volumes with one, by the claim they name
        self._open: dict[str, dict[str, Obj]] = {}
        self._by_claim: dict[str, dict[str, Obj]] = {}
        #: assumptions of decisions whose writes are in flight (kube's assume cache)
        self._assumed_volumes: dict[str, str] = {}  # volume name -> claim key
        self._assumed_nodes: dict[str, str] = {}  # claim key -> selected node
        #: binding tasks waiting on an object (claim key, ``pv/<name>``, pod key)
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self.claims.add_handlers(self._on_claim, self._on_claim_update, self._on_claim_delete)
        self.volumes.add_handlers(self._on_volume, self._on_volume_update, self._on_volume_delete)
        self.classes.add_handlers(self._on_class, self._on_class_update, None)

    def informers(self) -> list[Informer]:
        return [self.claims, self.volumes, self.classes]

    # ---- PreFilter ----

    def pre_filter_volumes(self, pod: PodInfo) -> PodVolumes | Rejection:
        """The pod's claims resolved, or why it fits nowhere (see the module docstring)."""
        conflict = self._read_write_once_pod_conflict(pod)
        if conflict is not None:
            return conflict
        found = self._pre_filter(pod)
        if isinstance(found, str):
            return Rejection(found)
        if found.eligible is not None and not found.eligible:
            return Rejection(ERR_NO_ELIGIBLE)  # bound volumes pinned to different nodes
        return found

    def _read_write_once_pod_conflict(self, pod: PodInfo) -> Rejection | None:
        """VolumeRestrictions' PreFilter: a ``ReadWriteOncePod`` claim (of a ``persistentVolumeClaim``
        volume) that another scheduled or assumed pod uses keeps this one out of every node -- resolvable,
        by preempting that pod."""
        wanted: list[str] = []
        for _, name, ephemeral, _ in pod_claims(pod.obj):
            if ephemeral:
                continue
            claim = self.claims.get(pod.namespace, name)
            if claim is None:
                return Rejection(f'persistentvolumeclaim "{name}" not found')
            if "ReadWriteOncePod" in ((claim.get("spec") or {}).get("accessModes") or []):
                wanted.append(name)
        if wanted and self.claim_users(pod, wanted):
            return Rejection(ERR_READ_WRITE_ONCE_POD_CONFLICT, resolvable=True)
        return None

    def _pre_filter(self, pod: PodInfo) -> PodVolumes | str:
        bound: list[Obj] = []
        unbound: list[Obj] = []
        immediate = False
        for _, name, ephemeral, _ in pod_claims(pod.obj):
            claim = self.claims.get(pod.namespace, name)
            if claim is None:
                if ephemeral:
                    return f'waiting for ephemeral volume controller to create the persistentvolumeclaim "{name}"'
                return f'persistentvolumeclaim "{name}" not found'
            if (claim.get("status") or {}).get("phase") == "Lost":
                volume_name = (claim.get("spec") or {}).get("volumeName") or ""
                return f'persistentvolumeclaim "{name}" bound to non-existent persistentvolume "{volume_name}"'
            if _meta(claim).get("deletionTimestamp"):
                return f'persistentvolumeclaim "{name}" is being deleted'
            if ephemeral and (problem := ephemeral_claim_problem(pod.obj, claim)) is not None:
                return problem
            if is_claim_fully_bound(claim):
                bound.append(claim)
            elif self._delayed_class(claim) is None or (claim.get("spec") or {}).get("volumeName"):
                immediate = True
            else:
                unbound.append(claim)
        if immediate:
            return ERR_UNBOUND_IMMEDIATE
        return self._resolve(bound, unbound)

    def _delayed_class(self, claim: Obj) -> Obj | None:
        """The claim's class when it is WaitForFirstConsumer (``IsDelayBindingMode``), else None."""
        class_name = claim_class(claim)
        storage_class = self.classes.get(None, class_name) if class_name else None
        if storage_class is None or storage_class.get("volumeBindingMode") != WAIT_FOR_FIRST_CONSUMER:
            return None
        return storage_class

    def _resolve(self, bound: list[Obj], unbound: list[Obj]) -> PodVolumes:
        volumes = PodVolumes()
        missing = False
        for claim in bound:
            volume = self.volumes.get(None, str(claim["spec"]["volumeName"]))
            if volume is None:
                if not missing:
                    volumes.bound.append(None)
                missing = True
                continue
            required = ((volume.get("spec") or {}).get("nodeAffinity") or {}).get("required")
            if isinstance(required, dict) and not missing:
                volumes.bound.append(node_selector_terms(required))
            if names := volume_node_names(volume):
                volumes.eligible = names if volumes.eligible is None else volumes.eligible & names
        for claim in sorted(unbound, key=requested_bytes):
            storage_class = self._delayed_class(claim)
            assert storage_class is not None
            meta = _meta(claim)
            key = _key(str(meta.get("namespace") or ""), str(meta.get("name") or ""))
            selected = (meta.get("annotations") or {}).get(ANN_SELECTED_NODE) or self._assumed_nodes.get(key, "")
            volumes.delayed.append(DelayedClaim(claim, storage_class, self._candidates(claim, key), str(selected)))
        volumes.everywhere = not (volumes.bound or any(
            d.selected_node or d.candidates or not can_provision(d.storage_class) or d.storage_class.get("allowedTopologies")
            for d in volumes.delayed))
        return volumes

    def _candidates(self, claim: Obj, key: str) -> list[Obj]:
        """Static volumes that may serve the claim: pre-bound to it, or unclaimed of its class (and not
        taken by a decision in flight)."""
        found = list(self._by_claim.get(key, {}).values())
        taken = self._assumed_volumes
        for name, volume in self._open.get(claim_class(claim), {}).items():
            if taken.get(name, key) == key:
                found.append(volume)
        return found

    # ---- Filter ----

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        volumes: PodVolumes | None = pod.volumes
        if volumes is None or volumes.everywhere:
            return None
        reasons, _ = check_node(volumes, node)
        return _status(reasons) if reasons else None

    def filter_mask(self, pod: PodInfo, columns: NodeColumns, rows: Rows) -> np.ndarray | None:
        """:meth:`filter` over the nodes at ``rows`` (a Python loop: only pods with claims get here)."""
        volumes: PodVolumes | None = pod.volumes
        nodes = self.node_list()
        indices: Sequence[int] = range(len(nodes))[rows] if isinstance(rows, slice) else rows.tolist()
        if volumes is None or volumes.everywhere:
            return np.ones(len(indices), dtype=bool)
        return np.fromiter((not check_node(volumes, nodes[i])[0] for i in indices), dtype=bool, count=len(indices))

    # ---- Reserve / Unreserve ----

    def reserve(self, pod: PodInfo, node: NodeInfo) -> VolumePlan:
        """The plan for the chosen node, assumed (later decisions see it at once)."""
        volumes: PodVolumes | None = pod.volumes
        if volumes is None or not volumes.delayed:
            return VolumePlan()
        _, plan = check_node(volumes, node)
        for claim, volume in plan.static:
            self._assumed_volumes[str(_meta(volume)["name"])] = _claim_key(claim)
        for claim in plan.provision:
            self._assumed_nodes[_claim_key(claim)] = node.name
        return plan

    def unreserve(self, plan: VolumePlan) -> None:
        for claim, volume in plan.static:
            if self._assumed_volumes.get(str(_meta(volume)["name"])) == _claim_key(claim):
                del self._assumed_volumes[str(_meta(volume)["name"])]
        for claim in plan.provision:
            self._assumed_nodes.pop(_claim_key(claim), None)

    # ---- PreBind ----

    async def bind_pod_volumes(self, pod: PodInfo, node_name: str, plan: VolumePlan,
                               node: Callable[[], Obj | None], alive: Callable[[], bool]) -> None:
        """Write the plan, then wait until its claims are bound (``BindPodVolumes``); raises
        :class:`VolumeBindError` when the attempt must be retried."""
        event = asyncio.Event()
        keys = [pod.key] + [_claim_key(c) for c, _ in plan.static] + [_claim_key(c) for c in plan.provision]
        keys += [f"pv/{_meta(v)['name']}" for _, v in plan.static]
        for key in keys:
            self._waiters.setdefault(key, set()).add(event)
        try:
            written = await self._write_plan(plan, node_name)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.bind_timeout
            while not self._check_bindings(pod, node_name, plan, written, node(), alive()):
                event.clear()
                remaining = deadline - loop.time()
                try:
                    if remaining <= 0:
                        raise TimeoutError
                    await asyncio.wait_for(event.wait(), remaining)
                except TimeoutError:
                    raise VolumeBindError("binding volumes: context deadline exceeded") from None
        finally:
            for key in keys:
                waiting = self._waiters.get(key)
                if waiting is not None:
                    waiting.discard(event)
                    if not waiting:
                        del self._waiters[key]

    async def _write_plan(self, plan: VolumePlan, node_name: str) -> dict[str, int]:
        """``bindAPIUpdate``: the volumes' claimRef, the claims' selected node; the versions written."""
        written: dict[str, int] = {}
        for claim, volume in plan.static:
            name = str(_meta(volume)["name"])
            ref = (volume.get("spec") or {}).get("claimRef") or {}
            if is_volume_bound_to_claim(volume, claim) and ref.get("uid"):
                continue  # nothing to write (GetBindVolumeToClaim: not dirty)
            meta: Obj = {"resourceVersion": _meta(volume).get("resourceVersion")}
            if not is_volume_bound_to_claim(volume, claim):
                meta["annotations"] = {ANN_BOUND_BY_CONTROLLER: "yes"}
            try:
                new = await self.client.patch(PERSISTENT_VOLUMES, name, {"metadata": meta,
                                                                         "spec": {"claimRef": claim_ref(claim)}})
            except ApiError as exc:
                raise VolumeBindError(f"binding volumes: {exc}") from exc
            written[f"pv/{name}"] = _version(new)
        for claim in plan.provision:
            claim_meta = _meta(claim)
            if (claim_meta.get("annotations") or {}).get(ANN_SELECTED_NODE) == node_name:
                continue
            patch = {"metadata": {"resourceVersion": claim_meta.get("resourceVersion"),
                                  "annotations": {ANN_SELECTED_NODE: node_name}}}
            try:
                new = await self.client.patch(PERSISTENT_VOLUME_CLAIMS, str(claim_meta["name"]), patch,
                                              str(claim_meta["namespace"]))
            except ApiError as exc:
                raise VolumeBindError(f"binding volumes: {exc}") from exc
            written[_claim_key(claim)] = _version(new)
        return written

    def _check_bindings(self, pod: PodInfo, node_name: str, plan: VolumePlan, written: Mapping[str, int],
                        node: Obj | None, alive: bool) -> bool:
        """``checkBindings`` on the informers' objects: True when every claim of the plan is bound,
        False to wait for more events; raises when the attempt must be retried."""
        if node is None:
            raise VolumeBindError(f'binding volumes: failed to get node "{node_name}": node "{node_name}" not found')
        if not alive:
            raise VolumeBindError("binding volumes: pod does not exist any more")
        for claim, volume in plan.static:
            name = str(_meta(volume)["name"])
            current = self.volumes.get(None, name)
            claim_now = self._claim_now(claim)
            if current is None:
                raise VolumeBindError(f'binding volumes: failed to check binding: PersistentVolume "{name}" not found')
            if _version(current) < written.get(f"pv/{name}", 0):
                return False  # our write has not arrived yet
            if not volume_admits_node(current, node):
                raise VolumeBindError(f'binding volumes: pv "{name}" node affinity doesn\'t match node "{node_name}"')
            if not ((current.get("spec") or {}).get("claimRef") or {}).get("uid"):
                raise VolumeBindError(f'binding volumes: ClaimRef got reset for pv "{name}"')
            if not is_claim_fully_bound(claim_now):
                return False
        for claim in plan.provision:
            key = _claim_key(claim)
            claim_now = self._claim_now(claim)
            if _version(claim_now) < written.get(key, 0):
                return False
            if (_meta(claim_now).get("annotations") or {}).get(ANN_SELECTED_NODE) != node_name:
                raise VolumeBindError(f'binding volumes: provisioning failed for PVC "{_meta(claim)["name"]}"')
            volume_name = (claim_now.get("spec") or {}).get("volumeName")
            if volume_name:
                current = self.volumes.get(None, str(volume_name))
                if current is None:
                    return False  # not seen yet
                if not volume_admits_node(current, node):
                    raise VolumeBindError(
                        f'binding volumes: pv "{volume_name}" node affinity doesn\'t match node "{node_name}"')
            if not is_claim_fully_bound(claim_now):
                return False
        return True

    def _claim_now(self, claim: Obj) -> Obj:
        meta = _meta(claim)
        current = self.claims.get(str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        if current is None:
            raise VolumeBindError(f'binding volumes: failed to check binding: PersistentVolumeClaim '
                                  f'"{meta.get("namespace")}/{meta.get("name")}" not found')
        return current

    def pod_gone(self, key: str) -> None:
        """The scheduler saw the pod deleted: wake its binding task."""
        self._wake(key)

    # ---- informer handlers (indexes, wake-ups, re-queues) ----

    def _wake(self, key: str) -> None:
        for event in self._waiters.get(key, ()):
            event.set()

    def _on_claim(self, claim: Obj) -> None:
        meta = _meta(claim)
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        self._wake(_key(namespace, name))
        self.requeue(lambda info: info.namespace == namespace and name in info.claims)

    def _on_claim_update(self, old: Obj, new: Obj) -> None:
        self._on_claim(new)

    def _on_claim_delete(self, claim: Obj) -> None:
        meta = _meta(claim)
        self._wake(_key(str(meta.get("namespace") or ""), str(meta.get("name") or "")))

    def _index(self, volume: Obj, add: bool) -> None:
        name = str(_meta(volume).get("name") or "")
        ref = (volume.get("spec") or {}).get("claimRef")
        if ref:
            group, index_key = self._by_claim, _key(str(ref.get("namespace") or ""), str(ref.get("name") or ""))
        else:
            group, index_key = self._open, volume_class(volume)
        if add:
            group.setdefault(index_key, {})[name] = volume
            return
        members = group.get(index_key)
        if members is not None:
            members.pop(name, None)
            if not members:
                del group[index_key]

    def _on_volume(self, volume: Obj) -> None:
        self._index(volume, True)
        self._volume_changed(volume)

    def _on_volume_update(self, old: Obj, new: Obj) -> None:
        self._index(old, False)
        self._index(new, True)
        self._volume_changed(new)

    def _on_volume_delete(self, volume: Obj) -> None:
        self._index(volume, False)
        self._wake(f"pv/{_meta(volume).get('name')}")

    def _volume_changed(self, volume: Obj) -> None:
        self._wake(f"pv/{_meta(volume).get('name')}")
        ref = (volume.get("spec") or {}).get("claimRef")
        if ref:
            self._wake(_key(str(ref.get("namespace") or ""), str(ref.get("name") or "")))
        self.requeue(_has_claims)

    def _on_class(self, storage_class: Obj) -> None:
        self.requeue(_has_claims)

    def _on_class_update(self, old: Obj, new: Obj) -> None:
        self.requeue(_has_claims)


def _has_claims(info: PodInfo) -> bool:
    return bool(info.claims)


def _claim_key(claim: Mapping[str, Any]) -> str:
    meta = _meta(claim)
    return _key(str(meta.get("namespace") or ""), str(meta.get("name") or ""))
