"""Pod-to-pod traffic across hosts: joined nodes get the pod network, and a VXLAN overlay joins the fabrics.

Three hosts (tests/hosts_harness.py). Host 0 runs ``podlife up --nodes 1 --container-runtime
oci --host 192.168.77.10`` (the control plane, SQLite, and one local node whose fabric joins
the overlay). ``podlife token create --print-join-command`` gives the join command; hosts 1
and 2 each run ``podlife node ... --container-runtime oci``. Each joined node makes its own
node namespace, fabric and overlay device (docs/networking.md, "Between hosts: the
overlay"), and every node publishes its VTEP on its Node.

Then, with a busybox ``httpd`` pod pinned to each node (nodeSelector
``kubernetes.io/hostname``) and a second one on host 1:

* one-shot pods on hosts 1 and 2 fetch a page by pod IP from the pods on the other hosts,
  both ways, and from the pod on their own node, and report it as their termination
  message. ``kubectl exec`` cannot reach the joined hosts' kubelets: podlife's API server
  dials loopback kubelets only, a network-safety rule of its own;
* ``kubectl exec`` in the pod on host 0's local node (a loopback kubelet) fetches from the
  pods on hosts 1 and 2;
* host 1's fabric routes host 2's pod via host 2's overlay address, and the route goes when
  that pod is deleted;
* a VTEP annotation someone removes is written again by its node;
* host 1's node is killed with SIGKILL and started again: its pods, VTEP and routes are kept
  and traffic flows as before;
* the hosts' own namespaces never get a 10.x address, nor a 10.x route other than host 0's
  route guard's ``unreachable`` ones.

The podlife processes run in their host's network namespace but in this test's mount
namespace, because ``ip netns exec`` remounts ``/sys``, which would hide the cgroup mounts
runc needs. Everything is removed afterwards, also on failure: the processes by pid (each
gets SIGTERM and must exit 0, taking its pods and namespaces along), whatever a node left
(containers, namespaces), and the hosts. ``ip netns list`` shows none of the test's
namespaces before or after.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from podlife.nodenet import names
from podlife.nodenet.fabric import NodeNetworks, list_netns
from podlife.nodenet.overlay import VTEP_ANNOTATION, overlay_address, parse_vtep, vxlan_link_name

from .cluster_harness import missing, require_tool, wait_for
from .hosts_harness import Host, HostProcess, running_hosts
from .test_multi_host import Kubectl, _exited, node_ready

pytestmark = pytest.mark.e2e

API_PORT = 6443
SERVE = "mkdir -p /tmp/www && echo hello-$(hostname) > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"
TEN = re.compile(r"\b10\.\d+\.\d+\.\d+")


def _require_root_and_oci() -> None:
    from podlife.kubelet.oci.cgroups import detect_layout
    from podlife.kubelet.oci.conmon import find_conmon
    from podlife.kubelet.oci.runc import find_runc
    from podlife.kubelet.oci.runtime import unavailable_reasons

    if os.geteuid() != 0:
        missing("pod networking across hosts needs root (network namespaces)")
    problems = unavailable_reasons(find_runc(), find_conmon(), detect_layout())
    if problems:
        missing("real containers cannot run here: " + "; ".join(problems))


def _join_command(kubectl: Kubectl, host: Host, data: Path) -> tuple[str, str]:
    """(token, CA pin) from ``podlife token create --print-join-command`` run on the control plane's host."""
    out = host.run(sys.executable, "-m", "podlife.cli", "token", "create", "--print-join-command",
                   "--kubeconfig", str(data / "kubeconfig")).stdout
    words = shlex.split(out.replace("\\\n", " "))
    return words[words.index("--token") + 1], words[words.index("--discovery-token-ca-cert-hash") + 1]


def _start_node(host: Host, server: str, token: str, pin: str) -> Path:
    data = host.root / "data"
    token_file = host.root / "token"
    token_file.write_text(token + "\n")
    host.start("node", require_tool("nsenter"), f"--mount=/proc/{os.getpid()}/ns/mnt", "--",
               sys.executable, "-m", "podlife.cli", "node", "--server", server, "--token-file", str(token_file),
               "--discovery-token-ca-cert-hash", pin, "--node-name", f"host{host.index}", "--data-dir", str(data),
               "--container-runtime", "oci", "--discovery-timeout", "2m")
    return data


