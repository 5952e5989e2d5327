"""Authentication and the review APIs through kubectl: can-i, whoami, create token."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from .cluster_harness import PodlifeProcess, wait_for

pytestmark = pytest.mark.e2e


def test_auth_can_i_and_whoami(cluster: PodlifeProcess) -> None:
    assert cluster.kubectl("auth", "can-i", "create", "pods").stdout.strip() == "yes"
    out = cluster.kubectl("auth", "whoami").stdout
    assert "podlife-admin" in out and "system:masters" in out


def token_kubeconfig(cluster: PodlifeProcess, token: str, tmp_path: Path) -> Path:
    """The cluster's kubeconfig with ``token`` as the user's only credential."""
    cfg = yaml.safe_load(cluster.kubeconfig.read_text())
    cfg["users"][0]["user"] = {"token": token}
    path = tmp_path / "token-kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_service_account_token_authenticates(cluster: PodlifeProcess, tmp_path: Path) -> None:
    wait_for(lambda: cluster.kubectl("get", "serviceaccount", "default", check=False).returncode == 0, 30,
             what="the default service account")
    token = cluster.kubectl("create", "token", "default", "--duration=1h").stdout.strip()
    assert token.count(".") == 2
    status, body = cluster.http("GET", "/api/v1/namespaces/default/pods", auth=False,
                                headers={"Authorization": f"Bearer {token}"})
    # authenticated, but RBAC grants a bare service account nothing
    assert status == 403 and body["message"] == ('pods is forbidden: User "system:serviceaccount:default:default" '
                                                 'cannot list resource "pods" in API group "" in the namespace "default"')
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert cluster.http("GET", "/api/v1/pods", auth=False, headers={"Authorization": f"Bearer {forged}"})[0] == 401
    out = cluster.kubectl("auth", "whoami", f"--kubeconfig={token_kubeconfig(cluster, token, tmp_path)}").stdout
    assert "system:serviceaccount:default:default" in out
    # a token given with --token beside the admin's certificate is the token's user
    assert "system:serviceaccount:default:default" in cluster.kubectl("auth", "whoami", f"--token={token}").stdout


def test_review_kinds_are_create_only(cluster: PodlifeProcess) -> None:
    status, body = cluster.http("GET", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")
    assert status == 405 and body["reason"] == "MethodNotAllowed"
