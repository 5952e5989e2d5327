"""Prometheus ``/metrics`` on a real cluster: the API server's, the scheduler's and the kubelets'.

Two clusters of ``podlife up``: one with simulated nodes only (the API server and scheduler
metrics, and simulated nodes' pod startup), one with a real node running a busybox pod
(the kubelet's pod startup SLI and its own ``/metrics``). Everything is read through
``kubectl get --raw /metrics`` or HTTPS and parsed with prometheus_client's parser;
counters are compared before and after the requests that should move them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .cluster_harness import PodlifeProcess, kubelet_get, require_tool, running_podlife, wait_for

pytestmark = pytest.mark.e2e

Labels = dict[str, str]


def scrape(cluster: PodlifeProcess) -> dict[str, list[Any]]:
    """``kubectl get --raw /metrics``, parsed: samples by sample name."""
    text = cluster.kubectl("get", "--raw", "/metrics").stdout
    out: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def value(samples: dict[str, list[Any]], name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0 when there are none)."""
    return sum(s.value for s in samples.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items()))


def scrape_until(cluster: PodlifeProcess, ok: Callable[[dict[str, list[Any]]], bool], what: str) -> dict[str, list[Any]]:
    """Scrape again until ``ok`` holds for the samples; those samples."""
    def attempt() -> dict[str, list[Any]] | None:
        samples = scrape(cluster)
        return samples if ok(samples) else None
    return wait_for(attempt, 30, what=what)


def pod(name: str, **spec: Any) -> str:
    import json
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                       "spec": {"terminationGracePeriodSeconds": 1,
                                "containers": [{"name": name, "image": "busybox",
                                                "command": ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]}],
                                **spec}})


@pytest.fixture(scope="module")
def sim_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    with running_podlife(tmp_path_factory.mktemp("metrics-sim") / "data", "--nodes", "0", "--sim-nodes", "2",
                         kubectl=require_tool("kubectl")) as proc:
        yield proc


@pytest.fixture(scope="module")
def node_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    with running_podlife(tmp_path_factory.mktemp("metrics-node") / "data", "--nodes", "1",
                         kubectl=require_tool("kubectl")) as proc:
        yield proc


def test_metrics_parse_as_prometheus_text(sim_cluster: PodlifeProcess) -> None:
    answer = sim_cluster.request("GET", "/metrics")
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(answer.body.decode())}
    for name in ("apiserver_request", "apiserver_request_duration_seconds", "apiserver_current_inflight_requests",
                 "apiserver_longrunning_requests", "apiserver_storage_objects", "etcd_request_duration_seconds",
                 "scheduler_schedule_attempts", "scheduler_pending_pods", "scheduler_preemption_attempts",
                 "kubelet_pod_start_sli_duration_seconds", "kubelet_evictions"):
        assert name in families, name
    assert families["apiserver_request"].type == "counter"
    assert families["apiserver_request_duration_seconds"].type == "histogram"
    buckets = [s for s in families["apiserver_request_duration_seconds"].samples if s.name.endswith("_bucket")]
    first = {k: v for k, v in buckets[0].labels.items() if k != "le"}
    bounds = [s.labels["le"] for s in buckets if {k: v for k, v in s.labels.items() if k != "le"} == first]
    assert bounds[:3] == ["0.005", "0.025", "0.05"] and bounds[-2:] == ["60.0", "+Inf"]  # Kubernetes' buckets
    assert not any(n.endswith("_created") for n in families)


def test_request_counters_move_with_kubectl(sim_cluster: PodlifeProcess) -> None:
    before = scrape(sim_cluster)
    sim_cluster.kubectl("create", "configmap", "counted", "--from-literal=a=1")
    sim_cluster.kubectl("get", "configmaps")
    sim_cluster.kubectl("get", "configmap", "counted")
    sim_cluster.kubectl("delete", "configmap", "counted")
    after = scrape(sim_cluster)

    def moved(verb: str, scope: str, code: str) -> float:
        labels = {"verb": verb, "resource": "configmaps", "group": "", "version": "v1", "scope": scope,
                  "component": "apiserver", "code": code}
        return value(after, "apiserver_request_total", **labels) - value(before, "apiserver_request_total", **labels)

    assert moved("POST", "resource", "201") == 1
    assert moved("LIST", "namespace", "200") == 1
    assert moved("GET", "resource", "200") == 1
    assert moved("DELETE", "resource", "200") == 1
    labels = {"verb": "POST", "resource": "configmaps"}
    assert (value(after, "apiserver_request_duration_seconds_count", **labels)
            - value(before, "apiserver_request_duration_seconds_count", **labels)) == 1


