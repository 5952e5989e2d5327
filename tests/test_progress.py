"""Progress bars (:mod:`podlife.progress`): drawn on a terminal, silent otherwise; ``podlife up`` on a pty.

The unit tests draw into rich Consoles over a StringIO (forced to be a terminal or not); the
end-to-end test runs the real ``podlife up`` with its stderr on a pseudo-terminal, as a user's
shell would, and reads the bar of the simulated nodes registering.
"""

from __future__ import annotations

import asyncio
import io
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from podlife.progress import progress


def _console(terminal: bool) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=terminal, width=100), buffer


async def _count_to(n: int, console: Console) -> list[int]:
    done: list[int] = []
    async with progress(console=console, interval=0.01) as board:
        board.add("things done", n, done.__len__)
        board.add("broken counter", n, lambda: 1 // 0)  # counts 0, does not end the block
        for i in range(n):
            done.append(i)
            await asyncio.sleep(0.005)
    return done


def test_quiet_when_not_a_terminal() -> None:
    console, buffer = _console(terminal=False)

    async def main() -> bool:
        async with progress(console=console) as board:
            board.add("things", 3, lambda: 3)
            tasks = len(asyncio.all_tasks())
            return not board.active and tasks == 1  # no polling task either

    assert asyncio.run(main())
    assert buffer.getvalue() == ""


def test_bars_on_a_terminal_end_at_the_final_counts() -> None:
    console, buffer = _console(terminal=True)
    assert asyncio.run(_count_to(5, console)) == [0, 1, 2, 3, 4]
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buffer.getvalue())
    assert "things done" in text and "5/5" in text
    assert "broken counter" in text and "0/5" in text


def test_podlife_up_shows_nodes_registering_on_a_terminal(tmp_path: Path) -> None:
    primary, secondary = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "podlife.cli", "up", "--data-dir", str(tmp_path / "data"),
                             "--port", "0", "--nodes", "0", "--sim-nodes", "300", "--in-memory"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=secondary, start_new_session=True)
    os.close(secondary)
    seen = b""
    try:
        deadline = time.monotonic() + 60
        while b"300/300" not in seen and time.monotonic() < deadline and proc.poll() is None:
            ready, _, _ = select.select([primary], [], [], 0.5)
            if ready:
                try:
                    seen += os.read(primary, 65536)
                except OSError:
                    break
        assert b"simulated nodes registered" in seen, seen[-2000:]
        assert b"300/300" in seen, seen[-2000:]
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert banner.startswith(b"podlife ") and b"\x1b[" not in banner  # stdout: the banner alone, plain
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            _drain_until_exit(proc, primary, timeout=30)  # its stop logs go to the pty: keep reading them
        os.close(primary)
        if proc.stdout is not None:
            proc.stdout.close()


def _drain_until_exit(proc: subprocess.Popen, fd: int, timeout: float) -> None:
    """Read the pty while ``proc`` exits (a full pty would block its writes), then kill it if it did not."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                os.read(fd, 65536)
            except OSError:
                pass
    if proc.poll() is None:
        proc.kill()
        proc.wait()
