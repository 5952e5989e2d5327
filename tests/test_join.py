"""Bootstrap tokens end to end: ``podlife token create|list|delete`` against a real ``podlife up``.

The token a node would join with authenticates as ``system:bootstrap:<id>`` in
``system:bootstrappers`` and kubeadm's default-node-token group (a TokenReview and a
request with kubectl ``--token`` show it); kubeadm's RBAC lets it create CSRs and nothing
more; an unknown, expired, deleted or authentication-less token gets the 401 of any
unknown bearer token. ``--print-join-command`` pins the CA as kubeadm does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.cluster_harness import PodlifeProcess, require_tool, running_podlife

TOKEN = re.compile(r"^[a-z0-9]{6}\.[a-z0-9]{16}$")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    with running_podlife(tmp_path_factory.mktemp("join") / "data", "--nodes", "0",
                         kubectl=require_tool("kubectl")) as proc:
        yield proc


def podlife(cluster: PodlifeProcess, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "podlife.cli", *args, "--kubeconfig", str(cluster.kubeconfig)],
                          capture_output=True, text=True, timeout=60)


def create_token(cluster: PodlifeProcess, *args: str) -> str:
    result = podlife(cluster, "token", "create", *args)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert TOKEN.match(token), result.stdout
    return token


def review(cluster: PodlifeProcess, token: str) -> dict:
    status, body = cluster.http("POST", "/apis/authentication.k8s.io/v1/tokenreviews",
                                {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                                 "spec": {"token": token}})
    assert status == 201, body
    return body["status"]


def can_i(cluster: PodlifeProcess, token: str, verb: str, resource: str, subresource: str = "",
          group: str = "certificates.k8s.io") -> bool:
    """A SelfSubjectAccessReview made with ``token`` (kubectl's ``auth can-i`` needs the kind in discovery)."""
    status, body = cluster.http("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"verb": verb, "group": group, "resource": resource,
                                        "subresource": subresource}}},
        auth=False, headers={"Authorization": f"Bearer {token}"})
    assert status == 201, body
    return bool(body["status"]["allowed"])


def as_token(cluster: PodlifeProcess, token: str, *args: str) -> subprocess.CompletedProcess:
    return cluster.kubectl("--token", token, *args, check=False)


def test_created_token_authenticates_as_bootstrapper(cluster: PodlifeProcess) -> None:
    token = create_token(cluster, "--description", "for node-a")
    token_id = token.split(".")[0]
    secret = cluster.kubectl_json("get", "secret", "-n", "kube-system", f"bootstrap-token-{token_id}")
    assert secret["type"] == "bootstrap.kubernetes.io/token"
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data["token-id"] == token_id and data["token-secret"] == token.split(".")[1]
    assert data["usage-bootstrap-authentication"] == "true" and data["usage-bootstrap-signing"] == "true"
    assert data["auth-extra-groups"] == "system:bootstrappers:kubeadm:default-node-token"
    assert data["description"] == "for node-a"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", data["expiration"])

    status = review(cluster, token)
    assert status["authenticated"] is True
    assert status["user"]["username"] == f"system:bootstrap:{token_id}"
    assert status["user"]["groups"] == ["system:bootstrappers", "system:bootstrappers:kubeadm:default-node-token",
                                        "system:authenticated"]

    # kubeadm's RBAC: a bootstrapper may create CSRs (and have them auto-approved), not read secrets
    assert can_i(cluster, token, "create", "certificatesigningrequests")
    assert can_i(cluster, token, "create", "certificatesigningrequests", "nodeclient")
    assert not can_i(cluster, token, "create", "certificatesigningrequests", "selfnodeclient")
    assert not can_i(cluster, token, "list", "certificatesigningrequests", group="nonsense.io")
    denied = as_token(cluster, token, "get", "secrets", "-n", "kube-system")
    assert denied.returncode == 1
    assert f'User "system:bootstrap:{token_id}" cannot list resource "secrets"' in denied.stderr


