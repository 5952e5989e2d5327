"""Tables for podlife's own ``network.podlife.io/v1`` kinds: Port and Subnet.

Field names (shared with the network controller):

* Port: ``spec.subnet`` (Subnet name), ``spec.macAddress``,
  ``spec.fixedIPs: [{ipAddress, subnet}]``, ``spec.podName``, ``spec.podUID``,
  ``spec.nodeName``, ``status.phase`` (``Active`` / ``Down``).
* Subnet: ``spec.cidr``, ``spec.gateway``, ``spec.namespace`` (optional),
  ``status.allocated`` (number of addresses handed out).

The layout mirrors what ``openstack port list`` conveys (name, MAC, fixed
IPs) in kubectl's style: ``<none>`` for absent values, AGE last among the
normal columns, placement details only with ``-o wide``.
"""

from __future__ import annotations

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


def _pod_reference(port: Mapping[str, Any]) -> str:
    return or_placeholder(spec(port).get("podName"))


def _port_cells(port: JSON, now: datetime) -> list[Any]:
    return [
        name_of(port),
        port_ips(port),
        or_placeholder(spec(port).get("macAddress")),
        port_subnet(port),
        or_placeholder(status(port).get("phase")),
        age(port, now),
        or_placeholder(spec(port).get("nodeName")),
        _pod_reference(port),
        or_placeholder(spec(port).get("podUID")),
    ]


def _subnet_cells(subnet: JSON, now: datetime) -> list[Any]:
    return [
        name_of(subnet),
        or_placeholder(spec(subnet).get("cidr")),
        or_placeholder(spec(subnet).get("gateway")),
        age(subnet, now),
        as_int(status(subnet).get("allocated")),
    ]


PORT_PRINTER = TablePrinter(
    columns=(
        name_column(),
        column("IP", description="Fixed IP addresses of the port."),
        column("MAC", description="MAC address of the port."),
        column("Subnet", description="Subnet the port's addresses come from."),
        column("Status", description="Phase of the port: Active or Down."),
        age_column(),
        wide("Node", description="Node hosting the port."),
        wide("Pod", description="Pod the port is plugged into."),
        wide("Pod-UID", description="UID of the pod the port is plugged into."),
    ),
    cells=_port_cells,
)

SUBNET_PRINTER = TablePrinter(
    columns=(
        name_column(),
        column("CIDR", description="Address range of the subnet."),
        column("Gateway", description="Gateway address of the subnet."),
        age_column(),
        wide("Allocated", "integer", "Number of addresses allocated from the subnet."),
    ),
    cells=_subnet_cells,
)

PRINTERS: dict[tuple[str, str], TablePrinter] = {
    (NETWORK_GROUP, "Port"): PORT_PRINTER,
    (NETWORK_GROUP, "Subnet"): SUBNET_PRINTER,
}
