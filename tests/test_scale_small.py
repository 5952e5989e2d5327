"""The scale benchmark, small (50 simulated nodes, 500 pods): completion and correctness only.

Timing targets are measured by ``benchmarks/scale.py`` itself, not asserted here.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.e2e
def test_small_scale_run_completes() -> None:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import scale
    finally:
        sys.path.remove(str(BENCHMARKS))
    result = asyncio.run(scale.run(nodes=50, pods=500, concurrency=16, timeout=240))
    assert result["pods"] == 500 and result["nodes"] == 50
    assert result["pods_per_second"] > 0 and result["delete_pods_per_second"] > 0
    assert result["latency_p50_s"] <= result["latency_p99_s"]
    assert result["server_peak_rss_mb"] > 0
