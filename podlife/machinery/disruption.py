"""PodDisruptionBudget rules shared by the eviction API and the disruption controller.

Pure functions, no I/O. The eviction subresource (:mod:`podlife.api.eviction`) and the
disruption controller (:mod:`podlife.controllers.disruption`) both decide which budgets
guard a pod, whether a pod is healthy, and set the ``DisruptionAllowed`` condition; the
rules are Kubernetes' (``k8s.io/component-helpers/apps/poddisruptionbudget`` and the
PDB lister's ``GetPodPodDisruptionBudgets``):

* a budget guards a pod of its namespace that has labels when its selector is valid, not
  empty and matches them (a nil or empty selector guards nothing here, though the
  controller's own pod list takes ``{}`` as every pod);
* a pod is healthy when its ``Ready`` condition is True;
* ``DisruptionAllowed`` is True ``SufficientPods`` while ``disruptionsAllowed > 0``, else
  False ``InsufficientPods`` (``SyncFailed`` when the controller cannot compute the
  status); its ``observedGeneration`` is the status's, and ``lastTransitionTime`` moves
  only when the status flips (``meta.SetStatusCondition``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .selectors import SelectorError, label_selector_from_dict

Obj = dict[str, Any]

DISRUPTION_ALLOWED = "DisruptionAllowed"
SUFFICIENT_PODS = "SufficientPods"
INSUFFICIENT_PODS = "InsufficientPods"
SYNC_FAILED = "SyncFailed"
#: ``status.disruptedPods`` entries older than this are dropped (the pod was not deleted)
DELETION_TIMEOUT = 120.0
#: the eviction API refuses more unconfirmed disruptions than this
MAX_DISRUPTED_POD_SIZE = 2000
#: ``spec.unhealthyPodEvictionPolicy``
IF_HEALTHY_BUDGET = "IfHealthyBudget"
ALWAYS_ALLOW = "AlwaysAllow"
#: the pod condition an eviction adds before deleting
DISRUPTION_TARGET = "DisruptionTarget"
EVICTION_BY_EVICTION_API = "EvictionByEvictionAPI"
EVICTION_MESSAGE = "Eviction API: evicting"


def _meta(obj: Obj) -> Obj:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def guards(pdb: Obj, pod: Obj) -> bool:
    """The budget guards the pod (``GetPodPodDisruptionBudgets``)."""
    labels = _meta(pod).get("labels") or {}
    if not labels or _meta(pdb).get("namespace") != _meta(pod).get("namespace"):
        return False
    try:
        selector = label_selector_from_dict((pdb.get("spec") or {}).get("selector"))
    except SelectorError:
        return False
    return not selector.empty and selector.matches(labels)


def budgets_for(pdbs: Iterable[Obj], pod: Obj) -> list[Obj]:
    """The budgets of ``pdbs`` that guard ``pod``, by name."""
    return sorted((pdb for pdb in pdbs if guards(pdb, pod)), key=lambda pdb: str(_meta(pdb).get("name") or ""))


def is_pod_ready(pod: Obj) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if isinstance(cond, dict) and cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def set_condition(conditions: list[Obj], cond_type: str, status: str, reason: str, message: str,
                  observed_generation: int, now: str) -> list[Obj]:
    """``meta.SetStatusCondition``: a new list with the condition set; its transition time moves on a flip."""
    out = [dict(c) for c in conditions if isinstance(c, dict)]
    for cond in out:
        if cond.get("type") == cond_type:
            if cond.get("status") != status:
                cond["status"] = status
                cond["lastTransitionTime"] = now
            cond.update(reason=reason, message=message, observedGeneration=observed_generation)
            return out
    out.append({"type": cond_type, "status": status, "observedGeneration": observed_generation,
                "lastTransitionTime": now, "reason": reason, "message": message})
    return out


def with_disruption_allowed_condition(status: Obj, now: str) -> Obj:
    """``UpdateDisruptionAllowedCondition``: the status with its condition following ``disruptionsAllowed``."""
    allowed = int(status.get("disruptionsAllowed") or 0) > 0
    conditions = set_condition(list(status.get("conditions") or []), DISRUPTION_ALLOWED, "True" if allowed else "False",
                               SUFFICIENT_PODS if allowed else INSUFFICIENT_PODS, "",
                               int(status.get("observedGeneration") or 0), now)
    return {**status, "conditions": conditions}


def conditions_up_to_date(pdb: Obj) -> bool:
    """``ConditionsAreUpToDate``: the condition exists, the status is of this generation, and it says what the count says."""
    status = pdb.get("status") or {}
    cond = next((c for c in status.get("conditions") or () if isinstance(c, dict) and c.get("type") == DISRUPTION_ALLOWED), None)
    if cond is None or int(status.get("observedGeneration") or 0) != int(_meta(pdb).get("generation") or 0):
        return False
    if int(status.get("disruptionsAllowed") or 0) > 0:
        return bool(cond.get("status") == "True" and cond.get("reason") == SUFFICIENT_PODS)
    return bool(cond.get("status") == "False" and cond.get("reason") == INSUFFICIENT_PODS)


__all__ = [
    "ALWAYS_ALLOW", "DELETION_TIMEOUT", "DISRUPTION_ALLOWED", "DISRUPTION_TARGET", "EVICTION_BY_EVICTION_API",
    "EVICTION_MESSAGE", "IF_HEALTHY_BUDGET", "INSUFFICIENT_PODS", "MAX_DISRUPTED_POD_SIZE", "SUFFICIENT_PODS",
    "SYNC_FAILED", "budgets_for", "conditions_up_to_date", "guards", "is_pod_ready", "set_condition",
    "with_disruption_allowed_condition",
]
