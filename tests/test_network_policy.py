"""NetworkPolicy enforced by nftables in a node namespace (podlife.nodenet.policy).

Three layers:

- the pure renderer: which pods get chains and what the chains allow, for each of
  NetworkPolicy's parts (default deny, pod/namespace selectors and both, ipBlock with except,
  ports, ranges and named ports, egress, policyTypes), and that ``nft -c`` accepts every script;
- real traffic: a node namespace and three pod namespaces built here with ``ip`` (veths named
  ``host_veth_name(uid)``, /32 routes, proxy ARP, forwarding), a TCP server in one pod, and
  rendered rulesets loaded into the node namespace;
- the enforcer against the in-process API: pods written with their IPs, a NetworkPolicy created
  and deleted, traffic following.

Every address lives in a namespace this module creates; connections are made from sockets
created inside the pod namespaces. Everything is removed afterwards, also on failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from podlife.client.base import NAMESPACES, PODS, Obj
from podlife.machinery.errors import ApiError
from podlife.machinery.netns import open_connection, socket_in
from podlife.nodenet import names
from podlife.nodenet.nft import nft_apply
from podlife.nodenet.policy.enforcer import NETWORK_POLICIES, PolicyEnforcer, dns_stand_in
from podlife.nodenet.policy.render import render_policy_ruleset

from .cluster_harness import async_wait_for, missing, require_tool
from .in_process import InProcessApi

NODE = "node-a"
SERVER_PORT = 8080
DNS_IP = "10.96.0.10"

# --------------------------------------------------------------------------- object helpers


def pod(name: str, ip: str | None, *, namespace: str = "default", node: str = NODE, labels: dict[str, str] | None = None,
        ports: list[dict[str, Any]] | None = None, uid: str | None = None, **spec: Any) -> Obj:
    container: dict[str, Any] = {"name": "app", "image": "busybox"}
    if ports:
        container["ports"] = ports
    status: dict[str, Any] = {"phase": "Running"}
    if ip:
        status.update(podIP=ip, podIPs=[{"ip": ip}])
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "uid": uid or f"uid-{namespace}-{name}", "labels": labels or {}},
            "spec": {"nodeName": node, "containers": [container], **spec}, "status": status}


def namespace(name: str, **labels: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name, **labels}}}


def policy(name: str, spec: dict[str, Any], namespace: str = "default") -> Obj:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name, "namespace": namespace},
            "spec": spec}


def veth(p: Obj) -> str:
    return names.host_veth_name(p["metadata"]["uid"])


def chain(script: str, name: str) -> list[str] | None:
    """The statements of chain ``name`` in a rendered script (None: no such chain)."""
    lines = script.splitlines()
    head = f"\tchain {name} {{"
    if head not in lines:
        return None
    body: list[str] = []
    for line in lines[lines.index(head) + 1:]:
        if line == "\t}":
            return body
        body.append(line.strip())
    raise AssertionError(f"chain {name} not closed")


def allows(script: str, p: Obj, direction: str = "ingress") -> list[str]:
    """The allowing statements of a pod's chain (asserting it ends in the drop)."""
    body = chain(script, f"{direction}_{veth(p)}")
    assert body is not None, f"{p['metadata']['name']} has no {direction} chain"
    assert body[-1].startswith("counter drop")
    return body[:-1]


SERVER = pod("server", "10.244.0.2", labels={"app": "web"}, ports=[{"name": "http", "containerPort": 8080}])
CLIENT = pod("client", "10.244.0.3", labels={"role": "client"})
OTHER = pod("other", "10.244.0.4", labels={"role": "other"})
REMOTE = pod("remote", "10.244.1.5", node="node-b", labels={"role": "client"})
FAR = pod("far", "10.244.2.6", namespace="team-a", node="node-b", labels={"role": "client"})
FAR_OTHER = pod("far-other", "10.244.2.7", namespace="team-a", node="node-b", labels={"role": "other"})
PLAIN = pod("plain", "10.244.3.8", namespace="team-b", node="node-b", labels={"role": "client"})
PODS_ALL = [SERVER, CLIENT, OTHER, REMOTE, FAR, FAR_OTHER, PLAIN]
NAMESPACES_ALL = [namespace("default"), namespace("team-a", team="a"), namespace("team-b", team="b")]

WEB = {"matchLabels": {"app": "web"}}
rendered: list[str] = []  # every script the pure tests render, for the nft -c test


