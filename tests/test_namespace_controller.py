"""The namespace controller against the in-process API: content deleted, then the namespace."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from podlife.machinery.errors import ApiError
from podlife.client.base import CONFIGMAPS, NAMESPACES, PODS, SECRETS
from podlife.api.local_client import LocalClient
from podlife.controllers import NamespaceController
from podlife.controllers.namespace import Content, deletion_conditions, merge_conditions

from .cluster_harness import async_wait_for
from .controller_harness import controller_context, running
from .in_process import InProcessApi

TIMEOUT = 10.0


async def gone(client: LocalClient, res: Any, name: str, namespace: str | None = None) -> bool:
    try:
        await client.get(res, name, namespace)
    except ApiError as exc:
        if exc.code == 404:
            return True
        raise
    return False


@dataclass
class Api:
    client: LocalClient
    controller: NamespaceController


@pytest.fixture
async def api(local_api: InProcessApi) -> AsyncIterator[Api]:
    ctx = controller_context(local_api.client, "namespace-controller")
    controller = NamespaceController(ctx)
    async with running(ctx, controller):
        yield Api(local_api.client, controller)


def pod(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}], **spec}}


def condition(ns: dict[str, Any], ctype: str) -> dict[str, Any]:
    """The namespace's condition of type ``ctype`` (empty if it has none)."""
    return next((c for c in (ns.get("status") or {}).get("conditions") or [] if c.get("type") == ctype), {})


async def test_deleting_a_namespace_deletes_its_content_then_itself(api: Api) -> None:
    c = api.client
    await c.create(NAMESPACES, {"metadata": {"name": "shop"}})
    for i in range(3):
        await c.create(CONFIGMAPS, {"metadata": {"name": f"cm{i}"}, "data": {"k": "v"}}, "shop")
    await c.create(SECRETS, {"metadata": {"name": "s"}, "stringData": {"k": "v"}}, "shop")
    await c.create(PODS, pod("web"), "shop")  # never scheduled: deleted at once
    await c.create(CONFIGMAPS, {"metadata": {"name": "bystander"}}, "default")

    ns = await c.delete(NAMESPACES, "shop")
    assert ns["status"]["phase"] == "Terminating"
    assert ns["spec"]["finalizers"] == ["kubernetes"]

    await async_wait_for(lambda: gone(c, NAMESPACES, "shop"), what="namespace shop to go")
    for res in (CONFIGMAPS, SECRETS, PODS):
        assert (await c.list(res, "shop"))["items"] == []
    assert await c.get(CONFIGMAPS, "bystander", "default")


async def test_namespace_waits_for_content_held_by_finalizers(api: Api) -> None:
    c = api.client
    await c.create(NAMESPACES, {"metadata": {"name": "held"}})
    await c.create(CONFIGMAPS, {"metadata": {"name": "keep", "finalizers": ["example.com/hold"]}}, "held")
    await c.create(CONFIGMAPS, {"metadata": {"name": "plain"}}, "held")
    await c.delete(NAMESPACES, "held")

    async def reports_finalizers() -> dict[str, Any] | None:
        ns = await c.get(NAMESPACES, "held")
        cond = condition(ns, "NamespaceFinalizersRemaining")
        return ns if cond.get("status") == "True" else None

    ns = await async_wait_for(reports_finalizers, what="NamespaceFinalizersRemaining=True")
    assert ns["status"]["phase"] == "Terminating"
    assert condition(ns, "NamespaceFinalizersRemaining")["message"] == (
        "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances")
    remaining = condition(ns, "NamespaceContentRemaining")
    assert remaining["status"] == "True" and remaining["reason"] == "SomeResourcesRemain"
    assert "configmaps. has 1 resource instances" in remaining["message"]
    assert condition(ns, "NamespaceDeletionContentFailure")["status"] == "False"
    assert await gone(c, CONFIGMAPS, "plain", "held")
    assert (await c.get(CONFIGMAPS, "keep", "held"))["metadata"]["deletionTimestamp"]

    # the API's admission refuses new content while the namespace terminates
    with pytest.raises(ApiError) as err:
        await c.create(CONFIGMAPS, {"metadata": {"name": "late"}}, "held")
    assert err.value.code == 403

    await c.patch(CONFIGMAPS, "keep", {"metadata": {"finalizers": None}}, "held")
    await async_wait_for(lambda: gone(c, NAMESPACES, "held"), what="namespace held to go")


async def test_namespace_waits_for_pods_terminating_gracefully(api: Api) -> None:
    c = api.client
    await c.create(NAMESPACES, {"metadata": {"name": "graceful"}})
    await c.create(PODS, pod("bound", nodeName="node-1", terminationGracePeriodSeconds=1), "graceful")
    await c.delete(NAMESPACES, "graceful")

    async def terminating() -> dict[str, Any] | None:
        p = await c.get(PODS, "bound", "graceful")
        return p if p["metadata"].get("deletionTimestamp") else None

    p = await async_wait_for(terminating, what="the pod to be terminating")
    assert p["metadata"]["deletionGracePeriodSeconds"] == 1
    assert not await gone(c, NAMESPACES, "graceful")

    # what the kubelet does once the containers have stopped
    await c.delete(PODS, "bound", "graceful", grace_period_seconds=0)
    await async_wait_for(lambda: gone(c, NAMESPACES, "graceful"), what="namespace graceful to go")


async def test_namespace_without_the_kubernetes_finalizer_is_left_to_the_api(api: Api) -> None:
    c = api.client
    created = await c.create(NAMESPACES, {"metadata": {"name": "other"}, "spec": {"finalizers": ["example.com/ns"]}})
    assert created["spec"]["finalizers"] == ["example.com/ns", "kubernetes"]  # a create always adds it
    await c.update(NAMESPACES, {**created, "spec": {"finalizers": ["example.com/ns"]}}, subresource="finalize")
    await c.create(CONFIGMAPS, {"metadata": {"name": "cm"}}, "other")
    await c.delete(NAMESPACES, "other")
    await api.controller.sync("other")  # a reconcile, run directly: it must not touch the namespace
    assert await c.get(CONFIGMAPS, "cm", "other")
    ns = await c.get(NAMESPACES, "other")
    assert ns["spec"]["finalizers"] == ["example.com/ns"]


def test_conditions_follow_kubernetes_wording() -> None:
    ok = deletion_conditions(Content())
    assert ok["NamespaceContentRemaining"] == ("False", "ContentRemoved", "All content successfully removed")
    failing = deletion_conditions(Content(remaining={"pods.": 2}, errors=["pods.: boom"]))
    assert failing["NamespaceDeletionContentFailure"][:2] == ("True", "ContentDeletionFailed")
    assert failing["NamespaceContentRemaining"][2] == "Some resources are remaining: pods. has 2 resource instances"

    from datetime import datetime, timezone

    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    first = merge_conditions([{"type": "Other", "status": "True"}], ok, t0)
    assert first is not None and len(first) == 6 and first[0]["type"] == "Other"
    assert merge_conditions(first, ok, t0) is None  # unchanged: no write
    t1 = datetime(2024, 1, 2, tzinfo=timezone.utc)
    second = merge_conditions(first, failing, t1)
    assert second is not None
    changed = next(c for c in second if c["type"] == "NamespaceContentRemaining")
    assert changed["status"] == "True" and changed["lastTransitionTime"] == "2024-01-02T00:00:00Z"
