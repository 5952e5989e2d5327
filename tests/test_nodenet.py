"""Node network namespaces and the fabric (podlife.nodenet.fabric), and the kubelet's CNI executable client
(podlife.node.cni.ExecCNIPlugin).

The namespace tests make real namespaces as root (each cluster id from a fresh data dir,
so parallel runs never meet) and always tear them down; they check with ``ip -j`` that
the namespaces, links, addresses and routes are there, that a second setup changes
nothing, that another cluster is left alone, and that the host namespace gets nothing.
The plugin tests run a small stand-in plugin script (``STUB``) that records how it was
called and answers as told, so that the CNI protocol of the kubelet's side is checked
without the real ``podlife-cni``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podlife.client.base import EVENTS, PODS, Obj
from podlife.kubelet.kubelet import Kubelet
from podlife.kubelet.oci.cgroups import detect_layout
from podlife.kubelet.oci.conmon import find_conmon
from podlife.kubelet.oci.runc import find_runc
from podlife.kubelet.oci.runtime import unavailable_reasons
from podlife.kubelet.oci_pods import OCIPodRuntime
from podlife.kubelet.pod_worker import sandbox_network_error
from podlife.machinery.constants import PORT_ANNOTATION
from podlife.node.cni import (
    TRY_AGAIN_LATER, CNIError, CNIPluginError, ExecCNIPlugin, cni_args, find_plugin, plugin_error, port_from_result,
    read_port_annotation,
)
from podlife.node.machine import PodLifecycle, RecordEvent, SandboxFailed
from podlife.network.controller import NetworkController
from podlife.nodenet import names
from podlife.nodenet.fabric import NodeNetworks, list_netns, plan_networks, unwanted_netns, uplink_addresses

from .cluster_harness import async_wait_for, missing, require_tool
from .in_process import InProcessApi
from .test_kubelet import FAST, NODE, NS, pod_spec

SERVICE_ADDRESSES = ("10.96.0.10", "10.96.0.1")


# ---------------------------------------------------------------------------- pure


def test_plan_and_addresses() -> None:
    nets = plan_networks("abc123", ["a", "b"])
    assert [(n.node_name, n.index, n.netns, n.fabric_link, n.uplink_address) for n in nets] == [
        ("a", 0, "podlife-abc123-n0", "node0", "169.254.0.2"), ("b", 1, "podlife-abc123-n1", "node1", "169.254.1.2")]
    assert nets[0].netns_path == "/run/netns/podlife-abc123-n0" and nets[0].fabric_netns == "podlife-abc123-fabric"
    assert uplink_addresses(7) == ("169.254.7.2", "169.254.7.1")
    with pytest.raises(ValueError):
        uplink_addresses(256)
    existing = ["podlife-abc123-n0", "podlife-abc123-n2", "podlife-abc123-fabric", "podlife-fff000-n5", "other"]
    assert unwanted_netns(existing, "abc123", ["podlife-abc123-n0", "podlife-abc123-fabric"]) == ["podlife-abc123-n2"]


def test_cni_config_is_the_plugin_contract() -> None:
    net = plan_networks("abc123", ["a", "b"])[1]
    assert net.cni_config(Path("/d/kubeconfigs/node-b.conf")) == {
        "cniVersion": "1.0.0", "name": "podlife", "type": "podlife-cni", "kubeconfig": "/d/kubeconfigs/node-b.conf",
        "nodeName": "b", "nodeNetns": "podlife-abc123-n1", "fabricNetns": "podlife-abc123-fabric",
        "fabricLink": "node1", "uplinkAddress": "169.254.1.2", "mtu": 1500}


# ---------------------------------------------------------------------------- namespaces (root)


def _require_netns() -> str:
    ip = require_tool("ip")
    if os.geteuid() != 0:
        missing("needs root to create network namespaces")
    return ip


def _ip_json(*args: str) -> Any:
    out = subprocess.run(["ip", "-j", *args], capture_output=True, text=True, check=True).stdout
    return json.loads(out or "[]")


def _addresses(ns: str | None, dev: str) -> set[str]:
    found = _ip_json(*(["-n", ns] if ns else []), "addr", "show", "dev", dev)
    return {f"{a['local']}/{a['prefixlen']}" for link in found for a in link.get("addr_info", []) if a["family"] == "inet"}


def _host_state() -> tuple[set[str], set[str], set[str]]:
    """Host links, 10.x addresses, and 10.x routes that are not ``unreachable`` (what podlife may never add)."""
    links = {link["ifname"] for link in _ip_json("link", "show")}
    ten = ipaddress.ip_network("10.0.0.0/8")
    addrs = {f"{a['local']}" for link in _ip_json("addr", "show") for a in link.get("addr_info", [])
             if a["family"] == "inet" and ipaddress.ip_address(a["local"]) in ten}
    routes = {r["dst"] for r in _ip_json("route", "show", "table", "all")
              if r.get("type") != "unreachable" and r.get("dst", "default") != "default"
              and ":" not in r["dst"] and ipaddress.ip_network(r["dst"], strict=False).subnet_of(ten)}
    return links, addrs, routes


@pytest.fixture
def data_dirs(tmp_path: Path) -> Iterator[list[Path]]:
    """Fresh data dirs; every namespace of their cluster ids is removed afterwards, also on failure."""
    _require_netns()
    dirs = [tmp_path / f"data-{secrets.token_hex(4)}" for _ in range(2)]
    try:
        yield dirs
    finally:
        for d in dirs:
            NodeNetworks(d, []).teardown()


def _sysctl(ns: str, key: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, "cat", f"/proc/sys/{key.replace('.', '/')}"],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_setup_makes_the_namespaces_links_and_routes(data_dirs: list[Path]) -> None:
    before = _host_state()
    networks = NodeNetworks(data_dirs[0], ["a", "b"], SERVICE_ADDRESSES)
    made = networks.setup()
    cid = networks.cluster_id
    assert [n.netns for n in made] == [names.node_netns_name(cid, 0), names.node_netns_name(cid, 1)]
    fabric = names.fabric_netns_name(cid)
    assert {fabric, *(n.netns for n in made)} <= set(list_netns())
    for net in made:
        ns = net.netns
        assert _addresses(ns, names.NODE_UPLINK) == {f"169.254.{net.index}.2/30"}
        assert _addresses(fabric, net.fabric_link) == {f"169.254.{net.index}.1/30"}
        assert _addresses(ns, names.SERVICE_DUMMY) == {f"{a}/32" for a in SERVICE_ADDRESSES}
        routes = _ip_json("-n", ns, "route", "show", "default")
        assert [(r["gateway"], r["dev"]) for r in routes] == [(f"169.254.{net.index}.1", names.NODE_UPLINK)]
        lo = _ip_json("-n", ns, "link", "show", "dev", "lo")[0]
        assert "UP" in lo["flags"] and _sysctl(ns, "net.ipv4.ip_forward") == "1"
    assert _sysctl(fabric, "net.ipv4.ip_forward") == "1"
    assert _ip_json("-n", fabric, "route", "show", "default") == []  # nothing unknown is routed anywhere
    # node 0 reaches node 1's uplink through the fabric (inside the namespaces only)
    ping = subprocess.run(["ip", "netns", "exec", made[0].netns, "busybox", "ping", "-c", "1", "-W", "2",
                           made[1].uplink_address], capture_output=True, text=True)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    after = _host_state()
    assert after[0] - before[0] == set(), "links appeared in the host namespace"
    assert after[1] - before[1] == set() and after[2] - before[2] == set(), "10.x in the host namespace"
    networks.teardown()
    assert not [n for n in list_netns() if n.startswith(names.cluster_netns_prefix(cid))]
    assert _host_state()[0] - before[0] == set()


def test_setup_twice_is_idempotent_and_keeps_what_lives_in_the_node(data_dirs: list[Path]) -> None:
    networks = NodeNetworks(data_dirs[0], ["a", "b"], SERVICE_ADDRESSES)
    made = networks.setup()
    ns = made[0].netns
    uplink = _ip_json("-n", ns, "link", "show", "dev", names.NODE_UPLINK)[0]["ifindex"]
    # what a CNI ADD leaves in the node namespace: a pod's gateway on the dummy, a pod device and route
    subprocess.run(["ip", "-n", ns, "addr", "add", "10.244.0.1/32", "dev", names.SERVICE_DUMMY], check=True)
    subprocess.run(["ip", "-n", ns, "link", "add", "plvtest", "type", "veth", "peer", "name", "plvpeer"], check=True)
    again = NodeNetworks(data_dirs[0], ["a", "b"], SERVICE_ADDRESSES).setup()
    assert again == made
    assert _ip_json("-n", ns, "link", "show", "dev", names.NODE_UPLINK)[0]["ifindex"] == uplink  # not recreated
    assert _addresses(ns, names.SERVICE_DUMMY) == {"10.244.0.1/32", *(f"{a}/32" for a in SERVICE_ADDRESSES)}
    assert _ip_json("-n", ns, "link", "show", "dev", "plvtest")
    assert len(_ip_json("-n", ns, "route", "show", "default")) == 1
    # half an uplink (the fabric end lost) is replaced by a whole one
    subprocess.run(["ip", "-n", made[1].fabric_netns, "link", "del", made[1].fabric_link], check=True)
    NodeNetworks(data_dirs[0], ["a", "b"], SERVICE_ADDRESSES).setup()
    assert _addresses(made[1].fabric_netns, made[1].fabric_link) == {"169.254.1.1/30"}
    assert _addresses(made[1].netns, names.NODE_UPLINK) == {"169.254.1.2/30"}
    # fewer nodes now: the namespace of the one gone is removed
    NodeNetworks(data_dirs[0], ["a"], SERVICE_ADDRESSES).setup()
    assert made[1].netns not in list_netns() and made[0].netns in list_netns()


def test_a_stale_netns_file_is_replaced(data_dirs: list[Path]) -> None:
    networks = NodeNetworks(data_dirs[0], ["a"])
    stale = Path(networks.networks[0].netns_path)
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"")  # a file under /run/netns that is no mount (as after a reboot)
    made = networks.setup()
    assert _addresses(made[0].netns, names.NODE_UPLINK) == {"169.254.0.2/30"}


def test_another_cluster_is_left_alone(data_dirs: list[Path]) -> None:
    first = NodeNetworks(data_dirs[0], ["a", "b"], SERVICE_ADDRESSES)
    mine = first.setup()
    other = NodeNetworks(data_dirs[1], ["x"])
    assert other.cluster_id != first.cluster_id
    other.setup()
    other.teardown()
    for net in mine:
        assert net.netns in list_netns()
        assert _addresses(net.netns, names.NODE_UPLINK) == {f"169.254.{net.index}.2/30"}
    assert first.fabric_netns in list_netns()


# ---------------------------------------------------------------------------- the plugin executable

STUB = """#!{python}
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
config = json.load(sys.stdin)
env = {{k: v for k, v in os.environ.items() if k.startswith("CNI_")}}
with open(os.path.join(here, "calls.jsonl"), "a") as f:
    f.write(json.dumps({{"env": env, "config": config}}) + "\\n")
