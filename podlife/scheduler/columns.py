"""Every node's running totals as numpy columns, so a pod can be judged against all nodes at once.

Why
---
The resource filter and the LeastAllocated score are a handful of integer
operations per node. Done in a Python loop over the few hundred nodes
``percentageOfNodesToScore`` examines, the interpreter's per-node overhead is
most of the scheduler's CPU; done as array operations over all nodes, the cost
per node is nanoseconds and a pod costs a few dozen numpy calls.

How
---
:class:`NodeColumns` keeps one int64 array per quantity the filter and the scores
read (``free_*`` and ``left_*`` as :class:`~podlife.scheduler.plugins.NodeInfo` has
them, allocatable ``alloc_*``, what is requested ``used_*`` (cpu and memory, for
BalancedAllocation), and the divisors ``divisor_*``: allocatable, but at least 1), indexed by the node's position in the
:class:`~podlife.scheduler.cache.SchedulerCache`'s ``node_list``. What a score needs
besides is derived: requested = allocatable - free (ephemeral-storage), counted (with
the scoring defaults) = allocatable - left. A
:class:`~podlife.scheduler.plugins.NodeInfo` attached to the columns writes its
row whenever its totals change (``NodeInfo._derive``), so the columns can never
disagree with the per-node Python path. Capacity doubles as nodes are added; the
cache moves a row when it fills a removed node's slot with the last node. Rows
whose allocatable cpu, memory or ephemeral-storage is 0 are remembered
(:meth:`NodeColumns.zero_allocatable`): kube leaves such a resource out of a node's
score, which costs the scores a mask, so they pay it only while such a row exists.

The arrays are exact only while every value fits comfortably in int64 and is
non-negative: the scores multiply by 100 before dividing, and numpy's floor division
is Go's truncating one only on non-negative operands. A row whose values exceed
:data:`SAFE_LIMIT`, or whose allocatable or counted requests are negative, is marked
*unsafe*; while any row is, the array plugins decline and the scheduler takes the
per-node Python path, which computes with unbounded integers and Go's division.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .plugins import NodeInfo

#: magnitude beyond which a value may overflow int64 once LeastAllocated scales it by 100
SAFE_LIMIT = 1 << 50
#: one column each: NodeInfo's attributes of the same name, and ``max(alloc_*, 1)`` for
#: ``divisor_*`` (LeastAllocated only keeps a quotient where the pod's counted request
#: fits in what is left, which needs allocatable > 0; the 1 spares numpy a division by
#: zero, and the score a mask, elsewhere)
FIELDS = ("free_cpu", "free_memory", "free_pods", "left_cpu", "left_memory", "divisor_cpu", "divisor_memory",
          "free_ephemeral", "divisor_ephemeral", "alloc_cpu", "alloc_memory", "alloc_ephemeral",
          "used_cpu", "used_memory")
#: the resources whose rows with allocatable 0 are remembered
ZERO_TRACKED = ("cpu", "memory", "ephemeral-storage")
INITIAL_CAPACITY = 64

#: a selection of rows: a slice when every node is selected (a view, no copy), else positions
Rows = slice | np.ndarray


def row_count(rows: Rows) -> int:
    """How many rows a selection holds (a slice of the columns or an array of positions)."""
    return len(rows) if isinstance(rows, np.ndarray) else len(range(*rows.indices(1 << 62)))


def within_limit(*values: int) -> bool:
    """True when int64 arithmetic on these values (as the array plugins do it) is exact."""
    return max(values) <= SAFE_LIMIT and min(values) >= -SAFE_LIMIT


class NodeColumns:
    """int64 columns of per-node totals; row ``i`` is ``node_list[i]``."""

    __slots__ = ("size", "_data", "_unsafe", "_zero") + FIELDS
    free_cpu: np.ndarray
    free_memory: np.ndarray
    free_pods: np.ndarray
    left_cpu: np.ndarray
    left_memory: np.ndarray
    divisor_cpu: np.ndarray
    divisor_memory: np.ndarray
    free_ephemeral: np.ndarray
    divisor_ephemeral: np.ndarray
    alloc_cpu: np.ndarray
    alloc_memory: np.ndarray
    alloc_ephemeral: np.ndarray
    used_cpu: np.ndarray
    used_memory: np.ndarray

    def __init__(self, capacity: int = INITIAL_CAPACITY) -> None:
        self.size = 0
        #: rows whose values the arrays cannot hold exactly (see the module docstring)
        self._unsafe: set[int] = set()
        #: per resource, the rows whose allocatable is 0
        self._zero: dict[str, set[int]] = {name: set() for name in ZERO_TRACKED}
        self._allocate(max(capacity, 1))

    # -- state --

    @property
    def capacity(self) -> int:
        return self._data.shape[1]

    @property
    def exact(self) -> bool:
        """True when every row holds its node's values exactly, so array verdicts are trustworthy."""
        return not self._unsafe

    def zero_allocatable(self, resource: str) -> bool:
        """True when some row's allocatable ``resource`` (cpu, memory, ephemeral-storage) is 0."""
        return bool(self._zero[resource])

    def all_rows(self) -> slice:
        return slice(0, self.size)

    # -- keeping in sync with the node list --

    def attach(self, node: NodeInfo, row: int) -> None:
        """``node`` now sits at ``row`` (the end of the list, or a removed node's slot); write its row."""
        if row > self.size:
            raise IndexError(f"row {row} leaves a gap after {self.size} rows")
        if row == self.size:
            if row == self.capacity:
                self._grow()
            self.size += 1
        node.columns, node.row = self, row
        self.store(row, node)

    def detach(self, node: NodeInfo) -> None:
        """``node`` left the list: its later changes must not touch a row another node may now own."""
        if node.columns is self:
            node.columns = None

    def truncate(self, size: int) -> None:
        """The list shrank to ``size`` nodes (after a removal)."""
        self.size = size
        if self._unsafe:
            self._unsafe = {row for row in self._unsafe if row < size}
        for name, rows in self._zero.items():
            if rows:
                self._zero[name] = {row for row in rows if row < size}

    def store(self, row: int, node: NodeInfo) -> None:
        """Write ``node``'s totals to ``row`` (called by ``NodeInfo._derive`` on every change)."""
        values = (node.free_cpu, node.free_memory, node.free_pods, node.left_cpu, node.left_memory,
                  max(node.alloc_cpu, 1), max(node.alloc_memory, 1), node.free_ephemeral,
                  max(node.alloc_ephemeral, 1), node.alloc_cpu, node.alloc_memory, node.alloc_ephemeral,
                  node.req_cpu, node.req_memory)
        if (within_limit(*values) and min(node.nz_cpu, node.nz_memory, node.req_cpu, node.req_memory,
                                          node.req_ephemeral, node.alloc_cpu, node.alloc_memory,
                                          node.alloc_ephemeral) >= 0):
            self._data[:, row] = values
            if self._unsafe:
                self._unsafe.discard(row)
        else:
            self._unsafe.add(row)
        for name, alloc in (("cpu", node.alloc_cpu), ("memory", node.alloc_memory),
                            ("ephemeral-storage", node.alloc_ephemeral)):
            zero = self._zero[name]
            if alloc == 0:
                zero.add(row)
            elif zero:
                zero.discard(row)

    # -- storage --

    def _allocate(self, capacity: int, keep: np.ndarray | None = None) -> None:
        data = np.zeros((len(FIELDS), capacity), dtype=np.int64)
        if keep is not None:
            data[:, :keep.shape[1]] = keep
        self._data = data
        for i, name in enumerate(FIELDS):  # contiguous views, so column operations stream
            setattr(self, name, data[i])

    def _grow(self) -> None:
        self._allocate(self.capacity * 2, self._data)
