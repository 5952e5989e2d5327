"""Container lifecycle hooks: running a ``postStart`` or ``preStop`` handler.

A handler is one of Kubernetes' three actions:

- ``exec``: the command runs next to the container (same environment and
  working directory, through the runtime); a non-zero exit is a failure. If the
  caller stops waiting (a deadline, a deletion), the command's whole process
  group is killed.
- ``httpGet``: a GET of ``scheme://host:port/path`` with the given headers; a
  status of 400 or more, or no connection, is a failure. A named port is looked
  up in the container's ports. The host is loopback -- any other requested host
  is refused rather than contacted (:func:`hook_host`) -- *as the container sees
  it*: the connection is made inside the pod's network namespace
  (:mod:`podlife.machinery.netns`; the runtime's ``network_namespace``), or in this
  machine's for host processes and ``hostNetwork`` pods.
- ``sleep``: waits the given seconds; it cannot fail.

:func:`run_handler` returns None on success, or the message Kubernetes puts in
the ``FailedPostStartHook``/``FailedPreStopHook`` event. *When* hooks run, what
a failure does to the container and how the grace period is shared are the pod
worker's (:mod:`podlife.kubelet.pod_worker`). The probes
(:mod:`podlife.kubelet.prober`) run their exec and httpGet actions with the same
:func:`exec_handler` and :func:`http_handler`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import signal

import aiohttp

from ..client.base import Obj
from ..machinery.constants import KUBERNETES_VERSION
from ..node.lifecycle import format_pod
from ..node.status import go_list
from ..machinery.netns import socket_factory
from .runtime import ContainerNotRunningError, ContainerStartError
from .runtimes import ContainerLike, ContainerRuntime

#: A container's servers are reached on loopback inside its own network namespace --
#: never on its pod IP from outside, and never on any other address (podlife sends
#: traffic only where it is safe to).
CONTAINER_HOST = "127.0.0.1"


def hook_host(requested: str | None) -> str | None:
    """Where an httpGet handler connects: loopback by default; None for any other address."""
    if not requested or requested == "localhost":
        return CONTAINER_HOST
    try:
        return requested if ipaddress.ip_address(requested).is_loopback else None
    except ValueError:
        return None


def container_port(container: Obj, port: object) -> int | None:
    """A handler's ``port``: a number, or the name of one of the container's ports (None: no such port)."""
    if isinstance(port, str) and not port.isdigit():
        named = [p for p in container.get("ports") or [] if p.get("name") == port]
        return int(named[0].get("containerPort") or 0) if named else None
    try:
        return int(str(port))
    except ValueError:
        return None


async def run_handler(handler: Obj, *, runtime: ContainerRuntime, handle: ContainerLike, container: Obj,
                      pod: Obj) -> str | None:
    """Run a lifecycle handler (exec, httpGet or sleep) of ``container``; an error message, or None."""
    name = str(container.get("name", ""))
    if (action := handler.get("exec")) is not None:
        command = [str(a) for a in action.get("command") or []]
        error = await exec_handler(runtime, handle, command)
        kind = f"Exec lifecycle hook ({go_list(command)})"
    elif (action := handler.get("httpGet")) is not None:
        error = await http_handler(container, action, runtime=runtime, handle=handle)
        kind = f"HTTP lifecycle hook ({action.get('path', '/')})"
    elif (action := handler.get("sleep")) is not None:
        await asyncio.sleep(float(action.get("seconds") or 0))
        return None
    else:
        return f"unsupported lifecycle handler {sorted(handler)}"
    if error is None:
        return None
    return f'{kind} for Container "{name}" in Pod "{format_pod(pod)}" failed - error: {error}'


async def exec_handler(runtime: ContainerRuntime, handle: ContainerLike, command: list[str]) -> str | None:
    """Run ``command`` next to the container; killed (its whole group) if we stop waiting."""
    try:
        process = await runtime.exec_in_container(handle, command)
    except (ContainerNotRunningError, ContainerStartError) as exc:
        return str(exc)
    try:
        out, err = await process.communicate()
    except BaseException:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        raise
    if process.returncode:
        output = (out + err).decode(errors="replace")
        return f"command '{' '.join(command)}' exited with {process.returncode}: {output}"
    return None


def dial_error(host: str, port: int, exc: OSError) -> str:
    """Go's words for a connection that failed: ``dial tcp 127.0.0.1:80: connect: connection refused``."""
    reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
    return f"dial tcp {host}:{port}: connect: {reason}"


def handler_address(container: Obj, action: Obj) -> tuple[str, int] | str:
    """Where an httpGet or tcpSocket action connects (on loopback, see :func:`hook_host`), or why it cannot."""
    port = container_port(container, action.get("port"))
    if port is None:
        return f"port {action.get('port')!r} not found"
    host = hook_host(action.get("host"))
    if host is None:
        return f"refusing to connect to {action.get('host')}: pod and service addresses are only reachable inside their network namespace"
    return host, port


async def http_handler(container: Obj, action: Obj, *, runtime: ContainerRuntime,
                       handle: ContainerLike, probe: bool = False) -> str | None:
    """GET ``action`` (on the container's loopback, see :func:`hook_host`); a status of 400 or more fails.

    The messages are Go's, as Kubernetes prints them (``Get "url": dial tcp ...: connect:
    connection refused``); ``probe`` words a bad status as the prober does.
    """
    address = handler_address(container, action)
    if isinstance(address, str):
        return address
    host, port = address
    url = f"{str(action.get('scheme') or 'HTTP').lower()}://{host}:{port}{action.get('path') or '/'}"
    # Kubernetes' defaults, which the probe's own headers replace
    headers = {"User-Agent": f"kube-{'probe' if probe else 'lifecycle'}/{KUBERNETES_VERSION}", "Accept": "*/*"}
    headers.update({str(h.get("name")): str(h.get("value")) for h in action.get("httpHeaders") or []})
    try:
        connector = aiohttp.TCPConnector(socket_factory=socket_factory(runtime.network_namespace(handle)),
                                         force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session, \
                session.get(url, headers=headers, ssl=False) as resp:
            if resp.status >= 400:
                return f"HTTP probe failed with statuscode: {resp.status}" if probe else \
                    f'Get "{url}": HTTP status {resp.status}'
    except aiohttp.ClientConnectorError as exc:
        return f'Get "{url}": {dial_error(host, port, exc.os_error)}'
    except (aiohttp.ClientError, OSError) as exc:
        return f'Get "{url}": {exc}'
    return None
