"""Scheduler configuration: the plugin registry, the default profile, ``KubeSchedulerConfiguration``
files (parsing, defaults, Kubernetes' validation messages), and ``podlife up --scheduler-config``
end to end with kubectl."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podlife.scheduler import (
    DEFAULT_PLUGINS,
    REGISTRY,
    Profile,
    Scheduler,
    SchedulerConfigError,
    default_profile,
    load_config,
    new_plugin,
    parse_config,
    profiles_from_file,
)
from podlife.scheduler.node_resources import NodeResourcesFit
from podlife.scheduler.plugins import FilterPlugin, PostFilterPlugin, ScorePlugin
from podlife.scheduler.registry import BUILT_IN

from .cluster_harness import PodlifeProcess, require_tool, running_podlife, wait_for

HEADER = "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n"
DEFAULT_FILTERS = ("NodeUnschedulable", "NodeName", "NodeReady", "TaintToleration", "NodeAffinity", "NodePorts",
                   "NodeResourcesFit", "VolumeBinding", "PodTopologySpread", "InterPodAffinity")
DEFAULT_SCORES = (("TaintToleration", 3), ("NodeAffinity", 2), ("NodeResourcesFit", 1), ("PodTopologySpread", 2),
                  ("InterPodAffinity", 2), ("NodeResourcesBalancedAllocation", 1), ("ImageLocality", 1))


def config(body: str = "") -> Any:
    return parse_config(HEADER + textwrap.dedent(body))


def errors_of(body: str, *, header: bool = True) -> list[str]:
    with pytest.raises(SchedulerConfigError) as info:
        parse_config((HEADER if header else "") + textwrap.dedent(body))
    return info.value.errors


# ---- the registry and the default profile ------------------------------------------------------


def test_registry_has_every_default_plugin_by_its_kubernetes_name() -> None:
    names = [spec.name for spec in DEFAULT_PLUGINS]
    assert names == ["SchedulingGates", "PrioritySort", "NodeUnschedulable", "NodeName", "NodeReady", "TaintToleration", "NodeAffinity",
                     "NodePorts", "NodeResourcesFit", "VolumeBinding", "PodTopologySpread", "InterPodAffinity",
                     "DefaultPreemption", "NodeResourcesBalancedAllocation", "ImageLocality", "DefaultBinder"]
    weights = {spec.name: spec.weight for spec in DEFAULT_PLUGINS if spec.weight}
    assert weights == dict(DEFAULT_SCORES)
    for name in names:
        assert name in REGISTRY
        if name in BUILT_IN:
            with pytest.raises(ValueError, match="built into the scheduler"):
                new_plugin(name)
            continue
        plugin = new_plugin(name)
        assert plugin.name == name
        assert new_plugin(name) is not plugin  # a new instance each time


def test_default_profile_has_every_plugin_once_at_each_point_it_extends() -> None:
    profile = Profile()
    assert profile.scheduler_name == "default-scheduler"
    assert [f.name for f in profile.filters] == [n for n in DEFAULT_FILTERS if n != "VolumeBinding"]
    assert [(s.name, s.weight) for s in profile.scores] == list(DEFAULT_SCORES)
    assert [p.name for p in profile.post_filters] == ["DefaultPreemption"]
    fit = next(f for f in profile.filters if f.name == "NodeResourcesFit")
    assert next(s for s in profile.scores if s.name == "NodeResourcesFit") is fit  # one instance, two points
    for plugin in profile.plugins():
        assert (plugin in profile.scores) == isinstance(plugin, ScorePlugin)
        assert (plugin in profile.filters) == isinstance(plugin, FilterPlugin)
        assert (plugin in profile.post_filters) == isinstance(plugin, PostFilterPlugin)
    assert default_profile("other").scheduler_name == "other"
    assert default_profile().plugins()[0] is not profile.plugins()[0]  # fresh instances per profile


def test_a_hand_made_filter_chain_gets_the_default_scores_sharing_its_instances() -> None:
    fit = NodeResourcesFit()
    profile = Profile("x", [fit])
    assert [f.name for f in profile.filters] == ["NodeResourcesFit"]
    assert [(s.name, s.weight) for s in profile.scores] == list(DEFAULT_SCORES)
    assert next(s for s in profile.scores if s.name == "NodeResourcesFit") is fit
    assert profile.post_filters == []


def test_scheduler_without_arguments_runs_the_default_profile() -> None:
    sched = Scheduler(None)  # type: ignore[arg-type]
    profile = sched.profiles["default-scheduler"]
    assert [f.name for f in profile.filters] == [n for n in DEFAULT_FILTERS if n != "VolumeBinding"]
    assert [s.name for s in sched.scores] == [n for n, _ in DEFAULT_SCORES]


# ---- parsing and defaults ------------------------------------------------------------------------


def test_an_empty_configuration_is_the_default_profile() -> None:
    cfg = config()
    assert [p.scheduler_name for p in cfg.profiles] == ["default-scheduler"]
    (profile,) = cfg.profiles
    assert profile.filters == DEFAULT_FILTERS
    assert profile.scores == DEFAULT_SCORES
    assert profile.post_filters == ("DefaultPreemption",)
    assert (cfg.percentage_of_nodes_to_score, cfg.pod_initial_backoff_seconds, cfg.pod_max_backoff_seconds,
            cfg.parallelism, cfg.bind_timeout_seconds) == (0, 1, 10, 16, 600)
    built = cfg.build_profiles()[0]
    assert [(s.name, s.weight) for s in built.scores] == list(DEFAULT_SCORES)
    assert "VolumeBinding" not in [f.name for f in built.filters]


def test_a_single_profile_without_a_name_is_the_default_scheduler() -> None:
    cfg = config("profiles:\n- percentageOfNodesToScore: 30\n")
    assert cfg.profiles[0].scheduler_name == "default-scheduler"
    assert cfg.profiles[0].percentage_of_nodes_to_score == 30


def test_disabling_a_score_plugin_keeps_its_filter() -> None:
    cfg = config("""
        profiles:
        - schedulerName: default-scheduler
          plugins:
            score:
              disabled: [{name: ImageLocality}, {name: TaintToleration}]
            filter:
              disabled: [{name: NodePorts}]
    """)
    (profile,) = cfg.profiles
    assert [n for n, _ in profile.scores] == ["NodeAffinity", "NodeResourcesFit", "PodTopologySpread",
                                              "InterPodAffinity", "NodeResourcesBalancedAllocation"]
    assert "TaintToleration" in profile.filters and "NodePorts" not in profile.filters


def test_a_score_entry_overrides_the_default_weight_and_runs_first() -> None:
    (profile,) = config("""
        profiles:
        - plugins:
            score:
              enabled: [{name: ImageLocality, weight: 5}]
    """).profiles
    assert profile.scores[0] == ("ImageLocality", 5)
    assert dict(profile.scores) == {**dict(DEFAULT_SCORES), "ImageLocality": 5}


def test_multi_point_weight_replaces_the_default_in_place() -> None:
    (profile,) = config("""
        profiles:
        - plugins:
            multiPoint:
              enabled: [{name: ImageLocality, weight: 7}, {name: NodeResourcesFit}]
    """).profiles
    assert profile.scores == tuple((n, 7 if n == "ImageLocality" else 1 if n == "NodeResourcesFit" else w)
                                   for n, w in DEFAULT_SCORES)  # an unset weight is 1


def test_disabling_everything_and_enabling_a_few() -> None:
    (profile,) = config("""
        profiles:
        - plugins:
            multiPoint:
              enabled: [{name: PrioritySort}, {name: NodeName}, {name: NodeResourcesFit, weight: 4}, {name: DefaultBinder}]
              disabled: [{name: "*"}]
    """).profiles
    assert profile.filters == ("NodeName", "NodeResourcesFit")
    assert profile.scores == (("NodeResourcesFit", 4),)
    assert profile.post_filters == ()
    built = profile.build()
    assert [f.name for f in built.filters] == ["NodeName", "NodeResourcesFit"]
    assert built.scores[0] is built.filters[1] and built.scores[0].weight == 4


def test_score_star_disabled_leaves_only_the_enabled_scores() -> None:
    (profile,) = config("""
        profiles:
        - plugins:
            score:
              disabled: [{name: "*"}]
              enabled: [{name: NodeResourcesBalancedAllocation, weight: 2}]
    """).profiles
    assert profile.scores == (("NodeResourcesBalancedAllocation", 2),)
    assert profile.filters == DEFAULT_FILTERS


def test_two_profiles_and_their_args() -> None:
    cfg = config("""
        percentageOfNodesToScore: 40
        podInitialBackoffSeconds: 2
        podMaxBackoffSeconds: 20
        profiles:
        - schedulerName: default-scheduler
        - schedulerName: packer
          percentageOfNodesToScore: 100
          pluginConfig:
          - name: NodeResourcesFit
            args:
              apiVersion: kubescheduler.config.k8s.io/v1
              kind: NodeResourcesFitArgs
              scoringStrategy:
                type: MostAllocated
                resources: [{name: cpu, weight: 3}, {name: memory}]
          - name: InterPodAffinity
            args: {hardPodAffinityWeight: 5}
          - name: DefaultPreemption
            args: {minCandidateNodesPercentage: 20}
          - name: PodTopologySpread
            args:
              defaultingType: List
              defaultConstraints: [{maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: ScheduleAnyway}]
    """)
    assert [p.scheduler_name for p in cfg.profiles] == ["default-scheduler", "packer"]
    packer = cfg.profiles[1]
    assert packer.args["NodeResourcesFit"] == {"scoringStrategy": {
        "type": "MostAllocated", "resources": [{"name": "cpu", "weight": 3}, {"name": "memory", "weight": 1}]}}
    assert packer.args["DefaultPreemption"] == {"minCandidateNodesPercentage": 20, "minCandidateNodesAbsolute": 100}
    options = cfg.scheduler_options()
    sched = Scheduler(None, **options)  # type: ignore[arg-type]
    assert list(sched.profiles) == ["default-scheduler", "packer"]
    assert sched.percentage_of_nodes_to_score == 40
    assert (sched.queue.initial_backoff, sched.queue.max_backoff) == (2.0, 20.0)
    built = sched.profiles["packer"]
    assert built.percentage_of_nodes_to_score == 100
    plugins = {p.name: p for p in built.plugins()}
    fit = plugins["NodeResourcesFit"]
    assert isinstance(fit, NodeResourcesFit)
    assert (fit.strategy, fit.resources, fit.weight) == ("MostAllocated", (("cpu", 3), ("memory", 1)), 1)
    assert plugins["InterPodAffinity"].hard_pod_affinity_weight == 5
    assert plugins["DefaultPreemption"].min_candidate_nodes_percentage == 20
    assert plugins["PodTopologySpread"].defaulting_type == "List"
    assert plugins["PodTopologySpread"].default_constraints == [
        {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"}]
    # the other profile has its own, default instances
    other = {p.name: p for p in sched.profiles["default-scheduler"].plugins()}
    assert other["InterPodAffinity"] is not plugins["InterPodAffinity"]
    assert other["InterPodAffinity"].hard_pod_affinity_weight == 1


def test_requested_to_capacity_ratio_shape_reaches_the_plugin() -> None:
    (profile,) = config("""
        profiles:
        - pluginConfig:
          - name: NodeResourcesFit
            args:
              scoringStrategy:
                type: RequestedToCapacityRatio
                resources: [{name: cpu}]
                requestedToCapacityRatio:
                  shape: [{utilization: 0, score: 0}, {utilization: 100, score: 10}]
    """).profiles
    fit = profile.build().plugin("NodeResourcesFit")
    assert isinstance(fit, NodeResourcesFit)
    assert (fit.strategy, fit.resources, fit.shape) == ("RequestedToCapacityRatio", (("cpu", 1),), ((0, 0), (100, 10)))


def test_json_and_files(tmp_path: Path) -> None:
    doc = {"apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "KubeSchedulerConfiguration",
           "profiles": [{"schedulerName": "a"}, {"schedulerName": "b"}],
           "leaderElection": {"leaderElect": False}, "clientConnection": {"qps": 50, "burst": 100}}
    path = tmp_path / "sched.json"
    path.write_text(json.dumps(doc))
    assert [p.scheduler_name for p in load_config(path).profiles] == ["a", "b"]
    assert [p.scheduler_name for p in profiles_from_file(path)] == ["a", "b"]
    assert [p.scheduler_name for p in parse_config(doc).profiles] == ["a", "b"]
    with pytest.raises(SchedulerConfigError, match="failed to read config file") as info:
        load_config(tmp_path / "missing.yaml")
    assert str(tmp_path / "missing.yaml") in str(info.value)


def test_volume_binding_timeout_is_passed_to_the_scheduler() -> None:
    cfg = config("profiles:\n- pluginConfig:\n  - name: VolumeBinding\n    args: {bindTimeoutSeconds: 30}\n")
    assert cfg.bind_timeout_seconds == 30
    assert cfg.scheduler_options()["bind_timeout"] == 30.0


# ---- validation: every problem, with Kubernetes' message --------------------------------------------------

BAD: list[tuple[str, str, str]] = [
    ("unknown-top-level-field", "percentageOfNodeToScore: 50\n",
     'strict decoding error: unknown field "percentageOfNodeToScore"'),
    ("unknown-nested-field", "profiles:\n- plugins:\n    scores: {}\n",
     'strict decoding error: unknown field "profiles[0].plugins.scores"'),
    ("string-for-int", "parallelism: '16'\n", 'parallelism: Invalid value: "16": cannot unmarshal string into an int32'),
    ("fractional-weight", "profiles:\n- plugins:\n    score:\n      enabled: [{name: ImageLocality, weight: 1.5}]\n",
     "profiles[0].plugins.score.enabled[0].weight: Invalid value: 1.5: cannot unmarshal number into an int32"),
    ("weight-beyond-int32", "profiles:\n- plugins:\n    score:\n      enabled: [{name: ImageLocality, weight: 3000000000}]\n",
     "profiles[0].plugins.score.enabled[0].weight: Invalid value: 3000000000: does not fit in an int32"),
    ("duplicate-yaml-key", "parallelism: 4\nparallelism: 5\n", 'key "parallelism" already set in map'),
    ("parallelism", "parallelism: 0\n", "parallelism: Invalid value: 0: should be an integer value greater than zero"),
    ("percentage", "percentageOfNodesToScore: 101\n",
     "percentageOfNodesToScore: Invalid value: 101: not in valid range [0-100]"),
    ("profile-percentage", "profiles:\n- percentageOfNodesToScore: -1\n",
     "profiles[0].percentageOfNodesToScore: Invalid value: -1: not in valid range [0-100]"),
    ("initial-backoff", "podInitialBackoffSeconds: 0\n", "podInitialBackoffSeconds: Invalid value: 0: must be greater than 0"),
    ("max-backoff", "podInitialBackoffSeconds: 5\npodMaxBackoffSeconds: 2\n",
     "podMaxBackoffSeconds: Invalid value: 2: must be greater than or equal to PodInitialBackoffSeconds"),
    ("duplicate-name", "profiles:\n- schedulerName: x\n- schedulerName: x\n", 'profiles[1].schedulerName: Duplicate value: "x"'),
    ("missing-name", "profiles:\n- schedulerName: x\n- percentageOfNodesToScore: 5\n",
     "profiles[1].schedulerName: Required value"),
    ("unknown-score-plugin", "profiles:\n- plugins:\n    score:\n      enabled: [{name: NodeResourcesFitt}]\n",
     'profiles[0].plugins.score.enabled[0].name: Invalid value: "NodeResourcesFitt": '
     'ScorePlugin "NodeResourcesFitt" does not exist'),
    ("unknown-multipoint-plugin", "profiles:\n- plugins:\n    multiPoint:\n      enabled: [{name: Coscheduling}]\n",
     'profiles[0].plugins.multiPoint.enabled[0].name: Invalid value: "Coscheduling": plugin "Coscheduling" does not exist'),
    ("wrong-point", "profiles:\n- plugins:\n    filter:\n      enabled: [{name: ImageLocality}]\n",
     'profiles[0].plugins.filter.enabled[0]: plugin "ImageLocality" does not extend FilterPlugin plugin'),
    ("twice-at-a-point", "profiles:\n- plugins:\n    score:\n      enabled: [{name: ImageLocality}, {name: ImageLocality}]\n",
     'profiles[0].plugins.score.enabled[1]: plugin "ImageLocality" already registered as "ScorePlugin"'),
    ("no-queue-sort", "profiles:\n- plugins:\n    queueSort:\n      disabled: [{name: '*'}]\n",
     'profiles[0]: profile with scheduler name "default-scheduler": only one queue sort plugin required, but got 0'),
    ("no-binder", "profiles:\n- plugins:\n    bind:\n      disabled: [{name: DefaultBinder}]\n",
     'profiles[0]: profile with scheduler name "default-scheduler": at least one bind plugin is needed'),
    ("queue-sort-differs", "profiles:\n- schedulerName: a\n- schedulerName: b\n  plugins:\n    queueSort:\n"
     "      disabled: [{name: '*'}]\n      enabled: [{name: PrioritySort}]\n",
     "profiles[1].plugins.queueSort: Invalid value: "),
    ("two-queue-sorts", "profiles:\n- plugins:\n    queueSort:\n      enabled: [{name: PrioritySort}, {name: PrioritySort}]\n",
     "profiles[0].plugins.queueSort.Enabled: Invalid value: 2: only one queue sort plugin can be enabled"),
    ("duplicate-plugin-config", "profiles:\n- pluginConfig:\n  - name: InterPodAffinity\n  - name: InterPodAffinity\n",
     'profiles[0].pluginConfig[1]: Duplicate value: "InterPodAffinity"'),
    ("plugin-config-unknown-plugin", "profiles:\n- pluginConfig:\n  - name: Foo\n    args: {}\n",
     'profiles[0].pluginConfig[0].name: Invalid value: "Foo": plugin "Foo" does not exist'),
    ("args-kind-mismatch", "profiles:\n- pluginConfig:\n  - name: InterPodAffinity\n    args: {kind: NodeAffinityArgs}\n",
     "profiles[0].pluginConfig[0].args: Invalid value: "),
    ("args-unknown-field", "profiles:\n- pluginConfig:\n  - name: InterPodAffinity\n    args: {hardPodAffinityWeigth: 2}\n",
     'decoding .profiles[0].pluginConfig[0]: strict decoding error: unknown field "hardPodAffinityWeigth"'),
    ("args-for-plugin-without-args", "profiles:\n- pluginConfig:\n  - name: NodeName\n    args: {x: 1}\n",
     'profiles[0].pluginConfig[0].args: Invalid value: {"x": 1}: plugin "NodeName" takes no args'),
    ("hard-pod-affinity-weight", "profiles:\n- pluginConfig:\n  - name: InterPodAffinity\n    args: {hardPodAffinityWeight: 101}\n",
     "profiles[0].pluginConfig[0].args.hardPodAffinityWeight: Invalid value: 101: not in valid range [0, 100]"),
    ("preemption-percentage", "profiles:\n- pluginConfig:\n  - name: DefaultPreemption\n"
     "    args: {minCandidateNodesPercentage: 101}\n",
     "profiles[0].pluginConfig[0].args.minCandidateNodesPercentage: Invalid value: 101: not in valid range [0, 100]"),
    ("preemption-absolute", "profiles:\n- pluginConfig:\n  - name: DefaultPreemption\n    args: {minCandidateNodesAbsolute: -1}\n",
     "profiles[0].pluginConfig[0].args.minCandidateNodesAbsolute: Invalid value: -1: not in valid range [0, inf)"),
    ("preemption-both-zero", "profiles:\n- pluginConfig:\n  - name: DefaultPreemption\n"
     "    args: {minCandidateNodesPercentage: 0, minCandidateNodesAbsolute: 0}\n",
     "profiles[0].pluginConfig[0].args.minCandidateNodesAbsolute: Invalid value: 0: "
     "cannot be zero at the same time as minCandidateNodesPercentage"),
    ("scoring-strategy-type", "profiles:\n- pluginConfig:\n  - name: NodeResourcesFit\n"
     "    args: {scoringStrategy: {type: Spread}}\n",
     'profiles[0].pluginConfig[0].args.scoringStrategy.type: Unsupported value: "Spread": supported values: '
     '"LeastAllocated", "MostAllocated", "RequestedToCapacityRatio"'),
    ("resource-weight", "profiles:\n- pluginConfig:\n  - name: NodeResourcesFit\n"
     "    args: {scoringStrategy: {type: MostAllocated, resources: [{name: cpu, weight: 101}]}}\n",
     "profiles[0].pluginConfig[0].args.scoringStrategy.resources[0].weight: Invalid value: 101: "
     "resource weight of cpu not in valid range (0, 100]"),
    ("ratio-missing", "profiles:\n- pluginConfig:\n  - name: NodeResourcesFit\n"
     "    args: {scoringStrategy: {type: RequestedToCapacityRatio}}\n",
     "profiles[0].pluginConfig[0].args.scoringStrategy.requestedToCapacityRatio: Required value: "
     "must be specified when type is RequestedToCapacityRatio"),
    ("ratio-shape", "profiles:\n- pluginConfig:\n  - name: NodeResourcesFit\n"
     "    args: {scoringStrategy: {type: RequestedToCapacityRatio, requestedToCapacityRatio: "
     "{shape: [{utilization: 50, score: 11}, {utilization: 40, score: 0}]}}}\n",
     "profiles[0].pluginConfig[0].args.scoringStrategy.requestedToCapacityRatio.shape[1].utilization: "
     "Invalid value: 40: values must be sorted in increasing order"),
    ("ratio-score", "profiles:\n- pluginConfig:\n  - name: NodeResourcesFit\n"
     "    args: {scoringStrategy: {type: RequestedToCapacityRatio, requestedToCapacityRatio: "
     "{shape: [{utilization: 0, score: 11}]}}}\n",
     "profiles[0].pluginConfig[0].args.scoringStrategy.requestedToCapacityRatio.shape[0].score: "
     "Invalid value: 11: not in valid range [0, 10]"),
    ("ratio-forbidden", "profiles:\n- pluginConfig:\n  - name: NodeResourcesFit\n"
     "    args: {scoringStrategy: {type: LeastAllocated, requestedToCapacityRatio: {shape: []}}}\n",
     "profiles[0].pluginConfig[0].args.scoringStrategy.requestedToCapacityRatio: Forbidden: "
     "must be nil when type is not RequestedToCapacityRatio"),
    ("ignored-resource-group", "profiles:\n- pluginConfig:\n  - name: NodeResourcesFit\n"
     "    args: {ignoredResourceGroups: [example.com/gpu]}\n",
     "profiles[0].pluginConfig[0].args.ignoredResourceGroups[0]: Invalid value: \"example.com/gpu\": "
     "resource group name can't contain '/'"),
    ("balanced-weight", "profiles:\n- pluginConfig:\n  - name: NodeResourcesBalancedAllocation\n"
     "    args: {resources: [{name: cpu, weight: 2}]}\n",
     "profiles[0].pluginConfig[0].args.resources[0].weight: Invalid value: 2: must be 1"),
    ("balanced-duplicate", "profiles:\n- pluginConfig:\n  - name: NodeResourcesBalancedAllocation\n"
     "    args: {resources: [{name: cpu}, {name: cpu}]}\n",
     'profiles[0].pluginConfig[0].args.resources[1].name: Duplicate value: "cpu"'),
    ("spread-system-with-constraints", "profiles:\n- pluginConfig:\n  - name: PodTopologySpread\n"
     "    args: {defaultConstraints: [{maxSkew: 1, topologyKey: zone, whenUnsatisfiable: DoNotSchedule}]}\n",
     'profiles[0].pluginConfig[0].args.defaultingType: Invalid value: "System": when .defaultConstraints are not empty'),
    ("spread-max-skew", "profiles:\n- pluginConfig:\n  - name: PodTopologySpread\n    args: {defaultingType: List, "
     "defaultConstraints: [{maxSkew: 0, topologyKey: zone, whenUnsatisfiable: DoNotSchedule}]}\n",
     "profiles[0].pluginConfig[0].args.defaultConstraints[0].maxSkew: Invalid value: 0: not in valid range (0, inf)"),
    ("spread-when-unsatisfiable", "profiles:\n- pluginConfig:\n  - name: PodTopologySpread\n    args: {defaultingType: List, "
     "defaultConstraints: [{maxSkew: 1, topologyKey: zone, whenUnsatisfiable: Maybe}]}\n",
     'profiles[0].pluginConfig[0].args.defaultConstraints[0].whenUnsatisfiable: Unsupported value: "Maybe": '
     'supported values: "DoNotSchedule", "ScheduleAnyway"'),
    ("spread-selector", "profiles:\n- pluginConfig:\n  - name: PodTopologySpread\n    args: {defaultingType: List, "
     "defaultConstraints: [{maxSkew: 1, topologyKey: zone, whenUnsatisfiable: DoNotSchedule, labelSelector: {}}]}\n",
     "profiles[0].pluginConfig[0].args.defaultConstraints[0].labelSelector: Forbidden: "
     "constraint must not define a selector, as they deduced for each pod"),
    ("spread-repeated", "profiles:\n- pluginConfig:\n  - name: PodTopologySpread\n    args: {defaultingType: List, "
     "defaultConstraints: [{maxSkew: 1, topologyKey: zone, whenUnsatisfiable: DoNotSchedule}, "
     "{maxSkew: 2, topologyKey: zone, whenUnsatisfiable: DoNotSchedule}]}\n",
     'profiles[0].pluginConfig[0].args.defaultConstraints[1]: Duplicate value: "{zone, DoNotSchedule}"'),
    ("spread-defaulting-type", "profiles:\n- pluginConfig:\n  - name: PodTopologySpread\n    args: {defaultingType: Zone}\n",
     'profiles[0].pluginConfig[0].args.defaultingType: Unsupported value: "Zone": supported values: "System", "List"'),
    ("bind-timeout", "profiles:\n- pluginConfig:\n  - name: VolumeBinding\n    args: {bindTimeoutSeconds: -1}\n",
     "profiles[0].pluginConfig[0].args.bindTimeoutSeconds: Invalid value: -1: "
     "invalid BindTimeoutSeconds, should not be a negative value"),
    ("added-affinity", "profiles:\n- pluginConfig:\n  - name: NodeAffinity\n    args: {addedAffinity: "
     "{requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: "
     "[{key: zone, operator: In, values: [a]}]}]}}}\n",
     "profiles[0].pluginConfig[0].args.addedAffinity: Forbidden: not supported by podlife's NodeAffinity plugin"),
    ("added-affinity-bad-operator", "profiles:\n- pluginConfig:\n  - name: NodeAffinity\n    args: {addedAffinity: "
     "{requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: "
     "[{key: zone, operator: Near, values: [a]}]}]}}}\n",
     "nodeSelectorTerms[0].matchExpressions[0].operator: Invalid value: \"Near\": not a valid selector operator"),
    ("resource-lock", "leaderElection: {resourceLock: endpoints}\n",
     'leaderElection.resourceLock: Invalid value: "endpoints": resourceLock value must be "leases"'),
    ("lease-duration", "leaderElection: {leaseDuration: 5s, renewDeadline: 10s}\n",
     'leaderElection.leaseDuration: Invalid value: "5s": LeaseDuration must be greater than RenewDeadline'),
    ("bad-duration", "leaderElection: {leaseDuration: soon}\n", 'leaderElection.leaseDuration: Invalid value: "soon"'),
    ("extenders", "extenders: [{urlPrefix: 'http://127.0.0.1:1', filterVerb: filter}]\n",
     "extenders: Forbidden: scheduler extenders are not supported by podlife"),
]


@pytest.mark.parametrize(("body", "message"), [pytest.param(b, m, id=i) for i, b, m in BAD])
def test_a_bad_configuration_is_refused_with_kubes_message(body: str, message: str) -> None:
    errors = errors_of(body)
    assert any(message in e for e in errors), errors


@pytest.mark.parametrize(("document", "message"), [
    ("- a\n", "failed to decode config file: expected a mapping, found array"),
    ("kind: KubeSchedulerConfiguration\n", "Object 'apiVersion' is missing"),
    ("apiVersion: kubescheduler.config.k8s.io/v1\n", "Object 'Kind' is missing"),
    ("apiVersion: kubescheduler.config.k8s.io/v1beta3\nkind: KubeSchedulerConfiguration\n",
     'no kind "KubeSchedulerConfiguration" is registered for version "kubescheduler.config.k8s.io/v1beta3"'),
    ("apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerPolicy\n",
     'no kind "KubeSchedulerPolicy" is registered for version "kubescheduler.config.k8s.io/v1"'),
    (HEADER + "---\n" + HEADER, "failed to decode config file: expected one document, found 2"),
    (HEADER + "profiles: [\n", "failed to decode config file: "),
])
def test_a_document_that_is_not_a_configuration_is_refused(document: str, message: str) -> None:
    with pytest.raises(SchedulerConfigError) as info:
        parse_config(document)
    assert any(message in e for e in info.value.errors), info.value.errors


def test_every_problem_is_reported_at_once() -> None:
    errors = errors_of("""
        parallelism: 0
        podInitialBackoffSeconds: 0
        profiles:
        - schedulerName: a
          plugins:
            score:
              enabled: [{name: Foo}]
        - schedulerName: a
          pluginConfig:
          - name: InterPodAffinity
            args: {hardPodAffinityWeight: -1}
    """)
    assert errors == [
        "parallelism: Invalid value: 0: should be an integer value greater than zero",
        'profiles[0].plugins.score.enabled[0].name: Invalid value: "Foo": ScorePlugin "Foo" does not exist',
        "profiles[1].pluginConfig[0].args.hardPodAffinityWeight: Invalid value: -1: not in valid range [0, 100]",
        'profiles[1].schedulerName: Duplicate value: "a"',
        "podInitialBackoffSeconds: Invalid value: 0: must be greater than 0",
    ]
    with pytest.raises(SchedulerConfigError) as info:
        parse_config(HEADER + "parallelism: 0\n", "sched.yaml")
    assert str(info.value).startswith("invalid scheduler configuration sched.yaml:\n  parallelism: ")


# ---- end to end: podlife up --scheduler-config, driven with kubectl ---------------------------------------

TWO_PROFILES = HEADER + textwrap.dedent("""
    profiles:
    - schedulerName: default-scheduler
    - schedulerName: packer
      plugins:
        score:
          disabled: [{name: "*"}]
          enabled: [{name: NodeResourcesFit, weight: 2}]
      pluginConfig:
      - name: NodeResourcesFit
        args:
          scoringStrategy:
            type: MostAllocated
