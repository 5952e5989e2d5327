"""Tests for simulator stages: the file format, selection, delays, each action through the API, fixtures.

The example stage files in ``podlife/sim/stages/`` come with fixtures (KWOK style):
``testdata/<name>.input.yaml`` is a pod, ``testdata/<name>.output.yaml`` the statuses
the simulator writes for it, in order, with times, container IDs and the uid
normalised. Durations of the stage file are scaled by 1/100 for the test (so a 10 s
back-off shows as 100ms). ``PODLIFE_UPDATE_FIXTURES=1`` rewrites the outputs.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from podlife.api.local_client import LocalClient
from podlife.client.base import EVENTS, NODES, PODS, Obj
from podlife.sim.stages import (
    CRASH,
    Delay,
    Next,
    Requirement,
    Selector,
    Stage,
    StageError,
    StageSet,
    Timers,
    load_stages,
    parse_duration,
    parse_path,
    parse_stages,
)

from .test_sim import (
    NS,
    PORT_ANNOTATION,
    pod_manifest,
    port_annotation,
    Recorder,
    assert_heartbeats_stopped,
    condition,
    container,
    pod_where,
    run_pod,
    running,
    simulator,
    state_keys,
    state_of,
)
from .cluster_harness import async_wait_for
from .test_stage_format import parse_error
from .in_process import InProcessApi

STAGES_DIR = Path(__file__).resolve().parent.parent / "podlife" / "sim" / "stages"
TESTDATA = STAGES_DIR / "testdata"
SCALE = 0.01
HEADER = "apiVersion: sim.podlife.io/v1alpha1\nkind: Stage\n"


@pytest.fixture
def client(local_api: InProcessApi) -> LocalClient:
    return local_api.client


def one_stage(spec: str, name: str = "s") -> str:
    return HEADER + f"metadata: {{name: {name}}}\nspec:\n" + "".join(f"  {line}\n" for line in spec.strip().splitlines())


def scaled(stages: StageSet, factor: float = SCALE) -> StageSet:
    """The same stages with every duration multiplied by ``factor`` (for fast tests)."""
    out = []
    for s in stages.stages:
        delay = replace(s.delay, duration=s.delay.duration * factor, jitter=s.delay.jitter * factor)
        times = {k: getattr(s.next, k) * factor for k in ("backoff", "max_backoff", "pull_duration")
                 if getattr(s.next, k) is not None}
        out.append(replace(s, delay=delay, next=replace(s.next, **times)))
    return StageSet(out, source=stages.source, seed=1)


# --------------------------------------------------------------------------- format


def test_default_stages_load() -> None:
    stages = load_stages()
    assert stages.source == "default-stages.yaml"
    assert {s.action for s in stages.stages} >= {"create", "run", "complete", "delete", "crash", "oom", "unready",
                                                  "image-pull-error"}


@pytest.mark.parametrize("path", sorted(STAGES_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_example_stage_files_load(path: Path) -> None:
    assert len(load_stages(path)) >= 1


def test_stage_fields_are_parsed() -> None:
    stages = parse_stages(one_stage("""
resourceRef: {kind: Pod}
selector:
  matchLabels: {app: web}
  matchAnnotations: {team: a}
  matchExpressions:
  - {key: .spec.restartPolicy, operator: In, values: [Always]}
  - {key: tier, operator: NotIn, values: [db]}
delay: {duration: 1m30s, jitter: 500ms, durationFrom: {annotation: example.com/delay}}
next: {action: crash, exitCode: 3, reason: Boom, message: bad, container: app, backoff: 5s, maxBackoff: 1m}
"""))
    (s,) = stages.stages
    assert s.name == "s" and s.resource == "Pod" and s.action == CRASH
    assert s.selector.match_labels == {"app": "web"} and s.selector.match_annotations == {"team": "a"}
    assert s.selector.expressions[0].path == ("spec", "restartPolicy") and s.selector.expressions[1].path == ()
    assert s.delay == Delay(90.0, 0.5, "example.com/delay")
    assert (s.next.exit_code, s.next.reason, s.next.message, s.next.container) == (3, "Boom", "bad", "app")
    assert (s.next.backoff, s.next.max_backoff) == (5.0, 60.0)


def test_stage_list_and_multiple_documents() -> None:
    text = """