def render(policies: list[Obj], pods: list[Obj] | None = None, namespaces: list[Obj] | None = None, node: str = NODE) -> str:
    script = render_policy_ruleset(policies, PODS_ALL if pods is None else pods,
                                   NAMESPACES_ALL if namespaces is None else namespaces, node_name=node)
    rendered.append(script)
    return script


# --------------------------------------------------------------------------- pure rendering


def test_without_policies_no_pod_has_a_chain() -> None:
    script = render([])
    assert script.startswith(f"table inet {names.POLICY_TABLE}\ndelete table inet {names.POLICY_TABLE}\n")
    assert chain(script, "forward") == ["type filter hook forward priority filter; policy accept;",
                                        "ct state established,related accept"]
    assert "vmap" not in script and "drop" not in script


def test_default_deny_ingress_isolates_the_namespace_pods_of_this_node_only() -> None:
    script = render([policy("deny", {"podSelector": {}, "policyTypes": ["Ingress"]})])
    forward = chain(script, "forward")
    assert forward is not None
    vmap = next(line for line in forward if line.startswith("oifname vmap"))
    for p in (SERVER, CLIENT, OTHER):
        assert allows(script, p) == []  # nothing but the drop
        assert f'"{veth(p)}" : jump ingress_{veth(p)}' in vmap
        assert chain(script, f"egress_{veth(p)}") is None
    for p in (REMOTE, FAR):  # another node's pods: that node enforces
        assert veth(p) not in script
    assert "ct state established,related accept" == forward[1]  # replies first
    assert f'iifname "{veth(SERVER)}" oifname "{veth(SERVER)}" accept' in forward  # a pod reaches itself


def test_policies_select_by_pod_labels_within_their_namespace() -> None:
    script = render([policy("web", {"podSelector": WEB})])
    assert allows(script, SERVER) == []
    assert chain(script, f"ingress_{veth(CLIENT)}") is None
    team_policy = render([policy("web", {"podSelector": {}}, namespace="team-a")])
    assert "chain ingress_" not in team_policy  # team-a's pods are all on node-b


def test_allow_from_pod_selector_is_the_policy_namespace_pods() -> None:
    script = render([policy("web", {"podSelector": WEB, "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]})])
    assert allows(script, SERVER) == ["ip saddr { 10.244.0.3, 10.244.1.5 } return"]  # not team-a's client


def test_namespace_selector_alone_is_every_pod_of_those_namespaces() -> None:
    script = render([policy("web", {"podSelector": WEB, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "a"}}}]}]})])
    assert allows(script, SERVER) == ["ip saddr 10.244.2.6/31 return"]  # .6 and .7: merged


def test_namespace_and_pod_selector_in_one_peer_are_both_required() -> None:
    both = {"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "Exists"}]},
            "podSelector": {"matchLabels": {"role": "client"}}}
    script = render([policy("web", {"podSelector": WEB, "ingress": [{"from": [both]}]})])
    assert allows(script, SERVER) == ["ip saddr { 10.244.2.6, 10.244.3.8 } return"]
    # the same two as separate peers are OR'ed
    either = [{"namespaceSelector": both["namespaceSelector"]}, {"podSelector": both["podSelector"]}]
    script = render([policy("web", {"podSelector": WEB, "ingress": [{"from": either}]})])
    assert allows(script, SERVER) == ["ip saddr { 10.244.0.3, 10.244.1.5, 10.244.2.6/31, 10.244.3.8 } return"]


def test_ip_block_with_except() -> None:
    block = {"ipBlock": {"cidr": "10.244.0.0/16", "except": ["10.244.0.0/24", "10.244.2.0/23"]}}
    script = render([policy("web", {"podSelector": WEB, "ingress": [{"from": [block]}]})])
    assert allows(script, SERVER) == ["ip saddr { 10.244.1.0/24, 10.244.4.0/22, 10.244.8.0/21, 10.244.16.0/20, 10.244.32.0/19, "
                                      "10.244.64.0/18, 10.244.128.0/17 } return"]
    v6 = render([policy("web", {"podSelector": WEB, "ingress": [{"from": [{"ipBlock": {"cidr": "fd00::/64"}}]}]})])
    assert allows(v6, SERVER) == ["ip6 saddr fd00::/64 return"]


