"""managedFields: FieldsV1 encoding, shapes from the 1.37 schemas, compare, and Update tracking."""

from __future__ import annotations

import copy
import random
from typing import Any

import orjson
import pytest

from podlife.machinery import errors
from podlife.api import managed_fields as mf
from podlife.registry.catalog import Catalog
from podlife.registry.types import ResourceType

TYPES = {rt.kind: rt for rt in Catalog().types}
POD, DEPLOYMENT, CONFIGMAP = TYPES["Pod"], TYPES["Deployment"], TYPES["ConfigMap"]
NOW = "2025-01-01T00:00:00Z"


def fields_of(obj: dict[str, Any], manager: str, operation: str = "Update") -> dict[str, Any] | None:
    for entry in obj["metadata"].get("managedFields") or []:
        if entry["manager"] == manager and entry["operation"] == operation:
            return entry["fieldsV1"]
    return None


def deployment(image: str = "nginx:1") -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "default", "labels": {"app": "x"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "x"}},
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
                     "template": {"metadata": {"labels": {"app": "x"}},
                                  "spec": {"containers": [{"name": "app", "image": image, "ports": [{"containerPort": 80}]}]}}},
            "status": {"replicas": 0}}


# ---- FieldsV1 ----------------------------------------------------------------------------


def test_encode_marks_members_that_have_children_with_a_dot() -> None:
    paths = {("f:data",), ("f:data", "f:a"), ("f:metadata", "f:labels", "f:x")}
    trie = mf.encode_fields(paths)
    assert trie == {"f:data": {".": {}, "f:a": {}}, "f:metadata": {"f:labels": {"f:x": {}}}}
    assert list(trie["f:data"]) == [".", "f:a"]
    assert mf.decode_fields(trie) == paths


def test_decode_rejects_malformed_tries() -> None:
    with pytest.raises(ValueError):
        mf.decode_fields({"data": {}})
    with pytest.raises(ValueError):
        mf.decode_fields({"f:data": []})
    assert mf.decode_fields(None) == set()


def test_path_strings_as_kubernetes_prints_them() -> None:
    path = ("f:spec", "f:containers", 'k:{"name":"app"}', "f:ports", 'k:{"containerPort":80,"protocol":"TCP"}', "f:name")
    assert mf.path_string(path) == '.spec.containers[name="app"].ports[containerPort=80,protocol="TCP"].name'
    assert mf.path_string(("f:metadata", "f:finalizers", 'v:"a/b"')) == '.metadata.finalizers[="a/b"]'
    assert mf.path_string(("f:x", "i:3")) == ".x[3]"


def test_trie_edits_equal_set_operations_and_stay_canonical() -> None:
    rng = random.Random(7)
    elements = ["f:a", "f:b", 'k:{"n":1}', "v:2"]

    def paths(n: int) -> set[mf.Path]:
        return {tuple(rng.choice(elements) for _ in range(rng.randint(1, 4))) for _ in range(n)}

    def canonical(node: dict[str, Any]) -> None:
        for key, child in node.items():
            assert child != {".": {}}, "a lone '.' must be a plain leaf"
            if key != ".":
                canonical(child)

    for _ in range(500):
        have, edit = paths(rng.randint(0, 8)), paths(rng.randint(0, 5))
        trie = mf.encode_fields(have)
        before = copy.deepcopy(trie)
        without, with_ = mf.trie_without(trie, edit), mf.trie_with(trie, edit)
        assert trie == before, "copy-on-write: the input trie is untouched"
        assert mf.decode_fields(without) == have - edit
        assert mf.decode_fields(with_) == have | edit
        canonical(without)
        canonical(with_)


# ---- shapes --------------------------------------------------------------------------------


