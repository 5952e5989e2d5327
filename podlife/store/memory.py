"""An in-memory MVCC key-value store with group commit; the core of the SQLite store.

Design
------
The whole current key space lives in a sorted dict (``sortedcontainers``), so reads
and prefix ranges never touch the disk. A transaction is evaluated and applied to that
index at once -- this is what makes compare-and-swap correct under concurrency -- and
gets the next revision. Its events then wait in ``_pending`` until the flush task
commits them: one :meth:`_persist` call for every write that arrived meanwhile (group
commit). Only after the commit do the events reach the history, the listeners and the
watchers, and only then does the writer's ``txn`` return. So a watcher never sees a
change that could be lost, and a write acknowledged to a client is durable.

History (for watches that resume, and reads at an older revision) is a deque of events
trimmed by :meth:`compact`; :class:`MemoryStore` compacts itself to keep at most
``history_limit`` events, which bounds memory the way etcd's compaction and the API
server's 5-minute window do.

Subclasses persist the current state by overriding :meth:`_persist`, :meth:`_load` and
:meth:`_loaded_revision`; this class alone is a fully working (volatile) store.

Each group commit is observed once in ``etcd_request_duration_seconds{operation="commit"}``
(:mod:`podlife.machinery.metrics`): the time :meth:`_persist` took for the whole batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable

from sortedcontainers import SortedDict

from ..machinery.metrics import observe_commit

from .base import (
    Compacted,
    Compare,
    Delete,
    Event,
    KeyValue,
    Listener,
    Op,
    Put,
    RangeResult,
    Store,
    StoreError,
    TxnResult,
)

log = logging.getLogger(__name__)

DEFAULT_HISTORY_LIMIT = 20_000


class _Watcher:
    __slots__ = ("prefix", "queue", "closed")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self.closed = False


class MemoryStore(Store):
    def __init__(self, *, history_limit: int = DEFAULT_HISTORY_LIMIT) -> None:
        self._index: SortedDict[str, KeyValue] = SortedDict()
        self._latest_revision = 0  # applied to the index (maybe not yet committed)
        self._committed_revision = 0
        self._compact_revision = 0
        self._history: deque[Event] = deque()
        self._history_limit = history_limit
        self._pending: list[Event] = []
        self._pending_waiters: list[asyncio.Future[None]] = []
        self._wakeup: asyncio.Event | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._listeners: list[Listener] = []
        self._watchers: set[_Watcher] = set()
        self._failure: BaseException | None = None
        #: set by :meth:`close`: the flusher writes what is pending, then ends
        self._closing = False

    # ---- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        for kv in await self._load():
            self._index[kv.key] = kv
        self._committed_revision = self._latest_revision = max(self._latest_revision, self._loaded_revision())
        # history is not persisted: nothing before the loaded revision can be replayed
        self._compact_revision = max(self._compact_revision, self._committed_revision)
        self._wakeup = asyncio.Event()
        self._flusher = asyncio.get_running_loop().create_task(self._flush_loop(), name="store-flush")

    async def close(self) -> None:
        if self._flusher is not None and self._wakeup is not None:
            # let the flusher end by itself: cancelling it could interrupt a batch it is persisting
            flusher, self._flusher = self._flusher, None
            self._closing = True
            self._wakeup.set()
            await asyncio.gather(flusher, return_exceptions=True)  # a failure was logged where it happened
        for w in list(self._watchers):
            self._close_watcher(w)

    # ---- persistence hooks (overridden by durable stores) ---------------------------

    async def _load(self) -> Iterable[KeyValue]:
        return ()

    def _loaded_revision(self) -> int:
        return 0

    async def _persist(self, events: list[Event], revision: int) -> None:
        """Make ``events`` durable; the store's revision is now ``revision``."""

    # ---- reads ----------------------------------------------------------------------

    @property
    def revision(self) -> int:
        return self._committed_revision

    @property
    def compact_revision(self) -> int:
        return self._compact_revision

    async def get(self, key: str) -> KeyValue | None:
        return self._index.get(key)

    def get_nowait(self, key: str) -> KeyValue | None:
        """Synchronous read for in-process callers on the hot path."""
        return self._index.get(key)

    async def range(self, prefix: str, *, start_after: str = "", limit: int = 0, revision: int = 0) -> RangeResult:
        if revision and revision < self._latest_revision:
            return self._range_at(prefix, start_after, limit, revision)
        kvs, more = self._scan(self._index, prefix, start_after, limit)
        return RangeResult(kvs, self._latest_revision, more)

    @staticmethod
    def _scan(index: SortedDict, prefix: str, start_after: str, limit: int) -> tuple[list[KeyValue], bool]:
        lo = max(prefix, start_after + "\x00") if start_after else prefix
        out: list[KeyValue] = []
        for key in index.irange(minimum=lo):
            if not key.startswith(prefix):
                break
            if limit and len(out) == limit:
                return out, True
            out.append(index[key])
        return out, False

    def _range_at(self, prefix: str, start_after: str, limit: int, revision: int) -> RangeResult:
        """Rebuild the prefix's state at ``revision`` by undoing newer events."""
        if revision <= self._compact_revision:
            raise Compacted(revision, self._compact_revision)
        snapshot: SortedDict[str, KeyValue] = SortedDict()
        for key in self._index.irange(minimum=prefix):
            if not key.startswith(prefix):
                break
            snapshot[key] = self._index[key]
        for ev in reversed(list(self._events_after(revision))):
            if not ev.kv.key.startswith(prefix):
                continue
            if ev.prev is not None:
                snapshot[ev.kv.key] = ev.prev
            else:
                snapshot.pop(ev.kv.key, None)
        kvs, more = self._scan(snapshot, prefix, start_after, limit)
        return RangeResult(kvs, revision, more)

    def _events_after(self, revision: int) -> Iterable[Event]:
        newer: list[Event] = []
        for ev in reversed(self._pending):
            if ev.revision <= revision:
                break
            newer.append(ev)
        else:
            for ev in reversed(self._history):
                if ev.revision <= revision:
                    break
                newer.append(ev)
        newer.reverse()
        return newer

    # ---- writes ---------------------------------------------------------------------

    async def txn(self, compares: list[Compare], success: list[Op], failure: list[Op] | None = None) -> TxnResult:
        result, waiter = self.txn_nowait(compares, success, failure)
        if waiter is not None:
            await waiter
        return result

    def txn_nowait(
        self, compares: list[Compare], success: list[Op], failure: list[Op] | None = None
    ) -> tuple[TxnResult, asyncio.Future[None] | None]:
        """Apply a transaction now; the future resolves when it is durable.

        In-process callers can batch many writes and await their futures together.
        """
        if self._failure is not None:
            raise StoreError("store failed to persist an earlier write") from self._failure
        ok = all(self._mod_revision(c.key) == c.mod_revision for c in compares)
        ops = success if ok else (failure or [])
        if not ops:
            current = [self._index.get(c.key) for c in compares] if not ok else []
            return TxnResult(ok, self._latest_revision, current), None
        revision = self._latest_revision + 1
        results: list[KeyValue | None] = []
        for op in ops:
            results.append(self._apply(op, revision))
        self._latest_revision = revision
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._pending_waiters.append(waiter)
        assert self._wakeup is not None, "store not started"
        self._wakeup.set()
        return TxnResult(ok, revision, results), waiter

    def _mod_revision(self, key: str) -> int:
        kv = self._index.get(key)
        return kv.mod_revision if kv is not None else 0

    def _apply(self, op: Op, revision: int) -> KeyValue | None:
        prev = self._index.get(op.key)
        if isinstance(op, Put):
            create = prev.create_revision if prev is not None else revision
            kv = KeyValue(op.key, op.value, create, revision, op.obj)
            self._index[op.key] = kv
            self._pending.append(Event("PUT", kv, prev))
            return kv
        assert isinstance(op, Delete)
        if prev is None:
            return None
        del self._index[op.key]
        tombstone = KeyValue(op.key, b"", prev.create_revision, revision)
        self._pending.append(Event("DELETE", tombstone, prev))
        return prev

    # ---- commit ---------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            await self._flush_now()
            if self._closing:
                await self._flush_now()  # what the last batch's persisting let in
                return

    async def _flush_now(self) -> None:
        if not self._pending_waiters and not self._pending:
            return
        events, self._pending = self._pending, []
        waiters, self._pending_waiters = self._pending_waiters, []
        revision = self._latest_revision
        started = time.perf_counter()
        try:
            await self._persist(events, revision)
        except BaseException as exc:  # the index is now ahead of the disk: stop writing
            log.exception("store: persisting %d events failed", len(events))
            self._failure = exc
            for w in waiters:
                if not w.done():
                    w.set_exception(StoreError(f"write not persisted: {exc}"))
            raise
        observe_commit(time.perf_counter() - started)
        self._committed_revision = revision
        self._publish(events)
        for w in waiters:
            if not w.done():
                w.set_result(None)
        if len(self._history) > self._history_limit:
            await self.compact(self._history[len(self._history) - self._history_limit].revision - 1)

    def _publish(self, events: list[Event]) -> None:
        if not events:
            return
        self._history.extend(events)
        for listener in self._listeners:
            try:
                listener(events)
            except Exception:  # a broken listener must not break the store
                log.exception("store listener failed")
        for w in self._watchers:
            for ev in events:
                if ev.kv.key.startswith(w.prefix):
                    w.queue.put_nowait(ev)

    # ---- watch ----------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def history_since(self, revision: int, prefix: str = "") -> list[Event]:
        """Committed events with revision > ``revision`` (raises Compacted if too old)."""
        if revision < self._compact_revision:
            raise Compacted(revision + 1, self._compact_revision)
        out: list[Event] = []
        for ev in reversed(self._history):
            if ev.revision <= revision:
                break
            if ev.kv.key.startswith(prefix):
                out.append(ev)
        out.reverse()
        return out

    def watch(self, prefix: str, start_revision: int) -> AsyncIterator[Event]:
        # Replay and registration happen together, before any await, so nothing is missed.
        backlog = self.history_since(max(start_revision - 1, 0), prefix) if start_revision else []
        watcher = _Watcher(prefix)
        for ev in backlog:
            watcher.queue.put_nowait(ev)
        self._watchers.add(watcher)
        return self._iterate(watcher)

    async def _iterate(self, watcher: _Watcher) -> AsyncIterator[Event]:
        try:
            while True:
                ev = await watcher.queue.get()
                if ev is None:
                    return
                yield ev
        finally:
            self._watchers.discard(watcher)

    def _close_watcher(self, watcher: _Watcher) -> None:
        self._watchers.discard(watcher)
        watcher.queue.put_nowait(None)

    # ---- compaction -----------------------------------------------------------------

    async def compact(self, revision: int) -> None:
        revision = min(revision, self._committed_revision)
        if revision <= self._compact_revision:
            return
        while self._history and self._history[0].revision <= revision:
            self._history.popleft()
        self._compact_revision = revision
