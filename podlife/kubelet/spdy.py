"""SPDY/3.1 framing and sessions: what kubectl's ``port-forward`` (and old kubectls' ``exec``) speak.

Design
------
No maintained Python library speaks SPDY/3.1 (the PyPI packages are a decade-old
C binding and an unmaintained 0.2 release), so this module implements the part
of the protocol Kubernetes uses, from the SPDY/3.1 draft and from how Go's
``moby/spdystream`` (kubectl's side) behaves:

**Frames** (:func:`encode_frame`, :class:`FrameDecoder`). A control frame has
the control bit, version 3, a type, flags and a 24-bit length; a data frame a
31-bit stream id, flags and a length. The control frames are SYN_STREAM,
SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS and WINDOW_UPDATE;
FIN (0x01) ends a direction of a stream, UNIDIRECTIONAL (0x02) opens one
that only the opener writes. Header blocks (a count, then length-prefixed
lower-case names and values) are zlib-compressed with the SPDY/3 dictionary,
one compression context per direction for the whole connection, each block
ending in a sync flush. A :class:`FrameCodec` holds one connection's two
contexts, so frames must be encoded in the order they are sent.

**Sessions** (:class:`SpdySession`) run over any :class:`ByteTransport`: the
raw socket after an HTTP ``Upgrade: SPDY/3.1`` (:mod:`.upgrade`) or a
WebSocket whose binary messages carry the SPDY bytes (kubectl 1.31+'s
``SPDY/3.1+portforward.k8s.io`` tunnel, :class:`WebSocketTransport`). The
peer opens streams (kubectl always does; odd ids from a client); each is
offered to the session's ``accept`` callback and answered SYN_REPLY, or
RST_STREAM when refused, as Kubernetes' SPDY server does. PINGs from the
peer are echoed (kubectl pings every few seconds and gives up without
answers); GOAWAY stops new streams.

**Flow control.** SPDY/3.1 gives every stream and the session a 64 KiB send
window that the receiver reopens with WINDOW_UPDATE. We send WINDOW_UPDATEs
as data is consumed (every half window), so a peer that honours windows
never stalls. Go's spdystream neither sends nor honours them, so a sender
that waited for updates would stall every transfer from kubectl after
64 KiB: our sending waits for window only once the peer has shown that it
does flow control (it sent a WINDOW_UPDATE or an initial window size), and
the receiving side does not police the peer's windows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import zlib
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import WSMsgType, web

log = logging.getLogger(__name__)

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS = 1, 2, 3, 4
PING, GOAWAY, HEADERS, WINDOW_UPDATE = 6, 7, 8, 9
FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02
#: RST_STREAM status codes.
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, CANCEL, INTERNAL_ERROR = 1, 2, 3, 5, 6
#: GOAWAY status codes.
GOAWAY_OK, GOAWAY_PROTOCOL_ERROR = 0, 1
SETTINGS_INITIAL_WINDOW_SIZE = 7
#: Initial stream and session window of SPDY/3.1.
DEFAULT_WINDOW = 64 * 1024
#: Payload bytes per data frame we send.
MAX_DATA_CHUNK = 32 * 1024
#: Largest decompressed header block accepted (a zlib bomb ends the session instead).
MAX_HEADER_BLOCK = 256 * 1024
_STREAM_ID_MASK = 0x7FFFFFFF


def _dictionary() -> bytes:
    """The SPDY/3 header compression dictionary: length-prefixed common words, then common text."""
    words = (
        "options head post put delete trace accept accept-charset accept-encoding accept-language "
        "accept-ranges age allow authorization cache-control connection content-base content-encoding "
        "content-language content-length content-location content-md5 content-range content-type date "
        "etag expect expires from host if-match if-modified-since if-none-match if-range "
        "if-unmodified-since last-modified location max-forwards pragma proxy-authenticate "
        "proxy-authorization range referer retry-after server te trailer transfer-encoding upgrade "
        "user-agent vary via warning www-authenticate method get status"
    ).split() + ["200 OK"] + "version HTTP/1.1 url public set-cookie keep-alive origin".split()
    prefixed = b"".join(struct.pack(">I", len(w)) + w.encode() for w in words)
    text = (
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
        "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
        "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
        "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
        "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
        "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
        "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
    )
    return prefixed + text.encode()


HEADER_DICTIONARY = _dictionary()


class SpdyProtocolError(Exception):
    """The peer sent something SPDY/3.1 does not allow; the session ends with GOAWAY."""


# --------------------------------------------------------------------------- frames

Headers = Mapping[str, str]


@dataclass(frozen=True)
class DataFrame:
    stream_id: int
    data: bytes = b""
    fin: bool = False


@dataclass(frozen=True)
class SynStream:
    stream_id: int
    headers: Headers
    associated_id: int = 0
    priority: int = 0
    fin: bool = False
    unidirectional: bool = False


@dataclass(frozen=True)
class SynReply:
    stream_id: int
    headers: Headers = field(default_factory=dict)
    fin: bool = False


@dataclass(frozen=True)
class RstStream:
    stream_id: int
    status: int


@dataclass(frozen=True)
class Settings:
    values: Mapping[int, int]
    flags: int = 0


@dataclass(frozen=True)
class Ping:
    ping_id: int


@dataclass(frozen=True)
class GoAway:
    last_good_stream_id: int
    status: int = GOAWAY_OK


@dataclass(frozen=True)
class HeadersFrame:
    stream_id: int
    headers: Headers
    fin: bool = False


@dataclass(frozen=True)
class WindowUpdate:
    stream_id: int  # 0: the session's window (SPDY/3.1)
    delta: int


@dataclass(frozen=True)
class UnknownControl:
    """A control frame of a type we do not use (CREDENTIAL, NOOP...): ignored, as the draft says."""

    kind: int
    flags: int
    payload: bytes


Frame = (DataFrame | SynStream | SynReply | RstStream | Settings | Ping | GoAway | HeadersFrame
         | WindowUpdate | UnknownControl)


def _header_block(headers: Headers) -> bytes:
    parts = [struct.pack(">I", len(headers))]
    for name, value in headers.items():
        raw_name, raw_value = name.lower().encode(), value.encode()
        parts += [struct.pack(">I", len(raw_name)), raw_name, struct.pack(">I", len(raw_value)), raw_value]
    return b"".join(parts)


def _parse_header_block(block: bytes) -> dict[str, str]:
    try:
        (count,), offset, headers = struct.unpack_from(">I", block), 4, {}
        for _ in range(count):
            (size,) = struct.unpack_from(">I", block, offset)
            name = block[offset + 4:offset + 4 + size]
            offset += 4 + size
            (size,) = struct.unpack_from(">I", block, offset)
            value = block[offset + 4:offset + 4 + size]
            offset += 4 + size
            if not name or len(value) != size:
                raise SpdyProtocolError("malformed header block")
            headers[name.decode("latin-1")] = value.decode("utf-8", "replace")
        return headers
    except struct.error:
        raise SpdyProtocolError("truncated header block") from None


class FrameCodec:
    """One connection's header compression: a deflate context for sending, an inflate one for receiving."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, zlib.MAX_WBITS, zdict=HEADER_DICTIONARY)
        self._inflate = zlib.decompressobj(zlib.MAX_WBITS, zdict=HEADER_DICTIONARY)

    def compress(self, headers: Headers) -> bytes:
        return self._deflate.compress(_header_block(headers)) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def decompress(self, block: bytes) -> dict[str, str]:
        try:
            raw = self._inflate.decompress(block, MAX_HEADER_BLOCK)
        except zlib.error as exc:
            raise SpdyProtocolError(f"header block does not inflate: {exc}") from None
        if self._inflate.unconsumed_tail:
            raise SpdyProtocolError("header block too large")
        return _parse_header_block(raw)


