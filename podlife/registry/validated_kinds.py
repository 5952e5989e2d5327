"""Strategies of kinds that only add validation to Kubernetes' defaults.

What it reads and writes: nothing of its own -- a :class:`ValidatedStrategy` is a
:class:`~podlife.registry.defaults.DefaultedStrategy` (defaults, status zero values) that
also runs a kind's create and update rules, which live in the ``*_validation`` modules
(:mod:`~podlife.registry.storage_validation`, :mod:`~podlife.registry.cluster_validation`,
:mod:`~podlife.registry.networking_validation`, :mod:`~podlife.registry.policy_validation`,
:mod:`~podlife.registry.core_validation`). Why: PersistentVolumeClaims, StorageClasses,
LimitRanges, ResourceQuotas, the networking kinds, PodDisruptionBudgets, HPAs, PodTemplates,
ControllerRevisions and events.k8s.io Events need no lifecycle of their own, only
Kubernetes' validation, so the catalog registers them with this one class instead of a
class per kind.
"""

from __future__ import annotations

from collections.abc import Callable

from .cluster_validation import validate_limit_range, validate_resource_quota
from .core_validation import (
    validate_controller_revision,
    validate_controller_revision_update,
    validate_events_event,
    validate_pod_template,
)
from .defaults import DefaultedStrategy
from .networking_validation import (
    validate_endpoint_slice,
    validate_endpoint_slice_update,
    validate_ingress,
    validate_ingress_class,
    validate_ingress_class_update,
    validate_ingress_update,
    validate_network_policy,
)
from .policy_validation import validate_horizontal_pod_autoscaler, validate_pod_disruption_budget
from .storage_validation import (
    validate_persistent_volume_claim,
    validate_persistent_volume_claim_update,
    validate_storage_class,
    validate_storage_class_update,
)
from .types import FieldError, Obj

Check = Callable[[Obj], list[FieldError]]
UpdateCheck = Callable[[Obj, Obj], list[FieldError]]


class ValidatedStrategy(DefaultedStrategy):
    """Defaults, then ``check`` on create and ``check`` plus ``update_check`` on update."""

    def __init__(self, group: str, kind: str, check: Check, update_check: UpdateCheck | None = None, *,
                 has_status: bool = False) -> None:
        super().__init__(group, kind, has_status=has_status)
        self._check = check
        self._update_check = update_check

    def validate(self, obj: Obj) -> list[FieldError]:
        return self._check(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        if self._update_check is None:
            return self._check(new)
        return self._update_check(new, old) + self._check(new)


def pvc_strategy() -> ValidatedStrategy:
    return ValidatedStrategy("", "PersistentVolumeClaim", validate_persistent_volume_claim,
                             validate_persistent_volume_claim_update, has_status=True)


def storage_class_strategy() -> ValidatedStrategy:
    return ValidatedStrategy("storage.k8s.io", "StorageClass", validate_storage_class, validate_storage_class_update)


def limit_range_strategy() -> ValidatedStrategy:
    return ValidatedStrategy("", "LimitRange", validate_limit_range)


def resource_quota_strategy() -> ValidatedStrategy:
    return ValidatedStrategy("", "ResourceQuota", validate_resource_quota, has_status=True)


def ingress_strategy() -> ValidatedStrategy:
    return ValidatedStrategy("networking.k8s.io", "Ingress", validate_ingress, validate_ingress_update,
                             has_status=True)


def ingress_class_strategy() -> ValidatedStrategy:
    return ValidatedStrategy("networking.k8s.io", "IngressClass", validate_ingress_class,
                             validate_ingress_class_update)


def network_policy_strategy() -> ValidatedStrategy:
    return ValidatedStrategy("networking.k8s.io", "NetworkPolicy", validate_network_policy)


def endpoint_slice_strategy() -> ValidatedStrategy:
    return ValidatedStrategy("discovery.k8s.io", "EndpointSlice", validate_endpoint_slice,
                             validate_endpoint_slice_update)


def pod_disruption_budget_strategy() -> ValidatedStrategy:
    strategy = ValidatedStrategy("policy", "PodDisruptionBudget", validate_pod_disruption_budget, has_status=True)
    strategy.tracks_generation = True  # the eviction API waits for status.observedGeneration to catch up
    return strategy


def horizontal_pod_autoscaler_strategy() -> ValidatedStrategy:
    return ValidatedStrategy("autoscaling", "HorizontalPodAutoscaler", validate_horizontal_pod_autoscaler,
                             has_status=True)


def pod_template_strategy() -> ValidatedStrategy:
    return ValidatedStrategy("", "PodTemplate", validate_pod_template)


def controller_revision_strategy() -> ValidatedStrategy:
    return ValidatedStrategy("apps", "ControllerRevision", validate_controller_revision,
                             validate_controller_revision_update)


def events_event_strategy() -> ValidatedStrategy:
    return ValidatedStrategy("events.k8s.io", "Event", validate_events_event)
