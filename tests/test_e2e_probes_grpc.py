"""gRPC probes on a real (process-runtime) node, driven with the real kubectl.

A process-runtime pod is a host process, so its container runs this test's own
Python (which has grpcio) with a small grpc health server on a free loopback port.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from .cluster_harness import PodlifeProcess, wait_for
from .test_e2e_probes import container_status, create, event_messages, free_port, ready_condition

pytestmark = pytest.mark.e2e

#: argv: port, the status of service "" (SERVING or NOT_SERVING), and a file to wait for before serving
HEALTH_SERVER = """
import os, sys, time
from concurrent import futures
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
port, status, go = int(sys.argv[1]), sys.argv[2], sys.argv[3]
while not os.path.exists(go):
    time.sleep(0.1)
servicer = health.HealthServicer()
servicer.set("", health_pb2.HealthCheckResponse.ServingStatus.Value(status))
server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
server.add_insecure_port(f"127.0.0.1:{port}")
server.start()
server.wait_for_termination()  # SIGTERM ends the process
"""


def health_server(tmp_path: Path, port: int, status: str, go: Path) -> str:
    """The container's shell command: this Python running HEALTH_SERVER."""
    script = tmp_path / "health_server.py"
    script.write_text(HEALTH_SERVER)
    return shlex.join(["exec", sys.executable, str(script), str(port), status, str(go)])


def test_a_grpc_readiness_probe_holds_ready_until_the_server_serves(cluster: PodlifeProcess, tmp_path: Path) -> None:
    port, go = free_port(), tmp_path / "go"
    create(cluster, "grpc-ready", health_server(tmp_path, port, "SERVING", go),
           readinessProbe={"grpc": {"port": port}, "periodSeconds": 1})
    wait_for(lambda: container_status(cluster, "grpc-ready").get("state", {}).get("running"), 60, what="running")
    wait_for(lambda: ready_condition(cluster, "grpc-ready") == "False", 30, what="Ready False")
    events = wait_for(lambda: event_messages(cluster, "grpc-ready").get("Unhealthy"), 30, what="an Unhealthy event")
    assert events == (f'Readiness probe failed: timeout: failed to connect service "127.0.0.1:{port}" within 1s: '
                      "context deadline exceeded")
    go.touch()
    wait_for(lambda: ready_condition(cluster, "grpc-ready") == "True", 30, what="Ready True")
    assert container_status(cluster, "grpc-ready")["ready"] is True
    cluster.kubectl("delete", "pod", "grpc-ready", "--wait=true", timeout=60)


def test_a_not_serving_grpc_liveness_probe_restarts_the_container(cluster: PodlifeProcess, tmp_path: Path) -> None:
    port, go = free_port(), tmp_path / "go"
    go.touch()
    create(cluster, "grpc-live", health_server(tmp_path, port, "NOT_SERVING", go),
           livenessProbe={"grpc": {"port": port}, "periodSeconds": 1, "failureThreshold": 1, "timeoutSeconds": 5})
    wait_for(lambda: container_status(cluster, "grpc-live").get("restartCount", 0) >= 1, 60, what="a restart")
    def killed() -> dict[str, str]:
        events = event_messages(cluster, "grpc-live")
        return events if "Killing" in events else {}

    events = wait_for(killed, 30, what="a Killing event")

    def unhealthy() -> list[str]:
        """Every failed run is an Unhealthy event: on a loaded machine the first ones may find
        the server not listening yet, or too slow to answer."""
        return [e["message"] for e in cluster.kubectl_json(
            "get", "events", "--field-selector", "involvedObject.name=grpc-live")["items"] if e["reason"] == "Unhealthy"]

    not_serving = 'Liveness probe failed: service unhealthy (responded with "NOT_SERVING")'
    wait_for(lambda: not_serving in unhealthy(), 60, what="a NOT_SERVING Unhealthy event")
    assert events["Killing"] == "Container grpc-live failed liveness probe, will be restarted"
    described = cluster.kubectl("describe", "pod", "grpc-live").stdout
    assert "Unhealthy" in described and 'service unhealthy (responded with "NOT_SERVING")' in described
    cluster.kubectl("delete", "pod", "grpc-live", "--wait=true", timeout=60)
