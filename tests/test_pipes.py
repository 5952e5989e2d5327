"""podlife.kubelet.pipes: a pipe read to its end on asyncio's loop and on uvloop, its fd closed once."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Callable

import pytest
import uvloop

from podlife.kubelet.pipes import PipeReader, read_to_end

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


def _run(loop_name: str, coro_fn: Callable[[], object]) -> object:
    loop = LOOPS[loop_name]()
    try:
        return loop.run_until_complete(coro_fn())  # type: ignore[arg-type]
    finally:
        loop.close()


@pytest.mark.parametrize("loop_name", sorted(LOOPS))
def test_reads_everything_then_closes_its_fd_and_no_other(loop_name: str) -> None:
    async def scenario() -> tuple[bytes, bool]:
        r, w = os.pipe()

        def write() -> None:  # more than a pipe holds, so the reader reads while this blocks
            os.write(w, b"x" * 100_000)
            os.write(w, b"end")
            os.close(w)

        data, _ = await asyncio.gather(read_to_end(r), asyncio.to_thread(write))
        # The number is free again; whoever gets it next must keep it.
        other = os.open("/dev/null", os.O_RDONLY)
        try:
            gc.collect()
            await asyncio.sleep(0)
            os.fstat(other)
            return data, other == r
        finally:
            os.close(other)

    data, reused = _run(loop_name, scenario)  # type: ignore[misc]
    assert data == b"x" * 100_000 + b"end"
    assert reused  # the test exercised the dangerous case: the same number handed out again


@pytest.mark.parametrize("loop_name", sorted(LOOPS))
def test_close_before_the_end_ends_the_stream_once(loop_name: str) -> None:
    async def scenario() -> bytes:
        r, w = os.pipe()
        pipe = PipeReader(r)
        os.write(w, b"line\n")
        line = await pipe.reader.readline()
        pipe.close()
        pipe.close()  # idempotent
        with pytest.raises(OSError):
            os.fstat(r)
        os.close(w)
        assert await pipe.reader.read() == b""
        return line

    assert _run(loop_name, scenario) == b"line\n"
