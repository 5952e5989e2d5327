"""The RBAC authorizer: Roles, ClusterRoles and their bindings decide every request.

Design: the rules are Kubernetes' (``plugin/pkg/auth/authorizer/rbac/rbac.go``,
``pkg/registry/rbac/validation/rule.go``, ``pkg/apis/rbac/v1/evaluation_helpers.go``),
applied to plain objects (the stored JSON of the RBAC kinds) read through an
:class:`RBACSource`, so this module does no I/O: the API server implements the source
over its watch caches, tests over dicts (:class:`StaticRBACSource`).

How a request is judged (:meth:`RBACAuthorizer.authorize`):

1. Members of ``system:masters`` are allowed with no reason, before RBAC is asked
   (Kubernetes' privileged-group authorizer, first in its chain).
2. Every ClusterRoleBinding, then (for a namespaced request) every RoleBinding of the
   request's namespace, whose first matching subject names the user -- ``User`` by
   name, ``Group`` by one of the user's groups, ``ServiceAccount`` by
   ``system:serviceaccount:<ns>:<name>``, ``<ns>`` being the subject's namespace or,
   in a RoleBinding, the binding's -- contributes the rules of its role: a
   ClusterRole by name, or a Role of the binding's namespace. A RoleBinding may name
   a ClusterRole; its rules then apply in that namespace only.
3. The first rule that allows the request allows it, with the reason Kubernetes gives
   (``RBAC: allowed by RoleBinding "<name>/<ns>" of ClusterRole "<role>" to
   ServiceAccount "<sa>/<ns>"``). Otherwise the request is denied; the reason is empty
   unless a role could not be read (``RBAC: clusterrole.rbac.authorization.k8s.io
   "x" not found``), as in Kubernetes, and the 403 message carries it.

A rule allows a resource request when its verbs, apiGroups and resources match (each
may be ``*``; resources also match ``<resource>/<subresource>`` exactly or
``*/<subresource>`` -- Kubernetes has no ``<resource>/*`` wildcard) and, if it lists
resourceNames, the request names one of them (so a create, list or watch without a
name never matches it). A non-resource request matches a rule's nonResourceURLs
exactly, by ``*``, or by a prefix ending in ``*``.

Cost, per request (it runs on every HTTP request): no copies and no regular
expressions, only comparisons over short lists. Without help the authorizer walks
every ClusterRoleBinding and the namespace's RoleBindings, checking each subject with
string comparisons (O(bindings x subjects)), and reads each bound role once. When the
source offers ``bindings_version()`` (a value that changes whenever any binding
changes), the bindings are indexed by subject when a version is first seen -- the
cluster's at once, a namespace's on its first request (kept only if it has bindings,
so requests naming random namespaces cannot grow it) -- and a request costs O(the
user's groups + the bindings naming the user or their groups + those roles' rules):
about 12-20 us with 70 ClusterRoleBindings of a dozen rules each, against 50-75 us
scanned (one core, CPython 3.11). Bindings are visited in the source's order either way, so the reason names
the same binding. Roles are read through the source on each request (watch-cache
look-ups), so an edited role takes effect at once. When the source also offers
``policy_version()`` (changing with any role or binding), allowed answers are remembered
by request without its name (``_allowed_key``: about 2 us), unless a ``resourceNames``
rule could have made the name matter; any RBAC change forgets them all.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ...machinery import errors
from ...machinery.selectors import go_quote as _go_quote_slow
from ..identity import UserInfo
from .attributes import Attributes

__all__ = [
    "Obj", "RBACSource", "StaticRBACSource", "Decision", "RulesReview", "ResolvedRules", "RBACAuthorizer",
    "rule_allows", "applies_to_user", "forbidden_message", "forbidden_error", "aggregate_errors",
    "SYSTEM_MASTERS", "SERVICE_ACCOUNT_PREFIX", "RBAC_GROUP", "go_quote",
]

Obj = dict[str, Any]

#: Kubernetes' privileged group (``user.SystemPrivilegedGroup``): allowed everything
SYSTEM_MASTERS = "system:masters"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
RBAC_GROUP = "rbac.authorization.k8s.io"


class RBACSource(Protocol):
    """Where the authorizer reads the RBAC objects (stored JSON, never modified).

    A source may also offer ``bindings_version() -> Hashable``, changing whenever a
    ClusterRoleBinding or RoleBinding changes; the authorizer then indexes bindings.
    """

    def cluster_role(self, name: str) -> Obj | None: ...

    def role(self, namespace: str, name: str) -> Obj | None: ...

    def cluster_role_bindings(self) -> Iterable[Obj]: ...

    def role_bindings(self, namespace: str) -> Iterable[Obj]: ...


def go_quote(text: str) -> str:
    """Go's ``%q``; names are almost always printable ASCII, which needs no escape loop."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    return _go_quote_slow(text)


