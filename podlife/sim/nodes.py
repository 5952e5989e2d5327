"""Simulated nodes: the Node objects, their Leases and one heartbeat loop for all of them.

Design
------
What it writes: for each simulated node, a Node (registered with its status, as a
kubelet does) and a Lease ``kube-node-lease/<node>``. After that, a healthy node costs
one Lease renewal per ``lease_period`` (10 s, duration 40 s, as the kubelet) and one
status write per ``status_period`` (5 min, the kubelet's report frequency; the Lease
is the liveness signal in between).

Why one loop: 5,000 nodes with a timer each would wake 5,000 times every 10 s in
bursts. :class:`NodePool` instead cuts the period into :data:`SLOTS` ticks and gives
node *i* the slot ``i % SLOTS``; each tick renews one slot's nodes with bounded
concurrency. That is ``nodes / lease_period`` renewals per second, spread evenly.
Registration runs with bounded concurrency too (``register_concurrency`` writes in
flight), so 1,000 nodes register in well under a second on the in-process client.

What it watches: one Node informer (``type=simulated``), only for the chaos
annotation ``podlife.io/chaos`` on its own nodes, which is *level-triggered*:
``heartbeat-stop`` stops the Lease and status writes of that node,
``heartbeat-start`` or removing the annotation resumes them (at once). A
``heartbeat-stop`` stage stops a node the same way after its delay. A stopped node is
cut off from the API as a whole, not only its heartbeats: :attr:`NodePool.listeners`
hear ``(node, False)`` the moment it stops and ``(node, True)`` once a resumed node's
Lease and status are written again, and the simulator holds that node's pod writes in
between (:mod:`podlife.sim.simulator`, "Cut-off nodes"). A ``node-pressure``
stage turns its MemoryPressure, DiskPressure or PIDPressure condition True, with the
``node.kubernetes.io/*-pressure:NoSchedule`` taint the real kubelet sets (pods on it are
evicted by ``evict`` stages: a simulated node measures nothing).

Addresses: each node's InternalIP comes from ``198.18.0.0/15`` (RFC 2544, reserved
for benchmarking, never routed on the Internet) and is only a label: nothing ever
connects to it. ``daemonEndpoints.kubeletEndpoint.Port`` is 0, so the API server
answers ``kubectl logs`` for a simulated pod with a clear error instead of dialing.

Node objects are built by pure functions (:func:`node_object`, :func:`node_status`,
:func:`podlife.node.node_status.lease_object`, shared with the kubelet); conditions come from the real kubelet's
:func:`podlife.node.node_status.node_conditions`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..machinery.errors import ApiError
from ..machinery.constants import CHAOS_ANNOTATION, KUBERNETES_VERSION
from ..client.base import LEASES, NODES, Client, Obj
from ..client.informer import Informer
from ..machinery.tasks import Supervisor
from ..node.node_status import (
    LEASE_NAMESPACE, lease_object, lease_spec, micro_time, node_conditions, node_info, pressure_taints,
    well_known_labels,
)
from ..node.status import rfc3339
from .stages import HEARTBEAT_STOP, NODE_PRESSURE, StageSet, Timers

log = logging.getLogger(__name__)

KUBELET_VERSION = f"v{KUBERNETES_VERSION}.0-podlife-sim"
RUNTIME_VERSION = "podlife-sim://0.1"
SIM_ARCHITECTURE = "amd64"
NODE_RANGE = ipaddress.ip_network("198.18.0.0/15")
DEFAULT_CAPACITY: dict[str, str] = {"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "1Ti"}
SIM_LABEL = ("type", "simulated")
HEARTBEAT_STOP_CHAOS, HEARTBEAT_START_CHAOS = "heartbeat-stop", "heartbeat-start"
#: Ticks per lease period (each renews the nodes of one slot).
SLOTS = 10


def node_ip(index: int) -> str:
    """The InternalIP of simulated node ``index`` (a label only: never connected to)."""
    if not 0 <= index < NODE_RANGE.num_addresses - 2:
        raise ValueError(f"no address for simulated node {index}")
    return str(NODE_RANGE.network_address + index + 1)


def node_labels(name: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    labels = {**well_known_labels(name, SIM_ARCHITECTURE), "node.kubernetes.io/instance-type": "simulated"}
    labels.update(extra or {})
    labels[SIM_LABEL[0]] = SIM_LABEL[1]
    return labels


def node_status(name: str, ip: str, capacity: dict[str, str], now: str, previous: list[Obj] | None = None) -> Obj:
    digest = hashlib.sha256(name.encode()).hexdigest()
    return {
        "capacity": dict(capacity),
        "allocatable": dict(capacity),
        "conditions": node_conditions(now, previous),
        "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
        "nodeInfo": node_info(machine_id=digest[:32], system_uuid=str(uuid.UUID(digest[:32])),
                              boot_id=str(uuid.UUID(digest[32:64])), kernel_version="6.1.0-podlife-sim",
                              os_image="podlife simulated node", architecture=SIM_ARCHITECTURE,
                              kubelet_version=KUBELET_VERSION, runtime_version=RUNTIME_VERSION),
    }


def node_object(name: str, ip: str, capacity: dict[str, str], now: str, labels: dict[str, str] | None = None) -> Obj:
    """The Node a simulated kubelet registers (status included)."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": node_labels(name, labels),
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "podlife.io/simulated": "true"},
        },
        "spec": {},
        "status": node_status(name, ip, capacity, now),
    }


