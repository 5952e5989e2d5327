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

:func:`quota_usage` is the ``status.used`` a quota controller would write: the usage of
every resource of ``spec.hard`` that something counts, formatted as Kubernetes formats
quantities (:func:`format_quantity`).

Where the usage comes from
--------------------------
Kubernetes charges ``status.used`` at admission and its quota controller recounts it.
There is no quota controller here yet, so the usage is counted from the API server's
watch caches on every create in a namespace that has quotas (none: nothing to do); there
is no store read. A create is in the caches only once it commits, and creates run
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

import math
import weakref
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from ..machinery import errors
from ..machinery.resources import (
    DECIMAL_SI, HUGEPAGES as _HUGEPAGES, NANO as _NANO, ONE, POD_LEVEL as _POD_LEVEL, ZERO,
    Quantity, ResourceList,
    add_into as _add_into, container_list as _container_list, containers_of as _containers, format_quantity,
    parse, pod_level as _pod_level, pod_level_set as _pod_level_set, pod_limits,
    pod_requests, resource_list as _resource_list,
)
from .admission_plugin import CREATE_ONLY, AdmissionPlugin, Attributes

if TYPE_CHECKING:
    from .rest import ApiContext, ResourceREST

Obj = dict[str, Any]

#: resources quota never counts (Kubernetes' ``DefaultIgnoredResources``)
IGNORED_RESOURCES = frozenset({
    ("", "bindings"), ("", "componentstatuses"), ("", "events"), ("events.k8s.io", "events"),
    ("authentication.k8s.io", "tokenreviews"), ("authentication.k8s.io", "selfsubjectreviews"),
    ("authorization.k8s.io", "subjectaccessreviews"), ("authorization.k8s.io", "selfsubjectaccessreviews"),
    ("authorization.k8s.io", "localsubjectaccessreviews"), ("authorization.k8s.io", "selfsubjectrulesreviews"),
})

def _pretty(values: Mapping[str, Quantity], names: Iterable[str]) -> str:
    return ",".join(f"{name}={values[name]}" for name in sorted(names) if name in values)


# ---- pods: what one uses --------------------------------------------------------------

_REQUESTS = "requests."
#: what a quota on pods may limit (besides hugepages and extended resources)
POD_RESOURCES = frozenset({"count/pods", "pods", "cpu", "memory", "ephemeral-storage", "requests.cpu", "requests.memory",
                           "requests.ephemeral-storage", "limits.cpu", "limits.memory", "limits.ephemeral-storage"})
#: if a quota limits one of these, every container must set it (Kubernetes' "validationSet")
_MUST_SPECIFY = frozenset({"cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"})


def _spec(obj: Obj) -> Obj:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def _is_extended(name: str) -> bool:
    native = "/" not in name or "kubernetes.io/" in name
    return not native and not name.startswith(_REQUESTS)


