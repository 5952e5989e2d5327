"""Ingress, IngressClass, NetworkPolicy and EndpointSlice refuse what Kubernetes refuses, with its 422 message.

Table-driven against one real ``podlife up`` for the module (the ``cluster`` fixture): each
case is a bad manifest and its good twin, the smallest change that fixes it. The bad one
is POSTed over HTTPS and must get 422 ``Invalid`` with exactly the message
``pkg/apis/networking/validation`` / ``pkg/apis/discovery/validation`` writes, and a GET
afterwards must find nothing; the twin must be created (201), so each case shows the rule
is the one refused and not something else about the manifest. One case goes through
``kubectl apply -f -``. Update rules (IngressClass controller and EndpointSlice address
type frozen, Ingress rules still applied on update) are driven with PUTs of an object read
back from the server.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from .cluster_harness import PodlifeProcess

pytestmark = pytest.mark.e2e

Obj = dict[str, Any]
Build = Callable[[str], Obj]
NS = "default"
NETWORKING = "networking.k8s.io/v1"
DISCOVERY = "discovery.k8s.io/v1"

PATHS = {
    "Ingress": f"/apis/{NETWORKING}/namespaces/{NS}/ingresses",
    "IngressClass": f"/apis/{NETWORKING}/ingressclasses",
    "NetworkPolicy": f"/apis/{NETWORKING}/namespaces/{NS}/networkpolicies",
    "EndpointSlice": f"/apis/{DISCOVERY}/namespaces/{NS}/endpointslices",
}
GROUPS = {"Ingress": "networking.k8s.io", "IngressClass": "networking.k8s.io", "NetworkPolicy": "networking.k8s.io",
          "EndpointSlice": "discovery.k8s.io"}

SUBDOMAIN = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
             "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
             "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
LABEL = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end "
         "with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
         "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
DNS1035 = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
           "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
           "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
WILDCARD = ("a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist "
            "of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. "
            "'*.example.com', regex used for validation is "
            "'\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
PORT_RANGE = "must be between 1 and 65535, inclusive"
CIDR = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"


# --------------------------------------------------------------------------- manifests


def manifest(kind: str, name: str, **body: Any) -> Obj:
    meta: Obj = {"name": name}
    if kind != "IngressClass":
        meta["namespace"] = NS
    meta.update(body.pop("metadata", {}))
    api_version = DISCOVERY if kind == "EndpointSlice" else NETWORKING
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **body}


def service(name: str = "web", port: Obj | None = None) -> Obj:
    return {"service": {"name": name, "port": {"number": 80} if port is None else port}}


def http_path(path: str | None = "/", path_type: str | None = "Prefix", backend: Obj | None = None) -> Obj:
    entry: Obj = {"backend": backend if backend is not None else service()}
    if path is not None:
        entry["path"] = path
    if path_type is not None:
        entry["pathType"] = path_type
    return entry


def rule(host: str | None = "example.com", *paths: Obj) -> Obj:
    entry: Obj = {"http": {"paths": list(paths) or [http_path()]}}
    if host is not None:
        entry["host"] = host
    return entry


def ingress(name: str, **spec: Any) -> Obj:
    metadata = spec.pop("metadata", {})
    if not spec:
        spec = {"defaultBackend": service()}
    return manifest("Ingress", name, metadata=metadata, spec=spec)


def ingress_with_path(*paths: Obj) -> Build:
    return lambda n: ingress(n, rules=[rule("example.com", *paths)])


def ingress_class(name: str, controller: str | None = "example.com/ingress", **spec: Any) -> Obj:
    if controller is not None:
        spec["controller"] = controller
    return manifest("IngressClass", name, spec=spec)


def policy(name: str, **spec: Any) -> Obj:
    spec.setdefault("podSelector", {"matchLabels": {"app": "web"}})
    return manifest("NetworkPolicy", name, spec=spec)


def ingress_ports(*ports: Obj) -> Build:
    return lambda n: policy(n, ingress=[{"ports": list(ports)}])


def ingress_peers(*peers: Obj) -> Build:
    return lambda n: policy(n, ingress=[{"from": list(peers)}])


def egress_block(cidr: str, *excepted: str) -> Build:
    block: Obj = {"cidr": cidr}
    if excepted:
        block["except"] = list(excepted)
    return lambda n: policy(n, egress=[{"to": [{"ipBlock": block}]}], policyTypes=["Egress"])


def endpoint_slice(name: str, address_type: str | None = "IPv4", endpoints: list[Obj] | None = None,
                   ports: list[Obj] | None = None) -> Obj:
    body: Obj = {"endpoints": endpoints if endpoints is not None else [{"addresses": ["10.1.2.3"]}],
                 "ports": ports if ports is not None else [{"name": "http", "port": 80, "protocol": "TCP"}]}
    if address_type is not None:
        body["addressType"] = address_type
    return manifest("EndpointSlice", name, **body)


def slice_of(address_type: str, *addresses: str, **endpoint: Any) -> Build:
    return lambda n: endpoint_slice(n, address_type, [{"addresses": list(addresses), **endpoint}])


def slice_ports(*ports: Obj) -> Build:
    return lambda n: endpoint_slice(n, ports=list(ports))


def many_addresses(count: int) -> list[str]:
    return [f"10.2.{i // 250}.{i % 250 + 1}" for i in range(count)]


# --------------------------------------------------------------------------- the table

#: (id, bad manifest builder, its good twin's builder, the message after `<Kind>.<group> "<id>" is invalid: `)
CASES: list[tuple[str, Build, Build, str]] = [
    # --- Ingress: backends
    ("ing-nothing", lambda n: manifest("Ingress", n, spec={}), lambda n: ingress(n),
     "spec: Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` must be specified"),
    ("ing-two-backends",
     lambda n: ingress(n, defaultBackend={**service(), "resource": {"kind": "Bucket", "name": "assets"}}),
     lambda n: ingress(n, defaultBackend={"resource": {"apiGroup": "example.com", "kind": "Bucket", "name": "assets"}}),
     'spec.defaultBackend: Invalid value: "": cannot set both resource and service backends'),
    ("ing-empty-backend", lambda n: ingress(n, defaultBackend={}), lambda n: ingress(n, defaultBackend=service()),
     'spec.defaultBackend: Invalid value: "": resource or service backend is required'),
    ("ing-resource-ref",
     lambda n: ingress(n, defaultBackend={"resource": {"apiGroup": "Example.com", "name": "a/b"}}),
     lambda n: ingress(n, defaultBackend={"resource": {"apiGroup": "example.com", "kind": "Bucket", "name": "a-b"}}),
     f'[spec.defaultBackend.resource.apiGroup: Invalid value: "Example.com": {SUBDOMAIN}, '
     "spec.defaultBackend.resource.kind: Required value, "
     "spec.defaultBackend.resource.name: Invalid value: \"a/b\": may not contain '/']"),
    ("ing-service-name", lambda n: ingress(n, defaultBackend=service("1web")),
     lambda n: ingress(n, defaultBackend=service("web1")),
     f'spec.defaultBackend.service.name: Invalid value: "1web": {DNS1035}'),
    ("ing-no-service-name", lambda n: ingress(n, defaultBackend={"service": {"port": {"number": 80}}}),
     lambda n: ingress(n, defaultBackend=service("web")),
     "spec.defaultBackend.service.name: Required value"),
    ("ing-port-both", lambda n: ingress(n, defaultBackend=service("web", {"name": "http", "number": 80})),
     lambda n: ingress(n, defaultBackend=service("web", {"name": "http"})),
     'spec.defaultBackend: Invalid value: "": cannot set both port name & port number'),
    ("ing-port-none", lambda n: ingress(n, defaultBackend={"service": {"name": "web", "port": {}}}),
     lambda n: ingress(n, defaultBackend=service("web", {"number": 8080})),
     "spec.defaultBackend: Required value: port name or number is required"),
    ("ing-port-number", lambda n: ingress(n, defaultBackend=service("web", {"number": 70000})),
     lambda n: ingress(n, defaultBackend=service("web", {"number": 65535})),
     f"spec.defaultBackend.service.port.number: Invalid value: 70000: {PORT_RANGE}"),
    ("ing-port-name", lambda n: ingress(n, defaultBackend=service("web", {"name": "web--"})),
     lambda n: ingress(n, defaultBackend=service("web", {"name": "web-2"})),
     '[spec.defaultBackend.service.port.name: Invalid value: "web--": must not contain consecutive hyphens, '
     'spec.defaultBackend.service.port.name: Invalid value: "web--": must not begin or end with a hyphen]'),
    ("ing-port-name-chars", lambda n: ingress(n, defaultBackend=service("web", {"name": "HTTP"})),
     lambda n: ingress(n, defaultBackend=service("web", {"name": "http"})),
     '[spec.defaultBackend.service.port.name: Invalid value: "HTTP": must contain only alpha-numeric characters '
     '(a-z, 0-9), and hyphens (-), spec.defaultBackend.service.port.name: Invalid value: "HTTP": must contain at '
     "least one letter (a-z)]"),
    # --- Ingress: paths
    ("ing-no-path-type", ingress_with_path(http_path("/", None)), ingress_with_path(http_path("/", "Prefix")),
     "spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified"),
    ("ing-path-type", ingress_with_path(http_path("/", "Regex")), ingress_with_path(http_path("/", "Exact")),
     'spec.rules[0].http.paths[0].pathType: Unsupported value: "Regex": supported values: "Exact", '
     '"ImplementationSpecific", "Prefix"'),
    ("ing-relative-path", ingress_with_path(http_path("api", "Prefix")), ingress_with_path(http_path("/api", "Prefix")),
     'spec.rules[0].http.paths[0].path: Invalid value: "api": must be an absolute path'),
    ("ing-double-slash", ingress_with_path(http_path("/a//b", "Exact")), ingress_with_path(http_path("/a/b", "Exact")),
     "spec.rules[0].http.paths[0].path: Invalid value: \"/a//b\": must not contain '//'"),
    ("ing-dot-dot-end", ingress_with_path(http_path("/a/..", "Prefix")), ingress_with_path(http_path("/a/..b", "Prefix")),
     "spec.rules[0].http.paths[0].path: Invalid value: \"/a/..\": cannot end with '/..'"),
    ("ing-encoded-slash", ingress_with_path(http_path("/a%2Fb", "Prefix")), ingress_with_path(http_path("/a%20b", "Prefix")),
     "spec.rules[0].http.paths[0].path: Invalid value: \"/a%2Fb\": must not contain '%2F'"),
    ("ing-impl-relative", ingress_with_path(http_path("api", "ImplementationSpecific")),
     ingress_with_path(http_path("/api(/|$)(.*)", "ImplementationSpecific")),
     'spec.rules[0].http.paths[0].path: Invalid value: "api": must be an absolute path'),
    ("ing-no-paths", lambda n: ingress(n, rules=[{"host": "example.com", "http": {"paths": []}}]),
     lambda n: ingress(n, rules=[{"host": "example.com"}]),
     "spec.rules[0].http.paths: Required value"),
    ("ing-path-backend", ingress_with_path(http_path("/", "Prefix", {})), ingress_with_path(http_path("/", "Prefix")),
     'spec.rules[0].http.paths[0].backend: Invalid value: "": resource or service backend is required'),
    # --- Ingress: hosts, TLS, class
    ("ing-ip-host", lambda n: ingress(n, rules=[rule("10.0.0.1")]), lambda n: ingress(n, rules=[rule("ten.example")]),
     'spec.rules[0].host: Invalid value: "10.0.0.1": must be a DNS name, not an IP address'),
    ("ing-host", lambda n: ingress(n, rules=[rule("Example.com")]), lambda n: ingress(n, rules=[rule("example.com")]),
     f'spec.rules[0].host: Invalid value: "Example.com": {SUBDOMAIN}'),
    ("ing-wildcard-host", lambda n: ingress(n, rules=[rule("*.*.example.com")]),
     lambda n: ingress(n, rules=[rule("*.example.com")]),
     f'spec.rules[0].host: Invalid value: "*.*.example.com": {WILDCARD}'),
    ("ing-tls-host", lambda n: ingress(n, tls=[{"hosts": ["bad_host"]}], defaultBackend=service()),
     lambda n: ingress(n, tls=[{"hosts": ["*.example.com", "example.com"]}], defaultBackend=service()),
     f'spec.tls[0].hosts[0]: Invalid value: "bad_host": {SUBDOMAIN}'),
    ("ing-tls-secret", lambda n: ingress(n, tls=[{"secretName": "TLS"}], defaultBackend=service()),
     lambda n: ingress(n, tls=[{"secretName": "tls"}], defaultBackend=service()),
     f'spec.tls[0].secretName: Invalid value: "TLS": {SUBDOMAIN}'),
    ("ing-class-name", lambda n: ingress(n, ingressClassName="Nginx", defaultBackend=service()),
     lambda n: ingress(n, ingressClassName="nginx", defaultBackend=service()),
     f'spec.ingressClassName: Invalid value: "Nginx": {SUBDOMAIN}'),
    ("ing-class-annotation",
     lambda n: ingress(n, metadata={"annotations": {"kubernetes.io/ingress.class": "nginx"}}, ingressClassName="traefik",
                       defaultBackend=service()),
     lambda n: ingress(n, metadata={"annotations": {"kubernetes.io/ingress.class": "nginx"}}, ingressClassName="nginx",
                       defaultBackend=service()),
     'annotations.kubernetes.io/ingress.class: Invalid value: "nginx": must match `ingressClassName` when both are '
     "specified"),
    # --- IngressClass
    ("ic-no-controller", lambda n: ingress_class(n, None), lambda n: ingress_class(n),
     "spec.controller: Required value"),
    ("ic-not-prefixed", lambda n: ingress_class(n, "nginx"), lambda n: ingress_class(n, "k8s.io/nginx"),
     'spec.controller: Invalid value: "nginx": must be a domain-prefixed path (such as "acme.io/foo")'),
    ("ic-bad-domain", lambda n: ingress_class(n, "Acme.io/x"), lambda n: ingress_class(n, "acme.io/x"),
     f'spec.controller: Invalid value: "Acme.io": {SUBDOMAIN}'),
    ("ic-bad-path", lambda n: ingress_class(n, "acme.io/a b"), lambda n: ingress_class(n, "acme.io/a-b"),
     "spec.controller: Invalid value: \"a b\": Invalid path (regex used for validation is "
     "'[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')"),
    ("ic-too-long", lambda n: ingress_class(n, "acme.io/" + "x" * 243), lambda n: ingress_class(n, "acme.io/" + "x" * 242),
     "spec.controller: Too long: may not be more than 250 bytes"),
    ("ic-params-kind", lambda n: ingress_class(n, parameters={"name": "p"}),
     lambda n: ingress_class(n, parameters={"kind": "Config", "name": "p"}),
     "spec.parameters.kind: Required value"),
    ("ic-params-scope", lambda n: ingress_class(n, parameters={"kind": "Config", "name": "p", "scope": "Global"}),
     lambda n: ingress_class(n, parameters={"kind": "Config", "name": "p", "scope": "Cluster"}),
     'spec.parameters.scope: Unsupported value: "Global": supported values: "Cluster", "Namespace"'),
    ("ic-params-no-namespace", lambda n: ingress_class(n, parameters={"kind": "Config", "name": "p", "scope": "Namespace"}),
     lambda n: ingress_class(n, parameters={"kind": "Config", "name": "p", "scope": "Namespace", "namespace": "ops"}),
     "spec.parameters.namespace: Required value: `parameters.scope` is set to 'Namespace'"),
    ("ic-params-namespace", lambda n: ingress_class(n, parameters={"kind": "Config", "name": "p", "scope": "Namespace",
                                                                  "namespace": "ops.team"}),
     lambda n: ingress_class(n, parameters={"kind": "Config", "name": "p", "scope": "Namespace", "namespace": "ops-team"}),
     'spec.parameters.namespace: Invalid value: "ops.team": must not contain dots'),
    ("ic-params-cluster-namespace", lambda n: ingress_class(n, parameters={"kind": "Config", "name": "p",
                                                                          "namespace": "ops"}),
     lambda n: ingress_class(n, parameters={"kind": "Config", "name": "p"}),  # scope defaults to Cluster
     "spec.parameters.namespace: Forbidden: `parameters.scope` is set to 'Cluster'"),
    # --- NetworkPolicy
    ("np-selector", lambda n: policy(n, podSelector={"matchExpressions": [{"key": "app", "operator": "Has"}]}),
     lambda n: policy(n, podSelector={"matchExpressions": [{"key": "app", "operator": "Exists"}]}),
     'spec.podSelector.matchExpressions[0].operator: Invalid value: "Has": not a valid selector operator'),
    ("np-selector-value", lambda n: policy(n, podSelector={"matchLabels": {"app": "web server"}}),
     lambda n: policy(n, podSelector={}),  # an empty selector selects every pod of the namespace
     'spec.podSelector.matchLabels: Invalid value: "web server": a valid label must be an empty string or consist of '
     "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  "
     "or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"),
    ("np-protocol", ingress_ports({"protocol": "ICMP", "port": 80}), ingress_ports({"protocol": "SCTP", "port": 80}),
     'spec.ingress[0].ports[0].protocol: Unsupported value: "ICMP": supported values: "TCP", "UDP", "SCTP"'),
    ("np-port", ingress_ports({"port": 65536}), ingress_ports({"port": 65535}),
     f"spec.ingress[0].ports[0].port: Invalid value: 65536: {PORT_RANGE}"),
    ("np-end-port-below", ingress_ports({"port": 8080, "endPort": 80}), ingress_ports({"port": 8080, "endPort": 8080}),
     "spec.ingress[0].ports[0].endPort: Invalid value: 80: must be greater than or equal to `port`"),
    ("np-end-port-range", ingress_ports({"port": 80, "endPort": 70000}), ingress_ports({"port": 80, "endPort": 65535}),
     f"spec.ingress[0].ports[0].endPort: Invalid value: 70000: {PORT_RANGE}"),
    ("np-end-port-named", ingress_ports({"port": "http", "endPort": 90}), ingress_ports({"port": "http"}),
     "spec.ingress[0].ports[0].endPort: Invalid value: 90: may not be specified when `port` is non-numeric"),
    ("np-end-port-alone", ingress_ports({"endPort": 90}), ingress_ports({}),
     "spec.ingress[0].ports[0].endPort: Invalid value: 90: may not be specified when `port` is not specified"),
    ("np-port-name", ingress_ports({"port": "-metrics"}), ingress_ports({"port": "metrics"}),
     'spec.ingress[0].ports[0].port: Invalid value: "-metrics": must not begin or end with a hyphen'),
    ("np-empty-peer", ingress_peers({}), ingress_peers({"namespaceSelector": {}}),
     "spec.ingress[0].from[0]: Required value: must specify a peer"),
    ("np-block-and-selector", ingress_peers({"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}),
     ingress_peers({"ipBlock": {"cidr": "10.0.0.0/8"}}, {"podSelector": {}}),
     "spec.ingress[0].from[0]: Forbidden: may not specify both ipBlock and another peer"),
    ("np-peer-selector", ingress_peers({"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "In"}]}}),
     ingress_peers({"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "In", "values": ["a"]}]}}),
     "spec.ingress[0].from[0].namespaceSelector.matchExpressions[0].values: Required value: must be specified when "
     "`operator` is 'In' or 'NotIn'"),
    ("np-cidr", egress_block("10.0.0.0"), egress_block("10.0.0.0/8"),
     f'spec.egress[0].to[0].ipBlock.cidr: Invalid value: "10.0.0.0": {CIDR}'),
    ("np-no-cidr", lambda n: policy(n, egress=[{"to": [{"ipBlock": {"except": ["10.0.0.0/24"]}}]}]),
     egress_block("10.0.0.0/16", "10.0.0.0/24"),
     "spec.egress[0].to[0].ipBlock.cidr: Required value"),
    ("np-except-outside", egress_block("10.0.0.0/16", "10.1.0.0/24"), egress_block("10.0.0.0/16", "10.0.1.0/24"),
     'spec.egress[0].to[0].ipBlock.except[0]: Invalid value: "10.1.0.0/24": must be a strict subset of `cidr`'),
    ("np-except-equal", egress_block("fd00::/64", "fd00::/64"), egress_block("fd00::/64", "fd00::/80"),
     'spec.egress[0].to[0].ipBlock.except[0]: Invalid value: "fd00::/64": must be a strict subset of `cidr`'),
    ("np-except-cidr", egress_block("10.0.0.0/16", "10.0.1.0/33"), egress_block("10.0.0.0/16", "10.0.1.0/32"),
     f'spec.egress[0].to[0].ipBlock.except[0]: Invalid value: "10.0.1.0/33": {CIDR}'),
    ("np-policy-type", lambda n: policy(n, policyTypes=["Ingress", "Sideways"]),
     lambda n: policy(n, policyTypes=["Ingress", "Egress"]),
     'spec.policyTypes[1]: Unsupported value: "Sideways": supported values: "Ingress", "Egress"'),
    ("np-three-types", lambda n: policy(n, policyTypes=["Ingress", "Egress", "Ingress"]),
     lambda n: policy(n, policyTypes=["Egress"]),
     'spec.policyTypes: Invalid value: []networking.PolicyType{"Ingress", "Egress", "Ingress"}: may not specify more '
     "than two policyTypes"),
    # --- EndpointSlice: address type and addresses
    ("es-no-type", lambda n: endpoint_slice(n, None), lambda n: endpoint_slice(n, "IPv4"),
     "addressType: Required value"),
    ("es-type", lambda n: endpoint_slice(n, "IP"), lambda n: endpoint_slice(n, "IPv4"),
     'addressType: Unsupported value: "IP": supported values: "FQDN", "IPv4", "IPv6"'),
    ("es-not-ipv4", slice_of("IPv4", "10.0.0.300"), slice_of("IPv4", "10.0.0.30"),
     '[endpoints[0].addresses[0]: Invalid value: "10.0.0.300": must be a valid IPv4 address, '
     'endpoints[0].addresses[0]: Invalid value: "10.0.0.300": must be a valid IP address]'),
    ("es-v6-in-v4", slice_of("IPv4", "fd00::5"), slice_of("IPv6", "fd00::5"),
     'endpoints[0].addresses[0]: Invalid value: "fd00::5": must be a valid IPv4 address'),
    ("es-v4-in-v6", slice_of("IPv6", "10.0.0.5"), slice_of("IPv4", "10.0.0.5"),
     'endpoints[0].addresses[0]: Invalid value: "10.0.0.5": must be a valid IPv6 address'),
    ("es-loopback", slice_of("IPv4", "127.0.0.1"), slice_of("IPv4", "10.0.0.1"),
     'endpoints[0].addresses[0]: Invalid value: "127.0.0.1": may not be in the loopback range (127.0.0.0/8, ::1/128)'),
    ("es-unspecified", slice_of("IPv6", "::"), slice_of("IPv6", "fd00::1"),
     'endpoints[0].addresses[0]: Invalid value: "::": may not be unspecified (::)'),
    ("es-link-local", slice_of("IPv6", "fe80::1"), slice_of("IPv6", "2001:db8::1"),
     'endpoints[0].addresses[0]: Invalid value: "fe80::1": may not be in the link-local range (169.254.0.0/16, '
     "fe80::/10)"),
    ("es-link-local-multicast", slice_of("IPv4", "224.0.0.251"), slice_of("IPv4", "224.0.1.251"),
     'endpoints[0].addresses[0]: Invalid value: "224.0.0.251": may not be in the link-local multicast range '
     "(224.0.0.0/24, ff02::/10)"),
    ("es-fqdn-one-label", slice_of("FQDN", "localhost"), slice_of("FQDN", "db.example.com."),
     'endpoints[0].addresses[0]: Invalid value: "localhost": should be a domain with at least two segments separated '
     "by dots"),
    ("es-fqdn", slice_of("FQDN", "DB.example.com"), slice_of("FQDN", "db.example.com"),
     f'endpoints[0].addresses[0]: Invalid value: "DB.example.com": {SUBDOMAIN}'),
    ("es-no-addresses", slice_of("IPv4"), slice_of("IPv4", "10.0.0.7"),
     "endpoints[0].addresses: Required value: must contain at least 1 address"),
    ("es-101-addresses", slice_of("IPv4", *many_addresses(101)), slice_of("IPv4", *many_addresses(100)),
     "endpoints[0].addresses: Too many: 101: must have at most 100 items"),
    ("es-1001-endpoints", lambda n: endpoint_slice(n, endpoints=[{"addresses": ["10.3.0.1"]}] * 1001),
     lambda n: endpoint_slice(n, endpoints=[{"addresses": ["10.3.0.1"]}] * 1000),
     "endpoints: Too many: 1001: must have at most 1000 items"),
    # --- EndpointSlice: endpoint fields
    ("es-hostname", slice_of("IPv4", "10.0.0.8", hostname="web.0"), slice_of("IPv4", "10.0.0.8", hostname="web-0"),
     'endpoints[0].hostname: Invalid value: "web.0": must not contain dots'),
    ("es-hostname-chars", slice_of("IPv4", "10.0.0.8", hostname="Web"), slice_of("IPv4", "10.0.0.8", hostname="web"),
     f'endpoints[0].hostname: Invalid value: "Web": {LABEL}'),
    ("es-node-name", slice_of("IPv4", "10.0.0.9", nodeName="Node_1"), slice_of("IPv4", "10.0.0.9", nodeName="node-1"),
     f'endpoints[0].nodeName: Invalid value: "Node_1": {SUBDOMAIN}'),
    ("es-conditions-and-zone-hints",
     slice_of("IPv4", "10.0.0.9", conditions={"ready": True, "serving": True, "terminating": False},
              hints={"forZones": [{"name": "zone-a"}, {"name": "zone-a"}]}),
     slice_of("IPv4", "10.0.0.9", conditions={"ready": True, "serving": True, "terminating": False},
              hints={"forZones": [{"name": "zone-a"}, {"name": "zone-b"}]}),
     'endpoints[0].hints.forZones[1].name: Duplicate value: "zone-a"'),
    # --- EndpointSlice: ports
    ("es-port-duplicate", slice_ports({"name": "http", "port": 80}, {"name": "http", "port": 8080}),
     slice_ports({"name": "http", "port": 80}, {"name": "http-alt", "port": 8080}),
     'ports[1].name: Duplicate value: "http"'),
    ("es-port-two-unnamed", slice_ports({"port": 80}, {"port": 8080}), slice_ports({"port": 80}),
     'ports[1].name: Duplicate value: ""'),
    ("es-port-name", slice_ports({"name": "HTTP", "port": 80}), slice_ports({"name": "http", "port": 80}),
     f'ports[0].name: Invalid value: "HTTP": {LABEL}'),
    ("es-port-protocol", slice_ports({"name": "dns", "port": 53, "protocol": "ICMP"}),
     slice_ports({"name": "dns", "port": 53, "protocol": "UDP"}),
     'ports[0].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"'),
    ("es-app-protocol", slice_ports({"name": "h2", "port": 80, "appProtocol": "http 2"}),
     slice_ports({"name": "h2", "port": 80, "appProtocol": "kubernetes.io/h2c"}),
     "ports[0].appProtocol: Invalid value: \"http 2\": name part must consist of alphanumeric characters, '-', '_' or "
     "'.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
     "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"),
]


# --------------------------------------------------------------------------- helpers


def path_of(obj: Obj) -> str:
    return PATHS[obj["kind"]]


def url_of(obj: Obj) -> str:
    return f'{path_of(obj)}/{obj["metadata"]["name"]}'


def expected(obj: Obj, message: str) -> str:
    return f'{obj["kind"]}.{GROUPS[obj["kind"]]} "{obj["metadata"]["name"]}" is invalid: {message}'


def assert_not_stored(cluster: PodlifeProcess, obj: Obj) -> None:
    status, _ = cluster.http("GET", url_of(obj))
    assert status == 404, f'{obj["kind"]} {obj["metadata"]["name"]} was stored'


def create(cluster: PodlifeProcess, obj: Obj) -> Obj:
    status, body = cluster.http("POST", path_of(obj), obj)
    assert status == 201, body
    return body


def refused(cluster: PodlifeProcess, method: str, obj: Obj) -> str:
    """The 422 Status's message (after checking it is one, with causes)."""
    status, body = cluster.http(method, path_of(obj) if method == "POST" else url_of(obj), obj)
    assert status == 422, body
    assert body["reason"] == "Invalid", body
    assert body["details"]["causes"], body
    return str(body["message"])


