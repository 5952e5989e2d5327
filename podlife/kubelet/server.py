"""The kubelet's own HTTP endpoint: logs and streams for the API server to proxy.

``kubectl logs`` asks the API server for ``pods/{name}/log``; the API server
finds the pod's node, reads the kubelet's address from ``node.status.addresses``
and its port from ``node.status.daemonEndpoints.kubeletEndpoint.Port``, and
forwards the request here, as Kubernetes does:

``GET /containerLogs/{namespace}/{pod}/{container}``
    query: ``follow``, ``previous``, ``timestamps``, ``tailLines``,
    ``sinceSeconds``, ``sinceTime`` (RFC 3339), ``limitBytes``. The answer is
    ``text/plain``, streamed in chunks as :func:`~podlife.kubelet.logs.read_log`
    yields them, so ``follow`` goes on until the container exits or the client
    hangs up.
``GET|POST /exec/{namespace}/{pod}/{container}``
    ``?command=..&stdin=&stdout=&stderr=&tty=``: runs a command in the
    container's environment over a channel WebSocket, or over SPDY/3.1 for an
    ``Upgrade: SPDY/3.1`` request (:mod:`.streams`, :mod:`.spdy`).
``GET|POST /attach/{namespace}/{pod}/{container}``
    the container's output from now on, over the same protocols.
``GET|POST /portForward/{namespace}/{pod}``
    loopback connections: over a channel WebSocket (``?ports=..``), or over
    SPDY streams (ports per stream), plain or tunnelled in a WebSocket.
``GET /metrics/resource``
    the node's and its containers' CPU and memory as Prometheus text, the metrics
    metrics-server scrapes (:mod:`.resource_usage`; 404 when the server was built without).
``GET /metrics``
    the kubelet's own Prometheus metrics, text format (:mod:`.metrics`: pod startup
    latency, probes, evictions, running pods and containers); 404 when built without.
``GET /healthz``
    ``ok``; no authentication (it reveals nothing).

A stream request is checked completely (pod, container, options, subprotocol)
before anything else, and only then must it be an upgrade (WebSocket or SPDY):
a plain request that would have been valid gets 400 "Upgrade request
required". So the API server can learn why the kubelet refused a WebSocket
upgrade by asking again without one (a refused SPDY upgrade carries its
``Status`` itself, 403 for a protocol version we do not speak).

With TLS (what ``podlife up`` runs: the kubelet's serving certificate, signed by the
cluster CA), every other request needs a client certificate the CA signed naming one of
the trusted users -- the API server's ``kube-apiserver-kubelet-client``, as kubeadm
sets it up -- or ``Authorization: Bearer <token>`` with the token the server was built
with (tests and tools on this machine). Anyone else gets a 401, before any pod is named. Errors are
``Status`` objects worded like the kubelet's: 404 for a pod or container this
kubelet does not have, 400 for a container with no log yet.

The server does not know about pods: a *resolver* (the kubelet) turns
``(namespace, pod, container, previous)`` into a :class:`LogTarget` -- a file
and a way to tell whether its container still runs -- or raises
:class:`RequestRefused`; a :class:`StreamHost` (the kubelet again) finds
running containers and pods for the streams.
"""

from __future__ import annotations

import hmac
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import orjson

from ..machinery.constants import KUBELET_CLIENT_USER as KUBELET_CLIENT
from aiohttp import web

from ..machinery.query import InvalidBool, query_bool
from . import streams
from .logs import LogOptions, read_log
from .runtimes import ContainerLike, ContainerRuntime
from .spdy import WebSocketTransport
from .streams import RequestRefused
from ..machinery.upgrade import (
    SPDY_UPGRADE, UpgradedConnection, is_spdy_request, is_websocket_request, offered_protocols,
)

log = logging.getLogger(__name__)

#: How long ``stop()`` lets running requests (followers) finish.
SHUTDOWN_TIMEOUT_SECONDS = 1.0


@dataclass(frozen=True)
class LogTarget:
    """The log file of one container instance, and whether that instance still runs."""

    path: Path
    is_running: Callable[[], bool]


Resolver = Callable[[str, str, str, bool], LogTarget]
#: A stream's work once the WebSocket is open.
Session = Callable[[streams.ChannelConnection], Awaitable[None]]
#: A stream's work on the raw connection of a SPDY upgrade.
SpdySession = Callable[[UpgradedConnection], Awaitable[None]]
#: Answers a checked stream request (the upgrade, then the session).
Serve = Callable[[], Awaitable[web.StreamResponse]]


class StreamHost(Protocol):
    """What the stream endpoints need from the kubelet; lookups raise :class:`RequestRefused`."""

    @property
    def runtime(self) -> ContainerRuntime: ...

    def running_container(self, namespace: str, pod: str, container: str) -> ContainerLike: ...

    def pod_uid(self, namespace: str, pod: str) -> str: ...

    def pod_network_namespace(self, namespace: str, pod: str) -> str | None: ...


