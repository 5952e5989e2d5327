"""NetworkPolicy as an nftables ruleset for one node namespace (pure: objects in, ``nft -f`` script out).

Where the rules sit
-------------------
Every pod's traffic leaves and enters through the node namespace: the node-side end of pod P's
veth is ``names.host_veth_name(P.uid)``. A packet *to* a local pod is forwarded out of that veth
(``oifname``), a packet *from* it came in through it (``iifname``). So each node enforces, in its
``forward`` hook, the ingress policy of its own pods on ``oifname`` and their egress policy on
``iifname``; traffic between nodes is checked at both ends (egress at the source node, ingress at
the destination node). Service traffic was DNATed in prerouting by the service proxy, so the
forward hook already sees the backend pod's address and port, which is what NetworkPolicy is about.
Packets from a pod to a node-local listener (the cluster DNS on 10.96.0.10, the ``kubernetes``
Service's forwarder on 10.96.0.1) are delivered in the node namespace instead of forwarded. They
are Services, not the node: an ``input`` hook applies the pod's egress chain to packets from its
veth to a Service address (``service_cidrs``), since Kubernetes does not allow DNS implicitly.
Packets to the node's own addresses (its gateway, its IP) pass: Kubernetes always allows traffic
between a pod and its node.

What a chain does (Kubernetes' semantics)
-----------------------------------------
- A pod is isolated for ingress (egress) only when some policy of its namespace selects it and has
  ``Ingress`` (``Egress``) in ``policyTypes`` (default: ``Ingress``, plus ``Egress`` when the policy
  has egress rules). Pods selected by nothing get no rule at all.
- An isolated pod's chain ``return``\\ s (lets the packet go on) when any rule of any of those
  policies matches and drops everything else. Rules are OR'ed, a rule's peers are OR'ed, a rule's
  ports are OR'ed; a rule without peers matches every address, one without ports every port.
  ``return`` rather than ``accept``: a packet between two isolated local pods must pass the
  destination's ingress chain *and* the source's egress chain.
- Peers: ``podSelector`` alone: pods of the policy's namespace; ``namespaceSelector`` alone: every
  pod of the selected namespaces; both: the selected pods of the selected namespaces; ``ipBlock``:
  its CIDR minus its ``except`` blocks. Pods on the host network and finished pods are never peers.
- Ports: a protocol (default TCP) and a number, a range (``endPort``), a name (resolved against the
  destination's ``containerPorts`` -- the local pod for ingress, each peer pod for egress, so an
  egress named port becomes ``address . port`` pairs), or no port (every port of the protocol).
- Replies and related ICMP of allowed connections pass (``ct state established,related``), and a
  pod may always reach itself (hairpin through a Service: in and out by the same veth). Traffic the
  node itself originates goes through ``output``, not ``forward``: it is never filtered.

The script replaces table ``inet <table>`` atomically (declare, delete, define, in one transaction).
Output is deterministic: pods sorted by namespace/name, policies by namespace/name, addresses and
ports merged and sorted, so an unchanged cluster renders byte-for-byte the same script.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

from ...machinery.selectors import EVERYTHING, LabelSelector, SelectorError, label_selector_from_dict
from .. import names

Obj = dict[str, Any]
Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

INGRESS = "Ingress"
EGRESS = "Egress"
PROTOCOLS = ("TCP", "UDP", "SCTP")
FINISHED_PHASES = frozenset({"Succeeded", "Failed"})
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
#: the Service range podlife (and kubeadm) use by default
DEFAULT_SERVICE_CIDRS = ("10.96.0.0/12",)


# --------------------------------------------------------------------------- object views


@dataclass(frozen=True)
class PodView:
    """What the rules need of a pod."""

    namespace: str
    name: str
    uid: str
    node: str
    labels: Mapping[str, str]
    ips: tuple[str, ...]
    #: (name, protocol, number) of every container port with a name
    named_ports: tuple[tuple[str, str, int], ...]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def pod_ips(pod: Obj) -> tuple[str, ...]:
    """The pod's addresses (``status.podIPs``, else ``status.podIP``), valid ones only."""
    status = pod.get("status") or {}
    listed: list[Any] = [entry.get("ip") for entry in status.get("podIPs") or [] if isinstance(entry, dict)]
    if not listed and status.get("podIP"):
        listed = [status["podIP"]]
    out: list[str] = []
    for ip in listed:
        try:
            text = str(ipaddress.ip_address(ip))
        except (TypeError, ValueError):
            continue
        if text not in out:
            out.append(text)
    return tuple(out)


