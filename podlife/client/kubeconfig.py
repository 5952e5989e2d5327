"""Reading a kubeconfig: what a client needs to reach an API server.

The client side of what ``api/pki.py`` writes (``write_kubeconfig``): the server URL,
the bearer token and the CA of the current context, as kubectl resolves them.
"""

from __future__ import annotations

import base64
from pathlib import Path

import yaml


def read_kubeconfig(path: Path) -> tuple[str, str, bytes]:
    """(server URL, token, CA PEM) of the current context."""
    cfg = yaml.safe_load(path.read_text())
    ctx_name = cfg["current-context"]
    ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
    cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
    user = next(u["user"] for u in cfg["users"] if u["name"] == ctx["user"])
    return cluster["server"], user.get("token", ""), base64.b64decode(cluster["certificate-authority-data"])
