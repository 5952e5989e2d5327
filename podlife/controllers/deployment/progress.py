"""A Deployment's status: counts, the Available and Progressing conditions, the progress deadline.

Pure (Kubernetes' ``deployment/sync.go`` ``calculateStatus``, ``progress.go``
``syncRolloutStatus`` and ``requeueStuckDeployment``, and the condition helpers of
``deployment_util.go``):

* Counts over all ReplicaSets: ``replicas`` (pods they have), ``updatedReplicas`` (the
  new ReplicaSet's), ``readyReplicas``, ``availableReplicas``, ``unavailableReplicas``
  (asked for less available, never below 0); ``observedGeneration`` is the
  Deployment's generation; ``collisionCount`` is kept. Zero counts are left out, as
  Go's ``omitempty`` does.
* ``Available``: True ``MinimumReplicasAvailable`` while at least ``replicas -
  maxUnavailable`` pods are available, else False ``MinimumReplicasUnavailable``.
* ``Progressing`` (only with a progress deadline): True ``NewReplicaSetAvailable`` once
  complete (all updated, no old pods, all available, generation observed); True
  ``ReplicaSetUpdated`` whenever progress was made (more updated, ready or available
  pods, fewer old ones) -- ``lastUpdateTime`` moves, ``lastTransitionTime`` stays if it
  was True; False ``ProgressDeadlineExceeded`` once ``progressDeadlineSeconds`` passed
  since its ``lastUpdateTime`` without progress. A finished rollout is not estimated
  again. Pausing and resuming set Unknown ``DeploymentPaused``/``DeploymentResumed``
  (never over a timed-out condition), so the pause does not count against the deadline.
* Setting a condition keeps it when status and reason are unchanged; a change of reason
  with the same status keeps ``lastTransitionTime``.
* A ``ReplicaFailure`` condition of the new (else any) ReplicaSet is copied to the
  Deployment, and removed when none has one.
* :func:`requeue_after`: when a stuck rollout should be looked at again to notice
  the deadline (``lastUpdateTime + progressDeadlineSeconds - now``, plus a second).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from ...client.base import Obj
from ...machinery.timeutil import format_rfc3339
from ..pod_control import parse_time
from .replicasets import total_actual, total_available, total_ready, total_spec
from .rolling import desired, max_unavailable

AVAILABLE = "Available"
PROGRESSING = "Progressing"
REPLICA_FAILURE = "ReplicaFailure"

MINIMUM_REPLICAS_AVAILABLE = "MinimumReplicasAvailable"
MINIMUM_REPLICAS_UNAVAILABLE = "MinimumReplicasUnavailable"
NEW_RS_REASON = "NewReplicaSetCreated"
FOUND_NEW_RS_REASON = "FoundNewReplicaSet"
RS_UPDATED_REASON = "ReplicaSetUpdated"
NEW_RS_AVAILABLE_REASON = "NewReplicaSetAvailable"
TIMED_OUT_REASON = "ProgressDeadlineExceeded"
PAUSED_REASON = "DeploymentPaused"
RESUMED_REASON = "DeploymentResumed"
FAILED_RS_CREATE_REASON = "ReplicaSetCreateError"

#: ``math.MaxInt32``: a deadline that means none
NO_DEADLINE = 2**31 - 1


def new_condition(type_: str, status: str, reason: str, message: str, now: datetime) -> Obj:
    stamp = format_rfc3339(now)
    return {"type": type_, "status": status, "lastUpdateTime": stamp, "lastTransitionTime": stamp,
            "reason": reason, "message": message}


def get_condition(status: Obj | None, type_: str) -> Obj | None:
    for cond in (status or {}).get("conditions") or ():
        if cond.get("type") == type_:
            return dict(cond)
    return None


def set_condition(status: Obj, condition: Obj) -> None:
    """``SetDeploymentCondition``: same status and reason: kept; same status: its transition time kept."""
    current = get_condition(status, condition["type"])
    if current is not None and current.get("status") == condition["status"] and current.get("reason") == condition["reason"]:
        return
    condition = dict(condition)
    if current is not None and current.get("status") == condition["status"]:
        condition["lastTransitionTime"] = current.get("lastTransitionTime")
    status["conditions"] = [*(c for c in status.get("conditions") or () if c.get("type") != condition["type"]), condition]


def remove_condition(status: Obj, type_: str) -> None:
    status["conditions"] = [c for c in status.get("conditions") or () if c.get("type") != type_]


def progress_deadline(deployment: Obj) -> int | None:
    """``progressDeadlineSeconds`` (None: none, as for ``MaxInt32``)."""
    value = (deployment.get("spec") or {}).get("progressDeadlineSeconds")
    if value is None or int(value) == NO_DEADLINE:
        return None
    return int(value)


def calculate_status(all_rss: Sequence[Obj | None], new_rs: Obj | None, deployment: Obj, now: datetime) -> Obj:
    """``calculateStatus``: the counts and the Available condition (other conditions copied)."""
    old = deployment.get("status") or {}
    available = total_available(all_rss)
    status: Obj = {
        "observedGeneration": int(deployment["metadata"].get("generation") or 0),
        "replicas": total_actual(all_rss),
        "updatedReplicas": total_actual([new_rs]),
        "readyReplicas": total_ready(all_rss),
        "availableReplicas": available,
        "unavailableReplicas": max(0, total_spec(all_rss) - available),
        "conditions": copy.deepcopy(old.get("conditions") or []),
    }
    if old.get("collisionCount") is not None:
        status["collisionCount"] = old["collisionCount"]
    if available >= desired(deployment) - max_unavailable(deployment):
        set_condition(status, new_condition(AVAILABLE, "True", MINIMUM_REPLICAS_AVAILABLE,
                                            "Deployment has minimum availability.", now))
    else:
        set_condition(status, new_condition(AVAILABLE, "False", MINIMUM_REPLICAS_UNAVAILABLE,
                                            "Deployment does not have minimum availability.", now))
    return status


def _count(status: Obj | None, field: str) -> int:
    return int((status or {}).get(field) or 0)


def complete(deployment: Obj, status: Obj) -> bool:
    """``DeploymentComplete``: every pod updated and available, no old ones, the generation observed."""
    replicas = desired(deployment)
    return (_count(status, "updatedReplicas") == replicas and _count(status, "replicas") == replicas
            and _count(status, "availableReplicas") == replicas
            and _count(status, "observedGeneration") >= int(deployment["metadata"].get("generation") or 0))


def progressing(deployment: Obj, status: Obj) -> bool:
    """``DeploymentProgressing``: more updated, ready or available pods than before, or fewer old ones."""
    old = deployment.get("status") or {}
    old_old = _count(old, "replicas") - _count(old, "updatedReplicas")
    new_old = _count(status, "replicas") - _count(status, "updatedReplicas")
    return (_count(status, "updatedReplicas") > _count(old, "updatedReplicas") or new_old < old_old
            or _count(status, "readyReplicas") > _count(old, "readyReplicas")
            or _count(status, "availableReplicas") > _count(old, "availableReplicas"))


def _last_update(condition: Obj) -> datetime:
    return parse_time(condition.get("lastUpdateTime")) or datetime.fromtimestamp(0, timezone.utc)


def timed_out(deployment: Obj, status: Obj, now: datetime) -> bool:
    """``DeploymentTimedOut``: no progress for ``progressDeadlineSeconds`` since the condition's last update."""
    deadline = progress_deadline(deployment)
    condition = get_condition(status, PROGRESSING)
    if deadline is None or condition is None or condition.get("reason") == NEW_RS_AVAILABLE_REASON:
        return False
    if condition.get("reason") == TIMED_OUT_REASON:
        return True
    return _last_update(condition) + timedelta(seconds=deadline) < now


