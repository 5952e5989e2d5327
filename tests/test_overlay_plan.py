"""The overlay's pure planning (podlife/nodenet/overlay.py): VTEPs from Nodes, the entries a fabric wants from
Nodes and Ports, what ``ip -j``/``bridge -j`` show read back, and the commands between the two.

No kernel here: tests/test_multi_host_network.py runs the same plan between real hosts.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from podlife.nodenet.overlay import (VTEP_ANNOTATION, Fdb, Neigh, Plan, Route, Vtep, desired_plan, overlay_address,
                                     parse_plan, parse_vtep, plan_commands, vxlan_link_name)

MAC1, MAC2, MAC3 = "aa:00:00:00:00:01", "aa:00:00:00:00:02", "aa:00:00:00:00:03"


def node(name: str, ip: str, mac: str | None) -> dict[str, Any]:
    annotations = {} if mac is None else {
        VTEP_ANNOTATION: json.dumps({"mac": mac, "ip": ip, "address": overlay_address(ip)})}
    return {"metadata": {"name": name, "annotations": annotations},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}]}}


def port(name: str, host: str, ip: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default"},
            "spec": {"hostID": host, "nodeName": host, "fixedIPs": [{"ipAddress": ip, "subnet": "default-0"}]}}


NODES = [node("h1", "192.168.77.11", MAC1), node("h2", "192.168.77.12", MAC2), node("h3", "192.168.77.13", None)]


def test_overlay_address_and_device_name() -> None:
    assert overlay_address("192.168.77.12") == "169.254.250.12"
    assert overlay_address("10.0.3.200") == "169.254.250.200"
    with pytest.raises(ValueError):
        overlay_address("fd00::1")
    assert vxlan_link_name("2b8b8c") == "plvx2b8b8c" and len(vxlan_link_name("2b8b8c")) <= 15


def test_vtep_annotation_round_trips_and_bad_ones_are_ignored() -> None:
    vtep = Vtep(MAC1, "192.168.77.11", "169.254.250.11")
    assert parse_vtep({"metadata": {"annotations": {VTEP_ANNOTATION: vtep.annotation()}}}) == vtep
    for bad in ("", "{", "[]", json.dumps({"mac": "zz", "ip": "192.168.77.11", "address": "169.254.250.11"}),
                json.dumps({"mac": "00:00:00:00:00:00", "ip": "192.168.77.11", "address": "169.254.250.11"}),
                json.dumps({"mac": MAC1, "ip": "nowhere", "address": "169.254.250.11"})):
        assert parse_vtep({"metadata": {"annotations": {VTEP_ANNOTATION: bad}}}) is None
    assert parse_vtep({"metadata": {}}) is None


def test_desired_plan_routes_other_nodes_pods_via_their_vtep() -> None:
    ports = [port("a", "h1", "10.244.0.2"), port("b", "h2", "10.244.0.3"), port("c", "h3", "10.244.0.4"),
             port("d", "h2", "not-an-ip"), {"metadata": {"name": "e"}, "spec": {}}]
    plan = desired_plan(NODES, ports, ["h1"])
    # h1's own pods are the CNI plugin's; h3 has no VTEP yet; bad ports are skipped
    assert plan.routes == {Route("10.244.0.3", "169.254.250.12")}
    assert plan.neighs == {Neigh("169.254.250.12", MAC2)}
    assert plan.fdb == {Fdb(MAC2, "192.168.77.12")}
    assert desired_plan(NODES, ports, ["h2"]).routes == {Route("10.244.0.2", "169.254.250.11")}


def test_nodes_whose_vteps_clash_are_left_out_but_the_first() -> None:
    clash = node("h9", "192.168.78.12", MAC3)  # same last octet as h2: same overlay address
    plan = desired_plan([*NODES, clash], [port("b", "h2", "10.244.0.3"), port("z", "h9", "10.244.0.9")], ["h1"])
    assert plan.routes == {Route("10.244.0.3", "169.254.250.12")}
    assert Fdb(MAC3, "192.168.78.12") not in plan.fdb


def test_parse_plan_reads_what_ip_and_bridge_show() -> None:
    routes = [{"dst": "10.244.0.3", "gateway": "169.254.250.12", "dev": "plvx", "flags": ["onlink"]},
              {"dst": "169.254.250.0/24", "dev": "plvx", "protocol": "kernel"}]
    neighs = [{"dst": "169.254.250.12", "dev": "plvx", "lladdr": MAC2.upper(), "state": ["PERMANENT"]},
              {"dst": "169.254.250.99", "dev": "plvx", "lladdr": MAC3, "state": ["STALE"]}]
    fdb = [{"mac": MAC2, "dst": "192.168.77.12", "flags": ["self"], "state": "permanent"},
           {"mac": "00:00:00:00:00:00", "dst": "192.168.77.99"}, {"mac": "33:33:00:00:00:01", "flags": ["self"]}]
    assert parse_plan(routes, neighs, fdb) == Plan(frozenset({Route("10.244.0.3", "169.254.250.12")}),
                                                   frozenset({Neigh("169.254.250.12", MAC2)}),
                                                   frozenset({Fdb(MAC2, "192.168.77.12")}))
    assert parse_plan(None, {}, "x") == Plan()


def test_plan_commands_add_in_order_remove_in_reverse_and_nothing_when_equal() -> None:
    want = desired_plan(NODES, [port("b", "h2", "10.244.0.3")], ["h1"])
    adds = plan_commands(Plan(), want, "fab", "plvx1")
    assert adds == [
        ["bridge", "-n", "fab", "fdb", "replace", MAC2, "dev", "plvx1", "dst", "192.168.77.12", "self", "permanent"],
        ["ip", "-n", "fab", "neigh", "replace", "169.254.250.12", "lladdr", MAC2, "dev", "plvx1", "nud", "permanent"],
        ["ip", "-n", "fab", "route", "replace", "10.244.0.3/32", "via", "169.254.250.12", "dev", "plvx1", "onlink"]]
    assert plan_commands(want, want, "fab", "plvx1") == []
    assert plan_commands(want, Plan(), "fab", "plvx1") == [
        ["ip", "-n", "fab", "route", "del", "10.244.0.3/32", "dev", "plvx1"],
        ["ip", "-n", "fab", "neigh", "del", "169.254.250.12", "dev", "plvx1"],
        ["bridge", "-n", "fab", "fdb", "del", MAC2, "dev", "plvx1", "self"]]


def test_a_node_that_comes_back_with_a_new_mac_is_replaced_not_duplicated() -> None:
    before = desired_plan(NODES, [port("b", "h2", "10.244.0.3")], ["h1"])
    renewed = [NODES[0], node("h2", "192.168.77.12", MAC3)]
    after = desired_plan(renewed, [port("b", "h2", "10.244.0.3")], ["h1"])
    commands = plan_commands(before, after, "fab", "plvx1")
    assert ["ip", "-n", "fab", "neigh", "replace", "169.254.250.12", "lladdr", MAC3, "dev", "plvx1", "nud",
            "permanent"] in commands
    assert ["bridge", "-n", "fab", "fdb", "del", MAC2, "dev", "plvx1", "self"] in commands
    assert not any(c[3] == "neigh" and c[4] == "del" for c in commands)  # same address: replaced, not deleted
    assert not any(c[3] == "route" for c in commands)  # the route's next hop did not change


def test_nodes_sharing_one_fabric_share_its_vtep() -> None:
    """``podlife up``'s local nodes sit behind one fabric: one VTEP on each, no clash; their fabric routes none."""
    shared = Vtep(MAC1, "192.168.77.10", "169.254.250.10")
    local = [{"metadata": {"name": n, "annotations": {VTEP_ANNOTATION: shared.annotation()}}} for n in ("n0", "n1")]
    ports = [port("p0", "n0", "10.244.0.2"), port("p1", "n1", "10.244.0.3"), port("b", "h2", "10.244.0.4")]
    remote = [node("h2", "192.168.77.12", MAC2)]
    from_h2 = desired_plan([*local, *remote], ports, ["h2"])
    assert from_h2.routes == {Route("10.244.0.2", "169.254.250.10"), Route("10.244.0.3", "169.254.250.10")}
    assert from_h2.neighs == {Neigh("169.254.250.10", MAC1)} and from_h2.fdb == {Fdb(MAC1, "192.168.77.10")}
    # the shared fabric itself: known by its own VTEP, even for a local node it was not told about
    from_up = desired_plan([*local, *remote], ports, ["n0"], own=shared)
    assert from_up.routes == {Route("10.244.0.4", "169.254.250.12")}
