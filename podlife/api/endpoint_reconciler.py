"""The API server's own endpoints: ``default/kubernetes`` Endpoints and EndpointSlice.

In Kubernetes the API server, not a controller, says where it can be reached: its
endpoint reconciler writes the ``kubernetes`` Endpoints (labelled
``endpointslice.kubernetes.io/skip-mirror: "true"`` so the mirroring controller leaves it
alone) and an EndpointSlice of the same name (labelled ``kubernetes.io/service-name:
kubernetes``, no managed-by label: no controller owns it), both with one address and
the port ``https``. The ``kubernetes`` Service has no selector, so the endpoints
controllers never touch either.

What it reads: the address the HTTPS server listens on, once it is known (after
``APIServer.start``). What it writes, through the REST layer as the server itself: the
Service's ``targetPort`` (the real port), the Endpoints, the EndpointSlice -- each only
when it differs, so a restart on the same port writes nothing.

podlife's API server listens on loopback (127.0.0.1); node-local forwarders inside each
node namespace serve the ClusterIP (10.96.0.1:443) and connect to this address. The
EndpointSlice validation, as Kubernetes', refuses loopback addresses from clients, so the
slice's endpoint is written as a server-internal change (no validation), the way the API
server writes what only it may write.
"""

from __future__ import annotations

import copy
import ipaddress
from typing import Any

from .rest import INTERNAL, ApiContext, ResourceREST

Obj = dict[str, Any]

NAME, NAMESPACE = "kubernetes", "default"
SKIP_MIRROR = "endpointslice.kubernetes.io/skip-mirror"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def advertised_address(host: str) -> str:
    """The address to publish for a listen host: an unspecified or unparsable one is loopback."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return "127.0.0.1"
    return "127.0.0.1" if ip.is_unspecified else str(ip)


def kubernetes_endpoints(address: str, port: int) -> Obj:
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {SKIP_MIRROR: "true"}},
            "subsets": [{"addresses": [{"ip": address}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]}


def kubernetes_slice(address: str, port: int) -> Obj:
    family = "IPv6" if ipaddress.ip_address(address).version == 6 else "IPv4"
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {SERVICE_NAME_LABEL: NAME}},
            "addressType": family,
            "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}


async def reconcile_kubernetes_endpoints(ctx: ApiContext, host: str, port: int) -> None:
    """Make the ``kubernetes`` Service's endpoints say ``host:port`` (call once the server listens)."""
    address = advertised_address(host)
    await _reconcile_service_port(ctx, port)
    endpoints = ctx.rest_by("", "v1", "endpoints")
    if endpoints is not None:
        await _ensure(endpoints, kubernetes_endpoints(address, port), ("metadata.labels", "subsets"), internal=False)
    slices = ctx.rest_by("discovery.k8s.io", "v1", "endpointslices")
    if slices is not None:
        await _ensure(slices, kubernetes_slice(address, port), ("metadata.labels", "addressType", "endpoints", "ports"),
                      internal=True)


async def _reconcile_service_port(ctx: ApiContext, port: int) -> None:
    """The ``https`` port of the Service targets the real port (as kube-apiserver reconciles it)."""
    rest = ctx.rest_by("", "v1", "services")
    if rest is None:
        return
    cached = rest.cache.get(rest.rt.key(NAMESPACE, NAME))
    if cached is None or all(p.get("targetPort") == port for p in (cached.obj.get("spec") or {}).get("ports") or []):
        return

    def retarget(current: Obj) -> Obj:
        for p in (current.get("spec") or {}).get("ports") or []:
            if p.get("name") == "https":
                p["targetPort"] = port
        return current

    await rest.guaranteed_update(NAMESPACE, NAME, retarget)


def _field(obj: Obj, path: str) -> Any:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _set_field(obj: Obj, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        obj = obj.setdefault(part, {})
    obj[last] = copy.deepcopy(value)


async def _ensure(rest: ResourceREST, desired: Obj, fields: tuple[str, ...], *, internal: bool) -> None:
    """Create ``desired`` or bring the stored object's ``fields`` to it; nothing when they agree.

    ``internal``: the fields are set as a server-internal change (unvalidated); a new
    object is then created without them first (what validation accepts), then changed.
    """
    cached = rest.cache.get(rest.rt.key(NAMESPACE, NAME))
    if cached is None:
        first = copy.deepcopy(desired)
        if internal:
            first["endpoints"] = []
        await rest.create(first, NAMESPACE)
        if not internal:
            return
    elif all(_field(cached.obj, f) == _field(desired, f) for f in fields):
        return

    def bring(current: Obj) -> Obj:
        for f in fields:
            _set_field(current, f, _field(desired, f))
        return current

    await rest.guaranteed_update(NAMESPACE, NAME, bring, subresource=INTERNAL if internal else None)
