"""Pod traffic between hosts: a VXLAN overlay between the fabrics of the nodes (flannel's vxlan backend, per Port).

Design
------
Every host that runs nodes with a pod network has its own fabric namespace
(:mod:`podlife.nodenet.fabric`): ``podlife node`` with real containers for its one node,
``podlife up --host <LAN address>`` for its local nodes. The overlay joins those fabrics
across hosts, so that a pod on one host reaches a pod on another by its pod IP::

    pod --- node ns --- fabric [plvx<id> 169.254.250.<n>] ~~ UDP 4789 between host addresses ~~ fabric --- node ns --- pod

**The device.** One VXLAN device per fabric, ``plvx<cluster id>`` (VNI 1, UDP port 4789,
``nolearning``: nothing is learnt from traffic, every entry is written here), created in
the namespace the agent runs in -- its *host namespace* -- with ``local <host address>``
(``podlife node``'s ``--node-ip``, ``podlife up``'s ``--host``) and then moved into the
fabric. Its UDP socket stays in the host namespace, where it was made: the only packets
that cross the host namespace are UDP datagrams between host addresses. No pod or Service
address, route or interface is ever added to the host namespace (network safety,
docs/networking.md).

**The overlay address.** In the fabric the device holds ``169.254.250.<n>/32``, where
``n`` is the last octet of the host address (:func:`overlay_address`). Hosts on one /24 (as
hosts on one LAN usually are) never collide; of different VTEPs that would share an
address, MAC or IP, the one on the node with the greater name is logged and left out
until that changes. The local nodes' uplinks use ``169.254.<i>.0/30`` for small ``i``, so
``169.254.250/24`` is free unless a cluster has more than 250 local nodes.

**The VTEP record.** Each node behind the fabric carries its tunnel endpoint as the Node
annotation ``network.podlife.io/vtep``: ``{"mac": <the device's MAC>, "ip": <host
address>, "address": <overlay address>}`` (flannel's ``flannel.alpha.coreos.com/backend-data``
and ``public-ip``). Each node's own identity patches its own Node (NodeRestriction allows
it). ``podlife up``'s local nodes share one fabric, so they carry the same VTEP.

**What it watches and writes.** :class:`OverlayAgent` watches Nodes and Ports
(``network.podlife.io/v1``, one per pod, with the pod's IP and ``hostID``: its node). In
its fabric, for every node behind another fabric (not one of its own nodes, not carrying
its own VTEP): a permanent neighbour entry ``overlay address -> MAC`` and an FDB entry
``MAC -> dst host address``; for every Port of a pod on such a node: a ``/32`` route to
the pod's IP ``via <overlay address> onlink`` on the device. Entries nobody wants any more
are deleted. Ports of its own nodes are the CNI plugin's (its ``/32`` routes towards the
node's uplink), never touched here.

Decisions are pure functions: :func:`desired_plan` (nodes, ports, own nodes and VTEP ->
routes, neighbours, FDB entries), :func:`parse_plan` (what ``ip -j`` and ``bridge -j``
show -> the same shape), :func:`plan_commands` (current, desired -> commands).
:class:`Overlay` runs the ``ip``/``bridge`` commands, synchronously (call it with
``asyncio.to_thread``); every change is planned against what the kernel holds, so a restart
(after a ``kill -9`` the device and its entries are still in the pinned fabric) puts
things right. The device goes with the fabric when the namespaces are deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import re
import shutil
import subprocess
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..client.base import NODES, PORTS, Client
from ..client.informer import Informer
from ..machinery.errors import ApiError

log = logging.getLogger(__name__)

__all__ = ["Fdb", "Neigh", "Overlay", "OverlayAgent", "OverlayError", "Plan", "Route", "VTEP_ANNOTATION", "Vtep",
           "desired_plan", "overlay_address", "parse_plan", "parse_vtep", "plan_commands", "vxlan_link_name"]

#: the Node annotation carrying a node's tunnel endpoint
VTEP_ANNOTATION = "network.podlife.io/vtep"
VNI = 1
VXLAN_PORT = 4789
#: what VXLAN adds to every packet (outer IPv4 20, UDP 8, VXLAN 8, inner Ethernet 14)
VXLAN_OVERHEAD = 50
OVERLAY_NETWORK = "169.254.250"
#: what the kernel shows for a route, neighbour or FDB entry of no one's
_ZERO_MAC = "00:00:00:00:00:00"
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


class OverlayError(RuntimeError):
    """An ``ip`` or ``bridge`` command that had to succeed failed."""


@dataclass(frozen=True, slots=True)
class Vtep:
    """A node's tunnel endpoint: the device's MAC, the host address it sends from, its overlay address."""

    mac: str
    ip: str
    address: str

    def annotation(self) -> str:
        return json.dumps({"mac": self.mac, "ip": self.ip, "address": self.address}, separators=(",", ":"))


@dataclass(frozen=True, slots=True, order=True)
class Route:
    """A ``/32`` to ``dst`` via the remote overlay address ``via`` (onlink, on the VXLAN device)."""

    dst: str
    via: str


@dataclass(frozen=True, slots=True, order=True)
class Neigh:
    """A permanent neighbour entry: the remote overlay ``address`` is at ``mac``."""

    address: str
    mac: str


@dataclass(frozen=True, slots=True, order=True)
class Fdb:
    """A forwarding entry: frames for ``mac`` go in UDP to the host address ``dst``."""

    mac: str
    dst: str


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything the overlay holds in one fabric."""

    routes: frozenset[Route] = field(default_factory=frozenset)
    neighs: frozenset[Neigh] = field(default_factory=frozenset)
    fdb: frozenset[Fdb] = field(default_factory=frozenset)


