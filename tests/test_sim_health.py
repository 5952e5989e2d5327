"""Simulated pods live the pod-health rules (podlife issue 12): init containers, sidecars, probes,
activeDeadlineSeconds and evictions, read back with the real kubectl as a user reads a pod.

One ``podlife up --nodes 0 --sim-nodes 2`` with the default stages plus a few of the
test's own (an init container that fails, a node-pressure eviction), selected by
labels. Every check waits for what kubectl shows, never for a fixed time.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .cluster_harness import PodlifeProcess, require_tool, wait_for

pytestmark = pytest.mark.e2e

DEFAULT_STAGES = Path(__file__).resolve().parent.parent / "podlife" / "sim" / "default-stages.yaml"
EVICTION_MESSAGE = "The node was low on resource: memory. "
#: The test's stages, after the defaults: an init container `setup` that fails, and an eviction.
EXTRA_STAGES = f"""
---
apiVersion: sim.podlife.io/v1alpha1
kind: Stage
metadata: {{name: setup-fails}}
spec:
  selector: {{matchLabels: {{fault: init-fail}}}}
  delay: {{duration: 300ms}}
  next:
    action: init-fail
    container: setup
    exitCode: 3
    backoff: 30s
    event: {{type: Warning, reason: SimulatedInitFailure, message: setup fails}}
---
apiVersion: sim.podlife.io/v1alpha1
kind: Stage
metadata: {{name: evict}}
spec:
  selector: {{matchLabels: {{fault: evict}}}}
  delay: {{duration: 500ms}}
  next: {{action: evict, message: '{EVICTION_MESSAGE}', gracePeriod: 0s}}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    base = tmp_path_factory.mktemp("sim-health")
    stages = base / "stages.yaml"
    stages.write_text(DEFAULT_STAGES.read_text() + EXTRA_STAGES)
    proc = PodlifeProcess(base / "data", "--nodes", "0", "--sim-nodes", "2", "--sim-stages", str(stages),
                          kubectl=require_tool("kubectl")).start()
    try:
        yield proc
    finally:
        proc.stop()


def create(cluster: PodlifeProcess, name: str, spec: dict[str, Any], labels: dict[str, str] | None = None) -> None:
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
                "spec": {"terminationGracePeriodSeconds": 1, **spec}}
    cluster.kubectl("create", "-f", "-", input=json.dumps(manifest))


