"""What one sync of a StatefulSet does: the ordered pod and claim actions, decided purely.

:func:`plan_sync` reads the set (and the set at its current and update revisions), the
pods it controls and its claims (from the informer), and returns the actions in the
order Kubernetes takes them; the controller carries them out in that order and stops
at the first failure (the next sync decides again from what then exists). Kubernetes
facts followed (``stateful_set_control.go`` ``updateStatefulSet``, ``processReplica``,
``processCondemned``, ``updateStatefulSetAfterInvariantEstablished``):

* pods are split into *replicas* (ordinals in range; a missing one is made from the
  current revision if its index is below the partition, else from the update revision)
  and *condemned* (members with ordinals out of range, highest first); a set being
  deleted does nothing but count;
* **OrderedReady** (``monotonic``): replicas are visited in ordinal order; a Failed or
  Succeeded pod is deleted (its replacement comes on a later sync, once it is gone), a
  missing one is created -- its claims first -- and the sync stops; a terminating, not
  Running-and-Ready, or not yet available (``minReadySeconds``) pod stops it too; then
  condemned pods are deleted one at a time from the highest ordinal, each only when all
  others are healthy (or it is the first unhealthy one); **Parallel**: the same without
  stopping, every missing pod at once, every condemned pod at once;
* a Pending pod gets its missing claims; a pod whose identity labels are wrong is fixed;
  claims get the owner references of the retention policy (``claims.py``), condemned
  pods' claims before those pods are deleted;
* **RollingUpdate**, once all of that is settled: pods with ordinal index ≥ ``partition``
  not at the update revision are deleted (to be recreated at it) from the highest
  ordinal down, at most ``maxUnavailable`` (default 1; an int or a percentage of
  replicas, rounded down, at least 1) unavailable at a time; **OnDelete**: nothing (pods
  take the update revision when someone deletes them).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ...client.base import Obj
from . import claims as claimrules
from .identity import (claim_templates, identity_labels, identity_matches, in_range, new_claims, new_pod, ordinal_of,
                       replicas_of, revision_of, start_ordinal)
from .status import is_created, is_healthy, is_running_and_available, is_running_and_ready, is_terminating, min_ready_seconds


@dataclass(frozen=True)
class CreatePod:
    pod: Obj
    #: claims to create first (those not in the informer yet)
    claims: list[Obj]


@dataclass(frozen=True)
class CreateClaims:
    """Create a pending pod's missing claims."""

    pod: Obj
    claims: list[Obj]


@dataclass(frozen=True)
class DeletePod:
    pod: Obj
    #: ``failed`` (recreate), ``scale`` (condemned) or ``update`` (rolling update)
    why: str


@dataclass(frozen=True)
class FixIdentity:
    pod: Obj
    labels: dict[str, str]


@dataclass(frozen=True)
class FixClaimOwners:
    """Set a claim's owner references to what the retention policy wants."""

    pod: Obj
    claim: Obj
    owner_references: list[Obj]


Action = CreatePod | CreateClaims | DeletePod | FixIdentity | FixClaimOwners


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    #: pods deleted for the update (``currentReplicas`` counts them out at once)
    update_deletions: int = 0
    #: a pod waits for a previous pod's claim to be collected (nothing announces that: look again later)
    waits_for_stale_claim: bool = False


@dataclass(frozen=True)
class Revisions:
    """The set at its current and update revisions, and those revisions' names."""

    current_set: Obj
    update_set: Obj
    current: str
    update: str


def is_parallel(sts: Obj) -> bool:
    return (sts.get("spec") or {}).get("podManagementPolicy") == "Parallel"


def _strategy(sts: Obj) -> Obj:
    return (sts.get("spec") or {}).get("updateStrategy") or {}


def partition(sts: Obj) -> int:
    return int((_strategy(sts).get("rollingUpdate") or {}).get("partition") or 0)


def max_unavailable(sts: Obj) -> int:
    """``rollingUpdate.maxUnavailable`` as a pod count (percentages of replicas round down; at least 1)."""
    value = (_strategy(sts).get("rollingUpdate") or {}).get("maxUnavailable")
    if value is None:
        return 1
    if isinstance(value, str) and value.endswith("%"):
        try:
            count = math.floor(int(value[:-1]) * replicas_of(sts) / 100)
        except ValueError:
            count = 1
    else:
        try:
            count = int(value)
        except (TypeError, ValueError):
            count = 1
    return max(1, count)


def versioned_pod(sts: Obj, revs: Revisions, ordinal: int) -> Obj:
    """The pod to create for a missing ordinal (``newVersionedStatefulSetPod``)."""
    current = revs.current_set
    strategy = _strategy(current)
    if (strategy.get("type") or "RollingUpdate") == "RollingUpdate":
        rolling = strategy.get("rollingUpdate")
        below = (start_ordinal(current) + int((current.get("status") or {}).get("currentReplicas") or 0)) if rolling is None \
            else start_ordinal(current) + int(rolling.get("partition") or 0)
        if ordinal < below:
            return new_pod(current, ordinal, revs.current)
    return new_pod(revs.update_set, ordinal, revs.update)


def split_pods(sts: Obj, pods: list[Obj]) -> tuple[dict[int, Obj], list[Obj]]:
    """Replicas by ordinal and condemned pods (highest ordinal first); pods without an ordinal are ignored."""
    replicas: dict[int, Obj] = {}
    condemned: list[Obj] = []
    for pod in pods:
        ordinal = ordinal_of(pod)
        if in_range(sts, ordinal):
            replicas[ordinal] = pod
        elif ordinal >= 0:
            condemned.append(pod)
    condemned.sort(key=ordinal_of, reverse=True)
    return replicas, condemned