# ---------------------------------------------------------------------------------------------- pure


def vxlan_link_name(cid: str) -> str:
    """The VXLAN device of cluster ``cid`` (``plvx`` + the six hex digits: unique in the host namespace too)."""
    return f"plvx{cid}"


def overlay_address(internal_ip: str) -> str:
    """``169.254.250.<last octet of the InternalIP>`` (ValueError for what is not an IPv4 address)."""
    address = ipaddress.IPv4Address(internal_ip)
    return f"{OVERLAY_NETWORK}.{address.packed[3]}"


def _ipv4(text: object) -> str | None:
    try:
        return str(ipaddress.IPv4Address(str(text)))
    except ValueError:
        return None


def parse_vtep(node: Mapping[str, Any]) -> Vtep | None:
    """The node's VTEP from its annotation; None when it has none or it is not well formed."""
    raw = ((node.get("metadata") or {}).get("annotations") or {}).get(VTEP_ANNOTATION)
    try:
        doc = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    mac, ip, address = str(doc.get("mac") or "").lower(), _ipv4(doc.get("ip")), _ipv4(doc.get("address"))
    if not _MAC.fullmatch(mac) or mac == _ZERO_MAC or ip is None or address is None:
        return None
    return Vtep(mac, ip, address)


def node_internal_ip(node: Mapping[str, Any]) -> str | None:
    for entry in (node.get("status") or {}).get("addresses") or []:
        if isinstance(entry, dict) and entry.get("type") == "InternalIP":
            return _ipv4(entry.get("address"))
    return None


