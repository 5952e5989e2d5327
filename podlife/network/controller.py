"""The network controller: one Port per scheduled pod, as Kuryr-Kubernetes' controller does.

What it watches
---------------
- **Pods** bound to a node (field selector ``spec.nodeName!=``). Kuryr creates a
  Neutron port as soon as it sees a pod; podlife waits until the pod is
  scheduled, so that the port records its node (``binding:host_id``).
- **Ports** (``network.podlife.io/v1``): its own objects, so that it knows what
  exists, notices a port deleted behind its back, and collects ports whose pod
  is gone.
- **Subnets**: listed at start (the IPAM is rebuilt from them) and watched for
  deletions (a namespace going away deletes its Subnets).

What it writes
--------------
For a pod that is bound, not finished and not on the host network:

1. an address from :class:`~podlife.network.ipam.IPAM` (owner: the pod's UID) in
   its *group*'s subnet -- the pod's namespace (``--subnet-per namespace``, Kuryr's
   namespace-subnet model, the default) or its node (``--subnet-per node``: one
   block per node, the group is ``node.<node>``) -- and on first use of that subnet
   the ``Subnet`` object (``<group>-<k>``; a namespace's in that namespace, a node's
   in ``kube-system`` with ``spec.node``), ``spec: {cidr, gateway, allocationPools}``;
2. a ``Port`` named after the pod, in its namespace, with Neutron's port attributes
   (``adminStateUp``, ``securityGroups``, ``deviceOwner: podlife:container``,
   ``deviceID`` = pod UID, ``hostID`` = node, ``vifType: veth``, ``vnicType: normal``,
   ``vifDetails``), owned by the pod (``controller: true``) so that garbage
   collection would remove it with the pod too. The API server creates it ``DOWN``;
   the node's CNI plugin patches ``ACTIVE`` through ``ports/status`` once the veth
   is plugged. The controller only ever creates and deletes ports, and ``status`` is
   a subresource, so nothing it does can reset that;
3. in ONE patch of the pod, two annotations, each a JSON document in Neutron's
   shape: ``network.podlife.io/port`` (``id``, ``name``, ``mac_address``,
   ``fixed_ips``, ``subnet: {id, cidr, gateway_ip}``, ``binding:*``, ...), which the
   CNI step on the node reads (:mod:`podlife.node.cni`), and
   ``network.podlife.io/subnet`` (``cidr``, ``gateway_ip``, ``allocation_pools``,
   ``dns_nameservers``, ...). Until they are written the CNI step fails and the
   kubelet retries: the race Kuryr's documentation describes.

When the pod is deleted (or finishes, as Kuryr releases completed pods' ports) the
port is deleted and the address freed. ``Subnet.status`` (``used`` by pods'
ports, ``reserved`` by the port pool, ``allocated`` = both, ``free``) is written
through ``subnets/status`` at most once a second per subnet, so it does not double
the writes per pod.

Port pools
----------
Kuryr's ``vif_pool`` keeps ready-made Neutron ports per pool so a new pod need not
wait for Neutron. Here a port must be *named after its pod*, and Kubernetes objects
cannot be renamed, so a pre-created Port object could only be copied and deleted --
two more writes per pod, slower than no pool. podlife's pool therefore reserves
what can be prepared ahead without an object: an address and a MAC in the IPAM per
group (owner ``pool/<group>/<n>``), and the Subnet object they live in (a new block
is opened and its Subnet written when the pool spills into it, not when a pod
does). ``--port-pool-size N`` keeps N reservations per group; a pod takes the
oldest (:meth:`IPAM.transfer`) and the pool is refilled at once (an in-memory
step). The reservations show as ``status.reserved`` of the Subnets. They are not
persisted: after a restart they are simply free again, and the pool is refilled
for every group that has a Subnet. When a namespace goes (its pods and Subnets
deleted), its pool is drained and its blocks released.

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
pod creates; an idle worker costs nothing). Every IPAM step is synchronous (no
``await`` between looking for a free address and taking it), so concurrent
workers can never be handed the same address.

*Restart.* The IPAM has no state of its own: on start the controller lists the
Subnets, waits for its Port informer, and rebuilds the IPAM from them
(:meth:`IPAM.restore`), so every pod keeps its address. It then queues every
port and pod: ports whose pod is gone (or was replaced: UID mismatch) are
deleted, ports the IPAM refused are replaced, pods without a port get one. A pod
that already holds an address keeps it even when ``--subnet-per`` changed.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from ..client.base import PODS, PORTS, SUBNETS, Client, Obj
from ..client.informer import Informer, object_key
from ..client.workqueue import WorkQueue
from ..machinery.constants import PORT_ANNOTATION, SUBNET_ANNOTATION
from ..machinery.errors import ApiError
from ..machinery.tasks import Supervisor
from .ipam import (
    DEFAULT_BLOCK_PREFIX,
    DEFAULT_POD_CIDR,
    IPAM,
    Allocation,
    ExhaustedError,
    PortRecord,
    SubnetRecord,
    allocation_pools,
)

log = logging.getLogger(__name__)

PORT_API_VERSION = "network.podlife.io/v1"
#: Kuryr's is ``kuryr:container`` (compute ports are ``compute:<zone>``)
DEVICE_OWNER = "podlife:container"
VIF_TYPE = "veth"
VNIC_TYPE = "normal"
VIF_DETAILS = {"port_filter": True}
TERMINAL_PHASES = ("Succeeded", "Failed")
SUBNET_PER = ("namespace", "node")
#: node groups' Subnet objects live here (a Subnet is namespaced; a node is not)
NODE_SUBNET_NAMESPACE = "kube-system"
NODE_GROUP_PREFIX = "node."  # a namespace name has no dot, so a node group never clashes with one
POOL_OWNER_PREFIX = "pool/"


def node_group(node: str) -> str:
    return f"{NODE_GROUP_PREFIX}{node}"


def subnet_home(group: str) -> str:
    """The namespace a group's Subnet objects live in."""
    return NODE_SUBNET_NAMESPACE if group.startswith(NODE_GROUP_PREFIX) else group


