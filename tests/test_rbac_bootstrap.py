"""Kubernetes' bootstrap RBAC policy (pure): valid objects, Kubernetes' names and rules, reconciliation."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from podlife.api.authz.bootstrap import (
    AGGREGATE_TO,
    AUTOUPDATE_ANNOTATION,
    CONTROLLER_NAMES,
    bootstrap_cluster_role_bindings,
    bootstrap_cluster_roles,
    bootstrap_role_bindings,
    bootstrap_roles,
    breakdown,
    needs_recreate,
    reconcile,
    rule,
    rule_covers,
    uncovered,
    url_rule,
)
from podlife.controllers.clusterrole_aggregation import aggregated_rules
from podlife.registry.catalog import builtin_types
from podlife.registry.defaults import default_rolebinding
from podlife.registry.rbac import (
    validate_cluster_role,
    validate_cluster_role_binding,
    validate_role,
    validate_role_binding,
)
from podlife.registry.validation import validate_metadata

Obj = dict[str, Any]
RBAC = "rbac.authorization.k8s.io"


def by_name(objs: list[Obj]) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in objs}


def by_key(objs: list[Obj]) -> dict[tuple[str, str], Obj]:
    return {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objs}


ROLES = by_name(bootstrap_cluster_roles())
BINDINGS = by_name(bootstrap_cluster_role_bindings())


def every_object() -> list[Obj]:
    return [*bootstrap_cluster_roles(), *bootstrap_cluster_role_bindings(), *bootstrap_roles(), *bootstrap_role_bindings()]


# -- shape and metadata ------------------------------------------------------------------


def test_every_object_carries_kubernetes_bootstrap_metadata() -> None:
    for obj in every_object():
        meta = obj["metadata"]
        assert obj["apiVersion"] == "rbac.authorization.k8s.io/v1", meta["name"]
        assert meta["labels"]["kubernetes.io/bootstrapping"] == "rbac-defaults", meta["name"]
        assert meta["annotations"] == {"rbac.authorization.kubernetes.io/autoupdate": "true"}, meta["name"]


def test_kinds_and_unique_names() -> None:
    assert {o["kind"] for o in bootstrap_cluster_roles()} == {"ClusterRole"}
    assert {o["kind"] for o in bootstrap_cluster_role_bindings()} == {"ClusterRoleBinding"}
    assert {o["kind"] for o in bootstrap_roles()} == {"Role"}
    assert {o["kind"] for o in bootstrap_role_bindings()} == {"RoleBinding"}
    assert len(ROLES) == len(bootstrap_cluster_roles())
    assert len(BINDINGS) == len(bootstrap_cluster_role_bindings())
    assert len(by_key(bootstrap_roles())) == len(bootstrap_roles())
    assert len(by_key(bootstrap_role_bindings())) == len(bootstrap_role_bindings())


def test_every_object_is_valid_per_rbac_validation() -> None:
    checks = {"ClusterRole": validate_cluster_role, "Role": validate_role,
              "ClusterRoleBinding": validate_cluster_role_binding, "RoleBinding": validate_role_binding}
    for obj in every_object():
        obj = copy.deepcopy(obj)
        if obj["kind"].endswith("Binding"):
            default_rolebinding(obj)  # what the API server runs before validation
        errs = validate_metadata(obj["metadata"], namespaced=obj["kind"] in ("Role", "RoleBinding"), name_rule="path")
        errs += checks[obj["kind"]](obj)
        assert errs == [], (obj["metadata"]["name"], [str(e) for e in errs])


def test_functions_return_fresh_objects() -> None:
    first = bootstrap_cluster_roles()
    first[0]["metadata"]["labels"]["mine"] = "x"
    first[0]["rules"].clear()
    assert bootstrap_cluster_roles()[0] != first[0]


def test_rules_are_sorted_like_kubernetes_rule_builder() -> None:
    for obj in [*bootstrap_cluster_roles(), *bootstrap_roles()]:
        for r in obj.get("rules") or []:
            for key, values in r.items():
                assert values == sorted(set(values)), (obj["metadata"]["name"], key)


# -- the roles everyone relies on ---------------------------------------------------------


def test_cluster_admin_can_do_everything_and_is_bound_to_system_masters() -> None:
    assert ROLES["cluster-admin"]["rules"] == [
        {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
        {"verbs": ["*"], "nonResourceURLs": ["*"]},
    ]
    binding = BINDINGS["cluster-admin"]
    assert binding["roleRef"] == {"apiGroup": RBAC, "kind": "ClusterRole", "name": "cluster-admin"}
    assert binding["subjects"] == [{"apiGroup": RBAC, "kind": "Group", "name": "system:masters"}]


def test_admin_edit_view_are_aggregated_by_their_labels() -> None:
    for name in ("admin", "edit", "view"):
        role = ROLES[name]
        assert role["aggregationRule"] == {"clusterRoleSelectors": [
            {"matchLabels": {f"rbac.authorization.k8s.io/aggregate-to-{name}": "true"}}]}
        assert "rules" not in role  # the controller fills them
        assert ROLES[f"system:aggregate-to-{name}"]["metadata"]["labels"][AGGREGATE_TO[name]] == "true"
    # edit is part of admin, view is part of edit
    assert ROLES["edit"]["metadata"]["labels"][AGGREGATE_TO["admin"]] == "true"
    assert ROLES["view"]["metadata"]["labels"][AGGREGATE_TO["edit"]] == "true"
    assert AGGREGATE_TO["admin"] not in ROLES["admin"]["metadata"]["labels"]


def test_aggregate_roles_carry_kubernetes_rules() -> None:
    admin_rules = ROLES["system:aggregate-to-admin"]["rules"]
    assert admin_rules == [
        {"verbs": ["create"], "apiGroups": ["authorization.k8s.io"], "resources": ["localsubjectaccessreviews"]},
        {"verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
         "apiGroups": [RBAC], "resources": ["rolebindings", "roles"]},
    ]
    view = ROLES["system:aggregate-to-view"]["rules"]
    assert view[0]["resources"] == ["configmaps", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status",
                                    "pods", "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts",
                                    "services", "services/status"]
    assert [r["apiGroups"] for r in view] == [[""], [""], [""], ["discovery.k8s.io"], ["apps"], ["autoscaling"], ["batch"],
                                              ["extensions"], ["policy"], ["networking.k8s.io"]]
    edit = ROLES["system:aggregate-to-edit"]["rules"]
    assert edit[0] == {"verbs": ["get", "list", "watch"], "apiGroups": [""],
                       "resources": ["pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets", "services/proxy"]}
    assert edit[-1] == {"verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
                        "apiGroups": ["coordination.k8s.io"], "resources": ["leases"]}
    # since CVE-2021-25740 edit no longer writes endpoints; view still reads them
    assert not any("endpoints" in r["resources"] for r in edit)


def _allows(rules: list[Obj], verb: str, group: str, resource: str) -> bool:
    piece = {"verbs": [verb], "apiGroups": [group], "resources": [resource]}
    return any(rule_covers(r, piece) for r in rules)


def _union(name: str, roles: dict[str, Obj]) -> list[Obj]:
    """What the aggregation controller makes of ``name`` once the chain below it has settled."""
    settled = copy.deepcopy(roles)
    for step in ("view", "edit", "admin"):
        settled[step]["rules"] = aggregated_rules(settled[step], settled.values())
    return settled[name]["rules"]


def test_aggregated_roles_cover_the_namespaced_kinds_podlife_serves() -> None:
    view, edit, admin = _union("view", ROLES), _union("edit", ROLES), _union("admin", ROLES)
    # Kubernetes' aggregate roles leave these out (podtemplates, events.k8s.io), and podlife's own group
    not_in_kubernetes_roles = {("", "podtemplates"), ("events.k8s.io", "events")}
    for t in builtin_types():
        if not t.namespaced or "list" not in t.verbs or t.group == "network.podlife.io" \
                or (t.group, t.plural) in not_in_kubernetes_roles:
            continue
        assert _allows(admin, "get", t.group, t.plural), t.plural
        if (t.group, t.plural) not in {("", "secrets"), (RBAC, "roles"), (RBAC, "rolebindings"),
                                       ("coordination.k8s.io", "leases")}:
            assert _allows(view, "list", t.group, t.plural), t.plural
    assert _allows(edit, "get", "", "secrets") and not _allows(view, "get", "", "secrets")
    assert _allows(edit, "create", "apps", "deployments") and not _allows(view, "create", "apps", "deployments")
    assert _allows(admin, "create", RBAC, "rolebindings") and not _allows(edit, "create", RBAC, "rolebindings")


def test_default_bindings_of_users_and_groups() -> None:
    authenticated = {"apiGroup": RBAC, "kind": "Group", "name": "system:authenticated"}
    unauthenticated = {"apiGroup": RBAC, "kind": "Group", "name": "system:unauthenticated"}
    assert BINDINGS["system:basic-user"]["subjects"] == [authenticated]
    assert BINDINGS["system:discovery"]["subjects"] == [authenticated]
    assert BINDINGS["system:public-info-viewer"]["subjects"] == [authenticated, unauthenticated]
    assert BINDINGS["system:monitoring"]["subjects"] == [{"apiGroup": RBAC, "kind": "Group", "name": "system:monitoring"}]
    assert BINDINGS["system:service-account-issuer-discovery"]["subjects"] == [
        {"apiGroup": RBAC, "kind": "Group", "name": "system:serviceaccounts"}]
    assert BINDINGS["system:kube-scheduler"]["subjects"] == [{"apiGroup": RBAC, "kind": "User", "name": "system:kube-scheduler"}]
    assert BINDINGS["system:volume-scheduler"]["subjects"] == BINDINGS["system:kube-scheduler"]["subjects"]
    assert BINDINGS["system:node-proxier"]["subjects"] == [{"apiGroup": RBAC, "kind": "User", "name": "system:kube-proxy"}]
    assert BINDINGS["system:kube-dns"]["subjects"] == [{"kind": "ServiceAccount", "name": "kube-dns", "namespace": "kube-system"}]


def test_system_node_role_exists_but_its_binding_has_no_subjects() -> None:
    node = ROLES["system:node"]["rules"]
    assert _allows(node, "create", "", "nodes") and _allows(node, "patch", "", "nodes/status")
    assert _allows(node, "update", "", "pods/status") and _allows(node, "create", "", "serviceaccounts/token")
    assert "subjects" not in BINDINGS["system:node"]  # nodes are authorized by the Node authorizer
    assert BINDINGS["system:node"]["roleRef"]["name"] == "system:node"


def test_url_roles() -> None:
    assert ROLES["system:discovery"]["rules"] == [url_rule("get", "/api /api/* /apis /apis/* /healthz /livez /openapi "
                                                                  "/openapi/* /readyz /version /version/")]
    assert ROLES["system:public-info-viewer"]["rules"] == [url_rule("get", "/healthz /livez /readyz /version /version/")]
    assert ROLES["system:monitoring"]["rules"][0]["nonResourceURLs"] == [
        "/healthz", "/healthz/*", "/livez", "/livez/*", "/metrics", "/metrics/slis", "/readyz", "/readyz/*"]
    assert ROLES["system:service-account-issuer-discovery"]["rules"] == [
        url_rule("get", "/.well-known/openid-configuration /openid/v1/jwks")]
    assert ROLES["system:basic-user"]["rules"][1] == rule("create", ["authentication.k8s.io"], "selfsubjectreviews")


def test_component_roles_exist() -> None:
    for name in ("system:kube-scheduler", "system:kube-controller-manager", "system:volume-scheduler",
                 "system:node-proxier", "system:auth-delegator", "system:heapster", "system:kube-aggregator",
                 "system:kube-dns", "system:kubelet-api-admin", "system:node-bootstrapper",
                 "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
                 "system:certificates.k8s.io:kubelet-serving-approver"):
        assert ROLES[name]["rules"], name
    scheduler = ROLES["system:kube-scheduler"]["rules"]
    assert {"verbs": ["get", "update"], "apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
            "resourceNames": ["kube-scheduler"]} in scheduler
    assert _allows(scheduler, "create", "", "pods/binding")
    assert _allows(ROLES["system:kube-controller-manager"]["rules"], "list", "apps", "deployments")  # list/watch */*


# -- controllers ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["namespace-controller", "generic-garbage-collector", "service-account-controller",
                                  "root-ca-cert-publisher", "clusterrole-aggregation-controller", "deployment-controller",
                                  "replicaset-controller", "job-controller", "endpoint-controller",
                                  "endpointslice-controller", "node-controller", "statefulset-controller",
                                  "daemon-set-controller", "cronjob-controller"])
def test_controller_role_and_binding_to_its_service_account(name: str) -> None:
    assert name in CONTROLLER_NAMES
    role = ROLES[f"system:controller:{name}"]
    assert role["rules"]
    binding = BINDINGS[f"system:controller:{name}"]
    assert binding["roleRef"] == {"apiGroup": RBAC, "kind": "ClusterRole", "name": f"system:controller:{name}"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": "kube-system"}]


def test_controller_rules_spot_checks() -> None:
    aggregation = ROLES["system:controller:clusterrole-aggregation-controller"]["rules"]
    assert aggregation == [{"verbs": ["escalate", "get", "list", "patch", "update", "watch"], "apiGroups": [RBAC],
                            "resources": ["clusterroles"]}]
    namespace = ROLES["system:controller:namespace-controller"]["rules"]
    assert _allows(namespace, "update", "", "namespaces/finalize") and _allows(namespace, "deletecollection", "x.io", "y")
    gc = ROLES["system:controller:generic-garbage-collector"]["rules"]
    assert _allows(gc, "patch", "example.com", "widgets") and not _allows(gc, "create", "", "pods")
    assert ROLES["system:controller:root-ca-cert-publisher"]["rules"][0] == rule("create update", [""], "configmaps")
    assert ROLES["system:controller:service-account-controller"]["rules"][0] == rule("create", [""], "serviceaccounts")


# -- namespaced roles ----------------------------------------------------------------------


def test_namespaced_roles_and_bindings() -> None:
    roles, bindings = by_key(bootstrap_roles()), by_key(bootstrap_role_bindings())
    assert ("kube-system", "extension-apiserver-authentication-reader") in roles
    assert ("kube-system", "system::leader-locking-kube-scheduler") in roles
    assert ("kube-system", "system::leader-locking-kube-controller-manager") in roles
    assert ("kube-public", "system:controller:bootstrap-signer") in roles
    assert ("kube-system", "system:controller:bootstrap-signer") in roles
    reader = roles[("kube-system", "extension-apiserver-authentication-reader")]["rules"]
    assert reader == [{"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["configmaps"],
                       "resourceNames": ["extension-apiserver-authentication"]}]
    binding = bindings[("kube-system", "system::extension-apiserver-authentication-reader")]
    assert binding["roleRef"]["name"] == "extension-apiserver-authentication-reader"
    assert [s["name"] for s in binding["subjects"]] == ["system:kube-controller-manager", "system:kube-scheduler"]
    for (namespace, _name), b in bindings.items():
        assert b["roleRef"]["kind"] == "Role"
        assert (namespace, b["roleRef"]["name"]) in roles  # each binds a Role of its own namespace


def test_every_cluster_binding_names_a_bootstrap_cluster_role() -> None:
    for name, b in BINDINGS.items():
        assert b["roleRef"]["kind"] == "ClusterRole" and b["roleRef"]["name"] in ROLES, name


# -- reconciliation ------------------------------------------------------------------------


def stored(obj: Obj) -> Obj:
    """``obj`` as the API returns it: server-set metadata, defaulted subjects."""
    out = copy.deepcopy(obj)
    out["metadata"].update(uid="u-1", resourceVersion="42", creationTimestamp="2024-01-01T00:00:00Z")
    for s in out.get("subjects") or []:
        s.setdefault("apiGroup", "")
    return out


def test_reconcile_creates_what_is_missing() -> None:
    wanted = ROLES["system:basic-user"]
    got = reconcile(None, wanted)
    assert got == wanted and got is not wanted


@pytest.mark.parametrize("obj", every_object(), ids=lambda o: f"{o['kind']}/{o['metadata']['name']}")
def test_reconcile_leaves_an_up_to_date_object_alone(obj: Obj) -> None:
    assert reconcile(stored(obj), obj) is None


def test_reconcile_adds_missing_rules_and_keeps_extra_ones_and_user_metadata() -> None:
    wanted = ROLES["system:auth-delegator"]
    existing = stored(wanted)
    existing["rules"] = [wanted["rules"][0], rule("get", [""], "configmaps")]  # one lost, one added by a user
    existing["metadata"]["labels"]["team"] = "infra"
    existing["metadata"]["annotations"]["note"] = "mine"
    got = reconcile(existing, wanted)
    assert got is not None
    assert got["rules"] == [wanted["rules"][0], rule("get", [""], "configmaps"),
                            {"verbs": ["create"], "apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"]}]
    assert got["metadata"]["labels"] == {"kubernetes.io/bootstrapping": "rbac-defaults", "team": "infra"}
    assert got["metadata"]["annotations"] == {AUTOUPDATE_ANNOTATION: "true", "note": "mine"}
    assert got["metadata"]["resourceVersion"] == "42"  # an update of what was read
    assert existing["rules"][1] == rule("get", [""], "configmaps")  # the input is untouched


def test_reconcile_appends_only_uncovered_pieces() -> None:
    wanted = ROLES["system:kube-dns"]  # list, watch on endpoints and services
    existing = stored(wanted)
    existing["rules"] = [rule("list", [""], "endpoints services"), rule("watch", [""], "services")]
    got = reconcile(existing, wanted)
    assert got is not None
    assert got["rules"][2:] == [{"verbs": ["watch"], "apiGroups": [""], "resources": ["endpoints"]}]


def test_reconcile_respects_autoupdate_false() -> None:
    wanted = ROLES["system:auth-delegator"]
    existing = stored(wanted)
    existing["rules"] = []
    existing["metadata"]["annotations"][AUTOUPDATE_ANNOTATION] = "false"
    assert reconcile(existing, wanted) is None


def test_reconcile_treats_a_missing_annotation_as_not_protected() -> None:
    wanted = ROLES["system:auth-delegator"]
    existing = stored(wanted)
    del existing["metadata"]["annotations"]
    got = reconcile(existing, wanted)
    assert got is not None and got["metadata"]["annotations"] == {AUTOUPDATE_ANNOTATION: "true"}


def test_reconcile_keeps_aggregated_rules_and_adds_missing_selectors() -> None:
    wanted = ROLES["view"]
    existing = stored(wanted)
    existing["rules"] = ROLES["system:aggregate-to-view"]["rules"]  # filled by the controller
    assert reconcile(existing, wanted) is None
    mine = {"matchLabels": {"example.com/aggregate-to-view": "true"}}
    existing["aggregationRule"]["clusterRoleSelectors"] = [mine]
    got = reconcile(existing, wanted)
    assert got is not None
    assert got["aggregationRule"]["clusterRoleSelectors"] == [mine, {"matchLabels": {AGGREGATE_TO["view"]: "true"}}]
    assert got["rules"] == existing["rules"]


def test_reconcile_removes_an_aggregation_the_bootstrap_role_does_not_have() -> None:
    wanted = ROLES["system:heapster"]
    existing = stored(wanted)
    existing["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]}
    got = reconcile(existing, wanted)
    assert got is not None and "aggregationRule" not in got and got["rules"] == wanted["rules"]


def test_reconcile_binding_adds_missing_subjects_and_keeps_extra_ones() -> None:
    wanted = BINDINGS["system:public-info-viewer"]
    existing = stored(wanted)
    extra = {"apiGroup": RBAC, "kind": "User", "name": "alice"}
    existing["subjects"] = [existing["subjects"][1], extra]
    got = reconcile(existing, wanted)
    assert got is not None
    assert got["subjects"] == [existing["subjects"][0], extra, wanted["subjects"][0]]


def test_reconcile_binding_with_another_role_is_recreated() -> None:
    wanted = BINDINGS["system:basic-user"]
    existing = stored(wanted)
    existing["roleRef"]["name"] = "view"
    assert needs_recreate(existing, wanted)
    assert reconcile(existing, wanted) == wanted
    assert not needs_recreate(stored(wanted), wanted)


def test_coverage_rules() -> None:
    assert breakdown(rule("get list", ["", "apps"], "pods")) == [
        {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]},
        {"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]},
        {"verbs": ["get"], "apiGroups": ["apps"], "resources": ["pods"]},
        {"verbs": ["list"], "apiGroups": ["apps"], "resources": ["pods"]},
    ]
    assert uncovered([rule("*", ["*"], "*")], [rule("get", ["x"], "y", names="z")]) == []
    assert uncovered([rule("get", ["*"], "*/scale")], [rule("get", ["apps"], "deployments/scale")]) == []
    assert uncovered([rule("get", ["*"], "*/scale")], [rule("get", ["apps"], "deployments")]) != []
    assert uncovered([url_rule("get", "/healthz/*")], [url_rule("get", "/healthz/etcd")]) == []
    assert uncovered([url_rule("get", "/healthz")], [url_rule("get", "/healthz/etcd")]) != []
    # a rule limited to names does not cover all names; an unrestricted one covers any name
    assert uncovered([rule("get", [""], "configmaps", names="a")], [rule("get", [""], "configmaps")]) != []
    assert uncovered([rule("get", [""], "configmaps")], [rule("get", [""], "configmaps", names="a")]) == []
    # resource rules never cover URLs, nor the other way round
    assert uncovered([rule("get", ["*"], "*")], [url_rule("get", "/metrics")]) != []
    assert uncovered([url_rule("*", "*")], [rule("get", [""], "pods")]) != []
