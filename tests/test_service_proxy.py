"""The service proxy: rendered nftables rules, real traffic through them, and the API forwarder.

Three kinds of test:

* pure ones on :func:`~podlife.nodenet.proxy.render.render_ruleset` (which endpoints,
  which ports, which verdicts), each script also checked by ``nft -c -f`` inside a
  throwaway namespace;
* traffic through a small topology the module builds with ``ip``: a "node" namespace
  routing between three "pod" namespaces by veth pairs (pod ``10.244.0.x/24``, default
  via ``10.244.0.1`` on the node's dummy, /32 routes and proxy ARP on the node's ends),
  HTTP servers in two pods answering with their name, the client in the third; the
  :class:`~podlife.nodenet.proxy.proxy.ServiceProxy` is driven by an in-process API where
  the test writes the Service and its EndpointSlice itself;
* the ``kubernetes`` Service forwarder: listening in the node namespace, answering pods
  with a server on the host's loopback.

Every address lives in namespaces the module creates; all of them, with the servers,
are removed at the end, also on failure.
"""

from __future__ import annotations

import asyncio
import copy
import http.server
import secrets
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest

from podlife.client.base import NAMESPACES, SERVICES, Obj
from podlife.machinery.errors import ApiError
from podlife.nodenet.proxy.apiforward import ApiForwarder
from podlife.nodenet.proxy.apply import NftApplier
from podlife.machinery.netns import socket_in
from podlife.nodenet.proxy.proxy import ENDPOINT_SLICES, ServiceProxy
from podlife.nodenet.proxy.render import build_ruleset, render_ruleset

from .cluster_harness import async_wait_for, require_tool, wait_for
from .in_process import InProcessApi

NODE = "node-1"
VIP = "10.96.0.50"
POD_IPS = {"pod1": "10.244.0.2", "pod2": "10.244.0.3", "client": "10.244.0.4"}
GATEWAY = "10.244.0.1"

SERVER = """
import http.server, socket, sys, threading
name = sys.argv[1].encode()
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 5353))
    while True:
        _, peer = s.recvfrom(2048)
        s.sendto(name, peer)
threading.Thread(target=udp, daemon=True).start()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(name)))
        self.end_headers()
        self.wfile.write(name)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), H).serve_forever()
"""


# ---------------------------------------------------------------- objects


def service(name: str = "web", ip: str = VIP, *, ns: str = "default", port: int = 80, target: Any = "http",
            port_name: str = "http", **spec: Any) -> Obj:
    ports = [{"name": port_name, "port": port, "targetPort": target, "protocol": "TCP"}]
    if "node_port" in spec:
        ports[0]["nodePort"] = spec.pop("node_port")
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": ip, "clusterIPs": [ip], "ports": ports, **spec}}


def endpoint(ip: str, *, ready: bool = True, serving: bool | None = None, terminating: bool = False,
             node: str = NODE) -> Obj:
    cond: dict[str, bool] = {"ready": ready, "serving": ready if serving is None else serving}
    if terminating:
        cond["terminating"] = True
    return {"addresses": [ip], "conditions": cond, "nodeName": node}


def endpoint_slice(service_name: str, endpoints: list[Obj], *, ns: str = "default", name: str | None = None,
                   port: int = 8080, port_name: str = "http") -> Obj:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name or f"{service_name}-abcde", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": "IPv4", "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
            "endpoints": endpoints}


# ---------------------------------------------------------------- namespaces


def ip_cmd(*args: str) -> None:
    subprocess.run([require_tool("ip"), *args], check=True, capture_output=True)


def in_ns(netns: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_tool("ip"), "netns", "exec", netns, *args], check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def check_ns() -> Iterator[str]:
    """An empty namespace where ``nft -c`` checks scripts."""
    require_tool("nft")
    name = f"podlife-test-{secrets.token_hex(4)}"
    ip_cmd("netns", "add", name)
    try:
        yield name
    finally:
        subprocess.run([require_tool("ip"), "netns", "delete", name], check=False)


