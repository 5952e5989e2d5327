"""SPDY/3.1: the framing with real bytes and zlib, sessions, and the kubelet's SPDY exec and port-forward.

The first part round-trips every frame type through our encoder and decoder (two
codecs, as the two ends of a connection have) and pins bytes the wire format fixes.
The second runs two :class:`~podlife.kubelet.spdy.SpdySession` ends over an
in-memory transport, or one session against hand-written frames (a peer that
does no flow control, like Go's spdystream). The third upgrades a real
connection to a real :class:`~podlife.kubelet.server.KubeletServer` (fixture
from ``test_streaming``) and speaks SPDY to its exec and port-forward, as
kubectl 1.30 and older do. Nothing sleeps: tests wait for frames or state.
"""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from podlife.kubelet import spdy, streams
from podlife.kubelet.spdy import (
    DEFAULT_WINDOW,
    HEADER_DICTIONARY,
    DataFrame,
    FrameCodec,
    FrameDecoder,
    GoAway,
    HeadersFrame,
    Ping,
    RstStream,
    Settings,
    SpdyProtocolError,
    SpdySession,
    SpdyStream,
    SynReply,
    SynStream,
    UnknownControl,
    WindowUpdate,
    encode_frame,
)

from .test_streaming import TOKEN, Kubelet, _echo_server, running_kubelet

# --------------------------------------------------------------------------- framing


def test_the_header_dictionary_is_the_spdy3_one() -> None:
    assert len(HEADER_DICTIONARY) == 1423
    assert HEADER_DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert b"\x00\x00\x00\x06origin100101201" in HEADER_DICTIONARY
    assert HEADER_DICTIONARY.endswith(b",utf-,*,enq=0.")


FRAMES = [
    DataFrame(1, b"hello"),
    DataFrame(3, b"", fin=True),
    DataFrame(0x7FFFFFFF, bytes(range(256)) * 10),
    SynStream(1, {"streamtype": "error", "port": "8080", "requestid": "0"}),
    SynStream(5, {"streamtype": "data"}, associated_id=3, priority=7, fin=True, unidirectional=True),
    SynReply(1, {}),
    SynReply(3, {"a": "b"}, fin=True),
    HeadersFrame(1, {"x": "y\x00z"}, fin=True),
    RstStream(7, spdy.CANCEL),
    Settings({spdy.SETTINGS_INITIAL_WINDOW_SIZE: 1 << 20, 4: 100}),
    Ping(0xFFFFFFFF),
    GoAway(9, spdy.GOAWAY_PROTOCOL_ERROR),
    WindowUpdate(0, 12345),
    WindowUpdate(5, 0x7FFFFFFF),
    UnknownControl(10, 0, b"credential"),
]


def test_every_frame_round_trips_through_a_separate_decoder() -> None:
    sender, receiver = FrameCodec(), FrameCodec()
    wire = b"".join(encode_frame(frame, sender) for frame in FRAMES)
    assert FrameDecoder(receiver).feed(wire) == FRAMES


def test_frames_split_at_every_byte_still_decode() -> None:
    sender = FrameCodec()
    wire = b"".join(encode_frame(frame, sender) for frame in FRAMES[:8])
    decoder, got = FrameDecoder(FrameCodec()), []
    for i in range(len(wire)):
        got += decoder.feed(wire[i:i + 1])
    assert got == FRAMES[:8]


def test_fixed_bytes_of_the_wire_format() -> None:
    codec = FrameCodec()
    assert encode_frame(Ping(1), codec) == bytes.fromhex("80030006" "00000004" "00000001")
    assert encode_frame(DataFrame(3, b"ab", fin=True), codec) == bytes.fromhex("00000003" "01000002") + b"ab"
    assert encode_frame(WindowUpdate(1, 65536), codec) == bytes.fromhex("80030009" "00000008" "00000001" "00010000")
    assert encode_frame(RstStream(5, 3), codec) == bytes.fromhex("80030003" "00000008" "00000005" "00000003")
    assert encode_frame(Settings({7: 65536}), codec) == bytes.fromhex("80030004" "0000000c" "00000001"
                                                                      "00000007" "00010000")


