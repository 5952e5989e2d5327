"""RBAC's own guard: nobody grants permissions they do not hold (escalation and bind checks).

Why: the authorizer decides whether a user may *write* a Role or a RoleBinding at all;
it cannot tell what the object grants. A namespace admin allowed to create RoleBindings
could otherwise bind ``cluster-admin`` to themselves. Kubernetes' RBAC storage refuses,
for the user making the request: a Role/ClusterRole whose rules the user does not hold
(unless they have verb ``escalate`` on it), and a RoleBinding/ClusterRoleBinding to a
role whose rules they do not hold (unless they have verb ``bind`` on that role) -- with a
403 naming what is missing (``user "x" (groups=[...]) is attempting to grant RBAC
permissions not currently held: ...``).

How the user reaches the REST layer: the authorization middleware puts the caller in
:data:`CURRENT_USER` (a context variable, so concurrent requests never see each other's)
for the rest of the request; :func:`guard` runs where the REST layer has the final object
(create, update, patch, apply), after validation. In-process components set it too (the
``LocalClient``, as their own users); code that writes with no user at all (None) is the
API server itself, exempt as Kubernetes exempts its loopback client.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from ..machinery import errors
from .authz.escalation import binding_allowed, can_bind, forbidden, role_escalation_error
from .authz.rbac import RBACAuthorizer
from .identity import UserInfo
from .rbac_source import GROUP, CacheRBACSource

if TYPE_CHECKING:
    from .rest import ResourceREST

Obj = dict[str, Any]

#: the user of the request being served, over HTTP or in process (None: the API server itself)
CURRENT_USER: ContextVar[UserInfo | None] = ContextVar("podlife_current_user", default=None)

ROLE_KINDS = {"roles": "Role", "clusterroles": "ClusterRole"}
BINDING_KINDS = {"rolebindings": "RoleBinding", "clusterrolebindings": "ClusterRoleBinding"}


def guard(rest: ResourceREST, obj: Obj, old: Obj | None = None) -> None:
    """Refuse (403) an RBAC object the requesting user could not have granted themselves."""
    user = CURRENT_USER.get()
    if user is None or rest.rt.group != GROUP:
        return
    plural = rest.rt.plural
    if plural not in ROLE_KINDS and plural not in BINDING_KINDS:
        return
    authorizer = RBACAuthorizer(CacheRBACSource(rest.ctx))
    meta = obj.get("metadata") or {}
    name = str(meta.get("name") or "")
    namespace = str(meta.get("namespace") or "") if rest.rt.namespaced else ""
    if plural in ROLE_KINDS:
        aggregated = bool((obj.get("aggregationRule") or {}).get("clusterRoleSelectors")) or bool(
            ((old or {}).get("aggregationRule") or {}).get("clusterRoleSelectors"))
        message = role_escalation_error(authorizer, user, namespace, list(obj.get("rules") or []),
                                        name=name if old is not None else "", aggregation_rule=aggregated)
    else:
        if can_bind(authorizer, user, obj, namespace=namespace):
            return
        rules, error = authorizer.role_ref_rules(obj.get("roleRef") or {}, namespace)
        if error is not None:  # Kubernetes looks the role up only without ``bind``: a 404 then
            ref = obj.get("roleRef") or {}
            role_plural = "clusterroles" if ref.get("kind") == "ClusterRole" else "roles"
            raise errors.ApiError(404, "NotFound", error, {"name": str(ref.get("name") or ""), "group": GROUP,
                                                            "kind": role_plural})
        message = binding_allowed(authorizer, user, obj, rules, namespace=namespace)
    if message is not None:
        raise forbidden(plural, name, message)


__all__ = ["CURRENT_USER", "guard"]
