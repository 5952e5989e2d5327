"""The prober's pure parts: probe defaults and counting results against the thresholds."""

from __future__ import annotations

import asyncio
from pathlib import Path

from podlife.kubelet.prober import ProbeCounter, ProbeSpec, run_probe
from podlife.kubelet.runtime import ProcessRuntime


def counter(kind: str, **probe: int) -> ProbeCounter:
    spec = ProbeSpec.of({"name": "app", f"{kind[0].lower()}{kind[1:]}Probe":
                         {"exec": {"command": ["true"]}, **probe}}, kind)
    assert spec is not None
    return ProbeCounter(spec)


def test_defaults_are_kubernetes() -> None:
    spec = ProbeSpec.of({"livenessProbe": {"tcpSocket": {"port": 80}}}, "Liveness")
    assert spec is not None
    assert (spec.initial_delay, spec.period, spec.timeout, spec.success_threshold, spec.failure_threshold) == (
        0.0, 10.0, 1.0, 1, 3)
    assert ProbeSpec.of({"name": "app"}, "Readiness") is None


def test_liveness_and_startup_success_threshold_is_always_one() -> None:
    spec = ProbeSpec.of({"livenessProbe": {"exec": {}, "successThreshold": 3}}, "Liveness")
    assert spec is not None and spec.success_threshold == 1
    spec = ProbeSpec.of({"readinessProbe": {"exec": {}, "successThreshold": 3}}, "Readiness")
    assert spec is not None and spec.success_threshold == 3


def test_liveness_fails_after_failure_threshold_consecutive_failures() -> None:
    c = counter("Liveness", failureThreshold=3)
    assert [c.record(ok) for ok in (False, False, True, False, False)] == [None] * 5  # a success resets the run
    assert c.record(False) is False
    assert c.record(True) is True


def test_readiness_starts_unready_and_needs_success_threshold_successes() -> None:
    c = counter("Readiness", successThreshold=2, failureThreshold=2)
    assert c.verdict is False
    assert c.record(True) is None
    assert c.record(True) is True
    assert c.record(True) is None  # only changes are reported
    assert c.record(False) is None
    assert c.record(False) is False
    assert c.record(False) is None


def test_startup_reports_its_first_verdict() -> None:
    c = counter("Startup", failureThreshold=2)
    assert c.verdict is None
    assert c.record(False) is None
    assert c.record(True) is True


#: host processes share this machine's network: probes connect in the test's own namespace
HOST = ProcessRuntime(Path("/nonexistent-podlife-test-root"))


def test_tcp_probe_succeeds_when_something_listens_and_times_out_as_a_failure() -> None:
    async def main() -> None:
        server = await asyncio.start_server(lambda _r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        spec = ProbeSpec.of({"livenessProbe": {"tcpSocket": {"port": port}}}, "Liveness")
        assert spec is not None
        assert await run_probe(spec, runtime=HOST, handle=None, container={}) is None  # type: ignore[arg-type]
        server.close()
        await server.wait_closed()
        error = await run_probe(spec, runtime=HOST, handle=None, container={})  # type: ignore[arg-type]
        assert error is not None and f"127.0.0.1:{port}" in error
        far = ProbeSpec.of({"livenessProbe": {"tcpSocket": {"port": port, "host": "10.0.0.1"}}}, "Liveness")
        assert far is not None
        error = await run_probe(far, runtime=HOST, handle=None, container={})  # type: ignore[arg-type]
        assert error is not None and error.startswith("refusing")

    asyncio.run(main())