def _named_ports(pod: Obj) -> tuple[tuple[str, str, int], ...]:
    spec = pod.get("spec") or {}
    found: list[tuple[str, str, int]] = []
    for container in list(spec.get("containers") or []) + list(spec.get("initContainers") or []):
        for port in (container or {}).get("ports") or []:
            name, number = port.get("name"), port.get("containerPort")
            if isinstance(name, str) and name and isinstance(number, int):
                found.append((name, port.get("protocol") or "TCP", number))
    return tuple(found)


def pod_view(pod: Obj) -> PodView | None:
    """The view of a pod that takes part in pod networking now (has an address, own netns, not finished)."""
    spec, meta = pod.get("spec") or {}, pod.get("metadata") or {}
    if spec.get("hostNetwork") or (pod.get("status") or {}).get("phase") in FINISHED_PHASES:
        return None
    ips = pod_ips(pod)
    if not ips:
        return None
    return PodView(namespace=meta.get("namespace") or "default", name=meta.get("name") or "", uid=meta.get("uid") or "",
                   node=spec.get("nodeName") or "", labels=dict(meta.get("labels") or {}), ips=ips,
                   named_ports=_named_ports(pod))


def namespace_labels(namespaces: Iterable[Obj]) -> dict[str, Mapping[str, str]]:
    """Namespace name -> its labels."""
    out: dict[str, Mapping[str, str]] = {}
    for ns in namespaces:
        meta = ns.get("metadata") or {}
        if meta.get("name"):
            out[meta["name"]] = dict(meta.get("labels") or {})
    return out


def _labels_of_namespace(ns_labels: Mapping[str, Mapping[str, str]], name: str) -> Mapping[str, str]:
    # a namespace not seen (yet) still carries the label the API server always sets
    return ns_labels.get(name) or {NAMESPACE_NAME_LABEL: name}


def _selector(raw: Any) -> LabelSelector | None:
    """A peer or policy selector; ``None`` when absent or invalid (the API validates them)."""
    if raw is None:
        return None
    try:
        return label_selector_from_dict(raw)
    except SelectorError:
        return None


# --------------------------------------------------------------------------- which policies apply


def policy_types(policy: Obj) -> frozenset[str]:
    """The directions a policy isolates for (its ``policyTypes``, or the API's default for it)."""
    spec = policy.get("spec") or {}
    listed = spec.get("policyTypes")
    if listed:
        return frozenset(t for t in listed if t in (INGRESS, EGRESS))
    return frozenset({INGRESS, EGRESS} if spec.get("egress") else {INGRESS})


def selects(policy: Obj, pod: PodView) -> bool:
    """Whether ``policy`` applies to ``pod`` (same namespace, ``spec.podSelector`` matches)."""
    if ((policy.get("metadata") or {}).get("namespace") or "default") != pod.namespace:
        return False
    raw = (policy.get("spec") or {}).get("podSelector")
    selector = EVERYTHING if raw is None else _selector(raw)  # absent is the empty selector: every pod
    return selector is not None and selector.matches(pod.labels)


def _sorted_policies(policies: Iterable[Obj]) -> list[Obj]:
    return sorted(policies, key=lambda p: ((p.get("metadata") or {}).get("namespace") or "", (p.get("metadata") or {}).get("name") or ""))


# --------------------------------------------------------------------------- peers


@dataclass(frozen=True)
class Peers:
    """Who a rule's peers are: ``None`` networks means any address."""

    networks: tuple[Network, ...] | None
    pods: tuple[PodView, ...]


def _networks_of_block(block: Mapping[str, Any]) -> list[Network]:
    try:
        cidr = ipaddress.ip_network(block.get("cidr") or "", strict=False)
    except ValueError:
        return []
    remaining: list[Network] = [cidr]
    for raw in block.get("except") or []:
        try:
            hole = ipaddress.ip_network(raw, strict=False)
        except ValueError:
            continue
        nxt: list[Network] = []
        for net in remaining:
            if net.version != hole.version or not net.overlaps(hole):
                nxt.append(net)
            elif hole.supernet_of(net):  # type: ignore[arg-type]
                continue
            else:
                nxt.extend(net.address_exclude(hole))  # type: ignore[arg-type]
        remaining = nxt
    return remaining