_KINDS = ("ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding")


class StaticRBACSource:
    """An :class:`RBACSource` over dicts, in insertion order; for tests and fixed policies."""

    def __init__(self, objects: Iterable[Obj] = ()) -> None:
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {kind: {} for kind in _KINDS}
        self._version = 0
        self._policy_version = 0
        for obj in objects:
            self.put(obj)

    def put(self, obj: Obj) -> None:
        """Add or replace one object of an RBAC kind (by ``kind``, namespace and name)."""
        kind = obj.get("kind", "")
        if kind not in self._objects:
            raise ValueError(f"not an RBAC kind: {kind!r}")
        meta = obj.get("metadata") or {}
        self._objects[kind][(meta.get("namespace", "") if kind in ("Role", "RoleBinding") else "", meta.get("name", ""))] = obj
        self._version += kind.endswith("Binding")
        self._policy_version += 1

    def delete(self, kind: str, namespace: str, name: str) -> None:
        """Remove one object, if it is there."""
        if self._objects[kind].pop((namespace, name), None) is not None:
            self._version += kind.endswith("Binding")
            self._policy_version += 1

    def cluster_role(self, name: str) -> Obj | None:
        return self._objects["ClusterRole"].get(("", name))

    def role(self, namespace: str, name: str) -> Obj | None:
        return self._objects["Role"].get((namespace, name))

    def cluster_role_bindings(self) -> Iterable[Obj]:
        return list(self._objects["ClusterRoleBinding"].values())

    def role_bindings(self, namespace: str) -> Iterable[Obj]:
        return [b for (ns, _), b in self._objects["RoleBinding"].items() if ns == namespace]

    def bindings_version(self) -> Hashable:
        return self._version

    def policy_version(self) -> Hashable:
        return self._policy_version


@dataclass(frozen=True)
class Decision:
    """An authorizer's answer; ``reason`` is what SubjectAccessReviews and 403s show."""

    allowed: bool
    reason: str = ""


@dataclass(frozen=True)
class ResolvedRules:
    """The rules bound to a user in a scope, and the errors met reading their roles."""

    rules: list[Obj] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def error(self) -> str:
        """The errors as Kubernetes' ``utilerrors.NewAggregate`` prints them (``""`` if none)."""
        return aggregate_errors(self.errors)


@dataclass(frozen=True)
class RulesReview:
    """A SelfSubjectRulesReview's status: what ``kubectl auth can-i --list`` shows."""

    resource_rules: list[Obj] = field(default_factory=list)
    non_resource_rules: list[Obj] = field(default_factory=list)
    incomplete: bool = False
    evaluation_error: str = ""

    def as_status(self) -> Obj:
        """The ``status`` object, in ``SubjectRulesReviewStatus``' field order."""
        out: Obj = {"resourceRules": self.resource_rules, "nonResourceRules": self.non_resource_rules,
                    "incomplete": self.incomplete}
        if self.evaluation_error:
            out["evaluationError"] = self.evaluation_error
        return out


