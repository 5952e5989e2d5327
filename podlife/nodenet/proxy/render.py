"""Services and EndpointSlices in, an nftables ruleset for one node namespace out (pure).

Design
------
The service proxy of a node is one nftables table (``ip podlife-proxy``) in the node's
network namespace, which every pod packet crosses (pods' default gateway lives there).
This module only *decides*: :func:`build_ruleset` turns the API objects into a
:class:`Ruleset` (named sets, maps and chains, all sorted so equal inputs give equal
text), and :func:`replace_script` / :func:`update_script` print it as an ``nft -f``
transaction. Running ``nft`` is :mod:`.apply`'s job.

The layout follows kube-proxy's nftables mode:

* ``nat-prerouting`` (dstnat) and ``nat-output`` (for connections made inside the node
  namespace) jump to ``services``: first NodePorts (destination local to the node
  namespace, looked up in the ``service-nodeports`` verdict map keyed by
  ``meta l4proto . th dport``), then *return* for any other local destination -- the
  node-local listeners (DNS on 10.96.0.10, the API forwarder on 10.96.0.1 held by the
  ``podlife0`` dummy) answer themselves -- and only then the ClusterIPs, a verdict map
  keyed by ``ip daddr . meta l4proto . th dport``.
* One ``svc-`` chain per service port spreads new connections with
  ``numgen random mod N`` over one ``ep-`` chain per endpoint, which DNATs to the pod.
  With ``sessionAffinity: ClientIP`` each endpoint has a set of client addresses with
  the affinity timeout: the service chain first sends a client found in a set to that
  endpoint, and the endpoint chain refreshes the client's entry (``update @set``).
* ``ext-`` chains (NodePort) mark the packet for masquerade before the service chain,
  as kube-proxy does for traffic with externalTrafficPolicy Cluster; with policy Local
  they keep the client's address and use only this node's endpoints.
* Hairpin: an endpoint chain marks packets whose source is the endpoint itself, so a
  pod reaching itself through its Service sees the node as the peer.
  ``nat-postrouting`` (srcnat) masquerades marked packets and clears the mark.
* A service port without usable endpoints gets no DNAT; the filter chains
  (input/forward/output, new connections only) look it up in ``no-endpoint-services`` /
  ``no-endpoint-nodeports`` and reject it (TCP reset, ICMP port unreachable otherwise),
  or drop it when endpoints exist but a Local traffic policy leaves none on this node.
  Traffic to a ClusterIP on a port none of its Services has (the ``cluster-ips`` set) is
  rejected too. These checks see only what crosses the node namespace's routing: the
  node namespace needs a route for the service range (its default route does).

Endpoints: the first address of each EndpointSlice endpoint (IPv4 slices only), ready
ones; if none is ready, the ones serving while terminating (kube-proxy's fallback).
Loopback endpoints are skipped: the ``kubernetes`` Service's endpoint is the API
server's 127.0.0.1, which a pod can never reach -- the node-local forwarder answers
10.96.0.1 instead. The target port is the slice's port with the service port's name.

Updating without losing state: :func:`replace_script` deletes and recreates the table
(the first apply, which also clears a crashed run's leftovers). :func:`update_script`
flushes the rules and maps, deletes what the previous ruleset had and this one has not
(and sets whose declaration or elements changed), and re-declares the rest in the same
transaction, so the affinity sets keep the clients they learnt.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import names

Obj = dict[str, Any]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
#: Services carrying this label belong to another proxy (kube-proxy skips them too)
SERVICE_PROXY_NAME_LABEL = "service.kubernetes.io/service-proxy-name"
DEFAULT_AFFINITY_TIMEOUT = 10800
#: the packet mark asking postrouting to masquerade (kube-proxy's bit)
MASQUERADE_MARK = 0x4000
PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")

SERVICE_IPS = "service-ips"
SERVICE_NODEPORTS = "service-nodeports"
NO_ENDPOINT_SERVICES = "no-endpoint-services"
NO_ENDPOINT_NODEPORTS = "no-endpoint-nodeports"
REJECT_CHAIN = "reject-chain"
MARK_CHAIN = "mark-for-masquerade"
MASQ_CHAIN = "masquerading"
SERVICES_CHAIN = "services"
CHECK_CHAIN = "endpoints-check"
CLUSTER_IPS = "cluster-ips"
IP_PORT_PROTO = "ipv4_addr . inet_proto . inet_service"
PORT_PROTO = "inet_proto . inet_service"


# ---------------------------------------------------------------- the model of what the API says


@dataclass(frozen=True, slots=True, order=True)
class Endpoint:
    """One address of an EndpointSlice with the port the service port resolves to there."""

    ip: str
    port: int
    node: str = ""
    ready: bool = True
    serving: bool = True
    terminating: bool = False


@dataclass(frozen=True, slots=True)
class ServicePort:
    """One port of one Service, with every endpoint the slices give it."""

    namespace: str
    name: str
    port_name: str
    protocol: str  # nft's name: tcp, udp, sctp
    port: int
    cluster_ips: tuple[str, ...]
    node_port: int | None = None
    affinity_timeout: int | None = None  # seconds, None: no session affinity
    internal_local: bool = False  # internalTrafficPolicy: Local
    external_local: bool = False  # externalTrafficPolicy: Local
    endpoints: tuple[Endpoint, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}/{self.protocol}/{self.port_name or self.port}"


def _ipv4(value: Any) -> str | None:
    try:
        addr = ipaddress.ip_address(str(value))
    except ValueError:
        return None
    return str(addr) if addr.version == 4 else None


def _slice_endpoints(slices: Iterable[Obj], port_name: str, protocol: str) -> tuple[Endpoint, ...]:
    """The endpoints of ``slices`` for the service port named ``port_name`` (deduplicated, sorted)."""
    best: dict[tuple[str, int], Endpoint] = {}
    for sl in slices:
        if (sl.get("addressType") or "IPv4") != "IPv4":
            continue
        target = None
        for p in sl.get("ports") or []:
            if (p.get("name") or "") == port_name and PROTOCOLS.get(p.get("protocol") or "TCP") == protocol:
                target = p.get("port")
        if not isinstance(target, int):
            continue
        for ep in sl.get("endpoints") or []:
            ip = _ipv4((ep.get("addresses") or [None])[0])
            if ip is None or ipaddress.ip_address(ip) in LOOPBACK:
                continue
            cond = ep.get("conditions") or {}
            ready = cond.get("ready") is not False  # unknown counts as ready
            serving = ready if cond.get("serving") is None else bool(cond["serving"])
            found = Endpoint(ip, target, ep.get("nodeName") or "", ready, serving, cond.get("terminating") is True)
            seen = best.get((ip, target))
            if seen is None or (found.ready, found.serving) > (seen.ready, seen.serving):
                best[(ip, target)] = found
    return tuple(sorted(best.values(), key=lambda e: (ipaddress.ip_address(e.ip), e.port)))


def _cluster_ips(spec: Obj) -> tuple[str, ...]:
    raw = spec.get("clusterIPs") or [spec.get("clusterIP")]
    return tuple(sorted({ip for ip in (_ipv4(v) for v in raw) if ip is not None}, key=ipaddress.ip_address))


def service_ports(services: Iterable[Obj], slices: Iterable[Obj]) -> list[ServicePort]:
    """Every proxied (Service, port) with its endpoints, sorted by namespace, name, protocol, port."""
    by_service: dict[tuple[str, str], list[Obj]] = {}
    for sl in slices:
        meta = sl.get("metadata") or {}
        owner = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if owner:
            by_service.setdefault((meta.get("namespace") or "", owner), []).append(sl)
    for group in by_service.values():
        group.sort(key=lambda s: (s.get("metadata") or {}).get("name") or "")
    out: list[ServicePort] = []
    for svc in services:
        meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
        if (meta.get("labels") or {}).get(SERVICE_PROXY_NAME_LABEL) or spec.get("type") == "ExternalName":
            continue
        cluster_ips = _cluster_ips(spec)
        if not cluster_ips:
            continue  # headless (clusterIP None) or not allocated yet
        ns, name = meta.get("namespace") or "", meta.get("name") or ""
        affinity = None
        if spec.get("sessionAffinity") == "ClientIP":
            cfg = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
            affinity = int(cfg.get("timeoutSeconds") or DEFAULT_AFFINITY_TIMEOUT)
        node_ports = spec.get("type") in ("NodePort", "LoadBalancer")
        for p in spec.get("ports") or []:
            proto = PROTOCOLS.get(p.get("protocol") or "TCP")
            if proto is None or not isinstance(p.get("port"), int):
                continue
            port_name = p.get("name") or ""
            out.append(ServicePort(
                ns, name, port_name, proto, p["port"], cluster_ips,
                node_port=p.get("nodePort") if node_ports and isinstance(p.get("nodePort"), int) else None,
                affinity_timeout=affinity,
                internal_local=spec.get("internalTrafficPolicy") == "Local",
                external_local=spec.get("externalTrafficPolicy") == "Local",
                endpoints=_slice_endpoints(by_service.get((ns, name), []), port_name, proto)))
    out.sort(key=lambda sp: (sp.namespace, sp.name, sp.protocol, sp.port, sp.port_name))
    return out


def usable_endpoints(endpoints: Sequence[Endpoint]) -> tuple[Endpoint, ...]:
    """The ready endpoints; if there are none, those serving while terminating (kube-proxy's fallback)."""
    ready = tuple(e for e in endpoints if e.ready)
    return ready or tuple(e for e in endpoints if e.serving and e.terminating)


# ---------------------------------------------------------------- the ruleset


@dataclass(frozen=True, slots=True)
class NamedSet:
    name: str
    lines: tuple[str, ...]  # its declaration (type, flags, timeout)
    elements: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NamedMap:
    name: str
    type: str
    elements: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Chain:
    name: str
    rules: tuple[str, ...]
    hook: str = ""  # base chains: "type nat hook prerouting priority dstnat; policy accept;"


@dataclass(frozen=True, slots=True)
class Ruleset:
    table: str
    sets: tuple[NamedSet, ...] = ()
    maps: tuple[NamedMap, ...] = ()
    chains: tuple[Chain, ...] = ()


def _hash(*parts: object) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:8]