def _server(name: str, node: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": node}, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "web", "image": "busybox", "command": ["sh", "-c", SERVE]}]}}


def _ready_ip(kubectl: Kubectl, name: str) -> str | None:
    pod = kubectl.json("get", "pod", name)
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or [])
    return pod["status"].get("podIP") if ready else None


def _getter(name: str, node: str, ip: str) -> dict:
    """A one-shot pod on ``node`` that fetches ``ip:8080`` (HTTP/1.0 over busybox ``nc``) into its termination
    message, which its kubelet reports in the pod's status."""
    fetch = f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {ip} 8080 > /dev/termination-log"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": node}, "restartPolicy": "Never",
                     "containers": [{"name": "get", "image": "busybox", "command": ["sh", "-c", fetch]}]}}


def _fetched(kubectl: Kubectl, name: str) -> str | None:
    """The page the getter pod ``name`` fetched, once it has ended (an AssertionError if it failed)."""
    statuses = kubectl.json("get", "pod", name)["status"].get("containerStatuses") or []
    ended = (statuses[0].get("state") or {}).get("terminated") if statuses else None
    if not ended:
        return None
    reply = str(ended.get("message") or "")
    head, _, body = reply.replace("\r\n", "\n").partition("\n\n")
    assert ended.get("exitCode") == 0 and head.startswith("HTTP/1.1 200"), ended
    return body.strip()


def _fetch(kubectl: Kubectl, client_node: str, ip: str, name: str) -> str:
    kubectl("apply", "-f", "-", input=yaml.safe_dump(_getter(name, client_node, ip)))
    return wait_for(lambda: _fetched(kubectl, name), 90, what=f"pod {name} on {client_node} to fetch from {ip}")


def _fabric_routes(data: Path) -> str:
    fabric = names.fabric_netns_name(names.cluster_id(data))
    device = vxlan_link_name(names.cluster_id(data))
    return _ip_out("-n", fabric, "route", "show", "dev", device)


def _ip_out(*args: str) -> str:
    import subprocess

    return subprocess.run([require_tool("ip"), *args], capture_output=True, text=True, timeout=30, check=True).stdout


def _no_ten_in(host: Host) -> None:
    for what in ("route", "addr"):
        shown = _ip_out("-n", host.netns, "-4", what, "show")
        assert not TEN.search(shown), f"host {host.index} got a 10.x {what}:\n{shown}"
    assert vxlan_link_name("") not in _ip_out("-n", host.netns, "link", "show")  # the device lives in the fabric


def _no_ten_but_unreachable_in(host: Host) -> None:
    """``podlife up``'s host: no 10.x address; its only 10.x routes are the route guard's ``unreachable`` ones."""
    shown = _ip_out("-n", host.netns, "-4", "addr", "show")
    assert not TEN.search(shown), f"host {host.index} got a 10.x address:\n{shown}"
    routes = [line for line in _ip_out("-n", host.netns, "-4", "route", "show").splitlines() if TEN.search(line)]
    assert all(line.startswith("unreachable ") for line in routes), routes
    assert vxlan_link_name("") not in _ip_out("-n", host.netns, "link", "show")


def _last(host: Host, name: str) -> HostProcess:
    """The process ``name`` started last on ``host``."""
    return [p for p in host.processes if p.name == name][-1]


def _in_our_mounts(*argv: str) -> list[str]:
    """``argv`` in this test's mount namespace (its host's network namespace stays): cgroups and all."""
    return [require_tool("nsenter"), f"--mount=/proc/{os.getpid()}/ns/mnt", "--", *argv]


