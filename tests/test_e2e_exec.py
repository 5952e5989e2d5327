"""``exec``, ``attach`` and ``port-forward`` through the real server: kubectl 1.32 and raw WebSockets.

kubectl speaks only ``v5.channel.k8s.io``; an aiohttp client stands in for kr8s
(``v4.channel.k8s.io`` only) and for the Python client's port-forward, which uses
the WebSocket protocol (kubectl's own port-forward, over SPDY, and exec with older
kubectls are in ``test_e2e_portforward``). ``kubectl exec -t`` wants a terminal,
so those tests give kubectl a pseudo-terminal of a known size.
Every pod is deleted at the end; waits poll with deadlines, never fixed sleeps.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import pty
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from .cluster_harness import PodlifeProcess, wait_for

pytestmark = pytest.mark.e2e

LOOP = "while :; do sleep 0.2; done"
V4, V5 = "v4.channel.k8s.io", "v5.channel.k8s.io"


def manifest(name: str, *containers: dict, restart: str = "Always", node: str | None = None) -> str:
    spec: dict = {"restartPolicy": restart, "terminationGracePeriodSeconds": 1, "containers": list(containers)}
    if node:
        spec["nodeName"] = node
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})


def container(name: str, *command: str, **extra: object) -> dict:
    return {"name": name, "image": "busybox", "command": list(command), **extra}


def phase(cluster: PodlifeProcess, name: str) -> str:
    return cluster.kubectl_json("get", "pod", name).get("status", {}).get("phase", "")


def create_running(cluster: PodlifeProcess, name: str, *containers: dict, restart: str = "Always") -> None:
    cluster.kubectl("create", "-f", "-", input=manifest(name, *containers, restart=restart))
    wait_for(lambda: phase(cluster, name) == "Running", 60, what=f"{name} Running")


def delete(cluster: PodlifeProcess, *names: str) -> None:
    cluster.kubectl("delete", "pod", *names, "--ignore-not-found", "--wait=true", timeout=60)


@pytest.fixture(scope="module")
def sleeper(cluster: PodlifeProcess) -> Iterator[str]:
    create_running(cluster, "sleeper", container("main", "/bin/sh", "-c", LOOP))
    try:
        yield "sleeper"
    finally:
        delete(cluster, "sleeper")


def run_in_terminal(cluster: PodlifeProcess, *args: str, keys: bytes = b"", rows: int = 33, cols: int = 101,
                    timeout: float = 30) -> tuple[int, bytes]:
    """Run kubectl on a pseudo-terminal of ``rows`` x ``cols``; type ``keys`` once it has printed something."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen([cluster.kubectl_bin, *args], stdin=follower, stdout=follower, stderr=follower,
                            env=cluster.kubectl_env(), start_new_session=True)
    os.close(follower)
    output, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not select.select([leader], [], [], 0.1)[0]:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(leader, 4096)
            except OSError:  # EIO: kubectl has exited and closed the terminal
                break
            if not data:
                break
            if keys and not output:
                os.write(leader, keys)
            output += data
        else:
            pytest.fail(f"kubectl {' '.join(args)} did not finish; output so far: {output!r}")
        return proc.wait(10), output
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        os.close(leader)


# --------------------------------------------------------------------------- kubectl exec


def test_exec_prints_output(cluster: PodlifeProcess, sleeper: str) -> None:
    result = cluster.kubectl("exec", sleeper, "--", "echo", "hi")
    assert result.stdout == "hi\n"


def test_exec_exit_code_becomes_kubectls(cluster: PodlifeProcess, sleeper: str) -> None:
    result = cluster.kubectl("exec", sleeper, "--", "sh", "-c", "exit 3", check=False)
    assert result.returncode == 3
    assert "command terminated with exit code 3" in result.stderr


def test_exec_stdin_is_echoed(cluster: PodlifeProcess, sleeper: str) -> None:
    result = cluster.kubectl("exec", "-i", sleeper, "--", "cat", input="first line\nsecond line\n")
    assert result.stdout == "first line\nsecond line\n"


def test_exec_stderr_goes_to_stderr(cluster: PodlifeProcess, sleeper: str) -> None:
    result = cluster.kubectl("exec", sleeper, "--", "sh", "-c", "echo to-out; echo to-err >&2")
    assert result.stdout == "to-out\n"
    assert "to-err" in result.stderr and "to-err" not in result.stdout


