"""Pure decisions of the StatefulSet controller (no server): identity, claims retention,
revisions, status, and the plan of one sync."""

from __future__ import annotations

import copy
from typing import Any

from podlife.controllers.statefulset import claims as claimrules
from podlife.controllers.statefulset.identity import (identity_matches, in_range, new_claims, new_pod, parent_and_ordinal,
                                                      storage_matches)
from podlife.controllers.statefulset.revisions import (apply_revision, current_revision, history_to_prune, new_revision,
                                                       plan_revisions, revision_data)
from podlife.controllers.statefulset.status import complete_rolling_update, replica_status, status_changed
from podlife.controllers.statefulset.update import (CreateClaims, CreatePod, DeletePod, FixClaimOwners, FixIdentity, Revisions,
                                                    max_unavailable, plan_sync)

Obj = dict[str, Any]
UID = "set-uid"


def sts(replicas: int = 3, **spec: Any) -> Obj:
    base: Obj = {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "web", "namespace": "default", "uid": UID, "generation": 1},
        "spec": {"replicas": replicas, "serviceName": "nginx", "selector": {"matchLabels": {"app": "nginx"}},
                 "podManagementPolicy": "OrderedReady",
                 "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                 "template": {"metadata": {"labels": {"app": "nginx"}},
                              "spec": {"containers": [{"name": "nginx", "image": "nginx:1"}]}},
                 "volumeClaimTemplates": [{"metadata": {"name": "data"},
                                           "spec": {"accessModes": ["ReadWriteOnce"],
                                                    "resources": {"requests": {"storage": "1Gi"}}}}]},
        "status": {},
    }
    base["spec"].update(spec)
    return base


def revs(s: Obj, current: str = "r1", update: str = "r1", update_set: Obj | None = None) -> Revisions:
    return Revisions(s, update_set or s, current, update)


