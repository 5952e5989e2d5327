"""Sockets made inside another network namespace (how podlife reaches pods and serves in node namespaces).

Why
---
A real-container pod has its own network namespace (its sandbox's); a server in it
listening on ``127.0.0.1:8080`` is not this machine's ``127.0.0.1:8080``. Kubernetes'
kubelet reaches the pod at its IP through the node's routes; podlife sends nothing to
a pod address from the host namespace (network safety), so it *enters* the namespace
instead: :func:`socket_in` creates the socket while the calling thread is in that
namespace and switches straight back. A socket belongs to the namespace it was created
in for the rest of its life, so everything after that -- connect, bind, TLS, HTTP -- is
ordinary asyncio code in the caller's own thread, and nothing else ever runs in the
other namespace.

Who uses it: the kubelet's probes, hooks and port-forward (connect inside a pod), the
node-local servers of :mod:`podlife.nodenet` (the cluster DNS and the ``kubernetes``
Service forwarder listen inside node namespaces), and the CNI plugin (:func:`entered`
runs ``ip`` and writes sysctls inside a namespace).

``setns(2)`` acts on the calling thread only; the switch and the switch back are two
system calls with nothing in between, so the event loop thread can do it inline
(aiohttp's ``socket_factory`` and :func:`open_connection` do). ``netns`` arguments are a
path (``/run/netns/NAME``, ``/proc/PID/ns/net``) or a name under ``/run/netns``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # asyncio is imported where it is used: the CNI plugin starts per pod and never needs it
    import asyncio

CLONE_NEWNET = 0x40000000
_libc: Any = None


def netns_file(netns: str) -> str:
    """The nsfs path of ``netns``: a path as given, a name under ``/run/netns``."""
    return netns if "/" in netns else f"/run/netns/{netns}"


def setns(fd: int) -> None:
    """Move the calling thread into the network namespace open as ``fd``."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextmanager
def entered(netns: str) -> Iterator[None]:
    """The calling thread inside ``netns`` for the block, then home again whatever happens."""
    target = os.open(netns_file(netns), os.O_RDONLY | os.O_CLOEXEC)
    try:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns(target)
            try:
                yield
            finally:
                setns(home)  # never leave this thread in the other namespace
        finally:
            os.close(home)
    finally:
        os.close(target)


def socket_in(netns: str | None, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM,
              proto: int = 0) -> socket.socket:
    """A new socket in the network namespace ``netns`` (None: this thread's own)."""
    if netns is None:
        return socket.socket(family, kind, proto)
    with entered(netns):
        return socket.socket(family, kind, proto)


def socket_factory(netns: str | None) -> Callable[[Any], socket.socket]:
    """An aiohttp ``TCPConnector(socket_factory=...)`` making its sockets in ``netns``."""
    def make(addr_info: Any) -> socket.socket:
        family, kind, proto = addr_info[0], addr_info[1], addr_info[2]
        return socket_in(netns, family, kind, proto)
    return make


async def open_connection(netns: str | None, host: str, port: int
                          ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """``asyncio.open_connection`` to ``host:port`` as seen from inside ``netns``."""
    import asyncio

    if netns is None:
        return await asyncio.open_connection(host, port)
    sock = socket_in(netns, socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock)


__all__ = ["entered", "netns_file", "open_connection", "setns", "socket_factory", "socket_in"]
