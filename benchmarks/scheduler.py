"""The scheduler benchmark: kube-scheduler's ``scheduler_perf`` workloads against podlife's Scheduler alone.

    .venv/bin/python benchmarks/scheduler.py [--nodes 5000] [--workloads basic,node-affinity,...] [--quick]
        [--pods M] [--profile] [--binds-in-flight 64] [--stall 60] [--timeout 600] [--results-dir DIR]

The workloads, their counts at 5,000 nodes and kube's CI thresholds are in
:mod:`scheduler_workloads` (basic, node-affinity, pod-anti-affinity, pod-affinity,
spread-required, spread-preferred, preemption).

For each workload, on a fresh API server -- ``--api local`` (the default) or ``--api https``:

1. *local*: the API server assembled in this process on a fresh SQLite store
   (:class:`LocalApi`), with no controllers: scheduler_perf's own shape (its harness runs
   kube-apiserver on etcd inside the test process, without controllers; the scheduler
   reaches it without a network hop), and how ``podlife up`` runs its components.
   *https*: ``podlife up --nodes 0 --controllers=*,-node-lifecycle-controller`` as its
   own process (:class:`harness.Server`, :class:`HTTPSApi`), the scheduler a separate
   component paying for HTTP and TLS on both sides, with the cluster's controllers at
   work (its network controller gives every bound pod a port). The benchmark's nodes
   have no kubelet, so nothing renews their Leases; the node lifecycle controller would
   mark them unreachable (and taint them) after ``--node-monitor-grace-period``, so it
   is turned off for the run instead.
2. As the admin: namespaces ``sched-0`` and ``sched-1`` (over HTTPS it waits for their
   ``default`` ServiceAccounts, which ServiceAccount admission needs; in-process that
   admission is off, as in Kubernetes' integration tests), the workload's
   PriorityClasses, N Node objects (Ready, allocatable, the workload's labels), the init
   pods already bound round-robin (``spec.nodeName``); over HTTPS it then waits until the
   cluster's network controller has given every init pod its port, so that its work is
   not counted against the scheduler.
3. The measured pods, with ``spec.schedulerName: bench-scheduler`` (the cluster's own
   default-scheduler, over HTTPS, ignores them), all created before the scheduler starts: the
   measurement is the scheduler's rate, not the creation rate (``--concurrency``
   creates in flight). scheduler_perf creates them while its scheduler runs, with a
   client allowed 5,000 requests/s; here creating them would compete with the
   scheduler for this process's event loop.
4. podlife's :class:`~podlife.scheduler.scheduler.Scheduler` in this process (over HTTPS
   with the real client as ``system:kube-scheduler``, ``kubeconfigs/scheduler.conf``;
   in-process with the in-process client) and one profile ``bench-scheduler`` (the default plugin set). The clock starts when its
   informers are synced (its loop starts then) and stops when the last measured pod's
   binding has returned -- scheduler_perf's throughput, pods bound per second over the
   measured pods; also the per-second throughput samples' p50/p90/p99 (as scheduler_perf's
   ``SchedulingThroughput``), each scheduling attempt's duration (the synchronous filter,
   score and assume) and each binding's latency (decision to the API's answer).
5. Placement quality, from the API after the run (:func:`scheduler_workloads.quality`):
   the coefficient of variation, max and min of requested CPU over the nodes, overcommitted
   nodes, the measured pods' per-zone counts and max skew (spreading workloads), and the
   pods whose own rule is broken (node affinity, anti-affinity, affinity, required
   spreading: must be 0). For preemption, how many low-priority pods were evicted.

A workload stops early, marked ``stalled``, after ``--stall`` seconds without a new binding
(or ``--timeout`` in all); the scheduler's logged errors are counted and the first one kept,
as is the first failed binding's message, so a broken plugin shows as a figure, not a hang.
``--binds-in-flight`` is the scheduler's ``max_binds_in_flight`` (64, as ``podlife up`` runs
it); at 256 the API server's priority and fairness answers part of the bindings with 429
(``system:kube-scheduler`` has a priority level of its own), which the scheduler retries
with backoff.

A workload whose plugin is missing from the default profile or does not apply to the
workload's pod is reported as skipped (it would measure nothing of that plugin).

The scheduler runs as podlife runs its components (``podlife.cli``): on uvloop, with the
garbage collector's thresholds raised and what is alive once its informers are synced frozen
out of collection.

``--profile`` runs cProfile over this process during the measurement (the scheduler's
loop, its informers and its binders) and prints the top 25 functions by cumulative
and by own time; the JSON keeps them. ``--quick`` is 500 nodes. The table is printed
with rich on a terminal, plainly otherwise, and everything is written to
``benchmarks/results/scheduler-*.json`` (commit, arguments, machine: :mod:`harness`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import logging
import math
import pstats
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from harness import Server, percentile, run_pool, write_result
from scheduler_workloads import (
    INIT_NS,
    MEASURED_NS,
    SCHEDULER_NAME,
    WORKLOADS,
    Workload,
    node_manifest,
    quality,
)

from podlife.api.context import build_api
from podlife.api.crds import controller_of
from podlife.api.local_client import LocalClient
from podlife.client.base import NAMESPACES, NODES, PODS, Client, Resource
from podlife.client.http import HTTPClient
from podlife.machinery.constants import PORT_ANNOTATION
from podlife.progress import progress
from podlife.scheduler.plugins import DefaultBinder, PodInfo
from podlife.scheduler.profile import Profile
from podlife.scheduler.queue import QueuedPod
from podlife.scheduler.scheduler import Scheduler
from podlife.store.sqlite import SQLiteStore

PRIORITY_CLASSES = Resource("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", namespaced=False)
SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts", "ServiceAccount")
SERVER_ARGS = ("--nodes", "0", "--controllers", "*,-node-lifecycle-controller")
QUICK_NODES = 500
PROFILE_TOP = 25
#: podlife's own components' collector thresholds (``podlife.cli._tune_garbage_collector``)
GC_THRESHOLDS = (2_000_000, 50, 100)


# ---- creating the cluster's objects ---------------------------------------------------------


async def _wait_for(check: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if await check():
                return
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not done within {timeout}s")
        await asyncio.sleep(0.1)


class PortWatch:
    """A watch on one namespace's pods: which have the network controller's port annotation."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.networked: set[str] = set()
        self.done = asyncio.Event()

    async def run(self, client: Client, namespace: str, rv: str) -> None:
        async for ev in client.watch(PODS, namespace, resource_version=rv):
            if ev.type == "DELETED":
                continue
            if PORT_ANNOTATION in (ev.object["metadata"].get("annotations") or {}):
                self.networked.add(ev.object["metadata"]["name"])
                if len(self.networked) >= self.expected:
                    self.done.set()
                    return


