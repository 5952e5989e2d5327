"""``pods/exec``, ``pods/attach`` and ``pods/portforward``: proxied to the kubelet of the pod's node.

Design
------
As in Kubernetes, the API server runs nothing itself. It checks what only it
can check -- the pod exists, the container is one of the pod's, the pod is on
a node and not finished, the node has a kubelet endpoint -- and then connects
to that kubelet (``status.addresses`` InternalIP and
``status.daemonEndpoints.kubeletEndpoint.Port`` of the Node, with the
kubelet bearer token):

``/exec/{ns}/{pod}/{container}``, ``/attach/{ns}/{pod}/{container}``, ``/portForward/{ns}/{pod}``

with the client's query (minus ``container``) and the client's offered
WebSocket subprotocols. Once the kubelet has answered 101, the client is
answered 101 with the subprotocol the kubelet chose, and from then on every
message is relayed unchanged in both directions: the channel protocol
(:mod:`podlife.kubelet.streams`) is spoken end to end by the client and the
kubelet, so a new protocol version needs no change here. When either side
closes, the other is closed; the kubelet always sends its final status before
it closes, so the client gets it.

Why errors go this way: a WebSocket handshake answer carries no body that an
aiohttp client keeps, and kubectl 1.32 shows the ``Status`` of a refused
upgrade (before retrying over SPDY, which gets the same refusal). So when the
kubelet refuses the upgrade, the same request is sent once more without the
upgrade and its ``Status`` (for example 400 ``container not found ("c")``) is
passed on. A request that is not an upgrade at all (kubectl's SPDY fallback,
a curl) is forwarded the same way, and the kubelet answers it with 400
"Upgrade request required" once everything else is right.

SPDY (``Upgrade: SPDY/3.1``, from kubectl 1.30's port-forward and from
kubectl 1.29 and older's exec and attach) is relayed as bytes, as Kubernetes'
upgrade-aware proxy does: the same upgrade is asked of the kubelet over a
plain connection (our token, the client's ``X-Stream-Protocol-Version``
offer), its 101 and chosen version are passed to the client, and from then
on the socket's bytes are copied both ways; a refusal is passed on with its
status and body. SPDY tunnelled in a WebSocket (kubectl 1.31+ port-forward)
needs nothing of its own: it is a WebSocket with one more subprotocol.

A simulated node has no kubelet endpoint: such requests get a 400 that says
so. Port-forwarding never reaches a pod IP: the kubelet dials loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
from aiohttp import WSMsgType, web
from multidict import MultiDict

from .keys import KUBELET_SESSION, KUBELET_TLS, KUBELET_TOKEN
from .kubelets import kubelet_base_url, kubelet_scheme
from ..machinery.upgrade import (
    SPDY_UPGRADE, UpgradedConnection, is_spdy_request, is_websocket_request, offered_protocols,
)
from ..machinery import errors
from .handlers import Target

#: The kubelet path of each subresource.
KUBELET_PATHS = {"exec": "exec", "attach": "attach", "portforward": "portForward"}
#: How long connecting to a kubelet may take.
CONNECT_TIMEOUT_SECONDS = 5.0
#: Bound for the plain (non-upgrade) request that asks a kubelet why it refused.
PLAIN_REQUEST_TIMEOUT_SECONDS = 30.0

_Socket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse


async def serve_stream(request: web.Request, target: Target) -> web.StreamResponse:
    """The handler of all three subresources (``subresource_handlers``)."""
    if request.method not in ("GET", "POST"):
        raise errors.method_not_allowed()
    assert target.name is not None and target.subresource in KUBELET_PATHS
    pod = target.rest.get(target.namespace, target.name).obj
    url = _kubelet_url(target.rest.ctx, pod, target.subresource, request.query.get("container"),
                       kubelet_scheme(request))
    params = MultiDict((k, v) for k, v in request.query.items() if k != "container")
    if is_spdy_request(request):
        return await _proxy_spdy(request, url, params)
    if not is_websocket_request(request):
        return await _ask_plainly(request, url, params)
    return await _proxy_websocket(request, url, params)


# --------------------------------------------------------------------------- where to


def pick_container(pod: dict[str, Any], requested: str | None) -> str:
    """The container a stream is for, checked as Kubernetes' ``streamLocation`` checks it."""
    spec, name = pod.get("spec") or {}, pod["metadata"]["name"]
    names = [c.get("name") for c in spec.get("containers") or []]
    others = [c.get("name") for key in ("initContainers", "ephemeralContainers") for c in spec.get(key) or []]
    if requested:
        if requested not in names + others:
            raise errors.bad_request(f"container {requested} is not valid for pod {name}")
        return requested
    if len(names) == 1:
        return names[0]
    init = [c.get("name") for c in spec.get("initContainers") or []]
    raise errors.bad_request(f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]"
                             + (f" or one of the init containers: [{' '.join(init)}]" if init else ""))