def test_a_missing_object_counts_its_404(sim_cluster: PodlifeProcess) -> None:
    before = scrape(sim_cluster)
    assert sim_cluster.kubectl("get", "secret", "no-such-secret", check=False).returncode != 0
    after = scrape(sim_cluster)
    labels = {"verb": "GET", "resource": "secrets", "code": "404"}
    assert value(after, "apiserver_request_total", **labels) - value(before, "apiserver_request_total", **labels) == 1


def test_watches_are_long_running_and_counted_when_they_end(sim_cluster: PodlifeProcess) -> None:
    before = scrape(sim_cluster)
    status, _ = sim_cluster.http("GET", "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1")
    assert status == 200
    after = scrape(sim_cluster)
    labels = {"verb": "WATCH", "resource": "configmaps", "scope": "namespace", "code": "200"}
    assert value(after, "apiserver_request_total", **labels) - value(before, "apiserver_request_total", **labels) == 1
    assert value(after, "apiserver_longrunning_requests", verb="WATCH", resource="configmaps") == 0


def test_storage_objects_count_the_caches(sim_cluster: PodlifeProcess) -> None:
    samples = scrape(sim_cluster)
    nodes = sim_cluster.kubectl_json("get", "nodes")["items"]
    assert value(samples, "apiserver_storage_objects", resource="nodes") == len(nodes) == 2
    assert value(samples, "apiserver_storage_objects", resource="leases.coordination.k8s.io") >= 2
    assert value(samples, "etcd_request_duration_seconds_count", operation="commit") > 0


def test_scheduler_attempts_scheduled_and_unschedulable(sim_cluster: PodlifeProcess) -> None:
    before = scrape(sim_cluster)
    sim_cluster.kubectl("create", "-f", "-", input=pod("fits"))
    sim_cluster.kubectl("create", "-f", "-", input=pod("fits-nowhere", nodeSelector={"no-such": "label"}))
    try:
        sim_cluster.kubectl("wait", "--for=condition=PodScheduled", "pod/fits", "--timeout=60s")
        after = scrape_until(sim_cluster, lambda s: value(s, "scheduler_schedule_attempts_total", result="unschedulable")
                             > value(before, "scheduler_schedule_attempts_total", result="unschedulable"),
                             "an unschedulable attempt")
        profile = {"profile": "default-scheduler"}
        assert (value(after, "scheduler_schedule_attempts_total", result="scheduled", **profile)
                - value(before, "scheduler_schedule_attempts_total", result="scheduled", **profile)) >= 1
        assert (value(after, "scheduler_scheduling_attempt_duration_seconds_count", result="unschedulable", **profile)
                - value(before, "scheduler_scheduling_attempt_duration_seconds_count", result="unschedulable")) >= 1
        wait_for(lambda: value(scrape(sim_cluster), "scheduler_pending_pods", queue="unschedulable") >= 1, 30,
                 what="the pod in the unschedulable queue")
    finally:
        sim_cluster.kubectl("delete", "pod", "fits", "fits-nowhere", "--wait=false")


def test_gated_pods_are_pending_as_gated(sim_cluster: PodlifeProcess) -> None:
    sim_cluster.kubectl("create", "-f", "-", input=pod("gated", schedulingGates=[{"name": "example.com/wait"}]))
    try:
        wait_for(lambda: value(scrape(sim_cluster), "scheduler_pending_pods", queue="gated") >= 1, 30,
                 what="a gated pod counted")
    finally:
        sim_cluster.kubectl("delete", "pod", "gated", "--wait=false")


def test_simulated_nodes_observe_pod_start_sli(sim_cluster: PodlifeProcess) -> None:
    before = value(scrape(sim_cluster), "kubelet_pod_start_sli_duration_seconds_count")
    sim_cluster.kubectl("create", "-f", "-", input=pod("sim-started"))
    try:
        sim_cluster.kubectl("wait", "--for=condition=Ready", "pod/sim-started", "--timeout=60s")
        wait_for(lambda: value(scrape(sim_cluster), "kubelet_pod_start_sli_duration_seconds_count") > before, 30,
                 what="the pod's startup observed")
    finally:
        sim_cluster.kubectl("delete", "pod", "sim-started", "--wait=false")


