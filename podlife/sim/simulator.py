"""The simulator: N simulated nodes and the life of every pod bound to them.

Design
------
A simulated pod lives the life a real one does because it runs through the same
state machine, :class:`podlife.node.machine.PodLifecycle`, that the kubelet drives
with processes. The simulator is the machine's other driver: where the kubelet has a
process exit, the simulator has a *stage* (:mod:`podlife.sim.stages`) whose timer
injects the same fact -- ``crash``/``oom``/``complete`` (``init-fail``/``init-complete``
for init containers) a ``ContainerExited``, ``unready`` a readiness ``ProbeResult``,
``evict`` a ``PodEvicted``, ``image-pull-error`` an ``ImagePullFailed``,
``delete`` the containers' exits once the deletion's delay is over. The machine
answers with the same effects either way, and the simulator carries them out with
timers instead of processes: statuses, events, restarts and back-offs, terminal
phases and the final delete are the kubelet's, by construction
(``tests/test_node_parity.py`` runs the same pods on both kinds of node and
compares their writes and events).

What it watches: **one** pod informer for all its nodes, as KWOK does -- not one
watch per node, so 5,000 nodes cost one watch. It has no field selector: its handler
looks the node name up in a set anyway, and a ``spec.nodeName!=`` selector would
cost the API server two evaluations per pod event (new and previous object) to
spare us only the events of pods not yet bound. Its handlers only queue keys; a
:class:`~podlife.client.workqueue.WorkQueue` with a bounded number of workers runs
:meth:`Simulator._sync` per key (one worker per key at a time). Node registration,
Leases and node chaos are :class:`~podlife.sim.nodes.NodePool`'s.

What it writes, per pod, in the order a real node writes it (the seeds):

1. ``ContainerCreating``: Initialized True, Ready/ContainersReady False
   (ContainersNotReady), PodScheduled kept, hostIP, startTime, every container
   waiting ``ContainerCreating``;
2. the pod IP, once the network controller has written the port annotation
   ``network.podlife.io/port`` (the informer wakes the pod when it appears -- the
   same race the real node's CNI step waits out);
3. ``Running``: containers running with a ``podlife-sim://`` containerID, ready,
   started; Ready True.

Each write is a merge patch of ``status`` (only what changed, uid precondition). A
sync does as many steps as it can at once. Simulated containers start instantly, so
when nothing holds step 3 (no run delay, no image pull failure) the pod IP and
Running are one write -- what a real cluster shows
(``shared/reference/real-kubectl-watch.txt``: the IP column fills in on the Running
line) and one write fewer per pod at scale. The per-start events (Pulled, Created,
Started) are not recorded for simulated pods: at 10,000 pods they would triple the
writes and say nothing a status does not.

Simulated nodes measure pod startup as a kubelet does (``kubelet_pod_start_sli_duration_seconds``
and its siblings, :mod:`podlife.node.metrics`): one registry for all of them, summed into
the process registry with the real kubelets'.

Delayed facts go into one :class:`~podlife.sim.stages.Timers` heap; a timer only
puts its fact in the pod's inbox and queues the key. A timer of a run the pod has
left (its *run generation* changed) or of a start it no longer waits for is ignored,
so nothing is ever cancelled.

Pod health (issue 12): a regular init container that starts completes through a
timer of its own (at once, or as an ``init-complete``/``init-fail`` stage says), so
each init step is one write and ``PodInitializing`` is shown before the app
containers start; a ``RunHook`` is answered with ``PostStartDone`` at once; a
container with a startup or readiness probe gets the successes a prober would
report at the time it would first report them (:func:`verdict_times`), kept in the
pod's ``health`` list and woken by the pod's one wake timer -- nothing per period,
and nothing at all for a pod without probes or init containers. The machine itself
asks for the ``activeDeadlineSeconds`` wake-up, and an ``evict`` stage injects
``PodEvicted``. Events about a container carry the machine's ``field_path``.

Chaos on demand: ``podlife.io/chaos`` on a pod (``crash``, ``oom``, ``unready``,
``ready``) acts once per value, as soon as the pod runs, and is acknowledged by
writing the same value to ``podlife.io/chaos-ack``; the simulator acts whenever
the two differ. Removing ``podlife.io/chaos`` clears the ack, so setting the same
value again acts again. (Node chaos lives in :mod:`podlife.sim.nodes`.)

Cut-off nodes: a node whose heartbeats stop (``podlife.io/chaos=heartbeat-stop`` or a
``heartbeat-stop`` stage) is a kubelet that cannot reach the API server, so the
simulator writes nothing about its pods either: no status, no event, no completed
deletion, no new pod started. The node lifecycle controller meanwhile marks the node
Unknown and its pods Ready=False, and the taint eviction controller deletes the pods
whose tolerations run out -- they stay Terminating, since nobody confirms. A sync of
a pod of a cut-off node parks its key in a per-node set and returns; the pod's inbox
and timers are kept, so no work is lost. (Healthy nodes pay one truthiness test of
an empty set per sync.) When the node's first heartbeat after the resume is written
(:attr:`NodePool.listeners <podlife.sim.nodes.NodePool.listeners>`), its parked keys
are queued again and each pod syncs as it would have: pending deletions are carried
out, waiting pods start, and the status is re-reported. For that last part the node
*reconciles* for :data:`RECONCILE_WINDOW` seconds, as the kubelet's status manager
does (``needsReconcile``: the kubelet is the source of truth of a pod's status): each
write of one of its pods is the difference between the status the machine holds and
the pod's status *in the API*, not the one last written, so a Ready condition the node
controller turned False is True again -- with the ``lastTransitionTime`` the node
holds, since the kubelet's own status never left True (``updateLastTransitionTime``
compares with its cache). The window outlasts the race with the node controller, which
marks a pod not Ready again if it sees it turn Ready before it sees the node Ready.

Storage (issue 15): the simulator runs the node-local driver's provisioner for its
nodes (:class:`~podlife.node.local_path.LocalPathProvisioner` with no directories: PVs,
CSINodes and reclaim are API objects only), so claims of the default ``local-path``
class are provisioned on the simulated node their first pod was scheduled to. A pod
whose volumes use claims (:func:`~podlife.machinery.storage.pod_claims`; computed once per pod, ``()`` for the
others, which pay nothing else) is "mounted" before its sandbox is set up, as the
kubelet's volume manager does before it makes one: each claim is read (GETs, once per
attempt) and must be Bound to a volume bound back to it whose node affinity admits the
node. Until then the pod stays ContainerCreating with the kubelet's ``FailedMount``
event (:mod:`podlife.node.claim_mounts`, the kubelet's words) and the machine retries
after its sandbox back-off, doubling up to ``sandbox_retry_max`` (2 s). Once mounted, a
claim whose expansion waits for a node (``FileSystemResizePending``) is finished as the
kubelet's NodeExpandVolume would (:mod:`podlife.node.volume_expansion`), with a
``FileSystemResizeSuccessful`` event on the pod and the claim (``FileSystemResizeFailed``
instead when the pod mounts it read-only). The first mounted pod
starts a claim informer (none before: a cluster without claims watches none), whose
events wake the mounted pods of a claim that is expanded later (online expansion).

State: per pod the machine and the run's armed stages. A restarted simulator
recovers each machine from the pod's status (its containers keep running: they are
not processes).

Echoes: each of our writes comes back as a watch event that holds nothing new for
us. The client tracks our own writes (:class:`~podlife.client.own_writes.OwnWrites`)
and the informer skips their echoes, so a pod whose port is already there when it is
bound costs one sync for its first writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import random
import time
from dataclasses import dataclass, field
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from ..client.base import PERSISTENT_VOLUME_CLAIMS, PERSISTENT_VOLUMES, PODS, Client, Obj
from ..client.events import EventRecorder
from ..client.informer import Informer, object_key
from ..client.own_writes import TrackingClient
from ..client.workqueue import WorkQueue
from ..machinery.constants import CHAOS_ACK_ANNOTATION, CHAOS_ANNOTATION, PORT_ANNOTATION
from ..machinery.errors import ApiError
from ..machinery.storage import PodClaim, is_claim_bound, pod_claims, volume_admits_node
from ..node.claim_mounts import claim_problem, node_affinity_failed, unable_to_mount, volume_problem
from ..machinery.tasks import Supervisor
from ..machinery.timeutil import now_rfc3339
from ..node.machine import (
    ContainerExited, ContainerRecord, ContainerStarted, DeletePod, Effect, Fact, ImagePullFailed, KillContainers,
    LifecycleConfig, PodEvicted, PodLifecycle, PodUpdated, PostStartDone, ProbeResult, RecordEvent, RunHook,
    SandboxFailed, SandboxReady, SetUpSandbox, StartContainer, WakeAt, WriteStatus, only_waits, seconds_between,
)
from ..node.status import Running, Terminated, status_patch
from ..node.local_path import LocalPathProvisioner
from ..node.volume_expansion import (
    FILE_SYSTEM_RESIZE_FAILED, FILE_SYSTEM_RESIZE_PENDING, FILE_SYSTEM_RESIZE_SUCCESSFUL, expansion_read_only_message,
    expansion_succeeded_message, finish_node_expansion, needs_node_expansion,
)
from ..node.metrics import NodeMetrics
from .nodes import NodePool, SimNode, node_labels
from .probes import probed as _probed, verdict_times
from .stages import (
    COMPLETE, CRASH, CREATE, DELETE, EVICT, IMAGE_PULL_ERROR, INIT_COMPLETE, INIT_FAIL, OOM, PATCH, RUN, UNREADY,
    USAGE, Next, StageSet, Timers, apply_status_patch, declared_usage, load_stages,
)

log = logging.getLogger(__name__)

CONTAINER_ID_SCHEME = "podlife-sim://"
OOM_KILLED, OOM_EXIT_CODE = "OOMKilled", 137
#: What ends a container run, in the order they are looked at when due together.
RUN_ENDERS = (CRASH, OOM, COMPLETE)
#: The stages looked up each time the containers start.
RUN_STAGES = (*RUN_ENDERS, UNREADY, PATCH, EVICT)
SIMULATED_PULL_FAILURE = "simulated pull failure (podlife sim)"
SIMULATED_PROBE_FAILURE = "simulated (podlife sim)"
#: What an ``evict`` stage says when it names no message (the kubelet's words for a node-pressure eviction).
DEFAULT_EVICTION_MESSAGE = "The node was low on resource: memory. "
#: A health timer fires this close to a verdict's time: the verdict is due (Timers' own tolerance).
_DUE_SLACK = 1e-3
#: Seconds after a cut-off node is back during which its pods' writes reconcile with the API's
#: status (the kubelet's status manager reconciles every 10 s: ``syncBatch``).
RECONCILE_WINDOW = 10.0


class Step(enum.Enum):
    """Where a pod is, for people and tests (the machine holds the real state)."""

    NEW = "new"  # bound, nothing written yet
    CREATING = "creating"  # ContainerCreating written; waiting for the port
    NETWORKED = "networked"  # pod IP known; containers not started yet
    INITIALIZING = "initializing"  # init containers running (or waiting their turn)
    PULLING = "pulling"  # an image pull failing (never runs)
    RUNNING = "running"
    BACKOFF = "backoff"  # crashed containers wait to be restarted
    DONE = "done"  # Succeeded or Failed
    TERMINATING = "terminating"  # deletionTimestamp seen
    DELETED = "deleted"  # delete sent


#: Container IDs only have to be unique, not secret: a PRNG seeded once spares a
#: getrandom() system call per container start.
_container_ids = random.Random(os.urandom(32))


def new_container_id() -> str:
    return f"{CONTAINER_ID_SCHEME}{_container_ids.getrandbits(256):064x}"


def port_ip(pod: Obj) -> str | None:
    """The pod's address from the network controller's port annotation, if it is there yet."""
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(PORT_ANNOTATION)
    if not raw:
        return None
    try:
        port = orjson.loads(raw) if isinstance(raw, str) else raw
        return str(port["fixed_ips"][0]["ip_address"])
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        log.warning("pod %s: unusable %s annotation %r", object_key(pod), PORT_ANNOTATION, raw)
        return None


def _chaos_pending(sim: PodSim, pod: Obj) -> bool:
    """Whether ``podlife.io/chaos`` differs from what was acknowledged."""
    return ((pod.get("metadata") or {}).get("annotations") or {}).get(CHAOS_ANNOTATION) != sim.chaos_acked


def _targets(machine: PodLifecycle, container: str | None) -> list[str]:
    """The running containers a stage acts on (all, or the one it names)."""
    names = [rec.name for rec in machine.containers if rec.alive]
    if container is None:
        return names
    if machine.container(container) is None:
        log.warning("stage names container %r, which the pod does not have", container)
    return [name for name in names if name == container]


def reconcile_patch(api_status: Obj, wanted: Obj, patch: Obj | None) -> Obj | None:
    """``patch`` (from the status last written) widened to every member of ``wanted`` that the API's
    status shows otherwise; None when there is nothing to write.

    The kubelet's reconciliation: what somebody else changed in a member the node
    writes (a Ready condition turned False) is put back. Members the node does not
    write (``qosClass``, ...) are left alone.
    """
    out = dict(patch or {})
    for key, value in wanted.items():
        if key not in out and api_status.get(key) != value:
            out[key] = value
    return out or None


def _is_init(machine: PodLifecycle, name: str) -> bool:
    rec = machine.container(name)
    return rec is not None and rec.init


def _seconds_until(stamp: str) -> float:
    try:
        when = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return 0.0
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def has_resize_pending(claim: Obj) -> bool:
    """The claim waits for a node to finish its expansion (condition ``FileSystemResizePending`` True)."""
    return any(c.get("type") == FILE_SYSTEM_RESIZE_PENDING and c.get("status") == "True"
               for c in (claim.get("status") or {}).get("conditions") or ())


class _Gone(Exception):
    """The pod is gone (404) or is another pod now (uid precondition failed)."""


# --------------------------------------------------------------------------- timer facts
# What a timer puts in a pod's inbox: plain tuples (10,000s of them at scale).
#   ("create",)                              the create stage's delay is over
#   ("start", container, instance)           a delayed start happens
#   ("pull", container, instance)            a delayed image pull fails
#   ("run", generation, action, Next)        a run stage fires (crash, oom, complete, unready, patch, evict)
#   ("init", container, instance, action, Next | None)   an init container completes or fails
#   ("kill", exit_code, containers)          the deletion's delay is over: the containers stop
#   ("wake",)                                the machine asked to be woken (WakeAt), or a probe verdict is due
_Due = tuple[Any, ...]


# --------------------------------------------------------------------------- per-pod state


@dataclass(slots=True)
class PodSim:
    """What the simulator keeps about one pod (slots: 10,000 of them)."""

    key: str
    uid: str
    name: str
    namespace: str
    node: SimNode
    machine: PodLifecycle
    created: bool = False  # the create stage let the pod in
    create_timer: bool = False
    seen_rv: str = ""  # the pod version the machine has (seen or written)
    inbox: list[_Due] = field(default_factory=list)
    run_gen: int = 0  # bumped each time the containers start; older run timers are ignored
    armed: dict[str, Next] = field(default_factory=dict)  # the stages of the current run
    arm_due: bool = False  # containers started since the run stages were looked up
    run_delay: float | None = None  # the run stage's delay of the first start, drawn once
    run_next: Next | None = None  # the run stage that applied (its event is recorded at the first start)
    patches: list[Next] = field(default_factory=list)  # patch stages that fired, to apply in this sync
    wake_at: float = 0.0  # the WakeAt timer set (0: none)
    chaos_acked: str | None = None
    #: a regular init container that started, (name, instance): its stages are looked up after the next write
    init_due: tuple[str, int] | None = None
    #: probe verdicts to come, (when, container, instance, probe); None for the pods without probes
    health: list[tuple[float, str, int, str]] | None = None
    #: the volumes that use claims (``()``: none, the usual case) and whether they are "mounted"
    claims: tuple[PodClaim, ...] = ()
    mounted: bool = False

    @property
    def step(self) -> Step:
        m = self.machine
        if m.deleted:
            return Step.DELETED
        if m.terminating:
            return Step.TERMINATING
        if not m.status.get("containerStatuses"):
            return Step.NEW
        if m.finished:
            return Step.DONE
        if not m.sandbox_ready:
            return Step.CREATING
        if not m.initialized:
            return Step.INITIALIZING
        recs = m.containers
        if any(rec.waiting is not None and rec.pull_attempts for rec in recs):
            return Step.PULLING
        if any(isinstance(rec.current, Terminated) and not rec.alive for rec in recs):
            return Step.BACKOFF
        if recs and all(rec.alive for rec in recs):
            return Step.RUNNING
        return Step.NETWORKED


# --------------------------------------------------------------------------- the simulator


class Simulator:
    """``nodes`` simulated nodes named ``<name_prefix>-<i>``; ``await start()``, ``await stop()``."""

    def __init__(self, client: Client, nodes: int, *, stages_file: Path | str | None = None,
                 name_prefix: str = "sim-node", capacity: dict[str, Any] | None = None,
                 labels: dict[str, str] | None = None, stages: StageSet | None = None,
                 lease_period: float = 10.0, lease_duration: int = 40, node_status_period: float = 300.0,
                 workers: int = 256, register_concurrency: int = 64, restart_backoff: float = 10.0,
                 max_restart_backoff: float = 300.0, pull_duration: float = 1.0, record_events: bool = True,
                 seed: int | None = None, queue: WorkQueue | None = None) -> None:
        if nodes < 0:
            raise ValueError("the number of simulated nodes must not be negative")
        self.client = TrackingClient(client)  # so the informer skips the echoes of our writes
        self.stages = stages if stages is not None else load_stages(stages_file, seed=seed)
        #: the run actions the stage set has stages for: the others are not looked up per run
        self._run_actions = tuple(action for action in RUN_STAGES if self.stages.has(action))
        self.timers = Timers()
        self.restart_backoff = restart_backoff
        self.max_restart_backoff = max_restart_backoff
        self.pull_duration = pull_duration
        self.lifecycle = LifecycleConfig(backoff_initial=restart_backoff,
                                         backoff_max=max(max_restart_backoff, restart_backoff))
        self.workers = workers
        self.pool = NodePool(client, [f"{name_prefix}-{i}" for i in range(nodes)], capacity=capacity, labels=labels,
                             lease_period=lease_period, lease_duration=lease_duration,
                             status_period=node_status_period, register_concurrency=register_concurrency,
                             stages=self.stages, timers=self.timers)
        # No field selector (see the module docstring); our own writes' echoes wake nothing.
        self.pods = Informer(self.client, PODS, skip_own_writes=self.client.own_writes)
        self.pods.add_handlers(on_add=self._on_pod, on_update=self._on_pod_update, on_delete=self._on_pod_gone)
        self.queue = queue if queue is not None else WorkQueue()  # pod keys, one sync per key handed out
        self.record_events = record_events
        #: One recorder per node that has had something to record (made on first use), so
        #: events name their node as source.host, as the kubelet's do.
        self.recorders: dict[str, EventRecorder] = {}
        self.sims: dict[str, PodSim] = {}
        #: nodes cut off from the API (heartbeats stopped): their pods' syncs are parked
        self.cut_off: set[str] = set()
        #: per cut-off node, the keys of its pods whose syncs wait for it to be back
        self.parked: dict[str, set[str]] = {}
        #: node -> loop time until which its pods' writes reconcile with the API (see the docstring)
        self._reconcile_until: dict[str, float] = {}
        self.pool.listeners.append(self._node_reachable)
        #: the node-local driver's provisioner for the simulated nodes (API objects only: no directories)
        self.provisioner = (LocalPathProvisioner(client, {name: None for name in self.pool.nodes},
                                                 identity=f"{int(time.time() * 1000)}-{name_prefix}")
                            if self.pool.nodes else None)
        #: claims, watched only once a pod with claims is mounted (for online expansion)
        self.claims: Informer | None = None
        #: claim key -> keys of the mounted pods that use it
        self.claim_users: dict[str, set[str]] = {}
        self._tasks = Supervisor("simulator", logger=log)
        #: the kubelet's pod startup metrics for every simulated node (:mod:`podlife.node.metrics`)
        self.metrics = NodeMetrics()

    def __repr__(self) -> str:
        return f"<Simulator {len(self.pool.nodes)} nodes>"

    @property
    def node_names(self) -> list[str]:
        return list(self.pool.nodes)

    def declared_usage(self, pod: Mapping[str, Any], container: str) -> Mapping[str, str] | None:
        """What the ``usage`` stages say ``container`` of ``pod`` uses (``{"cpu": ..., "memory": ...}``), for
        ``kubectl top`` (:mod:`podlife.api.resource_metrics` asks; nothing is simulated for it)."""
        return declared_usage(self.stages, pod, container) if self.stages.has(USAGE) else None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Register the nodes, then start the heartbeats and the pod informer and workers."""
        await self.pool.register()
        self._tasks.start(self.pool.run(), "sim heartbeats")
        if self.provisioner is not None:
            self._tasks.start(self.provisioner.run(), "sim local-path provisioner")
        self._tasks.start(self.pods.run(), "sim pod informer")
        self._tasks.start(self.queue.run_workers(self._sync, workers=self.workers), "sim pod workers")
        await self.pods.wait_synced()
        if self.provisioner is not None:
            await self.provisioner.wait_synced()

    async def stop(self) -> None:
        """Stop all loops; nodes and pods stay in the API (a restarted simulator adopts them)."""
        await self._tasks.stop()
        self.timers.close()
        self.metrics.close()
        if self.recorders:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(r.flush() for r in self.recorders.values())), 5)

    # ------------------------------------------------------------------ informer and timers

    def _on_pod(self, pod: Obj, key: str | None = None) -> None:
        if (pod.get("spec") or {}).get("nodeName") in self.pool.nodes:
            self.queue.add(key or object_key(pod))

    def _on_pod_update(self, old: Obj, new: Obj) -> None:
        self._on_pod(new)

    def _on_pod_gone(self, pod: Obj) -> None:
        self._drop(object_key(pod))

    def _drop(self, key: str, sim: PodSim | None = None) -> None:
        """Forget the pod of ``key`` (only ``sim``, when given: not a newer pod of that name)."""
        if sim is not None and self.sims.get(key) is not sim:
            return
        sim = self.sims.pop(key, None)
        if sim is not None:
            self.metrics.pods.forget(sim.uid)
        if sim is not None and sim.mounted and sim.claims:
            for _, claim, _, _ in sim.claims:
                users = self.claim_users.get(f"{sim.namespace}/{claim}")
                if users is not None:
                    users.discard(key)
                    if not users:
                        del self.claim_users[f"{sim.namespace}/{claim}"]

    def _fire(self, key: str, uid: str, due: _Due) -> None:
        sim = self.sims.get(key)
        if sim is not None and sim.uid == uid:
            if due[0] == "wake":
                sim.wake_at = 0.0
            sim.inbox.append(due)
            self.queue.add(key)

    def _later(self, sim: PodSim, delay: float, due: _Due) -> None:
        self.timers.call_later(delay, self._fire, sim.key, sim.uid, due)

    # ------------------------------------------------------------------ cut-off nodes

    def _node_reachable(self, name: str, reachable: bool) -> None:
        """A node's heartbeats stopped (its pods' syncs park from now on), or it is back (they run)."""
        if not reachable:
            self.cut_off.add(name)
            return
        if name not in self.cut_off:
            return
        self.cut_off.discard(name)
        self._reconcile_until[name] = asyncio.get_running_loop().time() + RECONCILE_WINDOW
        keys = self.parked.pop(name, set())
        log.info("simulated node %s is back: %d pods to sync", name, len(keys))
        for key in keys:
            self.queue.add(key)

    def _reconciling(self, sim: PodSim) -> bool:
        """Whether the pod's node came back less than :data:`RECONCILE_WINDOW` ago."""
        if not self._reconcile_until:
            return False
        name = sim.node.name
        until = self._reconcile_until.get(name)
        if until is None:
            return False
        if asyncio.get_running_loop().time() <= until:
            return True
        del self._reconcile_until[name]
        return False

    # ------------------------------------------------------------------ sync

    async def _sync(self, key: str) -> None:
        pod = self.pods.cache.get(key)
        node = self.pool.nodes.get(((pod or {}).get("spec") or {}).get("nodeName", ""))
        if pod is None or node is None:
            self._drop(key)
            return
        if self.cut_off and node.name in self.cut_off:  # nothing reaches the API: wait for the node
            self.parked.setdefault(node.name, set()).add(key)
            return
        sim = self._sim_for(key, pod, node)
        try:
            await self._sync_pod(sim, pod)
        except _Gone:
            self._drop(key, sim)

    async def _sync_pod(self, sim: PodSim, pod: Obj) -> None:
        machine = sim.machine
        if machine.deleted:
            return
        now = asyncio.get_running_loop().time()
        rv = (pod.get("metadata") or {}).get("resourceVersion") or ""
        if rv != sim.seen_rv:
            sim.seen_rv = rv
            machine.observe(PodUpdated(pod), now)
        if not sim.created and not machine.terminating and not self._admit(sim, pod):
            return
        inbox, sim.inbox = sim.inbox, []
        for due in inbox:
            if due[0] == "expand":
                await self._expand_mounted(sim, pod)
                continue
            pod = await self._carry_out(sim, pod, self._due_facts(sim, pod, due, now))
        if sim.health:
            pod = await self._carry_out(sim, pod, self._due_verdicts(sim, now))
        while sim.patches:
            pod = await self._apply_patch(sim, pod, sim.patches.pop(0))
        if _chaos_pending(sim, pod) and not machine.terminating:
            pod = await self._chaos(sim, pod)
        pod = await self._advance(sim, pod)
        # Chaos that waited for the containers to start acts now: the Running write's
        # echo wakes no second sync.
        if _chaos_pending(sim, pod) and not machine.terminating and not machine.deleted:
            await self._advance(sim, await self._chaos(sim, pod))
        if sim.health:
            self._wake(sim, WakeAt(min(entry[0] for entry in sim.health)))

    def _admit(self, sim: PodSim, pod: Obj) -> bool:
        """The ``create`` stage: whether the node takes the pod in now (else its timer is set once)."""
        if any(due[0] == "create" for due in sim.inbox):
            sim.inbox = [due for due in sim.inbox if due[0] != "create"]
            sim.created = True
            return True
        match = self.stages.first(CREATE, pod)
        if match is None or match.delay <= 0:
            sim.created = True
            if match is not None:
                self._stage_event(sim, pod, match.stage.next)
            return True
        if not sim.create_timer:
            sim.create_timer = True
            self._later(sim, match.delay, ("create",))
        return False

    def _sim_for(self, key: str, pod: Obj, node: SimNode) -> PodSim:
        meta = pod["metadata"]
        sim = self.sims.get(key)
        if sim is not None and sim.uid == meta.get("uid"):
            return sim
        machine = PodLifecycle(pod, host_ip=node.ip, config=self.lifecycle)
        status = pod.get("status") or {}
        loop_now = asyncio.get_running_loop().time()
        running = [s.get("name") for s in status.get("containerStatuses") or () if "running" in (s.get("state") or {})]
        running_init = [s.get("name") for s in status.get("initContainerStatuses") or ()
                        if "running" in (s.get("state") or {})]
        machine.recover(status, now=loop_now, now_text=now_rfc3339(), alive=running + running_init, sandbox_ready=True)
        sim = PodSim(key, meta.get("uid", ""), meta["name"], meta.get("namespace", "default"), node, machine,
                     created=bool(status.get("containerStatuses")),
                     chaos_acked=(meta.get("annotations") or {}).get(CHAOS_ACK_ANNOTATION), claims=pod_claims(pod))
        sim.seen_rv = meta.get("resourceVersion") or ""
        sim.arm_due = bool(running) and not machine.finished
        if sim.claims and (running or running_init):  # an adopted pod's volumes were mounted
            self._claims_mounted(sim)
        if running or running_init:  # only an adopted pod has containers that run already
            self._recover_health(sim, loop_now)
        self.sims[key] = sim
        self.metrics.pods.seen(pod, time.time())  # pod startup latency: a pod this node had not seen
        return sim

    def _recover_health(self, sim: PodSim, now: float) -> None:
        """An adopted pod's running containers: the init container's stages and the probes still to pass.

        Their timers were the old simulator's; the verdicts still missing are due as
        long after each container's start as they would have been (at once if that is past).
        """
        machine, now_text = sim.machine, now_rfc3339()
        for rec in machine.all_containers:
            cur = rec.current
            if not rec.alive or not isinstance(cur, Running):
                continue
            if rec.init and not rec.sidecar:
                sim.init_due = (rec.name, rec.restart_count)
            if _probed(rec):
                elapsed = seconds_between(cur.started_at, now_text) or 0.0
                started = now - max(elapsed, 0.0)
                self._schedule_verdicts(sim, rec, started, startup=not rec.startup_passed,
                                        readiness=rec.verdict is False)
                startup_at = verdict_times(rec.spec, started)[0]
                if "readinessProbe" not in rec.spec and rec.verdict is False and startup_at is not None:
                    # stored unready only for want of its startup probe: ready once that passes
                    assert sim.health is not None
                    sim.health.append((startup_at, rec.name, rec.restart_count, "Readiness"))

    async def _advance(self, sim: PodSim, pod: Obj) -> Obj:
        """Carry out the machine's plan until only waits are left; returns the newest pod seen."""
        machine = sim.machine
        while not machine.deleted:
            effects = machine.plan(asyncio.get_running_loop().time())
            if only_waits(effects):
                for effect in effects:
                    self._wake(sim, effect)  # type: ignore[arg-type]
                break
            pod = await self._carry_out(sim, pod, effects)
        if sim.arm_due and not any(rec.starting for rec in machine.containers):
            self._arm_run(sim, pod)
        if sim.init_due is not None and not machine.deleted:
            self._arm_init(sim, pod)
        return pod

    async def _carry_out(self, sim: PodSim, pod: Obj, effects: list[Effect]) -> Obj:
        """Carry ``effects`` out in order (those they lead to first); returns the newest pod."""
        machine = sim.machine
        for i, effect in enumerate(effects):
            follow: list[Effect] = []
            if isinstance(effect, WriteStatus):
                if self._merges_with_starts(sim, pod, effects, i):
                    continue  # the machine stays dirty: the Running write carries this too
                pod = await self._write(sim, pod, effect.terminal)
                if sim.arm_due and not any(rec.starting for rec in machine.containers):
                    self._arm_run(sim, pod)
                if sim.init_due is not None:
                    self._arm_init(sim, pod)
            elif isinstance(effect, RecordEvent):
                if not effect.routine:
                    self._event(pod, effect.type, effect.reason, effect.message,
                                machine.field_path(effect.container) if effect.container else "")
            elif isinstance(effect, SetUpSandbox):
                if sim.claims and not sim.mounted:
                    follow = await self._mount_claims(sim, pod)
                else:
                    follow = self._set_up_sandbox(sim, pod)
            elif isinstance(effect, StartContainer):
                follow = self._start(sim, pod, effect)
            elif isinstance(effect, KillContainers):
                follow = self._kill(sim, pod, effect)
            elif isinstance(effect, DeletePod):
                await self._delete(sim)
            elif isinstance(effect, WakeAt):
                self._wake(sim, effect)
            elif isinstance(effect, RunHook):
                # a simulated container's postStart hook succeeds at once
                follow = machine.observe(PostStartDone(effect.container), asyncio.get_running_loop().time())
            # ReleaseSandbox: a simulated sandbox holds nothing.
            if follow:
                pod = await self._carry_out(sim, pod, follow)
        return pod

    def _wake(self, sim: PodSim, effect: WakeAt) -> None:
        """Set a timer for the machine's next step (an earlier one already set wins)."""
        now = asyncio.get_running_loop().time()
        if now < sim.wake_at <= effect.when:
            return
        sim.wake_at = effect.when
        self._later(sim, max(0.0, effect.when - now), ("wake",))

    # ------------------------------------------------------------------ carrying out effects

    def _set_up_sandbox(self, sim: PodSim, pod: Obj) -> list[Effect]:
        """The pod's address: the node's (hostNetwork) or its port's, once the controller wrote it."""
        ip = sim.node.ip if (pod.get("spec") or {}).get("hostNetwork") else port_ip(pod)
        now = asyncio.get_running_loop().time()
        if ip is None:  # the informer wakes us when the network controller writes the port
            return sim.machine.observe(SandboxFailed("no port yet", retry=False), now)
        return sim.machine.observe(SandboxReady((ip,)), now)

    # ------------------------------------------------------------------ claim volumes

    async def _mount_claims(self, sim: PodSim, pod: Obj) -> list[Effect]:
        """"Mount" the pod's claims, then set up its sandbox; or a ``FailedMount`` and a retry.

        As the kubelet, which waits for every volume before it makes the sandbox: each
        claim must be Bound to a volume bound back to it whose node affinity admits
        this node. Until then the pod stays ContainerCreating and the machine tries again
        after its sandbox back-off (doubling, at most ``sandbox_retry_max``). Once
        mounted, a volume whose expansion waits for a node is finished here (offline
        expansion), and the claims are watched for later ones (online expansion).
        """
        now = asyncio.get_running_loop().time()
        try:
            ready = await self._claims_to_mount(sim, pod)
        except Exception as exc:  # the API unreachable: a fact all the same, so the machine retries
            log.warning("pod %s: reading its claims failed: %s", sim.key, exc)
            return sim.machine.observe(SandboxFailed(str(exc), retry=True), now)
        if isinstance(ready, str):
            return sim.machine.observe(SandboxFailed(ready, retry=True, warn=True, reason="FailedMount"), now)
        self._claims_mounted(sim)
        for claim, pv, read_only in ready:
            await self._finish_expansion(sim, pod, claim, pv, read_only)
        return self._set_up_sandbox(sim, pod)

    async def _claims_to_mount(self, sim: PodSim, pod: Obj) -> list[tuple[Obj, Obj, bool]] | str:
        """Each claim with its volume (and whether it is mounted read-only); or the FailedMount event's text."""
        problems: list[str] = []
        unprocessed: list[str] = []
        unmounted: list[str] = []
        affinity: str | None = None
        ready: list[tuple[Obj, Obj, bool]] = []
        node = self._node_object(sim.node)
        for volume, claim_name, ephemeral, read_only in sim.claims:
            claim = await self._fetch(PERSISTENT_VOLUME_CLAIMS, claim_name, sim.namespace)
            problem = claim_problem(pod, ephemeral, claim, claim_name)
            pv: Obj | str = ""
            if problem is None:
                assert isinstance(claim, dict)
                pv = await self._fetch(PERSISTENT_VOLUMES, str(claim["spec"]["volumeName"]))
                problem = volume_problem(claim, pv)
            if problem is not None:
                problems.append(problem)
                unprocessed.append(volume)
                unmounted.append(volume)
                continue
            assert isinstance(claim, dict) and isinstance(pv, dict)
            if not volume_admits_node(pv, node):
                affinity = affinity or node_affinity_failed(str(pv["metadata"]["name"]))
                unmounted.append(volume)
                continue
            ready.append((claim, pv, read_only))
        if unmounted:
            return unable_to_mount(unmounted, unprocessed, problems) if problems else str(affinity)
        return ready

    async def _fetch(self, res: Any, name: str, namespace: str | None = None) -> Obj | str:
        """The object, or why it could not be read (the API's message, e.g. 'persistentvolumeclaims "x" not found')."""
        try:
            return await self.client.get(res, name, namespace)
        except ApiError as exc:
            return exc.message

    def _node_object(self, node: SimNode) -> Obj:
        """The node as the API shows it (its labels may have been changed), else as it was registered."""
        known = self.pool.informer.cache.get(node.name)
        return known if known is not None else {"metadata": {"name": node.name,
                                                             "labels": node_labels(node.name, self.pool.labels)}}

    def _claims_mounted(self, sim: PodSim) -> None:
        """The pod's claims are in use on its node: watch them for expansions (the watch starts with the first)."""
        sim.mounted = True
        for _, claim, _, _ in sim.claims:
            self.claim_users.setdefault(f"{sim.namespace}/{claim}", set()).add(sim.key)
        if self.claims is None:
            self.claims = Informer(self.client, PERSISTENT_VOLUME_CLAIMS)
            self.claims.add_handlers(on_add=self._on_claim, on_update=lambda _old, new: self._on_claim(new))
            self._tasks.start(self.claims.run(), "sim claim informer")

    def _on_claim(self, claim: Obj) -> None:
        """A claim waits for its node expansion: the pods that have it mounted finish it."""
        users = self.claim_users.get(object_key(claim))
        if not users or not has_resize_pending(claim):
            return
        for key in users:
            sim = self.sims.get(key)
            if sim is not None and ("expand",) not in sim.inbox:
                sim.inbox.append(("expand",))
                self.queue.add(key)

    async def _expand_mounted(self, sim: PodSim, pod: Obj) -> None:
        """Finish the node expansions the pod's mounted claims wait for (online expansion)."""
        if not sim.mounted or sim.machine.deleted:
            return
        for _, claim_name, _, read_only in sim.claims:
            claim = await self._fetch(PERSISTENT_VOLUME_CLAIMS, claim_name, sim.namespace)
            if isinstance(claim, dict) and is_claim_bound(claim):
                pv = await self._fetch(PERSISTENT_VOLUMES, str(claim["spec"]["volumeName"]))
                if isinstance(pv, dict):
                    await self._finish_expansion(sim, pod, claim, pv, read_only)

    async def _finish_expansion(self, sim: PodSim, pod: Obj, claim: Obj, pv: Obj, read_only: bool) -> None:
        """The kubelet's NodeExpandVolume for a directory: nothing grows, the claim's status says it is done.

        A volume the pod mounts read-only is not expanded (a ``FileSystemResizeFailed``
        warning instead, as the kubelet says). A conflict (the claim changed meanwhile) is
        retried on the newest claim a few times; a claim still pending after that, or
        after an API error, is woken again by its next change.
        """
        pv_name = str(pv["metadata"]["name"])
        for _ in range(3):
            if not needs_node_expansion(claim, pv):
                return
            if read_only:
                message = expansion_read_only_message(pv_name)
                self._event(pod, "Warning", FILE_SYSTEM_RESIZE_FAILED, message)
                self._event(claim, "Warning", FILE_SYSTEM_RESIZE_FAILED, message, node=sim.node.name)
                return
            try:
                finished = await finish_node_expansion(self.client, claim, pv)
            except ApiError as exc:
                log.warning("pod %s: finishing the expansion of %s failed: %s", sim.key, pv_name, exc)
                return
            if finished:
                message = expansion_succeeded_message(pv_name, sim.node.name)
                self._event(pod, "Normal", FILE_SYSTEM_RESIZE_SUCCESSFUL, message)
                self._event(claim, "Normal", FILE_SYSTEM_RESIZE_SUCCESSFUL, message, node=sim.node.name)
                return
            fresh = await self._fetch(PERSISTENT_VOLUME_CLAIMS, str(claim["metadata"]["name"]), sim.namespace)
            if not isinstance(fresh, dict):
                return
            claim = fresh

    def _first_run_delay(self, sim: PodSim, pod: Obj) -> float:
        if sim.run_delay is None:
            match = self.stages.first(RUN, pod)
            sim.run_delay = match.delay if match is not None else 0.0
            sim.run_next = match.stage.next if match is not None else None
        return sim.run_delay

    def _started(self, sim: PodSim, pod: Obj, name: str, instance: int) -> list[Effect]:
        """A simulated container starts now (the run stage's event comes with the pod's first app start).

        An app container's start arms the run stages; a regular init container's, its
        own (:meth:`_arm_init`); a container with probes gets its verdicts' times.
        """
        machine = sim.machine
        now = asyncio.get_running_loop().time()
        out = machine.observe(ContainerStarted(name, new_container_id(), now_rfc3339()), now)
        rec = machine.container(name)
        if rec is None:
            return out
        if rec.init:
            if not rec.sidecar:
                sim.init_due = (name, rec.restart_count)
                self.metrics.pods.init_started(sim.uid, time.time())
        else:
            if instance == 0 and sim.run_next is not None:
                self._stage_event(sim, pod, sim.run_next)
                sim.run_next = None
            sim.arm_due = True
        if _probed(rec) and rec.alive:
            if "readinessProbe" in rec.spec:  # not ready before its first success (no event)
                out += machine.observe(ProbeResult(name, False), now)
            self._schedule_verdicts(sim, rec, now, startup=True, readiness=True)
        return out

    def _schedule_verdicts(self, sim: PodSim, rec: ContainerRecord, started: float, *, startup: bool,
                           readiness: bool) -> None:
        """When the probes of the instance that started at ``started`` succeed (see :func:`verdict_times`)."""
        startup_at, ready_at = verdict_times(rec.spec, started)
        entries = sim.health if sim.health is not None else []
        if startup and startup_at is not None:
            entries.append((startup_at, rec.name, rec.restart_count, "Startup"))
        if readiness and ready_at is not None:
            entries.append((ready_at, rec.name, rec.restart_count, "Readiness"))
        sim.health = entries

    def _due_verdicts(self, sim: PodSim, now: float) -> list[Effect]:
        """The probe verdicts whose time has come, for the instances they were meant for."""
        machine = sim.machine
        due: list[tuple[float, str, int, str]] = []
        later: list[tuple[float, str, int, str]] = []
        for entry in sim.health or ():
            (due if entry[0] <= now + _DUE_SLACK else later).append(entry)
        sim.health = later or None
        out: list[Effect] = []
        for _, name, instance, probe in sorted(due):
            rec = machine.container(name)
            if rec is None or not rec.alive or rec.restart_count != instance or machine.terminating:
                continue
            out += machine.observe(ProbeResult(name, True, probe), now)
        return out

    def _pull_stage(self, pod: Obj, container: str) -> Next | None:
        match = self.stages.first(IMAGE_PULL_ERROR, pod)
        if match is None or (match.stage.next.container not in (None, container)):
            return None
        return match.stage.next

    def _starts_at_once(self, sim: PodSim, pod: Obj, effect: StartContainer) -> bool:
        return (effect.instance == 0 and self._pull_stage(pod, effect.container) is None
                and (self._first_run_delay(sim, pod) <= 0 or _is_init(sim.machine, effect.container)))

    def _merges_with_starts(self, sim: PodSim, pod: Obj, effects: list[Effect], i: int) -> bool:
        """Whether the write at ``effects[i]`` can wait for the first starts right after it.

        True when it is followed only by first starts that happen at once (nothing holds
        the run): then the pod IP and Running are one write, as on a real cluster.
        A restart's write is never merged: the terminated state is shown first.
        """
        rest = effects[i + 1:]
        starts = [e for e in rest if isinstance(e, StartContainer)]
        if not starts or len(starts) != sum(1 for e in rest if not isinstance(e, (RecordEvent, WakeAt))):
            return False
        if sim.machine.init_containers and not all(_is_init(sim.machine, e.container) for e in starts):
            return False  # the write that shows the pod initialized (PodInitializing) is one of its own
        return all(self._starts_at_once(sim, pod, e) for e in starts)

    def _start(self, sim: PodSim, pod: Obj, effect: StartContainer) -> list[Effect]:
        """A container starts at once, after the run stage's delay, or its image pull fails."""
        now = asyncio.get_running_loop().time()
        name, instance = effect.container, effect.instance
        rec = sim.machine.container(name)
        pull = self._pull_stage(pod, name)
        if pull is not None:
            match = self.stages.first(IMAGE_PULL_ERROR, pod)
            if rec is not None and rec.pull_attempts == 0 and match is not None and match.delay > 0:
                self._later(sim, match.delay, ("pull", name, instance))
                return []
            if rec is not None and rec.pull_attempts == 0:
                self._stage_event(sim, pod, pull)
            return sim.machine.observe(self._pull_failure(rec, pull), now) if rec is not None else []
        delay = self._first_run_delay(sim, pod) if instance == 0 and (rec is None or not rec.init) else 0.0
        if delay > 0:
            self._later(sim, delay, ("start", name, instance))
            return []
        return self._started(sim, pod, name, instance)

    def _pull_failure(self, rec: ContainerRecord, nxt: Next) -> ImagePullFailed:
        return ImagePullFailed(
            rec.name, nxt.message or f'failed to pull and unpack image "{rec.image}": {SIMULATED_PULL_FAILURE}',
            shown_for=nxt.pull_duration if nxt.pull_duration is not None else self.pull_duration,
            backoff=nxt.backoff if nxt.backoff is not None else self.restart_backoff,
            backoff_max=nxt.max_backoff if nxt.max_backoff is not None else self.max_restart_backoff)

    def _kill(self, sim: PodSim, pod: Obj, effect: KillContainers) -> list[Effect]:
        """The containers stop after the delete stage's delay (capped by the deletion's grace)."""
        match = self.stages.first(DELETE, pod)
        code = match.stage.next.exit_code if match is not None and match.stage.next.exit_code is not None else 0
        delay = 0.0
        if match is not None and match.delay > 0:
            stamp = (pod.get("metadata") or {}).get("deletionTimestamp")
            delay = min(match.delay, _seconds_until(stamp)) if stamp else 0.0
        if delay > 0:
            self._later(sim, delay, ("kill", code, effect.containers))
            return []
        if match is not None:
            self._stage_event(sim, pod, match.stage.next)
        return self._exits(sim, list(effect.containers), code, "Completed" if code == 0 else "Error")

    def _exits(self, sim: PodSim, names: list[str], code: int, reason: str, message: str = "",
               nxt: Next | None = None) -> list[Effect]:
        now = asyncio.get_running_loop().time()
        text = now_rfc3339()
        out: list[Effect] = []
        for name in names:
            out += sim.machine.observe(ContainerExited(
                name, code, reason, text, now, message,
                backoff=nxt.backoff if nxt is not None else None,
                backoff_max=nxt.max_backoff if nxt is not None else None), now)
        return out

    async def _delete(self, sim: PodSim) -> None:
        try:
            await self.client.delete(PODS, sim.name, sim.namespace, grace_period_seconds=0,
                                     preconditions={"uid": sim.uid})
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise

    # ------------------------------------------------------------------ timers' facts

    def _due_facts(self, sim: PodSim, pod: Obj, due: _Due, now: float) -> list[Effect]:
        """What a fired timer means now: the facts it injects (nothing, if the pod moved on)."""
        kind, machine = due[0], sim.machine
        if kind == "start" or kind == "pull":
            rec = machine.container(due[1])
            if rec is None or not rec.starting or rec.restart_count != due[2] or machine.terminating:
                return []
            if kind == "pull":
                nxt = self._pull_stage(pod, rec.name)
                if nxt is None:
                    return []
                self._stage_event(sim, pod, nxt)
                return machine.observe(self._pull_failure(rec, nxt), now)
            return self._started(sim, pod, rec.name, due[2])
        if kind == "run":
            if due[1] != sim.run_gen or machine.terminating:
                return []
            return self._run_stage(sim, pod, due[2], due[3])
        if kind == "init":
            return self._init_ends(sim, pod, *due[1:])
        if kind == "kill":
            code, wanted = due[1], due[2]
            names = [name for name in wanted if (rec := machine.container(name)) is not None and rec.alive]
            return self._exits(sim, names, code, "Completed" if code == 0 else "Error")
        return []  # "wake": the plan that follows does the work

    def _arm_init(self, sim: PodSim, pod: Obj) -> None:
        """Look up the stages of the init container that started (``init-fail``, ``init-complete``).

        Done after the write that shows it running, so a selector sees this run's
        restart count. With neither matching it completes at once -- still a timer of
        its own, so the write of each step is one: Init:0/2, Init:1/2, PodInitializing.
        """
        if sim.init_due is None:
            return
        (name, instance), sim.init_due = sim.init_due, None
        armed = False
        for action in (INIT_FAIL, INIT_COMPLETE):
            match = self.stages.first(action, pod, name)
            if match is not None:
                armed = True
                self._later(sim, match.delay, ("init", name, instance, action, match.stage.next))
        if not armed:
            self._later(sim, 0.0, ("init", name, instance, INIT_COMPLETE, None))

    def _init_ends(self, sim: PodSim, pod: Obj, name: str, instance: int, action: str,
                   nxt: Next | None) -> list[Effect]:
        """An init container's stage fires: it exits 0 (``init-complete``) or fails (``init-fail``)."""
        machine = sim.machine
        rec = machine.container(name)
        if rec is None or not rec.alive or rec.restart_count != instance or machine.terminating:
            return []  # an instance that already ended (the other stage fired first), or the pod stops
        if nxt is not None:
            self._stage_event(sim, pod, nxt, name)
        self.metrics.pods.init_finished(sim.uid, time.time())
        if action == INIT_FAIL and nxt is not None:
            code = nxt.exit_code if nxt.exit_code is not None else 1
            return self._exits(sim, [name], code, nxt.reason or "Error", nxt.message or "", nxt)
        return self._exits(sim, [name], 0, "Completed", nxt=nxt)

    def _arm_run(self, sim: PodSim, pod: Obj) -> None:
        """Look up this run's stages (crash, oom, complete, unready, patch) and set their timers."""
        sim.arm_due = False
        sim.run_gen += 1
        sim.armed.clear()
        for action in self._run_actions:
            match = self.stages.first(action, pod)
            if match is not None:
                sim.armed[action] = match.stage.next
                self._later(sim, match.delay, ("run", sim.run_gen, action, match.stage.next))

    def _run_stage(self, sim: PodSim, pod: Obj, action: str, nxt: Next) -> list[Effect]:
        """A run stage fires: the fact it injects into the machine, and its event."""
        targets = _targets(sim.machine, nxt.container)
        if not targets:
            return []
        self._stage_event(sim, pod, nxt)
        if action == OOM:
            self._event(pod, "Warning", "OOMKilling", f"Memory cgroup out of memory: killed container {targets}")
            return self._exits(sim, targets, OOM_EXIT_CODE, OOM_KILLED, nxt=nxt)
        if action == EVICT:
            fact = PodEvicted(nxt.message or DEFAULT_EVICTION_MESSAGE, nxt.grace_period)
            return sim.machine.observe(fact, asyncio.get_running_loop().time())
        if action == COMPLETE:
            return self._exits(sim, targets, 0, "Completed", nxt=nxt)
        if action == CRASH:
            code = nxt.exit_code if nxt.exit_code is not None else 1
            return self._exits(sim, targets, code, nxt.reason or "Error", nxt.message or "", nxt)
        if action == UNREADY:
            now = asyncio.get_running_loop().time()
            out: list[Effect] = []
            for name in targets:
                out += sim.machine.observe(ProbeResult(name, False, message=SIMULATED_PROBE_FAILURE), now)
            return out
        if action == PATCH:
            sim.patches.append(nxt)  # applied by this sync, between the machine's writes
        return []

    def _stage_event(self, sim: PodSim, pod: Obj, nxt: Next, container: str | None = None) -> None:
        """The event a stage declares (``next.event``), recorded when its fact is injected.

        It names ``container`` (else the stage's own ``container``), by the fieldPath the
        kubelet gives it (``spec.initContainers{x}`` or ``spec.containers{x}``).
        """
        event = nxt.event
        if event is not None:
            name = container or nxt.container
            self._event(pod, event.type, event.reason, event.message, sim.machine.field_path(name) if name else "")

    async def _apply_patch(self, sim: PodSim, pod: Obj, nxt: Next) -> Obj:
        """A ``patch`` stage: its status patch, written as it is; the machine then sees the pod it made.

        The stage file may only patch what the machine does not own (conditions of
        readiness gates, ``reason``, ``message``, ...), so the machine keeps it, and
        Ready follows a gate the patch turned True.
        """
        if nxt.status_patch is None:
            return pod
        current = pod.get("status") or {}
        patch = status_patch(current, apply_status_patch(current, nxt.status_patch, now_rfc3339()))
        if patch is None:
            return pod
        try:
            new = await self.client.patch(PODS, sim.name, {"metadata": {"uid": sim.uid}, "status": patch},
                                          sim.namespace, subresource="status")
        except ApiError as exc:
            if exc.code in (404, 409):
                raise _Gone from None
            raise
        sim.seen_rv = (new.get("metadata") or {}).get("resourceVersion") or ""
        sim.machine.observe(PodUpdated(new), asyncio.get_running_loop().time())
        return new

    # ------------------------------------------------------------------ status writes and events

    async def _write(self, sim: PodSim, pod: Obj, terminal: bool = False) -> Obj:
        """Patch the status as the machine wants it; returns the newest pod. Raises _Gone."""
        machine = sim.machine
        wanted, patch = machine.status_patch(now_rfc3339(), terminal=terminal)
        if self._reconciling(sim):
            patch = reconcile_patch(pod.get("status") or {}, wanted, patch)
        if patch is None:
            machine.written(wanted)
            return pod
        try:
            new = await self.client.patch(PODS, sim.name, {"metadata": {"uid": sim.uid}, "status": patch},
                                          sim.namespace, subresource="status")
        except ApiError as exc:
            machine.write_failed()
            if exc.code in (404, 409):
                raise _Gone from None
            raise
        machine.written(wanted)
        sim.seen_rv = (new.get("metadata") or {}).get("resourceVersion") or ""
        self.metrics.pods.written(new, time.time())  # in the watch cache already (see node/metrics.py)
        return new

    def _event(self, obj: Obj, type_: str, reason: str, message: str, field_path: str = "", *,
               node: str | None = None) -> None:
        """Record an event about a pod (``field_path``: the container's, from the machine), as its node;
        or about another object (a claim), as ``node``."""
        if not self.record_events:
            return
        if node is None:
            node = str((obj.get("spec") or {}).get("nodeName") or "")
        recorder = self.recorders.get(node)
        if recorder is None:
            recorder = self.recorders[node] = EventRecorder(self.client, "kubelet", node)
        recorder.event(obj, type_, reason, message, field_path)

    # ------------------------------------------------------------------ chaos

    async def _chaos(self, sim: PodSim, pod: Obj) -> Obj:
        """Act on ``podlife.io/chaos`` once per value (see the module docstring)."""
        machine = sim.machine
        value = ((pod.get("metadata") or {}).get("annotations") or {}).get(CHAOS_ANNOTATION)
        if value is None:
            return await self._ack(sim, None)
        running = [rec.name for rec in machine.containers if rec.alive and isinstance(rec.current, Running)]
        if not running and not machine.finished:
            return pod  # acted on once the containers run
        now = asyncio.get_running_loop().time()
        facts: list[Effect] = []
        if running:
            if value == "crash":
                facts = self._exits(sim, running, 1, "Error")
            elif value == "oom":
                self._event(pod, "Warning", "OOMKilling", f"Memory cgroup out of memory: killed container {running}")
                facts = self._exits(sim, running, OOM_EXIT_CODE, OOM_KILLED)
            elif value in ("unready", "ready"):
                for name in running:
                    fact: Fact = ProbeResult(name, value == "ready", message=SIMULATED_PROBE_FAILURE)
                    facts += machine.observe(fact, now)
            else:
                log.warning("pod %s: unknown %s value %r (use crash, oom, unready or ready)", sim.key,
                            CHAOS_ANNOTATION, value)
        pod = await self._carry_out(sim, pod, facts)
        pod = await self._advance(sim, pod)
        return await self._ack(sim, value)

    async def _ack(self, sim: PodSim, value: str | None) -> Obj:
        try:
            pod = await self.client.patch(PODS, sim.name, {"metadata": {"uid": sim.uid, "annotations":
                                                                        {CHAOS_ACK_ANNOTATION: value}}}, sim.namespace)
        except ApiError as exc:
            if exc.code in (404, 409):
                raise _Gone from None
            raise
        sim.chaos_acked = value
        sim.seen_rv = (pod.get("metadata") or {}).get("resourceVersion") or ""
        return pod
