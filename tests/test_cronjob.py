"""The CronJob controller: its decisions as pure functions, then a cluster where a CronJob fires.

The pure part gives (CronJob, its Jobs, now) and checks what the controller decides:
the time to run, missed and too-many-missed times, the starting deadline, suspend,
Forbid and Replace, the history limits, the Job it makes and when it looks again.
The e2e part runs ``podlife up`` on simulated nodes: a ``* * * * *`` CronJob makes
``<name>-<minutes>`` at the next minute boundary, with the scheduled-timestamp
annotation, then ``lastScheduleTime`` and (once the Job completes) ``lastSuccessfulTime``;
``kubectl create job --from=cronjob/...`` works.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from podlife.controllers.cronjob import (
    SCHEDULED_TIMESTAMP_ANNOTATION,
    decide_start,
    history_to_delete,
    job_from_template,
    job_name,
    requeue_after,
    review_jobs,
)
from podlife.machinery import cron

from .cluster_harness import PodlifeProcess, require_tool, wait_for

UTC = timezone.utc
Obj = dict[str, Any]


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


CREATED = datetime(2026, 1, 1, 9, 0, 30, tzinfo=UTC)


def cron_job(schedule: str = "*/5 * * * *", *, created: datetime = CREATED, **spec: Any) -> Obj:
    status = spec.pop("status", {})
    return {
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "tick", "namespace": "default", "uid": "cj-uid", "creationTimestamp": stamp(created)},
        "spec": {"schedule": schedule, "concurrencyPolicy": "Allow", "suspend": False,
                 "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
                 "jobTemplate": {"metadata": {"labels": {"app": "tick"}, "annotations": {"note": "x"}},
                                 "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}],
                                                                "restartPolicy": "OnFailure"}}}},
                 **spec},
        "status": status,
    }


def job(name: str, *, uid: str | None = None, finished: str | None = None, started: datetime | None = None,
        completed: datetime | None = None) -> Obj:
    status: Obj = {}
    if started:
        status["startTime"] = stamp(started)
    if finished:
        status["conditions"] = [{"type": finished, "status": "True"}]
    if completed:
        status["completionTime"] = stamp(completed)
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": "default", "uid": uid or f"uid-{name}",
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "tick",
                                              "uid": "cj-uid", "controller": True}]},
            "status": status}


def ref(name: str) -> Obj:
    return {"kind": "Job", "namespace": "default", "name": name, "uid": f"uid-{name}", "apiVersion": "batch/v1"}


def reasons(events: Any) -> list[str]:
    return [event.reason for event in events]


# --------------------------------------------------------------------------- when to run


def test_runs_the_most_recent_unmet_time() -> None:
    cj = cron_job()
    assert decide_start(cj, [], at(2026, 1, 1, 9, 3)).scheduled is None  # nothing due before 09:05
    decision = decide_start(cj, [], at(2026, 1, 1, 9, 5, 2))
    assert decision.scheduled == at(2026, 1, 1, 9, 5) and decision.events == []
    # several missed: only the latest runs
    assert decide_start(cj, [], at(2026, 1, 1, 9, 21)).scheduled == at(2026, 1, 1, 9, 20)


def test_last_schedule_time_is_where_the_search_starts_and_a_processed_time_is_not_run_again() -> None:
    cj = cron_job(status={"lastScheduleTime": stamp(at(2026, 1, 1, 9, 5))})
    assert decide_start(cj, [], at(2026, 1, 1, 9, 7)).scheduled is None
    assert decide_start(cj, [], at(2026, 1, 1, 9, 10, 1)).scheduled == at(2026, 1, 1, 9, 10)
    # its Job already active (the status write lagging): not again
    active = [ref(job_name(cj, at(2026, 1, 1, 9, 10)))]
    assert decide_start(cj, active, at(2026, 1, 1, 9, 10, 1)).scheduled is None


def test_too_many_missed_times_warns_and_still_runs_the_latest() -> None:
    cj = cron_job("* * * * *", created=at(2026, 1, 1))
    decision = decide_start(cj, [], at(2026, 1, 1, 3, 0, 30))  # 180 missed
    assert decision.scheduled == at(2026, 1, 1, 3, 0)
    assert reasons(decision.events) == ["TooManyMissedTimes"]
    assert decision.events[0].message == \
        "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew"
    # with a starting deadline the search starts there: no warning
    bounded = cron_job("* * * * *", created=at(2026, 1, 1), startingDeadlineSeconds=200)
    decision = decide_start(bounded, [], at(2026, 1, 1, 3, 0, 30))
    assert decision.scheduled == at(2026, 1, 1, 3, 0) and decision.events == []


def test_irregular_schedules_find_the_latest_time() -> None:
    cj = cron_job("0 9 * * 1-5", created=at(2026, 1, 7, 12))  # a Wednesday
    # Thu 09:00 and Fri 09:00 missed; Monday 08:00 now: the latest is Friday's
    assert decide_start(cj, [], at(2026, 1, 12, 8)).scheduled == at(2026, 1, 9, 9)


def test_a_time_past_the_starting_deadline_is_missed() -> None:
    cj = cron_job(startingDeadlineSeconds=10, status={"lastScheduleTime": stamp(at(2026, 1, 1, 9, 0))})
    assert decide_start(cj, [], at(2026, 1, 1, 9, 5, 9)).scheduled == at(2026, 1, 1, 9, 5)
    decision = decide_start(cj, [], at(2026, 1, 1, 9, 5, 11))
    assert decision.scheduled is None
    # the search starts at now - deadline: 09:05 is not found at all
    assert reasons(decision.events) == []
    zero = cron_job(startingDeadlineSeconds=0, status={"lastScheduleTime": stamp(at(2026, 1, 1, 9, 0))})
    # a zero deadline leaves no window at all: the search starts at now, activations are strictly after it
    assert decide_start(zero, [], at(2026, 1, 1, 9, 5, 0)).scheduled is None


def test_suspend_starts_nothing() -> None:
    assert decide_start(cron_job(suspend=True), [], at(2026, 1, 1, 9, 5, 1)).scheduled is None


def test_a_cron_job_being_deleted_starts_nothing() -> None:
    cj = cron_job()
    cj["metadata"]["deletionTimestamp"] = stamp(at(2026, 1, 1, 9, 4))
    assert decide_start(cj, [], at(2026, 1, 1, 9, 5, 1)).scheduled is None


def test_concurrency_policies() -> None:
    now = at(2026, 1, 1, 9, 10, 1)
    running = [ref("tick-old")]
    allow = decide_start(cron_job(), running, now)
    assert allow.scheduled == at(2026, 1, 1, 9, 10) and allow.replace == []
    forbid = decide_start(cron_job(concurrencyPolicy="Forbid"), running, now)
    assert forbid.scheduled is None and reasons(forbid.events) == ["JobAlreadyActive"]
    assert forbid.events[0].message == "Not starting job because prior execution is running and concurrency policy is Forbid"
    assert forbid.requeue is not None
    assert decide_start(cron_job(concurrencyPolicy="Forbid"), [], now).scheduled == at(2026, 1, 1, 9, 10)
    replace = decide_start(cron_job(concurrencyPolicy="Replace"), running, now)
    assert replace.scheduled == at(2026, 1, 1, 9, 10) and [r["name"] for r in replace.replace] == ["tick-old"]


def test_time_zones() -> None:
    cj = cron_job("0 9 * * *", created=at(2026, 1, 1), timeZone="America/New_York")
    assert decide_start(cj, [], at(2026, 1, 1, 13, 59)).scheduled is None
    assert decide_start(cj, [], at(2026, 1, 1, 14, 0, 1)).scheduled == at(2026, 1, 1, 14)  # 09:00 EST
    made = job_from_template(cj, at(2026, 1, 1, 14))
    assert made["metadata"]["annotations"][SCHEDULED_TIMESTAMP_ANNOTATION] == "2026-01-01T09:00:00-05:00"
    prefixed = cron_job("CRON_TZ=America/New_York 0 9 * * *", created=at(2026, 1, 1))
    decision = decide_start(prefixed, [], at(2026, 1, 1, 14, 0, 1))
    assert decision.scheduled == at(2026, 1, 1, 14) and reasons(decision.events) == ["UnsupportedSchedule"]
    unknown = decide_start(cron_job(timeZone="Nowhere/Land"), [], at(2026, 1, 1, 9, 5, 1))
    assert unknown.scheduled is None and reasons(unknown.events) == ["UnknownTimeZone"]
    assert unknown.events[0].message == 'invalid timeZone: "Nowhere/Land": unknown time zone Nowhere/Land'


def test_requeue_is_the_next_time_plus_a_delta() -> None:
    cj = cron_job(status={"lastScheduleTime": stamp(at(2026, 1, 1, 9, 5))})
    schedule = cron.parse_schedule("*/5 * * * *")
    assert requeue_after(cj, at(2026, 1, 1, 9, 7), schedule) == pytest.approx(180.1)
    # with unmet times the next is counted from the latest of them
    assert requeue_after(cj, at(2026, 1, 1, 9, 21), schedule) == pytest.approx(240.1)
    assert decide_start(cj, [], at(2026, 1, 1, 9, 7)).requeue == pytest.approx(180.1)
    every = cron_job("@every 90s", created=at(2026, 1, 1, 9, 0, 0))
    decision = decide_start(every, [], at(2026, 1, 1, 9, 1, 31))
    assert decision.scheduled == at(2026, 1, 1, 9, 1, 30) and decision.requeue == pytest.approx(89.1)


def test_a_schedule_that_never_fires_is_invalid() -> None:
    decision = decide_start(cron_job("0 0 30 2 *"), [], at(2026, 1, 1, 9, 5))
    assert decision.scheduled is None and decision.requeue is None
    assert [(e.reason, e.message) for e in decision.events] == [
        ("InvalidSchedule", "invalid schedule: 0 0 30 2 * : time difference between two schedules is less than 1 second")]


def test_unparseable_schedule_is_an_event() -> None:
    decision = decide_start(cron_job("61 * * * *"), [], at(2026, 1, 1, 9, 5))
    assert decision.scheduled is None and reasons(decision.events) == ["UnparseableSchedule"]
    assert decision.events[0].message == 'unparseable schedule: "61 * * * *" : end of range (61) above maximum (59): 61'


# --------------------------------------------------------------------------- the Job it makes


def test_the_job_from_the_template() -> None:
    cj = cron_job()
    scheduled = at(2026, 1, 1, 9, 5)
    made = job_from_template(cj, scheduled)
    assert made["metadata"]["name"] == f"tick-{int(scheduled.timestamp()) // 60}" == "tick-29454305"
    assert made["metadata"]["labels"] == {"app": "tick"}
    assert made["metadata"]["annotations"] == {"note": "x", SCHEDULED_TIMESTAMP_ANNOTATION: "2026-01-01T09:05:00Z"}
    assert made["metadata"]["ownerReferences"] == [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "tick",
                                                    "uid": "cj-uid", "controller": True, "blockOwnerDeletion": True}]
    assert made["spec"] == cj["spec"]["jobTemplate"]["spec"] and made["spec"] is not cj["spec"]["jobTemplate"]["spec"]


# --------------------------------------------------------------------------- jobs -> status


def test_review_of_the_jobs() -> None:
    cj = cron_job(status={"active": [ref("tick-1"), ref("tick-2"), ref("tick-gone")],
                          "lastSuccessfulTime": stamp(at(2026, 1, 1, 8))})
    jobs = [job("tick-1", finished="Complete", completed=at(2026, 1, 1, 9, 1)),
            job("tick-2"),
            job("tick-3", finished="Failed"),
            job("tick-stray")]
    review = review_jobs(cj, jobs)
    assert [r["name"] for r in review.active] == ["tick-2", "tick-gone"]
    assert review.last_successful == stamp(at(2026, 1, 1, 9, 1)) and review.changed
    assert [(e.reason, e.message) for e in review.events] == [
        ("SawCompletedJob", "Saw completed job: tick-1, condition: Complete"),
        ("UnexpectedJob", "Saw a job that the controller did not create or forgot: tick-stray")]
    assert [r["name"] for r in review.unverified] == ["tick-gone"]
    # an older completion does not move lastSuccessfulTime back
    later = cron_job(status={"lastSuccessfulTime": stamp(at(2026, 1, 1, 10))})
    assert not review_jobs(later, [job("tick-1", finished="Complete", completed=at(2026, 1, 1, 9))]).changed


def test_history_limits_delete_the_oldest_finished() -> None:
    jobs = [job(f"ok-{i}", finished="Complete", started=at(2026, 1, 1, 9, i)) for i in (3, 1, 4, 2, 5)]
    jobs += [job(f"bad-{i}", finished="Failed", started=at(2026, 1, 1, 9, i)) for i in (2, 1)]
    jobs += [job("running", started=at(2026, 1, 1, 9, 0)), job("bad-unstarted", finished="Failed")]
    doomed = [j["metadata"]["name"] for j in history_to_delete(cron_job(), jobs)]
    assert doomed == ["ok-1", "ok-2", "bad-1", "bad-2"]
    keep_all = cron_job(successfulJobsHistoryLimit=10, failedJobsHistoryLimit=0)
    assert [j["metadata"]["name"] for j in history_to_delete(keep_all, jobs)] == ["bad-1", "bad-2", "bad-unstarted"]
    unlimited = cron_job()
    del unlimited["spec"]["successfulJobsHistoryLimit"], unlimited["spec"]["failedJobsHistoryLimit"]
    assert history_to_delete(unlimited, jobs) == []


# --------------------------------------------------------------------------- e2e


MANIFEST = """
apiVersion: batch/v1
kind: CronJob
metadata:
  name: {name}
