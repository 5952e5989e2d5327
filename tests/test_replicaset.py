"""The ReplicaSet and ReplicationController controllers (issue 14): pure decisions, then a real cluster with kubectl.

The cluster has simulated nodes only (pods go Running and Ready by themselves); each test
works in its own namespace.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from podlife.controllers import pod_control
from podlife.controllers.replicaset import (
    BURST_REPLICAS,
    REPLICA_SET,
    REPLICATION_CONTROLLER,
    compute_status,
    is_terminating,
    next_available_check,
    pods_to_delete,
    replica_diff,
    status_changed,
    status_view,
)

from .cluster_harness import PodlifeProcess, require_tool, wait_for

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)


def _ts(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(name: str, *, node: str | None = "n1", phase: str = "Running", ready_for: float | None = 100.0,
        labels: dict[str, str] | None = None, created_ago: float = 200.0) -> dict[str, Any]:
    conditions = []
    if ready_for is not None:
        conditions.append({"type": "Ready", "status": "True", "lastTransitionTime": _ts(ready_for)})
    spec: dict[str, Any] = {"nodeName": node} if node else {}
    return {"metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "labels": labels or {"app": "web"},
                         "creationTimestamp": _ts(created_ago)},
            "spec": spec, "status": {"phase": phase, "conditions": conditions}}


def owner(replicas: int = 3, *, min_ready: int = 0, generation: int = 2, status: dict | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "ns", "uid": "rs-uid", "generation": generation},
            "spec": {"replicas": replicas, "minReadySeconds": min_ready, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web", "tier": "front"}}}},
            "status": status or {"replicas": 0}}


# --------------------------------------------------------------------------- pure decisions


def test_scale_down_deletes_unscheduled_then_pending_then_not_ready_first() -> None:
    running = pod("running", ready_for=500)
    not_ready = pod("not-ready", ready_for=None)
    pending = pod("pending", phase="Pending", ready_for=None)
    unscheduled = pod("unscheduled", node=None, phase="Pending", ready_for=None)
    ordered = [p["metadata"]["name"] for p in pods_to_delete([running, not_ready, pending, unscheduled], 3)]
    assert ordered == ["unscheduled", "pending", "not-ready"]
    assert [p["metadata"]["name"] for p in pods_to_delete([running, unscheduled, not_ready], 1)] == ["unscheduled"]
    assert pods_to_delete([running], 0) == []


def test_scale_down_prefers_newer_and_shorter_ready_pods() -> None:
    old = pod("old", ready_for=1000, created_ago=2000)
    young = pod("young", ready_for=10, created_ago=20, node="n2")
    assert pods_to_delete([old, young], 1)[0]["metadata"]["name"] == "young"


def test_scale_down_prefers_nodes_crowded_with_related_pods() -> None:
    lonely = pod("lonely", node="n1", created_ago=10, ready_for=5)
    crowded = pod("crowded", node="n2", created_ago=1000, ready_for=900)
    sibling_pods = [pod(f"sib{i}", node="n2") for i in range(3)]  # the other ReplicaSet of the same Deployment
    assert pods_to_delete([lonely, crowded], 1, [lonely, crowded, *sibling_pods])[0]["metadata"]["name"] == "crowded"
    assert pods_to_delete([lonely, crowded], 1)[0]["metadata"]["name"] == "lonely"  # alone: the newer goes
    assert pods_to_delete([lonely, crowded], 5) == [lonely, crowded]


def test_replica_diff_is_bounded_by_burst_replicas() -> None:
    assert replica_diff(1, owner(3)) == 2
    assert replica_diff(5, owner(3)) == -2
    assert replica_diff(0, owner(10_000)) == BURST_REPLICAS
    assert replica_diff(10_000, owner(0)) == -BURST_REPLICAS


def test_status_counts_ready_available_and_fully_labeled() -> None:
    pods = [pod("a", labels={"app": "web", "tier": "front"}, ready_for=100),
            pod("b", ready_for=2),
            pod("c", ready_for=None)]
    status = compute_status(owner(3), pods, None)
    assert status["replicas"] == 3 and status["fullyLabeledReplicas"] == 1 and status["readyReplicas"] == 2
    assert status["availableReplicas"] == 2
    assert status["observedGeneration"] == 2 and "conditions" not in status and "terminatingReplicas" not in status
    none_ready = compute_status(owner(2), [pod("x", ready_for=None)], None)
    assert none_ready == {"replicas": 1, "observedGeneration": 2}


def test_terminating_replicas_are_counted_apart() -> None:
    going = pod("going")
    going["metadata"]["deletionTimestamp"] = _ts(0)
    finished = pod("finished", phase="Succeeded")
    finished["metadata"]["deletionTimestamp"] = _ts(0)
    assert is_terminating(going) and not is_terminating(finished) and not is_terminating(pod("x"))
    status = compute_status(owner(1), [pod("a")], None, terminating=1)
    assert status["replicas"] == 1 and status["terminatingReplicas"] == 1
    assert compute_status(owner(1), [pod("a")], None, terminating=0)["terminatingReplicas"] == 0


def test_min_ready_seconds_makes_available_lag_ready() -> None:
    now = datetime.now(timezone.utc)
    just_ready = pod("fresh", ready_for=None)
    just_ready["status"]["conditions"] = [{"type": "Ready", "status": "True",
                                          "lastTransitionTime": (now - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}]
    long_ready = pod("old", ready_for=None)
    long_ready["status"]["conditions"] = [{"type": "Ready", "status": "True",
                                          "lastTransitionTime": (now - timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%SZ")}]
    status = compute_status(owner(2, min_ready=30), [just_ready, long_ready], None)
    assert status["readyReplicas"] == 2 and status["availableReplicas"] == 1
    wait = next_available_check([just_ready, long_ready], 30)
    assert wait is not None and 25 <= wait <= 30
    assert next_available_check([just_ready, long_ready], 0) is None


def test_replica_failure_condition_is_set_kept_and_removed() -> None:
    failed = compute_status(owner(3), [], ("FailedCreate", "exceeded quota"), now="2026-01-01T00:00:00Z")
    assert failed["conditions"] == [{"type": "ReplicaFailure", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z",
                                     "reason": "FailedCreate", "message": "exceeded quota"}]
    again = compute_status(owner(3, status=failed), [], ("FailedCreate", "another message"), now="2026-01-02T00:00:00Z")
    assert again["conditions"] == failed["conditions"]  # the first failure stays, as Kubernetes keeps it
    assert not status_changed(failed, again)
    healed = compute_status(owner(3, status=failed), [], None)
    assert "conditions" not in healed and status_changed(failed, healed)


def test_selectors_of_both_kinds() -> None:
    rs = REPLICA_SET.selector(owner())
    assert rs is not None and rs.matches({"app": "web"}) and not rs.matches({"app": "db"})
    rc: dict[str, Any] = {"metadata": {"name": "rc"}, "spec": {"template": {"metadata": {"labels": {"app": "rc"}}}}}
    defaulted = REPLICATION_CONTROLLER.selector(rc)
    assert defaulted is not None and defaulted.matches({"app": "rc", "x": "y"})
    rc["spec"]["selector"] = {"app": "rc", "v": "1"}
    explicit = REPLICATION_CONTROLLER.selector(rc)
    assert explicit is not None and not explicit.matches({"app": "rc"}) and explicit.matches({"app": "rc", "v": "1"})
    assert REPLICATION_CONTROLLER.selector({"metadata": {}, "spec": {}}) is None
    assert REPLICA_SET.selector({"metadata": {}, "spec": {}}) is None
    assert REPLICA_SET.selector({"metadata": {}, "spec": {"selector": {"matchExpressions": [{"key": "a"}]}}}) is None


def test_status_view_ignores_what_the_status_does_not_count() -> None:
    a = pod("a")
    b = json.loads(json.dumps(a))
    b["status"]["podIP"] = "10.0.0.1"
    assert status_view(a) == status_view(b)
    b["status"]["conditions"][0]["status"] = "False"
    assert status_view(a) != status_view(b)
    assert pod_control.is_active(a)


# --------------------------------------------------------------------------- a real cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    proc = PodlifeProcess(tmp_path_factory.mktemp("rs") / "data", "--nodes", "0", "--sim-nodes", "3",
                          kubectl=require_tool("kubectl")).start()
    try:
        yield proc
    finally:
        proc.stop()


def template(app: str) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": app}},
            "spec": {"terminationGracePeriodSeconds": 0, "containers": [{"name": "c", "image": "nginx:1.27"}]}}


def replica_set(name: str, replicas: int, *, min_ready: int = 0) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name},
            "spec": {"replicas": replicas, "minReadySeconds": min_ready, "selector": {"matchLabels": {"app": name}},
                     "template": template(name)}}


def create(cluster: PodlifeProcess, ns: str, obj: dict[str, Any]) -> None:
    cluster.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(obj))


def namespace(cluster: PodlifeProcess, name: str) -> str:
    cluster.kubectl("create", "namespace", name)
    return name


def pods(cluster: PodlifeProcess, ns: str, app: str) -> list[dict[str, Any]]:
    return [p for p in cluster.kubectl_json("get", "pods", "-n", ns, "-l", f"app={app}")["items"]
            if not p["metadata"].get("deletionTimestamp")]


def running(cluster: PodlifeProcess, ns: str, app: str, count: int) -> list[dict[str, Any]]:
    """The pods of ``app`` when there are ``count``, all ready (else none: keep waiting)."""
    found = pods(cluster, ns, app)
    ok = len(found) == count and all(pod_control.is_ready(p) for p in found)
    return found if ok else []


def status_of(cluster: PodlifeProcess, ns: str, kind: str, name: str) -> dict[str, Any]:
    return cluster.kubectl_json("get", kind, name, "-n", ns).get("status") or {}


def owner_uids(p: dict[str, Any]) -> list[str]:
    return [ref["uid"] for ref in p["metadata"].get("ownerReferences") or []]


def events(cluster: PodlifeProcess, ns: str, reason: str) -> list[dict[str, Any]]:
    return [e for e in cluster.kubectl_json("get", "events", "-n", ns)["items"] if e["reason"] == reason]


def list_version(cluster: PodlifeProcess, ns: str) -> str:
    """The resourceVersion of a list of the namespace's pods (kubectl's lists carry none)."""
    code, listed = cluster.http("GET", f"/api/v1/namespaces/{ns}/pods")
    assert code == 200
    return str(listed["metadata"]["resourceVersion"])


def pod_events_since(cluster: PodlifeProcess, ns: str, app: str, since: str) -> list[dict[str, Any]]:
    """Every watch event of the app's pods after ``since``, replayed (the watch ends after a second)."""
    return cluster.watch_events(f"/api/v1/namespaces/{ns}/pods?watch=1&labelSelector=app%3D{app}"
                                f"&resourceVersion={since}&timeoutSeconds=1")


