"""Cluster DNS: the zone's answers (pure), then the server in a real namespace on a real API.

The pure tests build a :class:`~podlife.nodenet.dns.records.Zone` from Service,
EndpointSlice and Pod objects and ask it with dnslib questions. The real ones start
:class:`~podlife.nodenet.dns.server.ClusterDNS` on the in-process API, serve it in a
throwaway network namespace holding 10.96.0.10 on a dummy interface, and query it from
sockets made inside that namespace (UDP, TCP, and glibc's resolver through ``ip netns
exec`` with a per-namespace resolv.conf). Every namespace, file and task is removed
afterwards, also when a test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import socket
import struct
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from dnslib import QTYPE, RCODE, RR, A, DNSRecord, EDNS0

from podlife.client.base import PODS, SERVICES
from podlife.machinery.netns import socket_in
from podlife.nodenet.dns.records import Zone, answer
from podlife.nodenet.dns.server import ENDPOINT_SLICES, ClusterDNS, loopback_upstreams, wire_reply
from podlife.nodenet.names import SERVICE_DUMMY

from .cluster_harness import async_wait_for, require_tool
from .in_process import InProcessApi

Obj = dict[str, Any]
DNS_IP = "10.96.0.10"


# -- objects ------------------------------------------------------------------------------------------------------

def service(name: str, ns: str = "default", ip: str | None = "10.96.0.20", ports: list[Obj] | None = None,
            **spec: Any) -> Obj:
    body: Obj = {"ports": ports if ports is not None else [{"name": "http", "port": 80, "protocol": "TCP"}], **spec}
    if ip is not None:
        body["clusterIP"] = ip
        body["clusterIPs"] = [ip] if ip != "None" else ["None"]
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": body}


def endpoint_slice(svc: str, endpoints: list[Obj], ns: str = "default", name: str | None = None,
                   ports: list[Obj] | None = None) -> Obj:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name or f"{svc}-{secrets.token_hex(3)}", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4", "endpoints": endpoints,
            "ports": ports if ports is not None else [{"name": "http", "port": 8080, "protocol": "TCP"}]}


def endpoint(ip: str, ready: bool = True, hostname: str | None = None) -> Obj:
    ep: Obj = {"addresses": [ip], "conditions": {"ready": ready}}
    if hostname:
        ep["hostname"] = hostname
    return ep


def pod(name: str, ip: str, ns: str = "default", ready: bool = True, **spec: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "uid": secrets.token_hex(8)},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def build(services: Sequence[Obj] = (), slices: Sequence[Obj] = (), pods: Sequence[Obj] = ()) -> Zone:
    zone = Zone()
    keys = {zone.set_service(s) for s in services}
    for sl in slices:
        keys |= zone.set_slice(sl)
    for p in pods:
        keys |= zone.set_pod(p)
    zone.refresh(keys)
    return zone


def ask(zone: Zone, name: str, qtype: str = "A") -> DNSRecord:
    reply = answer(zone, DNSRecord.question(name, qtype))
    return DNSRecord.parse(reply.pack())  # through the wire format, as a client sees it


def data(reply: DNSRecord, qtype: str | None = None) -> list[str]:
    return sorted(str(rr.rdata) for rr in reply.rr if qtype is None or QTYPE.get(rr.rtype) == qtype)


def soa_in_authority(reply: DNSRecord) -> bool:
    return [QTYPE.get(rr.rtype) for rr in reply.auth] == ["SOA"] and reply.auth[0].ttl == 5


# -- the zone -----------------------------------------------------------------------------------------------------

def test_a_clusterip_service_has_an_a_record_with_ttl_5_and_a_ptr() -> None:
    zone = build([service("web", ip="10.96.0.20")])
    reply = ask(zone, "web.default.svc.cluster.local")
    assert reply.header.rcode == RCODE.NOERROR and reply.header.aa
    assert data(reply) == ["10.96.0.20"]
    assert reply.rr[0].ttl == 5
    ptr = ask(zone, "20.0.96.10.in-addr.arpa", "PTR")
    assert data(ptr) == ["web.default.svc.cluster.local."]


def test_names_are_case_insensitive_and_answers_echo_the_question() -> None:
    zone = build([service("web", ip="10.96.0.20")])
    reply = ask(zone, "WEB.Default.SVC.cluster.LOCAL.")
    assert data(reply) == ["10.96.0.20"]
    assert str(reply.rr[0].rname) == "WEB.Default.SVC.cluster.LOCAL."


def test_aaaa_of_an_ipv4_service_is_nodata_with_the_soa() -> None:
    zone = build([service("web")])
    reply = ask(zone, "web.default.svc.cluster.local", "AAAA")
    assert reply.header.rcode == RCODE.NOERROR
    assert reply.rr == []
    assert soa_in_authority(reply)


def test_an_unknown_name_is_nxdomain_with_the_soa_and_empty_non_terminals_are_nodata() -> None:
    zone = build([service("web")])
    missing = ask(zone, "nope.default.svc.cluster.local")
    assert missing.header.rcode == RCODE.NXDOMAIN and soa_in_authority(missing)
    assert str(missing.auth[0].rname) == "cluster.local."
    for existing in ("default.svc.cluster.local", "svc.cluster.local", "cluster.local"):
        reply = ask(zone, existing)
        assert reply.header.rcode == RCODE.NOERROR and reply.rr == [] and soa_in_authority(reply), existing
    assert ask(zone, "other.svc.cluster.local").header.rcode == RCODE.NXDOMAIN


def test_search_path_expansions_of_a_short_name_miss_until_the_right_one() -> None:
    """What a pod with ``ndots:5`` asks for ``web.default``: the search list's expansions, in order."""
    zone = build([service("web", ip="10.96.0.20")])
    tried = ["web.default.default.svc.cluster.local", "web.default.svc.cluster.local"]
    assert ask(zone, tried[0]).header.rcode == RCODE.NXDOMAIN
    assert data(ask(zone, tried[1])) == ["10.96.0.20"]


