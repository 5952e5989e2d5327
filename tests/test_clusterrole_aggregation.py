"""The clusterrole-aggregation controller against the in-process API, and the bootstrap policy on it."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from podlife.api.authz.bootstrap import (
    CLUSTER_ROLE_BINDINGS,
    bootstrap_cluster_roles,
    bootstrap_policy,
    ensure_bootstrap_policy,
)
from podlife.api.context import build_api
from podlife.api.crds import controller_of
from podlife.api.local_client import LocalClient
from podlife.controllers.clusterrole_aggregation import (
    CLUSTER_ROLES,
    ClusterRoleAggregationController,
    aggregated_rules,
    same_rules,
)
from podlife.machinery.errors import ApiError
from podlife.registry.catalog import Catalog
from podlife.registry.rbac import RBAC_GROUP, rbac_strategy
from podlife.store.memory import MemoryStore

from .cluster_harness import async_wait_for
from .controller_harness import controller_context, running
from .in_process import InProcessApi

Obj = dict[str, Any]
LABEL = "example.com/aggregate-to-monitoring"


def cluster_role(name: str, rules: list[Obj] | None = None, labels: dict[str, str] | None = None,
                 selectors: list[Obj] | None = None) -> Obj:
    obj: Obj = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": name, "labels": labels or {}}}
    if rules is not None:
        obj["rules"] = rules
    if selectors is not None:
        obj["aggregationRule"] = {"clusterRoleSelectors": selectors}
    return obj


def r(verbs: str, resources: str, group: str = "") -> Obj:
    return {"verbs": verbs.split(), "apiGroups": [group], "resources": resources.split()}


PODS, NODES, LEASES, SECRETS = r("get list", "pods"), r("get", "nodes"), r("get", "leases", "coordination.k8s.io"), r("get", "secrets")


@asynccontextmanager
async def aggregating(c: LocalClient, **kwargs: Any) -> AsyncIterator[ClusterRoleAggregationController]:
    """The controller on ``c``, running with its shared informers until the block ends."""
    ctx = controller_context(c, "clusterrole-aggregation-controller")
    controller = ClusterRoleAggregationController(ctx, **kwargs)
    async with running(ctx, controller):
        yield controller


@pytest.fixture
async def client(local_api: InProcessApi) -> AsyncIterator[LocalClient]:
    async with aggregating(local_api.client):
        yield local_api.client


async def rules_of(c: LocalClient, name: str) -> list[Obj]:
    return (await c.get(CLUSTER_ROLES, name)).get("rules") or []


async def wait_rules(c: LocalClient, name: str, want: list[Obj], what: str) -> None:
    async def settled() -> bool:
        return await rules_of(c, name) == want

    await async_wait_for(settled, timeout=10.0, what=what)


# -- pure ------------------------------------------------------------------------------------


def test_union_order_and_deduplication() -> None:
    target = cluster_role("target", selectors=[{"matchLabels": {"b": "1"}}, {"matchLabels": {"a": "1"}}])
    roles = [
        target,
        cluster_role("zeta", [PODS, NODES], labels={"b": "1"}),
        cluster_role("alpha", [{**NODES, "resourceNames": []}, LEASES], labels={"b": "1"}),  # [] equals absent
        cluster_role("first", [SECRETS, PODS], labels={"a": "1"}),
        cluster_role("other", [r("*", "*")]),
    ]
    # selectors in order; within each, roles by name; a rule already taken is skipped
    assert aggregated_rules(target, roles) == [{**NODES, "resourceNames": []}, LEASES, PODS, SECRETS]


def test_a_role_never_aggregates_itself_and_bad_selectors_select_nothing() -> None:
    target = cluster_role("target", [PODS], labels={"a": "1"}, selectors=[{"matchLabels": {"a": "1"}}])
    assert aggregated_rules(target, [target]) == []
    broken = cluster_role("broken", selectors=[{"matchExpressions": [{"key": "a", "operator": "Near"}]}])
    assert aggregated_rules(broken, [cluster_role("x", [PODS], labels={"a": "1"})]) == []
    assert same_rules(None, []) and same_rules([{**PODS, "resourceNames": None}], [PODS])
    assert not same_rules([PODS, NODES], [NODES, PODS])


# -- against the API ------------------------------------------------------------------------


async def test_an_aggregated_role_gets_the_union_and_follows_changes(client: LocalClient) -> None:
    c = client
    await c.create(CLUSTER_ROLES, cluster_role("monitoring-pods", [PODS, NODES], labels={LABEL: "true"}))
    await c.create(CLUSTER_ROLES, cluster_role("monitoring-nodes", [NODES, LEASES], labels={LABEL: "true"}))
    await c.create(CLUSTER_ROLES, cluster_role("unrelated", [SECRETS]))
    await c.create(CLUSTER_ROLES, cluster_role("monitoring", selectors=[{"matchLabels": {LABEL: "true"}}]))
    await wait_rules(c, "monitoring", [NODES, LEASES, PODS], "the union of the labelled roles")

    # a selected role's rules change
    await c.patch(CLUSTER_ROLES, "monitoring-nodes", {"rules": [LEASES, SECRETS]})
    await wait_rules(c, "monitoring", [LEASES, SECRETS, PODS, NODES], "the changed rules")

    # a role is labelled, another loses its label, one is deleted
    await c.patch(CLUSTER_ROLES, "unrelated", {"metadata": {"labels": {LABEL: "true"}}})
    await c.patch(CLUSTER_ROLES, "monitoring-pods", {"metadata": {"labels": {LABEL: None}}})
    await wait_rules(c, "monitoring", [LEASES, SECRETS], "after relabelling")
    await c.delete(CLUSTER_ROLES, "monitoring-nodes")
    await wait_rules(c, "monitoring", [SECRETS], "after a deletion")


async def test_hand_edited_rules_of_an_aggregated_role_are_put_back(client: LocalClient) -> None:
    c = client
    await c.create(CLUSTER_ROLES, cluster_role("piece", [PODS], labels={LABEL: "true"}))
    await c.create(CLUSTER_ROLES, cluster_role("whole", selectors=[{"matchLabels": {LABEL: "true"}}]))
    await wait_rules(c, "whole", [PODS], "the first aggregation")
    await c.patch(CLUSTER_ROLES, "whole", {"rules": [r("*", "*")]})
    await wait_rules(c, "whole", [PODS], "the controller to restore the union")


async def test_match_expressions_and_chains(client: LocalClient) -> None:
    c = client
    await c.create(CLUSTER_ROLES, cluster_role("top", selectors=[
        {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["middle", "top-extra"]}]}]))
    await c.create(CLUSTER_ROLES, cluster_role("middle", labels={"tier": "middle"}, selectors=[
        {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["bottom"]}]}]))
    await c.create(CLUSTER_ROLES, cluster_role("bottom-a", [PODS], labels={"tier": "bottom"}))
    await c.create(CLUSTER_ROLES, cluster_role("extra", [SECRETS], labels={"tier": "top-extra"}))
    await wait_rules(c, "middle", [PODS], "the middle role")
    await wait_rules(c, "top", [SECRETS, PODS], "the top role (extra < middle by name)")
    await c.create(CLUSTER_ROLES, cluster_role("bottom-b", [NODES], labels={"tier": "bottom"}))
    await wait_rules(c, "top", [SECRETS, PODS, NODES], "a change two levels down")


async def test_no_write_when_nothing_differs(local_api: InProcessApi) -> None:
    c = local_api.client
    await c.create(CLUSTER_ROLES, cluster_role("piece", [PODS], labels={LABEL: "true"}))
    await c.create(CLUSTER_ROLES, cluster_role("whole", selectors=[{"matchLabels": {LABEL: "true"}}]))
    async with aggregating(c, workers=1):
        await wait_rules(c, "whole", [PODS], "the first aggregation")
        version = (await c.get(CLUSTER_ROLES, "whole"))["metadata"]["resourceVersion"]
        # a change that selects nothing new; the sentinel, queued after "whole", tells when it was handled
        await c.create(CLUSTER_ROLES, cluster_role("noise", [SECRETS], labels={"other": "x"}))
        await c.create(CLUSTER_ROLES, cluster_role("sentinel", selectors=[{"matchLabels": {"other": "x"}}]))
        await wait_rules(c, "sentinel", [SECRETS], "the sentinel")
        assert (await c.get(CLUSTER_ROLES, "whole"))["metadata"]["resourceVersion"] == version


# -- the bootstrap policy on an API whose catalog uses the RBAC strategies --------------------


def rbac_catalog() -> Catalog:
    """The catalog with podlife.registry.rbac's strategies for the four RBAC kinds (the catalog.py change)."""
    catalog = Catalog()
    for t in list(catalog.types):
        if t.group == RBAC_GROUP:
            catalog.add(dataclasses.replace(t, strategy=rbac_strategy(t.kind)))
    return catalog


