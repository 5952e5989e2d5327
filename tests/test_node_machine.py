"""The pod-lifecycle state machine on its own: facts in, effects out, no server, no processes.

Each test plays one piece of a pod's life into :class:`podlife.node.machine.PodLifecycle`
as a driver would (the kubelet and the simulator both do exactly this) and checks the
effects and the statuses it asks to write. A hypothesis test plays random facts and
checks the rules that must always hold.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from podlife.node.machine import (
    NEVER_RAN_MESSAGE, VANISHED_MESSAGE, ContainerConfigFailed, ContainerExited, ContainerStarted, DeletePod, Effect,
    HookFailed, ImagePullFailed, KillContainers, LifecycleConfig, PodGone, PodLifecycle, PodUpdated, ProbeResult,
    RecordEvent, ReleaseSandbox, RunHook, SandboxFailed, SandboxReady, SetUpSandbox, StartContainer, WakeAt,
    WriteStatus,
)

Obj = dict[str, Any]
NOW = "2026-12-02T10:00:00Z"


def pod(restart_policy: str = "Always", containers: tuple[str, ...] = ("app",), **spec: Any) -> Obj:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
        "spec": {"restartPolicy": restart_policy, "nodeName": "n1",
                 "containers": [{"name": c, "image": f"{c}:1"} for c in containers], **spec},
        "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]},
    }


class Driver:
    """Plays facts into a machine and writes every status it asks for, like a node would."""

    def __init__(self, p: Obj | None = None, **config: Any) -> None:
        self.pod = p or pod()
        self.m = PodLifecycle(self.pod, host_ip="192.0.2.1", config=LifecycleConfig(**config))
        self.m.recover(self.pod["status"], now=0.0, now_text=NOW)
        self.now = 0.0
        self.written: list[Obj] = []
        self.events: list[RecordEvent] = []

    def carry_out(self, effects: list[Effect]) -> list[Effect]:
        """Write statuses and keep events; return the other effects."""
        rest = []
        for e in effects:
            if isinstance(e, WriteStatus):
                wanted, patch = self.m.status_patch(NOW, terminal=e.terminal)
                if patch is not None:
                    self.written.append(wanted)
                self.m.written(wanted)
            elif isinstance(e, RecordEvent):
                self.events.append(e)
            else:
                rest.append(e)
        return rest

    def plan(self) -> list[Effect]:
        return self.carry_out(self.m.plan(self.now))

    def observe(self, fact: Any) -> list[Effect]:
        return self.carry_out(self.m.observe(fact, self.now))

    def start(self, name: str = "app", cid: str = "cid-1") -> list[Effect]:
        return self.observe(ContainerStarted(name, cid, NOW))

    def exit(self, name: str = "app", code: int = 0, reason: str = "Completed") -> list[Effect]:
        return self.observe(ContainerExited(name, code, reason, NOW, self.now))

    def running(self) -> None:
        """ContainerCreating, pod IP, every container started."""
        assert self.plan() == [SetUpSandbox()]
        self.observe(SandboxReady(("10.244.0.5",)))
        starts = self.plan()
        for s in starts:
            assert isinstance(s, StartContainer)
            self.start(s.container, f"cid-{s.container}-{s.instance}")
        assert self.plan() == []

    @property
    def status(self) -> Obj:
        return self.written[-1]

    def state(self, i: int = 0) -> Obj:
        return self.status["containerStatuses"][i]["state"]

    def reasons(self) -> list[str]:
        return [e.reason for e in self.events if not e.routine]


def condition(status: Obj, type_: str) -> Obj:
    return next(c for c in status["conditions"] if c["type"] == type_)


# --------------------------------------------------------------------------- the first writes


def test_first_writes_come_in_the_seeds_order() -> None:
    d = Driver()
    assert d.plan() == [SetUpSandbox()]
    creating = d.status
    assert creating["phase"] == "Pending" and "podIP" not in creating
    assert d.state() == {"waiting": {"reason": "ContainerCreating"}}
    assert condition(creating, "Initialized")["status"] == "True"
    assert condition(creating, "Ready")["reason"] == "ContainersNotReady"
    assert creating["hostIP"] == "192.0.2.1" and creating["startTime"] == NOW
    # the port is not there yet: asked again after a short back-off
    d.observe(SandboxFailed("no port", retry=True))
    assert d.plan() == [WakeAt(0.1)]
    d.now = 0.1
    assert d.plan() == [SetUpSandbox()]
    d.observe(SandboxReady(("10.244.0.5",)))
    assert d.plan() == [StartContainer("app", 0)]
    assert d.status["podIP"] == "10.244.0.5" and d.status["phase"] == "Pending"
    assert [e.reason for e in d.start()] == []  # events are kept by the driver
    assert d.plan() == []
    assert d.status["phase"] == "Running" and d.state() == {"running": {"startedAt": NOW}}
    assert condition(d.status, "Ready")["status"] == "True"
    assert [e.reason for e in d.events] == ["Pulled", "Created", "Started"]
    assert all(e.routine for e in d.events)


def test_a_sandbox_that_waits_for_the_pod_object_is_asked_again_when_it_changes() -> None:
    d = Driver()
    d.plan()
    d.observe(SandboxFailed("no port", retry=False))
    assert d.plan() == []
    d.observe(PodUpdated(d.pod))
    assert d.plan() == [SetUpSandbox()]


def test_a_real_sandbox_failure_is_an_event() -> None:
    d = Driver()
    d.plan()
    d.observe(SandboxFailed("boom", warn=True))
    assert d.events == [RecordEvent("Warning", "FailedCreatePodSandBox", "Failed to create pod sandbox: boom")]


# --------------------------------------------------------------------------- restarts


def test_crash_loop_back_off_grows_and_shows_at_once() -> None:
    d = Driver(backoff_initial=10, backoff_max=40)
    d.running()
    d.now = 5
    d.exit(code=1, reason="Error")
    # the first restart is immediate, and the terminated state is written first
    assert d.plan() == [StartContainer("app", 1)]
    assert d.state()["terminated"]["exitCode"] == 1 and d.status["containerStatuses"][0]["restartCount"] == 0
    d.start(cid="cid-2")
    d.plan()
    assert d.status["containerStatuses"][0]["restartCount"] == 1
    assert d.status["containerStatuses"][0]["lastState"]["terminated"]["reason"] == "Error"
    d.now = 6
    d.exit(code=1, reason="Error")
    assert d.reasons() == ["BackOff"]
    assert d.events[-1].message == "Back-off restarting failed container app in pod p_ns(u1)"
    assert d.plan() == [WakeAt(16)]
    waiting = d.state()["waiting"]
    assert waiting == {"reason": "CrashLoopBackOff",
                       "message": "back-off 10s restarting failed container=app pod=p_ns(u1)"}
    assert d.status["phase"] == "Running"  # Always: a pod waiting to restart is still Running
    d.now = 16
    assert d.plan() == [StartContainer("app", 2)]
    d.start(cid="cid-3")
    d.plan()
    d.now = 17
    d.exit(code=1, reason="Error")
    assert d.plan() == [WakeAt(37)]
    assert "back-off 20s" in d.state()["waiting"]["message"]


def test_never_ends_failed_and_releases_the_sandbox() -> None:
    d = Driver(pod("Never"))
    d.running()
    d.exit(code=3, reason="Error")
    assert d.plan() == [ReleaseSandbox()]
    assert d.status["phase"] == "Failed"
    assert condition(d.status, "PodReadyToStartContainers")["status"] == "False"
    assert condition(d.status, "Ready")["reason"] == "PodFailed"
    assert d.reasons() == []  # no back-off: nothing restarts
    assert d.plan() == []


def test_on_failure_restarts_failures_and_ends_on_success() -> None:
    d = Driver(pod("OnFailure"))
    d.running()
    d.exit(code=1, reason="Error")
    assert d.plan() == [StartContainer("app", 1)]
    d.start(cid="x")
    d.plan()
    d.exit(code=0)
    assert d.plan() == [ReleaseSandbox()]
    assert d.status["phase"] == "Succeeded"


def test_a_phase_never_leaves_succeeded_even_if_somebody_writes_otherwise() -> None:
    d = Driver(pod("Never"))
    d.running()
    d.exit(code=0)
    d.plan()
    assert d.status["phase"] == "Succeeded"
    d.observe(PodUpdated({**d.pod, "status": {**d.status, "phase": "Running"}}))
    d.plan()
    assert d.status["phase"] == "Succeeded"


def test_a_terminal_phase_written_by_somebody_else_stops_restarts() -> None:
    d = Driver()
    d.running()
    d.observe(PodUpdated({**d.pod, "status": {"phase": "Failed", "reason": "Evicted"}}))
    d.exit(code=137, reason="Error")
    assert d.plan() == [ReleaseSandbox()]
    assert d.status["phase"] == "Failed"


# --------------------------------------------------------------------------- configuration, images, hooks, probes


def test_a_config_error_waits_and_is_retried() -> None:
    d = Driver()
    d.plan()
    d.observe(SandboxReady(("10.244.0.5",)))
    assert d.plan() == [StartContainer("app", 0)]
    d.observe(ContainerConfigFailed("app", 'configmap "c" not found', retry_in=2))
    assert d.plan() == [WakeAt(2)]
    assert d.state() == {"waiting": {"reason": "CreateContainerConfigError", "message": 'configmap "c" not found'}}
    assert d.reasons() == ["Failed"]
    d.now = 2
    assert d.plan() == [StartContainer("app", 0)]  # the same instance: nothing restarted


def test_a_runtime_failure_before_the_process_exists_is_create_container_error_and_retried() -> None:
    d = Driver()
    d.plan()
    d.observe(SandboxReady(("10.244.0.5",)))
    assert d.plan() == [StartContainer("app", 0)]
    d.observe(ContainerConfigFailed("app", "failed to create container app: disk full", retry_in=2,
                                    reason="CreateContainerError"))
    assert d.plan() == [WakeAt(2)]
    assert d.state() == {"waiting": {"reason": "CreateContainerError",
                                     "message": "failed to create container app: disk full"}}
    d.now = 2
    assert d.plan() == [StartContainer("app", 0)]  # started again, not left waiting for an answer


def test_image_pull_failures_back_off() -> None:
    d = Driver()
    d.plan()
    d.observe(SandboxReady(("10.244.0.5",)))
    d.plan()
    d.observe(ImagePullFailed("app", "not found", shown_for=1, backoff=10, backoff_max=15))
    assert d.plan() == [WakeAt(1)]
    assert d.state()["waiting"]["reason"] == "ErrImagePull" and d.status["phase"] == "Pending"
    d.now = 1
    assert d.plan() == [WakeAt(11)]
    assert d.state()["waiting"] == {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "app:1"'}
    assert d.reasons() == ["Failed", "BackOff"]
    assert d.events[0].message == 'Failed to pull image "app:1": not found'
    d.now = 11
    assert d.plan() == [StartContainer("app", 0)]
    d.observe(ImagePullFailed("app", "not found", shown_for=1, backoff=10, backoff_max=15))
    assert d.plan() == [WakeAt(12)]
    d.now = 12
    assert d.plan() == [WakeAt(27)]  # 20 s capped at 15


def test_a_failed_post_start_hook_kills_the_container() -> None:
    p = pod()
    p["spec"]["containers"][0]["lifecycle"] = {"postStart": {"exec": {"command": ["false"]}}}
    d = Driver(p)
    d.plan()
    d.observe(SandboxReady(("10.244.0.5",)))
    d.plan()
    assert d.start() == [RunHook("app")]
    assert d.observe(HookFailed("app", "PostStart", "exit 1")) == [KillContainers(("app",), 30.0, pre_stop=False)]
    assert d.reasons() == ["FailedPostStartHook"]


def test_a_failed_readiness_probe_turns_the_pod_unready_and_a_passing_one_back() -> None:
    d = Driver()
    d.running()
    d.observe(ProbeResult("app", False, message="HTTP 500"))
    d.plan()
    assert d.status["phase"] == "Running" and d.status["containerStatuses"][0]["ready"] is False
    assert condition(d.status, "Ready")["message"] == "containers with unready status: [app]"
    assert d.events[-1] == RecordEvent("Warning", "Unhealthy", "Readiness probe failed: HTTP 500", "app")
    d.observe(ProbeResult("app", True))
    d.plan()
    assert condition(d.status, "Ready")["status"] == "True"


def test_conditions_others_own_are_kept_and_readiness_gates_decide_ready() -> None:
    p = pod(readinessGates=[{"conditionType": "example.com/gate"}])
    d = Driver(p)
    d.running()
    assert condition(d.status, "Ready")["reason"] == "ReadinessGatesNotReady"
    gate = {"type": "example.com/gate", "status": "True", "lastTransitionTime": NOW}
    d.observe(PodUpdated({**p, "status": {**d.status, "conditions": [gate, *d.status["conditions"]]}}))
    d.plan()
    assert d.status["conditions"][0] == gate
    assert condition(d.status, "Ready")["status"] == "True"


# --------------------------------------------------------------------------- termination


def deleting(p: Obj, grace: int = 30) -> Obj:
    return {**p, "metadata": {**p["metadata"], "deletionTimestamp": NOW, "deletionGracePeriodSeconds": grace}}


def test_graceful_deletion_unready_then_kill_then_final_status_then_delete() -> None:
    d = Driver()
    d.running()
    d.observe(PodUpdated(deleting(d.pod, 20)))
    assert d.plan() == [KillContainers(("app",), 20.0)]
    assert d.status["containerStatuses"][0]["ready"] is False and d.status["phase"] == "Running"
    assert d.events[-1] == RecordEvent("Normal", "Killing", "Stopping container app", "app")
    assert d.plan() == []  # waiting for the container to stop
    d.exit(code=0)
    assert d.plan() == [DeletePod(), ReleaseSandbox()]
    assert d.state()["terminated"]["reason"] == "Completed"
    assert d.m.deleted and d.plan() == []


def test_containers_that_never_ran_end_with_container_status_unknown() -> None:
    d = Driver()
    d.plan()
    d.observe(PodUpdated(deleting(d.pod)))
    assert d.plan() == [DeletePod()]
    assert d.state()["terminated"] == {"exitCode": 137, "reason": "ContainerStatusUnknown",
                                       "message": NEVER_RAN_MESSAGE}


def test_the_grace_period_is_floored_and_a_force_deleted_pod_is_killed_at_once() -> None:
    d = Driver(min_kill_grace=2)
    d.running()
    assert d.m.kill_grace() == 30
    d.observe(PodUpdated(deleting(d.pod, 0)))
    assert d.m.kill_grace() == 2
    gone = Driver()
    gone.running()
    assert gone.observe(PodGone()) == [KillContainers(("app",), 2.0, pre_stop=False), ReleaseSandbox()]
    assert gone.m.deleted and gone.plan() == []


# --------------------------------------------------------------------------- recovery


def running_status() -> Obj:
    return {"phase": "Running", "podIP": "10.244.0.5", "podIPs": [{"ip": "10.244.0.5"}], "startTime": NOW,
            "conditions": [{"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [{"name": "app", "image": "app:1", "ready": True, "restartCount": 2,
                                   "containerID": "cid-old", "state": {"running": {"startedAt": NOW}},
                                   "lastState": {}}]}


def test_a_restarted_kubelet_finds_its_containers_gone() -> None:
    p = {**pod(), "status": running_status()}
    d = Driver(p)
    assert d.plan() == [SetUpSandbox()]
    assert d.state()["terminated"]["reason"] == "ContainerStatusUnknown"
    assert d.state()["terminated"]["message"] == VANISHED_MESSAGE
    d.observe(SandboxReady(("10.244.0.5",)))
    assert d.plan() == [StartContainer("app", 3)]


def test_a_restarted_simulator_keeps_its_running_containers() -> None:
    p = {**pod(), "status": running_status()}
    m = PodLifecycle(p, host_ip="192.0.2.1")
    m.recover(p["status"], now=0.0, now_text=NOW, alive=("app",), sandbox_ready=True)
    wanted, patch = m.status_patch(NOW)
    assert wanted["containerStatuses"][0]["state"] == {"running": {"startedAt": NOW}}
    assert wanted["containerStatuses"][0]["restartCount"] == 2
    m.written(wanted)
    assert m.plan(0.0) == []


# --------------------------------------------------------------------------- rules that always hold


FACTS = st.sampled_from(["start", "exit0", "exit1", "unready", "ready", "delete", "tick", "sandbox"])


@settings(max_examples=150, deadline=None)
@given(policy=st.sampled_from(["Always", "OnFailure", "Never"]), steps=st.lists(FACTS, max_size=40))
def test_random_lives_keep_the_rules(policy: str, steps: list[str]) -> None:
    """Whatever happens: phases never leave Succeeded/Failed, restart counts never go down,
    a restart only follows an exit the policy restarts, and a deleted pod asks for nothing."""
    d = Driver(pod(policy), backoff_initial=1, backoff_max=4)
    pending: list[StartContainer] = []
    phases: list[str] = []
    restarts = 0
    for step in steps:
        effects: list[Effect] = []
        if step == "start" and pending:
            s = pending.pop(0)
            effects = d.observe(ContainerStarted(s.container, f"c{s.instance}", NOW))
        elif step in ("exit0", "exit1"):
            effects = d.exit(code=0 if step == "exit0" else 1, reason="Completed" if step == "exit0" else "Error")
        elif step in ("unready", "ready"):
            effects = d.observe(ProbeResult("app", step == "ready"))
        elif step == "delete":
            effects = d.observe(PodUpdated(deleting(d.pod)))
        elif step == "tick":
            d.now += 2
        elif step == "sandbox":
            effects = d.observe(SandboxReady(("10.244.0.9",)))
        effects += d.plan()
        for e in effects:
            if isinstance(e, SetUpSandbox):
                d.observe(SandboxReady(("10.244.0.9",)))
            elif isinstance(e, StartContainer):
                pending.append(e)
            elif isinstance(e, KillContainers):
                d.exit(code=137, reason="Error")
        for s in d.written[len(phases):]:
            phases.append(s["phase"])
            count = s["containerStatuses"][0]["restartCount"]
            assert count >= restarts
            restarts = count
        if d.m.deleted:
            assert d.plan() == []
    for before, after in zip(phases, phases[1:]):
        if before in ("Succeeded", "Failed"):
            assert after == before
    if policy == "Never":
        assert restarts == 0


# --------------------------------------------------------------------------- liveness and startup probes


def test_a_failed_liveness_probe_kills_the_container_and_it_restarts() -> None:
    d = Driver(pod(terminationGracePeriodSeconds=5))
    d.running()
    effects = d.observe(ProbeResult("app", False, "Liveness", "cat: /tmp/healthy: No such file"))
    assert effects == [KillContainers(("app",), 5.0)]
    assert d.events[-2:] == [
        RecordEvent("Warning", "Unhealthy", "Liveness probe failed: cat: /tmp/healthy: No such file", "app"),
        RecordEvent("Normal", "Killing", "Container app failed liveness probe, will be restarted", "app"),
    ]
    d.exit(code=137, reason="Error")
    assert d.plan() == [StartContainer("app", 1)]  # the first restart comes at once
    d.start(cid="cid-2")
    d.plan()
    assert d.status["containerStatuses"][0]["restartCount"] == 1


def test_a_failed_startup_probe_kills_the_container_with_never_the_pod_fails() -> None:
    d = Driver(pod("Never", terminationGracePeriodSeconds=1))
    d.running()
    assert d.observe(ProbeResult("app", False, "Startup", "HTTP 500")) == [KillContainers(("app",), 2.0)]
    assert d.events[-1].message == "Container app failed startup probe, will be restarted"
    d.exit(code=137, reason="Error")
    d.plan()
    assert d.status["phase"] == "Failed"


def test_passing_liveness_results_and_failures_of_ended_or_terminating_containers_do_nothing() -> None:
    d = Driver()
    d.running()
    assert d.observe(ProbeResult("app", True, "Liveness")) == []
    assert d.observe(ProbeResult("app", True, "Startup")) == []
    d.exit(code=1, reason="Error")
    assert d.observe(ProbeResult("app", False, "Liveness", "x")) == []
    assert "Killing" not in d.reasons()


def test_the_initial_readiness_verdict_makes_the_pod_unready_without_an_event() -> None:
    d = Driver()
    d.running()
    d.observe(ProbeResult("app", False))
    d.plan()
    assert d.status["containerStatuses"][0]["ready"] is False
    assert "Unhealthy" not in d.reasons()