def test_ports_ranges_protocols_and_named_ports_of_the_destination() -> None:
    ports = [{"protocol": "TCP", "port": 80}, {"protocol": "TCP", "port": 81, "endPort": 90}, {"protocol": "UDP", "port": 53},
             {"protocol": "TCP", "port": "http"}, {"protocol": "UDP", "port": "http"}, {"protocol": "SCTP"}]
    script = render([policy("web", {"podSelector": {}, "ingress": [{"ports": ports}]})])
    # the server's "http" is 8080/TCP; the UDP "http" names nothing
    assert allows(script, SERVER) == ["tcp dport { 80-90, 8080 } return", "udp dport 53 return", "meta l4proto sctp return"]
    assert allows(script, CLIENT) == ["tcp dport 80-90 return", "udp dport 53 return", "meta l4proto sctp return"]
    only_named = render([policy("web", {"podSelector": {}, "ingress": [{"ports": [{"protocol": "TCP", "port": "http"}]}]})])
    assert allows(only_named, SERVER) == ["tcp dport 8080 return"]
    assert allows(only_named, CLIENT) == []  # a name it does not have: nothing allowed


def test_peers_and_ports_together() -> None:
    rule = {"from": [{"podSelector": {"matchLabels": {"role": "client"}}}], "ports": [{"protocol": "TCP", "port": 8080}]}
    script = render([policy("web", {"podSelector": WEB, "ingress": [rule]})])
    assert allows(script, SERVER) == ["ip saddr { 10.244.0.3, 10.244.1.5 } tcp dport 8080 return"]


