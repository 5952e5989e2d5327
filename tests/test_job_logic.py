"""The Job controller's pure decisions (issue 14): interval strings, failure and success
policies, backoff, counting through uncountedTerminatedPods, pods to create and delete."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from podlife.controllers.job import backoff, indexed
from podlife.controllers.job.failure_policy import (
    is_pod_failed,
    match_pod_failure_policy,
    match_success_policy,
)
from podlife.controllers.job.finish import completions_reached, decide_failure
from podlife.controllers.job.manage import plan_manage, wanted_active
from podlife.controllers.job.tracking import (
    JOB_TRACKING_FINALIZER,
    assess,
    clean_uncounted,
    ensure_condition,
    tally,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def job(**spec: object) -> dict:
    base: dict = {"parallelism": 1, "completions": 1, "backoffLimit": 6, "completionMode": "NonIndexed",
            "podReplacementPolicy": "TerminatingOrFailed",
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}
    base.update(spec)
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "j", "namespace": "ns", "uid": "job-uid", "resourceVersion": "1"},
            "spec": base, "status": {}}


def pod(name: str, phase: str = "Running", *, finalizer: bool = True, deleting: bool = False, index: int | None = None,
        exit_code: int | None = None, container: str = "c", conditions: list | None = None, ready: bool = False) -> dict:
    meta: dict = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "creationTimestamp": "2026-01-02T03:00:00Z"}
    if finalizer:
        meta["finalizers"] = [JOB_TRACKING_FINALIZER]
    if deleting:
        meta["deletionTimestamp"] = "2026-01-02T03:04:00Z"
    if index is not None:
        meta["annotations"] = {indexed.COMPLETION_INDEX_KEY: str(index)}
    status: dict = {"phase": phase, "conditions": list(conditions or [])}
    if ready:
        status["conditions"].append({"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-02T03:01:00Z"})
    if exit_code is not None:
        status["containerStatuses"] = [{"name": container, "state": {"terminated": {"exitCode": exit_code}}}]
    return {"metadata": meta, "spec": {"nodeName": "n1"}, "status": status}


# --------------------------------------------------------------------------- interval strings


@pytest.mark.parametrize(("text", "completions", "want"), [
    ("", 10, []),
    ("1,3-5,7", 10, [(1, 1), (3, 5), (7, 7)]),
    ("3-5,1,4,6", 10, [(1, 1), (3, 6)]),
    ("0-2,8-12", 10, [(0, 2), (8, 9)]),
    ("x,2,-1,5-3,12", 10, [(2, 2)]),
])
def test_parse_intervals(text: str, completions: int, want: list) -> None:
    assert indexed.parse_intervals(text, completions) == want


def test_format_intervals_merges_consecutive_indexes() -> None:
    assert indexed.format_intervals(indexed.intervals_of([7, 1, 3, 4, 5])) == "1,3-5,7"
    assert indexed.format_intervals(indexed.intervals_of([0, 1, 2, 3])) == "0-3"
    assert indexed.format_intervals([]) == ""
    spans = indexed.with_indexes(indexed.parse_intervals("0,2"), [1, 5])
    assert indexed.format_intervals(spans) == "0-2,5" and indexed.total(spans) == 4


def test_completion_index_and_first_pending() -> None:
    assert indexed.completion_index(pod("a", index=2), 4) == 2
    assert indexed.completion_index(pod("a", index=4), 4) is None
    assert indexed.completion_index(pod("a")) is None
    assert indexed.first_pending_indexes(2, 5, {0, 2}) == [1, 3]
    assert indexed.first_pending_indexes(9, 3, {1}) == [0, 2]


def test_indexed_template_sets_annotation_label_env_and_hostname() -> None:
    template: dict = {"metadata": {"labels": {"a": "b"}},
                "spec": {"initContainers": [{"name": "i"}], "containers": [{"name": "c", "env": [{"name": "X", "value": "1"}]}]}}
    out = indexed.indexed_template(template, "work", 3)
    assert out["metadata"]["annotations"][indexed.COMPLETION_INDEX_KEY] == "3"
    assert out["metadata"]["labels"] == {"a": "b", indexed.COMPLETION_INDEX_KEY: "3"}
    assert out["spec"]["hostname"] == "work-3"
    for container in out["spec"]["initContainers"] + out["spec"]["containers"]:
        assert container["env"][-1] == {"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
            "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}}
    assert "env" not in template["spec"]["initContainers"][0]  # the template itself is untouched
    assert indexed.generate_name("work", 3) == "work-3-"
    assert len(indexed.generate_name("x" * 70, 12)) == 58


# --------------------------------------------------------------------------- pod failure policy


def test_fail_job_on_exit_code_with_kubernetes_message() -> None:
    policy = {"rules": [{"action": "FailJob", "onExitCodes": {"containerName": "c", "operator": "In", "values": [3]}}]}
    match = match_pod_failure_policy(policy, pod("p", "Failed", exit_code=3))
    assert match.action == "FailJob" and match.counts
    assert match.fail_job_message == "Container c for pod ns/p failed with exit code 3 matching FailJob rule at index 0"
    assert match_pod_failure_policy(policy, pod("p", "Failed", exit_code=1)).action is None
    assert match_pod_failure_policy(policy, pod("p", "Failed", exit_code=3, container="other")).action is None


def test_not_in_skips_exit_code_zero_and_rules_go_in_order() -> None:
    policy = {"rules": [{"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [1, 2]}},
                        {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [5]}}]}
    assert match_pod_failure_policy(policy, pod("p", "Failed", exit_code=5)).action == "Count"
    assert match_pod_failure_policy(policy, pod("p", "Failed", exit_code=0)).action is None
    assert match_pod_failure_policy(policy, pod("p", "Failed", exit_code=2)).action is None


def test_ignore_disruption_target_is_not_counted() -> None:
    policy = {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                        {"action": "FailJob", "onPodConditions": [{"type": "ConfigIssue"}]}]}
    evicted = pod("p", "Failed", exit_code=137, conditions=[{"type": "DisruptionTarget", "status": "True"}])
    match = match_pod_failure_policy(policy, evicted)
    assert match.action == "Ignore" and not match.counts and match.fail_job_message is None
    spec_job = job(podFailurePolicy=policy)
    a = assess(spec_job, [evicted], set())
    assert a.failed == 0 and len(a.new_failed) == 1 and a.new_failed_counted == 0
    config = pod("q", "Failed", conditions=[{"type": "ConfigIssue", "status": "True"}])
    assert match_pod_failure_policy(policy, config).fail_job_message == \
        "Pod ns/q has condition ConfigIssue matching FailJob rule at index 1"


def test_deleted_pods_count_as_failed_unless_a_policy_waits_for_the_phase() -> None:
    deleted = pod("p", "Running", deleting=True)
    assert is_pod_failed(deleted, job())
    assert not is_pod_failed(deleted, job(podFailurePolicy={"rules": []}))
    assert not is_pod_failed(pod("s", "Succeeded", deleting=True), job())


def test_success_policy_rules() -> None:
    policy = {"rules": [{"succeededIndexes": "0-2", "succeededCount": 2}, {"succeededCount": 4}]}
    assert match_success_policy(policy, 10, indexed.parse_intervals("1,2")) == "Matched rules at index 0"
    assert match_success_policy(policy, 10, indexed.parse_intervals("2,5-6")) is None
    assert match_success_policy(policy, 10, indexed.parse_intervals("2,5-7")) == "Matched rules at index 1"
    assert match_success_policy({"rules": [{"succeededIndexes": "0,3"}]}, 4, indexed.parse_intervals("0")) is None
    assert match_success_policy({"rules": [{"succeededIndexes": "0,3"}]}, 4, indexed.parse_intervals("0,3")) \
        == "Matched rules at index 0"


# --------------------------------------------------------------------------- backoff


def test_backoff_doubles_is_capped_and_resets_on_success() -> None:
    assert [backoff.delay_for(n) for n in range(5)] == [0.0, 10.0, 20.0, 40.0, 80.0]
    assert backoff.delay_for(20) == backoff.MAX_BACKOFF == 360.0
    record = backoff.next_record(backoff.BackoffRecord(), 0, 2, now=100.0)
    assert record == backoff.BackoffRecord(2, 100.0)
    assert backoff.remaining(record, 105.0) == 15.0 and backoff.remaining(record, 130.0) == 0.0
    assert backoff.next_record(record, 1, 0, now=200.0) == backoff.BackoffRecord()


# --------------------------------------------------------------------------- counting


def test_finished_pod_goes_through_uncounted_then_into_the_counter() -> None:
    j = job(completions=2, parallelism=2)
    done, running = pod("a", "Succeeded"), pod("b", "Running", ready=True)
    a = assess(j, [done, running], set())
    assert (len(a.active), a.ready, a.succeeded, len(a.new_succeeded)) == (1, 1, 1, 1)
    status: dict = {}
    result = tally(j, a, status, set(), False, False)
    assert result.changed and [p["metadata"]["name"] for p in result.remove_finalizers] == ["a"]
    assert status["uncountedTerminatedPods"] == {"succeeded": ["uid-a"]} and "succeeded" not in status
    # the finalizer is gone: the uid moves into the counter, exactly once
    assert clean_uncounted(status, {"uid-b"})
    assert status == {"uncountedTerminatedPods": {}, "succeeded": 1}
    assert not clean_uncounted(status, {"uid-b"})
    j["status"] = status
    again = assess(j, [pod("a", "Succeeded", finalizer=False), running], set())
    assert again.succeeded == 1 and not again.new_succeeded


def test_uncounted_pod_still_showing_its_finalizer_is_not_counted_twice() -> None:
    j = job(completions=3, parallelism=3)
    j["status"] = {"succeeded": 1, "uncountedTerminatedPods": {"succeeded": ["uid-a"]}}
    a = assess(j, [pod("a", "Succeeded")], set())
    assert a.succeeded == 2 and not a.new_succeeded
    status = dict(j["status"])
    result = tally(j, a, status, set(), False, False)
    assert not result.changed and status["uncountedTerminatedPods"] == {"succeeded": ["uid-a"]}
    # a removal in flight counts as done
    assert assess(j, [pod("a", "Succeeded")], {"uid-a"}).succeeded == 2


def test_indexed_successes_count_by_index() -> None:
    j = job(completionMode="Indexed", completions=4, parallelism=4)
    j["status"] = {"completedIndexes": "0", "succeeded": 1}
    pods = [pod("a", "Succeeded", index=0), pod("b", "Succeeded", index=2), pod("c", "Running", index=1)]
    a = assess(j, pods, set())
    assert a.succeeded == 2
    status = dict(j["status"])
    tally(j, a, status, set(), False, False)
    assert status["completedIndexes"] == "0,2" and status["succeeded"] == 2
    assert "uncountedTerminatedPods" not in status or not status["uncountedTerminatedPods"]


def test_failing_job_counts_its_running_pods_as_failed() -> None:
    j = job(parallelism=2, completions=2)
    a = assess(j, [pod("a", "Running"), pod("b", "Failed")], set())
    status: dict = {}
    result = tally(j, a, status, set(), True, True)
    assert status["uncountedTerminatedPods"] == {"failed": ["uid-a", "uid-b"]}
    assert len(result.remove_finalizers) == 2


def test_terminating_and_active_counts() -> None:
    a = assess(job(parallelism=3, completions=3),
               [pod("a", ready=True), pod("b", deleting=True), pod("c", "Failed", deleting=True)], set())
    assert (len(a.active), a.ready, a.terminating) == (1, 1, 1)


# --------------------------------------------------------------------------- creating and deleting


def test_active_never_exceeds_parallelism_or_remaining_completions() -> None:
    j = job(completions=5, parallelism=2)
    assert plan_manage(j, assess(j, [], set()), 0.0).create == [None, None]
    j["status"] = {"succeeded": 4}
    assert wanted_active(j, assess(j, [], set())) == 1
    j["status"] = {"succeeded": 4}
    plan = plan_manage(j, assess(j, [pod("a"), pod("b")], set()), 0.0)
    assert len(plan.delete) == 1 and not plan.create


def test_no_completions_stops_creating_after_a_success() -> None:
    j = job(completions=None, parallelism=3)
    a = assess(j, [pod("a", "Succeeded"), pod("b")], set())
    assert not plan_manage(j, a, 0.0).create and not plan_manage(j, a, 0.0).delete
    assert completions_reached(j, a.succeeded, 1) is False and completions_reached(j, a.succeeded, 0) is True


def test_backoff_only_delays_creation() -> None:
    j = job(completions=2, parallelism=2)
    plan = plan_manage(j, assess(j, [pod("a", "Failed")], set()), 12.0)
    assert plan.wait == 12.0 and not plan.create


def test_suspended_job_deletes_its_active_pods() -> None:
    j = job(completions=2, parallelism=2, suspend=True)
    plan = plan_manage(j, assess(j, [pod("a"), pod("b"), pod("c", "Succeeded")], set()), 0.0)
    assert sorted(p["metadata"]["name"] for p in plan.delete) == ["a", "b"] and not plan.create


def test_pod_replacement_policy_failed_waits_for_terminating_pods() -> None:
    pods = [pod("a", deleting=True)]
    waiting = job(completions=1, parallelism=1, podReplacementPolicy="Failed")
    assert not plan_manage(waiting, assess(waiting, pods, set()), 0.0).create
    eager = job(completions=1, parallelism=1)
    assert plan_manage(eager, assess(eager, pods, set()), 0.0).create == [None]


def test_indexed_job_creates_lowest_free_indexes_and_drops_duplicates() -> None:
    j = job(completionMode="Indexed", completions=5, parallelism=3)
    j["status"] = {"completedIndexes": "0"}
    a = assess(j, [pod("x", index=1)], set())
    assert plan_manage(j, a, 0.0).create == [2, 3]
    dup = assess(j, [pod("x", index=1), pod("y", index=1), pod("z", index=0)], set())
    assert sorted(p["metadata"]["name"] for p in plan_manage(j, dup, 0.0).delete) in (["x", "z"], ["y", "z"])


# --------------------------------------------------------------------------- failure targets


def test_backoff_limit_exceeded_and_deadline() -> None:
    j = job(backoffLimit=0)
    finish, _ = decide_failure(j, assess(j, [pod("a", "Failed")], set()), NOW)
    assert finish is not None and (finish.target, finish.final, finish.reason, finish.message) == (
        "FailureTarget", "Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
    d = job(activeDeadlineSeconds=10)
    d["status"] = {"startTime": (NOW - timedelta(seconds=4)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    finish, left = decide_failure(d, assess(d, [pod("a")], set()), NOW)
    assert finish is None and left == 6.0
    finish, _ = decide_failure(d, assess(d, [pod("a")], set()), NOW + timedelta(seconds=6))
    assert finish is not None and (finish.reason, finish.message) == (
        "DeadlineExceeded", "Job was active longer than specified deadline")
    d["spec"]["suspend"] = True
    assert decide_failure(d, assess(d, [], set()), NOW + timedelta(seconds=60)) == (None, None)


def test_recorded_target_stands_and_per_index_limits() -> None:
    j = job()
    j["status"] = {"conditions": [{"type": "FailureTarget", "status": "True", "reason": "PodFailurePolicy", "message": "m"}]}
    finish, _ = decide_failure(j, assess(j, [], set()), NOW)
    assert finish is not None and finish.recorded and (finish.final, finish.reason, finish.message) == (
        "Failed", "PodFailurePolicy", "m")
    per_index = job(completionMode="Indexed", completions=3, parallelism=3, backoffLimitPerIndex=0,
                    maxFailedIndexes=0, backoffLimit=2147483647)
    finish, _ = decide_failure(per_index, assess(per_index, [pod("a", "Failed", index=1)], set()), NOW)
    assert finish is not None and finish.reason == "MaxFailedIndexesExceeded"
    assert finish.message == "Job has exceeded the specified maximal number of failed indexes"


def test_ensure_condition_never_adds_false_and_replaces_on_change() -> None:
    conditions, changed = ensure_condition([], "Suspended", "False", "JobResumed", "Job resumed", "t1")
    assert conditions == [] and not changed
    conditions, changed = ensure_condition([], "Suspended", "True", "JobSuspended", "Job suspended", "t1")
    assert changed and conditions[0]["lastTransitionTime"] == "t1"
    again, changed = ensure_condition(conditions, "Suspended", "True", "JobSuspended", "Job suspended", "t2")
    assert not changed and again[0]["lastTransitionTime"] == "t1"
    resumed, changed = ensure_condition(conditions, "Suspended", "False", "JobResumed", "Job resumed", "t3")
    assert changed and resumed == [{"type": "Suspended", "status": "False", "reason": "JobResumed",
                                    "message": "Job resumed", "lastProbeTime": "t3", "lastTransitionTime": "t3"}]


def test_per_index_backoff_waits_per_index() -> None:
    from podlife.controllers.job.manage import last_index_failures

    j = job(completionMode="Indexed", completions=3, parallelism=3, backoffLimitPerIndex=2, backoffLimit=2147483647)
    failed = pod("a", "Failed", index=1, exit_code=1)
    failed["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"] = "2026-01-02T03:04:00Z"
    failed["metadata"]["annotations"][indexed.INDEX_FAILURE_COUNT_KEY] = "1"
    a = assess(j, [failed], set())
    assert last_index_failures(j, a) == [(1, 2, NOW.replace(second=0).timestamp())]
    waits = backoff.index_waits(last_index_failures(j, a), NOW.replace(second=0).timestamp() + 5)
    assert waits == {1: 15.0}  # the second failure of index 1: 20 s after it
    assert plan_manage(j, a, 0.0, waits).create == [0, 2]
    only = job(completionMode="Indexed", completions=2, parallelism=2, backoffLimitPerIndex=2, backoffLimit=2147483647)
    only["status"] = {"completedIndexes": "0"}
    plan = plan_manage(only, assess(only, [failed], set()), 0.0, waits)
    assert plan.wait == 15.0 and not plan.create
