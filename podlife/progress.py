"""Progress bars for long waits (``podlife up`` registering many simulated nodes, the benchmarks'
pods created / Running / bound), drawn with rich on a terminal and silent everywhere else.

What it reads: counters -- plain callables returning how many things are done so far (the
length of a dict the caller fills anyway, nodes with a uid). It polls them a few times a second
from a task on the caller's event loop. What it writes: one bar per counter on stderr (so
stdout's figures and banners stay exactly as they were), removed or left as the final state
when the block ends.

Why polling instead of ticks from the code being measured: the hot paths (a watch handler
seeing thousands of pods per second, the simulator registering nodes) stay untouched and pay
nothing; the cost is one small coroutine every ``interval`` seconds, and none at all when
stderr is not a terminal (``Console.is_terminal``: CI logs, pipes, tests), where no task runs.
rich's own refresh thread is not used (``auto_refresh=False``): redraws happen on the loop,
so a benchmark measuring that loop gets no competing thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Board", "progress"]


@dataclass
class _Counter:
    description: str
    total: int
    count: Callable[[], int]
    task_id: Any = None


@dataclass
class Board:
    """The bars of one :func:`progress` block; :meth:`add` a counter whenever a phase begins."""

    bars: Any = None  # rich.progress.Progress on a terminal, else None (nothing is drawn)
    counters: list[_Counter] = field(default_factory=list)

    @property
    def active(self) -> bool:
        """Whether anything is drawn (stderr is a terminal)."""
        return self.bars is not None

    def add(self, description: str, total: int, count: Callable[[], int]) -> None:
        """A bar for ``count()`` out of ``total``, polled from now on (a no-op when nothing is drawn)."""
        if self.bars is None:
            return
        counter = _Counter(description, total, count)
        counter.task_id = self.bars.add_task(description, total=total, completed=_safe(count))
        self.counters.append(counter)

    def refresh(self) -> None:
        """Poll every counter and redraw."""
        if self.bars is None:
            return
        for counter in self.counters:
            self.bars.update(counter.task_id, completed=min(_safe(counter.count), counter.total))
        self.bars.refresh()


def _safe(count: Callable[[], int]) -> int:
    """A counter's value; a counter that fails (its object not there yet) counts 0 rather than ending the run."""
    try:
        return int(count())
    except Exception:
        return 0


@contextlib.asynccontextmanager
async def progress(*, console: Any = None, interval: float = 0.2, transient: bool = False) -> AsyncIterator[Board]:
    """``async with progress() as board: board.add("pods Running", n, lambda: len(running))``.

    ``console``: where to draw (default: a rich Console on stderr); nothing is drawn, and no
    task runs, unless it is a terminal. ``transient``: erase the bars at the end (else the
    final counts stay on screen).
    """
    if console is None:
        from rich.console import Console

        console = Console(stderr=True)
    if not console.is_terminal:
        yield Board()
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, auto_refresh=False, transient=transient,
                    redirect_stdout=False)  # stdout stays the caller's: its figures never move to stderr
    board = Board(bars)

    async def poll() -> None:
        while True:
            board.refresh()
            await asyncio.sleep(interval)

    with bars, _logs_above(bars):
        task = asyncio.create_task(poll())
        try:
            yield board
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            board.refresh()


@contextlib.contextmanager
def _logs_above(bars: Any) -> Iterator[None]:
    """While the bars are drawn, log handlers writing to stderr write through rich (above the bars).

    rich redirects ``sys.stderr`` while it draws, but a ``logging.StreamHandler`` holds the stream
    it was given at set-up, so its lines would land in the middle of a bar.
    """
    proxy = sys.stderr
    handlers = [h for h in logging.getLogger().handlers
                if isinstance(h, logging.StreamHandler) and h.stream in (sys.__stderr__, bars.console.file)
                and h.stream is not proxy]
    previous = [h.setStream(proxy) for h in handlers]
    try:
        yield
    finally:
        for handler, stream in zip(handlers, previous, strict=True):
            handler.setStream(stream)
