"""Issue 14's node-failure scenario, with the real kubectl: a node drops off, its pods move, it comes back.

A cluster of three simulated nodes with a short node grace (3 s, checked every second)
runs a Deployment of 6 whose pods tolerate ``node.kubernetes.io/unreachable`` and
``not-ready`` (NoExecute) for 2 s. The node with the most pods stops its heartbeats
(``podlife.io/chaos=heartbeat-stop``), which cuts it off from the API as a kubelet would
be: the node lifecycle controller marks it NotReady (``kubectl get nodes``) with the
unreachable NoExecute and NoSchedule taints and its pods Ready=False; once their
tolerations run out the taint eviction controller deletes them, and they stay
Terminating since the node cannot confirm; the ReplicaSet replaces them on the other
nodes and the Deployment is Available with 6 available replicas, none of its running
pods on the lost node. Then the node is back (``heartbeat-start``): Ready without
taints, the Terminating pods gone, every remaining pod Ready.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from podlife.controllers.node_lifecycle import NOT_READY_TAINT, UNREACHABLE_TAINT

from .cluster_harness import PodlifeProcess, require_tool, wait_for

REPLICAS = 6
TOLERATIONS = [{"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}
               for key in (UNREACHABLE_TAINT, NOT_READY_TAINT)]
DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
    "spec": {"replicas": REPLICAS, "selector": {"matchLabels": {"app": "web"}},
             "template": {"metadata": {"labels": {"app": "web"}},
                          "spec": {"tolerations": TOLERATIONS, "containers": [{"name": "web", "image": "nginx:1.27"}]}}},
}


def pods(cluster: PodlifeProcess) -> list[dict[str, Any]]:
    return list(cluster.kubectl_json("get", "pods", "-l", "app=web")["items"])


def name(pod: dict[str, Any]) -> str:
    return str(pod["metadata"]["name"])


def node_of(pod: dict[str, Any]) -> str:
    return str(pod["spec"].get("nodeName") or "")


def ready(pod: dict[str, Any]) -> str | None:
    return next((c["status"] for c in pod.get("status", {}).get("conditions") or () if c["type"] == "Ready"), None)


def terminating(pod: dict[str, Any]) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def node_column(cluster: PodlifeProcess, node: str) -> str:
    return cluster.kubectl("get", "nodes", node, "--no-headers").stdout.split()[1]


def taints(cluster: PodlifeProcess, node: str) -> set[tuple[str, str]]:
    return {(t["key"], t["effect"]) for t in cluster.kubectl_json("get", "node", node)["spec"].get("taints") or ()}


def pod_columns(cluster: PodlifeProcess) -> dict[str, str]:
    """Pod name -> the STATUS column of ``kubectl get pods``."""
    lines = cluster.kubectl("get", "pods", "-l", "app=web", "--no-headers").stdout.splitlines()
    return {line.split()[0]: line.split()[2] for line in lines if line.strip()}


def deployment_available(cluster: PodlifeProcess) -> bool:
    status = cluster.kubectl_json("get", "deployment", "web").get("status") or {}
    available = next((c["status"] for c in status.get("conditions") or () if c["type"] == "Available"), None)
    return available == "True" and status.get("availableReplicas") == REPLICAS


@pytest.mark.e2e
def test_a_node_fails_its_pods_move_and_it_comes_back(tmp_path: Path) -> None:
    cluster = PodlifeProcess(tmp_path / "data", "--nodes", "0", "--sim-nodes", "3", "--node-monitor-grace-period=3s",
                             "--node-monitor-period=1s", kubectl=require_tool("kubectl"))
    cluster.start()
    try:
        cluster.kubectl("apply", "-f", "-", input=json.dumps(DEPLOYMENT))
        cluster.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
        victim, _ = Counter(node_of(p) for p in pods(cluster)).most_common(1)[0]
        lost = {name(p) for p in pods(cluster) if node_of(p) == victim}

        cluster.kubectl("annotate", "node", victim, "podlife.io/chaos=heartbeat-stop")
        wait_for(lambda: node_column(cluster, victim) == "NotReady", what="the node NotReady")
        wait_for(lambda: taints(cluster, victim) >= {(UNREACHABLE_TAINT, "NoExecute"), (UNREACHABLE_TAINT, "NoSchedule")},
                 what="the unreachable taints")
        wait_for(lambda: all(ready(p) == "False" for p in pods(cluster) if name(p) in lost), what="its pods not Ready")
        wait_for(lambda: all(terminating(p) for p in pods(cluster) if name(p) in lost), what="its pods deleted")
        assert {name(p) for p in pods(cluster) if name(p) in lost} == lost  # nobody confirms the deletions
        assert all(pod_columns(cluster)[n] == "Terminating" for n in lost)
        wait_for(lambda: deployment_available(cluster), what="6 available replicas again")
        current = [p for p in pods(cluster) if not terminating(p)]
        assert len(current) == REPLICAS and all(ready(p) == "True" for p in current)
        assert all(node_of(p) != victim for p in current)
        assert {name(p) for p in pods(cluster) if terminating(p)} == lost  # still there while the node is away

        cluster.kubectl("annotate", "node", victim, "podlife.io/chaos=heartbeat-start", "--overwrite")
        wait_for(lambda: node_column(cluster, victim) == "Ready", what="the node Ready again")
        wait_for(lambda: not {key for key, _ in taints(cluster, victim)} & {UNREACHABLE_TAINT, NOT_READY_TAINT},
                 what="the taints removed")
        wait_for(lambda: not {name(p) for p in pods(cluster)} & lost, what="the Terminating pods gone")
        remaining = pods(cluster)
        assert len(remaining) == REPLICAS and all(ready(p) == "True" and not terminating(p) for p in remaining)
        assert deployment_available(cluster)
    finally:
        cluster.stop()
