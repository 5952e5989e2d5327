"""No one grants what they do not hold: RBAC's escalation and bind checks.

Design: RBAC would be pointless if anyone allowed to write Roles or RoleBindings could
write themselves a bigger one, so Kubernetes' RBAC storage (``pkg/registry/rbac``:
``escalation_check.go``, ``role``/``clusterrole``/``rolebinding``/``clusterrolebinding``
``policybased/storage.go``, ``validation/rule.go``, component-helpers'
``policy_comparator.go``) checks every create and update of those kinds. These are
pure functions of an :class:`~podlife.api.authz.rbac.RBACAuthorizer` (for its
decisions and the rules it resolves) and the objects' rules; the API server calls
them from the RBAC kinds' create and update and turns a message into a 403 with
:func:`forbidden`.

- Writing a Role (``namespace`` set) or a ClusterRole (``namespace=""``):
  :func:`role_escalation_error`. Allowed for ``system:masters``, for a user allowed
  the verb ``escalate`` on ``roles``/``clusterroles`` (the name is the request's:
  empty on create), or when every rule the role grants is covered by the rules the
  user holds in that namespace (cluster-wide rules only, for a ClusterRole). A
  ClusterRole with an ``aggregationRule`` can gather anything, so it also needs
  cluster-admin's ``*`` rules.
- Writing a RoleBinding or ClusterRoleBinding: :func:`binding_allowed`. Allowed for
  ``system:masters``, for a user allowed the verb ``bind`` on the referenced role
  (:func:`can_bind`, checked in the binding's namespace, ``""`` for a
  ClusterRoleBinding), or when the user holds every rule of the referenced role.
  Kubernetes checks ``bind`` *before* reading the role, so a binding to a role that
  does not exist is allowed with ``bind`` and is a 404 (the role's NotFound) without
  it: callers use :func:`can_bind` first, then ``RBACAuthorizer.role_ref_rules``.
- An update that changes only ``ownerReferences`` and ``finalizers`` is never checked
  (Kubernetes' ``IsOnlyMutatingGCFields``), so the garbage collector can always clean up.

"Covered" is Kubernetes' ``Covers``: each granted rule is broken into atoms of one
group, one resource, one verb and at most one name (or one URL and one verb), and
each atom must be within a single held rule. The message lists the missing atoms,
compacted per group and resource (verbs merged), each as ``CompactString`` prints a
PolicyRule, sorted::

    user "alice" (groups=["devs" "system:authenticated"]) is attempting to grant RBAC permissions not currently held:
    {APIGroups:[""], Resources:["secrets"], Verbs:["get" "list"]}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ...machinery import errors
from ..identity import UserInfo
from .attributes import Attributes
from .rbac import RBAC_GROUP, SYSTEM_MASTERS, Obj, RBACAuthorizer, go_quote

__all__ = [
    "FULL_AUTHORITY", "AGGREGATION_RULE_MESSAGE", "escalation_allowed", "can_escalate", "role_escalation_error",
    "can_bind", "binding_allowed", "confirm_no_escalation", "covers", "breakdown_rule", "compact_rules",
    "compact_string", "forbidden",
]

#: what cluster-admin holds; needed to write a ClusterRole's aggregationRule
FULL_AUTHORITY: list[Obj] = [
    {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
    {"verbs": ["*"], "nonResourceURLs": ["*"]},
]
AGGREGATION_RULE_MESSAGE = "must have cluster-admin privileges to use the aggregationRule"


def escalation_allowed(user: UserInfo) -> bool:
    """``system:masters`` may grant anything (the API server's own loopback client is one)."""
    return SYSTEM_MASTERS in user.groups


def can_escalate(authorizer: RBACAuthorizer, user: UserInfo, namespace: str, *, name: str = "") -> bool:
    """Whether the user may write a role with any rules: masters, or verb ``escalate`` on it."""
    if escalation_allowed(user):
        return True
    resource = "roles" if namespace else "clusterroles"
    attrs = Attributes(user, "escalate", True, RBAC_GROUP, "*", resource, "", namespace, name)
    return authorizer.authorize(attrs).allowed


def role_escalation_error(authorizer: RBACAuthorizer, user: UserInfo, namespace: str, rules: list[Obj], *,
                          name: str = "", aggregation_rule: bool = False) -> str | None:
    """Why writing a Role (``namespace``) or ClusterRole (``""``) with ``rules`` is forbidden, or None.

    ``name`` is the name in the request's URL (empty on create), which an ``escalate``
    rule with resourceNames may require; ``aggregation_rule`` is whether the
    ClusterRole (new or old, on update) has an aggregationRule with selectors.
    """
    if can_escalate(authorizer, user, namespace, name=name):
        return None
    message = confirm_no_escalation(authorizer, user, namespace, rules)
    if message is not None:
        return message
    if aggregation_rule and confirm_no_escalation(authorizer, user, namespace, FULL_AUTHORITY) is not None:
        return AGGREGATION_RULE_MESSAGE
    return None


def _binding_namespace(binding: Obj, namespace: str | None) -> str:
    if namespace is not None:
        return namespace
    if binding.get("kind") == "ClusterRoleBinding":
        return ""
    return str((binding.get("metadata") or {}).get("namespace") or "")


def can_bind(authorizer: RBACAuthorizer, user: UserInfo, binding: Obj, *, namespace: str | None = None) -> bool:
    """Whether the user may bind the binding's role whatever it holds: masters, or verb ``bind`` on it.

    ``namespace`` defaults to the binding's (``""`` for a ClusterRoleBinding); pass the
    request's when the object may not carry it yet.
    """
    if escalation_allowed(user):
        return True
    ref = binding.get("roleRef") or {}
    kind = ref.get("kind")
    if kind not in ("ClusterRole", "Role"):
        return False
    resource = "clusterroles" if kind == "ClusterRole" else "roles"
    attrs = Attributes(user, "bind", True, ref.get("apiGroup", ""), "", resource, "",
                       _binding_namespace(binding, namespace), ref.get("name", ""))
    return authorizer.authorize(attrs).allowed


def binding_allowed(authorizer: RBACAuthorizer, user: UserInfo, binding: Obj, role_rules: list[Obj], *,
                    namespace: str | None = None) -> str | None:
    """Why writing ``binding`` (whose role holds ``role_rules``) is forbidden, or None."""
    if can_bind(authorizer, user, binding, namespace=namespace):
        return None
    return confirm_no_escalation(authorizer, user, _binding_namespace(binding, namespace), role_rules)


def confirm_no_escalation(authorizer: RBACAuthorizer, user: UserInfo, namespace: str, rules: list[Obj]) -> str | None:
    """Kubernetes' ``ConfirmNoEscalation``: None when the user's own rules in ``namespace`` cover ``rules``."""
    held = authorizer.resolve_rules(user, namespace)
    covered, missing = covers(held.rules, rules)
    if covered:
        return None
    described = sorted({compact_string(rule) for rule in compact_rules(missing)})
    message = (f"user {go_quote(user.username)} (groups={_go_strings(user.groups)}) is attempting to grant RBAC "
               "permissions not currently held:\n" + "\n".join(described))
    if held.errors:
        message += f"; resolution errors: [{held.error}]"
    return message


def forbidden(resource: str, name: str, message: str) -> errors.ApiError:
    """The 403 for a refused RBAC write: ``roles.rbac.authorization.k8s.io "x" is forbidden: <message>``."""
    qualified = f"{resource}.{RBAC_GROUP}"
    shown = f"{qualified} {go_quote(name)} is forbidden: {message}" if name else f"{qualified} is forbidden: {message}"
    details: Obj = {"name": name} if name else {}
    details.update({"group": RBAC_GROUP, "kind": resource})
    return errors.ApiError(403, "Forbidden", shown, details)


# ---------------------------------------------------------------------------
# Covers, as component-helpers/auth/rbac/validation does it
# ---------------------------------------------------------------------------


def _values(rule: Mapping[str, Any], key: str) -> list[str]:
    return list(rule.get(key) or ())


def breakdown_rule(rule: Mapping[str, Any]) -> list[Obj]:
    """The rule as atoms of one group, resource, verb and at most one name; or one URL and one verb."""
    atoms: list[Obj] = []
    names = _values(rule, "resourceNames")
    verbs = _values(rule, "verbs")
    for group in _values(rule, "apiGroups"):
        for resource in _values(rule, "resources"):
            for verb in verbs:
                base: Obj = {"apiGroups": [group], "resources": [resource], "verbs": [verb]}
                if names:
                    atoms.extend({**base, "resourceNames": [n]} for n in names)
                else:
                    atoms.append(base)
    for url in _values(rule, "nonResourceURLs"):
        atoms.extend({"nonResourceURLs": [url], "verbs": [verb]} for verb in verbs)
    return atoms


def covers(owner_rules: Sequence[Mapping[str, Any]], servant_rules: Iterable[Mapping[str, Any]]) -> tuple[bool, list[Obj]]:
    """Whether ``owner_rules`` cover ``servant_rules``, and the atoms they do not."""
    missing = [atom for rule in servant_rules for atom in breakdown_rule(rule)
               if not any(_rule_covers(owner, atom) for owner in owner_rules)]
    return not missing, missing


def _has_all(held: list[str], wanted: list[str]) -> bool:
    return set(wanted).issubset(held)


def _resources_cover(held: list[str], wanted: list[str]) -> bool:
    if "*" in held or _has_all(held, wanted):
        return True
    for path in wanted:
        if path in held:
            continue
        if "/" not in path or "*/" + path.split("/", 1)[1] not in held:
            return False
    return True


def _url_covers(owner: str, path: str) -> bool:
    return owner == path or (owner.endswith("*") and path.startswith(owner.rstrip("*")))


def _rule_covers(owner: Mapping[str, Any], atom: Mapping[str, Any]) -> bool:
    """Kubernetes' ``ruleCovers``: one held rule covers one atom."""
    owner_verbs, owner_groups = _values(owner, "verbs"), _values(owner, "apiGroups")
    if not ("*" in owner_verbs or _has_all(owner_verbs, _values(atom, "verbs"))):
        return False
    if not ("*" in owner_groups or _has_all(owner_groups, _values(atom, "apiGroups"))):
        return False
    if not _resources_cover(_values(owner, "resources"), _values(atom, "resources")):
        return False
    owner_urls = _values(owner, "nonResourceURLs")
    if not all(any(_url_covers(o, path) for o in owner_urls) for path in _values(atom, "nonResourceURLs")):
        return False
    owner_names, atom_names = _values(owner, "resourceNames"), _values(atom, "resourceNames")
    if not atom_names:
        return not owner_names
    return not owner_names or _has_all(owner_names, atom_names)


# ---------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------

_SIMPLE_KEYS = frozenset({"apiGroups", "resources", "verbs", "resourceNames"})


def compact_rules(rules: Iterable[Mapping[str, Any]]) -> list[Obj]:
    """Kubernetes' ``CompactRules``: atoms of one group, resource and (at most one) name merge their verbs."""
    compacted: list[Obj] = []
    simple: dict[tuple[str, str, bool, str], Obj] = {}
    for rule in rules:
        key = _simple_key(rule)
        if key is None:
            compacted.append(dict(rule))
        elif key in simple:
            simple[key]["verbs"] = simple[key].get("verbs", []) + _values(rule, "verbs")
        else:
            simple[key] = {k: list(v) for k, v in rule.items()}
    return compacted + list(simple.values())


def _simple_key(rule: Mapping[str, Any]) -> tuple[str, str, bool, str] | None:
    names = _values(rule, "resourceNames")
    groups, resources = _values(rule, "apiGroups"), _values(rule, "resources")
    if len(names) > 1 or rule.get("nonResourceURLs") or len(groups) != 1 or len(resources) != 1:
        return None
    if not _SIMPLE_KEYS.issuperset(rule):
        return None
    return groups[0], resources[0], bool(names), names[0] if names else ""


def _go_strings(values: Iterable[str]) -> str:
    """A ``[]string`` as Go's ``%q`` prints it: ``["a" "b"]``."""
    return "[" + " ".join(go_quote(v) for v in values) + "]"


def compact_string(rule: Mapping[str, Any]) -> str:
    """A PolicyRule as Kubernetes' ``CompactString`` prints it: ``{APIGroups:[""], Resources:["pods"], Verbs:["get"]}``."""
    parts = [f"{label}:{_go_strings(_values(rule, key))}"
             for label, key in (("APIGroups", "apiGroups"), ("Resources", "resources"),
                                ("NonResourceURLs", "nonResourceURLs"), ("ResourceNames", "resourceNames"),
                                ("Verbs", "verbs"))
             if rule.get(key)]
    return "{" + ", ".join(parts) + "}"
