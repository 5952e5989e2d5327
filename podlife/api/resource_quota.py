"""ResourceQuota admission: a namespace's quotas bound what a create may add.

What
----
A ResourceQuota lists ``spec.hard`` amounts for a namespace: object counts (``pods``,
``count/<resource>[.<group>]`` and the legacy names ``services``, ``configmaps``,
``secrets``, ``persistentvolumeclaims``, ``replicationcontrollers``, ``resourcequotas``,
``services.loadbalancers``, ``services.nodeports``) and compute amounts of pods
(``requests.cpu``/``cpu``, ``requests.memory``/``memory``, ``limits.cpu``,
``limits.memory``, ``[requests.|limits.]ephemeral-storage``, hugepages, extended
resources as ``requests.<name>``) and of claims (``requests.storage``, per storage
class). :func:`admit_resource_quota` is Kubernetes' ResourceQuota admission plugin for a
create, with its rules and messages (``plugin/resourcequota/controller.go`` and the
evaluators of ``pkg/quota/v1/evaluator/core``):

1. a quota applies when it limits at least one resource the object uses and every one
   of its scopes (``spec.scopes``, ``spec.scopeSelector``) matches the object; only pods
   (Terminating, NotTerminating, BestEffort, NotBestEffort, PriorityClass,
   CrossNamespacePodAffinity) and claims (VolumeAttributesClass) can match a scope;
2. a pod that an applying quota limits in cpu or memory must say so in every container
   (``failed quota: <quota>: must specify limits.cpu for: a,b; requests.memory for: a``),
   unless it sets pod-level resources;
3. the object's usage (a pod's is its effective request: the larger of its containers'
   sum and its largest init container -- sidecars added -- plus overhead; a terminal pod
   uses only ``count/pods``) is added to what the namespace already uses, and a create
   that would exceed any ``spec.hard`` is refused: ``pods "p" is forbidden: exceeded
   quota: q, requested: pods=1, used: pods=2, limited: pods=2`` (resources sorted by
   name, comma-separated, quantities in Kubernetes' canonical form).

:func:`quota_usage` is the ``status.used`` the quota controller writes, counted from the
caches: the usage of every resource of ``spec.hard`` that something counts, formatted as
Kubernetes formats quantities (:func:`format_quantity`).

Where the usage comes from
--------------------------
Kubernetes charges ``status.used`` at admission and its quota controller recounts it.
Here the ResourceQuota controller (:mod:`podlife.controllers.resource_quota`) writes
``status.used`` for ``kubectl describe quota``, but admission does not trust it: the
usage is counted from the API server's watch caches on every create in a namespace that
has quotas (none: nothing to do); there is no store read. What an object uses, and which
scopes it is in, are the rules of :mod:`podlife.machinery.quota`, the controller's too.

A create is in the caches only once it commits, and creates run
concurrently, so a create that passed admission and is still committing is remembered
(a *pending charge*) and counted too, until its create ends: ``ResourceREST.create``
calls :func:`release` when it returns or fails, so a create refused later, a dry run or
a name already taken charges nothing once it is over, and a committed one is counted by
the cache from then on.

Wiring
------
Kubernetes runs this plugin for every create of a namespaced, stored resource except
the ignored ones (:data:`IGNORED_RESOURCES`: events, bindings, reviews), last of all its
admission plugins. So does podlife: :data:`PLUGIN` (``ResourceQuota``) is the last of
:data:`podlife.api.admission.ADMISSION_PLUGINS`, a validating half on creates of every
resource, custom ones too (after PodSecurity, the admission policies and the validating
webhooks); ``ResourceREST.create`` calls :func:`release` around its store write.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..machinery import errors
from ..machinery.resources import ResourceList, format_quantity
from ..machinery.quota import (
    IGNORED_RESOURCES, POD_RESOURCES, Evaluator, Nanos, Quantity, Tally, counted_evaluators, evaluator_for, hard_of,
    in_nanos, matches_scopes, parse, pod_is_charged, pod_limits, pod_requests, pod_usage, pretty, scope_selectors,
)
from .admission_plugin import CREATE_ONLY, AdmissionPlugin, Attributes

if TYPE_CHECKING:
    from .rest import ApiContext, ResourceREST

Obj = dict[str, Any]

# ---- the caches ------------------------------------------------------------------------

def _rest_for(ctx: ApiContext, group: str, plural: str) -> ResourceREST | None:
    for (g, _, p), rest in ctx.rest.items():
        if g == group and p == plural and rest.rt.namespaced:
            return rest
    return None


def _cached(rest: ResourceREST, namespace: str) -> Iterator[Obj]:
    return (co.obj for co in rest.cache.in_namespace(namespace))


def namespace_quotas(ctx: ApiContext, namespace: str) -> list[Obj]:
    """The namespace's ResourceQuotas, by name, from the watch cache."""
    rq_rest = ctx.rest_by("", "v1", "resourcequotas")
    if rq_rest is None or not namespace or not rq_rest.cache.objects:  # no quota anywhere: the usual case
        return []
    return list(_cached(rq_rest, namespace))


