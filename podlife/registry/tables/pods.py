"""Pod table: READY, STATUS and RESTARTS exactly as ``kubectl get pods`` shows them.

The STATUS cell is not a stored field: it is derived from the phase, the pod
and container conditions and every container's state.  Users, scripts and our
own end-to-end tests compare it with a real cluster, so the derivation follows
the Kubernetes 1.32 server-side printer rule by rule:

1. start from ``status.phase`` (or ``status.reason`` such as ``Evicted``);
   a ``PodScheduled`` condition with reason ``SchedulingGated`` wins;
2. walk init containers in order; the first one that is neither finished
   successfully nor a started sidecar decides ``Init:<reason>``,
   ``Init:Signal:N``, ``Init:ExitCode:N`` or ``Init:N/M``;
3. unless still initializing, walk the app containers from last to first; a
   waiting reason, terminated reason, or ``Signal:N``/``ExitCode:N`` replaces
   the status (so the first container with such a state has the last word);
   ``Completed`` next to a running container reads ``Running`` (or
   ``NotReady`` when the pod's ``Ready`` condition is not true);
4. a deletion timestamp gives ``Terminating`` (``Unknown`` for pods on a lost
   node) unless the pod already reached a terminal phase.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ._base import (
    JSON,
    NONE,
    TablePrinter,
    age,
    age_column,
    as_int,
    as_list,
    column,
    condition,
    condition_is_true,
    dig,
    meta,
    name_column,
    normalize_now,
    parse_time,
    since,
    spec,
    status,
    wide,
)

NODE_UNREACHABLE_REASON = "NodeLost"
SCHEDULING_GATED = "SchedulingGated"
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})


@dataclass(frozen=True)
class PodSummary:
    """The derived, human-facing state of a pod."""

    ready_containers: int
    total_containers: int
    reason: str
    restarts: int
    last_restart: datetime | None

    @property
    def ready(self) -> str:
        return f"{self.ready_containers}/{self.total_containers}"


def summarize_pod(pod: Mapping[str, Any]) -> PodSummary:
    """Compute READY counts, STATUS reason and restart bookkeeping for a pod."""
    pod_spec, pod_status = spec(pod), status(pod)
    walk = _PodWalk(reason=_initial_reason(pod_status))
    initializing = _walk_init_containers(walk, pod_spec, pod_status)
    if not initializing or condition_is_true(pod_status.get("conditions"), "Initialized"):
        _walk_app_containers(walk, pod_status)
    total = len(as_list(pod_spec.get("containers"))) + sum(
        1 for c in as_list(pod_spec.get("initContainers")) if _is_sidecar(c))
    reason = _deletion_override(pod, walk.reason)
    return PodSummary(walk.ready, total, reason, walk.tally.restarts, walk.tally.last_finished)


def pod_status_reason(pod: Mapping[str, Any]) -> str:
    """The STATUS column of ``kubectl get pods`` for this pod."""
    return summarize_pod(pod).reason


def restarts_text(summary: PodSummary, now: datetime | None = None) -> str:
    """RESTARTS cell: ``N`` or ``N (<age> ago)`` when the last restart time is known."""
    if summary.restarts and summary.last_restart is not None:
        return f"{summary.restarts} ({since(summary.last_restart, normalize_now(now))} ago)"
    return str(summary.restarts)


# --------------------------------------------------------------------------
# Rules


class _RestartTally:
    """Sum of restart counts and the latest ``lastState.terminated.finishedAt``."""

    def __init__(self) -> None:
        self.restarts = 0
        self.last_finished: datetime | None = None

    def add(self, container: JSON) -> None:
        self.restarts += as_int(container.get("restartCount"))
        finished = parse_time(dig(container, "lastState", "terminated", "finishedAt"))
        if finished is not None and (self.last_finished is None or finished > self.last_finished):
            self.last_finished = finished


@dataclass
class _PodWalk:
    """State accumulated while walking a pod's container statuses."""

    reason: str
    ready: int = 0
    tally: _RestartTally = field(default_factory=_RestartTally)
    sidecar_tally: _RestartTally = field(default_factory=_RestartTally)


def _walk_init_containers(walk: _PodWalk, pod_spec: JSON, pod_status: JSON) -> bool:
    """Account for init containers in order; True when one still blocks initialization."""
    init_specs = [c for c in as_list(pod_spec.get("initContainers")) if isinstance(c, dict)]
    by_name = {c.get("name"): c for c in init_specs}
    for index, container in enumerate(_statuses(pod_status, "initContainerStatuses")):
        sidecar = _is_sidecar(by_name.get(container.get("name")))
        walk.tally.add(container)
        if sidecar:
            walk.sidecar_tally.add(container)
        if _finished_successfully(container):
            continue
        if sidecar and container.get("started") is True:
            walk.ready += 1 if container.get("ready") is True else 0
            continue
        walk.reason = _init_blocking_reason(container, index, len(init_specs))
        return True
    return False


def _walk_app_containers(walk: _PodWalk, pod_status: JSON) -> None:
    """Apply app container states, last to first; restarts count sidecars and app containers."""
    walk.tally = walk.sidecar_tally
    has_running = False
    for container in reversed(_statuses(pod_status, "containerStatuses")):
        walk.tally.add(container)
        state_reason = _container_state_reason(container)
        if state_reason is not None:
            walk.reason = state_reason
        elif container.get("ready") is True and _state(container, "running") is not None:
            has_running = True
            walk.ready += 1
    if walk.reason == "Completed" and has_running:
        ready = condition_is_true(pod_status.get("conditions"), "Ready")
        walk.reason = "Running" if ready else "NotReady"


