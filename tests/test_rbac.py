"""Tests for podlife.api.authz: request attributes, the RBAC authorizer, escalation and bind checks.

Pure: no server. Expected strings are Kubernetes' (RequestInfoFactory, rbac.go, rule.go,
responsewriters/errors.go, escalation_check.go, policy_comparator.go).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podlife.api.authz import (
    Attributes, Decision, RBACAuthorizer, RequestInfoError, StaticRBACSource, binding_allowed, can_bind,
    forbidden, forbidden_error, forbidden_message, request_attributes, role_escalation_error, rule_allows,
)
from podlife.api.authz.escalation import (
    AGGREGATION_RULE_MESSAGE, breakdown_rule, compact_rules, compact_string, confirm_no_escalation, covers,
)
from podlife.api.authz.rbac import aggregate_errors, applies_to_user
from podlife.api.identity import UserInfo

Obj = dict[str, Any]
robust = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=300)

ALICE = UserInfo("alice", groups=("devs", "system:authenticated"))
BOB = UserInfo("bob", groups=("system:authenticated",))
ADMIN = UserInfo("podlife-admin", groups=("system:masters", "system:authenticated"))


def sa_user(namespace: str, name: str) -> UserInfo:
    return UserInfo(f"system:serviceaccount:{namespace}:{name}",
                    groups=("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"))


APP = sa_user("sec", "app")


# -- object builders -------------------------------------------------------------------------------


def rule(verbs: list[str], groups: list[str] | None = None, resources: list[str] | None = None,
         names: list[str] | None = None, urls: list[str] | None = None) -> Obj:
    out: Obj = {"verbs": verbs}
    if groups is not None:
        out["apiGroups"] = groups
    if resources is not None:
        out["resources"] = resources
    if names:
        out["resourceNames"] = names
    if urls:
        out["nonResourceURLs"] = urls
    return out


def cluster_role(name: str, *rules: Obj) -> Obj:
    return {"kind": "ClusterRole", "apiVersion": "rbac.authorization.k8s.io/v1", "metadata": {"name": name},
            "rules": list(rules)}


def role(namespace: str, name: str, *rules: Obj) -> Obj:
    return {"kind": "Role", "apiVersion": "rbac.authorization.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace}, "rules": list(rules)}


def ref(name: str, kind: str = "ClusterRole") -> Obj:
    return {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name}


def crb(name: str, role_name: str, *subjects: Obj) -> Obj:
    return {"kind": "ClusterRoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1", "metadata": {"name": name},
            "roleRef": ref(role_name), "subjects": list(subjects)}


def rb(namespace: str, name: str, role_ref: Obj, *subjects: Obj) -> Obj:
    return {"kind": "RoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace}, "roleRef": role_ref, "subjects": list(subjects)}


def u(name: str) -> Obj:
    return {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": name}


def g(name: str) -> Obj:
    return {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": name}


def sa(name: str, namespace: str | None = None) -> Obj:
    out: Obj = {"kind": "ServiceAccount", "name": name}
    if namespace is not None:
        out["namespace"] = namespace
    return out


def res(verb: str, resource: str, namespace: str = "", name: str = "", group: str = "", sub: str = "",
        user: UserInfo = ALICE) -> Attributes:
    return Attributes(user, verb, True, group, "v1", resource, sub, namespace, name, "/x")


def nonres(verb: str, path: str, user: UserInfo = ALICE) -> Attributes:
    return Attributes(user, verb, False, path=path)


class UnversionedSource:
    """A source without bindings_version: the authorizer scans every call."""

    def __init__(self, inner: StaticRBACSource) -> None:
        self.inner = inner

    def cluster_role(self, name: str) -> Obj | None:
        return self.inner.cluster_role(name)

    def role(self, namespace: str, name: str) -> Obj | None:
        return self.inner.role(namespace, name)

    def cluster_role_bindings(self) -> list[Obj]:
        return list(self.inner.cluster_role_bindings())

    def role_bindings(self, namespace: str) -> list[Obj]:
        return list(self.inner.role_bindings(namespace))


VIEW = cluster_role("view", rule(["get", "list", "watch"], [""], ["pods", "services", "configmaps"]),
                    rule(["get", "list", "watch"], ["apps"], ["deployments", "deployments/scale"]))


# -- request_attributes ------------------------------------------------------------------------------

R = True


@pytest.mark.parametrize("method,path,query,expected", [
    # core, namespaced
    ("GET", "/api/v1/namespaces/default/pods", {}, ("list", R, "", "v1", "pods", "", "default", "")),
    ("GET", "/api/v1/namespaces/default/pods/", {}, ("list", R, "", "v1", "pods", "", "default", "")),
    ("GET", "/api/v1/namespaces/default/pods/web", {}, ("get", R, "", "v1", "pods", "", "default", "web")),
    ("HEAD", "/api/v1/namespaces/default/pods/web", {}, ("get", R, "", "v1", "pods", "", "default", "web")),
    ("POST", "/api/v1/namespaces/default/pods", {}, ("create", R, "", "v1", "pods", "", "default", "")),
    ("PUT", "/api/v1/namespaces/default/pods/web", {}, ("update", R, "", "v1", "pods", "", "default", "web")),
    ("PATCH", "/api/v1/namespaces/default/pods/web", {}, ("patch", R, "", "v1", "pods", "", "default", "web")),
    ("DELETE", "/api/v1/namespaces/default/pods/web", {}, ("delete", R, "", "v1", "pods", "", "default", "web")),
    ("DELETE", "/api/v1/namespaces/default/pods", {}, ("deletecollection", R, "", "v1", "pods", "", "default", "")),
    ("OPTIONS", "/api/v1/namespaces/default/pods", {}, ("", R, "", "v1", "pods", "", "default", "")),
    # subresources
    ("GET", "/api/v1/namespaces/default/pods/web/log", {}, ("get", R, "", "v1", "pods", "log", "default", "web")),
    ("POST", "/api/v1/namespaces/default/pods/web/exec", {}, ("create", R, "", "v1", "pods", "exec", "default", "web")),
    ("PUT", "/api/v1/namespaces/default/pods/web/status", {},
     ("update", R, "", "v1", "pods", "status", "default", "web")),
    ("POST", "/api/v1/namespaces/default/serviceaccounts/app/token", {},
     ("create", R, "", "v1", "serviceaccounts", "token", "default", "app")),
    ("GET", "/api/v1/namespaces/default/pods/web/proxy/some/path", {},
     ("get", R, "", "v1", "pods", "proxy", "default", "web")),
    # groups
    ("GET", "/apis/apps/v1/namespaces/ns/deployments", {}, ("list", R, "apps", "v1", "deployments", "", "ns", "")),
    ("PATCH", "/apis/apps/v1/namespaces/ns/deployments/web/scale", {},
     ("patch", R, "apps", "v1", "deployments", "scale", "ns", "web")),
    ("GET", "/apis/apps/v1/deployments", {}, ("list", R, "apps", "v1", "deployments", "", "", "")),
    ("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", {},
     ("create", R, "authorization.k8s.io", "v1", "selfsubjectaccessreviews", "", "", "")),
    ("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles/view", {},
     ("get", R, "rbac.authorization.k8s.io", "v1", "clusterroles", "", "", "view")),
    # cluster-scoped core
    ("GET", "/api/v1/nodes", {}, ("list", R, "", "v1", "nodes", "", "", "")),
    ("GET", "/api/v1/nodes/n1", {}, ("get", R, "", "v1", "nodes", "", "", "n1")),
    ("PATCH", "/api/v1/nodes/n1/status", {}, ("patch", R, "", "v1", "nodes", "status", "", "n1")),
    ("GET", "/api/v1/pods", {}, ("list", R, "", "v1", "pods", "", "", "")),
    # the namespace object
    ("GET", "/api/v1/namespaces", {}, ("list", R, "", "v1", "namespaces", "", "", "")),
    ("POST", "/api/v1/namespaces", {}, ("create", R, "", "v1", "namespaces", "", "", "")),
    ("GET", "/api/v1/namespaces/team", {}, ("get", R, "", "v1", "namespaces", "", "team", "team")),
    ("DELETE", "/api/v1/namespaces/team", {}, ("delete", R, "", "v1", "namespaces", "", "team", "team")),
    ("GET", "/api/v1/namespaces/team/status", {}, ("get", R, "", "v1", "namespaces", "status", "team", "team")),
    ("PUT", "/api/v1/namespaces/team/finalize", {},
     ("update", R, "", "v1", "namespaces", "finalize", "team", "team")),
    # watch
    ("GET", "/api/v1/namespaces/default/pods", {"watch": "true"}, ("watch", R, "", "v1", "pods", "", "default", "")),
    ("GET", "/api/v1/namespaces/default/pods", {"watch": "True"}, ("watch", R, "", "v1", "pods", "", "default", "")),
    ("GET", "/api/v1/namespaces/default/pods", {"watch": "1"}, ("watch", R, "", "v1", "pods", "", "default", "")),
    ("GET", "/api/v1/namespaces/default/pods", {"watch": "false"}, ("list", R, "", "v1", "pods", "", "default", "")),
    ("GET", "/api/v1/namespaces/default/pods", {"watch": "0"}, ("list", R, "", "v1", "pods", "", "default", "")),
    # ParseBool, as podlife's handler reads it: "f" is false (Kubernetes' own decoder would say watch)
    ("GET", "/api/v1/namespaces/default/pods", {"watch": "f"}, ("list", R, "", "v1", "pods", "", "default", "")),
    # values ParseBool refuses (the handler answers 400): Kubernetes' rule
    ("GET", "/api/v1/namespaces/default/pods", {"watch": "yes"}, ("watch", R, "", "v1", "pods", "", "default", "")),
    ("GET", "/api/v1/namespaces/default/pods", {"watch": "fAlSe"}, ("list", R, "", "v1", "pods", "", "default", "")),
    ("GET", "/api/v1/namespaces/default/pods/web", {"watch": "true"}, ("get", R, "", "v1", "pods", "", "default", "web")),
    ("GET", "/api/v1/watch/namespaces/default/pods", {}, ("watch", R, "", "v1", "pods", "", "default", "")),
    ("GET", "/api/v1/watch/namespaces/default/pods/web", {}, ("watch", R, "", "v1", "pods", "", "default", "web")),
    ("GET", "/api/v1/watch/pods", {}, ("watch", R, "", "v1", "pods", "", "", "")),
    ("GET", "/apis/apps/v1/watch/namespaces/ns/deployments", {},
     ("watch", R, "apps", "v1", "deployments", "", "ns", "")),
    ("GET", "/api/v1/watch/namespaces/team", {}, ("watch", R, "", "v1", "namespaces", "", "team", "team")),
    # the legacy proxy verb takes no subresource
    ("GET", "/api/v1/proxy/namespaces/default/pods/web/extra", {}, ("proxy", R, "", "v1", "pods", "", "default", "web")),
    # a fieldSelector on metadata.name names the object of a list or watch
    ("GET", "/api/v1/namespaces/default/pods", {"fieldSelector": "metadata.name=web"},
     ("list", R, "", "v1", "pods", "", "default", "web")),
    ("GET", "/api/v1/namespaces/default/pods", {"fieldSelector": "metadata.name==web,status.phase=Running", "watch": "1"},
     ("watch", R, "", "v1", "pods", "", "default", "web")),
    ("GET", "/api/v1/namespaces/default/pods", {"fieldSelector": "metadata.name!=web"},
     ("list", R, "", "v1", "pods", "", "default", "")),
    ("GET", "/api/v1/namespaces/default/pods", {"fieldSelector": "metadata.name=web", "limit": "ten"},
     ("list", R, "", "v1", "pods", "", "default", "")),
    ("GET", "/api/v1/namespaces/default/pods", {"fieldSelector": "metadata.name=web", "labelSelector": "a in (b"},
     ("list", R, "", "v1", "pods", "", "default", "")),
    ("GET", "/api/v1/namespaces/default/pods", {"fieldSelector": "metadata.name=web", "limit": "500",
                                                "labelSelector": "app=web", "timeoutSeconds": "30"},
     ("list", R, "", "v1", "pods", "", "default", "web")),
    ("GET", "/api/v1/namespaces/default/pods", {"fieldSelector": "metadata.name=.."},
     ("list", R, "", "v1", "pods", "", "default", "")),
    ("GET", "/api/v1/namespaces/default/pods", {"fieldSelector": "metadata.name"},
     ("list", R, "", "v1", "pods", "", "default", "")),
    ("DELETE", "/api/v1/namespaces/default/pods", {"fieldSelector": "metadata.name=web"},
     ("deletecollection", R, "", "v1", "pods", "", "default", "")),
])
def test_resource_requests(method: str, path: str, query: dict[str, str], expected: tuple[Any, ...]) -> None:
    a = request_attributes(method, path, query, ALICE)
    assert (a.verb, a.resource_request, a.api_group, a.api_version, a.resource, a.subresource, a.namespace,
            a.name) == expected
    assert a.path == path and a.user is ALICE


@pytest.mark.parametrize("method,path", [
    ("GET", "/version"), ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/livez/ping"), ("GET", "/api"),
    ("GET", "/api/v1"), ("GET", "/api/v1/"), ("GET", "/apis"), ("GET", "/apis/apps"), ("GET", "/apis/apps/v1"),
    ("GET", "/openapi/v2"), ("GET", "/openapi/v3"), ("GET", "/openapi/v3/apis/apps/v1"), ("GET", "/metrics"),
    ("GET", "/"), ("POST", "/logs"), ("PUT", "/custom/thing/here"), ("DELETE", "/apiz/v1/pods"),
])
def test_non_resource_requests(method: str, path: str) -> None:
    assert request_attributes(method, path, {}, BOB) == Attributes(BOB, method.lower(), False, path=path)


def test_a_special_verb_without_a_resource_cannot_be_read() -> None:
    with pytest.raises(RequestInfoError, match=r"^unable to determine kind and namespace from url, /api/v1/watch$"):
        request_attributes("GET", "/api/v1/watch", {}, ALICE)
    with pytest.raises(RequestInfoError, match=r"url, /apis/apps/v1/proxy\?x=1$"):
        request_attributes("GET", "/apis/apps/v1/proxy", {"x": "1"}, ALICE)


# -- rule matching -------------------------------------------------------------------------------------


@pytest.mark.parametrize("the_rule,attrs,allowed", [
    (rule(["get"], [""], ["pods"]), res("get", "pods", "ns"), True),
    (rule(["get"], [""], ["pods"]), res("list", "pods", "ns"), False),
    (rule(["*"], [""], ["pods"]), res("deletecollection", "pods", "ns"), True),
    (rule(["get"], ["*"], ["deployments"]), res("get", "deployments", group="apps"), True),
    (rule(["get"], [""], ["deployments"]), res("get", "deployments", group="apps"), False),
    (rule(["get"], ["apps"], ["*"]), res("get", "anything", group="apps"), True),
    (rule(["get"], ["apps"], ["*"]), res("get", "deployments", group="apps", sub="scale"), True),
    # subresources: exact, */sub; the bare resource does not cover its subresources
    (rule(["get"], [""], ["pods/log"]), res("get", "pods", "ns", "web", sub="log"), True),
    (rule(["get"], [""], ["pods"]), res("get", "pods", "ns", "web", sub="log"), False),
    (rule(["get"], [""], ["pods/log"]), res("get", "pods", "ns", "web"), False),
    (rule(["get"], [""], ["*/log"]), res("get", "pods", "ns", "web", sub="log"), True),
    (rule(["get"], [""], ["*/log"]), res("get", "pods", "ns", "web", sub="logs"), False),
    (rule(["get"], [""], ["*/log"]), res("get", "log", "ns"), False),
    (rule(["update"], ["*"], ["*/status"]), res("update", "deployments", "ns", "d", group="apps", sub="status"), True),
    # Kubernetes has no <resource>/* wildcard: "pods/*" is a literal
    (rule(["get"], [""], ["pods/*"]), res("get", "pods", "ns", "web", sub="log"), False),
    (rule(["get"], [""], ["pods/*"]), res("get", "pods", "ns", "web"), False),
    # resourceNames
    (rule(["get"], [""], ["secrets"], names=["a"]), res("get", "secrets", "ns", "a"), True),
    (rule(["get"], [""], ["secrets"], names=["a"]), res("get", "secrets", "ns", "b"), False),
    (rule(["list"], [""], ["secrets"], names=["a"]), res("list", "secrets", "ns"), False),
    (rule(["watch"], [""], ["secrets"], names=["a"]), res("watch", "secrets", "ns", "a"), True),
    (rule(["create"], [""], ["secrets"], names=["a"]), res("create", "secrets", "ns"), False),
    (rule(["*"], ["*"], ["*"], names=["a"]), res("deletecollection", "secrets", "ns"), False),
    (rule(["get"], [""], ["pods/log"], names=["web"]), res("get", "pods", "ns", "web", sub="log"), True),
    # non-resource URLs
    (rule(["get"], urls=["/healthz"]), nonres("get", "/healthz"), True),
    (rule(["get"], urls=["/healthz"]), nonres("get", "/healthz/ready"), False),
    (rule(["get"], urls=["/healthz"]), nonres("post", "/healthz"), False),
    (rule(["get"], urls=["/healthz/*"]), nonres("get", "/healthz/ready"), True),
    (rule(["get"], urls=["/healthz/*"]), nonres("get", "/healthz"), False),
    (rule(["get"], urls=["/healthz*"]), nonres("get", "/healthzfoo"), True),
    (rule(["get"], urls=["/logs**"]), nonres("get", "/logs/kubelet"), True),
    (rule(["*"], urls=["*"]), nonres("delete", "/anything"), True),
    # the two kinds of rule never cross
    (rule(["*"], ["*"], ["*"]), nonres("get", "/healthz"), False),
    (rule(["*"], urls=["*"]), res("get", "pods", "ns"), False),
    # empty lists match nothing
    (rule([], ["*"], ["*"]), res("get", "pods", "ns"), False),
    (rule(["*"], [], ["*"]), res("get", "pods", "ns"), False),
    (rule(["*"], ["*"], []), res("get", "pods", "ns"), False),
])
def test_rule_allows(the_rule: Obj, attrs: Attributes, allowed: bool) -> None:
    assert rule_allows(attrs, the_rule) is allowed


# -- subjects ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("user,subject,namespace,applies", [
    (ALICE, u("alice"), "", True),
    (ALICE, u("Alice"), "", False),
    (ALICE, g("devs"), "", True),
    (ALICE, g("ops"), "ns", False),
    (ALICE, {"kind": "user", "name": "alice"}, "", False),
    (APP, sa("app", "sec"), "", True),
    (APP, sa("app", "sec"), "other", True),
    (APP, sa("app"), "", False),           # a ClusterRoleBinding's subject must name the namespace
    (APP, sa("app"), "sec", True),         # a RoleBinding's defaults to the binding's
    (APP, sa("app"), "other", False),
    (APP, sa("app", "other"), "sec", False),
    (APP, sa("ap"), "sec", False),
    (APP, u("system:serviceaccount:sec:app"), "", True),
    (APP, g("system:serviceaccounts:sec"), "", True),
    (UserInfo("system:serviceaccount:sec:app:x"), sa("app", "sec"), "", False),
])
def test_subjects(user: UserInfo, subject: Obj, namespace: str, applies: bool) -> None:
    assert applies_to_user(user, subject, namespace) is applies


# -- authorize ---------------------------------------------------------------------------------------------


def authorizer(*objects: Obj, versioned: bool = True) -> RBACAuthorizer:
    source = StaticRBACSource(objects)
    return RBACAuthorizer(source if versioned else UnversionedSource(source))


@pytest.fixture(params=[True, False], ids=["indexed", "scanned"])
def versioned(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def test_masters_are_always_allowed_without_a_reason(versioned: bool) -> None:
    a = authorizer(versioned=versioned)
    assert a.authorize(res("delete", "nodes", name="n1", user=ADMIN)) == Decision(True, "")
    assert a.authorize(nonres("get", "/metrics", ADMIN)) == Decision(True, "")
    assert a.authorize(res("get", "pods", "ns")) == Decision(False, "")


def test_cluster_role_binding_reasons(versioned: bool) -> None:
    a = authorizer(VIEW, crb("readers", "view", u("carol"), g("devs"), u("alice")),
                   crb("sa-readers", "view", sa("app", "sec")), versioned=versioned)
    assert a.authorize(res("list", "pods", "any")) == Decision(
        True, 'RBAC: allowed by ClusterRoleBinding "readers" of ClusterRole "view" to Group "devs"')
    assert a.authorize(res("get", "pods", user=APP)) == Decision(
        True, 'RBAC: allowed by ClusterRoleBinding "sa-readers" of ClusterRole "view" to ServiceAccount "app/sec"')
    assert a.authorize(res("get", "deployments", "ns", "web", group="apps", sub="scale")).allowed
    assert a.authorize(res("delete", "pods", "ns", "web")) == Decision(False, "")
    assert a.authorize(res("get", "pods", "ns", user=BOB)) == Decision(False, "")


def test_role_binding_to_a_cluster_role_applies_in_its_namespace_only(versioned: bool) -> None:
    a = authorizer(VIEW, rb("sec", "app-view", ref("view"), sa("app")), versioned=versioned)
    assert a.authorize(res("list", "pods", "sec", user=APP)) == Decision(
        True, 'RBAC: allowed by RoleBinding "app-view/sec" of ClusterRole "view" to ServiceAccount "app/sec"')
    assert not a.authorize(res("list", "pods", "kube-system", user=APP)).allowed
    assert not a.authorize(res("list", "pods", user=APP)).allowed  # all namespaces: cluster scope


def test_role_binding_to_a_role(versioned: bool) -> None:
    a = authorizer(role("ns", "editor", rule(["*"], [""], ["configmaps"])),
                   role("other", "editor", rule(["*"], [""], ["secrets"])),
                   rb("ns", "alice-edits", ref("editor", "Role"), u("alice")), versioned=versioned)
    assert a.authorize(res("delete", "configmaps", "ns", "c")) == Decision(
        True, 'RBAC: allowed by RoleBinding "alice-edits/ns" of Role "editor" to User "alice"')
    assert not a.authorize(res("get", "secrets", "ns", "s")).allowed
    assert not a.authorize(res("get", "configmaps", "other", "c")).allowed


def test_the_namespace_object_is_in_its_own_namespace(versioned: bool) -> None:
    a = authorizer(cluster_role("ns-reader", rule(["get"], [""], ["namespaces"])),
                   rb("team", "read-ns", ref("ns-reader"), u("alice")), versioned=versioned)
    assert a.authorize(request_attributes("GET", "/api/v1/namespaces/team", {}, ALICE)).allowed
    assert not a.authorize(request_attributes("GET", "/api/v1/namespaces/other", {}, ALICE)).allowed
    assert not a.authorize(request_attributes("GET", "/api/v1/namespaces", {}, ALICE)).allowed


def test_the_first_allowing_rule_names_the_binding_and_its_first_matching_subject(versioned: bool) -> None:
    a = authorizer(cluster_role("pods", rule(["get"], [""], ["pods"])), cluster_role("all", rule(["*"], ["*"], ["*"])),
                   crb("a-pods", "pods", g("system:authenticated"), u("alice")),
                   crb("b-all", "all", u("alice"), g("devs")), versioned=versioned)
    assert a.authorize(res("get", "pods", "ns")).reason == \
        'RBAC: allowed by ClusterRoleBinding "a-pods" of ClusterRole "pods" to Group "system:authenticated"'
    assert a.authorize(res("list", "pods", "ns")).reason == \
        'RBAC: allowed by ClusterRoleBinding "b-all" of ClusterRole "all" to User "alice"'


def test_cluster_bindings_come_before_role_bindings(versioned: bool) -> None:
    a = authorizer(VIEW, rb("ns", "local", ref("view"), u("alice")), crb("global", "view", u("alice")),
                   versioned=versioned)
    assert a.authorize(res("get", "pods", "ns")).reason.startswith('RBAC: allowed by ClusterRoleBinding "global"')


def test_non_resource_urls(versioned: bool) -> None:
    a = authorizer(cluster_role("health", rule(["get"], urls=["/healthz", "/livez*", "/version/"])),
                   crb("health", "health", g("system:authenticated")), versioned=versioned)
    assert a.authorize(request_attributes("GET", "/healthz", {}, BOB)) == Decision(
        True, 'RBAC: allowed by ClusterRoleBinding "health" of ClusterRole "health" to Group "system:authenticated"')
    assert a.authorize(request_attributes("GET", "/livez/ping", {}, BOB)).allowed
    assert not a.authorize(request_attributes("GET", "/version", {}, BOB)).allowed
    assert not a.authorize(request_attributes("POST", "/healthz", {}, BOB)).allowed
    assert not a.authorize(request_attributes("GET", "/metrics", {}, BOB)).allowed


def test_a_missing_role_is_a_reason_to_deny_and_does_not_stop_the_search(versioned: bool) -> None:
    a = authorizer(VIEW, crb("gone", "gone", u("alice")), rb("ns", "gone-role", ref("nope", "Role"), u("alice")),
                   rb("ns", "gone-too", ref("gone"), g("devs")), rb("ns", "odd", ref("x", "Thing"), u("alice")),
                   versioned=versioned)
    assert a.authorize(res("get", "pods", "ns")) == Decision(False, (
        'RBAC: [clusterrole.rbac.authorization.k8s.io "gone" not found, role.rbac.authorization.k8s.io "nope" not '
        'found, unsupported role reference kind: "Thing"]'))
    assert a.authorize(res("get", "pods")) == Decision(False, 'RBAC: clusterrole.rbac.authorization.k8s.io "gone" not found')
    source = a.source.inner if isinstance(a.source, UnversionedSource) else a.source
    assert isinstance(source, StaticRBACSource)
    source.put(crb("view-too", "view", u("alice")))
    assert a.authorize(res("get", "pods", "ns")).allowed


def test_the_index_follows_binding_changes() -> None:
    source = StaticRBACSource([VIEW])
    a = RBACAuthorizer(source)
    assert not a.authorize(res("get", "pods", "ns")).allowed
    source.put(rb("ns", "late", ref("view"), u("alice")))
    assert a.authorize(res("get", "pods", "ns")).allowed
    source.put(crb("later", "view", g("devs")))
    assert a.authorize(res("get", "pods")).allowed
    source.delete("ClusterRoleBinding", "", "later")
    source.delete("RoleBinding", "ns", "late")
    assert not a.authorize(res("get", "pods", "ns")).allowed
    source.put(cluster_role("view", rule(["*"], ["*"], ["*"])))  # roles are read on each request
    source.put(rb("ns", "late", ref("view"), u("alice")))
    assert a.authorize(res("delete", "secrets", "ns", "s")).allowed


def test_requests_for_namespaces_without_bindings_are_not_indexed() -> None:
    a = authorizer(VIEW, rb("ns", "v", ref("view"), u("alice")))
    for n in range(50):
        assert not a.authorize(res("get", "pods", f"random-{n}")).allowed
    assert a.authorize(res("get", "pods", "ns")).allowed
    assert list(a._namespace_index) == ["ns"]


def test_aggregate_errors() -> None:
    assert aggregate_errors([]) == ""
    assert aggregate_errors(["a"]) == "a"
    assert aggregate_errors(["a", "a"]) == "a"
    assert aggregate_errors(["a", "b", "a"]) == "[a, b]"


# -- forbidden messages ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("attrs,reason,message", [
    (res("list", "secrets", "kube-system", user=APP), "",
     'secrets is forbidden: User "system:serviceaccount:sec:app" cannot list resource "secrets" in API group "" in the '
     'namespace "kube-system"'),
    (res("list", "nodes"), "",
     'nodes is forbidden: User "alice" cannot list resource "nodes" in API group "" at the cluster scope'),
    (res("get", "secrets", "default", "hidden"), "",
     'secrets "hidden" is forbidden: User "alice" cannot get resource "secrets" in API group "" in the namespace "default"'),
    (res("create", "pods", "default", "web", sub="exec"), "",
     'pods "web" is forbidden: User "alice" cannot create resource "pods/exec" in API group "" in the namespace "default"'),
    (res("patch", "deployments", "ns", "web", group="apps", sub="scale"), "",
     'deployments.apps "web" is forbidden: User "alice" cannot patch resource "deployments/scale" in API group "apps" in '
     'the namespace "ns"'),
    (res("get", "namespaces", "team", "team"), "",
     'namespaces "team" is forbidden: User "alice" cannot get resource "namespaces" in API group "" in the namespace '
     '"team"'),
    (nonres("get", "/metrics"), "", 'forbidden: User "alice" cannot get path "/metrics"'),
    (res("list", "pods", "ns"), 'RBAC: clusterrole.rbac.authorization.k8s.io "gone" not found',
     'pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "ns": RBAC: '
     'clusterrole.rbac.authorization.k8s.io "gone" not found'),
    (nonres("get", "/a<b>&c", UserInfo('x"y')), "<why>",
     'forbidden: User "x\\"y" cannot get path "/a&lt;b&gt;&amp;c": <why>'),
])
def test_forbidden_message(attrs: Attributes, reason: str, message: str) -> None:
    assert forbidden_message(attrs, reason) == message


def test_forbidden_error_is_kubernetes_status() -> None:
    status = forbidden_error(res("get", "deployments", "ns", "web", group="apps")).status()
    assert status == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'deployments.apps "web" is forbidden: User "alice" cannot get resource "deployments" in API group '
                   '"apps" in the namespace "ns"',
        "reason": "Forbidden", "details": {"name": "web", "group": "apps", "kind": "deployments"}, "code": 403}
    assert forbidden_error(res("list", "pods", "ns")).status()["details"] == {"kind": "pods"}
    assert forbidden_error(nonres("get", "/metrics")).status()["details"] == {}


# -- rules_for ----------------------------------------------------------------------------------------------------


def test_rules_for_lists_the_bound_rules() -> None:
    basic = cluster_role("system:basic-user", rule(["create"], ["authorization.k8s.io"], ["selfsubjectaccessreviews",
                                                                                          "selfsubjectrulesreviews"]))
    discovery = cluster_role("system:discovery", rule(["get"], urls=["/api", "/api/*", "/healthz"]))
    a = authorizer(basic, discovery, VIEW, role("sec", "secret-reader", rule(["get"], [""], ["secrets"], names=["db"])),
                   crb("system:basic-user", "system:basic-user", g("system:authenticated")),
                   crb("system:discovery", "system:discovery", g("system:authenticated")),
                   rb("sec", "view", ref("view"), sa("app")), rb("sec", "db", ref("secret-reader", "Role"), sa("app")),
                   rb("other", "view", ref("view"), sa("app")))
    review = a.rules_for(APP, "sec")
    assert review.as_status() == {
        "resourceRules": [
            {"verbs": ["create"], "apiGroups": ["authorization.k8s.io"],
             "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]},
            {"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["pods", "services", "configmaps"]},
            {"verbs": ["get", "list", "watch"], "apiGroups": ["apps"], "resources": ["deployments", "deployments/scale"]},
            {"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["db"]},
        ],
        "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/api", "/api/*", "/healthz"]}],
        "incomplete": False,
    }
    assert len(a.rules_for(APP, "").resource_rules) == 1
    assert a.rules_for(BOB, "sec").resource_rules == [
        {"verbs": ["create"], "apiGroups": ["authorization.k8s.io"],
         "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]}]


def test_rules_for_masters_are_what_their_bindings_grant() -> None:
    assert authorizer().rules_for(ADMIN, "default").as_status() == {
        "resourceRules": [], "nonResourceRules": [], "incomplete": False}
    admin = cluster_role("cluster-admin", rule(["*"], ["*"], ["*"]), rule(["*"], urls=["*"]))
    a = authorizer(admin, crb("cluster-admin", "cluster-admin", g("system:masters")))
    assert a.rules_for(ADMIN, "default").as_status() == {
        "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
        "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}], "incomplete": False}


def test_rules_for_reports_what_it_could_not_read() -> None:
    a = authorizer(VIEW, crb("gone", "gone", u("alice")), rb("ns", "v", ref("view"), u("alice")))
    review = a.rules_for(ALICE, "ns")
    assert len(review.resource_rules) == 2 and not review.incomplete
    assert review.as_status()["evaluationError"] == 'clusterrole.rbac.authorization.k8s.io "gone" not found'


# -- escalation ------------------------------------------------------------------------------------------------------

PODS_READER = cluster_role("pods-reader", rule(["get", "list"], [""], ["pods"]))


def test_a_role_may_grant_what_its_writer_holds() -> None:
    a = authorizer(PODS_READER, rb("ns", "r", ref("pods-reader"), u("alice")))
    assert role_escalation_error(a, ALICE, "ns", [rule(["get"], [""], ["pods"])]) is None
    assert role_escalation_error(a, ALICE, "ns", [rule(["get", "list"], [""], ["pods"], names=["web"])]) is None
    assert role_escalation_error(a, ALICE, "ns", []) is None


def test_a_role_may_not_grant_more() -> None:
    a = authorizer(PODS_READER, rb("ns", "r", ref("pods-reader"), u("alice")))
    assert role_escalation_error(a, ALICE, "ns", [rule(["get", "delete", "patch"], [""], ["pods", "secrets"])]) == (
        'user "alice" (groups=["devs" "system:authenticated"]) is attempting to grant RBAC permissions not currently '
        'held:\n'
        '{APIGroups:[""], Resources:["pods"], Verbs:["delete" "patch"]}\n'
        '{APIGroups:[""], Resources:["secrets"], Verbs:["get" "delete" "patch"]}')
    # in another namespace, or cluster-wide (a ClusterRole), the RoleBinding's rules do not count
    assert role_escalation_error(a, ALICE, "other", [rule(["get"], [""], ["pods"])]) is not None
    assert role_escalation_error(a, ALICE, "", [rule(["get"], [""], ["pods"])]) == (
        'user "alice" (groups=["devs" "system:authenticated"]) is attempting to grant RBAC permissions not currently '
        'held:\n{APIGroups:[""], Resources:["pods"], Verbs:["get"]}')


def test_escalation_messages_name_urls_and_resource_names() -> None:
    a = authorizer()
    assert role_escalation_error(a, UserInfo("x"), "", [
        rule(["get"], urls=["/metrics", "/logs/*"]),
        rule(["get", "update"], ["apps"], ["deployments"], names=["a", "b"]),
    ]) == ('user "x" (groups=[]) is attempting to grant RBAC permissions not currently held:\n'
           '{APIGroups:["apps"], Resources:["deployments"], ResourceNames:["a"], Verbs:["get" "update"]}\n'
           '{APIGroups:["apps"], Resources:["deployments"], ResourceNames:["b"], Verbs:["get" "update"]}\n'
           '{NonResourceURLs:["/logs/*"], Verbs:["get"]}\n'
           '{NonResourceURLs:["/metrics"], Verbs:["get"]}')


def test_escalation_message_with_resolution_errors() -> None:
    a = authorizer(crb("gone", "gone", u("alice")))
    assert role_escalation_error(a, ALICE, "", [rule(["get"], [""], ["pods"])]) == (
        'user "alice" (groups=["devs" "system:authenticated"]) is attempting to grant RBAC permissions not currently '
        'held:\n{APIGroups:[""], Resources:["pods"], Verbs:["get"]}; resolution errors: '
        '[clusterrole.rbac.authorization.k8s.io "gone" not found]')


def test_masters_and_the_escalate_verb_may_grant_anything() -> None:
    everything = [rule(["*"], ["*"], ["*"]), rule(["*"], urls=["*"])]
    assert role_escalation_error(authorizer(), ADMIN, "", everything) is None
    escalate_roles = cluster_role("escalate", rule(["escalate"], ["rbac.authorization.k8s.io"], ["roles"]))
    a = authorizer(escalate_roles, rb("ns", "e", ref("escalate"), u("alice")))
    assert role_escalation_error(a, ALICE, "ns", everything) is None
    assert role_escalation_error(a, ALICE, "", everything) is not None  # clusterroles: not granted
    named = cluster_role("escalate-one", rule(["escalate"], ["rbac.authorization.k8s.io"], ["clusterroles"], names=["x"]))
    a = authorizer(named, crb("e", "escalate-one", u("alice")))
    assert role_escalation_error(a, ALICE, "", everything, name="x") is None
    assert role_escalation_error(a, ALICE, "", everything) is not None  # a create has no name


def test_an_aggregation_rule_needs_cluster_admin() -> None:
    a = authorizer(PODS_READER, crb("r", "pods-reader", u("alice")))
    assert role_escalation_error(a, ALICE, "", [rule(["get"], [""], ["pods"])], aggregation_rule=True) == \
        AGGREGATION_RULE_MESSAGE
    admin = cluster_role("cluster-admin", rule(["*"], ["*"], ["*"]), rule(["*"], urls=["*"]))
    a = authorizer(admin, crb("admins", "cluster-admin", u("alice")))
    assert role_escalation_error(a, ALICE, "", [], aggregation_rule=True) is None


@pytest.mark.parametrize("owner,servant,covered", [
    ([rule(["*"], ["*"], ["*"])], [rule(["get"], ["apps"], ["deployments/scale"], names=["a"])], True),
    ([rule(["get"], ["apps"], ["*/scale"])], [rule(["get"], ["apps"], ["deployments/scale"])], True),
    ([rule(["get"], ["apps"], ["deployments"])], [rule(["get"], ["apps"], ["deployments/scale"])], False),
    ([rule(["get"], [""], ["pods"], names=["a"])], [rule(["get"], [""], ["pods"])], False),
    ([rule(["get"], [""], ["pods"], names=["a", "b"])], [rule(["get"], [""], ["pods"], names=["b"])], True),
    ([rule(["get"], [""], ["pods"])], [rule(["get"], [""], ["pods"], names=["b"])], True),
    ([rule(["get", "list"], [""], ["pods"]), rule(["watch"], [""], ["pods"])], [rule(["get", "watch"], [""], ["pods"])],
     True),
    ([rule(["get"], urls=["/logs/*"])], [rule(["get"], urls=["/logs/kubelet"])], True),
    ([rule(["get"], urls=["/logs/*"])], [rule(["get"], urls=["/logs*"])], False),
    ([rule(["*"], urls=["*"])], [rule(["get"], [""], ["pods"])], False),
    ([rule(["*"], ["*"], ["*"])], [rule(["get"], urls=["/healthz"])], False),
    ([], [rule(["get"], [], ["pods"])], True),  # no group: nothing is granted
    ([rule(["get"], names=["a"], urls=["/x"])], [rule(["get"], urls=["/x"])], False),  # Kubernetes' quirk
])
def test_covers(owner: list[Obj], servant: list[Obj], covered: bool) -> None:
    assert covers(owner, servant)[0] is covered


def test_breakdown_and_compact() -> None:
    atoms = breakdown_rule(rule(["get", "list"], ["", "apps"], ["pods"], urls=["/x"]))
    assert atoms == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
        {"apiGroups": ["apps"], "resources": ["pods"], "verbs": ["get"]},
        {"apiGroups": ["apps"], "resources": ["pods"], "verbs": ["list"]},
        {"nonResourceURLs": ["/x"], "verbs": ["get"]},
        {"nonResourceURLs": ["/x"], "verbs": ["list"]},
    ]
    assert sorted(map(compact_string, compact_rules(atoms))) == [
        '{APIGroups:[""], Resources:["pods"], Verbs:["get" "list"]}',
        '{APIGroups:["apps"], Resources:["pods"], Verbs:["get" "list"]}',
        '{NonResourceURLs:["/x"], Verbs:["get"]}',
        '{NonResourceURLs:["/x"], Verbs:["list"]}',
    ]


# -- bind ------------------------------------------------------------------------------------------------------------

ADMIN_ROLE = cluster_role("admin", rule(["*"], ["", "apps"], ["*"]))


def test_binding_a_role_whose_rules_the_writer_holds() -> None:
    a = authorizer(ADMIN_ROLE, PODS_READER, rb("ns", "alice-admin", ref("admin"), u("alice")))
    binding = rb("ns", "bob-reads", ref("pods-reader"), u("bob"))
    assert binding_allowed(a, ALICE, binding, PODS_READER["rules"]) is None
    assert binding_allowed(a, ALICE, rb("other", "bob-reads", ref("pods-reader"), u("bob")), PODS_READER["rules"]) == (
        'user "alice" (groups=["devs" "system:authenticated"]) is attempting to grant RBAC permissions not currently '
        'held:\n{APIGroups:[""], Resources:["pods"], Verbs:["get" "list"]}')
    cluster_binding = crb("bob-reads", "pods-reader", u("bob"))
    assert binding_allowed(a, ALICE, cluster_binding, PODS_READER["rules"]) is not None


def test_the_bind_verb_allows_binding_without_holding() -> None:
    binder = cluster_role("bind-view", rule(["bind"], ["rbac.authorization.k8s.io"], ["clusterroles"], names=["view"]))
    a = authorizer(binder, VIEW, rb("ns", "alice-binds", ref("bind-view"), u("alice")))
    binding = rb("ns", "bob-views", ref("view"), u("bob"))
    assert can_bind(a, ALICE, binding)
    assert binding_allowed(a, ALICE, binding, VIEW["rules"]) is None
    assert binding_allowed(a, ALICE, rb("other", "bob-views", ref("view"), u("bob")), VIEW["rules"]) is not None
    assert not can_bind(a, ALICE, rb("ns", "bob-admin", ref("admin"), u("bob")))
    assert not can_bind(a, ALICE, crb("bob-views", "view", u("bob")))  # cluster-wide needs a cluster grant
    a = authorizer(binder, VIEW, crb("alice-binds", "bind-view", u("alice")))
    assert can_bind(a, ALICE, crb("bob-views", "view", u("bob")))
    assert can_bind(a, ALICE, rb("any", "bob-views", ref("view"), u("bob")))
    assert not can_bind(a, ALICE, rb("any", "bob-views", ref("view", "Role"), u("bob")))
    assert not can_bind(a, ALICE, rb("any", "odd", ref("view", "Thing"), u("bob")))
    assert can_bind(authorizer(), ADMIN, crb("anything", "cluster-admin", u("bob")))


def test_bind_checks_the_request_namespace_when_given() -> None:
    binder = cluster_role("bind", rule(["bind"], ["rbac.authorization.k8s.io"], ["roles"]))
    a = authorizer(binder, rb("ns", "b", ref("bind"), u("alice")))
    unplaced = rb("", "x", ref("r", "Role"), u("bob"))
    assert not can_bind(a, ALICE, unplaced)
    assert can_bind(a, ALICE, unplaced, namespace="ns")


def test_forbidden_for_rbac_writes() -> None:
    error = forbidden("rolebindings", "bob-reads", "user \"alice\" (groups=[]) is attempting to grant RBAC permissions "
                                                   "not currently held:\n{APIGroups:[\"\"], Resources:[\"pods\"], "
                                                   "Verbs:[\"get\"]}")
    assert error.code == 403 and error.reason == "Forbidden"
    assert error.message.startswith('rolebindings.rbac.authorization.k8s.io "bob-reads" is forbidden: user "alice"')
    assert error.details == {"name": "bob-reads", "group": "rbac.authorization.k8s.io", "kind": "rolebindings"}
    assert forbidden("clusterroles", "", "m").message == "clusterroles.rbac.authorization.k8s.io is forbidden: m"


# -- properties --------------------------------------------------------------------------------------------------------

VERBS = ["get", "list", "watch", "create", "delete", "patch"]
GROUPS = ["", "apps", "batch"]
RESOURCES = ["pods", "deployments", "secrets"]
SUBRESOURCES = ["", "log", "status", "scale"]
NAMES = ["", "a", "b"]
NAMESPACES = ["", "ns1", "ns2"]
PATHS = ["/healthz", "/healthz/ready", "/metrics", "/logs/x", "/", "/logsy"]

rules_st = st.builds(
    lambda verbs, groups, resources, names, urls: {k: v for k, v in {
        "verbs": verbs, "apiGroups": groups, "resources": resources, "resourceNames": names, "nonResourceURLs": urls,
    }.items() if v},
    st.lists(st.sampled_from([*VERBS, "*"]), min_size=1, max_size=3, unique=True),
    st.lists(st.sampled_from(["", "apps", "*"]), max_size=2, unique=True),
    st.lists(st.sampled_from(["pods", "deployments", "secrets", "pods/log", "*/status", "*/scale", "pods/*", "*"]),
             max_size=3, unique=True),
    st.lists(st.sampled_from(["a", "b"]), max_size=2, unique=True),
    st.lists(st.sampled_from(["/healthz", "/healthz/*", "/logs*", "*", "/metrics"]), max_size=2, unique=True),
)
resource_attrs_st = st.builds(
    lambda verb, group, resource, sub, name, ns: Attributes(ALICE, verb, True, group, "v1", resource, sub, ns, name),
    st.sampled_from(VERBS), st.sampled_from(GROUPS), st.sampled_from(RESOURCES), st.sampled_from(SUBRESOURCES),
    st.sampled_from(NAMES), st.sampled_from(NAMESPACES))
non_resource_attrs_st = st.builds(lambda verb, path: Attributes(ALICE, verb, False, path=path),
                                  st.sampled_from(["get", "post", "put"]), st.sampled_from(PATHS))
attrs_st = st.one_of(resource_attrs_st, non_resource_attrs_st)


def spec_allows(the_rule: Obj, a: Attributes) -> bool:
    """RBAC's rule semantics, stated independently of the implementation (set algebra)."""
    if not ({"*", a.verb} & set(the_rule.get("verbs", []))):
        return False
    if not a.resource_request:
        urls = the_rule.get("nonResourceURLs", [])
        prefixes = [x[:-1].rstrip("*") for x in urls if x.endswith("*")]
        return a.path in urls or any(a.path.startswith(p) for p in prefixes)
    accepted = {"*", a.resource + ("/" + a.subresource if a.subresource else "")}
    if a.subresource:
        accepted.add("*/" + a.subresource)
    names = the_rule.get("resourceNames", [])
    return (bool({"*", a.api_group} & set(the_rule.get("apiGroups", [])))
            and bool(accepted & set(the_rule.get("resources", [])))
            and (not names or a.name in names))