def test_replica_set_keeps_its_pods_adopts_and_scales(cluster: PodlifeProcess) -> None:
    ns = namespace(cluster, "keep")
    create(cluster, ns, replica_set("web", 5))
    first = wait_for(lambda: running(cluster, ns, "web", 5), 60, what="5 ready pods")
    rs = cluster.kubectl_json("get", "rs", "web", "-n", ns)
    uid = rs["metadata"]["uid"]
    assert all(owner_uids(p) == [uid] for p in first)
    assert all(p["metadata"]["generateName"] == "web-" for p in first)
    ref = first[0]["metadata"]["ownerReferences"][0]
    assert ref["controller"] is True and ref["blockOwnerDeletion"] is True and ref["kind"] == "ReplicaSet"
    wait_for(lambda: status_of(cluster, ns, "rs", "web") == {"replicas": 5, "fullyLabeledReplicas": 5, "readyReplicas": 5,
                                                             "availableReplicas": 5, "terminatingReplicas": 0,
                                                             "observedGeneration": 1},
             30, what="the status to count 5 ready and available pods")
    assert len(events(cluster, ns, "SuccessfulCreate")) >= 5

    # an orphan that matches is adopted; it cannot be scheduled, so it is the surplus deleted
    orphan = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "orphan", "labels": {"app": "web"}},
              "spec": {"nodeSelector": {"no-such": "node"}, "terminationGracePeriodSeconds": 0,
                       "containers": [{"name": "c", "image": "nginx:1.27"}]}}
    since = list_version(cluster, ns)
    create(cluster, ns, orphan)
    wait_for(lambda: any(e["message"] == "Deleted pod: orphan" for e in events(cluster, ns, "SuccessfulDelete")), 30,
             what="the adopted orphan to be deleted as the surplus")
    wait_for(lambda: cluster.kubectl("get", "pod", "orphan", "-n", ns, check=False).returncode != 0, 30,
             what="the orphan to go")
    versions = [e["object"] for e in pod_events_since(cluster, ns, "web", since) if e["object"]["metadata"]["name"] == "orphan"]
    adopted = [v for v in versions if owner_uids(v) == [uid]]
    assert not owner_uids(versions[0]) and adopted, "the orphan was adopted (its ownerReferences set) before its deletion"
    assert adopted[0]["metadata"]["ownerReferences"][0]["controller"] is True
    assert {p["metadata"]["name"] for p in pods(cluster, ns, "web")} == {p["metadata"]["name"] for p in first}

    cluster.kubectl("scale", "rs", "web", "-n", ns, "--replicas=2")
    wait_for(lambda: running(cluster, ns, "web", 2), 30, what="the scale-down to 2")
    wait_for(lambda: status_of(cluster, ns, "rs", "web").get("observedGeneration") == 2
             and status_of(cluster, ns, "rs", "web").get("replicas") == 2, 30, what="status of generation 2")

    victim = pods(cluster, ns, "web")[0]["metadata"]["name"]
    cluster.kubectl("delete", "pod", victim, "-n", ns, "--wait=false")
    def replaced_pods() -> list[dict[str, Any]]:
        found = running(cluster, ns, "web", 2)
        return found if victim not in {p["metadata"]["name"] for p in found} else []

    replaced = wait_for(replaced_pods, 30, what="a replacement pod")
    assert all(owner_uids(p) == [uid] for p in replaced)


