"""RBAC as a user meets it, with the tokens podlife hands out and the real kubectl.

A service account's token (``kubectl create token``) may do nothing until a binding says
so: reading another namespace's Secrets, deleting nodes and binding itself to
cluster-admin are refused with Kubernetes' 403; ``kubectl auth can-i`` says no; a
RoleBinding to the ``view`` ClusterRole (whose rules the aggregation controller fills)
lets it read Pods in that namespace only.
"""

from __future__ import annotations

import subprocess

import pytest

from .cluster_harness import PodlifeProcess, wait_for

pytestmark = pytest.mark.e2e


def as_token(cluster: PodlifeProcess, token: str, *args: str, check: bool = False) -> subprocess.CompletedProcess:
    return cluster.kubectl(f"--token={token}", *args, check=check)


def test_a_service_account_may_do_only_what_a_binding_grants(cluster: PodlifeProcess) -> None:
    cluster.kubectl("create", "namespace", "sec")
    cluster.kubectl("-n", "sec", "create", "serviceaccount", "app")
    cluster.kubectl("-n", "kube-system", "create", "secret", "generic", "hidden", "--from-literal=k=v")
    token = cluster.kubectl("-n", "sec", "create", "token", "app").stdout.strip()

    secret = as_token(cluster, token, "-n", "kube-system", "get", "secret", "hidden")
    assert secret.returncode != 0
    assert ('secrets "hidden" is forbidden: User "system:serviceaccount:sec:app" cannot get resource "secrets" in API '
            'group "" in the namespace "kube-system"') in secret.stderr
    assert as_token(cluster, token, "delete", "node", "--all", "--dry-run=server").returncode != 0
    evil = as_token(cluster, token, "create", "clusterrolebinding", "evil", "--clusterrole=cluster-admin",
                    "--serviceaccount=sec:app")
    assert evil.returncode != 0 and "forbidden" in evil.stderr
    assert as_token(cluster, token, "auth", "can-i", "delete", "nodes").stdout.strip() == "no"
    assert as_token(cluster, token, "-n", "sec", "get", "pods").returncode != 0

    cluster.kubectl("-n", "sec", "create", "rolebinding", "app-view", "--clusterrole=view",
                    "--serviceaccount=sec:app")
    wait_for(lambda: as_token(cluster, token, "-n", "sec", "get", "pods").returncode == 0, 15,
             what="the view binding to take effect (the aggregated view role filled)")
    assert as_token(cluster, token, "-n", "sec", "auth", "can-i", "list", "pods").stdout.strip() == "yes"
    assert as_token(cluster, token, "-n", "sec", "auth", "can-i", "create", "pods").stdout.strip() == "no"
    assert as_token(cluster, token, "-n", "default", "get", "pods").returncode != 0  # a RoleBinding stays in sec
    rules = as_token(cluster, token, "-n", "sec", "auth", "can-i", "--list", check=True).stdout
    assert "pods" in rules and "selfsubjectaccessreviews.authorization.k8s.io" in rules


def test_the_admin_may_do_everything_and_reviews_answer_truthfully(cluster: PodlifeProcess) -> None:
    assert cluster.kubectl("auth", "can-i", "'*'", "'*'").stdout.strip() == "yes"
    # the admin may ask about somebody else with a SubjectAccessReview
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
              "spec": {"user": "system:serviceaccount:sec:nobody",
                       "resourceAttributes": {"namespace": "kube-system", "verb": "list", "resource": "secrets"}}}
    status, body = cluster.http("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", review)
    assert status == 201 and body["status"]["allowed"] is False
    review["spec"]["groups"] = ["system:masters"]
    status, body = cluster.http("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", review)
    assert status == 201 and body["status"]["allowed"] is True


def test_nobody_grants_what_they_do_not_hold(cluster: PodlifeProcess) -> None:
    """A namespace admin may hand out view, not cluster-admin; may write Roles within what they hold."""
    cluster.kubectl("create", "namespace", "team")
    cluster.kubectl("-n", "team", "create", "serviceaccount", "lead")
    cluster.kubectl("-n", "team", "create", "rolebinding", "lead-admin", "--clusterrole=admin",
                    "--serviceaccount=team:lead")
    token = cluster.kubectl("-n", "team", "create", "token", "lead").stdout.strip()
    wait_for(lambda: as_token(cluster, token, "-n", "team", "auth", "can-i", "create", "rolebindings").stdout.strip()
             == "yes", 15, what="the admin binding (aggregated admin role)")
    escalate = as_token(cluster, token, "-n", "team", "create", "rolebinding", "grab", "--clusterrole=cluster-admin",
                        "--serviceaccount=team:lead")
    assert escalate.returncode != 0
    assert ('rolebindings.rbac.authorization.k8s.io "grab" is forbidden: user "system:serviceaccount:team:lead" '
            '(groups=["system:serviceaccounts" "system:serviceaccounts:team" "system:authenticated"]) is attempting '
            "to grant RBAC permissions not currently held:") in escalate.stderr
    assert as_token(cluster, token, "-n", "team", "create", "rolebinding", "readers", "--clusterrole=view",
                    "--serviceaccount=team:default").returncode == 0
    assert as_token(cluster, token, "-n", "team", "create", "role", "secret-reader", "--verb=get",
                    "--resource=secrets").returncode == 0
    nodes = as_token(cluster, token, "-n", "team", "create", "role", "node-reader", "--verb=get", "--resource=nodes")
    assert nodes.returncode != 0 and "attempting to grant RBAC permissions not currently held" in nodes.stderr
    # the admin may grant anything
    cluster.kubectl("-n", "team", "create", "rolebinding", "grab", "--clusterrole=cluster-admin",
                    "--serviceaccount=team:lead")
