"""The in-tree plugin registry: every plugin podlife has, by its Kubernetes name.

Design
------
kube-scheduler builds each profile's framework from a *registry* (plugin name ->
factory) and a plugin set (which names run at which extension point, with which
score weight). This module is podlife's registry and the default plugin set:

- :data:`REGISTRY` maps each Kubernetes plugin name to a factory that takes the
  plugin's arguments -- the ``args`` of the profile's ``pluginConfig`` entry for
  that name, already defaulted and validated by :mod:`podlife.scheduler.config`
  (camelCase, as the ``*Args`` kinds spell them; an empty mapping when the file
  says nothing) -- and returns a new plugin instance. Factories import their
  plugin's module when called, so this module can be imported from
  :mod:`podlife.scheduler.profile` without import cycles, and a plugin module
  that imports the scheduler does not break the chain.
- :data:`DEFAULT_PLUGINS` is Kubernetes' v1 default ``multiPoint`` set in its
  order, with the default score weights, restricted to what podlife has
  (no VolumeRestrictions, NodeVolumeLimits, VolumeZone) plus podlife's own
  static filter NodeReady right after NodeName (where kube's not-ready taint is
  checked).
- :data:`BUILT_IN` names the plugins a configuration may name but that the
  :class:`~podlife.scheduler.scheduler.Scheduler` always runs itself:
  VolumeBinding (it is wired to the scheduler's client, cache and queue) and
  SchedulingGates (the scheduler never queues a pod with ``spec.schedulingGates``);
  their factories refuse, and profiles leave them out of their plugin lists. The
  QueueSort (PrioritySort) and Bind (DefaultBinder) plugins are the
  scheduler's own too; their factories serve to check a configuration's
  extension points (:func:`implements`).

It reads nothing and writes nothing; :mod:`podlife.scheduler.profile` turns a
plugin set into plugin instances at their extension points.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .plugins import Plugin

#: the factory of one plugin: its validated ``pluginConfig`` args (camelCase; empty: defaults) -> a new instance
PluginFactory = Callable[[Mapping[str, Any]], Plugin]

#: Kubernetes' ``MaxCustomPriorityScore``: a RequestedToCapacityRatio shape point's score is 0..10
MAX_CUSTOM_PRIORITY_SCORE = 10


@dataclass(frozen=True)
class PluginSpec:
    """One entry of a plugin set: the plugin's name and, for score plugins, its weight (0: not a score)."""

    name: str
    weight: int = 0


#: cpu and memory, weight 1 each: the resources the scoring plugins count by default
DEFAULT_RESOURCES = (("cpu", 1), ("memory", 1))


def _resources(args: Mapping[str, Any]) -> tuple[tuple[str, int], ...]:
    """``resources: [{name, weight}]`` as the (name, weight) pairs the plugins take (weight 0 -> 1, as kube)."""
    return tuple((str(r["name"]), int(r.get("weight") or 1)) for r in args.get("resources") or ())


def _node_resources_fit(args: Mapping[str, Any]) -> Plugin:
    from .node_resources import NodeResourcesFit

    strategy = args.get("scoringStrategy") or {}
    kwargs: dict[str, Any] = {}
    kind = str(strategy.get("type") or "LeastAllocated")
    if kind != "LeastAllocated":
        kwargs["strategy"] = kind
    resources = _resources(strategy)
    if resources and resources != DEFAULT_RESOURCES:
        kwargs["resources"] = resources
    ratio = strategy.get("requestedToCapacityRatio") or {}
    shape = tuple((int(p.get("utilization") or 0), int(p.get("score") or 0)) for p in ratio.get("shape") or ())
    if shape:
        kwargs["shape"] = shape  # scores as the API has them (0..MAX_CUSTOM_PRIORITY_SCORE)
    return NodeResourcesFit(**kwargs)  # only what differs from the defaults


def _balanced_allocation(args: Mapping[str, Any]) -> Plugin:
    from .node_scores import BalancedAllocation

    resources = _resources(args)
    return BalancedAllocation(resources=resources) if resources and resources != DEFAULT_RESOURCES else BalancedAllocation()


def _image_locality(args: Mapping[str, Any]) -> Plugin:
    from .node_scores import ImageLocality

    return ImageLocality()


def _inter_pod_affinity(args: Mapping[str, Any]) -> Plugin:
    from .interpod_affinity import InterPodAffinity

    if not args:
        return InterPodAffinity()
    return InterPodAffinity(hard_pod_affinity_weight=int(args.get("hardPodAffinityWeight", 1)),
                            ignore_preferred_terms_of_existing_pods=bool(args.get("ignorePreferredTermsOfExistingPods")))


def _pod_topology_spread(args: Mapping[str, Any]) -> Plugin:
    from .topology_spread import PodTopologySpread

    if not args:
        return PodTopologySpread()
    constraints = args.get("defaultConstraints")
    return PodTopologySpread(default_constraints=[dict(c) for c in constraints] if constraints else None,
                             defaulting_type=str(args.get("defaultingType") or "System"))


