"""Host ports, PreferNoSchedule taints, preferred node affinity and node-condition taints, end to end:
a real ``podlife up`` with simulated nodes, driven with the real kubectl.

One cluster per test (its own data directory and port, stopped by pid), four simulated nodes;
a stage file puts ``sim-node-2`` under memory pressure a moment after it registers (the
simulator's ``node-pressure`` action, as ``podlife/sim/stages/node-memory-pressure.yaml`` does
after two minutes), and the node lifecycle controller's TaintNodesByCondition gives it the
``node.kubernetes.io/memory-pressure:NoSchedule`` taint.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from .cluster_harness import PodlifeProcess, require_tool, running_podlife, wait_for

pytestmark = pytest.mark.e2e

PRESSURE_STAGE = """\
apiVersion: sim.podlife.io/v1alpha1
kind: Stage
metadata:
  name: node-memory-pressure
spec:
  resourceRef: {kind: Node}
  selector:
    matchExpressions:
    - {key: .metadata.name, operator: In, values: [sim-node-2]}
  delay: {duration: 1s}
  next: {action: node-pressure, condition: MemoryPressure}
"""
HOSTNAME = "kubernetes.io/hostname"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[PodlifeProcess]:
    stages = tmp_path / "stages.yaml"
    stages.write_text(PRESSURE_STAGE)
    with running_podlife(tmp_path / "data", "--nodes", "0", "--sim-nodes", "4", "--sim-stages", str(stages),
                         kubectl=require_tool("kubectl")) as proc:
        yield proc


def create_pod(cluster: PodlifeProcess, name: str, **spec: Any) -> None:
    container: dict[str, Any] = {"name": "app", "image": "nginx:1.27",
                                 "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}
    if "ports" in spec:
        container["ports"] = spec.pop("ports")
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [container], **spec}}
    cluster.kubectl("create", "-f", "-", input=json.dumps(manifest))


def node_of(cluster: PodlifeProcess, name: str) -> str:
    return wait_for(lambda: cluster.kubectl_json("get", "pod", name)["spec"].get("nodeName"), 30,
                    what=f"pod {name} to be scheduled")


def unschedulable_message(cluster: PodlifeProcess, name: str) -> str:
    def check() -> str | None:
        conditions = cluster.kubectl_json("get", "pod", name).get("status", {}).get("conditions") or []
        scheduled = next((c for c in conditions if c["type"] == "PodScheduled"), None)
        return scheduled["message"] if scheduled and scheduled["status"] == "False" else None
    return str(wait_for(check, 30, what=f"pod {name} to be marked unschedulable"))


def taints(cluster: PodlifeProcess, node: str) -> set[tuple[str, str]]:
    spec = cluster.kubectl_json("get", "node", node).get("spec", {})
    return {(t["key"], t["effect"]) for t in spec.get("taints") or []}


def test_ports_taints_affinity_and_memory_pressure(cluster: PodlifeProcess) -> None:
    # memory pressure: the condition, then the NoSchedule taint; new pods stay away
    wait_for(lambda: ("node.kubernetes.io/memory-pressure", "NoSchedule") in taints(cluster, "sim-node-2"), 30,
             what="sim-node-2 to get the memory-pressure taint")
    conditions = cluster.kubectl_json("get", "node", "sim-node-2")["status"]["conditions"]
    assert {c["type"]: c["status"] for c in conditions}["MemoryPressure"] == "True"
    create_pod(cluster, "pressed", nodeSelector={HOSTNAME: "sim-node-2"})
    message = unschedulable_message(cluster, "pressed")
    assert "1 node(s) had untolerated taint {node.kubernetes.io/memory-pressure: }" in message, message

    # a PreferNoSchedule taint is avoided while untainted nodes have room
    cluster.kubectl("taint", "nodes", "sim-node-0", "avoid=yes:PreferNoSchedule")
    spread = [f"spread-{i}" for i in range(4)]
    for name in spread:
        create_pod(cluster, name)
    placed = {name: node_of(cluster, name) for name in spread}
    assert set(placed.values()) <= {"sim-node-1", "sim-node-3"}, placed

    # preferred node affinity is honoured
    cluster.kubectl("label", "nodes", "sim-node-1", "disk=ssd")
    preference = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 50, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}]}}
    for i in range(3):
        create_pod(cluster, f"ssd-{i}", affinity=preference)
        assert node_of(cluster, f"ssd-{i}") == "sim-node-1"

    # two pods asking for the same hostPort never share a node
    port = [{"containerPort": 80, "hostPort": 8080}]
    create_pod(cluster, "web-a", ports=port, nodeSelector={HOSTNAME: "sim-node-3"})
    assert node_of(cluster, "web-a") == "sim-node-3"
    create_pod(cluster, "web-b", ports=port, nodeSelector={HOSTNAME: "sim-node-3"})
    message = unschedulable_message(cluster, "web-b")
    assert message.startswith(  # sim-node-2 fails on its taint first (TaintToleration runs before NodeAffinity)
        "0/4 nodes are available: 1 node(s) didn't have free ports for the requested pod ports, "
        "1 node(s) had untolerated taint {node.kubernetes.io/memory-pressure: }, "
        "2 node(s) didn't match Pod's node affinity/selector."), message
    create_pod(cluster, "web-c", ports=port)
    assert node_of(cluster, "web-c") != "sim-node-3"
    # the same port on another protocol does not conflict
    create_pod(cluster, "dns", ports=[{"containerPort": 53, "hostPort": 8080, "protocol": "UDP"}],
               nodeSelector={HOSTNAME: "sim-node-3"})
    assert node_of(cluster, "dns") == "sim-node-3"
    # once web-a is gone, web-b fits
    cluster.kubectl("delete", "pod", "web-a", "--wait=true", timeout=60)
    assert node_of(cluster, "web-b") == "sim-node-3"


def test_node_lifecycle_controller_taints_by_condition(cluster: PodlifeProcess) -> None:
    """A node whose status says MemoryPressure (no kubelet or simulator of its own to taint it)
    gets the taint from the node lifecycle controller, and loses it when the condition clears."""
    cluster.kubectl("create", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "bare", "labels": {HOSTNAME: "bare"}}}))
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def post(pressure: str) -> None:
        conditions = [{"type": t, "status": st, "reason": "Test", "message": "set by the test",
                       "lastHeartbeatTime": now, "lastTransitionTime": now}
                      for t, st in (("Ready", "True"), ("MemoryPressure", pressure), ("DiskPressure", "False"))]
        cluster.kubectl("patch", "node", "bare", "--subresource=status", "--type=merge",
                        "-p", json.dumps({"status": {"conditions": conditions}}))

    post("True")
    wait_for(lambda: ("node.kubernetes.io/memory-pressure", "NoSchedule") in taints(cluster, "bare"), 30,
             what="the controller to taint node bare")
    post("False")
    wait_for(lambda: ("node.kubernetes.io/memory-pressure", "NoSchedule") not in taints(cluster, "bare"), 30,
             what="the controller to untaint node bare")
