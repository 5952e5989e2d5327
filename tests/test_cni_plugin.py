"""``podlife-cni``, the CNI 1.0 plugin, driven as a container runtime drives it (root, real namespaces).

Each test gets an API server in this process (HTTPS, x509 authentication, the bootstrap
RBAC policy, the Node authorizer and NodeRestriction), a kubeconfig for the node
``system:node:<name>``, and throwaway network namespaces: a node namespace, a fabric
namespace joined to it by a veth (``uplink0`` 169.254.0.2/30 -- ``node0`` 169.254.0.1/30),
and pod namespaces. The pod and its Port are created with the admin client, the port
annotation written as the network controller writes it; then the real executable runs
with the ``CNI_*`` environment and the configuration on stdin. Every connection is made
from a socket created inside a namespace; nothing touches the host's.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from podlife.api.authn import AuthenticationOptions
from podlife.api.authz.bootstrap import ensure_bootstrap_policy
from podlife.api.pki import PKI, write_kubeconfig
from podlife.api.server import APIServer
from podlife.client.base import PODS, PORTS
from podlife.machinery.netns import socket_in
from podlife.machinery.constants import PORT_ANNOTATION
from podlife.nodenet import names
from tests.cluster_harness import async_wait_for, missing
from tests.in_process import InProcessApi, in_process_api



@pytest.fixture(autouse=True)
def _root() -> None:
    """Network namespaces need root (a skip outside CI, a failure in it)."""
    if os.geteuid() != 0:
        missing("needs root (network namespaces)")

PLUGIN = str(Path(sys.executable).parent / "podlife-cni")
NODE = "host-1"
NODE2 = "host-2"
SUBNET, GATEWAY = "10.244.7.0/24", "10.244.7.1"


# ---------------------------------------------------------------------- namespaces


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def ip_json(*args: str) -> list[dict[str, Any]]:
    return json.loads(ip("-j", *args).stdout or "[]")


@dataclass
class Netns:
    """The test's namespaces (all removed at the end) and the pod processes it started."""

    prefix: str = field(default_factory=lambda: f"plcni{secrets.token_hex(3)}-")
    made: list[str] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def add(self, suffix: str) -> str:
        name = self.prefix + suffix
        ip("netns", "add", name)
        self.made.append(name)
        ip("-n", name, "link", "set", "lo", "up")
        return name

    def node(self, index: int, fabric: str) -> str:
        """A node namespace with its uplink to the fabric (the layout podlife.nodenet.fabric makes)."""
        node = self.add(f"n{index}")
        near, far = f"169.254.{index}.2", f"169.254.{index}.1"
        ip("-n", node, "link", "add", names.NODE_UPLINK, "type", "veth", "peer", "name", f"node{index}", "netns", fabric)
        ip("-n", node, "addr", "add", f"{near}/30", "dev", names.NODE_UPLINK)
        ip("-n", node, "link", "set", names.NODE_UPLINK, "up")
        ip("-n", node, "route", "add", "default", "via", far)
        ip("-n", fabric, "addr", "add", f"{far}/30", "dev", f"node{index}")
        ip("-n", fabric, "link", "set", f"node{index}", "up")
        for ns in (node, fabric):
            subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True)
        return node

    def process_netns(self) -> str:
        """A sandbox as the kubelet has them: a process in a new network namespace, named by /proc/<pid>/ns/net."""
        proc = subprocess.Popen(["unshare", "--net", "sleep", "120"])
        self.procs.append(proc)
        path = f"/proc/{proc.pid}/ns/net"
        deadline = time.monotonic() + 10
        while os.readlink(path) == os.readlink("/proc/self/ns/net"):  # until unshare has switched
            assert time.monotonic() < deadline, "unshare did not start"
            time.sleep(0.01)
        return path

    def cleanup(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        for name in reversed(self.made):
            ip("netns", "del", name, check=False)


@pytest.fixture
def netns() -> Iterator[Netns]:
    made = Netns()
    try:
        yield made
    finally:
        made.cleanup()


# ---------------------------------------------------------------------- the API and the plugin


@dataclass
class World:
    api: InProcessApi
    kubeconfigs: dict[str, Path]
    netns: Netns
    fabric: str
    node_ns: str
    next_ip: int = 10

    def config(self, node: str = NODE, node_ns: str | None = None, index: int = 0, **extra: Any) -> dict[str, Any]:
        conf = {"cniVersion": "1.0.0", "name": "podlife", "type": "podlife-cni", "kubeconfig": str(self.kubeconfigs[node]),
                "nodeName": node, "nodeNetns": node_ns or self.node_ns, "fabricNetns": self.fabric,
                "fabricLink": f"node{index}", "uplinkAddress": f"169.254.{index}.2", "mtu": 1500}
        conf.update(extra)
        return conf

    async def pod(self, name: str, *, node: str = NODE, annotate: bool = True) -> Pod:
        """A pod bound to ``node``, its Port (phase DOWN) and, unless told not to, the port annotation."""
        ns = "default"
        created = await self.api.client.create(PODS, {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}}, ns)
        uid = created["metadata"]["uid"]
        self.next_ip += 1
        address = f"10.244.7.{self.next_ip}"
        mac = "fa:16:3e:00:07:%02x" % self.next_ip
        await self.api.client.create(PORTS, {
            "apiVersion": "network.podlife.io/v1", "kind": "Port", "metadata": {"name": name, "namespace": ns},
            "spec": {"subnet": "default-0", "macAddress": mac, "fixedIPs": [{"ipAddress": address, "subnet": "default-0"}],
                     "podName": name, "podUID": uid, "nodeName": node}}, ns)
        pod = Pod(name, ns, uid, address, mac)
        if annotate:
            await self.annotate(pod, node)
        return pod

    async def annotate(self, pod: Pod, node: str = NODE) -> None:
        doc = {"id": pod.uid, "name": pod.name, "network_id": pod.namespace, "mac_address": pod.mac,
               "fixed_ips": [{"ip_address": pod.ip, "subnet_id": "default-0"}],
               "subnet": {"id": "default-0", "cidr": SUBNET, "gateway_ip": GATEWAY},
               "device_id": pod.uid, "device_owner": "compute:kuryr", "binding:host_id": node, "status": "ACTIVE"}
        await self.api.client.patch(PODS, pod.name, {"metadata": {"annotations": {PORT_ANNOTATION: json.dumps(doc)}}},
                                    pod.namespace, patch_type="merge")

    async def port_phase(self, pod: Pod) -> str:
        port = await self.api.client.get(PORTS, pod.name, pod.namespace)
        return str((port.get("status") or {}).get("phase") or "")


