"""The API server's Prometheus metrics, with kube-apiserver's names, labels and buckets.

Design
------
What it reads: every HTTP request (one middleware, outermost, so the duration runs from
the request's arrival as Kubernetes' ``WithRequestReceivedTimestamp`` does) and, at
scrape time only, the watch caches (object counts). What it writes: the process-wide
registry (:mod:`podlife.machinery.metrics`), served by ``GET /metrics``.

- ``apiserver_request_total{verb,dry_run,group,version,resource,subresource,scope,component,code}``
  and ``apiserver_request_duration_seconds`` (the same labels but ``code``; Kubernetes'
  SLO buckets) -- one increment and one observation when a request ends. A watch ends
  when its stream does, so like Kubernetes it is counted then, with its whole duration
  (Kubernetes' SLO queries leave ``WATCH`` and ``CONNECT`` out for that reason).
- The labels as kube-apiserver's ``MonitorRequest`` names them: the verb is the method,
  ``LIST`` for a GET of a collection, ``WATCH`` for a watch, ``APPLY`` for a server-side
  apply patch, ``CONNECT`` for ``log``/``exec``/``attach``/``portforward``/``proxy``
  (a collection DELETE stays ``DELETE``, as in Kubernetes); the scope is ``resource``
  for a named object or a create, else ``namespace`` or ``cluster``; the component is
  ``apiserver``. Of the non-resource paths only the health checks are counted
  (``/healthz``, ``/livez``, ``/readyz``: path in ``subresource``, no component), as
  Kubernetes instruments only those.
- What Kubernetes never counts is not counted here either: requests refused by
  authentication (401) or authorization (403) -- they stop in filters before the
  instrumented handler -- and paths that name no served resource (no route).
- ``apiserver_current_inflight_requests{request_kind}``: the most requests executing at
  once during the last second, ``readOnly`` (get, list) and ``mutating``, long-running
  ones not counted (kube's max-in-flight filter). ``apiserver_longrunning_requests``:
  the watches and connections open now.
- ``apiserver_storage_objects{resource}`` (and its successor ``apiserver_resource_objects
  {group,resource}``): the objects in each watch cache, read when scraped.

Cost on the request path (2 to 3 microseconds; 7 for a request line not seen before):
a request line (method, path with query) seen recently maps straight to its
:class:`_Series` -- its histogram child, its counter children by code, its gauge or
in-flight kind, all found once; otherwise the request attributes are parsed
(:func:`~podlife.api.authz.attributes.request_attributes`) and the series looked up by its
labels. Then one ``inc`` and one ``observe``.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiohttp import web
from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

from ..machinery.metrics import API_LATENCY_BUCKETS, Children, TEXT_CONTENT_TYPE, exposition
from .authorization import DECISION
from .authz.attributes import Attributes, RequestInfoError, request_attributes
from .identity import UserInfo
from .keys import USER

__all__ = ["RequestMetrics", "serve_metrics", "track_storage"]

_LABELS = ["verb", "dry_run", "group", "version", "resource", "subresource", "scope", "component"]

REQUESTS = Counter(
    "apiserver_request_total",
    "Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, "
    "component, and HTTP response code.", [*_LABELS, "code"])
LATENCIES = Histogram(
    "apiserver_request_duration_seconds",
    "Response latency distribution in seconds for each verb, dry run value, group, version, resource, "
    "subresource, scope and component.", _LABELS, buckets=API_LATENCY_BUCKETS)
LONG_RUNNING = Gauge(
    "apiserver_longrunning_requests",
    "Gauge of all active long-running apiserver requests broken out by verb, group, version, resource, scope "
    "and component. Not all requests are tracked this way.",
    ["verb", "group", "version", "resource", "subresource", "scope", "component"])

#: Kubernetes' validRequestMethods: any other verb is reported as "other"
_VALID_VERBS = frozenset({"APPLY", "CONNECT", "CREATE", "DELETE", "DELETECOLLECTION", "GET", "LIST", "PATCH",
                          "POST", "PROXY", "PUT", "UPDATE", "WATCH", "WATCHLIST"})
_CONNECT_SUBRESOURCES = frozenset({"log", "exec", "portforward", "attach", "proxy"})
#: kube-apiserver's long-running check: these verbs, or these subresources
_LONG_RUNNING_VERBS = frozenset({"watch", "proxy"})
_LONG_RUNNING_SUBRESOURCES = frozenset({"attach", "exec", "proxy", "log", "portforward"})
_READ_ONLY_VERBS = frozenset({"get", "list", "watch"})
_HEALTH_PATHS = ("/healthz", "/livez", "/readyz")
_APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
_NOBODY = UserInfo("")
_SEEN_MAX = 4096


def _scope(attrs: Attributes) -> str:
    """Kubernetes' CleanScope."""
    if attrs.name or attrs.verb == "create":
        return "resource"
    if attrs.namespace:
        return "namespace"
    return "cluster" if attrs.resource_request else ""