def _default_preemption(args: Mapping[str, Any]) -> Plugin:
    from .preemption import DefaultPreemption

    if not args:
        return DefaultPreemption()
    return DefaultPreemption(min_candidate_nodes_percentage=int(args.get("minCandidateNodesPercentage", 10)),
                             min_candidate_nodes_absolute=int(args.get("minCandidateNodesAbsolute", 100)))


def _node_ports(args: Mapping[str, Any]) -> Plugin:
    from .node_ports import NodePorts

    return NodePorts()


def _simple(class_name: str) -> PluginFactory:
    """A factory for a plugin of :mod:`podlife.scheduler.plugins` that takes no arguments."""

    def factory(args: Mapping[str, Any]) -> Plugin:
        from . import plugins

        cls: type[Plugin] = getattr(plugins, class_name)
        return cls()

    return factory


def _volume_binding(args: Mapping[str, Any]) -> Plugin:
    raise ValueError("VolumeBinding is built into the scheduler (it needs the scheduler's client, cache and queue)")


def _scheduling_gates(args: Mapping[str, Any]) -> Plugin:
    raise ValueError("SchedulingGates is built into the scheduler (its queue never admits a gated pod)")


REGISTRY: dict[str, PluginFactory] = {
    "SchedulingGates": _scheduling_gates,
    "PrioritySort": _simple("PrioritySort"),
    "NodeUnschedulable": _simple("NodeUnschedulable"),
    "NodeName": _simple("NodeName"),
    "NodeReady": _simple("NodeReady"),
    "TaintToleration": _simple("TaintToleration"),
    "NodeAffinity": _simple("NodeAffinity"),
    "NodePorts": _node_ports,
    "NodeResourcesFit": _node_resources_fit,
    "VolumeBinding": _volume_binding,
    "PodTopologySpread": _pod_topology_spread,
    "InterPodAffinity": _inter_pod_affinity,
    "DefaultPreemption": _default_preemption,
    "NodeResourcesBalancedAllocation": _balanced_allocation,
    "ImageLocality": _image_locality,
    "DefaultBinder": _simple("DefaultBinder"),
}

#: plugins the Scheduler runs itself, whatever the profile says (see the module docstring)
BUILT_IN = frozenset({"SchedulingGates", "VolumeBinding"})
#: the QueueSort and Bind plugins (one each per profile, the scheduler's own)
QUEUE_SORT = "PrioritySort"
BINDER = "DefaultBinder"

#: Kubernetes' v1 default multiPoint plugin set, in its order, with its score weights (see the module docstring)
DEFAULT_PLUGINS: tuple[PluginSpec, ...] = (
    PluginSpec("SchedulingGates"),
    PluginSpec("PrioritySort"),
    PluginSpec("NodeUnschedulable"),
    PluginSpec("NodeName"),
    PluginSpec("NodeReady"),
    PluginSpec("TaintToleration", 3),
    PluginSpec("NodeAffinity", 2),
    PluginSpec("NodePorts"),
    PluginSpec("NodeResourcesFit", 1),
    PluginSpec("VolumeBinding"),
    PluginSpec("PodTopologySpread", 2),
    PluginSpec("InterPodAffinity", 2),
    PluginSpec("DefaultPreemption"),
    PluginSpec("NodeResourcesBalancedAllocation", 1),
    PluginSpec("ImageLocality", 1),
    PluginSpec("DefaultBinder"),
)

#: the Kubernetes extension points of the built-in plugins (the others' follow from their classes: :func:`implements`)
BUILT_IN_POINTS: dict[str, frozenset[str]] = {
    "SchedulingGates": frozenset({"preEnqueue"}),
    "VolumeBinding": frozenset({"preFilter", "filter", "reserve", "preBind"}),
}


def implements(name: str, plugin: Plugin | None, point: str) -> bool:
    """Whether the plugin ``name`` (instance ``plugin``; None for a built-in) extends the Kubernetes
    extension point ``point``. podlife's FilterPlugin is kube's PreFilter and Filter, its ScorePlugin
    PreScore and Score: the pre-step is a method of the same plugin."""
    if plugin is None:
        return point in BUILT_IN_POINTS.get(name, frozenset())
    from .plugins import DefaultBinder, FilterPlugin, PostFilterPlugin, PrioritySort, ScorePlugin

    kinds: dict[str, tuple[type, ...]] = {
        "queueSort": (PrioritySort,), "preFilter": (FilterPlugin,), "filter": (FilterPlugin,),
        "postFilter": (PostFilterPlugin,), "preScore": (ScorePlugin,), "score": (ScorePlugin,),
        "bind": (DefaultBinder,),
    }
    kind = kinds.get(point)
    return kind is not None and isinstance(plugin, kind)


def new_plugin(name: str, args: Mapping[str, Any] | None = None) -> Plugin:
    """A new instance of the plugin ``name`` with ``args`` (KeyError: no such plugin)."""
    return REGISTRY[name](args or {})