def test_srv_per_named_port_points_at_the_service() -> None:
    zone = build([service("web", ip="10.96.0.20", ports=[{"name": "http", "port": 80, "protocol": "TCP"},
                                                         {"name": "dns", "port": 53, "protocol": "UDP"},
                                                         {"port": 9000}])])
    http = ask(zone, "_http._tcp.web.default.svc.cluster.local", "SRV")
    assert data(http) == ["0 100 80 web.default.svc.cluster.local."]
    assert [str(rr.rdata) for rr in http.ar] == ["10.96.0.20"]  # the target's address as additional record
    assert data(ask(zone, "_dns._udp.web.default.svc.cluster.local", "SRV")) == ["0 100 53 web.default.svc.cluster.local."]
    assert ask(zone, "_dns._tcp.web.default.svc.cluster.local", "SRV").header.rcode == RCODE.NXDOMAIN


def test_a_headless_service_answers_its_ready_endpoints_only() -> None:
    svc = service("db", ip="None")
    sl = endpoint_slice("db", [endpoint("10.244.0.5"), endpoint("10.244.0.6"), endpoint("10.244.0.7", ready=False)])
    zone = build([svc], [sl])
    assert data(ask(zone, "db.default.svc.cluster.local")) == ["10.244.0.5", "10.244.0.6"]
    # each endpoint has a name of its own (its dashed address when it has no hostname)
    assert data(ask(zone, "10-244-0-5.db.default.svc.cluster.local")) == ["10.244.0.5"]
    assert ask(zone, "10-244-0-7.db.default.svc.cluster.local").header.rcode == RCODE.NXDOMAIN
    # no ready endpoint at all: the name still exists (NODATA, not NXDOMAIN)
    empty = build([svc], [endpoint_slice("db", [endpoint("10.244.0.7", ready=False)])])
    none_ready = ask(empty, "db.default.svc.cluster.local")
    assert none_ready.header.rcode == RCODE.NOERROR and none_ready.rr == [] and soa_in_authority(none_ready)
    # publishNotReadyAddresses: all of them
    svc["spec"]["publishNotReadyAddresses"] = True
    zone = build([svc], [sl])
    assert data(ask(zone, "db.default.svc.cluster.local")) == ["10.244.0.5", "10.244.0.6", "10.244.0.7"]


