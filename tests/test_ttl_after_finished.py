"""The TTL-after-finished controller: when a finished Job expires (pure), and a cluster deleting one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from podlife.controllers.ttl_after_finished import finish_time, needs_cleanup, time_left

from .cluster_harness import PodlifeProcess, require_tool, wait_for

UTC = timezone.utc


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def job(ttl: int | None = 30, condition: str | None = "Complete", status: str = "True",
        finished: str | None = "2026-01-01T10:00:00Z", **meta: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {} if ttl is None else {"ttlSecondsAfterFinished": ttl}
    conditions = [] if condition is None else [{"type": condition, "status": status,
                                                **({"lastTransitionTime": finished} if finished else {})}]
    return {"metadata": {"name": "j", "namespace": "default", **meta}, "spec": spec, "status": {"conditions": conditions}}


def test_only_finished_jobs_with_a_ttl_need_cleanup() -> None:
    assert needs_cleanup(job())
    assert needs_cleanup(job(condition="Failed"))
    assert needs_cleanup(job(ttl=0))
    assert not needs_cleanup(job(ttl=None))
    assert not needs_cleanup(job(condition=None))
    assert not needs_cleanup(job(condition="Complete", status="False"))
    assert not needs_cleanup(job(condition="Suspended"))
    assert not needs_cleanup(job(deletionTimestamp="2026-01-01T10:00:05Z"))


def test_time_left_counts_from_the_finishing_condition() -> None:
    assert finish_time(job()) == at(2026, 1, 1, 10)
    assert time_left(job(), at(2026, 1, 1, 10, 0, 10)) == 20
    assert time_left(job(), at(2026, 1, 1, 10, 0, 30)) == 0
    assert time_left(job(), at(2026, 1, 1, 10, 1)) == -30
    assert time_left(job(ttl=0), at(2026, 1, 1, 10)) == 0
    # finished "in the future" (clock skew): it just waits longer
    assert time_left(job(), at(2026, 1, 1, 9, 59)) == 90
    # not to clean up, or no finishing time known: nothing to do
    assert time_left(job(ttl=None), at(2026, 1, 1, 11)) is None
    assert time_left(job(finished=None), at(2026, 1, 1, 11)) is None


JOB = """
apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
spec:
  {ttl}
  template:
    metadata:
      annotations: {{podlife.io/sim-duration: 1s}}
    spec:
      restartPolicy: Never
      containers: [{{name: c, image: busybox}}]
"""


@pytest.fixture(scope="module")
def sim_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    proc = PodlifeProcess(tmp_path_factory.mktemp("ttl") / "data", "--nodes", "0", "--sim-nodes", "2",
                          kubectl=require_tool("kubectl"))
    try:
        yield proc.start()
    finally:
        proc.stop()


def complete(proc: PodlifeProcess, name: str) -> bool:
    found = proc.kubectl_json("get", "job", name, "-o", "json")
    return any(c["type"] == "Complete" and c["status"] == "True" for c in (found.get("status") or {}).get("conditions") or [])


@pytest.mark.e2e
def test_a_finished_job_is_deleted_when_its_ttl_runs_out(sim_cluster: PodlifeProcess) -> None:
    proc = sim_cluster
    proc.kubectl("apply", "-f", "-", input=JOB.format(name="kept", ttl=""))
    proc.kubectl("apply", "-f", "-", input=JOB.format(name="short", ttl="ttlSecondsAfterFinished: 1"))
    wait_for(lambda: complete(proc, "kept"), timeout=60, what="the Job without a TTL to complete")

    def gone() -> bool:
        return proc.kubectl("get", "job", "short", check=False).returncode != 0

    wait_for(gone, timeout=60, interval=0.2, what="the Job with ttlSecondsAfterFinished: 1 to be deleted")
    # Background propagation: its pods go too
    wait_for(lambda: proc.kubectl_json("get", "pods", "-l", "job-name=short", "-o", "json")["items"] == [],
             timeout=60, what="the deleted Job's pods to go")
    assert complete(proc, "kept")
