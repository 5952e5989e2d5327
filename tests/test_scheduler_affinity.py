"""InterPodAffinity (and the shared topology index): Kubernetes' rules, array and per-node forms agreeing.

Unit tests drive a real :class:`Scheduler` (no API server: ``client`` None) whose
profile lists the plugin explicitly, add nodes and pods to its cache, and ask
``_find_node`` -- the whole filter/score path, array or per-node. A twin whose
NodeResourcesFit has no array form takes the per-node path (``filter``/``score``
node by node) and must decide the same. The index's incremental counts are
checked against a full recount after random charges, node removals and relabels.
The end-to-end test runs ``podlife up`` with simulated nodes and ``kubectl``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from podlife.client.base import Obj
from podlife.scheduler import FitError, NodeInfo, NodeResourcesFit, PodInfo, Scheduler
from podlife.scheduler.columns import NodeColumns
from podlife.scheduler.interpod_affinity import (ERR_AFFINITY, ERR_ANTI_AFFINITY, ERR_EXISTING_ANTI_AFFINITY,
                                                 InterPodAffinity)
from podlife.scheduler.node_resources import default_filters
from podlife.scheduler.plugins import FilterPlugin, ScorePlugin
from podlife.scheduler.profile import Profile
from podlife.scheduler.topology import Clause, PodQuery, TopologyIndex, parse_selector
from podlife.scheduler.topology_spread import PodTopologySpread

from .cluster_harness import PodlifeProcess, require_tool, running_podlife, wait_for

HOST = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"


# ---- helpers (shared with test_scheduler_spread) -------------------------------------------------


class PerNodeFit(NodeResourcesFit):
    """NodeResourcesFit without its array form: the scheduler then takes the per-node path for every pod."""

    def filter_mask(self, pod: PodInfo, columns: NodeColumns, rows: Any) -> np.ndarray | None:
        return None

    def score_array(self, pod: PodInfo, columns: NodeColumns, rows: Any) -> np.ndarray | None:
        return None


def node_obj(name: str, zone: str | None = None, **labels: str) -> Obj:
    all_labels = {HOST: name, **labels}
    if zone is not None:
        all_labels[ZONE] = zone
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": all_labels}, "spec": {},
            "status": {"allocatable": {"cpu": "32", "memory": "64Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def pod_info(name: str, labels: dict[str, str] | None = None, *, ns: str = "default", node: str = "",
             affinity: dict[str, Any] | None = None, spread: list[dict[str, Any]] | None = None,
             owner: dict[str, Any] | None = None, **spec: Any) -> PodInfo:
    body: dict[str, Any] = {"containers": [{"name": "app", "image": "x"}], **spec}
    if affinity:
        body["affinity"] = affinity
    if spread:
        body["topologySpreadConstraints"] = spread
    if node:
        body["nodeName"] = node
    meta: dict[str, Any] = {"name": name, "namespace": ns, "uid": f"uid-{ns}-{name}", "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [owner]
    return PodInfo({"metadata": meta, "spec": body})


def term(labels: dict[str, str], key: str = HOST, **extra: Any) -> dict[str, Any]:
    return {"labelSelector": {"matchLabels": labels}, "topologyKey": key, **extra}


def required(kind: str, *terms: dict[str, Any]) -> dict[str, Any]:
    return {kind: {"requiredDuringSchedulingIgnoredDuringExecution": list(terms)}}


def preferred(kind: str, *weighted: tuple[int, dict[str, Any]]) -> dict[str, Any]:
    return {kind: {"preferredDuringSchedulingIgnoredDuringExecution":
                   [{"weight": w, "podAffinityTerm": t} for w, t in weighted]}}


def scheduler(*plugins: FilterPlugin, per_node: bool = False, seed: int = 1) -> Scheduler:
    """A scheduler whose one profile is the default filters plus ``plugins`` (filters and scores)."""
    fit = PerNodeFit() if per_node else NodeResourcesFit()
    filters = [*(f for f in default_filters() if not isinstance(f, NodeResourcesFit)), fit, *plugins]
    scores: list[ScorePlugin] = [fit, *(p for p in plugins if isinstance(p, ScorePlugin))]
    profile = Profile("default-scheduler", filters=filters, scores=scores)
    return Scheduler(None, profiles=[profile], rng=random.Random(seed))  # type: ignore[arg-type]


def place(sched: Scheduler, pod: PodInfo) -> NodeInfo | FitError:
    """One scheduling decision, assumed on the chosen node as the scheduling loop does."""
    pod.cycle.clear()
    result = sched._find_node(pod)
    if isinstance(result, NodeInfo):
        sched.cache.assume(pod, result.name)
    return result


def outcome(result: NodeInfo | FitError) -> str:
    return result.name if isinstance(result, NodeInfo) else result.message


def zone_of(sched: Scheduler, name: str) -> str:
    return sched.cache.nodes[name].labels.get(ZONE, "")


def verdicts_agree(plugin: FilterPlugin, sched: Scheduler, pod: PodInfo) -> None:
    """filter_mask over every row equals filter() node by node, after one pre_filter."""
    pod.cycle.clear()
    assert plugin.applies(pod)
    plugin.pre_filter(pod)
    nodes = sched.cache.node_list
    mask = plugin.filter_mask(pod, sched.cache.columns, slice(0, len(nodes)))
    assert mask is not None
    rows = np.arange(len(nodes))[::-1].copy()
    fancy = plugin.filter_mask(pod, sched.cache.columns, rows)
    assert fancy is not None
    assert list(mask) == [plugin.filter(pod, n) is None for n in nodes]
    assert list(fancy) == list(mask[::-1])


# ---- required anti-affinity -----------------------------------------------------------------------


def test_anti_affinity_puts_replicas_on_distinct_nodes_and_the_extra_one_fits_nowhere() -> None:
    sched = scheduler(InterPodAffinity())
    for i in range(3):
        sched.cache.set_node(node_obj(f"n{i}"))
    anti = required("podAntiAffinity", term({"app": "web"}))
    chosen = [outcome(place(sched, pod_info(f"web-{i}", {"app": "web"}, affinity=anti))) for i in range(3)]
    assert sorted(chosen) == ["n0", "n1", "n2"]
    extra = place(sched, pod_info("web-3", {"app": "web"}, affinity=anti))
    assert isinstance(extra, FitError)
    assert extra.message == f"0/3 nodes are available: 3 {ERR_ANTI_AFFINITY}."
    # another app is not repelled
    assert isinstance(place(sched, pod_info("db", {"app": "db"})), NodeInfo)


def test_anti_affinity_by_zone_blocks_the_whole_zone() -> None:
    sched = scheduler(InterPodAffinity())
    for i, zone in enumerate("aabb"):
        sched.cache.set_node(node_obj(f"n{i}", zone))
    sched.cache.add_pod(pod_info("web-0", {"app": "web"}, node="n0"))
    anti = required("podAntiAffinity", term({"app": "web"}, ZONE))
    for i in range(3):
        result = place(sched, pod_info(f"x-{i}", {"app": "x"}, affinity=anti))
        assert zone_of(sched, outcome(result)) == "b"


def test_existing_pods_anti_affinity_repels_matching_pods_only() -> None:
    """Symmetry: a pod without any affinity may not join a pod whose anti-affinity matches it."""
    plugin = InterPodAffinity()
    sched = scheduler(plugin)
    for i in range(2):
        sched.cache.set_node(node_obj(f"n{i}"))
    loner = pod_info("loner", {"app": "loner"}, node="n0", affinity=required("podAntiAffinity", term({"app": "db"})))
    sched.cache.add_pod(loner)
    db = pod_info("db", {"app": "db"})
    assert plugin.applies(db)
    verdicts_agree(plugin, sched, db)
    status = plugin.filter(db, sched.cache.nodes["n0"])
    assert status is not None and status.reasons == (ERR_EXISTING_ANTI_AFFINITY,) and not status.unresolvable
    assert outcome(place(sched, db)) == "n1"
    other = pod_info("web", {"app": "web"})
    other.cycle.clear()
    plugin.pre_filter(other)
    assert plugin.filter(other, sched.cache.nodes["n0"]) is None
    # once the loner is gone, nothing repels, and pods without terms skip the plugin
    sched.cache.remove_pod(loner.key)
    assert plugin.filter(pod_info("db2", {"app": "db"}), sched.cache.nodes["n0"]) is None
    assert not plugin.applies(pod_info("plain", {"app": "db"}))


# ---- required affinity ------------------------------------------------------------------------------


def test_pod_affinity_colocates_in_the_domain_and_others_are_unresolvable() -> None:
    plugin = InterPodAffinity()
    sched = scheduler(plugin)
    for i, zone in enumerate("aabb"):
        sched.cache.set_node(node_obj(f"n{i}", zone))
    sched.cache.set_node(node_obj("bare"))  # no zone label
    sched.cache.add_pod(pod_info("cache", {"app": "cache"}, node="n2"))
    wants = required("podAffinity", term({"app": "cache"}, ZONE))
    for i in range(4):
        assert zone_of(sched, outcome(place(sched, pod_info(f"web-{i}", {"app": "web"}, affinity=wants)))) == "b"
    pod = pod_info("probe", {"app": "web"}, affinity=wants)
    verdicts_agree(plugin, sched, pod)
    status = plugin.filter(pod, sched.cache.nodes["n0"])
    assert status is not None and status.reasons == (ERR_AFFINITY,) and status.unresolvable
    # a pod in another namespace does not satisfy the term (the term's namespace is the pod's)
    lonely = pod_info("lonely", {"app": "web"}, ns="other", affinity=wants)
    result = place(sched, lonely)
    assert isinstance(result, FitError)
    assert result.message == f"0/5 nodes are available: 5 {ERR_AFFINITY}."


def test_first_pod_of_a_self_affine_group_goes_anywhere_the_key_exists() -> None:
    sched = scheduler(InterPodAffinity())
    sched.cache.set_node(node_obj("bare"))
    for i, zone in enumerate("ab"):
        sched.cache.set_node(node_obj(f"n{i}", zone))
    together = required("podAffinity", term({"app": "group"}, ZONE))
    first = outcome(place(sched, pod_info("g-0", {"app": "group"}, affinity=together)))
    assert first in ("n0", "n1")
    for i in range(1, 5):  # the rest follow the first into its zone
        assert outcome(place(sched, pod_info(f"g-{i}", {"app": "group"}, affinity=together))) == first
    # a pod that does not match its own term stays pending while nothing matches
    assert isinstance(place(sched, pod_info("o", {"app": "other"}, affinity=required(
        "podAffinity", term({"app": "nobody"}, ZONE)))), FitError)


def test_all_affinity_terms_must_be_met_by_the_same_pods() -> None:
    sched = scheduler(InterPodAffinity())
    for i in range(3):
        sched.cache.set_node(node_obj(f"n{i}"))
    sched.cache.add_pod(pod_info("a", {"app": "a"}, node="n0"))
    sched.cache.add_pod(pod_info("b", {"app": "b"}, node="n1"))
    sched.cache.add_pod(pod_info("ab", {"app": "a", "tier": "b"}, node="n2"))
    both = required("podAffinity", term({"app": "a"}), {"labelSelector": {"matchLabels": {"tier": "b"}},
                                                         "topologyKey": HOST})
    assert outcome(place(sched, pod_info("p", {}, affinity=both))) == "n2"


def test_namespaces_and_namespace_selector() -> None:
    plugin = InterPodAffinity()
    sched = scheduler(plugin)
    for i in range(3):
        sched.cache.set_node(node_obj(f"n{i}"))
    index = TopologyIndex.for_cache(sched.cache)
    index.set_namespace({"metadata": {"name": "team-a", "labels": {"team": "a"}}})
    index.set_namespace({"metadata": {"name": "team-b", "labels": {"team": "b"}}})
    sched.cache.add_pod(pod_info("cache-a", {"app": "cache"}, ns="team-a", node="n0"))
    sched.cache.add_pod(pod_info("cache-b", {"app": "cache"}, ns="team-b", node="n1"))
    by_name = required("podAffinity", term({"app": "cache"}, namespaces=["team-b"]))
    assert outcome(place(sched, pod_info("p1", ns="default", affinity=by_name))) == "n1"
    by_selector = required("podAffinity", term({"app": "cache"}, namespaceSelector={"matchLabels": {"team": "a"}}))
    assert outcome(place(sched, pod_info("p2", ns="default", affinity=by_selector))) == "n0"
    everywhere = required("podAntiAffinity", term({"app": "cache"}, namespaceSelector={}))
    assert outcome(place(sched, pod_info("p3", ns="default", affinity=everywhere))) == "n2"
    # existing pods' terms select the incoming pod's namespace by its labels
    sched.cache.add_pod(pod_info("guard", {"app": "guard"}, ns="default", node="n2", affinity=required(
        "podAntiAffinity", term({"app": "intruder"}, namespaceSelector={"matchLabels": {"team": "b"}}))))
    intruder_b = pod_info("i-b", {"app": "intruder"}, ns="team-b", affinity=required(
        "podAffinity", term({"app": "guard"}, namespaces=["default"])))
    assert isinstance(place(sched, intruder_b), FitError)
    intruder_a = pod_info("i-a", {"app": "intruder"}, ns="team-a", affinity=required(
        "podAffinity", term({"app": "guard"}, namespaces=["default"])))
    assert outcome(place(sched, intruder_a)) == "n2"


def test_match_label_keys_and_mismatch_label_keys() -> None:
    sched = scheduler(InterPodAffinity())
    for i in range(4):
        sched.cache.set_node(node_obj(f"n{i}"))
    # anti-affinity per version: replicas of v1 and v2 may share nodes, but not with their own version
    anti = required("podAntiAffinity", term({"app": "web"}, matchLabelKeys=["version"]))
    placed = {}
    for version in ("v1", "v2"):
        for i in range(2):
            pod = pod_info(f"{version}-{i}", {"app": "web", "version": version}, affinity=anti)
            placed[pod.name] = outcome(place(sched, pod))
    assert placed["v1-0"] != placed["v1-1"] and placed["v2-0"] != placed["v2-1"]
    # mismatchLabelKeys: only with pods of a different tenant on the node... as anti-affinity: keep others away
    sched2 = scheduler(InterPodAffinity())
    for i in range(2):
        sched2.cache.set_node(node_obj(f"m{i}"))
    sched2.cache.add_pod(pod_info("t1", {"tenant": "one"}, node="m0"))
    exclusive = required("podAntiAffinity", {"labelSelector": {"matchExpressions": [
        {"key": "tenant", "operator": "Exists"}]}, "topologyKey": HOST, "mismatchLabelKeys": ["tenant"]})
    assert outcome(place(sched2, pod_info("t2", {"tenant": "two"}, affinity=exclusive))) == "m1"


# ---- scores ---------------------------------------------------------------------------------------------


def test_preferred_affinity_and_anti_affinity_scores_normalized_as_kubernetes() -> None:
    plugin = InterPodAffinity()
    sched = scheduler(plugin)
    for i, zone in enumerate("abc"):
        sched.cache.set_node(node_obj(f"n{i}", zone))
    sched.cache.add_pod(pod_info("cache", {"app": "cache"}, node="n0"))
    sched.cache.add_pod(pod_info("noisy", {"app": "noisy"}, node="n1"))
    pod = pod_info("web", {"app": "web"}, affinity={
        **preferred("podAffinity", (8, term({"app": "cache"}, ZONE))),
        **preferred("podAntiAffinity", (4, term({"app": "noisy"}, ZONE)))})
    assert plugin.applies(pod)
    rows = np.arange(3)
    plugin.pre_score(pod, rows)
    raw = plugin.score_array(pod, sched.cache.columns, rows)
    assert raw is not None and list(raw) == [8, -4, 0]
    assert [plugin.score(pod, n) for n in sched.cache.node_list] == [8, -4, 0]
    # Kubernetes: 100 * (s - min) / (max - min), truncated
    assert list(plugin.normalize(pod, raw)) == [100, 0, int(100 * (4 / 12))]
    assert outcome(place(sched, pod)) == "n0"


def test_existing_pods_terms_score_the_incoming_pod() -> None:
    plugin = InterPodAffinity(hard_pod_affinity_weight=5)
    sched = scheduler(plugin)
    for i in range(3):
        sched.cache.set_node(node_obj(f"n{i}"))
    # a pod on n0 requires affinity to app=web (hard weight 5 for web pods there),
    # a pod on n1 prefers web pods (weight 3), a pod on n2 prefers them away (weight 2)
    sched.cache.add_pod(pod_info("a", {"x": "a"}, node="n0", affinity=required("podAffinity", term({"app": "web"}))))
    sched.cache.add_pod(pod_info("b", {"x": "b"}, node="n1", affinity=preferred("podAffinity", (3, term({"app": "web"})))))
    sched.cache.add_pod(pod_info("c", {"x": "c"}, node="n2",
                                 affinity=preferred("podAntiAffinity", (2, term({"app": "web"})))))
    web = pod_info("web", {"app": "web"})
    assert plugin.applies(web)
    web.cycle.clear()
    plugin.pre_score(web, np.arange(3))
    assert [plugin.score(web, n) for n in sched.cache.node_list] == [5, 3, -2]
    ignoring = InterPodAffinity(ignore_preferred_terms_of_existing_pods=True)
    sched2 = scheduler(ignoring)
    for info, node_name in list(sched.cache.pods.values()):
        sched2.cache.set_node(node_obj(node_name))
        sched2.cache.add_pod(info)
    web.cycle.clear()
    ignoring.pre_score(web, np.arange(3))
    assert [ignoring.score(web, n) for n in sched2.cache.node_list] == [0, 0, 0]  # Kubernetes skips scoring


# ---- agreement, random scenarios, the index ---------------------------------------------------------------


def _random_affinity(rng: random.Random) -> dict[str, Any] | None:
    apps = ["a", "b", "c"]
    keys = [HOST, ZONE, "rack"]
    choice = rng.random()
    if choice < 0.3:
        return None
    out: dict[str, Any] = {}
    if rng.random() < 0.5:
        out.update(required(rng.choice(["podAffinity", "podAntiAffinity"]),
                            term({"app": rng.choice(apps)}, rng.choice(keys))))
    if rng.random() < 0.5:
        out.setdefault("podAntiAffinity", {}).update(preferred(
            "podAntiAffinity", (rng.randint(1, 100), term({"app": rng.choice(apps)}, rng.choice(keys))))["podAntiAffinity"])
    if rng.random() < 0.5:
        out.setdefault("podAffinity", {}).update(preferred(
            "podAffinity", (rng.randint(1, 100), term({"app": rng.choice(apps)}, rng.choice(keys))))["podAffinity"])
    return out or None


def _random_cluster(rng: random.Random, scheds: list[Scheduler], nodes: int) -> None:
    for i in range(nodes):
        labels = {"rack": f"r{rng.randrange(4)}"} if rng.random() < 0.8 else {}
        obj = node_obj(f"n{i}", rng.choice(["a", "b", "c", None]), **labels)
        for s in scheds:
            s.cache.set_node(obj)


@pytest.mark.parametrize("seed", range(6))
def test_array_and_per_node_paths_decide_the_same(seed: int) -> None:
    rng = random.Random(seed)
    fast_plugin, slow_plugin = InterPodAffinity(), InterPodAffinity()
    fast, slow = scheduler(fast_plugin, seed=seed), scheduler(slow_plugin, per_node=True, seed=seed)
    _random_cluster(rng, [fast, slow], 12)
    for i in range(60):
        labels = {"app": rng.choice(["a", "b", "c"])}
        aff, ns = _random_affinity(rng), rng.choice(["default", "default", "x"])
        a, b = (pod_info(f"p{i}", labels, affinity=aff, ns=ns) for _ in range(2))
        if fast_plugin.applies(a):
            verdicts_agree(fast_plugin, fast, a)
        assert outcome(place(fast, a)) == outcome(place(slow, b))
        if rng.random() < 0.2 and fast.cache.pods:  # a pod goes away
            key = rng.choice(sorted(fast.cache.pods))
            fast.cache.remove_pod(key)
            slow.cache.remove_pod(key)
    assert fast.stats.array_searches and slow.stats.per_node_searches and not slow.stats.array_searches


def _recount(index: TopologyIndex, query: PodQuery) -> list[int]:
    rows = {n.name: i for i, n in enumerate(index.cache.node_list)}
    expected = [0] * len(rows)
    for info, node_name in index.cache.pods.values():
        if node_name in rows and query.matches(info):
            expected[rows[node_name]] += 1
    return expected


def test_incremental_index_equals_a_full_recount() -> None:
    rng = random.Random(7)
    sched = scheduler(InterPodAffinity(), PodTopologySpread())
    index = TopologyIndex.for_cache(sched.cache)
    queries = [PodQuery((Clause(frozenset(["default"]), parse_selector({"matchLabels": {"app": app}})),))
               for app in "ab"]
    queries.append(PodQuery((Clause(None, parse_selector({"matchExpressions": [
        {"key": "app", "operator": "In", "values": ["a", "c"]}]})),), skip_deleting=True))
    for q in queries[:1]:
        index.row_counts(q)  # counted from the start; the others are added later
    for i in range(20):
        sched.cache.set_node(node_obj(f"n{i}", rng.choice("ab")))
    anti = required("podAntiAffinity", term({"app": "a"}))
    for step in range(400):
        r = rng.random()
        if r < 0.55:
            pod = pod_info(f"p{step}", {"app": rng.choice("abc")}, ns=rng.choice(["default", "x"]),
                           affinity=anti if rng.random() < 0.3 else None)
            target = f"n{rng.randrange(25)}"  # some pods sit on nodes not (yet) known
            if rng.random() < 0.5:
                sched.cache.assume(pod, target)
            else:
                sched.cache.add_pod(pod_info(pod.name, pod.labels, ns=pod.namespace, node=target,
                                             affinity=anti if rng.random() < 0.3 else None))
        elif r < 0.85 and sched.cache.pods:
            sched.cache.remove_pod(rng.choice(sorted(sched.cache.pods)))
        elif r < 0.92:
            victim = f"n{rng.randrange(25)}"
            sched.cache.remove_node(victim)
        else:  # a new node or a relabel
            sched.cache.set_node(node_obj(f"n{rng.randrange(25)}", rng.choice("abc")))
        if step == 200:
            index.row_counts(queries[1])
            index.row_counts(queries[2])
        for q in queries[:1] + (queries[1:] if step >= 200 else []):
            assert list(index.row_counts(q)) == _recount(index, q), step
        # existing terms: carriers per row match the pods carrying the anti-affinity term
        carriers = [0] * len(sched.cache.node_list)
        rows = {n.name: i for i, n in enumerate(sched.cache.node_list)}
        terms_seen = set()
        for info, node_name in sched.cache.pods.values():
            if info.obj["spec"].get("affinity") and node_name in rows:
                carriers[rows[node_name]] += 1
            if info.obj["spec"].get("affinity"):
                terms_seen.add(info.namespace)
        found = index.terms["required-anti-affinity"]
        assert len(found) == len(terms_seen)  # one distinct term per namespace
        total = sum((index.term_row_counts("required-anti-affinity", t) for t in found),
                    np.zeros(len(carriers), dtype=np.int64))
        assert list(total) == carriers, step
    # domains follow node removal and relabels
    for key in (ZONE, HOST):
        domains = index.domains(key)
        values = [n.labels.get(key) for n in sched.cache.node_list]
        inverse = {v: k for k, v in domains.by_value.items()}
        assert [inverse[i] if i >= 0 else None for i in domains.ids] == values


def test_relabelled_node_moves_between_domains() -> None:
    sched = scheduler(InterPodAffinity())
    sched.cache.set_node(node_obj("n0", "a"))
    sched.cache.set_node(node_obj("n1", "b"))
    sched.cache.add_pod(pod_info("web", {"app": "web"}, node="n0"))
    anti = required("podAntiAffinity", term({"app": "web"}, ZONE))
    assert outcome(place(sched, pod_info("p0", {"app": "x"}, affinity=anti))) == "n1"
    sched.cache.remove_pod("default/p0")
    sched.cache.set_node(node_obj("n1", "a"))  # now in the web pod's zone
    assert isinstance(place(sched, pod_info("p1", {"app": "x"}, affinity=anti)), FitError)
    sched.cache.remove_node("n0")  # n1 moves to row 0; the web pod's node is gone
    assert outcome(place(sched, pod_info("p2", {"app": "x"}, affinity=anti))) == "n1"


# ---- end to end -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    with running_podlife(tmp_path_factory.mktemp("affinity") / "data", "--nodes", "0", "--sim-nodes", "3",
                         kubectl=require_tool("kubectl")) as proc:
        yield proc


def _create(cluster: PodlifeProcess, name: str, labels: dict[str, str], affinity: dict[str, Any]) -> None:
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
                "spec": {"terminationGracePeriodSeconds": 1, **({"affinity": affinity} if affinity else {}),
                         "containers": [{"name": "app", "image": "nginx:1.27"}]}}
    cluster.kubectl("create", "-f", "-", input=json.dumps(manifest))


def _node_of(cluster: PodlifeProcess, name: str) -> str:
    return str(cluster.kubectl_json("get", "pod", name).get("spec", {}).get("nodeName") or "")


@pytest.mark.e2e
def test_e2e_anti_affinity_and_affinity_with_kubectl(cluster: PodlifeProcess) -> None:
    anti = required("podAntiAffinity", term({"app": "e2e-web"}))
    for i in range(4):
        _create(cluster, f"e2e-web-{i}", {"app": "e2e-web"}, anti)
    nodes = [wait_for(lambda i=i: _node_of(cluster, f"e2e-web-{i}"), 60, what=f"e2e-web-{i} bound") for i in range(3)]
    assert len(set(nodes)) == 3

    def pending_reason() -> str:
        pod = cluster.kubectl_json("get", "pod", "e2e-web-3")
        conditions = {c["type"]: c for c in pod.get("status", {}).get("conditions") or []}
        return str(conditions.get("PodScheduled", {}).get("message") or "")
    message = wait_for(pending_reason, 60, what="e2e-web-3 unschedulable")
    assert message.startswith(f"0/3 nodes are available: 3 {ERR_ANTI_AFFINITY}."), message

    def described() -> str:
        out = cluster.kubectl("describe", "pod", "e2e-web-3").stdout
        return out if "FailedScheduling" in out else ""
    assert ERR_ANTI_AFFINITY in wait_for(described, 60, what="FailedScheduling event")
    # pod affinity: follows e2e-web-0 onto its node
    _create(cluster, "e2e-friend", {"app": "friend"}, required("podAffinity", term({"app": "e2e-web"})))
    friend = wait_for(lambda: _node_of(cluster, "e2e-friend"), 60, what="e2e-friend bound")
    assert friend in nodes
    # a pod whose affinity nothing matches yet waits, and is retried when a matching pod arrives
    _create(cluster, "e2e-follower", {"app": "follower"}, required("podAffinity", term({"app": "e2e-leader"})))

    def follower_reason() -> str:
        pod = cluster.kubectl_json("get", "pod", "e2e-follower")
        conditions = {c["type"]: c for c in pod.get("status", {}).get("conditions") or []}
        return str(conditions.get("PodScheduled", {}).get("message") or "")
    assert ERR_AFFINITY in wait_for(follower_reason, 60, what="e2e-follower unschedulable")
    _create(cluster, "e2e-leader", {"app": "e2e-leader"}, {})
    leader = wait_for(lambda: _node_of(cluster, "e2e-leader"), 60, what="e2e-leader bound")
    assert wait_for(lambda: _node_of(cluster, "e2e-follower"), 60, what="e2e-follower bound") == leader
    cluster.kubectl("delete", "pod", "e2e-friend", "e2e-follower", "e2e-leader",
                    *[f"e2e-web-{i}" for i in range(4)], "--wait=false")


def test_preemption_dry_run_judges_affinity_on_the_node_copy() -> None:
    """DefaultPreemption judges a detached copy of the node: the plugin finds its row by name, and sees
    the victims leave through the cache's listeners (then come back)."""
    from podlife.scheduler.preemption import Candidate, DefaultPreemption
    plugin = InterPodAffinity()
    preemption = DefaultPreemption(rng=random.Random(1))
    fit = NodeResourcesFit()
    profile = Profile("default-scheduler", filters=[*default_filters()[:-1], fit, plugin], scores=[fit, plugin],
                      post_filters=[preemption])
    sched = Scheduler(None, profiles=[profile], rng=random.Random(1))  # type: ignore[arg-type]
    sched.cache.set_node(node_obj("n0"))
    low = pod_info("low", {"app": "web"}, node="n0")
    sched.cache.add_pod(low)
    high = pod_info("high", {"app": "web"}, affinity=required("podAntiAffinity", term({"app": "web"})))
    high.priority = 1000
    result = place(sched, high)
    assert isinstance(result, FitError)
    high.cycle.clear()
    found = preemption.select_victims(high, sched.cache.nodes["n0"], [*profile.static_filters, fit, plugin], [])
    assert isinstance(found, Candidate) and [v.key for v in found.victims] == [low.key]
    index = TopologyIndex.for_cache(sched.cache)
    query = PodQuery((Clause(frozenset(["default"]), parse_selector({"matchLabels": {"app": "web"}})),))
    assert list(index.row_counts(query)) == [1]  # the dry run left the index as it was