def _compute_usage(requests: ResourceList, limits: ResourceList) -> ResourceList:
    """What requests and limits use in quota's names (``podComputeUsageHelper``)."""
    out: ResourceList = {"pods": ONE}
    for name in ("cpu", "memory", "ephemeral-storage"):
        if name in requests:
            out[name] = out[_REQUESTS + name] = requests[name]
        if name in limits:
            out["limits." + name] = limits[name]
    for name, q in requests.items():
        if name.startswith(_HUGEPAGES):
            out[name] = out[_REQUESTS + name] = q
        if _is_extended(name):
            out[_REQUESTS + name] = q
    return out


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def pod_is_charged(pod: Obj, now: datetime) -> bool:
    """Quota charges a pod's compute until it is terminal or stuck terminating past its grace period."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    meta = pod.get("metadata") or {}
    deleted, grace = _parse_time(meta.get("deletionTimestamp")), meta.get("deletionGracePeriodSeconds")
    if deleted is not None and isinstance(grace, int) and not isinstance(grace, bool):
        return now <= deleted + timedelta(seconds=grace)
    return True


def pod_usage(pod: Obj, now: datetime | None = None) -> ResourceList:
    """What a pod uses (``PodUsageFunc``): ``count/pods`` always, the rest while it is charged."""
    usage: ResourceList = {"count/pods": ONE}
    if not pod_is_charged(pod, now or datetime.now(timezone.utc)):
        return usage
    spec = _spec(pod)
    _add_into(usage, _compute_usage(pod_requests(spec), pod_limits(spec)))
    return usage


def _best_effort(pod: Obj) -> bool:
    qos = (pod.get("status") or {}).get("qosClass")
    if qos:
        return bool(qos == "BestEffort")
    spec = _spec(pod)
    if _pod_level_set(spec):
        lists = [_pod_level(spec, "requests"), _pod_level(spec, "limits")]
    else:
        lists = [_container_list(c, kind) for key in ("containers", "initContainers")
                 for c in _containers(spec, key) for kind in ("requests", "limits")]
    return not any(q.value > 0 for values in lists for name, q in values.items() if name in _POD_LEVEL)


def _terminating(pod: Obj) -> bool:
    deadline = _spec(pod).get("activeDeadlineSeconds")
    return isinstance(deadline, int) and not isinstance(deadline, bool) and deadline >= 0


def _cross_namespace_affinity(pod: Obj) -> bool:
    affinity = _spec(pod).get("affinity")
    if not isinstance(affinity, dict):
        return False
    for kind in ("podAffinity", "podAntiAffinity"):
        terms = affinity.get(kind)
        if not isinstance(terms, dict):
            continue
        candidates = list(terms.get("requiredDuringSchedulingIgnoredDuringExecution") or [])
        candidates += [w.get("podAffinityTerm") for w in terms.get("preferredDuringSchedulingIgnoredDuringExecution") or []
                       if isinstance(w, dict)]
        if any(isinstance(t, dict) and (t.get("namespaces") or t.get("namespaceSelector") is not None) for t in candidates):
            return True
    return False


def _selector_matches(selector: Obj, scope: str, values: set[str]) -> bool:
    """A scope selector's expression as a label selector on ``{scope: value}`` for each value (none: ``{}``)."""
    operator, wanted = selector.get("operator"), set(selector.get("values") or [])
    if operator == "Exists":
        return bool(values)
    if operator == "DoesNotExist":
        return not values
    if operator == "In":
        return bool(values & wanted)
    if operator == "NotIn":
        return not values or bool(values - wanted)
    return False


# ---- evaluators: what each resource uses and which scopes it can match -----------------

class _Evaluator:
    """Kubernetes' quota evaluator of one resource: a plain object count unless specialised."""

    def __init__(self, group: str, plural: str, alias: str | None = None) -> None:
        self.group, self.plural = group, plural
        self.count_name = f"count/{plural}.{group}" if group else f"count/{plural}"
        self.names = frozenset({self.count_name, *([alias] if alias else [])})

    def matching(self, names: Iterable[str]) -> list[str]:
        return sorted(n for n in names if n in self.names)

    def matches_scope(self, selector: Obj, obj: Obj) -> bool:
        return False  # object counts match no scope: a scoped quota never counts them

    def constraints(self, required: list[str], obj: Obj) -> str | None:
        return None

    def usage(self, obj: Obj, now: datetime) -> ResourceList:
        return {name: ONE for name in self.names}

    def changes_with_time(self, obj: Obj) -> bool:
        return False


class _Pods(_Evaluator):
    def __init__(self) -> None:
        super().__init__("", "pods")
        self.names = POD_RESOURCES

    def matching(self, names: Iterable[str]) -> list[str]:
        return sorted(n for n in names if n in POD_RESOURCES or n.startswith((_HUGEPAGES, _REQUESTS + _HUGEPAGES))
                      or (n.startswith(_REQUESTS) and _is_extended(n[len(_REQUESTS):])))

    def matches_scope(self, selector: Obj, pod: Obj) -> bool:
        scope = selector.get("scopeName")
        if scope == "Terminating":
            return _terminating(pod)
        if scope == "NotTerminating":
            return not _terminating(pod)
        if scope == "BestEffort":
            return _best_effort(pod)
        if scope == "NotBestEffort":
            return not _best_effort(pod)
        if scope == "PriorityClass":
            name = _spec(pod).get("priorityClassName")
            return _selector_matches(selector, scope, {name} if isinstance(name, str) and name else set())
        if scope == "CrossNamespacePodAffinity":
            return _cross_namespace_affinity(pod)
        return False

    def constraints(self, required: list[str], pod: Obj) -> str | None:
        """``must specify <resource> for: <containers>; ...`` for cpu/memory a container leaves unset."""
        spec = _spec(pod)
        if _pod_level_set(spec):
            return None
        wanted = _MUST_SPECIFY.intersection(required)
        missing: dict[str, set[str]] = {}
        for c in _containers(spec, "containers") + _containers(spec, "initContainers"):
            has = _compute_usage(_container_list(c, "requests"), _container_list(c, "limits"))
            for name in wanted - set(has):
                missing.setdefault(name, set()).add(str(c.get("name") or ""))
        if not missing:
            return None
        return "must specify " + "; ".join(f"{name} for: {','.join(sorted(missing[name]))}" for name in sorted(missing))

    def usage(self, pod: Obj, now: datetime) -> ResourceList:
        return pod_usage(pod, now)

    def changes_with_time(self, pod: Obj) -> bool:
        return bool((pod.get("metadata") or {}).get("deletionTimestamp"))  # stops being charged past its grace