def _check_phase(pod: dict[str, Any], subresource: str) -> None:
    phase = (pod.get("status") or {}).get("phase", "")
    if subresource == "portforward":
        if phase != "Running":
            raise errors.bad_request(f"unable to forward port because pod is not running. Current status={phase}")
    elif phase in ("Succeeded", "Failed"):
        verb = "exec into" if subresource == "exec" else "attach to"
        raise errors.bad_request(f"cannot {verb} a container in a completed pod; current phase is {phase}")


def _kubelet_url(ctx: Any, pod: dict[str, Any], subresource: str, container: str | None, scheme: str) -> str:
    """The kubelet URL for this stream, after every check the API server makes."""
    meta = pod["metadata"]
    parts = [KUBELET_PATHS[subresource], meta["namespace"], meta["name"]]
    if subresource != "portforward":
        parts.append(pick_container(pod, container))
    node = (pod.get("spec") or {}).get("nodeName")
    if not node:
        raise errors.bad_request(f"pod {meta['name']} does not have a host assigned")
    _check_phase(pod, subresource)
    return kubelet_base_url(ctx, node, subresource, scheme) + "/" + "/".join(parts)


def _headers(request: web.Request) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {request.app[KUBELET_TOKEN]}"}
    if offered := offered_protocols(request.headers):
        headers["Sec-WebSocket-Protocol"] = ", ".join(offered)
    return headers


def _dial_error(exc: Exception) -> errors.ApiError:
    return errors.ApiError(500, "InternalError", f"error dialing backend: {exc}")


# --------------------------------------------------------------------------- plain answers


async def _ask_plainly(request: web.Request, url: str, params: MultiDict[str]) -> web.Response:
    """Forward the request without an upgrade and pass the kubelet's answer on."""
    session: aiohttp.ClientSession = request.app[KUBELET_SESSION]
    timeout = aiohttp.ClientTimeout(total=PLAIN_REQUEST_TIMEOUT_SECONDS, sock_connect=CONNECT_TIMEOUT_SECONDS)
    try:
        async with session.get(url, params=params, headers=_headers(request), timeout=timeout) as upstream:
            body = await upstream.read()
            return web.Response(status=upstream.status, body=body, content_type=upstream.content_type)
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise _dial_error(exc) from None


# --------------------------------------------------------------------------- the relay


async def _proxy_websocket(request: web.Request, url: str, params: MultiDict[str]) -> web.StreamResponse:
    session: aiohttp.ClientSession = request.app[KUBELET_SESSION]
    headers = _headers(request)
    protocols = offered_protocols(request.headers)
    headers.pop("Sec-WebSocket-Protocol", None)  # ws_connect sends the offer itself
    try:
        upstream = await session.ws_connect(url, params=params, headers=headers, protocols=protocols,
                                            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=10.0))
    except aiohttp.WSServerHandshakeError:
        return await _ask_plainly(request, url, params)  # the kubelet refused: learn and pass on why
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise _dial_error(exc) from None
    try:
        client = web.WebSocketResponse(protocols=(upstream.protocol,) if upstream.protocol else ())
        await client.prepare(request)
        await _relay(client, upstream)
        return client
    finally:
        await upstream.close()


