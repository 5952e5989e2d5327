"""N pods on one local node (real processes): time to all Running, create->Running latency.

    .venv/bin/python benchmarks/pods_local.py [--pods 100] [--concurrency 16]

Starts a fresh ``podlife up --nodes 1``, creates the pods over HTTPS, watches them reach
Running, deletes them (grace 0) and prints/writes the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from harness import (
    PodTimes, Server, create_pods, delete_pods, percentile, print_result, wait_ready, watch_pods,
    write_result,
)


async def run(pods: int, concurrency: int, container_runtime: str = "auto") -> dict:
    server = Server("--nodes", "1", "--container-runtime", container_runtime)
    server.start()
    client = server.client()
    try:
        await wait_ready(client, 1)
        names = [f"bench-{i}" for i in range(pods)]
        times = PodTimes()
        running, deleted = asyncio.Event(), asyncio.Event()
        watcher = asyncio.create_task(watch_pods(client, times, "default", pods, running, deleted))
        cpu0 = server.cpu_seconds()
        t0 = time.monotonic()
        await create_pods(client, names, "default", times, concurrency,
                          manifest=lambda n: _manifest(n))
        created = time.monotonic() - t0
        await asyncio.wait_for(running.wait(), 300)
        all_running = time.monotonic() - t0
        lat = [times.running[n] - times.sent[n] for n in names]
        t1 = time.monotonic()
        await delete_pods(client, names, "default", concurrency)
        await asyncio.wait_for(deleted.wait(), 300)
        all_gone = time.monotonic() - t1
        watcher.cancel()
        result = {
            "pods": pods, "concurrency": concurrency,
            "create_seconds": created, "all_running_seconds": all_running, "pods_per_second": pods / all_running,
            "latency_p50_s": percentile(lat, 50), "latency_p90_s": percentile(lat, 90), "latency_p99_s": percentile(lat, 99),
            "delete_all_gone_seconds": all_gone,
            "server_cpu_seconds": server.cpu_seconds() - cpu0, "server_peak_rss_mb": server.peak_rss_mb(),
        }
    except BaseException:
        await client.close()
        server.stop(failed=True)
        raise
    await client.close()
    server.stop()
    return result


def _manifest(name: str) -> dict:
    from harness import pod_manifest

    return pod_manifest(name, ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pods", type=int, default=100)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--container-runtime", choices=("auto", "oci", "process"), default="auto",
                   help="what the node runs containers with (podlife up --container-runtime; default: auto)")
    args = p.parse_args()
    result = asyncio.run(run(args.pods, args.concurrency, args.container_runtime))
    result["container_runtime"] = args.container_runtime
    print_result(f"{args.pods} pods on one local node ({args.container_runtime})", result)
    print(f"  written to {write_result('pods_local', result)}")


if __name__ == "__main__":
    main()