def _about(new_rs: Obj | None, deployment: Obj, rs_text: str, deployment_text: str) -> str:
    if new_rs is not None:
        return rs_text % new_rs["metadata"]["name"]
    return deployment_text % deployment["metadata"]["name"]


def replica_failures(all_rss: Sequence[Obj | None], new_rs: Obj | None) -> list[Obj]:
    """``getReplicaFailures``: the new ReplicaSet's ReplicaFailure conditions, else any other's, as Deployment conditions."""
    def of(rs: Obj | None) -> list[Obj]:
        out = []
        for cond in ((rs or {}).get("status") or {}).get("conditions") or ():
            if cond.get("type") == REPLICA_FAILURE:
                out.append({"type": REPLICA_FAILURE, "status": cond.get("status"),
                            "lastUpdateTime": cond.get("lastTransitionTime"),
                            "lastTransitionTime": cond.get("lastTransitionTime"),
                            "reason": cond.get("reason"), "message": cond.get("message")})
        return out
    found = of(new_rs)
    if found:
        return found
    return [c for rs in all_rss for c in of(rs)]


def rollout_status(all_rss: Sequence[Obj | None], new_rs: Obj | None, deployment: Obj, now: datetime) -> Obj:
    """``syncRolloutStatus``' new status: counts, Available, Progressing estimated, ReplicaFailure copied."""
    status = calculate_status(all_rss, new_rs, deployment, now)
    deadline = progress_deadline(deployment)
    if deadline is None:
        remove_condition(status, PROGRESSING)
    current = get_condition(deployment.get("status"), PROGRESSING)
    finished = (_count(status, "replicas") == _count(status, "updatedReplicas") and current is not None
                and current.get("reason") == NEW_RS_AVAILABLE_REASON)
    if deadline is not None and not finished:
        if complete(deployment, status):
            set_condition(status, new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE_REASON, _about(
                new_rs, deployment, 'ReplicaSet "%s" has successfully progressed.',
                'Deployment "%s" has successfully progressed.'), now))
        elif progressing(deployment, status):
            condition = new_condition(PROGRESSING, "True", RS_UPDATED_REASON, _about(
                new_rs, deployment, 'ReplicaSet "%s" is progressing.', 'Deployment "%s" is progressing.'), now)
            if current is not None:
                if current.get("status") == "True":
                    condition["lastTransitionTime"] = current.get("lastTransitionTime")
                remove_condition(status, PROGRESSING)
            set_condition(status, condition)
        elif timed_out(deployment, status, now):
            set_condition(status, new_condition(PROGRESSING, "False", TIMED_OUT_REASON, _about(
                new_rs, deployment, 'ReplicaSet "%s" has timed out progressing.',
                'Deployment "%s" has timed out progressing.'), now))
    failures = replica_failures(all_rss, new_rs)
    if failures:
        set_condition(status, failures[0])
    else:
        remove_condition(status, REPLICA_FAILURE)
    return status


