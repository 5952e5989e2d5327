"""``podtraces`` (trace.podlife.io/v1alpha1) through the real server: kubectl, the Python clients, raw HTTP.

A read-only kind served from the trace recorder (``podlife/api/virtual.py``,
``podlife/api/podtraces.py``): discovery and OpenAPI, ``kubectl get`` tables, the full
object with its records, watches (kubectl's and the clients'), selectors, 404 and 405
Status answers, RBAC through ``view``, and not served at all with ``--no-trace``.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from podlife.api.podtraces import trace_duration

from .cluster_harness import PodlifeProcess, require_module, require_tool, running_podlife, wait_for

pytestmark = pytest.mark.e2e

BASE = "/apis/trace.podlife.io/v1alpha1"
AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    """Simulated nodes only: pods go through their whole life quickly and without processes."""
    with running_podlife(tmp_path_factory.mktemp("podtraces") / "data", "--nodes", "0", "--sim-nodes", "2",
                         kubectl=require_tool("kubectl")) as proc:
        yield proc


def run_pod(cluster: PodlifeProcess, name: str, namespace: str = "default") -> None:
    cluster.kubectl("run", name, "-n", namespace, "--image=nginx", "--restart=Always")


def trace_when(cluster: PodlifeProcess, name: str, stage: str, namespace: str = "default") -> dict:
    """The trace once its stages include ``stage`` (raw GET: the full object)."""
    def ready() -> dict | None:
        status, body = cluster.http("GET", f"{BASE}/namespaces/{namespace}/podtraces/{name}")
        if status != 200:
            return None
        return body if stage in [s["name"] for s in body["status"]["stages"]] else None

    return wait_for(ready, 60, what=f"trace {namespace}/{name} to reach {stage}")


class Lines:
    """The output lines of a process we started, collected by a thread (read while it runs)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.lines: list[str] = []
        assert proc.stdout is not None
        self._thread = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def wait(self, predicate, what: str) -> list[str]:
        return wait_for(lambda: [ln for ln in list(self.lines) if predicate(ln)] or None, 60, what=what)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._thread.join(10)


# ---- discovery and schema ---------------------------------------------------------------


def test_discovered_by_kubectl_legacy_and_aggregated_discovery(cluster: PodlifeProcess) -> None:
    out = cluster.kubectl("api-resources", "--api-group=trace.podlife.io", "-o", "wide").stdout
    row = next(line for line in out.splitlines() if line.startswith("podtraces"))
    assert "trace.podlife.io/v1alpha1" in row and "true" in row and "PodTrace" in row and "get,list,watch" in row

    status, groups = cluster.http("GET", "/apis")
    assert status == 200 and "trace.podlife.io" in [g["name"] for g in groups["groups"]]
    status, listing = cluster.http("GET", BASE)
    assert status == 200
    assert listing["resources"] == [{"name": "podtraces", "singularName": "podtrace", "namespaced": True,
                                     "kind": "PodTrace", "verbs": ["get", "list", "watch"]}]
    for accept in (AGGREGATED_V2, AGGREGATED_V2BETA1):
        answer = cluster.request("GET", "/apis", headers={"Accept": accept})
        assert answer.status == 200 and answer.headers["Content-Type"] == accept
        doc = json.loads(answer.body)
        group = next(g for g in doc["items"] if g["metadata"]["name"] == "trace.podlife.io")
        resource = group["versions"][0]["resources"][0]
        assert group["versions"][0]["version"] == "v1alpha1"
        assert resource["resource"] == "podtraces" and resource["scope"] == "Namespaced"
        assert resource["responseKind"] == {"group": "trace.podlife.io", "version": "v1alpha1", "kind": "PodTrace"}
        assert resource["verbs"] == ["get", "list", "watch"]
    wait_for(lambda: cluster.kubectl("get", "apiservice", "v1alpha1.trace.podlife.io", check=False).returncode == 0,
             30, what="the podtraces APIService (Local)")


