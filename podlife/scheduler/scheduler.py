"""The scheduler: binds pending pods to nodes, in the Kubernetes scheduler's shape.

What it watches
---------------
- **Pods** that are not terminal (field selector ``status.phase!=Succeeded,
  status.phase!=Failed``, as kube-scheduler's pod informer). Pods with a
  ``spec.nodeName`` feed the :class:`~podlife.scheduler.cache.SchedulerCache` --
  the requested resources of each node; pods without one, whose
  ``spec.schedulerName`` names one of its profiles and that are not being
  deleted, go to the :class:`~podlife.scheduler.queue.SchedulingQueue` -- once
  their ``spec.schedulingGates`` are all removed (kube's SchedulingGates
  PreEnqueue plugin; the API server marks a gated pod ``SchedulingGated``). A pod
  that reaches Succeeded or Failed leaves the watch (DELETED), which frees its
  requests.
- **Nodes**: every node becomes a :class:`~podlife.scheduler.plugins.NodeInfo`
  (declared attributes and allocatable parsed once).
- **PersistentVolumeClaims, PersistentVolumes, StorageClasses**, through the
  VolumeBinding plugin's informers (:mod:`podlife.scheduler.volume_binding`).

What it writes
--------------
- ``POST pods/<name>/binding`` for each decision (the API server sets
  ``spec.nodeName`` and ``PodScheduled=True``), and a ``Scheduled`` event;
- for a pod whose claims must be bound first: the chosen static volumes'
  ``claimRef`` and the claims' ``volume.kubernetes.io/selected-node``, before the
  binding (a failure there: ``PodScheduled=False`` / ``SchedulerError``);
- for a pod that fits nowhere: ``PodScheduled=False`` / ``Unschedulable`` with
  Kubernetes' message (``0/3 nodes are available: 3 Insufficient cpu.
  preemption: ...``) through the status subresource, and a ``FailedScheduling``
  warning event;
- kube-scheduler's metrics: attempts by result and their durations, pending pods by
  queue, preemption attempts and victims (:mod:`podlife.scheduler.metrics`).

How (and why this way)
----------------------
*One decision at a time, many writes in flight.* The loop takes a batch of pods
from the active queue and decides each one synchronously -- filter, score, pick
-- against the cache. The chosen node is charged at once (the pod is *assumed*
there), so the next pod already sees the new usage, and the binding is handed to a
pool of binder tasks (64 by default). The loop never waits for the API server;
group commit in the store turns the concurrent bindings into few transactions.
When the pod informer later sees the pod bound, the assumption is confirmed; a
failed binding un-charges the node and puts the pod back with backoff.

*Cheap per-node work.* Static filters (readiness, cordon, node name, taints,
affinity) depend only on what nodes declare, so their verdicts are cached per
distinct pod constraint set until a node changes (with the candidates' positions
in the node list). What remains per pod -- the resource check and the
LeastAllocated score -- runs on every candidate at once: the cache keeps each
node's running totals in numpy int64 columns too (:mod:`podlife.scheduler.columns`,
a row per node, written whenever a node's totals change), and the plugins
compute a boolean mask and an array of scores from them. In a Python loop the
interpreter's per-node overhead was most of the scheduler's CPU; as arrays, a
pod costs a few dozen numpy calls at nanoseconds per node (about 5x less at
1,000 nodes). The result is
exactly the per-node path's -- the same first feasible nodes from the same
rotating start, the same integer scores, the same tie set for the same random
pick -- and that path remains, used whenever a configured dynamic filter or
score plugin has no array version, a pod requests other (extended) resources
or has an invalid request, or some value is too large for int64 arithmetic to
be exact (see :mod:`podlife.scheduler.plugins`). A pod that fits nowhere is
diagnosed node by node, for Kubernetes' per-reason message.

*Not every node.* As kube-scheduler's ``percentageOfNodesToScore``: the search
stops after ``max(100, nodes * (50 - nodes/125)%)`` feasible nodes (at least 5 %),
starting where the previous pod stopped, so successive pods look at different
nodes and spread. (The array path checks every candidate, which costs less than
stopping early would save, then keeps the nodes the search would have found.)

*Volumes.* A pod with claims (``PodInfo.claims``, empty for most pods, which
then pay one attribute test) goes through the VolumeBinding plugin
(:mod:`podlife.scheduler.volume_binding`): its PreFilter may reject it on every
node (``0/3 nodes are available: persistentvolumeclaim "data" not found. ...``), its
per-node filter joins the dynamic filters (after NodeResourcesFit, as in
Kubernetes) only when the claims constrain the node. When the chosen node needs
volumes bound or provisioned first, the pod does not go to the bind workers: a
task of its own (at most ``max_volume_binds_in_flight`` at once) writes the
volumes' ``claimRef`` and the claims' ``selected-node``, waits for the claims to be
bound (``bind_timeout``, 600 s), then binds the pod; a failure un-assumes it and
retries it with backoff. Claim, volume and class events re-queue the
unschedulable pods they may help.

*Retries.* A pod that fits nowhere waits in the unschedulable set until a node is
added or changes, or an assigned pod goes away (or, with claims, a claim, volume or
class changes); it then comes back through a
backoff queue (1 s, doubling to 10 s per attempt), and at the latest after five
minutes (:mod:`podlife.scheduler.queue`).

*Preemption.* When a pod fits nowhere, the profile's PostFilter plugins run
(:mod:`podlife.scheduler.preemption`); one that makes room nominates the pod to a
node, which the cache records at once and the status write carries
(``status.nominatedNodeName``). While any pod is nominated, a search charges the
nominated pods of at least the searching pod's priority to their nodes (kube's
nominator), so the room made for them is not taken; a nominated pod tries its own
node first. The FitError message ends with what the PostFilter said (nothing when it
made room).

This module is the loop and the decisions; the queue
(:mod:`podlife.scheduler.queue`) says which pod comes next, the cache
(:mod:`podlife.scheduler.cache`) what each node already holds.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections import Counter
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

import numpy as np

from ..machinery.errors import ApiError
from ..machinery.timeutil import now_rfc3339
from ..client.base import NODES, PODS, Client, Obj
from ..client.events import EventRecorder
from ..client.informer import Informer
from ..machinery.tasks import Supervisor
from .cache import SchedulerCache
from .metrics import ERROR, SCHEDULED, UNSCHEDULABLE, SchedulerMetrics
from .columns import Rows
from .plugins import (
    DefaultBinder,
    FilterPlugin,
    NodeInfo,
    Plugin,
    PodInfo,
    PrioritySort,
    ScorePlugin,
    Status,
)
from .profile import DEFAULT_SCHEDULER_NAME, Profile
from .queue import IN_FLIGHT, INITIAL_BACKOFF_SECONDS, MAX_BACKOFF_SECONDS, QueuedPod, SchedulingQueue
from .volume_binding import (
    DEFAULT_BIND_TIMEOUT_SECONDS,
    ERR_NOT_ELIGIBLE,
    Rejection,
    VolumeBindError,
    VolumeBinding,
    VolumePlan,
)

log = logging.getLogger(__name__)

MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE = 5
NO_NODES_MESSAGE = "no nodes available to schedule pods"
#: pods waiting for their volumes to bind before their own binding (each in its own task)
MAX_VOLUME_BINDS_IN_FLIGHT = 256
#: the scheduling loop yields to the event loop after this much decision time, even within a batch
YIELD_AFTER_SECONDS = 0.02


def num_feasible_nodes_to_find(num_nodes: int, percentage: int = 0) -> int:
    """How many feasible nodes to look for before scoring (kube's percentageOfNodesToScore).

    ``percentage`` 0 is adaptive: 50 % for small clusters, 5 % less per 625 nodes,
    never below 5 %; never fewer than 100 nodes.
    """
    if num_nodes < MIN_FEASIBLE_NODES_TO_FIND or percentage >= 100:
        return num_nodes
    if percentage <= 0:
        percentage = max(50 - num_nodes // 125, MIN_FEASIBLE_NODES_PERCENTAGE)
    return max(num_nodes * percentage // 100, MIN_FEASIBLE_NODES_TO_FIND)


# ---- the fit error ------------------------------------------------------------------------


@dataclass
class FitError:
    """Why a pod fits on no node, rendered as Kubernetes renders it."""

    num_nodes: int
    reasons: Counter[str] = field(default_factory=Counter)
    #: nodes where nothing would help, and nodes where evicting pods might
    unresolvable: int = 0
    resolvable: int = 0
    #: a PreFilter plugin rejected the pod on every node, for this reason (then no per-node reasons)
    pre_filter_message: str = ""
    #: the nodes (by name) whose status was resolvable (Unschedulable): preemption's candidates;
    #: with a resolvable ``pre_filter_message``, every node is one
    resolvable_nodes: list[str] = field(default_factory=list)
    #: what the PostFilter plugins said (kube's ``Diagnosis.PostFilterMsg``): "" nothing (preemption
    #: succeeded); None: no PostFilter ran (a profile without DefaultPreemption): nothing either
    post_filter_message: str | None = None

    def reject(self, status: Status, node: str | None = None) -> None:
        """Count a node that ``status`` (its first failing filter's) rejected (named when known)."""
        self.reasons.update(status.reasons)
        if status.unresolvable:
            self.unresolvable += 1
        else:
            self.resolvable += 1
            if node is not None:
                self.resolvable_nodes.append(node)

    @property
    def message(self) -> str:
        """kube's ``FitError.Error()``: the filters' histogram, then the PostFilter's message."""
        if self.num_nodes == 0:
            return NO_NODES_MESSAGE
        n = self.num_nodes
        histogram = self.pre_filter_message or ", ".join(
            sorted(f"{count} {reason}" for reason, count in self.reasons.items()))
        message = f"0/{n} nodes are available:" + (f" {histogram}." if histogram else "")
        post = self.post_filter_message  # None (no PostFilter ran) says nothing, as Kubernetes
        return f"{message} {post}." if post else message


@dataclass
class PostFilterResult:
    """What a PostFilter plugin says (kube's PostFilterResult and Status)."""

    #: the status message ("" on success)
    message: str = ""
    #: the pod can be placed after this (kube's Success): later PostFilter plugins do not run
    success: bool = False
    #: the pod's new nominated node: None leaves it, "" clears it
    nominated_node: str | None = None


# ---- the scheduler ---------------------------------------------------------------------------


@dataclass
class _StaticResult:
    """The static filters' verdict over every node, for one pod constraint set.

    ``positions`` are the candidates' rows in the cache's columns (their places in
    ``node_list``); the result is dropped whenever the cache's generation changes,
    which any change of position bumps, so they stay valid while it is used.
    """

    candidates: list[NodeInfo]
    reasons: Counter[str]
    unresolvable: int
    resolvable: int
    positions: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    #: the nodes a static filter rejected as resolvable (preemption may help there)
    resolvable_nodes: list[str] = field(default_factory=list)
    #: every node is a candidate: ``rows`` is then a slice, which numpy reads without copying
    everywhere: bool = False

    @property
    def rows(self) -> Rows:
        return slice(0, len(self.candidates)) if self.everywhere else self.positions


@dataclass
class SchedulerStats:
    scheduled: int = 0
    unschedulable: int = 0
    bind_errors: int = 0
    array_searches: int = 0  # node searches done on the cache's columns
    per_node_searches: int = 0  # node searches through the plugins (a filter had no array version)


class Scheduler:
    """Run with ``await scheduler.run()`` (until cancelled); see the module docstring."""

    def __init__(self, client: Client, *, name: str = DEFAULT_SCHEDULER_NAME,
                 filters: list[FilterPlugin] | None = None, scores: list[ScorePlugin] | None = None,
                 profiles: list[Profile] | None = None, binder: DefaultBinder | None = None, queue_sort: PrioritySort | None = None,
                 percentage_of_nodes_to_score: int = 0, batch_size: int = 128, max_binds_in_flight: int = 64,
                 initial_backoff: float = INITIAL_BACKOFF_SECONDS, max_backoff: float = MAX_BACKOFF_SECONDS,
                 rng: random.Random | None = None, start_node_index: int = 0,
                 bind_timeout: float = DEFAULT_BIND_TIMEOUT_SECONDS,
                 max_volume_binds_in_flight: int = MAX_VOLUME_BINDS_IN_FLIGHT) -> None:
        self.client = client
        if profiles is None:  # one profile: ``name`` with these plugins (or the defaults)
            profiles = [Profile(name, filters, scores) if filters is not None else Profile(name, scores=scores)]
        if not profiles or len({p.scheduler_name for p in profiles}) != len(profiles):
            raise ValueError("a scheduler needs at least one profile, each with its own schedulerName")
        self.profiles = {p.scheduler_name: p for p in profiles}
        #: the first profile's name (the events' reporting component, as kube-scheduler's default profile)
        self.name = profiles[0].scheduler_name
        self.binder = binder or DefaultBinder()
        self.percentage_of_nodes_to_score = percentage_of_nodes_to_score
        self.batch_size = batch_size
        #: seconds of decisions after which the loop yields to the event loop within a batch
        self.yield_after = YIELD_AFTER_SECONDS
        self.max_binds_in_flight = max_binds_in_flight
        self.queue = SchedulingQueue(queue_sort, initial_backoff=initial_backoff, max_backoff=max_backoff)
        self.cache = SchedulerCache()
        self.stats = SchedulerStats()
        #: kube-scheduler's metrics (:mod:`podlife.scheduler.metrics`): attempts, their durations, pending pods
        self.metrics = SchedulerMetrics(self)
        #: events are reported by the pod's profile (kube: each profile's recorder is its schedulerName)
        self.recorders = {p.scheduler_name: EventRecorder(client, p.scheduler_name) for p in profiles}
        self.recorder = self.recorders[self.name]
        self.pod_informer = Informer(client, PODS, field_selector="status.phase!=Succeeded,status.phase!=Failed")
        self.node_informer = Informer(client, NODES)
        self.pod_informer.add_handlers(self._on_pod_add, self._on_pod_update, self._on_pod_delete)
        self.node_informer.add_handlers(self._on_node_add, self._on_node_update, self._on_node_delete)
        #: VolumeBinding runs for pods with claims only, after the other filters (Kubernetes' order)
        self.volume_binding = VolumeBinding(client, bind_timeout=bind_timeout)
        self.volume_binding.requeue = self.queue.move_where
        self.volume_binding.node_list = lambda: self.cache.node_list
        self.volume_binding.claim_users = self._claims_in_use
        for profile in profiles:
            for plugin in profile.plugins():
                plugin.attach(self)
        self._volume_bind_slots = asyncio.Semaphore(max_volume_binds_in_flight)
        self._static_cache: dict[Hashable, _StaticResult] = {}
        self._static_generation = -1
        self._next_start = start_node_index  # where the next search starts (kube's nextStartNodeIndex)
        self._rng = rng or random.Random()
        self._binds: asyncio.Queue[tuple[PodInfo, str]] = asyncio.Queue()
        self._status_writes: dict[str, asyncio.Task[None]] = {}
        self._tasks = Supervisor(f"scheduler {name}", logger=log)

    def _recorder(self, info: PodInfo) -> EventRecorder:
        """The recorder of the profile that schedules ``info`` (the first profile's for any other)."""
        return self.recorders.get(info.scheduler_name, self.recorder)

    # ---- running ----

    async def run(self) -> None:
        self._tasks.start(self.pod_informer.run(), "scheduler-pods")
        self._tasks.start(self.node_informer.run(), "scheduler-nodes")
        for informer in self._plugin_informers():
            self._tasks.start(informer.run(), f"scheduler-{informer.res.plural}")
        self.queue.start()
        try:
            await self.wait_synced()
            for i in range(self.max_binds_in_flight):
                self._tasks.start(self._bind_worker(), f"scheduler-bind-{i}")
            await self._schedule_loop()
        finally:
            self.queue.stop()
            await self._tasks.stop()

    async def wait_synced(self) -> None:
        await self.pod_informer.wait_synced()
        await self.node_informer.wait_synced()
        for informer in self._plugin_informers():
            await informer.wait_synced()

    def _plugin_informers(self) -> list[Informer]:
        """What the plugins watch besides pods and nodes (claims, volumes, budgets), each informer once."""
        found: dict[int, Informer] = {id(i): i for i in self.volume_binding.informers()}
        for profile in self.profiles.values():
            for plugin in profile.plugins():
                found.update((id(i), i) for i in plugin.informers())
        return list(found.values())

    async def _schedule_loop(self) -> None:
        """Decide batch after batch, yielding to the event loop (bindings, informers, the API server)
        after each batch and whenever ``yield_after`` seconds of decisions have passed: a batch of slow
        attempts (preemption's dry runs) must not starve the binders for seconds. A pod whose
        preemption is still evicting (a PostFilter's ``running_preemption``, kube's PreEnqueue gate
        of async preemption) waits with the unschedulable pods instead of being tried."""
        clock = time.perf_counter
        while True:
            batch = await self.queue.pop_batch(self.batch_size)
            started = clock()
            gates = [plugin.running_preemption for profile in self.profiles.values() for plugin in profile.post_filters]
            for qp in batch:
                if self.queue.where(qp.info.key) != IN_FLIGHT:  # deleted while the loop yielded
                    continue
                if any(gate(qp.info) for gate in gates):  # kube's PreEnqueue: its preemption is under way
                    self.queue.unschedulable(qp)
                    continue
                try:
                    self._schedule_one(qp)
                except Exception:
                    log.exception("scheduler: scheduling %s failed", qp.info.key)
                    self.metrics.attempt_ended(qp.info.key, ERROR, qp.info.scheduler_name)
                    self.queue.backoff(qp.info.key)
                if clock() - started >= self.yield_after:
                    await asyncio.sleep(0)
                    started = clock()
            await asyncio.sleep(0)  # let bindings, informers and the API server run

    @property
    def filters(self) -> list[FilterPlugin]:
        """The first profile's filters (the only profile's, for a scheduler built with one)."""
        return next(iter(self.profiles.values())).filters

    @property
    def scores(self) -> list[ScorePlugin]:
        return next(iter(self.profiles.values())).score_plugins

    # ---- one pod ----

    def _schedule_one(self, qp: QueuedPod) -> None:
        info = qp.info
        profile = self.profiles.get(info.scheduler_name)
        if info.deleting or profile is None:  # kube skips pods being deleted; the informer drops them soon
            self.queue.done(info.key)
            return
        info.cycle.clear()
        self.metrics.attempt_started(info.key)
        chosen = self._find_node(info, profile)
        if isinstance(chosen, FitError):
            self._unschedulable(qp, chosen, profile)
            return
        self.cache.assume(info, chosen.name)
        if info.claims:
            plan = self.volume_binding.reserve(info, chosen)
            if not plan.empty:  # PreBind: bind its volumes first, in its own task
                self._tasks.start(self._bind_with_volumes(info, chosen.name, plan), f"scheduler-volumes-{info.key}")
                return
        self._binds.put_nowait((info, chosen.name))

    def _find_node(self, info: PodInfo, profile: Profile | None = None) -> NodeInfo | FitError:
        """Filter and score for ``info`` under ``profile`` (default: the one its schedulerName names),
        with the nominated pods of at least its priority charged to their nodes meanwhile (kube
        filters with them: the room made for them is not this pod's)."""
        if profile is None:
            profile = self.profiles[info.scheduler_name]
        if not self.cache.nominated:
            return self._search(info, profile)
        notify = needs_pod_listeners(profile.plugins(), info)
        if not notify and (own := self._own_nominated_node(info, profile)) is not None:
            return own
        reserved = self.cache.reserve_nominated(info, notify=notify)
        try:
            return self._search(info, profile)
        finally:
            self.cache.release_nominated(reserved)

    def _own_nominated_node(self, info: PodInfo, profile: Profile) -> NodeInfo | None:
        """kube's evaluateNominatedNode before any search: the pod's nominated node when it fits there
        with that node's nominated pods (of at least its priority) charged -- the only ones a per-node
        filter on that node reads, so the whole cluster's reservation is not needed for it. Only for
        pods no index-keeping plugin judges and without claims (whose PreFilter the search runs);
        None sends the pod to the full search, which looks at the nominated node again."""
        name = self.cache.nominated_node(info.key) or _nominated_node_name(info.obj)
        if not name or info.claims:
            return None
        filters = [f for f in profile.dynamic_filters if f.applies(info)]
        reserved = self.cache.reserve_nominated(info, name, notify=False)
        try:
            if any(f.pre_filter(info) is not None for f in filters):
                return None
            return self._nominated_fits(info, profile, filters)
        finally:
            self.cache.release_nominated(reserved)

    def _nominated_fits(self, info: PodInfo, profile: Profile, filters: list[FilterPlugin]) -> NodeInfo | None:
        """The pod's nominated node when it passes every filter there (kube's evaluateNominatedNode:
        a pod that preempted takes the room it made without a search)."""
        name = self.cache.nominated_node(info.key) or ((info.obj.get("status") or {}).get("nominatedNodeName") or "")
        node = self.cache.nodes.get(name) if name else None
        if node is None or node.node is None:
            return None
        if _first_rejection([*profile.static_filters, *filters], info, node) is not None:
            return None
        return node

    def _search(self, info: PodInfo, profile: Profile) -> NodeInfo | FitError:
        num_nodes = len(self.cache.node_list)
        if not num_nodes:
            return FitError(0)
        filters = [f for f in profile.dynamic_filters if f.applies(info)]
        for f in filters:  # PreFilter
            if (status := f.pre_filter(info)) is not None:
                return _rejected_everywhere(num_nodes, status.unresolvable, "; ".join(status.reasons))
        if info.claims:  # VolumeBinding's PreFilter
            volumes = self.volume_binding.pre_filter_volumes(info)
            if isinstance(volumes, Rejection):
                return _rejected_everywhere(num_nodes, not volumes.resolvable, volumes.message)
            info.volumes = volumes
            if not volumes.everywhere:
                filters.append(self.volume_binding)
            if volumes.eligible is not None:
                return self._find_node_among(info, profile, filters, volumes.eligible, num_nodes)
        if self.cache.nominated and (nominated := self._nominated_fits(info, profile, filters)) is not None:
            return nominated
        static = self._static_for(info, profile)
        percentage = profile.percentage_of_nodes_to_score
        wanted = num_feasible_nodes_to_find(
            num_nodes, self.percentage_of_nodes_to_score if percentage is None else percentage)
        rows = self._feasible_rows(info, filters, static, wanted)
        if rows is not None:  # the array path
            self.stats.array_searches += 1
        else:
            self.stats.per_node_searches += 1
            feasible = self._feasible(info, filters, static.candidates, wanted)
            rows = np.fromiter((node.row for node in feasible), dtype=np.intp, count=len(feasible))
        if not len(rows):
            return self._diagnose(info, filters, static, num_nodes)
        if len(rows) == 1:
            return self.cache.node_list[int(rows[0])]
        return self._select_row(info, profile, rows)

    def _find_node_among(self, info: PodInfo, profile: Profile, dynamic: list[FilterPlugin],
                         names: frozenset[str], num_nodes: int) -> NodeInfo | FitError:
        """A PreFilter narrowed the nodes to ``names`` (a handful): every filter on those, node by node;
        the other nodes count as rejected by the plugin (Kubernetes' absent-nodes status)."""
        nodes = [node for name in sorted(names) if (node := self.cache.nodes.get(name)) is not None and node.node]
        absent = num_nodes - len(nodes)
        error = FitError(num_nodes, Counter({ERR_NOT_ELIGIBLE: absent} if absent else {}), unresolvable=absent)
        feasible: list[NodeInfo] = []
        filters = [*profile.static_filters, *dynamic]
        for node in nodes:
            status = _first_rejection(filters, info, node)
            if status is None:
                feasible.append(node)
            else:
                error.reject(status, node.name)
        if not feasible:
            return error
        if len(feasible) == 1:
            return feasible[0]
        return self._select_row(info, profile, np.array([node.row for node in feasible], dtype=np.intp))

    def _static_for(self, info: PodInfo, profile: Profile) -> _StaticResult:
        if self._static_generation != self.cache.generation:
            self._static_cache.clear()
            self._static_generation = self.cache.generation
        key = (profile.scheduler_name, *(f.pod_key(info) for f in profile.static_filters))
        result = self._static_cache.get(key)
        if result is None:
            result = self._static_cache[key] = self._run_static(info, profile.static_filters)
        return result

    def _run_static(self, info: PodInfo, static_filters: list[FilterPlugin]) -> _StaticResult:
        candidates: list[NodeInfo] = []
        positions: list[int] = []
        reasons: Counter[str] = Counter()
        unresolvable = resolvable = 0
        resolvable_nodes: list[str] = []
        for position, node in enumerate(self.cache.node_list):
            for f in static_filters:
                status = f.filter(info, node)
                if status is not None:
                    reasons.update(status.reasons)
                    if status.unresolvable:
                        unresolvable += 1
                    else:
                        resolvable += 1
                        resolvable_nodes.append(node.name)
                    break
            else:
                candidates.append(node)
                positions.append(position)
        return _StaticResult(candidates, reasons, unresolvable, resolvable, np.array(positions, dtype=np.intp),
                             resolvable_nodes, everywhere=len(candidates) == len(self.cache.node_list))

    # -- the per-node path: any plugin, any pod --

    def _feasible(self, info: PodInfo, filters: list[FilterPlugin], candidates: list[NodeInfo],
                  wanted: int) -> list[NodeInfo]:
        """Up to ``wanted`` nodes passing the dynamic filters, from a rotating start."""
        n = len(candidates)
        if not n:
            return []
        start = self._next_start % n
        passing: Iterable[NodeInfo] = itertools.chain(itertools.islice(candidates, start, None),
                                                      itertools.islice(candidates, start))
        for f in filters:
            passing = f.filter_many(info, passing)
        feasible = list(itertools.islice(passing, wanted))
        if len(feasible) < wanted:
            processed = n
        else:  # the search stopped at the last feasible node
            processed = (candidates.index(feasible[-1]) - start) % n + 1
        self._next_start = (start + processed) % n
        return feasible

    # -- the array path: every candidate judged at once on the cache's columns --

    def _feasible_rows(self, info: PodInfo, filters: list[FilterPlugin], static: _StaticResult,
                       wanted: int) -> np.ndarray | None:
        """:meth:`_feasible` on the columns: the same nodes, as rows of ``node_list``, in the
        same order, with the same ``_next_start`` update; None (and nothing changed) when
        a dynamic filter has no array version for this pod."""
        n = len(static.candidates)
        if not n:
            return static.positions
        mask = self._dynamic_mask(info, filters, static.rows, n)
        if mask is None:
            return None
        start = self._next_start % n
        chosen = _rotated_first(mask.nonzero()[0], start, wanted)
        if len(chosen) < wanted:
            processed = n
        else:  # the search stopped at the last feasible node
            processed = (int(chosen[-1]) - start) % n + 1
        self._next_start = (start + processed) % n
        return chosen if static.everywhere else static.positions[chosen]

    def _dynamic_mask(self, info: PodInfo, filters: list[FilterPlugin], rows: Rows, n: int) -> np.ndarray | None:
        """Which candidates pass every dynamic filter, or None when one cannot say with arrays."""
        mask: np.ndarray | None = None
        for f in filters:
            verdicts = f.filter_mask(info, self.cache.columns, rows)
            if verdicts is None:
                return None
            mask = verdicts if mask is None else mask & verdicts
        return mask if mask is not None else np.ones(n, dtype=bool)

    def _select_row(self, info: PodInfo, profile: Profile, rows: np.ndarray) -> NodeInfo:
        """The best-scoring of the feasible nodes at ``rows``; ties broken at random (kube's selectHost)."""
        totals = self._total_scores(info, profile, rows)
        ties = (totals == totals.max()).nonzero()[0]
        pick = ties[0] if len(ties) == 1 else ties[self._rng.randrange(len(ties))]
        return self.cache.node_list[int(rows[pick])]

    def _total_scores(self, info: PodInfo, profile: Profile, rows: np.ndarray) -> np.ndarray:
        """The weighted sum of the normalized scores of the plugins that apply, an int64 array over ``rows``.

        A plugin's array form when it has one for this pod, else its per-node form on these nodes."""
        totals = np.zeros(len(rows), dtype=np.int64)
        nodes: list[NodeInfo] | None = None
        for plugin in profile.score_plugins:
            if not plugin.applies(info):
                continue
            plugin.pre_score(info, rows)
            scores = plugin.score_array(info, self.cache.columns, rows)
            if scores is None:
                if nodes is None:
                    nodes = [self.cache.node_list[r] for r in rows.tolist()]
                scores = np.array(plugin.score_many(info, nodes), dtype=np.int64)
            scores = plugin.normalize(info, scores)
            if plugin.weight != 1:
                scores = plugin.weight * scores
            totals += scores
        return totals

    # -- fits nowhere --

    def _diagnose(self, info: PodInfo, filters: list[FilterPlugin], static: _StaticResult,
                  num_nodes: int) -> FitError:
        error = FitError(num_nodes, Counter(static.reasons), static.unresolvable, static.resolvable,
                         resolvable_nodes=list(static.resolvable_nodes))
        for node in static.candidates:
            if (status := _first_rejection(filters, info, node)) is not None:
                error.reject(status, node.name)
        return error

    # ---- failures ----

    def _unschedulable(self, qp: QueuedPod, error: FitError, profile: Profile) -> None:
        info = qp.info
        nominated = self._post_filter(info, error, profile)
        self.metrics.attempt_ended(info.key, UNSCHEDULABLE, profile.scheduler_name)
        self.stats.unschedulable += 1
        self.queue.unschedulable(qp)
        message = error.message
        log.debug("scheduler: %s is unschedulable: %s", info.key, message)
        self._recorder(info).event(info.obj, "Warning", "FailedScheduling", message)
        self._write_status(info, "Unschedulable", message, nominated)

    def _post_filter(self, info: PodInfo, error: FitError, profile: Profile) -> str | None:
        """kube's RunPostFilterPlugins: until one succeeds; their messages joined. Returns the pod's
        new nominated node (None: unchanged, "": cleared), already recorded in the cache."""
        if error.num_nodes == 0 or not profile.post_filters:
            return None
        messages: list[str] = []
        nominated: str | None = None
        for plugin in profile.post_filters:
            result = plugin.post_filter(info, error)
            if not isinstance(result, PostFilterResult):
                continue
            if result.nominated_node is not None:
                nominated = result.nominated_node
            if result.success:
                messages = []
                break
            if result.message:
                messages.append(result.message)
        error.post_filter_message = ", ".join(messages)
        if nominated is not None:
            self.cache.nominate(info, nominated)
        return nominated

    def _write_status(self, info: PodInfo, reason: str, message: str, nominated: str | None = None) -> None:
        previous = self._status_writes.get(info.key)
        task = self._tasks.start(self._set_condition(info, reason, message, previous, nominated))
        self._status_writes[info.key] = task

        def forget(done: asyncio.Task[None], key: str = info.key) -> None:
            if self._status_writes.get(key) is done:
                del self._status_writes[key]
        task.add_done_callback(forget)

    async def _set_condition(self, info: PodInfo, reason: str, message: str,
                             previous: asyncio.Task[None] | None, nominated: str | None = None) -> None:
        """``PodScheduled=False`` on a still-pending pod (the full conditions list: merge
        patch replaces lists), pinned to the pod's resourceVersion so it can never land
        after a binding."""
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        pod: Obj | None = self.pod_informer.get(info.namespace, info.name)
        for _ in range(3):
            if pod is None or (pod.get("metadata") or {}).get("uid") != info.uid or (pod.get("spec") or {}).get("nodeName"):
                return
            patch = _condition_patch(pod, reason, message, nominated)
            if patch is None:
                return
            try:
                await self.client.patch(PODS, info.name, patch, info.namespace, subresource="status")
                return
            except ApiError as exc:
                if exc.code != 409:
                    log.debug("scheduler: condition for %s not written: %s", info.key, exc)
                    return
            try:
                pod = await self.client.get(PODS, info.name, info.namespace)
            except ApiError:
                return

    # ---- binding ----

    async def _bind_worker(self) -> None:
        while True:
            info, node_name = await self._binds.get()
            try:
                await self._bind(info, node_name)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduler: binding %s failed unexpectedly", info.key)

    async def _bind(self, info: PodInfo, node_name: str) -> None:
        pending = self._status_writes.get(info.key)
        if pending is not None:
            await asyncio.gather(pending, return_exceptions=True)
        if not self.cache.holds(info.key, info.uid):
            self.queue.done(info.key, info.uid)  # deleted while waiting to bind
            self.metrics.attempt_ended(info.key, ERROR, info.scheduler_name)
            return
        try:
            await self.binder.bind(self.client, info, node_name)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._bind_failed(info, node_name, exc)
            return
        self.stats.scheduled += 1
        self.metrics.attempt_ended(info.key, SCHEDULED, info.scheduler_name)
        if self.queue.where(info.key) == IN_FLIGHT:
            self.queue.done(info.key, info.uid)
        self._recorder(info).event(info.obj, "Normal", "Scheduled",
                            f"Successfully assigned {info.namespace}/{info.name} to {node_name}")

    async def _bind_with_volumes(self, info: PodInfo, node_name: str, plan: VolumePlan) -> None:
        """VolumeBinding's PreBind (write the plan, wait for the claims to be bound), then the binding;
        a task per pod, so waiting for a provisioner holds none of the bind workers."""
        try:
            async with self._volume_bind_slots:
                await self.volume_binding.bind_pod_volumes(
                    info, node_name, plan, node=lambda: self._node_object(node_name),
                    alive=lambda: self.cache.holds(info.key, info.uid))
        except VolumeBindError as exc:
            self._volume_bind_failed(info, node_name, exc)
            return
        finally:
            self.volume_binding.unreserve(plan)
        await self._bind(info, node_name)

    def _claims_in_use(self, pod: PodInfo, names: list[str]) -> bool:
        """Whether a pod other than ``pod``, bound or assumed, uses one of these claims of its namespace
        (a scan of the cache: only pods with ReadWriteOncePod claims ask)."""
        wanted = set(names)
        return any(other.namespace == pod.namespace and other.key != pod.key and not wanted.isdisjoint(other.claims)
                   for other, _ in self.cache.pods.values())

    def _node_object(self, name: str) -> Obj | None:
        node = self.cache.nodes.get(name)
        return node.node if node is not None else None

    def _volume_bind_failed(self, info: PodInfo, node_name: str, exc: VolumeBindError) -> None:
        """As kube-scheduler's failure handler for a PreBind error: un-assume, tell, retry with backoff."""
        self.stats.bind_errors += 1
        self.metrics.attempt_ended(info.key, ERROR, info.scheduler_name)
        if self.cache.forget(info.key, info.uid):
            self.queue.move_all()
        pod = self.pod_informer.get(info.namespace, info.name)
        if pod is None or (pod.get("metadata") or {}).get("uid") != info.uid or (pod.get("spec") or {}).get("nodeName"):
            self.queue.done(info.key, info.uid)
            return
        message = f'running PreBind plugin "VolumeBinding": {exc}'
        log.info("scheduler: binding the volumes of %s on %s failed: %s", info.key, node_name, exc)
        self._recorder(info).event(info.obj, "Warning", "FailedScheduling", message)
        self._write_status(info, "SchedulerError", message)
        self.queue.backoff(info.key)

    def _bind_failed(self, info: PodInfo, node_name: str, exc: Exception) -> None:
        self.stats.bind_errors += 1
        self.metrics.attempt_ended(info.key, ERROR, info.scheduler_name)
        if self.cache.forget(info.key, info.uid):
            self.queue.move_all()  # the node has room again
        pod = self.pod_informer.get(info.namespace, info.name)
        gone = isinstance(exc, ApiError) and exc.code == 404
        if gone or pod is None or (pod.get("metadata") or {}).get("uid") != info.uid or (pod.get("spec") or {}).get("nodeName"):
            self.queue.done(info.key, info.uid)
            return
        log.info("scheduler: binding %s to %s failed: %s", info.key, node_name, exc)
        self._recorder(info).event(info.obj, "Warning", "FailedScheduling", f"Binding rejected: {exc}")
        self.queue.backoff(info.key)

    # ---- informer handlers (they only update the cache and the queue) ----

    def _responsible(self, pod: Obj) -> bool:
        return ((pod.get("spec") or {}).get("schedulerName") or DEFAULT_SCHEDULER_NAME) in self.profiles

    def _on_pod_add(self, pod: Obj) -> None:
        spec = pod.get("spec") or {}
        if spec.get("nodeName"):
            info = PodInfo(pod)
            self.queue.delete(info.key)
            self.cache.remove_nominated(info.key)
            self.cache.add_pod(info)
        elif self._responsible(pod):
            info = PodInfo(pod)
            if not info.deleting and not spec.get("schedulingGates"):  # kube's SchedulingGates PreEnqueue
                self.queue.add(info)
                self.cache.nominate(info, _nominated_node_name(pod))

    def _on_pod_update(self, old: Obj, new: Obj) -> None:
        spec = new.get("spec") or {}
        node_name = spec.get("nodeName")
        if node_name:
            meta = new.get("metadata") or {}
            key = f"{meta.get('namespace')}/{meta.get('name')}"
            current = self.cache.pods.get(key)
            if current is not None and current[1] == node_name and current[0].uid == meta.get("uid"):
                if self.cache.confirm(key):  # our binding arrived
                    self.queue.delete(key)
                if (current[0].labels != (meta.get("labels") or {})
                        or current[0].deleting != bool(meta.get("deletionTimestamp"))):
                    # relabelled or terminating: the topology index (affinity, spread) must see it
                    self.cache.remove_pod(key)
                    self.cache.add_pod(PodInfo(new))
                return
            self.queue.delete(key)
            self.cache.remove_nominated(key)
            info = PodInfo(new)
            self.cache.add_pod(info)
            return
        info = PodInfo(new)
        if info.deleting or not self._responsible(new) or spec.get("schedulingGates"):
            self.queue.delete(info.key)
            self.cache.remove_nominated(info.key)
        elif not self.cache.is_assumed(info.key):
            self.queue.add(info)
            self._update_nomination(old, info)
        elif info.key in self.queue:
            self.queue.add(info)  # in flight: only refresh what the binder will send

    def _on_pod_delete(self, pod: Obj) -> None:
        meta = pod.get("metadata") or {}
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        self.queue.delete(key)
        self.cache.remove_nominated(key)
        self.volume_binding.pod_gone(key)
        if self.cache.remove_pod(key):
            self.queue.move_all()

    def _update_nomination(self, old: Obj, info: PodInfo) -> None:
        """kube's updateNominatedPod: follow the pod's ``nominatedNodeName``, except that an update
        saying nothing about it (none before, none now) keeps a nomination made in memory whose
        write has not arrived yet."""
        name = _nominated_node_name(info.obj)
        if not name and not _nominated_node_name(old):
            name = self.cache.nominated_node(info.key)
        self.cache.nominate(info, name)

    def _on_node_add(self, node: Obj) -> None:
        if self.cache.set_node(node):
            self.queue.move_all()

    def _on_node_update(self, old: Obj, new: Obj) -> None:
        if self.cache.set_node(new):
            self.queue.move_all()

    def _on_node_delete(self, node: Obj) -> None:
        self.cache.remove_node((node.get("metadata") or {}).get("name") or "")


def needs_pod_listeners(plugins: Iterable[Plugin], pod: PodInfo) -> bool:
    """Whether a plugin that judges ``pod`` keeps an index of pods (inter-pod affinity, spread, ports)."""
    return any(not p.node_local and p.applies(pod) for p in plugins)


def _nominated_node_name(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("nominatedNodeName") or "")


def _rejected_everywhere(num_nodes: int, unresolvable: bool, message: str) -> FitError:
    """A PreFilter said no for every node at once, with one message."""
    if unresolvable:
        return FitError(num_nodes, unresolvable=num_nodes, pre_filter_message=message)
    return FitError(num_nodes, resolvable=num_nodes, pre_filter_message=message)


def _first_rejection(filters: Iterable[FilterPlugin], info: PodInfo, node: NodeInfo) -> Status | None:
    """The status of the first filter that rejects the pod on the node (Kubernetes stops there), or None."""
    for f in filters:
        if (status := f.filter(info, node)) is not None:
            return status
    return None


def _rotated_first(passing: np.ndarray, start: int, wanted: int) -> np.ndarray:
    """The first ``wanted`` of the ascending indices ``passing`` in the order the
    per-node search meets them: from ``start`` to the end, then from the beginning."""
    split = int(passing.searchsorted(start))
    head = passing[split:split + wanted]
    if len(head) == wanted or not split:
        return head
    return np.concatenate((head, passing[:min(split, wanted - len(head))]))


def _condition_patch(pod: Obj, reason: str, message: str, nominated: str | None = None) -> Obj | None:
    """A status merge patch setting PodScheduled=False (and ``nominatedNodeName`` when ``nominated``
    is not None: "" removes it), or None when the pod already says so (kube's updatePod)."""
    status = pod.get("status") or {}
    conditions = [c for c in (status.get("conditions") or []) if isinstance(c, dict)]
    old = next((c for c in conditions if c.get("type") == "PodScheduled"), None)
    nominate = nominated is not None and (status.get("nominatedNodeName") or "") != nominated
    if (not nominate and old is not None and old.get("status") == "False" and old.get("reason") == reason
            and old.get("message") == message):
        return None
    transition = old.get("lastTransitionTime") if old is not None and old.get("status") == "False" else None
    condition = {"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                 "lastTransitionTime": transition or now_rfc3339(), "reason": reason, "message": message}
    kept = [c for c in conditions if c.get("type") != "PodScheduled"]
    rv = (pod.get("metadata") or {}).get("resourceVersion")
    patch: Obj = {"status": {"conditions": kept + [condition]}}
    if nominate:
        patch["status"]["nominatedNodeName"] = nominated or None
    if rv:
        patch["metadata"] = {"resourceVersion": rv}
    return patch