def test_headless_srv_lists_each_endpoint_by_hostname_with_the_endpoint_port() -> None:
    sl = endpoint_slice("db", [endpoint("10.244.0.5", hostname="db-0"), endpoint("10.244.0.6", hostname="db-1")])
    zone = build([service("db", ip="None")], [sl])
    srv = ask(zone, "_http._tcp.db.default.svc.cluster.local", "SRV")
    assert data(srv) == ["0 50 8080 db-0.db.default.svc.cluster.local.", "0 50 8080 db-1.db.default.svc.cluster.local."]
    assert sorted(str(rr.rdata) for rr in srv.ar) == ["10.244.0.5", "10.244.0.6"]
    assert data(ask(zone, "db-1.db.default.svc.cluster.local")) == ["10.244.0.6"]
    assert data(ask(zone, "6.0.244.10.in-addr.arpa", "PTR")) == ["db-1.db.default.svc.cluster.local."]


def test_pod_records_by_dashed_ip_and_by_hostname_with_subdomain() -> None:
    pods = [pod("a", "10.244.1.5"), pod("web-0", "10.244.1.6", hostname="web-0", subdomain="web"),
            pod("unready", "10.244.1.7", ready=False, hostname="web-1", subdomain="web")]
    zone = build([service("web", ip="None", ports=[])], [], pods)
    assert data(ask(zone, "10-244-1-5.default.pod.cluster.local")) == ["10.244.1.5"]
    assert ask(zone, "10-244-1-5.other.pod.cluster.local").header.rcode == RCODE.NXDOMAIN  # verified: that namespace
    assert ask(zone, "10-244-9-9.default.pod.cluster.local").header.rcode == RCODE.NXDOMAIN
    assert data(ask(zone, "web-0.web.default.svc.cluster.local")) == ["10.244.1.6"]
    assert ask(zone, "web-1.web.default.svc.cluster.local").header.rcode == RCODE.NXDOMAIN  # not ready
    assert data(ask(zone, "6.1.244.10.in-addr.arpa", "PTR")) == ["web-0.web.default.svc.cluster.local."]
    # the pod leaving takes its names with it
    keys = zone.delete_pod(pods[1])
    zone.refresh(keys)
    assert ask(zone, "web-0.web.default.svc.cluster.local").header.rcode == RCODE.NXDOMAIN


def test_externalname_is_a_cname_for_every_type() -> None:
    zone = build([service("ext", ip=None, ports=[], type="ExternalName", externalName="example.org")])
    for qtype in ("A", "AAAA", "CNAME"):
        reply = ask(zone, "ext.default.svc.cluster.local", qtype)
        assert [QTYPE.get(rr.rtype) for rr in reply.rr] == ["CNAME"], qtype
        assert data(reply) == ["example.org."]


def test_names_outside_the_zone_are_refused_and_the_schema_version_is_published() -> None:
    zone = build([service("web")])
    assert ask(zone, "example.org").header.rcode == RCODE.REFUSED
    assert ask(zone, "1.1.168.192.in-addr.arpa", "PTR").header.rcode == RCODE.REFUSED  # not an address we know
    assert data(ask(zone, "dns-version.cluster.local", "TXT")) == ['"1.1.0"']
    assert [QTYPE.get(rr.rtype) for rr in ask(zone, "cluster.local", "SOA").rr] == ["SOA"]


def test_updates_replace_a_services_records() -> None:
    zone = build([service("web", ip="10.96.0.20")])
    zone.refresh([zone.set_service(service("web", ip="10.96.0.21"))])
    assert data(ask(zone, "web.default.svc.cluster.local")) == ["10.96.0.21"]
    assert ask(zone, "20.0.96.10.in-addr.arpa", "PTR").header.rcode == RCODE.REFUSED
    zone.refresh([zone.delete_service(service("web"))])
    assert ask(zone, "web.default.svc.cluster.local").header.rcode == RCODE.NXDOMAIN
    assert ask(zone, "default.svc.cluster.local").header.rcode == RCODE.NXDOMAIN  # no longer a non-terminal
    assert zone.names == {}


