"""The simulator: N simulated nodes and the life of every pod bound to them.

Design
------
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

Each write is a merge patch of ``status`` (only what changed, uid precondition),
built by the real kubelet's pure functions (:mod:`podlife.node.status`), so
simulated and real pods look alike (``tests/test_node_parity.py`` runs the same pods
on both kinds of node and compares their writes and events). A sync does as many steps as it can at once,
with no sleeps and no timers. When nothing holds step 3 (no run delay, no image
pull failure), steps 2 and 3 are one write: the pod IP arrives with Running, which
is what a real cluster shows (``shared/reference/real-kubectl-watch.txt``: the IP
column fills in on the Running line) and saves one write per pod at scale. A stage
that delays the run makes the pod IP a write of its own, while the pod is still
ContainerCreating.

Everything else is a stage (:mod:`podlife.sim.stages`): delays of these steps,
completion after ``podlife.io/sim-duration``, crashes with Kubernetes' crash-loop
backoff (first restart at once, then 10 s doubling to 5 min), OOM kills, image pull
failures, readiness loss, the deletion (as on the kubelet: the containers turn
unready at once, with ``Killing``; they stop after the delete stage's delay, then
the pod is deleted with grace 0 and a uid precondition). As on the kubelet, a crash
that waits out a back-off is written as ``CrashLoopBackOff`` at once (only an
immediate restart shows the terminated state first), and a finished pod's sandbox
is gone (PodReadyToStartContainers False). Delayed actions go into one
:class:`~podlife.sim.stages.Timers` heap; a timer only queues the pod's key with a
*generation* number, so timers of a step the pod has left are ignored without
being cancelled.

Chaos on demand: ``podlife.io/chaos`` on a pod (``crash``, ``oom``, ``unready``,
``ready``) acts once per value, as soon as the pod runs, and is acknowledged by
writing the same value to ``podlife.io/chaos-ack``; the simulator acts whenever
the two differ. Removing ``podlife.io/chaos`` clears the ack, so setting the same
value again acts again. (Node chaos lives in :mod:`podlife.sim.nodes`.)

State: per pod only what the API cannot tell quickly (the container views as last
written, the step, timers' generation, backoff). A restarted simulator rebuilds it
from the pods' statuses.

Echoes: each of our writes comes back as a watch event that holds nothing new for
us. Such events wake no sync: a pod remembers the resourceVersions its writes
returned (:attr:`PodSim.echoes`), and an update with one of them whose labels,
annotations, deletionTimestamp and generation are unchanged is dropped
(:func:`_is_echo`). A write's event can arrive before the write returns, so events
seen while the pod's sync runs are judged when it ends (:meth:`Simulator._settle`).
A pod whose port is already there when it is bound thus costs one sync for its
first writes; chaos that waits for the containers is looked at again at the end of
every sync, not in a sync of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson

from ..machinery.errors import ApiError
from ..machinery.constants import CHAOS_ACK_ANNOTATION, CHAOS_ANNOTATION, PORT_ANNOTATION
from ..machinery.patch import create_merge_patch
from ..client.base import PODS, Client, Obj
from ..client.events import EventRecorder
from ..client.informer import Informer, object_key
from ..client.workqueue import WorkQueue
from ..machinery.tasks import Supervisor
from ..node.lifecycle import (
    CrashBackoff, format_pod, go_duration, image_id, should_restart, terminated_from_api,
)
from ..node.status import (
    CONTAINER_CREATING, CRASH_LOOP_BACK_OFF, KUBELET_CONDITIONS, SCHEDULED, TERMINAL_PHASES,
    ContainerView, PodFacts, Running, Terminated, Waiting, build_pod_status,
)
from .nodes import NodePool, SimNode
from .stages import (
    COMPLETE,
    CRASH,
    CREATE,
    DELETE,
    IMAGE_PULL_ERROR,
    OOM,
    RUN,
    UNREADY,
    Match,
    Next,
    StageSet,
    Timers,
    load_stages,
)

log = logging.getLogger(__name__)

CONTAINER_ID_SCHEME = "podlife-sim://"
ERR_IMAGE_PULL, IMAGE_PULL_BACK_OFF = "ErrImagePull", "ImagePullBackOff"
OOM_KILLED, OOM_EXIT_CODE = "OOMKilled", 137
#: What ends a container run, in the order they are looked at when due together.
RUN_ENDERS = (CRASH, OOM, COMPLETE)
# Timer actions that are not stages.
_RESTART, _PULL_BACKOFF, _PULL_RETRY = "restart", "pull-backoff", "pull-retry"


class Step(enum.Enum):
    NEW = "new"  # bound, nothing written yet
    CREATING = "creating"  # ContainerCreating written; waiting for the port
    NETWORKED = "networked"  # pod IP known (written, or to be written with Running)
    PULLING = "pulling"  # image pull failing (never runs)
    RUNNING = "running"
    BACKOFF = "backoff"  # crashed containers wait to be restarted
    DONE = "done"  # Succeeded or Failed
    TERMINATING = "terminating"  # deletionTimestamp seen
    DELETED = "deleted"  # delete sent


# --------------------------------------------------------------------------- helpers
# (restart rules, backoff, Go durations, image IDs: podlife.node.lifecycle, shared with the kubelet)

_KUBELET_CONDITIONS = frozenset(KUBELET_CONDITIONS)


class _SecondClock:
    """Now as ``metav1.Time`` text (UTC, whole seconds), formatted once per second.

    Every status write needs "now" (condition transitions, container starts); at
    30,000 writes strftime-ing a fresh datetime each time is a visible share of the
    simulator's CPU, and the text only changes once a second.
    """

    __slots__ = ("_start", "_end", "_text")

    def __init__(self) -> None:
        self._start = self._end = 0.0
        self._text = ""

    def __call__(self) -> str:
        now = time.time()
        if not self._start <= now < self._end:
            second = int(now)
            self._text = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
            self._start, self._end = float(second), float(second + 1)
        return self._text


_now = _SecondClock()


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


def _state_from_api(state: Obj) -> Waiting | Running | Terminated:
    if "running" in state:
        return Running(str(state["running"].get("startedAt") or ""), "")
    if "terminated" in state:
        return terminated_from_api(state["terminated"])
    waiting = state.get("waiting") or {}
    return Waiting(str(waiting.get("reason") or CONTAINER_CREATING), str(waiting.get("message") or ""))


def fresh_views(pod: Obj) -> list[ContainerView]:
    """The spec's containers, none created yet (all ContainerCreating)."""
    containers = (pod.get("spec") or {}).get("containers") or ()
    return list(_fresh_views(tuple((str(c.get("name", "")), str(c.get("image", ""))) for c in containers)))


