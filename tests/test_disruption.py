"""PodDisruptionBudgets: the disruption controller's pure status rules, and the eviction subresource.

The eviction API runs on an in-process API (no controller manager): each test writes the
budget's status itself, as the disruption controller would, then evicts and checks the
answer (Kubernetes' codes, messages and causes), the budget's status and the pod.
The controller itself runs end to end in ``test_e2e_drain.py``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from podlife.api.eviction import can_ignore_budget, charged, unhealthy_may_go, with_disruption_target
from podlife.client.base import NAMESPACES, POD_DISRUPTION_BUDGETS, PODS
from podlife.controllers.disruption import (
    Scale, SyncError, compute_status, count_healthy, disrupted_pod_map, expected_pod_count, fail_safe_status, selects,
    stale_disruption_in,
)
from podlife.machinery.errors import ApiError
from podlife.machinery.timeutil import format_rfc3339
from podlife.machinery.disruption import budgets_for, conditions_up_to_date, with_disruption_allowed_condition

from .in_process import InProcessApi

Obj = dict[str, Any]
NS = "shop"
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
STAMP = format_rfc3339(NOW)


def pod(name: str, *, labels: dict[str, str] | None = None, ready: bool = True, phase: str = "Running",
        owner: Obj | None = None, deleting: bool = False) -> Obj:
    meta: Obj = {"name": name, "namespace": NS, "labels": {"app": "web"} if labels is None else labels}
    if owner is not None:
        meta["ownerReferences"] = [owner]
    if deleting:
        meta["deletionTimestamp"] = STAMP
    return {"metadata": meta, "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def pdb(name: str = "web", *, selector: Obj | None = None, generation: int = 1, status: Obj | None = None, **spec: Any) -> Obj:
    return {"metadata": {"name": name, "namespace": NS, "generation": generation},
            "spec": {"selector": {"matchLabels": {"app": "web"}} if selector is None else selector, **spec},
            "status": status or {}}


def rs_ref(name: str = "rs", uid: str = "u-rs") -> Obj:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name, "uid": uid, "controller": True}


# ---- the controller's rules -----------------------------------------------------------

def test_selector_rules_differ_between_controller_and_eviction() -> None:
    everything = pdb(selector={})
    assert selects(everything, pod("a")) and not budgets_for([everything], pod("a"))  # {} guards nothing at eviction
    assert not selects(pdb(selector={"matchLabels": {"app": "db"}}), pod("a"))
    assert budgets_for([pdb("b"), pdb("a")], pod("x")) == [pdb("a"), pdb("b")]
    assert budgets_for([pdb()], pod("x", labels={})) == []


def test_integer_min_available_counts_pods() -> None:
    pods = [pod("a"), pod("b"), pod("c", ready=False)]
    assert expected_pod_count(pdb(minAvailable=2), pods, lambda ref, ns: None) == (3, 2, [])


def test_percentages_and_max_unavailable_use_the_controllers_scale() -> None:
    pods = [pod(n, owner=rs_ref()) for n in "abc"]
    finder = lambda ref, ns: Scale(ref["uid"], 5)  # noqa: E731
    assert expected_pod_count(pdb(minAvailable="50%"), pods, finder) == (5, 3, [])  # rounded up
    assert expected_pod_count(pdb(maxUnavailable="25%"), pods, finder) == (5, 3, [])  # 5 - ceil(1.25)
    assert expected_pod_count(pdb(maxUnavailable=9), pods, finder) == (5, 0, [])
    # a pod without a controller is left out; one whose controller is gone fails the sync
    assert expected_pod_count(pdb(maxUnavailable=1), [*pods, pod("bare")], finder) == (5, 4, ["bare"])
    with pytest.raises(SyncError, match='found no controllers for pod "a"'):
        expected_pod_count(pdb(maxUnavailable=1), pods, lambda ref, ns: None)


def test_disrupted_pods_are_not_healthy_until_they_expire() -> None:
    recent, old = format_rfc3339(NOW - timedelta(seconds=30)), format_rfc3339(NOW - timedelta(seconds=130))
    budget = pdb(status={"disruptedPods": {"a": recent, "b": old, "gone": recent, "c": recent}})
    pods = [pod("a"), pod("b"), pod("c", deleting=True), pod("d")]
    kept, recheck, expired = disrupted_pod_map(budget, pods, NOW)
    assert kept == {"a": recent}  # b expired, c is being deleted, gone is gone
    assert recheck == NOW + timedelta(seconds=90)
    assert [p["metadata"]["name"] for p in expired] == ["b"]
    assert count_healthy(pods, kept, NOW) == 2  # b and d; a is about to go, c is going


def test_status_and_condition() -> None:
    status = compute_status(pdb(minAvailable=2, generation=3), 3, 2, 3, {}, STAMP)
    assert status is not None
    assert status["disruptionsAllowed"] == 1 and status["observedGeneration"] == 3 and "disruptedPods" not in status
    assert status["conditions"] == [{"type": "DisruptionAllowed", "status": "True", "observedGeneration": 3,
                                     "lastTransitionTime": STAMP, "reason": "SufficientPods", "message": ""}]
    written = pdb(minAvailable=2, generation=3, status=status)
    assert conditions_up_to_date(written)
    assert compute_status(written, 3, 2, 3, {}, "later") is None  # nothing changed: no write
    short = compute_status(written, 2, 2, 3, {}, "later")
    assert short is not None and short["disruptionsAllowed"] == 0
    assert short["conditions"][0]["reason"] == "InsufficientPods" and short["conditions"][0]["lastTransitionTime"] == "later"
    # no pod expected: nothing may go, whatever the counts
    assert compute_status(pdb(maxUnavailable=1), 0, 0, 0, {}, STAMP)["disruptionsAllowed"] == 0  # type: ignore[index]


def test_fail_safe_status() -> None:
    status = fail_safe_status(pdb(status={"disruptionsAllowed": 2, "observedGeneration": 1}), "found no controllers", STAMP)
    assert status["disruptionsAllowed"] == 0
    cond = status["conditions"][0]
    assert (cond["status"], cond["reason"], cond["message"]) == ("False", "SyncFailed", "found no controllers")


def test_stale_disruption_target() -> None:
    marked = pod("a")
    marked["status"]["conditions"].append({"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
                                           "lastTransitionTime": format_rfc3339(NOW - timedelta(seconds=100))})
    assert stale_disruption_in(marked, NOW) == 20
    assert stale_disruption_in(marked, NOW + timedelta(minutes=5)) == 0
    marked["metadata"]["deletionTimestamp"] = STAMP
    assert stale_disruption_in(marked, NOW) is None  # terminating: the eviction worked


# ---- the eviction rules ---------------------------------------------------------------

def test_which_pods_skip_the_budget() -> None:
    assert can_ignore_budget(pod("a", phase="Succeeded")) and can_ignore_budget(pod("a", phase="Pending"))
    assert can_ignore_budget(pod("a", deleting=True)) and not can_ignore_budget(pod("a"))


def test_unhealthy_pod_eviction_policy() -> None:
    healthy_budget = pdb(status={"currentHealthy": 2, "desiredHealthy": 2})
    short_budget = pdb(status={"currentHealthy": 1, "desiredHealthy": 2})
    sick = pod("a", ready=False)
    assert unhealthy_may_go(healthy_budget, sick) and not unhealthy_may_go(short_budget, sick)
    assert unhealthy_may_go(pdb(status=short_budget["status"], unhealthyPodEvictionPolicy="AlwaysAllow"), sick)
    assert not unhealthy_may_go(healthy_budget, pod("b"))  # a Ready pod always charges the budget


def test_charge_and_refusals() -> None:
    budget = pdb(status={"disruptionsAllowed": 1, "currentHealthy": 3, "desiredHealthy": 2, "observedGeneration": 1,
                         "conditions": [{"type": "DisruptionAllowed", "status": "True", "reason": "SufficientPods"}]})
    after = charged(budget, "a", STAMP)["status"]
    assert after["disruptionsAllowed"] == 0 and after["disruptedPods"] == {"a": STAMP}
    assert after["conditions"][0]["reason"] == "InsufficientPods"
    assert "disruptedPods" not in charged(budget, "a", STAMP, dry_run=True)["status"]
    with pytest.raises(ApiError) as refused:
        charged({**budget, "status": after}, "b", STAMP)
    assert refused.value.code == 429 and refused.value.details == {
        "causes": [{"reason": "DisruptionBudget", "message": "The disruption budget web needs 2 healthy pods and has 3 currently"}]}
    with pytest.raises(ApiError) as behind:
        charged({**budget, "metadata": {**budget["metadata"], "generation": 2}}, "a", STAMP)
    assert behind.value.code == 429 and behind.value.retry_after == 10
    assert behind.value.details["causes"][0]["message"] == "The disruption budget web is still being processed by the server."  # type: ignore[index]


def test_disruption_target_condition() -> None:
    marked = with_disruption_target(pod("a"), STAMP)["status"]["conditions"][-1]
    assert marked == {"type": "DisruptionTarget", "status": "True", "lastProbeTime": None, "lastTransitionTime": STAMP,
                      "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting"}


def test_condition_time_moves_only_on_a_flip() -> None:
    first = with_disruption_allowed_condition({"disruptionsAllowed": 1, "observedGeneration": 2}, "t1")
    again = with_disruption_allowed_condition({**first, "disruptionsAllowed": 3}, "t2")
    assert again["conditions"][0]["lastTransitionTime"] == "t1"
    assert with_disruption_allowed_condition({**again, "disruptionsAllowed": 0}, "t3")["conditions"][0]["lastTransitionTime"] == "t3"


# ---- the eviction subresource on an API ---------------------------------------------

@pytest.fixture
async def api(local_api: InProcessApi) -> InProcessApi:
    await local_api.client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    return local_api


async def running_pod(api: InProcessApi, name: str, *, ready: bool = True, finalizer: bool = False,
                      labels: dict[str, str] | None = None) -> Obj:
    meta: Obj = {"name": name, "labels": {"app": "web"} if labels is None else labels}
    if finalizer:
        meta["finalizers"] = ["example.com/hold"]
    created = await api.client.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                                             "spec": {"containers": [{"name": "c", "image": "busybox"}]}}, NS)
    created["status"] = {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True" if ready else "False", "lastProbeTime": None, "lastTransitionTime": STAMP}]}
    return await api.client.update(PODS, created, subresource="status")


async def budget(api: InProcessApi, name: str = "web", *, status: Obj | None = None, **spec: Any) -> Obj:
    created = await api.client.create(POD_DISRUPTION_BUDGETS, {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, **(spec or {"minAvailable": 1})}}, NS)
    if status is not None:
        created["status"] = {**created["status"], "observedGeneration": created["metadata"]["generation"], **status}
        created = await api.client.update(POD_DISRUPTION_BUDGETS, created, subresource="status")
    return created


async def evict(api: InProcessApi, name: str, **delete_options: Any) -> Obj:
    body: Obj = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": NS}}
    if delete_options:
        body["deleteOptions"] = delete_options
    return await api.client.create_subresource(PODS, name, "eviction", body, NS)


async def gone(api: InProcessApi, name: str) -> bool:
    try:
        await api.client.get(PODS, name, NS)
    except ApiError as exc:
        return exc.code == 404
    return False


async def test_eviction_without_budget_deletes(api: InProcessApi) -> None:
    await running_pod(api, "a")
    answer = await evict(api, "a", gracePeriodSeconds=0)
    assert answer == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
    assert await gone(api, "a")


async def test_eviction_charges_the_budget_and_marks_the_pod(api: InProcessApi) -> None:
    await running_pod(api, "a", finalizer=True)
    await running_pod(api, "b")
    await budget(api, status={"disruptionsAllowed": 1, "currentHealthy": 2, "desiredHealthy": 1, "expectedPods": 2})
    await evict(api, "a")
    status = (await api.client.get(POD_DISRUPTION_BUDGETS, "web", NS))["status"]
    assert status["disruptionsAllowed"] == 0 and set(status["disruptedPods"]) == {"a"}
    held = await api.client.get(PODS, "a", NS)  # the finalizer keeps it: deleted, and marked
    assert held["metadata"].get("deletionTimestamp")
    target = [c for c in held["status"]["conditions"] if c["type"] == "DisruptionTarget"]
    assert [(c["status"], c["reason"], c["message"]) for c in target] == [("True", "EvictionByEvictionAPI", "Eviction API: evicting")]
    # the budget is spent: the next eviction is refused with Kubernetes' 429
    with pytest.raises(ApiError) as refused:
        await evict(api, "b")
    assert refused.value.code == 429 and refused.value.reason == "TooManyRequests"
    assert refused.value.message == "Cannot evict pod as it would violate the pod's disruption budget."
    assert refused.value.details == {"causes": [{"reason": "DisruptionBudget",
                                                 "message": "The disruption budget web needs 1 healthy pods and has 2 currently"}]}
    assert not await gone(api, "b")
    # a pod being deleted goes without a look at the budget
    await evict(api, "a")


async def test_dry_run_changes_nothing(api: InProcessApi) -> None:
    await running_pod(api, "a")
    await budget(api, status={"disruptionsAllowed": 1, "currentHealthy": 1, "desiredHealthy": 0, "expectedPods": 1})
    await evict(api, "a", dryRun=["All"])
    assert not await gone(api, "a")
    status = (await api.client.get(POD_DISRUPTION_BUDGETS, "web", NS))["status"]
    assert status["disruptionsAllowed"] == 1 and not status.get("disruptedPods")


async def test_budget_not_yet_observed_is_429(api: InProcessApi) -> None:
    await running_pod(api, "a")
    await budget(api)  # status.observedGeneration 0 < generation 1: the controller has not seen it
    with pytest.raises(ApiError) as refused:
        await evict(api, "a")
    assert refused.value.code == 429
    assert refused.value.details["causes"][0]["message"] == "The disruption budget web is still being processed by the server."  # type: ignore[index]


async def test_two_budgets_are_a_500(api: InProcessApi) -> None:
    await running_pod(api, "a")
    await budget(api, "one", status={"disruptionsAllowed": 1})
    await budget(api, "two", status={"disruptionsAllowed": 1})
    with pytest.raises(ApiError) as refused:
        await evict(api, "a")
    assert refused.value.code == 500
    assert refused.value.message == "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."


async def test_unhealthy_pods(api: InProcessApi) -> None:
    await running_pod(api, "sick", ready=False)
    await running_pod(api, "sick2", ready=False)
    await budget(api, status={"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 1, "expectedPods": 2})
    with pytest.raises(ApiError) as refused:  # IfHealthyBudget: the budget is not healthy, so the pod is guarded
        await evict(api, "sick")
    assert refused.value.code == 429
    web = await api.client.get(POD_DISRUPTION_BUDGETS, "web", NS)
    web["spec"]["unhealthyPodEvictionPolicy"] = "AlwaysAllow"
    web = await api.client.update(POD_DISRUPTION_BUDGETS, web)
    web["status"]["observedGeneration"] = web["metadata"]["generation"]
    await api.client.update(POD_DISRUPTION_BUDGETS, web, subresource="status")
    await evict(api, "sick", gracePeriodSeconds=0)
    assert await gone(api, "sick")
    assert (await api.client.get(POD_DISRUPTION_BUDGETS, "web", NS))["status"]["disruptionsAllowed"] == 0  # untouched


async def test_name_must_match(api: InProcessApi) -> None:
    await running_pod(api, "a")
    with pytest.raises(ApiError) as refused:
        await api.client.create_subresource(PODS, "a", "eviction", {"apiVersion": "policy/v1", "kind": "Eviction",
                                                                    "metadata": {"name": "b"}}, NS)
    assert refused.value.code == 400 and refused.value.message == "name in URL does not match name in Eviction object"
