"""Tests for podlife.machinery.tasks: the Supervisor of background tasks."""

from __future__ import annotations

import asyncio
import logging

import pytest

from podlife.machinery.tasks import Supervisor


async def test_a_crash_is_logged_with_the_task_and_owner_names(caplog: pytest.LogCaptureFixture) -> None:
    supervisor = Supervisor("test owner")

    async def crash() -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="podlife.machinery.tasks"):
        task = supervisor.start(crash(), "the crasher")
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0)  # done callbacks run on the next loop iteration
    records = [r for r in caplog.records if "the crasher" in r.getMessage()]
    assert len(records) == 1
    assert records[0].getMessage() == "test owner: task the crasher crashed"
    assert records[0].exc_info is not None and isinstance(records[0].exc_info[1], RuntimeError)
    assert len(supervisor) == 0  # forgotten once finished


async def test_cancellation_and_success_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    supervisor = Supervisor("quiet")
    with caplog.at_level(logging.ERROR, logger="podlife.machinery.tasks"):
        done = supervisor.start(asyncio.sleep(0, result=7), "finishes")
        assert await done == 7
        supervisor.start(asyncio.Event().wait(), "waits forever")
        assert len(supervisor) == 1
        await supervisor.stop()
    assert not [r for r in caplog.records if r.name == "podlife.machinery.tasks"]
    assert len(supervisor) == 0


async def test_stop_cancels_every_task_and_waits_for_its_cleanup() -> None:
    supervisor = Supervisor("stopping")
    cleaned: list[str] = []

    async def worker(name: str) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0)  # cleanup that itself awaits
            cleaned.append(name)

    tasks = [supervisor.start(worker(f"w{i}"), f"w{i}") for i in range(3)]
    await asyncio.sleep(0)
    await supervisor.stop()
    assert sorted(cleaned) == ["w0", "w1", "w2"]
    assert all(t.cancelled() for t in tasks)
    assert list(supervisor) == []


async def test_one_crash_does_not_cancel_the_others() -> None:
    supervisor = Supervisor("siblings")
    release = asyncio.Event()

    async def crash() -> None:
        raise ValueError("one fails")

    async def sibling() -> str:
        await release.wait()
        return "still here"

    crashed = supervisor.start(crash(), "crash")
    survivor = supervisor.start(sibling(), "sibling")
    await asyncio.gather(crashed, return_exceptions=True)
    assert not survivor.done()
    release.set()
    assert await survivor == "still here"


async def test_wait_lets_tasks_finish_without_cancelling_them() -> None:
    supervisor = Supervisor("waiting")
    release = asyncio.Event()
    results: list[int] = []

    async def work(n: int) -> None:
        await release.wait()
        results.append(n)

    tasks = [supervisor.start(work(n)) for n in range(3)]
    waiting = asyncio.ensure_future(supervisor.wait())
    await asyncio.sleep(0)
    assert not waiting.done()
    release.set()
    await waiting
    assert sorted(results) == [0, 1, 2]
    assert not any(t.cancelled() for t in tasks)


async def test_cancel_does_not_wait() -> None:
    supervisor = Supervisor("cancel")
    task = supervisor.start(asyncio.Event().wait(), "forever")
    await asyncio.sleep(0)
    supervisor.cancel()
    assert not task.done()  # cancellation is delivered on the next loop iteration
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()


async def test_a_named_future_keeps_its_name_and_is_supervised() -> None:
    supervisor = Supervisor("futures")
    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = supervisor.start(future, "a future")
    assert task.get_name() == "a future"
    future.set_result(3)
    assert await task == 3
