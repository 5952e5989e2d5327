"""HTTP handlers for resource paths: decode the request, call REST, encode the answer.

Path shapes (``/api/v1`` or ``/apis/<group>/<version>`` prefixes)::

    /<plural>                              cluster-scoped collection, or all namespaces
    /<plural>/<name>[/<subresource>]       cluster-scoped object
    /namespaces/<ns>/<plural>              namespaced collection
    /namespaces/<ns>/<plural>/<name>[/<subresource>]
    /namespaces/<ns>[/status|/finalize]    the namespace object itself

Answers are JSON objects, or ``meta.k8s.io/v1`` Tables when the Accept header asks
for them (what ``kubectl get`` does). Errors are always ``Status`` objects.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import orjson
import yaml
from aiohttp import web

from ..registry import tables
from ..registry.types import ResourceType
from . import errors, protobuf
from .keys import SUBRESOURCE_HANDLERS
from .cache import CachedObject
from .rest import ApiContext, DeleteOptions, ResourceREST
from .fieldvalidation import duplicate_checker
from .managed_fields import request_options
from .subresources import create_subresource

JSON = "application/json"
PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
}
WATCH_MIN_SECONDS = 1800


@dataclass(slots=True)
class Target:
    rest: ResourceREST
    namespace: str | None
    name: str | None
    subresource: str | None

    @property
    def rt(self) -> ResourceType:
        return self.rest.rt


def resolve(ctx: ApiContext, group: str, version: str, segs: list[str]) -> Target:
    """Map path segments after the group-version prefix to a resource target."""
    if not segs:
        raise errors.path_not_found("/")
    namespace: str | None = None
    if segs[0] == "namespaces" and len(segs) >= 3:
        candidate = ctx.rest_by(group, version, segs[2])
        if candidate is not None and candidate.rt.namespaced:
            namespace, segs = segs[1], segs[2:]
    rest = ctx.rest_by(group, version, segs[0])
    if rest is None or len(segs) > 3:
        raise errors.path_not_found("/".join(segs))
    name = segs[1] if len(segs) > 1 else None
    sub = segs[2] if len(segs) > 2 else None
    if rest.rt.namespaced and namespace is None and name is not None:
        raise errors.path_not_found("/".join(segs))
    if sub is not None and sub not in rest.rt.subresources:
        raise errors.path_not_found("/".join(segs))
    return Target(rest, namespace, name, sub)


# ---- encoding -----------------------------------------------------------------------


def wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


def json_response(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=body, status=status, content_type=JSON, headers=headers)


def object_response(request: web.Request, rt: ResourceType, value: CachedObject | dict, status: int = 200,
                    warnings: list[str] | None = None) -> web.Response:
    headers = _warning_headers(warnings)
    if wants_table(request):
        obj = value.obj if isinstance(value, CachedObject) else value
        table = tables.to_table([obj], rt.kind, rt.group, include_object=_include_object(request),
                                printer_columns=rt.printer_columns)
        return json_response(orjson.dumps(table), status, headers)
    raw = value.raw if isinstance(value, CachedObject) else orjson.dumps(value)
    return json_response(raw, status, headers)


def _warning_headers(warnings: list[str] | None) -> dict[str, str] | None:
    if not warnings:
        return None
    # aiohttp joins repeated keys poorly; one header with comma-separated entries is valid
    return {"Warning": ", ".join(f'299 - "{w.replace(chr(34), chr(39))}"' for w in warnings)}


def _include_object(request: web.Request) -> str:
    value = request.query.get("includeObject") or "Metadata"
    if value not in ("None", "Metadata", "Object"):
        raise errors.bad_request(f"includeObject: unsupported value {value!r}")
    return value


def list_response(request: web.Request, rt: ResourceType, items: list[CachedObject], rv: int, token: str) -> web.Response:
    if wants_table(request):
        table = tables.to_table([co.obj for co in items], rt.kind, rt.group, include_object=_include_object(request),
                                resource_version=str(rv), continue_token=token, printer_columns=rt.printer_columns)
        return json_response(orjson.dumps(table))
    meta: dict[str, Any] = {"resourceVersion": str(rv)}
    if token:
        meta["continue"] = token
    head = orjson.dumps({"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": meta})
    body = head[:-1] + b',"items":[' + b",".join(co.raw for co in items) + b"]}"
    return json_response(body)


# ---- decoding -----------------------------------------------------------------------


def decode_protobuf_body(raw: bytes) -> Any:
    """kubectl 1.32's typed writes arrive as Kubernetes protobuf; decode them to JSON form."""
    try:
        return protobuf.decode_k8s_protobuf(raw)
    except protobuf.UnsupportedKindError as exc:
        raise errors.ApiError(415, "UnsupportedMediaType", str(exc)) from None
    except protobuf.ProtobufError as exc:
        raise errors.bad_request(f"the protobuf body could not be decoded: {exc}") from None


