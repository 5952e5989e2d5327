"""The Gantt chart's data, aggregated on the server: compact rows, node states, per-node counts.

What it reads:

- pods' traces: ``ctx.trace.summaries()`` once, when the first browser connects, then every
  change ``ctx.trace.subscribe`` reports (the PodTrace without records, turned into the
  same summary row here); without tracing (``ctx.trace`` None) the pods' watch cache
  instead, one bar per pod coloured by its phase;
- nodes: the nodes' watch cache (a synchronous sink, as in-process informers subscribe),
  for the node rows and their Ready status.

What it writes: Server-Sent-Events messages for each connected browser (:class:`Listener`),
a ``snapshot`` when it connects and an ``update`` at most every :data:`FLUSH_SECONDS`
with the rows that changed (a burst of writes to one pod is one row), the rows gone and
the nodes whose status or counts changed.

Why this shape: the write path only records *which* pod changed (a dict assignment in
the subscriber callback); the conversion and encoding happen once per flush for every
browser together, and a browser allowed to see every namespace gets the one shared
encoding. Rows are arrays, stage names an index into a table sent with the snapshot,
so 10,000 pods are about a megabyte once and a few rows per update afterwards. Nothing
runs while no browser is connected: the hub subscribes with the first listener and
unsubscribes a minute after the last left (so a reload does not rebuild 10,000 rows).

Row format (a JSON array)::

    [key "ns/name", namespace, name, node or "", phase, stage index, created (epoch s),
     deleted 0|1, [stage index, start, end or null, failed 0|1, ...]]

with each stage's start and end in whole milliseconds after ``created`` (a third of the bytes
of epoch floats: 10,000 pods of seven stages are a 1.9 MB snapshot).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import orjson

from ..cache import Filter, WatchEvent

log = logging.getLogger(__name__)

#: how often changes are sent (the brief: batch every 250-500 ms)
FLUSH_SECONDS = 0.3
#: how long the hub keeps following after the last browser left (a reload, a click to a pod's page
#: and back reconnect within it and get their snapshot without the rows being rebuilt)
LINGER_SECONDS = 60.0
#: messages a slow browser may have waiting before it is dropped (its EventSource reconnects
#: and gets a fresh snapshot, which is cheaper than an unbounded queue)
MAX_QUEUED = 32

Row = list[Any]
#: may this viewer see rows of this namespace?
NamespaceCheck = Callable[[str], bool]


def _epoch(timestamp: Any) -> float:
    """Epoch seconds of an RFC 3339 timestamp (``...Z``, with or without fractions); 0 when absent or bad."""
    if not isinstance(timestamp, str) or not timestamp:
        return 0.0
    try:
        return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def summary_from_trace(trace: dict[str, Any]) -> dict[str, Any]:
    """The ``summaries()`` row of one PodTrace (as ``ctx.trace.subscribe`` hands it over)."""
    meta = trace.get("metadata") or {}
    status = trace.get("status") or {}
    stages = []
    for stage in status.get("stages") or []:
        start = _epoch(stage.get("start"))
        duration = stage.get("durationSeconds")
        stages.append({"name": stage.get("name", ""), "start": start,
                       "end": start + duration if isinstance(duration, int | float) else None,
                       "failed": bool(stage.get("failed"))})
    return {"namespace": meta.get("namespace", ""), "name": meta.get("name", ""), "uid": status.get("podUID", ""),
            "node": status.get("nodeName") or "", "phase": status.get("phase") or "",
            "stage": stages[-1]["name"] if stages else "", "created": _epoch(meta.get("creationTimestamp")),
            "deleted": bool(status.get("deleted")), "stages": stages}


def summary_from_pod(pod: dict[str, Any]) -> dict[str, Any]:
    """A summary row from the pod alone (tracing off): one stage, the pod's phase (or Terminating)."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    stage = "Terminating" if meta.get("deletionTimestamp") else phase
    created = _epoch(meta.get("creationTimestamp"))
    return {"namespace": meta.get("namespace", ""), "name": meta.get("name", ""), "uid": meta.get("uid", ""),
            "node": (pod.get("spec") or {}).get("nodeName") or "", "phase": phase, "stage": stage,
            "created": created, "deleted": False,
            "stages": [{"name": stage, "start": created, "end": None, "failed": phase == "Failed"}]}


def node_ready(node: dict[str, Any]) -> bool | None:
    """The node's Ready condition: True, False, or None when Unknown or not reported."""
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            value = condition.get("status")
            return True if value == "True" else False if value == "False" else None
    return None


