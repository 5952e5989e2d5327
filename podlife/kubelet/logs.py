"""Container log files: writing them in CRI format and reading them for ``pods/log``.

Design
------
A container's stdout and stderr go into one file per (container, restart), in the
format the Kubernetes Container Runtime Interface defines for runtimes such as
containerd and CRI-O. Each record is one line::

    2024-05-01T10:00:00.123456789Z stdout F hello world
    <RFC3339Nano timestamp>   <stream> <tag> <content>

The tag is ``F`` when the record ends a line and ``P`` when the line goes on in
the next record of the same stream. Lines longer than :data:`MAX_LOG_LINE_BYTES`
become several ``P`` records and a last ``F``. Output left without a newline when
the stream closes is written as a ``P`` record, the way containerd does, so a
reader shows it without adding a newline.

Why this format: each record has its own timestamp, so ``timestamps``,
``sinceTime`` and ``sinceSeconds`` can be answered from the file alone, and both
streams share one file in the order they were written. Tools that read the
kubelet's ``/var/log/pods`` layout can read these files as they are.

The writing side is :class:`CRILogEncoder`: given the bytes of one read from a
pipe, it returns the records to append. It keeps no file handle, so the
runtime decides how and when to write.

The reading side is :func:`open_log` (or its generator form :func:`read_log`).
``open_log`` opens the file at once, so a missing file is an error before any
output. An API handler can answer it with a status code and only then start
streaming. It applies the ``PodLogOptions`` the way the kubelet does:

* ``P`` records are joined with the rest of their line (per stream). A line's
  timestamp is the timestamp of its first record. With ``timestamps`` the line
  is written as ``<timestamp> <content>``, with the timestamp always in UTC with
  nine fraction digits (a fixed width, as the kubelet writes it).
* ``tailLines`` keeps the last N lines in the file. Then ``since`` (the later of
  ``sinceTime`` and now minus ``sinceSeconds``) drops the older ones, so tail=10
  with since may give fewer than 10 lines. Then ``limitBytes`` stops the output
  after N bytes, even in the middle of a line. The limit counts the timestamp
  prefixes as well.
* ``follow`` keeps reading as the file grows. It stops once ``is_running()`` says
  the container is gone and everything written by then has been read. With
  ``tailLines`` the tail is taken from the file as it was when it was opened,
  and everything after that is followed. The file is checked for growth by
  polling. The interval starts small after new data and backs off to
  :data:`FOLLOW_MAX_POLL_SECONDS` when the file is idle. This costs a few reads
  at end of file a second per follower and needs no inotify.
* ``tailLines`` does not read the whole file: it reads back from the end in
  blocks until it has found enough lines (see :func:`_tail_start_offset`).
* ``previous`` is not handled here. The caller picks the file (the restart count
  before the current one) and passes its path.

File reads are ordinary blocking reads of at most :data:`READ_BLOCK_BYTES`. For
local files they take microseconds. The generator yields to the event loop
after every block, so a large log cannot hold the loop up.
"""

from __future__ import annotations

import asyncio
import calendar
import os
import re
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, NamedTuple

__all__ = [
    "MAX_LOG_LINE_BYTES",
    "CRILogEncoder",
    "CRIRecord",
    "LogOptions",
    "LogStream",
    "datetime_to_ns",
    "format_timestamp",
    "open_log",
    "parse_cri_record",
    "parse_timestamp",
    "read_log",
]

#: Longest content of one record (containerd's default ``max_container_log_line_size``).
MAX_LOG_LINE_BYTES = 16 * 1024
#: Size of the blocks read from log files, forwards and backwards.
READ_BLOCK_BYTES = 64 * 1024
#: Poll interval bounds while following a log.
FOLLOW_MIN_POLL_SECONDS = 0.01
FOLLOW_MAX_POLL_SECONDS = 0.2
#: When tailing, how far before the N-th last line to look for the start of a
#: line whose first part (a ``P`` record) came before records of the other stream.
TAIL_PARTIAL_LOOKBACK_BYTES = 1024 * 1024