def test_shapes_follow_the_list_and_map_types_of_the_schemas() -> None:
    pod = mf.root_shape(POD)
    spec = pod.child("spec")[0]
    containers = spec.child("containers")[0]
    assert containers.kind == mf.KEYED and containers.keys == ("name",)
    ports = containers.elem().child("ports")[0]
    assert ports.kind == mf.KEYED and ports.keys == ("containerPort", "protocol")
    assert containers.elem().child("args")[0].kind == mf.ATOMIC
    assert spec.child("nodeSelector")[0].kind == mf.ATOMIC  # x-kubernetes-map-type: atomic
    meta = pod.child("metadata")[0]
    assert meta.child("labels")[0].kind == mf.MAP
    assert meta.child("finalizers")[0].kind == mf.SET
    assert meta.child("ownerReferences")[0].keys == ("uid",)
    selector = mf.root_shape(DEPLOYMENT).child("spec")[0].child("selector")[0]
    assert selector.kind == mf.ATOMIC  # LabelSelector is an atomic struct
    assert pod.child("nope")[0] is mf.UNTYPED_SHAPE


def test_key_defaults_match_the_defaulted_live_items() -> None:
    ports = mf.root_shape(POD).child("spec")[0].child("containers")[0].elem().child("ports")[0]
    assert mf.key_element(ports, {"containerPort": 80}) == mf.key_element(ports, {"containerPort": 80, "protocol": "TCP"})
    containers = mf.root_shape(POD).child("spec")[0].child("containers")[0]
    assert mf.key_element(containers, {"image": "x"}) is None


# ---- compare ---------------------------------------------------------------------------


def test_diff_by_list_type() -> None:
    root = mf.root_shape(POD)
    old = {"metadata": {"finalizers": ["a", "b"], "labels": {"x": "1"}},
           "spec": {"containers": [{"name": "app", "image": "1", "args": ["a"]}, {"name": "gone", "image": "1"}]}}
    new = {"metadata": {"finalizers": ["b", "c"], "labels": {"x": "2"}},
           "spec": {"containers": [{"name": "app", "image": "1", "args": ["b"]}, {"name": "new", "image": "2"}]}}
    changed, removed = mf.diff(old, new, root)
    app = ("f:spec", "f:containers", 'k:{"name":"app"}')
    assert changed == {("f:metadata", "f:finalizers", 'v:"c"'), ("f:metadata", "f:labels", "f:x"), app + ("f:args",),
                       ("f:spec", "f:containers", 'k:{"name":"new"}'), ("f:spec", "f:containers", 'k:{"name":"new"}', "f:name"),
                       ("f:spec", "f:containers", 'k:{"name":"new"}', "f:image")}
    gone = ("f:spec", "f:containers", 'k:{"name":"gone"}')
    assert removed == {("f:metadata", "f:finalizers", 'v:"a"'), gone, gone + ("f:name",), gone + ("f:image",)}


def test_diff_treats_value_structs_as_always_present() -> None:
    root = mf.root_shape(DEPLOYMENT)
    old = {"spec": {"replicas": 1}}
    new = {"spec": {"replicas": 1, "strategy": {"type": "Recreate"}, "template": {"spec": {"containers": [{"name": "a"}]}}}}
    changed, _ = mf.diff(old, new, root)
    assert ("f:spec", "f:strategy") not in changed  # DeploymentStrategy is a Go value struct
    assert ("f:spec", "f:template", "f:spec", "f:containers") not in changed  # required: never nil
    assert ("f:spec", "f:strategy", "f:type") in changed
    changed, _ = mf.diff(old, {"spec": {"replicas": 1, "strategy": {"rollingUpdate": {"maxSurge": 1}}}}, root)
    assert ("f:spec", "f:strategy", "f:rollingUpdate") in changed  # a pointer: added as a member


