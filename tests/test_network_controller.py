"""Tests for podlife.network.controller (ports, subnets, annotations) and podlife.node.cni."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from podlife.machinery.errors import ApiError
from podlife.client.base import NAMESPACES, PODS, PORTS, SUBNETS, Client, Obj
from podlife.api.local_client import LocalClient
from podlife.node.cni import CNIError, CNIPlugin, PortInfo, read_port_annotation
from podlife.machinery.constants import PORT_ANNOTATION, SUBNET_ANNOTATION
from podlife.network.controller import NetworkController

from .cluster_harness import PodlifeProcess, async_wait_for, require_tool, wait_for
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
    assert port["status"]["phase"] == "DOWN"
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


async def test_port_has_neutron_fields_and_both_annotations(client: LocalClient, running: Running) -> None:
    await running.start(dns_nameservers=("10.96.0.10",))
    pod = await client.create(PODS, make_pod("nginx"), "default")
    uid = pod["metadata"]["uid"]
    port = await wait_port(client, "nginx")
    assert port["status"] == {"phase": "DOWN"}
    spec = port["spec"]
    assert (spec["adminStateUp"], spec["securityGroups"], spec["deviceOwner"], spec["deviceID"], spec["hostID"]) == (
        True, ["default-default"], "podlife:container", uid, "node-1")
    assert (spec["vifType"], spec["vnicType"], spec["vifDetails"]) == ("veth", "normal", {"port_filter": True})

    annotations = (await wait_annotated(client, "nginx"))["metadata"]["annotations"]
    doc, subnet_doc = json.loads(annotations[PORT_ANNOTATION]), json.loads(annotations[SUBNET_ANNOTATION])
    assert (doc["admin_state_up"], doc["port_security_enabled"], doc["security_groups"]) == (True, True, ["default-default"])
    assert (doc["binding:vif_type"], doc["binding:vnic_type"], doc["binding:vif_details"]) == ("veth", "normal",
                                                                                            {"port_filter": True})
    assert (doc["device_owner"], doc["device_id"], doc["network_id"], doc["status"]) == (
        "podlife:container", uid, "default", "DOWN")
    subnet = await client.get(SUBNETS, "default-0", "default")
    cidr, gateway = subnet["spec"]["cidr"], subnet["spec"]["gateway"]
    assert subnet_doc == {
        "id": "default-0", "name": "default-0", "network_id": "default", "cidr": cidr, "gateway_ip": gateway,
        "allocation_pools": [{"start": "10.244.0.2", "end": "10.244.0.254"}], "ip_version": 4, "enable_dhcp": False,
        "dns_nameservers": ["10.96.0.10"], "host_routes": []}
    assert subnet["spec"]["allocationPools"] == [{"start": "10.244.0.2", "end": "10.244.0.254"}]
    # the CNI side still reads the port document
    assert read_port_annotation({"metadata": {"annotations": annotations}}).ip == port_ip(port)


async def test_active_status_survives_the_controllers_writes(client: LocalClient, running: Running) -> None:
    controller = await running.start()
    await client.create(PODS, make_pod("web"), "default")
    port = await wait_port(client, "web")
    await wait_annotated(client, "web")
    # what the node's CNI plugin does once the veth is plugged
    await client.patch(PORTS, "web", {"status": {"phase": "ACTIVE"}}, "default", subresource="status")
    # a main-resource write cannot touch the status (status is a subresource)
    await client.patch(PORTS, "web", {"metadata": {"labels": {"x": "y"}}, "status": {"phase": "DOWN"}}, "default")
    assert (await client.get(PORTS, "web", "default"))["status"]["phase"] == "ACTIVE"
    with pytest.raises(ApiError):
        await client.patch(PORTS, "web", {"status": {"phase": "BROKEN"}}, "default", subresource="status")

    # the controller writes again: the annotations are lost and rewritten, then it restarts
    await client.patch(PODS, "web", {"metadata": {"annotations": {PORT_ANNOTATION: None, SUBNET_ANNOTATION: None}}},
                       "default")
    await wait_annotated(client, "web")
    await running.stop(controller)
    again = await running.start()
    await client.create(PODS, make_pod("marker"), "default")
    await wait_annotated(client, "marker")
    now = await client.get(PORTS, "web", "default")
    assert now["metadata"]["uid"] == port["metadata"]["uid"] and now["status"]["phase"] == "ACTIVE"
    assert again.stats.ports_created == 1  # only the marker's


# ---- port pools ------------------------------------------------------------------------------------


async def wait_subnet_status(client: Client, name: str, namespace: str, **expected: int) -> Obj:
    async def check() -> Obj | None:
        subnet = await get_or_none(client, SUBNETS, name, namespace)
        status = (subnet or {}).get("status") or {}
        return subnet if all(status.get(k) == v for k, v in expected.items()) else None
    return await async_wait_for(check, what=f"subnet {namespace}/{name} status {expected}")


async def test_a_new_pod_takes_a_pool_address_and_the_pool_refills(client: LocalClient, running: Running) -> None:
    controller = await running.start(port_pool_size=3)
    await client.create(PODS, make_pod("first"), "default")
    first = port_ip(await wait_port(client, "first"))
    pool = controller.pool_addresses("default")
    assert len(pool) == 3 and first not in pool
    await client.create(PODS, make_pod("second"), "default")
    second = port_ip(await wait_port(client, "second"))
    assert second == pool[0] and controller.stats.pool_hits == 1
    refilled = controller.pool_addresses("default")
    assert len(refilled) == 3 and second not in refilled and set(pool[1:]) <= set(refilled)
    subnet = await wait_subnet_status(client, "default-0", "default", used=2, reserved=3)
    assert subnet["status"] == {"allocated": 5, "used": 2, "reserved": 3, "free": 253 - 5}
    ips = {port_ip(p) for p in (await client.list(PORTS, "default"))["items"]}
    assert ips == {first, second} and not ips & set(refilled)


async def test_pool_is_released_with_its_namespace(client: LocalClient, running: Running) -> None:
    controller = await running.start(port_pool_size=2)
    for ns in ("team-p", "team-q"):
        await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    await client.create(PODS, make_pod("p", "team-p"), "team-p")
    port = await wait_port(client, "p", "team-p")
    cidr = (await client.get(SUBNETS, port["spec"]["subnet"], "team-p"))["spec"]["cidr"]
    assert len(controller.pool_addresses("team-p")) == 2
    await client.delete(PODS, "p", "team-p", grace_period_seconds=0)
    await client.delete(SUBNETS, "team-p-0", "team-p")
    await wait_port_gone(client, "p", "team-p")

    async def released() -> bool:
        return controller.ipam.subnets("team-p") == [] and "team-p" not in controller.pools
    await async_wait_for(released, what="the namespace's pool and subnets to be released")
    assert len(controller.ipam) == 0
    await client.create(PODS, make_pod("q", "team-q"), "team-q")
    port = await wait_port(client, "q", "team-q")
    assert (await client.get(SUBNETS, port["spec"]["subnet"], "team-q"))["spec"]["cidr"] == cidr


# ---- subnet per node -------------------------------------------------------------------------------


async def test_subnet_per_node(client: LocalClient, running: Running) -> None:
    await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-n"}})
    await running.start(subnet_per="node")
    await client.create(PODS, make_pod("a", "default", node="node-1"), "default")
    await client.create(PODS, make_pod("b", "team-n", node="node-1"), "team-n")
    await client.create(PODS, make_pod("c", "default", node="node-2"), "default")
    a, b, c = await wait_port(client, "a"), await wait_port(client, "b", "team-n"), await wait_port(client, "c")
    assert (a["spec"]["subnet"], b["spec"]["subnet"], c["spec"]["subnet"]) == ("node.node-1-0", "node.node-1-0",
                                                                               "node.node-2-0")
    one = await client.get(SUBNETS, "node.node-1-0", "kube-system")
    two = await client.get(SUBNETS, "node.node-2-0", "kube-system")
    assert (one["spec"]["node"], two["spec"]["node"]) == ("node-1", "node-2")
    net_one, net_two = ipaddress.ip_network(one["spec"]["cidr"]), ipaddress.ip_network(two["spec"]["cidr"])
    assert net_one.prefixlen == 24 and not net_one.overlaps(net_two)
    assert {ipaddress.ip_address(port_ip(p)) in net_one for p in (a, b)} == {True}
    assert ipaddress.ip_address(port_ip(c)) in net_two
    doc = json.loads((await wait_annotated(client, "b", "team-n"))["metadata"]["annotations"][SUBNET_ANNOTATION])
    assert (doc["id"], doc["cidr"]) == ("node.node-1-0", one["spec"]["cidr"])
    assert (await client.list(SUBNETS, "default"))["items"] == []  # no namespace subnets in this mode


async def test_no_address_twice_across_restarts_pools_and_nodes(client: LocalClient, running: Running) -> None:
    """Pods created concurrently while the controller restarts (pool on, subnet per node):
    every live port has its own address and MAC, and the ports that existed keep theirs."""
    controller = await running.start(port_pool_size=4, subnet_per="node")
    await asyncio.gather(*(client.create(PODS, make_pod(f"a-{i}", node=f"node-{i % 3}"), "default") for i in range(60)))

    async def some_done() -> bool:
        return controller.stats.ports_created >= 20
    await async_wait_for(some_done, what="20 ports")
    await running.stop(controller)  # most likely in the middle of the others
    before = {p["metadata"]["name"]: (port_ip(p), p["metadata"]["uid"]) for p in (await client.list(PORTS, "default"))["items"]}
    assert len(before) >= 20
    creates = asyncio.gather(*(client.create(PODS, make_pod(f"b-{i}", node=f"node-{i % 4}"), "default")
                               for i in range(60)))
    second = await running.start(port_pool_size=4, subnet_per="node")
    await creates
    for i in range(0, 60, 3):
        await client.delete(PODS, f"a-{i}", "default", grace_period_seconds=0)

    async def settled() -> list[Obj] | None:
        ports = (await client.list(PORTS, "default"))["items"]
        pods = (await client.list(PODS, "default"))["items"]
        annotated = all(PORT_ANNOTATION in (p["metadata"].get("annotations") or {}) for p in pods)
        return ports if len(ports) == len(pods) == 100 and annotated else None
    ports = await async_wait_for(settled, 60, what="100 ports")
    assert len({port_ip(p) for p in ports}) == 100 and len({p["spec"]["macAddress"] for p in ports}) == 100
    pooled = {ip for group in second.pools for ip in second.pool_addresses(group)}
    assert not pooled & {port_ip(p) for p in ports}
    for p in ports:
        name = p["metadata"]["name"]
        if name in before and before[name][1] == p["metadata"]["uid"]:
            assert port_ip(p) == before[name][0]
        node = p["spec"]["nodeName"]
        cidr = (await client.get(SUBNETS, p["spec"]["subnet"], "kube-system"))["spec"]
        assert cidr["node"] == node and ipaddress.ip_address(port_ip(p)) in ipaddress.ip_network(cidr["cidr"])


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


# ---- through the real server and kubectl ---------------------------------------------------------


@pytest.mark.e2e
def test_kubectl_shows_ports_subnets_and_both_annotations(tmp_path: Path) -> None:
    proc = PodlifeProcess(tmp_path / "data", "--nodes", "0", "--sim-nodes", "1", "--port-pool-size", "2",
                          "--subnet-per", "node", kubectl=require_tool("kubectl"))
    try:
        proc.start()
        manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nginx"},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}
        proc.kubectl("create", "-f", "-", input=json.dumps(manifest))

        def annotated() -> dict | None:
            pod = proc.kubectl_json("get", "pod", "nginx")
            annotations = pod["metadata"].get("annotations") or {}
            return pod if SUBNET_ANNOTATION in annotations and PORT_ANNOTATION in annotations else None
        pod = wait_for(annotated, 30, what="the pod's port and subnet annotations")
        printed = proc.kubectl("get", "pod", "nginx", "-o", "template", "--template={{.metadata.annotations}}").stdout
        assert printed.startswith("map[") and f"{PORT_ANNOTATION}:{{" in printed and f"{SUBNET_ANNOTATION}:{{" in printed
        port_doc = json.loads(pod["metadata"]["annotations"][PORT_ANNOTATION])
        subnet_doc = json.loads(pod["metadata"]["annotations"][SUBNET_ANNOTATION])
        node = pod["spec"]["nodeName"]
        assert port_doc["binding:host_id"] == node and subnet_doc["id"] == f"node.{node}-0"

        header, row = proc.kubectl("get", "ports").stdout.splitlines()
        assert header.split() == ["NAME", "IP", "MAC", "SUBNET", "NODE", "STATUS", "AGE"]
        assert row.split()[:6] == ["nginx", port_doc["fixed_ips"][0]["ip_address"], port_doc["mac_address"],
                                   subnet_doc["id"], node, "DOWN"]
        proc.kubectl("patch", "port", "nginx", "--subresource=status", "--type=merge", "-p",
                     '{"status":{"phase":"ACTIVE"}}')
        wide_header, wide_row = proc.kubectl("get", "ports", "-o", "wide").stdout.splitlines()
        assert re.split(r"\s{2,}", wide_header)[-4:] == ["POD UID", "DEVICE OWNER", "VIF TYPE", "SECURITY GROUPS"]
        assert wide_row.split()[5] == "ACTIVE"
        assert wide_row.split()[-4:] == [pod["metadata"]["uid"], "podlife:container", "veth", "default-default"]

        def subnet_rows() -> list[str] | None:
            lines = proc.kubectl("get", "subnets", "-n", "kube-system").stdout.splitlines()
            # one pod and the pool's two reservations: used 1, free 253 - 3
            return lines if len(lines) == 2 and lines[1].split()[3:5] == ["1", "250"] else None
        lines = wait_for(subnet_rows, 30, what="the subnet's used/free counts")
        assert lines[0].split() == ["NAME", "CIDR", "GATEWAY", "USED", "FREE", "AGE"]
        assert lines[1].split()[:3] == [subnet_doc["id"], subnet_doc["cidr"], subnet_doc["gateway_ip"]]

        proc.kubectl("delete", "pod", "nginx", "--grace-period=0", "--force")
        wait_for(lambda: proc.kubectl("get", "ports", "--no-headers").stdout.strip() == "", 30, what="the port to go")
    finally:
        proc.stop()
