"""One cluster over three hosts (network namespaces on a bridge), on a three-member etcd.

The layout an operator would build on three machines (tests/hosts_harness.py):

- every host runs an etcd member on its LAN address, one cluster of three;
- host 0 runs ``podlife up`` (an API server with the scheduler and the controllers);
  hosts 1 and 2 each run a ``podlife server`` (one more API server on the same etcd);
- hosts 1 and 2 each run a node agent (``podlife sim``, one node each). Host 1's
  agent talks through ``podlife apiserver-proxy`` (its own server first, then host 0's).
  Host 2's agent talks to its own server only.

Then, as on real machines: pods spread over both hosts' nodes. Host 2's cable is pulled:
its etcd member and API server are cut off, its node goes NotReady, and its pod is
recreated on host 1. The other two etcd members keep the quorum, so the cluster keeps
working. Host 1's API server is killed: its node agent fails over through the proxy to
host 0's server, and its node stays Ready.

kubectl runs on host 0, with the kubeconfig ``podlife up`` wrote there. Every process
and namespace is removed afterwards, also when the test fails.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from .cluster_harness import require_tool, wait_for
from .hosts_harness import Host, HostProcess, running_hosts

API_PORT = 6443
PROXY_PORT = 6440

DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": {
        "metadata": {"labels": {"app": "web"}},
        "spec": {
            "containers": [{"name": "web", "image": "registry.k8s.io/pause:3.9"}],
            "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                           "whenUnsatisfiable": "ScheduleAnyway",
                                           "labelSelector": {"matchLabels": {"app": "web"}}}],
            # gone quickly from an unreachable node (the default is 300 s)
            "tolerations": [{"key": f"node.kubernetes.io/{taint}", "operator": "Exists", "effect": "NoExecute",
                             "tolerationSeconds": 1} for taint in ("unreachable", "not-ready")]}}}}


def store_url(hosts: list[Host], first: Host) -> str:
    """All members, the server's own host first (its nearest member)."""
    ordered = [first, *(h for h in hosts if h is not first)]
    return "etcd://" + ",".join(f"{h.address}:2379" for h in ordered)


def start_etcd(host: Host, hosts: list[Host], token: str) -> HostProcess:
    peers = ",".join(f"m{h.index}=http://{h.address}:2380" for h in hosts)
    return host.start("etcd", require_tool("etcd"), "--name", f"m{host.index}", "--data-dir", str(host.root / "etcd"),
                      "--listen-client-urls", f"http://{host.address}:2379,http://127.0.0.1:2379",
                      "--advertise-client-urls", f"http://{host.address}:2379",
                      "--listen-peer-urls", f"http://{host.address}:2380",
                      "--initial-advertise-peer-urls", f"http://{host.address}:2380",
                      "--initial-cluster", peers, "--initial-cluster-token", token, "--initial-cluster-state", "new")


def etcd_healthy(host: Host) -> bool:
    done = host.run(require_tool("etcdctl"), "--endpoints", "http://127.0.0.1:2379", "endpoint", "health",
                    check=False, timeout=20)
    return done.returncode == 0 and "is healthy" in done.stdout + done.stderr


def start_podlife(host: Host, name: str, *args: str) -> Path:
    """``podlife ARGS`` on ``host``; for ``up``/``server``, waits for the kubeconfig and returns the data dir."""
    data = host.root / "data"
    process = host.start(name, sys.executable, "-m", "podlife.cli", *args)
    if args[0] in ("up", "server"):
        wait_for(lambda: process.running() or _exited(process), 5)
        wait_for(lambda: _exited(process) or (data / "kubeconfig").exists(), 120,
                 what=f"{name} on host {host.index} to write its kubeconfig")
    return data


def _exited(process: HostProcess) -> bool:
    if not process.running():
        raise AssertionError(f"{process.name} exited with {process.proc.returncode}:\n{process.log()[-3000:]}")
    return False


def server_args(host: Host, hosts: list[Host], command: str) -> list[str]:
    return [command, "--data-dir", str(host.root / "data"), "--host", host.address, "--port", str(API_PORT),
            "--store", store_url(hosts, host)]


