"""``podlife node``: a node joins with a bootstrap token, as ``kubeadm join`` and the kubelet's TLS bootstrap do.

Against a real ``podlife up --nodes 0`` (no local node) driven with kubectl: ``podlife token
create`` makes the token; ``kube-public/cluster-info`` is readable anonymously and carries the
token's detached JWS (checked here with ``hmac``, independently of podlife's code); ``podlife
node`` runs as its own process with its own data directory and node name, and its kubelet
client request shows Approved,Issued with requestor ``system:bootstrap:<id>``; the Node turns
Ready; a pod selected onto it runs, and once its serving certificate is approved its logs are
read through the API server; the node is ``system:node:<name>`` (NodeRestriction keeps it off
another Node); a restart reuses ``kubelet.conf`` (no second request). A wrong CA pin, a wrong
token, no pin at all are one line on stderr and exit 1. The bootstrap signer signs only valid
signing tokens and drops the signatures of deleted and expired ones. Where runc and conmon can
run (root), a joined node runs its pod as a real container and removes it when stopped.
Every ``podlife node`` is stopped by its pid (SIGTERM, exit code 0), also when a test fails.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster_harness import PodlifeProcess, require_tool, running_podlife, stop_process, wait_for

pytestmark = pytest.mark.e2e

CLUSTER_INFO = "/api/v1/namespaces/kube-public/configmaps/cluster-info"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    with running_podlife(tmp_path_factory.mktemp("join") / "data", "--nodes", "0",
                         kubectl=require_tool("kubectl")) as proc:
        yield proc


def podlife(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "podlife.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def new_token(cluster: PodlifeProcess) -> str:
    result = podlife("token", "create", "--kubeconfig", str(cluster.kubeconfig))
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def ca_pin(cluster: PodlifeProcess) -> str:
    """kubeadm's pin, computed here: sha256 of the CA's DER SubjectPublicKeyInfo."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate((cluster.data_dir / "pki" / "ca.crt").read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def expected_jws(content: str, token: str) -> str:
    """RFC 7515 appendix F, HS256 with the token's secret, kid the token id (cluster-bootstrap's)."""
    token_id, secret = token.split(".")
    header = b64url(json.dumps({"alg": "HS256", "kid": token_id}, separators=(",", ":")).encode())
    mac = hmac.new(secret.encode(), f"{header}.{b64url(content.encode())}".encode(), hashlib.sha256).digest()
    return f"{header}..{b64url(mac)}"


def cluster_info(cluster: PodlifeProcess) -> dict[str, Any]:
    status, body = cluster.http("GET", CLUSTER_INFO, auth=False)  # anonymously, as a joining node asks
    assert status == 200, body
    return body


@contextmanager
def node_process(cluster: PodlifeProcess, directory: Path, name: str, token_file: Path, *extra: str
                 ) -> Iterator[subprocess.Popen]:
    """``podlife node`` for ``name`` started; SIGTERM by pid at the end (its exit code must be 0)."""
    log = open(directory / f"{name}.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "podlife.cli", "node", "--server", cluster.server,
                             "--token-file", str(token_file), "--discovery-token-ca-cert-hash", ca_pin(cluster),
                             "--node-name", name, "--data-dir", str(directory / name),
                             "--container-runtime", "process", *extra],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    stopped = False
    try:
        yield proc
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, (directory / f"{name}.log").read_text()[-3000:]
        stopped = True
    finally:
        if not stopped:
            stop_process(proc)


def node_ready(cluster: PodlifeProcess, name: str) -> dict[str, Any] | None:
    result = cluster.kubectl("get", "node", name, "-o", "json", check=False)
    if result.returncode != 0:
        return None
    node = json.loads(result.stdout)
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))
    return node if ready else None


def csrs_of(cluster: PodlifeProcess, node: str, signer: str) -> list[dict[str, Any]]:
    """The CertificateSigningRequests whose subject is the node's, of one signer."""
    from cryptography import x509

    found = []
    for csr in cluster.kubectl_json("get", "csr")["items"]:
        if csr["spec"].get("signerName") != signer:
            continue
        request = x509.load_pem_x509_csr(base64.b64decode(csr["spec"]["request"]))
        if request.subject.rfc4514_string() == f"CN=system:node:{node},O=system:nodes":
            found.append(csr)
    return found


def conditions(csr: dict[str, Any]) -> list[str]:
    return [c["type"] for c in (csr.get("status") or {}).get("conditions") or []]


