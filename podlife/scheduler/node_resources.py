"""NodeResourcesFit and the resource arithmetic every resource score shares.

NodeResourcesFit is a filter and a score at once, as in Kubernetes: the filter says
whether the pod's requests (cpu, memory, ephemeral-storage, pods, extended resources;
init containers, sidecars and overhead counted by
:func:`~podlife.scheduler.plugins.pod_requests`) fit in what the node has left; the score
is the profile's ``scoringStrategy`` -- LeastAllocated (the default: emptier nodes win,
pods spread), MostAllocated (fuller nodes win, pods pack) or RequestedToCapacityRatio
(a configured shape). :class:`~podlife.scheduler.node_scores.BalancedAllocation` reads
the same pairs through :class:`ResourceAllocation`.

Each rule comes twice with the same results: on Python ints per node (Go's integer
arithmetic, as Kubernetes computes) and on the cache's numpy columns
(:mod:`podlife.scheduler.columns`) for every candidate at once, which is what the
scheduler uses whenever the columns can judge the pod exactly. It reads only the
NodeInfo records and the columns; it writes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import numpy as np

from .columns import NodeColumns, Rows, row_count, within_limit
from .plugins import (EPHEMERAL_STORAGE, MAX_NODE_SCORE, UNRESOLVABLE, UNSCHEDULABLE, FilterPlugin, NodeAffinity,
                      NodeInfo, NodeName, NodeReady, NodeUnschedulable, PodInfo, ScorePlugin, Status, TaintToleration)

# ---- resource scores -----------------------------------------------------------------------------
#
# kube's resourceAllocationScorer: for each configured (resource, weight), the node's
# allocatable and what would be requested with the pod there; a resource the node has none
# of (allocatable 0) is left out, and so is an extended resource the pod does not request.
# The strategies (LeastAllocated, MostAllocated, RequestedToCapacityRatio, and
# BalancedAllocation's deviation) turn those pairs into a 0..100 score. Each comes twice:
# on ints per node (Go's integer arithmetic: division truncates toward zero) and on the
# columns, which hold only rows where every value is non-negative (NodeColumns marks the
# others unsafe), so numpy's floor division is the same truncation there.

#: (weight, allocatable, requested with the pod) of one resource on one node
Pair = tuple[int, int, int]
#: the same over rows: (weight, allocatable, max(allocatable, 1), requested with the pod)
ArrayPair = tuple[int, np.ndarray, np.ndarray, np.ndarray]
#: MaxNodeScore / MaxCustomPriorityScore: a shape point's 0..10 score scaled to 0..100
SHAPE_SCORE_SCALE = MAX_NODE_SCORE // 10
MAX_UTILIZATION = 100
STRATEGIES = ("LeastAllocated", "MostAllocated", "RequestedToCapacityRatio")
#: the requestedToCapacityRatio shape used when none is given (kube's default: least allocated)
DEFAULT_SHAPE: tuple[tuple[int, int], ...] = ((0, 10), (100, 0))
#: the columns of each resource the arrays know: (allocatable, divisor, free, counted left)
_ARRAY_RESOURCES = {
    "cpu": ("alloc_cpu", "divisor_cpu", "free_cpu", "left_cpu"),
    "memory": ("alloc_memory", "divisor_memory", "free_memory", "left_memory"),
    EPHEMERAL_STORAGE: ("alloc_ephemeral", "divisor_ephemeral", "free_ephemeral", "free_ephemeral"),
}


def is_scalar_resource(name: str) -> bool:
    """kube's IsScalarResourceName: extended (domain-prefixed) resources, hugepages, attachable volumes."""
    return "/" in name or name.startswith(("hugepages-", "attachable-volumes-"))


