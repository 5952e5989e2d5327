"""The Job controller: pods for each Job until enough succeed, or the Job fails.

As kube-controller-manager's ``job-controller``. What it watches: Jobs and Pods
(shared informers; pods reach their Job through the ``BY_CONTROLLER`` index, never a
scan). What it writes: pods from each Job's template (with the tracking finalizer),
deletions of pods, the finalizer's removal, the Job's ``status`` (through the status
subresource, a PUT pinned to the resourceVersion read, so a stale cache fails with a
conflict instead of counting twice) and Events (``SuccessfulCreate`` "Created pod: <p>",
``SuccessfulDelete`` "Deleted pod: <p>", ``Completed`` "Job completed", a Warning with the
failure reason and message, ``Suspended``/``Resumed``).

One sync of a Job (Kubernetes' ``syncJob``):

1. count its pods (:func:`~.tracking.assess`);
2. decide whether it is failing or met its success policy (:mod:`.finish`); if so,
   delete its active pods (finalizers kept: they are counted);
3. otherwise -- expectations met, Job not being deleted -- create or delete pods as
   :func:`~.manage.plan_manage` says (after the failure :mod:`.backoff`), then check
   whether its completions are reached, and keep the ``Suspended`` condition;
4. count the finished pods through ``uncountedTerminatedPods`` and remove their
   finalizers (:func:`~.tracking.tally`), and once nothing is terminating or uncounted
   write the terminal condition.

Expectations (:class:`~podlife.controllers.pod_control.Expectations`) keep a lagging pod
informer from making a sync create twice; removals of finalizers in flight are
remembered too, so a pod the informer still shows with its finalizer is not counted
again. Pods whose Job is gone or finished (an orphan after ``kubectl delete job``, whose
pods the garbage collector deletes) lose the finalizer through a second queue, so they
can go.

The backoff's first delay is :data:`~.backoff.DEFAULT_BACKOFF` (10 s); the constructor
takes another (``pod_backoff``) for a quicker controller.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from datetime import datetime, timezone

from ...client.base import JOBS, PODS, Obj
from ...client.informer import object_key
from ...client.shared_informers import BY_CONTROLLER
from ...client.workqueue import WorkQueue
from ...machinery.errors import ApiError
from ...machinery.timeutil import format_rfc3339
from ..manager import ControllerContext
from ..pod_control import Expectations, controller_of, controller_ref, is_ready, pod_from_template, slow_start_batch
from . import backoff, indexed
from .finish import Finish, completions_reached, decide_failure, success
from .manage import index_failure_counts, last_index_failures, plan_manage
from .tracking import (
    JOB_TRACKING_FINALIZER,
    SUSPENDED,
    Assessment,
    assess,
    clean_uncounted,
    condition_true,
    counters_view,
    ensure_condition,
    has_backoff_limit_per_index,
    has_tracking_finalizer,
    is_finished,
    is_suspended,
    remove_finalizer_patch,
    tally,
    uid_of,
)

log = logging.getLogger(__name__)

CONTROLLER_NAME = "kubernetes.io/job-controller"
#: how soon a sync whose status write met a conflict runs again
CONFLICT_RETRY = 0.1


def _job_key_of_pod(pod: Obj) -> str | None:
    ref = controller_of(pod)
    if ref is None or ref.get("kind") != "Job" or not str(ref.get("apiVersion", "")).startswith("batch/"):
        return None
    return f"{pod['metadata'].get('namespace')}/{ref.get('name')}"


def _rv(obj: Obj | None) -> int:
    try:
        return int((obj or {}).get("metadata", {}).get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


class JobController:
    def __init__(self, ctx: ControllerContext, *, pod_backoff: float = backoff.DEFAULT_BACKOFF) -> None:
        self.client = ctx.client
        self.informers = ctx.informers
        self.workers = max(1, ctx.options.concurrent_job_syncs)
        self.recorder = ctx.recorder()
        self.jobs = ctx.informers.informer(JOBS)
        self.pods = ctx.informers.informer(PODS)
        self.pods_by_owner = ctx.informers.index(PODS, BY_CONTROLLER)
        self.queue = WorkQueue()
        self.orphans = WorkQueue()
        self.expectations = Expectations()
        self.pod_backoff = pod_backoff
        self._backoff: dict[str, backoff.BackoffRecord] = {}
        self._removing: dict[str, set[str]] = {}  # job key -> pod uids whose finalizer removal is not seen yet
        self._written: dict[str, Obj] = {}  # job key -> the Job as our last status write returned it
        self.jobs.add_handlers(self._job_added, self._job_updated, self._job_deleted)
        self.pods.add_handlers(self._pod_added, self._pod_updated, self._pod_deleted)

    async def run(self) -> None:
        await self.informers.wait_synced(JOBS, PODS)
        for pod in list(self.pods.cache.values()):
            if has_tracking_finalizer(pod):
                self._check_orphan(pod)
        await asyncio.gather(self.queue.run_workers(self._sync, self.workers),
                             self.orphans.run_workers(self._sync_orphan, 1))

    # ------------------------------------------------------------------ handlers (enqueue only)

    def _job_added(self, job: Obj) -> None:
        self.queue.add(object_key(job))

    def _job_updated(self, old: Obj, new: Obj) -> None:
        self.queue.add(object_key(new))

    def _job_deleted(self, job: Obj) -> None:
        key = object_key(job)
        self.queue.add(key)
        for pod in self.pods_by_owner.get(uid_of(job)):
            self._check_orphan(pod)

    def _owner_key(self, pod: Obj) -> str | None:
        return _job_key_of_pod(pod)

    def _pod_added(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key is None:
            if has_tracking_finalizer(pod):
                self._check_orphan(pod)
            return
        job = self.jobs.cache.get(key)
        if job is None or uid_of(job) != (controller_of(pod) or {}).get("uid"):
            self._check_orphan(pod)
            return
        self.expectations.creation_observed(key)
        self.queue.add(key)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        key = self._owner_key(new)
        old_key = self._owner_key(old)
        if old_key and old_key != key:
            self.queue.add(old_key)
        if new["metadata"].get("deletionTimestamp") and not old["metadata"].get("deletionTimestamp") and key:
            self.expectations.deletion_observed(key, object_key(new))
        if key is not None and not has_tracking_finalizer(new):
            self._removal_observed(key, uid_of(new))
        if key is None:
            if has_tracking_finalizer(new):
                self._check_orphan(new)
            return
        job = self.jobs.cache.get(key)
        if job is None or uid_of(job) != (controller_of(new) or {}).get("uid") or is_finished(job):
            if has_tracking_finalizer(new):
                self._check_orphan(new)
            if job is None:
                return
        self.queue.add(key)

    def _pod_deleted(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key is None:
            return
        self.expectations.deletion_observed(key, object_key(pod))
        self._removal_observed(key, uid_of(pod))
        self.queue.add(key)

    def _removal_observed(self, key: str, uid: str) -> None:
        removing = self._removing.get(key)
        if removing is not None:
            removing.discard(uid)
            if not removing:
                del self._removing[key]

    def _check_orphan(self, pod: Obj) -> None:
        if has_tracking_finalizer(pod):
            self.orphans.add(object_key(pod))

    # ------------------------------------------------------------------ orphans

    async def _sync_orphan(self, pod_key: str) -> None:
        """Remove the finalizer of a pod whose Job is gone, replaced or finished."""
        namespace, _, name = pod_key.partition("/")
        pod = self.pods.get(namespace, name)
        if pod is None or not has_tracking_finalizer(pod):
            return
        ref = controller_of(pod)
        key = self._owner_key(pod)
        if key is not None and ref is not None:
            job = self.jobs.cache.get(key)
            if job is not None and uid_of(job) == ref.get("uid") and not is_finished(job):
                return  # the Job's own sync counts it
        await self._remove_finalizer(pod)

    async def _remove_finalizer(self, pod: Obj) -> bool:
        """Remove the tracking finalizer (a pod that is gone counts as done).

        One strategic merge patch whose ``$deleteFromPrimitiveList`` drops just ours,
        whatever other finalizers the pod has (the API server leaves out a list it
        empties, as Kubernetes does). It carries the pod's uid: a pod of that name
        that is not the one seen (409) means ours is gone, as a 404 does.
        """
        meta = pod["metadata"]
        try:
            await self.client.patch(PODS, meta["name"], remove_finalizer_patch(uid_of(pod)), meta.get("namespace"),
                                    patch_type="strategic")
        except ApiError as exc:
            if exc.code != 404 and not (exc.code == 409 and "Precondition failed: UID" in exc.message):
                raise
        return True

    # ------------------------------------------------------------------ the sync

    def _current_job(self, key: str) -> Obj | None:
        cached = self.jobs.cache.get(key)
        written = self._written.get(key)
        if cached is None:
            self._written.pop(key, None)
            return None
        if written is not None and uid_of(written) == uid_of(cached) and _rv(written) > _rv(cached):
            return written
        self._written.pop(key, None)
        return cached

    def _forget(self, key: str) -> None:
        self.expectations.forget(key)
        self._backoff.pop(key, None)
        self._removing.pop(key, None)
        self._written.pop(key, None)

    async def _sync(self, key: str) -> None:
        shared = self._current_job(key)
        if shared is None:
            self._forget(key)
            return
        spec = shared.get("spec") or {}
        if spec.get("managedBy") not in (None, CONTROLLER_NAME):
            return
        pods = self.pods_by_owner.get(uid_of(shared))
        if is_finished(shared):
            self._backoff.pop(key, None)
            await asyncio.gather(*(self._remove_finalizer(p) for p in pods if has_tracking_finalizer(p)))
            return
        if spec.get("completionMode") not in (None, "NonIndexed", "Indexed"):
            self.recorder.event(shared, "Warning", "UnknownCompletionMode",
                                "Skipped Job sync because completion mode is unknown")
            return
        job = copy.deepcopy(shared)
        job.setdefault("status", {})
        try:
            await JobSync(self, key, job, pods).run()
        except ApiError as exc:
            if exc.code != 409:
                raise
            # the Job changed since our cache saw it: look again once the informer caught up
            self._written.pop(key, None)
            self.queue.add_after(key, CONFLICT_RETRY)

    async def write_status(self, key: str, job: Obj) -> Obj:
        written = await self.client.update(JOBS, job, subresource="status")
        self._written[key] = written
        return copy.deepcopy(written)


class JobSync:
    """One sync of one Job (the state Kubernetes keeps in ``syncJobCtx``)."""

    def __init__(self, controller: JobController, key: str, job: Obj, pods: list[Obj]) -> None:
        self.c = controller
        self.key = key
        self.job = job
        self.pods = pods
        self.now = datetime.now(timezone.utc)
        self.now_text = format_rfc3339(self.now)
        self.expected_rm = set(controller._removing.get(key, ()))
        self.a: Assessment = assess(job, pods, self.expected_rm)
        self.active = len(self.a.active)
        self.ready = self.a.ready
        self.terminating = self.a.terminating
        self.requeue: float | None = None

    @property
    def status(self) -> Obj:
        return self.job.setdefault("status", {})

    def _requeue_in(self, seconds: float) -> None:
        self.requeue = seconds if self.requeue is None else min(self.requeue, seconds)

    async def run(self) -> None:
        c, job, a = self.c, self.job, self.a
        before = counters_view(self.status)
        satisfied = c.expectations.satisfied(self.key)
        if not self.status.get("startTime") and not is_suspended(job):
            self.status["startTime"] = self.now_text
        old_record = c._backoff.get(self.key, backoff.BackoffRecord())
        self.new_record = backoff.next_record(old_record, len(a.new_succeeded), a.new_failed_counted, time.monotonic())
        finish, left = decide_failure(job, a, self.now)
        if left is not None and left > 0:
            self._requeue_in(left)
        error: BaseException | None = None
        if finish is not None:
            deleted, deleted_ready, error = await self._delete_pods(a.active, keep_finalizers=True)
            if deleted != len(a.active) or not satisfied:
                finish = None  # pods still to go, or not all seen yet: no terminal decision this time
            self.active -= deleted
            self.terminating += deleted
            self.ready -= deleted_ready
        else:
            managed = False
            if satisfied and not job["metadata"].get("deletionTimestamp"):
                error = await self._manage()
                managed = True
            if completions_reached(job, a.succeeded, self.active):
                finish = success()
            elif managed:
                self._suspension()
        self.status["active"] = self.active
        self.status["ready"] = self.ready
        self.status["terminating"] = self.terminating
        if not self.status["active"]:
            self.status.pop("active")
        await self._track(finish, counters_view(self.status) != before)
        if self.requeue is not None:
            c.queue.add_after(self.key, self.requeue)
        if error is not None:
            raise error

    # ------------------------------------------------------------------ suspension

    def _suspension(self) -> None:
        job, c = self.job, self.c
        conditions = self.status.get("conditions") or []
        if is_suspended(job):
            conditions, changed = ensure_condition(conditions, SUSPENDED, "True", "JobSuspended", "Job suspended",
                                                   self.now_text)
            if changed:
                c.recorder.event(job, "Normal", "Suspended", "Job suspended")
            if self.active == 0:
                self.status.pop("startTime", None)
        else:
            conditions, changed = ensure_condition(conditions, SUSPENDED, "False", "JobResumed", "Job resumed",
                                                   self.now_text)
            if changed:
                c.recorder.event(job, "Normal", "Resumed", "Job resumed")
                self.status["startTime"] = self.now_text
        if conditions:
            self.status["conditions"] = conditions

    # ------------------------------------------------------------------ pods

    async def _manage(self) -> BaseException | None:
        c, job, a = self.c, self.job, self.a
        if has_backoff_limit_per_index(job):
            wait = 0.0
            waits = backoff.index_waits(last_index_failures(job, a), time.time(), c.pod_backoff)
        else:
            wait = backoff.remaining(self.new_record, time.monotonic(), c.pod_backoff)
            waits = {}
        plan = plan_manage(job, a, wait, waits)
        if plan.wait > 0:
            self._requeue_in(plan.wait)
        if plan.delete:
            c.expectations.expect_deletions(self.key, [object_key(p) for p in plan.delete])
            deleted, deleted_ready, error = await self._delete_pods(plan.delete, keep_finalizers=False)
            self.active -= deleted
            self.terminating += deleted
            self.ready -= deleted_ready
            return error
        if plan.create:
            return await self._create(plan.create)
        return None

    async def _delete_pods(self, pods: list[Obj], *, keep_finalizers: bool) -> tuple[int, int, BaseException | None]:
        """Delete ``pods`` (their finalizer removed first unless kept); how many went, how many were ready, an error."""
        c = self.c

        async def delete(pod: Obj) -> bool:
            meta = pod["metadata"]
            try:
                if not keep_finalizers and has_tracking_finalizer(pod):
                    await c._remove_finalizer(pod)
                await c.client.delete(PODS, meta["name"], meta.get("namespace"))
            except ApiError as exc:
                if not keep_finalizers:
                    c.expectations.deletion_observed(self.key, object_key(pod))
                if exc.code != 404:
                    raise
                return True
            c.recorder.event(self.job, "Normal", "SuccessfulDelete", f"Deleted pod: {meta['name']}")
            return True

        results = await asyncio.gather(*(delete(p) for p in pods), return_exceptions=True)
        deleted = ready = 0
        error: BaseException | None = None
        for pod, result in zip(pods, results):
            if isinstance(result, BaseException):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                error = error or result
                continue
            deleted += 1
            ready += 1 if is_ready(pod) else 0
        return deleted, ready, error

    async def _create(self, indexes: list[int | None]) -> BaseException | None:
        c, job = self.c, self.job
        meta = job["metadata"]
        template = copy.deepcopy((job.get("spec") or {}).get("template") or {})
        tmeta = template.setdefault("metadata", {})
        finalizers = list(tmeta.get("finalizers") or ())
        if JOB_TRACKING_FINALIZER not in finalizers:
            finalizers.append(JOB_TRACKING_FINALIZER)
        tmeta["finalizers"] = finalizers
        ref = controller_ref(job, "batch/v1", "Job")
        failure_counts = index_failure_counts(job, self.a) if has_backoff_limit_per_index(job) else {}
        queue = list(indexes)
        c.expectations.expect_creations(self.key, len(queue))

        async def create() -> None:
            index = queue.pop(0)
            if index is None:
                pod = pod_from_template(template, job, ref)
            else:
                count = failure_counts.get(index, 0) if has_backoff_limit_per_index(job) else None
                pod = pod_from_template(indexed.indexed_template(template, meta["name"], index, count), job, ref)
                pod["metadata"]["generateName"] = indexed.generate_name(meta["name"], index)
            try:
                created = await c.client.create(PODS, pod, meta["namespace"])
            except ApiError as exc:
                c.expectations.creation_failed(self.key)
                c.recorder.event(job, "Warning", "FailedCreate", f"Error creating: {exc}")
                raise
            except Exception:
                c.expectations.creation_failed(self.key)
                raise
            c.recorder.event(job, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")

        done, error = await slow_start_batch(len(queue), create)
        self.active += done
        skipped = len(queue)
        if skipped:
            c.expectations.creation_failed(self.key, skipped)
        return error

    # ------------------------------------------------------------------ counting and the end

    async def _track(self, finish: Finish | None, changed: bool) -> None:
        """Count finished pods, remove their finalizers, and write the end when it is reached."""
        c, job, a = self.c, self.job, self.a
        flush = changed
        uids_with_finalizer = {uid_of(p) for p in self.pods if has_tracking_finalizer(p) and uid_of(p) not in self.expected_rm}
        if clean_uncounted(self.status, uids_with_finalizer):
            flush = True
        result = tally(job, a, self.status, self.expected_rm, finish is not None and finish.failure, finish is not None)
        flush = flush or result.changed
        if finish is not None:
            conditions = self.status.get("conditions") or []
            if not condition_true(job, finish.target):
                conditions, _ = ensure_condition(conditions, finish.target, "True", finish.reason, finish.message,
                                                 self.now_text)
                self.status["conditions"] = conditions
                flush = True
        if flush:
            self.job = job = await c.write_status(self.key, job)
            c._backoff[self.key] = self.new_record
            flush = False
        error = await self._remove_finalizers(result.remove_finalizers, uids_with_finalizer)
        if clean_uncounted(self.status, uids_with_finalizer):
            flush = True
        if error is not None:
            if flush:
                await c.write_status(self.key, job)
            raise error
        finished = False
        if finish is not None and not result.capped and not self._uncounted_left() and self.terminating == 0:
            conditions, _ = ensure_condition(self.status.get("conditions") or [], finish.final, "True",
                                             finish.reason, finish.message, self.now_text)
            self.status["conditions"] = conditions
            if finish.final == "Complete":
                self.status["completionTime"] = self.now_text
            finished = flush = True
        if flush:
            self.job = await c.write_status(self.key, job)
        if finished:
            self._record_finished(finish)  # type: ignore[arg-type]

    def _uncounted_left(self) -> bool:
        uncounted = self.status.get("uncountedTerminatedPods") or {}
        return bool(uncounted.get("succeeded") or uncounted.get("failed"))

    async def _remove_finalizers(self, pods: list[Obj], uids_with_finalizer: set[str]) -> BaseException | None:
        if not pods:
            return None
        c = self.c
        removing = c._removing.setdefault(self.key, set())
        removing.update(uid_of(p) for p in pods)
        results = await asyncio.gather(*(c._remove_finalizer(p) for p in pods), return_exceptions=True)
        error: BaseException | None = None
        for pod, res in zip(pods, results):
            if isinstance(res, BaseException):
                if isinstance(res, asyncio.CancelledError):
                    raise res
                removing.discard(uid_of(pod))
                error = error or res
            else:
                uids_with_finalizer.discard(uid_of(pod))
        if not removing:
            c._removing.pop(self.key, None)
        return error

    def _record_finished(self, finish: Finish) -> None:
        job, c = self.job, self.c
        c._backoff.pop(self.key, None)
        if finish.final == "Complete":
            completions = (job.get("spec") or {}).get("completions")
            if completions is not None and int(self.status.get("succeeded") or 0) > int(completions):
                c.recorder.event(job, "Warning", "TooManySucceededPods",
                                 "Too many succeeded pods running after completion count reached")
            c.recorder.event(job, "Normal", "Completed", "Job completed")
        else:
            c.recorder.event(job, "Warning", finish.reason, finish.message)

