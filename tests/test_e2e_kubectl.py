"""Everyday kubectl commands against podlife (issue 4), with each kubectl of the matrix.

The module runs once per kubectl release (``kubectl_matrix_cluster`` in ``conftest.py``):
the pinned 1.37 from the virtualenv, and 1.33 and 1.30 where the machine has them.
"""

from __future__ import annotations

import ipaddress
import json
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podlife.machinery.constants import KUBERNETES_MINOR

from .cluster_harness import PodlifeProcess, venv_kubectl, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster(kubectl_matrix_cluster: PodlifeProcess) -> Iterator[PodlifeProcess]:
    yield kubectl_matrix_cluster

def expected_client_minor(binary: str) -> str | None:
    """The minor release a kubectl binary of the matrix must report (None: a PATH kubectl of any release)."""
    older = re.search(r"kubectl\.1\.(\d+)$", binary)
    if older:
        return older.group(1)
    pinned = venv_kubectl()
    return KUBERNETES_MINOR if pinned is not None and Path(binary) == pinned else None


def test_kubectl_and_server_versions(cluster: PodlifeProcess) -> None:
    versions = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    server = versions["serverVersion"]
    assert (server["major"], server["minor"]) == ("1", KUBERNETES_MINOR) == ("1", "37")
    assert server["gitVersion"].startswith("v1.37.")
    expected = expected_client_minor(cluster.kubectl_bin)
    if expected is not None:
        assert versions["clientVersion"]["minor"] == expected


TICKER = "i=0; trap 'exit 0' TERM; while :; do echo tick $i; i=$((i+1)); sleep 0.2; done"


def test_create_namespace_and_deployment_send_protobuf(cluster: PodlifeProcess) -> None:
    cluster.kubectl("create", "namespace", "proto-ns")
    ns = cluster.kubectl_json("get", "namespace", "proto-ns")
    assert ns["status"]["phase"] == "Active" and ns["spec"]["finalizers"] == ["kubernetes"]
    cluster.kubectl("create", "deployment", "web", "--image=nginx:1.27", "--replicas=2", "-n", "proto-ns")
    dep = cluster.kubectl_json("get", "deployment", "web", "-n", "proto-ns")
    assert dep["spec"]["replicas"] == 2 and dep["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"
    assert dep["spec"]["strategy"]["type"] == "RollingUpdate"  # server-side defaulting
    cluster.kubectl("create", "configmap", "proto-cm", "--from-literal=a=b", "-n", "proto-ns")
    cluster.kubectl("create", "secret", "generic", "proto-secret", "--from-literal=k=v", "-n", "proto-ns")
    assert cluster.kubectl_json("get", "secret", "proto-secret", "-n", "proto-ns")["data"] == {"k": "dg=="}


def test_scale_label_annotate_and_output_formats(cluster: PodlifeProcess) -> None:
    cluster.kubectl("create", "deployment", "scaled", "--image=nginx")
    cluster.kubectl("scale", "deployment", "scaled", "--replicas=4")
    dep = cluster.kubectl_json("get", "deployment", "scaled")
    assert dep["spec"]["replicas"] == 4 and dep["metadata"]["generation"] == 2
    cluster.kubectl("label", "deployment", "scaled", "tier=web")
    cluster.kubectl("annotate", "deployment", "scaled", "owner=team-a")
    meta = cluster.kubectl_json("get", "deployment", "scaled")["metadata"]
    assert meta["labels"]["tier"] == "web" and meta["annotations"]["owner"] == "team-a"
    header = cluster.kubectl("get", "deployments", "-o", "wide").stdout.splitlines()[0].split()
    assert header == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]
    assert "kind: Deployment" in cluster.kubectl("get", "deployment", "scaled", "-o", "yaml").stdout
    assert cluster.kubectl("get", "deployment", "scaled", "-o", "name").stdout.strip() == "deployment.apps/scaled"
    names = cluster.kubectl("get", "all", "-o", "name").stdout.split()
    assert "deployment.apps/scaled" in names