def test_openapi_and_kubectl_explain(cluster: PodlifeProcess) -> None:
    status, root = cluster.http("GET", "/openapi/v3")
    assert status == 200 and "apis/trace.podlife.io/v1alpha1" in root["paths"]
    status, doc = cluster.http("GET", "/openapi/v3/apis/trace.podlife.io/v1alpha1")
    assert status == 200
    ops = doc["paths"][BASE + "/namespaces/{namespace}/podtraces/{name}"]
    assert "get" in ops and not {"put", "patch", "delete"} & set(ops)  # read-only
    out = cluster.kubectl("explain", "podtraces.status.stages").stdout
    assert "KIND:       PodTrace" in out and "offsetSeconds" in out and "durationSeconds" in out


# ---- reads ------------------------------------------------------------------------------


def test_kubectl_get_table_yaml_and_list_without_records(cluster: PodlifeProcess) -> None:
    run_pod(cluster, "tr-get")
    trace_when(cluster, "tr-get", "Ready")
    out = cluster.kubectl("get", "podtraces").stdout.splitlines()
    assert out[0].split() == ["NAME", "NODE", "PHASE", "STAGE", "DURATION", "AGE"]
    row = next(line.split() for line in out if line.startswith("tr-get "))
    assert row[1].startswith("sim-node-") and row[2] == "Running" and row[3] == "Ready"

    single = cluster.kubectl("get", "podtrace", "tr-get", "--no-headers").stdout.split()
    assert single[:4] == ["tr-get", row[1], "Running", "Ready"]

    full = json.loads(cluster.kubectl("get", "podtrace", "tr-get", "-o", "json").stdout)
    assert full["apiVersion"] == "trace.podlife.io/v1alpha1" and full["kind"] == "PodTrace"
    pod = cluster.kubectl_json("get", "pod", "tr-get")
    assert full["metadata"]["uid"] == pod["metadata"]["uid"] == full["status"]["podUID"]
    stages = [s["name"] for s in full["status"]["stages"]]
    assert stages[0] == "Created" and "Scheduled" in stages and stages[-1] == "Ready"
    assert any(r["kind"] == "Pod" and r["verb"] == "create" for r in full["status"]["records"])
    yaml_out = cluster.kubectl("get", "podtrace", "tr-get", "-o", "yaml").stdout
    assert "kind: PodTrace" in yaml_out and "records:" in yaml_out and "stages:" in yaml_out

    listed = cluster.kubectl_json("get", "podtraces")
    item = next(i for i in listed["items"] if i["metadata"]["name"] == "tr-get")
    assert "records" not in item["status"] and item["status"]["stages"]
    status, raw = cluster.http("GET", f"{BASE}/podtraces")  # all namespaces
    assert status == 200 and raw["kind"] == "PodTraceList" and int(raw["metadata"]["resourceVersion"]) > 0
    assert "tr-get" in [i["metadata"]["name"] for i in raw["items"]]


def test_a_deleted_pods_trace_is_still_served(cluster: PodlifeProcess) -> None:
    run_pod(cluster, "tr-gone")
    trace_when(cluster, "tr-gone", "Ready")
    cluster.kubectl("delete", "pod", "tr-gone", "--grace-period=1")
    wait_for(lambda: cluster.kubectl("get", "pod", "tr-gone", check=False).returncode != 0, 60,
             what="the pod to be gone")
    gone = wait_for(lambda: (t := cluster.kubectl_json("get", "podtrace", "tr-gone"))["status"]["deleted"] and t, 60,
                    what="the trace to say the pod is deleted")
    assert gone["metadata"]["name"] == "tr-gone"