def test_header_blocks_use_zlib_with_the_dictionary_and_one_context() -> None:
    codec = FrameCodec()
    first = encode_frame(SynReply(1, {"streamtype": "stdout"}), codec)
    block = first[12:]
    assert block[0] & 0x0F == 8 and block[1] & 0x20  # deflate, with a preset dictionary
    assert struct.unpack(">I", block[2:6])[0] == zlib.adler32(HEADER_DICTIONARY)
    # The same headers again compress to less: the context is shared by the connection's blocks.
    second = encode_frame(SynReply(3, {"streamtype": "stdout"}), codec)
    assert len(second) < len(first)
    inflate = zlib.decompressobj(zdict=HEADER_DICTIONARY)
    raw = inflate.decompress(block)
    assert raw == b"\x00\x00\x00\x01" b"\x00\x00\x00\x0astreamtype" b"\x00\x00\x00\x06stdout"


def test_header_names_are_sent_in_lower_case() -> None:
    sender, receiver = FrameCodec(), FrameCodec()
    frame = FrameDecoder(receiver).feed(encode_frame(SynStream(1, {"StreamType": "data"}), sender))[0]
    assert isinstance(frame, SynStream) and frame.headers == {"streamtype": "data"}


@pytest.mark.parametrize("wire", [
    bytes.fromhex("80020006" "00000004" "00000001"),  # SPDY/2
    bytes.fromhex("80030002" "00000008" "00000001") + b"\x78\x9c\xff\xff",  # a header block that is not zlib
    bytes.fromhex("80030003" "00000002" "0000"),  # truncated RST_STREAM
])
def test_malformed_frames_are_protocol_errors(wire: bytes) -> None:
    with pytest.raises(SpdyProtocolError):
        FrameDecoder(FrameCodec()).feed(wire)


# --------------------------------------------------------------------------- sessions


