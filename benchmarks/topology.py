"""How the cluster under benchmark is laid out: one process, or its components apart, on SQLite or etcd.

Issue 18 asks for the scale benchmark on several layouts side by side. Each layout is
a set of real ``podlife`` processes started as a user starts them, with one data
directory per API server:

- ``all-in-one``: ``podlife up`` (API server, controllers, scheduler, network controller
  and the simulated nodes in one process), what the benchmark always measured;
- ``split``: ``podlife server`` (the API server alone), ``podlife scheduler``,
  ``podlife controller-manager`` (the controllers and the network controller, each
  controller as its service account) and ``podlife sim``, four processes on the
  component kubeconfigs the server writes -- so both cores work;
- ``two-servers``: ``podlife up`` and a second ``podlife server`` on the same etcd
  (needs an ``etcd://`` store); the load is spread over both and the watch that
  times the pods runs against the second, so every figure includes the propagation
  from one server to the other through etcd.

The store is SQLite in the first server's data directory, or etcd: an ``etcd://`` URL
the caller runs, or (``etcd_members``) a fresh etcd of 1 or 3 members started here on
loopback (tests/etcd_harness.py) and removed afterwards.

CPU seconds and peak RSS are summed over the layout's podlife processes (etcd's own
are reported apart), so layouts compare as the whole control plane's cost.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from harness import RESULTS_DIR

from podlife.client.http import HTTPClient

LAYOUTS = ("all-in-one", "split", "two-servers")


@dataclass
class Process:
    """One ``podlife`` subprocess and its log."""

    name: str
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "podlife.cli", *self.argv], stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def exited(self) -> bool:
        return self.proc is None or self.proc.poll() is not None

    def cpu_seconds(self) -> float:
        if self.exited():
            return 0.0
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mb(self) -> float:
        if self.exited():
            return 0.0
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        """SIGTERM by pid, then SIGKILL to its own process group after 60 s."""
        if self.exited():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@dataclass
class Layout:
    """A started layout: its processes, the admin kubeconfig of each API server, its store URL."""

    name: str
    store: str
    root: Path
    processes: list[Process] = field(default_factory=list)
    kubeconfigs: list[Path] = field(default_factory=list)
    etcd: object | None = None  # tests.etcd_harness.EtcdCluster when started here

    def clients(self, connections: int) -> list[HTTPClient]:
        """One client per API server (the first is the one ``podlife up``/``server`` started first)."""
        return [HTTPClient.from_kubeconfig(path, max_connections=connections) for path in self.kubeconfigs]

    def cpu_seconds(self) -> float:
        return sum(process.cpu_seconds() for process in self.processes)

    def peak_rss_mb(self) -> float:
        return sum(process.peak_rss_mb() for process in self.processes)

    def cpu_by_process(self) -> dict[str, float]:
        """Each process's CPU seconds so far (where a layout's cost goes)."""
        return {process.name: process.cpu_seconds() for process in self.processes}

    def check_running(self) -> None:
        for process in self.processes:
            if process.exited():
                raise RuntimeError(f"{process.name} exited:\n{process.log_path.read_text(errors='replace')[-3000:]}")

    def keep_logs(self) -> None:
        """Copy every process's log beside the results, where a failed run can be looked into."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        for process in self.processes:
            if process.log_path.exists():
                kept = RESULTS_DIR / f"failed-{self.name}-{process.name}-{stamp}.log"
                shutil.copyfile(process.log_path, kept)
                print(f"the run failed; {process.name}'s log is kept in {kept}", file=sys.stderr)


