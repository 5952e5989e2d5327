"""The port annotation as a node reads it: what both the kubelet and the ``podlife-cni`` plugin parse.

Why its own module: the plugin executable starts once per pod, so what it imports is
paid per pod; this module imports nothing beyond the standard library and the
constants (no asyncio, no client), where :mod:`podlife.node.cni` (the kubelet's side)
needs both.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any

from ..machinery.constants import PORT_ANNOTATION

__all__ = ["CNIError", "PortInfo", "read_port_annotation"]


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


def read_port_annotation(pod: dict[str, Any]) -> PortInfo:
    """The port recorded on ``pod``; :class:`CNIError` if it is missing or malformed."""
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(PORT_ANNOTATION)
    if raw is None:
        raise CNIError("port annotation not present yet")
    try:
        doc = json.loads(raw)
    except ValueError as exc:
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
