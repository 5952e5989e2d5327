"""Tests for podlife.network.controller (ports, subnets, annotations) and podlife.node.cni."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from podlife.machinery.errors import ApiError
from podlife.client.base import NAMESPACES, PODS, PORTS, SUBNETS, Client, Obj
from podlife.api.local_client import LocalClient
from podlife.node.cni import CNIError, CNIPlugin, PortInfo, read_port_annotation
from podlife.machinery.constants import PORT_ANNOTATION
from podlife.network.controller import NetworkController

from .cluster_harness import async_wait_for
from .in_process import InProcessApi

MAC_RE = re.compile(r"^fa:16:3e(:[0-9a-f]{2}){3}$")

# ---- helpers -------------------------------------------------------------------------------


def make_pod(name: str, namespace: str = "default", node: str | None = "node-1", **spec: Any) -> Obj:
    body: dict[str, Any] = {"containers": [{"name": "app", "image": "nginx:1.25"}], **spec}
    if node:
        body["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace}, "spec": body}


async def get_or_none(client: Client, res: Any, name: str, namespace: str | None = "default") -> Obj | None:
    try:
        return await client.get(res, name, namespace)
    except ApiError as exc:
        if exc.code == 404:
            return None
        raise


async def wait_port(client: Client, name: str, namespace: str = "default") -> Obj:
    async def check() -> Obj | None:
        return await get_or_none(client, PORTS, name, namespace)
    return await async_wait_for(check, what=f"port {namespace}/{name}")


async def wait_port_gone(client: Client, name: str, namespace: str = "default", uid: str | None = None) -> None:
    async def check() -> bool:
        port = await get_or_none(client, PORTS, name, namespace)
        return port is None or (uid is not None and port["metadata"]["uid"] != uid)
    await async_wait_for(check, what=f"port {namespace}/{name} to go")


async def wait_annotated(client: Client, name: str, namespace: str = "default") -> Obj:
    async def check() -> Obj | None:
        pod = await client.get(PODS, name, namespace)
        return pod if PORT_ANNOTATION in (pod["metadata"].get("annotations") or {}) else None
    return await async_wait_for(check, what=f"annotation on {namespace}/{name}")


def port_ip(port: Obj) -> str:
    return port["spec"]["fixedIPs"][0]["ipAddress"]


@pytest.fixture
def client(local_api: InProcessApi) -> LocalClient:
    return local_api.client


class Running:
    """Controllers started by a test, stopped at its end (or earlier, to test restarts)."""

    def __init__(self, client: LocalClient) -> None:
        self.client = client
        self.tasks: dict[NetworkController, asyncio.Task[None]] = {}

    async def start(self, **kwargs: Any) -> NetworkController:
        kwargs.setdefault("status_interval", 0.05)
        controller = NetworkController(self.client, **kwargs)
        self.tasks[controller] = asyncio.create_task(controller.run())
        await asyncio.wait_for(controller.wait_synced(), 5)
        return controller

    async def stop(self, controller: NetworkController) -> None:
        task = self.tasks.pop(controller)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def stop_all(self) -> None:
        for controller in list(self.tasks):
            await self.stop(controller)


@pytest.fixture
async def running(client: LocalClient) -> AsyncIterator[Running]:
    r = Running(client)
    try:
        yield r
    finally:
        await r.stop_all()


# ---- the controller ---------------------------------------------------------------------------


async def test_scheduled_pod_gets_port_subnet_and_annotation(client: LocalClient, running: Running) -> None:
    await running.start()
    pod = await client.create(PODS, make_pod("nginx"), "default")
    port = await wait_port(client, "nginx")
    spec = port["spec"]
    assert spec["podName"] == "nginx" and spec["podUID"] == pod["metadata"]["uid"] and spec["nodeName"] == "node-1"
    assert MAC_RE.match(spec["macAddress"])
    assert port["status"]["phase"] == "Active"
    (owner,) = port["metadata"]["ownerReferences"]
    assert owner["kind"] == "Pod" and owner["uid"] == pod["metadata"]["uid"] and owner["controller"] is True

    subnet = await client.get(SUBNETS, spec["subnet"], "default")
    assert spec["subnet"] == "default-0" and spec["fixedIPs"] == [{"ipAddress": port_ip(port), "subnet": "default-0"}]
    assert ipaddress.ip_address(port_ip(port)) in ipaddress.ip_network(subnet["spec"]["cidr"])
    assert subnet["spec"]["gateway"] != port_ip(port)

    annotated = await wait_annotated(client, "nginx")
    doc = json.loads(annotated["metadata"]["annotations"][PORT_ANNOTATION])
    assert doc["id"] == port["metadata"]["uid"] and doc["name"] == "nginx"
    assert doc["mac_address"] == spec["macAddress"]
    assert doc["fixed_ips"] == [{"ip_address": port_ip(port), "subnet_id": "default-0"}]
    assert doc["subnet"] == {"id": "default-0", "cidr": subnet["spec"]["cidr"], "gateway_ip": subnet["spec"]["gateway"]}
    assert doc["binding:host_id"] == "node-1"


async def test_pending_pod_gets_a_port_once_bound(client: LocalClient, running: Running) -> None:
    await running.start()
    await client.create(PODS, make_pod("later", node=None), "default")
    await client.create(PODS, make_pod("now"), "default")
    await wait_port(client, "now")
    assert await get_or_none(client, PORTS, "later") is None  # events come in order: "later" was skipped
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "later"},
               "target": {"apiVersion": "v1", "kind": "Node", "name": "node-2"}}
    await client.create_subresource(PODS, "later", "binding", binding, "default")
    assert (await wait_port(client, "later"))["spec"]["nodeName"] == "node-2"


async def test_host_network_pods_get_no_port(client: LocalClient, running: Running) -> None:
    await running.start()
    await client.create(PODS, make_pod("host", hostNetwork=True), "default")
    await client.create(PODS, make_pod("marker"), "default")
    await wait_port(client, "marker")
    assert await get_or_none(client, PORTS, "host") is None


async def test_each_namespace_has_its_own_subnet(client: LocalClient, running: Running) -> None:
    await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})
    await running.start()
    await client.create(PODS, make_pod("a", "default"), "default")
    await client.create(PODS, make_pod("b", "team-a"), "team-a")
    port_a, port_b = await wait_port(client, "a"), await wait_port(client, "b", "team-a")
    assert (port_a["spec"]["subnet"], port_b["spec"]["subnet"]) == ("default-0", "team-a-0")
    net_a = ipaddress.ip_network((await client.get(SUBNETS, "default-0", "default"))["spec"]["cidr"])
    net_b = ipaddress.ip_network((await client.get(SUBNETS, "team-a-0", "team-a"))["spec"]["cidr"])
    assert not net_a.overlaps(net_b)
    assert ipaddress.ip_address(port_b["spec"]["fixedIPs"][0]["ipAddress"]) in net_b


async def test_pod_deletion_deletes_port_and_frees_the_address(client: LocalClient, running: Running) -> None:
    controller = await running.start()
    pod = await client.create(PODS, make_pod("web"), "default")
    ip = port_ip(await wait_port(client, "web"))
    assert controller.ipam.get(pod["metadata"]["uid"]) is not None
    await client.delete(PODS, "web", "default", grace_period_seconds=0)
    await wait_port_gone(client, "web")
    assert controller.ipam.get(pod["metadata"]["uid"]) is None
    await client.create(PODS, make_pod("next"), "default")
    assert port_ip(await wait_port(client, "next")) == ip  # lowest free address first: the freed one


async def test_finished_pod_releases_its_port(client: LocalClient, running: Running) -> None:
    await running.start()
    await client.create(PODS, make_pod("job", restartPolicy="Never"), "default")
    await wait_port(client, "job")
    await client.patch(PODS, "job", {"status": {"phase": "Succeeded"}}, "default", subresource="status")
    await wait_port_gone(client, "job")


async def test_port_deleted_behind_its_back_comes_back_with_the_same_address(client: LocalClient,
                                                                            running: Running) -> None:
    await running.start()
    await client.create(PODS, make_pod("db"), "default")
    first = await wait_port(client, "db")
    await wait_annotated(client, "db")
    await client.delete(PORTS, "db", "default")

    async def replaced() -> Obj | None:
        port = await get_or_none(client, PORTS, "db")
        return port if port is not None and port["metadata"]["uid"] != first["metadata"]["uid"] else None
    second = await async_wait_for(replaced, what="port to be recreated")
    assert (port_ip(second), second["spec"]["macAddress"]) == (port_ip(first), first["spec"]["macAddress"])

    async def annotation_updated() -> bool:
        pod = await client.get(PODS, "db", "default")
        return json.loads(pod["metadata"]["annotations"][PORT_ANNOTATION])["id"] == second["metadata"]["uid"]
    await async_wait_for(annotation_updated, what="annotation to name the new port")


async def test_restart_keeps_addresses_and_collects_orphans(client: LocalClient, running: Running) -> None:
    first = await running.start()
    for i in range(5):
        await client.create(PODS, make_pod(f"p-{i}"), "default")
    before = {f"p-{i}": await wait_port(client, f"p-{i}") for i in range(5)}
    for i in range(5):
        await wait_annotated(client, f"p-{i}")
    await running.stop(first)

    # while the controller is down: a pod goes, another is replaced under the same name, one is added
    await client.delete(PODS, "p-0", "default", grace_period_seconds=0)
    await client.delete(PODS, "p-1", "default", grace_period_seconds=0)
    await client.create(PODS, make_pod("p-1"), "default")
    await client.create(PODS, make_pod("new"), "default")

    second = await running.start()
    await wait_port_gone(client, "p-0")
    await wait_port_gone(client, "p-1", uid=before["p-1"]["metadata"]["uid"])
    for i in range(2, 5):
        port = await client.get(PORTS, f"p-{i}", "default")
        assert port["metadata"]["uid"] == before[f"p-{i}"]["metadata"]["uid"]
        alloc = second.ipam.get(port["spec"]["podUID"])
        assert alloc is not None and alloc.ip == port_ip(port)
    replaced = await wait_port(client, "p-1")
    new = await wait_port(client, "new")
    kept = {port_ip(before[f"p-{i}"]) for i in range(2, 5)}
    assert port_ip(replaced) not in kept and port_ip(new) not in kept and port_ip(replaced) != port_ip(new)
    assert [s.name for s in second.ipam.subnets("default")] == ["default-0"]  # restored, not re-created


async def test_port_of_an_unknown_pod_uid_is_replaced(client: LocalClient, running: Running) -> None:
    pod = await client.create(PODS, make_pod("app"), "default")
    stale = {"apiVersion": "network.podlife.io/v1", "kind": "Port", "metadata": {"name": "app", "namespace": "default"},
             "spec": {"subnet": "default-0", "macAddress": "fa:16:3e:00:00:01",
                      "fixedIPs": [{"ipAddress": "10.244.0.77", "subnet": "default-0"}],
                      "podName": "app", "podUID": "some-earlier-pod", "nodeName": "node-1"},
             "status": {"phase": "Active"}}
    await client.create(PORTS, stale, "default")
    await running.start()

    async def owned_by_pod() -> Obj | None:
        port = await get_or_none(client, PORTS, "app")
        return port if port is not None and port["spec"]["podUID"] == pod["metadata"]["uid"] else None
    port = await async_wait_for(owned_by_pod, what="port owned by the current pod")
    assert port_ip(port) != "10.244.0.77"


async def test_subnet_deleted_while_in_use_is_recreated(client: LocalClient, running: Running) -> None:
    await running.start()
    await client.create(PODS, make_pod("a"), "default")
    await wait_port(client, "a")
    first = await client.get(SUBNETS, "default-0", "default")
    await client.delete(SUBNETS, "default-0", "default")

    async def recreated() -> Obj | None:
        subnet = await get_or_none(client, SUBNETS, "default-0")
        return subnet if subnet is not None and subnet["metadata"]["uid"] != first["metadata"]["uid"] else None
    again = await async_wait_for(recreated, what="subnet to be recreated")
    assert again["spec"] == first["spec"]


async def test_deleted_namespace_gives_its_block_back(client: LocalClient, running: Running) -> None:
    controller = await running.start()
    for ns in ("team-b", "team-c"):
        await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    await client.create(PODS, make_pod("b", "team-b"), "team-b")
    cidr = (await client.get(SUBNETS, (await wait_port(client, "b", "team-b"))["spec"]["subnet"], "team-b"))["spec"]["cidr"]
    # what the namespace controller does: delete the content, pods and subnets alike
    await client.delete(PODS, "b", "team-b", grace_period_seconds=0)
    await client.delete(SUBNETS, "team-b-0", "team-b")
    await wait_port_gone(client, "b", "team-b")

    async def released() -> bool:
        return controller.ipam.subnets("team-b") == []
    await async_wait_for(released, what="the namespace's subnets to be released")
    await client.create(PODS, make_pod("c", "team-c"), "team-c")
    port = await wait_port(client, "c", "team-c")
    assert (await client.get(SUBNETS, port["spec"]["subnet"], "team-c"))["spec"]["cidr"] == cidr


async def test_unusable_subnet_objects_are_ignored(client: LocalClient, running: Running) -> None:
    bogus = {"apiVersion": "network.podlife.io/v1", "kind": "Subnet", "metadata": {"name": "x-0", "namespace": "default"},
             "spec": {"cidr": "192.168.7.0/24", "gateway": "192.168.7.1"}}
    await client.create(SUBNETS, bogus, "default")
    await running.start()
    await client.create(PODS, make_pod("fine"), "default")
    assert port_ip(await wait_port(client, "fine")).startswith("10.244.")


async def test_subnet_status_counts_allocations(client: LocalClient, running: Running) -> None:
    controller = await running.start()
    for i in range(3):
        await client.create(PODS, make_pod(f"s-{i}"), "default")
    for i in range(3):
        await wait_port(client, f"s-{i}")
    await client.delete(PODS, "s-0", "default", grace_period_seconds=0)
    await wait_port_gone(client, "s-0")

    async def allocated_two() -> bool:
        subnet = await client.get(SUBNETS, "default-0", "default")
        return subnet.get("status", {}).get("allocated") == 2
    await async_wait_for(allocated_two, what="status.allocated == 2")
    assert controller.allocated() == {"default-0": 2}


async def test_thousand_pods_get_distinct_addresses(client: LocalClient, running: Running) -> None:
    controller = await running.start()
    await asyncio.gather(*(client.create(PODS, make_pod(f"p-{i}", node=f"node-{i % 10}"), "default")
                           for i in range(1000)))

    async def all_annotated() -> bool:
        return controller.stats.annotations_written >= 1000
    await async_wait_for(all_annotated, 60, what="1000 annotations")
    ports = (await client.list(PORTS, "default"))["items"]
    assert len(ports) == 1000
    assert len({port_ip(p) for p in ports}) == 1000 and len({p["spec"]["macAddress"] for p in ports}) == 1000
    # a /24 holds 253 pods: the namespace spills over into more subnets
    assert {p["spec"]["subnet"] for p in ports} == {"default-0", "default-1", "default-2", "default-3"}


# ---- the CNI step ---------------------------------------------------------------------------------


async def test_cni_fails_before_the_annotation_and_succeeds_after(client: LocalClient, running: Running) -> None:
    cni = CNIPlugin(node_name="node-1")
    pod = await client.create(PODS, make_pod("nginx"), "default")
    with pytest.raises(CNIError, match="port annotation not present yet"):
        read_port_annotation(pod)
    with pytest.raises(CNIError):
        await cni.add(pod)
    await running.start()
    pod = await wait_annotated(client, "nginx")
    port = await client.get(PORTS, "nginx", "default")
    info = await cni.add(pod)
    assert info == read_port_annotation(pod)
    assert (info.ip, info.mac, info.port_name, info.port_id) == (
        port_ip(port), port["spec"]["macAddress"], "nginx", port["metadata"]["uid"])
    assert info.cidr.endswith("/24") and info.ip_with_prefix == f"{info.ip}/24"
    assert ipaddress.ip_address(info.gateway) in ipaddress.ip_network(info.cidr)
    assert cni.attached[pod["metadata"]["uid"]] == info
    await cni.delete(pod)
    await cni.delete(pod)  # CNI DEL is idempotent
    assert cni.attached == {}


def _annotated(value: str, **extra: Any) -> Obj:
    return {"metadata": {"uid": "u1", "annotations": {PORT_ANNOTATION: value}}, "spec": {"nodeName": "node-1"}, **extra}


@pytest.mark.parametrize("value", [
    "not json", "[1]", json.dumps({"mac_address": "fa:16:3e:00:00:01"}),
    json.dumps({"fixed_ips": [{"ip_address": "10.244.9.9"}], "mac_address": "fa:16:3e:00:00:01",
                "subnet": {"cidr": "10.244.0.0/24"}}),
    json.dumps({"fixed_ips": [{"ip_address": "10.244.0.2"}]}),
])
def test_cni_rejects_malformed_annotations(value: str) -> None:
    with pytest.raises(CNIError):
        read_port_annotation(_annotated(value))


async def test_cni_refuses_a_port_bound_to_another_node() -> None:
    doc = {"id": "p", "name": "x", "mac_address": "fa:16:3e:00:00:01", "fixed_ips": [{"ip_address": "10.244.0.2"}],
           "subnet": {"cidr": "10.244.0.0/24", "gateway_ip": "10.244.0.1"}, "binding:host_id": "node-2"}
    with pytest.raises(CNIError, match="node-2"):
        await CNIPlugin(node_name="node-1").add(_annotated(json.dumps(doc)))
    assert (await CNIPlugin().add(_annotated(json.dumps(doc)))).ip == "10.244.0.2"


async def test_cni_host_network_pod_uses_the_node_address() -> None:
    pod = {"metadata": {"uid": "u"}, "spec": {"hostNetwork": True}, "status": {"hostIP": "192.0.2.10"}}
    assert (await CNIPlugin().add(pod)).ip == "192.0.2.10"
    assert (await CNIPlugin(host_ip="192.0.2.1").add({"metadata": {}, "spec": {"hostNetwork": True}})).ip == "192.0.2.1"
    with pytest.raises(CNIError):
        await CNIPlugin().add({"metadata": {}, "spec": {"hostNetwork": True}})


def test_port_info_prefix() -> None:
    assert PortInfo("10.244.1.5", "fa:16:3e:00:00:01", "10.244.1.0/24", "10.244.1.1", "p").ip_with_prefix == "10.244.1.5/24"
