"""``metrics.k8s.io/v1beta1`` through the real server: what metrics-server serves, answered by the API server.

Served from ``ctx.resource_metrics`` (``podlife/api/virtual.py``, ``podlife/api/metrics_api.py``):
discovery and OpenAPI, ``kubectl get --raw``, ``kubectl top node|pod``, selectors, Tables,
metrics-server's 404 and 405 answers, RBAC through ``view``, the Python client. The numbers
themselves are tested with their provider (tests/test_resource_metrics.py, tests/test_kubectl_top.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from .cluster_harness import PodlifeProcess, require_module, require_tool, running_podlife, wait_for

pytestmark = pytest.mark.e2e

BASE = "/apis/metrics.k8s.io/v1beta1"
AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
SIM_NODE = "sim-node-0"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    """One local node (measured) and one simulated node (derived), with a pod on the simulated one."""
    with running_podlife(tmp_path_factory.mktemp("metrics") / "data", "--nodes", "1", "--sim-nodes", "1",
                         kubectl=require_tool("kubectl")) as proc:
        run_pod(proc, "mx")
        yield proc


def run_pod(cluster: PodlifeProcess, name: str, namespace: str = "default") -> None:
    overrides = {"spec": {"nodeSelector": {"kubernetes.io/hostname": SIM_NODE},
                          "containers": [{"name": name, "image": "nginx",
                                          "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}
    cluster.kubectl("run", name, "-n", namespace, "--image=nginx", f"--overrides={json.dumps(overrides)}")


def node_names(cluster: PodlifeProcess) -> list[str]:
    return sorted(n["metadata"]["name"] for n in cluster.kubectl_json("get", "nodes")["items"])


def all_nodes_sampled(cluster: PodlifeProcess) -> dict:
    """The NodeMetricsList once every node has a sample."""
    names = node_names(cluster)

    def sampled() -> dict | None:
        listing = json.loads(cluster.kubectl("get", "--raw", f"{BASE}/nodes").stdout)
        return listing if [i["metadata"]["name"] for i in listing["items"]] == names else None

    return wait_for(sampled, 60, what=f"metrics of every node ({names})")


def pod_sampled(cluster: PodlifeProcess, name: str, namespace: str = "default") -> dict:
    def sampled() -> dict | None:
        status, body = cluster.http("GET", f"{BASE}/namespaces/{namespace}/pods/{name}")
        return body if status == 200 else None

    return wait_for(sampled, 60, what=f"metrics of pod {namespace}/{name}")


# ---- discovery and schema ---------------------------------------------------------------


def test_discovered_as_metrics_server_serves_it(cluster: PodlifeProcess) -> None:
    status, groups = cluster.http("GET", "/apis")
    assert status == 200
    group = next(g for g in groups["groups"] if g["name"] == "metrics.k8s.io")
    assert group["preferredVersion"] == {"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"}
    status, listing = cluster.http("GET", BASE)
    assert status == 200
    by_name = {r["name"]: r for r in listing["resources"]}
    assert by_name["nodes"]["kind"] == "NodeMetrics" and by_name["nodes"]["namespaced"] is False
    assert by_name["pods"]["kind"] == "PodMetrics" and by_name["pods"]["namespaced"] is True
    assert by_name["nodes"]["verbs"] == by_name["pods"]["verbs"] == ["get", "list"]
    for accept in (AGGREGATED_V2, AGGREGATED_V2BETA1):
        answer = cluster.request("GET", "/apis", headers={"Accept": accept})
        assert answer.status == 200 and answer.headers["Content-Type"] == accept
        item = next(g for g in json.loads(answer.body)["items"] if g["metadata"]["name"] == "metrics.k8s.io")
        resources = {r["resource"]: r for r in item["versions"][0]["resources"]}
        assert resources["nodes"]["scope"] == "Cluster" and resources["pods"]["scope"] == "Namespaced"
        assert resources["pods"]["responseKind"] == {"group": "metrics.k8s.io", "version": "v1beta1", "kind": "PodMetrics"}
    out = cluster.kubectl("api-resources", "--api-group=metrics.k8s.io").stdout
    assert "NodeMetrics" in out and "PodMetrics" in out
    wait_for(lambda: cluster.kubectl("get", "apiservice", "v1beta1.metrics.k8s.io", check=False).returncode == 0,
             30, what="the metrics APIService")
    api_service = cluster.kubectl_json("get", "apiservice", "v1beta1.metrics.k8s.io")
    assert "service" not in api_service["spec"]  # a Local one: the API server answers it itself
    assert (api_service["spec"]["groupPriorityMinimum"], api_service["spec"]["versionPriority"]) == (100, 100)


def test_openapi_and_kubectl_explain(cluster: PodlifeProcess) -> None:
    status, doc = cluster.http("GET", "/openapi/v3/apis/metrics.k8s.io/v1beta1")
    assert status == 200
    assert set(doc["paths"][BASE + "/nodes/{name}"]) == {"get", "parameters"}
    out = cluster.kubectl("explain", "nodes.usage", "--api-version=metrics.k8s.io/v1beta1").stdout
    assert "KIND:       NodeMetrics" in out and "map[string]Quantity" in out
    out = cluster.kubectl("explain", "pods.containers", "--api-version=metrics.k8s.io/v1beta1").stdout
    assert "KIND:       PodMetrics" in out and "usage" in out


# ---- reads ------------------------------------------------------------------------------


def test_get_raw_node_metrics(cluster: PodlifeProcess) -> None:
    listing = all_nodes_sampled(cluster)
    assert listing["kind"] == "NodeMetricsList" and listing["apiVersion"] == "metrics.k8s.io/v1beta1"
    assert listing["metadata"] == {}  # metrics-server's lists carry no resourceVersion
    for item in listing["items"]:
        assert "kind" not in item and set(item) >= {"metadata", "timestamp", "window", "usage"}
        assert set(item["usage"]) == {"cpu", "memory"}
    one = json.loads(cluster.kubectl("get", "--raw", f"{BASE}/nodes/{SIM_NODE}").stdout)
    assert one["kind"] == "NodeMetrics" and one["apiVersion"] == "metrics.k8s.io/v1beta1"
    assert one["metadata"]["name"] == SIM_NODE and one["metadata"]["labels"]["kubernetes.io/hostname"] == SIM_NODE


def test_node_selectors(cluster: PodlifeProcess) -> None:
    all_nodes_sampled(cluster)
    status, only = cluster.http("GET", f"{BASE}/nodes?labelSelector=type%3Dsimulated")
    assert status == 200 and [i["metadata"]["name"] for i in only["items"]] == [SIM_NODE]
    status, named = cluster.http("GET", f"{BASE}/nodes?fieldSelector=metadata.name%3D{SIM_NODE}")
    assert status == 200 and [i["metadata"]["name"] for i in named["items"]] == [SIM_NODE]
    status, body = cluster.http("GET", f"{BASE}/nodes?fieldSelector=metadata.namespace%3Ddefault")
    assert status == 400 and "field label not supported: metadata.namespace" in body["message"]  # cluster-scoped


def test_kubectl_top_node(cluster: PodlifeProcess) -> None:
    all_nodes_sampled(cluster)
    out = cluster.kubectl("top", "node").stdout.splitlines()
    assert out[0].split() == ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
    assert sorted(line.split()[0] for line in out[1:]) == node_names(cluster)
    one = cluster.kubectl("top", "node", SIM_NODE).stdout.splitlines()
    assert [line.split()[0] for line in one[1:]] == [SIM_NODE]
    simulated = cluster.kubectl("top", "node", "-l", "type=simulated", "--no-headers").stdout.splitlines()
    assert [line.split()[0] for line in simulated] == [SIM_NODE]


def test_kubectl_top_pod(cluster: PodlifeProcess) -> None:
    metrics = pod_sampled(cluster, "mx")
    assert metrics["kind"] == "PodMetrics" and metrics["metadata"]["namespace"] == "default"
    assert [c["name"] for c in metrics["containers"]] == ["mx"]
    out = cluster.kubectl("top", "pod").stdout.splitlines()
    assert out[0].split() == ["NAME", "CPU(cores)", "MEMORY(bytes)"] and "mx" in [ln.split()[0] for ln in out[1:]]
    assert cluster.kubectl("top", "pod", "mx", "--no-headers").stdout.split()[0] == "mx"
    everywhere = cluster.kubectl("top", "pod", "-A", "--no-headers").stdout.splitlines()
    assert ["default", "mx"] in [ln.split()[:2] for ln in everywhere]
    containers = cluster.kubectl("top", "pod", "mx", "--containers", "--no-headers").stdout.split()
    assert containers[:2] == ["mx", "mx"]
    labelled = cluster.kubectl("top", "pod", "-l", "run=mx", "--no-headers").stdout.splitlines()
    assert [ln.split()[0] for ln in labelled] == ["mx"]
    assert "No resources found" in cluster.kubectl("top", "pod", "-l", "run=nobody").stderr
    status, named = cluster.http("GET", f"{BASE}/pods?fieldSelector=metadata.namespace%3Ddefault,metadata.name%3Dmx")
    assert status == 200 and [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in named["items"]] == [("default", "mx")]
    status, other = cluster.http("GET", f"{BASE}/namespaces/kube-system/pods?fieldSelector=metadata.name%3Dmx")
    assert status == 200 and other["kind"] == "PodMetricsList" and other["items"] == []


def test_tables_for_kubectl_get(cluster: PodlifeProcess) -> None:
    all_nodes_sampled(cluster)
    pod_sampled(cluster, "mx")
    nodes = cluster.kubectl("get", "nodes.metrics.k8s.io").stdout.splitlines()
    assert nodes[0].split() == ["NAME", "CPU", "MEMORY", "WINDOW"]
    assert sorted(line.split()[0] for line in nodes[1:]) == node_names(cluster)
    pods = cluster.kubectl("get", "pods.metrics.k8s.io").stdout.splitlines()
    assert pods[0].split() == ["NAME", "CPU", "MEMORY", "WINDOW"] and "mx" in [ln.split()[0] for ln in pods[1:]]


def test_python_client(cluster: PodlifeProcess) -> None:
    kubernetes = require_module("kubernetes")
    all_nodes_sampled(cluster)
    pod_sampled(cluster, "mx")
    api = kubernetes.config.new_client_from_config(str(cluster.kubeconfig))
    try:
        custom = kubernetes.client.CustomObjectsApi(api)
        nodes = custom.list_cluster_custom_object("metrics.k8s.io", "v1beta1", "nodes")
        assert nodes["kind"] == "NodeMetricsList" and SIM_NODE in [i["metadata"]["name"] for i in nodes["items"]]
        pod = custom.get_namespaced_custom_object("metrics.k8s.io", "v1beta1", "default", "pods", "mx")
        assert pod["kind"] == "PodMetrics" and pod["containers"][0]["usage"].keys() == {"cpu", "memory"}
    finally:
        api.close()


# ---- errors -----------------------------------------------------------------------------


def test_not_found_as_metrics_server_says_it(cluster: PodlifeProcess) -> None:
    status, body = cluster.http("GET", f"{BASE}/nodes/no-such-node")
    assert status == 404 and body["reason"] == "NotFound"
    assert body["message"] == 'nodemetrics.metrics.k8s.io "no-such-node" not found'
    status, body = cluster.http("GET", f"{BASE}/namespaces/default/pods/no-such-pod")
    assert status == 404 and body["message"] == 'podmetrics.metrics.k8s.io "default/no-such-pod" not found'
    assert body["details"] == {"name": "default/no-such-pod", "group": "metrics.k8s.io", "kind": "podmetrics"}
    result = cluster.kubectl("top", "pod", "no-such-pod", check=False)
    assert result.returncode != 0 and "no-such-pod" in result.stderr


def test_watch_and_writes_are_method_not_allowed(cluster: PodlifeProcess) -> None:
    status, body = cluster.http("GET", f"{BASE}/nodes?watch=true")
    assert status == 405 and body["reason"] == "MethodNotAllowed"
    assert body["message"] == 'watch is not supported on resources of kind "nodes.metrics.k8s.io"'
    status, body = cluster.http("GET", f"{BASE}/namespaces/default/pods?watch=1")
    assert status == 405 and body["message"] == 'watch is not supported on resources of kind "pods.metrics.k8s.io"'
    result = cluster.kubectl("get", "--raw", f"{BASE}/nodes?watch=true", check=False)
    assert result.returncode != 0 and "MethodNotAllowed" in result.stderr
    for method, path in (("POST", f"{BASE}/nodes"), ("PUT", f"{BASE}/nodes/{SIM_NODE}"),
                         ("DELETE", f"{BASE}/nodes/{SIM_NODE}"), ("DELETE", f"{BASE}/namespaces/default/pods"),
                         ("PATCH", f"{BASE}/namespaces/default/pods/mx")):
        status, body = cluster.http(method, path, {"metadata": {"name": "x"}}, content_type="application/merge-patch+json")
        assert status == 405 and body["kind"] == "Status" and body["reason"] == "MethodNotAllowed", (method, path)


# ---- who may read -----------------------------------------------------------------------


def test_view_may_read_pod_metrics_of_its_namespace(cluster: PodlifeProcess) -> None:
    cluster.kubectl("create", "namespace", "mx-rbac")
    cluster.kubectl("create", "serviceaccount", "reader", "-n", "mx-rbac")
    cluster.kubectl("create", "rolebinding", "reader-view", "-n", "mx-rbac", "--clusterrole=view",
                    "--serviceaccount=mx-rbac:reader")
    run_pod(cluster, "mine", "mx-rbac")
    pod_sampled(cluster, "mine", "mx-rbac")
    who = "--token=" + cluster.kubectl("create", "token", "reader", "-n", "mx-rbac").stdout.strip()
    wait_for(lambda: cluster.kubectl("auth", "can-i", "list", "pods.metrics.k8s.io", "-n", "mx-rbac", who,
                                     check=False).stdout.strip() == "yes", 30, what="view to allow reading pod metrics")
    assert cluster.kubectl("top", "pod", "-n", "mx-rbac", "--no-headers", who).stdout.split()[0] == "mine"
    denied = cluster.kubectl("top", "pod", "-n", "default", who, check=False)
    assert denied.returncode != 0 and "Forbidden" in denied.stderr
    denied = cluster.kubectl("top", "node", who, check=False)  # nodes are cluster-scoped: a RoleBinding grants none
    assert denied.returncode != 0 and "Forbidden" in denied.stderr
    rules = cluster.kubectl_json("get", "clusterrole", "system:aggregated-metrics-reader")["rules"]
    assert rules == [{"apiGroups": ["metrics.k8s.io"], "resources": ["nodes", "pods"], "verbs": ["get", "list", "watch"]}]