@dataclass
class Pod:
    name: str
    namespace: str
    uid: str
    ip: str
    mac: str

    @property
    def host_end(self) -> str:
        return names.host_veth_name(self.uid)


@dataclass
class Answer:
    returncode: int
    doc: dict[str, Any] | None
    stdout: str
    stderr: str
    seconds: float


async def cni(command: str, conf: dict[str, Any], pod: Pod | None = None, sandbox: str = "",
              container_id: str = "sandbox-1", ifname: str = "eth0") -> Answer:
    """Run the plugin once, as a runtime does, without blocking the API server running in this loop."""
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "CNI_COMMAND": command,
           "CNI_CONTAINERID": container_id, "CNI_NETNS": sandbox, "CNI_IFNAME": ifname, "CNI_PATH": "/opt/cni/bin"}
    if pod is not None:
        env["CNI_ARGS"] = f"IgnoreUnknown=1;K8S_POD_NAMESPACE={pod.namespace};K8S_POD_NAME={pod.name};K8S_POD_UID={pod.uid}"
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(PLUGIN, env=env, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(json.dumps(conf).encode()), 60)
    seconds = time.monotonic() - started
    text = out.decode()
    return Answer(proc.returncode or 0, json.loads(text) if text.strip() else None, text, err.decode(), seconds)


@pytest.fixture
async def world(tmp_path: Path, netns: Netns) -> AsyncIterator[World]:
    async with in_process_api() as api:
        await ensure_bootstrap_policy(api.client)
        pki = PKI(tmp_path / "pki")
        pki.ensure(["127.0.0.1"])
        server = APIServer(api.ctx, token=pki.token(), service_account_key=pki.service_account_key(),
                           authentication=AuthenticationOptions(client_ca_file=pki.ca_cert))
        url = await server.start("127.0.0.1", 0, pki.server_ssl_context())
        server.ready = True
        try:
            kubeconfigs = {}
            for node in (NODE, NODE2):
                creds = pki.component_credentials(f"node-{node}", f"system:node:{node}", ["system:nodes"])
                kubeconfigs[node] = tmp_path / f"{node}.conf"
                write_kubeconfig(kubeconfigs[node], url, pki.ca_cert, creds, name=node)
            fabric = netns.add("fabric")
            yield World(api, kubeconfigs, netns, fabric, netns.node(0, fabric))
        finally:
            await server.stop()


