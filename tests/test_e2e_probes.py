"""Probes on a real (process-runtime) node, driven with the real kubectl."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from .cluster_harness import PodlifeProcess, wait_for

pytestmark = pytest.mark.e2e


def create(cluster: PodlifeProcess, name: str, script: str, **container: object) -> None:
    cluster.kubectl("create", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"terminationGracePeriodSeconds": 2,
                 "containers": [{"name": name, "image": "ruby:3.3", "command": ["/bin/sh", "-c", script],
                                 **container}]},
    }))


def container_status(cluster: PodlifeProcess, name: str) -> dict:
    statuses = cluster.kubectl_json("get", "pod", name).get("status", {}).get("containerStatuses") or [{}]
    return statuses[0]


def ready_condition(cluster: PodlifeProcess, name: str) -> str:
    conditions = cluster.kubectl_json("get", "pod", name).get("status", {}).get("conditions") or []
    return next((c["status"] for c in conditions if c["type"] == "Ready"), "")


def event_messages(cluster: PodlifeProcess, name: str) -> dict[str, str]:
    events = cluster.kubectl_json("get", "events", "--field-selector", f"involvedObject.name={name}")["items"]
    return {e["reason"]: e["message"] for e in events}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_failing_liveness_probe_restarts_the_container(cluster: PodlifeProcess, tmp_path: Path) -> None:
    healthy = tmp_path / "healthy"
    create(cluster, "live", f"touch {healthy}; sleep 2; rm -f {healthy}; while :; do sleep 0.2; done",
           livenessProbe={"exec": {"command": ["cat", str(healthy)]}, "periodSeconds": 1, "failureThreshold": 1})
    wait_for(lambda: container_status(cluster, "live").get("restartCount", 0) >= 1, 60, what="a restart")
    assert container_status(cluster, "live")["restartCount"] == 1
    events = wait_for(lambda: (e := event_messages(cluster, "live")) and "Killing" in e and e, 30, what="events")
    assert events["Unhealthy"].startswith("Liveness probe failed: ")
    assert events["Killing"] == "Container live failed liveness probe, will be restarted"
    cluster.kubectl("delete", "pod", "live", "--wait=true", timeout=60)


def test_a_readiness_probe_holds_ready_until_the_server_listens(cluster: PodlifeProcess, tmp_path: Path) -> None:
    port, go = free_port(), tmp_path / "go"
    create(cluster, "ready", f"while [ ! -e {go} ]; do sleep 0.1; done; "
                             f"exec python3 -m http.server {port} --bind 127.0.0.1 --directory {tmp_path}",
           readinessProbe={"httpGet": {"path": "/", "port": port}, "periodSeconds": 1})
    wait_for(lambda: container_status(cluster, "ready").get("state", {}).get("running"), 60, what="running")
    wait_for(lambda: ready_condition(cluster, "ready") == "False", 30, what="Ready False")
    assert container_status(cluster, "ready")["ready"] is False
    go.touch()
    wait_for(lambda: ready_condition(cluster, "ready") == "True", 30, what="Ready True")
    assert container_status(cluster, "ready")["ready"] is True
    cluster.kubectl("delete", "pod", "ready", "--wait=true", timeout=60)
