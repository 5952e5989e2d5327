"""DefaultPreemption: the PostFilter that makes room for a pod by evicting lower-priority ones.

Design
------
Kubernetes' ``defaultpreemption`` plugin over ``framework/preemption``'s evaluator, on
podlife's cache:

*What it reads.* The scheduler's cache (which pods are charged to which node, bound or
assumed -- kept here as a per-node index fed by the cache's ``pod_listeners``), the
scheduler's pod informer (the latest version of a pod: its ``preemptionPolicy``,
``status.nominatedNodeName``, start time, deletion and conditions, which the cache's
records do not follow), and PodDisruptionBudgets (``policy/v1``) through an informer of
its own, which the scheduler starts and syncs (:meth:`DefaultPreemption.informers`).

*How it decides* (synchronously, inside the scheduling attempt that failed, so nothing
else sees the cache while it is being tried on):

1. **Eligibility.** ``preemptionPolicy: Never`` never preempts; a pod already nominated
   whose node still has a lower-priority pod terminating because of a preemption waits
   for it (unless its nominated node is now rejected for a reason preemption cannot fix).
2. **Candidates.** The nodes whose filter status was resolvable (``Unschedulable``, not
   ``UnschedulableAndUnresolvable``), from a random offset, until enough candidates are
   found (``max(nodes * minCandidateNodesPercentage / 100, minCandidateNodesAbsolute)``,
   with at least one that violates no budget -- kube's DryRunPreemption stops on exactly that).
   Before any dry run, a resource pre-check per node: what the node has free, plus what its
   lower-priority pods request (kept per node and priority from the listeners), minus what
   the nominated pods it must leave room for request. A node where the pod's requests do not
   fit even so is no candidate (NodeResourcesFit would reject the dry run's first state), so
   it costs a few additions; only if no node is a candidate are such nodes dry-run after all,
   for the message's reasons.
3. **Dry run per node**, on a copy of the node's record (kube's NodeInfo snapshot: the
   cache, its numpy row and the static-verdict cache are never touched). Every
   lower-priority pod is un-charged from the copy, the nominated pods of at least the
   pod's priority are charged, and the profile's filters -- static and dynamic, each per
   node, PreFilter re-run for plugins that have one -- judge it. If the pod fits, victims
   are reprieved one by one, most important first (higher priority, then earlier start),
   those whose eviction would violate a budget before the others; a reprieved pod is
   charged back, a victim stays out. When a plugin that keeps its own pod index (affinity,
   spread, ports) judges the pod, it hears each change through the cache's listeners, and
   the opposite changes at the end (``finally``), so its index is as it was. Static filters
   are judged once per node (they read no pod). When NodeResourcesFit is the only other
   filter that judges the pod, the same steps run on four running totals instead of a copy.
4. **Pick** as ``pickOneNodeForPreemption``: fewest budget violations, then the lowest
   highest victim priority, the lowest sum of priorities, the fewest victims, the latest
   earliest start among the highest-priority victims, then the first.

*What it writes* (in a task of the scheduler's supervisor, after the attempt returns):
each victim's ``DisruptionTarget`` condition (``PreemptionByScheduler``, "<scheduler>:
preempting to accommodate a higher priority pod"), its graceful deletion (its own grace
period), a ``Preempted`` event on it; and the removal of ``nominatedNodeName`` from
lower-priority pods nominated to that node. Until those evictions have returned, the
preemptor is gated as kube's async preemption gates it (:meth:`DefaultPreemption.running_preemption`,
which the scheduling loop asks before each attempt): while a victim is still there and not
being deleted, another attempt could only fail. The scheduler itself records the preemptor's
nomination in the cache at once and writes ``status.nominatedNodeName`` with its
``PodScheduled=False`` condition; the preemptor waits in the unschedulable queue until
the victims' deletions move it, then tries its nominated node first.

*Messages* are Kubernetes' (``preemption: not eligible due to preemptionPolicy=Never.``,
``preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, 2
Preemption is not helpful for scheduling.``), which the scheduler appends to the filters'
histogram.

Not done: the second filter pass without nominated pods (it matters only for filters a
pod can fail with fewer pods, such as required affinity to a nominated pod), extenders,
and waiting pods (podlife has no Permit plugins).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ..client.base import POD_DISRUPTION_BUDGETS, PODS, Obj
from ..client.informer import Informer
from ..machinery.disruption import DISRUPTION_TARGET, guards
from ..machinery.errors import ApiError
from ..machinery.timeutil import now_rfc3339
from .metrics import PREEMPTION_ATTEMPTS, PREEMPTION_VICTIMS
from .node_resources import NodeResourcesFit
from .plugins import UNRESOLVABLE, FilterPlugin, NodeInfo, PodInfo, PostFilterPlugin, Status
from .scheduler import FitError, PostFilterResult, needs_pod_listeners

if TYPE_CHECKING:
    from .cache import SchedulerCache
    from .profile import Profile
    from .scheduler import Scheduler

log = logging.getLogger(__name__)

PREEMPTION_BY_SCHEDULER = "PreemptionByScheduler"
NOT_ELIGIBLE_NEVER = "not eligible due to preemptionPolicy=Never."
NOT_ELIGIBLE_TERMINATING = "not eligible due to a terminating pod on the nominated node."
NO_VICTIMS = "No preemption victims found for incoming pod"
NOT_HELPFUL = "Preemption is not helpful for scheduling"
#: kube's int32 offset that makes every priority count as non-negative in a sum
_PRIORITY_OFFSET = 2**31


@dataclass
class Candidate:
    """A node where evicting ``victims`` (most important first) lets the pod fit."""

    node: str
    victims: list[PodInfo]
    pdb_violations: int


class DefaultPreemption(PostFilterPlugin):
    """Kubernetes' DefaultPreemption PostFilter; see the module docstring."""

    name = "DefaultPreemption"
    node_local = True

    def __init__(self, *, min_candidate_nodes_percentage: int = 10, min_candidate_nodes_absolute: int = 100,
                 rng: random.Random | None = None) -> None:
        self.min_candidate_nodes_percentage = min_candidate_nodes_percentage
        self.min_candidate_nodes_absolute = min_candidate_nodes_absolute
        self._rng = rng or random.Random()
        self._scheduler: Scheduler | None = None
        self._pdbs: Informer | None = None
        #: node name -> pod key -> the pod charged there (bound or assumed), from the cache's listeners
        self._by_node: dict[str, dict[str, PodInfo]] = {}
        #: node name -> priority -> what the pods of that priority there request, kept with ``_by_node``
        #: (the resource pre-check sums a node's lower-priority pods without visiting them)
        self._totals: dict[str, dict[int, _Totals]] = {}
        #: preemptor key -> its victims' keys, while their evictions are in flight (:meth:`running_preemption`)
        self._preempting: dict[str, list[str]] = {}
        #: pod key -> (the pod object read, its start time), for :meth:`_start_time_of`
        self._start_cache: dict[str, tuple[Obj, float]] = {}

    # ---- wiring ----

    def attach(self, scheduler: Scheduler) -> None:
        if self._scheduler is scheduler:  # one instance in several profiles
            return
        self._scheduler = scheduler
        self._pdbs = Informer(scheduler.client, POD_DISRUPTION_BUDGETS)
        scheduler.cache.pod_listeners.append(self._on_charge)
        for info, node in scheduler.cache.pods.values():
            self._on_charge(info, node, 1)

    def informers(self) -> list[Informer]:
        return [self._pdbs] if self._pdbs is not None else []

    def _on_charge(self, info: PodInfo, node: str, sign: int) -> None:
        pods = self._by_node.setdefault(node, {})
        old = pods.pop(info.key, None)
        if old is not None:
            self._count(old, node, -1)
        if sign > 0:
            pods[info.key] = info
            self._count(info, node, 1)
        else:
            self._start_cache.pop(info.key, None)
            if not pods:
                del self._by_node[node]

    def _count(self, info: PodInfo, node: str, sign: int) -> None:
        levels = self._totals.setdefault(node, {})
        totals = levels.get(info.priority)
        if totals is None:
            totals = levels[info.priority] = _Totals()
        totals.add(info, sign)
        if not totals.pods:
            del levels[info.priority]
            if not levels:
                del self._totals[node]

    @property
    def _cache(self) -> SchedulerCache:
        assert self._scheduler is not None, "DefaultPreemption used before attach()"
        return self._scheduler.cache

    def _latest(self, info: PodInfo) -> Obj:
        """The pod as the informer has it now (the cache's record may be older)."""
        assert self._scheduler is not None
        return self._scheduler.pod_informer.get(info.namespace, info.name) or info.obj

    # ---- PostFilter ----

    def post_filter(self, pod: PodInfo, error: Any) -> PostFilterResult:
        """kube's Evaluator.Preempt: eligibility, candidates, the best one, then the evictions
        (each run is a ``scheduler_preemption_attempts_total``, whatever it finds, as kube counts it)."""
        assert self._scheduler is not None and isinstance(error, FitError)
        PREEMPTION_ATTEMPTS.inc()
        latest = self._latest(pod)
        resolvable = self._resolvable_nodes(error)
        nominated = self._cache.nominated_node(pod.key) or str((latest.get("status") or {}).get("nominatedNodeName") or "")
        if (reason := self._not_eligible(pod, latest, nominated, resolvable)) is not None:
            return PostFilterResult(f"preemption: {reason}")
        potential = [node for node in self._cache.node_list if node.name in resolvable and node.node is not None]
        candidates, statuses = self._find_candidates(pod, potential)
        if not candidates:
            return PostFilterResult(f"preemption: {_no_candidates_message(error.num_nodes, statuses)}", nominated_node="")
        best = pick_one_node(candidates, self._start_times(candidates))
        victims = [self._latest(v) for v in best.victims]
        PREEMPTION_VICTIMS.observe(len(victims))
        lower_nominated = [p for p in self._cache.nominated_on(best.node) if p.priority < pod.priority]
        for other in lower_nominated:  # they may no longer fit there: let them look elsewhere
            self._cache.remove_nominated(other.key)
        self._preempting[pod.key] = [f"{v['metadata'].get('namespace')}/{v['metadata'].get('name')}" for v in victims]
        self._scheduler._tasks.start(self._preempt(pod.key, latest, best.node, victims, lower_nominated),
                                     f"scheduler-preempt-{pod.key}")
        return PostFilterResult("", success=True, nominated_node=best.node)

    def _resolvable_nodes(self, error: FitError) -> set[str]:
        """The nodes whose status was Unschedulable (a resolvable PreFilter rejection: all of them)."""
        if error.pre_filter_message:
            return {n.name for n in self._cache.node_list} if error.resolvable else set()
        return set(error.resolvable_nodes)

    def _not_eligible(self, pod: PodInfo, latest: Obj, nominated: str, resolvable: set[str]) -> str | None:
        """kube's PodEligibleToPreemptOthers: why the pod may not preempt now, or None."""
        if (latest.get("spec") or {}).get("preemptionPolicy") == "Never":
            return NOT_ELIGIBLE_NEVER
        if not nominated or nominated not in resolvable:  # unnominated, or nominated where nothing helps
            return None
        for other in list(self._by_node.get(nominated, {}).values()):
            if other.priority < pod.priority and _terminating_by_preemption(self._latest(other)):
                return NOT_ELIGIBLE_TERMINATING
        return None

    def num_candidates(self, num_nodes: int) -> int:
        """kube's calculateNumCandidates."""
        n = num_nodes * self.min_candidate_nodes_percentage // 100
        return min(max(n, self.min_candidate_nodes_absolute), num_nodes)

    def _find_candidates(self, pod: PodInfo, potential: list[NodeInfo]) -> tuple[list[Candidate], dict[str, Status]]:
        """kube's DryRunPreemption, one node after another from a random offset; the statuses of
        the nodes where preemption would not help."""
        statuses: dict[str, Status] = {}
        if not potential:
            return [], statuses
        profile = self._scheduler.profiles[pod.scheduler_name] if self._scheduler else None
        assert profile is not None
        filters = self._filters(pod, profile)
        pdbs = list(self._pdbs.cache.values()) if self._pdbs is not None else []
        n = len(potential)
        offset, wanted = self._rng.randrange(n), self.num_candidates(n)
        precheck = _resource_precheck(pod, filters)
        non_violating: list[Candidate] = []
        violating: list[Candidate] = []
        hopeless: list[NodeInfo] = []
        for i in range(n):
            node = potential[(offset + i) % n]
            if precheck and not self._may_fit(pod, node):
                hopeless.append(node)
                continue
            found = self.select_victims(pod, node, filters, pdbs)
            if isinstance(found, Status):
                statuses[node.name] = found
                continue
            (violating if found.pdb_violations else non_violating).append(found)
            if non_violating and len(non_violating) + len(violating) >= wanted:
                break
        if not non_violating and not violating:  # the message names every node's reason: dry-run those too
            for node in hopeless:
                found = self.select_victims(pod, node, filters, pdbs)
                if isinstance(found, Status):
                    statuses[node.name] = found
                else:  # never: the pre-check only refuses what NodeResourcesFit refuses
                    log.warning("preemption: the resource pre-check refused candidate %s", node.name)
                    (violating if found.pdb_violations else non_violating).append(found)
        return non_violating + violating, statuses

    def _may_fit(self, pod: PodInfo, node: NodeInfo) -> bool:
        """False when the pod's requests exceed what the node would have with every lower-priority pod
        gone and the nominated pods it must leave room for charged: NodeResourcesFit would then reject
        the dry run's first state, so the node cannot be a candidate (only the message needs the dry run).
        A node without lower-priority pods passes: its dry run answers at once."""
        levels = self._totals.get(node.name)
        if not levels:
            return True
        cpu = memory = ephemeral = count = 0
        for priority, totals in levels.items():
            if priority < pod.priority:
                cpu += totals.cpu
                memory += totals.memory
                ephemeral += totals.ephemeral
                count += totals.pods
        if not count:
            return True
        cache = self._cache
        for key in cache.nominated_keys_on(node.name):
            other = cache.nominated[key][0]
            if other.priority >= pod.priority and other.uid != pod.uid:  # as nominated_for picks them
                cpu -= other.cpu
                memory -= other.memory
                ephemeral -= other.ephemeral
                count -= 1
        return (node.free_pods + count > 0
                and (not pod.cpu or pod.cpu <= node.free_cpu + cpu)
                and (not pod.memory or pod.memory <= node.free_memory + memory)
                and (not pod.ephemeral or pod.ephemeral <= node.free_ephemeral + ephemeral))

    def _filters(self, pod: PodInfo, profile: Profile) -> list[FilterPlugin]:
        """Every filter of the profile that judges this pod, in order (VolumeBinding last, when it constrains)."""
        assert self._scheduler is not None
        filters = [*profile.static_filters, *(f for f in profile.dynamic_filters if f.applies(pod))]
        volumes = pod.volumes
        if pod.claims and volumes is not None and not getattr(volumes, "everywhere", True):
            filters.append(self._scheduler.volume_binding)
        return filters

    # ---- the dry run ----

    def select_victims(self, pod: PodInfo, node: NodeInfo, filters: list[FilterPlugin],
                       pdbs: list[Obj]) -> Candidate | Status:
        """kube's SelectVictimsOnNode, on a copy of the node (kube's NodeInfo snapshot); the plugins
        that keep pod indexes, when one judges this pod, hear the removals and get them back."""
        potential = [p for p in self._by_node.get(node.name, {}).values() if p.priority < pod.priority]
        if not potential:
            return Status(UNRESOLVABLE, (NO_VICTIMS,), self.name)
        start_times = {p.key: self._start_time_of(p) for p in potential}
        potential.sort(key=lambda p: (-p.priority, start_times[p.key]))  # most important first
        # static filters read only the node's declared attributes, which the dry run leaves alone:
        # judged once (they come first, so the first rejection is the same)
        static = [f for f in filters if f.static]
        if static and (status := _judge(static, pod, node)) is not None:
            return status
        filters = [f for f in filters if not f.static]
        if _resources_only(pod, filters) and (
                found := self._victims_by_resources(pod, node, potential, start_times, pdbs)) is not None:
            return found
        work = _detached_copy(node)
        listeners = [f for f in self._cache.pod_listeners if f != self._on_charge] if self._notify(pod, filters) else []
        told: list[tuple[PodInfo, int]] = []

        def charge(p: PodInfo, sign: int) -> None:
            work.add_pod(p, sign)
            if listeners:
                told.append((p, sign))
                for listener in listeners:
                    listener(p, node.name, sign)

        try:
            for other, _ in self._cache.nominated_for(pod, node.name):
                charge(other, 1)
            for p in potential:
                charge(p, -1)
            if (status := _judge(filters, pod, work)) is not None:
                return status

            def reprieve(p: PodInfo) -> bool:
                charge(p, 1)
                if _judge(filters, pod, work) is None:
                    return True
                charge(p, -1)
                return False

            return self._reprieve(node, potential, pdbs, reprieve, start_times)
        finally:
            for p, sign in reversed(told):  # the listeners' indexes as they were
                for listener in listeners:
                    listener(p, node.name, -sign)

    def _victims_by_resources(self, pod: PodInfo, node: NodeInfo, potential: list[PodInfo],
                              start_times: dict[str, float], pdbs: list[Obj]) -> Candidate | Status | None:
        """The dry run when NodeResourcesFit is the only filter left to judge the pod: the same steps
        as :meth:`select_victims` (nominated pods charged, every lower-priority pod out, then each
        reprieved in turn if the pod still fits) on four running totals instead of a node copy. None
        when the pod does not fit even then, so the general path says why."""
        nominated = self._cache.nominated_for(pod, node.name)
        cpu = node.free_cpu - sum(o.cpu for o, _ in nominated) + sum(p.cpu for p in potential)
        memory = node.free_memory - sum(o.memory for o, _ in nominated) + sum(p.memory for p in potential)
        ephemeral = (node.free_ephemeral - sum(o.ephemeral for o, _ in nominated)
                     + sum(p.ephemeral for p in potential))
        count = node.free_pods - len(nominated) + len(potential)
        want_cpu, want_memory, want_ephemeral = pod.cpu, pod.memory, pod.ephemeral

        def fits(cpu: int, memory: int, ephemeral: int, count: int) -> bool:  # NodeResourcesFit.filter
            return (count > 0 and (not want_cpu or want_cpu <= cpu) and (not want_memory or want_memory <= memory)
                    and (not want_ephemeral or want_ephemeral <= ephemeral))

        if not fits(cpu, memory, ephemeral, count):
            return None

        def reprieve(p: PodInfo) -> bool:
            nonlocal cpu, memory, ephemeral, count
            after = (cpu - p.cpu, memory - p.memory, ephemeral - p.ephemeral, count - 1)
            if not fits(*after):
                return False
            cpu, memory, ephemeral, count = after
            return True

        return self._reprieve(node, potential, pdbs, reprieve, start_times)

    def _reprieve(self, node: NodeInfo, potential: list[PodInfo], pdbs: list[Obj],
                  reprieve: Callable[[PodInfo], bool], start_times: dict[str, float]) -> Candidate | Status:
        """Kube's reprieve step, once every lower-priority pod is out and the pod fits: put each back,
        most important first and budget-violating ones before the others, keeping it when
        ``reprieve(p)`` says the pod still fits with it there; the others are the victims."""
        violating, non_violating = (split_by_budget(potential, [self._latest(p) for p in potential], pdbs)
                                    if pdbs else ([], potential))
        violating_keys = {p.key for p in violating}
        victims: list[PodInfo] = []
        violations = 0
        for p in [*violating, *non_violating]:
            if not reprieve(p):
                victims.append(p)
                violations += p.key in violating_keys
        return self._candidate(node, victims, violations, bool(violating and non_violating), start_times)

    def _candidate(self, node: NodeInfo, victims: list[PodInfo], violations: int, mixed: bool,
                   start_times: dict[str, float]) -> Candidate | Status:
        """The dry run's answer: the victims most important first (budget-violating ones were tried
        first, so a mixed list is sorted again), or kube's error when none was needed."""
        if not victims:
            return Status("Error", (f'expected at least one victim pod on node "{node.name}"',), self.name)
        if mixed:
            victims.sort(key=lambda p: (-p.priority, start_times[p.key]))
        return Candidate(node.name, victims, violations)

    def _notify(self, pod: PodInfo, filters: list[FilterPlugin]) -> bool:
        return needs_pod_listeners(filters, pod)

    def _start_times(self, candidates: list[Candidate]) -> dict[str, float]:
        return {v.key: self._start_time_of(v) for c in candidates for v in c.victims}

    def _start_time_of(self, info: PodInfo) -> float:
        """The pod's start time as the informer has it now; remembered per version of the pod object
        (an informer replaces the object on every change), as every attempt's dry runs read it."""
        assert self._scheduler is not None
        obj = self._scheduler.pod_informer.cache.get(info.key) or info.obj
        known = self._start_cache.get(info.key)
        if known is not None and known[0] is obj:
            return known[1]
        value = _start_time(obj)
        self._start_cache[info.key] = (obj, value)
        return value

    # ---- the effects ----

    def running_preemption(self, pod: PodInfo) -> bool:
        """kube's async-preemption PreEnqueue gate (IsPodRunningPreemption): True while the evictions
        this pod asked for are in flight and a victim is still there, not yet being deleted -- trying
        the pod again then only fails again. The victims' deletions move it once they are seen."""
        victims = self._preempting.get(pod.key)
        if victims is None:
            return False
        assert self._scheduler is not None
        cache = self._scheduler.pod_informer.cache
        return any((obj := cache.get(key)) is not None and not (obj.get("metadata") or {}).get("deletionTimestamp")
                   for key in victims)

    async def _preempt(self, key: str, preemptor: Obj, node: str, victims: list[Obj],
                       lower_nominated: list[PodInfo]) -> None:
        """kube's prepareCandidate: evict the victims (all at once), then clear the lower-priority
        nominations on the node. The pod is gated (:meth:`running_preemption`) until the evictions
        return; if one failed, the waiting pods are moved, as kube activates the preemptor."""
        evicted: list[bool] = [False]  # an eviction that raised counts as failed
        try:
            evicted = await asyncio.gather(*(self._preempt_one(preemptor, node, v) for v in victims
                                             if not (v.get("metadata") or {}).get("deletionTimestamp")))
        finally:
            self._preempting.pop(key, None)
            if not all(evicted) and self._scheduler is not None:
                self._scheduler.queue.move_all()
        for other in lower_nominated:
            try:
                await self._client().patch(PODS, other.name, {"status": {"nominatedNodeName": None}}, other.namespace,
                                           subresource="status")
            except ApiError as exc:
                log.debug("preemption: nominatedNodeName of %s not cleared: %s", other.key, exc)

    def _client(self) -> Any:
        assert self._scheduler is not None
        return self._scheduler.client

    async def _preempt_one(self, preemptor: Obj, node: str, victim: Obj) -> bool:
        """Evict one victim; False when the eviction failed (a victim already gone counts as evicted)."""
        assert self._scheduler is not None
        meta = victim.get("metadata") or {}
        name, namespace = str(meta.get("name") or ""), str(meta.get("namespace") or "")
        scheduler_name = (preemptor.get("spec") or {}).get("schedulerName") or self._scheduler.name
        condition = {"type": DISRUPTION_TARGET, "status": "True", "reason": PREEMPTION_BY_SCHEDULER,
                     "message": f"{scheduler_name}: preempting to accommodate a higher priority pod",
                     "lastTransitionTime": now_rfc3339(), "lastProbeTime": None}
        client = self._client()
        try:
            if not _has_condition(victim, condition):
                await client.patch(PODS, name, {"status": {"conditions": [condition]}}, namespace,
                                   patch_type="strategic", subresource="status")
            await client.delete(PODS, name, namespace, preconditions={"uid": meta.get("uid")})
        except ApiError as exc:
            if exc.code not in (404, 409):
                log.warning("preemption: evicting %s/%s for %s failed: %s", namespace, name,
                            (preemptor.get("metadata") or {}).get("name"), exc)
                return False
            return True
        uid = (preemptor.get("metadata") or {}).get("uid")
        self._scheduler.recorder.event(victim, "Normal", "Preempted", f"Preempted by pod {uid} on node {node}")
        return True