def remote_vteps(nodes: Iterable[Mapping[str, Any]], local: Collection[str], own: Vtep | None = None
                 ) -> dict[str, Vtep]:
    """The VTEPs of the nodes behind other fabrics, by node name: not ``local`` ones, not ones with the ``own``
    VTEP (several nodes may share one: ``podlife up``'s local nodes). Of different VTEPs that share an overlay
    address, MAC or IP, only the first one by node name is kept."""
    chosen: dict[str, Vtep] = {}
    owners: dict[str, Vtep] = {}
    for node in sorted(nodes, key=lambda n: str((n.get("metadata") or {}).get("name") or "")):
        name = str((node.get("metadata") or {}).get("name") or "")
        vtep = parse_vtep(node)
        if vtep is None or not name:
            continue
        keys = (f"a{vtep.address}", f"m{vtep.mac}", f"i{vtep.ip}")
        if any(owners.get(k, vtep) != vtep for k in keys):
            log.warning("node %s: its VTEP %s clashes with another node's; left out of the overlay", name, vtep)
            continue
        owners.update(dict.fromkeys(keys, vtep))
        if name not in local and vtep != own:
            chosen[name] = vtep
    return chosen


def port_node_and_ip(port: Mapping[str, Any]) -> tuple[str, str] | None:
    """(node, IPv4) of a Port (``hostID``, else ``nodeName``; the first fixed IP); None without both."""
    spec = port.get("spec") or {}
    node = str(spec.get("hostID") or spec.get("nodeName") or "")
    fixed = (spec.get("fixedIPs") or [{}])[0] or {}
    ip = _ipv4(fixed.get("ipAddress")) if isinstance(fixed, dict) else None
    return (node, ip) if node and ip else None


def desired_plan(nodes: Iterable[Mapping[str, Any]], ports: Iterable[Mapping[str, Any]], local: Collection[str],
                 own: Vtep | None = None) -> Plan:
    """What a fabric should hold for the pods of the nodes behind other fabrics (``local``: the nodes of this
    fabric; ``own``: its VTEP; see the module docstring)."""
    vteps = remote_vteps(nodes, local, own)
    routes = set()
    for port in ports:
        found = port_node_and_ip(port)
        if found is not None and found[0] in vteps:
            routes.add(Route(found[1], vteps[found[0]].address))
    return Plan(frozenset(routes), frozenset(Neigh(v.address, v.mac) for v in vteps.values()),
                frozenset(Fdb(v.mac, v.ip) for v in vteps.values()))


def parse_plan(routes: Any, neighs: Any, fdb: Any) -> Plan:
    """What ``ip -j route show dev X``, ``ip -j neigh show dev X`` and ``bridge -j fdb show dev X`` list, as a Plan
    (only the overlay's kinds of entry: routes via a gateway, permanent neighbours, FDB entries with a dst)."""
    got_routes = {Route(str(r["dst"]).removesuffix("/32"), str(r["gateway"])) for r in _dicts(routes)
                  if r.get("dst") and r.get("gateway")}
    got_neighs = {Neigh(str(n["dst"]), str(n["lladdr"]).lower()) for n in _dicts(neighs)
                  if n.get("dst") and n.get("lladdr") and "PERMANENT" in (n.get("state") or [])}
    got_fdb = {Fdb(str(f["mac"]).lower(), str(f["dst"])) for f in _dicts(fdb)
               if f.get("mac") and f.get("dst") and str(f["mac"]).lower() != _ZERO_MAC}
    return Plan(frozenset(got_routes), frozenset(got_neighs), frozenset(got_fdb))


