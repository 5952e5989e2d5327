"""Counting a Job's finished pods exactly once, through finalizers and ``uncountedTerminatedPods``.

Pure functions, no API access: the controller (:mod:`.controller`) reads what to do
from them and does it. Kubernetes facts followed (``pkg/controller/job``
``job_controller.go`` ``trackJobStatusAndRemoveFinalizers``, ``tracking_utils.go``, the
"Jobs" page, "Job tracking with finalizers"):

* every pod a Job creates carries the finalizer ``batch.kubernetes.io/job-tracking``, so
  it cannot disappear before it is counted;
* a finished pod is counted in three steps: its uid goes into
  ``status.uncountedTerminatedPods.succeeded`` (or ``.failed``) and the status is
  written; then the pod's finalizer is removed; then uids whose pods no longer have the
  finalizer (or are gone) move from there into ``status.succeeded``/``status.failed``.
  A crash between any two steps neither loses nor doubles a pod;
* Indexed Jobs count successes by index instead (``status.completedIndexes``; the
  ``succeeded`` counter is its size), so a second success of an index is not counted;
* a pod counts as failed per :func:`~.failure_policy.is_pod_failed` (deleted pods too),
  unless the pod failure policy ignores it; pods whose finalizer is removed because the
  Job finished or is being deleted are counted the same way;
* ``status.active`` is the pods neither finished nor being deleted, ``status.ready``
  the active ones Ready, ``status.terminating`` those being deleted and not finished;
* conditions: ``ensure_condition`` replaces a condition whose status, reason or message
  changes (new transition time), and never adds one with status False.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from ...client.base import Obj
from ..pod_control import is_active, is_ready, is_terminal
from . import indexed
from .failure_policy import FAIL_INDEX, is_pod_failed, match_pod_failure_policy
from .indexed import Intervals

JOB_TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
#: at most this many uids wait in ``uncountedTerminatedPods`` (Kubernetes' MaxUncountedPods)
MAX_UNCOUNTED_PODS = 500

COMPLETE = "Complete"
FAILED = "Failed"
FAILURE_TARGET = "FailureTarget"
SUCCESS_CRITERIA_MET = "SuccessCriteriaMet"
SUSPENDED = "Suspended"


def has_tracking_finalizer(pod: Obj) -> bool:
    return JOB_TRACKING_FINALIZER in ((pod.get("metadata") or {}).get("finalizers") or ())


def remove_finalizer_patch(uid: str = "") -> Obj:
    """The strategic merge patch removing the tracking finalizer (and nothing else).

    With ``uid``, the patch also names the pod's uid, which the API server takes as a
    precondition (409 Conflict when the pod of that name is another one).
    """
    meta: Obj = {"$deleteFromPrimitiveList/finalizers": [JOB_TRACKING_FINALIZER]}
    if uid:
        meta["uid"] = uid
    return {"metadata": meta}


def uid_of(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


def is_indexed(job: Obj) -> bool:
    return (job.get("spec") or {}).get("completionMode") == "Indexed"


def completions_of(job: Obj) -> int | None:
    value = (job.get("spec") or {}).get("completions")
    return int(value) if value is not None else None


def has_backoff_limit_per_index(job: Obj) -> bool:
    return (job.get("spec") or {}).get("backoffLimitPerIndex") is not None


def is_suspended(job: Obj) -> bool:
    return bool((job.get("spec") or {}).get("suspend"))


# --------------------------------------------------------------------------- conditions


def find_condition(job: Obj, type_: str) -> Obj | None:
    for condition in (job.get("status") or {}).get("conditions") or ():
        if condition.get("type") == type_:
            return condition
    return None


def condition_true(job: Obj, type_: str) -> bool:
    condition = find_condition(job, type_)
    return condition is not None and condition.get("status") == "True"


def is_finished(job: Obj) -> bool:
    """Kubernetes' ``IsJobFinished``: Complete or Failed is True."""
    return condition_true(job, COMPLETE) or condition_true(job, FAILED)


def new_condition(type_: str, status: str, reason: str, message: str, now: str) -> Obj:
    return {"type": type_, "status": status, "lastProbeTime": now, "lastTransitionTime": now,
            "reason": reason, "message": message}


def ensure_condition(conditions: list[Obj], type_: str, status: str, reason: str, message: str,
                     now: str) -> tuple[list[Obj], bool]:
    """Kubernetes' ``ensureJobConditionStatus``: the list with the condition so, and whether it changed."""
    out = [dict(c) for c in conditions]
    for i, condition in enumerate(out):
        if condition.get("type") == type_:
            if (condition.get("status"), condition.get("reason"), condition.get("message")) != (status, reason, message):
                out[i] = new_condition(type_, status, reason, message, now)
                return out, True
            return out, False
    if status != "False":
        out.append(new_condition(type_, status, reason, message, now))
        return out, True
    return out, False


# --------------------------------------------------------------------------- the pods of one sync


