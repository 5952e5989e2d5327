"""Validation of Services and Endpoints, as Kubernetes' ``ValidateService`` and ``ValidateEndpoints``.

What it reads: a Service or Endpoints after defaulting (``protocol: TCP``, ``targetPort``
from ``port``, ``sessionAffinity: None``, ``type: ClusterIP``) and, on update, the
stored one. What it writes: field errors for the strategies of :mod:`podlife.registry.core`.
Why: kube-proxy-like consumers (the network controller, DNS) act on what is stored; a
port 0, two unnamed ports, or a nodePort on a ClusterIP Service would be stored and then
break routing silently.

Kubernetes facts followed (``pkg/apis/core/validation/validation.go``: ``ValidateService``,
``validateServicePort``, ``ValidatePortNumOrName``, ``validateEndpointSubsets``,
``validateEndpointPort``; ``pkg/registry/core/service/portallocator``):

* ``type`` one of ClusterIP, ExternalName, LoadBalancer, NodePort; an ExternalName
  Service needs ``externalName`` (a DNS-1123 subdomain, a trailing dot allowed) and no
  ``clusterIP``;
* ports required unless the Service is headless (``clusterIP: None``) or ExternalName;
  each port 1-65535, a protocol TCP/UDP/SCTP, a name (a DNS label) required when there
  is more than one and unique; ``(protocol, port)`` pairs unique; ``targetPort`` a port
  number or an IANA service name;
* ``nodePort`` only for NodePort/LoadBalancer, unique per protocol (its range, 30000-32767
  by default, is checked by the allocator, :mod:`podlife.registry.node_ports`);
* the selector's keys and values are label keys and values; ``sessionAffinity``
  ClientIP/None with a ClientIP timeout in (0, 86400]; ``ipFamilies`` IPv4/IPv6, no
  family twice; ``ipFamilyPolicy`` SingleStack/PreferDualStack/RequireDualStack;
  ``externalTrafficPolicy``/``internalTrafficPolicy`` Cluster/Local;
* on update the primary cluster IP may not change (``may not change once set``) unless the
  Service moves to or from ExternalName; an update that leaves it out keeps the old one.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from ..machinery.names import dns1123_label_errors
from .field_rules import GoValue, go_int_or_string, go_strings, is_int, subdomain_errors, unique_supported
from .pod_validation import iana_service_name_errors
from .types import FieldError, Obj, forbidden, invalid, not_supported, required
from .validation import validate_label_map

SERVICE_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
PROTOCOLS = ["SCTP", "TCP", "UDP"]
AFFINITIES = ["ClientIP", "None"]
IP_FAMILIES = ["IPv4", "IPv6"]
FAMILY_POLICIES = ["PreferDualStack", "RequireDualStack", "SingleStack"]
TRAFFIC_POLICIES = ["Cluster", "Local"]
NODE_PORT_RANGE = (30000, 32767)
_PORT_RANGE = "must be between 1 and 65535, inclusive"
_MAX_AFFINITY_TIMEOUT = 86400


def _port_number_errors(value: Any, path: str) -> list[FieldError]:
    if not is_int(value) or not 0 < value < 65536:
        return [invalid(path, value if value is not None else 0, _PORT_RANGE)]
    return []


def validate_port_num_or_name(value: Any, path: str) -> list[FieldError]:
    """``ValidatePortNumOrName``: a port number, or an IANA service name."""
    if isinstance(value, str):
        return [invalid(path, value, m) for m in iana_service_name_errors(value)]
    if is_int(value):
        return _port_number_errors(value, path)
    return [invalid(path, value, "must be an integer or a string")]


# --------------------------------------------------------------------------- Service


def validate_service(obj: Obj) -> list[FieldError]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    kind = spec.get("type")
    headless = spec.get("clusterIP") == "None"
    errs: list[FieldError] = []
    if kind == "ExternalName":
        if spec.get("clusterIP"):
            errs.append(forbidden("spec.clusterIP", "may not be set for ExternalName services"))
        cname = str(spec.get("externalName") or "").removesuffix(".")
        errs += subdomain_errors(cname, "spec.externalName") if cname else [required("spec.externalName")]
    ports = spec.get("ports") or []
    if not isinstance(ports, list):
        return errs + [invalid("spec.ports", ports, "must be a list")]
    if not ports and not headless and kind != "ExternalName":
        errs.append(required("spec.ports"))
    names: set[str] = set()
    for i, port in enumerate(ports):
        errs += _service_port(port if isinstance(port, dict) else {}, len(ports) > 1, names, f"spec.ports[{i}]")
    errs += _cluster_ip(spec, kind)
    if kind not in SERVICE_TYPES:
        errs.append(not_supported("spec.type", kind if kind is not None else "", SERVICE_TYPES))
    errs += _node_ports(ports, kind)
    errs += _duplicate_ports(ports)
    selector = spec.get("selector")
    if selector is not None:
        errs += [FieldError(e.type, "spec.selector", e.detail, e.value) for e in validate_label_map(selector)]
    errs += _session_affinity(spec)
    errs += _families(spec, kind)
    for key in ("externalTrafficPolicy", "internalTrafficPolicy"):
        value = spec.get(key)
        if value is not None and value not in TRAFFIC_POLICIES:
            errs.append(not_supported(f"spec.{key}", value, TRAFFIC_POLICIES))
    for i, ip in enumerate(spec.get("externalIPs") or []):
        if not _is_ip(ip):
            errs.append(invalid(f"spec.externalIPs[{i}]", ip, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
    return errs


def _service_port(port: Obj, require_name: bool, names: set[str], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    name = port.get("name")
    if require_name and not name:
        errs.append(required(f"{path}.name"))
    elif name:
        errs += [invalid(f"{path}.name", name, m) for m in dns1123_label_errors(str(name))]
        if name in names:
            errs.append(FieldError("FieldValueDuplicate", f"{path}.name", "", name))
        names.add(str(name))
    errs += _port_number_errors(port.get("port"), f"{path}.port")
    protocol = port.get("protocol")
    if not protocol:
        errs.append(required(f"{path}.protocol"))
    elif protocol not in PROTOCOLS:
        errs.append(not_supported(f"{path}.protocol", protocol, PROTOCOLS))
    if port.get("targetPort") is not None:
        errs += validate_port_num_or_name(port.get("targetPort"), f"{path}.targetPort")
    return errs


def _cluster_ip(spec: Obj, kind: Any) -> list[FieldError]:
    ip = spec.get("clusterIP")
    if ip == "None" and kind not in (None, "ClusterIP", "ExternalName"):
        return [invalid("spec.clusterIPs[0]", "None", f"may not be set to 'None' for {kind} services")]
    if ip and ip != "None" and kind != "ExternalName" and not _is_ip(ip):
        return [invalid("spec.clusterIPs[0]", ip, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")]
    return []


def _node_ports(ports: list[Any], kind: Any) -> list[FieldError]:
    errs: list[FieldError] = []
    seen: set[tuple[Any, Any]] = set()
    for i, port in enumerate(ports):
        if not isinstance(port, dict) or not port.get("nodePort"):
            continue
        node_port, path = port["nodePort"], f"spec.ports[{i}].nodePort"
        if kind not in ("NodePort", "LoadBalancer"):
            errs.append(forbidden(path, f"may not be used when `type` is '{kind}'"))
            continue
        # the range (``--service-node-port-range``) is the allocator's to check: podlife.registry.node_ports
        errs += _port_number_errors(node_port, path)
        key = (port.get("protocol"), node_port)
        if key in seen:
            errs.append(FieldError("FieldValueDuplicate", path, "", node_port))
        seen.add(key)
    return errs


def _duplicate_ports(ports: list[Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    seen: set[tuple[Any, Any]] = set()
    for i, port in enumerate(ports):
        if not isinstance(port, dict):
            continue
        key = (port.get("protocol"), port.get("port"))
        if key in seen:
            shown = GoValue(f'core.ServicePort{{Name:"", Protocol:"{key[0] or ""}", AppProtocol:(*string)(nil), '
                            f'Port:{key[1] if is_int(key[1]) else 0}, TargetPort:{go_int_or_string(0).text}, NodePort:0}}')
            errs.append(FieldError("FieldValueDuplicate", f"spec.ports[{i}]", "", shown))
        seen.add(key)
    return errs


def _session_affinity(spec: Obj) -> list[FieldError]:
    affinity = spec.get("sessionAffinity")
    if affinity not in AFFINITIES:
        return [not_supported("spec.sessionAffinity", affinity if affinity is not None else "", AFFINITIES)]
    if affinity != "ClientIP":
        return []
    config = spec.get("sessionAffinityConfig") or {}
    timeout = ((config.get("clientIP") or {}) if isinstance(config, dict) else {}).get("timeoutSeconds")
    if not is_int(timeout) or not 0 < timeout <= _MAX_AFFINITY_TIMEOUT:
        return [invalid("spec.sessionAffinityConfig.clientIP.timeoutSeconds", timeout if timeout is not None else 0,
                        f"must be greater than 0 and less than {_MAX_AFFINITY_TIMEOUT}")]
    return []


def _families(spec: Obj, kind: Any) -> list[FieldError]:
    errs: list[FieldError] = []
    policy = spec.get("ipFamilyPolicy")
    if kind == "ExternalName":
        return errs
    if policy is not None and policy not in FAMILY_POLICIES:
        errs.append(not_supported("spec.ipFamilyPolicy", policy, FAMILY_POLICIES))
    families = spec.get("ipFamilies") or []
    errs += unique_supported(families, IP_FAMILIES, "spec.ipFamilies")[0]
    if len(families) > 2:
        errs.append(invalid("spec.ipFamilies", go_strings(families), "may not have more than 2 entries"))
    if policy == "SingleStack" and len(families) > 1:
        errs.append(invalid("spec.ipFamilies", go_strings(families), "when spec.ipFamilyPolicy is SingleStack, "
                                                                     "spec.ipFamilies may not have more than one entry"))
    return errs


def _is_ip(value: Any) -> bool:
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return False
    return True


def keep_cluster_ip(new: Obj, old: Obj) -> None:
    """An update that leaves the cluster IP out keeps the allocated one (Kubernetes' ``patchAllocatedValues``)."""
    new_spec, old_spec = new.get("spec"), old.get("spec") or {}
    if not isinstance(new_spec, dict) or new_spec.get("type") == "ExternalName" or old_spec.get("type") == "ExternalName":
        return
    if not new_spec.get("clusterIP") and old_spec.get("clusterIP"):
        new_spec["clusterIP"] = old_spec["clusterIP"]
        if old_spec.get("clusterIPs"):
            new_spec["clusterIPs"] = list(old_spec["clusterIPs"])
    if not new_spec.get("clusterIPs") and old_spec.get("clusterIPs") and new_spec.get("clusterIP") == old_spec.get("clusterIP"):
        new_spec["clusterIPs"] = list(old_spec["clusterIPs"])


def validate_service_update(new: Obj, old: Obj) -> list[FieldError]:
    new_spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
    if "ExternalName" in (new_spec.get("type"), old_spec.get("type")):
        return []
    before, after = old_spec.get("clusterIP"), new_spec.get("clusterIP")
    if before and before != after:
        return [invalid("spec.clusterIPs[0]", go_strings([after] if after else []), "may not change once set")]
    return []


# --------------------------------------------------------------------------- Endpoints


def validate_endpoints(obj: Obj) -> list[FieldError]:
    subsets = obj.get("subsets") or []
    if not isinstance(subsets, list):
        return [invalid("subsets", subsets, "must be a list")]
    errs: list[FieldError] = []
    for i, subset in enumerate(subsets):
        subset = subset if isinstance(subset, dict) else {}
        path = f"subsets[{i}]"
        if not subset.get("addresses") and not subset.get("notReadyAddresses"):
            errs.append(required(path, "must specify `addresses` or `notReadyAddresses`"))
        for key in ("addresses", "notReadyAddresses"):
            for j, address in enumerate(subset.get(key) or []):
                errs += _endpoint_address(address if isinstance(address, dict) else {}, f"{path}.{key}[{j}]")
        ports = subset.get("ports") or []
        for j, port in enumerate(ports):
            errs += _endpoint_port(port if isinstance(port, dict) else {}, len(ports) > 1, f"{path}.ports[{j}]")
    return errs


def _endpoint_address(address: Obj, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    ip = address.get("ip")
    if not _is_ip(ip):
        errs.append(invalid(f"{path}.ip", ip if ip is not None else "", "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
    hostname = address.get("hostname")
    if hostname:
        errs += [invalid(f"{path}.hostname", hostname, m) for m in dns1123_label_errors(str(hostname))]
    node = address.get("nodeName")
    if node:
        errs += subdomain_errors(node, f"{path}.nodeName")
    return errs


def _endpoint_port(port: Obj, require_name: bool, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    name = port.get("name")
    if require_name and not name:
        errs.append(required(f"{path}.name"))
    elif name:
        errs += [invalid(f"{path}.name", name, m) for m in dns1123_label_errors(str(name))]
    errs += _port_number_errors(port.get("port"), f"{path}.port")
    protocol = port.get("protocol")
    if not protocol:
        errs.append(required(f"{path}.protocol"))
    elif protocol not in PROTOCOLS:
        errs.append(not_supported(f"{path}.protocol", protocol, PROTOCOLS))
    return errs
