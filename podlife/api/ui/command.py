"""``podlife ui``: log a browser in to the web UI with the kubeconfig's credentials.

It reads the kubeconfig (server, CA, client certificate or token), asks the API server
for a one-time login code (``POST /ui/api/login-codes``, authenticated with those
credentials: the code stands for them), and prints the login URL
``https://HOST:PORT/ui/login?code=...``, opening it in a browser unless ``--print-url``.
The code is good for one use within a minute; it becomes the browser's session cookie.
"""

from __future__ import annotations

import argparse
import os
import sys
import webbrowser
from pathlib import Path


def default_kubeconfig() -> Path:
    """``$KUBECONFIG`` (its first file), else ``.podlife/kubeconfig`` (what ``podlife up`` writes)."""
    env = os.environ.get("KUBECONFIG", "")
    first = next((p for p in env.split(os.pathsep) if p), "")
    return Path(first) if first else Path(".podlife/kubeconfig")


def add_parser(sub: argparse._SubParsersAction) -> None:
    ui = sub.add_parser("ui", help="open the web UI (a live timeline of pods), logged in with the kubeconfig")
    ui.add_argument("--kubeconfig", type=Path, default=None,
                    help="kubeconfig whose credentials log the browser in (default: $KUBECONFIG, else "
                         ".podlife/kubeconfig)")
    ui.add_argument("--print-url", action="store_true", help="only print the login URL, do not open a browser")


async def run(args: argparse.Namespace) -> int:
    from ...client.http import HTTPClient

    import aiohttp

    from ...machinery.errors import ApiError

    try:
        client = HTTPClient.from_kubeconfig(args.kubeconfig or default_kubeconfig())
        try:
            answer = await client.request("POST", "/ui/api/login-codes")
        finally:
            await client.close()
    except (OSError, ValueError, KeyError, aiohttp.ClientError, ApiError) as exc:
        print(f"podlife ui: {exc}", file=sys.stderr)
        return 1
    url = client.server + answer["path"]
    print(url, flush=True)
    if not args.print_url and not webbrowser.open(url):
        print("podlife ui: no browser to open; open the URL above (it works once, within "
              f"{answer.get('expiresInSeconds', 60)} seconds)", flush=True)
    return 0