def status_response(code: int, reason: str, message: str) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}
    return web.Response(status=code, body=orjson.dumps(body), content_type="application/json")


def _flag(query: Mapping[str, str], name: str) -> bool:
    """A boolean parameter, read as Go's ``strconv.ParseBool`` (absent is false)."""
    try:
        return query_bool(query, name)
    except InvalidBool as exc:
        raise RequestRefused.bad_request(str(exc)) from None


def _integer(query: dict[str, str], name: str) -> int | None:
    value = query.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise RequestRefused.bad_request(f'invalid value for {name}: "{value}"') from None


def parse_log_options(query: dict[str, str]) -> LogOptions:
    """``PodLogOptions`` from a query string; :class:`RequestRefused` (400) when malformed."""
    since_time = None
    if raw := query.get("sinceTime"):
        try:
            since_time = datetime.fromisoformat(raw)
        except ValueError:
            raise RequestRefused.bad_request(f'invalid value for sinceTime: "{raw}"') from None
    opts = LogOptions(
        follow=_flag(query, "follow"),
        previous=_flag(query, "previous"),
        timestamps=_flag(query, "timestamps"),
        tail_lines=_integer(query, "tailLines"),
        since_seconds=_integer(query, "sinceSeconds"),
        since_time=since_time,
        limit_bytes=_integer(query, "limitBytes"),
    )
    if opts.since_seconds is not None and opts.since_time is not None:
        raise RequestRefused.bad_request("at most one of `sinceTime` or `sinceSeconds` may be specified")
    return opts


