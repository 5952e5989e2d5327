"""The node lifecycle controller: nodes that stop heartbeating go Unknown, get tainted, their pods not Ready.

As kube-controller-manager's ``nodelifecycle`` controller (``pkg/controller/nodelifecycle``).

What it watches (shared informers): Nodes, Leases (``kube-node-lease/<node>``) and Pods
(the ``BY_NODE`` index: the pods of one node, never a scan of all pods).

What it does, every ``--node-monitor-period``, for every node (:meth:`NodeLifecycleController.monitor`):

* a node new to the controller: event ``RegisteredNode`` (``Registered Node X in
  Controller``) and its NoExecute taints removed (``markNodeAsReachable``: they are put
  back, rate-limited, if it is still not Ready, so tolerations count afresh); a node gone:
  ``RemovingNode`` (``Removing Node X from Controller``);
* *last heard*: the local monotonic time at which this controller last saw the node's
  Lease ``renewTime`` or its Ready condition's ``lastHeartbeatTime`` change
  (:func:`observe`, Kubernetes' ``nodeHealthData.probeTimestamp``). A node seen for the
  first time counts as heard now, unless it never posted a Ready condition: then it counts
  from its ``creationTimestamp``, and the grace is ``--node-startup-grace-period``;
* overdue (unheard for more than ``--node-monitor-grace-period``): Ready, MemoryPressure,
  DiskPressure and PIDPressure become ``Unknown`` (reason ``NodeStatusUnknown``, message
  ``Kubelet stopped posting node status.``; ``NodeStatusNeverUpdated`` / ``Kubelet never
  posted node status.`` for conditions never posted), ``lastHeartbeatTime`` kept,
  ``lastTransitionTime`` now (:func:`unknown_conditions`; a PUT of ``nodes/status`` with
  the cached resourceVersion, so a heartbeat that lands first wins);
* when Ready leaves True: the node event ``NodeNotReady`` (``Node X status is now:
  NodeNotReady``) and MarkPodsNotReady -- each pod's Ready condition False (reason and
  message kept), Warning event ``NodeNotReady`` ``Node is not ready`` on the pod. A pod
  that appears (or turns Ready) later on a node that is not Ready is marked the same way;
* NoExecute taints (:func:`no_execute_action`), decided on the Ready condition as it was
  before this pass, as Kubernetes does: Ready False -> ``node.kubernetes.io/not-ready``,
  Unknown -> ``node.kubernetes.io/unreachable`` (with ``timeAdded``); a node that already
  has the other one has it swapped at once, otherwise it joins its zone's queue, which
  taints at most ``rate`` nodes per second (a token bucket of burst 1, drained every
  100 ms, ``NodeEvictionPeriod``); Ready True removes both at once;
* zones (:func:`zone_key`: region and ``topology.kubernetes.io/zone``) are Normal,
  PartialDisruption (at least 3 and at least ``--unhealthy-zone-threshold`` of its nodes
  not Ready) or FullDisruption (none Ready) (:func:`compute_zone_state`); the rate is
  ``--node-eviction-rate`` when Normal or fully disrupted, ``--secondary-node-eviction-rate``
  when partially disrupted -- 0 in zones of at most ``--large-cluster-size-threshold``
  nodes (:func:`zone_rate`). When *every* zone is fully disrupted the controller assumes
  the control plane is cut off rather than the nodes: it removes the NoExecute taints and
  stops tainting; leaving that state restarts every node's grace (:func:`disruption_step`).

NoSchedule taints follow the conditions at once, on every node event
(``doNoScheduleTaintingPass``, :func:`no_schedule_taints`, kube's TaintNodesByCondition):
Ready False -> ``not-ready:NoSchedule``, Ready Unknown -> ``unreachable:NoSchedule``,
MemoryPressure / DiskPressure / PIDPressure / NetworkUnavailable True ->
``memory-pressure`` / ``disk-pressure`` / ``pid-pressure`` / ``network-unavailable``
``:NoSchedule``, ``spec.unschedulable`` -> ``node.kubernetes.io/unschedulable:NoSchedule``.
(The kubelet and the simulator set the pressure taints too, with the condition; both
writers want the same set, so they never undo each other.)

Cost: a healthy node costs, per pass, two dict lookups and two string comparisons
(its Lease and its Ready condition against what was seen before) and a look at its
(usually empty) taints; no write, no pod is looked at.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..client.base import LEASES, NODES, PODS, Obj
from ..client.shared_informers import BY_NODE
from ..client.workqueue import WorkQueue
from ..machinery.errors import ApiError
from ..machinery.timeutil import now_rfc3339
from ..node.node_status import PRESSURE_TAINTS
from .pod_control import parse_time

log = logging.getLogger(__name__)

NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
#: the pressure taints the kubelet sets with its conditions (one list for both writers)
MEMORY_PRESSURE_TAINT = PRESSURE_TAINTS["MemoryPressure"]
DISK_PRESSURE_TAINT = PRESSURE_TAINTS["DiskPressure"]
PID_PRESSURE_TAINT = PRESSURE_TAINTS["PIDPressure"]
NETWORK_UNAVAILABLE_TAINT = "node.kubernetes.io/network-unavailable"
NO_EXECUTE, NO_SCHEDULE = "NoExecute", "NoSchedule"
LEASE_NAMESPACE = "kube-node-lease"
ZONE_LABEL, REGION_LABEL = "topology.kubernetes.io/zone", "topology.kubernetes.io/region"
BETA_ZONE_LABEL, BETA_REGION_LABEL = "failure-domain.beta.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/region"
#: the conditions that go Unknown with Ready (``remainingNodeConditionTypes`` and Ready)
MONITORED_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
#: how often the zones' taint queues are drained (``NodeEvictionPeriod``)
EVICTION_PERIOD = 0.1

INITIAL, NORMAL, PARTIAL, FULL = "Initial", "Normal", "PartialDisruption", "FullDisruption"


def lease_renew_interval(grace_period: float, default: float = 10.0) -> float:
    """How often a node should renew its Lease so that ``grace_period`` never passes unheard.

    The kubelet renews every 10 s against a 40-50 s grace; a cluster started with a short
    ``--node-monitor-grace-period`` (tests) needs its nodes to renew in proportion.
    """
    return max(0.1, min(default, grace_period / 4))


# --------------------------------------------------------------------------- node facts


def condition(node: Obj, type_: str) -> Obj | None:
    for c in (node.get("status") or {}).get("conditions") or ():
        if isinstance(c, dict) and c.get("type") == type_:
            return c
    return None


def ready_status(node: Obj | None) -> str | None:
    """The Ready condition's status (``True``/``False``/``Unknown``), None when never posted."""
    if node is None:
        return None
    ready = condition(node, "Ready")
    return str(ready.get("status")) if ready is not None else None


