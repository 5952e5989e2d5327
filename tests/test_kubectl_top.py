"""``kubectl top``, as a user runs it, on real and on simulated nodes.

Real node: ``podlife up --nodes 1`` with real containers, a busybox spinning in a loop and an
idle one; ``kubectl top pods --containers`` and ``kubectl top nodes`` answer (polled until they
do: the API server scrapes the kubelet on the first request) with the busy container above
zero and above the idle one, and the node busy too.

Simulated nodes: usage is declared, so the numbers are exact -- the containers' requests, the
``podlife.io/sim-usage-*`` annotations, a stage file's ``usage`` stages, 0 without any of
them -- and a node shows the sum of its pods.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from .cluster_harness import PodlifeProcess, running_podlife, wait_for
from .test_e2e_containers import oci_cluster

pytestmark = pytest.mark.e2e


def _millicores(text: str) -> int:
    match = re.fullmatch(r"(\d+)m", text)
    assert match, text
    return int(match.group(1))


def top_rows(cluster: PodlifeProcess, *args: str) -> list[list[str]] | None:
    """``kubectl top ARGS --no-headers`` as rows of cells; None while it has no metrics yet."""
    result = cluster.kubectl("top", *args, "--no-headers", check=False)
    if result.returncode != 0 or not result.stdout.strip():
        return None
    return [line.split() for line in result.stdout.strip().splitlines()]


def _pod(name: str, containers: list[dict], *, node: str | None = None, labels: dict | None = None,
         annotations: dict | None = None) -> dict:
    meta: dict = {"name": name}
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    spec: dict = {"terminationGracePeriodSeconds": 1, "containers": containers}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def _container(name: str, command: list[str] | None = None, requests: dict | None = None) -> dict:
    c: dict = {"name": name, "image": "busybox"}
    if command:
        c["command"] = command
    if requests:
        c["resources"] = {"requests": requests}
    return c


# ---- a real node ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    with oci_cluster(tmp_path_factory.mktemp("top-real") / "data", "--nodes", "1") as proc:
        for pod in (_pod("busy", [_container("spin", ["sh", "-c", "while :; do :; done"]),
                                  _container("rest", ["sleep", "3600"])]),
                    _pod("idle", [_container("idle", ["sleep", "3600"])])):
            proc.kubectl("apply", "-f", "-", input=json.dumps(pod))
        proc.kubectl("wait", "--for=condition=Ready", "pod/busy", "pod/idle", "--timeout=90s", timeout=100)
        yield proc
        proc.kubectl("delete", "pod", "busy", "idle", "--grace-period=1", "--wait=true", check=False, timeout=90)


def test_top_pods_containers_on_a_real_node(real_cluster: PodlifeProcess) -> None:
    def busy_shows() -> dict[tuple[str, str], tuple[int, str]] | None:
        rows = top_rows(real_cluster, "pods", "--containers")
        if rows is None:
            return None
        found = {(pod, container): (_millicores(cpu), memory) for pod, container, cpu, memory in rows}
        if {("busy", "spin"), ("busy", "rest"), ("idle", "idle")} - set(found):
            return None
        return found if found[("busy", "spin")][0] > 0 else None

    found = wait_for(busy_shows, 60, interval=0.5, what="kubectl top pods --containers to show the busy container")
    spin = found[("busy", "spin")][0]
    assert spin > found[("idle", "idle")][0] and spin > found[("busy", "rest")][0], found
    assert all(re.fullmatch(r"\d+Mi", memory) for _, memory in found.values()), found


def test_top_pods_sums_a_pods_containers(real_cluster: PodlifeProcess) -> None:
    rows = wait_for(lambda: top_rows(real_cluster, "pods"), 60, interval=0.5, what="kubectl top pods")
    by_pod = {pod: _millicores(cpu) for pod, cpu, _memory in rows}
    assert by_pod["busy"] > by_pod["idle"], by_pod


def test_top_nodes_on_a_real_node(real_cluster: PodlifeProcess) -> None:
    node = real_cluster.kubectl_json("get", "nodes")["items"][0]["metadata"]["name"]

    def shown() -> list[str] | None:
        rows = top_rows(real_cluster, "nodes")
        row = next((r for r in rows or () if r[0] == node), None)
        return row if row is not None and _millicores(row[1]) > 0 else None

    name, cpu, cpu_percent, memory, memory_percent = wait_for(shown, 60, interval=0.5, what="kubectl top nodes")
    assert _millicores(cpu) > 0 and re.fullmatch(r"\d+%", cpu_percent)
    assert re.fullmatch(r"[1-9]\d*Mi", memory) and re.fullmatch(r"\d+%", memory_percent)


def test_top_pod_by_name(real_cluster: PodlifeProcess) -> None:
    rows = wait_for(lambda: top_rows(real_cluster, "pod", "idle", "--containers"), 60, interval=0.5,
                    what="kubectl top pod idle")
    assert [r[:2] for r in rows] == [["idle", "idle"]]


# ---- simulated nodes -----------------------------------------------------------------------------

USAGE_STAGES = """
apiVersion: sim.podlife.io/v1alpha1
kind: Stage
metadata: {name: web-usage}
spec:
  selector: {matchLabels: {app: web}}
  next: {action: usage, container: web, usage: {cpu: 300m, memory: 100Mi}}