def test_cluster_info_is_public_and_signed_per_token(cluster: PodlifeProcess) -> None:
    status, _ = cluster.http("GET", CLUSTER_INFO)
    assert status == 200  # published by `podlife up`
    token = new_token(cluster)  # which also lets system:anonymous read it, as kubeadm init does
    info = cluster_info(cluster)
    config = yaml.safe_load(info["data"]["kubeconfig"])
    assert [c["cluster"]["server"] for c in config["clusters"]] == [cluster.server]
    ca = base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"])
    assert ca == (cluster.data_dir / "pki" / "ca.crt").read_bytes()
    assert not config.get("users") and not config.get("contexts")  # no credentials in it

    token_id = token.split(".")[0]
    key = f"jws-kubeconfig-{token_id}"
    signed = wait_for(lambda: cluster_info(cluster)["data"].get(key), 30, what="the token's signature")
    assert signed == expected_jws(info["data"]["kubeconfig"], token)
    assert signed.split(".")[1] == ""  # detached: no payload
    header = json.loads(base64.urlsafe_b64decode(signed.split(".")[0] + "=="))
    assert header == {"alg": "HS256", "kid": token_id}

    deleted = podlife("token", "delete", token_id, "--kubeconfig", str(cluster.kubeconfig))
    assert deleted.returncode == 0, deleted.stderr
    wait_for(lambda: key not in cluster_info(cluster)["data"], 30, what="the deleted token's signature to go")


def test_only_valid_signing_tokens_are_signed(cluster: PodlifeProcess) -> None:
    def created(*flags: str) -> str:
        result = podlife("token", "create", *flags, "--kubeconfig", str(cluster.kubeconfig))
        assert result.returncode == 0, result.stderr
        return result.stdout.strip().split(".")[0]

    auth_only = created("--usages", "authentication")
    short = created("--ttl", "3s")
    wait_for(lambda: f"jws-kubeconfig-{short}" in cluster_info(cluster)["data"], 30, what="the short token's signature")
    assert f"jws-kubeconfig-{auth_only}" not in cluster_info(cluster)["data"]  # not for signing
    wait_for(lambda: f"jws-kubeconfig-{short}" not in cluster_info(cluster)["data"], 30,
             what="the expired token's signature to go")


def test_signed_data_keeps_one_signature_per_token() -> None:
    from podlife.controllers.bootstrap_signer import signed_data

    data = {"kubeconfig": "k", "jws-kubeconfig-gone00": "stale", "other": "x"}
    signed = signed_data(data, {"abcdef": "0123456789abcdef"})
    assert signed == {"kubeconfig": "k", "other": "x",
                      "jws-kubeconfig-abcdef": expected_jws("k", "abcdef.0123456789abcdef")}


