"""The workload benchmark: D Deployments of R replicas on N simulated nodes, then a rolling update of all.

    .venv/bin/python benchmarks/workloads.py --nodes 1000 --deployments 100 --replicas 100 [--concurrency 16]

Starts a fresh ``podlife up --nodes 0 --sim-nodes N`` (a separate process), waits for all
nodes Ready, creates the Deployments over HTTPS from this process, and watches them:

- **rollout**: time from the first create until every Deployment is Available with all
  its replicas (``status.availableReplicas == spec.replicas`` and ``observedGeneration``
  current) -- the issue's goal is within 2x of the bare-pods figure of
  ``benchmarks/scale.py`` for the same number of pods;
- **update**: every Deployment's image changed at once (a merge patch each), time until
  every one is rolled out again (``updatedReplicas == availableReplicas == replicas``,
  one ReplicaSet with pods left);
- the server's CPU seconds and peak RSS, and per-Deployment p50/p99 times to Available.

Prints the figures and writes them to ``benchmarks/results/workloads-*.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from harness import Server, latency_summary, print_result, write_result

from podlife.client.base import DEPLOYMENTS, REPLICA_SETS
from podlife.client.http import HTTPClient
from scale import wait_nodes_ready

NAMESPACE = "default"


def deployment(name: str, replicas: int, image: str = "busybox:1.36") -> dict[str, Any]:
    labels = {"app": name, "bench": "yes"}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": {"bench": "yes"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"terminationGracePeriodSeconds": 1,
                                           "containers": [{"name": "app", "image": image,
                                                           "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}}}


def rolled_out(obj: dict[str, Any]) -> bool:
    """``kubectl rollout status``'s test: the latest generation fully updated and available."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    want = spec.get("replicas", 1)
    return (status.get("observedGeneration", 0) >= obj["metadata"].get("generation", 1)
            and status.get("updatedReplicas", 0) == want and status.get("replicas", 0) == want
            and status.get("availableReplicas", 0) == want)


class Watcher:
    """One watch on the benchmark's Deployments: when each was last seen rolled out."""

    def __init__(self, names: list[str]) -> None:
        self.names = set(names)
        self.done_at: dict[str, float] = {}
        self.all_done = asyncio.Event()

    def reset(self) -> None:
        self.done_at.clear()
        self.all_done.clear()

    async def run(self, client: HTTPClient) -> None:
        async for ev in client.watch(DEPLOYMENTS, NAMESPACE, label_selector="bench=yes"):
            name = ev.object["metadata"]["name"]
            if ev.type == "DELETED" or name not in self.names:
                continue
            if rolled_out(ev.object):
                self.done_at.setdefault(name, time.monotonic())
                if len(self.done_at) >= len(self.names):
                    self.all_done.set()
            else:
                self.done_at.pop(name, None)


async def _create_all(client: HTTPClient, names: list[str], replicas: int, concurrency: int) -> dict[str, float]:
    sent: dict[str, float] = {}
    queue = list(reversed(names))

    async def worker() -> None:
        while queue:
            name = queue.pop()
            sent[name] = time.monotonic()
            await client.create(DEPLOYMENTS, deployment(name, replicas), NAMESPACE)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sent


async def _update_all(client: HTTPClient, names: list[str], concurrency: int) -> dict[str, float]:
    sent: dict[str, float] = {}
    queue = list(reversed(names))
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "busybox:1.37"}]}}}}

    async def worker() -> None:
        while queue:
            name = queue.pop()
            sent[name] = time.monotonic()
            await client.patch(DEPLOYMENTS, name, patch, NAMESPACE, patch_type="strategic")

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sent


async def _wait(event: asyncio.Event, watcher: Watcher, what: str, timeout: float) -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        raise TimeoutError(f"{what}: only {len(watcher.done_at)}/{len(watcher.names)} Deployments rolled out "
                           f"after {timeout}s") from None


async def run(nodes: int, deployments: int, replicas: int, concurrency: int, timeout: float) -> dict[str, Any]:
    server = Server("--nodes", "0", "--sim-nodes", str(nodes))
    server.start()
    client = server.client(connections=concurrency + 4)
    failed = True
    try:
        nodes_ready = await wait_nodes_ready(client, nodes, timeout)
        names = [f"bench-{i:04d}" for i in range(deployments)]
        watcher = Watcher(names)
        watch = asyncio.create_task(watcher.run(client))
        cpu0 = server.cpu_seconds()
        t0 = time.monotonic()
        sent = await _create_all(client, names, replicas, concurrency)
        await _wait(watcher.all_done, watcher, "rollout", timeout)
        rollout_s = max(watcher.done_at.values()) - t0
        rollout = {"all_available_s": round(rollout_s, 2), "pods_per_s": round(deployments * replicas / rollout_s, 1),
                   **latency_summary(sent, watcher.done_at), "server_cpu_s": round(server.cpu_seconds() - cpu0, 1)}
        watcher.reset()
        cpu1 = server.cpu_seconds()
        t1 = time.monotonic()
        updated = await _update_all(client, names, concurrency)
        await _wait(watcher.all_done, watcher, "rolling update", timeout)
        update_s = max(watcher.done_at.values()) - t1
        left = [rs for rs in (await client.list(REPLICA_SETS, NAMESPACE))["items"]
                if (rs.get("status") or {}).get("replicas", 0) > 0]
        update = {"all_rolled_out_s": round(update_s, 2), **latency_summary(updated, watcher.done_at),
                  "replica_sets_with_pods": len(left), "server_cpu_s": round(server.cpu_seconds() - cpu1, 1)}
        watch.cancel()
        failed = False
        return {"nodes": nodes, "deployments": deployments, "replicas": replicas, "pods": deployments * replicas,
                "nodes_ready_s": round(nodes_ready, 2), "rollout": rollout, "update": update,
                "server_peak_rss_mb": round(server.peak_rss_mb(), 1)}
    finally:
        await client.close()
        server.stop(failed=failed)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--deployments", type=int, default=100)
    p.add_argument("--replicas", type=int, default=100)
    p.add_argument("--concurrency", type=int, default=16, help="requests in flight while creating/updating")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for each phase")
    args = p.parse_args()
    result = asyncio.run(run(args.nodes, args.deployments, args.replicas, args.concurrency, args.timeout))
    print_result("workloads", result)
    print(f"written to {write_result('workloads', result)}")


if __name__ == "__main__":
    main()
