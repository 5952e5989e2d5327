"""Cluster DNS: one zone kept from the API, served on ``10.96.0.10:53`` inside every node namespace.

Design
------
What it watches: Services, EndpointSlices and Pods, through the client's informers
(:class:`~podlife.client.informer.Informer`). Their handlers only feed the
:class:`~podlife.nodenet.dns.records.Zone`'s indexes and mark the Services whose records
may have changed; :meth:`ClusterDNS.run` recomputes those on the next turn of the loop (so
a burst of pod events costs one recomputation per Service, and nothing heavy runs inside
the API's commit when the client is in-process). Queries are answered from memory: no API
call per query.

What it writes: nothing to the API. It answers DNS over UDP and TCP.

Where it listens: pods send their queries to the ``--cluster-dns`` address (10.96.0.10 by
default), which each node namespace holds on its dummy interface ``podlife0``
(:data:`~podlife.nodenet.names.SERVICE_DUMMY`). :meth:`ClusterDNS.add_namespace` makes a
UDP and a TCP socket *inside* that namespace (the calling thread enters it for the one
``socket()`` call and comes straight back: :func:`podlife.machinery.netns.socket_in`),
binds them with ``IP_FREEBIND`` (so the address need not be there yet) and serves them from
the main thread's event loop. One zone, any number of listeners.

Wire rules: UDP replies are cut to 512 bytes, or to the EDNS0 payload size the query
advertises, by sending the header and question alone with TC set (the client retries over
TCP); TCP messages carry the usual two-byte length prefix and a connection may carry many.
Until the informers have synced, names in the zone get SERVFAIL (a client retries) rather
than a wrong NXDOMAIN.

Names outside the cluster domain: network safety forbids sending packets from the host
namespace to any non-loopback address, so the host's upstream resolvers are used only if
``/etc/resolv.conf`` names loopback ones (systemd-resolved's 127.0.0.53, a local
dnsmasq); the query is then relayed as is, from the host namespace, to the first that
answers (SERVFAIL when none does). Otherwise such queries are REFUSED: a pod resolving an
internet name gets a fast, clear failure instead of a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dnslib import EDNS0, QTYPE, RCODE, DNSError, DNSRecord

from ...client.base import PODS, SERVICES, Client, Obj, Resource
from ...client.informer import Informer
from ...machinery.netns import socket_in
from .records import DEFAULT_TTL, Zone, answer, normalize, refuse

__all__ = ["ENDPOINT_SLICES", "ClusterDNS", "loopback_upstreams", "wire_reply"]

log = logging.getLogger(__name__)

ENDPOINT_SLICES = Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice")
#: linux/in.h: bind to an address the namespace does not (yet) have
IP_FREEBIND = 15
#: the classic UDP payload limit, when the query carries no EDNS0 record
UDP_LIMIT = 512
#: the largest UDP payload we ever send or advertise
EDNS_LIMIT = 4096
UPSTREAM_TIMEOUT = 2.0
TCP_IDLE_TIMEOUT = 10.0


# -- pure helpers ------------------------------------------------------------------------------------------------

def loopback_upstreams(resolv_conf_text: str) -> list[tuple[str, int]]:
    """The loopback nameservers of a resolv.conf (the only upstreams network safety allows)."""
    out = []
    for line in resolv_conf_text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            try:
                if ipaddress.ip_address(parts[1].split("%")[0]).is_loopback:
                    out.append((parts[1], 53))
            except ValueError:
                continue
    return out


def _udp_limit(request: DNSRecord) -> tuple[int, bool]:
    """(the reply size the client accepts over UDP, whether it spoke EDNS0)."""
    for rr in request.ar:
        if rr.rtype == QTYPE.OPT:
            return max(UDP_LIMIT, min(int(rr.rclass), EDNS_LIMIT)), True
    return UDP_LIMIT, False


def wire_reply(reply: DNSRecord, request: DNSRecord, *, tcp: bool) -> bytes:
    """``reply`` as bytes for the transport: EDNS0 echoed, truncated with TC for UDP when too large."""
    limit, edns = _udp_limit(request)
    if edns:
        reply.add_ar(EDNS0(udp_len=EDNS_LIMIT))
    wire = bytes(reply.pack())  # dnslib packs to a bytearray
    if tcp or len(wire) <= limit:
        return wire
    cut = reply.truncate()
    cut.add_question(*reply.questions)
    if edns:
        cut.add_ar(EDNS0(udp_len=EDNS_LIMIT))
    return bytes(cut.pack())


def _parse(data: bytes) -> DNSRecord | None:
    try:
        return DNSRecord.parse(data)
    except (DNSError, struct.error, IndexError, ValueError, UnicodeDecodeError):
        return None


def _formerr(data: bytes) -> bytes | None:
    """A FORMERR for an unparsable message whose header at least names an id (else nothing to say)."""
    if len(data) < 2:
        return None
    ident = struct.unpack("!H", data[:2])[0]
    # id, flags (QR set, RCODE 1), and four zero counts
    return struct.pack("!HHHHHH", ident, 0x8001, 0, 0, 0, 0)


def _bound_socket(netns: str, listen: tuple[str, int], kind: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in listen[0] else socket.AF_INET
    sock = socket_in(netns, family, kind)
    try:
        sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(listen)
        if kind == socket.SOCK_STREAM:
            sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


# -- the server ---------------------------------------------------------------------------------------------------

@dataclass
class _Listener:
    udp: asyncio.DatagramTransport
    tcp: asyncio.Server


class _UDP(asyncio.DatagramProtocol):
    def __init__(self, dns: ClusterDNS) -> None:
        self.dns = dns
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        out = self.dns.respond_now(data, tcp=False)
        if isinstance(out, (bytes, bytearray)):
            if self.transport is not None:
                self.transport.sendto(out, addr)
        elif out is not None:
            self.dns.spawn(self._relay(out, addr))

    async def _relay(self, pending: _Forward, addr: Any) -> None:
        wire = await self.dns.forward(pending)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(wire, addr)


@dataclass
class _Forward:
    """A query for a name outside the zone, to relay upstream."""

    data: bytes
    request: DNSRecord
    tcp: bool


class ClusterDNS:
    """The cluster's DNS server: informers feeding one :class:`Zone`, listeners in node namespaces.

    ``upstreams``: where names outside the domain go (loopback addresses only); None reads the
    host's ``/etc/resolv.conf`` (see the module docstring), ``[]`` refuses them all.
    """

    def __init__(self, client: Client, *, domain: str = "cluster.local", listen: tuple[str, int] = ("10.96.0.10", 53),
                 upstreams: Sequence[tuple[str, int]] | None = None, ttl: int = DEFAULT_TTL,
                 resolv_conf: Path = Path("/etc/resolv.conf")) -> None:
        self.client = client
        self.listen = listen
        self.zone = Zone(domain=domain, ttl=ttl)
        if upstreams is None:
            try:
                upstreams = loopback_upstreams(resolv_conf.read_text())
            except OSError:
                upstreams = []
        self.upstreams = [u for u in upstreams if ipaddress.ip_address(u[0].split("%")[0]).is_loopback]
        #: queries, answered, nxdomain, nodata, refused, forwarded, servfail, truncated, formerr
        self.stats: Counter[str] = Counter()
        self.services = Informer(client, SERVICES)
        self.slices = Informer(client, ENDPOINT_SLICES)
        self.pods = Informer(client, PODS)
        self.services.add_handlers(self._service_set, lambda _old, new: self._service_set(new), self._service_deleted)
        self.slices.add_handlers(self._slice_set, self._slice_updated, self._slice_deleted)
        self.pods.add_handlers(self._pod_set, lambda _old, new: self._pod_set(new), self._pod_deleted)
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._synced = asyncio.Event()
        self._listeners: dict[str, _Listener] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- informer handlers: index, mark, wake ---------------------------------------------------------------

    def _mark(self, keys: Iterable[str]) -> None:
        self._dirty.update(keys)
        if self._dirty:
            self._wake.set()

    def _service_set(self, svc: Obj) -> None:
        self._mark([self.zone.set_service(svc)])

    def _service_deleted(self, svc: Obj) -> None:
        self._mark([self.zone.delete_service(svc)])

    def _slice_set(self, sl: Obj) -> None:
        self._mark(self.zone.set_slice(sl))

    def _slice_updated(self, old: Obj, new: Obj) -> None:
        self._mark(self.zone.set_slice(new, old))

    def _slice_deleted(self, sl: Obj) -> None:
        self._mark(self.zone.delete_slice(sl))

    def _pod_set(self, pod: Obj) -> None:
        self._mark(self.zone.set_pod(pod))

    def _pod_deleted(self, pod: Obj) -> None:
        self._mark(self.zone.delete_pod(pod))

    # -- lifecycle ------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Watch the API and keep the zone current until cancelled; then stop serving everywhere."""
        informers = (self.services, self.slices, self.pods)
        tasks = [asyncio.create_task(inf.run(), name=f"cluster-dns-{inf.res.plural}") for inf in informers]
        try:
            await asyncio.gather(*(inf.wait_synced() for inf in informers))
            self._flush()
            self._synced.set()
            log.info("cluster DNS: synced (%d services, %d names)", len(self.zone.services), len(self.zone.names))
            while True:
                await self._wake.wait()
                self._flush()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.close()

    def _flush(self) -> None:
        self._wake.clear()
        dirty, self._dirty = self._dirty, set()
        self.zone.refresh(dirty)

    async def wait_synced(self) -> None:
        await self._synced.wait()

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    async def add_namespace(self, netns_path: str) -> None:
        """Serve UDP and TCP on the listen address inside the network namespace at ``netns_path``."""
        if netns_path in self._listeners:
            return
        loop = asyncio.get_running_loop()
        udp_sock = _bound_socket(netns_path, self.listen, socket.SOCK_DGRAM)
        try:
            tcp_sock = _bound_socket(netns_path, self.listen, socket.SOCK_STREAM)
        except BaseException:
            udp_sock.close()
            raise
        try:
            transport, _ = await loop.create_datagram_endpoint(lambda: _UDP(self), sock=udp_sock)
        except BaseException:
            udp_sock.close()
            tcp_sock.close()
            raise
        try:
            server = await asyncio.start_server(self._serve_tcp, sock=tcp_sock)
        except BaseException:
            transport.close()
            tcp_sock.close()
            raise
        self._listeners[netns_path] = _Listener(transport, server)
        log.info("cluster DNS: serving %s:%d in %s", self.listen[0], self.listen[1], netns_path)

    async def remove_namespace(self, netns_path: str) -> None:
        """Stop serving in that namespace (nothing happens if it was not served)."""
        listener = self._listeners.pop(netns_path, None)
        if listener is None:
            return
        listener.udp.close()
        listener.tcp.close()
        with contextlib.suppress(Exception):
            await listener.tcp.wait_closed()

    @property
    def namespaces(self) -> list[str]:
        return list(self._listeners)

    async def close(self) -> None:
        """Stop serving everywhere (also what the end of :meth:`run` does)."""
        for path in list(self._listeners):
            await self.remove_namespace(path)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- answering ------------------------------------------------------------------------------------------

    def respond_now(self, data: bytes, *, tcp: bool) -> bytes | _Forward | None:
        """The reply to one message, or what to forward upstream (None: nothing to send back)."""
        self.stats["queries"] += 1
        request = _parse(data)
        if request is None or request.header.qr:
            self.stats["formerr"] += 1
            return _formerr(data) if request is None else None
        if len(request.questions) == 1:
            qname = normalize(request.q.qname)
            if not self.zone.owns(qname):
                if self.upstreams and request.header.opcode == 0:
                    return _Forward(data, request, tcp)
                self.stats["refused"] += 1
                return wire_reply(refuse(request), request, tcp=tcp)
            if not self.synced:
                self.stats["servfail"] += 1
                return wire_reply(refuse(request, RCODE.SERVFAIL), request, tcp=tcp)
        reply = answer(self.zone, request)
        self._count(reply)
        wire = wire_reply(reply, request, tcp=tcp)
        if not tcp and wire[2] & 0x02:  # the TC bit: it did not fit
            self.stats["truncated"] += 1
        return wire

    def _count(self, reply: DNSRecord) -> None:
        rcode = reply.header.rcode
        if rcode == RCODE.NXDOMAIN:
            self.stats["nxdomain"] += 1
        elif rcode == RCODE.NOERROR:
            self.stats["answered" if reply.rr else "nodata"] += 1
        else:
            self.stats[RCODE.get(rcode).lower()] += 1

    async def forward(self, pending: _Forward) -> bytes:
        """Relay a query upstream (loopback only, from the host namespace); SERVFAIL when none answers."""
        self.stats["forwarded"] += 1
        for host, port in self.upstreams:
            if not ipaddress.ip_address(host.split("%")[0]).is_loopback:  # network safety, checked again at use
                continue
            try:
                if pending.tcp:
                    return await asyncio.wait_for(_ask_tcp(host, port, pending.data), UPSTREAM_TIMEOUT)
                return await asyncio.wait_for(_ask_udp(host, port, pending.data), UPSTREAM_TIMEOUT)
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as exc:
                log.debug("cluster DNS: upstream %s:%d failed: %s", host, port, exc)
        self.stats["servfail"] += 1
        return wire_reply(refuse(pending.request, RCODE.SERVFAIL), pending.request, tcp=pending.tcp)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_TIMEOUT)
                    data = await asyncio.wait_for(reader.readexactly(struct.unpack("!H", head)[0]), TCP_IDLE_TIMEOUT)
                except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
                    return
                out = self.respond_now(data, tcp=True)
                if isinstance(out, _Forward):
                    out = await self.forward(out)
                if out is None:
                    continue
                writer.write(struct.pack("!H", len(out)) + out)
                await writer.drain()
        except ConnectionError:
            return
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


class _OneShot(asyncio.DatagramProtocol):
    def __init__(self, done: asyncio.Future[bytes]) -> None:
        self.done = done

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.done.done():
            self.done.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(exc)


async def _ask_udp(host: str, port: int, data: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bytes] = loop.create_future()
    transport, _ = await loop.create_datagram_endpoint(lambda: _OneShot(done), remote_addr=(host, port))
    try:
        transport.sendto(data)
        return await done
    finally:
        transport.close()


async def _ask_tcp(host: str, port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(struct.pack("!H", len(data)) + data)
        await writer.drain()
        size = struct.unpack("!H", await reader.readexactly(2))[0]
        return await reader.readexactly(size)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
