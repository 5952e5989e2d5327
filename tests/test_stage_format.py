"""The stage file format's selection over status and its declared effects: pure parsing and matching, no server.

``Gt``/``Lt`` expressions over ``.status`` paths, ``[name=...]`` path steps, ``next.event``
and the ``patch`` action with its ``statusPatch``. The simulator's use of them is tested
where the simulator is (``tests/test_sim_stages.py``).
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import yaml

from podlife.sim.stages import (
    ACTION_PARAMS,
    ACTIONS,
    COMPLETE,
    CRASH,
    PATCH,
    POD_EFFECT_PARAMS,
    USAGE,
    Delay,
    ListKey,
    Next,
    Requirement,
    Selector,
    Stage,
    StageError,
    StageEvent,
    StageSet,
    apply_status_patch,
    as_integer,
    load_stages,
    lookup,
    parse_path,
    parse_stages,
    thaw,
)

STAGES_DIR = Path(__file__).resolve().parent.parent / "podlife" / "sim" / "stages"
HEADER = "apiVersion: sim.podlife.io/v1alpha1\nkind: Stage\n"
RESTARTS = ".status.containerStatuses[0].restartCount"


def one_stage(spec: str, name: str = "s") -> str:
    return HEADER + f"metadata: {{name: {name}}}\nspec:\n" + "".join(f"  {line}\n" for line in spec.strip().splitlines())


def req(key: str, op: str, *values: str) -> Requirement:
    return Requirement(key, op, values, parse_path(key) if key.startswith(".") else ())


def pod_with(restarts: Any = None, *, exit_code: Any = None, containers: list[dict[str, Any]] | None = None) -> dict:
    """A pod as the API shows it, with one container status carrying ``restarts`` and the last exit code."""
    if containers is None:
        cs: dict[str, Any] = {"name": "app"}
        if restarts is not None:
            cs["restartCount"] = restarts
        if exit_code is not None:
            cs["lastState"] = {"terminated": {"exitCode": exit_code, "reason": "Error"}}
        containers = [cs]
    return {"metadata": {"name": "p", "labels": {"podlife.io/sim-fault": "flaky"}},
            "status": {"containerStatuses": containers}}


def parse_error(text: str) -> str:
    with pytest.raises(StageError) as err:
        parse_stages(text, "bad.yaml")
    message = str(err.value)
    assert message.startswith('bad.yaml: document 1 (stage "s"): '), message
    return message


# --------------------------------------------------------------------------- Gt / Lt


@pytest.mark.parametrize(("value", "gt1", "lt1"), [
    (0, False, True), (1, False, False), (2, True, False), (100, True, False), (-3, False, True),
    ("2", True, False), ("0", False, True), ("+2", True, False), ("-1", False, True),
])
def test_gt_and_lt_compare_integers(value: Any, gt1: bool, lt1: bool) -> None:
    pod = pod_with(value)
    assert req(RESTARTS, "Gt", "1").matches(pod) is gt1
    assert req(RESTARTS, "Lt", "1").matches(pod) is lt1


@pytest.mark.parametrize("value", [None, "two", "1.5", 1.5, 2.0, True, False, " 2", "1_000", "", [2], {"a": 2}])
def test_gt_and_lt_do_not_match_a_missing_or_non_integer_value(value: Any) -> None:
    pod = pod_with(value)
    assert not req(RESTARTS, "Gt", "-100").matches(pod)
    assert not req(RESTARTS, "Lt", "100").matches(pod)


def test_as_integer_is_as_strict_as_parse_int() -> None:
    assert [as_integer(v) for v in (3, "3", "-3", "+3", "007")] == [3, 3, -3, 3, 7]
    assert [as_integer(v) for v in (True, 3.0, "3.0", "3 ", "0x10", "1e3", None)] == [None] * 7


def test_gt_on_a_label_and_on_the_last_exit_code() -> None:
    labelled = {"metadata": {"labels": {"tier": "3"}}}
    assert req("tier", "Gt", "2").matches(labelled) and not req("tier", "Lt", "3").matches(labelled)
    assert not req("tier", "Gt", "2").matches({"metadata": {}})
    failed = req(".status.containerStatuses[0].lastState.terminated.exitCode", "Gt", "0")
    assert failed.matches(pod_with(1, exit_code=2))
    assert not failed.matches(pod_with(1, exit_code=0)) and not failed.matches(pod_with(0))


def test_gt_and_lt_parse_from_a_file() -> None:
    stages = parse_stages(one_stage(f"""