def test_wait_and_logs_follow(cluster: PodlifeProcess) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ticker"},
           "spec": {"terminationGracePeriodSeconds": 2,
                    "containers": [{"name": "t", "image": "busybox", "command": ["/bin/sh", "-c", TICKER]}]}}
    cluster.kubectl("create", "-f", "-", input=json.dumps(pod))
    cluster.kubectl("wait", "--for=condition=Ready", "pod/ticker", "--timeout=60s", timeout=90)
    follow = cluster.kubectl_popen("logs", "-f", "ticker")
    try:
        lines: list[str] = []
        assert follow.stdout is not None
        while len(lines) < 5:
            line = follow.stdout.readline()
            assert line, "logs -f ended early"
            lines.append(line.strip())
        assert lines[0] == "tick 0" and lines[4] == "tick 4"
    finally:
        follow.send_signal(signal.SIGTERM)
        follow.wait(10)
    tail = cluster.kubectl("logs", "ticker", "--tail=1", "--timestamps").stdout.strip()
    assert tail.split(" ", 1)[1].startswith("tick ") and tail[4] == "-"
    cluster.kubectl("delete", "pod", "ticker", "--wait=true")
    cluster.kubectl("wait", "--for=delete", "pod/ticker", "--timeout=10s")


def test_delete_waits_for_finalizers(cluster: PodlifeProcess) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "held", "finalizers": ["example.com/hold"]}}
    cluster.kubectl("create", "-f", "-", input=json.dumps(cm))
    cluster.kubectl("delete", "configmap", "held", "--wait=false")
    held = cluster.kubectl_json("get", "configmap", "held")
    assert held["metadata"]["deletionTimestamp"] and held["metadata"]["finalizers"] == ["example.com/hold"]
    cluster.kubectl("patch", "configmap", "held", "--type=json", "-p", '[{"op":"remove","path":"/metadata/finalizers"}]')
    wait_for(lambda: cluster.kubectl("get", "configmap", "held", check=False).returncode != 0, 30, what="held removed")


@pytest.mark.parametrize(("cascade", "dependent_survives"), [("background", False), ("orphan", True), ("foreground", False)])
def test_cascading_deletion(cluster: PodlifeProcess, cascade: str, dependent_survives: bool) -> None:
    owner_name, dep_name = f"owner-{cascade}", f"dependent-{cascade}"
    cluster.kubectl("create", "configmap", owner_name)
    uid = cluster.kubectl_json("get", "configmap", owner_name)["metadata"]["uid"]
    dependent = {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": dep_name, "ownerReferences": [
                     {"apiVersion": "v1", "kind": "ConfigMap", "name": owner_name, "uid": uid, "blockOwnerDeletion": True}]}}
    cluster.kubectl("create", "-f", "-", input=json.dumps(dependent))
    cluster.kubectl("delete", "configmap", owner_name, f"--cascade={cascade}", "--wait=true", timeout=60)
    if dependent_survives:
        wait_for(lambda: not cluster.kubectl_json("get", "configmap", dep_name)["metadata"].get("ownerReferences"), 30,
                 what="the owner reference removed")
    else:
        wait_for(lambda: cluster.kubectl("get", "configmap", dep_name, check=False).returncode != 0, 30,
                 what=f"{dep_name} collected")


def test_describe_explain_api_versions(cluster: PodlifeProcess) -> None:
    out = cluster.kubectl("explain", "pod.spec.containers.livenessProbe").stdout
    assert "FIELD: livenessProbe <Probe>" in out
    versions = cluster.kubectl("api-versions").stdout.split()
    for gv in ("v1", "apps/v1", "batch/v1", "coordination.k8s.io/v1", "network.podlife.io/v1", "apiextensions.k8s.io/v1"):
        assert gv in versions
    assert "Name:" in cluster.kubectl("describe", "namespace", "default").stdout