def _dicts(items: Any) -> list[dict[str, Any]]:
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def plan_commands(current: Plan, desired: Plan, fabric: str, device: str) -> list[list[str]]:
    """The ``ip``/``bridge`` argument lists that turn ``current`` into ``desired`` (first word: the tool).

    Additions go FDB, neighbours, routes (a route's next hop is resolvable when it appears);
    deletions the other way round. An entry whose key stays but whose value changes is replaced.
    """
    ip, bridge = ["ip", "-n", fabric], ["bridge", "-n", fabric]
    want_routes = {r.dst: r for r in desired.routes}
    have_routes = {r.dst: r for r in current.routes}
    want_neighs = {n.address: n for n in desired.neighs}
    have_neighs = {n.address: n for n in current.neighs}
    want_fdb = {f.mac: f for f in desired.fdb}
    have_fdb = {f.mac: f for f in current.fdb}
    out: list[list[str]] = []
    for f in sorted(desired.fdb - current.fdb):
        out.append([*bridge, "fdb", "replace", f.mac, "dev", device, "dst", f.dst, "self", "permanent"])
    for n in sorted(desired.neighs - current.neighs):
        out.append([*ip, "neigh", "replace", n.address, "lladdr", n.mac, "dev", device, "nud", "permanent"])
    for r in sorted(desired.routes - current.routes):
        out.append([*ip, "route", "replace", f"{r.dst}/32", "via", r.via, "dev", device, "onlink"])
    for dst in sorted(set(have_routes) - set(want_routes)):
        out.append([*ip, "route", "del", f"{dst}/32", "dev", device])
    for address in sorted(set(have_neighs) - set(want_neighs)):
        out.append([*ip, "neigh", "del", address, "dev", device])
    for mac in sorted(set(have_fdb) - set(want_fdb)):
        out.append([*bridge, "fdb", "del", mac, "dev", device, "self"])
    return out


# ---------------------------------------------------------------------------------------------- the kernel


class Overlay:
    """The VXLAN device of one node's fabric and the entries on it (the ``ip``/``bridge`` side)."""

    def __init__(self, cluster_id: str, fabric_netns: str, node_ip: str, mtu: int) -> None:
        self.fabric = fabric_netns
        self.device = vxlan_link_name(cluster_id)
        self.node_ip = node_ip
        self.address = overlay_address(node_ip)
        self.mtu = mtu

    def setup(self) -> Vtep:
        """Make (or keep) the device in the fabric, sending from ``node_ip``; its VTEP."""
        existing = self._link(self.fabric)
        vxlan = ((existing or {}).get("linkinfo") or {}).get("info_data") or {}
        if existing is not None and (vxlan.get("local") != self.node_ip or vxlan.get("id") != VNI):
            self._run("ip", "-n", self.fabric, "link", "del", self.device)
            existing = None
        if existing is None:
            if self._link(None) is not None:  # left in the host namespace by a start that died half-way
                self._run("ip", "link", "del", self.device)
            self._run("ip", "link", "add", self.device, "type", "vxlan", "id", str(VNI), "dstport", str(VXLAN_PORT),
                      "local", self.node_ip, "nolearning")
            self._run("ip", "link", "set", self.device, "netns", self.fabric)
        # no IPv6 link-local address: its solicitations would go nowhere (nothing floods, every FDB entry is ours)
        self._run("ip", "-n", self.fabric, "link", "set", self.device, "addrgenmode", "none", check=False)
        self._run("ip", "-n", self.fabric, "link", "set", self.device, "mtu", str(self.mtu), "up")
        self._run("ip", "-n", self.fabric, "addr", "replace", f"{self.address}/32", "dev", self.device)
        found = self._link(self.fabric) or {}
        return Vtep(str(found.get("address") or "").lower(), self.node_ip, self.address)

    def current(self) -> Plan:
        """What the device holds now."""
        return parse_plan(self._json("ip", "-n", self.fabric, "-j", "route", "show", "dev", self.device),
                          self._json("ip", "-n", self.fabric, "-j", "neigh", "show", "dev", self.device),
                          self._json("bridge", "-n", self.fabric, "-j", "fdb", "show", "dev", self.device))

    def converge(self, desired: Plan) -> int:
        """Make the device hold ``desired``; how many commands that took."""
        commands = plan_commands(self.current(), desired, self.fabric, self.device)
        for command in commands:
            self._run(*command)
        return len(commands)

    def _link(self, netns: str | None) -> dict[str, Any] | None:
        where = ["-n", netns] if netns else []
        result = self._run("ip", *where, "-j", "-d", "link", "show", "dev", self.device, check=False)
        if result.returncode != 0:
            return None
        with contextlib.suppress(ValueError):
            found = json.loads(result.stdout or "[]")
            if found and isinstance(found[0], dict):
                return found[0]
        return None

    def _json(self, *argv: str) -> Any:
        out = self._run(*argv).stdout.strip()
        try:
            return json.loads(out) if out else []
        except ValueError:
            raise OverlayError(f"{' '.join(argv)}: not JSON: {out[:200]}") from None

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        binary = shutil.which(tool) or f"/usr/sbin/{tool}"
        result = subprocess.run([binary, *args], capture_output=True, text=True, timeout=30)
        if check and result.returncode != 0:
            raise OverlayError(f"{tool} {' '.join(args)}: {result.stderr.strip() or result.returncode}")
        return result