selector:
  matchExpressions:
  - {{key: '{RESTARTS}', operator: Gt, values: [1]}}
  - {{key: '{RESTARTS}', operator: Lt, values: ["5"]}}
next: {{action: complete}}
"""))
    (gt, lt) = stages.stages[0].selector.expressions
    assert (gt.operator, gt.values, gt.bound) == ("Gt", ("1",), 1)
    assert (lt.operator, lt.values, lt.bound) == ("Lt", ("5",), 5)
    assert [stages.first(COMPLETE, pod_with(n)) is not None for n in range(7)] == [False, False, True, True, True,
                                                                                   False, False]


@pytest.mark.parametrize(("values", "message"), [
    ("", "matchExpressions[0].values: operator Gt takes exactly one value, an integer (e.g. [1]), not []"),
    ("values: []", "matchExpressions[0].values: operator Gt takes exactly one value"),
    ("values: [1, 2]", "matchExpressions[0].values: operator Gt takes exactly one value, an integer (e.g. [1]), "
                       "not [1, 2]"),
    ("values: [two]", "matchExpressions[0].values[0]: operator Gt compares integers: must be an integer, not 'two'"),
    ("values: [1.5]", "matchExpressions[0].values[0]: operator Gt compares integers: must be an integer, not 1.5"),
    ("values: [true]", "matchExpressions[0].values[0]: operator Gt compares integers: must be an integer, not True"),
    ("values: ['1 ']", "matchExpressions[0].values[0]: operator Gt compares integers"),
])
def test_bad_gt_values_name_the_field(values: str, message: str) -> None:
    spec = f"selector: {{matchExpressions: [{{key: a, operator: Gt{', ' + values if values else ''}}}]}}\nnext: {{action: run}}"
    assert "spec.selector." + message in parse_error(one_stage(spec))


def test_bad_lt_value_names_the_operator() -> None:
    text = one_stage("selector: {matchExpressions: [{key: a, operator: Lt, values: [x]}]}\nnext: {action: run}")
    assert "spec.selector.matchExpressions[0].values[0]: operator Lt compares integers" in parse_error(text)


def test_unknown_operator_lists_gt_and_lt() -> None:
    text = one_stage("selector: {matchExpressions: [{key: a, operator: Ge, values: [1]}]}\nnext: {action: run}")
    assert "operator: must be one of In, NotIn, Exists, DoesNotExist, Gt, Lt, not 'Ge'" in parse_error(text)


def test_a_requirement_built_in_code_checks_its_integer() -> None:
    with pytest.raises(ValueError, match="exactly one integer value"):
        Requirement("a", "Gt", ("x",))
    with pytest.raises(ValueError, match="exactly one integer value"):
        Requirement("a", "Lt", ())


def test_first_skips_gt_stages_on_a_missing_label_as_the_selector_would() -> None:
    """Gt/Lt join In/Exists among the operators first() may skip on one dict lookup: a missing value never matches."""
    ann = '.metadata.annotations["n"]'
    selectors = [Selector(expressions=(req(ann, "Gt", "1"),)), Selector(expressions=(req("n", "Lt", "5"),)), Selector()]
    stages = StageSet([Stage(f"s{i}", "Pod", sel, Delay(float(i)), Next(CRASH)) for i, sel in enumerate(selectors)])
    for meta in ({}, {"labels": {"n": "3"}}, {"annotations": {"n": "3"}}, {"annotations": {"n": "x"}},
                 {"labels": {"n": "9"}, "annotations": {"n": "0"}}):
        obj = {"metadata": meta}
        want = next(s for s in stages.stages if s.selector.matches(obj))
        got = stages.first(CRASH, obj)
        assert got is not None and got.stage == want, meta


# --------------------------------------------------------------------------- [name=...] path steps


def test_paths_pick_list_elements_by_a_field() -> None:
    assert parse_path(".status.containerStatuses[name=app].restartCount") == (
        "status", "containerStatuses", ListKey("name", "app"), "restartCount")
    assert parse_path('.status.conditions[ type = "example.com/gate" ].status') == (
        "status", "conditions", ListKey("type", "example.com/gate"), "status")
    assert parse_path(".spec.readinessGates[conditionType=example.com/gate]") == (
        "spec", "readinessGates", ListKey("conditionType", "example.com/gate"))
    assert str(ListKey("name", "app")) == "[name=app]"
    for bad in (".a[name=]", ".a[=x]", ".a[name=a b]", ".a[name=x"):
        with pytest.raises(ValueError, match="invalid path"):
            parse_path(bad)


def test_lookup_by_name_finds_the_named_container_wherever_it_is() -> None:
    pod = pod_with(containers=[{"name": "sidecar", "restartCount": 0}, {"name": "app", "restartCount": 4}])
    assert lookup(pod, parse_path(".status.containerStatuses[name=app].restartCount")) == 4
    assert lookup(pod, parse_path(".status.containerStatuses[name=sidecar].restartCount")) == 0
    assert lookup(pod, parse_path(".status.containerStatuses[name=nope].restartCount")) is None
    assert lookup({"status": {"containerStatuses": {"name": "app"}}}, parse_path(".status.containerStatuses[name=app]")) is None
    assert lookup({"status": {"containerStatuses": ["app", None, {"name": "app"}]}},
                  parse_path(".status.containerStatuses[name=app].name")) == "app"
    assert req(".status.containerStatuses[name=app].restartCount", "Gt", "3").matches(pod)
    assert not req(".status.containerStatuses[name=sidecar].restartCount", "Gt", "3").matches(pod)
    assert req(".status.containerStatuses[name=nope].restartCount", "DoesNotExist").matches(pod)


def test_a_name_path_in_a_stage_file() -> None:
    stages = parse_stages(one_stage("""