# ---- pure rules --------------------------------------------------------------------------


def _judge(filters: Iterable[FilterPlugin], pod: PodInfo, node: NodeInfo) -> Status | None:
    """Every filter on one node, as the scheduling cycle would (PreFilter again for those that have
    one: what they computed depends on the pods now charged)."""
    for f in filters:
        if type(f).pre_filter is not FilterPlugin.pre_filter and (status := f.pre_filter(pod)) is not None:
            return status
        if (status := f.filter(pod, node)) is not None:
            return status
    return None


def split_by_budget(pods: list[PodInfo], objs: list[Obj], pdbs: list[Obj]) -> tuple[list[PodInfo], list[PodInfo]]:
    """kube's filterPodsWithPDBViolation: (pods whose eviction would exceed a budget, the others),
    each in the given order. A pod already in a budget's ``disruptedPods`` does not count."""
    allowed = [int((pdb.get("status") or {}).get("disruptionsAllowed") or 0) for pdb in pdbs]
    violating: list[PodInfo] = []
    non_violating: list[PodInfo] = []
    for pod, obj in zip(pods, objs):
        violated = False
        for i, pdb in enumerate(pdbs):
            if not guards(pdb, obj):
                continue
            if pod.name in ((pdb.get("status") or {}).get("disruptedPods") or {}):
                continue
            allowed[i] -= 1
            if allowed[i] < 0:
                violated = True
        (violating if violated else non_violating).append(pod)
    return violating, non_violating


