"""The kubelet's endpoint (logs, exec, attach, port-forward) is HTTPS and lets in only the API server.

As on a kubeadm cluster: the kubelet serves with a certificate the cluster CA signed, and
a caller must show the API server's client certificate (``kube-apiserver-kubelet-client``)
-- any other certificate, none, or plain HTTP gets nowhere, before any pod is named.
``kubectl logs``/``exec`` keep working through the API server (the rest of the suite).
"""

from __future__ import annotations

import http.client
import ssl

import pytest

from .cluster_harness import PodlifeProcess, wait_for

pytestmark = pytest.mark.e2e


def kubelet_port(cluster: PodlifeProcess) -> int:
    def port() -> int | None:
        nodes = cluster.kubectl_json("get", "nodes")["items"]
        ports = [n["status"].get("daemonEndpoints", {}).get("kubeletEndpoint", {}).get("Port") for n in nodes]
        return next((p for p in ports if p), None)

    found = wait_for(port, 30, what="a node with a kubelet endpoint")
    assert found is not None
    return found


def get(port: int, path: str, context: ssl.SSLContext | None) -> int:
    conn = (http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5) if context is not None
            else http.client.HTTPConnection("127.0.0.1", port, timeout=5))
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def context(cluster: PodlifeProcess, cert: str | None = None) -> ssl.SSLContext:
    pki = cluster.data_dir / "pki"
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if cert is not None:
        ctx.load_cert_chain(pki / f"{cert}.crt", pki / f"{cert}.key")
    return ctx


def test_only_the_api_servers_certificate_gets_in(cluster: PodlifeProcess) -> None:
    port = kubelet_port(cluster)
    with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
        get(port, "/healthz", None)  # plain HTTP on a TLS port
    assert get(port, "/healthz", context(cluster)) == 200  # the serving certificate is the CA's
    path = "/containerLogs/default/nope/c"
    assert get(port, path, context(cluster)) == 401
    assert get(port, path, context(cluster, "admin")) == 401  # the CA's, but not the API server
    assert get(port, path, context(cluster, "apiserver-kubelet-client")) == 404  # in: no such pod