def request_content_type(request: web.Request) -> str:
    """The media type the client sent; none at all means JSON, as for Kubernetes."""
    if "Content-Type" not in request.headers:
        return JSON
    return (request.content_type or JSON).lower()


async def read_body(request: web.Request) -> Any:
    ctype = request_content_type(request)
    raw = await request.read()
    if not raw.strip():
        raise errors.bad_request("the request body is empty; expected a JSON or YAML object")
    if ctype == "application/vnd.kubernetes.protobuf":
        return decode_protobuf_body(raw)
    if ctype in (JSON, "application/merge-patch+json", "application/json-patch+json",
                 "application/strategic-merge-patch+json", "*/*", "text/plain"):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise errors.bad_request(f"the body of the request could not be decoded as JSON: {exc}") from None
    if ctype in ("application/yaml", "application/apply-patch+yaml", "application/x-yaml"):
        try:
            return yaml.load(raw, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.YAMLError as exc:
            raise errors.bad_request(f"the body of the request could not be decoded as YAML: {exc}") from None
    raise errors.unsupported_media_type(ctype)


def _field_validation(request: web.Request) -> str:
    value = request.query.get("fieldValidation") or "Ignore"
    if value not in ("Ignore", "Warn", "Strict"):
        raise errors.bad_request(f'fieldValidation parameter unsupported: {value}, must be one of "Ignore", "Warn", "Strict"' )
    return value


def _dry_run(request: web.Request) -> bool:
    values = request.query.getall("dryRun", [])
    for v in values:
        if v != "All":
            raise errors.bad_request(f'dryRun: Unsupported value: "{v}": supported values: "All"')
    return bool(values)


def _manager(request: web.Request, options_kind: str) -> str:
    """The field manager of a write: ``?fieldManager=`` or the User-Agent (see managed_fields)."""
    return request_options(request.query, request.headers.get("User-Agent", ""), options_kind).manager


def _int_param(request: web.Request, name: str) -> int | None:
    value = request.query.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise errors.bad_request(f"{name}: invalid value {value!r}") from None


# ---- verbs --------------------------------------------------------------------------


def _verb(request: web.Request, target: Target) -> str:
    method = request.method
    if target.name is None:
        if method == "GET":
            return "watch" if request.query.get("watch") in ("true", "1") else "list"
        return {"POST": "create", "DELETE": "deletecollection"}.get(method, "")
    return {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete", "POST": "create"}.get(method, "")


async def handle(request: web.Request, target: Target) -> web.StreamResponse:
    method = request.method
    if target.subresource is None and _verb(request, target) not in target.rt.verbs:
        raise errors.method_not_allowed()
    if target.name is None:
        if method == "GET":
            if request.query.get("watch") in ("true", "1"):
                from .watch_stream import serve_watch

                return await serve_watch(request, target)
            return _list(request, target)
        if method == "POST":
            return await _create(request, target)
        if method == "DELETE":
            return await _delete_collection(request, target)
        raise errors.method_not_allowed()
    if target.subresource == "finalize" and method == "PUT":
        return await _update(request, target)
    if target.subresource not in (None, "status"):
        return await _subresource(request, target)
    if method == "GET":
        return object_response(request, target.rt, target.rest.get(target.namespace, target.name))
    if method == "PUT":
        return await _update(request, target)
    if method == "PATCH":
        return await _patch(request, target)
    if method == "DELETE" and target.subresource is None:
        return await _delete(request, target)
    raise errors.method_not_allowed()


def _list(request: web.Request, target: Target) -> web.Response:
    q = request.query
    limit = _int_param(request, "limit") or 0
    result = target.rest.list(target.namespace, label_selector=q.get("labelSelector"),
                              field_selector=q.get("fieldSelector"), limit=max(limit, 0),
                              continue_token=q.get("continue"), resource_version=q.get("resourceVersion"),
                              resource_version_match=q.get("resourceVersionMatch"))
    return list_response(request, target.rt, result.items, result.resource_version, result.continue_token)


async def _body_and_duplicates(request: web.Request, target: Target, mode: str) -> tuple[Any, list[str]]:
    body = await read_body(request)
    warnings: list[str] = []
    if mode != "Ignore" and request_content_type(request) == JSON:
        warnings = duplicate_checker(target.rt, await request.read(), mode)
    return body, warnings


async def _create(request: web.Request, target: Target) -> web.Response:
    mode = _field_validation(request)
    body, warnings = await _body_and_duplicates(request, target, mode)
    if not target.rt.strategy.stored:
        from .reviews import answer_review

        return answer_review(request, target, body)
    manager = _manager(request, "CreateOptions")
    created, more = await target.rest.create(body, target.namespace, dry_run=_dry_run(request), field_validation=mode,
                                             manager=manager)
    return object_response(request, target.rt, created, 201, warnings + more)


async def _update(request: web.Request, target: Target) -> web.Response:
    mode = _field_validation(request)
    body, warnings = await _body_and_duplicates(request, target, mode)
    assert target.name is not None
    updated, more = await target.rest.update(target.namespace, target.name, body, subresource=target.subresource,
                                             dry_run=_dry_run(request), field_validation=mode,
                                             manager=_manager(request, "UpdateOptions"))
    return object_response(request, target.rt, updated, 200, warnings + more)


async def _patch(request: web.Request, target: Target) -> web.Response:
    ctype = (request.content_type or "").lower()
    patch_type = PATCH_TYPES.get(ctype)
    if patch_type is None:
        raise errors.unsupported_media_type(ctype)
    body = await read_body(request)
    assert target.name is not None
    if patch_type == "apply":
        from .apply import serve_apply  # apply builds on this module

        result, status = await serve_apply(request, target, body)
        return object_response(request, target.rt, result, status)
    patched, warnings = await target.rest.patch(target.namespace, target.name, patch_type, body,
                                                subresource=target.subresource, dry_run=_dry_run(request),
                                                field_validation=_field_validation(request),
                                                manager=_manager(request, "PatchOptions"))
    return object_response(request, target.rt, patched, 200, warnings)


async def _delete_options(request: web.Request) -> DeleteOptions:
    body = None
    if request.can_read_body:
        raw = await request.read()
        if raw.strip():
            if request_content_type(request) == "application/vnd.kubernetes.protobuf":
                body = decode_protobuf_body(raw)
            else:
                try:
                    body = orjson.loads(raw)
                except orjson.JSONDecodeError as exc:
                    raise errors.bad_request(f"invalid DeleteOptions: {exc}") from None
    if body is not None and not isinstance(body, dict):
        raise errors.bad_request("DeleteOptions must be an object")
    opts = DeleteOptions.from_body(body, request.query.get("gracePeriodSeconds"), _dry_run(request))
    if opts.propagation_policy is None and request.query.get("propagationPolicy"):
        opts = DeleteOptions.from_body({**(body or {}), "propagationPolicy": request.query["propagationPolicy"]},
                                       request.query.get("gracePeriodSeconds"), _dry_run(request))
    return opts


async def _delete(request: web.Request, target: Target) -> web.Response:
    opts = await _delete_options(request)
    assert target.name is not None
    result = await target.rest.delete(target.namespace, target.name, opts)
    return object_response(request, target.rt, result, 200)


async def _delete_collection(request: web.Request, target: Target) -> web.Response:
    opts = await _delete_options(request)
    q = request.query
    listed = target.rest.list(target.namespace, label_selector=q.get("labelSelector"), field_selector=q.get("fieldSelector"))
    deleted = []
    for co in listed.items:
        try:
            deleted.append(await target.rest.delete(co.namespace or None, co.name, opts))
        except errors.ApiError as exc:
            if exc.code != 404:
                raise
    items = [d if isinstance(d, CachedObject) else CachedObject("", d, 0) for d in deleted]
    return list_response(request, target.rt, items, target.rest.cache.revision, "")


async def _subresource(request: web.Request, target: Target) -> web.StreamResponse:
    sub = target.subresource
    assert sub is not None and target.name is not None
    if sub == "log" and request.method == "GET":
        from .logs import serve_log

        return await serve_log(request, target)
    if sub in ("binding", "eviction") and request.method == "POST":
        body = await read_body(request)
        result = await create_subresource(target.rest.ctx, target.rest, target.namespace, target.name, sub, body)
        return json_response(orjson.dumps(result), 201)
    handler = request.app[SUBRESOURCE_HANDLERS].get(sub)
    if handler is not None:
        return await handler(request, target)
    raise errors.method_not_allowed()


def watch_timeout(request: web.Request) -> float:
    value = _int_param(request, "timeoutSeconds")
    if value is not None and value > 0:
        return float(value)
    return WATCH_MIN_SECONDS * (1 + random.random())