STDOUT = b"stdout"
STDERR = b"stderr"
TAG_FULL = b"F"
TAG_PARTIAL = b"P"
_NS = 1_000_000_000


# --------------------------------------------------------------------------- timestamps


def format_timestamp(ns: int) -> bytes:
    """Format nanoseconds since the epoch as fixed-width RFC3339Nano UTC (``...123456789Z``)."""
    seconds, frac = divmod(ns, _NS)
    return b"%s.%09dZ" % (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)).encode(), frac)


_TS_RE = re.compile(
    rb"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)


def parse_timestamp(raw: bytes) -> int | None:
    """Parse an RFC3339 / RFC3339Nano timestamp into nanoseconds since the epoch.

    Accepts any number of fraction digits (0 to 9) and a ``Z`` or ``±hh:mm`` offset.
    Returns ``None`` if ``raw`` is not such a timestamp.
    """
    m = _TS_RE.fullmatch(raw)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    try:
        seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    except (ValueError, OverflowError):
        return None
    frac = m.group(7) or b""
    nanos = int(frac.ljust(9, b"0")) if frac else 0
    if m.group(9):
        offset = (int(m.group(10)) * 60 + int(m.group(11))) * 60
        seconds -= offset if m.group(9) == b"+" else -offset
    return seconds * _NS + nanos


def datetime_to_ns(dt: datetime) -> int:
    """Nanoseconds since the epoch of ``dt``; a naive datetime counts as UTC."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * _NS + delta.microseconds * 1000


def _is_canonical(ts: bytes) -> bool:
    """Fixed-width UTC RFC3339Nano, as this runtime writes it (these sort as text)."""
    return len(ts) == 30 and ts[29:] == b"Z" and ts[19:20] == b"."


def _canonical_timestamp(raw: bytes) -> bytes | None:
    """``raw`` as fixed-width UTC RFC3339Nano, reusing it when it already is."""
    if _is_canonical(raw):
        return raw
    ns = parse_timestamp(raw)
    return None if ns is None else format_timestamp(ns)


# --------------------------------------------------------------------------- writing


class CRILogEncoder:
    """Turn the raw bytes of one output stream into CRI log records.

    Feed it every chunk read from the pipe with :meth:`feed` and call
    :meth:`finish` at EOF. Both return the encoded records as one ``bytes``, ready
    to append to the log file in a single write. A ``\\r\\n`` line end is written
    as a line end, as containerd does.
    """

    def __init__(self, stream: str, max_line: int = MAX_LOG_LINE_BYTES) -> None:
        if stream not in ("stdout", "stderr"):
            raise ValueError(f"stream must be 'stdout' or 'stderr', not {stream!r}")
        if max_line < 1:
            raise ValueError("max_line must be positive")
        self._stream = stream.encode()
        self._max = max_line
        self._pending = bytearray()

    def feed(self, data: bytes, now_ns: int | None = None) -> bytes:
        """Encode the complete lines (and over-long pieces) that ``data`` finishes."""
        if not data:
            return b""
        ts = format_timestamp(time.time_ns() if now_ns is None else now_ns)
        out: list[bytes] = []
        buf = self._pending
        buf += data
        start = 0
        while (nl := buf.find(b"\n", start)) >= 0:
            end = nl - 1 if nl > start and buf[nl - 1] == 0x0D else nl
            self._emit_line(out, ts, bytes(buf[start:end]), TAG_FULL)
            start = nl + 1
        while len(buf) - start > self._max:
            cut = start + self._max
            if buf[cut - 1] == 0x0D and cut - 1 > start:
                cut -= 1  # keep back a '\r' that may be the first half of "\r\n"
            self._emit_record(out, ts, bytes(buf[start:cut]), TAG_PARTIAL)
            start = cut
        del buf[:start]
        return b"".join(out)

    def finish(self, now_ns: int | None = None) -> bytes:
        """Encode what is left at EOF: a line without its newline, as ``P`` records."""
        if not self._pending:
            return b""
        ts = format_timestamp(time.time_ns() if now_ns is None else now_ns)
        out: list[bytes] = []
        rest = bytes(self._pending)
        self._pending.clear()
        for i in range(0, len(rest), self._max):
            self._emit_record(out, ts, rest[i : i + self._max], TAG_PARTIAL)
        return b"".join(out)

    def _emit_line(self, out: list[bytes], ts: bytes, line: bytes, tag: bytes) -> None:
        while len(line) > self._max:
            self._emit_record(out, ts, line[: self._max], TAG_PARTIAL)
            line = line[self._max :]
        self._emit_record(out, ts, line, tag)

    def _emit_record(self, out: list[bytes], ts: bytes, content: bytes, tag: bytes) -> None:
        out.append(b"%s %s %s %s\n" % (ts, self._stream, tag, content))


# --------------------------------------------------------------------------- parsing


class CRIRecord(NamedTuple):
    """One parsed record (one line of the file)."""

    timestamp: bytes  # as written in the file
    stream: bytes  # b"stdout" or b"stderr"
    partial: bool  # tag P
    content: bytes  # without the record's trailing newline


def parse_cri_record(line: bytes) -> CRIRecord | None:
    """Parse one record; ``line`` may end with its newline. Returns None when malformed."""
    if line.endswith(b"\n"):
        line = line[:-1]
    parts = line.split(b" ", 3)
    if len(parts) < 3:
        return None
    ts, stream, tags = parts[0], parts[1], parts[2]
    if stream not in (STDOUT, STDERR) or not ts:
        return None
    content = parts[3] if len(parts) == 4 else b""  # "ts stream F" alone: an empty line
    partial = tags == TAG_PARTIAL or tags.startswith(b"P:")
    return CRIRecord(ts, stream, partial, content)


# --------------------------------------------------------------------------- reading


@dataclass
class LogOptions:
    """The ``PodLogOptions`` that :func:`read_log` honours (``container`` is the caller's).

    ``tail_lines`` or ``limit_bytes`` below zero mean "no limit", as in the kubelet.
    ``previous`` is only carried: the caller picks which file to read.
    """

    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail_lines: int | None = None
    since_seconds: int | None = None
    since_time: datetime | None = None
    limit_bytes: int | None = None

    def since_ns(self, now: datetime | None = None) -> int | None:
        """The later of ``since_time`` and now minus ``since_seconds``, in epoch nanoseconds."""
        candidates: list[int] = []
        if self.since_seconds is not None:
            now_ns = time.time_ns() if now is None else datetime_to_ns(now)
            candidates.append(now_ns - self.since_seconds * _NS)
        if self.since_time is not None:
            candidates.append(datetime_to_ns(self.since_time))
        return max(candidates) if candidates else None


# An assembled line: (raw timestamp of its first record, content with its "\n"
# unless the line was never finished). A plain tuple: there are millions of them.
_Line = tuple[bytes, bytes]


class _LineAssembler:
    """Join each stream's ``P`` records with the record that ends the line."""

    def __init__(self) -> None:
        self.open: dict[bytes, tuple[bytes, list[bytes]]] = {}

    def add(self, timestamp: bytes, stream: bytes, partial: bool, content: bytes) -> _Line | None:
        pending = self.open.get(stream)
        if partial:
            if pending is None:
                self.open[stream] = (timestamp, [content])
            else:
                pending[1].append(content)
            return None
        if pending is None:
            return (timestamp, content + b"\n")
        del self.open[stream]
        return (pending[0], b"".join(pending[1]) + content + b"\n")

    def flush(self) -> list[_Line]:
        """Lines never finished (the stream ended mid-line), oldest first."""
        lines = [(ts, b"".join(parts)) for ts, parts in self.open.values()]
        self.open.clear()
        lines.sort(key=lambda line: parse_timestamp(line[0]) or 0)
        return lines


def _split_records(data: bytes) -> tuple[list[bytes], bytes]:
    """Split file bytes into records (without their newline) and the bytes after the last one.

    Records are split on ``\n`` only: a lone ``\r`` is part of the content.
    """
    parts = data.split(b"\n")
    rest = parts.pop()
    return parts, rest


class _RecordReader:
    """Read complete records forwards from an open file, holding back a torn last one."""

    def __init__(self, f: BinaryIO, offset: int) -> None:
        self._f = f
        self._pos = offset
        self._rest = b""

    def read_block(self, until: int | None = None) -> list[bytes] | None:
        """The complete records of the next block (not reading past ``until``); None at the end."""
        size = READ_BLOCK_BYTES if until is None else min(READ_BLOCK_BYTES, until - self._pos)
        if size <= 0:
            return None
        self._f.seek(self._pos)
        data = self._f.read(size)
        if not data:
            return None
        self._pos += len(data)
        records, self._rest = _split_records(self._rest + data)
        return records

    def take_rest(self) -> list[bytes]:
        """The bytes after the last newline (a record still being written), as a record list."""
        rest, self._rest = self._rest, b""
        return [rest] if rest else []


class _Renderer:
    """Apply ``since``, ``timestamps`` and ``limitBytes`` to assembled lines."""

    def __init__(self, opts: LogOptions, since_ns: int | None) -> None:
        self._since = since_ns
        self._since_text = None if since_ns is None else format_timestamp(since_ns)
        self._timestamps = opts.timestamps
        limit = opts.limit_bytes
        self.remaining: int | None = None if limit is None or limit < 0 else limit

    @property
    def exhausted(self) -> bool:
        return self.remaining is not None and self.remaining <= 0

    def render(self, lines: list[_Line]) -> bytes:
        if self._since is None and not self._timestamps and self.remaining is None:
            return b"".join([content for _, content in lines])
        out: list[bytes] = []
        for ts, content in lines:
            if self.exhausted:
                break
            if self._since is not None and self._is_before_since(ts):
                continue
            text = content
            if self._timestamps:
                text = (_canonical_timestamp(ts) or ts) + b" " + text
            if self.remaining is not None:
                text = text[: self.remaining]
                self.remaining -= len(text)
            out.append(text)
        return b"".join(out)

    def _is_before_since(self, ts: bytes) -> bool:
        if self._since_text is not None and _is_canonical(ts):
            return ts < self._since_text
        ns = parse_timestamp(ts)
        return ns is not None and self._since is not None and ns < self._since


def _assemble(assembler: _LineAssembler, records: list[bytes]) -> list[_Line]:
    """Parse records into finished lines; malformed records are skipped, as the kubelet does."""
    lines: list[_Line] = []
    append = lines.append
    for raw in records:
        parts = raw.split(b" ", 3)
        if len(parts) < 3 or not parts[0] or (parts[1] != STDOUT and parts[1] != STDERR):
            continue
        content = parts[3] if len(parts) == 4 else b""
        tag = parts[2]
        partial = tag == TAG_PARTIAL or tag.startswith(b"P:")
        if not partial and not assembler.open:
            append((parts[0], content + b"\n"))  # the common case: a whole line in one record
        elif (line := assembler.add(parts[0], parts[1], partial, content)) is not None:
            append(line)
    return lines


class LogStream:
    """An open container log being read: an async iterator of output chunks.

    Made by :func:`open_log`, which opens the file and fixes the ``tailLines``
    starting point at once. Errors such as a missing file are raised there,
    before any output, and the tail is taken as of the request. Close it with
    :meth:`aclose` or use it as an ``async with`` context manager.
    """

    def __init__(self, path: Path, opts: LogOptions, is_running: Callable[[], bool] | None) -> None:
        self._f: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed by aclose()
        try:
            tail = opts.tail_lines if opts.tail_lines is not None and opts.tail_lines >= 0 else None
            start = 0 if tail is None else _tail_start_offset(self._f, tail)
            end = self._f.seek(0, os.SEEK_END)  # the tail is taken from what is there now
        except BaseException:
            self._f.close()
            raise
        renderer = _Renderer(opts, opts.since_ns())  # "since" counts from the request too
        self._gen = _generate(_RecordReader(self._f, start), renderer, opts, tail, end, is_running)

    def __aiter__(self) -> LogStream:
        return self

    async def __anext__(self) -> bytes:
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        """Stop reading and close the file."""
        try:
            await self._gen.aclose()
        finally:
            self._f.close()

    async def __aenter__(self) -> LogStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def open_log(path: Path, opts: LogOptions, is_running: Callable[[], bool] | None = None) -> LogStream:
    """Open a CRI log file for reading with ``opts``; see :func:`read_log`.

    Raises ``FileNotFoundError`` (or another ``OSError``) at once if the file
    cannot be opened.
    """
    return LogStream(path, opts, is_running)


async def read_log(
    path: Path,
    opts: LogOptions,
    is_running: Callable[[], bool] | None = None,
) -> AsyncGenerator[bytes, None]:
    """Yield the user-visible log of one CRI log file, as ``GET pods/{name}/log`` shows it.

    ``is_running`` is only used with ``follow``: following ends once it returns
    False and the file has been read to its end. Without it, following goes on
    until the consumer stops iterating (``aclose()`` or cancellation).

    The file is opened on the first iteration. An API handler that must report
    a missing file before it starts its response should use :func:`open_log`.
    """
    async with open_log(path, opts, is_running) as stream:
        async for chunk in stream:
            yield chunk


async def _generate(
    reader: _RecordReader,
    renderer: _Renderer,
    opts: LogOptions,
    tail: int | None,
    tail_end: int,
    is_running: Callable[[], bool] | None,
) -> AsyncGenerator[bytes, None]:
    """The body of a :class:`LogStream`: the initial read, then following if asked."""
    if renderer.exhausted:
        return
    assembler = _LineAssembler()
    if tail is not None:
        # Following: the tail is of the file as it was when opened, and what came
        # after is followed. Not following: read to the end, then take the tail.
        until = tail_end if opts.follow else None
        lines = await _read_tail_window(reader, assembler, tail, until, finish=not opts.follow)
        if chunk := renderer.render(lines):
            yield chunk
    else:
        async for chunk in _read_to_end(reader, assembler, renderer):
            yield chunk
        if not opts.follow and (chunk := renderer.render(_finish(reader, assembler))):
            yield chunk
    if opts.follow:
        async for chunk in _follow(reader, assembler, renderer, is_running):
            yield chunk


def _finish(reader: _RecordReader, assembler: _LineAssembler) -> list[_Line]:
    """The lines left at the end: a torn last record, then lines never finished."""
    return _assemble(assembler, reader.take_rest()) + assembler.flush()


async def _read_to_end(
    reader: _RecordReader, assembler: _LineAssembler, renderer: _Renderer
) -> AsyncGenerator[bytes, None]:
    """Yield everything from the reader's position to the current end of the file."""
    while not renderer.exhausted and (records := reader.read_block()) is not None:
        if chunk := renderer.render(_assemble(assembler, records)):
            yield chunk
        await asyncio.sleep(0)


async def _read_tail_window(
    reader: _RecordReader, assembler: _LineAssembler, tail: int, until: int | None, *, finish: bool
) -> list[_Line]:
    """The last ``tail`` lines from the reader's position to ``until`` (or the end of the file).

    With ``finish`` (not following) lines cut off by the end of the file count
    too; when following they are left in the assembler to be completed later.
    """
    window: deque[_Line] = deque(maxlen=tail)
    while (records := reader.read_block(until)) is not None:
        window.extend(_assemble(assembler, records))
        await asyncio.sleep(0)
    if finish:
        window.extend(_finish(reader, assembler))
    return list(window)


async def _follow(
    reader: _RecordReader,
    assembler: _LineAssembler,
    renderer: _Renderer,
    is_running: Callable[[], bool] | None,
) -> AsyncGenerator[bytes, None]:
    """Yield new lines as the file grows; drain and stop once the container has exited."""
    delay = FOLLOW_MIN_POLL_SECONDS
    while not renderer.exhausted:
        # Ask first, read second: whatever the container wrote before it stopped
        # is in the file by the time we read to the end.
        running = True if is_running is None else is_running()
        grew = False
        async for chunk in _read_to_end(reader, assembler, renderer):
            grew = True
            yield chunk
        if not running:
            break
        if grew:
            delay = FOLLOW_MIN_POLL_SECONDS
        else:
            await asyncio.sleep(delay)
            delay = min(delay * 2, FOLLOW_MAX_POLL_SECONDS)
    if chunk := renderer.render(_finish(reader, assembler)):
        yield chunk


# --------------------------------------------------------------------------- tail


def _iter_records_backward(f: BinaryIO, end: int) -> Iterator[tuple[int, bytes]]:
    """Yield ``(offset, record)`` for the records before ``end``, last first.

    A record is yielded without its newline; it takes ``len(record) + 1`` bytes
    in the file, except a torn last record (no newline before ``end``).
    """
    pos = end
    carry = b""  # the end of a record that begins in an earlier block
    while pos > 0:
        size = min(READ_BLOCK_BYTES, pos)
        pos -= size
        f.seek(pos)
        block = f.read(size) + carry
        if pos > 0:
            first_nl = block.find(b"\n")
            if first_nl < 0:  # one record spans the whole block
                carry = block
                continue
            carry, block = block[: first_nl + 1], block[first_nl + 1 :]
        else:
            carry = b""
        cursor = pos + len(carry) + len(block)
        records, torn = _split_records(block)
        if torn:
            cursor -= len(torn)
            yield cursor, torn
        for rec in reversed(records):
            cursor -= len(rec) + 1
            yield cursor, rec


def _tail_start_offset(f: BinaryIO, tail: int) -> int:
    """An offset from which the file holds (at least) its last ``tail`` lines, complete.

    Reads backwards counting line ends: an ``F`` record, or the last ``P`` record
    of a stream (a line still being written). Having found ``tail`` of them, it
    keeps going until the line of every stream seen so far has its beginning,
    that is, until it meets that stream's previous ``F`` record, so that a ``P``
    record written before a record of the other stream is still included. This
    extra look-back is bounded by :data:`TAIL_PARTIAL_LOOKBACK_BYTES`. The
    forward pass then keeps only the last ``tail`` lines, so starting a little
    early only costs a few lines of reading.
    """
    end = f.seek(0, os.SEEK_END)
    if tail == 0:
        return end
    ends = 0
    open_streams: set[bytes] = set()  # streams whose newest counted line has no beginning yet
    seen: set[bytes] = set()
    enough_at: int | None = None
    for offset, raw in _iter_records_backward(f, end):
        rec = parse_cri_record(raw)
        if rec is None:
            continue
        if enough_at is not None and enough_at - offset > TAIL_PARTIAL_LOOKBACK_BYTES:
            return min(offset + len(raw) + 1, end)
        first_of_stream = rec.stream not in seen
        seen.add(rec.stream)
        if rec.partial and not first_of_stream:
            continue  # the middle or start of a line already counted (or too old)
        # This record ends a line, so the newer line of its stream begins after it.
        open_streams.discard(rec.stream)
        if ends < tail:
            ends += 1
            open_streams.add(rec.stream)
            if ends == tail:
                enough_at = offset
        elif not open_streams:
            return min(offset + len(raw) + 1, end)
    return 0