# ---- measuring the scheduler ----------------------------------------------------------------


class TimedBinder(DefaultBinder):
    """The default binder, noting when each measured pod's binding returned."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.bound: dict[str, float] = {}
        self.decided: dict[str, float] = {}
        self.latencies: list[float] = []
        self.all_bound = asyncio.Event()

    async def bind(self, client: Client, pod: PodInfo, node_name: str) -> None:
        started = time.perf_counter()
        await super().bind(client, pod, node_name)
        if pod.namespace == MEASURED_NS and pod.key not in self.bound:
            now = time.perf_counter()
            self.bound[pod.key] = now
            self.latencies.append(now - self.decided.get(pod.key, started))
            if len(self.bound) >= self.expected:
                self.all_bound.set()


@dataclass
class Measurement:
    started: float = 0.0
    ended: float = 0.0
    attempts: list[float] = field(default_factory=list)
    profile_text: dict[str, list[str]] = field(default_factory=dict)


def _time_attempts(scheduler: Scheduler, binder: TimedBinder, measurement: Measurement) -> None:
    """Wrap the scheduler's synchronous per-pod step (filter, score, assume, hand to a binder) with a clock."""
    original = scheduler._schedule_one

    def timed(qp: QueuedPod) -> None:
        t = time.perf_counter()
        try:
            original(qp)
        finally:
            done = time.perf_counter()
            measurement.attempts.append(done - t)
            binder.decided[qp.info.key] = done

    scheduler._schedule_one = timed  # type: ignore[method-assign]


def _profile_tables(prof: cProfile.Profile) -> dict[str, list[str]]:
    tables = {}
    for key in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats(key).print_stats(PROFILE_TOP)
        lines = out.getvalue().splitlines()
        start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
        tables[key] = [line for line in lines[start:] if line.strip()]
    return tables


