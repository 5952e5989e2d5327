"""Streaming sessions on the kubelet: ``exec``, ``attach`` and ``port-forward`` over WebSockets and SPDY.

Design
------
``kubectl exec``, ``attach`` and ``port-forward`` are long-lived, two-way byte
streams. As in Kubernetes, the API server only proxies them: it finds the pod's
node and relays WebSocket messages to and from that node's kubelet unchanged
(:mod:`podlife.api.streaming`). Everything about the protocol lives here, in
the kubelet, next to the processes it talks to.

**The wire protocol** is Kubernetes' channel WebSocket protocol
(``k8s.io/apimachinery/pkg/util/httpstream/wsstream``): every message carries
one channel number and a payload. With the binary subprotocols
(``v5.channel.k8s.io``, ``v4.channel.k8s.io``, ``channel.k8s.io`` and no
subprotocol at all) the first byte of a binary message is the channel; with
the ``base64`` ones it is a text message whose first character is the ASCII
digit of the channel and whose rest is base64. :class:`ChannelProtocol`
encodes and decodes both, so the sessions deal in ``(channel, bytes)`` only.
The client's first offered subprotocol that we know wins (kubectl 1.32 offers
only v5, kr8s only v4, the Python clients v5 then v4).

For ``exec`` and ``attach`` the channels are 0 stdin (client to server),
1 stdout, 2 stderr, 3 the final status, 4 terminal resize
``{"Width": w, "Height": h}``; v5 adds 255 "close", whose payload names the
channel the client has finished writing (``ff 00``: end of stdin). v4 and v5
end with a ``metav1.Status`` on channel 3 -- ``Success``, or ``Failure`` with
reason ``NonZeroExitCode`` and the exit code as a cause (kubectl exits with
that code) -- and older protocols with the error text only. Clients block
until that status arrives (kr8s does), so it is always sent before closing.
As the kubelet does, an empty message on the lowest open output channel tells
the client that the stream is established.

For ``port-forward`` each requested port gets two channels, data ``2n`` and
error ``2n+1``; both start with the port as two little-endian bytes.

**Processes.** ``exec`` runs the command through
:meth:`~podlife.kubelet.runtime.ProcessRuntime.exec_in_container`, so it gets
the container's environment and working directory and dies with the container.
Without a terminal it has pipes, pumped to channels 1 and 2. With ``tty`` it
gets the follower end of a pseudo-terminal as stdin, stdout, stderr and
controlling terminal; the leader end is read and written here without
blocking the event loop, resize messages become ``TIOCSWINSZ`` (which sends
the foreground job ``SIGWINCH``), and there is no channel 2, since a terminal
merges both outputs. For real containers the follower is ``runc exec --tty``'s
stdio: runc relays it to a terminal it makes in the container's ``/dev/pts``,
and copies our window size to that one on ``SIGWINCH``. runc has no
controlling terminal to be signalled by, so each resize also sends the
command's process ``SIGWINCH`` (harmless where the kernel already did). When the command exits, output still in flight is sent
(waiting at most :data:`DRAIN_IDLE_SECONDS` for more when a background child
keeps the output open), then the status. If the client goes away first, the
command's process group is killed: a stream nobody reads should not leave
processes behind.

**attach** has no process of its own. A container of a runtime that keeps its
stdin (:class:`ConsoleAttach`: conmon's attach socket, for ``stdin: true``)
is attached to through that: its output comes from there, channel 0 goes to
its stdin, resizes to its terminal; the end of the client's stdin (or the
client leaving) closes the container's stdin when it is ``stdinOnce`` (conmon
does that), and otherwise ends the session, the container keeping its stdin
open for the next attach (CRI-O's behaviour). Every other container writes
stdout and stderr to its log file and reads stdin from ``/dev/null``, so
attaching means following the log file from its current end and sending each
record on the channel of its stream, until the container exits; input and
resize messages are read and dropped (as on Kubernetes, where the stdin of a
container without ``stdin: true`` is not connected).

**port-forward** connects to ``127.0.0.1:<port>`` *inside the pod's network
namespace* (the sandbox's; the host's own loopback for a ``hostNetwork`` pod or
the process runtime, whose containers share the host's network), with a socket
made there (:func:`podlife.machinery.netns.open_connection`). Only the pod's
loopback is ever dialled, never a pod IP from the host namespace.
The WebSocket closes once every port's connection has ended.

**SPDY** (:mod:`.spdy`) is what kubectl speaks where it does not speak these
WebSocket protocols: ``exec``/``attach`` before kubectl 1.30 (and as its
fallback), ``port-forward`` always -- over a plain ``Upgrade: SPDY/3.1``
before 1.31, tunnelled in a WebSocket (subprotocol
``SPDY/3.1+portforward.k8s.io``) from 1.31 on. The protocol version is
negotiated from ``X-Stream-Protocol-Version`` (:func:`negotiate_spdy`), and
the client opens one stream per channel, named by its ``streamType`` header:

* exec/attach: ``error``, and ``stdin``/``stdout``/``stderr`` as requested, and
  ``resize`` for a terminal (v3+). Once all have arrived (within
  :data:`STREAM_CREATION_TIMEOUT_SECONDS`), :class:`SpdyChannels` presents them
  to the very same :func:`run_exec`/:func:`run_attach` as channels do: stdout and
  stderr are written to their streams, the status to the error stream (v4: the
  ``Status`` JSON; before: the error text only), the stdin stream's FIN is the
  end of stdin, and the resize stream carries one JSON size after another.
* port-forward (:class:`SpdyPortForwarder`): per forwarded connection a pair of
  streams with the same ``requestID`` and ``port``, one ``error`` and one
  ``data``; the data stream is copied to and from a loopback connection, a
  failure is written to the error stream, and both are closed (FIN) when the
  pod's side ends. Many connections share one session.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import errno
import fcntl
import json
import logging
import os
import signal
import struct
import termios
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import orjson
from aiohttp import WSMsgType, web
from multidict import MultiMapping

from ..machinery.netns import open_connection
from ..machinery.query import InvalidBool, query_bool
from ..machinery.tasks import Supervisor
from . import spdy
from .logs import STDERR, parse_cri_record
from .runtime import ContainerNotRunningError, ContainerStartError
from .runtimes import ContainerLike, ContainerRuntime

log = logging.getLogger(__name__)

STDIN, STDOUT, STDERR_CHANNEL, ERROR, RESIZE = 0, 1, 2, 3, 4
#: v5 only: "I have finished writing channel <payload[0]>".
CLOSE = 255
#: After the command exits, how long output may stay silent before the stream is ended.
DRAIN_IDLE_SECONDS = 0.5
#: Bytes asked for per read of a command's output.
READ_BYTES = 32 * 1024
#: Window size of a new terminal until the client sends its own.
DEFAULT_WINDOW = (80, 24)
#: End-of-file character a terminal turns into EOF for the reader (VEOF, ^D).
TERMINAL_EOF = b"\x04"
#: Bounds of the log file polling of ``attach``.
ATTACH_MIN_POLL_SECONDS = 0.01
ATTACH_MAX_POLL_SECONDS = 0.2
#: Where port-forward connects; never anything else.
LOOPBACK = "127.0.0.1"


class RequestRefused(Exception):
    """A kubelet request that cannot be served (no such pod, container, option...).

    The kubelet's server answers it with a ``Status`` (before any upgrade, for streams).
    """

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message

    @classmethod
    def bad_request(cls, message: str) -> RequestRefused:
        return cls(400, "BadRequest", message)

    @classmethod
    def not_found(cls, message: str) -> RequestRefused:
        return cls(404, "NotFound", message)


# --------------------------------------------------------------------------- protocol


@dataclass(frozen=True)
class ChannelProtocol:
    """One channel WebSocket subprotocol: its name, its codec and its status version."""

    name: str
    base64: bool = False
    version: int = 1  # 1: before v4 (plain-text errors); 4: Status JSON; 5: adds the close channel
    tunnels_spdy: bool = False  # binary messages carry a SPDY/3.1 session (port-forward of kubectl 1.31+)

    def encode(self, channel: int, data: bytes) -> bytes | str:
        """The WebSocket message carrying ``data`` on ``channel``."""
        if self.base64:
            return chr(ord("0") + channel) + base64.b64encode(data).decode("ascii")
        return bytes((channel,)) + data

    def decode(self, message: bytes | str) -> tuple[int, bytes] | None:
        """``(channel, payload)`` of a message; None for an empty, undecodable or wrong-kind one."""
        if self.base64:
            if not isinstance(message, str) or not message:
                return None
            try:
                return ord(message[0]) - ord("0"), base64.b64decode(message[1:], validate=True)
            except (binascii.Error, ValueError):
                return None
        if isinstance(message, str):  # Kubernetes reads a text message's bytes like a binary one's
            message = message.encode()
        if not message:
            return None
        return message[0], bytes(message[1:])


def _protocols(*protocols: ChannelProtocol) -> dict[str, ChannelProtocol]:
    return {p.name: p for p in protocols}


EXEC_PROTOCOLS = _protocols(
    ChannelProtocol("v5.channel.k8s.io", version=5),
    ChannelProtocol("v4.channel.k8s.io", version=4),
    ChannelProtocol("v4.base64.channel.k8s.io", base64=True, version=4),
    ChannelProtocol("channel.k8s.io"),
    ChannelProtocol("base64.channel.k8s.io", base64=True),
    ChannelProtocol(""),
)
PORT_FORWARD_PROTOCOLS = _protocols(
    ChannelProtocol("SPDY/3.1+portforward.k8s.io", tunnels_spdy=True),
    ChannelProtocol("v4.channel.k8s.io", version=4),
    ChannelProtocol("v4.base64.channel.k8s.io", base64=True, version=4),
    ChannelProtocol("portforward.k8s.io", version=4),
    ChannelProtocol(""),
)
#: ``X-Stream-Protocol-Version`` values of SPDY streams ("": a client that names none, the oldest protocol).
SPDY_EXEC_PROTOCOLS = _protocols(
    ChannelProtocol("v4.channel.k8s.io", version=4),
    ChannelProtocol("v3.channel.k8s.io", version=3),  # adds the resize stream
    ChannelProtocol("v2.channel.k8s.io", version=2),
    ChannelProtocol("channel.k8s.io"),
    ChannelProtocol(""),
)
SPDY_PORT_FORWARD_PROTOCOLS = _protocols(ChannelProtocol("portforward.k8s.io"), ChannelProtocol(""))


def negotiate(offered: Sequence[str], supported: Mapping[str, ChannelProtocol]) -> ChannelProtocol:
    """The client's first supported subprotocol; no offer at all means the plain binary one."""
    if not offered:
        return supported[""]
    for name in offered:
        if name and name in supported:
            return supported[name]
    known = sorted(n for n in supported if n)
    raise RequestRefused.bad_request(f"requested protocol(s) are not supported: {list(offered)}; supports {known}")