# ---------------------------------------------------------------------- helpers in namespaces


async def serve_once(sandbox: str, host: str, port: int) -> asyncio.Task[bytes]:
    """A TCP server inside ``sandbox`` answering one connection with what it received, reversed."""
    listener = socket_in(sandbox)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1)
    listener.setblocking(False)

    async def one() -> bytes:
        loop = asyncio.get_running_loop()
        try:
            conn, _ = await asyncio.wait_for(loop.sock_accept(listener), 20)
            with conn:
                data = await loop.sock_recv(conn, 100)
                await loop.sock_sendall(conn, data[::-1])
                return data
        finally:
            listener.close()
    return asyncio.create_task(one())


async def talk(sandbox: str, host: str, port: int, payload: bytes = b"hello") -> bytes:
    sock = socket_in(sandbox)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    with sock:
        await asyncio.wait_for(loop.sock_connect(sock, (host, port)), 10)
        await loop.sock_sendall(sock, payload)
        return await asyncio.wait_for(loop.sock_recv(sock, 100), 10)


def links(ns_path: str) -> dict[str, dict[str, Any]]:
    out = subprocess.run(["nsenter", f"--net={ns_path}", "ip", "-j", "addr", "show"], capture_output=True, text=True,
                         check=True).stdout
    return {entry["ifname"]: entry for entry in json.loads(out)}


def routes(ns_path: str, *selector: str) -> list[dict[str, Any]]:
    out = subprocess.run(["nsenter", f"--net={ns_path}", "ip", "-j", "route", "show", *selector], capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out or "[]")


def sysctl(ns: str, key: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-n", key], capture_output=True, text=True,
                          check=True).stdout.strip()


def inet(link: dict[str, Any]) -> list[str]:
    return [f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info") or [] if a.get("family") == "inet"]


# ---------------------------------------------------------------------- tests


async def test_version_and_invocation_errors(world: World) -> None:
    answer = await cni("VERSION", {"cniVersion": "1.0.0"})
    assert answer.returncode == 0, answer
    assert answer.doc == {"cniVersion": "1.0.0", "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0"]}

    pod = Pod("nobody", "default", "uid-x", "", "")
    sandbox = names.netns_path(world.netns.add("p0"))
    answer = await cni("ADD", world.config(cniVersion="2.0.0"), pod, sandbox)
    assert answer.returncode == 1 and answer.doc is not None
    assert answer.doc["code"] == 1 and answer.doc["msg"] == "incompatible CNI versions"

    answer = await cni("ADD", world.config(), None, sandbox)  # no CNI_ARGS: no pod to plug
    assert answer.returncode == 1 and answer.doc is not None and answer.doc["code"] == 4
    assert "K8S_POD_UID" in answer.doc["details"]

    conf = world.config()
    del conf["nodeNetns"]
    answer = await cni("ADD", conf, pod, sandbox)
    assert answer.returncode == 1 and answer.doc is not None and answer.doc["code"] == 7
    assert "nodeNetns" in answer.doc["details"]