def unmeasurable_reason(workload: Workload, profile: Profile) -> str | None:
    """Why this workload would not measure its plugin (absent from the profile, or not judging the
    workload's pod); None when it does."""
    if workload.plugin is None:
        return None
    plugin = next((p for p in profile.plugins() if p.name == workload.plugin), None)
    if plugin is None:
        return f"{workload.plugin} is not in the default profile"
    sample = workload.measured_pod("sample")
    sample["metadata"].update(namespace=MEASURED_NS, uid="sample")
    if not plugin.applies(PodInfo(sample)):
        return f"{workload.plugin} does not apply to the workload's pod"
    return None


def _throughput(bound: list[float], started: float) -> dict[str, float]:
    """scheduler_perf's SchedulingThroughput: pods bound in each whole second of the run, and their percentiles."""
    if not bound:
        return {}
    seconds = int(max(bound) - started)
    buckets = [0.0] * max(1, seconds)
    for t in bound:
        i = int(t - started)
        if i < len(buckets):
            buckets[i] += 1
    samples = buckets if seconds >= 1 else [len(bound) / max(max(bound) - started, 1e-9)]
    return {"throughput_p50": percentile(samples, 50), "throughput_p90": percentile(samples, 90),
            "throughput_p99": percentile(samples, 99)}


class HTTPSApi:
    """``podlife up`` as its own process, reached over HTTPS (``--api https``): the scheduler as a
    separate component, paying for HTTP and TLS on both sides, with the cluster's controllers running
    (its network controller gives every bound pod a port)."""

    name = "https"

    def __init__(self, concurrency: int, binds_in_flight: int) -> None:
        self.server = Server(*SERVER_ARGS)
        self.concurrency, self.binds_in_flight = concurrency, binds_in_flight
        self.admin: Client | None = None
        self.scheduler_client: Client | None = None

    async def start(self) -> Client:
        self.server.start()
        self.admin = self.server.client(connections=self.concurrency + 8)
        return self.admin

    async def ready_namespace(self, namespace: str, timeout: float) -> None:
        """ServiceAccount admission needs the namespace's ``default`` ServiceAccount (the controller makes it)."""
        assert self.admin is not None
        await _wait_for(partial(self.admin.get, SERVICE_ACCOUNTS, "default", namespace), timeout,
                        f"the default ServiceAccount of {namespace}")

    async def settle_init_pods(self, listed_rv: str, init: int, timeout: float, port_task: asyncio.Task[None],
                               ports: PortWatch) -> None:
        try:
            await asyncio.wait_for(ports.done.wait(), timeout)
        finally:
            port_task.cancel()

    def scheduler(self) -> Client:
        self.scheduler_client = HTTPClient.from_kubeconfig(self.server.data_dir / "kubeconfigs" / "scheduler.conf",
                                                           max_connections=self.binds_in_flight + 64)
        return self.scheduler_client

    def server_cpu_seconds(self) -> float:
        return self.server.cpu_seconds()

    async def close(self, failed: bool) -> None:
        if self.scheduler_client is not None:
            await self.scheduler_client.close()
        if self.admin is not None:
            await self.admin.close()
        self.server.stop(failed=failed)


class LocalApi:
    """The API server assembled in this process on the SQLite store (``--api local``, the default):
    scheduler_perf's own shape, whose integration harness runs kube-apiserver (on etcd) inside the
    test process with no controllers, the scheduler talking to it without a network hop -- and what
    ``podlife up`` does with its components (the in-process client). Only the scheduler acts on the
    pods; ServiceAccount admission is off, as in Kubernetes' integration tests (no controller makes
    the accounts). The server's CPU is this process's: it is reported within the scheduler's."""

    name = "local"

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="podlife-sched-bench-"))
        self.store = SQLiteStore(self.directory / "store.sqlite")
        self.ctx: Any = None

    async def start(self) -> Client:
        await self.store.start()
        self.ctx = await build_api(self.store)
        self.ctx.disabled_admission_plugins.add("ServiceAccount")
        return LocalClient(self.ctx, shared_results=True)

    async def ready_namespace(self, namespace: str, timeout: float) -> None:
        return None

    async def settle_init_pods(self, listed_rv: str, init: int, timeout: float, port_task: asyncio.Task[None],
                               ports: PortWatch) -> None:
        port_task.cancel()  # no network controller here: nothing else acts on the pods

    def scheduler(self) -> Client:
        return LocalClient(self.ctx, shared_results=True, user_agent="kube-scheduler")

    def server_cpu_seconds(self) -> float:
        return 0.0

    async def close(self, failed: bool) -> None:
        crd_controller = controller_of(self.ctx) if self.ctx is not None else None
        if crd_controller is not None:
            await crd_controller.close()
        await self.store.close()
        shutil.rmtree(self.directory, ignore_errors=True)


