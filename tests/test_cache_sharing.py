"""Writes never change the watch cache's objects, though they share parts with them.

Merge patches start from a shallow copy of the cached object, and a stored version
shares whatever a write left alone with the previous one (see
``ResourceREST._read_for_update`` and ``share_unchanged``). Every reader of the cache
-- watches, informers, lists -- relies on a version never changing once published;
these tests pin that down for the writes the cluster makes most.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from podlife.client.base import PODS, SERVICES, Resource
from podlife.api.local_client import LocalClient

from .in_process import InProcessApi

DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")
NS = "default"


@pytest.fixture
def client(local_api: InProcessApi) -> LocalClient:
    return LocalClient(local_api.ctx, shared_results=True)  # writes return the cache's own objects


def cached(client: LocalClient, res: Resource, name: str) -> Any:
    rest = client._rest(res)
    return rest.cache.get(rest.rt.key(NS, name))


async def patch_and_check(client: LocalClient, res: Resource, name: str, patch: Any, subresource: str | None = None) -> Any:
    """Patch, and assert the version cached before is byte for byte what it was."""
    before = cached(client, res, name)
    snapshot = orjson.dumps(before.obj)
    after = await client.patch(res, name, patch, NS, subresource=subresource)
    assert orjson.dumps(before.obj) == snapshot
    assert after["metadata"]["resourceVersion"] != before.obj["metadata"]["resourceVersion"]
    return after


POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"app": "a"}},
       "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}
RUNNING = {"phase": "Running", "podIP": "10.244.0.9",
           "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": None,
                           "lastTransitionTime": "2026-01-01T00:00:00Z"}],
           "containerStatuses": [{"name": "c", "ready": True, "restartCount": 0, "image": "busybox:1.36",
                                  "imageID": "", "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}


async def test_pod_writes_leave_earlier_versions_alone(client: LocalClient) -> None:
    await client.create(PODS, POD, NS)
    await client.create_subresource(PODS, "p", "binding", {"target": {"name": "n1"}}, NS)
    await patch_and_check(client, PODS, "p", {"metadata": {"annotations": {"x": "1"}, "labels": {"more": "y"}}})
    await patch_and_check(client, PODS, "p", {"status": RUNNING}, "status")
    ready_false = {"conditions": [{**RUNNING["conditions"][0], "status": "False"}]}
    await patch_and_check(client, PODS, "p", {"status": ready_false}, "status")
    await patch_and_check(client, PODS, "p", {"spec": {"containers": [{"name": "c", "image": "busybox:1.37"}],
                                                       "activeDeadlineSeconds": 60}})
    final = await patch_and_check(client, PODS, "p", {"metadata": {"labels": {"more": None}}})
    assert final["metadata"]["labels"] == {"app": "a"}
    assert final["spec"]["containers"][0]["image"] == "busybox:1.37"
    assert final["status"]["conditions"][0]["status"] == "False" and final["status"]["podIP"] == "10.244.0.9"


async def test_versions_share_what_a_write_left_alone(client: LocalClient) -> None:
    await client.create(PODS, POD, NS)
    first = cached(client, PODS, "p").obj
    await client.patch(PODS, "p", {"status": RUNNING}, NS, subresource="status")
    second = cached(client, PODS, "p").obj
    assert second["spec"] is first["spec"]  # shared, not copied
    assert second["metadata"] is not first["metadata"]  # each version has its own resourceVersion
    assert second["metadata"]["resourceVersion"] != first["metadata"]["resourceVersion"]


async def test_other_kinds_keep_their_versions_too(client: LocalClient) -> None:
    await client.create(SERVICES, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                                   "spec": {"selector": {"app": "a"}, "ports": [{"port": 80}]}}, NS)
    await patch_and_check(client, SERVICES, "s", {"metadata": {"labels": {"tier": "web"}}})
    await patch_and_check(client, SERVICES, "s", {"spec": {"ports": [{"port": 8080}]}})
    await client.create(DEPLOYMENTS, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                                      "spec": {"selector": {"matchLabels": {"app": "a"}},
                                               "template": {"metadata": {"labels": {"app": "a"}}, "spec": POD["spec"]}}},
                        NS)
    scaled = await patch_and_check(client, DEPLOYMENTS, "d", {"spec": {"replicas": 3}})
    assert scaled["spec"]["replicas"] == 3 and scaled["metadata"]["generation"] == 2
    await patch_and_check(client, DEPLOYMENTS, "d", {"status": {"replicas": 3}}, "status")