def _peer_pods(peer: Mapping[str, Any], policy_ns: str, pods: Sequence[PodView],
               ns_labels: Mapping[str, Mapping[str, str]]) -> list[PodView]:
    has_pod_sel, has_ns_sel = "podSelector" in peer and peer["podSelector"] is not None, \
        "namespaceSelector" in peer and peer["namespaceSelector"] is not None
    if not has_pod_sel and not has_ns_sel:
        return []
    pod_sel = _selector(peer["podSelector"]) if has_pod_sel else EVERYTHING
    ns_sel = _selector(peer["namespaceSelector"]) if has_ns_sel else None
    if pod_sel is None or (has_ns_sel and ns_sel is None):
        return []
    out = []
    for pod in pods:
        if ns_sel is None:
            in_scope = pod.namespace == policy_ns
        else:
            in_scope = ns_sel.matches(_labels_of_namespace(ns_labels, pod.namespace))
        if in_scope and pod_sel.matches(pod.labels):
            out.append(pod)
    return out


def _in_networks(ip: str, networks: Sequence[Network]) -> bool:
    address = ipaddress.ip_address(ip)
    return any(address.version == net.version and address in net for net in networks)


def resolve_peers(raw_peers: Any, policy_ns: str, pods: Sequence[PodView],
                  ns_labels: Mapping[str, Mapping[str, str]]) -> Peers:
    """A rule's ``from``/``to``: the addresses it allows and the pods those are (for named ports)."""
    if not raw_peers:
        return Peers(None, tuple(pods))
    networks: list[Network] = []
    chosen: dict[str, PodView] = {}
    for peer in raw_peers:
        if not isinstance(peer, Mapping):
            continue
        block = peer.get("ipBlock")
        if isinstance(block, Mapping):
            block_nets = _networks_of_block(block)
            networks.extend(block_nets)
            for pod in pods:
                if any(_in_networks(ip, block_nets) for ip in pod.ips):
                    chosen.setdefault(pod.key, pod)
            continue
        for pod in _peer_pods(peer, policy_ns, pods, ns_labels):
            chosen.setdefault(pod.key, pod)
            networks.extend(ipaddress.ip_network(ip) for ip in pod.ips)
    return Peers(_collapse(networks), tuple(chosen[k] for k in sorted(chosen)))


def _collapse(networks: Iterable[Network]) -> tuple[Network, ...]:
    networks = list(networks)
    v4 = [n for n in networks if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in networks if isinstance(n, ipaddress.IPv6Network)]
    return tuple(ipaddress.collapse_addresses(v4)) + tuple(ipaddress.collapse_addresses(v6))


# --------------------------------------------------------------------------- ports


@dataclass(frozen=True)
class Ports:
    """A rule's ``ports``: ``None`` ranges means every port (and protocol)."""

    #: protocol -> merged (first, last) ranges; an empty tuple: every port of the protocol
    ranges: Mapping[str, tuple[tuple[int, int], ...]] | None
    #: egress named ports: (protocol, address, number), resolved against the destination pods
    pairs: tuple[tuple[str, str, int], ...] = ()