selector: {matchExpressions: [{key: '.status.containerStatuses[name=app].restartCount', operator: Gt, values: [0]}]}
next: {action: crash}
"""))
    two = [{"name": "sidecar", "restartCount": 5}, {"name": "app", "restartCount": 0}]
    assert stages.first(CRASH, pod_with(containers=two)) is None
    two[1]["restartCount"] = 1
    assert stages.first(CRASH, pod_with(containers=two)) is not None


# --------------------------------------------------------------------------- next.event


@pytest.mark.parametrize("action", [a for a, kind in ACTIONS.items() if kind == "Pod" and a != USAGE])
def test_every_pod_action_takes_an_event(action: str) -> None:
    extra = "statusPatch: {message: x}, " if action == PATCH else ""
    stages = parse_stages(one_stage(
        f"next: {{action: {action}, {extra}event: {{type: Warning, reason: Simulated, message: it happened}}}}"))
    assert stages.stages[0].next.event == StageEvent("Warning", "Simulated", "it happened")


def test_an_event_message_is_optional_and_no_event_is_none() -> None:
    stages = parse_stages(one_stage("next: {action: run, event: {type: Normal, reason: Started}}", "a") + "---\n"
                          + one_stage("next: {action: run}", "b"))
    assert stages.stages[0].next.event == StageEvent("Normal", "Started", "")
    assert stages.stages[1].next.event is None


@pytest.mark.parametrize(("event", "message"), [
    ("{reason: X}", "spec.next.event.type: must be one of Normal, Warning, not None"),
    ("{type: Error, reason: X}", "spec.next.event.type: must be one of Normal, Warning, not 'Error'"),
    ("{type: normal, reason: X}", "spec.next.event.type: must be one of Normal, Warning, not 'normal'"),
    ("{type: Normal}", "spec.next.event.reason: required"),
    ("{type: Normal, reason: ''}", "spec.next.event.reason: required"),
    ("{type: Normal, reason: 7}", "spec.next.event.reason: required"),
    ("{type: Normal, reason: two words}", "spec.next.event.reason: must be one word of at most 128 characters"),
    ("{type: Normal, reason: " + "R" * 129 + "}", "spec.next.event.reason: must be one word of at most 128"),
    ("{type: Normal, reason: X, message: [a]}", "spec.next.event.message: must be a string"),
    ("{type: Normal, reason: X, note: y}", 'spec.next.event: unknown field "note" (known: type, reason, message)'),
    ("Warning", "spec.next.event: must be a mapping, not str"),
])
def test_bad_events_name_the_field(event: str, message: str) -> None:
    assert message in parse_error(one_stage(f"next: {{action: crash, event: {event}}}"))


def test_node_actions_take_no_event() -> None:
    text = one_stage("resourceRef: {kind: Node}\nnext: {action: heartbeat-stop, event: {type: Normal, reason: X}}")
    assert "spec.next.event: only Pod actions record events; heartbeat-stop is a Node action" in parse_error(text)


def test_unknown_fields_list_the_action_fields_then_the_common_ones() -> None:
    assert ('spec.next: unknown field "exitCode" (known: action); every Pod action also takes event'
            in parse_error(one_stage("next: {action: run, exitCode: 1}")))
    assert ('unknown field "events" (known: action, exitCode, reason, message, container, backoff, maxBackoff); '
            'every Pod action also takes event' in parse_error(one_stage("next: {action: crash, events: {}}")))
    node = parse_error(one_stage("resourceRef: {kind: Node}\nnext: {action: heartbeat-stop, x: 1}"))
    assert node.endswith('spec.next: unknown field "x" (known: action)')


# --------------------------------------------------------------------------- patch / statusPatch


GATE_PATCH = """
next:
  action: patch
  statusPatch:
    conditions:
    - {type: example.com/gate, status: "True", reason: Simulated}
    message: gate open
  event: {type: Normal, reason: GateOpened}