def test_refused_tokens_are_unknown_bearer_tokens(cluster: PodlifeProcess) -> None:
    unknown = "abcdef.0123456789abcdef"
    assert review(cluster, unknown) == {"user": {}, "error": "invalid bearer token"}
    status, body = cluster.http("GET", "/api/v1/nodes", auth=False, headers={"Authorization": f"Bearer {unknown}"})
    assert status == 401 and body["reason"] == "Unauthorized", body

    # expired: a Secret whose expiration has passed
    expired_id, expired_secret = "exp1r3", "0123456789abcdef"
    cluster.kubectl("create", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
        "metadata": {"name": f"bootstrap-token-{expired_id}", "namespace": "kube-system"},
        "stringData": {"token-id": expired_id, "token-secret": expired_secret, "expiration": "2020-01-01T00:00:00Z",
                       "usage-bootstrap-authentication": "true"}}))
    try:
        assert review(cluster, f"{expired_id}.{expired_secret}")["error"] == "invalid bearer token"
    finally:
        # the token cleaner may have deleted it already
        cluster.kubectl("delete", "secret", "-n", "kube-system", f"bootstrap-token-{expired_id}", "--ignore-not-found")

    # the right id with a wrong secret
    token = create_token(cluster)
    assert review(cluster, token)["authenticated"] is True
    assert review(cluster, token.split(".")[0] + ".ffffffffffffffff")["error"] == "invalid bearer token"

    # a token only for signing does not authenticate
    signing_only = create_token(cluster, "--usages", "signing")
    assert review(cluster, signing_only)["error"] == "invalid bearer token"

    # deleted: the token stops working once the watch cache has the deletion
    deleted = podlife(cluster, "token", "delete", token)
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.strip() == f'bootstrap token "{token.split(".")[0]}" deleted'
    from tests.cluster_harness import wait_for

    wait_for(lambda: review(cluster, token).get("error") == "invalid bearer token", what="deleted token refused")


def test_token_list_and_ttl(cluster: PodlifeProcess) -> None:
    forever = create_token(cluster, "--ttl", "0", "--description", "never-expires")
    short = create_token(cluster, "--ttl", "1h30m")
    result = podlife(cluster, "token", "list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA", "GROUPS"]
    forever_row = next(line for line in lines if line.startswith(forever))
    assert forever_row.split()[1:] == ["<forever>", "<never>", "authentication,signing", "never-expires",
                                       "system:bootstrappers:kubeadm:default-node-token"]
    short_row = next(line for line in lines if line.startswith(short))
    assert short_row.split()[1] in ("1h", "1h")  # 1h30m less the seconds elapsed: whole hours shown
    bad = podlife(cluster, "token", "create", "--ttl", "soon")
    assert bad.returncode == 1
    assert bad.stderr.strip() == 'error: invalid argument "soon" for "--ttl" flag: time: invalid duration "soon"'
    malformed = podlife(cluster, "token", "create", "NOT-A-TOKEN")
    assert malformed.returncode == 1 and "was not of the form" in malformed.stderr


def test_print_join_command_pins_the_ca(cluster: PodlifeProcess) -> None:
    result = podlife(cluster, "token", "create", "--print-join-command")
    assert result.returncode == 0, result.stderr
    words = result.stdout.split()
    assert words[:3] == ["podlife", "node", "--server"]
    config = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    assert words[3] == config["clusters"][0]["cluster"]["server"]
    assert words[4] == "--token" and TOKEN.match(words[5])
    assert words[6] == "--discovery-token-ca-cert-hash"
    ca = x509.load_pem_x509_certificate(base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]))
    spki = ca.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert words[7] == "sha256:" + hashlib.sha256(spki).hexdigest()
    assert review(cluster, words[5])["authenticated"] is True
    # the anonymous read of kube-public/cluster-info that kubeadm's discovery uses is allowed
    binding = cluster.kubectl_json("get", "rolebinding", "-n", "kube-public", "kubeadm:bootstrap-signer-clusterinfo")
    assert binding["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                                    "name": "system:anonymous"}]


def test_token_cleaner_deletes_expired_tokens(cluster: PodlifeProcess) -> None:
    from tests.cluster_harness import wait_for

    short = create_token(cluster, "--ttl", "2s")
    name = f"bootstrap-token-{short.split('.')[0]}"
    keeper = create_token(cluster, "--ttl", "1h")
    wait_for(lambda: cluster.kubectl("get", "secret", "-n", "kube-system", name, check=False).returncode != 0,
             timeout=60, what="the expired token's Secret deleted by the token cleaner")
    assert review(cluster, short)["error"] == "invalid bearer token"
    assert review(cluster, keeper)["authenticated"] is True


def test_authenticator_refuses_a_token_once_it_expires() -> None:
    """The expiry check itself, apart from the cleaner (which deletes expired Secrets at once)."""
    from podlife.api.authn import BoundObjectLookups
    from podlife.api.bootstrap_tokens import BootstrapTokens
    from podlife.machinery import bootstrap_token as bt

    now = [1_000_000.0]
    token = bt.BootstrapToken("abc123", "0123456789abcdef", bt.rfc3339(now[0] + 60))
    stored = {(bt.NAMESPACE, "bootstrap-token-abc123"): bt.token_secret(token)}
    authenticator = BootstrapTokens(BoundObjectLookups(service_account=lambda ns, name: None,
                                                                         secret_object=lambda ns, name: stored.get((ns, name))),
                                       ["https://kubernetes.default.svc"], clock=lambda: now[0])
    accepted = authenticator.authenticate_token(token.token, None)
    assert accepted is not None and accepted.user.username == "system:bootstrap:abc123"
    now[0] += 61
    assert authenticator.authenticate_token(token.token, None) is None
    assert authenticator.authenticate_token("not-a-bootstrap-token", None) is None
