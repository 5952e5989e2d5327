"""PodTopologySpread: ``topologySpreadConstraints`` as a filter and a score, judged over all nodes at once.

What it reads
-------------
The pod's ``spec.topologySpreadConstraints`` -- or, when it has none, the
profile's default constraints (``defaultingType: List`` with the configured
``defaultConstraints``, or ``System``: hostname ``maxSkew`` 3 and zone ``maxSkew`` 5,
both ScheduleAnyway) with the selector of the Services, ReplicationController,
ReplicaSet or StatefulSet that own or select the pod (informers created here);
the shared :class:`~podlife.scheduler.topology.TopologyIndex` for matching pods
per node and each node's domains.

What it computes (Kubernetes' rules, ``pkg/scheduler/framework/plugins/podtopologyspread``)
------------------------------------------------------------------------------------------
*Filter* (DoNotSchedule constraints): a node is *eligible* for a constraint when it
carries every constraint's topology key and passes the policies (``nodeAffinityPolicy``
Honor by default: the pod's nodeSelector and required node affinity;
``nodeTaintsPolicy`` Ignore by default, Honor: its NoSchedule/NoExecute taints are
tolerated). Per domain, the pods in the pod's namespace matching the selector (not
being deleted) on eligible nodes are counted; a node passes when ``count(its domain)
+ (1 if the pod matches its own selector) - min over eligible domains <= maxSkew``,
the minimum being 0 while there are fewer eligible domains than ``minDomains``. A
node without the key: ``node(s) didn't match pod topology spread constraints (missing
required label)`` (UnschedulableAndUnresolvable); too much skew: ``node(s) didn't
match pod topology spread constraints`` (Unschedulable).

*Score* (ScheduleAnyway constraints): per feasible node, the sum over constraints of
``count(domain) * log(domains among the feasible nodes + 2) + maxSkew - 1`` (hostname:
the node's own count, weighted by the number of feasible nodes), rounded; nodes lacking
a key are ignored (score 0) unless the constraints are System defaults; normalized as
``100 * (max + min - s) / max`` so the emptiest domains win.

How
---
:meth:`PodTopologySpread.pre_filter` computes a verdict code for every row of the
cache's node list with a few numpy calls per constraint (counts per row from the
index, ``bincount`` per domain over the eligible rows, a fancy index back) into
``pod.cycle``; :meth:`filter_mask` slices it and :meth:`filter` reads one row. The
policy masks (node affinity and taints of the pod versus every node) are Python loops,
cached per pod template and cache generation.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..client.base import REPLICA_SETS, REPLICATION_CONTROLLERS, SERVICES, STATEFUL_SETS, Obj
from ..client.informer import Informer
from ..machinery.selectors import EQUALS, LabelSelector, Requirement
from .columns import NodeColumns, Rows
from .plugins import MAX_NODE_SCORE, UNRESOLVABLE, UNSCHEDULABLE, FilterPlugin, NodeAffinity, NodeInfo, PodInfo, \
    ScorePlugin, Status, TaintToleration
from .topology import (PASS, Clause, PodQuery, RowVerdictFilter, RowVerdicts, TopologyIndex, parse_selector,
                       selector_with_label_keys)

if TYPE_CHECKING:
    from .scheduler import Scheduler

ERR_CONSTRAINTS = "node(s) didn't match pod topology spread constraints"
ERR_MISSING_LABEL = ERR_CONSTRAINTS + " (missing required label)"
DO_NOT_SCHEDULE = "DoNotSchedule"
SCHEDULE_ANYWAY = "ScheduleAnyway"
HOSTNAME = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"
SYSTEM = "System"
LIST = "List"
#: Kubernetes' system default constraints (``defaultingType: System``)
SYSTEM_DEFAULT_CONSTRAINTS: tuple[dict[str, Any], ...] = (
    {"maxSkew": 3, "topologyKey": HOSTNAME, "whenUnsatisfiable": SCHEDULE_ANYWAY},
    {"maxSkew": 5, "topologyKey": ZONE, "whenUnsatisfiable": SCHEDULE_ANYWAY},
)

SKEW, MISSING_LABEL = 1, 2
_STATUSES = {
    SKEW: Status(UNSCHEDULABLE, (ERR_CONSTRAINTS,), "PodTopologySpread"),
    MISSING_LABEL: Status(UNRESOLVABLE, (ERR_MISSING_LABEL,), "PodTopologySpread"),
}


@dataclass(frozen=True, slots=True)
class Constraint:
    """One spread constraint of one pod, compiled (selector with matchLabelKeys merged)."""

    max_skew: int
    topology_key: str
    selector: LabelSelector
    query: PodQuery
    min_domains: int = 1
    honor_affinity: bool = True
    honor_taints: bool = False


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def compile_constraint(raw: dict[str, Any], pod: PodInfo, selector: LabelSelector | None = None) -> Constraint:
    """A ``TopologySpreadConstraint`` for ``pod`` (``selector`` replaces its own: default constraints)."""
    if selector is None:
        selector = parse_selector(raw.get("labelSelector"))
        selector = selector_with_label_keys(selector, pod.labels, raw.get("matchLabelKeys") or ())
    query = PodQuery((Clause(frozenset((pod.namespace,)), selector),), skip_deleting=True)
    return Constraint(
        max_skew=_int(raw.get("maxSkew"), 1),
        topology_key=str(raw.get("topologyKey") or ""),
        selector=selector,
        query=query,
        min_domains=_int(raw.get("minDomains"), 1),
        honor_affinity=(raw.get("nodeAffinityPolicy") or "Honor") == "Honor",
        honor_taints=(raw.get("nodeTaintsPolicy") or "Ignore") == "Honor",
    )


class _Spread:
    """One attempt's constraints of one kind, and whether they are the pod's own."""

    __slots__ = ("constraints", "own")

    def __init__(self, constraints: list[Constraint], own: bool) -> None:
        self.constraints, self.own = constraints, own



class _ScoreState:
    """Raw scores for every row, and which of the scored rows are ignored (normalized to 0)."""

    __slots__ = ("raw", "ignored")

    def __init__(self, raw: np.ndarray, ignored: np.ndarray) -> None:
        self.raw, self.ignored = raw, ignored


# ---- default selectors ------------------------------------------------------------------------


class OwnerSelectors:
    """Services, ReplicationControllers, ReplicaSets and StatefulSets by namespace: the selector
    Kubernetes' ``DefaultSelector`` builds for a pod from those that select or control it."""

    def __init__(self) -> None:
        self.services: dict[str, dict[str, dict[str, str]]] = {}
        self.controllers: dict[tuple[str, str, str], Any] = {}
        self.version = 0
        self._cache: dict[Hashable, LabelSelector | None] = {}
        self._cache_version = -1

    def handlers(self, kind: str) -> tuple[Any, Any, Any]:
        def add(obj: Obj) -> None:
            self.set(kind, obj)

        def update(old: Obj, new: Obj) -> None:
            self.set(kind, new)

        def delete(obj: Obj) -> None:
            self.set(kind, obj, present=False)
        return add, update, delete

    def set(self, kind: str, obj: Obj, present: bool = True) -> None:
        meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
        ns, name = meta.get("namespace") or "", meta.get("name") or ""
        selector = spec.get("selector") if present else None
        if kind == "Service":
            in_ns = self.services.setdefault(ns, {})
            before = in_ns.get(name)
            if isinstance(selector, dict):
                in_ns[name] = {str(k): str(v) for k, v in selector.items()}
            else:
                in_ns.pop(name, None)
            changed = in_ns.get(name) != before
        else:
            key = (kind, ns, name)
            changed = self.controllers.get(key) != selector or (key in self.controllers) != present
            if present:
                self.controllers[key] = selector
            else:
                self.controllers.pop(key, None)
        if changed:  # status updates (replica counts) change no selector: keep the cached answers
            self.version += 1

    def default_selector(self, pod: PodInfo) -> LabelSelector | None:
        """The pod's default selector, or None when it is empty (then no default constraints apply)."""
        owner = _controller_of(pod)
        key = (pod.namespace, tuple(sorted(pod.labels.items())), owner)
        if self._cache_version != self.version:
            self._cache.clear()
            self._cache_version = self.version
        if key in self._cache:
            return self._cache[key]
        merged: dict[str, str] = {}
        for selector in self.services.get(pod.namespace, {}).values():
            if all(pod.labels.get(k) == v for k, v in selector.items()):
                merged.update(selector)
        extra: tuple[Requirement, ...] = ()
        if owner is not None:
            spec_selector = self.controllers.get((owner[0], pod.namespace, owner[1]))
            if owner[0] == "ReplicationController" and isinstance(spec_selector, dict):
                merged.update({str(k): str(v) for k, v in spec_selector.items()})
            elif owner[0] in ("ReplicaSet", "StatefulSet") and spec_selector is not None:
                parsed = parse_selector(spec_selector)
                if not parsed.match_nothing:
                    extra = parsed.requirements
        requirements = tuple(Requirement(k, EQUALS, (v,)) for k, v in merged.items()) + extra
        result = LabelSelector(requirements) if requirements else None
        self._cache[key] = result
        return result