apiVersion: sim.podlife.io/v1alpha1
kind: StageList
items:
- metadata: {name: a}
  spec: {next: {action: run}}
- metadata: {name: b}
  spec: {resourceRef: {kind: Node}, next: {action: heartbeat-stop}}
---
""" + one_stage("next: {action: unready}", "c")
    stages = parse_stages(text)
    assert [(s.name, s.resource) for s in stages.stages] == [("a", "Pod"), ("b", "Node"), ("c", "Pod")]


@pytest.mark.parametrize(("text", "message"), [
    ("kind: Stage\n: [", "not valid YAML"),
    ("- a\n- b\n", "document 1: a stage must be a mapping"),
    ("apiVersion: sim.podlife.io/v1alpha1\nkind: Pod\n", 'document 1: kind: must be Stage or StageList'),
    ("apiVersion: kwok.x-k8s.io/v1alpha1\nkind: Stage\nmetadata: {name: x}\n", "KWOK stages"),
    (HEADER + "spec: {next: {action: run}}\n", "metadata.name: required"),
    (one_stage("next: {action: explode}"), "spec.next.action: unknown action 'explode'"),
    (one_stage("next: {exitCode: 1}"), "spec.next.action: required"),
    (one_stage("resourceRef: {kind: Node}\nnext: {action: crash}"), "applies to Pods, but spec.resourceRef.kind is Node"),
    (one_stage("resourceRef: {kind: Service}\nnext: {action: run}"), "spec.resourceRef.kind: must be Pod or Node"),
    (one_stage("delay: {duration: 5 seconds}\nnext: {action: run}"), 'spec.delay.duration: invalid duration \'5 seconds\''),
    (one_stage("delay: {duration: -1}\nnext: {action: run}"), "must not be negative"),
    (one_stage("delay: {durations: 5s}\nnext: {action: run}"), 'spec.delay: unknown field "durations"'),
    (one_stage("next: {action: crash, exitcode: 2}"), 'spec.next: unknown field "exitcode" (known: action, exitCode'),
    (one_stage("next: {action: crash, exitCode: 0}"), "use action: complete"),
    (one_stage("next: {action: crash, exitCode: 300}"), "spec.next.exitCode: must be an integer from 0 to 255"),
    (one_stage("next: {action: run, exitCode: 1}"), 'spec.next: unknown field "exitCode" (known: action)'),
    (one_stage("next: {action: crash, backoff: 10s, maxBackoff: 1s}"), "maxBackoff: must not be less than"),
    (one_stage("selector: {matchExpressions: [{key: a, operator: Has}]}\nnext: {action: run}"),
     "spec.selector.matchExpressions[0].operator: must be one of In, NotIn, Exists, DoesNotExist"),
    (one_stage("selector: {matchExpressions: [{key: a, operator: In}]}\nnext: {action: run}"),
     "matchExpressions[0].values: required for operator In"),
    (one_stage("selector: {matchExpressions: [{key: '.spec.[x', operator: Exists}]}\nnext: {action: run}"),
     "matchExpressions[0].key: invalid path"),
    (one_stage("selector: {matchLabels: {a: [1]}}\nnext: {action: run}"), "spec.selector.matchLabels.a"),
    (one_stage("next: {action: run}", "a") + "---\n" + one_stage("next: {action: run}", "a"), 'duplicate stage name "a"'),
])
def test_stage_file_errors_are_clear(text: str, message: str) -> None:
    with pytest.raises(StageError) as err:
        parse_stages(text, "bad.yaml")
    assert str(err.value).startswith("bad.yaml: ")
    assert message in str(err.value)


def test_errors_name_the_document_the_item_and_the_stage() -> None:
    text = one_stage("next: {action: run}", "fine") + "---\n" + """
apiVersion: sim.podlife.io/v1alpha1
kind: StageList
items:
- metadata: {name: ok}
  spec: {next: {action: run}}
- metadata: {name: broken}
  spec: {delay: {jitter: soon}, next: {action: run}}
