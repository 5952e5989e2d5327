"""The CronJob controller: Jobs made from each CronJob's template at its scheduled times.

As kube-controller-manager's ``cronjob-controller`` (``pkg/controller/cronjob``,
``cronjob_controllerv2.go`` and ``utils.go``). What it watches: CronJobs and Jobs
(shared informers; a Job event queues the CronJob that controls it, found through the
by-controller index). What it writes: Jobs (created from ``spec.jobTemplate``, deleted
for ``Replace`` and for the history limits, Background propagation), the CronJob's
``status`` (``active``, ``lastScheduleTime``, ``lastSuccessfulTime``) and Events.

No polling: after each sync the key is queued again for the next scheduled time plus
100 ms (Kubernetes' ``nextScheduleDelta``), one timer per CronJob.

The decisions are pure functions of (CronJob, its Jobs, now) -- :func:`review_jobs`,
:func:`decide_start`, :func:`history_to_delete`, :func:`requeue_after` -- and
:class:`CronJobController` carries them out. Kubernetes facts followed:

* the time to run is the most recent activation after ``status.lastScheduleTime`` (or
  the creation time) that is not after now, and not before ``now - startingDeadlineSeconds``
  when that is set; more than 100 missed give the Warning ``TooManyMissedTimes`` and still
  only the latest runs; an activation older than the deadline gives ``MissSchedule``;
* a time already processed (``lastScheduleTime`` equal to it, or its Job in ``active``)
  is not run again; ``suspend: true`` starts nothing (status is still kept up to date);
* the Job is ``<cronjob>-<scheduled time in minutes since the epoch>`` with the
  template's labels, annotations and spec, the CronJob as controller, and the annotation
  ``batch.kubernetes.io/cronjob-scheduled-timestamp`` (RFC 3339 in the CronJob's zone);
  an AlreadyExists create of a Job we control means it was made before: it is put into
  ``active`` without a second Job;
* ``concurrencyPolicy``: ``Forbid`` skips while a Job is active (``JobAlreadyActive``),
  ``Replace`` deletes the active ones first (``SuccessfulDelete``);
* ``timeZone`` is an IANA zone (``UnknownTimeZone`` when it cannot be loaded); a
  ``TZ=``/``CRON_TZ=`` prefix in the schedule works, with the Warning ``UnsupportedSchedule``;
* finished Jobs leave ``active`` (``SawCompletedJob``), a succeeded one's
  ``completionTime`` moves ``lastSuccessfulTime`` forward; an unfinished Job we control but
  did not list gives ``UnexpectedJob``; an active Job that is gone gives ``MissingJob``;
* history: beyond ``successfulJobsHistoryLimit`` / ``failedJobsHistoryLimit`` the finished
  Jobs that started first are deleted.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

from ..client.base import CRON_JOBS, JOBS, Obj
from ..client.informer import object_key
from ..client.shared_informers import BY_CONTROLLER
from ..client.workqueue import WorkQueue
from ..machinery import cron
from ..machinery.errors import ApiError
from ..machinery.timeutil import format_rfc3339
from .manager import ControllerContext
from .pod_control import controller_of, controller_ref, is_controlled_by, parse_time

log = logging.getLogger(__name__)

SCHEDULED_TIMESTAMP_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
#: added to every requeue for the next activation (Kubernetes' nextScheduleDelta)
NEXT_SCHEDULE_DELTA = 0.1
#: more missed activations than this give TooManyMissedTimes
MANY_MISSED = 100

Schedule = cron.SpecSchedule | cron.EverySchedule


@dataclass(frozen=True)
class Event:
    type: str
    reason: str
    message: str


# --------------------------------------------------------------------------- job facts


def finished_condition(job: Obj) -> str | None:
    """``Complete`` or ``Failed`` when the Job has that condition True (``getFinishedStatus``), else None."""
    for cond in (job.get("status") or {}).get("conditions") or ():
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return str(cond["type"])
    return None


def job_reference(job: Obj) -> Obj:
    """The ObjectReference ``status.active`` holds for a Job."""
    meta = job["metadata"]
    return {"kind": "Job", "namespace": meta.get("namespace", ""), "name": meta["name"], "uid": meta.get("uid", ""),
            "apiVersion": "batch/v1", "resourceVersion": meta.get("resourceVersion", "")}


def job_name(cron_job: Obj, scheduled: datetime) -> str:
    """``<cronjob>-<minutes since the epoch>``: one deterministic name per scheduled time."""
    return f"{cron_job['metadata']['name']}-{int(scheduled.timestamp()) // 60}"


def rfc3339_in(moment: datetime, zone: tzinfo) -> str:
    """Go's ``Format(time.RFC3339)`` of ``moment`` in ``zone``: ``Z`` for a zero offset, else ``+hh:mm``."""
    local = moment.astimezone(zone)
    offset = int((local.utcoffset() or timedelta(0)).total_seconds())
    if offset == 0:
        return local.strftime("%Y-%m-%dT%H:%M:%SZ")
    sign, minutes = ("+" if offset > 0 else "-"), abs(offset) // 60
    return f"{local.strftime('%Y-%m-%dT%H:%M:%S')}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def job_from_template(cron_job: Obj, scheduled: datetime) -> Obj:
    """The Job for ``scheduled`` (``getJobFromTemplate2``)."""
    template = (cron_job.get("spec") or {}).get("jobTemplate") or {}
    tmeta = template.get("metadata") or {}
    annotations = dict(tmeta.get("annotations") or {})
    annotations[SCHEDULED_TIMESTAMP_ANNOTATION] = rfc3339_in(scheduled, time_zone_of(cron_job))
    meta: Obj = {"name": job_name(cron_job, scheduled), "namespace": cron_job["metadata"]["namespace"],
                 "annotations": annotations,
                 "ownerReferences": [controller_ref(cron_job, "batch/v1", "CronJob")]}
    if tmeta.get("labels"):
        meta["labels"] = dict(tmeta["labels"])
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": copy.deepcopy(template.get("spec") or {})}