#: Creates that passed quota and have not ended yet, per API context: key -> object. A create
#: is only counted from the cache once it commits, so two concurrent creates could each pass
#: a quota only one fits; a create's charge therefore stays here until ``ResourceREST.create``
#: ends (:func:`release`) -- committed (then the cache counts it) or failed.
_PENDING: weakref.WeakKeyDictionary[Any, dict[str, Obj]] = weakref.WeakKeyDictionary()


def _pending(ctx: ApiContext, rest: ResourceREST, namespace: str) -> list[Obj]:
    """Objects of ``rest`` in ``namespace`` that passed quota and whose create has not ended."""
    charges = _PENDING.get(ctx)
    if not charges:
        return []
    prefix = rest.rt.key_prefix(namespace)
    # in the cache already: counted there (or the name was taken: that create fails)
    return [obj for key, obj in charges.items() if key.startswith(prefix) and rest.cache.get(key) is None]


def _remember(rest: ResourceREST, obj: Obj) -> None:
    meta = obj.get("metadata") or {}
    key = rest.rt.key(meta.get("namespace"), str(meta.get("name") or ""))
    _PENDING.setdefault(rest.ctx, {})[key] = obj


def release(rest: ResourceREST, key: str) -> None:
    """The create of ``key`` ended (committed, refused later, or a dry run): drop its charge."""
    charges = _PENDING.get(rest.ctx)
    if charges:
        charges.pop(key, None)


#: per watch cache: an object's usage in nano units by key, with the revision it was counted at
_COUNTED: weakref.WeakKeyDictionary[Any, dict[str, tuple[int, Nanos]]] = weakref.WeakKeyDictionary()


def _used(ctx: ApiContext, ev: Evaluator, namespace: str, names: list[str], selectors: list[Obj],
          now: datetime, *, pending: bool) -> ResourceList:
    """Usage of ``names`` by the evaluator's objects in the namespace that match every selector.

    Every create in a namespace with quotas sums its whole namespace, so an object's usage
    is kept per revision (:data:`_COUNTED`) and summed in integers (:class:`Tally`).
    """
    tally = Tally(names)
    rest = _rest_for(ctx, ev.group, ev.plural)
    if rest is not None:
        cache = rest.cache
        counted = _COUNTED.setdefault(cache, {})
        if len(counted) > 2 * len(cache.objects) + 64:  # forget deleted objects now and then
            counted = _COUNTED[cache] = {k: v for k, v in counted.items() if k in cache.objects}
        entries: list[tuple[str, Obj, int | None]] = [(co.key, co.obj, co.rv) for co in cache.in_namespace(namespace)]
        if pending:
            entries += [("", obj, None) for obj in _pending(ctx, rest, namespace)]
        for key, obj, rv in entries:
            if not matches_scopes(ev, selectors, obj):
                continue
            if rv is None or ev.changes_with_time(obj):
                tally.add(in_nanos(ev.usage(obj, now)))
                continue
            seen = counted.get(key)
            if seen is None or seen[0] != rv:
                seen = counted[key] = (rv, in_nanos(ev.usage(obj, now)))
            tally.add(seen[1])
    return tally.result()


# ---- the admission step and the controller's usage ------------------------------------

def _forbidden(rest: ResourceREST, name: str, why: str) -> errors.ApiError:
    resource = rest.rt.group_resource
    message = f'{resource} "{name}" is forbidden: {why}' if name else f"{resource} is forbidden: {why}"
    return errors.forbidden(message, rest.rt, name)


