"""Tests for server-side Table printing (podlife.registry.tables).

Expected values are what ``kubectl get`` shows against a real Kubernetes 1.32
cluster for the same object state.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from podlife.registry.tables import (
    column_definitions,
    crd_columns,
    human_duration,
    known_kinds,
    pod_status_reason,
    printer_for,
    row_cells,
    summarize_pod,
    to_table,
)
from podlife.registry.tables.crd import DEFAULT_PRINTER, JsonPath, go_format

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def ago(**delta: float) -> str:
    return (NOW - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def names(kind: str, group: str = "") -> list[str]:
    return [c["name"] for c in column_definitions(kind, group)]


def normal_names(kind: str, group: str = "") -> list[str]:
    return [c["name"] for c in column_definitions(kind, group) if c["priority"] == 0]


def wide_names(kind: str, group: str = "") -> list[str]:
    return [c["name"] for c in column_definitions(kind, group) if c["priority"] == 1]


def cells_by_name(obj: dict[str, Any], kind: str, group: str = "") -> dict[str, Any]:
    cells = row_cells(obj, kind, group, NOW)
    return dict(zip(names(kind, group), cells, strict=True))


# --------------------------------------------------------------------------
# human_duration


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0s"),
        (-1.5, "0s"),
        (-2, "<invalid>"),
        (5, "5s"),
        (59.9, "59s"),
        (119, "119s"),
        (120, "2m"),
        (150, "2m30s"),
        (599, "9m59s"),
        (600, "10m"),
        (10799, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 20 * 60 + 59, "3h20m"),
        (8 * 3600, "8h"),
        (47 * 3600 + 3599, "47h"),
        (48 * 3600, "2d"),
        (50 * 3600, "2d2h"),
        (7 * 86400 + 23 * 3600, "7d23h"),
        (8 * 86400, "8d"),
        (729 * 86400, "729d"),
        (730 * 86400, "2y"),
        ((730 + 100) * 86400, "2y100d"),
        (8 * 365 * 86400, "8y"),
        (12 * 365 * 86400 + 5 * 86400, "12y"),
    ],
)
def test_human_duration(seconds: float, expected: str) -> None:
    assert human_duration(seconds) == expected


# --------------------------------------------------------------------------
# Pods


def make_pod(
    *,
    phase: str = "Running",
    containers: int = 1,
    statuses: list[dict[str, Any]] | None = None,
    init_specs: list[dict[str, Any]] | None = None,
    init_statuses: list[dict[str, Any]] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    **extra_status: Any,
) -> dict[str, Any]:
    pod_status: dict[str, Any] = {"phase": phase, **extra_status}
    if statuses is not None:
        pod_status["containerStatuses"] = statuses
    if init_statuses is not None:
        pod_status["initContainerStatuses"] = init_statuses
    if conditions is not None:
        pod_status["conditions"] = conditions
    pod_spec: dict[str, Any] = {"containers": [{"name": f"c{i}", "image": "busybox"} for i in range(containers)]}
    if init_specs is not None:
        pod_spec["initContainers"] = init_specs
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "uid": "u-1", "creationTimestamp": ago(minutes=5)},
        "spec": pod_spec,
        "status": pod_status,
    }


def running(name: str = "c0", ready: bool = True, restarts: int = 0, **extra: Any) -> dict[str, Any]:
    return {"name": name, "ready": ready, "restartCount": restarts, "started": True,
            "state": {"running": {"startedAt": ago(minutes=4)}}, **extra}


def waiting(reason: str, name: str = "c0", restarts: int = 0, **extra: Any) -> dict[str, Any]:
    return {"name": name, "ready": False, "restartCount": restarts, "state": {"waiting": {"reason": reason}}, **extra}


def terminated(name: str = "c0", exit_code: int = 0, reason: str | None = None, signal: int = 0,
               restarts: int = 0) -> dict[str, Any]:
    state: dict[str, Any] = {"exitCode": exit_code, "finishedAt": ago(minutes=1)}
    if reason:
        state["reason"] = reason
    if signal:
        state["signal"] = signal
    return {"name": name, "ready": False, "restartCount": restarts, "state": {"terminated": state}}


READY_TRUE = [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}]
READY_FALSE = [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "False"}]


def test_pod_columns_and_wide_columns() -> None:
    assert normal_names("Pod") == ["Name", "Ready", "Status", "Restarts", "Age"]
    assert wide_names("Pod") == ["IP", "Node", "Nominated Node", "Readiness Gates"]
    definitions = column_definitions("Pod")
    assert definitions[0]["format"] == "name"
    assert all(set(d) == {"name", "type", "format", "description", "priority"} for d in definitions)


def test_pending_pod_without_statuses() -> None:
    pod = make_pod(phase="Pending")
    cells = cells_by_name(pod, "Pod")
    assert cells["Status"] == "Pending"
    assert cells["Ready"] == "0/1"
    assert cells["Restarts"] == "0"
    assert cells["Age"] == "5m"
    assert cells["IP"] == "<none>" and cells["Node"] == "<none>"


def test_container_creating() -> None:
    pod = make_pod(phase="Pending", statuses=[waiting("ContainerCreating")])
    assert pod_status_reason(pod) == "ContainerCreating"


def test_running_one_of_one() -> None:
    pod = make_pod(statuses=[running()], conditions=READY_TRUE)
    cells = cells_by_name(pod, "Pod")
    assert (cells["Ready"], cells["Status"], cells["Restarts"]) == ("1/1", "Running", "0")


def test_running_but_not_ready_container_counts_as_not_ready() -> None:
    pod = make_pod(statuses=[running(ready=False)])
    cells = cells_by_name(pod, "Pod")
    assert (cells["Ready"], cells["Status"]) == ("0/1", "Running")


def test_completed_pod() -> None:
    pod = make_pod(phase="Succeeded", statuses=[terminated(reason="Completed")])
    cells = cells_by_name(pod, "Pod")
    assert (cells["Ready"], cells["Status"]) == ("0/1", "Completed")
    row = to_table([pod], "Pod", now=NOW)["rows"][0]
    assert row["conditions"][0]["type"] == "Completed"
    assert row["conditions"][0]["reason"] == "Succeeded"


def test_error_pod() -> None:
    pod = make_pod(phase="Failed", statuses=[terminated(exit_code=1, reason="Error")])
    assert pod_status_reason(pod) == "Error"
    assert to_table([pod], "Pod", now=NOW)["rows"][0]["conditions"][0]["reason"] == "Failed"


def test_crash_loop_back_off_with_restarts_and_last_restart_age() -> None:
    container = waiting("CrashLoopBackOff", restarts=5)
    container["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(minutes=3)}}
    pod = make_pod(statuses=[container])
    cells = cells_by_name(pod, "Pod")
    assert cells["Status"] == "CrashLoopBackOff"
    assert cells["Restarts"] == "5 (3m ago)"
    assert cells["Ready"] == "0/1"


def test_restarts_without_last_state_show_only_the_count() -> None:
    pod = make_pod(statuses=[running(restarts=2)])
    assert cells_by_name(pod, "Pod")["Restarts"] == "2"


def test_restarts_sum_over_containers_and_use_latest_finish() -> None:
    first = running("c0", restarts=1, lastState={"terminated": {"exitCode": 1, "finishedAt": ago(minutes=30)}})
    second = running("c1", restarts=2, lastState={"terminated": {"exitCode": 1, "finishedAt": ago(seconds=40)}})
    pod = make_pod(containers=2, statuses=[first, second], conditions=READY_TRUE)
    assert cells_by_name(pod, "Pod")["Restarts"] == "3 (40s ago)"


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff", "CreateContainerConfigError"])
def test_waiting_reasons_become_status(reason: str) -> None:
    assert pod_status_reason(make_pod(phase="Pending", statuses=[waiting(reason)])) == reason


def test_oom_killed() -> None:
    pod = make_pod(statuses=[terminated(exit_code=137, reason="OOMKilled", restarts=1)])
    assert pod_status_reason(pod) == "OOMKilled"


def test_terminated_without_reason_shows_signal_or_exit_code() -> None:
    assert pod_status_reason(make_pod(statuses=[terminated(exit_code=137, signal=9)])) == "Signal:9"
    assert pod_status_reason(make_pod(statuses=[terminated(exit_code=3)])) == "ExitCode:3"


def test_first_container_has_the_last_word() -> None:
    pod = make_pod(phase="Pending", containers=2,
                   statuses=[waiting("ErrImagePull", "c0"), waiting("ContainerCreating", "c1")])
    assert pod_status_reason(pod) == "ErrImagePull"


def test_completed_container_next_to_running_one() -> None:
    statuses = [running("c0"), terminated("c1", reason="Completed")]
    ready = make_pod(containers=2, statuses=statuses, conditions=READY_TRUE)
    not_ready = make_pod(containers=2, statuses=statuses, conditions=READY_FALSE)
    assert pod_status_reason(ready) == "Running"
    assert pod_status_reason(not_ready) == "NotReady"
    assert cells_by_name(ready, "Pod")["Ready"] == "1/2"


def test_terminating_pod() -> None:
    pod = make_pod(statuses=[running()], conditions=READY_TRUE)
    pod["metadata"]["deletionTimestamp"] = ago(seconds=10)
    assert pod_status_reason(pod) == "Terminating"


def test_deleted_pod_in_terminal_phase_keeps_its_status() -> None:
    pod = make_pod(phase="Succeeded", statuses=[terminated(reason="Completed")])
    pod["metadata"]["deletionTimestamp"] = ago(seconds=10)
    assert pod_status_reason(pod) == "Completed"


def test_deleted_pod_on_lost_node_is_unknown() -> None:
    pod = make_pod(statuses=[running()], reason="NodeLost")
    pod["metadata"]["deletionTimestamp"] = ago(seconds=10)
    assert pod_status_reason(pod) == "Unknown"


def test_status_reason_replaces_phase() -> None:
    pod = make_pod(phase="Failed", reason="Evicted", message="The node was low on resource: memory.")
    assert pod_status_reason(pod) == "Evicted"


def test_scheduling_gated() -> None:
    pod = make_pod(phase="Pending", conditions=[
        {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}])
    pod["spec"]["schedulingGates"] = [{"name": "example.com/gate"}]
    assert pod_status_reason(pod) == "SchedulingGated"


def test_unschedulable_pending_pod_stays_pending() -> None:
    pod = make_pod(phase="Pending", conditions=[
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}])
    assert pod_status_reason(pod) == "Pending"


# Init containers ---------------------------------------------------------

TWO_INITS = [{"name": "i0", "image": "busybox"}, {"name": "i1", "image": "busybox"}]


def test_init_first_running() -> None:
    pod = make_pod(phase="Pending", init_specs=TWO_INITS,
                   init_statuses=[running("i0", ready=False), waiting("PodInitializing", "i1")],
                   statuses=[waiting("PodInitializing")])
    assert pod_status_reason(pod) == "Init:0/2"


def test_init_second_running() -> None:
    pod = make_pod(phase="Pending", init_specs=TWO_INITS,
                   init_statuses=[terminated("i0", reason="Completed"), running("i1", ready=False)],
                   statuses=[waiting("PodInitializing")])
    assert pod_status_reason(pod) == "Init:1/2"


def test_init_waiting_reason() -> None:
    pod = make_pod(phase="Pending", init_specs=TWO_INITS[:1],
                   init_statuses=[waiting("CrashLoopBackOff", "i0", restarts=4)],
                   statuses=[waiting("PodInitializing")])
    cells = cells_by_name(pod, "Pod")
    assert cells["Status"] == "Init:CrashLoopBackOff"
    assert cells["Restarts"] == "4"


def test_init_pod_initializing_waiting_counts_as_progress() -> None:
    pod = make_pod(phase="Pending", init_specs=TWO_INITS[:1], init_statuses=[waiting("PodInitializing", "i0")])
    assert pod_status_reason(pod) == "Init:0/1"


def test_init_failures() -> None:
    def with_init(status_: dict[str, Any]) -> str:
        return pod_status_reason(make_pod(phase="Pending", init_specs=TWO_INITS[:1], init_statuses=[status_]))

    assert with_init(terminated("i0", exit_code=1, reason="Error")) == "Init:Error"
    assert with_init(terminated("i0", exit_code=1, reason="OOMKilled")) == "Init:OOMKilled"
    assert with_init(terminated("i0", exit_code=3)) == "Init:ExitCode:3"
    assert with_init(terminated("i0", exit_code=143, signal=15)) == "Init:Signal:15"


def test_after_init_app_container_pod_initializing() -> None:
    pod = make_pod(phase="Pending", init_specs=TWO_INITS[:1],
                   init_statuses=[terminated("i0", reason="Completed")],
                   statuses=[waiting("PodInitializing")])
    assert pod_status_reason(pod) == "PodInitializing"


def test_init_done_and_running() -> None:
    pod = make_pod(init_specs=TWO_INITS, conditions=READY_TRUE,
                   init_statuses=[terminated("i0", reason="Completed"), terminated("i1", reason="Completed")],
                   statuses=[running()])
    cells = cells_by_name(pod, "Pod")
    assert (cells["Ready"], cells["Status"]) == ("1/1", "Running")


def test_sidecar_counts_in_ready_and_total() -> None:
    sidecar_spec = [{"name": "proxy", "image": "envoy", "restartPolicy": "Always"}]
    pod = make_pod(init_specs=sidecar_spec, conditions=READY_TRUE,
                   init_statuses=[running("proxy", restarts=2)],
                   statuses=[running("c0", restarts=1)])
    cells = cells_by_name(pod, "Pod")
    assert cells["Ready"] == "2/2"
    assert cells["Status"] == "Running"
    assert cells["Restarts"] == "3"


def test_sidecar_not_started_blocks_initialization() -> None:
    sidecar_spec = [{"name": "proxy", "image": "envoy", "restartPolicy": "Always"}]
    pod = make_pod(phase="Pending", init_specs=sidecar_spec,
                   init_statuses=[{"name": "proxy", "ready": False, "started": False, "restartCount": 0,
                                   "state": {"running": {}}}],
                   statuses=[waiting("PodInitializing")])
    cells = cells_by_name(pod, "Pod")
    assert cells["Status"] == "Init:0/1"
    assert cells["Ready"] == "0/2"


def test_summarize_pod_exposes_counts() -> None:
    summary = summarize_pod(make_pod(statuses=[running()], conditions=READY_TRUE))
    assert summary.ready == "1/1"
    assert summary.reason == "Running"
    assert summary.restarts == 0


def test_pod_wide_cells() -> None:
    pod = make_pod(statuses=[running()], conditions=[*READY_TRUE, {"type": "example.com/gate", "status": "True"}],
                   podIPs=[{"ip": "10.244.1.7"}, {"ip": "fd00::7"}], podIP="10.244.1.7",
                   nominatedNodeName="node-b")
    pod["spec"]["nodeName"] = "node-a"
    pod["spec"]["readinessGates"] = [{"conditionType": "example.com/gate"}, {"conditionType": "example.com/other"}]
    cells = cells_by_name(pod, "Pod")
    assert (cells["IP"], cells["Node"], cells["Nominated Node"], cells["Readiness Gates"]) == (
        "10.244.1.7", "node-a", "node-b", "1/2")


def test_pod_ip_falls_back_to_single_pod_ip() -> None:
    pod = make_pod(statuses=[running()], podIP="10.244.0.9")
    assert cells_by_name(pod, "Pod")["IP"] == "10.244.0.9"


def test_age_unknown_without_creation_timestamp() -> None:
    pod = make_pod()
    del pod["metadata"]["creationTimestamp"]
    assert cells_by_name(pod, "Pod")["Age"] == "<unknown>"


# --------------------------------------------------------------------------
# Nodes


def make_node(ready: str | None = "True", **spec: Any) -> dict[str, Any]:
    conditions = [{"type": "MemoryPressure", "status": "False"}]
    if ready is not None:
        conditions.append({"type": "Ready", "status": ready})
    return {
        "metadata": {"name": "node-a", "creationTimestamp": ago(days=3), "labels": {}},
        "spec": spec,
        "status": {
            "conditions": conditions,
            "addresses": [{"type": "Hostname", "address": "node-a"}, {"type": "InternalIP", "address": "10.0.0.5"}],
            "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "Debian GNU/Linux 12",
                         "kernelVersion": "6.1.0", "containerRuntimeVersion": "podlife://0.1.0"},
        },
    }


def test_node_columns() -> None:
    assert normal_names("Node") == ["Name", "Status", "Roles", "Age", "Version"]
    assert wide_names("Node") == ["Internal-IP", "External-IP", "OS-Image", "Kernel-Version", "Container-Runtime"]


@pytest.mark.parametrize(
    ("ready", "unschedulable", "expected"),
    [
        ("True", False, "Ready"),
        ("False", False, "NotReady"),
        ("Unknown", False, "NotReady"),
        (None, False, "Unknown"),
        ("True", True, "Ready,SchedulingDisabled"),
        ("False", True, "NotReady,SchedulingDisabled"),
    ],
)
def test_node_status(ready: str | None, unschedulable: bool, expected: str) -> None:
    node = make_node(ready, **({"unschedulable": True} if unschedulable else {}))
    assert cells_by_name(node, "Node")["Status"] == expected


def test_node_cells_and_roles() -> None:
    node = make_node()
    assert cells_by_name(node, "Node") == {
        "Name": "node-a", "Status": "Ready", "Roles": "<none>", "Age": "3d", "Version": "v1.32.0",
        "Internal-IP": "10.0.0.5", "External-IP": "<none>", "OS-Image": "Debian GNU/Linux 12",
        "Kernel-Version": "6.1.0", "Container-Runtime": "podlife://0.1.0",
    }
    node["metadata"]["labels"] = {"node-role.kubernetes.io/worker": "", "node-role.kubernetes.io/control-plane": "",
                                  "kubernetes.io/role": "infra", "node-role.kubernetes.io/": "x"}
    assert cells_by_name(node, "Node")["Roles"] == "control-plane,infra,worker"


def test_node_without_node_info_reports_unknown_wide_fields() -> None:
    node = {"metadata": {"name": "n"}, "status": {}}
    cells = cells_by_name(node, "Node")
    assert cells["Version"] == ""
    assert cells["OS-Image"] == cells["Kernel-Version"] == cells["Container-Runtime"] == "<unknown>"


# --------------------------------------------------------------------------
# Events


def test_event_columns_order() -> None:
    assert normal_names("Event") == ["Last Seen", "Type", "Reason", "Object", "Message"]
    assert wide_names("Event") == ["Subobject", "Source", "First Seen", "Count", "Name"]
    assert names("Event") == ["Last Seen", "Type", "Reason", "Object", "Subobject", "Source", "Message",
                              "First Seen", "Count", "Name"]


def test_core_event_cells() -> None:
    event = {
        "metadata": {"name": "web.17f", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{c0}"},
        "reason": "Pulled", "message": "  Container image already present  \n", "type": "Normal",
        "source": {"component": "kubelet", "host": "node-a"},
        "firstTimestamp": ago(minutes=10), "lastTimestamp": ago(minutes=2), "count": 3,
    }
    assert row_cells(event, "Event", now=NOW) == [
        "2m", "Normal", "Pulled", "pod/web", "spec.containers{c0}", "kubelet, node-a",
        "Container image already present", "10m", 3, "web.17f"]


def test_event_with_event_time_only_and_series() -> None:
    event = {
        "metadata": {"name": "e"}, "involvedObject": {"kind": "Node"}, "type": "Warning", "reason": "R",
        "eventTime": "2025-03-01T11:59:29.500000Z", "reportingComponent": "scheduler",
        "reportingInstance": "", "count": 0,
    }
    cells = cells_by_name(event, "Event")
    assert (cells["Last Seen"], cells["First Seen"], cells["Count"]) == ("30s", "30s", 1)
    assert cells["Object"] == "node"
    assert cells["Source"] == "scheduler"
    event["series"] = {"count": 7, "lastObservedTime": "2025-03-01T11:59:55.000000Z"}
    cells = cells_by_name(event, "Event")
    assert (cells["Last Seen"], cells["Count"]) == ("5s", 7)


def test_events_api_group_event() -> None:
    event = {
        "metadata": {"name": "e2"}, "regarding": {"kind": "Deployment", "name": "web"},
        "note": "Scaled up", "reason": "ScalingReplicaSet", "type": "Normal",
        "reportingController": "deployment-controller", "eventTime": ago(seconds=90),
    }
    cells = cells_by_name(event, "Event", "events.k8s.io")
    assert cells["Object"] == "deployment/web"
    assert cells["Message"] == "Scaled up"
    assert cells["Source"] == "deployment-controller"
    assert cells["Last Seen"] == "90s"


# --------------------------------------------------------------------------
# Services and endpoints


def make_service(type_: str = "ClusterIP", **spec: Any) -> dict[str, Any]:
    base = {"type": type_, "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
            "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}], "selector": {"app": "web"}}
    base.update(spec)
    return {"metadata": {"name": "web", "creationTimestamp": ago(hours=2)}, "spec": base}


def test_service_columns_and_cluster_ip() -> None:
    assert normal_names("Service") == ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age"]
    assert wide_names("Service") == ["Selector"]
    assert row_cells(make_service(), "Service", now=NOW) == [
        "web", "ClusterIP", "10.96.0.10", "<none>", "80/TCP", "120m", "app=web"]


def test_service_node_port_and_external_ips() -> None:
    svc = make_service("NodePort", ports=[{"port": 80, "nodePort": 30080, "protocol": "TCP"},
                                          {"port": 53, "protocol": "UDP"}], externalIPs=["1.2.3.4"])
    cells = cells_by_name(svc, "Service")
    assert cells["Port(s)"] == "80:30080/TCP,53/UDP"
    assert cells["External-IP"] == "1.2.3.4"


def test_service_load_balancer() -> None:
    svc = make_service("LoadBalancer")
    assert cells_by_name(svc, "Service")["External-IP"] == "<pending>"
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "lb.example.com"}]}}
    assert cells_by_name(svc, "Service")["External-IP"] == "203.0.113.9,lb.example.com"


def test_service_headless_external_name_and_no_selector() -> None:
    headless = make_service(clusterIP="None", clusterIPs=["None"], ports=[], selector={})
    cells = cells_by_name(headless, "Service")
    assert (cells["Cluster-IP"], cells["Port(s)"], cells["Selector"]) == ("None", "<none>", "<none>")
    external = make_service("ExternalName", externalName="db.example.com", clusterIP="", clusterIPs=[], ports=[])
    cells = cells_by_name(external, "Service")
    assert (cells["Cluster-IP"], cells["External-IP"]) == ("<none>", "db.example.com")


def test_endpoints() -> None:
    def endpoints(*subsets: dict[str, Any]) -> dict[str, Any]:
        return {"metadata": {"name": "web"}, "subsets": list(subsets)}

    assert cells_by_name(endpoints(), "Endpoints")["Endpoints"] == "<none>"
    one = {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 8080}]}
    assert cells_by_name(endpoints(one), "Endpoints")["Endpoints"] == "10.0.0.1:8080,10.0.0.2:8080"
    many = {"addresses": [{"ip": f"10.0.0.{i}"} for i in range(1, 6)], "ports": [{"port": 80}]}
    assert cells_by_name(endpoints(many), "Endpoints")["Endpoints"] == (
        "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 2 more...")
    headless = {"addresses": [{"ip": "10.0.0.9"}]}
    assert cells_by_name(endpoints(headless), "Endpoints")["Endpoints"] == "10.0.0.9"
    ipv6 = {"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]}
    assert cells_by_name(endpoints(ipv6), "Endpoints")["Endpoints"] == "[fd00::1]:80"


# --------------------------------------------------------------------------
# Small core kinds


def test_namespace_configmap_secret_serviceaccount() -> None:
    meta = {"name": "x", "creationTimestamp": ago(seconds=30)}
    assert row_cells({"metadata": meta, "status": {"phase": "Active"}}, "Namespace", now=NOW) == ["x", "Active", "30s"]
    assert row_cells({"metadata": meta, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}},
                     "ConfigMap", now=NOW) == ["x", 3, "30s"]
    assert row_cells({"metadata": meta}, "ConfigMap", now=NOW) == ["x", 0, "30s"]
    assert row_cells({"metadata": meta, "type": "Opaque", "data": {"k": "dg=="}}, "Secret", now=NOW) == [
        "x", "Opaque", 1, "30s"]
    assert row_cells({"metadata": meta, "secrets": []}, "ServiceAccount", now=NOW) == ["x", 0, "30s"]


def test_persistent_volume_and_claim() -> None:
    pv = {"metadata": {"name": "pv1", "creationTimestamp": ago(days=1)},
          "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
                   "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "standard",
                   "claimRef": {"namespace": "default", "name": "data"}},
          "status": {"phase": "Bound"}}
    assert row_cells(pv, "PersistentVolume", now=NOW) == [
        "pv1", "1Gi", "RWO,RWX", "Retain", "Bound", "default/data", "standard", "<unset>", "", "24h", "<unset>"]
    pvc = {"metadata": {"name": "data", "creationTimestamp": ago(days=1)},
           "spec": {"volumeName": "pv1", "storageClassName": "standard", "volumeMode": "Filesystem"},
           "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}}
    assert row_cells(pvc, "PersistentVolumeClaim", now=NOW) == [
        "data", "Bound", "pv1", "1Gi", "RWO", "standard", "<unset>", "24h", "Filesystem"]
    pending = {"metadata": {"name": "p", "deletionTimestamp": ago(seconds=1)}, "spec": {},
               "status": {"phase": "Pending"}}
    assert row_cells(pending, "PersistentVolumeClaim", now=NOW)[1:5] == ["Terminating", "", "", ""]


# --------------------------------------------------------------------------
# Workloads


def pod_template(*containers: tuple[str, str]) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": n, "image": i} for n, i in containers]}}


def test_deployment() -> None:
    assert normal_names("Deployment", "apps") == ["Name", "Ready", "Up-to-date", "Available", "Age"]
    assert wide_names("Deployment", "apps") == ["Containers", "Images", "Selector"]
    deployment = {
        "metadata": {"name": "web", "creationTimestamp": ago(minutes=3)},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": pod_template(("nginx", "nginx:1.27"), ("log", "busybox"))},
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
    }
    assert row_cells(deployment, "Deployment", "apps", NOW) == [
        "web", "2/3", 3, 2, "3m", "nginx,log", "nginx:1.27,busybox", "app=web"]
    deployment["status"] = {}
    deployment["spec"]["selector"] = {}
    cells = row_cells(deployment, "Deployment", "apps", NOW)
    assert cells[1:4] == ["0/3", 0, 0]
    assert cells[-1] == ""


def test_replica_set_selector_rendering() -> None:
    rs = {"metadata": {"name": "web-5d4"},
          "spec": {"replicas": 2, "selector": {
              "matchLabels": {"app": "web"},
              "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]},
                                   {"key": "canary", "operator": "DoesNotExist"},
                                   {"key": "zone", "operator": "Exists"}]},
                   "template": pod_template(("c", "img"))},
          "status": {"replicas": 2, "readyReplicas": 1}}
    cells = cells_by_name(rs, "ReplicaSet", "apps")
    assert (cells["Desired"], cells["Current"], cells["Ready"]) == (2, 2, 1)
    assert cells["Selector"] == "app=web,!canary,tier in (a,b),zone"
    rs["spec"].pop("selector")
    assert cells_by_name(rs, "ReplicaSet", "apps")["Selector"] == "<none>"


def test_daemon_set_and_stateful_set() -> None:
    ds = {"metadata": {"name": "agent"},
          "spec": {"selector": {"matchLabels": {"app": "agent"}},
                   "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                                         "containers": [{"name": "a", "image": "agent:1"}]}}},
          "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                     "updatedNumberScheduled": 3, "numberAvailable": 2}}
    assert names("DaemonSet", "apps")[:8] == ["Name", "Desired", "Current", "Ready", "Up-to-date", "Available",
                                              "Node Selector", "Age"]
    assert row_cells(ds, "DaemonSet", "apps", NOW) == [
        "agent", 3, 3, 2, 3, 2, "kubernetes.io/os=linux", "<unknown>", "a", "agent:1", "app=agent"]
    sts = {"metadata": {"name": "db"}, "spec": {"replicas": 3, "template": pod_template(("pg", "postgres:16"))},
           "status": {"readyReplicas": 1}}
    assert normal_names("StatefulSet", "apps") == ["Name", "Ready", "Age"]
    assert row_cells(sts, "StatefulSet", "apps", NOW) == ["db", "1/3", "<unknown>", "pg", "postgres:16"]


def make_job(**status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "pi", "creationTimestamp": ago(minutes=8)},
            "spec": {"completions": 1, "parallelism": 1, "template": pod_template(("pi", "perl")),
                     "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "abc"}}},
            "status": status}


def test_job_columns_and_statuses() -> None:
    assert normal_names("Job", "batch") == ["Name", "Status", "Completions", "Duration", "Age"]
    running_job = make_job(startTime=ago(minutes=7), active=1)
    assert row_cells(running_job, "Job", "batch", NOW)[:5] == ["pi", "Running", "0/1", "7m", "8m"]
    done = make_job(startTime=ago(minutes=7), completionTime=ago(minutes=6, seconds=50), succeeded=1,
                    conditions=[{"type": "SuccessCriteriaMet", "status": "True"},
                                {"type": "Complete", "status": "True"}])
    assert row_cells(done, "Job", "batch", NOW)[:4] == ["pi", "Complete", "1/1", "10s"]
    failed = make_job(conditions=[{"type": "Failed", "status": "True"}])
    assert cells_by_name(failed, "Job", "batch")["Status"] == "Failed"
    assert cells_by_name(failed, "Job", "batch")["Duration"] == ""
    suspended = make_job(conditions=[{"type": "Suspended", "status": "True"}])
    assert cells_by_name(suspended, "Job", "batch")["Status"] == "Suspended"
    deleting = make_job()
    deleting["metadata"]["deletionTimestamp"] = ago(seconds=1)
    assert cells_by_name(deleting, "Job", "batch")["Status"] == "Terminating"


def test_job_completions_without_completions() -> None:
    job = make_job(succeeded=2)
    job["spec"].pop("completions")
    job["spec"]["parallelism"] = 3
    assert cells_by_name(job, "Job", "batch")["Completions"] == "2/1 of 3"
    job["spec"]["parallelism"] = 1
    assert cells_by_name(job, "Job", "batch")["Completions"] == "2/1"


def test_cron_job() -> None:
    assert normal_names("CronJob", "batch") == ["Name", "Schedule", "Timezone", "Suspend", "Active",
                                                "Last Schedule", "Age"]
    cron = {"metadata": {"name": "hello", "creationTimestamp": ago(hours=1)},
            "spec": {"schedule": "*/5 * * * *", "suspend": False,
                     "jobTemplate": {"spec": {"template": pod_template(("hello", "busybox"))}}},
            "status": {"active": [{"name": "hello-1"}], "lastScheduleTime": ago(minutes=4)}}
    assert row_cells(cron, "CronJob", "batch", NOW) == [
        "hello", "*/5 * * * *", "<none>", "False", 1, "4m", "60m", "hello", "busybox", "<none>"]
    cron["spec"].pop("suspend")
    cron["spec"]["timeZone"] = "Etc/UTC"
    cron["status"] = {}
    cells = cells_by_name(cron, "CronJob", "batch")
    assert (cells["Timezone"], cells["Suspend"], cells["Active"], cells["Last Schedule"]) == (
        "Etc/UTC", "<unset>", 0, "<none>")


def test_lease_priority_class_and_service_account_like_kinds() -> None:
    lease = {"metadata": {"name": "node-a", "creationTimestamp": ago(seconds=10)},
             "spec": {"holderIdentity": "node-a", "leaseDurationSeconds": 40}}
    assert row_cells(lease, "Lease", "coordination.k8s.io", NOW) == ["node-a", "node-a", "10s"]
    assert row_cells({"metadata": {"name": "l"}, "spec": {}}, "Lease", "coordination.k8s.io", NOW)[1] == ""
    pc = {"metadata": {"name": "system-node-critical"}, "value": 2000001000, "preemptionPolicy": "PreemptLowerPriority"}
    assert names("PriorityClass", "scheduling.k8s.io") == ["Name", "Value", "Global-Default", "Age",
                                                           "PreemptionPolicy"]
    assert wide_names("PriorityClass", "scheduling.k8s.io") == []
    assert row_cells(pc, "PriorityClass", "scheduling.k8s.io", NOW) == [
        "system-node-critical", 2000001000, False, "<unknown>", "PreemptLowerPriority"]


def test_role_binding_wide_subjects() -> None:
    binding = {"metadata": {"name": "read"}, "roleRef": {"kind": "ClusterRole", "name": "view"},
               "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "devs"},
                            {"kind": "ServiceAccount", "namespace": "ci", "name": "bot"},
                            {"kind": "User", "name": "bob"}]}
    assert row_cells(binding, "RoleBinding", "rbac.authorization.k8s.io", NOW) == [
        "read", "ClusterRole/view", "<unknown>", "alice, bob", "devs", "ci/bot"]


def test_hpa_targets() -> None:
    hpa = {"metadata": {"name": "web"},
           "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 5,
                    "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                        "type": "Utilization", "averageUtilization": 50}}}]},
           "status": {"currentReplicas": 2, "currentMetrics": [
               {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 31}}}]}}
    assert row_cells(hpa, "HorizontalPodAutoscaler", "autoscaling", NOW) == [
        "web", "Deployment/web", "cpu: 31%/50%", "1", 5, 2, "<unknown>"]
    v1 = {"metadata": {"name": "old"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "old"},
                                                 "maxReplicas": 3}}
    assert cells_by_name(v1, "HorizontalPodAutoscaler", "autoscaling")["Targets"] == "cpu: <unknown>/80%"


# --------------------------------------------------------------------------
# Generic table, CRDs, lookups


def test_unknown_kinds_use_generic_name_and_created_at() -> None:
    crd = {"metadata": {"name": "widgets.example.com", "creationTimestamp": "2025-02-01T10:00:00Z"}}
    for kind, group in [("CustomResourceDefinition", "apiextensions.k8s.io"),
                        ("Role", "rbac.authorization.k8s.io"), ("Gadget", "example.com")]:
        definitions = column_definitions(kind, group)
        assert [(d["name"], d["type"], d["format"]) for d in definitions] == [
            ("Name", "string", "name"), ("Created At", "date", "")]
        assert row_cells(crd, kind, group, NOW) == ["widgets.example.com", "2025-02-01T10:00:00Z"]
    assert row_cells({"metadata": {"name": "x"}}, "Role", "rbac.authorization.k8s.io", NOW) == [
        "x", "0001-01-01T00:00:00Z"]


def test_printer_lookup_accepts_api_versions_and_bare_kinds() -> None:
    deployment = printer_for("Deployment", "apps")
    assert printer_for("Deployment", "apps/v1") is deployment
    assert printer_for("Deployment") is deployment
    assert printer_for("Pod", "v1") is printer_for("Pod")
    assert printer_for("Deployment", "example.com") is DEFAULT_PRINTER
    assert printer_for("Event") is not printer_for("Event", "events.k8s.io")
    assert ("network.podlife.io", "Port") in known_kinds()


def test_every_printer_produces_one_cell_per_column_even_for_sparse_objects() -> None:
    sparse = {"metadata": {"name": "x"}}
    for group, kind in known_kinds():
        cells = row_cells(sparse, kind, group, NOW)
        assert len(cells) == len(column_definitions(kind, group)), (group, kind)
        assert cells[names(kind, group).index("Name")] == "x" if "Name" in names(kind, group) else True


PRINTER_COLUMNS = [
    {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
     "description": "Readiness"},
    {"name": "Ratio", "type": "number", "jsonPath": ".status.ratio", "priority": 1},
    {"name": "Paused", "type": "boolean", "jsonPath": ".spec.paused"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def widget(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w1", "namespace": "default", "creationTimestamp": ago(minutes=2)},
            "spec": {"replicas": 3, "paused": False, **spec},
            "status": {"ratio": 2, "conditions": [{"type": "Synced", "status": "False"},
                                                  {"type": "Ready", "status": "True"}]}}


def test_crd_printer_columns() -> None:
    definitions, row = crd_columns(PRINTER_COLUMNS)
    assert [(d["name"], d["type"], d["priority"]) for d in definitions] == [
        ("Name", "string", 0), ("Replicas", "integer", 0), ("Ready", "string", 0), ("Ratio", "number", 1),
        ("Paused", "boolean", 0), ("Age", "date", 0)]
    assert definitions[2]["description"] == "Readiness"
    assert ".spec.replicas" in definitions[1]["description"]
    assert row(widget(), NOW) == ["w1", 3, "True", 2.0, False, "2m"]


def test_crd_missing_values_are_null_cells() -> None:
    _, row = crd_columns(PRINTER_COLUMNS)
    bare = {"metadata": {"name": "w2"}}
    assert row(bare, NOW) == ["w2", None, None, None, None, None]


def test_crd_type_mismatches() -> None:
    _, row = crd_columns([{"name": "N", "type": "integer", "jsonPath": ".spec.v"},
                          {"name": "S", "type": "string", "jsonPath": ".spec.v"},
                          {"name": "D", "type": "date", "jsonPath": ".spec.when"}])
    odd = {"metadata": {"name": "a"}, "spec": {"v": 2.9, "when": "yesterday"}}
    assert row(odd, NOW) == ["a", 2, "2.9", "<invalid>"]
    assert row({"metadata": {"name": "a"}, "spec": {"v": "x"}}, NOW) == ["a", None, "x", None]
    assert row({"metadata": {"name": "a"}, "spec": {"v": ["p", "q"]}}, NOW)[2] == "[p q]"
    assert row({"metadata": {"name": "a"}, "spec": {"v": {"b": 1, "a": True}}}, NOW)[2] == "map[a:true b:1]"


def test_crd_without_printer_columns_gets_name_and_age() -> None:
    definitions, row = crd_columns([])
    assert [(d["name"], d["type"]) for d in definitions] == [("Name", "string"), ("Age", "date")]
    assert row(widget(), NOW) == ["w1", "2m"]


def test_crd_bad_json_path_yields_null_cells() -> None:
    definitions, row = crd_columns([{"name": "Bad", "type": "string", "jsonPath": ".spec[?(nonsense"}])
    assert len(definitions) == 2
    assert row(widget(), NOW) == ["w1", None]


def test_to_table_with_printer_columns() -> None:
    table = to_table([widget()], "Widget", "example.com", printer_columns=PRINTER_COLUMNS, now=NOW)
    assert [c["name"] for c in table["columnDefinitions"]][:3] == ["Name", "Replicas", "Ready"]
    assert table["rows"][0]["cells"] == ["w1", 3, "True", 2.0, False, "2m"]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        (".spec.replicas", [3]),
        ("{.spec.replicas}", [3]),
        ("$.spec.replicas", [3]),
        (".status.conditions[0].type", ["Synced"]),
        (".status.conditions[-1].type", ["Ready"]),
        (".status.conditions[*].type", ["Synced", "Ready"]),
        (".status.conditions[0:1].type", ["Synced"]),
        ('.status.conditions[?(@.status!="True")].type', ["Synced"]),
        (".status.conditions[?(@.reason)].type", []),
        (".metadata.labels['app.kubernetes.io/name']", ["widget"]),
        (".metadata.labels.app\\.kubernetes\\.io/name", ["widget"]),
        ("..type", ["Synced", "Ready"]),
        (".spec.missing.deeper", []),
        (".spec.items[?(@.n>=2)].n", [2, 5]),
    ],
)
def test_json_path_subset(expression: str, expected: list[Any]) -> None:
    obj = widget(items=[{"n": 1}, {"n": 2}, {"n": 5}])
    obj["metadata"]["labels"] = {"app.kubernetes.io/name": "widget"}
    assert JsonPath(expression).find(obj) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1.5, "1.5"), (100.0, "100"), (123456.0, "123456"), (1234567.0, "1.234567e+06"), (0.0001, "0.0001"),
     (0.00001, "1e-05"), (-2.25, "-2.25"), (7, "7"), (None, "<nil>")],
)
def test_go_format(value: Any, expected: str) -> None:
    assert go_format(value) == expected


# --------------------------------------------------------------------------
# to_table


def test_to_table_envelope_and_include_object_metadata() -> None:
    pod = make_pod(statuses=[running()], conditions=READY_TRUE)
    table = to_table([pod], "Pod", resource_version="42", continue_token="tok", now=NOW)
    assert table["kind"] == "Table"
    assert table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "42", "continue": "tok"}
    assert len(table["columnDefinitions"]) == 9
    row = table["rows"][0]
    assert row["cells"][:3] == ["web", "1/1", "Running"]
    assert row["object"] == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": pod["metadata"]}
    assert "conditions" not in row


def test_to_table_include_object_variants() -> None:
    pod = make_pod()
    assert to_table([pod], "Pod", include_object="Object", now=NOW)["rows"][0]["object"] is pod
    assert "object" not in to_table([pod], "Pod", include_object="None", now=NOW)["rows"][0]
    assert to_table([pod], "Pod", include_object="", now=NOW)["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    with pytest.raises(ValueError):
        to_table([pod], "Pod", include_object="Everything")


def test_to_table_empty_list_omits_empty_list_meta_and_honours_no_headers() -> None:
    table = to_table([], "Pod", now=NOW)
    assert table["rows"] == [] and table["metadata"] == {}
    assert len(table["columnDefinitions"]) == 9
    assert to_table([], "Pod", no_headers=True, remaining_item_count=4)["columnDefinitions"] == []
    assert to_table([], "Pod", remaining_item_count=4)["metadata"] == {"remainingItemCount": 4}


def test_to_table_is_json_serializable() -> None:
    import json

    table = to_table([make_pod(statuses=[running()]), make_node()], "Pod", now=NOW)
    assert json.loads(json.dumps(table)) == table


# --------------------------------------------------------------------------
# podlife network kinds


def test_port_table() -> None:
    assert normal_names("Port", "network.podlife.io") == ["Name", "IP", "MAC", "Subnet", "Node", "Status", "Age"]
    assert wide_names("Port", "network.podlife.io") == ["Pod UID", "Device Owner", "VIF Type", "Security Groups"]
    port = {"apiVersion": "network.podlife.io/v1", "kind": "Port",
            "metadata": {"name": "port-web", "namespace": "default", "creationTimestamp": ago(seconds=45)},
            "spec": {"subnet": "pods", "macAddress": "fa:16:3e:00:00:01",
                     "fixedIPs": [{"ipAddress": "10.244.0.5", "subnet": "pods"}],
                     "podName": "web", "podUID": "u-1", "nodeName": "node-a", "deviceID": "u-1",
                     "deviceOwner": "podlife:container", "vifType": "veth", "securityGroups": ["default-default"]},
            "status": {"phase": "ACTIVE"}}
    assert row_cells(port, "Port", "network.podlife.io", NOW) == [
        "port-web", "10.244.0.5", "fa:16:3e:00:00:01", "pods", "node-a", "ACTIVE", "45s", "u-1", "podlife:container",
        "veth", "default-default"]
    bare = {"metadata": {"name": "p"}, "spec": {"fixedIPs": [{"ipAddress": "10.0.0.2", "subnet": "s1"},
                                                           {"ipAddress": "fd00::2", "subnet": "s1"}]}}
    assert row_cells(bare, "Port", "network.podlife.io", NOW) == [
        "p", "10.0.0.2,fd00::2", "<none>", "s1", "<none>", "<none>", "<unknown>", "<none>", "<none>", "<none>", "<none>"]


def test_subnet_table() -> None:
    assert normal_names("Subnet", "network.podlife.io") == ["Name", "CIDR", "Gateway", "Used", "Free", "Age"]
    assert wide_names("Subnet", "network.podlife.io") == ["Reserved", "Node"]
    subnet = {"metadata": {"name": "pods", "creationTimestamp": ago(days=2, hours=3)},
              "spec": {"cidr": "10.244.0.0/24", "gateway": "10.244.0.1"},
              "status": {"allocated": 15, "used": 12, "reserved": 3, "free": 238}}
    assert row_cells(subnet, "Subnet", "network.podlife.io", NOW) == [
        "pods", "10.244.0.0/24", "10.244.0.1", 12, 238, "2d3h", 3, "<none>"]
    older = {"metadata": {"name": "pods", "creationTimestamp": ago(days=2, hours=3)},
             "spec": {"cidr": "10.244.0.0/24", "gateway": "10.244.0.1"}, "status": {"allocated": 12}}
    assert row_cells(older, "Subnet", "network.podlife.io", NOW)[3:5] == [12, 241]
