"""Services on real pod networking, driven with the real kubectl as a user would.

Two local nodes with real containers; every connection below is made from inside a pod
(``kubectl exec``), never from the host namespace. A Service spreads over its Ready pods
and stops reaching one whose readiness probe fails; Endpoints and EndpointSlices say so;
the cluster DNS answers for Services, headless Services and pods; NodePort answers inside
the node namespace; ClientIP affinity sticks; a NetworkPolicy blocks and allows. One
cluster for the module; each test makes its own objects.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from .cluster_harness import PodlifeProcess, wait_for
from .test_e2e_containers import oci_cluster
from .test_e2e_portforward import free_port, http_get, stop

pytestmark = pytest.mark.e2e

#: a web server answering its pod's hostname, Ready while /tmp/ready exists
WEB_COMMAND = ("mkdir -p /tmp/w && cd /tmp/w && hostname > index.html && touch /tmp/ready"
               " && exec python3 -m http.server 8080")

#: GET http://TARGET/ COUNT times from inside a pod, print one answer per line ("-" for a failure)
FETCH = """
import sys, urllib.request
target, count = sys.argv[1], int(sys.argv[2])
for _ in range(count):
    try:
        print(urllib.request.urlopen(f"http://{target}/", timeout=2).read().decode().strip())
    except OSError:
        print("-")
"""

#: resolve NAME inside a pod: every address, sorted, comma-separated ("-" when it does not resolve)
RESOLVE = """
import socket, sys
try:
    print(",".join(sorted({a[4][0] for a in socket.getaddrinfo(sys.argv[1], 80, socket.AF_INET, socket.SOCK_STREAM)})))
except OSError:
    print("-")
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    with oci_cluster(tmp_path_factory.mktemp("services") / "data", "--nodes", "2") as proc:
        yield proc


def apply(cluster: PodlifeProcess, *objects: dict[str, Any]) -> None:
    """``kubectl apply`` of a multi-document stream, as a user's manifest file would be."""
    cluster.kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(o) for o in objects))


def web_pod(name: str, labels: dict[str, str], node: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1, **spec, "containers": [{
                "name": "c", "image": "python", "command": ["sh", "-c", WEB_COMMAND],
                "ports": [{"containerPort": 8080, "name": "http"}],
                "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1}}]}}


def client_pod(name: str, node: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "c", "image": "python", "command": ["sleep", "3600"]}]}}


