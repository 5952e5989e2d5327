"""The node network namespaces of one cluster and the fabric that joins them.

Design
------
Every local node of a podlife cluster gets its own network namespace (the *node
namespace*): its pods' veths end there, its pod routes, the pods' gateway addresses, the
service proxy's and NetworkPolicy's nftables rules and the node-local servers (cluster
DNS, the ``kubernetes`` Service forwarder) live there. The node namespaces are joined
by one more namespace, the *fabric* -- the wire between the nodes -- so that a pod on
node 0 reaches a pod on node 1 without a single packet crossing the host namespace::

    pod ns --veth-- node ns n<i> --uplink0 ==== node<i>-- fabric ns --node<j> ==== uplink0-- node ns n<j> --veth-- pod ns
                    169.254.<i>.2/30     169.254.<i>.1/30

What :meth:`NodeNetworks.setup` makes (names from :mod:`podlife.nodenet.names`, all
carrying the cluster's id, so parallel clusters never meet):

* the fabric namespace: ``lo`` up, IPv4 forwarding on, no default route (an address
  no node announced is unreachable there, never routed anywhere else);
* per node ``i``: the node namespace (``lo`` up, forwarding on), the dummy
  ``podlife0`` holding each node-local service address as a /32 (what the DNS server
  and the API forwarder bind; a kernel without the ``dummy`` driver gets a bridge
  without ports under that name, which holds local addresses just as well), the veth pair ``uplink0`` (169.254.<i>.2/30, in the node
  namespace) -- ``node<i>`` (169.254.<i>.1/30, in the fabric), and the node's default
  route via 169.254.<i>.1.

The pod routes (a /32 per pod in its node namespace and in the fabric) are the CNI
plugin's (:mod:`podlife.nodenet.cni`), which :meth:`NodeNetwork.cni_config` configures.

The host namespace gets nothing: the veth pair is created *inside* the node namespace
with its peer sent straight to the fabric (``ip -n NODE link add ... peer ... netns
FABRIC``), every other command runs as ``ip -n NS``; no 10.x address, route or
interface ever appears in the host's namespace.

Idempotent and crash-safe: namespaces that exist under the same names are reused and
put right (after a ``kill -9`` the pods' containers may still run, to be adopted, and
their veths live in the node namespace: recreating it would cut them off), namespaces of
this cluster that are not wanted (there were more nodes before) are deleted, and
:meth:`NodeNetworks.teardown` deletes every namespace whose name starts with the
cluster's prefix (``ip netns del`` unmounts and removes its ``/run/netns`` file).

Everything here is synchronous (``ip`` subprocesses); call it with
``asyncio.to_thread``. Decisions (what to create, delete, which addresses) are pure
functions apart from the commands.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import names

log = logging.getLogger(__name__)

__all__ = ["NodeNetwork", "NodeNetworks", "NodeNetworkError", "list_netns", "uplink_addresses"]

#: how many local nodes the 169.254.<i>.0/30 uplinks can number
MAX_NODES = 256
DEFAULT_MTU = 1500
_IP_FALLBACKS = ("/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip")


class NodeNetworkError(RuntimeError):
    """An ``ip`` command that had to succeed failed."""


@dataclass(frozen=True, slots=True)
class NodeNetwork:
    """One local node's network namespace, as the kubelet's CNI plugin and node-local servers need it."""

    node_name: str
    index: int
    netns: str
    netns_path: str
    uplink_address: str
    fabric_netns: str
    fabric_link: str
    mtu: int = DEFAULT_MTU

    def cni_config(self, kubeconfig: Path, daemon_socket: Path | None = None) -> dict[str, Any]:
        """The network configuration ``podlife-cni`` reads on stdin for this node's pods (``daemonSocket``: the
        node's CNI daemon, :mod:`podlife.nodenet.cni.daemon`, which the plugin forwards to when it answers)."""
        config: dict[str, Any] = {
            "cniVersion": "1.0.0", "name": "podlife", "type": "podlife-cni", "kubeconfig": str(kubeconfig),
            "nodeName": self.node_name, "nodeNetns": self.netns, "fabricNetns": self.fabric_netns,
            "fabricLink": self.fabric_link, "uplinkAddress": self.uplink_address, "mtu": self.mtu}
        if daemon_socket is not None:
            config["daemonSocket"] = str(daemon_socket)
        return config