async def test_add_plugs_the_pod_and_marks_its_port_active(world: World) -> None:
    pod = await world.pod("web")
    sandbox = names.netns_path(world.netns.add("p1"))
    assert await world.port_phase(pod) != "ACTIVE"

    answer = await cni("ADD", world.config(), pod, sandbox)
    assert answer.returncode == 0, answer
    result = answer.doc
    assert result is not None and result["cniVersion"] == "1.0.0"
    host_if, pod_if = result["interfaces"]
    assert host_if["name"] == pod.host_end and len(host_if["mac"]) == 17 and "sandbox" not in host_if
    assert pod_if == {"name": "eth0", "mac": pod.mac, "sandbox": sandbox}
    assert result["ips"] == [{"address": f"{pod.ip}/24", "gateway": GATEWAY, "interface": 1}]
    assert result["routes"] == [{"dst": "0.0.0.0/0", "gw": GATEWAY}] and result["dns"] == {}

    # the pod's namespace: eth0 with the port's MAC and address, lo up, the default route via the gateway
    inside = links(sandbox)
    assert inside["eth0"]["address"] == pod.mac and inet(inside["eth0"]) == [f"{pod.ip}/24"]
    assert "UP" in inside["eth0"]["flags"] and "UP" in inside["lo"]["flags"]
    assert [(r["gateway"], r["dev"]) for r in routes(sandbox, "default")] == [(GATEWAY, "eth0")]
    # the node's: the host end up, proxy ARP and forwarding on it, the /32, the gateway on the dummy
    node_path = names.netns_path(world.node_ns)
    node_links = links(node_path)
    assert "UP" in node_links[pod.host_end]["flags"] and node_links[pod.host_end]["address"] == host_if["mac"]
    assert f"{GATEWAY}/32" in inet(node_links[names.SERVICE_DUMMY])
    assert sysctl(world.node_ns, f"net.ipv4.conf.{pod.host_end}.proxy_arp") == "1"
    assert sysctl(world.node_ns, f"net.ipv4.conf.{pod.host_end}.forwarding") == "1"
    assert [r["dev"] for r in routes(node_path, f"{pod.ip}/32")] == [pod.host_end]
    # the fabric's: the pod's /32 via this node's uplink
    assert [(r["gateway"], r["dev"]) for r in routes(names.netns_path(world.fabric), f"{pod.ip}/32")] == \
        [("169.254.0.2", "node0")]
    # the port is reported plugged
    assert await world.port_phase(pod) == "ACTIVE"

    # the gateway answers from inside the pod (a server on the gateway address in the node namespace)
    server = await serve_once(node_path, GATEWAY, 8080)
    assert await talk(sandbox, GATEWAY, 8080, b"ping") == b"gnip"
    assert await server == b"ping"

    # ADD again: the same result, nothing duplicated, still reachable
    again = await cni("ADD", world.config(), pod, sandbox)
    assert again.returncode == 0, again
    assert again.doc == result
    assert inet(links(sandbox)["eth0"]) == [f"{pod.ip}/24"]
    assert len(routes(node_path, f"{pod.ip}/32")) == 1
    server = await serve_once(node_path, GATEWAY, 8081)
    assert await talk(sandbox, GATEWAY, 8081) == b"olleh"
    await server


async def test_two_pods_on_one_node_and_one_on_another_reach_each_other(world: World) -> None:
    a, b, c = await world.pod("a"), await world.pod("b"), await world.pod("c", node=NODE2)
    node2 = world.netns.node(1, world.fabric)
    sandbox_a = names.netns_path(world.netns.add("pa"))
    sandbox_b = world.netns.process_netns()  # the kubelet's kind: a pause process's namespace
    sandbox_c = names.netns_path(world.netns.add("pc"))
    for pod, sandbox, conf in ((a, sandbox_a, world.config()), (b, sandbox_b, world.config()),
                               (c, sandbox_c, world.config(NODE2, node2, 1))):
        answer = await cni("ADD", conf, pod, sandbox, container_id=f"sandbox-{pod.name}")
        assert answer.returncode == 0, answer

    # a -> b on the same node (the node answers ARP for b and routes it)
    server = await serve_once(sandbox_b, b.ip, 9000)
    assert await talk(sandbox_a, b.ip, 9000, b"a-to-b") == b"b-ot-a"
    assert await server == b"a-to-b"
    # b -> a, the other way
    server = await serve_once(sandbox_a, a.ip, 9001)
    assert await talk(sandbox_b, a.ip, 9001) == b"olleh"
    await server
    # a -> c across the fabric (c is on the other node)
    server = await serve_once(sandbox_c, c.ip, 9002)
    assert await talk(sandbox_a, c.ip, 9002, b"across") == b"ssorca"
    await server
    assert {await world.port_phase(p) for p in (a, b, c)} == {"ACTIVE"}