# ---------------------------------------------------------------------------
# Rules and subjects
# ---------------------------------------------------------------------------


def rule_allows(attrs: Attributes, rule: Mapping[str, Any]) -> bool:
    """Whether one PolicyRule allows the request (Kubernetes' ``RuleAllows``)."""
    if not _allows_some_name(attrs, rule):
        return False
    names = rule.get("resourceNames")
    return not names or not attrs.resource_request or attrs.name in names


def _allows_some_name(attrs: Attributes, rule: Mapping[str, Any]) -> bool:
    """Whether the rule allows the request for some name (``resourceNames`` aside)."""
    verbs = rule.get("verbs") or ()
    if "*" not in verbs and attrs.verb not in verbs:
        return False
    if not attrs.resource_request:
        return _url_matches(rule.get("nonResourceURLs") or (), attrs.path)
    groups = rule.get("apiGroups") or ()
    if "*" not in groups and attrs.api_group not in groups:
        return False
    return _resource_matches(rule.get("resources") or (), attrs.resource, attrs.subresource)


def _resource_matches(resources: Iterable[str], resource: str, subresource: str) -> bool:
    combined = f"{resource}/{subresource}" if subresource else resource
    any_parent = "*/" + subresource if subresource else None
    for candidate in resources:
        if candidate == "*" or candidate == combined or candidate == any_parent:
            return True
    return False


def _url_matches(urls: Iterable[str], path: str) -> bool:
    for url in urls:
        if url == "*" or url == path or (url.endswith("*") and path.startswith(url.rstrip("*"))):
            return True
    return False


def _service_account_username(namespace: str, name: str) -> str:
    return f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"


def applies_to_user(user: UserInfo, subject: Mapping[str, Any], namespace: str) -> bool:
    """Whether a binding subject names the user; ``namespace`` is a RoleBinding's (``""`` for cluster)."""
    kind = subject.get("kind")
    name = subject.get("name", "")
    if kind == "User":
        return user.username == name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        sa_namespace = subject.get("namespace") or namespace
        return bool(sa_namespace) and user.username == _service_account_username(sa_namespace, name)
    return False


def _first_subject(user: UserInfo, binding: Obj, namespace: str) -> Mapping[str, Any] | None:
    for subject in binding.get("subjects") or ():
        if applies_to_user(user, subject, namespace):
            return subject
    return None


def _describe_subject(subject: Mapping[str, Any], binding_namespace: str) -> str:
    kind, name = subject.get("kind", ""), subject.get("name", "")
    if kind == "ServiceAccount":
        return f"{kind} {go_quote(name + '/' + (subject.get('namespace') or binding_namespace))}"
    return f"{kind} {go_quote(name)}"


def _describe(binding: Obj, subject: Mapping[str, Any], namespace: str) -> str:
    """The binding as Kubernetes' cluster/roleBindingDescriber prints it."""
    meta, ref = binding.get("metadata") or {}, binding.get("roleRef") or {}
    if namespace:
        head = f"RoleBinding {go_quote(meta.get('name', '') + '/' + namespace)}"
    else:
        head = f"ClusterRoleBinding {go_quote(meta.get('name', ''))}"
    return f"{head} of {ref.get('kind', '')} {go_quote(ref.get('name', ''))} to {_describe_subject(subject, namespace)}"


def aggregate_errors(messages: list[str]) -> str:
    """Kubernetes' ``utilerrors.NewAggregate(...).Error()``: one as is, several de-duplicated in ``[...]``."""
    unique = list(dict.fromkeys(messages))
    if not unique:
        return ""
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


# ---------------------------------------------------------------------------
# Binding index
# ---------------------------------------------------------------------------

_Entry = tuple[int, Obj]  # (position in the source's order, binding)


