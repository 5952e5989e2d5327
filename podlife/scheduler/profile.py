"""A scheduling profile: the plugins that place the pods of one ``schedulerName``.

As in kube-scheduler, one scheduler process serves several profiles over one
queue and one cache; a pod is placed by the profile its ``spec.schedulerName``
names, and pods naming no profile of this scheduler are left to another one.

A profile is built from a *plugin set* -- the plugin names at each extension
point, in order, with score weights -- and the plugins' arguments:
:func:`build_profile` makes one instance per plugin name through the registry
(:mod:`podlife.scheduler.registry`) and puts that same instance at every point
it was named for (NodeResourcesFit is one object as filter and as score, so its
PreFilter state is there for its Score). ``Profile()`` with no plugins is
Kubernetes' default set (:data:`~podlife.scheduler.registry.DEFAULT_PLUGINS`);
a ``KubeSchedulerConfiguration`` file (:mod:`podlife.scheduler.config`)
resolves its merge with the defaults and its ``multiPoint`` expansion into a
plugin set first. QueueSort and Bind are the scheduler's own (PrioritySort,
DefaultBinder), and VolumeBinding is built into the scheduler, so a profile
holds neither. The filters are split the way the scheduling loop uses them
(static filters' verdicts are cached per node generation, dynamic ones run for
every pod; see :mod:`podlife.scheduler.plugins`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .plugins import FilterPlugin, Plugin, PostFilterPlugin, ScorePlugin
from .registry import BUILT_IN, DEFAULT_PLUGINS, new_plugin

DEFAULT_SCHEDULER_NAME = "default-scheduler"


class Profile:
    """One ``schedulerName`` and its plugins, in the order they run at each extension point.

    Left out, ``filters``, ``scores`` and ``post_filters`` are Kubernetes' defaults
    (one instance per plugin, shared between points). With ``filters`` given and
    ``scores`` not, the scores are the default score plugins, each taken from
    ``filters`` when a filter of that name is there (so a replaced NodeResourcesFit
    scores too), and there is no PostFilter unless given: a hand-made filter chain
    is judged as the default profile would judge it, without preemption.
    """

    def __init__(self, scheduler_name: str = DEFAULT_SCHEDULER_NAME, filters: list[FilterPlugin] | None = None,
                 scores: list[ScorePlugin] | None = None, post_filters: list[PostFilterPlugin] | None = None,
                 percentage_of_nodes_to_score: int | None = None) -> None:
        self.scheduler_name = scheduler_name
        #: kube's ``percentageOfNodesToScore`` for this profile; None: the scheduler's
        self.percentage_of_nodes_to_score = percentage_of_nodes_to_score
        if filters is None:
            default = _default_plugin_points()
            filters = default.filters
            scores = default.scores if scores is None else scores
            post_filters = default.post_filters if post_filters is None else post_filters
        self.filters: list[FilterPlugin] = filters
        self.scores: list[ScorePlugin] = _default_scores_sharing(filters) if scores is None else scores
        self.post_filters: list[PostFilterPlugin] = [] if post_filters is None else post_filters
        self.static_filters = [f for f in filters if f.static]
        self.dynamic_filters = [f for f in filters if not f.static]

    def __repr__(self) -> str:
        names = ", ".join(p.name for p in self.plugins())
        return f"Profile({self.scheduler_name!r}: {names})"

    @property
    def score_plugins(self) -> list[ScorePlugin]:
        return self.scores

    def plugins(self) -> list[Plugin]:
        """Every distinct plugin instance of the profile (one instance may sit at several points)."""
        seen: dict[int, Plugin] = {}
        for plugin in [*self.filters, *self.scores, *self.post_filters]:
            seen.setdefault(id(plugin), plugin)
        return list(seen.values())

    def plugin(self, name: str) -> Plugin | None:
        """The profile's instance of the plugin ``name`` (None: not in this profile)."""
        return next((p for p in self.plugins() if p.name == name), None)


def build_profile(scheduler_name: str, *, filters: Sequence[str], scores: Sequence[tuple[str, int]],
                  post_filters: Sequence[str], args: Mapping[str, Mapping[str, Any]] | None = None,
                  percentage_of_nodes_to_score: int | None = None) -> Profile:
    """A profile from a resolved plugin set: ``filters`` and ``post_filters`` are plugin names in
    order, ``scores`` (name, weight) pairs; ``args`` the validated ``pluginConfig`` args by plugin
    name. Built-in plugins (VolumeBinding) are skipped: the scheduler runs them itself.

    Raises ValueError when a name is at a point its plugin does not extend (kube's framework
    refuses such a profile the same way)."""
    args = args or {}
    instances: dict[str, Plugin] = {}

    def instance(name: str) -> Plugin:
        if name not in instances:
            instances[name] = new_plugin(name, args.get(name))
        return instances[name]

    filter_list: list[FilterPlugin] = []
    for name in filters:
        if name in BUILT_IN:
            continue
        plugin = instance(name)
        if not isinstance(plugin, FilterPlugin):
            raise ValueError(f'plugin "{name}" does not extend filter plugin')
        filter_list.append(plugin)
    score_list: list[ScorePlugin] = []
    for name, weight in scores:
        plugin = instance(name)
        if not isinstance(plugin, ScorePlugin):
            raise ValueError(f'plugin "{name}" does not extend score plugin')
        plugin.weight = weight
        score_list.append(plugin)
    post_list: list[PostFilterPlugin] = []
    for name in post_filters:
        plugin = instance(name)
        if not isinstance(plugin, PostFilterPlugin):
            raise ValueError(f'plugin "{name}" does not extend postFilter plugin')
        post_list.append(plugin)
    return Profile(scheduler_name, filter_list, score_list, post_list, percentage_of_nodes_to_score)


def _default_scores_sharing(filters: list[FilterPlugin]) -> list[ScorePlugin]:
    """The default score plugins with their default weights; a filter of the same name that is
    also a score plugin is used itself (one instance at both points), else a new instance."""
    by_name = {f.name: f for f in filters}
    scores: list[ScorePlugin] = []
    for spec in DEFAULT_PLUGINS:
        if spec.name in BUILT_IN:
            continue
        shared = by_name.get(spec.name)
        plugin: Plugin = new_plugin(spec.name) if shared is None else shared
        if not isinstance(plugin, ScorePlugin):
            continue
        plugin.weight = spec.weight or 1
        scores.append(plugin)
    return scores


def _default_plugin_points() -> Profile:
    """Kubernetes' default set: each default plugin, one instance, at every point its class extends
    (score: with its default weight)."""
    instances = [(spec, new_plugin(spec.name)) for spec in DEFAULT_PLUGINS if spec.name not in BUILT_IN]
    filters = [p for _, p in instances if isinstance(p, FilterPlugin)]
    scores: list[ScorePlugin] = []
    for spec, p in instances:
        if isinstance(p, ScorePlugin):
            p.weight = spec.weight or 1
            scores.append(p)
    post = [p for _, p in instances if isinstance(p, PostFilterPlugin)]
    return Profile(DEFAULT_SCHEDULER_NAME, filters, scores, post)


def default_profile(scheduler_name: str = DEFAULT_SCHEDULER_NAME) -> Profile:
    """Kubernetes' default plugin set, as far as podlife has it."""
    return Profile(scheduler_name)