def _wait_file(path: Path, process: Process, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.exited() or time.monotonic() > deadline:
            raise RuntimeError(f"{process.name} did not start:\n{process.log_path.read_text(errors='replace')[-3000:]}")
        time.sleep(0.05)


def _start_server(layout: Layout, name: str, command: str, extra: list[str], timeout: float) -> Path:
    """``podlife up|server`` with a data directory of its own; its data directory once the kubeconfig is written."""
    data_dir = layout.root / name
    store = [] if layout.store == "sqlite" else ["--store", layout.store]
    process = Process(name, [command, "--data-dir", str(data_dir), "--port", "0", *store, *extra],
                      layout.root / f"{name}.log")
    layout.processes.append(process)
    process.start()
    _wait_file(data_dir / "kubeconfig", process, timeout)
    layout.kubeconfigs.append(data_dir / "kubeconfig")
    return data_dir


def _start_component(layout: Layout, name: str, argv: list[str]) -> None:
    process = Process(name, argv, layout.root / f"{name}.log")
    layout.processes.append(process)
    process.start()


def _start_split(layout: Layout, nodes: int, up_flags: list[str], network_flags: list[str], timeout: float) -> None:
    """The API server alone, then the scheduler, the controller manager and the node simulator apart."""
    trace = [flag for flag in up_flags if flag == "--no-trace"]
    data = _start_server(layout, "apiserver", "server", trace, timeout)
    conf = data / "kubeconfigs"
    _start_component(layout, "scheduler", ["scheduler", "--kubeconfig", str(conf / "scheduler.conf")])
    _start_component(layout, "controller-manager", [
        "controller-manager", "--kubeconfig", str(conf / "controller-manager.conf"),
        "--use-service-account-credentials", "--service-account-private-key-file", str(data / "pki" / "sa.key"),
        *network_flags])
    _start_component(layout, "sim", ["sim", "--kubeconfig", str(conf / "node-simulator.conf"), "--nodes", str(nodes)])


@contextlib.contextmanager
def running_layout(name: str, nodes: int, *, store: str | None = None, etcd_members: int = 0,
                   up_flags: list[str] | None = None, network_flags: list[str] | None = None,
                   timeout: float = 120) -> Iterator[Layout]:
    """Start the layout ``name`` (see the module's design) with ``nodes`` simulated nodes; stop it afterwards.

    ``up_flags`` go to ``podlife up`` (the network controller's flags, ``network_flags``, are
    among them for ``all-in-one``; ``split`` gives them to ``podlife controller-manager``).
    """
    if name not in LAYOUTS:
        raise ValueError(f"unknown layout {name!r} (one of {', '.join(LAYOUTS)})")
    up_flags, network_flags = list(up_flags or []), list(network_flags or [])
    with tempfile.TemporaryDirectory(prefix="podlife-bench-") as tmp, _etcd(Path(tmp), etcd_members) as etcd:
        url = etcd.url if etcd is not None else (store or "sqlite")
        if name == "two-servers" and not url.startswith("etcd://"):
            raise ValueError("two-servers needs an etcd store (--store etcd://... or --etcd-members N)")
        layout = Layout(name, url, Path(tmp), etcd=etcd)
        failed = True
        try:
            if name == "split":
                _start_split(layout, nodes, up_flags, network_flags, timeout)
            else:
                _start_server(layout, "up", "up", ["--nodes", "0", "--sim-nodes", str(nodes), *up_flags,
                                                   *network_flags], timeout)
                if name == "two-servers":
                    trace = [flag for flag in up_flags if flag == "--no-trace"]
                    _start_server(layout, "server2", "server", trace, timeout)
            yield layout
            failed = False
        finally:
            for process in reversed(layout.processes):
                process.stop()
            if failed:
                layout.keep_logs()


@contextlib.contextmanager
def _etcd(root: Path, members: int) -> Iterator[object | None]:
    """A fresh etcd of ``members`` members on loopback (none for 0), stopped and removed afterwards."""
    if members <= 0:
        yield None
        return
    from tests.etcd_harness import running_etcd  # the tests' etcd runner: Debian's etcd-server, by pid

    with running_etcd(root / "etcd", size=members) as cluster:
        yield cluster