def zone_key(node: Obj) -> str:
    """The node's zone (``GetZoneKey``): region and zone labels, "" when it has neither."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    zone = labels.get(ZONE_LABEL) or labels.get(BETA_ZONE_LABEL) or ""
    region = labels.get(REGION_LABEL) or labels.get(BETA_REGION_LABEL) or ""
    return f"{region}:\x00:{zone}" if zone or region else ""


def has_taint(node: Obj, key: str, effect: str) -> bool:
    return any(isinstance(t, dict) and t.get("key") == key and t.get("effect") == effect
               for t in (node.get("spec") or {}).get("taints") or ())


# --------------------------------------------------------------------------- health (pure)


@dataclass(frozen=True, slots=True)
class NodeHealth:
    """What the controller saw of a node (``nodeHealthData``)."""

    #: local monotonic time the node was last heard
    probe: float
    #: the Ready condition's lastHeartbeatTime then (None: no Ready condition)
    heartbeat: str | None
    #: the Lease's renewTime then (None: no Lease)
    renew: str | None


_FIND: Any = object()


def observe(saved: NodeHealth | None, node: Obj, lease: Obj | None, now: float, wall_now: float | None = None,
            ready: Obj | None = _FIND) -> NodeHealth:
    """``saved`` moved on by what the node and its Lease show now (``now``: monotonic seconds).

    A changed heartbeat or renewTime means the node was heard now. A node seen for the first
    time is heard now, unless it has no Ready condition: then since its creation.
    ``ready``: the node's Ready condition, when the caller has found it already.
    """
    if ready is _FIND:
        ready = condition(node, "Ready")
    heartbeat = str(ready.get("lastHeartbeatTime")) if ready is not None else None
    renew = (lease.get("spec") or {}).get("renewTime") if lease is not None else None
    renew = str(renew) if renew else None
    if saved is None:
        probe = now
        if ready is None:
            created = parse_time((node.get("metadata") or {}).get("creationTimestamp"))
            if created is not None:
                wall = time.time() if wall_now is None else wall_now
                probe = now - max(0.0, wall - created.timestamp())
        return NodeHealth(probe, heartbeat, renew)
    probe = saved.probe
    if heartbeat != saved.heartbeat or (renew is not None and renew != saved.renew):
        probe = now
    if probe == saved.probe and heartbeat == saved.heartbeat and renew == saved.renew:
        return saved
    return NodeHealth(probe, heartbeat, renew)


def grace_period(node: Obj, monitor_grace: float, startup_grace: float) -> float:
    """``--node-startup-grace-period`` for a node that never posted Ready, else ``--node-monitor-grace-period``."""
    return startup_grace if condition(node, "Ready") is None else monitor_grace


def unknown_conditions(node: Obj, now: str) -> list[Obj] | None:
    """The node's conditions with the monitored ones Unknown (None: they are already)."""
    conditions = [dict(c) for c in (node.get("status") or {}).get("conditions") or () if isinstance(c, dict)]
    by_type = {c.get("type"): c for c in conditions}
    created = (node.get("metadata") or {}).get("creationTimestamp") or now
    changed = False
    for type_ in MONITORED_CONDITIONS:
        c = by_type.get(type_)
        if c is None:
            conditions.append({"type": type_, "status": "Unknown", "reason": "NodeStatusNeverUpdated",
                               "message": "Kubelet never posted node status.", "lastHeartbeatTime": created,
                               "lastTransitionTime": now})
            changed = True
        elif c.get("status") != "Unknown":
            c.update(status="Unknown", reason="NodeStatusUnknown", message="Kubelet stopped posting node status.",
                     lastTransitionTime=now)
            changed = True
    return conditions if changed else None