@dataclass
class Assessment:
    """What a Job's pods say before the sync acts (Kubernetes' ``syncJobCtx``)."""

    pods: list[Obj]
    active: list[Obj]
    terminating: int
    ready: int
    uncounted_succeeded: set[str]
    uncounted_failed: set[str]
    #: finished pods not counted yet (with the finalizer, not in uncountedTerminatedPods)
    new_succeeded: list[Obj]
    new_failed: list[Obj]
    #: new failures the pod failure policy does not ignore
    new_failed_counted: int
    succeeded: int
    failed: int
    prev_succeeded_indexes: Intervals = field(default_factory=list)
    succeeded_indexes: Intervals = field(default_factory=list)
    #: None unless the Job has ``backoffLimitPerIndex``
    failed_indexes: Intervals | None = None


def _uncounted(job: Obj) -> tuple[set[str], set[str]]:
    uncounted = (job.get("status") or {}).get("uncountedTerminatedPods") or {}
    return set(uncounted.get("succeeded") or ()), set(uncounted.get("failed") or ())


def _valid_for_counting(job: Obj, pod: Obj, expected_rm: set[str]) -> bool:
    if not has_tracking_finalizer(pod) or uid_of(pod) in expected_rm:
        return False
    return not is_indexed(job) or indexed.completion_index(pod, completions_of(job)) is not None


def is_index_failed(job: Obj, pod: Obj) -> bool:
    """With ``backoffLimitPerIndex``: the pod's failure fails its index (FailIndex, or the limit passed)."""
    if not is_pod_failed(pod, job):
        return False
    spec = job.get("spec") or {}
    match = match_pod_failure_policy(spec.get("podFailurePolicy"), pod)
    if match.action == FAIL_INDEX:
        return True
    if not match.counts:
        return False
    return indexed.index_failure_count(pod) + 1 > int(spec.get("backoffLimitPerIndex") or 0)


def assess(job: Obj, pods: list[Obj], expected_rm: set[str]) -> Assessment:
    """Count the Job's pods: active, ready, terminating, and the finished ones not yet counted."""
    spec, status = job.get("spec") or {}, job.get("status") or {}
    active = [p for p in pods if is_active(p)]
    terminating = sum(1 for p in pods if (p.get("metadata") or {}).get("deletionTimestamp") and not is_terminal(p))
    ready = sum(1 for p in active if is_ready(p))
    unc_succeeded, unc_failed = _uncounted(job)
    new_succeeded, new_failed = [], []
    for pod in pods:
        if not _valid_for_counting(job, pod, expected_rm):
            continue
        uid = uid_of(pod)
        if (pod.get("status") or {}).get("phase") == "Succeeded":
            if uid not in unc_succeeded:
                new_succeeded.append(pod)
        elif is_pod_failed(pod, job) and uid not in unc_failed:
            new_failed.append(pod)
    policy = spec.get("podFailurePolicy")
    counted = sum(1 for p in new_failed if match_pod_failure_policy(policy, p).counts)
    out = Assessment(
        pods=pods, active=active, terminating=terminating, ready=ready,
        uncounted_succeeded=unc_succeeded, uncounted_failed=unc_failed,
        new_succeeded=new_succeeded, new_failed=new_failed, new_failed_counted=counted,
        succeeded=int(status.get("succeeded") or 0) + len(new_succeeded) + len(unc_succeeded),
        failed=int(status.get("failed") or 0) + counted + len(unc_failed))
    if is_indexed(job):
        completions = completions_of(job) or 0
        out.prev_succeeded_indexes = indexed.parse_intervals(status.get("completedIndexes"), completions)
        done = [indexed.completion_index(p, completions) for p in pods
                if (p.get("status") or {}).get("phase") == "Succeeded" and has_tracking_finalizer(p)]
        out.succeeded_indexes = indexed.with_indexes(out.prev_succeeded_indexes, [i for i in done if i is not None])
        out.succeeded = indexed.total(out.succeeded_indexes)
        if has_backoff_limit_per_index(job):
            prev_failed = indexed.parse_intervals(status.get("failedIndexes"), completions)
            failed_now = [indexed.completion_index(p, completions) for p in pods
                          if has_tracking_finalizer(p) and is_index_failed(job, p)]
            out.failed_indexes = indexed.with_indexes(prev_failed, [i for i in failed_now if i is not None])
    return out


def past_backoff_limit_on_failure(job: Obj, pods: list[Obj]) -> bool:
    """``restartPolicy: OnFailure``: the running pods' container restarts reach ``backoffLimit``."""
    spec = job.get("spec") or {}
    if ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy") != "OnFailure":
        return False
    restarts = 0
    for pod in pods:
        status = pod.get("status") or {}
        if status.get("phase") in ("Running", "Pending"):
            for cs in [*(status.get("initContainerStatuses") or ()), *(status.get("containerStatuses") or ())]:
                restarts += int(cs.get("restartCount") or 0)
    limit = int(spec.get("backoffLimit") or 0)
    return restarts > 0 if limit == 0 else restarts >= limit


