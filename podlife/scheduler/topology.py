"""The index that InterPodAffinity and PodTopologySpread share: pods per node per query, domains per key.

Why
---
Both plugins ask the same two questions for every pod: "how many pods that
match this (namespace set, label selector) sit on each node?" and "which
topology domain (value of a node label) is each node in?". Answering them by
walking the cache's pods for every pod to schedule costs O(pods) Python per
pod, far too slow at 10,000 pods. Pods stamped from one template ask the same
questions, so the answers are kept and moved incrementally instead.

What it reads
-------------
- every charge (+1) and un-charge (-1) of a pod to a node, bound or assumed,
  through :attr:`SchedulerCache.pod_listeners <podlife.scheduler.cache.SchedulerCache.pod_listeners>`;
- the cache's ``node_list`` and ``generation`` (rows move when a node is removed;
  label changes bump the generation);
- namespaces' labels (for ``namespaceSelector``), fed by a namespace informer the
  InterPodAffinity plugin creates, or by tests through :meth:`TopologyIndex.set_namespace`.

What it keeps
-------------
- a stable *slot* per node name (rows move, slots never do); per-query and
  per-term count arrays are indexed by slot, and ``row_slots`` (rebuilt once per
  cache generation) maps the rows of ``node_list`` to slots, so a count per row
  is one fancy index;
- :class:`PodQuery` counts: for each distinct query some pod asked for, the
  number of matching pods per slot, updated on every charge; a new query is
  counted once from the cache's pods, the least recently used ones are dropped
  beyond :data:`MAX_QUERIES`;
- existing pods' terms: for each distinct :class:`AffinityTerm` carried by
  existing pods (required anti-affinity, required affinity, preferred affinity
  and preferred anti-affinity), the number (or the summed weight) of carriers per
  slot; an incoming pod tests each distinct term against its own labels once;
- :class:`KeyDomains` per topology key and generation: each row's domain id
  (-1 when the node lacks the label). A domain's count is then ``np.bincount``
  over rows and a verdict for every row a fancy index.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..client.base import Obj
from ..machinery.selectors import (EQUALS, NOT_IN, NOTHING, LabelSelector, Requirement, SelectorError,
                                   label_selector_from_dict)
from .cache import SchedulerCache
from .columns import NodeColumns, Rows
from .plugins import FilterPlugin, NodeInfo, PodInfo, Status

#: distinct pod queries kept counted at most (least recently used dropped first)
MAX_QUERIES = 512
INITIAL_SLOTS = 64

#: the kinds of existing pods' terms the index keeps
REQUIRED_ANTI = "required-anti-affinity"
REQUIRED_AFFINITY = "required-affinity"
PREFERRED_AFFINITY = "preferred-affinity"
PREFERRED_ANTI = "preferred-anti-affinity"
KINDS = (REQUIRED_ANTI, REQUIRED_AFFINITY, PREFERRED_AFFINITY, PREFERRED_ANTI)


# ---- terms and queries ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Clause:
    """Pods in one of ``namespaces`` (None: any namespace) whose labels ``selector`` matches."""

    namespaces: frozenset[str] | None
    selector: LabelSelector

    def matches(self, pod: PodInfo) -> bool:
        return (self.namespaces is None or pod.namespace in self.namespaces) and self.selector.matches(pod.labels)


@dataclass(frozen=True, slots=True)
class PodQuery:
    """Existing pods matching every clause (affinity: all the pod's terms at once); spread skips
    pods being deleted, as Kubernetes' ``countPodsMatchSelector``."""

    clauses: tuple[Clause, ...]
    skip_deleting: bool = False

    def matches(self, pod: PodInfo) -> bool:
        if self.skip_deleting and pod.deleting:
            return False
        return all(c.matches(pod) for c in self.clauses)


@dataclass(frozen=True, slots=True)
class AffinityTerm:
    """A ``PodAffinityTerm`` as Kubernetes' scheduler holds it (``framework.AffinityTerm``).

    ``namespaces`` already holds the owner's namespace when the term names neither
    namespaces nor a selector; ``namespace_selector`` None selects no namespace,
    :data:`EVERYTHING` every one.
    """

    namespaces: frozenset[str]
    namespace_selector: LabelSelector | None
    selector: LabelSelector
    topology_key: str

    def matches(self, pod: PodInfo, namespace_labels: Mapping[str, str] | None) -> bool:
        """Kubernetes' ``AffinityTerm.Matches``: the pod's namespace is named or selected, and its labels match."""
        if pod.namespace not in self.namespaces and not (
                self.namespace_selector is not None and self.namespace_selector.matches(namespace_labels or {})):
            return False
        return self.selector.matches(pod.labels)

    def clause(self, namespace_labels: Mapping[str, Mapping[str, str]]) -> Clause:
        """The term as a query clause, its namespace selector resolved against the known namespaces
        (as Kubernetes' ``mergeAffinityTermNamespacesIfNotEmpty``)."""
        ns_sel = self.namespace_selector
        if ns_sel is not None and ns_sel.empty:
            return Clause(None, self.selector)
        names = set(self.namespaces)
        if ns_sel is not None:
            names.update(name for name, labels in namespace_labels.items() if ns_sel.matches(labels))
        return Clause(frozenset(names), self.selector)


@dataclass(frozen=True, slots=True)
class PodTerms:
    """The pod affinity and anti-affinity terms of one pod (weights for the preferred ones)."""

    required_affinity: tuple[AffinityTerm, ...] = ()
    required_anti: tuple[AffinityTerm, ...] = ()
    preferred_affinity: tuple[tuple[AffinityTerm, int], ...] = ()
    preferred_anti: tuple[tuple[AffinityTerm, int], ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.required_affinity or self.required_anti or self.preferred_affinity or self.preferred_anti)

    @property
    def has_required(self) -> bool:
        return bool(self.required_affinity or self.required_anti)

    @property
    def has_preferred(self) -> bool:
        return bool(self.preferred_affinity or self.preferred_anti)


NO_TERMS = PodTerms()


def selector_with_label_keys(selector: LabelSelector, labels: Mapping[str, str],
                             match_keys: Iterable[Any], mismatch_keys: Iterable[Any] = ()) -> LabelSelector:
    """``matchLabelKeys`` (``key in (own value)``) and ``mismatchLabelKeys`` (``key notin (own value)``)
    merged into the selector, for keys the pod carries (as the API server merges them)."""
    extra = [Requirement(k, EQUALS, (labels[k],)) for k in match_keys if isinstance(k, str) and k in labels]
    extra += [Requirement(k, NOT_IN, (labels[k],)) for k in mismatch_keys if isinstance(k, str) and k in labels]
    if not extra or selector.match_nothing:
        return selector
    return LabelSelector(selector.requirements + tuple(extra))


def parse_selector(obj: Any) -> LabelSelector:
    """A ``metav1.LabelSelector``; null and invalid ones select nothing."""
    if obj is None:
        return NOTHING
    try:
        return label_selector_from_dict(obj)
    except SelectorError:
        return NOTHING


def _term(raw: Any, pod: PodInfo) -> AffinityTerm | None:
    if not isinstance(raw, dict):
        return None
    raw_selector = raw.get("labelSelector")
    selector = parse_selector(raw_selector)
    if raw_selector is not None:
        selector = selector_with_label_keys(selector, pod.labels, raw.get("matchLabelKeys") or (),
                                            raw.get("mismatchLabelKeys") or ())
    names = frozenset(n for n in raw.get("namespaces") or () if isinstance(n, str))
    raw_ns = raw.get("namespaceSelector")
    ns_selector = None if raw_ns is None else parse_selector(raw_ns)
    if not names and ns_selector is None:
        names = frozenset((pod.namespace,))
    return AffinityTerm(names, ns_selector, selector, str(raw.get("topologyKey") or ""))


def _required(group: Any, pod: PodInfo) -> tuple[AffinityTerm, ...]:
    raw = group.get("requiredDuringSchedulingIgnoredDuringExecution") if isinstance(group, dict) else None
    return tuple(t for t in (_term(r, pod) for r in raw or ()) if t is not None)


def _preferred(group: Any, pod: PodInfo) -> tuple[tuple[AffinityTerm, int], ...]:
    raw = group.get("preferredDuringSchedulingIgnoredDuringExecution") if isinstance(group, dict) else None
    out = []
    for r in raw or ():
        if not isinstance(r, dict):
            continue
        term, weight = _term(r.get("podAffinityTerm"), pod), r.get("weight")
        if term is not None and isinstance(weight, int) and weight:
            out.append((term, weight))
    return tuple(out)


def pod_terms(pod: PodInfo) -> PodTerms:
    """The pod's ``spec.affinity.podAffinity`` / ``podAntiAffinity`` terms, compiled (NO_TERMS for most pods)."""
    affinity = (pod.obj.get("spec") or {}).get("affinity")
    if not isinstance(affinity, dict):
        return NO_TERMS
    aff, anti = affinity.get("podAffinity"), affinity.get("podAntiAffinity")
    if not aff and not anti:
        return NO_TERMS
    terms = PodTerms(_required(aff, pod), _required(anti, pod), _preferred(aff, pod), _preferred(anti, pod))
    return NO_TERMS if terms.empty else terms


# ---- domains --------------------------------------------------------------------------------


class KeyDomains:
    """Each row's domain for one topology key: ``ids[row]`` (-1: the node lacks the label).

    ``by_value`` maps label values to ids; ``with_empty`` is ``ids`` with missing
    labels read as the value ``""`` (PodTopologySpread's score under System
    defaulting), whose id is ``empty_id`` (``n`` when no node has the value ``""``).
    """

    __slots__ = ("ids", "n", "by_value", "valid", "clipped", "empty_id", "_with_empty", "one_per_row")

    def __init__(self, key: str, nodes: list[Any]) -> None:
        by_value: dict[str, int] = {}
        ids = np.empty(len(nodes), dtype=np.intp)
        for row, node in enumerate(nodes):
            value = node.labels.get(key)
            ids[row] = -1 if value is None else by_value.setdefault(value, len(by_value))
        self.ids, self.n, self.by_value = ids, len(by_value), by_value
        self.valid = ids >= 0
        #: ``ids`` with -1 read as 0, for fancy indexing (mask with ``valid``)
        self.clipped = np.maximum(ids, 0)
        self.empty_id = by_value.get("", self.n)
        self._with_empty: np.ndarray | None = None
        #: every row is its own domain, in row order (hostname): sums need no bincount
        self.one_per_row = self.n == len(nodes) and bool((ids == np.arange(len(nodes))).all())

    @property
    def with_empty(self) -> np.ndarray:
        if self._with_empty is None:
            self._with_empty = np.where(self.valid, self.ids, self.empty_id)
        return self._with_empty

    def sums(self, counts: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Per domain (length ``n + 1``: the last is a spare for ``empty_id``), the sum of
        ``counts`` (one per row) over the rows with the label (or only over ``rows``, a mask)."""
        if self.one_per_row:
            out = np.zeros(self.n + 1, dtype=np.int64)
            out[:self.n] = counts if rows is None else np.where(rows, counts, 0)
            return out
        take = self.valid if rows is None else self.valid & rows
        if not take.any():
            return np.zeros(self.n + 1, dtype=np.int64)
        out = np.bincount(self.ids[take], weights=counts[take], minlength=self.n + 1)
        return out.astype(np.int64)

    def spread(self, counts: np.ndarray) -> np.ndarray:
        """Each row's domain total of ``counts`` (0 for rows without the label)."""
        if self.one_per_row:
            return counts.astype(np.int64, copy=True)
        per_domain = self.sums(counts)
        out = per_domain[self.clipped]
        out[~self.valid] = 0
        return out


# ---- the index ------------------------------------------------------------------------------


class _Counts:
    """Per-slot counts for one query or term, plus how many pods contribute (to drop dead terms)."""

    __slots__ = ("values", "carriers")

    def __init__(self, capacity: int) -> None:
        self.values = np.zeros(capacity, dtype=np.int64)
        self.carriers = 0


_indexes: weakref.WeakKeyDictionary[SchedulerCache, TopologyIndex] = weakref.WeakKeyDictionary()


class TopologyIndex:
    """See the module docstring. One per :class:`SchedulerCache` (:meth:`for_cache`)."""

    @classmethod
    def for_cache(cls, cache: SchedulerCache) -> TopologyIndex:
        """The cache's index, created (and registered as a pod listener) on first use."""
        index = _indexes.get(cache)
        if index is None:
            index = _indexes[cache] = cls(cache)
        return index

    def __init__(self, cache: SchedulerCache) -> None:
        self.cache = cache
        self._slots: dict[str, int] = {}
        self._capacity = INITIAL_SLOTS
        self._queries: OrderedDict[PodQuery, _Counts] = OrderedDict()
        #: queries by the namespaces they name (None: every namespace), so a pod event tests only its own
        self._queries_by_ns: dict[str | None, list[PodQuery]] = {}
        self.terms: dict[str, dict[AffinityTerm, _Counts]] = {kind: {} for kind in KINDS}
        #: bumped whenever the set of existing terms changes (invalidates per-pod match caches)
        self.terms_version = 0
        self._pod_terms: dict[str, tuple[str, PodTerms]] = {}
        self.namespace_labels: dict[str, dict[str, str]] = {}
        self.namespaces_version = 0
        self._generation = -1
        self._row_slots = np.zeros(0, dtype=np.intp)
        self._domains: dict[str, KeyDomains] = {}
        self._rows_by_name: dict[str, int] | None = None
        self._term_matches: dict[tuple, dict[str, list[AffinityTerm]]] = {}
        self._term_matches_version = (-1, -1)
        cache.pod_listeners.append(self._on_pod)
        for info, node_name in list(cache.pods.values()):
            self._on_pod(info, node_name, 1)

    # -- slots and rows --

    def _slot(self, node_name: str) -> int:
        slot = self._slots.get(node_name)
        if slot is None:
            slot = self._slots[node_name] = len(self._slots)
            if slot >= self._capacity:
                self._grow()
        return slot

    def _grow(self) -> None:
        self._capacity *= 2
        for counts in [*self._queries.values(), *(c for kind in self.terms.values() for c in kind.values())]:
            bigger = np.zeros(self._capacity, dtype=np.int64)
            bigger[:len(counts.values)] = counts.values
            counts.values = bigger

    def _refresh(self) -> None:
        if self._generation != self.cache.generation or len(self._row_slots) != len(self.cache.node_list):
            self._generation = self.cache.generation
            self._row_slots = np.fromiter((self._slot(n.name) for n in self.cache.node_list), dtype=np.intp,
                                          count=len(self.cache.node_list))
            self._domains.clear()
            self._rows_by_name = None

    def row_of(self, node: Any) -> int:
        """``node``'s row in ``node_list`` -- also for a detached copy of a node's record (preemption's
        dry run judges one, with no row of its own); -1 for a node not in the list."""
        self._refresh()
        row: int = node.row
        nodes = self.cache.node_list
        if 0 <= row < len(nodes) and nodes[row].name == node.name:
            return row
        if self._rows_by_name is None:
            self._rows_by_name = {n.name: i for i, n in enumerate(nodes)}
        return self._rows_by_name.get(node.name, -1)

    @property
    def num_rows(self) -> int:
        self._refresh()
        return len(self._row_slots)

    def domains(self, key: str) -> KeyDomains:
        """Each row's domain for ``key``, for the current node list."""
        self._refresh()
        found = self._domains.get(key)
        if found is None:
            found = self._domains[key] = KeyDomains(key, self.cache.node_list)
        return found

    # -- queries --

    def row_counts(self, query: PodQuery) -> np.ndarray:
        """The number of pods matching ``query`` on each row of ``node_list`` (a new array)."""
        self._refresh()
        counts = self._queries.get(query)
        if counts is None:
            counts = self._add_query(query)
        else:
            self._queries.move_to_end(query)
        return counts.values[self._row_slots]

    def _add_query(self, query: PodQuery) -> _Counts:
        while len(self._queries) >= MAX_QUERIES:
            old, _ = self._queries.popitem(last=False)
            for ns in _query_namespaces(old):
                self._queries_by_ns[ns].remove(old)
        slots = [self._slot(node_name) for info, node_name in self.cache.pods.values() if query.matches(info)]
        counts = _Counts(self._capacity)  # after the slots, which may have grown the capacity
        np.add.at(counts.values, np.array(slots, dtype=np.intp), 1)
        self._queries[query] = counts
        for ns in _query_namespaces(query):
            self._queries_by_ns.setdefault(ns, []).append(query)
        return counts

    # -- existing pods' terms --

    def term_row_counts(self, kind: str, term: AffinityTerm) -> np.ndarray:
        """How many pods carry ``term`` as ``kind`` on each row (summed weights for preferred kinds)."""
        self._refresh()
        counts = self.terms[kind].get(term)
        if counts is None:
            return np.zeros(len(self._row_slots), dtype=np.int64)
        return counts.values[self._row_slots]

    def matching_terms(self, pod: PodInfo) -> dict[str, list[AffinityTerm]]:
        """The existing pods' terms, by kind, that ``pod`` matches (cached per namespace and labels)."""
        version = (self.terms_version, self.namespaces_version)
        if self._term_matches_version != version:
            self._term_matches.clear()
            self._term_matches_version = version
        key = (pod.namespace, tuple(sorted(pod.labels.items())))
        found = self._term_matches.get(key)
        if found is None:
            ns_labels = self.namespace_labels.get(pod.namespace)
            found = {kind: [t for t in terms if t.matches(pod, ns_labels)] for kind, terms in self.terms.items()}
            if len(self._term_matches) > 4096:
                self._term_matches.clear()
            self._term_matches[key] = found
        return found

    def has_terms(self, kind: str) -> bool:
        return bool(self.terms[kind])

    # -- namespaces --

    def set_namespace(self, ns: Obj) -> None:
        meta = ns.get("metadata") or {}
        name, labels = meta.get("name") or "", dict(meta.get("labels") or {})
        if self.namespace_labels.get(name) != labels:
            self.namespace_labels[name] = labels
            self.namespaces_version += 1

    def remove_namespace(self, ns: Obj) -> None:
        if self.namespace_labels.pop((ns.get("metadata") or {}).get("name") or "", None) is not None:
            self.namespaces_version += 1

    # -- moving with the cache --

    def _on_pod(self, pod: PodInfo, node_name: str, sign: int) -> None:
        slot = self._slot(node_name)
        for ns in (pod.namespace, None):
            for query in self._queries_by_ns.get(ns, ()):
                if query.matches(pod):
                    self._queries[query].values[slot] += sign
        if sign > 0:
            terms = pod_terms(pod)
            if terms is NO_TERMS:
                return
            self._pod_terms[pod.key] = (pod.uid, terms)
        else:
            kept = self._pod_terms.pop(pod.key, None)
            if kept is None:
                return
            terms = kept[1]
        self._count_terms(REQUIRED_ANTI, ((t, 1) for t in terms.required_anti), slot, sign)
        self._count_terms(REQUIRED_AFFINITY, ((t, 1) for t in terms.required_affinity), slot, sign)
        self._count_terms(PREFERRED_AFFINITY, terms.preferred_affinity, slot, sign)
        self._count_terms(PREFERRED_ANTI, terms.preferred_anti, slot, sign)

    def _count_terms(self, kind: str, weighted: Iterable[tuple[AffinityTerm, int]], slot: int, sign: int) -> None:
        table = self.terms[kind]
        for term, weight in weighted:
            counts = table.get(term)
            if counts is None:
                if sign < 0:
                    continue
                counts = table[term] = _Counts(self._capacity)
                self.terms_version += 1
            counts.values[slot] += sign * weight
            counts.carriers += sign
            if counts.carriers <= 0:
                del table[term]
                self.terms_version += 1


def _query_namespaces(query: PodQuery) -> list[str | None]:
    """Where a pod event must look for the query: the namespaces of its most selective clause."""
    best: frozenset[str] | None = None
    for clause in query.clauses:
        if clause.namespaces is not None and (best is None or len(clause.namespaces) < len(best)):
            best = clause.namespaces
    return [None] if best is None else list(best)


__all__ = ["AffinityTerm", "Clause", "KeyDomains", "PodQuery", "PodTerms", "TopologyIndex", "pod_terms",
           "parse_selector", "selector_with_label_keys"]


# ---- filters that leave a verdict per row ---------------------------------------------------

#: the verdict code of a row that passes
PASS = 0


class RowVerdicts:
    """One attempt's verdicts for every row of ``node_list``: ``codes`` (PASS, or the plugin's
    reason code) and ``passing``."""

    __slots__ = ("codes", "passing")

    def __init__(self, codes: np.ndarray) -> None:
        self.codes = codes
        self.passing = codes == PASS


class RowVerdictFilter(FilterPlugin):
    """A filter whose PreFilter judges every node at once, as :class:`RowVerdicts` in
    ``pod.cycle[self.name]`` (None there: nothing to check for this pod). Both forms of the
    filter read those verdicts -- the array form at the candidates' rows, the per-node form at
    the node's row, found by name through the index (a preemption dry run judges a copy of a
    node, which has no row of its own) -- so they cannot disagree."""

    #: the Status of each reason code
    statuses: dict[int, Status] = {}

    def _index(self) -> TopologyIndex:
        raise NotImplementedError

    def _verdicts(self, pod: PodInfo) -> RowVerdicts | None:
        if self.name not in pod.cycle:
            self.pre_filter(pod)
        verdicts: RowVerdicts | None = pod.cycle[self.name]
        return verdicts

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        verdicts = self._verdicts(pod)
        if verdicts is None:
            return None
        row = self._index().row_of(node)
        if not 0 <= row < len(verdicts.codes):
            return None
        code = int(verdicts.codes[row])
        return self.statuses[code] if code else None

    def filter_mask(self, pod: PodInfo, columns: NodeColumns, rows: Rows) -> np.ndarray | None:
        verdicts = self._verdicts(pod)
        if verdicts is None:
            return np.ones(len(range(columns.size)[rows]) if isinstance(rows, slice) else len(rows), dtype=bool)
        return verdicts.passing[rows].copy() if isinstance(rows, slice) else verdicts.passing[rows]