def _reported_verb(request: web.Request, attrs: Attributes, scope: str) -> str:
    """Kubernetes' cleanVerb(CanonicalVerb(method, scope), ...)."""
    method = request.method
    verb = method
    if method in ("GET", "HEAD"):
        verb = "LIST" if scope not in ("resource", "") else "GET"
        value = request.query.get("watch")
        if attrs.verb == "watch" or (value is not None and value.lower() not in ("0", "false")):
            verb = "WATCH"
    elif method == "PATCH" and request.content_type == _APPLY_CONTENT_TYPE:
        verb = "APPLY"
    if attrs.resource_request and attrs.subresource in _CONNECT_SUBRESOURCES:
        verb = "CONNECT"
    return verb if verb in _VALID_VERBS else "other"


def _dry_run(request: web.Request) -> str:
    """Kubernetes' cleanDryRun: the distinct values, sorted, or "invalid"."""
    if "dryRun" not in request.query:
        return ""
    values = sorted(set(request.query.getall("dryRun")))
    return ",".join(values) if all(v == "All" for v in values) else "invalid"


class _Inflight:
    """Executing requests per kind now, and the most there were within the last second."""

    __slots__ = ("now", "peak", "previous_peak", "window_start")

    def __init__(self) -> None:
        self.now = {"readOnly": 0, "mutating": 0}
        self.peak = {"readOnly": 0, "mutating": 0}
        self.previous_peak = {"readOnly": 0, "mutating": 0}
        self.window_start = 0.0

    def enter(self, kind: str, at: float) -> None:
        if at - self.window_start >= 1.0:
            self._roll(at)
        n = self.now[kind] = self.now[kind] + 1
        if n > self.peak[kind]:
            self.peak[kind] = n

    def leave(self, kind: str) -> None:
        self.now[kind] -= 1

    def _roll(self, at: float) -> None:
        self.previous_peak = self.peak if at - self.window_start < 2.0 else dict(self.now)
        self.peak = dict(self.now)
        self.window_start = at

    def reading(self) -> dict[str, int]:
        at = time.perf_counter()
        if at - self.window_start >= 1.0:
            self._roll(at)
        return {kind: max(self.peak[kind], self.previous_peak[kind]) for kind in self.now}


