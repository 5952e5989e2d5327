"""A pod's life through the real server, driven with the real kubectl (issue 2's flow)."""

from __future__ import annotations

import json
import signal
import time

import pytest

from .cluster_harness import PodlifeProcess, wait_for

pytestmark = pytest.mark.e2e

TRAP_TERM = "trap 'echo got TERM; exit 0' TERM; echo hello from $POD_NAME; while :; do sleep 0.2; done"
IGNORE_TERM = "trap '' TERM; echo stubborn; while :; do sleep 0.2; done"


def pod_yaml(name: str, script: str, grace: int = 30, restart: str = "Always") -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"restartPolicy": restart, "terminationGracePeriodSeconds": grace,
                 "containers": [{"name": name, "image": "ruby:3.3", "command": ["/bin/sh", "-c", script],
                                 "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}]},
    })


def pod(cluster: PodlifeProcess, name: str) -> dict:
    return cluster.kubectl_json("get", "pod", name)


def phase(cluster: PodlifeProcess, name: str) -> str:
    return pod(cluster, name).get("status", {}).get("phase", "")


def gone(cluster: PodlifeProcess, name: str) -> bool:
    return cluster.kubectl("get", "pod", name, check=False).returncode != 0


def test_one_ready_node(cluster: PodlifeProcess) -> None:
    out = cluster.kubectl("get", "nodes").stdout
    lines = out.strip().splitlines()
    assert lines[0].split()[:2] == ["NAME", "STATUS"]
    assert len(lines) == 2 and " Ready " in lines[1]
    node = cluster.kubectl_json("get", "nodes")["items"][0]
    assert int(node["status"]["capacity"]["cpu"]) >= 1
    assert node["status"]["capacity"]["pods"] == "110"


def test_pod_flow_watch_status_port_logs_delete(cluster: PodlifeProcess) -> None:
    watch = cluster.kubectl_watch("pods", "--output-watch-events")
    try:
        cluster.kubectl("create", "-f", "-", input=pod_yaml("ruby-ex", TRAP_TERM))
        wait_for(lambda: phase(cluster, "ruby-ex") == "Running", 60, what="ruby-ex Running")
        status = pod(cluster, "ruby-ex")["status"]
        cs = status["containerStatuses"][0]
        assert cs["ready"] is True and cs["state"]["running"]["startedAt"] and cs["containerID"]
        assert status["podIP"].startswith("10.244.") and status["hostIP"] and status["startTime"]
        conditions = {c["type"]: c["status"] for c in status["conditions"]}
        assert conditions["Initialized"] == conditions["Ready"] == conditions["PodScheduled"] == "True"

        ports = cluster.kubectl_json("get", "ports")["items"]
        port = next(p for p in ports if p["metadata"]["name"] == "ruby-ex")
        assert port["spec"]["fixedIPs"][0]["ipAddress"] == status["podIP"]
        assert port["spec"]["macAddress"].startswith("fa:16:3e:")
        assert "ruby-ex" in cluster.kubectl("get", "ports").stdout

        wait_for(lambda: "hello from ruby-ex" in cluster.kubectl("logs", "ruby-ex").stdout, 30, what="log line")
        events = cluster.kubectl("describe", "pod", "ruby-ex").stdout
        for reason in ("Scheduled", "Pulled", "Created", "Started"):
            assert reason in events, f"{reason} event missing from describe:\n{events}"
        # listed in the order they happened, though they share a second (event names carry nanoseconds)
        listed = [line.split()[1] for line in events.split("Events:", 1)[1].splitlines()
                  if line.strip().startswith(("Normal", "Warning"))]
        assert listed[:4] == ["Scheduled", "Pulled", "Created", "Started"], events

        started = time.monotonic()
        cluster.kubectl("delete", "pod", "ruby-ex", "--wait=true", timeout=60)
        assert time.monotonic() - started < 20  # TERM-trapping: well inside the 30 s grace
        assert gone(cluster, "ruby-ex")
        wait_for(lambda: "ruby-ex" not in cluster.kubectl("get", "ports").stdout, 30, what="port removed")
        wait_for(lambda: "Killing" in cluster.kubectl("get", "events", "--field-selector", "involvedObject.name=ruby-ex").stdout,
                 30, what="Killing event")
    finally:
        watch.send_signal(signal.SIGTERM)
        out, _ = watch.communicate(timeout=10)
    statuses = [line.split()[3] for line in out.splitlines() if line.split()[1:2] == ["ruby-ex"]]
    # the order the seed shows: Pending, ContainerCreating, Running, then Terminating
    order = [s for i, s in enumerate(statuses) if i == 0 or statuses[i - 1] != s]
    assert order[:3] == ["Pending", "ContainerCreating", "Running"], out
    assert "Terminating" in order[3:], out
    assert out.splitlines()[-1].split()[0] == "DELETED", out


