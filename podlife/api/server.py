"""The HTTPS API server: routing, authentication, errors, and the non-resource paths.

One aiohttp application serves everything. Non-resource paths (``/version``,
``/healthz``, ``/livez``, ``/readyz``, discovery, OpenAPI) are answered here; every
resource path is resolved against the catalog and handed to
:mod:`podlife.api.handlers` -- except the read-only kinds served from providers
(``podtraces``, ``metrics.k8s.io``), which :mod:`podlife.api.virtual` answers first.
Middlewares wrap every request, outermost first:

- the request metrics behind ``/metrics`` (:mod:`podlife.api.metrics`: Kubernetes'
  ``apiserver_request_total``, ``apiserver_request_duration_seconds``, ...);
- the web UI (:mod:`podlife.api.ui`): it answers every ``/ui`` request itself, with its own
  login and the API's authenticator and authorizer; other paths go on;
- pretty printing: a whole JSON answer is indented when ``pretty`` is true (or the
  client is curl, Wget or a browser), as Kubernetes does;
- errors: an :class:`~podlife.machinery.errors.ApiError` becomes its ``Status`` (so does a
  body over the 3 MiB limit: 413); anything else is logged and answered with a 500
  ``Status`` -- never a traceback;
- authentication: the chain of :mod:`podlife.api.authn` (client certificate, admin token,
  static tokens, service-account tokens) names the caller; bad credentials are a 401,
  and a request without any is ``system:anonymous``, let through only to the paths
  Kubernetes' default RBAC opens to everyone (version and health, which the kubectl
  dispatcher calls before it has picked a kubectl).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from .. import __version__
from ..registry.catalog import Catalog
from ..machinery.constants import KUBERNETES_MINOR
from . import discovery, openapi
from ..machinery import errors
from .decode import MAX_REQUEST_BODY_BYTES
from .handlers import handle, json_response, pretty_json, resolve, wants_pretty
from .authn import (
    AUTHENTICATION_OPTIONS, AUTHENTICATOR, AuthenticationFailed, AuthenticationOptions, Authenticator, anonymous_allowed,
    build_authenticator, context_lookups, request_credentials,
)
from .audit import AuditLog
from .authorization import AUTHORIZER, UnionAuthorizer, authorization_middleware
from .authz.rbac import RBACAuthorizer
from .flowcontrol import FlowControl
from .identity import TokenIssuer, load_signing_key, new_signing_key
from .authz.node import NodeAuthorizer
from .rbac_source import CachePodSource, CacheRBACSource
from .metrics import RequestMetrics, serve_metrics, track_storage
from .keys import KUBELET_SESSION, KUBELET_TLS, KUBELET_TOKEN, SUBRESOURCE_HANDLERS, TOKEN_ISSUER, USER
from .rest import ApiContext
from .reviews import serve_token
from .scale import serve_scale
from .streaming import serve_stream
from . import metrics_api, podtraces
from .virtual import VirtualAPI
from .ui import WebUI

log = logging.getLogger(__name__)

#: Go's http.Server reads up to 1 MiB of request line and headers (a long labelSelector fits)
MAX_HEADER_BYTES = 1 << 20


def version_info() -> dict[str, str]:
    return {
        "major": "1",
        "minor": KUBERNETES_MINOR,
        "gitVersion": f"v1.{KUBERNETES_MINOR}.0-podlife.{__version__}",
        "gitCommit": "podlife",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "python",
        "compiler": "cpython",
        "platform": "linux/amd64",
    }


def _status_response(exc: errors.ApiError) -> web.Response:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    return json_response(orjson.dumps(exc.status()), exc.code, headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    try:
        return await handler(request)
    except errors.ApiError as exc:
        return _status_response(exc)
    except web.HTTPRequestEntityTooLarge:  # aiohttp stopped reading at the body limit
        return _status_response(errors.request_entity_too_large(f"limit is {MAX_REQUEST_BODY_BYTES}"))
    except web.HTTPException:
        raise
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as exc:  # a bug: log it, never show a traceback to the client
        log.exception("internal error serving %s %s", request.method, request.path)
        return _status_response(errors.internal(type(exc).__name__))


@web.middleware
async def pretty_middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Indent whole JSON answers (objects, lists, Status errors) when the client asks as Kubernetes allows."""
    response = await handler(request)
    if type(response) is web.Response and response.content_type == "application/json" and wants_pretty(request):
        body = response.body
        if isinstance(body, bytes) and body:
            response.body = pretty_json(body)
    return response