def _svc_chain(sp: ServicePort) -> str:
    return f"svc-{_hash(sp.key)}-{sp.key}"


def _ext_chain(sp: ServicePort) -> str:
    return f"ext-{_hash(sp.key)}-{sp.key}"


def _ep_chain(sp: ServicePort, ep: Endpoint) -> str:
    return f"ep-{_hash(sp.key, ep.ip, ep.port)}-{sp.key}__{ep.ip}/{ep.port}"


def _affinity_set(sp: ServicePort, ep: Endpoint) -> str:
    # the timeout is part of the name: a set's timeout cannot change, a new one replaces it
    return f"aff-{_hash(sp.key, ep.ip, ep.port, sp.affinity_timeout)}-{sp.key}__{ep.ip}/{ep.port}"


def _dispatch_rules(sp: ServicePort, endpoints: Sequence[Endpoint]) -> list[str]:
    """Affinity lookups, then the random spread over ``endpoints``' chains."""
    rules = []
    if sp.affinity_timeout is not None:
        rules += [f"ip saddr @{_affinity_set(sp, ep)} goto {_ep_chain(sp, ep)}" for ep in endpoints]
    choices = ", ".join(f"{i} : goto {_ep_chain(sp, ep)}" for i, ep in enumerate(endpoints))
    rules.append(f"numgen random mod {len(endpoints)} vmap {{ {choices} }}")
    return rules