def _subject_keys(subject: Mapping[str, Any], namespace: str) -> str | None:
    """The index key a subject can match: ``u:<username>`` or ``g:<group>`` (None: never matches)."""
    kind, name = subject.get("kind"), subject.get("name", "")
    if kind == "User":
        return "u:" + name
    if kind == "Group":
        return "g:" + name
    if kind == "ServiceAccount":
        sa_namespace = subject.get("namespace") or namespace
        return "u:" + _service_account_username(sa_namespace, name) if sa_namespace else None
    return None


def _index(bindings: Iterable[Obj], namespace: str) -> dict[str, list[_Entry]]:
    index: dict[str, list[_Entry]] = {}
    for position, binding in enumerate(bindings):
        seen: set[str] = set()
        for subject in binding.get("subjects") or ():
            key = _subject_keys(subject, namespace)
            if key is not None and key not in seen:
                seen.add(key)
                index.setdefault(key, []).append((position, binding))
    return index


def _candidates(index: dict[str, list[_Entry]], user: UserInfo) -> list[Obj]:
    """The bindings that may name the user, in the source's order."""
    found: dict[int, Obj] = {}
    for key in ("u:" + user.username, *("g:" + g for g in user.groups)):
        for position, binding in index.get(key, ()):
            found[position] = binding
    return [found[p] for p in sorted(found)]


# ---------------------------------------------------------------------------
# The authorizer
# ---------------------------------------------------------------------------

_NO_VERSION = object()
_MAX_REMEMBERED = 4096
#: a visitor sees (describe-the-source, rule) or an error; returning False stops the walk
_Visitor = Callable[[Callable[[], str] | None, Obj | None, str | None], bool]


