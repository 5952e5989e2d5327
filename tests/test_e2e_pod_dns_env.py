"""A real container's /etc/resolv.conf and service variables, read with the real kubectl.

``podlife up --container-runtime oci`` with a cluster domain of its own; a Service is
created before the pods, so the kubelet gives them its variables. The nameservers are
only written into the file: nothing here resolves a name.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .cluster_harness import PodlifeProcess
from .test_e2e_containers import oci_cluster, apply, busybox, delete, exec_out
from .test_e2e_containers import pod_manifest, wait_ready

pytestmark = pytest.mark.e2e

DOMAIN = "podlife.test"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    with oci_cluster(tmp_path_factory.mktemp("dns-env") / "data", "--cluster-domain", DOMAIN) as proc:
        yield proc


def _env(cluster: PodlifeProcess, pod: str) -> dict[str, str]:
    lines = exec_out(cluster, pod, "env").splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def _service(cluster: PodlifeProcess) -> str:
    cluster.kubectl("create", "service", "clusterip", "web-front", "--tcp=8080:80")
    return cluster.kubectl_json("get", "service", "web-front")["spec"]["clusterIP"]


def test_cluster_first_with_dns_config_and_service_variables(cluster: PodlifeProcess) -> None:
    ip = _service(cluster)
    container = busybox("c", env=[{"name": "FRONT", "value": "$(WEB_FRONT_SERVICE_HOST):$(WEB_FRONT_SERVICE_PORT)"}])
    apply(cluster, pod_manifest("dns-cfg", container, dnsConfig={
        "nameservers": ["192.0.2.10"], "searches": ["extra.example"],
        "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}))
    try:
        wait_ready(cluster, "dns-cfg")
        resolv = exec_out(cluster, "dns-cfg", "cat", "/etc/resolv.conf").splitlines()
        search = [line for line in resolv if line.startswith("search ")]
        assert search and search[0].split()[1:4] == [f"default.svc.{DOMAIN}", f"svc.{DOMAIN}", DOMAIN]
        assert search[0].split()[-1] == "extra.example"
        assert [line for line in resolv if line.startswith("nameserver")] == [
            "nameserver 10.96.0.10", "nameserver 192.0.2.10"]
        assert "options ndots:2 edns0" in resolv

        env = _env(cluster, "dns-cfg")
        assert env["WEB_FRONT_SERVICE_HOST"] == ip
        assert env["WEB_FRONT_SERVICE_PORT"] == "8080"
        assert env["WEB_FRONT_SERVICE_PORT_8080_80"] == "8080"  # kubectl names the port "8080-80"
        assert env["WEB_FRONT_PORT_8080_TCP"] == f"tcp://{ip}:8080"
        assert env["FRONT"] == f"{ip}:8080"
        assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
        assert env["KUBERNETES_PORT_443_TCP_PORT"] == "443"
    finally:
        delete(cluster, "dns-cfg")
        cluster.kubectl("delete", "service", "web-front", check=False)


def test_default_policy_and_no_service_links(cluster: PodlifeProcess) -> None:
    _service(cluster)
    apply(cluster, pod_manifest("dns-default", busybox(), dnsPolicy="Default"))
    apply(cluster, pod_manifest("no-links", busybox(), enableServiceLinks=False))
    try:
        wait_ready(cluster, "dns-default")
        resolv = exec_out(cluster, "dns-default", "cat", "/etc/resolv.conf")
        host = Path("/etc/resolv.conf").read_text()
        host_servers = [line.split()[1] for line in host.splitlines() if line.startswith("nameserver ")][:3]
        assert [line.split()[1] for line in resolv.splitlines() if line.startswith("nameserver")] == host_servers
        assert "ndots:5" not in resolv and DOMAIN not in resolv

        wait_ready(cluster, "no-links")
        env = _env(cluster, "no-links")
        assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
        assert not [name for name in env if name.startswith("WEB_FRONT_")]
        resolv = exec_out(cluster, "no-links", "cat", "/etc/resolv.conf")
        assert f"search default.svc.{DOMAIN} svc.{DOMAIN} {DOMAIN}" in resolv and "options ndots:5" in resolv
    finally:
        delete(cluster, "dns-default", "no-links")
        cluster.kubectl("delete", "service", "web-front", check=False)