def uplink_addresses(index: int) -> tuple[str, str]:
    """(node end, fabric end) of node ``index``'s uplink: ``169.254.<i>.2`` and ``169.254.<i>.1`` (a /30)."""
    if not 0 <= index < MAX_NODES:
        raise ValueError(f"node index {index} out of range (at most {MAX_NODES} local nodes)")
    return f"169.254.{index}.2", f"169.254.{index}.1"


def plan_networks(cid: str, node_names: Sequence[str], mtu: int = DEFAULT_MTU) -> list[NodeNetwork]:
    """The node networks cluster ``cid`` wants for ``node_names`` (pure; ``mtu``: the pods' and the uplinks')."""
    fabric = names.fabric_netns_name(cid)
    out = []
    for index, node in enumerate(node_names):
        netns = names.node_netns_name(cid, index)
        out.append(NodeNetwork(node, index, netns, names.netns_path(netns), uplink_addresses(index)[0], fabric,
                               names.fabric_link_name(index), mtu))
    return out


def unwanted_netns(existing: Iterable[str], cid: str, wanted: Iterable[str]) -> list[str]:
    """The namespaces of cluster ``cid`` among ``existing`` that are not ``wanted`` (pure)."""
    prefix, keep = names.cluster_netns_prefix(cid), set(wanted)
    return sorted(n for n in existing if n.startswith(prefix) and n not in keep)


def list_netns() -> list[str]:
    """The named network namespaces (files under ``/run/netns``)."""
    try:
        return sorted(os.listdir(names.NETNS_DIR))
    except FileNotFoundError:
        return []


def _ip_binary() -> str:
    found = shutil.which("ip") or next((p for p in _IP_FALLBACKS if os.access(p, os.X_OK)), None)
    if found is None:
        raise NodeNetworkError("the ip tool (iproute2) is not installed")
    return found


def _mounted_paths() -> set[str]:
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return set()
    return {fields[1] for fields in (line.split() for line in lines) if len(fields) > 1}