def test_exec_with_a_terminal_runs_on_a_pts(cluster: PodlifeProcess, sleeper: str) -> None:
    code, output = run_in_terminal(cluster, "exec", "-it", sleeper, "--", "tty")
    assert code == 0
    assert output.decode().strip().startswith("/dev/pts/"), output


def test_interactive_shell_gets_the_window_size_and_exit_code(cluster: PodlifeProcess, sleeper: str) -> None:
    code, output = run_in_terminal(cluster, "exec", "-it", sleeper, "--", "sh", keys=b"stty size; exit 4\r",
                                   rows=33, cols=101)
    assert b"33 101" in output, output
    assert code == 4


# --------------------------------------------------------------------------- refusals


EXEC_QUERY = "command=ls&stdout=true"


def test_refusals_are_statuses(cluster: PodlifeProcess, sleeper: str) -> None:
    status, body = cluster.http("GET", f"/api/v1/namespaces/default/pods/{sleeper}/exec?{EXEC_QUERY}")
    assert status == 400 and body["message"] == "Upgrade request required"
    status, body = cluster.http("GET", f"/api/v1/namespaces/default/pods/missing/exec?{EXEC_QUERY}")
    assert status == 404 and body["reason"] == "NotFound"
    status, body = cluster.http("GET", f"/api/v1/namespaces/default/pods/{sleeper}/exec?{EXEC_QUERY}&container=bad")
    assert status == 400 and body["message"] == f"container bad is not valid for pod {sleeper}"

    result = cluster.kubectl("exec", "missing", "--", "ls", check=False)
    assert result.returncode == 1 and 'pods "missing" not found' in result.stderr
    result = cluster.kubectl("exec", sleeper, "-c", "bad", "--", "ls", check=False)
    assert result.returncode == 1 and f"container bad is not valid for pod {sleeper}" in result.stderr


def test_a_finished_container_is_refused_by_the_kubelet(cluster: PodlifeProcess) -> None:
    create_running(cluster, "duo", container("main", "/bin/sh", "-c", LOOP), container("done", "true"), restart="Never")
    try:
        wait_for(lambda: any(s["name"] == "done" and "terminated" in s["state"]
                             for s in cluster.kubectl_json("get", "pod", "duo")["status"]["containerStatuses"]),
                 30, what="container done terminated")
        result = cluster.kubectl("exec", "duo", "-c", "done", "--", "ls", check=False)
        assert result.returncode == 1 and 'container not found ("done")' in result.stderr
        assert cluster.kubectl("exec", "duo", "-c", "main", "--", "echo", "ok").stdout == "ok\n"
    finally:
        delete(cluster, "duo")


def test_completed_pods_and_nodes_without_a_kubelet_are_refused(cluster: PodlifeProcess) -> None:
    cluster.kubectl("create", "-f", "-", input=manifest("finished", container("main", "true"), restart="Never"))
    node = json.dumps({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "no-kubelet"}})
    cluster.kubectl("create", "-f", "-", input=node)
    cluster.kubectl("create", "-f", "-", input=manifest("stranded", container("main", "sleep", "9"), node="no-kubelet"))
    try:
        wait_for(lambda: phase(cluster, "finished") == "Succeeded", 60, what="finished Succeeded")
        status, body = cluster.http("GET", f"/api/v1/namespaces/default/pods/finished/exec?{EXEC_QUERY}")
        assert status == 400 and "completed pod; current phase is Succeeded" in body["message"]
        status, body = cluster.http("GET", f"/api/v1/namespaces/default/pods/stranded/exec?{EXEC_QUERY}")
        assert status == 400 and "node no-kubelet has no kubelet endpoint" in body["message"]
        status, body = cluster.http("GET", "/api/v1/namespaces/default/pods/stranded/portforward?ports=80")
        assert status == 400 and "pod is not running" in body["message"]
    finally:
        cluster.kubectl("delete", "pod", "stranded", "--grace-period=0", "--force", "--ignore-not-found")
        delete(cluster, "finished")
        cluster.kubectl("delete", "node", "no-kubelet", "--ignore-not-found")


# --------------------------------------------------------------------------- raw WebSocket clients


