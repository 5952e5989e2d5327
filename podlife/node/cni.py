"""The node-side CNI step: turn the port the network controller wrote into the pod's network.

Design
------
As in Kuryr-Kubernetes, the work is split in two. The central controller
(:mod:`podlife.network.controller`) allocates the address and records the port in
the pod annotation ``network.podlife.io/port``; the kubelet, when it creates the
pod sandbox, calls :meth:`CNIPlugin.add` on the node the pod runs on, which only
*reads* that annotation. The two race: the kubelet may get the pod before the
annotation is written. Then :func:`read_port_annotation` raises
:class:`CNIError` ("port annotation not present yet") and the kubelet retries,
which is exactly the behaviour Kuryr documents ("CNI driver fails ... will try
again, so eventually the binding will be done").

For now the plugin records the attachment and returns the address; nothing is
plugged. The networking issue will, in :meth:`CNIPlugin.add`, create a network
namespace for the pod and a veth pair (one end in the namespace, named ``eth0``,
with the port's MAC, ``ip/prefix`` and a default route via the gateway; the host
end with a /32 route to the pod IP), and remove both in :meth:`CNIPlugin.delete`.
Until a pod's namespace is plugged on this machine, nothing in podlife connects
to its IP. ``add`` stays cheap -- a JSON parse and a dict insert -- because the
kubelet calls it for every pod it starts.

Host-network pods get no port (as in Kuryr); if the kubelet asks anyway, ``add``
answers with the node's address (``status.hostIP``, else ``host_ip``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import orjson

from ..client.base import Obj
from ..machinery.constants import PORT_ANNOTATION

__all__ = ["PORT_ANNOTATION", "CNIError", "CNIPlugin", "PortInfo", "read_port_annotation"]


class CNIError(Exception):
    """The pod's network cannot be set up (yet); the kubelet retries."""


@dataclass(frozen=True, slots=True)
class PortInfo:
    """A pod's port as the node needs it."""

    ip: str
    mac: str
    cidr: str
    gateway: str
    port_name: str
    port_id: str = ""
    node: str = ""

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.cidr).prefixlen if self.cidr else 32

    @property
    def ip_with_prefix(self) -> str:
        """``10.244.0.2/24``: what goes on the pod's ``eth0``."""
        return f"{self.ip}/{self.prefixlen}"


def read_port_annotation(pod: Obj) -> PortInfo:
    """The port recorded on ``pod``; :class:`CNIError` if it is missing or malformed."""
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(PORT_ANNOTATION)
    if raw is None:
        raise CNIError("port annotation not present yet")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise CNIError(f"port annotation is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise CNIError("port annotation is not a JSON object")
    return _port_info(doc)


def _port_info(doc: dict[str, Any]) -> PortInfo:
    fixed = doc.get("fixed_ips")
    subnet = doc.get("subnet")
    if not isinstance(subnet, dict):
        subnet = {}
    if not isinstance(fixed, list) or not fixed or not isinstance(fixed[0], dict):
        raise CNIError("port annotation has no fixed_ips")
    ip, mac = fixed[0].get("ip_address"), doc.get("mac_address")
    cidr, gateway = subnet.get("cidr") or "", subnet.get("gateway_ip") or ""
    try:
        address = ipaddress.ip_address(str(ip))
        if cidr and address not in ipaddress.ip_network(cidr):
            raise CNIError(f"port address {ip} is outside its subnet {cidr}")
    except ValueError as exc:
        raise CNIError(f"port annotation has a bad address: {exc}") from None
    if not isinstance(mac, str) or not mac:
        raise CNIError("port annotation has no mac_address")
    return PortInfo(str(address), mac, cidr, gateway, str(doc.get("name") or ""), str(doc.get("id") or ""),
                    str(doc.get("binding:host_id") or ""))


class CNIPlugin:
    """What the kubelet calls to wire a pod's network on this node (see the module docstring)."""

    def __init__(self, node_name: str = "", host_ip: str = "") -> None:
        self.node_name = node_name
        self.host_ip = host_ip
        #: pod UID -> the port it is attached to
        self.attached: dict[str, PortInfo] = {}

    async def add(self, pod: Obj) -> PortInfo:
        """Attach ``pod`` to its port; raises :class:`CNIError` until the controller wrote it."""
        spec = pod.get("spec") or {}
        if spec.get("hostNetwork"):
            return self._host_network(pod)
        info = read_port_annotation(pod)
        if self.node_name and info.node and info.node != self.node_name:
            raise CNIError(f"port {info.port_name} is bound to node {info.node}, not {self.node_name}")
        self.attached[(pod.get("metadata") or {}).get("uid") or ""] = info
        return info

    async def delete(self, pod: Obj) -> None:
        """Detach ``pod``; deleting what is not attached is not an error (CNI DEL is idempotent)."""
        self.attached.pop((pod.get("metadata") or {}).get("uid") or "", None)

    def _host_network(self, pod: Obj) -> PortInfo:
        ip = (pod.get("status") or {}).get("hostIP") or self.host_ip
        if not ip:
            raise CNIError("host-network pod: the node address is not known yet")
        return PortInfo(ip, "", "", "", "", node=self.node_name)
