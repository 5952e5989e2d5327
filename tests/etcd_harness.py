"""Real etcd for tests: one member or a cluster of several, on free loopback ports, each in its own directory.

Debian's ``etcd-server`` (``/usr/bin/etcd``, installed by ``scripts/install-system-deps.sh``) is
started as a child process per member, bound to 127.0.0.1 only, with its own data directory
under the test's temporary directory. A member is ready when its ``/health`` answers
``"health":"true"`` (etcd's own health endpoint on the client port, plain HTTP on loopback).
Stopping ends exactly the processes started here, by pid (SIGTERM, then SIGKILL), and removes
their directories, also when a test fails.

Ports come from binding port 0 and releasing it; another process may take one in between,
so a member that exits at start is retried on fresh ports (the whole cluster, since its peers
name each other's ports).
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .cluster_harness import require_tool

START_TIMEOUT = 30.0
ATTEMPTS = 3


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class EtcdMember:
    """One etcd process: its name, ports, data directory and (while running) its process."""

    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def start(self, etcd: str, initial_cluster: str, token: str, state: str = "new") -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        client_url = f"http://{self.endpoint}"
        command = [etcd, "--name", self.name, "--data-dir", str(self.data_dir),
                   "--listen-client-urls", client_url, "--advertise-client-urls", client_url,
                   "--listen-peer-urls", self.peer_url, "--initial-advertise-peer-urls", self.peer_url,
                   "--initial-cluster", initial_cluster, "--initial-cluster-token", token,
                   "--initial-cluster-state", state]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.endpoint}/health", timeout=2) as response:
                return json.loads(response.read()).get("health") == "true"
        except (OSError, urllib.error.URLError, ValueError):
            return False

    def kill(self) -> None:
        """SIGKILL, as a crashed member (the data directory stays)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None


@dataclass
class EtcdCluster:
    """Running etcd members; ``url`` is the ``--store`` URL naming all of them."""

    members: list[EtcdMember] = field(default_factory=list)

    @property
    def url(self) -> str:
        return "etcd://" + ",".join(member.endpoint for member in self.members)

    def member_url(self, index: int) -> str:
        """A ``--store`` URL naming one member only."""
        return f"etcd://{self.members[index].endpoint}"

    def log_tail(self) -> str:
        return "\n".join(f"--- {m.name}:\n" + (m.log_path.read_text(errors="replace")[-2000:]
                                             if m.log_path.exists() else "") for m in self.members)

    def stop(self) -> None:
        for member in self.members:
            member.stop()


def _start(etcd: str, root: Path, size: int, attempt: int) -> EtcdCluster:
    ports = _free_ports(2 * size)
    cluster = EtcdCluster([EtcdMember(f"m{i}", ports[2 * i], ports[2 * i + 1], root / f"m{i}" / "data",
                                      root / f"m{i}.log") for i in range(size)])
    initial = ",".join(f"{m.name}={m.peer_url}" for m in cluster.members)
    for member in cluster.members:
        member.start(etcd, initial, token=f"podlife-test-{root.name}-{attempt}")
    return cluster


def _wait_healthy(cluster: EtcdCluster) -> bool:
    """Whether every member answers healthy before the timeout; False at once when one has exited."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if not all(member.running() for member in cluster.members):
            return False
        if all(member.healthy() for member in cluster.members):
            return True
        time.sleep(0.05)
    return False


@contextmanager
def running_etcd(root: Path, size: int = 1) -> Iterator[EtcdCluster]:
    """``size`` etcd members in one cluster under ``root``, stopped and removed afterwards."""
    etcd = require_tool("etcd")
    cluster: EtcdCluster | None = None
    try:
        for attempt in range(ATTEMPTS):
            if cluster is not None:
                cluster.stop()
                shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True, exist_ok=True)
            cluster = _start(etcd, root, size, attempt)
            if _wait_healthy(cluster):
                break
        else:
            assert cluster is not None
            raise RuntimeError(f"etcd ({size} member(s)) did not become healthy:\n{cluster.log_tail()}")
        yield cluster
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
