"""The network controller: one Port per scheduled pod, as Kuryr-Kubernetes' controller does.

What it watches
---------------
- **Pods** bound to a node (field selector ``spec.nodeName!=``). Kuryr creates a
  Neutron port as soon as it sees a pod; podlife waits until the pod is
  scheduled, so that the port records its node (``binding:host_id``).
- **Ports** (``network.podlife.io/v1``): its own objects, so that it knows what
  exists, notices a port deleted behind its back, and collects ports whose pod
  is gone.
- **Subnets** are only listed once, at start.

What it writes
--------------
For a pod that is bound, not finished and not on the host network:

1. an address from :class:`~podlife.network.ipam.IPAM` (owner: the pod's UID) in
   its namespace's subnet -- and on first use of that subnet the ``Subnet``
   object (``<namespace>-<k>``, ``spec: {cidr, gateway}``);
2. a ``Port`` named after the pod, in its namespace (``spec: {subnet,
   macAddress, fixedIPs, podName, podUID, nodeName}``, ``status.phase:
   Active``), owned by the pod (``controller: true``), so Kubernetes-style
   garbage collection would remove it with the pod too;
3. the annotation ``network.podlife.io/port`` on the pod: the port in Neutron's
   shape (``id``, ``name``, ``mac_address``, ``fixed_ips``, ``network_id``,
   ``subnet: {id, cidr, gateway_ip}``, ``binding:host_id``), which the CNI step
   on the node reads (:mod:`podlife.node.cni`). Until it is written the CNI
   step fails and the kubelet retries: the race Kuryr's documentation describes.

When the pod is deleted (or finishes, as Kuryr releases completed pods' ports) the
port is deleted and the address freed. ``Subnet.status.allocated`` is refreshed
at most once a second per subnet, so it does not double the writes per pod.

How (and why this way)
----------------------
Informer handlers only enqueue ``namespace/name`` keys into a
:class:`~podlife.client.workqueue.WorkQueue`; workers run :meth:`on_present` or
:meth:`on_deleted` (Kuryr's handler names). Both compare what should exist with
what does and fix the difference, so running them twice, after a crash, or
after a lost event is harmless. The per-pod cost in steady state is one Port
create and one pod patch, run by many workers at once (256 by default: each
spends most of its time waiting for a commit, so the pool's size is the
controller's share of a busy event loop, and it must not fall behind a flood of
pod creates; an idle worker costs nothing).

*Restart.* The IPAM has no state of its own: on start the controller lists the
Subnets, waits for its Port informer, and rebuilds the IPAM from them
(:meth:`IPAM.restore`), so every pod keeps its address. It then queues every
port and pod: ports whose pod is gone (or was replaced: UID mismatch) are
deleted, ports the IPAM refused are replaced, pods without a port get one.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections import Counter
from dataclasses import dataclass

import orjson

from ..machinery.errors import ApiError
from ..machinery.constants import PORT_ANNOTATION
from ..client.base import PODS, PORTS, SUBNETS, Client, Obj
from ..client.informer import Informer, object_key
from ..client.workqueue import WorkQueue
from ..machinery.tasks import Supervisor
from .ipam import DEFAULT_BLOCK_PREFIX, DEFAULT_POD_CIDR, IPAM, Allocation, PortRecord, SubnetRecord

log = logging.getLogger(__name__)

#: the pod annotation the CNI step reads
PORT_API_VERSION = "network.podlife.io/v1"
DEVICE_OWNER = "compute:podlife"
TERMINAL_PHASES = ("Succeeded", "Failed")


@dataclass(frozen=True, slots=True)
class PortState:
    """A Port object as far as the controller cares."""

    uid: str
    pod_uid: str
    subnet: str
    ip: str
    mac: str
    node: str
    rv: int

    @classmethod
    def from_obj(cls, port: Obj) -> PortState:
        meta, spec = port.get("metadata") or {}, port.get("spec") or {}
        fixed = (spec.get("fixedIPs") or [{}])[0] or {}
        try:
            rv = int(meta.get("resourceVersion") or 0)
        except ValueError:
            rv = 0
        return cls(meta.get("uid") or "", spec.get("podUID") or "", spec.get("subnet") or "",
                   fixed.get("ipAddress") or "", (spec.get("macAddress") or "").lower(), spec.get("nodeName") or "", rv)

    def matches(self, alloc: Allocation) -> bool:
        return (self.ip, self.mac, self.subnet) == (alloc.ip, alloc.mac, alloc.subnet.name)

    def record(self) -> PortRecord:
        return PortRecord(self.pod_uid, self.subnet, self.ip, self.mac)


def wants_port(pod: Obj) -> bool:
    """Bound, not finished, not on the host's network."""
    spec = pod.get("spec") or {}
    if not spec.get("nodeName") or spec.get("hostNetwork"):
        return False
    return (pod.get("status") or {}).get("phase") not in TERMINAL_PHASES


