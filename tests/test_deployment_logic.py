"""The Deployment controller's pure decisions (no server): fenceposts, rolling steps, proportional
scaling, revisions and their annotations, history cleanup, status and conditions."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from podlife.controllers.deployment import progress, recreate, replicasets, revisions, rolling, sync
from podlife.controllers.history import POD_TEMPLATE_HASH_LABEL

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def deployment(replicas: int = 6, surge: Any = "25%", unavailable: Any = "25%", *, strategy: str = "RollingUpdate",
               generation: int = 1, status: dict | None = None, annotations: dict | None = None,
               image: str = "busybox", **spec: Any) -> dict:
    strat: dict = {"type": strategy}
    if strategy == "RollingUpdate":
        strat["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": generation,
                         "annotations": dict(annotations or {})},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}, "strategy": strat,
                     "progressDeadlineSeconds": 600, "revisionHistoryLimit": 10,
                     "template": template(image), **spec},
            "status": status or {}}


def template(image: str = "busybox") -> dict:
    return {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": image}]}}


def rs(name: str, replicas: int, *, available: int | None = None, actual: int | None = None, created: str = "2026-01-01T00:00:00Z",
       revision: int | None = None, desired: int | None = None, most: int | None = None, image: str = "busybox",
       uid: str | None = None, ready: int | None = None) -> dict:
    annotations = {}
    if revision is not None:
        annotations[replicasets.REVISION_ANNOTATION] = str(revision)
    if desired is not None:
        annotations[revisions.DESIRED_REPLICAS_ANNOTATION] = str(desired)
    if most is not None:
        annotations[revisions.MAX_REPLICAS_ANNOTATION] = str(most)
    tmpl = template(image)
    tmpl["metadata"]["labels"][POD_TEMPLATE_HASH_LABEL] = name
    actual = replicas if actual is None else actual
    available = actual if available is None else available
    return {"metadata": {"name": name, "namespace": "default", "uid": uid or f"uid-{name}", "creationTimestamp": created,
                         "annotations": annotations, "generation": 1},
            "spec": {"replicas": replicas, "template": tmpl},
            "status": {"replicas": actual, "availableReplicas": available,
                       "readyReplicas": available if ready is None else ready, "observedGeneration": 1}}


# --------------------------------------------------------------------------- fenceposts


@pytest.mark.parametrize(("value", "total", "up", "expected"), [
    (2, 10, True, 2), ("25%", 6, True, 2), ("25%", 6, False, 1), ("10%", 5, False, 0), ("10%", 5, True, 1),
    ("100%", 3, False, 3), ("0%", 3, True, 0), (None, 3, True, 0)])
def test_scaled_value_rounds_surge_up_and_unavailable_down(value: Any, total: int, up: bool, expected: int) -> None:
    assert rolling.scaled_value(value, total, up) == expected


def test_scaled_value_refuses_a_string_that_is_no_percentage() -> None:
    with pytest.raises(ValueError):
        rolling.scaled_value("abc", 3, True)


def test_both_fenceposts_zero_make_unavailable_one() -> None:
    assert rolling.resolve_fenceposts("10%", "10%", 5) == (1, 0)
    assert rolling.resolve_fenceposts(0, "10%", 5) == (0, 1)
    assert rolling.resolve_fenceposts(0, 0, 5) == (0, 1)


def test_max_unavailable_is_capped_and_zero_for_recreate_or_no_replicas() -> None:
    assert rolling.max_unavailable(deployment(3, 1, 5)) == 3
    assert rolling.max_unavailable(deployment(0, 1, 1)) == 0
    assert rolling.max_unavailable(deployment(3, strategy="Recreate")) == 0
    assert rolling.max_surge(deployment(3, strategy="Recreate")) == 0
    assert rolling.max_surge(deployment(6)) == 2


# --------------------------------------------------------------------------- rolling steps


def test_new_replica_set_grows_within_surge_and_never_past_replicas() -> None:
    d = deployment(6)  # surge 2
    old, new = rs("old", 6), rs("new", 0)
    assert rolling.new_rs_replicas(d, [old, new], new) == 2
    old, new = rs("old", 4), rs("new", 2)
    assert rolling.new_rs_replicas(d, [old, new], new) == 4
    old, new = rs("old", 0), rs("new", 5)
    assert rolling.new_rs_replicas(d, [old, new], new) == 6
    old, new = rs("old", 6), rs("new", 2)
    assert rolling.new_rs_replicas(d, [old, new], new) == 2  # at replicas + surge: no growth
    assert rolling.new_rs_replicas(deployment(6, strategy="Recreate"), [old, new], new) == 6


def test_old_replica_sets_shrink_keeping_the_minimum_available() -> None:
    d = deployment(6)  # surge 2, unavailable 1: at least 5 available
    old, new = rs("old", 6), rs("new", 2, available=0)
    assert rolling.max_scaled_down(d, [old, new], new) == 8 - 5 - 2 <= 1
    assert rolling.rolling_scale_down(d, [old, new], [old]) == [(old, 5)]
    new_ready = rs("new", 2)
    assert rolling.rolling_scale_down(d, [old, new_ready], [old]) == [(old, 3)]


def test_unavailable_old_pods_go_first_oldest_replica_set_first() -> None:
    older = rs("a", 3, available=1, created="2026-01-01T00:00:00Z")
    newer = rs("b", 3, available=0, created="2026-01-01T00:01:00Z")
    assert rolling.unhealthy_cleanup([newer, older], 3) == [(older, 1), (newer, 2)]
    assert rolling.unhealthy_cleanup([newer, older], 10) == [(older, 1), (newer, 0)]
    assert rolling.unhealthy_cleanup([rs("c", 2)], 5) == []


# --------------------------------------------------------------------------- which replica set is new


def test_new_replica_set_is_the_oldest_with_the_template_ignoring_the_hash_and_empty_fields() -> None:
    d = deployment(3, image="nginx")
    a = rs("a", 1, image="busybox", created="2026-01-01T00:00:00Z")
    b = rs("b", 1, image="nginx", created="2026-01-01T00:02:00Z")
    c = rs("c", 1, image="nginx", created="2026-01-01T00:01:00Z")
    c["spec"]["template"]["metadata"]["annotations"] = {}
    c["spec"]["template"]["metadata"]["creationTimestamp"] = None
    new, old = replicasets.find_old(d, [a, b, c])
    assert new is c and old == [a, b]
    assert replicasets.find_new(deployment(3, image="redis"), [a, b, c]) is None


# --------------------------------------------------------------------------- revisions


def test_new_replica_set_gets_name_labels_selector_and_annotations() -> None:
    d = deployment(6, annotations={revisions.CHANGE_CAUSE_ANNOTATION: "why", revisions.LAST_APPLIED_ANNOTATION: "{}",
                                   replicasets.REVISION_ANNOTATION: "4"}, minReadySeconds=5)
    new = revisions.new_replica_set(d, "abc")
    assert new["metadata"]["name"] == "web-abc"
    assert new["metadata"]["labels"] == {"app": "web", POD_TEMPLATE_HASH_LABEL: "abc"}
    assert new["spec"]["selector"] == {"matchLabels": {"app": "web", POD_TEMPLATE_HASH_LABEL: "abc"}}
    assert new["spec"]["template"]["metadata"]["labels"][POD_TEMPLATE_HASH_LABEL] == "abc"
    assert new["spec"]["minReadySeconds"] == 5
    assert new["metadata"]["ownerReferences"][0]["uid"] == "d-uid" and new["metadata"]["ownerReferences"][0]["controller"]
    assert "labels" not in d["spec"]["template"]["metadata"] or POD_TEMPLATE_HASH_LABEL not in d["spec"]["template"]["metadata"]["labels"]
    assert revisions.set_new_rs_annotations(d, new, 5, False, 6, 8)
    assert new["metadata"]["annotations"] == {
        revisions.CHANGE_CAUSE_ANNOTATION: "why", replicasets.REVISION_ANNOTATION: "5",
        revisions.DESIRED_REPLICAS_ANNOTATION: "6", revisions.MAX_REPLICAS_ANNOTATION: "8"}
    assert not revisions.set_new_rs_annotations(d, new, 5, True, 6, 8)


def test_a_rolled_back_replica_set_keeps_its_former_revisions() -> None:
    d = deployment()
    old = rs("a", 0, revision=1)
    assert revisions.set_new_rs_annotations(d, old, 3, True, 6, 8)
    assert old["metadata"]["annotations"][replicasets.REVISION_ANNOTATION] == "3"
    assert old["metadata"]["annotations"][revisions.REVISION_HISTORY_ANNOTATION] == "1"
    revisions.set_new_rs_annotations(d, old, 5, True, 6, 8)
    assert old["metadata"]["annotations"][revisions.REVISION_HISTORY_ANNOTATION] == "1,3"
    revisions.set_new_rs_annotations(d, old, 7, True, 6, 8, history_limit=4)
    assert old["metadata"]["annotations"][revisions.REVISION_HISTORY_ANNOTATION] == "3,5"
    assert revisions.DESIRED_REPLICAS_ANNOTATION not in old["metadata"]["annotations"]  # existing: not resized here


def test_deployment_revision_follows() -> None:
    d = deployment()
    assert revisions.set_deployment_revision(d, "2")
    assert not revisions.set_deployment_revision(d, "2")
    assert d["metadata"]["annotations"][replicasets.REVISION_ANNOTATION] == "2"


def test_history_beyond_the_limit_goes_lowest_revision_first_only_when_empty() -> None:
    d = deployment(revisionHistoryLimit=1)
    r1, r2, r3 = rs("a", 0, revision=1), rs("b", 0, revision=2), rs("c", 0, revision=3)
    assert revisions.to_clean_up(d, [r3, r1, r2]) == [r1, r2]
    busy = rs("a", 0, actual=1, revision=1)
    assert revisions.to_clean_up(d, [busy, r2, r3]) == [r2]
    lagging = rs("b", 0, revision=2)
    lagging["metadata"]["generation"] = 2
    assert revisions.to_clean_up(d, [r1, lagging, r3]) == [r1]
    assert revisions.to_clean_up(deployment(revisionHistoryLimit=10), [r1, r2, r3]) == []
    assert revisions.to_clean_up(deployment(revisionHistoryLimit=0), [r1]) == [r1]


# --------------------------------------------------------------------------- scaling


def test_a_scaling_event_is_a_replica_set_sized_for_other_replicas() -> None:
    d = deployment(8)
    assert sync.is_scaling_event(d, rs("a", 6, desired=6), [])
    assert not sync.is_scaling_event(d, rs("a", 8, desired=8), [rs("b", 0, desired=3)])
    assert not sync.is_scaling_event(d, rs("a", 2), [])


def test_one_active_replica_set_takes_all_replicas() -> None:
    d = deployment(8)
    only = rs("a", 6, desired=6)
    plan, direction = sync.scale_plan(d, only, [rs("b", 0)])
    assert plan == [(only, 8)] and direction == "up"
    newest = rs("c", 0, created="2026-01-01T00:05:00Z")
    plan, _ = sync.scale_plan(d, None, [rs("b", 0), newest])
    assert plan == [(newest, 8)]


def test_saturated_new_replica_set_scales_old_ones_to_zero() -> None:
    d = deployment(4)
    new = rs("new", 4, desired=4)
    old = rs("old", 1, desired=4)
    plan, direction = sync.scale_plan(d, new, [old])
    assert plan == [(old, 0)] and direction == "down"


def test_proportional_scaling_mid_rollout() -> None:
    """Kubernetes' documented case: 10 replicas, maxSurge 3, maxUnavailable 2; stuck rollout with 8 old and
    5 new; scaled to 15: 5 more pods, 3 to the old ReplicaSet and 2 to the new one."""
    d = deployment(15, 3, 2)
    old = rs("old", 8, desired=10, most=13, created="2026-01-01T00:00:00Z")
    new = rs("new", 5, desired=10, most=13, available=0, created="2026-01-01T00:01:00Z")
    plan, direction = sync.scale_plan(d, new, [old])
    assert {r["metadata"]["name"]: size for r, size in plan} == {"old": 11, "new": 7}
    assert direction == "up"
    assert sum(size for _, size in plan) == 15 + 3


def test_proportional_scaling_down_takes_from_the_older_first_among_equals() -> None:
    d = deployment(4, 1, 0)  # from 6 (max 7) to 4 (max 5): one pod less
    old = rs("old", 3, desired=6, most=7, created="2026-01-01T00:00:00Z")
    new = rs("new", 3, desired=6, most=7, available=0, created="2026-01-01T00:01:00Z")
    plan, direction = sync.scale_plan(d, new, [old])
    assert direction == "down"
    assert [(r["metadata"]["name"], size) for r, size in plan] == [("old", 2), ("new", 3)]


def test_proportional_scaling_to_zero_empties_everything() -> None:
    d = deployment(0, 1, 0)
    old = rs("old", 3, desired=6, most=7)
    new = rs("new", 2, desired=6, most=7, available=0, created="2026-01-01T00:01:00Z")
    plan, _ = sync.scale_plan(d, new, [old])
    assert {r["metadata"]["name"]: size for r, size in plan} == {"old": 0, "new": 0}


# --------------------------------------------------------------------------- recreate


def test_old_pods_running_counts_status_and_unfinished_pods() -> None:
    new, old = rs("new", 0, uid="n"), rs("old", 0, uid="o", actual=0)
    assert recreate.old_pods_running(new, [rs("x", 0, actual=1)], {})
    assert recreate.old_pods_running(new, [old], {"o": [{"status": {"phase": "Running"}}]})
    assert recreate.old_pods_running(new, [old], {"o": [{"status": {"phase": "Unknown"}}]})
    assert not recreate.old_pods_running(new, [old], {"o": [{"status": {"phase": "Succeeded"}}],
                                                      "n": [{"status": {"phase": "Running"}}]})
    assert not recreate.old_pods_running(None, [old], {"o": []})


# --------------------------------------------------------------------------- status and conditions


def _cond(status: dict, type_: str) -> dict:
    cond = progress.get_condition(status, type_)
    assert cond is not None, status
    return cond


def test_status_counts_and_availability() -> None:
    d = deployment(4, 1, 1, generation=3)
    old = rs("old", 1, available=1)
    new = rs("new", 3, actual=3, available=1, ready=2)
    status = progress.calculate_status([old, new], new, d, NOW)
    assert {k: status[k] for k in ("observedGeneration", "replicas", "updatedReplicas", "readyReplicas",
                                   "availableReplicas", "unavailableReplicas")} == {
        "observedGeneration": 3, "replicas": 4, "updatedReplicas": 3, "readyReplicas": 3,
        "availableReplicas": 2, "unavailableReplicas": 2}
    available = _cond(status, progress.AVAILABLE)
    assert (available["status"], available["reason"], available["message"]) == (
        "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
    status = progress.calculate_status([rs("new", 4, available=3)], None, d, NOW)
    assert _cond(status, progress.AVAILABLE)["reason"] == "MinimumReplicasAvailable"


def test_set_condition_keeps_same_and_transition_time_of_same_status() -> None:
    status: dict = {}
    progress.set_condition(status, progress.new_condition("Progressing", "True", "A", "a", NOW))
    later = NOW + timedelta(minutes=1)
    progress.set_condition(status, progress.new_condition("Progressing", "True", "A", "other", later))
    assert _cond(status, "Progressing")["message"] == "a"
    progress.set_condition(status, progress.new_condition("Progressing", "True", "B", "b", later))
    cond = _cond(status, "Progressing")
    assert cond["reason"] == "B" and cond["lastTransitionTime"] == "2026-01-02T03:04:05Z"
    assert cond["lastUpdateTime"] == "2026-01-02T03:05:05Z"
    progress.set_condition(status, progress.new_condition("Progressing", "False", "C", "c", later))
    assert _cond(status, "Progressing")["lastTransitionTime"] == "2026-01-02T03:05:05Z"


def test_rollout_progresses_completes_and_times_out() -> None:
    created = progress.new_condition("Progressing", "True", "NewReplicaSetCreated", 'Created new replica set "web-b"', NOW)
    d = deployment(2, 1, 0, status={"replicas": 2, "updatedReplicas": 0, "availableReplicas": 2, "conditions": [created]})
    old, new = rs("web-a", 2), rs("web-b", 1, available=0)
    status = progress.rollout_status([old, new], new, d, NOW + timedelta(seconds=5))
    cond = _cond(status, "Progressing")
    assert (cond["reason"], cond["message"]) == ("ReplicaSetUpdated", 'ReplicaSet "web-b" is progressing.')
    assert cond["lastTransitionTime"] == created["lastTransitionTime"] and cond["lastUpdateTime"] == "2026-01-02T03:04:10Z"

    d["status"] = status
    late = NOW + timedelta(seconds=700)
    stuck = progress.rollout_status([old, new], new, d, late)
    cond = _cond(stuck, "Progressing")
    assert (cond["status"], cond["reason"], cond["message"]) == (
        "False", "ProgressDeadlineExceeded", 'ReplicaSet "web-b" has timed out progressing.')
    assert progress.requeue_after(d, status, NOW + timedelta(seconds=10)) == pytest.approx(596.0)

    d["status"] = status
    done = progress.rollout_status([rs("web-a", 0, actual=0), rs("web-b", 2)], rs("web-b", 2), d, late)
    cond = _cond(done, "Progressing")
    assert (cond["status"], cond["reason"], cond["message"]) == (
        "True", "NewReplicaSetAvailable", 'ReplicaSet "web-b" has successfully progressed.')
    assert progress.requeue_after(d, done, late) is None


def test_no_deadline_means_no_progressing_condition() -> None:
    d = deployment(1, status={"conditions": [progress.new_condition("Progressing", "True", "X", "x", NOW)]})
    d["spec"]["progressDeadlineSeconds"] = 2**31 - 1
    status = progress.rollout_status([rs("a", 1)], rs("a", 1), d, NOW)
    assert progress.get_condition(status, "Progressing") is None


def test_paused_and_resumed_conditions() -> None:
    d = deployment(1, paused=True)
    status = progress.paused_condition(d, NOW)
    assert status is not None
    cond = _cond(status, "Progressing")
    assert (cond["status"], cond["reason"], cond["message"]) == ("Unknown", "DeploymentPaused", "Deployment is paused")
    d["status"] = status
    assert progress.paused_condition(d, NOW) is None
    d["spec"]["paused"] = False
    resumed = progress.paused_condition(d, NOW)
    assert resumed is not None
    assert _cond(resumed, "Progressing")["reason"] == "DeploymentResumed"
    timed = deployment(1, paused=True, status={"conditions": [
        progress.new_condition("Progressing", "False", "ProgressDeadlineExceeded", "x", NOW)]})
    assert progress.paused_condition(timed, NOW) is None


def test_replica_failure_is_copied_from_the_new_replica_set_first() -> None:
    d = deployment(1)
    new, old = rs("new", 1, available=0), rs("old", 1)
    failure = {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": "quota",
               "lastTransitionTime": "2026-01-02T00:00:00Z"}
    old["status"]["conditions"] = [dict(failure, message="old")]
    new["status"]["conditions"] = [failure]
    status = progress.rollout_status([old, new], new, d, NOW)
    assert _cond(status, "ReplicaFailure")["message"] == "quota"


def test_wire_status_leaves_zero_counts_out() -> None:
    assert progress.wire_status({"replicas": 0, "availableReplicas": 2, "conditions": [], "collisionCount": 0}) == {
        "availableReplicas": 2, "collisionCount": 0}
    assert progress.same_status({"replicas": 0}, {})


def test_an_old_replica_set_whose_status_lags_its_resize_is_not_scaled_back_up() -> None:
    lagging = rs("a", 1, actual=2, available=2)
    with pytest.raises(rolling.StaleReplicaSetStatus):
        rolling.unhealthy_cleanup([lagging], 3)
