"""When the probes of a simulated container succeed: pure functions, no timers.

A simulated node runs no probe. What a user sees of a probe on a real node is the
moment its verdict changes: a startup probe passes, a readiness probe's first
successes turn the container ready. The simulator (:mod:`podlife.sim.simulator`)
asks :func:`verdict_times` for those moments once per container start and sets one
timer for them -- nothing happens per period, and a pod without probes costs nothing.
"""

from __future__ import annotations

from typing import Any

from ..client.base import Obj
from ..node.machine import ContainerRecord


def probed(rec: ContainerRecord) -> bool:
    """Whether ``rec`` has a probe whose success a simulated node must report (startup, readiness)."""
    spec = rec.spec
    return "startupProbe" in spec or "readinessProbe" in spec


def probe_field(probe: Any, name: str, default: int) -> float:
    value = probe.get(name) if isinstance(probe, dict) else None
    return float(value) if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else float(default)


def verdict_times(container: Obj, started: float) -> tuple[float | None, float | None]:
    """When a container's startup and readiness probes first succeed on a simulated node.

    Every probe run succeeds, so: the startup probe at its ``initialDelaySeconds``
    after the start; the readiness probe, which a real kubelet only runs once the
    startup probe passed, at its own ``initialDelaySeconds`` (or then, if later), plus
    ``successThreshold - 1`` periods for the successes it needs in a row. A container
    with a startup probe and no readiness probe is ready when it is started. None:
    no such probe. One time per probe, not a run per period: nothing happens between.
    """
    startup, readiness = container.get("startupProbe"), container.get("readinessProbe")
    startup_at = started + probe_field(startup, "initialDelaySeconds", 0) if startup else None
    if not readiness:
        return startup_at, None
    ready_at = started + probe_field(readiness, "initialDelaySeconds", 0)
    if startup_at is not None:
        ready_at = max(ready_at, startup_at)
    ready_at += (probe_field(readiness, "successThreshold", 1) - 1) * probe_field(readiness, "periodSeconds", 10)
    return startup_at, ready_at


__all__ = ["probe_field", "probed", "verdict_times"]