def port_annotation(port_name: str, port: PortState, alloc: Allocation, namespace: str) -> str:
    """The ``network.podlife.io/port`` value: the port as Neutron would describe it."""
    subnet = alloc.subnet
    doc = {
        "id": port.uid,
        "name": port_name,
        "network_id": namespace,
        "mac_address": alloc.mac,
        "fixed_ips": [{"ip_address": alloc.ip, "subnet_id": subnet.name}],
        "subnet": {"id": subnet.name, "cidr": subnet.cidr, "gateway_ip": subnet.gateway},
        "device_id": port.pod_uid,
        "device_owner": DEVICE_OWNER,
        "binding:host_id": port.node,
        "status": "ACTIVE",
    }
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode()


def port_object(pod: Obj, alloc: Allocation) -> Obj:
    meta, spec = pod["metadata"], pod.get("spec") or {}
    subnet = alloc.subnet.name
    return {
        "apiVersion": PORT_API_VERSION, "kind": "Port",
        "metadata": {
            "name": meta["name"], "namespace": meta["namespace"],
            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"],
                                 "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": {"subnet": subnet, "macAddress": alloc.mac, "fixedIPs": [{"ipAddress": alloc.ip, "subnet": subnet}],
                 "podName": meta["name"], "podUID": meta["uid"], "nodeName": spec.get("nodeName") or ""},
        "status": {"phase": "Active"},
    }


def subnet_object(record: SubnetRecord, allocated: int) -> Obj:
    return {"apiVersion": PORT_API_VERSION, "kind": "Subnet",
            "metadata": {"name": record.name, "namespace": record.namespace},
            "spec": {"cidr": record.cidr, "gateway": record.gateway},
            "status": {"allocated": allocated}}


@dataclass
class ControllerStats:
    ports_created: int = 0
    ports_deleted: int = 0
    annotations_written: int = 0


class NetworkController:
    """Run with ``await controller.run()`` (until cancelled); see the module docstring."""

    def __init__(self, client: Client, *, pod_cidr: str = DEFAULT_POD_CIDR, block_prefix: int = DEFAULT_BLOCK_PREFIX,
                 ipam: IPAM | None = None, workers: int = 256, status_interval: float = 1.0) -> None:
        self.client = client
        self.ipam = ipam or IPAM(pod_cidr, block_prefix)
        self.workers = workers
        self.status_interval = status_interval
        self.queue = WorkQueue()
        self.stats = ControllerStats()
        self.pods = Informer(client, PODS, field_selector="spec.nodeName!=")
        self.port_informer = Informer(client, PORTS)
        self.subnet_informer = Informer(client, SUBNETS)
        self.pods.add_handlers(self._on_pod, lambda old, new: self._on_pod(new), self._on_pod_deleted)
        self.port_informer.add_handlers(self._on_port, lambda old, new: self._on_port(new), self._on_port_deleted)
        self.subnet_informer.add_handlers(on_delete=self._on_subnet_deleted)
        #: what the API holds, from the informer and from our own writes (whichever is newer)
        self.ports: dict[str, PortState] = {}
        #: pod key -> pod UID holding an IPAM allocation
        self.leases: dict[str, str] = {}
        self._annotations: dict[str, str] = {}
        #: subnet name -> the creation of its Subnet object (done for restored ones)
        self._subnets: dict[str, asyncio.Future[None]] = {}
        self._subnet_records: dict[str, SubnetRecord] = {}
        self._subnet_usage: Counter[str] = Counter()
        self._namespace_usage: Counter[str] = Counter()
        self._background = Supervisor("network controller", logger=log)
        self._releasing: set[str] = set()  # pods whose port deletion is in flight
        self._dirty_subnets: set[str] = set()
        self._dirty = asyncio.Event()
        self._synced = asyncio.Event()

    # ---- running ----

    async def run(self) -> None:
        self._background.start(self.pods.run(), "network-pods")
        self._background.start(self.port_informer.run(), "network-ports")
        self._background.start(self.subnet_informer.run(), "network-subnets")
        try:
            for informer in (self.subnet_informer, self.port_informer, self.pods):
                await informer.wait_synced()
            await self._restore()
            self._synced.set()
            for key in set(self.pods.cache) | set(self.ports) | set(self.leases):
                self.queue.add(key)
            self._background.start(self._status_loop(), "network-subnet-status")
            await self.queue.run_workers(self._reconcile, self.workers)
        finally:
            subnets = list(self._subnets.values())
            for task in subnets:
                task.cancel()
            await self._background.stop()
            await asyncio.gather(*subnets, return_exceptions=True)

    async def wait_synced(self) -> None:
        """Until the IPAM is rebuilt from the API and the work queue is filled."""
        await self._synced.wait()

    async def _restore(self) -> None:
        subnets = [_subnet_record(s) for s in self.subnet_informer.cache.values()]
        ports = {key: PortState.from_obj(p) for key, p in self.port_informer.cache.items()}
        self.ports.update({k: v for k, v in ports.items() if k not in self.ports or self.ports[k].rv < v.rv})
        candidates = {key: p for key, p in self.ports.items() if p.pod_uid and p.ip and p.mac and p.subnet}
        subnets = self._usable_subnets(subnets)
        rejected = {r.port.owner for r in self.ipam.restore(subnets, [p.record() for p in candidates.values()])}
        loop = asyncio.get_running_loop()
        for record in subnets:
            done: asyncio.Future[None] = loop.create_future()
            done.set_result(None)
            self._subnets[record.name] = done
            self._subnet_records[record.name] = record
        self.leases = {key: p.pod_uid for key, p in candidates.items() if p.pod_uid not in rejected}
        self._subnet_usage = Counter(candidates[key].subnet for key in self.leases)
        self._namespace_usage = Counter(key.split("/", 1)[0] for key in self.leases)
        log.info("network: restored %d subnets and %d ports (%d rejected)", len(subnets), len(self.leases), len(rejected))

    def _usable_subnets(self, subnets: list[SubnetRecord]) -> list[SubnetRecord]:
        """The subnets the IPAM accepts; a bad Subnet object (outside the pod range,
        overlapping another) is logged and left alone instead of stopping the controller."""
        try:
            self.ipam.restore(subnets, [])
            return subnets
        except ValueError:
            pass
        usable: list[SubnetRecord] = []
        for record in sorted(subnets, key=lambda r: (r.namespace, r.name)):
            try:
                self.ipam.restore([*usable, record], [])
                usable.append(record)
            except ValueError as exc:
                log.error("network: ignoring subnet %s/%s: %s", record.namespace, record.name, exc)
        return usable

    # ---- informer handlers: enqueue only ----

    def _on_pod(self, pod: Obj) -> None:
        if self._needs_work(pod):
            self.queue.add(object_key(pod))

    def _on_pod_deleted(self, pod: Obj) -> None:
        self.queue.add(object_key(pod))

    def _on_port(self, port: Obj) -> None:
        key = object_key(port)
        state = PortState.from_obj(port)
        current = self.ports.get(key)
        if current is not None and current.rv >= state.rv:
            return  # known already: our own write coming back
        self.ports[key] = state
        pod = self.pods.cache.get(key)
        if pod is None or self._needs_work(pod):
            self.queue.add(key)

    def _on_port_deleted(self, port: Obj) -> None:
        key = object_key(port)
        current = self.ports.get(key)
        if current is not None and current.uid == (port.get("metadata") or {}).get("uid"):
            del self.ports[key]
            self._annotations.pop(key, None)
        self.queue.add(key)

    def _needs_work(self, pod: Obj) -> bool:
        key = object_key(pod)
        port = self.ports.get(key)
        if not wants_port(pod):
            return port is not None or key in self.leases
        uid = (pod.get("metadata") or {}).get("uid")
        if port is None or port.pod_uid != uid or self.leases.get(key) != uid:
            return True
        written = ((pod.get("metadata") or {}).get("annotations") or {}).get(PORT_ANNOTATION)
        return written is None or written != self._annotations.get(key)

    # ---- reconcile ----

    async def _reconcile(self, key: str) -> None:
        pod = self.pods.cache.get(key)
        if pod is not None and wants_port(pod):
            await self.on_present(pod)
        else:
            await self.on_deleted(key)

    async def on_present(self, pod: Obj) -> None:
        """Make sure ``pod`` has its port and annotation (idempotent)."""
        meta = pod["metadata"]
        key, uid = f"{meta['namespace']}/{meta['name']}", meta["uid"]
        for _ in range(3):  # a create that finds an unknown port learns it and judges again
            port = self.ports.get(key)
            if port is not None and port.pod_uid != uid:  # left over from an earlier pod of that name
                await self._delete_port(key, port)
                port = None
            self._release_lease(key, keep=uid)
            alloc = self._allocate(key, meta["namespace"], uid)
            if port is not None and not port.matches(alloc):  # e.g. the IPAM refused it on restore
                await self._delete_port(key, port)
                port = None
            await self._subnet_ready(alloc.subnet)
            if port is None:
                port = await self._create_port(key, pod, alloc)
                if port is None:
                    continue
            await self._annotate(key, pod, port_annotation(meta["name"], port, alloc, meta["namespace"]))
            return
        raise RuntimeError(f"port {key} keeps changing under the controller")

    async def on_deleted(self, key: str) -> None:
        """The pod is gone (or finished): delete its port and free the address (idempotent)."""
        port = self.ports.get(key)
        if port is not None:
            self._releasing.add(key)  # the address is on its way out (see _on_subnet_deleted)
            try:
                await self._delete_port(key, port)
            finally:
                self._releasing.discard(key)
        self._release_lease(key)
        self._annotations.pop(key, None)

    # ---- steps ----

    def _allocate(self, key: str, namespace: str, uid: str) -> Allocation:
        alloc = self.ipam.allocate(namespace, uid)
        if self.leases.get(key) != uid:
            self.leases[key] = uid
            self._count(alloc.subnet, 1)
        return alloc

    def _release_lease(self, key: str, keep: str | None = None) -> None:
        owner = self.leases.get(key)
        if owner is None or owner == keep:
            return
        alloc = self.ipam.get(owner)
        self.ipam.release(owner)
        del self.leases[key]
        if alloc is not None:
            self._count(alloc.subnet, -1)
            self._maybe_release_namespace(alloc.subnet.namespace)

    def _count(self, subnet: SubnetRecord, delta: int) -> None:
        self._subnet_usage[subnet.name] += delta
        self._namespace_usage[subnet.namespace] += delta
        self._dirty_subnets.add(subnet.name)
        self._dirty.set()

    # ---- subnets deleted from the API (namespace deletion) ----

    def _on_subnet_deleted(self, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        name, namespace = meta.get("name") or "", meta.get("namespace") or ""
        record = self._subnet_records.get(name)
        future = self._subnets.get(name)
        if record is None or record.namespace != namespace or (future is not None and not future.done()):
            return
        self._subnets.pop(name, None)  # the next allocation in it creates it again
        if self._in_use(name):  # ports of live pods still point at it: put it back
            self._background.start(self._restore_subnet(record), f"restore subnet {record.name}")
        else:
            self._maybe_release_namespace(namespace)

    def _in_use(self, subnet: str) -> bool:
        """Whether an address of ``subnet`` belongs to a pod whose port is not being deleted.

        The namespace controller deletes pods and Subnets together, so a Subnet's
        deletion can arrive while the ports of its deleted pods are still going away;
        those addresses are about to be freed and must not bring the Subnet back.
        """
        for key, owner in self.leases.items():
            if key in self._releasing:
                continue
            alloc = self.ipam.get(owner)
            if alloc is not None and alloc.subnet.name == subnet:
                return True
        return False

    async def _restore_subnet(self, record: SubnetRecord) -> None:
        try:
            await self._subnet_ready(record)
        except ApiError as exc:  # 403: the namespace is terminating; its pods' deletion follows
            log.debug("network: subnet %s not recreated: %s", record.name, exc)

    def _maybe_release_namespace(self, namespace: str) -> None:
        """Give a namespace's blocks back once it has no address in use and no Subnet object left.

        Until then the blocks stay taken: a Subnet object that still exists must never
        overlap one created later.
        """
        if self._namespace_usage[namespace] > 0:
            return
        prefix = f"{namespace}/"
        if any(key.startswith(prefix) for key in self.subnet_informer.cache):
            return
        if any(not self._subnets[s.name].done() for s in self.ipam.subnets(namespace) if s.name in self._subnets):
            return  # being created right now
        for record in self.ipam.release_namespace(namespace):
            self._subnets.pop(record.name, None)
            self._subnet_records.pop(record.name, None)
            self._subnet_usage.pop(record.name, None)
            self._dirty_subnets.discard(record.name)
        self._namespace_usage.pop(namespace, None)

    async def _subnet_ready(self, record: SubnetRecord) -> None:
        """Wait until the Subnet object exists (created once, by whoever needs it first)."""
        task = self._subnets.get(record.name)
        if task is None or _failed(task):
            self._subnet_records[record.name] = record
            task = self._subnets[record.name] = asyncio.get_running_loop().create_task(self._create_subnet(record))
        await asyncio.shield(task)

    async def _create_subnet(self, record: SubnetRecord) -> None:
        try:
            await self.client.create(SUBNETS, subnet_object(record, self._subnet_usage[record.name]), record.namespace)
        except ApiError as exc:
            if exc.code != 409:
                raise
        log.info("network: subnet %s (%s) for namespace %s", record.name, record.cidr, record.namespace)

    async def _create_port(self, key: str, pod: Obj, alloc: Allocation) -> PortState | None:
        """The new port, or None when one already existed (it is then known for the next pass)."""
        meta = pod["metadata"]
        try:
            created = await self.client.create(PORTS, port_object(pod, alloc), meta["namespace"])
        except ApiError as exc:
            if exc.code != 409:
                raise
            try:
                self._remember(key, await self.client.get(PORTS, meta["name"], meta["namespace"]))
            except ApiError as again:
                if again.code != 404:
                    raise
            return None
        self.stats.ports_created += 1
        return self._remember(key, created)

    def _remember(self, key: str, port: Obj) -> PortState:
        state = PortState.from_obj(port)
        current = self.ports.get(key)
        if current is None or current.rv <= state.rv:
            self.ports[key] = state
        return state

    async def _delete_port(self, key: str, port: PortState) -> None:
        namespace, name = key.split("/", 1)
        try:
            await self.client.delete(PORTS, name, namespace, preconditions={"uid": port.uid})
            self.stats.ports_deleted += 1
        except ApiError as exc:
            if exc.code not in (404, 409):  # 409: the uid differs, someone replaced it
                raise
        if self.ports.get(key) is port or (key in self.ports and self.ports[key].uid == port.uid):
            del self.ports[key]
        self._annotations.pop(key, None)

    async def _annotate(self, key: str, pod: Obj, value: str) -> None:
        meta = pod["metadata"]
        self._annotations[key] = value
        if (meta.get("annotations") or {}).get(PORT_ANNOTATION) == value:
            return
        patch = {"metadata": {"uid": meta["uid"], "annotations": {PORT_ANNOTATION: value}}}
        try:
            await self.client.patch(PODS, meta["name"], patch, meta["namespace"])
        except ApiError as exc:
            if exc.code not in (404, 409):  # gone or replaced: its DELETED event is queued
                raise
            return
        self.stats.annotations_written += 1

    # ---- Subnet status ----

    async def _status_loop(self) -> None:
        """Write ``status.allocated`` of changed subnets, at most once per interval."""
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self.status_interval)
            self._dirty.clear()
            dirty, self._dirty_subnets = self._dirty_subnets, set()
            await asyncio.gather(*(self._write_usage(name) for name in dirty))

    async def _write_usage(self, name: str) -> None:
        task, record = self._subnets.get(name), self._subnet_records.get(name)
        if record is None or task is None:
            return
        if not task.done() or _failed(task):
            self._dirty_subnets.add(name)  # not created yet: next round
            self._dirty.set()
            return
        try:
            await self.client.patch(SUBNETS, name, {"status": {"allocated": self._subnet_usage[name]}}, record.namespace)
        except ApiError as exc:
            log.debug("network: subnet %s status not written: %s", name, exc)

    def allocated(self) -> dict[str, int]:
        """Addresses in use per subnet (what ``Subnet.status.allocated`` converges to)."""
        return {k: v for k, v in self._subnet_usage.items() if v}


def _failed(fut: asyncio.Future[None]) -> bool:
    return fut.done() and (fut.cancelled() or fut.exception() is not None)


def _subnet_record(obj: Obj) -> SubnetRecord:
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    cidr = str(spec.get("cidr") or "")
    gateway = spec.get("gateway")
    if not gateway:  # optional in the schema: the first host address, as the IPAM chooses
        try:
            gateway = str(ipaddress.ip_network(cidr, strict=False).network_address + 1)
        except ValueError:
            gateway = ""  # the IPAM rejects the subnet with a clear message
    return SubnetRecord(meta.get("name") or "", meta.get("namespace") or "", cidr, str(gateway))
