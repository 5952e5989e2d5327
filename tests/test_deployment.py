"""The Deployment controller and ``kubectl rollout`` (issue 14), through a real cluster and the real kubectl.

The cluster has simulated nodes only (pods go Running and Ready by themselves) and the
real ReplicaSet controller; each test works in its own namespace. The pure decisions
(fenceposts, proportional scaling, revisions, conditions) are tested without a server in
``tests/test_deployment_logic.py``.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .cluster_harness import PodlifeProcess, require_tool, wait_for

pytestmark = pytest.mark.e2e

REVISION = "deployment.kubernetes.io/revision"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    proc = PodlifeProcess(tmp_path_factory.mktemp("deploy") / "data", "--nodes", "0", "--sim-nodes", "3",
                          kubectl=require_tool("kubectl")).start()
    try:
        yield proc
    finally:
        proc.stop()


def namespace(cluster: PodlifeProcess, name: str) -> str:
    cluster.kubectl("create", "namespace", name)
    return name


def apply(cluster: PodlifeProcess, ns: str, manifest: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(manifest))


def deployment(name: str, replicas: int, *, image: str = "busybox", strategy: dict | None = None,
               **spec: Any) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {"terminationGracePeriodSeconds": 1,
                                "containers": [{"name": "c", "image": image, "command": ["sleep", "3600"]}]}
    pod_spec.update(spec.pop("pod", {}))
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "strategy": strategy or {"type": "RollingUpdate"},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec}, **spec}}


def get(cluster: PodlifeProcess, ns: str, *what: str) -> Any:
    return cluster.kubectl_json("get", *what, "-n", ns)


def replica_sets(cluster: PodlifeProcess, ns: str, app: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = get(cluster, ns, "rs", "-l", f"app={app}")["items"]
    return sorted(items, key=lambda rs: int(rs["metadata"].get("annotations", {}).get(REVISION, "0")))


def sizes(cluster: PodlifeProcess, ns: str, app: str) -> list[int]:
    return [rs["spec"]["replicas"] for rs in replica_sets(cluster, ns, app)]


def condition(cluster: PodlifeProcess, ns: str, name: str, type_: str) -> dict[str, Any]:
    for cond in get(cluster, ns, "deployment", name).get("status", {}).get("conditions") or []:
        if cond["type"] == type_:
            return dict(cond)
    return {}


def rollout_status(cluster: PodlifeProcess, ns: str, name: str, timeout: str = "60s") -> subprocess.CompletedProcess:
    return cluster.kubectl("rollout", "status", f"deployment/{name}", "-n", ns, f"--timeout={timeout}", check=False,
                           timeout=90)


class Watch:
    """``kubectl get -w`` printing one line per change (a jsonpath template) into a file, started by us."""

    def __init__(self, cluster: PodlifeProcess, path: Path, *args: str) -> None:
        self.path = path
        before = cluster.watches_served()
        with open(path, "w") as out:
            self.proc = subprocess.Popen([cluster.kubectl_bin, "get", "-w", *args], stdout=out, stderr=subprocess.DEVNULL,
                                         env=cluster.kubectl_env(), start_new_session=True)
        wait_for(lambda: cluster.watches_served() > before, 30, what="kubectl's watch to start")

    def lines(self) -> list[list[str]]:
        """Stop it (by its pid) and return the complete lines it printed, split on blanks."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)
        text = self.path.read_text()
        complete = text[:text.rfind("\n") + 1]
        return [line.split() for line in complete.splitlines() if line.strip()]


def events(cluster: PodlifeProcess, ns: str, reason: str) -> list[str]:
    return [e["message"] for e in get(cluster, ns, "events")["items"] if e["reason"] == reason]


