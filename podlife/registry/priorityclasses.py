"""PriorityClasses (``scheduling.k8s.io/v1``): defaults, validation, the built-in classes.

Learned from Kubernetes' ``pkg/apis/scheduling`` (``types.go``, ``validation/validation.go``,
``v1/helpers.go``, ``v1/defaults.go``):

- ``preemptionPolicy`` defaults to ``PreemptLowerPriority`` and is ``PreemptLowerPriority``
  or ``Never``;
- a name starting ``system-`` must be one of the built-in classes with its exact value
  and ``globalDefault`` false (``metadata.name: Forbidden: priority class names with
  'system-' prefix are reserved for system use only. error: ...``); any other class has
  a ``value`` of at most 1,000,000,000 (``HighestUserDefinablePriority``);
- ``value`` and ``preemptionPolicy`` never change after create.

The built-in classes, :data:`SYSTEM_PRIORITY_CLASSES`, are made by the API server at
start (:func:`podlife.api.priority_admission.ensure_system_priority_classes`, Kubernetes'
``scheduling/bootstrap-system-priority-classes`` post-start hook). That only one class is
``globalDefault`` needs the other classes: it is the Priority admission plugin's check.
"""

from __future__ import annotations

from typing import Any

from .defaults import DefaultedStrategy
from .types import FieldError, Obj, forbidden, invalid, not_supported, required

GROUP = "scheduling.k8s.io"
HIGHEST_USER_DEFINABLE_PRIORITY = 1_000_000_000
SYSTEM_CRITICAL_PRIORITY = 2 * HIGHEST_USER_DEFINABLE_PRIORITY
SYSTEM_PREFIX = "system-"
SYSTEM_NODE_CRITICAL = "system-node-critical"
SYSTEM_CLUSTER_CRITICAL = "system-cluster-critical"
PREEMPTION_POLICIES = ["PreemptLowerPriority", "Never"]
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1

#: name -> (value, description) of the classes every cluster has
SYSTEM_PRIORITY_CLASSES: dict[str, tuple[int, str]] = {
    SYSTEM_NODE_CRITICAL: (SYSTEM_CRITICAL_PRIORITY + 1000,
                           "Used for system critical pods that must not be moved from their current node."),
    SYSTEM_CLUSTER_CRITICAL: (SYSTEM_CRITICAL_PRIORITY,
                              "Used for system critical pods that must run in the cluster, but can be moved to "
                              "another node if necessary."),
}


def system_priority_class(name: str) -> Obj:
    value, description = SYSTEM_PRIORITY_CLASSES[name]
    return {"apiVersion": f"{GROUP}/v1", "kind": "PriorityClass", "metadata": {"name": name},
            "value": value, "description": description}


def _system_class_error(name: str, value: Any, global_default: Any) -> str | None:
    """Why ``name`` is not a valid built-in class (Kubernetes' ``IsKnownSystemPriorityClass``); None if it is."""
    known = SYSTEM_PRIORITY_CLASSES.get(name)
    if known is None:
        return f"{name} is not a known system priority class"
    if value != known[0]:
        return f"value of {name} PriorityClass must be {known[0]}"
    if bool(global_default):
        return f"globalDefault of {name} PriorityClass must be false"
    return None


def validate_priority_class(obj: Obj) -> list[FieldError]:
    name = str((obj.get("metadata") or {}).get("name") or "")
    value = obj.get("value", 0)
    errs: list[FieldError] = []
    if isinstance(value, bool) or not isinstance(value, int) or not _INT32_MIN <= value <= _INT32_MAX:
        errs.append(invalid("value", value, "must be a 32-bit integer"))
    elif name.startswith(SYSTEM_PREFIX):
        why = _system_class_error(name, value, obj.get("globalDefault"))
        if why is not None:
            errs.append(forbidden("metadata.name", f"priority class names with '{SYSTEM_PREFIX}' prefix are "
                                                   f"reserved for system use only. error: {why}"))
    elif value > HIGHEST_USER_DEFINABLE_PRIORITY:
        errs.append(forbidden("value", f"maximum allowed value of a user defined priority is "
                                       f"{HIGHEST_USER_DEFINABLE_PRIORITY}"))
    if not isinstance(obj.get("globalDefault", False), bool):
        errs.append(invalid("globalDefault", obj.get("globalDefault"), "must be a boolean"))
    policy = obj.get("preemptionPolicy")
    if policy == "":
        errs.append(required("preemptionPolicy"))
    elif policy is not None and policy not in PREEMPTION_POLICIES:
        errs.append(not_supported("preemptionPolicy", policy, PREEMPTION_POLICIES))
    return errs


class PriorityClassStrategy(DefaultedStrategy):
    def __init__(self) -> None:
        super().__init__(GROUP, "PriorityClass")

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_priority_class(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(new)
        if new.get("value", 0) != old.get("value", 0):
            errs.append(forbidden("value", "may not be changed in an update."))
        if new.get("preemptionPolicy") != old.get("preemptionPolicy"):
            errs.append(invalid("preemptionPolicy", new.get("preemptionPolicy"), "field is immutable"))
        return errs
