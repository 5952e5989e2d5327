"""The trace core on a real store, without a cluster: diffs, the recorder's retention, the journal.

The recorder follows a real :class:`MemoryStore` / :class:`SQLiteStore`'s commits here; the writes
are the store's own transactions with pod-shaped objects, and the writer is named as the REST
layer names it (``PodTraces.wrote`` after the commit). End-to-end behaviour with kubectl and real
components is in ``test_trace_lifecycle.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from podlife.cli import _parser
from podlife.store import Compare, Delete, MemoryStore, Put, SQLiteStore
from podlife.store.base import Store
from podlife.trace.diff import diff
from podlife.trace.journal import Journal
from podlife.trace.model import Record, Trace, pack_record
from podlife.trace.recorder import PodTraces
from podlife.trace.stages import event_time

POD = "/registry/core/pods/"


# ---------------------------------------------------------------------------- diff


def test_diff_paths_use_merge_keys_and_skip_noise() -> None:
    old = {"metadata": {"name": "p", "resourceVersion": "5", "managedFields": [{"manager": "a"}],
                        "annotations": {"network.podlife.io/port": "x"}},
           "spec": {"nodeName": None, "tolerations": [{"key": "a"}]},
           "status": {"conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}],
                      "containerStatuses": [{"name": "c", "state": {"waiting": {"reason": "ContainerCreating"}}}]}}
    new = {"metadata": {"name": "p", "resourceVersion": "9", "managedFields": [{"manager": "b"}],
                        "annotations": {"network.podlife.io/port": "y"}},
           "spec": {"nodeName": "n1", "tolerations": [{"key": "b"}]},
           "status": {"conditions": [{"type": "Initialized", "status": "True"}, {"type": "PodScheduled", "status": "True"},
                                     {"type": "Ready", "status": "True"}],
                      "containerStatuses": [{"name": "c", "state": {"running": {"startedAt": "t"}}}]}}
    ops = {(op["op"], op["path"]): (op["old"], op["new"]) for op in diff(old, new)}
    assert ops == {
        ("replace", 'metadata.annotations["network.podlife.io/port"]'): ("x", "y"),
        ("replace", "spec.nodeName"): (None, "n1"),
        ("replace", "spec.tolerations[0].key"): ("a", "b"),
        ("add", "status.conditions[type=Initialized]"): (None, {"type": "Initialized", "status": "True"}),
        ("replace", "status.conditions[type=Ready].status"): ("False", "True"),
        ("remove", "status.containerStatuses[name=c].state.waiting"): ({"reason": "ContainerCreating"}, None),
        ("add", "status.containerStatuses[name=c].state.running"): (None, {"startedAt": "t"}),
    }


def test_diff_of_a_creation_is_its_top_level_fields() -> None:
    ops = diff(None, {"kind": "Pod", "metadata": {"name": "p", "resourceVersion": "", "managedFields": []},
                      "spec": {"containers": []}})
    assert [op["path"] for op in ops] == ["kind", "metadata", "spec"]
    assert ops[1]["new"] == {"name": "p"}
    assert diff({"a": [1, 2]}, {"a": [1, 2]}) == []


def test_event_time_reads_the_recorders_nanosecond_names() -> None:
    committed = 1_800_000_000.5
    happened_ns = int((committed - 0.25) * 1e9)
    assert event_time(f"pod.{happened_ns:x}", committed) == pytest.approx(committed - 0.25)
    assert event_time("pod.not-hex", committed) == committed
    assert event_time(f"pod.{int(1e9):x}", committed) == committed  # implausibly old: the commit time


# ---------------------------------------------------------------------------- the recorder on a store


def pod(name: str, uid: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "ns", "uid": uid},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}, "status": {"phase": "Pending"}}


class Writer:
    """Writes to a real store as the REST layer does: a txn, then the writer named to the traces."""

    def __init__(self, store: Store, traces: PodTraces) -> None:
        self.store, self.traces = store, traces

    async def put(self, obj: dict[str, Any], writer: str) -> int:
        key = POD + f"ns/{obj['metadata']['name']}"
        current = await self.store.get(key)
        res = await self.store.txn([Compare(key, current.mod_revision if current else 0)],
                                   [Put(key, orjson.dumps(obj), obj)])
        assert res.succeeded
        self.traces.wrote(key, res.revision, None, writer)
        return res.revision

    async def delete(self, name: str, writer: str) -> None:
        key = POD + f"ns/{name}"
        current = await self.store.get(key)
        assert current is not None
        res = await self.store.txn([Compare(key, current.mod_revision)], [Delete(key)])
        self.traces.wrote(key, res.revision, None, writer)


async def test_writers_stages_and_a_deleted_pods_trace() -> None:
    store = MemoryStore()
    await store.start()
    traces = PodTraces()
    await traces.start()
    traces.attach(store)
    seen: list[tuple[str, str]] = []
    unsubscribe = traces.subscribe(lambda kind, obj: seen.append((kind, obj["status"]["stages"][-1]["name"])))
    try:
        w = Writer(store, traces)
        await w.put(pod("a", "u1"), "kubectl-create")
        rv = await w.put(pod("a", "u1", nodeName="n1"), "system:kube-scheduler")
        await w.delete("a", "system:node:n1")
        trace = traces.get("ns", "a")
        assert trace is not None
        status = trace["status"]
        assert [s["name"] for s in status["stages"]] == ["Created", "Queued", "Scheduled", "Gone"]
        assert [r["writer"] for r in status["records"]] == ["kubectl-create", "system:kube-scheduler", "system:node:n1"]
        assert status["records"][1]["resourceVersion"] == str(rv)
        assert status["records"][1]["diff"] == [{"op": "add", "path": "spec.nodeName", "old": None, "new": "n1"}]
        assert status["deleted"] is True and status["nodeName"] == "n1"
        assert traces.resource_version == rv + 1
        assert seen == [("ADDED", "Queued"), ("MODIFIED", "Scheduled"), ("MODIFIED", "Gone")]
        assert "records" not in traces.list("ns")[0]["status"]
        row = traces.summaries()[0]
        assert row["stage"] == "Gone" and row["deleted"] is True and row["node"] == "n1"
    finally:
        unsubscribe()
        await traces.stop()
        await store.close()


async def test_retention_by_count_age_and_records() -> None:
    store = MemoryStore()
    await store.start()
    now = [1000.0]
    traces = PodTraces(max_pods=2, max_age=60, max_records=4, clock=lambda: now[0])
    await traces.start()
    traces.attach(store)
    dropped: list[str] = []
    traces.subscribe(lambda kind, obj: dropped.append(obj["metadata"]["name"]) if kind == "DELETED" else None)
    try:
        w = Writer(store, traces)
        for name in ("a", "b", "c"):
            await w.put(pod(name, f"uid-{name}"), "kubectl-create")
        assert traces.get("ns", "a") is None and dropped == ["a"]  # the oldest went first
        assert {t["metadata"]["name"] for t in traces.list(None)} == {"b", "c"}
        for i in range(6):  # a pod writing on and on keeps its newest records
            await w.put({**pod("c", "uid-c"), "status": {"phase": "Pending", "n": i}}, "system:node:n1")
        records = traces.get("ns", "c")["status"]["records"]  # type: ignore[index]
        assert len(records) == 4
        assert records[0]["diff"] == [{"op": "replace", "path": "status.n", "old": 1, "new": 2}]  # diffed to the dropped one
        now[0] += 61
        await w.put({**pod("c", "uid-c"), "status": {"phase": "Running"}}, "system:node:n1")
        assert traces.sweep() == 1  # b: its last write is older than max_age
        assert traces.get("ns", "b") is None and traces.get("ns", "c") is not None
        await w.delete("c", "kubectl")
        await w.put(pod("c", "uid-c2"), "kubectl-create")  # a new life of the name replaces the old one
        trace = traces.get("ns", "c")
        assert trace is not None and trace["metadata"]["uid"] == "uid-c2" and not trace["status"]["deleted"]
    finally:
        await traces.stop()
        await store.close()


async def test_journal_keeps_traces_across_restarts(tmp_path: Path) -> None:
    async def run(write: bool) -> dict[str, Any] | None:
        store = SQLiteStore(tmp_path / "store.sqlite")
        await store.start()
        traces = PodTraces(journal=Journal(tmp_path / "trace.sqlite"))
        await traces.start()
        traces.attach(store)
        try:
            if write:
                w = Writer(store, traces)
                await w.put(pod("a", "u1"), "kubectl-create")
                await w.put(pod("a", "u1", nodeName="n1"), "system:kube-scheduler")
                await w.delete("a", "system:node:n1")
            return traces.get("ns", "a")
        finally:
            await traces.stop()
            await store.close()

    before = await run(True)
    after = await run(False)
    assert before is not None and after == before


def test_up_flags() -> None:
    parse = _parser().parse_args
    assert parse(["up"]).trace is True
    assert parse(["up", "--no-trace"]).trace is False
    assert parse(["up", "--trace=false"]).trace is False
    assert parse(["up", "--trace"]).trace is True
    args = parse(["up", "--trace-max-pods", "5", "--trace-max-age", "10m"])
    assert (args.trace_max_pods, args.trace_max_age) == (5, 600.0)


def test_records_are_packed_against_the_first_version() -> None:
    big = pod("a", "u1", nodeName="n1", env=[{"name": f"VAR_{i}", "value": str(i)} for i in range(40)])
    first = orjson.dumps(big)
    later = orjson.dumps({**big, "status": {"phase": "Running", "podIP": "10.244.0.9"}})
    trace = Trace("ns", "a", "u1", 0.0, 8)
    r1, r2 = Record(0.0, 1, "Pod", "a", "create", first), Record(0.1, 2, "Pod", "a", "update", later)
    pack_record(trace, r1)
    pack_record(trace, r2)
    assert r1.value is first  # the first version stays as it is: the dictionary of the others
    assert r2.value is None and r2.packed is not None and len(r2.packed) < len(later) // 2
    assert r2.raw() == later
