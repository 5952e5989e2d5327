"""A Job's ``podFailurePolicy`` and ``successPolicy``, and when a pod counts as failed.

Pure functions, no API access. Kubernetes facts followed (``pkg/controller/job``
``pod_failure_policy.go``, ``success_policy.go``, the "Jobs" and "Handling retriable
and non-retriable pod failures" pages):

* the rules of ``podFailurePolicy`` are tried in order against a failed pod; the first
  that matches decides: ``FailJob`` (the Job fails with reason ``PodFailurePolicy``),
  ``FailIndex`` (the pod's index fails, with ``backoffLimitPerIndex``), ``Ignore`` (the
  failure is not counted against ``backoffLimit``), ``Count`` (counted, as with no rule);
  no match counts the failure;
* ``onExitCodes`` matches a terminated container (of ``containerName`` if given; init
  containers too) whose exit code is not 0 and is ``In`` (or ``NotIn``) the values;
  ``onPodConditions`` matches a pod condition of that type and status (e.g.
  ``DisruptionTarget`` True: the pod was evicted or preempted);
* the FailJob messages are ``Container <c> for pod <ns>/<pod> failed with exit code <n>
  matching FailJob rule at index <i>`` and ``Pod <ns>/<pod> has condition <type>
  matching FailJob rule at index <i>``;
* a pod counts as failed when its phase is Failed, or -- without a pod failure policy --
  when it is being deleted and did not succeed (orphans and deleted pods never reach a
  phase); with a policy, deleted pods wait for their terminal phase;
* ``successPolicy`` (Indexed Jobs): the first rule met -- all of ``succeededIndexes``
  succeeded (or at least ``succeededCount`` of them), or ``succeededCount`` indexes in all
  -- makes the Job meet its success criteria with reason ``SuccessPolicy`` and message
  ``Matched rules at index <i>``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...client.base import Obj
from .indexed import Intervals, members, parse_intervals

FAIL_JOB = "FailJob"
FAIL_INDEX = "FailIndex"
IGNORE = "Ignore"
COUNT = "Count"


@dataclass(frozen=True)
class PolicyMatch:
    """What a pod failure means under the policy."""

    #: the FailJob message (None: the Job does not fail because of this pod)
    fail_job_message: str | None
    #: whether the failure counts against ``backoffLimit`` (and ``backoffLimitPerIndex``)
    counts: bool
    #: the action of the rule that matched (None: no rule)
    action: str | None


NO_RULE = PolicyMatch(None, True, None)


def _terminated(status: Obj) -> Obj | None:
    terminated = (status.get("state") or {}).get("terminated")
    return terminated if isinstance(terminated, dict) else None


def match_exit_codes(pod: Obj, requirement: Obj) -> Obj | None:
    """The container status whose exit code ``onExitCodes`` matches (None: none)."""
    pod_status = pod.get("status") or {}
    name = requirement.get("containerName")
    values = set(requirement.get("values") or ())
    operator = requirement.get("operator")
    for status in [*(pod_status.get("initContainerStatuses") or ()), *(pod_status.get("containerStatuses") or ())]:
        if name and status.get("name") != name:
            continue
        terminated = _terminated(status)
        if terminated is None:
            continue
        code = terminated.get("exitCode", 0)
        if code == 0:
            continue
        if (operator == "In" and code in values) or (operator == "NotIn" and code not in values):
            return status
    return None


def match_pod_conditions(pod: Obj, patterns: list[Obj]) -> Obj | None:
    """The pod condition one of ``onPodConditions`` matches (None: none)."""
    for condition in (pod.get("status") or {}).get("conditions") or ():
        for pattern in patterns:
            if condition.get("type") == pattern.get("type") and condition.get("status") == (pattern.get("status") or "True"):
                return condition
    return None


def match_pod_failure_policy(policy: Obj | None, pod: Obj) -> PolicyMatch:
    """What the first matching rule of ``policy`` makes of the failed ``pod``."""
    if not policy:
        return NO_RULE
    meta = pod.get("metadata") or {}
    where = f"{meta.get('namespace')}/{meta.get('name')}"
    for index, rule in enumerate(policy.get("rules") or ()):
        action = rule.get("action")
        message = None
        if rule.get("onExitCodes") is not None:
            status = match_exit_codes(pod, rule["onExitCodes"])
            if status is None:
                continue
            code = (_terminated(status) or {}).get("exitCode")
            message = (f"Container {status.get('name')} for pod {where} failed with exit code {code} "
                       f"matching {action} rule at index {index}")
        elif rule.get("onPodConditions") is not None:
            condition = match_pod_conditions(pod, rule["onPodConditions"])
            if condition is None:
                continue
            message = f"Pod {where} has condition {condition.get('type')} matching {action} rule at index {index}"
        else:
            continue
        if action == IGNORE:
            return PolicyMatch(None, False, IGNORE)
        if action == FAIL_JOB:
            return PolicyMatch(message, True, FAIL_JOB)
        if action in (FAIL_INDEX, COUNT):
            return PolicyMatch(None, True, action)
    return NO_RULE


def is_pod_failed(pod: Obj, job: Obj) -> bool:
    """Kubernetes' ``isPodFailed``: Failed, or deleted before succeeding when there is no failure policy."""
    phase = (pod.get("status") or {}).get("phase")
    if (job.get("spec") or {}).get("podFailurePolicy"):
        return phase == "Failed"
    if phase == "Failed":
        return True
    return bool((pod.get("metadata") or {}).get("deletionTimestamp")) and phase != "Succeeded"


def fail_job_message(job: Obj, pods: list[Obj]) -> str | None:
    """The message of the first failed pod a FailJob rule matches (None: none)."""
    policy = (job.get("spec") or {}).get("podFailurePolicy")
    if not policy:
        return None
    for pod in pods:
        if is_pod_failed(pod, job):
            match = match_pod_failure_policy(policy, pod)
            if match.fail_job_message is not None:
                return match.fail_job_message
    return None


def match_success_policy(policy: Obj | None, completions: int, succeeded: Intervals) -> str | None:
    """The ``Matched rules at index <i>`` message of the first rule met (None: none)."""
    if not policy or not succeeded:
        return None
    done = members(succeeded)
    for index, rule in enumerate(policy.get("rules") or ()):
        count = rule.get("succeededCount")
        if rule.get("succeededIndexes") is not None:
            required = members(parse_intervals(rule["succeededIndexes"], completions))
            if not required:
                continue
            hits = len(required & done)
            if (count is None and hits == len(required)) or (count is not None and hits >= count):
                return f"Matched rules at index {index}"
        elif count is not None and len(done) >= count:
            return f"Matched rules at index {index}"
    return None
