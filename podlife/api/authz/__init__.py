"""Authorization as Kubernetes does it: request attributes, RBAC, escalation checks.

Design: a pure library, no I/O and no aiohttp, in three steps that mirror Kubernetes'
own split so each can be checked against it alone:

- ``attributes.py`` -- *what is asked*: :func:`request_attributes` reads a method, a
  path and the query the way ``RequestInfoFactory`` does and returns
  :class:`Attributes` (verb, group, version, resource, subresource, namespace, name,
  or a non-resource path). Verbs that no path names (``impersonate``, ``bind``,
  ``escalate``) are built by their callers.
- ``rbac.py`` -- *who may*: :class:`RBACAuthorizer` judges attributes against the
  Roles, ClusterRoles and bindings an :class:`RBACSource` holds (the API server's
  watch caches; :class:`StaticRBACSource` in tests), with Kubernetes' reasons,
  SelfSubjectRulesReview answers (:meth:`RBACAuthorizer.rules_for`) and 403 text
  (:func:`forbidden_message`, :func:`forbidden_error`). ``system:masters`` is
  always allowed, as Kubernetes' privileged-group authorizer does before RBAC.
- ``escalation.py`` -- *no one grants more than they hold*: the checks on writes of
  the RBAC kinds (:func:`role_escalation_error`, :func:`binding_allowed`), as pure
  functions of the authorizer and the rules.

It runs on every HTTP request, so the hot path is short: the attributes are one
split of the path; the authorizer indexes bindings by subject when its source
versions them (see ``rbac.py`` for the cost) and builds a reason string only for
the rule that allows.
"""

from __future__ import annotations

from .attributes import Attributes, RequestInfoError, request_attributes
from .escalation import binding_allowed, can_bind, can_escalate, confirm_no_escalation, forbidden, role_escalation_error
from .rbac import (
    SYSTEM_MASTERS, Decision, RBACAuthorizer, RBACSource, ResolvedRules, RulesReview, StaticRBACSource,
    forbidden_error, forbidden_message, rule_allows,
)

__all__ = [
    "Attributes", "RequestInfoError", "request_attributes",
    "SYSTEM_MASTERS", "Decision", "RBACAuthorizer", "RBACSource", "ResolvedRules", "RulesReview", "StaticRBACSource",
    "forbidden_error", "forbidden_message", "rule_allows",
    "binding_allowed", "can_bind", "can_escalate", "confirm_no_escalation", "forbidden", "role_escalation_error",
]
