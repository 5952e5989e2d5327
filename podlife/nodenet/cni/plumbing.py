"""Plugging a pod's namespace into its node's: the veth pair, addresses, routes and sysctls.

What it writes
--------------
For a pod with port (MAC, ``ip/prefix``, gateway) whose sandbox namespace is
``CNI_NETNS``:

* in the pod namespace: ``lo`` up; ``CNI_IFNAME`` (``eth0``), one end of a veth pair,
  with the port's MAC, its address and the MTU, up; the default route via the gateway;
* in the node namespace (``/run/netns/<nodeNetns>``): the other end,
  :func:`~podlife.nodenet.names.host_veth_name` of the pod UID, up, with ``proxy_arp``
  and ``forwarding`` on (so the pod's ARP for a neighbour in its subnet is answered by
  the node, which routes it); the route ``<ip>/32 dev <host end> scope link``; the
  gateway as ``/32`` on the service dummy (:data:`~podlife.nodenet.names.SERVICE_DUMMY`,
  created when missing), so the pod's gateway is an address of its node;
* in the fabric namespace, when there is one: ``<ip>/32 via <uplinkAddress> dev
  <fabricLink>``, so the other nodes reach the pod through this node.

DEL removes the veth (both ends go with either), with it the node's ``/32``, and the
fabric route of the pod's address -- found in the node's route table, else in
``prevResult``, else by sweeping the fabric routes towards this node that no longer
have a node route. Missing pieces are not errors.

How (and why this way)
----------------------
The plugin runs once per pod start, so its cost is its start-up plus its system
calls. pyroute2 alone takes ~0.2 s to import, five times this whole module's work, so
the netlink requests are made by iproute2's ``ip`` (``-batch`` runs many in one
process; ``-j`` reads state as JSON). Namespaces are entered with ``setns(2)`` by the
calling thread (the plugin's only one, or a worker thread of the node's CNI daemon,
:mod:`.daemon`: ``setns`` moves that thread alone, and the handles are of
``/proc/thread-self``), and every ``ip`` it starts inherits the namespace: that
works for namespace *paths* (``/proc/<pid>/ns/net``) as well as names, and the
per-interface sysctls are plain writes under ``/proc/sys/net`` made while inside. The
thread always returns to its own namespace before it talks to the API server.

Decisions are pure functions over what ``ip -j`` reported (:func:`plan_add`,
:func:`check_problems`, :func:`stale_fabric_routes`); the functions that run
commands only carry them out. ADD is idempotent: an existing, matching pair is
kept and reconfigured with ``replace`` commands; a mismatching one is removed and
made again.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ...machinery.netns import setns
from .. import names
from .spec import CONTAINER_UNKNOWN, PLUMBING_FAILED, TRY_AGAIN_LATER, CniError

IP_CANDIDATES = ("/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip")
#: what ``ip`` says when the device or route to remove is already gone
GONE_MARKERS = ("Cannot find device", "No such process", "No such device", "does not exist")
Json = list[dict[str, Any]]

# ---------------------------------------------------------------- pure: what we want, what is there


@dataclass(frozen=True)
class PodNetwork:
    """The desired plugging of one pod."""

    host_ifname: str
    host_mac: str
    ifname: str
    mac: str
    address: str  # ip/prefix
    gateway: str
    mtu: int
    sandbox: str  # CNI_NETNS

    @property
    def ip(self) -> str:
        return self.address.split("/")[0]


@dataclass(frozen=True)
class LinkState:
    name: str
    mac: str
    up: bool
    addresses: tuple[str, ...]  # IPv4 ip/prefix


@dataclass(frozen=True)
class AddPlan:
    """The commands of one ADD, per namespace, in the order they run."""

    delete_pod_link: bool
    delete_host_link: bool
    pod: list[str] = field(default_factory=list)
    create_dummy: bool = False
    node: list[str] = field(default_factory=list)


def host_mac(pod_uid: str) -> str:
    """A stable, locally administered unicast MAC for the node end (no read back needed)."""
    digest = hashlib.sha256(b"podlife-host-end/" + pod_uid.encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x0E, *digest[:5]))


def parse_links(doc: Json) -> dict[str, LinkState]:
    """``ip -j addr show`` as links by name."""
    links: dict[str, LinkState] = {}
    for entry in doc:
        name = entry.get("ifname")
        if not name:
            continue
        addrs = tuple(f"{a['local']}/{a['prefixlen']}" for a in entry.get("addr_info") or []
                      if a.get("family") == "inet" and "local" in a)
        links[name] = LinkState(name, str(entry.get("address") or "").lower(), "UP" in (entry.get("flags") or []), addrs)
    return links


def _on_link(address: str, gateway: str) -> bool:
    return ipaddress.ip_address(gateway) in ipaddress.ip_interface(address).network


def plan_add(want: PodNetwork, node: dict[str, LinkState], pod: dict[str, LinkState]) -> AddPlan:
    """What ADD must do given the links of the node and pod namespaces."""
    host, inner = node.get(want.host_ifname), pod.get(want.ifname)
    keep = host is not None and inner is not None and inner.mac == want.mac.lower() \
        and set(inner.addresses) <= {want.address}
    pod_cmds: list[str] = []
    if not keep:
        pod_cmds.append(f"link add {want.ifname} address {want.mac} mtu {want.mtu} type veth peer name "
                        f"{want.host_ifname} address {want.host_mac} mtu {want.mtu} netns {{node_netns}}")
    pod_cmds += ["link set lo up", f"addr replace {want.address} dev {want.ifname}",
                 f"link set {want.ifname} mtu {want.mtu} up"]
    if want.gateway:
        onlink = "" if _on_link(want.address, want.gateway) else " onlink"
        pod_cmds.append(f"route replace default via {want.gateway} dev {want.ifname}{onlink}")
    node_cmds = [f"link set {want.host_ifname} mtu {want.mtu} up",
                 f"route replace {want.ip}/32 dev {want.host_ifname} scope link"]
    dummy = node.get(names.SERVICE_DUMMY)
    if want.gateway:
        if dummy is None or not dummy.up:
            node_cmds.append(f"link set {names.SERVICE_DUMMY} up")
        if dummy is None or f"{want.gateway}/32" not in dummy.addresses:
            node_cmds.append(f"addr replace {want.gateway}/32 dev {names.SERVICE_DUMMY}")
    return AddPlan(delete_pod_link=not keep and inner is not None, delete_host_link=not keep and host is not None,
                   pod=pod_cmds, create_dummy=bool(want.gateway) and dummy is None, node=node_cmds)


def host_routes(routes: Json) -> list[str]:
    """The pod addresses (``/32`` destinations) in ``ip -j route show dev <host end>``."""
    found = []
    for route in routes:
        dst = str(route.get("dst") or "")
        if dst and dst != "default":
            iface = ipaddress.ip_interface(dst)
            if iface.version == 4 and iface.network.prefixlen == 32:
                found.append(str(iface.ip))
    return found


def stale_fabric_routes(fabric: Json, node: Json, uplink_address: str) -> list[str]:
    """Pod addresses the fabric sends to this node although the node has no route to them any more.

    ADD writes the node's ``/32`` before the fabric's, so a fabric route without a node
    route belongs to a pod whose veth is gone.
    """
    served = {str(r.get("dst")) for r in node if str(r.get("dev") or "").startswith("plv")}
    stale = []
    for route in fabric:
        dst = str(route.get("dst") or "")
        if route.get("gateway") != uplink_address or "/" in dst or dst == "default":
            continue
        if dst not in served:
            stale.append(dst)
    return stale


def check_problems(want: PodNetwork, pod: dict[str, LinkState], pod_routes: Json, node: dict[str, LinkState],
                   node_routes: Json, fabric_routes: Json | None, uplink_address: str) -> list[str]:
    """What differs from what ADD set up (empty: the pod is plugged as it should be)."""
    problems = []
    inner = pod.get(want.ifname)
    if inner is None:
        problems.append(f"{want.ifname} is missing in {want.sandbox}")
    else:
        if inner.mac != want.mac.lower():
            problems.append(f"{want.ifname} has MAC {inner.mac}, want {want.mac}")
        if want.address not in inner.addresses:
            problems.append(f"{want.ifname} lacks address {want.address} (has {', '.join(inner.addresses) or 'none'})")
        if not inner.up:
            problems.append(f"{want.ifname} is down")
    if want.gateway and not any(r.get("dst") == "default" and r.get("gateway") == want.gateway
                                and r.get("dev") == want.ifname for r in pod_routes):
        problems.append(f"no default route via {want.gateway} dev {want.ifname}")
    host = node.get(want.host_ifname)
    if host is None:
        problems.append(f"host end {want.host_ifname} is missing in the node namespace")
    elif not host.up:
        problems.append(f"host end {want.host_ifname} is down")
    if not any(r.get("dst") == want.ip and r.get("dev") == want.host_ifname for r in node_routes):
        problems.append(f"node namespace has no route {want.ip}/32 dev {want.host_ifname}")
    if fabric_routes is not None and not any(r.get("dst") == want.ip and r.get("gateway") == uplink_address
                                             for r in fabric_routes):
        problems.append(f"fabric has no route {want.ip}/32 via {uplink_address}")
    return problems


def sysctl_paths(ifname: str) -> list[tuple[str, str]]:
    """The host end's sysctls: answer ARP for the rest of the subnet, forward, and answer at once
    (``proxy_delay`` defaults to up to 0.8 s of random delay before a proxy ARP reply)."""
    return [(f"/proc/sys/net/ipv4/conf/{ifname}/proxy_arp", "1"), (f"/proc/sys/net/ipv4/conf/{ifname}/forwarding", "1"),
            (f"/proc/sys/net/ipv4/neigh/{ifname}/proxy_delay", "0")]


# ---------------------------------------------------------------- effects: namespaces and ip


def _ip_binary() -> str:
    for candidate in IP_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return "ip"


class Namespaces:
    """Open namespace handles and the ``ip`` runner; use as a context manager (closes the handles)."""

    def __init__(self) -> None:
        self.home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self.fds: list[int] = [self.home]
        self.ip = _ip_binary()

    def __enter__(self) -> Namespaces:
        return self

    def __exit__(self, *exc: object) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()

    def open(self, path: str) -> int | None:
        """A handle on the namespace at ``path``; None when it does not exist."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        self.fds.append(fd)
        return fd

    @contextmanager
    def inside(self, fd: int) -> Iterator[None]:
        """This process in namespace ``fd`` for the block, then home again whatever happens."""
        setns(fd)
        try:
            yield
        finally:
            setns(self.home)

    def run(self, fd: int, args: Sequence[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        with self.inside(fd):
            return subprocess.run([self.ip, *args], input=stdin, capture_output=True, text=True, check=False)

    def batch(self, fd: int, commands: Sequence[str], what: str) -> None:
        """Run ``commands`` in one ``ip -batch``; stop at the first failure (:class:`CniError`)."""
        if not commands:
            return
        done = self.run(fd, ["-batch", "-"], "\n".join(commands) + "\n")
        if done.returncode != 0:
            raise CniError(PLUMBING_FAILED, f"cannot {what}", done.stderr.strip() or done.stdout.strip())

    def json(self, fd: int, args: Sequence[str], *, missing_ok: bool = False) -> Json:
        done = self.run(fd, ["-j", *args])
        if done.returncode != 0:
            if missing_ok and any(m in done.stderr for m in GONE_MARKERS):
                return []
            raise CniError(PLUMBING_FAILED, f"ip {' '.join(args)} failed", done.stderr.strip())
        doc = json.loads(done.stdout or "[]")
        return doc if isinstance(doc, list) else []

    def delete(self, fd: int, args: Sequence[str]) -> bool:
        """Run a removal; True if it removed something, False if it was gone already."""
        done = self.run(fd, args)
        if done.returncode == 0:
            return True
        if any(m in done.stderr for m in GONE_MARKERS):
            return False
        raise CniError(PLUMBING_FAILED, f"ip {' '.join(args)} failed", done.stderr.strip())

    def write_sysctls(self, fd: int, settings: Sequence[tuple[str, str]]) -> None:
        with self.inside(fd):
            for path, value in settings:
                try:
                    with open(path, "w") as fh:
                        fh.write(value)
                except OSError as exc:
                    raise CniError(PLUMBING_FAILED, f"cannot write {path}", str(exc)) from None


def _node_fd(ns: Namespaces, node_netns: str, *, required: bool) -> int | None:
    fd = ns.open(names.netns_path(node_netns))
    if fd is None and required:
        raise CniError(TRY_AGAIN_LATER, "node network namespace is not there (yet)", names.netns_path(node_netns))
    return fd


def _pod_fd(ns: Namespaces, path: str) -> int:
    fd = ns.open(path)
    if fd is None:
        raise CniError(CONTAINER_UNKNOWN, "the sandbox network namespace does not exist", path)
    return fd


def _fabric_fd(ns: Namespaces, fabric_netns: str, *, required: bool) -> int | None:
    if not fabric_netns:
        return None
    fd = ns.open(names.netns_path(fabric_netns))
    if fd is None and required:
        raise CniError(TRY_AGAIN_LATER, "fabric network namespace is not there (yet)", names.netns_path(fabric_netns))
    return fd


def _create_dummy(ns: Namespaces, node: int) -> None:
    """The service dummy; a port-less bridge where the kernel has no ``dummy`` driver (both hold local addresses)."""
    for kind in ("dummy", "bridge"):
        done = ns.run(node, ["link", "add", names.SERVICE_DUMMY, "type", kind])
        if done.returncode == 0 or "File exists" in done.stderr:
            return
        if "Unknown device type" not in done.stderr:
            break
    raise CniError(PLUMBING_FAILED, f"cannot create {names.SERVICE_DUMMY}", done.stderr.strip())


# ---------------------------------------------------------------- the operations


def add(want: PodNetwork, node_netns: str, fabric_netns: str = "", fabric_link: str = "",
        uplink_address: str = "") -> None:
    """Plug the pod (see the module docstring); idempotent."""
    with Namespaces() as ns:
        node = _node_fd(ns, node_netns, required=True)
        assert node is not None
        fabric = _fabric_fd(ns, fabric_netns, required=True)
        pod = _pod_fd(ns, want.sandbox)
        plan = plan_add(want, parse_links(ns.json(node, ["addr", "show"])), parse_links(ns.json(pod, ["addr", "show"])))
        if plan.delete_pod_link:
            ns.delete(pod, ["link", "del", want.ifname])
        if plan.delete_host_link:
            ns.delete(node, ["link", "del", want.host_ifname])
        ns.batch(pod, [cmd.replace("{node_netns}", node_netns) for cmd in plan.pod], "configure the pod's interface")
        ns.write_sysctls(node, sysctl_paths(want.host_ifname))
        if plan.create_dummy:
            _create_dummy(ns, node)
        ns.batch(node, plan.node, "configure the node end")
        if fabric is not None:
            ns.batch(fabric, [f"route replace {want.ip}/32 via {uplink_address} dev {fabric_link}"], "route in the fabric")


def delete(host_ifname: str, ifname: str, sandbox: str, node_netns: str, known_ip: str = "", fabric_netns: str = "",
           fabric_link: str = "", uplink_address: str = "") -> list[str]:
    """Unplug the pod; never fails for what is gone. Returns the pod addresses whose routes were removed."""
    with Namespaces() as ns:
        node = _node_fd(ns, node_netns, required=False)
        if node is None:
            return []  # everything of the pod's on this node lived in the node namespace
        ips = host_routes(ns.json(node, ["route", "show", "dev", host_ifname], missing_ok=True))
        if not ns.delete(node, ["link", "del", host_ifname]) and sandbox:
            pod = ns.open(sandbox)
            if pod is not None:
                ns.delete(pod, ["link", "del", ifname])
        if known_ip and known_ip not in ips:
            ips.append(known_ip)
        fabric = _fabric_fd(ns, fabric_netns, required=False)
        if fabric is None:
            return ips
        if not ips:
            fabric_routes = ns.json(fabric, ["route", "show", "dev", fabric_link], missing_ok=True)
            ips = stale_fabric_routes(fabric_routes, ns.json(node, ["route", "show"]), uplink_address)
        for ip in ips:
            ns.delete(fabric, ["route", "del", f"{ip}/32", "via", uplink_address, "dev", fabric_link])
        return ips


def check(want: PodNetwork, node_netns: str, fabric_netns: str = "", uplink_address: str = "") -> list[str]:
    """The differences from what ADD set up (empty: all present)."""
    with Namespaces() as ns:
        node = _node_fd(ns, node_netns, required=False)
        if node is None:
            return [f"node network namespace {node_netns} does not exist"]
        pod = _pod_fd(ns, want.sandbox)
        fabric = _fabric_fd(ns, fabric_netns, required=False)
        if fabric_netns and fabric is None:
            return [f"fabric network namespace {fabric_netns} does not exist"]
        fabric_routes = ns.json(fabric, ["route", "show", f"{want.ip}/32"]) if fabric is not None else None
        return check_problems(want, parse_links(ns.json(pod, ["addr", "show"])), ns.json(pod, ["route", "show", "default"]),
                              parse_links(ns.json(node, ["addr", "show", "dev", want.host_ifname], missing_ok=True)),
                              ns.json(node, ["route", "show", f"{want.ip}/32"]), fabric_routes, uplink_address)


__all__ = ["AddPlan", "LinkState", "Namespaces", "PodNetwork", "add", "check", "check_problems", "delete", "host_mac",
           "host_routes", "parse_links", "plan_add", "stale_fabric_routes", "sysctl_paths"]
