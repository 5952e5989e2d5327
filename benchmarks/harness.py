"""What every benchmark shares: start a fresh ``podlife up``, load it, measure, report.

The server runs as its own process (as a user runs it), the load comes from this
process over HTTPS with the real client, and a watch records when each pod reaches a
phase. Latency is measured from the moment the create request was sent to the moment
the watch saw the pod Running (creationTimestamp has one-second resolution, too coarse
for a percentile). Server CPU seconds and peak RSS are read from /proc.

Every result file also says what was measured and where: the commit (and whether the
tree had changes), the command's arguments, and the machine, with one calibration
figure (``machine.python_loop_seconds``, a fixed pure-Python loop timed as the result is written)
so that figures from machines of different speed can be put side by side.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from podlife.client.base import PODS, Client  # noqa: E402
from podlife.client.http import HTTPClient  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, int(round(p / 100 * (len(ordered) - 1)))))
    return ordered[k]


def latency_summary(sent: dict[str, float], done: dict[str, float],
                    key: Callable[[str], str] | None = None) -> dict[str, float]:
    """p50/p99 of ``done[key(name)] - sent[name]`` over the names that are done (``key``: the name itself)."""
    of: Callable[[str], str] = key or (lambda name: name)
    values = [done[of(n)] - sent[n] for n in sent if of(n) in done]
    return {"p50_s": round(percentile(values, 50), 3), "p99_s": round(percentile(values, 99), 3)}


class Server:
    """A ``podlife up`` subprocess with its own data directory."""

    def __init__(self, *args: str) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="podlife-bench-")
        self.data_dir = Path(self.tmp.name) / "data"
        self.args = args
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> None:
        log = open(Path(self.tmp.name) / "server.log", "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "podlife.cli", "up", "--data-dir", str(self.data_dir),
                                      "--port", "0", *self.args], stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while not (self.data_dir / "kubeconfig").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("podlife up did not start:\n" + (Path(self.tmp.name) / "server.log").read_text()[-3000:])
            time.sleep(0.05)

    def client(self, connections: int = 64) -> HTTPClient:
        return HTTPClient.from_kubeconfig(self.data_dir / "kubeconfig", max_connections=connections)

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def peak_rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self, *, failed: bool = False) -> None:
        """End the server (SIGTERM, then SIGKILL after 60 s); if the run ``failed``, keep its log first."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if failed:
            self._keep_log()
        self.tmp.cleanup()

    def _keep_log(self) -> None:
        """Copy the server's log beside the results, where a failed run can be looked into."""
        kept = RESULTS_DIR / f"failed-server-{time.strftime('%Y%m%d-%H%M%S')}.log"
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(self.tmp.name) / "server.log", kept)
        print(f"the run failed; the server's log is kept in {kept}", file=sys.stderr)


async def wait_ready(client: Client, nodes: int, timeout: float = 120) -> float:
    """Seconds until ``nodes`` nodes report Ready=True."""
    from podlife.client.base import NODES

    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            listed = await client.list(NODES)
            ready = sum(1 for n in listed["items"] if any(c.get("type") == "Ready" and c.get("status") == "True"
                                                          for c in (n.get("status") or {}).get("conditions") or []))
            if ready >= nodes:
                return time.monotonic() - start
        except Exception:
            pass
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{nodes} nodes not Ready within {timeout}s")


def pod_manifest(name: str, command: list[str] | None = None, annotations: dict | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": "busybox:1.36",
                                 "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}
    if command:
        container["command"] = command
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"bench": "yes"}, **({"annotations": annotations} if annotations else {})},
            "spec": {"containers": [container], "terminationGracePeriodSeconds": 1}}


@dataclass
class PodTimes:
    sent: dict[str, float] = field(default_factory=dict)
    running: dict[str, float] = field(default_factory=dict)
    gone: dict[str, float] = field(default_factory=dict)


async def watch_pods(client: Client, times: PodTimes, namespace: str, expected: int, done: asyncio.Event,
                     deleted: asyncio.Event) -> None:
    async for ev in client.watch(PODS, namespace, label_selector="bench=yes"):
        name = ev.object["metadata"]["name"]
        now = time.monotonic()
        if ev.type == "DELETED":
            times.gone.setdefault(name, now)
            if len(times.gone) >= expected:
                deleted.set()
                return
        elif (ev.object.get("status") or {}).get("phase") == "Running" and name not in times.running:
            times.running[name] = now
            if len(times.running) >= expected:
                done.set()


async def run_pool(items: Iterable[Any], concurrency: int, call: Callable[[Any], Awaitable[Any]]) -> None:
    """Run ``call(item)`` for every item, in order, with ``concurrency`` in flight, retrying a failed
    call a few times (a 429 or a dropped connection under load is not what a benchmark measures)."""
    queue = list(items)
    queue.reverse()

    async def worker() -> None:
        while queue:
            item = queue.pop()
            for attempt in range(5):
                try:
                    await call(item)
                    break
                except Exception:
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.1 * (attempt + 1))

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def create_pods(client: Client, names: list[str], namespace: str, times: PodTimes, concurrency: int,
                      manifest=pod_manifest) -> None:
    async def create(name: str) -> None:
        times.sent.setdefault(name, time.monotonic())  # the first try's time, as the latency's start
        await client.create(PODS, manifest(name), namespace)

    await run_pool(names, concurrency, create)


async def delete_pods(client: Client, names: list[str], namespace: str, concurrency: int) -> None:
    queue = list(names)

    async def worker() -> None:
        while queue:
            await client.delete(PODS, queue.pop(), namespace, grace_period_seconds=0)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def python_loop_seconds(iterations: int = 5_000_000) -> float:
    """The best of three timings of a fixed loop: how fast this machine runs Python now."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(iterations):
            total += i
        best = min(best, time.perf_counter() - started)
    return best


def _git(*args: str) -> str:
    repo = Path(__file__).resolve().parent.parent
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def run_context(arguments: list[str] | None = None) -> dict[str, Any]:
    """What a result needs to be compared with another: commit, arguments (the command line's unless
    given: a benchmark called as a function passes its own), machine."""
    return {
        "commit": _git("rev-parse", "HEAD"),
        "tree_changed": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "arguments": sys.argv[1:] if arguments is None else arguments,
        "machine": {
            "cpu": _cpu_model(),
            "cores": os.cpu_count(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "kernel": platform.release(),
            "python": platform.python_version(),
            "python_loop_seconds": round(python_loop_seconds(), 4),
        },
    }


def write_result(name: str, result: dict[str, Any], directory: Path | None = None,
                 arguments: list[str] | None = None) -> Path:
    """Write ``result`` with its run context to ``results/<name>-<time>.json`` (or into ``directory``)."""
    directory = directory or RESULTS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({**run_context(arguments), **result}, indent=2))
    return path


def print_result(title: str, result: dict[str, Any]) -> None:
    print(f"\n== {title} ==")
    for k, v in result.items():
        print(f"  {k:32s} {v:.3f}" if isinstance(v, float) else f"  {k:32s} {v}")
