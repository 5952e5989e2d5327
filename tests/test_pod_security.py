"""Pod Security admission: the standards' checks, Kubernetes' messages, namespace labels, kubectl.

The pure checks are played on pod specs; enforcement and warnings go through the
in-process API and, as a user meets them, through ``kubectl`` against a real server.
"""

from __future__ import annotations

from typing import Any

import pytest

from podlife.api.local_client import LocalClient
from podlife.api.pod_security import (
    BASELINE, PRIVILEGED, RESTRICTED, NamespacePolicy, evaluate, namespace_policy, violation_message,
)
from podlife.client.base import NAMESPACES, PODS
from podlife.machinery.errors import ApiError

from .cluster_harness import PodlifeProcess
from .in_process import InProcessApi

Obj = dict[str, Any]


def spec(**container: Any) -> Obj:
    return {"containers": [{"name": "c", "image": "busybox", **container}]}


RESTRICTED_OK: Obj = {
    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [{"name": "c", "image": "busybox", "securityContext": {
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}],
}


def test_a_plain_pod_fails_restricted_with_kubernetes_message() -> None:
    findings = evaluate(spec(), RESTRICTED)
    assert violation_message("pods", "nginx", RESTRICTED, findings) == (
        'pods "nginx" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false '
        '(container "c" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities '
        '(container "c" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container '
        '"c" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "c" must set '
        'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")')
    assert evaluate(spec(), BASELINE) == [] and evaluate(spec(), PRIVILEGED) == []
    assert evaluate(RESTRICTED_OK, RESTRICTED) == []


def test_baseline_refuses_what_escapes_the_container() -> None:
    bad = {"hostNetwork": True, "hostPID": True, "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
           "containers": [{"name": "c", "image": "b", "securityContext": {"privileged": True,
                                                                          "capabilities": {"add": ["NET_ADMIN", "CHOWN"]}},
                           "ports": [{"containerPort": 80, "hostPort": 8080}]}]}
    text = [str(f) for f in evaluate(bad, BASELINE)]
    assert text == [
        'non-default capabilities (container "c" must not include "NET_ADMIN" in securityContext.capabilities.add)',
        "host namespaces (hostNetwork=true, hostPID=true)",
        'hostPath volumes (volume "root")',
        'hostPort (container "c" uses hostPort 8080)',
        'privileged (container "c" must not set securityContext.privileged=true)',
    ]


def test_namespace_labels_choose_the_levels() -> None:
    assert namespace_policy({}) == NamespacePolicy()
    labels = {"pod-security.kubernetes.io/enforce": "baseline", "pod-security.kubernetes.io/warn": "restricted"}
    assert namespace_policy(labels) == NamespacePolicy(enforce=BASELINE, warn=RESTRICTED)
    assert namespace_policy({"pod-security.kubernetes.io/enforce": "nonsense"}).enforce == RESTRICTED


@pytest.fixture
def client(local_api: InProcessApi) -> LocalClient:
    return local_api.client


async def test_enforce_refuses_with_403_and_stores_nothing(client: LocalClient) -> None:
    await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "locked", "labels": {"pod-security.kubernetes.io/enforce": "baseline"}}})
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "priv", "namespace": "locked"},
           "spec": spec(securityContext={"privileged": True})}
    with pytest.raises(ApiError) as caught:
        await client.create(PODS, pod, "locked")
    assert caught.value.code == 403 and caught.value.reason == "Forbidden"
    assert caught.value.message == ('pods "priv" is forbidden: violates PodSecurity "baseline:latest": privileged '
                                    '(container "c" must not set securityContext.privileged=true)')
    with pytest.raises(ApiError):
        await client.get(PODS, "priv", "locked")
    # kube-system is exempt; a namespace without labels gets the default (privileged)
    await client.create(PODS, {**pod, "metadata": {"name": "priv", "namespace": "kube-system"}}, "kube-system")
    await client.create(PODS, {**pod, "metadata": {"name": "priv", "namespace": "default"}}, "default")


@pytest.mark.e2e
def test_kubectl_shows_the_refusal_and_the_warning(cluster: PodlifeProcess) -> None:
    cluster.kubectl("create", "namespace", "psa")
    cluster.kubectl("label", "namespace", "psa", "pod-security.kubernetes.io/enforce=restricted")
    manifest = ("apiVersion: v1\nkind: Pod\nmetadata: {name: priv, namespace: psa}\nspec:\n  containers: [{name: c, "
                "image: busybox, securityContext: {privileged: true}}]\n")
    refused = cluster.kubectl("create", "-f", "-", input=manifest, check=False)
    assert refused.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in refused.stderr and "privileged (container" in refused.stderr
    cluster.kubectl("create", "namespace", "psa-warn")
    cluster.kubectl("label", "namespace", "psa-warn", "pod-security.kubernetes.io/warn=baseline",
                    "pod-security.kubernetes.io/enforce=privileged")
    warned = cluster.kubectl("create", "-f", "-", input=manifest.replace("namespace: psa}", "namespace: psa-warn}"))
    assert 'Warning: would violate PodSecurity "baseline:latest": privileged' in warned.stderr
    assert cluster.kubectl("get", "pod", "priv", "-n", "psa-warn", check=False).returncode == 0


@pytest.mark.e2e
def test_podlife_up_admits_privileged_pods_where_no_label_says_otherwise(cluster: PodlifeProcess) -> None:
    """Kubernetes' default level is ``privileged``: a privileged pod in ``default`` is admitted."""
    created = cluster.kubectl("create", "-f", "-", input=PRIVILEGED_POD)
    assert "pod/priv-default created" in created.stdout
    cluster.kubectl("delete", "pod", "priv-default", "--grace-period=0", "--force", "--wait=false")


@pytest.mark.e2e
def test_podlife_up_pod_security_default_enforces_a_level_where_no_label_says_otherwise(tmp_path: Any) -> None:
    """``podlife up --pod-security-default baseline``: a privileged pod in ``default`` is refused."""
    proc = PodlifeProcess(tmp_path / "data", "--nodes", "0", "--pod-security-default", "baseline")
    try:
        refused = proc.start().kubectl("create", "-f", "-", input=PRIVILEGED_POD, check=False)
    finally:
        proc.stop()
    assert refused.returncode != 0 and 'violates PodSecurity "baseline:latest": privileged' in refused.stderr


PRIVILEGED_POD = ("apiVersion: v1\nkind: Pod\nmetadata: {name: priv-default}\nspec:\n  containers: [{name: c, "
                  "image: busybox, securityContext: {privileged: true}}]\n")
