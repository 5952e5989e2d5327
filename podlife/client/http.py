"""The HTTPS client: the Kubernetes REST API over aiohttp.

Used by components that run in their own process (``podlife sim --server URL``), by
benchmarks that must load the server like real users, and by tests. Errors come back
as the server's ``Status`` in an :class:`~podlife.machinery.errors.ApiError`, exactly as
the in-process client raises them.

A ``429 Too Many Requests`` or a 5xx that carries ``Retry-After`` (API Priority and
Fairness turned the request away before doing anything) is retried after that many
seconds, up to :data:`MAX_RETRIES` times, as client-go's REST client does; without the
header (an eviction a disruption budget refuses) the caller sees it at once, and after
the last retry too: a component over HTTP rides out a busy server the way kube
components do, instead of dropping the work.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from ..machinery.errors import ApiError
from .base import Client, Obj, Resource, WatchEvent

#: client-go's ``maxRetries`` for a response with ``Retry-After`` (429, or 5xx that asks for it)
MAX_RETRIES = 10
#: the longest ``Retry-After`` honoured, in seconds (a longer one is waited this long)
MAX_RETRY_AFTER = 10.0

_PATCH_CONTENT_TYPES = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}


class HTTPClient(Client):
    def __init__(self, server: str, *, token: str | None = None, ca_file: str | Path | None = None,
                 ca_data: bytes | None = None, client_certificate: tuple[bytes, bytes] | None = None,
                 max_connections: int = 64) -> None:
        """``client_certificate``: (certificate PEM, key PEM) presented in the TLS handshake."""
        self.server = server.rstrip("/")
        self._headers = {"Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._ssl: ssl.SSLContext | bool = True
        if ca_file or ca_data or client_certificate:
            ctx = ssl.create_default_context()
            if ca_file:
                ctx.load_verify_locations(cafile=str(ca_file))
            if ca_data:
                ctx.load_verify_locations(cadata=ca_data.decode())
            if client_certificate:
                _load_client_certificate(ctx, *client_certificate)
            self._ssl = ctx
        self._max = max_connections
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_kubeconfig(cls, path: str | Path, **kwargs: Any) -> HTTPClient:
        from .kubeconfig import load_kubeconfig

        config = load_kubeconfig(Path(path))
        cert = (config.client_certificate, config.client_key) if config.client_certificate and config.client_key else None
        return cls(config.server, token=config.token or None, ca_data=config.ca, client_certificate=cert, **kwargs)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._max, ssl=self._ssl)
            self._session = aiohttp.ClientSession(connector=connector, headers=self._headers,
                                                  json_serialize=lambda o: orjson.dumps(o).decode())
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(self, method: str, path: str, *, params: dict[str, str] | None = None, body: Any = None,
                      content_type: str = "application/json") -> Any:
        data = orjson.dumps(body) if body is not None else None
        headers = {"Content-Type": content_type} if data is not None else None
        for attempt in range(MAX_RETRIES + 1):
            async with self.session.request(method, self.server + path, params=params, data=data,
                                            headers=headers) as resp:
                raw = await resp.read()
                if resp.status < 400:
                    return orjson.loads(raw) if raw else None
                wait = retry_after(resp.status, resp.headers.get("Retry-After"))
                if wait is None or attempt == MAX_RETRIES:
                    raise _error(resp.status, raw)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")  # the loop returns or raises

    # ---- Client ---------------------------------------------------------------------

    async def discover(self) -> list[Resource]:
        """From the legacy discovery documents, as client-go's discovery client reads them."""
        versions = [("", "v1")]
        for group in (await self.request("GET", "/apis")).get("groups") or []:
            versions += [(group["name"], v["version"]) for v in group.get("versions") or []]
        found: list[Resource] = []
        for group, version in versions:
            listing = await self.request("GET", f"/apis/{group}/{version}" if group else "/api/v1")
            for r in listing.get("resources") or []:
                verbs = r.get("verbs") or []
                if "/" not in r["name"] and "list" in verbs and "watch" in verbs and "delete" in verbs:
                    found.append(Resource(group, version, r["name"], r["kind"], bool(r.get("namespaced"))))
        return found

    async def get(self, res: Resource, name: str, namespace: str | None = None) -> Obj:
        return await self.request("GET", res.path(namespace, name))

    async def list(self, res: Resource, namespace: str | None = None, *, label_selector: str | None = None,
                   field_selector: str | None = None, limit: int = 0, continue_token: str | None = None) -> Obj:
        params = _params(labelSelector=label_selector, fieldSelector=field_selector,
                         limit=str(limit) if limit else None, **{"continue": continue_token})
        return await self.request("GET", res.path(namespace), params=params)

    async def watch(self, res: Resource, namespace: str | None = None, *, label_selector: str | None = None,
                    field_selector: str | None = None, resource_version: str | None = None,
                    timeout_seconds: int | None = None, bookmarks: bool = False) -> AsyncIterator[WatchEvent]:
        params = _params(watch="true", labelSelector=label_selector, fieldSelector=field_selector,
                         resourceVersion=resource_version, timeoutSeconds=str(timeout_seconds) if timeout_seconds else None,
                         allowWatchBookmarks="true" if bookmarks else None)
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None, sock_connect=10)
        async with self.session.get(self.server + res.path(namespace), params=params, timeout=timeout) as resp:
            if resp.status >= 400:
                raise _error(resp.status, await resp.read())
            buffer = b""
            async for chunk in resp.content.iter_any():
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if not line.strip():
                        continue
                    ev = orjson.loads(line)
                    if ev["type"] == "ERROR":
                        raise ApiError.from_status(ev["object"])
                    yield WatchEvent(ev["type"], ev["object"])

    async def create(self, res: Resource, obj: Obj, namespace: str | None = None) -> Obj:
        ns = namespace or (obj.get("metadata") or {}).get("namespace")
        return await self.request("POST", res.path(ns), body=obj)

    async def create_subresource(self, res: Resource, name: str, subresource: str, obj: Obj,
                                 namespace: str | None = None) -> Obj:
        return await self.request("POST", res.path(namespace, name, subresource), body=obj)

    async def update(self, res: Resource, obj: Obj, *, subresource: str | None = None) -> Obj:
        meta = obj.get("metadata") or {}
        return await self.request("PUT", res.path(meta.get("namespace"), meta.get("name"), subresource), body=obj)

    async def patch(self, res: Resource, name: str, patch: Any, namespace: str | None = None, *,
                    patch_type: str = "merge", subresource: str | None = None) -> Obj:
        return await self.request("PATCH", res.path(namespace, name, subresource), body=patch,
                                  content_type=_PATCH_CONTENT_TYPES[patch_type])

    async def delete(self, res: Resource, name: str, namespace: str | None = None, *,
                     grace_period_seconds: int | None = None, propagation_policy: str | None = None,
                     preconditions: dict | None = None) -> Obj:
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_period_seconds is not None:
            body["gracePeriodSeconds"] = grace_period_seconds
        if propagation_policy:
            body["propagationPolicy"] = propagation_policy
        if preconditions:
            body["preconditions"] = preconditions
        return await self.request("DELETE", res.path(namespace, name), body=body)


def _params(**values: str | None) -> dict[str, str]:
    return {k: v for k, v in values.items() if v is not None}


def retry_after(status: int, header: str | None) -> float | None:
    """Seconds to wait before retrying a response, or None if it is not to be retried (client-go's
    ``checkWait``: a 429 or 5xx with a ``Retry-After`` of whole seconds)."""
    if not header or not (status == 429 or status >= 500):
        return None
    try:
        seconds = int(header)
    except ValueError:
        return None
    return min(max(float(seconds), 0.0), MAX_RETRY_AFTER)


def _error(status: int, raw: bytes) -> ApiError:
    try:
        body = orjson.loads(raw)
        if isinstance(body, dict) and body.get("kind") == "Status":
            return ApiError.from_status(body)
    except orjson.JSONDecodeError:
        pass
    return ApiError(status, "Unknown", raw.decode(errors="replace")[:500])


def _load_client_certificate(ctx: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    """``ssl`` loads a certificate chain only from files: a private temporary directory, removed at once."""
    import os
    import tempfile

    with tempfile.TemporaryDirectory(prefix="podlife-client-") as tmp:
        cert_path, key_path = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
        for path, data in ((cert_path, cert), (key_path, key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        ctx.load_cert_chain(cert_path, key_path)
