"""Endpoints, EndpointSlices, the ``kubernetes``/``kube-dns`` Services and NodePort allocation.

Three layers: the pure functions (:func:`desired_endpoints`, :func:`desired_slices`,
:func:`mirrored_slices`, the node port allocator) on hand-made objects; the controllers on
an in-process API (real REST layer, real informers), readiness flipped through the status
subresource; and one real ``podlife up`` driven with kubectl (the ``kubernetes`` Endpoints,
kube-dns, a NodePort conflict's 422, node ports kept across a restart on the same data dir).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from podlife.api.endpoint_reconciler import reconcile_kubernetes_endpoints
from podlife.client.base import ENDPOINTS, PODS, SERVICES
from podlife.controllers.endpoints import EndpointsController, desired_endpoints
from podlife.controllers.endpointslices import (
    ENDPOINT_SLICES,
    EndpointSliceController,
    EndpointSliceMirroringController,
    desired_slices,
    mirrored_slices,
)
from podlife.machinery.errors import ApiError
from podlife.registry.node_ports import allocate_node_ports, keep_node_ports, pick_free
from podlife.store import SQLiteStore

from .cluster_harness import PodlifeProcess, async_wait_for, require_tool, wait_for
from .controller_harness import controller_context, running
from .in_process import InProcessApi, in_process_api

Obj = dict[str, Any]
NS = "default"


# --------------------------------------------------------------------------- builders


def service(name: str = "web", selector: dict[str, str] | None = None, **spec: Any) -> Obj:
    body: Obj = {"ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}], **spec}
    if selector is not False:
        body["selector"] = selector if selector is not None else {"app": name}
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "labels": {"team": "a"}}, "spec": body}


def pod(name: str, ip: str | None, *, ready: bool = True, labels: dict[str, str] | None = None,
        ports: list[Obj] | None = None, deleting: bool = False, phase: str = "Running", **spec: Any) -> Obj:
    meta: Obj = {"name": name, "namespace": NS, "uid": f"uid-{name}", "labels": labels or {"app": "web"},
                 "creationTimestamp": "2026-12-03T05:00:00Z"}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-03T06:00:00Z"
    status: Obj = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                                    "lastTransitionTime": "2026-12-03T05:01:00Z"}]}
    if ip:
        status["podIP"] = ip
    container = {"name": "c", "image": "x", "ports": ports if ports is not None else [{"name": "http", "containerPort": 8080}]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"nodeName": "node-1", "containers": [container], **spec}, "status": status}


def ips(endpoints: Obj, field: str = "addresses") -> list[str]:
    return sorted(a["ip"] for s in endpoints.get("subsets") or [] for a in s.get(field) or [])


def named(plan_slices: list[Obj]) -> list[Obj]:
    """Slices as the server would store them: a name and a resourceVersion each."""
    out = []
    for i, sl in enumerate(plan_slices):
        meta = {**sl["metadata"], "name": f"web-{i:05d}", "resourceVersion": str(i + 1)}
        meta.pop("generateName", None)
        out.append({**sl, "metadata": meta})
    return out


# --------------------------------------------------------------------------- Endpoints: pure


def test_only_ready_pods_are_addresses_and_terminating_ones_leave_at_once() -> None:
    pods = [pod("a", "10.244.0.2"), pod("b", "10.244.0.3", ready=False), pod("c", "10.244.0.4", deleting=True),
            pod("d", None), pod("e", "10.244.0.6", phase="Succeeded"), pod("f", "10.244.0.7", labels={"app": "other"}),
            pod("g", "127.0.0.1", hostNetwork=True)]  # a loopback address no Endpoints may hold
    ep = desired_endpoints(service(), pods, trigger_time="2026-12-03T05:01:00Z")
    assert ips(ep) == ["10.244.0.2"]
    assert ips(ep, "notReadyAddresses") == ["10.244.0.3"]
    assert ep["subsets"][0]["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    address = ep["subsets"][0]["addresses"][0]
    assert address["nodeName"] == "node-1"
    assert address["targetRef"] == {"kind": "Pod", "namespace": NS, "name": "a", "uid": "uid-a"}
    meta = ep["metadata"]
    assert meta["labels"] == {"team": "a", "endpoints.kubernetes.io/managed-by": "endpoint-controller"}
    assert meta["annotations"] == {"endpoints.kubernetes.io/last-change-trigger-time": "2026-12-03T05:01:00Z"}


def test_publish_not_ready_addresses_puts_every_pod_in_addresses() -> None:
    pods = [pod("a", "10.244.0.2"), pod("b", "10.244.0.3", ready=False), pod("c", "10.244.0.4", deleting=True)]
    ep = desired_endpoints(service(publishNotReadyAddresses=True), pods)
    assert ips(ep) == ["10.244.0.2", "10.244.0.3", "10.244.0.4"]
    assert ips(ep, "notReadyAddresses") == []


def test_named_target_ports_group_subsets_and_skip_pods_without_the_port() -> None:
    svc = service(ports=[{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
                         {"name": "metrics", "port": 9000, "targetPort": "metrics", "protocol": "TCP"}])
    both = [{"name": "http", "containerPort": 8080}, {"name": "metrics", "containerPort": 9100}]
    pods = [pod("a", "10.244.0.2", ports=both), pod("b", "10.244.0.3", ports=[{"name": "http", "containerPort": 8081}]),
            pod("c", "10.244.0.4", ports=[{"name": "http", "containerPort": 8080, "protocol": "UDP"}])]
    subsets = desired_endpoints(svc, pods)["subsets"]
    shapes = sorted((tuple((p["name"], p["port"]) for p in s["ports"]), tuple(a["ip"] for a in s["addresses"]))
                    for s in subsets)
    assert shapes == [((("http", 8080), ("metrics", 9100)), ("10.244.0.2",)), ((("http", 8081),), ("10.244.0.3",))]


def test_hostname_and_headless_label() -> None:
    pods = [pod("a", "10.244.0.2", hostname="alpha", subdomain="web"), pod("b", "10.244.0.3", hostname="beta")]
    ep = desired_endpoints(service(clusterIP="None"), pods)
    by_ip = {a["ip"]: a for s in ep["subsets"] for a in s["addresses"]}
    assert by_ip["10.244.0.2"]["hostname"] == "alpha"
    assert "hostname" not in by_ip["10.244.0.3"]  # its subdomain is not the Service
    assert ep["metadata"]["labels"]["service.kubernetes.io/headless"] == ""


def test_headless_service_without_ports_lists_its_pods() -> None:
    ep = desired_endpoints(service(clusterIP="None", ports=[]), [pod("a", "10.244.0.2")])
    assert ep["subsets"] == [{"addresses": [{"ip": "10.244.0.2", "nodeName": "node-1", "targetRef": {
        "kind": "Pod", "namespace": NS, "name": "a", "uid": "uid-a"}}]}]


# --------------------------------------------------------------------------- EndpointSlices: pure


def test_slice_conditions_follow_kubernetes() -> None:
    pods = [pod("a", "10.244.0.2"), pod("b", "10.244.0.3", ready=False), pod("c", "10.244.0.4", deleting=True),
            pod("d", "10.244.0.5", ready=False, deleting=True)]
    plan = desired_slices(service(), pods, [])
    assert len(plan.create) == 1 and not plan.update and not plan.delete
    sl = plan.create[0]
    conditions = {e["targetRef"]["name"]: e["conditions"] for e in sl["endpoints"]}
    assert conditions == {"a": {"ready": True, "serving": True, "terminating": False},
                          "b": {"ready": False, "serving": False, "terminating": False},
                          "c": {"ready": False, "serving": True, "terminating": True},
                          "d": {"ready": False, "serving": False, "terminating": True}}
    meta = sl["metadata"]
    assert meta["generateName"] == "web-" and "name" not in meta
    assert meta["labels"] == {"team": "a", "kubernetes.io/service-name": "web",
                              "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}
    assert meta["ownerReferences"] == [{"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "uid-web",
                                        "controller": True, "blockOwnerDeletion": True}]
    assert sl["addressType"] == "IPv4" and sl["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    published = desired_slices(service(publishNotReadyAddresses=True), pods, []).create[0]
    assert all(e["conditions"]["ready"] for e in published["endpoints"])


def test_slices_split_at_the_limit_and_stay_put() -> None:
    pods = [pod(f"p{i:03d}", f"10.244.{i // 200}.{i % 200 + 2}") for i in range(250)]
    plan = desired_slices(service(), pods, [])
    assert sorted(len(s["endpoints"]) for s in plan.create) == [50, 100, 100]
    existing = named(plan.create)
    assert not desired_slices(service(), pods, existing)  # converged: nothing to write
    # one pod leaves: only the slice that held it changes
    gone = existing[1]["endpoints"][0]["targetRef"]["name"]
    plan = desired_slices(service(), [p for p in pods if p["metadata"]["name"] != gone], existing)
    assert not plan.create and not plan.delete and [s["metadata"]["name"] for s in plan.update] == ["web-00001"]
    # a new pod fills the slice with room rather than making one
    plan = desired_slices(service(), [*pods, pod("new", "10.244.9.9")], existing)
    assert not plan.create and len(plan.update) == 1 and len(plan.update[0]["endpoints"]) == 51
    # a smaller limit (--max-endpoints-per-slice) makes more slices
    assert len(desired_slices(service(), pods, [], max_endpoints_per_slice=30).create) == 9


def test_no_endpoints_keeps_one_placeholder_and_gone_pods_empty_it() -> None:
    plan = desired_slices(service(), [], [])
    assert len(plan.create) == 1 and plan.create[0]["endpoints"] == [] and plan.create[0]["ports"] == []
    existing = named(desired_slices(service(), [pod("a", "10.244.0.2")], []).create)
    plan = desired_slices(service(), [], existing)
    assert [s["metadata"]["name"] for s in plan.update] == ["web-00000"] and plan.update[0]["endpoints"] == []


def test_mirroring_copies_user_endpoints_and_skips_what_it_must() -> None:
    endpoints = {"apiVersion": "v1", "kind": "Endpoints",
                 "metadata": {"name": "ext", "namespace": NS, "uid": "uid-ep", "labels": {"x": "y"}},
                 "subsets": [{"addresses": [{"ip": "192.0.2.10"}, {"ip": "127.0.0.1"}], "notReadyAddresses": [{"ip": "192.0.2.11"}],
                              "ports": [{"name": "db", "port": 5432, "protocol": "TCP"}]}]}
    plan = mirrored_slices(endpoints, [])
    (sl,) = plan.create
    assert sl["metadata"]["labels"] == {"x": "y", "kubernetes.io/service-name": "ext",
                                        "endpointslice.kubernetes.io/managed-by": "endpointslicemirroring-controller.k8s.io"}
    assert sl["metadata"]["ownerReferences"][0]["kind"] == "Endpoints"
    assert {e["addresses"][0]: e["conditions"]["ready"] for e in sl["endpoints"]} == {"192.0.2.10": True, "192.0.2.11": False}
    assert sl["ports"] == [{"name": "db", "port": 5432, "protocol": "TCP"}]


# --------------------------------------------------------------------------- NodePort allocation: pure


def test_node_ports_are_picked_checked_and_shared_by_protocols() -> None:
    spec: Obj = {"type": "NodePort", "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                                               {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                                               {"name": "web", "port": 80, "protocol": "TCP", "nodePort": 30080}]}
    assert allocate_node_ports(spec, {30001}, (30000, 32767), random.Random(1)) == []
    udp, tcp, web = (p["nodePort"] for p in spec["ports"])
    assert udp == tcp and web == 30080 and 30000 <= udp <= 32767 and udp not in (30001, 30080)
    taken = {"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]}
    errs = allocate_node_ports(taken, {30080}, (30000, 32767))
    assert [(e.field, e.detail) for e in errs] == [("spec.ports[0].nodePort", "provided port is already allocated")]
    outside = {"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP", "nodePort": 40000}]}
    assert allocate_node_ports(outside, set(), (30000, 32767))[0].detail == (
        "provided port is not in the valid range. The range of valid ports is 30000-32767")
    lb = {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 80, "protocol": "TCP"}]}
    assert allocate_node_ports(lb, set(), (30000, 30100)) == []
    assert lb["healthCheckNodePort"] != lb["ports"][0]["nodePort"]
    assert pick_free(set(range(30000, 30010)), (30000, 30010)) == 30010


def test_updates_keep_node_ports_and_a_type_change_drops_them() -> None:
    old = {"spec": {"type": "NodePort", "ports": [{"name": "web", "port": 80, "nodePort": 30080}]}}
    new = {"spec": {"type": "NodePort", "ports": [{"name": "web", "port": 81}]}}
    keep_node_ports(new, old)
    assert new["spec"]["ports"][0]["nodePort"] == 30080
    back = {"spec": {"type": "ClusterIP", "ports": [{"name": "web", "port": 80, "nodePort": 30080}]}}
    keep_node_ports(back, old)
    assert "nodePort" not in back["spec"]["ports"][0]
    assert "nodePort" in old["spec"]["ports"][0]  # the stored object is never changed


# --------------------------------------------------------------------------- controllers on an in-process API


@pytest.fixture
async def api(local_api: InProcessApi) -> AsyncIterator[InProcessApi]:
    # the three on one set of shared informers (one Service, Pod and Endpoints watch), as in the controller manager
    ctx = controller_context(local_api.client)
    async with running(ctx, EndpointsController(ctx), EndpointSliceController(ctx), EndpointSliceMirroringController(ctx)):
        yield local_api


async def make_pod(client: Any, name: str, ip: str, ready: bool, labels: dict[str, str] | None = None) -> None:
    body = pod(name, None, labels=labels)
    for key in ("uid", "creationTimestamp"):
        body["metadata"].pop(key)
    body["spec"]["nodeName"] = "ghost"  # no kubelet: the test writes the status
    await client.create(PODS, {k: body[k] for k in ("apiVersion", "kind", "metadata", "spec")}, NS)
    await set_ready(client, name, ready, ip)


async def set_ready(client: Any, name: str, ready: bool, ip: str | None = None) -> None:
    status: Obj = {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if ip:
        status.update(phase="Running", podIP=ip, podIPs=[{"ip": ip}])
    await client.patch(PODS, name, {"status": status}, NS, subresource="status")


async def get_or_none(client: Any, res: Any, name: str) -> Obj | None:
    try:
        return await client.get(res, name, NS)
    except ApiError as exc:
        if exc.code == 404:
            return None
        raise


async def controllers_caught_up(client: Any, marker: str, *, selector: bool = True) -> None:
    """A barrier instead of a sleep: a new Service (``selector``: for the endpoint and slice controllers; else a
    selector-less one with Endpoints, for the mirroring controller) and waiting for what the controllers write
    for it. Their queues are first in, first out, so work queued by earlier events has been done by then."""
    if selector:
        await client.create(SERVICES, {"metadata": {"name": marker}, "spec": {"selector": {"app": marker},
                                                                              "ports": [{"port": 80}]}}, NS)
        await async_wait_for(lambda: _is_some(get_or_none(client, ENDPOINTS, marker)), 10, what=f"Endpoints {marker}")
    else:
        await client.create(SERVICES, {"metadata": {"name": marker}, "spec": {"ports": [{"port": 80}]}}, NS)
        await client.create(ENDPOINTS, {"metadata": {"name": marker}, "subsets": [
            {"addresses": [{"ip": "192.0.2.99"}], "ports": [{"port": 80}]}]}, NS)
    await async_wait_for(lambda: _eq_async(slices_of(client, marker), bool), 10, what=f"a slice for {marker}")


async def slices_of(client: Any, name: str) -> list[Obj]:
    listed = await client.list(ENDPOINT_SLICES, NS, label_selector=f"kubernetes.io/service-name={name}")
    return listed["items"]


async def test_endpoints_follow_readiness_without_write_storms(api: InProcessApi) -> None:
    client = api.client
    svc = service()
    svc["metadata"] = {"name": "web"}
    await client.create(SERVICES, svc, NS)
    await make_pod(client, "a", "10.244.1.2", True)
    await make_pod(client, "b", "10.244.1.3", True)

    async def addresses(field: str = "addresses") -> list[str]:
        ep = await get_or_none(client, ENDPOINTS, "web")
        return ips(ep, field) if ep else []

    await async_wait_for(lambda: _eq(addresses(), ["10.244.1.2", "10.244.1.3"]), 10, what="both addresses")
    await set_ready(client, "b", False)
    await async_wait_for(lambda: _eq(addresses("notReadyAddresses"), ["10.244.1.3"]), 10, what="b not ready")
    assert await addresses() == ["10.244.1.2"]

    async def conditions() -> dict[str, Obj]:
        return {e["targetRef"]["name"]: e["conditions"] for s in await slices_of(client, "web") for e in s["endpoints"]}

    await async_wait_for(lambda: _eq_async(conditions(), lambda c: c.get("b", {}).get("ready") is False
                                           and c.get("a", {}).get("ready") is True), 10, what="slice conditions")
    # a status write that changes no address writes neither the Endpoints nor the slices
    before = (await client.get(ENDPOINTS, "web", NS))["metadata"]["resourceVersion"]
    slices_before = [s["metadata"]["resourceVersion"] for s in await slices_of(client, "web")]
    await client.patch(PODS, "a", {"status": {"message": "still fine"}}, NS, subresource="status")
    await set_ready(client, "b", False)
    await controllers_caught_up(client, "settle")  # had the writes queued a sync, it has run by now
    assert (await client.get(ENDPOINTS, "web", NS))["metadata"]["resourceVersion"] == before
    assert [s["metadata"]["resourceVersion"] for s in await slices_of(client, "web")] == slices_before
    # a terminating pod leaves the addresses at once but stays in the slice as terminating
    await client.patch(PODS, "a", {"metadata": {"finalizers": ["example.com/hold"]}}, NS)
    await client.delete(PODS, "a", NS, grace_period_seconds=0)
    await async_wait_for(lambda: _eq(addresses(), []), 10, what="a out of the addresses")
    await async_wait_for(lambda: _eq_async(conditions(), lambda c: c.get("a") == {"ready": False, "serving": True,
                                                                                  "terminating": True}),
                         10, what="a terminating in the slice")
    await client.patch(PODS, "a", {"metadata": {"finalizers": []}}, NS)
    # the Service goes: its Endpoints and slices go
    await client.delete(SERVICES, "web", NS)
    await async_wait_for(lambda: _is_none(get_or_none(client, ENDPOINTS, "web")), 10, what="Endpoints deleted")
    await async_wait_for(lambda: _eq(slices_of(client, "web"), []), 10, what="slices deleted")


async def test_selectorless_services_are_mirrored_and_kubernetes_endpoints_are_the_servers(api: InProcessApi) -> None:
    client = api.client
    await client.create(SERVICES, {"metadata": {"name": "ext"}, "spec": {"ports": [{"name": "db", "port": 5432}]}}, NS)
    await client.create(ENDPOINTS, {"metadata": {"name": "ext"}, "subsets": [
        {"addresses": [{"ip": "192.0.2.10"}], "ports": [{"name": "db", "port": 5432}]}]}, NS)

    async def mirrored() -> list[str]:
        return [e["addresses"][0] for s in await slices_of(client, "ext") for e in s["endpoints"]]

    await async_wait_for(lambda: _eq(mirrored(), ["192.0.2.10"]), 10, what="the mirrored slice")
    (sl,) = await slices_of(client, "ext")
    assert sl["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == "endpointslicemirroring-controller.k8s.io"
    assert (await client.get(ENDPOINTS, "ext", NS))["subsets"][0]["addresses"] == [{"ip": "192.0.2.10"}]  # left alone

    await reconcile_kubernetes_endpoints(api.ctx, "127.0.0.1", 16443)
    ep = await client.get(ENDPOINTS, "kubernetes", NS)
    assert ep["subsets"] == [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": 16443, "protocol": "TCP"}]}]
    kube_slice = await client.get(ENDPOINT_SLICES, "kubernetes", NS)
    assert kube_slice["endpoints"][0]["addresses"] == ["127.0.0.1"] and kube_slice["ports"][0]["port"] == 16443
    svc = await client.get(SERVICES, "kubernetes", NS)
    assert svc["spec"]["ports"][0]["targetPort"] == 16443
    rv = ep["metadata"]["resourceVersion"]
    await reconcile_kubernetes_endpoints(api.ctx, "127.0.0.1", 16443)  # the same address: no write
    assert (await client.get(ENDPOINTS, "kubernetes", NS))["metadata"]["resourceVersion"] == rv
    await controllers_caught_up(client, "settle", selector=False)
    assert len(await slices_of(client, "kubernetes")) == 1  # not mirrored (skip-mirror), not the controller's


async def test_leftover_endpoints_of_deleted_services_go_and_users_stay(local_api: InProcessApi) -> None:
    client = local_api.client
    subsets = [{"addresses": [{"ip": "192.0.2.1"}], "ports": [{"port": 80}]}]
    await client.create(ENDPOINTS, {"metadata": {"name": "orphan", "labels": {
        "endpoints.kubernetes.io/managed-by": "endpoint-controller"}}, "subsets": subsets}, NS)
    await client.create(ENDPOINTS, {"metadata": {"name": "mine"}, "subsets": subsets}, NS)
    ctx = controller_context(local_api.client, "endpoint-controller")
    async with running(ctx, EndpointsController(ctx)):
        await async_wait_for(lambda: _is_none(get_or_none(client, ENDPOINTS, "orphan")), 10, what="the leftover deleted")
        assert await get_or_none(client, ENDPOINTS, "mine") is not None


async def test_node_ports_through_the_registry(local_api: InProcessApi) -> None:
    client = local_api.client
    made = await client.create(SERVICES, {"metadata": {"name": "np"}, "spec": {
        "type": "NodePort", "selector": {"app": "np"}, "ports": [{"port": 80, "nodePort": 30080}, ]}}, NS)
    assert made["spec"]["ports"][0]["nodePort"] == 30080
    with pytest.raises(ApiError) as caught:
        await client.create(SERVICES, {"metadata": {"name": "np2"}, "spec": {
            "type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}}, NS)
    assert caught.value.code == 422 and "spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated" \
        in caught.value.message
    # picked when not given; kept by an update that leaves it out; freed by a change to ClusterIP
    other = await client.create(SERVICES, {"metadata": {"name": "np3"}, "spec": {
        "type": "NodePort", "ports": [{"name": "web", "port": 80}]}}, NS)
    picked = other["spec"]["ports"][0]["nodePort"]
    assert 30000 <= picked <= 32767 and picked != 30080
    other["spec"]["ports"] = [{"name": "web", "port": 8080}]
    updated = await client.update(SERVICES, other)
    assert updated["spec"]["ports"][0]["nodePort"] == picked
    await client.patch(SERVICES, "np", {"spec": {"type": "ClusterIP"}}, NS)
    freed = await client.create(SERVICES, {"metadata": {"name": "np4"}, "spec": {
        "type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}}, NS)
    assert freed["spec"]["ports"][0]["nodePort"] == 30080
    assert "nodePort" not in (await client.get(SERVICES, "np", NS))["spec"]["ports"][0]
    # a ClusterIP Service that becomes NodePort gets a port on update
    turned = await client.patch(SERVICES, "np", {"spec": {"type": "NodePort"}}, NS)
    assert 30000 <= turned["spec"]["ports"][0]["nodePort"] <= 32767


async def test_concurrent_creates_never_share_a_node_port_or_cluster_ip(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "store.sqlite")  # its writes yield to the loop, so creates interleave
    await store.start()
    try:
        async with in_process_api(store) as api:
            async def make(name: str, **spec: Any) -> Any:
                try:
                    return await api.client.create(SERVICES, {"metadata": {"name": name}, "spec": spec}, NS)
                except ApiError as exc:
                    return exc

            same = await asyncio.gather(*(make(f"same-{i}", type="NodePort", ports=[{"port": 80, "nodePort": 30080}])
                                          for i in range(4)))
            assert sum(not isinstance(r, ApiError) for r in same) == 1
            picked = await asyncio.gather(*(make(f"pick-{i}", type="NodePort", ports=[{"port": 80}]) for i in range(6)))
            assert len({r["spec"]["ports"][0]["nodePort"] for r in picked}) == 6
            assert len({r["spec"]["clusterIP"] for r in picked}) == 6
    finally:
        await store.close()


async def _eq(value: Any, expected: Any) -> bool:
    return (await value) == expected


async def _eq_async(value: Any, check: Any) -> bool:
    return bool(check(await value))


async def _is_none(value: Any) -> bool:
    return (await value) is None


async def _is_some(value: Any) -> bool:
    return (await value) is not None


# --------------------------------------------------------------------------- a real podlife, with kubectl


@pytest.mark.e2e
def test_kubectl_sees_endpoints_kube_dns_and_node_ports_across_a_restart(tmp_path: Path) -> None:
    proc = PodlifeProcess(tmp_path / "data", "--nodes", "1", kubectl=require_tool("kubectl"))
    proc.start()
    try:
        port = int(proc.server.rsplit(":", 1)[1])
        ep = proc.kubectl_json("get", "endpoints", "kubernetes")
        assert ep["subsets"] == [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": port,
                                                                                  "protocol": "TCP"}]}]
        dns = proc.kubectl_json("get", "service", "kube-dns", "-n", "kube-system")
        assert dns["spec"]["clusterIP"] == "10.96.0.10"
        assert [(p["name"], p["port"], p["protocol"]) for p in dns["spec"]["ports"]] == [
            ("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")]
        np_service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                      "spec": {"type": "NodePort", "selector": {"app": "web"},
                               "ports": [{"name": "http", "port": 80, "targetPort": "http", "nodePort": 30080}]}}
        proc.kubectl("apply", "-f", "-", input=json.dumps(np_service))
        clash = {**np_service, "metadata": {"name": "web2"}}
        refused = proc.kubectl("apply", "-f", "-", input=json.dumps(clash), check=False)
        assert refused.returncode != 0
        assert "spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated" in refused.stderr
        # a pod no kubelet runs (its node does not exist): its status is the test's to write
        proc.kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "labels": {"app": "web"}},
            "spec": {"nodeName": "ghost", "containers": [{"name": "c", "image": "x",
                                                           "ports": [{"name": "http", "containerPort": 8080}]}]}}))
        for ready in ("True", "False"):
            status = {"status": {"phase": "Running", "podIP": "10.244.7.7", "podIPs": [{"ip": "10.244.7.7"}],
                                 "conditions": [{"type": "Ready", "status": ready}]}}
            proc.kubectl("patch", "pod", "web-1", "--subresource=status", "--type=merge", "-p", json.dumps(status))
            field = "addresses" if ready == "True" else "notReadyAddresses"
            wait_for(lambda f=field: ips(proc.kubectl_json("get", "endpoints", "web"), f) == ["10.244.7.7"], 20,
                     what=f"web-1 in {field}")
            slices = proc.kubectl_json("get", "endpointslices", "-l", "kubernetes.io/service-name=web")["items"]
            assert [e["conditions"]["ready"] for s in slices for e in s["endpoints"]] == [ready == "True"]
        assert ips(proc.kubectl_json("get", "endpoints", "web")) == []
        # a Service without selector: the user's Endpoints, mirrored into a slice (under the controllers' RBAC)
        for obj in ({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext"}, "spec": {"ports": [{"port": 5432}]}},
                    {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "ext"},
                     "subsets": [{"addresses": [{"ip": "192.0.2.10"}], "ports": [{"port": 5432}]}]}):
            proc.kubectl("apply", "-f", "-", input=json.dumps(obj))

        def mirrored() -> list[str]:
            slices = proc.kubectl_json("get", "endpointslices", "-l", "kubernetes.io/service-name=ext")["items"]
            return [e["addresses"][0] for s in slices for e in s.get("endpoints") or []]

        wait_for(lambda: mirrored() == ["192.0.2.10"], 20, what="the mirrored slice")
        proc.stop()
        proc.start()  # the same data dir: the node port is still taken, by the same Service
        assert proc.kubectl_json("get", "service", "web")["spec"]["ports"][0]["nodePort"] == 30080
        again = proc.kubectl("apply", "-f", "-", input=json.dumps(clash), check=False)
        assert "provided port is already allocated" in again.stderr
        new_port = int(proc.server.rsplit(":", 1)[1])
        wait_for(lambda: proc.kubectl_json("get", "endpoints", "kubernetes")["subsets"][0]["ports"][0]["port"] == new_port,
                 10, what="the kubernetes Endpoints at the new port")
    finally:
        proc.stop()