def requeue_after(deployment: Obj, status: Obj, now: datetime) -> float | None:
    """``requeueStuckDeployment``: seconds until a rollout without progress should be checked (None: no need)."""
    deadline = progress_deadline(deployment)
    current = get_condition(deployment.get("status"), PROGRESSING)
    if deadline is None or current is None:
        return None
    if complete(deployment, status) or current.get("reason") == TIMED_OUT_REASON:
        return None
    after = (_last_update(current) + timedelta(seconds=deadline) - now).total_seconds()
    if after < 1:
        return 0.5
    return after + 1


def paused_condition(deployment: Obj, now: datetime) -> Obj | None:
    """``checkPausedConditions``: the status with DeploymentPaused/DeploymentResumed set, or None when unchanged."""
    if progress_deadline(deployment) is None:
        return None
    current = get_condition(deployment.get("status"), PROGRESSING)
    if current is not None and current.get("reason") == TIMED_OUT_REASON:
        return None
    paused_now = current is not None and current.get("reason") == PAUSED_REASON
    paused = bool((deployment.get("spec") or {}).get("paused"))
    status = copy.deepcopy(deployment.get("status") or {})
    if paused and not paused_now:
        set_condition(status, new_condition(PROGRESSING, "Unknown", PAUSED_REASON, "Deployment is paused", now))
    elif not paused and paused_now:
        set_condition(status, new_condition(PROGRESSING, "Unknown", RESUMED_REASON, "Deployment is resumed", now))
    else:
        return None
    return status


def wire_status(status: Obj) -> Obj:
    """The status as the API serves it: zero counts and empty lists left out (``omitempty``), collisionCount kept."""
    out: dict[str, Any] = {}
    for key, value in status.items():
        if key == "collisionCount":
            if value is not None:
                out[key] = value
        elif value not in (None, 0, [], {}):
            out[key] = value
    return out


def same_status(a: Obj | None, b: Obj | None) -> bool:
    return wire_status(a or {}) == wire_status(b or {})