async def run_workload(workload: Workload, nodes: int, measured: int | None = None, *, concurrency: int = 64,
                       timeout: float = 600, profile: bool = False, stall: float = 60,
                       binds_in_flight: int = 64, api: str = "local") -> dict[str, Any]:
    """One workload on a fresh API server (``api``: "local" in this process, or "https"); the result's
    figures (see the module docstring)."""
    n, init, m = workload.counts(nodes, measured)
    result: dict[str, Any] = {"workload": workload.name, "case": workload.case, "kube_threshold": workload.threshold,
                              "nodes": n, "init_pods": init, "measured_pods": m, "api": api}
    bench_profile = Profile(SCHEDULER_NAME)
    reason = unmeasurable_reason(workload, bench_profile)
    if reason is not None:
        return {**result, "skipped": reason}
    backend: HTTPSApi | LocalApi = HTTPSApi(concurrency, binds_in_flight) if api == "https" else LocalApi()
    failed = True
    try:
        admin = await backend.start()
        t = time.monotonic()
        for ns in (INIT_NS, MEASURED_NS):
            await admin.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        for ns in (INIT_NS, MEASURED_NS):
            await backend.ready_namespace(ns, timeout)
        for name, value in workload.priority_classes:
            await admin.create(PRIORITY_CLASSES, {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                                                  "metadata": {"name": name}, "value": value})
        node_names = [f"bench-node-{i}" for i in range(n)]
        await run_pool(range(n), concurrency, lambda i: admin.create(NODES, node_manifest(node_names[i], workload.node_labels(i))))
        result["create_nodes_seconds"] = round(time.monotonic() - t, 2)

        t = time.monotonic()
        listed = await admin.list(PODS, INIT_NS)
        ports = PortWatch(init)
        port_task = asyncio.create_task(ports.run(admin, INIT_NS, listed["metadata"]["resourceVersion"]))

        async def create_init(i: int) -> None:
            pod = workload.init_pod(f"init-{i}")
            pod["spec"]["nodeName"] = node_names[i % n]
            await admin.create(PODS, pod, INIT_NS)

        await run_pool(range(init), concurrency, create_init)
        result["create_init_pods_seconds"] = round(time.monotonic() - t, 2)
        await backend.settle_init_pods(listed["metadata"]["resourceVersion"], init, timeout, port_task, ports)
        result["init_pods_networked_seconds"] = round(time.monotonic() - t, 2)

        t = time.monotonic()
        made: list[int] = []

        async def create_measured(i: int) -> None:
            pod = workload.measured_pod(f"pod-{i}")
            pod["spec"]["schedulerName"] = SCHEDULER_NAME
            await admin.create(PODS, pod, MEASURED_NS)
            made.append(i)

        async with progress(transient=True) as board:  # on a terminal only (stderr)
            board.add(f"{workload.name}: pods created", m, made.__len__)
            await run_pool(range(m), concurrency, create_measured)
        result["create_measured_pods_seconds"] = round(time.monotonic() - t, 2)

        result.update(await _measure(backend.scheduler(), bench_profile, m, timeout, profile,
                                     backend.server_cpu_seconds, stall, binds_in_flight))
        result.update(await _judge(admin, workload, init))
        failed = result["bound_pods"] < m
        return result
    finally:
        await backend.close(failed)


