"""When a Job is done: the interim and terminal conditions, their reasons and messages.

Pure, no API access. Kubernetes facts followed (``pkg/controller/job`` ``syncJob``, as of
1.31, where the terminal condition waits for the pods):

* a Job reaches its end in two steps: first ``FailureTarget`` (or ``SuccessCriteriaMet``)
  True with the reason and message, while its remaining active pods are terminated;
  then, once no pod is terminating and every finished pod is counted, ``Failed`` (or
  ``Complete``) True with the same reason and message (``completionTime`` with
  Complete only);
* failure reasons, in the order they are tried: ``PodFailurePolicy`` (a FailJob rule
  matched a failed pod), ``BackoffLimitExceeded`` "Job has reached the specified backoff
  limit" (more failures than ``backoffLimit``, or -- with ``restartPolicy: OnFailure`` --
  as many container restarts), ``DeadlineExceeded`` "Job was active longer than specified
  deadline" (``activeDeadlineSeconds`` since ``startTime``, never while suspended);
  Indexed Jobs with ``backoffLimitPerIndex`` then ``MaxFailedIndexesExceeded`` "Job has
  exceeded the specified maximal number of failed indexes" and ``FailedIndexes`` "Job has
  failed indexes" (every index finished, some failed);
* success: ``SuccessPolicy`` (a ``successPolicy`` rule met), or ``CompletionsReached``
  "Reached expected number of succeeded pods" once ``completions`` pods succeeded (with
  ``completions`` unset: any) and none is active;
* a target condition already in the status stands: it is not decided again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ...client.base import Obj
from ..pod_control import parse_time
from .failure_policy import fail_job_message, match_success_policy
from .indexed import total
from .tracking import (
    COMPLETE,
    FAILED,
    FAILURE_TARGET,
    SUCCESS_CRITERIA_MET,
    Assessment,
    completions_of,
    find_condition,
    is_indexed,
    is_suspended,
    past_backoff_limit_on_failure,
)

POD_FAILURE_POLICY = ("PodFailurePolicy", "")
BACKOFF_LIMIT_EXCEEDED = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
DEADLINE_EXCEEDED = ("DeadlineExceeded", "Job was active longer than specified deadline")
MAX_FAILED_INDEXES_EXCEEDED = ("MaxFailedIndexesExceeded", "Job has exceeded the specified maximal number of failed indexes")
FAILED_INDEXES = ("FailedIndexes", "Job has failed indexes")
SUCCESS_POLICY = ("SuccessPolicy", "")
COMPLETIONS_REACHED = ("CompletionsReached", "Reached expected number of succeeded pods")


@dataclass(frozen=True)
class Finish:
    """A Job on its way to a terminal condition."""

    #: FailureTarget or SuccessCriteriaMet
    target: str
    reason: str
    message: str
    #: the target condition is in the stored status already
    recorded: bool = False

    @property
    def final(self) -> str:
        """The terminal condition it leads to: Failed or Complete."""
        return FAILED if self.target == FAILURE_TARGET else COMPLETE

    @property
    def failure(self) -> bool:
        return self.target == FAILURE_TARGET


def failure(reason: tuple[str, str], message: str | None = None) -> Finish:
    return Finish(FAILURE_TARGET, reason[0], message if message is not None else reason[1])


def deadline_left(job: Obj, now: datetime) -> float | None:
    """Seconds until ``activeDeadlineSeconds`` passes (<= 0: passed; None: no deadline running)."""
    deadline = (job.get("spec") or {}).get("activeDeadlineSeconds")
    started = parse_time((job.get("status") or {}).get("startTime"))
    if deadline is None or started is None or is_suspended(job):
        return None
    return float(deadline) - (now - started).total_seconds()


def _recorded(job: Obj) -> Finish | None:
    for target in (SUCCESS_CRITERIA_MET, FAILURE_TARGET):
        condition = find_condition(job, target)
        if condition is not None and condition.get("status") == "True":
            return Finish(target, condition.get("reason") or "", condition.get("message") or "", recorded=True)
    return None


def decide_failure(job: Obj, a: Assessment, now: datetime) -> tuple[Finish | None, float | None]:
    """The target the Job is failing towards or succeeding by policy (None: neither), and when to look again."""
    finish = _recorded(job)
    if finish is not None:
        return finish, None
    message = fail_job_message(job, a.pods)
    if message is not None:
        return failure(POD_FAILURE_POLICY, message), None
    spec = job.get("spec") or {}
    limit_value = spec.get("backoffLimit")
    backoff_limit = int(limit_value) if limit_value is not None else 6
    if a.failed > backoff_limit or past_backoff_limit_on_failure(job, a.pods):
        return failure(BACKOFF_LIMIT_EXCEEDED), None
    left = deadline_left(job, now)
    if left is not None and left <= 0:
        return failure(DEADLINE_EXCEEDED), None
    if is_indexed(job):
        completions = completions_of(job) or 0
        if a.failed_indexes is not None:
            failed = total(a.failed_indexes)
            limit = spec.get("maxFailedIndexes")
            if limit is not None and failed > int(limit):
                return failure(MAX_FAILED_INDEXES_EXCEEDED), None
            if failed > 0 and failed + total(a.succeeded_indexes) >= completions:
                return failure(FAILED_INDEXES), None
        met = match_success_policy(spec.get("successPolicy"), completions, a.succeeded_indexes)
        if met is not None:
            return Finish(SUCCESS_CRITERIA_MET, SUCCESS_POLICY[0], met), left
    return None, left


def completions_reached(job: Obj, succeeded: int, active: int) -> bool:
    completions = completions_of(job)
    if active > 0:
        return False
    return succeeded > 0 if completions is None else succeeded >= completions


def success() -> Finish:
    return Finish(SUCCESS_CRITERIA_MET, *COMPLETIONS_REACHED)
