"""gRPC probes against real grpc health servers (grpcio's ``grpc_health.v1`` servicer) on loopback.

Each server binds a free loopback port in the test process; a "hanging" one holds
its Check call until the test ends. The pod-namespace path is checked against a
server in a real network namespace of its own (``unshare --net``, root only).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from podlife.kubelet.grpc_probe import call_error, grpc_handler
from podlife.kubelet.prober import ProbeSpec, run_probe
from podlife.kubelet.runtime import ProcessRuntime

#: host processes share this machine's network: probes connect in the test's own namespace
HOST = ProcessRuntime(Path("/nonexistent-podlife-test-root"))
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


class HangingHealth(health.HealthServicer):
    """A health servicer whose Check answers only once ``release`` is set."""

    def __init__(self, release: threading.Event) -> None:
        super().__init__()
        self.release = release

    def Check(self, request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext) -> object:  # noqa: N802
        self.release.wait(30)
        return super().Check(request, context)


def serve(servicer: health.HealthServicer | None) -> tuple[grpc.Server, int]:
    """A started grpc server on a free loopback port, with ``servicer`` (None: no health service)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    if servicer is not None:
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


@pytest.fixture
def healthy() -> Iterator[int]:
    """A health server: "" and "app" SERVING, "down" NOT_SERVING; its port."""
    servicer = health.HealthServicer()
    servicer.set("", SERVING)
    servicer.set("app", SERVING)
    servicer.set("down", NOT_SERVING)
    server, port = serve(servicer)
    yield port
    server.stop(None)


def spec(port: int, timeout: int = 1, **grpc_action: object) -> ProbeSpec:
    probe = ProbeSpec.of({"readinessProbe": {"grpc": {"port": port, **grpc_action}, "timeoutSeconds": timeout}},
                         "Readiness")
    assert probe is not None
    return probe


async def probe(port: int, timeout: int = 1, **grpc_action: object) -> str | None:
    return await run_probe(spec(port, timeout, **grpc_action), runtime=HOST, handle=None,  # type: ignore[arg-type]
                           container={})


async def test_serving_is_a_success(healthy: int) -> None:
    assert await probe(healthy) is None
    assert await probe(healthy, service="app") is None


async def test_not_serving_fails_with_kubernetes_message(healthy: int) -> None:
    assert await probe(healthy, service="down") == 'service unhealthy (responded with "NOT_SERVING")'


async def test_an_unknown_service_fails_with_the_status_error(healthy: int) -> None:
    assert await probe(healthy, service="nope") == "error: health rpc probe failed: rpc error: code = NotFound desc = "


async def test_a_server_without_the_health_service_is_reported() -> None:
    server, port = serve(None)
    try:
        error = await probe(port)
    finally:
        server.stop(None)
    assert error is not None
    assert error.startswith("error: this server does not implement the grpc health protocol (grpc.health.v1.Health): ")


async def test_nothing_listening_is_a_connect_timeout() -> None:
    server, port = serve(None)
    server.stop(None).wait()  # a port that was just free and has nothing on it now
    began = time.monotonic()
    error = await probe(port)
    assert error == f'timeout: failed to connect service "127.0.0.1:{port}" within 1s: context deadline exceeded'
    assert 0.9 <= time.monotonic() - began < 3  # retried until the timeout, as grpc-go's blocking dial


async def test_a_hanging_server_is_a_call_timeout() -> None:
    release = threading.Event()
    server, port = serve(HangingHealth(release))
    try:
        began = time.monotonic()
        error = await probe(port, timeout=2)
        took = time.monotonic() - began
    finally:
        release.set()
        server.stop(None)
    assert error == "timeout: health rpc did not complete within 2s"
    assert 1.9 <= took < 4


async def test_only_loopback_is_contacted() -> None:
    error = await probe(50051, host="10.0.0.1")  # not a field of grpc probes; refused all the same
    assert error is not None and error.startswith("refusing to connect to 10.0.0.1")


def test_grpc_status_codes_read_as_grpc_go_names() -> None:
    assert call_error("CANCELLED", "x", 1) == "error: health rpc probe failed: rpc error: code = Canceled desc = x"
    assert call_error("PERMISSION_DENIED", "", 1).endswith("code = PermissionDenied desc = ")
    assert call_error("DEADLINE_EXCEEDED", "", 3) == "timeout: health rpc did not complete within 3s"


def test_grpcio_is_not_imported_by_the_prober() -> None:
    code = "import sys, podlife.kubelet.prober, podlife.kubelet.grpc_probe; assert 'grpc' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


NETNS_SERVER = """
import sys
from concurrent import futures
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
servicer = health.HealthServicer()
servicer.set("", health_pb2.HealthCheckResponse.SERVING)
server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
print(server.add_insecure_port("127.0.0.1:0"), flush=True)
server.start()
sys.stdin.read()
"""


@pytest.fixture
def netns_server() -> Iterator[tuple[str, int]]:
    """A health server alone in a new network namespace: (that namespace's path, its port)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs root, unshare and ip to make a network namespace")
    proc = subprocess.Popen(["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$0" -c "$1"',
                             sys.executable, NETNS_SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdin is not None
    try:
        port = int(proc.stdout.readline())
        yield f"/proc/{proc.pid}/ns/net", port
    finally:
        proc.stdin.close()  # the server ends at end of input
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_a_server_in_a_pod_namespace_is_reached_there_only(netns_server: tuple[str, int]) -> None:
    netns, port = netns_server
    action = {"port": port}
    assert await grpc_handler({}, action, netns, 2) is None
    assert await grpc_handler({}, action, None, 1) is not None  # this machine's 127.0.0.1 is another one
    assert await grpc_handler({}, {"port": port, "service": "nope"}, netns, 2) == (
        "error: health rpc probe failed: rpc error: code = NotFound desc = ")
    missing = {"port": port + 1 if port < 65535 else port - 1}
    assert await grpc_handler({}, missing, netns, 1) == (
        f'timeout: failed to connect service "127.0.0.1:{missing["port"]}" within 1s: context deadline exceeded')