"""


def test_patch_parses_into_a_read_only_status_patch() -> None:
    (stage,) = parse_stages(one_stage(GATE_PATCH)).stages
    nxt = stage.next
    assert stage.action == PATCH and ACTIONS[PATCH] == "Pod" and ACTION_PARAMS[PATCH] == ("statusPatch",)
    assert nxt.event == StageEvent("Normal", "GateOpened", "")
    assert isinstance(nxt.status_patch, MappingProxyType)
    assert thaw(nxt.status_patch) == {"conditions": [{"type": "example.com/gate", "status": "True",
                                                      "reason": "Simulated"}], "message": "gate open"}
    with pytest.raises(TypeError):
        nxt.status_patch["message"] = "changed"  # type: ignore[index]
    conditions = nxt.status_patch["conditions"]
    assert isinstance(conditions, tuple) and isinstance(conditions[0], MappingProxyType)
    assert hash(nxt) == hash(nxt)  # a Next stays hashable with its patch
    assert Next(CRASH).status_patch is None and POD_EFFECT_PARAMS == ("event",)


def test_patch_stages_are_looked_up_like_any_action() -> None:
    stages = parse_stages(one_stage("""
selector: {matchExpressions: [{key: '.spec.readinessGates[conditionType=example.com/gate]', operator: Exists}]}
delay: {duration: 3s}
next: {action: patch, statusPatch: {conditions: [{type: example.com/gate, status: "True"}]}}
"""))
    gated = {"spec": {"readinessGates": [{"conditionType": "example.com/gate"}]}}
    match = stages.first(PATCH, gated)
    assert match is not None and match.delay == 3.0
    assert stages.first(PATCH, {"spec": {}}) is None and stages.has(PATCH)


@pytest.mark.parametrize("action", [a for a, kind in ACTIONS.items() if kind == "Pod" and a != PATCH])
def test_status_patch_is_refused_on_other_actions(action: str) -> None:
    text = one_stage(f"next: {{action: {action}, statusPatch: {{message: x}}}}")
    assert f"spec.next.statusPatch: only action patch takes a status patch, not {action}" in parse_error(text)


def test_patch_requires_a_status_patch() -> None:
    assert "spec.next.statusPatch: required for action patch" in parse_error(one_stage("next: {action: patch}"))
    text = one_stage("next: {action: patch, event: {type: Normal, reason: X}}")
    assert "spec.next.statusPatch: required for action patch" in parse_error(text)


@pytest.mark.parametrize(("patch", "message"), [
    ("{}", "spec.next.statusPatch: must be a non-empty mapping"),
    ("null", "spec.next.statusPatch: must be a non-empty mapping"),
    ("[a]", "spec.next.statusPatch: must be a non-empty mapping"),
    ("{phase: Failed}", "spec.next.statusPatch.phase: phase is written by the node from its lifecycle facts"),
    ("{containerStatuses: []}", "spec.next.statusPatch.containerStatuses: containerStatuses is written by the node"),
    ("{podIP: 10.0.0.1}", "spec.next.statusPatch.podIP: podIP is written by the node"),
    ("{conditions: {type: a}}", "spec.next.statusPatch.conditions: must be a list of conditions"),
    ("{conditions: [x]}", "spec.next.statusPatch.conditions[0]: must be a mapping, not str"),
    ("{conditions: [{status: 'True'}]}", "spec.next.statusPatch.conditions[0].type: required"),
    ("{conditions: [{type: Ready, status: 'True'}]}",
     "spec.next.statusPatch.conditions[0].type: Ready is the node's own condition"),
    ("{conditions: [{type: ContainersReady, status: 'True'}]}", "ContainersReady is the node's own condition"),
    ("{conditions: [{type: g}]}", "spec.next.statusPatch.conditions[0].status: must be \"True\", \"False\" or "
                                  "\"Unknown\", not None"),
    ("{conditions: [{type: g, status: True}]}", "not True (quote it: YAML reads True and False as booleans)"),
    ("{conditions: [{type: g, status: 'yes'}]}", "conditions[0].status: must be \"True\", \"False\" or \"Unknown\""),
    ("{conditions: [{type: g, status: 'True', colour: red}]}", 'conditions[0]: unknown field "colour"'),
    ("{conditions: [{type: g, status: 'True', reason: 5}]}", "conditions[0].reason: must be a string"),
    ("{conditions: [{type: g, status: 'True'}, {type: g, status: 'False'}]}",
     "conditions[1].type: condition g is listed twice"),
    ("{1: x}", "spec.next.statusPatch: keys must be strings, not 1"),
    ("{resize: {when: 2024-01-01}}", "spec.next.statusPatch.resize.when: must be a JSON value (quote it)"),
])
def test_bad_status_patches_name_the_field(patch: str, message: str) -> None:
    assert message in parse_error(one_stage(f"next: {{action: patch, statusPatch: {patch}}}"))


def test_apply_status_patch_merges_and_keys_conditions_by_type() -> None:
    status: dict[str, Any] = {"phase": "Running", "message": "old", "reason": "R", "nested": {"a": 1, "b": 2},
              "conditions": [{"type": "example.com/gate", "status": "False", "lastTransitionTime": "T0"},
                             {"type": "Ready", "status": "False", "lastTransitionTime": "T0"}]}
    (stage,) = parse_stages(one_stage("""