def test_a_selector_matching_no_pod_allows_nothing() -> None:
    script = render([policy("web", {"podSelector": WEB, "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "nobody"}}}]}]})])
    assert allows(script, SERVER) == []


def test_empty_rule_allows_everything_and_rules_and_policies_are_ored() -> None:
    script = render([policy("all", {"podSelector": WEB, "ingress": [{}]})])
    assert allows(script, SERVER) == ["return"]
    two = render([policy("a", {"podSelector": WEB, "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]}),
                  policy("b", {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "192.168.0.0/24"}}]}]})])
    assert allows(two, SERVER) == ["ip saddr { 10.244.0.3, 10.244.1.5 } return", "ip saddr 192.168.0.0/24 return"]
    assert allows(two, CLIENT) == ["ip saddr 192.168.0.0/24 return"]


def test_egress_rules_default_policy_types_to_both_directions() -> None:
    spec = {"podSelector": {"matchLabels": {"role": "client"}},
            "egress": [{"to": [{"podSelector": WEB}], "ports": [{"protocol": "TCP", "port": "http"}]},
                       {"to": [{"ipBlock": {"cidr": "192.168.7.0/24"}}], "ports": [{"protocol": "UDP", "port": 53}]}]}
    script = render([policy("out", spec)])
    # egress named ports are the peers' own: address . port pairs
    assert allows(script, CLIENT, "egress") == ["ip daddr . tcp dport { 10.244.0.2 . 8080 } return",
                                                "ip daddr 192.168.7.0/24 udp dport 53 return"]
    assert allows(script, CLIENT, "ingress") == []  # no ingress rules, Ingress in the defaulted policyTypes
    forward, local_in = chain(script, "forward"), chain(script, "input")
    assert forward is not None and local_in is not None
    jump = f'iifname vmap {{ "{veth(CLIENT)}" : jump egress_{veth(CLIENT)} }}'
    assert jump in forward
    assert f"ip daddr 10.96.0.0/12 {jump}" in local_in  # node-local Service listeners (DNS) too, not the node itself
    everything = render_policy_ruleset([policy("out", spec)], PODS_ALL, NAMESPACES_ALL, node_name=NODE, service_cidrs=())
    rendered.append(everything)
    local_in = chain(everything, "input")
    assert local_in is not None and jump in local_in


def test_policy_types_decide_the_directions() -> None:
    egress_only = render([policy("out", {"podSelector": WEB, "policyTypes": ["Egress"], "ingress": [{}]})])
    assert allows(egress_only, SERVER, "egress") == []
    assert chain(egress_only, f"ingress_{veth(SERVER)}") is None
    both = render([policy("both", {"podSelector": WEB, "policyTypes": ["Ingress", "Egress"]})])
    assert allows(both, SERVER, "ingress") == [] and allows(both, SERVER, "egress") == []


def test_egress_to_the_cluster_dns_needs_a_rule_naming_it() -> None:
    dns_rule = {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": "dns-tcp"}]}
    spec = {"podSelector": {}, "policyTypes": ["Egress"], "egress": [dns_rule]}
    with_dns = PODS_ALL + [dns_stand_in(DNS_IP)]
    script = render([policy("dns", spec)], pods=with_dns, namespaces=NAMESPACES_ALL + [namespace("kube-system")])
    assert allows(script, CLIENT, "egress") == [f"ip daddr {DNS_IP} udp dport 53 return",
                                                f"ip daddr . tcp dport {{ {DNS_IP} . 53 }} return"]
    deny = render([policy("deny", {"podSelector": {}, "policyTypes": ["Egress"]})], pods=with_dns)
    assert allows(deny, CLIENT, "egress") == []


def test_host_network_finished_and_addressless_pods_are_neither_enforced_nor_peers() -> None:
    host = pod("host", "192.168.1.10", labels={"app": "web", "role": "client"}, hostNetwork=True)
    done = pod("done", "10.244.0.9", labels={"app": "web", "role": "client"})
    done["status"]["phase"] = "Succeeded"
    pending = pod("pending", None, labels={"app": "web", "role": "client"})
    pods = [SERVER, CLIENT, host, done, pending]
    script = render([policy("web", {"podSelector": WEB, "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]})],
                    pods=pods)
    assert allows(script, SERVER) == ["ip saddr 10.244.0.3 return"]
    for p in (host, done, pending):
        assert veth(p) not in script


def test_rendering_is_deterministic() -> None:
    policies = [policy("a", {"podSelector": WEB, "ingress": [{"from": [{"namespaceSelector": {}}]}]}),
                policy("b", {"podSelector": {}, "egress": [{"to": [{"podSelector": WEB}], "ports": [{"port": "http"}]}]}),
                policy("c", {"podSelector": {}}, namespace="team-a")]
    first = render(policies)
    for seed in range(5):
        rng = random.Random(seed)
        shuffled_pods, shuffled_policies = PODS_ALL[:], policies[:]
        rng.shuffle(shuffled_pods)
        rng.shuffle(shuffled_policies)
        assert render(shuffled_policies, pods=shuffled_pods, namespaces=NAMESPACES_ALL[::-1]) == first


# --------------------------------------------------------------------------- namespaces and traffic


def ip_tool() -> str:
    if os.geteuid() != 0:
        missing("network namespaces need root")
    require_tool("nft")
    return require_tool("ip")


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


@contextlib.contextmanager
def throwaway_netns() -> Iterator[str]:
    ip = ip_tool()
    name = f"podlife-test-{secrets.token_hex(4)}"
    sh(ip, "netns", "add", name)
    try:
        yield name
    finally:
        subprocess.run([ip, "netns", "delete", name], check=False)


def test_nft_check_mode_accepts_every_rendered_script() -> None:
    assert rendered, "the rendering tests run first"
    with throwaway_netns() as ns:
        for script in rendered:
            asyncio.run(nft_apply(ns, script, check_only=True))
        asyncio.run(nft_apply(ns, rendered[-1]))  # and really loads, twice (the replace idiom)
        asyncio.run(nft_apply(ns, rendered[-1]))


@dataclass
class Topology:
    """A node namespace with pod namespaces on veths, as podlife's CNI plugin lays them out."""

    ip: str
    node: str
    pods: dict[str, tuple[str, str]] = field(default_factory=dict)  # pod name -> (netns name, ip)

    def add_pod(self, name: str, uid: str, address: str) -> None:
        netns = f"{self.node}-{name}"[:40]
        host = names.host_veth_name(uid)
        sh(self.ip, "netns", "add", netns)
        self.pods[name] = (netns, address)
        sh(self.ip, "-n", self.node, "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", netns)
        sh(self.ip, "-n", netns, "link", "set", "lo", "up")
        sh(self.ip, "-n", netns, "addr", "add", f"{address}/24", "dev", "eth0")
        sh(self.ip, "-n", netns, "link", "set", "eth0", "up")
        sh(self.ip, "-n", netns, "route", "add", "default", "via", "10.244.0.1")
        sh(self.ip, "netns", "exec", self.node, "sysctl", "-qw", f"net.ipv4.conf.{host}.proxy_arp=1",
           f"net.ipv4.neigh.{host}.proxy_delay=0")  # proxy ARP answers at once, not after up to 0.8 s
        sh(self.ip, "-n", self.node, "link", "set", host, "up")
        sh(self.ip, "-n", self.node, "route", "add", f"{address}/32", "dev", host)

    def path(self, name: str) -> str:
        return names.netns_path(self.pods[name][0])

    def remove(self) -> None:
        for netns, _ in self.pods.values():
            subprocess.run([self.ip, "netns", "delete", netns], check=False)
        subprocess.run([self.ip, "netns", "delete", self.node], check=False)


@contextlib.contextmanager
def topology() -> Iterator[Topology]:
    ip = ip_tool()
    topo = Topology(ip, f"podlife-test-{secrets.token_hex(4)}-node")
    sh(ip, "netns", "add", topo.node)
    try:
        sh(ip, "-n", topo.node, "link", "set", "lo", "up")
        sh(ip, "netns", "exec", topo.node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        # the gateway and the DNS address are the node's own; on lo, as some kernels here have no dummy module
        sh(ip, "-n", topo.node, "addr", "add", "10.244.0.1/32", "dev", "lo")
        sh(ip, "-n", topo.node, "addr", "add", f"{DNS_IP}/32", "dev", "lo")
        yield topo
    finally:
        topo.remove()


@contextlib.asynccontextmanager
async def tcp_server(netns_path: str, address: str, port: int) -> AsyncIterator[list[str]]:
    """A TCP server inside ``netns_path`` answering each connection with ``ok``; yields its log of peers."""
    sock = socket_in(netns_path)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, port))
    sock.listen(16)
    sock.setblocking(False)
    peers: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer.get_extra_info("peername")[0])
        writer.write(b"ok\n")
        with contextlib.suppress(OSError):
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, sock=sock)
    try:
        yield peers
    finally:
        server.close()
        await server.wait_closed()


async def reaches(from_netns: str, address: str, port: int = SERVER_PORT, timeout: float = 0.4) -> bool:
    """Whether a connection from inside ``from_netns`` to ``address:port`` gets the server's answer."""
    try:
        reader, writer = await asyncio.wait_for(open_connection(from_netns, address, port), timeout)
    except (OSError, asyncio.TimeoutError):
        return False
    try:
        return await asyncio.wait_for(reader.readline(), timeout) == b"ok\n"
    except (OSError, asyncio.TimeoutError):
        return False
    finally:
        writer.close()


async def load(topo: Topology, policies: list[Obj], pods: list[Obj]) -> None:
    await nft_apply(topo.node, render_policy_ruleset(policies, pods + [dns_stand_in(DNS_IP)], [namespace("default"),
                                                                                              namespace("kube-system")],
                                                     node_name=NODE))


def topo_pods() -> dict[str, Obj]:
    return {"server": pod("server", "10.244.0.2", uid=str(uuid.uuid4()), labels={"app": "web"},
                          ports=[{"name": "http", "containerPort": SERVER_PORT}]),
            "client": pod("client", "10.244.0.3", uid=str(uuid.uuid4()), labels={"role": "client"}),
            "other": pod("other", "10.244.0.4", uid=str(uuid.uuid4()), labels={"role": "other"})}


async def test_real_traffic_default_deny_then_allow_by_label_then_egress_deny() -> None:
    objs = topo_pods()
    pods = list(objs.values())
    with topology() as topo:
        for name, p in objs.items():
            topo.add_pod(name, p["metadata"]["uid"], p["status"]["podIP"])
        async with tcp_server(topo.path("server"), "10.244.0.2", SERVER_PORT) as peers:
            client, other = topo.path("client"), topo.path("other")
            assert await reaches(client, "10.244.0.2") and await reaches(other, "10.244.0.2")  # no policy: open
            assert peers == ["10.244.0.3", "10.244.0.4"]  # no NAT: the server sees pod addresses

            await load(topo, [policy("deny", {"podSelector": {}})], pods)
            assert not await reaches(client, "10.244.0.2") and not await reaches(other, "10.244.0.2")

            allow = policy("web", {"podSelector": {"matchLabels": {"app": "web"}},
                                   "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}],
                                                "ports": [{"protocol": "TCP", "port": "http"}]}]})
            await load(topo, [allow], pods)
            assert await reaches(client, "10.244.0.2")
            assert not await reaches(other, "10.244.0.2")

            egress_deny = policy("no-out", {"podSelector": {"matchLabels": {"role": "client"}}, "policyTypes": ["Egress"]})
            await load(topo, [egress_deny], pods)
            assert not await reaches(client, "10.244.0.2")
            assert await reaches(other, "10.244.0.2")

            await load(topo, [], pods)
            assert await reaches(client, "10.244.0.2") and await reaches(other, "10.244.0.2")


