"""The recorder: follows the store's commits and keeps every pod's writes, with their writers.

What it reads
-------------
- The store's committed batches (``store.add_listener``: synchronous, in commit order, in the
  store's flush task): writes to pods, to Ports (``network.podlife.io``, named after their
  pod), to Events (core and ``events.k8s.io``) about a pod, and to Nodes -- of these only
  condition status transitions, never heartbeats.
- Who wrote each: the REST layer calls :meth:`PodTraces.wrote` at its three store write
  sites after the transaction returns (which is after the listener saw the commit), with the
  field manager of the request; the requesting user is the ``CURRENT_USER`` context
  variable of that call. A record is complete (and subscribers hear of it) once its writer
  is known.

What it writes
--------------
Per pod (keyed by namespace and name; a new uid is a new life and replaces the old trace) a
:class:`~.model.Trace` of :class:`~.model.Record` objects: the recorder's clock at commit
(microseconds), revision, kind, verb, writer, user and a reference to the bytes the store
already encoded -- nothing is decoded or diffed on the write path (:mod:`.model` does that
when a trace is read, cached per newest revision). Node transitions are kept per node and
merged into the traces of the pods that ran there while they did. :mod:`.journal` persists
everything in batches from its own thread (``DATA_DIR/trace.sqlite``) and the recorder loads
it at start.

Retention: at most ``max_pods`` traces (the oldest go first), none whose last write is older
than ``max_age`` seconds, at most ``max_records`` records per trace (a crash-looping pod keeps
its newest). A deleted pod's trace stays readable until retention drops it.

Why a listener and not a hook in the write path: the listener sees exactly what committed, in
order, once, whoever wrote it (HTTP or in-process), and runs after the write is durable, off
the writer's own latency; the write sites only name the writer (a dictionary pop).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from typing import Any

from ..store.base import Event, Store
from .journal import Journal
from .model import APISERVER, Record, Trace, build, without_records

log = logging.getLogger(__name__)

POD_PREFIX = "/registry/core/pods/"
EVENT_PREFIX = "/registry/core/events/"
EVENTS_K8S_PREFIX = "/registry/events.k8s.io/events/"
PORT_PREFIX = "/registry/network.podlife.io/ports/"
NODE_PREFIX = "/registry/core/nodes/"

DEFAULT_MAX_PODS = 20_000
DEFAULT_MAX_AGE = 3600.0
DEFAULT_MAX_RECORDS = 256
#: condition transitions kept per node
NODE_RECORDS = 64
#: records waiting for their writer that are given up on (a write site that never called back)
MAX_UNCLAIMED = 4096

Subscriber = Callable[[str, dict], None]


def _uid_of(obj: Any) -> str:
    if isinstance(obj, dict):
        meta = obj.get("metadata")
        if isinstance(meta, dict):
            return str(meta.get("uid") or "")
    return ""


def _obj(kv: Any) -> dict[str, Any] | None:
    """The decoded object of a stored version (in-process writes carry it; a loaded one is decoded)."""
    obj = kv.obj
    if obj is None and kv.value:
        import orjson

        try:
            obj = orjson.loads(kv.value)
        except orjson.JSONDecodeError:
            return None
    return obj if isinstance(obj, dict) else None


class PodTraces:
    """Every traced pod's life (``ctx.trace``): what the ``podtraces`` API, ``podlife trace`` and the UI read."""

    def __init__(self, *, journal: Journal | None = None, max_pods: int = DEFAULT_MAX_PODS,
                 max_age: float = DEFAULT_MAX_AGE, max_records: int = DEFAULT_MAX_RECORDS,
                 clock: Callable[[], float] = time.time) -> None:
        self.journal = journal
        self.max_pods = max_pods
        self.max_age = max_age
        self.max_records = max_records
        self._clock = clock
        self._traces: OrderedDict[tuple[str, str], Trace] = OrderedDict()  # oldest life first
        self._by_uid: dict[str, Trace] = {}
        self._nodes: dict[str, deque[Record]] = {}
        #: records whose writer the write site has not named yet: (key, revision) -> (record, trace or None)
        self._unclaimed: dict[tuple[str, int], tuple[Record, Trace | None]] = {}
        self._subscribers: list[Subscriber] = []
        self.resource_version = 0
        self._sweeper: asyncio.Task[None] | None = None
        if journal is not None:
            journal.max_records = max_records
            journal.live = lambda: list(self._traces.values())

    # ---- lifecycle ------------------------------------------------------------------

    def attach(self, store: Store) -> None:
        store.add_listener(self._on_commit)

    async def start(self) -> None:
        """Load the journal (before any commit is recorded), start persisting and the age sweep."""
        if self.journal is not None:
            loaded = await asyncio.to_thread(self.journal.open)
            self._restore(loaded)
            self.journal.start()
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_loop(), name="trace-retention")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        self._flush_unclaimed()
        if self.journal is not None:
            await asyncio.to_thread(self.journal.close)

    # ---- the write path -------------------------------------------------------------

    def _on_commit(self, events: list[Event]) -> None:
        now = self._clock()
        for ev in events:
            key = ev.kv.key
            if key.startswith(POD_PREFIX):
                self._pod(ev, key, now)
            elif key.startswith(EVENT_PREFIX) or key.startswith(EVENTS_K8S_PREFIX):
                self._event(ev, key, now)
            elif key.startswith(PORT_PREFIX):
                self._port(ev, key, now)
            elif key.startswith(NODE_PREFIX):
                self._node(ev, key, now)
        if len(self._unclaimed) > MAX_UNCLAIMED:
            self._flush_unclaimed(keep=MAX_UNCLAIMED // 2)

    def wrote(self, key: str, revision: int, manager: str | None = None, user: str | None = None,
              subresource: str | None = None) -> None:
        """The write site's word on who made the write that committed ``key`` at ``revision``: the
        request's field manager (None for in-process writes) and the requesting user (None: the
        API server itself). Called for every write; costs a dictionary pop when the key is traced."""
        if not self._unclaimed:
            return
        claimed = self._unclaimed.pop((key, revision), None)
        if claimed is None:
            return
        record, trace = claimed
        record.user = user
        record.writer = manager or user or APISERVER
        if subresource:
            record.subresource = subresource
        if trace is not None:
            self._changed(trace)

    def _claim_later(self, key: str, record: Record, trace: Trace | None) -> None:
        self._unclaimed[(key, record.rv)] = (record, trace)

    def _flush_unclaimed(self, keep: int = 0) -> None:
        """Give up on the oldest unnamed writers (their records show the API server as writer)."""
        while len(self._unclaimed) > keep:
            _, (record, trace) = self._unclaimed.popitem() if keep == 0 else self._pop_oldest()
            if trace is not None:
                self._changed(trace)

    def _pop_oldest(self) -> tuple[tuple[str, int], tuple[Record, Trace | None]]:
        first = next(iter(self._unclaimed))
        return first, self._unclaimed.pop(first)

    def _pod(self, ev: Event, key: str, now: float) -> None:
        rest = key[len(POD_PREFIX):]
        namespace, _, name = rest.partition("/")
        rv = ev.kv.mod_revision
        if ev.type == "DELETE":
            trace = self._traces.get((namespace, name))
            if trace is None or (ev.prev is not None and _uid_of(_obj(ev.prev)) not in ("", trace.uid)):
                return
            record = Record(now, rv, "Pod", name, "delete", b"")
            trace.deleted = True
            trace.gone_at = now
            self._add(trace, record)
            self._claim_later(key, record, trace)
            return
        obj = ev.kv.obj if ev.kv.obj is not None else _obj(ev.kv)
        trace = self._traces.get((namespace, name))
        verb = "create" if ev.prev is None else "update"
        if trace is None or verb == "create":  # an update keeps its uid: only a create can begin a new life
            uid = _uid_of(obj)
            if trace is None or (trace.uid != uid and uid):
                trace = self._new_trace(namespace, name, uid, now)
                if isinstance(obj, dict):
                    trace.creation_timestamp = (obj.get("metadata") or {}).get("creationTimestamp")
        if trace.node is None and isinstance(obj, dict):
            node = (obj.get("spec") or {}).get("nodeName")
            if node:
                trace.node = node
                trace.bound_at = now
        record = Record(now, rv, "Pod", name, verb, ev.kv.value)
        self._add(trace, record)
        self._claim_later(key, record, trace)

    def _event(self, ev: Event, key: str, now: float) -> None:
        if ev.type == "DELETE":
            return  # an expired event: nothing happened to the pod
        obj = ev.kv.obj if ev.kv.obj is not None else _obj(ev.kv)
        if not isinstance(obj, dict):
            return
        involved = obj.get("involvedObject") or obj.get("regarding")
        if not isinstance(involved, dict) or involved.get("kind") != "Pod":
            return
        trace = self._traces.get((str(involved.get("namespace") or ""), str(involved.get("name") or "")))
        if trace is None or (involved.get("uid") and involved.get("uid") != trace.uid):
            return
        name = key.rsplit("/", 1)[1]
        record = Record(now, ev.kv.mod_revision, "Event", name, "create" if ev.prev is None else "update", ev.kv.value)
        self._add(trace, record)
        self._claim_later(key, record, trace)

    def _port(self, ev: Event, key: str, now: float) -> None:
        rest = key[len(PORT_PREFIX):]
        namespace, _, name = rest.partition("/")
        trace = self._traces.get((namespace, name))
        if trace is None or trace.deleted and ev.type != "DELETE":
            return
        verb = "delete" if ev.type == "DELETE" else ("create" if ev.prev is None else "update")
        record = Record(now, ev.kv.mod_revision, "Port", name, verb, ev.kv.value if verb != "delete" else b"")
        self._add(trace, record)
        self._claim_later(key, record, trace)

    def _node(self, ev: Event, key: str, now: float) -> None:
        if ev.type == "DELETE" or ev.prev is None:
            return
        obj, prev = ev.kv.obj, ev.prev.obj
        if obj is None or prev is None:  # a version loaded at start: decode (once per node after a restart)
            obj, prev = _obj(ev.kv), _obj(ev.prev)
        if not _condition_transition(obj, prev):
            return
        name = key[len(NODE_PREFIX):]
        records = self._nodes.get(name)
        if records is None:
            records = self._nodes[name] = deque(maxlen=NODE_RECORDS)
        record = Record(now, ev.kv.mod_revision, "Node", name, "update", ev.kv.value, prev=ev.prev.value)
        records.append(record)
        if self.journal is not None:
            self.journal.add_node(record)
        self._claim_later(key, record, None)

    def _new_trace(self, namespace: str, name: str, uid: str, now: float) -> Trace:
        old = self._traces.pop((namespace, name), None)
        if old is not None:
            self._drop(old, notify=True)
        trace = Trace(namespace, name, uid, now, self.max_records)
        self._traces[(namespace, name)] = trace
        self._by_uid[uid] = trace
        while len(self._traces) > self.max_pods:
            _, oldest = self._traces.popitem(last=False)
            self._drop(oldest, notify=True)
        return trace

    def _add(self, trace: Trace, record: Record) -> None:
        trace.append(record)
        if record.rv > self.resource_version:
            self.resource_version = record.rv
        if self.journal is not None:
            self.journal.add(trace, record)

    def _drop(self, trace: Trace, *, notify: bool) -> None:
        if self._by_uid.get(trace.uid) is trace:
            del self._by_uid[trace.uid]
        if self.journal is not None:
            self.journal.drop(trace)
        if notify and self._subscribers and trace.announced:
            self._notify("DELETED", trace)

    # ---- retention ------------------------------------------------------------------

    async def _sweep_loop(self) -> None:
        interval = max(0.2, min(self.max_age / 4, 30.0))
        while True:
            await asyncio.sleep(interval)
            try:
                self.sweep()
            except Exception:  # retention must never stop: the next pass tries again
                log.exception("trace retention sweep failed")

    def sweep(self, now: float | None = None) -> int:
        """Drop the traces whose last write is older than ``max_age``; how many went."""
        cutoff = (self._clock() if now is None else now) - self.max_age
        old = [k for k, t in self._traces.items() if t.last_time < cutoff]
        for k in old:
            self._drop(self._traces.pop(k), notify=True)
        for name in [n for n, records in self._nodes.items() if records and records[-1].time < cutoff]:
            del self._nodes[name]
        if self.journal is not None:
            self.journal.expire_nodes(cutoff)
        return len(old)

    # ---- reading (the contract) -----------------------------------------------------

    def _node_records(self, trace: Trace) -> builtins.list[Record]:
        if trace.node is None or trace.bound_at is None:
            return []
        records = self._nodes.get(trace.node)
        if not records:
            return []
        end = trace.gone_at if trace.gone_at is not None else float("inf")
        return [r for r in records if trace.bound_at <= r.time <= end]

    def _built(self, trace: Trace, *, full: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        node_records = self._node_records(trace)
        rv = max(trace.newest_rv, node_records[-1].rv if node_records else 0)
        marker = (rv << 1) | (1 if trace.deleted else 0)
        if trace.cache_rv != marker:
            trace.cache_rv, trace.cache_full, trace.cache_brief, trace.cache_summary = marker, None, None, None
        if full:
            if trace.cache_full is None:
                trace.cache_full, trace.cache_summary = build(trace, node_records, with_records=True)
                trace.cache_brief = without_records(trace.cache_full)
            assert trace.cache_summary is not None
            return trace.cache_full, trace.cache_summary
        if trace.cache_brief is None or trace.cache_summary is None:
            trace.cache_brief, trace.cache_summary = build(trace, node_records, with_records=False)
        return trace.cache_brief, trace.cache_summary

    def get(self, namespace: str, name: str) -> dict | None:
        """The full PodTrace of the newest life of that pod (also once it is deleted, within retention)."""
        trace = self._traces.get((namespace, name))
        if trace is None:
            return None
        return self._built(trace, full=True)[0]

    def get_by_uid(self, uid: str) -> dict | None:
        trace = self._by_uid.get(uid)
        return self._built(trace, full=True)[0] if trace is not None else None

    def list(self, namespace: str | None = None) -> builtins.list[dict]:
        """Every trace (of ``namespace``), without records: stages only."""
        return [self._built(t, full=False)[0] for t in self._selected(namespace)]

    def summaries(self) -> builtins.list[dict]:
        """The UI's compact rows, one per traced pod, oldest first."""
        return [self._built(t, full=False)[1] for t in list(self._traces.values())]

    def _selected(self, namespace: str | None) -> Iterable[Trace]:
        traces = list(self._traces.values())
        return traces if namespace is None else [t for t in traces if t.namespace == namespace]

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        """``fn(event_type, podtrace_without_records)`` after each recorded change; returns the unsubscribe."""
        self._subscribers.append(fn)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._subscribers.remove(fn)

        return unsubscribe

    def _changed(self, trace: Trace) -> None:
        """Tell subscribers of a recorded change: ADDED the first time, MODIFIED after."""
        event_type = "MODIFIED" if trace.announced else "ADDED"
        trace.announced = True
        if self._subscribers and self._traces.get((trace.namespace, trace.name)) is trace:
            self._notify(event_type, trace)

    def _notify(self, event_type: str, trace: Trace) -> None:
        obj = self._built(trace, full=False)[0]
        for fn in list(self._subscribers):
            try:
                fn(event_type, obj)
            except Exception:  # a broken subscriber must not break recording
                log.exception("trace subscriber failed")

    # ---- persistence ----------------------------------------------------------------

    def _restore(self, loaded: Any) -> None:
        """Rebuild the traces the journal kept (oldest first), then apply retention."""
        traces, nodes = loaded
        for trace in traces:
            trace.announced = True
            self._traces[(trace.namespace, trace.name)] = trace
            self._by_uid[trace.uid] = trace
            if trace.newest_rv > self.resource_version:
                self.resource_version = trace.newest_rv
        for name, records in nodes.items():
            self._nodes[name] = deque(records, maxlen=NODE_RECORDS)
        while len(self._traces) > self.max_pods:
            _, oldest = self._traces.popitem(last=False)
            self._drop(oldest, notify=False)
        self.sweep()


def _condition_transition(obj: dict[str, Any] | None, prev: dict[str, Any] | None) -> bool:
    """Whether a node write changed the status of any condition (a heartbeat changes only times)."""
    if obj is None or prev is None:
        return False
    now = (obj.get("status") or {}).get("conditions") or ()
    before = (prev.get("status") or {}).get("conditions") or ()
    if len(now) != len(before):
        return True
    for a, b in zip(now, before):
        if not isinstance(a, dict) or not isinstance(b, dict):
            return a != b
        if a.get("type") != b.get("type") or a.get("status") != b.get("status"):
            return True
    return False
