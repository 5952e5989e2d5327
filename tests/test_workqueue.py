"""The work queue: de-duplication, one worker per key, and one wake-up per key."""

from __future__ import annotations

import asyncio

from podlife.client.workqueue import WorkQueue


async def test_every_key_is_handled_once_by_many_workers() -> None:
    queue = WorkQueue()
    handled: list[str] = []
    all_done = asyncio.Event()
    keys = [f"k{i}" for i in range(500)]

    async def handle(key: str) -> None:
        await asyncio.sleep(0)
        handled.append(key)
        if len(handled) == len(keys):
            all_done.set()

    runner = asyncio.create_task(queue.run_workers(handle, workers=64))
    for key in keys:
        queue.add(key)
        queue.add(key)  # de-duplicated while waiting
    await asyncio.wait_for(all_done.wait(), 10)
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    assert sorted(handled) == sorted(keys)


async def test_adding_a_key_wakes_one_idle_worker_not_all() -> None:
    queue = WorkQueue()
    woken: list[str] = []
    got = asyncio.Event()

    async def idle_worker() -> None:
        key = await queue.get()
        woken.append(key)
        got.set()

    workers = [asyncio.create_task(idle_worker()) for _ in range(100)]
    await asyncio.sleep(0)  # let them all go idle
    assert len(queue._idle) == 100
    queue.add("one")
    await asyncio.wait_for(got.wait(), 5)
    assert woken == ["one"]
    assert sum(1 for w in queue._idle if not w.done()) == 99  # the others still sleep, untouched
    for w in workers:
        w.cancel()
    await asyncio.gather(*workers, return_exceptions=True)


async def test_a_cancelled_worker_passes_its_wake_up_on() -> None:
    queue = WorkQueue()
    first = asyncio.create_task(queue.get())
    second = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.add("k")  # wakes the first idle worker ...
    first.cancel()  # ... which is cancelled before it runs
    assert await asyncio.wait_for(second, 5) == "k"
    await asyncio.gather(first, return_exceptions=True)
