"""``network.podlife.io/v1`` kinds: Port and Subnet, the Neutron-style network objects.

Kuryr-Kubernetes keeps its ports in Neutron; podlife keeps them in the API, so that
``kubectl get ports`` shows what the network controller allocated for each pod:

- ``Subnet`` (namespaced): a block of the pod range owned by a namespace.
  ``spec: {cidr, gateway}``, ``status: {allocated}``.
- ``Port`` (namespaced, named after its pod): one pod's address.
  ``spec: {subnet, macAddress, fixedIPs: [{ipAddress, subnet}], podName, podUID, nodeName}``,
  ``status: {phase: Active|Down}``.
"""

from __future__ import annotations

import ipaddress
import re

from .types import FieldError, Obj, Strategy, invalid, required

_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


class SubnetStrategy(Strategy):
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
        return errs


class PortStrategy(Strategy):
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
        return errs
