"""The kubelet's ``/metrics/resource`` and the series the API server keeps from it.

End to end: ``podlife up --nodes 1`` with real containers (runc, cgroup files) and with host
processes; a busybox container spinning in a loop, an idle one beside it; the kubelet's endpoint
read over HTTPS (its serving certificate, the cluster CA, the bearer token ``podlife up`` gives
its kubelets) and parsed with prometheus_client's own parser: Kubernetes' names, labels and
timestamps, and the busy container's CPU growing from one scrape to the next.

Then the rules the API server applies to what it scrapes (metrics-server's: a rate over two
points, a restart starting a series again, a pod only once every container has two points), on
text the kubelet's real renderer wrote; and the ``usage`` stage of simulated nodes' stage files.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from podlife.api.resource_metrics import _NodeSeries, cpu_text, memory_text, parse_scrape, rate
from podlife.kubelet.resource_usage import ContainerSample, PodSample, ResourceSnapshot, Usage, render
from podlife.sim.stages import StageError, declared_usage, parse_stages

from .cluster_harness import PodlifeProcess, kubelet_get, running_podlife, wait_for
from .test_e2e_containers import oci_cluster

CONTAINER_LABELS = {"container", "pod", "namespace"}
USAGE_FAMILIES = {"node_cpu_usage_seconds", "node_memory_working_set_bytes", "container_cpu_usage_seconds",
                  "container_memory_working_set_bytes", "pod_cpu_usage_seconds", "pod_memory_working_set_bytes"}


@pytest.fixture(scope="module", params=["oci", "process"])
def node_cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    data = tmp_path_factory.mktemp(f"resource-metrics-{request.param}") / "data"
    if request.param == "oci":
        with oci_cluster(data, "--nodes", "1") as proc:
            yield proc
    else:
        with running_podlife(data, "--nodes", "1", "--container-runtime", "process") as proc:
            yield proc


def _pod(name: str, command: list[str]) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 1,
                     "containers": [{"name": name, "image": "busybox", "command": command}]}}


def samples(text: str) -> dict[str, list]:
    """The text's samples by family name, read by prometheus_client's parser."""
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def container_cpu(text: str, pod: str) -> tuple[float, float] | None:
    for s in samples(text).get("container_cpu_usage_seconds", []):
        if s.labels.get("pod") == pod:
            return s.value, s.timestamp
    return None


@pytest.fixture(scope="module")
def busy_and_idle(node_cluster: PodlifeProcess) -> Iterator[PodlifeProcess]:
    for pod in (_pod("busy", ["sh", "-c", "while :; do :; done"]), _pod("idle", ["sleep", "3600"])):
        node_cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))
    node_cluster.kubectl("wait", "--for=condition=Ready", "pod/busy", "pod/idle", "--timeout=90s", timeout=100)
    yield node_cluster
    node_cluster.kubectl("delete", "pod", "busy", "idle", "--grace-period=1", "--wait=true", check=False, timeout=90)


def test_kubelet_serves_kubernetes_resource_metrics(busy_and_idle: PodlifeProcess) -> None:
    status, text = kubelet_get(busy_and_idle, "/metrics/resource")
    assert status == 200, text
    found = samples(text)
    assert USAGE_FAMILIES | {"container_start_time_seconds", "scrape_error", "resource_scrape_error"} <= set(found)
    assert "# TYPE container_cpu_usage_seconds_total counter" in text
    assert "# TYPE container_memory_working_set_bytes gauge" in text
    for name in ("container_cpu_usage_seconds", "container_memory_working_set_bytes", "container_start_time_seconds"):
        pods = {s.labels["pod"] for s in found[name]}
        assert {"busy", "idle"} <= pods, (name, pods)
        assert all(set(s.labels) == CONTAINER_LABELS and s.labels["namespace"] == "default" for s in found[name])
    for name in USAGE_FAMILIES:  # usage carries when it was read; start times do not (as the kubelet's)
        assert found[name] and all(s.timestamp is not None for s in found[name]), name
    assert all(s.timestamp is None for s in found["container_start_time_seconds"])
    assert all(set(s.labels) == {"pod", "namespace"} for s in found["pod_cpu_usage_seconds"])
    assert [s.value for s in found["scrape_error"]] == [0.0]
    assert found["node_memory_working_set_bytes"][0].value > 0
    assert all(s.value > 0 for s in found["container_memory_working_set_bytes"])


def test_busy_containers_cpu_grows_between_scrapes(busy_and_idle: PodlifeProcess) -> None:
    first = container_cpu(kubelet_get(busy_and_idle, "/metrics/resource")[1], "busy")
    assert first is not None

    def grown() -> tuple[float, float] | None:
        now = container_cpu(kubelet_get(busy_and_idle, "/metrics/resource")[1], "busy")
        return now if now is not None and now[0] > first[0] and now[1] > first[1] else None

    later = wait_for(grown, 30, interval=0.2, what="the busy container's CPU time to grow")
    assert later[0] > first[0]
    idle = container_cpu(kubelet_get(busy_and_idle, "/metrics/resource")[1], "idle")
    assert idle is not None and idle[0] < later[0]


def test_resource_metrics_need_credentials(busy_and_idle: PodlifeProcess) -> None:
    status, body = kubelet_get(busy_and_idle, "/metrics/resource", token=False)
    assert status == 401, body


# ---- what the API server does with scrapes (metrics-server's rules) --------------------------------


def _text(at: float, containers: dict[str, tuple[float, float, int]], node: tuple[float, int] = (100.0, 2**30)) -> str:
    """A kubelet answer rendered by the kubelet's own renderer: container -> (start, cpu seconds, bytes)."""
    samples_ = tuple(ContainerSample("ns", "p", name, start, Usage(cpu, memory))
                     for name, (start, cpu, memory) in containers.items())
    pods = (PodSample("ns", "p", Usage(sum(c for _, c, _ in containers.values()),
                                       sum(m for _, _, m in containers.values()))),)
    return render(ResourceSnapshot(at, Usage(*node), samples_, pods)).decode()


