"""High availability on one machine: three etcd members, two API servers, the client-side failover proxy.

Driven as an operator would: ``podlife up --store etcd://m0,m1,m2`` (the all-in-one),
``podlife server`` on the same store, ``podlife apiserver-proxy`` in front of both, and the
real kubectl through a kubeconfig whose only change is the proxy's address. Then an etcd
member is killed (SIGKILL) and the cluster keeps taking writes and scheduling pods; then
an API server is killed and kubectl, through the proxy, carries on against the other.
Every process is stopped by its pid afterwards, also when the test fails.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from podlife.client.apiserver_proxy import parse_backend

from .cluster_harness import PodlifeProcess, running_podlife, wait_for


@contextmanager
def running_proxy(log_path: Path, *servers: str) -> Iterator[str]:
    """``podlife apiserver-proxy`` on a free loopback port; yields its https URL."""
    args = [arg for server in servers for arg in ("--server", server)]
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "podlife.cli", "apiserver-proxy", "--listen", "127.0.0.1:0",
                                 "--health-interval", "0.2", *args], stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        def listening() -> str | None:
            assert proc.poll() is None, log_path.read_text()
            found = re.search(r"listening on (https://\S+)", log_path.read_text())
            return found.group(1) if found else None

        yield wait_for(listening, 30, what="the proxy to listen")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def kubeconfig_via(cluster: PodlifeProcess, server: str, path: Path) -> Path:
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = server
    path.write_text(yaml.safe_dump(config))
    return path


def kubectl(cluster: PodlifeProcess, kubeconfig: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([cluster.kubectl_bin, "--kubeconfig", str(kubeconfig), *args], capture_output=True,
                          text=True, timeout=60, check=check)


def test_the_cluster_survives_an_etcd_member_and_an_api_server(etcd3, tmp_path: Path) -> None:
    with running_podlife(tmp_path / "one", "--store", etcd3.url, "--nodes", "0", "--sim-nodes", "2") as one, \
            running_podlife(tmp_path / "two", "--store", etcd3.url, command="server") as two, \
            running_proxy(tmp_path / "proxy.log", two.server, one.server) as proxy:
        via = kubeconfig_via(one, proxy, tmp_path / "via-proxy.kubeconfig")
        # the proxy is transparent: the same admin, TLS end to end with the cluster's CA
        assert kubectl(one, via, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout \
            == "podlife-admin"
        kubectl(one, via, "create", "configmap", "before", "--from-literal=k=v")

        # one etcd member dies: writes, watches and scheduling go on on the other two (a quorum)
        etcd3.members[0].kill()
        kubectl(one, via, "create", "configmap", "after-member", "--from-literal=k=v")
        kubectl(one, via, "run", "p1", "--image=busybox", "--restart=Never", "--", "sleep", "3600")
        kubectl(one, via, "wait", "--for=condition=Ready", "pod/p1", "--timeout=60s")
        assert one.kubectl("get", "configmap", "after-member", "-o", "jsonpath={.data.k}").stdout == "v"

        # the proxy's first server dies: kubectl through the proxy is answered by the other
        assert two.stop() == 0
        got = wait_for(lambda: kubectl(one, via, "get", "configmap", "before", "after-member", "-o", "name",
                                       check=False).stdout.split() or None, 30, what="kubectl through the proxy")
        assert got == ["configmap/before", "configmap/after-member"]
        kubectl(one, via, "run", "p2", "--image=busybox", "--restart=Never", "--", "sleep", "3600")
        kubectl(one, via, "wait", "--for=condition=Ready", "pod/p2", "--timeout=60s")
        assert "is down" in (tmp_path / "proxy.log").read_text()


def test_the_proxy_refuses_bad_addresses_with_one_line(tmp_path: Path) -> None:
    for args, message in ((["--server", "http://127.0.0.1:1"], "served over https"),
                          (["--server", "127.0.0.1"], "is not host:port"),
                          (["--server", "127.0.0.1:6443", "--listen", "nowhere"], "is not host:port"),
                          (["--server", "127.0.0.1:6443", "--health-interval", "0"], "must be greater than 0")):
        run = subprocess.run([sys.executable, "-m", "podlife.cli", "apiserver-proxy", *args], capture_output=True,
                             text=True, timeout=60)
        assert run.returncode != 0 and message in run.stderr and "Traceback" not in run.stderr, run.stderr


@pytest.mark.parametrize("text, expected", [
    ("https://127.0.0.1:6443", ("127.0.0.1", 6443)), ("https://example.test", ("example.test", 443)),
    ("127.0.0.1:8443", ("127.0.0.1", 8443)), ("[::1]:6443", ("::1", 6443)),
])
def test_backend_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_backend(text) == expected
