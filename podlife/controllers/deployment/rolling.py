"""The RollingUpdate strategy: how far the new ReplicaSet may grow and the old ones shrink.

Pure planning (Kubernetes' ``deployment/rolling.go`` and the fencepost helpers of
``deployment_util.go``); the controller carries the plans out one step per sync:

* **Fenceposts**: ``maxSurge`` and ``maxUnavailable`` are counts or percentages of
  ``spec.replicas``; a surge percentage rounds *up*, an unavailable one *down*; if both
  resolve to 0 (validation forbids both set to 0, rounding may still get there)
  ``maxUnavailable`` becomes 1. ``maxUnavailable`` is capped at ``spec.replicas``; both
  are 0 for ``Recreate`` and ``maxUnavailable`` is 0 for a Deployment of 0 replicas.
* **Scale up** (:func:`new_rs_replicas`): the new ReplicaSet grows while all
  ReplicaSets together ask for fewer than ``replicas + maxSurge`` pods, never past
  ``replicas`` (``NewRSNewReplicas``; ``Recreate``: straight to ``replicas``).
* **Scale down** (:func:`max_scaled_down`, :func:`unhealthy_cleanup`,
  :func:`rolling_scale_down`): old ReplicaSets shrink by what keeps
  ``replicas - maxUnavailable`` pods available, counting the new ReplicaSet's
  unavailable pods as if they were to stay; first the old ReplicaSets' unavailable pods
  go (oldest ReplicaSet first -- they would block the rollout otherwise), then available
  ones while more than the minimum are available.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ...client.base import Obj
from .replicasets import available_replicas, by_creation, spec_replicas, total_available, total_spec

ROLLING_UPDATE = "RollingUpdate"
RECREATE = "Recreate"


def desired(deployment: Obj) -> int:
    value = (deployment.get("spec") or {}).get("replicas")
    return int(value) if value is not None else 1


def strategy_type(deployment: Obj) -> str:
    return str(((deployment.get("spec") or {}).get("strategy") or {}).get("type") or ROLLING_UPDATE)


def is_rolling_update(deployment: Obj) -> bool:
    return strategy_type(deployment) == ROLLING_UPDATE


def scaled_value(value: Any, total: int, round_up: bool) -> int:
    """``GetScaledValueFromIntOrPercent``: an int as is, ``"25%"`` of ``total`` rounded up or down."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise ValueError(f"invalid value for IntOrString: {value!r}")
    if isinstance(value, int):
        return value
    text = str(value)
    if not text.endswith("%"):
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"invalid value for IntOrString: invalid type: string is not a percentage: {text!r}") from None
    percent = int(text[:-1])
    exact = percent * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def resolve_fenceposts(max_surge: Any, max_unavailable: Any, replicas: int) -> tuple[int, int]:
    """``ResolveFenceposts``: (surge, unavailable) for ``replicas``; both 0 makes unavailable 1."""
    surge = scaled_value(0 if max_surge is None else max_surge, replicas, True)
    unavailable = scaled_value(0 if max_unavailable is None else max_unavailable, replicas, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def _rolling_params(deployment: Obj) -> Obj:
    return ((deployment.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}


def max_surge(deployment: Obj) -> int:
    if not is_rolling_update(deployment):
        return 0
    params = _rolling_params(deployment)
    return resolve_fenceposts(params.get("maxSurge"), params.get("maxUnavailable"), desired(deployment))[0]


def max_unavailable(deployment: Obj) -> int:
    replicas = desired(deployment)
    if not is_rolling_update(deployment) or replicas == 0:
        return 0
    params = _rolling_params(deployment)
    return min(resolve_fenceposts(params.get("maxSurge"), params.get("maxUnavailable"), replicas)[1], replicas)


def new_rs_replicas(deployment: Obj, all_rss: Sequence[Obj | None], new_rs: Obj) -> int:
    """``NewRSNewReplicas``: what the new ReplicaSet may be scaled to now."""
    replicas = desired(deployment)
    if not is_rolling_update(deployment):
        return replicas
    surge = scaled_value(_rolling_params(deployment).get("maxSurge"), replicas, True)
    current = total_spec(all_rss)
    most = replicas + surge
    if current >= most:
        return spec_replicas(new_rs)
    return spec_replicas(new_rs) + min(most - current, replicas - spec_replicas(new_rs))


def max_scaled_down(deployment: Obj, all_rss: Sequence[Obj | None], new_rs: Obj | None) -> int:
    """How many old pods may go now: all asked for, less the minimum available, less the new ones not available."""
    min_available = desired(deployment) - max_unavailable(deployment)
    new_unavailable = spec_replicas(new_rs) - available_replicas(new_rs) if new_rs is not None else 0
    return total_spec(all_rss) - min_available - new_unavailable


class StaleReplicaSetStatus(Exception):
    """A ReplicaSet reports more available pods than it is asked for: its status lags its last resize.

    Kubernetes refuses the step ("invalid request to scale down") and retries the sync later.
    """


def unhealthy_cleanup(old_rss: Sequence[Obj], most: int) -> list[tuple[Obj, int]]:
    """``cleanupUnhealthyReplicas``: (old ReplicaSet, new size) shedding its unavailable pods, oldest first, ``most`` in all.

    Raises :class:`StaleReplicaSetStatus` rather than plan a growth.
    """
    plan: list[tuple[Obj, int]] = []
    done = 0
    for rs in by_creation(old_rss):
        if done >= most:
            break
        size = spec_replicas(rs)
        if size == 0 or size == available_replicas(rs):
            continue
        down = min(most - done, size - available_replicas(rs))
        if down < 0:
            raise StaleReplicaSetStatus(f"when cleaning up unhealthy replicas, got invalid request to scale down "
                                        f"{rs['metadata'].get('namespace')}/{rs['metadata'].get('name')} {size} -> {size - down}")
        plan.append((rs, size - down))
        done += down
    return plan


def rolling_scale_down(deployment: Obj, all_rss: Sequence[Obj | None], old_rss: Sequence[Obj]) -> list[tuple[Obj, int]]:
    """``scaleDownOldReplicaSetsForRollingUpdate``: (old ReplicaSet, new size) while more than the minimum are available."""
    min_available = desired(deployment) - max_unavailable(deployment)
    available = total_available(all_rss)
    if available <= min_available:
        return []
    total = available - min_available
    plan: list[tuple[Obj, int]] = []
    done = 0
    for rs in by_creation(old_rss):
        if done >= total:
            break
        size = spec_replicas(rs)
        if size == 0:
            continue
        down = min(size, total - done)
        plan.append((rs, size - down))
        done += down
    return plan
