"""Tests for podlife.api.strategic_merge against the Kubernetes patch semantics (1.37 schemas)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podlife.api.strategic_merge import (
    StrategicMergeError,
    apply_strategic_merge_patch,
    apply_strategic_merge_patch_for,
    create_two_way_merge_patch,
    supports_strategic_merge,
)
from podlife.registry.schemas.tree import PatchMeta

POD = "io.k8s.api.core.v1.Pod"
DEPLOYMENT = "io.k8s.api.apps.v1.Deployment"


def apply(original: dict[str, Any], patch: dict[str, Any], schema: Any = POD) -> dict[str, Any]:
    before_o, before_p = copy.deepcopy(original), copy.deepcopy(patch)
    result = apply_strategic_merge_patch(original, patch, schema)
    assert original == before_o, "original was mutated"
    assert patch == before_p, "patch was mutated"
    return result


def pod(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": list(containers), **spec}}


def names(items: list[dict[str, Any]]) -> list[Any]:
    return [i["name"] for i in items]


# ---------------------------------------------------------------------------
# kubectl apply as kubectl 1.32 really sends it
# ---------------------------------------------------------------------------

# Captured from kubectl 1.32.4 `apply -f` of a changed Deployment (computed by kubectl from
# this server's OpenAPI v3 document): new container b first, container c removed, env X
# removed, Y changed, Z added, a port added, a finalizer added, volume source switched.
LIVE_DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
                 "labels": {"app": "web"}, "name": "web", "namespace": "default"},
    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
             "template": {"metadata": {"labels": {"app": "web"}},
                          "spec": {"containers": [
                              {"env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}],
                               "image": "nginx:1", "name": "a", "ports": [{"containerPort": 80}]},
                              {"image": "busybox", "name": "c"}],
                              "volumes": [{"emptyDir": {}, "name": "v1"}]}}},
}
KUBECTL_APPLY_PATCH = json.loads("""
{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\\"new\\":true}\\n"},
  "finalizers":["x.io/f"]},
 "spec":{"replicas":3,"template":{"spec":{
  "$setElementOrder/containers":[{"name":"b"},{"name":"a"}],
  "$setElementOrder/volumes":[{"name":"v1"}],
  "containers":[{"image":"redis","name":"b"},
    {"$setElementOrder/env":[{"name":"Y"},{"name":"Z"}],
     "$setElementOrder/ports":[{"containerPort":80},{"containerPort":443}],
     "env":[{"name":"Y","value":"3"},{"name":"Z","value":"4"},{"$patch":"delete","name":"X"}],
     "image":"nginx:2","name":"a","ports":[{"containerPort":443}]},
    {"$patch":"delete","name":"c"}],
  "volumes":[{"$retainKeys":["configMap","name"],"configMap":{"name":"cm"},"emptyDir":null,"name":"v1"}]}}}}
