"""Indexed Jobs: completion indexes of pods and the interval strings of a Job's status.

Pure functions, no API access. Kubernetes facts followed (``pkg/controller/job``
``indexed_job_utils.go``, the "Jobs" concept page):

* an Indexed Job's pod carries its index in the annotation and the label
  ``batch.kubernetes.io/job-completion-index``; its ``generateName`` is
  ``<job>-<index>-``, its ``spec.hostname`` ``<job>-<index>``, and every container
  (init containers too) gets the variable ``JOB_COMPLETION_INDEX`` from that
  annotation through a ``fieldRef``;
* ``status.completedIndexes`` and ``status.failedIndexes`` are sorted, merged interval
  lists written ``"1,3-5,7"`` (consecutive indexes become ``a-b``); indexes at or above
  ``spec.completions`` and malformed parts are ignored when read;
* a pod whose annotation is missing, not a number, or not below ``completions`` has no
  valid index (:func:`completion_index` returns None).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

from ...client.base import Obj

COMPLETION_INDEX_KEY = "batch.kubernetes.io/job-completion-index"
INDEX_FAILURE_COUNT_KEY = "batch.kubernetes.io/job-index-failure-count"
INDEX_IGNORED_FAILURE_COUNT_KEY = "batch.kubernetes.io/job-index-ignored-failure-count"
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"

Intervals = list[tuple[int, int]]


def parse_intervals(text: str | None, completions: int | None = None) -> Intervals:
    """``"1,3-5"`` -> ``[(1, 1), (3, 5)]``, sorted and merged; parts beyond ``completions`` dropped."""
    spans: Intervals = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        first, sep, last = part.partition("-")
        try:
            low = int(first)
            high = int(last) if sep else low
        except ValueError:
            continue
        if low < 0 or high < low:
            continue
        if completions is not None:
            if low >= completions:
                continue
            high = min(high, completions - 1)
        spans.append((low, high))
    return merge_intervals(spans)


def merge_intervals(spans: Iterable[tuple[int, int]]) -> Intervals:
    merged: Intervals = []
    for low, high in sorted(spans):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


def intervals_of(indexes: Iterable[int]) -> Intervals:
    return merge_intervals((i, i) for i in indexes)


def format_intervals(spans: Iterable[tuple[int, int]]) -> str:
    """``[(1, 1), (3, 5)]`` -> ``"1,3-5"``."""
    return ",".join(str(low) if low == high else f"{low}-{high}" for low, high in merge_intervals(spans))


def with_indexes(spans: Intervals, indexes: Iterable[int]) -> Intervals:
    return merge_intervals([*spans, *((i, i) for i in indexes)])


def total(spans: Iterable[tuple[int, int]]) -> int:
    return sum(high - low + 1 for low, high in spans)


def contains(spans: Iterable[tuple[int, int]], index: int) -> bool:
    return any(low <= index <= high for low, high in spans)


def members(spans: Iterable[tuple[int, int]]) -> set[int]:
    return {i for low, high in spans for i in range(low, high + 1)}


def completion_index(pod: Obj, completions: int | None = None) -> int | None:
    """The pod's completion index (None: missing, malformed or not below ``completions``)."""
    text = ((pod.get("metadata") or {}).get("annotations") or {}).get(COMPLETION_INDEX_KEY)
    if text is None:
        return None
    try:
        index = int(str(text))
    except ValueError:
        return None
    if index < 0 or (completions is not None and index >= completions):
        return None
    return index


def index_failure_count(pod: Obj) -> int:
    """How often the pod's index failed before this pod (``batch.kubernetes.io/job-index-failure-count``)."""
    text = ((pod.get("metadata") or {}).get("annotations") or {}).get(INDEX_FAILURE_COUNT_KEY)
    try:
        return max(0, int(str(text))) if text is not None else 0
    except ValueError:
        return 0


def first_pending_indexes(count: int, completions: int, excluded: set[int]) -> list[int]:
    """The lowest ``count`` indexes below ``completions`` not in ``excluded``."""
    out: list[int] = []
    index = 0
    while len(out) < count and index < completions:
        if index not in excluded:
            out.append(index)
        index += 1
    return out


def index_env_var() -> Obj:
    return {"name": COMPLETION_INDEX_ENV,
            "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{COMPLETION_INDEX_KEY}']"}}}


def indexed_template(template: Obj, job_name: str, index: int, failure_count: int | None = None) -> Obj:
    """The job's pod template for one index: annotation, label, hostname, ``JOB_COMPLETION_INDEX``."""
    out = copy.deepcopy(template)
    meta = out.setdefault("metadata", {})
    meta["annotations"] = {**(meta.get("annotations") or {}), COMPLETION_INDEX_KEY: str(index)}
    if failure_count is not None:
        meta["annotations"][INDEX_FAILURE_COUNT_KEY] = str(failure_count)
    meta["labels"] = {**(meta.get("labels") or {}), COMPLETION_INDEX_KEY: str(index)}
    spec = out.setdefault("spec", {})
    spec["hostname"] = f"{job_name}-{index}"
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or ():
            env = container.setdefault("env", [])
            if not any(var.get("name") == COMPLETION_INDEX_ENV for var in env):
                env.append(index_env_var())
    return out


def generate_name(job_name: str, index: int) -> str:
    """``<job>-<index>-``, as Kubernetes' ``podGenerateNameWithIndex`` (the job name cut to fit)."""
    suffix = f"-{index}-"
    limit = 63 - 5  # generated names get 5 random characters and must stay a DNS label
    return f"{job_name[:max(0, limit - len(suffix))]}{suffix}"
