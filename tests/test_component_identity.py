"""Each in-process component acts as its own user, and is authorized and audited as one.

A real ``podlife up`` with an audit log runs a pod on its local node and one on a
simulated node; the log must name the scheduler (``system:kube-scheduler``) for the
binding, the kubelet (``system:node:<name>``) and the node simulator's service account
for the status writes, the network controller for the port, and the service-account
controller for the namespace's ``default`` account, each allowed by its own RBAC
binding. Taking the scheduler's ClusterRoleBinding away stops scheduling with a 403 in
the log; giving it back resumes it. In process, a node's client is held to
NodeRestriction like a kubelet over HTTPS.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from podlife.api.authorization import UnionAuthorizer
from podlife.api.authz.node import NodeAuthorizer
from podlife.api.authz.rbac import RBACAuthorizer
from podlife.api.authz.bootstrap import ensure_bootstrap_policy
from podlife.api.identity import SCHEDULER_USER, controller_user, node_user
from podlife.api.rbac_source import CachePodSource, CacheRBACSource
from podlife.client.base import NAMESPACES, NODES, PODS
from podlife.machinery.errors import ApiError

from .cluster_harness import PodlifeProcess, require_tool, wait_for
from .in_process import InProcessApi, in_process_api

SIM = "system:serviceaccount:kube-system:node-simulator"


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PodlifeProcess, Path]]:
    base = tmp_path_factory.mktemp("identity")
    log = base / "audit.log"
    proc = PodlifeProcess(base / "data", "--nodes", "1", "--sim-nodes", "1", "--audit-log-path", str(log),
                          kubectl=require_tool("kubectl")).start()
    try:
        yield proc, log
    finally:
        proc.stop()


def completed(log: Path, **want: str) -> list[dict[str, Any]]:
    """ResponseComplete events whose user, verb and objectRef fields are ``want``'s."""
    found = []
    for line in log.read_text().splitlines():
        event = json.loads(line)
        if event.get("stage") != "ResponseComplete":
            continue
        ref = event.get("objectRef") or {}
        fields = {"user": event["user"]["username"], "verb": event["verb"], **ref}
        if all(fields.get(key, "") == value for key, value in want.items()):
            found.append(event)
    return found


def local_node(cluster: PodlifeProcess) -> str:
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    return next(n["metadata"]["name"] for n in nodes if not n["metadata"]["name"].startswith("sim-"))


def pod_on(cluster: PodlifeProcess, namespace: str, name: str, node: str) -> None:
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
                "spec": {"nodeSelector": {"kubernetes.io/hostname": node}, "terminationGracePeriodSeconds": 0,
                         "containers": [{"name": "app", "image": "busybox", "command": ["sleep", "600"]}]}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))


def phase(cluster: PodlifeProcess, namespace: str, name: str) -> str:
    return cluster.kubectl("get", "pod", name, "-n", namespace, "-o", "jsonpath={.status.phase}").stdout


@pytest.mark.e2e
def test_each_component_writes_as_itself(audited: tuple[PodlifeProcess, Path]) -> None:
    cluster, log = audited
    cluster.kubectl("create", "namespace", "ident")
    node = local_node(cluster)
    pod_on(cluster, "ident", "real", node)
    pod_on(cluster, "ident", "simulated", "sim-node-0")
    for name in ("real", "simulated"):
        wait_for(lambda name=name: phase(cluster, "ident", name) == "Running", 60, what=f"pod {name} Running")

    binding = completed(log, user=SCHEDULER_USER.username, verb="create", resource="pods", subresource="binding",
                        namespace="ident", name="real")
    assert binding and binding[-1]["responseStatus"]["code"] == 201
    assert binding[-1]["annotations"]["authorization.k8s.io/reason"].startswith(
        'RBAC: allowed by ClusterRoleBinding "system:kube-scheduler" of ClusterRole "system:kube-scheduler"')
    assert binding[-1]["userAgent"] == "kube-scheduler"
    assert completed(log, user=f"system:node:{node}", verb="patch", resource="pods", subresource="status",
                     name="real")
    assert not completed(log, user=f"system:node:{node}", name="simulated")  # never touches another node's pod
    assert completed(log, user=SIM, verb="patch", resource="pods", subresource="status", name="simulated")
    assert completed(log, user=controller_user("network-controller").username, verb="create", resource="ports",
                     namespace="ident", name="real")
    created = completed(log, user=controller_user("service-account-controller").username, verb="create",
                        resource="serviceaccounts", namespace="ident")
    assert created and created[-1]["responseStatus"]["code"] == 201
    assert 'ClusterRoleBinding "system:controller:service-account-controller"' in \
        created[-1]["annotations"]["authorization.k8s.io/reason"]