@robust
@given(st.lists(rules_st, max_size=4), attrs_st, st.booleans())
def test_a_bound_user_is_allowed_exactly_what_the_rules_match(rules: list[Obj], attrs: Attributes, indexed: bool) -> None:
    expected = any(spec_allows(r, attrs) for r in rules)
    # through a ClusterRoleBinding: everywhere
    a = authorizer(cluster_role("r", *rules), crb("b", "r", g("devs")), crb("other", "r", u("bob")), versioned=indexed)
    decision = a.authorize(attrs)
    assert decision.allowed is expected
    assert decision.reason == ('RBAC: allowed by ClusterRoleBinding "b" of ClusterRole "r" to Group "devs"' if expected
                               else "")
    # through a RoleBinding in ns1 (to a Role there, or to the ClusterRole): in ns1 only
    for role_ref, role_obj in ((ref("r", "Role"), role("ns1", "r", *rules)), (ref("r"), cluster_role("r", *rules))):
        a = authorizer(role_obj, rb("ns1", "b", role_ref, u("alice")), versioned=indexed)
        assert a.authorize(attrs).allowed is (expected and attrs.namespace == "ns1")


@robust
@given(st.lists(rules_st, max_size=3), st.lists(rules_st, min_size=1, max_size=2), st.lists(attrs_st, max_size=8))
def test_covered_rules_allow_nothing_more(owner: list[Obj], servant: list[Obj], probes: list[Attributes]) -> None:
    """What ``covers`` lets a writer grant is never more than the writer may do."""
    if covers(owner, servant)[0]:
        for probe in probes:
            if any(spec_allows(r, probe) for r in servant):
                assert any(spec_allows(r, probe) for r in owner)


