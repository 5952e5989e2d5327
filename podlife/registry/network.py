"""``network.podlife.io/v1`` kinds: Port and Subnet, the Neutron-style network objects.

Kuryr-Kubernetes keeps its ports in Neutron; podlife keeps them in the API, so that
``kubectl get ports`` shows what the network controller allocated for each pod:

- ``Subnet`` (namespaced): a block of the pod range owned by a namespace (or, with
  ``--subnet-per node``, by a node: then ``spec.node`` names it).
  ``spec: {cidr, gateway, allocationPools: [{start, end}], node?}``,
  ``status: {allocated, used, reserved, free}`` (only through ``subnets/status``).
- ``Port`` (namespaced, named after its pod): one pod's address, with Neutron's port
  attributes: ``spec: {subnet, macAddress, fixedIPs: [{ipAddress, subnet}], podName, podUID,
  nodeName, adminStateUp, securityGroups, deviceOwner, deviceID, hostID, vifType, vnicType,
  vifDetails}``, ``status: {phase: DOWN|ACTIVE}``.

Both kinds have a ``status`` subresource, as Kubernetes kinds do: writes to the main
resource keep the stored status, so the network controller (which writes ports) can never
undo the ``ACTIVE`` the node's CNI plugin patched through ``ports/status``. A new Port
always starts ``DOWN`` (Neutron's state for a port nothing is plugged into), whatever the
create request says -- the way a new Pod always starts ``Pending``.
"""

from __future__ import annotations

import ipaddress
import re

from .types import FieldError, Obj, Strategy, invalid, required

_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")

#: Neutron's port states podlife uses: nothing plugged yet / plugged by the CNI plugin
PORT_DOWN = "DOWN"
PORT_ACTIVE = "ACTIVE"
PORT_PHASES = (PORT_DOWN, PORT_ACTIVE)


class SubnetStrategy(Strategy):
    has_status = True

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [required("spec")]
        errs: list[FieldError] = []
        try:
            net = ipaddress.ip_network(str(spec.get("cidr")))
        except ValueError:
            return [invalid("spec.cidr", spec.get("cidr"), "must be a CIDR such as 10.244.0.0/24")]
        gw = spec.get("gateway")
        if gw is not None:
            try:
                if ipaddress.ip_address(gw) not in net:
                    errs.append(invalid("spec.gateway", gw, "must be inside spec.cidr"))
            except ValueError:
                errs.append(invalid("spec.gateway", gw, "must be an IP address"))
        pools = spec.get("allocationPools")
        if pools is not None:
            errs.extend(_validate_pools(pools, net))
        return errs


def _validate_pools(pools: object, net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> list[FieldError]:
    if not isinstance(pools, list):
        return [invalid("spec.allocationPools", pools, "must be a list of {start, end}")]
    errs: list[FieldError] = []
    for i, pool in enumerate(pools):
        if not isinstance(pool, dict):
            errs.append(invalid(f"spec.allocationPools[{i}]", pool, "must be {start, end}"))
            continue
        try:
            start, end = ipaddress.ip_address(str(pool.get("start"))), ipaddress.ip_address(str(pool.get("end")))
        except ValueError:
            errs.append(invalid(f"spec.allocationPools[{i}]", pool, "start and end must be IP addresses"))
            continue
        if start not in net or end not in net or int(start) > int(end):
            errs.append(invalid(f"spec.allocationPools[{i}]", pool, "must be an address range inside spec.cidr"))
    return errs


class PortStrategy(Strategy):
    has_status = True

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"phase": PORT_DOWN}

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [required("spec")]
        errs: list[FieldError] = []
        mac = spec.get("macAddress")
        if not isinstance(mac, str) or not _MAC_RE.match(mac):
            errs.append(invalid("spec.macAddress", mac, "must be a lower-case MAC address such as fa:16:3e:00:00:01"))
        ips = spec.get("fixedIPs")
        if not isinstance(ips, list) or not ips:
            errs.append(required("spec.fixedIPs"))
        else:
            for i, fip in enumerate(ips):
                try:
                    ipaddress.ip_address(str((fip or {}).get("ipAddress")))
                except ValueError:
                    errs.append(invalid(f"spec.fixedIPs[{i}].ipAddress", (fip or {}).get("ipAddress"), "must be an IP address"))
        groups = spec.get("securityGroups")
        if groups is not None and (not isinstance(groups, list) or not all(isinstance(g, str) for g in groups)):
            errs.append(invalid("spec.securityGroups", groups, "must be a list of names"))
        admin = spec.get("adminStateUp")
        if admin is not None and not isinstance(admin, bool):
            errs.append(invalid("spec.adminStateUp", admin, "must be a boolean"))
        return errs

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        phase = (new.get("status") or {}).get("phase")
        if phase is not None and phase not in PORT_PHASES:
            return [invalid("status.phase", phase, f"must be one of {', '.join(PORT_PHASES)}")]
        return []