"""
    with pytest.raises(StageError, match=r'^x\.yaml: document 2, items\[1\] \(stage "broken"\): spec\.delay\.jitter: '
                                         r"invalid duration 'soon'"):
        parse_stages(text, "x.yaml")


def test_missing_stage_file(tmp_path: Path) -> None:
    with pytest.raises(StageError, match="cannot read the stage file"):
        load_stages(tmp_path / "nope.yaml")


@pytest.mark.parametrize(("text", "seconds"), [
    ("500ms", 0.5), ("2s", 2.0), ("1m", 60.0), ("1m30s", 90.0), ("1.5h", 5400.0), ("250us", 0.00025),
    ("3", 3.0), (4, 4.0), (0.25, 0.25), ("0s", 0.0),
])
def test_durations(text: Any, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "5 s", "1d", "-1s", "1s2", True, None, [1]])
def test_bad_durations(text: Any) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_paths() -> None:
    assert parse_path('.metadata.annotations["a.b/c"]') == ("metadata", "annotations", "a.b/c")
    assert parse_path(".spec.containers[0].image") == ("spec", "containers", 0, "image")
    assert parse_path(".metadata.labels['x']") == ("metadata", "labels", "x")
    for bad in ("spec", ".", ".a[", ".a..b"):
        with pytest.raises(ValueError):
            parse_path(bad)


def test_selectors() -> None:
    pod = {"metadata": {"labels": {"app": "web"}, "annotations": {"a/b": "1"}},
           "spec": {"restartPolicy": "Never", "hostNetwork": True, "containers": [{"image": "x"}]}}

    def req(key: str, op: str, *values: str) -> Requirement:
        return Requirement(key, op, values, parse_path(key) if key.startswith(".") else ())

    assert Selector().matches(pod)
    assert Selector({"app": "web"}, {"a/b": "1"}).matches(pod)
    assert not Selector({"app": "db"}).matches(pod)
    assert not Selector(match_annotations={"a/b": "2"}).matches(pod)
    assert Selector(expressions=(req(".spec.restartPolicy", "In", "Never", "OnFailure"),)).matches(pod)
    assert Selector(expressions=(req(".spec.hostNetwork", "In", "true"),)).matches(pod)
    assert Selector(expressions=(req(".spec.containers[0].image", "NotIn", "y"),)).matches(pod)
    assert Selector(expressions=(req("app", "In", "web"), req("tier", "DoesNotExist"))).matches(pod)
    assert not Selector(expressions=(req(".spec.nodeName", "Exists"),)).matches(pod)
    assert Selector(expressions=(req(".spec.nodeName", "NotIn", "a"),)).matches(pod)


def test_first_matching_stage_of_an_action_wins_and_delays_draw_jitter() -> None:
    stages = parse_stages(one_stage("""