def pick_one_node(candidates: list[Candidate], start_times: dict[str, float]) -> Candidate:
    """kube's pickOneNodeForPreemption: each rule keeps the best-scoring nodes, the next breaks ties."""
    def earliest_top_start(c: Candidate) -> float:
        top = c.victims[0].priority
        return min(start_times.get(v.key, 0.0) for v in c.victims if v.priority == top)

    rules = (
        lambda c: -c.pdb_violations,
        lambda c: -c.victims[0].priority,
        lambda c: -sum(v.priority + _PRIORITY_OFFSET for v in c.victims),
        lambda c: -len(c.victims),
        earliest_top_start,
    )
    remaining = candidates
    for rule in rules:
        scores = [rule(c) for c in remaining]
        best = max(scores)
        remaining = [c for c, s in zip(remaining, scores) if s == best]
        if len(remaining) == 1:
            break
    return remaining[0]


def _no_candidates_message(num_nodes: int, statuses: dict[str, Status]) -> str:
    """kube's FitError of the dry run: the failed nodes' reasons, the others not helpful."""
    reasons: Counter[str] = Counter()
    for status in statuses.values():
        reasons.update(status.reasons)
    absent = num_nodes - len(statuses)
    if absent > 0:
        reasons[NOT_HELPFUL] += absent
    histogram = ", ".join(sorted(f"{count} {reason}" for reason, count in reasons.items()))
    return f"0/{num_nodes} nodes are available: {histogram}."


