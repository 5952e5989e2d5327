"""Building a pod's ``status`` from what the kubelet knows: pure functions, no I/O.

The pod worker (:mod:`podlife.kubelet.pod_worker`) owns the facts -- which
container instance runs, how the last one ended, whether the network is up --
and describes each container as a :class:`ContainerView`. Everything the API
shows is derived here, following the kubelet of Kubernetes 1.32
(``pkg/kubelet/status/generate.go`` and ``getPhase`` in
``pkg/kubelet/kubelet_pods.go``):

* ``containerStatuses`` and ``initContainerStatuses``: one entry per spec
  container, in spec order, with ``state``/``lastState``/``ready``/
  ``restartCount``/``image``/``imageID``/``containerID``/``started``;
* ``phase`` from the container states and the restart policy (``getPhase``:
  init containers keep a pod Pending, a failed one fails it under ``Never``,
  sidecars -- init containers with ``restartPolicy: Always`` -- count as running
  but never as stopped); a phase never leaves Succeeded or Failed;
* the kubelet-owned conditions, always in the same order --
  ``PodReadyToStartContainers``, ``Initialized``, ``Ready``,
  ``ContainersReady``, ``PodScheduled`` -- after any condition somebody else
  owns (``DisruptionTarget``, readiness-gate conditions), which are kept as they
  are. ``lastTransitionTime`` moves only when a condition's status changes, so
  rebuilding an unchanged status gives an identical document and costs no write.

Readiness and startedness are inputs (``ContainerView.ready``/``started``), not
something decided here: the lifecycle machine (:mod:`podlife.node.machine`)
folds the probes' verdicts into them, and ``Ready``/``ContainersReady``/
``Initialized`` follow.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..machinery.patch import create_merge_patch

Obj = dict[str, Any]

PENDING, RUNNING, SUCCEEDED, FAILED = "Pending", "Running", "Succeeded", "Failed"
TERMINAL_PHASES = frozenset({SUCCEEDED, FAILED})

# Container state reasons (as the kubelet and containerd report them).
CONTAINER_CREATING = "ContainerCreating"
#: the waiting reason of every container not created yet, in a pod with init containers
POD_INITIALIZING = "PodInitializing"
CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"
CREATE_CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"
COMPLETED = "Completed"
ERROR = "Error"
START_ERROR = "StartError"
STATUS_UNKNOWN = "ContainerStatusUnknown"

# Condition types and reasons.
READY_TO_START = "PodReadyToStartContainers"
INITIALIZED = "Initialized"
READY = "Ready"
CONTAINERS_READY = "ContainersReady"
SCHEDULED = "PodScheduled"
#: Conditions the kubelet writes (all others on a pod are preserved untouched).
KUBELET_CONDITIONS = (READY_TO_START, INITIALIZED, READY, CONTAINERS_READY, SCHEDULED)
CONTAINERS_NOT_READY = "ContainersNotReady"
CONTAINERS_NOT_INITIALIZED = "ContainersNotInitialized"
#: the condition a kubelet adds to a pod it evicts (with reason TERMINATION_BY_KUBELET)
DISRUPTION_TARGET = "DisruptionTarget"
TERMINATION_BY_KUBELET = "TerminationByKubelet"
READINESS_GATES_NOT_READY = "ReadinessGatesNotReady"
POD_COMPLETED = "PodCompleted"
POD_FAILED = "PodFailed"


def rfc3339(moment: datetime | None = None) -> str:
    """Kubernetes' ``metav1.Time`` text: UTC, whole seconds."""
    return (moment or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- container states


@dataclass(frozen=True)
class Waiting:
    reason: str = CONTAINER_CREATING
    message: str = ""

    def to_api(self) -> Obj:
        out: Obj = {"reason": self.reason}
        if self.message:
            out["message"] = self.message
        return {"waiting": out}


@dataclass(frozen=True)
class Running:
    started_at: str
    container_id: str

    def to_api(self) -> Obj:
        return {"running": {"startedAt": self.started_at}}


@dataclass(frozen=True)
class Terminated:
    exit_code: int
    reason: str
    started_at: str
    finished_at: str
    container_id: str = ""
    message: str = ""

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0

    def to_api(self) -> Obj:
        out: Obj = {"exitCode": self.exit_code, "reason": self.reason}
        if self.message:
            out["message"] = self.message
        if self.started_at:
            out["startedAt"] = self.started_at
        if self.finished_at:
            out["finishedAt"] = self.finished_at
        if self.container_id:
            out["containerID"] = self.container_id
        return {"terminated": out}


State = Waiting | Running | Terminated


@dataclass(frozen=True)
class ContainerView:
    """One container as the API should show it.

    ``container_id``/``image_id`` belong to the newest instance (kept while it
    waits to be restarted, as Kubernetes does); ``ready`` is decided by the
    caller (running, readiness probe passing, pod not terminating).
    """

    name: str
    image: str
    state: State = field(default_factory=Waiting)
    last_state: Terminated | None = None
    restart_count: int = 0
    ready: bool = False
    container_id: str = ""
    image_id: str = ""
    #: running and past its startup probe (None: running is enough -- no startup probe)
    started_probe: bool | None = None
    #: an init container; ``sidecar``: one with ``restartPolicy: Always``
    init: bool = False
    sidecar: bool = False

    @property
    def started(self) -> bool:
        running = isinstance(self.state, Running)
        return running if self.started_probe is None else running and self.started_probe

    @property
    def completed(self) -> bool:
        """A regular init container that has done its work (exit 0)."""
        return isinstance(self.state, Terminated) and self.state.succeeded

    def to_api(self) -> Obj:
        out: Obj = {
            "name": self.name,
            "state": self.state.to_api(),
            "lastState": self.last_state.to_api() if self.last_state else {},
            "ready": self.ready,
            "restartCount": self.restart_count,
            "image": self.image,
            "imageID": self.image_id,
        }
        if self.container_id:
            out["containerID"] = self.container_id
        out["started"] = self.started
        return out


# --------------------------------------------------------------------------- phase


def pod_phase(restart_policy: str, views: Sequence[ContainerView], *, terminal: bool = False,
              init_views: Sequence[ContainerView] = ()) -> str:
    """The phase Kubernetes' ``getPhase`` gives for these containers.

    ``terminal`` says the pod will run nothing again (it is being removed), so
    stopped containers make it Succeeded or Failed whatever the restart policy.
    A container waiting to be restarted counts as stopped, not as pending.
    Regular init containers still to finish keep the pod Pending, and one that
    failed fails it under ``Never``; sidecars still to start keep it Pending
    until an app container has started, and count as running while they run.
    """
    pending_init = failed_init = pending_sidecars = 0
    running = waiting = stopped = succeeded = 0
    for view in init_views:
        state = view.state
        if view.sidecar:
            if isinstance(state, Running):
                running += 1
                pending_sidecars += not view.started
            elif isinstance(state, Waiting) and view.last_state is None:
                pending_sidecars += 1
                waiting += 1
        elif isinstance(state, Terminated):
            failed_init += not state.succeeded
        elif isinstance(state, Waiting) and view.last_state is not None:
            failed_init += not view.last_state.succeeded
        else:
            pending_init += 1
    for view in views:
        state = view.state
        if isinstance(state, Running):
            running += 1
        elif isinstance(state, Terminated):
            stopped += 1
            succeeded += state.succeeded
        elif view.last_state is not None:
            stopped += 1
        else:
            waiting += 1
    if failed_init and restart_policy == "Never":
        return FAILED
    if pending_init or (pending_sidecars and not any_app_started(views)) or waiting or not views:
        return PENDING
    if running:
        return RUNNING
    if terminal:
        return SUCCEEDED if stopped == succeeded else FAILED
    if restart_policy == "Always":
        return RUNNING
    if stopped == succeeded:
        return SUCCEEDED
    if restart_policy == "Never":
        return FAILED
    return RUNNING  # OnFailure: the failed ones are being restarted


def any_app_started(views: Sequence[ContainerView]) -> bool:
    """Whether an app container has ever run (then the pod was initialized once)."""
    for view in views:
        if not isinstance(view.state, Waiting) or view.last_state is not None:
            return True
    return False


def next_phase(previous: str | None, computed: str) -> str:
    """Pods never leave a terminal phase (the kubelet forces the API's back)."""
    return previous if previous in TERMINAL_PHASES else computed


# --------------------------------------------------------------------------- conditions


def go_list(names: Iterable[str]) -> str:
    """Go's ``%s`` of a string slice: ``[a b]``."""
    return "[" + " ".join(names) + "]"


def _condition(type_: str, ok: bool, reason: str = "", message: str = "") -> Obj:
    cond: Obj = {"type": type_, "status": "True" if ok else "False"}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def containers_ready_condition(views: Sequence[ContainerView], phase: str,
                               init_views: Sequence[ContainerView] = ()) -> Obj:
    """``ContainersReady``: every sidecar and app container ready (sidecars named first)."""
    if phase == SUCCEEDED:
        return _condition(CONTAINERS_READY, False, POD_COMPLETED)
    if phase == FAILED:
        return _condition(CONTAINERS_READY, False, POD_FAILED)
    unready = [v.name for v in init_views if v.sidecar and not v.ready] + [v.name for v in views if not v.ready]
    if unready:
        return _condition(CONTAINERS_READY, False, CONTAINERS_NOT_READY,
                          f"containers with unready status: {go_list(unready)}")
    return _condition(CONTAINERS_READY, True)


def ready_condition(containers_ready: Obj, readiness_gates: Sequence[Obj], conditions: Sequence[Obj]) -> Obj:
    """``Ready``: ContainersReady, and every readiness gate's condition True."""
    if containers_ready["status"] != "True":
        return {**containers_ready, "type": READY}
    by_type = {c.get("type"): c for c in conditions}
    problems = []
    for gate in readiness_gates:
        gate_type = str(gate.get("conditionType", ""))
        cond = by_type.get(gate_type)
        if cond is None:
            problems.append(f'corresponding condition of pod readiness gate "{gate_type}" does not exist.')
        elif cond.get("status") != "True":
            problems.append(f'the status of pod readiness gate "{gate_type}" is not "True", but {cond.get("status")}')
    if problems:
        return _condition(READY, False, READINESS_GATES_NOT_READY, ", ".join(problems))
    return _condition(READY, True)


def initialized_condition(phase: str, init_views: Sequence[ContainerView] = (),
                          views: Sequence[ContainerView] = ()) -> Obj:
    """``Initialized``: every regular init container exited 0 and every sidecar started.

    A pod that has run an app container stays initialized (a sidecar restarting
    later does not undo that), and a Succeeded pod is PodCompleted.
    """
    if phase == SUCCEEDED:
        return _condition(INITIALIZED, True, POD_COMPLETED)
    incomplete = [v.name for v in init_views if not (v.started if v.sidecar else v.completed)]
    if not incomplete or any_app_started(views):
        return _condition(INITIALIZED, True)
    return _condition(INITIALIZED, False, CONTAINERS_NOT_INITIALIZED,
                      f"containers with incomplete status: {go_list(incomplete)}")


def _stamp(cond: Obj, previous: dict[str, Obj], now: str) -> Obj:
    """Add the times, keeping ``lastTransitionTime`` unless the status changed."""
    before = previous.get(cond["type"])
    kept = before.get("lastTransitionTime") if before is not None and before.get("status") == cond["status"] else None
    stamped: Obj = {"type": cond["type"], "status": cond["status"], "lastProbeTime": None,
                    "lastTransitionTime": kept or now}
    for key in ("reason", "message"):
        if key in cond:
            stamped[key] = cond[key]
    return stamped


def pod_conditions(views: Sequence[ContainerView], phase: str, *, sandbox_ready: bool, previous: Sequence[Obj],
                   readiness_gates: Sequence[Obj] = (), now: str,
                   init_views: Sequence[ContainerView] = ()) -> list[Obj]:
    """All conditions: foreign ones first (untouched), then the kubelet's in a fixed order."""
    foreign = [c for c in previous if c.get("type") not in KUBELET_CONDITIONS]
    before = {str(c.get("type")): c for c in previous if c.get("type") in KUBELET_CONDITIONS}
    containers_ready = containers_ready_condition(views, phase, init_views)
    generated = [
        _condition(READY_TO_START, sandbox_ready),
        initialized_condition(phase, init_views, views),
        ready_condition(containers_ready, readiness_gates, foreign),
        containers_ready,
    ]
    out = foreign + [_stamp(c, before, now) for c in generated]
    # PodScheduled belongs to the binding; the kubelet only makes sure it is there.
    out.append(before.get(SCHEDULED) or _stamp(_condition(SCHEDULED, True), before, now))
    return out


# --------------------------------------------------------------------------- the whole status


@dataclass(frozen=True)
class PodFailure:
    """Why the node fails a pod: ``status.reason``/``message`` (DeadlineExceeded, Evicted);
    ``disruption``: the pod also gets the DisruptionTarget condition (an eviction)."""

    reason: str
    message: str
    disruption: bool = False


@dataclass(frozen=True)
class PodFacts:
    """Pod-level facts the status needs besides the containers."""

    host_ip: str
    start_time: str
    pod_ips: tuple[str, ...] = ()
    sandbox_ready: bool = False


def build_pod_status(pod: Obj, views: Sequence[ContainerView], facts: PodFacts, *, previous: Obj,
                     now: str, terminal: bool = False, init_views: Sequence[ContainerView] = (),
                     failure: PodFailure | None = None) -> Obj:
    """The pod's next ``status``: ``previous`` with every kubelet-owned field recomputed.

    ``previous`` is the status as last written (or read); fields the kubelet
    does not own (``qosClass``, ``nominatedNodeName``, ...) pass through.
    ``failure``: the node is failing the pod (a deadline, an eviction): phase
    Failed with its reason and message at once, while its containers still stop.
    """
    spec = pod.get("spec") or {}
    phase = next_phase(previous.get("phase"), pod_phase(spec.get("restartPolicy", "Always"), views,
                                                        terminal=terminal, init_views=init_views))
    status: Obj = dict(previous)
    conditions = previous.get("conditions") or []
    if failure is not None:
        phase = FAILED
        status["reason"], status["message"] = failure.reason, failure.message
        if failure.disruption and not any(c.get("type") == DISRUPTION_TARGET for c in conditions):
            conditions = [_stamp(_condition(DISRUPTION_TARGET, True, TERMINATION_BY_KUBELET, failure.message), {}, now),
                          *conditions]
    status["phase"] = phase
    status["conditions"] = pod_conditions(views, phase, sandbox_ready=facts.sandbox_ready, previous=conditions,
                                          readiness_gates=spec.get("readinessGates") or [], now=now,
                                          init_views=init_views)
    status["hostIP"] = facts.host_ip
    status["hostIPs"] = [{"ip": facts.host_ip}]
    if facts.pod_ips:
        status["podIP"] = facts.pod_ips[0]
        status["podIPs"] = [{"ip": ip} for ip in facts.pod_ips]
    status["startTime"] = facts.start_time
    if init_views:
        status["initContainerStatuses"] = [v.to_api() for v in init_views]
    status["containerStatuses"] = [v.to_api() for v in views]
    return status


def status_patch(stored: Obj, wanted: Obj) -> Obj | None:
    """The merge patch turning ``stored`` into ``wanted``; None when they are equal.

    A status's members are scalars and lists, which a merge patch replaces whole
    (conditions and containerStatuses go whole, so a patch is exact); comparing the
    top level is therefore exact and much cheaper than a deep diff at 30,000 writes.
    Nested objects, if any, are diffed properly.
    """
    patch: Obj = {}
    for key, value in wanted.items():
        old = stored.get(key)
        if old is not value and old != value:  # build_pod_status passes unchanged members on as they are
            both = isinstance(old, dict) and isinstance(value, dict)
            patch[key] = create_merge_patch(old, value) if both else value
    for key in stored:
        if key not in wanted:
            patch[key] = None
    return patch or None
