"""``kubectl port-forward`` and ``exec`` over every protocol kubectl speaks, and the official Python client.

kubectl 1.31+ tunnels SPDY/3.1 inside a WebSocket (``SPDY/3.1+portforward.k8s.io``);
kubectl 1.30 upgrades a POST to plain SPDY/3.1. ``exec`` is WebSocket v5 from
kubectl 1.30 on and SPDY (``v4.channel.k8s.io``) before. Each test runs once per
kubectl binary: the pinned one of the virtualenv, and ``kubectl.<release>`` found
beside the machine's ``kubectl`` dispatcher (absent: a skip, under CI a failure).
The pod serves HTTP on loopback (pods run as host processes) from a folder that
also holds a 3 MiB file, so a transfer larger than SPDY's 64 KiB window goes
through. The Python client's v5 close signal must end the command's stdin (its
line-by-line interactive exec is in ``test_e2e_python_clients.py``).

Every kubectl started here is stopped by its pid; every pod is deleted.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import pty
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from podlife.kubelet.spdy import SpdySession

from .cluster_harness import PodlifeProcess, missing, require_module, require_tool, wait_for
from .test_spdy import SocketTransport

pytestmark = pytest.mark.e2e

#: The kubectl releases beside the dispatcher that port-forward and exec run with ("pinned": the virtualenv's).
PORT_FORWARD_KUBECTLS = ("pinned", "1.33", "1.30")
#: Releases that speak SPDY for exec (before 1.30), and the newer ones.
EXEC_KUBECTLS = ("pinned", "1.33", "1.30", "1.29", "1.28")
BIG_FILE_BYTES = 3 * 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def kubectl_path(release: str) -> str:
    """The kubectl binary of ``release`` (skipped when absent, failed under CI)."""
    if release == "pinned":
        return require_tool("kubectl")
    dispatcher = shutil.which("kubectl")
    folder = Path(os.path.realpath(dispatcher)).parent if dispatcher else None
    binary = folder / f"kubectl.{release}" if folder else None
    if binary is None or not os.access(binary, os.X_OK):
        missing(f"kubectl.{release} is not beside the kubectl dispatcher")
    return str(binary)


def http_get(port: int, path: str = "/", timeout: float = 10) -> tuple[int, bytes]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as response:
        return response.status, response.read()


def pod_phase(cluster: PodlifeProcess, name: str) -> str:
    status, pod = cluster.http("GET", f"/api/v1/namespaces/default/pods/{name}")
    return pod.get("status", {}).get("phase", "") if status == 200 else ""


def create_pod(cluster: PodlifeProcess, name: str, command: list[str], working_dir: str | None = None) -> None:
    container: dict = {"name": "main", "image": "busybox", "command": command}
    if working_dir:
        container["workingDir"] = working_dir
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [container]}}
    status, answer = cluster.http("POST", "/api/v1/namespaces/default/pods", body)
    assert status == 201, answer
    wait_for(lambda: pod_phase(cluster, name) == "Running", 60, what=f"pod {name} Running")


def delete_pod(cluster: PodlifeProcess, name: str) -> None:
    cluster.http("DELETE", f"/api/v1/namespaces/default/pods/{name}?gracePeriodSeconds=0")


class WebPod:
    def __init__(self, port: int, big_sha: str) -> None:
        self.name, self.port, self.big_sha = "web", port, big_sha


@pytest.fixture(scope="module")
def web(cluster: PodlifeProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebPod]:
    """``python3 -m http.server`` on a free loopback port, serving index.html and a 3 MiB big.bin."""
    www = tmp_path_factory.mktemp("www")
    (www / "index.html").write_text("hello through port-forward\n")
    big = os.urandom(BIG_FILE_BYTES)
    (www / "big.bin").write_bytes(big)
    port = free_port()
    create_pod(cluster, "web", [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"], str(www))
    wait_for(lambda: http_get(port)[0] == 200, 30, what="the pod's HTTP server")
    try:
        yield WebPod(port, hashlib.sha256(big).hexdigest())
    finally:
        delete_pod(cluster, "web")


@pytest.fixture(scope="module")
def shell(cluster: PodlifeProcess) -> Iterator[str]:
    create_pod(cluster, "shell", ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.2; done"])
    try:
        yield "shell"
    finally:
        delete_pod(cluster, "shell")


def stop(proc: subprocess.Popen) -> str:
    """Stop a kubectl we started (its own process group, by pid) and return what it printed."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    out, err = proc.communicate()
    return f"{out}\n{err}"


# --------------------------------------------------------------------------- kubectl


