"""The Deployment controller (``deployment`` in ``--controllers``; acts as ``deployment-controller``).

The package splits the work as Kubernetes' ``pkg/controller/deployment`` does, pure
decisions apart from the writes:

* :mod:`.replicasets` -- counts and orders of ReplicaSets, which one is new;
* :mod:`.revisions` -- revision annotations, the new ReplicaSet, history cleanup;
* :mod:`.rolling` -- maxSurge/maxUnavailable and the RollingUpdate steps;
* :mod:`.recreate` -- the Recreate strategy's wait for old pods;
* :mod:`.sync` -- scaling events and proportional scaling;
* :mod:`.progress` -- status counts and the Available/Progressing conditions;
* :mod:`.controller` -- :class:`DeploymentController`: informers, queue, and the writes.
"""

from .controller import DeploymentController

__all__ = ["DeploymentController"]