def negotiate_spdy(headers: MultiMapping[str], supported: Mapping[str, ChannelProtocol]) -> ChannelProtocol:
    """The client's first supported ``X-Stream-Protocol-Version``, as Kubernetes' ``httpstream.Handshake``.

    A client that names none gets the oldest protocol; one that names only unknown ones a 403.
    """
    offered = [p.strip() for value in headers.getall("X-Stream-Protocol-Version", []) for p in value.split(",") if p.strip()]
    if not offered:
        return supported[""]
    for name in offered:
        if name in supported:
            return supported[name]
    known = [n for n in supported if n]
    raise RequestRefused(403, "Forbidden", f"unable to upgrade: unable to negotiate protocol: client supports {offered}, "
                                           f"server accepts {known}")


# --------------------------------------------------------------------------- statuses


def success_status() -> dict[str, Any]:
    return {"metadata": {}, "status": "Success"}


def exit_code_status(command: Sequence[str], code: int) -> dict[str, Any]:
    """The status kubectl turns into "command terminated with exit code N" (and exits N)."""
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: error executing command [{' '.join(command)}], exit code {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def internal_error_status(message: str) -> dict[str, Any]:
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"Internal error occurred: {message}",
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    }


def encode_status(protocol: ChannelProtocol, status: Mapping[str, Any]) -> bytes | None:
    """What channel 3 carries: the Status (v4+), or before v4 the error text and nothing on success."""
    if protocol.version >= 4:
        return orjson.dumps(status)
    if status.get("status") == "Success":
        return None
    return str(status.get("message", "")).encode()


