"""The traces on disk: one SQLite file (``DATA_DIR/trace.sqlite``, WAL) written from its own thread.

What it reads: what :mod:`.recorder` hands it on the event loop -- a record appended to a
trace, a trace dropped by retention, a node's condition transition -- as operations on a
thread-safe queue (``deque.append``: no lock, no wait on the write path).

What it writes: every half second (or, in a burst of writes, as often as keeps it under 2 % of
a CPU: the backlog waits in memory and is written when the burst is over), in one transaction:

- ``chunks``: one row per round holding every record of the round, framed (a small JSON
  header per record -- trace uid, time, revision, kind, name, verb, writer, user,
  subresource, the value's length, whether it is packed -- then the value). Before writing,
  the thread packs the records (:meth:`~.model.Record.pack`: each version as a delta against
  the first version of its object, which is how memory holds them too), so a pod's status
  write costs about its status on disk. One row per
  round, not per write: the thread holds the GIL for about a microsecond per record; it
  shares a process with the API server, whose event loop must not wait for it (SQLite's own
  work runs without the GIL).
- ``traces``: one row per pod life (namespace, name, uid, when it began, whether it is gone,
  its node), written when one of those changes. Dropping a trace deletes its row; its records
  stay in their chunks, dead, and are skipped when the file is read.
- ``node_records``: the node condition transitions.

For an in-memory cluster (``path`` None) the thread only packs.

At start (:meth:`Journal.open`) everything is read back as :class:`~.model.Trace` objects,
oldest first, and when dead records outweigh live ones the file is rewritten with the live
ones only (and again during the run, from :attr:`Journal.live`, the recorder's traces), so
neither dropped traces nor a crash-looping pod's trimmed records grow it without bound.

Why a thread and not the store's group commit: tracing must cost the write path little, and
the store's commit latency is what every writer waits for; a trace that loses its last half
second in a crash is acceptable, a slower store is not. A record whose writer the REST layer
has not named yet (it does right after the commit) is held back a round, so the row has it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson

from .model import Record, Trace, pack_record

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS traces (
    uid TEXT PRIMARY KEY, namespace TEXT NOT NULL, name TEXT NOT NULL, created REAL NOT NULL,
    deleted INTEGER NOT NULL, node TEXT, bound_at REAL, gone_at REAL, creation_timestamp TEXT
);
CREATE TABLE IF NOT EXISTS chunks (id INTEGER PRIMARY KEY, records INTEGER NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS node_records (
    id INTEGER PRIMARY KEY, node TEXT NOT NULL, time REAL NOT NULL, rv INTEGER NOT NULL, writer TEXT, user TEXT,
    value BLOB NOT NULL, prev BLOB NOT NULL
);
"""

#: how often queued operations are written
INTERVAL = 0.5
#: how long a record may wait for its writer before it is written without one
WRITER_WAIT = 2.0
#: operations written per round at most, and the share of one CPU the thread may use
ROUND_LIMIT = 500
DUTY = 0.02
#: the file is rewritten once it holds this many dead records more than live ones
REWRITE_SLACK = 20_000


def encode_chunk(items: Iterable[tuple[str, Record]], zdicts: Iterable[tuple[str, str, str, bytes]] = ()) -> bytes:
    """Records (with their trace's uid) as one buffer: a JSON header line, then the value, per record.

    A packed record is written packed (a delta against its object's first version, which is
    written before it in the file, as a record or as one of ``zdicts``): compressing every
    version in full is what cost the most.
    """
    parts: list[bytes] = []
    for uid, kind, name, zdict in zdicts:
        parts.append(orjson.dumps([uid, 0.0, 0, kind, name, "zdict", None, None, None, len(zdict), 0]))
        parts.append(b"\n")
        parts.append(zdict)
    for uid, r in items:
        value, packed = r.value, 0
        if value is None:
            value, packed = r.packed or b"", 1
        parts.append(orjson.dumps([uid, r.time, r.rv, r.kind, r.name, r.verb, r.writer, r.user, r.subresource,
                                   len(value), packed]))
        parts.append(b"\n")
        parts.append(value)
    return b"".join(parts)


