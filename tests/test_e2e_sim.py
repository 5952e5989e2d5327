"""Simulated nodes through the real server and kubectl (issue 3): lifecycle, stages, chaos."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .cluster_harness import PodlifeProcess, require_tool, wait_for

pytestmark = pytest.mark.e2e

SIM_NODES = 4


@pytest.fixture(scope="module")
def sim_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    proc = PodlifeProcess(tmp_path_factory.mktemp("sim") / "data", "--nodes", "0", "--sim-nodes", str(SIM_NODES),
                          kubectl=require_tool("kubectl")).start()
    try:
        yield proc
    finally:
        proc.stop()


def make_pod(cluster: PodlifeProcess, name: str, *, restart: str = "Always", annotations: dict | None = None,
             labels: dict | None = None) -> None:
    manifest = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "annotations": annotations or {}, "labels": labels or {}},
                "spec": {"restartPolicy": restart, "terminationGracePeriodSeconds": 1,
                         "containers": [{"name": "app", "image": "nginx:1.27"}]}}
    cluster.kubectl("create", "-f", "-", input=json.dumps(manifest))


def status(cluster: PodlifeProcess, name: str) -> dict:
    return cluster.kubectl_json("get", "pod", name).get("status", {})


def container(cluster: PodlifeProcess, name: str) -> dict:
    return (status(cluster, name).get("containerStatuses") or [{}])[0]


def column(cluster: PodlifeProcess, name: str, index: int) -> str:
    return cluster.kubectl("get", "pod", name, "--no-headers").stdout.split()[index]


def test_simulated_nodes_are_ready_with_leases(sim_cluster: PodlifeProcess) -> None:
    nodes = sim_cluster.kubectl_json("get", "nodes", "-l", "type=simulated")["items"]
    assert len(nodes) == SIM_NODES
    for node in nodes:
        assert node["status"]["allocatable"]["pods"] == "110" and node["status"]["capacity"]["cpu"] == "32"
        assert {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"] == "True"
        assert node["metadata"]["labels"]["kubernetes.io/hostname"] == node["metadata"]["name"]
    leases = sim_cluster.kubectl_json("get", "leases", "-n", "kube-node-lease")["items"]
    assert {lease["metadata"]["name"] for lease in leases} >= {n["metadata"]["name"] for n in nodes}


def test_pod_on_simulated_node_runs_and_is_deleted(sim_cluster: PodlifeProcess) -> None:
    watch = sim_cluster.kubectl_watch("pods", "--output-watch-events", "--field-selector", "metadata.name=sim-web")
    try:
        make_pod(sim_cluster, "sim-web")
        wait_for(lambda: status(sim_cluster, "sim-web").get("phase") == "Running", 30, what="sim-web Running")
        st = status(sim_cluster, "sim-web")
        assert st["podIP"].startswith("10.244.") and container(sim_cluster, "sim-web")["ready"] is True
        assert container(sim_cluster, "sim-web")["containerID"].startswith("podlife-sim://")
        port = sim_cluster.kubectl_json("get", "port", "sim-web")
        assert port["spec"]["fixedIPs"][0]["ipAddress"] == st["podIP"]
        sim_cluster.kubectl("delete", "pod", "sim-web", "--wait=true", timeout=60)
    finally:
        watch.send_signal(signal.SIGTERM)
        out, _ = watch.communicate(timeout=10)
    statuses = [line.split()[3] for line in out.splitlines()[1:]]
    order = [s for i, s in enumerate(statuses) if i == 0 or statuses[i - 1] != s]
    assert order[:3] == ["Pending", "ContainerCreating", "Running"] and order[-1] == "Terminating", out


def test_run_to_completion_after_sim_duration(sim_cluster: PodlifeProcess) -> None:
    make_pod(sim_cluster, "sim-job", restart="Never", annotations={"podlife.io/sim-duration": "500ms"})
    wait_for(lambda: status(sim_cluster, "sim-job").get("phase") == "Succeeded", 30, what="sim-job Succeeded")
    assert column(sim_cluster, "sim-job", 2) == "Completed"


@pytest.mark.parametrize(("chaos", "reason", "exit_code"), [("crash", "Error", 1), ("oom", "OOMKilled", 137)])
def test_chaos_annotation_crashes_and_restarts(sim_cluster: PodlifeProcess, chaos: str, reason: str, exit_code: int) -> None:
    name = f"sim-{chaos}"
    make_pod(sim_cluster, name)
    wait_for(lambda: status(sim_cluster, name).get("phase") == "Running", 30, what=f"{name} Running")
    sim_cluster.kubectl("annotate", "pod", name, f"podlife.io/chaos={chaos}")
    wait_for(lambda: container(sim_cluster, name).get("restartCount", 0) >= 1, 30, what=f"{name} restarted")
    last = container(sim_cluster, name)["lastState"]["terminated"]
    assert last["reason"] == reason and last["exitCode"] == exit_code


def test_chaos_readiness_flips(sim_cluster: PodlifeProcess) -> None:
    make_pod(sim_cluster, "sim-ready")
    wait_for(lambda: column(sim_cluster, "sim-ready", 1) == "1/1", 30, what="ready")
    sim_cluster.kubectl("annotate", "pod", "sim-ready", "podlife.io/chaos=unready")
    wait_for(lambda: column(sim_cluster, "sim-ready", 1) == "0/1", 30, what="unready")
    assert column(sim_cluster, "sim-ready", 2) == "Running"
    sim_cluster.kubectl("annotate", "pod", "sim-ready", "podlife.io/chaos=ready", "--overwrite")
    wait_for(lambda: column(sim_cluster, "sim-ready", 1) == "1/1", 30, what="ready again")


def test_image_pull_error_stage(sim_cluster: PodlifeProcess) -> None:
    make_pod(sim_cluster, "sim-pull", annotations={"podlife.io/sim-image-pull-error": "true"})
    wait_for(lambda: column(sim_cluster, "sim-pull", 2) in ("ErrImagePull", "ImagePullBackOff"), 30, what="pull error")
    wait_for(lambda: column(sim_cluster, "sim-pull", 2) == "ImagePullBackOff", 30, what="ImagePullBackOff")
    assert status(sim_cluster, "sim-pull")["phase"] == "Pending"


def test_node_heartbeat_chaos(sim_cluster: PodlifeProcess) -> None:
    nodes = sorted(n["metadata"]["name"] for n in sim_cluster.kubectl_json("get", "nodes", "-l", "type=simulated")["items"])
    quiet, other = nodes[0], nodes[1]

    def renew(name: str) -> str:
        return sim_cluster.kubectl_json("get", "lease", name, "-n", "kube-node-lease")["spec"]["renewTime"]

    sim_cluster.kubectl("annotate", "node", quiet, "podlife.io/chaos=heartbeat-stop")
    stopped_at = renew(quiet)
    other_before = renew(other)
    # a full renewal period passes for the other node (it renews every 10 s) ...
    wait_for(lambda: renew(other) != other_before, 30, interval=0.5, what="another node's renewal")
    other_before = renew(other)
    wait_for(lambda: renew(other) != other_before, 30, interval=0.5, what="a second renewal")
    # ... while the quiet one did not renew
    assert renew(quiet) == stopped_at
    sim_cluster.kubectl("annotate", "node", quiet, "podlife.io/chaos-")
    wait_for(lambda: renew(quiet) != stopped_at, 30, interval=0.5, what="heartbeats to resume")


def test_podlife_sim_as_a_separate_process(fresh_cluster: PodlifeProcess, tmp_path: Path) -> None:
    fresh_cluster.args = ["--nodes", "0"]
    fresh_cluster.start()
    stages = tmp_path / "crash-fast.yaml"
    stages.write_text(
        "apiVersion: sim.podlife.io/v1alpha1\nkind: Stage\nmetadata: {name: crash-fast}\n"
        "spec:\n  selector: {matchLabels: {fault: crash}}\n  delay: {duration: 300ms}\n"
        "  next: {action: crash, exitCode: 7, backoff: 100ms}\n")
    # the simulator's own identity, as `podlife up` writes it (kubeadm's scheduler.conf, ...)
    own = fresh_cluster.data_dir / "kubeconfigs" / "node-simulator.conf"
    whoami = fresh_cluster.kubectl("--kubeconfig", str(own), "auth", "whoami", "-o", "json")
    assert json.loads(whoami.stdout)["status"]["userInfo"]["username"] == \
        "system:serviceaccount:kube-system:node-simulator"
    refused = fresh_cluster.kubectl("--kubeconfig", str(own), "get", "secrets", "-A", check=False)
    assert refused.returncode != 0 and "forbidden" in refused.stderr
    sim = subprocess.Popen([sys.executable, "-m", "podlife.cli", "sim", "--kubeconfig", str(own),
                            "--nodes", "3", "--name-prefix", "ext", "--sim-stages", str(stages)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: len([line for line in fresh_cluster.kubectl("get", "nodes", "--no-headers").stdout.splitlines()
                              if " Ready " in line]) == 3, 60, what="3 external simulated nodes Ready")
        make_pod(fresh_cluster, "ext-crash", labels={"fault": "crash"})
        wait_for(lambda: container(fresh_cluster, "ext-crash").get("restartCount", 0) >= 1, 60, what="stage crash")
        assert container(fresh_cluster, "ext-crash")["lastState"]["terminated"]["exitCode"] == 7
        assert status(fresh_cluster, "ext-crash")["podIP"].startswith("10.244.")
        # storage too: the separate simulator provisions its nodes' volumes, as its own identity
        fresh_cluster.kubectl("create", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "ext-data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}))
        fresh_cluster.kubectl("create", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ext-claimer"},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                {"name": "app", "image": "nginx:1.27", "volumeMounts": [{"name": "d", "mountPath": "/d"}]}],
                "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "ext-data"}}]}}))
        wait_for(lambda: status(fresh_cluster, "ext-claimer").get("phase") == "Running", 60,
                 what="the pod with a claim Running on an external simulated node")
        node = fresh_cluster.kubectl_json("get", "pod", "ext-claimer")["spec"]["nodeName"]
        volume = fresh_cluster.kubectl_json("get", "pvc", "ext-data")["spec"]["volumeName"]
        pv = fresh_cluster.kubectl_json("get", "pv", volume)
        assert node.startswith("ext-")
        assert pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == [node]
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(30)
    assert sim.returncode == 0


def test_bad_stage_file_is_reported(tmp_path: Path) -> None:
    stages = tmp_path / "bad.yaml"
    stages.write_text("apiVersion: sim.podlife.io/v1alpha1\nkind: Stage\nmetadata: {name: x}\n"
                      "spec:\n  delay: {duration: 5 seconds}\n  next: {action: crash}\n")
    result = subprocess.run([sys.executable, "-m", "podlife.cli", "up", "--data-dir", str(tmp_path / "d"), "--port", "0",
                             "--nodes", "0", "--sim-nodes", "1", "--sim-stages", str(stages)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "invalid duration" in result.stderr and "Traceback" not in result.stderr