def go_div(a: int, b: int) -> int:
    """Go's integer division (truncates toward zero), on Python ints."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


class ResourceAllocation:
    """The pairs a resource score reads, per node and over the columns (kube's
    ``calculateResourceAllocatableRequest``). ``use_requested``: cpu and memory as requested
    (BalancedAllocation); otherwise with the scoring defaults for unset requests (the fit scores)."""

    def __init__(self, resources: tuple[tuple[str, int], ...], use_requested: bool) -> None:
        if not resources:
            raise ValueError("a resource score needs at least one resource")
        self.resources = tuple((str(name), int(weight)) for name, weight in resources)
        self.use_requested = use_requested

    def pod_request(self, pod: PodInfo, name: str) -> int:
        if name == "cpu":
            return pod.cpu if self.use_requested else pod.nz_cpu
        if name == "memory":
            return pod.memory if self.use_requested else pod.nz_memory
        if name == EPHEMERAL_STORAGE:
            return pod.ephemeral
        return pod.scalar.get(name, 0)

    def pod_requests(self, pod: PodInfo) -> tuple[int, ...]:
        return tuple(self.pod_request(pod, name) for name, _ in self.resources)

    def pairs(self, pod: PodInfo, node: NodeInfo) -> list[Pair]:
        """Every resource that counts on ``node``: allocatable non-zero."""
        out: list[Pair] = []
        for name, weight in self.resources:
            request = self.pod_request(pod, name)
            if request == 0 and is_scalar_resource(name):
                continue
            if name == "cpu":
                alloc, used = node.alloc_cpu, node.req_cpu if self.use_requested else node.nz_cpu
            elif name == "memory":
                alloc, used = node.alloc_memory, node.req_memory if self.use_requested else node.nz_memory
            elif name == EPHEMERAL_STORAGE:
                alloc, used = node.alloc_ephemeral, node.req_ephemeral
            elif is_scalar_resource(name) and name in node.alloc_scalar:
                alloc, used = node.alloc_scalar[name], node.req_scalar.get(name, 0)
            else:
                continue
            if alloc != 0:
                out.append((weight, alloc, used + request))
        return out

    def array_pairs(self, pod: PodInfo, columns: NodeColumns, rows: Rows) -> list[ArrayPair] | None:
        """The same over ``rows`` (allocatable may be 0 on some: the strategies mask those);
        None when the arrays cannot say (an extended resource the pod requests, unsafe values)."""
        if not columns.exact:
            return None
        out: list[ArrayPair] = []
        for name, weight in self.resources:
            request = self.pod_request(pod, name)
            fields = _ARRAY_RESOURCES.get(name)
            if fields is None:
                if request and is_scalar_resource(name):
                    return None  # an extended resource the pod requests: per node
                continue  # skipped on every node: not requested, or not a resource kube scores
            if request < 0 or not within_limit(request):
                return None  # a negative request could make a share negative: Go's division, per node
            alloc_f, divisor_f, free_f, left_f = fields
            alloc = getattr(columns, alloc_f)[rows]
            left = getattr(columns, free_f if self.use_requested else left_f)[rows]
            requested = alloc - left  # what is counted on the node: a new array
            if request:
                requested += request
            out.append((weight, alloc, getattr(columns, divisor_f)[rows], requested))
        return out

    @staticmethod
    def zero_allocatable(pairs: list[ArrayPair]) -> bool:
        """Whether some row has allocatable 0 for one of ``pairs``' resources (then it is masked)."""
        return any(not alloc.all() for _, alloc, _, _ in pairs)


# -- the strategies on one node (ints, Go's arithmetic) --


def least_allocated_score(pairs: list[Pair]) -> int:
    score = weights = 0
    for weight, alloc, requested in pairs:
        share = 0 if requested > alloc else go_div((alloc - requested) * MAX_NODE_SCORE, alloc)
        score += share * weight
        weights += weight
    return go_div(score, weights) if weights else 0


def most_allocated_score(pairs: list[Pair]) -> int:
    score = weights = 0
    for weight, alloc, requested in pairs:
        share = go_div(min(requested, alloc) * MAX_NODE_SCORE, alloc)
        score += share * weight
        weights += weight
    return go_div(score, weights) if weights else 0


def broken_linear(shape: tuple[tuple[int, int], ...], p: int) -> int:
    """kube's BuildBrokenLinearFunction over (utilization, score) points, scores already 0..100."""
    for i, (utilization, score) in enumerate(shape):
        if p <= utilization:
            if i == 0:
                return score
            u0, s0 = shape[i - 1]
            return s0 + go_div((score - s0) * (p - u0), utilization - u0)
    return shape[-1][1]


def requested_to_capacity_score(shape: tuple[tuple[int, int], ...], pairs: list[Pair]) -> int:
    score = weights = 0
    for weight, alloc, requested in pairs:
        utilization = MAX_UTILIZATION if requested > alloc else go_div(requested * MAX_UTILIZATION, alloc)
        share = broken_linear(shape, utilization)
        if share > 0:
            score += share * weight
            weights += weight
    return go_round(score, weights) if weights else 0