def service(name: str, selector: dict[str, str], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": selector, "ports": [{"name": "web", "port": 80, "targetPort": "http"}], **spec}}


def nodes(cluster: PodlifeProcess) -> list[str]:
    return sorted(n["metadata"]["name"] for n in cluster.kubectl_json("get", "nodes")["items"])


def ready(cluster: PodlifeProcess, *pods: str) -> None:
    cluster.kubectl("wait", "--for=condition=Ready", *[f"pod/{p}" for p in pods], "--timeout=90s", timeout=100)


def pod_ip(cluster: PodlifeProcess, name: str) -> str:
    return cluster.kubectl("get", "pod", name, "-o", "jsonpath={.status.podIP}").stdout.strip()


def fetch(cluster: PodlifeProcess, client: str, target: str, count: int = 1) -> list[str]:
    """What ``count`` GETs of ``target`` answer, made inside the ``client`` pod."""
    out = cluster.kubectl("exec", client, "--", "python3", "-c", FETCH, target, str(count), timeout=90).stdout
    return out.split()


def resolve(cluster: PodlifeProcess, client: str, name: str) -> str:
    return cluster.kubectl("exec", client, "--", "python3", "-c", RESOLVE, name).stdout.strip()


def endpoint_ips(cluster: PodlifeProcess, name: str, field: str = "addresses") -> list[str]:
    subsets = cluster.kubectl_json("get", "endpoints", name).get("subsets") or []
    return sorted(a["ip"] for s in subsets for a in s.get(field) or [])


def slice_conditions(cluster: PodlifeProcess, name: str) -> dict[str, dict[str, bool]]:
    slices = cluster.kubectl_json("get", "endpointslices", "-l", f"kubernetes.io/service-name={name}")["items"]
    return {e["targetRef"]["name"]: e["conditions"] for s in slices for e in s.get("endpoints") or []}


def delete(cluster: PodlifeProcess, *what: str) -> None:
    cluster.kubectl("delete", *what, "--wait=true", "--ignore-not-found", timeout=90)


def test_a_service_spreads_over_ready_pods_and_follows_readiness(cluster: PodlifeProcess) -> None:
    first, second = nodes(cluster)
    apply(cluster, web_pod("spread-a", {"app": "spread"}, first), web_pod("spread-b", {"app": "spread"}, second),
          client_pod("spread-client", first), service("spread", {"app": "spread"}))
    try:
        ready(cluster, "spread-a", "spread-b", "spread-client")
        ip_a, ip_b = pod_ip(cluster, "spread-a"), pod_ip(cluster, "spread-b")
        wait_for(lambda: endpoint_ips(cluster, "spread") == sorted([ip_a, ip_b]), 30, what="both pods as endpoints")
        assert slice_conditions(cluster, "spread") == {
            "spread-a": {"ready": True, "serving": True, "terminating": False},
            "spread-b": {"ready": True, "serving": True, "terminating": False}}
        cluster_ip = cluster.kubectl("get", "svc", "spread", "-o", "jsonpath={.spec.clusterIP}").stdout.strip()
        # by pod IP, across nodes, then through the Service: both pods answer
        assert fetch(cluster, "spread-client", f"{ip_b}:8080") == ["spread-b"]
        assert set(fetch(cluster, "spread-client", f"{cluster_ip}:80", 24)) == {"spread-a", "spread-b"}
        # the DNS name of the Service is its ClusterIP, also by its short name (search domains)
        assert resolve(cluster, "spread-client", "spread.default.svc.cluster.local") == cluster_ip
        assert resolve(cluster, "spread-client", "spread") == cluster_ip
        cluster.kubectl("exec", "spread-b", "--", "rm", "/tmp/ready")
        wait_for(lambda: endpoint_ips(cluster, "spread") == [ip_a], 30, what="the unready pod out of the endpoints")
        assert endpoint_ips(cluster, "spread", "notReadyAddresses") == [ip_b]
        assert slice_conditions(cluster, "spread")["spread-b"] == {"ready": False, "serving": False, "terminating": False}
        wait_for(lambda: set(fetch(cluster, "spread-client", f"{cluster_ip}:80", 12)) == {"spread-a"}, 30,
                 what="the Service reaching only the ready pod")
    finally:
        delete(cluster, "service/spread", "pod/spread-a", "pod/spread-b", "pod/spread-client")


def test_headless_services_and_pod_hostnames_resolve_to_pod_ips(cluster: PodlifeProcess) -> None:
    first, second = nodes(cluster)
    apply(cluster,
          web_pod("hl-a", {"app": "hl"}, first, hostname="alpha", subdomain="hl"),
          web_pod("hl-b", {"app": "hl"}, second),
          client_pod("hl-client", second), service("hl", {"app": "hl"}, clusterIP="None"))
    try:
        ready(cluster, "hl-a", "hl-b", "hl-client")
        ip_a, ip_b = pod_ip(cluster, "hl-a"), pod_ip(cluster, "hl-b")
        wait_for(lambda: resolve(cluster, "hl-client", "hl.default.svc.cluster.local") == ",".join(sorted([ip_a, ip_b])),
                 30, what="the headless Service resolving to both pods")
        assert resolve(cluster, "hl-client", "alpha.hl.default.svc.cluster.local") == ip_a
        assert resolve(cluster, "hl-client", f"{ip_b.replace('.', '-')}.default.pod.cluster.local") == ip_b
        assert resolve(cluster, "hl-client", "missing.default.svc.cluster.local") == "-"
        # the pod answers at its DNS name, from the other node
        assert fetch(cluster, "hl-client", "alpha.hl.default.svc.cluster.local:8080") == ["alpha"]
    finally:
        delete(cluster, "service/hl", "pod/hl-a", "pod/hl-b", "pod/hl-client")


def test_node_port_and_client_ip_affinity(cluster: PodlifeProcess) -> None:
    first, second = nodes(cluster)
    apply(cluster, web_pod("np-a", {"app": "np"}, first), web_pod("np-b", {"app": "np"}, second),
          client_pod("np-client", first),
          service("np", {"app": "np"}, type="NodePort", sessionAffinity="ClientIP"))
    try:
        ready(cluster, "np-a", "np-b", "np-client")
        wait_for(lambda: len(endpoint_ips(cluster, "np")) == 2, 30, what="both endpoints")
        svc = cluster.kubectl_json("get", "svc", "np")
        node_port = svc["spec"]["ports"][0]["nodePort"]
        assert 30000 <= node_port <= 32767
        assert svc["spec"]["sessionAffinity"] == "ClientIP"
        # affinity: one client, one backend, every time
        answers = fetch(cluster, "np-client", f"{svc['spec']['clusterIP']}:80", 12)
        assert len(set(answers)) == 1 and answers[0] in {"np-a", "np-b"}
        # NodePort: the node namespace's own addresses (the client's gateway is one) answer on it
        gateway = json.loads(cluster.kubectl_json("get", "pod", "np-client")["metadata"]["annotations"]
                             ["network.podlife.io/subnet"])["gateway_ip"]
        assert set(fetch(cluster, "np-client", f"{gateway}:{node_port}", 4)) <= {"np-a", "np-b"} - {"-"}
    finally:
        delete(cluster, "service/np", "pod/np-a", "pod/np-b", "pod/np-client")


def test_a_network_policy_blocks_and_allows(cluster: PodlifeProcess) -> None:
    first, second = nodes(cluster)
    apply(cluster, web_pod("np-web", {"app": "guarded"}, first),
          client_pod("np-friend", second, {"role": "friend"}), client_pod("np-stranger", first))
    try:
        ready(cluster, "np-web", "np-friend", "np-stranger")
        target = f"{pod_ip(cluster, 'np-web')}:8080"
        assert fetch(cluster, "np-stranger", target) == ["np-web"]
        apply(cluster, {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                        "metadata": {"name": "guard"},
                        "spec": {"podSelector": {"matchLabels": {"app": "guarded"}}, "policyTypes": ["Ingress"],
                                 "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "friend"}}}],
                                              "ports": [{"port": "http"}]}]}})
        wait_for(lambda: fetch(cluster, "np-stranger", target) == ["-"], 30, what="the stranger blocked")
        assert fetch(cluster, "np-friend", target) == ["np-web"]
        delete(cluster, "networkpolicy/guard")
        wait_for(lambda: fetch(cluster, "np-stranger", target) == ["np-web"], 30, what="the stranger allowed again")
    finally:
        delete(cluster, "networkpolicy/guard", "pod/np-web", "pod/np-friend", "pod/np-stranger")