def admit_resource_quota(rest: ResourceREST, obj: Obj, old: Obj | None, attrs: Attributes, *,
                         now: datetime | None = None) -> list[str]:
    """Refuse (403) a create that a quota's scope covers and that would exceed its ``spec.hard``.

    The validating half of :data:`PLUGIN`; a create it lets through is charged until
    :func:`release`.
    """
    rt = rest.rt
    if not rt.namespaced or not rt.strategy.stored:
        return []
    ev = evaluator_for(rt.group, rt.plural)
    meta = obj.get("metadata") or {}
    namespace = str(meta.get("namespace") or "")
    quotas = namespace_quotas(rest.ctx, namespace) if ev is not None else []
    if ev is None or not quotas:
        return []
    name = str(meta.get("name") or "")
    now = now or datetime.now(timezone.utc)
    covering: list[tuple[str, ResourceList, list[Obj]]] = []
    for quota in quotas:
        hard, selectors = hard_of(quota), scope_selectors(quota)
        limited = ev.matching(hard)
        if not limited or not matches_scopes(ev, selectors, obj):
            continue
        quota_name = str((quota.get("metadata") or {}).get("name") or "")
        problem = ev.constraints(limited, obj)
        if problem:
            raise _forbidden(rest, name, f"failed quota: {quota_name}: {problem}")
        covering.append((quota_name, hard, selectors))
    if not covering:
        return []
    usage = ev.usage(obj, now)
    negative = sorted(n for n, q in usage.items() if q.value < 0)
    if negative:
        raise _forbidden(rest, name, f"quota usage is negative for resource(s): {','.join(negative)}")
    delta = {n: q for n, q in usage.items() if q.value != 0}
    charged = False
    for quota_name, hard, selectors in covering:
        requested = {n: q for n, q in delta.items() if n in hard}
        if not requested:
            continue
        used = _used(rest.ctx, ev, namespace, sorted(requested), selectors, now, pending=True)
        exceeded = [n for n in sorted(requested) if used[n].plus(requested[n]).value > hard[n].value]
        if exceeded:
            raise _forbidden(rest, name, f"exceeded quota: {quota_name}, requested: {pretty(requested, exceeded)}, "
                                         f"used: {pretty(used, exceeded)}, limited: {pretty(hard, exceeded)}")
        charged = True
    if charged:
        _remember(rest, obj)
    return []


#: every resource: the step itself passes over what quota does not count
PLUGIN = AdmissionPlugin("ResourceQuota", None, CREATE_ONLY, validate=admit_resource_quota)


def quota_usage(rest_ctx: ApiContext, quota_obj: Obj, *, now: datetime | None = None) -> dict[str, str]:
    """``status.used`` of a quota: what its namespace uses of each counted resource of ``spec.hard``.

    Only resources something counts are reported (an unknown ``count/`` resource is not);
    amounts are Kubernetes' canonical quantities (``2``, ``500m``, ``1536Mi``, ``0``).
    """
    quota = getattr(quota_obj, "obj", quota_obj)
    namespace = str((quota.get("metadata") or {}).get("namespace") or "")
    hard, selectors = hard_of(quota), scope_selectors(quota)
    evaluators = counted_evaluators(hard, lambda group, plural: _rest_for(rest_ctx, group, plural) is not None)
    used: ResourceList = {}
    for ev in evaluators:
        names = ev.matching(hard)
        if names:
            used.update(_used(rest_ctx, ev, namespace, names, selectors, now or datetime.now(timezone.utc), pending=False))
    return {name: format_quantity(used[name]) for name in sorted(used)}


def admission_keys(ctx: ApiContext) -> list[tuple[str, str]]:
    """The ``(group, plural)`` of every namespaced, stored resource quota admission covers in ``ctx``.

    Custom resources are in it only if their CRD is served when this is called; running the
    step for every namespaced create in ``ResourceREST.create`` would cover later ones too.
    """
    keys = {(rt.group, rt.plural) for rt in (rest.rt for rest in ctx.rest.values())
            if rt.namespaced and rt.strategy.stored and "create" in rt.verbs}
    return sorted(keys - IGNORED_RESOURCES)


__all__ = [
    "IGNORED_RESOURCES", "POD_RESOURCES", "Quantity", "admission_keys", "admit_resource_quota", "format_quantity",
    "namespace_quotas", "parse", "pod_is_charged", "pod_limits", "pod_requests", "pod_usage", "quota_usage",
    "PLUGIN", "release",
]
