"""The stages of a pod's life, derived from the versions it (and its Port, Events, node) went through.

Reads the recorded writes of one pod's trace in commit order, each with its decoded object and
the previous version of the same object, and returns the stages in the order they began, each
with the moment it began, who wrote it, and for failures their reason and message. A stage
lasts until the next one begins. The vocabulary is Kubernetes' own words where it has them
(event reasons, container state reasons, conditions); ``docs/tracing.md`` lists it.

Why derived, not recorded: the write path only keeps the bytes the store already encoded (see
:mod:`.recorder`); this runs when someone reads a trace, and its result is cached per newest
revision by :mod:`.model`. Pure functions: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: stages that name a failure (``failed: true``); a repeat of the current one folds into it
FAILURES = frozenset({
    "Unschedulable", "FailedCreatePodSandBox", "FailedMount", "ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull",
    "InvalidImageName", "CreateContainerConfigError", "CreateContainerError", "RunContainerError", "CrashLoopBackOff",
    "BackOff", "Unhealthy", "OOMKilled", "Evicted", "Preempted", "Failed", "InitContainerFailed", "ContainerFailed",
    "FailedPreStopHook", "FailedPostStartHook", "DeadlineExceeded", "NodeNotReady",
})

#: event reasons that become a stage of their own name (the others are described by status writes)
EVENT_STAGES = frozenset({
    "FailedScheduling", "FailedCreatePodSandBox", "FailedMount", "Pulling", "Pulled", "Created", "Killing",
    "Unhealthy", "BackOff", "Preempted", "Evicted", "FailedPreStopHook", "FailedPostStartHook", "Failed",
    "DeadlineExceeded",
})

#: container waiting reasons that are failures worth a stage
WAITING_FAILURES = frozenset({
    "ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName", "CreateContainerConfigError",
    "CreateContainerError", "RunContainerError", "CrashLoopBackOff",
})

PORT_ANNOTATION = "network.podlife.io/port"


@dataclass
class Stage:
    name: str
    start: float
    writer: str | None = None
    reason: str | None = None
    message: str | None = None
    container: str | None = None
    failed: bool = False
    rv: int = 0

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "start": self.start, "writer": self.writer}
        if self.container:
            out["container"] = self.container
        if self.reason:
            out["reason"] = self.reason
        if self.message:
            out["message"] = self.message
        if self.failed:
            out["failed"] = True
        return out


@dataclass
class Entry:
    """One recorded write as the stages see it."""

    kind: str  # Pod | Port | Event | Node
    verb: str  # create | update | delete
    time: float
    rv: int
    writer: str | None
    obj: dict[str, Any] | None  # None for a delete
    prev: dict[str, Any] | None  # the object's previous version (None: none recorded)


@dataclass
class _State:
    stages: list[Stage] = field(default_factory=list)
    rejections: list[str] = field(default_factory=list)
    scheduled: Stage | None = None
    port: bool = False
    sandbox: bool = False
    terminating: bool = False
    grace: Any = None
    prestop: set[str] = field(default_factory=set)
    #: the last stage per (name, container), for folding repeats of failures
    last: dict[tuple[str, str | None], Stage] = field(default_factory=dict)

    def add(self, name: str, e: Entry, *, reason: str | None = None, message: str | None = None,
            container: str | None = None, failed: bool | None = None) -> Stage:
        failed = name in FAILURES if failed is None else failed
        if failed and self.stages:
            current = self.stages[-1]
            if current.name == name and current.container == container:
                current.message = message or current.message  # a repeat: the newest message
                return current
        stage = Stage(name, e.time, e.writer, reason, message, container, failed, e.rv)
        self.stages.append(stage)
        self.last[(name, container)] = stage
        return stage


def derive(entries: list[Entry]) -> list[Stage]:
    """The stages of a pod's life, in the order they began."""
    st = _State()
    for e in entries:
        if e.kind == "Pod":
            _pod(st, e)
        elif e.kind == "Event":
            _event(st, e)
        elif e.kind == "Port":
            if e.verb == "create" and not st.port:
                st.port = True
                meta = (e.obj or {}).get("metadata") or {}
                st.add("PortAllocated", e, message=_port_message(e.obj) or f"port {meta.get('name', '')}")
        elif e.kind == "Node":
            _node(st, e)
    st.stages.sort(key=lambda s: (s.start, s.rv))  # stable: same-moment stages keep their order
    return st.stages