selector: {matchLabels: {app: web}}
delay: {duration: 1s, jitter: 2s}
next: {action: crash}
""", "web") + "---\n" + one_stage("delay: {duration: 5s}\nnext: {action: crash}", "any"), seed=7)
    web = {"metadata": {"labels": {"app": "web"}}}
    delays = [stages.first(CRASH, web) for _ in range(50)]
    assert {m.stage.name for m in delays if m} == {"web"}
    assert all(1.0 <= m.delay <= 2.0 for m in delays if m) and len({m.delay for m in delays if m}) > 1
    other = stages.first(CRASH, {"metadata": {}})
    assert other is not None and other.stage.name == "any" and other.delay == 5.0
    assert stages.first("oom", web) is None


def test_duration_from_an_annotation() -> None:
    stages = parse_stages(one_stage("delay: {duration: 3s, durationFrom: {annotation: d}}\nnext: {action: complete}"))
    from_annotation = stages.first("complete", {"metadata": {"annotations": {"d": "250ms"}}})
    fixed = stages.first("complete", {"metadata": {}})  # absent: the fixed duration
    assert from_annotation is not None and from_annotation.delay == 0.25
    assert fixed is not None and fixed.delay == 3.0
    assert stages.first("complete", {"metadata": {"annotations": {"d": "later"}}}) is None  # invalid: stage skipped
    jittered = Delay(1.0, 2.0).seconds({}, random.Random(1))
    assert jittered is not None and 1.0 <= jittered <= 2.0


def test_jitter_is_the_upper_bound_of_the_delay() -> None:
    rng = random.Random(3)
    draws = [Delay(1.0, 4.0).seconds({}, rng) for _ in range(200)]
    assert all(d is not None and 1.0 <= d <= 4.0 for d in draws) and max(d for d in draws if d) > 3.5
    below = Delay(5.0, 2.0)  # a jitter under the duration adds nothing, as in KWOK
    assert below.fixed and below.seconds({}, rng) == 5.0


def test_weighted_stages_of_one_action_are_drawn_by_weight() -> None:
    stages = parse_stages(
        one_stage("weight: 1\nnext: {action: crash, exitCode: 2}", "rare") + "---\n"
        + one_stage("weight: 3\nnext: {action: crash, exitCode: 1}", "common") + "---\n"
        + one_stage("next: {action: crash, exitCode: 3}", "unweighted"), seed=11)
    names = [m.stage.name for m in (stages.first(CRASH, {"metadata": {}}) for _ in range(2000)) if m]
    assert len(names) == 2000 and set(names) == {"rare", "common"}  # an unweighted stage is never drawn
    assert 0.2 < names.count("rare") / 2000 < 0.3
    only_unweighted = parse_stages(one_stage("selector: {matchLabels: {a: b}}\nweight: 5\nnext: {action: crash}", "w")
                                   + "---\n" + one_stage("next: {action: crash}", "first"))
    picked = only_unweighted.first(CRASH, {"metadata": {}})  # the weighted one does not select it
    assert picked is not None and picked.stage.name == "first"


def test_a_weight_must_be_a_whole_number() -> None:
    with pytest.raises(StageError, match=r"spec\.weight: must be a whole number, 0 or more, not -1"):
        parse_stages(one_stage("weight: -1\nnext: {action: crash}", "bad"), "w.yaml")


def test_first_answers_as_the_selectors_do() -> None:
    """first() skips stages whose required labels/annotations are absent and reuses fixed matches: a shortcut,
    so its answers must be exactly those of trying every selector in file order."""
    def req(key: str, op: str, *values: str) -> Requirement:
        return Requirement(key, op, values, parse_path(key) if key.startswith(".") else ())

    ann = '.metadata.annotations["k"]'
    selectors = [
        Selector({"app": "web"}), Selector(match_annotations={"k": "1"}),
        Selector(expressions=(req(ann, "In", "1", "2"),)), Selector(expressions=(req(ann, "Exists"),)),
        Selector(expressions=(req(ann, "NotIn", "1"),)), Selector(expressions=(req(ann, "DoesNotExist"),)),
        Selector(expressions=(req("app", "In", "web"), req(".spec.restartPolicy", "In", "Never"))),
        Selector(expressions=(req(".metadata.labels['app']", "Exists"), req(ann, "NotIn", "2"))), Selector(),
    ]
    objects: list[Obj] = [{}, {"metadata": None}, {"metadata": {"labels": None, "annotations": {"k": None}}}]
    for app in (None, "web", "db"):
        for k in (None, "1", "2"):
            for policy in (None, "Never"):
                meta = {"labels": {"app": app} if app else {}, "annotations": {"k": k} if k else {}}
                objects.append({"metadata": meta, "spec": {"restartPolicy": policy} if policy else {}})
    for start in range(len(selectors)):
        chosen = selectors[start:] + selectors[:start]
        stages = StageSet([Stage(f"s{i}", "Pod", sel, Delay(float(i)), Next(CRASH)) for i, sel in enumerate(chosen)])
        for obj in objects:
            want = next((s for s in stages.stages if s.selector.matches(obj)), None)
            got = stages.first(CRASH, obj)
            assert (got.stage if got else None) == want, (chosen, obj)
            assert got is None or got.delay == want.delay.duration  # type: ignore[union-attr]
    fixed = StageSet([Stage("a", "Pod", Selector(), Delay(2.0), Next(CRASH))])
    assert fixed.first(CRASH, {}) is fixed.first(CRASH, {"metadata": {}})  # one Match for every object


async def test_timers_fire_in_order_and_once() -> None:
    timers, fired = Timers(), list[str]()
    done = asyncio.Event()
    for delay, label in ((0.03, "c"), (0.0, "a"), (0.01, "b")):
        timers.call_later(delay, fired.append, label)
    timers.call_later(0.05, done.set)
    await asyncio.wait_for(done.wait(), 2)
    assert fired == ["a", "b", "c"] and len(timers) == 0
    timers.call_later(10, fired.append, "never")
    timers.close()
    assert len(timers) == 0


# --------------------------------------------------------------------------- each action, through the API


async def test_crash_loop_back_off_with_growing_restart_count(client: LocalClient) -> None:
    stages = parse_stages(one_stage("""