# --------------------------------------------------------------------------- taints (pure)


#: the NoSchedule taint of each node condition status (kube's ``nodeConditionToTaintKeyStatusMap``)
CONDITION_TAINTS: dict[tuple[str, str], str] = {
    ("Ready", "False"): NOT_READY_TAINT,
    ("Ready", "Unknown"): UNREACHABLE_TAINT,
    ("MemoryPressure", "True"): MEMORY_PRESSURE_TAINT,
    ("DiskPressure", "True"): DISK_PRESSURE_TAINT,
    ("NetworkUnavailable", "True"): NETWORK_UNAVAILABLE_TAINT,
    ("PIDPressure", "True"): PID_PRESSURE_TAINT,
}


def no_schedule_taints(node: Obj) -> set[str]:
    """The NoSchedule taint keys the node's conditions and ``spec.unschedulable`` call for
    (``TaintNodesByCondition``: Ready False/Unknown, and each pressure or NetworkUnavailable
    condition that is True)."""
    keys: set[str] = set()
    for c in (node.get("status") or {}).get("conditions") or ():
        if isinstance(c, dict):
            key = CONDITION_TAINTS.get((str(c.get("type")), str(c.get("status"))))
            if key is not None:
                keys.add(key)
    if (node.get("spec") or {}).get("unschedulable"):
        keys.add(UNSCHEDULABLE_TAINT)
    return keys


#: the NoSchedule taints this controller owns
CONTROLLED_NO_SCHEDULE = (NOT_READY_TAINT, UNREACHABLE_TAINT, MEMORY_PRESSURE_TAINT, DISK_PRESSURE_TAINT,
                          NETWORK_UNAVAILABLE_TAINT, PID_PRESSURE_TAINT, UNSCHEDULABLE_TAINT)