@pytest.mark.parametrize("release", PORT_FORWARD_KUBECTLS)
def test_kubectl_port_forward(cluster: PodlifeProcess, web: WebPod, release: str) -> None:
    kubectl, local = kubectl_path(release), free_port()
    proc = subprocess.Popen([kubectl, "port-forward", "pod/web", f"{local}:{web.port}"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=cluster.kubectl_env(), start_new_session=True)
    try:
        status, body = wait_for(lambda: http_get(local), 30, what=f"kubectl {release} port-forward to answer")
        assert status == 200 and body == b"hello through port-forward\n"
        status, big = http_get(local, "/big.bin", timeout=60)  # far beyond SPDY's 64 KiB window
        assert status == 200 and hashlib.sha256(big).hexdigest() == web.big_sha
        statuses = [http_get(local)[0] for _ in range(5)]  # each request is a new pair of streams
        assert statuses == [200] * 5
        assert proc.poll() is None, "kubectl port-forward exited"
    finally:
        output = stop(proc)
    assert f"Forwarding from 127.0.0.1:{local} -> {web.port}" in output


@pytest.mark.parametrize("release", PORT_FORWARD_KUBECTLS)
def test_kubectl_port_forward_to_a_closed_port_reports_it(cluster: PodlifeProcess, web: WebPod, release: str) -> None:
    kubectl, local, closed = kubectl_path(release), free_port(), free_port()
    proc = subprocess.Popen([kubectl, "port-forward", "pod/web", f"{local}:{closed}"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=cluster.kubectl_env(), start_new_session=True)
    try:
        def refused_through_kubectl() -> bool:
            with socket.create_connection(("127.0.0.1", local), timeout=10) as conn:  # refused until kubectl listens
                try:
                    return conn.recv(100) == b""  # the pod side refused: kubectl closes our connection
                except ConnectionResetError:
                    return True  # closed abruptly: closed all the same

        wait_for(refused_through_kubectl, 30, what="kubectl to forward a connection")
    finally:
        output = stop(proc)
    assert f"error forwarding port {closed} to pod web" in output and "connection refused" in output.lower()


@pytest.mark.parametrize("release", EXEC_KUBECTLS)
def test_kubectl_exec_exit_code_and_stdin(cluster: PodlifeProcess, shell: str, release: str) -> None:
    kubectl, env = kubectl_path(release), cluster.kubectl_env()
    result = subprocess.run([kubectl, "exec", shell, "--", "sh", "-c", "echo out; echo err >&2; exit 3"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 3, result.stderr
    assert result.stdout == "out\n" and "err\n" in result.stderr
    assert "command terminated with exit code 3" in result.stderr
    fed = subprocess.run([kubectl, "exec", "-i", shell, "--", "sh", "-c", "cat; echo end"], input="typed\nlines\n",
                         capture_output=True, text=True, env=env, timeout=60)
    assert fed.returncode == 0, fed.stderr
    assert fed.stdout == "typed\nlines\nend\n"


@pytest.mark.parametrize("release", ("pinned", "1.28"))
def test_kubectl_attach(cluster: PodlifeProcess, tmp_path: Path, release: str) -> None:
    """kubectl 1.28 attaches over SPDY (stdout and stderr streams), 1.37 over WebSocket v5."""
    gate, name = tmp_path / "go", f"talker-{release.replace('.', '-')}"
    create_pod(cluster, name, ["/bin/sh", "-c", f"i=0; while [ ! -e {gate} ]; do echo tick $i; echo tock $i >&2; "
                                                f"i=$((i+1)); sleep 0.1; done; echo done"])
    proc = subprocess.Popen([kubectl_path(release), "attach", name], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=cluster.kubectl_env(), start_new_session=True)
    try:
        assert proc.stdout is not None
        assert select.select([proc.stdout], [], [], 30)[0], "kubectl attach printed nothing"
        first = proc.stdout.readline()
        assert first.startswith("tick "), first
        gate.touch()  # the container prints "done" and exits: the attach ends with it
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert out.endswith("done\n") and "tock" in err
    finally:
        if proc.poll() is None:
            stop(proc)
        delete_pod(cluster, name)


def run_on_terminal(cluster: PodlifeProcess, argv: list[str], *, answer: bytes, after: bytes,
                    timeout: float = 30) -> tuple[int, bytes]:
    """Run ``argv`` on a 33x101 pseudo-terminal; type ``answer`` once it has printed ``after``."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
    proc = subprocess.Popen(argv, stdin=follower, stdout=follower, stderr=follower, env=cluster.kubectl_env(),
                            start_new_session=True)
    os.close(follower)
    output, typed, deadline = b"", False, time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([leader], [], [], 0.1)[0]:
                try:
                    data = os.read(leader, 4096)
                except OSError:  # EIO: every writer of the terminal has gone
                    break
                if not data:
                    break
                output += data
                if after in output and not typed:
                    os.write(leader, answer)
                    typed = True
            elif proc.poll() is not None:
                break
        return proc.wait(timeout=10), output
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        os.close(leader)


@pytest.mark.parametrize("release", ("pinned", "1.28"))
def test_kubectl_exec_with_a_terminal(cluster: PodlifeProcess, shell: str, release: str) -> None:
    """kubectl 1.28 sends the terminal size on a SPDY resize stream; 1.37 on WebSocket channel 4."""
    code, output = run_on_terminal(cluster, [kubectl_path(release), "exec", "-it", shell, "--", "sh", "-c",
                                             "stty size; read x; echo got $x; exit 4"], answer=b"hello\r", after=b"33 101")
    assert code == 4, output
    assert b"33 101\r\n" in output and b"got hello\r\n" in output


def test_a_spdy_refusal_of_the_kubelet_reaches_the_client(cluster: PodlifeProcess, shell: str) -> None:
    server, token, context = cluster._config()
    target = urlsplit(server)
    with socket.create_connection((target.hostname, target.port), timeout=20) as raw, \
            context.wrap_socket(raw, server_hostname=target.hostname) as conn:
        conn.sendall((f"POST /api/v1/namespaces/default/pods/{shell}/exec?command=true&stdout=true HTTP/1.1\r\n"
                      f"Host: {target.netloc}\r\nAuthorization: Bearer {token}\r\nConnection: Upgrade\r\n"
                      "Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v9.channel.k8s.io\r\n"
                      "Content-Length: 0\r\n\r\n").encode())
        reader = conn.makefile("rb")
        head = b"".join(iter(reader.readline, b"\r\n"))
        length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")).split(b":")[1])
        body = reader.read(length)
    assert head.startswith(b"HTTP/1.1 403"), head
    status = json.loads(body)
    assert status["reason"] == "Forbidden" and "unable to negotiate protocol" in status["message"]


# --------------------------------------------------------------------------- the official Python client


def _core_api(cluster: PodlifeProcess):  # noqa: ANN202
    kubernetes = require_module("kubernetes")
    require_module("kubernetes.stream")
    return kubernetes.client.CoreV1Api(kubernetes.config.new_client_from_config(str(cluster.kubeconfig)))


def test_python_client_close_signal_ends_stdin(cluster: PodlifeProcess, shell: str) -> None:
    from kubernetes.stream import stream as k8s_stream  # noqa: PLC0415

    core = _core_api(cluster)
    s = k8s_stream(core.connect_get_namespaced_pod_exec, shell, "default", command=["/bin/sh", "-c", "cat; echo stdin closed"],
                   stdin=True, stdout=True, stderr=True, tty=False, _preload_content=False)
    try:
        assert s.subprotocol == "v5.channel.k8s.io"
        s.write_stdin("abc\n")
        assert s.readline_stdout(timeout=10) == "abc"
        s.close_channel(0)  # v5: channel 255 naming stdin
        # The command ends right away, so its last line and the close can come in one read, after which
        # the client's readline gives up: read what it buffered once the session has ended instead.
        s.run_forever(timeout=20)
        assert not s.is_open(), "the command did not end when stdin was closed"
        assert s.read_stdout() == "stdin closed\n"
        assert s.returncode == 0
    finally:
        s.close()


def test_python_client_port_forward(cluster: PodlifeProcess, web: WebPod) -> None:
    from kubernetes.stream import portforward  # noqa: PLC0415

    core = _core_api(cluster)
    pf = portforward(core.connect_get_namespaced_pod_portforward, "web", "default", ports=str(web.port))
    sock = pf.socket(web.port)
    try:
        sock.settimeout(20)
        sock.sendall(b"GET /index.html HTTP/1.0\r\nHost: pod\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        assert answer.startswith(b"HTTP/1.0 200") and answer.endswith(b"hello through port-forward\n")
        assert pf.error(web.port) is None
    finally:
        sock.close()
        pf.close()


# --------------------------------------------------------------------------- SPDY through the API server


async def test_spdy_port_forward_through_the_api_server_honours_windows(cluster: PodlifeProcess, web: WebPod) -> None:
    """Our own SPDY client, announcing flow control, downloads the big file through the API server's relay."""
    server, token, context = cluster._config()
    target = urlsplit(server)
    reader, writer = await asyncio.open_connection(target.hostname, target.port, ssl=context)
    request = ("POST /api/v1/namespaces/default/pods/web/portforward HTTP/1.1\r\n"
               f"Host: {target.netloc}\r\nAuthorization: Bearer {token}\r\nConnection: Upgrade\r\n"
               "Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\nContent-Length: 0\r\n\r\n")
    writer.write(request.encode())
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)).decode()
    assert head.startswith("HTTP/1.1 101") and "X-Stream-Protocol-Version: portforward.k8s.io" in head
    client = SpdySession(SocketTransport(reader, writer), client=True)
    loop = asyncio.create_task(client.run())
    try:
        await client.announce_flow_control()
        headers = {"port": str(web.port), "requestID": "0"}
        error = await client.open_stream({"streamType": "error", **headers})
        data = await client.open_stream({"streamType": "data", **headers})
        await error.close()
        await data.write(b"GET /big.bin HTTP/1.0\r\nHost: pod\r\n\r\n")
        async with asyncio.timeout(60):
            answer = await data.read_all()
            assert await error.read_all() == b""
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 200") and hashlib.sha256(body).hexdigest() == web.big_sha
    finally:
        await client.close()
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)

