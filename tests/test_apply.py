"""Server-side apply as a pure function: merge by schema, ownership, prune, conflicts."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from podlife.machinery import errors
from podlife.api import managed_fields as mf
from podlife.api.apply import LAST_APPLIED, ApplyRequest, apply_to, build_last_applied, check_config, merge
from podlife.api.handlers import Target
from podlife.registry.schemas.custom import CustomSchemas
from podlife.registry.catalog import Catalog
from podlife.registry.types import ResourceType

TYPES = {rt.kind: rt for rt in Catalog().types}
POD, DEPLOYMENT, CONFIGMAP = TYPES["Pod"], TYPES["Deployment"], TYPES["ConfigMap"]
T0, T1 = "2025-01-01T00:00:00Z", "2025-01-01T00:01:00Z"


def cm(data: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default", **meta}}
    if data is not None:
        out["data"] = data
    return out


def apply(live: dict[str, Any] | None, config: dict[str, Any], manager: str = "kubectl", *, force: bool = False,
          rt: ResourceType = CONFIGMAP, subresource: str = "", now: str = T0,
          schemas: CustomSchemas | None = None) -> dict[str, Any]:
    before = copy.deepcopy(live)
    out = apply_to(live, ApplyRequest(rt, config, manager, force, subresource, schemas), now)
    assert live == before, "apply_to must not change the live object"
    return out


def owned(obj: dict[str, Any], manager: str, operation: str = "Apply") -> set[mf.Path] | None:
    for entry in obj["metadata"].get("managedFields") or []:
        if entry["manager"] == manager and entry["operation"] == operation:
            return mf.decode_fields(entry["fieldsV1"])
    return None


def conflict(fn: Any) -> errors.ApiError:
    with pytest.raises(errors.ApiError) as caught:
        fn()
    assert caught.value.code == 409 and caught.value.reason == "Conflict"
    return caught.value


# ---- ownership and removal ------------------------------------------------------------------


def test_create_owns_exactly_what_was_applied() -> None:
    obj = apply(None, cm({"a": "1"}, labels={"x": "y"}))
    assert obj["data"] == {"a": "1"}
    entry = obj["metadata"]["managedFields"][0]
    assert entry == {"manager": "kubectl", "operation": "Apply", "apiVersion": "v1", "time": T0,
                     "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:a": {}}, "f:metadata": {"f:labels": {"f:x": {}}}}}


def test_reapplying_the_same_configuration_changes_nothing() -> None:
    obj = apply(None, cm({"a": "1"}))
    again = apply(obj, cm({"a": "1"}), now=T1)
    assert again == obj  # not even the time: nothing changed


def test_changed_values_update_and_dropped_fields_go() -> None:
    obj = apply(None, cm({"a": "1", "b": "2"}, labels={"x": "y"}))
    obj = apply(obj, cm({"a": "3"}), now=T1)
    assert obj["data"] == {"a": "3"} and "labels" not in obj["metadata"]
    assert owned(obj, "kubectl") == {("f:data", "f:a")}
    assert obj["metadata"]["managedFields"][0]["time"] == T1


def test_dropping_every_field_removes_the_emptied_map() -> None:
    obj = apply(None, cm({"a": "1"}))
    obj = apply(obj, cm())
    assert "data" not in obj and "managedFields" not in obj["metadata"]


def test_fields_another_manager_owns_are_not_removed() -> None:
    obj = apply(None, cm({"a": "1", "b": "2"}))
    obj = apply(obj, cm({"b": "2"}), manager="other")  # same value: shared
    obj = apply(obj, cm({"a": "1"}))
    assert obj["data"] == {"a": "1", "b": "2"}
    assert owned(obj, "other") == {("f:data", "f:b")}


def test_fields_set_by_update_are_never_pruned() -> None:
    obj = apply(None, cm({"a": "1"}))
    edited = copy.deepcopy(obj)
    edited["data"]["b"] = "2"
    mf.track_update(CONFIGMAP, obj, edited, "kubectl-edit")
    obj = apply(edited, cm({"a": "1"}))
    assert obj["data"] == {"a": "1", "b": "2"}


def test_null_removes_a_field_and_is_owned() -> None:
    obj = apply(None, cm({"a": "1", "b": "2"}))
    obj = apply(obj, cm({"a": "1", "b": None}))
    assert obj["data"] == {"a": "1"}


def test_prune_removes_a_struct_nobody_owns_any_more() -> None:
    dep = deployment_config(strategy={"type": "Recreate"})
    obj = apply(None, dep, rt=DEPLOYMENT)
    obj = apply(obj, deployment_config(), rt=DEPLOYMENT)
    assert "strategy" not in obj["spec"]


# ---- conflicts ------------------------------------------------------------------------------


def test_conflicts_name_the_manager_and_field() -> None:
    obj = apply(None, cm({"a": "1", "b": "2"}))
    err = conflict(lambda: apply(obj, cm({"a": "2"}), manager="other"))
    assert err.message == 'Apply failed with 1 conflict: conflict with "kubectl": .data.a'
    assert err.details == {"causes": [{"reason": "FieldManagerConflict", "message": 'conflict with "kubectl"', "field": ".data.a"}]}

    created = cm({"a": "1", "b": "2"})
    mf.track_create(CONFIGMAP, created, "kubectl-client-side-apply")
    err = conflict(lambda: apply(created, cm({"a": "x", "b": "y"}), manager="other"))
    assert err.message == ('Apply failed with 2 conflicts: conflicts with "kubectl-client-side-apply" using v1:\n'
                           "- .data.a\n- .data.b")
    assert [c["field"] for c in err.details["causes"]] == [".data.a", ".data.b"]
    assert err.details["causes"][0]["message"] == 'conflict with "kubectl-client-side-apply" using v1'


def test_force_takes_ownership() -> None:
    obj = apply(None, cm({"a": "1", "b": "2"}))
    obj = apply(obj, cm({"a": "2"}), manager="other", force=True)
    assert obj["data"] == {"a": "2", "b": "2"}
    assert owned(obj, "other") == {("f:data", "f:a")}
    assert owned(obj, "kubectl") == {("f:data", "f:b")}
    obj = apply(obj, cm({"b": "2"}))  # kubectl no longer owns a: it is not removed
    assert obj["data"] == {"a": "2", "b": "2"}


def test_first_apply_to_an_untracked_object_conflicts_with_before_first_apply() -> None:
    live = cm({"a": "1"}, uid="u")
    err = conflict(lambda: apply(live, cm({"a": "2"}), manager="tool"))
    assert err.message == 'Apply failed with 1 conflict: conflict with "before-first-apply" using v1: .data.a'
    obj = apply(live, cm({"b": "2"}), manager="tool")
    assert owned(obj, "before-first-apply", "Update") == {("f:data",), ("f:data", "f:a")}


def test_kubectl_takes_over_fields_last_applied_client_side() -> None:
    config = cm({"a": "1", "b": "2"})
    live = copy.deepcopy(config)
    live["metadata"]["annotations"] = {LAST_APPLIED: build_last_applied(config)}
    mf.track_create(CONFIGMAP, live, "kubectl-client-side-apply")
    conflict(lambda: apply(live, cm({"a": "3", "b": "2"}), manager="someone"))
    obj = apply(live, cm({"a": "3", "b": "2"}))
    assert obj["data"] == {"a": "3", "b": "2"}
    assert json.loads(obj["metadata"]["annotations"][LAST_APPLIED])["data"] == {"a": "3", "b": "2"}
    drifted = copy.deepcopy(live)
    drifted["data"]["a"] = "edited"  # no longer what was last applied: a real conflict
    conflict(lambda: apply(drifted, cm({"a": "3", "b": "2"})))


# ---- merging by schema ------------------------------------------------------------------------


def deployment_config(containers: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    template: dict[str, Any] = {"metadata": {"labels": {"app": "d"}},
                                "spec": {"containers": containers or [{"name": "app", "image": "nginx"}]}}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "d"}}, "template": template, **spec}}


def test_containers_merge_by_name_and_each_manager_owns_its_own() -> None:
    obj = apply(None, deployment_config([{"name": "app", "image": "nginx:1"}]), rt=DEPLOYMENT)
    sidecar = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
               "spec": {"template": {"spec": {"containers": [{"name": "proxy", "image": "envoy"}]}}}}
    obj = apply(obj, sidecar, manager="mesh", rt=DEPLOYMENT)
    obj = apply(obj, deployment_config([{"name": "app", "image": "nginx:2"}]), rt=DEPLOYMENT)
    assert [(c["name"], c["image"]) for c in obj["spec"]["template"]["spec"]["containers"]] == [
        ("app", "nginx:2"), ("proxy", "envoy")]
    obj = apply(obj, {**sidecar, "spec": {"template": {"spec": {"containers": []}}}}, manager="mesh", rt=DEPLOYMENT)
    assert [c["name"] for c in obj["spec"]["template"]["spec"]["containers"]] == ["app"]


def test_list_merge_order() -> None:
    containers = mf.root_shape(POD).child("spec")[0].child("containers")[0]

    def names(live: list[str], config: list[str]) -> list[str]:
        out = merge([{"name": n} for n in live], [{"name": n} for n in config], containers)
        return [c["name"] for c in out]

    assert names(["a", "b", "c"], ["c", "d"]) == ["a", "b", "c", "d"]
    assert names(["a", "b"], ["b", "a"]) == ["b", "a"]
    assert names(["a", "x", "b"], ["b", "n", "a"]) == ["x", "b", "n", "a"]


def test_sets_merge_and_atomic_lists_replace() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "finalizers": ["a"]},
           "spec": {"containers": [{"name": "c", "image": "i", "args": ["1", "2"]}]}}
    obj = apply(None, pod, manager="one", rt=POD)
    other = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "finalizers": ["b"]},
             "spec": {"containers": [{"name": "c", "args": ["3"]}]}}
    obj = apply(obj, other, manager="two", rt=POD, force=True)
    assert obj["metadata"]["finalizers"] == ["a", "b"]
    assert obj["spec"]["containers"][0]["args"] == ["3"]
    assert ("f:spec", "f:containers", 'k:{"name":"c"}', "f:args") not in owned(obj, "one")


def test_ports_match_live_items_through_the_protocol_default() -> None:
    live = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}}
    config = copy.deepcopy(live)
    del config["spec"]["containers"][0]["ports"][0]["protocol"]
    config["spec"]["containers"][0]["ports"][0]["name"] = "http"
    obj = apply(live, config, rt=POD, force=True)
    assert obj["spec"]["containers"][0]["ports"] == [{"containerPort": 80, "protocol": "TCP", "name": "http"}]


def test_status_apply_owns_only_status() -> None:
    live = apply(None, deployment_config(), rt=DEPLOYMENT)
    config = deployment_config(replicas=5)
    config["status"] = {"observedGeneration": 1}
    obj = apply(live, config, manager="ctl", rt=DEPLOYMENT, subresource="status")
    entry = [e for e in obj["metadata"]["managedFields"] if e["manager"] == "ctl"][0]
    assert entry["subresource"] == "status" and entry["fieldsV1"] == {"f:status": {"f:observedGeneration": {}}}


def test_custom_resources_merge_by_their_own_list_types() -> None:
    group, kind = "example.podlife.io", "Widget"
    schemas = CustomSchemas()
    schemas.register(group, "v1", kind, {
        "type": "object", "properties": {"spec": {"type": "object", "properties": {
            "items": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"],
                      "items": {"type": "object", "properties": {"id": {"type": "string"}, "v": {"type": "integer"}}}},
            "tags": {"type": "array", "items": {"type": "string"}}}}}})
    try:
        rt = ResourceType(group, "v1", kind, "widgets", True)
        base = {"apiVersion": f"{group}/v1", "kind": kind, "metadata": {"name": "w"}}
        obj = apply(None, {**base, "spec": {"items": [{"id": "a", "v": 1}], "tags": ["x"]}}, rt=rt, schemas=schemas)
        obj = apply(obj, {**base, "spec": {"items": [{"id": "b", "v": 2}], "tags": ["y"]}}, manager="two", rt=rt,
                    force=True, schemas=schemas)
        assert obj["spec"] == {"items": [{"id": "a", "v": 1}, {"id": "b", "v": 2}], "tags": ["y"]}
    finally:
        schemas.unregister(group, "v1", kind)


# ---- refused configurations -----------------------------------------------------------------


def test_untyped_configurations_fail_like_kubernetes() -> None:
    bad = deployment_config([{"image": "nginx"}])
    with pytest.raises(errors.ApiError) as caught:
        apply(None, bad, rt=DEPLOYMENT)
    assert caught.value.code == 500
    assert caught.value.message.startswith("failed to create typed patch object (default/d; apps/v1, Kind=Deployment): "
                                           ".spec.template.spec.containers: element 0: associative list with keys")


class _Rest:
    def __init__(self, rt: ResourceType) -> None:
        self.rt = rt


@pytest.mark.parametrize(("body", "message"), [
    ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "c"}}, "invalid object type: /v1, Kind=Pod"),
    ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "managedFields": []}}, "metadata.managedFields must be nil"),
    ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other"}},
     "the name of the object (other) does not match the name on the URL (c)"),
    (["not", "an", "object"], "error decoding YAML"),
])
def test_check_config_refuses(body: Any, message: str) -> None:
    target = Target(_Rest(CONFIGMAP), "default", "c", None)  # type: ignore[arg-type]
    with pytest.raises(errors.ApiError) as caught:
        check_config(target, body)
    assert caught.value.code == 400 and message in caught.value.message


def test_check_config_fills_the_name_from_the_url() -> None:
    target = Target(_Rest(CONFIGMAP), "default", "c", None)  # type: ignore[arg-type]
    assert check_config(target, {"apiVersion": "v1", "kind": "ConfigMap"})["metadata"] == {"name": "c"}
