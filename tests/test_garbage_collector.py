"""The garbage collector against the in-process API: background, foreground, orphan, dangling."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import pytest

from podlife.machinery.errors import ApiError
from podlife.client.base import CONFIGMAPS, NAMESPACES, PODS, Resource
from podlife.api.local_client import LocalClient
from podlife.controllers import GarbageCollector
from podlife.controllers.garbage_collector import DependencyGraph, OwnerRef, owner_refs
from podlife.controllers.manager import run_controllers

from .cluster_harness import async_wait_for
from .controller_harness import controller_context
from .in_process import InProcessApi

TIMEOUT = 10.0
NS = "default"


class Cluster:
    """An in-process API, and a garbage collector that can be started on it."""

    def __init__(self, client: LocalClient) -> None:
        self.client = client
        self.gc: GarbageCollector | None = None
        self._task: asyncio.Task[None] | None = None

    async def start_gc(self) -> GarbageCollector:
        ctx = controller_context(self.client, "generic-garbage-collector")
        self.gc = GarbageCollector(ctx)  # kinds from discovery, CRDs followed
        self._task = asyncio.create_task(run_controllers(ctx.informers, {"garbage-collector-controller": self.gc}))
        await asyncio.wait_for(self.gc.wait_synced(), TIMEOUT)
        return self.gc

    async def stop_gc(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def configmap(self, name: str, *owners: dict[str, Any], block: bool = False,
                        finalizers: list[str] | None = None) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name}
        if owners:
            meta["ownerReferences"] = [ref(o, block=block) for o in owners]
        if finalizers:
            meta["finalizers"] = finalizers
        return await self.client.create(CONFIGMAPS, {"metadata": meta}, NS)

    async def get(self, res: Resource, name: str) -> dict[str, Any] | None:
        try:
            return await self.client.get(res, name, None if not res.namespaced else NS)
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise

    async def gone(self, res: Resource, name: str) -> bool:
        return await self.get(res, name) is None


def ref(owner: dict[str, Any], *, block: bool = False) -> dict[str, Any]:
    out = {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
           "uid": owner["metadata"]["uid"]}
    if block:
        out["blockOwnerDeletion"] = True
    return out


def ref_uids(obj: dict[str, Any]) -> list[str]:
    return [r["uid"] for r in obj["metadata"].get("ownerReferences") or []]


@pytest.fixture
async def cluster(local_api: InProcessApi) -> AsyncIterator[Cluster]:
    c = Cluster(local_api.client)
    try:
        yield c
    finally:
        await c.stop_gc()


@pytest.fixture
async def gc_cluster(cluster: Cluster) -> Cluster:
    await cluster.start_gc()
    return cluster


async def test_background_deletes_dependents_of_a_deleted_owner(gc_cluster: Cluster) -> None:
    c = gc_cluster
    owner = await c.configmap("owner")
    await c.configmap("child", owner)
    pod = await c.client.create(PODS, {"metadata": {"name": "child-pod", "ownerReferences": [ref(owner)]},
                                       "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}, NS)
    assert ref_uids(pod) == [owner["metadata"]["uid"]]
    await c.configmap("unrelated")

    await c.client.delete(CONFIGMAPS, "owner", NS, propagation_policy="Background")
    await async_wait_for(lambda: c.gone(CONFIGMAPS, "child"), what="the dependent configmap to go")
    await async_wait_for(lambda: c.gone(PODS, "child-pod"), what="the dependent pod to go")
    assert await c.get(CONFIGMAPS, "unrelated")


async def test_orphan_keeps_dependents_and_drops_their_reference(gc_cluster: Cluster) -> None:
    c = gc_cluster
    owner = await c.configmap("owner")
    other = await c.configmap("other")
    await c.configmap("child", owner, other)

    await c.client.delete(CONFIGMAPS, "owner", NS, propagation_policy="Orphan")
    await async_wait_for(lambda: c.gone(CONFIGMAPS, "owner"), what="the orphaning owner to go")
    child = await c.get(CONFIGMAPS, "child")
    assert child is not None
    assert ref_uids(child) == [other["metadata"]["uid"]]

    # the last reference removed leaves no ownerReferences at all
    await c.configmap("solo-owner")
    solo = await c.get(CONFIGMAPS, "solo-owner")
    assert solo is not None
    await c.configmap("solo-child", solo)
    await c.client.delete(CONFIGMAPS, "solo-owner", NS, propagation_policy="Orphan")
    await async_wait_for(lambda: c.gone(CONFIGMAPS, "solo-owner"), what="the second orphaning owner to go")
    kept = await c.get(CONFIGMAPS, "solo-child")
    assert kept is not None and "ownerReferences" not in kept["metadata"]


async def test_foreground_owner_stays_until_blocking_dependents_are_gone(gc_cluster: Cluster) -> None:
    c = gc_cluster
    owner = await c.configmap("owner")
    await c.configmap("child", owner, block=True, finalizers=["example.com/hold"])
    await c.configmap("quick", owner, block=True)

    deleted = await c.client.delete(CONFIGMAPS, "owner", NS, propagation_policy="Foreground")
    assert deleted["metadata"]["finalizers"] == ["foregroundDeletion"]

    async def child_terminating() -> bool:
        child = await c.get(CONFIGMAPS, "child")
        return bool(child and child["metadata"].get("deletionTimestamp"))

    await async_wait_for(child_terminating, what="the held dependent to be deleted")
    await async_wait_for(lambda: c.gone(CONFIGMAPS, "quick"), what="the plain dependent to go")
    held_owner = await c.get(CONFIGMAPS, "owner")
    assert held_owner is not None
    assert held_owner["metadata"]["deletionTimestamp"]
    assert "foregroundDeletion" in held_owner["metadata"]["finalizers"]

    await c.client.patch(CONFIGMAPS, "child", {"metadata": {"finalizers": None}}, NS)
    await async_wait_for(lambda: c.gone(CONFIGMAPS, "child"), what="the held dependent to go")
    await async_wait_for(lambda: c.gone(CONFIGMAPS, "owner"), what="the foreground owner to go")


async def test_foreground_owner_without_dependents_goes_at_once(gc_cluster: Cluster) -> None:
    c = gc_cluster
    await c.configmap("lonely")
    await c.client.delete(CONFIGMAPS, "lonely", NS, propagation_policy="Foreground")
    await async_wait_for(lambda: c.gone(CONFIGMAPS, "lonely"), what="the owner to go")


async def test_foreground_cascades_through_generations(gc_cluster: Cluster) -> None:
    c = gc_cluster
    grandparent = await c.configmap("grandparent")
    parent = await c.configmap("parent", grandparent, block=True)
    await c.configmap("grandchild", parent, block=True)

    await c.client.delete(CONFIGMAPS, "grandparent", NS, propagation_policy="Foreground")
    for name in ("grandchild", "parent", "grandparent"):
        await async_wait_for(partial(c.gone, CONFIGMAPS, name), what=f"{name} to go")


async def test_dependent_with_another_live_owner_survives(gc_cluster: Cluster) -> None:
    c = gc_cluster
    first = await c.configmap("first")
    second = await c.configmap("second")
    await c.configmap("shared", first, second)

    await c.client.delete(CONFIGMAPS, "first", NS)

    async def reference_dropped() -> dict[str, Any] | None:
        shared = await c.get(CONFIGMAPS, "shared")
        return shared if shared and len(ref_uids(shared)) == 1 else None

    shared = await async_wait_for(reference_dropped, what="the dangling reference to be removed")
    assert ref_uids(shared) == [second["metadata"]["uid"]]

    await c.client.delete(CONFIGMAPS, "second", NS)
    await async_wait_for(lambda: c.gone(CONFIGMAPS, "shared"), what="the dependent to go with its last owner")


async def test_dangling_owner_uid_gets_dependents_deleted(cluster: Cluster) -> None:
    c = cluster
    ghost = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ghost", "uid": "0000-never-existed"}}
    await c.configmap("before-start", ghost)  # found by the initial list
    impostor = await c.configmap("impostor")  # right name, wrong uid
    await c.configmap("wrong-uid", {**impostor, "metadata": {**impostor["metadata"], "uid": "1111-not-it"}})
    await c.start_gc()
    await c.configmap("after-start", ghost)  # found by the watch

    for name in ("before-start", "wrong-uid", "after-start"):
        await async_wait_for(partial(c.gone, CONFIGMAPS, name), what=f"{name} to be collected")
    assert await c.get(CONFIGMAPS, "impostor")


async def test_cluster_scoped_owner_and_unknown_kinds(gc_cluster: Cluster) -> None:
    c = gc_cluster
    ns = await c.client.create(NAMESPACES, {"metadata": {"name": "owner-ns"}})
    await c.configmap("owned-by-namespace", ns)
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "uid": "2222"}}
    await c.configmap("owned-by-unknown-kind", unknown)
    sentinel_owner = await c.configmap("sentinel-owner")
    await c.configmap("sentinel", sentinel_owner)

    await c.client.delete(CONFIGMAPS, "sentinel-owner", NS)
    await async_wait_for(lambda: c.gone(CONFIGMAPS, "sentinel"), what="the sentinel dependent to go")
    # by now the collector has examined everything queued before: both must still be here
    assert await c.get(CONFIGMAPS, "owned-by-namespace")
    assert await c.get(CONFIGMAPS, "owned-by-unknown-kind")


def test_graph_tracks_only_objects_that_matter() -> None:
    deletes: list[str] = []
    orphans: list[str] = []
    cm = CONFIGMAPS
    graph = DependencyGraph({(cm.api_version, cm.kind): cm}, deletes.append, orphans.append)

    graph.observe(cm, {"uid": "plain", "name": "plain", "namespace": "d"})
    assert graph.get("plain") is None and not deletes

    owner_ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "o1", "blockOwnerDeletion": True}
    graph.observe(cm, {"uid": "d1", "name": "d", "namespace": "d", "ownerReferences": [owner_ref]})
    virtual = graph.get("o1")
    assert virtual is not None and not virtual.observed and virtual.dependents == {"d1"}
    assert deletes == ["o1"]  # the unknown owner is verified

    graph.observe(cm, {"uid": "o1", "name": "o", "namespace": "d"})
    assert graph.get("o1").observed  # type: ignore[union-attr]

    deletes.clear()
    graph.observe(cm, {"uid": "o1", "name": "o", "namespace": "d", "deletionTimestamp": "x",
                       "finalizers": ["foregroundDeletion"]})
    assert sorted(deletes) == ["d1", "o1"]
    assert [n.uid for n in graph.blocking_dependents(graph.get("o1"))] == ["d1"]  # type: ignore[arg-type]

    deletes.clear()
    graph.remove("d1")
    assert deletes == ["o1"]  # the waiting owner is woken up

    graph.observe(cm, {"uid": "o2", "name": "o2", "namespace": "d", "deletionTimestamp": "x", "finalizers": ["orphan"]})
    assert orphans == ["o2"]

    assert owner_refs({"ownerReferences": [{"uid": ""}, owner_ref]}) == (OwnerRef("o1", "v1", "ConfigMap", "o", True),)
