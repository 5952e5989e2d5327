"""The life of one pod on a node as a state machine: facts in, effects out, no I/O.

Design
------
Both node kinds run a pod through the same :class:`PodLifecycle`. What differs is
only how they *carry out* its effects and where their *facts* come from:

============  =====================================  =====================================
              real node (:mod:`podlife.kubelet`)      simulated node (:mod:`podlife.sim`)
============  =====================================  =====================================
facts         a process exited, CNI answered, a       a stage's timer fired (crash, oom,
              hook failed, env could not resolve      complete, unready, image pull error)
effects       start/kill processes, run hooks,        timers and stage lookups; the same
              CNI add/delete, status patch, events    status patch and events
============  =====================================  =====================================

The machine decides everything a user sees: phase, conditions, container states,
``restartCount``, ``lastState``, the CrashLoopBackOff back-off (Kubernetes' 10 s
doubling to 5 min, forgotten after 10 min), image-pull back-off, terminal phases, the
order of the first writes (ContainerCreating, then the pod IP, then Running), graceful
termination (unready, Killing, kill with the grace period, ContainerStatusUnknown for
containers that never ran, delete with grace 0) and the events of each step. It never
awaits, reads a clock, or touches the API: the driver passes ``now`` (event-loop
seconds) and the current time as text, and receives effects to carry out in order.

Protocol
--------
A driver feeds facts with :meth:`PodLifecycle.observe`, which returns the effects that
follow at once (events, a kill after a failed hook), and asks :meth:`PodLifecycle.plan`
what to do next: a :class:`WriteStatus` when the status changed, then what is due now
(set up the sandbox, start containers, kill them, delete the pod), or a
:class:`WakeAt` when the next step is due later. It repeats ``plan`` until only a
``WakeAt`` (or nothing) comes back. Carrying out a :class:`WriteStatus` means:
:meth:`PodLifecycle.status_patch`, send it, then :meth:`PodLifecycle.written`.

New behaviours are new facts and effects here, not new machines:

* **Init containers** run one at a time, in spec order, before any app container;
  a failed one is retried with the crash-loop back-off, or fails the pod under
  ``restartPolicy: Never``. **Sidecars** (init containers with ``restartPolicy:
  Always``) start in their place in that order -- the next one waits until the
  sidecar has *started* (postStart done, startup probe passed) -- are always
  restarted, and are stopped after the app containers: when the pod is deleted,
  and when the app containers are done for good (a Job's pod completes).
* **Probes** are verdicts (:class:`ProbeResult`): readiness sets ``ready``, a
  startup success sets ``started`` (and gates readiness), a liveness or startup
  failure kills the instance; every failed run is an ``Unhealthy`` event
  (:class:`ProbeFailed` for the runs that do not change the verdict).
* **The node failing a pod** -- ``activeDeadlineSeconds`` running out (read from the
  newest pod, so a patched deadline counts), or an eviction (:class:`PodEvicted`) --
  writes phase Failed with its reason and message at once, then stops every
  container; nothing restarts after that.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .lifecycle import CrashBackoff, format_pod, go_duration, image_id, should_restart, terminated_from_api
from .status import (
    CONTAINER_CREATING, CRASH_LOOP_BACK_OFF, KUBELET_CONDITIONS, POD_INITIALIZING, SCHEDULED, START_ERROR,
    STATUS_UNKNOWN, TERMINAL_PHASES, ContainerView, PodFacts, PodFailure, Running, Terminated, Waiting,
    build_pod_status, status_patch,
)

Obj = dict[str, Any]

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

ERR_IMAGE_PULL, IMAGE_PULL_BACK_OFF = "ErrImagePull", "ImagePullBackOff"
DEADLINE_EXCEEDED = "DeadlineExceeded"
#: Kubernetes' words for a pod that ran out its ``activeDeadlineSeconds``
DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"
EVICTED = "Evicted"
_KUBELET_CONDITIONS = frozenset(KUBELET_CONDITIONS)
_NEVER = float("inf")


@dataclass
class LifecycleConfig:
    """Timings of the machine (Kubernetes' defaults; tests and stage files shrink them)."""

    backoff_initial: float = 10.0
    backoff_max: float = 300.0
    sandbox_retry_initial: float = 0.1
    sandbox_retry_max: float = 2.0
    #: Containers always get at least this long between SIGTERM and SIGKILL
    #: (Kubernetes' minimumGracePeriodInSeconds).
    min_kill_grace: float = 2.0


# =========================================================================== facts


@dataclass(frozen=True, slots=True)
class PodUpdated:
    """A new version of the pod object (labels, deletion, conditions others own)."""

    pod: Obj


@dataclass(frozen=True, slots=True)
class PodGone:
    """The pod is gone from the API (force-deleted): stop everything, write nothing."""


@dataclass(frozen=True, slots=True)
class SandboxReady:
    """The pod's network is plugged in (the CNI step found its port)."""

    ips: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SandboxFailed:
    """The sandbox could not be set up yet.

    ``retry``: try again after a short doubling back-off (else only when the pod
    object changes, e.g. once the port annotation is written); ``warn``: a real
    failure worth a Warning event, not the usual wait for the port: ``reason``
    ``FailedCreatePodSandBox`` (the sandbox) or ``FailedMount`` (a volume, whose
    ``message`` is then the whole event text).
    """

    message: str
    retry: bool = True
    warn: bool = False
    reason: str = "FailedCreatePodSandBox"


@dataclass(frozen=True, slots=True)
class ContainerStarted:
    """The container runs. ``image_id``: the runtime's ``imageID`` ("": one made up from the
    name); ``pulled``: the ``Pulled`` event's text ("": already present on the machine)."""

    container: str
    container_id: str
    started_at: str  # RFC 3339
    image_id: str = ""
    pulled: str = ""


@dataclass(frozen=True, slots=True)
class ContainerStartFailed:
    """The runtime could not start the process (exec format error, missing binary)."""

    container: str
    exit_code: int
    message: str
    at: str  # RFC 3339


@dataclass(frozen=True, slots=True)
class ContainerConfigFailed:
    """The container cannot be created: its configuration (a missing ConfigMap key,
    ``CreateContainerConfigError``) or the runtime failed before the process existed
    (``CreateContainerError``). Shown as that waiting reason, and retried."""

    container: str
    message: str
    retry_in: float
    reason: str = "CreateContainerConfigError"


@dataclass(frozen=True, slots=True)
class ImagePullFailed:
    """Pulling the container's image failed: ErrImagePull for ``shown_for`` seconds, then
    ImagePullBackOff until the next attempt (``backoff`` doubling to ``backoff_max``)."""

    container: str
    message: str
    shown_for: float = 1.0
    backoff: float = 10.0
    backoff_max: float = 300.0
    #: the waiting reason: ErrImagePull (which turns into ImagePullBackOff), ErrImageNeverPull
    #: or InvalidImageName (which stay as they are until the next attempt)
    reason: str = ERR_IMAGE_PULL


@dataclass(frozen=True, slots=True)
class ContainerExited:
    """The newest instance of ``container`` ended.

    ``at`` is when, in the driver's clock (event-loop seconds); ``backoff`` and
    ``backoff_max`` replace the crash-loop back-off from this exit on (stage files).
    """

    container: str
    exit_code: int
    reason: str
    finished_at: str  # RFC 3339
    at: float
    message: str = ""
    backoff: float | None = None
    backoff_max: float | None = None


@dataclass(frozen=True, slots=True)
class HookFailed:
    """A lifecycle hook failed (``PostStart`` kills its container; ``PreStop`` is only reported)."""

    container: str
    hook: str  # PostStart | PreStop
    message: str


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """A probe's verdict on the running instance of ``container``: ``probe`` is Readiness
    (sets ``ready``), Liveness or Startup (a failure kills the instance; it restarts per
    the restart policy)."""

    container: str
    ok: bool
    probe: str = "Readiness"
    message: str = ""


@dataclass(frozen=True, slots=True)
class ProbeFailed:
    """One failed run of a probe that did not change its verdict (yet): an ``Unhealthy`` event."""

    container: str
    probe: str
    message: str


@dataclass(frozen=True, slots=True)
class PostStartDone:
    """The container's ``postStart`` hook succeeded (a sidecar counts as started from now)."""

    container: str


@dataclass(frozen=True, slots=True)
class PodEvicted:
    """The node evicts the pod (resource pressure): ``message`` names the resource.

    ``grace``: the seconds its containers get to stop (None: the pod's own grace
    period; a hard threshold's eviction gives 0, which the minimum grace floors).
    """

    message: str
    grace: float | None = None


Fact = (PodUpdated | PodGone | SandboxReady | SandboxFailed | ContainerStarted | ContainerStartFailed
        | ContainerConfigFailed | ImagePullFailed | ContainerExited | HookFailed | ProbeResult | ProbeFailed
        | PostStartDone | PodEvicted)


# =========================================================================== effects


@dataclass(frozen=True, slots=True)
class WriteStatus:
    """Patch the pod's status now (:meth:`PodLifecycle.status_patch`, then :meth:`~PodLifecycle.written`)."""

    terminal: bool = False


@dataclass(frozen=True, slots=True)
class SetUpSandbox:
    """Plug the pod into its network; answer with SandboxReady or SandboxFailed."""


@dataclass(frozen=True, slots=True)
class ReleaseSandbox:
    """Unplug the pod's network (it will run nothing again)."""


@dataclass(frozen=True, slots=True)
class StartContainer:
    """Create and start instance ``instance`` (0, 1, ... = restartCount) of ``container``.

    Answer with ContainerStarted, ContainerStartFailed, ContainerConfigFailed or ImagePullFailed.
    """

    container: str
    instance: int


@dataclass(frozen=True, slots=True)
class RunHook:
    """Run the container's ``postStart`` hook; the container counts as started when it ends."""

    container: str
    hook: str = "PostStart"


@dataclass(frozen=True, slots=True)
class KillContainers:
    """Stop these containers: ``preStop`` hooks (if ``pre_stop``) and SIGTERM, SIGKILL after ``grace``.

    Answer with a ContainerExited for each as it ends.
    """

    containers: tuple[str, ...]
    grace: float
    pre_stop: bool = True


@dataclass(frozen=True, slots=True)
class RecordEvent:
    """An event about the pod (``container`` set: its ``fieldPath`` names the container).

    ``routine`` marks the per-start events (Pulled, Created, Started) that simulated
    nodes leave out at scale.
    """

    type: str
    reason: str
    message: str
    container: str = ""
    routine: bool = False


@dataclass(frozen=True, slots=True)
class DeletePod:
    """Remove the pod from the API (grace 0, uid precondition): nothing of it runs any more."""


@dataclass(frozen=True, slots=True)
class WakeAt:
    """Nothing more is due before ``when`` (driver's clock): call :meth:`PodLifecycle.plan` then."""

    when: float


Effect = (WriteStatus | SetUpSandbox | ReleaseSandbox | StartContainer | RunHook | KillContainers | RecordEvent
          | DeletePod | WakeAt)


# =========================================================================== state


@dataclass(slots=True)
class ContainerRecord:
    """What the node knows about one spec container across its instances."""

    spec: Obj
    name: str
    image: str
    backoff: CrashBackoff
    restart_count: int = 0  # index of the newest instance
    current: Running | Terminated | None = None  # the newest instance
    previous: Terminated | None = None  # the one before it
    #: why the newest instance cannot be created (config error, image pull), while that holds
    waiting: Waiting | None = None
    retry_at: float = 0.0  # driver time before which a failed creation is not retried
    pull_backoff_at: float = _NEVER  # when ErrImagePull turns into ImagePullBackOff
    pull_attempts: int = 0
    finished_at: float = 0.0  # driver time the newest instance ended
    image_id: str = ""
    verdict: bool | None = None  # a readiness verdict on the newest instance, once there is one
    alive: bool = False  # the newest instance runs
    starting: bool = False  # StartContainer issued, not answered yet
    stopping: bool = False  # KillContainers issued for the newest instance
    init: bool = False  # one of spec.initContainers
    sidecar: bool = False  # an init container with restartPolicy Always
    startup_passed: bool = False  # the newest instance's startup probe succeeded
    hook_running: bool = False  # the newest instance's postStart hook has not finished

    @property
    def post_start(self) -> Obj | None:
        return (self.spec.get("lifecycle") or {}).get("postStart") or None

    @property
    def has_startup_probe(self) -> bool:
        return bool(self.spec.get("startupProbe"))

    @property
    def started(self) -> bool:
        """Kubernetes' ``started``: running, and past its startup probe if it has one."""
        return self.alive and (self.startup_passed or not self.has_startup_probe)

    @property
    def completed(self) -> bool:
        """A regular init container whose newest instance exited 0."""
        return isinstance(self.current, Terminated) and self.current.succeeded and not self.alive

    @property
    def field_path(self) -> str:
        """The ``fieldPath`` of events about it."""
        return f"spec.{'initContainers' if self.init else 'containers'}{{{self.name}}}"


class PodLifecycle:
    """One pod's life on one node (see the module docstring)."""

    def __init__(self, pod: Obj, *, host_ip: str, config: LifecycleConfig | None = None) -> None:
        self.pod = pod
        self.host_ip = host_ip
        self.config = config or LifecycleConfig()
        spec = pod.get("spec") or {}
        self.init_containers = [self._record(c, init=True) for c in spec.get("initContainers") or []]
        self.containers = [self._record(c) for c in spec.get("containers") or []]
        self.sidecars = [rec for rec in self.init_containers if rec.sidecar]
        #: every container the node runs: init containers first, in spec order
        self.all_containers = self.init_containers + self.containers
        self._by_name = {rec.name: rec for rec in self.all_containers}
        self._default_waiting = Waiting(POD_INITIALIZING) if self.init_containers else _CREATING
        #: every regular init container has succeeded and every sidecar started, once
        self.initialized = not self.init_containers
        self.failure: PodFailure | None = None  # the node is failing the pod (deadline, eviction)
        self._failure_grace: float | None = None
        self._active_since: float | None = None  # driver time the pod became active here
        self._kill_started = 0.0
        self.status: Obj = {}  # as last written (or read)
        #: ``status`` has only conditions the kubelet owns, PodScheduled among them: the
        #: next status can be built on it as it is (no copy; see _base_status).
        self._plain = False
        self.start_time = ""
        self.pod_ips: tuple[str, ...] = ()
        self.sandbox_ready = False
        self._sandbox_asked = False  # SetUpSandbox issued, not answered
        self._sandbox_retry_at = 0.0
        self._sandbox_delay = self.config.sandbox_retry_initial
        self.terminating = False
        self.gone = False
        self.deleted = False  # DeletePod issued: the machine has nothing left to do
        self._kill_issued = False
        self._dirty = True
        self._facts: PodFacts | None = None
        self._pending_plain = False  # _plain of the status status_patch built

    def __repr__(self) -> str:
        return f"<PodLifecycle {format_pod(self.pod)}>"

    def _record(self, container: Obj, *, init: bool = False) -> ContainerRecord:
        return ContainerRecord(spec=container, name=str(container.get("name", "")),
                               image=str(container.get("image", "")), init=init,
                               sidecar=init and container.get("restartPolicy") == "Always",
                               backoff=CrashBackoff(self.config.backoff_initial, self.config.backoff_max))

    def field_path(self, container: str) -> str:
        """The ``fieldPath`` of an event about ``container`` ("" for the pod)."""
        rec = self._by_name.get(container)
        return rec.field_path if rec is not None else ""

    def container(self, name: str) -> ContainerRecord | None:
        return self._by_name.get(name)

    @property
    def restart_policy(self) -> str:
        return str((self.pod.get("spec") or {}).get("restartPolicy", "Always"))

    # ------------------------------------------------------------------ recovery

    def recover(self, status: Obj, *, now: float, now_text: str, alive: Iterable[str] = (),
                sandbox_ready: bool = False) -> None:
        """Start from ``status`` as stored (a restarted node, or another node's simulator).

        Containers named in ``alive`` still run (a simulator's containers are not
        processes); any other that the status shows running is gone -- ended with
        ``ContainerStatusUnknown`` (exit 137), as Kubernetes reports it -- and restarts
        as the restart policy says.
        """
        self.status = dict(status)
        conditions = status.get("conditions") or ()
        self._plain = _kubelet_only(conditions) and _has_scheduled(conditions)
        self.start_time = str(status.get("startTime") or "")
        ips = [p.get("ip") for p in status.get("podIPs") or [] if p.get("ip")]
        self.pod_ips = tuple(ips) or ((status["podIP"],) if status.get("podIP") else ())
        self.sandbox_ready = sandbox_ready and bool(self.pod_ips) and status.get("phase") not in TERMINAL_PHASES
        still = set(alive)
        statuses = {s.get("name"): s for key in ("initContainerStatuses", "containerStatuses")
                    for s in status.get(key) or []}
        for rec in self.all_containers:
            old = statuses.get(rec.name)
            if old is not None:
                self._recover_container(rec, old, now=now, now_text=now_text, alive=rec.name in still)
        self.initialized = self.initialized or self._init_complete() or any(
            rec.current is not None or rec.restart_count for rec in self.containers)
        if self.start_time and (elapsed := seconds_between(self.start_time, now_text)) is not None:
            self._active_since = now - elapsed
        self._dirty = True

    @staticmethod
    def _recover_container(rec: ContainerRecord, old: Obj, *, now: float, now_text: str, alive: bool) -> None:
        rec.restart_count = int(old.get("restartCount") or 0)
        rec.image_id = str(old.get("imageID") or "")
        state, last = old.get("state") or {}, (old.get("lastState") or {}).get("terminated")
        rec.previous = terminated_from_api(last) if last else None
        cid = str(old.get("containerID") or "")
        if "terminated" in state:
            rec.current = terminated_from_api(state["terminated"])
        elif "running" in state:
            started = str(state["running"].get("startedAt") or "")
            if alive:
                rec.current, rec.alive = Running(started, cid), True
                rec.verdict = None if old.get("ready", True) else False
                rec.startup_passed = bool(old.get("started", True))
            else:
                rec.current = Terminated(VANISHED_EXIT_CODE, STATUS_UNKNOWN, started, now_text, cid, VANISHED_MESSAGE)
        elif rec.previous is not None:  # waiting to be restarted: the last one is the newest
            rec.current, rec.previous = rec.previous, None
        if isinstance(rec.current, Terminated):
            rec.finished_at = now

    # ------------------------------------------------------------------ facts

    def observe(self, fact: Fact, now: float) -> list[Effect]:
        """Take ``fact`` in; returns what follows from it at once (events, kills)."""
        handler = _HANDLERS.get(type(fact))
        if handler is None:
            raise TypeError(f"not a pod lifecycle fact: {fact!r}")
        return handler(self, fact, now)

    def _pod_updated(self, fact: PodUpdated, now: float) -> list[Effect]:
        self.pod = fact.pod
        self._dirty = True  # conditions others own, readiness gates, a terminal phase
        if not self.sandbox_ready:
            self._sandbox_retry_at = 0.0  # the port may be there now
        if (fact.pod.get("metadata") or {}).get("deletionTimestamp") and not self.terminating:
            self.terminating = True
            for rec in self.all_containers:
                rec.starting = False
        return []

    def _pod_gone(self, fact: PodGone, now: float) -> list[Effect]:
        self.gone = self.terminating = True
        running = tuple(rec.name for rec in self.all_containers if rec.alive)
        out: list[Effect] = []
        if running:
            out.append(KillContainers(running, self.config.min_kill_grace, pre_stop=False))
        if self.sandbox_ready:
            self.sandbox_ready = False
            out.append(ReleaseSandbox())
        self.deleted = True
        return out

    def _sandbox_ready(self, fact: SandboxReady, now: float) -> list[Effect]:
        self._sandbox_asked = False
        if self.terminating or self._finished():
            return []
        self.pod_ips = fact.ips
        self.sandbox_ready = True
        self._sandbox_delay = self.config.sandbox_retry_initial
        self._dirty = True
        return []

    def _sandbox_failed(self, fact: SandboxFailed, now: float) -> list[Effect]:
        self._sandbox_asked = False
        if fact.retry:
            self._sandbox_retry_at = now + self._sandbox_delay
            self._sandbox_delay = min(self._sandbox_delay * 2, self.config.sandbox_retry_max)
        else:
            self._sandbox_retry_at = _NEVER  # until the pod object changes
        if fact.warn and fact.reason == "FailedCreatePodSandBox":
            return [RecordEvent("Warning", fact.reason, f"Failed to create pod sandbox: {fact.message}")]
        if fact.warn:
            return [RecordEvent("Warning", fact.reason, fact.message)]
        return []

    def _container_started(self, fact: ContainerStarted, now: float) -> list[Effect]:
        if self.deleted:
            return []
        rec = self._begin(fact.container)
        rec.waiting = None
        rec.current = Running(fact.started_at, fact.container_id)
        rec.alive = True
        rec.verdict = None
        rec.startup_passed = rec.stopping = False
        rec.hook_running = rec.post_start is not None
        rec.image_id = fact.image_id or image_id(rec.image)
        self._dirty = True
        out: list[Effect] = [*self._created_events(rec, fact.pulled),
                             RecordEvent("Normal", "Started", f"Started container {rec.name}", rec.name, True)]
        if (self.terminating and self._kill_issued) or self._stopping_all():  # started while the pod stops
            rec.stopping = True
            out.append(KillContainers((rec.name,), self.kill_grace()))
        elif rec.hook_running:
            out.append(RunHook(rec.name))
        return out

    @staticmethod
    def _created_events(rec: ContainerRecord, pulled: str = "") -> list[Effect]:
        pulled = pulled or f'Container image "{rec.image}" already present on machine'
        return [RecordEvent("Normal", "Pulled", pulled, rec.name, True),
                RecordEvent("Normal", "Created", f"Created container {rec.name}", rec.name, True)]

    def _container_start_failed(self, fact: ContainerStartFailed, now: float) -> list[Effect]:
        rec = self._begin(fact.container)
        rec.waiting = None
        rec.current = Terminated(fact.exit_code, START_ERROR, fact.at, fact.at, message=fact.message)
        rec.finished_at = now
        rec.image_id = image_id(rec.image)
        self._dirty = True
        return [*self._created_events(rec), RecordEvent("Warning", "Failed", f"Error: {fact.message}", rec.name)]

    def _container_config_failed(self, fact: ContainerConfigFailed, now: float) -> list[Effect]:
        rec = self._begin(fact.container)
        rec.waiting = Waiting(fact.reason, fact.message)
        rec.retry_at = now + fact.retry_in
        self._dirty = True
        return [RecordEvent("Warning", "Failed", f"Error: {fact.message}", rec.name)]

    def _image_pull_failed(self, fact: ImagePullFailed, now: float) -> list[Effect]:
        rec = self._begin(fact.container)
        rec.pull_attempts += 1
        rec.waiting = Waiting(fact.reason, fact.message)
        rec.pull_backoff_at = now + fact.shown_for
        wait = min(fact.backoff * 2 ** (rec.pull_attempts - 1), max(fact.backoff_max, fact.backoff))
        rec.retry_at = rec.pull_backoff_at + wait
        self._dirty = True
        if fact.reason != ERR_IMAGE_PULL:  # the kubelet names these events after the reason
            return [RecordEvent("Warning", fact.reason, fact.message, rec.name)]
        return [RecordEvent("Warning", "Failed", f'Failed to pull image "{rec.image}": {fact.message}', rec.name)]

    def _container_exited(self, fact: ContainerExited, now: float) -> list[Effect]:
        rec = self._by_name[fact.container]
        cur = rec.current
        if not rec.alive or not isinstance(cur, Running):
            return []  # an instance we already know ended
        if fact.backoff is not None:
            rec.backoff.initial = fact.backoff
        if fact.backoff_max is not None:
            rec.backoff.maximum = fact.backoff_max
        rec.backoff.maximum = max(rec.backoff.maximum, rec.backoff.initial)
        rec.current = Terminated(fact.exit_code, fact.reason, cur.started_at, fact.finished_at, cur.container_id,
                                 fact.message)
        rec.finished_at = fact.at
        rec.alive = rec.hook_running = False
        self._dirty = True
        if self._restart_wait(rec, now):
            return [RecordEvent("Warning", "BackOff",
                                f"Back-off restarting failed container {rec.name} in pod {format_pod(self.pod)}",
                                rec.name)]
        return []

    def _hook_failed(self, fact: HookFailed, now: float) -> list[Effect]:
        rec = self._by_name[fact.container]
        out: list[Effect] = [RecordEvent("Warning", f"Failed{fact.hook}Hook", fact.message, rec.name)]
        if fact.hook == "PostStart":
            rec.hook_running = False
            if rec.alive and not self.terminating:
                out.append(KillContainers((rec.name,), self.kill_grace(), pre_stop=False))
        return out

    def _post_start_done(self, fact: PostStartDone, now: float) -> list[Effect]:
        rec = self._by_name[fact.container]
        if rec.hook_running:
            rec.hook_running = False
            self._dirty = True  # the next init container may start
        return []

    def _probe_failed(self, fact: ProbeFailed, now: float) -> list[Effect]:
        rec = self._by_name[fact.container]
        if not rec.alive or self.terminating:
            return []
        return [RecordEvent("Warning", "Unhealthy", f"{fact.probe} probe failed: {fact.message}", rec.name)]

    def _pod_evicted(self, fact: PodEvicted, now: float) -> list[Effect]:
        if self.failure is not None or self.terminating or self.api_terminal():
            return []
        return self._fail(PodFailure(EVICTED, fact.message, disruption=True), fact.grace, "Evicted")

    def _fail(self, failure: PodFailure, grace: float | None, event_reason: str) -> list[Effect]:
        """The node fails the pod: phase Failed at the next write, every container stopped."""
        self.failure = failure
        self._failure_grace = grace
        self._dirty = True
        return [RecordEvent("Warning", event_reason, failure.message)]

    def _probe_result(self, fact: ProbeResult, now: float) -> list[Effect]:
        """Readiness sets ``ready``; a failed liveness or startup probe kills the instance.

        The killed instance's exit then restarts it as the restart policy says. A
        readiness failure with no message is the prober's initial "no success yet":
        unready, but no event.
        """
        rec = self._by_name[fact.container]
        if fact.probe == "Startup" and fact.ok:
            if rec.alive and not rec.startup_passed:
                rec.startup_passed = True
                self._dirty = True
            return []
        if fact.probe != "Readiness":
            return self._unhealthy(rec, fact)
        if not rec.alive or rec.verdict is fact.ok:
            return []
        rec.verdict = fact.ok
        self._dirty = True
        if fact.ok or not fact.message:
            return []
        return [RecordEvent("Warning", "Unhealthy", f"{fact.probe} probe failed: {fact.message}", rec.name)]

    def _unhealthy(self, rec: ContainerRecord, fact: ProbeResult) -> list[Effect]:
        """Kubernetes' kill of a container that failed its liveness or startup probe."""
        if fact.ok or not rec.alive or self.terminating:
            return []
        message = f"{fact.probe} probe failed: {fact.message}" if fact.message else f"{fact.probe} probe failed"
        return [RecordEvent("Warning", "Unhealthy", message, rec.name),
                RecordEvent("Normal", "Killing",
                            f"Container {rec.name} failed {fact.probe.lower()} probe, will be restarted", rec.name),
                KillContainers((rec.name,), self.probe_kill_grace(rec, fact.probe))]

    def probe_kill_grace(self, rec: ContainerRecord, probe: str) -> float:
        """A probe's own ``terminationGracePeriodSeconds`` wins over the pod's."""
        field = "livenessProbe" if probe == "Liveness" else "startupProbe"
        grace = (rec.spec.get(field) or {}).get("terminationGracePeriodSeconds")
        if isinstance(grace, int) and not isinstance(grace, bool) and grace >= 0:
            return max(float(grace), self.config.min_kill_grace)
        return self.kill_grace()

    # ------------------------------------------------------------------ what next

    def plan(self, now: float) -> list[Effect]:
        """What to do now: a status write if anything changed, then the steps due, or when to ask again."""
        if self.deleted:
            return []
        if self.terminating:
            return self._plan_termination(now)
        out: list[Effect] = []
        if self._active_since is None:
            self._active_since = now
        self._timed_transitions(now, out)
        deadline = self._check_deadline(now, out)
        if self._init_complete() and not self.initialized:
            self.initialized = True
            self._dirty = True
        stops = self._stops_due(now)
        if self._finished():
            if self.sandbox_ready:
                self.sandbox_ready = False
                self._dirty = True
                out.append(ReleaseSandbox())
            if self._dirty:
                out.append(WriteStatus())
            return out
        if self._dirty:
            out.append(WriteStatus())
        out += stops
        wake = deadline
        if not self.sandbox_ready:
            if self._sandbox_asked:
                return _with_wake(out, wake)
            if now >= self._sandbox_retry_at:
                self._sandbox_asked = True
                out.append(SetUpSandbox())
            else:
                wake = min(wake, self._sandbox_retry_at)
            return _with_wake(out, wake)
        for rec in self._runnable():
            if rec.alive or rec.starting:
                continue
            wake = min(wake, rec.pull_backoff_at)  # ErrImagePull turns into ImagePullBackOff
            due = self._due_at(rec, now)
            if due is None:
                continue
            if due <= now:
                out.append(self._start(rec))
            else:
                wake = min(wake, due)
        return _with_wake(out, wake)

    def _check_deadline(self, now: float, out: list[Effect]) -> float:
        """Fail the pod once it has been active ``activeDeadlineSeconds``; else when that will be."""
        limit = (self.pod.get("spec") or {}).get("activeDeadlineSeconds")
        if (not isinstance(limit, int) or isinstance(limit, bool) or self._active_since is None
                or self.failure is not None or self.api_terminal()):
            return _NEVER
        due = self._active_since + limit
        if now < due:
            return due
        out += self._fail(PodFailure(DEADLINE_EXCEEDED, DEADLINE_MESSAGE), None, DEADLINE_EXCEEDED)
        return _NEVER

    def _runnable(self) -> list[ContainerRecord]:
        """The containers that may be (re)started now, in the order of Kubernetes' init sequence.

        Before the pod is initialized: the init containers up to the first that has not
        done its part (a regular one that has not exited 0, a sidecar not started yet).
        After: the sidecars and the app containers.
        """
        if self.initialized:
            return self.sidecars + self.containers
        out: list[ContainerRecord] = []
        for rec in self.init_containers:
            if rec.sidecar:
                out.append(rec)
                if not (rec.started and not rec.hook_running):
                    return out
            elif not rec.completed:
                out.append(rec)
                return out
        return out

    def _init_complete(self) -> bool:
        for rec in self.init_containers:
            if not ((rec.started and not rec.hook_running) if rec.sidecar else rec.completed):
                return False
        return True

    def _stopping_all(self) -> bool:
        """Whether every container is to stop: the pod failed (by the node or in the API), or
        an init container failed under ``restartPolicy: Never``."""
        return self.failure is not None or self.api_terminal() or self._init_failed()

    def _stops_due(self, now: float) -> list[Effect]:
        """Kills the pod's state asks for: all of them when it fails; the sidecars (last
        first) once the app containers are done for good."""
        if self._stopping_all():
            wanted = [rec for rec in self.all_containers if rec.alive and not rec.stopping]
            grace = self._failure_grace if self._failure_grace is not None else self.kill_grace()
            grace = max(grace, self.config.min_kill_grace)
        elif self.sidecars and self._app_done():
            wanted = [rec for rec in reversed(self.sidecars) if rec.alive and not rec.stopping]
            grace = self.kill_grace()
        else:
            return []
        if not wanted:
            return []
        for rec in wanted:
            rec.stopping = True
        return [*(RecordEvent("Normal", "Killing", f"Stopping container {rec.name}", rec.name) for rec in wanted),
                KillContainers(tuple(rec.name for rec in wanted), grace)]

    def _timed_transitions(self, now: float, out: list[Effect]) -> None:
        """Changes that only time makes: ErrImagePull turning into ImagePullBackOff."""
        for rec in self.all_containers:
            waiting = rec.waiting
            if waiting is not None and waiting.reason == ERR_IMAGE_PULL and now >= rec.pull_backoff_at:
                rec.waiting = Waiting(IMAGE_PULL_BACK_OFF, f'Back-off pulling image "{rec.image}"')
                rec.pull_backoff_at = _NEVER
                self._dirty = True
                out.append(RecordEvent("Normal", "BackOff", f'Back-off pulling image "{rec.image}"', rec.name))

    @staticmethod
    def _start(rec: ContainerRecord) -> StartContainer:
        """Issue a start (of the next instance, if the newest one ended).

        The restart itself is booked when the driver answers (:meth:`_begin`): a status
        written between this plan and the answer still shows how the last instance ended.
        """
        rec.starting = True
        return StartContainer(rec.name, rec.restart_count + 1 if isinstance(rec.current, Terminated) else rec.restart_count)

    def _begin(self, name: str) -> ContainerRecord:
        """The driver answers a start: a restart makes the ended instance the previous one."""
        rec = self._by_name[name]
        if rec.starting and isinstance(rec.current, Terminated):
            rec.backoff.restarted(rec.finished_at)
            rec.previous, rec.current = rec.current, None
            rec.restart_count += 1
        rec.starting = False
        self._dirty = True
        return rec

    def _plan_termination(self, now: float) -> list[Effect]:
        """Graceful deletion: unready (one write), then Killing and kill -- the app and regular
        init containers first, the sidecars (last first) once those have stopped, within
        what is left of the grace period -- then final states and delete."""
        out: list[Effect] = []
        if not self._kill_issued:
            self._kill_issued = True
            self._kill_started = now
            self._dirty = True  # every container unready
            out.append(WriteStatus())
        elif self._dirty:
            out.append(WriteStatus())
        first = [rec for rec in self.all_containers if not rec.sidecar]
        if not any(rec.alive for rec in first):
            first = list(reversed(self.sidecars))
        wanted = [rec for rec in first if rec.alive and not rec.stopping]
        if wanted:
            for rec in wanted:
                rec.stopping = True
            grace = max(self.kill_grace() - (now - self._kill_started), self.config.min_kill_grace)
            out += [RecordEvent("Normal", "Killing", f"Stopping container {rec.name}", rec.name) for rec in wanted]
            out.append(KillContainers(tuple(rec.name for rec in wanted), grace))
            return out
        if any(rec.alive for rec in self.all_containers):
            return out  # the ContainerExited facts come as the containers stop
        for rec in self.all_containers:
            if not isinstance(rec.current, Terminated):
                rec.current = Terminated(VANISHED_EXIT_CODE, STATUS_UNKNOWN, "", "", message=NEVER_RAN_MESSAGE)
            rec.waiting = None
        self._dirty = True
        out = [e for e in out if not isinstance(e, WriteStatus)]
        out.append(WriteStatus(terminal=TERMINAL_PHASE_ON_DELETION))
        out.append(DeletePod())
        if self.sandbox_ready:  # after the last write, which still shows the sandbox as it was
            out.append(ReleaseSandbox())
        self.deleted = True
        return out

    def kill_grace(self) -> float:
        """The grace period the pod asks for now (its deletion's, else its spec's), floored."""
        if self.gone:  # force-deleted: nothing to wait for but the minimum
            return self.config.min_kill_grace
        meta, spec = self.pod.get("metadata") or {}, self.pod.get("spec") or {}
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        return max(float(grace), self.config.min_kill_grace)

    # ------------------------------------------------------------------ rules

    def api_terminal(self) -> bool:
        """The pod has a terminal phase (ours, or one somebody else wrote, e.g. an eviction)."""
        return (self.status.get("phase") in TERMINAL_PHASES
                or (self.pod.get("status") or {}).get("phase") in TERMINAL_PHASES)

    def policy(self, rec: ContainerRecord) -> str:
        """The restart policy ``rec`` lives by: a sidecar's is Always; a regular init container
        is retried after a failure unless the pod's is Never; app containers follow the pod's."""
        if rec.sidecar:
            return "Always"
        if rec.init:
            return "Never" if self.restart_policy == "Never" else "OnFailure"
        return self.restart_policy

    def _restarts(self, rec: ContainerRecord, cur: Terminated) -> bool:
        """Whether the ended instance ``cur`` of ``rec`` is to run again."""
        if self.terminating or self._stopping_all() or not should_restart(self.policy(rec), cur.exit_code):
            return False
        return not (rec.sidecar and self._app_done())

    def _restart_wait(self, rec: ContainerRecord, now: float) -> float | None:
        """Seconds until the ended newest instance is restarted; None if it never will be."""
        cur = rec.current
        if not isinstance(cur, Terminated) or not self._restarts(rec, cur):
            return None
        return rec.backoff.remaining(rec.finished_at, now)

    def _in_crash_loop(self, rec: ContainerRecord) -> bool:
        """Waiting out a back-off -- shown until the restart happens, even once the wait is over."""
        cur = rec.current
        if not isinstance(cur, Terminated) or not self._restarts(rec, cur):
            return False
        return rec.backoff.applies(rec.finished_at)

    def _due_at(self, rec: ContainerRecord, now: float) -> float | None:
        """When ``rec`` should be (re)started; None: not now, nor at a known time."""
        if self.api_terminal():
            return None
        if rec.waiting is not None:
            return rec.retry_at
        if rec.current is None:
            return now
        wait = self._restart_wait(rec, now)
        return None if wait is None else now + wait

    def _init_failed(self) -> bool:
        """A regular init container failed and the pod's restart policy is Never."""
        if self.restart_policy != "Never" or self.initialized:
            return False
        for rec in self.init_containers:
            cur = rec.current
            if not rec.sidecar and not rec.alive and isinstance(cur, Terminated) and not cur.succeeded:
                return True
        return False

    def _app_done(self) -> bool:
        """Every app container has ended and none will run again."""
        for rec in self.containers:
            if rec.alive or rec.starting or not isinstance(rec.current, Terminated) or rec.waiting is not None:
                return False
            if should_restart(self.restart_policy, rec.current.exit_code):
                return False
        return bool(self.containers)

    def _finished(self) -> bool:
        """Nothing runs and nothing will: the pod has reached (or keeps) a terminal phase."""
        if self._stopping_all():
            return not any(rec.alive or rec.starting for rec in self.all_containers)
        return self._app_done() and not any(rec.alive or rec.starting for rec in self.sidecars)

    @property
    def finished(self) -> bool:
        return self._finished()

    # ------------------------------------------------------------------ status

    def view(self, rec: ContainerRecord) -> ContainerView:
        """How the API shows ``rec`` now (see Kubernetes' convertToAPIContainerStatuses)."""
        cur, last = rec.current, rec.previous
        state: Waiting | Running | Terminated
        if rec.waiting is not None:
            state = rec.waiting
            last = cur if isinstance(cur, Terminated) else last
        elif cur is None:
            state = self._default_waiting
        elif isinstance(cur, Terminated) and self._in_crash_loop(rec):
            state = Waiting(CRASH_LOOP_BACK_OFF, f"back-off {go_duration(rec.backoff.delay)} restarting failed "
                                                 f"container={rec.name} pod={format_pod(self.pod)}")
            last = cur
        else:
            state = cur
        if rec.init and not rec.sidecar:
            ready = isinstance(state, Terminated) and state.succeeded
        else:
            ready = (isinstance(state, Running) and not self.terminating and rec.verdict is not False
                     and (rec.startup_passed or not rec.has_startup_probe) and not self._stopping_all())
        return ContainerView(name=rec.name, image=rec.image, state=state, last_state=last,
                             restart_count=rec.restart_count, ready=ready,
                             container_id=cur.container_id if cur is not None else "",
                             image_id=rec.image_id if cur is not None else "",
                             started_probe=rec.startup_passed if rec.has_startup_probe else None,
                             init=rec.init, sidecar=rec.sidecar)

    def views(self) -> list[ContainerView]:
        return [self.view(rec) for rec in self.containers]

    def init_views(self) -> list[ContainerView]:
        return [self.view(rec) for rec in self.init_containers]

    def _pod_facts(self) -> PodFacts:
        facts = self._facts
        if (facts is None or facts.start_time != self.start_time or facts.pod_ips != self.pod_ips
                or facts.sandbox_ready != self.sandbox_ready):
            facts = self._facts = PodFacts(host_ip=self.host_ip, start_time=self.start_time, pod_ips=self.pod_ips,
                                           sandbox_ready=self.sandbox_ready)
        return facts

    def _base_status(self) -> tuple[Obj, bool]:
        """Our last status with the conditions others own taken from the newest pod; and
        whether it has only kubelet conditions (so will the status built on it).

        Usually nobody else has a condition on the pod: then our last status is used as
        it is, without a copy (build_pod_status copies what it changes).
        """
        api = self.pod.get("status") or {}
        api_conditions = api.get("conditions") or ()
        terminal = api.get("phase") in TERMINAL_PHASES and self.status.get("phase") != api.get("phase")
        if self._plain and not terminal and _kubelet_only(api_conditions):
            return self.status, True
        base = dict(self.status)
        foreign = [c for c in api_conditions if c.get("type") not in _KUBELET_CONDITIONS]
        ours = [c for c in base.get("conditions") or () if c.get("type") in _KUBELET_CONDITIONS]
        if not _has_scheduled(ours):
            ours += [c for c in api_conditions if c.get("type") == SCHEDULED]
        base["conditions"] = foreign + ours
        if terminal:
            base["phase"] = api["phase"]
        return base, not foreign

    def desired_status(self, now_text: str, *, terminal: bool = False) -> tuple[Obj, bool]:
        """The status to show now, and whether it holds only kubelet conditions."""
        if not self.start_time:  # the first status the node writes stamps it
            self.start_time = str(self.status.get("startTime") or now_text)
        base, plain = self._base_status()
        failure = self.failure
        return build_pod_status(self.pod, self.views(), self._pod_facts(), previous=base, now=now_text,
                                terminal=terminal, init_views=self.init_views(), failure=failure), (
            plain and failure is None)

    def status_patch(self, now_text: str, *, terminal: bool = False) -> tuple[Obj, Obj | None]:
        """(the wanted status, the merge patch from the last written one; None when equal)."""
        wanted, self._pending_plain = self.desired_status(now_text, terminal=terminal)
        return wanted, status_patch(self.status, wanted)

    def written(self, status: Obj) -> None:
        """``status`` (from :meth:`status_patch`) is in the API now."""
        self.status = status
        self._plain = self._pending_plain
        self._dirty = False

    def write_failed(self) -> None:
        """The write did not happen: the next plan asks again."""
        self._dirty = True


_CREATING = Waiting(CONTAINER_CREATING)

_HANDLERS: dict[type, Any] = {
    PodUpdated: PodLifecycle._pod_updated,
    PodGone: PodLifecycle._pod_gone,
    SandboxReady: PodLifecycle._sandbox_ready,
    SandboxFailed: PodLifecycle._sandbox_failed,
    ContainerStarted: PodLifecycle._container_started,
    ContainerStartFailed: PodLifecycle._container_start_failed,
    ContainerConfigFailed: PodLifecycle._container_config_failed,
    ImagePullFailed: PodLifecycle._image_pull_failed,
    ContainerExited: PodLifecycle._container_exited,
    HookFailed: PodLifecycle._hook_failed,
    ProbeResult: PodLifecycle._probe_result,
    ProbeFailed: PodLifecycle._probe_failed,
    PostStartDone: PodLifecycle._post_start_done,
    PodEvicted: PodLifecycle._pod_evicted,
}


def _with_wake(out: list[Effect], wake: float) -> list[Effect]:
    if wake < _NEVER:
        out.append(WakeAt(wake))
    return out


def seconds_between(earlier: str, later: str) -> float | None:
    """Seconds from one RFC 3339 time to another (None if either does not parse)."""
    try:
        first = datetime.fromisoformat(earlier.replace("Z", "+00:00"))
        second = datetime.fromisoformat(later.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (second - first).total_seconds()


def _kubelet_only(conditions: Iterable[Obj]) -> bool:
    """Whether every condition is one the kubelet owns (none of somebody else's to carry over)."""
    for c in conditions:
        if c.get("type") not in _KUBELET_CONDITIONS:
            return False
    return True


def _has_scheduled(conditions: Iterable[Obj]) -> bool:
    for c in conditions:
        if c.get("type") == SCHEDULED:
            return True
    return False


def only_waits(effects: Sequence[Effect]) -> bool:
    """Whether ``effects`` hold nothing to do now (a driver's loop ends on it)."""
    for e in effects:
        if not isinstance(e, WakeAt):
            return False
    return True


__all__ = [
    "ContainerConfigFailed", "ContainerExited", "ContainerRecord", "ContainerStartFailed", "ContainerStarted",
    "DEADLINE_EXCEEDED", "DEADLINE_MESSAGE", "DeletePod", "ERR_IMAGE_PULL", "EVICTED", "Effect", "Fact",
    "HookFailed", "IMAGE_PULL_BACK_OFF", "ImagePullFailed", "KillContainers", "LifecycleConfig",
    "NEVER_RAN_MESSAGE", "PodEvicted", "PodGone", "PodLifecycle", "PodUpdated", "PostStartDone", "ProbeFailed",
    "ProbeResult", "RecordEvent", "ReleaseSandbox", "RunHook", "SandboxFailed", "SandboxReady", "SetUpSandbox",
    "StartContainer", "TERMINAL_PHASE_ON_DELETION", "VANISHED_EXIT_CODE", "VANISHED_MESSAGE", "WakeAt",
    "WriteStatus", "only_waits",
]
