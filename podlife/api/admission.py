"""The admission chain: kube-apiserver's admission plugins podlife has, in one ordered list.

:data:`ADMISSION_PLUGINS` is kube-apiserver's ``AllOrderedPlugins``
(``pkg/kubeapiserver/options/plugins.go``) cut down to the plugins podlife has, one line
each, in that order. As in Kubernetes, the order serves both phases
(:mod:`podlife.api.admission_plugin`): ``ResourceREST`` runs every plugin's mutating half
in list order (:meth:`Chain.mutate`), then the object's own validation, then every
validating half in list order (:meth:`Chain.validate`), then the store write; a delete
runs the validating halves for deletes (:meth:`Chain.validate_delete`). So a pod's create
goes:

- mutating: NamespaceLifecycle, LimitRanger (defaults), ServiceAccount, Priority,
  DefaultTolerationSeconds, MutatingAdmissionPolicy, MutatingAdmissionWebhook;
- the pod's validation (defaults included: a LimitRange default that makes a request
  exceed its limit is validation's 422);
- validating: LimitRanger (bounds), ServiceAccount, NodeRestriction, PodSecurity,
  ValidatingAdmissionPolicy, ValidatingAdmissionWebhook, ResourceQuota (last, its charge
  released around the store write by ``ResourceREST.create``).

A PersistentVolumeClaim's create meets DefaultStorageClass (the default class's name for a
claim without one) and StorageObjectInUseProtection (its protection finalizer; a
PersistentVolume's create too) after DefaultTolerationSeconds' place, and its update
PersistentVolumeClaimResize's validating half (only a bound claim of an expandable class
grows) there: :mod:`podlife.api.storage_admission`.

An update is admitted the same way by the plugins that look at updates (Priority,
DefaultTolerationSeconds, PersistentVolumeClaimResize, NodeRestriction, the policies, the
webhooks); a client's write to a subresource (``status``...) only by NodeRestriction, the
policies and the webhooks, and the API server's own writes (binding, scale) only by
NodeRestriction.

A plugin named in ``ApiContext.disabled_admission_plugins`` (``--disable-admission-plugins``,
Kubernetes' names) is skipped. Which plugins a write meets depends only on the resource,
the operation, the kind of request (object, subresource, the server's own write) and the
disabled set, so :func:`chain` works it out once per combination and keeps it.

Not admission, so not in the list (as in Kubernetes): a Service's ClusterIP is allocated
by its registry (``ServiceStrategy.allocate``, :mod:`podlife.registry.core`), and RBAC's
escalation and bind checks (:mod:`podlife.api.rbac_guard`) belong to the RBAC registry;
``ResourceREST`` runs both after validation, before the validating plugins.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..machinery import errors
from ..registry.types import Obj
from . import admission_policy, certificates, webhooks
from . import default_toleration_seconds, limit_ranger, node_restriction, pod_security, priority_admission
from . import resource_quota, service_account_admission, storage_admission
from .admission_plugin import (
    ALL_OPERATIONS, CREATE_AND_UPDATE, CREATE_ONLY, DELETE, OBJECT, SUBRESOURCE, AdmissionPlugin, Attributes,
    DeleteValidator, Mutator, Validator, Warnings,
)

if TYPE_CHECKING:
    from .rest import ResourceREST


# ---- NamespaceLifecycle ----------------------------------------------------------------

def namespace_lifecycle(rest: ResourceREST, obj: Obj, old: Obj | None, attrs: Attributes) -> Warnings:
    """NamespaceLifecycle: no new content in a namespace that is missing (404) or terminating (403).

    Events are still taken from a terminating namespace (its controllers report on the
    cleanup there).
    """
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    if not rest.rt.namespaced or not isinstance(namespace, str) or not namespace:
        return []
    ns_rest = rest.ctx.rest_by("", "v1", "namespaces")
    if ns_rest is None:
        return []
    ns = ns_rest.cache.get(ns_rest.rt.key(None, namespace))
    if ns is None:
        raise errors.ApiError(404, "NotFound", f'namespaces "{namespace}" not found', {"name": namespace, "kind": "namespaces"})
    if ns.metadata.get("deletionTimestamp") and rest.rt.kind != "Event":
        name = str(meta.get("name") or "")
        raise errors.ApiError(403, "Forbidden", f"{rest.rt.group_resource} \"{name}\" is forbidden: unable to create new "
                                                f"content in namespace {namespace} because it is being terminated",
                              {"name": name, "kind": rest.rt.plural,
                               "causes": [{"reason": "NamespaceTerminating", "field": "metadata.namespace",
                                           "message": f"namespace {namespace} is being terminated"}]})
    return []


NAMESPACE_LIFECYCLE = AdmissionPlugin("NamespaceLifecycle", None, CREATE_ONLY, mutate=namespace_lifecycle)


# ---- the admission policies and webhooks (podlife.api.admission_policy, .webhooks) ------

def _mutating_policies(rest: ResourceREST, obj: Obj, old: Obj | None, attrs: Attributes) -> Warnings:
    admission_policy.mutate(rest, obj, old, attrs.operation, dry_run=attrs.dry_run, subresource=attrs.subresource)
    return []


def _mutating_webhooks(rest: ResourceREST, obj: Obj, old: Obj | None, attrs: Attributes) -> Awaitable[Warnings]:
    return webhooks.mutate(rest, obj, old, attrs.operation, dry_run=attrs.dry_run, subresource=attrs.subresource)


def _validating_policies(rest: ResourceREST, obj: Obj, old: Obj | None, attrs: Attributes) -> Warnings:
    return admission_policy.validate(rest, obj, old, attrs.operation, dry_run=attrs.dry_run,
                                     subresource=attrs.subresource)


def _validating_policies_on_delete(rest: ResourceREST, old: Obj, attrs: Attributes) -> Warnings:
    return admission_policy.validate(rest, None, old, attrs.operation, dry_run=attrs.dry_run)


def _validating_webhooks(rest: ResourceREST, obj: Obj, old: Obj | None, attrs: Attributes) -> Awaitable[Warnings]:
    return webhooks.validate(rest, obj, old, attrs.operation, dry_run=attrs.dry_run, subresource=attrs.subresource)


def _validating_webhooks_on_delete(rest: ResourceREST, old: Obj, attrs: Attributes) -> Awaitable[Warnings]:
    return webhooks.validate(rest, None, old, attrs.operation, dry_run=attrs.dry_run)


#: what a client writes, with its subresources (the server's own writes are not sent out)
_CLIENT_WRITES = frozenset({OBJECT, SUBRESOURCE})
MUTATING_ADMISSION_POLICY = AdmissionPlugin("MutatingAdmissionPolicy", None, CREATE_AND_UPDATE, _CLIENT_WRITES,
                                            mutate=_mutating_policies)
MUTATING_ADMISSION_WEBHOOK = AdmissionPlugin("MutatingAdmissionWebhook", None, CREATE_AND_UPDATE, _CLIENT_WRITES,
                                             mutate=_mutating_webhooks)
VALIDATING_ADMISSION_POLICY = AdmissionPlugin("ValidatingAdmissionPolicy", None, ALL_OPERATIONS, _CLIENT_WRITES,
                                              validate=_validating_policies,
                                              validate_delete=_validating_policies_on_delete)
VALIDATING_ADMISSION_WEBHOOK = AdmissionPlugin("ValidatingAdmissionWebhook", None, ALL_OPERATIONS, _CLIENT_WRITES,
                                               validate=_validating_webhooks,
                                               validate_delete=_validating_webhooks_on_delete)


#: kube-apiserver's AllOrderedPlugins that podlife has, in that order (one line each)
ADMISSION_PLUGINS: tuple[AdmissionPlugin, ...] = (
    NAMESPACE_LIFECYCLE,  # NamespaceLifecycle
    limit_ranger.PLUGIN,  # LimitRanger
    service_account_admission.PLUGIN,  # ServiceAccount
    node_restriction.PLUGIN,  # NodeRestriction
    pod_security.PLUGIN,  # PodSecurity
    priority_admission.POD_PLUGIN,  # Priority (pods)
    priority_admission.PRIORITY_CLASS_PLUGIN,  # Priority (PriorityClasses)
    default_toleration_seconds.PLUGIN,  # DefaultTolerationSeconds
    storage_admission.DEFAULT_STORAGE_CLASS_PLUGIN,  # DefaultStorageClass
    storage_admission.STORAGE_OBJECT_IN_USE_PROTECTION_PLUGIN,  # StorageObjectInUseProtection
    storage_admission.PERSISTENT_VOLUME_CLAIM_RESIZE_PLUGIN,  # PersistentVolumeClaimResize
    certificates.CERTIFICATE_APPROVAL,  # CertificateApproval
    certificates.CERTIFICATE_SIGNING,  # CertificateSigning
    certificates.CERTIFICATE_SUBJECT_RESTRICTION,  # CertificateSubjectRestriction
    MUTATING_ADMISSION_POLICY,  # MutatingAdmissionPolicy
    MUTATING_ADMISSION_WEBHOOK,  # MutatingAdmissionWebhook
    VALIDATING_ADMISSION_POLICY,  # ValidatingAdmissionPolicy
    VALIDATING_ADMISSION_WEBHOOK,  # ValidatingAdmissionWebhook
    resource_quota.PLUGIN,  # ResourceQuota
)

#: the names ``--disable-admission-plugins`` knows
PLUGIN_NAMES = frozenset(p.name for p in ADMISSION_PLUGINS)


# ---- running the chain -----------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Chain:
    """The halves one kind of write meets, in the list's order."""

    mutators: tuple[Mutator, ...]
    validators: tuple[Validator, ...]
    delete_validators: tuple[DeleteValidator, ...]

    async def mutate(self, rest: ResourceREST, obj: Obj, old: Obj | None, attrs: Attributes) -> Warnings:
        """The mutating halves (``old`` None: a create); the first refusal is raised."""
        warnings: Warnings = []
        for half in self.mutators:
            answer = half(rest, obj, old, attrs)
            warnings += answer if isinstance(answer, list) else await answer
        return warnings

    async def validate(self, rest: ResourceREST, obj: Obj, old: Obj | None, attrs: Attributes) -> Warnings:
        """The validating halves; the first refusal is raised."""
        warnings: Warnings = []
        for half in self.validators:
            answer = half(rest, obj, old, attrs)
            warnings += answer if isinstance(answer, list) else await answer
        return warnings

    async def validate_delete(self, rest: ResourceREST, old: Obj, attrs: Attributes) -> Warnings:
        """The validating halves of a delete of ``old``; the first refusal is raised."""
        warnings: Warnings = []
        for half in self.delete_validators:
            answer = half(rest, old, attrs)
            warnings += answer if isinstance(answer, list) else await answer
        return warnings


