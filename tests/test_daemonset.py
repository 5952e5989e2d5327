"""The DaemonSet controller through the real server and kubectl, on simulated nodes (issue 14).

One pod per eligible node (nodeSelector, taints), following nodes as they come, go and
change; extra and failed pods replaced; RollingUpdate and OnDelete; ``kubectl rollout
status|history|undo``; the status counters and events.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .cluster_harness import PodlifeProcess, require_tool, wait_for

pytestmark = pytest.mark.e2e

SIM_NODES = ["sim-node-0", "sim-node-1", "sim-node-2"]


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    proc = PodlifeProcess(tmp_path_factory.mktemp("daemonset") / "data", "--nodes", "0", "--sim-nodes", "3",
                          kubectl=require_tool("kubectl")).start()
    try:
        yield proc
    finally:
        proc.stop()


def make_ds(cluster: PodlifeProcess, name: str, *, image: str = "nginx:1.27", strategy: dict | None = None,
            cpu: str | None = None, min_ready: int = 0, **pod_spec: Any) -> None:
    container: dict[str, Any] = {"name": "app", "image": image}
    if cpu:
        container["resources"] = {"requests": {"cpu": cpu}}
    manifest: dict[str, Any] = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name},
                "spec": {"selector": {"matchLabels": {"app": name}},
                         "template": {"metadata": {"labels": {"app": name}},
                                      "spec": {"terminationGracePeriodSeconds": 1,
                                               "containers": [container], **pod_spec}}}}
    if strategy is not None:
        manifest["spec"]["updateStrategy"] = strategy
    if min_ready:
        manifest["spec"]["minReadySeconds"] = min_ready
    cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))


def delete_ds(cluster: PodlifeProcess, name: str) -> None:
    cluster.kubectl("delete", "ds", name, "--wait=false", check=False)


def pods_of(cluster: PodlifeProcess, name: str) -> list[dict]:
    return cluster.kubectl_json("get", "pods", "-l", f"app={name}")["items"]


def live(pods: list[dict]) -> list[dict]:
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def target(pod: dict) -> str:
    """The pod's node, or the one its node affinity pins it to."""
    if pod["spec"].get("nodeName"):
        return pod["spec"]["nodeName"]
    terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    return terms[0]["matchFields"][0]["values"][0]


def running_on(cluster: PodlifeProcess, name: str, nodes: list[str]) -> list[dict] | None:
    """The DaemonSet's pods when exactly one runs (Running and bound) on each of ``nodes`` and none elsewhere."""
    pods = live(pods_of(cluster, name))
    placed = sorted(p["spec"].get("nodeName") or "" for p in pods)
    if placed != sorted(nodes) or any(p["status"].get("phase") != "Running" for p in pods):
        return None
    return pods


def wait_running(cluster: PodlifeProcess, name: str, nodes: list[str], what: str, timeout: float = 60,
                 also: Callable[[list[dict]], bool] = lambda _pods: True) -> list[dict]:
    """Wait for :func:`running_on` (and ``also`` of its pods); the pods."""
    def ready() -> list[dict] | None:
        pods = running_on(cluster, name, nodes)
        return pods if pods is not None and also(pods) else None

    pods = wait_for(ready, timeout, what=what)
    assert pods is not None
    return pods


def names(pods: list[dict]) -> set[str]:
    return {p["metadata"]["name"] for p in pods}


def images(pods: list[dict]) -> set[str]:
    return {p["spec"]["containers"][0]["image"] for p in pods}


def status(cluster: PodlifeProcess, name: str) -> dict:
    return cluster.kubectl_json("get", "ds", name).get("status") or {}


def status_is(cluster: PodlifeProcess, name: str, **expected: int) -> bool:
    current = status(cluster, name)
    return all(current.get(k, 0) == v for k, v in expected.items())