next:
  action: patch
  statusPatch:
    message: new
    reason: null
    nested: {b: null, c: 3}
    conditions:
    - {type: example.com/gate, status: "True"}
    - {type: example.com/other, status: "False", lastTransitionTime: "T9"}
""")).stages
    assert stage.next.status_patch is not None
    out = apply_status_patch(status, stage.next.status_patch, "NOW")
    assert out == {"phase": "Running", "message": "new", "nested": {"a": 1, "c": 3},
                   "conditions": [{"type": "example.com/gate", "status": "True", "lastTransitionTime": "NOW"},
                                  {"type": "Ready", "status": "False", "lastTransitionTime": "T0"},
                                  {"type": "example.com/other", "status": "False", "lastTransitionTime": "T9"}]}
    assert status["nested"] == {"a": 1, "b": 2} and status["message"] == "old"  # the input is left alone
    assert status["conditions"][0]["status"] == "False"
    again = apply_status_patch(out, stage.next.status_patch, "LATER")  # same status: the transition time stays
    assert again["conditions"][0]["lastTransitionTime"] == "NOW"
    out["conditions"][0]["status"] = "changed"
    assert stage.next.status_patch["conditions"][0]["status"] == "True"  # the result shares nothing with the stage


def test_apply_status_patch_to_a_status_without_conditions() -> None:
    patch = {"conditions": ({"type": "g", "status": "True"},)}
    assert apply_status_patch({}, patch, "NOW") == {"conditions": [{"type": "g", "status": "True",
                                                                    "lastTransitionTime": "NOW"}]}


def test_the_documented_gate_example_parses() -> None:
    """The readiness-gate stage of docs/simulated-nodes.md."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "simulated-nodes.md").read_text()
    start = text.index("  name: gate-opens\n")
    block = text[text.rindex("```yaml\n", 0, start) + len("```yaml\n"):text.index("```\n", start)]
    (stage,) = parse_stages(block, "docs").stages
    assert stage.action == PATCH and stage.next.event == StageEvent("Normal", "GateOpened", "example.com/gate is True")


