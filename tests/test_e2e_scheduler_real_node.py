"""Placement rules on a real node (a kubelet running real pods) beside simulated ones, with kubectl.

The scheduler does not know which nodes are real; these tests check that what it decides is
carried out by a real kubelet: a high-priority pod preempts a low-priority one running on
the real node (the kubelet stops the victim gracefully, its TERM trap runs, then the
preemptor starts there), a second pod asking for the same hostPort on the real node
waits with Kubernetes' NodePorts reason until the first is gone, and a pod with scheduling
gates shows ``SchedulingGated`` until its gates are removed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from .cluster_harness import PodlifeProcess, require_tool, running_podlife, wait_for

pytestmark = pytest.mark.e2e

SIM_PREFIX = "sim-node"
#: exits at once on SIGTERM, so a graceful stop is quick and visible in the logs
TRAP_TERM = "trap 'echo stopping; exit 0' TERM; echo started; while :; do sleep 0.2; done"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    with running_podlife(tmp_path_factory.mktemp("sched-real") / "data", "--nodes", "1", "--sim-nodes", "2",
                         kubectl=require_tool("kubectl")) as proc:
        wait_for(lambda: proc.kubectl("get", "nodes", "--no-headers").stdout.count(" Ready ") == 3, 60,
                 what="the real node and two simulated nodes to be Ready")
        for name, value in (("real-low", 10), ("real-high", 1000)):
            manifest = {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
                        "value": value}
            proc.kubectl("create", "-f", "-", input=json.dumps(manifest))
        yield proc


def real_node(cluster: PodlifeProcess) -> dict:
    nodes = cluster.kubectl_json("get", "nodes")["items"]
    (node,) = [n for n in nodes if not n["metadata"]["name"].startswith(SIM_PREFIX)]
    return node


def milli_cpu(quantity: str) -> int:
    return int(quantity[:-1]) if quantity.endswith("m") else int(float(quantity) * 1000)


def free_cpu_milli(cluster: PodlifeProcess, node: dict) -> int:
    """The node's allocatable cpu less what the pods bound to it request."""
    name = node["metadata"]["name"]
    pods = cluster.kubectl_json("get", "pods", "-A", "--field-selector", f"spec.nodeName={name}")["items"]
    requested = sum(milli_cpu(c.get("resources", {}).get("requests", {}).get("cpu", "0"))
                    for p in pods if p["status"].get("phase") not in ("Succeeded", "Failed")
                    for c in p["spec"]["containers"])
    return milli_cpu(node["status"]["allocatable"]["cpu"]) - requested


def create_pod(cluster: PodlifeProcess, name: str, node: str, *, cpu: str = "10m", priority_class: str | None = None,
               host_port: int | None = None) -> None:
    container: dict = {"name": "app", "image": "ruby:3.3", "command": ["/bin/sh", "-c", TRAP_TERM],
                       "resources": {"requests": {"cpu": cpu}}}
    if host_port is not None:
        container["ports"] = [{"containerPort": 8080, "hostPort": host_port}]
    spec: dict = {"nodeSelector": {"kubernetes.io/hostname": node}, "terminationGracePeriodSeconds": 10,
                  "containers": [container]}
    if priority_class:
        spec["priorityClassName"] = priority_class
    cluster.kubectl("create", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}))


def pod(cluster: PodlifeProcess, name: str) -> dict:
    return cluster.kubectl_json("get", "pod", name)


def gone(cluster: PodlifeProcess, name: str) -> bool:
    return "NotFound" in cluster.kubectl("get", "pod", name, check=False).stderr


def scheduled_message(cluster: PodlifeProcess, name: str) -> str:
    conditions = pod(cluster, name).get("status", {}).get("conditions") or []
    return next((c.get("message", "") for c in conditions if c["type"] == "PodScheduled"), "")