@pytest.fixture
async def rbac_api() -> AsyncIterator[LocalClient]:
    store = MemoryStore()
    await store.start()
    try:
        ctx = await build_api(store, rbac_catalog())
        try:
            yield LocalClient(ctx)
        finally:
            crd_controller = controller_of(ctx)
            if crd_controller is not None:
                await crd_controller.close()
    finally:
        await store.close()


async def test_bootstrap_policy_is_accepted_and_admin_edit_view_are_aggregated(rbac_api: LocalClient) -> None:
    c = rbac_api
    written = await ensure_bootstrap_policy(c)
    assert len(written) == len(bootstrap_policy())
    assert "clusterroles/system:controller:clusterrole-aggregation-controller" in written
    assert "rolebindings/kube-system/system::leader-locking-kube-scheduler" in written
    assert await ensure_bootstrap_policy(c) == []  # idempotent

    roles = {o["metadata"]["name"]: o for o in bootstrap_cluster_roles()}
    view = [*roles["system:aggregate-to-view"]["rules"], *roles["system:aggregated-metrics-reader"]["rules"],
            *roles["system:aggregated-podtrace-reader"]["rules"]]  # every role labelled aggregate-to-view, by name
    edit = roles["system:aggregate-to-edit"]["rules"] + [x for x in view if x not in roles["system:aggregate-to-edit"]["rules"]]
    admin = edit + roles["system:aggregate-to-admin"]["rules"]  # "edit" sorts before "system:aggregate-to-admin"
    async with aggregating(c):
        await wait_rules(c, "view", view, "view = system:aggregate-to-view + the metrics and podtrace readers")
        await wait_rules(c, "edit", edit, "edit = system:aggregate-to-edit + view")
        await wait_rules(c, "admin", admin, "admin = edit + system:aggregate-to-admin")
    assert await ensure_bootstrap_policy(c) == []  # the aggregated rules are not fought over