class _Services(_Evaluator):
    def __init__(self) -> None:
        super().__init__("", "services")
        self.names = frozenset({"count/services", "services", "services.loadbalancers", "services.nodeports"})

    def usage(self, svc: Obj, now: datetime) -> ResourceList:
        spec = _spec(svc)
        ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
        out: ResourceList = {"count/services": ONE, "services": ONE, "services.loadbalancers": ZERO, "services.nodeports": ZERO}
        kind = spec.get("type")
        if kind == "NodePort":
            out["services.nodeports"] = Quantity(Fraction(len(ports)))
        elif kind == "LoadBalancer":
            if spec.get("allocateLoadBalancerNodePorts") is False:  # only the node ports asked for by number
                out["services.nodeports"] = Quantity(Fraction(sum(1 for p in ports if p.get("nodePort"))))
            else:
                out["services.nodeports"] = Quantity(Fraction(len(ports)))
            out["services.loadbalancers"] = ONE
        return out


_STORAGE_CLASS = ".storageclass.storage.k8s.io/"
_BETA_CLASS = "volume.beta.kubernetes.io/storage-class"


class _Claims(_Evaluator):
    def __init__(self) -> None:
        super().__init__("", "persistentvolumeclaims")
        self.names = frozenset({"count/persistentvolumeclaims", "persistentvolumeclaims", "requests.storage"})

    def matching(self, names: Iterable[str]) -> list[str]:
        return sorted(n for n in names if n in self.names
                      or n.endswith((_STORAGE_CLASS + "persistentvolumeclaims", _STORAGE_CLASS + "requests.storage")))

    def matches_scope(self, selector: Obj, claim: Obj) -> bool:
        if selector.get("scopeName") != "VolumeAttributesClass":
            return False
        status = claim.get("status") or {}
        names = {_spec(claim).get("volumeAttributesClassName"), status.get("currentVolumeAttributesClassName"),
                 (status.get("modifyVolumeStatus") or {}).get("targetVolumeAttributesClassName")}
        return _selector_matches(selector, "VolumeAttributesClass", {n for n in names if isinstance(n, str) and n})

    def usage(self, claim: Obj, now: datetime) -> ResourceList:
        spec = _spec(claim)
        out: ResourceList = {"persistentvolumeclaims": ONE, "count/persistentvolumeclaims": ONE}
        annotations = (claim.get("metadata") or {}).get("annotations") or {}
        # the beta annotation, when present, names the class before the field does
        storage_class = annotations.get(_BETA_CLASS, spec.get("storageClassName"))
        if isinstance(storage_class, str) and storage_class:
            out[storage_class + _STORAGE_CLASS + "persistentvolumeclaims"] = ONE
        requested = parse(((spec.get("resources") or {}).get("requests") or {}).get("storage"))
        if requested is not None:
            allocated = parse(((claim.get("status") or {}).get("allocatedResources") or {}).get("storage"))
            if allocated is not None and allocated.value > requested.value:
                requested = allocated
            if requested.value.denominator != 1:  # counted in whole bytes
                requested = Quantity(Fraction(math.ceil(requested.value)), requested.format)
            out["requests.storage"] = requested
            if isinstance(storage_class, str) and storage_class:
                out[storage_class + _STORAGE_CLASS + "requests.storage"] = requested
        return out