def security_groups(namespace: str) -> list[str]:
    """The namespace's default security group (Kuryr's namespace security group)."""
    return [f"{namespace}-default"]


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


def _dumps(doc: Obj) -> str:
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode()


def port_annotation(port_name: str, port: PortState, alloc: Allocation, namespace: str, status: str = "DOWN") -> str:
    """The ``network.podlife.io/port`` value: the port as Neutron would describe it."""
    subnet = alloc.subnet
    doc = {
        "id": port.uid,
        "name": port_name,
        "network_id": subnet.namespace,
        "tenant_id": namespace,
        "mac_address": alloc.mac,
        "fixed_ips": [{"ip_address": alloc.ip, "subnet_id": subnet.name}],
        "subnet": {"id": subnet.name, "cidr": subnet.cidr, "gateway_ip": subnet.gateway},
        "admin_state_up": True,
        "port_security_enabled": True,
        "security_groups": security_groups(namespace),
        "allowed_address_pairs": [],
        "device_id": port.pod_uid,
        "device_owner": DEVICE_OWNER,
        "binding:host_id": port.node,
        "binding:vif_type": VIF_TYPE,
        "binding:vnic_type": VNIC_TYPE,
        "binding:vif_details": VIF_DETAILS,
        "status": status,
    }
    return _dumps(doc)


@functools.lru_cache(maxsize=4096)
def subnet_annotation(record: SubnetRecord, dns_nameservers: tuple[str, ...]) -> str:
    """The ``network.podlife.io/subnet`` value: the port's subnet as Neutron would describe it (the
    same text for every pod of the subnet: computed once per subnet, not per pod)."""
    doc = {
        "id": record.name,
        "name": record.name,
        "network_id": record.namespace,
        "cidr": record.cidr,
        "gateway_ip": record.gateway,
        "allocation_pools": [{"start": a, "end": b} for a, b in allocation_pools(record)],
        "ip_version": ipaddress.ip_network(record.cidr, strict=False).version,
        "enable_dhcp": False,
        "dns_nameservers": list(dns_nameservers),
        "host_routes": [],
    }
    return _dumps(doc)


