"""Hosts on one machine: network namespaces joined by a bridge, each running its own processes.

A test that needs several machines gets them here. Each *host* is a network namespace
``<prefix>-h<i>`` with loopback and one interface ``eth0`` at ``192.168.77.<10+i>/24``. Its
other end, ``h<i>``, sits on the bridge ``br0`` of a *LAN* namespace ``<prefix>-lan``. So the
hosts reach one another and nothing else. The host namespace of this machine gets no
address, route or interface: every name and address lives inside namespaces made here.
Nothing is ever sent to them from outside. A process runs on a host with
``ip netns exec`` (:meth:`Host.start`), which keeps its pid, so it is stopped by that pid.

:meth:`Host.cut_off` sets the host's LAN end down, as when a cable is pulled: its
processes keep running but reach no other host. :meth:`Host.reconnect` undoes it.

Cleanup, also when a test fails: every process started here is stopped by pid
(SIGTERM, then SIGKILL to its own process group), then the namespaces are deleted,
which removes their interfaces with them.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .cluster_harness import require_tool, stop_process

SUBNET = "192.168.77"


def _ip(*args: str) -> None:
    subprocess.run([require_tool("ip"), *args], check=True, capture_output=True, text=True, timeout=30)


@dataclass
class HostProcess:
    name: str
    proc: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 30) -> int | None:
        return stop_process(self.proc, timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


@dataclass
class Host:
    index: int
    netns: str
    lan: str
    root: Path
    processes: list[HostProcess] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"{SUBNET}.{10 + self.index}"

    def start(self, name: str, *argv: str) -> HostProcess:
        """``argv`` on this host, its output in ``<root>/<name>.log``, in a session of its own."""
        log_path = self.root / f"{name}.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen([require_tool("ip"), "netns", "exec", self.netns, *argv], stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        process = HostProcess(name, proc, log_path)
        self.processes.append(process)
        return process

    def run(self, *argv: str, timeout: float = 60, check: bool = True,
            input: str | None = None) -> subprocess.CompletedProcess:
        """``argv`` on this host, waited for (``input``: its stdin)."""
        return subprocess.run([require_tool("ip"), "netns", "exec", self.netns, *argv], capture_output=True,
                              text=True, timeout=timeout, check=check, input=input)

    def cut_off(self) -> None:
        _ip("-n", self.lan, "link", "set", f"h{self.index}", "down")

    def reconnect(self) -> None:
        _ip("-n", self.lan, "link", "set", f"h{self.index}", "up")


@contextmanager
def running_hosts(root: Path, count: int) -> Iterator[list[Host]]:
    """``count`` hosts on one LAN (see the module's design), removed afterwards with all they ran."""
    require_tool("ip")
    prefix = f"plh{secrets.token_hex(3)}"
    lan = f"{prefix}-lan"
    made: list[str] = []
    hosts: list[Host] = []
    try:
        _ip("netns", "add", lan)
        made.append(lan)
        _ip("-n", lan, "link", "add", "br0", "type", "bridge")
        _ip("-n", lan, "link", "set", "br0", "up")
        for i in range(count):
            netns = f"{prefix}-h{i}"
            _ip("netns", "add", netns)
            made.append(netns)
            _ip("-n", lan, "link", "add", f"h{i}", "type", "veth", "peer", "name", "eth0", "netns", netns)
            _ip("-n", lan, "link", "set", f"h{i}", "master", "br0", "up")
            _ip("-n", netns, "addr", "add", f"{SUBNET}.{10 + i}/24", "dev", "eth0")
            _ip("-n", netns, "link", "set", "eth0", "up")
            _ip("-n", netns, "link", "set", "lo", "up")
            host_root = root / f"h{i}"
            host_root.mkdir(parents=True, exist_ok=True)
            hosts.append(Host(i, netns, lan, host_root))
        yield hosts
    finally:
        for host in reversed(hosts):
            for process in reversed(host.processes):
                process.stop()
        for netns in reversed(made):
            subprocess.run([require_tool("ip"), "netns", "del", netns], capture_output=True, timeout=30)
