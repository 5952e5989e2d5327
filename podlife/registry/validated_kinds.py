"""Strategies of kinds that only add validation to Kubernetes' defaults.

What it reads and writes: nothing of its own -- a :class:`ValidatedStrategy` is a
:class:`~podlife.registry.defaults.DefaultedStrategy` (defaults, status zero values) that
also runs a kind's create and update rules, which live in the ``*_validation`` modules
(:mod:`~podlife.registry.storage_validation`, :mod:`~podlife.registry.cluster_validation`).
Why: PersistentVolumeClaims, StorageClasses, LimitRanges and ResourceQuotas need no
lifecycle of their own, only Kubernetes' validation, so the catalog registers them with
this one class instead of a class per kind.
"""

from __future__ import annotations

from collections.abc import Callable

from .cluster_validation import validate_limit_range, validate_resource_quota
from .defaults import DefaultedStrategy
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
