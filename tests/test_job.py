"""The Job controller through the real server and kubectl (issue 14).

Most Jobs run on simulated nodes (``podlife.io/sim-duration`` completes a pod,
``podlife.io/sim-crash-after`` fails it); one runs ``sh -c "sleep 1"`` on the local node.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from .cluster_harness import PodlifeProcess, require_tool, wait_for

pytestmark = pytest.mark.e2e

FINALIZER = "batch.kubernetes.io/job-tracking"
INDEX_KEY = "batch.kubernetes.io/job-completion-index"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    proc = PodlifeProcess(tmp_path_factory.mktemp("jobs") / "data", "--nodes", "0", "--sim-nodes", "3",
                          kubectl=require_tool("kubectl")).start()
    try:
        yield proc
    finally:
        proc.stop()


def make_job(cluster: PodlifeProcess, name: str, *, annotations: dict | None = None, pod_spec: dict | None = None,
             **spec: object) -> None:
    template_spec = {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", "sleep 1"]}]}
    template_spec.update(pod_spec or {})
    manifest = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
                "spec": {**spec, "template": {"metadata": {"annotations": annotations or {}}, "spec": template_spec}}}
    cluster.kubectl("create", "-f", "-", input=json.dumps(manifest))


def job_status(cluster: PodlifeProcess, name: str) -> Any:
    return cluster.kubectl_json("get", "job", name).get("status", {})


def condition(status: dict, type_: str) -> Any:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_ and c["status"] == "True"), None)


def wait_condition(cluster: PodlifeProcess, name: str, type_: str, timeout: float = 40) -> Any:
    return wait_for(lambda: condition(job_status(cluster, name), type_) and job_status(cluster, name), timeout,
                    what=f"job {name} {type_}")


def job_pods(cluster: PodlifeProcess, name: str) -> list[dict]:
    return cluster.kubectl_json("get", "pods", "-l", f"batch.kubernetes.io/job-name={name}")["items"]


def events(cluster: PodlifeProcess, name: str) -> list[dict]:
    items = cluster.kubectl_json("get", "events", "--field-selector", f"involvedObject.name={name}")["items"]
    return [e for e in items if e["involvedObject"]["kind"] == "Job"]


def event_reasons(cluster: PodlifeProcess, name: str) -> Any:
    """Each event's reason, as often as it happened (repeats are folded into one Event's count)."""
    return [e["reason"] for e in events(cluster, name) for _ in range(e.get("count") or 1)]


def test_completions_and_parallelism(sim: PodlifeProcess) -> None:
    make_job(sim, "par", annotations={"podlife.io/sim-duration": "1s"}, completions=5, parallelism=2)
    most = 0

    def finished() -> Any:
        nonlocal most
        running = [p for p in job_pods(sim, "par") if p["status"].get("phase") not in ("Succeeded", "Failed")]
        most = max(most, len(running))
        status = job_status(sim, "par")
        return status if condition(status, "Complete") else None

    status = wait_for(finished, 60, interval=0.1, what="job par Complete")
    assert most <= 2
    assert status["succeeded"] == 5 and not status.get("failed") and not status.get("active")
    assert status["uncountedTerminatedPods"] == {} and status["ready"] == 0 and status["terminating"] == 0
    met = condition(status, "SuccessCriteriaMet")
    assert met is not None and (met["reason"], met["message"]) == (
        "CompletionsReached", "Reached expected number of succeeded pods")
    assert condition(status, "Complete")["reason"] == "CompletionsReached"
    assert status["startTime"] <= status["completionTime"]
    pods = job_pods(sim, "par")
    assert len(pods) == 5 and all(p["status"]["phase"] == "Succeeded" for p in pods)
    assert all("finalizers" not in p["metadata"] for p in pods)  # the tracking finalizer was the only one
    assert all(p["metadata"]["generateName"] == "par-" for p in pods)
    owner = pods[0]["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("Job", "par", True)
    reasons = wait_for(lambda: (r := event_reasons(sim, "par")).count("Completed") == 1 and r, what="Completed event")
    assert reasons.count("SuccessfulCreate") == 5
    created = {e["message"] for e in events(sim, "par") if e["reason"] == "SuccessfulCreate"}
    assert created == {f"Created pod: {p['metadata']['name']}" for p in pods}
    assert sim.kubectl("get", "job", "par", "--no-headers").stdout.split()[1:3] == ["Complete", "5/5"]


def test_backoff_limit_exceeded(sim: PodlifeProcess) -> None:
    make_job(sim, "crash", annotations={"podlife.io/sim-crash-after": "1s"}, backoffLimit=0)
    status = wait_condition(sim, "crash", "Failed")
    failed = condition(status, "Failed")
    assert (failed["reason"], failed["message"]) == ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
    assert condition(status, "FailureTarget")["reason"] == "BackoffLimitExceeded"
    assert status["failed"] == 1 and not status.get("succeeded") and "completionTime" not in status
    pods = job_pods(sim, "crash")
    assert len(pods) == 1 and pods[0]["status"]["phase"] == "Failed"
    assert FINALIZER not in (pods[0]["metadata"].get("finalizers") or [])
    warning = wait_for(lambda: [e for e in events(sim, "crash") if e["reason"] == "BackoffLimitExceeded"], what="event")
    assert warning[0]["type"] == "Warning" and warning[0]["message"] == "Job has reached the specified backoff limit"


def test_active_deadline_terminates_the_pods(sim: PodlifeProcess) -> None:
    make_job(sim, "deadline", activeDeadlineSeconds=2, completions=4, parallelism=2)
    wait_for(lambda: job_status(sim, "deadline").get("active") == 2, what="two active pods")
    status = wait_condition(sim, "deadline", "Failed")
    failed = condition(status, "Failed")
    assert (failed["reason"], failed["message"]) == ("DeadlineExceeded", "Job was active longer than specified deadline")
    assert condition(status, "FailureTarget")["reason"] == "DeadlineExceeded"
    assert status["failed"] == 2 and not status.get("active") and status["terminating"] == 0
    wait_for(lambda: not [p for p in job_pods(sim, "deadline") if p["status"].get("phase") == "Running"],
             what="the pods stopped")
    reasons = wait_for(lambda: (r := event_reasons(sim, "deadline")).count("DeadlineExceeded") == 1 and r, what="event")
    assert reasons.count("SuccessfulDelete") == 2


def test_indexed_job(sim: PodlifeProcess) -> None:
    make_job(sim, "idx", annotations={"podlife.io/sim-duration": "1s"}, pod_spec={"subdomain": "workers"},
             completionMode="Indexed", completions=4, parallelism=2)
    status = wait_condition(sim, "idx", "Complete")
    assert status["completedIndexes"] == "0-3" and status["succeeded"] == 4
    pods = job_pods(sim, "idx")
    assert sorted(p["metadata"]["annotations"][INDEX_KEY] for p in pods) == ["0", "1", "2", "3"]
    for p in pods:
        index = p["metadata"]["annotations"][INDEX_KEY]
        assert p["metadata"]["labels"][INDEX_KEY] == index
        assert p["metadata"]["name"].startswith(f"idx-{index}-") and p["metadata"]["generateName"] == f"idx-{index}-"
        assert p["spec"]["hostname"] == f"idx-{index}" and p["spec"]["subdomain"] == "workers"
        env = {e["name"]: e for e in p["spec"]["containers"][0].get("env") or []}
        assert env["JOB_COMPLETION_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == f"metadata.annotations['{INDEX_KEY}']"


def test_backoff_limit_per_index(sim: PodlifeProcess) -> None:
    make_job(sim, "perindex", annotations={"podlife.io/sim-crash-after": "1s"}, completionMode="Indexed",
             completions=2, parallelism=2, backoffLimitPerIndex=0)
    status = wait_condition(sim, "perindex", "Failed")
    failed = condition(status, "Failed")
    assert (failed["reason"], failed["message"]) == ("FailedIndexes", "Job has failed indexes")
    assert status["failedIndexes"] == "0-1" and status["failed"] == 2 and not status.get("completedIndexes")
    pods = job_pods(sim, "perindex")
    assert len(pods) == 2  # no retries within an index
    assert all(p["metadata"]["annotations"]["batch.kubernetes.io/job-index-failure-count"] == "0" for p in pods)


def test_pod_failure_policy_fails_the_job_on_an_exit_code(sim: PodlifeProcess) -> None:
    make_job(sim, "policy", annotations={"podlife.io/sim-crash-after": "1s"}, backoffLimit=6,
             podFailurePolicy={"rules": [
                 {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                 {"action": "FailJob", "onExitCodes": {"containerName": "c", "operator": "In", "values": [1]}}]})
    status = wait_condition(sim, "policy", "Failed")
    pod = job_pods(sim, "policy")[0]["metadata"]["name"]
    failed = condition(status, "Failed")
    assert failed["reason"] == "PodFailurePolicy"
    assert failed["message"] == f"Container c for pod default/{pod} failed with exit code 1 matching FailJob rule at index 1"
    assert status["failed"] == 1 and len(job_pods(sim, "policy")) == 1


def test_success_policy(sim: PodlifeProcess) -> None:
    make_job(sim, "winner", annotations={"podlife.io/sim-duration": "1s"}, completionMode="Indexed", completions=3,
             parallelism=3, successPolicy={"rules": [{"succeededIndexes": "0-2", "succeededCount": 1}]})
    status = wait_condition(sim, "winner", "Complete")
    met = condition(status, "SuccessCriteriaMet")
    assert (met["reason"], met["message"]) == ("SuccessPolicy", "Matched rules at index 0")
    assert condition(status, "Complete")["reason"] == "SuccessPolicy" and status.get("succeeded", 0) >= 1


def test_suspend_and_resume(sim: PodlifeProcess) -> None:
    make_job(sim, "later", suspend=True, completions=2, parallelism=2)
    status: Any = wait_condition(sim, "later", "Suspended")
    assert (condition(status, "Suspended")["reason"], condition(status, "Suspended")["message"]) == (
        "JobSuspended", "Job suspended")
    assert "startTime" not in status and not job_pods(sim, "later")
    sim.kubectl("patch", "job", "later", "--type=merge", "-p", '{"spec":{"suspend":false}}')
    status = wait_for(lambda: (s := job_status(sim, "later")).get("active") == 2 and s, what="resumed")
    resumed = next(c for c in status["conditions"] if c["type"] == "Suspended")
    assert (resumed["status"], resumed["reason"], resumed["message"]) == ("False", "JobResumed", "Job resumed")
    assert status["startTime"]
    sim.kubectl("patch", "job", "later", "--type=merge", "-p", '{"spec":{"suspend":true}}')
    status = wait_for(lambda: (s := job_status(sim, "later")).get("startTime") is None
                           and condition(s, "Suspended") and s, what="suspended again")
    assert not status.get("active") and not status.get("failed")
    wait_for(lambda: not job_pods(sim, "later"), what="the pods deleted")
    reasons = wait_for(lambda: (r := event_reasons(sim, "later")).count("Suspended") == 2 and r, what="events")
    assert reasons.count("Suspended") == 2 and reasons.count("Resumed") == 1 and reasons.count("SuccessfulDelete") == 2


def test_delete_job_cascades(sim: PodlifeProcess) -> None:
    make_job(sim, "gone", completions=3, parallelism=3)
    wait_for(lambda: len([p for p in job_pods(sim, "gone") if p["status"].get("phase") == "Running"]) == 3,
             what="three running pods")
    sim.kubectl("delete", "job", "gone")
    wait_for(lambda: not job_pods(sim, "gone"), what="the job's pods deleted")


def test_real_node_job(cluster: PodlifeProcess) -> None:
    node = cluster.kubectl_json("get", "nodes")["items"][0]["metadata"]["labels"]["kubernetes.io/hostname"]
    make_job(cluster, "j", completions=4, parallelism=2, pod_spec={"nodeSelector": {"kubernetes.io/hostname": node}})
    cluster.kubectl("wait", "--for=condition=Complete", "job/j", "--timeout=60s", timeout=90)
    status = job_status(cluster, "j")
    assert status["succeeded"] == 4 and not status.get("failed")
    pods = job_pods(cluster, "j")
    assert len(pods) == 4 and all(p["spec"]["nodeName"] == node for p in pods)
