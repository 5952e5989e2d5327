"""A component's own writes and their echoes (podlife/client/own_writes.py, the informer's skip_own_writes).

Each test drives the API the way a component does: a :class:`TrackingClient` (the
component's client) writes pods while an :class:`Informer` made with
``skip_own_writes`` watches them, and a plain client stands for everybody else. In
process, the informer subscribes to the watch cache, so a write's event arrives
*during* the write -- the case the in-flight rule is for; the last test does the same
over HTTP, where the event usually comes after the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest

from podlife.api.local_client import LocalClient
from podlife.client.base import CONFIGMAPS, PODS, Client, Obj
from podlife.client.informer import Informer
from podlife.client.own_writes import MAX_PER_KEY, OwnWrites, TrackingClient
from podlife.machinery.errors import ApiError

from .cluster_harness import async_wait_for
from .in_process import InProcessApi

NS = "default"
KEY = f"{NS}/p"


def pod(name: str = "p") -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}


def rv(obj: Obj | None) -> str:
    return ((obj or {}).get("metadata") or {}).get("resourceVersion", "")


@dataclass
class Calls:
    """What an informer's handlers were called with (resourceVersions, in order)."""

    adds: list[str] = field(default_factory=list)
    updates: list[tuple[str, str]] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)

    def attach(self, informer: Informer) -> Calls:
        informer.add_handlers(on_add=lambda o: self.adds.append(rv(o)),
                              on_update=lambda old, new: self.updates.append((rv(old), rv(new))),
                              on_delete=lambda o: self.deletes.append(rv(o)))
        return self


@asynccontextmanager
async def running(informer: Informer) -> AsyncIterator[Calls]:
    """Run ``informer`` until the block ends; its handlers' calls are recorded from the start."""
    calls = Calls().attach(informer)
    task = asyncio.create_task(informer.run())
    try:
        await asyncio.wait_for(informer.wait_synced(), 10)
        yield calls
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
def other(local_api: InProcessApi) -> LocalClient:
    """Everybody else: a plain client, whose writes are news to the component."""
    return local_api.client


@pytest.fixture
def own(local_api: InProcessApi) -> TrackingClient:
    """The component's client, as the cluster makes it (results shared with the watch cache)."""
    return LocalClient(local_api.ctx, shared_results=True).tracking()


def informer_of(client: Client, own: TrackingClient) -> Informer:
    return Informer(client, PODS, NS, skip_own_writes=own.own_writes)


async def status(client: Client, message: str, name: str = "p") -> Obj:
    return await client.patch(PODS, name, {"status": {"message": message}}, NS, subresource="status")


# --------------------------------------------------------------------------- echoes and news


async def test_the_echo_of_an_own_write_does_not_reach_on_update(own: TrackingClient, other: LocalClient) -> None:
    informer = informer_of(own, own)
    async with running(informer) as calls:
        created = await other.create(PODS, pod(), NS)
        written = await status(own, "one")
        assert calls.adds == [rv(created)] and calls.updates == []
        assert rv(informer.cache[KEY]) == rv(written)  # the cache is current all the same
        assert own.own_writes.remembered(KEY) == 0 and not own.own_writes.in_flight(KEY)


async def test_a_write_by_another_client_reaches_on_update(own: TrackingClient, other: LocalClient) -> None:
    async with running(informer_of(own, own)) as calls:
        created = await other.create(PODS, pod(), NS)
        first = await status(own, "one")
        second = await status(other, "two")
        assert calls.updates == [(rv(first), rv(second))]
        assert rv(created) != rv(first)


async def test_the_echo_arrives_while_the_write_is_in_flight(own: TrackingClient, other: LocalClient) -> None:
    """In process the event comes inside the commit, before the write returns: it is held, then judged an echo."""
    seen_in_flight: list[bool] = []

    def note(type_: str, obj: Obj) -> None:
        if type_ == "MODIFIED":
            seen_in_flight.append(own.own_writes.in_flight(KEY))

    spy = other.subscribe(PODS, NS, on_event=note)
    assert spy is not None
    try:
        async with running(informer_of(own, own)) as calls:
            await other.create(PODS, pod(), NS)
            await status(own, "one")
            assert seen_in_flight == [True]
            assert calls.updates == []
    finally:
        spy()


