"""RBAC validation (pure): Kubernetes' messages and field paths for roles, cluster roles and bindings."""

from __future__ import annotations

from typing import Any

import pytest

from podlife.registry.rbac import (
    ClusterRoleBindingStrategy,
    ClusterRoleStrategy,
    RoleBindingStrategy,
    RoleStrategy,
    rbac_strategy,
)
from podlife.registry.types import FieldError
from podlife.registry.validation import validate_metadata

Obj = dict[str, Any]
RBAC = "rbac.authorization.k8s.io"


def shown(errs: list[FieldError]) -> list[str]:
    """Each error as the API prints it in a 422: ``<field>: <message>``."""
    return [str(e) for e in errs]


def role(*rules: Any, **extra: Any) -> Obj:
    return {"metadata": {"name": "r", "namespace": "ns"}, "rules": list(rules), **extra}


def cluster_role(*rules: Any, **extra: Any) -> Obj:
    return {"metadata": {"name": "r"}, "rules": list(rules), **extra}


def binding(role_ref: Any = None, subjects: Any = None, *, namespaced: bool = True) -> Obj:
    obj: Obj = {"metadata": {"name": "b", **({"namespace": "ns"} if namespaced else {})}}
    if role_ref is not None:
        obj["roleRef"] = role_ref
    if subjects is not None:
        obj["subjects"] = subjects
    return obj


def ref(kind: str = "ClusterRole", name: str = "view", group: str | None = RBAC) -> Obj:
    out: Obj = {"kind": kind, "name": name}
    if group is not None:
        out["apiGroup"] = group
    return out


def create_errors(strategy: Any, obj: Obj) -> list[str]:
    """What a create runs: defaults, then validation."""
    strategy.default(obj)
    return shown(strategy.validate(obj))


# -- rules -----------------------------------------------------------------------------------


def test_a_valid_role_and_cluster_role() -> None:
    resource_rule = {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"]}
    assert create_errors(RoleStrategy(), role(resource_rule)) == []
    assert create_errors(ClusterRoleStrategy(), cluster_role(resource_rule, {"verbs": ["get"], "nonResourceURLs": ["/healthz"]})) == []
    assert create_errors(ClusterRoleStrategy(), cluster_role()) == []
    assert create_errors(RoleStrategy(), {"metadata": {"name": "r", "namespace": "ns"}}) == []


def test_a_rule_needs_verbs() -> None:
    assert create_errors(RoleStrategy(), role({"apiGroups": [""], "resources": ["pods"]})) == [
        "rules[0].verbs: Required value: verbs must contain at least one value"]
    assert create_errors(ClusterRoleStrategy(), cluster_role({"verbs": [], "nonResourceURLs": ["/x"]})) == [
        "rules[0].verbs: Required value: verbs must contain at least one value"]


def test_a_resource_rule_needs_groups_and_resources() -> None:
    assert create_errors(RoleStrategy(), role({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]},
                                              {"verbs": ["get"]})) == [
        "rules[1].apiGroups: Required value: resource rules must supply at least one api group",
        "rules[1].resources: Required value: resource rules must supply at least one resource",
    ]
    assert create_errors(RoleStrategy(), role({"verbs": ["get"], "resources": ["pods"]})) == [
        "rules[0].apiGroups: Required value: resource rules must supply at least one api group"]


def test_non_resource_urls_only_in_cluster_roles_and_never_with_resources() -> None:
    urls = {"verbs": ["get"], "nonResourceURLs": ["/healthz", "/version"]}
    assert create_errors(RoleStrategy(), role(urls)) == [
        'rules[0].nonResourceURLs: Invalid value: []string{"/healthz", "/version"}: '
        "namespaced rules cannot apply to non-resource URLs"]
    mixed = {"verbs": ["get"], "nonResourceURLs": ["/healthz"], "apiGroups": [""], "resources": ["pods"]}
    assert create_errors(ClusterRoleStrategy(), cluster_role(mixed)) == [
        'rules[0].nonResourceURLs: Invalid value: []string{"/healthz"}: '
        "rules cannot apply to both regular resources and non-resource URLs"]
    assert create_errors(RoleStrategy(), role(mixed)) == [
        'rules[0].nonResourceURLs: Invalid value: []string{"/healthz"}: namespaced rules cannot apply to non-resource URLs',
        'rules[0].nonResourceURLs: Invalid value: []string{"/healthz"}: '
        "rules cannot apply to both regular resources and non-resource URLs",
    ]


def test_causes_carry_kubernetes_reasons() -> None:
    errs = RoleStrategy().validate(role({"apiGroups": [""], "resources": ["pods"]}))
    assert [e.cause() for e in errs] == [{"reason": "FieldValueRequired", "field": "rules[0].verbs",
                                          "message": "Required value: verbs must contain at least one value"}]


