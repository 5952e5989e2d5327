"""A DaemonSet's ``deprecated.daemonset.template.generation`` annotation, as Kubernetes' strategy keeps it.

Kubernetes sets it on create (1, or a larger value the creator gave), carries it over on
every update (a client cannot change it) and adds one when an update changes
``spec.template`` -- while ``metadata.generation`` grows with every spec change. The
DaemonSet controller labels its pods ``pod-template-generation`` with it. First the
strategy's rules on plain objects, then through the real server with one simulated node.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest

from podlife.registry.workloads import TEMPLATE_GENERATION_ANNOTATION, ReplicatedStrategy, daemon_set_template_generation

from .cluster_harness import PodlifeProcess, require_tool, wait_for

DAEMON_SETS = "/apis/apps/v1/namespaces/default/daemonsets"


def daemon_set(name: str = "agent", image: str = "nginx:1.27", annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "default", "generation": 1}
    if annotations is not None:
        meta["annotations"] = annotations
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": meta,
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"terminationGracePeriodSeconds": 1,
                                           "containers": [{"name": "app", "image": image}]}}}}


def created(obj: dict[str, Any]) -> dict[str, Any]:
    strategy = ReplicatedStrategy("DaemonSet")
    strategy.prepare_for_create(obj)
    strategy.default(obj)
    return obj


def updated(new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    strategy = ReplicatedStrategy("DaemonSet")
    strategy.prepare_for_update(new, old)
    strategy.default_update(new, old)
    return new


def annotation(obj: dict[str, Any]) -> str | None:
    return (obj["metadata"].get("annotations") or {}).get(TEMPLATE_GENERATION_ANNOTATION)


# --------------------------------------------------------------------------- the strategy


@pytest.mark.parametrize(("given", "kept"), [(None, "1"), ("0", "1"), ("-4", "1"), ("7", "7"), ("+07", "7")])
def test_create_sets_the_annotation(given: str | None, kept: str) -> None:
    obj = created(daemon_set(annotations=None if given is None else {TEMPLATE_GENERATION_ANNOTATION: given, "x": "y"}))
    assert annotation(obj) == kept
    assert ReplicatedStrategy("DaemonSet").validate(obj) == []


@pytest.mark.parametrize("value", ["abc", "1.5", "", "99999999999999999999"])
def test_a_value_that_is_no_int64_is_invalid(value: str) -> None:
    obj = created(daemon_set(annotations={TEMPLATE_GENERATION_ANNOTATION: value}))
    errs = ReplicatedStrategy("DaemonSet").validate(obj)
    assert [e.field for e in errs] == [f"metadata.annotations[{TEMPLATE_GENERATION_ANNOTATION}]"]


def test_only_a_template_change_counts() -> None:
    old = created(daemon_set())
    new = copy.deepcopy(old)
    new["spec"]["updateStrategy"] = {"type": "OnDelete"}
    assert annotation(updated(new, old)) == "1"
    newer = copy.deepcopy(new)
    newer["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.28"
    assert annotation(updated(newer, new)) == "2"


def test_an_update_cannot_set_or_drop_it() -> None:
    old = created(daemon_set(annotations={TEMPLATE_GENERATION_ANNOTATION: "4"}))
    forged = copy.deepcopy(old)
    forged["metadata"]["annotations"][TEMPLATE_GENERATION_ANNOTATION] = "40"
    assert annotation(updated(forged, old)) == "4"
    dropped = copy.deepcopy(old)
    del dropped["metadata"]["annotations"]
    assert annotation(updated(dropped, old)) == "4"


def test_an_undefaulted_put_of_the_same_template_is_no_change() -> None:
    old = created(daemon_set())
    assert annotation(updated(daemon_set(), old)) == "1"  # the PUT lacks what defaulting added


def test_status_writes_keep_it() -> None:
    old = created(daemon_set(annotations={TEMPLATE_GENERATION_ANNOTATION: "3"}))
    new = copy.deepcopy(old)
    new["metadata"]["annotations"] = {}
    new["status"] = {"desiredNumberScheduled": 1}
    merged = ReplicatedStrategy("DaemonSet").prepare_for_status_update(new, old)
    assert annotation(merged) == "3" and merged["status"]["desiredNumberScheduled"] == 1
    assert new["metadata"]["annotations"] == {}  # the request's own metadata is not changed


def test_a_daemon_set_stored_without_it_counts_its_generation() -> None:
    old = daemon_set()
    old["metadata"]["generation"] = 5
    assert daemon_set_template_generation(old) == 5


def test_other_kinds_get_no_annotation() -> None:
    obj = daemon_set()
    obj["kind"] = "ReplicaSet"
    strategy = ReplicatedStrategy("ReplicaSet")
    strategy.prepare_for_create(obj)
    assert annotation(obj) is None


# --------------------------------------------------------------------------- through the server


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    proc = PodlifeProcess(tmp_path_factory.mktemp("dsgen") / "data", "--nodes", "0", "--sim-nodes", "1",
                          kubectl=require_tool("kubectl")).start()
    try:
        yield proc
    finally:
        proc.stop()


def get_ds(sim: PodlifeProcess, name: str) -> dict[str, Any]:
    status, body = sim.http("GET", f"{DAEMON_SETS}/{name}")
    assert status == 200, body
    return body


def merge_patch(sim: PodlifeProcess, name: str, patch: dict[str, Any]) -> dict[str, Any]:
    status, body = sim.http("PATCH", f"{DAEMON_SETS}/{name}", patch, content_type="application/merge-patch+json")
    assert status == 200, body
    return body


def pod_generations(sim: PodlifeProcess, name: str) -> set[str]:
    pods = sim.kubectl_json("get", "pods", "-l", f"app={name}")["items"]
    return {p["metadata"]["labels"].get("pod-template-generation", "") for p in pods
            if not p["metadata"].get("deletionTimestamp")}


@pytest.mark.e2e
def test_generation_and_template_generation(sim: PodlifeProcess) -> None:
    manifest = daemon_set()
    del manifest["metadata"]["generation"], manifest["metadata"]["namespace"]
    sim.kubectl("create", "-f", "-", input=json.dumps(manifest))
    ds = get_ds(sim, "agent")
    assert ds["metadata"]["generation"] == 1 and annotation(ds) == "1"
    wait_for(lambda: pod_generations(sim, "agent") == {"1"}, what="the daemon pod labelled with template generation 1")

    ds = merge_patch(sim, "agent", {"spec": {"updateStrategy": {"rollingUpdate": {"maxUnavailable": 2}}}})
    assert ds["metadata"]["generation"] == 2 and annotation(ds) == "1"  # no template change

    ds = merge_patch(sim, "agent", {"metadata": {"annotations": {TEMPLATE_GENERATION_ANNOTATION: "9"}}})
    assert ds["metadata"]["generation"] == 2 and annotation(ds) == "1"  # not the client's to set

    ds = merge_patch(sim, "agent", {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:1.28"}]}}}})
    assert ds["metadata"]["generation"] == 3 and annotation(ds) == "2"  # Kubernetes: the previous template generation + 1
    assert annotation(get_ds(sim, "agent")) == "2"
    wait_for(lambda: pod_generations(sim, "agent") == {"2"}, what="the rolled pod labelled with template generation 2")


@pytest.mark.e2e
def test_apply_of_an_unchanged_manifest_changes_nothing(sim: PodlifeProcess) -> None:
    manifest = daemon_set("steady")
    del manifest["metadata"]["generation"], manifest["metadata"]["namespace"]
    sim.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    first = get_ds(sim, "steady")
    sim.kubectl("replace", "-f", "-", input=json.dumps(manifest))  # an undefaulted PUT of the same template
    again = get_ds(sim, "steady")
    assert again["metadata"]["generation"] == first["metadata"]["generation"] == 1
    assert annotation(again) == "1"


@pytest.mark.e2e
def test_a_bad_annotation_is_refused(sim: PodlifeProcess) -> None:
    manifest = daemon_set("bad", annotations={TEMPLATE_GENERATION_ANNOTATION: "soon"})
    del manifest["metadata"]["generation"], manifest["metadata"]["namespace"]
    status, body = sim.http("POST", DAEMON_SETS, manifest)
    assert status == 422 and TEMPLATE_GENERATION_ANNOTATION in body["message"], body