""")


def test_kubectl_client_side_apply_patch() -> None:
    result = apply(LIVE_DEPLOYMENT, KUBECTL_APPLY_PATCH, DEPLOYMENT)
    assert result["metadata"]["annotations"] == {
        "kubectl.kubernetes.io/last-applied-configuration": '{"new":true}\n'}
    assert result["metadata"]["finalizers"] == ["x.io/f"]
    assert result["spec"]["replicas"] == 3
    spec = result["spec"]["template"]["spec"]
    assert spec["containers"] == [
        {"image": "redis", "name": "b"},
        {"env": [{"name": "Y", "value": "3"}, {"name": "Z", "value": "4"}],
         "image": "nginx:2", "name": "a", "ports": [{"containerPort": 80}, {"containerPort": 443}]},
    ]
    assert spec["volumes"] == [{"name": "v1", "configMap": {"name": "cm"}}]
    assert result["spec"]["selector"] == LIVE_DEPLOYMENT["spec"]["selector"]


def test_brief_example_set_element_order_adds_container() -> None:
    live = {"metadata": {"name": "d"}, "spec": {"template": {"spec": {"containers": [
        {"name": "a", "image": "1"}]}}}}
    patch = {"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "..."}},
             "spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                                            "containers": [{"name": "b", "image": "x"}]}}}}
    result = apply(live, patch, DEPLOYMENT)
    assert result["spec"]["template"]["spec"]["containers"] == [{"name": "a", "image": "1"},
                                                                {"name": "b", "image": "x"}]
    assert result["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] == "..."


def test_set_element_order_only_reorders() -> None:
    live = pod({"name": "a"}, {"name": "b"}, {"name": "c"})
    result = apply(live, {"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}]}})
    assert names(result["spec"]["containers"]) == ["c", "a", "b"]


def test_set_element_order_keeps_server_only_items_in_place() -> None:
    # A server-only item goes before a patch item that came after it on the server.
    live = pod({"name": "a"}, {"name": "sidecar"}, {"name": "b"})
    patch = {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                      "containers": [{"name": "a", "image": "new"}]}}
    assert names(apply(live, patch)["spec"]["containers"]) == ["sidecar", "b", "a"]
    live = pod({"name": "sidecar"}, {"name": "a"}, {"name": "b"}, {"name": "tail"})
    assert names(apply(live, patch)["spec"]["containers"]) == ["sidecar", "b", "a", "tail"]


def test_new_items_without_set_element_order_go_first() -> None:
    # As in Kubernetes: a new element (unknown to the server order) is placed before the
    # remaining server-only elements when the patch carries no $setElementOrder.
    live = pod({"name": "a"})
    assert names(apply(live, {"spec": {"containers": [{"name": "b"}]}})["spec"]["containers"]) == ["b", "a"]


def test_set_element_order_naming_missing_items_is_fine() -> None:
    live = pod({"name": "1"}, {"name": "3"})
    patch = {"spec": {"$setElementOrder/containers": [{"name": "3"}, {"name": "2"}, {"name": "1"}],
                      "containers": [{"name": "3", "image": "x"}, {"name": "1", "image": "y"}]}}
    assert apply(live, patch)["spec"]["containers"] == [{"name": "3", "image": "x"}, {"name": "1", "image": "y"}]


def test_set_element_order_mismatch_is_an_error() -> None:
    live = pod({"name": "1"}, {"name": "3"}, {"name": "2"})
    patch = {"spec": {"$setElementOrder/containers": [{"name": "1"}, {"name": "2"}, {"name": "3"}],
                      "containers": [{"name": "3", "image": "x"}, {"name": "1", "image": "y"}]}}
    with pytest.raises(StrategicMergeError, match="doesn't match"):
        apply(live, patch)


def test_set_element_order_for_primitive_list() -> None:
    live = {"metadata": {"finalizers": ["a", "b", "c", "d"]}}
    patch = {"metadata": {"$setElementOrder/finalizers": ["a", "b"],
                          "$deleteFromPrimitiveList/finalizers": ["c"]}}
    assert apply(live, patch)["metadata"]["finalizers"] == ["a", "b", "d"]


# ---------------------------------------------------------------------------
# Lists of maps merged by key
# ---------------------------------------------------------------------------


def test_env_merges_by_name() -> None:
    live = pod({"name": "a", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]})
    patch = {"spec": {"containers": [{"name": "a", "env": [{"name": "Y", "value": "3"},
                                                           {"name": "Z", "value": "4"}]}]}}
    env = apply(live, patch)["spec"]["containers"][0]["env"]
    assert env == [{"name": "X", "value": "1"}, {"name": "Y", "value": "3"}, {"name": "Z", "value": "4"}]


def test_env_value_from_replaces_value_with_null() -> None:
    live = pod({"name": "a", "env": [{"name": "X", "value": "1"}]})
    patch = {"spec": {"containers": [{"name": "a", "env": [
        {"name": "X", "value": None, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}]}}
    assert apply(live, patch)["spec"]["containers"][0]["env"] == [
        {"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]


def test_ports_merge_by_container_port() -> None:
    live = pod({"name": "a", "ports": [{"containerPort": 80, "name": "http"}]})
    patch = {"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80, "protocol": "TCP"},
                                                             {"containerPort": 443}]}]}}
    assert apply(live, patch)["spec"]["containers"][0]["ports"] == [
        {"containerPort": 80, "name": "http", "protocol": "TCP"}, {"containerPort": 443}]


def test_delete_container_with_patch_delete() -> None:
    live = pod({"name": "a"}, {"name": "b"}, {"name": "c"})
    result = apply(live, {"spec": {"containers": [{"name": "b", "$patch": "delete"}]}})
    assert names(result["spec"]["containers"]) == ["a", "c"]


def test_patch_delete_removes_all_duplicates() -> None:
    live = pod({"name": "a"}, {"name": "a", "image": "2"}, {"name": "b"})
    result = apply(live, {"spec": {"containers": [{"name": "a", "$patch": "delete"}]}})
    assert names(result["spec"]["containers"]) == ["b"]


def test_patch_delete_without_merge_key_is_an_error() -> None:
    with pytest.raises(StrategicMergeError, match="merge key"):
        apply(pod({"name": "a"}), {"spec": {"containers": [{"$patch": "delete"}]}})


def test_patch_replace_in_list() -> None:
    live = pod({"name": "a", "image": "1"}, {"name": "b"})
    patch = {"spec": {"containers": [{"$patch": "replace"}, {"name": "z", "image": "9", "args": None}]}}
    assert apply(live, patch)["spec"]["containers"] == [{"name": "z", "image": "9"}]


def test_patch_replace_alone_empties_list() -> None:
    live = pod({"name": "a"}, {"name": "b"})
    assert apply(live, {"spec": {"containers": [{"$patch": "replace"}]}})["spec"]["containers"] == []


def test_patch_merge_directive_is_accepted_on_list_items() -> None:
    live = pod({"name": "a", "image": "1"})
    patch = {"spec": {"containers": [{"name": "a", "$patch": "merge", "image": "2"}]}}
    assert apply(live, patch)["spec"]["containers"] == [{"name": "a", "image": "2"}]


def test_missing_merge_key_is_an_error() -> None:
    with pytest.raises(StrategicMergeError, match="does not contain declared merge key 'name'"):
        apply(pod({"name": "a"}), {"spec": {"containers": [{"image": "x"}]}})


def test_unknown_patch_type_is_an_error() -> None:
    with pytest.raises(StrategicMergeError, match="unknown patch type"):
        apply(pod({"name": "a"}), {"spec": {"containers": [{"name": "a", "$patch": "frobnicate"}]}})
    with pytest.raises(StrategicMergeError, match="unknown patch type"):
        apply(pod({"name": "a"}), {"spec": {"$patch": "frobnicate"}})


def test_new_list_item_is_cleaned_of_nulls_and_directives() -> None:
    live = pod({"name": "a"})
    patch = {"spec": {"containers": [{"name": "b", "image": "x", "args": None,
                                      "env": [{"name": "E", "$patch": "delete"}, {"name": "F", "value": "1"}]}]}}
    assert apply(live, patch)["spec"]["containers"][0] == {"name": "b", "image": "x",
                                                           "env": [{"name": "F", "value": "1"}]}


def test_patch_order_wins_for_mentioned_items() -> None:
    live = pod({"name": "1"}, {"name": "2", "image": "b"}, {"name": "3"})
    patch = {"spec": {"containers": [{"name": "3", "image": "c"}, {"name": "1", "image": "a"}]}}
    assert apply(live, patch)["spec"]["containers"] == [
        {"name": "2", "image": "b"}, {"name": "3", "image": "c"}, {"name": "1", "image": "a"}]


def test_list_absent_in_original_is_taken_from_patch() -> None:
    live = pod({"name": "a"})
    patch = {"spec": {"volumes": [{"name": "v", "emptyDir": {}}, {"name": "w", "$patch": "delete"}]}}
    assert apply(live, patch)["spec"]["volumes"] == [{"name": "v", "emptyDir": {}}]


def test_owner_references_merge_by_uid() -> None:
    live = {"metadata": {"ownerReferences": [{"uid": "1", "name": "a", "kind": "ReplicaSet"}]}}
    patch = {"metadata": {"ownerReferences": [{"uid": "2", "name": "b", "kind": "ReplicaSet"}]}}
    assert [o["uid"] for o in apply(live, patch)["metadata"]["ownerReferences"]] == ["2", "1"]


def test_status_conditions_merge_by_type() -> None:
    live = {"status": {"conditions": [{"type": "Ready", "status": "False"},
                                      {"type": "PodScheduled", "status": "True"}]}}
    patch = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    assert apply(live, patch)["status"]["conditions"] == [{"type": "Ready", "status": "True"},
                                                          {"type": "PodScheduled", "status": "True"}]


# ---------------------------------------------------------------------------
# Primitive lists, replaced lists
# ---------------------------------------------------------------------------


def test_finalizers_merge_as_set() -> None:
    live = {"metadata": {"finalizers": ["a", "b"]}}
    assert apply(live, {"metadata": {"finalizers": ["b", "c"]}})["metadata"]["finalizers"] == ["a", "b", "c"]


def test_delete_from_primitive_list() -> None:
    live = {"metadata": {"finalizers": ["a", "b", "b", "c"]}}
    patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}
    assert apply(live, patch)["metadata"]["finalizers"] == ["a", "c"]


def test_delete_from_missing_primitive_list_is_a_no_op() -> None:
    assert apply({"metadata": {}}, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}) == {
        "metadata": {}}


def test_delete_from_primitive_list_must_be_a_list() -> None:
    with pytest.raises(StrategicMergeError):
        apply({"metadata": {"finalizers": ["a"]}}, {"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}})


def test_lists_without_merge_strategy_are_replaced() -> None:
    live = pod({"name": "a", "args": ["1", "2"]},
               tolerations=[{"key": "a", "operator": "Exists"}])
    patch = {"spec": {"containers": [{"name": "a", "args": ["3"]}],
                      "tolerations": [{"key": "b", "operator": "Exists"}]}}
    result = apply(live, patch)
    assert result["spec"]["containers"][0]["args"] == ["3"]
    assert result["spec"]["tolerations"] == [{"key": "b", "operator": "Exists"}]


def test_lists_of_lists_are_rejected() -> None:
    with pytest.raises(StrategicMergeError, match="lists of lists"):
        apply({"metadata": {"finalizers": [["a"]]}}, {"metadata": {"finalizers": [["b"]]}})


# ---------------------------------------------------------------------------
# Maps
# ---------------------------------------------------------------------------


def test_null_deletes_and_maps_merge() -> None:
    live = {"metadata": {"labels": {"a": "1", "b": "2"}, "annotations": {"x": "y"}}}
    patch = {"metadata": {"labels": {"a": None, "c": "3"}, "annotations": None, "missing": None}}
    assert apply(live, patch) == {"metadata": {"labels": {"b": "2", "c": "3"}}}


def test_patch_replace_on_map() -> None:
    live = pod({"name": "a"}, nodeSelector={"a": "1", "b": "2"})
    patch = {"spec": {"nodeSelector": {"$patch": "replace", "c": "3"}}}
    assert apply(live, patch)["spec"]["nodeSelector"] == {"c": "3"}


def test_patch_delete_on_map_empties_it() -> None:
    live = pod({"name": "a"}, nodeSelector={"a": "1"})
    assert apply(live, {"spec": {"nodeSelector": {"$patch": "delete"}}})["spec"]["nodeSelector"] == {}


def test_patch_delete_on_absent_map_leaves_it_absent() -> None:
    live = pod({"name": "a"})
    assert "nodeSelector" not in apply(live, {"spec": {"nodeSelector": {"$patch": "delete"}}})["spec"]


def test_retain_keys_on_deployment_strategy() -> None:
    live = {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    assert apply(live, patch, DEPLOYMENT)["spec"]["strategy"] == {"type": "Recreate"}


def test_retain_keys_on_volume_switches_source() -> None:
    live = pod({"name": "a"}, volumes=[{"name": "v", "hostPath": {"path": "/x"}}, {"name": "w", "emptyDir": {}}])
    patch = {"spec": {"volumes": [{"name": "v", "$retainKeys": ["name", "secret"], "secret": {"secretName": "s"}}]}}
    assert apply(live, patch)["spec"]["volumes"] == [{"name": "v", "secret": {"secretName": "s"}},
                                                     {"name": "w", "emptyDir": {}}]


def test_retain_keys_must_cover_patch_fields() -> None:
    live = {"spec": {"strategy": {"type": "RollingUpdate"}}}
    with pytest.raises(StrategicMergeError, match="retainKeys"):
        apply(live, {"spec": {"strategy": {"$retainKeys": ["type"], "type": "x", "rollingUpdate": {}}}},
              DEPLOYMENT)


def test_type_change_takes_patch_value() -> None:
    live = {"metadata": {"labels": {"a": "1"}}}
    assert apply(live, {"metadata": {"labels": "oops"}}) == {"metadata": {"labels": "oops"}}


def test_unknown_fields_merge_like_json_merge_patch() -> None:
    live = {"spec": {"mystery": {"a": 1, "list": [1, 2]}}}
    patch = {"spec": {"mystery": {"b": 2, "list": [3]}}}
    assert apply(live, patch) == {"spec": {"mystery": {"a": 1, "b": 2, "list": [3]}}}


def test_result_shares_untouched_subtrees_and_copies_patch_values() -> None:
    live = pod({"name": "a"})
    live["status"] = {"phase": "Running"}
    patch = {"metadata": {"labels": {"x": {"deep": "v"}}}}
    result = apply_strategic_merge_patch(live, patch, POD)
    assert result["status"] is live["status"]
    assert result["spec"] is live["spec"]
    assert result["metadata"]["labels"]["x"] is not patch["metadata"]["labels"]["x"]


def test_top_level_must_be_objects() -> None:
    with pytest.raises(StrategicMergeError):
        apply_strategic_merge_patch({}, [], POD)  # type: ignore[arg-type]
    with pytest.raises(StrategicMergeError):
        apply_strategic_merge_patch([], {}, POD)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# Schema plumbing
# ---------------------------------------------------------------------------


def test_callable_schema_lookup() -> None:
    def lookup(path: tuple[str, ...]) -> PatchMeta:
        if path == ("items",):
            return PatchMeta(strategies=("merge",), merge_key="id")
        return PatchMeta()

    live = {"items": [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}]}
    patch = {"items": [{"id": 2, "v": "c"}]}
    assert apply(live, patch, lookup) == {"items": [{"id": 1, "v": "a"}, {"id": 2, "v": "c"}]}


def test_merge_keys_compare_like_go() -> None:
    def lookup(path: tuple[str, ...]) -> PatchMeta:
        return PatchMeta(strategies=("merge",), merge_key="id") if path == ("items",) else PatchMeta()

    live = {"items": [{"id": 1, "v": "int"}, {"id": True, "v": "bool"}]}
    result = apply(live, {"items": [{"id": 1.0, "v": "float"}]}, lookup)
    assert result["items"] == [{"id": 1.0, "v": "float"}, {"id": 1, "v": "int"}, {"id": True, "v": "bool"}]


def test_no_schema_means_maps_merge_lists_replace() -> None:
    assert apply({"a": {"b": 1}, "l": [1]}, {"a": {"c": 2}, "l": [2]}, None) == {"a": {"b": 1, "c": 2}, "l": [2]}


def test_apply_for_kind() -> None:
    result = apply_strategic_merge_patch_for("", "v1", "Pod", pod({"name": "a"}),
                                             {"spec": {"containers": [{"name": "b"}]}})
    assert names(result["spec"]["containers"]) == ["b", "a"]
    with pytest.raises(StrategicMergeError, match="not supported"):
        apply_strategic_merge_patch_for("example.com", "v1", "Widget", {}, {})


def test_supports_strategic_merge_reexported() -> None:
    assert supports_strategic_merge("", "v1", "Pod")
    assert not supports_strategic_merge("network.podlife.io", "v1", "Subnet")


# ---------------------------------------------------------------------------
# Two-way patches (what kubectl computes) round-trip through apply
# ---------------------------------------------------------------------------


def test_two_way_patch_like_kubectl() -> None:
    original = {"spec": {"template": {"spec": {"containers": [
        {"name": "a", "image": "1", "env": [{"name": "X", "value": "1"}]}, {"name": "c", "image": "3"}]}}}}
    modified = {"spec": {"template": {"spec": {"containers": [
        {"name": "b", "image": "2"}, {"name": "a", "image": "1", "env": [{"name": "Y", "value": "2"}]}]}}}}
    patch = create_two_way_merge_patch(original, modified, DEPLOYMENT)
    spec = patch["spec"]["template"]["spec"]
    assert spec["$setElementOrder/containers"] == [{"name": "b"}, {"name": "a"}]
    assert {"name": "c", "$patch": "delete"} in spec["containers"]
    assert apply(original, patch, DEPLOYMENT) == modified


@pytest.mark.parametrize("original,modified", [
    ({"metadata": {"finalizers": ["a", "b"]}}, {"metadata": {"finalizers": ["b", "c"]}}),
    ({"metadata": {"labels": {"a": "1"}}}, {"metadata": {"labels": {"b": "2"}}}),
    ({"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}},
     {"spec": {"volumes": [{"name": "v", "configMap": {"name": "c"}}]}}),
    ({"spec": {"containers": [{"name": "a", "args": ["1"]}]}},
     {"spec": {"containers": [{"name": "a", "args": ["2", "3"]}]}}),
    ({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}},
     {"spec": {"containers": [{"name": "b"}, {"name": "a"}]}}),
    ({"spec": {"nodeName": "x", "containers": []}}, {"spec": {"containers": [{"name": "a"}]}}),
])
def test_two_way_round_trip(original: dict[str, Any], modified: dict[str, Any]) -> None:
    patch = create_two_way_merge_patch(original, modified, POD)
    assert apply(original, patch) == modified


def test_two_way_retain_keys_directive() -> None:
    original = {"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}}
    modified = {"spec": {"volumes": [{"name": "v", "configMap": {"name": "c"}}]}}
    patch = create_two_way_merge_patch(original, modified, POD)
    assert patch["spec"]["volumes"] == [
        {"name": "v", "configMap": {"name": "c"}, "emptyDir": None, "$retainKeys": ["configMap", "name"]}]


# ---------------------------------------------------------------------------
# Property: apply(original, diff(original, modified)) == modified
# ---------------------------------------------------------------------------

_names = st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), unique=True, max_size=4)
_env = st.lists(st.sampled_from(["X", "Y", "Z"]), unique=True, max_size=3).flatmap(
    lambda ks: st.tuples(*[st.sampled_from(["1", "2"]) for _ in ks]).map(
        lambda vs: [{"name": k, "value": v} for k, v in zip(ks, vs)]))
_container = st.fixed_dictionaries({"image": st.sampled_from(["i1", "i2"]), "env": _env,
                                    "args": st.lists(st.sampled_from(["-v", "-q"]), max_size=2)})
_pods = _names.flatmap(lambda ns: st.tuples(*[_container for _ in ns]).map(
    lambda cs: {"metadata": {"finalizers": sorted({c["image"] for c in cs})},
                "spec": {"containers": [{"name": n, **c} for n, c in zip(ns, cs)]}}))


@settings(max_examples=150, deadline=None)
@given(_pods, _pods)
def test_two_way_patch_round_trips(original: dict[str, Any], modified: dict[str, Any]) -> None:
    patch = create_two_way_merge_patch(original, modified, POD)
    assert apply(original, patch) == modified