def _session(cluster: PodlifeProcess) -> tuple[str, aiohttp.ClientSession]:
    server, token, ssl_context = cluster._config()
    connector = aiohttp.TCPConnector(ssl=ssl_context)
    return server, aiohttp.ClientSession(connector=connector, headers={"Authorization": f"Bearer {token}"})


async def _collect(ws: aiohttp.ClientWebSocketResponse, timeout: float = 30) -> dict[int, bytes]:
    channels: dict[int, bytes] = {}
    async with asyncio.timeout(timeout):
        async for message in ws:
            assert message.type == aiohttp.WSMsgType.BINARY
            channels[message.data[0]] = channels.get(message.data[0], b"") + message.data[1:]
    return channels


async def test_v4_only_client_gets_the_exit_status(cluster: PodlifeProcess, sleeper: str) -> None:
    server, session = _session(cluster)
    query = [("command", "sh"), ("command", "-c"), ("command", "echo v4; exit 5"), ("stdout", "true"), ("stderr", "true")]
    async with session, session.ws_connect(f"{server}/api/v1/namespaces/default/pods/{sleeper}/exec",
                                           params=query, protocols=(V4,)) as ws:
        assert ws.protocol == V4
        channels = await _collect(ws)
    assert channels[1] == b"v4\n"
    status = json.loads(channels[3])
    assert status["status"] == "Failure" and status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "5"}]


async def test_a_refused_upgrade_carries_the_status(cluster: PodlifeProcess, sleeper: str) -> None:
    server, session = _session(cluster)
    async with session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await session.ws_connect(f"{server}/api/v1/namespaces/default/pods/{sleeper}/exec",
                                     params=[("command", "ls"), ("stdout", "1")], protocols=("v9.channel.k8s.io",))
    assert err.value.status == 400


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


async def test_port_forward_over_websocket(cluster: PodlifeProcess, tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("hello from podlife\n")
    port = _free_port()
    web = container("web", sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                    workingDir=str(tmp_path))
    create_running(cluster, "web", web)
    server, session = _session(cluster)
    try:
        wait_for(lambda: _listening(port), 30, what="the pod's HTTP server")
        async with session, session.ws_connect(f"{server}/api/v1/namespaces/default/pods/web/portforward",
                                               params={"ports": str(port)}, protocols=(V4,)) as ws:
            prefix = struct.pack("<H", port)
            assert [(await ws.receive(timeout=10)).data for _ in range(2)] == [b"\x00" + prefix, b"\x01" + prefix]
            await ws.send_bytes(b"\x00GET /index.html HTTP/1.0\r\nHost: pod\r\n\r\n")
            channels = await _collect(ws)
        response = channels[0].decode()
        assert response.startswith("HTTP/1.0 200") and response.endswith("hello from podlife\n")
        assert 1 not in channels
    finally:
        delete(cluster, "web")


# --------------------------------------------------------------------------- kubectl attach


def test_attach_streams_the_containers_output(cluster: PodlifeProcess, tmp_path: Path) -> None:
    gate = tmp_path / "go"
    script = f"i=0; while [ ! -e {gate} ]; do echo tick $i; echo tock $i >&2; i=$((i+1)); sleep 0.1; done; echo done"
    create_running(cluster, "talker", container("main", "/bin/sh", "-c", script))
    attach = cluster.kubectl_popen("attach", "talker")
    try:
        seen = _read_lines(attach, count=3, timeout=30)
        gate.touch()  # the container says "done" and exits: the attach ends with it
        out, err = attach.communicate(timeout=30)
        assert attach.returncode == 0, err
        ticks = [int(line.split()[1]) for line in (seen + out.splitlines()) if line.startswith("tick ")]
        assert ticks == list(range(ticks[0], ticks[0] + len(ticks))), ticks  # nothing lost, nothing twice
        assert out.endswith("done\n") and "tock" in err
    finally:
        if attach.poll() is None:
            os.killpg(attach.pid, signal.SIGKILL)
            attach.communicate()
        delete(cluster, "talker")


def _read_lines(proc: subprocess.Popen, count: int, timeout: float) -> list[str]:
    """The first ``count`` lines ``proc`` prints, as they come."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while len(lines) < count:
        assert time.monotonic() < deadline and proc.poll() is None, f"no output from kubectl attach: {lines}"
        if select.select([proc.stdout], [], [], 0.1)[0]:
            lines.append(proc.stdout.readline().rstrip("\n"))
    return lines