def reconcile_no_schedule(taints: list[Obj], wanted: set[str], now: str) -> list[Obj] | None:
    """``taints`` with the controlled NoSchedule taints made ``wanted`` (None: they are already)."""
    present = {t.get("key") for t in taints if t.get("effect") == NO_SCHEDULE and t.get("key") in CONTROLLED_NO_SCHEDULE}
    if present == wanted:
        return None
    kept = [t for t in taints if not (t.get("effect") == NO_SCHEDULE and t.get("key") in CONTROLLED_NO_SCHEDULE
                                      and t.get("key") not in wanted)]
    added = [{"key": key, "effect": NO_SCHEDULE, "timeAdded": now} for key in CONTROLLED_NO_SCHEDULE
             if key in wanted and key not in present]
    return kept + added


def swap_no_execute(taints: list[Obj], add: str | None, now: str) -> list[Obj] | None:
    """``taints`` with the NoExecute taint ``add`` (None: neither) and without the other one (None: no change)."""
    ours = (NOT_READY_TAINT, UNREACHABLE_TAINT)
    kept = [t for t in taints if not (t.get("effect") == NO_EXECUTE and t.get("key") in ours and t.get("key") != add)]
    if add is not None and not any(t.get("effect") == NO_EXECUTE and t.get("key") == add for t in kept):
        kept.append({"key": add, "effect": NO_EXECUTE, "timeAdded": now})
    return kept if kept != taints else None


def no_execute_key(status: str | None) -> str | None:
    """The NoExecute taint a Ready status calls for."""
    return {"False": NOT_READY_TAINT, "Unknown": UNREACHABLE_TAINT}.get(status or "")


#: what to do with a node's NoExecute taints: swap/remove at once, queue for the rate limiter, or nothing
SWAP, REMOVE, QUEUE, NOTHING = "swap", "remove", "queue", "nothing"


def no_execute_action(node: Obj, observed_ready: str | None) -> str:
    """``processTaintBaseEviction``: the taint step for a node whose Ready status was ``observed_ready``."""
    if observed_ready == "True":
        tainted = has_taint(node, NOT_READY_TAINT, NO_EXECUTE) or has_taint(node, UNREACHABLE_TAINT, NO_EXECUTE)
        return REMOVE if tainted else NOTHING
    wanted = no_execute_key(observed_ready)
    if wanted is None:
        return NOTHING
    other = UNREACHABLE_TAINT if wanted == NOT_READY_TAINT else NOT_READY_TAINT
    if has_taint(node, other, NO_EXECUTE):
        return SWAP
    return NOTHING if has_taint(node, wanted, NO_EXECUTE) else QUEUE


# --------------------------------------------------------------------------- zones (pure)


def compute_zone_state(statuses: Iterable[str | None], unhealthy_threshold: float = 0.55) -> tuple[int, str]:
    """(not Ready nodes, state) of a zone from its nodes' Ready statuses (``ComputeZoneState``)."""
    ready = not_ready = 0
    for status in statuses:
        if status == "True":
            ready += 1
        else:
            not_ready += 1
    if ready == 0 and not_ready > 0:
        return not_ready, FULL
    if not_ready > 2 and not_ready / (ready + not_ready) >= unhealthy_threshold:
        return not_ready, PARTIAL
    return not_ready, NORMAL


@dataclass(frozen=True)
class ZoneRules:
    """The flags zone decisions depend on."""

    eviction_rate: float = 0.1
    secondary_eviction_rate: float = 0.01
    unhealthy_threshold: float = 0.55
    large_cluster_threshold: int = 50

    def state(self, statuses: Iterable[str | None]) -> str:
        return compute_zone_state(statuses, self.unhealthy_threshold)[1]


def zone_rate(state: str, zone_size: int, rules: ZoneRules) -> float:
    """Nodes per second tainted in a zone of ``zone_size`` nodes in ``state`` (``setLimiterInZone``)."""
    if state == PARTIAL:
        return rules.secondary_eviction_rate if zone_size > rules.large_cluster_threshold else 0.0
    return rules.eviction_rate