def test_one_pod_per_node_with_status_and_events(sim: PodlifeProcess) -> None:
    make_ds(sim, "every")
    try:
        pods = wait_running(sim, "every", SIM_NODES, "one running pod per node", 60)
        pod = pods[0]
        meta, spec = pod["metadata"], pod["spec"]
        assert meta["generateName"] == "every-"
        assert set(meta["labels"]) == {"app", "controller-revision-hash", "pod-template-generation"}
        assert meta["ownerReferences"][0]["kind"] == "DaemonSet" and meta["ownerReferences"][0]["controller"] is True
        terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        assert terms == [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [spec["nodeName"]]}]}]
        tolerated = {(t["key"], t["effect"]) for t in spec["tolerations"]}
        assert {("node.kubernetes.io/not-ready", "NoExecute"), ("node.kubernetes.io/unreachable", "NoExecute"),
                ("node.kubernetes.io/unschedulable", "NoSchedule"),
                ("node.kubernetes.io/disk-pressure", "NoSchedule")} <= tolerated
        wait_for(lambda: status_is(sim, "every", desiredNumberScheduled=3, currentNumberScheduled=3, numberReady=3,
                                   updatedNumberScheduled=3, numberAvailable=3, numberMisscheduled=0,
                                   numberUnavailable=0, observedGeneration=1), 30, what="status counters")
        revisions = sim.kubectl_json("get", "controllerrevisions", "-l", "app=every")["items"]
        assert len(revisions) == 1 and revisions[0]["revision"] == 1
        assert revisions[0]["metadata"]["labels"]["controller-revision-hash"] == meta["labels"]["controller-revision-hash"]
        assert revisions[0]["data"]["spec"]["template"]["$patch"] == "replace"
        events = sim.kubectl_json("get", "events", "--field-selector", "involvedObject.name=every")["items"]
        created = {e["message"] for e in events if e["reason"] == "SuccessfulCreate"}
        assert {f"Created pod: {p['metadata']['name']}" for p in pods} <= created
        assert "successfully rolled out" in sim.kubectl("rollout", "status", "ds/every", "--timeout=30s").stdout
    finally:
        delete_ds(sim, "every")


def test_extra_and_failed_pods_are_replaced(sim: PodlifeProcess) -> None:
    make_ds(sim, "lone")
    try:
        pods = wait_running(sim, "lone", SIM_NODES, "one running pod per node", 60)
        on_zero = next(p for p in pods if p["spec"]["nodeName"] == "sim-node-0")
        # an orphan matching the selector on a node that has a pod: adopted, then deleted (the oldest stays;
        # creation times count in seconds, ties go by name, which this one loses to any generated name)
        extra = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "lone-zzzzzz-extra", "labels": {"app": "lone"}},
                 "spec": {"nodeName": "sim-node-0", "terminationGracePeriodSeconds": 1,
                          "containers": [{"name": "app", "image": "nginx:1.27"}]}}
        sim.kubectl("create", "-f", "-", input=json.dumps(extra))
        wait_for(lambda: "lone-zzzzzz-extra" not in {p["metadata"]["name"] for p in live(pods_of(sim, "lone"))}, 30,
                 what="the extra pod deleted")
        assert on_zero["metadata"]["name"] in {p["metadata"]["name"] for p in pods_of(sim, "lone")}
        # a failed pod is deleted and replaced
        failed = next(p for p in pods if p["spec"]["nodeName"] == "sim-node-1")["metadata"]["name"]
        sim.kubectl("patch", "pod", failed, "--subresource=status", "--type=merge", "-p", '{"status":{"phase":"Failed"}}')
        replaced = wait_running(sim, "lone", SIM_NODES, "the failed pod replaced", 30,
                                also=lambda now: failed not in names(now))
        assert len(replaced) == 3
        events = sim.kubectl_json("get", "events", "--field-selector", "involvedObject.name=lone")["items"]
        assert f"Found failed daemon pod default/{failed} on node sim-node-1, will try to kill it" in \
            {e["message"] for e in events if e["reason"] == "FailedDaemonPod" and e["type"] == "Warning"}
        assert f"Deleted pod: {failed}" in {e["message"] for e in events if e["reason"] == "SuccessfulDelete"}
    finally:
        delete_ds(sim, "lone")


def test_node_selector_follows_node_labels(sim: PodlifeProcess) -> None:
    make_ds(sim, "picky", nodeSelector={"daemon-test": "yes"})
    try:
        wait_for(lambda: status_is(sim, "picky", desiredNumberScheduled=0, observedGeneration=1), 30,
                 what="no eligible node")
        assert pods_of(sim, "picky") == []
        sim.kubectl("label", "node", "sim-node-1", "daemon-test=yes")
        wait_running(sim, "picky", ["sim-node-1"], "a pod on the labelled node", 30)
        sim.kubectl("label", "node", "sim-node-2", "daemon-test=yes")
        wait_running(sim, "picky", ["sim-node-1", "sim-node-2"], "a pod on the second node", 30)
        sim.kubectl("label", "node", "sim-node-1", "daemon-test-")
        wait_running(sim, "picky", ["sim-node-2"], "the pod gone from the unlabelled node", 30)
        wait_for(lambda: status_is(sim, "picky", desiredNumberScheduled=1, currentNumberScheduled=1,
                                   numberMisscheduled=0, numberReady=1), 30, what="status after the label moves")
    finally:
        delete_ds(sim, "picky")
        for node in SIM_NODES[1:]:
            sim.kubectl("label", "node", node, "daemon-test-", check=False)


