"""Tests for podlife.network.ipam: subnets per namespace, pod IPs, MACs, ClusterIPs."""

from __future__ import annotations

import ipaddress
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podlife.network.ipam import (
    IPAM,
    AddressInUseError,
    Allocation,
    ClusterIPAllocator,
    ExhaustedError,
    MacAllocator,
    PortRecord,
    SubnetInUseError,
    SubnetRecord,
    allocation_pools,
)

MAC_RE = re.compile(r"^fa:16:3e(:[0-9a-f]{2}){3}$")


def port_of(ipam: IPAM, owner: str) -> PortRecord:
    alloc = ipam.get(owner)
    assert alloc is not None
    return PortRecord(owner, alloc.subnet.name, alloc.ip, alloc.mac)


def snapshot(ipam: IPAM, owners: list[str]) -> tuple[list[SubnetRecord], list[PortRecord]]:
    return ipam.subnets(), [port_of(ipam, o) for o in owners if ipam.get(o)]


# -- allocation order ---------------------------------------------------------


def test_first_allocation_creates_namespace_subnet() -> None:
    ipam = IPAM()
    alloc = ipam.allocate("default", "uid-1")
    assert alloc.subnet == SubnetRecord("default-0", "default", "10.244.0.0/24", "10.244.0.1")
    assert alloc.ip == "10.244.0.2"
    assert alloc.new_subnet is True
    assert alloc.ip_with_prefix == "10.244.0.2/24"
    assert alloc.prefixlen == 24


def test_addresses_ascend_from_dot_two_and_skip_gateway() -> None:
    ipam = IPAM()
    allocs = [ipam.allocate("default", f"uid-{i}") for i in range(5)]
    assert [a.ip for a in allocs] == [f"10.244.0.{i}" for i in range(2, 7)]
    assert [a.new_subnet for a in allocs] == [True, False, False, False, False]
    assert all(a.ip != a.subnet.gateway for a in allocs)


def test_each_namespace_gets_its_own_block() -> None:
    ipam = IPAM()
    a = ipam.allocate("default", "a")
    b = ipam.allocate("kube-system", "b")
    c = ipam.allocate("default", "c")
    assert a.subnet.cidr == "10.244.0.0/24"
    assert b.subnet == SubnetRecord("kube-system-0", "kube-system", "10.244.1.0/24", "10.244.1.1")
    assert b.ip == "10.244.1.2" and b.new_subnet
    assert c.ip == "10.244.0.3" and not c.new_subnet
    assert [s.name for s in ipam.subnets()] == ["default-0", "kube-system-0"]
    assert ipam.subnets("nope") == []


def test_never_network_broadcast_or_gateway() -> None:
    ipam = IPAM("10.244.0.0/24", block_prefix=28)  # 16 addresses: 13 for pods
    allocs = [ipam.allocate("ns", f"p{i}") for i in range(13)]
    assert {a.subnet.name for a in allocs} == {"ns-0"}
    ips = [a.ip for a in allocs]
    assert ips == [f"10.244.0.{i}" for i in range(2, 15)]
    assert not {"10.244.0.0", "10.244.0.1", "10.244.0.15"} & set(ips)


def test_configurable_pod_cidr_and_prefix() -> None:
    ipam = IPAM("192.168.0.0/16", block_prefix=20)
    alloc = ipam.allocate("x", "o")
    assert alloc.subnet.cidr == "192.168.0.0/20"
    assert alloc.ip_with_prefix == "192.168.0.2/20"
    assert ipam.allocate("y", "p").subnet.cidr == "192.168.16.0/20"


def test_ipv6_pod_range() -> None:
    ipam = IPAM("fd00:10::/56", block_prefix=64)
    alloc = ipam.allocate("default", "o")
    assert alloc.subnet == SubnetRecord("default-0", "default", "fd00:10::/64", "fd00:10::1")
    assert alloc.ip == "fd00:10::2"