def port_object(pod: Obj, alloc: Allocation) -> Obj:
    """The Port for ``pod`` (its status is the server's: ``DOWN`` on create)."""
    meta, spec = pod["metadata"], pod.get("spec") or {}
    subnet, node = alloc.subnet.name, spec.get("nodeName") or ""
    return {
        "apiVersion": PORT_API_VERSION, "kind": "Port",
        "metadata": {
            "name": meta["name"], "namespace": meta["namespace"],
            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"],
                                 "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": {"subnet": subnet, "macAddress": alloc.mac, "fixedIPs": [{"ipAddress": alloc.ip, "subnet": subnet}],
                 "podName": meta["name"], "podUID": meta["uid"], "nodeName": node,
                 "adminStateUp": True, "securityGroups": security_groups(meta["namespace"]),
                 "deviceOwner": DEVICE_OWNER, "deviceID": meta["uid"], "hostID": node,
                 "vifType": VIF_TYPE, "vnicType": VNIC_TYPE, "vifDetails": dict(VIF_DETAILS)},
    }


def subnet_object(record: SubnetRecord) -> Obj:
    spec: Obj = {"cidr": record.cidr, "gateway": record.gateway,
                 "allocationPools": [{"start": a, "end": b} for a, b in allocation_pools(record)]}
    if record.namespace.startswith(NODE_GROUP_PREFIX):
        spec["node"] = record.namespace[len(NODE_GROUP_PREFIX):]
    return {"apiVersion": PORT_API_VERSION, "kind": "Subnet",
            "metadata": {"name": record.name, "namespace": subnet_home(record.namespace)}, "spec": spec}


def subnet_status(used: int, held: int, capacity: int) -> Obj:
    """``used`` by pods, ``reserved`` by the pool, ``allocated`` = both, ``free`` = the rest."""
    return {"allocated": held, "used": used, "reserved": max(0, held - used), "free": max(0, capacity - held)}


@dataclass
class ControllerStats:
    ports_created: int = 0
    ports_deleted: int = 0
    annotations_written: int = 0
    pool_hits: int = 0
    pool_misses: int = 0


class NetworkController:
    """Run with ``await controller.run()`` (until cancelled); see the module docstring."""

    def __init__(self, client: Client, *, pod_cidr: str = DEFAULT_POD_CIDR, block_prefix: int = DEFAULT_BLOCK_PREFIX,
                 ipam: IPAM | None = None, workers: int = 256, status_interval: float = 1.0,
                 subnet_per: str = "namespace", port_pool_size: int = 0, dns_nameservers: Sequence[str] = ()) -> None:
        if subnet_per not in SUBNET_PER:
            raise ValueError(f"subnet_per must be one of {', '.join(SUBNET_PER)}, got {subnet_per!r}")
        if port_pool_size < 0:
            raise ValueError("port_pool_size must be >= 0")
        self.client = client
        self.ipam = ipam or IPAM(pod_cidr, block_prefix)
        self.workers = workers
        self.status_interval = status_interval
        self.subnet_per = subnet_per
        self.port_pool_size = port_pool_size
        self.dns_nameservers = tuple(dns_nameservers)
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
        #: group -> IPAM owners of the pool's reservations, oldest first
        self.pools: dict[str, deque[str]] = {}
        self._pool_seq = 0
        self._annotations: dict[str, tuple[str, str]] = {}
        #: subnet name -> the creation of its Subnet object (done for restored ones)
        self._subnets: dict[str, asyncio.Future[None]] = {}
        self._subnet_records: dict[str, SubnetRecord] = {}
        self._subnet_usage: Counter[str] = Counter()
        self._namespace_usage: Counter[str] = Counter()  # per group
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
        self._namespace_usage = Counter(alloc.subnet.namespace for uid in self.leases.values()
                                        if (alloc := self.ipam.get(uid)) is not None)
        self.pools = {}
        self._dirty_subnets.update(r.name for r in subnets)  # status has new fields since older versions
        self._dirty.set()
        for group in sorted({r.namespace for r in subnets}):
            self._refill(group)
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
                log.error("network: ignoring subnet %s/%s: %s", subnet_home(record.namespace), record.name, exc)
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
        written = ((pod.get("metadata") or {}).get("annotations") or {})
        wanted = self._annotations.get(key)
        return wanted is None or (written.get(PORT_ANNOTATION), written.get(SUBNET_ANNOTATION)) != wanted

    # ---- reconcile ----

    async def _reconcile(self, key: str) -> None:
        pod = self.pods.cache.get(key)
        if pod is not None and wants_port(pod):
            await self.on_present(pod)
        else:
            await self.on_deleted(key)

    def group_of(self, pod: Obj) -> str:
        """The IPAM group (and port pool) of a pod: its namespace, or its node."""
        if self.subnet_per == "node":
            return node_group((pod.get("spec") or {}).get("nodeName") or "")
        return pod["metadata"]["namespace"]

    async def on_present(self, pod: Obj) -> None:
        """Make sure ``pod`` has its port and annotations (idempotent)."""
        meta = pod["metadata"]
        key, uid = f"{meta['namespace']}/{meta['name']}", meta["uid"]
        for _ in range(3):  # a create that finds an unknown port learns it and judges again
            port = self.ports.get(key)
            if port is not None and port.pod_uid != uid:  # left over from an earlier pod of that name
                await self._delete_port(key, port)
                port = None
            self._release_lease(key, keep=uid)
            alloc = self._allocate(key, self.group_of(pod), uid)
            if port is not None and not port.matches(alloc):  # e.g. the IPAM refused it on restore
                await self._delete_port(key, port)
                port = None
            await self._subnet_ready(alloc.subnet)
            if port is None:
                port = await self._create_port(key, pod, alloc)
                if port is None:
                    continue
            await self._annotate(key, pod, (port_annotation(meta["name"], port, alloc, meta["namespace"]),
                                            subnet_annotation(alloc.subnet, self.dns_nameservers)))
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

    def _allocate(self, key: str, group: str, uid: str) -> Allocation:
        """The pod's address: the one it holds (even from another group), a pool's, or a new one."""
        alloc = self.ipam.get(uid)
        if alloc is None:
            alloc = self._take_from_pool(group, uid) or self.ipam.allocate(group, uid)
            self._refill(group)
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
        self._mark_dirty(subnet.name)

    def _mark_dirty(self, subnet: str) -> None:
        self._dirty_subnets.add(subnet)
        self._dirty.set()

    # ---- port pools ----

    def _take_from_pool(self, group: str, uid: str) -> Allocation | None:
        pool = self.pools.get(group)
        while pool:
            alloc = self.ipam.transfer(pool.popleft(), uid)
            if alloc is not None:
                self.stats.pool_hits += 1
                return alloc
        if self.port_pool_size:
            self.stats.pool_misses += 1
        return None

    def _refill(self, group: str) -> None:
        """Top ``group``'s pool up to ``port_pool_size`` reservations (synchronous: IPAM only;
        a Subnet object the pool opens is created in the background)."""
        if not self.port_pool_size:
            return
        pool = self.pools.setdefault(group, deque())
        while len(pool) < self.port_pool_size:
            self._pool_seq += 1
            owner = f"{POOL_OWNER_PREFIX}{group}/{self._pool_seq}"
            try:
                alloc = self.ipam.allocate(group, owner)
            except ExhaustedError:
                log.warning("network: port pool %s: the pod range is full", group)
                return
            pool.append(owner)
            self._mark_dirty(alloc.subnet.name)
            self._subnet_task(alloc.subnet)

    def _drain_pool(self, group: str) -> None:
        for owner in self.pools.pop(group, deque()):
            alloc = self.ipam.get(owner)
            self.ipam.release(owner)
            if alloc is not None:
                self._mark_dirty(alloc.subnet.name)

    def pool_addresses(self, group: str) -> list[str]:
        """The addresses ``group``'s pool holds, oldest first."""
        return [alloc.ip for owner in self.pools.get(group, ()) if (alloc := self.ipam.get(owner)) is not None]

    # ---- subnets deleted from the API (namespace deletion) ----

    def _on_subnet_deleted(self, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        name, namespace = meta.get("name") or "", meta.get("namespace") or ""
        record = self._subnet_records.get(name)
        future = self._subnets.get(name)
        if record is None or subnet_home(record.namespace) != namespace or (future is not None and not future.done()):
            return
        self._subnets.pop(name, None)  # the next allocation in it creates it again
        if self._in_use(name):  # ports of live pods still point at it: put it back
            self._background.start(self._restore_subnet(record), f"restore subnet {record.name}")
        else:
            self._maybe_release_namespace(record.namespace)

    def _in_use(self, subnet: str) -> bool:
        """Whether an address of ``subnet`` belongs to a pod whose port is not being deleted.

        The namespace controller deletes pods and Subnets together, so a Subnet's
        deletion can arrive while the ports of its deleted pods are still going away;
        those addresses are about to be freed and must not bring the Subnet back.
        The pool's reservations do not count: they are dropped with the namespace.
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

    def _maybe_release_namespace(self, group: str) -> None:
        """Give a group's blocks back once no pod uses an address of it and none of its
        Subnet objects is left; its pool goes with them.

        Until then the blocks stay taken: a Subnet object that still exists must never
        overlap one created later.
        """
        if self._namespace_usage[group] > 0:
            return
        records = self.ipam.subnets(group)
        home = subnet_home(group)
        if any(f"{home}/{s.name}" in self.subnet_informer.cache for s in records):
            return
        if any(not self._subnets[s.name].done() for s in records if s.name in self._subnets):
            return  # being created right now
        self._drain_pool(group)
        for record in self.ipam.release_namespace(group):
            self._subnets.pop(record.name, None)
            self._subnet_records.pop(record.name, None)
            self._subnet_usage.pop(record.name, None)
            self._dirty_subnets.discard(record.name)
        self._namespace_usage.pop(group, None)

    def _subnet_task(self, record: SubnetRecord) -> asyncio.Future[None]:
        """The creation of the Subnet object (started once, by whoever needs it first)."""
        task = self._subnets.get(record.name)
        if task is None or _failed(task):
            self._subnet_records[record.name] = record
            task = self._subnets[record.name] = asyncio.get_running_loop().create_task(self._create_subnet(record))
            task.add_done_callback(_retrieve)
        return task

    async def _subnet_ready(self, record: SubnetRecord) -> None:
        """Wait until the Subnet object exists."""
        await asyncio.shield(self._subnet_task(record))

    async def _create_subnet(self, record: SubnetRecord) -> None:
        try:
            await self.client.create(SUBNETS, subnet_object(record), subnet_home(record.namespace))
        except ApiError as exc:
            if exc.code != 409:
                raise
        log.info("network: subnet %s (%s) for %s", record.name, record.cidr, record.namespace)

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

    async def _annotate(self, key: str, pod: Obj, values: tuple[str, str]) -> None:
        """Both annotations in one patch (one write per pod)."""
        meta = pod["metadata"]
        self._annotations[key] = values
        current = meta.get("annotations") or {}
        if (current.get(PORT_ANNOTATION), current.get(SUBNET_ANNOTATION)) == values:
            return
        annotations = {PORT_ANNOTATION: values[0], SUBNET_ANNOTATION: values[1]}
        patch = {"metadata": {"uid": meta["uid"], "annotations": annotations}}
        try:
            await self.client.patch(PODS, meta["name"], patch, meta["namespace"])
        except ApiError as exc:
            if exc.code not in (404, 409):  # gone or replaced: its DELETED event is queued
                raise
            return
        self.stats.annotations_written += 1

    # ---- Subnet status ----

    async def _status_loop(self) -> None:
        """Write the status of changed subnets, at most once per interval."""
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self.status_interval)
            self._dirty.clear()
            dirty, self._dirty_subnets = self._dirty_subnets, set()
            await asyncio.gather(*(self._write_usage(name) for name in dirty))

    async def _write_usage(self, name: str) -> None:
        task, record, usage = self._subnets.get(name), self._subnet_records.get(name), self.ipam.usage(name)
        if record is None or task is None or usage is None:
            return
        if not task.done() or _failed(task):
            self._mark_dirty(name)  # not created yet: next round
            return
        status = subnet_status(self._subnet_usage[name], *usage)
        try:
            await self.client.patch(SUBNETS, name, {"status": status}, subnet_home(record.namespace), subresource="status")
        except ApiError as exc:
            log.debug("network: subnet %s status not written: %s", name, exc)

    def allocated(self) -> dict[str, int]:
        """Addresses pods use per subnet (what ``Subnet.status.used`` converges to)."""
        return {k: v for k, v in self._subnet_usage.items() if v}


def _failed(fut: asyncio.Future[None]) -> bool:
    return fut.done() and (fut.cancelled() or fut.exception() is not None)


def _retrieve(fut: asyncio.Future[None]) -> None:
    """Mark a background Subnet creation's failure as seen (whoever needs it retries)."""
    if not fut.cancelled() and fut.exception() is not None:
        log.debug("network: subnet creation failed: %s", fut.exception())


def _subnet_record(obj: Obj) -> SubnetRecord:
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    cidr = str(spec.get("cidr") or "")
    gateway = spec.get("gateway")
    if not gateway:  # optional in the schema: the first host address, as the IPAM chooses
        try:
            gateway = str(ipaddress.ip_network(cidr, strict=False).network_address + 1)
        except ValueError:
            gateway = ""  # the IPAM rejects the subnet with a clear message
    node = spec.get("node")
    group = node_group(str(node)) if node else meta.get("namespace") or ""
    return SubnetRecord(meta.get("name") or "", group, cidr, str(gateway))
