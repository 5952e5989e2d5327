"""InterPodAffinity: required and preferred pod affinity and anti-affinity, judged over all nodes at once.

What it reads
-------------
The pod's ``spec.affinity.podAffinity`` / ``podAntiAffinity`` terms, and the shared
:class:`~podlife.scheduler.topology.TopologyIndex`: pods matching a query per node,
existing pods' terms per node, each node's topology domains, namespaces' labels
(a namespace informer, created here, feeds the index for ``namespaceSelector``).

What it computes (Kubernetes' rules, ``pkg/scheduler/framework/plugins/interpodaffinity``)
-----------------------------------------------------------------------------------------
*Filter*, in Kubernetes' order, the first failure being the node's reason:

1. required affinity: for every term, the node has the term's topology key and its
   domain holds a pod matching *all* the pod's affinity terms -- unless no such pod
   exists anywhere and the pod matches all its own terms (the first of a group that
   wants to be together may go anywhere the keys exist). ``node(s) didn't match pod
   affinity rules``, UnschedulableAndUnresolvable;
2. required anti-affinity: no term's domain on the node holds a pod matching it.
   ``node(s) didn't match pod anti-affinity rules``, Unschedulable;
3. existing pods' required anti-affinity (symmetry): no pod whose anti-affinity term
   matches this pod sits in the node's domain of that term's key. ``node(s) didn't
   satisfy existing pods anti-affinity rules``, Unschedulable.

*Score*: per node, the sum over the node's domains of the weights of the pod's
preferred terms matched by pods there (anti-affinity subtracts), plus existing pods'
required affinity terms matching this pod (``hardPodAffinityWeight`` each) and their
preferred terms; normalized to 0..100 by (score - min) / (max - min), as Kubernetes.

How
---
:meth:`InterPodAffinity.pre_filter` computes a verdict code for every row of the
cache's node list with a few numpy calls per term (counts per row from the index,
``bincount`` per domain, a fancy index back to rows) into ``pod.cycle``;
:meth:`filter_mask` slices it for the candidates and :meth:`filter` reads one row,
so both forms agree by construction. :meth:`pre_score` does the same for scores.

*Retries.* The scheduler retries unschedulable pods when a node changes or a pod
goes away, which covers anti-affinity and spread; a pod whose required affinity
matches no pod anywhere waits for a pod to *arrive*. Such pods' queries are kept
(``_waiting``) and the first charged pod matching one moves the unschedulable pods
back to the queue (Kubernetes' AssignedPodAdd event for this plugin).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..client.base import NAMESPACES
from ..client.informer import Informer
from .columns import NodeColumns, Rows
from .plugins import MAX_NODE_SCORE, UNRESOLVABLE, UNSCHEDULABLE, NodeInfo, PodInfo, ScorePlugin, Status
from .topology import (NO_TERMS, PREFERRED_AFFINITY, PREFERRED_ANTI, REQUIRED_AFFINITY, REQUIRED_ANTI, PodQuery,
                       PASS, PodTerms, RowVerdictFilter, RowVerdicts, TopologyIndex, pod_terms)

if TYPE_CHECKING:
    from .scheduler import Scheduler

ERR_AFFINITY = "node(s) didn't match pod affinity rules"
ERR_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
ERR_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"

#: the per-row verdict codes of the filter (0: passes)
AFFINITY, ANTI, EXISTING_ANTI = 1, 2, 3
#: affinity queries kept for retries at most (beyond, pods wait for the queue's periodic flush)
MAX_WAITING = 1024
_STATUSES = {
    AFFINITY: Status(UNRESOLVABLE, (ERR_AFFINITY,), "InterPodAffinity"),
    ANTI: Status(UNSCHEDULABLE, (ERR_ANTI_AFFINITY,), "InterPodAffinity"),
    EXISTING_ANTI: Status(UNSCHEDULABLE, (ERR_EXISTING_ANTI_AFFINITY,), "InterPodAffinity"),
}



class InterPodAffinity(RowVerdictFilter, ScorePlugin):
    name = "InterPodAffinity"
    weight = 2
    statuses = _STATUSES

    def __init__(self, *, hard_pod_affinity_weight: int = 1, ignore_preferred_terms_of_existing_pods: bool = False) -> None:
        self.hard_pod_affinity_weight = hard_pod_affinity_weight
        self.ignore_preferred_terms_of_existing_pods = ignore_preferred_terms_of_existing_pods
        self.index: TopologyIndex | None = None
        self._namespaces: Informer | None = None
        self._scheduler: Scheduler | None = None
        #: affinity queries of pods that found no node because nothing matched them (see the module docstring)
        self._waiting: dict[PodQuery, None] = {}

    # -- wiring --

    def attach(self, scheduler: Scheduler) -> None:
        self.index = TopologyIndex.for_cache(scheduler.cache)
        if self._scheduler is None:
            self._scheduler = scheduler
            scheduler.cache.pod_listeners.append(self._on_pod)
        if scheduler.client is not None and self._namespaces is None:
            self._namespaces = Informer(scheduler.client, NAMESPACES)
            index = self.index
            self._namespaces.add_handlers(index.set_namespace, lambda old, new: index.set_namespace(new),
                                          index.remove_namespace)

    def informers(self) -> list[Informer]:
        return [self._namespaces] if self._namespaces is not None else []

    def _on_pod(self, pod: PodInfo, node_name: str, sign: int) -> None:
        """A pod arrived that a pod waiting for affinity may want: retry the unschedulable pods."""
        if sign <= 0 or not self._waiting or self._scheduler is None:
            return
        if any(query.matches(pod) for query in self._waiting):
            self._waiting.clear()
            self._scheduler.queue.move_all()

    def _index(self) -> TopologyIndex:
        if self.index is None:
            raise RuntimeError("InterPodAffinity is not attached to a scheduler")
        return self.index

    def _terms(self, pod: PodInfo) -> PodTerms:
        """The pod's compiled terms, once per attempt (``pod.cycle`` is emptied before each)."""
        key = self.name + "/terms"
        terms = pod.cycle.get(key)
        if terms is None:
            terms = pod.cycle[key] = pod_terms(pod)
        return terms

    def applies(self, pod: PodInfo) -> bool:
        """Pods with terms, and every pod while existing pods carry terms that may concern it."""
        if self._terms(pod) is not NO_TERMS:
            return True
        index = self._index()
        if index.has_terms(REQUIRED_ANTI):
            return True
        if self.ignore_preferred_terms_of_existing_pods:
            return False
        return ((self.hard_pod_affinity_weight > 0 and index.has_terms(REQUIRED_AFFINITY))
                or index.has_terms(PREFERRED_AFFINITY) or index.has_terms(PREFERRED_ANTI))

    # -- filter --

    def pre_filter(self, pod: PodInfo) -> Status | None:
        index = self._index()
        terms = self._terms(pod)
        existing = index.matching_terms(pod)[REQUIRED_ANTI] if index.has_terms(REQUIRED_ANTI) else []
        if not terms.has_required and not existing:
            pod.cycle[self.name] = None  # nothing to check: every node passes
            return None
        codes = np.zeros(index.num_rows, dtype=np.uint8)
        if terms.required_affinity:
            codes[~self._affinity_ok(pod, terms, index)] = AFFINITY
        if terms.required_anti:
            bad = np.zeros(len(codes), dtype=bool)
            for term in terms.required_anti:
                query = PodQuery((term.clause(index.namespace_labels),))
                bad |= _occupied(index, term.topology_key, index.row_counts(query))
            codes[(codes == PASS) & bad] = ANTI
        if existing:
            bad = np.zeros(len(codes), dtype=bool)
            for term in existing:
                bad |= _occupied(index, term.topology_key, index.term_row_counts(REQUIRED_ANTI, term))
            codes[(codes == PASS) & bad] = EXISTING_ANTI
        pod.cycle[self.name] = RowVerdicts(codes)
        return None

    def _affinity_ok(self, pod: PodInfo, terms: PodTerms, index: TopologyIndex) -> np.ndarray:
        """Rows where every required affinity term is satisfied (Kubernetes' ``satisfyPodAffinity``)."""
        clauses = tuple(t.clause(index.namespace_labels) for t in terms.required_affinity)
        query = PodQuery(clauses)
        counts = index.row_counts(query)  # pods matching all the terms, per row
        ok = np.ones(index.num_rows, dtype=bool)
        has_keys = ok.copy()
        any_match = False
        for term in terms.required_affinity:
            domains = index.domains(term.topology_key)
            per_domain = domains.sums(counts)
            any_match = any_match or bool(per_domain.any())
            has_keys &= domains.valid
            ok &= domains.valid & (per_domain[domains.clipped] > 0)
        if not any_match and all(c.matches(pod) for c in clauses):
            return has_keys  # the first of a group with affinity to itself
        if not any_match and len(self._waiting) < MAX_WAITING:
            self._waiting[query] = None
        return ok

    # -- score --

    def pre_score(self, pod: PodInfo, rows: np.ndarray) -> None:
        pod.cycle[self.name + "/score"] = self._raw_scores(pod)

    def _raw_scores(self, pod: PodInfo) -> np.ndarray:
        """Every row's summed weights (Kubernetes' topologyScore read at each node's labels)."""
        index = self._index()
        terms = self._terms(pod)
        total = np.zeros(index.num_rows, dtype=np.int64)
        if self.ignore_preferred_terms_of_existing_pods and not terms.has_preferred:
            return total  # Kubernetes skips scoring
        ns = index.namespace_labels
        for weighted, sign in ((terms.preferred_affinity, 1), (terms.preferred_anti, -1)):
            for term, weight in weighted:
                counts = index.row_counts(PodQuery((term.clause(ns),)))
                total += (sign * weight) * index.domains(term.topology_key).spread(counts)
        matching = index.matching_terms(pod)
        hard = self.hard_pod_affinity_weight
        for kind, factor in ((REQUIRED_AFFINITY, hard), (PREFERRED_AFFINITY, 1), (PREFERRED_ANTI, -1)):
            if not factor:
                continue
            for term in matching[kind]:
                counts = index.term_row_counts(kind, term)  # carriers (summed weights for preferred terms)
                total += factor * index.domains(term.topology_key).spread(counts)
        return total

    def _scores(self, pod: PodInfo) -> np.ndarray:
        key = self.name + "/score"
        scores = pod.cycle.get(key)
        if scores is None:
            scores = pod.cycle[key] = self._raw_scores(pod)
        return scores

    def score_array(self, pod: PodInfo, columns: NodeColumns, rows: Rows) -> np.ndarray | None:
        return self._scores(pod)[rows].copy()

    def score(self, pod: PodInfo, node: NodeInfo) -> int:
        scores = self._scores(pod)
        return int(scores[node.row]) if 0 <= node.row < len(scores) else 0

    def normalize(self, pod: PodInfo, scores: np.ndarray) -> np.ndarray:
        """Kubernetes' NormalizeScore: ``100 * (s - min) / (max - min)`` in floating point, truncated."""
        if not len(scores):
            return scores
        low, high = int(scores.min()), int(scores.max())
        if high == low:
            return np.zeros(len(scores), dtype=np.int64)
        shares = (scores - low).astype(np.float64) / float(high - low)
        return (float(MAX_NODE_SCORE) * shares).astype(np.int64)


def _occupied(index: TopologyIndex, key: str, counts: np.ndarray) -> np.ndarray:
    """Rows that have label ``key`` and whose domain holds at least one of ``counts``."""
    domains = index.domains(key)
    return domains.valid & (domains.sums(counts)[domains.clipped] > 0)
