"""Legacy secret-based service-account tokens: only when asked for, valid while secret and account last.

As a user of Kubernetes 1.24+ meets them: ``kubectl create serviceaccount`` makes no
Secret; a Secret of type ``kubernetes.io/service-account-token`` annotated with the
account's name gets ``token``, ``ca.crt`` and ``namespace`` from the token controller;
``kubectl --token`` then acts as the account, until the Secret or the account is deleted.
"""

from __future__ import annotations

import base64
import json
import subprocess
from datetime import datetime, timezone

import yaml

from podlife.api.identity import parse_jws

from .cluster_harness import PodlifeProcess, wait_for
from .test_e2e_root_ca import cluster_ca

TOKEN_TYPE = "kubernetes.io/service-account-token"


def token_secret(name: str, account: str) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Secret", "type": TOKEN_TYPE,
                       "metadata": {"name": name, "annotations": {"kubernetes.io/service-account.name": account}}})


def filled_secret(cluster: PodlifeProcess, namespace: str, name: str) -> dict:
    def filled() -> dict | None:
        status, secret = cluster.http("GET", f"/api/v1/namespaces/{namespace}/secrets/{name}")
        return secret if status == 200 and (secret.get("data") or {}).get("token") else None
    return wait_for(filled, 30, what=f"the token of secret {namespace}/{name}")


def whoami(cluster: PodlifeProcess, token: str) -> tuple[int, dict | str]:
    """A SelfSubjectReview over raw HTTPS with only the token."""
    answer = cluster.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                             {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
                             auth=False, headers={"Authorization": f"Bearer {token}"})
    body = json.loads(answer.body) if answer.body.startswith(b"{") else answer.body.decode()
    return answer.status, body


