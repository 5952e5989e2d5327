"""Several API servers on one etcd are one cluster: same objects, same watches, same credentials.

Driven as a user would: ``podlife up --store etcd://...`` (the all-in-one), then
``podlife server --store etcd://...`` (a second API server with its own data directory),
with the real kubectl and one kubeconfig whose server address alone changes.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import yaml

from tests.cluster_harness import PodlifeProcess, running_podlife, wait_for


def _kubeconfig_for(cluster: PodlifeProcess, other: PodlifeProcess, path: Path) -> Path:
    """``cluster``'s kubeconfig (its admin's client certificate, its CA) pointed at ``other``'s address."""
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = other.server
    path.write_text(yaml.safe_dump(config))
    return path


def _token_kubeconfig(base: Path, token: str, path: Path) -> Path:
    """``base``'s cluster (its server and CA) with a user that has only ``token``."""
    config = yaml.safe_load(base.read_text())
    config["users"] = [{"name": "bearer", "user": {"token": token}}]
    for context in config["contexts"]:
        context["context"]["user"] = "bearer"
    path.write_text(yaml.safe_dump(config))
    return path


def _kubectl(kubectl: str, kubeconfig: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([kubectl, "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True,
                          timeout=60, check=check)


def test_a_second_api_server_serves_the_same_cluster(etcd, tmp_path: Path) -> None:
    with running_podlife(tmp_path / "one", "--store", etcd.url, "--nodes", "0", "--sim-nodes", "1") as one, \
            running_podlife(tmp_path / "two", "--store", etcd.url, command="server") as two:
        kubectl = one.kubectl_bin
        via_two = _kubeconfig_for(one, two, tmp_path / "two.kubeconfig")
        # the same CA and the same admin: the first server's kubeconfig works against the second unchanged
        assert _kubectl(kubectl, via_two, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout \
            == "podlife-admin"
        assert (one.data_dir / "pki" / "ca.crt").read_bytes() == (two.data_dir / "pki" / "ca.crt").read_bytes()

        # a watch on the first sees a write made through the second
        watch = subprocess.Popen([kubectl, "--kubeconfig", str(one.kubeconfig), "get", "configmaps", "-w",
                                  "--output-watch-events", "--no-headers", "--request-timeout=60s"], stdout=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: one.watches_served() > 0, what="kubectl's watch to be open")
            _kubectl(kubectl, via_two, "create", "configmap", "from-two", "--from-literal=k=v")
            assert _read_until(watch, "from-two").split()[0] == "ADDED"
        finally:
            watch.kill()
            watch.wait()
        assert one.kubectl("get", "configmap", "from-two", "-o", "jsonpath={.data.k}").stdout == "v"

        # a pod created through the server without controllers is scheduled and run by the first's components
        _kubectl(kubectl, via_two, "run", "p", "--image=busybox", "--restart=Never", "--", "sleep", "3600")
        _kubectl(kubectl, via_two, "wait", "--for=condition=Ready", "pod/p", "--timeout=60s")
        assert _kubectl(kubectl, via_two, "get", "pod", "p", "-o", "jsonpath={.spec.nodeName}").stdout

        # a service-account token one server issued is honoured by the other (one signing key)
        token = one.kubectl("create", "token", "default").stdout.strip()
        as_account = _token_kubeconfig(via_two, token, tmp_path / "token.kubeconfig")
        who = _kubectl(kubectl, as_account, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}", check=False)
        assert who.stdout == "system:serviceaccount:default:default", who.stderr

        # optimistic concurrency spans the servers: a write based on a version the other server replaced conflicts
        stale = one.kubectl_json("get", "configmap", "from-two", "-o", "json")
        _kubectl(kubectl, via_two, "patch", "configmap", "from-two", "-p", '{"data":{"k":"newer"}}')
        stale["data"]["k"] = "stale"
        refused = one.kubectl("replace", "-f", "-", input=yaml.safe_dump(stale), check=False)
        assert refused.returncode != 0 and "the object has been modified" in refused.stderr
        assert one.kubectl("get", "configmap", "from-two", "-o", "jsonpath={.data.k}").stdout == "newer"


def test_objects_outlive_the_servers(etcd, tmp_path: Path) -> None:
    with running_podlife(tmp_path / "one", "--store", etcd.url, "--nodes", "0") as one:
        one.kubectl("create", "configmap", "kept", "--from-literal=k=v")
        created_rv = one.kubectl("get", "configmap", "kept", "-o", "jsonpath={.metadata.resourceVersion}").stdout
    # a new server with a fresh data directory: the objects, and the CA, come from etcd
    with running_podlife(tmp_path / "fresh", "--store", etcd.url, command="server") as fresh:
        fresh_kubeconfig = _kubeconfig_for(one, fresh, tmp_path / "fresh.kubeconfig")
        got = _kubectl(fresh.kubectl_bin, fresh_kubeconfig, "get", "configmap", "kept", "-o",
                       "jsonpath={.data.k} {.metadata.resourceVersion}")
        assert got.stdout == f"v {created_rv}"


def test_a_server_with_another_cluster_token_refuses_to_start(etcd, tmp_path: Path) -> None:
    (tmp_path / "token-a").write_text("secret-a\n")
    (tmp_path / "token-b").write_text("secret-b\n")
    with running_podlife(tmp_path / "a", "--store", etcd.url, "--cluster-token-file", str(tmp_path / "token-a"),
                         command="server"):
        wrong = subprocess.run([sys.executable, "-m", "podlife.cli", "server", "--store", etcd.url, "--port", "0",
                                "--data-dir", str(tmp_path / "b"), "--cluster-token-file", str(tmp_path / "token-b")],
                               capture_output=True, text=True, timeout=60)
        assert wrong.returncode == 1
        assert "encrypted with another cluster token" in wrong.stderr and "Traceback" not in wrong.stderr
        assert not (tmp_path / "b" / "pki" / "ca.key").exists()  # no second CA was minted
        with running_podlife(tmp_path / "c", "--store", etcd.url, "--cluster-token-file", str(tmp_path / "token-a"),
                             command="server") as right:
            assert right.kubectl("get", "namespaces", "default", "-o", "name").stdout.strip() == "namespace/default"


def test_bad_store_urls_are_refused_with_a_clear_error(tmp_path: Path) -> None:
    unused = _free_port()
    for url, message in (("etcd://", "no etcd endpoint"), ("etcd://127.0.0.1", "is not host:port"),
                         (f"etcd://127.0.0.1:{unused}", f"etcd at 127.0.0.1:{unused}")):
        run = subprocess.run([sys.executable, "-m", "podlife.cli", "server", "--store", url, "--port", "0",
                              "--data-dir", str(tmp_path / "d")], capture_output=True, text=True, timeout=60)
        assert run.returncode == 1 and message in run.stderr and "Traceback" not in run.stderr, run.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read_until(proc: subprocess.Popen, name: str) -> str:
    """The first line of ``proc``'s output naming ``name`` (kubectl ends at its timeout, the test's bound)."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if name in line:
            return line
    raise AssertionError(f"the watch ended without {name}")
