"""LimitRanger: a namespace's LimitRanges fill in and bound what pods ask for, as Kubernetes does."""

from __future__ import annotations

from typing import Any

import pytest

from podlife.api.limit_ranger import ANNOTATION
from podlife.client.base import PODS, Resource
from podlife.machinery.errors import ApiError

from .in_process import InProcessApi

Obj = dict[str, Any]
LIMIT_RANGES = Resource("", "v1", "limitranges", "LimitRange")


async def limit_range(api: InProcessApi, *items: Obj) -> None:
    await api.client.create(LIMIT_RANGES, {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "lr"},
                                           "spec": {"limits": list(items)}}, "default")


def pod(name: str, **resources: Any) -> Obj:
    c: Obj = {"name": "c", "image": "busybox"}
    if resources:
        c["resources"] = resources
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": [c]}}


async def test_defaults_fill_in_what_a_container_leaves_out(local_api: InProcessApi) -> None:
    await limit_range(local_api, {"type": "Container", "default": {"cpu": "500m", "memory": "256Mi"},
                                  "defaultRequest": {"cpu": "100m"}})
    created = await local_api.client.create(PODS, pod("plain"), "default")
    resources = created["spec"]["containers"][0]["resources"]
    assert resources == {"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "256Mi"}}
    assert created["metadata"]["annotations"][ANNOTATION] == (
        "LimitRanger plugin set: cpu, memory request for container c; cpu, memory limit for container c")
    assert created["status"]["qosClass"] == "Burstable"
    own = await local_api.client.create(PODS, pod("own", limits={"cpu": "1", "memory": "1Gi"},
                                                  requests={"cpu": "1", "memory": "1Gi"}), "default")
    assert own["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}
    assert ANNOTATION not in (own["metadata"].get("annotations") or {})
    assert own["status"]["qosClass"] == "Guaranteed"


async def test_bounds_refuse_with_kubernetes_messages(local_api: InProcessApi) -> None:
    await limit_range(local_api, {"type": "Container", "max": {"cpu": "1"}, "min": {"memory": "64Mi"}},
                      {"type": "Pod", "max": {"memory": "1Gi"}})
    with pytest.raises(ApiError) as caught:
        await local_api.client.create(PODS, pod("big", limits={"cpu": "2", "memory": "2Gi"},
                                                requests={"memory": "32Mi"}), "default")
    assert caught.value.code == 403
    assert caught.value.message == (
        'pods "big" is forbidden: [minimum memory usage per Container is 64Mi, but request is 32Mi, maximum cpu usage '
        "per Container is 1, but limit is 2, maximum memory usage per Pod is 1Gi, but limit is 2Gi]")
    # the LimitRange was defaulted as Kubernetes defaults it (a max is also the default limit), so a pod
    # without a cpu limit gets one; only the pod's memory has no limit
    with pytest.raises(ApiError) as unlimited:
        await local_api.client.create(PODS, pod("nolimit", requests={"memory": "128Mi"}), "default")
    assert unlimited.value.message == (
        'pods "nolimit" is forbidden: maximum memory usage per Pod is 1Gi.  No limit is specified')
    fits = await local_api.client.create(PODS, pod("fits", limits={"cpu": "1", "memory": "512Mi"},
                                                   requests={"memory": "128Mi"}), "default")
    assert fits["metadata"]["name"] == "fits"
