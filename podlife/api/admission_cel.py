"""What CEL admission expressions see, shared by admission policies and webhook matchConditions.

Design. :func:`request_of` builds the ``request`` variable (Kubernetes'
``admission.k8s.io/v1`` AdmissionRequest without ``object``/``oldObject``, as
k8s.io/apiserver/pkg/admission/plugin/cel ``CreateAdmissionRequest`` makes it), the same
fields webhooks receive in their AdmissionReview; :func:`namespace_object` the
``namespaceObject`` (``CreateNamespaceObject``: the namespace's metadata, spec and status,
null for cluster-scoped requests); :func:`authorizer_of` the ``authorizer`` variable, which
asks the API server's own authorizer (``ApiContext.authorizer``; everyone may do
everything when the server runs without one) about the request's user.
:func:`program` compiles an expression once and keeps it (compilation costs a fraction
of a millisecond, a request may evaluate many expressions). :func:`match_conditions`
applies Kubernetes' matchConditions rule (webhook/matchconditions/matcher.go): any
condition false -- no match; else any error -- ``failurePolicy`` decides (Fail: the error,
Ignore: no match); else a match. Errors read ``expression '<e>' resulted in error: <why>``
as in Kubernetes' CEL filter. Nothing here writes anything.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..machinery import cel
from .authz.attributes import Attributes
from .identity import APISERVER_USER, UserInfo

if TYPE_CHECKING:
    from .rest import ResourceREST

Obj = dict[str, Any]
_OPTIONS_KIND = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions", "DELETE": "DeleteOptions"}
_CACHE_SIZE = 2048
_programs: OrderedDict[tuple[str, frozenset[str]], cel.Program] = OrderedDict()


def program(source: str, variables: frozenset[str] = cel.ADMISSION_VARIABLES) -> cel.Program:
    """The compiled expression (kept); CelCompileError for one the API should have refused."""
    key = (source, variables)
    found = _programs.get(key)
    if found is not None:
        _programs.move_to_end(key)
        return found
    compiled = cel.compile_expression(source, variables)
    _programs[key] = compiled
    if len(_programs) > _CACHE_SIZE:
        _programs.popitem(last=False)
    return compiled


def request_of(rest: ResourceREST, operation: str, subresource: str, namespace: str, name: str, user: UserInfo,
               dry_run: bool, matched: tuple[str, str, str] | None = None) -> Obj:
    """The AdmissionRequest of one write; ``matched``: the (group, version, resource) a rule matched."""
    rt = rest.rt
    group, version, plural = matched or (rt.group, rt.version, rt.plural)
    request: Obj = {"uid": str(uuid.uuid4()),
                    "kind": {"group": group, "version": version, "kind": rt.kind},
                    "resource": {"group": group, "version": version, "resource": plural}}
    if subresource:
        request["subResource"] = subresource
    request["requestKind"] = {"group": rt.group, "version": rt.version, "kind": rt.kind}
    request["requestResource"] = {"group": rt.group, "version": rt.version, "resource": rt.plural}
    if subresource:
        request["requestSubResource"] = subresource
    if name:
        request["name"] = name
    if namespace:
        request["namespace"] = namespace
    request["operation"] = operation
    request["userInfo"] = user.as_dict()
    request["dryRun"] = dry_run
    options: Obj = {"kind": _OPTIONS_KIND.get(operation, "CreateOptions"), "apiVersion": "meta.k8s.io/v1"}
    if dry_run:
        options["dryRun"] = ["All"]
    request["options"] = options
    return request


def namespace_object(rest: ResourceREST, namespace: str) -> Obj | None:
    """``namespaceObject``: the request's namespace (metadata, spec, status), or None."""
    if not namespace or not rest.rt.namespaced:
        return None
    ns_rest = rest.ctx.rest_by("", "v1", "namespaces")
    co = ns_rest.cache.get(ns_rest.rt.key(None, namespace)) if ns_rest is not None else None
    if co is None:
        return None
    obj = co.obj
    meta = obj.get("metadata") or {}
    kept = {k: meta[k] for k in ("name", "generateName", "namespace", "labels", "annotations", "uid",
                                  "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                                  "ownerReferences", "finalizers") if k in meta}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": kept, "spec": obj.get("spec") or {},
            "status": obj.get("status") or {}}


def authorizer_of(rest: ResourceREST, user: UserInfo) -> cel.AuthzRequest:
    """``authorizer``: asks the server's authorizer about ``user``."""
    authorizer = rest.ctx.authorizer

    def authorize(attrs: Mapping[str, str]) -> tuple[str, str, str]:
        if authorizer is None:
            return "allow", "", ""
        subject = user
        if "user" in attrs:
            name = attrs["user"]
            parts = name.split(":")
            groups = ("system:serviceaccounts", f"system:serviceaccounts:{parts[2]}", "system:authenticated") \
                if len(parts) == 4 else ("system:authenticated",)
            subject = UserInfo(name, groups=groups)
        resource_request = "path" not in attrs
        request = Attributes(user=subject, verb=attrs.get("verb", ""), resource_request=resource_request,
                             api_group=attrs.get("group", ""), resource=attrs.get("resource", ""),
                             subresource=attrs.get("subresource", ""), namespace=attrs.get("namespace", ""),
                             name=attrs.get("name", ""), path=attrs.get("path", ""))
        try:
            decision = authorizer.authorize(request)
        except Exception as exc:  # an authorizer failing is the expression's error, not the server's
            return "deny", "", str(exc)
        return ("allow" if decision.allowed else "deny"), decision.reason or "", ""

    return cel.AuthzRequest(authorize)


def current_user(user: UserInfo | None) -> UserInfo:
    return user or APISERVER_USER


def evaluate(source: str, activation: Mapping[str, Any], budget: cel.Budget) -> Any:
    """One expression's value; CelEvalError worded ``expression '<e>' resulted in error: ...``."""
    try:
        return program(source).evaluate(activation, budget)
    except cel.CelCompileError as exc:  # stored before podlife compiled expressions at write time
        raise cel.CelEvalError(f"compilation failed: {exc}") from None
    except cel.CelEvalError as exc:
        raise cel.CelEvalError(f"expression '{source}' resulted in error: {exc}") from None


def match_conditions(conditions: Any, activation: Mapping[str, Any], budget: cel.Budget,
                     failure_policy: Any) -> tuple[bool, str | None]:
    """(matches, error): Kubernetes' matchConditions rule, see the module docstring."""
    problems: list[str] = []
    for condition in conditions or []:
        if not isinstance(condition, dict):
            continue
        source = str(condition.get("expression") or "")
        try:
            value = evaluate(source, activation, budget)
        except cel.CelEvalError as exc:
            problems.append(str(exc))
            continue
        if not cel.is_bool(value):
            problems.append(f"expression '{source}' resulted in error: no such overload: must evaluate to bool, "
                            f"got {cel.cel_type_name(value)}")
        elif not value:
            return False, None
    if problems:
        if failure_policy == "Ignore":
            return False, None
        return False, problems[0] if len(problems) == 1 else "[" + ", ".join(problems) + "]"
    return True, None