def test_udp_replies_are_truncated_unless_edns_allows_more() -> None:
    sl = endpoint_slice("big", [endpoint(f"10.244.2.{i}") for i in range(1, 61)])
    zone = build([service("big", ip="None")], [sl])
    plain = DNSRecord.question("big.default.svc.cluster.local")
    cut = DNSRecord.parse(wire_reply(answer(zone, plain), plain, tcp=False))
    assert cut.header.tc and cut.rr == [] and len(cut.questions) == 1
    full_tcp = DNSRecord.parse(wire_reply(answer(zone, plain), plain, tcp=True))
    assert len(full_tcp.rr) == 60 and not full_tcp.header.tc
    edns = DNSRecord.question("big.default.svc.cluster.local")
    edns.add_ar(EDNS0(udp_len=4096))
    big = DNSRecord.parse(wire_reply(answer(zone, edns), edns, tcp=False))
    assert len(big.rr) == 60 and not big.header.tc


def test_only_loopback_upstreams_are_taken_from_resolv_conf() -> None:
    text = "search example.org\nnameserver 10.255.255.53\nnameserver 127.0.0.53\nnameserver ::1\n"
    assert loopback_upstreams(text) == [("127.0.0.53", 53), ("::1", 53)]


def test_a_change_in_a_large_zone_recomputes_only_what_it_touches() -> None:
    """1000 Services and 10000 pods: a Service's change names only itself, a plain pod's none (its
    own A record aside), so an event costs one Service's records, never the zone's. (How fast is for
    benchmarks; this asserts what is recomputed.)"""
    services = [service(f"s{i}", ns=f"ns{i % 20}", ip=f"10.96.{i // 250}.{i % 250 + 1}") for i in range(1000)]
    pods = [pod(f"p{i}", f"10.244.{i // 250}.{i % 250 + 1}", ns=f"ns{i % 20}") for i in range(10000)]
    zone = build(services, [], pods)
    assert zone.set_service(services[7]) == "ns7/s7"
    assert zone.set_pod(pods[7]) == set()
    zone.refresh(["ns7/s7"])
    assert data(ask(zone, "s7.ns7.svc.cluster.local")) == ["10.96.0.8"]
    assert data(ask(zone, "10-244-0-8.ns7.pod.cluster.local")) == ["10.244.0.8"]


# -- the server in a namespace ------------------------------------------------------------------------------------

@pytest.fixture
def node_netns() -> Iterator[tuple[str, str]]:
    """A throwaway namespace (name, path) with lo up and the DNS address on a dummy interface."""
    ip = require_tool("ip")
    name = f"podlife-test-dns-{secrets.token_hex(4)}"
    subprocess.run([ip, "netns", "add", name], check=True)
    try:
        subprocess.run([ip, "-n", name, "link", "set", "lo", "up"], check=True)
        # the node namespace's dummy when the kernel has the dummy driver; else the loopback holds the address
        dummy = subprocess.run([ip, "-n", name, "link", "add", SERVICE_DUMMY, "type", "dummy"], capture_output=True)
        device = SERVICE_DUMMY if dummy.returncode == 0 else "lo"
        subprocess.run([ip, "-n", name, "addr", "add", f"{DNS_IP}/32", "dev", device], check=True)
        subprocess.run([ip, "-n", name, "link", "set", device, "up"], check=True)
        yield name, f"/run/netns/{name}"
    finally:
        subprocess.run([ip, "netns", "delete", name], check=False)