def test_no_schedule_taint_keeps_new_pods_off_unless_tolerated(sim: PodlifeProcess) -> None:
    sim.kubectl("taint", "node", "sim-node-0", "daemon-test=x:NoSchedule")
    try:
        make_ds(sim, "shy")
        make_ds(sim, "bold", tolerations=[{"key": "daemon-test", "operator": "Exists", "effect": "NoSchedule"}])
        wait_running(sim, "bold", SIM_NODES, "the tolerating DaemonSet on every node", 60)
        wait_running(sim, "shy", SIM_NODES[1:], "the other off the tainted node", 60)
        wait_for(lambda: status_is(sim, "shy", desiredNumberScheduled=2, currentNumberScheduled=2), 30,
                 what="the tainted node not desired")
        sim.kubectl("taint", "node", "sim-node-0", "daemon-test-")
        wait_running(sim, "shy", SIM_NODES, "a pod once the taint is gone", 30)
    finally:
        sim.kubectl("taint", "node", "sim-node-0", "daemon-test-", check=False)
        delete_ds(sim, "shy")
        delete_ds(sim, "bold")


def test_nodes_coming_and_going(sim: PodlifeProcess) -> None:
    make_ds(sim, "follow", tolerations=[{"operator": "Exists"}], cpu="10m")
    own = sim.data_dir / "kubeconfigs" / "node-simulator.conf"
    extra = subprocess.Popen([sys.executable, "-m", "podlife.cli", "sim", "--kubeconfig", str(own),
                              "--nodes", "1", "--name-prefix", "extra"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_running(sim, "follow", [*SIM_NODES, "extra-0"], "a pod on the added node", 60)
        # a node nothing can schedule onto (no allocatable): its pod stays unscheduled, pinned to it
        sim.kubectl("create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "Node",
                                                           "metadata": {"name": "bare-node"}}))
        pending = wait_for(lambda: [p for p in live(pods_of(sim, "follow")) if target(p) == "bare-node"], 30,
                           what="a pod for the bare node")
        assert len(pending) == 1
        wait_for(lambda: status_is(sim, "follow", desiredNumberScheduled=5), 30, what="five nodes desired")
        sim.kubectl("delete", "node", "bare-node")
        wait_for(lambda: not [p for p in live(pods_of(sim, "follow")) if target(p) == "bare-node"], 30,
                 what="the unscheduled pod of the deleted node removed")
        wait_for(lambda: status_is(sim, "follow", desiredNumberScheduled=4), 30, what="four nodes desired")
    finally:
        extra.send_signal(signal.SIGTERM)
        extra.wait(30)
        delete_ds(sim, "follow")
        sim.kubectl("delete", "node", "extra-0", "bare-node", "--ignore-not-found", "--wait=false", check=False)


def test_rolling_update_history_and_undo(sim: PodlifeProcess) -> None:
    make_ds(sim, "roll", image="nginx:1.27")
    try:
        first = wait_running(sim, "roll", SIM_NODES, "the first revision's pods", 60)
        old_hash = first[0]["metadata"]["labels"]["controller-revision-hash"]
        sim.kubectl("annotate", "ds", "roll", "kubernetes.io/change-cause=to 1.28")
        sim.kubectl("set", "image", "ds/roll", "app=nginx:1.28")
        out = sim.kubectl("rollout", "status", "ds/roll", "--timeout=60s", timeout=90).stdout
        assert 'daemon set "roll" successfully rolled out' in out
        pods = wait_running(sim, "roll", SIM_NODES, "the new pods", 30)
        assert {p["spec"]["containers"][0]["image"] for p in pods} == {"nginx:1.28"}
        assert old_hash not in {p["metadata"]["labels"]["controller-revision-hash"] for p in pods}
        assert status_is(sim, "roll", updatedNumberScheduled=3, numberAvailable=3, desiredNumberScheduled=3)
        history = sim.kubectl("rollout", "history", "ds/roll").stdout
        assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2"]
        assert "to 1.28" in history
        assert "nginx:1.27" in sim.kubectl("rollout", "history", "ds/roll", "--revision=1").stdout

        assert "rolled back" in sim.kubectl("rollout", "undo", "ds/roll").stdout
        sim.kubectl("rollout", "status", "ds/roll", "--timeout=60s", timeout=90)
        back = wait_running(sim, "roll", SIM_NODES, "the old image back", 30,
                            also=lambda now: images(now) == {"nginx:1.27"})
        assert {p["metadata"]["labels"]["controller-revision-hash"] for p in back} == {old_hash}
        revisions = {r["metadata"]["labels"]["controller-revision-hash"]: r["revision"]
                     for r in sim.kubectl_json("get", "controllerrevisions", "-l", "app=roll")["items"]}
        assert revisions[old_hash] == 3 and sorted(revisions.values()) == [2, 3]
    finally:
        delete_ds(sim, "roll")


