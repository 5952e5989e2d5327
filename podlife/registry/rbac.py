"""RBAC kinds (rbac.authorization.k8s.io/v1): the rules a Role, ClusterRole or binding must obey.

Design
------
Kubernetes validates these four kinds in ``pkg/apis/rbac/validation`` and podlife
answers the same mistakes with the same causes (field paths and wording), because
``kubectl`` and charts show them verbatim:

* names (of the object and of ``roleRef.name``) only need to be a safe path segment,
  so ``system:controller:job-controller`` or ``system::leader-locking-kube-scheduler``
  are fine -- hence ``name_rule = "path"`` on every strategy here;
* a rule needs ``verbs``; it is either a resource rule (``apiGroups`` and ``resources``)
  or a non-resource rule (``nonResourceURLs``), never both, and a namespaced Role can
  hold no non-resource rule;
* a ClusterRole's ``aggregationRule`` needs at least one ``clusterRoleSelectors`` entry,
  each a valid ``metav1.LabelSelector`` (its rules are the clusterrole-aggregation
  controller's business, see :mod:`podlife.controllers.clusterrole_aggregation`);
* a binding's ``roleRef`` names an ``rbac.authorization.k8s.io`` Role or ClusterRole (a
  ClusterRoleBinding only a ClusterRole) and never changes ("cannot change roleRef":
  permissions granted by a binding must not silently become others -- delete and
  recreate instead);
* subjects are a User or Group (``apiGroup`` rbac.authorization.k8s.io) or a
  ServiceAccount (``apiGroup`` empty, a DNS-subdomain name, and a namespace -- except in
  a RoleBinding, where an empty one means the binding's own namespace, which the
  authorizer fills in, so nothing is stored).

Defaults (``roleRef.apiGroup``, the subjects' ``apiGroup``) are
:func:`~podlife.registry.defaults.default_rolebinding`'s, run before validation as on
Kubernetes. Values that Go prints with ``%#v`` (the roleRef struct, a string slice)
are rendered the same way (:class:`GoValue`), so messages match character for character.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..machinery.names import (
    dns1123_subdomain_errors,
    label_value_errors,
    path_segment_errors,
    qualified_name_errors,
)
from ..machinery.selectors import SelectorError, go_quote, label_selector_from_dict
from .defaults import DefaultedStrategy
from .types import FieldError, Obj, Strategy, forbidden, invalid, not_supported, required

RBAC_GROUP = "rbac.authorization.k8s.io"
SUBJECT_KINDS = ["ServiceAccount", "User", "Group"]
_RULE_LISTS = ("verbs", "apiGroups", "resources", "resourceNames", "nonResourceURLs")
_SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


class GoValue:
    """A bad value shown as Go's ``%#v`` shows it (``FieldError`` prints ``repr`` of non-strings)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GoValue) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


def go_strings(values: Sequence[Any]) -> GoValue:
    """``[]string{"a", "b"}``, Go's ``%#v`` of a string slice."""
    return GoValue("[]string{" + ", ".join(go_quote(str(v)) for v in values) + "}")


def go_role_ref(ref: Obj) -> GoValue:
    """``rbac.RoleRef{APIGroup:"...", Kind:"...", Name:"..."}``, as in "cannot change roleRef"."""
    parts = ", ".join(f"{go}:{go_quote(str(ref.get(key) or ''))}"
                      for go, key in (("APIGroup", "apiGroup"), ("Kind", "kind"), ("Name", "name")))
    return GoValue("rbac.RoleRef{" + parts + "}")


# -- rules -----------------------------------------------------------------------------


def _string_list(rule: Obj, key: str, path: str, errs: list[FieldError]) -> list[str]:
    """``rule[key]`` as a list of strings (absent: empty); a wrong shape is reported once."""
    value = rule.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errs.append(invalid(f"{path}.{key}", value, "must be a list of strings"))
        return []
    return value