async def test_an_update_during_our_write_is_held_then_handed_on_once(own: TrackingClient, other: LocalClient) -> None:
    informer = informer_of(own, own)
    writes = own.own_writes
    async with running(informer) as calls:
        created = await other.create(PODS, pod(), NS)
        writes.begin(KEY)  # as TrackingClient does around a write
        await status(other, "one")
        newest = await status(other, "two")
        assert calls.updates == [] and rv(informer.cache[KEY]) == rv(newest)  # held, though cached at once
        writes.end(KEY, None)  # the write failed: nothing of ours among them
        assert calls.updates == [(rv(created), rv(newest))]  # one call: the oldest old, the newest object


async def test_news_and_an_echo_held_together_make_one_update(own: TrackingClient, other: LocalClient) -> None:
    """Two components write at once; the component hears of the other's change once, never of its own."""
    async with running(informer_of(own, own)) as calls:
        await other.create(PODS, pod(), NS)
        for i in range(5):
            ours, theirs = await asyncio.gather(
                status(own, f"ours {i}"),
                other.patch(PODS, "p", {"metadata": {"annotations": {"theirs": str(i)}}}, NS))
            newest = max(rv(ours), rv(theirs), key=int)
            assert len(calls.updates) == i + 1, calls.updates  # whichever committed first, held or not
            assert calls.updates[-1][1] == newest
        assert own.own_writes.remembered(KEY) == 0


async def test_nested_writes_on_one_key_hold_until_the_last_ends(own: TrackingClient, other: LocalClient) -> None:
    writes = own.own_writes
    async with running(informer_of(own, own)) as calls:
        created = await other.create(PODS, pod(), NS)
        writes.begin(KEY)
        writes.begin(KEY)
        news = await status(other, "one")
        writes.end(KEY, None)
        assert calls.updates == [] and writes.in_flight(KEY)
        writes.end(KEY, None)
        assert calls.updates == [(rv(created), rv(news))] and not writes.in_flight(KEY)


async def test_a_deletion_supersedes_what_was_held(own: TrackingClient, other: LocalClient) -> None:
    writes = own.own_writes
    async with running(informer_of(own, own)) as calls:
        await other.create(PODS, pod(), NS)
        writes.begin(KEY)
        held = await status(other, "one")
        await other.delete(PODS, "p", NS, grace_period_seconds=0)
        assert calls.deletes == [rv(held)]  # on_delete gets the last version cached, as ever
        writes.end(KEY, None)
        assert calls.updates == [] and writes.remembered() == 0


async def test_own_deletes_and_bindings(own: TrackingClient, other: LocalClient) -> None:
    """A graceful delete's MODIFIED is an echo; a binding answers a Status, so its update is news; DELETED always comes."""
    async with running(informer_of(own, own)) as calls:
        created = await other.create(PODS, pod(), NS)
        answer = await own.create_subresource(PODS, "p", "binding", {"target": {"name": "n1"}}, NS)
        assert answer["kind"] == "Status" and len(calls.updates) == 1 and calls.updates[0][0] == rv(created)
        marked = await own.delete(PODS, "p", NS)
        assert marked["metadata"].get("deletionTimestamp") and len(calls.updates) == 1
        await own.delete(PODS, "p", NS, grace_period_seconds=0)
        assert calls.deletes == [rv(marked)]  # the last version cached
        assert own.own_writes.remembered() == 0 and not own.own_writes.in_flight(KEY)


async def test_a_failed_write_leaves_nothing_behind(own: TrackingClient, other: LocalClient) -> None:
    async with running(informer_of(own, own)) as calls:
        created = await other.create(PODS, pod(), NS)
        await status(other, "one")
        with pytest.raises(ApiError) as conflict:
            await own.update(PODS, created)  # a stale resourceVersion
        assert conflict.value.code == 409
        with pytest.raises(ApiError):
            await status(own, "x", name="missing")
        assert not own.own_writes.in_flight(KEY) and not own.own_writes.in_flight(f"{NS}/missing")
        assert own.own_writes.remembered() == 0 and len(calls.updates) == 1


# --------------------------------------------------------------------------- memory


async def test_a_write_that_changed_nothing_is_not_remembered(own: TrackingClient, other: LocalClient) -> None:
    """Its answer is the version already delivered (same resourceVersion): no event will come for it."""
    async with running(informer_of(own, own)) as calls:
        await other.create(PODS, pod(), NS)
        first = await status(own, "same")
        again = await status(own, "same")
        assert rv(again) == rv(first)
        assert own.own_writes.remembered(KEY) == 0 and calls.updates == []


