"""What every component's Prometheus metrics share: buckets, cheap children, merged registries.

Design
------
One process-wide registry: prometheus_client's default ``REGISTRY``. In ``podlife up``
every component runs in the API server's process, so the API server's ``/metrics``
shows the API server's, the scheduler's and the kubelets' metrics together, as one
scrape of a whole (small) cluster.

Three things are shared by the components' metric modules (``api/metrics.py``,
``scheduler/metrics.py``, ``node/metrics.py``, ``kubelet/metrics.py``):

- **Kubernetes' bucket boundaries** (the same numbers as its ``metrics.go`` files, so
  dashboards and SLO queries written for Kubernetes read podlife's histograms alike).
- **Children per label tuple** (:class:`Children`): ``metric.labels(...)`` validates
  and locks on every call (about a microsecond); the request path looks the child up
  in a plain dict instead. The set of label tuples is small (verbs x resources x codes).
- **Registries merged at scrape time** (:class:`MergedRegistries`): a kubelet keeps
  its metrics in its own registry so that its ``/metrics`` shows only its node; the
  process registry shows the sum of every live kubelet's (histograms and counters add
  up bucket by bucket). Nothing is copied until someone scrapes.

The store's commit latency (``etcd_request_duration_seconds``) is defined here too:
the store is the layer below everything but this one, and observes it once per group
commit.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from prometheus_client import REGISTRY, CollectorRegistry, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import Metric

# Kubernetes' counters and histograms have no ``_created`` series; nor do ours.
disable_created_metrics()

__all__ = [
    "API_LATENCY_BUCKETS", "TEXT_CONTENT_TYPE", "Children", "MergedRegistries", "POD_STARTUP_BUCKETS",
    "STORAGE_COMMIT_SECONDS", "exponential_buckets", "exposition", "merged_kubelets", "observe_commit",
]


def exponential_buckets(start: float, factor: float, count: int) -> list[float]:
    """Go's ``metrics.ExponentialBuckets``: ``count`` bounds from ``start``, each ``factor`` times the last."""
    return [start * factor ** i for i in range(count)]


#: apiserver_request_duration_seconds and etcd_request_duration_seconds (endpoints/metrics, etcd3/metrics)
API_LATENCY_BUCKETS = (0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3,
                       4, 5, 6, 8, 10, 15, 20, 30, 45, 60)
#: the kubelet's podStartupDurationBuckets (pod_start_duration, pod_start_sli_duration, pod_start_total_duration)
POD_STARTUP_BUCKETS = (0.5, 1, 2, 3, 4, 5, 6, 8, 10, 20, 30, 45, 60, 120, 180, 240, 300, 360, 480, 600, 900,
                       1200, 1800, 2700, 3600)

M = TypeVar("M")


class Children(Generic[M]):
    """``metric.labels(*values)`` remembered per label tuple: a dict lookup on the hot path."""

    __slots__ = ("_metric", "_children")

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], M] = {}

    def get(self, values: tuple[str, ...]) -> M:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


#: the text exposition format Kubernetes' components serve (what ``generate_latest`` writes)
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def exposition(registry: Any = REGISTRY) -> bytes:
    """The text format (0.0.4) of ``registry``, as Kubernetes' components serve ``/metrics``."""
    return generate_latest(registry)


class MergedRegistries:
    """A collector for the process registry: the sum of several registries' samples.

    Registries join with :meth:`add` and leave when garbage collected (a stopped
    kubelet's metrics vanish with it). Samples with the same name and labels add up,
    which is right for counters, histograms and count-like gauges.
    """

    def __init__(self) -> None:
        self._registries: weakref.WeakSet[CollectorRegistry] = weakref.WeakSet()

    def add(self, registry: CollectorRegistry) -> None:
        self._registries.add(registry)

    def discard(self, registry: CollectorRegistry) -> None:
        self._registries.discard(registry)

    def describe(self) -> list[Metric]:
        return []  # unchecked collector: its families depend on who joined

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
        for registry in list(self._registries):
            for family in registry.collect():
                into = merged.get(family.name)
                if into is None:
                    into = merged[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
                    values[family.name] = {}
                sums = values[family.name]
                for sample in family.samples:
                    key = (sample.name, tuple(sorted(sample.labels.items())))
                    sums[key] = sums.get(key, 0.0) + sample.value
        for name, family in merged.items():
            for (sample_name, labels), value in values[name].items():
                family.add_sample(sample_name, dict(labels), value)
            yield family


#: every node agent's registry (real kubelets and the simulator), shown by the process registry
merged_kubelets = MergedRegistries()
REGISTRY.register(merged_kubelets)  # type: ignore[arg-type,unused-ignore]  # a collector by duck typing


STORAGE_COMMIT_SECONDS = Histogram(
    "etcd_request_duration_seconds",
    "Etcd request latency in seconds for each operation and object type. podlife: one observation per "
    "group commit of the store (operation=commit), every write of those milliseconds in one transaction.",
    ["operation", "group", "resource"], buckets=API_LATENCY_BUCKETS)
_COMMIT = STORAGE_COMMIT_SECONDS.labels("commit", "", "")


def observe_commit(seconds: float) -> None:
    """One group commit of the store took ``seconds``."""
    _COMMIT.observe(seconds)


def sum_over(objects: Iterable[Any], count: Callable[[Any], dict[str, int]]) -> dict[str, int]:
    """The per-key sum of ``count(obj)`` over ``objects`` (for collectors reading several owners)."""
    total: dict[str, int] = {}
    for obj in objects:
        for key, n in count(obj).items():
            total[key] = total.get(key, 0) + n
    return total


__all__ += ["sum_over"]