class KubeletServer:
    """An aiohttp server on ``address`` and a free port, serving logs, streams and health."""

    def __init__(self, resolve: Resolver, *, token: str, address: str = "127.0.0.1", port: int = 0,
                 streams: StreamHost | None = None, ssl_context: ssl.SSLContext | None = None,
                 trusted_clients: frozenset[str] = frozenset({KUBELET_CLIENT}),
                 resource_metrics: Callable[[], Awaitable[bytes]] | None = None,
                 metrics: Callable[[], bytes] | None = None) -> None:
        self._resolve = resolve
        self._resource_metrics = resource_metrics
        self._metrics = metrics
        self._streams = streams
        self._token = token
        self._ssl = ssl_context
        self._trusted = trusted_clients
        self.address = address
        self._wanted_port = port
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{'https' if self._ssl else 'http'}://{host}:{self.port}"

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._authenticate])
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics/resource", self._metrics_resource)
        app.router.add_get("/metrics", self._metrics_text)
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._container_logs)
        for method in ("GET", "POST"):
            app.router.add_route(method, "/exec/{namespace}/{pod}/{container}", self._exec)
            app.router.add_route(method, "/attach/{namespace}/{pod}/{container}", self._attach)
            app.router.add_route(method, "/portForward/{namespace}/{pod}", self._port_forward)
        return app

    async def start(self) -> int:
        """Listen; returns the port (chosen by the kernel when 0 was asked for)."""
        family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.address, self._wanted_port))
        self.port = sock.getsockname()[1]
        runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS)
        await runner.setup()
        await web.SockSite(runner, sock, ssl_context=self._ssl).start()
        self._runner = runner
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        if request.path == "/healthz" or self._trusted_certificate(request):
            return await handler(request)
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self._token.encode()):
            return status_response(401, "Unauthorized", "Unauthorized")
        return await handler(request)

    def _trusted_certificate(self, request: web.Request) -> bool:
        """Whether TLS verified a client certificate (against the CA) naming a trusted user."""
        transport = request.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        if ssl_object is None:
            return False
        cert = ssl_object.getpeercert()  # only a verified certificate is returned
        if not cert:
            return False
        names = {value for rdn in cert.get("subject", ()) for key, value in rdn if key == "commonName"}
        return bool(names & self._trusted)

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _metrics_resource(self, request: web.Request) -> web.Response:
        if self._resource_metrics is None:
            return status_response(404, "NotFound", "this kubelet serves no resource metrics")
        body = await self._resource_metrics()
        return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    async def _metrics_text(self, request: web.Request) -> web.Response:
        if self._metrics is None:
            return status_response(404, "NotFound", "this kubelet serves no metrics")
        return web.Response(body=self._metrics(), headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    async def _container_logs(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        try:
            opts = parse_log_options(dict(request.query))
            target = self._resolve(info["namespace"], info["pod"], info["container"], opts.previous)
        except RequestRefused as exc:
            return status_response(exc.code, exc.reason, exc.message)
        if not target.path.exists():
            return status_response(404, "NotFound", f'log of container "{info["container"]}" in pod "{info["pod"]}" not found')
        response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            async for chunk in read_log(target.path, opts, target.is_running if opts.follow else None):
                await response.write(chunk)
        except FileNotFoundError:
            pass  # removed with its pod while we read: the log simply ends
        except (ConnectionResetError, ConnectionError):
            return response  # the client went away
        await response.write_eof()
        return response

    # ------------------------------------------------------------------ streams

    def _host(self) -> StreamHost:
        if self._streams is None:
            raise RequestRefused(404, "NotFound", "this kubelet serves no streams")
        return self._streams

    async def _exec(self, request: web.Request) -> web.StreamResponse:
        return await self._stream(request, self._start_exec)

    async def _attach(self, request: web.Request) -> web.StreamResponse:
        return await self._stream(request, self._start_attach)

    async def _port_forward(self, request: web.Request) -> web.StreamResponse:
        return await self._stream(request, self._start_port_forward)

    async def _stream(self, request: web.Request, prepare: Callable[[web.Request], Serve]) -> web.StreamResponse:
        """Check the request, answer a refusal as a ``Status``, else upgrade and run the session."""
        try:
            serve = prepare(request)
        except RequestRefused as exc:
            return status_response(exc.code, exc.reason, exc.message)
        return await serve()

    def _websocket(self, request: web.Request, protocol: streams.ChannelProtocol, session: Session) -> Serve:
        """Serve ``session`` over a channel WebSocket, once the request is one (else 400)."""
        if not is_websocket_request(request):
            raise RequestRefused.bad_request("Upgrade request required")

        async def serve() -> web.StreamResponse:
            conn = await streams.ChannelConnection.accept(request, protocol)
            await _run_session(session, conn, f"stream {request.path}")
            return conn.ws

        return serve

    def _spdy(self, request: web.Request, protocol: streams.ChannelProtocol, session: SpdySession) -> Serve:
        """Serve ``session`` on the raw connection of an ``Upgrade: SPDY/3.1`` request."""
        headers = {"Upgrade": SPDY_UPGRADE}
        if protocol.name:
            headers["X-Stream-Protocol-Version"] = protocol.name

        async def serve() -> web.StreamResponse:
            conn = await UpgradedConnection.accept(request, headers)
            await _run_session(session, conn, f"SPDY stream {request.path}")
            return conn.response

        return serve

    def _start_exec(self, request: web.Request) -> Serve:
        return self._start_container_stream(request, needs_command=True)

    def _start_attach(self, request: web.Request) -> Serve:
        return self._start_container_stream(request, needs_command=False)

    def _start_container_stream(self, request: web.Request, *, needs_command: bool) -> Serve:
        host, info = self._host(), request.match_info
        handle = host.running_container(info["namespace"], info["pod"], info["container"])
        spdy = is_spdy_request(request)
        protocol = (streams.negotiate_spdy(request.headers, streams.SPDY_EXEC_PROTOCOLS) if spdy else
                    streams.negotiate(offered_protocols(request.headers), streams.EXEC_PROTOCOLS))
        opts = streams.stream_options(request.query, needs_command=needs_command)

        def run(conn: streams.StreamConnection) -> Awaitable[None]:
            if needs_command:
                return streams.run_exec(conn, host.runtime, handle, opts)
            return streams.run_attach(conn, handle, opts, host.runtime)

        if spdy:
            return self._spdy(request, protocol, lambda conn: streams.run_spdy_container_stream(conn, protocol, opts, run))
        return self._websocket(request, protocol, run)

    def _start_port_forward(self, request: web.Request) -> Serve:
        host, info = self._host(), request.match_info
        pod, uid = info["pod"], host.pod_uid(info["namespace"], info["pod"])
        netns = host.pod_network_namespace(info["namespace"], pod)
        if is_spdy_request(request):
            protocol = streams.negotiate_spdy(request.headers, streams.SPDY_PORT_FORWARD_PROTOCOLS)
            return self._spdy(request, protocol, lambda conn: streams.run_spdy_port_forward(conn, pod, uid, netns))
        protocol = streams.negotiate(offered_protocols(request.headers), streams.PORT_FORWARD_PROTOCOLS)
        if protocol.tunnels_spdy:  # SPDY inside the WebSocket: the ports come per stream
            return self._websocket(request, protocol, lambda conn: streams.run_spdy_port_forward(
                WebSocketTransport(conn.ws), pod, uid, netns))
        # As in Kubernetes, the ports are in the query only for WebSockets (SPDY sends them per
        # stream); a plain request offering subprotocols is the API server asking why we refused one.
        websocket = is_websocket_request(request) or "Sec-WebSocket-Protocol" in request.headers
        ports = streams.port_list(request.query) if websocket else []
        return self._websocket(request, protocol, lambda conn: streams.run_port_forward(conn, ports, pod, uid, netns))


async def _run_session(session: Any, conn: Any, what: str) -> None:
    """Run one stream session to its end; its failure is logged, and the connection always closed."""
    try:
        await session(conn)
    except Exception:
        log.exception("%s failed", what)
    finally:
        await conn.close()