selector: {matchLabels: {app: crashy}}
delay: {duration: 30ms}
next: {action: crash, exitCode: 3, backoff: 50ms, maxBackoff: 200ms}
"""))
    async with simulator(client, stages=stages):
        async with Recorder(client, "crashy") as rec:
            await run_pod(client, "crashy", labels={"app": "crashy"})
            await rec.until(lambda s: s and s[-1]["containerStatuses"][0]["restartCount"] >= 3, timeout=10,
                            what="three restarts")
        written = rec.written()
        kinds = [state_of(s) for s in written]
        # The first restart is immediate (the crash shows as terminated); a crash that
        # must wait out the back-off shows CrashLoopBackOff at once, as on the kubelet.
        assert kinds[:5] == [("waiting", "ContainerCreating"), ("running", ""),
                             ("terminated", "Error"), ("running", ""), ("waiting", "CrashLoopBackOff")]
        backoff = next(s for s in written if state_of(s) == ("waiting", "CrashLoopBackOff"))
        cs = backoff["containerStatuses"][0]
        assert cs["state"]["waiting"]["message"].startswith("back-off 50ms restarting failed container=c pod=crashy_default(")
        assert cs["lastState"]["terminated"]["exitCode"] == 3 and cs["lastState"]["terminated"]["reason"] == "Error"
        assert backoff["phase"] == "Running" and cs["ready"] is False
        counts = [s["containerStatuses"][0]["restartCount"] for s in written]
        assert counts == sorted(counts) and counts[-1] >= 3
        messages = [s["containerStatuses"][0]["state"]["waiting"]["message"] for s in written
                    if state_of(s) == ("waiting", "CrashLoopBackOff")]
        assert [m.split()[1] for m in messages[:2]] == ["50ms", "100ms"]  # the back-off doubles


async def test_crash_with_restart_policy_never_fails_the_pod(client: LocalClient) -> None:
    stages = parse_stages(one_stage("delay: {duration: 10ms}\nnext: {action: crash}"))
    async with simulator(client, stages=stages):
        await run_pod(client, "once", restart_policy="Never")
        pod = await pod_where(client, "once", lambda p: p["status"]["phase"] == "Failed", what="Failed")
        assert container(pod)["state"]["terminated"]["exitCode"] == 1 and container(pod)["restartCount"] == 0
        assert condition(pod, "Ready")["reason"] == "PodFailed"


async def test_oom_killed(client: LocalClient) -> None:
    stages = parse_stages(one_stage("selector: {matchLabels: {mem: hog}}\ndelay: {duration: 10ms}\nnext: {action: oom}"))
    async with simulator(client, stages=stages):
        await run_pod(client, "hog", labels={"mem": "hog"}, restart_policy="Never")
        await run_pod(client, "hog2", labels={"mem": "hog"})
        pod = await pod_where(client, "hog", lambda p: p["status"]["phase"] == "Failed", what="Failed")
        term = container(pod)["state"]["terminated"]
        assert term["reason"] == "OOMKilled" and term["exitCode"] == 137
        pod = await pod_where(client, "hog2", lambda p: container(p)["restartCount"] >= 1, what="restart")
        assert container(pod)["lastState"]["terminated"]["reason"] == "OOMKilled"


async def test_image_pull_error_then_back_off_never_runs(client: LocalClient) -> None:
    stages = parse_stages(one_stage("""
