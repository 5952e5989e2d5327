"""The store's etcd-shaped contract, for every backend: memory, SQLite and real etcd (a fresh member per test).

Revisions are counted from the store's revision at the start (``r0``): 0 for the embedded stores, 1 for a
new etcd, whose first write is revision 2."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from podlife.store import Compacted, Compare, Delete, MemoryStore, Put, SQLiteStore, Store
from podlife.store.etcd import EtcdStore

from .etcd_harness import running_etcd


@pytest.fixture(params=["memory", "sqlite", "etcd"])
async def store(request, tmp_path: Path):
    with contextlib.ExitStack() as stack:
        if request.param == "memory":
            s: Store = MemoryStore(history_limit=1000)
        elif request.param == "sqlite":
            s = SQLiteStore(tmp_path / "db.sqlite", history_limit=1000)
        else:
            etcd = stack.enter_context(running_etcd(tmp_path / "etcd"))
            s = EtcdStore(etcd.url, history_limit=1000)
        await s.start()
        try:
            yield s
        finally:
            await s.close()


async def test_create_get_update_conflict(store: Store) -> None:
    r0 = store.revision
    kv = await store.create("/a/1", b"one")
    assert kv is not None and kv.create_revision == kv.mod_revision == r0 + 1
    assert await store.create("/a/1", b"again") is None
    res = await store.update("/a/1", b"two", kv.mod_revision)
    assert res.succeeded and res.revision == r0 + 2
    stale = await store.update("/a/1", b"three", kv.mod_revision)
    assert not stale.succeeded
    assert stale.results[0].value == b"two"  # current value returned on conflict
    got = await store.get("/a/1")
    assert got.value == b"two" and got.create_revision == r0 + 1 and got.mod_revision == r0 + 2
    assert store.revision == r0 + 2


async def test_range_prefix_limit_and_past_revision(store: Store) -> None:
    r0 = store.revision
    for i in range(5):
        await store.create(f"/p/{i}", str(i).encode())
    await store.create("/q/0", b"x")
    page = await store.range("/p/", limit=2)
    assert [kv.key for kv in page.kvs] == ["/p/0", "/p/1"] and page.more
    rest = await store.range("/p/", start_after="/p/1")
    assert [kv.key for kv in rest.kvs] == ["/p/2", "/p/3", "/p/4"] and not rest.more
    at3 = r0 + 2  # the revision that wrote /p/1
    await store.delete("/p/0")
    await store.update("/p/1", b"changed", (await store.get("/p/1")).mod_revision)
    past = await store.range("/p/", revision=at3)
    assert [(kv.key, kv.value) for kv in past.kvs] == [("/p/0", b"0"), ("/p/1", b"1")]


async def test_txn_multiple_ops_share_revision(store: Store) -> None:
    res = await store.txn([Compare("/k/a", 0)], [Put("/k/a", b"a"), Put("/k/b", b"b")])
    assert res.succeeded
    a, b = await store.get("/k/a"), await store.get("/k/b")
    assert a.mod_revision == b.mod_revision == res.revision
    res = await store.txn([Compare("/k/a", 0)], [Put("/k/a", b"no")], [Delete("/k/b")])
    assert not res.succeeded and await store.get("/k/b") is None


async def test_watch_replays_history_then_follows(store: Store) -> None:
    await store.create("/w/1", b"1")
    start = store.revision
    await store.create("/w/2", b"2")
    await store.create("/other", b"x")
    events = store.watch("/w/", start + 1)
    await store.delete("/w/1")
    got = []
    async for ev in events:
        got.append((ev.type, ev.kv.key))
        if len(got) == 2:
            break
    assert got == [("PUT", "/w/2"), ("DELETE", "/w/1")]


async def test_watch_from_compacted_revision_fails(store: Store) -> None:
    r0 = store.revision
    for i in range(5):
        await store.create(f"/c/{i}", b"v")
    await store.compact(r0 + 3)
    with pytest.raises(Compacted):
        store.watch("/c/", r0 + 2)
    with pytest.raises(Compacted):
        await store.range("/c/", revision=r0 + 2)


async def test_concurrent_writes_are_group_committed_and_ordered(store: Store) -> None:
    r0 = store.revision
    seen: list[int] = []
    store.add_listener(lambda evs: seen.extend(e.revision for e in evs))
    await asyncio.gather(*(store.create(f"/g/{i}", b"v") for i in range(200)))
    assert seen == sorted(seen) and len(seen) == 200 and store.revision == seen[-1]
    if isinstance(store, EtcdStore):  # writes in flight together go as one Txn: they share its revision
        assert r0 < store.revision < r0 + 200
    else:  # one revision per write
        assert store.revision == r0 + 200


async def test_sqlite_survives_restart(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    s = SQLiteStore(path)
    await s.start()
    kv = await s.create("/r/a", b"1")
    await s.update("/r/a", b"2", kv.mod_revision)
    await s.create("/r/b", b"3")
    await s.delete("/r/b")
    await s.close()

    s2 = SQLiteStore(path)
    await s2.start()
    try:
        assert s2.revision == 4
        got = await s2.get("/r/a")
        assert got.value == b"2" and got.create_revision == 1 and got.mod_revision == 2
        assert await s2.get("/r/b") is None
        # history is not kept across a restart: resuming from before it is Compacted (410)
        assert s2.compact_revision == 4
        with pytest.raises(Compacted):
            s2.watch("/r/", 3)
        kv = await s2.create("/r/c", b"4")
        assert kv.mod_revision == 5
        assert [e.kv.key async for e in _take(s2.watch("/r/", 5), 1)] == ["/r/c"]
    finally:
        await s2.close()


async def _take(events, n):
    async for ev in events:
        yield ev
        n -= 1
        if n == 0:
            return
