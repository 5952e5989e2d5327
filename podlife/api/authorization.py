"""Authorization of every HTTP request: who (authentication) may do what (RBAC) -- else a 403.

Where it sits: after authentication (``request[USER]`` is set, or the request is one of
the public paths anonymous callers may reach) and priority and fairness, before the
handlers, as in kube-apiserver. The request's path, method and query become Kubernetes'
authorizer attributes (:func:`podlife.api.authz.attributes.request_attributes`); the
authorizers are asked in order (Kubernetes' ``--authorization-mode=Node,RBAC``; the Node
authorizer comes with node identities) and the first that allows wins. A denial is a
403 ``Status`` with Kubernetes' message, e.g. ``secrets is forbidden: User
"system:serviceaccount:sec:app" cannot list resource "secrets" in API group "" in the
namespace "kube-system"``.

The decision is kept on the request (``DECISION``) for the audit log and for the
review APIs. In-process components (the ``LocalClient``) do not pass through here; they
ask the same authorizer (``ApiContext.authorizer``) for each call, as their own users.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from aiohttp import web

from .authz.attributes import Attributes, RequestInfoError, request_attributes
from .authz.rbac import Decision, forbidden_error
from .identity import UserInfo
from .keys import USER
from .rbac_guard import CURRENT_USER
from ..machinery import errors

ANONYMOUS = UserInfo("system:anonymous", groups=("system:unauthenticated",))
DECISION: web.RequestKey[Decision] = web.RequestKey("authorization decision", Decision)


class Authorizer(Protocol):
    def authorize(self, attrs: Attributes) -> Decision: ...


class UnionAuthorizer:
    """The first authorizer that allows decides; the last denial's reason is kept (Kubernetes' union)."""

    def __init__(self, authorizers: Sequence[Authorizer]) -> None:
        self.authorizers = tuple(authorizers)

    def authorize(self, attrs: Attributes) -> Decision:
        reasons = []
        for authorizer in self.authorizers:
            decision = authorizer.authorize(attrs)
            if decision.allowed:
                return decision
            if decision.reason:
                reasons.append(decision.reason)
        return Decision(False, ", ".join(reasons))


#: the API server's authorizer (absent when authentication, and so authorization, is off)
AUTHORIZER: web.AppKey[UnionAuthorizer] = web.AppKey("authorizer", UnionAuthorizer)


def attributes_of(request: web.Request) -> Attributes:
    """The authorizer attributes of an HTTP request (a malformed one is a 400)."""
    user = request.get(USER) or ANONYMOUS
    try:
        return request_attributes(request.method, request.path, request.query, user)
    except RequestInfoError as exc:
        raise errors.bad_request(str(exc)) from None


def authorization_middleware(authorizer: Authorizer) -> Any:
    @web.middleware
    async def authorize(request: web.Request,
                        handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        attrs = attributes_of(request)
        decision = authorizer.authorize(attrs)
        request[DECISION] = decision  # for the audit log, allowed or not
        if not decision.allowed:
            raise forbidden_error(attrs, decision.reason)
        token = CURRENT_USER.set(attrs.user)  # for RBAC's own escalation and bind checks
        try:
            return await handler(request)
        finally:
            CURRENT_USER.reset(token)

    return authorize


__all__ = ["ANONYMOUS", "AUTHORIZER", "Authorizer", "DECISION", "UnionAuthorizer", "attributes_of", "authorization_middleware"]