_CONTROLLER_KINDS = {("v1", "ReplicationController"), ("apps/v1", "ReplicaSet"), ("apps/v1", "StatefulSet")}


def _controller_of(pod: PodInfo) -> tuple[str, str] | None:
    for ref in (pod.obj.get("metadata") or {}).get("ownerReferences") or ():
        if isinstance(ref, dict) and ref.get("controller"):
            if (ref.get("apiVersion"), ref.get("kind")) in _CONTROLLER_KINDS:
                return str(ref.get("kind")), str(ref.get("name") or "")
            return None
    return None


# ---- the plugin -----------------------------------------------------------------------------


class PodTopologySpread(RowVerdictFilter, ScorePlugin):
    name = "PodTopologySpread"
    weight = 2
    statuses = _STATUSES

    def __init__(self, *, default_constraints: list[dict[str, Any]] | None = None, defaulting_type: str = "System") -> None:
        self.default_constraints = default_constraints or []
        self.defaulting_type = defaulting_type
        self.system_defaulted = defaulting_type == SYSTEM
        self._defaults: tuple[dict[str, Any], ...] = (
            SYSTEM_DEFAULT_CONSTRAINTS if self.system_defaulted else tuple(self.default_constraints))
        self.owners = OwnerSelectors()
        self.index: TopologyIndex | None = None
        self._informers: list[Informer] = []
        self._affinity_masks = NodeAffinity()
        self._taint_masks = TaintToleration()
        self._masks: dict[Hashable, np.ndarray] = {}
        self._masks_generation = -1

    # -- wiring --

    def attach(self, scheduler: Scheduler) -> None:
        self.index = TopologyIndex.for_cache(scheduler.cache)
        if scheduler.client is not None and self._defaults and not self._informers:
            for res, kind in ((SERVICES, "Service"), (REPLICATION_CONTROLLERS, "ReplicationController"),
                              (REPLICA_SETS, "ReplicaSet"), (STATEFUL_SETS, "StatefulSet")):
                informer = Informer(scheduler.client, res)
                informer.add_handlers(*self.owners.handlers(kind))
                self._informers.append(informer)

    def informers(self) -> list[Informer]:
        return list(self._informers)

    def _index(self) -> TopologyIndex:
        if self.index is None:
            raise RuntimeError("PodTopologySpread is not attached to a scheduler")
        return self.index

    # -- constraints --

    def _spread(self, pod: PodInfo, when: str) -> _Spread:
        """The pod's constraints with this ``whenUnsatisfiable``, once per attempt."""
        key = f"{self.name}/{when}"
        found = pod.cycle.get(key)
        if found is None:
            found = pod.cycle[key] = self._compile(pod, when)
        return found

    def _compile(self, pod: PodInfo, when: str) -> _Spread:
        own = (pod.obj.get("spec") or {}).get("topologySpreadConstraints")
        if own and isinstance(own, list):
            return _Spread([compile_constraint(c, pod) for c in own
                            if isinstance(c, dict) and c.get("whenUnsatisfiable") == when], True)
        wanted = [c for c in self._defaults if c.get("whenUnsatisfiable") == when]
        if not wanted:
            return _Spread([], False)
        selector = self.owners.default_selector(pod)
        if selector is None:
            return _Spread([], False)
        return _Spread([compile_constraint(c, pod, selector) for c in wanted], False)

    def applies(self, pod: PodInfo) -> bool:
        if (pod.obj.get("spec") or {}).get("topologySpreadConstraints"):
            return True
        return bool(self._defaults) and self.owners.default_selector(pod) is not None

    # -- eligibility --

    def _eligible(self, pod: PodInfo, constraint: Constraint, has_keys: np.ndarray) -> np.ndarray:
        """Rows counted for ``constraint``: every key present, and the node inclusion policies."""
        mask = has_keys
        if constraint.honor_affinity and (pod.node_selector or pod.affinity is not None):
            mask = mask & self._policy_mask(self._affinity_masks, pod, ("affinity", pod.node_selector, pod.affinity))
        if constraint.honor_taints:
            mask = mask & self._policy_mask(self._taint_masks, pod, ("taints", pod.tolerations))
        return mask

    def _policy_mask(self, plugin: FilterPlugin, pod: PodInfo, key: Hashable) -> np.ndarray:
        """Rows the static ``plugin`` lets ``pod`` onto, per pod template and cache generation."""
        index = self._index()
        num_rows = index.num_rows
        if self._masks_generation != index.cache.generation:
            self._masks.clear()
            self._masks_generation = index.cache.generation
        mask = self._masks.get(key)
        if mask is None or len(mask) != num_rows:
            check = plugin.filter
            mask = np.fromiter((check(pod, node) is None for node in index.cache.node_list), dtype=bool,
                               count=num_rows)
            self._masks[key] = mask
        return mask

    def _has_keys(self, constraints: list[Constraint]) -> np.ndarray:
        index = self._index()
        mask = np.ones(index.num_rows, dtype=bool)
        for key in {c.topology_key for c in constraints}:
            mask &= index.domains(key).valid
        return mask

    # -- filter --

    def pre_filter(self, pod: PodInfo) -> Status | None:
        constraints = self._spread(pod, DO_NOT_SCHEDULE).constraints
        if not constraints:
            pod.cycle[self.name] = None
            return None
        index = self._index()
        codes = np.zeros(index.num_rows, dtype=np.uint8)
        has_keys = self._has_keys(constraints)
        for c in constraints:
            domains = index.domains(c.topology_key)
            eligible = self._eligible(pod, c, has_keys)
            counts = index.row_counts(c.query)
            per_domain = domains.sums(counts, eligible)
            present = np.bincount(domains.ids[eligible], minlength=domains.n + 1) > 0
            num_domains = int(np.count_nonzero(present))
            lowest = int(per_domain[present].min()) if num_domains else 0
            if num_domains < c.min_domains:
                lowest = 0
            self_match = 1 if c.selector.matches(pod.labels) else 0
            skew = per_domain[domains.clipped] + (self_match - lowest)
            codes[(codes == PASS) & ~domains.valid] = MISSING_LABEL
            codes[(codes == PASS) & (skew > c.max_skew)] = SKEW
        pod.cycle[self.name] = RowVerdicts(codes)
        return None

    # -- score --

    def pre_score(self, pod: PodInfo, rows: np.ndarray) -> None:
        pod.cycle[self.name + "/score"] = self._score_state(pod, rows)

    def _score_state(self, pod: PodInfo, rows: np.ndarray) -> _ScoreState | None:
        spread = self._spread(pod, SCHEDULE_ANYWAY)
        constraints = spread.constraints
        if not constraints or not len(rows):
            return None
        index = self._index()
        rows = np.asarray(rows, dtype=np.intp)
        # System defaults spread by hostname even where nodes have no zone label
        require_all = spread.own or not self.system_defaulted
        has_keys = self._has_keys(constraints)
        ignored = ~has_keys[rows] if require_all else np.zeros(len(rows), dtype=bool)
        kept = rows[~ignored]
        total = np.zeros(len(rows), dtype=np.float64)
        for c in constraints:
            domains = index.domains(c.topology_key)
            counts = index.row_counts(c.query)
            if c.topology_key == HOSTNAME:
                size = len(kept)
                per_row = counts[rows]
            else:
                ids = domains.ids if require_all else domains.with_empty
                size = int(np.count_nonzero(np.bincount(ids[kept], minlength=domains.n + 1))) if len(kept) else 0
                eligible = self._eligible(pod, c, has_keys if require_all else np.ones(len(has_keys), dtype=bool))
                per_domain = np.bincount(ids[eligible], weights=counts[eligible], minlength=domains.n + 1)
                per_row = per_domain[ids[rows]]
            weight = math.log(size + 2)
            total += np.where(domains.valid[rows], per_row * weight + float(c.max_skew - 1), 0.0)
        scores = np.floor(total + 0.5).astype(np.int64)  # Go's math.Round: the scores are never negative
        scores[ignored] = 0
        raw = np.zeros(index.num_rows, dtype=np.int64)
        raw[rows] = scores
        ignored_rows = np.zeros(index.num_rows, dtype=bool)
        ignored_rows[rows] = ignored
        return _ScoreState(raw, ignored_rows)

    def _scores(self, pod: PodInfo) -> _ScoreState | None:
        state: _ScoreState | None = pod.cycle.get(self.name + "/score")
        return state

    def score_array(self, pod: PodInfo, columns: NodeColumns, rows: Rows) -> np.ndarray | None:
        state = self._scores(pod)
        if state is None:
            return np.zeros(len(range(columns.size)[rows]) if isinstance(rows, slice) else len(rows), dtype=np.int64)
        self._last_rows(pod, rows)
        return state.raw[rows].copy()

    def score(self, pod: PodInfo, node: NodeInfo) -> int:
        state = self._scores(pod)
        if state is None or not 0 <= node.row < len(state.raw):
            return 0
        return int(state.raw[node.row])

    def score_many(self, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        self._last_rows(pod, np.fromiter((n.row for n in nodes), dtype=np.intp, count=len(nodes)))
        return [self.score(pod, node) for node in nodes]

    def _last_rows(self, pod: PodInfo, rows: Rows) -> None:
        """Which rows the next :meth:`normalize` gets scores for (it is handed scores only)."""
        pod.cycle[self.name + "/rows"] = rows

    def normalize(self, pod: PodInfo, scores: np.ndarray) -> np.ndarray:
        """Kubernetes' NormalizeScore: ignored nodes 0; else ``100 * (max + min - s) / max`` (100 when max is 0)."""
        state = self._scores(pod)
        if state is None or not len(scores):
            return scores
        rows = pod.cycle.get(self.name + "/rows")
        ignored = state.ignored[rows] if rows is not None else np.zeros(len(scores), dtype=bool)
        valid = ~ignored
        if not valid.any():
            return np.zeros(len(scores), dtype=np.int64)
        low, high = int(scores[valid].min()), int(scores[valid].max())
        if high == 0:
            out = np.full(len(scores), MAX_NODE_SCORE, dtype=np.int64)
        else:
            out = MAX_NODE_SCORE * (high + low - scores) // high
        out[ignored] = 0
        return out