def test_fieldset_of_an_applied_configuration() -> None:
    root = mf.root_shape(DEPLOYMENT)
    config = {"spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}}, "strategy": {},
                       "template": {"spec": {"containers": [{"name": "app", "image": "x"}]}}}}
    item = ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"app"}')
    assert mf.fieldset(config, root) == {("f:spec", "f:replicas"), ("f:spec", "f:selector"), ("f:spec", "f:strategy"),
                                         item, item + ("f:name",), item + ("f:image",)}
    with pytest.raises(ValueError, match='element 0: associative list with keys has an element that omits key field "name"'):
        mf.fieldset({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}, root)
    with pytest.raises(ValueError, match='duplicate entries for key \\[name="a"\\]'):
        mf.fieldset({"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "a"}]}}}}, root)


def test_ensure_named_fields_adds_struct_ancestors_only() -> None:
    root = mf.root_shape(POD)
    got = mf.ensure_named_fields({("f:metadata", "f:labels", "f:app")}, root)
    assert got == {("f:metadata",), ("f:metadata", "f:labels"), ("f:metadata", "f:labels", "f:app")}


# ---- Update tracking -------------------------------------------------------------------


def test_create_records_what_kubernetes_records() -> None:
    obj = deployment()
    mf.track_create(DEPLOYMENT, obj, "kubectl-create")
    entry = obj["metadata"]["managedFields"][0]
    assert {k: entry[k] for k in ("manager", "operation", "apiVersion", "fieldsType")} == {
        "manager": "kubectl-create", "operation": "Update", "apiVersion": "apps/v1", "fieldsType": "FieldsV1"}
    item = {".": {}, "f:image": {}, "f:name": {},
            "f:ports": {".": {}, 'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}}}
    assert entry["fieldsV1"] == {
        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
        "f:spec": {"f:replicas": {}, "f:selector": {},
                   "f:strategy": {"f:rollingUpdate": {".": {}, "f:maxSurge": {}}, "f:type": {}},
                   "f:template": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                                  "f:spec": {"f:containers": {'k:{"name":"app"}': item}}}}}  # no status: reset


def test_the_one_pass_create_agrees_with_compare() -> None:
    for rt, obj in ((DEPLOYMENT, deployment()), (CONFIGMAP, {"apiVersion": "v1", "kind": "ConfigMap",
                                                             "metadata": {"name": "c"}, "data": {"a": "1"}})):
        tracked = copy.deepcopy(obj)
        mf.track_create(rt, tracked, "m")
        changed, _ = mf.diff({}, obj, mf.root_shape(rt))
        expected = mf.owned_paths(changed, mf.reset_filter(rt, ""))
        assert mf.decode_fields(fields_of(tracked, "m")) == expected


def updated(old: dict[str, Any], change: Any, manager: str, subresource: str | None = None,
            rt: ResourceType = DEPLOYMENT) -> dict[str, Any]:
    new = copy.deepcopy(old)
    change(new)
    mf.track_update(rt, old, new, manager, subresource)
    return new


def test_update_moves_changed_fields_to_the_writer() -> None:
    created = deployment()
    mf.track_create(DEPLOYMENT, created, "kubectl-create")

    def edit(o: dict[str, Any]) -> None:
        o["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
        del o["metadata"]["labels"]

    new = updated(created, edit, "kubectl-edit")
    image = ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"app"}', "f:image")
    assert mf.decode_fields(fields_of(new, "kubectl-edit")) == {image}
    creator = mf.decode_fields(fields_of(new, "kubectl-create"))
    assert image not in creator and ("f:metadata", "f:labels", "f:app") not in creator
    assert ("f:spec", "f:replicas") in creator


def test_update_by_the_same_manager_keeps_its_set_and_bumps_time_only_on_change() -> None:
    created = deployment()
    mf.track_create(DEPLOYMENT, created, "tool")
    created["metadata"]["managedFields"][0]["time"] = "2000-01-01T00:00:00Z"
    same = updated(created, lambda o: o["spec"].update(replicas=3), "tool")
    assert fields_of(same, "tool") == fields_of(created, "tool")
    assert same["metadata"]["managedFields"][0]["time"] != "2000-01-01T00:00:00Z"
    untouched = updated(created, lambda o: None, "tool")
    assert untouched["metadata"]["managedFields"] == created["metadata"]["managedFields"]


def test_untracked_objects_stay_untracked_until_an_apply() -> None:
    old = deployment()
    new = updated(old, lambda o: o["spec"].update(replicas=3), "kubectl-edit")
    assert "managedFields" not in new["metadata"]


def test_reset_and_explicit_managed_fields() -> None:
    created = deployment()
    mf.track_create(DEPLOYMENT, created, "kubectl-create")
    reset = updated(created, lambda o: o["metadata"].update(managedFields=[{}]), "x")
    assert "managedFields" not in reset["metadata"]
    kept = updated(created, lambda o: o["metadata"].update(managedFields=[]), "x")
    assert kept["metadata"]["managedFields"] == created["metadata"]["managedFields"]
    mine = [{"manager": "mine", "operation": "Apply", "apiVersion": "apps/v1", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:spec": {"f:replicas": {}}}}]
    replaced = updated(created, lambda o: o["metadata"].update(managedFields=mine), "x")
    assert replaced["metadata"]["managedFields"] == mine
    ignored = updated(created, lambda o: o["metadata"].update(managedFields=mine), "x", subresource="status")
    assert ignored["metadata"]["managedFields"] == created["metadata"]["managedFields"]


def test_status_writes_are_owned_with_the_subresource() -> None:
    created = deployment()
    mf.track_create(DEPLOYMENT, created, "kubectl-create")
    new = updated(created, lambda o: o["status"].update(replicas=1), "controller", subresource="status")
    entry = [e for e in new["metadata"]["managedFields"] if e["manager"] == "controller"][0]
    assert entry["subresource"] == "status" and entry["fieldsV1"] == {"f:status": {"f:replicas": {}}}


def test_update_managers_are_capped() -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}}
    mf.track_create(CONFIGMAP, obj, "creator")
    for i in range(12):
        obj = updated(obj, lambda o, i=i: o["data"].update({f"k{i}": "v"}), f"writer-{i:02d}", rt=CONFIGMAP)
    names = [e["manager"] for e in obj["metadata"]["managedFields"]]
    assert len(names) == mf.MAX_UPDATE_MANAGERS and "ancient-changes" in names


# ---- the manager of a request ----------------------------------------------------------------


def test_manager_comes_from_the_query_or_the_user_agent() -> None:
    assert mf.request_options({"fieldManager": "kubectl-edit"}, "kubectl/v1.32", "UpdateOptions").manager == "kubectl-edit"
    assert mf.request_options({}, "OpenAPI-Generator/37.0.2/python", "CreateOptions").manager == "OpenAPI-Generator"
    assert mf.manager_from_user_agent("x" * 300 + "/1") == "x" * 128
    opts = mf.request_options({"fieldManager": "kubectl", "force": "true"}, "", "PatchOptions", apply=True)
    assert opts.force


@pytest.mark.parametrize(("query", "apply", "message"), [
    ({}, True, 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch'),
    ({"fieldManager": "a", "force": "true"}, False,
     'PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified for non-apply patch'),
    ({"fieldManager": "x" * 129}, False, "fieldManager: Too long: may not be more than 128 bytes"),
    ({"fieldManager": "a\x07"}, False, "invalid character U+0007 (at position 1)"),
])
def test_invalid_options_get_422(query: dict[str, str], apply: bool, message: str) -> None:
    with pytest.raises(errors.ApiError) as caught:
        mf.request_options(query, "", "PatchOptions", apply=apply)
    assert caught.value.code == 422 and caught.value.reason == "Invalid"
    assert message in caught.value.message
    assert caught.value.details["kind"] == "PatchOptions"


def test_managed_fields_entries_sort_appliers_first() -> None:
    entries = [{"manager": "b", "operation": "Update", "apiVersion": "v1", "time": "2025-01-01T00:00:01Z",
                "fieldsType": "FieldsV1", "fieldsV1": {"f:a": {}}},
               {"manager": "a", "operation": "Apply", "apiVersion": "v1", "time": "2025-01-01T00:00:02Z",
                "fieldsType": "FieldsV1", "fieldsV1": {"f:b": {}}}]
    managers = mf.decode_entries(entries)
    assert [e["manager"] for e in mf.encode_entries(managers)] == ["a", "b"]
    with pytest.raises(ValueError):
        mf.decode_entries(entries + [dict(entries[0])])
    with pytest.raises(ValueError):
        mf.decode_entries([{"manager": "x", "operation": "Replace"}])
    assert orjson.dumps(mf.encode_entries(managers)[1]) == orjson.dumps(entries[0])  # reused as stored