def test_rates_over_two_scrapes() -> None:
    series = _NodeSeries()
    series.store(parse_scrape(_text(1000.0, {"a": (900.0, 10.0, 4096), "b": (900.0, 1.0, 8192)}, (50.0, 2**30))))
    assert series.node_rate() is None and series.pod_rates(("ns", "p")) is None  # one point: no rate yet
    series.store(parse_scrape(_text(1002.0, {"a": (900.0, 11.0, 8192), "b": (900.0, 1.0, 8192)}, (53.0, 2**31))))
    rates = series.pod_rates(("ns", "p"))
    assert rates is not None
    assert (rates["a"].cpu, rates["a"].memory, rates["a"].window) == (500_000_000, 8192, 2.0)  # 1 s of CPU in 2 s
    assert rates["b"].cpu == 0
    node = series.node_rate()
    assert node is not None and (node.cpu, node.memory) == (1_500_000_000, 2**31)
    assert (cpu_text(rates["a"].cpu), memory_text(rates["a"].memory), cpu_text(node.cpu)) == ("500m", "8Ki", "1500m")


def test_a_restarted_container_starts_its_series_again() -> None:
    series = _NodeSeries()
    series.store(parse_scrape(_text(1000.0, {"a": (900.0, 10.0, 4096)})))
    series.store(parse_scrape(_text(1005.0, {"a": (1003.0, 0.5, 4096)})))  # a new start time: a new container
    assert series.pod_rates(("ns", "p")) is None
    series.store(parse_scrape(_text(1010.0, {"a": (1003.0, 1.5, 4096)})))
    rates = series.pod_rates(("ns", "p"))
    assert rates is not None and rates["a"].cpu == 200_000_000


def test_a_pod_shows_once_every_container_has_two_points() -> None:
    series = _NodeSeries()
    series.store(parse_scrape(_text(1000.0, {"a": (900.0, 1.0, 4096)})))
    series.store(parse_scrape(_text(1001.0, {"a": (900.0, 2.0, 4096), "sidecar": (1000.5, 0.1, 4096)})))
    assert series.pod_rates(("ns", "p")) is None  # the sidecar has one point
    series.store(parse_scrape(_text(1002.0, {"a": (900.0, 3.0, 4096), "sidecar": (1000.5, 0.2, 4096)})))
    rates = series.pod_rates(("ns", "p"))
    assert rates is not None and set(rates) == {"a", "sidecar"}


def test_a_decreasing_counter_gives_no_rate() -> None:
    series = _NodeSeries()
    series.store(parse_scrape(_text(1000.0, {"a": (900.0, 5.0, 4096)})))
    last = parse_scrape(_text(1001.0, {"a": (900.0, 4.0, 4096)})).pods[("ns", "p")]["a"]
    previous = series.last[("ns", "p")]["a"]
    assert rate(last, previous) is None


# ---- usage stages ------------------------------------------------------------------------------------

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
metadata: {name: app-cpu}
spec:
  selector: {matchLabels: {app: web}}
  next: {action: usage, usage: {cpu: "0.05"}}
"""


def test_usage_stages_declare_per_container() -> None:
    stages = parse_stages(USAGE_STAGES, "usage.yaml")
    pod = {"metadata": {"labels": {"app": "web"}}}
    assert declared_usage(stages, pod, "web") == {"cpu": "300m", "memory": "100Mi"}
    assert declared_usage(stages, pod, "side") == {"cpu": "0.05"}
    assert declared_usage(stages, {"metadata": {"labels": {"app": "db"}}}, "web") is None


@pytest.mark.parametrize(("next_", "extra", "problem"), [
    ("{action: usage}", "", "spec.next.usage: required for action usage"),
    ("{action: usage, usage: {cpu: lots}}", "", "spec.next.usage.cpu: must be a quantity"),
    ("{action: usage, usage: {gpu: 1}}", "", 'spec.next.usage: unknown field "gpu"'),
    ("{action: crash, usage: {cpu: 1}}", "", "spec.next.usage: only action usage declares usage"),
    ("{action: usage, usage: {cpu: 1}}", "  delay: {duration: 5s}\n", "spec.delay: a usage stage declares"),
    ("{action: usage, usage: {cpu: 1}, event: {type: Normal, reason: X}}", "", "spec.next.event: action usage"),
])
def test_usage_stage_mistakes_are_named(next_: str, extra: str, problem: str) -> None:
    text = f"apiVersion: sim.podlife.io/v1alpha1\nkind: Stage\nmetadata: {{name: u}}\nspec:\n{extra}  next: {next_}\n"
    with pytest.raises(StageError) as err:
        parse_stages(text, "u.yaml")
    assert problem in str(err.value)


def test_stage_examples_parse() -> None:
    example = Path(__file__).parent.parent / "podlife" / "sim" / "stages" / "usage.yaml"
    stages = parse_stages(example.read_text(), str(example))
    assert stages.has("usage")