async def test_a_relist_forgets_and_memory_is_bounded(own: TrackingClient, other: LocalClient) -> None:
    """Writes whose events nobody receives pile up to MAX_PER_KEY at most; the informer's first list forgets them."""
    informer = informer_of(own, own)  # tracks pods, not running yet: every echo is lost
    await other.create(PODS, pod(), NS)
    for i in range(2 * MAX_PER_KEY + 3):
        await status(own, f"lost {i}")
        assert 0 < own.own_writes.remembered(KEY) <= MAX_PER_KEY
    async with running(informer) as calls:
        assert own.own_writes.remembered() == 0
        assert len(calls.adds) == 1  # dispatched as without skip_own_writes
        await status(own, "after")
        assert calls.updates == []


async def test_writes_to_kinds_nobody_skips_are_not_recorded(own: TrackingClient) -> None:
    """Events, config maps, leases...: their versions would wait for echoes that no informer consumes."""
    async with running(informer_of(own, own)):
        await own.create(CONFIGMAPS, {"metadata": {"name": "cm"}, "data": {"a": "1"}}, NS)
        await own.patch(CONFIGMAPS, "cm", {"data": {"a": "2"}}, NS)
        assert own.own_writes.remembered() == 0 and not own.own_writes.tracks(CONFIGMAPS)


def test_own_writes_by_hand() -> None:
    """The record alone: versions consumed once, bounded per key, dropped for deleted keys."""
    writes = OwnWrites()
    ended: list[str] = []
    stop = writes.add_listener(ended.append)
    for i in range(MAX_PER_KEY + 1):
        writes.begin(KEY)
        writes.end(KEY, {"metadata": {"namespace": NS, "name": "p", "resourceVersion": str(i)}})
    assert writes.remembered(KEY) == 1 and ended == [KEY] * (MAX_PER_KEY + 1)  # the set started over
    echo: dict[str, Any] = {"metadata": {"namespace": NS, "name": "p", "resourceVersion": str(MAX_PER_KEY)}}
    assert writes.is_echo(echo) and not writes.is_echo(echo)
    writes.begin(KEY)
    writes.discard(KEY)  # deleted while a write was in flight: what it returns is not kept
    writes.end(KEY, {"metadata": {"namespace": NS, "name": "p", "resourceVersion": "99"}})
    writes.end("x", {"kind": "Status", "metadata": {"resourceVersion": "100"}})
    assert writes.remembered() == 0
    stop()
    writes.begin(KEY)
    writes.end(KEY, None)
    assert len(ended) == MAX_PER_KEY + 3


async def test_an_informer_without_skip_own_writes_is_unchanged(own: TrackingClient, other: LocalClient) -> None:
    skipping = informer_of(own, own)  # tracks pods, so the writes below are recorded
    plain = Informer(own, PODS, NS)
    async with running(skipping) as skipped, running(plain) as heard:
        created = await other.create(PODS, pod(), NS)
        written = await status(own, "one")
        assert heard.updates == [(rv(created), rv(written))] and skipped.updates == []


# --------------------------------------------------------------------------- over HTTP


def cached_at(informer: Informer, version: str) -> bool:
    return rv(informer.cache.get(KEY)) == version


async def test_over_http(local_api: InProcessApi, other: LocalClient) -> None:
    """List and watch over HTTP: the echo (usually after the answer) is dropped, another client's write is not."""
    from podlife.api.server import APIServer
    from podlife.client.http import HTTPClient

    server = APIServer(local_api.ctx, token="t")
    http = HTTPClient(await server.start("127.0.0.1", 0, None), token="t")
    own = http.tracking()
    informer = informer_of(own, own)
    try:
        async with running(informer) as calls:
            created = await other.create(PODS, pod(), NS)
            await async_wait_for(lambda: calls.adds == [rv(created)], what="the ADDED event")
            for i in range(3):
                written = rv(await status(own, f"ours {i}"))
                await async_wait_for(partial(cached_at, informer, written), what="the echo")
            assert calls.updates == [] and own.own_writes.remembered(KEY) == 0
            news = await status(other, "theirs")
            await async_wait_for(lambda: calls.updates == [(written, rv(news))], what="the other's update")
            await own.delete(PODS, "p", NS, grace_period_seconds=0)
            await async_wait_for(lambda: calls.deletes == [rv(news)], what="the DELETED event")
            assert own.own_writes.remembered() == 0
    finally:
        await http.close()
        await server.stop()
