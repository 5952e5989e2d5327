"""The DaemonSet controller (kube-controller-manager's ``daemonset``), in three parts:

* :mod:`.placement` -- which nodes should run a daemon pod (``NodeShouldRunDaemonPod``)
  and the pod made for a node (template, automatic tolerations, node-name affinity,
  revision labels);
* :mod:`.plan` -- the decisions: per-node creations and deletions, RollingUpdate steps
  (with and without surge), status counters, history pruning, failed-pod backoff;
* :mod:`.controller` -- :class:`DaemonSetController`, which watches, decides with the
  two above and writes.
"""

from .controller import DaemonSetController

__all__ = ["DaemonSetController"]