def app(name: str = "app", **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": "nginx:1.27", **fields}


def row(cluster: PodlifeProcess, name: str) -> tuple[str, str]:
    """(READY, STATUS) as ``kubectl get pod`` prints them."""
    cells = cluster.kubectl("get", "pod", name, "--no-headers").stdout.split()
    return cells[1], cells[2]


def status(cluster: PodlifeProcess, name: str) -> dict[str, Any]:
    return cluster.kubectl_json("get", "pod", name).get("status", {})


def _exists(cluster: PodlifeProcess, name: str) -> bool:
    return cluster.kubectl("get", "pod", name, "--ignore-not-found", "-o", "name").stdout.strip() != ""


def events(cluster: PodlifeProcess, name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cluster.kubectl_json(
        "get", "events", "--field-selector", f"involvedObject.name={name}")["items"]
    return items


# --------------------------------------------------------------------------- init containers


def test_init_containers_complete_one_after_the_other(cluster: PodlifeProcess) -> None:
    spec = {"initContainers": [app("init-a"), app("init-b")], "containers": [app()]}
    rows: list[tuple[str, str]] = []
    watch = cluster.kubectl_watch("pods", "--no-headers", "--field-selector", "metadata.name=init-ok")
    try:
        create(cluster, "init-ok", spec)
        wait_for(lambda: _exists(cluster, "init-ok") and row(cluster, "init-ok") == ("1/1", "Running"), 30, what="init-ok Running")
    finally:
        watch.send_signal(signal.SIGTERM)
        out, _ = watch.communicate(timeout=10)
    for line in out.splitlines():
        cells = line.split()
        if len(cells) >= 3 and (not rows or rows[-1][1] != cells[2]):
            rows.append((cells[1], cells[2]))
    shown = [s for _, s in rows]
    assert shown[-1] == "Running", out
    for earlier, later in [("Init:0/2", "Init:1/2"), ("Init:1/2", "PodInitializing"), ("PodInitializing", "Running")]:
        assert earlier in shown and later in shown and shown.index(earlier) < shown.index(later), out
    st = status(cluster, "init-ok")
    assert [(c["name"], c["state"]["terminated"]["reason"], c["state"]["terminated"]["exitCode"], c["ready"])
            for c in st["initContainerStatuses"]] == [("init-a", "Completed", 0, True), ("init-b", "Completed", 0, True)]
    assert {c["type"]: c["status"] for c in st["conditions"]}["Initialized"] == "True"


def test_a_failed_init_container_fails_a_never_pod(cluster: PodlifeProcess) -> None:
    create(cluster, "init-never", {"restartPolicy": "Never", "initContainers": [app("setup")], "containers": [app()]},
           labels={"fault": "init-fail"})
    wait_for(lambda: status(cluster, "init-never").get("phase") == "Failed", 30, what="init-never Failed")
    assert row(cluster, "init-never") == ("0/1", "Init:Error")  # reason Error, exit code 3
    setup = status(cluster, "init-never")["initContainerStatuses"][0]
    assert setup["state"]["terminated"]["exitCode"] == 3 and setup["restartCount"] == 0
    assert "running" not in status(cluster, "init-never")["containerStatuses"][0]["state"]  # the app never ran


def test_a_failing_init_container_crash_loops_an_always_pod(cluster: PodlifeProcess) -> None:
    create(cluster, "init-loop", {"initContainers": [app("setup")], "containers": [app()]},
           labels={"fault": "init-fail"})
    wait_for(lambda: row(cluster, "init-loop")[1] == "Init:CrashLoopBackOff", 30, what="Init:CrashLoopBackOff")
    st = status(cluster, "init-loop")
    assert st["phase"] == "Pending"
    setup = st["initContainerStatuses"][0]
    assert setup["restartCount"] >= 1 and setup["lastState"]["terminated"]["exitCode"] == 3
    # the events name the init container by its fieldPath, as the kubelet's do
    paths = {(e["reason"], e["involvedObject"].get("fieldPath")) for e in events(cluster, "init-loop")}
    assert ("SimulatedInitFailure", "spec.initContainers{setup}") in paths
    wait_for(lambda: ("BackOff", "spec.initContainers{setup}") in {
        (e["reason"], e["involvedObject"].get("fieldPath")) for e in events(cluster, "init-loop")}, 30,
        what="the BackOff event of the init container")


# --------------------------------------------------------------------------- sidecars and probes


def test_a_sidecar_runs_beside_the_app_and_counts_in_ready(cluster: PodlifeProcess) -> None:
    sidecar = app("proxy", restartPolicy="Always", lifecycle={"postStart": {"exec": {"command": ["true"]}}},
                  startupProbe={"exec": {"command": ["true"]}, "initialDelaySeconds": 1})
    create(cluster, "sidecar", {"initContainers": [sidecar, app("after")], "containers": [app()]})
    wait_for(lambda: row(cluster, "sidecar") == ("2/2", "Running"), 30, what="sidecar 2/2 Running")
    proxy, after = status(cluster, "sidecar")["initContainerStatuses"]
    assert "running" in proxy["state"] and proxy["started"] is True and proxy["ready"] is True
    assert after["state"]["terminated"]["reason"] == "Completed"
    # the init container after the sidecar started only once the sidecar had started (postStart, startup probe)
    assert after["state"]["terminated"]["startedAt"] >= proxy["state"]["running"]["startedAt"]


def test_a_startup_probe_holds_started_and_ready(cluster: PodlifeProcess) -> None:
    probe = {"exec": {"command": ["true"]}, "initialDelaySeconds": 3, "periodSeconds": 1}
    create(cluster, "startup", {"containers": [app(startupProbe=probe)]})
    wait_for(lambda: status(cluster, "startup").get("phase") == "Running", 30, what="startup Running")
    first = status(cluster, "startup")["containerStatuses"][0]
    assert "running" in first["state"] and first["started"] is False and first["ready"] is False
    assert row(cluster, "startup") == ("0/1", "Running")
    wait_for(lambda: row(cluster, "startup") == ("1/1", "Running"), 30, what="startup probe passed")
    assert status(cluster, "startup")["containerStatuses"][0]["started"] is True


def test_a_readiness_probe_delays_ready(cluster: PodlifeProcess) -> None:
    probe = {"exec": {"command": ["true"]}, "initialDelaySeconds": 2, "periodSeconds": 1, "successThreshold": 2}
    rows: list[tuple[str, str]] = []
    watch = cluster.kubectl_watch("pods", "--no-headers", "--field-selector", "metadata.name=readiness")
    try:
        create(cluster, "readiness", {"containers": [app(readinessProbe=probe)]})
        wait_for(lambda: _exists(cluster, "readiness") and row(cluster, "readiness") == ("1/1", "Running"), 30,
                 what="readiness 1/1")
    finally:
        watch.send_signal(signal.SIGTERM)
        out, _ = watch.communicate(timeout=10)
    for line in out.splitlines():
        cells = line.split()
        if len(cells) >= 3 and (not rows or rows[-1] != (cells[1], cells[2])):
            rows.append((cells[1], cells[2]))
    assert ("0/1", "Running") in rows and rows.index(("0/1", "Running")) < rows.index(("1/1", "Running")), out
    st = status(cluster, "readiness")
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    started = st["containerStatuses"][0]["state"]["running"]["startedAt"]
    # initialDelaySeconds 2 + (successThreshold - 1) * periodSeconds 1: ready 3 s after the start
    assert _seconds(ready["lastTransitionTime"]) - _seconds(started) >= 2, st


def _seconds(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


# --------------------------------------------------------------------------- the node failing a pod


def test_active_deadline_fails_the_pod(cluster: PodlifeProcess) -> None:
    create(cluster, "deadline", {"activeDeadlineSeconds": 2, "containers": [app()]})
    wait_for(lambda: row(cluster, "deadline") == ("1/1", "Running"), 30, what="deadline Running")
    wait_for(lambda: status(cluster, "deadline").get("phase") == "Failed", 30, what="deadline Failed")
    st = status(cluster, "deadline")
    assert st["reason"] == "DeadlineExceeded"
    assert st["message"] == "Pod was active on the node longer than the specified deadline"
    assert row(cluster, "deadline")[0] == "0/1"
    # kubectl's STATUS shows the reason until the stopped container's own reason replaces it (kubectl's rule)
    assert cluster.kubectl("get", "pod", "deadline", "-o", "jsonpath={.status.reason}").stdout == "DeadlineExceeded"
    wait_for(lambda: "terminated" in status(cluster, "deadline")["containerStatuses"][0]["state"], 30,
             what="the container stopped")
    assert "DeadlineExceeded" in {e["reason"] for e in events(cluster, "deadline")}


def test_an_eviction_stage_fails_the_pod_as_evicted(cluster: PodlifeProcess) -> None:
    create(cluster, "evicted", {"containers": [app()]}, labels={"fault": "evict"})
    wait_for(lambda: status(cluster, "evicted").get("phase") == "Failed", 30, what="evicted Failed")
    st = status(cluster, "evicted")
    assert st["reason"] == "Evicted" and st["message"] == EVICTION_MESSAGE
    target = next(c for c in st["conditions"] if c["type"] == "DisruptionTarget")
    assert target["status"] == "True" and target["reason"] == "TerminationByKubelet"
    assert row(cluster, "evicted")[0] == "0/1"
    assert cluster.kubectl("get", "pod", "evicted", "-o", "jsonpath={.status.reason}").stdout == "Evicted"
    wait_for(lambda: "terminated" in status(cluster, "evicted")["containerStatuses"][0]["state"], 30,
             what="the container stopped")
    assert "Evicted" in {e["reason"] for e in events(cluster, "evicted")}


# --------------------------------------------------------------------------- the rules, without a server


def test_verdict_times_follow_the_probes_fields() -> None:
    from podlife.sim.probes import verdict_times

    assert verdict_times({"name": "c"}, 100.0) == (None, None)
    assert verdict_times({"startupProbe": {"exec": {}}}, 100.0) == (100.0, None)  # initialDelaySeconds 0: at once
    ready = {"initialDelaySeconds": 2, "periodSeconds": 5, "successThreshold": 3}
    assert verdict_times({"readinessProbe": ready}, 100.0) == (None, 112.0)
    # readiness is only probed once the startup probe passed
    assert verdict_times({"startupProbe": {"initialDelaySeconds": 20}, "readinessProbe": ready}, 100.0) == (120.0, 130.0)


def test_health_stage_actions_parse_and_check_their_fields() -> None:
    from podlife.sim.stages import EVICT, INIT_FAIL, StageError, parse_stages

    stages = parse_stages(DEFAULT_STAGES.read_text() + EXTRA_STAGES)
    fail = next(s for s in stages.stages if s.action == INIT_FAIL)
    assert (fail.next.container, fail.next.exit_code, fail.next.backoff) == ("setup", 3, 30.0)
    evict = next(s for s in stages.stages if s.action == EVICT)
    assert (evict.next.message, evict.next.grace_period) == (EVICTION_MESSAGE, 0.0)
    header = "apiVersion: sim.podlife.io/v1alpha1\nkind: Stage\nmetadata: {name: x}\nspec:\n"
    with pytest.raises(StageError, match="exits non-zero"):
        parse_stages(header + "  next: {action: init-fail, exitCode: 0}\n")
    with pytest.raises(StageError, match='unknown field "exitCode"'):
        parse_stages(header + "  next: {action: evict, exitCode: 1}\n")
    pod = {"metadata": {"labels": {"fault": "init-fail"}}}
    assert stages.first(INIT_FAIL, pod, "setup") is not None
    assert stages.first(INIT_FAIL, pod, "other") is None  # the stage names another init container
