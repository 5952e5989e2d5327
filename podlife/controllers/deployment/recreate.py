"""The Recreate strategy: every old pod gone before the new ReplicaSet gets any.

Kubernetes' ``deployment/recreate.go``: scale the active old ReplicaSets to 0; while
any old ReplicaSet still reports pods, or any pod of an old ReplicaSet is not finished
(Succeeded/Failed) -- ``Unknown`` counts as running -- wait (the pod informer's
deletions queue the Deployment again); then create the new ReplicaSet (only now: a
Recreate rollout never runs old and new pods together) and scale it to ``replicas``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ...client.base import Obj
from .replicasets import total_actual


def old_pods_running(new_rs: Obj | None, old_rss: Sequence[Obj], pods_by_rs: Mapping[str, Sequence[Obj]]) -> bool:
    """``oldPodsRunning``: whether old ReplicaSets still have pods (by their status, or pods not yet finished).

    ``pods_by_rs``: the Deployment's pods by the uid of the ReplicaSet controlling them.
    """
    if total_actual(old_rss) > 0:
        return True
    new_uid = (new_rs or {}).get("metadata", {}).get("uid")
    for uid, pods in pods_by_rs.items():
        if new_uid is not None and uid == new_uid:
            continue
        for pod in pods:
            if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                return True
    return False