@pytest.mark.parametrize("prefix", [15, 31, 32])
def test_invalid_block_prefix(prefix: int) -> None:
    with pytest.raises(ValueError):
        IPAM("10.244.0.0/16", block_prefix=prefix)


def test_empty_names_rejected() -> None:
    with pytest.raises(ValueError):
        IPAM().allocate("", "o")
    with pytest.raises(ValueError):
        IPAM().allocate("ns", "")


# -- idempotence, release, reuse ------------------------------------------------


def test_allocate_is_idempotent_per_owner() -> None:
    ipam = IPAM()
    first = ipam.allocate("default", "uid-1")
    ipam.allocate("default", "uid-2")
    again = ipam.allocate("default", "uid-1")
    assert again is first  # including new_subnet, so a failed Subnet create is retried
    assert len(ipam) == 2


def test_same_owner_in_other_namespace_is_an_error() -> None:
    ipam = IPAM()
    ipam.allocate("a", "uid")
    with pytest.raises(ValueError, match="already has an address"):
        ipam.allocate("b", "uid")


def test_release_then_lowest_free_is_reused() -> None:
    ipam = IPAM()
    for i in range(5):
        ipam.allocate("default", f"p{i}")  # .2 .. .6
    ipam.release("p3")  # .5
    ipam.release("p1")  # .3
    assert ipam.get("p1") is None
    assert ipam.allocate("default", "n1").ip == "10.244.0.3"
    assert ipam.allocate("default", "n2").ip == "10.244.0.5"
    assert ipam.allocate("default", "n3").ip == "10.244.0.7"


def test_release_unknown_owner_is_a_noop() -> None:
    ipam = IPAM()
    ipam.release("ghost")
    ipam.allocate("default", "a")
    ipam.release("a")
    ipam.release("a")
    assert len(ipam) == 0


def test_released_owner_gets_a_fresh_allocation() -> None:
    ipam = IPAM()
    first = ipam.allocate("default", "a")
    ipam.release("a")
    second = ipam.allocate("default", "a")
    assert second.ip == first.ip
    assert second.mac == first.mac  # MAC is derived from the owner
    assert second.new_subnet is False


# -- extra blocks and exhaustion ----------------------------------------------------


def test_full_namespace_gets_an_extra_subnet() -> None:
    ipam = IPAM("10.244.0.0/24", block_prefix=28)
    for i in range(13):
        ipam.allocate("ns", f"p{i}")
    other = ipam.allocate("other", "o")
    extra = ipam.allocate("ns", "p13")
    assert other.subnet.cidr == "10.244.0.16/28"
    assert extra.subnet == SubnetRecord("ns-1", "ns", "10.244.0.32/28", "10.244.0.33")
    assert extra.ip == "10.244.0.34" and extra.new_subnet


def test_earlier_subnet_is_preferred_once_it_has_room() -> None:
    ipam = IPAM("10.244.0.0/24", block_prefix=28)
    for i in range(15):
        ipam.allocate("ns", f"p{i}")  # 13 in ns-0, 2 in ns-1
    ipam.release("p4")  # 10.244.0.6 in ns-0
    alloc = ipam.allocate("ns", "new")
    assert (alloc.subnet.name, alloc.ip) == ("ns-0", "10.244.0.6")
    assert ipam.allocate("ns", "new2").subnet.name == "ns-1"


def test_exhaustion_raises() -> None:
    ipam = IPAM("10.244.0.0/27", block_prefix=28)
    for i in range(26):
        ipam.allocate(f"ns{i // 13}", f"p{i}")
    with pytest.raises(ExhaustedError):
        ipam.allocate("ns0", "one-too-many")
    with pytest.raises(IPAM.ExhaustedError):
        ipam.allocate("brand-new", "x")
    ipam.release("p0")
    assert ipam.allocate("ns0", "one-too-many").ip == "10.244.0.2"


