"""The DaemonSet controller's decisions (pure): which pods to create and delete, how a
rolling update proceeds, what the status says, and which revisions go.

Kubernetes facts followed (``pkg/controller/daemon``):

* **Per node** (``podsShouldBeOnNode``): a node that should run a pod and has none gets
  one; on a node where pods may continue, failed pods are deleted (and recreated by a
  later sync), succeeded ones too; without surge all but the oldest running pod are
  deleted; with surge at most one new and one old pod stay, the old one deleted once
  the new one is available; on a node where pods may not continue, all go. Pods being
  deleted are left alone (and still count as present, so no second pod is created
  until they are gone).
* **Rolling update without surge**: old pods are deleted (the per-node step then
  creates their replacements) while fewer than ``maxUnavailable`` nodes are
  unavailable; unavailable old pods are replaced at once.
* **Rolling update with surge**: a new pod is created beside an old one on up to
  ``maxSurge`` nodes at a time (at once where the old pod is unavailable); the old pod
  goes when the new one is available.
* ``maxUnavailable``/``maxSurge`` percentages are of the nodes that should run a pod,
  rounded up; both zero means ``maxUnavailable`` 1.
* **Status** counts, over the nodes that should run a pod, those with a pod (its
  oldest scheduled one judged), ready, available, updated; pods on other nodes are
  misscheduled.
* **History**: old revisions beyond ``revisionHistoryLimit`` go, oldest first, except
  those a live pod's ``controller-revision-hash`` still names.
* Failed pods are deleted with a per-node exponential backoff (1 s doubling to 15 min,
  ``failedPodsBackoff``), so a kubelet that rejects the pod is not fought in a hot loop.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ...client.base import Obj
from ..history import CONTROLLER_REVISION_HASH_LABEL, revision_number
from ..pod_control import is_available, is_ready, parse_time
from .placement import Fit, is_updated

BURST_REPLICAS = 250  # creations or deletions per sync (Kubernetes' BurstReplicas)
BACKOFF_INITIAL = 1.0
BACKOFF_MAX = 15 * 60.0


# --------------------------------------------------------------------------- pods on one node


def creation_order_key(pod: Obj) -> tuple:
    """``podByCreationTimestampAndPhase``: scheduled pods first, then oldest, then by name."""
    meta = pod.get("metadata") or {}
    created = parse_time(meta.get("creationTimestamp"))
    return (0 if (pod.get("spec") or {}).get("nodeName") else 1,
            created.timestamp() if created else 0.0, meta.get("name") or "")


def _phase(pod: Obj) -> str:
    return (pod.get("status") or {}).get("phase") or ""


def _deleting(pod: Obj) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


@dataclass
class NodeDecision:
    create: bool = False
    delete: list[Obj] = field(default_factory=list)
    #: failed pods to delete, subject to the node's backoff
    failed: list[Obj] = field(default_factory=list)


def decide_node(fit: Fit, pods: Sequence[Obj] | None, *, surge: bool, hash_: str, generation: str | None,
                min_ready_seconds: float, now: datetime) -> NodeDecision:
    """What to do with the DaemonSet's ``pods`` on one node (None: it has none at all)."""
    decision = NodeDecision()
    if fit.should_run and not pods:
        decision.create = True
        return decision
    if not pods:
        return decision
    if not fit.should_continue:
        decision.delete = [p for p in pods if not _deleting(p)]
        return decision
    running: list[Obj] = []
    for pod in pods:
        if _deleting(pod):
            continue
        phase = _phase(pod)
        if phase == "Failed":
            decision.failed.append(pod)
        elif phase == "Succeeded":
            decision.delete.append(pod)
        else:
            running.append(pod)
    if len(running) <= 1:
        return decision
    running.sort(key=creation_order_key)
    if not surge:
        decision.delete.extend(running[1:])
        return decision
    oldest_new: Obj | None = None
    oldest_old: Obj | None = None
    for pod in running:
        if is_updated(pod, hash_, generation):
            if oldest_new is None:
                oldest_new = pod
                continue
        elif oldest_old is None:
            oldest_old = pod
            continue
        decision.delete.append(pod)
    if oldest_new is not None and oldest_old is not None and is_available(oldest_new, min_ready_seconds, now):
        decision.delete.append(oldest_old)
    return decision