class RBACAuthorizer:
    """Kubernetes' RBAC authorizer and rule resolver over an :class:`RBACSource`."""

    def __init__(self, source: RBACSource) -> None:
        self.source = source
        self._version: Hashable = _NO_VERSION
        self._cluster_index: dict[str, list[_Entry]] | None = None
        self._namespace_index: dict[str, dict[str, list[_Entry]]] = {}
        self._allowed: dict[tuple[Any, ...], Decision] = {}
        self._allowed_version: Hashable = _NO_VERSION

    # -- the answers -------------------------------------------------------

    def authorize(self, attrs: Attributes) -> Decision:
        """Allowed or not, and why (``RBAC: allowed by ...``; a denial's reason names read errors only)."""
        if SYSTEM_MASTERS in attrs.user.groups:
            return Decision(True)
        key = self._allowed_key(attrs)
        if key is not None and (known := self._allowed.get(key)) is not None:
            return known
        allowed_by: list[str] = []
        failures: list[str] = []
        name_matters = False

        def visit(describe: Callable[[], str] | None, rule: Obj | None, error: str | None) -> bool:
            nonlocal name_matters
            if rule is not None and describe is not None:
                if rule.get("resourceNames") and _allows_some_name(attrs, rule):
                    name_matters = True
                if rule_allows(attrs, rule):
                    allowed_by.append(describe())
                    return False
            if error is not None:
                failures.append(error)
            return True

        self._visit_rules(attrs.user, attrs.namespace, visit)
        if allowed_by:
            decision = Decision(True, "RBAC: allowed by " + allowed_by[0])
            if key is not None and not name_matters:
                self._remember(key, decision)
            return decision
        return Decision(False, "RBAC: " + aggregate_errors(failures) if failures else "")

    def _allowed_key(self, attrs: Attributes) -> tuple[Any, ...] | None:
        """The request without its name, if the source versions the whole policy (else None: no memory).

        Why: the components ask the same question for every object they write (the
        simulator patches 10,000 pods' status), and the walk costs 10-20 us each time. An
        allowed answer is kept, for any name, when neither the allowing rule nor any rule
        the walk passed on the way to it would have allowed the request for some names only
        (``resourceNames``), so the name could not have changed the answer or its reason; any change of a role or binding forgets them all.
        """
        version_of = getattr(self.source, "policy_version", None)
        if version_of is None:
            return None
        version = version_of()
        if version != self._allowed_version:
            self._allowed = {}
            self._allowed_version = version
        user = attrs.user
        return (user.username, user.groups, attrs.verb, attrs.resource_request, attrs.api_group, attrs.resource,
                attrs.subresource, attrs.namespace, "" if attrs.resource_request else attrs.path)

    def _remember(self, key: tuple[Any, ...], decision: Decision) -> None:
        if len(self._allowed) >= _MAX_REMEMBERED:
            self._allowed = {}  # bounded: requests naming random namespaces cannot grow it
        self._allowed[key] = decision

    def resolve_rules(self, user: UserInfo, namespace: str) -> ResolvedRules:
        """Every rule bound to the user in ``namespace`` (cluster-wide ones first), and read errors."""
        resolved = ResolvedRules()

        def visit(describe: Callable[[], str] | None, rule: Obj | None, error: str | None) -> bool:
            if rule is not None:
                resolved.rules.append(rule)
            if error is not None:
                resolved.errors.append(error)
            return True

        self._visit_rules(user, namespace, visit)
        return resolved

    def rules_for(self, user: UserInfo, namespace: str) -> RulesReview:
        """What the user may do in ``namespace``, as a SelfSubjectRulesReview reports it.

        The rules bound to the user, as they are: ``system:masters`` gets no rule of its
        own here (Kubernetes' privileged-group authorizer lists none); it shows
        cluster-admin's ``*`` rules through the bootstrap ClusterRoleBinding
        ``cluster-admin``, when that exists. A rule with both resources and
        nonResourceURLs appears in both lists, as in Kubernetes. RBAC never reports
        ``incomplete``; read errors go to ``evaluationError``.
        """
        resolved = self.resolve_rules(user, namespace)
        resource_rules: list[Obj] = []
        non_resource_rules: list[Obj] = []
        for rule in resolved.rules:
            verbs = list(rule.get("verbs") or ())
            if rule.get("resources"):
                shown: Obj = {"verbs": verbs}
                for key in ("apiGroups", "resources", "resourceNames"):
                    if rule.get(key):
                        shown[key] = list(rule[key])
                resource_rules.append(shown)
            if rule.get("nonResourceURLs"):
                non_resource_rules.append({"verbs": verbs, "nonResourceURLs": list(rule["nonResourceURLs"])})
        return RulesReview(resource_rules, non_resource_rules, False, resolved.error)

    def role_ref_rules(self, role_ref: Mapping[str, Any], namespace: str) -> tuple[list[Obj], str | None]:
        """The rules a roleRef names from a binding in ``namespace`` (``""``: a ClusterRoleBinding).

        Returns (rules, None) or ([], the error Kubernetes' listers give: ``role.rbac.authorization.k8s.io
        "x" not found``, ``clusterrole...``, or ``unsupported role reference kind: "X"``).
        """
        kind, name = role_ref.get("kind"), role_ref.get("name", "")
        if kind == "ClusterRole":
            role = self.source.cluster_role(name)
            label = "clusterrole"
        elif kind == "Role":
            role = self.source.role(namespace, name) if namespace else None
            label = "role"
        else:
            return [], f"unsupported role reference kind: {go_quote(str(kind or ''))}"
        if role is None:
            return [], f"{label}.{RBAC_GROUP} {go_quote(name)} not found"
        return list(role.get("rules") or ()), None

    # -- the walk ----------------------------------------------------------

    def _visit_rules(self, user: UserInfo, namespace: str, visit: _Visitor) -> None:
        """Kubernetes' ``VisitRulesFor``: cluster bindings, then the namespace's, in order."""
        if not self._visit_bindings(self._cluster_bindings(user), user, "", visit):
            return
        if namespace:
            self._visit_bindings(self._role_bindings(user, namespace), user, namespace, visit)

    def _visit_bindings(self, bindings: Iterable[Obj], user: UserInfo, namespace: str, visit: _Visitor) -> bool:
        for binding in bindings:
            subject = _first_subject(user, binding, namespace)
            if subject is None:
                continue
            rules, error = self.role_ref_rules(binding.get("roleRef") or {}, namespace)
            if error is not None:
                if not visit(None, None, error):
                    return False
                continue
            describe = _describer(binding, subject, namespace)
            for rule in rules:
                if not visit(describe, rule, None):
                    return False
        return True

    def _cluster_bindings(self, user: UserInfo) -> Iterable[Obj]:
        if not self._indexed():
            return self.source.cluster_role_bindings()
        if self._cluster_index is None:
            self._cluster_index = _index(self.source.cluster_role_bindings(), "")
        return _candidates(self._cluster_index, user)

    def _role_bindings(self, user: UserInfo, namespace: str) -> Iterable[Obj]:
        if not self._indexed():
            return self.source.role_bindings(namespace)
        index = self._namespace_index.get(namespace)
        if index is None:
            index = _index(self.source.role_bindings(namespace), namespace)
            if index:
                self._namespace_index[namespace] = index
        return _candidates(index, user)

    def _indexed(self) -> bool:
        """Whether the source versions its bindings; drops the indexes when the version moved."""
        version_of = getattr(self.source, "bindings_version", None)
        if version_of is None:
            return False
        version = version_of()
        if version != self._version:
            self._cluster_index = None
            self._namespace_index = {}
            self._version = version
        return True


