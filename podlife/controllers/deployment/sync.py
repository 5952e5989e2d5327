"""Scaling a Deployment between rollouts, and proportionally in the middle of one.

Pure planning (Kubernetes' ``deployment/sync.go`` ``scale`` and ``isScalingEvent``, and
``GetReplicaSetProportion`` of ``deployment_util.go``):

* A *scaling event*: some active ReplicaSet's ``desired-replicas`` annotation differs
  from the Deployment's ``replicas`` -- the user scaled, so the controller only resizes
  (no rollout step) in that sync; so it does while the Deployment is paused.
* One active ReplicaSet (or none: then the newest) takes ``replicas`` whole.
* A *saturated* new ReplicaSet (asked for and having ``replicas`` available pods, with
  a matching ``desired-replicas``) means the old ones all go to 0.
* Otherwise, in a rolling update, the pods to add (or remove) -- ``replicas +
  maxSurge`` less all the ReplicaSets ask for -- are shared out in proportion to each
  active ReplicaSet's size relative to the ``max-replicas`` it was last scaled for,
  largest first (newer first among equals when adding, older first when removing);
  rounding leftovers go to the first (largest) one. Nothing is scaled from 0.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...client.base import Obj
from .replicasets import active, available_replicas, by_creation, by_size_newer, by_size_older, spec_replicas, total_spec
from .revisions import desired_replicas_annotation, max_replicas_annotation
from .rolling import desired, is_rolling_update, max_surge


def find_active_or_latest(new_rs: Obj | None, old_rss: Sequence[Obj]) -> Obj | None:
    """``FindActiveOrLatest``: the one active ReplicaSet; with none active, the new one or else the newest old."""
    if new_rs is None and not old_rss:
        return None
    newest_first = list(reversed(by_creation(old_rss)))
    running = active([*newest_first, new_rs])
    if not running:
        return new_rs if new_rs is not None else newest_first[0]
    if len(running) == 1:
        return running[0]
    return None


def is_saturated(deployment: Obj, rs: Obj | None) -> bool:
    if rs is None:
        return False
    replicas = desired(deployment)
    return (spec_replicas(rs) == replicas and desired_replicas_annotation(rs) == replicas
            and available_replicas(rs) == replicas)


def is_scaling_event(deployment: Obj, new_rs: Obj | None, old_rss: Sequence[Obj]) -> bool:
    """Whether some active ReplicaSet was last scaled for another ``replicas`` than the Deployment's."""
    replicas = desired(deployment)
    for rs in active([*old_rss, new_rs]):
        wanted = desired_replicas_annotation(rs)
        if wanted is not None and wanted != replicas:
            return True
    return False


def _round_half_away(value: float) -> int:
    return int(value + 0.5) if value >= 0 else -int(-value + 0.5)


def replica_set_fraction(rs: Obj, deployment: Obj) -> int:
    """``getReplicaSetFraction``: how many pods ``rs`` should gain (or lose) for the Deployment's new size."""
    replicas = desired(deployment)
    if replicas == 0:
        return -spec_replicas(rs)
    most = replicas + max_surge(deployment)
    before = max_replicas_annotation(rs)
    if before is None:
        # no record of the size it was scaled for (scaled by hand, annotation removed): the Deployment's current size
        before = int((deployment.get("status") or {}).get("replicas") or 0)
    if before == 0:
        return 0
    return _round_half_away(spec_replicas(rs) * most / before) - spec_replicas(rs)


def replica_set_proportion(rs: Obj, deployment: Obj, to_add: int, added: int) -> int:
    """``GetReplicaSetProportion``: ``rs``'s share of ``to_add`` with ``added`` already handed out."""
    if spec_replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = replica_set_fraction(rs, deployment)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def scale_plan(deployment: Obj, new_rs: Obj | None, old_rss: Sequence[Obj]) -> tuple[list[tuple[Obj, int]], str]:
    """``scale``: the (ReplicaSet, size) pairs to write -- sizes may equal the current ones, which still
    refreshes their replica annotations -- and the direction for the events (``up``/``down``/"")."""
    only = find_active_or_latest(new_rs, old_rss)
    if only is not None:
        if spec_replicas(only) == desired(deployment):
            return [], ""
        return [(only, desired(deployment))], "up" if spec_replicas(only) < desired(deployment) else "down"
    if is_saturated(deployment, new_rs):
        return [(rs, 0) for rs in active(old_rss)], "down"
    if not is_rolling_update(deployment):
        return [], ""
    running = active([*old_rss, new_rs])
    allowed = desired(deployment) + max_surge(deployment) if desired(deployment) > 0 else 0
    to_add = allowed - total_spec(running)
    direction = ""
    if to_add > 0:
        running, direction = by_size_newer(running), "up"
    elif to_add < 0:
        running, direction = by_size_older(running), "down"
    sizes: list[int] = []
    added = 0
    for rs in running:
        if to_add != 0:
            share = replica_set_proportion(rs, deployment, to_add, added)
            sizes.append(spec_replicas(rs) + share)
            added += share
        else:
            sizes.append(spec_replicas(rs))
    if running and to_add != 0:
        sizes[0] = max(0, sizes[0] + to_add - added)
    return list(zip(running, sizes, strict=True)), direction
