"""``podlife apiserver-proxy``: one local address in front of several API servers (client-side failover).

    podlife apiserver-proxy --server https://127.0.0.1:6443 --server https://127.0.0.1:6444 [--listen 127.0.0.1:6440]

Runs :class:`~podlife.client.apiserver_proxy.ApiServerProxy` until SIGTERM/SIGINT, printing
the address it listens on; kubectl, client libraries, ``podlife scheduler``,
``controller-manager``, ``sim`` and ``node`` then use a kubeconfig whose ``server`` is
that address (the servers' certificates name 127.0.0.1). Errors: one line, exit 1.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Any

from .client.apiserver_proxy import ApiServerProxy, parse_backend

log = logging.getLogger(__name__)


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "apiserver-proxy", help="one local address in front of several API servers, failing over between them",
        description="A TCP pass-through proxy on loopback (as k3s' agent load balancer): a connection goes to the "
                    "first API server that is up, in the order given; TLS stays end to end. Point a kubeconfig's "
                    "server at it. See docs/etcd.md.")
    p.add_argument("--server", action="append", required=True, metavar="URL",
                   help="an API server, https://HOST:PORT or HOST:PORT (repeat; tried in this order)")
    p.add_argument("--listen", default="127.0.0.1:6440", metavar="HOST:PORT",
                   help="where to listen (default: 127.0.0.1:6440; port 0 picks a free one)")
    p.add_argument("--health-interval", type=float, default=1.0, metavar="SECONDS",
                   help="how often every server is probed with a TCP connect (default: 1)")
    p.set_defaults(run_command=run)


def run(args: argparse.Namespace) -> int:
    try:
        servers = [parse_backend(text) for text in args.server]
        listen_host, listen_port = parse_backend(args.listen, listening=True)
    except ValueError as exc:
        print(f"podlife apiserver-proxy: {exc}", file=sys.stderr)
        return 1
    if args.health_interval <= 0:
        print("podlife apiserver-proxy: --health-interval must be greater than 0", file=sys.stderr)
        return 1
    return asyncio.run(_serve(servers, listen_host, listen_port, args.health_interval))


async def _serve(servers: list[tuple[str, int]], host: str, port: int, interval: float) -> int:
    proxy = ApiServerProxy(servers, interval=interval)
    try:
        bound = await proxy.start(host, port)
    except OSError as exc:
        print(f"podlife apiserver-proxy: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"podlife apiserver-proxy listening on https://{host}:{bound} for "
          f"{', '.join(f'{h}:{p}' for h, p in servers)}", flush=True)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    try:
        await stopped.wait()
    finally:
        await proxy.stop()
    return 0