def test_selectors(cluster: PodlifeProcess) -> None:
    for name in ("tr-sel-a", "tr-sel-b"):
        run_pod(cluster, name)
    for name in ("tr-sel-a", "tr-sel-b"):
        trace_when(cluster, name, "Scheduled")
    picked = cluster.kubectl_json("get", "podtraces", "--field-selector", "metadata.name=tr-sel-a")["items"]
    assert [i["metadata"]["name"] for i in picked] == ["tr-sel-a"]
    others = cluster.kubectl_json("get", "podtraces", "-A", "--field-selector",
                                  "metadata.namespace=default,metadata.name!=tr-sel-a")["items"]
    assert "tr-sel-b" in [i["metadata"]["name"] for i in others] and "tr-sel-a" not in [i["metadata"]["name"] for i in others]
    assert cluster.kubectl_json("get", "podtraces", "-n", "kube-system", "--field-selector",
                                "metadata.namespace=default")["items"] == []
    status, body = cluster.http("GET", f"{BASE}/podtraces?fieldSelector=spec.nodeName%3Dx")
    assert status == 400 and body["reason"] == "BadRequest" and "field label not supported: spec.nodeName" in body["message"]
    assert cluster.kubectl_json("get", "podtraces", "-l", "nothing=here")["items"] == []
    assert "tr-sel-a" in [i["metadata"]["name"] for i in cluster.kubectl_json("get", "podtraces", "-l", "!nothing")["items"]]


# ---- watches ----------------------------------------------------------------------------


def test_kubectl_get_watch_shows_a_new_pods_stages(cluster: PodlifeProcess) -> None:
    run_pod(cluster, "tr-w-old")
    trace_when(cluster, "tr-w-old", "Scheduled")
    lines = Lines(cluster.kubectl_watch("podtraces"))  # returned once the watch reached the server
    try:
        lines.wait(lambda ln: ln.startswith("tr-w-old "), "the current traces to be listed")
        run_pod(cluster, "tr-w-new")
        seen = lines.wait(lambda ln: ln.startswith("tr-w-new ") and " Ready " in f"{ln} ",
                          "the new pod's trace to reach Ready in the watch")
        assert seen[-1].split()[2] == "Running"
        stages = [ln.split()[3] for ln in lines.lines if ln.startswith("tr-w-new ")]
        assert stages[0] != "Ready"  # the watch saw the pod before it was ready, not only its end
    finally:
        lines.stop()


def test_kubectl_watch_with_request_timeout_ends(cluster: PodlifeProcess) -> None:
    run_pod(cluster, "tr-wt")
    trace_when(cluster, "tr-wt", "Scheduled")
    result = cluster.kubectl("get", "podtraces", "-w", "--request-timeout=2s", timeout=60)
    assert "tr-wt" in result.stdout


def test_raw_watch_replays_then_follows_and_honours_timeout_seconds(cluster: PodlifeProcess) -> None:
    run_pod(cluster, "tr-raw")
    trace_when(cluster, "tr-raw", "Ready")
    events = cluster.watch_events(f"{BASE}/namespaces/default/podtraces?watch=true&timeoutSeconds=1")
    added = [e for e in events if e["type"] == "ADDED"]
    assert "tr-raw" in [e["object"]["metadata"]["name"] for e in added]
    assert all("records" not in e["object"]["status"] for e in events)
    one = cluster.watch_events(f"{BASE}/namespaces/default/podtraces?watch=1&timeoutSeconds=1"
                               "&fieldSelector=metadata.name%3Dtr-raw")
    assert [e["object"]["metadata"]["name"] for e in one] == ["tr-raw"]

    status, listed = cluster.http("GET", f"{BASE}/namespaces/default/podtraces")
    rv = listed["metadata"]["resourceVersion"]
    assert cluster.watch_events(f"{BASE}/namespaces/default/podtraces?watch=true&timeoutSeconds=1"
                                f"&resourceVersion={rv}&fieldSelector=metadata.name%3Dtr-raw") == []
    # from a version: what changed after it (as MODIFIED: there is no history to tell creations apart)
    run_pod(cluster, "tr-raw-later")
    later = trace_when(cluster, "tr-raw-later", "Scheduled")
    assert int(later["metadata"]["resourceVersion"]) > int(rv)
    since = cluster.watch_events(f"{BASE}/namespaces/default/podtraces?watch=true&timeoutSeconds=1&resourceVersion={rv}")
    assert ("MODIFIED", "tr-raw-later") in [(e["type"], e["object"]["metadata"]["name"]) for e in since]
    assert all(int(e["object"]["metadata"]["resourceVersion"]) > int(rv) for e in since)
    status, body = cluster.http("GET", f"{BASE}/podtraces?watch=true&timeoutSeconds=abc")
    assert status == 400 and "timeoutSeconds" in body["message"]


