"""Container probes on a real node: startup, liveness and readiness.

Design
------
Kubernetes' prober (``pkg/kubelet/prober``) runs one worker per probe kind and
container instance; so does :class:`PodProbers`, with one asyncio task each. A
task waits ``initialDelaySeconds``, then runs the probe's handler every
``periodSeconds``, each run bounded by ``timeoutSeconds`` (a timeout is a
failure). The handlers reuse the lifecycle hooks' building blocks
(:mod:`podlife.kubelet.hooks`):

- ``exec``: the command runs in the container (the runtime's
  ``exec_in_container``); exit 0 is a success,
- ``httpGet``: a status of 200-399 is a success; the host is loopback, as for
  hooks (:func:`~podlife.kubelet.hooks.hook_host`), inside the pod's network
  namespace (:mod:`podlife.machinery.netns`): nothing else is ever contacted,
- ``tcpSocket``: the connection opens (the same way),
- ``grpc``: the standard health check (``grpc.health.v1.Health/Check``) on the
  same loopback address answers ``SERVING`` (:mod:`podlife.kubelet.grpc_probe`);
  it bounds itself by the timeout, to tell a failed connection from a slow call.

:class:`ProbeCounter` is the pure part: it counts consecutive results against
``successThreshold``/``failureThreshold`` and yields a new verdict only when it
changes. The verdict goes to the pod worker as a ``ProbeResult`` fact; what a
verdict does (ready, or kill and restart) is the machine's
(:mod:`podlife.node.machine`). The startup probe gates the two others: they
start once it has succeeded, and it stops probing then. A readiness probe's
verdict is "not ready" until its first success: that initial verdict is reported
with no message (the machine records no event for it). Every failed run is an
``Unhealthy`` event, as in Kubernetes: the run that changes the verdict carries
it in its ``ProbeResult``, the others are reported as ``ProbeFailed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from ..client.base import Obj
from ..node.machine import ProbeFailed, ProbeResult
from .grpc_probe import grpc_handler
from .hooks import dial_error, exec_handler, handler_address, http_handler
from ..machinery.netns import open_connection
from .runtimes import ContainerLike, ContainerRuntime

log = logging.getLogger(__name__)

#: probe kind (as in ProbeResult.probe) -> the container field holding it
PROBE_FIELDS = {"Startup": "startupProbe", "Liveness": "livenessProbe", "Readiness": "readinessProbe"}


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    """One probe of a container, with Kubernetes' defaults filled in."""

    kind: str  # Startup | Liveness | Readiness
    handler: Obj  # the probe object (its exec/httpGet/tcpSocket/grpc action)
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def of(cls, container: Obj, kind: str) -> ProbeSpec | None:
        """The container's ``kind`` probe, or None when it has none."""
        probe = container.get(PROBE_FIELDS[kind])
        if not probe:
            return None

        def number(field: str, default: int, floor: int) -> int:
            value = probe.get(field)
            return max(int(value), floor) if isinstance(value, int) and value > 0 else default

        success = number("successThreshold", 1, 1) if kind == "Readiness" else 1  # must be 1 otherwise
        return cls(kind, probe, float(number("initialDelaySeconds", 0, 0)), float(number("periodSeconds", 10, 1)),
                   float(number("timeoutSeconds", 1, 1)), success, number("failureThreshold", 3, 1))


class ProbeCounter:
    """Consecutive results against the thresholds; a new verdict only when it changes."""

    def __init__(self, spec: ProbeSpec) -> None:
        self.spec = spec
        # Kubernetes' initial results: readiness fails until it succeeds, liveness holds
        # until it fails, a startup probe has no verdict before its first threshold
        self.verdict: bool | None = {"Readiness": False, "Liveness": True}.get(spec.kind)
        self._last: bool | None = None
        self._run = 0

    def record(self, ok: bool) -> bool | None:
        """Count one result; the new verdict when it changes, else None."""
        self._run = self._run + 1 if ok is self._last else 1
        self._last = ok
        if self._run < (self.spec.success_threshold if ok else self.spec.failure_threshold):
            return None
        if not ok and self.spec.kind != "Readiness":
            self._run = 0  # a failed liveness/startup probe starts counting afresh (the instance is killed)
        if ok is self.verdict:
            return None
        self.verdict = ok
        return ok