class _ErrorLog(logging.Handler):
    """Counts the scheduler's logged errors and keeps the first (a broken plugin shows here, not as a hang),
    and keeps the first failed binding's message (the scheduler logs those at INFO)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0
        self.first = ""
        self.first_bind_failure = ""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.ERROR:
            if not self.first_bind_failure and "failed" in record.msg:
                self.first_bind_failure = record.getMessage()
            return
        self.count += 1
        if not self.first:
            text = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                text += f": {type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
            self.first = text


async def _wait_bound(binder: TimedBinder, timeout: float, stall: float) -> bool:
    """Wait until every measured pod is bound; give up (True: stalled) after ``stall`` seconds without a
    new binding or ``timeout`` in all."""
    deadline = time.monotonic() + timeout
    last_count, last_progress = 0, time.monotonic()
    while not binder.all_bound.is_set():
        try:
            await asyncio.wait_for(binder.all_bound.wait(), 1.0)
        except TimeoutError:
            pass
        now = time.monotonic()
        if len(binder.bound) != last_count:
            last_count, last_progress = len(binder.bound), now
        if now - last_progress > stall or now > deadline:
            return True
    return False


async def _measure(client: Client, bench_profile: Profile, m: int, timeout: float, profile: bool,
                   server_cpu_seconds: Callable[[], float], stall: float, binds_in_flight: int) -> dict[str, Any]:
    """Run the scheduler until every measured pod is bound (or ``timeout``); its figures."""
    binder = TimedBinder(m)
    scheduler = Scheduler(client, profiles=[bench_profile], binder=binder, max_binds_in_flight=binds_in_flight)
    measurement = Measurement()
    _time_attempts(scheduler, binder, measurement)
    prof = cProfile.Profile() if profile else None
    task = asyncio.create_task(scheduler.run())
    t_sync = time.monotonic()
    await scheduler.wait_synced()
    sync_seconds = time.monotonic() - t_sync
    gc.freeze()  # as podlife's processes do once started: what is cached now is never scanned again
    cpu0, server_cpu0 = time.process_time(), server_cpu_seconds()
    measurement.started = time.perf_counter()
    if prof is not None:
        prof.enable()
    errors = _ErrorLog()
    scheduler_log = logging.getLogger("podlife.scheduler")
    level = scheduler_log.level
    scheduler_log.setLevel(logging.INFO)
    scheduler_log.addHandler(errors)
    try:
        async with progress(interval=0.5, transient=True) as board:  # redrawn twice a second, on a terminal only
            board.add("pods bound", m, binder.bound.__len__)
            stalled = await _wait_bound(binder, timeout, stall)
    finally:
        if prof is not None:
            prof.disable()
        scheduler_log.removeHandler(errors)
        scheduler_log.setLevel(level)
    bound = sorted(binder.bound.values())
    measurement.ended = bound[-1] if bound else time.perf_counter()
    cpu1, server_cpu1 = time.process_time(), server_cpu_seconds()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    gc.unfreeze()
    elapsed = measurement.ended - measurement.started
    out: dict[str, Any] = {
        "bound_pods": len(bound),
        "scheduler_sync_seconds": round(sync_seconds, 2),
        "measured_seconds": round(elapsed, 3),
        "pods_per_second": round(len(bound) / elapsed, 1) if elapsed > 0 else None,
        **_throughput(bound, measurement.started),
        "attempt_p50_ms": round(percentile(measurement.attempts, 50) * 1000, 3),
        "attempt_p99_ms": round(percentile(measurement.attempts, 99) * 1000, 3),
        "attempts": len(measurement.attempts),
        "bind_latency_p50_ms": round(percentile(binder.latencies, 50) * 1000, 1),
        "bind_latency_p99_ms": round(percentile(binder.latencies, 99) * 1000, 1),
        "scheduler_cpu_seconds": round(cpu1 - cpu0, 2),
        "server_cpu_seconds": round(server_cpu1 - server_cpu0, 2),
        "array_searches": scheduler.stats.array_searches,
        "per_node_searches": scheduler.stats.per_node_searches,
        "unschedulable_attempts": scheduler.stats.unschedulable,
        "bind_errors": scheduler.stats.bind_errors,
        "stalled": stalled,
        "scheduler_errors": errors.count,
        **({"first_scheduler_error": errors.first} if errors.first else {}),
        **({"first_bind_failure": errors.first_bind_failure} if errors.first_bind_failure else {}),
    }
    if prof is not None:
        out["profile"] = _profile_tables(prof)
    return out


async def _judge(client: Client, workload: Workload, init: int) -> dict[str, Any]:
    nodes = (await client.list(NODES))["items"]
    pods = [*(await client.list(PODS, INIT_NS))["items"], *(await client.list(PODS, MEASURED_NS))["items"]]
    live = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    out = quality(workload, nodes, live)
    if workload.name == "preemption":
        out["preempted_init_pods"] = init - sum(1 for p in live if p["metadata"]["namespace"] == INIT_NS)
    return {"quality": out}


# ---- reporting --------------------------------------------------------------------------------

COLUMNS = (("workload", "workload"), ("nodes", "nodes"), ("init_pods", "init"), ("measured_pods", "pods"),
           ("pods_per_second", "pods/s"), ("kube_threshold", "kube CI"), ("attempt_p50_ms", "attempt p50 ms"),
           ("attempt_p99_ms", "p99 ms"), ("bind_latency_p99_ms", "bind p99 ms"), ("cpu_cv", "cpu CV"),
           ("zone_max_skew", "zone skew"), ("rule_violations", "violations"))


def _row(result: dict[str, Any]) -> list[str]:
    if "skipped" in result:
        return [result["workload"], str(result["nodes"]), "", "", "skipped: " + result["skipped"]] + [""] * 7
    q = result.get("quality") or {}
    flat = {**result, "cpu_cv": q.get("cpu_requested_cv"), "zone_max_skew": q.get("zone_max_skew"),
            "rule_violations": q.get("rule_violations")}
    if result.get("bound_pods", 0) < result["measured_pods"]:
        flat["pods_per_second"] = f"{flat['pods_per_second']} ({result.get('bound_pods')} bound)"
    return ["" if flat.get(key) is None else str(flat.get(key)) for key, _ in COLUMNS]


def print_table(results: list[dict[str, Any]]) -> None:
    headers = [title for _, title in COLUMNS]
    rows = [_row(r) for r in results]
    if sys.stdout.isatty():
        try:
            from rich.console import Console
            from rich.table import Table
        except ImportError:
            pass
        else:
            table = Table(title="podlife scheduler, scheduler_perf workloads")
            for h in headers:
                table.add_column(h, justify="left" if h == "workload" else "right")
            for row in rows:
                table.add_row(*row)
            Console().print(table)
            return
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def print_profiles(results: list[dict[str, Any]]) -> None:
    for result in results:
        for key, lines in (result.get("profile") or {}).items():
            print(f"\n== {result['workload']}: top {PROFILE_TOP} by {key} ==")
            print("\n".join(lines))


@contextlib.contextmanager
def _component_runtime() -> Iterator[Callable[[], asyncio.AbstractEventLoop] | None]:
    """Run the scheduler as ``podlife`` runs its components (:mod:`podlife.cli`): on uvloop when installed,
    with the cyclic garbage collector's thresholds raised; both undone afterwards (a test may call
    :func:`main` in its own process)."""
    try:
        import uvloop
    except ImportError:
        factory = None
    else:
        factory = uvloop.new_event_loop
    thresholds = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield factory
    finally:
        gc.set_threshold(*thresholds)


def _finite(value: Any) -> Any:
    """``value`` with NaN (a percentile of nothing) as None, so the file is strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=5000)
    p.add_argument("--workloads", default=",".join(WORKLOADS),
                   help=f"comma-separated, from: {', '.join(WORKLOADS)} (default: all)")
    p.add_argument("--quick", action="store_true", help=f"{QUICK_NODES} nodes (counts scale with the nodes)")
    p.add_argument("--pods", type=int, default=None, help="measured pods per workload (default: scaled from scheduler_perf)")
    p.add_argument("--concurrency", type=int, default=64, help="creates in flight while setting up")
    p.add_argument("--timeout", type=float, default=600, help="seconds per step of one workload")
    p.add_argument("--binds-in-flight", type=int, default=64,
                   help="the scheduler's binding workers (its max_binds_in_flight; default 64, as podlife up)")
    p.add_argument("--stall", type=float, default=60,
                   help="stop a workload after this many seconds without a new binding (default 60)")
    p.add_argument("--profile", action="store_true", help="cProfile the scheduler; print the top functions")
    p.add_argument("--api", choices=("local", "https"), default="local",
                   help="local (default): the API server in this process, as scheduler_perf runs kube-apiserver; "
                        "https: podlife up as its own process, with its controllers")
    p.add_argument("--results-dir", type=Path, default=None, help="where to write the JSON (default: benchmarks/results)")
    args = p.parse_args(argv)
    names = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = [w for w in names if w not in WORKLOADS]
    if unknown:
        p.error(f"unknown workloads: {', '.join(unknown)} (known: {', '.join(WORKLOADS)})")
    nodes = QUICK_NODES if args.quick else args.nodes
    results = []
    with _component_runtime() as loop_factory:
        for name in names:
            print(f"-- {name} ...", file=sys.stderr, flush=True)
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                results.append(runner.run(run_workload(
                    WORKLOADS[name], nodes, args.pods, concurrency=args.concurrency, timeout=args.timeout,
                    profile=args.profile, stall=args.stall, binds_in_flight=args.binds_in_flight, api=args.api)))
    print_table(results)
    if args.profile:
        print_profiles(results)
    path = write_result("scheduler", {"nodes": nodes, "api": args.api, "workloads": [_finite(r) for r in results]},
                        directory=args.results_dir, arguments=sys.argv[1:] if argv is None else argv)
    print(f"written to {path}")
    return path


if __name__ == "__main__":
    main()