def _claims_of(sts: Obj, ordinal: int, claims: Mapping[str, Obj]) -> tuple[list[Obj], list[Obj]]:
    """The pod's existing claims and the (new) ones missing."""
    existing, missing = [], []
    for claim in new_claims(sts, ordinal).values():
        found = claims.get(claim["metadata"]["name"])
        if found is None:
            missing.append(claim)
        else:
            existing.append(found)
    return existing, missing


def _claim_fixes(sts: Obj, pod: Obj, claims: Mapping[str, Obj]) -> list[Action]:
    existing, _ = _claims_of(sts, ordinal_of(pod), claims)
    return [FixClaimOwners(pod, claim, claimrules.updated_owner_refs(claim, sts, pod)) for claim in existing
            if not claimrules.claim_owner_up_to_date(claim, sts, pod)]


def _available(sts: Obj, pod: Obj, now: datetime | None) -> bool:
    return is_running_and_available(pod, min_ready_seconds(sts), now)


class _Stop(Exception):
    """The sync can do nothing more this round (OrderedReady waits)."""


def _process_replica(sts: Obj, revs: Revisions, pod: Obj, claims: Mapping[str, Obj], plan: Plan, monotonic: bool,
                     now: datetime | None) -> None:
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Failed", "Succeeded"):
        if not is_terminating(pod):
            plan.actions.append(DeletePod(pod, "failed"))
        raise _Stop
    ordinal = ordinal_of(pod)
    if not is_created(pod):
        existing, missing = _claims_of(sts, ordinal, claims)
        if claimrules.claim_is_stale(sts, pod, existing):
            plan.waits_for_stale_claim = True
            raise _Stop
        plan.actions.append(CreatePod(pod, missing))
        if monotonic:
            raise _Stop
        return
    if phase == "Pending" and claim_templates(sts):
        _, missing = _claims_of(sts, ordinal, claims)
        if missing:
            plan.actions.append(CreateClaims(pod, missing))
    if monotonic and (is_terminating(pod) or not is_running_and_ready(pod) or not _available(sts, pod, now)):
        raise _Stop
    if not identity_matches(sts, pod):
        plan.actions.append(FixIdentity(pod, identity_labels(sts, ordinal)))
    plan.actions.extend(_claim_fixes(revs.update_set, pod, claims))


def _process_condemned(sts: Obj, pod: Obj, first_unhealthy: Obj | None, plan: Plan, monotonic: bool,
                       now: datetime | None) -> None:
    if is_terminating(pod):
        if monotonic:
            raise _Stop
        return
    if monotonic and pod is not first_unhealthy and (not is_running_and_ready(pod) or not _available(sts, pod, now)):
        raise _Stop
    plan.actions.append(DeletePod(pod, "scale"))
    if monotonic:
        raise _Stop


def _rolling_update(sts: Obj, revs: Revisions, replicas: list[Obj], plan: Plan, now: datetime | None) -> None:
    """``updateStatefulSetAfterInvariantEstablished``: delete outdated pods, highest first, within maxUnavailable."""
    unavailable = sum(1 for pod in replicas if not is_healthy(pod) or not _available(sts, pod, now))
    allowed = max_unavailable(sts) - unavailable
    low = partition(sts)
    for index in range(len(replicas) - 1, low - 1, -1):
        if allowed <= 0:
            return
        pod = replicas[index]
        if revision_of(pod) != revs.update and not is_terminating(pod):
            plan.actions.append(DeletePod(pod, "update"))
            plan.update_deletions += 1
            allowed -= 1


def _unless_parallel(monotonic: bool, step: Callable[..., None], *args: Any) -> None:
    """Run one pod's step; its stop ends the sync only under OrderedReady (Parallel goes on with the others)."""
    try:
        step(*args)
    except _Stop:
        if monotonic:
            raise


def plan_sync(sts: Obj, revs: Revisions, pods: list[Obj], claims: Mapping[str, Obj], now: datetime | None = None) -> Plan:
    """The actions of one sync of ``sts`` over the pods it controls (see the module docstring)."""
    plan = Plan()
    if sts["metadata"].get("deletionTimestamp"):
        return plan
    found, condemned = split_pods(sts, pods)
    start = start_ordinal(sts)
    replicas = [found.get(o) or versioned_pod(sts, revs, o) for o in range(start, start + replicas_of(sts))]
    unhealthy = [p for p in replicas if not is_healthy(p)] + [p for p in reversed(condemned) if not is_healthy(p)]
    first_unhealthy = unhealthy[0] if unhealthy else None
    monotonic = not is_parallel(sts)
    try:
        for pod in replicas:
            _unless_parallel(monotonic, _process_replica, sts, revs, pod, claims, plan, monotonic, now)
        for pod in condemned:
            plan.actions.extend(_claim_fixes(revs.update_set, pod, claims))
        for pod in condemned:
            _unless_parallel(monotonic, _process_condemned, sts, pod, first_unhealthy, plan, monotonic, now)
    except _Stop:
        return plan
    if (_strategy(sts).get("type") or "RollingUpdate") == "OnDelete":
        return plan
    _rolling_update(sts, revs, replicas, plan, now)
    return plan