def _endpoint_chain(sp: ServicePort, ep: Endpoint) -> Chain:
    rules = [f"ip saddr {ep.ip} jump {MARK_CHAIN}"]  # hairpin
    if sp.affinity_timeout is not None:
        rules.append(f"update @{_affinity_set(sp, ep)} {{ ip saddr }}")
    rules.append(f"meta l4proto {sp.protocol} dnat to {ep.ip}:{ep.port}")
    return Chain(_ep_chain(sp, ep), tuple(rules))


@dataclass(slots=True)
class _Builder:
    node_name: str
    cluster_cidrs: tuple[str, ...]
    sets: list[NamedSet] = field(default_factory=list)
    chains: list[Chain] = field(default_factory=list)
    service_ips: list[str] = field(default_factory=list)
    nodeports: list[str] = field(default_factory=list)
    no_ep_services: list[str] = field(default_factory=list)
    no_ep_nodeports: list[str] = field(default_factory=list)

    def add(self, sp: ServicePort) -> None:
        usable = usable_endpoints(sp.endpoints)
        local = tuple(e for e in usable if e.node == self.node_name)
        internal = local if sp.internal_local else usable
        external = local if sp.external_local else usable
        used = sorted(set(internal) | (set(external) if sp.node_port is not None else set()),
                      key=lambda e: (ipaddress.ip_address(e.ip), e.port))
        for ep in used:
            self.chains.append(_endpoint_chain(sp, ep))
            if sp.affinity_timeout is not None:
                self.sets.append(NamedSet(_affinity_set(sp, ep), (
                    "type ipv4_addr", "flags dynamic,timeout", f"timeout {sp.affinity_timeout}s")))
        # nothing usable at all: reject; usable elsewhere but a Local policy leaves none here: drop
        no_internal = f"goto {REJECT_CHAIN}" if not usable else "drop"
        keys = [f"{ip} . {sp.protocol} . {sp.port}" for ip in sp.cluster_ips]
        if internal:
            rules = [f"ip saddr != {{ {', '.join(self.cluster_cidrs)} }} jump {MARK_CHAIN}"] if self.cluster_cidrs else []
            self.chains.append(Chain(_svc_chain(sp), tuple(rules + _dispatch_rules(sp, internal))))
            self.service_ips += [f"{k} : goto {_svc_chain(sp)}" for k in keys]
        else:
            self.no_ep_services += [f"{k} : {no_internal}" for k in keys]
        if sp.node_port is None:
            return
        key = f"{sp.protocol} . {sp.node_port}"
        if not external:
            self.no_ep_nodeports.append(f"{key} : {'drop' if usable else f'goto {REJECT_CHAIN}'}")
        elif sp.external_local:  # keep the client's address: only this node's endpoints, no masquerade
            self.chains.append(Chain(_ext_chain(sp), tuple(_dispatch_rules(sp, external))))
            self.nodeports.append(f"{key} : goto {_ext_chain(sp)}")
        else:
            rules = [f"jump {MARK_CHAIN}"] + ([f"goto {_svc_chain(sp)}"] if internal else _dispatch_rules(sp, external))
            self.chains.append(Chain(_ext_chain(sp), tuple(rules)))
            self.nodeports.append(f"{key} : goto {_ext_chain(sp)}")