class Listener:
    """One browser's stream: encoded SSE messages waiting to be written."""

    def __init__(self, namespaces: NamespaceCheck | None, keys: frozenset[str] | None, with_nodes: bool) -> None:
        #: None: every namespace (the shared encoding); else the check of each row's namespace
        self.namespaces = namespaces
        #: only these pods (a pod's page); None: every pod
        self.keys = keys
        self.with_nodes = with_nodes
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    @property
    def shared(self) -> bool:
        return self.namespaces is None and self.keys is None and self.with_nodes

    def sees(self, row: Row) -> bool:
        if self.keys is not None and row[0] not in self.keys:
            return False
        return self.namespaces is None or self.namespaces(row[1])

    def send(self, message: bytes) -> None:
        if self.queue.qsize() >= MAX_QUEUED:  # too slow: end it, the browser reconnects for a snapshot
            self.queue.put_nowait(None)
            return
        self.queue.put_nowait(message)


def sse(event: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class Timeline:
    """The rows of every traced pod, kept while browsers watch; see the module's design."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.rows: dict[str, Row] = {}
        self.by_node: dict[str, set[str]] = {}
        self.counts: dict[str, dict[int, int]] = {}
        self.nodes: dict[str, bool | None] = {}
        self.stage_names: list[str] = []
        self._stage_index: dict[str, int] = {}
        self._listeners: set[Listener] = set()
        self._dirty_pods: dict[str, Callable[[], dict[str, Any] | None]] = {}
        self._dirty_nodes: set[str] = set()
        self._stops: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._idle_since: float | None = None

    # ---- listeners ------------------------------------------------------------------------

    def listen(self, namespaces: NamespaceCheck | None = None, keys: Iterable[str] | None = None,
               with_nodes: bool = True) -> Listener:
        """A new listener, its snapshot already queued; the hub starts with the first one."""
        if self._task is None:
            self._start()
        self._idle_since = None
        listener = Listener(namespaces, frozenset(keys) if keys is not None else None, with_nodes)
        self._listeners.add(listener)
        listener.send(sse("snapshot", self._snapshot(listener)))
        return listener

    def unlisten(self, listener: Listener) -> None:
        """Forget a listener; the hub stops :data:`LINGER_SECONDS` after the last one left."""
        self._listeners.discard(listener)
        if not self._listeners:
            self._idle_since = time.monotonic()

    async def close(self) -> None:
        for listener in list(self._listeners):
            listener.queue.put_nowait(None)
        self._listeners.clear()
        self._stop()

    # ---- sources ----------------------------------------------------------------------------

    def _start(self) -> None:
        trace = self.ctx.trace
        if trace is not None:
            self._stops.append(trace.subscribe(self._on_trace))
            summaries = trace.summaries()
        else:
            pods = self.ctx.rest_by("", "v1", "pods")
            summaries = [summary_from_pod(co.obj) for co in pods.cache.list(Filter(pods.rt))[0]] if pods else []
            if pods is not None:
                watcher = pods.cache.watch(Filter(pods.rt), pods.cache.revision, sink=self._on_pod)
                self._stops.append(watcher.stop)
        for summary in summaries:
            self._put(self._row(summary))
        nodes = self.ctx.rest_by("", "v1", "nodes")
        if nodes is not None:
            for co in nodes.cache.list(Filter(nodes.rt))[0]:
                self.nodes[co.name] = node_ready(co.obj)
            watcher = nodes.cache.watch(Filter(nodes.rt), nodes.cache.revision, sink=self._on_node)
            self._stops.append(watcher.stop)
        self._dirty_pods.clear()
        self._dirty_nodes.clear()
        self._task = asyncio.get_running_loop().create_task(self._flush_loop(), name="ui-timeline")

    def _stop(self) -> None:
        for stop in self._stops:
            stop()
        self._stops.clear()
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
        self._task = None
        self._idle_since = None
        self.rows.clear()
        self.by_node.clear()
        self.counts.clear()
        self.nodes.clear()
        self._dirty_pods.clear()
        self._dirty_nodes.clear()

    # the callbacks run on the write path: they only note what changed

    def _on_trace(self, event_type: str, trace: dict[str, Any]) -> None:
        meta = trace.get("metadata") or {}
        key = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
        self._dirty_pods[key] = (lambda: None) if event_type == "DELETED" else (lambda: summary_from_trace(trace))

    def _on_pod(self, event: WatchEvent) -> None:
        obj = event.object.obj
        meta = obj.get("metadata") or {}
        key = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
        self._dirty_pods[key] = (lambda: None) if event.type == "DELETED" else (lambda: summary_from_pod(obj))

    def _on_node(self, event: WatchEvent) -> None:
        self._dirty_nodes.add(event.object.name)

    # ---- rows ---------------------------------------------------------------------------------

    def _stage(self, name: str) -> int:
        index = self._stage_index.get(name)
        if index is None:
            index = self._stage_index[name] = len(self.stage_names)
            self.stage_names.append(name)
        return index

    def _row(self, s: dict[str, Any]) -> Row:
        created = s.get("created") or 0.0
        flat: list[Any] = []
        for stage in s.get("stages") or []:
            end = stage.get("end")
            flat += [self._stage(stage.get("name", "")), round(((stage.get("start") or created) - created) * 1000),
                     round((end - created) * 1000) if end is not None else None, 1 if stage.get("failed") else 0]
        namespace, name = s.get("namespace", ""), s.get("name", "")
        return [f"{namespace}/{name}", namespace, name, s.get("node") or "", s.get("phase") or "",
                self._stage(s.get("stage") or ""), round(created, 3), 1 if s.get("deleted") else 0, flat]

    def _count(self, row: Row, delta: int) -> None:
        counts = self.counts.setdefault(row[3], {})
        counts[row[5]] = counts.get(row[5], 0) + delta
        if not counts[row[5]]:
            del counts[row[5]]

    def _put(self, row: Row) -> str | None:
        """Store a row; the node whose counts it moved away from, if it moved."""
        key = row[0]
        old = self.rows.get(key)
        moved = None
        if old is not None:
            self._count(old, -1)
            if old[3] != row[3]:
                self.by_node.get(old[3], set()).discard(key)
                moved = old[3]
        self.rows[key] = row
        self.by_node.setdefault(row[3], set()).add(key)
        self._count(row, 1)
        return moved

    def _remove(self, key: str) -> Row | None:
        old = self.rows.pop(key, None)
        if old is not None:
            self._count(old, -1)
            self.by_node.get(old[3], set()).discard(key)
        return old

    def _node_entry(self, name: str, listener: Listener) -> dict[str, Any]:
        if listener.namespaces is None:
            counts = self.counts.get(name, {})
        else:  # only the pods this viewer may see count
            counts = {}
            for key in self.by_node.get(name, ()):
                row = self.rows[key]
                if listener.namespaces(row[1]):
                    counts[row[5]] = counts.get(row[5], 0) + 1
        return {"name": name, "ready": self.nodes.get(name), "known": name in self.nodes,
                "pods": sum(counts.values()), "stages": {str(k): v for k, v in counts.items()}}

    def _snapshot(self, listener: Listener) -> dict[str, Any]:
        rows = [row for row in self.rows.values() if listener.sees(row)]
        nodes = sorted(set(self.nodes) | set(self.by_node)) if listener.with_nodes else []
        return {"now": time.time(), "stages": self.stage_names, "rows": rows,
                "nodes": [self._node_entry(n, listener) for n in nodes]}

    # ---- flushing -------------------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            if self._idle_since is not None and time.monotonic() - self._idle_since > LINGER_SECONDS:
                self._stop()  # nobody watches: unsubscribe, cost nothing
                return
            if self._dirty_pods or self._dirty_nodes:
                try:
                    self.flush()
                except Exception:  # a bad trace must not end the stream of every browser
                    log.exception("web UI timeline flush failed")

    def flush(self) -> None:
        """Apply what changed since the last flush and send it to every listener."""
        pods, self._dirty_pods = self._dirty_pods, {}
        touched, self._dirty_nodes = self._dirty_nodes, set()
        stages_before = len(self.stage_names)
        changed: list[Row] = []
        removed: list[Row] = []
        for key, read in pods.items():
            summary = read()
            if summary is None:
                old = self._remove(key)
                if old is not None:
                    removed.append(old)
                    touched.add(old[3])
                continue
            row = self._row(summary)
            moved = self._put(row)
            if moved is not None:
                touched.add(moved)
            touched.add(row[3])
            changed.append(row)
        nodes_cache = self.ctx.rest_by("", "v1", "nodes")
        for name in touched:
            found = nodes_cache.cache.get(nodes_cache.rt.key(None, name)) if nodes_cache is not None and name else None
            if found is not None:
                self.nodes[name] = node_ready(found.obj)
            else:
                self.nodes.pop(name, None)
        stages = self.stage_names if len(self.stage_names) != stages_before else None
        shared: bytes | None = None
        for listener in list(self._listeners):
            if listener.shared:
                if shared is None:
                    shared = self._update(listener, changed, removed, touched, stages)
                message = shared
            else:
                message = self._update(listener, changed, removed, touched, stages)
            if message:
                listener.send(message)

    def _update(self, listener: Listener, changed: list[Row], removed: list[Row], touched: set[str],
                stages: list[str] | None) -> bytes:
        rows = [row for row in changed if listener.sees(row)]
        gone = [row[0] for row in removed if listener.sees(row)]
        nodes = [self._node_entry(n, listener) for n in sorted(touched)] if listener.with_nodes else []
        if not rows and not gone and not nodes:
            return b""
        payload: dict[str, Any] = {"now": time.time(), "rows": rows, "removed": gone, "nodes": nodes}
        if stages is not None:
            payload["stages"] = stages
        return sse("update", payload)

