"""One pod's life on this node: network, containers, restarts, status, termination.

A :class:`PodWorker` is one asyncio task per pod. The kubelet hands it every new
version of the pod object (:meth:`PodWorker.update`); container exits and
timers wake it too. Each wake runs one *sync* that compares what should be
running with what is, acts, and writes the status if -- and only if -- it
changed. A single task owns all of the pod's state, so there are no locks,
and a burst of events costs one sync.

The order of a pod's first status writes is the one Kubernetes shows (see the
seeds): (a) ``ContainerCreating`` with ``Initialized`` True and ``Ready``
False, host IP and start time; (b) the pod IP, once the CNI step has found the
port the network controller wrote (``cni.add`` raises ``CNIError`` until then:
retried with a short backoff, or at once when the pod object changes); (c)
``Running`` with every container running and ready. Each is its own merge patch
of ``status`` (only the fields that changed).

Containers restart as the restart policy says, after the crash-loop backoff
of Kubernetes (:class:`CrashBackoff`): the first restart at once, then 10 s,
20 s, ... up to 5 min, forgotten after 10 min without a crash; while it waits
the container shows ``waiting: CrashLoopBackOff``.

When the pod gets a ``deletionTimestamp``: the containers turn unready (one
write), run their ``preStop`` hook, get SIGTERM, SIGKILL once the grace period
is over (the hook's time counts against it; at least 2 s are left for the
signals, Kubernetes' minimum), the terminated states are written, and the
kubelet deletes the pod with grace 0 (uid precondition), then releases the
network and the log directory. A pod that vanishes from the API (force
deletion) has its processes stopped as well.

Lifecycle hooks (``exec``, ``httpGet``, ``sleep``) follow the seeds: a
``postStart`` hook runs right after its container starts, and the container
does not count as started (nor does the next one start) until it has finished;
a failing hook kills the container (event ``FailedPostStartHook``), which then
restarts as its policy says.

A worker started for a pod whose status says containers were running (the
kubelet restarted and the processes are gone) takes the status as its
starting point: a container it finds no process for ended with
``ContainerStatusUnknown`` (exit 137, as Kubernetes reports it) and is restarted
according to the restart policy.

The worker is the driver of the pod's life; the container environment
(``env``, ``envFrom``, ``valueFrom``, ``$(VAR)``) is built by
:mod:`podlife.kubelet.environment` and the hook handlers run by
:mod:`podlife.kubelet.hooks`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ..machinery.errors import ApiError
from ..client.base import PODS, Client, Obj
from ..client.events import EventRecorder
from ..node.cni import CNIError
from ..node.lifecycle import (
    CrashBackoff, format_pod, go_duration, image_id, should_restart, terminated_from_api,
)
from .runtime import (
    ContainerHandle, ContainerSpec, ContainerStartError, PodKey,
    ProcessRuntime,
)
from ..machinery.tasks import Supervisor
from .environment import EnvError, EnvResolver, expand
from .hooks import run_handler
from .server import LogTarget
from .streams import RequestRefused
from ..node.status import (
    CONTAINER_CREATING, CRASH_LOOP_BACK_OFF, CREATE_CONTAINER_CONFIG_ERROR, KUBELET_CONDITIONS,
    START_ERROR, STATUS_UNKNOWN, TERMINAL_PHASES, ContainerView, PodFacts, Running, Terminated, Waiting,
    build_pod_status, rfc3339, status_patch,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

#: What Kubernetes says about a container that was running and is gone.
VANISHED_MESSAGE = "The container could not be located when the pod was deleted.  The container used to be Running"
#: ... and about a container that had not run when its pod was terminated.
NEVER_RAN_MESSAGE = "The container could not be located when the pod was terminated"
VANISHED_EXIT_CODE = 137
#: Whether the status written after a deletion's kill says Succeeded/Failed.
#: Kubernetes >= 1.27 does (kubectl then shows Completed/Error until the pod is
#: gone); the reference ``kubectl get pods -w`` of this project shows
#: ``Terminating`` to the end, which is the phase left as it was.
TERMINAL_PHASE_ON_DELETION = False


class PortInfoLike(Protocol):
    @property
    def ip(self) -> str: ...


class CNI(Protocol):
    """The part of :class:`podlife.node.cni.CNIPlugin` the kubelet uses."""

    async def add(self, pod: Obj) -> PortInfoLike: ...

    async def delete(self, pod: Obj) -> None: ...


@dataclass
class WorkerConfig:
    """Timings of a pod worker (Kubernetes' defaults; tests shrink them)."""

    backoff_initial: float = 10.0
    backoff_max: float = 300.0
    network_retry_initial: float = 0.1
    network_retry_max: float = 2.0
    config_retry: float = 2.0
    status_retry: float = 1.0
    #: Containers always get at least this long between SIGTERM and SIGKILL
    #: (Kubernetes' minimumGracePeriodInSeconds).
    min_kill_grace: float = 2.0


# --------------------------------------------------------------------------- containers


@dataclass
class _Container:
    """What the worker knows about one spec container across its instances."""

    spec: Obj
    backoff: CrashBackoff
    restart_count: int = 0  # index of the newest instance
    current: Running | Terminated | None = None  # the newest instance
    previous: Terminated | None = None  # the one before it
    handle: ContainerHandle | None = None  # the newest instance's process, while known
    waiting: Waiting | None = None  # why it cannot start (config error), while that holds
    retry_at: float = 0.0  # loop time before which a failed start is not retried
    finished_at: float = 0.0  # loop time the newest instance ended
    image_id: str = ""
    ready_override: bool | None = None  # a readiness probe's verdict, once there is one

    @property
    def name(self) -> str:
        return str(self.spec.get("name", ""))

    @property
    def image(self) -> str:
        return str(self.spec.get("image", ""))


# --------------------------------------------------------------------------- the worker


class PodWorker:
    """Runs one pod (identified by its uid) until it is deleted."""

    def __init__(self, pod: Obj, *, client: Client, runtime: ProcessRuntime, cni: CNI, recorder: EventRecorder,
                 host_ip: str, config: WorkerConfig | None = None) -> None:
        meta = pod["metadata"]
        self.namespace: str = meta.get("namespace", "default")
        self.name: str = meta["name"]
        self.uid: str = meta.get("uid", "")
        self.pod = pod
        self.client = client
        self.runtime = runtime
        self.cni = cni
        self.recorder = recorder
        self.host_ip = host_ip
        self.config = config or WorkerConfig()
        self.pod_key = PodKey(self.namespace, self.name, self.uid)
        self._status: Obj = dict(pod.get("status") or {})  # as last written (or read)
        self._containers = [
            _Container(spec=c, backoff=CrashBackoff(self.config.backoff_initial, self.config.backoff_max))
            for c in (pod.get("spec") or {}).get("containers") or []
        ]
        self._start_time = self._status.get("startTime") or rfc3339()
        self._pod_ips: tuple[str, ...] = ()
        self._network_up = False
        self._network_delay = self.config.network_retry_initial
        self._terminating = False
        self._gone = False
        self._wake = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._background = Supervisor(f"pod worker {self.namespace}/{self.name}", logger=log)
        self._task: asyncio.Task[None] | None = None
        self._starting: asyncio.Future[ContainerHandle] | None = None
        self._recover()

    def __repr__(self) -> str:
        return f"<PodWorker {self.namespace}/{self.name} {self.uid}>"

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    # ------------------------------------------------------------------ inputs

    def start(self, on_done: Callable[[PodWorker], None] | None = None) -> None:
        """Begin working; ``on_done(worker)`` is called once the worker has ended."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"pod {self.key}")
        if on_done is not None:
            self._task.add_done_callback(lambda _task: on_done(self))

    def update(self, pod: Obj | None) -> None:
        """A new version of the pod (None: it is gone from the API)."""
        if pod is None:
            self._gone = True
        else:
            self.pod = pod
        self._wake.set()

    def set_readiness(self, container: str, ready: bool) -> None:
        """A readiness verdict for ``container`` (the hook for a readiness prober)."""
        for rec in self._containers:
            if rec.name == container:
                rec.ready_override = ready
        self._wake.set()

    async def cancel(self) -> None:
        """Stop working on the pod without touching the API or the processes."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._starting is not None:
            await asyncio.gather(self._starting, return_exceptions=True)

    # ------------------------------------------------------------------ main loop

    async def _run(self) -> None:
        try:
            while True:
                self._wake.clear()
                if self._gone:
                    await self._kill_running(self._kill_grace())
                    await self._release()
                    return
                if self._deletion_requested():
                    await self._terminate()
                    return
                try:
                    await self._sync()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("%r: sync failed; retrying", self)
                    self._wake_in(self.config.status_retry)
                if not self._gone and not self._deletion_requested():
                    await self._wake.wait()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%r: worker failed", self)
        finally:
            self._cancel_timer()
            self._background.cancel()

    def _deletion_requested(self) -> bool:
        return bool((self.pod.get("metadata") or {}).get("deletionTimestamp"))

    def _api_terminal(self) -> bool:
        phase = self._status.get("phase")
        api_phase = (self.pod.get("status") or {}).get("phase")
        return phase in TERMINAL_PHASES or api_phase in TERMINAL_PHASES

    async def _sync(self) -> None:
        """One pass: notice exits, then network, then starts -- writing status between steps."""
        self._collect_exits()
        if self._finished_running():
            await self._release_network()
            await self._write_status()
            return
        await self._write_status()  # (a) ContainerCreating / (d) exits
        if not self._network_up:
            if not await self._setup_network():
                return
            await self._write_status()  # (b) pod IP
        await self._start_due_containers()
        await self._write_status()  # (c) Running
        self._schedule_restarts()

    # ------------------------------------------------------------------ network

    async def _setup_network(self) -> bool:
        """``cni.add``; on failure retry later (sooner if the pod object changes)."""
        try:
            port = await self.cni.add(self.pod)
        except CNIError as exc:
            log.debug("%r: network not ready yet: %s", self, exc)
            self._retry_network()
            return False
        except Exception as exc:
            log.warning("%r: CNI add failed: %s", self, exc)
            self._event("Warning", "FailedCreatePodSandBox", f"Failed to create pod sandbox: {exc}")
            self._retry_network()
            return False
        self._pod_ips = (port.ip,)
        self._network_up = True
        self._network_delay = self.config.network_retry_initial
        return True

    def _retry_network(self) -> None:
        self._wake_in(self._network_delay)
        self._network_delay = min(self._network_delay * 2, self.config.network_retry_max)

    async def _release_network(self) -> None:
        if not self._network_up:
            return
        self._network_up = False
        try:
            await self.cni.delete(self.pod)
        except Exception as exc:  # the port is the network controller's to collect
            log.warning("%r: CNI delete failed: %s", self, exc)

    async def _release(self) -> None:
        """Give back what the pod held on this node: network, processes, logs."""
        await self._release_network()
        await self.runtime.remove_pod(self.pod_key)

    # ------------------------------------------------------------------ containers

    def _restart_policy(self) -> str:
        return str((self.pod.get("spec") or {}).get("restartPolicy", "Always"))

    def _restart_wait(self, rec: _Container) -> float | None:
        """Seconds until the ended newest instance is restarted; None if it never will be."""
        cur = rec.current
        if not isinstance(cur, Terminated) or self._terminating or self._api_terminal():
            return None
        if not should_restart(self._restart_policy(), cur.exit_code):
            return None
        return rec.backoff.remaining(rec.finished_at, self._now())

    def _in_crash_loop(self, rec: _Container) -> bool:
        """Waiting out a backoff -- shown until the restart happens, even once the wait is over."""
        return self._restart_wait(rec) is not None and rec.backoff.applies(rec.finished_at)

    def _finished_running(self) -> bool:
        """Nothing runs and nothing will: the pod has reached (or keeps) a terminal phase."""
        if self._api_terminal():
            return all(rec.handle is None for rec in self._containers)
        return all(isinstance(rec.current, Terminated) and rec.handle is None and self._restart_wait(rec) is None
                   for rec in self._containers)

    def _collect_exits(self) -> None:
        """Turn processes that have exited into terminated states."""
        for rec in self._containers:
            handle = rec.handle
            if handle is None or handle.exited is None:
                continue
            info = handle.exited
            rec.current = Terminated(info.exit_code, info.reason, rfc3339(handle.started_at),
                                     rfc3339(info.finished_at), handle.container_id)
            ago = (datetime.now(timezone.utc) - info.finished_at).total_seconds()
            rec.finished_at = self._now() - max(ago, 0.0)
            rec.handle = None
            wait = self._restart_wait(rec)
            if wait:
                self._event("Warning", "BackOff",
                            f"Back-off restarting failed container {rec.name} in pod {format_pod(self.pod)}", rec)

    def _due(self, rec: _Container) -> bool:
        if rec.handle is not None or self._api_terminal():
            return False
        if rec.waiting is not None:
            return self._now() >= rec.retry_at
        if rec.current is None:
            return True
        return self._restart_wait(rec) == 0

    async def _start_due_containers(self) -> None:
        """Start, in spec order, every container that should run now and does not."""
        for rec in self._containers:
            if self._gone or self._deletion_requested():
                return  # the next pass terminates instead
            if self._due(rec):
                await self._start_container(rec)

    async def _start_container(self, rec: _Container) -> None:
        if isinstance(rec.current, Terminated):  # a restart: the ended instance becomes the previous one
            rec.backoff.restarted(rec.finished_at)
            rec.previous, rec.current = rec.current, None
            rec.restart_count += 1
        resolver = EnvResolver(self.client, self.pod, host_ip=self.host_ip, pod_ips=self._pod_ips)
        try:
            env = await resolver.resolve(rec.spec)
        except EnvError as exc:
            rec.waiting = Waiting(CREATE_CONTAINER_CONFIG_ERROR, str(exc))
            rec.retry_at = self._now() + self.config.config_retry
            self._wake_in(self.config.config_retry)
            self._event("Warning", "Failed", f"Error: {exc}", rec)
            return
        rec.waiting = None
        spec = ContainerSpec(
            name=rec.name,
            command=[expand(a, env) for a in rec.spec.get("command") or []],
            args=[expand(a, env) for a in rec.spec.get("args") or []],
            env=env,
            working_dir=rec.spec.get("workingDir") or None,
            image=rec.image,
        )
        self._event("Normal", "Pulled", f'Container image "{rec.image}" already present on machine', rec)
        self._event("Normal", "Created", f"Created container {rec.name}", rec)
        rec.image_id = image_id(rec.image)
        # Shielded: a worker cancelled mid-start lets the start finish, so that the
        # runtime knows the process and its shutdown stops it (see cancel()).
        self._starting = asyncio.ensure_future(self.runtime.start_container(self.pod_key, spec, rec.restart_count))
        try:
            handle = await asyncio.shield(self._starting)
        except ContainerStartError as exc:
            now = rfc3339()
            rec.current = Terminated(exc.exit_code, START_ERROR, now, now, message=exc.message)
            rec.finished_at = self._now()
            self._event("Warning", "Failed", f"Error: {exc.message}", rec)
            return
        rec.handle = handle
        rec.current = Running(rfc3339(handle.started_at), handle.container_id)
        self._event("Normal", "Started", f"Started container {rec.name}", rec)
        self._background.start(self._wake_on_exit(handle))
        if hook := (rec.spec.get("lifecycle") or {}).get("postStart"):
            await self._post_start(rec, handle, hook)

    async def _post_start(self, rec: _Container, handle: ContainerHandle, hook: Obj) -> None:
        """Run the postStart hook before the container counts as started (as the kubelet does).

        If it fails the container is killed, and restarted as its restart policy says.
        """
        finished, error = await self._unless_deleted(self._run_hook(rec, handle, hook))
        if finished and error is not None:
            self._event("Warning", "FailedPostStartHook", error, rec)
            self._background.start(self.runtime.stop_container(handle, self._kill_grace()))

    async def _wake_on_exit(self, handle: ContainerHandle) -> None:
        await handle.wait()
        self._wake.set()

    def _schedule_restarts(self) -> None:
        waits = [w for rec in self._containers if rec.handle is None and (w := self._restart_wait(rec))]
        if waits:
            self._wake_in(min(waits))

    # ------------------------------------------------------------------ termination

    def _kill_grace(self) -> float:
        """The grace period the pod asks for now (its deletion's, else its spec's), floored."""
        if self._gone:  # force-deleted: nothing to wait for but the minimum
            return self.config.min_kill_grace
        meta, spec = self.pod.get("metadata") or {}, self.pod.get("spec") or {}
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        return max(float(grace), self.config.min_kill_grace)

    async def _terminate(self) -> None:
        """Graceful deletion: unready, SIGTERM, grace, SIGKILL, final status, delete, release."""
        self._terminating = True
        self._cancel_timer()
        self._collect_exits()
        await self._write_status()  # every container unready
        await self._kill_running(self._kill_grace())
        self._collect_exits()
        for rec in self._containers:
            if not isinstance(rec.current, Terminated):
                rec.current = Terminated(VANISHED_EXIT_CODE, STATUS_UNKNOWN, "", "", message=NEVER_RAN_MESSAGE)
            rec.waiting = None
        await self._write_status(terminal=TERMINAL_PHASE_ON_DELETION)
        if not self._gone:
            await self._delete_from_api()
        await self._release()

    async def _kill_running(self, grace: float) -> None:
        """Stop every running container (preStop hook, SIGTERM, SIGKILL after ``grace``).

        A shorter grace asked for meanwhile (a second, shorter delete) is honoured.
        """
        running = [rec for rec in self._containers if rec.handle is not None and rec.handle.running]
        for rec in running:
            self._event("Normal", "Killing", f"Stopping container {rec.name}", rec)
        if not running:
            return
        handles = [rec.handle for rec in running if rec.handle is not None]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        stopping = asyncio.gather(*(self._stop_container(rec, grace) for rec in running), return_exceptions=True)
        while not stopping.done():
            self._wake.clear()
            woken = loop.create_task(self._wake.wait())
            either: list[asyncio.Future[Any]] = [stopping, woken]
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            woken.cancel()
            shorter = self._kill_grace()
            if loop.time() + shorter < deadline:
                deadline = loop.time() + shorter
                for handle in handles:
                    if handle.running:
                        self._background.start(self.runtime.stop_container(handle, shorter))
        await stopping

    async def _stop_container(self, rec: _Container, grace: float) -> None:
        """Kubernetes' killContainer: the preStop hook within the grace period, then the signals.

        The hook's time counts against the grace period; whatever is left (at
        least the minimum grace) is the time between SIGTERM and SIGKILL.
        """
        handle = rec.handle
        assert handle is not None
        hook = ((rec.spec.get("lifecycle") or {}).get("preStop")) or None
        remaining = grace
        if hook is not None and not self._gone:
            started = self._now()
            try:
                error = await asyncio.wait_for(self._run_hook(rec, handle, hook), grace)
            except TimeoutError:
                error = f"PreStopHook did not finish within the {go_duration(grace)} grace period"
            if error is not None:
                self._event("Warning", "FailedPreStopHook", error, rec)
            remaining = grace - (self._now() - started)
        await self.runtime.stop_container(handle, max(remaining, self.config.min_kill_grace))

    # ------------------------------------------------------------------ lifecycle hooks

    async def _run_hook(self, rec: _Container, handle: ContainerHandle, hook: Obj) -> str | None:
        """Run ``rec``'s ``postStart`` or ``preStop`` handler (:mod:`podlife.kubelet.hooks`)."""
        return await run_handler(hook, runtime=self.runtime, handle=handle, container=rec.spec, pod=self.pod)

    async def _unless_deleted(self, aw: Awaitable[T]) -> tuple[bool, T | None]:
        """Await ``aw`` unless the pod is deleted meanwhile (then cancel it): (finished, result)."""
        task = asyncio.ensure_future(aw)
        try:
            while not task.done():
                if self._gone or self._deletion_requested():
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    return False, None
                self._wake.clear()
                woken = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait({task, woken}, return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()
            return True, task.result()
        finally:
            self._wake.set()  # whatever woke us meanwhile gets its own pass

    async def _delete_from_api(self) -> None:
        """Ask the API to remove the pod now that nothing of it runs (grace 0, same uid only)."""
        try:
            await self.client.delete(PODS, self.name, self.namespace, grace_period_seconds=0,
                                     preconditions={"uid": self.uid})
        except ApiError as exc:
            if exc.code not in (404, 409):
                log.warning("%r: deleting the pod failed: %s", self, exc)

    # ------------------------------------------------------------------ status

    def _view(self, rec: _Container) -> ContainerView:
        """How the API shows ``rec`` now (see Kubernetes' convertToAPIContainerStatuses)."""
        cur, last = rec.current, rec.previous
        state: Waiting | Running | Terminated
        if rec.waiting is not None:
            state = rec.waiting
            last = cur if isinstance(cur, Terminated) else last
        elif cur is None:
            state = Waiting(CONTAINER_CREATING)
        elif isinstance(cur, Terminated) and self._in_crash_loop(rec):
            delay = go_duration(rec.backoff.delay)
            state = Waiting(CRASH_LOOP_BACK_OFF,
                            f"back-off {delay} restarting failed container={rec.name} pod={format_pod(self.pod)}")
            last = cur
        else:
            state = cur
        ready = isinstance(state, Running) and not self._terminating and rec.ready_override is not False
        return ContainerView(
            name=rec.name,
            image=rec.image,
            state=state,
            last_state=last,
            restart_count=rec.restart_count,
            ready=ready,
            container_id=cur.container_id if cur is not None else "",
            image_id=rec.image_id if cur is not None else "",
        )

    def _base_status(self) -> Obj:
        """The status we last wrote, with conditions others own taken from the newest pod."""
        base = dict(self._status)
        api = self.pod.get("status") or {}
        foreign = [c for c in api.get("conditions") or [] if c.get("type") not in KUBELET_CONDITIONS]
        ours = [c for c in base.get("conditions") or [] if c.get("type") in KUBELET_CONDITIONS]
        base["conditions"] = foreign + ours
        if api.get("phase") in TERMINAL_PHASES:
            base["phase"] = api["phase"]
        return base

    def desired_status(self, *, terminal: bool = False) -> Obj:
        facts = PodFacts(host_ip=self.host_ip, start_time=self._start_time, pod_ips=self._pod_ips,
                         sandbox_ready=self._network_up)
        views = [self._view(rec) for rec in self._containers]
        return build_pod_status(self.pod, views, facts, previous=self._base_status(), now=rfc3339(), terminal=terminal)

    async def _write_status(self, *, terminal: bool = False) -> None:
        """Patch the status if it changed; on failure keep the old view so the next sync retries."""
        if self._gone:
            return
        wanted = self.desired_status(terminal=terminal)
        patch = status_patch(self._status, wanted)
        if patch is None:
            return
        try:
            await self.client.patch(PODS, self.name, {"status": patch}, self.namespace, subresource="status")
        except ApiError as exc:
            if exc.code == 404:
                self._gone = True
                return
            log.warning("%r: status write failed: %s", self, exc)
            self._wake_in(self.config.status_retry)
            return
        self._status = wanted

    # ------------------------------------------------------------------ recovery

    def _recover(self) -> None:
        """Start from the status in the API (a kubelet restart finds no processes)."""
        ips = [p.get("ip") for p in self._status.get("podIPs") or [] if p.get("ip")]
        self._pod_ips = tuple(ips) or ((self._status["podIP"],) if self._status.get("podIP") else ())
        statuses = {s.get("name"): s for s in self._status.get("containerStatuses") or []}
        now = rfc3339()
        for rec in self._containers:
            old = statuses.get(rec.name)
            if old is None:
                continue
            rec.restart_count = int(old.get("restartCount") or 0)
            rec.image_id = str(old.get("imageID") or "")
            state, last = old.get("state") or {}, (old.get("lastState") or {}).get("terminated")
            rec.previous = terminated_from_api(last) if last else None
            if "terminated" in state:
                rec.current = terminated_from_api(state["terminated"])
            elif "running" in state:
                started = str(state["running"].get("startedAt") or "")
                rec.current = Terminated(VANISHED_EXIT_CODE, STATUS_UNKNOWN, started, now,
                                         str(old.get("containerID") or ""), VANISHED_MESSAGE)
            elif rec.previous is not None:  # waiting to be restarted: the last one is the newest
                rec.current, rec.previous = rec.previous, None
            if isinstance(rec.current, Terminated):
                rec.finished_at = self._now()

    # ------------------------------------------------------------------ logs

    def log_target(self, container: str, previous: bool) -> LogTarget:
        """The log file ``kubectl logs [--previous]`` should read, or why there is none."""
        rec = next((r for r in self._containers if r.name == container), None)
        if rec is None:
            raise RequestRefused.not_found(f'container "{container}" in pod "{self.name}" not found')
        view = self._view(rec)

        def instance_path(state: Terminated | Running | None) -> Path:
            index = rec.restart_count if state is rec.current else rec.restart_count - 1
            return self.runtime.log_path(self.pod_key, rec.name, index)

        last = view.last_state
        if previous:
            if last is None or not last.container_id:
                raise RequestRefused.bad_request(
                    f'previous terminated container "{container}" in pod "{self.name}" not found')
            return LogTarget(instance_path(last), lambda: False)
        state = view.state
        if isinstance(state, Running):
            handle = rec.handle
            return LogTarget(instance_path(rec.current), lambda: handle is not None and handle.running)
        if isinstance(state, Terminated) and state.container_id:
            return LogTarget(instance_path(state), lambda: False)
        if last is not None and last.container_id:
            return LogTarget(instance_path(last), lambda: False)
        if isinstance(state, Terminated):
            raise RequestRefused.bad_request(f'container "{container}" in pod "{self.name}" is terminated')
        raise RequestRefused.bad_request(
            f'container "{container}" in pod "{self.name}" is waiting to start: {state.reason}')

    # ------------------------------------------------------------------ plumbing

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _event(self, type_: str, reason: str, message: str, rec: _Container | None = None) -> None:
        field_path = f"spec.containers{{{rec.name}}}" if rec is not None else ""
        self.recorder.event(self.pod, type_, reason, message, field_path)

    def _wake_in(self, delay: float) -> None:
        """Wake the worker in ``delay`` seconds (an earlier pending wake-up wins)."""
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        if self._timer is not None and loop.time() < self._timer_at <= when:
            return
        self._cancel_timer()
        self._timer = loop.call_later(delay, self._wake.set)
        self._timer_at = when

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


__all__ = ["CNI", "PodWorker", "WorkerConfig"]
