"""One pod's life on this node: the shared lifecycle machine, carried out with processes.

Design
------
What a pod goes through -- the order of its status writes (ContainerCreating, the
pod IP, Running), restarts and the CrashLoopBackOff back-off, terminal phases,
graceful termination -- is decided by :class:`podlife.node.machine.PodLifecycle`,
the state machine simulated nodes drive too. A :class:`PodWorker` is its driver on a
real node: one asyncio task per pod that turns what happens to processes into the
machine's *facts* and carries out the machine's *effects*:

==========================  ===================================================
effect                      carried out by
==========================  ===================================================
``WriteStatus``             a merge patch of ``status`` (only what changed)
``SetUpSandbox``            the pod's volumes (:mod:`podlife.kubelet.volumes`; one
                            that cannot be set up yet is a ``FailedMount``
                            event and a retry), the runtime's sandbox, then the
                            CNI step (:mod:`podlife.node.cni`) in the sandbox's
                            network namespace; it raises ``CNIError`` until the
                            network controller has written the port: retried
                            with a short back-off, or at once when the pod
                            object changes. A CNI plugin executable's failure
                            is also a ``FailedCreatePodSandBox`` Warning in
                            Kubernetes' words (:func:`sandbox_network_error`)
``StartContainer``          environment (:mod:`podlife.kubelet.environment`),
                            then the runtime (:mod:`podlife.kubelet.runtimes`:
                            a container, or a process); an image the node cannot
                            provide is ``ImagePullFailed``
``RunHook``                 the ``postStart`` handler (:mod:`podlife.kubelet.hooks`)
``KillContainers``          ``preStop`` hook within the grace period, SIGTERM,
                            SIGKILL once it is over (a shorter grace asked for
                            meanwhile is honoured; at least 2 s for the signals)
``DeletePod``               delete with grace 0 and a uid precondition
``ReleaseSandbox``          CNI delete (DEL, while the sandbox's namespace exists)
``RecordEvent``/``WakeAt``  the event recorder / a timer that wakes the task
==========================  ===================================================

Each running container instance is probed (:mod:`podlife.kubelet.prober`) from
its start until its exit; verdicts come back as ``ProbeResult`` facts.

The kubelet's metrics (:class:`~podlife.node.metrics.NodeMetrics`, when given) hear of
image pulls, init containers' runs, probe runs and every status write, for the pod
startup latency SLI and ``prober_probe_total``.

The kubelet hands the worker every new version of the pod (:meth:`PodWorker.update`);
container exits and timers wake it too. Each wake feeds what happened to the machine
and carries out its plan until only a wait is left. A single task owns the pod's
state, so there are no locks, and a burst of events costs one pass.

A worker started for a pod whose status says containers were running (the kubelet
restarted) recovers the machine from that status. Containers the runtime kept
running (conmon outlives the agent) and that the status names -- same container ID
and restart count -- are followed again as they are; any other is gone: ended with
``ContainerStatusUnknown`` and restarted as its policy says. A pod that vanishes
from the API (force deletion) has its containers stopped as well.

While the pod runs, its configMap, secret, downwardAPI and projected volumes are
refreshed every ``volume_refresh`` seconds (the kubelet's periodic sync), so a
changed ConfigMap shows up in the files.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ..client.base import PODS, Client, Obj
from ..client.events import EventRecorder
from ..machinery.errors import ApiError
from ..machinery.tasks import Supervisor
from ..node.cni import CNIError, CNIPluginError
from ..node.lifecycle import go_duration
from ..node.metrics import NodeMetrics
from ..node.machine import (
    ContainerConfigFailed, ContainerExited, ContainerStarted, ContainerStartFailed, DeletePod, Effect, Fact,
    HookFailed, ImagePullFailed, KillContainers, LifecycleConfig, PodEvicted, PodGone, PodLifecycle, PodUpdated,
    PostStartDone, ProbeResult, RecordEvent, ReleaseSandbox, RunHook, SandboxFailed, SandboxReady, SetUpSandbox,
    StartContainer, WakeAt, WriteStatus, only_waits,
)
from ..node.status import Running, Terminated, rfc3339
from .environment import EnvError, EnvResolver, expand
from .hooks import run_handler
from .prober import PodProbers
from .runtime import ContainerSpec, ContainerStartError, ImageUnavailableError, PodKey
from .runtimes import ContainerLike, ContainerRuntime
from .volumes import HostVolume, VolumeError, VolumeManager, container_mounts
from .termination_message import termination_message
from .server import LogTarget
from .streams import RequestRefused

log = logging.getLogger(__name__)
T = TypeVar("T")


class PortInfoLike(Protocol):
    @property
    def ip(self) -> str: ...


class CNI(Protocol):
    """The part of :class:`podlife.node.cni.CNIPlugin` the kubelet uses (``netns_path``: the
    sandbox's network namespace, None without one; ``sandbox_id``: CNI's container id)."""

    async def add(self, pod: Obj, netns_path: str | None = None, *, sandbox_id: str = "") -> PortInfoLike: ...

    async def delete(self, pod: Obj, netns_path: str | None = None, *, sandbox_id: str = "") -> None: ...


def sandbox_network_error(sandbox_id: str, error: Exception) -> str:
    """A failed CNI ADD as the CRI runtime reports it (the kubelet's event prefixes "Failed to create pod sandbox: ")."""
    return f'rpc error: code = Unknown desc = failed to setup network for sandbox "{sandbox_id}": {error}'


@dataclass
class WorkerConfig:
    """Timings of a pod worker (Kubernetes' defaults; tests shrink them)."""

    backoff_initial: float = 10.0
    backoff_max: float = 300.0
    network_retry_initial: float = 0.1
    network_retry_max: float = 2.0
    config_retry: float = 2.0
    status_retry: float = 1.0
    #: how often a running pod's configMap/secret/downwardAPI/projected volumes are re-read
    volume_refresh: float = 10.0
    #: Containers always get at least this long between SIGTERM and SIGKILL
    #: (Kubernetes' minimumGracePeriodInSeconds).
    min_kill_grace: float = 2.0

    def lifecycle(self) -> LifecycleConfig:
        return LifecycleConfig(backoff_initial=self.backoff_initial, backoff_max=self.backoff_max,
                               sandbox_retry_initial=self.network_retry_initial,
                               sandbox_retry_max=self.network_retry_max, min_kill_grace=self.min_kill_grace)


class PodWorker:
    """Runs one pod (identified by its uid) until it is deleted."""

    def __init__(self, pod: Obj, *, client: Client, runtime: ContainerRuntime, cni: CNI, recorder: EventRecorder,
                 host_ip: str, volumes: VolumeManager, config: WorkerConfig | None = None,
                 metrics: NodeMetrics | None = None) -> None:
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
        self.volumes = volumes
        self._host_volumes: dict[str, HostVolume] = {}
        self._refresh_task: asyncio.Task[None] | None = None
        self.config = config or WorkerConfig()
        self.pod_key = PodKey(self.namespace, self.name, self.uid)
        self.machine = PodLifecycle(pod, host_ip=host_ip, config=self.config.lifecycle())
        self.machine.recover(pod.get("status") or {}, now=self._now(), now_text=rfc3339())
        self._handles: dict[str, ContainerLike] = {}  # container -> its newest instance's process, while known
        self._inbox: list[Fact] = []  # facts from outside the task (probe verdicts)
        self._metrics = metrics
        on_run = None if metrics is None else (
            lambda kind, container, ok: metrics.probed(kind, ok, container, self.name, self.namespace))
        self._probers = PodProbers(runtime, self._report, on_run)  # probes of the running instances
        self._pod_changed = False
        self._gone = False
        self._wake = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._background = Supervisor(f"pod worker {self.namespace}/{self.name}", logger=log)
        self._task: asyncio.Task[None] | None = None
        self._starting: asyncio.Future[ContainerLike] | None = None

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
            self._pod_changed = True
        self._wake.set()

    def set_readiness(self, container: str, ready: bool) -> None:
        """A readiness verdict for ``container`` (the hook for a readiness prober)."""
        self._report(ProbeResult(container, ready))

    def evict(self, message: str, grace: float | None = None) -> None:
        """The node evicts this pod (the eviction manager's decision): Failed, reason Evicted."""
        self._report(PodEvicted(message, grace))

    def _report(self, fact: Fact) -> None:
        """A fact from outside the task (a prober's verdict): taken on the next pass."""
        self._inbox.append(fact)
        self._wake.set()

    async def cancel(self) -> None:
        """Stop working on the pod without touching the API or the processes."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._starting is not None:
            await asyncio.gather(self._starting, return_exceptions=True)

    # ------------------------------------------------------------------ main loop

    async def _readopt(self) -> None:
        """Follow again the containers the runtime kept running through an agent restart."""
        status = self.pod.get("status") or {}
        adopted = await self.runtime.claim_adopted(self.pod_key, status)
        if not adopted and not self.runtime.has_sandbox(self.pod_key):
            return
        self.machine.recover(status, now=self._now(), now_text=rfc3339(), alive=adopted.keys(),
                             sandbox_ready=self.runtime.has_sandbox(self.pod_key))
        for name, handle in adopted.items():
            self._handles[name] = handle
            self._background.start(self._wake_on_exit(handle))
            if (rec := self.machine.container(name)) is not None:
                self._probers.start(rec.spec, handle)
        log.info("%r: re-adopted %s", self, ", ".join(sorted(adopted)) or "the sandbox")

    async def _run(self) -> None:
        try:
            await self._readopt()
            while not self.machine.deleted:
                self._wake.clear()
                try:
                    await self._drive()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("%r: sync failed; retrying", self)
                    self._wake_in(self.config.status_retry)
                if not self.machine.deleted:
                    await self._wake.wait()
            await self.runtime.remove_pod(self.pod_key)  # containers, sandbox, logs
            if self.runtime.mounts_volumes:
                await self.volumes.tear_down(self.uid)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%r: worker failed", self)
        finally:
            self._cancel_timer()
            if self._refresh_task is not None:
                self._refresh_task.cancel()
            self._background.cancel()
            self._probers.stop_all()

    async def _drive(self) -> None:
        """Feed what happened to the machine and carry out its plan until only a wait is left."""
        while not self.machine.deleted:
            await self._take_inputs()
            effects = self.machine.plan(self._now())
            if only_waits(effects):
                for effect in effects:
                    await self._carry_out(effect)
                return
            if not await self._carry_out_all(effects):
                return

    async def _take_inputs(self) -> None:
        """Pod changes, a vanished pod, exited processes and queued verdicts, as facts."""
        if self._gone and not self.machine.gone:
            await self._observe(PodGone())
            return
        if self._pod_changed:
            self._pod_changed = False
            await self._observe(PodUpdated(self.pod))
        for name, handle in list(self._handles.items()):
            info = handle.exited
            if info is None:
                continue
            del self._handles[name]
            self._probers.stop(name)
            ago = (datetime.now(timezone.utc) - info.finished_at).total_seconds()
            message = await self._termination_message(name, handle, info.exit_code)
            if self._metrics is not None and (rec := self.machine.container(name)) is not None and rec.init \
                    and not rec.sidecar:
                self._metrics.pods.init_finished(self.uid, info.finished_at.timestamp())
            await self._observe(ContainerExited(name, info.exit_code, info.reason, rfc3339(info.finished_at),
                                                self._now() - max(ago, 0.0), message=message))
        inbox, self._inbox = self._inbox, []
        for fact in inbox:
            await self._observe(fact)

    async def _termination_message(self, name: str, handle: ContainerLike, exit_code: int) -> str:
        """The ended instance's ``terminated.message`` (:mod:`podlife.kubelet.termination_message`)."""
        rec = self.machine.container(name)
        if rec is None:
            return ""
        message_file = self.runtime.termination_message_file(handle)
        return await asyncio.to_thread(termination_message, rec.spec, exit_code, message_file, handle.log_path)

    async def _observe(self, fact: Fact) -> None:
        await self._carry_out_all(self.machine.observe(fact, self._now()))

    async def _carry_out_all(self, effects: list[Effect]) -> bool:
        """Carry out ``effects`` in order; False when a write failed (the next wake retries)."""
        for effect in effects:
            if not await self._carry_out(effect):
                return False
        return True

    async def _carry_out(self, effect: Effect) -> bool:
        if isinstance(effect, WriteStatus):
            return await self._write_status(effect.terminal)
        if isinstance(effect, RecordEvent):
            self.recorder.event(self.pod, effect.type, effect.reason, effect.message,
                                self.machine.field_path(effect.container))
        elif isinstance(effect, StartContainer):
            await self._start_container(effect.container, effect.instance)
        elif isinstance(effect, SetUpSandbox):
            await self._set_up_sandbox()
        elif isinstance(effect, RunHook):
            await self._post_start(effect.container)
        elif isinstance(effect, KillContainers):
            await self._kill(effect)
        elif isinstance(effect, DeletePod):
            if not self._gone:
                await self._delete_from_api()
        elif isinstance(effect, ReleaseSandbox):
            await self._release_sandbox()
        elif isinstance(effect, WakeAt):
            self._wake_in(effect.when - self._now())
        return True

    # ------------------------------------------------------------------ network

    async def _set_up_sandbox(self) -> None:
        """Volumes, the runtime's sandbox, then ``cni.add``; a failure is a fact (the machine
        says when to try again)."""
        try:
            if self.runtime.mounts_volumes:
                self._host_volumes = await self.volumes.set_up(self.pod)
        except VolumeError as exc:
            await self._observe(SandboxFailed(exc.message, warn=True, reason="FailedMount"))
            return
        try:
            await self.runtime.prepare_pod(self.pod)
        except Exception as exc:
            log.warning("%r: sandbox failed: %s", self, exc)
            await self._observe(SandboxFailed(str(exc), warn=True))
            return
        sandbox_id = self.runtime.pod_sandbox_id(self.pod)
        try:
            port = await self.cni.add(self.pod, self.runtime.pod_network_namespace(self.pod), sandbox_id=sandbox_id)
        except CNIPluginError as exc:  # the plugin's own failure (or the annotation race): an event, and a retry
            log.debug("%r: CNI ADD failed: %s", self, exc)
            await self._observe(SandboxFailed(sandbox_network_error(sandbox_id, exc), warn=True))
            return
        except CNIError as exc:
            log.debug("%r: network not ready yet: %s", self, exc)
            await self._observe(SandboxFailed(str(exc)))
            return
        except Exception as exc:
            log.warning("%r: CNI add failed: %s", self, exc)
            await self._observe(SandboxFailed(str(exc), warn=True))
            return
        await self.runtime.write_hosts(self.pod, (port.ip,))
        if self._refresh_task is None and self.runtime.mounts_volumes:
            self._refresh_task = asyncio.get_running_loop().create_task(self._refresh_volumes(),
                                                                        name=f"volumes of {self.key}")
        await self._observe(SandboxReady((port.ip,)))

    async def _refresh_volumes(self) -> None:
        """Re-read the pod's configMap/secret/downwardAPI/projected volumes now and then."""
        while True:
            await asyncio.sleep(self.config.volume_refresh)
            try:
                await self.volumes.refresh(self.pod)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the next round tries again, as the kubelet's next sync does
                log.debug("%r: volume refresh failed: %s", self, exc)

    async def _release_sandbox(self) -> None:
        """Unplug the network; a pod that ended (Succeeded, Failed, Evicted) also gives its volumes
        back now, as Kubernetes' volume manager does for terminated pods -- an evicted pod's
        emptyDir must not keep the node under disk pressure until somebody deletes the pod."""
        try:
            await self.cni.delete(self.pod, self.runtime.pod_network_namespace(self.pod),
                                  sandbox_id=self.runtime.pod_sandbox_id(self.pod))
        except Exception as exc:  # the port is the network controller's to collect
            log.warning("%r: CNI delete failed: %s", self, exc)
        if self.runtime.mounts_volumes and not self.machine.terminating:
            if self._refresh_task is not None:
                self._refresh_task.cancel()
                self._refresh_task = None
            await self.volumes.tear_down(self.uid)

    # ------------------------------------------------------------------ containers

    async def _start_container(self, name: str, instance: int) -> None:
        if self._pod_changed or self._gone:  # a deletion may have come: let the machine know first
            await self._take_inputs()
            if self.machine.terminating:
                return  # the machine dropped the start
        rec = self.machine.container(name)
        assert rec is not None
        resolver = EnvResolver(self.client, self.pod, host_ip=self.host_ip, pod_ips=self.machine.pod_ips)
        try:
            env = await resolver.resolve(rec.spec)
        except EnvError as exc:
            await self._observe(ContainerConfigFailed(name, str(exc), self.config.config_retry))
            return
        field_path = rec.field_path
        pulling = False

        def on_pulling(text: str) -> None:
            nonlocal pulling
            pulling = True
            if self._metrics is not None:
                self._metrics.pods.pull_started(self.uid, time.time())
            self.recorder.event(self.pod, "Normal", "Pulling", text, field_path)
        try:
            image = await self.runtime.ensure_image(
                rec.image, str(rec.spec.get("imagePullPolicy") or ""), self.pod, on_pulling=on_pulling)
        except ImageUnavailableError as exc:
            await self._observe(ImagePullFailed(name, exc.message, reason=exc.reason))
            return
        finally:
            if pulling and self._metrics is not None:
                self._metrics.pods.pull_finished(self.uid, time.time())
        try:
            mounts = container_mounts(rec.spec, self._host_volumes, env=env) if self.runtime.mounts_volumes else []
        except ValueError as exc:
            await self._observe(ContainerConfigFailed(name, str(exc), self.config.config_retry))
            return
        spec = ContainerSpec(
            name=name,
            command=[expand(a, env) for a in rec.spec.get("command") or []],
            args=[expand(a, env) for a in rec.spec.get("args") or []],
            env=env,
            working_dir=rec.spec.get("workingDir") or None,
            image=rec.image,
            container=rec.spec,
            pod=self.pod,
            mounts=mounts,
            image_ref=image,
        )
        # Shielded: a worker cancelled mid-start lets the start finish, so that the
        # runtime knows the process and its shutdown stops it (see cancel()).
        self._starting = asyncio.ensure_future(self.runtime.start_container(self.pod_key, spec, instance))
        try:
            handle = await asyncio.shield(self._starting)
        except ImageUnavailableError as exc:
            await self._observe(ImagePullFailed(name, exc.message, reason=exc.reason))
            return
        except ContainerStartError as exc:
            await self._observe(ContainerStartFailed(name, exc.exit_code, exc.message, rfc3339()))
            return
        except Exception as exc:  # the runtime failed before a process existed: retried, as the kubelet does
            log.exception("%r: cannot create container %s", self, name)
            await self._observe(ContainerConfigFailed(name, f"failed to create container {name}: {exc}",
                                                      self.config.config_retry, reason="CreateContainerError"))
            return
        self._handles[name] = handle
        self._background.start(self._wake_on_exit(handle))
        self._probers.start(rec.spec, handle)
        if rec.init and not rec.sidecar and self._metrics is not None:
            self._metrics.pods.init_started(self.uid, time.time())
        await self._observe(ContainerStarted(name, handle.container_id, rfc3339(handle.started_at),
                                             image_id=image.image_id, pulled=image.pulled_message))

    async def _post_start(self, name: str) -> None:
        """Run the postStart hook; the container counts as started (and the next one starts) after it."""
        rec, handle = self.machine.container(name), self._handles.get(name)
        if rec is None or handle is None or rec.post_start is None:
            return
        finished, error = await self._unless_deleted(self._run_hook(rec.spec, handle, rec.post_start))
        if finished:
            await self._observe(PostStartDone(name) if error is None else HookFailed(name, "PostStart", error))

    async def _wake_on_exit(self, handle: ContainerLike) -> None:
        await handle.wait()
        self._wake.set()

    # ------------------------------------------------------------------ termination

    async def _kill(self, effect: KillContainers) -> None:
        """Stop containers; a deletion's kill is waited for, a failed hook's runs beside the worker."""
        handles = [(name, h) for name in effect.containers if (h := self._handles.get(name)) is not None and h.running]
        if not handles:
            return
        if not effect.pre_stop and not self.machine.terminating:
            for _name, handle in handles:
                self._background.start(self.runtime.stop_container(handle, effect.grace))
            return
        await self._kill_running(handles, effect.grace, pre_stop=effect.pre_stop and not self._gone)

    async def _kill_running(self, handles: list[tuple[str, ContainerLike]], grace: float, *, pre_stop: bool) -> None:
        """Stop every running container (preStop hook, SIGTERM, SIGKILL after ``grace``).

        A shorter grace asked for meanwhile (a second, shorter delete) is honoured.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        stopping = asyncio.gather(*(self._stop_container(name, h, grace, pre_stop) for name, h in handles),
                                  return_exceptions=True)
        while not stopping.done():
            self._wake.clear()
            woken = loop.create_task(self._wake.wait())
            either: list[asyncio.Future[Any]] = [stopping, woken]
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            woken.cancel()
            if self._pod_changed:
                self._pod_changed = False
                self.machine.observe(PodUpdated(self.pod), self._now())
            shorter = self.machine.kill_grace() if not self._gone else self.config.min_kill_grace
            if loop.time() + shorter < deadline:
                deadline = loop.time() + shorter
                for _name, handle in handles:
                    if handle.running:
                        self._background.start(self.runtime.stop_container(handle, shorter))
        await stopping
        self._wake.set()  # the exits are facts for the next pass

    async def _stop_container(self, name: str, handle: ContainerLike, grace: float, pre_stop: bool) -> None:
        """Kubernetes' killContainer: the preStop hook within the grace period, then the signals.

        The hook's time counts against the grace period; whatever is left (at
        least the minimum grace) is the time between SIGTERM and SIGKILL.
        """
        rec = self.machine.container(name)
        hook = ((rec.spec.get("lifecycle") or {}).get("preStop") or None) if rec is not None and pre_stop else None
        remaining = grace
        if hook is not None and rec is not None:
            started = self._now()
            try:
                error = await asyncio.wait_for(self._run_hook(rec.spec, handle, hook), grace)
            except TimeoutError:
                error = f"PreStopHook did not finish within the {go_duration(grace)} grace period"
            if error is not None:
                await self._carry_out_all(self.machine.observe(HookFailed(name, "PreStop", error), self._now()))
            remaining = grace - (self._now() - started)
        await self.runtime.stop_container(handle, max(remaining, self.config.min_kill_grace))

    async def _delete_from_api(self) -> None:
        """Ask the API to remove the pod now that nothing of it runs (grace 0, same uid only)."""
        try:
            await self.client.delete(PODS, self.name, self.namespace, grace_period_seconds=0,
                                     preconditions={"uid": self.uid})
        except ApiError as exc:
            if exc.code not in (404, 409):
                log.warning("%r: deleting the pod failed: %s", self, exc)

    # ------------------------------------------------------------------ lifecycle hooks

    async def _run_hook(self, container: Obj, handle: ContainerLike, hook: Obj) -> str | None:
        """Run a ``postStart`` or ``preStop`` handler (:mod:`podlife.kubelet.hooks`)."""
        return await run_handler(hook, runtime=self.runtime, handle=handle, container=container, pod=self.pod)

    async def _unless_deleted(self, aw: Awaitable[T]) -> tuple[bool, T | None]:
        """Await ``aw`` unless the pod is deleted meanwhile (then cancel it): (finished, result)."""
        task = asyncio.ensure_future(aw)
        try:
            while not task.done():
                if self._gone or (self.pod.get("metadata") or {}).get("deletionTimestamp"):
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

    # ------------------------------------------------------------------ status

    async def _write_status(self, terminal: bool) -> bool:
        """Patch the status if it changed; on failure the machine asks again (after a short wait)."""
        if self._gone or self.machine.gone:
            return True
        wanted, patch = self.machine.status_patch(rfc3339(), terminal=terminal)
        if patch is None:
            self.machine.written(wanted)
            return True
        try:
            written = await self.client.patch(PODS, self.name, {"status": patch}, self.namespace, subresource="status")
        except ApiError as exc:
            self.machine.write_failed()
            if exc.code == 404:
                self._gone = True
                self._wake.set()
                return False
            log.warning("%r: status write failed: %s", self, exc)
            self._wake_in(self.config.status_retry)
            return False
        self.machine.written(wanted)
        if self._metrics is not None:  # in the watch cache already: what a watch of it would see now
            self._metrics.pods.written(written, time.time())
        return True

    # ------------------------------------------------------------------ logs

    def log_target(self, container: str, previous: bool) -> LogTarget:
        """The log file ``kubectl logs [--previous]`` should read, or why there is none."""
        rec = self.machine.container(container)
        if rec is None:
            raise RequestRefused.not_found(f'container "{container}" in pod "{self.name}" not found')
        view = self.machine.view(rec)

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
            handle = self._handles.get(container)
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

    def _wake_in(self, delay: float) -> None:
        """Wake the worker in ``delay`` seconds (an earlier pending wake-up wins)."""
        loop = asyncio.get_running_loop()
        delay = max(delay, 0.0)
        when = loop.time() + delay
        if self._timer is not None and loop.time() < self._timer_at <= when:
            return
        self._cancel_timer()
        self._timer = loop.call_later(delay, self._on_timer)
        self._timer_at = when

    def _on_timer(self) -> None:
        # forget the timer before waking: a pass that runs now (the loop may fire a timer a
        # hair before its time, so the machine may ask for that same instant again) must
        # set a new one, not count on this one, which has already fired
        self._timer = None
        self._wake.set()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


__all__ = ["CNI", "PodWorker", "WorkerConfig", "sandbox_network_error"]