def _port_message(port: dict[str, Any] | None) -> str:
    if not port:
        return ""
    spec = port.get("spec") or {}
    ips = [str(f.get("ipAddress")) for f in spec.get("fixedIPs") or () if isinstance(f, dict) and f.get("ipAddress")]
    name = (port.get("metadata") or {}).get("name", "")
    return f"port {name}" + (f" ({', '.join(ips)})" if ips else "")


def _conditions(pod: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    return {c.get("type", ""): c for c in ((pod or {}).get("status") or {}).get("conditions") or () if isinstance(c, dict)}


def _statuses(pod: dict[str, Any] | None, field_name: str) -> dict[str, dict[str, Any]]:
    return {s.get("name", ""): s for s in ((pod or {}).get("status") or {}).get(field_name) or () if isinstance(s, dict)}


def _pod(st: _State, e: Entry) -> None:
    if e.verb == "delete":
        st.add("Gone", e, message="deleted from the store")
        return
    pod, prev = e.obj or {}, e.prev
    spec, status, meta = pod.get("spec") or {}, pod.get("status") or {}, pod.get("metadata") or {}
    pspec, pstatus, pmeta = (prev or {}).get("spec") or {}, (prev or {}).get("status") or {}, (prev or {}).get("metadata") or {}
    if e.verb == "create" or prev is None:
        st.add("Created", e)
        st.prestop = {c.get("name", "") for c in spec.get("containers") or () if isinstance(c, dict)
                      and ((c.get("lifecycle") or {}).get("preStop"))}
        if not spec.get("nodeName"):
            st.add("Queued", e, message=f"waiting for scheduler {spec.get('schedulerName') or 'default-scheduler'}")
    node = spec.get("nodeName")
    if node and node != pspec.get("nodeName"):
        st.scheduled = st.add("Scheduled", e, message=_scheduled_message(st, node))
    conds, pconds = _conditions(pod), _conditions(prev)
    sched = conds.get("PodScheduled")
    if sched and sched.get("status") == "False" and sched.get("reason") == "Unschedulable":
        psched = pconds.get("PodScheduled")
        if not psched or psched.get("status") != "False" or psched.get("message") != sched.get("message"):
            st.add("Unschedulable", e, reason="Unschedulable", message=sched.get("message"))
    annotations = meta.get("annotations") or {}
    if not st.port and PORT_ANNOTATION in annotations and PORT_ANNOTATION not in (pmeta.get("annotations") or {}):
        st.port = True
        st.add("PortAllocated", e, message=f"{PORT_ANNOTATION}: {annotations[PORT_ANNOTATION]}")
    if not st.sandbox:
        ready_to_start = conds.get("PodReadyToStartContainers", {}).get("status") == "True"
        if status.get("podIP") or ready_to_start:
            st.sandbox = True
            st.add("SandboxCreated", e, message=f"podIP {status['podIP']}" if status.get("podIP") else None)
    if meta.get("deletionTimestamp") and not pmeta.get("deletionTimestamp"):
        st.terminating = True
        st.grace = meta.get("deletionGracePeriodSeconds")
        st.add("Terminating", e, message=f"grace period {st.grace}s" if st.grace is not None else None)
    _containers(st, e, _statuses(pod, "initContainerStatuses"), _statuses(prev, "initContainerStatuses"), init=True)
    _containers(st, e, _statuses(pod, "containerStatuses"), _statuses(prev, "containerStatuses"), init=False)
    ready, pready = conds.get("Ready", {}).get("status"), pconds.get("Ready", {}).get("status")
    if ready == "True" and pready != "True":
        st.add("Ready", e)
    elif ready == "False" and pready == "True" and not st.terminating:
        st.add("NotReady", e, reason=conds["Ready"].get("reason"), message=conds["Ready"].get("message"))
    _phase(st, e, status, pstatus)


def _scheduled_message(st: _State, node: str) -> str:
    text = f"assigned to {node}"
    if st.rejections:
        text += "; before: " + " | ".join(dict.fromkeys(st.rejections))  # each distinct reason once, in order
    return text


def _phase(st: _State, e: Entry, status: dict[str, Any], pstatus: dict[str, Any]) -> None:
    phase = status.get("phase")
    if phase == pstatus.get("phase") and status.get("reason") == pstatus.get("reason"):
        return
    reason, message = status.get("reason"), status.get("message")
    if reason == "Evicted":
        st.add("Evicted", e, reason=reason, message=message)
    elif reason == "DeadlineExceeded":
        st.add("DeadlineExceeded", e, reason=reason, message=message)
    if phase == "Failed" and phase != pstatus.get("phase"):
        st.add("Failed", e, reason=reason, message=message)
    elif phase == "Succeeded" and phase != pstatus.get("phase"):
        st.add("Succeeded", e, reason=reason, message=message)


def _containers(st: _State, e: Entry, now: dict[str, dict[str, Any]], before: dict[str, dict[str, Any]], *,
                init: bool) -> None:
    for name, cs in now.items():
        old = before.get(name) or {}
        state, ostate = cs.get("state") or {}, old.get("state") or {}
        running, orunning = state.get("running"), ostate.get("running")
        if running is not None and (orunning is None or running.get("startedAt") != orunning.get("startedAt")):
            st.add("InitContainerStarted" if init else "ContainerStarted", e, container=name)
        if (cs.get("restartCount") or 0) > (old.get("restartCount") or 0):
            last = (cs.get("lastState") or {}).get("terminated") or {}
            st.add("ContainerRestarted", e, container=name, reason=last.get("reason"),
                   message=f"restart {cs.get('restartCount')}" + (f", exit code {last['exitCode']}"
                                                                   if "exitCode" in last else ""))
        waiting, owaiting = state.get("waiting"), ostate.get("waiting") or {}
        if waiting is not None and waiting.get("reason") in WAITING_FAILURES and (
                waiting.get("reason") != owaiting.get("reason") or waiting.get("message") != owaiting.get("message")):
            st.add(waiting["reason"], e, container=name, reason=waiting["reason"], message=waiting.get("message"))
        term, oterm = state.get("terminated"), ostate.get("terminated")
        last_term = (cs.get("lastState") or {}).get("terminated")
        olast_term = (old.get("lastState") or {}).get("terminated")
        for t, ot in ((term, oterm), (last_term, olast_term)):
            if t is not None and (ot is None or t.get("finishedAt") != ot.get("finishedAt")
                                  or t.get("containerID") != ot.get("containerID")):
                _terminated(st, e, name, t, init=init)
                break


def _terminated(st: _State, e: Entry, name: str, t: dict[str, Any], *, init: bool) -> None:
    reason, code = t.get("reason"), t.get("exitCode")
    message = f"exit code {code}" + (f": {t['message']}" if t.get("message") else "")
    if reason == "OOMKilled":
        st.add("OOMKilled", e, container=name, reason=reason, message=message)
    elif st.terminating and code == 137:
        st.add("SIGKILL", e, container=name, reason=reason, message=f"killed after the grace period ({message})")
    elif init:
        st.add("InitContainerCompleted" if code == 0 else "InitContainerFailed", e, container=name, reason=reason,
               message=message)
    else:
        failed = code not in (0, None) and not st.terminating
        st.add("ContainerFailed" if failed else "ContainerTerminated", e, container=name, reason=reason,
               message=message)


def _event_container(ev: dict[str, Any]) -> str | None:
    involved = ev.get("involvedObject") or ev.get("regarding") or {}
    path = involved.get("fieldPath") or ""
    if "{" in path and path.endswith("}"):
        return path[path.index("{") + 1:-1]
    return None


def event_time(name: str, committed: float) -> float:
    """When an Event happened: its recorder names it ``<object>.<nanoseconds, hex>`` when it happens
    (:mod:`podlife.client.events`, as the kubelet and the scheduler do), before its write commits;
    the commit time when the name says nothing plausible (other recorders' names)."""
    _, _, suffix = name.rpartition(".")
    try:
        happened = int(suffix, 16) / 1e9
    except ValueError:
        return committed
    return happened if committed - 60.0 <= happened <= committed else committed


def _event(st: _State, e: Entry) -> None:
    ev = e.obj
    if ev is None or e.verb == "delete":
        return
    if e.verb == "create":
        e = Entry(e.kind, e.verb, event_time(str((ev.get("metadata") or {}).get("name") or ""), e.time), e.rv,
                  e.writer, e.obj, e.prev)
    reason = ev.get("reason") or ""
    message = ev.get("message") or ev.get("note") or ""
    container = _event_container(ev)
    if e.verb != "create" and reason not in FAILURES and reason != "FailedScheduling":
        return  # a count update of a normal event: nothing new began
    if reason == "FailedScheduling":
        st.rejections.append(message)
        if st.scheduled is None:
            st.add("Unschedulable", e, reason=reason, message=message)
        return
    if reason == "Scheduled":
        if st.scheduled is not None and not st.rejections:
            st.scheduled.message = message
        return
    if reason == "Killing":
        if st.grace is not None:
            message += f" (SIGTERM, grace period {st.grace}s)"
        if container in st.prestop:
            st.add("PreStop", e, container=container, message="preStop hook, then SIGTERM")
        st.add("Killing", e, container=container, reason=reason, message=message)
        return
    if reason == "Pulled":
        st.add("ImagePulled", e, container=container, reason=reason, message=_pulled_message(message))
    elif reason == "Created":
        st.add("ContainerCreated", e, container=container, reason=reason, message=message)
    elif reason == "Failed" and ("ErrImagePull" in message or "pull" in message.lower()):
        st.add("ErrImagePull", e, container=container, reason=reason, message=message)
    elif reason == "BackOff":
        name = "ImagePullBackOff" if "pull" in message.lower() else "CrashLoopBackOff"
        st.add(name, e, container=container, reason=reason, message=message)
    elif reason in EVENT_STAGES:
        st.add(reason, e, container=container, reason=reason, message=message)


def _pulled_message(message: str) -> str:
    """The ImagePulled stage's message: the kubelet's own, except for an image it did not pull.

    ``Container image "busybox" already present on machine`` reads, in a timeline, as if
    something became ready before the container started; the stage says what it means.
    """
    if "already present" not in message:
        return message
    quoted = message.split('"')
    image = quoted[1] if len(quoted) > 2 else ""
    return f"image {image} was on the node: not pulled" if image else "the image was on the node: not pulled"


def _node(st: _State, e: Entry) -> None:
    """A condition status transition of the pod's node while it ran there."""
    now, before = _conditions(e.obj), _conditions(e.prev)
    changed = [f"{t}={c.get('status')}" + (f" ({c.get('reason')})" if c.get("reason") else "")
               for t, c in now.items() if c.get("status") != before.get(t, {}).get("status")]
    if not changed:
        return
    ready = now.get("Ready", {}).get("status")
    name = "NodeNotReady" if ready != "True" and before.get("Ready", {}).get("status") == "True" else "NodeCondition"
    node = ((e.obj or {}).get("metadata") or {}).get("name", "")
    st.add(name, e, message=f"node {node}: " + ", ".join(changed), failed=name == "NodeNotReady")