@dataclass
class DisruptionStep:
    """What :func:`disruption_step` decided."""

    #: every zone's state after the step
    states: dict[str, str]
    #: zones whose limiter gets a new rate
    rates: dict[str, float] = field(default_factory=dict)
    #: every zone is fully disrupted now: remove the NoExecute taints of every node
    mark_all_reachable: bool = False
    #: leaving full disruption of every zone: every node counts as heard now
    reset_probes: bool = False


def disruption_step(previous: Mapping[str, str], zone_statuses: Mapping[str, Sequence[str | None]],
                    rules: ZoneRules) -> DisruptionStep:
    """``handleDisruption``: the zones' new states and limiter rates from their nodes' Ready statuses.

    ``previous``: each zone's state so far (a zone new to this pass is ``Initial``).
    """
    new_states = {zone: rules.state(statuses) for zone, statuses in zone_statuses.items()}
    known = {zone: state for zone, state in previous.items() if zone in zone_statuses}
    for zone in zone_statuses:
        known.setdefault(zone, INITIAL)
    all_are_full = bool(new_states) and all(state == FULL for state in new_states.values())
    all_were_full = bool(known) and all(state == FULL for state in known.values())
    if all_are_full and all_were_full:
        return DisruptionStep(known)
    if all_are_full:
        return DisruptionStep({zone: FULL for zone in known}, {zone: 0.0 for zone in known}, mark_all_reachable=True)
    if all_were_full:
        reset = {zone: zone_rate(new_states[zone], len(zone_statuses[zone]), rules) for zone in known}
        return DisruptionStep(dict(new_states), reset, reset_probes=True)
    states = dict(known)
    rates: dict[str, float] = {}
    for zone, state in known.items():
        new = new_states[zone]
        if new != state:
            rates[zone] = zone_rate(new, len(zone_statuses[zone]), rules)
            states[zone] = new
    return DisruptionStep(states, rates)