def test_metrics_need_credentials_and_the_right(sim_cluster: PodlifeProcess) -> None:
    status, _ = sim_cluster.http("GET", "/metrics", auth=False)
    assert status == 401
    sim_cluster.kubectl("create", "serviceaccount", "nobody")
    token = sim_cluster.kubectl("create", "token", "nobody").stdout.strip()
    status, body = sim_cluster.http("GET", "/metrics", auth=False, headers={"Authorization": f"Bearer {token}"})
    assert status == 403, body
    assert body["message"] == ('forbidden: User "system:serviceaccount:default:nobody" cannot get path "/metrics"')


def test_refused_requests_are_not_counted(sim_cluster: PodlifeProcess) -> None:
    """Kubernetes counts in its instrumented handlers: a 401 or a 403 of the filters never gets there."""
    before = scrape(sim_cluster)
    status, _ = sim_cluster.http("GET", "/api/v1/namespaces/default/secrets", auth=False)
    assert status == 401
    after = scrape(sim_cluster)
    labels = {"verb": "LIST", "resource": "secrets"}
    assert value(after, "apiserver_request_total", code="401", **labels) == 0
    assert value(after, "apiserver_request_total", **labels) == value(before, "apiserver_request_total", **labels)


def test_paths_naming_no_resource_are_not_counted(sim_cluster: PodlifeProcess) -> None:
    """No route, no series: a client cannot mint label values by asking for made-up paths."""
    for path in ("/api/v1/namespaces/default/nosuchthings", "/api/v1/namespaces/default/pods/x/nosuchsub"):
        status, _ = sim_cluster.http("GET", path)
        assert status == 404
    samples = scrape(sim_cluster)
    assert value(samples, "apiserver_request_total", resource="nosuchthings") == 0
    assert value(samples, "apiserver_request_total", subresource="nosuchsub") == 0


def test_a_real_node_observes_pod_start_sli(node_cluster: PodlifeProcess) -> None:
    before = scrape(node_cluster)
    node_cluster.kubectl("create", "-f", "-", input=pod("started"))
    try:
        node_cluster.kubectl("wait", "--for=condition=Ready", "pod/started", "--timeout=90s")
        after = scrape_until(node_cluster, lambda s: value(s, "kubelet_pod_start_sli_duration_seconds_count")
                             > value(before, "kubelet_pod_start_sli_duration_seconds_count"), "the pod's startup observed")
        assert value(after, "kubelet_pod_start_total_duration_seconds_count") > value(
            before, "kubelet_pod_start_total_duration_seconds_count")
        assert value(after, "kubelet_pod_start_duration_seconds_count") > value(
            before, "kubelet_pod_start_duration_seconds_count")
        # observed once: from creation to all containers running, well under the pod's life so far
        pod_obj = node_cluster.kubectl_json("get", "pod", "started")
        assert pod_obj["status"]["phase"] == "Running"
        assert value(after, "kubelet_running_pods") >= 1
        assert value(after, "kubelet_running_containers", container_state="running") >= 1
    finally:
        node_cluster.kubectl("delete", "pod", "started", "--wait=false")


def test_the_kubelet_serves_its_own_metrics(node_cluster: PodlifeProcess) -> None:
    status, text = kubelet_get(node_cluster, "/metrics")
    assert status == 200, text
    names = {f.name for f in text_string_to_metric_families(text)}
    assert {"kubelet_pod_start_sli_duration_seconds", "kubelet_running_pods", "kubelet_evictions"} <= names
    assert not any(n.startswith(("apiserver_", "scheduler_")) for n in names), names


def test_probe_runs_are_counted(node_cluster: PodlifeProcess) -> None:
    probed = pod("probed")
    import json
    spec = json.loads(probed)
    spec["spec"]["containers"][0]["readinessProbe"] = {"exec": {"command": ["true"]}, "periodSeconds": 1}
    node_cluster.kubectl("create", "-f", "-", input=json.dumps(spec))
    try:
        labels: Labels = {"probe_type": "Readiness", "result": "successful", "container": "probed", "pod": "probed",
                          "namespace": "default"}
        wait_for(lambda: value(scrape(node_cluster), "prober_probe_total", **labels) >= 2, 60,
                 what="two successful readiness probe runs")
    finally:
        node_cluster.kubectl("delete", "pod", "probed", "--wait=false")