def _initial_reason(pod_status: JSON) -> str:
    reason = str(pod_status.get("reason") or pod_status.get("phase") or "")
    scheduled = condition(pod_status.get("conditions"), "PodScheduled")
    if scheduled is not None and scheduled.get("reason") == SCHEDULING_GATED:
        reason = SCHEDULING_GATED
    return reason


def _finished_successfully(container: JSON) -> bool:
    terminated = _state(container, "terminated")
    return terminated is not None and as_int(terminated.get("exitCode")) == 0


def _init_blocking_reason(container: JSON, index: int, init_count: int) -> str:
    """The STATUS imposed by the first init container that has not completed."""
    terminated = _state(container, "terminated")
    if terminated is not None:
        if terminated.get("reason"):
            return f"Init:{terminated['reason']}"
        return "Init:" + _exit_description(terminated)
    waiting = _state(container, "waiting")
    if waiting is not None and waiting.get("reason") and waiting.get("reason") != "PodInitializing":
        return f"Init:{waiting['reason']}"
    return f"Init:{index}/{init_count}"


def _container_state_reason(container: JSON) -> str | None:
    """The STATUS an app container imposes, or None when it is running/unknown."""
    waiting = _state(container, "waiting")
    if waiting is not None and waiting.get("reason"):
        return str(waiting["reason"])
    terminated = _state(container, "terminated")
    if terminated is not None:
        if terminated.get("reason"):
            return str(terminated["reason"])
        return _exit_description(terminated)
    return None


def _exit_description(terminated: JSON) -> str:
    signal = as_int(terminated.get("signal"))
    if signal:
        return f"Signal:{signal}"
    return f"ExitCode:{as_int(terminated.get('exitCode'))}"


def _deletion_override(pod: Mapping[str, Any], reason: str) -> str:
    if not meta(pod).get("deletionTimestamp"):
        return reason
    pod_status = status(pod)
    if pod_status.get("reason") == NODE_UNREACHABLE_REASON:
        return "Unknown"
    if pod_status.get("phase") not in TERMINAL_PHASES:
        return "Terminating"
    return reason


def _is_sidecar(container_spec: Any) -> bool:
    """Restartable init container (``restartPolicy: Always``), counted as a regular one."""
    return isinstance(container_spec, dict) and container_spec.get("restartPolicy") == "Always"


def _statuses(pod_status: JSON, key: str) -> list[JSON]:
    return [c for c in as_list(pod_status.get(key)) if isinstance(c, dict)]


def _state(container: JSON, which: str) -> JSON | None:
    value = dig(container, "state", which)
    return value if isinstance(value, dict) else None


# --------------------------------------------------------------------------
# Table


def _pod_ip(pod_status: JSON) -> str:
    """First of ``status.podIPs``, falling back to the single ``status.podIP``."""
    ips = [entry.get("ip") for entry in as_list(pod_status.get("podIPs")) if isinstance(entry, dict)]
    first = ips[0] if ips else pod_status.get("podIP")
    return str(first) if first else NONE


def _readiness_gates(pod: Mapping[str, Any]) -> str:
    gates = [g for g in as_list(spec(pod).get("readinessGates")) if isinstance(g, dict)]
    if not gates:
        return NONE
    conditions = status(pod).get("conditions")
    satisfied = sum(1 for gate in gates if condition_is_true(conditions, str(gate.get("conditionType"))))
    return f"{satisfied}/{len(gates)}"


def _pod_cells(pod: JSON, now: datetime) -> list[Any]:
    summary = summarize_pod(pod)
    pod_status = status(pod)
    return [
        meta(pod).get("name", ""),
        summary.ready,
        summary.reason,
        restarts_text(summary, now),
        age(pod, now),
        _pod_ip(pod_status),
        spec(pod).get("nodeName") or NONE,
        pod_status.get("nominatedNodeName") or NONE,
        _readiness_gates(pod),
    ]


def _pod_row_conditions(pod: JSON) -> list[JSON] | None:
    """Mark finished pods the way the API server does (``Completed`` row condition)."""
    phase = status(pod).get("phase")
    if phase == "Succeeded":
        return [{"type": "Completed", "status": "True", "reason": "Succeeded",
                 "message": "All containers of the pod terminated successfully."}]
    if phase == "Failed":
        return [{"type": "Completed", "status": "True", "reason": "Failed",
                 "message": "The pod terminated and at least one container failed."}]
    return None


POD_PRINTER = TablePrinter(
    columns=(
        name_column(),
        column("Ready", description="Ready containers out of all containers of the pod."),
        column("Status", description="Summary of the pod phase and its containers' states."),
        column("Restarts", description="Container restarts in the pod, and how long ago the last one was."),
        age_column(),
        wide("IP", description="First IP address allocated to the pod."),
        wide("Node", description="Node the pod is bound to."),
        wide("Nominated Node", description="Node the scheduler nominated for this pod after preemption."),
        wide("Readiness Gates", description="Satisfied readiness gates out of all declared ones."),
    ),
    cells=_pod_cells,
    row_conditions=_pod_row_conditions,
)

PRINTERS: dict[tuple[str, str], TablePrinter] = {
    ("", "Pod"): POD_PRINTER,
}
