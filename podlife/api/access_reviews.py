"""The access review APIs answered by the real authorizer: can-i, can-i --list, SubjectAccessReview.

``kubectl auth can-i`` POSTs a SelfSubjectAccessReview, ``kubectl auth can-i --list`` a
SelfSubjectRulesReview, and controllers or webhooks ask about someone else with a
(Local)SubjectAccessReview. Each is answered at once from the same authorizer that
decides requests, stores nothing, and comes back as the posted object with a
``status`` (Kubernetes' ``allowed``/``denied``/``reason``, or the rules). Invalid specs
are 422s with Kubernetes' messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ..machinery import errors
from ..registry.types import FieldError, invalid, required
from .authz.attributes import Attributes
from .authz.rbac import Decision, RBACAuthorizer
from .identity import UserInfo

Obj = dict[str, Any]


class Authorizer(Protocol):
    def authorize(self, attrs: Attributes) -> Decision: ...


def _spec(body: Obj) -> Obj:
    spec = body.get("spec")
    return spec if isinstance(spec, dict) else {}


def _attributes(spec: Mapping[str, Any], user: UserInfo) -> Attributes:
    resource = spec.get("resourceAttributes")
    if isinstance(resource, dict):
        return Attributes(user, str(resource.get("verb") or ""), True, api_group=str(resource.get("group") or ""),
                          api_version=str(resource.get("version") or ""), resource=str(resource.get("resource") or ""),
                          subresource=str(resource.get("subresource") or ""),
                          namespace=str(resource.get("namespace") or ""), name=str(resource.get("name") or ""))
    other = spec.get("nonResourceAttributes") or {}
    return Attributes(user, str(other.get("verb") or ""), False, path=str(other.get("path") or ""))


def _one_kind_of_attributes(kind: str, spec: Mapping[str, Any]) -> list[FieldError]:
    has_resource = spec.get("resourceAttributes") is not None
    has_other = spec.get("nonResourceAttributes") is not None
    if has_resource == has_other:
        return [invalid("spec.resourceAttributes", None if not has_resource else "",
                        "exactly one of nonResourceAttributes or resourceAttributes must be specified")]
    return []


def _refuse(kind: str, errs: list[FieldError]) -> None:
    if errs:
        raise errors.ApiError(422, "Invalid", f'{kind}.authorization.k8s.io "" is invalid: '
                              + ", ".join(str(e) for e in errs),
                              {"group": "authorization.k8s.io", "kind": kind, "causes": [e.cause() for e in errs]})


def _answer(body: Obj, authorizer: Authorizer, attrs: Attributes) -> Obj:
    decision = authorizer.authorize(attrs)
    out = dict(body)
    out.setdefault("metadata", {})
    status: Obj = {"allowed": decision.allowed}
    if decision.reason:
        status["reason"] = decision.reason
    out["status"] = status
    return out


def self_subject_access_review(body: Obj, user: UserInfo, authorizer: Authorizer) -> Obj:
    spec = _spec(body)
    _refuse("SelfSubjectAccessReview", _one_kind_of_attributes("SelfSubjectAccessReview", spec))
    return _answer(body, authorizer, _attributes(spec, user))


def subject_access_review(body: Obj, authorizer: Authorizer, *, namespace: str | None = None) -> Obj:
    """A (Local)SubjectAccessReview: about the user the spec names, not the caller."""
    kind = "LocalSubjectAccessReview" if namespace is not None else "SubjectAccessReview"
    spec = _spec(body)
    errs = _one_kind_of_attributes(kind, spec)
    if not spec.get("user") and not spec.get("groups"):
        errs.append(invalid("spec.user", "", "at least one of user or group must be specified"))
    if namespace is not None:
        resource = spec.get("resourceAttributes") or {}
        if spec.get("nonResourceAttributes") is not None:
            errs.append(invalid("spec.nonResourceAttributes", spec["nonResourceAttributes"],
                                "disallowed on this kind of request"))
        elif resource.get("namespace") != namespace:
            errs.append(invalid("spec.resourceAttributes.namespace", resource.get("namespace") or "",
                                "must match metadata.namespace"))
    _refuse(kind, errs)
    user = UserInfo(str(spec.get("user") or ""), uid=str(spec.get("uid") or ""),
                    groups=tuple(str(g) for g in spec.get("groups") or ()),
                    extra={k: list(v) for k, v in (spec.get("extra") or {}).items()})
    return _answer(body, authorizer, _attributes(spec, user))


def self_subject_rules_review(body: Obj, user: UserInfo, authorizer: RBACAuthorizer) -> Obj:
    spec = _spec(body)
    namespace = spec.get("namespace")
    if not namespace:
        _refuse("SelfSubjectRulesReview", [required("spec.namespace")])
    out = dict(body)
    out.setdefault("metadata", {})
    out["status"] = authorizer.rules_for(user, str(namespace)).as_status()
    return out


__all__ = ["self_subject_access_review", "self_subject_rules_review", "subject_access_review"]
