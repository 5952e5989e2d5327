"""HTTP connection upgrades on an aiohttp server: telling WebSocket and SPDY requests apart, and a raw ``101``.

Design
------
``kubectl`` older than 1.31 (port-forward) and older than 1.30 (exec, attach)
ask for ``Connection: Upgrade`` / ``Upgrade: SPDY/3.1`` and, once answered
101, speak SPDY on the bare socket. aiohttp only upgrades to WebSocket
(its HTTP parser treats any other ``Upgrade`` as an ordinary request), so
this module takes the socket over the way aiohttp's own WebSocket response
does: before the 101 is written, the protocol's payload parser is replaced
by :class:`_Inbox`, which receives every later byte, and keep-alive is
switched off so that the connection ends with the handler. The client sends
nothing before it has read the 101, so no byte can reach the HTTP parser.

:class:`UpgradedConnection` is the result: ``read``/``write``/``close`` on
the raw bytes (TLS included: the API server's socket is HTTPS). Writes go
through the response's writer, which waits for the socket to drain; reads
pause the socket while more than :data:`READ_BUFFER_LIMIT` bytes wait unread,
so a slow consumer holds the client back instead of filling memory.

Both ends use it: the kubelet, which speaks SPDY (:mod:`podlife.kubelet.spdy`), and
the API server, which only relays the bytes to the kubelet (:mod:`podlife.api.streaming`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

from aiohttp import web
from multidict import MultiMapping

#: Unread bytes above which the socket stops being read.
READ_BUFFER_LIMIT = 1024 * 1024
#: The ``Upgrade`` token of SPDY/3.1.
SPDY_UPGRADE = "SPDY/3.1"


def offered_protocols(headers: MultiMapping[str]) -> list[str]:
    """The WebSocket subprotocols a client offers, in its order of preference."""
    values = headers.getall("Sec-WebSocket-Protocol", [])
    return [p.strip() for value in values for p in value.split(",") if p.strip()]


def is_websocket_request(request: web.BaseRequest) -> bool:
    """``Upgrade: websocket`` with ``Connection: upgrade``, as wsstream checks it."""
    tokens = {t.strip().lower() for t in request.headers.get("Connection", "").split(",")}
    return request.headers.get("Upgrade", "").lower() == "websocket" and "upgrade" in tokens


def upgrade_token(headers: MultiMapping[str]) -> str | None:
    """The ``Upgrade`` value of an upgrade request (``Connection`` naming ``upgrade``), else None."""
    tokens = {t.strip().lower() for value in headers.getall("Connection", []) for t in value.split(",")}
    value = headers.get("Upgrade", "").strip()
    return value if value and "upgrade" in tokens else None


def is_spdy_request(request: web.BaseRequest) -> bool:
    """A request to upgrade to SPDY/3.1, as Kubernetes' ``httpstream.IsUpgradeRequest`` checks it."""
    token = upgrade_token(request.headers)
    return token is not None and token.lower() == SPDY_UPGRADE.lower()


class _Inbox:
    """Bytes the client sent after the upgrade; the parser aiohttp feeds them to."""

    def __init__(self, transport: asyncio.BaseTransport | None) -> None:
        self._transport = transport
        self._buffer = bytearray()
        self._eof = False
        self._wakeup = asyncio.Event()
        self._paused = False

    # aiohttp's payload parser interface
    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self._buffer += data
        self._wakeup.set()
        if len(self._buffer) > READ_BUFFER_LIMIT and not self._paused and isinstance(self._transport, asyncio.ReadTransport):
            self._paused = True
            self._transport.pause_reading()
        return False, b""

    def feed_eof(self) -> None:
        self._eof = True
        self._wakeup.set()

    async def read(self) -> bytes:
        """What has arrived (waiting for something); ``b""`` at the end."""
        while not self._buffer and not self._eof:
            self._wakeup.clear()
            await self._wakeup.wait()
        data, self._buffer = bytes(self._buffer), bytearray()
        if self._paused and isinstance(self._transport, asyncio.ReadTransport) and not self._transport.is_closing():
            self._paused = False
            self._transport.resume_reading()
        return data


class UpgradedConnection:
    """The socket of an answered upgrade request: raw bytes both ways."""

    def __init__(self, response: web.StreamResponse, inbox: _Inbox, transport: asyncio.BaseTransport | None) -> None:
        self.response = response
        self._inbox = inbox
        self._transport = transport
        self._closed = False

    @classmethod
    async def accept(cls, request: web.Request, headers: Mapping[str, str]) -> UpgradedConnection:
        """Answer ``101 Switching Protocols`` with ``headers`` and take the socket over."""
        protocol, transport = request.protocol, request.transport
        inbox = _Inbox(transport)
        protocol.set_parser(inbox)  # type: ignore[arg-type]  # duck-typed, as aiohttp's WebSocket reader
        protocol.keep_alive(False)
        response = web.StreamResponse(status=101, headers={"Connection": "Upgrade", **headers})
        await response.prepare(request)
        return cls(response, inbox, transport)

    @property
    def closed(self) -> bool:
        return self._closed or self._transport is None or self._transport.is_closing()

    async def read(self) -> bytes:
        return await self._inbox.read()

    async def write(self, data: bytes) -> None:
        """Send ``data``; raises ConnectionError once the client has gone."""
        if self.closed:
            raise ConnectionResetError("connection closed")
        await self.response.write(data)

    async def close(self) -> None:
        """Flush and close the socket (the handler returning then ends the request)."""
        if self._closed:
            return
        self._closed = True
        if self._transport is not None and not self._transport.is_closing():
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.response.write_eof()
            self._transport.close()