# --------------------------------------------------------------------------- rolling update


def scaled(value: Any, total: int) -> int:
    """An int-or-percent of ``total``, percentages rounded up (``GetScaledValueFromIntOrPercent``)."""
    if value is None:
        return 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.endswith("%"):
        try:
            return math.ceil(int(text[:-1]) * total / 100)
        except ValueError:
            return 0
    try:
        return int(text)
    except ValueError:
        return 0


def rolling_params(ds: Obj) -> Obj:
    strategy = (ds.get("spec") or {}).get("updateStrategy") or {}
    rolling = strategy.get("rollingUpdate")
    return rolling if isinstance(rolling, dict) else {}


def allows_surge(ds: Obj) -> bool:
    """``AllowsSurge``: a non-zero ``maxSurge`` (judged against one node)."""
    return scaled(rolling_params(ds).get("maxSurge"), 1) != 0


def surge_and_unavailable(ds: Obj, desired: int) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) for ``desired`` nodes; both zero means one unavailable."""
    rolling = rolling_params(ds)
    surge = scaled(rolling.get("maxSurge"), desired)
    unavailable = scaled(rolling.get("maxUnavailable"), desired)
    if desired > 0 and surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def split_updated(pods: Iterable[Obj], hash_: str, generation: str | None) -> tuple[Obj | None, Obj | None, bool]:
    """``findUpdatedPodsOnNode``: (new pod, old pod, ok) among those not being deleted; not ok: several of a kind."""
    new: Obj | None = None
    old: Obj | None = None
    for pod in pods:
        if _deleting(pod):
            continue
        if is_updated(pod, hash_, generation):
            if new is not None:
                return None, None, False
            new = pod
        else:
            if old is not None:
                return None, None, False
            old = pod
    return new, old, True


@dataclass
class RollingStep:
    delete: list[Obj] = field(default_factory=list)
    create: list[str] = field(default_factory=list)  # node names


def rolling_update(node_pods: Mapping[str, Sequence[Obj]], fits: Mapping[str, Fit], *, max_surge: int,
                   max_unavailable: int, desired: int, hash_: str, generation: str | None,
                   min_ready_seconds: float, now: datetime) -> RollingStep:
    """One step of a RollingUpdate.

    ``node_pods``: the DaemonSet's pods by node, with an empty entry for every node that
    should run one and has none; ``fits``: each node's :class:`Fit` (missing: node gone).
    """
    def available(pod: Obj) -> bool:
        return is_available(pod, min_ready_seconds, now)

    step = RollingStep()
    if max_surge == 0:
        unavailable = 0
        replace: list[Obj] = []
        candidates: list[Obj] = []
        for pods in node_pods.values():
            new, old, ok = split_updated(pods, hash_, generation)
            if not ok or (new is None) == (old is None):
                unavailable += 1  # the per-node step sorts it out; count it unavailable meanwhile
            elif new is not None:
                if not available(new):
                    unavailable += 1
            elif old is not None:
                if not available(old):
                    replace.append(old)
                elif unavailable < max_unavailable:
                    candidates.append(old)
        room = min(max(0, max_unavailable - unavailable), len(candidates))
        step.delete = replace + candidates[:room]
        return step

    surging = 0
    available_count = 0
    allowed_nodes: list[str] = []
    candidate_nodes: list[str] = []
    sunset: list[Obj] = []  # available old pods on nodes that should no longer run one
    for node, pods in node_pods.items():
        new, old, ok = split_updated(pods, hash_, generation)
        if not ok:
            surging += 1
            continue
        if old is not None:
            available_count += available(old)
        elif new is not None:
            available_count += available(new)
        should_run = fits.get(node, Fit(False, False)).should_run
        if old is None:
            continue
        if new is None:
            if not available(old):
                if not should_run:
                    step.delete.append(old)
                else:
                    allowed_nodes.append(node)
            elif not should_run:
                sunset.append(old)
            elif surging < max_surge:
                candidate_nodes.append(node)
            continue
        if not available(new):
            surging += 1
        else:
            step.delete.append(old)
    deletable = min(available_count - desired, len(sunset))
    if deletable > 0:
        step.delete.extend(sunset[:deletable])
    room = min(max(0, max_surge - surging), len(candidate_nodes))
    step.create = allowed_nodes + candidate_nodes[:room]
    return step


# --------------------------------------------------------------------------- status


def daemon_status(fits: Mapping[str, Fit], node_pods: Mapping[str, Sequence[Obj]], *, hash_: str,
                  generation: str | None, min_ready_seconds: float, now: datetime) -> dict[str, int]:
    """The counters of ``DaemonSetStatus`` (``updateDaemonSetStatus``)."""
    desired = current = misscheduled = ready = updated = available = 0
    for node, fit in fits.items():
        pods = node_pods.get(node) or ()
        if not fit.should_run:
            misscheduled += bool(pods)
            continue
        desired += 1
        if not pods:
            continue
        current += 1
        pod = min(pods, key=creation_order_key)
        if is_ready(pod):
            ready += 1
            available += is_available(pod, min_ready_seconds, now)
        updated += is_updated(pod, hash_, generation)
    return {"currentNumberScheduled": current, "numberMisscheduled": misscheduled,
            "desiredNumberScheduled": desired, "numberReady": ready, "updatedNumberScheduled": updated,
            "numberAvailable": available, "numberUnavailable": desired - available}


#: status counters Go leaves out when zero (``omitempty``)
OMIT_ZERO = ("updatedNumberScheduled", "numberAvailable", "numberUnavailable")


def status_changed(old: Obj, counts: Mapping[str, int], generation: int, observe: bool) -> bool:
    if any(int(old.get(k) or 0) != v for k, v in counts.items()):
        return True
    return observe and int(old.get("observedGeneration") or 0) < generation


def new_status(old: Obj, counts: Mapping[str, int], generation: int, observe: bool) -> Obj:
    status = dict(old)
    for key, value in counts.items():
        if value or key not in OMIT_ZERO:
            status[key] = value
        else:
            status.pop(key, None)
    if observe:
        status["observedGeneration"] = generation
    return status


# --------------------------------------------------------------------------- history


def revision_data(ds: Obj) -> Obj:
    """What a ControllerRevision of a DaemonSet holds: a strategic patch replacing ``spec.template``."""
    template = dict((ds.get("spec") or {}).get("template") or {})
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def revision_hash(revision: Obj) -> str:
    """A revision's hash label (its name where the label is missing, as Kubernetes relabels)."""
    meta = revision.get("metadata") or {}
    return (meta.get("labels") or {}).get(CONTROLLER_REVISION_HASH_LABEL) or meta.get("name") or ""