@robust
@given(st.lists(rules_st, max_size=3))
def test_one_holds_what_one_has(rules: list[Obj]) -> None:
    # Kubernetes' quirk: a rule with both resourceNames and nonResourceURLs (validation lets
    # a ClusterRole have it) does not cover its own URL atoms, whose names are empty
    rules = [r for r in rules if not (r.get("resourceNames") and r.get("nonResourceURLs"))]
    a = authorizer(cluster_role("r", *rules), crb("b", "r", u("alice")))
    assert confirm_no_escalation(a, ALICE, "", rules) is None
    assert confirm_no_escalation(a, ALICE, "ns1", rules) is None


@robust
@given(st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]),
       st.lists(st.sampled_from(["api", "apis", "v1", "apps", "namespaces", "ns", "pods", "web", "status", "log",
                                 "watch", "healthz", ""]), max_size=7))
def test_request_attributes_never_fail_but_for_a_bare_special_verb(method: str, parts: list[str]) -> None:
    path = "/" + "/".join(parts)
    try:
        a = request_attributes(method, path, {}, ALICE)
    except RequestInfoError:
        return
    assert a.path == path
    if a.resource_request:
        assert a.verb in ("get", "list", "create", "update", "patch", "delete", "deletecollection", "watch", "proxy")
    else:
        assert a.verb == method.lower()