spec:
  schedule: "{schedule}"
  suspend: {suspend}
  jobTemplate:
    metadata:
      labels: {{app: {name}}}
    spec:
      template:
        metadata:
          annotations: {{podlife.io/sim-duration: 1s}}
        spec:
          restartPolicy: Never
          containers: [{{name: c, image: busybox}}]
"""


@pytest.fixture(scope="module")
def sim_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    proc = PodlifeProcess(tmp_path_factory.mktemp("cronjob") / "data", "--nodes", "0", "--sim-nodes", "2",
                          kubectl=require_tool("kubectl"))
    try:
        yield proc.start()
    finally:
        proc.stop()


def apply(proc: PodlifeProcess, name: str, schedule: str = "* * * * *", suspend: bool = False) -> None:
    proc.kubectl("apply", "-f", "-", input=MANIFEST.format(name=name, schedule=schedule, suspend=str(suspend).lower()))


def events_of(proc: PodlifeProcess, name: str) -> list[tuple[str, str]]:
    listed = proc.kubectl_json("get", "events", "--field-selector", f"involvedObject.name={name}", "-o", "json")
    return [(e["reason"], e["message"]) for e in listed["items"]]


@pytest.mark.e2e
def test_a_cron_job_fires_at_the_minute(sim_cluster: PodlifeProcess) -> None:
    proc = sim_cluster
    apply(proc, "every-minute")
    apply(proc, "sleeper", suspend=True)

    def fired() -> Obj | None:
        cj = proc.kubectl_json("get", "cronjob", "every-minute", "-o", "json")
        return cj if (cj.get("status") or {}).get("lastScheduleTime") else None

    cj = wait_for(fired, timeout=90, interval=0.5, what="the CronJob's first run")
    assert cj is not None
    scheduled = datetime.fromisoformat(cj["status"]["lastScheduleTime"].replace("Z", "+00:00"))
    assert scheduled.second == 0
    name = f"every-minute-{int(scheduled.timestamp()) // 60}"
    made = proc.kubectl_json("get", "job", name, "-o", "json")
    assert made["metadata"]["annotations"][SCHEDULED_TIMESTAMP_ANNOTATION] == cj["status"]["lastScheduleTime"]
    assert made["metadata"]["labels"]["app"] == "every-minute"
    owner = made["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == \
        ("CronJob", "every-minute", cj["metadata"]["uid"], True)
    assert ("SuccessfulCreate", f"Created job {name}") in wait_for(
        lambda: events_of(proc, "every-minute"), what="the SuccessfulCreate event")

    def succeeded() -> Obj | None:
        cj = proc.kubectl_json("get", "cronjob", "every-minute", "-o", "json")
        return cj if (cj.get("status") or {}).get("lastSuccessfulTime") else None

    cj = wait_for(succeeded, timeout=60, interval=0.5, what="lastSuccessfulTime (needs the Job controller)")
    assert cj is not None
    assert not any(r.get("name") == name for r in cj["status"].get("active") or [])
    assert any(reason == "SawCompletedJob" for reason, _ in events_of(proc, "every-minute"))
    # the suspended one made nothing in the same time
    jobs = proc.kubectl_json("get", "jobs", "-l", "app=sleeper", "-o", "json")
    assert jobs["items"] == []
    assert "lastScheduleTime" not in (proc.kubectl_json("get", "cronjob", "sleeper", "-o", "json").get("status") or {})


@pytest.mark.e2e
def test_create_job_from_cron_job(sim_cluster: PodlifeProcess) -> None:
    proc = sim_cluster
    apply(proc, "manual", schedule="0 0 1 1 *", suspend=True)
    proc.kubectl("create", "job", "manual-now", "--from=cronjob/manual")
    made = proc.kubectl_json("get", "job", "manual-now", "-o", "json")
    assert made["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert made["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    template = copy.deepcopy(proc.kubectl_json("get", "cronjob", "manual", "-o", "json")["spec"]["jobTemplate"])
    assert made["spec"]["template"]["spec"]["containers"][0]["image"] == \
        template["spec"]["template"]["spec"]["containers"][0]["image"]


OWNED_JOB = """
apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
  labels: {{app: history}}
  ownerReferences:
  - {{apiVersion: batch/v1, kind: CronJob, name: history, uid: {uid}, controller: true}}