def auth_middleware(authenticator: Authenticator | None) -> Any:
    """Name the caller of every request (``request[USER]``); None turns authentication off (everyone is admin)."""

    @web.middleware
    async def authenticate(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if authenticator is None:
            return await handler(request)
        try:
            response = authenticator.authenticate(request_credentials(request))
        except AuthenticationFailed as exc:
            log.debug("Unable to authenticate the request: %s", exc)
            return _status_response(errors.unauthorized())
        if response.user.anonymous and not anonymous_allowed(request.method, request.path):
            return _status_response(errors.unauthorized())
        request[USER] = response.user
        return await handler(request)

    return authenticate


class APIServer:
    """The API over HTTP(S) for an :class:`ApiContext`."""

    def __init__(self, ctx: ApiContext, *, token: str | None = None, kubelet_token: str | None = None,
                 service_account_key: bytes | None = None, authentication: AuthenticationOptions | None = None,
                 kubelet_tls: ssl.SSLContext | None = None, flow_control: FlowControl | None = None,
                 audit: AuditLog | None = None) -> None:
        """``token`` is the admin bearer token; ``service_account_key`` the PEM key tokens are signed with
        (a fresh one if None); without a token and ``authentication`` every request is the admin."""
        self.ctx = ctx
        self.catalog: Catalog = ctx.catalog
        self.ready = False
        self.requests = RequestMetrics(ctx.catalog.lookup)  # virtual kinds too
        track_storage(ctx.watch_cache)
        options = authentication or AuthenticationOptions()
        signing_key = load_signing_key(service_account_key) if service_account_key else new_signing_key()
        issuer = TokenIssuer(signing_key, options.service_account_issuers[0])
        authenticator = None if token is None and authentication is None else build_authenticator(
            options, admin_token=token, service_account_keys=[issuer.public_key], lookups=context_lookups(ctx))
        self.ui = WebUI(ctx)  # /ui is answered before the API's chain: its cookie is no API credential
        middlewares = [self.requests.middleware, self.ui.middleware, pretty_middleware, error_middleware,
                       auth_middleware(authenticator)]
        #: who may do what: RBAC over this server's own caches (with authentication only)
        self.authorizer: UnionAuthorizer | None = None
        self.audit = audit
        if audit is not None:  # after authentication (events name the user), around everything else
            middlewares.append(audit.middleware)
        if authenticator is not None:
            # kube-apiserver's order: authentication, audit, priority and fairness, authorization
            self.authorizer = UnionAuthorizer([NodeAuthorizer(CachePodSource(ctx)), RBACAuthorizer(CacheRBACSource(ctx))])
            self.flow_control = flow_control or FlowControl()
            middlewares += [self.flow_control.middleware, authorization_middleware(self.authorizer)]
        self.app = web.Application(middlewares=middlewares, client_max_size=MAX_REQUEST_BODY_BYTES)
        if self.authorizer is not None:
            self.app[AUTHORIZER] = self.authorizer
        # in-process components (the LocalClient) are authorized and audited like HTTP callers
        ctx.authorizer, ctx.audit = self.authorizer, audit
        self.app[TOKEN_ISSUER] = issuer
        self.app[AUTHENTICATION_OPTIONS] = options
        ctx.token_issuer, ctx.authentication_options = issuer, options
        if authenticator is not None:
            self.app[AUTHENTICATOR] = authenticator
        self.app[KUBELET_TOKEN] = kubelet_token or token or ""
        if kubelet_tls is not None:  # kubelets are dialled over TLS with our client certificate
            self.app[KUBELET_TLS] = kubelet_tls
        handlers: dict[str, Callable[..., Awaitable[Any]]] = {
            "scale": serve_scale, "token": serve_token, "exec": serve_stream, "attach": serve_stream,
            "portforward": serve_stream}
        self.app[SUBRESOURCE_HANDLERS] = handlers
        #: read-only kinds served from providers (podtraces, metrics.k8s.io), in the catalog while served
        self.virtual = VirtualAPI(ctx, [*podtraces.resource_types(), *metrics_api.resource_types()])
        self.app.router.add_route("*", "/{path:.*}", self.dispatch)
        self.app.on_startup.append(self._on_startup)
        self.app.on_cleanup.append(self._on_cleanup)
        self.app.on_cleanup.append(self.ui.close)
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _on_startup(self, app: web.Application) -> None:
        tls = app.get(KUBELET_TLS)
        connector = aiohttp.TCPConnector(ssl=tls) if tls is not None else None
        app[KUBELET_SESSION] = aiohttp.ClientSession(connector=connector)

    async def _on_cleanup(self, app: web.Application) -> None:
        await app[KUBELET_SESSION].close()

    # ---- lifecycle ------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 6443, ssl_context: ssl.SSLContext | None = None) -> str:
        self._runner = web.AppRunner(self.app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0,
                                     max_line_size=MAX_HEADER_BYTES, max_field_size=MAX_HEADER_BYTES)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=ssl_context, backlog=1024, reuse_address=True)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        scheme = "https" if ssl_context else "http"
        self.url = f"{scheme}://{host}:{bound}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.audit is not None:
            self.audit.close()

    # ---- routing --------------------------------------------------------------------

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        segs = [s for s in path.split("/") if s]
        self.virtual.sync()  # a provider set or cleared since the last request (a few attribute reads)
        if not segs:
            return self._root()
        head = segs[0]
        if head == "api":
            return await self._core(request, segs[1:])
        if head == "apis":
            return await self._groups(request, segs[1:])
        if head == "version":
            return json_response(orjson.dumps(version_info()))
        if head in ("healthz", "livez", "readyz"):
            return self._health(head)
        if head == "openapi":
            return self._openapi(request, segs[1:])
        if head == "metrics" and len(segs) == 1:
            return serve_metrics()
        raise errors.path_not_found(path)

    def _root(self) -> web.Response:
        paths = ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/openapi/v3", "/readyz", "/version"]
        paths += [f"/apis/{g}" for g, _ in self.catalog.group_versions() if g]
        paths += [f"/apis/{g}/{v}" for g, v in self.catalog.group_versions() if g]
        return json_response(orjson.dumps({"paths": sorted(set(paths))}))

    def _health(self, which: str) -> web.Response:
        if which == "readyz" and not self.ready:
            return web.Response(text="[-]ready failed: the cluster is starting\nreadyz check failed\n", status=500)
        return web.Response(text="ok", content_type="text/plain")

    async def _core(self, request: web.Request, segs: list[str]) -> web.StreamResponse:
        if not segs:
            return self._discovery(request, legacy=True)
        version, rest = segs[0], segs[1:]
        if not rest:
            doc = discovery.api_resource_list(self.catalog, "", version)
            if doc is None:
                raise errors.path_not_found(request.path)
            return json_response(orjson.dumps(doc))
        return await handle(request, resolve(self.ctx, "", version, rest))

    async def _groups(self, request: web.Request, segs: list[str]) -> web.StreamResponse:
        if not segs:
            return self._discovery(request, legacy=False)
        group = segs[0]
        if len(segs) == 1:
            doc = discovery.api_group(self.catalog, group)
            if doc is None:
                raise errors.path_not_found(request.path)
            return json_response(orjson.dumps(doc))
        version, rest = segs[1], segs[2:]
        if not rest:
            doc = discovery.api_resource_list(self.catalog, group, version)
            if doc is None:
                raise errors.path_not_found(request.path)
            return json_response(orjson.dumps(doc))
        virtual = self.virtual.resolve(group, version, rest)
        if virtual is not None:
            return await self.virtual.handle(request, virtual)
        return await handle(request, resolve(self.ctx, group, version, rest))

    def _discovery(self, request: web.Request, legacy: bool) -> web.Response:
        accept = request.headers.get("Accept", "")
        if "as=APIGroupDiscoveryList" in accept:
            v2 = "v=v2;" in accept or "v=v2," in accept or accept.rstrip().endswith("v=v2")
            ctype = discovery.AGGREGATED_CONTENT_TYPE if v2 or "v2beta1" not in accept else discovery.AGGREGATED_V2BETA1_CONTENT_TYPE
            api_version = "apidiscovery.k8s.io/v2" if ctype == discovery.AGGREGATED_CONTENT_TYPE else "apidiscovery.k8s.io/v2beta1"
            body = orjson.dumps(discovery.aggregated(self.catalog, legacy, api_version))
            cache = discovery.cache_headers(body)
            if request.headers.get("If-None-Match") == cache["ETag"]:
                return web.Response(status=304, headers=cache)
            return web.Response(body=body, headers={"Content-Type": ctype, **cache})
        doc = discovery.api_versions() if legacy else discovery.api_group_list(self.catalog)
        return json_response(orjson.dumps(doc))

    def _openapi(self, request: web.Request, segs: list[str]) -> web.Response:
        if segs[:1] != ["v3"]:
            raise errors.path_not_found(request.path)  # v2 is only asked for as protobuf: 404 is right
        if len(segs) == 1:
            gvs = [(g, v, list(self.catalog.in_group_version(g, v))) for g, v in self.catalog.group_versions()]
            return json_response(orjson.dumps(openapi.openapi_v3_root(gvs, self.catalog.schemas)))
        rel = segs[1:]
        if rel[0] == "api" and len(rel) == 2:
            group, version = "", rel[1]
        elif rel[0] == "apis" and len(rel) == 3:
            group, version = rel[1], rel[2]
        else:
            raise errors.path_not_found(request.path)
        resources = list(self.catalog.in_group_version(group, version))
        if not resources:
            raise errors.path_not_found(request.path)
        etag = openapi.document_etag(group, version, resources, self.catalog.schemas)
        headers = {"ETag": etag, "Cache-Control": "public, immutable" if request.query.get("hash") else "no-cache, private"}
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        body = openapi.openapi_v3_document(group, version, resources, self.catalog.schemas)
        return json_response(body, headers=headers)
