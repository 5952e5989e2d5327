"""What every controller that owns pods shares: controller references, adoption, expectations,
pods from templates, and which pod goes first.

Kubernetes keeps these in ``pkg/controller/controller_utils.go`` and
``controller_ref_manager.go``; the ReplicaSet, ReplicationController, Job, DaemonSet and
StatefulSet controllers all lean on them, and so do podlife's:

* **Controller references** (:func:`controller_ref`, :func:`controller_of`): the owner
  reference with ``controller: true`` and ``blockOwnerDeletion: true`` that makes a pod
  *controlled* by one object; the garbage collector deletes the pod with its owner.
* **Claiming** (:func:`claim_decisions`, pure; :func:`claim`, which writes): a
  controller adopts orphans its selector matches (a strategic merge patch adding its
  reference, pinned to the pod's uid) and releases pods it controls that no longer match
  (the reference deleted); pods controlled by someone else are never touched; nothing is
  adopted while the owner is being deleted, or after a live read shows the owner was
  replaced (another uid) -- Kubernetes' ``RecheckDeletionTimestamp``.
* **Expectations** (:class:`Expectations`): after a controller asks for *n* creations or
  deletions it waits until its informer has seen them before it counts pods again, so a
  lagging watch never makes it create (or delete) twice. Expectations expire after
  :data:`EXPECTATIONS_TIMEOUT` (5 min), as Kubernetes', so a lost event cannot wedge a
  controller.
* **Pods from templates** (:func:`pod_from_template`): labels, annotations, finalizers
  and spec of the template, ``generateName`` ``<owner>-``, the controller reference.
* **Batches** (:func:`slow_start_batch`): creations in batches of 1, 2, 4, ... stopping
  at the first failing batch, so a quota or webhook that refuses every pod costs one
  request, not ``replicas`` of them.
* **Ranking** (:func:`deletion_order_key`): Kubernetes' ``ActivePods`` order -- which pod
  a scale-down deletes first: unscheduled, then pending, unknown, running; not ready;
  lower ``controller.kubernetes.io/pod-deletion-cost``; more pods of the owner on its
  node; ready for less time; more restarts; newer.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..client.base import Client, Obj, Resource
from ..machinery.errors import ApiError
from ..machinery.selectors import LabelSelector

#: how long expectations hold before a controller re-counts anyway (Kubernetes' ExpectationsTimeout)
EXPECTATIONS_TIMEOUT = 300.0
#: the first batch of :func:`slow_start_batch` (Kubernetes' SlowStartInitialBatchSize)
SLOW_START_INITIAL_BATCH = 1
POD_DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"


# --------------------------------------------------------------------------- controller references


def controller_ref(owner: Obj, api_version: str, kind: str) -> Obj:
    """The owner reference that makes ``owner`` the controller of a dependent."""
    meta = owner["metadata"]
    return {"apiVersion": api_version, "kind": kind, "name": meta["name"], "uid": meta["uid"],
            "controller": True, "blockOwnerDeletion": True}


def controller_of(obj: Obj) -> Obj | None:
    """The object's owner reference with ``controller: true``, if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller"):
            return ref
    return None


def is_controlled_by(obj: Obj, owner: Obj) -> bool:
    ref = controller_of(obj)
    return ref is not None and ref.get("uid") == owner["metadata"].get("uid")


# --------------------------------------------------------------------------- pod facts


def is_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def is_active(pod: Obj) -> bool:
    """Kubernetes' ``IsPodActive``: not finished and not being deleted."""
    return not is_terminal(pod) and not pod["metadata"].get("deletionTimestamp")


def _condition(pod: Obj, type_: str) -> Obj | None:
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if cond.get("type") == type_:
            return cond
    return None


def is_ready(pod: Obj) -> bool:
    cond = _condition(pod, "Ready")
    return cond is not None and cond.get("status") == "True"


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def ready_since(pod: Obj) -> datetime | None:
    """When the pod last turned Ready (None: not ready)."""
    cond = _condition(pod, "Ready")
    if cond is None or cond.get("status") != "True":
        return None
    return parse_time(cond.get("lastTransitionTime")) or datetime.fromtimestamp(0, timezone.utc)


