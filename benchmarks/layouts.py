"""The scale benchmark on every layout and store, side by side (issue 18's comparison).

    .venv/bin/python benchmarks/layouts.py [--nodes 1000] [--pods 10000] [--only NAME,...]

Runs :func:`scale.run` once per row, each on fresh processes and a fresh store
(topology.py starts them; etcd is started here on loopback, 1 or 3 members, and
removed after its row):

====================  ===========================================================
sqlite all-in-one     ``podlife up`` on SQLite: the reference (scale.py's default)
sqlite split          ``podlife server`` + ``scheduler`` + ``controller-manager`` + ``sim``
etcd-1 all-in-one     ``podlife up --store etcd://`` one member
etcd-3 all-in-one     the same on a three-member etcd cluster
etcd-1 two-servers    ``podlife up`` + a second ``podlife server``, load on both
etcd-1 split          the split layout on one etcd member
====================  ===========================================================

Prints one table (time to all Running, pods/s, create->Running p50/p99, the control
plane's CPU seconds, etcd's CPU seconds, peak RSS) with each row's ratio to the
reference, and writes everything to ``benchmarks/results/layouts-<time>.json``.
Rows run one after another (never two at once: they would share the two cores).
"""

from __future__ import annotations

import argparse
import asyncio

from harness import write_result
from scale import run

ROWS: dict[str, dict] = {
    "sqlite all-in-one": {"layout_name": "all-in-one"},
    "sqlite split": {"layout_name": "split"},
    "etcd-1 all-in-one": {"layout_name": "all-in-one", "etcd_members": 1},
    "etcd-3 all-in-one": {"layout_name": "all-in-one", "etcd_members": 3},
    "etcd-1 two-servers": {"layout_name": "two-servers", "etcd_members": 1},
    "etcd-1 split": {"layout_name": "split", "etcd_members": 1},
}
COLUMNS = (("all_running_seconds", "Running s"), ("pods_per_second", "pods/s"), ("latency_p50_s", "p50 s"),
           ("latency_p99_s", "p99 s"), ("server_cpu_seconds_create", "cpu s"), ("etcd_cpu_seconds_create", "etcd cpu s"),
           ("server_peak_rss_mb", "RSS MB"))


def table(results: dict[str, dict]) -> str:
    """The rows as a fixed-width table; the last column is the time to all Running against the first row's."""
    reference = next(iter(results.values()))["all_running_seconds"]
    lines = [f"{'':20s}" + "".join(f"{title:>12s}" for _, title in COLUMNS) + f"{'vs first':>10s}"]
    for name, result in results.items():
        cells = "".join(f"{result[key]:12.2f}" if isinstance(result.get(key), (int, float)) else f"{'-':>12s}"
                        for key, _ in COLUMNS)
        lines.append(f"{name:20s}{cells}{result['all_running_seconds'] / reference:9.2f}x")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--pods", type=int, default=10000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--only", default="", metavar="NAME,...",
                   help=f"run only these rows (comma-separated, of: {', '.join(ROWS)})")
    args = p.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()] or list(ROWS)
    unknown = [name for name in chosen if name not in ROWS]
    if unknown:
        p.error(f"unknown row(s) {', '.join(unknown)}; rows: {', '.join(ROWS)}")
    results: dict[str, dict] = {}
    for name in chosen:
        print(f"running {name} ...", flush=True)
        results[name] = asyncio.run(run(args.nodes, args.pods, args.concurrency, args.timeout, **ROWS[name]))
    print(f"\n== {args.pods} pods on {args.nodes} simulated nodes, by layout and store ==")
    print(table(results))
    print(f"  written to {write_result('layouts', {'rows': results})}")


if __name__ == "__main__":
    main()
