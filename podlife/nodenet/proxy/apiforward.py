"""The ``kubernetes`` Service's answer in a node namespace: a TCP forwarder to the API server.

Design
------
Pods reach the API at ``https://10.96.0.1:443`` (the ``kubernetes`` Service), but the
API server listens on the host's loopback, which no pod namespace can reach, and
network safety forbids routing pod traffic into the host namespace. So each node
namespace holds 10.96.0.1 on its ``podlife0`` dummy, the service proxy leaves local
destinations alone, and this forwarder answers there: its listening socket is created
*inside* the node namespace (:func:`podlife.machinery.netns.socket_in`), and each accepted connection
is piped to a fresh connection to the upstream made from the podlife process's own
(host) namespace. Bytes pass through untouched, TLS included: the client verifies the
API server's own certificate (whose SANs carry 10.96.0.1, as Kubernetes' do).

The listening socket sets ``IP_FREEBIND`` so that it can bind before the address is on
the dummy. Each direction is copied until EOF, which is passed on as a half-close, so
request/response protocols that shut down their sending side keep working.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

from ...machinery.netns import socket_in

log = logging.getLogger(__name__)

IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)
DEFAULT_LISTEN = ("10.96.0.1", 443)
CHUNK = 65536


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Bytes from ``reader`` to ``writer`` until EOF, then half-close ``writer``."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


def _close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.close()


class ApiForwarder:
    def __init__(self, netns: str, listen: tuple[str, int] = DEFAULT_LISTEN,
                 upstream: tuple[str, int] = ("127.0.0.1", 6443), *, backlog: int = 128) -> None:
        self.netns = netns
        self.listen = listen
        self.upstream = upstream
        self.backlog = backlog
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()

    def _listening_socket(self) -> socket.socket:
        sock = socket_in(self.netns, socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
            sock.bind(self.listen)
            sock.listen(self.backlog)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    async def start(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._accepted, sock=self._listening_socket())
        log.info("api forwarder: %s:%d in %s -> %s:%d", *self.listen, self.netns, *self.upstream)

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            await self._forward(reader, writer)
        finally:
            self._conns.discard(task)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)  # the host's namespace
        except OSError as exc:
            log.warning("api forwarder: upstream %s:%d unreachable: %s", *self.upstream, exc)
            _close(writer)
            return
        try:
            await asyncio.gather(_copy(reader, up_writer), _copy(up_reader, writer))
        finally:
            _close(up_writer)
            _close(writer)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._conns):
            task.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)
        with contextlib.suppress(Exception):
            await server.wait_closed()


__all__ = ["ApiForwarder"]
