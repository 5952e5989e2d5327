"""The storage benchmark: C claims on the default class, one pod each, on N simulated nodes; then reclaim.

    .venv/bin/python benchmarks/storage.py --nodes 100 --claims 1000 [--concurrency 16]

Starts a fresh ``podlife up --nodes 0 --sim-nodes N`` (a separate process), waits for all
nodes Ready, then from this process over HTTPS creates, per claim, a claim of the default
StorageClass (``local-path``: ``WaitForFirstConsumer``, provisioned by the simulator's
node-local provisioner) and a pod that mounts it, C/concurrency pairs at a time. Three
watches record when each claim is Bound, each pod Running and each volume gone:

- **bind**: time from the first create until every claim is Bound *and* every pod
  Running -- the whole path: the scheduler's VolumeBinding picks a node and annotates
  the claim, the provisioner makes the PV there, the PV controller binds, the scheduler
  binds the pod, the node "mounts" the claim and starts the pod; per claim p50/p99 of
  create -> Bound and create -> pod Running (from the moment the claim's create was sent);
- **reclaim**: every pod deleted (grace 0), then every claim, and the time until every
  volume is gone (reclaim policy Delete: the provisioner deletes the PVs the PV
  controller marked Released);
- the server's CPU seconds and peak RSS.

Prints the figures and writes them to ``benchmarks/results/storage-*.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness import Server, latency_summary, print_result, write_result

from podlife.client.base import PERSISTENT_VOLUME_CLAIMS, PERSISTENT_VOLUMES, PODS, Resource
from podlife.client.http import HTTPClient
from scale import wait_nodes_ready

NAMESPACE = "default"
LABEL = "bench=yes"


def claim_manifest(name: str, size: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "labels": {"bench": "yes"}},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}}


def pod_manifest(name: str, claim: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"bench": "yes"}},
            "spec": {"terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "app", "image": "busybox:1.36",
                                     "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                                     "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                     "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]}}


@dataclass
class Seen:
    """When each object of one watch first met ``condition`` (and when it was deleted)."""

    expected: int
    condition: Callable[[dict[str, Any]], bool]
    at: dict[str, float] = field(default_factory=dict)
    gone: dict[str, float] = field(default_factory=dict)
    all_met: asyncio.Event = field(default_factory=asyncio.Event)
    all_gone: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, client: HTTPClient, res: Resource, namespace: str | None,
                  label_selector: str | None) -> None:
        async for ev in client.watch(res, namespace, label_selector=label_selector):
            name, now = ev.object["metadata"]["name"], time.monotonic()
            if ev.type == "DELETED":
                self.gone.setdefault(name, now)
                if len(self.gone) >= self.expected:
                    self.all_gone.set()
            elif name not in self.at and self.condition(ev.object):
                self.at[name] = now
                if len(self.at) >= self.expected:
                    self.all_met.set()


def _bound(claim: dict[str, Any]) -> bool:
    return (claim.get("status") or {}).get("phase") == "Bound"


def _running(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running"


async def _in_parallel(names: list[str], concurrency: int, work: Callable[[str], Any]) -> None:
    queue = list(reversed(names))

    async def worker() -> None:
        while queue:
            await work(queue.pop())

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _retrying(request: Callable[[], Any]) -> None:
    for attempt in range(5):
        try:
            await request()
            return
        except Exception:  # 429 under a flood: try again a little later
            if attempt == 4:
                raise
            await asyncio.sleep(0.1 * (attempt + 1))


async def _wait(event: asyncio.Event, seen: Seen, what: str, timeout: float, done: dict[str, float]) -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        raise TimeoutError(f"{what}: only {len(done)}/{seen.expected} after {timeout}s") from None


async def run(nodes: int, claims: int, size: str, concurrency: int, timeout: float) -> dict[str, Any]:
    server = Server("--nodes", "0", "--sim-nodes", str(nodes))
    server.start()
    client = server.client(connections=concurrency + 8)
    failed = True
    try:
        nodes_ready = await wait_nodes_ready(client, nodes, timeout)
        names = [f"bench-{i:05d}" for i in range(claims)]
        bound, running, volumes = Seen(claims, _bound), Seen(claims, _running), Seen(claims, lambda _pv: True)
        watches = [asyncio.create_task(bound.run(client, PERSISTENT_VOLUME_CLAIMS, NAMESPACE, LABEL)),
                   asyncio.create_task(running.run(client, PODS, NAMESPACE, LABEL)),
                   asyncio.create_task(volumes.run(client, PERSISTENT_VOLUMES, None, None))]
        sent: dict[str, float] = {}

        async def create_pair(name: str) -> None:
            sent[name] = time.monotonic()
            await _retrying(lambda: client.create(PERSISTENT_VOLUME_CLAIMS, claim_manifest(name, size), NAMESPACE))
            await _retrying(lambda: client.create(PODS, pod_manifest(f"{name}-pod", name), NAMESPACE))

        cpu0 = server.cpu_seconds()
        t0 = time.monotonic()
        await _in_parallel(names, concurrency, create_pair)
        await _wait(bound.all_met, bound, "claims Bound", timeout, bound.at)
        await _wait(running.all_met, running, "pods Running", timeout, running.at)
        bind_s = max(max(bound.at.values()), max(running.at.values())) - t0
        bind = {"all_bound_and_running_s": round(bind_s, 2), "claims_per_s": round(claims / bind_s, 1),
                "all_bound_s": round(max(bound.at.values()) - t0, 2),
                "claim_bound": latency_summary(sent, bound.at),
                "pod_running": latency_summary(sent, running.at, lambda n: f"{n}-pod"),
                "volumes_made": len(volumes.at), "server_cpu_s": round(server.cpu_seconds() - cpu0, 1)}

        cpu1 = server.cpu_seconds()
        t1 = time.monotonic()
        await _in_parallel([f"{n}-pod" for n in names], concurrency,
                           lambda pod: _retrying(lambda: client.delete(PODS, pod, NAMESPACE, grace_period_seconds=0)))
        await _in_parallel(names, concurrency,
                           lambda name: _retrying(lambda: client.delete(PERSISTENT_VOLUME_CLAIMS, name, NAMESPACE)))
        deletes_sent_s = time.monotonic() - t1
        await _wait(volumes.all_gone, volumes, "volumes reclaimed", timeout, volumes.gone)
        reclaim = {"all_volumes_gone_s": round(max(volumes.gone.values()) - t1, 2),
                   "deletes_sent_s": round(deletes_sent_s, 2), "server_cpu_s": round(server.cpu_seconds() - cpu1, 1)}
        for watch in watches:
            watch.cancel()
        failed = False
        return {"nodes": nodes, "claims": claims, "pods": claims, "claim_size": size, "concurrency": concurrency,
                "nodes_ready_s": round(nodes_ready, 2), "bind": bind, "reclaim": reclaim,
                "server_peak_rss_mb": round(server.peak_rss_mb(), 1)}
    finally:
        await client.close()
        server.stop(failed=failed)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=100, help="simulated nodes")
    p.add_argument("--claims", type=int, default=1000, help="claims, one pod each")
    p.add_argument("--size", default="1Gi", help="each claim's request")
    p.add_argument("--concurrency", type=int, default=16, help="claim+pod pairs being created at once")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for each phase")
    args = p.parse_args()
    result = asyncio.run(run(args.nodes, args.claims, args.size, args.concurrency, args.timeout))
    print_result("storage", result)
    print(f"written to {write_result('storage', result)}")


if __name__ == "__main__":
    main()