class NodeNetworks:
    """The node namespaces and the fabric of one cluster (see the module docstring)."""

    def __init__(self, data_dir: Path, node_names: list[str], service_addresses: Sequence[str] = (), *,
                 mtu: int = DEFAULT_MTU) -> None:
        self.cluster_id = names.cluster_id(Path(data_dir))
        self.node_names = list(node_names)
        self.service_addresses = tuple(dict.fromkeys(service_addresses))
        self.networks = plan_networks(self.cluster_id, self.node_names, mtu)
        self.fabric_netns = names.fabric_netns_name(self.cluster_id)
        self._ip: str | None = None

    # ------------------------------------------------------------------ public

    def setup(self) -> list[NodeNetwork]:
        """Create (or put right) the fabric and every node namespace; remove this cluster's others."""
        wanted = [self.fabric_netns] + [n.netns for n in self.networks]
        for stale in unwanted_netns(list_netns(), self.cluster_id, wanted):
            log.info("removing network namespace %s (not one of this cluster's nodes any more)", stale)
            self._delete_netns(stale)
        try:
            self._ensure_netns(self.fabric_netns)
            for network in self.networks:
                self._set_up_node(network)
        except BaseException:
            self.teardown()
            raise
        return list(self.networks)

    def teardown(self) -> None:
        """Delete every network namespace of this cluster (also ones an earlier run left)."""
        prefix = names.cluster_netns_prefix(self.cluster_id)
        for name in list_netns():
            if name.startswith(prefix):
                self._delete_netns(name)

    def by_node(self) -> dict[str, NodeNetwork]:
        return {n.node_name: n for n in self.networks}

    # ------------------------------------------------------------------ steps

    def _set_up_node(self, network: NodeNetwork) -> None:
        ns, fabric = network.netns, network.fabric_netns
        self._ensure_netns(ns)
        self._ensure_dummy(ns)
        self._ensure_uplink(network)
        node_end, fabric_end = uplink_addresses(network.index)
        self._ip_in(ns, "addr", "replace", f"{node_end}/30", "dev", names.NODE_UPLINK)
        self._ip_in(fabric, "addr", "replace", f"{fabric_end}/30", "dev", network.fabric_link)
        self._ip_in(ns, "link", "set", names.NODE_UPLINK, "mtu", str(network.mtu), "up")
        self._ip_in(fabric, "link", "set", network.fabric_link, "mtu", str(network.mtu), "up")
        self._ip_in(ns, "route", "replace", "default", "via", fabric_end, "dev", names.NODE_UPLINK)

    def _ensure_netns(self, name: str) -> None:
        """The namespace ``name`` exists (a stale, unmounted ``/run/netns`` file is replaced), lo up, forwarding on."""
        path = names.netns_path(name)
        if os.path.exists(path) and path not in _mounted_paths():
            log.info("network namespace file %s is not mounted (left from an earlier boot): replacing it", path)
            os.unlink(path)
        if not os.path.exists(path):
            self._run("netns", "add", name)
        self._ip_in(name, "link", "set", "lo", "up")
        self._sysctl(name, "net.ipv4.ip_forward", "1")

    def _ensure_dummy(self, ns: str) -> None:
        if not self._link_exists(ns, names.SERVICE_DUMMY):
            made = self._run("-n", ns, "link", "add", names.SERVICE_DUMMY, "type", "dummy", check=False)
            if made.returncode != 0:  # no dummy driver in this kernel: a bridge without ports holds addresses too
                log.debug("no dummy interfaces here (%s): %s is a bridge", made.stderr.strip(), names.SERVICE_DUMMY)
                self._ip_in(ns, "link", "add", names.SERVICE_DUMMY, "type", "bridge")
        self._ip_in(ns, "link", "set", names.SERVICE_DUMMY, "up")
        for address in self.service_addresses:
            self._ip_in(ns, "addr", "replace", f"{address}/32", "dev", names.SERVICE_DUMMY)

    def _ensure_uplink(self, network: NodeNetwork) -> None:
        """The veth pair node ns ``uplink0`` <-> fabric ``node<i>``; a half left over is replaced."""
        here = self._link(network.netns, names.NODE_UPLINK)
        there = self._link(network.fabric_netns, network.fabric_link)
        if here is not None and there is not None and here.get("link_type") == "ether" and _peer_of(here, there):
            return
        for ns, link, info in ((network.netns, names.NODE_UPLINK, here),
                               (network.fabric_netns, network.fabric_link, there)):
            if info is not None:
                self._ip_in(ns, "link", "del", link)
        self._ip_in(network.netns, "link", "add", names.NODE_UPLINK, "type", "veth", "peer", "name",
                    network.fabric_link, "netns", network.fabric_netns)

    # ------------------------------------------------------------------ ip

    def _delete_netns(self, name: str) -> None:
        result = self._run("netns", "del", name, check=False)
        if result.returncode != 0 and os.path.exists(names.netns_path(name)):
            log.warning("cannot delete network namespace %s: %s", name, result.stderr.strip())

    def _link(self, ns: str, link: str) -> dict[str, Any] | None:
        result = self._run("-n", ns, "-j", "-d", "link", "show", "dev", link, check=False)
        if result.returncode != 0:
            return None
        try:
            found = json.loads(result.stdout or "[]")
        except json.JSONDecodeError:
            return None
        return found[0] if found and isinstance(found[0], dict) else None

    def _link_exists(self, ns: str, link: str) -> bool:
        return self._link(ns, link) is not None

    def _sysctl(self, ns: str, key: str, value: str) -> None:
        self._run("netns", "exec", ns, "sysctl", "-q", "-w", f"{key}={value}")

    def _ip_in(self, ns: str, *args: str) -> subprocess.CompletedProcess[str]:
        return self._run("-n", ns, *args)

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        if self._ip is None:
            self._ip = _ip_binary()
        result = subprocess.run([self._ip, *args], capture_output=True, text=True, timeout=30)
        if check and result.returncode != 0:
            raise NodeNetworkError(f"ip {' '.join(args)}: {result.stderr.strip() or result.returncode}")
        return result


def _peer_of(here: dict[str, Any], there: dict[str, Any]) -> bool:
    """Whether the two veth ends (``ip -j -d link`` records) are each other's peer."""
    if (here.get("linkinfo") or {}).get("info_kind") != "veth" or (there.get("linkinfo") or {}).get("info_kind") != "veth":
        return False
    return here.get("link_index") == there.get("ifindex") and there.get("link_index") == here.get("ifindex")
