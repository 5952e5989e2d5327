"""Pod networking for real: ``podlife up --nodes 2 --container-runtime oci``, driven with kubectl.

One two-node cluster for the module. The kubelets plug each pod's sandbox into its node's
network namespace with ``podlife-cni``; the tests check the seed's step 4 (``kubectl exec``
shows the Port's IP and MAC on ``eth0``), that the Port turns ACTIVE, that pods reach each
other by pod IP over TCP across nodes and on one node (busybox ``httpd`` and ``wget``, all
inside the namespaces podlife made), and that the cluster's namespaces are gone after a
SIGTERM -- also after a ``kill -9`` and a restart on the same data dir, which first re-adopts
the running pods with their network intact.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from podlife.nodenet import names
from podlife.nodenet.fabric import NodeNetworks, list_netns

from .cluster_harness import PodlifeProcess, missing, wait_for
from .test_e2e_containers import apply, delete, exec_out, oci_cluster, wait_ready

pytestmark = pytest.mark.e2e

SERVE = "mkdir -p /tmp/www && echo hello-$(hostname) > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"
EVENT_MESSAGE = re.compile(r'^Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network '
                           r'for sandbox "[0-9a-f]+": plugin type="podlife-cni" failed \(add\): .+')


def _cluster_netns(data_dir: Path) -> list[str]:
    prefix = names.cluster_netns_prefix(names.cluster_id(data_dir))
    return [n for n in list_netns() if n.startswith(prefix)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    if os.geteuid() != 0:
        missing("pod networking needs root (network namespaces)")
    data_dir = tmp_path_factory.mktemp("podnet") / "data"
    try:
        with oci_cluster(data_dir, "--nodes", "2") as proc:
            yield proc
        left = _cluster_netns(data_dir)
        assert not left, f"network namespaces left behind by podlife up: {left}"
    finally:
        NodeNetworks(data_dir, []).teardown()


def _nodes(cluster: PodlifeProcess) -> list[str]:
    return sorted(n["metadata"]["name"] for n in cluster.kubectl_json("get", "nodes")["items"])


def _server(name: str, node: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"test": "podnet"}},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "web", "image": "busybox", "command": ["sh", "-c", SERVE]}]}}


def _port(cluster: PodlifeProcess, name: str) -> dict:
    return cluster.kubectl_json("get", "port", name)


def _pod_ip(cluster: PodlifeProcess, name: str) -> str:
    return str(cluster.kubectl_json("get", "pod", name)["status"]["podIP"])


def _fetch(cluster: PodlifeProcess, client: str, ip: str) -> str:
    """The page ``client`` gets from ``ip:8080`` (an HTTP/1.0 GET over busybox ``nc``: its ``wget`` crashes on Debian)."""
    reply = exec_out(cluster, client, "sh", "-c", f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {ip} 8080")
    head, _, body = reply.replace("\r\n", "\n").partition("\n\n")
    assert head.startswith("HTTP/1.1 200"), reply
    return body.strip()


def _start(cluster: PodlifeProcess, pods: dict[str, str]) -> None:
    for name, node in pods.items():
        apply(cluster, _server(name, node))
    for name in pods:
        wait_ready(cluster, name, 90)


def test_pods_get_their_ports_address_and_reach_each_other(cluster: PodlifeProcess) -> None:
    first, second = _nodes(cluster)
    pods = {"net-a": first, "net-b": second, "net-c": first}
    try:
        _start(cluster, pods)
        for name in pods:
            port = _port(cluster, name)
            ip, mac = port["spec"]["fixedIPs"][0]["ipAddress"], port["spec"]["macAddress"]
            assert _pod_ip(cluster, name) == ip
            # the seed's step 4: the container sees the port's IP and MAC on eth0
            assert exec_out(cluster, name, "cat", "/sys/class/net/eth0/address").strip() == mac
            addresses = exec_out(cluster, name, "ip", "-o", "-4", "addr", "show", "dev", "eth0")
            assert re.search(rf"inet {re.escape(ip)}/\d+", addresses), addresses
            wait_for(lambda n=name: str((_port(cluster, n).get("status") or {}).get("phase")).upper() == "ACTIVE",
                     30, what=f"port {name} ACTIVE")
        ip_a = _pod_ip(cluster, "net-a")
        assert _fetch(cluster, "net-b", ip_a) == "hello-net-a"  # across nodes, through the fabric
        assert _fetch(cluster, "net-c", ip_a) == "hello-net-a"  # on one node
        assert _fetch(cluster, "net-a", _pod_ip(cluster, "net-b")) == "hello-net-b"
        _node_may_touch_only_its_own_ports(cluster, first, own="net-a", other="net-b")
        events = cluster.kubectl_json("get", "events", "--field-selector", "reason=FailedCreatePodSandBox")["items"]
        for event in events:  # the annotation race, when it happened, in Kubernetes' words
            assert EVENT_MESSAGE.match(event["message"]), event["message"]
    finally:
        delete(cluster, *pods)


def _node_may_touch_only_its_own_ports(cluster: PodlifeProcess, node: str, own: str, other: str) -> None:
    """The CNI plugin's identity (``kubeconfigs/node-<name>.conf``): reads ports, writes only its own ports' status."""
    as_node = ["--kubeconfig", str(cluster.data_dir / "kubeconfigs" / f"node-{node}.conf")]
    assert cluster.kubectl(*as_node, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}",
                           check=False).stdout in (f"system:node:{node}", "")
    assert own in cluster.kubectl(*as_node, "get", "ports").stdout
    active = ["--subresource=status", "--type=merge", "-p", '{"status": {"phase": "ACTIVE"}}']
    assert cluster.kubectl(*as_node, "patch", "port", own, *active, check=False).returncode == 0
    refused = cluster.kubectl(*as_node, "patch", "port", other, *active, check=False)
    assert refused.returncode != 0 and (
        f'node "{node}" can only update ports with spec.nodeName set to itself') in refused.stderr, refused.stderr
    deleted = cluster.kubectl(*as_node, "delete", "port", own, check=False)
    assert deleted.returncode != 0 and "forbidden" in deleted.stderr.lower(), deleted.stderr


def test_namespaces_go_with_sigterm_and_survive_kill_9(cluster: PodlifeProcess) -> None:
    assert len(_cluster_netns(cluster.data_dir)) == 3  # two nodes and the fabric
    cluster.stop()  # SIGTERM
    assert _cluster_netns(cluster.data_dir) == []
    cluster.start()
    first, second = _nodes(cluster)
    pods = {"keep-a": first, "keep-b": second}
    try:
        _start(cluster, pods)
        ip_a = _pod_ip(cluster, "keep-a")
        assert cluster.proc is not None
        os.kill(cluster.proc.pid, signal.SIGKILL)  # the agent only: the containers and namespaces stay
        cluster.proc.wait(10)
        cluster.proc = None
        assert len(_cluster_netns(cluster.data_dir)) == 3
        cluster.start()  # the same namespaces are taken up again, with the pods' veths in them
        wait_for(lambda: cluster.kubectl_json("get", "pod", "keep-b")["status"].get("phase") == "Running", 60,
                 what="keep-b adopted")
        assert _fetch(cluster, "keep-b", ip_a) == "hello-keep-a"
        assert _port(cluster, "keep-a")["spec"]["fixedIPs"][0]["ipAddress"] == ip_a
    finally:
        delete(cluster, *pods)