# --------------------------------------------------------------------------- connection


class ChannelConnection:
    """An upgraded WebSocket speaking one :class:`ChannelProtocol`."""

    def __init__(self, ws: web.WebSocketResponse, protocol: ChannelProtocol) -> None:
        self.ws = ws
        self.protocol = protocol

    @classmethod
    async def accept(cls, request: web.Request, protocol: ChannelProtocol) -> ChannelConnection:
        """Answer 101 with ``protocol`` echoed (nothing when the client offered none)."""
        ws = web.WebSocketResponse(protocols=(protocol.name,) if protocol.name else ())
        await ws.prepare(request)
        return cls(ws, protocol)

    @property
    def closed(self) -> bool:
        return self.ws.closed

    @property
    def accepts_close_signal(self) -> bool:
        """Whether a channel-255 message ends stdin (v5 only)."""
        return self.protocol.version >= 5

    async def send(self, channel: int, data: bytes) -> bool:
        """Send ``data`` on ``channel``; False once the client has gone."""
        if self.ws.closed:
            return False
        message = self.protocol.encode(channel, data)
        try:
            if isinstance(message, str):
                await self.ws.send_str(message)
            else:
                await self.ws.send_bytes(message)
        except ConnectionError:
            return False
        return True

    async def send_status(self, status: Mapping[str, Any]) -> None:
        payload = encode_status(self.protocol, status)
        if payload is not None:
            await self.send(ERROR, payload)

    async def receive(self) -> AsyncIterator[tuple[int, bytes]]:
        """Decoded messages from the client until it closes the connection."""
        async for message in self.ws:
            if message.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
                continue
            decoded = self.protocol.decode(message.data)
            if decoded is not None:
                yield decoded

    async def close(self) -> None:
        with contextlib.suppress(ConnectionError, asyncio.TimeoutError):
            await self.ws.close()


class StreamConnection(Protocol):
    """What ``exec`` and ``attach`` talk through: a channel WebSocket or SPDY streams (:class:`SpdyChannels`)."""

    @property
    def closed(self) -> bool: ...

    @property
    def accepts_close_signal(self) -> bool: ...

    async def send(self, channel: int, data: bytes) -> bool: ...

    async def send_status(self, status: Mapping[str, Any]) -> None: ...

    def receive(self) -> AsyncIterator[tuple[int, bytes]]: ...

    async def close(self) -> None: ...