def go_round(a: int, b: int) -> int:
    """``int64(math.Round(float64(a) / float64(b)))`` (half away from zero)."""
    quotient = float(a) / float(b)
    return int(math.copysign(math.floor(abs(quotient) + 0.5), quotient))


def balanced_score(pairs: list[Pair]) -> int:
    """kube's balancedResourceScorer: 100 * (1 - the standard deviation of the requested
    fractions, each capped at 1); two resources: half their difference."""
    fractions = [min(float(requested) / float(alloc), 1.0) for _, alloc, requested in pairs]
    std = 0.0
    if len(fractions) == 2:
        std = abs((fractions[0] - fractions[1]) / 2)
    elif len(fractions) > 2:
        total = 0.0
        for f in fractions:
            total += f
        mean = total / len(fractions)
        squares = 0.0
        for f in fractions:
            squares = squares + (f - mean) * (f - mean)
        std = math.sqrt(squares / len(fractions))
    return int((1 - std) * MAX_NODE_SCORE)


# -- the same on the columns (every value non-negative: floor division is Go's) --


def _weights(pairs: list[ArrayPair], masked: bool) -> np.ndarray | int:
    """Σ weight of the resources counted per row (a constant when no allocatable is 0)."""
    if not masked:
        return sum(weight for weight, _, _, _ in pairs)
    total = np.zeros(len(pairs[0][1]), dtype=np.int64)
    for weight, alloc, _, _ in pairs:
        total += (alloc > 0) * weight
    return total


def _weighted_quotient(score: np.ndarray, weights: np.ndarray | int) -> np.ndarray:
    if isinstance(weights, np.ndarray):
        score //= np.maximum(weights, 1)  # no weight: no resource, score 0 already
    elif weights > 1:
        score //= weights
    elif weights <= 0:
        score[:] = 0
    return score


def least_allocated_array(pairs: list[ArrayPair], masked: bool) -> np.ndarray:
    score: np.ndarray | None = None
    for weight, alloc, divisor, requested in pairs:
        share = alloc - requested
        share *= MAX_NODE_SCORE
        share //= divisor
        np.maximum(share, 0, out=share)  # requested > allocatable: 0 (and rows without it: masked below)
        if masked:
            share *= alloc > 0
        if weight != 1:
            share *= weight
        score = share if score is None else score + share
    assert score is not None
    return _weighted_quotient(score, _weights(pairs, masked))


def most_allocated_array(pairs: list[ArrayPair], masked: bool) -> np.ndarray:
    score: np.ndarray | None = None
    for weight, alloc, divisor, requested in pairs:
        share = np.minimum(requested, alloc)
        share *= MAX_NODE_SCORE
        share //= divisor  # allocatable 0: min(requested, 0) = 0 (requested >= 0 on safe rows)
        if weight != 1:
            share *= weight
        score = share if score is None else score + share
    assert score is not None
    return _weighted_quotient(score, _weights(pairs, masked))