class MemoryTransport:
    """One end of an in-memory byte pipe."""

    def __init__(self, inbox: asyncio.Queue[bytes], outbox: asyncio.Queue[bytes]) -> None:
        self.inbox, self.outbox, self.closed = inbox, outbox, False

    async def read(self) -> bytes:
        return b"" if self.closed else await self.inbox.get()

    async def write(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionResetError("closed")
        self.outbox.put_nowait(data)

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.outbox.put_nowait(b"")


def transport_pair() -> tuple[MemoryTransport, MemoryTransport]:
    a: asyncio.Queue[bytes] = asyncio.Queue()
    b: asyncio.Queue[bytes] = asyncio.Queue()
    return MemoryTransport(a, b), MemoryTransport(b, a)


class RawPeer:
    """A hand-driven peer: sends frames, collects the frames it gets."""

    def __init__(self, transport: MemoryTransport) -> None:
        self.transport = transport
        self.codec = FrameCodec()
        self.decoder = FrameDecoder(FrameCodec())
        self.pending: list[spdy.Frame] = []

    async def send(self, *frames: spdy.Frame) -> None:
        for frame in frames:
            await self.transport.write(encode_frame(frame, self.codec))

    async def next(self, timeout: float = 10) -> spdy.Frame:
        async with asyncio.timeout(timeout):
            while not self.pending:
                data = await self.transport.read()
                assert data, "the session closed the connection"
                self.pending += self.decoder.feed(data)
        return self.pending.pop(0)


async def _serve(accept: spdy.Acceptor) -> tuple[SpdySession, asyncio.Task[None], MemoryTransport]:
    server_end, client_end = transport_pair()
    server = SpdySession(server_end, accept)
    return server, asyncio.create_task(server.run()), client_end


async def test_streams_are_answered_and_echoed() -> None:
    accepted: list[SpdyStream] = []

    def accept(stream: SpdyStream) -> bool:
        accepted.append(stream)
        asyncio.get_running_loop().create_task(_echo(stream))
        return stream.headers.get("streamtype") == "data"

    async def _echo(stream: SpdyStream) -> None:
        while data := await stream.read():
            await stream.write(data.upper())
        await stream.close()

    server, task, client_end = await _serve(accept)
    client = SpdySession(client_end, client=True)
    reader = asyncio.create_task(client.run())
    stream = await client.open_stream({"streamType": "data"})
    await asyncio.wait_for(stream.replied.wait(), 10)
    await stream.write(b"hello")
    await stream.close()
    assert await asyncio.wait_for(stream.read_all(), 10) == b"HELLO"
    refused = await client.open_stream({"streamType": "bogus"})
    await asyncio.wait_for(refused.replied.wait(), 10)
    assert refused.reset
    assert [s.headers for s in accepted] == [{"streamtype": "data"}, {"streamtype": "bogus"}]
    await client.close()
    await asyncio.wait_for(task, 10)
    assert server.closed
    reader.cancel()


async def test_pings_from_the_peer_are_echoed_and_goaway_refuses_new_streams() -> None:
    server, task, client_end = await _serve(lambda stream: True)
    peer = RawPeer(client_end)
    await peer.send(Ping(1))
    assert await peer.next() == Ping(1)
    await peer.send(SynStream(1, {"a": "b"}))
    assert await peer.next() == SynReply(1, {})
    await peer.send(SynStream(1, {"a": "b"}))  # stream ids must grow
    assert await peer.next() == RstStream(1, spdy.PROTOCOL_ERROR)
    await peer.send(GoAway(0), SynStream(3, {}))
    assert await peer.next() == RstStream(3, spdy.REFUSED_STREAM)
    await client_end.close()
    await asyncio.wait_for(task, 10)


async def _writer_stream(size: int) -> tuple[SpdySession, asyncio.Task[None], RawPeer, list[asyncio.Task[None]]]:
    writers: list[asyncio.Task[None]] = []

    def accept(stream: SpdyStream) -> bool:
        async def write() -> None:
            await stream.write(b"x" * size)
            await stream.close()
        writers.append(asyncio.get_running_loop().create_task(write()))
        return True

    server, task, client_end = await _serve(accept)
    return server, task, RawPeer(client_end), writers


async def _data_until_fin(peer: RawPeer, stream_id: int, limit: int | None = None) -> int:
    received = 0
    while limit is None or received < limit:
        frame = await peer.next()
        if isinstance(frame, DataFrame) and frame.stream_id == stream_id:
            received += len(frame.data)
            if frame.fin:
                break
    return received


async def test_a_peer_without_flow_control_gets_everything_at_once() -> None:
    """Go's spdystream never sends WINDOW_UPDATE: waiting for one would stall every transfer after 64 KiB."""
    server, task, peer, writers = await _writer_stream(1024 * 1024)
    await peer.send(SynStream(1, {}))
    assert await peer.next() == SynReply(1, {})
    assert await _data_until_fin(peer, 1) == 1024 * 1024
    await asyncio.wait_for(writers[0], 10)
    await peer.transport.close()
    await asyncio.wait_for(task, 10)


async def test_a_peer_with_flow_control_is_sent_no_more_than_its_window() -> None:
    server, task, peer, writers = await _writer_stream(3 * DEFAULT_WINDOW)
    await peer.send(Settings({spdy.SETTINGS_INITIAL_WINDOW_SIZE: DEFAULT_WINDOW}), SynStream(1, {}))
    assert await peer.next() == SynReply(1, {})
    assert await _data_until_fin(peer, 1, limit=DEFAULT_WINDOW) == DEFAULT_WINDOW
    stream = server.streams[1]
    assert stream.send_window == 0 and not writers[0].done()  # blocked on the window, not finished
    await peer.send(WindowUpdate(1, 2 * DEFAULT_WINDOW), WindowUpdate(0, 2 * DEFAULT_WINDOW))
    assert await _data_until_fin(peer, 1) == 2 * DEFAULT_WINDOW
    await asyncio.wait_for(writers[0], 10)
    await peer.transport.close()
    await asyncio.wait_for(task, 10)


async def test_reading_reopens_the_peers_windows() -> None:
    got: list[SpdyStream] = []
    server, task, client_end = await _serve(lambda stream: got.append(stream) or True)
    peer = RawPeer(client_end)
    await peer.send(SynStream(1, {}))
    assert await peer.next() == SynReply(1, {})
    await peer.send(DataFrame(1, b"y" * DEFAULT_WINDOW))
    assert len(await got[0].read()) == DEFAULT_WINDOW
    updates = {await peer.next(), await peer.next()}
    assert updates == {WindowUpdate(1, DEFAULT_WINDOW), WindowUpdate(0, DEFAULT_WINDOW)}
    await client_end.close()
    await asyncio.wait_for(task, 10)


async def test_a_reset_ends_the_stream_for_both_directions() -> None:
    got: list[SpdyStream] = []
    server, task, client_end = await _serve(lambda stream: got.append(stream) or True)
    peer = RawPeer(client_end)
    await peer.send(SynStream(1, {}))
    assert await peer.next() == SynReply(1, {})
    await peer.send(RstStream(1, spdy.CANCEL))
    assert await asyncio.wait_for(got[0].read(), 10) == b""
    assert got[0].reset and 1 not in server.streams
    await client_end.close()
    await asyncio.wait_for(task, 10)


# --------------------------------------------------------------------------- the kubelet over SPDY


@pytest.fixture
async def kubelet(tmp_path: Path) -> AsyncIterator[Kubelet]:
    """The kubelet of ``test_streaming`` (a real server, one running container)."""
    async with running_kubelet(tmp_path) as k:
        yield k


class SocketTransport:
    """A TCP connection as a :class:`~podlife.kubelet.spdy.ByteTransport`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def read(self) -> bytes:
        return await self.reader.read(65536)

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def close(self) -> None:
        self.writer.close()


async def spdy_upgrade(kubelet: Kubelet, path: str, protocols: list[str]) -> tuple[int, dict[str, str], SocketTransport | bytes]:
    """POST an ``Upgrade: SPDY/3.1`` request; the status, headers and the connection (or the refusal body)."""
    host, port = kubelet.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Authorization: Bearer {TOKEN}", "Connection: Upgrade",
             "Upgrade: SPDY/3.1", "Content-Length: 0", *(f"X-Stream-Protocol-Version: {p}" for p in protocols)]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    status_line, *header_lines = head.strip().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    status = int(status_line.split()[1])
    if status != 101:
        body = await reader.readexactly(int(headers["content-length"]))
        writer.close()
        return status, headers, body
    return status, headers, SocketTransport(reader, writer)


async def test_spdy_exec_with_stdin_and_exit_code(kubelet: Kubelet) -> None:
    query = "command=sh&command=-c&command=cat%3B+echo+err+%3E%262%3B+exit+3&stdin=true&stdout=true&stderr=true"
    status, headers, transport = await spdy_upgrade(kubelet, f"/exec/default/box/main?{query}",
                                                    ["v4.channel.k8s.io", "v3.channel.k8s.io", "channel.k8s.io"])
    assert status == 101 and headers["x-stream-protocol-version"] == "v4.channel.k8s.io"
    assert headers["upgrade"] == "SPDY/3.1"
    assert isinstance(transport, SocketTransport)
    client = SpdySession(transport, client=True)
    reader = asyncio.create_task(client.run())
    try:
        opened = {kind: await client.open_stream({"streamType": kind}) for kind in ("error", "stdin", "stdout", "stderr")}
        for stream in opened.values():
            await asyncio.wait_for(stream.replied.wait(), 10)
            assert not stream.reset
        await opened["error"].close()
        await opened["stdin"].write(b"typed line\n")
        await opened["stdin"].close()  # FIN: end of stdin, so cat ends
        async with asyncio.timeout(20):
            out, err, error = await asyncio.gather(*(opened[k].read_all() for k in ("stdout", "stderr", "error")))
        assert out == b"typed line\n" and err == b"err\n"
        assert orjson.loads(error) == streams.exit_code_status(["sh", "-c", "cat; echo err >&2; exit 3"], 3)
    finally:
        await client.close()
        reader.cancel()


async def test_spdy_exec_before_v4_sends_only_the_error_text(kubelet: Kubelet) -> None:
    status, headers, transport = await spdy_upgrade(kubelet, "/exec/default/box/main?command=true&stdout=true",
                                                    ["v2.channel.k8s.io"])
    assert status == 101 and headers["x-stream-protocol-version"] == "v2.channel.k8s.io"
    assert isinstance(transport, SocketTransport)
    client = SpdySession(transport, client=True)
    reader = asyncio.create_task(client.run())
    try:
        error, stdout = await client.open_stream({"streamType": "error"}), await client.open_stream({"streamType": "stdout"})
        async with asyncio.timeout(20):
            assert await stdout.read_all() == b""
            assert await error.read_all() == b""  # success: nothing on the error stream before v4
    finally:
        await client.close()
        reader.cancel()


async def test_spdy_refusals_before_the_upgrade(kubelet: Kubelet) -> None:
    status, _, body = await spdy_upgrade(kubelet, "/exec/default/box/main?command=true&stdout=true", ["v9.channel.k8s.io"])
    assert status == 403 and b"unable to negotiate protocol" in bytes(body)  # type: ignore[arg-type]
    status, _, body = await spdy_upgrade(kubelet, "/exec/default/box/nope?command=true&stdout=true", ["v4.channel.k8s.io"])
    assert status == 400 and b'container not found (\\"nope\\")' in bytes(body)  # type: ignore[arg-type]


async def test_spdy_port_forward_large_transfer_both_ways(kubelet: Kubelet) -> None:
    """Two forwarded connections on one session; 1 MiB each way with windows honoured on both sides."""
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        status, headers, transport = await spdy_upgrade(kubelet, "/portForward/default/box", ["portforward.k8s.io"])
        assert status == 101 and headers["x-stream-protocol-version"] == "portforward.k8s.io"
        assert isinstance(transport, SocketTransport)
        client = SpdySession(transport, client=True)
        reader = asyncio.create_task(client.run())
        try:
            await client.announce_flow_control()
            payload = bytes(range(256)) * 4096  # 1 MiB

            async def forward(request_id: str) -> bytes:
                error = await client.open_stream({"streamType": "error", "port": str(port), "requestID": request_id})
                data = await client.open_stream({"streamType": "data", "port": str(port), "requestID": request_id})
                await error.close()

                async def upload() -> None:
                    await data.write(payload)
                    await data.close()

                sending = asyncio.create_task(upload())
                echoed = await data.read_all()
                await sending
                assert await error.read_all() == b""
                return echoed

            async with asyncio.timeout(60):
                results = await asyncio.gather(forward("0"), forward("1"))
            assert results == [payload, payload]
            assert client.peer_flow_control and server is not None
        finally:
            await client.close()
            reader.cancel()


async def test_spdy_port_forward_reports_a_refused_connection(kubelet: Kubelet) -> None:
    server, port = await _echo_server()
    server.close()
    await server.wait_closed()
    status, _, transport = await spdy_upgrade(kubelet, "/portForward/default/box", ["portforward.k8s.io"])
    assert status == 101 and isinstance(transport, SocketTransport)
    client = SpdySession(transport, client=True)
    reader = asyncio.create_task(client.run())
    try:
        error = await client.open_stream({"streamType": "error", "port": str(port), "requestID": "0"})
        data = await client.open_stream({"streamType": "data", "port": str(port), "requestID": "0"})
        bad = await client.open_stream({"streamType": "data", "port": "0", "requestID": "1"})
        async with asyncio.timeout(20):
            message = (await error.read_all()).decode()
            assert await data.read_all() == b""
            await bad.replied.wait()
        assert message.startswith(f"error forwarding port {port} to pod box, uid uid-1234: failed to connect to 127.0.0.1:{port}")
        assert bad.reset  # a port of 0 is refused, as the kubelet refuses it
    finally:
        await client.close()
        reader.cancel()


async def test_garbage_ends_the_session_with_a_protocol_error_goaway() -> None:
    server, task, client_end = await _serve(lambda stream: True)
    peer = RawPeer(client_end)
    await peer.send(SynStream(1, {"a": "b"}))
    assert await peer.next() == SynReply(1, {})
    await client_end.write(bytes.fromhex("80020006" "00000004" "00000001"))  # a SPDY/2 frame
    assert await peer.next() == GoAway(1, spdy.GOAWAY_PROTOCOL_ERROR)
    await asyncio.wait_for(task, 10)
    assert server.closed and not server.streams


async def test_half_a_port_forward_pair_is_reset_when_its_other_half_never_comes() -> None:
    forwarder = streams.SpdyPortForwarder("box", "uid-1234", pair_timeout=0.05)
    server, task, client_end = await _serve(forwarder.accept)
    peer = RawPeer(client_end)
    await peer.send(SynStream(1, {"streamtype": "error", "port": "80", "requestid": "7"}))
    assert await peer.next() == SynReply(1, {})
    assert await peer.next() == RstStream(1, spdy.CANCEL)
    await forwarder.stop()
    await client_end.close()
    await asyncio.wait_for(task, 10)
