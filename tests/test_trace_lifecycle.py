"""Pod traces end to end: a real cluster driven by the real kubectl, its traces read from ``ctx.trace``.

The cluster runs in this process (on its own event loop in a thread, serving HTTPS on a free
port), so the tests read the recorder itself -- the contract the ``podtraces`` API, ``podlife
trace`` and the UI are built on -- while every write comes from kubectl and the real
components: the scheduler, the network controller, the simulated nodes (``sim_nodes``) and,
in the real-node tests, a real kubelet running host processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from .cluster_harness import require_tool, wait_for
from podlife.cluster import Cluster, ClusterConfig
from podlife.trace.diff import diff

T = TypeVar("T")
NODE_SIM = "system:serviceaccount:kube-system:node-simulator"
NETWORK = "system:serviceaccount:kube-system:network-controller"


class InProcessCluster:
    """A :class:`Cluster` on its own loop thread; kubectl talks to it over HTTPS."""

    def __init__(self, data_dir: Path, **config: Any) -> None:
        self.data_dir = data_dir
        self.config = dict(config)
        self.kubectl_bin = require_tool("kubectl")
        self.cluster: Cluster | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> InProcessCluster:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="trace-test-cluster", daemon=True)
        self.thread.start()
        cfg = ClusterConfig(data_dir=self.data_dir, port=0, guard_routes=False, container_runtime="process",
                            **self.config)
        self.cluster = Cluster(cfg)
        try:
            asyncio.run_coroutine_threadsafe(self.cluster.start(), self.loop).result(120)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        loop, self.loop = self.loop, None
        if loop is None:
            return
        try:
            if self.cluster is not None:
                asyncio.run_coroutine_threadsafe(self.cluster.stop(), loop).result(120)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            assert self.thread is not None
            self.thread.join(30)
            loop.close()

    def on_loop(self, fn: Callable[[], T]) -> T:
        """``fn()`` run on the cluster's loop (the recorder is the loop's, as the API server's reads are)."""
        async def call() -> T:
            return fn()

        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(30)

    def trace(self, name: str, namespace: str = "default") -> dict[str, Any] | None:
        assert self.cluster is not None and self.cluster.traces is not None
        traces = self.cluster.traces
        return self.on_loop(lambda: traces.get(namespace, name))

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.data_dir / "kubeconfig")}

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([self.kubectl_bin, *args], env=self.env, capture_output=True, text=True, timeout=60,
                              check=check)

    def watch(self, name: str) -> subprocess.Popen:
        return subprocess.Popen([self.kubectl_bin, "get", "pods", "--field-selector", f"metadata.name={name}", "-w",
                                 "--output-watch-events", "-o", "json"], env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)


#: pods labelled podlife.io/sim-fault=crash crash (exit 2) a moment after each start; =pull cannot pull their image
STAGES = """
apiVersion: sim.podlife.io/v1alpha1
kind: Stage
metadata: {name: crash}
spec:
  resourceRef: {kind: Pod}
  selector: {matchLabels: {podlife.io/sim-fault: crash}}
  delay: {duration: 200ms}
  next: {action: crash, exitCode: 2, reason: Error, backoff: 1s, maxBackoff: 5s}
---
apiVersion: sim.podlife.io/v1alpha1
kind: Stage
metadata: {name: pull}
spec:
  resourceRef: {kind: Pod}
  selector: {matchLabels: {podlife.io/sim-fault: pull}}
  next: {action: image-pull-error, message: "no such image", pullDuration: 200ms, backoff: 1s, maxBackoff: 5s}
"""


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessCluster]:
    root = tmp_path_factory.mktemp("trace-sim")
    (root / "stages.yaml").write_text(STAGES)
    c = InProcessCluster(root / "data", nodes=0, sim_nodes=2, sim_stages=root / "stages.yaml")
    c.start()
    try:
        yield c
    finally:
        c.stop()


def stage_names(trace: dict[str, Any]) -> list[str]:
    return [s["name"] for s in trace["status"]["stages"]]


def in_order(names: list[str], wanted: list[str]) -> bool:
    """Whether ``wanted`` appears in ``names`` in that order (other stages may come between)."""
    it = iter(names)
    return all(any(n == w for n in it) for w in wanted)


def watched_objects(proc: subprocess.Popen) -> list[dict[str, Any]]:
    proc.terminate()
    out, _ = proc.communicate(timeout=30)
    decoder, pos, events = json.JSONDecoder(), 0, []
    out = out.strip()
    while pos < len(out):
        ev, end = decoder.raw_decode(out, pos)
        events.append(ev)
        pos = end
        while pos < len(out) and out[pos].isspace():
            pos += 1
    return [ev["object"] for ev in events if ev.get("type") in ("ADDED", "MODIFIED")]


