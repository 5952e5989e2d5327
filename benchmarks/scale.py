"""The scale benchmark: N pods on M simulated nodes, scheduler included.

    .venv/bin/python benchmarks/scale.py --nodes 1000 --pods 10000 [--concurrency 32] [--readiness-probe [N]]
        [--port-pool-size N] [--subnet-per namespace|node] [--no-trace] [--store URL]

Starts a fresh ``podlife up --nodes 0 --sim-nodes M`` (a separate process), waits for
all nodes Ready, then creates the pods over HTTPS from this process with
``--concurrency`` requests in flight (as a user or controller would), watches them,
deletes them all (grace 0) and prints and writes (``benchmarks/results/``):

- time to all nodes Ready; time from first create to all pods Running; pods/s;
- create->Running latency p50/p90/p99 (from sending the create to the watch seeing
  Running; creationTimestamp has one-second resolution), and p50/p99 of the steps
  before it (the watch seeing the pod created, bound, and with its port annotation);
- scheduler throughput (pods bound per second, first bind to last);
- API requests/s (from the server's /metrics); server peak RSS and CPU seconds;
- the same for deleting every pod.

``--readiness-probe N`` (N defaults to 1) gives every pod's container
``readinessProbe: {exec: {command: [true]}, initialDelaySeconds: N, periodSeconds: 10}``:
a simulated node then writes Running unready and, N s later, ready. The result then
also has the time to all pods Ready and the create->Ready latencies.

``--port-pool-size N`` (N > 0) runs the benchmark twice, on two fresh servers: without
port pools and with ``podlife up --port-pool-size N`` (the network controller keeps N
addresses reserved per namespace, or per node with ``--subnet-per node``), and reports
both and the create->Running latencies side by side (``pool_comparison``).
``--subnet-per node`` needs a pod range with a block per node (the default /16 has 256).
``--no-trace`` runs the server with ``podlife up --no-trace`` (pod tracing, on by default, off:
``docs/tracing.md``), to measure what tracing costs.
``--store URL`` runs the server on that store (``etcd://...``: docs/etcd.md).
"""

from __future__ import annotations

import argparse
import asyncio
import time

import os
from pathlib import Path

from harness import percentile, pod_manifest, print_result, write_result
from topology import LAYOUTS, Layout, running_layout

from podlife.client.base import NODES, PODS, Resource
from podlife.client.http import HTTPClient
from podlife.machinery.errors import ApiError
from podlife.progress import progress

SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts", "ServiceAccount")


async def wait_nodes_ready(client: HTTPClient, nodes: int, timeout: float) -> float:
    start = time.monotonic()
    while True:
        listed = await client.list(NODES)
        ready = sum(1 for n in listed["items"]
                    if any(c.get("type") == "Ready" and c.get("status") == "True" for c in n["status"].get("conditions", [])))
        if ready >= nodes:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"only {ready}/{nodes} nodes Ready after {timeout}s")
        await asyncio.sleep(0.05)


async def requests_served(client: HTTPClient) -> int:
    async with client.session.get(client.server + "/metrics") as resp:
        text = await resp.text()
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines() if line.startswith("apiserver_request_total{"))


PORT_ANNOTATION = "network.podlife.io/port"


class Observer:
    """One watch on the benchmark's pods: when each was created, bound, networked, Running, gone."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.created: dict[str, float] = {}
        self.bound: dict[str, float] = {}
        self.networked: dict[str, float] = {}
        self.running: dict[str, float] = {}
        self.ready: dict[str, float] = {}
        self.gone: dict[str, float] = {}
        self.all_running = asyncio.Event()
        self.all_ready = asyncio.Event()
        self.all_gone = asyncio.Event()

    async def run(self, client: HTTPClient, rv: str) -> None:
        async for ev in client.watch(PODS, "default", label_selector="bench=yes", resource_version=rv):
            now = time.monotonic()
            obj = ev.object
            name = obj["metadata"]["name"]
            if ev.type == "DELETED":
                self.gone.setdefault(name, now)
                if len(self.gone) >= self.expected:
                    self.all_gone.set()
                continue
            self.created.setdefault(name, now)
            if obj["spec"].get("nodeName"):
                self.bound.setdefault(name, now)
            if PORT_ANNOTATION in (obj["metadata"].get("annotations") or {}):
                self.networked.setdefault(name, now)
            if obj.get("status", {}).get("phase") == "Running" and name not in self.running:
                self.running[name] = now
                if len(self.running) >= self.expected:
                    self.all_running.set()
            if name not in self.ready and any(c.get("type") == "Ready" and c.get("status") == "True"
                                              for c in obj.get("status", {}).get("conditions") or ()):
                self.ready[name] = now
                if len(self.ready) >= self.expected:
                    self.all_ready.set()


def bench_pod(name: str, readiness_delay: int | None) -> dict:
    """The benchmark's pod; with ``readiness_delay``, its container has a readiness probe that waits that long."""
    manifest = pod_manifest(name)
    if readiness_delay is not None:
        for container in manifest["spec"]["containers"]:
            container["readinessProbe"] = {"exec": {"command": ["true"]}, "initialDelaySeconds": readiness_delay,
                                           "periodSeconds": 10}
    return manifest