async def test_add_before_the_annotation_is_try_again_later(world: World) -> None:
    pod = await world.pod("early", annotate=False)
    sandbox = names.netns_path(world.netns.add("p2"))
    answer = await cni("ADD", world.config(), pod, sandbox)
    assert answer.returncode == 1
    assert answer.doc is not None and answer.doc["code"] == 11
    assert answer.doc["msg"] == "port annotation not present yet" and answer.doc["cniVersion"] == "1.0.0"
    assert "eth0" not in links(sandbox) and pod.host_end not in links(names.netns_path(world.node_ns))
    assert await world.port_phase(pod) != "ACTIVE"

    await world.annotate(pod)  # the controller catches up; the runtime's retry succeeds
    answer = await cni("ADD", world.config(), pod, sandbox)
    assert answer.returncode == 0, answer
    assert await world.port_phase(pod) == "ACTIVE"

    stranger = Pod("early", "default", "some-other-uid", pod.ip, pod.mac)  # the sandbox of a pod since replaced
    answer = await cni("ADD", world.config(), stranger, names.netns_path(world.netns.add("p3")))
    assert answer.returncode == 1 and answer.doc is not None and answer.doc["code"] == 11
    assert answer.doc["msg"] == "pod UID mismatch"


async def test_del_removes_the_veth_and_routes_and_is_idempotent(world: World) -> None:
    pod = await world.pod("gone")
    sandbox = names.netns_path(world.netns.add("p4"))
    assert (await cni("ADD", world.config(), pod, sandbox)).returncode == 0
    node_path, fabric_path = names.netns_path(world.node_ns), names.netns_path(world.fabric)
    assert routes(fabric_path, f"{pod.ip}/32")

    for _ in range(2):  # the second DEL finds nothing and still succeeds
        answer = await cni("DEL", world.config(), pod, sandbox)
        assert answer.returncode == 0 and answer.stdout == "", answer
        assert pod.host_end not in links(node_path) and "eth0" not in links(sandbox)
        assert routes(node_path, f"{pod.ip}/32") == [] and routes(fabric_path, f"{pod.ip}/32") == []

    # the sandbox's namespace went first (the veth with it) and no prevResult: the stale fabric route is swept
    other = await world.pod("other")
    sandbox2 = world.netns.process_netns()
    assert (await cni("ADD", world.config(), other, sandbox2)).returncode == 0
    proc = world.netns.procs[-1]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    await async_wait_for(lambda: other.host_end not in links(node_path), 10, what="the veth to go with its namespace")
    assert routes(fabric_path, f"{other.ip}/32")
    answer = await cni("DEL", world.config(), other, "")
    assert answer.returncode == 0, answer
    assert routes(fabric_path, f"{other.ip}/32") == []

    # DEL when even the node namespace is gone, and without the API (no kubeconfig): still success
    answer = await cni("DEL", world.config(nodeNetns=world.netns.prefix + "nothing", kubeconfig=""), pod, "")
    assert answer.returncode == 0, answer


async def test_del_uses_prev_result_for_the_fabric_route(world: World) -> None:
    pod = await world.pod("prev")
    sandbox = names.netns_path(world.netns.add("p5"))
    added = await cni("ADD", world.config(), pod, sandbox)
    assert added.returncode == 0
    fabric_path = names.netns_path(world.fabric)
    ip("-n", world.node_ns, "link", "del", pod.host_end)  # the veth vanished behind the plugin's back
    keep = await world.pod("keep")  # another pod's route the DEL must leave alone
    assert (await cni("ADD", world.config(), keep, names.netns_path(world.netns.add("p6")))).returncode == 0
    answer = await cni("DEL", world.config(prevResult=added.doc), pod, sandbox)
    assert answer.returncode == 0, answer
    assert routes(fabric_path, f"{pod.ip}/32") == [] and routes(fabric_path, f"{keep.ip}/32")


async def test_check_passes_then_fails_once_broken(world: World) -> None:
    pod = await world.pod("checked")
    sandbox = names.netns_path(world.netns.add("p7"))
    added = await cni("ADD", world.config(), pod, sandbox)
    assert added.returncode == 0

    ok = await cni("CHECK", world.config(prevResult=added.doc), pod, sandbox)
    assert ok.returncode == 0 and ok.stdout == "", ok
    ok = await cni("CHECK", world.config(), pod, sandbox)  # no prevResult: the port annotation says what to expect
    assert ok.returncode == 0 and ok.stdout == "", ok

    subprocess.run(["nsenter", f"--net={sandbox}", "ip", "addr", "flush", "dev", "eth0"], check=True)
    broken = await cni("CHECK", world.config(prevResult=added.doc), pod, sandbox)
    assert broken.returncode == 1 and broken.doc is not None and broken.doc["code"] == 103
    assert f"lacks address {pod.ip}/24" in broken.doc["details"]

    # ADD repairs it; CHECK passes again; then the fabric route is lost
    assert (await cni("ADD", world.config(), pod, sandbox)).returncode == 0
    assert (await cni("CHECK", world.config(prevResult=added.doc), pod, sandbox)).returncode == 0
    ip("-n", world.fabric, "route", "del", f"{pod.ip}/32")
    broken = await cni("CHECK", world.config(prevResult=added.doc), pod, sandbox)
    assert broken.returncode == 1 and broken.doc is not None and "fabric has no route" in broken.doc["details"]


