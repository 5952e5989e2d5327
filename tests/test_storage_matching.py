"""The claim-to-volume match every storage component shares (``podlife.machinery.storage``).

Pure functions, so plain tests: which volume ``find_matching_volume`` picks (smallest fit, pre-binding,
class, modes, selector, node affinity, delayed binding), why a named volume cannot serve a claim, and how
claims, classes and pods are read.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from podlife.machinery.storage import (
    ANN_BETA_STORAGE_CLASS, ANN_DEFAULT_CLASS, claim_class, claim_mismatch, claim_ref, default_class,
    find_matching_volume, is_claim_bound, pod_claim_names, volume_admits_node,
)


def claim(name: str = "data", *, size: str = "1Gi", modes: tuple[str, ...] = ("ReadWriteOnce",),
          cls: str | None = "fast", selector: dict[str, Any] | None = None, mode: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"accessModes": list(modes), "resources": {"requests": {"storage": size}}}
    if cls is not None:
        spec["storageClassName"] = cls
    if selector is not None:
        spec["selector"] = selector
    if mode is not None:
        spec["volumeMode"] = mode
    return {"metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "resourceVersion": "7"}, "spec": spec}


def volume(name: str, *, size: str = "1Gi", modes: tuple[str, ...] = ("ReadWriteOnce",), cls: str = "fast",
           phase: str = "Available", labels: dict[str, str] | None = None, node: str | None = None,
           claim_ref: dict[str, Any] | None = None, mode: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"capacity": {"storage": size}, "accessModes": list(modes), "storageClassName": cls}
    if node is not None:
        spec["nodeAffinity"] = {"required": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}
    if claim_ref is not None:
        spec["claimRef"] = claim_ref
    if mode is not None:
        spec["volumeMode"] = mode
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": spec, "status": {"phase": phase}}


def node(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}}


def picked(*args: Any, **kwargs: Any) -> str | None:
    found = find_matching_volume(*args, **kwargs)
    return None if found is None else found["metadata"]["name"]


def test_the_smallest_volume_that_fits_wins() -> None:
    volumes = [volume("big", size="10Gi"), volume("small", size="2Gi"), volume("tiny", size="512Mi")]
    assert picked(claim(size="1Gi"), volumes) == "small"


def test_a_volume_of_another_class_mode_or_phase_is_not_picked() -> None:
    c = claim()
    assert picked(c, [volume("other", cls="slow")]) is None
    assert picked(c, [volume("rox", modes=("ReadOnlyMany",))]) is None
    assert picked(c, [volume("block", mode="Block")]) is None
    assert picked(c, [volume("released", phase="Released")]) is None
    assert picked(c, [volume("taken", claim_ref={"namespace": "ns", "name": "other"})]) is None
    # a volume offering more access modes than asked serves the claim
    assert picked(c, [volume("rwx", modes=("ReadWriteOnce", "ReadWriteMany"))]) == "rwx"


def test_the_selector_filters_by_label() -> None:
    c = claim(selector={"matchLabels": {"tier": "gold"}})
    volumes = [volume("plain", size="1Gi"), volume("gold", size="5Gi", labels={"tier": "gold"})]
    assert picked(c, volumes) == "gold"


def test_a_volume_pre_bound_to_the_claim_wins_over_a_smaller_free_one() -> None:
    c = claim()
    ref = {"namespace": "ns", "name": "data"}
    volumes = [volume("free", size="1Gi"), volume("mine", size="5Gi", phase="Available", claim_ref=ref)]
    assert picked(c, volumes) == "mine"
    # pre-bound: the class is not compared (Kubernetes binds what the admin reserved), the size is
    assert picked(c, [volume("reserved", cls="slow", claim_ref=ref)]) == "reserved"
    assert picked(c, [volume("too-small", size="100Mi", claim_ref=ref)]) is None
    # a ref to another incarnation of the claim (other uid) does not count
    stale = volume("stale", size="5Gi", claim_ref={**ref, "uid": "old"})
    assert picked(c, [stale]) is None


def test_delayed_binding_without_a_node_considers_only_pre_bound_volumes() -> None:
    c = claim()
    assert picked(c, [volume("free")], delay_binding=True) is None
    ref = volume("mine", claim_ref={"namespace": "ns", "name": "data", "uid": "uid-data"})
    assert picked(c, [ref], delay_binding=True) == "mine"


def test_with_a_node_only_volumes_it_admits() -> None:
    volumes = [volume("on-a", node="a"), volume("on-b", node="b", size="2Gi"), volume("anywhere", size="3Gi")]
    assert picked(claim(), volumes, node=node("b")) == "on-b"
    assert picked(claim(), volumes, node=node("c")) == "anywhere"
    assert picked(claim(), volumes, node=node("b"), excluded=frozenset({"on-b"})) == "anywhere"
    assert volume_admits_node(volume("on-a", node="a"), node("a"))
    assert not volume_admits_node(volume("on-a", node="a"), node("b"))


@given(st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=12), st.integers(min_value=1, max_value=64))
def test_the_pick_is_the_smallest_sufficient_size(sizes: list[int], wanted: int) -> None:
    volumes = [volume(f"v{i}", size=f"{s}Gi") for i, s in enumerate(sizes)]
    name = picked(claim(size=f"{wanted}Gi"), volumes)
    fitting = [s for s in sizes if s >= wanted]
    if not fitting:
        assert name is None
    else:
        assert name is not None and sizes[int(name[1:])] == min(fitting)


def test_why_a_named_volume_cannot_serve_a_claim() -> None:
    assert claim_mismatch(claim(size="2Gi"), volume("v", size="1Gi")) == "requested PV is too small"
    assert claim_mismatch(claim(), volume("v", cls="slow")) == "storageClassName does not match"
    assert claim_mismatch(claim(), volume("v", mode="Block")) == "incompatible volumeMode"
    assert claim_mismatch(claim(modes=("ReadWriteMany",)), volume("v")) == "incompatible accessMode"
    assert claim_mismatch(claim(), volume("v")) is None


def test_reading_claims_classes_and_pods() -> None:
    beta = claim(cls="fast")
    beta["metadata"]["annotations"] = {ANN_BETA_STORAGE_CLASS: "old"}
    assert claim_class(beta) == "old" and claim_class(claim(cls=None)) == ""
    assert claim_ref(claim())["uid"] == "uid-data" and claim_ref(claim())["kind"] == "PersistentVolumeClaim"
    bound = {**claim(), "status": {"phase": "Bound"}}
    assert not is_claim_bound(bound)
    bound["spec"]["volumeName"] = "pv"
    assert is_claim_bound(bound)
    classes = [{"metadata": {"name": n, "creationTimestamp": t, "annotations": {ANN_DEFAULT_CLASS: d}}}
               for n, t, d in [("a", "2026-01-01T00:00:00Z", "true"), ("b", "2026-02-01T00:00:00Z", "true"),
                               ("c", "2026-03-01T00:00:00Z", "false")]]
    found = default_class(classes)
    assert found is not None and found["metadata"]["name"] == "b"
    assert default_class(classes[2:]) is None
    pod = {"metadata": {"name": "web"}, "spec": {"volumes": [
        {"name": "cfg", "configMap": {"name": "x"}}, {"name": "data", "persistentVolumeClaim": {"claimName": "d"}},
        {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}]}}
    assert pod_claim_names(pod) == ["d", "web-scratch"]