async def test_real_traffic_egress_to_the_node_local_dns_only_when_allowed() -> None:
    objs = topo_pods()
    pods = list(objs.values())
    with topology() as topo:
        for name, p in objs.items():
            topo.add_pod(name, p["metadata"]["uid"], p["status"]["podIP"])
        node_path = names.netns_path(topo.node)
        async with tcp_server(node_path, DNS_IP, 53), tcp_server(node_path, "10.244.0.1", 9000), \
                tcp_server(topo.path("server"), "10.244.0.2", SERVER_PORT):
            client = topo.path("client")
            assert await reaches(client, DNS_IP, 53)
            deny = policy("no-out", {"podSelector": {"matchLabels": {"role": "client"}}, "policyTypes": ["Egress"]})
            await load(topo, [deny], pods)
            assert not await reaches(client, DNS_IP, 53)  # DNS is not allowed implicitly
            assert await reaches(client, "10.244.0.1", 9000)  # the node itself is
            dns = policy("dns", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{
                "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                "ports": [{"protocol": "TCP", "port": "dns-tcp"}]}]})
            await load(topo, [deny, dns], pods)
            assert await reaches(client, DNS_IP, 53)
            assert not await reaches(client, "10.244.0.2")  # and nothing else


# --------------------------------------------------------------------------- the enforcer on the API


async def test_enforcer_follows_policies_created_and_deleted(local_api: InProcessApi) -> None:
    client = local_api.client
    with contextlib.suppress(ApiError):  # AlreadyExists where the API makes it itself
        await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
    created: dict[str, Obj] = {}
    for name, template in topo_pods().items():
        body = {k: v for k, v in template.items() if k != "status"}
        body["metadata"] = {k: v for k, v in template["metadata"].items() if k != "uid"}
        obj = await client.create(PODS, body, "default")
        ip = template["status"]["podIP"]
        await client.patch(PODS, name, {"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}}, "default",
                           subresource="status")
        created[name] = obj
    with topology() as topo:
        for name, obj in created.items():
            topo.add_pod(name, obj["metadata"]["uid"], {"server": "10.244.0.2", "client": "10.244.0.3", "other": "10.244.0.4"}[name])
        enforcer = PolicyEnforcer(client, NODE, topo.node, cluster_dns=[DNS_IP])
        task = asyncio.create_task(enforcer.run())
        try:
            async with tcp_server(topo.path("server"), "10.244.0.2", SERVER_PORT):
                client_ns, other_ns = topo.path("client"), topo.path("other")
                await asyncio.wait_for(enforcer.wait_in_sync(), 10)
                assert await reaches(client_ns, "10.244.0.2") and await reaches(other_ns, "10.244.0.2")

                allow = policy("web", {"podSelector": {"matchLabels": {"app": "web"}},
                                       "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]})
                await client.create(NETWORK_POLICIES, allow, "default")
                await async_wait_for(_blocked(other_ns), timeout=10, what="the other pod blocked")
                assert await reaches(client_ns, "10.244.0.2")

                # a label change re-renders: the other pod becomes a client and gets in
                await client.patch(PODS, "other", {"metadata": {"labels": {"role": "client"}}}, "default")
                await async_wait_for(_let_in(other_ns), timeout=10, what="the relabelled pod let in")

                await client.delete(NETWORK_POLICIES, "web", "default")
                await client.patch(PODS, "other", {"metadata": {"labels": {"role": "other"}}}, "default")
                await asyncio.wait_for(enforcer.wait_in_sync(), 10)
                assert await reaches(other_ns, "10.244.0.2") and await reaches(client_ns, "10.244.0.2")
                assert enforcer.loads >= 3
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        listed = subprocess.run([topo.ip, "netns", "exec", topo.node, "nft", "list", "tables"], capture_output=True, text=True)
        assert names.POLICY_TABLE not in listed.stdout  # removed on stop


def _blocked(netns_path: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return not await reaches(netns_path, "10.244.0.2", timeout=0.3)
    return check


def _let_in(netns_path: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await reaches(netns_path, "10.244.0.2")
    return check