def parse_resize(payload: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a resize message; None when malformed."""
    try:
        size = orjson.loads(payload)
        width, height = int(size["Width"]), int(size["Height"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    if not (0 <= width <= 0xFFFF and 0 <= height <= 0xFFFF):
        return None
    return width, height


# --------------------------------------------------------------------------- options


def _flag(query: MultiMapping[str], name: str) -> bool:
    """A boolean option, read as Go's ``strconv.ParseBool`` (absent is false)."""
    try:
        return query_bool(query, name)
    except InvalidBool as exc:
        raise RequestRefused.bad_request(str(exc)) from None


@dataclass(frozen=True)
class StreamOptions:
    """``PodExecOptions``/``PodAttachOptions``: which streams, whether a terminal, which command."""

    command: tuple[str, ...]
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool

    @property
    def first_output(self) -> int:
        """The channel announcing the stream: the lowest open output channel, else the error one."""
        if self.stdout:
            return STDOUT
        return STDERR_CHANNEL if self.stderr else ERROR


def stream_options(query: MultiMapping[str], *, needs_command: bool) -> StreamOptions:
    """Options from the query; :class:`RequestRefused` (400) when unusable."""
    tty = _flag(query, "tty")
    opts = StreamOptions(
        command=tuple(query.getall("command", [])),
        stdin=_flag(query, "stdin"),
        stdout=_flag(query, "stdout"),
        stderr=_flag(query, "stderr") and not tty,  # a terminal merges stderr into stdout
        tty=tty,
    )
    if not (opts.stdin or opts.stdout or _flag(query, "stderr")):
        raise RequestRefused.bad_request("you must specify at least 1 of stdin, stdout, stderr")
    if needs_command and not opts.command:
        raise RequestRefused.bad_request("you must specify at least one command for the container")
    return opts


def port_list(query: MultiMapping[str]) -> list[int]:
    """The ``ports`` query values (repeated or comma-separated); 400 when missing or malformed."""
    values = query.getall("ports", [])
    if not values:
        raise RequestRefused.bad_request('query parameter "ports" is required')
    ports: list[int] = []
    for value in values:
        for part in value.split(","):
            if not part.strip().isdigit() or not 0 < int(part) <= 0xFFFF:
                raise RequestRefused.bad_request(f'unable to parse "{value}" as a port')
            ports.append(int(part))
    return ports


# --------------------------------------------------------------------------- command I/O


class CommandIO(Protocol):
    """How a session reaches a running command: its outputs, its input and its terminal."""

    def outputs(self) -> list[tuple[int, Callable[[], Awaitable[bytes]]]]:
        """``(channel, read)`` per output; ``read`` returns ``b""`` at the end."""
        ...

    async def write(self, data: bytes) -> None: ...

    async def close_input(self) -> None: ...

    def resize(self, width: int, height: int) -> None: ...

    def close(self) -> None: ...


class PipeIO:
    """A command with pipes: stdout to channel 1, stderr to channel 2, channel 0 to stdin."""

    def __init__(self, process: asyncio.subprocess.Process, opts: StreamOptions) -> None:
        self._process = process
        self._opts = opts

    def outputs(self) -> list[tuple[int, Callable[[], Awaitable[bytes]]]]:
        streams = [(STDOUT, self._process.stdout, self._opts.stdout), (STDERR_CHANNEL, self._process.stderr, self._opts.stderr)]
        # A stream the client did not ask for is still read, so the command never blocks on it.
        return [(channel if wanted else -1, _reader(stream)) for channel, stream, wanted in streams if stream is not None]

    async def write(self, data: bytes) -> None:
        stdin = self._process.stdin
        if stdin is None or stdin.is_closing():
            return
        with contextlib.suppress(ConnectionError):
            stdin.write(data)
            await stdin.drain()

    async def close_input(self) -> None:
        if self._process.stdin is not None and not self._process.stdin.is_closing():
            self._process.stdin.close()

    def resize(self, width: int, height: int) -> None:
        return None  # no terminal

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()


def _reader(stream: asyncio.StreamReader) -> Callable[[], Awaitable[bytes]]:
    async def read() -> bytes:
        return await stream.read(READ_BYTES)

    return read


class PtyIO:
    """The leader end of a pseudo-terminal, read and written without blocking the loop."""

    def __init__(self, leader: int) -> None:
        self._fd = leader
        self._winch_pid: int | None = None
        os.set_blocking(leader, False)

    def signal_resizes_to(self, pid: int) -> None:
        """Send ``pid`` SIGWINCH on each resize (runc, which relays the size, has no controlling terminal)."""
        self._winch_pid = pid

    @classmethod
    def open(cls) -> tuple[PtyIO, int]:
        """A new terminal of :data:`DEFAULT_WINDOW`: the I/O end, and the follower fd for the process."""
        leader, follower = os.openpty()
        io = cls(leader)
        io.resize(*DEFAULT_WINDOW)
        return io, follower

    def outputs(self) -> list[tuple[int, Callable[[], Awaitable[bytes]]]]:
        return [(STDOUT, self.read)]

    async def read(self) -> bytes:
        """Output of the terminal; ``b""`` once no process holds its follower end (EIO)."""
        while self._fd >= 0:
            try:
                return os.read(self._fd, READ_BYTES)
            except BlockingIOError:
                await _ready(self._fd, writable=False)
            except OSError as exc:
                if exc.errno == errno.EIO:
                    return b""
                raise
        return b""

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view and self._fd >= 0:
            try:
                view = view[os.write(self._fd, view):]
            except BlockingIOError:
                await _ready(self._fd, writable=True)
            except OSError:
                return  # the terminal is gone: input has nowhere to go

    async def close_input(self) -> None:
        await self.write(TERMINAL_EOF)

    def resize(self, width: int, height: int) -> None:
        if self._fd >= 0:
            fcntl.ioctl(self._fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
            if self._winch_pid is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(self._winch_pid, signal.SIGWINCH)

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)


async def _ready(fd: int, *, writable: bool) -> None:
    """Wait until ``fd`` can be read (or written)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not future.done():
            future.set_result(None)

    add, remove = (loop.add_writer, loop.remove_writer) if writable else (loop.add_reader, loop.remove_reader)
    add(fd, wake)
    try:
        await future
    finally:
        remove(fd)


# --------------------------------------------------------------------------- exec


class _Activity:
    """When output last moved, to tell a draining stream from an idle one.

    A send held up by a slow client is progress, not silence: while one is in
    flight the stream never counts as idle.
    """

    def __init__(self) -> None:
        self.last = time.monotonic()
        self.sending = 0

    def touch(self) -> None:
        self.last = time.monotonic()

    @contextlib.contextmanager
    def send(self) -> Iterator[None]:
        self.sending += 1
        try:
            yield
        finally:
            self.sending -= 1
            self.touch()

    def idle_for(self) -> float:
        return 0.0 if self.sending else time.monotonic() - self.last


async def _pump_output(conn: StreamConnection, channel: int, read: Callable[[], Awaitable[bytes]],
                       activity: _Activity) -> None:
    """Copy one output to its channel (or drop it, for channel -1) until its end."""
    while data := await read():
        activity.touch()
        if channel >= 0:
            with activity.send():
                await conn.send(channel, data)


async def _feed_input(conn: StreamConnection, io: CommandIO) -> None:
    """Route the client's messages: stdin, end of stdin (v5), resize. Ends when the client closes."""
    async for channel, payload in conn.receive():
        if channel == STDIN:
            await io.write(payload)
        elif channel == RESIZE and (size := parse_resize(payload)) is not None:
            with contextlib.suppress(OSError):
                io.resize(*size)
        elif channel == CLOSE and conn.accepts_close_signal and payload[:1] == bytes((STDIN,)):
            await io.close_input()


async def _drain(pumps: list[asyncio.Task[None]], activity: _Activity) -> None:
    """Let the output pumps finish; give up once output has been silent for DRAIN_IDLE_SECONDS."""
    pending = {p for p in pumps if not p.done()}
    while pending:
        _, pending = await asyncio.wait(pending, timeout=DRAIN_IDLE_SECONDS)
        if pending and activity.idle_for() >= DRAIN_IDLE_SECONDS:
            break
    for task in pending:
        task.cancel()
    await asyncio.gather(*pumps, return_exceptions=True)


def _kill_group(process: asyncio.subprocess.Process) -> None:
    """SIGKILL the command's process group (its pid: it was started in a new session)."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


async def _start_command(runtime: ContainerRuntime, handle: ContainerLike,
                         opts: StreamOptions) -> tuple[asyncio.subprocess.Process, CommandIO]:
    """Start the command with pipes, or on a new terminal for ``tty``."""
    if not opts.tty:
        process = await runtime.exec_in_container(handle, opts.command, stdin=opts.stdin)
        return process, PipeIO(process, opts)
    env = {} if "TERM" in handle.env else {"TERM": "xterm"}
    io, follower = PtyIO.open()
    try:
        process = await runtime.exec_in_container(handle, opts.command, env=env, terminal=follower)
    except BaseException:
        io.close()
        raise
    finally:
        os.close(follower)
    io.signal_resizes_to(process.pid)
    return process, io


async def run_exec(conn: StreamConnection, runtime: ContainerRuntime, handle: ContainerLike,
                   opts: StreamOptions) -> None:
    """Run one ``exec`` session to its end: command output, then the status, then close."""
    try:
        process, io = await _start_command(runtime, handle, opts)
    except (ContainerStartError, ContainerNotRunningError) as exc:
        await conn.send_status(internal_error_status(f"error executing command in container: {exc}"))
        await conn.close()
        return
    try:
        await conn.send(opts.first_output, b"")
        code = await _run_to_exit(conn, process, io)
        if code is not None:
            await conn.send_status(success_status() if code == 0 else exit_code_status(opts.command, code))
            await conn.close()
    finally:
        _kill_group(process)
        io.close()


async def _run_to_exit(conn: StreamConnection, process: asyncio.subprocess.Process, io: CommandIO) -> int | None:
    """The exit code once the command has exited and its output is sent; None if the client left first."""
    activity = _Activity()
    pumps = [asyncio.create_task(_pump_output(conn, ch, read, activity)) for ch, read in io.outputs()]
    feeder = asyncio.create_task(_feed_input(conn, io))
    exited = asyncio.create_task(process.wait())
    try:
        await asyncio.wait({exited, feeder}, return_when=asyncio.FIRST_COMPLETED)
        if not exited.done():  # the client went away: nobody wants the command any more
            return None
        await _drain(pumps, activity)
        code = exited.result()
        return 128 - code if code < 0 else code  # -N: killed by signal N
    finally:
        for task in (*pumps, feeder, exited):
            task.cancel()
        await asyncio.gather(*pumps, feeder, exited, return_exceptions=True)


# --------------------------------------------------------------------------- attach


class _LogTail:
    """New CRI records of a container's log file, from the end it had when opened."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = path.stat().st_size if path.exists() else 0
        self._rest = b""

    def read(self) -> list[tuple[bytes, bytes]]:
        """``(stream, bytes)`` of the records written since the last call."""
        try:
            with open(self._path, "rb") as f:
                f.seek(self._offset)
                data = f.read(READ_BYTES)
        except FileNotFoundError:
            return []
        self._offset += len(data)
        *lines, self._rest = (self._rest + data).split(b"\n")
        out = []
        for line in lines:
            record = parse_cri_record(line)
            if record is not None:
                out.append((record.stream, record.content if record.partial else record.content + b"\n"))
        return out


async def _follow_log(conn: StreamConnection, handle: ContainerLike, opts: StreamOptions) -> None:
    """Send the container's new output until it has exited and its log has been read."""
    tail = _LogTail(handle.log_path)
    delay = ATTACH_MIN_POLL_SECONDS
    while True:
        running = handle.running  # asked before reading: output written before the exit is read
        records = tail.read()
        for stream, data in records:
            channel = STDERR_CHANNEL if stream == STDERR and not opts.tty else STDOUT
            if (opts.stderr if channel == STDERR_CHANNEL else opts.stdout) and not await conn.send(channel, data):
                return
        if records:
            delay = ATTACH_MIN_POLL_SECONDS
            continue
        if not running:
            return
        await asyncio.sleep(delay)
        delay = min(delay * 2, ATTACH_MAX_POLL_SECONDS)


async def _ignore_input(conn: StreamConnection) -> None:
    """Read the client's messages (a container's stdin is not connected) until it closes."""
    async for _ in conn.receive():
        pass


class AttachedStdio(Protocol):
    """A container's own stdin, output and terminal, as conmon's attach socket offers them."""

    #: whether the container's stdin closes with the first attach's input (``stdinOnce``)
    stdin_once: bool

    async def read(self) -> tuple[str, bytes]:
        """``("stdout"|"stderr", data)``; ``("", b"")`` once the container has exited."""
        ...

    async def write(self, data: bytes) -> None: ...

    def close_input(self) -> None: ...

    def resize(self, width: int, height: int) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class ConsoleAttach(Protocol):
    """A runtime that can connect a client to a container's stdin (``stdin: true``)."""

    async def attach_container(self, handle: Any) -> AttachedStdio | None:
        """The container's stdio; None when its stdin is not kept (its output is in the log)."""
        ...


async def _pump_attached(conn: StreamConnection, stdio: AttachedStdio, opts: StreamOptions) -> None:
    """Send the container's output until it exits (or the client is gone)."""
    while True:
        stream, data = await stdio.read()
        if not data:
            return
        channel = STDERR_CHANNEL if stream == "stderr" and not opts.tty else STDOUT
        if (opts.stderr if channel == STDERR_CHANNEL else opts.stdout) and not await conn.send(channel, data):
            return


async def _feed_attached(conn: StreamConnection, stdio: AttachedStdio, input_ended: asyncio.Event) -> None:
    """Route the client's input to the container until the client closes; note the end of its stdin."""
    async for channel, payload in conn.receive():
        if channel == STDIN and not input_ended.is_set():
            await stdio.write(payload)
        elif channel == RESIZE and (size := parse_resize(payload)) is not None:
            stdio.resize(*size)
        elif channel == CLOSE and conn.accepts_close_signal and payload[:1] == bytes((STDIN,)):
            stdio.close_input()
            input_ended.set()


async def _run_attached(conn: StreamConnection, stdio: AttachedStdio, opts: StreamOptions) -> None:
    """Attach to the container's own stdio (see the module's design) until it exits or the client leaves."""
    input_ended = asyncio.Event()
    output = asyncio.create_task(_pump_attached(conn, stdio, opts))
    feeder = asyncio.create_task(_feed_attached(conn, stdio, input_ended))
    ended = asyncio.create_task(input_ended.wait())
    # stdinOnce (or a terminal): the end of input is the container's; wait for its exit.
    # Otherwise the end of input detaches, the container's stdin staying open (CRI-O).
    detaches = not (stdio.stdin_once or opts.tty)
    try:
        await asyncio.wait({output, feeder, *([ended] if detaches else [])}, return_when=asyncio.FIRST_COMPLETED)
        if (output.done() or ended.done()) and not conn.closed:
            await conn.send_status(success_status())
            await conn.close()
    finally:
        for task in (output, feeder, ended):
            task.cancel()
        await asyncio.gather(output, feeder, ended, return_exceptions=True)
        stdio.close()


async def run_attach(conn: StreamConnection, handle: ContainerLike, opts: StreamOptions,
                     runtime: ContainerRuntime | None = None) -> None:
    """Stream a running container's output until it exits (then ``Success``) or the client leaves."""
    stdio: AttachedStdio | None = None
    if opts.stdin and isinstance(runtime, ConsoleAttach):
        try:
            stdio = await runtime.attach_container(handle)
        except ContainerNotRunningError as exc:
            await conn.send_status(internal_error_status(f"error attaching to container: {exc}"))
            await conn.close()
            return
    await conn.send(opts.first_output, b"")
    if stdio is not None:
        await _run_attached(conn, stdio, opts)
        return
    follow = asyncio.create_task(_follow_log(conn, handle, opts))
    reader = asyncio.create_task(_ignore_input(conn))
    try:
        await asyncio.wait({follow, reader}, return_when=asyncio.FIRST_COMPLETED)
        if follow.done() and not conn.closed:
            follow.result()
            await conn.send_status(success_status())
            await conn.close()
    finally:
        for task in (follow, reader):
            task.cancel()
        await asyncio.gather(follow, reader, return_exceptions=True)


# --------------------------------------------------------------------------- port-forward


def port_prefix(port: int) -> bytes:
    """The two little-endian bytes that open each port-forward channel."""
    return struct.pack("<H", port)


class _ForwardedPort:
    """One requested port: a loopback connection and its pair of channels."""

    def __init__(self, conn: ChannelConnection, index: int, port: int, pod: str, uid: str,
                 netns: str | None = None) -> None:
        self.conn = conn
        self.port = port
        self.netns = netns
        self.data_channel = 2 * index
        self.error_channel = 2 * index + 1
        self._pod, self._uid = pod, uid
        self._inbox: asyncio.Queue[bytes | None] = asyncio.Queue()

    def deliver(self, data: bytes) -> None:
        """Data the client sent on this port's data channel."""
        self._inbox.put_nowait(data)

    def finish_input(self) -> None:
        self._inbox.put_nowait(None)

    async def run(self) -> None:
        """Copy both ways until the server side closes; errors go to the error channel."""
        await forward_loopback(self.port, netns=self.netns, receive=self._inbox.get,
                               send=lambda data: self.conn.send(self.data_channel, data), report=self._error)

    async def _error(self, message: str) -> None:
        await self.conn.send(self.error_channel, forward_error(self.port, self._pod, self._uid, message).encode())


async def _route_port_data(conn: ChannelConnection, ports: list[_ForwardedPort]) -> None:
    """Hand each data-channel message to its port, until the client closes."""
    by_channel = {p.data_channel: p for p in ports}
    try:
        async for channel, payload in conn.receive():
            if (port := by_channel.get(channel)) is not None and payload:
                port.deliver(payload)
    finally:
        for port in ports:
            port.finish_input()


async def run_port_forward(conn: ChannelConnection, ports: Sequence[int], pod: str, uid: str,
                           netns: str | None = None) -> None:
    """Forward each port to the pod's loopback (in ``netns``); close once every connection has ended or the client leaves."""
    forwarded = [_ForwardedPort(conn, i, port, pod, uid, netns) for i, port in enumerate(ports)]
    for port in forwarded:
        await conn.send(port.data_channel, port_prefix(port.port))
        await conn.send(port.error_channel, port_prefix(port.port))
    router = asyncio.create_task(_route_port_data(conn, forwarded))
    copies = asyncio.gather(*(p.run() for p in forwarded))
    try:
        either: list[asyncio.Future[Any]] = [router, copies]
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if copies.done():
            await conn.close()
    finally:
        router.cancel()
        copies.cancel()
        await asyncio.gather(router, copies, return_exceptions=True)


async def forward_loopback(port: int, *, netns: str | None = None, receive: Callable[[], Awaitable[bytes | None]],
                           send: Callable[[bytes], Awaitable[bool]], report: Callable[[str], Awaitable[None]]) -> None:
    """One forwarded connection, whatever the protocol: ``127.0.0.1:port`` of ``netns`` <-> the client's stream.

    ``receive`` gives what the client sent (empty or None: it is done sending), ``send``
    passes the container's bytes on (False: the client is gone), ``report`` tells the
    client a failure in Kubernetes' words. Only loopback is ever dialled.
    """
    try:
        reader, writer = await open_connection(netns, LOOPBACK, port)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        await report(f"failed to connect to {LOOPBACK}:{port}: {reason}")
        return
    upload = asyncio.create_task(_copy_to(receive, writer))
    try:
        while data := await reader.read(READ_BYTES):
            if not await send(data):
                break
    except OSError as exc:
        await report(str(exc))
    finally:
        upload.cancel()
        await asyncio.gather(upload, return_exceptions=True)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _copy_to(receive: Callable[[], Awaitable[bytes | None]], writer: asyncio.StreamWriter) -> None:
    """The client's bytes to the container, then end-of-file when the client is done sending."""
    with contextlib.suppress(OSError):
        while chunk := await receive():
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()


def forward_error(port: int, pod: str, uid: str, message: str) -> str:
    """The text of a failed port-forward, worded as the kubelet words it."""
    return f"error forwarding port {port} to pod {pod}, uid {uid}: {message}"


# --------------------------------------------------------------------------- SPDY


#: How long a SPDY client may take to open every stream its request announced (the kubelet's default).
STREAM_CREATION_TIMEOUT_SECONDS = 30.0
#: ``streamType`` of each exec/attach channel's SPDY stream.
SPDY_STREAM_TYPES = {"stdin": STDIN, "stdout": STDOUT, "stderr": STDERR_CHANNEL, "error": ERROR, "resize": RESIZE}


def expected_spdy_streams(opts: StreamOptions, protocol: ChannelProtocol) -> set[str]:
    """The streams a SPDY client opens for ``opts``: the error one, each requested one, resize for a terminal (v3+)."""
    wanted = {"error"} | {name for name, on in (("stdin", opts.stdin), ("stdout", opts.stdout), ("stderr", opts.stderr)) if on}
    if opts.tty and protocol.version >= 3:
        wanted.add("resize")
    return wanted


class _StreamCollector:
    """Accepts the announced exec/attach streams, once each, and says when all have arrived."""

    def __init__(self, wanted: set[str]) -> None:
        self.wanted = wanted
        self.streams: dict[int, spdy.SpdyStream] = {}
        self.complete = asyncio.Event()

    def accept(self, stream: spdy.SpdyStream) -> bool:
        kind = stream.headers.get("streamtype", "")
        channel = SPDY_STREAM_TYPES.get(kind)
        if kind not in self.wanted or channel is None or channel in self.streams:
            return False
        self.streams[channel] = stream
        if len(self.streams) == len(self.wanted):
            self.complete.set()
        return True


class SpdyChannels:
    """exec/attach over SPDY streams, behind the same interface as :class:`ChannelConnection`.

    Output goes to the stdout/stderr streams, the final status to the error stream
    (the v4 ``Status``, or before v4 the error text); the client's stdin stream
    becomes channel-0 messages, its FIN the close signal of stdin, and the resize
    stream's JSON objects channel-4 messages. :meth:`receive` ends with the session.
    """

    accepts_close_signal = True

    def __init__(self, session: spdy.SpdySession, protocol: ChannelProtocol, streams: Mapping[int, spdy.SpdyStream]) -> None:
        self.session = session
        self.protocol = protocol
        self._streams = dict(streams)

    @property
    def closed(self) -> bool:
        return self.session.closed

    async def send(self, channel: int, data: bytes) -> bool:
        if self.session.closed:
            return False
        stream = self._streams.get(channel)
        if stream is not None and data:
            await stream.write(data)
        return not self.session.closed

    async def send_status(self, status: Mapping[str, Any]) -> None:
        payload = encode_status(self.protocol, status)
        if payload is not None:
            await self.send(ERROR, payload)

    async def receive(self) -> AsyncIterator[tuple[int, bytes]]:
        inbox: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        pumps = [asyncio.create_task(self._pump_stdin(inbox)), asyncio.create_task(self._pump_resizes(inbox))]
        ended = asyncio.create_task(self.session.finished.wait())
        ended.add_done_callback(lambda _: inbox.put_nowait(None))
        try:
            while (item := await inbox.get()) is not None:
                yield item
        finally:
            for task in (*pumps, ended):
                task.cancel()
            await asyncio.gather(*pumps, ended, return_exceptions=True)

    async def _pump_stdin(self, inbox: asyncio.Queue[tuple[int, bytes] | None]) -> None:
        if (stream := self._streams.get(STDIN)) is None:
            return
        while data := await stream.read():
            inbox.put_nowait((STDIN, data))
        inbox.put_nowait((CLOSE, bytes((STDIN,))))

    async def _pump_resizes(self, inbox: asyncio.Queue[tuple[int, bytes] | None]) -> None:
        if (stream := self._streams.get(RESIZE)) is None:
            return
        decoder, pending = json.JSONDecoder(), ""
        while data := await stream.read():
            pending += data.decode("utf-8", "replace")
            while pending.strip():
                try:
                    size, end = decoder.raw_decode(pending.lstrip())
                except ValueError:
                    break  # the rest of this object is still on its way
                pending = pending.lstrip()[end:]
                inbox.put_nowait((RESIZE, orjson.dumps(size)))

    async def close(self) -> None:
        """FIN our streams (the client reads them to their end), then end the session."""
        for channel in (STDOUT, STDERR_CHANNEL, ERROR):
            if (stream := self._streams.get(channel)) is not None:
                await stream.close()
        await self.session.close()


async def run_spdy_container_stream(transport: spdy.ByteTransport, protocol: ChannelProtocol, opts: StreamOptions,
                                    run: Callable[[StreamConnection], Awaitable[None]]) -> None:
    """An exec/attach session over SPDY: wait for the client's streams, then ``run`` it like a WebSocket one."""
    collector = _StreamCollector(expected_spdy_streams(opts, protocol))
    session = spdy.SpdySession(transport, collector.accept)
    reader = asyncio.create_task(session.run())
    complete = asyncio.create_task(collector.complete.wait())
    try:
        await asyncio.wait({reader, complete}, timeout=STREAM_CREATION_TIMEOUT_SECONDS, return_when=asyncio.FIRST_COMPLETED)
        if complete.done() and not session.closed:
            await run(SpdyChannels(session, protocol, collector.streams))
        elif not session.closed:
            log.info("SPDY client opened %s of the streams %s in time", sorted(collector.streams), sorted(collector.wanted))
    finally:
        await session.close()
        for task in (reader, complete):
            task.cancel()
        await asyncio.gather(reader, complete, return_exceptions=True)


class SpdyPortForwarder:
    """Port-forward over SPDY: each ``requestID`` brings an error and a data stream; a complete pair is forwarded.

    Streams need a ``port`` (1-65535) and a ``streamType`` of ``error`` or ``data``,
    else they are refused (RST_STREAM), as the kubelet refuses them. Clients without
    request ids (very old ones) are paired by stream id, as the kubelet pairs them.
    """

    def __init__(self, pod: str, uid: str, *, pair_timeout: float = STREAM_CREATION_TIMEOUT_SECONDS,
                 netns: str | None = None) -> None:
        self._pod, self._uid = pod, uid
        self._netns = netns
        self._pair_timeout = pair_timeout
        self._pairs: dict[str, dict[str, spdy.SpdyStream]] = {}
        self._deadlines: dict[str, asyncio.TimerHandle] = {}
        self._tasks = Supervisor(f"port-forward {pod}", logger=log)

    def accept(self, stream: spdy.SpdyStream) -> bool:
        port, kind = stream.headers.get("port", ""), stream.headers.get("streamtype", "")
        if not port.isdigit() or not 0 < int(port) <= 0xFFFF or kind not in ("error", "data"):
            return False
        request_id = stream.headers.get("requestid") or str(stream.id if kind == "error" else stream.id - 2)
        pair = self._pairs.setdefault(request_id, {})
        if kind in pair:
            return False
        pair[kind] = stream
        if len(pair) == 1:  # the other half must follow in time, as the kubelet demands
            self._deadlines[request_id] = asyncio.get_running_loop().call_later(
                self._pair_timeout, self._expire, request_id)
        else:
            del self._pairs[request_id]
            self._deadlines.pop(request_id).cancel()
            self._tasks.start(self._forward(int(pair["data"].headers["port"]), pair["data"], pair["error"]))
        return True

    def _expire(self, request_id: str) -> None:
        """Reset the half of a pair whose other half never came."""
        self._deadlines.pop(request_id, None)
        for stream in self._pairs.pop(request_id, {}).values():
            self._tasks.start(stream.send_reset())

    async def _forward(self, port: int, data: spdy.SpdyStream, error: spdy.SpdyStream) -> None:
        """Copy between the data stream and a loopback connection; failures go to the error stream."""

        async def send(chunk: bytes) -> bool:
            await data.write(chunk)
            return not data.reset

        async def report(message: str) -> None:
            await error.write(forward_error(port, self._pod, self._uid, message).encode())

        try:
            await forward_loopback(port, netns=self._netns, receive=data.read, send=send, report=report)
        finally:
            await data.close()
            await error.close()

    async def stop(self) -> None:
        for deadline in self._deadlines.values():
            deadline.cancel()
        await self._tasks.stop()


async def run_spdy_port_forward(transport: spdy.ByteTransport, pod: str, uid: str, netns: str | None = None) -> None:
    """Serve port-forward streams (to the pod's loopback, in ``netns``) until the client closes the connection."""
    forwarder = SpdyPortForwarder(pod, uid, netns=netns)
    session = spdy.SpdySession(transport, forwarder.accept)
    try:
        await session.run()
    finally:
        await forwarder.stop()
        await session.close()
