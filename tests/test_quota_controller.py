"""The ResourceQuota controller: ``status.hard`` and ``status.used`` follow what a namespace holds.

The pure status rule is checked on its own; the controller runs in ``podlife up`` with
simulated nodes, and ``kubectl describe quota`` shows what it wrote. Admission (which
refuses the pod beyond the quota) is ``test_resource_quota.py``'s; here it only shows
that both count the same.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest

from podlife.controllers.resource_quota import desired_status, status_differs, usage_changed
from podlife.machinery.quota import EVALUATORS, Evaluator

from .cluster_harness import PodlifeProcess, require_tool, wait_for

NS = "team"
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def pod(name: str, cpu: str = "300m", phase: str = "Running") -> dict:
    return {"metadata": {"name": name, "namespace": NS},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}, "status": {"phase": phase}}


def test_desired_status_counts_with_admissions_rules() -> None:
    quota = {"metadata": {"name": "q", "namespace": NS},
             "spec": {"hard": {"pods": "2", "requests.cpu": "1000m", "configmaps": "3", "count/widgets.example.com": "1"}}}
    objects = {("", "pods"): [pod("a"), pod("b", "1500m", phase="Succeeded"), pod("c", "0.2")],
               ("", "configmaps"): [{"metadata": {"name": "cm", "namespace": NS}}]}

    def objects_of(ev: Evaluator) -> list[dict]:
        return objects.get((ev.group, ev.plural), [])

    status = desired_status(quota, objects_of, lambda group, plural: False, NOW)
    # hard in canonical quantities; a terminal pod uses no compute; an unserved resource is not reported
    assert status == {"hard": {"configmaps": "3", "count/widgets.example.com": "1", "pods": "2", "requests.cpu": "1"},
                      "used": {"configmaps": "1", "pods": "2", "requests.cpu": "500m"}}
    assert status_differs({**quota, "status": {}}, status)
    assert not status_differs({**quota, "status": status}, status)


def test_scoped_quota_counts_only_its_pods() -> None:
    quota = {"metadata": {"name": "q", "namespace": NS}, "spec": {"hard": {"pods": "5"}, "scopes": ["BestEffort"]}}
    best_effort = {"metadata": {"name": "be", "namespace": NS}, "spec": {"containers": [{"name": "c"}]}, "status": {}}
    status = desired_status(quota, lambda ev: [pod("a"), best_effort] if ev.plural == "pods" else [], lambda g, p: True, NOW)
    assert status["used"] == {"pods": "1"}


def test_only_usage_changes_wake_the_quota() -> None:
    pods = EVALUATORS[("", "pods")]
    assert usage_changed(pods, pod("a"), pod("a", phase="Failed"), NOW)
    relabelled = pod("a")
    relabelled["metadata"]["labels"] = {"x": "y"}
    assert not usage_changed(pods, pod("a"), relabelled, NOW)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    proc = PodlifeProcess(tmp_path_factory.mktemp("quota") / "data", "--nodes", "0", "--sim-nodes", "1",
                          kubectl=require_tool("kubectl")).start()
    try:
        proc.kubectl("create", "namespace", NS)
        yield proc
    finally:
        proc.stop()


def create_pod(cluster: PodlifeProcess, name: str, *, check: bool = True) -> str:
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
                "spec": {"terminationGracePeriodSeconds": 0,
                         "containers": [{"name": "app", "image": "nginx:1.27", "resources": {"requests": {"cpu": "300m"}}}]}}
    return cluster.kubectl("create", "-f", "-", input=json.dumps(manifest), check=check).stderr


def used(cluster: PodlifeProcess, name: str = "compute") -> dict[str, str]:
    return (cluster.kubectl_json("get", "quota", name, "-n", NS).get("status") or {}).get("used") or {}


@pytest.mark.e2e
def test_quota_status_follows_pods(sim: PodlifeProcess) -> None:
    sim.kubectl("create", "quota", "compute", "-n", NS, "--hard=pods=2,requests.cpu=1")
    wait_for(lambda: used(sim) == {"pods": "0", "requests.cpu": "0"}, what="the quota's first count")
    assert sim.kubectl_json("get", "quota", "compute", "-n", NS)["status"]["hard"] == {"pods": "2", "requests.cpu": "1"}
    create_pod(sim, "a")
    create_pod(sim, "b")
    wait_for(lambda: used(sim) == {"pods": "2", "requests.cpu": "600m"}, what="two pods counted")
    refused = create_pod(sim, "c", check=False)
    assert 'pods "c" is forbidden: exceeded quota: compute, requested: pods=1, used: pods=2, limited: pods=2' in refused
    described = sim.kubectl("describe", "quota", "compute", "-n", NS).stdout
    assert [line.split() for line in described.splitlines() if line.startswith(("pods", "requests.cpu"))] == [
        ["pods", "2", "2"], ["requests.cpu", "600m", "1"]]
    sim.kubectl("delete", "pod", "a", "-n", NS, "--wait=false")
    wait_for(lambda: used(sim) == {"pods": "1", "requests.cpu": "300m"}, what="the deleted pod uncounted")


@pytest.mark.e2e
def test_quota_counts_other_objects(sim: PodlifeProcess) -> None:
    sim.kubectl("create", "quota", "objects", "-n", NS, "--hard=configmaps=5,services=2,count/deployments.apps=1")
    wait_for(lambda: used(sim, "objects") == {"configmaps": "1", "count/deployments.apps": "0", "services": "0"},
             what="the namespace's root CA configmap counted")
    sim.kubectl("create", "configmap", "settings", "-n", NS, "--from-literal=a=b")
    sim.kubectl("create", "service", "clusterip", "web", "-n", NS, "--tcp=80:80")
    sim.kubectl("create", "deployment", "web", "-n", NS, "--image=nginx:1.27", "--replicas=0")
    wait_for(lambda: used(sim, "objects") == {"configmaps": "2", "count/deployments.apps": "1", "services": "1"},
             what="a configmap, a service and a deployment counted")
    sim.kubectl("delete", "configmap", "settings", "-n", NS)
    wait_for(lambda: used(sim, "objects")["configmaps"] == "1", what="the deleted configmap uncounted")