def decode_chunk(raw: bytes) -> list[tuple[str, Record | None, tuple[str, str, bytes] | None]]:
    """What :func:`encode_chunk` wrote: (uid, record, None) per record -- a packed one with ``packed``
    set and ``value`` None -- and (uid, None, (kind, name, value)) per zdict."""
    out: list[tuple[str, Record | None, tuple[str, str, bytes] | None]] = []
    pos, end = 0, len(raw)
    while pos < end:
        nl = raw.index(b"\n", pos)
        uid, t, rv, kind, name, verb, writer, user, sub, size, packed = orjson.loads(raw[pos:nl])
        value = raw[nl + 1:nl + 1 + size]
        pos = nl + 1 + size
        if verb == "zdict":
            out.append((uid, None, (kind, name, value)))
            continue
        record = Record(t, rv, kind, name, verb, None if packed else value, writer, user, subresource=sub)
        if packed:
            record.packed = value
        out.append((uid, record, None))
    return out


def _trace_state(t: Trace) -> tuple[Any, ...]:
    return (t.uid, t.namespace, t.name, t.created, int(t.deleted), t.node, t.bound_at, t.gone_at,
            t.creation_timestamp)


class Journal:
    def __init__(self, path: str | Path | None, *, max_records: int = 256) -> None:
        #: None: nothing is written (an in-memory cluster); the thread only packs the records
        self.path = Path(path) if path is not None else None
        self.max_records = max_records
        #: the recorder's live traces, for rewriting the file during the run (set by the recorder)
        self.live: Callable[[], list[Trace]] | None = None
        self._ops: deque[tuple[Any, ...]] = deque()
        self._db: sqlite3.Connection | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._held: list[tuple[Any, ...]] = []
        self._counts: dict[str, int] = {}  # records written per live trace
        self._written = 0  # records in the file, live or dead

    # ---- the recorder's side (event loop) -----------------------------------------

    def add(self, trace: Trace, record: Record) -> None:
        self._ops.append(("add", trace, record))

    def drop(self, trace: Trace) -> None:
        self._ops.append(("drop", trace.uid))

    def add_node(self, record: Record) -> None:
        self._ops.append(("node", record))

    def expire_nodes(self, cutoff: float) -> None:
        self._ops.append(("expire", cutoff))

    # ---- lifecycle ------------------------------------------------------------------

    def open(self) -> tuple[list[Trace], dict[str, list[Record]]]:
        """Open (create) the file and read every live trace back, oldest first."""
        if self.path is None:
            return [], {}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        self._db = db
        traces: dict[str, Trace] = {}
        for uid, ns, name, created, deleted, node, bound_at, gone_at, stamp in db.execute(
                "SELECT uid, namespace, name, created, deleted, node, bound_at, gone_at, creation_timestamp FROM traces "
                "ORDER BY created"):
            trace = Trace(ns, name, uid, created, self.max_records)
            trace.deleted, trace.node, trace.bound_at, trace.gone_at = bool(deleted), node, bound_at, gone_at
            trace.creation_timestamp = stamp
            trace.saved = _trace_state(trace)
            traces[uid] = trace
        written = 0
        for (data,) in db.execute("SELECT data FROM chunks ORDER BY id"):
            for uid, record, zdict in decode_chunk(bytes(data)):
                owner = traces.get(uid)
                if owner is None:  # a dropped trace's
                    continue
                if zdict is not None:
                    owner.zdicts.setdefault((zdict[0], zdict[1]), zdict[2])
                    continue
                assert record is not None
                written += 1
                # a revision not newer than the trace's last is one a rewrite during the run wrote twice
                if owner.records and record.rv <= owner.records[-1].rv:
                    continue
                if record.value is None:  # packed against the first version of its object
                    record.zdict = owner.zdicts.get((record.kind, record.name))
                    if record.zdict is None:
                        continue
                owner.append(record)
                pack_record(owner, record)
        nodes: dict[str, list[Record]] = {}
        for node, t, rv, writer, user, value, prev in db.execute(
                "SELECT node, time, rv, writer, user, value, prev FROM node_records ORDER BY id"):
            nodes.setdefault(node, []).append(Record(t, rv, "Node", node, "update", bytes(value), writer, user,
                                                     prev=bytes(prev)))
        live = [t for t in traces.values() if t.records]
        self._counts = {t.uid: len(t.records) for t in live}
        self._written = written
        if written > sum(self._counts.values()) + min(REWRITE_SLACK, written // 2 + 1):
            self._rewrite(live)
        return live, nodes

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="trace-journal", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Write what is queued (writers or not) and close the file."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        try:
            self._write(final=True)
        finally:
            if self._db is not None:
                self._db.close()
                self._db = None

    # ---- the thread -----------------------------------------------------------------

    def _run(self) -> None:
        pause = INTERVAL
        while not self._stop.wait(pause):
            started = time.thread_time()
            try:
                self._write(final=False, limit=ROUND_LIMIT)
                self._maybe_rewrite()
            except Exception:  # the trace is best-effort: the store's own data never depends on it
                log.exception("writing the trace journal failed")
            # at most DUTY of a CPU: in a burst of writes the backlog waits (in memory, where the
            # records are anyway) rather than the API server, and is written when it calms down
            pause = max(INTERVAL, (time.thread_time() - started) / DUTY)

    def _write(self, *, final: bool, limit: int = 0) -> None:
        db = self._db
        ops, self._held = self._held, []
        pending = self._ops
        while pending and not (limit and len(ops) >= limit):
            ops.append(pending.popleft())
        if not ops:
            return
        now = time.time()
        items: list[tuple[str, Record]] = []
        packs: list[tuple[Trace, Record]] = []
        touched: dict[str, Trace] = {}
        dropped: list[tuple[str]] = []
        nodes: list[tuple[Any, ...]] = []
        expire: float | None = None
        counts = self._counts
        for op in ops:
            kind = op[0]
            if kind == "add":
                trace, record = op[1], op[2]
                if record.writer is None and not final and now - record.time < WRITER_WAIT:
                    self._held.append(op)
                    continue
                uid = trace.uid
                items.append((uid, record))
                packs.append((trace, record))
                touched[uid] = trace
                counts[uid] = counts.get(uid, 0) + 1
            elif kind == "drop":
                uid = op[1]
                touched.pop(uid, None)
                counts.pop(uid, None)
                dropped.append((uid,))
                self._held = [h for h in self._held if not (h[0] == "add" and h[1].uid == uid)]
            elif kind == "node":
                r = op[1]
                nodes.append((r.name, r.time, r.rv, r.writer, r.user, r.value, r.prev or b""))
            elif kind == "expire":
                expire = op[1]
        states = []
        for t in touched.values():
            state = _trace_state(t)
            if state != t.saved:
                states.append(state)
                t.saved = state
        if db is None:  # in memory: nothing to write, only to pack
            for trace, record in packs:
                pack_record(trace, record)
            return
        for trace, record in packs:
            pack_record(trace, record)
        data = encode_chunk(items) if items else b""
        db.execute("BEGIN")
        try:
            if items:
                db.execute("INSERT INTO chunks (records, data) VALUES (?, ?)", (len(items), data))
            if states:
                db.executemany("INSERT OR REPLACE INTO traces VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", states)
            if dropped:
                db.executemany("DELETE FROM traces WHERE uid = ?", dropped)
            if nodes:
                db.executemany("INSERT INTO node_records (node, time, rv, writer, user, value, prev) "
                               "VALUES (?, ?, ?, ?, ?, ?, ?)", nodes)
            if expire is not None:
                db.execute("DELETE FROM node_records WHERE time < ?", (expire,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._written += len(items)

    def _maybe_rewrite(self) -> None:
        live_records = sum(min(c, self.max_records) for c in self._counts.values())
        if (self._db is not None and self.live is not None
                and self._written - live_records > max(REWRITE_SLACK, live_records)):
            self._write(final=True)
            self._rewrite(self.live())

    def _rewrite(self, traces: list[Trace]) -> None:
        """The file with only these traces' records (what retention left)."""
        db = self._db
        assert db is not None
        snapshot = [(t, list(t.records)) for t in traces]  # list() of a deque is one step: no tearing
        db.execute("BEGIN")
        try:
            db.execute("DELETE FROM chunks")
            db.execute("DELETE FROM traces")
            for t, records in snapshot:  # one chunk per trace: its packing dictionaries first
                zdicts = [(t.uid, kind, name, value) for (kind, name), value in list(t.zdicts.items())]
                db.execute("INSERT INTO chunks (records, data) VALUES (?, ?)",
                           (len(records), encode_chunk([(t.uid, r) for r in records], zdicts)))
            states = [_trace_state(t) for t, _ in snapshot]
            db.executemany("INSERT OR REPLACE INTO traces VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", states)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        for t, state in zip(traces, states):
            t.saved = state
        self._counts = {t.uid: len(records) for t, records in snapshot}
        self._written = sum(self._counts.values())
        log.info("trace journal rewritten: %d traces, %d records", len(snapshot), self._written)