def token_kubectl(cluster: PodlifeProcess, token: str, *args: str) -> subprocess.CompletedProcess:
    """kubectl with a kubeconfig holding only the server, its CA and ``token`` (no client certificate)."""
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    config["users"] = [{"name": "token-user", "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = "token-user"
    path = cluster.data_dir / "token-kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run([cluster.kubectl_bin, "--kubeconfig", str(path), *args], capture_output=True, text=True,
                          timeout=60)


def setup_account(cluster: PodlifeProcess, namespace: str, account: str) -> str:
    cluster.kubectl("create", "namespace", namespace)
    cluster.kubectl("create", "serviceaccount", account, "-n", namespace)
    return str(cluster.kubectl_json("get", "serviceaccount", account, "-n", namespace)["metadata"]["uid"])


def test_a_token_secret_is_filled_in_and_its_token_authenticates(cluster: PodlifeProcess) -> None:
    uid = setup_account(cluster, "legacy-a", "robot")
    secrets = cluster.kubectl_json("get", "secrets", "-n", "legacy-a")["items"]
    assert [s for s in secrets if s.get("type") == TOKEN_TYPE] == []  # none made unasked
    cluster.kubectl("create", "-n", "legacy-a", "-f", "-", input=token_secret("robot-token", "robot"))
    secret = filled_secret(cluster, "legacy-a", "robot-token")
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert set(data) == {"token", "ca.crt", "namespace"}
    assert data["namespace"] == "legacy-a" and data["ca.crt"] == cluster_ca(cluster)
    assert secret["metadata"]["annotations"] == {"kubernetes.io/service-account.name": "robot",
                                                 "kubernetes.io/service-account.uid": uid}
    jwt = parse_jws(data["token"])
    assert jwt.claims == {
        "iss": "kubernetes/serviceaccount", "sub": "system:serviceaccount:legacy-a:robot",
        "kubernetes.io/serviceaccount/namespace": "legacy-a",
        "kubernetes.io/serviceaccount/secret.name": "robot-token",
        "kubernetes.io/serviceaccount/service-account.name": "robot",
        "kubernetes.io/serviceaccount/service-account.uid": uid,
    }
    answer = token_kubectl(cluster, data["token"], "auth", "whoami", "-o", "json")
    assert answer.returncode == 0, answer.stderr
    me = json.loads(answer.stdout)
    assert me["status"]["userInfo"]["username"] == "system:serviceaccount:legacy-a:robot"
    assert set(me["status"]["userInfo"]["groups"]) == {"system:serviceaccounts", "system:serviceaccounts:legacy-a",
                                                       "system:authenticated"}
    # ``kubectl --token`` beside the admin's kubeconfig: the token is who the request is
    assert "system:serviceaccount:legacy-a:robot" in cluster.kubectl("auth", "whoami", "--token", data["token"]).stdout
    status, review = cluster.http("POST", "/apis/authentication.k8s.io/v1/tokenreviews", {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": data["token"]}})
    assert status == 201 and review["status"]["authenticated"] is True

    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    wait_for(lambda: cluster.kubectl_json("get", "secret", "robot-token", "-n", "legacy-a")["metadata"].get(
        "labels") == {"kubernetes.io/legacy-token-last-used": today}, 30, what="the last-used label")

    cluster.kubectl("delete", "secret", "robot-token", "-n", "legacy-a")
    wait_for(lambda: whoami(cluster, data["token"])[0] == 401, 30, what="the token to stop working")
    result = token_kubectl(cluster, data["token"], "auth", "whoami")
    assert result.returncode != 0 and "Unauthorized" in result.stderr


def test_deleting_the_account_deletes_its_token_secrets_and_stops_the_token(cluster: PodlifeProcess) -> None:
    setup_account(cluster, "legacy-b", "builder")
    cluster.kubectl("create", "-n", "legacy-b", "-f", "-", input=token_secret("builder-token", "builder"))
    token = base64.b64decode(filled_secret(cluster, "legacy-b", "builder-token")["data"]["token"]).decode()
    status, me = whoami(cluster, token)
    assert status == 201 and me["status"]["userInfo"]["username"] == "system:serviceaccount:legacy-b:builder"
    cluster.kubectl("delete", "serviceaccount", "builder", "-n", "legacy-b")
    assert whoami(cluster, token)[0] == 401  # at once: the account is gone from the cache
    wait_for(lambda: cluster.http("GET", "/api/v1/namespaces/legacy-b/secrets/builder-token")[0] == 404, 30,
             what="the token controller to delete the secret")


def test_a_recreated_account_does_not_inherit_old_tokens(cluster: PodlifeProcess) -> None:
    setup_account(cluster, "legacy-c", "bot")
    cluster.kubectl("create", "-n", "legacy-c", "-f", "-", input=token_secret("bot-token", "bot"))
    token = base64.b64decode(filled_secret(cluster, "legacy-c", "bot-token")["data"]["token"]).decode()
    status, body = cluster.http("DELETE", "/api/v1/namespaces/legacy-c/serviceaccounts/bot")
    assert status == 200, body
    cluster.kubectl("create", "serviceaccount", "bot", "-n", "legacy-c")
    assert whoami(cluster, token)[0] == 401  # the uid in the token is the old account's


def test_a_token_secret_for_no_account_is_deleted(cluster: PodlifeProcess) -> None:
    cluster.kubectl("create", "namespace", "legacy-d")
    cluster.kubectl("create", "-n", "legacy-d", "-f", "-", input=token_secret("orphan-token", "nobody"))
    wait_for(lambda: cluster.http("GET", "/api/v1/namespaces/legacy-d/secrets/orphan-token")[0] == 404, 30,
             what="the orphan token secret to be deleted")


def test_a_forged_legacy_token_is_refused(cluster: PodlifeProcess) -> None:
    setup_account(cluster, "legacy-e", "victim")
    cluster.kubectl("create", "-n", "legacy-e", "-f", "-", input=token_secret("victim-token", "victim"))
    token = base64.b64decode(filled_secret(cluster, "legacy-e", "victim-token")["data"]["token"]).decode()
    head, body, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["sub"] = "system:serviceaccount:kube-system:admin"
    forged_body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    assert whoami(cluster, f"{head}.{forged_body}.{signature}")[0] == 401
    # a token the secret does not hold (its data replaced by the user) no longer works either
    cluster.kubectl("patch", "secret", "victim-token", "-n", "legacy-e", "--type=merge",
                    "-p", json.dumps({"data": {"token": base64.b64encode(b"something-else").decode()}}))
    wait_for(lambda: whoami(cluster, token)[0] == 401, 30, what="the replaced token to stop working")