# ---- the pod startup tracker and the merged registries, on their own ----------------------------------------------


def _tracked_pod(uid: str, *, volumes: list[dict[str, Any]] | None = None, running: bool = False,
                 phase: str = "Pending") -> dict[str, Any]:
    state = {"running": {"startedAt": "2026-12-04T22:00:09Z"}} if running else {"waiting": {"reason": "ContainerCreating"}}
    return {"metadata": {"uid": uid, "creationTimestamp": "2026-12-04T22:00:00Z"},
            "spec": {"volumes": volumes or [{"name": "token", "projected": {"sources": []}}]},
            "status": {"phase": phase, **({"startTime": "2026-12-04T22:00:01Z"} if running or phase != "Pending" else {}),
                       "containerStatuses": [{"name": "c", "state": state}]}}


def _histogram(metrics: Any, name: str) -> tuple[float, float]:
    samples = {s.name: s.value for family in metrics.registry.collect() if family.name == name for s in family.samples}
    return samples[f"{name}_count"], samples[f"{name}_sum"]


def test_pod_start_sli_leaves_out_pulls_and_init_containers_once() -> None:
    from podlife.node.metrics import NodeMetrics
    metrics = NodeMetrics()
    created = 1796421600.0  # 2026-12-04T22:00:00Z
    try:
        metrics.pods.seen(_tracked_pod("a"), created + 0.5)
        metrics.pods.pull_started("a", created + 1)
        metrics.pods.pull_started("a", created + 1.5)  # overlapping pulls count once: 1 .. 3
        metrics.pods.pull_finished("a", created + 2)
        metrics.pods.pull_finished("a", created + 3)
        metrics.pods.init_started("a", created + 3)
        metrics.pods.init_finished("a", created + 5)
        metrics.pods.written(_tracked_pod("a", phase="Running", running=True), created + 10)
        metrics.pods.written(_tracked_pod("a", phase="Running", running=True), created + 20)  # observed once
        assert _histogram(metrics, "kubelet_pod_start_sli_duration_seconds") == (1, pytest.approx(10 - 2 - 2))
        assert _histogram(metrics, "kubelet_pod_start_total_duration_seconds") == (1, pytest.approx(10))
        assert _histogram(metrics, "kubelet_pod_start_duration_seconds") == (1, pytest.approx(9.5))
        assert len(metrics.pods) == 0  # nothing kept once observed
    finally:
        metrics.close()


def test_pod_start_sli_skips_stateful_and_already_started_pods() -> None:
    from podlife.node.metrics import NodeMetrics
    metrics = NodeMetrics()
    created = 1796421600.0
    try:
        claim = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
        metrics.pods.seen(_tracked_pod("stateful", volumes=claim), created)
        metrics.pods.written(_tracked_pod("stateful", volumes=claim, phase="Running", running=True), created + 4)
        metrics.pods.seen(_tracked_pod("adopted", phase="Running", running=True), created)  # startTime set: not ours
        metrics.pods.written(_tracked_pod("adopted", phase="Running", running=True), created + 4)
        assert _histogram(metrics, "kubelet_pod_start_sli_duration_seconds")[0] == 0
        assert _histogram(metrics, "kubelet_pod_start_total_duration_seconds")[0] == 1  # the stateful pod
    finally:
        metrics.close()


def test_merged_registries_add_up_every_agent() -> None:
    from prometheus_client import REGISTRY
    from podlife.node.metrics import NodeMetrics

    def merged_evictions() -> float:
        return sum(s.value for family in REGISTRY.collect() if family.name == "kubelet_evictions"
                   for s in family.samples if s.labels.get("eviction_signal") == "test.signal")

    one, two = NodeMetrics(), NodeMetrics()
    try:
        one.evicted("test.signal")
        two.evicted("test.signal")
        two.evicted("test.signal")
        assert merged_evictions() == 3
        two.close()
        assert merged_evictions() == 1
    finally:
        one.close()
        two.close()