_CHAINS: dict[tuple[str, str, str, str, frozenset[str]], Chain] = {}
_NOTHING_DISABLED: frozenset[str] = frozenset()


def chain(rest: ResourceREST, attrs: Attributes) -> Chain:
    """The plugins' halves for this write, picked once per resource, operation, kind of
    request and disabled set."""
    disabled = rest.ctx.disabled_admission_plugins
    key = (rest.rt.group, rest.rt.plural, attrs.operation, attrs.kind_of_request,
           frozenset(disabled) if disabled else _NOTHING_DISABLED)
    found = _CHAINS.get(key)
    if found is None:
        found = _CHAINS[key] = _build_chain(*key)
    return found


def _build_chain(group: str, plural: str, operation: str, kind_of_request: str, disabled: frozenset[str]) -> Chain:
    plugins = [p for p in ADMISSION_PLUGINS
               if p.name not in disabled and p.handles(group, plural, operation, kind_of_request)]
    if operation == DELETE:
        return Chain((), (), tuple(p.validate_delete for p in plugins if p.validate_delete is not None))
    return Chain(tuple(p.mutate for p in plugins if p.mutate is not None),
                 tuple(p.validate for p in plugins if p.validate is not None), ())


__all__ = [
    "ADMISSION_PLUGINS", "PLUGIN_NAMES", "Attributes", "Chain", "chain", "namespace_lifecycle",
]
