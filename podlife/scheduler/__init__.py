"""The scheduler: binds pending pods to nodes (filter, score, bind).

:class:`Scheduler` watches non-terminal pods and nodes through the :class:`~podlife.client.base.Client`
interface, decides one pod at a time against its own accounting of each node's
requested resources, and writes ``pods/binding`` (plus events and the
``PodScheduled`` condition). The rules are plugins at Kubernetes' extension points
(:mod:`podlife.scheduler.plugins`); quantities are parsed by
:mod:`podlife.machinery.quantity`; :mod:`podlife.scheduler.columns` mirrors each
node's running totals in numpy arrays, so the resource filter and score judge
all nodes at once. :mod:`podlife.scheduler.queue` holds the pending pods
(active, backoff, unschedulable) and :mod:`podlife.scheduler.cache` what each
node holds (bound and assumed pods). See :mod:`podlife.scheduler.scheduler`
for the design. :mod:`podlife.scheduler.profile` holds a profile's plugins,
:mod:`podlife.scheduler.registry` every plugin by its Kubernetes name and the
default set, :mod:`podlife.scheduler.config` reads ``KubeSchedulerConfiguration``
files (``podlife up --scheduler-config``).
"""

from .plugins import (
    DefaultBinder,
    FilterPlugin,
    NodeAffinity,
    NodeInfo,
    NodeName,
    NodeReady,
    NodeUnschedulable,
    PodInfo,
    PrioritySort,
    ScorePlugin,
    Status,
    TaintToleration,
)
from ..machinery.quantity import QuantityError, int_value, milli_value, parse_quantity
from .cache import SchedulerCache
from .node_resources import NodeResourcesFit
from .config import SchedulerConfig, SchedulerConfigError, load_config, parse_config, profiles_from_file
from .profile import DEFAULT_SCHEDULER_NAME, Profile, build_profile, default_profile
from .registry import DEFAULT_PLUGINS, REGISTRY, PluginSpec, new_plugin
from .queue import SchedulingQueue
from .scheduler import FitError, Scheduler, num_feasible_nodes_to_find

__all__ = [
    "DEFAULT_PLUGINS",
    "DEFAULT_SCHEDULER_NAME",
    "REGISTRY",
    "PluginSpec",
    "Profile",
    "SchedulerConfig",
    "SchedulerConfigError",
    "build_profile",
    "default_profile",
    "load_config",
    "new_plugin",
    "parse_config",
    "profiles_from_file",
    "DefaultBinder",
    "FilterPlugin",
    "FitError",
    "NodeAffinity",
    "NodeInfo",
    "NodeName",
    "NodeReady",
    "NodeResourcesFit",
    "NodeUnschedulable",
    "PodInfo",
    "PrioritySort",
    "QuantityError",
    "Scheduler",
    "SchedulerCache",
    "SchedulingQueue",
    "ScorePlugin",
    "Status",
    "TaintToleration",
    "int_value",
    "milli_value",
    "num_feasible_nodes_to_find",
    "parse_quantity",
]