def test_python_dynamic_client_get_list_watch(cluster: PodlifeProcess) -> None:
    kubernetes = require_module("kubernetes")
    from kubernetes import dynamic

    run_pod(cluster, "tr-py")
    trace_when(cluster, "tr-py", "Ready")
    api = kubernetes.config.new_client_from_config(str(cluster.kubeconfig))
    try:
        podtraces = dynamic.DynamicClient(api).resources.get(api_version="trace.podlife.io/v1alpha1", kind="PodTrace")
        listed = podtraces.get(namespace="default")
        assert listed.kind == "PodTraceList" and "tr-py" in [i.metadata.name for i in listed.items]
        one = podtraces.get(name="tr-py", namespace="default")
        assert one.kind == "PodTrace" and one.status.records and one.status.stages[-1].name == "Ready"
        watched = [ev for ev in podtraces.watch(namespace="default", timeout=1)]
        assert ("ADDED", "tr-py") in [(ev["type"], ev["object"].metadata.name) for ev in watched]

        custom = kubernetes.client.CustomObjectsApi(api)
        got = custom.get_namespaced_custom_object("trace.podlife.io", "v1alpha1", "default", "podtraces", "tr-py")
        assert got["status"]["phase"] == "Running"
        everywhere = custom.list_cluster_custom_object("trace.podlife.io", "v1alpha1", "podtraces")
        assert "tr-py" in [i["metadata"]["name"] for i in everywhere["items"]]
        with pytest.raises(kubernetes.client.ApiException) as err:
            custom.delete_namespaced_custom_object("trace.podlife.io", "v1alpha1", "default", "podtraces", "tr-py")
        assert err.value.status == 405
    finally:
        api.close()


# ---- errors -----------------------------------------------------------------------------


def test_not_found_names_the_resource(cluster: PodlifeProcess) -> None:
    result = cluster.kubectl("get", "podtrace", "no-such-pod", check=False)
    assert result.returncode != 0
    assert 'Error from server (NotFound): podtraces.trace.podlife.io "no-such-pod" not found' in result.stderr
    status, body = cluster.http("GET", f"{BASE}/namespaces/default/podtraces/no-such-pod")
    assert status == 404 and body == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'podtraces.trace.podlife.io "no-such-pod" not found', "reason": "NotFound",
        "details": {"name": "no-such-pod", "group": "trace.podlife.io", "kind": "podtraces"}, "code": 404}
    assert cluster.http("GET", f"{BASE}/namespaces/default/podtraces/x/status")[0] == 404  # no subresources
    assert cluster.http("GET", f"{BASE}/podtraces/x")[0] == 404  # a namespaced kind's object needs its namespace