def by_path(ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(ops, key=lambda op: (op["path"], op["op"]))


def test_a_pods_trace_stages_writers_and_diffs(sim: InProcessCluster) -> None:
    watch = sim.watch("life")
    try:
        wait_for(lambda: sim.kubectl("get", "pods").returncode == 0, 30, what="the API")
        sim.kubectl("run", "life", "--image=busybox", "--", "sleep", "3600")
        wait_for(lambda: "Ready" in stage_names(sim.trace("life") or {"status": {"stages": []}}), 60,
                 what="the pod Ready in its trace")
        sim.kubectl("delete", "pod", "life", "--wait=true")
        trace = wait_for(lambda: (t := sim.trace("life")) is not None and t["status"]["deleted"] and t, 60,
                         what="the trace to end")
    finally:
        watched = watched_objects(watch)
    status = trace["status"]
    names = stage_names(trace)
    assert in_order(names, ["Created", "Queued", "Scheduled", "PortAllocated", "SandboxCreated", "ContainerStarted",
                            "Ready", "Terminating", "Killing", "Gone"]), names
    assert names[-1] == "Gone" and status["deleted"] is True
    assert status["nodeName"].startswith("sim-node-")
    starts = [s["offsetSeconds"] for s in status["stages"]]
    assert starts == sorted(starts) and starts[0] == 0
    assert all(s["durationSeconds"] is not None for s in status["stages"][:-1])
    assert status["stages"][-1]["durationSeconds"] is None
    by = {s["name"]: s for s in status["stages"]}
    assert by["Created"]["writer"] == "kubectl-run"
    assert by["Scheduled"]["writer"] == "system:kube-scheduler"
    assert by["PortAllocated"]["writer"] == NETWORK
    assert by["Ready"]["writer"] == NODE_SIM
    assert by["Terminating"]["writer"] == "podlife-admin"  # a delete has no field manager: the user who asked
    assert "grace period 30s" in by["Terminating"]["message"]

    records = status["records"]
    pods = [r for r in records if r["kind"] == "Pod"]
    assert pods[0]["verb"] == "create" and pods[-1]["verb"] == "delete"
    binding = next(r for r in pods if any(op["path"] == "spec.nodeName" for op in r["diff"]))
    assert binding["writer"] == "system:kube-scheduler" and binding["user"] == "system:kube-scheduler"
    assert any(r["kind"] == "Port" and r["verb"] == "create" and r["writer"] == NETWORK for r in records)
    assert any(r["kind"] == "Event" for r in records)
    revisions = [int(r["resourceVersion"]) for r in records]
    assert revisions == sorted(revisions)

    # every pod version the watch delivered is a record, and each record's diff is the change between them
    by_rv = {obj["metadata"]["resourceVersion"]: obj for obj in watched}
    updates = [r for r in pods if r["verb"] != "delete"]
    assert [r["resourceVersion"] for r in updates] == [o["metadata"]["resourceVersion"] for o in watched]
    previous: dict[str, Any] | None = None
    for record in updates:
        version = by_rv[record["resourceVersion"]]
        assert by_path(record["diff"]) == by_path(diff(previous, version)), record["resourceVersion"]
        previous = version


def test_a_crash_looping_pods_failure_stages(sim: InProcessCluster) -> None:
    sim.kubectl("run", "crashy", "--image=busybox", "--labels=podlife.io/sim-fault=crash", "--", "sleep", "3600")
    trace = wait_for(lambda: (t := sim.trace("crashy")) is not None and "CrashLoopBackOff" in stage_names(t) and t,
                     90, what="CrashLoopBackOff in the trace")
    names = stage_names(trace)
    assert in_order(names, ["Scheduled", "ContainerStarted", "ContainerFailed", "ContainerRestarted"]), names
    failed = [s for s in trace["status"]["stages"] if s.get("failed")]
    crash = next(s for s in failed if s["name"] == "CrashLoopBackOff")
    assert crash["container"] == "crashy" and crash["writer"] == NODE_SIM and "back-off" in crash["message"].lower()
    assert next(s for s in failed if s["name"] == "ContainerFailed")["reason"] == "Error"
    sim.kubectl("delete", "pod", "crashy", "--grace-period=0", "--force", "--wait=false", check=False)


def test_an_unschedulable_pod_says_why(sim: InProcessCluster) -> None:
    sim.kubectl("run", "nowhere", "--image=busybox", "--overrides",
                json.dumps({"spec": {"nodeSelector": {"no-such-label": "x"}}}), "--", "sleep", "3600")
    trace = wait_for(lambda: (t := sim.trace("nowhere")) is not None and "Unschedulable" in stage_names(t) and t,
                     60, what="Unschedulable in the trace")
    stage = next(s for s in trace["status"]["stages"] if s["name"] == "Unschedulable")
    assert stage["failed"] is True and "node(s) didn't match" in stage["message"]
    sim.kubectl("delete", "pod", "nowhere", "--wait=false")


def test_retention_by_count_and_age(tmp_path: Path) -> None:
    c = InProcessCluster(tmp_path / "data", nodes=0, sim_nodes=1, trace_max_pods=2, trace_max_age=3.0).start()
    try:
        for name in ("r1", "r2", "r3"):
            c.kubectl("run", name, "--image=busybox", "--", "sleep", "3600")
        assert c.trace("r1") is None  # the oldest went when the third came
        assert c.cluster is not None and c.cluster.traces is not None
        traces = c.cluster.traces
        assert len(c.on_loop(lambda: traces.list(None))) <= 2
        wait_for(lambda: c.trace("r3") is not None, 30, what="r3's trace")
        # nothing writes to a Running pod on a simulated node: its trace ages out
        wait_for(lambda: c.trace("r3") is None and c.trace("r2") is None, 60, what="the traces to age out")
        assert c.kubectl("get", "pod", "r3").returncode == 0
    finally:
        c.stop()


def test_traces_survive_a_restart(tmp_path: Path) -> None:
    c = InProcessCluster(tmp_path / "data", nodes=0, sim_nodes=1).start()
    try:
        c.kubectl("run", "keep", "--image=busybox", "--", "sleep", "3600")
        wait_for(lambda: "Ready" in stage_names(c.trace("keep") or {"status": {"stages": []}}), 60, what="Ready")
        c.kubectl("delete", "pod", "keep", "--grace-period=0", "--force")
        before = wait_for(lambda: (t := c.trace("keep")) is not None and t["status"]["deleted"] and t, 60,
                          what="the trace to end")
    finally:
        c.stop()
    assert (tmp_path / "data" / "trace.sqlite").exists()
    again = InProcessCluster(tmp_path / "data", nodes=0, sim_nodes=1).start()
    try:
        after = again.trace("keep")
        assert after == before
        assert stage_names(after)[-1] == "Gone"
    finally:
        again.stop()


def test_in_memory_clusters_keep_traces_in_memory(tmp_path: Path) -> None:
    c = InProcessCluster(tmp_path / "data", nodes=0, sim_nodes=1, in_memory=True).start()
    try:
        c.kubectl("run", "mem", "--image=busybox", "--", "sleep", "3600")
        wait_for(lambda: c.trace("mem") is not None, 30, what="the trace")
    finally:
        c.stop()
    assert not (tmp_path / "data" / "trace.sqlite").exists()


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessCluster]:
    c = InProcessCluster(tmp_path_factory.mktemp("trace-real") / "data", nodes=1, node_name="trace-node")
    c.start()
    try:
        yield c
    finally:
        c.stop()