""")


@pytest.fixture(scope="module")
def two_profiles(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    base = tmp_path_factory.mktemp("schedconfig")
    path = base / "scheduler.yaml"
    path.write_text(TWO_PROFILES)
    with running_podlife(base / "data", "--nodes", "0", "--sim-nodes", "3", "--scheduler-config", str(path),
                         kubectl=require_tool("kubectl")) as proc:
        yield proc


def pod_manifest(name: str, scheduler: str) -> str:
    """A pod asking for 1/8 of a simulated node (32 cpu, 256Gi): enough to move integer scores."""
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                       "spec": {"schedulerName": scheduler, "terminationGracePeriodSeconds": 0,
                                "containers": [{"name": "app", "image": "busybox",
                                                "resources": {"requests": {"cpu": "4", "memory": "32Gi"}}}]}})


def node_of(cluster: PodlifeProcess, name: str) -> str:
    return str(cluster.kubectl_json("get", "pod", name)["spec"].get("nodeName") or "")


def scheduled_by(cluster: PodlifeProcess, name: str) -> list[str]:
    events = cluster.kubectl_json("get", "events", "--field-selector", f"involvedObject.name={name}")["items"]
    return [e["source"]["component"] for e in events if e["reason"] == "Scheduled"]


@pytest.mark.e2e
def test_each_profile_schedules_its_own_pods(two_profiles: PodlifeProcess) -> None:
    cluster = two_profiles
    wait_for(lambda: len(cluster.kubectl_json("get", "nodes")["items"]) == 3, 60, what="3 simulated nodes")
    # a pod for a scheduler no profile names: created first, so the others show the scheduler had its chance
    cluster.kubectl("create", "-f", "-", input=pod_manifest("nobody", "someone-else"))
    packed = [f"packed-{i}" for i in range(3)]
    for name in packed:  # one at a time: each sees the previous one's node as fuller
        cluster.kubectl("create", "-f", "-", input=pod_manifest(name, "packer"))
        wait_for(lambda n=name: node_of(cluster, n), 30, what=f"{name} to be bound")
    nodes = {node_of(cluster, n) for n in packed}
    assert len(nodes) == 1, nodes  # MostAllocated, the only score: packed onto one node
    cluster.kubectl("create", "-f", "-", input=pod_manifest("plain", "default-scheduler"))
    wait_for(lambda: node_of(cluster, "plain"), 30, what="plain to be bound")
    for name in packed:
        assert wait_for(lambda n=name: scheduled_by(cluster, n), 30, what=f"{name}'s Scheduled event") == ["packer"]
    assert wait_for(lambda: scheduled_by(cluster, "plain"), 30, what="plain's event") == ["default-scheduler"]
    nobody = cluster.kubectl_json("get", "pod", "nobody")
    assert nobody["status"].get("phase") == "Pending" and not nobody["spec"].get("nodeName")
    assert not any(c.get("type") == "PodScheduled" for c in nobody["status"].get("conditions") or [])
    events = cluster.kubectl_json("get", "events", "--field-selector", "involvedObject.name=nobody")["items"]
    assert events == []
    cluster.kubectl("delete", "pod", *packed, "plain", "nobody", "--wait=false")


@pytest.mark.e2e
def test_a_bad_configuration_stops_up_before_anything_starts(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(HEADER + textwrap.dedent("""
        profiles:
        - schedulerName: a
          plugins:
            score:
              enabled: [{name: NodeResourcesFitt}]
        - schedulerName: a
    """))
    data = tmp_path / "data"
    done = subprocess.run([sys.executable, "-m", "podlife.cli", "up", "--data-dir", str(data), "--port", "0",
                           "--container-runtime", "process", "--scheduler-config", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert f"invalid scheduler configuration {path}:" in done.stderr
    assert ('profiles[0].plugins.score.enabled[0].name: Invalid value: "NodeResourcesFitt": '
            'ScorePlugin "NodeResourcesFitt" does not exist') in done.stderr
    assert 'profiles[1].schedulerName: Duplicate value: "a"' in done.stderr
    assert "Traceback" not in done.stderr
    assert not data.exists()  # nothing was started, not even the data directory


def test_a_kubernetes_config_naming_scheduling_gates_loads() -> None:
    """SchedulingGates (kube's PreEnqueue plugin) is built in: a config copied from Kubernetes may name it."""
    loaded = config("""
        profiles:
        - schedulerName: gated
          plugins:
            preEnqueue:
              enabled: [{name: SchedulingGates}]
            multiPoint:
              enabled: [{name: SchedulingGates}]
        """)
    assert [p.scheduler_name for p in loaded.profiles] == ["gated"]
