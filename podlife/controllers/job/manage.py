"""Which pods a Job should create or delete now: parallelism, completions, indexes, suspension.

Pure, no API access. Kubernetes facts followed (``pkg/controller/job`` ``manageJob``,
``activePodsForRemoval``, ``firstPendingIndexes``):

* a suspended Job deletes every active pod (their finalizers removed first, so they are
  not counted as failures);
* the pods wanted active: ``parallelism``, and never more than the completions still
  missing (``completions - succeeded``); with ``completions`` unset, once any pod
  succeeded no new pod starts and the running ones are left to finish;
* more active pods than wanted: the surplus is deleted (Indexed Jobs first drop pods
  whose index is invalid, already succeeded, failed, or taken by another pod; then the
  pods a scale-down ranks first) -- and a sync that deletes does not also create;
* fewer: pods are created, at most :data:`MAX_POD_CREATE_DELETE_PER_SYNC` per sync, after
  the failure backoff; with ``podReplacementPolicy: Failed`` pods still terminating count
  as active, so a replacement waits for them to be gone;
* Indexed Jobs create the lowest indexes that are not succeeded, failed, or held by an
  active pod (or a terminating one, with ``podReplacementPolicy: Failed``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...client.base import Obj
from ..pod_control import is_terminal, rank_for_deletion
from . import indexed
from .backoff import finished_at
from .failure_policy import is_pod_failed, match_pod_failure_policy
from .tracking import Assessment, completions_of, is_indexed, is_suspended

#: Kubernetes' MaxPodCreateDeletePerSync
MAX_POD_CREATE_DELETE_PER_SYNC = 500


@dataclass
class ManagePlan:
    #: active pods to delete (their tracking finalizer removed first)
    delete: list[Obj] = field(default_factory=list)
    #: pods to create: one entry each, the completion index (None for NonIndexed Jobs)
    create: list[int | None] = field(default_factory=list)
    #: creation was wanted but waits for the failure backoff this long (seconds)
    wait: float = 0.0


def wanted_active(job: Obj, a: Assessment) -> int:
    spec = job.get("spec") or {}
    parallelism = int(spec.get("parallelism") or 0)
    completions = completions_of(job)
    if completions is None:
        return len(a.active) if a.succeeded > 0 else parallelism
    return max(0, min(parallelism, completions - a.succeeded))


def _indexed_surplus(job: Obj, a: Assessment) -> list[Obj]:
    """Active pods of an Indexed Job that must go whatever the counts: bad, done, failed or duplicate indexes."""
    completions = completions_of(job)
    done = indexed.members(a.succeeded_indexes)
    failed = indexed.members(a.failed_indexes or [])
    seen: set[int] = set()
    surplus = []
    for pod in reversed(rank_for_deletion(a.active)):  # the pod ranked last (to keep) claims its index first
        ix = indexed.completion_index(pod, completions)
        if ix is None or ix in done or ix in failed or ix in seen:
            surplus.append(pod)
        else:
            seen.add(ix)
    return surplus


def pods_for_removal(job: Obj, a: Assessment, at_least: int) -> list[Obj]:
    """``activePodsForRemoval``: at least ``at_least`` active pods, the first to go first."""
    if not is_indexed(job):
        return rank_for_deletion(a.active)[:at_least]
    surplus = _indexed_surplus(job, a)
    taken = {id(p) for p in surplus}
    rest = [p for p in rank_for_deletion(a.active) if id(p) not in taken]
    return surplus + rest[:max(0, at_least - len(surplus))]


def _excluded_indexes(job: Obj, a: Assessment) -> set[int]:
    completions = completions_of(job)
    excluded = indexed.members(a.succeeded_indexes) | indexed.members(a.failed_indexes or [])
    only_failed = (job.get("spec") or {}).get("podReplacementPolicy") == "Failed"
    for pod in a.pods:
        if is_terminal(pod):
            continue
        if (pod.get("metadata") or {}).get("deletionTimestamp") and not only_failed:
            continue
        ix = indexed.completion_index(pod, completions)
        if ix is not None:
            excluded.add(ix)
    return excluded


def plan_manage(job: Obj, a: Assessment, backoff_wait: float, index_waits: dict[int, float] | None = None) -> ManagePlan:
    """What to delete and create for a Job that is not finishing.

    ``backoff_wait``: the Job's failure backoff left; ``index_waits``: with
    ``backoffLimitPerIndex``, each index's instead.
    """
    if is_suspended(job):
        return ManagePlan(delete=rank_for_deletion(a.active))
    want = wanted_active(job, a)
    active = len(a.active)
    remove = pods_for_removal(job, a, max(0, active - want))[:MAX_POD_CREATE_DELETE_PER_SYNC]
    if remove:
        return ManagePlan(delete=remove)
    terminating = a.terminating if (job.get("spec") or {}).get("podReplacementPolicy") == "Failed" else 0
    diff = want - terminating - active
    if diff <= 0:
        return ManagePlan()
    if backoff_wait > 0:
        return ManagePlan(wait=backoff_wait)
    diff = min(diff, MAX_POD_CREATE_DELETE_PER_SYNC)
    if not is_indexed(job):
        return ManagePlan(create=[None] * diff)
    found = indexed.first_pending_indexes(diff, completions_of(job) or 0, _excluded_indexes(job, a))
    waits = index_waits or {}
    ready = [i for i in found if waits.get(i, 0.0) <= 0]
    if not ready and found:
        return ManagePlan(wait=min(waits[i] for i in found))
    return ManagePlan(create=list(ready))


def last_index_failures(job: Obj, a: Assessment) -> list[tuple[int, int, float | None]]:
    """With ``backoffLimitPerIndex``: per index, its failures so far and when the last failed pod finished."""
    completions = completions_of(job)
    last: dict[int, tuple[int, float | None]] = {}
    for pod in a.pods:
        ix = indexed.completion_index(pod, completions)
        if ix is None or not is_pod_failed(pod, job):
            continue
        annotations = (pod.get("metadata") or {}).get("annotations") or {}
        try:
            ignored = int(annotations.get(indexed.INDEX_IGNORED_FAILURE_COUNT_KEY) or 0)
        except ValueError:
            ignored = 0
        failures = indexed.index_failure_count(pod) + ignored + 1
        at = finished_at(pod)
        previous = last.get(ix)
        if previous is None or failures > previous[0]:
            last[ix] = (failures, at)
    return [(ix, failures, at) for ix, (failures, at) in last.items()]


def index_failure_counts(job: Obj, a: Assessment) -> dict[int, int]:
    """With ``backoffLimitPerIndex``: per index, the failure count a replacement pod carries."""
    policy = (job.get("spec") or {}).get("podFailurePolicy")
    completions = completions_of(job)
    counts: dict[int, int] = {}
    for pod in a.pods:
        ix = indexed.completion_index(pod, completions)
        if ix is None or not is_pod_failed(pod, job):
            continue
        count = indexed.index_failure_count(pod) + (1 if match_pod_failure_policy(policy, pod).counts else 0)
        counts[ix] = max(counts.get(ix, 0), count)
    return counts
