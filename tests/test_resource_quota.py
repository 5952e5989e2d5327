"""ResourceQuota admission: counts, compute amounts and scopes bound creates, with Kubernetes' 403 messages.

The admission step runs in every namespaced create (``ResourceREST.create``); the usage a
quota controller would write is checked through :func:`quota_usage`.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from podlife.api.resource_quota import (
    admission_keys, format_quantity, namespace_quotas, parse, pod_usage, quota_usage,
)
from podlife.client.base import CONFIGMAPS, NAMESPACES, PODS, SERVICES, Resource
from podlife.machinery.errors import ApiError

from .in_process import InProcessApi

Obj = dict[str, Any]
QUOTAS = Resource("", "v1", "resourcequotas", "ResourceQuota")
LIMIT_RANGES = Resource("", "v1", "limitranges", "LimitRange")
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")
PRIORITY_CLASSES = Resource("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", namespaced=False)
NS = "team"


@pytest.fixture
async def api(local_api: InProcessApi) -> InProcessApi:
    keys = admission_keys(local_api.ctx)
    assert ("", "pods") in keys and ("", "configmaps") in keys and ("apps", "deployments") in keys
    assert ("", "events") not in keys and ("authorization.k8s.io", "localsubjectaccessreviews") not in keys
    await local_api.client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    return local_api


async def quota(api: InProcessApi, name: str, hard: dict[str, str], **spec: Any) -> Obj:
    return await api.client.create(QUOTAS, {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": name},
                                            "spec": {"hard": hard, **spec}}, NS)


def container(name: str = "c", **fields: Any) -> Obj:
    """A container; ``requests`` and ``limits`` go to its resources."""
    resources = {kind: fields.pop(kind) for kind in ("requests", "limits") if kind in fields}
    return {"name": name, "image": "busybox", **fields, **({"resources": resources} if resources else {})}


def pod(name: str, *containers: Obj, **spec: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": list(containers) or [container()], **spec}}


def req(cpu: str | None = None, memory: str | None = None) -> Obj:
    return {"requests": {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}}


async def refused(api: InProcessApi, obj: Obj, res: Resource = PODS) -> ApiError:
    with pytest.raises(ApiError) as caught:
        await api.client.create(res, obj, NS)
    assert caught.value.code == 403 and caught.value.reason == "Forbidden"
    with pytest.raises(ApiError) as missing:  # nothing was stored
        await api.client.get(res, obj["metadata"]["name"], NS)
    assert missing.value.code == 404
    return caught.value


async def usage_of(api: InProcessApi, name: str) -> dict[str, str]:
    return quota_usage(api.ctx, await api.client.get(QUOTAS, name, NS))


async def test_a_pods_quota_refuses_the_third_pod(api: InProcessApi) -> None:
    await quota(api, "pods-quota", {"pods": "2"})
    for name in ("p1", "p2"):
        await api.client.create(PODS, pod(name), NS)
    error = await refused(api, pod("p3"))
    assert error.message == 'pods "p3" is forbidden: exceeded quota: pods-quota, requested: pods=1, used: pods=2, limited: pods=2'
    assert error.status()["details"] == {"name": "p3", "kind": "pods"}
    assert await usage_of(api, "pods-quota") == {"pods": "2"}
    # another namespace's quota does not apply
    await api.client.create(PODS, pod("p3"), "default")


async def test_a_terminal_pod_uses_no_pods_but_still_counts_as_an_object(api: InProcessApi) -> None:
    await quota(api, "q", {"pods": "1", "count/pods": "2"})
    await api.client.create(PODS, pod("done"), NS)
    await api.client.patch(PODS, "done", {"status": {"phase": "Succeeded"}}, NS, subresource="status")
    await api.client.create(PODS, pod("running"), NS)
    assert await usage_of(api, "q") == {"count/pods": "2", "pods": "1"}
    error = await refused(api, pod("third"))
    assert error.message == ('pods "third" is forbidden: exceeded quota: q, requested: count/pods=1,pods=1, '
                             "used: count/pods=2,pods=1, limited: count/pods=2,pods=1")


def test_a_pod_stuck_terminating_past_its_grace_period_is_not_charged() -> None:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    deleting = pod("x", container(**req("1")))
    deleting["metadata"].update({"deletionTimestamp": "2026-01-01T00:00:00Z", "deletionGracePeriodSeconds": 30})
    assert pod_usage(deleting, now + timedelta(seconds=30))["requests.cpu"] == parse("1")
    assert set(pod_usage(deleting, now + timedelta(seconds=31))) == {"count/pods"}


async def test_cpu_and_memory_requests_are_summed_and_bounded(api: InProcessApi) -> None:
    await quota(api, "compute", {"requests.cpu": "1", "requests.memory": "1Gi", "limits.memory": "2Gi"})
    await api.client.create(PODS, pod("a", container(requests={"cpu": "500m", "memory": "512Mi"},
                                                     limits={"memory": "1Gi"})), NS)
    error = await refused(api, pod("b", container(requests={"cpu": "600m", "memory": "256Mi"}, limits={"memory": "1Gi"})))
    assert error.message == ('pods "b" is forbidden: exceeded quota: compute, requested: requests.cpu=600m, '
                             "used: requests.cpu=500m, limited: requests.cpu=1")
    error = await refused(api, pod("c", container(requests={"cpu": "0.5", "memory": "600Mi"},
                                                  limits={"memory": "1100Mi"})))
    assert error.message == ('pods "c" is forbidden: exceeded quota: compute, requested: limits.memory=1100Mi,'
                             "requests.memory=600Mi, used: limits.memory=1Gi,requests.memory=512Mi, "
                             "limited: limits.memory=2Gi,requests.memory=1Gi")
    # an init container needs its request on its own: the pod requests the larger of it and the containers' sum
    init = pod("init", container("a", **req("100m", "64Mi"), limits={"memory": "64Mi"}),
               container("b", **req("100m", "64Mi"), limits={"memory": "64Mi"}),
               initContainers=[container("setup", **req("800m", "64Mi"), limits={"memory": "64Mi"})])
    error = await refused(api, init)
    assert error.message == ('pods "init" is forbidden: exceeded quota: compute, requested: requests.cpu=800m, '
                             "used: requests.cpu=500m, limited: requests.cpu=1")
    # a sidecar (an init container that keeps running) adds to the containers
    sidecar = pod("sidecar", container("a", **req("100m", "64Mi"), limits={"memory": "64Mi"}),
                  initContainers=[container("proxy", **req("300m", "64Mi"), limits={"memory": "64Mi"}, restartPolicy="Always")])
    await api.client.create(PODS, sidecar, NS)
    assert await usage_of(api, "compute") == {"limits.memory": "1152Mi", "requests.cpu": "900m", "requests.memory": "640Mi"}
    error = await refused(api, pod("last", container(**req("200m", "1Mi"), limits={"memory": "1Mi"})))
    assert error.message == ('pods "last" is forbidden: exceeded quota: compute, requested: requests.cpu=200m, '
                             "used: requests.cpu=900m, limited: requests.cpu=1")


async def test_a_quota_on_cpu_or_memory_wants_every_container_to_set_it(api: InProcessApi) -> None:
    await quota(api, "compute", {"limits.cpu": "2", "requests.memory": "1Gi", "pods": "10"})
    error = await refused(api, pod("p", container(requests={"memory": "64Mi"})))
    assert error.message == 'pods "p" is forbidden: failed quota: compute: must specify limits.cpu for: c'
    many = pod("many", container("b", limits={"cpu": "1"}), container("a"),
               initContainers=[container("init", requests={"memory": "1Mi"}, limits={"cpu": "1"})])
    error = await refused(api, many)
    assert error.message == ('pods "many" is forbidden: failed quota: compute: must specify limits.cpu for: a; '
                             "requests.memory for: a,b")
    # limits alone are enough for requests: the pod's defaults request what it limits
    await api.client.create(PODS, pod("ok", container(limits={"cpu": "1", "memory": "64Mi"})), NS)
    # pod-level resources free the containers from it
    await api.client.create(PODS, pod("pod-level", resources={"limits": {"cpu": "1", "memory": "64Mi"},
                                                               "requests": {"memory": "64Mi"}}), NS)
    assert await usage_of(api, "compute") == {"limits.cpu": "2", "pods": "2", "requests.memory": "128Mi"}


async def test_a_limit_range_default_satisfies_the_quota(api: InProcessApi) -> None:
    await api.client.create(LIMIT_RANGES, {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "lr"},
                                           "spec": {"limits": [{"type": "Container", "default": {"cpu": "300m"}}]}}, NS)
    await quota(api, "compute", {"limits.cpu": "500m"})
    await api.client.create(PODS, pod("first"), NS)
    error = await refused(api, pod("second"))
    assert error.message == ('pods "second" is forbidden: exceeded quota: compute, requested: limits.cpu=300m, '
                             "used: limits.cpu=300m, limited: limits.cpu=500m")


async def test_scopes_choose_the_pods_a_quota_covers(api: InProcessApi) -> None:
    await quota(api, "best-effort", {"pods": "1"}, scopes=["BestEffort"])
    await quota(api, "terminating", {"pods": "1"}, scopes=["Terminating", "NotBestEffort"])
    await quota(api, "high", {"pods": "1"}, scopeSelector={"matchExpressions": [
        {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]})
    for name, value in (("high", 1000), ("low", 10)):  # Priority admission resolves the pods' class names
        await api.client.create(PRIORITY_CLASSES, {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                                                   "metadata": {"name": name}, "value": value})
    await api.client.create(PODS, pod("be"), NS)
    error = await refused(api, pod("be2"))
    assert error.message == 'pods "be2" is forbidden: exceeded quota: best-effort, requested: pods=1, used: pods=1, limited: pods=1'
    # neither best effort nor terminating nor high priority: no quota covers it
    await api.client.create(PODS, pod("burstable", container(**req("100m"))), NS)
    await api.client.create(PODS, pod("job", container(**req("100m")), activeDeadlineSeconds=60), NS)
    error = await refused(api, pod("job2", container(**req("100m")), activeDeadlineSeconds=60))
    assert error.message == 'pods "job2" is forbidden: exceeded quota: terminating, requested: pods=1, used: pods=1, limited: pods=1'
    await api.client.create(PODS, pod("high1", container(**req("100m")), priorityClassName="high"), NS)
    error = await refused(api, pod("high2", container(**req("100m")), priorityClassName="high"))
    assert error.message == 'pods "high2" is forbidden: exceeded quota: high, requested: pods=1, used: pods=1, limited: pods=1'
    await api.client.create(PODS, pod("low", container(**req("100m")), priorityClassName="low"), NS)
    assert [await usage_of(api, name) for name in ("best-effort", "terminating", "high")] == [{"pods": "1"}] * 3


async def test_object_counts_by_resource_name(api: InProcessApi) -> None:
    await quota(api, "objects", {"count/configmaps": "1", "configmaps": "5", "count/deployments.apps": "0",
                                 "services.nodeports": "1", "count/widgets.example.com": "1"})
    await api.client.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one"}}, NS)
    error = await refused(api, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "two"}}, CONFIGMAPS)
    assert error.message == ('configmaps "two" is forbidden: exceeded quota: objects, requested: count/configmaps=1, '
                             "used: count/configmaps=1, limited: count/configmaps=1")
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                  "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
                      "metadata": {"labels": {"app": "web"}}, "spec": {"containers": [container()]}}}}
    error = await refused(api, deployment, DEPLOYMENTS)
    assert error.message == ('deployments.apps "web" is forbidden: exceeded quota: objects, requested: '
                             "count/deployments.apps=1, used: count/deployments.apps=0, limited: count/deployments.apps=0")
    assert error.status()["details"] == {"name": "web", "group": "apps", "kind": "deployments"}
    node_ports = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "np"},
                  "spec": {"type": "NodePort", "selector": {"app": "web"},
                           "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81}]}}
    error = await refused(api, node_ports, SERVICES)
    assert error.message == ('services "np" is forbidden: exceeded quota: objects, requested: services.nodeports=2, '
                             "used: services.nodeports=0, limited: services.nodeports=1")
    await api.client.create(SERVICES, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "plain"},
                                       "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}, NS)
    # an unknown resource's count is not reported
    assert await usage_of(api, "objects") == {"configmaps": "1", "count/configmaps": "1", "count/deployments.apps": "0",
                                              "services.nodeports": "0"}


async def test_the_usage_a_quota_controller_would_write(api: InProcessApi) -> None:
    await api.client.create(PODS, pod("a", container(requests={"cpu": "500m", "memory": "512Mi", "ephemeral-storage": "1G"},
                                                     limits={"cpu": "1", "memory": "512Mi"})), NS)
    await api.client.create(PODS, pod("b", container(requests={"cpu": "1.5", "memory": "512Mi"},
                                                     limits={"cpu": "2", "memory": "512Mi"})), NS)
    await api.client.create(PODS, pod("idle"), NS)
    await api.client.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}}, NS)
    created = await quota(api, "all", {
        "pods": "100", "count/pods": "100", "cpu": "10", "requests.cpu": "10", "limits.cpu": "10", "memory": "10Gi",
        "requests.memory": "10Gi", "limits.memory": "10Gi", "requests.ephemeral-storage": "10G", "count/configmaps": "10",
        "resourcequotas": "5", "secrets": "10", "services.loadbalancers": "1", "persistentvolumeclaims": "1",
        "requests.storage": "1Ti", "count/jobs.batch": "3", "example.com/unknown": "1"})  # an unknown resource: no usage
    assert quota_usage(api.ctx, created) == {
        "count/configmaps": "1", "count/jobs.batch": "0", "count/pods": "3", "cpu": "2", "limits.cpu": "3", "limits.memory": "1Gi",
        "memory": "1Gi", "persistentvolumeclaims": "0", "pods": "3", "requests.cpu": "2", "requests.ephemeral-storage": "1G",
        "requests.memory": "1Gi", "requests.storage": "0", "resourcequotas": "1", "secrets": "0", "services.loadbalancers": "0"}
    assert [q["metadata"]["name"] for q in namespace_quotas(api.ctx, NS)] == ["all"]


def test_quantities_print_as_kubernetes_prints_them() -> None:
    shown = {text: format_quantity(q) for text in ("0.5", "1000m", "2000", "1536Mi", "1.5Gi", "1024Mi", "0.5Ki", "129e6",
                                                  "12e4", "1.1Ki", "100.5Mi", "0") if (q := parse(text)) is not None}
    assert shown == {"0.5": "500m", "1000m": "1", "2000": "2k", "1536Mi": "1536Mi", "1.5Gi": "1536Mi", "1024Mi": "1Gi",
                     "0.5Ki": "512", "129e6": "129e6", "12e4": "120e3", "1.1Ki": "1126400m", "100.5Mi": "102912Ki", "0": "0"}


async def test_concurrent_creates_cannot_overrun_the_quota(api: InProcessApi) -> None:
    await quota(api, "pods-quota", {"pods": "2"})
    results = await asyncio.gather(*(api.client.create(PODS, pod(f"p{i}"), NS) for i in range(4)), return_exceptions=True)
    failures = [r for r in results if isinstance(r, ApiError)]
    assert len(failures) == 2 and all(f.code == 403 for f in failures)
    assert "used: pods=2, limited: pods=2" in failures[0].message
    assert await usage_of(api, "pods-quota") == {"pods": "2"}


async def test_a_create_refused_after_the_quota_check_charges_nothing(api: InProcessApi) -> None:
    await quota(api, "pods-quota", {"pods": "2"})
    await api.client.create(PODS, pod("taken"), NS)
    with pytest.raises(ApiError) as exists:
        await api.client.create(PODS, pod("taken"), NS)
    assert exists.value.code == 409
    await api.client.patch(NAMESPACES, NS, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "baseline"}}})
    refused_once, release = asyncio.Event(), asyncio.Event()

    async def refused_then_busy() -> None:  # the refusing task lives on, past its create
        with pytest.raises(ApiError) as denied:
            await api.client.create(PODS, pod("privileged", container(securityContext={"privileged": True})), NS)
        assert "violates PodSecurity" in denied.value.message
        refused_once.set()
        await release.wait()

    task = asyncio.create_task(refused_then_busy())
    await refused_once.wait()
    await api.client.create(PODS, pod("fits"), NS)
    release.set()
    await task
    error = await refused(api, pod("over"))
    assert "used: pods=2, limited: pods=2" in error.message