@pytest.mark.parametrize("case,bad,good,message", CASES, ids=[c[0] for c in CASES])
def test_bad_manifest_is_refused_and_its_twin_created(cluster: PodlifeProcess, case: str, bad: Build, good: Build,
                                                      message: str) -> None:
    wrong = bad(case)
    assert refused(cluster, "POST", wrong) == expected(wrong, message)
    assert_not_stored(cluster, wrong)
    create(cluster, good(f"{case}-ok"))


def test_kubectl_apply_shows_the_kubernetes_error(cluster: PodlifeProcess) -> None:
    case, bad, _good, message = next(c for c in CASES if c[0] == "ing-ip-host")
    obj = bad("kubectl-ip-host")
    result = cluster.kubectl("apply", "-f", "-", input=json.dumps(obj), check=False)
    assert result.returncode != 0, result.stdout
    assert f'The Ingress "kubectl-ip-host" is invalid: {message}' in result.stderr, result.stderr
    assert_not_stored(cluster, obj)


# --------------------------------------------------------------------------- updates


def test_ingress_class_controller_is_immutable(cluster: PodlifeProcess) -> None:
    stored = create(cluster, ingress_class("upd-class"))
    moved = copy.deepcopy(stored)
    moved["spec"]["controller"] = "example.com/other"
    assert refused(cluster, "PUT", moved) == ('IngressClass.networking.k8s.io "upd-class" is invalid: spec.controller: '
                                              'Invalid value: "example.com/other": field is immutable')
    configured = copy.deepcopy(stored)
    configured["spec"]["parameters"] = {"kind": "Config", "name": "p"}
    status, body = cluster.http("PUT", url_of(configured), configured)
    assert status == 200, body
    assert body["spec"]["parameters"]["scope"] == "Cluster"  # defaulted on update too
    assert body["spec"]["controller"] == "example.com/ingress"