@pytest.mark.e2e
def test_the_scheduler_is_held_to_its_rbac_binding(audited: tuple[PodlifeProcess, Path]) -> None:
    cluster, log = audited
    cluster.kubectl("create", "namespace", "unbound")
    saved = cluster.kubectl("get", "clusterrolebinding", "system:kube-scheduler", "-o", "json").stdout
    cluster.kubectl("delete", "clusterrolebinding", "system:kube-scheduler")
    try:
        pod_on(cluster, "unbound", "waits", "sim-node-0")
        wait_for(lambda: completed(log, user=SCHEDULER_USER.username, verb="create", subresource="binding",
                                   namespace="unbound", name="waits"), 60, what="the scheduler's refused binding")
        refused = completed(log, user=SCHEDULER_USER.username, verb="create", subresource="binding",
                            namespace="unbound", name="waits")
        assert refused[0]["responseStatus"]["code"] == 403
        assert refused[0]["annotations"]["authorization.k8s.io/decision"] == "forbid"
        node = cluster.kubectl("get", "pod", "waits", "-n", "unbound", "-o", "jsonpath={.spec.nodeName}").stdout
        assert node == ""
    finally:
        restored = json.loads(saved)
        for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
            restored["metadata"].pop(key, None)
        cluster.kubectl("apply", "-f", "-", input=json.dumps(restored))
    wait_for(lambda: phase(cluster, "unbound", "waits") == "Running", 90, what="scheduling after the binding is back")


@pytest.fixture
async def guarded_api() -> AsyncIterator[InProcessApi]:
    """An in-process API with the bootstrap policy and the server's authorizers (Node, RBAC)."""
    async with in_process_api() as api:
        await ensure_bootstrap_policy(api.client)
        api.ctx.authorizer = UnionAuthorizer([NodeAuthorizer(CachePodSource(api.ctx)),
                                              RBACAuthorizer(CacheRBACSource(api.ctx))])
        yield api


def _pod(name: str, node: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}}


async def test_a_node_client_in_process_is_held_to_node_restriction(guarded_api: InProcessApi) -> None:
    admin = guarded_api.client
    await admin.create(PODS, _pod("mine", "a"))
    await admin.create(PODS, _pod("theirs", "b"))
    node_a = admin.as_user(node_user("a"), user_agent="kubelet")
    await node_a.patch(PODS, "mine", {"status": {"message": "ok"}}, "default", subresource="status")
    with pytest.raises(ApiError) as refused:
        await node_a.patch(PODS, "theirs", {"status": {"message": "no"}}, "default", subresource="status")
    assert refused.value.code == 403
    with pytest.raises(ApiError) as not_a_node_thing:
        await node_a.list(NAMESPACES)
    assert not_a_node_thing.value.code == 403
    assert 'User "system:node:a" cannot list resource "namespaces"' in not_a_node_thing.value.message


async def test_a_controller_reads_with_the_informers_identity_and_writes_with_its_own(
        guarded_api: InProcessApi) -> None:
    from podlife.api.identity import CONTROLLER_MANAGER_USER

    admin = guarded_api.client
    sa_controller = admin.as_user(controller_user("service-account-controller"), reads_as=CONTROLLER_MANAGER_USER)
    assert (await sa_controller.list(NODES))["items"] == []  # kube-controller-manager's informers list everything
    with pytest.raises(ApiError) as refused:  # ... but the controller may write only service accounts
        await sa_controller.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}})
    assert refused.value.code == 403
    assert "system:serviceaccount:kube-system:service-account-controller" in refused.value.message
    scheduler = admin.as_user(SCHEDULER_USER)
    with pytest.raises(ApiError):
        await scheduler.delete(NAMESPACES, "default")