async def wait_default_service_account(client: HTTPClient, timeout: float) -> None:
    """Pods need ``default/default`` (ServiceAccount admission); a split layout's controller manager makes it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await client.get(SERVICE_ACCOUNTS, "default", "default")
            return
        except ApiError as exc:
            if exc.code != 404 or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.05)


def etcd_cpu_seconds(layout: Layout) -> float | None:
    """CPU seconds of the etcd members started for this run (None when etcd is not ours)."""
    if layout.etcd is None:
        return None
    total = 0.0
    for member in layout.etcd.members:  # type: ignore[attr-defined]
        if member.proc is not None and member.proc.poll() is None:
            fields = Path(f"/proc/{member.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


async def run(nodes: int, pods: int, concurrency: int, timeout: float, readiness_delay: int | None = None,
              port_pool_size: int = 0, subnet_per: str = "namespace", trace: bool = True,
              store: str | None = None, layout_name: str = "all-in-one", etcd_members: int = 0) -> dict:
    network_flags = ["--port-pool-size", str(port_pool_size), "--subnet-per", subnet_per]
    t_start = time.monotonic()
    with running_layout(layout_name, nodes, store=store, etcd_members=etcd_members,
                        up_flags=[] if trace else ["--no-trace"], network_flags=network_flags,
                        timeout=timeout) as layout:
        clients = layout.clients(concurrency + 4)
        try:
            return await _measure(layout, clients, nodes, pods, concurrency, timeout, readiness_delay, t_start) | {
                "layout": layout_name, "store": store or ("etcd" if etcd_members else "sqlite"),
                "etcd_members": etcd_members or None, "api_servers": len(clients),
                "port_pool_size": port_pool_size, "subnet_per": subnet_per, "trace": trace}
        finally:
            for client in clients:
                await client.close()


async def _measure(layout: Layout, clients: list[HTTPClient], nodes: int, pods: int, concurrency: int,
                   timeout: float, readiness_delay: int | None, t_start: float) -> dict:
    """Load the started layout: the creates spread over its API servers, the timing watch on the last one."""
    first, watcher = clients[0], clients[-1]
    nodes_ready = await wait_nodes_ready(first, nodes, timeout)
    startup_to_ready = time.monotonic() - t_start
    await wait_default_service_account(first, timeout)
    layout.check_running()
    listed = await watcher.list(PODS, "default")
    observer = Observer(pods)
    watch = asyncio.create_task(observer.run(watcher, listed["metadata"]["resourceVersion"]))
    names = [f"bench-{i}" for i in range(pods)]
    sent: dict[str, float] = {}

    async def served() -> int:
        return sum([await requests_served(client) for client in clients])

    cpu0, req0, etcd0 = layout.cpu_seconds(), await served(), etcd_cpu_seconds(layout)
    by_process0 = layout.cpu_by_process()

    async def creator(queue: list[str], client: HTTPClient) -> None:
        while queue:
            name = queue.pop()
            sent[name] = time.monotonic()
            await client.create(PODS, bench_pod(name, readiness_delay), "default")

    queue = list(reversed(names))
    async with progress(transient=True) as board:  # on a terminal only (stderr); figures unchanged
        board.add("pods created", pods, lambda: len(observer.created))
        board.add("pods Running", pods, lambda: len(observer.running))
        if readiness_delay is not None:
            board.add("pods Ready", pods, lambda: len(observer.ready))
        t0 = time.monotonic()
        await asyncio.gather(*(creator(queue, clients[i % len(clients)]) for i in range(concurrency)))
        created = time.monotonic() - t0
        await asyncio.wait_for(observer.all_running.wait(), timeout)
        all_running = time.monotonic() - t0
        await asyncio.wait_for(observer.all_ready.wait(), timeout)
        all_ready = time.monotonic() - t0
    cpu1, req1, etcd1 = layout.cpu_seconds(), await served(), etcd_cpu_seconds(layout)
    by_process1 = layout.cpu_by_process()
    latencies = [observer.running[n] - sent[n] for n in names]
    ready_latencies = [observer.ready[n] - sent[n] for n in names]
    stages = {stage: [seen[n] - sent[n] for n in names if n in seen]
              for stage, seen in (("created", observer.created), ("bound", observer.bound),
                                  ("networked", observer.networked))}
    binds = sorted(observer.bound.values())
    sched_span = (binds[-1] - binds[0]) if len(binds) > 1 else float("nan")

    t1 = time.monotonic()
    delete_queue = list(names)

    async def deleter(client: HTTPClient) -> None:
        while delete_queue:
            await client.delete(PODS, delete_queue.pop(), "default", grace_period_seconds=0)

    async with progress(transient=True) as board:
        board.add("pods gone", pods, lambda: len(observer.gone))
        await asyncio.gather(*(deleter(clients[i % len(clients)]) for i in range(concurrency)))
        await asyncio.wait_for(observer.all_gone.wait(), timeout)
    all_gone = time.monotonic() - t1
    cpu2, req2 = layout.cpu_seconds(), await served()
    watch.cancel()
    return {
        "nodes": nodes, "pods": pods, "concurrency": concurrency, "readiness_probe_delay": readiness_delay,
        "nodes_ready_seconds": nodes_ready, "startup_to_nodes_ready_seconds": startup_to_ready,
        "create_requests_seconds": created,
        "all_running_seconds": all_running, "pods_per_second": pods / all_running,
        "latency_p50_s": percentile(latencies, 50), "latency_p90_s": percentile(latencies, 90),
        "latency_p99_s": percentile(latencies, 99),
        "all_ready_seconds": all_ready,
        "ready_latency_p50_s": percentile(ready_latencies, 50),
        "ready_latency_p99_s": percentile(ready_latencies, 99),
        # where the time goes: from sending the create to the watch seeing each step
        **{f"{stage}_p50_s": percentile(values, 50) for stage, values in stages.items()},
        **{f"{stage}_p99_s": percentile(values, 99) for stage, values in stages.items()},
        "scheduler_pods_per_second": len(binds) / sched_span if sched_span == sched_span and sched_span > 0 else None,
        "api_requests_per_second_during_create": (req1 - req0) / all_running,
        "server_cpu_seconds_create": cpu1 - cpu0,
        **({f"cpu_seconds_create_{name}": by_process1[name] - by_process0.get(name, 0.0) for name in by_process1}
           if len(by_process1) > 1 else {}),
        "etcd_cpu_seconds_create": (etcd1 - etcd0) if etcd0 is not None and etcd1 is not None else None,
        "delete_all_gone_seconds": all_gone, "delete_pods_per_second": pods / all_gone,
        "api_requests_per_second_during_delete": (req2 - req1) / all_gone,
        "server_cpu_seconds_delete": cpu2 - cpu1,
        "server_peak_rss_mb": layout.peak_rss_mb(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--pods", type=int, default=10000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--readiness-probe", type=int, nargs="?", const=1, default=None, metavar="N",
                   help="give every pod a readiness probe with initialDelaySeconds N (default 1)")
    p.add_argument("--port-pool-size", type=int, default=0, metavar="N",
                   help="also run with port pools of N addresses and compare (default 0: no pools, one run)")
    p.add_argument("--subnet-per", choices=("namespace", "node"), default="namespace")
    p.add_argument("--no-trace", dest="trace", action="store_false", help="run the server without pod tracing")
    p.add_argument("--store", default=None, metavar="URL",
                   help="the server's --store, e.g. etcd://127.0.0.1:2379 (an empty etcd, or a prefix of its own: "
                        "etcd://.../bench-1; default: SQLite in the server's data directory)")
    p.add_argument("--etcd-members", type=int, default=0, metavar="N",
                   help="start a fresh etcd of N members (1 or 3) on loopback for the run, instead of --store")
    p.add_argument("--layout", choices=LAYOUTS, default="all-in-one",
                   help="all-in-one: podlife up; split: podlife server + scheduler + controller-manager + sim as "
                        "separate processes; two-servers: podlife up + a second podlife server on the same etcd, "
                        "the load spread over both (default: all-in-one)")
    args = p.parse_args()
    probe = f", readiness probe after {args.readiness_probe}s" if args.readiness_probe is not None else ""
    title = (f"{args.pods} pods on {args.nodes} simulated nodes{probe}, subnet per {args.subnet_per}, "
             f"tracing {'on' if args.trace else 'off'}, store {store_label(args.store, args.etcd_members)}, "
             f"layout {args.layout}")
    sizes = [0, args.port_pool_size] if args.port_pool_size > 0 else [0]
    results = []
    for size in sizes:
        result = asyncio.run(run(args.nodes, args.pods, args.concurrency, args.timeout, args.readiness_probe,
                                 size, args.subnet_per, args.trace, args.store, args.layout, args.etcd_members))
        print_result(f"{title}, port pool {size or 'off'}", result)
        results.append(result)
    if len(results) == 1:
        print(f"  written to {write_result('scale', results[0])}")
        return
    without, with_pool = results
    comparison = pool_comparison(without, with_pool)
    print_result("create->Running without / with port pools", comparison)
    print(f"  written to {write_result('scale', {'without_pool': without, 'with_pool': with_pool, 'pool_comparison': comparison})}")


def store_label(store: str | None, etcd_members: int) -> str:
    if etcd_members:
        return f"etcd ({etcd_members} member{'s' if etcd_members > 1 else ''}, started for the run)"
    return store or "sqlite"


def pool_comparison(without: dict, with_pool: dict) -> dict:
    keys = ("latency_p50_s", "latency_p90_s", "latency_p99_s", "networked_p50_s", "networked_p99_s",
            "all_running_seconds", "pods_per_second")
    return {f"{k}_{label}": run[k] for k in keys for label, run in (("without_pool", without), ("with_pool", with_pool))}


if __name__ == "__main__":
    main()
