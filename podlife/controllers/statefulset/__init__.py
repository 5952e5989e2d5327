"""The StatefulSet controller (``--controllers statefulset``, service account ``statefulset-controller``).

Modules: :mod:`.identity` (names, ordinals, labels, hostnames, claim names),
:mod:`.claims` (claim retention by owner references), :mod:`.revisions`
(ControllerRevisions: data, current and update revision, history),
:mod:`.update` (the pure plan of one sync: ordered creation, scale down, rolling update
with partition and maxUnavailable), :mod:`.status` (the status counted from pods),
:mod:`.controller` (informers, work queue, and carrying the plan out).
"""

from .controller import StatefulSetController

__all__ = ["StatefulSetController"]
