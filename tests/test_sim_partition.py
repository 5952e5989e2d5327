"""A simulated node whose heartbeats stop is cut off from the API: its pods get no writes until it is back.

In-process API and a :class:`Simulator` with short intervals (the ``simulator`` harness of
``tests/test_sim.py``). While ``sim-node-0`` is stopped, the test does what the control
plane would do to its pods -- turns a pod's Ready condition False with the node lifecycle
controller's own patch (:func:`not_ready_patch`), deletes a pod, binds a new one -- and
waits until the simulator has synced each of them and parked it (``Simulator.parked``),
so "no write" is checked after the sync that would have written, never after a sleep.
A pod on the healthy node is deleted alongside and does go, so the simulator is shown
working. Then the node is back: the deleted pod goes, the new one runs, and the Ready
condition is True again with the transition time the node always had (the kubelet's
status manager reconciles with its cache); the node keeps reconciling for a while, so a
pod marked not Ready again right after (the node controller's race) is put back too.

Unit test: :func:`reconcile_patch`.
"""

from __future__ import annotations

import pytest

from podlife.api.local_client import LocalClient
from podlife.client.base import NODES, PODS, Client, Obj
from podlife.controllers.node_lifecycle import not_ready_patch
from podlife.machinery.constants import CHAOS_ANNOTATION
from podlife.sim.simulator import reconcile_patch
from podlife.sim.stages import parse_stages

from .cluster_harness import async_wait_for
from .in_process import InProcessApi
from .test_sim import NS, condition, get_pod, pod_where, run_pod, running, simulator
from .test_sim_stages import one_stage

NODE, HEALTHY = "sim-node-0", "sim-node-1"


@pytest.fixture
def client(local_api: InProcessApi) -> LocalClient:
    return local_api.client


def ready(pod: Obj) -> str | None:
    return next((c["status"] for c in pod["status"].get("conditions") or () if c["type"] == "Ready"), None)


async def set_chaos(client: Client, node: str, value: str) -> None:
    await client.patch(NODES, node, {"metadata": {"annotations": {CHAOS_ANNOTATION: value}}})


async def mark_not_ready(client: Client, name: str) -> None:
    """What the node lifecycle controller does to the pods of a node that is not Ready."""
    patch = not_ready_patch(await client.get(PODS, name, NS), "2030-01-01T00:00:00Z")
    assert patch is not None
    await client.patch(PODS, name, patch, NS, patch_type="strategic", subresource="status")


async def test_a_cut_off_nodes_pods_wait_for_it_then_resync(client: LocalClient) -> None:
    async with simulator(client, 2) as sim:
        for name, node in (("steady", NODE), ("doomed", NODE), ("bystander", HEALTHY)):
            await run_pod(client, name, node)
        for name in ("steady", "doomed", "bystander"):
            await pod_where(client, name, lambda p: running(p) and ready(p) == "True", what="Running and Ready")
        since = condition(await client.get(PODS, "steady", NS), "Ready")["lastTransitionTime"]

        await set_chaos(client, NODE, "heartbeat-stop")
        await async_wait_for(lambda: NODE in sim.cut_off, what="the node cut off")
        await mark_not_ready(client, "steady")
        await client.delete(PODS, "doomed", NS)
        await run_pod(client, "late", NODE)
        await client.delete(PODS, "bystander", NS)
        await async_wait_for(lambda: sim.parked.get(NODE, set()) >= {f"{NS}/steady", f"{NS}/doomed", f"{NS}/late"},
                             what="the syncs of the node's pods parked")
        assert await wait_gone(client, "bystander", what="the healthy node's pod deleted")

        steady, doomed, late = [await client.get(PODS, n, NS) for n in ("steady", "doomed", "late")]
        assert ready(steady) == "False"  # nobody put it back
        assert doomed["metadata"].get("deletionTimestamp") and running(doomed)  # Terminating, unconfirmed
        assert late["status"].get("phase") == "Pending" and not late["status"].get("containerStatuses")
        assert NODE in sim.cut_off and HEALTHY not in sim.cut_off

        await set_chaos(client, NODE, "heartbeat-start")
        assert await wait_gone(client, "doomed", what="the deletion carried out")
        steady = await pod_where(client, "steady", lambda p: ready(p) == "True", what="Ready again")
        assert condition(steady, "Ready")["lastTransitionTime"] == since  # the node's Ready never changed
        await pod_where(client, "late", lambda p: running(p) and ready(p) == "True", what="started")
        assert NODE not in sim.cut_off and NODE not in sim.parked

        await mark_not_ready(client, "steady")  # the node controller had not seen the node Ready yet
        await pod_where(client, "steady", lambda p: ready(p) == "True", what="reconciled again")


async def test_a_node_a_stage_stopped_starts_no_pod_until_it_is_back(client: LocalClient) -> None:
    stages = parse_stages(one_stage(f"""
resourceRef: {{kind: Node}}
selector: {{matchExpressions: [{{key: .metadata.name, operator: In, values: [{NODE}]}}]}}
next: {{action: heartbeat-stop}}
"""))
    async with simulator(client, 2, stages=stages) as sim:
        await async_wait_for(lambda: NODE in sim.cut_off, what="the stage stopped the node")
        await run_pod(client, "waits", NODE)
        await run_pod(client, "runs", HEALTHY)
        await pod_where(client, "runs", running, what="the healthy node's pod Running")
        await async_wait_for(lambda: f"{NS}/waits" in sim.parked.get(NODE, set()), what="the pod's sync parked")
        assert not (await client.get(PODS, "waits", NS))["status"].get("containerStatuses")

        await set_chaos(client, NODE, "heartbeat-start")
        await pod_where(client, "waits", lambda p: running(p) and ready(p) == "True", what="started once back")


async def wait_gone(client: Client, name: str, what: str) -> bool:
    """Wait until the pod is gone from the API."""
    async def probe() -> bool:
        return await get_pod(client, name) is None

    done: bool = await async_wait_for(probe, what=what)
    return done


def test_reconcile_patch_puts_back_what_others_changed_and_leaves_the_rest() -> None:
    ours = [{"type": "Ready", "status": "True", "lastTransitionTime": "t0"}]
    theirs = [{"type": "Ready", "status": "False", "lastTransitionTime": "t1"}]
    wanted = {"phase": "Running", "conditions": ours, "podIP": "10.0.0.1"}
    api = {"phase": "Running", "conditions": theirs, "podIP": "10.0.0.1", "qosClass": "BestEffort"}
    assert reconcile_patch(api, wanted, None) == {"conditions": ours}
    assert reconcile_patch({**api, "conditions": ours}, wanted, None) is None
    # what changed since the last write is written as it is, removals included
    assert reconcile_patch(api, wanted, {"podIP": "10.0.0.1", "message": None}) == {
        "podIP": "10.0.0.1", "message": None, "conditions": ours}
