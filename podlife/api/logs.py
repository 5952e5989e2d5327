"""``GET pods/<name>/log``: proxied to the kubelet of the pod's node.

As in Kubernetes, the API server does not read logs itself: it finds the pod's node,
reads the kubelet's address (``status.addresses`` InternalIP) and port
(``status.daemonEndpoints.kubeletEndpoint.Port``) from the Node object, and streams
the kubelet's ``/containerLogs`` answer back (chunked, so ``kubectl logs -f`` follows).
The default container is the pod's only one, or the one named by the
``kubectl.kubernetes.io/default-container`` annotation; otherwise the request must
name one, with the same message Kubernetes gives.
"""

from __future__ import annotations

import aiohttp
from aiohttp import web

from .keys import KUBELET_SESSION, KUBELET_TOKEN
from .kubelets import kubelet_base_url, kubelet_scheme
from ..machinery import errors
from .handlers import Target, flag

_PASSED_FLAGS = ("follow", "previous", "timestamps")
_PASSED = ("tailLines", "sinceSeconds", "sinceTime", "limitBytes")


def _container(pod: dict, requested: str | None) -> str:
    spec = pod.get("spec") or {}
    names = [c.get("name") for c in spec.get("containers") or []]
    init = [c.get("name") for c in spec.get("initContainers") or []]
    name = pod["metadata"]["name"]
    if requested:
        if requested not in names + init:
            raise errors.bad_request(f"container {requested} is not valid for pod {name}")
        return requested
    default = ((pod["metadata"].get("annotations") or {}).get("kubectl.kubernetes.io/default-container"))
    if default in names:
        return str(default)
    if len(names) == 1:
        return names[0]
    raise errors.bad_request(f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]"
                             + (f" or one of the init containers: [{' '.join(init)}]" if init else ""))


async def serve_log(request: web.Request, target: Target) -> web.StreamResponse:
    assert target.name is not None
    pod = target.rest.get(target.namespace, target.name).obj
    container = _container(pod, request.query.get("container"))
    node = (pod.get("spec") or {}).get("nodeName")
    if not node:
        raise errors.bad_request(f"pod {target.name} does not have a host assigned")
    base = kubelet_base_url(target.rest.ctx, node, "logs", kubelet_scheme(request))
    params = {k: request.query[k] for k in _PASSED if k in request.query}
    # booleans reach the kubelet in one spelling, whichever ParseBool form the client sent
    params |= {k: "true" for k in _PASSED_FLAGS if flag(request, k)}
    url = f"{base}/containerLogs/{target.namespace}/{target.name}/{container}"
    session: aiohttp.ClientSession = request.app[KUBELET_SESSION]
    headers = {"Authorization": f"Bearer {request.app[KUBELET_TOKEN]}"}
    try:
        upstream = await session.get(url, params=params, headers=headers, timeout=aiohttp.ClientTimeout(total=None, sock_connect=5))
    except aiohttp.ClientError as exc:
        raise errors.ApiError(502, "InternalError", f"failed to reach the kubelet of node {node}: {exc}") from None
    async with upstream:
        if upstream.status != 200:
            body = await upstream.read()
            return web.Response(body=body, status=upstream.status, content_type="application/json")
        resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        try:
            async for chunk in upstream.content.iter_any():
                await resp.write(chunk)
        except (ConnectionResetError, aiohttp.ClientError):
            pass
        return resp
