"""The fast create path of managed_fields gives, byte for byte, what the one-pass walk gave.

``track_create`` skips the fields an entry never keeps and memoizes the tries of
repeated subtrees (:class:`managed_fields._TrieMemo`).  The reference below is the
walk it replaced, kept verbatim: every case is run through both, the fast path three
times (a miss, a miss that stores, a hit), and the encoded objects must be equal bytes.
"""

from __future__ import annotations

import copy
import datetime
import re
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podlife.api import managed_fields as mf
from podlife.registry.schemas.custom import CustomSchemas
from podlife.registry.catalog import Catalog
from podlife.registry.pods import PodStrategy
from podlife.registry.types import ResourceType

TYPES = {rt.kind: rt for rt in Catalog().types}
POD, SERVICE, DEPLOYMENT, CONFIGMAP, SECRET, JOB = (TYPES[k] for k in ("Pod", "Service", "Deployment", "ConfigMap",
                                                                       "Secret", "Job"))
NOW = "2025-01-01T00:00:00Z"
RFC3339_SECOND = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
GROUP = "speed.podlife.io"
WIDGET = ResourceType(GROUP, "v1", "Widget", "widgets", True, subresources=("status",))
GADGET = ResourceType(GROUP, "v1", "Gadget", "gadgets", True)  # no schema: untyped
WIDGET_SCHEMA = {"type": "object", "properties": {
    "spec": {"type": "object", "properties": {
        "items": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"],
                  "items": {"type": "object", "properties": {"id": {"type": "string"}, "v": {"type": "integer"}}}},
        "pairs": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["b", "a"],
                  "items": {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}}},
        "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        "order": {"type": "array", "items": {"type": "string"}},
        "config": {"type": "object", "additionalProperties": {"type": "string"}},
        "frozen": {"type": "object", "x-kubernetes-map-type": "atomic", "properties": {"x": {"type": "string"}}},
        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}},
    "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}}}


# ---- the reference: the walk track_create used before the fast path ---------------------


def _present_trie(obj: dict[str, Any], shape: mf.Shape) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in sorted(obj):
        v = obj[k]
        if v is None:
            continue
        if type(v) is not dict and type(v) is not list:
            out["f:" + k] = {}
            continue
        child, implicit = shape.child(k)
        if implicit:
            kind = mf.effective_kind(child, v)
            sub = _present_trie(v, child) if kind in (mf.STRUCT, mf.MAP) else _full_trie(v, child)
            sub.pop(".", None)
            if sub:
                out["f:" + k] = sub
        else:
            out["f:" + k] = _full_trie(v, child)
    return out


def _full_trie(value: Any, shape: mf.Shape) -> dict[str, Any]:
    t = type(value)
    if t is not dict and t is not list:
        return {}
    kind = mf.effective_kind(shape, value)
    children: dict[str, Any] = {}
    if kind == mf.STRUCT or kind == mf.MAP:
        child = shape.child
        for k in sorted(value):
            v = value[k]
            if v is None:
                continue
            if type(v) is dict or type(v) is list:
                children["f:" + k] = _full_trie(v, child(k)[0])
            else:
                children["f:" + k] = {}
    elif kind == mf.KEYED:
        index = mf._index(value, shape)
        if index:
            elem = shape.elem()
            for el in sorted(index):
                children[el] = _full_trie(index[el], elem)
    elif kind == mf.SET:
        for el in sorted({mf.value_element(v) for v in value}):
            children[el] = {}
    return {".": {}, **children} if children else children


_STRIPPED_METADATA = tuple("f:" + f for f in ("name", "namespace", "creationTimestamp", "selfLink", "uid", "clusterName",
                                               "generation", "managedFields", "resourceVersion"))


def _strip_trie(trie: dict[str, Any], rt: ResourceType, subresource: str) -> dict[str, Any]:
    trie.pop("f:apiVersion", None)
    trie.pop("f:kind", None)
    meta = trie.get("f:metadata")
    if meta is not None:
        meta.pop(".", None)
        for name in _STRIPPED_METADATA:
            meta.pop(name, None)
        if not meta:
            del trie["f:metadata"]
    if subresource == "status":
        return {k: v for k, v in trie.items() if k == "f:status"}
    if not subresource and "status" in rt.subresources:
        trie.pop("f:status", None)
    return trie


def reference_track_create(rt: ResourceType, obj: dict[str, Any], manager: str, subresource: str | None = None) -> None:
    """track_create as it was (a plain create: the request set no valid entries)."""
    meta = obj["metadata"]
    sub = subresource or ""
    managers = mf._decode_live_or_new(None, meta.get("managedFields"), ignore_new=bool(sub))
    assert not managers, "the reference covers plain creates only"
    fields = _strip_trie(_present_trie(mf._without_managed(obj), mf.root_shape(rt, SCHEMAS)), rt, sub)
    if fields:
        managers[mf.manager_key(manager, mf.UPDATE, rt.api_version, sub)] = mf.Entry(
            manager, mf.UPDATE, rt.api_version, sub, NOW, fields=fields)
    encoded = mf.encode_entries(managers)
    if encoded:
        meta["managedFields"] = encoded
    else:
        meta.pop("managedFields", None)