def test_remembered_answers_follow_names_and_every_policy_change() -> None:
    """Allowed answers are kept for any name, unless a resourceNames rule came first; any RBAC change forgets them."""
    source = StaticRBACSource([
        cluster_role("one-pod", rule(["patch"], [""], ["pods"], names=["special"])),
        cluster_role("patcher", rule(["patch"], [""], ["pods"])),
        crb("a", "one-pod", u("alice")), crb("b", "patcher", u("alice")),
    ])
    a = RBACAuthorizer(source)
    for _ in range(2):  # the second round answers from memory, and must say the same
        assert a.authorize(res("patch", "pods", "ns", "special")).reason.endswith('ClusterRoleBinding "a" of '
                                                                                  'ClusterRole "one-pod" to User "alice"')
        assert a.authorize(res("patch", "pods", "ns", "other")).reason.endswith('"b" of ClusterRole "patcher" to User "alice"')
        assert a.authorize(res("patch", "pods", "ns", "special")).reason.endswith('"a" of ClusterRole "one-pod" to User "alice"')
    source.put(cluster_role("patcher", rule(["get"], [""], ["pods"])))  # a role narrowed: nothing remembered holds
    assert not a.authorize(res("patch", "pods", "ns", "other")).allowed
    assert a.authorize(res("patch", "pods", "ns", "special")).allowed
    source.delete("ClusterRoleBinding", "", "a")
    assert not a.authorize(res("patch", "pods", "ns", "special")).allowed