# --------------------------------------------------------------------------- the example file


def test_restart_then_complete_example_crashes_twice_then_completes() -> None:
    """Each run's stages are chosen from the pod as its containers start: restartCount 0, 1, 2, ..."""
    stages = load_stages(STAGES_DIR / "restart-then-complete.yaml")
    assert [(s.name, s.action) for s in stages.stages] == [("flaky-complete", COMPLETE), ("flaky-crash", CRASH)]
    for restarts, ends in ((0, CRASH), (1, CRASH), (2, COMPLETE), (3, COMPLETE)):
        pod = pod_with(restarts)
        crash, complete = stages.first(CRASH, pod), stages.first(COMPLETE, pod)
        armed = {a for a, m in ((CRASH, crash), (COMPLETE, complete)) if m is not None}
        assert armed == {ends}, restarts  # never both armed: no race between the two actions
    crash = stages.first(CRASH, pod_with(0))
    assert crash is not None and (crash.stage.next.exit_code, crash.delay) == (1, 1.0)
    unlabelled = pod_with(0)
    unlabelled["metadata"]["labels"] = {}
    assert stages.first(CRASH, unlabelled) is None and stages.first(COMPLETE, pod_with(5) | {"metadata": {}}) is None


def test_restart_then_complete_has_its_input_fixture() -> None:
    case = yaml.safe_load((STAGES_DIR / "testdata" / "restart-then-complete.input.yaml").read_text())
    assert case["stages"] == "restart-then-complete.yaml" and case["writes"] == 7
    pod = case["pod"]
    assert pod["spec"]["restartPolicy"] == "OnFailure"
    assert pod["metadata"]["labels"] == {"podlife.io/sim-fault": "flaky"}
