"""RBAC over the API server's own caches, and the access reviews answered by it.

Roles and bindings are written through the in-process API, as ``kubectl create
role/rolebinding`` would; the authorizer reads them from the watch caches and must see
each change for the very next decision.
"""

from __future__ import annotations

from typing import Any

import pytest

from podlife.api.access_reviews import self_subject_access_review, self_subject_rules_review, subject_access_review
from podlife.api.authorization import UnionAuthorizer
from podlife.api.authz.attributes import Attributes
from podlife.api.authz.rbac import RBACAuthorizer
from podlife.api.identity import UserInfo
from podlife.api.rbac_source import CacheRBACSource
from podlife.client.base import Resource
from podlife.machinery.errors import ApiError

from .in_process import InProcessApi

Obj = dict[str, Any]
ROLES = Resource("rbac.authorization.k8s.io", "v1", "roles", "Role")
ROLE_BINDINGS = Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding")
APP = UserInfo("system:serviceaccount:sec:app",
               groups=("system:serviceaccounts", "system:serviceaccounts:sec", "system:authenticated"))


def list_pods(namespace: str) -> Attributes:
    return Attributes(APP, "list", True, api_version="v1", resource="pods", namespace=namespace)


async def grant_pod_reading(api: InProcessApi) -> None:
    await api.client.create(ROLES, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                                    "metadata": {"name": "pod-reader", "namespace": "default"},
                                    "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]},
                            "default")
    await api.client.create(ROLE_BINDINGS, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "app-reads-pods", "namespace": "default"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": "sec"}]}, "default")


async def test_a_binding_counts_for_the_next_decision_and_only_where_it_is(local_api: InProcessApi) -> None:
    authorizer = UnionAuthorizer([RBACAuthorizer(CacheRBACSource(local_api.ctx))])
    assert not authorizer.authorize(list_pods("default")).allowed
    await grant_pod_reading(local_api)
    decision = authorizer.authorize(list_pods("default"))
    assert decision.allowed
    assert decision.reason == ('RBAC: allowed by RoleBinding "app-reads-pods/default" of Role "pod-reader" to '
                               'ServiceAccount "app/sec"')
    assert not authorizer.authorize(list_pods("kube-system")).allowed
    assert not authorizer.authorize(Attributes(APP, "delete", True, api_version="v1", resource="pods",
                                               namespace="default", name="x")).allowed
    await local_api.client.delete(ROLE_BINDINGS, "app-reads-pods", "default")
    assert not authorizer.authorize(list_pods("default")).allowed


def review(resource: Obj | None = None, **spec: Any) -> Obj:
    if resource is not None:
        spec["resourceAttributes"] = resource
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}


async def test_access_reviews_answer_as_the_authorizer_decides(local_api: InProcessApi) -> None:
    authorizer = RBACAuthorizer(CacheRBACSource(local_api.ctx))
    await grant_pod_reading(local_api)
    pods = {"namespace": "default", "verb": "list", "resource": "pods"}
    assert self_subject_access_review(review(pods), APP, authorizer)["status"]["allowed"] is True
    assert self_subject_access_review(review({**pods, "verb": "delete"}), APP, authorizer)["status"] == {"allowed": False}
    sar = subject_access_review(review(pods, user=APP.username, groups=list(APP.groups)), authorizer)
    assert sar["status"]["allowed"] is True and "RoleBinding" in sar["status"]["reason"]
    local = subject_access_review(review(pods, user=APP.username), authorizer, namespace="default")
    assert local["status"]["allowed"] is True
    with pytest.raises(ApiError) as wrong_namespace:
        subject_access_review(review(pods, user=APP.username), authorizer, namespace="other")
    assert wrong_namespace.value.code == 422 and "must match metadata.namespace" in wrong_namespace.value.message
    with pytest.raises(ApiError) as nobody:
        subject_access_review(review(pods), authorizer)
    assert "at least one of user or group must be specified" in nobody.value.message
    with pytest.raises(ApiError) as both:
        self_subject_access_review(review(pods, nonResourceAttributes={"path": "/x", "verb": "get"}), APP, authorizer)
    assert "exactly one of nonResourceAttributes or resourceAttributes must be specified" in both.value.message
    rules = self_subject_rules_review({"kind": "SelfSubjectRulesReview", "spec": {"namespace": "default"}}, APP,
                                      authorizer)["status"]
    assert {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]} in rules["resourceRules"]
