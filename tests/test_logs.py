"""Tests for podlife.kubelet.logs: the CRI log encoder and ``read_log``.

Most tests write CRI files with chosen timestamps, so the ``since`` and
``timestamps`` results are exact. Follow tests append to a file while a
reader is following it. They wait for the reader's next chunk (with a
timeout) and never sleep for a fixed time.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podlife.kubelet.logs import (
    READ_BLOCK_BYTES,
    CRILogEncoder,
    LogOptions,
    datetime_to_ns,
    format_timestamp,
    open_log,
    parse_cri_record,
    parse_timestamp,
    read_log,
)

T0 = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
T0_NS = datetime_to_ns(T0)
SECOND = 1_000_000_000


def ts(seconds: float) -> str:
    """The canonical timestamp ``seconds`` after T0."""
    return format_timestamp(T0_NS + round(seconds * SECOND)).decode()


def write_records(path: Path, records: list[tuple[str, str, str, str]], mode: str = "w") -> None:
    """Write (timestamp, stream, tag, content) records as CRI lines."""
    with open(path, mode, encoding="utf-8") as f:
        for stamp, stream, tag, content in records:
            f.write(f"{stamp} {stream} {tag} {content}\n")


async def collect(path: Path, **options: object) -> bytes:
    return b"".join([chunk async for chunk in read_log(path, LogOptions(**options))])  # type: ignore[arg-type]


@pytest.fixture
def simple_log(tmp_path: Path) -> Path:
    path = tmp_path / "0.log"
    write_records(
        path,
        [
            (ts(0), "stdout", "F", "line 1"),
            (ts(1), "stderr", "F", "line 2 (stderr)"),
            (ts(2), "stdout", "P", "line 3 "),
            (ts(2.5), "stdout", "F", "continued"),
            (ts(3), "stdout", "F", ""),
            (ts(4), "stdout", "F", "line 5"),
        ],
    )
    return path


# --------------------------------------------------------------------------- timestamps


def test_format_timestamp_is_fixed_width_utc() -> None:
    assert format_timestamp(T0_NS) == b"2024-05-01T10:00:00.000000000Z"
    assert format_timestamp(T0_NS + 1234) == b"2024-05-01T10:00:00.000001234Z"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"2024-05-01T10:00:00.000000000Z", T0_NS),
        (b"2024-05-01T10:00:00Z", T0_NS),
        (b"2024-05-01T10:00:00.5Z", T0_NS + SECOND // 2),
        (b"2024-05-01T12:00:00.000000007+02:00", T0_NS + 7),
        (b"2024-05-01T09:30:00-00:30", T0_NS),
    ],
)
def test_parse_timestamp(raw: bytes, expected: int) -> None:
    assert parse_timestamp(raw) == expected


@pytest.mark.parametrize(
    "raw", [b"", b"yesterday", b"2024-05-01 10:00:00Z", b"2024-13-01T10:00:00Z", b"2024-05-01T10:00:00"]
)
def test_parse_timestamp_rejects(raw: bytes) -> None:
    assert parse_timestamp(raw) is None


def test_naive_datetimes_count_as_utc() -> None:
    assert datetime_to_ns(T0.replace(tzinfo=None)) == T0_NS


# --------------------------------------------------------------------------- encoder


def test_encoder_writes_full_and_partial_records() -> None:
    enc = CRILogEncoder("stdout", max_line=8)
    out = enc.feed(b"hello\nwindows\r\nthis line is long\nunfin", T0_NS)
    out += enc.feed(b"ished\nlast", T0_NS + 5)
    out += enc.finish(T0_NS + 9)
    stamp0, stamp5, stamp9 = ts(0), format_timestamp(T0_NS + 5).decode(), format_timestamp(T0_NS + 9).decode()
    assert out.decode().splitlines() == [
        f"{stamp0} stdout F hello",
        f"{stamp0} stdout F windows",
        f"{stamp0} stdout P this lin",
        f"{stamp0} stdout P e is lon",
        f"{stamp0} stdout F g",
        f"{stamp5} stdout P unfinish",
        f"{stamp5} stdout F ed",
        f"{stamp9} stdout P last",
    ]


def test_encoder_emits_an_overlong_unfinished_line_in_pieces() -> None:
    enc = CRILogEncoder("stderr", max_line=4)
    assert enc.feed(b"abcdefghij", T0_NS).decode().splitlines() == [f"{ts(0)} stderr P abcd", f"{ts(0)} stderr P efgh"]
    assert enc.feed(b"\n", T0_NS).decode() == f"{ts(0)} stderr F ij\n"
    assert enc.finish() == b""


def test_encoder_rejects_unknown_streams() -> None:
    with pytest.raises(ValueError):
        CRILogEncoder("stdin")


def test_parse_cri_record() -> None:
    rec = parse_cri_record(b"2024-05-01T10:00:00Z stderr P a b  c\n")
    assert rec is not None
    assert (rec.timestamp, rec.stream, rec.partial, rec.content) == (
        b"2024-05-01T10:00:00Z",
        b"stderr",
        True,
        b"a b  c",
    )
    empty = parse_cri_record(b"2024-05-01T10:00:00Z stdout F")
    assert empty is not None and empty.content == b"" and not empty.partial
    assert parse_cri_record(b"garbage") is None
    assert parse_cri_record(b"2024-05-01T10:00:00Z stdin F x") is None


@settings(max_examples=200, deadline=None)
@given(
    chunks=st.lists(
        st.one_of(
            st.binary(max_size=30), st.lists(st.sampled_from([b"a", b"b c", b"\r", b"\n"]), max_size=30).map(b"".join)
        ),
        max_size=20,
    ),
    max_line=st.integers(min_value=2, max_value=12),
)
def test_encoded_output_reads_back_unchanged(
    tmp_path_factory: pytest.TempPathFactory, chunks: list[bytes], max_line: int
) -> None:
    """Whatever a process writes, reading the log gives it back (with \\r\\n read as \\n)."""
    enc = CRILogEncoder("stdout", max_line=max_line)
    data = b"".join(enc.feed(chunk, T0_NS + i) for i, chunk in enumerate(chunks)) + enc.finish(T0_NS + len(chunks))
    path = tmp_path_factory.mktemp("prop") / "0.log"
    path.write_bytes(data)
    assert asyncio.run(collect(path)) == b"".join(chunks).replace(b"\r\n", b"\n")


# --------------------------------------------------------------------------- reading


async def test_read_whole_log_joins_partial_lines(simple_log: Path) -> None:
    assert await collect(simple_log) == b"line 1\nline 2 (stderr)\nline 3 continued\n\nline 5\n"


async def test_timestamps_prefix_each_line_once(simple_log: Path) -> None:
    lines = (await collect(simple_log, timestamps=True)).decode().splitlines()
    assert lines == [
        f"{ts(0)} line 1",
        f"{ts(1)} line 2 (stderr)",
        f"{ts(2)} line 3 continued",  # the timestamp of the line's first record
        f"{ts(3)} ",
        f"{ts(4)} line 5",
    ]


async def test_timestamps_are_written_in_utc_with_nine_digits(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    write_records(
        path, [("2024-05-01T12:00:00.5+02:00", "stdout", "F", "x"), ("2024-05-01T10:00:01Z", "stdout", "F", "y")]
    )
    assert await collect(path, timestamps=True) == (
        b"2024-05-01T10:00:00.500000000Z x\n2024-05-01T10:00:01.000000000Z y\n"
    )


async def test_unfinished_last_line_has_no_newline(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    write_records(path, [(ts(0), "stdout", "F", "done"), (ts(1), "stdout", "P", "half")])
    assert await collect(path) == b"done\nhalf"
    assert await collect(path, tail_lines=1) == b"half"


async def test_partial_lines_are_joined_per_stream(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    write_records(
        path,
        [
            (ts(0), "stdout", "P", "out-"),
            (ts(1), "stderr", "P", "err-"),
            (ts(2), "stderr", "F", "done"),
            (ts(3), "stdout", "F", "done"),
        ],
    )
    assert await collect(path) == b"err-done\nout-done\n"
    assert await collect(path, timestamps=True) == f"{ts(1)} err-done\n{ts(0)} out-done\n".encode()


async def test_malformed_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_text(f"{ts(0)} stdout F ok\nnot a cri line\n{ts(1)} stdout F fine\n")
    assert await collect(path) == b"ok\nfine\n"


async def test_a_torn_last_record_is_still_shown(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_text(f"{ts(0)} stdout F ok\n{ts(1)} stdout F being writ")
    assert await collect(path) == b"ok\nbeing writ\n"


async def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await collect(tmp_path / "nope.log")
    with pytest.raises(FileNotFoundError):
        open_log(tmp_path / "nope.log", LogOptions(follow=True))  # at once, before any output


async def test_open_log_is_an_async_context_manager(simple_log: Path) -> None:
    async with open_log(simple_log, LogOptions(tail_lines=1)) as stream:
        simple_log.unlink()  # the file is already open
        assert [chunk async for chunk in stream] == [b"line 5\n"]


async def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.touch()
    assert await collect(path) == b""
    assert await collect(path, tail_lines=3) == b""


# --------------------------------------------------------------------------- tail, since, limit


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        (0, b""),
        (1, b"line 5\n"),
        (2, b"\nline 5\n"),
        (3, b"line 3 continued\n\nline 5\n"),
        (5, b"line 1\nline 2 (stderr)\nline 3 continued\n\nline 5\n"),
        (100, b"line 1\nline 2 (stderr)\nline 3 continued\n\nline 5\n"),
        (-1, b"line 1\nline 2 (stderr)\nline 3 continued\n\nline 5\n"),
    ],
)
async def test_tail_lines(simple_log: Path, tail: int, expected: bytes) -> None:
    assert await collect(simple_log, tail_lines=tail) == expected


async def test_tail_keeps_a_line_whose_start_is_before_other_stream_records(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    write_records(
        path,
        [
            (ts(0), "stdout", "F", "old"),
            (ts(1), "stdout", "P", "start-"),
            (ts(2), "stderr", "F", "e1"),
            (ts(3), "stderr", "F", "e2"),
            (ts(4), "stdout", "F", "end"),
        ],
    )
    assert await collect(path, tail_lines=1) == b"start-end\n"
    assert await collect(path, tail_lines=2) == b"e2\nstart-end\n"
    assert await collect(path, tail_lines=4) == b"old\ne1\ne2\nstart-end\n"


def _random_log(path: Path, seed: int, count: int) -> list[bytes]:
    """Write a log of interleaved streams with many partial lines; return its lines in order."""
    rng = random.Random(seed)
    pending: dict[str, list[str]] = {"stdout": [], "stderr": []}
    first_record: dict[str, int] = {}
    expected: list[bytes] = []
    records = []
    for i in range(count):
        stream = rng.choice(["stdout", "stdout", "stderr"])
        content = "".join(rng.choice("xyz \r") for _ in range(rng.randint(0, 40)))
        tag = "P" if rng.random() < 0.3 else "F"
        records.append((ts(i / 1000), stream, tag, content))
        first_record.setdefault(stream, i)
        pending[stream].append(content)
        if tag == "F":
            expected.append(("".join(pending[stream]) + "\n").encode())
            pending[stream] = []
            del first_record[stream]
    write_records(path, records)
    # Lines left unfinished come last, the one begun first first.
    for stream in sorted(first_record, key=first_record.__getitem__):
        expected.append("".join(pending[stream]).encode())
    return expected


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_tail_on_a_big_file_matches_the_whole_read(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "0.log"
    lines = _random_log(path, seed, 20_000)
    assert path.stat().st_size > 4 * READ_BLOCK_BYTES  # several blocks, read backwards
    assert await collect(path) == b"".join(lines)
    for tail in [1, 2, 3, 10, 1000, 5000, len(lines), len(lines) + 5]:
        assert await collect(path, tail_lines=tail) == b"".join(lines[-tail:]), tail


async def test_since_time(simple_log: Path) -> None:
    assert await collect(simple_log, since_time=T0 + timedelta(seconds=2)) == b"line 3 continued\n\nline 5\n"
    naive = (T0 + timedelta(seconds=3)).replace(tzinfo=None)
    assert await collect(simple_log, since_time=naive) == b"\nline 5\n"
    assert await collect(simple_log, since_time=T0 + timedelta(hours=1)) == b""


async def test_since_seconds_and_the_later_of_both_wins(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    now = datetime.now(UTC)

    def at(delta: float) -> str:
        return format_timestamp(datetime_to_ns(now + timedelta(seconds=delta))).decode()

    write_records(
        path, [(at(-100), "stdout", "F", "old"), (at(-10), "stdout", "F", "recent"), (at(-1), "stdout", "F", "new")]
    )
    assert await collect(path, since_seconds=30) == b"recent\nnew\n"
    assert await collect(path, since_seconds=30, since_time=now - timedelta(seconds=5)) == b"new\n"
    assert await collect(path, since_seconds=5, since_time=now - timedelta(hours=1)) == b"new\n"


async def test_since_with_timestamps_in_other_forms(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    write_records(
        path,
        [
            ("2024-05-01T11:59:59+02:00", "stdout", "F", "before"),  # 09:59:59Z
            ("2024-05-01T10:00:00.5Z", "stdout", "F", "after"),
            ("2024-05-01T12:00:01.000000001+02:00", "stdout", "F", "later"),  # 10:00:01Z
        ],
    )
    assert await collect(path, since_time=T0) == b"after\nlater\n"


async def test_tail_is_applied_before_since(simple_log: Path) -> None:
    # The last 3 lines, then the ones from t=3s on: 2 lines, not 3.
    assert await collect(simple_log, tail_lines=3, since_time=T0 + timedelta(seconds=3)) == b"\nline 5\n"


async def test_limit_bytes_cuts_mid_line(simple_log: Path) -> None:
    assert await collect(simple_log, limit_bytes=10) == b"line 1\nlin"
    assert await collect(simple_log, limit_bytes=1) == b"l"
    assert await collect(simple_log, limit_bytes=10_000) == await collect(simple_log)
    assert await collect(simple_log, limit_bytes=0) == b""


async def test_limit_bytes_counts_timestamps_and_combines_with_tail(simple_log: Path) -> None:
    assert await collect(simple_log, timestamps=True, limit_bytes=33) == f"{ts(0)} li".encode()
    assert await collect(simple_log, tail_lines=2, limit_bytes=4) == b"\nlin"


def test_since_ns_uses_the_later_option() -> None:
    now = T0 + timedelta(minutes=10)
    assert LogOptions().since_ns(now) is None
    assert LogOptions(since_seconds=60).since_ns(now) == datetime_to_ns(now) - 60 * SECOND
    assert LogOptions(since_seconds=60, since_time=T0).since_ns(now) == datetime_to_ns(now) - 60 * SECOND
    assert LogOptions(since_seconds=3600, since_time=T0).since_ns(now) == T0_NS


# --------------------------------------------------------------------------- follow


class Follower:
    """A running ``read_log(follow=True)`` whose container is 'running' until told otherwise."""

    def __init__(self, path: Path, **options: object) -> None:
        self.running = True
        # open_log, unlike read_log, opens the file and takes the tail now.
        opts = LogOptions(follow=True, **options)  # type: ignore[arg-type]
        self.stream = open_log(path, opts, is_running=lambda: self.running)

    async def next(self) -> bytes:
        return await asyncio.wait_for(anext(self.stream), 10)

    async def rest(self) -> bytes:
        async def drain() -> bytes:
            return b"".join([chunk async for chunk in self.stream])

        return await asyncio.wait_for(drain(), 10)

    async def close(self) -> None:
        await self.stream.aclose()


async def test_follow_yields_new_lines_until_the_container_stops(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    write_records(path, [(ts(0), "stdout", "F", "first")])
    follower = Follower(path, timestamps=True)
    try:
        assert await follower.next() == f"{ts(0)} first\n".encode()
        write_records(path, [(ts(1), "stdout", "P", "sec"), (ts(1), "stdout", "F", "ond")], mode="a")
        assert await follower.next() == f"{ts(1)} second\n".encode()
        write_records(path, [(ts(2), "stderr", "P", "unfinished")], mode="a")
        write_records(path, [(ts(3), "stdout", "F", "third")], mode="a")
        assert await follower.next() == f"{ts(3)} third\n".encode()  # the partial line waits
        follower.running = False
        write_records(path, [(ts(4), "stdout", "F", "last words")], mode="a")
        assert await follower.rest() == f"{ts(4)} last words\n{ts(2)} unfinished".encode()
    finally:
        await follower.close()


async def test_follow_with_tail_zero_shows_only_new_lines(simple_log: Path) -> None:
    follower = Follower(simple_log, tail_lines=0)
    try:
        write_records(simple_log, [(ts(9), "stdout", "F", "new")], mode="a")
        assert await follower.next() == b"new\n"
        follower.running = False
        assert await follower.rest() == b""
    finally:
        await follower.close()


async def test_follow_with_tail_shows_the_last_lines_then_new_ones(simple_log: Path) -> None:
    follower = Follower(simple_log, tail_lines=1)
    try:
        assert await follower.next() == b"line 5\n"
        write_records(simple_log, [(ts(9), "stdout", "F", "new")], mode="a")
        assert await follower.next() == b"new\n"
        follower.running = False
        assert await follower.rest() == b""
    finally:
        await follower.close()


async def test_follow_stops_at_the_byte_limit(simple_log: Path) -> None:
    follower = Follower(simple_log, tail_lines=1, limit_bytes=10)
    try:
        assert await follower.next() == b"line 5\n"
        write_records(simple_log, [(ts(9), "stdout", "F", "and more")], mode="a")
        assert await follower.rest() == b"and"  # ends although the container still runs
    finally:
        await follower.close()


async def test_follow_of_a_stopped_container_reads_to_the_end(simple_log: Path) -> None:
    follower = Follower(simple_log)
    follower.running = False
    try:
        assert await follower.rest() == await collect(simple_log)
    finally:
        await follower.close()


async def test_follow_without_is_running_goes_on_until_closed(simple_log: Path) -> None:
    stream = open_log(simple_log, LogOptions(follow=True, tail_lines=0))
    try:
        write_records(simple_log, [(ts(9), "stdout", "F", "more")], mode="a")
        assert await asyncio.wait_for(anext(stream), 10) == b"more\n"
        pending = asyncio.ensure_future(anext(stream))
        done, _ = await asyncio.wait({pending}, timeout=0.3)
        assert not done  # still following
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
    finally:
        await stream.aclose()