selector: {matchExpressions: [{key: '.spec.containers[0].image', operator: In, values: [nope:1]}]}
next: {action: image-pull-error, pullDuration: 20ms, backoff: 30ms}
"""))
    async with simulator(client, stages=stages):
        async with Recorder(client, "nopull") as rec:
            await run_pod(client, "nopull", image="nope:1")
            await rec.until(lambda s: [state_of(x)[1] for x in s].count("ErrImagePull") >= 3, what="three pulls")
        written = rec.written()
        reasons = [state_of(s)[1] for s in written]
        assert reasons[:6] == ["ContainerCreating", "ContainerCreating", "ErrImagePull", "ImagePullBackOff",
                               "ErrImagePull", "ImagePullBackOff"]
        assert all(s["phase"] == "Pending" for s in written)
        assert all(s["containerStatuses"][0]["ready"] is False and s["containerStatuses"][0]["restartCount"] == 0
                   for s in written)
        assert "podIP" in written[-1]
        assert written[3]["containerStatuses"][0]["state"]["waiting"]["message"] == 'Back-off pulling image "nope:1"'


async def test_readiness_turns_false_and_the_pod_keeps_running(client: LocalClient) -> None:
    stages = parse_stages(one_stage("delay: {duration: 20ms}\nnext: {action: unready}"))
    async with simulator(client, stages=stages):
        await run_pod(client, "sad")
        pod = await pod_where(client, "sad", lambda p: running(p) and container(p)["ready"] is False, what="unready")
        assert condition(pod, "Ready")["status"] == "False" and condition(pod, "Ready")["reason"] == "ContainersNotReady"
        assert condition(pod, "ContainersReady")["status"] == "False"
        assert container(pod)["started"] is True and container(pod)["restartCount"] == 0


async def test_a_patch_stage_opens_a_readiness_gate_and_records_its_event(client: LocalClient) -> None:
    stages = parse_stages(one_stage("""
delay: {duration: 20ms}
next:
  action: patch
  statusPatch: {conditions: [{type: example.com/gate, status: "True"}]}
  event: {type: Normal, reason: GateOpened, message: the gate is open}
"""))
    async with simulator(client, stages=stages):
        manifest = pod_manifest("gated")
        manifest["spec"]["readinessGates"] = [{"conditionType": "example.com/gate"}]
        manifest["metadata"]["annotations"][PORT_ANNOTATION] = port_annotation("10.244.0.10")
        await client.create(PODS, manifest)
        await client.create_subresource(PODS, "gated", "binding", {"target": {"name": "sim-node-0"}}, NS)
        pod = await pod_where(client, "gated", lambda p: running(p) and condition(p, "Ready")["status"] == "True",
                              what="Ready once the gate is open")
        assert condition(pod, "example.com/gate")["status"] == "True"
        assert condition(pod, "example.com/gate")["lastTransitionTime"]
        assert container(pod)["ready"] is True and pod["status"]["phase"] == "Running"

        async def gate_event() -> bool:
            events = (await client.list(EVENTS, NS))["items"]
            return any(e["reason"] == "GateOpened" and e["involvedObject"]["name"] == "gated"
                       and e["message"] == "the gate is open" for e in events)

        await async_wait_for(gate_event, what="the stage's event")


async def test_only_the_named_container_crashes(client: LocalClient) -> None:
    stages = parse_stages(one_stage("delay: {duration: 10ms}\nnext: {action: crash, container: c1}"))
    async with simulator(client, stages=stages):
        await run_pod(client, "two", containers=2, restart_policy="Never")
        pod = await pod_where(client, "two", lambda p: "terminated" in state_keys(p, 1), what="c1 crashed")
        assert pod["status"]["phase"] == "Running" and "running" in state_keys(pod, 0)


async def test_create_and_run_delays_hold_the_steps(client: LocalClient) -> None:
    stages = parse_stages(one_stage("delay: {duration: 50ms}\nnext: {action: create}", "c") + "---\n"
                          + one_stage("delay: {duration: 50ms}\nnext: {action: run}", "r"))
    async with simulator(client, stages=stages) as sim:
        async with Recorder(client, "slow") as rec:
            await run_pod(client, "slow")
            await rec.until(lambda s: s and s[-1]["phase"] == "Running", what="Running")
        assert [s["phase"] for s in rec.written()] == ["Pending", "Pending", "Running"]
        assert len(sim.timers) == 0


async def test_heartbeat_stop_stage(client: LocalClient) -> None:
    stages = parse_stages(one_stage("""
resourceRef: {kind: Node}
selector: {matchExpressions: [{key: .metadata.name, operator: In, values: [sim-node-1]}]}
delay: {duration: 50ms}
next: {action: heartbeat-stop}
"""))
    async with simulator(client, 2, stages=stages) as sim:
        await async_wait_for(lambda: not sim.pool.nodes["sim-node-1"].beating, what="stage stopped the node")
        assert sim.pool.nodes["sim-node-0"].beating
        await assert_heartbeats_stopped(client, "sim-node-1", "sim-node-0")
        # chaos brings it back
        await client.patch(NODES, "sim-node-1", {"metadata": {"annotations": {"podlife.io/chaos": "heartbeat-start"}}})
        await async_wait_for(lambda: sim.pool.nodes["sim-node-1"].beating, what="resumed")



async def test_node_pressure_stage_sets_the_condition_and_its_taint(client: LocalClient) -> None:
    stages = parse_stages(one_stage("""