class RequestMetrics:
    """The request metrics of one API server: ``middleware`` measures, the registry shows.

    ``lookup(group, version, resource)`` is the served resource type of a path, or None:
    requests for anything else (or a subresource it does not have) are not counted, as
    Kubernetes has no route for them.
    """

    def __init__(self, lookup: Callable[[str, str, str], Any]) -> None:
        self._lookup = lookup
        self._requests: Children[Any] = Children(REQUESTS)
        self._latencies: Children[Any] = Children(LATENCIES)
        self._long_running: Children[Any] = Children(LONG_RUNNING)
        self.inflight = _Inflight()
        #: the series of recent request lines (method, path and query; a PATCH's content type): creates and
        #: lists repeat theirs. Only counted requests are kept (a resource may be served later); bounded.
        self._seen: dict[tuple[str, str, str], _Series] = {}
        self._by_labels: dict[tuple[str, ...], _Series] = {}  # the few distinct series
        _INFLIGHT_SOURCES.add(self)

    def _series(self, request: web.Request) -> _Series | None:
        """Where a request is counted, or None when it is not."""
        method = request.method
        key = (method, request.raw_path, request.content_type if method == "PATCH" else "")
        found = self._seen.get(key)
        if found is None:
            found = self._parse(request)
            if found is not None:
                if len(self._seen) >= _SEEN_MAX:
                    self._seen.clear()
                self._seen[key] = found
        return found

    def _parse(self, request: web.Request) -> _Series | None:
        try:
            attrs = request_attributes(request.method, request.path, request.query, _NOBODY)
        except RequestInfoError:
            return None
        if not attrs.resource_request:
            path = request.path.rstrip("/")
            if not path.startswith(_HEALTH_PATHS):
                return None
            return self._new_series((request.method, "", "", "", "", path, "", ""), attrs)
        rt = self._lookup(attrs.api_group, attrs.api_version, attrs.resource)
        if rt is None or (attrs.subresource and attrs.subresource not in rt.subresources):
            return None
        scope = _scope(attrs)
        verb = _reported_verb(request, attrs, scope)
        return self._new_series((verb, _dry_run(request), attrs.api_group, attrs.api_version, attrs.resource,
                                 attrs.subresource, scope, "apiserver"), attrs)

    def _new_series(self, labels: tuple[str, ...], attrs: Attributes) -> _Series:
        found = self._by_labels.get(labels)
        if found is None:
            found = self._by_labels[labels] = self._make_series(labels, attrs)
        return found

    def _make_series(self, labels: tuple[str, ...], attrs: Attributes) -> _Series:
        verb = labels[0]
        gauge, kind = None, ""
        if attrs.verb in _LONG_RUNNING_VERBS or attrs.subresource in _LONG_RUNNING_SUBRESOURCES:
            if verb == "WATCH" or (verb == "CONNECT" and attrs.subresource != "log"):
                gauge = self._long_running.get(labels[:1] + labels[2:])
        else:
            kind = "readOnly" if attrs.verb in _READ_ONLY_VERBS or not attrs.resource_request else "mutating"
        return _Series(labels, verb == "WATCH", gauge, kind, self._latencies.get(labels), self._requests)

    @web.middleware
    async def middleware(self, request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        started = time.perf_counter()
        series = self._series(request)
        if series is None:
            return await handler(request)
        gauge, kind = series.gauge, series.kind
        if gauge is not None:
            gauge.inc()
        elif kind:
            self.inflight.enter(kind, started)
        code = 500
        try:
            response = await handler(request)
            code = response.status
            return response
        except web.HTTPException as exc:
            code = exc.status
            raise
        except (asyncio.CancelledError, ConnectionResetError):
            code = 200 if series.watch else 0  # a watch's 200 went out when its stream began
            raise
        finally:
            if gauge is not None:
                gauge.dec()
            elif kind:
                self.inflight.leave(kind)
            if code and not _refused_before_handler(request, code):
                series.counter(code).inc()
                series.latency.observe(time.perf_counter() - started)


class _Series:
    """A request line's children: its latency histogram, its counters by code, its gauge or in-flight kind."""

    __slots__ = ("labels", "watch", "gauge", "kind", "latency", "_requests", "_by_code")

    def __init__(self, labels: tuple[str, ...], watch: bool, gauge: Any, kind: str, latency: Any,
                 requests: Children[Any]) -> None:
        self.labels, self.watch, self.gauge, self.kind, self.latency = labels, watch, gauge, kind, latency
        self._requests = requests
        self._by_code: dict[int, Any] = {}

    def counter(self, code: int) -> Any:
        child = self._by_code.get(code)
        if child is None:
            child = self._by_code[code] = self._requests.get((*self.labels, str(code)))
        return child


def _refused_before_handler(request: web.Request, code: int) -> bool:
    """A 401 from authentication or a 403 from authorization (Kubernetes' filters: never counted)."""
    if code == 401:
        return USER not in request
    if code == 403:
        decision = request.get(DECISION)
        return decision is not None and not decision.allowed
    return False


# ---- read at scrape time ---------------------------------------------------------------


_INFLIGHT_SOURCES: weakref.WeakSet[RequestMetrics] = weakref.WeakSet()
_STORAGE_SOURCES: weakref.WeakSet[Any] = weakref.WeakSet()


def track_storage(watch_cache: Any) -> None:
    """Count ``watch_cache``'s objects in ``apiserver_storage_objects`` while it lives."""
    _STORAGE_SOURCES.add(watch_cache)


class _ScrapeTimeCollector:
    """The gauges read when scraped: in-flight peaks and stored objects."""

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        inflight = GaugeMetricFamily(
            "apiserver_current_inflight_requests",
            "Maximal number of currently used inflight request limit of this apiserver per request kind in last "
            "second.", labels=["request_kind"])
        totals = {"readOnly": 0, "mutating": 0}
        for source in list(_INFLIGHT_SOURCES):
            for kind, n in source.inflight.reading().items():
                totals[kind] += n
        for kind, n in totals.items():
            inflight.add_metric([kind], n)
        yield inflight
        counts: dict[tuple[str, str], int] = {}
        for watch_cache in list(_STORAGE_SOURCES):
            for cache in list(watch_cache.caches.values()):
                key = (cache.rt.group, cache.rt.plural)
                counts[key] = counts.get(key, 0) + len(cache.objects)
        stored = GaugeMetricFamily(
            "apiserver_storage_objects",
            "Number of stored objects at the time of last check split by kind.", labels=["resource"])
        objects = GaugeMetricFamily(
            "apiserver_resource_objects",
            "Number of stored objects at the time of last check split by kind.", labels=["group", "resource"])
        for (group, plural), n in sorted(counts.items()):
            stored.add_metric([f"{plural}.{group}" if group else plural], n)
            objects.add_metric([group, plural], n)
        yield stored
        yield objects


REGISTRY.register(_ScrapeTimeCollector())  # type: ignore[arg-type,unused-ignore]


def serve_metrics() -> web.Response:
    """``GET /metrics``: the whole process registry in the text format."""
    return web.Response(body=exposition(), headers={"Content-Type": TEXT_CONTENT_TYPE})
