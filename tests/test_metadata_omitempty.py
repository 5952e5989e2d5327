"""Empty metadata lists and maps are left out of stored objects, as Kubernetes' ``omitempty`` does.

``ObjectMeta``'s ``labels``, ``annotations``, ``ownerReferences``, ``finalizers`` and
``managedFields`` are not stored when a write empties them -- whether by a strategic
merge patch's ``$deleteFromPrimitiveList``, a merge patch, a JSON patch or a PUT -- for
every kind (a ConfigMap, a Pod, a custom resource). The pure rule
(:func:`podlife.registry.object_meta.drop_empty_metadata`), then real requests.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from podlife.controllers.job.tracking import JOB_TRACKING_FINALIZER, remove_finalizer_patch
from podlife.registry.object_meta import drop_empty_metadata

from .cluster_harness import PodlifeProcess, require_tool, wait_for

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
OWNER = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": "6a1c1a04-0000-4000-8000-000000000001"}

# --------------------------------------------------------------------------- the rule


def test_empty_collections_and_strings_are_dropped() -> None:
    meta: dict[str, Any] = {"name": "a", "generateName": "", "selfLink": None, "labels": {}, "annotations": None,
                            "ownerReferences": [], "finalizers": [], "managedFields": [], "deletionTimestamp": None,
                            "deletionGracePeriodSeconds": None}
    drop_empty_metadata(meta)
    assert meta == {"name": "a"}


def test_values_are_kept() -> None:
    meta: dict[str, Any] = {"name": "a", "generateName": "a-", "labels": {"k": "v"}, "annotations": {"k": ""},
                            "ownerReferences": [OWNER], "finalizers": ["x/y"], "deletionTimestamp": "2026-01-01T00:00:00Z",
                            "deletionGracePeriodSeconds": 0, "generation": 1}
    before = copy.deepcopy(meta)
    drop_empty_metadata(meta)
    assert meta == before  # a zero grace period is a value (a pointer in Go)


def test_values_of_the_wrong_type_are_left_to_validation() -> None:
    meta: dict[str, Any] = {"name": "a", "labels": [], "finalizers": {}}
    drop_empty_metadata(meta)
    assert meta == {"name": "a", "labels": [], "finalizers": {}}


# --------------------------------------------------------------------------- real requests


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    # without the Job controller, which would take its finalizer off the pod of the test below itself
    proc = PodlifeProcess(tmp_path_factory.mktemp("omitempty") / "data", "--nodes", "0", "--controllers", "*,-job-controller",
                          kubectl=require_tool("kubectl")).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def owner(api: PodlifeProcess) -> dict:
    """A reference to an existing object (the garbage collector deletes dependents of missing owners)."""
    uid = make_configmap(api, "owner")["metadata"]["uid"]
    return {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}


def make_configmap(api: PodlifeProcess, name: str, **meta: Any) -> dict:
    status, body = api.http("POST", CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                                 "metadata": {"name": name, **meta}, "data": {"k": "v"}})
    assert status == 201, body
    return body


def stored(api: PodlifeProcess, path: str) -> dict:
    status, body = api.http("GET", path)
    assert status == 200, body
    return body["metadata"]


PATCHES: list[tuple[str, str, Any]] = [
    ("strategic", "application/strategic-merge-patch+json",
     {"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/a"]}}),
    ("merge", "application/merge-patch+json",
     {"metadata": {"finalizers": [], "labels": {"app": None}, "annotations": {"note": None}, "ownerReferences": []}}),
    ("json", "application/json-patch+json",
     [{"op": "remove", "path": "/metadata/finalizers/0"}, {"op": "remove", "path": "/metadata/labels/app"},
      {"op": "remove", "path": "/metadata/annotations/note"}, {"op": "remove", "path": "/metadata/ownerReferences/0"}]),
]


@pytest.mark.e2e
@pytest.mark.parametrize(("name", "content_type", "patch"), PATCHES, ids=[p[0] for p in PATCHES])
def test_a_patch_that_empties_metadata_leaves_no_field(api: PodlifeProcess, owner: dict, name: str, content_type: str,
                                                       patch: Any) -> None:
    cm = f"patched-{name}"
    make_configmap(api, cm, labels={"app": "x"}, annotations={"note": "n"}, ownerReferences=[owner],
                   finalizers=["example.com/a"])
    if name == "strategic":  # the strategic patch empties the finalizers; the rest by a second one
        status, body = api.http("PATCH", f"{CONFIGMAPS}/{cm}", patch, content_type=content_type)
        assert status == 200, body
        assert "finalizers" not in body["metadata"]
        patch = {"metadata": {"labels": {"app": None}, "annotations": {"note": None},
                              "ownerReferences": [{"uid": owner["uid"], "$patch": "delete"}]}}
    status, body = api.http("PATCH", f"{CONFIGMAPS}/{cm}", patch, content_type=content_type)
    assert status == 200, body
    for meta in (body["metadata"], stored(api, f"{CONFIGMAPS}/{cm}")):  # the answer and the stored object
        assert not {"finalizers", "labels", "annotations", "ownerReferences"} & set(meta), meta


@pytest.mark.e2e
def test_put_and_create_with_empty_metadata_store_none(api: PodlifeProcess) -> None:
    created = make_configmap(api, "put-empty", labels={}, annotations={}, finalizers=[], ownerReferences=[])
    assert not {"finalizers", "labels", "annotations", "ownerReferences"} & set(created["metadata"])
    current = dict(created, metadata=dict(created["metadata"], finalizers=["example.com/b"], labels={"a": "b"}))
    status, body = api.http("PUT", f"{CONFIGMAPS}/put-empty", current)
    assert status == 200 and body["metadata"]["finalizers"] == ["example.com/b"], body
    emptied = dict(body, metadata=dict(body["metadata"], finalizers=[], labels={}))
    status, body = api.http("PUT", f"{CONFIGMAPS}/put-empty", emptied)
    assert status == 200, body
    assert not {"finalizers", "labels"} & set(body["metadata"]), body["metadata"]
    # an empty list where there is none is no change at all: the resourceVersion stays
    again = dict(body, metadata=dict(body["metadata"], finalizers=[], annotations={}))
    status, same = api.http("PUT", f"{CONFIGMAPS}/put-empty", again)
    assert status == 200 and same["metadata"]["resourceVersion"] == body["metadata"]["resourceVersion"], same


@pytest.mark.e2e
def test_watch_shows_the_object_without_the_emptied_list(api: PodlifeProcess) -> None:
    created = make_configmap(api, "watched", finalizers=["example.com/w"])
    rv = created["metadata"]["resourceVersion"]
    status, _ = api.http("PATCH", f"{CONFIGMAPS}/watched",
                         {"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/w"]}},
                         content_type="application/strategic-merge-patch+json")
    assert status == 200
    events = api.watch_events(f"{CONFIGMAPS}?watch=1&resourceVersion={rv}&timeoutSeconds=1&fieldSelector=metadata.name=watched")
    modified = [e for e in events if e["type"] == "MODIFIED"]
    assert modified and "finalizers" not in modified[0]["object"]["metadata"], events


@pytest.mark.e2e
def test_reset_managed_fields_leaves_none(api: PodlifeProcess) -> None:
    """An empty list keeps the entries (a client unaware of them must not wipe them); ``[{}]`` resets them."""
    api.kubectl("create", "configmap", "managed", "--from-literal=k=v")
    entries = stored(api, f"{CONFIGMAPS}/managed").get("managedFields")
    assert entries
    status, body = api.http("PATCH", f"{CONFIGMAPS}/managed", {"metadata": {"managedFields": []}},
                            content_type="application/merge-patch+json")
    assert status == 200 and body["metadata"]["managedFields"] == entries, body
    status, body = api.http("PATCH", f"{CONFIGMAPS}/managed", {"metadata": {"managedFields": [{}]}},
                            content_type="application/merge-patch+json")
    assert status == 200, body
    assert "managedFields" not in body["metadata"] and "managedFields" not in stored(api, f"{CONFIGMAPS}/managed")


@pytest.mark.e2e
def test_job_tracking_finalizer_removal_patch(api: PodlifeProcess) -> None:
    """The Job controller's one strategic patch: the pod's only finalizer goes with its list; a wrong uid is a 409."""
    pods = "/api/v1/namespaces/default/pods"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "tracked", "finalizers": [JOB_TRACKING_FINALIZER]},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    status, created = api.http("POST", pods, pod)
    assert status == 201, created
    strategic = "application/strategic-merge-patch+json"
    status, body = api.http("PATCH", f"{pods}/tracked", remove_finalizer_patch("00000000-0000-4000-8000-000000000000"),
                            content_type=strategic)
    assert status == 409 and "Precondition failed: UID" in body["message"], body
    assert stored(api, f"{pods}/tracked")["finalizers"] == [JOB_TRACKING_FINALIZER]
    status, body = api.http("PATCH", f"{pods}/tracked", remove_finalizer_patch(created["metadata"]["uid"]),
                            content_type=strategic)
    assert status == 200, body
    assert "finalizers" not in body["metadata"] and "finalizers" not in stored(api, f"{pods}/tracked")


@pytest.mark.e2e
def test_custom_resources_too(api: PodlifeProcess) -> None:
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.example.com"},
           "spec": {"group": "example.com", "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                    "versions": [{"name": "v1", "served": True, "storage": True,
                                  "schema": {"openAPIV3Schema": {"type": "object",
                                                                 "x-kubernetes-preserve-unknown-fields": True}}}]}}
    status, body = api.http("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    assert status == 201, body
    widgets = "/apis/example.com/v1/namespaces/default/widgets"
    widget = {"apiVersion": "example.com/v1", "kind": "Widget",
              "metadata": {"name": "w", "finalizers": ["example.com/keep"], "labels": {}}}

    def create() -> dict:
        status, body = api.http("POST", widgets, widget)
        return body if status == 201 else {}

    created = wait_for(create, what="the CRD to be served")
    assert "labels" not in created["metadata"]
    status, body = api.http("PATCH", f"{widgets}/w", [{"op": "remove", "path": "/metadata/finalizers/0"}],
                            content_type="application/json-patch+json")
    assert status == 200, body
    assert "finalizers" not in body["metadata"] and "finalizers" not in stored(api, f"{widgets}/w")