async def _pipe(source: _Socket, sink: _Socket) -> None:
    """Copy messages until ``source`` closes (or ``sink`` is gone)."""
    with contextlib.suppress(ConnectionError):
        async for message in source:
            if message.type == WSMsgType.BINARY:
                await sink.send_bytes(message.data)
            elif message.type == WSMsgType.TEXT:
                await sink.send_str(message.data)


async def _relay(client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse) -> None:
    """Relay both ways; when one side closes, close the other."""
    down = asyncio.create_task(_pipe(upstream, client))
    up = asyncio.create_task(_pipe(client, upstream))
    try:
        await asyncio.wait({down, up}, return_when=asyncio.FIRST_COMPLETED)
        with contextlib.suppress(ConnectionError, asyncio.TimeoutError):
            if down.done():
                await client.close(code=_close_code(upstream))
            else:
                await upstream.close()
    finally:
        for task in (down, up):
            task.cancel()
        await asyncio.gather(down, up, return_exceptions=True)


def _close_code(ws: aiohttp.ClientWebSocketResponse) -> int:
    code = ws.close_code
    return code if code is not None and 1000 <= code < 5000 and code not in (1005, 1006) else 1000


# --------------------------------------------------------------------------- SPDY


#: Largest kubelet answer head (status line and headers) read before giving up.
MAX_RESPONSE_HEAD = 64 * 1024
#: Bytes copied per read of the relay.
RELAY_READ_BYTES = 64 * 1024


async def _proxy_spdy(request: web.Request, url: str, params: MultiDict[str]) -> web.StreamResponse:
    """Ask the kubelet for the same SPDY upgrade; on its 101 answer 101 and relay bytes both ways."""
    target = urlsplit(url)
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(target.hostname, target.port, ssl=request.app.get(KUBELET_TLS),
                                    server_hostname=target.hostname if target.scheme == "https" else None),
            CONNECT_TIMEOUT_SECONDS)
    except (OSError, asyncio.TimeoutError) as exc:
        raise _dial_error(exc) from None
    try:
        writer.write(_spdy_request(request, target.netloc, target.path, params))
        status, headers = await asyncio.wait_for(_read_head(reader), PLAIN_REQUEST_TIMEOUT_SECONDS)
        if status != 101:
            body = await asyncio.wait_for(_read_body(reader, headers), PLAIN_REQUEST_TIMEOUT_SECONDS)
            content_type = headers.get("content-type", "application/json").split(";")[0]
            return web.Response(status=status, body=body, content_type=content_type)
        answer = {"Upgrade": SPDY_UPGRADE}
        if version := headers.get("x-stream-protocol-version"):
            answer["X-Stream-Protocol-Version"] = version
        client = await UpgradedConnection.accept(request, answer)
        try:
            await _relay_bytes(client, reader, writer)
        finally:
            await client.close()
        return client.response
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
        raise _dial_error(exc) from None
    finally:
        writer.close()


def _spdy_request(request: web.Request, host: str, path: str, params: MultiDict[str]) -> bytes:
    """The upgrade request for the kubelet: the client's protocol offer, our kubelet token."""
    lines = [f"POST {path}?{urlencode(list(params.items()))} HTTP/1.1", f"Host: {host}",
             f"Authorization: Bearer {request.app[KUBELET_TOKEN]}", "Connection: Upgrade",
             f"Upgrade: {SPDY_UPGRADE}", "Content-Length: 0"]
    lines += [f"X-Stream-Protocol-Version: {v}" for v in request.headers.getall("X-Stream-Protocol-Version", [])]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    """Status code and (lower-cased) headers of the kubelet's answer."""
    head = await reader.readuntil(b"\r\n\r\n")
    if len(head) > MAX_RESPONSE_HEAD:
        raise ValueError("kubelet answer head too large")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return status, headers


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    return await reader.read()  # the kubelet closes the connection after a refusal


async def _relay_bytes(client: UpgradedConnection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy bytes both ways until one side ends; then both are closed."""

    async def up() -> None:
        while data := await client.read():
            writer.write(data)
            await writer.drain()

    async def down() -> None:
        while data := await reader.read(RELAY_READ_BYTES):
            await client.write(data)

    tasks = [asyncio.create_task(up()), asyncio.create_task(down())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