@lru_cache(maxsize=1024)
def _fresh_views(containers: tuple[tuple[str, str], ...]) -> tuple[ContainerView, ...]:
    """Fresh views per (name, image) list: they are immutable, and pods of one workload share them."""
    return tuple(ContainerView(name, image) for name, image in containers)


def views_from_pod(pod: Obj) -> list[ContainerView]:
    """The containers as the pod's status shows them (a fresh pod: all ContainerCreating)."""
    container_statuses = (pod.get("status") or {}).get("containerStatuses")
    if not container_statuses:
        return fresh_views(pod)
    statuses = {s.get("name"): s for s in container_statuses}
    views = []
    for c in (pod.get("spec") or {}).get("containers") or []:
        name, image = str(c.get("name", "")), str(c.get("image", ""))
        s = statuses.get(name)
        if s is None:
            views.append(ContainerView(name, image))
            continue
        cid = str(s.get("containerID") or "")
        state = _state_from_api(s.get("state") or {})
        if isinstance(state, Running):
            state = Running(state.started_at, cid)
        last = (s.get("lastState") or {}).get("terminated")
        views.append(ContainerView(name, image, state, terminated_from_api(last) if last else None,
                                   int(s.get("restartCount") or 0), bool(s.get("ready")), cid,
                                   str(s.get("imageID") or "")))
    return views


def status_patch(stored: Obj, wanted: Obj) -> Obj | None:
    """The merge patch from ``stored`` to ``wanted`` (None when equal), without copying.

    A status's members are scalars and lists, which a merge patch replaces whole, so
    comparing the top level is exact and much cheaper than a deep diff at 30,000
    writes (nested objects, if any, are diffed properly).
    """
    patch: Obj = {}
    for key, value in wanted.items():
        old = stored.get(key)
        if old is not value and old != value:  # build_pod_status passes unchanged members on as they are
            both = isinstance(old, dict) and isinstance(value, dict)
            patch[key] = create_merge_patch(old, value) if both else value
    for key in stored:
        if key not in wanted:
            patch[key] = None
    return patch or None


def _kubelet_only(conditions: Iterable[Obj]) -> bool:
    """Whether every condition is one the kubelet owns (none of somebody else's to carry over)."""
    for c in conditions:
        if c.get("type") not in _KUBELET_CONDITIONS:
            return False
    return True


def _has_scheduled(conditions: Iterable[Obj]) -> bool:
    for c in conditions:
        if c.get("type") == SCHEDULED:
            return True
    return False