def test_services_get_cluster_ips(cluster: PodlifeProcess) -> None:
    kubernetes = cluster.kubectl_json("get", "service", "kubernetes")
    assert kubernetes["spec"]["clusterIP"] == "10.96.0.1"
    cluster.kubectl("create", "service", "clusterip", "svc-a", "--tcp=80:8080")
    cluster.kubectl("create", "service", "clusterip", "svc-b", "--tcp=80:8080")
    a = cluster.kubectl_json("get", "service", "svc-a")["spec"]["clusterIP"]
    b = cluster.kubectl_json("get", "service", "svc-b")["spec"]["clusterIP"]
    assert a != b and a.startswith("10.9") and b.startswith("10.9")
    # given from above the static band (the first 256 of 10.96.0.0/12), which stays for fixed
    # ClusterIPs such as the cluster DNS Service's 10.96.0.10 (kube-system/kube-dns, made at start)
    assert all(ipaddress.ip_address(ip) >= ipaddress.ip_address("10.96.1.0") for ip in (a, b))
    assert cluster.kubectl_json("get", "service", "kube-dns", "-n", "kube-system")["spec"]["clusterIP"] == "10.96.0.10"
    fixed = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "dns"},
             "spec": {"clusterIP": "10.96.0.53", "ports": [{"port": 53, "protocol": "UDP"}]}}
    cluster.kubectl("create", "-f", "-", input=json.dumps(fixed))
    assert a in cluster.kubectl("get", "service", "svc-a").stdout
    taken = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc-c"},
             "spec": {"clusterIP": a, "ports": [{"port": 80}]}}
    result = cluster.kubectl("create", "-f", "-", input=json.dumps(taken), check=False)
    assert result.returncode != 0 and "already allocated" in result.stderr
    cluster.kubectl("create", "service", "clusterip", "headless", "--clusterip=None")
    assert cluster.kubectl_json("get", "service", "headless")["spec"]["clusterIP"] == "None"


def current_pod(name: str) -> dict[str, Any]:
    """A pod using fields of recent releases: pod-level resources, stopSignal, resizePolicy."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"os": {"name": "linux"},
                     "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}},
                     "containers": [{"name": "app", "image": "nginx:1.27",
                                     "lifecycle": {"stopSignal": "SIGUSR1"},
                                     "resizePolicy": [{"resourceName": "cpu", "restartPolicy": "NotRequired"}]}]}}


def test_current_manifests_pass_strict_validation_and_server_side_apply(cluster: PodlifeProcess) -> None:
    cluster.kubectl("create", "--validate=strict", "-f", "-", input=json.dumps(current_pod("current-create")))
    created = cluster.kubectl_json("get", "pod", "current-create")
    assert created["spec"]["resources"] == {"limits": {"cpu": "500m", "memory": "128Mi"}}
    assert created["spec"]["containers"][0]["lifecycle"] == {"stopSignal": "SIGUSR1"}
    cluster.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(current_pod("current-apply")))
    applied = cluster.kubectl_json("get", "pod", "current-apply")
    assert applied["spec"]["containers"][0]["resizePolicy"] == [{"resourceName": "cpu", "restartPolicy": "NotRequired"}]
    typo = current_pod("current-typo")
    typo["spec"]["containers"][0]["lifecycle"] = {"stopSignall": "SIGUSR1"}
    refused = cluster.kubectl("create", "--validate=strict", "-f", "-", input=json.dumps(typo), check=False)
    assert refused.returncode != 0 and 'unknown field "spec.containers[0].lifecycle.stopSignall"' in refused.stderr
    explained = cluster.kubectl("explain", "pod.spec.containers.lifecycle.stopSignal").stdout
    assert "FIELD: stopSignal <string>" in explained
    cluster.kubectl("delete", "pod", "current-create", "current-apply", "--wait=false")
