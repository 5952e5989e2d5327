"""``kubectl drain`` against PodDisruptionBudgets: the disruption controller and the eviction API end to end.

A cluster of simulated nodes (pods there go Running and Ready by themselves). The bare
pods are placed on ``sim-node-0`` by name, so a drain of that node must evict them all;
``--force`` lets drain evict pods without a controller. kubectl retries an eviction
answered 429 every 5 s until its ``--timeout``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from .cluster_harness import PodlifeProcess, require_tool, wait_for

pytestmark = pytest.mark.e2e

NODE = "sim-node-0"
DRAIN = ("drain", NODE, "--ignore-daemonsets", "--delete-emptydir-data", "--force")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    proc = PodlifeProcess(tmp_path_factory.mktemp("drain") / "data", "--nodes", "0", "--sim-nodes", "2",
                          kubectl=require_tool("kubectl")).start()
    try:
        yield proc
    finally:
        proc.stop()


def bare_pod(cluster: PodlifeProcess, name: str, app: str) -> None:
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": app}},
                "spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 1,
                         "containers": [{"name": "app", "image": "nginx:1.27"}]}}
    cluster.kubectl("create", "-f", "-", input=json.dumps(manifest))


def apply(cluster: PodlifeProcess, obj: dict) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps(obj))


def pdb_status(cluster: PodlifeProcess, name: str) -> dict[str, Any]:
    return cluster.kubectl_json("get", "pdb", name).get("status") or {}


def status_is(cluster: PodlifeProcess, name: str, **wanted: Any) -> bool:
    status = pdb_status(cluster, name)
    return all(status.get(k) == v for k, v in wanted.items())


def ready_pods(cluster: PodlifeProcess, app: str) -> list[str]:
    pods = cluster.kubectl_json("get", "pods", "-l", f"app={app}")["items"]
    return [p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")
            and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])]


def test_budget_blocks_a_drain_until_it_allows(sim: PodlifeProcess) -> None:
    for i in range(3):
        bare_pod(sim, f"web-{i}", "web")
    sim.kubectl("create", "pdb", "web", "--selector=app=web", "--min-available=2")
    wait_for(lambda: status_is(sim, "web", currentHealthy=3, desiredHealthy=2, expectedPods=3, disruptionsAllowed=1,
                               observedGeneration=1), what="the budget's status")
    cond = pdb_status(sim, "web")["conditions"][0]
    assert (cond["type"], cond["status"], cond["reason"]) == ("DisruptionAllowed", "True", "SufficientPods")

    # one pod may go; the other two are refused until drain gives up
    blocked = sim.kubectl(*DRAIN, "--timeout=5s", check=False)
    assert blocked.returncode != 0
    assert "Cannot evict pod as it would violate the pod's disruption budget" in blocked.stderr + blocked.stdout
    wait_for(lambda: len(ready_pods(sim, "web")) == 2, what="one pod evicted")
    wait_for(lambda: status_is(sim, "web", currentHealthy=2, disruptionsAllowed=0, expectedPods=2), what="the budget spent")
    status = pdb_status(sim, "web")
    assert not status.get("disruptedPods")  # the evicted pod is gone: its entry with it
    assert status["conditions"][0]["reason"] == "InsufficientPods"
    assert len(ready_pods(sim, "web")) == 2

    # the budget loosened: the drain goes through
    sim.kubectl("patch", "pdb", "web", "--type=merge", "-p", '{"spec":{"minAvailable":0}}')
    wait_for(lambda: status_is(sim, "web", observedGeneration=2, disruptionsAllowed=2), what="the new generation observed")
    drained = sim.kubectl(*DRAIN, "--timeout=60s", timeout=90)
    assert f"node/{NODE} drained" in drained.stdout
    wait_for(lambda: not sim.kubectl_json("get", "pods", "-l", "app=web")["items"], what="every pod evicted")
    sim.kubectl("uncordon", NODE)


def test_replica_set_scale_is_the_budgets_expected_count(sim: PodlifeProcess) -> None:
    apply(sim, {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "api"},
                "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "api"}},
                         "template": {"metadata": {"labels": {"app": "api"}},
                                      "spec": {"terminationGracePeriodSeconds": 1,
                                               "containers": [{"name": "app", "image": "nginx:1.27"}]}}}})
    apply(sim, {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "api"},
                "spec": {"maxUnavailable": "25%", "selector": {"matchLabels": {"app": "api"}}}})
    wait_for(lambda: status_is(sim, "api", expectedPods=4, desiredHealthy=3, currentHealthy=4, disruptionsAllowed=1),
             what="the budget counted from the ReplicaSet's scale")
    sim.kubectl("scale", "rs", "api", "--replicas=8")
    wait_for(lambda: status_is(sim, "api", expectedPods=8, desiredHealthy=6, currentHealthy=8, disruptionsAllowed=2),
             what="the budget following the scale")