def test_the_kubernetes_service_reaches_the_api_server_from_a_pod(cluster: PodlifeProcess) -> None:
    first = nodes(cluster)[0]
    apply(cluster, client_pod("api-client", first))
    try:
        ready(cluster, "api-client")
        endpoints = cluster.kubectl_json("get", "endpoints", "kubernetes")
        assert endpoints["subsets"][0]["ports"][0]["port"] == int(cluster.server.rsplit(":", 1)[1])
        probe = ("import ssl, urllib.request; ctx = ssl.create_default_context(cafile="
                 "'/var/run/secrets/kubernetes.io/serviceaccount/ca.crt');"
                 "print(urllib.request.urlopen('https://kubernetes.default.svc/version', context=ctx).read().decode())")
        version = json.loads(cluster.kubectl("exec", "api-client", "--", "python3", "-c", probe).stdout)
        assert version["major"] == "1"
    finally:
        delete(cluster, "pod/api-client")


#: a UDP echo server on port 5353 that answers each datagram with its pod's hostname
UDP_ECHO = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 5353))\n"
            "while True:\n    data, peer = s.recvfrom(512); s.sendto(socket.gethostname().encode(), peer)")
UDP_ASK = ("import socket, sys; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)\n"
           "for _ in range(5):\n    s.sendto(b'?', (sys.argv[1], 5353))\n    try:\n        print(s.recv(512).decode()); break\n"
           "    except OSError:\n        pass\nelse:\n    print('-')")


def test_pods_exchange_udp_across_nodes(cluster: PodlifeProcess) -> None:
    first, second = nodes(cluster)
    echo = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "udp-echo"},
            "spec": {"nodeName": second, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "c", "image": "python", "command": ["python3", "-c", UDP_ECHO]}]}}
    apply(cluster, echo, client_pod("udp-client", first))
    try:
        ready(cluster, "udp-echo", "udp-client")
        target = pod_ip(cluster, "udp-echo")
        answer = cluster.kubectl("exec", "udp-client", "--", "python3", "-c", UDP_ASK, target).stdout.strip()
        assert answer == "udp-echo"
    finally:
        delete(cluster, "pod/udp-echo", "pod/udp-client")


def test_a_host_network_pod_has_the_node_address_and_no_port(cluster: PodlifeProcess) -> None:
    first = nodes(cluster)[0]
    pod = client_pod("host-net", first)
    pod["spec"]["hostNetwork"] = True
    apply(cluster, pod)
    try:
        ready(cluster, "host-net")
        status = cluster.kubectl_json("get", "pod", "host-net")["status"]
        assert status["podIP"] == status["hostIP"] == "127.0.0.1"
        assert cluster.kubectl("get", "port", "host-net", check=False).returncode != 0  # no port: the host's network
    finally:
        delete(cluster, "pod/host-net")


def test_port_forward_reaches_the_pods_own_loopback(cluster: PodlifeProcess) -> None:
    """The pod's server listens in its own namespace: port-forward dials the pod's loopback, not the host's."""
    apply(cluster, web_pod("pf-web", {"app": "pf"}, nodes(cluster)[1]))
    local = free_port()
    try:
        ready(cluster, "pf-web")
        proc = cluster.kubectl_popen("port-forward", "pod/pf-web", f"{local}:8080")
        try:
            status, body = wait_for(lambda: http_get(local), 30, what="port-forward answering")
            assert (status, body) == (200, b"pf-web\n")
        finally:
            stop(proc)
    finally:
        delete(cluster, "pod/pf-web")
