"""In-memory IP address management for pods and services (Neutron-style).

Design
------
The pod range (default ``10.244.0.0/16``) is cut into equal *blocks* of
``block_prefix`` bits (default /24). A namespace owns one or more blocks, each
exposed as a :class:`SubnetRecord` named ``<namespace>-<k>`` (``default-0``,
``default-1``, ...). In a subnet the first host address (``.1``) is the
gateway, and pods get addresses from ``.2`` upward, lowest free first. The
network and broadcast addresses are never handed out. When every subnet of a
namespace is full, the namespace gets the lowest free block as an extra
subnet, so one namespace can hold 10,000 pods while other namespaces still get
their own subnets. This follows Kuryr-Kubernetes, where each namespace has its
own Neutron subnet and each pod has a Neutron port. The "namespace" is only a
group key: with subnets per node the controller passes ``node.<node>`` (a
namespace name has no dot, so the two kinds of group never clash).

Port pools reserve addresses under an owner of their own and hand them to a pod
with :meth:`IPAM.transfer` (same address, MAC and subnet, new owner), so a
reservation is never free and taken at the same time.

Why it works this way:

* **Fast.** Every pool of addresses (and the pool of blocks) is an
  :class:`_OffsetPool`: a min-heap of released offsets plus a high-water mark
  that has never been handed out. Taking the lowest free offset or giving one
  back costs O(log n). The heap only holds released offsets, so a /12 service
  range costs no memory until it is used. Each namespace keeps a heap of its
  subnets that still have room, so ``allocate`` never scans full subnets.
* **Idempotent.** ``owner`` is the pod UID. Calling ``allocate`` again for
  the same owner returns the *same* :class:`Allocation` object, including
  ``new_subnet``. A controller that crashed or failed between allocating and
  persisting can retry without leaking an address. It must therefore create
  Subnet objects as "create, ignore AlreadyExists".
* **Restartable.** The allocator has no persistent state of its own. The
  Subnet and Port objects in the API server are the source of truth, and
  :meth:`IPAM.restore` rebuilds everything from them. Subnets that are not
  valid raise ``ValueError``: a subnet outside the pod range would escape the
  host's ``unreachable`` guard routes (see :mod:`podlife.network.hostroutes`),
  so it must not be used silently. Ports that do not fit (unknown subnet,
  address taken twice, ...) are returned to the caller, who decides what to
  do, rather than stopping the controller.
* **MAC addresses** use the OpenStack Neutron prefix ``fa:16:3e`` (locally
  administered, unicast). The low 24 bits are *derived* from the owner:
  ``sha256(owner)`` (then ``sha256(owner + "/1")``, ``"/2"`` ... while the
  result is already in use). Deriving the MAC instead of picking it at random
  keeps a retried allocation after a crash on the same MAC, and makes tests
  reproducible. MACs are unique across the whole cluster, which is stricter
  than Neutron's per-network rule.

:class:`ClusterIPAllocator` does the same job for Service ClusterIPs
(default ``10.96.0.0/12``). The first host address (``10.96.0.1``) is kept for
the ``kubernetes`` Service and is only given out when asked for explicitly.
"""

from __future__ import annotations

import hashlib
import heapq
import ipaddress
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

DEFAULT_POD_CIDR = "10.244.0.0/16"
DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
DEFAULT_BLOCK_PREFIX = 24
MAC_PREFIX = "fa:16:3e"

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_SUBNET_INDEX_RE = re.compile(r"^(?P<ns>.+)-(?P<k>\d+)$")


class ExhaustedError(RuntimeError):
    """No address (or no block for a new subnet) is left."""


class AddressInUseError(ValueError):
    """A specific address was requested but another owner holds it."""


class SubnetInUseError(RuntimeError):
    """A subnet cannot be released while ports still use it."""


@dataclass(frozen=True, slots=True)
class SubnetRecord:
    """A namespace subnet, persisted by the controller as a ``Subnet`` object."""

    name: str
    namespace: str
    cidr: str
    gateway: str


@dataclass(frozen=True, slots=True)
class PortRecord:
    """A pod's port as persisted by the controller (a ``Port`` object)."""

    owner: str
    subnet: str
    ip: str
    mac: str


