"""Tables for podlife's own ``network.podlife.io/v1`` kinds: Port and Subnet.

Field names (shared with the network controller):

* Port: ``spec.subnet`` (Subnet name), ``spec.macAddress``,
  ``spec.fixedIPs: [{ipAddress, subnet}]``, ``spec.podName``, ``spec.podUID``,
  ``spec.nodeName``, ``spec.deviceID``/``deviceOwner``/``vifType``/``securityGroups``,
  ``status.phase`` (``DOWN`` / ``ACTIVE``).
* Subnet: ``spec.cidr``, ``spec.gateway``, ``spec.node`` (subnet per node),
  ``status.used`` (ports of pods), ``status.reserved`` (port pool), ``status.free``;
  older objects only have ``status.allocated``.

The layout mirrors what ``openstack port list`` conveys (name, MAC, fixed
IPs) in kubectl's style: ``<none>`` for absent values, AGE last among the
normal columns, placement details only with ``-o wide``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ._base import (
    JSON,
    NONE,
    TablePrinter,
    age,
    age_column,
    as_int,
    as_list,
    column,
    name_column,
    name_of,
    or_placeholder,
    spec,
    status,
    wide,
)

NETWORK_GROUP = "network.podlife.io"


def _fixed_ips(port: Mapping[str, Any]) -> list[JSON]:
    return [entry for entry in as_list(spec(port).get("fixedIPs")) if isinstance(entry, dict)]


def port_ips(port: Mapping[str, Any]) -> str:
    return ",".join(str(e["ipAddress"]) for e in _fixed_ips(port) if e.get("ipAddress")) or NONE


def port_subnet(port: Mapping[str, Any]) -> str:
    """``spec.subnet``, else the subnet of the first fixed IP."""
    subnet = spec(port).get("subnet")
    if not subnet:
        subnet = next((e.get("subnet") for e in _fixed_ips(port) if e.get("subnet")), None)
    return or_placeholder(subnet)


def _node(port: Mapping[str, Any]) -> str:
    return or_placeholder(spec(port).get("nodeName") or spec(port).get("hostID"))


def _joined(value: Any) -> str:
    return ",".join(str(v) for v in as_list(value) if v) or NONE


def _port_cells(port: JSON, now: datetime) -> list[Any]:
    return [
        name_of(port),
        port_ips(port),
        or_placeholder(spec(port).get("macAddress")),
        port_subnet(port),
        _node(port),
        or_placeholder(status(port).get("phase")),
        age(port, now),
        or_placeholder(spec(port).get("deviceID") or spec(port).get("podUID")),
        or_placeholder(spec(port).get("deviceOwner")),
        or_placeholder(spec(port).get("vifType")),
        _joined(spec(port).get("securityGroups")),
    ]


def _capacity(cidr: Any) -> int:
    """Addresses a subnet can hand out: all but network, broadcast and gateway."""
    try:
        network = ipaddress.ip_network(str(cidr), strict=False)
    except ValueError:
        return 0
    return max(0, network.num_addresses - 3)


def subnet_counts(subnet: Mapping[str, Any]) -> tuple[int, int]:
    """``(used, free)``: from ``status``; free falls back to the CIDR's room."""
    st = status(subnet)
    used = as_int(st.get("used", st.get("allocated")))
    if "free" in st:
        return used, as_int(st.get("free"))
    return used, max(0, _capacity(spec(subnet).get("cidr")) - as_int(st.get("allocated", used)))


def _subnet_cells(subnet: JSON, now: datetime) -> list[Any]:
    used, free = subnet_counts(subnet)
    return [
        name_of(subnet),
        or_placeholder(spec(subnet).get("cidr")),
        or_placeholder(spec(subnet).get("gateway")),
        used,
        free,
        age(subnet, now),
        as_int(status(subnet).get("reserved")),
        or_placeholder(spec(subnet).get("node")),
    ]


PORT_PRINTER = TablePrinter(
    columns=(
        name_column(),
        column("IP", description="Fixed IP addresses of the port."),
        column("MAC", description="MAC address of the port."),
        column("Subnet", description="Subnet the port's addresses come from."),
        column("Node", description="Node the port is bound to (binding:host_id)."),
        column("Status", description="Status of the port: DOWN until the CNI plugin plugged it, then ACTIVE."),
        age_column(),
        wide("Pod UID", description="UID of the pod the port is plugged into (device_id)."),
        wide("Device Owner", description="What uses the port (device_owner)."),
        wide("VIF Type", description="How the port is plugged (binding:vif_type)."),
        wide("Security Groups", description="Security groups applied to the port."),
    ),
    cells=_port_cells,
)

SUBNET_PRINTER = TablePrinter(
    columns=(
        name_column(),
        column("CIDR", description="Address range of the subnet."),
        column("Gateway", description="Gateway address of the subnet."),
        column("Used", "integer", "Number of addresses the subnet's ports use."),
        column("Free", "integer", "Number of addresses still free in the subnet."),
        age_column(),
        wide("Reserved", "integer", "Number of addresses held by the port pool."),
        wide("Node", description="Node the subnet belongs to (subnet per node)."),
    ),
    cells=_subnet_cells,
)

PRINTERS: dict[tuple[str, str], TablePrinter] = {
    (NETWORK_GROUP, "Port"): PORT_PRINTER,
    (NETWORK_GROUP, "Subnet"): SUBNET_PRINTER,
}