# -- aggregation rules -------------------------------------------------------------------------


def aggregated(*selectors: Any) -> Obj:
    return cluster_role(aggregationRule={"clusterRoleSelectors": list(selectors)})


def test_an_aggregation_rule_needs_a_selector() -> None:
    assert create_errors(ClusterRoleStrategy(), aggregated()) == [
        "aggregationRule.clusterRoleSelectors: Required value: at least one clusterRoleSelector required if "
        "aggregationRule is non-nil"]
    assert create_errors(ClusterRoleStrategy(), cluster_role(aggregationRule={})) == [
        "aggregationRule.clusterRoleSelectors: Required value: at least one clusterRoleSelector required if "
        "aggregationRule is non-nil"]
    ok = aggregated({"matchLabels": {"a": "b"}},
                    {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["x"]}]})
    assert create_errors(ClusterRoleStrategy(), ok) == []


def test_aggregation_selectors_are_validated_as_label_selectors() -> None:
    bad_operator = aggregated({"matchExpressions": [{"key": "a", "operator": "Near", "values": ["x"]}]})
    assert create_errors(ClusterRoleStrategy(), bad_operator) == [
        'aggregationRule.clusterRoleSelectors[0].matchExpressions[0].operator: Invalid value: "Near": '
        "not a valid selector operator",
        "aggregationRule.clusterRoleSelectors[0]: Invalid value: null: invalid label selector.",
    ]
    no_values = aggregated({"matchLabels": {"ok": "yes"}}, {"matchExpressions": [{"key": "a", "operator": "In"}]})
    assert create_errors(ClusterRoleStrategy(), no_values) == [
        "aggregationRule.clusterRoleSelectors[1].matchExpressions[0].values: Required value: "
        "must be specified when `operator` is 'In' or 'NotIn'",
        "aggregationRule.clusterRoleSelectors[1]: Invalid value: null: invalid label selector.",
    ]
    exists_with_values = aggregated({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]})
    assert create_errors(ClusterRoleStrategy(), exists_with_values)[0] == (
        "aggregationRule.clusterRoleSelectors[0].matchExpressions[0].values: Forbidden: "
        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'")
    bad_label = create_errors(ClusterRoleStrategy(), aggregated({"matchLabels": {"bad key": "v"}}))
    assert bad_label[0].startswith('aggregationRule.clusterRoleSelectors[0].matchLabels: Invalid value: "bad key": ')
    bad_value = create_errors(ClusterRoleStrategy(), aggregated({"matchExpressions": [
        {"key": "a", "operator": "In", "values": ["-x-"]}]}))
    assert bad_value[0].startswith('aggregationRule.clusterRoleSelectors[0].matchExpressions[0].values[0]: '
                                   'Invalid value: "-x-": a valid label must be')


def test_updates_may_keep_invalid_selector_values_old_objects_already_had() -> None:
    strategy = ClusterRoleStrategy()
    old = aggregated({"matchExpressions": [{"key": "a", "operator": "In", "values": ["-x-"]}]})
    new = aggregated({"matchExpressions": [{"key": "a", "operator": "In", "values": ["-x-"]}]})
    errs = shown(strategy.validate_update(new, old))
    assert not any(".values[0]" in e for e in errs)
    fresh = shown(strategy.validate_update(new, aggregated({"matchLabels": {"a": "b"}})))
    assert any(".values[0]" in e for e in fresh)


# -- bindings --------------------------------------------------------------------------------


def test_valid_bindings_and_their_defaults() -> None:
    rb = binding(ref(group=None), [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "devs"},
                                   {"kind": "ServiceAccount", "name": "default"}])
    assert create_errors(RoleBindingStrategy(), rb) == []  # a RoleBinding's ServiceAccount may omit its namespace
    assert rb["roleRef"]["apiGroup"] == RBAC
    assert [s["apiGroup"] for s in rb["subjects"]] == [RBAC, RBAC, ""]
    crb = binding(ref(), [{"kind": "ServiceAccount", "name": "builder", "namespace": "ci"}], namespaced=False)
    assert create_errors(ClusterRoleBindingStrategy(), crb) == []
    assert create_errors(RoleBindingStrategy(), binding(ref(kind="Role", name="pod-reader"))) == []