mode = open(os.path.join(here, "mode")).read().strip()
if env["CNI_COMMAND"] == "DEL":
    sys.exit(0 if mode != "del-fails" else 1)
if mode == "ok":
    print(json.dumps({{"cniVersion": "1.0.0", "interfaces": [{{"name": "eth0", "mac": "fa:16:3e:aa:bb:cc",
          "sandbox": env["CNI_NETNS"]}}], "ips": [{{"address": "10.244.0.5/24", "gateway": "10.244.0.1",
          "interface": 0}}]}}))
elif mode == "later":
    print(json.dumps({{"cniVersion": "1.0.0", "code": 11, "msg": "port annotation not present yet"}}))
    sys.exit(1)
elif mode == "crash":
    sys.stderr.write("Traceback (most recent call last):\\nRuntimeError: boom\\n")
    sys.exit(2)
"""

CONFIG = {"cniVersion": "1.0.0", "name": "podlife", "type": "podlife-cni", "kubeconfig": "/k.conf",
          "nodeName": "node-1", "nodeNetns": "podlife-x-n0", "fabricNetns": "podlife-x-fabric",
          "fabricLink": "node0", "uplinkAddress": "169.254.0.2", "mtu": 1500}
PORT = {"id": "p1", "name": "web", "mac_address": "fa:16:3e:aa:bb:cc", "fixed_ips": [{"ip_address": "10.244.0.5"}],
        "subnet": {"cidr": "10.244.0.0/24", "gateway_ip": "10.244.0.1"}, "binding:host_id": "node-1"}


class Stub:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.path = directory / "podlife-cni"
        self.path.write_text(STUB.format(python=sys.executable))
        self.path.chmod(0o755)
        self.mode("ok")

    def mode(self, mode: str) -> None:
        (self.dir / "mode").write_text(mode)

    def calls(self) -> list[dict[str, Any]]:
        log = self.dir / "calls.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
def stub(tmp_path: Path) -> Stub:
    return Stub(tmp_path)


def _pod(annotated: bool = True, **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "web", "namespace": "shop", "uid": "uid-1"}
    if annotated:
        meta["annotations"] = {PORT_ANNOTATION: json.dumps(PORT)}
    return {"metadata": meta, "spec": {"nodeName": "node-1", **spec}}


async def test_add_runs_the_plugin_with_the_cni_environment(stub: Stub) -> None:
    cni = ExecCNIPlugin(CONFIG, binary=str(stub.path))
    info = await cni.add(_pod(), "/proc/123/ns/net", sandbox_id="sb1")
    assert (info.ip, info.mac, info.gateway, info.cidr, info.port_name) == (
        "10.244.0.5", "fa:16:3e:aa:bb:cc", "10.244.0.1", "10.244.0.0/24", "web")
    (call,) = stub.calls()
    assert call["config"] == CONFIG
    assert call["env"] == {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "sb1", "CNI_NETNS": "/proc/123/ns/net",
                           "CNI_IFNAME": "eth0", "CNI_PATH": str(stub.dir),
                           "CNI_ARGS": "K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web;K8S_POD_UID=uid-1"}
    assert cni.attached["uid-1"] == info
    await cni.delete(_pod(), None)  # the sandbox is gone: DEL still runs, with the same container id
    deleted = stub.calls()[-1]["env"]
    assert (deleted["CNI_COMMAND"], deleted["CNI_CONTAINERID"], deleted["CNI_NETNS"]) == ("DEL", "sb1", "")
    assert cni.attached == {}
    await cni.delete(_pod(), None)  # never added (any more), no namespace: nothing to run
    assert len(stub.calls()) == 2


async def test_try_again_later_is_a_cni_error(stub: Stub) -> None:
    stub.mode("later")
    cni = ExecCNIPlugin(CONFIG, binary=str(stub.path))
    with pytest.raises(CNIPluginError) as caught:
        await cni.add(_pod(), "/proc/1/ns/net", sandbox_id="sb1")
    assert isinstance(caught.value, CNIError) and caught.value.code == TRY_AGAIN_LATER and caught.value.try_again_later
    assert str(caught.value) == 'plugin type="podlife-cni" failed (add): port annotation not present yet'
    assert len(stub.calls()) == 1


async def test_no_annotation_fails_without_running_the_plugin(stub: Stub) -> None:
    cni = ExecCNIPlugin(CONFIG, binary=str(stub.path))
    with pytest.raises(CNIPluginError, match="port annotation not present yet") as caught:
        await cni.add(_pod(annotated=False), "/proc/1/ns/net")
    assert caught.value.code == TRY_AGAIN_LATER and stub.calls() == []


async def test_other_failures_carry_the_plugins_message(stub: Stub) -> None:
    stub.mode("crash")
    cni = ExecCNIPlugin(CONFIG, binary=str(stub.path))
    with pytest.raises(CNIPluginError, match=r'failed \(add\): RuntimeError: boom') as caught:
        await cni.add(_pod(), "/proc/1/ns/net")
    assert caught.value.code == 0 and not caught.value.try_again_later
    stub.mode("del-fails")
    await cni.delete(_pod(), "/proc/1/ns/net")  # logged, not raised
    assert stub.calls()[-1]["env"]["CNI_COMMAND"] == "DEL"


async def test_without_a_namespace_only_records(stub: Stub) -> None:
    cni = ExecCNIPlugin(CONFIG, binary=str(stub.path), host_ip="192.0.2.7")
    assert (await cni.add(_pod(), None)).ip == "10.244.0.5"
    assert (await cni.add(_pod(hostNetwork=True), "/proc/1/ns/net")).ip == "192.0.2.7"
    await cni.delete(_pod(hostNetwork=True), "/proc/1/ns/net")
    assert stub.calls() == []


async def test_a_missing_plugin_is_a_cni_error(tmp_path: Path) -> None:
    cni = ExecCNIPlugin(CONFIG, binary=str(tmp_path / "nope"))
    with pytest.raises(CNIPluginError, match="failed to find plugin"):
        await cni.add(_pod(), "/proc/1/ns/net")
    assert find_plugin("python3") is not None  # beside sys.executable or on PATH


def test_error_and_result_parsing() -> None:
    err = plugin_error("podlife-cni", "ADD", 1, b'{"cniVersion":"1.0.0","code":7,"msg":"bad","details":"why"}', b"")
    assert (err.code, str(err)) == (7, 'plugin type="podlife-cni" failed (add): bad: why')
    assert plugin_error("t", "DEL", 3, b"", b"").plugin_message == "exit status 3"
    assert plugin_error("t", "ADD", 1, b'{"code":11}', b"").plugin_message == "try again later"
    annotated = read_port_annotation(_pod())
    info = port_from_result({"ips": [{"address": "10.244.0.9/24"}]}, annotated)
    assert (info.ip, info.mac, info.gateway) == ("10.244.0.9", annotated.mac, "10.244.0.1")
    assert cni_args(_pod()) == "K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web;K8S_POD_UID=uid-1"


def test_failed_create_pod_sandbox_event_in_kubernetes_words() -> None:
    """The kubelet's event for a failed CNI ADD: the CRI runtime's and libcni's wording, under the kubelet's."""
    error = CNIPluginError("podlife-cni", "ADD", "port annotation not present yet", TRY_AGAIN_LATER)
    machine = PodLifecycle({"metadata": {"name": "web", "namespace": "shop", "uid": "u"},
                            "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "busybox"}]}},
                           host_ip="127.0.0.1")
    effects = machine.observe(SandboxFailed(sandbox_network_error("3f2a", error), warn=True), 0.0)
    assert effects == [RecordEvent(
        "Warning", "FailedCreatePodSandBox",
        'Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for sandbox "3f2a": '
        'plugin type="podlife-cni" failed (add): port annotation not present yet')]


# ---------------------------------------------------------------------------- the race, through a real kubelet

RACE_EVENT = re.compile(r'^Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for '
                        r'sandbox "(?P<sandbox>[0-9a-f]+)": plugin type="podlife-cni" failed \(add\): '
                        r'port annotation not present yet$')


def _require_oci() -> None:
    problems = unavailable_reasons(find_runc(), find_conmon(), detect_layout())
    if problems:
        missing("real containers cannot run here: " + "; ".join(problems))


async def test_the_annotation_race_is_an_event_and_a_retry(local_api: InProcessApi, tmp_path: Path) -> None:
    """The network controller is not running yet: the kubelet (real containers) waits with
    FailedCreatePodSandBox; once the controller starts and writes the port annotation, the pod runs."""
    _require_oci()
    stub = Stub(tmp_path)
    client = local_api.client
    root = tmp_path / "kubelet"
    runtime = OCIPodRuntime(root)
    kubelet = Kubelet(client, NODE, root_dir=root, runtime=runtime, cni=ExecCNIPlugin(CONFIG, binary=str(stub.path)),
                      config=FAST)
    await kubelet.start()
    try:
        pod = pod_spec("racer", {"name": "c", "image": "busybox", "command": ["sleep", "3600"]}, grace=1)
        pod["spec"]["nodeName"] = NODE
        await client.create(PODS, pod, NS)

        async def race_event() -> Obj | None:
            items = (await client.list(EVENTS, NS))["items"]
            return next((e for e in items if e["reason"] == "FailedCreatePodSandBox"), None)

        event = await async_wait_for(race_event, 30, what="FailedCreatePodSandBox")
        assert event is not None and event["type"] == "Warning" and event["involvedObject"]["name"] == "racer"
        matched = RACE_EVENT.match(event["message"])
        assert matched, event["message"]
        pod = await client.get(PODS, "racer", NS)
        assert matched["sandbox"] == runtime.pod_sandbox_id(pod)
        assert stub.calls() == []  # the kubelet's copy had no annotation: the plugin was not started
        controller = asyncio.get_running_loop().create_task(NetworkController(client).run())

        async def running() -> bool:
            return ((await client.get(PODS, "racer", NS)).get("status") or {}).get("phase") == "Running"

        try:
            await async_wait_for(running, 30, what="racer Running")
        finally:
            controller.cancel()
        pod = await client.get(PODS, "racer", NS)
        assert PORT_ANNOTATION in pod["metadata"]["annotations"]
        assert pod["status"]["podIP"] == "10.244.0.5"  # what the plugin answered (the stub's fixed result)
        (add,) = stub.calls()
        assert add["env"]["CNI_COMMAND"] == "ADD" and add["env"]["CNI_CONTAINERID"] == matched["sandbox"]
        assert add["env"]["CNI_NETNS"] == runtime.pod_network_namespace(pod)
        assert re.fullmatch(r"/proc/\d+/ns/net", add["env"]["CNI_NETNS"])
        await client.delete(PODS, "racer", NS)
        await async_wait_for(lambda: len(stub.calls()) == 2, 30, what="CNI DEL")
        deleted = stub.calls()[1]["env"]
        assert (deleted["CNI_COMMAND"], deleted["CNI_CONTAINERID"], deleted["CNI_NETNS"]) == (
            "DEL", matched["sandbox"], add["env"]["CNI_NETNS"])
    finally:
        await kubelet.stop()