@dataclass(frozen=True, slots=True)
class Allocation:
    """The result of :meth:`IPAM.allocate`.

    ``new_subnet`` is True when this allocation created ``subnet``. The caller
    then has to persist the Subnet object before it writes the port.
    """

    subnet: SubnetRecord
    ip: str
    mac: str
    new_subnet: bool

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.subnet.cidr).prefixlen

    @property
    def ip_with_prefix(self) -> str:
        """The address in CIDR form (``10.244.0.2/24``), as the CNI step needs it."""
        return f"{self.ip}/{self.prefixlen}"


@dataclass(frozen=True, slots=True)
class RejectedPort:
    """A port that :meth:`IPAM.restore` could not take back, and why."""

    port: PortRecord
    reason: str


class _OffsetPool:
    """Hands out integer offsets in ``[first, last]``, always the lowest free one.

    Invariant: every offset below ``_next`` is either in use, reserved, or in
    ``_free``. ``_used`` may also hold offsets at or above ``_next``; those
    were taken explicitly with :meth:`take`, and the high-water scan skips
    them. ``_heap`` mirrors ``_free`` and may hold stale entries, which are
    skipped when popped.
    """

    __slots__ = ("_free", "_heap", "_next", "_used", "capacity", "first", "last", "reserved")

    def __init__(self, first: int, last: int, reserved: Iterable[int] = ()) -> None:
        if last < first:
            raise ValueError(f"empty offset range [{first}, {last}]")
        self.first = first
        self.last = last
        self.reserved = frozenset(o for o in reserved if first <= o <= last)
        self.capacity = last - first + 1 - len(self.reserved)
        self._used: set[int] = set()
        self._free: set[int] = set()
        self._heap: list[int] = []
        self._next = first

    def __len__(self) -> int:
        return len(self._used)

    def __contains__(self, offset: int) -> bool:
        return offset in self._used

    @property
    def full(self) -> bool:
        return len(self._used) >= self.capacity

    def take_lowest(self) -> int | None:
        """Take the lowest free offset, or return None when the pool is full."""
        while self._heap:
            offset = heapq.heappop(self._heap)
            if offset in self._free:
                self._free.discard(offset)
                self._used.add(offset)
                return offset
        while self._next <= self.last:
            offset = self._next
            self._next += 1
            if offset not in self._used and offset not in self.reserved:
                self._used.add(offset)
                return offset
        return None

    def take(self, offset: int) -> bool:
        """Take a specific offset; False if it is out of range, reserved or used."""
        if not self.first <= offset <= self.last or offset in self.reserved:
            return False
        if offset in self._used:
            return False
        if offset < self._next:
            self._free.discard(offset)  # its heap entry turns stale
            self._compact()
        self._used.add(offset)
        return True

    def give(self, offset: int) -> None:
        """Return an offset; returning one that is not in use does nothing."""
        if offset not in self._used:
            return
        self._used.discard(offset)
        if offset < self._next:
            self._free.add(offset)
            heapq.heappush(self._heap, offset)

    def _compact(self) -> None:
        if len(self._heap) > 2 * len(self._free) + 64:
            self._heap = sorted(self._free)


@dataclass(slots=True, eq=False)
class _Subnet:
    record: SubnetRecord
    network: IPNetwork
    pool: _OffsetPool
    order: tuple[int, str]
    blocks: tuple[int, ...]
    in_heap: bool = False
    live: bool = True

    def address(self, offset: int) -> str:
        return str(self.network.network_address + offset)

    def offset_of(self, ip: str) -> int | None:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        if addr not in self.network:
            return None
        return int(addr) - int(self.network.network_address)


@dataclass(slots=True)
class _Namespace:
    subnets: dict[str, _Subnet] = field(default_factory=dict)
    heap: list[tuple[tuple[int, str], str]] = field(default_factory=list)


@dataclass(slots=True)
class _Lease:
    subnet: _Subnet
    offset: int
    allocation: Allocation


def allocation_pools(record: SubnetRecord) -> list[tuple[str, str]]:
    """The address ranges pods get addresses from: the host addresses but the gateway
    (Neutron's ``allocation_pools``), e.g. ``[("10.244.0.2", "10.244.0.254")]``."""
    network = ipaddress.ip_network(record.cidr, strict=False)
    first, last = _host_offsets(network)
    gateway = int(ipaddress.ip_address(record.gateway)) - int(network.network_address)
    spans = [(first, gateway - 1), (gateway + 1, last)] if first <= gateway <= last else [(first, last)]
    base = network.network_address
    return [(str(base + lo), str(base + hi)) for lo, hi in spans if lo <= hi]