def test_relabelled_pod_is_released_and_replaced(cluster: PodlifeProcess) -> None:
    ns = namespace(cluster, "release")
    create(cluster, ns, replica_set("api", 2))
    first = wait_for(lambda: running(cluster, ns, "api", 2), 60, what="2 ready pods")
    name = first[0]["metadata"]["name"]
    cluster.kubectl("label", "pod", name, "-n", ns, "app=debug", "--overwrite")
    wait_for(lambda: not cluster.kubectl_json("get", "pod", name, "-n", ns)["metadata"].get("ownerReferences"), 30,
             what="the relabelled pod to be released")
    now = wait_for(lambda: running(cluster, ns, "api", 2), 30, what="a replacement for the released pod")
    assert name not in {p["metadata"]["name"] for p in now}


def test_terminating_pod_is_replaced_and_counted(cluster: PodlifeProcess) -> None:
    ns = namespace(cluster, "terminating")
    create(cluster, ns, replica_set("held", 2))
    first = wait_for(lambda: running(cluster, ns, "held", 2), 60, what="2 ready pods")
    name = first[0]["metadata"]["name"]
    cluster.kubectl("patch", "pod", name, "-n", ns, "-p", '{"metadata": {"finalizers": ["example.com/hold"]}}')
    cluster.kubectl("delete", "pod", name, "-n", ns, "--wait=false")
    wait_for(lambda: running(cluster, ns, "held", 2), 30, what="a replacement while the old pod terminates")
    wait_for(lambda: (s := status_of(cluster, ns, "rs", "held")).get("terminatingReplicas") == 1 and s.get("replicas") == 2,
             30, what="terminatingReplicas 1 beside 2 replicas")
    cluster.kubectl("patch", "pod", name, "-n", ns, "--type=merge", "-p", '{"metadata": {"finalizers": null}}')
    wait_for(lambda: status_of(cluster, ns, "rs", "held").get("terminatingReplicas") == 0, 30,
             what="terminatingReplicas back to 0 once the pod is gone")


