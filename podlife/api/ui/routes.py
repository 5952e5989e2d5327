"""The web UI's HTTP side: one middleware that answers every ``/ui`` request before the API chain.

Reads: the API server's authenticator and authorizer (from the aiohttp application, so
the UI judges callers exactly as the API does), the watch caches (pods, nodes, ports,
events), ``ctx.trace``, and the built front end in ``static/``. Writes: nothing to the
cluster -- only login codes, sessions (:mod:`.sessions`) and the answers.

Why a middleware placed before authentication: a ``/ui`` request never reaches the API's
handlers, so the session cookie is a credential for ``/ui`` paths and nowhere else (the
API's authentication never looks at cookies), and an unauthenticated page request can be
answered with the login page (a 401) instead of a JSON ``Status``.

Who the caller is, in order: the request's own credentials (``Authorization: Bearer``, a
client certificate), else the session cookie's stored credentials, authenticated again on
every request. Anonymous callers get the 401 login page (``/ui/api/...``: a 401
``Status``). Each read is then authorized as that user with the API server's authorizer,
as the matching API request would be (``list podtraces`` per namespace for the Gantt rows,
``get pods``/``get podtraces``/``list events``/``get ports``/``get pods/log`` for a pod's
page); a read the user may not make is left out, the rest of the page still shows.

Routes (all under ``/ui/``):

======================================  ===========================================================
``GET  /ui/``, ``/ui/pods/<ns>/<name>``  the single-page app (``static/index.html``)
``GET  /ui/static/<file>``               its modules and styles (``login.css`` also unauthenticated)
``GET  /ui/login?code=<code>``           redeem a one-time code: set the session cookie
``POST /ui/login`` (form ``token``)      log in with a bearer token: set the session cookie
``POST /ui/logout``                      end the session
``POST /ui/api/login-codes``             mint a code (``podlife ui``); bearer or certificate only
``GET  /ui/api/whoami``                  the user of the session
``GET  /ui/api/stream[?pod=ns/name]``    Server-Sent Events: snapshot, then batched updates
``GET  /ui/api/pods/<ns>/<name>``        a pod's page: pod, trace, port, events
``GET  /ui/api/pods/<ns>/<name>/log``    its logs, through the API's ``pods/log`` path
======================================  ===========================================================
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from ...machinery import errors
from ..authn import AUTHENTICATOR, AuthenticationFailed, Credentials, request_credentials
from ..authorization import AUTHORIZER
from ..authz.attributes import Attributes
from ..authz.rbac import forbidden_error
from ..identity import ADMIN_USER, UserInfo
from .sessions import CODE_TTL, SESSION_TTL, Sessions
from .timeline import Timeline

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
PREFIX = "/ui"
COOKIE = "podlife-ui-session"
#: where the trace objects are served (``kubectl get podtraces``): the Gantt rows are those
TRACE_GROUP, TRACE_VERSION, TRACE_RESOURCE = "trace.podlife.io", "v1alpha1", "podtraces"
NETWORK_GROUP = "network.podlife.io"
PORT_ANNOTATION, SUBNET_ANNOTATION = "network.podlife.io/port", "network.podlife.io/subnet"
#: what the pages may load: only this origin's files, no inline script, never framed
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
_CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml"}
#: files served without a session: the login page's own style
_PUBLIC_STATIC = frozenset({"login.css"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload) + b"\n", status=status, content_type="application/json",
                        headers=SECURITY_HEADERS)


def _status(exc: errors.ApiError) -> web.Response:
    return _json(exc.status(), exc.code)


class WebUI:
    """The ``/ui`` pages and their data for one API server (see the module's design)."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.sessions = Sessions()
        self.timeline = Timeline(ctx)
        self._static: dict[str, bytes] = {}

    async def close(self, app: web.Application | None = None) -> None:
        await self.timeline.close()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path != PREFIX and not path.startswith(PREFIX + "/"):
            return await handler(request)
        try:
            return await self._serve(request, path[len(PREFIX):])
        except errors.ApiError as exc:
            return _status(exc)
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception as exc:  # a bug: log it, never show a traceback
            log.exception("internal error serving %s %s", request.method, path)
            return _status(errors.internal(type(exc).__name__))

    # ---- who is asking ---------------------------------------------------------------------

    def _authenticate(self, request: web.Request, credentials: Credentials) -> UserInfo | None:
        authenticator = request.app.get(AUTHENTICATOR)
        if authenticator is None:  # authentication off: everyone is the admin, as in the API
            return ADMIN_USER
        try:
            user = authenticator.authenticate(credentials).user
        except AuthenticationFailed:
            return None
        return None if user.anonymous else user

    def _caller(self, request: web.Request) -> tuple[UserInfo | None, Credentials]:
        """The user of the request's own credentials, else of its session; None: nobody (log in)."""
        own = request_credentials(request)
        if own.authorization or own.client_certificate:
            return self._authenticate(request, own), own
        session = request.cookies.get(COOKIE, "")
        stored = self.sessions.credentials(session)
        if stored is None:
            return None, own
        user = self._authenticate(request, stored)
        if user is None:  # its credentials were revoked or expired: so is the session
            self.sessions.close(session)
        return user, stored

    @staticmethod
    def allowed(request: web.Request, user: UserInfo, verb: str, resource: str, namespace: str = "", name: str = "",
                group: str = "", version: str = "v1", subresource: str = "") -> bool:
        """Whether the API's authorizer lets ``user`` make this read (always, without authorization)."""
        authorizer = request.app.get(AUTHORIZER)
        if authorizer is None:
            return True
        return authorizer.authorize(Attributes(user, verb, True, group, version, resource, subresource, namespace,
                                               name, request.path)).allowed

    # ---- routing ---------------------------------------------------------------------------

    async def _serve(self, request: web.Request, rel: str) -> web.StreamResponse:
        method = request.method
        if rel == "":
            raise web.HTTPMovedPermanently(PREFIX + "/")
        if rel == "/login":
            if method == "GET":
                return self._login_with_code(request)
            if method == "POST":
                return await self._login_with_token(request)
            raise errors.method_not_allowed()
        if rel.startswith("/static/") and rel[len("/static/"):] in _PUBLIC_STATIC:
            return self._file(rel[len("/static/"):])
        user, credentials = self._caller(request)
        api = rel.startswith("/api/")
        if user is None:
            if api or method not in ("GET", "HEAD"):
                return _status(errors.unauthorized())
            return self._login_page(401)
        if rel == "/logout" and method == "POST":
            return self._logout(request)
        if api:
            return await self._api(request, rel[len("/api/"):], user)
        if method not in ("GET", "HEAD"):
            raise errors.method_not_allowed()
        if rel.startswith("/static/"):
            return self._file(rel[len("/static/"):])
        if rel == "/" or rel.startswith("/pods/"):
            return self._file("index.html")
        raise errors.path_not_found(request.path)

    async def _api(self, request: web.Request, rel: str, user: UserInfo) -> web.StreamResponse:
        parts = [p for p in rel.split("/") if p]
        method = request.method
        if parts == ["login-codes"] and method == "POST":
            return self._mint_code(request)
        if method != "GET":
            raise errors.method_not_allowed()
        if parts == ["whoami"]:
            return _json({"user": user.as_dict(), "tracing": self.ctx.trace is not None})
        if parts == ["stream"]:
            return await self._stream(request, user)
        if len(parts) in (3, 4) and parts[0] == "pods" and (len(parts) == 3 or parts[3] == "log"):
            if len(parts) == 3:
                return self._pod(request, user, parts[1], parts[2])
            return await self._log(request, user, parts[1], parts[2])
        raise errors.path_not_found(request.path)

    # ---- pages and files ---------------------------------------------------------------------

    def _read_static(self, name: str) -> bytes | None:
        cached = self._static.get(name)
        if cached is None:
            path = (STATIC / name).resolve()
            if STATIC.resolve() not in path.parents or not path.is_file():
                return None
            cached = self._static[name] = path.read_bytes()
        return cached

    def _file(self, name: str, status: int = 200) -> web.Response:
        body = self._read_static(name)
        if body is None:
            raise errors.path_not_found(name)
        ctype = _CONTENT_TYPES.get(Path(name).suffix, "application/octet-stream")
        headers = dict(SECURITY_HEADERS)
        if not name.endswith(".html"):  # modules and styles: revalidated; pages: never stored
            headers["Cache-Control"] = "no-cache"
        return web.Response(body=body, status=status, headers={**headers, "Content-Type": f"{ctype}; charset=utf-8"})

    def _login_page(self, status: int, message: str = "") -> web.Response:
        body = (self._read_static("login.html") or b"").replace(b"{{message}}", html.escape(message).encode())
        return web.Response(body=body, status=status,
                            headers={**SECURITY_HEADERS, "Content-Type": "text/html; charset=utf-8",
                                     "WWW-Authenticate": 'Bearer realm="podlife"'})

    def _logged_in(self, credentials: Credentials) -> web.Response:
        """Open a session: set its cookie and go on to the UI (a page, not a redirect, so the
        SameSite=Strict cookie is sent with the next, same-site navigation)."""
        session = self.sessions.open(credentials)
        response = self._file("logged-in.html")
        response.set_cookie(COOKIE, session, path=PREFIX + "/", max_age=int(SESSION_TTL), secure=True, httponly=True,
                            samesite="Strict")
        return response

    def _login_with_code(self, request: web.Request) -> web.Response:
        code = request.query.get("code", "")
        if not code:
            user, _ = self._caller(request)
            if user is not None:
                raise web.HTTPSeeOther(PREFIX + "/")
            return self._login_page(401)
        credentials = self.sessions.redeem(code)
        if credentials is None or self._authenticate(request, credentials) is None:
            return self._login_page(401, "That login code is unknown, used or expired: run `podlife ui` again.")
        return self._logged_in(credentials)

    async def _login_with_token(self, request: web.Request) -> web.Response:
        if not _same_origin(request):
            raise errors.forbidden("cross-origin login refused")
        form = await request.post()
        token = str(form.get("token") or "").strip()
        credentials = Credentials(f"Bearer {token}")
        if not token or self._authenticate(request, credentials) is None:
            return self._login_page(401, "That token is not valid.")
        return self._logged_in(credentials)

    def _logout(self, request: web.Request) -> web.Response:
        if not _same_origin(request):
            raise errors.forbidden("cross-origin logout refused")
        self.sessions.close(request.cookies.get(COOKIE, ""))
        response = self._login_page(200, "Logged out.")
        response.del_cookie(COOKIE, path=PREFIX + "/")
        return response

    def _mint_code(self, request: web.Request) -> web.Response:
        own = request_credentials(request)
        if not (own.authorization or own.client_certificate):  # a session cannot mint codes (no CSRF)
            raise errors.forbidden("login codes are minted with a bearer token or a client certificate, "
                                   "not a browser session")
        code = self.sessions.mint_code(own)
        return _json({"code": code, "path": f"{PREFIX}/login?code={code}", "expiresInSeconds": int(CODE_TTL)})

    # ---- data -----------------------------------------------------------------------------------

    def _row_resource(self) -> tuple[str, str, str]:
        if self.ctx.trace is not None:
            return TRACE_GROUP, TRACE_VERSION, TRACE_RESOURCE
        return "", "v1", "pods"

    async def _stream(self, request: web.Request, user: UserInfo) -> web.StreamResponse:
        group, version, resource = self._row_resource()
        pod = request.query.get("pod")
        keys = [pod] if pod else None
        namespaces = None
        if not self.allowed(request, user, "list", resource, group=group, version=version):
            verdicts: dict[str, bool] = {}

            def namespaces(ns: str) -> bool:
                if ns not in verdicts:
                    verdicts[ns] = self.allowed(request, user, "list", resource, ns, group=group, version=version)
                return verdicts[ns]
        with_nodes = pod is None and self.allowed(request, user, "list", "nodes")
        response = web.StreamResponse(headers={**SECURITY_HEADERS, "Content-Type": "text/event-stream",
                                               "X-Accel-Buffering": "no"})
        await response.prepare(request)
        listener = self.timeline.listen(namespaces=namespaces, keys=keys, with_nodes=with_nodes)
        try:
            while True:
                try:
                    message = await asyncio.wait_for(listener.queue.get(), 15.0)
                except TimeoutError:
                    message = b": keep-alive\n\n"
                if message is None:
                    break
                await response.write(message)
        except (ConnectionResetError, RuntimeError):  # the browser went away
            pass
        finally:
            self.timeline.unlisten(listener)
        return response

    def _cached(self, group: str, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        rest = self.ctx.rest_by(group, "v1", plural)
        found = rest.cache.get(rest.rt.key(namespace, name)) if rest is not None else None
        return found.obj if found is not None else None

    def _pod(self, request: web.Request, user: UserInfo, namespace: str, name: str) -> web.Response:
        """A pod's page: what the user may read of the pod, its trace, its Port and its Events."""
        forbidden: list[str] = []

        def may(verb: str, resource: str, group: str = "", version: str = "v1", obj_name: str = name) -> bool:
            ok = self.allowed(request, user, verb, resource, namespace, obj_name, group=group, version=version)
            if not ok:
                forbidden.append(f"{resource}.{group}" if group else resource)
            return ok

        pod = self._cached("", "pods", namespace, name) if may("get", "pods") else None
        if pod is not None:
            pod = {**pod, "metadata": {k: v for k, v in pod["metadata"].items() if k != "managedFields"}}
        trace = None
        if self.ctx.trace is not None and may("get", TRACE_RESOURCE, TRACE_GROUP, TRACE_VERSION):
            trace = self.ctx.trace.get(namespace, name)
        if pod is None and trace is None:
            if forbidden:  # nothing of it may be read: the API's own 403 for the pod
                raise forbidden_error(Attributes(user, "get", True, "", "v1", "pods", "", namespace, name, request.path))
            raise errors.ApiError(404, "NotFound", f'pods "{name}" not found', {"name": name, "kind": "pods"})
        annotations = ((pod or {}).get("metadata") or {}).get("annotations") or {}
        # the Port is named after its pod (network/controller.py); the annotations are its Neutron documents
        port = self._cached(NETWORK_GROUP, "ports", namespace, name) if may("get", "ports", NETWORK_GROUP) else None
        events = self._events(namespace, name, pod) if may("list", "events", obj_name="") else []
        return _json({"pod": pod, "trace": trace, "port": port, "events": events,
                      "network": {"port": _document(annotations.get(PORT_ANNOTATION)),
                                  "subnet": _document(annotations.get(SUBNET_ANNOTATION))},
                      "canLogs": self.allowed(request, user, "get", "pods", namespace, name, subresource="log"),
                      "forbidden": sorted(set(forbidden))})

    def _events(self, namespace: str, name: str, pod: dict[str, Any] | None) -> list[dict[str, Any]]:
        rest = self.ctx.rest_by("", "v1", "events")
        if rest is None:
            return []
        uid = ((pod or {}).get("metadata") or {}).get("uid")
        found = []
        for co in rest.cache.in_namespace(namespace):
            involved = co.obj.get("involvedObject") or {}
            if involved.get("kind") == "Pod" and involved.get("name") == name and (
                    uid is None or involved.get("uid") in (None, "", uid)):
                event = co.obj
                found.append({k: event.get(k) for k in ("type", "reason", "message", "count", "firstTimestamp",
                                                         "lastTimestamp", "eventTime", "source",
                                                         "reportingComponent")})
        found.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
        return found

    async def _log(self, request: web.Request, user: UserInfo, namespace: str, name: str) -> web.StreamResponse:
        """The pod's log, served by the API's own ``pods/log`` path (the kubelet of a real node)."""
        from ..handlers import resolve
        from ..logs import serve_log

        if not self.allowed(request, user, "get", "pods", namespace, name, subresource="log"):
            raise forbidden_error(Attributes(user, "get", True, "", "v1", "pods", "log", namespace, name, request.path))
        target = resolve(self.ctx, "", "v1", ["namespaces", namespace, "pods", name, "log"])
        return await serve_log(request, target)


def _document(annotation: str | None) -> Any:
    """A network annotation's JSON document (as text when it is not JSON; None when absent)."""
    if not annotation:
        return None
    try:
        return orjson.loads(annotation)
    except orjson.JSONDecodeError:
        return annotation


def _same_origin(request: web.Request) -> bool:
    """A form post from this origin (browsers send ``Origin``; a missing one is a non-browser client)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return origin == f"{request.scheme}://{request.host}"