def test_release_namespace_frees_its_blocks() -> None:
    ipam = IPAM()
    ipam.allocate("a", "a1")
    ipam.allocate("b", "b1")
    with pytest.raises(SubnetInUseError):
        ipam.release_namespace("a")
    ipam.release("a1")
    assert [s.name for s in ipam.release_namespace("a")] == ["a-0"]
    assert ipam.release_namespace("a") == []
    reused = ipam.allocate("c", "c1")
    assert reused.subnet.cidr == "10.244.0.0/24" and reused.new_subnet


def test_release_namespace_force_drops_ports() -> None:
    ipam = IPAM()
    a = ipam.allocate("a", "a1")
    removed = ipam.release_namespace("a", force=True)
    assert removed == [a.subnet]
    assert ipam.get("a1") is None and len(ipam) == 0
    again = ipam.allocate("a", "a1")
    assert again.subnet.name == "a-0" and again.new_subnet


# -- restore ----------------------------------------------------------------------


def test_restore_round_trip() -> None:
    old = IPAM("10.244.0.0/24", block_prefix=28)
    owners = [f"p{i}" for i in range(20)]
    for i, owner in enumerate(owners):
        old.allocate("ns" if i % 3 else "other", owner)
    for owner in ("p4", "p7", "p13"):
        old.release(owner)
    subnets, ports = snapshot(old, owners)

    new = IPAM("10.244.0.0/24", block_prefix=28)
    assert new.restore(subnets, ports) == []
    assert new.subnets() == old.subnets()
    for port in ports:
        restored = new.get(port.owner)
        assert restored is not None
        assert (restored.ip, restored.mac, restored.subnet.name) == (port.ip, port.mac, port.subnet)
        assert restored.new_subnet is False
        assert new.allocate(restored.subnet.namespace, port.owner) is restored
    # Both continue identically: lowest free first, freed holes reused.
    for owner in ("x1", "x2", "x3", "x4"):
        assert new.allocate("ns", owner) == old.allocate("ns", owner)


def test_restore_replaces_previous_state() -> None:
    ipam = IPAM()
    ipam.allocate("default", "a")
    assert ipam.restore([], []) == []
    assert len(ipam) == 0 and ipam.subnets() == []
    assert ipam.allocate("other", "b").subnet.cidr == "10.244.0.0/24"


def test_restore_rejects_bad_ports() -> None:
    subnet = SubnetRecord("default-0", "default", "10.244.0.0/24", "10.244.0.1")
    good = PortRecord("a", "default-0", "10.244.0.2", "fa:16:3e:00:00:01")
    bad = [
        PortRecord("a", "default-0", "10.244.0.9", "fa:16:3e:00:00:02"),  # duplicate owner
        PortRecord("b", "default-0", "10.244.0.2", "fa:16:3e:00:00:03"),  # duplicate IP
        PortRecord("c", "nope-0", "10.244.0.3", "fa:16:3e:00:00:04"),  # unknown subnet
        PortRecord("d", "default-0", "10.244.0.1", "fa:16:3e:00:00:05"),  # gateway
        PortRecord("e", "default-0", "10.244.0.255", "fa:16:3e:00:00:06"),  # broadcast
        PortRecord("f", "default-0", "10.244.1.7", "fa:16:3e:00:00:07"),  # outside subnet
        PortRecord("g", "default-0", "not-an-ip", "fa:16:3e:00:00:08"),
        PortRecord("h", "default-0", "10.244.0.4", "garbage"),
    ]
    ipam = IPAM()
    rejected = ipam.restore([subnet], [good, *bad])
    assert [r.port for r in rejected] == bad
    assert all(r.reason for r in rejected)
    assert len(ipam) == 1
    assert ipam.allocate("default", "new").ip == "10.244.0.3"