def test_scaling_up_never_creates_more_than_asked(cluster: PodlifeProcess) -> None:
    ns = namespace(cluster, "burst")
    create(cluster, ns, replica_set("many", 1))
    wait_for(lambda: running(cluster, ns, "many", 1), 60, what="1 ready pod")
    since = list_version(cluster, ns)
    cluster.kubectl("scale", "rs", "many", "-n", ns, "--replicas=30")
    wait_for(lambda: running(cluster, ns, "many", 30), 90, what="30 ready pods")
    wait_for(lambda: status_of(cluster, ns, "rs", "many").get("availableReplicas") == 30, 30, what="30 available")
    # every pod event since the scale, replayed: the number of pods never went above 30
    watched = pod_events_since(cluster, ns, "many", since)
    alive: set[str] = set()
    added: set[str] = set()
    most = 1
    for event in watched:
        name = event["object"]["metadata"]["name"]
        if event["type"] == "ADDED":
            alive.add(name)
            added.add(name)
        elif event["type"] == "DELETED":
            alive.discard(name)
        most = max(most, len(alive) + 1)  # + the pod from before the scale
    assert len(added) == 29 and most == 30
    assert not events(cluster, ns, "SuccessfulDelete")


def test_quota_refusal_is_a_replica_failure(cluster: PodlifeProcess) -> None:
    ns = namespace(cluster, "quota")
    cluster.kubectl("create", "quota", "two", "-n", ns, "--hard=pods=2")
    create(cluster, ns, replica_set("q", 3))
    wait_for(lambda: running(cluster, ns, "q", 2), 60, what="the 2 pods the quota allows")
    def replica_failure() -> dict[str, Any]:
        return next((c for c in status_of(cluster, ns, "rs", "q").get("conditions") or [] if c["type"] == "ReplicaFailure"), {})

    failure = wait_for(replica_failure, 30, what="the ReplicaFailure condition")
    assert failure["status"] == "True" and failure["reason"] == "FailedCreate" and "exceeded quota" in failure["message"]
    failed = wait_for(lambda: events(cluster, ns, "FailedCreate"), 30, what="a FailedCreate event")
    assert failed[0]["type"] == "Warning" and failed[0]["message"].startswith("Error creating: ")
    assert "exceeded quota" in failed[0]["message"]
    assert len(pods(cluster, ns, "q")) == 2

    cluster.kubectl("patch", "quota", "two", "-n", ns, "--type=merge", "-p", '{"spec": {"hard": {"pods": "3"}}}')
    wait_for(lambda: running(cluster, ns, "q", 3), 60, what="the third pod once the quota allows it")
    wait_for(lambda: not status_of(cluster, ns, "rs", "q").get("conditions"), 30, what="the condition to be removed")