def _describer(binding: Obj, subject: Mapping[str, Any], namespace: str) -> Callable[[], str]:
    """The binding's description, built only if a rule of it allows the request."""
    return lambda: _describe(binding, subject, namespace)


# ---------------------------------------------------------------------------
# 403 text
# ---------------------------------------------------------------------------

_SANITIZE = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def _authorization_message(attrs: Attributes) -> str:
    """Kubernetes' ``forbiddenMessage`` (responsewriters/errors.go)."""
    user = go_quote(attrs.user.username)
    if not attrs.resource_request:
        return f"User {user} cannot {attrs.verb} path {go_quote(attrs.path)}"
    resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    head = f"User {user} cannot {attrs.verb} resource {go_quote(resource)} in API group {go_quote(attrs.api_group)}"
    if attrs.namespace:
        return f"{head} in the namespace {go_quote(attrs.namespace)}"
    return f"{head} at the cluster scope"


def forbidden_message(attrs: Attributes, reason: str = "") -> str:
    """The message of the 403 ``Status`` for a denied request, as Kubernetes words it.

    ``<resource>[.<group>] ["<name>"] is forbidden: User "u" cannot <verb> resource
    "<resource>[/<sub>]" in API group "<group>" (in the namespace "<ns>" | at the
    cluster scope)[: <reason>]``; for a non-resource request ``forbidden: User "u"
    cannot <verb> path "<path>"``. ``&``, ``<`` and ``>`` of the middle part are
    HTML-escaped, as Kubernetes does (the reason is not).
    """
    text = _authorization_message(attrs).translate(_SANITIZE)
    if reason:
        text = f"{text}: {reason}"
    if not attrs.api_group and not attrs.resource:
        return f"forbidden: {text}"
    qualified = f"{attrs.resource}.{attrs.api_group}" if attrs.api_group else attrs.resource
    if attrs.name:
        return f"{qualified} {go_quote(attrs.name)} is forbidden: {text}"
    return f"{qualified} is forbidden: {text}"


def forbidden_error(attrs: Attributes, reason: str = "") -> errors.ApiError:
    """The 403 itself: ``details`` name the group, the resource (as ``kind``) and the name, if any."""
    details: Obj = {}
    if attrs.name:
        details["name"] = attrs.name
    if attrs.api_group:
        details["group"] = attrs.api_group
    if attrs.resource:
        details["kind"] = attrs.resource
    return errors.ApiError(403, "Forbidden", forbidden_message(attrs, reason), details)
