"""The embedded default store: :class:`MemoryStore` made durable in one SQLite file.

Why this shape
--------------
SQLite in WAL mode gives crash-safe commits with no server to run. Reads are served
from memory (the whole key space is small: ten thousand pods are tens of megabytes),
so SQLite only ever sees writes, batched: the flush task of :class:`MemoryStore` hands
every write of the last few milliseconds to one transaction in a worker thread (group
commit), and the writers are acknowledged after ``COMMIT`` returns.

What is durable is the current state: every key with its value and its create and mod
revisions, and the store's revision. The history of changes that watches resume from
lives in memory (as in the Kubernetes API server's watch cache), so after a restart
the store's compact revision is its revision: a client resuming from an older
resourceVersion gets 410 Expired and lists again, exactly as after an API server
restart. Persisting history too would double the writes for no behaviour a client can
observe beyond that.

Tables: ``kv(key, value, create_rev, mod_rev)`` and ``meta(name, value)`` holding
``revision``.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from .base import Event, KeyValue
from .memory import DEFAULT_HISTORY_LIMIT, MemoryStore

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    create_rev INTEGER NOT NULL,
    mod_rev INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
"""


class SQLiteStore(MemoryStore):
    def __init__(self, path: str | Path, *, history_limit: int = DEFAULT_HISTORY_LIMIT, synchronous: str = "NORMAL") -> None:
        super().__init__(history_limit=history_limit)
        self.path = Path(path)
        self._synchronous = synchronous
        self._db: sqlite3.Connection | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        self._meta_revision = 0

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # ---- loading --------------------------------------------------------------------

    def _open(self) -> list[KeyValue]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL is crash-safe for the application (a killed process loses
        # nothing committed); FULL also survives power loss at an fsync per commit.
        db.execute(f"PRAGMA synchronous={self._synchronous}")
        db.executescript(_SCHEMA)
        self._db = db
        row = db.execute("SELECT value FROM meta WHERE name = 'revision'").fetchone()
        self._meta_revision = row[0] if row else 0
        rows = db.execute("SELECT key, value, create_rev, mod_rev FROM kv").fetchall()
        return [KeyValue(k, bytes(v), c, m) for k, v, c, m in rows]

    async def _load(self) -> list[KeyValue]:
        return await self._run(self._open)

    def _loaded_revision(self) -> int:
        return self._meta_revision

    # ---- writing --------------------------------------------------------------------

    def _write_batch(self, upserts: list[tuple], deletes: list[tuple], revision: int) -> None:
        db = self._db
        assert db is not None
        db.execute("BEGIN")
        try:
            if upserts:
                db.executemany("INSERT OR REPLACE INTO kv VALUES (?, ?, ?, ?)", upserts)
            if deletes:
                db.executemany("DELETE FROM kv WHERE key = ?", deletes)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('revision', ?)", (revision,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def _persist(self, events: list[Event], revision: int) -> None:
        # Only the last change of each key in the batch matters for the current state.
        last: dict[str, Event] = {}
        for ev in events:
            last[ev.kv.key] = ev
        upserts = [(e.kv.key, e.kv.value, e.kv.create_revision, e.kv.mod_revision) for e in last.values() if e.type == "PUT"]
        deletes = [(e.kv.key,) for e in last.values() if e.type == "DELETE"]
        await self._run(self._write_batch, upserts, deletes, revision)

    async def close(self) -> None:
        await super().close()
        if self._db is not None:
            db, self._db = self._db, None
            await self._run(db.close)
        self._executor.shutdown(wait=True)