---
apiVersion: sim.podlife.io/v1alpha1
kind: Stage
metadata: {name: web-others}
spec:
  selector: {matchLabels: {app: web}}
  next: {action: usage, usage: {cpu: 50m}}
"""


@pytest.fixture(scope="module")
def sim_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    base = tmp_path_factory.mktemp("top-sim")
    stages = base / "usage.yaml"
    stages.write_text(USAGE_STAGES)
    with running_podlife(base / "data", "--nodes", "0", "--sim-nodes", "3", "--sim-stages", str(stages)) as proc:
        pods = [
            _pod("requests", [_container("c", requests={"cpu": "250m", "memory": "64Mi"})], node="sim-node-0"),
            _pod("nothing", [_container("c")], node="sim-node-0"),
            _pod("annotated", [_container("a", requests={"cpu": "1"}), _container("b")], node="sim-node-1",
                 annotations={"podlife.io/sim-usage-cpu": "120m", "podlife.io/sim-usage-memory": "32Mi"}),
            _pod("staged", [_container("web", requests={"cpu": "2", "memory": "1Gi"}),
                            _container("side", requests={"memory": "16Mi"})],
                 node="sim-node-1", labels={"app": "web"}),
        ]
        for pod in pods:
            proc.kubectl("apply", "-f", "-", input=json.dumps(pod))
        proc.kubectl("wait", "--for=condition=Ready", *(f"pod/{p['metadata']['name']}" for p in pods),
                     "--timeout=60s", timeout=70)
        yield proc


def test_top_pods_on_simulated_nodes_show_declared_usage(sim_cluster: PodlifeProcess) -> None:
    rows = wait_for(lambda: top_rows(sim_cluster, "pods", "--containers"), 30, interval=0.2,
                    what="kubectl top pods --containers")
    assert sorted(rows) == sorted([
        ["requests", "c", "250m", "64Mi"],     # the requests
        ["nothing", "c", "0m", "0Mi"],         # nothing declared, nothing requested
        ["annotated", "a", "120m", "32Mi"],    # the annotations win over requests, per container
        ["annotated", "b", "120m", "32Mi"],
        ["staged", "web", "300m", "100Mi"],    # the stage naming the container
        ["staged", "side", "50m", "16Mi"],     # the other stage's cpu, the request's memory
    ])


def test_top_nodes_on_simulated_nodes_sum_their_pods(sim_cluster: PodlifeProcess) -> None:
    rows = wait_for(lambda: top_rows(sim_cluster, "nodes"), 30, interval=0.2, what="kubectl top nodes")
    usage = {row[0]: (row[1], row[3]) for row in rows}
    assert usage == {"sim-node-0": ("250m", "64Mi"), "sim-node-1": ("590m", "180Mi"), "sim-node-2": ("0m", "0Mi")}


def test_usage_follows_a_changed_annotation(sim_cluster: PodlifeProcess) -> None:
    sim_cluster.kubectl("annotate", "pod", "nothing", "podlife.io/sim-usage-cpu=75m")
    try:
        def changed() -> list[str] | None:
            rows = top_rows(sim_cluster, "pod", "nothing")
            return rows[0] if rows and rows[0][1] == "75m" else None

        assert wait_for(changed, 30, interval=0.2, what="the new usage")[1:] == ["75m", "0Mi"]
    finally:
        sim_cluster.kubectl("annotate", "pod", "nothing", "podlife.io/sim-usage-cpu-")

