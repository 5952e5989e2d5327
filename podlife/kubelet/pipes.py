"""Reading the read end of a pipe on the event loop, with exactly one owner of its fd.

Why not ``loop.connect_read_pipe``: under uvloop (the agent's loop, see
:mod:`podlife.cli`) it hands the file object's descriptor number to libuv, which
closes that number when the transport goes, and the file object closes the same
number again (MagicStack/uvloop#763). Between the two closes another thread (the
kubelet prepares root filesystems and volumes in worker threads) can be given that
number by ``open``, and then has its file closed under it: ``EBADF`` while writing
``/etc/hostname``, and a container that never starts.

So :class:`PipeReader` owns the descriptor itself: the loop only watches it
(``add_reader``), each readiness reads what is there with ``os.read`` into an
:class:`asyncio.StreamReader`, end of file (or :meth:`PipeReader.close`) stops
watching and closes the descriptor, once. Works the same on asyncio's loop.

Nothing applies back-pressure: every user reads its stream until the end
(container logs, runc's output, conmon's one-line answer).
"""

from __future__ import annotations

import asyncio
import errno
import os

__all__ = ["PipeReader", "read_to_end"]

#: Bytes read per readiness, and the StreamReader's line limit.
READ_BYTES = 64 * 1024


class PipeReader:
    """A :class:`asyncio.StreamReader` fed from ``fd``, which this object now owns."""

    def __init__(self, fd: int, *, limit: int = READ_BYTES) -> None:
        self.loop = asyncio.get_running_loop()
        self.reader = asyncio.StreamReader(limit=limit, loop=self.loop)
        self._fd: int | None = fd
        os.set_blocking(fd, False)
        self.loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        if self._fd is None:
            return
        try:
            data = os.read(self._fd, READ_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            if exc.errno != errno.EIO:  # EIO: a pty whose other side has gone, which ends it as EOF ends a pipe
                self.reader.set_exception(exc)
            data = b""
        if data:
            self.reader.feed_data(data)
            return
        self.close()

    def close(self) -> None:
        """Stop reading, end the stream and close the descriptor (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        self.loop.remove_reader(fd)
        os.close(fd)
        self.reader.feed_eof()


async def read_to_end(fd: int) -> bytes:
    """Everything written to the pipe ``fd`` until its end; ``fd`` is closed after (also on cancellation)."""
    pipe = PipeReader(fd)
    try:
        return await pipe.reader.read()
    finally:
        pipe.close()
