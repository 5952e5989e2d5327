"""Where the API server reaches a node's kubelet (logs, exec, attach, port-forward).

As in Kubernetes, the address is the Node's ``InternalIP`` and the port its
``status.daemonEndpoints.kubeletEndpoint.Port``. Network safety: every podlife kubelet
listens on this machine, so the API server only ever dials loopback addresses -- a
Node object naming any other address (anyone may write one) is refused, never dialled.
Simulated nodes publish port 0: there is nothing to dial.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from aiohttp import web

from ..machinery import errors
from .keys import KUBELET_TLS


def kubelet_base_url(ctx: Any, node_name: str, what: str, scheme: str = "https") -> str:
    """``https://127.0.0.1:PORT`` of ``node_name``'s kubelet, or a 4xx ``Status`` saying why not."""
    nodes = ctx.rest_by("", "v1", "nodes")
    node = nodes.cache.get(nodes.rt.key(None, node_name)) if nodes is not None else None
    if node is None:
        raise errors.ApiError(404, "NotFound", f'nodes "{node_name}" not found', {"name": node_name, "kind": "nodes"})
    status = node.obj.get("status") or {}
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    address = next((a.get("address") for a in status.get("addresses") or [] if a.get("type") == "InternalIP"), None)
    if not port or not address:
        raise errors.bad_request(f"node {node_name} has no kubelet endpoint (a simulated node?): {what} needs a real kubelet")
    try:
        loopback = ipaddress.ip_address(address).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise errors.bad_request(f"node {node_name}: podlife only connects to kubelets on this machine (loopback), "
                                 f"not to {address}")
    host = f"[{address}]" if ":" in address else address
    return f"{scheme}://{host}:{port}"


def kubelet_scheme(request: web.Request) -> str:
    """https when this API server dials kubelets over TLS (``podlife up`` does), else http."""
    return "https" if request.app.get(KUBELET_TLS) is not None else "http"