spec:
  template:
    metadata:
      annotations: {{podlife.io/sim-duration: 1s}}
    spec:
      restartPolicy: Never
      containers: [{{name: c, image: busybox}}]
"""


@pytest.mark.e2e
def test_history_limit_deletes_the_oldest_finished_jobs(sim_cluster: PodlifeProcess) -> None:
    """Cleanup runs on every sync, suspended or not: three succeeded Jobs, a limit of one."""
    proc = sim_cluster
    apply(proc, "history", schedule="0 0 1 1 *", suspend=True)
    proc.kubectl("patch", "cronjob", "history", "--type=merge", "-p", '{"spec": {"successfulJobsHistoryLimit": 1}}')
    uid = proc.kubectl_json("get", "cronjob", "history", "-o", "json")["metadata"]["uid"]
    for name in ("history-a", "history-b", "history-c"):
        proc.kubectl("apply", "-f", "-", input=OWNED_JOB.format(name=name, uid=uid))

    def deletions() -> list[str] | None:
        found = [message for reason, message in events_of(proc, "history") if reason == "SuccessfulDelete"]
        return found if len(found) >= 2 else None

    def one_left() -> list[Obj] | None:
        items: list[Obj] = proc.kubectl_json("get", "jobs", "-l", "app=history", "-o", "json")["items"]
        return items if len(items) == 1 else None

    deleted = wait_for(deletions, timeout=60, what="two SuccessfulDelete events")
    assert deleted is not None
    assert all(message.startswith("Deleted job history-") for message in deleted)
    left = wait_for(one_left, timeout=60, what="one Job left")
    assert left is not None
    assert f"Deleted job {left[0]['metadata']['name']}" not in deleted
    assert len(deleted) == 2