def _merge_ranges(ranges: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    merged: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return tuple(merged)


def _lookup_named(pod: PodView, name: str, protocol: str) -> list[int]:
    return sorted({number for (n, proto, number) in pod.named_ports if n == name and proto == protocol})


def resolve_ports(raw_ports: Any, destinations: Sequence[PodView], *, per_destination: bool) -> Ports:
    """A rule's ports. Named ports look at ``destinations``: for ingress the one local pod (they become
    numbers); for egress (``per_destination``) each peer pod (they become address/port pairs)."""
    if not raw_ports:
        return Ports(None)
    whole: set[str] = set()
    ranges: dict[str, list[tuple[int, int]]] = {}
    pairs: set[tuple[str, str, int]] = set()
    for entry in raw_ports:
        if not isinstance(entry, Mapping):
            continue
        protocol = entry.get("protocol") or "TCP"
        if protocol not in PROTOCOLS:
            continue
        port = entry.get("port")
        if port is None:
            whole.add(protocol)
        elif isinstance(port, int):
            end = entry.get("endPort")
            ranges.setdefault(protocol, []).append((port, end if isinstance(end, int) and end >= port else port))
        elif isinstance(port, str) and port.isdigit():
            ranges.setdefault(protocol, []).append((int(port), int(port)))
        elif isinstance(port, str):
            for pod in destinations:
                for number in _lookup_named(pod, port, protocol):
                    if per_destination:
                        pairs.update((protocol, ip, number) for ip in pod.ips)
                    else:
                        ranges.setdefault(protocol, []).append((number, number))
    merged: dict[str, tuple[tuple[int, int], ...]] = {p: () for p in whole}
    for protocol, rs in ranges.items():
        if protocol not in whole:
            merged[protocol] = _merge_ranges(rs)
    return Ports(merged, tuple(sorted(pairs, key=lambda t: (t[0], ipaddress.ip_address(t[1]).version,
                                                                int(ipaddress.ip_address(t[1])), t[2]))))


# --------------------------------------------------------------------------- nft text


def _set(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


def _net_text(net: Network) -> str:
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


def _range_text(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


def _family_matches(networks: tuple[Network, ...] | None, field: str) -> list[str]:
    """``ip saddr {..}`` / ``ip6 saddr {..}`` for the families present; ``[""]`` for any address."""
    if networks is None:
        return [""]
    out = []
    for version, family in ((4, "ip"), (6, "ip6")):
        nets = [_net_text(n) for n in networks if n.version == version]
        if nets:
            out.append(f"{family} {field} {_set(nets)} ")
    return out


def _port_matches(ports: Ports) -> list[str]:
    """``tcp dport {..}`` per protocol, ``meta l4proto X`` for a whole protocol; ``[""]`` for anything."""
    if ports.ranges is None:
        return [""]
    out = []
    for protocol in PROTOCOLS:
        if protocol not in ports.ranges:
            continue
        proto = protocol.lower()
        rs = ports.ranges[protocol]
        out.append(f"meta l4proto {proto} " if not rs else f"{proto} dport {_set([_range_text(a, b) for a, b in rs])} ")
    return out


def _pair_matches(pairs: Sequence[tuple[str, str, int]]) -> list[str]:
    out = []
    for protocol in PROTOCOLS:
        for version, family in ((4, "ip"), (6, "ip6")):
            items = [f"{ip} . {number}" for (proto, ip, number) in pairs
                     if proto == protocol and ipaddress.ip_address(ip).version == version]
            if items:
                out.append(f"{family} daddr . {protocol.lower()} dport {{ {', '.join(items)} }} ")
    return out


def rule_statements(peers: Peers, ports: Ports, *, field: str) -> list[str]:
    """The nft statements (each ending in ``return``) that let a rule's traffic through."""
    statements = [f"{a}{p}return" for a in _family_matches(peers.networks, field) for p in _port_matches(ports)]
    pairs = ports.pairs
    if peers.networks is not None:  # a peer pod's other addresses may lie outside an ipBlock
        pairs = tuple(pair for pair in pairs if _in_networks(pair[1], peers.networks))
    # egress named ports: address . port pairs of the peer pods themselves
    return statements + [f"{m}return" for m in _pair_matches(pairs)]


# --------------------------------------------------------------------------- chains


@dataclass(frozen=True)
class PodChains:
    """One local pod's enforcement: its veth and the statements of each direction it is isolated for."""

    pod: PodView
    veth: str
    ingress: tuple[str, ...] | None  # None: not isolated for ingress
    egress: tuple[str, ...] | None


def _unique(lines: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for line in lines:
        seen.setdefault(line, None)
    return tuple(seen)


def _direction(pod: PodView, applying: Sequence[Obj], direction: str, pods: Sequence[PodView],
               ns_labels: Mapping[str, Mapping[str, str]]) -> tuple[str, ...]:
    rule_key, peer_key, field = ("ingress", "from", "saddr") if direction == INGRESS else ("egress", "to", "daddr")
    lines: list[str] = []
    for policy in applying:
        policy_ns = (policy.get("metadata") or {}).get("namespace") or "default"
        for rule in (policy.get("spec") or {}).get(rule_key) or []:
            if not isinstance(rule, Mapping):
                continue
            peers = resolve_peers(rule.get(peer_key), policy_ns, pods, ns_labels)
            if direction == INGRESS:
                ports = resolve_ports(rule.get("ports"), [pod], per_destination=False)
            else:
                ports = resolve_ports(rule.get("ports"), peers.pods, per_destination=True)
            lines.extend(rule_statements(peers, ports, field=field))
    return _unique(lines)


def compute_pod_chains(policies: Sequence[Obj], pods: Sequence[Obj], namespaces: Sequence[Obj], *,
                       node_name: str) -> list[PodChains]:
    """Per local pod isolated in some direction, the statements its chains hold (sorted by pod)."""
    if not policies:
        return []  # the common case, and the cheap one: no pod is isolated
    views = sorted((v for v in (pod_view(p) for p in pods) if v is not None), key=lambda v: v.key)
    ns_labels = namespace_labels(namespaces)
    ordered = _sorted_policies(policies)
    out: list[PodChains] = []
    for pod in views:
        if pod.node != node_name or not pod.uid:
            continue
        applying = [p for p in ordered if selects(p, pod)]
        ingress_policies = [p for p in applying if INGRESS in policy_types(p)]
        egress_policies = [p for p in applying if EGRESS in policy_types(p)]
        if not ingress_policies and not egress_policies:
            continue
        out.append(PodChains(
            pod=pod, veth=names.host_veth_name(pod.uid),
            ingress=_direction(pod, ingress_policies, INGRESS, views, ns_labels) if ingress_policies else None,
            egress=_direction(pod, egress_policies, EGRESS, views, ns_labels) if egress_policies else None))
    return out


def _vmap(field: str, entries: Sequence[tuple[str, str]]) -> list[str]:
    if not entries:
        return []
    return [f"{field} vmap {{ " + ", ".join(f'"{veth}" : jump {chain}' for veth, chain in entries) + " }"]


def _chain(name: str, body: Sequence[str]) -> list[str]:
    return [f"\tchain {name} {{"] + [f"\t\t{line}" for line in body] + ["\t}"]


def _service_match(service_cidrs: Sequence[str]) -> list[str]:
    """``ip daddr {..} `` (and ``ip6``) for the Service ranges; ``[""]`` (every address) when none is given."""
    networks: list[Network] = []
    for cidr in service_cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            continue
    return _family_matches(_collapse(networks), "daddr") if networks else [""]


def render_chains(chains: Sequence[PodChains], *, table: str = names.POLICY_TABLE,
                  service_cidrs: Sequence[str] = DEFAULT_SERVICE_CIDRS) -> str:
    """The ``nft -f`` script for already computed pod chains."""
    ingress = [(c.veth, f"ingress_{c.veth}") for c in chains if c.ingress is not None]
    egress = [(c.veth, f"egress_{c.veth}") for c in chains if c.egress is not None]
    forward = ["type filter hook forward priority filter; policy accept;", "ct state established,related accept"]
    forward += [f'iifname "{c.veth}" oifname "{c.veth}" accept' for c in chains]  # a pod may reach itself
    forward += _vmap("oifname", ingress) + _vmap("iifname", egress)
    local_in = ["type filter hook input priority filter; policy accept;", "ct state established,related accept"]
    to_services = _service_match(service_cidrs)
    if egress and to_services == [""]:  # filtering all the node receives: keep IPv6 neighbour discovery working
        local_in.append("icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } accept")
    local_in += [f"{match}{vmap}" for match in to_services for vmap in _vmap("iifname", egress)]
    lines = [f"table inet {table}", f"delete table inet {table}", f"table inet {table} {{"]
    lines += _chain("forward", forward) + _chain("input", local_in)
    for c in chains:
        for direction, body in (("ingress", c.ingress), ("egress", c.egress)):
            if body is not None:
                deny = f'counter drop comment "{direction} of {c.pod.key} not allowed"'
                lines += _chain(f"{direction}_{c.veth}", list(body) + [deny])
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_policy_ruleset(policies: list[Obj], pods: list[Obj], namespaces: list[Obj], *, node_name: str,
                          table: str = names.POLICY_TABLE, service_cidrs: Sequence[str] = DEFAULT_SERVICE_CIDRS) -> str:
    """An ``nft -f`` script atomically replacing table ``inet <table>`` with the NetworkPolicy rules of
    ``node_name``'s pods (see the module docstring for the layout and the semantics). ``service_cidrs``:
    the Service ranges, whose node-local listeners pods' egress rules govern (empty: every address the
    node namespace itself receives from an egress-isolated pod)."""
    return render_chains(compute_pod_chains(policies, pods, namespaces, node_name=node_name), table=table,
                         service_cidrs=service_cidrs)


__all__ = ["DEFAULT_SERVICE_CIDRS", "EGRESS", "INGRESS", "Peers", "PodChains", "PodView", "Ports", "compute_pod_chains", "namespace_labels",
           "pod_ips", "pod_view", "policy_types", "render_chains", "render_policy_ruleset", "resolve_peers", "resolve_ports",
           "rule_statements", "selects"]
