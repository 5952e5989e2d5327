"""Node-pressure eviction on a real node (``podlife up --container-runtime oci``).

The cluster's data directory is on a tmpfs of its own (600Mi), so the node's filesystem
is the cluster's alone and its free space moves only with what the test writes: other
tests running at the same time cannot make the node short of space, nor relieve it. The
hard threshold ``nodefs.available<250Mi`` is met once a pod writes 400Mi into an emptyDir.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator

import pytest

from .cluster_harness import PodlifeProcess, wait_for
from .test_e2e_containers import _require_oci, apply, busybox, oci_cluster, pod_manifest

HOUSEKEEPING = "500ms"
TRANSITION = "3s"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    _require_oci()
    fs = tmp_path_factory.mktemp("eviction") / "fs"
    fs.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600m", "tmpfs", str(fs)], check=True)
    try:
        with oci_cluster(fs / "data", "--eviction-hard", "nodefs.available<250Mi",
                         "--housekeeping-interval", HOUSEKEEPING,
                         "--eviction-pressure-transition-period", TRANSITION) as proc:
            yield proc
    finally:
        subprocess.run(["umount", "-l", str(fs)], check=False)


def _pod(cluster: PodlifeProcess, name: str) -> dict:
    return cluster.kubectl_json("get", "pod", name, "-o", "json")


def _node(cluster: PodlifeProcess) -> dict:
    return cluster.kubectl_json("get", "nodes", "-o", "json")["items"][0]


def _condition(node: dict, type_: str) -> dict:
    return next(c for c in node["status"]["conditions"] if c["type"] == type_)


def _taint_keys(node: dict) -> set[str]:
    return {t["key"] for t in (node.get("spec") or {}).get("taints") or []}


def _phase(cluster: PodlifeProcess, name: str) -> str:
    return str(_pod(cluster, name).get("status", {}).get("phase", ""))


def _evicted(cluster: PodlifeProcess, name: str) -> dict | None:
    pod = _pod(cluster, name)
    return pod if pod.get("status", {}).get("reason") == "Evicted" else None


def test_disk_pressure_evicts_the_best_effort_pod_first(cluster: PodlifeProcess) -> None:
    limits = {"cpu": "100m", "memory": "64Mi", "ephemeral-storage": "100Mi"}
    apply(cluster, pod_manifest("guaranteed", busybox("c", resources={"limits": limits})))
    wait_for(lambda: _phase(cluster, "guaranteed") == "Running", timeout=60, what="guaranteed Running")
    assert _condition(_node(cluster), "DiskPressure")["status"] == "False"

    fill = "dd if=/dev/zero of=/scratch/fill bs=1M count=400 && sleep 3600"
    apply(cluster, pod_manifest("besteffort", busybox("c", "sh", "-c", fill,
                                                      volumeMounts=[{"name": "scratch", "mountPath": "/scratch"}]),
                                volumes=[{"name": "scratch", "emptyDir": {}}]))
    pod = wait_for(lambda: _evicted(cluster, "besteffort"), timeout=60, what="besteffort evicted")
    status = pod["status"]
    assert status["phase"] == "Failed"
    quantity = r"\d+(Ki|Mi|Gi)?"
    assert re.fullmatch(
        rf"The node was low on resource: ephemeral-storage\. Threshold quantity: 250Mi, available: {quantity}\. "
        rf"(Container c was using {quantity}, request is 0, has larger consumption of ephemeral-storage\. )?",
        status["message"]), status["message"]
    disruption = [c for c in status.get("conditions") or [] if c["type"] == "DisruptionTarget"]
    assert disruption and disruption[0]["reason"] == "TerminationByKubelet"

    node = _node(cluster)
    pressure = _condition(node, "DiskPressure")
    assert (pressure["status"], pressure["reason"], pressure["message"]) == (
        "True", "KubeletHasDiskPressure", "kubelet has disk pressure")
    assert "node.kubernetes.io/disk-pressure" in _taint_keys(node)
    assert _condition(node, "MemoryPressure")["status"] == "False"
    assert _phase(cluster, "guaranteed") == "Running"  # the BestEffort pod went first
    described = cluster.kubectl("describe", "pod", "besteffort").stdout
    assert "Evicted" in described and "The node was low on resource: ephemeral-storage." in described

    # an ended pod gives its volumes back (the Failed pod object stays): the pressure ends,
    # the Guaranteed pod stays
    wait_for(lambda: _condition(_node(cluster), "DiskPressure")["status"] == "False", timeout=60,
             what="DiskPressure False")
    assert _phase(cluster, "besteffort") == "Failed"
    cluster.kubectl("delete", "pod", "besteffort", "--wait=true")
    node = _node(cluster)
    assert _condition(node, "DiskPressure")["reason"] == "KubeletHasNoDiskPressure"
    wait_for(lambda: "node.kubernetes.io/disk-pressure" not in _taint_keys(_node(cluster)), timeout=30,
             what="disk-pressure taint removed")
    guaranteed = _pod(cluster, "guaranteed")
    assert guaranteed["status"]["phase"] == "Running" and "reason" not in guaranteed["status"]
    events = json.loads(cluster.kubectl("get", "events", "-A", "-o", "json").stdout)["items"]
    reasons = {e["reason"] for e in events}
    assert {"EvictionThresholdMet", "NodeHasDiskPressure", "NodeHasNoDiskPressure"} <= reasons, reasons
    cluster.kubectl("delete", "pod", "guaranteed", "--wait=true")


def test_empty_dir_over_its_size_limit_is_evicted(cluster: PodlifeProcess) -> None:
    wait_for(lambda: not _taint_keys(_node(cluster)), timeout=60, what="node untainted")
    fill = "dd if=/dev/zero of=/scratch/fill bs=1M count=2 && sleep 3600"
    apply(cluster, pod_manifest("limited", busybox("c", "sh", "-c", fill,
                                                   volumeMounts=[{"name": "scratch", "mountPath": "/scratch"}]),
                                volumes=[{"name": "scratch", "emptyDir": {"sizeLimit": "1Mi"}}]))
    pod = wait_for(lambda: _evicted(cluster, "limited"), timeout=60, what="limited evicted")
    assert pod["status"]["phase"] == "Failed"
    assert pod["status"]["message"] == 'Usage of EmptyDir volume "scratch" exceeds the limit "1Mi". '
    assert _condition(_node(cluster), "DiskPressure")["status"] == "False"
    described = cluster.kubectl("describe", "pod", "limited").stdout
    assert "Evicted" in described
    cluster.kubectl("delete", "pod", "limited", "--wait=true")