def is_available(pod: Obj, min_ready_seconds: float, now: datetime | None = None) -> bool:
    """Kubernetes' ``IsPodAvailable``: ready for at least ``minReadySeconds``."""
    since = ready_since(pod)
    if since is None:
        return False
    if min_ready_seconds <= 0:
        return True
    return ((now or datetime.now(timezone.utc)) - since).total_seconds() >= min_ready_seconds


def available_in(pod: Obj, min_ready_seconds: float, now: datetime | None = None) -> float | None:
    """Seconds until a ready pod becomes available (0: it is; None: not ready) -- when to look again."""
    since = ready_since(pod)
    if since is None:
        return None
    left = min_ready_seconds - ((now or datetime.now(timezone.utc)) - since).total_seconds()
    return max(0.0, left)


def restart_count(pod: Obj) -> int:
    return max((s.get("restartCount", 0) for s in (pod.get("status") or {}).get("containerStatuses") or ()),
               default=0)


_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def _deletion_cost(pod: Obj) -> int:
    text = ((pod["metadata"].get("annotations") or {}).get(POD_DELETION_COST) or "0").strip()
    try:
        return int(text)
    except ValueError:
        return 0


def deletion_order_key(pod: Obj, colocated: int = 0, now: datetime | None = None) -> tuple:
    """Sort key putting the pod a scale-down should delete first, first (``ActivePodsWithRanks``).

    ``colocated``: how many pods of the same owner share the pod's node (more: sooner).
    """
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    since = ready_since(pod)
    ready_for = ((now or datetime.now(timezone.utc)) - since).total_seconds() if since else 0.0
    created = parse_time(pod["metadata"].get("creationTimestamp"))
    return (1 if spec.get("nodeName") else 0,
            _PHASE_RANK.get(status.get("phase", "Pending"), 3),
            1 if since else 0,
            _deletion_cost(pod),
            -colocated,
            ready_for,
            -restart_count(pod),
            -(created.timestamp() if created else 0.0))


def rank_for_deletion(pods: Sequence[Obj], now: datetime | None = None) -> list[Obj]:
    """The pods, the first to delete first (co-location counted among ``pods``)."""
    per_node: dict[str, int] = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName") or ""
        per_node[node] = per_node.get(node, 0) + 1
    at = now or datetime.now(timezone.utc)
    return sorted(pods, key=lambda p: deletion_order_key(
        p, per_node.get((p.get("spec") or {}).get("nodeName") or "", 0) if (p.get("spec") or {}).get("nodeName")
        else 0, at))


# --------------------------------------------------------------------------- templates


def pod_from_template(template: Obj, owner: Obj, ref: Obj, *, name: str | None = None,
                      extra_labels: dict[str, str] | None = None) -> Obj:
    """A Pod made from ``template`` for ``owner`` (``generateName`` ``<owner>-`` unless ``name``)."""
    tmeta = template.get("metadata") or {}
    meta: Obj = {"namespace": owner["metadata"]["namespace"], "ownerReferences": [dict(ref)]}
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = f"{owner['metadata']['name']}-"
    labels = dict(tmeta.get("labels") or {})
    labels.update(extra_labels or {})
    if labels:
        meta["labels"] = labels
    for key in ("annotations", "finalizers"):
        if tmeta.get(key):
            meta[key] = copy.deepcopy(tmeta[key])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": copy.deepcopy(template.get("spec") or {})}