def _host_offsets(network: IPNetwork) -> tuple[int, int]:
    """First and last offsets a host may use (no network/broadcast address)."""
    return 1, network.num_addresses - 2


def _subnet_order(name: str, namespace: str) -> tuple[int, str]:
    match = _SUBNET_INDEX_RE.match(name)
    if match and match.group("ns") == namespace:
        return int(match.group("k")), name
    return 1 << 62, name


class MacAllocator:
    """Unique ``fa:16:3e:xx:xx:xx`` MACs derived from the owner (see module doc)."""

    def __init__(self, prefix: str = MAC_PREFIX) -> None:
        self.prefix = prefix.lower()
        self._refs: dict[str, int] = {}

    def __contains__(self, mac: str) -> bool:
        return mac.lower() in self._refs

    def __len__(self) -> int:
        return len(self._refs)

    def candidate(self, owner: str, attempt: int = 0) -> str:
        seed = owner if attempt == 0 else f"{owner}/{attempt}"
        digest = hashlib.sha256(seed.encode()).digest()
        return f"{self.prefix}:{digest[0]:02x}:{digest[1]:02x}:{digest[2]:02x}"

    def allocate(self, owner: str) -> str:
        for attempt in range(1 << 16):
            mac = self.candidate(owner, attempt)
            if mac not in self._refs:
                self._refs[mac] = 1
                return mac
        raise ExhaustedError(f"no free MAC address under {self.prefix}")

    def hold(self, mac: str) -> None:
        """Mark an existing MAC as used (restore). Duplicates are counted."""
        mac = mac.lower()
        self._refs[mac] = self._refs.get(mac, 0) + 1

    def release(self, mac: str) -> None:
        mac = mac.lower()
        count = self._refs.get(mac, 0)
        if count <= 1:
            self._refs.pop(mac, None)
        else:
            self._refs[mac] = count - 1