def test_node_joins_runs_pods_and_restarts_without_a_new_request(cluster: PodlifeProcess, tmp_path: Path) -> None:
    token = new_token(cluster)
    token_id = token.split(".")[0]
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    name = "joined-1"
    with node_process(cluster, tmp_path, name, token_file):
        client = wait_for(lambda: [c for c in csrs_of(cluster, name, "kubernetes.io/kube-apiserver-client-kubelet")
                                   if "Approved" in conditions(c) and c["status"].get("certificate")],
                          60, what="the node's client certificate request to be issued")
        assert len(client) == 1
        assert client[0]["spec"]["username"] == f"system:bootstrap:{token_id}"
        assert "system:bootstrappers:kubeadm:default-node-token" in client[0]["spec"]["groups"]
        printed = cluster.kubectl("get", "csr", client[0]["metadata"]["name"]).stdout
        assert "Approved,Issued" in printed and f"system:bootstrap:{token_id}" in printed
        node = wait_for(lambda: node_ready(cluster, name), 60, what=f"node {name} to be Ready")
        first_port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]

        kubelet_conf = tmp_path / name / "kubelet.conf"
        assert (tmp_path / name / "pki" / "ca.crt").read_bytes() == (cluster.data_dir / "pki" / "ca.crt").read_bytes()
        who = cluster.kubectl("--kubeconfig", str(kubelet_conf), "auth", "whoami", "-o", "json")
        identity = json.loads(who.stdout)["status"]["userInfo"]
        assert identity["username"] == f"system:node:{name}" and "system:nodes" in identity["groups"]
        cluster.kubectl("create", "-f", "-", input=json.dumps(
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "someone-else"}}))
        try:
            denied = cluster.kubectl("--kubeconfig", str(kubelet_conf), "label", "node", "someone-else", "x=y",
                                     check=False)
            assert denied.returncode == 1
            assert f'node "{name}" is not allowed to modify node "someone-else"' in denied.stderr
        finally:
            cluster.kubectl("delete", "node", "someone-else", "--wait=false")

        cluster.kubectl("create", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "on-joined"},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": name}, "containers": [{
                "name": "c", "image": "busybox",
                "command": ["/bin/sh", "-c", "trap 'exit 0' TERM; echo hello from joined; while :; do sleep 1; done"]}]}}))
        try:
            pod = wait_for(lambda: (p := cluster.kubectl_json("get", "pod", "on-joined"))["status"].get("phase")
                           == "Running" and p, 60, what="the pod to run on the joined node")
            assert pod["spec"]["nodeName"] == name
            serving = wait_for(lambda: csrs_of(cluster, name, "kubernetes.io/kubelet-serving"), 30,
                               what="the node's serving certificate request")
            assert serving[0]["spec"]["username"] == f"system:node:{name}" and not conditions(serving[0])
            cluster.kubectl("certificate", "approve", serving[0]["metadata"]["name"])
            wait_for(lambda: "hello from joined" in cluster.kubectl("logs", "on-joined", check=False).stdout, 30,
                     what="the pod's logs through the API server")
        finally:
            cluster.kubectl("delete", "pod", "on-joined", "--wait=false")
        wait_for(lambda: cluster.kubectl("get", "pod", "on-joined", check=False).returncode != 0, 60,
                 what="the pod to be gone")

    token_file.write_text("not-a-token\n")  # a restart needs no token: kubelet.conf is reused
    with node_process(cluster, tmp_path, name, token_file):
        wait_for(lambda: (n := node_ready(cluster, name)) and
                 n["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] != first_port, 60,
                 what="the restarted kubelet to report itself")
        assert len(csrs_of(cluster, name, "kubernetes.io/kube-apiserver-client-kubelet")) == 1
        assert len(csrs_of(cluster, name, "kubernetes.io/kubelet-serving")) == 1  # the issued one is reused too
    assert "reusing the client certificate" in (tmp_path / f"{name}.log").read_text()


def one_line_failure(args: list[str]) -> str:
    result = podlife(*args, timeout=60)
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_wrong_pin_wrong_token_and_no_pin_are_refused(cluster: PodlifeProcess, tmp_path: Path) -> None:
    token = new_token(cluster)
    token_id = token.split(".")[0]
    wait_for(lambda: f"jws-kubeconfig-{token_id}" in cluster_info(cluster)["data"], 30, what="the signature")
    good, wrong_secret = tmp_path / "good", tmp_path / "wrong"
    good.write_text(token)
    wrong_secret.write_text(f"{token_id}.{'0' * 16}")
    base = ["node", "--server", cluster.server, "--node-name", "refused", "--data-dir", str(tmp_path / "refused"),
            "--container-runtime", "process"]

    message = one_line_failure([*base, "--token-file", str(good), "--discovery-token-ca-cert-hash", "sha256:" + "a" * 64])
    assert message == (f'error: cluster CA found in cluster-info ConfigMap is invalid: none of the public keys '
                       f'"{ca_pin(cluster)}" are pinned')
    message = one_line_failure([*base, "--token-file", str(wrong_secret), "--discovery-token-ca-cert-hash", ca_pin(cluster)])
    assert message == "error: failed to verify JWS signature of received cluster info object, can't trust this API Server"
    message = one_line_failure([*base, "--token-file", str(wrong_secret), "--discovery-token-unsafe-skip-ca-verification"])
    assert message.endswith("can't trust this API Server")  # without a pin the signature is still checked
    message = one_line_failure([*base, "--token-file", str(good)])
    assert "--discovery-token-unsafe-skip-ca-verification" in message
    message = one_line_failure([*base, "--token-file", str(tmp_path / "absent"), "--discovery-token-ca-cert-hash",
                                ca_pin(cluster)])
    assert message.startswith("error: couldn't read the token file")
    assert not (tmp_path / "refused" / "kubelet.conf").exists()
    assert csrs_of(cluster, "refused", "kubernetes.io/kube-apiserver-client-kubelet") == []


def test_joined_node_runs_real_containers(cluster: PodlifeProcess, tmp_path: Path) -> None:
    """With runc and conmon (as root) the joined node runs a pod as a container; stopping it removes them."""
    import asyncio

    from podlife.kubelet.oci.cgroups import detect_layout
    from podlife.kubelet.oci.conmon import find_conmon
    from podlife.kubelet.oci.runc import find_runc
    from podlife.kubelet.oci.runtime import OCIRuntime, unavailable_reasons

    problems = unavailable_reasons(find_runc(), find_conmon(), detect_layout())
    if problems:
        if os.environ.get("CI"):
            pytest.fail("real containers cannot run here: " + "; ".join(problems))
        pytest.skip("real containers cannot run here: " + "; ".join(problems))
    token_file = tmp_path / "token"
    token_file.write_text(new_token(cluster))
    name = "joined-oci"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "in-container"},
           "spec": {"nodeName": name, "containers": [{
               "name": "c", "image": "busybox",
               "command": ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]}]}}
    with node_process(cluster, tmp_path, name, token_file, "--container-runtime", "oci"):
        wait_for(lambda: node_ready(cluster, name), 60, what=f"node {name} to be Ready")
        cluster.kubectl("create", "-f", "-", input=json.dumps(pod))
        try:
            wait_for(lambda: cluster.kubectl_json("get", "pod", "in-container")["status"].get("phase") == "Running",
                     90, what="the pod to run in a container on the joined node")
            runtime = OCIRuntime(tmp_path / name / "kubelet")
            assert asyncio.run(runtime.runc.list()), "no container in runc's state"
        finally:
            cluster.kubectl("delete", "pod", "in-container", "--wait=false")
        wait_for(lambda: cluster.kubectl("get", "pod", "in-container", check=False).returncode != 0, 60,
                 what="the pod to be gone")
    assert asyncio.run(OCIRuntime(tmp_path / name / "kubelet").runc.list()) == []