def broken_linear_array(shape: tuple[tuple[int, int], ...], p: np.ndarray) -> np.ndarray:
    """:func:`broken_linear` on an array of utilizations (0..100)."""
    out = np.full(len(p), shape[-1][1], dtype=np.int64)
    for i in range(len(shape) - 1, -1, -1):  # the first point at or above p wins: assign from the last
        utilization, score = shape[i]
        below = p <= utilization
        if i == 0:
            out[below] = score
            continue
        u0, s0 = shape[i - 1]
        step = (score - s0) * (p[below] - u0)  # p > u0 there, so only the sign of the step varies
        out[below] = s0 + np.sign(step) * (np.abs(step) // (utilization - u0))
    return out


def requested_to_capacity_array(shape: tuple[tuple[int, int], ...], pairs: list[ArrayPair]) -> np.ndarray:
    score = np.zeros(len(pairs[0][1]), dtype=np.int64)
    weights = np.zeros(len(score), dtype=np.int64)
    for weight, alloc, divisor, requested in pairs:
        utilization = requested * MAX_UTILIZATION
        utilization //= divisor
        utilization[requested > alloc] = MAX_UTILIZATION
        share = broken_linear_array(shape, utilization)
        counted = (share > 0) & (alloc > 0)
        score += share * counted * weight
        weights += counted * weight
    # math.Round(score / weights), half away from zero, on non-negative values
    doubled = 2 * score + weights
    doubled //= 2 * np.maximum(weights, 1)
    return doubled


def balanced_array(pairs: list[ArrayPair], masked: bool) -> np.ndarray | None:
    """:func:`balanced_score` over the rows; None when rows would count different numbers of
    more than two resources (the per-node path then)."""
    n = len(pairs[0][1])
    if len(pairs) < 2:
        return np.full(n, MAX_NODE_SCORE, dtype=np.int64)  # one fraction or none: deviation 0
    if masked and len(pairs) > 2:
        return None
    fractions = []
    for _, _alloc, divisor, requested in pairs:
        fraction = requested / divisor
        np.minimum(fraction, 1.0, out=fraction)
        fractions.append(fraction)
    if len(pairs) == 2:
        std = np.abs((fractions[0] - fractions[1]) / 2)
        if masked:
            std *= (pairs[0][1] > 0) & (pairs[1][1] > 0)  # fewer than two fractions: 0
    else:
        total = np.zeros(n)
        for f in fractions:
            total += f
        mean = total / len(fractions)
        squares = np.zeros(n)
        for f in fractions:
            squares = squares + (f - mean) * (f - mean)
        std = np.sqrt(squares / len(fractions))
    return ((1 - std) * MAX_NODE_SCORE).astype(np.int64)


class NodeResourcesFit(FilterPlugin, ScorePlugin):
    """Filter: the pod's requests fit in what the node has left (cpu, memory,
    ephemeral-storage, pod count, any other requested resource). Score: the configured
    ``strategy`` over the configured ``resources`` (kube's ``scoringStrategy``):
    LeastAllocated (default: the share left after placing the pod, so emptier nodes win and
    pods spread), MostAllocated (the share used: bin packing), or RequestedToCapacityRatio
    (``shape``, (utilization 0..100, score 0..10) points, maps the share used to a score).
    Both also come as arrays over the cache's columns (:meth:`filter_mask`,
    :meth:`score_array`), with the same results, for the pods they can judge exactly;
    extended resources are judged node by node."""

    name = "NodeResourcesFit"
    node_local = True
    _too_many = Status(UNSCHEDULABLE, ("Too many pods",), "NodeResourcesFit")

    def __init__(self, *, strategy: str = "LeastAllocated",
                 resources: tuple[tuple[str, int], ...] = (("cpu", 1), ("memory", 1)),
                 shape: tuple[tuple[int, int], ...] = ()) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"scoring strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")
        self.strategy = strategy
        self.resources = tuple(resources)
        self.shape = tuple((int(u), int(s)) for u, s in shape)
        points = self.shape or DEFAULT_SHAPE
        #: the shape with scores scaled to 0..100, as kube builds its function
        self._shape = tuple((u, s * SHAPE_SCORE_SCALE) for u, s in points)
        self.allocation = ResourceAllocation(self.resources, use_requested=False)
        #: the default configuration: LeastAllocated on cpu and memory, weight 1 each (the fast path)
        self._default = strategy == "LeastAllocated" and self.resources == (("cpu", 1), ("memory", 1))

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        if (node.free_pods > 0
                and (not pod.cpu or pod.cpu <= node.free_cpu)
                and (not pod.memory or pod.memory <= node.free_memory)
                and (not pod.ephemeral or pod.ephemeral <= node.free_ephemeral)
                and not pod.scalar and not pod.error):
            return None
        return self._insufficient(pod, node)

    def _insufficient(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        if pod.error:
            return Status(UNRESOLVABLE, (pod.error,), self.name)
        reasons: list[str] = []
        if node.free_pods <= 0:
            reasons.append("Too many pods")
        if pod.cpu and pod.cpu > node.free_cpu:
            reasons.append("Insufficient cpu")
        if pod.memory and pod.memory > node.free_memory:
            reasons.append("Insufficient memory")
        if pod.ephemeral and pod.ephemeral > node.free_ephemeral:
            reasons.append(f"Insufficient {EPHEMERAL_STORAGE}")
        for name, value in pod.scalar.items():
            if value > node.alloc_scalar.get(name, 0) - node.req_scalar.get(name, 0):
                reasons.append(f"Insufficient {name}")
        return Status(UNSCHEDULABLE, tuple(reasons), self.name) if reasons else None

    def filter_many(self, pod: PodInfo, nodes: Iterable[NodeInfo]) -> Iterator[NodeInfo]:
        if pod.scalar or pod.error:
            yield from super().filter_many(pod, nodes)
            return
        # a resource the pod does not request never rejects a node, even an overcommitted one
        cpu = pod.cpu or -(1 << 62)
        memory = pod.memory or -(1 << 62)
        ephemeral = pod.ephemeral or -(1 << 62)
        for node in nodes:
            if (node.free_pods > 0 and cpu <= node.free_cpu and memory <= node.free_memory
                    and ephemeral <= node.free_ephemeral):
                yield node

    def filter_mask(self, pod: PodInfo, columns: NodeColumns, rows: Rows) -> np.ndarray | None:
        # other resources live in per-node dicts, and a request error needs its Status
        if (pod.scalar or pod.error or not columns.exact
                or not within_limit(pod.cpu, pod.memory, pod.ephemeral)):
            return None
        mask = columns.free_pods[rows] > 0
        if pod.cpu:
            mask &= columns.free_cpu[rows] >= pod.cpu
        if pod.memory:
            mask &= columns.free_memory[rows] >= pod.memory
        if pod.ephemeral:
            mask &= columns.free_ephemeral[rows] >= pod.ephemeral
        return mask

    # -- score --

    def score(self, pod: PodInfo, node: NodeInfo) -> int:
        pairs = self.allocation.pairs(pod, node)
        if self.strategy == "LeastAllocated":
            return least_allocated_score(pairs)
        if self.strategy == "MostAllocated":
            return most_allocated_score(pairs)
        return requested_to_capacity_score(self._shape, pairs)

    def score_many(self, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        score = self.score
        return [score(pod, node) for node in nodes]

    def score_array(self, pod: PodInfo, columns: NodeColumns, rows: Rows) -> np.ndarray | None:
        if self._default:  # the hot path: a dozen numpy calls
            if not columns.exact or min(pod.nz_cpu, pod.nz_memory) < 0 or not within_limit(pod.nz_cpu, pod.nz_memory):
                return None
            if columns.zero_allocatable("cpu") or columns.zero_allocatable("memory"):
                pairs = self.allocation.array_pairs(pod, columns, rows)
                return None if pairs is None else least_allocated_array(pairs, True)
            total = _least_allocated(columns.left_cpu[rows], columns.divisor_cpu[rows], pod.nz_cpu)
            total += _least_allocated(columns.left_memory[rows], columns.divisor_memory[rows], pod.nz_memory)
            total >>= 1  # floor division by 2: both resources count on every row
            return total
        pairs = self.allocation.array_pairs(pod, columns, rows)
        if pairs is None:
            return None
        if not pairs:
            return np.zeros(row_count(rows), dtype=np.int64)
        masked = self.allocation.zero_allocatable(pairs)
        if self.strategy == "LeastAllocated":
            return least_allocated_array(pairs, masked)
        if self.strategy == "MostAllocated":
            return most_allocated_array(pairs, masked)
        return requested_to_capacity_array(self._shape, pairs)


def _least_allocated(left: np.ndarray, divisor: np.ndarray, request: int) -> np.ndarray:
    """One resource's LeastAllocated share on rows where allocatable > 0.

    ``(left - request) * 100 // allocatable``, clamped at 0 where the request does not fit
    (kube's ``requested > capacity``). Exact on the columns (see
    :mod:`podlife.scheduler.columns`): values stay far from int64's range and are
    non-negative. Works in place on fresh arrays: numpy's per-call overhead, not the
    arithmetic, is the cost here.
    """
    share = left - request  # a new array even when ``left`` is a view
    share *= MAX_NODE_SCORE
    share //= divisor
    np.maximum(share, 0, out=share)
    return share


def default_filters() -> list[FilterPlugin]:
    """The filters that read only the node they judge, in Kubernetes' order (NodeReady where kube's
    not-ready taint would be checked): the chain the tests compare the array and per-node paths on.
    The default profile's full set is :data:`~podlife.scheduler.registry.DEFAULT_PLUGINS`."""
    return [NodeUnschedulable(), NodeName(), NodeReady(), TaintToleration(), NodeAffinity(), NodeResourcesFit()]