class IPAM:
    """Per-namespace subnets and pod addresses; see the module docstring."""

    ExhaustedError = ExhaustedError
    SubnetInUseError = SubnetInUseError

    def __init__(self, pod_cidr: str = DEFAULT_POD_CIDR, block_prefix: int = DEFAULT_BLOCK_PREFIX) -> None:
        self.pod_network: IPNetwork = ipaddress.ip_network(pod_cidr, strict=True)
        max_prefix = self.pod_network.max_prefixlen - 2  # network, gateway, >=1 pod, broadcast
        if not self.pod_network.prefixlen <= block_prefix <= max_prefix:
            raise ValueError(
                f"block_prefix must be between /{self.pod_network.prefixlen} and /{max_prefix}, got /{block_prefix}"
            )
        self.block_prefix = block_prefix
        self._block_size = 1 << (self.pod_network.max_prefixlen - block_prefix)
        self._reset()

    # -- public API ---------------------------------------------------------

    def allocate(self, namespace: str, owner: str) -> Allocation:
        """Give ``owner`` (a pod UID) an address in one of ``namespace``'s subnets.

        Calling it again for the same owner returns the same Allocation.
        Raises :class:`ExhaustedError` when the pod range has no free block left.
        """
        if not namespace or not owner:
            raise ValueError("namespace and owner must be non-empty")
        lease = self._leases.get(owner)
        if lease is not None:
            if lease.subnet.record.namespace != namespace:
                raise ValueError(
                    f"owner {owner!r} already has an address in namespace {lease.subnet.record.namespace!r}"
                )
            return lease.allocation
        subnet, created = self._subnet_with_room(namespace)
        offset = subnet.pool.take_lowest()
        assert offset is not None, "subnet with room returned no address"
        if subnet.pool.full:
            heapq.heappop(self._namespaces[namespace].heap)  # its entry is the heap top
            subnet.in_heap = False
        allocation = Allocation(subnet.record, subnet.address(offset), self._macs.allocate(owner), created)
        self._leases[owner] = _Lease(subnet, offset, allocation)
        return allocation

    def release(self, owner: str) -> None:
        """Free ``owner``'s address and MAC. Unknown owners are ignored."""
        lease = self._leases.pop(owner, None)
        if lease is None:
            return
        subnet = lease.subnet
        subnet.pool.give(lease.offset)
        self._macs.release(lease.allocation.mac)
        if subnet.live and not subnet.in_heap:
            self._push_subnet(subnet)

    def get(self, owner: str) -> Allocation | None:
        lease = self._leases.get(owner)
        return lease.allocation if lease else None

    def transfer(self, owner: str, new_owner: str) -> Allocation | None:
        """Hand ``owner``'s address and MAC over to ``new_owner`` (a port pool's reservation
        taken by a pod). Returns the new owner's Allocation, or None when ``owner`` holds
        nothing. Raises ``ValueError`` if ``new_owner`` already holds an address.
        """
        if new_owner in self._leases:
            raise ValueError(f"owner {new_owner!r} already has an address")
        lease = self._leases.pop(owner, None)
        if lease is None:
            return None
        old = lease.allocation
        allocation = Allocation(old.subnet, old.ip, old.mac, False)
        self._leases[new_owner] = _Lease(lease.subnet, lease.offset, allocation)
        return allocation

    def usage(self, subnet: str) -> tuple[int, int] | None:
        """``(addresses held, addresses a subnet can hand out)`` of a live subnet, else None."""
        state = self._subnets_by_name.get(subnet)
        if state is None:
            return None
        return len(state.pool), state.pool.capacity

    def __len__(self) -> int:
        """The number of live allocations."""
        return len(self._leases)

    def subnets(self, namespace: str | None = None) -> list[SubnetRecord]:
        """Current subnets (of one namespace, or of all), in allocation order."""
        names = [namespace] if namespace is not None else sorted(self._namespaces)
        result: list[SubnetRecord] = []
        for ns in names:
            state = self._namespaces.get(ns)
            if state:
                result.extend(s.record for s in sorted(state.subnets.values(), key=lambda s: s.order))
        return result

    def release_namespace(self, namespace: str, force: bool = False) -> list[SubnetRecord]:
        """Remove all of ``namespace``'s subnets and free their blocks.

        Raises :class:`SubnetInUseError` while ports still use one of them,
        unless ``force`` is set; then those ports are dropped as well.
        Returns the removed subnets so the controller can delete the objects.
        """
        state = self._namespaces.get(namespace)
        if state is None:
            return []
        busy = [s.record.name for s in state.subnets.values() if len(s.pool)]
        if busy and not force:
            raise SubnetInUseError(f"subnets still have ports: {', '.join(sorted(busy))}")
        if busy:
            for owner in [o for o, lease in self._leases.items() if lease.subnet.record.namespace == namespace]:
                self.release(owner)
        removed = self.subnets(namespace)
        for subnet in state.subnets.values():
            subnet.live = False
            self._free_blocks(subnet)
        del self._namespaces[namespace]
        return removed

    def restore(self, subnets: Iterable[SubnetRecord], ports: Iterable[PortRecord]) -> list[RejectedPort]:
        """Replace all state with what the persisted Subnet and Port objects say.

        Raises ``ValueError`` for subnets that are not valid (outside the pod
        range, overlapping, duplicate names, bad gateway). Returns the ports it
        could not take back. Their addresses stay free.
        """
        self._reset()
        built = [self._build_subnet(record) for record in subnets]
        self._check_disjoint(built)
        for subnet in built:
            self._register_subnet(subnet)
        rejected = [RejectedPort(port, reason) for port in ports if (reason := self._restore_port(port))]
        self._rebuild_heaps()
        for port in rejected:
            log.warning("ipam restore: rejected port %s: %s", port.port, port.reason)
        return rejected

    # -- internals ----------------------------------------------------------

    def _reset(self) -> None:
        n_blocks = self.pod_network.num_addresses // self._block_size
        self._blocks = _OffsetPool(0, n_blocks - 1)
        self._block_users: dict[int, set[str]] = {}
        self._namespaces: dict[str, _Namespace] = {}
        self._subnets_by_name: dict[str, _Subnet] = {}
        self._leases: dict[str, _Lease] = {}
        self._macs = MacAllocator()

    def _subnet_with_room(self, namespace: str) -> tuple[_Subnet, bool]:
        state = self._namespaces.setdefault(namespace, _Namespace())
        while state.heap:  # the top entry is normally usable; the loop is a safety net
            subnet = state.subnets.get(state.heap[0][1])
            if subnet is not None and subnet.in_heap and not subnet.pool.full:
                return subnet, False
            heapq.heappop(state.heap)
            if subnet is not None:
                subnet.in_heap = False
        return self._new_subnet(namespace), True

    def _new_subnet(self, namespace: str) -> _Subnet:
        block = self._blocks.take_lowest()
        if block is None:
            raise ExhaustedError(f"pod range {self.pod_network} has no free /{self.block_prefix} block")
        base = self.pod_network.network_address + block * self._block_size
        network = ipaddress.ip_network(f"{base}/{self.block_prefix}")
        name = self._next_subnet_name(namespace)
        record = SubnetRecord(name, namespace, str(network), str(network.network_address + 1))
        subnet = self._build_subnet(record)
        self._register_subnet(subnet)
        return subnet

    def _next_subnet_name(self, namespace: str) -> str:
        k = 0
        while f"{namespace}-{k}" in self._subnets_by_name:
            k += 1
        return f"{namespace}-{k}"

    def _build_subnet(self, record: SubnetRecord) -> _Subnet:
        try:
            network = ipaddress.ip_network(record.cidr, strict=True)
            gateway = ipaddress.ip_address(record.gateway)
        except ValueError as exc:
            raise ValueError(f"subnet {record.name}: {exc}") from exc
        if not record.name or not record.namespace:
            raise ValueError(f"subnet {record!r}: name and namespace must be non-empty")
        if network.version != self.pod_network.version or not network.subnet_of(self.pod_network):  # type: ignore[arg-type]
            raise ValueError(f"subnet {record.name}: {network} is outside the pod range {self.pod_network}")
        first, last = _host_offsets(network)
        gw_offset = int(gateway) - int(network.network_address)
        if last < first or not first <= gw_offset <= last:
            raise ValueError(f"subnet {record.name}: gateway {gateway} is not a host address of {network}")
        pool = _OffsetPool(first, last, reserved=(gw_offset,))
        if pool.capacity < 1:
            raise ValueError(f"subnet {record.name}: {network} has no room for pods")
        blocks = self._blocks_of(network)
        return _Subnet(record, network, pool, _subnet_order(record.name, record.namespace), blocks)

    def _blocks_of(self, network: IPNetwork) -> tuple[int, ...]:
        start = (int(network.network_address) - int(self.pod_network.network_address)) // self._block_size
        count = max(1, network.num_addresses // self._block_size)
        return tuple(range(start, start + count))

    @staticmethod
    def _check_disjoint(subnets: list[_Subnet]) -> None:
        names: set[str] = set()
        previous: _Subnet | None = None
        for subnet in sorted(subnets, key=lambda s: int(s.network.network_address)):
            if subnet.record.name in names:
                raise ValueError(f"duplicate subnet name {subnet.record.name!r}")
            names.add(subnet.record.name)
            if previous is not None and previous.network.overlaps(subnet.network):
                raise ValueError(f"subnets {previous.record.name} and {subnet.record.name} overlap")
            previous = subnet

    def _register_subnet(self, subnet: _Subnet) -> None:
        for block in subnet.blocks:
            users = self._block_users.setdefault(block, set())
            if not users:
                self._blocks.take(block)  # no-op if _new_subnet already took it
            users.add(subnet.record.name)
        state = self._namespaces.setdefault(subnet.record.namespace, _Namespace())
        state.subnets[subnet.record.name] = subnet
        self._subnets_by_name[subnet.record.name] = subnet
        self._push_subnet(subnet)

    def _push_subnet(self, subnet: _Subnet) -> None:
        state = self._namespaces[subnet.record.namespace]
        heapq.heappush(state.heap, (subnet.order, subnet.record.name))
        subnet.in_heap = True

    def _rebuild_heaps(self) -> None:
        """One heap entry per subnet with room (restore fills subnets out of order)."""
        for state in self._namespaces.values():
            state.heap = []
            for subnet in state.subnets.values():
                subnet.in_heap = not subnet.pool.full
                if subnet.in_heap:
                    state.heap.append((subnet.order, subnet.record.name))
            heapq.heapify(state.heap)

    def _free_blocks(self, subnet: _Subnet) -> None:
        self._subnets_by_name.pop(subnet.record.name, None)
        for block in subnet.blocks:
            users = self._block_users.get(block, set())
            users.discard(subnet.record.name)
            if not users:
                self._block_users.pop(block, None)
                self._blocks.give(block)

    def _restore_port(self, port: PortRecord) -> str | None:
        """Take ``port`` back; return why it was rejected, or None."""
        if port.owner in self._leases:
            return "owner already has a port"
        subnet = self._subnets_by_name.get(port.subnet)
        if subnet is None:
            return f"unknown subnet {port.subnet!r}"
        mac = port.mac.lower()
        if not _MAC_RE.match(mac):
            return f"malformed MAC {port.mac!r}"
        offset = subnet.offset_of(port.ip)
        if offset is None:
            return f"{port.ip} is not in {subnet.record.cidr}"
        if not subnet.pool.take(offset):
            return f"{port.ip} is reserved or already in use"
        self._macs.hold(mac)
        allocation = Allocation(subnet.record, str(subnet.network.network_address + offset), mac, False)
        self._leases[port.owner] = _Lease(subnet, offset, allocation)
        return None


class ClusterIPAllocator:
    """Service ClusterIPs from the service range, lowest free first.

    The first host address is the ``kubernetes`` Service's address
    (:attr:`kubernetes_ip`). It is only handed out when asked for explicitly.
    ``owner`` is the Service's UID (or ``namespace/name``); calls are
    idempotent per owner.
    """

    ExhaustedError = ExhaustedError

    def __init__(self, service_cidr: str = DEFAULT_SERVICE_CIDR) -> None:
        self.network: IPNetwork = ipaddress.ip_network(service_cidr, strict=True)
        first, last = _host_offsets(self.network)
        if last <= first:
            raise ValueError(f"service range {self.network} is too small")
        self._first = first
        self._last = last
        self._reset()

    @property
    def kubernetes_ip(self) -> str:
        return str(self.network.network_address + self._first)

    def allocate(self, owner: str, ip: str | None = None) -> str:
        """Give ``owner`` an address: ``ip`` if given (and free), else the lowest free one.

        Raises :class:`AddressInUseError` if ``ip`` belongs to someone else,
        ``ValueError`` if it is outside the range or ``owner`` already has a
        different address, and :class:`ExhaustedError` when the range is full.
        """
        if not owner:
            raise ValueError("owner must be non-empty")
        current = self._owners.get(owner)
        if current is not None:
            if ip is not None and self._offset(ip) != current:
                raise ValueError(f"owner {owner!r} already has {self._address(current)}")
            return self._address(current)
        offset = self._take(ip)
        self._owners[owner] = offset
        self._by_offset[offset] = owner
        return self._address(offset)

    def release(self, owner: str) -> None:
        offset = self._owners.pop(owner, None)
        if offset is None:
            return
        del self._by_offset[offset]
        self._pool.give(offset)  # no-op for the reserved kubernetes address

    def get(self, owner: str) -> str | None:
        offset = self._owners.get(owner)
        return None if offset is None else self._address(offset)

    def __len__(self) -> int:
        return len(self._owners)

    def restore(self, assignments: Iterable[tuple[str, str]]) -> list[tuple[str, str, str]]:
        """Replace all state with ``(owner, ip)`` pairs from the Service objects.

        Returns the rejected pairs as ``(owner, ip, reason)``.
        """
        self._reset()
        rejected: list[tuple[str, str, str]] = []
        for owner, ip in assignments:
            try:
                if owner in self._owners:
                    raise ValueError("owner already has an address")
                self.allocate(owner, ip)
            except ValueError as exc:
                rejected.append((owner, ip, str(exc)))
        for owner, ip, reason in rejected:
            log.warning("cluster IP restore: rejected %s=%s: %s", owner, ip, reason)
        return rejected

    def _reset(self) -> None:
        self._pool = _OffsetPool(self._first, self._last, reserved=(self._first,))
        self._owners: dict[str, int] = {}
        self._by_offset: dict[int, str] = {}

    def _take(self, ip: str | None) -> int:
        if ip is None:
            offset = self._pool.take_lowest()
            if offset is None:
                raise ExhaustedError(f"service range {self.network} is exhausted")
            return offset
        offset = self._offset(ip)
        if offset in self._by_offset:
            raise AddressInUseError(f"{ip} is already allocated to {self._by_offset[offset]!r}")
        if offset == self._first:
            return offset  # reserved in the pool; _by_offset tracks its owner
        if not self._pool.take(offset):
            raise ValueError(f"{ip} cannot be allocated")
        return offset

    def _offset(self, ip: str) -> int:
        addr = ipaddress.ip_address(ip)
        offset = int(addr) - int(self.network.network_address)
        if addr not in self.network or not self._first <= offset <= self._last:
            raise ValueError(f"{ip} is not a usable address of {self.network}")
        return offset

    def _address(self, offset: int) -> str:
        return str(self.network.network_address + offset)
