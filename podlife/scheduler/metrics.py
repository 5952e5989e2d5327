"""The scheduler's Prometheus metrics, with kube-scheduler's names, labels and buckets.

Design
------
What it reads: the scheduler's decisions (hooks in :mod:`podlife.scheduler.scheduler`
and :mod:`podlife.scheduler.preemption` call :class:`SchedulerMetrics`), and, at
scrape time only, the scheduling queue and the pod informer's cache (pending pods).
What it writes: the process-wide registry (:mod:`podlife.machinery.metrics`).

- ``scheduler_schedule_attempts_total{result,profile}`` and
  ``scheduler_scheduling_attempt_duration_seconds{result,profile}``: one per attempt,
  ``scheduled`` once the binding is written (the attempt spans the scheduling
  algorithm *and* the binding, as in kube-scheduler), ``unschedulable`` when the pod
  fits nowhere, ``error`` when the attempt or its binding failed for another reason.
  The profile is the pod's ``schedulerName``.
- ``scheduler_pending_pods{queue}``: ``active``, ``backoff`` and ``unschedulable`` are the
  queue's pods (those being tried are in none, as in Kubernetes); ``gated`` the pods
  this scheduler would queue but for their ``spec.schedulingGates``.
- ``scheduler_preemption_attempts_total``: every run of DefaultPreemption's PostFilter
  (counted whatever it found, as kube's deferred increment); ``scheduler_preemption_victims``:
  the victims of each chosen candidate.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

from ..machinery.metrics import Children, exponential_buckets

__all__ = ["PREEMPTION_ATTEMPTS", "PREEMPTION_VICTIMS", "SchedulerMetrics"]

ATTEMPTS = Counter(
    "scheduler_schedule_attempts_total",
    "Number of attempts to schedule pods, by the result. 'unschedulable' means a pod could not be scheduled, "
    "while 'error' means an internal scheduler problem.", ["result", "profile"])
ATTEMPT_DURATION = Histogram(
    "scheduler_scheduling_attempt_duration_seconds",
    "Scheduling attempt latency in seconds (scheduling algorithm + binding)", ["result", "profile"],
    buckets=exponential_buckets(0.001, 2, 15))
PREEMPTION_ATTEMPTS = Counter("scheduler_preemption_attempts_total", "Total preemption attempts in the cluster till now")
PREEMPTION_VICTIMS = Histogram("scheduler_preemption_victims", "Number of selected preemption victims",
                               buckets=exponential_buckets(1, 2, 7))

SCHEDULED, UNSCHEDULABLE, ERROR = "scheduled", "unschedulable", "error"
_attempts: Children[Any] = Children(ATTEMPTS)
_durations: Children[Any] = Children(ATTEMPT_DURATION)


class SchedulerMetrics:
    """One scheduler's attempts in flight (when each began) and its queue, for the collector."""

    def __init__(self, scheduler: Any) -> None:
        self._scheduler = weakref.ref(scheduler)
        self._started: dict[str, float] = {}
        _SCHEDULERS.add(self)

    def attempt_started(self, key: str) -> None:
        self._started[key] = time.perf_counter()

    def attempt_ended(self, key: str, result: str, profile: str) -> None:
        """The attempt for ``key`` ended with ``result`` (one observation; none if it never began)."""
        started = self._started.pop(key, None)
        if started is None:
            return
        labels = (result, profile)
        _attempts.get(labels).inc()
        _durations.get(labels).observe(time.perf_counter() - started)

    def pending(self) -> dict[str, int]:
        scheduler = self._scheduler()
        counts = {"active": 0, "backoff": 0, "unschedulable": 0, "gated": 0}
        if scheduler is None:
            return counts
        for where, n in scheduler.queue.counts().items():
            if where in counts:
                counts[where] += n
        for pod in list(scheduler.pod_informer.cache.values()):
            spec = pod.get("spec") or {}
            if spec.get("schedulingGates") and not spec.get("nodeName") and scheduler._responsible(pod):
                counts["gated"] += 1
        return counts


_SCHEDULERS: weakref.WeakSet[SchedulerMetrics] = weakref.WeakSet()


class _PendingPods:
    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "scheduler_pending_pods",
            "Number of pending pods, by the queue type. 'active' means number of pods in activeQ; 'backoff' means "
            "number of pods in backoffQ; 'unschedulable' means number of pods in unschedulablePods that the "
            "scheduler attempted to schedule and failed; 'gated' is the number of unschedulable pods that the "
            "scheduler never attempted to schedule because they are gated.", labels=["queue"])
        totals = {"active": 0, "backoff": 0, "unschedulable": 0, "gated": 0}
        for source in list(_SCHEDULERS):
            for queue, n in source.pending().items():
                totals[queue] += n
        for queue, n in totals.items():
            family.add_metric([queue], n)
        yield family


REGISTRY.register(_PendingPods())  # type: ignore[arg-type,unused-ignore]