def test_surge_starts_the_new_pod_before_the_old_goes(sim: PodlifeProcess) -> None:
    make_ds(sim, "surge", image="nginx:1.27", min_ready=2,
            strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})
    try:
        wait_running(sim, "surge", SIM_NODES, "the first pods", 60)
        wait_for(lambda: status_is(sim, "surge", numberAvailable=3), 30, what="available after minReadySeconds")
        sim.kubectl("set", "image", "ds/surge", "app=nginx:1.28")
        # the new pod must be available (ready for 2s) before its node's old pod goes: four pods meanwhile
        both = wait_for(lambda: (lambda pods: pods if len(pods) == 4 else None)(live(pods_of(sim, "surge"))), 30,
                        what="a surge pod beside an old one")
        assert both is not None
        assert images(both) == {"nginx:1.27", "nginx:1.28"} and len({p["spec"].get("nodeName") for p in both}) == 3
        sim.kubectl("rollout", "status", "ds/surge", "--timeout=60s", timeout=90)
        pods = wait_running(sim, "surge", SIM_NODES, "the new pods", 30)
        assert images(pods) == {"nginx:1.28"}
        assert status_is(sim, "surge", updatedNumberScheduled=3, numberAvailable=3)
    finally:
        delete_ds(sim, "surge")


def test_on_delete_replaces_only_deleted_pods(sim: PodlifeProcess) -> None:
    make_ds(sim, "manual", image="nginx:1.27", strategy={"type": "OnDelete"})
    try:
        wait_running(sim, "manual", SIM_NODES, "the first pods", 60)
        sim.kubectl("set", "image", "ds/manual", "app=nginx:1.28")
        wait_for(lambda: status_is(sim, "manual", observedGeneration=2, updatedNumberScheduled=0,
                                   desiredNumberScheduled=3), 30, what="the change observed, no pod updated")
        pods = running_on(sim, "manual", SIM_NODES)
        assert pods is not None and {p["spec"]["containers"][0]["image"] for p in pods} == {"nginx:1.27"}
        victim = next(p for p in pods if p["spec"]["nodeName"] == "sim-node-2")["metadata"]["name"]
        sim.kubectl("delete", "pod", victim)

        def replaced() -> dict | None:
            now = running_on(sim, "manual", SIM_NODES)
            if not now or victim in {p["metadata"]["name"] for p in now}:
                return None
            return {p["spec"]["nodeName"]: p["spec"]["containers"][0]["image"] for p in now}

        images = wait_for(replaced, 30, what="the deleted pod replaced")
        assert images == {"sim-node-0": "nginx:1.27", "sim-node-1": "nginx:1.27", "sim-node-2": "nginx:1.28"}
        wait_for(lambda: status_is(sim, "manual", updatedNumberScheduled=1), 30, what="one pod updated")
    finally:
        delete_ds(sim, "manual")


def test_hundreds_of_nodes_beyond_one_burst(tmp_path: Path) -> None:
    """300 nodes: more than one sync's burst (250 creations), so expectations must carry the rest over."""
    big = PodlifeProcess(tmp_path / "data", "--nodes", "0", "--sim-nodes", "300", kubectl=require_tool("kubectl"))
    big.start()
    try:
        wait_for(lambda: len(big.kubectl_json("get", "nodes")["items"]) == 300, 120, interval=0.5,
                 what="300 simulated nodes registered")
        make_ds(big, "wide")
        wait_for(lambda: status_is(big, "wide", desiredNumberScheduled=300, currentNumberScheduled=300,
                                   numberReady=300, updatedNumberScheduled=300, numberAvailable=300), 180, interval=0.5,
                 what="300 daemon pods ready")
        pods = live(pods_of(big, "wide"))
        assert len(pods) == 300 and len({p["spec"]["nodeName"] for p in pods}) == 300
    finally:
        big.stop()