_STATIC: dict[tuple[str, str], _Evaluator] = {
    ("", "pods"): _Pods(),
    ("", "services"): _Services(),
    ("", "persistentvolumeclaims"): _Claims(),
    **{("", plural): _Evaluator("", plural, plural)
       for plural in ("configmaps", "resourcequotas", "replicationcontrollers", "secrets")},
}


def _evaluator_for(group: str, plural: str) -> _Evaluator | None:
    if (group, plural) in IGNORED_RESOURCES:
        return None
    return _STATIC.get((group, plural)) or _Evaluator(group, plural)


def _count_target(name: str) -> tuple[str, str] | None:
    """``count/deployments.apps`` -> ``("apps", "deployments")``."""
    if not name.startswith("count/"):
        return None
    plural, _, group = name[len("count/"):].partition(".")
    return (group, plural) if plural else None


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


def _hard(quota: Obj) -> ResourceList:
    return _resource_list(_spec(quota).get("hard"))


def _scope_selectors(quota: Obj) -> list[Obj]:
    spec = _spec(quota)
    selectors: list[Obj] = [{"scopeName": s, "operator": "Exists"} for s in spec.get("scopes") or []]
    expressions = (spec.get("scopeSelector") or {}).get("matchExpressions") or []
    return selectors + [e for e in expressions if isinstance(e, dict)]


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
_COUNTED: weakref.WeakKeyDictionary[Any, dict[str, tuple[int, dict[str, tuple[int, str]]]]] = weakref.WeakKeyDictionary()


def _in_nanos(usage: ResourceList) -> dict[str, tuple[int, str]]:
    return {name: (math.ceil(q.value * _NANO), q.format) for name, q in usage.items()}


def _used(ctx: ApiContext, ev: _Evaluator, namespace: str, names: list[str], selectors: list[Obj],
          now: datetime, *, pending: bool) -> ResourceList:
    """Usage of ``names`` by the evaluator's objects in the namespace that match every selector.

    Every create in a namespace with quotas sums its whole namespace, so an object's usage
    is kept per revision and summed in integers (nano units, as quantities are rounded).
    """
    sums = dict.fromkeys(names, 0)
    formats = dict.fromkeys(names, DECIMAL_SI)
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
            if selectors and not all(ev.matches_scope(s, obj) for s in selectors):
                continue
            if rv is None or ev.changes_with_time(obj):
                usage = _in_nanos(ev.usage(obj, now))
            else:
                seen = counted.get(key)
                if seen is None or seen[0] != rv:
                    seen = counted[key] = (rv, _in_nanos(ev.usage(obj, now)))
                usage = seen[1]
            for name in names:
                amount = usage.get(name)
                if amount is not None:
                    if sums[name] == 0:  # a sum takes the format of its first non-zero term (Quantity.Add)
                        formats[name] = amount[1]
                    sums[name] += amount[0]
    return {name: Quantity(Fraction(sums[name], _NANO), formats[name]) for name in names}


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
    ev = _evaluator_for(rt.group, rt.plural)
    meta = obj.get("metadata") or {}
    namespace = str(meta.get("namespace") or "")
    quotas = namespace_quotas(rest.ctx, namespace) if ev is not None else []
    if ev is None or not quotas:
        return []
    name = str(meta.get("name") or "")
    now = now or datetime.now(timezone.utc)
    covering: list[tuple[str, ResourceList, list[Obj]]] = []
    for quota in quotas:
        hard, selectors = _hard(quota), _scope_selectors(quota)
        limited = ev.matching(hard)
        if not limited or not all(ev.matches_scope(s, obj) for s in selectors):
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
            raise _forbidden(rest, name, f"exceeded quota: {quota_name}, requested: {_pretty(requested, exceeded)}, "
                                         f"used: {_pretty(used, exceeded)}, limited: {_pretty(hard, exceeded)}")
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
    hard, selectors = _hard(quota), _scope_selectors(quota)
    evaluators = list(_STATIC.values())
    for resource in hard:
        target = _count_target(resource)
        if target is not None and not any(resource in ev.matching([resource]) for ev in evaluators):
            ev = _evaluator_for(*target)
            if ev is not None and _rest_for(rest_ctx, *target) is not None:
                evaluators.append(ev)
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
