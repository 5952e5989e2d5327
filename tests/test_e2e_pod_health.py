"""Pod health on real containers (runc), driven with the real kubectl as a user would.

Init containers and sidecars, an HTTP readiness probe answered inside the pod's own
network namespace, ``activeDeadlineSeconds``, and a memory hog OOM-killed under each
restart policy: what ``kubectl get`` and ``kubectl describe`` show, in Kubernetes' words.
One cluster for the module; each test makes its own pods.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from .cluster_harness import PodlifeProcess, wait_for
from .test_e2e_containers import oci_cluster

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    with oci_cluster(tmp_path_factory.mktemp("health") / "data") as proc:
        yield proc


def create(cluster: PodlifeProcess, name: str, containers: list[dict[str, Any]], **spec: Any) -> None:
    cluster.kubectl("create", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": containers, **spec}}))


def busybox(name: str, *command: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": "busybox", "command": list(command), **extra}


def shown(cluster: PodlifeProcess, name: str) -> tuple[str, str]:
    """READY and STATUS as ``kubectl get pod`` prints them."""
    columns = cluster.kubectl("get", "pod", name, "--no-headers").stdout.split()
    return columns[1], columns[2]


def status(cluster: PodlifeProcess, name: str) -> dict[str, Any]:
    return cluster.kubectl_json("get", "pod", name).get("status") or {}


def condition(cluster: PodlifeProcess, name: str, type_: str) -> dict[str, Any]:
    return next((c for c in status(cluster, name).get("conditions") or [] if c["type"] == type_), {})


def remove(cluster: PodlifeProcess, *names: str) -> None:
    cluster.kubectl("delete", "pod", *names, "--wait=true", timeout=90)


def test_init_containers_run_in_order_then_the_app(cluster: PodlifeProcess) -> None:
    create(cluster, "init", [busybox("c", "sleep", "3600")],
           initContainers=[busybox("i1", "true"), busybox("i2", "sleep", "2")])
    wait_for(lambda: shown(cluster, "init") == ("0/1", "Init:1/2"), 30, what="Init:1/2")
    initialized = condition(cluster, "init", "Initialized")
    assert (initialized["status"], initialized["reason"], initialized["message"]) == (
        "False", "ContainersNotInitialized", "containers with incomplete status: [i2]")
    wait_for(lambda: shown(cluster, "init") == ("1/1", "Running"), 30, what="Running after the init containers")
    inits = status(cluster, "init")["initContainerStatuses"]
    assert [(s["name"], s["state"]["terminated"]["reason"], s["ready"]) for s in inits] == [
        ("i1", "Completed", True), ("i2", "Completed", True)]
    first_done = inits[1]["state"]["terminated"]["finishedAt"]
    assert status(cluster, "init")["containerStatuses"][0]["state"]["running"]["startedAt"] >= first_done
    events = cluster.kubectl_json("get", "events", "--field-selector", "involvedObject.name=init")["items"]
    assert {e["involvedObject"].get("fieldPath") for e in events if e["reason"] == "Started"} == {
        "spec.initContainers{i1}", "spec.initContainers{i2}", "spec.containers{c}"}
    remove(cluster, "init")


def test_a_failed_init_container_fails_the_pod_under_never_and_crash_loops_under_always(
        cluster: PodlifeProcess) -> None:
    create(cluster, "init-never", [busybox("c", "sleep", "3600")], restartPolicy="Never",
           initContainers=[busybox("i1", "sh", "-c", "exit 3")])
    create(cluster, "init-always", [busybox("c", "sleep", "3600")],
           initContainers=[busybox("i1", "sh", "-c", "exit 3")])
    wait_for(lambda: status(cluster, "init-never").get("phase") == "Failed", 30, what="Failed")
    assert shown(cluster, "init-never") == ("0/1", "Init:Error")
    app = status(cluster, "init-never")["containerStatuses"][0]
    assert app["state"] == {"waiting": {"reason": "PodInitializing"}} and app["restartCount"] == 0
    wait_for(lambda: shown(cluster, "init-always")[1] == "Init:CrashLoopBackOff", 40, what="Init:CrashLoopBackOff")
    assert status(cluster, "init-always")["phase"] == "Pending"
    remove(cluster, "init-never", "init-always")


def test_a_sidecar_counts_in_ready_outlives_app_restarts_and_stops_after_a_finished_app(
        cluster: PodlifeProcess) -> None:
    sidecar = busybox("log", "sleep", "3600", restartPolicy="Always")
    create(cluster, "side", [busybox("c", "sh", "-c", "sleep 1; exit 1")], initContainers=[sidecar])
    create(cluster, "side-job", [busybox("c", "sleep", "1")], restartPolicy="Never", initContainers=[sidecar])
    wait_for(lambda: (status(cluster, "side").get("containerStatuses") or [{}])[0].get("restartCount", 0) >= 1,
             40, what="the app restarted")
    side = status(cluster, "side")["initContainerStatuses"][0]
    assert side["restartCount"] == 0 and "running" in side["state"] and side["started"] is True
    wait_for(lambda: status(cluster, "side-job").get("phase") == "Succeeded", 40, what="the job-like pod Succeeded")
    finished = status(cluster, "side-job")
    assert "terminated" in finished["initContainerStatuses"][0]["state"]  # the sidecar was stopped
    assert finished["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    remove(cluster, "side", "side-job")


def test_an_http_readiness_probe_reaches_the_server_inside_the_pods_network(cluster: PodlifeProcess) -> None:
    create(cluster, "web", [{"name": "c", "image": "python", "command": ["sh", "-c",
                                                                      "sleep 2; exec python3 -m http.server 18080"],
                             "readinessProbe": {"httpGet": {"path": "/", "port": 18080}, "periodSeconds": 1}}])
    wait_for(lambda: status(cluster, "web").get("phase") == "Running", 30, what="Running")
    assert condition(cluster, "web", "Ready")["status"] == "False"
    wait_for(lambda: condition(cluster, "web", "Ready").get("status") == "True", 30, what="Ready")
    events = cluster.kubectl_json("get", "events", "--field-selector", "involvedObject.name=web")["items"]
    unhealthy = [e["message"] for e in events if e["reason"] == "Unhealthy"]
    assert unhealthy and unhealthy[0].startswith('Readiness probe failed: Get "http://127.0.0.1:18080/": dial tcp '
                                                 '127.0.0.1:18080: connect: connection refused')
    remove(cluster, "web")


def test_active_deadline_fails_a_running_pod(cluster: PodlifeProcess) -> None:
    create(cluster, "deadline", [busybox("c", "sleep", "3600")], activeDeadlineSeconds=2)
    wait_for(lambda: status(cluster, "deadline").get("reason") == "DeadlineExceeded", 30, what="DeadlineExceeded")
    failed = status(cluster, "deadline")
    assert (failed["phase"], failed["message"]) == (
        "Failed", "Pod was active on the node longer than the specified deadline")
    assert shown(cluster, "deadline")[1] == "DeadlineExceeded"
    wait_for(lambda: "terminated" in status(cluster, "deadline")["containerStatuses"][0]["state"], 30,
             what="the container stopped")
    assert "DeadlineExceeded" in cluster.kubectl("describe", "pod", "deadline").stdout
    remove(cluster, "deadline")


@pytest.mark.parametrize("policy", ["Always", "OnFailure", "Never"])
def test_a_memory_hog_is_oom_killed_under_every_restart_policy(cluster: PodlifeProcess, policy: str) -> None:
    name = f"hog-{policy.lower()}"
    create(cluster, name, [{"name": "c", "image": "python", "command": [
        "python3", "-c", "a = bytearray(400 * 1024 * 1024)"], "resources": {"limits": {"memory": "64Mi"}}}],
        restartPolicy=policy)

    def ended() -> dict[str, Any] | None:
        c = (status(cluster, name).get("containerStatuses") or [{}])[0]
        return (c.get("lastState") or {}).get("terminated") or (c.get("state") or {}).get("terminated")

    oom = wait_for(ended, 60, what="the hog ended")
    assert (oom["reason"], oom["exitCode"]) == ("OOMKilled", 137)
    if policy == "Never":
        wait_for(lambda: status(cluster, name).get("phase") == "Failed", 30, what="Failed")
    else:
        wait_for(lambda: status(cluster, name)["containerStatuses"][0]["restartCount"] >= 1, 60, what="a restart")
        assert status(cluster, name)["phase"] == "Running"
    remove(cluster, name)


def test_a_container_is_stopped_with_its_stop_signal(cluster: PodlifeProcess) -> None:
    """``lifecycle.stopSignal`` replaces SIGTERM: the trap's exit code shows the signal arrived."""
    create(cluster, "stopsig", [busybox("c", "sh", "-c", "trap 'exit 7' USR1; while :; do sleep 0.1; done",
                                        lifecycle={"stopSignal": "SIGUSR1"},
                                        livenessProbe={"exec": {"command": ["false"]}, "initialDelaySeconds": 1,
                                                       "periodSeconds": 1, "failureThreshold": 1})],
           os={"name": "linux"}, terminationGracePeriodSeconds=10)

    def last() -> dict[str, Any] | None:
        c = (status(cluster, "stopsig").get("containerStatuses") or [{}])[0]
        return (c.get("lastState") or {}).get("terminated")

    assert wait_for(last, 60, what="the container stopped by its liveness probe")["exitCode"] == 7
    remove(cluster, "stopsig")