@dataclass
class SimNode:
    name: str
    index: int
    ip: str
    uid: str = ""
    conditions: list[Obj] = field(default_factory=list)
    last_status: float = 0.0  # loop time of the last status write
    stopped: set[str] = field(default_factory=set)  # why heartbeats are stopped: "stage", "chaos"
    chaos_seen: str | None = None  # the chaos annotation value last acted on
    pressure: set[str] = field(default_factory=set)  # pressure conditions a stage turned True

    @property
    def beating(self) -> bool:
        return not self.stopped


class NodePool:
    """Registers simulated nodes and keeps them alive (or not, as stages and chaos say)."""

    def __init__(self, client: Client, names: Iterable[str], *, capacity: dict[str, str] | None = None,
                 labels: dict[str, str] | None = None, lease_period: float = 10.0, lease_duration: int = 40,
                 status_period: float = 300.0, register_concurrency: int = 64, stages: StageSet | None = None,
                 timers: Timers | None = None) -> None:
        self.client = client
        self.capacity = {**DEFAULT_CAPACITY, **{k: str(v) for k, v in (capacity or {}).items()}}
        self.labels = dict(labels or {})
        self.lease_period = lease_period
        self.lease_duration = lease_duration
        self.status_period = status_period
        self.stages = stages or StageSet()
        self.timers = timers or Timers()
        self.nodes: dict[str, SimNode] = {n: SimNode(n, i, node_ip(i)) for i, n in enumerate(names)}
        self._sem = asyncio.Semaphore(register_concurrency)
        self._background = Supervisor("simulated nodes", logger=log)
        self.informer = Informer(client, NODES, label_selector="=".join(SIM_LABEL))
        self.informer.add_handlers(on_add=self._on_node, on_update=lambda _old, new: self._on_node(new))
        #: called with a node name when its heartbeats stop or resume (for tests and tools)
        self.on_change: Callable[[str, bool], None] | None = None
        #: called with (node, False) when its heartbeats stop, and with (node, True) once the
        #: first Lease renewal and status write after a resume are done (the simulator's pods)
        self.listeners: list[Callable[[str, bool], None]] = []

    # ------------------------------------------------------------------ registration

    async def register(self) -> None:
        """Create (or take over) every node and its Lease, ``register_concurrency`` at a time."""
        await asyncio.gather(*(self._bounded(self._register_one, node) for node in self.nodes.values()))
        for node in self.nodes.values():
            self._plan_heartbeat_stop(node)
            self._plan_pressure(node)

    async def _bounded(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """``fn(*args)`` with at most ``register_concurrency`` calls in flight."""
        async with self._sem:
            return await fn(*args)

    async def _register_one(self, node: SimNode) -> None:
        now = rfc3339()
        obj = node_object(node.name, node.ip, self.capacity, now, self.labels)
        try:
            created = await self.client.create(NODES, obj)
        except ApiError as exc:
            if exc.code != 409:
                raise
            created = await self._take_over(node, obj)
        node.uid = created["metadata"]["uid"]
        node.conditions = (created.get("status") or {}).get("conditions") or []
        node.last_status = asyncio.get_running_loop().time()
        await self._renew(node)

    async def _take_over(self, node: SimNode, wanted: Obj) -> Obj:
        """A node of this name exists (a restarted simulator): bring labels and status up to date."""
        existing = await self.client.get(NODES, node.name)
        labels = wanted["metadata"]["labels"]
        if any((existing["metadata"].get("labels") or {}).get(k) != v for k, v in labels.items()):
            existing = await self.client.patch(NODES, node.name, {"metadata": {"labels": labels}})
        previous = (existing.get("status") or {}).get("conditions")
        status = node_status(node.name, node.ip, self.capacity, rfc3339(), previous)
        return await self.client.patch(NODES, node.name, {"status": status}, subresource="status")

    def _plan_heartbeat_stop(self, node: SimNode) -> None:
        obj = {"metadata": {"name": node.name, "labels": node_labels(node.name, self.labels)}}
        match = self.stages.first(HEARTBEAT_STOP, obj)
        if match is not None:
            self.timers.call_later(match.delay, self.stop_heartbeat, node.name, "stage")

    def _plan_pressure(self, node: SimNode) -> None:
        obj = {"metadata": {"name": node.name, "labels": node_labels(node.name, self.labels)}}
        match = self.stages.first(NODE_PRESSURE, obj)
        if match is not None and match.stage.next.condition:
            self.timers.call_later(match.delay, self.set_pressure, node.name, match.stage.next.condition)

    def set_pressure(self, name: str, condition: str) -> None:
        """A stage says the node is under pressure: the condition True now, with its taint."""
        node = self.nodes.get(name)
        if node is None or condition in node.pressure:
            return
        node.pressure.add(condition)
        self._background.start(self._write_pressure(node), f"pressure {name}")

    async def _write_pressure(self, node: SimNode) -> None:
        """The status with the pressure conditions, and the taints that go with them (as the
        real kubelet sets them, :mod:`podlife.kubelet.eviction`)."""
        try:
            await self._write_status(node)
            current = await self.client.get(NODES, node.name)
            taints = (current.get("spec") or {}).get("taints") or []
            wanted = pressure_taints(taints, node.pressure)
            if wanted != taints:
                await self.client.patch(NODES, node.name, {"spec": {"taints": wanted}})
        except Exception as exc:
            log.warning("simulated node %s: pressure not written: %s", node.name, exc)

    # ------------------------------------------------------------------ heartbeats

    async def _renew(self, node: SimNode) -> None:
        """Move the Lease's renewTime forward, creating the Lease when it is missing."""
        renew_time = micro_time()
        spec = lease_spec(node.name, self.lease_duration, renew_time)
        try:
            await self.client.patch(LEASES, node.name, {"spec": spec}, LEASE_NAMESPACE)
        except ApiError as exc:
            if exc.code != 404:
                raise
            with contextlib.suppress(ApiError):  # 409: created meanwhile
                await self.client.create(LEASES, lease_object(node.name, node.uid, self.lease_duration,
                                                              renew_time), LEASE_NAMESPACE)

    async def _write_status(self, node: SimNode) -> None:
        conditions = node_conditions(rfc3339(), node.conditions, node.pressure)
        try:
            await self.client.patch(NODES, node.name, {"status": {"conditions": conditions}}, subresource="status")
        except ApiError as exc:
            if exc.code != 404:
                raise
            log.warning("simulated node %s was deleted: registering it again", node.name)
            await self._register_one(node)
            return
        node.conditions = conditions
        node.last_status = asyncio.get_running_loop().time()

    async def _beat(self, node: SimNode, now: float) -> None:
        if not node.beating:
            return
        try:
            await self._renew(node)
            if now - node.last_status >= self.status_period:
                await self._write_status(node)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("simulated node %s: heartbeat failed: %s", node.name, exc)

    async def run(self) -> None:
        """Renew one slot of nodes per tick, forever (the node informer runs alongside)."""
        loop = asyncio.get_running_loop()
        slots: list[list[SimNode]] = [[] for _ in range(SLOTS)]
        for node in self.nodes.values():
            slots[node.index % SLOTS].append(node)
        tick = self.lease_period / SLOTS
        informer = self._background.start(self.informer.run(), "sim node informer")
        try:
            slot, next_at = 0, loop.time()
            while True:
                next_at += tick
                await asyncio.sleep(max(0.0, next_at - loop.time()))
                now = loop.time()
                await asyncio.gather(*(self._bounded(self._beat, n, now) for n in slots[slot] if n.beating))
                slot = (slot + 1) % SLOTS
                if loop.time() - next_at > self.lease_period:  # fell far behind: do not try to catch up
                    next_at = loop.time()
        finally:
            informer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await informer

    # ------------------------------------------------------------------ stop and resume

    def stop_heartbeat(self, name: str, why: str) -> None:
        node = self.nodes.get(name)
        if node is None or why in node.stopped:
            return
        node.stopped.add(why)
        log.info("simulated node %s: heartbeats stopped (%s)", name, why)
        if self.on_change is not None:
            self.on_change(name, False)
        self._tell(name, False)

    def resume_heartbeat(self, name: str) -> None:
        """Heartbeats again, whatever stopped them, starting with one right now."""
        node = self.nodes.get(name)
        if node is None or node.beating:
            return
        node.stopped.clear()
        log.info("simulated node %s: heartbeats resumed", name)
        self._background.start(self._resume_now(node), f"resume {name}")
        if self.on_change is not None:
            self.on_change(name, True)

    async def _resume_now(self, node: SimNode) -> None:
        """The first heartbeat after a resume; then the listeners hear the node is back (the
        node's own status first, as a reconnecting kubelet's, so its pods follow a Ready node)."""
        try:
            await self._renew(node)
            await self._write_status(node)
        except Exception as exc:
            log.warning("simulated node %s: heartbeat failed: %s", node.name, exc)
        if node.beating:  # not stopped again meanwhile
            self._tell(node.name, True)

    def _tell(self, name: str, reachable: bool) -> None:
        for listener in self.listeners:
            try:
                listener(name, reachable)
            except Exception:
                log.exception("simulated node %s: listener failed", name)

    def _on_node(self, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        node = self.nodes.get(meta.get("name", ""))
        if node is None:
            return
        value = (meta.get("annotations") or {}).get(CHAOS_ANNOTATION)
        if value == node.chaos_seen:
            return
        before, node.chaos_seen = node.chaos_seen, value
        if value == HEARTBEAT_STOP_CHAOS:
            self.stop_heartbeat(node.name, "chaos")
        elif value == HEARTBEAT_START_CHAOS or (value is None and before == HEARTBEAT_STOP_CHAOS):
            self.resume_heartbeat(node.name)
        elif value is not None:
            log.warning("simulated node %s: unknown %s value %r (use %s or %s)", node.name, CHAOS_ANNOTATION,
                        value, HEARTBEAT_STOP_CHAOS, HEARTBEAT_START_CHAOS)