def pointed_at(kubeconfig: Path, server: str, path: Path) -> Path:
    config = yaml.safe_load(kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = server
    path.write_text(yaml.safe_dump(config))
    return path


class Kubectl:
    """kubectl on a host with a kubeconfig."""

    def __init__(self, host: Host, kubeconfig: Path) -> None:
        self.host, self.kubeconfig, self.bin = host, kubeconfig, require_tool("kubectl")

    def __call__(self, *args: str, check: bool = True, input: str | None = None) -> str:
        return self.host.run(self.bin, "--kubeconfig", str(self.kubeconfig), "--request-timeout=20s", *args,
                             check=check, input=input).stdout

    def json(self, *args: str) -> dict:
        return json.loads(self(*args, "-o", "json"))


def node_ready(kubectl: Kubectl, name: str) -> str:
    node = kubectl.json("get", "node", name)
    return next((c["status"] for c in node["status"].get("conditions") or [] if c["type"] == "Ready"), "")


def web_pods(kubectl: Kubectl) -> dict[str, str]:
    """The Deployment's pods that are not being deleted: name -> node."""
    return {p["metadata"]["name"]: p["spec"].get("nodeName", "") for p in kubectl.json("get", "pods", "-l", "app=web")["items"]
            if not p["metadata"].get("deletionTimestamp")}


def lease_renewed(kubectl: Kubectl, node: str) -> str:
    return kubectl("get", "lease", "-n", "kube-node-lease", node, "-o", "jsonpath={.spec.renewTime}", check=False)


def test_a_cluster_over_three_hosts_survives_a_lost_host_and_a_lost_api_server(tmp_path: Path) -> None:
    with running_hosts(tmp_path, 3) as hosts:
        h0, h1, h2 = hosts
        for host in hosts:
            start_etcd(host, hosts, token=tmp_path.name)
        for host in hosts:
            wait_for(lambda host=host: etcd_healthy(host), 60, what=f"etcd member on host {host.index}")

        data0 = start_podlife(h0, "up", *server_args(h0, hosts, "up"), "--nodes", "0",
                              "--node-monitor-grace-period", "6s", "--node-monitor-period", "1s")
        kubectl = Kubectl(h0, data0 / "kubeconfig")
        wait_for(lambda: kubectl("get", "--raw", "/readyz", check=False) == "ok", 60, what="host 0's API server")
        data1 = start_podlife(h1, "server", *server_args(h1, hosts, "server"))
        data2 = start_podlife(h2, "server", *server_args(h2, hosts, "server"))

        # host 1's node agent through the proxy (its own server first), host 2's straight to its own server
        h1.start("proxy", sys.executable, "-m", "podlife.cli", "apiserver-proxy", "--listen",
                 f"127.0.0.1:{PROXY_PORT}", "--health-interval", "0.2",
                 "--server", f"https://{h1.address}:{API_PORT}", "--server", f"https://{h0.address}:{API_PORT}")
        sim1_config = pointed_at(data1 / "kubeconfigs" / "node-simulator.conf", f"https://127.0.0.1:{PROXY_PORT}",
                                 h1.root / "sim-via-proxy.conf")
        for host, config in ((h1, sim1_config), (h2, data2 / "kubeconfigs" / "node-simulator.conf")):
            host.start("sim", sys.executable, "-m", "podlife.cli", "sim", "--kubeconfig", str(config), "--nodes", "1",
                       "--name-prefix", f"host{host.index}", "--node-lease-duration-seconds", "4")
        for node in ("host1-0", "host2-0"):
            wait_for(lambda node=node: node_ready(kubectl, node) == "True", 90, what=f"node {node} Ready")

        # pods are spread over both hosts' nodes
        kubectl("apply", "-f", "-", input=yaml.safe_dump(DEPLOYMENT))
        placed = wait_for(lambda: (lambda pods: pods if len(pods) == 2 and all(pods.values()) else None)(
            web_pods(kubectl)), 90, what="two scheduled web pods")
        assert sorted(placed.values()) == ["host1-0", "host2-0"], placed

        # host 2 loses its network: its node goes NotReady, its pod comes back on host 1; the cluster keeps working
        h2.cut_off()
        wait_for(lambda: node_ready(kubectl, "host2-0") == "Unknown", 90, what="host2-0 to go unhealthy")
        try:
            wait_for(lambda: (lambda pods: len(pods) == 2 and set(pods.values()) == {"host1-0"})(web_pods(kubectl)), 120,
                     what="both web pods on host1-0")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{kubectl('get', 'pods', '-o', 'wide', check=False)}\n"
                                 f"{kubectl('get', 'node', 'host2-0', '-o', 'jsonpath={.spec.taints}', check=False)}\n"
                                 f"{kubectl('get', 'events', check=False)[-3000:]}") from None
        kubectl("create", "configmap", "after-cut", "--from-literal=k=v")  # 2 of 3 etcd members: a quorum

        # host 1's API server dies: its node agent fails over through the proxy to host 0's, and stays Ready
        server1 = next(p for p in h1.processes if p.name == "server")
        server1.kill()
        before = lease_renewed(kubectl, "host1-0")
        wait_for(lambda: lease_renewed(kubectl, "host1-0") not in ("", before), 60,
                 what="host1-0's Lease renewed after its API server died")
        assert node_ready(kubectl, "host1-0") == "True"
        proxy_log = next(p for p in h1.processes if p.name == "proxy").log()
        assert f"API server {h1.address}:{API_PORT} is down" in proxy_log, proxy_log