async def slow_start_batch(count: int, create: Callable[[], Awaitable[None]],
                           initial: int = SLOW_START_INITIAL_BATCH) -> tuple[int, BaseException | None]:
    """Call ``create`` ``count`` times in growing batches; stop after a batch with a failure.

    Returns how many succeeded and the first error (None: all did).
    """
    done, batch = 0, min(count, initial)
    while batch > 0:
        results = await asyncio.gather(*(create() for _ in range(batch)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        done += batch - len(errors)
        if errors:
            for error in errors:
                if isinstance(error, asyncio.CancelledError):
                    raise error
            return done, errors[0]
        batch = min(2 * batch, count - done)
    return done, None


# --------------------------------------------------------------------------- expectations


@dataclass
class _Expected:
    adds: int = 0
    deletes: set[str] = field(default_factory=set)  # pod keys whose deletion is awaited
    since: float = field(default_factory=time.monotonic)


class Expectations:
    """Creations and deletions a controller asked for and has not seen yet, per owner key.

    ``satisfied(key)`` is true when there are none (or they are older than
    :data:`EXPECTATIONS_TIMEOUT`): only then may the controller trust its cache's count.
    """

    def __init__(self, timeout: float = EXPECTATIONS_TIMEOUT) -> None:
        self._by_key: dict[str, _Expected] = {}
        self.timeout = timeout

    def expect_creations(self, key: str, count: int) -> None:
        self._by_key[key] = _Expected(adds=count)

    def expect_deletions(self, key: str, pod_keys: Iterable[str]) -> None:
        self._by_key[key] = _Expected(deletes=set(pod_keys))

    def creation_observed(self, key: str) -> None:
        expected = self._by_key.get(key)
        if expected is not None and expected.adds > 0:
            expected.adds -= 1

    def creation_failed(self, key: str, count: int = 1) -> None:
        """Creations asked for that will never be observed (the request failed)."""
        for _ in range(count):
            self.creation_observed(key)

    def deletion_observed(self, key: str, pod_key: str) -> None:
        expected = self._by_key.get(key)
        if expected is not None:
            expected.deletes.discard(pod_key)

    def satisfied(self, key: str) -> bool:
        expected = self._by_key.get(key)
        if expected is None:
            return True
        if expected.adds <= 0 and not expected.deletes:
            return True
        return time.monotonic() - expected.since > self.timeout

    def forget(self, key: str) -> None:
        self._by_key.pop(key, None)


# --------------------------------------------------------------------------- claiming


@dataclass(frozen=True)
class ClaimDecisions:
    """What claiming means for one owner: the pods it keeps, adopts and releases."""

    owned: list[Obj]
    adopt: list[Obj]
    release: list[Obj]


def claim_decisions(owner: Obj, selector: LabelSelector, candidates: Iterable[Obj]) -> ClaimDecisions:
    """Pure: which ``candidates`` (the owner's namespace's pods, or those it controls) to keep, adopt, release."""
    uid = owner["metadata"]["uid"]
    owner_deleting = bool(owner["metadata"].get("deletionTimestamp"))
    owned: list[Obj] = []
    adopt: list[Obj] = []
    release: list[Obj] = []
    for pod in candidates:
        ref = controller_of(pod)
        matches = selector.matches(pod["metadata"].get("labels"))
        if ref is not None:
            if ref.get("uid") != uid:
                continue
            if matches or owner_deleting:
                owned.append(pod)
            else:
                release.append(pod)
        elif matches and not owner_deleting and not pod["metadata"].get("deletionTimestamp"):
            adopt.append(pod)
    return ClaimDecisions(owned, adopt, release)


async def claim(client: Client, pods_res: Resource, owner_res: Resource, owner: Obj, ref: Obj,
                decisions: ClaimDecisions) -> list[Obj]:
    """Carry out :func:`claim_decisions`; the pods the owner controls afterwards.

    Adoption first re-reads the owner: one replaced or being deleted adopts nothing.
    A pod that changed or went in the meantime is left out (the next sync sees it).
    """
    owned = list(decisions.owned)
    if decisions.adopt:
        meta = owner["metadata"]
        try:
            fresh = await client.get(owner_res, meta["name"], meta.get("namespace"))
        except ApiError as exc:
            if exc.code != 404:
                raise
            fresh = None
        if fresh is not None and fresh["metadata"].get("uid") == meta["uid"] \
                and not fresh["metadata"].get("deletionTimestamp"):
            for pod in decisions.adopt:
                adopted = await _patch_owner_refs(client, pods_res, pod, [dict(ref)])
                if adopted is not None:
                    owned.append(adopted)
    for pod in decisions.release:
        await _patch_owner_refs(client, pods_res, pod, [{"$patch": "delete", "uid": ref["uid"]}])
    return owned


async def _patch_owner_refs(client: Client, res: Resource, obj: Obj, refs: list[Obj]) -> Obj | None:
    meta = obj["metadata"]
    patch: dict[str, Any] = {"metadata": {"ownerReferences": refs, "uid": meta["uid"]}}
    try:
        return await client.patch(res, meta["name"], patch, meta.get("namespace"), patch_type="strategic")
    except ApiError as exc:
        if exc.code in (404, 409, 422):  # gone, replaced (uid precondition) or no longer adoptable
            return None
        raise