def _terminating_by_preemption(pod: Obj) -> bool:
    """Being deleted because a scheduler preempted it (kube's podTerminatingByPreemption)."""
    if not (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if isinstance(cond, dict) and cond.get("type") == DISRUPTION_TARGET:
            return cond.get("status") == "True" and cond.get("reason") == PREEMPTION_BY_SCHEDULER
    return False


#: what a dry run may change on its copy of a node: the totals (``req_scalar`` is the only mutable one)
_SHARED_SLOTS = tuple(a for a in NodeInfo.__slots__ if a not in ("req_scalar", "columns", "row"))


def _detached_copy(node: NodeInfo) -> NodeInfo:
    """The node's record with its totals, tied to no columns row: changing it changes nothing else.
    Only the totals are the copy's own (``add_pod`` writes nothing else); labels, taints and images
    are shared, read-only, as a snapshot of them would be equal."""
    copy = NodeInfo.__new__(NodeInfo)
    for attr in _SHARED_SLOTS:
        setattr(copy, attr, getattr(node, attr))
    copy.req_scalar = dict(node.req_scalar)
    copy.columns, copy.row = None, -1
    return copy


def _resource_precheck(pod: PodInfo, filters: list[FilterPlugin]) -> bool:
    """Whether :meth:`DefaultPreemption._may_fit` may rule nodes out: NodeResourcesFit judges the pod
    and the pod's requests are those the check sums (no extended resources, no request error)."""
    return not pod.scalar and not pod.error and any(isinstance(f, NodeResourcesFit) for f in filters)


def _resources_only(pod: PodInfo, dynamic: list[FilterPlugin]) -> bool:
    """Whether NodeResourcesFit (exactly that class) is the only filter besides the static ones and
    the pod requests nothing it judges node by node (extended resources) or refuses everywhere."""
    return (len(dynamic) == 1 and type(dynamic[0]) is NodeResourcesFit
            and not pod.scalar and not pod.error)


class _Totals:
    """What the pods of one priority on one node request, and how many they are."""

    __slots__ = ("cpu", "memory", "ephemeral", "pods")

    def __init__(self) -> None:
        self.cpu = self.memory = self.ephemeral = self.pods = 0

    def add(self, info: PodInfo, sign: int) -> None:
        self.cpu += sign * info.cpu
        self.memory += sign * info.memory
        self.ephemeral += sign * info.ephemeral
        self.pods += sign


def _has_condition(pod: Obj, condition: Obj) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if isinstance(cond, dict) and cond.get("type") == condition["type"]:
            return all(cond.get(k) == condition[k] for k in ("status", "reason", "message"))
    return False


def _start_time(pod: Obj) -> float:
    """``status.startTime`` as seconds; a pod not started yet counts as starting last (kube's
    GetPodStartTime says now, which is later than any start)."""
    text = (pod.get("status") or {}).get("startTime")
    return _parse_time(text) if isinstance(text, str) and text else math.inf


@lru_cache(maxsize=65536)
def _parse_time(text: str) -> float:
    """An RFC 3339 time as seconds (cached: every dry run reads the same victims' start times)."""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return math.inf


__all__ = ["Candidate", "DefaultPreemption", "pick_one_node", "split_by_budget"]
