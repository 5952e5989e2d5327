"""The TTL-after-finished controller: finished Jobs with ``ttlSecondsAfterFinished`` are deleted when it runs out.

As kube-controller-manager's ``ttl-after-finished-controller``
(``pkg/controller/ttlafterfinished``). What it watches: Jobs (the shared informer; an
added or updated Job is queued when it is not being deleted, has
``spec.ttlSecondsAfterFinished`` and is finished). What it writes: nothing but deletes.

Kubernetes facts followed:

* a Job is finished when its ``Complete`` or ``Failed`` condition is True; it finished at
  that condition's ``lastTransitionTime`` (a finished Job without one is an error and is
  left alone) and expires ``ttlSecondsAfterFinished`` seconds later;
* before expiry the key is queued again for the moment it expires (no polling); a Job
  that finished "in the future" (clock skew) simply waits;
* at expiry the Job is read live again and the check repeated on that version (the TTL
  may have been changed or removed meanwhile), then deleted with ``propagationPolicy:
  Background`` and a ``uid`` precondition, so its pods go with it and a Job recreated
  under the same name is never deleted by mistake;
* it records no Events (Kubernetes' does not).

The decision is the pure :func:`time_left`; :class:`TTLAfterFinishedController` does the reads and the delete.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from ..client.base import JOBS, Obj
from ..client.informer import object_key
from ..client.workqueue import WorkQueue
from ..machinery.errors import ApiError
from .cronjob import KeyTimers, finished_condition
from .manager import ControllerContext
from .pod_control import parse_time

log = logging.getLogger(__name__)


def needs_cleanup(job: Obj) -> bool:
    """A Job this controller acts on: a TTL set, finished, not being deleted."""
    return ((job.get("spec") or {}).get("ttlSecondsAfterFinished") is not None
            and finished_condition(job) is not None and not job["metadata"].get("deletionTimestamp"))


def finish_time(job: Obj) -> datetime | None:
    """When the Job finished: its True ``Complete``/``Failed`` condition's ``lastTransitionTime`` (None: unknown)."""
    for cond in (job.get("status") or {}).get("conditions") or ():
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return parse_time(cond.get("lastTransitionTime"))
    return None


def time_left(job: Obj, now: datetime) -> float | None:
    """Seconds until the Job expires (<= 0: it has), or None when the Job is not one to clean up."""
    if not needs_cleanup(job):
        return None
    finished = finish_time(job)
    if finished is None:
        log.warning("job %s: finished but the time it finished is unknown", object_key(job))
        return None
    if finished > now:
        log.info("job %s finished in the future (clock skew?); its cleanup waits", object_key(job))
    expires = finished + timedelta(seconds=int(job["spec"]["ttlSecondsAfterFinished"]))
    return (expires - now).total_seconds()


class TTLAfterFinishedController:
    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.queue = WorkQueue()
        self.timers = KeyTimers(self.queue)
        self.jobs = ctx.informers.informer(JOBS)
        self.jobs.add_handlers(self._on_job, lambda _old, new: self._on_job(new), self._on_job_gone)

    def _on_job(self, job: Obj) -> None:
        if needs_cleanup(job):
            self.queue.add(object_key(job))

    def _on_job_gone(self, job: Obj) -> None:
        self.timers.forget(object_key(job))

    async def run(self) -> None:
        await self.ctx.informers.wait_synced(JOBS)
        try:
            await self.queue.run_workers(self.sync, self.ctx.options.concurrent_ttl_after_finished_syncs)
        finally:
            self.timers.cancel_all()

    def _expired(self, job: Obj, key: str) -> bool:
        """Whether ``job`` has expired; when it will later, its key is queued for then."""
        left = time_left(job, datetime.now(timezone.utc))
        if left is None:
            return False
        if left > 0:
            self.timers.add_after(key, left)
            return False
        return True

    async def sync(self, key: str) -> None:
        namespace, _, name = key.partition("/")
        job = self.jobs.get(namespace, name)
        if job is None or not self._expired(job, key):
            return
        try:
            fresh = await self.client.get(JOBS, name, namespace)
        except ApiError as exc:
            if exc.code == 404:
                return
            raise
        if not self._expired(fresh, key):
            return
        try:
            await self.client.delete(JOBS, name, namespace, propagation_policy="Background",
                                     preconditions={"uid": fresh["metadata"]["uid"]})
        except ApiError as exc:
            if exc.code not in (404, 409):  # gone, or replaced by another Job of that name
                raise
        log.info("job %s deleted: its ttlSecondsAfterFinished ran out", key)
