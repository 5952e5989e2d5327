"""The pod-lifecycle machine's health rules on their own: init containers, sidecars, startup
probes, ``activeDeadlineSeconds`` and evictions -- facts in, effects out, no server.

The drivers (kubelet and simulator) only carry these effects out, so what Kubernetes
shows for each case (``Init:1/2``, ``PodInitializing``, ``ContainersNotInitialized``,
a sidecar stopped after the app, ``DeadlineExceeded``, ``Evicted``) is checked here once.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from podlife.node.machine import (
    DEADLINE_MESSAGE, ContainerStarted, ImagePullFailed, KillContainers, PodEvicted, PodUpdated, PostStartDone, ProbeFailed,
    ProbeResult, RecordEvent, ReleaseSandbox, RunHook, SandboxReady, SetUpSandbox, StartContainer, WakeAt,
)

from .test_node_machine import NOW, Driver, condition, pod

Obj = dict[str, Any]


def init_pod(restart_policy: str = "Always", *init: Obj, **spec: Any) -> Obj:
    p = pod(restart_policy, **spec)
    p["spec"]["initContainers"] = list(init) or [{"name": "i1", "image": "busybox"}, {"name": "i2", "image": "busybox"}]
    return p


def sandbox(d: Driver) -> list[Any]:
    """Plug the pod in; the plan that follows (its waits left out)."""
    assert [e for e in d.plan() if not isinstance(e, WakeAt)] == [SetUpSandbox()]
    d.observe(SandboxReady(("10.244.0.5",)))
    return [e for e in d.plan() if not isinstance(e, WakeAt)]


def statuses(d: Driver, key: str = "initContainerStatuses") -> dict[str, Obj]:
    return {s["name"]: s for s in d.status[key]}


# --------------------------------------------------------------------------- init containers


def test_init_containers_run_one_at_a_time_before_the_app() -> None:
    d = Driver(init_pod())
    assert sandbox(d) == [StartContainer("i1", 0)]
    first = d.status
    assert first["phase"] == "Pending"
    assert condition(first, "Initialized") == {
        "type": "Initialized", "status": "False", "lastProbeTime": None, "lastTransitionTime": NOW,
        "reason": "ContainersNotInitialized", "message": "containers with incomplete status: [i1 i2]"}
    assert first["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert [s["state"] for s in first["initContainerStatuses"]] == [{"waiting": {"reason": "PodInitializing"}}] * 2
    d.start("i1")
    assert d.plan() == []  # i2 waits for i1 to exit
    d.exit("i1")
    assert d.plan() == [StartContainer("i2", 0)]
    i1 = statuses(d)["i1"]
    assert i1["state"]["terminated"]["reason"] == "Completed" and i1["ready"] is True and i1["started"] is False
    assert condition(d.status, "Initialized")["message"] == "containers with incomplete status: [i2]"
    d.start("i2")
    d.plan()
    d.exit("i2")
    assert d.plan() == [StartContainer("app", 0)]
    assert condition(d.status, "Initialized")["status"] == "True"
    assert d.status["phase"] == "Pending"  # the app container is not running yet
    d.start("app")
    d.plan()
    assert d.status["phase"] == "Running" and condition(d.status, "Ready")["status"] == "True"


def test_a_failed_init_container_is_retried_with_back_off() -> None:
    d = Driver(init_pod("Always"))
    sandbox(d)
    d.start("i1")
    d.plan()
    d.exit("i1", 1, "Error")
    assert d.plan() == [StartContainer("i1", 1)]  # the first restart comes at once
    d.start("i1", "cid-2")
    d.plan()
    d.exit("i1", 1, "Error")
    assert d.plan() == [WakeAt(10.0)]
    shown = statuses(d)["i1"]
    assert shown["state"]["waiting"]["reason"] == "CrashLoopBackOff" and shown["restartCount"] == 1
    assert d.status["phase"] == "Pending"
    assert statuses(d, "containerStatuses")["app"]["state"] == {"waiting": {"reason": "PodInitializing"}}


def test_a_failed_init_container_fails_the_pod_under_never_and_the_app_never_starts() -> None:
    d = Driver(init_pod("Never"))
    sandbox(d)
    d.start("i1")
    d.plan()
    d.exit("i1", 2, "Error")
    effects = d.plan()
    assert ReleaseSandbox() in effects and not any(isinstance(e, StartContainer) for e in effects)
    assert d.status["phase"] == "Failed"
    assert condition(d.status, "Initialized")["reason"] == "ContainersNotInitialized"
    assert statuses(d, "containerStatuses")["app"]["state"] == {"waiting": {"reason": "PodInitializing"}}


def test_events_of_init_containers_name_their_field_path() -> None:
    d = Driver(init_pod())
    assert d.m.field_path("i1") == "spec.initContainers{i1}"
    assert d.m.field_path("app") == "spec.containers{app}"
    assert d.m.field_path("") == ""


# --------------------------------------------------------------------------- sidecars


def sidecar(**extra: Any) -> Obj:
    return {"name": "side", "image": "busybox", "restartPolicy": "Always", **extra}


def test_a_sidecar_starts_in_order_stays_running_and_counts_as_a_container() -> None:
    d = Driver(init_pod("Always", sidecar(), {"name": "i2", "image": "busybox"}))
    assert sandbox(d) == [StartContainer("side", 0)]
    d.start("side")
    assert d.plan() == [StartContainer("i2", 0)]  # started: the next init container may run
    d.start("i2")
    d.plan()
    d.exit("i2")
    assert d.plan() == [StartContainer("app", 0)]
    d.start("app")
    d.plan()
    side = statuses(d)["side"]
    assert side["state"].keys() == {"running"} and side["ready"] is True and side["started"] is True
    assert d.status["phase"] == "Running" and condition(d.status, "ContainersReady")["status"] == "True"


def test_the_next_init_container_waits_for_a_sidecars_post_start_hook_and_startup_probe() -> None:
    hook = {"postStart": {"exec": {"command": ["true"]}}}
    d = Driver(init_pod("Always", sidecar(lifecycle=hook, startupProbe={"exec": {"command": ["true"]}}),
                        {"name": "i2", "image": "busybox"}))
    sandbox(d)
    assert d.start("side") == [RunHook("side")]
    assert d.plan() == []
    d.observe(PostStartDone("side"))
    assert d.plan() == []  # the startup probe has not passed
    assert statuses(d)["side"]["started"] is False
    d.observe(ProbeResult("side", True, "Startup"))
    assert d.plan() == [StartContainer("i2", 0)]
    assert statuses(d)["side"]["started"] is True


def test_a_sidecar_is_restarted_even_under_never_and_outlives_app_restarts() -> None:
    d = Driver(init_pod("Never", sidecar()))
    sandbox(d)
    d.start("side")
    assert d.plan() == [StartContainer("app", 0)]
    d.start("app")
    d.plan()
    d.exit("side", 1, "Error")
    assert d.plan() == [StartContainer("side", 1)]
    d.start("side", "cid-side-1")
    d.plan()
    assert statuses(d)["side"]["restartCount"] == 1 and d.status["phase"] == "Running"


def test_sidecars_stop_once_the_app_is_done_and_the_pod_succeeds() -> None:
    d = Driver(init_pod("Never", sidecar(), {"name": "side2", "image": "busybox", "restartPolicy": "Always"}))
    sandbox(d)
    d.start("side")
    d.plan()
    d.start("side2")
    d.plan()
    d.start("app")
    d.plan()
    d.exit("app")
    effects = d.plan()
    assert KillContainers(("side2", "side"), 30.0) in effects  # the last sidecar first
    assert d.status["phase"] == "Running"
    d.exit("side2", 143, "Error")
    d.exit("side", 143, "Error")
    effects = d.plan()
    assert not any(isinstance(e, StartContainer) for e in effects)  # not restarted any more
    assert d.status["phase"] == "Succeeded"


def test_a_deleted_pod_stops_its_app_containers_before_its_sidecars() -> None:
    d = Driver(init_pod("Always", sidecar(), terminationGracePeriodSeconds=10))
    sandbox(d)
    d.start("side")
    d.plan()
    d.start("app")
    d.plan()
    deleting = {**d.pod, "metadata": {**d.pod["metadata"], "deletionTimestamp": NOW, "deletionGracePeriodSeconds": 10}}
    d.observe(PodUpdated(deleting))
    assert d.plan() == [KillContainers(("app",), 10.0)]
    d.now = 3.0
    d.exit("app", 143, "Error")
    assert d.plan() == [KillContainers(("side",), 7.0)]  # what is left of the grace period
    d.exit("side", 143, "Error")
    assert [type(e).__name__ for e in d.plan()] == ["DeletePod", "ReleaseSandbox"]


# --------------------------------------------------------------------------- probes


def test_a_startup_probe_holds_started_and_ready_until_it_passes() -> None:
    p = pod()
    p["spec"]["containers"][0]["startupProbe"] = {"exec": {"command": ["true"]}}
    d = Driver(p)
    d.running()
    shown = d.status["containerStatuses"][0]
    assert shown["started"] is False and shown["ready"] is False
    d.observe(ProbeResult("app", True, "Startup"))
    d.plan()
    shown = d.status["containerStatuses"][0]
    assert shown["started"] is True and shown["ready"] is True


def test_every_failed_probe_run_is_an_unhealthy_event() -> None:
    d = Driver()
    d.running()
    for _ in range(3):
        d.observe(ProbeFailed("app", "Readiness", 'HTTP probe failed with statuscode: 500'))
    assert [e.message for e in d.events if e.reason == "Unhealthy"] == [
        "Readiness probe failed: HTTP probe failed with statuscode: 500"] * 3


def test_a_probes_own_grace_period_is_used_for_its_kill() -> None:
    p = pod(terminationGracePeriodSeconds=30)
    p["spec"]["containers"][0]["livenessProbe"] = {"exec": {"command": ["x"]}, "terminationGracePeriodSeconds": 4}
    d = Driver(p)
    d.running()
    assert d.observe(ProbeResult("app", False, "Liveness", "x")) == [KillContainers(("app",), 4.0)]


# --------------------------------------------------------------------------- the node failing a pod


def test_active_deadline_fails_the_pod_and_stops_its_containers() -> None:
    d = Driver(pod(activeDeadlineSeconds=5, terminationGracePeriodSeconds=3))
    assert d.plan() == [SetUpSandbox(), WakeAt(5.0)]
    d.observe(SandboxReady(("10.244.0.5",)))
    assert d.plan() == [StartContainer("app", 0), WakeAt(5.0)]
    d.start()
    assert d.plan() == [WakeAt(5.0)]
    d.now = 5.0
    effects = d.plan()
    assert KillContainers(("app",), 3.0) in effects
    assert RecordEvent("Warning", "DeadlineExceeded", DEADLINE_MESSAGE) in d.events
    failed = d.status
    assert (failed["phase"], failed["reason"], failed["message"]) == ("Failed", "DeadlineExceeded", DEADLINE_MESSAGE)
    assert condition(failed, "Ready")["reason"] == "PodFailed"
    d.exit("app", 143, "Error")
    effects = d.plan()
    assert ReleaseSandbox() in effects and not any(isinstance(e, StartContainer) for e in effects)
    assert d.status["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 143


def test_a_deadline_patched_on_a_running_pod_counts_from_its_start() -> None:
    d = Driver()
    d.running()
    d.now = 20.0
    d.observe(PodUpdated({**d.pod, "spec": {**d.pod["spec"], "activeDeadlineSeconds": 10}}))
    assert any(isinstance(e, KillContainers) for e in d.plan())
    assert d.status["reason"] == "DeadlineExceeded"


def test_an_eviction_fails_the_pod_with_its_message_and_a_disruption_condition() -> None:
    d = Driver()
    d.running()
    message = "The node was low on resource: memory. "
    d.observe(PodEvicted(message, grace=0))
    assert d.events[-1] == RecordEvent("Warning", "Evicted", message)
    assert KillContainers(("app",), 2.0) in d.plan()  # a hard eviction: the minimum grace
    evicted = d.status
    assert (evicted["phase"], evicted["reason"], evicted["message"]) == ("Failed", "Evicted", message)
    target = condition(evicted, "DisruptionTarget")
    assert (target["status"], target["reason"], target["message"]) == ("True", "TerminationByKubelet", message)
    d.exit("app", 137, "Error")
    d.plan()
    assert d.status["phase"] == "Failed" and condition(d.status, "DisruptionTarget")["status"] == "True"
    assert d.observe(PodEvicted("again")) == []  # evicted once


def test_a_recovered_pod_keeps_its_init_progress_and_its_deadline_clock() -> None:
    d = Driver(init_pod("Always", activeDeadlineSeconds=60))
    sandbox(d)
    d.start("i1")
    d.plan()
    d.exit("i1")
    assert StartContainer("i2", 0) in d.plan()
    status = {**d.status, "startTime": NOW}
    again = Driver(init_pod("Always", activeDeadlineSeconds=60))
    again.m.recover(status, now=100.0, now_text="2026-12-02T10:00:30Z", sandbox_ready=True)
    again.now = 100.0
    effects = again.plan()
    assert StartContainer("i2", 0) in effects
    assert WakeAt(130.0) in effects  # 30 s of the 60 were spent before the restart


# --------------------------------------------------------------------------- random lives

STEPS = st.sampled_from(["start", "exit0:i1", "exit1:i1", "exit1:side", "exit0:app", "exit1:app", "tick",
                         "startup", "evict", "delete"])


@settings(max_examples=200, deadline=None)
@given(policy=st.sampled_from(["Always", "OnFailure", "Never"]), steps=st.lists(STEPS, max_size=40))
def test_random_lives_with_init_containers_keep_the_rules(policy: str, steps: list[str]) -> None:
    """Whatever happens: the app starts only after i1 succeeded and the sidecar started, a
    terminal phase is kept, nothing starts once the pod failed, restart counts never go down."""
    p = init_pod(policy, {"name": "i1", "image": "busybox"},
                 sidecar(startupProbe={"exec": {"command": ["true"]}}), activeDeadlineSeconds=30)
    d = Driver(p, backoff_initial=1, backoff_max=4)
    pending: list[StartContainer] = []
    i1_done = side_started = False
    counts: dict[str, int] = {}
    phases: list[str] = []
    for step in steps:
        effects: list[Any] = []
        if step == "start" and pending:
            due = pending.pop(0)
            effects = d.observe(ContainerStarted(due.container, f"{due.container}-{due.instance}", NOW))
        elif step.startswith("exit"):
            code, name = step[4], step.split(":")[1]
            rec = d.m.container(name)
            if rec is not None and rec.alive:
                i1_done = i1_done or (name == "i1" and code == "0")
                effects = d.exit(name, int(code), "Completed" if code == "0" else "Error")
        elif step == "startup":
            effects = d.observe(ProbeResult("side", True, "Startup"))
            side_started = side_started or bool(d.m.container("side") and d.m.container("side").alive)  # type: ignore[union-attr]
        elif step == "tick":
            d.now += 7
        elif step == "evict":
            effects = d.observe(PodEvicted("low on memory"))
        elif step == "delete":
            effects = d.observe(PodUpdated({**d.pod, "metadata": {**d.pod["metadata"], "deletionTimestamp": NOW}}))
        effects += d.plan()
        failed_before = bool(phases) and phases[-1] == "Failed"
        for e in effects:
            if isinstance(e, SetUpSandbox):
                d.observe(SandboxReady(("10.244.0.9",)))
            elif isinstance(e, StartContainer):
                assert not failed_before, f"{e} after the pod failed"
                if e.container == "app":
                    assert i1_done and side_started, "the app started before the pod was initialized"
                pending.append(e)
            elif isinstance(e, KillContainers):
                for name in e.containers:
                    if (rec := d.m.container(name)) is not None and rec.alive:
                        d.exit(name, 137, "Error")
        for written in d.written[len(phases):]:
            phases.append(written["phase"])
            for c in written.get("initContainerStatuses", []) + written["containerStatuses"]:
                assert c["restartCount"] >= counts.get(c["name"], 0)
                counts[c["name"]] = c["restartCount"]
        if d.m.deleted:
            assert d.plan() == []
    for before, after in zip(phases, phases[1:]):
        if before in ("Succeeded", "Failed"):
            assert after == before


def test_an_init_containers_image_pull_error_turns_into_back_off() -> None:
    d = Driver(init_pod("Always", {"name": "i1", "image": "nope"}))
    sandbox(d)
    d.observe(ImagePullFailed("i1", "not found", shown_for=1.0))
    d.plan()
    d.now = 2.0
    assert d.plan() != [WakeAt(1.0)]
    assert statuses(d)["i1"]["state"]["waiting"]["reason"] == "ImagePullBackOff"