def test_min_ready_seconds_delays_availability(cluster: PodlifeProcess) -> None:
    ns = namespace(cluster, "minready")
    create(cluster, ns, replica_set("slow", 2, min_ready=6))
    def all_ready() -> dict[str, Any]:
        status = status_of(cluster, ns, "rs", "slow")
        return status if status.get("readyReplicas") == 2 else {}

    lagging = wait_for(all_ready, 60, what="2 ready replicas")
    assert lagging.get("availableReplicas", 0) < 2
    wait_for(lambda: status_of(cluster, ns, "rs", "slow").get("availableReplicas") == 2, 30,
             what="the replicas to become available after minReadySeconds")


def test_deleting_a_replica_set_deletes_its_pods(cluster: PodlifeProcess) -> None:
    ns = namespace(cluster, "cascade")
    create(cluster, ns, replica_set("gone", 3))
    wait_for(lambda: running(cluster, ns, "gone", 3), 60, what="3 ready pods")
    cluster.kubectl("delete", "rs", "gone", "-n", ns, "--wait=false")
    wait_for(lambda: not cluster.kubectl_json("get", "pods", "-n", ns)["items"], 60, what="the garbage collector to delete the pods")


def test_a_replica_set_being_deleted_makes_no_pods(cluster: PodlifeProcess) -> None:
    ns = namespace(cluster, "deleting")
    manifest = replica_set("dying", 2)
    manifest["metadata"]["finalizers"] = ["example.com/hold"]
    create(cluster, ns, manifest)
    first = wait_for(lambda: running(cluster, ns, "dying", 2), 60, what="2 ready pods")
    cluster.kubectl("delete", "rs", "dying", "-n", ns, "--wait=false")
    wait_for(lambda: cluster.kubectl_json("get", "rs", "dying", "-n", ns)["metadata"].get("deletionTimestamp"), 30,
             what="the ReplicaSet to be marked for deletion")
    cluster.kubectl("delete", "pod", first[0]["metadata"]["name"], "-n", ns, "--wait=false")
    # the status still follows the pods; the sync that wrote it would have created the replacement first
    wait_for(lambda: status_of(cluster, ns, "rs", "dying").get("replicas") == 1, 30, what="the status to count 1 pod")
    assert [p["metadata"]["name"] for p in pods(cluster, ns, "dying")] == [first[1]["metadata"]["name"]]
    assert len(events(cluster, ns, "SuccessfulCreate")) == 2
    cluster.kubectl("patch", "rs", "dying", "-n", ns, "--type=merge", "-p", '{"metadata": {"finalizers": null}}')


def test_replication_controller(cluster: PodlifeProcess) -> None:
    ns = namespace(cluster, "rc")
    rc = {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "legacy"},
          "spec": {"replicas": 3, "template": template("legacy")}}
    create(cluster, ns, rc)
    found = wait_for(lambda: running(cluster, ns, "legacy", 3), 60, what="3 ready pods of the RC")
    ref = found[0]["metadata"]["ownerReferences"][0]
    assert ref["kind"] == "ReplicationController" and ref["apiVersion"] == "v1" and ref["controller"] is True
    wait_for(lambda: status_of(cluster, ns, "rc", "legacy") == {"replicas": 3, "fullyLabeledReplicas": 3, "readyReplicas": 3,
                                                                "availableReplicas": 3, "observedGeneration": 1},
             30, what="the RC's status")
    cluster.kubectl("scale", "rc", "legacy", "-n", ns, "--replicas=1")
    wait_for(lambda: running(cluster, ns, "legacy", 1), 30, what="the RC scaled to 1")
    wait_for(lambda: status_of(cluster, ns, "rc", "legacy").get("replicas") == 1, 30, what="the RC status of 1 replica")
