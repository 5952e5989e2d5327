"""The DaemonSet controller's pure parts: node eligibility, daemon pods, per-node and rolling decisions, status."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from podlife.controllers.daemonset.placement import (
    FITS,
    NO_FIT,
    Fit,
    TemplateFit,
    daemon_pod,
    node_name_affinity,
    target_node,
    template_generation,
    with_daemon_tolerations,
)
from podlife.controllers.daemonset.plan import (
    FailedPodBackoff,
    daemon_status,
    decide_node,
    history_to_delete,
    new_status,
    revision_data,
    rolling_update,
    scaled,
    status_changed,
    surge_and_unavailable,
)

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
HASH = "newhash"


def node(name: str, labels: dict[str, str] | None = None, taints: list[dict] | None = None,
         unschedulable: bool = False) -> dict:
    spec: dict[str, Any] = {"taints": taints} if taints else {}
    if unschedulable:
        spec["unschedulable"] = True
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": spec}


def pod(name: str, *, hash_: str = HASH, phase: str = "Running", ready: bool = True, created: int = 0,
        node_name: str = "n1", deleting: bool = False, ready_for: float = 3600) -> dict:
    meta: dict[str, Any] = {"name": name, "namespace": "default", "labels": {"controller-revision-hash": hash_},
                            "creationTimestamp": (NOW - timedelta(seconds=1000 - created)).isoformat()}
    if deleting:
        meta["deletionTimestamp"] = NOW.isoformat()
    conditions = [{"type": "Ready", "status": "True" if ready else "False",
                   "lastTransitionTime": (NOW - timedelta(seconds=ready_for)).isoformat()}]
    return {"metadata": meta, "spec": {"nodeName": node_name}, "status": {"phase": phase, "conditions": conditions}}


# --------------------------------------------------------------------------- placement


def test_plain_template_fits_every_node_even_cordoned_or_under_pressure() -> None:
    fit = TemplateFit({"containers": [{"name": "c", "image": "x"}]})
    assert fit.judge(node("a")) == FITS
    assert fit.judge(node("b", unschedulable=True, taints=[
        {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/disk-pressure", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}])) == FITS


def test_taints_keep_new_pods_off_and_no_execute_evicts() -> None:
    fit = TemplateFit({})
    assert fit.judge(node("a", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}])) == Fit(False, True)
    assert fit.judge(node("a", taints=[{"key": "k", "effect": "NoExecute"}])) == NO_FIT
    assert fit.judge(node("a", taints=[{"key": "k", "effect": "PreferNoSchedule"}])) == FITS
    # the not-ready NoSchedule taint is not among the automatic tolerations (only NoExecute)
    assert not fit.judge(node("a", taints=[{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}])).should_run
    tolerant = TemplateFit({"tolerations": [{"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"}]})
    assert tolerant.judge(node("a", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}])) == FITS
    assert not tolerant.judge(node("a", taints=[{"key": "k", "value": "w", "effect": "NoSchedule"}])).should_run
    everything = TemplateFit({"tolerations": [{"operator": "Exists"}]})
    assert everything.judge(node("a", taints=[{"key": "x", "effect": "NoExecute"}])) == FITS


def test_node_selector_affinity_and_node_name() -> None:
    by_selector = TemplateFit({"nodeSelector": {"disk": "ssd"}})
    assert by_selector.judge(node("a", {"disk": "ssd"})) == FITS
    assert by_selector.judge(node("a", {"disk": "hdd"})) == NO_FIT
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]},
                              {"key": "cores", "operator": "Gt", "values": ["4"]}]},
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["special"]}]}]}}}
    by_affinity = TemplateFit({"affinity": affinity})
    assert by_affinity.judge(node("a", {"zone": "z1", "cores": "8"})) == FITS
    assert by_affinity.judge(node("a", {"zone": "z1", "cores": "2"})) == NO_FIT
    assert by_affinity.judge(node("special")) == FITS
    empty_term = TemplateFit({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{}]}}}})
    assert empty_term.judge(node("a")) == NO_FIT
    named = TemplateFit({"nodeName": "b"})
    assert named.judge(node("a")) == NO_FIT and named.judge(node("b")) == FITS


def test_daemon_tolerations_added_once_and_network_for_host_network() -> None:
    plain = with_daemon_tolerations({"tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                                                      "effect": "NoExecute"}]})
    assert [t["key"] for t in plain].count("node.kubernetes.io/not-ready") == 1
    assert len(plain) == 6
    assert all(t["operator"] == "Exists" and "tolerationSeconds" not in t for t in plain)
    host = with_daemon_tolerations({"hostNetwork": True})
    assert {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists", "effect": "NoSchedule"} in host


def test_daemon_pod_is_pinned_labelled_and_named() -> None:
    ds: dict[str, Any] = {"metadata": {"name": "agent", "namespace": "ns", "uid": "u1", "generation": 3},
          "spec": {"template": {"metadata": {"labels": {"app": "agent"}}, "spec": {
              "containers": [{"name": "c", "image": "x"}],
              "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                  {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["old"]}]}]}},
                  "podAffinity": {"x": 1}}}}}}
    ref = {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "uid": "u1", "controller": True}
    made = daemon_pod(ds, ref, "n7", "h1", template_generation(ds))
    assert made["metadata"]["generateName"] == "agent-"
    assert made["metadata"]["labels"] == {"app": "agent", "controller-revision-hash": "h1", "pod-template-generation": "3"}
    assert made["metadata"]["ownerReferences"] == [ref]
    terms = made["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n7"]}]}]
    assert made["spec"]["affinity"]["podAffinity"] == {"x": 1}
    assert target_node(made) == "n7"
    assert target_node({"spec": {"nodeName": "bound", **made["spec"]}}) == "bound"
    # the template itself is left as it was
    assert ds["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"][0]["matchFields"][0]["values"] == ["old"]
    assert node_name_affinity(None, "x")["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]


# --------------------------------------------------------------------------- per node


def decide(fit: Fit, pods: list[dict] | None, surge: bool = False) -> tuple[bool, list[str], list[str]]:
    d = decide_node(fit, pods, surge=surge, hash_=HASH, generation=None, min_ready_seconds=0, now=NOW)
    return d.create, [p["metadata"]["name"] for p in d.delete], [p["metadata"]["name"] for p in d.failed]


def test_per_node_decisions() -> None:
    assert decide(FITS, None) == (True, [], [])
    assert decide(FITS, [pod("a")]) == (False, [], [])
    assert decide(NO_FIT, [pod("a"), pod("b", deleting=True)]) == (False, ["a"], [])
    assert decide(Fit(False, True), [pod("a")]) == (False, [], [])
    # the oldest stays, the others go; a pod being deleted still counts as present
    assert decide(FITS, [pod("young", created=5), pod("old", created=1), pod("mid", created=3)]) == \
        (False, ["mid", "young"], [])
    assert decide(FITS, [pod("gone", deleting=True)]) == (False, [], [])
    assert decide(FITS, [pod("f", phase="Failed"), pod("s", phase="Succeeded")]) == (False, ["s"], ["f"])


def test_surge_keeps_one_of_each_until_the_new_is_available() -> None:
    old, new = pod("old", hash_="old", created=1), pod("new", created=2, ready=False)
    assert decide(FITS, [old, new], surge=True) == (False, [], [])
    assert decide(FITS, [old, pod("new", created=2)], surge=True) == (False, ["old"], [])
    assert decide(FITS, [old, pod("new", created=2), pod("new2", created=3)], surge=True) == (False, ["new2", "old"], [])


# --------------------------------------------------------------------------- rolling update


def test_scaled_values_and_defaults() -> None:
    assert scaled("25%", 3) == 1 and scaled("50%", 3) == 2 and scaled(2, 10) == 2 and scaled(None, 5) == 0
    assert surge_and_unavailable({"spec": {"updateStrategy": {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}}},
                                 3) == (0, 1)
    assert surge_and_unavailable({"spec": {"updateStrategy": {"rollingUpdate": {"maxUnavailable": 0,
                                                                                "maxSurge": "100%"}}}}, 3) == (3, 0)


def step(node_pods: dict[str, list[dict]], *, surge: int = 0, unavailable: int = 1,
         fits: dict[str, Fit] | None = None) -> tuple[list[str], list[str]]:
    result = rolling_update(node_pods, fits or {n: FITS for n in node_pods}, max_surge=surge,
                            max_unavailable=unavailable, desired=len(node_pods), hash_=HASH, generation=None,
                            min_ready_seconds=0, now=NOW)
    return sorted(p["metadata"]["name"] for p in result.delete), sorted(result.create)


def test_rolling_update_without_surge_respects_max_unavailable() -> None:
    olds = {f"n{i}": [pod(f"old{i}", hash_="old", node_name=f"n{i}")] for i in range(3)}
    assert len(step(olds)[0]) == 1
    assert len(step(olds, unavailable=2)[0]) == 2
    # one node already replacing (no pod yet): nothing more goes
    assert step({**olds, "n9": []}) == ([], [])
    # an unavailable old pod is replaced at once, whatever the budget
    broken = {**olds, "n0": [pod("old0", hash_="old", ready=False)], "n9": []}
    assert step(broken) == (["old0"], [])
    done = {f"n{i}": [pod(f"new{i}", node_name=f"n{i}")] for i in range(3)}
    assert step(done) == ([], [])


def test_rolling_update_with_surge_creates_first() -> None:
    olds = {f"n{i}": [pod(f"old{i}", hash_="old", node_name=f"n{i}")] for i in range(3)}
    assert step(olds, surge=1, unavailable=0) == ([], ["n0"])
    assert step(olds, surge=2, unavailable=0) == ([], ["n0", "n1"])
    surged = {**olds, "n0": [pod("old0", hash_="old"), pod("new0", ready=False)]}
    assert step(surged, surge=1, unavailable=0) == ([], [])
    ready = {**olds, "n0": [pod("old0", hash_="old"), pod("new0")]}
    # the new pod is available: the old one goes, and the surge slot moves on to the next node
    assert step(ready, surge=1, unavailable=0) == (["old0"], ["n1"])
    unavailable_old = {**olds, "n1": [pod("old1", hash_="old", ready=False)]}
    assert "n1" in step(unavailable_old, surge=1, unavailable=0)[1]


# --------------------------------------------------------------------------- status and history


def test_status_counts() -> None:
    fits = {"a": FITS, "b": FITS, "c": FITS, "d": NO_FIT}
    node_pods = {"a": [pod("pa")], "b": [pod("pb", hash_="old", ready=False)], "d": [pod("pd")]}
    counts = daemon_status(fits, node_pods, hash_=HASH, generation=None, min_ready_seconds=0, now=NOW)
    assert counts == {"currentNumberScheduled": 2, "numberMisscheduled": 1, "desiredNumberScheduled": 3,
                      "numberReady": 1, "updatedNumberScheduled": 1, "numberAvailable": 1, "numberUnavailable": 2}
    slow = daemon_status({"a": FITS}, {"a": [pod("pa", ready_for=5)]}, hash_=HASH, generation=None,
                         min_ready_seconds=30, now=NOW)
    assert slow["numberReady"] == 1 and slow["numberAvailable"] == 0
    old = {"currentNumberScheduled": 2, "numberMisscheduled": 1, "desiredNumberScheduled": 3, "numberReady": 1,
           "updatedNumberScheduled": 1, "numberAvailable": 1, "numberUnavailable": 2, "observedGeneration": 4}
    assert not status_changed(old, counts, 4, True) and status_changed(old, counts, 5, True)
    assert not status_changed(old, counts, 5, False)
    zero = new_status({}, {**counts, "numberAvailable": 0}, 5, True)
    assert "numberAvailable" not in zero and zero["observedGeneration"] == 5 and zero["numberReady"] == 1


def test_revision_data_and_history_pruning() -> None:
    template = {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": []}}
    assert revision_data({"spec": {"template": template}}) == {"spec": {"template": {**template, "$patch": "replace"}}}
    assert "$patch" not in template

    def rev(n: int) -> dict:
        return {"metadata": {"name": f"r{n}", "labels": {"controller-revision-hash": f"h{n}"}}, "revision": n}

    old = [rev(n) for n in (5, 1, 3, 2, 4)]
    assert [r["revision"] for r in history_to_delete(old, 2, set())] == [1, 2, 3]
    assert [r["revision"] for r in history_to_delete(old, 2, {"h1"})] == [2, 3, 4]
    assert history_to_delete(old, 10, set()) == []


def test_failed_pod_backoff_doubles() -> None:
    backoff = FailedPodBackoff(initial=1, maximum=4)
    assert not backoff.in_backoff("k", 0)
    backoff.next("k", 0)
    assert backoff.in_backoff("k", 0.5) and not backoff.in_backoff("k", 1.5)
    backoff.next("k", 1.5)
    assert backoff.delay("k") == 2
    backoff.next("k", 4)
    backoff.next("k", 9)
    assert backoff.delay("k") == 4
    backoff.next("k", 100)  # long quiet: starts over
    assert backoff.delay("k") == 1