def running(s: Obj, ordinal: int, revision: str = "r1", ready: bool = True, phase: str = "Running", **meta: Any) -> Obj:
    pod = new_pod(s, ordinal, revision)
    pod["metadata"].update({"uid": f"pod-{ordinal}", "resourceVersion": "1", **meta})
    pod["status"] = {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": "2020-01-01T00:00:00Z"}]}
    return pod


def claims_of(s: Obj, ordinals: range) -> dict[str, Obj]:
    found = {}
    for o in ordinals:
        for c in new_claims(s, o).values():
            c = copy.deepcopy(c)
            c["metadata"]["uid"] = f"claim-{o}"
            found[c["metadata"]["name"]] = c
    return found


def kinds(plan: Any) -> list[tuple[str, str]]:
    return [(type(a).__name__, a.pod["metadata"]["name"]) for a in plan.actions]


def why(plan: Any) -> str:
    action = plan.actions[0]
    assert isinstance(action, DeletePod)
    return action.why


# ----------------------------------------------------------------------------- identity


def test_names_and_ordinals() -> None:
    assert parent_and_ordinal("web-12") == ("web", 12)
    assert parent_and_ordinal("my-web-0") == ("my-web", 0)
    assert parent_and_ordinal("web") == ("", -1)
    assert parent_and_ordinal("web-x") == ("", -1)
    s = sts(3, ordinals={"start": 5})
    assert [in_range(s, o) for o in (4, 5, 7, 8)] == [False, True, True, False]


def test_new_pod_identity_and_storage() -> None:
    s = sts()
    s["spec"]["template"]["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}, {"name": "cfg", "emptyDir": {}}]
    pod = new_pod(s, 1, "web-abc")
    assert pod["metadata"]["name"] == "web-1"
    assert pod["metadata"]["labels"] == {"app": "nginx", "statefulset.kubernetes.io/pod-name": "web-1",
                                         "apps.kubernetes.io/pod-index": "1", "controller-revision-hash": "web-abc"}
    assert pod["spec"]["hostname"] == "web-1" and pod["spec"]["subdomain"] == "nginx"
    assert pod["spec"]["volumes"] == [{"name": "data", "persistentVolumeClaim": {"claimName": "data-web-1"}},
                                      {"name": "cfg", "emptyDir": {}}]
    ref = pod["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["uid"], ref["controller"]) == ("StatefulSet", UID, True)
    assert identity_matches(s, pod) and storage_matches(s, pod)
    del pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"]
    assert not identity_matches(s, pod)


def test_claims_carry_template_and_selector_labels() -> None:
    s = sts()
    s["spec"]["volumeClaimTemplates"][0]["metadata"]["labels"] = {"tier": "db"}
    claim = new_claims(s, 2)["data"]
    assert claim["metadata"]["name"] == "data-web-2"
    assert claim["metadata"]["labels"] == {"tier": "db", "app": "nginx"}
    assert claim["spec"]["resources"] == {"requests": {"storage": "1Gi"}}


# ----------------------------------------------------------------------------- retention


def test_retention_owner_references() -> None:
    pod = running(sts(), 2)
    claim = claims_of(sts(), range(2, 3))["data-web-2"]
    retain = sts()
    assert claimrules.claim_owner_up_to_date(claim, retain, pod)
    on_delete = sts(persistentVolumeClaimRetentionPolicy={"whenDeleted": "Delete", "whenScaled": "Retain"})
    assert not claimrules.claim_owner_up_to_date(claim, on_delete, pod)
    refs = claimrules.updated_owner_refs(claim, on_delete, pod)
    assert [(r["kind"], r["uid"], r["controller"]) for r in refs] == [("StatefulSet", UID, True)]
    on_scale = sts(2, persistentVolumeClaimRetentionPolicy={"whenDeleted": "Retain", "whenScaled": "Delete"})
    in_range_set = sts(3, persistentVolumeClaimRetentionPolicy={"whenDeleted": "Retain", "whenScaled": "Delete"})
    assert claimrules.claim_owner_up_to_date(claim, in_range_set, pod)  # in range: no owner wanted
    refs = claimrules.updated_owner_refs(claim, on_scale, pod)  # web-2 is out of range for 2 replicas
    assert [(r["kind"], r["uid"]) for r in refs] == [("Pod", "pod-2")]
    claim["metadata"]["ownerReferences"] = refs
    assert claimrules.claim_owner_up_to_date(claim, on_scale, pod)


def test_claim_of_a_previous_pod_is_stale() -> None:
    s = sts(persistentVolumeClaimRetentionPolicy={"whenDeleted": "Retain", "whenScaled": "Delete"})
    claim = claims_of(s, range(1, 2))["data-web-1"]
    claim["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "Pod", "name": "web-1", "uid": "old",
                                             "controller": True}]
    fresh = new_pod(s, 1, "r1")  # not created yet: no uid
    assert claimrules.claim_is_stale(s, fresh, [claim])
    assert not claimrules.claim_is_stale(sts(), fresh, [claim])  # Retain on scale: claims are reused
    plan = plan_sync(s, revs(s), [running(s, 0)], {claim["metadata"]["name"]: claim})
    assert plan.actions == [] and plan.waits_for_stale_claim  # waits for the collector


# ----------------------------------------------------------------------------- revisions


def test_revision_data_and_apply() -> None:
    s = sts()
    data = revision_data(s)
    assert data["spec"]["template"]["$patch"] == "replace"
    rev = new_revision(s, 1, None)
    assert rev["metadata"]["name"].startswith("web-")
    assert rev["metadata"]["labels"]["app"] == "nginx" and rev["revision"] == 1
    changed = copy.deepcopy(s)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    assert apply_revision(changed, rev)["spec"]["template"] == s["spec"]["template"]


def test_plan_revisions_create_keep_renumber() -> None:
    s = sts()
    first = plan_revisions(s, [])
    assert (first.action, first.number) == ("create", 1)
    r1 = first.revision
    assert plan_revisions(s, [r1]).action == "keep"
    changed = copy.deepcopy(s)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    second = plan_revisions(changed, [r1])
    assert (second.action, second.number) == ("create", 2)
    r2 = second.revision
    back = plan_revisions(s, [r1, r2])  # a rollback renumbers the old revision
    assert (back.action, back.number, back.revision["metadata"]["name"]) == ("renumber", 3, r1["metadata"]["name"])
    s["status"]["currentRevision"] = r1["metadata"]["name"]
    assert current_revision(s, [r1, r2], r2) is r1
    assert current_revision(sts(), [r1, r2], r2) is r2


def test_history_limit_keeps_live_revisions() -> None:
    s = sts(revisionHistoryLimit=1)
    revisions = [dict(new_revision(s, n, n), revision=n) for n in range(1, 5)]
    names = [r["metadata"]["name"] for r in revisions]
    pod = running(s, 0, names[0])
    pruned = history_to_prune(s, revisions, [pod], current=names[2], update=names[3])
    assert pruned == []  # one revision no pod uses, and one is allowed
    s["spec"]["revisionHistoryLimit"] = 0
    pruned = history_to_prune(s, revisions, [pod], current=names[2], update=names[3])
    assert [r["metadata"]["name"] for r in pruned] == [names[1]]


# ----------------------------------------------------------------------------- status


def test_status_counts_and_completion() -> None:
    s = sts(3)
    pods = [running(s, 0, "r2"), running(s, 1, "r1"), running(s, 2, "r1", ready=False)]
    status = replica_status(s, pods, "r1", "r2", 0)
    assert (status["replicas"], status["readyReplicas"], status["availableReplicas"]) == (3, 2, 2)
    assert (status["currentReplicas"], status["updatedReplicas"]) == (2, 1)
    assert complete_rolling_update(s, status)["currentRevision"] == "r1"
    done = replica_status(s, [running(s, o, "r2") for o in range(3)], "r1", "r2", 0)
    assert complete_rolling_update(s, done)["currentRevision"] == "r2"
    assert status_changed(s, done)
    s["status"] = dict(done)
    assert not status_changed(s, done)


def test_min_ready_seconds_counts_available() -> None:
    s = sts(1, minReadySeconds=3600)
    pod = running(s, 0)
    pod["status"]["conditions"][0]["lastTransitionTime"] = "2999-01-01T00:00:00Z"
    assert replica_status(s, [pod], "r1", "r1", 0)["availableReplicas"] == 0


# ----------------------------------------------------------------------------- the plan


def test_ordered_ready_creates_one_at_a_time() -> None:
    s = sts(3)
    plan = plan_sync(s, revs(s), [], {})
    assert kinds(plan) == [("CreatePod", "web-0")]
    assert isinstance(plan.actions[0], CreatePod)
    assert [c["metadata"]["name"] for c in plan.actions[0].claims] == ["data-web-0"]
    # web-0 exists but is not ready: nothing more
    assert plan_sync(s, revs(s), [running(s, 0, ready=False)], claims_of(s, range(1))).actions == []
    assert kinds(plan_sync(s, revs(s), [running(s, 0)], claims_of(s, range(1)))) == [("CreatePod", "web-1")]


def test_parallel_creates_all_and_deletes_all_condemned() -> None:
    s = sts(3, podManagementPolicy="Parallel", ordinals={"start": 5})
    assert kinds(plan_sync(s, revs(s), [], {})) == [("CreatePod", "web-5"), ("CreatePod", "web-6"), ("CreatePod", "web-7")]
    s1 = sts(1, podManagementPolicy="Parallel")
    pods = [running(s1, o) for o in range(3)]
    assert kinds(plan_sync(s1, revs(s1), pods, claims_of(s1, range(3)))) == [("DeletePod", "web-2"), ("DeletePod", "web-1")]


def test_scale_down_highest_first_waiting_for_each() -> None:
    s = sts(1)
    pods = [running(s, o) for o in range(3)]
    claims = claims_of(s, range(3))
    plan = plan_sync(s, revs(s), pods, claims)
    assert kinds(plan) == [("DeletePod", "web-2")] and why(plan) == "scale"
    pods[2]["metadata"]["deletionTimestamp"] = "2020-01-01T00:00:00Z"
    assert plan_sync(s, revs(s), pods, claims).actions == []  # waits for web-2 to be gone
    assert kinds(plan_sync(s, revs(s), pods[:2], claims)) == [("DeletePod", "web-1")]


def test_failed_pod_is_deleted_then_recreated() -> None:
    s = sts(2)
    pods = [running(s, 0, phase="Failed", ready=False), running(s, 1)]
    plan = plan_sync(s, revs(s), pods, claims_of(s, range(2)))
    assert kinds(plan) == [("DeletePod", "web-0")] and why(plan) == "failed"
    assert kinds(plan_sync(s, revs(s), pods[1:], claims_of(s, range(2)))) == [("CreatePod", "web-0")]


def test_rolling_update_from_the_top_with_partition() -> None:
    old = sts(3)
    new = copy.deepcopy(old)
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    r = Revisions(old, new, "r1", "r2")
    pods = [running(old, o, "r1") for o in range(3)]
    claims = claims_of(old, range(3))
    plan = plan_sync(new, r, pods, claims)
    assert kinds(plan) == [("DeletePod", "web-2")] and plan.update_deletions == 1
    # web-2 recreated at r2 but not ready yet: wait
    pods[2] = running(new, 2, "r2", ready=False)
    assert plan_sync(new, r, pods, claims).actions == []
    pods[2] = running(new, 2, "r2")
    assert kinds(plan_sync(new, r, pods, claims)) == [("DeletePod", "web-1")]
    # partition 2: web-2 only
    new["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = 2
    assert plan_sync(new, Revisions(old, new, "r1", "r2"), pods, claims).actions == []
    # a missing pod below the partition comes back at the current revision
    old["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = 2
    plan = plan_sync(new, Revisions(old, new, "r1", "r2"), pods[1:], claims)
    assert kinds(plan) == [("CreatePod", "web-0")]
    created = plan.actions[0].pod
    assert created["metadata"]["labels"]["controller-revision-hash"] == "r1"
    assert created["spec"]["containers"][0]["image"] == "nginx:1"


def test_on_delete_never_deletes_for_update() -> None:
    old = sts(2, updateStrategy={"type": "OnDelete"})
    new = copy.deepcopy(old)
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    pods = [running(old, o, "r1") for o in range(2)]
    assert plan_sync(new, Revisions(old, new, "r1", "r2"), pods, claims_of(old, range(2))).actions == []
    plan = plan_sync(new, Revisions(old, new, "r1", "r2"), pods[:1], claims_of(old, range(2)))
    assert plan.actions[0].pod["metadata"]["labels"]["controller-revision-hash"] == "r2"


def test_max_unavailable() -> None:
    old = sts(4)
    new = copy.deepcopy(old)
    new["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] = 2
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    pods = [running(old, o, "r1") for o in range(4)]
    plan = plan_sync(new, Revisions(old, new, "r1", "r2"), pods, claims_of(old, range(4)))
    assert kinds(plan) == [("DeletePod", "web-3"), ("DeletePod", "web-2")]
    new["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] = "50%"
    assert max_unavailable(new) == 2
    new["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] = "10%"
    assert max_unavailable(new) == 1


def test_pending_pod_gets_missing_claims_and_identity_fixed() -> None:
    s = sts(1)
    pod = running(s, 0, phase="Pending", ready=False)
    plan = plan_sync(s, revs(s), [pod], {})
    assert isinstance(plan.actions[0], CreateClaims)
    assert plan.actions[0].claims[0]["metadata"]["name"] == "data-web-0"
    pod = running(s, 0)
    del pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"]
    plan = plan_sync(s, revs(s), [pod], claims_of(s, range(1)))
    assert isinstance(plan.actions[0], FixIdentity)
    assert plan.actions[0].labels["statefulset.kubernetes.io/pod-name"] == "web-0"


def test_condemned_claims_get_pod_owner_before_deletion() -> None:
    s = sts(1, persistentVolumeClaimRetentionPolicy={"whenDeleted": "Retain", "whenScaled": "Delete"})
    pods = [running(s, 0), running(s, 1)]
    plan = plan_sync(s, revs(s), pods, claims_of(s, range(2)))
    assert [type(a) for a in plan.actions] == [FixClaimOwners, DeletePod]
    fix = plan.actions[0]
    assert isinstance(fix, FixClaimOwners)
    assert [(r["kind"], r["name"]) for r in fix.owner_references] == [("Pod", "web-1")]


def test_set_being_deleted_does_nothing() -> None:
    s = sts(3)
    s["metadata"]["deletionTimestamp"] = "2020-01-01T00:00:00Z"
    assert plan_sync(s, revs(s), [], {}).actions == []