def _is_echo(sim: PodSim, old: Obj, new: Obj) -> bool:
    """Whether the update ``old`` -> ``new`` only echoes one of ``sim``'s own writes.

    Every write comes back as a watch event, and a sync for it would find nothing
    to do. An event is an echo when its resourceVersion is one our write returned
    (the sync that wrote it carried on with that very object) and nothing we act on
    changed from the version before: labels, annotations (port, chaos, stage
    inputs), deletionTimestamp, generation. A change somebody else made before our
    write has its own event and resourceVersion and wakes the pod as usual; if that
    event was lost (a relist), the metadata comparison still sees the change.
    """
    if not sim.echoes:
        return False
    meta = new.get("metadata") or {}
    rv = meta.get("resourceVersion")
    if rv not in sim.echoes:
        return False
    sim.echoes.discard(rv)
    before = old.get("metadata") or {}
    return (meta.get("annotations") == before.get("annotations") and meta.get("labels") == before.get("labels")
            and meta.get("deletionTimestamp") == before.get("deletionTimestamp")
            and meta.get("generation") == before.get("generation"))


def _chaos_pending(sim: PodSim, pod: Obj) -> bool:
    """Whether ``podlife.io/chaos`` differs from what was acknowledged (checked before awaiting _chaos)."""
    return ((pod.get("metadata") or {}).get("annotations") or {}).get(CHAOS_ANNOTATION) != sim.chaos_acked


def _targets(views: Iterable[ContainerView], container: str | None) -> set[str]:
    names = {v.name for v in views}
    if container is None:
        return names
    if container not in names:
        log.warning("stage names container %r, which the pod does not have", container)
    return {container} & names


class _Gone(Exception):
    """The pod is gone (404) or is another pod now (uid precondition failed)."""


# --------------------------------------------------------------------------- per-pod state


#: How many resourceVersions of its own writes a pod remembers (see PodSim.echoes); a
#: pod writes at most three in a row, more only when watch events were lost.
MAX_ECHOES = 8


