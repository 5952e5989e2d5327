"""Simulated nodes: thousands of nodes that look like real kubelets on the API, with no processes.

Design
------
:class:`~podlife.sim.simulator.Simulator` (``podlife up --sim-nodes N``,
``podlife sim``) registers N Node objects and keeps their Leases, and plays the life
of every pod bound to them by writing the statuses a real kubelet would write -- the
same first statuses (ContainerCreating, pod IP, Running), built with the real
kubelet's pure status functions, waiting for the network controller's port like the
real CNI step. It talks to the API only through :class:`~podlife.client.base.Client`,
so it runs inside ``podlife up`` or as its own process against any server.

It is built to be cheap at scale, as KWOK is:

- **one** pod informer and **one** node informer for all simulated nodes (not a watch
  per node), a work queue with a bounded number of workers, and per-pod state that is
  a small dataclass;
- one heartbeat loop that renews the nodes' Leases in slots spread over the lease
  period (``nodes / period`` writes per second, never a thundering herd), and
  node registration with bounded concurrency;
- no sleeps: steps with no delay are written back to back in one sync, and delayed
  actions sit in one timer heap (:class:`~podlife.sim.stages.Timers`).

Behaviour is data (:mod:`podlife.sim.stages`): a YAML stage file selects pods or nodes
by labels, annotations and field expressions, and says after which delay what happens
-- crash (with crash-loop backoff), OOM kill, image pull failure, readiness loss,
completion, node heartbeat loss. ``default-stages.yaml`` is the built-in file;
``stages/`` holds examples with input/output fixtures; ``docs/simulated-nodes.md``
describes the format. Chaos can also be asked for at run time with the
``podlife.io/chaos`` annotation on a pod or node.

Modules: :mod:`.simulator` (pods), :mod:`.nodes` (nodes, leases, heartbeats),
:mod:`.stages` (stage model, YAML loading, selection, delays, the timer heap).
"""

from .simulator import Simulator
from .stages import StageError, StageSet, load_stages, parse_stages

__all__ = ["Simulator", "StageError", "StageSet", "load_stages", "parse_stages"]