# ---------------------------------------------------------------------------------------------- the agent


class OverlayAgent:
    """Publishes this fabric's VTEP on its nodes and keeps the fabric's overlay entries in line with the Nodes and
    Ports (``node_names``: the nodes behind this fabric; ``publishers``: who patches each one's Node, by default
    ``client``, which watches)."""

    def __init__(self, client: Client, node_names: Sequence[str], overlay: Overlay, *,
                 publishers: Mapping[str, Client] | None = None, coalesce: float = 0.05) -> None:
        self.client = client
        self.node_names = tuple(node_names)
        self.publishers = dict(publishers or {})
        self.overlay = overlay
        self.coalesce = coalesce
        self.vtep: Vtep | None = None
        self.nodes = Informer(client, NODES)
        self.ports = Informer(client, PORTS)
        for informer in (self.nodes, self.ports):
            informer.add_handlers(on_add=self._mark, on_update=lambda _old, _new: self._mark(), on_delete=self._mark)
        self._dirty = asyncio.Event()
        #: the plan the fabric holds (None: not converged yet, or the last attempt failed)
        self.applied: Plan | None = None

    def _mark(self, *_: object) -> None:
        self._dirty.set()

    def desired(self) -> Plan:
        return desired_plan(self.nodes.cache.values(), self.ports.cache.values(), self.node_names, self.vtep)

    async def run(self) -> None:
        """Set up the device (unless the caller did: :attr:`vtep` set), then publish and converge until cancelled."""
        if self.vtep is None:
            self.vtep = await asyncio.to_thread(self.overlay.setup)
        log.info("overlay of %s: %s in %s, VTEP %s", self._who, self.overlay.device, self.overlay.fabric, self.vtep)
        tasks = [asyncio.create_task(i.run(), name=f"overlay-informer-{i.res.plural}") for i in (self.nodes, self.ports)]
        try:
            await asyncio.gather(self.nodes.wait_synced(), self.ports.wait_synced())
            self._dirty.set()
            await self._loop()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _loop(self) -> None:
        backoff = 0.5
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self.coalesce)  # let a burst of events land in one pass
            self._dirty.clear()
            try:
                await self._publish()
                wanted = self.desired()
                if wanted != self.applied:
                    count = await asyncio.to_thread(self.overlay.converge, wanted)
                    if count:
                        log.info("overlay of %s: %d change(s), %d remote pod route(s)", self._who, count,
                                 len(wanted.routes))
                    self.applied = wanted
            except (ApiError, OverlayError, OSError) as exc:
                log.error("overlay of %s: %s", self._who, exc)
                self.applied = None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                self._dirty.set()
                continue
            backoff = 0.5

    @property
    def _who(self) -> str:
        return "node " + ", ".join(self.node_names)

    async def _publish(self) -> None:
        """Patch the VTEP annotation of each of this fabric's Nodes that exists without it (or with another one)."""
        if self.vtep is None:
            return
        for name in self.node_names:
            node = self.nodes.get(None, name)
            if node is None or parse_vtep(node) == self.vtep:
                continue
            await self.publishers.get(name, self.client).patch(
                NODES, name, {"metadata": {"annotations": {VTEP_ANNOTATION: self.vtep.annotation()}}})
            log.info("node %s: published its VTEP %s", name, self.vtep.annotation())