def test_writes_are_method_not_allowed(cluster: PodlifeProcess) -> None:
    run_pod(cluster, "tr-ro")
    trace_when(cluster, "tr-ro", "Scheduled")
    item = f"{BASE}/namespaces/default/podtraces/tr-ro"
    body = {"apiVersion": "trace.podlife.io/v1alpha1", "kind": "PodTrace", "metadata": {"name": "tr-ro"}}
    for method, path, payload, ctype in (
            ("POST", f"{BASE}/namespaces/default/podtraces", body, "application/json"),
            ("PUT", item, body, "application/json"),
            ("PATCH", item, {"metadata": {"labels": {"a": "b"}}}, "application/merge-patch+json"),
            ("DELETE", item, None, "application/json"),
            ("DELETE", f"{BASE}/namespaces/default/podtraces", None, "application/json")):
        status, answer = cluster.http(method, path, payload, content_type=ctype)
        assert status == 405, (method, path, answer)
        assert answer["kind"] == "Status" and answer["reason"] == "MethodNotAllowed" and answer["code"] == 405
    result = cluster.kubectl("delete", "podtrace", "tr-ro", check=False)
    assert result.returncode != 0 and "MethodNotAllowed" in result.stderr
    assert cluster.http("GET", item)[0] == 200  # still there


# ---- who may read -----------------------------------------------------------------------


def test_view_admin_and_edit_may_read_podtraces(cluster: PodlifeProcess) -> None:
    cluster.kubectl("create", "namespace", "tr-rbac")
    cluster.kubectl("create", "serviceaccount", "reader", "-n", "tr-rbac")
    cluster.kubectl("create", "rolebinding", "reader-view", "-n", "tr-rbac", "--clusterrole=view",
                    "--serviceaccount=tr-rbac:reader")
    run_pod(cluster, "tr-mine", "tr-rbac")
    trace_when(cluster, "tr-mine", "Scheduled", "tr-rbac")
    who = "--token=" + cluster.kubectl("create", "token", "reader", "-n", "tr-rbac").stdout.strip()
    for role in ("view", "edit", "admin"):
        wait_for(lambda role=role: any("trace.podlife.io" in r.get("apiGroups", []) and "podtraces" in r["resources"]
                                       for r in cluster.kubectl_json("get", "clusterrole", role).get("rules") or []),
                 30, what=f"{role} to aggregate podtraces")
    wait_for(lambda: cluster.kubectl("auth", "can-i", "list", "podtraces", "-n", "tr-rbac", who,
                                     check=False).stdout.strip() == "yes", 30, what="view to allow listing podtraces")
    assert cluster.kubectl("auth", "can-i", "watch", "podtraces.trace.podlife.io", "-n", "tr-rbac", who).stdout.strip() == "yes"
    assert "tr-mine" in cluster.kubectl("get", "podtraces", "-n", "tr-rbac", who).stdout
    assert cluster.kubectl_json("get", "podtrace", "tr-mine", "-n", "tr-rbac", who)["status"]["records"]
    denied = cluster.kubectl("get", "podtraces", "-n", "default", who, check=False)
    assert denied.returncode != 0 and "Forbidden" in denied.stderr and "podtraces" in denied.stderr
    assert cluster.kubectl("auth", "can-i", "delete", "podtraces", "-n", "tr-rbac", who, check=False).stdout.strip() == "no"


def test_duration_column_keeps_milliseconds_under_a_minute() -> None:
    assert [trace_duration(v) for v in (0.0123, 0.85, 2.44, 59.9, 61, 3 * 3600)] == [
        "12ms", "850ms", "2.4s", "59.9s", "61s", "3h"]
    assert trace_duration(None) == "<none>"


# ---- not traced ---------------------------------------------------------------------------


def test_not_served_without_tracing(tmp_path: Path) -> None:
    with running_podlife(tmp_path / "data", "--nodes", "0", "--no-trace", kubectl=require_tool("kubectl")) as proc:
        status, groups = proc.http("GET", "/apis")
        assert "trace.podlife.io" not in [g["name"] for g in groups["groups"]]
        assert proc.http("GET", f"{BASE}/namespaces/default/podtraces")[0] == 404
        assert proc.http("GET", "/apis/apiregistration.k8s.io/v1/apiservices/v1alpha1.trace.podlife.io")[0] == 404
        result = proc.kubectl("get", "podtraces", check=False)
        assert result.returncode != 0 and 'the server doesn\'t have a resource type "podtraces"' in result.stderr