# --------------------------------------------------------------------------- schedules


def time_zone_of(cron_job: Obj) -> tzinfo:
    """The zone of ``spec.timeZone`` for the scheduled-timestamp annotation (unset: UTC, ``time.LoadLocation("")``)."""
    zone = (cron_job.get("spec") or {}).get("timeZone")
    if zone is None:
        return timezone.utc
    try:
        return cron.load_zone(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return timezone.utc


def formatted_schedule(cron_job: Obj) -> tuple[str, list[Event]]:
    """The schedule as the controller parses it (``formatSchedule``): ``TZ=<timeZone> `` prefixed."""
    spec = cron_job.get("spec") or {}
    schedule = str(spec.get("schedule") or "")
    if "TZ" in schedule:
        return schedule, [Event("Warning", "UnsupportedSchedule",
                                f"CRON_TZ or TZ used in schedule {_go_quote(schedule)} is not officially supported, see "
                                "https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details")]
    zone = spec.get("timeZone")
    if zone is not None and cron.time_zone_error(zone) is None:
        return f"TZ={zone} {schedule}", []
    return schedule, []


@dataclass(frozen=True)
class MostRecent:
    """``mostRecentScheduleTime``: where the search started, the latest activation not after now, how many missed."""

    earliest: datetime
    latest: datetime | None
    missed: int
    error: str | None = None


_NEVER = "time difference between two schedules is less than 1 second"


def _earliest(cron_job: Obj) -> datetime:
    status = cron_job.get("status") or {}
    return (parse_time(status.get("lastScheduleTime")) or parse_time(cron_job["metadata"].get("creationTimestamp"))
            or datetime.fromtimestamp(0, timezone.utc))


def most_recent_schedule_time(cron_job: Obj, now: datetime, schedule: Schedule, include_deadline: bool) -> MostRecent:
    earliest = _earliest(cron_job)
    deadline = (cron_job.get("spec") or {}).get("startingDeadlineSeconds")
    if include_deadline and deadline is not None:
        earliest = max(earliest, now - timedelta(seconds=int(deadline)))
    first = schedule.next(earliest)
    if first is None:  # a date that never comes (``0 0 30 2 *``): Go's zero time, which Kubernetes reports so
        return MostRecent(earliest, None, 0, _NEVER)
    if now < first:
        return MostRecent(earliest, None, 0)
    second = schedule.next(first)
    if second is None or now < second:
        return MostRecent(earliest, first, 1)
    between = round((second - first).total_seconds())
    if between < 1:
        return MostRecent(earliest, None, 0, _NEVER)
    missed = int((now - first).total_seconds()) // between + 1
    latest = _latest_not_after(schedule, first, now, missed, between)
    return MostRecent(earliest, latest, missed)


def _latest_not_after(schedule: Schedule, first: datetime, now: datetime, missed: int, between: int) -> datetime:
    """The last activation in ``[first, now]``: start ``missed - 2`` intervals after ``first`` (Kubernetes'
    estimate) and walk forward; when an irregular schedule made the estimate overshoot, start further back."""
    back = 2
    while True:
        start = max(first - timedelta(seconds=1), first + timedelta(seconds=(missed - back) * between))
        latest: datetime | None = None
        moment = schedule.next(start)
        while moment is not None and moment <= now:
            latest = moment
            moment = schedule.next(moment)
        if latest is not None:
            return latest
        back *= 2


def next_schedule_time(cron_job: Obj, now: datetime, schedule: Schedule) -> tuple[datetime | None, list[Event], str | None]:
    """The activation to run now, if any (``nextScheduleTime``), its events, and an invalid schedule's error."""
    found = most_recent_schedule_time(cron_job, now, schedule, include_deadline=True)
    if found.latest is None or found.latest > now:
        return None, [], found.error
    events = []
    if found.missed > MANY_MISSED:
        events.append(Event("Warning", "TooManyMissedTimes",
                            "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew"))
    return found.latest, events, None


def requeue_after(cron_job: Obj, now: datetime, schedule: Schedule) -> float:
    """Seconds until the next activation, plus 100 ms (``nextScheduleTimeDuration``)."""
    found = most_recent_schedule_time(cron_job, now, schedule, include_deadline=False)
    if found.error is not None:
        base = now
    elif found.latest is None:
        base = found.earliest if found.missed == 0 else now
    else:
        base = found.latest
    upcoming = schedule.next(base)
    if upcoming is None:  # never again within the search's horizon: look once a day
        return 86400.0
    return max(0.0, (upcoming - now).total_seconds() + NEXT_SCHEDULE_DELTA)


# --------------------------------------------------------------------------- decisions


@dataclass
class JobsReview:
    """What the CronJob's Jobs mean for its status (the first part of ``syncCronJob``)."""

    active: list[Obj]
    last_successful: str | None
    changed: bool = False
    events: list[Event] = field(default_factory=list)
    #: active references with no Job in the cache: to check with a live read (gone: ``MissingJob``)
    unverified: list[Obj] = field(default_factory=list)


def review_jobs(cron_job: Obj, jobs: Iterable[Obj]) -> JobsReview:
    status = cron_job.get("status") or {}
    review = JobsReview(active=[dict(ref) for ref in status.get("active") or ()],
                        last_successful=status.get("lastSuccessfulTime"))
    seen: set[str] = set()
    for job in jobs:
        meta = job["metadata"]
        uid, finished = meta.get("uid", ""), finished_condition(job)
        seen.add(uid)
        listed = any(ref.get("uid") == uid for ref in review.active)
        if not listed and finished is None:
            review.events.append(Event("Warning", "UnexpectedJob",
                                       f"Saw a job that the controller did not create or forgot: {meta['name']}"))
        elif listed and finished is not None:
            review.active = [ref for ref in review.active if ref.get("uid") != uid]
            review.events.append(Event("Normal", "SawCompletedJob", f"Saw completed job: {meta['name']}, condition: {finished}"))
            review.changed = True
        if finished == "Complete":
            completed = (job.get("status") or {}).get("completionTime")
            known = parse_time(review.last_successful)
            when = parse_time(completed)
            if when is not None and (known is None or when > known):
                review.last_successful = completed
                review.changed = True
    review.unverified = [ref for ref in review.active if ref.get("uid") not in seen]
    return review


@dataclass
class StartDecision:
    """Whether to start a Job now (``scheduled``), the active Jobs to delete first, the events, when to look again."""

    scheduled: datetime | None = None
    replace: list[Obj] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    requeue: float | None = None


def decide_start(cron_job: Obj, active: Sequence[Obj], now: datetime) -> StartDecision:
    """The second part of ``syncCronJob``, given the reviewed ``active`` list."""
    spec = cron_job.get("spec") or {}
    decision = StartDecision()
    if cron_job["metadata"].get("deletionTimestamp"):
        return decision
    zone = spec.get("timeZone")
    if zone is not None:
        problem = cron.time_zone_error(zone)
        if problem is not None:
            decision.events.append(Event("Warning", "UnknownTimeZone", f"invalid timeZone: {_go_quote(zone)}: {problem}"))
            return decision
    if spec.get("suspend"):
        return decision
    text, warnings = formatted_schedule(cron_job)
    decision.events += warnings
    try:
        schedule = cron.parse_schedule(text)
    except cron.CronError as err:
        decision.events.append(Event("Warning", "UnparseableSchedule",
                                     f"unparseable schedule: {_go_quote(str(spec.get('schedule')))} : {err}"))
        return decision
    scheduled, events, error = next_schedule_time(cron_job, now, schedule)
    decision.events += events
    if error is not None:
        decision.events.append(Event("Warning", "InvalidSchedule", f"invalid schedule: {spec.get('schedule')} : {error}"))
        return decision
    decision.requeue = requeue_after(cron_job, now, schedule)
    if scheduled is None:
        return decision
    deadline = spec.get("startingDeadlineSeconds")
    if deadline is not None and scheduled + timedelta(seconds=int(deadline)) < now:
        decision.events.append(Event("Warning", "MissSchedule",
                                     f"Missed scheduled time to start a job: {_rfc1123z(scheduled)}"))
        return decision
    name = job_name(cron_job, scheduled)
    last = parse_time((cron_job.get("status") or {}).get("lastScheduleTime"))
    if any(ref.get("name") == name for ref in active) or last == scheduled:
        return decision
    policy = spec.get("concurrencyPolicy") or "Allow"
    if policy == "Forbid" and active:
        decision.events.append(Event("Normal", "JobAlreadyActive",
                                     "Not starting job because prior execution is running and concurrency policy is Forbid"))
        return decision
    if policy == "Replace":
        decision.replace = [dict(ref) for ref in active]
    decision.scheduled = scheduled
    return decision


def _start_key(job: Obj) -> tuple[int, float, str]:
    """``byJobStartTime``: started ones first, by start time, then by name."""
    started = parse_time((job.get("status") or {}).get("startTime"))
    return (0 if started else 1, started.timestamp() if started else 0.0, job["metadata"]["name"])


def history_to_delete(cron_job: Obj, jobs: Iterable[Obj]) -> list[Obj]:
    """The finished Jobs beyond the history limits, the ones that started first (``cleanupFinishedJobs``)."""
    spec = cron_job.get("spec") or {}
    succeeded, failed = [], []
    for job in jobs:
        finished = finished_condition(job)
        if finished == "Complete":
            succeeded.append(job)
        elif finished == "Failed":
            failed.append(job)
    doomed: list[Obj] = []
    for kept, limit in ((succeeded, spec.get("successfulJobsHistoryLimit")), (failed, spec.get("failedJobsHistoryLimit"))):
        if limit is None or len(kept) <= int(limit):
            continue
        doomed += sorted(kept, key=_start_key)[:len(kept) - int(limit)]
    return doomed


def with_status(cron_job: Obj, active: list[Obj], last_schedule: str | None, last_successful: str | None) -> Obj:
    """A copy of the CronJob with that status (``active`` left out when empty, as Kubernetes' omitempty)."""
    updated = copy.deepcopy(cron_job)
    status: dict[str, Any] = dict(updated.get("status") or {})
    if active:
        status["active"] = active
    else:
        status.pop("active", None)
    for key, value in (("lastScheduleTime", last_schedule), ("lastSuccessfulTime", last_successful)):
        if value:
            status[key] = value
    updated["status"] = status
    return updated


def _rfc1123z(moment: datetime) -> str:
    """Go's ``time.RFC1123Z`` in UTC: ``Mon, 02 Jan 2006 15:04:05 +0000``."""
    return moment.astimezone(timezone.utc).strftime("%a, %d %b %Y %H:%M:%S +0000")


def _go_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --------------------------------------------------------------------------- the controller


class KeyTimers:
    """Delayed adds to a work queue, one timer per key: a new delay replaces a later timer, never an earlier one."""

    def __init__(self, queue: WorkQueue) -> None:
        self.queue = queue
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def add_after(self, key: str, delay: float) -> None:
        loop = asyncio.get_running_loop()
        when = loop.time() + max(0.0, delay)
        timer = self._timers.get(key)
        if timer is not None and timer.when() <= when:
            return
        if timer is not None:
            timer.cancel()
        self._timers[key] = loop.call_at(when, self._fire, key)

    def _fire(self, key: str) -> None:
        self._timers.pop(key, None)
        self.queue.add(key)

    def forget(self, key: str) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def cancel_all(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()


class CronJobController:
    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.recorder = ctx.recorder()
        self.queue = WorkQueue()
        self.cron_jobs = ctx.informers.informer(CRON_JOBS)
        self.jobs = ctx.informers.informer(JOBS)
        self.jobs_by_owner = ctx.informers.index(JOBS, BY_CONTROLLER)
        self.timers = KeyTimers(self.queue)
        self.cron_jobs.add_handlers(self._on_cron_job, lambda _old, new: self._on_cron_job(new), self._on_cron_job_gone)
        self.jobs.add_handlers(self._on_job, self._on_job_update, self._on_job)

    # -- handlers: only enqueue

    def _on_cron_job(self, obj: Obj) -> None:
        self.queue.add(object_key(obj))

    def _on_cron_job_gone(self, obj: Obj) -> None:
        self.timers.forget(object_key(obj))

    def _on_job(self, job: Obj) -> None:
        self._enqueue_owner(job["metadata"].get("namespace", ""), controller_of(job))

    def _on_job_update(self, old: Obj, new: Obj) -> None:
        old_ref, new_ref = controller_of(old), controller_of(new)
        if old_ref != new_ref:
            self._enqueue_owner(old["metadata"].get("namespace", ""), old_ref)
        self._enqueue_owner(new["metadata"].get("namespace", ""), new_ref)

    def _enqueue_owner(self, namespace: str, ref: Obj | None) -> None:
        if ref is None or ref.get("kind") != "CronJob" or not str(ref.get("apiVersion", "")).startswith("batch/"):
            return
        owner = self.cron_jobs.get(namespace, ref.get("name", ""))
        if owner is not None and owner["metadata"].get("uid") == ref.get("uid"):
            self.queue.add(object_key(owner))

    # -- work

    async def run(self) -> None:
        await self.ctx.informers.wait_synced(CRON_JOBS, JOBS)
        try:
            await self.queue.run_workers(self.sync, self.ctx.options.concurrent_cron_job_syncs)
        finally:
            self.timers.cancel_all()

    async def sync(self, key: str) -> None:
        namespace, _, name = key.partition("/")
        cron_job = self.cron_jobs.get(namespace, name)
        if cron_job is None:
            return
        await self._sync(cron_job, key)

    async def _sync(self, cron_job: Obj, key: str) -> None:
        uid = cron_job["metadata"].get("uid", "")
        namespace = cron_job["metadata"]["namespace"]
        jobs = [job for job in self.jobs_by_owner.get(uid) if job["metadata"].get("namespace") == namespace]
        cron_job = await self._fresh_if_unexpected(cron_job, jobs)
        review = review_jobs(cron_job, jobs)
        await self._verify_missing(cron_job, review)
        self._record(cron_job, review.events)
        changed = review.changed
        decision = decide_start(cron_job, review.active, datetime.now(timezone.utc))
        self._record(cron_job, decision.events)
        last_schedule = (cron_job.get("status") or {}).get("lastScheduleTime")
        failure: Exception | None = None
        try:
            if decision.scheduled is not None:
                if await self._replace(cron_job, decision.replace, review):
                    changed = True
                created = await self._create(cron_job, decision.scheduled, review.active)
                if created is not None:
                    if finished_condition(created) is None:
                        review.active.append(job_reference(created))
                    last_schedule = format_rfc3339(decision.scheduled)
                    changed = True
        except ApiError as exc:
            failure = exc
        if await self._clean_history(cron_job, jobs, review):
            changed = True
        if changed:
            await self._write_status(cron_job, review.active, last_schedule, review.last_successful)
        if decision.requeue is not None:
            self.timers.add_after(key, decision.requeue)
        if failure is not None:
            raise failure

    async def _live_cron_job(self, namespace: str, name: str) -> Obj | None:
        try:
            return await self.client.get(CRON_JOBS, name, namespace)
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise

    async def _fresh_if_unexpected(self, cron_job: Obj, jobs: list[Obj]) -> Obj:
        """An unfinished Job missing from ``active`` may be our own write the cache has not seen: read the CronJob live."""
        active = {ref.get("uid") for ref in (cron_job.get("status") or {}).get("active") or ()}
        if all(job["metadata"].get("uid") in active or finished_condition(job) for job in jobs):
            return cron_job
        meta = cron_job["metadata"]
        live = await self._live_cron_job(meta["namespace"], meta["name"])
        return live if live is not None and live["metadata"].get("uid") == meta.get("uid") else cron_job

    async def _verify_missing(self, cron_job: Obj, review: JobsReview) -> None:
        for ref in review.unverified:
            try:
                await self.client.get(JOBS, ref.get("name", ""), ref.get("namespace") or cron_job["metadata"]["namespace"])
            except ApiError as exc:
                if exc.code != 404:
                    raise
                review.events.append(Event("Normal", "MissingJob", f"Active job went missing: {ref.get('name')}"))
                review.active = [other for other in review.active if other.get("uid") != ref.get("uid")]
                review.changed = True

    async def _replace(self, cron_job: Obj, refs: list[Obj], review: JobsReview) -> bool:
        """``Replace``: delete the Jobs still active (read live first, as Kubernetes does)."""
        for ref in refs:
            try:
                job = await self.client.get(JOBS, ref.get("name", ""), ref.get("namespace") or cron_job["metadata"]["namespace"])
            except ApiError as exc:
                self.recorder.event(cron_job, "Warning", "FailedGet", f"Get job: {exc.message}")
                raise
            if not await self._delete_job(cron_job, job, review):
                raise ApiError(500, "InternalError", f"could not replace job {ref.get('namespace')}/{ref.get('name')}")
        return bool(refs)

    async def _delete_job(self, cron_job: Obj, job: Obj, review: JobsReview) -> bool:
        meta = job["metadata"]
        try:
            await self.client.delete(JOBS, meta["name"], meta.get("namespace"), propagation_policy="Background")
        except ApiError as exc:
            if exc.code != 404:
                self.recorder.event(cron_job, "Warning", "FailedDelete", f"Deleted job: {exc.message}")
                return False
        review.active = [ref for ref in review.active if ref.get("uid") != meta.get("uid")]
        self.recorder.event(cron_job, "Normal", "SuccessfulDelete", f"Deleted job {meta['name']}")
        return True

    async def _create(self, cron_job: Obj, scheduled: datetime, active: list[Obj]) -> Obj | None:
        """Create the Job of ``scheduled``; the Job to add to ``active`` (None: nothing to add)."""
        wanted = job_from_template(cron_job, scheduled)
        namespace = cron_job["metadata"]["namespace"]
        try:
            created = await self.client.create(JOBS, wanted, namespace)
        except ApiError as exc:
            if exc.code == 409 and exc.reason == "AlreadyExists":
                return await self._existing(cron_job, wanted, active)
            if exc.code == 403 and _namespace_terminating(exc):
                return None
            self.recorder.event(cron_job, "Warning", "FailedCreate", f"Error creating job: {exc.message}")
            raise
        self.recorder.event(cron_job, "Normal", "SuccessfulCreate", f"Created job {created['metadata']['name']}")
        return created

    async def _existing(self, cron_job: Obj, wanted: Obj, active: list[Obj]) -> Obj | None:
        """A Job of that name exists: ours and not in ``active`` means our earlier status write was lost."""
        meta = wanted["metadata"]
        job = await self.client.get(JOBS, meta["name"], meta["namespace"])
        if not is_controlled_by(job, cron_job) or any(ref.get("uid") == job["metadata"].get("uid") for ref in active):
            return None
        log.info("cronjob %s/%s: job %s already exists", meta["namespace"], cron_job["metadata"]["name"], meta["name"])
        return job

    async def _clean_history(self, cron_job: Obj, jobs: list[Obj], review: JobsReview) -> bool:
        changed = False
        for job in history_to_delete(cron_job, jobs):
            if await self._delete_job(cron_job, job, review):
                changed = True
        return changed

    async def _write_status(self, cron_job: Obj, active: list[Obj], last_schedule: str | None,
                            last_successful: str | None) -> None:
        """PUT the status; on a conflict once more onto a live read (this controller is the status' only writer)."""
        target = cron_job
        for attempt in range(2):
            updated = with_status(target, active, last_schedule, last_successful)
            try:
                await self.client.update(CRON_JOBS, updated, subresource="status")
                return
            except ApiError as exc:
                if exc.code == 404:
                    return
                if exc.code != 409 or attempt:
                    raise
            meta = cron_job["metadata"]
            live = await self._live_cron_job(meta["namespace"], meta["name"])
            if live is None or live["metadata"].get("uid") != meta.get("uid"):
                return
            target = live

    def _record(self, cron_job: Obj, events: Iterable[Event]) -> None:
        for event in events:
            self.recorder.event(cron_job, event.type, event.reason, event.message)


def _namespace_terminating(exc: ApiError) -> bool:
    causes = (exc.details or {}).get("causes") or ()
    return any(cause.get("reason") == "NamespaceTerminating" for cause in causes)