def test_a_real_kubelets_stages(real: InProcessCluster) -> None:
    real.kubectl("run", "host", "--image=busybox", "--", "sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.2; done")
    wait_for(lambda: "Ready" in stage_names(real.trace("host") or {"status": {"stages": []}}), 90, what="Ready")
    real.kubectl("delete", "pod", "host", "--grace-period=5")
    trace = wait_for(lambda: (t := real.trace("host")) is not None and t["status"]["deleted"] and t, 90,
                     what="the trace to end")
    names = stage_names(trace)
    assert in_order(names, ["Created", "Scheduled", "PortAllocated", "SandboxCreated", "ImagePulled", "ContainerCreated",
                            "ContainerStarted", "Ready", "Terminating", "Killing", "ContainerTerminated", "Gone"]), names
    by = {s["name"]: s for s in trace["status"]["stages"]}
    for name in ("SandboxCreated", "ImagePulled", "ContainerStarted", "Ready", "Killing"):
        assert by[name]["writer"] == "system:node:trace-node", name
    assert by["ImagePulled"]["container"] == "host"
    assert "grace period 5s" in by["Killing"]["message"]


def test_a_crashing_command_on_a_real_node(real: InProcessCluster) -> None:
    real.kubectl("run", "crash", "--image=busybox", "--", "sh", "-c", "echo bye; exit 3")
    trace = wait_for(lambda: (t := real.trace("crash")) is not None and "CrashLoopBackOff" in stage_names(t) and t,
                     120, what="CrashLoopBackOff in the trace")
    failed = {s["name"]: s for s in trace["status"]["stages"] if s.get("failed")}
    assert failed["ContainerFailed"]["message"].startswith("exit code 3")
    assert failed["CrashLoopBackOff"]["writer"] == "system:node:trace-node"
    assert failed["CrashLoopBackOff"]["container"] == "crash"
    real.kubectl("delete", "pod", "crash", "--grace-period=0", "--force", "--wait=false", check=False)


def test_a_bad_image_on_a_simulated_node(sim: InProcessCluster) -> None:
    sim.kubectl("run", "badimage", "--image=busybox", "--labels=podlife.io/sim-fault=pull")
    trace = wait_for(lambda: (t := sim.trace("badimage")) is not None and "ImagePullBackOff" in stage_names(t) and t,
                     90, what="ImagePullBackOff in the trace")
    names = stage_names(trace)
    assert in_order(names, ["Scheduled", "SandboxCreated", "ErrImagePull", "ImagePullBackOff"]), names
    stage = next(s for s in trace["status"]["stages"] if s["name"] == "ErrImagePull")
    assert stage["failed"] is True and stage["container"] == "badimage" and "no such image" in stage["message"]
    sim.kubectl("delete", "pod", "badimage", "--grace-period=0", "--force", "--wait=false", check=False)