async def test_older_spec_versions_get_their_result_shape(world: World) -> None:
    pod = await world.pod("old")
    sandbox = names.netns_path(world.netns.add("p8"))
    answer = await cni("ADD", world.config(cniVersion="0.4.0", fabricNetns=""), pod, sandbox)
    assert answer.returncode == 0, answer
    assert answer.doc is not None and answer.doc["cniVersion"] == "0.4.0"
    assert answer.doc["ips"] == [{"address": f"{pod.ip}/24", "gateway": GATEWAY, "interface": 1, "version": "4"}]
    assert routes(names.netns_path(world.fabric), f"{pod.ip}/32") == []  # no fabric configured: no fabric route


async def test_parallel_adds_into_a_fresh_node_namespace(world: World) -> None:
    """The runtime plugs several pods at once: the first ADDs race to make the service dummy; all succeed."""
    pods = [await world.pod(f"par{i}") for i in range(4)]
    sandboxes = [names.netns_path(world.netns.add(f"par{i}")) for i in range(4)]
    answers = await asyncio.gather(*(cni("ADD", world.config(), pod, sandbox, container_id=f"s-{pod.name}")
                                     for pod, sandbox in zip(pods, sandboxes, strict=True)))
    assert [a.returncode for a in answers] == [0] * 4, answers
    node_links = links(names.netns_path(world.node_ns))
    assert inet(node_links[names.SERVICE_DUMMY]) == [f"{GATEWAY}/32"]
    assert all(pod.host_end in node_links for pod in pods)
    server = await serve_once(sandboxes[3], pods[3].ip, 9100)
    assert await talk(sandboxes[0], pods[3].ip, 9100) == b"olleh"
    await server


async def test_add_replaces_a_mismatching_interface(world: World) -> None:
    pod = await world.pod("fixme")
    sandbox = names.netns_path(world.netns.add("p9"))
    assert (await cni("ADD", world.config(), pod, sandbox)).returncode == 0
    in_pod = ["nsenter", f"--net={sandbox}", "ip"]
    subprocess.run([*in_pod, "link", "set", "eth0", "address", "02:00:00:00:00:99"], check=True)
    subprocess.run([*in_pod, "addr", "add", "10.244.7.250/24", "dev", "eth0"], check=True)
    answer = await cni("ADD", world.config(), pod, sandbox)
    assert answer.returncode == 0, answer
    eth0 = links(sandbox)["eth0"]
    assert eth0["address"] == pod.mac and inet(eth0) == [f"{pod.ip}/24"]
    assert [(r["gateway"], r["dev"]) for r in routes(sandbox, "default")] == [(GATEWAY, "eth0")]
    assert (await cni("CHECK", world.config(), pod, sandbox)).returncode == 0


# ---------------------------------------------------------------------- the pure parts