def validate_policy_rule(rule: Any, namespaced: bool, path: str) -> list[FieldError]:
    """``ValidatePolicyRule``: verbs, and either resources with groups or non-resource URLs."""
    if not isinstance(rule, dict):
        return [invalid(path, rule, "must be an object")]
    errs: list[FieldError] = []
    lists = {key: _string_list(rule, key, path, errs) for key in _RULE_LISTS}
    if not lists["verbs"]:
        errs.append(required(f"{path}.verbs", "verbs must contain at least one value"))
    urls = lists["nonResourceURLs"]
    if urls:
        if namespaced:
            errs.append(invalid(f"{path}.nonResourceURLs", go_strings(urls), "namespaced rules cannot apply to non-resource URLs"))
        if lists["apiGroups"] or lists["resources"] or lists["resourceNames"]:
            errs.append(invalid(f"{path}.nonResourceURLs", go_strings(urls),
                                "rules cannot apply to both regular resources and non-resource URLs"))
        return errs
    if not lists["apiGroups"]:
        errs.append(required(f"{path}.apiGroups", "resource rules must supply at least one api group"))
    if not lists["resources"]:
        errs.append(required(f"{path}.resources", "resource rules must supply at least one resource"))
    return errs


def _validate_rules(obj: Obj, namespaced: bool) -> list[FieldError]:
    rules = obj.get("rules")
    if rules is None:
        return []
    if not isinstance(rules, list):
        return [invalid("rules", rules, "must be a list of rules")]
    return [e for i, rule in enumerate(rules) for e in validate_policy_rule(rule, namespaced, f"rules[{i}]")]


# -- label selectors (metav1 validation) -------------------------------------------------


def _label_key_errors(key: Any, path: str) -> list[FieldError]:
    if not isinstance(key, str):
        return [invalid(path, key, "must be a string")]
    return [invalid(path, key, m) for m in qualified_name_errors(key)]