def history_to_delete(old: Sequence[Obj], limit: int | None, live_hashes: set[str]) -> list[Obj]:
    """``cleanupHistory``: beyond ``limit`` old revisions, the oldest not named by a live pod."""
    excess = len(old) - (10 if limit is None else max(0, limit))
    if excess <= 0:
        return []
    doomed: list[Obj] = []
    for revision in sorted(old, key=revision_number):
        if excess <= 0:
            break
        if revision_hash(revision) in live_hashes:
            continue
        doomed.append(revision)
        excess -= 1
    return doomed


# --------------------------------------------------------------------------- failed pod backoff


class FailedPodBackoff:
    """Per (DaemonSet, node) exponential backoff for deleting failed pods (``flowcontrol.Backoff``)."""

    def __init__(self, initial: float = BACKOFF_INITIAL, maximum: float = BACKOFF_MAX) -> None:
        self.initial = initial
        self.maximum = maximum
        self._entries: dict[str, tuple[float, float]] = {}  # key -> (delay, last update)

    def delay(self, key: str) -> float:
        entry = self._entries.get(key)
        return entry[0] if entry else 0.0

    def in_backoff(self, key: str, now: float) -> bool:
        entry = self._entries.get(key)
        return entry is not None and now - entry[1] < entry[0]

    def next(self, key: str, now: float) -> None:
        entry = self._entries.get(key)
        if entry is None or now - entry[1] > 2 * self.maximum:
            self._entries[key] = (self.initial, now)
        else:
            self._entries[key] = (min(entry[0] * 2, self.maximum), now)

    def forget_prefix(self, prefix: str) -> None:
        for key in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[key]
