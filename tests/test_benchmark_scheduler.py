"""The scheduler benchmark, tiny (20 nodes, 50 measured pods, every workload): it completes and its JSON says so.

Throughput is measured by ``benchmarks/scheduler.py`` itself, never asserted here; this checks
that every scheduler_perf workload runs end to end against a real server, every measured pod is
bound, and the placement figures are there and clean (no overcommitted node, no broken rule).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

ZONED = {"node-affinity", "pod-affinity", "spread-required", "spread-preferred"}


def _benchmark():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import scheduler
        import scheduler_workloads
    finally:
        sys.path.remove(str(BENCHMARKS))
    return scheduler, scheduler_workloads


@pytest.mark.e2e
def test_every_workload_binds_every_pod_and_reports_quality(tmp_path: Path) -> None:
    scheduler, workloads = _benchmark()
    path = scheduler.main(["--nodes", "20", "--pods", "50", "--stall", "30", "--timeout", "120",
                           "--results-dir", str(tmp_path)])
    result = json.loads(path.read_text())
    assert result["api"] == "local"
    assert result["commit"] and result["machine"]["cores"] and result["arguments"]
    by_name = {w["workload"]: w for w in result["workloads"]}
    assert set(by_name) == set(workloads.WORKLOADS)
    for name, w in by_name.items():
        assert "skipped" not in w, f"{name}: {w.get('skipped')}"
        assert w["nodes"] == 20 and w["measured_pods"] > 0
        assert w["bound_pods"] == w["measured_pods"], f"{name}: {w['bound_pods']}/{w['measured_pods']} bound"
        assert w["pods_per_second"] > 0 and not w["stalled"] and w["scheduler_errors"] == 0, name
        assert w["attempts"] >= w["measured_pods"]
        quality = w["quality"]
        assert quality["cpu_requested_cv"] >= 0 and quality["cpu_requested_max_milli"] >= quality["cpu_requested_min_milli"]
        assert quality["overcommitted_nodes"] == 0, name
        assert quality["rule_violations"] == 0, name
        if name in ZONED:
            assert sum(quality["zone_pods"].values()) == w["measured_pods"], name
    assert by_name["spread-required"]["quality"]["zone_max_skew"] <= 5
    assert by_name["pod-anti-affinity"]["measured_pods"] == 20 - by_name["pod-anti-affinity"]["init_pods"]
    # each high-priority pod needs 3 of its node's 4 low-priority pods gone
    preemption = by_name["preemption"]
    assert preemption["quality"]["preempted_init_pods"] >= 3 * preemption["measured_pods"]


@pytest.mark.e2e
def test_the_scheduler_as_a_separate_component_over_https(tmp_path: Path) -> None:
    scheduler, _ = _benchmark()
    path = scheduler.main(["--nodes", "20", "--pods", "30", "--stall", "30", "--timeout", "120", "--api", "https",
                           "--workloads", "basic,pod-affinity", "--results-dir", str(tmp_path)])
    result = json.loads(path.read_text())
    assert result["api"] == "https"
    for w in result["workloads"]:
        assert w["api"] == "https" and w["bound_pods"] == w["measured_pods"] == 30, w["workload"]
        assert w["server_cpu_seconds"] > 0 and w["quality"]["rule_violations"] == 0, w["workload"]


def test_counts_follow_scheduler_perf_and_clamp_to_what_fits() -> None:
    _, workloads = _benchmark()
    basic = workloads.WORKLOADS["basic"]
    assert basic.counts(5000) == (5000, 1000, 10000)
    assert basic.counts(500) == (500, 100, 1000)
    assert workloads.WORKLOADS["preemption"].counts(5000) == (1000, 4000, 1000)
    assert workloads.WORKLOADS["pod-anti-affinity"].counts(20, 50) == (20, 4, 16)
    assert workloads.WORKLOADS["preemption"].counts(20, 50) == (20, 80, 20)
