"""The CNI split: the ``podlife-cni`` shim forwarding to a real :class:`CNIDaemon` (root, real namespaces).

The world is :mod:`tests.test_cni_plugin`'s (an in-process API with the bootstrap RBAC
policy, the Node authorizer and NodeRestriction; a node namespace joined to a fabric; pod
namespaces). The daemon reads the API as the node (``system:node:host-1``) through the
in-process client, as the cluster wires it. Requests sent to the daemon carry a kubeconfig
path that does not exist: the standalone plugin would fail with code 7, so a success proves
the daemon did the work.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from podlife.api.identity import node_user
from podlife.nodenet import names
from podlife.nodenet.fabric import plan_networks
from podlife.nodenet.cni.daemon import MAX_SOCKET_PATH, CNIDaemon, parse_request, socket_path_for
from podlife.nodenet.cni.spec import CniError
from tests.cluster_harness import async_wait_for
from tests import test_cni_plugin as plugin_tests
from tests.test_cni_plugin import GATEWAY, NODE, NODE2, World, cni, inet, links

# the plugin tests' fixtures: root, the namespaces and the API
_root, netns, world = plugin_tests._root, plugin_tests.netns, plugin_tests.world

NO_KUBECONFIG = "/nonexistent/podlife-cni-test.conf"
#: what the shim path must not import (each costs per pod start)
HEAVY = ("ssl", "subprocess", "dataclasses", "asyncio", "typing", "ipaddress", "podlife.nodenet.cni.spec",
         "podlife.nodenet.cni.api", "podlife.nodenet.cni.plumbing")


@pytest.fixture
async def daemon(world: World, tmp_path: Path) -> AsyncIterator[CNIDaemon]:
    client = world.api.client.as_user(node_user(NODE), user_agent="podlife-cni")
    cni_daemon = CNIDaemon(client, NODE, socket_path_for(tmp_path / "nodes" / NODE))
    await cni_daemon.start()
    try:
        yield cni_daemon
    finally:
        await cni_daemon.stop()
    assert not cni_daemon.socket_path.exists()


def via(world: World, daemon: CNIDaemon, **extra: Any) -> dict[str, Any]:
    return world.config(daemonSocket=str(daemon.socket_path), kubeconfig=NO_KUBECONFIG, **extra)


async def test_add_check_del_through_the_daemon(world: World, daemon: CNIDaemon) -> None:
    assert daemon.socket_path.stat().st_mode & 0o777 == 0o600
    pod = await world.pod("via-daemon")
    sandbox = names.netns_path(world.netns.add("d1"))

    answer = await cni("ADD", via(world, daemon), pod, sandbox)
    assert answer.returncode == 0, answer
    result = answer.doc
    assert result is not None and result["cniVersion"] == "1.0.0"
    assert result["interfaces"][1] == {"name": "eth0", "mac": pod.mac, "sandbox": sandbox}
    assert result["ips"] == [{"address": f"{pod.ip}/24", "gateway": GATEWAY, "interface": 1}]
    eth0 = links(sandbox)["eth0"]
    assert eth0["address"] == pod.mac and inet(eth0) == [f"{pod.ip}/24"]
    assert pod.host_end in links(names.netns_path(world.node_ns))
    await async_wait_for(lambda: _phase_is(world, pod, "ACTIVE"), timeout=10)

    check = await cni("CHECK", via(world, daemon), pod, sandbox)  # no prevResult: the pod from the daemon's cache
    assert check.returncode == 0 and check.stdout == "", check

    gone = await cni("DEL", via(world, daemon), pod, sandbox)
    assert gone.returncode == 0 and gone.stdout == "", gone
    assert pod.host_end not in links(names.netns_path(world.node_ns))
    assert "eth0" not in links(sandbox)


async def _phase_is(world: World, pod: Any, phase: str) -> bool:
    return await world.port_phase(pod) == phase


async def test_missing_annotation_is_try_again_later_via_the_daemon(world: World, daemon: CNIDaemon) -> None:
    pod = await world.pod("early", annotate=False)
    sandbox = names.netns_path(world.netns.add("d2"))
    answer = await cni("ADD", via(world, daemon), pod, sandbox)
    assert answer.returncode == 1 and answer.doc is not None, answer
    assert answer.doc["code"] == 11 and answer.doc["msg"] == "port annotation not present yet"
    assert "eth0" not in links(sandbox)

    await world.annotate(pod)  # the controller catches up: the daemon's informer has it
    await async_wait_for(lambda: _annotated_in_cache(daemon, pod.namespace, pod.name), timeout=10)
    again = await cni("ADD", via(world, daemon), pod, sandbox)
    assert again.returncode == 0, again
    assert links(sandbox)["eth0"]["address"] == pod.mac


def _annotated_in_cache(daemon: CNIDaemon, namespace: str, name: str) -> bool:
    cached = daemon.informer.get(namespace, name) or {}
    return bool((cached.get("metadata") or {}).get("annotations"))


async def test_the_daemon_refuses_another_nodes_configuration(world: World, daemon: CNIDaemon) -> None:
    pod = await world.pod("elsewhere", node=NODE2)
    sandbox = names.netns_path(world.netns.add("d3"))
    answer = await cni("ADD", via(world, daemon, nodeName=NODE2), pod, sandbox)
    assert answer.returncode == 1 and answer.doc is not None and answer.doc["code"] == 7, answer
    assert NODE2 in answer.doc["details"]


async def test_the_shim_falls_back_to_standalone(world: World, tmp_path: Path) -> None:
    pod = await world.pod("alone")
    sandbox = names.netns_path(world.netns.add("d4"))
    answer = await cni("ADD", world.config(daemonSocket=str(tmp_path / "absent.sock")), pod, sandbox)
    assert answer.returncode == 0, answer
    assert links(sandbox)["eth0"]["address"] == pod.mac
    assert await world.port_phase(pod) == "ACTIVE"

    refusing = _short_socket_path()  # a socket file nobody listens on (a daemon killed with -9)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        stale.bind(str(refusing))
        stale.close()
        other = await world.pod("alone-2")
        sandbox2 = names.netns_path(world.netns.add("d5"))
        answer = await cni("ADD", world.config(daemonSocket=str(refusing)), other, sandbox2)
        assert answer.returncode == 0, answer
        assert links(sandbox2)["eth0"]["address"] == other.mac
        # and standalone really is standalone: without a kubeconfig it cannot read the pod
        third = await world.pod("alone-3")
        failed = await cni("ADD", world.config(daemonSocket=str(refusing), kubeconfig=NO_KUBECONFIG), third,
                           names.netns_path(world.netns.add("d6")))
        assert failed.returncode == 1 and failed.doc is not None and failed.doc["code"] == 7, failed
    finally:
        refusing.unlink(missing_ok=True)


def _short_socket_path() -> Path:
    return Path("/tmp") / f"plcni-{secrets.token_hex(4)}.sock"


async def test_the_shim_imports_only_the_standard_library_it_needs(world: World, daemon: CNIDaemon) -> None:
    """Forwarding (a DEL the daemon answers) adds none of the heavy modules to the interpreter."""
    del world
    probe = (
        "import json, os, sys\n"
        "before = set(sys.modules)\n"
        "from podlife.nodenet.cni import main\n"
        "answer = main.forward(os.environ, sys.stdin.buffer.read())\n"
        "print(json.dumps({'answer': answer, 'new': sorted(set(sys.modules) - before)}))\n")
    env = {"PATH": os.environ.get("PATH", ""), "CNI_COMMAND": "DEL", "CNI_CONTAINERID": "sandbox-x", "CNI_NETNS": "",
           "CNI_IFNAME": "eth0", "CNI_ARGS": "K8S_POD_NAMESPACE=default;K8S_POD_NAME=x;K8S_POD_UID=uid-x"}
    conf = json.dumps({"cniVersion": "1.0.0", "name": "podlife", "type": "podlife-cni", "nodeName": NODE,
                       "nodeNetns": "plcni-absent", "daemonSocket": str(daemon.socket_path)}).encode()
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", probe, env=env, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(conf), 30)
    assert proc.returncode == 0, err.decode()
    report = json.loads(out)
    assert report["answer"] == [0, ""], report  # the daemon answered (a DEL of nothing succeeds)
    heavy = [m for m in report["new"] if m in HEAVY or m.split(".")[0] in HEAVY]
    assert heavy == [], report["new"]


def test_socket_paths_and_requests() -> None:
    short = socket_path_for(Path("/var/lib/podlife/nodes/n1"))
    assert short == Path("/var/lib/podlife/nodes/n1/cni.sock")
    deep = Path("/tmp/" + "d" * 120 + "/nodes/n1")
    long_path = socket_path_for(deep)
    assert len(os.fsencode(long_path)) <= MAX_SOCKET_PATH and long_path == socket_path_for(deep)
    assert long_path != socket_path_for(Path("/tmp/" + "e" * 120 + "/nodes/n1"))

    env, config = parse_request(json.dumps({"env": {"CNI_COMMAND": "DEL"}, "config": {"nodeName": "n1"}}).encode(), "n1")
    assert env == {"CNI_COMMAND": "DEL"} and config == {"nodeName": "n1"}
    for bad, code in ((b"not json", 6), (b'{"env": {"A": 1}, "config": {}}', 6), (b'{"env": {}, "config": []}', 6),
                      (b'{"env": {}, "config": {"nodeName": "n2"}}', 7)):
        with pytest.raises(CniError) as raised:
            parse_request(bad, "n1")
        assert raised.value.code == code, bad


def test_the_node_config_names_the_daemon_socket() -> None:
    net = plan_networks("abc123", ["a", "b"])[1]
    plain = net.cni_config(Path("/d/kubeconfigs/node-b.conf"))
    assert "daemonSocket" not in plain
    forwarded = net.cni_config(Path("/d/kubeconfigs/node-b.conf"), daemon_socket=Path("/d/nodes/b/cni.sock"))
    assert forwarded == {**plain, "daemonSocket": "/d/nodes/b/cni.sock"}