def _control(kind: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload


def encode_frame(frame: Frame, codec: FrameCodec) -> bytes:
    """The bytes of ``frame`` (header blocks compressed with ``codec``: encode in sending order)."""
    match frame:
        case DataFrame(stream_id, data, fin):
            return struct.pack(">II", stream_id & _STREAM_ID_MASK, (FLAG_FIN if fin else 0) << 24 | len(data)) + data
        case SynStream(stream_id, headers, associated_id, priority, fin, unidirectional):
            flags = (FLAG_FIN if fin else 0) | (FLAG_UNIDIRECTIONAL if unidirectional else 0)
            head = struct.pack(">IIBB", stream_id & _STREAM_ID_MASK, associated_id & _STREAM_ID_MASK, (priority & 7) << 5, 0)
            return _control(SYN_STREAM, flags, head + codec.compress(headers))
        case SynReply(stream_id, headers, fin):
            return _control(SYN_REPLY, FLAG_FIN if fin else 0, struct.pack(">I", stream_id) + codec.compress(headers))
        case HeadersFrame(stream_id, headers, fin):
            return _control(HEADERS, FLAG_FIN if fin else 0, struct.pack(">I", stream_id) + codec.compress(headers))
        case RstStream(stream_id, status):
            return _control(RST_STREAM, 0, struct.pack(">II", stream_id, status))
        case Settings(values, flags):
            entries = b"".join(struct.pack(">II", key & 0xFFFFFF, value) for key, value in values.items())
            return _control(SETTINGS, flags, struct.pack(">I", len(values)) + entries)
        case Ping(ping_id):
            return _control(PING, 0, struct.pack(">I", ping_id))
        case GoAway(last_good, status):
            return _control(GOAWAY, 0, struct.pack(">II", last_good, status))
        case WindowUpdate(stream_id, delta):
            return _control(WINDOW_UPDATE, 0, struct.pack(">II", stream_id, delta))
        case UnknownControl(kind, flags, payload):
            return _control(kind, flags, payload)
    raise TypeError(f"not a SPDY frame: {frame!r}")


class FrameDecoder:
    """Frames out of a byte stream fed in pieces of any size."""

    def __init__(self, codec: FrameCodec) -> None:
        self._codec = codec
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= 8:
            first, second = struct.unpack_from(">II", self._buffer)
            length = second & 0xFFFFFF
            if len(self._buffer) < 8 + length:
                break
            payload = bytes(self._buffer[8:8 + length])
            del self._buffer[:8 + length]
            flags = second >> 24
            if first & 0x80000000:
                frames.append(self._control((first >> 16) & 0x7FFF, first & 0xFFFF, flags, payload))
            else:
                frames.append(DataFrame(first & _STREAM_ID_MASK, payload, bool(flags & FLAG_FIN)))
        return frames

    def _control(self, version: int, kind: int, flags: int, payload: bytes) -> Frame:
        if version != VERSION:
            raise SpdyProtocolError(f"unsupported SPDY version {version}")
        fin = bool(flags & FLAG_FIN)
        try:
            if kind == SYN_STREAM:
                stream_id, associated, priority = struct.unpack_from(">IIB", payload)
                return SynStream(stream_id & _STREAM_ID_MASK, self._codec.decompress(payload[10:]),
                                 associated & _STREAM_ID_MASK, priority >> 5, fin, bool(flags & FLAG_UNIDIRECTIONAL))
            if kind in (SYN_REPLY, HEADERS):
                (stream_id,) = struct.unpack_from(">I", payload)
                headers = self._codec.decompress(payload[4:])
                cls = SynReply if kind == SYN_REPLY else HeadersFrame
                return cls(stream_id & _STREAM_ID_MASK, headers, fin)
            if kind == RST_STREAM:
                stream_id, status = struct.unpack_from(">II", payload)
                return RstStream(stream_id & _STREAM_ID_MASK, status)
            if kind == SETTINGS:
                (count,) = struct.unpack_from(">I", payload)
                pairs = (struct.unpack_from(">II", payload, 4 + 8 * i) for i in range(count))
                return Settings({key & 0xFFFFFF: value for key, value in pairs}, flags)
            if kind == PING:
                return Ping(struct.unpack_from(">I", payload)[0])
            if kind == GOAWAY:
                last_good, status = struct.unpack_from(">II", payload) if len(payload) >= 8 else (*struct.unpack_from(">I", payload), 0)
                return GoAway(last_good & _STREAM_ID_MASK, status)
            if kind == WINDOW_UPDATE:
                stream_id, delta = struct.unpack_from(">II", payload)
                return WindowUpdate(stream_id & _STREAM_ID_MASK, delta & _STREAM_ID_MASK)
        except struct.error:
            raise SpdyProtocolError(f"truncated control frame of type {kind}") from None
        return UnknownControl(kind, flags, payload)


# --------------------------------------------------------------------------- transports


class ByteTransport(Protocol):
    """The bytes a session runs on: ``read`` returns ``b""`` at the end; ``write`` raises ConnectionError."""

    async def read(self) -> bytes: ...

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


class WebSocketTransport:
    """SPDY tunnelled in a WebSocket: each binary message carries SPDY bytes (kubectl 1.31+ port-forward)."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws

    async def read(self) -> bytes:
        while True:
            message = await self.ws.receive()
            if message.type == WSMsgType.BINARY:
                if message.data:
                    return bytes(message.data)
                continue
            if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return b""
            if message.type == WSMsgType.TEXT:
                raise SpdyProtocolError("the SPDY tunnel carries binary messages only")

    async def write(self, data: bytes) -> None:
        if self.ws.closed:
            raise ConnectionResetError("websocket closed")
        await self.ws.send_bytes(data)

    async def close(self) -> None:
        with contextlib.suppress(ConnectionError, asyncio.TimeoutError):
            await self.ws.close()


# --------------------------------------------------------------------------- streams and sessions


class SpdyStream:
    """One stream of a session: ``read`` what the peer sends, ``write``/``close`` our direction."""

    def __init__(self, session: SpdySession, stream_id: int, headers: Headers, send_window: int) -> None:
        self.session = session
        self.id = stream_id
        self.headers = dict(headers)
        self._inbox: deque[bytes] = deque()
        self._arrived = asyncio.Event()
        self.remote_closed = False  # FIN or reset from the peer: nothing more to read
        self.local_closed = False  # we sent FIN (or the stream was reset)
        self.reset = False
        self.send_window = send_window
        self._window_opened = asyncio.Event()
        self._unacknowledged = 0
        self.replied = asyncio.Event()  # for streams we open: the peer's SYN_REPLY arrived

    def __repr__(self) -> str:
        return f"SpdyStream({self.id}, {self.headers})"

    # ---- receiving
    def _deliver(self, data: bytes, fin: bool) -> None:
        if data and not self.remote_closed:
            self._inbox.append(data)
        if fin:
            self.remote_closed = True
        self._arrived.set()

    def _reset(self) -> None:
        self.reset = self.remote_closed = self.local_closed = True
        self._arrived.set()
        self._window_opened.set()
        self.replied.set()

    async def read(self) -> bytes:
        """The next bytes the peer sent; ``b""`` once it has closed its direction (or the stream is gone)."""
        while not self._inbox:
            if self.remote_closed:
                return b""
            self._arrived.clear()
            await self._arrived.wait()
        data = self._inbox.popleft()
        await self.session._consumed(self, len(data))
        return data

    async def read_all(self) -> bytes:
        chunks = []
        while chunk := await self.read():
            chunks.append(chunk)
        return b"".join(chunks)

    def _acknowledge(self, size: int) -> int:
        """Bytes to announce in a WINDOW_UPDATE now (0: not yet, half a window is not consumed)."""
        if self.remote_closed:
            return 0
        self._unacknowledged += size
        if self._unacknowledged < DEFAULT_WINDOW // 2:
            return 0
        size, self._unacknowledged = self._unacknowledged, 0
        return size

    # ---- sending
    def _open_window(self, delta: int) -> None:
        self.send_window += delta
        if self.send_window > 0:
            self._window_opened.set()

    async def write(self, data: bytes) -> None:
        """Send ``data`` (in frames of at most :data:`MAX_DATA_CHUNK`); dropped once the stream is closed."""
        view = memoryview(data)
        while view and not self.local_closed:
            size = await self.session._take_window(self, min(len(view), MAX_DATA_CHUNK))
            if size <= 0:
                return
            await self.session._send(DataFrame(self.id, bytes(view[:size])))
            view = view[size:]

    async def close(self) -> None:
        """Half-close: FIN our direction (the peer may still write)."""
        if self.local_closed:
            return
        self.local_closed = True
        await self.session._send(DataFrame(self.id, b"", fin=True))
        self.session._forget_if_done(self)

    async def send_reset(self, status: int = CANCEL) -> None:
        if self.reset:
            return
        self._reset()
        await self.session._send(RstStream(self.id, status))
        self.session._forget_if_done(self)


#: Decides whether to accept a stream the peer opened (True: SYN_REPLY, False: RST_STREAM).
Acceptor = Callable[[SpdyStream], bool]


class SpdySession:
    """A SPDY/3.1 session over a :class:`ByteTransport`; ``run`` reads frames until the connection ends."""

    def __init__(self, transport: ByteTransport, accept: Acceptor | None = None, *, client: bool = False) -> None:
        self.transport = transport
        self._accept = accept
        self._codec = FrameCodec()
        self._decoder = FrameDecoder(self._codec)
        self._write_lock = asyncio.Lock()
        self.streams: dict[int, SpdyStream] = {}
        self._next_stream_id = 1 if client else 2
        self._own_parity = 1 if client else 0
        self._last_peer_stream = 0
        self.send_window = DEFAULT_WINDOW
        self._window_opened = asyncio.Event()
        self._initial_send_window = DEFAULT_WINDOW
        self.peer_flow_control = False
        self._unacknowledged = 0
        self.going_away = False
        self.closed = False
        self.finished = asyncio.Event()

    # ---- the read loop
    async def run(self) -> None:
        """Handle the peer's frames until the transport ends (or the peer breaks the protocol)."""
        try:
            while data := await self.transport.read():
                for frame in self._decoder.feed(data):
                    await self._handle(frame)
        except SpdyProtocolError as exc:
            log.info("SPDY session ends: %s", exc)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self._send(GoAway(self._last_peer_stream, GOAWAY_PROTOCOL_ERROR))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._end()

    def _end(self) -> None:
        self.closed = True
        for stream in list(self.streams.values()):
            stream._reset()
        self.streams.clear()
        self._window_opened.set()
        self.finished.set()

    async def _handle(self, frame: Frame) -> None:
        match frame:
            case DataFrame(stream_id, data, fin):
                if (stream := self.streams.get(stream_id)) is not None:
                    stream._deliver(data, fin)
                    if fin:
                        self._forget_if_done(stream)
                elif stream_id % 2 != self._own_parity and stream_id > self._last_peer_stream:
                    raise SpdyProtocolError(f"data for stream {stream_id}, which was never opened")
            case SynStream():
                await self._on_syn_stream(frame)
            case SynReply(stream_id, _, fin) | HeadersFrame(stream_id, _, fin):
                if (stream := self.streams.get(stream_id)) is not None:
                    stream.replied.set()
                    if fin:
                        stream._deliver(b"", True)
                        self._forget_if_done(stream)
            case RstStream(stream_id, _):
                if (stream := self.streams.pop(stream_id, None)) is not None:
                    stream._reset()
            case Settings(values):
                if SETTINGS_INITIAL_WINDOW_SIZE in values:
                    self.peer_flow_control = True
                    delta = values[SETTINGS_INITIAL_WINDOW_SIZE] - self._initial_send_window
                    self._initial_send_window = values[SETTINGS_INITIAL_WINDOW_SIZE]
                    for stream in self.streams.values():
                        stream._open_window(delta)
            case Ping(ping_id):
                if ping_id % 2 != self._own_parity:
                    await self._send(frame)  # the peer's ping: echo it
            case GoAway():
                self.going_away = True
            case WindowUpdate(stream_id, delta):
                self.peer_flow_control = True
                if stream_id == 0:
                    self.send_window += delta
                    if self.send_window > 0:
                        self._window_opened.set()
                elif (stream := self.streams.get(stream_id)) is not None:
                    stream._open_window(delta)

    async def _on_syn_stream(self, frame: SynStream) -> None:
        sid = frame.stream_id
        if sid % 2 == self._own_parity or sid <= self._last_peer_stream:
            await self._send(RstStream(sid, PROTOCOL_ERROR))
            return
        self._last_peer_stream = sid
        if self.going_away:
            await self._send(RstStream(sid, REFUSED_STREAM))
            return
        stream = SpdyStream(self, sid, frame.headers, self._initial_send_window)
        stream.local_closed = frame.unidirectional
        stream.replied.set()
        if frame.fin:
            stream.remote_closed = True
        if self._accept is None or not self._accept(stream):
            await self._send(RstStream(sid, REFUSED_STREAM))
            return
        self.streams[sid] = stream
        await self._send(SynReply(sid))  # before anything the acceptor's tasks write on it

    # ---- sending
    async def _send(self, frame: Frame) -> None:
        """Encode and write one frame; encoding happens in sending order (the compression context)."""
        async with self._write_lock:
            if self.closed and not isinstance(frame, GoAway):
                return
            data = encode_frame(frame, self._codec)
            try:
                await self.transport.write(data)
            except (ConnectionError, RuntimeError):
                self._end()

    async def _take_window(self, stream: SpdyStream, wanted: int) -> int:
        """How much of ``wanted`` may be sent now (waiting for window from a peer that does flow control)."""
        if not self.peer_flow_control:
            stream.send_window -= wanted
            self.send_window -= wanted
            return wanted
        while not stream.local_closed and not self.closed:
            allowed = min(wanted, stream.send_window, self.send_window)
            if allowed > 0:
                stream.send_window -= allowed
                self.send_window -= allowed
                return allowed
            waiter = stream._window_opened if stream.send_window <= 0 else self._window_opened
            waiter.clear()
            await waiter.wait()
        return 0

    async def _consumed(self, stream: SpdyStream, size: int) -> None:
        """Reopen the peer's windows once half of one has been read."""
        if self.closed:
            return
        if delta := stream._acknowledge(size):
            await self._send(WindowUpdate(stream.id, delta))
        self._unacknowledged += size
        if self._unacknowledged >= DEFAULT_WINDOW // 2:
            delta, self._unacknowledged = self._unacknowledged, 0
            await self._send(WindowUpdate(0, delta))

    def _forget_if_done(self, stream: SpdyStream) -> None:
        if stream.remote_closed and stream.local_closed:
            self.streams.pop(stream.id, None)

    # ---- the client side (tests drive our server with it)
    async def open_stream(self, headers: Headers, *, fin: bool = False) -> SpdyStream:
        """Open a stream (SYN_STREAM); ``await stream.replied.wait()`` for the peer's answer."""
        sid, self._next_stream_id = self._next_stream_id, self._next_stream_id + 2
        stream = SpdyStream(self, sid, headers, self._initial_send_window)
        stream.local_closed = fin
        self.streams[sid] = stream
        await self._send(SynStream(sid, headers, fin=fin))
        return stream

    async def announce_flow_control(self) -> None:
        """Do SPDY/3.1 flow control both ways: a SETTINGS with the initial window tells the peer
        to honour our windows, and from now on we wait for the peer's WINDOW_UPDATEs too."""
        self.peer_flow_control = True
        await self._send(Settings({SETTINGS_INITIAL_WINDOW_SIZE: DEFAULT_WINDOW}))

    async def close(self) -> None:
        """GOAWAY, then close the transport (what is written is flushed first)."""
        if not self.closed:
            await self._send(GoAway(self._last_peer_stream))
        self._end()
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.transport.close()
