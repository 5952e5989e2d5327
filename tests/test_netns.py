"""Connections made inside another network namespace (how probes and hooks reach a pod).

A real namespace is made for each test (``ip netns add``, removed afterwards even when
the test fails), with only its loopback up and a server listening on it. The server is
reachable through :mod:`podlife.machinery.netns` and *not* on this machine's loopback, and
the calling thread is back in its own namespace afterwards.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from podlife.machinery.netns import open_connection, socket_factory, socket_in

from .cluster_harness import require_tool, wait_for

SERVER = "import http.server as h; h.HTTPServer(('127.0.0.1', 0), h.SimpleHTTPRequestHandler).serve_forever()"


@pytest.fixture
def netns() -> Iterator[tuple[str, int]]:
    """A fresh network namespace (its path) with an HTTP server on its loopback (its port)."""
    ip = require_tool("ip")
    name = f"podlife-test-{secrets.token_hex(4)}"
    subprocess.run([ip, "netns", "add", name], check=True)
    server = None
    try:
        subprocess.run([ip, "-n", name, "link", "set", "lo", "up"], check=True)
        server = subprocess.Popen([ip, "netns", "exec", name, sys.executable, "-c", SERVER])
        port = wait_for(lambda: _listening_port(name, ip), 10, what="the server in the namespace listening")
        yield f"/run/netns/{name}", port
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run([ip, "netns", "delete", name], check=False)


def _listening_port(name: str, ip: str) -> int | None:
    out = subprocess.run([ip, "netns", "exec", name, "ss", "-Htln"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        local = line.split()[3]
        if local.startswith("127.0.0.1:"):
            return int(local.rsplit(":", 1)[1])
    return None


def _own_namespace() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


def test_a_socket_made_in_the_namespace_reaches_its_loopback_and_the_thread_comes_back(netns: tuple[str, int]) -> None:
    path, port = netns
    before = _own_namespace()

    async def main() -> tuple[bytes, str | None]:
        reader, writer = await open_connection(path, "127.0.0.1", port)
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
        first = await reader.readline()
        writer.close()
        try:
            await asyncio.open_connection("127.0.0.1", port)
            outside = None
        except OSError as exc:
            outside = str(exc)
        return first, outside

    first, outside = asyncio.run(main())
    assert first.startswith(b"HTTP/1.0 200")
    assert outside is not None  # the host's loopback has no such server
    assert _own_namespace() == before


def test_aiohttp_requests_go_through_the_namespace(netns: tuple[str, int]) -> None:
    path, port = netns

    async def main() -> int:
        connector = aiohttp.TCPConnector(socket_factory=socket_factory(path), force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session, \
                session.get(f"http://127.0.0.1:{port}/") as resp:
            return resp.status

    assert asyncio.run(main()) == 200


def test_a_namespace_that_is_gone_is_an_error_not_the_hosts_namespace(tmp_path: Path) -> None:
    before = _own_namespace()
    with pytest.raises(OSError):
        socket_in(str(tmp_path / "no-such-namespace"))
    assert _own_namespace() == before
    with socket_in(None) as sock:  # None: this thread's own namespace
        assert sock.family.name == "AF_INET"