resourceRef: {kind: Node}
selector: {matchExpressions: [{key: .metadata.name, operator: In, values: [sim-node-1]}]}
delay: {duration: 50ms}
next: {action: node-pressure, condition: DiskPressure}
"""))
    async with simulator(client, 2, stages=stages):
        async def tainted() -> Obj | None:
            node = await client.get(NODES, "sim-node-1")
            taints = (node.get("spec") or {}).get("taints") or []
            return node if any(t.get("key") == "node.kubernetes.io/disk-pressure" for t in taints) else None

        node = await async_wait_for(tainted, what="the disk-pressure taint")
        conditions = {c["type"]: c for c in node["status"]["conditions"]}
        assert (conditions["DiskPressure"]["status"], conditions["DiskPressure"]["reason"]) == (
            "True", "KubeletHasDiskPressure")
        assert conditions["MemoryPressure"]["status"] == "False" and conditions["Ready"]["status"] == "True"
        other = await client.get(NODES, "sim-node-0")
        assert not (other.get("spec") or {}).get("taints")


def test_a_node_pressure_stage_names_its_condition() -> None:
    bad = parse_error(one_stage("resourceRef: {kind: Node}\nnext: {action: node-pressure, condition: Hungry}"))
    assert "spec.next.condition: required for action node-pressure: one of MemoryPressure, DiskPressure, " \
           "PIDPressure, not 'Hungry'" in bad


# --------------------------------------------------------------------------- fixtures

_TIME = re.compile(r'"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"')
_CONTAINER_ID = re.compile(r"podlife-sim://[0-9a-f]{64}")


def normalise(status: Obj, uid: str) -> Obj:
    text = json.dumps(status, sort_keys=True)
    text = _TIME.sub('"<Now>"', text)
    text = _CONTAINER_ID.sub("podlife-sim://<ContainerID>", text)
    return json.loads(text.replace(uid, "<UID>"))


FIXTURES = sorted(p.name.removesuffix(".input.yaml") for p in TESTDATA.glob("*.input.yaml"))


@pytest.mark.parametrize("name", FIXTURES)
async def test_fixture(client: LocalClient, name: str) -> None:
    """The example stage file ``name``.yaml turns ``name``.input.yaml into the statuses of ``name``.output.yaml."""
    case = yaml.safe_load((TESTDATA / f"{name}.input.yaml").read_text())
    pod: Obj = case["pod"]
    out_path = TESTDATA / f"{name}.output.yaml"
    expected = yaml.safe_load(out_path.read_text()) if out_path.exists() else None
    count = case["writes"]
    stages = scaled(load_stages(STAGES_DIR / case["stages"]))
    async with simulator(client, 1, stages=stages, restart_backoff=10 * SCALE,
                                          max_restart_backoff=300 * SCALE) as sim:
        created = await client.create(PODS, pod)
        async with Recorder(client, pod["metadata"]["name"]) as rec:
            await client.create_subresource(PODS, created["metadata"]["name"], "binding",
                                            {"target": {"name": sim.node_names[0]}}, NS)
            if case.get("deleteAfter"):
                await rec.until(lambda s: len(s) >= case["deleteAfter"], what="writes before the deletion")
                await client.delete(PODS, created["metadata"]["name"], NS)
            await rec.until(lambda s: len(s) >= count, timeout=10, what=f"{count} status writes")
        got = [normalise(s, created["metadata"]["uid"]) for s in rec.written()[:count]]
    if os.environ.get("PODLIFE_UPDATE_FIXTURES"):
        header = (f"# Statuses written for {name}.input.yaml by ../{case['stages']} (durations x{SCALE}),\n"
                  f"# in order; times, container IDs and the pod uid normalised. Checked by tests/test_sim_stages.py.\n")
        out_path.write_text(header + yaml.safe_dump({"statuses": got}, sort_keys=False, width=120))
        return
    assert expected is not None, f"{out_path.name} is missing: run with PODLIFE_UPDATE_FIXTURES=1 to write it"
    assert got == expected["statuses"]