def test_spec_parsing_and_rendering() -> None:
    from podlife.nodenet.cni import spec

    assert spec.parse_cni_args("IgnoreUnknown=1;K8S_POD_NAME=a;K8S_POD_UID=u;") == \
        {"IgnoreUnknown": "1", "K8S_POD_NAME": "a", "K8S_POD_UID": "u"}
    with pytest.raises(spec.CniError) as bad:
        spec.parse_cni_args("K8S_POD_NAME")
    assert bad.value.code == spec.INVALID_ENVIRONMENT
    with pytest.raises(spec.CniError) as bad:
        spec.parse_invocation({"CNI_COMMAND": "GET"})
    assert bad.value.code == spec.INVALID_ENVIRONMENT
    inv = spec.parse_invocation({"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c", "CNI_IFNAME": "eth0",
                                 "CNI_ARGS": "K8S_POD_UID=u"})  # DEL: no netns, no pod name needed
    assert inv.pod_uid == "u" and inv.netns == ""
    with pytest.raises(spec.CniError) as bad:
        spec.parse_netconf({"cniVersion": "1.0.0", "name": "n", "nodeNetns": "x", "fabricNetns": "f"}, "DEL")
    assert bad.value.code == spec.INVALID_CONFIG and "fabricLink" in bad.value.details
    with pytest.raises(spec.CniError) as bad:
        spec.parse_netconf({"cniVersion": "1.0.0", "name": "n", "nodeNetns": "../etc"}, "DEL")
    assert bad.value.code == spec.INVALID_CONFIG
    with pytest.raises(spec.CniError) as bad:
        spec.decode_config(b"[1]")
    assert bad.value.code == spec.DECODING_FAILURE
    prev = {"interfaces": [{"name": "plv1", "mac": "0e:00:00:00:00:01"}, {"name": "eth0", "mac": "fa:16:3e:00:00:01",
                                                                        "sandbox": "/x"}],
            "ips": [{"address": "10.244.0.5/24", "gateway": "10.244.0.1", "interface": 1}]}
    assert spec.prev_result_address(prev) == ("10.244.0.5", "10.244.0.5/24", "10.244.0.1")
    assert spec.prev_result_mac(prev, "eth0") == "fa:16:3e:00:00:01" and spec.prev_result_mac(prev, "plv1") == ""
    plugged = spec.Plugged("plv1", "0e:00:00:00:00:01", "eth0", "fa:16:3e:00:00:01", "/x", "10.244.0.5/24", "10.244.0.1")
    assert spec.render_result(plugged, "1.0.0") == {"cniVersion": "1.0.0", **prev, "routes": [{"dst": "0.0.0.0/0",
                                                                                             "gw": "10.244.0.1"}],
                                                    "dns": {}}
    assert spec.CniError(11, "later", "why").document() == {"cniVersion": "1.0.0", "code": 11, "msg": "later",
                                                            "details": "why"}


def test_plans() -> None:
    from podlife.nodenet.cni import plumbing

    want = plumbing.PodNetwork("plvabc", plumbing.host_mac("uid"), "eth0", "fa:16:3e:00:00:05", "10.244.0.5/24",
                               "10.244.0.1", 1500, "/x")
    assert want.host_mac == plumbing.host_mac("uid") and int(want.host_mac[:2], 16) & 0b11 == 0b10  # local unicast
    fresh = plumbing.plan_add(want, {}, {})
    assert fresh.pod[0].startswith("link add eth0 address fa:16:3e:00:00:05") and "netns {node_netns}" in fresh.pod[0]
    assert fresh.create_dummy and not fresh.delete_pod_link and not fresh.delete_host_link
    assert "route replace 10.244.0.5/32 dev plvabc scope link" in fresh.node
    node = {"plvabc": plumbing.LinkState("plvabc", want.host_mac, True, ()),
            names.SERVICE_DUMMY: plumbing.LinkState(names.SERVICE_DUMMY, "", True, ("10.244.0.1/32",))}
    pod = {"eth0": plumbing.LinkState("eth0", "fa:16:3e:00:00:05", True, ("10.244.0.5/24",))}
    again = plumbing.plan_add(want, node, pod)
    assert not any(cmd.startswith("link add") for cmd in again.pod) and not again.create_dummy
    assert not any(names.SERVICE_DUMMY in cmd for cmd in again.node)
    wrong = plumbing.plan_add(want, node, {"eth0": plumbing.LinkState("eth0", "02:00:00:00:00:01", True, ())})
    assert wrong.delete_pod_link and wrong.delete_host_link and wrong.pod[0].startswith("link add")
    fabric = [{"dst": "10.244.0.5", "gateway": "169.254.0.2", "dev": "node0"},
              {"dst": "10.244.0.6", "gateway": "169.254.0.2", "dev": "node0"},
              {"dst": "10.244.0.7", "gateway": "169.254.0.6", "dev": "node0"},
              {"dst": "169.254.0.0/30", "dev": "node0"}]
    node_routes = [{"dst": "10.244.0.6", "dev": "plvdef"}, {"dst": "default", "gateway": "169.254.0.1"}]
    assert plumbing.stale_fabric_routes(fabric, node_routes, "169.254.0.2") == ["10.244.0.5"]
    assert plumbing.host_routes([{"dst": "10.244.0.5", "scope": "link"}, {"dst": "fe80::/64"}]) == ["10.244.0.5"]
