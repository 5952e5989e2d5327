"""The ``grpc`` probe handler: the standard gRPC health check, as Kubernetes' ``pkg/probe/grpc``.

Design
------
A probe calls ``grpc.health.v1.Health/Check`` with ``grpc.service`` as the service
name (default ``""``), in plaintext, on ``grpc.port`` of the same loopback address
the other network probes use (:func:`~podlife.kubelet.hooks.handler_address`);
``SERVING`` is a success, anything else a failure. As in Kubernetes, connecting and
the call share the probe's one timeout: the channel is awaited until it is ready
(grpc-go's blocking dial), so a refused connection is retried until the timeout and
then reads "failed to connect ... within"; a call still running then reads "health
rpc did not complete". The messages are Kubernetes', grpc-go's status codes included.

grpcio is imported when a grpc probe first runs, so a node without one never loads
it. The channel asks grpc for exactly one thing: no proxy (grpc would otherwise read
``*_proxy`` from the environment and connect *there*), no retries, no service config,
an ``ipv4:``/``ipv6:`` target that resolves nothing.

A pod's own network namespace: grpc's C core opens its sockets in threads of its
own, which :mod:`podlife.machinery.netns` cannot move into the pod's namespace. There
the channel's target is a Unix socket in a private (0700) directory, and each
connection to it is piped to a TCP connection made in the namespace
(:func:`grpc_target`); nothing of grpc ever leaves this machine's loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator

from ..client.base import Obj
from ..machinery.constants import KUBERNETES_VERSION
from .hooks import handler_address
from ..machinery.netns import open_connection

#: Channel options of a probe: one health call to the loopback address and nothing else
CHANNEL_OPTIONS: list[tuple[str, str | int]] = [
    ("grpc.enable_http_proxy", 0),
    ("grpc.enable_retries", 0),
    ("grpc.service_config_disable_resolution", 1),
    ("grpc.primary_user_agent", f"kube-probe/{KUBERNETES_VERSION}"),
]


async def grpc_handler(container: Obj, action: Obj, netns: str | None, timeout: float) -> str | None:
    """Run the health check of ``action`` within ``timeout``: None when SERVING, else why not."""
    address = handler_address(container, action)
    if isinstance(address, str):
        return address
    host, port = address
    import grpc  # lazily: see the module's docstring
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    service = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"  # Go's net.JoinHostPort
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    options = [*CHANNEL_OPTIONS, ("grpc.default_authority", service)]
    async with grpc_target(netns, host, port) as target, grpc.aio.insecure_channel(target, options=options) as channel:
        try:
            await asyncio.wait_for(channel.channel_ready(), timeout)
        except TimeoutError:
            return f'timeout: failed to connect service "{service}" within {timeout:g}s: context deadline exceeded'
        remaining = deadline - loop.time()
        if remaining <= 0:
            return call_error("DEADLINE_EXCEEDED", "", timeout)
        request = health_pb2.HealthCheckRequest(service=str(action.get("service") or ""))
        try:
            response = await health_pb2_grpc.HealthStub(channel).Check(request, timeout=remaining)
        except grpc.aio.AioRpcError as exc:
            return call_error(exc.code().name, exc.details() or "", timeout)
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    return None if status == "SERVING" else f'service unhealthy (responded with "{status}")'


def call_error(code: str, details: str, timeout: float) -> str:
    """Kubernetes' message for a failed health call (``code``: a ``grpc.StatusCode`` name)."""
    if code == "DEADLINE_EXCEEDED":
        return f"timeout: health rpc did not complete within {timeout:g}s"
    if code == "UNIMPLEMENTED":
        return f"error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {details}"
    # grpc-go's status error text, with its code names: CamelCase, and "Canceled" with one l
    name = {"OK": "OK", "CANCELLED": "Canceled"}.get(code) or code.title().replace("_", "")
    return f"error: health rpc probe failed: rpc error: code = {name} desc = {details}"


@contextlib.asynccontextmanager
async def grpc_target(netns: str | None, host: str, port: int) -> AsyncIterator[str]:
    """The channel target reaching ``host:port`` as seen from ``netns`` (None: this machine's).

    In a pod's namespace: a Unix socket piped to the namespace (see the module's
    docstring). A connection refused there closes the Unix one, which grpc retries
    as it would the refused TCP connection itself.
    """
    if netns is None:
        yield f"ipv6:[{host}]:{port}" if ":" in host else f"ipv4:{host}:{port}"
        return
    bridges: set[asyncio.Task[object]] = set()

    async def bridge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if (task := asyncio.current_task()) is not None:
            bridges.add(task)
        try:
            up_reader, up_writer = await open_connection(netns, host, port)
        except OSError:
            writer.close()
            return
        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            writer.close()
            up_writer.close()

    with tempfile.TemporaryDirectory(prefix="podlife-grpc-probe-") as directory:
        server = await asyncio.start_unix_server(bridge, os.path.join(directory, "socket"))
        try:
            yield f"unix:{os.path.join(directory, 'socket')}"
        finally:
            server.close()
            for task in bridges:
                task.cancel()
            await asyncio.gather(*bridges, return_exceptions=True)


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy ``reader`` to ``writer`` until end of file, then half-close ``writer``."""
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()


__all__ = ["CHANNEL_OPTIONS", "call_error", "grpc_handler", "grpc_target"]
