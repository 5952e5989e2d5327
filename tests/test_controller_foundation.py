"""What the controllers around pods stand on: options, pod ranking and claiming, expectations,
template hashes, shared informers with indexes, and leader election on a Lease."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from datetime import datetime, timedelta, timezone

import pytest

from podlife.client.base import LEASES, PODS
from podlife.client.leaderelection import LeaderElector
from podlife.client.shared_informers import BY_CONTROLLER, BY_NODE, SharedInformers
from podlife.controllers.history import controller_revision, revisions_to_prune, template_hash
from podlife.controllers.options import ControllerManagerOptions, add_flags, from_args
from podlife.controllers.pod_control import (Expectations, claim_decisions, controller_ref, is_available,
                                             pod_from_template, rank_for_deletion, slow_start_batch)
from podlife.machinery.selectors import label_selector_from_dict

from .cluster_harness import async_wait_for
from .in_process import InProcessApi

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(name: str, *, node: str = "", phase: str = "Running", ready_for: float | None = None, restarts: int = 0,
        age: float = 100.0, labels: dict | None = None, owner_uid: str | None = None) -> dict:
    conditions = []
    if ready_for is not None:
        conditions.append({"type": "Ready", "status": "True", "lastTransitionTime": stamp(NOW - timedelta(seconds=ready_for))})
    meta: dict = {"name": name, "namespace": "default", "uid": f"uid-{name}", "labels": labels or {"app": "a"},
                  "creationTimestamp": stamp(NOW - timedelta(seconds=age))}
    if owner_uid:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": owner_uid,
                                    "controller": True}]
    return {"metadata": meta, "spec": {"nodeName": node} if node else {},
            "status": {"phase": phase, "conditions": conditions,
                       "containerStatuses": [{"name": "c", "restartCount": restarts}]}}


# --------------------------------------------------------------------------- options


def test_controllers_flag_follows_kube_controller_manager() -> None:
    assert ControllerManagerOptions().enabled("job")
    assert not ControllerManagerOptions(controllers=("*", "-job")).enabled("job")
    assert ControllerManagerOptions(controllers=("job",)).enabled("job")
    assert not ControllerManagerOptions(controllers=("job",)).enabled("deployment")


def test_flags_parse_go_durations_and_keep_kubernetes_defaults() -> None:
    parser = argparse.ArgumentParser()
    add_flags(parser)
    defaults = from_args(parser.parse_args([]))
    assert defaults.node_monitor_grace_period == 50.0 and defaults.terminated_pod_gc_threshold == 12500
    parsed = from_args(parser.parse_args(["--node-monitor-grace-period=5s", "--controllers=*,-podgc",
                                          "--no-leader-elect", "--terminated-pod-gc-threshold", "5"]))
    assert parsed.node_monitor_grace_period == 5.0 and not parsed.leader_elect
    assert parsed.terminated_pod_gc_threshold == 5 and not parsed.enabled("podgc")
    with pytest.raises(SystemExit):
        parser.parse_args(["--node-monitor-grace-period=soon"])


# --------------------------------------------------------------------------- pod control


def test_deletion_order_prefers_unscheduled_pending_unready_then_newest() -> None:
    pods = [pod("ready-old", node="n1", ready_for=500, age=1000), pod("unscheduled", phase="Pending"),
            pod("pending", node="n1", phase="Pending"), pod("unready", node="n2"),
            pod("ready-young", node="n1", ready_for=5, age=1000), pod("ready-crashy", node="n1", ready_for=500, restarts=4)]
    order = [p["metadata"]["name"] for p in rank_for_deletion(pods, NOW)]
    assert order[:3] == ["unscheduled", "pending", "unready"]
    assert order.index("ready-young") < order.index("ready-old")
    assert order.index("ready-crashy") < order.index("ready-old")


def test_deletion_order_takes_doubled_up_pods_first() -> None:
    alone, crowded, neighbour = pod("alone", node="n1", ready_for=10), pod("crowded", node="n2", ready_for=10), \
        pod("neighbour", node="n2", ready_for=10, age=50)
    order = [p["metadata"]["name"] for p in rank_for_deletion([alone, crowded, neighbour], NOW)]
    assert order.index("alone") == 2


def test_deletion_order_honours_pod_deletion_cost() -> None:
    cheap, dear = pod("cheap", node="n1", ready_for=10), pod("dear", node="n2", ready_for=10)
    dear["metadata"]["annotations"] = {"controller.kubernetes.io/pod-deletion-cost": "100"}
    cheap["metadata"]["annotations"] = {"controller.kubernetes.io/pod-deletion-cost": "-5"}
    assert [p["metadata"]["name"] for p in rank_for_deletion([dear, cheap], NOW)] == ["cheap", "dear"]


def test_availability_waits_for_min_ready_seconds() -> None:
    fresh = pod("p", node="n", ready_for=3)
    assert is_available(fresh, 0, NOW) and not is_available(fresh, 10, NOW) and is_available(fresh, 2, NOW)
    assert not is_available(pod("q", node="n"), 0, NOW)


def test_claim_adopts_orphans_releases_mismatches_and_leaves_others_alone() -> None:
    owner = {"metadata": {"name": "rs", "namespace": "default", "uid": "me"}}
    selector = label_selector_from_dict({"matchLabels": {"app": "a"}})
    mine = pod("mine", owner_uid="me")
    moved = pod("moved", owner_uid="me", labels={"app": "other"})
    orphan = pod("orphan")
    theirs = pod("theirs", owner_uid="someone-else")
    stranger = pod("stranger", labels={"app": "b"})
    decisions = claim_decisions(owner, selector, [mine, moved, orphan, theirs, stranger])
    assert [p["metadata"]["name"] for p in decisions.owned] == ["mine"]
    assert [p["metadata"]["name"] for p in decisions.adopt] == ["orphan"]
    assert [p["metadata"]["name"] for p in decisions.release] == ["moved"]
    owner["metadata"]["deletionTimestamp"] = stamp(NOW)
    deleting = claim_decisions(owner, selector, [mine, moved, orphan])
    assert not deleting.adopt and not deleting.release and len(deleting.owned) == 2


def test_pod_from_template_carries_the_template_and_the_controller_reference() -> None:
    owner = {"metadata": {"name": "web", "namespace": "ns", "uid": "u1"}}
    template: dict = {"metadata": {"labels": {"app": "web"}, "annotations": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    made = pod_from_template(template, owner, controller_ref(owner, "apps/v1", "ReplicaSet"))
    assert made["metadata"]["generateName"] == "web-" and made["metadata"]["namespace"] == "ns"
    assert made["metadata"]["labels"] == {"app": "web"} and made["metadata"]["annotations"] == {"a": "b"}
    ref = made["metadata"]["ownerReferences"][0]
    assert ref["uid"] == "u1" and ref["controller"] and ref["blockOwnerDeletion"]
    made["spec"]["containers"][0]["image"] = "changed"
    assert template["spec"]["containers"][0]["image"] == "busybox"  # a copy, not the template itself


def test_expectations_hold_until_every_request_is_seen() -> None:
    expectations = Expectations()
    expectations.expect_creations("ns/rs", 2)
    assert not expectations.satisfied("ns/rs")
    expectations.creation_observed("ns/rs")
    assert not expectations.satisfied("ns/rs")
    expectations.creation_failed("ns/rs")
    assert expectations.satisfied("ns/rs")
    expectations.expect_deletions("ns/rs", ["ns/p1"])
    assert not expectations.satisfied("ns/rs")
    expectations.deletion_observed("ns/rs", "ns/p1")
    assert expectations.satisfied("ns/rs")
    stale = Expectations(timeout=0.0)
    stale.expect_creations("k", 5)
    assert stale.satisfied("k")  # expired: the controller counts again


async def test_slow_start_batches_grow_and_stop_at_the_first_failure() -> None:
    calls = 0

    async def create() -> None:
        nonlocal calls
        calls += 1
        if calls > 3:
            raise RuntimeError("quota")

    done, error = await slow_start_batch(10, create)
    # batches of 1 and 2 succeed; the batch of 4 fails (all four are tried), nothing after
    assert (done, calls) == (3, 7) and isinstance(error, RuntimeError)
    calls = -100
    assert await slow_start_batch(5, create) == (5, None)


# --------------------------------------------------------------------------- history


def test_template_hash_is_stable_safe_and_counts_collisions() -> None:
    template = {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    first = template_hash(template)
    assert first == template_hash({"spec": {"containers": [{"image": "busybox", "name": "c"}]}})
    assert first != template_hash(template, 1) and first != template_hash({"spec": {}})
    assert set(first) <= set("bcdfghjklmnpqrstvwxz2456789")


def test_revisions_beyond_the_limit_go_oldest_first_and_never_the_live_ones() -> None:
    owner = {"metadata": {"name": "ds", "namespace": "default", "uid": "u"}}
    ref = controller_ref(owner, "apps/v1", "DaemonSet")
    revisions = [controller_revision(owner, ref, {"n": i}, i, None) for i in range(1, 6)]
    live = {revisions[0]["metadata"]["name"]}
    pruned = revisions_to_prune(revisions, 2, live)
    assert [r["revision"] for r in pruned] == [2, 3]


# --------------------------------------------------------------------------- shared informers


async def test_shared_informers_hand_out_one_informer_and_keep_indexes(local_api: InProcessApi) -> None:
    informers = SharedInformers(local_api.client)
    assert informers.informer(PODS) is informers.informer(PODS)
    by_owner = informers.index(PODS, BY_CONTROLLER)
    by_node = informers.index(PODS, BY_NODE)
    runner = asyncio.create_task(informers.run())
    try:
        await informers.wait_synced(PODS)
        owned = pod("owned", owner_uid="rs-1")
        for p in (owned, pod("loose")):
            body = {"apiVersion": "v1", "kind": "Pod", "metadata": {k: v for k, v in p["metadata"].items()
                                                                    if k in ("name", "labels", "ownerReferences")},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
            await local_api.client.create(PODS, body, "default")
        await async_wait_for(lambda: [p["metadata"]["name"] for p in by_owner.get("rs-1")] == ["owned"],
                             what="the owned pod under its owner's uid")
        await local_api.client.patch(PODS, "owned", {"metadata": {"ownerReferences": None}}, "default")
        await async_wait_for(lambda: not by_owner.get("rs-1"), what="the released pod out of the index")
        assert by_node.get("n1") == []
        # an index asked for after the informers run is filled from the cache at once
        late = informers.index(PODS, "app", lambda o: [(o["metadata"].get("labels") or {}).get("app", "")])
        assert sorted(p["metadata"]["name"] for p in late.get("a")) == ["loose", "owned"]
        await local_api.client.delete(PODS, "loose", "default", grace_period_seconds=0)
        await async_wait_for(lambda: [p["metadata"]["name"] for p in late.get("a")] == ["owned"],
                             what="the deleted pod out of the late index")
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


# --------------------------------------------------------------------------- leader election


def elector(api: InProcessApi, identity: str) -> LeaderElector:
    return LeaderElector(api.client, "kcm", "kube-system", identity, lease_duration=2.0, renew_deadline=1.0,
                         retry_period=0.1)


async def test_one_leader_at_a_time_and_a_clean_stop_hands_over_at_once(local_api: InProcessApi) -> None:
    running: list[str] = []

    def work(name: str):
        async def lead() -> None:
            running.append(name)
            try:
                await asyncio.get_running_loop().create_future()
            finally:
                running.remove(name)
        return lead

    first, second = elector(local_api, "first"), elector(local_api, "second")
    task_first = asyncio.create_task(first.run(work("first")))
    await async_wait_for(lambda: running == ["first"], what="the first candidate leading")
    task_second = asyncio.create_task(second.run(work("second")))
    await async_wait_for(lambda: second._observed is not None, what="the second candidate seeing the holder")
    assert running == ["first"]
    lease = await local_api.client.get(LEASES, "kcm", "kube-system")
    assert lease["spec"]["holderIdentity"] == "first" and lease["spec"]["leaseTransitions"] == 0
    task_first.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task_first
    # released on stop: the second takes over well before the 2 s lease would run out
    await async_wait_for(lambda: running == ["second"], timeout=1.5, what="the second candidate taking over")
    lease = await local_api.client.get(LEASES, "kcm", "kube-system")
    assert lease["spec"]["holderIdentity"] == "second" and lease["spec"]["leaseTransitions"] == 1
    task_second.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task_second


async def test_a_leader_that_cannot_renew_stops_its_work(local_api: InProcessApi) -> None:
    stopped = asyncio.Event()

    async def lead() -> None:
        try:
            await asyncio.get_running_loop().create_future()
        finally:
            stopped.set()

    leader = elector(local_api, "leader")
    task = asyncio.create_task(leader.run(lead))
    await async_wait_for(lambda: leader.is_leader, what="leadership")
    lease = await local_api.client.get(LEASES, "kcm", "kube-system")
    lease["spec"].update(holderIdentity="usurper", leaseDurationSeconds=60)
    await local_api.client.update(LEASES, lease)  # someone else holds it now: renewals fail
    await asyncio.wait_for(stopped.wait(), 10)
    await asyncio.wait_for(task, 10)  # run() returns once leadership is lost
    assert not leader.is_leader


async def test_a_restarted_candidate_takes_its_own_lease_back_at_once(local_api: InProcessApi) -> None:
    """A server restarted after a crash keeps its identity: its unexpired Lease is still its own."""
    await local_api.client.create(LEASES, {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                           "metadata": {"name": "kcm", "namespace": "kube-system"},
                                           "spec": {"holderIdentity": "host_data", "leaseDurationSeconds": 3600}},
                                  "kube-system")
    stranger, restarted = elector(local_api, "host_other"), elector(local_api, "host_data")
    assert not await stranger._try_acquire_or_renew()  # held, and not by it: it must wait the hour out
    started = asyncio.Event()

    async def lead() -> None:
        started.set()
        await asyncio.get_running_loop().create_future()

    task = asyncio.create_task(restarted.run(lead))
    try:
        await asyncio.wait_for(started.wait(), 5)
        lease = await local_api.client.get(LEASES, "kcm", "kube-system")
        assert lease["spec"]["holderIdentity"] == "host_data" and lease["spec"].get("leaseTransitions", 0) == 0
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