def test_a_termination_interrupted_by_an_agent_restart_gets_its_grace_period_again(cluster: PodlifeProcess) -> None:
    """The agent dies while a pod's containers wait out their grace period; the new agent
    adopts them and starts that grace period over (preStop again, then the signals)."""
    create(cluster, "slowstop", [busybox("c", "sleep", "3600")], terminationGracePeriodSeconds=15)
    wait_for(lambda: status(cluster, "slowstop").get("phase") == "Running", 30, what="Running")
    before = status(cluster, "slowstop")["containerStatuses"][0]["containerID"]
    cluster.kubectl("delete", "pod", "slowstop", "--wait=false")
    wait_for(lambda: condition(cluster, "slowstop", "Ready").get("status") == "False", 10, what="unready")
    assert cluster.proc is not None
    os.kill(cluster.proc.pid, signal.SIGKILL)  # the agent only: conmon and the container go on
    cluster.proc.wait(10)
    cluster.proc = None
    cluster.start()
    # sleep ignores SIGTERM as PID 1: only SIGKILL, after the (new) grace period, ends it
    shown = status(cluster, "slowstop")["containerStatuses"][0]
    assert shown["containerID"] == before and "running" in shown["state"]
    wait_for(lambda: cluster.kubectl("get", "pod", "slowstop", check=False).returncode != 0, 60,
             what="the pod gone after its grace period")


def test_readiness_gates_combine_with_a_condition_somebody_else_patches(cluster: PodlifeProcess) -> None:
    gate = "example.com/load-balancer"
    create(cluster, "gated", [busybox("c", "sleep", "3600")], readinessGates=[{"conditionType": gate}])
    wait_for(lambda: condition(cluster, "gated", "ContainersReady").get("status") == "True", 30,
             what="the containers ready")
    ready = condition(cluster, "gated", "Ready")
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "False", "ReadinessGatesNotReady", f'corresponding condition of pod readiness gate "{gate}" does not exist.')
    assert shown(cluster, "gated")[0] == "1/1"
    cluster.kubectl("patch", "pod", "gated", "--subresource=status", "--type=json", "-p", json.dumps([
        {"op": "add", "path": "/status/conditions/-", "value": {"type": gate, "status": "True"}}]))
    wait_for(lambda: condition(cluster, "gated", "Ready").get("status") == "True", 30, what="Ready")
    assert condition(cluster, "gated", gate)["status"] == "True"  # kept by the node's writes
    remove(cluster, "gated")
