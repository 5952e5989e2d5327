"""Authentication and the review APIs through kubectl: can-i, whoami, create token."""

from __future__ import annotations

import pytest

from .cluster_harness import PodlifeProcess, wait_for

pytestmark = pytest.mark.e2e


def test_auth_can_i_and_whoami(cluster: PodlifeProcess) -> None:
    assert cluster.kubectl("auth", "can-i", "create", "pods").stdout.strip() == "yes"
    out = cluster.kubectl("auth", "whoami").stdout
    assert "podlife-admin" in out and "system:masters" in out


def test_service_account_token_authenticates(cluster: PodlifeProcess) -> None:
    wait_for(lambda: cluster.kubectl("get", "serviceaccount", "default", check=False).returncode == 0, 30,
             what="the default service account")
    token = cluster.kubectl("create", "token", "default", "--duration=1h").stdout.strip()
    assert token.count(".") == 2
    status, body = cluster.http("GET", "/api/v1/namespaces/default/pods", auth=False,
                                headers={"Authorization": f"Bearer {token}"})
    assert status == 200 and body["kind"] == "PodList"
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert cluster.http("GET", "/api/v1/pods", auth=False, headers={"Authorization": f"Bearer {forged}"})[0] == 401
    out = cluster.kubectl("auth", "whoami", "--token", token).stdout
    assert "system:serviceaccount:default:default" in out


def test_review_kinds_are_create_only(cluster: PodlifeProcess) -> None:
    status, body = cluster.http("GET", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")
    assert status == 405 and body["reason"] == "MethodNotAllowed"