def test_status_fields_follow_the_seed_order(cluster: PodlifeProcess) -> None:
    status, listed = cluster.http("GET", "/api/v1/namespaces/default/pods")
    rv = listed["metadata"]["resourceVersion"]
    cluster.kubectl("create", "-f", "-", input=pod_yaml("seq", TRAP_TERM, grace=2))
    wait_for(lambda: phase(cluster, "seq") == "Running", 60, what="seq Running")
    lines = cluster.watch_events(f"/api/v1/namespaces/default/pods?watch=1&resourceVersion={rv}&timeoutSeconds=1"
                                 "&fieldSelector=metadata.name%3Dseq")
    seen: list[str] = []
    for ev in lines:
        st = ev["object"].get("status", {})
        cs = (st.get("containerStatuses") or [{}])[0]
        step = ("running" if st.get("phase") == "Running" else
                "ip" if st.get("podIP") else
                "creating" if (cs.get("state") or {}).get("waiting", {}).get("reason") == "ContainerCreating" else
                "bound" if ev["object"]["spec"].get("nodeName") else "pending")
        if not seen or seen[-1] != step:
            seen.append(step)
    assert seen == ["pending", "bound", "creating", "ip", "running"] or seen == ["pending", "bound", "creating", "running"], seen
    creating = next(ev["object"]["status"] for ev in lines
                    if (ev["object"]["status"].get("containerStatuses") or [{}])[0].get("state", {}).get("waiting"))
    ready = next(c for c in creating["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "ContainersNotReady"
    assert creating["hostIP"] and creating["startTime"] and "podIP" not in creating
    cluster.kubectl("delete", "pod", "seq", "--wait=true")


def test_term_ignoring_container_is_killed_after_grace(cluster: PodlifeProcess) -> None:
    cluster.kubectl("create", "-f", "-", input=pod_yaml("stubborn", IGNORE_TERM, grace=2))
    wait_for(lambda: phase(cluster, "stubborn") == "Running", 60, what="stubborn Running")
    started = time.monotonic()
    cluster.kubectl("delete", "pod", "stubborn", "--wait=true", timeout=60)
    elapsed = time.monotonic() - started
    assert gone(cluster, "stubborn")
    assert elapsed >= 1.5, f"deleted after {elapsed:.1f}s: the grace period was not honoured"


@pytest.mark.parametrize(("script", "expected_phase", "column"), [
    ("echo done; exit 0", "Succeeded", "Completed"),
    ("echo broken; exit 3", "Failed", "Error"),
])
def test_run_to_completion(cluster: PodlifeProcess, script: str, expected_phase: str, column: str) -> None:
    name = f"once-{expected_phase.lower()}"
    cluster.kubectl("create", "-f", "-", input=pod_yaml(name, script, restart="Never"))
    wait_for(lambda: phase(cluster, name) == expected_phase, 60, what=f"{name} {expected_phase}")
    assert column in cluster.kubectl("get", "pod", name).stdout
    term = pod(cluster, name)["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == (0 if expected_phase == "Succeeded" else 3)
    cluster.kubectl("delete", "pod", name, "--wait=true")


def test_fallback_to_logs_on_error_is_the_message_of_a_failed_host_process(cluster: PodlifeProcess) -> None:
    body = json.loads(pod_yaml("last-words", "echo first; echo cannot open db; exit 2", restart="Never"))
    body["spec"]["containers"][0]["terminationMessagePolicy"] = "FallbackToLogsOnError"
    cluster.kubectl("create", "-f", "-", input=json.dumps(body))
    try:
        wait_for(lambda: phase(cluster, "last-words") == "Failed", 60, what="last-words Failed")
        term = pod(cluster, "last-words")["status"]["containerStatuses"][0]["state"]["terminated"]
        assert (term["exitCode"], term["message"]) == (2, "first\ncannot open db\n")
    finally:
        cluster.kubectl("delete", "pod", "last-words", "--wait=true")


def test_always_restarts_a_crashing_container(cluster: PodlifeProcess) -> None:
    cluster.kubectl("create", "-f", "-", input=pod_yaml("crasher", "echo boom; exit 1"))
    wait_for(lambda: pod(cluster, "crasher")["status"].get("containerStatuses", [{}])[0].get("restartCount", 0) >= 1,
             60, what="a restart")
    cs = pod(cluster, "crasher")["status"]["containerStatuses"][0]
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    cluster.kubectl("delete", "pod", "crasher", "--wait=true", "--grace-period=1")
