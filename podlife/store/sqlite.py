"""The embedded default store: :class:`MemoryStore` made durable in one SQLite file.

Why this shape
--------------
SQLite in WAL mode gives crash-safe commits with no server to run. Reads are served
from memory (the whole key space is small: ten thousand pods are tens of megabytes),
so SQLite only ever sees writes, batched: the flush task of :class:`MemoryStore` hands
every write of the last few milliseconds to one transaction in a worker thread (group
commit), and the writers are acknowledged after ``COMMIT`` returns.

Tables
------
``kv``    the current value of every key, with its create and mod revisions.
``log``   one row per change (revision, key, PUT/DELETE, value), so watch history
          survives a restart the way etcd's does; compaction deletes old rows.
``meta``  the current revision and the compact revision.

Each revision holds one transaction; several keys may share a revision (a txn that
writes two keys), so ``log`` is keyed by (revision, key).
"""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .base import Event, KeyValue
from .memory import DEFAULT_HISTORY_LIMIT, MemoryStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    create_rev INTEGER NOT NULL,
    mod_rev INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log (
    rev INTEGER NOT NULL,
    key TEXT NOT NULL,
    deleted INTEGER NOT NULL,
    value BLOB NOT NULL,
    create_rev INTEGER NOT NULL,
    prev_mod_rev INTEGER NOT NULL,
    PRIMARY KEY (rev, key)
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
        self._meta_compact = 0

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # ---- loading --------------------------------------------------------------------

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL is crash-safe for the application (a killed process loses
        # nothing committed); FULL also survives power loss at an fsync per commit.
        db.execute(f"PRAGMA synchronous={self._synchronous}")
        db.executescript(_SCHEMA)
        self._db = db
        for name, value in db.execute("SELECT name, value FROM meta"):
            if name == "revision":
                self._meta_revision = value
            elif name == "compact":
                self._meta_compact = value

    async def _load(self) -> list[KeyValue]:
        await self._run(self._open)
        assert self._db is not None
        rows = await self._run(lambda: self._db.execute("SELECT key, value, create_rev, mod_rev FROM kv").fetchall())
        self._compact_revision = self._meta_compact
        return [KeyValue(k, bytes(v), c, m) for k, v, c, m in rows]

    def _loaded_revision(self) -> int:
        return self._meta_revision

    async def _load_history(self) -> list[Event]:
        assert self._db is not None
        rows = await self._run(
            lambda: self._db.execute(
                "SELECT rev, key, deleted, value, create_rev, prev_mod_rev FROM log ORDER BY rev, key"
            ).fetchall()
        )
        last: dict[str, KeyValue] = {}
        events: list[Event] = []
        for rev, key, deleted, value, create_rev, prev_mod in rows:
            value = bytes(value)
            if deleted:
                prev = KeyValue(key, value, create_rev, prev_mod)
                events.append(Event("DELETE", KeyValue(key, b"", create_rev, rev), prev))
                last.pop(key, None)
            else:
                kv = KeyValue(key, value, create_rev, rev)
                prev = last.get(key)
                events.append(Event("PUT", kv, prev if prev is not None and prev.mod_revision == prev_mod else None))
                last[key] = kv
        return events

    # ---- writing --------------------------------------------------------------------

    def _write_batch(self, events: list[Event], revision: int) -> None:
        db = self._db
        assert db is not None
        upserts: dict[str, tuple] = {}
        deletes: set[str] = set()
        log_rows = []
        for ev in events:
            kv = ev.kv
            if ev.type == "PUT":
                upserts[kv.key] = (kv.key, kv.value, kv.create_revision, kv.mod_revision)
                deletes.discard(kv.key)
                prev_mod = ev.prev.mod_revision if ev.prev is not None else 0
                log_rows.append((kv.mod_revision, kv.key, 0, kv.value, kv.create_revision, prev_mod))
            else:
                upserts.pop(kv.key, None)
                deletes.add(kv.key)
                prev = ev.prev
                assert prev is not None
                log_rows.append((kv.mod_revision, kv.key, 1, prev.value, prev.create_revision, prev.mod_revision))
        db.execute("BEGIN")
        try:
            if upserts:
                db.executemany("INSERT OR REPLACE INTO kv VALUES (?, ?, ?, ?)", upserts.values())
            if deletes:
                db.executemany("DELETE FROM kv WHERE key = ?", [(k,) for k in deletes])
            db.executemany("INSERT OR REPLACE INTO log VALUES (?, ?, ?, ?, ?, ?)", log_rows)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('revision', ?)", (revision,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def _persist(self, events: list[Event], revision: int) -> None:
        await self._run(self._write_batch, events, revision)

    def _compact_rows(self, revision: int) -> None:
        assert self._db is not None
        self._db.execute("BEGIN")
        self._db.execute("DELETE FROM log WHERE rev <= ?", (revision,))
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('compact', ?)", (revision,))
        self._db.execute("COMMIT")

    async def _persist_compaction(self, revision: int) -> None:
        await self._run(self._compact_rows, revision)

    async def close(self) -> None:
        await super().close()
        if self._db is not None:
            db, self._db = self._db, None
            await self._run(db.close)
        self._executor.shutdown(wait=True)