def test_preemption_on_the_real_node_stops_the_victim_gracefully(cluster: PodlifeProcess) -> None:
    node = real_node(cluster)
    name = node["metadata"]["name"]
    create_pod(cluster, "victim", name, cpu=f"{free_cpu_milli(cluster, node)}m", priority_class="real-low")
    wait_for(lambda: pod(cluster, "victim")["status"].get("phase") == "Running", 90, what="the victim Running")
    wait_for(lambda: "started" in cluster.kubectl("logs", "victim", check=False).stdout, 30, what="the victim's log")
    logs = cluster.kubectl_popen("logs", "-f", "victim")
    try:
        create_pod(cluster, "preemptor", name, cpu="100m", priority_class="real-high")
        wait_for(lambda: gone(cluster, "victim"), 60, what="the victim gone")
        out, _ = logs.communicate(timeout=30)
    finally:
        if logs.poll() is None:
            logs.kill()
            logs.communicate()
    assert "stopping" in out  # the kubelet sent SIGTERM and waited: a graceful stop
    wait_for(lambda: pod(cluster, "preemptor")["status"].get("phase") == "Running", 90, what="the preemptor Running")
    assert pod(cluster, "preemptor")["spec"]["nodeName"] == name
    uid = pod(cluster, "preemptor")["metadata"]["uid"]
    events = cluster.kubectl_json("get", "events", "--field-selector", "involvedObject.name=victim,reason=Preempted")
    assert [e["message"] for e in events["items"]] == [f"Preempted by pod {uid} on node {name}"]
    cluster.kubectl("delete", "pod", "preemptor", "--wait=false")
    wait_for(lambda: gone(cluster, "preemptor"), 60, what="the preemptor gone")


def test_a_taken_host_port_on_the_real_node_keeps_the_second_pod_pending(cluster: PodlifeProcess) -> None:
    name = real_node(cluster)["metadata"]["name"]
    create_pod(cluster, "port-a", name, host_port=18765)
    wait_for(lambda: pod(cluster, "port-a")["status"].get("phase") == "Running", 90, what="port-a Running")
    create_pod(cluster, "port-b", name, host_port=18765)
    expected = ("0/3 nodes are available: 1 node(s) didn't have free ports for the requested pod ports, "
                "2 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: "
                "1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling..")
    wait_for(lambda: scheduled_message(cluster, "port-b") == expected, 30,
             what=f"port-b's message ({scheduled_message(cluster, 'port-b')!r})")
    assert not pod(cluster, "port-b")["spec"].get("nodeName")
    cluster.kubectl("delete", "pod", "port-a", "--wait=false")
    wait_for(lambda: pod(cluster, "port-b")["spec"].get("nodeName") == name, 60, what="port-b bound once port-a is gone")
    wait_for(lambda: pod(cluster, "port-b")["status"].get("phase") == "Running", 90, what="port-b Running")
    cluster.kubectl("delete", "pod", "port-b", "--wait=false")
    wait_for(lambda: gone(cluster, "port-b"), 60, what="port-b gone")


def test_a_gated_pod_waits_for_its_gates_to_be_removed(cluster: PodlifeProcess) -> None:
    name = real_node(cluster)["metadata"]["name"]
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "gated"},
                "spec": {"schedulingGates": [{"name": "example.com/approval"}], "nodeSelector": {"kubernetes.io/hostname": name},
                         "containers": [{"name": "app", "image": "ruby:3.3", "command": ["/bin/sh", "-c", TRAP_TERM]}]}}
    cluster.kubectl("create", "-f", "-", input=json.dumps(manifest))
    row = cluster.kubectl("get", "pod", "gated", "--no-headers").stdout.split()
    assert row[1:3] == ["0/1", "SchedulingGated"], row
    added = cluster.kubectl("patch", "pod", "gated", "--type=json", "-p",
                            '[{"op": "add", "path": "/spec/schedulingGates/-", "value": {"name": "example.com/more"}}]',
                            check=False)
    assert added.returncode != 0 and "only deletion is allowed" in added.stderr
    cluster.kubectl("patch", "pod", "gated", "--type=json", "-p", '[{"op": "remove", "path": "/spec/schedulingGates"}]')
    wait_for(lambda: pod(cluster, "gated")["status"].get("phase") == "Running", 90, what="gated Running")
    assert pod(cluster, "gated")["spec"]["nodeName"] == name
    cluster.kubectl("delete", "pod", "gated", "--wait=false")
    wait_for(lambda: gone(cluster, "gated"), 60, what="gated gone")