async def run_probe(spec: ProbeSpec, *, runtime: ContainerRuntime, handle: ContainerLike,
                    container: Obj) -> str | None:
    """Run the probe's handler once within its timeout: None on success, else why it failed."""
    if (action := spec.handler.get("grpc")) is not None:  # bounded by its own deadline (see grpc_probe)
        return await grpc_handler(container, action, runtime.network_namespace(handle), spec.timeout)
    try:
        return await asyncio.wait_for(_handler(spec.handler, runtime, handle, container), spec.timeout)
    except TimeoutError:
        return f"timeout: probe did not finish within {spec.timeout:g}s"


async def _handler(probe: Obj, runtime: ContainerRuntime, handle: ContainerLike, container: Obj) -> str | None:
    if (action := probe.get("exec")) is not None:
        return await exec_handler(runtime, handle, [str(a) for a in action.get("command") or []])
    if (action := probe.get("httpGet")) is not None:
        return await http_handler(container, action, runtime=runtime, handle=handle, probe=True)
    if (action := probe.get("tcpSocket")) is not None:
        return await _tcp_handler(container, action, runtime.network_namespace(handle))
    return f"unsupported probe handler {sorted(probe)}"


async def _tcp_handler(container: Obj, action: Obj, netns: str | None) -> str | None:
    """Open (and close) a TCP connection, on the container's loopback only (see hook_host)."""
    address = handler_address(container, action)
    if isinstance(address, str):
        return address
    host, port = address
    try:
        _reader, writer = await open_connection(netns, host, port)
    except OSError as exc:
        return dial_error(host, port, exc)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None


class PodProbers:
    """The probe tasks of one pod's running container instances."""

    def __init__(self, runtime: ContainerRuntime, report: Callable[[ProbeResult | ProbeFailed], None],
                 on_run: Callable[[str, str, bool], None] | None = None) -> None:
        """``on_run(kind, container, ok)`` is told every run's result (``prober_probe_total``)."""
        self.runtime = runtime
        self.report = report
        self.on_run = on_run
        self._tasks: dict[str, list[asyncio.Task[None]]] = {}

    def start(self, container: Obj, handle: ContainerLike) -> None:
        """Probe this (new) instance of ``container``; any earlier instance's probes stop."""
        name = str(container.get("name", ""))
        self.stop(name)
        specs = {kind: spec for kind in PROBE_FIELDS if (spec := ProbeSpec.of(container, kind)) is not None}
        if not specs:
            return
        if "Readiness" in specs:
            self.report(ProbeResult(name, False))  # not ready before the first success (no event)
        started = asyncio.Event()
        if "Startup" not in specs:
            started.set()
        loop = asyncio.get_running_loop()
        self._tasks[name] = [loop.create_task(self._probe(name, spec, container, handle, started),
                                              name=f"{spec.kind.lower()} probe of {name}")
                             for spec in specs.values()]

    def stop(self, name: str) -> None:
        """The instance ended: stop its probes."""
        for task in self._tasks.pop(name, []):
            task.cancel()

    def stop_all(self) -> None:
        for name in list(self._tasks):
            self.stop(name)

    async def _probe(self, name: str, spec: ProbeSpec, container: Obj, handle: ContainerLike,
                     started: asyncio.Event) -> None:
        """One probe's loop: gate, initial delay, then a run every period (Kubernetes' worker)."""
        if spec.kind != "Startup":
            await started.wait()
        counter = ProbeCounter(spec)
        await asyncio.sleep(spec.initial_delay)
        loop = asyncio.get_running_loop()
        while handle.running:
            began = loop.time()
            try:
                error = await run_probe(spec, runtime=self.runtime, handle=handle, container=container)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broken probe is a failed probe, never a dead task
                error = str(exc)
            if self.on_run is not None:
                self.on_run(spec.kind, name, error is None)
            verdict = counter.record(error is None)
            if verdict is not None:
                self.report(ProbeResult(name, verdict, spec.kind, "" if verdict else error or "probe failed"))
            elif error is not None:  # every failed run is an Unhealthy event, as in Kubernetes
                self.report(ProbeFailed(name, spec.kind, error))
            if spec.kind == "Startup" and counter.verdict:
                started.set()
                return
            await asyncio.sleep(max(spec.period - (loop.time() - began), 0.0))


__all__ = ["PROBE_FIELDS", "PodProbers", "ProbeCounter", "ProbeSpec", "run_probe"]