def test_endpoint_slice_address_type_is_immutable(cluster: PodlifeProcess) -> None:
    stored = create(cluster, endpoint_slice("upd-slice"))
    switched = copy.deepcopy(stored)
    switched["addressType"], switched["endpoints"] = "IPv6", [{"addresses": ["fd00::10"]}]
    assert refused(cluster, "PUT", switched) == ('EndpointSlice.discovery.k8s.io "upd-slice" is invalid: addressType: '
                                                 'Invalid value: "IPv6": field is immutable')
    moved = copy.deepcopy(stored)
    moved["endpoints"] = [{"addresses": ["10.1.2.4"], "conditions": {"ready": False}}]
    status, body = cluster.http("PUT", url_of(moved), moved)
    assert status == 200, body
    assert body["endpoints"][0]["addresses"] == ["10.1.2.4"]


def test_ingress_update_is_validated_like_a_create(cluster: PodlifeProcess) -> None:
    stored = create(cluster, ingress("upd-ingress", rules=[rule("example.com", http_path("/api", "Prefix"))]))
    broken = copy.deepcopy(stored)
    del broken["spec"]["rules"][0]["http"]["paths"][0]["pathType"]
    assert refused(cluster, "PUT", broken) == ('Ingress.networking.k8s.io "upd-ingress" is invalid: '
                                               "spec.rules[0].http.paths[0].pathType: Required value: "
                                               "pathType must be specified")
    status, body = cluster.http("GET", url_of(stored))
    assert status == 200 and body["spec"]["rules"][0]["http"]["paths"][0]["pathType"] == "Prefix", body
