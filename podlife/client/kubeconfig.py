"""Reading a kubeconfig: what a client needs to reach an API server.

The client side of what ``api/pki.py`` writes (``write_kubeconfig``): the server URL, the
CA, and the user's credentials of the current context -- a client certificate and key
(``client-certificate-data``/``client-key-data``, what ``podlife up`` writes for the
admin) and/or a bearer token -- as kubectl resolves them.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass(frozen=True)
class Kubeconfig:
    server: str
    ca: bytes  # PEM
    token: str = ""
    client_certificate: bytes | None = None  # PEM
    client_key: bytes | None = None  # PEM


def load_kubeconfig(path: Path) -> Kubeconfig:
    """The current context's server, CA and credentials."""
    cfg = yaml.safe_load(path.read_text())
    ctx_name = cfg["current-context"]
    ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
    cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
    user = next(u["user"] for u in cfg["users"] if u["name"] == ctx["user"])

    def data(key: str) -> bytes | None:
        value = user.get(key)
        return base64.b64decode(value) if value else None

    return Kubeconfig(cluster["server"], base64.b64decode(cluster["certificate-authority-data"]),
                      user.get("token", "") or "", data("client-certificate-data"), data("client-key-data"))


def read_kubeconfig(path: Path) -> tuple[str, str, bytes]:
    """(server URL, token, CA PEM) of the current context."""
    config = load_kubeconfig(path)
    return config.server, config.token, config.ca
