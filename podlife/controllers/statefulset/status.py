"""A StatefulSet's status, counted from its pods.

Pure functions. Kubernetes facts followed (``stateful_set_control.go``
``computeReplicaStatus``, ``completeRollingUpdate``, ``inconsistentStatus``):

* ``replicas``: pods that exist (have a phase); ``readyReplicas``: Running and Ready;
  ``availableReplicas``: ready for ``minReadySeconds``; ``currentReplicas`` /
  ``updatedReplicas``: pods not being deleted whose ``controller-revision-hash`` is the
  current / update revision;
* a RollingUpdate is complete when every pod is updated and ready: then the current
  revision becomes the update revision (``kubectl rollout status`` waits for exactly that);
* the status is written only when one of its fields, or ``observedGeneration``, changed.
"""

from __future__ import annotations

from datetime import datetime

from ...client.base import Obj
from ..pod_control import is_available, is_ready
from .identity import revision_of

FIELDS = ("replicas", "readyReplicas", "currentReplicas", "updatedReplicas", "availableReplicas",
          "currentRevision", "updateRevision", "collisionCount", "observedGeneration")


def is_created(pod: Obj | None) -> bool:
    return pod is not None and bool((pod.get("status") or {}).get("phase"))


def is_running_and_ready(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and is_ready(pod)


def is_running_and_available(pod: Obj, min_ready_seconds: float, now: datetime | None = None) -> bool:
    return is_running_and_ready(pod) and is_available(pod, min_ready_seconds, now)


def is_terminating(pod: Obj) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def is_healthy(pod: Obj) -> bool:
    return is_running_and_ready(pod) and not is_terminating(pod)


def min_ready_seconds(sts: Obj) -> int:
    return int((sts.get("spec") or {}).get("minReadySeconds") or 0)


def replica_status(sts: Obj, pods: list[Obj], current: str, update: str, collision_count: int,
                   now: datetime | None = None) -> Obj:
    """The status the pods show (``computeReplicaStatus``), before this sync acts."""
    status: Obj = {"observedGeneration": sts["metadata"].get("generation") or 0, "replicas": 0, "readyReplicas": 0,
                   "currentReplicas": 0, "updatedReplicas": 0, "availableReplicas": 0,
                   "currentRevision": current, "updateRevision": update, "collisionCount": collision_count}
    min_ready = min_ready_seconds(sts)
    for pod in pods:
        if is_created(pod):
            status["replicas"] += 1
        if is_running_and_ready(pod):
            status["readyReplicas"] += 1
            if is_running_and_available(pod, min_ready, now):
                status["availableReplicas"] += 1
        if is_created(pod) and not is_terminating(pod):
            revision = revision_of(pod)
            if revision == current:
                status["currentReplicas"] += 1
            if revision == update:
                status["updatedReplicas"] += 1
    return status


def complete_rolling_update(sts: Obj, status: Obj) -> Obj:
    """The status with the update revision made current once a RollingUpdate is done."""
    strategy = ((sts.get("spec") or {}).get("updateStrategy") or {}).get("type") or "RollingUpdate"
    if strategy == "RollingUpdate" and status["updatedReplicas"] == status["replicas"] \
            and status["readyReplicas"] == status["replicas"]:
        return {**status, "currentReplicas": status["updatedReplicas"], "currentRevision": status["updateRevision"]}
    return status


def status_changed(sts: Obj, status: Obj) -> bool:
    """Whether writing ``status`` changes anything (``inconsistentStatus``)."""
    old = sts.get("status") or {}
    return any((old.get(f) or 0) != (status.get(f) or 0) for f in FIELDS)


def merged_status(sts: Obj, status: Obj) -> Obj:
    """The set's stored status with the counted fields replaced (conditions and others kept)."""
    merged = dict(sts.get("status") or {})
    merged.update(status)
    return merged