@pytest.mark.parametrize(
    "records, match",
    [
        ([SubnetRecord("x-0", "x", "10.1.0.0/24", "10.1.0.1")], "outside the pod range"),
        ([SubnetRecord("x-0", "x", "10.244.0.0/24", "10.244.1.1")], "gateway"),
        ([SubnetRecord("x-0", "x", "10.244.0.0/24", "10.244.0.0")], "gateway"),
        ([SubnetRecord("x-0", "x", "10.244.0.1/24", "10.244.0.1")], "host bits"),
        ([SubnetRecord("x-0", "", "10.244.0.0/24", "10.244.0.1")], "non-empty"),
        (
            [
                SubnetRecord("x-0", "x", "10.244.0.0/23", "10.244.0.1"),
                SubnetRecord("y-0", "y", "10.244.1.0/24", "10.244.1.1"),
            ],
            "overlap",
        ),
        (
            [
                SubnetRecord("x-0", "x", "10.244.0.0/24", "10.244.0.1"),
                SubnetRecord("x-0", "x", "10.244.1.0/24", "10.244.1.1"),
            ],
            "duplicate",
        ),
    ],
)
def test_restore_rejects_bad_subnets(records: list[SubnetRecord], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        IPAM().restore(records, [])


def test_restore_subnets_of_other_sizes_hold_their_blocks() -> None:
    ipam = IPAM()  # /24 blocks
    ipam.restore(
        [
            SubnetRecord("big-0", "big", "10.244.0.0/22", "10.244.0.1"),  # blocks 0-3
            SubnetRecord("small-0", "small", "10.244.4.0/26", "10.244.4.1"),  # part of block 4
            SubnetRecord("small-1", "small", "10.244.4.64/26", "10.244.4.65"),  # same block
        ],
        [],
    )
    assert ipam.allocate("new", "n").subnet.cidr == "10.244.5.0/24"
    assert ipam.allocate("big", "b").ip == "10.244.0.2"
    ipam.release_namespace("small")
    assert ipam.allocate("newer", "m").subnet.cidr == "10.244.4.0/24"


def test_restore_honours_recorded_gateway_and_subnet_order() -> None:
    ipam = IPAM()
    ipam.restore(
        [
            SubnetRecord("ns-1", "ns", "10.244.0.0/24", "10.244.0.1"),
            SubnetRecord("ns-0", "ns", "10.244.1.0/24", "10.244.1.2"),
        ],
        [],
    )
    first = ipam.allocate("ns", "a")
    assert (first.subnet.name, first.ip) == ("ns-0", "10.244.1.1")  # .2 is this subnet's gateway
    assert ipam.allocate("ns", "b").ip == "10.244.1.3"


def test_restore_full_subnet_then_release_makes_room() -> None:
    old = IPAM("10.244.0.0/24", block_prefix=28)
    owners = [f"p{i}" for i in range(13)]
    for owner in owners:
        old.allocate("ns", owner)
    subnets, ports = snapshot(old, owners)
    new = IPAM("10.244.0.0/24", block_prefix=28)
    new.restore(subnets, ports)
    assert new.allocate("ns", "extra").subnet.name == "ns-1"
    new.release("p0")
    assert new.allocate("ns", "again").ip == "10.244.0.2"


def test_new_subnet_names_avoid_restored_names() -> None:
    ipam = IPAM()
    ipam.restore([SubnetRecord("ns-0", "ns", "10.244.7.0/24", "10.244.7.1")], [])
    alloc = ipam.allocate("ns-0", "x")  # a namespace literally called "ns-0"
    assert alloc.subnet.name == "ns-0-0"
    assert alloc.subnet.cidr == "10.244.0.0/24"


# -- MAC addresses ----------------------------------------------------------------


def test_mac_format_is_openstack_style_unicast_local() -> None:
    mac = IPAM().allocate("default", "uid").mac
    assert MAC_RE.match(mac)
    first_octet = int(mac[:2], 16)
    assert first_octet & 0b10 and not first_octet & 0b1  # locally administered, unicast


def test_mac_is_derived_from_owner() -> None:
    a = IPAM().allocate("default", "uid-42").mac
    b = IPAM().allocate("other", "uid-42").mac
    c = IPAM().allocate("default", "uid-43").mac
    assert a == b != c


def test_mac_collision_is_avoided() -> None:
    macs = MacAllocator()
    taken = macs.candidate("owner")
    macs.hold(taken)
    assert macs.allocate("owner") == macs.candidate("owner", 1) != taken


def test_restored_mac_is_not_reused() -> None:
    ipam = IPAM()
    subnet = SubnetRecord("default-0", "default", "10.244.0.0/24", "10.244.0.1")
    stolen = MacAllocator().candidate("newcomer")
    ipam.restore([subnet], [PortRecord("old", "default-0", "10.244.0.2", stolen.upper())])
    assert ipam.get("old").mac == stolen  # type: ignore[union-attr]
    assert ipam.allocate("default", "newcomer").mac != stolen


def test_mac_released_with_owner() -> None:
    macs = MacAllocator()
    mac = macs.allocate("o")
    macs.release(mac)
    assert mac not in macs and len(macs) == 0


# -- scale ------------------------------------------------------------------------------


@pytest.mark.parametrize("block_prefix", [24, 22, 20, 18])
def test_ten_thousand_allocations_are_fast(block_prefix: int) -> None:
    ipam = IPAM(block_prefix=block_prefix)
    start = time.perf_counter()
    allocs = [ipam.allocate("bench", f"pod-{i}") for i in range(10_000)]
    elapsed = time.perf_counter() - start
    assert len({a.ip for a in allocs}) == 10_000
    assert len({a.mac for a in allocs}) == 10_000
    per_subnet = 2 ** (32 - block_prefix) - 3
    assert len(ipam.subnets("bench")) == -(-10_000 // per_subnet)
    assert elapsed < 2.0, f"10,000 allocations took {elapsed:.2f}s"
    start = time.perf_counter()
    for i in range(0, 10_000, 2):
        ipam.release(f"pod-{i}")
    for i in range(5_000):
        ipam.allocate("bench", f"again-{i}")
    assert time.perf_counter() - start < 2.0


# -- property: no two live owners share an address ------------------------------------

# A tiny pod range (4 blocks x 5 pods) so extra subnets and exhaustion come up often.
PROP_CIDR, PROP_PREFIX = "10.244.0.0/27", 29
OPS = st.lists(
    st.tuples(st.sampled_from(["alloc", "alloc", "alloc", "release"]), st.integers(0, 2), st.integers(0, 30)),
    min_size=30,
    max_size=200,
)


@settings(max_examples=150, deadline=None)
@given(ops=OPS)
def test_property_live_owners_never_share_an_address(ops: list[tuple[str, int, int]]) -> None:
    ipam = IPAM(PROP_CIDR, block_prefix=PROP_PREFIX)
    live: dict[str, Allocation] = {}
    for op, ns, owner_n in ops:
        owner = f"o{owner_n}"
        if op == "release":
            ipam.release(owner)
            live.pop(owner, None)
            continue
        if owner in live:
            namespace = live[owner].subnet.namespace
            assert ipam.allocate(namespace, owner) is live[owner]
            continue
        try:
            live[owner] = ipam.allocate(f"ns{ns}", owner)
        except ExhaustedError:
            continue
        check_lowest_free(ipam, live, live[owner])
    check_invariants(ipam, live)
    check_restore_matches(ipam, live)


def check_lowest_free(ipam: IPAM, live: dict[str, Allocation], alloc: Allocation) -> None:
    """The new address is the lowest free host of the first namespace subnet with room."""
    used = {a.ip for o, a in live.items() if a is not alloc}
    for subnet in ipam.subnets(alloc.subnet.namespace):
        net = ipaddress.ip_network(subnet.cidr)
        free = [str(h) for h in net.hosts() if str(h) != subnet.gateway and str(h) not in used]
        if free:
            assert (alloc.subnet, alloc.ip) == (subnet, free[0])
            return
    raise AssertionError("allocation made in no subnet")


def check_invariants(ipam: IPAM, live: dict[str, Allocation]) -> None:
    assert len(ipam) == len(live)
    assert len({a.ip for a in live.values()}) == len(live)
    assert len({a.mac for a in live.values()}) == len(live)
    subnets = ipam.subnets()
    assert len({s.cidr for s in subnets}) == len(subnets)
    for alloc in live.values():
        net = ipaddress.ip_network(alloc.subnet.cidr)
        ip = ipaddress.ip_address(alloc.ip)
        assert ip in net and ip not in (net.network_address, net.broadcast_address)
        assert alloc.ip != alloc.subnet.gateway
        assert alloc.subnet in subnets
        assert MAC_RE.match(alloc.mac)


def check_restore_matches(ipam: IPAM, live: dict[str, Allocation]) -> None:
    restored = IPAM(PROP_CIDR, block_prefix=PROP_PREFIX)
    subnets, ports = snapshot(ipam, list(live))
    assert restored.restore(subnets, ports) == []
    for ns in ("ns0", "ns1", "fresh"):
        try:
            expected = ipam.allocate(ns, f"probe-{ns}")
        except ExhaustedError:
            with pytest.raises(ExhaustedError):
                restored.allocate(ns, f"probe-{ns}")
            continue
        assert restored.allocate(ns, f"probe-{ns}") == expected


# -- port pools: transfer, usage, allocation pools ------------------------------------


def test_transfer_hands_a_reservation_to_a_pod() -> None:
    ipam = IPAM()
    reserved = ipam.allocate("default", "pool/default/1")
    taken = ipam.transfer("pool/default/1", "pod-uid")
    assert taken is not None and (taken.ip, taken.mac, taken.subnet) == (reserved.ip, reserved.mac, reserved.subnet)
    assert ipam.get("pool/default/1") is None and ipam.get("pod-uid") is taken
    assert ipam.transfer("pool/default/1", "other") is None  # nothing left to hand over
    with pytest.raises(ValueError):
        ipam.transfer("pod-uid", "pod-uid")
    assert ipam.allocate("default", "next").ip != taken.ip
    ipam.release("pod-uid")
    assert ipam.allocate("default", "again").ip == taken.ip  # freed by its new owner


def test_usage_counts_held_addresses_and_capacity() -> None:
    ipam = IPAM()
    assert ipam.usage("default-0") is None
    for i in range(3):
        ipam.allocate("default", f"u{i}")
    assert ipam.usage("default-0") == (3, 253)


def test_allocation_pools_leave_out_the_gateway() -> None:
    assert allocation_pools(SubnetRecord("a-0", "a", "10.244.0.0/24", "10.244.0.1")) == [("10.244.0.2", "10.244.0.254")]
    assert allocation_pools(SubnetRecord("a-0", "a", "10.244.0.0/24", "10.244.0.9")) == [
        ("10.244.0.1", "10.244.0.8"), ("10.244.0.10", "10.244.0.254")]


POOL_OPS = st.lists(
    st.tuples(st.sampled_from(["pod", "pod", "reserve", "release", "restart"]), st.integers(0, 2), st.integers(0, 25)),
    min_size=20,
    max_size=150,
)


@settings(max_examples=150, deadline=None)
@given(ops=POOL_OPS)
def test_property_pools_and_restarts_never_give_an_address_twice(ops: list[tuple[str, int, int]]) -> None:
    """Pods take pool reservations or fresh addresses; groups are namespaces and nodes alike;
    a restart keeps only what the Port objects record (the pods), never the pools."""
    ipam = IPAM(PROP_CIDR, block_prefix=PROP_PREFIX)
    groups = ("ns0", "node.n1", "node.n2")
    pools: dict[str, list[str]] = {g: [] for g in groups}
    pods: dict[str, Allocation] = {}
    seq = 0
    for op, g, n in ops:
        group, owner = groups[g], f"pod-{n}"
        if op == "reserve":
            seq += 1
            try:
                ipam.allocate(group, f"pool/{group}/{seq}")
                pools[group].append(f"pool/{group}/{seq}")
            except ExhaustedError:
                pass
        elif op == "release":
            ipam.release(owner)
            pods.pop(owner, None)
        elif op == "restart":
            subnets, ports = snapshot(ipam, list(pods))
            ipam = IPAM(PROP_CIDR, block_prefix=PROP_PREFIX)
            assert ipam.restore(subnets, ports) == []
            pools = {g: [] for g in groups}
        elif owner not in pods:
            alloc = None
            while pools[group] and alloc is None:
                alloc = ipam.transfer(pools[group].pop(0), owner)
            try:
                pods[owner] = alloc or ipam.allocate(group, owner)
            except ExhaustedError:
                continue
        held = [a for a in (ipam.get(o) for o in [*pods, *(o for p in pools.values() for o in p)]) if a is not None]
        assert len({a.ip for a in held}) == len(held) == len(ipam)
        assert len({a.mac for a in held}) == len(held)
    for owner, alloc in pods.items():  # every pod kept its address through the restarts
        now = ipam.get(owner)
        assert now is not None and (now.ip, now.mac, now.subnet) == (alloc.ip, alloc.mac, alloc.subnet)


# -- ClusterIPs ------------------------------------------------------------------------


def test_cluster_ip_skips_kubernetes_address() -> None:
    alloc = ClusterIPAllocator()
    assert alloc.kubernetes_ip == "10.96.0.1"
    assert alloc.allocate("svc-a") == "10.96.0.2"
    assert alloc.allocate("default/kubernetes", "10.96.0.1") == "10.96.0.1"
    assert alloc.allocate("svc-b") == "10.96.0.3"


def test_cluster_ip_idempotent_release_reuse() -> None:
    alloc = ClusterIPAllocator()
    a = alloc.allocate("a")
    assert alloc.allocate("a") == a and alloc.allocate("a", a) == a
    with pytest.raises(ValueError, match="already has"):
        alloc.allocate("a", "10.96.0.50")
    alloc.allocate("b")
    alloc.release("a")
    alloc.release("a")
    assert alloc.get("a") is None
    assert alloc.allocate("c") == a
    assert len(alloc) == 2


def test_cluster_ip_explicit_requests() -> None:
    alloc = ClusterIPAllocator()
    assert alloc.allocate("x", "10.96.0.3") == "10.96.0.3"
    assert alloc.allocate("y") == "10.96.0.2"
    assert alloc.allocate("z") == "10.96.0.4"  # skips the explicitly taken .3
    assert alloc.allocate("high", "10.111.255.254") == "10.111.255.254"
    with pytest.raises(AddressInUseError):
        alloc.allocate("w", "10.96.0.3")
    for bad in ("10.96.0.0", "10.111.255.255", "10.112.0.1", "junk"):
        with pytest.raises(ValueError):
            alloc.allocate("w", bad)
    alloc.release("high")
    assert alloc.allocate("again", "10.111.255.254") == "10.111.255.254"


def test_cluster_ip_exhaustion() -> None:
    alloc = ClusterIPAllocator("10.96.0.0/29")  # hosts .1-.6, .1 reserved
    assert [alloc.allocate(f"s{i}") for i in range(5)] == [f"10.96.0.{i}" for i in range(2, 7)]
    with pytest.raises(ExhaustedError):
        alloc.allocate("s5")
    assert alloc.allocate("default/kubernetes", "10.96.0.1") == "10.96.0.1"
    alloc.release("default/kubernetes")
    with pytest.raises(ClusterIPAllocator.ExhaustedError):
        alloc.allocate("s6")


def test_cluster_ip_restore() -> None:
    alloc = ClusterIPAllocator()
    alloc.allocate("stale")
    pairs = [("default/kubernetes", "10.96.0.1"), ("a", "10.96.0.2"), ("b", "10.96.0.4")]
    rejected = alloc.restore([*pairs, ("c", "10.96.0.4"), ("a", "10.96.0.9")])
    assert [(owner, ip) for owner, ip, _ in rejected] == [("c", "10.96.0.4"), ("a", "10.96.0.9")]
    assert alloc.get("stale") is None
    assert alloc.allocate("d") == "10.96.0.3"
    assert alloc.allocate("e") == "10.96.0.5"