# --------------------------------------------------------------------------- counting and finalizers


def clean_uncounted(status: Obj, uids_with_finalizer: set[str]) -> bool:
    """Move uncounted uids whose pods lost the finalizer (or are gone) into the counters; whether any moved."""
    uncounted = status.setdefault("uncountedTerminatedPods", {})
    changed = False
    for kind in ("succeeded", "failed"):
        uids = list(uncounted.get(kind) or ())
        keep = [u for u in uids if u in uids_with_finalizer]
        if len(keep) != len(uids):
            changed = True
            status[kind] = int(status.get(kind) or 0) + len(uids) - len(keep)
        if keep:
            uncounted[kind] = keep
        else:
            uncounted.pop(kind, None)
    return changed


def can_remove_finalizer(job: Obj, finishing: bool, pod: Obj, considered_failed: bool) -> bool:
    """Kubernetes' ``canRemoveFinalizer``: the Job is going (deleted, finishing), or the pod is done with."""
    if (job.get("metadata") or {}).get("deletionTimestamp") or finishing:
        return True
    if (pod.get("status") or {}).get("phase") == "Succeeded":
        return True
    return considered_failed


@dataclass
class Tally:
    """The outcome of :func:`tally`: what to write first and which finalizers to remove then."""

    remove_finalizers: list[Obj]
    changed: bool
    #: the uncounted limit was reached: more pods wait for the next sync
    capped: bool


def tally(job: Obj, a: Assessment, status: Obj, expected_rm: set[str], finishing_failure: bool,
          finishing: bool) -> Tally:
    """Add the newly finished pods of ``a`` to ``status`` (uncounted uids, completed indexes); mutates ``status``.

    ``finishing``: the Job reached a terminal target (every pod's finalizer goes);
    ``finishing_failure``: it is failing (pods still running count as failed).
    """
    policy = (job.get("spec") or {}).get("podFailurePolicy")
    uncounted = status.setdefault("uncountedTerminatedPods", {})
    succeeded_uids = list(uncounted.get("succeeded") or ())
    failed_uids = list(uncounted.get("failed") or ())
    completions = completions_of(job)
    index_mode = is_indexed(job)
    pods = sorted(a.pods, key=lambda p: indexed.completion_index(p) or 0) if index_mode else a.pods
    changed, capped = False, False
    remove: list[Obj] = []
    new_indexes: list[int] = []
    prev = indexed.members(a.prev_succeeded_indexes)
    for pod in pods:
        uid = uid_of(pod)
        if not has_tracking_finalizer(pod) or uid in expected_rm:
            continue
        failed = is_pod_failed(pod, job)
        if not can_remove_finalizer(job, finishing, pod, failed):
            continue
        remove.append(pod)
        phase = (pod.get("status") or {}).get("phase")
        if phase == "Succeeded" and uid not in a.uncounted_failed:
            if index_mode:
                ix = indexed.completion_index(pod, completions)
                if ix is not None and ix not in prev:
                    new_indexes.append(ix)
                    prev.add(ix)
                    changed = True
            elif uid not in succeeded_uids:
                succeeded_uids.append(uid)
                changed = True
        elif failed or finishing_failure:
            ix = indexed.completion_index(pod, completions)
            if uid not in failed_uids and (not index_mode or ix is not None):
                if match_pod_failure_policy(policy, pod).counts:
                    failed_uids.append(uid)
                    changed = True
        if len(new_indexes) + len(succeeded_uids) + len(failed_uids) >= MAX_UNCOUNTED_PODS:
            capped = True
            break
    for kind, uids in (("succeeded", succeeded_uids), ("failed", failed_uids)):
        if uids:
            uncounted[kind] = uids
        else:
            uncounted.pop(kind, None)
    if index_mode:
        done = indexed.with_indexes(a.succeeded_indexes, new_indexes)
        text = indexed.format_intervals(done)
        if text != (status.get("completedIndexes") or ""):
            changed = True
        if indexed.total(done):
            status["succeeded"] = indexed.total(done)
        else:
            status.pop("succeeded", None)
        if text:
            status["completedIndexes"] = text
        else:
            status.pop("completedIndexes", None)
        if a.failed_indexes is not None:
            failed_text = indexed.format_intervals(a.failed_indexes)
            if status.get("failedIndexes") != failed_text:
                status["failedIndexes"] = failed_text
                changed = True
    return Tally(remove, changed, capped)


def counters_view(status: Obj) -> tuple:
    """The parts of a status the controller keeps up to date (to tell whether a write is due)."""
    uncounted = status.get("uncountedTerminatedPods") or {}
    return (status.get("active"), status.get("ready"), status.get("terminating"), status.get("succeeded"),
            status.get("failed"), tuple(uncounted.get("succeeded") or ()), tuple(uncounted.get("failed") or ()),
            status.get("completedIndexes"), status.get("failedIndexes"), status.get("startTime"),
            copy.deepcopy(status.get("conditions")))