def nft_check(netns: str, script: str) -> None:
    proc = subprocess.run([require_tool("ip"), "netns", "exec", netns, "nft", "-c", "-f", "-"], input=script,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@dataclass
class Topology:
    node: str
    pods: dict[str, str]  # role -> namespace name
    dummy: str


@pytest.fixture(scope="module")
def topology() -> Iterator[Topology]:
    require_tool("nft")
    tag = secrets.token_hex(3)
    node = f"podlife-test-{tag}-node"
    pods = {role: f"podlife-test-{tag}-{role}" for role in POD_IPS}
    made: list[str] = []
    servers: list[subprocess.Popen[bytes]] = []
    try:
        for ns in (node, *pods.values()):
            ip_cmd("netns", "add", ns)
            made.append(ns)
            ip_cmd("-n", ns, "link", "set", "lo", "up")
        dummy = "podlife0"
        try:
            ip_cmd("-n", node, "link", "add", dummy, "type", "dummy")
        except subprocess.CalledProcessError:  # no dummy driver in this kernel: a bridge without ports holds addresses too
            ip_cmd("-n", node, "link", "add", dummy, "type", "bridge")
        ip_cmd("-n", node, "addr", "add", f"{GATEWAY}/32", "dev", dummy)
        ip_cmd("-n", node, "link", "set", dummy, "up")
        # ClusterIPs route to the dummy, so unmatched ones cross the forward hook (and get rejected there)
        ip_cmd("-n", node, "route", "add", "10.96.0.0/12", "dev", dummy)
        in_ns(node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for i, (role, ns) in enumerate(sorted(pods.items())):
            host_end = f"h3{tag}v{i}"
            ip_cmd("-n", node, "link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", ns)
            ip_cmd("-n", node, "link", "set", host_end, "up")
            in_ns(node, "sysctl", "-qw", f"net.ipv4.conf.{host_end}.proxy_arp=1")
            ip_cmd("-n", node, "route", "add", f"{POD_IPS[role]}/32", "dev", host_end)
            ip_cmd("-n", ns, "addr", "add", f"{POD_IPS[role]}/24", "dev", "eth0")
            ip_cmd("-n", ns, "link", "set", "eth0", "up")
            ip_cmd("-n", ns, "route", "add", "default", "via", GATEWAY)
        for role in ("pod1", "pod2"):
            servers.append(subprocess.Popen([require_tool("ip"), "netns", "exec", pods[role], sys.executable, "-c",
                                             SERVER, role]))
        for role in ("pod1", "pod2"):
            wait_for(partial(_is_answered_by, pods[role], role), 10, what=f"{role}'s server")
        yield Topology(node, pods, dummy)
    finally:
        for proc in servers:
            proc.kill()
            proc.wait()
        for ns in made:
            subprocess.run([require_tool("ip"), "netns", "delete", ns], check=False)


def http_get(netns: str, host: str, port: int, timeout: float = 3.0) -> str:
    """The body of ``GET /`` on ``host:port`` from inside ``netns``."""
    with socket_in(netns) as sock:
        sock.settimeout(timeout)
        sock.connect((host, port))
        sock.sendall(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1."), head
    return body.decode()


def _answers(netns: str, host: str, port: int) -> str | None:
    try:
        return http_get(netns, host, port, timeout=1.0)
    except OSError:
        return None


def _is_answered_by(netns: str, role: str) -> bool:
    return _answers(netns, "127.0.0.1", 8080) == role


def answers(topo: Topology, n: int = 20, host: str = VIP, port: int = 80, source: str = "client") -> list[str]:
    return [http_get(topo.pods[source], host, port) for _ in range(n)]


async def async_answers(topo: Topology, n: int = 20, host: str = VIP, port: int = 80) -> list[str | None]:
    return [await asyncio.to_thread(_answers, topo.pods["client"], host, port) for _ in range(n)]


def apply(topo: Topology, script: str) -> None:
    ok = asyncio.run(NftApplier(topo.node).apply(script))
    assert ok


@pytest.fixture
def clean_table(topology: Topology) -> Iterator[Topology]:
    try:
        yield topology
    finally:
        asyncio.run(NftApplier(topology.node).remove())


# ---------------------------------------------------------------- rendering


def test_cluster_ip_spreads_over_the_ready_endpoints_with_the_named_target_port(check_ns: str) -> None:
    script = render_ruleset([service()], [endpoint_slice("web", [endpoint("10.244.0.2"), endpoint("10.244.0.3"),
                                                                 endpoint("10.244.0.9", ready=False)])], node_name=NODE)
    nft_check(check_ns, script)
    assert f"{VIP} . tcp . 80 : goto svc-" in script
    assert "numgen random mod 2 vmap" in script
    assert "dnat to 10.244.0.2:8080" in script and "dnat to 10.244.0.3:8080" in script
    assert "10.244.0.9" not in script  # not ready: no chain, no DNAT
    # the target port is the slice's port of the service port's name, not the Service's own number
    other = render_ruleset([service(port_name="metrics")], [endpoint_slice("web", [endpoint("10.244.0.2")])], node_name=NODE)
    assert "dnat to" not in other and f"{VIP} . tcp . 80 : goto reject-chain" in other


def test_terminating_endpoints_serve_only_when_none_is_ready(check_ns: str) -> None:
    draining = endpoint("10.244.0.5", ready=False, serving=True, terminating=True)
    gone = endpoint("10.244.0.6", ready=False, serving=False, terminating=True)
    fallback = render_ruleset([service()], [endpoint_slice("web", [draining, gone])], node_name=NODE)
    nft_check(check_ns, fallback)
    assert "dnat to 10.244.0.5:8080" in fallback and "10.244.0.6" not in fallback
    with_ready = render_ruleset([service()], [endpoint_slice("web", [draining, endpoint("10.244.0.2")])], node_name=NODE)
    assert "dnat to 10.244.0.2:8080" in with_ready and "10.244.0.5" not in with_ready


def test_no_endpoints_reject_and_loopback_endpoints_are_skipped(check_ns: str) -> None:
    kubernetes = service("kubernetes", "10.96.0.1", port=443, port_name="https", target=6443)
    api_slice = endpoint_slice("kubernetes", [endpoint("127.0.0.1")], port=6443, port_name="https")
    script = render_ruleset([service(), kubernetes], [api_slice], node_name=NODE)
    nft_check(check_ns, script)
    assert f"{VIP} . tcp . 80 : goto reject-chain" in script
    assert "10.96.0.1 . tcp . 443 : goto reject-chain" in script
    assert "127.0.0.1" not in script and "dnat" not in script
    assert "reject with tcp reset" in script
    assert "ip daddr @cluster-ips goto reject-chain" in script  # ports no Service has
    assert "      10.96.0.50," in script[script.index("set cluster-ips"):]
    # local destinations (the node's DNS and API forwarder addresses) are left alone before any dispatch
    services_chain = script[script.index("chain services {"):]
    assert services_chain.index("fib daddr type local return") < services_chain.index("vmap @service-ips")


def test_node_port_masquerades_and_reaches_the_same_endpoints(check_ns: str) -> None:
    script = render_ruleset([service(type="NodePort", node_port=30080)], [endpoint_slice("web", [endpoint("10.244.0.2")])],
                            node_name=NODE, cluster_cidrs=["10.244.0.0/16"])
    nft_check(check_ns, script)
    assert "ip saddr != { 10.244.0.0/16 } jump mark-for-masquerade" in script  # ClusterIP traffic from outside the pods
    assert "tcp . 30080 : goto ext-" in script
    ext = script[script.index("chain ext-"):]
    ext = ext[:ext.index("}")]
    assert "jump mark-for-masquerade" in ext and "goto svc-" in ext
    assert "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports" in script
    # no endpoints: the NodePort is rejected too
    empty = render_ruleset([service(type="NodePort", node_port=30080)], [], node_name=NODE)
    assert "tcp . 30080 : goto reject-chain" in empty
    # externalTrafficPolicy Local with the only endpoint on another node: dropped, and the ClusterIP still works
    local = render_ruleset([service(type="NodePort", node_port=30080, externalTrafficPolicy="Local")],
                           [endpoint_slice("web", [endpoint("10.244.1.2", node="node-2")])], node_name=NODE)
    nft_check(check_ns, local)
    assert "tcp . 30080 : drop" in local and "dnat to 10.244.1.2:8080" in local


def test_session_affinity_keeps_clients_in_per_endpoint_sets(check_ns: str) -> None:
    svc = service(sessionAffinity="ClientIP")
    script = render_ruleset([svc], [endpoint_slice("web", [endpoint("10.244.0.2"), endpoint("10.244.0.3")])], node_name=NODE)
    nft_check(check_ns, script)
    assert script.count("flags dynamic,timeout") == 2 and script.count("timeout 10800s") == 2
    assert script.count("{ ip saddr }") == 2  # each endpoint chain refreshes its client
    svc_chain = script[script.index("chain svc-"):]
    assert svc_chain.index("ip saddr @aff-") < svc_chain.index("numgen random")
    custom = copy.deepcopy(svc)
    custom["spec"]["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": 60}}
    assert "timeout 60s" in render_ruleset([custom], [endpoint_slice("web", [endpoint("10.244.0.2")])], node_name=NODE)


def test_hairpin_marks_an_endpoint_reaching_itself() -> None:
    script = render_ruleset([service()], [endpoint_slice("web", [endpoint("10.244.0.2")])], node_name=NODE)
    ep = script[script.index("chain ep-"):]
    assert ep.index("ip saddr 10.244.0.2 jump mark-for-masquerade") < ep.index("dnat to")
    assert "mark and 0x4000 == 0 return" in script and "masquerade" in script


def test_equal_inputs_render_equal_text(check_ns: str) -> None:
    dns = service("dns", "10.96.0.10", port=53, port_name="dns", target=53)
    dns["spec"]["ports"].append({"name": "dns-tcp", "port": 53, "targetPort": 53, "protocol": "TCP"})
    dns["spec"]["ports"][0]["protocol"] = "UDP"
    dns_slice = endpoint_slice("dns", [endpoint("10.244.0.7")], port=53, port_name="dns")
    dns_slice["ports"] = [{"name": "dns", "port": 5353, "protocol": "UDP"}, {"name": "dns-tcp", "port": 5353, "protocol": "TCP"}]
    services = [dns, service("a", "10.96.0.51"), service("b", "10.96.0.52", type="NodePort", node_port=30001),
                service("c", "10.96.0.53", sessionAffinity="ClientIP"), service("headless", "None")]
    slices = [endpoint_slice("a", [endpoint("10.244.0.3"), endpoint("10.244.0.2")], name="a-1"),
              endpoint_slice("a", [endpoint("10.244.0.4")], name="a-2"),
              endpoint_slice("c", [endpoint("10.244.0.5")]), endpoint_slice("b", []), dns_slice]
    first = render_ruleset(services, slices, node_name=NODE)
    shuffled = [copy.deepcopy(s) for s in reversed(slices)]
    for s in shuffled:
        s["endpoints"].reverse()
    assert render_ruleset(list(reversed(services)), shuffled, node_name=NODE) == first
    assert "numgen random mod 3" in first  # a's endpoints come from both slices
    assert "headless" not in first
    assert "10.96.0.10 . udp . 53 : goto svc-" in first and "meta l4proto udp dnat to 10.244.0.7:5353" in first
    nft_check(check_ns, first)


# ---------------------------------------------------------------- traffic


def test_traffic_follows_the_ready_endpoints(clean_table: Topology) -> None:
    topo = clean_table
    both = [endpoint(POD_IPS["pod1"]), endpoint(POD_IPS["pod2"])]
    apply(topo, render_ruleset([service()], [endpoint_slice("web", both)], node_name=NODE))
    assert set(answers(topo)) == {"pod1", "pod2"}
    with pytest.raises(ConnectionRefusedError):  # a port the Service does not have
        http_get(topo.pods["client"], VIP, 81)
    one_down = [endpoint(POD_IPS["pod1"], ready=False), endpoint(POD_IPS["pod2"])]
    apply(topo, render_ruleset([service()], [endpoint_slice("web", one_down)], node_name=NODE))
    assert set(answers(topo)) == {"pod2"}
    # no endpoints: refused at once (a TCP reset from the node namespace)
    apply(topo, render_ruleset([service()], [endpoint_slice("web", [])], node_name=NODE))
    with pytest.raises(ConnectionRefusedError):  # refused, not left to time out
        http_get(topo.pods["client"], VIP, 80)


def test_hairpin_node_port_and_connections_from_the_node_namespace(clean_table: Topology) -> None:
    topo = clean_table
    svc = service(type="NodePort", node_port=30080)
    apply(topo, render_ruleset([svc], [endpoint_slice("web", [endpoint(POD_IPS["pod1"])])], node_name=NODE))
    assert set(answers(topo, 5, source="pod1")) == {"pod1"}  # pod1 through its own Service
    assert set(answers(topo, 5, host=GATEWAY, port=30080)) == {"pod1"}  # a NodePort on the node's address
    assert http_get(topo.node, VIP, 80) == "pod1"  # the output hook: made inside the node namespace


def test_session_affinity_sticks_and_survives_updates(clean_table: Topology) -> None:
    topo = clean_table
    svc = service(sessionAffinity="ClientIP")
    slices = [endpoint_slice("web", [endpoint(POD_IPS["pod1"]), endpoint(POD_IPS["pod2"])])]
    applier = NftApplier(topo.node)

    async def main() -> None:
        assert await applier.apply_ruleset(build_ruleset([svc], slices, node_name=NODE))
        first = set(await async_answers(topo, 10))
        assert len(first) == 1 and None not in first
        # another Service appears: an update of the table, which keeps the affinity sets' clients
        other = service("other", "10.96.0.51")
        assert await applier.apply_ruleset(build_ruleset([svc, other], slices, node_name=NODE))
        assert applier.applies == 2
        listing = in_ns(topo.node, "nft", "list", "table", "ip", "podlife-proxy").stdout
        assert f"{POD_IPS['client']} expires" in listing  # the client is still remembered
        assert set(await async_answers(topo, 10)) == first
        assert set(await async_answers(topo, 3, host="10.96.0.51")) == {None}  # no endpoints: refused
        # web goes: its chains and affinity sets go with it, in the same kind of update
        assert await applier.apply_ruleset(build_ruleset([other], [], node_name=NODE))
        listing = in_ns(topo.node, "nft", "list", "table", "ip", "podlife-proxy").stdout
        assert "aff-" not in listing and "default/web" not in listing and "10.96.0.51 . tcp . 80" in listing

    asyncio.run(main())


def test_node_local_listeners_answer_their_cluster_ips(clean_table: Topology) -> None:
    topo = clean_table
    local_ip = "10.96.0.60"
    ip_cmd("-n", topo.node, "addr", "add", f"{local_ip}/32", "dev", topo.dummy)
    server = subprocess.Popen([require_tool("ip"), "netns", "exec", topo.node, sys.executable, "-c",
                               SERVER.replace('"0.0.0.0"', f'"{local_ip}"'), "node-local"])
    try:
        wait_for(lambda: _answers(topo.node, local_ip, 8080), 10, what="the node-local server")
        svc = service("dns", local_ip, port=8080)
        apply(topo, render_ruleset([svc], [endpoint_slice("dns", [endpoint(POD_IPS["pod1"])])], node_name=NODE))
        assert set(answers(topo, 5, host=local_ip, port=8080)) == {"node-local"}
    finally:
        server.kill()
        server.wait()
        ip_cmd("-n", topo.node, "addr", "del", f"{local_ip}/32", "dev", topo.dummy)


# ---------------------------------------------------------------- the proxy on a real API


async def ensure_default_namespace(local_api: InProcessApi) -> None:
    try:
        await local_api.client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
    except ApiError as exc:
        if exc.code != 409:
            raise


async def test_service_proxy_follows_readiness_in_the_api(local_api: InProcessApi, topology: Topology) -> None:
    client = local_api.client
    await ensure_default_namespace(local_api)
    await client.create(SERVICES, service(), "default")
    slice_obj = await client.create(ENDPOINT_SLICES, endpoint_slice(
        "web", [endpoint(POD_IPS["pod1"]), endpoint(POD_IPS["pod2"])]), "default")
    proxy = ServiceProxy(client, NODE, topology.node)
    task = asyncio.create_task(proxy.run())
    try:
        await asyncio.wait_for(proxy.wait_synced(), 10)
        assert set(await async_answers(topology)) == {"pod1", "pod2"}

        slice_obj["endpoints"][0]["conditions"] = {"ready": False, "serving": False}
        slice_obj = await client.update(ENDPOINT_SLICES, slice_obj)
        await async_wait_for(lambda: proxy.ruleset is not None and POD_IPS["pod1"] not in str(proxy.ruleset), 5,
                             what="pod1 out of the ruleset")
        assert set(await async_answers(topology)) == {"pod2"}

        slice_obj["endpoints"][0]["conditions"] = {"ready": True, "serving": True}
        await client.update(ENDPOINT_SLICES, slice_obj)

        async def both_back() -> bool:
            return set(await async_answers(topology, 12)) == {"pod1", "pod2"}
        await async_wait_for(both_back, 10, what="pod1 back")

        await client.delete(SERVICES, "web", "default")
        await async_wait_for(lambda: proxy.ruleset is not None and VIP not in str(proxy.ruleset), 5, what="web gone")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    listing = in_ns(topology.node, "nft", "list", "tables").stdout
    assert "podlife-proxy" not in listing  # the table goes with the proxy


async def test_a_udp_flow_leaves_an_endpoint_that_is_no_longer_ready(local_api: InProcessApi, topology: Topology) -> None:
    client = local_api.client
    await ensure_default_namespace(local_api)
    dns_ip = "10.96.0.53"
    svc = service("dns", dns_ip, port=53, port_name="dns", target="dns")
    svc["spec"]["ports"][0]["protocol"] = "UDP"
    await client.create(SERVICES, svc, "default")
    body = endpoint_slice("dns", [endpoint(POD_IPS["pod1"]), endpoint(POD_IPS["pod2"])], port=5353, port_name="dns")
    body["ports"][0]["protocol"] = "UDP"
    slice_obj = await client.create(ENDPOINT_SLICES, body, "default")
    proxy = ServiceProxy(client, NODE, topology.node)
    task = asyncio.create_task(proxy.run())
    sock = socket_in(topology.pods["client"], socket.AF_INET, socket.SOCK_DGRAM)
    try:
        await asyncio.wait_for(proxy.wait_synced(), 10)
        sock.settimeout(2)
        sock.connect((dns_ip, 53))

        def ask() -> str:
            sock.send(b"?")
            return sock.recv(2048).decode()

        first = await asyncio.to_thread(ask)
        assert {await asyncio.to_thread(ask) for _ in range(3)} == {first}  # one flow, one endpoint
        index = 0 if first == "pod1" else 1
        slice_obj["endpoints"][index]["conditions"] = {"ready": False, "serving": False}
        await client.update(ENDPOINT_SLICES, slice_obj)
        await async_wait_for(lambda: proxy.ruleset is not None and POD_IPS[first] not in str(proxy.ruleset), 5,
                             what=f"{first} out of the ruleset")
        other = "pod2" if first == "pod1" else "pod1"
        assert await asyncio.to_thread(ask) == other  # the same socket: its conntrack entry was forgotten
    finally:
        sock.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# ---------------------------------------------------------------- the API forwarder


class _Upstream(http.server.ThreadingHTTPServer):
    daemon_threads = True


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"api-server"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[tuple[str, int]]:
    server = _Upstream(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


async def test_api_forwarder_answers_in_the_node_namespace(topology: Topology, upstream: tuple[str, int]) -> None:
    api_ip, api_port = "10.96.0.1", 8443
    forwarder = ApiForwarder(topology.node, (api_ip, api_port), upstream)
    await forwarder.start()  # IP_FREEBIND: binds before the address is there
    ip_cmd("-n", topology.node, "addr", "add", f"{api_ip}/32", "dev", topology.dummy)
    try:
        assert await asyncio.to_thread(http_get, topology.node, api_ip, api_port) == "api-server"
        assert await asyncio.to_thread(http_get, topology.pods["client"], api_ip, api_port) == "api-server"
        await forwarder.stop()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.to_thread(http_get, topology.pods["client"], api_ip, api_port)
    finally:
        await forwarder.stop()
        ip_cmd("-n", topology.node, "addr", "del", f"{api_ip}/32", "dev", topology.dummy)