async def test_rbac_strategies_answer_with_kubernetes_messages(rbac_api: LocalClient) -> None:
    c = rbac_api
    await ensure_bootstrap_policy(c)
    crb = await c.get(CLUSTER_ROLE_BINDINGS, "system:basic-user")
    crb["roleRef"] = {**crb["roleRef"], "name": "view"}
    with pytest.raises(ApiError) as err:
        await c.update(CLUSTER_ROLE_BINDINGS, crb)
    assert err.value.code == 422
    assert err.value.message == (
        'ClusterRoleBinding.rbac.authorization.k8s.io "system:basic-user" is invalid: roleRef: Invalid value: '
        'rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"ClusterRole", Name:"view"}: cannot change roleRef')
    with pytest.raises(ApiError) as err:
        await c.create(CLUSTER_ROLE_BINDINGS, {"metadata": {"name": "x"}, "roleRef": {"kind": "Role", "name": "r"},
                                               "subjects": [{"kind": "ServiceAccount", "name": "sa"}]})
    assert (err.value.details or {})["causes"] == [
        {"reason": "FieldValueNotSupported", "field": "roleRef.kind",
         "message": 'Unsupported value: "Role": supported values: "ClusterRole"'},
        {"reason": "FieldValueRequired", "field": "subjects[0].namespace", "message": "Required value"},
    ]
