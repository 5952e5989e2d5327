"""The delay before a Job replaces failed pods: exponential, reset by a success.

Pure, no API access. Kubernetes facts followed (``pkg/controller/job/backoff_utils.go``,
the "Jobs" page, "Pod backoff failure policy"): after failures the controller re-creates
pods only after ``base * 2^(failures-1)`` -- 10 s, 20 s, 40 s ... -- capped at six minutes,
counted from the last failure; ``failures`` are those since the last success (a
succeeded pod starts the count again). Only creation waits: counting, deletion and the
Job's conditions never do. With ``backoffLimitPerIndex`` each index waits on its own:
the delay for its failures so far (the failure-count annotations of its last failed pod,
plus that failure), counted from when that pod finished (:func:`index_waits`).

:class:`BackoffRecord` is what the controller remembers per Job (in memory, as
Kubernetes' ``backoffStore``: a restarted controller starts with no delay).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ...client.base import Obj
from ..pod_control import parse_time

#: the first delay (Kubernetes' DefaultJobPodFailureBackOff); the controller takes another in its constructor
DEFAULT_BACKOFF = 10.0
#: the longest delay
MAX_BACKOFF = 360.0


@dataclass(frozen=True)
class BackoffRecord:
    #: failed pods since the last succeeded one
    failures: int = 0
    #: when the last of them was seen failed (a monotonic or epoch clock, the caller's)
    last_failure: float = 0.0


def delay_for(failures: int, base: float = DEFAULT_BACKOFF, cap: float = MAX_BACKOFF) -> float:
    """The delay after ``failures`` consecutive failures (0 for none)."""
    if failures <= 0 or base <= 0:
        return 0.0
    if failures > 64:
        return cap
    return min(cap, base * (2 ** (failures - 1)))


def next_record(record: BackoffRecord, new_succeeded: int, new_failed: int, now: float) -> BackoffRecord:
    """The record after a sync that saw ``new_succeeded`` and ``new_failed`` pods finish."""
    if new_succeeded > 0:
        record = BackoffRecord()
    if new_failed > 0:
        return BackoffRecord(record.failures + new_failed, now)
    return record


def remaining(record: BackoffRecord, now: float, base: float = DEFAULT_BACKOFF, cap: float = MAX_BACKOFF) -> float:
    """Seconds until pods may be created again (0: now)."""
    if record.failures <= 0:
        return 0.0
    return max(0.0, record.last_failure + delay_for(record.failures, base, cap) - now)


def finished_at(pod: Obj) -> float | None:
    """When the pod finished (epoch seconds): its last container's exit, else its Ready condition's change."""
    status = pod.get("status") or {}
    times = []
    for cs in [*(status.get("initContainerStatuses") or ()), *(status.get("containerStatuses") or ())]:
        moment = parse_time(((cs.get("state") or {}).get("terminated") or {}).get("finishedAt"))
        if moment is not None:
            times.append(moment.timestamp())
    if times:
        return max(times)
    for condition in status.get("conditions") or ():
        if condition.get("type") == "Ready":
            moment = parse_time(condition.get("lastTransitionTime"))
            if moment is not None:
                return moment.timestamp()
    return None


def index_waits(last_failed: Iterable[tuple[int, int, float | None]], now: float,
                base: float = DEFAULT_BACKOFF, cap: float = MAX_BACKOFF) -> dict[int, float]:
    """Per index, seconds until it may get a new pod: ``(index, failures so far, finished at)`` of its last failure."""
    waits: dict[int, float] = {}
    for index, failures, at in last_failed:
        if at is None:
            continue
        left = at + delay_for(failures, base, cap) - now
        if left > 0:
            waits[index] = left
    return waits