def _fixed_chains() -> list[Chain]:
    local_not_loopback = "fib daddr type local ip daddr != 127.0.0.0/8"
    mark = f"0x{MASQUERADE_MARK:x}"
    return [
        Chain("nat-prerouting", (f"jump {SERVICES_CHAIN}",), "type nat hook prerouting priority dstnat; policy accept;"),
        Chain("nat-output", (f"jump {SERVICES_CHAIN}",), "type nat hook output priority -100; policy accept;"),
        Chain("nat-postrouting", (f"jump {MASQ_CHAIN}",), "type nat hook postrouting priority srcnat; policy accept;"),
        Chain("filter-input", (f"ct state new jump {CHECK_CHAIN}",), "type filter hook input priority -10; policy accept;"),
        Chain("filter-forward", (f"ct state new jump {CHECK_CHAIN}",), "type filter hook forward priority -10; policy accept;"),
        Chain("filter-output", (f"ct state new jump {CHECK_CHAIN}",), "type filter hook output priority -10; policy accept;"),
        Chain(SERVICES_CHAIN, (
            f"{local_not_loopback} meta l4proto . th dport vmap @{SERVICE_NODEPORTS}",
            "fib daddr type local return",  # node-local listeners (DNS, API forwarder) answer themselves
            f"ip daddr . meta l4proto . th dport vmap @{SERVICE_IPS}")),
        Chain(CHECK_CHAIN, (
            f"{local_not_loopback} meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS}",
            "fib daddr type local return",
            f"ip daddr . meta l4proto . th dport vmap @{NO_ENDPOINT_SERVICES}",
            f"ip daddr @{CLUSTER_IPS} goto {REJECT_CHAIN}")),  # a ClusterIP's port that no Service has
        Chain(REJECT_CHAIN, ("meta l4proto tcp reject with tcp reset", "reject")),
        Chain(MARK_CHAIN, (f"mark set mark or {mark}",)),
        Chain(MASQ_CHAIN, (f"mark and {mark} == 0 return", f"mark set mark xor {mark}", "masquerade fully-random")),
    ]