def _requirement_errors(expr: Any, path: str, allow_invalid_values: bool) -> list[FieldError]:
    """``ValidateLabelSelectorRequirement``: operator, values for it, key, values."""
    if not isinstance(expr, dict):
        return [invalid(path, expr, "must be an object")]
    errs: list[FieldError] = []
    operator, values = expr.get("operator"), expr.get("values") or []
    if not isinstance(values, list):
        return [invalid(f"{path}.values", values, "must be a list of strings")]
    if operator in ("In", "NotIn"):
        if not values:
            errs.append(required(f"{path}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
    elif operator in ("Exists", "DoesNotExist"):
        if values:
            errs.append(forbidden(f"{path}.values", "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
    else:
        errs.append(invalid(f"{path}.operator", operator if operator is not None else "", "not a valid selector operator"))
    errs += _label_key_errors(expr.get("key") or "", f"{path}.key")
    if not allow_invalid_values:
        for i, value in enumerate(values):
            problems = label_value_errors(value) if isinstance(value, str) else ["must be a string"]
            errs += [invalid(f"{path}.values[{i}]", value, m) for m in problems]
    return errs


def validate_label_selector(selector: Any, path: str, *, allow_invalid_values: bool = False) -> list[FieldError]:
    """metav1's ``ValidateLabelSelector``: ``matchLabels`` as labels, each of ``matchExpressions``."""
    if not isinstance(selector, dict):
        return [invalid(path, selector, "must be a label selector object")]
    errs: list[FieldError] = []
    match_labels = selector.get("matchLabels") or {}
    if not isinstance(match_labels, dict):
        errs.append(invalid(f"{path}.matchLabels", match_labels, "must be a map of strings"))
        match_labels = {}
    for key, value in match_labels.items():
        errs += _label_key_errors(key, f"{path}.matchLabels")
        problems = label_value_errors(value) if isinstance(value, str) else ["must be a string"]
        errs += [invalid(f"{path}.matchLabels", value, m) for m in problems]
    expressions = selector.get("matchExpressions") or []
    if not isinstance(expressions, list):
        return errs + [invalid(f"{path}.matchExpressions", expressions, "must be a list")]
    for i, expr in enumerate(expressions):
        errs += _requirement_errors(expr, f"{path}.matchExpressions[{i}]", allow_invalid_values)
    return errs


def _selector_has_errors(selector: Any) -> bool:
    return bool(validate_label_selector(selector, ""))


def _validate_aggregation_rule(obj: Obj, allow_invalid_values: bool) -> list[FieldError]:
    if "aggregationRule" not in obj or obj["aggregationRule"] is None:
        return []
    rule = obj["aggregationRule"]
    path = "aggregationRule.clusterRoleSelectors"
    selectors = rule.get("clusterRoleSelectors") if isinstance(rule, dict) else None
    if not selectors:
        return [required(path, "at least one clusterRoleSelector required if aggregationRule is non-nil")]
    if not isinstance(selectors, list):
        return [invalid(path, selectors, "must be a list of label selectors")]
    errs: list[FieldError] = []
    for i, selector in enumerate(selectors):
        errs += validate_label_selector(selector, f"{path}[{i}]", allow_invalid_values=allow_invalid_values)
        try:
            label_selector_from_dict(selector)
        except SelectorError:
            # Kubernetes reports the failed conversion too, with the (nil) selector it got back
            errs.append(invalid(f"{path}[{i}]", None, "invalid label selector."))
    return errs


def aggregation_selectors(obj: Obj) -> list[Any]:
    """The ``clusterRoleSelectors`` of a ClusterRole (empty when it is not aggregated)."""
    rule = obj.get("aggregationRule")
    selectors = rule.get("clusterRoleSelectors") if isinstance(rule, dict) else None
    return selectors if isinstance(selectors, list) else []


# -- roles -----------------------------------------------------------------------------


def validate_role(obj: Obj) -> list[FieldError]:
    """``ValidateRole`` minus ObjectMeta (the REST layer checks it with ``name_rule``)."""
    return _validate_rules(obj, namespaced=True)


def validate_cluster_role(obj: Obj, *, allow_invalid_label_values: bool = False) -> list[FieldError]:
    """``ValidateClusterRole`` minus ObjectMeta: its rules and its aggregation rule."""
    return _validate_rules(obj, namespaced=False) + _validate_aggregation_rule(obj, allow_invalid_label_values)


# -- bindings --------------------------------------------------------------------------


def _validate_role_ref(obj: Obj, kinds: list[str]) -> list[FieldError]:
    ref = obj.get("roleRef")
    if not isinstance(ref, dict):
        ref = {}
    errs: list[FieldError] = []
    if ref.get("apiGroup") != RBAC_GROUP:
        errs.append(not_supported("roleRef.apiGroup", ref.get("apiGroup") or "", [RBAC_GROUP]))
    if ref.get("kind") not in kinds:
        errs.append(not_supported("roleRef.kind", ref.get("kind") or "", kinds))
    name = ref.get("name")
    if not name:
        errs.append(required("roleRef.name"))
    elif not isinstance(name, str):
        errs.append(invalid("roleRef.name", name, "must be a string"))
    else:
        errs += [invalid("roleRef.name", name, m) for m in path_segment_errors(name)]
    return errs


def validate_subject(subject: Any, namespaced: bool, path: str) -> list[FieldError]:
    """``ValidateRoleBindingSubject``: name, and per kind its apiGroup (and a ServiceAccount's namespace)."""
    if not isinstance(subject, dict):
        return [invalid(path, subject, "must be an object")]
    errs: list[FieldError] = []
    name, kind, group = subject.get("name") or "", subject.get("kind") or "", subject.get("apiGroup") or ""
    if not name:
        errs.append(required(f"{path}.name"))
    if kind == "ServiceAccount":
        if name and isinstance(name, str):
            errs += [invalid(f"{path}.name", name, m) for m in dns1123_subdomain_errors(name)]
        if group:
            errs.append(not_supported(f"{path}.apiGroup", group, [""]))
        if not namespaced and not subject.get("namespace"):
            errs.append(required(f"{path}.namespace"))
    elif kind in ("User", "Group"):
        if group != RBAC_GROUP:
            errs.append(not_supported(f"{path}.apiGroup", group, [RBAC_GROUP]))
    else:
        errs.append(not_supported(f"{path}.kind", kind, SUBJECT_KINDS))
    return errs


def _validate_subjects(obj: Obj, namespaced: bool) -> list[FieldError]:
    subjects = obj.get("subjects")
    if subjects is None:
        return []
    if not isinstance(subjects, list):
        return [invalid("subjects", subjects, "must be a list of subjects")]
    return [e for i, s in enumerate(subjects) for e in validate_subject(s, namespaced, f"subjects[{i}]")]


def validate_role_binding(obj: Obj) -> list[FieldError]:
    """``ValidateRoleBinding`` minus ObjectMeta: a Role or ClusterRole, subjects that may omit a namespace."""
    return _validate_role_ref(obj, ["Role", "ClusterRole"]) + _validate_subjects(obj, namespaced=True)


def validate_cluster_role_binding(obj: Obj) -> list[FieldError]:
    """``ValidateClusterRoleBinding`` minus ObjectMeta: a ClusterRole only; ServiceAccounts need a namespace."""
    return _validate_role_ref(obj, ["ClusterRole"]) + _validate_subjects(obj, namespaced=False)


def role_ref_key(obj: Obj) -> tuple[str, str, str]:
    """What identifies a binding's role: (apiGroup, kind, name), empty strings for missing parts."""
    ref = obj.get("roleRef")
    ref = ref if isinstance(ref, dict) else {}
    return (str(ref.get("apiGroup") or ""), str(ref.get("kind") or ""), str(ref.get("name") or ""))


def validate_role_ref_unchanged(new: Obj, old: Obj) -> list[FieldError]:
    """The update rule of both bindings: roleRef is immutable."""
    if role_ref_key(new) == role_ref_key(old):
        return []
    ref = new.get("roleRef")
    return [invalid("roleRef", go_role_ref(ref if isinstance(ref, dict) else {}), "cannot change roleRef")]


# -- strategies ------------------------------------------------------------------------


class RoleStrategy(Strategy):
    """Role: namespaced rules; names are path segments (``system::leader-locking-...``)."""

    name_rule = "path"

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_role(obj)


class ClusterRoleStrategy(Strategy):
    """ClusterRole: rules (non-resource URLs allowed) and an optional aggregation rule.

    On update, selectors may keep label values that are invalid today when the stored
    object already had invalid selectors (Kubernetes' ``AllowInvalidLabelValueInSelector``),
    so old objects stay editable.
    """

    name_rule = "path"

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_cluster_role(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        allow = any(_selector_has_errors(s) for s in aggregation_selectors(old))
        return validate_cluster_role(new, allow_invalid_label_values=allow)


class _BindingStrategy(DefaultedStrategy):
    """What both bindings share: defaults, path-segment names, an immutable roleRef."""

    name_rule = "path"

    def default(self, obj: Obj) -> None:
        if not isinstance(obj.get("roleRef"), dict):
            obj["roleRef"] = {}  # a Go struct: always there, so its apiGroup is defaulted too
        super().default(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return self.validate(new) + validate_role_ref_unchanged(new, old)


class RoleBindingStrategy(_BindingStrategy):
    def __init__(self) -> None:
        super().__init__(RBAC_GROUP, "RoleBinding")

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_role_binding(obj)


class ClusterRoleBindingStrategy(_BindingStrategy):
    def __init__(self) -> None:
        super().__init__(RBAC_GROUP, "ClusterRoleBinding")

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_cluster_role_binding(obj)


def rbac_strategy(kind: str) -> Strategy:
    """The strategy of an RBAC kind by its name (for the catalog)."""
    strategies: dict[str, type[Strategy]] = {"Role": RoleStrategy, "ClusterRole": ClusterRoleStrategy,
                                             "RoleBinding": RoleBindingStrategy,
                                             "ClusterRoleBinding": ClusterRoleBindingStrategy}
    return strategies[kind]()
