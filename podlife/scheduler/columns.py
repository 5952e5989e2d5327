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
:class:`NodeColumns` keeps one int64 array per quantity the filter and score read
(``free_*`` and ``left_*`` as :class:`~podlife.scheduler.plugins.NodeInfo` has
them, and LeastAllocated's divisors ``divisor_*``: allocatable, but at least 1),
indexed by the node's position in the
:class:`~podlife.scheduler.cache.SchedulerCache`'s ``node_list``. A
:class:`~podlife.scheduler.plugins.NodeInfo` attached to the columns writes its
row whenever its totals change (``NodeInfo._derive``), so the columns can never
disagree with the per-node Python path. Capacity doubles as nodes are added; the
cache moves a row when it fills a removed node's slot with the last node.

The arrays are exact only while every value fits comfortably in int64:
LeastAllocated multiplies by 100 before dividing. A row whose values exceed
:data:`SAFE_LIMIT` (or whose counted requests are negative, which would let the
score divide by a zero allocatable) is marked *unsafe*; while any row is, the
array plugins decline and the scheduler takes the per-node Python path, which
computes with unbounded integers.
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
FIELDS = ("free_cpu", "free_memory", "free_pods", "left_cpu", "left_memory", "divisor_cpu", "divisor_memory")
INITIAL_CAPACITY = 64

#: a selection of rows: a slice when every node is selected (a view, no copy), else positions
Rows = slice | np.ndarray


def within_limit(*values: int) -> bool:
    """True when int64 arithmetic on these values (as the array plugins do it) is exact."""
    return max(values) <= SAFE_LIMIT and min(values) >= -SAFE_LIMIT


class NodeColumns:
    """int64 columns of per-node totals; row ``i`` is ``node_list[i]``."""

    __slots__ = ("size", "_data", "_unsafe") + FIELDS
    free_cpu: np.ndarray
    free_memory: np.ndarray
    free_pods: np.ndarray
    left_cpu: np.ndarray
    left_memory: np.ndarray
    divisor_cpu: np.ndarray
    divisor_memory: np.ndarray

    def __init__(self, capacity: int = INITIAL_CAPACITY) -> None:
        self.size = 0
        #: rows whose values the arrays cannot hold exactly (see the module docstring)
        self._unsafe: set[int] = set()
        self._allocate(max(capacity, 1))

    # -- state --

    @property
    def capacity(self) -> int:
        return self._data.shape[1]

    @property
    def exact(self) -> bool:
        """True when every row holds its node's values exactly, so array verdicts are trustworthy."""
        return not self._unsafe

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

    def store(self, row: int, node: NodeInfo) -> None:
        """Write ``node``'s totals to ``row`` (called by ``NodeInfo._derive`` on every change)."""
        values = (node.free_cpu, node.free_memory, node.free_pods, node.left_cpu, node.left_memory,
                  max(node.alloc_cpu, 1), max(node.alloc_memory, 1))
        if within_limit(*values) and node.nz_cpu >= 0 and node.nz_memory >= 0:
            self._data[:, row] = values
            if self._unsafe:
                self._unsafe.discard(row)
        else:
            self._unsafe.add(row)

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