def test_rolling_update_undo_history_and_restart(sim: PodlifeProcess, tmp_path: Path) -> None:
    ns = namespace(sim, "rolling")
    sim.kubectl("create", "deployment", "web", "--image=busybox", "--replicas=6", "-n", ns, "--", "sleep", "3600")
    done = rollout_status(sim, ns, "web")
    assert done.returncode == 0 and 'deployment "web" successfully rolled out' in done.stdout, done
    [first] = replica_sets(sim, ns, "web")
    hash_ = first["metadata"]["labels"]["pod-template-hash"]
    assert first["metadata"]["name"] == f"web-{hash_}"
    assert first["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": hash_}
    assert first["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
    assert first["metadata"]["annotations"] == {REVISION: "1", "deployment.kubernetes.io/desired-replicas": "6",
                                                "deployment.kubernetes.io/max-replicas": "8"}
    status = get(sim, ns, "deployment", "web")["status"]
    assert {k: status.get(k) for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")} == {
        "replicas": 6, "updatedReplicas": 6, "readyReplicas": 6, "availableReplicas": 6}
    assert condition(sim, ns, "web", "Available")["reason"] == "MinimumReplicasAvailable"
    assert condition(sim, ns, "web", "Progressing")["message"] == f'ReplicaSet "web-{hash_}" has successfully progressed.'
    assert f"Scaled up replica set web-{hash_} to 6" in events(sim, ns, "ScalingReplicaSet")

    # set image: a second ReplicaSet, never more than replicas + maxSurge (25% of 6, up: 2) pods asked for
    watch = Watch(sim, tmp_path / "rs.watch", "rs", "-n", ns, "-o", "jsonpath={.metadata.name} {.spec.replicas}{'\\n'}")
    sim.kubectl("set", "image", "deployment/web", "busybox=nginx", "-n", ns)
    sim.kubectl("annotate", "deployment", "web", "-n", ns, "kubernetes.io/change-cause=to nginx")
    done = rollout_status(sim, ns, "web")
    assert done.returncode == 0, done
    seen: dict[str, int] = {}
    most = 0
    for name, replicas in watch.lines():
        seen[name] = int(replicas)
        most = max(most, sum(seen.values()))
    assert len(seen) == 2 and 6 < most <= 8, seen
    old, new = replica_sets(sim, ns, "web")
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (0, 6)
    assert new["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx"
    wait_for(lambda: replica_sets(sim, ns, "web")[1]["metadata"]["annotations"].get("kubernetes.io/change-cause")
             == "to nginx", 30, what="the change cause copied to the new ReplicaSet")
    assert get(sim, ns, "deployment", "web")["metadata"]["annotations"][REVISION] == "2"
    messages = events(sim, ns, "ScalingReplicaSet")
    assert any(m.startswith(f"Scaled down replica set {old['metadata']['name']} to ") and m.endswith(" from 6")
               for m in messages), messages
    history = sim.kubectl("rollout", "history", "deployment/web", "-n", ns).stdout
    assert [line.split()[:2] for line in history.splitlines()[2:] if line.strip()] == [["1", "<none>"], ["2", "to"]]

    # undo: back to busybox; the old ReplicaSet becomes revision 3 and remembers it was 1
    sim.kubectl("rollout", "undo", "deployment/web", "-n", ns)
    assert rollout_status(sim, ns, "web").returncode == 0
    template = get(sim, ns, "deployment", "web")["spec"]["template"]
    assert template["spec"]["containers"][0]["image"] == "busybox"
    assert "pod-template-hash" not in template["metadata"]["labels"]
    back = {rs["metadata"]["name"]: rs for rs in replica_sets(sim, ns, "web")}[old["metadata"]["name"]]
    assert back["spec"]["replicas"] == 6
    assert back["metadata"]["annotations"][REVISION] == "3"
    assert back["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"
    assert len(replica_sets(sim, ns, "web")) == 2
    skipped = sim.kubectl("rollout", "undo", "deployment/web", "-n", ns, "--to-revision=3").stdout
    assert "skipped rollback" in skipped

    # restart: a new template (restartedAt), so a third ReplicaSet
    sim.kubectl("rollout", "restart", "deployment/web", "-n", ns)
    assert rollout_status(sim, ns, "web").returncode == 0
    latest = replica_sets(sim, ns, "web")[-1]
    assert "kubectl.kubernetes.io/restartedAt" in latest["spec"]["template"]["metadata"]["annotations"]
    assert sizes(sim, ns, "web") == [0, 0, 6]


def test_pause_holds_the_rollout_until_resume(sim: PodlifeProcess) -> None:
    ns = namespace(sim, "pause")
    apply(sim, ns, deployment("app", 3, minReadySeconds=1))
    assert rollout_status(sim, ns, "app").returncode == 0
    assert replica_sets(sim, ns, "app")[0]["spec"]["minReadySeconds"] == 1
    sim.kubectl("rollout", "pause", "deployment/app", "-n", ns)
    wait_for(lambda: condition(sim, ns, "app", "Progressing").get("reason") == "DeploymentPaused", 30,
             what="the DeploymentPaused condition")
    paused = condition(sim, ns, "app", "Progressing")
    assert (paused["status"], paused["message"]) == ("Unknown", "Deployment is paused")
    sim.kubectl("set", "image", "deployment/app", "c=nginx", "-n", ns)
    sim.kubectl("scale", "deployment/app", "--replicas=4", "-n", ns)
    wait_for(lambda: get(sim, ns, "deployment", "app")["status"].get("observedGeneration")
             == get(sim, ns, "deployment", "app")["metadata"]["generation"], 30, what="the paused spec to be observed")
    wait_for(lambda: sizes(sim, ns, "app") == [4], 30, what="the paused deployment to scale, not roll")
    sim.kubectl("rollout", "resume", "deployment/app", "-n", ns)
    assert rollout_status(sim, ns, "app").returncode == 0
    assert sizes(sim, ns, "app") == [0, 4]
    assert condition(sim, ns, "app", "Progressing")["reason"] == "NewReplicaSetAvailable"


def test_scaling_mid_rollout_is_proportional(sim: PodlifeProcess) -> None:
    """Kubernetes' documented case: 10 replicas, maxSurge 3, maxUnavailable 2, a rollout stuck (its pods
    cannot be scheduled) at 8 old and 5 new; scaled to 15, the old ReplicaSet gets 3 more and the new one 2."""
    ns = namespace(sim, "proportional")
    rolling = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}}
    apply(sim, ns, deployment("prop", 10, strategy=rolling))
    assert rollout_status(sim, ns, "prop").returncode == 0
    apply(sim, ns, deployment("prop", 10, strategy=rolling, pod={"nodeSelector": {"no-such": "node"}}))
    wait_for(lambda: sizes(sim, ns, "prop") == [8, 5], 30, what="the rollout to stall at 8 old and 5 new")
    sim.kubectl("scale", "deployment/prop", "--replicas=15", "-n", ns)
    wait_for(lambda: sizes(sim, ns, "prop") == [11, 7], 30, what="the proportional scale to 11 old and 7 new")
    annotations = [rs["metadata"]["annotations"] for rs in replica_sets(sim, ns, "prop")]
    assert all(a["deployment.kubernetes.io/desired-replicas"] == "15" and a["deployment.kubernetes.io/max-replicas"] == "18"
               for a in annotations), annotations


def test_recreate_replaces_all_pods_and_keeps_one_old_revision(sim: PodlifeProcess, tmp_path: Path) -> None:
    ns = namespace(sim, "recreate")
    apply(sim, ns, deployment("rec", 3, strategy={"type": "Recreate"}, revisionHistoryLimit=1))
    assert rollout_status(sim, ns, "rec").returncode == 0
    [first] = replica_sets(sim, ns, "rec")
    watch = Watch(sim, tmp_path / "pods.watch", "pods", "-n", ns, "--output-watch-events",
                  "-o", "jsonpath={.type} {.object.metadata.name} {.object.metadata.labels.pod-template-hash}{'\\n'}")
    apply(sim, ns, deployment("rec", 3, image="nginx", strategy={"type": "Recreate"}, revisionHistoryLimit=1))
    assert rollout_status(sim, ns, "rec").returncode == 0
    old_hash = first["metadata"]["labels"]["pod-template-hash"]
    old_pods: set[str] = set()
    new_pods = 0
    for type_, name, hash_ in watch.lines():
        if hash_ == old_hash and type_ in ("ADDED", "MODIFIED"):
            old_pods.add(name)
        elif hash_ == old_hash and type_ == "DELETED":
            old_pods.discard(name)
        elif type_ == "ADDED":
            new_pods += 1
            assert not old_pods, f"new pod {name} while old ones remained: {old_pods}"
    assert new_pods >= 3
    assert sizes(sim, ns, "rec") == [0, 3]
    apply(sim, ns, deployment("rec", 3, image="redis", strategy={"type": "Recreate"}, revisionHistoryLimit=1))
    assert rollout_status(sim, ns, "rec").returncode == 0
    wait_for(lambda: len(replica_sets(sim, ns, "rec")) == 2, 30, what="revisionHistoryLimit 1: one old ReplicaSet kept")
    assert [rs["metadata"]["annotations"][REVISION] for rs in replica_sets(sim, ns, "rec")] == ["2", "3"]
    assert first["metadata"]["name"] not in {rs["metadata"]["name"] for rs in replica_sets(sim, ns, "rec")}


def test_progress_deadline_exceeded(sim: PodlifeProcess) -> None:
    ns = namespace(sim, "deadline")
    apply(sim, ns, deployment("stuck", 2, progressDeadlineSeconds=2, pod={"nodeSelector": {"no-such": "node"}}))
    failed = rollout_status(sim, ns, "stuck")
    assert failed.returncode != 0 and 'deployment "stuck" exceeded its progress deadline' in failed.stderr, failed
    cond = condition(sim, ns, "stuck", "Progressing")
    [rs] = replica_sets(sim, ns, "stuck")
    assert (cond["status"], cond["reason"], cond["message"]) == (
        "False", "ProgressDeadlineExceeded", f'ReplicaSet "{rs["metadata"]["name"]}" has timed out progressing.')
    assert condition(sim, ns, "stuck", "Available")["reason"] == "MinimumReplicasUnavailable"


def test_an_orphan_replica_set_with_the_template_is_adopted_as_the_new_one(sim: PodlifeProcess) -> None:
    ns = namespace(sim, "adopt")
    template = deployment("adopt", 2)["spec"]["template"]
    orphan = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "adopt-orphan", "labels": {"app": "adopt"}},
              "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "adopt"}}, "template": template}}
    apply(sim, ns, orphan)
    apply(sim, ns, deployment("adopt", 2))
    assert rollout_status(sim, ns, "adopt").returncode == 0
    [rs] = replica_sets(sim, ns, "adopt")
    assert rs["metadata"]["name"] == "adopt-orphan" and rs["spec"]["replicas"] == 2
    [ref] = rs["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["name"], ref["controller"]) == ("Deployment", "adopt", True)
    assert rs["metadata"]["annotations"][REVISION] == "1"
    # deleted (foreground: it waits for its ReplicaSets): nothing new is made meanwhile, everything goes
    sim.kubectl("delete", "deployment", "adopt", "-n", ns, "--cascade=foreground", "--wait=false")
    wait_for(lambda: not get(sim, ns, "deployments")["items"], 30, what="the deployment to be deleted")
    assert replica_sets(sim, ns, "adopt") == []
    wait_for(lambda: not get(sim, ns, "pods", "-l", "app=adopt")["items"], 30, what="the pods to go")


def test_a_name_collision_bumps_collision_count(sim: PodlifeProcess) -> None:
    """Another ReplicaSet already has the name the template's hash gives: the Deployment counts a collision
    (``status.collisionCount``) and its new ReplicaSet gets another hash."""
    from podlife.controllers.history import template_hash

    ns = namespace(sim, "collide")
    apply(sim, ns, deployment("col", 1, paused=True))  # paused from the start: no ReplicaSet yet
    template = get(sim, ns, "deployment", "col")["spec"]["template"]
    taken = f"col-{template_hash(template)}"
    squatter = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": taken, "labels": {"app": "other"}},
                "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "other"}},
                         "template": deployment("other", 0)["spec"]["template"]}}
    apply(sim, ns, squatter)
    assert replica_sets(sim, ns, "col") == []
    sim.kubectl("rollout", "resume", "deployment/col", "-n", ns)
    assert rollout_status(sim, ns, "col").returncode == 0
    assert get(sim, ns, "deployment", "col")["status"]["collisionCount"] == 1
    [rs] = replica_sets(sim, ns, "col")
    assert rs["metadata"]["name"] == f"col-{template_hash(template, 1)}" != taken
    assert rs["metadata"]["labels"]["pod-template-hash"] == template_hash(template, 1)


def test_rolling_update_on_the_local_node(cluster: PodlifeProcess) -> None:
    """The same controller with real (host process) containers: a rollout and a rollback end with running pods."""
    ns = namespace(cluster, "local-rollout")
    apply(cluster, ns, deployment("real", 2))
    assert rollout_status(cluster, ns, "real", "90s").returncode == 0
    cluster.kubectl("set", "env", "deployment/real", "STEP=2", "-n", ns)
    assert rollout_status(cluster, ns, "real", "90s").returncode == 0
    assert sizes(cluster, ns, "real") == [0, 2]
    cluster.kubectl("rollout", "undo", "deployment/real", "-n", ns)
    assert rollout_status(cluster, ns, "real", "90s").returncode == 0
    assert sizes(cluster, ns, "real") == [0, 2]
    pods = get(cluster, ns, "pods", "-l", "app=real")["items"]
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    assert len(live) == 2 and all(p["status"]["phase"] == "Running" for p in live)
    assert all("env" not in p["spec"]["containers"][0] for p in live)