@pytest.fixture
async def dns(local_api: InProcessApi) -> AsyncIterator[ClusterDNS]:
    server = ClusterDNS(local_api.client, upstreams=[])
    task = asyncio.create_task(server.run())
    try:
        await asyncio.wait_for(server.wait_synced(), 10)
        yield server
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _udp_query(netns: str, name: str, qtype: str = "A") -> DNSRecord:
    sock = socket_in(netns, socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.settimeout(3)
        q = DNSRecord.question(name, qtype)
        sock.sendto(q.pack(), (DNS_IP, 53))
        reply = DNSRecord.parse(sock.recv(65535))
        assert reply.header.id == q.header.id
        return reply
    finally:
        sock.close()


def _tcp_query(netns: str, names: list[str]) -> list[DNSRecord]:
    sock = socket_in(netns, socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(3)
        sock.connect((DNS_IP, 53))
        out = []
        for name in names:  # several queries on one connection
            wire = DNSRecord.question(name).pack()
            sock.sendall(struct.pack("!H", len(wire)) + wire)
            size = struct.unpack("!H", _read(sock, 2))[0]
            out.append(DNSRecord.parse(_read(sock, size)))
        return out
    finally:
        sock.close()


def _read(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


async def udp(netns: str, name: str, qtype: str = "A") -> DNSRecord:
    return await asyncio.to_thread(_udp_query, netns, name, qtype)


async def test_the_server_answers_over_udp_and_tcp_inside_the_namespace_and_follows_updates(
        local_api: InProcessApi, dns: ClusterDNS, node_netns: tuple[str, str]) -> None:
    _, path = node_netns
    client = local_api.client
    await dns.add_namespace(path)
    web = await client.create(SERVICES, service("web", ip=None, ports=[{"name": "http", "port": 80}]), "default")
    web_ip = web["spec"]["clusterIP"]
    await client.create(SERVICES, service("db", ip="None", ports=[{"name": "pg", "port": 5432}]), "default")
    await client.create(ENDPOINT_SLICES, endpoint_slice("db", [endpoint("10.244.0.5", hostname="db-0"),
                                                               endpoint("10.244.0.6", ready=False)],
                                                        ports=[{"name": "pg", "port": 5432, "protocol": "TCP"}]),
                        "default")
    created = await client.create(PODS, pod("web-0", "10.244.0.9", hostname="web-0", subdomain="db"), "default")
    created["status"] = pod("web-0", "10.244.0.9")["status"]
    await client.update(PODS, created, subresource="status")

    async def a_records(name: str) -> list[str]:
        return data(await udp(path, name))

    await async_wait_for(lambda: a_records("web.default.svc.cluster.local"), 10, what="web's A record")
    assert await a_records("web.default.svc.cluster.local") == [web_ip]
    await async_wait_for(lambda: _eq(a_records("web-0.db.default.svc.cluster.local"), ["10.244.0.9"]), 10,
                         what="the pod's hostname.subdomain record")
    assert await a_records("db.default.svc.cluster.local") == ["10.244.0.5", "10.244.0.9"]
    assert await a_records("10-244-0-9.default.pod.cluster.local") == ["10.244.0.9"]
    srv = await udp(path, "_pg._tcp.db.default.svc.cluster.local", "SRV")
    assert data(srv) == ["0 50 5432 db-0.db.default.svc.cluster.local.", "0 50 5432 web-0.db.default.svc.cluster.local."]
    missing = await udp(path, "nope.default.svc.cluster.local")
    assert missing.header.rcode == RCODE.NXDOMAIN and soa_in_authority(missing)
    assert (await udp(path, "example.org")).header.rcode == RCODE.REFUSED

    over_tcp = await asyncio.to_thread(_tcp_query, path, ["web.default.svc.cluster.local", "db.default.svc.cluster.local"])
    assert [data(r) for r in over_tcp] == [[web_ip], ["10.244.0.5", "10.244.0.9"]]

    # an endpoint turning ready shows up; a Service gone disappears
    sl = (await client.list(ENDPOINT_SLICES, "default"))["items"][0]
    sl["endpoints"][1]["conditions"]["ready"] = True
    await client.update(ENDPOINT_SLICES, sl)
    await async_wait_for(lambda: _eq(a_records("db.default.svc.cluster.local"), ["10.244.0.5", "10.244.0.6", "10.244.0.9"]),
                         10, what="the newly ready endpoint")
    await client.delete(SERVICES, "web", "default")
    await async_wait_for(lambda: _rcode_is(udp(path, "web.default.svc.cluster.local"), RCODE.NXDOMAIN), 10,
                         what="the deleted service's name gone")
    assert dns.stats["queries"] >= 10 and dns.stats["nxdomain"] >= 2 and dns.stats["refused"] >= 1

    await dns.remove_namespace(path)
    with pytest.raises(OSError):
        await asyncio.to_thread(_tcp_query, path, ["db.default.svc.cluster.local"])


async def _eq(got: Any, want: Any) -> bool:
    return bool(await got == want)


async def _rcode_is(reply: Any, rcode: int) -> bool:
    return bool((await reply).header.rcode == rcode)


async def test_cluster_names_get_servfail_until_the_informers_have_synced(local_api: InProcessApi) -> None:
    server = ClusterDNS(local_api.client, upstreams=[])
    early = server.respond_now(DNSRecord.question("web.default.svc.cluster.local").pack(), tcp=False)
    assert isinstance(early, bytes) and DNSRecord.parse(early).header.rcode == RCODE.SERVFAIL
    garbage = server.respond_now(b"\x12\x34\x01", tcp=False)
    assert isinstance(garbage, bytes) and DNSRecord.parse(garbage).header.rcode == RCODE.FORMERR
    assert DNSRecord.parse(garbage).header.id == 0x1234


async def test_glibc_in_the_namespace_resolves_a_service_through_resolv_conf(
        local_api: InProcessApi, dns: ClusterDNS, node_netns: tuple[str, str]) -> None:
    name, path = node_netns
    web = await local_api.client.create(SERVICES, service("web", ip=None), "default")
    await dns.add_namespace(path)
    await async_wait_for(lambda: data(dns_answer(dns, "web.default.svc.cluster.local")), 10, what="web in the zone")
    etc = Path("/etc/netns") / name
    made_parent = not etc.parent.exists()
    etc.mkdir(parents=True, exist_ok=False)
    try:
        (etc / "resolv.conf").write_text(f"search default.svc.cluster.local svc.cluster.local cluster.local\n"
                                         f"nameserver {DNS_IP}\noptions ndots:5 timeout:1 attempts:2\n")
        script = ("import socket; print(socket.gethostbyname('web.default.svc.cluster.local'));"
                  "print(socket.gethostbyname('web'))")
        proc = await asyncio.create_subprocess_exec(require_tool("ip"), "netns", "exec", name, sys.executable, "-c", script,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == 0, err.decode()
        assert out.decode().split() == [web["spec"]["clusterIP"]] * 2  # the full name, and the short one via search
    finally:
        shutil.rmtree(etc, ignore_errors=True)
        if made_parent:
            with contextlib.suppress(OSError):  # only when empty: another test may be using it
                etc.parent.rmdir()


def dns_answer(dns: ClusterDNS, name: str) -> DNSRecord:
    return answer(dns.zone, DNSRecord.question(name))


async def test_names_outside_the_cluster_go_to_a_loopback_upstream(local_api: InProcessApi,
                                                                  node_netns: tuple[str, str]) -> None:
    """A stand-in for systemd-resolved on 127.0.0.1 (an ephemeral port) answers what is not the cluster's."""
    _, path = node_netns
    loop = asyncio.get_running_loop()

    class Upstream(asyncio.DatagramProtocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: Any) -> None:
            q = DNSRecord.parse(data)
            reply = q.reply()
            reply.add_answer(RR(q.q.qname, QTYPE.A, rdata=A("127.1.2.3"), ttl=60))
            self.transport.sendto(reply.pack(), addr)

    transport, _ = await loop.create_datagram_endpoint(Upstream, local_addr=("127.0.0.1", 0))
    server = ClusterDNS(local_api.client, upstreams=[transport.get_extra_info("sockname")[:2], ("10.255.255.53", 53)])
    task = asyncio.create_task(server.run())
    try:
        assert server.upstreams == [transport.get_extra_info("sockname")[:2]]  # the non-loopback one is dropped
        await server.wait_synced()
        await server.add_namespace(path)
        reply = await udp(path, "example.org")
        assert data(reply) == ["127.1.2.3"]
        assert server.stats["forwarded"] == 1
        assert (await udp(path, "kubernetes.default.svc.cluster.local")).header.rcode != RCODE.REFUSED
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        transport.close()
    assert server.namespaces == []  # the end of run() stopped serving