# ---- fixtures and helpers ---------------------------------------------------------------------


#: the custom kinds of the API server these writes go to
SCHEMAS = CustomSchemas()


@pytest.fixture(scope="module", autouse=True)
def _custom_schema() -> Iterator[None]:
    SCHEMAS.register(GROUP, "v1", "Widget", WIDGET_SCHEMA)
    yield
    SCHEMAS.unregister(GROUP, "v1", "Widget")


def encoded(obj: Any) -> bytes:
    return orjson.dumps(obj, default=repr, option=orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATACLASS)


def at_now(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` with the time of each managedFields entry (the clock's, an RFC 3339 second) said to be ``NOW``.

    The reference writes ``NOW``; the path under test reads the clock, and two creates
    may fall in different seconds.
    """
    entries = obj["metadata"].get("managedFields")
    if not entries:
        return obj
    for entry in entries:
        assert RFC3339_SECOND.fullmatch(entry["time"]), entry["time"]
    return {**obj, "metadata": {**obj["metadata"], "managedFields": [{**e, "time": NOW} for e in entries]}}


def assert_same_as_reference(rt: ResourceType, obj: dict[str, Any], subresource: str | None = None) -> None:
    """The fast path, cold then warm, writes exactly what the reference writes."""
    expected = copy.deepcopy(obj)
    reference_track_create(rt, expected, "kubectl-create", subresource)
    made = []
    for _ in range(3):  # not seen, seen once (stored), seen twice (a hit)
        got = copy.deepcopy(obj)
        mf.track_create(rt, got, "kubectl-create", subresource, schemas=SCHEMAS)
        assert encoded(at_now(got)) == encoded(expected)
        made.append(got)
    assert all(encoded(at_now(m)) == encoded(expected) for m in made), "a later create changed an earlier one"


def defaulted_pod(containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    obj = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "p", "namespace": "default", "uid": "u-1", "creationTimestamp": NOW,
                        "labels": {"app": "web", "app.kubernetes.io/name": "web"}},
           "spec": {"containers": containers, **spec}}
    PodStrategy().prepare_for_create(obj)
    PodStrategy().default(obj)
    return obj


def app(name: str = "app", **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": "busybox:1.36", "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}, **extra}


CASES: dict[str, tuple[ResourceType, dict[str, Any]]] = {
    "defaulted pod": (POD, defaulted_pod([app()])),
    "pod with several containers": (POD, defaulted_pod(
        [app("a", env=[{"name": "A", "value": "1"}, {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                       {"name": "A", "value": "dup"}],
             ports=[{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}, {"containerPort": 53, "protocol": "TCP"}],
             volumeMounts=[{"name": "data", "mountPath": "/data"}, {"name": "cfg", "mountPath": "/etc/cfg", "readOnly": True}],
             command=["sh", "-c", "sleep 1"], args=[]),
         app("b", ports=[{"containerPort": 8080, "name": "http", "protocol": None}], env=None, resources={}),
         app("c", securityContext={"capabilities": {"add": ["NET_ADMIN"]}, "runAsUser": 0})],
        initContainers=[app("init")],
        volumes=[{"name": "data", "emptyDir": {}},
                 {"name": "cfg", "configMap": {"name": "cfg", "items": [{"key": "a.b", "path": "x/y"}]}}],
        nodeSelector={"disk": "ssd", "kubernetes.io/os": "linux"},
        affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}]}}},
        imagePullSecrets=[{"name": "reg"}], hostAliases=[{"ip": "10.0.0.1", "hostnames": ["a", "b"]}],
        readinessGates=[{"conditionType": "x/ready"}], overhead=None)),
    "pod items without keys": (POD, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                                     "spec": {"containers": [{"image": "x"}, {"name": "b"}], "volumes": [{"name": "v"}, "bad"],
                                              "tolerations": {"not": "a list"}, "securityContext": [],
                                              "dnsConfig": {"options": [{"name": "ndots", "value": "2"}]}}}),
    "pod through status": (POD, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [app()]},
                                 "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                                            "podIPs": [{"ip": "10.0.0.5"}], "hostIP": None}}),
    "service": (SERVICE, {"apiVersion": "v1", "kind": "Service",
                          "metadata": {"name": "s", "annotations": {"a.b/c": "1"}, "finalizers": ["x/y", "x/y", "z"]},
                          "spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 80, "protocol": "UDP"},
                                             {"port": 443, "name": "https"}],
                                   "selector": {"app": "web"}, "clusterIPs": ["10.0.0.1"], "type": "ClusterIP"},
                          "status": {"loadBalancer": {}}}),
    "deployment": (DEPLOYMENT, {"apiVersion": "apps/v1", "kind": "Deployment",
                                "metadata": {"name": "d", "labels": {"app": "x"}, "generation": 1,
                                             "ownerReferences": [{"uid": "o-1", "name": "o", "kind": "K", "apiVersion": "v1"}]},
                                "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "x"}},
                                         "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
                                         "template": {"metadata": {"labels": {"app": "x"}},
                                                      "spec": {"containers": [app(ports=[{"containerPort": 80}])]}}},
                                "status": {"replicas": 0}}),
    "job": (JOB, {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
                  "spec": {"template": {"spec": {"containers": [app()], "restartPolicy": "Never"}}, "backoffLimit": 2}}),
    "configmap with dotted keys": (CONFIGMAP, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                                               "data": {"a.b": "1", "x/y": "2", "": "3", "f:odd": "4", "k:{}": "5", ".": "6",
                                                        "none": None},
                                               "binaryData": {"b.bin": "AAE="}, "immutable": False}),
    "empty configmap": (CONFIGMAP, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {}},
                                    "data": {}}),
    "configmap with stale entries": (CONFIGMAP, {"apiVersion": "v1", "kind": "ConfigMap",
                                                 "metadata": {"name": "c", "managedFields": [{"bad": 1}]}, "data": {"a": "1"}}),
    "secret": (SECRET, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "managedFields": []},
                        "type": "Opaque", "data": {"tls.crt": "eA=="}, "stringData": {"k": "v"}}),
    "custom resource": (WIDGET, {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": "w", "labels": {"a": "b"}},
                                 "spec": {"items": [{"id": "a", "v": 1}, {"id": {"b": 1, "a": 2}}, {"v": 3}],
                                          "pairs": [{"a": "x", "b": 1}, {"a": "x", "b": 1.0}],
                                          "tags": ["y", "x", "y", 1, True, {"o": 1}], "order": ["b", "a"],
                                          "config": {"k.1": "v", "k/2": None}, "frozen": {"x": "1"},
                                          "free": {"deep": {"list": [1, {"a": 2}]}}, "unknown": {"z": [1]}},
                                 "status": {"ready": True}}),
    "untyped resource": (GADGET, {"apiVersion": f"{GROUP}/v1", "kind": "Gadget", "metadata": {"name": "g", "finalizers": ["a"]},
                                  "spec": {"a": {"b": [1, 2], "c": None}, "d": [], "e": {}}, "status": {"s": 1}, "extra": 5}),
    "only stripped metadata": (CONFIGMAP, {"apiVersion": "v1", "kind": "ConfigMap",
                                           "metadata": {"name": "c", "uid": "u", "resourceVersion": "1"}}),
    "nulls everywhere": (POD, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": None},
                               "spec": None, "status": None, "extra": None}),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("subresource", [None, "status"])
def test_create_matches_the_reference(name: str, subresource: str | None) -> None:
    rt, obj = CASES[name]
    assert_same_as_reference(rt, obj, subresource)


def test_pods_of_one_template_share_the_spec_trie_and_stay_independent() -> None:
    first, second = defaulted_pod([app()]), defaulted_pod([app()])
    for _ in range(2):
        mf.track_create(POD, copy.deepcopy(first), "m")  # seen twice: stored
    mf.track_create(POD, first, "m")
    mf.track_create(POD, second, "m")
    spec_of = [o["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"] for o in (first, second)]
    assert spec_of[0] is spec_of[1]
    before = encoded(first)
    other = copy.deepcopy(second)
    other["spec"]["containers"][0]["image"] = "busybox:2"
    other["spec"]["activeDeadlineSeconds"] = 5
    mf.track_update(POD, second, other, "someone-else")  # edits m's entry: copy-on-write
    assert encoded(first) == before
    fields = [e for e in other["metadata"]["managedFields"] if e["manager"] == "m"][0]["fieldsV1"]
    assert 'k:{"name":"app"}' in fields["f:spec"]["f:containers"]
    assert "f:image" not in fields["f:spec"]["f:containers"]['k:{"name":"app"}']
    assert encoded(first) == before


def pod_with(field: str, value: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", field: value},
            "spec": {"containers": [app(args=["x"])]}}


@pytest.mark.parametrize(("field", "plain", "lookalike", "same_fields"), [
    ("finalizers", ["a/b"], ("a/b",), False),  # a tuple is no list to the trie: a leaf, not a set
    ("labels", {"x": "1"}, OrderedDict(x="1"), False),  # nor is a dict subclass a dict
    ("finalizers", ["2025-01-01T00:00:00"], [datetime.datetime(2025, 1, 1)], True),  # equal JSON, other data
])
def test_values_json_cannot_tell_apart_are_never_confused(field: str, plain: Any, lookalike: Any, same_fields: bool) -> None:
    for _ in range(3):
        assert_same_as_reference(POD, pod_with(field, plain))  # stored, then hit
    assert_same_as_reference(POD, pod_with(field, lookalike))
    assert_same_as_reference(POD, pod_with(field, plain))
    created = [pod_with(field, plain), pod_with(field, lookalike)]
    for obj in created:
        mf.track_create(POD, obj, "m")
    fields_of = [encoded(at_now(obj)["metadata"]["managedFields"]) for obj in created]
    assert (fields_of[0] == fields_of[1]) is same_fields


def test_object_valued_keys_keep_their_order() -> None:
    for items in ([{"id": {"b": 1, "a": 2}}], [{"id": {"a": 2, "b": 1}}], [{"id": {"b": 1, "a": 2}}]):
        obj = {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"items": items}}
        assert_same_as_reference(WIDGET, obj)


def test_the_memo_is_bounded() -> None:
    memo = mf._TrieMemo(max_entries=4)
    shape = mf.root_shape(CONFIGMAP).child("data")[0]
    for i in range(50):
        for _ in range(2):
            assert memo.trie(mf._field_trie, {f"k{i}": "v"}, shape, False) == {".": {}, f"f:k{i}": {}}
    assert len(memo._entries) == 4 and len(memo._seen) <= 16
    assert memo.trie(mf._field_trie, {"k49": "v"}, shape, False) is memo.trie(mf._field_trie, {"k49": "v"}, shape, False)
    off = mf._TrieMemo(max_entries=0)
    for _ in range(3):
        assert off.trie(mf._field_trie, {"a": "v"}, shape, False) == {".": {}, "f:a": {}}
    assert not off._entries


# ---- random objects -----------------------------------------------------------------------


NAMES = ["name", "image", "ports", "containerPort", "protocol", "env", "value", "containers", "initContainers", "volumes",
         "tolerations", "key", "finalizers", "labels", "annotations", "data", "resources", "requests", "limits", "selector",
         "matchLabels", "template", "spec", "metadata", "status", "conditions", "type", "items", "id", "tags", "pairs",
         "a", "b", "config", "free", "ownerReferences", "uid", "securityContext", "nodeSelector", "port", "a.b/c", "x/y",
         "volumeMounts", "mountPath", "clusterIPs", "strategy", "rollingUpdate", "replicas", "uid", "generation"]
SCALARS = (st.none() | st.booleans() | st.integers(-3, 300) | st.sampled_from([1.0, 0.5, float("nan"), float("inf")])
           | st.sampled_from(["", "a", "TCP", "UDP", "app", "x/y", "a.b"]))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(NAMES), inner, max_size=4),
                    max_leaves=12)
EDITS = st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(NAMES), JSON, st.booleans()), max_size=6)
BASES: list[tuple[ResourceType, dict[str, Any]]] = [CASES[n] for n in ("defaulted pod", "pod with several containers", "service",
                                                                      "deployment", "configmap with dotted keys", "custom resource",
                                                                      "untyped resource")]


def _containers(value: Any) -> list[Any]:
    """Every dict and list in ``value``, depth first."""
    out = []
    stack = [value]
    while stack:
        v = stack.pop()
        if type(v) is dict:
            out.append(v)
            stack.extend(reversed(list(v.values())))
        elif type(v) is list:
            out.append(v)
            stack.extend(reversed(v))
    return out


def edited(base: dict[str, Any], edits: list[tuple[int, str, Any, bool]]) -> dict[str, Any]:
    """``base`` with random values set into its dicts or appended to its lists."""
    obj = copy.deepcopy(base)
    for where, name, value, into_list in edits:
        places = [c for c in _containers(obj) if (type(c) is list) == into_list] or [obj]
        place = places[where % len(places)]
        if type(place) is list:
            place.append(copy.deepcopy(value))
        else:
            place[name] = copy.deepcopy(value)
    if type(obj.get("metadata")) is not dict:
        obj["metadata"] = {"name": "x"}
    return obj


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from(BASES), edits=EDITS, subresource=st.sampled_from([None, None, "status"]))
def test_random_objects_match_the_reference(base: tuple[ResourceType, dict[str, Any]], edits: list[tuple[int, str, Any, bool]],
                                            subresource: str | None) -> None:
    rt, obj = base
    obj = edited(obj, edits)
    if mf._decode_live_or_new(None, obj["metadata"].get("managedFields"), ignore_new=bool(subresource)):
        return  # valid entries: an update, not the create path
    assert_same_as_reference(rt, obj, subresource)
