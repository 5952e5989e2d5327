"""Kubernetes' validation of the networking and discovery kinds.

What it checks: Ingress, IngressClass and NetworkPolicy (``networking.k8s.io/v1``) and
EndpointSlice (``discovery.k8s.io/v1``), as ``pkg/apis/networking/validation`` and
``pkg/apis/discovery/validation`` do: required fields, one-of backends, ports, CIDRs,
selectors, immutable fields. Why: nothing schema-invalid is stored, and each refusal is the
field error Kubernetes writes, so a user's fix is the one Kubernetes would ask for. An
ingress controller, a CNI plugin or kube-proxy reading a stored Ingress without a path
type, a NetworkPolicy whose ``except`` lies outside its ``cidr`` or an EndpointSlice with
a loopback address would otherwise act on nonsense far from the user.

Kubernetes facts followed (release 1.37, feature gates at their defaults: ``StrictIPCIDRValidation``
and ``RelaxedServiceNameValidation`` off):

* Ingress: ``defaultBackend`` or ``rules``; a backend is a ``service`` or a ``resource``,
  never both; a service backend has a DNS-1035 name and a port name (IANA service name)
  or number (1-65535), not both; every HTTP path has a ``pathType`` (Exact, Prefix,
  ImplementationSpecific), Exact/Prefix paths are absolute with no ``//``, ``/./``,
  ``/../``, ``%2f`` and no ``/..``/``/.`` ending; rule hosts are DNS-1123 subdomains or
  ``*.`` wildcards, never IP addresses; TLS hosts likewise, TLS secret names subdomains;
  ``ingressClassName`` a subdomain and, when the ``kubernetes.io/ingress.class`` annotation
  is set too, equal to it; status load-balancer IPs are IPs and hostnames DNS names;
* IngressClass: ``controller`` required, at most 250 bytes, a domain-prefixed path, and
  immutable; ``parameters`` has a kind and a name (path segments), an optional subdomain
  ``apiGroup``, a scope Cluster/Namespace with a namespace (a DNS label) exactly when
  Namespace;
* NetworkPolicy: ``podSelector`` and peer selectors are valid label selectors; a peer sets
  something, and an ``ipBlock`` alone; ``cidr`` is a CIDR and each ``except`` a strict
  subset of it; ports have protocol TCP/UDP/SCTP, a number (1-65535) or IANA name, an
  ``endPort`` only with a numeric ``port`` and not below it; at most two ``policyTypes``,
  each Ingress/Egress;
* EndpointSlice: ``addressType`` required, IPv4/IPv6/FQDN, immutable; at most 1000
  endpoints of 1 to 100 addresses valid for the type (IPs neither unspecified, loopback
  nor link-local), a DNS-label ``hostname``, a subdomain ``nodeName``, at most 16
  ``deprecatedTopology`` labels, at most 8 zone and 8 node hints; at most 20000 ports
  (Kubernetes raised the old 100 limit), each with a unique DNS-label name, a protocol
  TCP/UDP/SCTP and a qualified-name ``appProtocol``. ``conditions`` are booleans
  Kubernetes does not validate further.

Where Kubernetes' generic helpers and podlife's shared ones disagree, the rule is written
here (``_label_errors`` adds IsDNS1123Label's "must not contain dots", ``port_name_errors``
is IsValidPortName's order and wording, ``_too_long`` is the current TooLong wording):
see the notes on each.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from ..machinery.names import (
    dns1123_label_errors,
    dns1123_subdomain_errors,
    label_value_errors,
    path_segment_errors,
    qualified_name_errors,
    regex_error,
)
from ..machinery.selectors import go_quote
from .crds.field_errors import too_many_error
from .crds.strategy import dns1035_label_errors
from .field_rules import GoValue, immutable, is_int, retarget
from .rbac import validate_label_selector
from .types import FieldError, Obj, forbidden, invalid, not_supported, required
from .validation import validate_label_map

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

PROTOCOLS = ["TCP", "UDP", "SCTP"]  # the order NetworkPolicy's message lists them in
SORTED_PROTOCOLS = sorted(PROTOCOLS)  # EndpointSlice lists a sorted set
PATH_TYPES = ["Exact", "ImplementationSpecific", "Prefix"]
POLICY_TYPES = ["Ingress", "Egress"]
PARAMETER_SCOPES = ["Cluster", "Namespace"]
ADDRESS_TYPES = ["FQDN", "IPv4", "IPv6"]
INGRESS_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
MAX_CONTROLLER_BYTES = 250
MAX_ENDPOINTS = 1000
MAX_ADDRESSES = 100
MAX_PORTS = 20000
MAX_TOPOLOGY_LABELS = 16
MAX_ZONE_HINTS = 8
MAX_NODE_HINTS = 8

_PORT_RANGE = "must be between 1 and 65535, inclusive"
_IP_MESSAGE = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
_CIDR_MESSAGE = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
_NOT_IP = "must be a DNS name, not an IP address"
_INVALID_PATH_SEQUENCES = ("//", "/./", "/../", "%2f", "%2F")
_INVALID_PATH_SUFFIXES = ("/..", "/.")
_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_LABEL_RE = re.compile(_LABEL_FMT)
_SUBDOMAIN_RE = re.compile(_LABEL_FMT + r"(\." + _LABEL_FMT + ")*")
_WILDCARD_FMT = r"\*\." + _LABEL_FMT + r"(\." + _LABEL_FMT + ")*"
_WILDCARD_RE = re.compile(_WILDCARD_FMT)
_WILDCARD_MESSAGE = regex_error("a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, "
                                "which must consist of lower case alphanumeric characters, '-' or '.' and end with an "
                                "alphanumeric character", _WILDCARD_FMT, "*.example.com")
_HTTP_PATH_FMT = r"[A-Za-z0-9/\-._~%!$&'()*+,;=:]+"
_HTTP_PATH_RE = re.compile(_HTTP_PATH_FMT)
_PORT_NAME_CHARS = re.compile("[-a-z0-9]+")
_DIGITS = re.compile("[0-9]+")


# --------------------------------------------------------------------------- small shared rules


def _dict(value: Any) -> Obj:
    """A decoded sub-object, or an empty one (a wrong shape is the schema checker's business)."""
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _strings_in(path: str, value: str, problems: list[str]) -> list[FieldError]:
    return [invalid(path, value, m) for m in problems]


def _label_errors(value: str) -> list[str]:
    """``IsDNS1123Label``: a valid subdomain that is no label fails only for its dots.

    :func:`~podlife.machinery.names.dns1123_label_errors` lacks that case (it answers the
    regex message), so it is refined here rather than copied.
    """
    problems = dns1123_label_errors(value)
    if not _LABEL_RE.fullmatch(value) and _SUBDOMAIN_RE.fullmatch(value):
        return [p for p in problems if p.startswith("must be no more than")] + ["must not contain dots"]
    return problems


def port_name_errors(name: str) -> list[str]:
    """``IsValidPortName`` in Kubernetes' order and words.

    :func:`~podlife.registry.pod_validation.iana_service_name_errors` reports a leading or
    trailing hyphen as a bad character and checks the letter after the hyphens, so a
    Kubernetes message would differ; this one is the apimachinery rule.
    """
    problems = []
    if len(name) > 15:
        problems.append("must be no more than 15 characters")
    if not _PORT_NAME_CHARS.fullmatch(name):
        problems.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search("[a-z]", name):
        problems.append("must contain at least one letter (a-z)")
    if "--" in name:
        problems.append("must not contain consecutive hyphens")
    if name.startswith("-") or name.endswith("-"):
        problems.append("must not begin or end with a hyphen")
    return problems


def _port_number_errors(number: Any, path: str) -> list[FieldError]:
    """``IsValidPortNum``: 1-65535."""
    if is_int(number) and 1 <= number <= 65535:
        return []
    return [invalid(path, number, _PORT_RANGE)]


def _too_long(path: str, limit: int) -> FieldError:
    """``field.TooLong`` as apimachinery words it now (``field_rules.too_long`` has the old wording)."""
    return FieldError("FieldValueTooLong", path, f"may not be more than {limit} bytes")


def _host_errors(host: str, path: str) -> list[FieldError]:
    """A wildcard (``*.example.com``) or plain DNS-1123 subdomain."""
    if "*" in host:
        problems = ["must be no more than 253 characters"] if len(host) > 253 else []
        if not _WILDCARD_RE.fullmatch(host):
            problems.append(_WILDCARD_MESSAGE)
        return _strings_in(path, host, problems)
    return _strings_in(path, host, dns1123_subdomain_errors(host))


# --------------------------------------------------------------------------- IPs and CIDRs


def parse_ip_sloppy(text: Any) -> IPAddress | None:
    """An IP as Kubernetes' ``ParseIPSloppy`` reads it: IPv4 octets may have leading zeros.

    Python refuses leading zeros and accepts IPv6 zones (``fe80::1%eth0``); Go does the
    opposite, and with ``StrictIPCIDRValidation`` off Kubernetes follows Go.
    """
    if not isinstance(text, str) or not text or "%" in text:
        return None
    if ":" not in text:
        octets = text.split(".")
        if len(octets) != 4 or not all(_DIGITS.fullmatch(o) and int(o) <= 255 for o in octets):
            return None
        return ipaddress.IPv4Address(".".join(str(int(o)) for o in octets))
    try:
        return ipaddress.IPv6Address(text)
    except ValueError:
        return None


def _as_ipv4(ip: IPAddress) -> IPAddress:
    """Go's ``To4``: an IPv4-mapped IPv6 address is its IPv4 address."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def parse_cidr_sloppy(text: Any) -> IPNetwork | None:
    """A CIDR as ``ParseCIDRSloppy`` reads it: a sloppy IP, ``/``, a decimal prefix length."""
    if not isinstance(text, str) or "/" not in text:
        return None
    address, _, length = text.partition("/")
    ip = parse_ip_sloppy(address)
    if ip is None or not _DIGITS.fullmatch(length) or int(length) > ip.max_prefixlen:
        return None
    return ipaddress.ip_network(f"{ip}/{int(length)}", strict=False)


def _cidr_errors(value: Any, path: str) -> list[FieldError]:
    """``IsValidCIDRForLegacyField`` without strict validation."""
    return [] if parse_cidr_sloppy(value) is not None else [invalid(path, value, _CIDR_MESSAGE)]


def endpoint_ip_errors(address: str, path: str) -> list[FieldError]:
    """``ValidateEndpointIP``: no unspecified, loopback or link-local address behind a Service."""
    parsed = parse_ip_sloppy(address)
    if parsed is None:
        return [invalid(path, address, "must be a valid IP address")]
    ip = _as_ipv4(parsed)
    errs: list[FieldError] = []
    if ip.is_unspecified:
        errs.append(invalid(path, address, f"may not be unspecified ({address})"))
    if ip.is_loopback:
        errs.append(invalid(path, address, "may not be in the loopback range (127.0.0.0/8, ::1/128)"))
    if ip.is_link_local:
        errs.append(invalid(path, address, "may not be in the link-local range (169.254.0.0/16, fe80::/10)"))
    if _is_link_local_multicast(ip):
        errs.append(invalid(path, address, "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"))
    return errs


def _is_link_local_multicast(ip: IPAddress) -> bool:
    """Go's ``IsLinkLocalMulticast``: 224.0.0.0/24, or ``ffX2::/16`` for any flags X."""
    packed = ip.packed
    if ip.version == 4:
        return packed[:3] == b"\xe0\x00\x00"
    return packed[0] == 0xFF and packed[1] & 0x0F == 0x02


# --------------------------------------------------------------------------- Ingress


def validate_ingress(obj: Obj) -> list[FieldError]:
    """``ValidateIngressCreate``: the spec, and the class annotation agreeing with ``ingressClassName``."""
    spec = _dict(obj.get("spec"))
    errs = _ingress_spec(spec)
    annotations = _dict(_dict(obj.get("metadata")).get("annotations"))
    class_name = spec.get("ingressClassName")
    annotated = annotations.get(INGRESS_CLASS_ANNOTATION)
    if annotated is not None and class_name is not None and annotated != class_name:
        errs.append(invalid(f"annotations.{INGRESS_CLASS_ANNOTATION}", annotated,
                            "must match `ingressClassName` when both are specified"))
    return errs


def validate_ingress_update(new: Obj, old: Obj) -> list[FieldError]:
    """Nothing beyond the create rules: Kubernetes freezes no Ingress field."""
    return []


def validate_ingress_status_update(new: Obj, old: Obj) -> list[FieldError]:
    """``ValidateIngressStatusUpdate``: load-balancer IPs are IPs, hostnames DNS names (not IPs).

    For a strategy's status-update hook; the generic ``ValidatedStrategy`` has none yet.
    """
    balancer = _dict(_dict(new.get("status")).get("loadBalancer"))
    errs: list[FieldError] = []
    for i, entry in enumerate(_list(balancer.get("ingress"))):
        entry, path = _dict(entry), f"status.loadBalancer.ingress[{i}]"
        ip, hostname = entry.get("ip"), entry.get("hostname")
        if ip and parse_ip_sloppy(ip) is None:
            errs.append(invalid(f"{path}.ip", ip, _IP_MESSAGE))
        if hostname and isinstance(hostname, str):
            errs += _strings_in(f"{path}.hostname", hostname, dns1123_subdomain_errors(hostname))
            if parse_ip_sloppy(hostname) is not None:
                errs.append(invalid(f"{path}.hostname", hostname, _NOT_IP))
    return errs


def _ingress_spec(spec: Obj) -> list[FieldError]:
    errs: list[FieldError] = []
    rules, backend = spec.get("rules"), spec.get("defaultBackend")
    if not rules and backend is None:
        shown = GoValue("[]networking.IngressRule{}" if isinstance(rules, list) else "[]networking.IngressRule(nil)")
        errs.append(invalid("spec", shown, "either `defaultBackend` or `rules` must be specified"))
    if backend is not None:
        errs += _ingress_backend(_dict(backend), "spec.defaultBackend")
    for i, rule in enumerate(_list(rules)):
        errs += _ingress_rule(_dict(rule), f"spec.rules[{i}]")
    for i, tls in enumerate(_list(spec.get("tls"))):
        errs += _ingress_tls(_dict(tls), f"spec.tls[{i}]")
    class_name = spec.get("ingressClassName")
    if class_name is not None:
        errs += _strings_in("spec.ingressClassName", str(class_name), dns1123_subdomain_errors(str(class_name)))
    return errs


def _ingress_rule(rule: Obj, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    host = rule.get("host")
    if host and isinstance(host, str):
        if parse_ip_sloppy(host) is not None:
            errs.append(invalid(f"{path}.host", host, _NOT_IP))
        errs += _host_errors(host, f"{path}.host")
    http = rule.get("http")
    if http is not None:
        paths = _list(_dict(http).get("paths"))
        if not paths:
            errs.append(required(f"{path}.http.paths"))
        for i, http_path in enumerate(paths):
            errs += _ingress_path(_dict(http_path), f"{path}.http.paths[{i}]")
    return errs


def _ingress_path(entry: Obj, path: str) -> list[FieldError]:
    """``validateHTTPIngressPath``: a path type first (without one nothing else is checked)."""
    path_type = entry.get("pathType")
    if path_type is None:
        return [required(f"{path}.pathType", "pathType must be specified")]
    value = entry.get("path") or ""
    value = value if isinstance(value, str) else str(value)
    errs: list[FieldError] = []
    if path_type in ("Exact", "Prefix"):
        errs += _strict_path_errors(value, f"{path}.path")
    elif path_type == "ImplementationSpecific":
        if value and not value.startswith("/"):
            errs.append(invalid(f"{path}.path", value, "must be an absolute path"))
    else:
        errs.append(not_supported(f"{path}.pathType", path_type, PATH_TYPES))
    return errs + _ingress_backend(_dict(entry.get("backend")), f"{path}.backend")


def _strict_path_errors(value: str, path: str) -> list[FieldError]:
    """An Exact or Prefix path: absolute, and no sequence that means something else once normalized."""
    errs: list[FieldError] = []
    if not value.startswith("/"):
        errs.append(invalid(path, value, "must be an absolute path"))
    errs += [invalid(path, value, f"must not contain '{seq}'") for seq in _INVALID_PATH_SEQUENCES if seq in value]
    errs += [invalid(path, value, f"cannot end with '{end}'") for end in _INVALID_PATH_SUFFIXES if value.endswith(end)]
    return errs


def _ingress_backend(backend: Obj, path: str) -> list[FieldError]:
    """``validateIngressBackend``: exactly one of a Service (name and one port) or a resource."""
    resource, service = backend.get("resource"), backend.get("service")
    if resource is not None and service is not None:
        return [invalid(path, "", "cannot set both resource and service backends")]
    if resource is not None:
        return _typed_reference(_dict(resource), f"{path}.resource")
    if service is None:
        return [invalid(path, "", "resource or service backend is required")]
    service = _dict(service)
    errs: list[FieldError] = []
    name = service.get("name")
    if not name:
        errs.append(required(f"{path}.service.name"))
    else:
        errs += _strings_in(f"{path}.service.name", str(name), dns1035_label_errors(str(name)))
    port = _dict(service.get("port"))
    port_name, number = port.get("name") or "", port.get("number") or 0
    if port_name and number:
        errs.append(invalid(path, "", "cannot set both port name & port number"))
    elif port_name:
        errs += _strings_in(f"{path}.service.port.name", str(port_name), port_name_errors(str(port_name)))
    elif number:
        errs += _port_number_errors(number, f"{path}.service.port.number")
    else:
        errs.append(required(path, "port name or number is required"))
    return errs


def _typed_reference(ref: Obj, path: str) -> list[FieldError]:
    """``validateIngressTypedLocalObjectReference``: a kind and a name, an optional subdomain API group."""
    errs: list[FieldError] = []
    group = ref.get("apiGroup")
    if group is not None:
        errs += _strings_in(f"{path}.apiGroup", str(group), dns1123_subdomain_errors(str(group)))
    for key in ("kind", "name"):
        value = ref.get(key)
        if not value:
            errs.append(required(f"{path}.{key}"))
        else:
            errs += _strings_in(f"{path}.{key}", str(value), path_segment_errors(str(value)))
    return errs


def _ingress_tls(tls: Obj, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, host in enumerate(_list(tls.get("hosts"))):
        errs += _host_errors(str(host), f"{path}.hosts[{i}]")
    secret = tls.get("secretName")
    if secret:
        errs += _strings_in(f"{path}.secretName", str(secret), dns1123_subdomain_errors(str(secret)))
    return errs


# --------------------------------------------------------------------------- IngressClass


def validate_ingress_class(obj: Obj) -> list[FieldError]:
    """``validateIngressClassSpec``: the controller, then the parameters reference."""
    spec = _dict(obj.get("spec"))
    errs = _controller_errors(spec.get("controller"))
    parameters = spec.get("parameters")
    if parameters is not None:
        errs += _class_parameters(_dict(parameters), "spec.parameters")
    return errs


def validate_ingress_class_update(new: Obj, old: Obj) -> list[FieldError]:
    """The controller is fixed: ingress controllers pick their classes by it."""
    return immutable(_dict(new.get("spec")).get("controller") or "", _dict(old.get("spec")).get("controller") or "",
                     "spec.controller")


def _controller_errors(controller: Any) -> list[FieldError]:
    path = "spec.controller"
    if not controller:
        return [required(path)]
    controller = str(controller)
    errs = [_too_long(path, MAX_CONTROLLER_BYTES)] if len(controller.encode()) > MAX_CONTROLLER_BYTES else []
    return errs + domain_prefixed_path_errors(controller, path)


def domain_prefixed_path_errors(value: str, path: str) -> list[FieldError]:
    """``IsDomainPrefixedPath``: ``<DNS subdomain>/<HTTP path characters>`` (e.g. ``acme.io/foo``)."""
    host, slash, rest = value.partition("/")
    if not slash or not host or not rest:
        return [invalid(path, value, 'must be a domain-prefixed path (such as "acme.io/foo")')]
    errs = _strings_in(path, host, dns1123_subdomain_errors(host))
    if not _HTTP_PATH_RE.fullmatch(rest):
        errs.append(invalid(path, rest, regex_error("Invalid path", _HTTP_PATH_FMT)))
    return errs


def _class_parameters(params: Obj, path: str) -> list[FieldError]:
    """``validateIngressClassParametersReference``: the typed reference, then its scope."""
    errs = _typed_reference(params, path)
    scope = params.get("scope")
    if scope is None:
        return errs + [required(f"{path}.scope")]
    namespace = params.get("namespace")
    if scope not in PARAMETER_SCOPES:
        errs.append(not_supported(f"{path}.scope", scope, PARAMETER_SCOPES))
    elif scope == "Namespace":
        if namespace is None:
            errs.append(required(f"{path}.namespace", "`parameters.scope` is set to 'Namespace'"))
        else:
            errs += _strings_in(f"{path}.namespace", str(namespace), _label_errors(str(namespace)))
    elif namespace is not None:
        errs.append(forbidden(f"{path}.namespace", "`parameters.scope` is set to 'Cluster'"))
    return errs


# --------------------------------------------------------------------------- NetworkPolicy


def validate_network_policy(obj: Obj) -> list[FieldError]:
    """``ValidateNetworkPolicySpec``: the pod selector, each rule's ports and peers, the policy types."""
    spec = _dict(obj.get("spec"))
    errs = validate_label_selector(_dict(spec.get("podSelector")), "spec.podSelector")
    for direction, peers_key in (("ingress", "from"), ("egress", "to")):
        for i, rule in enumerate(_list(spec.get(direction))):
            rule, path = _dict(rule), f"spec.{direction}[{i}]"
            for j, port in enumerate(_list(rule.get("ports"))):
                errs += _policy_port(_dict(port), f"{path}.ports[{j}]")
            for j, peer in enumerate(_list(rule.get(peers_key))):
                errs += _policy_peer(_dict(peer), f"{path}.{peers_key}[{j}]")
    return errs + _policy_types(_list(spec.get("policyTypes")))


def _policy_port(port: Obj, path: str) -> list[FieldError]:
    """``ValidateNetworkPolicyPort``: a protocol, a numeric port with an optional range end, or a named port."""
    errs: list[FieldError] = []
    protocol = port.get("protocol")
    if protocol is not None and protocol not in PROTOCOLS:
        errs.append(not_supported(f"{path}.protocol", protocol, PROTOCOLS))
    number, end = port.get("port"), port.get("endPort")
    if number is None:
        if end is not None:
            errs.append(invalid(f"{path}.endPort", end, "may not be specified when `port` is not specified"))
    elif isinstance(number, str):
        if end is not None:
            errs.append(invalid(f"{path}.endPort", end, "may not be specified when `port` is non-numeric"))
        errs += _strings_in(f"{path}.port", number, port_name_errors(number))
    else:
        errs += _port_number_errors(number, f"{path}.port")
        if end is not None:
            if is_int(number) and is_int(end) and end < number:
                errs.append(invalid(f"{path}.endPort", end, "must be greater than or equal to `port`"))
            errs += _port_number_errors(end, f"{path}.endPort")
    return errs


def _policy_peer(peer: Obj, path: str) -> list[FieldError]:
    """``ValidateNetworkPolicyPeer``: at least one of the selectors or an ipBlock, an ipBlock alone."""
    errs: list[FieldError] = []
    count = 0
    for key in ("podSelector", "namespaceSelector"):
        if peer.get(key) is not None:
            count += 1
            errs += validate_label_selector(peer[key], f"{path}.{key}")
    block = peer.get("ipBlock")
    if block is not None:
        count += 1
        errs += _ip_block(_dict(block), f"{path}.ipBlock")
    if count == 0:
        errs.append(required(path, "must specify a peer"))
    elif count > 1 and block is not None:
        errs.append(forbidden(path, "may not specify both ipBlock and another peer"))
    return errs


def _ip_block(block: Obj, path: str) -> list[FieldError]:
    """``ValidateIPBlock``: a CIDR, and each ``except`` a CIDR strictly inside it."""
    cidr = block.get("cidr")
    if not cidr:
        return [required(f"{path}.cidr")]
    errs = _cidr_errors(cidr, f"{path}.cidr")
    network = parse_cidr_sloppy(cidr)
    if network is None:
        return errs
    for i, text in enumerate(_list(block.get("except"))):
        except_path = f"{path}.except[{i}]"
        inner = parse_cidr_sloppy(text)
        if inner is None:
            errs.append(invalid(except_path, text, _CIDR_MESSAGE))
        elif not _strict_subnet(inner, network):
            errs.append(invalid(except_path, text, "must be a strict subset of `cidr`"))
    return errs


def _strict_subnet(inner: IPNetwork, outer: IPNetwork) -> bool:
    """``inner``'s network address lies in ``outer`` and its prefix is longer (another family never does)."""
    if inner.version != outer.version:
        return False
    return inner.network_address in outer and outer.prefixlen < inner.prefixlen


def _policy_types(types: list[Any]) -> list[FieldError]:
    if len(types) > len(POLICY_TYPES):
        shown = GoValue("[]networking.PolicyType{" + ", ".join(go_quote(str(t)) for t in types) + "}")
        return [invalid("spec.policyTypes", shown, "may not specify more than two policyTypes")]
    return [not_supported(f"spec.policyTypes[{i}]", t, POLICY_TYPES) for i, t in enumerate(types)
            if t not in POLICY_TYPES]


# --------------------------------------------------------------------------- EndpointSlice


def validate_endpoint_slice(obj: Obj) -> list[FieldError]:
    """``ValidateEndpointSlice``: the address type, the endpoints, the ports."""
    address_type = obj.get("addressType")
    errs: list[FieldError] = []
    if not address_type:
        errs.append(required("addressType"))
    elif address_type not in ADDRESS_TYPES:
        errs.append(not_supported("addressType", address_type, ADDRESS_TYPES))
    return errs + _endpoints(_list(obj.get("endpoints")), address_type) + _slice_ports(_list(obj.get("ports")))


def validate_endpoint_slice_update(new: Obj, old: Obj) -> list[FieldError]:
    """The address type is fixed: consumers shard slices by it."""
    return immutable(new.get("addressType") or "", old.get("addressType") or "", "addressType")


def _endpoints(endpoints: list[Any], address_type: Any) -> list[FieldError]:
    if len(endpoints) > MAX_ENDPOINTS:
        return [too_many_error("endpoints", len(endpoints), MAX_ENDPOINTS)]
    errs: list[FieldError] = []
    for i, endpoint in enumerate(endpoints):
        errs += _endpoint(_dict(endpoint), address_type, f"endpoints[{i}]")
    return errs


def _endpoint(endpoint: Obj, address_type: Any, path: str) -> list[FieldError]:
    addresses = _list(endpoint.get("addresses"))
    errs: list[FieldError] = []
    if not addresses:
        errs.append(required(f"{path}.addresses", "must contain at least 1 address"))
    elif len(addresses) > MAX_ADDRESSES:
        errs.append(too_many_error(f"{path}.addresses", len(addresses), MAX_ADDRESSES))
    for i, address in enumerate(addresses):
        errs += _address(str(address), address_type, f"{path}.addresses[{i}]")
    node = endpoint.get("nodeName")
    if node is not None:
        errs += _strings_in(f"{path}.nodeName", str(node), dns1123_subdomain_errors(str(node)))
    errs += _topology(endpoint.get("deprecatedTopology"), f"{path}.deprecatedTopology")
    hostname = endpoint.get("hostname")
    if hostname is not None:
        errs += _strings_in(f"{path}.hostname", str(hostname), _label_errors(str(hostname)))
    hints = endpoint.get("hints")
    if hints is not None:
        errs += _hints(_dict(hints), f"{path}.hints")
    return errs


def _address(address: str, address_type: Any, path: str) -> list[FieldError]:
    """An address checked for the slice's type (an unknown type has been refused already)."""
    if address_type in ("IPv4", "IPv6"):
        ip = parse_ip_sloppy(address)
        is_v4 = ip is not None and _as_ipv4(ip).version == 4
        errs = []
        if address_type == "IPv4" and not is_v4:
            errs.append(invalid(path, address, "must be a valid IPv4 address"))
        if address_type == "IPv6" and (ip is None or is_v4):
            errs.append(invalid(path, address, "must be a valid IPv6 address"))
        return errs + endpoint_ip_errors(address, path)
    if address_type == "FQDN":
        return fully_qualified_domain_errors(address, path)
    return []


def fully_qualified_domain_errors(name: str, path: str) -> list[FieldError]:
    """``IsFullyQualifiedDomainName``: a subdomain of at least two labels (a trailing dot allowed)."""
    if not name:
        return [required(path)]
    name = name.removesuffix(".")
    problems = dns1123_subdomain_errors(name)
    if problems:
        return [invalid(path, name, ",".join(problems))]
    labels = name.split(".")
    if len(labels) < 2:
        return [invalid(path, name, "should be a domain with at least two segments separated by dots")]
    for label in labels:
        problems = _label_errors(label)
        if problems:
            return [invalid(path, label, ",".join(problems))]
    return []


def _topology(labels: Any, path: str) -> list[FieldError]:
    if not isinstance(labels, dict):
        return []
    errs = [too_many_error(path, len(labels), MAX_TOPOLOGY_LABELS)] if len(labels) > MAX_TOPOLOGY_LABELS else []
    return errs + retarget(validate_label_map(labels), "metadata.labels", path)


def _hints(hints: Obj, path: str) -> list[FieldError]:
    """Zone hints are label values, node hints node names; each list at most 8, no name twice."""
    errs = _named_hints(_list(hints.get("forZones")), f"{path}.forZones", MAX_ZONE_HINTS, label_value_errors)
    return errs + _named_hints(_list(hints.get("forNodes")), f"{path}.forNodes", MAX_NODE_HINTS, dns1123_subdomain_errors)


def _named_hints(entries: list[Any], path: str, limit: int, check: Callable[[str], list[str]]) -> list[FieldError]:
    if len(entries) > limit:
        return [too_many_error(path, len(entries), limit)]
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        name, name_path = str(_dict(entry).get("name") or ""), f"{path}[{i}].name"
        if name in seen:
            errs.append(FieldError("FieldValueDuplicate", name_path, "", name))
        seen.add(name)
        errs += _strings_in(name_path, name, check(name))
    return errs


def _slice_ports(ports: list[Any]) -> list[FieldError]:
    """``validatePorts``: unique DNS-label names (the empty name too), a protocol, a qualified appProtocol."""
    if len(ports) > MAX_PORTS:
        return [too_many_error("ports", len(ports), MAX_PORTS)]
    errs: list[FieldError] = []
    names: set[str] = set()
    for i, port in enumerate(ports):
        port, path = _dict(port), f"ports[{i}]"
        name = str(port.get("name") or "")
        if name:
            errs += _strings_in(f"{path}.name", name, _label_errors(name))
        if name in names:
            errs.append(FieldError("FieldValueDuplicate", f"{path}.name", "", name))
        names.add(name)
        protocol = port.get("protocol")
        if protocol is None:
            errs.append(required(f"{path}.protocol"))
        elif protocol not in PROTOCOLS:
            errs.append(not_supported(f"{path}.protocol", protocol, SORTED_PROTOCOLS))
        app_protocol = port.get("appProtocol")
        if app_protocol is not None:
            errs += _strings_in(f"{path}.appProtocol", str(app_protocol), qualified_name_errors(str(app_protocol)))
    return errs