def _start_control_plane(h0: Host) -> Path:
    """``podlife up`` on host 0 with one local node of real containers, on the LAN address; its data dir."""
    data = h0.root / "data"
    process = h0.start("up", *_in_our_mounts(
        sys.executable, "-m", "podlife.cli", "up", "--data-dir", str(data), "--host", h0.address,
        "--port", str(API_PORT), "--nodes", "1", "--container-runtime", "oci"))
    wait_for(lambda: _exited(process) or (data / "kubeconfig").exists(), 120, what="podlife up to write its kubeconfig")
    return data


def _exec_fetch(kubectl: Kubectl, pod: str, ip: str) -> str:
    """The page ``pod`` gets from ``ip:8080``, through ``kubectl exec`` (pods of the control plane's local node)."""
    reply = kubectl("exec", pod, "--", "sh", "-c", f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {ip} 8080")
    head, _, body = reply.replace("\r\n", "\n").partition("\n\n")
    assert head.startswith("HTTP/1.1 200"), reply
    return body.strip()


@contextlib.contextmanager
def _nodes_cleaned(data_dirs: list[Path]) -> Iterator[None]:
    """After the hosts are gone: whatever a node left (containers, its namespaces) is removed, then named."""
    from podlife.kubelet.oci.runtime import OCIRuntime

    try:
        yield
    finally:
        left: list[str] = []
        for data in data_dirs:
            nodes = data / "nodes"
            roots = [data / "kubelet", *(nodes.iterdir() if nodes.is_dir() else [])]
            for root in (r for r in roots if r.is_dir()):
                runtime = OCIRuntime(root)
                left += [s.id for s in asyncio.run(runtime.runc.list())]
                asyncio.run(runtime.remove_everything())
            prefix = names.cluster_netns_prefix(names.cluster_id(data))
            left += [n for n in list_netns() if n.startswith(prefix)]
            NodeNetworks(data, []).teardown()
        assert not left, f"left behind by the nodes: {left}"


def test_pods_on_different_hosts_reach_each_other_over_the_overlay(tmp_path: Path) -> None:
    _require_root_and_oci()
    data_dirs = [tmp_path / f"h{i}" / "data" for i in (0, 1, 2)]
    ours = [names.cluster_netns_prefix(names.cluster_id(d)) for d in data_dirs]
    assert not [n for n in list_netns() if n.startswith(tuple(ours))]  # `ip netns list` before: none of ours
    with _nodes_cleaned(data_dirs), running_hosts(tmp_path, 3) as hosts:
        h0, h1, h2 = hosts
        ours.append(h0.netns.rsplit("-", 1)[0] + "-")  # the hosts' and their LAN's
        assert {n for n in list_netns() if n.startswith(tuple(ours))} == {h.netns for h in hosts} | {h0.lan}
        data0 = _start_control_plane(h0)
        kubectl = Kubectl(h0, data0 / "kubeconfig")
        wait_for(lambda: kubectl("get", "--raw", "/readyz", check=False) == "ok", 60, what="the API server")
        token, pin = _join_command(kubectl, h0, data0)
        server = f"https://{h0.address}:{API_PORT}"
        for host in (h1, h2):
            _start_node(host, server, token, pin)
        local = wait_for(lambda: [n["metadata"]["name"] for n in kubectl.json("get", "nodes")["items"]
                                  if not n["metadata"]["name"].startswith("host")], 60, what="host 0's local node")[0]
        nodes = {"host1": h1, "host2": h2, local: h0}
        for node in sorted(nodes):
            wait_for(lambda node=node: node_ready(kubectl, node) == "True", 120, what=f"node {node} Ready")

        # every node published its VTEP: the device's MAC, its host's address, the overlay address from it
        for name, host in nodes.items():
            node = wait_for(lambda name=name: (n := kubectl.json("get", "node", name))
                            ["metadata"].get("annotations", {}).get(VTEP_ANNOTATION) and n, 60,
                            what=f"{name}'s VTEP annotation")
            vtep = parse_vtep(node)
            assert vtep is not None and vtep.ip == host.address and vtep.address == overlay_address(host.address)

        pods = {"web-a": "host1", "web-b": "host2", "web-c": "host1", "web-0": local}
        for name, node in pods.items():
            kubectl("apply", "-f", "-", input=yaml.safe_dump(_server(name, node)))
        ips = {name: wait_for(lambda name=name: _ready_ip(kubectl, name), 120, what=f"pod {name} Ready")
               for name in pods}
        placed = {name: kubectl.json("get", "pod", name)["spec"]["nodeName"] for name in pods}
        assert placed == pods

        # host 1's fabric routes host 2's pod via host 2's overlay address (and the other way round)
        wait_for(lambda: f"{ips['web-b']} via {overlay_address(h2.address)}" in _fabric_routes(data_dirs[1]), 30,
                 what="host 1's route to web-b")
        wait_for(lambda: f"{ips['web-a']} via {overlay_address(h1.address)}" in _fabric_routes(data_dirs[2]), 30,
                 what="host 2's route to web-a")
        # from a pod's own network namespace, as traffic of the pod: one-shot pods report what they fetched
        assert _fetch(kubectl, "host1", ips["web-b"], "get-b-from-1") == "hello-web-b"  # host 1 -> host 2
        assert _fetch(kubectl, "host2", ips["web-a"], "get-a-from-2") == "hello-web-a"  # host 2 -> host 1
        assert _fetch(kubectl, "host2", ips["web-c"], "get-c-from-2") == "hello-web-c"
        assert _fetch(kubectl, "host1", ips["web-a"], "get-a-from-1") == "hello-web-a"  # on one node
        assert _fetch(kubectl, "host2", ips["web-0"], "get-0-from-2") == "hello-web-0"  # host 2 -> host 0
        # host 0's local node takes part too, and its kubelet is on loopback: kubectl exec works there
        assert _exec_fetch(kubectl, "web-0", ips["web-a"]) == "hello-web-a"  # host 0 -> host 1
        assert _exec_fetch(kubectl, "web-0", ips["web-b"]) == "hello-web-b"  # host 0 -> host 2

        for host in (h1, h2):
            _no_ten_in(host)
        _no_ten_but_unreachable_in(h0)

        # a VTEP annotation removed by someone is written again by its node
        kubectl("annotate", "node", "host2", f"{VTEP_ANNOTATION}-")
        wait_for(lambda: parse_vtep(kubectl.json("get", "node", "host2")) is not None, 30,
                 what="host 2's VTEP annotation to come back")

        # host 1's node crashes (kill -9: its namespaces, device and containers stay) and starts again: it keeps
        # its pods, its VTEP and its routes, and traffic flows as before
        vtep1 = parse_vtep(kubectl.json("get", "node", "host1"))
        next(p for p in h1.processes if p.name == "node").kill()
        _start_node(h1, server, token, pin)
        wait_for(lambda: _last(h1, "node").log().count("pod network in") == 2, 120,  # one log for both runs
                 what="host 1's node to start again")
        assert _last(h1, "node").running() and node_ready(kubectl, "host1") == "True"
        assert _fetch(kubectl, "host2", ips["web-a"], "get-a-from-2-again") == "hello-web-a"
        assert _fetch(kubectl, "host1", ips["web-b"], "get-b-from-1-again") == "hello-web-b"
        assert parse_vtep(kubectl.json("get", "node", "host1")) == vtep1

        kubectl("delete", "pod", "web-b", "--wait=false")
        for data in (data_dirs[0], data_dirs[1]):
            wait_for(lambda data=data: ips["web-b"] not in _fabric_routes(data), 60,
                     what="the route to the deleted web-b to go")

        for host in (h2, h1, h0):  # SIGTERM: each stops its pods and deletes its namespaces, exit code 0
            process = _last(host, "node") if host is not h0 else _last(host, "up")
            code = process.stop(60)
            assert code == 0, process.log()[-3000:]
            prefix = names.cluster_netns_prefix(names.cluster_id(host.root / "data"))
            assert not [n for n in list_netns() if n.startswith(prefix)]
        log = _last(h1, "node").log()
        assert f"pod network in {names.node_netns_name(names.cluster_id(data_dirs[1]), 0)}" in log, log[-3000:]
    # other tests may make and delete namespaces meanwhile: what matters is that none of ours is left
    assert not [n for n in list_netns() if n.startswith(tuple(ours))], list_netns()