class TokenBucket:
    """A rate limiter of ``rate`` tokens per second and burst 1, full when made (client-go's, for evictions)."""

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.tokens = 1.0 if rate > 0 else 0.0
        self.last = now

    def try_accept(self, now: float) -> bool:
        if self.rate <= 0:
            return False
        self.tokens = min(1.0, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class ZoneTainter:
    """One zone's queue of nodes to NoExecute-taint, drained through its :class:`TokenBucket`.

    As ``RateLimitedTimedQueue``: a node stays known (``seen``) after it was processed, so
    it is not queued again until it is forgotten (Ready again, deleted, or its taint gone).
    """

    def __init__(self, rate: float, now: float) -> None:
        self.bucket = TokenBucket(rate, now)
        self.queue: dict[str, None] = {}  # insertion-ordered
        self.seen: set[str] = set()

    def swap_rate(self, rate: float, now: float) -> None:
        self.bucket = TokenBucket(rate, now)

    def add(self, name: str) -> bool:
        if name in self.seen:
            return False
        self.seen.add(name)
        self.queue[name] = None
        return True

    def forget(self, name: str) -> None:
        self.seen.discard(name)
        self.queue.pop(name, None)

    def take(self, now: float) -> list[str]:
        """The queued nodes the bucket lets through now (in queue order)."""
        out: list[str] = []
        while self.queue and self.bucket.try_accept(now):
            name = next(iter(self.queue))
            del self.queue[name]
            out.append(name)
        return out


# --------------------------------------------------------------------------- pods (pure)


def pod_ready_condition(pod: Obj) -> Obj | None:
    for c in (pod.get("status") or {}).get("conditions") or ():
        if isinstance(c, dict) and c.get("type") == "Ready":
            return c
    return None


def not_ready_patch(pod: Obj, now: str) -> Obj | None:
    """The status patch that makes a pod's Ready condition False (None: it has none, or it is False)."""
    ready = pod_ready_condition(pod)
    if ready is None or ready.get("status") == "False":
        return None
    return {"status": {"conditions": [{**ready, "status": "False", "lastTransitionTime": now}]}}


# --------------------------------------------------------------------------- the controller


class NodeLifecycleController:
    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.options = ctx.options
        self.recorder = ctx.recorder()
        self.nodes = ctx.informers.informer(NODES)
        self.leases = ctx.informers.informer(LEASES)
        self.pods = ctx.informers.informer(PODS)
        self.pods_by_node = ctx.informers.index(PODS, BY_NODE)
        self.rules = ZoneRules(self.options.node_eviction_rate, self.options.secondary_node_eviction_rate,
                               self.options.unhealthy_zone_threshold, self.options.large_cluster_size_threshold)
        self.health: dict[str, NodeHealth] = {}
        #: the nodes the controller knows (name -> uid), for RegisteredNode/RemovingNode (``knownNodeSet``)
        self.known: dict[str, str] = {}
        self.zone_states: dict[str, str] = {}
        self.tainters: dict[str, ZoneTainter] = {}
        self.node_queue = WorkQueue()  # NoSchedule taints
        self.pod_queue = WorkQueue()  # pods appearing on a node that is not Ready
        #: nodes whose Ready condition is posted and not True (what a pod event on them must look at)
        self.not_ready: set[str] = set()
        self.nodes.add_handlers(on_add=self._node_changed, on_update=lambda _old, new: self._node_changed(new),
                                on_delete=self._node_deleted)
        self.pods.add_handlers(on_add=self._pod_changed, on_update=lambda _old, new: self._pod_changed(new))

    # ---- handlers: only enqueue

    def _node_changed(self, node: Obj) -> None:
        name = (node.get("metadata") or {}).get("name", "")
        (self.not_ready.discard if ready_status(node) in ("True", None) else self.not_ready.add)(name)
        self.node_queue.add(name)

    def _node_deleted(self, node: Obj) -> None:
        self.not_ready.discard((node.get("metadata") or {}).get("name", ""))

    def _pod_changed(self, pod: Obj) -> None:
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            return
        if node_name not in self.not_ready or node_name not in self.health:  # nearly always: a Ready node
            return
        ready = pod_ready_condition(pod)
        if ready is not None and ready.get("status") == "True":
            self.pod_queue.add(f"{(pod.get('metadata') or {}).get('namespace')}/{(pod.get('metadata') or {}).get('name')}")

    # ---- the loops

    async def run(self) -> None:
        await self.ctx.informers.wait_synced(NODES, LEASES, PODS)
        await asyncio.gather(self._monitor_loop(), self._taint_loop(),
                             self.node_queue.run_workers(self.sync_no_schedule, 2),
                             self.pod_queue.run_workers(self.sync_pod, 2))

    async def _monitor_loop(self) -> None:
        while True:
            try:
                await self.monitor()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("node lifecycle: monitoring nodes failed")
            await asyncio.sleep(self.options.node_monitor_period)

    async def _taint_loop(self) -> None:
        while True:
            await asyncio.sleep(EVICTION_PERIOD)
            now = asyncio.get_running_loop().time()
            for tainter in list(self.tainters.values()):
                for name in tainter.take(now):
                    try:
                        if not await self._apply_no_execute(name):
                            tainter.forget(name)
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:
                        log.warning("node lifecycle: tainting node %s failed (%s); will retry", name, exc)
                        tainter.forget(name)
                        tainter.add(name)

    # ---- the monitor pass

    def _tainter(self, zone: str, now: float) -> ZoneTainter:
        tainter = self.tainters.get(zone)
        if tainter is None:
            tainter = self.tainters[zone] = ZoneTainter(self.rules.eviction_rate, now)
        return tainter

    async def monitor(self) -> None:
        """One pass over every node (``monitorNodeHealth``)."""
        now = asyncio.get_running_loop().time()
        zone_statuses: dict[str, list[str | None]] = {}
        nodes = list(self.nodes.cache.values())
        await self._added_and_deleted(nodes)
        monitor_grace, startup_grace = self.options.node_monitor_grace_period, self.options.node_startup_grace_period
        for node in nodes:
            name = (node.get("metadata") or {}).get("name", "")
            ready = condition(node, "Ready")
            observed = current = str(ready.get("status")) if ready is not None else None
            health = self.health[name] = observe(self.health.get(name), node, self.leases.cache.get(f"{LEASE_NAMESPACE}/{name}"),
                                                 now, ready=ready)
            if now - health.probe > (monitor_grace if ready is not None else startup_grace):
                current = await self._mark_unknown(node, name, now - health.probe, observed)
            zone = zone_key(node)
            zone_statuses.setdefault(zone, []).append(current)
            if zone not in self.tainters:
                self._tainter(zone, now)
            if observed != "True" or (node.get("spec") or {}).get("taints"):
                await self._taint_step(node, name, zone, observed)
            if observed == "True" and current != "True":
                await self._node_went_not_ready(node, name)
        await self._handle_disruption(zone_statuses, nodes, now)

    async def _added_and_deleted(self, nodes: list[Obj]) -> None:
        """Nodes new to the controller are registered (and start untainted); deleted ones forgotten."""
        present: dict[str, Obj] = {(n.get("metadata") or {}).get("name", ""): n for n in nodes}
        for name in [n for n in self.known if n not in present]:
            uid = self.known.pop(name)
            self.health.pop(name, None)
            for tainter in self.tainters.values():
                tainter.forget(name)
            self._node_event(name, uid, "RemovingNode", f"Removing Node {name} from Controller")
        for name, node in present.items():
            if name in self.known:
                continue
            self.known[name] = str((node.get("metadata") or {}).get("uid", ""))
            self._node_event(name, self.known[name], "RegisteredNode", f"Registered Node {name} in Controller")
            if no_execute_action(node, "True") == REMOVE:  # markNodeAsReachable: counted afresh from here
                try:
                    await self._write_no_execute(name, None)
                except ApiError as exc:
                    log.info("node lifecycle: removing node %s's NoExecute taints failed: %s", name, exc)

    def _node_event(self, name: str, uid: str, reason: str, message: str) -> None:
        ref = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "uid": uid}}
        self.recorder.event(ref, "Normal", reason, message)

    async def _mark_unknown(self, node: Obj, name: str, unheard: float, status: str | None) -> str | None:
        """The node's Ready status once marked Unknown for going unheard too long (``status`` if that failed)."""
        conditions = unknown_conditions(node, now_rfc3339())
        if conditions is None:
            return status
        updated = {**node, "apiVersion": "v1", "kind": "Node", "status": {**(node.get("status") or {}), "conditions": conditions}}
        try:
            await self.client.update(NODES, updated, subresource="status")
        except ApiError as exc:
            log.info("node lifecycle: marking node %s unknown failed (%s); next pass", name, exc)
            return status
        log.info("node lifecycle: node %s unheard for %.1fs: Ready=Unknown", name, unheard)
        return "Unknown"

    async def _node_went_not_ready(self, node: Obj, name: str) -> None:
        self._node_event(name, str((node.get("metadata") or {}).get("uid", "")), "NodeNotReady",
                         f"Node {name} status is now: NodeNotReady")
        for pod in self.pods_by_node.get(name):
            await self._mark_pod_not_ready(pod, name)

    async def _mark_pod_not_ready(self, pod: Obj, node_name: str) -> None:
        if (pod.get("spec") or {}).get("nodeName") != node_name:
            return
        patch = not_ready_patch(pod, now_rfc3339())
        if patch is None:
            return
        meta = pod.get("metadata") or {}
        try:
            await self.client.patch(PODS, meta.get("name", ""), patch, meta.get("namespace"), patch_type="strategic",
                                    subresource="status")
        except ApiError as exc:
            if exc.code == 404:
                return
            log.warning("node lifecycle: marking pod %s/%s not ready failed: %s", meta.get("namespace"), meta.get("name"), exc)
            return
        self.recorder.event({**pod, "kind": "Pod", "apiVersion": "v1"}, "Warning", "NodeNotReady", "Node is not ready")

    async def _taint_step(self, node: Obj, name: str, zone: str, observed: str | None) -> None:
        action = no_execute_action(node, observed)
        if action == NOTHING:
            return
        if action == QUEUE:
            self.tainters[zone].add(name)
            return
        if action == REMOVE:
            self.tainters[zone].forget(name)
        try:
            await self._write_no_execute(name, no_execute_key(observed))
        except ApiError as exc:
            log.info("node lifecycle: %s of node %s's NoExecute taint failed (%s); next pass", action, name, exc)

    async def _handle_disruption(self, zone_statuses: dict[str, list[str | None]], nodes: list[Obj], now: float) -> None:
        step = disruption_step(self.zone_states, zone_statuses, self.rules)
        for zone in [z for z in self.tainters if z not in zone_statuses]:
            del self.tainters[zone]
        if step.mark_all_reachable:
            log.warning("node lifecycle: no node is Ready in any zone: not tainting (control plane disruption assumed)")
            for node in nodes:
                name = (node.get("metadata") or {}).get("name", "")
                for tainter in self.tainters.values():
                    tainter.forget(name)
                try:
                    await self._write_no_execute(name, None)
                except ApiError as exc:
                    log.info("node lifecycle: removing node %s's NoExecute taints failed: %s", name, exc)
        if step.reset_probes:
            self.health = {name: NodeHealth(now, h.heartbeat, h.renew) for name, h in self.health.items()}
        for zone, rate in step.rates.items():
            self._tainter(zone, now).swap_rate(rate, now)
        for zone, state in step.states.items():
            if self.zone_states.get(zone) not in (state, None, INITIAL):
                log.info("node lifecycle: zone %r is now %s", zone, state)
        self.zone_states = step.states

    # ---- writes

    async def _write_no_execute(self, name: str, add: str | None) -> bool:
        """Make node ``name``'s NoExecute taint ``add`` (None: neither); False when the node is gone."""
        for _ in range(5):
            try:
                node = await self.client.get(NODES, name)
            except ApiError as exc:
                if exc.code == 404:
                    return False
                raise
            taints = swap_no_execute(list((node.get("spec") or {}).get("taints") or []), add, now_rfc3339())
            if taints is None:
                return True
            node.setdefault("spec", {})["taints"] = taints
            try:
                await self.client.update(NODES, node)
                return True
            except ApiError as exc:
                if exc.code != 409:
                    raise
        raise ApiError(409, "Conflict", f"node {name} kept changing")

    async def _apply_no_execute(self, name: str) -> bool:
        """The rate-limited step: taint ``name`` as its Ready status says now (False: nothing to do any more)."""
        node = self.nodes.cache.get(name)
        key = no_execute_key(ready_status(node))
        if node is None or key is None:
            return False
        log.info("node lifecycle: tainting node %s %s:NoExecute", name, key)
        return await self._write_no_execute(name, key)

    async def sync_no_schedule(self, name: str) -> None:
        """``doNoScheduleTaintingPass``: the controlled NoSchedule taints as the node's conditions say."""
        node = self.nodes.cache.get(name)
        if node is None or reconcile_no_schedule(list((node.get("spec") or {}).get("taints") or []),
                                                 no_schedule_taints(node), now_rfc3339()) is None:
            return
        for _ in range(5):
            try:
                fresh = await self.client.get(NODES, name)
            except ApiError as exc:
                if exc.code == 404:
                    return
                raise
            taints = reconcile_no_schedule(list((fresh.get("spec") or {}).get("taints") or []),
                                           no_schedule_taints(fresh), now_rfc3339())
            if taints is None:
                return
            fresh.setdefault("spec", {})["taints"] = taints
            try:
                await self.client.update(NODES, fresh)
                return
            except ApiError as exc:
                if exc.code != 409:
                    raise
        self.node_queue.add_after(name, 1.0)

    async def sync_pod(self, key: str) -> None:
        """A pod found Ready on a node that is not (``processPod``): marked not Ready too."""
        namespace, _, name = key.partition("/")
        pod = self.pods.get(namespace, name)
        if pod is None:
            return
        node_name = (pod.get("spec") or {}).get("nodeName") or ""
        if ready_status(self.nodes.cache.get(node_name)) in ("True", None):
            return
        await self._mark_pod_not_ready(pod, node_name)
