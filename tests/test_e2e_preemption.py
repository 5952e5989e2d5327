"""Priority and preemption through the real server, kubectl and a simulated node.

A low-priority pod fills the only node; a high-priority pod preempts it (the victim gets
the DisruptionTarget condition and a Preempted event, the preemptor is nominated to the
node, then bound there once the victim is gone); a pod whose class says
``preemptionPolicy: Never`` stays Pending with Kubernetes' message.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator

import pytest

from .cluster_harness import PodlifeProcess, require_tool, running_podlife, wait_for

pytestmark = pytest.mark.e2e

CLASSES = [("e2e-low", 10, "PreemptLowerPriority"), ("e2e-high", 1000, "PreemptLowerPriority"),
           ("e2e-polite", 2000, "Never")]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    with running_podlife(tmp_path_factory.mktemp("preemption") / "data", "--nodes", "0", "--sim-nodes", "1",
                         kubectl=require_tool("kubectl")) as proc:
        for name, value, policy in CLASSES:
            manifest = {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
                        "value": value, "preemptionPolicy": policy}
            proc.kubectl("create", "-f", "-", input=json.dumps(manifest))
        wait_for(lambda: proc.kubectl("get", "nodes", "--no-headers").stdout.count(" Ready") == 1, 60,
                 what="the simulated node to be Ready")
        yield proc


def create_pod(cluster: PodlifeProcess, name: str, priority_class: str, cpu: str = "30") -> None:
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                "spec": {"priorityClassName": priority_class, "terminationGracePeriodSeconds": 1,
                         "containers": [{"name": "app", "image": "nginx:1.27",
                                         "resources": {"requests": {"cpu": cpu}}}]}}
    cluster.kubectl("create", "-f", "-", input=json.dumps(manifest))


def pod(cluster: PodlifeProcess, name: str) -> dict:
    return cluster.kubectl_json("get", "pod", name)


def gone(cluster: PodlifeProcess, name: str) -> bool:
    return "NotFound" in cluster.kubectl("get", "pod", name, check=False).stderr


def test_high_priority_pod_preempts_low_one(cluster: PodlifeProcess) -> None:
    node = cluster.kubectl_json("get", "nodes")["items"][0]["metadata"]["name"]
    create_pod(cluster, "low", "e2e-low")
    wait_for(lambda: pod(cluster, "low").get("status", {}).get("phase") == "Running", 60, what="low Running")
    victim_watch = cluster.kubectl_watch("pod", "low", "-o", "json", "--output-watch-events")
    high_watch = cluster.kubectl_watch("pods", "--field-selector", "metadata.name=high", "--no-headers", "-o",
                                       "custom-columns=NOMINATED:.status.nominatedNodeName,NODE:.spec.nodeName")
    try:
        create_pod(cluster, "high", "e2e-high")
        wait_for(lambda: pod(cluster, "high").get("spec", {}).get("nodeName") == node, 60, what="high bound")
        wait_for(lambda: gone(cluster, "low"), 60, what="low gone")
    finally:
        for watch in (victim_watch, high_watch):
            watch.send_signal(signal.SIGTERM)
        victim_out, _ = victim_watch.communicate(timeout=10)
        high_out, _ = high_watch.communicate(timeout=10)
    assert any(line.split()[:1] == [node] for line in high_out.splitlines()), high_out
    decoder, versions, text = json.JSONDecoder(), [], victim_out.strip()
    while text:
        event, end = decoder.raw_decode(text)
        versions.append(event["object"])
        text = text[end:].lstrip()
    targets = [c for v in versions for c in v.get("status", {}).get("conditions") or [] if c["type"] == "DisruptionTarget"]
    assert targets and (targets[0]["status"], targets[0]["reason"], targets[0]["message"]) == (
        "True", "PreemptionByScheduler", "default-scheduler: preempting to accommodate a higher priority pod")
    events = cluster.kubectl_json("get", "events", "--field-selector", "involvedObject.name=low,reason=Preempted")["items"]
    uid = pod(cluster, "high")["metadata"]["uid"]
    assert [e["message"] for e in events] == [f"Preempted by pod {uid} on node {node}"]


def test_never_policy_pod_stays_pending(cluster: PodlifeProcess) -> None:
    """More cpu than the node has, from a class that never preempts: the message says why nothing was evicted
    (independent of the test above: pytest-xdist may run it in another worker, on another cluster)."""
    create_pod(cluster, "polite", "e2e-polite", cpu="1000")
    expected = ("0/1 nodes are available: 1 Insufficient cpu. "
                "preemption: not eligible due to preemptionPolicy=Never..")

    def message() -> str:
        conds = pod(cluster, "polite").get("status", {}).get("conditions") or []
        return next((c.get("message", "") for c in conds if c["type"] == "PodScheduled"), "")
    wait_for(lambda: message() == expected, 60, what=f"polite's message ({message()!r})")
    assert pod(cluster, "polite")["status"]["phase"] == "Pending"
    assert not pod(cluster, "polite")["status"].get("nominatedNodeName")
    events = cluster.kubectl_json("get", "events", "--field-selector", "involvedObject.name=polite,reason=FailedScheduling")
    assert expected in [e["message"] for e in events["items"]]