@dataclass(slots=True)
class PodSim:
    """What the simulator keeps about one pod: what the API cannot tell it cheaply (slots: 10,000 of them)."""

    key: str
    uid: str
    name: str
    namespace: str
    node: SimNode
    backoff: CrashBackoff
    step: Step = Step.NEW
    status: Obj = field(default_factory=dict)  # the status as last written (or read)
    #: ``status`` has only conditions the kubelet owns, PodScheduled among them: the
    #: next write can build on it as it is (see Simulator._base_status).
    plain: bool = False
    views: list[ContainerView] = field(default_factory=list)  # as last written (or read); none before
    pod_ip: str = ""
    start_time: str = ""
    #: The pod has finished (Succeeded/Failed): its sandbox is gone, as the kubelet
    #: releases the network then (PodReadyToStartContainers False, the IP kept).
    sandbox_released: bool = False
    gen: int = 0  # bumped on every step change; older timers are ignored
    due: set[str] = field(default_factory=set)  # timer actions that fired for this generation
    waiting: set[str] = field(default_factory=set)  # timer actions scheduled for this generation
    armed: dict[str, Next] = field(default_factory=dict)  # the stages of the current run
    crashed: set[str] = field(default_factory=set)  # containers waiting for a restart
    finished_at: float = 0.0  # loop time the last run ended
    pull: Next | None = None
    pull_attempts: int = 0
    chaos_acked: str | None = None
    #: resourceVersions our own writes returned whose watch events are still to come:
    #: those events only echo what we wrote, so they wake no sync (see _is_echo).
    echoes: set[str] = field(default_factory=set)
    syncing: bool = False  # a sync of this pod is running
    pending: list[tuple[Obj, Obj]] = field(default_factory=list)  # updates that arrived meanwhile
    _facts: PodFacts | None = field(default=None, init=False, repr=False)
    _facts_of: tuple[str, str, bool] = field(default=("", "", False), init=False, repr=False)

    def facts(self) -> PodFacts:
        """The pod-level facts of the status; rebuilt only when start time, pod IP or sandbox change."""
        of = (self.start_time, self.pod_ip, self.sandbox_released)
        if self._facts is None or self._facts_of != of:
            ip = self.pod_ip
            self._facts = PodFacts(host_ip=self.node.ip, start_time=self.start_time, pod_ips=(ip,) if ip else (),
                                   sandbox_ready=bool(ip) and not self.sandbox_released)
            self._facts_of = of
        return self._facts

    def wrote(self, pod: Obj) -> None:
        """Remember the resourceVersion of ``pod``, just returned by our own write."""
        rv = (pod.get("metadata") or {}).get("resourceVersion")
        if rv:
            if len(self.echoes) >= MAX_ECHOES:  # events were lost (a relist): start over
                self.echoes.clear()
            self.echoes.add(rv)


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
        self.client = client
        self.stages = stages if stages is not None else load_stages(stages_file, seed=seed)
        self.timers = Timers()
        self.restart_backoff = restart_backoff
        self.max_restart_backoff = max_restart_backoff
        self.pull_duration = pull_duration
        self.workers = workers
        self.pool = NodePool(client, [f"{name_prefix}-{i}" for i in range(nodes)], capacity=capacity, labels=labels,
                             lease_period=lease_period, lease_duration=lease_duration,
                             status_period=node_status_period, register_concurrency=register_concurrency,
                             stages=self.stages, timers=self.timers)
        self.pods = Informer(client, PODS)  # no field selector: see the module docstring
        self.pods.add_handlers(on_add=self._on_pod, on_update=self._on_pod_update, on_delete=self._on_pod_gone)
        self.queue = queue if queue is not None else WorkQueue()  # pod keys, one sync per key handed out
        self.record_events = record_events
        #: One recorder per node that has had something to record (made on first use), so
        #: events name their node as source.host, as the kubelet's do.
        self.recorders: dict[str, EventRecorder] = {}
        self.sims: dict[str, PodSim] = {}
        self._tasks = Supervisor("simulator", logger=log)

    def __repr__(self) -> str:
        return f"<Simulator {len(self.pool.nodes)} nodes>"

    @property
    def node_names(self) -> list[str]:
        return list(self.pool.nodes)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Register the nodes, then start the heartbeats and the pod informer and workers."""
        await self.pool.register()
        self._tasks.start(self.pool.run(), "sim heartbeats")
        self._tasks.start(self.pods.run(), "sim pod informer")
        self._tasks.start(self.queue.run_workers(self._sync, workers=self.workers), "sim pod workers")
        await self.pods.wait_synced()

    async def stop(self) -> None:
        """Stop all loops; nodes and pods stay in the API (a restarted simulator adopts them)."""
        await self._tasks.stop()
        self.timers.close()
        if self.recorders:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(r.flush() for r in self.recorders.values())), 5)

    # ------------------------------------------------------------------ informer and timers

    def _on_pod(self, pod: Obj, key: str | None = None) -> None:
        if (pod.get("spec") or {}).get("nodeName") in self.pool.nodes:
            self.queue.add(key or object_key(pod))

    def _on_pod_update(self, old: Obj, new: Obj) -> None:
        key = object_key(new)
        sim = self.sims.get(key)
        if sim is not None and sim.syncing:
            sim.pending.append((old, new))  # judged when the sync ends (_settle)
        elif sim is None or not _is_echo(sim, old, new):
            self._on_pod(new, key)

    def _on_pod_gone(self, pod: Obj) -> None:
        self.sims.pop(object_key(pod), None)

    def _fire(self, key: str, uid: str, gen: int, action: str) -> None:
        sim = self.sims.get(key)
        if sim is not None and sim.uid == uid and sim.gen == gen:
            sim.due.add(action)
            self.queue.add(key)

    def _schedule(self, sim: PodSim, action: str, delay: float) -> None:
        sim.waiting.add(action)
        self.timers.call_later(delay, self._fire, sim.key, sim.uid, sim.gen, action)

    def _ready_for(self, sim: PodSim, action: str, match: Match | None) -> bool:
        """True when ``action`` may happen now; else its timer is set (once)."""
        if match is None or match.delay <= 0 or action in sim.due:
            sim.due.discard(action)
            return True
        if action not in sim.waiting:
            self._schedule(sim, action, match.delay)
        return False

    def _take_due(self, sim: PodSim, action: str) -> bool:
        if action in sim.due:
            sim.due.discard(action)
            return True
        return False

    @staticmethod
    def _enter(sim: PodSim, step: Step) -> None:
        sim.step = step
        sim.gen += 1
        sim.due.clear()
        sim.waiting.clear()

    # ------------------------------------------------------------------ sync

    async def _sync(self, key: str) -> None:
        pod = self.pods.cache.get(key)
        node = self.pool.nodes.get(((pod or {}).get("spec") or {}).get("nodeName", ""))
        if pod is None or node is None:
            self.sims.pop(key, None)
            return
        sim = self._sim_for(key, pod, node)
        sim.syncing = True
        try:
            if (pod.get("metadata") or {}).get("deletionTimestamp"):
                await self._terminate(sim, pod)
                return
            if _chaos_pending(sim, pod):
                pod = await self._chaos(sim, pod)
            pod = await self._advance(sim, pod)
            # Chaos that waited for the containers to start acts now: the echo of the
            # Running write wakes no second sync.
            if _chaos_pending(sim, pod):
                await self._chaos(sim, pod)
        except _Gone:
            if self.sims.get(key) is sim:
                del self.sims[key]
        finally:
            sim.syncing = False
            self._settle(sim)

    def _settle(self, sim: PodSim) -> None:
        """Judge the events that arrived during a sync: wake the pod again unless all were echoes.

        A write's watch event can arrive before the write returns its resourceVersion,
        so events seen while a sync runs wait until it is over; queueing them at once
        would cost a second, idle sync per pod.
        """
        if not sim.pending:
            return
        pending, sim.pending = sim.pending, []
        news = [new for old, new in pending if not _is_echo(sim, old, new)]  # every echo is used up
        if news:
            self._on_pod(news[-1], sim.key)

    def _sim_for(self, key: str, pod: Obj, node: SimNode) -> PodSim:
        meta = pod["metadata"]
        sim = self.sims.get(key)
        if sim is not None and sim.uid == meta.get("uid"):
            return sim
        sim = PodSim(key, meta.get("uid", ""), meta["name"], meta.get("namespace", "default"), node,
                     CrashBackoff(self.restart_backoff, self.max_restart_backoff))
        self._adopt(sim, pod)
        self.sims[key] = sim
        return sim

    def _adopt(self, sim: PodSim, pod: Obj) -> None:
        """Start from the pod's status: new, or left by an earlier simulator."""
        status = pod.get("status") or {}
        sim.status = dict(status)
        conditions = status.get("conditions") or ()
        sim.plain = _kubelet_only(conditions) and _has_scheduled(conditions)
        sim.views = views_from_pod(pod) if status.get("containerStatuses") else []  # new: nothing written yet
        sim.chaos_acked = ((pod["metadata"].get("annotations") or {}).get(CHAOS_ACK_ANNOTATION))
        sim.start_time = str(status.get("startTime") or "")
        sim.pod_ip = str(status.get("podIP") or "")
        if not status.get("containerStatuses"):
            sim.step = Step.NEW
        elif status.get("phase") in TERMINAL_PHASES:
            sim.step = Step.DONE
            sim.sandbox_released = True
        elif not sim.pod_ip:
            sim.step = Step.CREATING
        elif all(isinstance(v.state, Running) for v in sim.views):
            sim.step = Step.RUNNING
            self._arm_run(sim, pod)
        else:
            sim.step = Step.NETWORKED  # pulling or crash-looping: start the containers again

    async def _advance(self, sim: PodSim, pod: Obj) -> Obj:
        """Take every step that is due now, back to back; returns the newest pod seen.

        ContainerCreating, pod IP and Running (or a failing pull) go in one sync when
        nothing holds them; then whatever a timer made due (``sim.due``).
        """
        if sim.step is Step.NEW:
            if not self._ready_for(sim, CREATE, self.stages.first(CREATE, pod)):
                return pod
            pod = await self._container_creating(sim, pod)
        at_once = False
        if sim.step is Step.CREATING:
            ip = sim.node.ip if (pod.get("spec") or {}).get("hostNetwork") else port_ip(pod)
            if ip is None:
                return pod  # the informer wakes us when the network controller writes the port
            at_once = self._runs_at_once(pod)
            if at_once:
                sim.pod_ip = ip  # written with Running, just below
                self._enter(sim, Step.NETWORKED)
            else:
                pod = await self._networked(sim, pod, ip)
        if sim.step is Step.NETWORKED:
            if not at_once:
                pull = self.stages.first(IMAGE_PULL_ERROR, pod)
                if pull is not None:
                    if self._ready_for(sim, IMAGE_PULL_ERROR, pull):
                        await self._pull_failed(sim, pod, pull.stage.next)
                    return pod
                if not self._ready_for(sim, RUN, self.stages.first(RUN, pod)):
                    return pod
            pod = await self._start_containers(sim, pod)
        if not sim.due:
            return pod  # what follows only acts on timers that fired
        if sim.step is Step.PULLING:
            await self._pulling(sim, pod)
        elif sim.step is Step.RUNNING:
            await self._running(sim, pod)
        elif sim.step is Step.BACKOFF and self._take_due(sim, _RESTART):
            await self._restart(sim, pod)
        return pod

    # ------------------------------------------------------------------ status writes

    @staticmethod
    def _base_status(sim: PodSim, pod: Obj) -> tuple[Obj, bool]:
        """Our last status, with the conditions others own taken from the newest pod; and
        whether it has only kubelet conditions (so will the status built on it).

        Usually nobody else has a condition on the pod and ours are plain (see
        :attr:`PodSim.plain`): then that is our last status itself, used without a
        copy (build_pod_status copies what it changes and never changes ``previous``).
        """
        api_conditions = (pod.get("status") or {}).get("conditions") or ()
        if sim.plain and _kubelet_only(api_conditions):
            return sim.status, True
        base = dict(sim.status)
        foreign = [c for c in api_conditions if c.get("type") not in _KUBELET_CONDITIONS]
        ours = [c for c in base.get("conditions") or () if c.get("type") in _KUBELET_CONDITIONS]
        scheduled = [c for c in api_conditions if c.get("type") == SCHEDULED]
        if scheduled and not _has_scheduled(ours):
            ours += scheduled
        base["conditions"] = foreign + ours
        return base, not foreign

    async def _write(self, sim: PodSim, pod: Obj, views: list[ContainerView]) -> Obj:
        """Patch the status to show ``views``; returns the newest pod. Raises _Gone."""
        base, plain = self._base_status(sim, pod)
        wanted = build_pod_status(pod, views, sim.facts(), previous=base, now=_now())
        patch = status_patch(sim.status, wanted)
        if patch is None:
            sim.views = views
            return pod
        try:
            new = await self.client.patch(PODS, sim.name, {"metadata": {"uid": sim.uid}, "status": patch},
                                          sim.namespace, subresource="status")
        except ApiError as exc:
            if exc.code in (404, 409):
                raise _Gone from None
            raise
        sim.status = wanted
        sim.plain = plain  # build_pod_status keeps the base's foreign conditions and adds PodScheduled
        sim.views = views
        sim.wrote(new)
        return new

    def _event(self, pod: Obj, type_: str, reason: str, message: str, container: str = "") -> None:
        if not self.record_events:
            return
        node = str((pod.get("spec") or {}).get("nodeName") or "")
        recorder = self.recorders.get(node)
        if recorder is None:
            recorder = self.recorders[node] = EventRecorder(self.client, "kubelet", node)
        recorder.event(pod, type_, reason, message, f"spec.containers{{{container}}}" if container else "")

    # ------------------------------------------------------------------ the first writes

    async def _container_creating(self, sim: PodSim, pod: Obj) -> Obj:
        sim.start_time = sim.start_time or _now()
        pod = await self._write(sim, pod, fresh_views(pod))
        self._enter(sim, Step.CREATING)
        return pod

    def _runs_at_once(self, pod: Obj) -> bool:
        """Whether the containers start as soon as the pod has its IP (no stage holds them)."""
        if self.stages.first(IMAGE_PULL_ERROR, pod) is not None:
            return False
        run = self.stages.first(RUN, pod)
        return run is None or run.delay <= 0

    async def _networked(self, sim: PodSim, pod: Obj, ip: str) -> Obj:
        sim.pod_ip = ip
        try:
            pod = await self._write(sim, pod, sim.views)
        except BaseException:
            sim.pod_ip = ""
            raise
        self._enter(sim, Step.NETWORKED)
        return pod

    @staticmethod
    def _run_view(view: ContainerView, now: str, *, restarted: bool = False) -> ContainerView:
        """``view`` with a new container instance running (built directly: dataclasses.replace is slow)."""
        running = Running(now, new_container_id())
        last = view.last_state
        if restarted:
            last = view.state if isinstance(view.state, Terminated) else view.last_state
        return ContainerView(name=view.name, image=view.image, state=running, last_state=last,
                             restart_count=view.restart_count + (1 if restarted else 0), ready=True,
                             container_id=running.container_id, image_id=image_id(view.image))

    async def _start_containers(self, sim: PodSim, pod: Obj) -> Obj:
        now = _now()
        pod = await self._write(sim, pod, [self._run_view(v, now) for v in sim.views])
        self._enter(sim, Step.RUNNING)
        self._arm_run(sim, pod)
        return pod

    def _arm_run(self, sim: PodSim, pod: Obj) -> None:
        """Look up this run's stages (crash, oom, complete, unready) and set their timers."""
        sim.armed.clear()
        for action in (*RUN_ENDERS, UNREADY):
            match = self.stages.first(action, pod)
            if match is not None:
                sim.armed[action] = match.stage.next
                self._schedule(sim, action, match.delay)

    # ------------------------------------------------------------------ running, crashing, restarting

    async def _running(self, sim: PodSim, pod: Obj) -> None:
        for action in RUN_ENDERS:
            if self._take_due(sim, action):
                nxt = sim.armed[action]
                if action == OOM:
                    code, reason, message = OOM_EXIT_CODE, OOM_KILLED, ""
                elif action == COMPLETE:
                    code, reason, message = 0, "Completed", ""
                else:
                    code = nxt.exit_code if nxt.exit_code is not None else 1
                    reason, message = nxt.reason or "Error", nxt.message or ""
                await self._end_run(sim, pod, _targets(sim.views, nxt.container), code, reason, message, nxt)
                return
        if self._take_due(sim, UNREADY):
            nxt = sim.armed[UNREADY]
            await self._set_ready(sim, pod, False, _targets(sim.views, nxt.container))

    def _backoff_for(self, sim: PodSim, nxt: Next | None) -> CrashBackoff:
        b = sim.backoff
        b.initial = nxt.backoff if nxt is not None and nxt.backoff is not None else self.restart_backoff
        b.maximum = nxt.max_backoff if nxt is not None and nxt.max_backoff is not None else self.max_restart_backoff
        b.maximum = max(b.maximum, b.initial)
        return b

    async def _end_run(self, sim: PodSim, pod: Obj, targets: set[str], exit_code: int, reason: str, message: str,
                       nxt: Next | None) -> None:
        """The ``targets`` containers exit: write it, then restart them (now or after a backoff) or finish."""
        targets = {v.name for v in sim.views if v.name in targets and isinstance(v.state, Running)}
        if not targets:
            return
        now = _now()
        views = [replace(v, state=Terminated(exit_code, reason, v.state.started_at, now, v.state.container_id, message),
                         ready=False)
                 if v.name in targets and isinstance(v.state, Running) else v for v in sim.views]
        restarts = should_restart((pod.get("spec") or {}).get("restartPolicy", "Always"), exit_code)
        finished = not restarts and not any(isinstance(v.state, Running) for v in views)
        wait = 0.0
        if restarts:
            loop_now = asyncio.get_running_loop().time()
            sim.finished_at = loop_now
            sim.crashed = targets
            wait = self._backoff_for(sim, nxt).remaining(loop_now, loop_now)
        pod_text = format_pod(pod)
        if wait > 0:  # as the kubelet: a crash that must wait is written as CrashLoopBackOff at once
            views = [replace(v, state=Waiting(CRASH_LOOP_BACK_OFF, f"back-off {go_duration(wait)} restarting failed "
                                                                   f"container={v.name} pod={pod_text}"),
                             last_state=v.state)
                     if v.name in targets and isinstance(v.state, Terminated) else v for v in views]
        sim.sandbox_released = finished  # the write that ends the pod shows its sandbox gone
        try:
            pod = await self._write(sim, pod, views)
        except BaseException:
            sim.sandbox_released = False
            raise
        if reason == OOM_KILLED:
            self._event(pod, "Warning", "OOMKilling", f"Memory cgroup out of memory: killed container {sorted(targets)}")
        if not restarts:
            if finished:
                self._enter(sim, Step.DONE)
            return
        if wait <= 0:
            await self._restart(sim, pod)
            return
        for name in sorted(targets):
            self._event(pod, "Warning", "BackOff", f"Back-off restarting failed container {name} in pod {pod_text}", name)
        self._enter(sim, Step.BACKOFF)
        self._schedule(sim, _RESTART, wait)

    async def _restart(self, sim: PodSim, pod: Obj) -> None:
        now = _now()
        views = [self._run_view(v, now, restarted=True) if v.name in sim.crashed and not isinstance(v.state, Running)
                 else v for v in sim.views]
        pod = await self._write(sim, pod, views)
        sim.backoff.restarted(sim.finished_at)
        sim.crashed = set()
        self._enter(sim, Step.RUNNING)
        self._arm_run(sim, pod)

    async def _set_ready(self, sim: PodSim, pod: Obj, ready: bool, targets: set[str]) -> Obj:
        views = [replace(v, ready=ready) if v.name in targets and isinstance(v.state, Running) else v
                 for v in sim.views]
        pod = await self._write(sim, pod, views)
        if not ready:
            for name in sorted(targets):
                self._event(pod, "Warning", "Unhealthy", "Readiness probe failed: simulated (podlife sim)", name)
        return pod

    # ------------------------------------------------------------------ image pull failures

    async def _pull_failed(self, sim: PodSim, pod: Obj, nxt: Next) -> None:
        """Targets wait in ErrImagePull (the others run); then ImagePullBackOff, retry, ... forever."""
        now = _now()
        targets = _targets(sim.views, nxt.container)
        views = [self._pull_view(v, nxt, ERR_IMAGE_PULL) if v.name in targets else self._run_view(v, now)
                 for v in sim.views]
        pod = await self._write(sim, pod, views)
        self._enter(sim, Step.PULLING)
        sim.pull = nxt
        sim.pull_attempts = 1
        self._pull_events(pod, targets, nxt, ERR_IMAGE_PULL)
        self._schedule(sim, _PULL_BACKOFF, nxt.pull_duration if nxt.pull_duration is not None else self.pull_duration)

    @staticmethod
    def _pull_view(view: ContainerView, nxt: Next, reason: str) -> ContainerView:
        if reason == ERR_IMAGE_PULL:
            message = nxt.message or (f'failed to pull and unpack image "{view.image}": simulated pull failure '
                                      f"(podlife sim)")
        else:
            message = f'Back-off pulling image "{view.image}"'
        return replace(view, state=Waiting(reason, message), ready=False)

    def _pull_events(self, pod: Obj, targets: set[str], nxt: Next, reason: str) -> None:
        images = {v.name: v.image for v in fresh_views(pod)}
        for name in sorted(targets):
            if reason == ERR_IMAGE_PULL:
                self._event(pod, "Warning", "Failed", f'Failed to pull image "{images.get(name)}": simulated pull '
                                                      f"failure (podlife sim)", name)
            else:
                self._event(pod, "Normal", "BackOff", f'Back-off pulling image "{images.get(name)}"', name)

    async def _pulling(self, sim: PodSim, pod: Obj) -> None:
        nxt = sim.pull
        if nxt is None:
            return
        targets = _targets(sim.views, nxt.container)
        if self._take_due(sim, _PULL_BACKOFF):
            views = [self._pull_view(v, nxt, IMAGE_PULL_BACK_OFF) if v.name in targets else v for v in sim.views]
            pod = await self._write(sim, pod, views)
            self._pull_events(pod, targets, nxt, IMAGE_PULL_BACK_OFF)
            initial = nxt.backoff if nxt.backoff is not None else self.restart_backoff
            maximum = nxt.max_backoff if nxt.max_backoff is not None else self.max_restart_backoff
            self._schedule(sim, _PULL_RETRY, min(initial * 2 ** (sim.pull_attempts - 1), max(maximum, initial)))
        elif self._take_due(sim, _PULL_RETRY):
            views = [self._pull_view(v, nxt, ERR_IMAGE_PULL) if v.name in targets else v for v in sim.views]
            pod = await self._write(sim, pod, views)
            sim.pull_attempts += 1
            self._pull_events(pod, targets, nxt, ERR_IMAGE_PULL)
            self._schedule(sim, _PULL_BACKOFF, nxt.pull_duration if nxt.pull_duration is not None else self.pull_duration)

    # ------------------------------------------------------------------ deletion

    async def _terminate(self, sim: PodSim, pod: Obj) -> None:
        """Stop the containers (one status write) after the delete stage's delay, then delete the pod."""
        if sim.step is Step.DELETED:
            return
        if sim.step is not Step.TERMINATING:
            self._enter(sim, Step.TERMINATING)
            pod = await self._stopping(sim, pod)
        match = self.stages.first(DELETE, pod)
        if match is not None and match.delay > 0:
            match = Match(match.stage, min(match.delay, _seconds_until(pod["metadata"]["deletionTimestamp"])))
        if not self._ready_for(sim, DELETE, match):
            return
        if any(isinstance(v.state, Running) for v in sim.views):
            code = match.stage.next.exit_code if match is not None and match.stage.next.exit_code is not None else 0
            now = _now()
            views = [replace(v, state=Terminated(code, "Completed" if code == 0 else "Error", v.state.started_at, now,
                                                 v.state.container_id), ready=False)
                     if isinstance(v.state, Running) else replace(v, ready=False) for v in sim.views]
            pod = await self._write(sim, pod, views)
        try:
            await self.client.delete(PODS, sim.name, sim.namespace, grace_period_seconds=0,
                                     preconditions={"uid": sim.uid})
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise
        self._enter(sim, Step.DELETED)

    async def _stopping(self, sim: PodSim, pod: Obj) -> Obj:
        """The deletion's first write, as the kubelet's: every container unready; Killing for the running ones."""
        if not sim.views:  # nothing written yet: the pod is just deleted
            return pod
        running = sorted(v.name for v in sim.views if isinstance(v.state, Running))
        pod = await self._write(sim, pod, [replace(v, ready=False) if v.ready else v for v in sim.views])
        for name in running:
            self._event(pod, "Normal", "Killing", f"Stopping container {name}", name)
        return pod

    # ------------------------------------------------------------------ chaos

    async def _chaos(self, sim: PodSim, pod: Obj) -> Obj:
        """Act on ``podlife.io/chaos`` once per value (see the module docstring)."""
        value = ((pod.get("metadata") or {}).get("annotations") or {}).get(CHAOS_ANNOTATION)
        if value == sim.chaos_acked:  # nothing to do (callers check _chaos_pending first)
            return pod
        if value is None:
            return await self._ack(sim, None)
        if sim.step is not Step.RUNNING and sim.step is not Step.DONE:
            return pod  # acted on once the containers run
        if sim.step is Step.RUNNING:
            running = {v.name for v in sim.views if isinstance(v.state, Running)}
            if value == "crash":
                await self._end_run(sim, pod, running, 1, "Error", "", None)
            elif value == "oom":
                await self._end_run(sim, pod, running, OOM_EXIT_CODE, OOM_KILLED, "", None)
            elif value in ("unready", "ready"):
                pod = await self._set_ready(sim, pod, value == "ready", running)
            else:
                log.warning("pod %s: unknown %s value %r (use crash, oom, unready or ready)", sim.key,
                            CHAOS_ANNOTATION, value)
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
        return pod


def _seconds_until(stamp: str) -> float:
    try:
        when = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return 0.0
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
