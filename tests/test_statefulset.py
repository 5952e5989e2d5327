"""The StatefulSet controller end to end: a real ``podlife up`` on simulated nodes, driven with kubectl.

Ordered creation (observed on a watch: each pod is created only after its predecessor
is Ready), identity (hostname, subdomain, labels) and claims, scale down from the
highest ordinal, Parallel management with ``ordinals.start`` and claim retention on
scale down, rolling update with a partition, ``rollout status``/``history``/``undo``,
and cascading deletion.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster_harness import PodlifeProcess, require_tool, wait_for

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    proc = PodlifeProcess(tmp_path_factory.mktemp("sts") / "data", "--nodes", "0", "--sim-nodes", "3",
                          kubectl=require_tool("kubectl"))
    try:
        yield proc.start()
    finally:
        proc.stop()


def manifest(name: str, replicas: int, *, image: str = "nginx:1.25", claims: bool = True, **spec: Any) -> str:
    body: Obj = {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
        "spec": {"serviceName": f"{name}-svc", "replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"terminationGracePeriodSeconds": 0,
                                       "containers": [{"name": "main", "image": image}]}}},
    }
    if claims:
        body["spec"]["volumeClaimTemplates"] = [{"metadata": {"name": "data"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]
        body["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    body["spec"].update(spec)
    return json.dumps(body)


def namespace(proc: PodlifeProcess, name: str) -> str:
    proc.kubectl("create", "namespace", name)
    return name


def pods(proc: PodlifeProcess, ns: str, app: str) -> dict[str, Obj]:
    listed = proc.kubectl_json("get", "pods", "-n", ns, "-l", f"app={app}")
    return {p["metadata"]["name"]: p for p in listed["items"]}


def is_ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in (pod.get("status") or {}).get("conditions") or [])


def wait_ready(proc: PodlifeProcess, ns: str, app: str, names: list[str], timeout: float = 60) -> dict[str, Obj]:
    def ready() -> dict[str, Obj]:
        found = pods(proc, ns, app)
        live = {n: p for n, p in found.items() if not p["metadata"].get("deletionTimestamp")}
        return found if sorted(live) == sorted(names) and len(found) == len(names) and all(map(is_ready, live.values())) else {}
    return wait_for(ready, timeout, 0.2, what=f"pods {names} ready")


def pods_rv(proc: PodlifeProcess, ns: str) -> str:
    """The pod list's resourceVersion (from the API: kubectl's ``-o json`` list has none)."""
    status, body = proc.http("GET", f"/api/v1/namespaces/{ns}/pods")
    assert status == 200, body
    version = str(body["metadata"]["resourceVersion"])
    assert version
    return version


def pod_events(proc: PodlifeProcess, ns: str, since: str) -> list[Obj]:
    """Every pod change in ``ns`` after ``since``, in order (a watch from that version that ends by itself)."""
    events = proc.watch_events(f"/api/v1/namespaces/{ns}/pods?watch=1&resourceVersion={since}&timeoutSeconds=1")
    return [e for e in events if e.get("type") != "BOOKMARK"]


def set_events(proc: PodlifeProcess, ns: str, name: str) -> list[tuple[str, str]]:
    listed = proc.kubectl_json("get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name}")
    return [(e["reason"], e["message"]) for e in listed["items"]]


def test_ordered_creation_identity_and_claims(sim: PodlifeProcess) -> None:
    ns = namespace(sim, "ordered")
    since = pods_rv(sim, ns)
    sim.kubectl("apply", "-n", ns, "-f", "-", input=manifest("web", 3))
    found = wait_ready(sim, ns, "web", ["web-0", "web-1", "web-2"])

    # creation order, seen on the watch: web-N appears only once web-(N-1) is Ready
    last: dict[str, Obj] = {}
    added: list[str] = []
    for event in pod_events(sim, ns, since):
        pod = event["object"]
        name = pod["metadata"]["name"]
        if event["type"] == "ADDED":
            added.append(name)
            ordinal = int(name.rsplit("-", 1)[1])
            if ordinal > 0:
                before = last.get(f"web-{ordinal - 1}")
                assert before is not None and is_ready(before), f"{name} created before web-{ordinal - 1} was Ready"
        last[name] = pod
    assert added == ["web-0", "web-1", "web-2"]

    for ordinal, (name, pod) in enumerate(sorted(found.items())):
        assert pod["spec"]["hostname"] == name and pod["spec"]["subdomain"] == "web-svc"
        labels = pod["metadata"]["labels"]
        assert labels["statefulset.kubernetes.io/pod-name"] == name
        assert labels["apps.kubernetes.io/pod-index"] == str(ordinal)
        assert labels["controller-revision-hash"].startswith("web-")
        volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "data")
        assert volume["persistentVolumeClaim"]["claimName"] == f"data-{name}"
        ref = pod["metadata"]["ownerReferences"][0]
        assert (ref["kind"], ref["name"], ref["controller"]) == ("StatefulSet", "web", True)
    claims = sim.kubectl_json("get", "pvc", "-n", ns)["items"]
    assert sorted(c["metadata"]["name"] for c in claims) == ["data-web-0", "data-web-1", "data-web-2"]
    assert all(c["metadata"]["labels"] == {"app": "web"} for c in claims)

    status = wait_for(lambda: (s := sim.kubectl_json("get", "sts", "web", "-n", ns)["status"]).get("readyReplicas") == 3 and s,
                      30, 0.2, what="status")
    assert status["replicas"] == 3 and status["currentRevision"] == status["updateRevision"]
    assert status["observedGeneration"] == 1
    def six_events() -> list[tuple[str, str]]:
        events = set_events(sim, ns, "web")
        return events if len(events) >= 6 else []

    events = wait_for(six_events, 30, 0.2, what="the set's events")
    assert ("SuccessfulCreate", "create Pod web-0 in StatefulSet web successful") in events
    assert ("SuccessfulCreate", "create Claim data-web-0 Pod web-0 in StatefulSet web success") in events


def test_failed_pod_recreated_and_scale_down_from_the_highest_ordinal(sim: PodlifeProcess) -> None:
    ns = namespace(sim, "scaledown")
    sim.kubectl("apply", "-n", ns, "-f", "-", input=manifest("web", 3, claims=False))
    found = wait_ready(sim, ns, "web", ["web-0", "web-1", "web-2"])

    # a failed pod is deleted and made again (same name, new uid)
    failed_uid = found["web-1"]["metadata"]["uid"]
    sim.kubectl("patch", "-n", ns, "pod", "web-1", "--subresource=status", "--type=merge", "-p", '{"status":{"phase":"Failed"}}')
    wait_for(lambda: (p := pods(sim, ns, "web").get("web-1")) is not None and p["metadata"]["uid"] != failed_uid
             and is_ready(p), 60, 0.2, what="web-1 made again")
    wait_ready(sim, ns, "web", ["web-0", "web-1", "web-2"])

    since = pods_rv(sim, ns)
    sim.kubectl("scale", "-n", ns, "sts/web", "--replicas=1")
    wait_for(lambda: sorted(pods(sim, ns, "web")) == ["web-0"], 60, 0.2, what="scale down to web-0")
    order = []
    for event in pod_events(sim, ns, since):
        meta = event["object"]["metadata"]
        if event["type"] == "DELETED" or meta.get("deletionTimestamp"):
            order.append((meta["name"], event["type"]))
    first_web1 = order.index(next(o for o in order if o[0] == "web-1"))
    assert ("web-2", "DELETED") in order[:first_web1], f"web-1 deleted before web-2 was gone: {order}"
    assert ("SuccessfulDelete", "delete Pod web-2 in StatefulSet web successful") in set_events(sim, ns, "web")


def test_parallel_ordinals_start_and_claims_deleted_on_scale_down(sim: PodlifeProcess) -> None:
    ns = namespace(sim, "parallel")
    # pods that never turn Ready: OrderedReady would stop at the first; Parallel creates them all
    sts = manifest("db", 3, podManagementPolicy="Parallel", ordinals={"start": 5},
                   persistentVolumeClaimRetentionPolicy={"whenScaled": "Delete", "whenDeleted": "Retain"})
    body = json.loads(sts)
    body["spec"]["template"]["spec"]["readinessGates"] = [{"conditionType": "example.com/never"}]
    sim.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(body))
    wait_for(lambda: sorted(pods(sim, ns, "db")) == ["db-5", "db-6", "db-7"], 60, 0.2, what="db-5..7")
    claim_names = lambda: sorted(c["metadata"]["name"] for c in sim.kubectl_json("get", "pvc", "-n", ns)["items"])  # noqa: E731
    assert claim_names() == ["data-db-5", "data-db-6", "data-db-7"]

    sim.kubectl("scale", "-n", ns, "sts/db", "--replicas=1")
    wait_for(lambda: sorted(pods(sim, ns, "db")) == ["db-5"], 60, 0.2, what="scale down to db-5")
    wait_for(lambda: claim_names() == ["data-db-5"], 60, 0.2, what="claims of the removed ordinals deleted")

    sim.kubectl("delete", "-n", ns, "sts", "db")
    wait_for(lambda: not pods(sim, ns, "db"), 60, 0.2, what="pods deleted with the set")
    assert claim_names() == ["data-db-5"]  # whenDeleted: Retain


def test_rolling_update_partition_rollout_and_undo(sim: PodlifeProcess) -> None:
    ns = namespace(sim, "rolling")
    sim.kubectl("apply", "-n", ns, "-f", "-", input=manifest("web", 3, claims=False))
    wait_ready(sim, ns, "web", ["web-0", "web-1", "web-2"])
    sim.kubectl("rollout", "status", "-n", ns, "sts/web", "--timeout=60s")

    def images() -> dict[str, str]:
        return {n: p["spec"]["containers"][0]["image"] for n, p in pods(sim, ns, "web").items()
                if not p["metadata"].get("deletionTimestamp")}

    sim.kubectl("patch", "-n", ns, "sts/web", "-p", '{"spec":{"updateStrategy":{"rollingUpdate":{"partition":2}}}}')
    sim.kubectl("set", "image", "-n", ns, "sts/web", "main=nginx:1.26")
    wait_for(lambda: images() == {"web-0": "nginx:1.25", "web-1": "nginx:1.25", "web-2": "nginx:1.26"}, 60, 0.2,
             what="web-2 updated")
    out = sim.kubectl("rollout", "status", "-n", ns, "sts/web", "--timeout=60s").stdout
    assert "partitioned roll out complete: 1 new pods have been updated" in out
    status = sim.kubectl_json("get", "sts", "web", "-n", ns)["status"]
    assert status["currentRevision"] != status["updateRevision"] and status["updatedReplicas"] == 1
    assert images()["web-0"] == "nginx:1.25"

    sim.kubectl("patch", "-n", ns, "sts/web", "-p", '{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}')
    sim.kubectl("rollout", "status", "-n", ns, "sts/web", "--timeout=90s")
    wait_for(lambda: set(images().values()) == {"nginx:1.26"} and len(images()) == 3, 60, 0.2, what="all updated")
    status = wait_for(lambda: (s := sim.kubectl_json("get", "sts", "web", "-n", ns)["status"])
                      .get("currentRevision") == s.get("updateRevision") and s, 30, 0.2, what="update complete")
    assert status["currentReplicas"] == status["updatedReplicas"] == 3

    history = sim.kubectl("rollout", "history", "-n", ns, "sts/web").stdout
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2"]
    sim.kubectl("rollout", "undo", "-n", ns, "sts/web")
    wait_for(lambda: set(images().values()) == {"nginx:1.25"} and len(images()) == 3, 90, 0.2, what="rolled back")
    revisions = sim.kubectl_json("get", "controllerrevisions", "-n", ns)["items"]
    numbers = {r["data"]["spec"]["template"]["spec"]["containers"][0]["image"]: r["revision"] for r in revisions}
    assert numbers == {"nginx:1.25": 3, "nginx:1.26": 2}  # the old template renumbered, not copied

    sim.kubectl("delete", "-n", ns, "sts", "web")
    wait_for(lambda: not pods(sim, ns, "web"), 60, 0.2, what="pods deleted with the set")
    wait_for(lambda: not sim.kubectl_json("get", "controllerrevisions", "-n", ns)["items"], 60, 0.2,
             what="revisions deleted with the set")


