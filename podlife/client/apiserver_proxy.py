"""A client-side failover proxy for several API servers: one local address, whichever server is up behind it.

Why: kubectl and client-go take one server URL per cluster. With several API servers
on one etcd there is no virtual IP here to give them; k3s solves this on its agents with
a small load balancer on loopback that every local client points at. This is that: a
TCP proxy on ``127.0.0.1:PORT`` (``podlife apiserver-proxy``) in front of the API servers.

Design:

- **Pass-through.** Bytes are copied both ways; TLS is end to end between the client and
  the API server, so client certificates, tokens and the server's certificate work
  unchanged (every podlife API server's certificate, issued by the shared CA, names
  127.0.0.1, so the kubeconfig's ``server`` just becomes the proxy's address).
- **Sticky, in order.** A new connection goes to the first server that is up, in the
  order given (k3s' "default server" first), so one client's requests do not jump
  between servers whose watch caches may differ by a few milliseconds. When it cannot be
  reached the next is tried at once, within the same client connection attempt.
- **Health.** Every ``interval`` each server is probed with a TCP connect; one that fails
  is marked down and skipped by new connections until a probe succeeds again. When the
  server a connection was copied to dies, that connection ends, as it would without the
  proxy; the client's retry (kubectl's watch re-list, a new request) lands on the next
  server.

Watches: nothing. Writes: nothing -- it never reads the bytes it copies. Pure parts
(:func:`parse_backend`, :meth:`Backends.order`) are apart from the sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 2.0
BUFFER = 64 * 1024


def parse_backend(text: str, *, listening: bool = False) -> tuple[str, int]:
    """``https://host:port``, ``host:port`` (or ``[v6]:port``) -> (host, port); ValueError names what is wrong.
    ``listening``: an address to listen on, where port 0 means a free one."""
    value = text.strip()
    if "://" in value:
        parts = urlsplit(value)
        if parts.scheme != "https":
            raise ValueError(f"server {text!r}: the API is served over https")
        if parts.path not in ("", "/"):
            raise ValueError(f"server {text!r}: a path is not allowed")
        host, port = parts.hostname, parts.port or 443
    else:
        host_part, sep, port_text = value.rpartition(":")
        if not sep or not port_text.isdigit():
            raise ValueError(f"server {text!r} is not host:port or https://host:port")
        host, port = host_part.strip("[]"), int(port_text)
    if not host or not (0 if listening else 1) <= port < 65536:
        raise ValueError(f"server {text!r} is not host:port or https://host:port")
    return host, port


@dataclass
class Backend:
    host: str
    port: int
    up: bool = True
    #: when it was last seen down (monotonic), for the log
    down_since: float | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass
class Backends:
    """The servers in their given order, each marked up or down."""

    servers: list[Backend] = field(default_factory=list)

    def order(self) -> list[Backend]:
        """Whom a new connection tries: the servers that are up in order, then the down ones (they may be back)."""
        return [b for b in self.servers if b.up] + [b for b in self.servers if not b.up]

    def mark(self, backend: Backend, up: bool) -> None:
        if backend.up and not up:
            backend.down_since = time.monotonic()
            log.warning("API server %s is down; new connections go to the next", backend.address)
        elif not backend.up and up:
            log.info("API server %s is back (down %.1fs)", backend.address, time.monotonic() - (backend.down_since or 0))
            backend.down_since = None
        backend.up = up


async def _connect(backend: Backend) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection(backend.host, backend.port), CONNECT_TIMEOUT)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(BUFFER):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


class ApiServerProxy:
    """The proxy (see the module's design): :meth:`start` to listen, :meth:`stop` to end every connection."""

    def __init__(self, servers: list[tuple[str, int]], *, interval: float = 1.0) -> None:
        if not servers:
            raise ValueError("at least one API server is needed")
        self.backends = Backends([Backend(host, port) for host, port in servers])
        self.interval = interval
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._health: asyncio.Task[None] | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0: a free port); the port listened on."""
        self._server = await asyncio.start_server(self._accept, host, port)
        self._health = asyncio.ensure_future(self._probe_forever())
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._health is not None:
            self._health.cancel()
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, *([self._health] if self._health else []), return_exceptions=True)

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            upstream = await self._open_upstream()
            if upstream is None:
                log.warning("no API server reachable: connection from %s closed",
                            client_writer.get_extra_info("peername"))
                client_writer.close()
                return
            server_reader, server_writer = upstream
            await asyncio.gather(_pipe(client_reader, server_writer), _pipe(server_reader, client_writer))
        finally:
            self._tasks.discard(task)
            with contextlib.suppress(Exception):
                client_writer.close()

    async def _open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        for backend in self.backends.order():
            try:
                opened = await _connect(backend)
            except (OSError, TimeoutError):
                self.backends.mark(backend, False)
                continue
            self.backends.mark(backend, True)
            return opened
        return None

    async def _probe_forever(self) -> None:
        while True:
            await asyncio.gather(*(self._probe(backend) for backend in self.backends.servers))
            await asyncio.sleep(self.interval)

    async def _probe(self, backend: Backend) -> None:
        try:
            _, writer = await _connect(backend)
        except (OSError, TimeoutError):
            self.backends.mark(backend, False)
            return
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        self.backends.mark(backend, True)
