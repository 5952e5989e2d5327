"""Scores judged on a node's resource balance or on the images it holds:
NodeResourcesBalancedAllocation and ImageLocality (kube's default weights: 1 each).

Design
------
Both run for nearly every pod of the default profile, so each must cost a few
microseconds, never a Python loop over the feasible nodes:

- **BalancedAllocation** reads the running totals, so it is computed for every pod, as
  arrays over the cache's columns (:class:`~podlife.scheduler.columns.NodeColumns`) with
  the same float operations, in the same order, as the per-node form -- so both give the
  same integers. As in current Kubernetes it uses the pods' *requests* (not the scoring
  defaults for unset ones) and skips pods that request none of its resources
  (:meth:`BalancedAllocation.applies`): a best-effort pod would otherwise pile onto one
  node (kubernetes#129138).
- **ImageLocality** reads only what nodes declare (``status.images``), so its raw scores
  are computed once per distinct image list and cache generation
  (:class:`~podlife.scheduler.plugins.DeclaredScores`), with the image summaries (how many
  nodes hold each image) rebuilt once per generation; a pod none of whose images any node
  holds scores 0 everywhere and is skipped.

What they read: the cache they are attached to (``Plugin.attach``); what they write: only
their own caches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .columns import NodeColumns, Rows, within_limit
from .node_resources import ResourceAllocation, balanced_array, balanced_score
from .plugins import MAX_NODE_SCORE, DeclaredScores, NodeInfo, PodInfo, ScorePlugin

if TYPE_CHECKING:
    from .cache import SchedulerCache
    from .scheduler import Scheduler

MB = 1024 * 1024
#: below this sum of image sizes a node scores 0 (kube's minThreshold)
MIN_THRESHOLD = 23 * MB
#: per container, the sum of image sizes at which a node scores 100 (kube's maxContainerThreshold)
MAX_CONTAINER_THRESHOLD = 1000 * MB


class BalancedAllocation(ScorePlugin):
    """NodeResourcesBalancedAllocation: nodes whose requested fractions of the configured
    resources (cpu and memory by default) would be closest to each other with the pod win:
    ``100 * (1 - standard deviation)`` of the fractions, each capped at 1."""

    name = "NodeResourcesBalancedAllocation"
    node_local = True
    weight = 1

    def __init__(self, *, resources: tuple[tuple[str, int], ...] = (("cpu", 1), ("memory", 1))) -> None:
        self.resources = resources
        self.allocation = ResourceAllocation(tuple(resources), use_requested=True)
        #: cpu and memory (the weights do not matter to a deviation): the fast path
        self._default = tuple(name for name, _ in resources) == ("cpu", "memory")

    def applies(self, pod: PodInfo) -> bool:
        """kube's PreScore Skip for pods that request none of the resources (best-effort pods)."""
        return any(self.allocation.pod_requests(pod))

    def score(self, pod: PodInfo, node: NodeInfo) -> int:
        return balanced_score(self.allocation.pairs(pod, node))

    def score_array(self, pod: PodInfo, columns: NodeColumns, rows: Rows) -> np.ndarray | None:
        if self._default:
            return _balanced_cpu_memory(pod, columns, rows)
        pairs = self.allocation.array_pairs(pod, columns, rows)
        if pairs is None:
            return None
        if not pairs:
            return np.full(len(rows) if isinstance(rows, np.ndarray) else columns.size, MAX_NODE_SCORE,
                           dtype=np.int64)
        return balanced_array(pairs, self.allocation.zero_allocatable(pairs))


class ImageLocality(ScorePlugin):
    """Nodes that already hold the pod's images win, by their sizes, each scaled by the share of
    nodes holding it (so an image on every node says little), clamped between 23 MB and
    1000 MB per container and mapped to 0..100 (kube's ImageLocality)."""

    name = "ImageLocality"
    node_local = True
    weight = 1

    def __init__(self) -> None:
        self._cache: SchedulerCache | None = None
        self._declared = DeclaredScores()
        self._generation = -1
        #: image name -> how many nodes hold it, for the current generation
        self._num_nodes: dict[str, int] = {}

    def attach(self, scheduler: Scheduler) -> None:
        self._cache = scheduler.cache

    def applies(self, pod: PodInfo) -> bool:
        """False when no node holds any of the pod's images: every node would score 0."""
        if self._cache is None:
            return True
        num_nodes = self._summaries(self._cache)
        return any(image in num_nodes for image in pod.images)

    def score(self, pod: PodInfo, node: NodeInfo) -> int:
        cache = self._cache
        if cache is None:
            return 0
        return self._node_score(pod.images, node, self._summaries(cache), len(cache.node_list))

    def score_array(self, pod: PodInfo, columns: NodeColumns, rows: Rows) -> np.ndarray | None:
        cache = self._cache
        if cache is None or cache.columns is not columns:
            return None
        images, num_nodes, total = pod.images, self._summaries(cache), len(cache.node_list)
        return self._declared.rows(cache, images, rows,
                                   lambda node: self._node_score(images, node, num_nodes, total))

    def _summaries(self, cache: SchedulerCache) -> dict[str, int]:
        """How many nodes hold each image name (kube's ImageStateSummary.NumNodes), per generation."""
        if self._generation != cache.generation:
            self._generation = cache.generation
            counts: dict[str, int] = {}
            for node in cache.node_list:
                for name in node.images:
                    counts[name] = counts.get(name, 0) + 1
            self._num_nodes = counts
        return self._num_nodes

    @staticmethod
    def _node_score(images: tuple[str, ...], node: NodeInfo, num_nodes: dict[str, int], total: int) -> int:
        held = node.images
        summed = 0
        for image in images:
            size = held.get(image)
            if size is not None and total:
                summed += int(float(size) * (float(num_nodes.get(image, 0)) / float(total)))
        return image_priority(summed, len(images))


def _balanced_cpu_memory(pod: PodInfo, columns: NodeColumns, rows: Rows) -> np.ndarray | None:
    """:func:`~podlife.scheduler.node_resources.balanced_array` for cpu and memory, on the ``used_*``
    columns: a dozen numpy calls, the same float operations as the per-node form."""
    if not columns.exact or min(pod.cpu, pod.memory) < 0 or not within_limit(pod.cpu, pod.memory):
        return None
    cpu = columns.used_cpu[rows]
    if pod.cpu:
        cpu += pod.cpu
    cpu = cpu / columns.divisor_cpu[rows]
    np.minimum(cpu, 1.0, out=cpu)
    memory = columns.used_memory[rows]
    if pod.memory:
        memory += pod.memory
    memory = memory / columns.divisor_memory[rows]
    np.minimum(memory, 1.0, out=memory)
    cpu -= memory
    cpu /= 2
    np.abs(cpu, out=cpu)
    if columns.zero_allocatable("cpu") or columns.zero_allocatable("memory"):
        cpu *= (columns.alloc_cpu[rows] > 0) & (columns.alloc_memory[rows] > 0)  # fewer than two fractions: 0
    np.subtract(1.0, cpu, out=cpu)
    cpu *= MAX_NODE_SCORE
    return cpu.astype(np.int64)


def image_priority(summed: int, num_containers: int) -> int:
    """kube's calculatePriority: the sum clamped to [23 MB, 1000 MB * containers], mapped to 0..100."""
    max_threshold = MAX_CONTAINER_THRESHOLD * num_containers
    summed = max(MIN_THRESHOLD, min(summed, max_threshold))
    if max_threshold <= MIN_THRESHOLD:
        return 0
    return MAX_NODE_SCORE * (summed - MIN_THRESHOLD) // (max_threshold - MIN_THRESHOLD)
