"""``podlife trace``: rendering on hand-built PodTrace objects, then the command against a real cluster.

The rendering tests build PodTrace objects as ``docs/tracing.md`` describes them and check
what the pure functions make of them, for a terminal (rich, colours) and for a pipe (plain
columns, no escape codes). The end-to-end tests start a real ``podlife up`` with simulated
nodes, create pods with the real kubectl, and run the real ``podlife trace`` command as a
user would (a subprocess with ``KUBECONFIG`` set).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from podlife import trace_cli
from podlife.trace_cli import (
    diff_lines,
    header_fields,
    new_stages,
    parse_target,
    plain_table,
    record_line,
    render_diff,
    render_summary,
    render_timeline,
    resolve_kubeconfig,
    summarize,
    timeline_rows,
)

from .cluster_harness import PodlifeProcess, running_podlife, wait_for


def stage(name: str, offset: float, duration: float | None, writer: str, **extra: Any) -> dict:
    return {"name": name, "start": "2026-12-04T22:10:01.123456Z", "offsetSeconds": offset,
            "durationSeconds": duration, "writer": writer, **extra}


def podtrace(name: str = "tr", *, stages: list[dict] | None = None, deleted: bool = False, uid: str = "u-1",
             records: list[dict] | None = None, node: str | None = "sim-1", phase: str = "Running") -> dict:
    status: dict[str, Any] = {"podUID": uid, "phase": phase, "deleted": deleted, "stages": stages if stages is not None else [
        stage("Created", 0.0, 0.012, "kubectl-run"),
        stage("Scheduled", 0.012, 0.2, "system:kube-scheduler"),
        stage("PortAllocated", 0.212, 0.05, "system:serviceaccount:kube-system:network-controller"),
        stage("Started", 0.262, 0.1, "system:node:sim-1"),
        stage("Ready", 0.362, None, "system:node:sim-1"),
    ]}
    if node:
        status["nodeName"] = node
    if records is not None:
        status["records"] = records
    return {"apiVersion": "trace.podlife.io/v1alpha1", "kind": "PodTrace",
            "metadata": {"name": name, "namespace": "default", "uid": uid, "resourceVersion": "42",
                         "creationTimestamp": "2026-12-04T22:10:01Z"}, "status": status}


def capture(render: Any, *args: Any, terminal: bool) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=terminal, width=200, color_system="standard" if terminal else None,
                      soft_wrap=True)
    render(console, *args)
    return buffer.getvalue()


# --------------------------------------------------------------------------- pure functions


def test_parse_target_reads_kubectl_forms() -> None:
    assert parse_target("pod/tr") == "tr"
    assert parse_target("pods/tr") == "tr"
    assert parse_target("po/tr") == "tr"
    assert parse_target("tr") == "tr"
    with pytest.raises(ValueError, match="deployment"):
        parse_target("deployment/web")


def test_header_names_pod_node_phase_and_gone() -> None:
    fields = dict(header_fields(podtrace()))
    assert (fields["Name"], fields["Namespace"], fields["Node"], fields["Phase"]) == ("tr", "default", "sim-1", "Running")
    assert fields["Deleted"] == "false"
    assert dict(header_fields(podtrace(deleted=True, node=None)))["Deleted"] == "true (gone)"
    assert dict(header_fields(podtrace(node=None)))["Node"] == "<none>"


def test_timeline_rows_in_order_with_offsets_durations_writers() -> None:
    rows = timeline_rows(podtrace())
    assert [r.cells[0] for r in rows] == ["Created", "Scheduled", "PortAllocated", "Started", "Ready"]
    assert rows[1].cells[1:4] == ("+0.012s", "0.200s", "system:kube-scheduler")
    assert rows[-1].cells[2] == "-"  # the current stage has no duration yet
    assert not any(r.failed for r in rows)


def test_failed_stage_has_reason_and_message_on_one_line() -> None:
    trace = podtrace(stages=[stage("Created", 0, 0.01, "kubectl-run"),
                             stage("Unschedulable", 0.01, None, "system:kube-scheduler", failed=True,
                                   reason="FailedScheduling",
                                   message="0/3 nodes are available:\n3 Insufficient cpu.")])
    row = timeline_rows(trace)[1]
    assert row.failed
    assert row.cells[4:] == ("FailedScheduling", "0/3 nodes are available: 3 Insufficient cpu.")


def test_diff_lines_mark_added_removed_changed() -> None:
    record = {"resourceVersion": "7", "offsetSeconds": 0.012, "kind": "Pod", "name": "tr", "verb": "update",
              "writer": "system:kube-scheduler", "user": "system:kube-scheduler", "diff": [
                  {"op": "replace", "path": "spec.nodeName", "old": None, "new": "sim-1"},
                  {"op": "add", "path": "status.conditions[type=PodScheduled]", "new": {"status": "True"}},
                  {"op": "remove", "path": "metadata.annotations.x", "old": "y"}]}
    assert diff_lines(record) == [("yellow", "~ spec.nodeName: null -> sim-1"),
                                  ("green", '+ status.conditions[type=PodScheduled]: {"status":"True"}'),
                                  ("red", "- metadata.annotations.x: y")]
    assert record_line(record) == "rv 7  +0.012s  Pod/tr  update  system:kube-scheduler"
    assert record_line({**record, "writer": "kubectl-run", "user": "podlife-admin"}).endswith("(user podlife-admin)")


def test_new_stages_for_follow() -> None:
    before = podtrace(stages=[stage("Created", 0, None, "kubectl-run")])
    after = podtrace()
    assert [s["name"] for s in new_stages(before, after)] == ["Scheduled", "PortAllocated", "Started", "Ready"]
    assert new_stages(after, after) == []
    assert len(new_stages(after, podtrace(uid="u-2"))) == 5  # a new pod of the same name: a new life


def test_plain_table_aligns_columns() -> None:
    lines = plain_table(("A", "LONGER"), [("xx", "1"), ("y", "22")])
    assert lines == ["A    LONGER", "xx   1", "y    22"]


def test_resolve_kubeconfig_order(tmp_path: Path) -> None:
    env_file = tmp_path / "env.conf"
    env_file.write_text("x")
    flag = tmp_path / "flag.conf"
    assert resolve_kubeconfig(flag, str(env_file), tmp_path) == flag
    assert resolve_kubeconfig(None, f"{tmp_path / 'missing'}{os.pathsep}{env_file}", tmp_path) == env_file
    assert resolve_kubeconfig(None, None, tmp_path) == tmp_path / ".podlife" / "kubeconfig"


def test_summary_percentiles_slowest_and_hot_stage() -> None:
    traces = []
    for i in range(20):
        sched = 0.1 * (i + 1)  # scheduling takes longest, growing with i
        traces.append(podtrace(f"p-{i}", uid=f"u-{i}", deleted=i == 0, stages=[
            stage("Created", 0.0, sched, "kubectl"), stage("Scheduled", sched, 0.05, "system:kube-scheduler"),
            stage("Ready", sched + 0.05, None, "system:node:sim-1")]))
    traces.append(podtrace("stuck", uid="u-x", stages=[stage("Created", 0.0, None, "kubectl")], node=None))
    summary = summarize(traces)
    assert summary["pods"] == 21 and summary["deleted"] == 1
    by_stage = {r["stage"]: r for r in summary["stages"]}
    assert [r["stage"] for r in summary["stages"]] == ["Created", "Scheduled", "Ready"]
    assert by_stage["Created"]["pods"] == 21
    assert by_stage["Created"]["duration_p50"] == pytest.approx(1.0, abs=0.11)
    assert by_stage["Created"]["duration_p99"] == pytest.approx(2.0)
    assert by_stage["Scheduled"]["offset_p90"] == pytest.approx(1.8, abs=0.11)
    assert by_stage["Ready"]["duration_p50"] is None
    assert summary["most_time"]["stage"] == "Created"
    slowest = summary["slowest"]
    assert len(slowest) == 10 and slowest[0]["name"] == "p-19" and slowest[0]["to"] == "Ready"
    assert slowest[0]["seconds"] == pytest.approx(2.05)
    assert summarize([]) == {"pods": 0, "deleted": 0, "stages": [], "slowest": [], "most_time": None}


# --------------------------------------------------------------------------- rendering


def test_plain_timeline_has_no_escape_codes_or_box_art() -> None:
    text = capture(render_timeline, podtrace(deleted=True), terminal=False)
    assert "\x1b[" not in text
    assert not any(ch in text for ch in "│─┃━╭╮")
    lines = text.splitlines()
    assert lines[0].split() == ["Name:", "tr"]
    assert "Deleted:" in text and "gone" in text
    table = lines[lines.index("") + 1:]
    assert table[0].split() == ["STAGE", "OFFSET", "DURATION", "WRITER", "REASON", "MESSAGE"]
    assert table[2].split() == ["Scheduled", "+0.012s", "0.200s", "system:kube-scheduler"]


def test_terminal_timeline_colours_failures_red() -> None:
    trace = podtrace(stages=[stage("Created", 0, 0.01, "kubectl-run"),
                             stage("ErrImagePull", 0.3, None, "system:node:sim-1", failed=True, reason="ErrImagePull",
                                   message="pull access denied")])
    text = capture(render_timeline, trace, terminal=True)
    assert "\x1b[31m" in text  # red
    assert "ErrImagePull" in text and "pull access denied" in text


def test_diff_rendering_colours_ops() -> None:
    trace = podtrace(records=[
        {"resourceVersion": "5", "offsetSeconds": 0.0, "kind": "Pod", "name": "tr", "verb": "create",
         "writer": "kubectl-run", "diff": [{"op": "add", "path": "spec.containers[name=tr].image", "new": "busybox"}]},
        {"resourceVersion": "7", "offsetSeconds": 0.012, "kind": "Pod", "name": "tr", "verb": "update",
         "writer": "system:kube-scheduler", "diff": [{"op": "replace", "path": "spec.nodeName", "old": None,
                                                      "new": "sim-1"}]}])
    plain = capture(render_diff, trace, terminal=False)
    assert "rv 7  +0.012s  Pod/tr  update  system:kube-scheduler" in plain
    assert "    ~ spec.nodeName: null -> sim-1" in plain
    assert "\x1b[" not in plain
    coloured = capture(render_diff, trace, terminal=True)
    assert "\x1b[32m" in coloured and "\x1b[33m" in coloured  # green add, yellow change


def test_summary_rendering_plain() -> None:
    traces = [podtrace(f"p-{i}", uid=f"u-{i}") for i in range(3)]
    text = capture(render_summary, summarize(traces), "namespace default", terminal=False)
    assert "Traced pods: 3 in namespace default (0 gone)" in text
    assert "\x1b[" not in text
    header = next(line for line in text.splitlines() if line.startswith("STAGE"))
    assert header.split() == ["STAGE", "PODS", "DURATION", "P50", "P90", "P99", "OFFSET", "P50", "P90", "P99"]
    assert "Most time goes to: Scheduled" in text
    assert any(line.split()[:2] == ["default", "p-0"] for line in text.splitlines())


def test_errors_read_as_kubectl(tmp_path: Path) -> None:
    missing = tmp_path / "none.conf"
    proc = _trace(["pod/x", "--kubeconfig", str(missing)], {})
    assert proc.returncode == 1 and f"no kubeconfig at {missing}" in proc.stderr
    proc = _trace([], {"KUBECONFIG": str(missing)})
    assert proc.returncode == 1 and "pod to trace" in proc.stderr


# --------------------------------------------------------------------------- against a real cluster


def _trace(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "podlife.cli", "trace", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=timeout)


@pytest.fixture(scope="module")
def sim_cluster(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with running_podlife(tmp_path_factory.mktemp("trace-cli"), "--nodes", "0", "--sim-nodes", "3") as cluster:
        yield cluster


def _env(cluster: PodlifeProcess) -> dict[str, str]:
    return {"KUBECONFIG": str(cluster.kubeconfig)}


def _run_pod(cluster: PodlifeProcess, name: str) -> None:
    cluster.kubectl("run", name, "--image=busybox", "--restart=Never", "--", "sleep", "3600")
    cluster.kubectl("wait", "--for=condition=Ready", f"pod/{name}", "--timeout=60s")


def _stage_names(cluster: PodlifeProcess, name: str) -> list[str]:
    return [s["name"] for s in cluster.kubectl_json("get", "podtraces", name, "-o", "json")["status"]["stages"]]


def test_trace_shows_stages_in_order_with_writers(sim_cluster: PodlifeProcess) -> None:
    _run_pod(sim_cluster, "tr")
    wait_for(lambda: "Ready" in _stage_names(sim_cluster, "tr"), what="the Ready stage recorded")
    proc = _trace(["pod/tr"], _env(sim_cluster))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "\x1b[" not in out  # a pipe: plain output
    rows = {line.split()[0]: line for line in out.splitlines() if line.split()}
    for stage_name in ("Created", "Scheduled", "Ready"):
        assert stage_name in rows, out
    assert "system:kube-scheduler" in rows["Scheduled"]
    assert "kubectl-run" in rows["Created"]
    assert "node-simulator" in rows["Ready"]  # simulated nodes write as the simulator's service account
    order = [line.split()[0] for line in out.splitlines()[out.splitlines().index("") + 2:] if line.split()]
    wanted = ["Created", "Scheduled", "PortAllocated", "ContainerStarted", "Ready"]
    assert [name for name in order if name in wanted] == wanted, out


def test_trace_diff_shows_node_name(sim_cluster: PodlifeProcess) -> None:
    _run_pod(sim_cluster, "tr-diff")
    proc = _trace(["pod/tr-diff", "--diff"], _env(sim_cluster))
    assert proc.returncode == 0, proc.stderr
    node = sim_cluster.kubectl_json("get", "pod", "tr-diff", "-o", "json")["spec"]["nodeName"]
    assert f"spec.nodeName: null -> {node}" in proc.stdout or f"+ spec.nodeName: {node}" in proc.stdout, proc.stdout
    assert any(line.startswith("rv ") and "system:kube-scheduler" in line for line in proc.stdout.splitlines())


def test_trace_output_json_and_yaml_match_the_api(sim_cluster: PodlifeProcess) -> None:
    _run_pod(sim_cluster, "tr-json")
    proc = _trace(["pod/tr-json", "-o", "json"], _env(sim_cluster))
    assert proc.returncode == 0, proc.stderr
    ours = json.loads(proc.stdout)
    api = sim_cluster.kubectl_json("get", "podtraces", "tr-json", "-o", "json")
    assert ours["kind"] == "PodTrace" and ours["metadata"]["uid"] == api["metadata"]["uid"]
    assert [s["name"] for s in ours["status"]["stages"]][:len(api["status"]["stages"])] == \
        [s["name"] for s in api["status"]["stages"]][:len(ours["status"]["stages"])]
    as_yaml = yaml.safe_load(_trace(["tr-json", "-o", "yaml"], _env(sim_cluster)).stdout)
    assert as_yaml["metadata"]["name"] == "tr-json" and as_yaml["apiVersion"] == "trace.podlife.io/v1alpha1"


def test_trace_after_delete_shows_gone(sim_cluster: PodlifeProcess) -> None:
    _run_pod(sim_cluster, "tr-gone")
    sim_cluster.kubectl("delete", "pod", "tr-gone", "--grace-period=1", "--wait=true")
    proc = wait_for(lambda: (p := _trace(["pod/tr-gone"], _env(sim_cluster))).returncode == 0
                    and "true (gone)" in p.stdout and p, what="the deleted pod's trace")
    assert "Scheduled" in proc.stdout


def test_trace_missing_pod_is_not_found(sim_cluster: PodlifeProcess) -> None:
    proc = _trace(["pod/never-was"], _env(sim_cluster))
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error from server (NotFound): "), proc.stderr
    assert "never-was" in proc.stderr


def test_trace_follow_prints_stages_until_gone(sim_cluster: PodlifeProcess) -> None:
    _run_pod(sim_cluster, "tr-follow")
    follower = subprocess.Popen([sys.executable, "-m", "podlife.cli", "trace", "pod/tr-follow", "--follow"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, **_env(sim_cluster)})
    assert follower.stdout is not None
    before = ""
    try:
        while not before.endswith("\n") or not before.splitlines()[-1].startswith("Ready"):
            line = follower.stdout.readline()  # the timeline so far, printed from the GET
            if not line:
                break
            before += line
        sim_cluster.kubectl("delete", "pod", "tr-follow", "--grace-period=1", "--wait=true")
        after, err = follower.communicate(timeout=60)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.communicate()
    assert follower.returncode == 0, err
    assert "Scheduled" in before and "Gone" not in before, before
    followed = [line.split()[0] for line in after.splitlines() if line.split()]
    assert "Terminating" in followed and "Gone" in followed, after  # printed as they began, from the watch
    assert after.rstrip().endswith("pod default/tr-follow is gone")


def test_summary_over_several_pods(sim_cluster: PodlifeProcess) -> None:
    sim_cluster.kubectl("create", "namespace", "summary")
    for i in range(4):
        sim_cluster.kubectl("run", f"s-{i}", "-n", "summary", "--image=busybox", "--restart=Never", "--", "sleep", "3600")
    sim_cluster.kubectl("wait", "--for=condition=Ready", "pod", "--all", "-n", "summary", "--timeout=60s")
    proc = _trace(["--summary", "-n", "summary"], _env(sim_cluster))
    assert proc.returncode == 0, proc.stderr
    assert "Traced pods: 4 in namespace summary" in proc.stdout, proc.stdout
    header = next(line for line in proc.stdout.splitlines() if line.startswith("STAGE"))
    assert "P99" in header
    assert any(line.startswith("Scheduled") for line in proc.stdout.splitlines())
    slow = [line.split() for line in proc.stdout.splitlines() if line.startswith("summary ")]
    assert len(slow) == 4 and all(row[3] == "Ready" for row in slow)
    every = _trace(["--summary", "-A"], _env(sim_cluster))
    assert every.returncode == 0 and "in all namespaces" in every.stdout


def test_trace_is_registered_in_podlife_help() -> None:
    assert trace_cli.add_parser is not None
    proc = subprocess.run([sys.executable, "-m", "podlife.cli", "trace", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "--summary" in proc.stdout
