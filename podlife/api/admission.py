"""Admission steps that need the cluster's state.

Kubernetes' admission plugins (:data:`ADMISSION_PLUGINS`, one line each, in
kube-apiserver's ``AllOrderedPlugins`` order, ``pkg/kubeapiserver/options/plugins.go``)
run in two phases (:mod:`podlife.api.admission_plugin`): their mutating halves
(:func:`mutate`) after NamespaceLifecycle and before the mutating webhooks and the
object's validation, on create and update; their validating halves (:func:`validate`)
after validation. So on a pod's create: NamespaceLifecycle, ServiceAccount, Priority,
DefaultTolerationSeconds, MutatingAdmissionWebhook, validation, then the steps below,
the validating halves (ServiceAccount, Priority), PodSecurity, NodeRestriction,
ValidatingAdmissionWebhook, ResourceQuota. A plugin named in
``ApiContext.disabled_admission_plugins`` (``--disable-admission-plugins``) is skipped.

Older steps, on create after validation: an *admit* returns field errors (a 422), a
*warner* returns warnings for the answer's ``Warning`` headers and may refuse the object
outright with an ``ApiError`` (PodSecurity's 403): for pods, LimitRanger
(:mod:`podlife.api.limit_ranger`, which Kubernetes runs among the mutating plugins,
before ServiceAccount) then PodSecurity.

Kubernetes allocates a Service's ClusterIP in its service registry: the lowest free
address of the service range (the first one is reserved for the ``kubernetes``
Service), a requested ``spec.clusterIP`` if it is free and in range, none for headless
(``None``) and ExternalName services. The used addresses are read from the watch cache
of services, so there is no second record of them to keep in sync.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..machinery import errors
from ..registry.types import FieldError, Obj, invalid
from . import default_toleration_seconds, priority_admission, service_account_admission
from .admission_plugin import AdmissionPlugin
from .limit_ranger import limit_ranger
from .pod_security import EXEMPT_NAMESPACES, evaluate, namespace_policy, violation_message, warning_message

if TYPE_CHECKING:
    from .rest import ResourceREST

SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")
KUBERNETES_SERVICE_IP = str(SERVICE_CIDR.network_address + 1)

Admit = Callable[["ResourceREST", Obj], list[FieldError]]
Warner = Callable[["ResourceREST", Obj], list[str]]


def allocate_cluster_ip(rest: ResourceREST, obj: Obj) -> list[FieldError]:
    spec = obj.get("spec")
    if not isinstance(spec, dict) or spec.get("type") == "ExternalName":
        return []
    wanted = spec.get("clusterIP") or None
    if wanted == "None":
        spec["clusterIPs"] = ["None"]
        return []
    used = {str((co.obj.get("spec") or {}).get("clusterIP")) for co in rest.cache.objects.values()}
    if wanted is not None:
        try:
            addr = ipaddress.ip_address(wanted)
        except ValueError:
            return [invalid("spec.clusterIPs[0]", wanted, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")]
        if addr not in SERVICE_CIDR:
            return [invalid("spec.clusterIPs[0]", wanted, f"failed to allocate IP {wanted}: the provided IP ({wanted}) is not "
                                                          f"in the valid range. The range of valid IPs is {SERVICE_CIDR}")]
        if wanted in used:
            return [invalid("spec.clusterIPs[0]", wanted, f"failed to allocate IP {wanted}: provided IP is already allocated")]
        chosen = wanted
    else:
        chosen = _lowest_free(used)
        if chosen is None:
            return [FieldError("FieldValueForbidden", "spec.clusterIPs", "failed to allocate IP: range is full")]
    spec["clusterIP"] = chosen
    spec["clusterIPs"] = [chosen]
    return []


def _lowest_free(used: set[str]) -> str | None:
    base = int(SERVICE_CIDR.network_address)
    for offset in range(2, SERVICE_CIDR.num_addresses - 1):  # .1 is the kubernetes Service's
        candidate = str(ipaddress.ip_address(base + offset))
        if candidate not in used:
            return candidate
    return None


#: admission steps by (group, plural)
ADMISSION: dict[tuple[str, str], list[Admit]] = {
    ("", "services"): [allocate_cluster_ip],
    ("", "pods"): [limit_ranger],
}


def pod_security(rest: ResourceREST, pod: Obj) -> list[str]:
    """PodSecurity: refuse a pod its namespace's ``enforce`` level forbids; warn for ``warn``.

    The levels come from the namespace's ``pod-security.kubernetes.io/*`` labels, else the
    server's defaults (``ApiContext.pod_security_defaults``); ``kube-system`` is exempt.
    """
    meta = pod.get("metadata") or {}
    namespace = str(meta.get("namespace") or "")
    spec = pod.get("spec")
    if namespace in EXEMPT_NAMESPACES or not isinstance(spec, dict):
        return []
    ns_rest = rest.ctx.rest_by("", "v1", "namespaces")
    ns = ns_rest.cache.get(ns_rest.rt.key(None, namespace)) if ns_rest is not None else None
    labels = (ns.metadata.get("labels") if ns is not None else None) or {}
    policy = namespace_policy(labels, rest.ctx.pod_security_defaults)
    findings = evaluate(spec, policy.enforce)
    if findings:
        name = str(meta.get("name") or "")
        raise errors.ApiError(403, "Forbidden", violation_message("pods", name, policy.enforce, findings),
                              {"name": name, "kind": "pods"})
    warned = evaluate(spec, policy.warn)
    return [warning_message(policy.warn, warned)] if warned else []


#: warning steps (that may refuse) by (group, plural)
WARNING_ADMISSION: dict[tuple[str, str], list[Warner]] = {("", "pods"): [pod_security]}


#: kube-apiserver's admission plugins podlife has, in its order (one line each)
ADMISSION_PLUGINS: list[AdmissionPlugin] = [
    service_account_admission.PLUGIN,  # ServiceAccount
    priority_admission.POD_PLUGIN,  # Priority (pods)
    priority_admission.PRIORITY_CLASS_PLUGIN,  # Priority (PriorityClasses)
    default_toleration_seconds.PLUGIN,  # DefaultTolerationSeconds
]


def _plugins_for(rest: ResourceREST) -> list[AdmissionPlugin]:
    resource = (rest.rt.group, rest.rt.plural)
    disabled = rest.ctx.disabled_admission_plugins
    return [p for p in ADMISSION_PLUGINS if resource in p.resources and p.name not in disabled]


async def mutate(rest: ResourceREST, obj: Obj, old: Obj | None) -> None:
    """The mutating halves, in order (``old`` None: a create); the first refusal is raised."""
    for plugin in _plugins_for(rest):
        if plugin.mutate is not None:
            await plugin.mutate(rest, obj, old)


def validate(rest: ResourceREST, obj: Obj, old: Obj | None) -> None:
    """The validating halves, in order; the first refusal is raised."""
    for plugin in _plugins_for(rest):
        if plugin.validate is not None:
            plugin.validate(rest, obj, old)
