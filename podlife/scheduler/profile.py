"""A scheduling profile: the plugins that place the pods of one ``schedulerName``.

As in kube-scheduler, one scheduler process serves several profiles over one
queue and one cache; a pod is placed by the profile its ``spec.schedulerName``
names, and pods naming no profile of this scheduler are left to another one.
A profile is built from defaults (:func:`default_profile`) or from a
``KubeSchedulerConfiguration`` file (:mod:`podlife.scheduler.config`); this
module only holds the result and splits the filters the way the scheduling
loop uses them (static filters' verdicts are cached per node generation,
dynamic ones run for every pod; see :mod:`podlife.scheduler.plugins`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .plugins import FilterPlugin, Plugin, PostFilterPlugin, ScorePlugin, default_filters, default_scores

DEFAULT_SCHEDULER_NAME = "default-scheduler"


@dataclass
class Profile:
    """One ``schedulerName`` and its plugins, in the order they run at each extension point."""

    scheduler_name: str = DEFAULT_SCHEDULER_NAME
    filters: list[FilterPlugin] = field(default_factory=default_filters)
    #: None: the default scores for ``filters``
    scores: list[ScorePlugin] | None = None
    post_filters: list[PostFilterPlugin] = field(default_factory=list)
    #: kube's ``percentageOfNodesToScore`` for this profile; None: the scheduler's
    percentage_of_nodes_to_score: int | None = None

    def __post_init__(self) -> None:
        if self.scores is None:
            self.scores = default_scores(self.filters)
        self.static_filters = [f for f in self.filters if f.static]
        self.dynamic_filters = [f for f in self.filters if not f.static]

    @property
    def score_plugins(self) -> list[ScorePlugin]:
        assert self.scores is not None
        return self.scores

    def plugins(self) -> list[Plugin]:
        """Every distinct plugin instance of the profile (one instance may sit at several points)."""
        seen: dict[int, Plugin] = {}
        for plugin in [*self.filters, *self.score_plugins, *self.post_filters]:
            seen.setdefault(id(plugin), plugin)
        return list(seen.values())


def default_profile(scheduler_name: str = DEFAULT_SCHEDULER_NAME) -> Profile:
    """Kubernetes' default plugin set, as far as podlife has it."""
    return Profile(scheduler_name)