def test_role_ref_rules() -> None:
    assert create_errors(RoleBindingStrategy(), binding(ref(kind="Secret"))) == [
        'roleRef.kind: Unsupported value: "Secret": supported values: "Role", "ClusterRole"']
    assert create_errors(ClusterRoleBindingStrategy(), binding(ref(kind="Role"), namespaced=False)) == [
        'roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole"']
    assert create_errors(RoleBindingStrategy(), binding(ref(group="example.com"))) == [
        'roleRef.apiGroup: Unsupported value: "example.com": supported values: "rbac.authorization.k8s.io"']
    assert create_errors(RoleBindingStrategy(), binding(ref(name=""))) == ["roleRef.name: Required value"]
    assert create_errors(RoleBindingStrategy(), binding(ref(name="a/b"))) == [
        "roleRef.name: Invalid value: \"a/b\": may not contain '/'"]
    assert create_errors(RoleBindingStrategy(), binding(ref(name=".."))) == [
        "roleRef.name: Invalid value: \"..\": may not be '..'"]
    # no roleRef at all: Go's zero struct, its apiGroup defaulted
    assert create_errors(ClusterRoleBindingStrategy(), binding(namespaced=False)) == [
        'roleRef.kind: Unsupported value: "": supported values: "ClusterRole"', "roleRef.name: Required value"]


def test_subject_rules() -> None:
    def subject_errors(strategy: Any, subject: Obj, namespaced: bool = True) -> list[str]:
        return create_errors(strategy, binding(ref(), [subject], namespaced=namespaced))

    assert subject_errors(RoleBindingStrategy(), {"kind": "Robot", "name": "r2"}) == [
        'subjects[0].kind: Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group"']
    assert subject_errors(RoleBindingStrategy(), {"kind": "User", "name": ""}) == ["subjects[0].name: Required value"]
    assert subject_errors(RoleBindingStrategy(), {"kind": "User", "name": "bob", "apiGroup": "example.com"}) == [
        'subjects[0].apiGroup: Unsupported value: "example.com": supported values: "rbac.authorization.k8s.io"']
    assert subject_errors(RoleBindingStrategy(), {"kind": "ServiceAccount", "name": "sa", "apiGroup": RBAC}) == [
        'subjects[0].apiGroup: Unsupported value: "rbac.authorization.k8s.io": supported values: ""']
    assert subject_errors(ClusterRoleBindingStrategy(), {"kind": "ServiceAccount", "name": "sa"}, namespaced=False) == [
        "subjects[0].namespace: Required value"]
    bad_name = subject_errors(RoleBindingStrategy(), {"kind": "ServiceAccount", "name": "Bad_Name"})
    assert bad_name == ['subjects[0].name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist of '
                        "lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
                        "character (e.g. 'example.com', regex used for validation is "
                        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"]
    # users and groups: any non-empty name
    assert subject_errors(RoleBindingStrategy(), {"kind": "Group", "name": "system:serviceaccounts:ci"}) == []


@pytest.mark.parametrize("strategy", [RoleBindingStrategy(), ClusterRoleBindingStrategy()])
def test_role_ref_cannot_change(strategy: Any) -> None:
    namespaced = isinstance(strategy, RoleBindingStrategy)
    old = binding(ref(name="view"), [{"kind": "User", "name": "alice"}], namespaced=namespaced)
    strategy.default(old)
    changed = binding(ref(name="edit"), [{"kind": "User", "name": "alice"}], namespaced=namespaced)
    strategy.default(changed)
    assert shown(strategy.validate_update(changed, old)) == [
        'roleRef: Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"ClusterRole", Name:"edit"}: '
        "cannot change roleRef"]
    more_subjects = binding(ref(name="view"), [{"kind": "User", "name": "alice"}, {"kind": "User", "name": "bob"}],
                            namespaced=namespaced)
    strategy.default(more_subjects)
    assert strategy.validate_update(more_subjects, old) == []


def test_rbac_names_are_path_segments() -> None:
    for kind in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"):
        assert rbac_strategy(kind).name_rule == "path"
    meta = {"name": "system:controller:job-controller"}
    assert validate_metadata(meta, namespaced=False, name_rule="path") == []
    assert validate_metadata(meta, namespaced=False, name_rule="subdomain") != []  # why "path" matters
    assert shown(validate_metadata({"name": "a%2F"}, namespaced=False, name_rule="path")) == [
        "metadata.name: Invalid value: \"a%2F\": may not contain '%'"]


def test_malformed_shapes_are_reported_not_raised() -> None:
    assert create_errors(RoleStrategy(), role("get")) == ['rules[0]: Invalid value: "get": must be an object']
    assert create_errors(RoleStrategy(), role({"verbs": "get", "apiGroups": [""], "resources": ["pods"]}))[0] == (
        'rules[0].verbs: Invalid value: "get": must be a list of strings')
    assert create_errors(RoleBindingStrategy(), binding(ref(), ["alice"])) == [
        'subjects[0]: Invalid value: "alice": must be an object']