def build_ruleset(services: Iterable[Obj], slices: Iterable[Obj], *, node_name: str, table: str = names.PROXY_TABLE,
                  cluster_cidrs: Sequence[str] = ()) -> Ruleset:
    """The proxy's table for ``node_name``. ``cluster_cidrs``: pod ranges; ClusterIP traffic from outside them is masqueraded."""
    b = _Builder(node_name, tuple(sorted(cluster_cidrs)))
    ports = service_ports(services, slices)
    for sp in ports:
        b.add(sp)
    maps = (NamedMap(NO_ENDPOINT_NODEPORTS, PORT_PROTO, tuple(sorted(b.no_ep_nodeports))),
            NamedMap(NO_ENDPOINT_SERVICES, IP_PORT_PROTO, tuple(sorted(b.no_ep_services))),
            NamedMap(SERVICE_IPS, IP_PORT_PROTO, tuple(sorted(b.service_ips))),
            NamedMap(SERVICE_NODEPORTS, PORT_PROTO, tuple(sorted(b.nodeports))))
    cluster_ips = sorted({ip for sp in ports for ip in sp.cluster_ips}, key=ipaddress.ip_address)
    sets = (NamedSet(CLUSTER_IPS, ("type ipv4_addr",), tuple(cluster_ips)),
            *sorted({s.name: s for s in b.sets}.values(), key=lambda s: s.name))
    chains = tuple(_fixed_chains()) + tuple(sorted({c.name: c for c in b.chains}.values(), key=lambda c: c.name))
    return Ruleset(table, sets, maps, chains)


# ---------------------------------------------------------------- printing


def _definition(rs: Ruleset) -> list[str]:
    lines = [f"table ip {rs.table} {{"]
    for s in rs.sets:
        lines += [f"  set {s.name} {{"] + [f"    {line}" for line in s.lines]
        if s.elements:
            lines += ["    elements = {"] + [f"      {e}," for e in s.elements] + ["    }"]
        lines.append("  }")
    for m in rs.maps:
        lines += [f"  map {m.name} {{", f"    type {m.type} : verdict"]
        if m.elements:
            lines += ["    elements = {"] + [f"      {e}," for e in m.elements] + ["    }"]
        lines.append("  }")
    for c in rs.chains:
        lines.append(f"  chain {c.name} {{")
        if c.hook:
            lines.append(f"    {c.hook}")
        lines += [f"    {rule}" for rule in c.rules] + ["  }"]
    lines.append("}")
    return lines


def replace_script(rs: Ruleset) -> str:
    """One transaction deleting the table (if there is one) and defining it afresh."""
    return "\n".join([f"add table ip {rs.table}", f"delete table ip {rs.table}", *_definition(rs)]) + "\n"


def update_script(previous: Ruleset, rs: Ruleset) -> str:
    """One transaction turning the table ``previous`` described into ``rs``, keeping the affinity sets' contents."""
    if previous.table != rs.table:
        return replace_script(rs)
    t = rs.table
    lines = [f"add table ip {t}", f"flush table ip {t}"]
    for m in rs.maps:
        lines += [f"add map ip {t} {m.name} {{ type {m.type} : verdict; }}", f"flush map ip {t} {m.name}"]
    new_chains = {c.name: c.hook for c in rs.chains}
    lines += [f"delete chain ip {t} {c.name}" for c in previous.chains if new_chains.get(c.name, None) != c.hook]
    new_maps = {m.name for m in rs.maps}
    lines += [f"delete map ip {t} {m.name}" for m in previous.maps if m.name not in new_maps]
    new_sets = {s.name: s for s in rs.sets}
    lines += [f"delete set ip {t} {s.name}" for s in previous.sets if new_sets.get(s.name) != s]
    return "\n".join(lines + _definition(rs)) + "\n"


def render_ruleset(services: list[Obj], slices: list[Obj], *, node_name: str, table: str = names.PROXY_TABLE,
                   cluster_cidrs: Sequence[str] = ()) -> str:
    """The ``nft -f`` script atomically replacing table ``ip <table>`` with the proxy's rules for ``node_name``."""
    return replace_script(build_ruleset(services, slices, node_name=node_name, table=table, cluster_cidrs=cluster_cidrs))


__all__ = ["DEFAULT_AFFINITY_TIMEOUT", "MASQUERADE_MARK", "Chain", "Endpoint", "NamedMap", "NamedSet", "Ruleset",
           "ServicePort", "build_ruleset", "render_ruleset", "replace_script", "service_ports", "update_script",
           "usable_endpoints"]
