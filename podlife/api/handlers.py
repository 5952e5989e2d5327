"""HTTP handlers for resource paths: decode the request, call REST, encode the answer.

Path shapes (``/api/v1`` or ``/apis/<group>/<version>`` prefixes)::

    /<plural>                              cluster-scoped collection, or all namespaces
    /<plural>/<name>[/<subresource>]       cluster-scoped object
    /namespaces/<ns>/<plural>              namespaced collection
    /namespaces/<ns>/<plural>/<name>[/<subresource>]
    /namespaces/<ns>[/status|/finalize]    the namespace object itself

Answers are JSON objects, or ``meta.k8s.io/v1`` Tables when the Accept header asks
for them (what ``kubectl get`` does). Errors are always ``Status`` objects.

Query parameters are read as Kubernetes decodes its option structs: booleans as Go's
``strconv.ParseBool`` (:mod:`podlife.machinery.query`; ``watch=True`` from the official
Python client is a watch), integers as ``strconv.ParseInt(s, 10, 64)``; a malformed
value is a 400 that names the parameter, checked before the request does anything.
Invalid options (``fieldValidation``, ``dryRun``) are a 422 on ``<Kind>Options``.
Bodies are decoded by :mod:`podlife.api.decode` (size, nesting, aliases, UTF-8).
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDict

from ..machinery.query import TRUE_WORDS, InvalidBool, query_bool
from ..registry import tables
from ..machinery.names import path_segment_errors
from ..registry.types import FieldError, ResourceType
from . import protobuf, strategic_merge
from ..machinery import errors
from .keys import SUBRESOURCE_HANDLERS
from .cache import CachedObject
from .decode import decode_json, decode_yaml, go_utf8
from .rest import ApiContext, DeleteOptions, ResourceREST
from ..machinery.selectors import go_quote
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
_GO_DECIMAL = re.compile(r"[+-]?[0-9]+")
#: Boolean query parameters of Kubernetes' option structs (ListOptions, PatchOptions,
#: DeleteOptions, PodLogOptions, PodExecOptions, ...): each is checked before a request
#: does anything, so ``watch=maybe`` is a 400 whatever path it is sent to.
BOOLEAN_PARAMETERS = (
    "watch", "allowWatchBookmarks", "sendInitialEvents", "force", "orphanDependents",
    "ignoreStoreReadErrorWithClusterBreakingPotential", "follow", "previous", "timestamps",
    "insecureSkipTLSVerifyBackend", "stdin", "stdout", "stderr", "tty",
)
_BOOLEAN_PARAMETER_SET = frozenset(BOOLEAN_PARAMETERS)


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


def wants_pretty(request: web.Request) -> bool:
    """Kubernetes indents JSON for ``pretty=<ParseBool true>`` (a malformed value means no) or for curl, Wget and browsers."""
    if "pretty" in request.query_string:
        value = request.query.get("pretty")
        if value:
            return value in TRUE_WORDS
    return request.headers.get("User-Agent", "").startswith(("curl", "Wget", "Mozilla/5.0"))


def pretty_json(body: bytes) -> bytes:
    """A JSON body indented as Go's ``json.MarshalIndent(v, "", "  ")`` writes it."""
    return orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2) + b"\n"


def wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


def json_response(body: bytes, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """A JSON answer; like Kubernetes' encoder, the body ends with a newline."""
    if not body.endswith(b"\n"):
        body += b"\n"
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


def _warning_headers(warnings: list[str] | None) -> CIMultiDict[str] | None:
    """One ``Warning: 299 - "<text>"`` header per warning, the text an RFC 7230 quoted string.

    A warning whose text holds a control character (a NUL or a line break, e.g. from an
    unknown field's name a client sent) is left out, as Kubernetes' warning recorder
    leaves out what ``NewWarningHeader`` refuses: raw user bytes never reach a header,
    where they would break the response to a write that was already stored.
    """
    warnings = [w for w in warnings or () if not _has_control(w)]
    if not warnings:
        return None
    return CIMultiDict([("Warning", f'299 - "{_quoted(w)}"') for w in warnings])


def _has_control(text: str) -> bool:
    """Go's ``unicode.IsControl`` on any rune: C0 controls, DEL and the C1 range."""
    return any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in text)


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


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
    body = head[:-1] + b',"items":[' + b",".join(co.raw for co in items) + b"]}\n"
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
    """The request's body, decoded by its media type (rules in :mod:`podlife.api.decode`)."""
    ctype = request_content_type(request)
    raw = await request.read()
    if not raw.strip():
        raise errors.bad_request("the request body is empty; expected a JSON or YAML object")
    if ctype == "application/vnd.kubernetes.protobuf":
        return decode_protobuf_body(raw)
    if ctype in (JSON, "application/merge-patch+json", "application/json-patch+json",
                 "application/strategic-merge-patch+json", "*/*", "text/plain"):
        return decode_json(raw)
    if ctype in ("application/yaml", "application/apply-patch+yaml", "application/x-yaml"):
        return decode_yaml(raw)
    raise errors.unsupported_media_type(ctype)


def _invalid_options(options_kind: str, field: str, message: str) -> errors.ApiError:
    """422 for a bad query option, as Kubernetes' ``Validate<Kind>Options`` reports it."""
    cause = {"reason": "FieldValueNotSupported", "message": message, "field": field}
    return errors.ApiError(422, "Invalid", f'{options_kind}.meta.k8s.io "" is invalid: {field}: {message}',
                           {"group": "meta.k8s.io", "kind": options_kind, "causes": [cause]})


def _field_validation(request: web.Request, options_kind: str = "PatchOptions") -> str:
    value = request.query.get("fieldValidation", "")
    if value not in ("", "Ignore", "Warn", "Strict"):
        raise _invalid_options(options_kind, "fieldValidation",
                               f'Unsupported value: "{value}": supported values: "", "Ignore", "Strict", "Warn"')
    return value or "Warn"  # Kubernetes' default since 1.27 (server-side field validation)


def _dry_run(request: web.Request, options_kind: str = "PatchOptions") -> bool:
    values = request.query.getall("dryRun", [])
    if any(v != "All" for v in values):
        shown = "[]string{" + ", ".join(orjson.dumps(v).decode() for v in values) + "}"
        raise _invalid_options(options_kind, "dryRun", f'Unsupported value: {shown}: supported values: "All"')
    return bool(values)


def _manager(request: web.Request, options_kind: str) -> str:
    """The field manager of a write: ``?fieldManager=`` or the User-Agent (see managed_fields)."""
    return request_options(request.query, request.headers.get("User-Agent", ""), options_kind).manager


def flag(request: web.Request, name: str, default: bool = False) -> bool:
    """A boolean query parameter, read as Go's ``strconv.ParseBool`` (400 when malformed)."""
    try:
        return query_bool(request.query, name, default)
    except InvalidBool as exc:
        raise errors.bad_request(str(exc)) from None


def check_boolean_parameters(request: web.Request) -> None:
    """Refuse a malformed boolean parameter before the request has any effect."""
    if request.query_string:
        for name in _BOOLEAN_PARAMETER_SET.intersection(request.query.keys()):
            flag(request, name)


def check_url_name(name: str) -> None:
    """A name from the URL must be usable as one path segment (as Kubernetes' key functions demand)."""
    problems = path_segment_errors(name)
    if problems:
        raise errors.bad_request(f"Name parameter invalid: {go_quote(name)}: {';'.join(problems)}")


def is_watch(request: web.Request) -> bool:
    """Whether a collection GET is a watch (``watch=true``, ``watch=True``, ``watch=1``, ...)."""
    return request.method == "GET" and flag(request, "watch")


def _int_param(request: web.Request, name: str) -> int | None:
    """An integer query parameter, read as Go's ``strconv.ParseInt(value, 10, 64)``; absent or empty is None."""
    value = request.query.get(name)
    if value in (None, ""):
        return None
    problem = "invalid syntax"
    if _GO_DECIMAL.fullmatch(value):
        number = int(value)
        if -(2**63) <= number < 2**63:
            return number
        problem = "value out of range"
    raise errors.bad_request(f'invalid value for {name}: "{value}": strconv.ParseInt: parsing "{value}": {problem}')


# ---- verbs --------------------------------------------------------------------------


def _verb(request: web.Request, target: Target) -> str:
    method = request.method
    if target.name is None:
        if method == "GET":
            return "watch" if is_watch(request) else "list"
        return {"POST": "create", "DELETE": "deletecollection"}.get(method, "")
    return {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete", "POST": "create"}.get(method, "")


async def handle(request: web.Request, target: Target) -> web.StreamResponse:
    method = request.method
    check_boolean_parameters(request)
    if target.subresource is None and _verb(request, target) not in target.rt.verbs:
        raise errors.method_not_allowed()
    if target.name is not None:
        check_url_name(target.name)
    if target.name is None:
        if method == "GET":
            _int_param(request, "timeoutSeconds")  # a ListOptions field: malformed is a 400 before any answer
            if is_watch(request):
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
    if target.subresource not in (None, "status") and target.subresource not in target.rt.strategy.update_subresources:
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
    if "sendInitialEvents" in q:  # a watch option (see watch_stream.py)
        raise errors.invalid_list_options([FieldError("FieldValueForbidden", "sendInitialEvents",
                                                      "sendInitialEvents is forbidden for list")])
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
        warnings = duplicate_checker(target.rt, go_utf8(await request.read()), mode)
    return body, warnings


async def _create(request: web.Request, target: Target) -> web.Response:
    mode = _field_validation(request, "CreateOptions")
    dry_run = _dry_run(request, "CreateOptions")
    body, warnings = await _body_and_duplicates(request, target, mode)
    if not target.rt.strategy.stored:
        from .reviews import answer_review

        return answer_review(request, target, body)
    manager = _manager(request, "CreateOptions")
    created, more = await target.rest.create(body, target.namespace, dry_run=dry_run, field_validation=mode,
                                             manager=manager)
    return object_response(request, target.rt, created, 201, warnings + more)


async def _update(request: web.Request, target: Target) -> web.Response:
    mode = _field_validation(request, "UpdateOptions")
    dry_run = _dry_run(request, "UpdateOptions")
    body, warnings = await _body_and_duplicates(request, target, mode)
    assert target.name is not None
    updated, more = await target.rest.update(target.namespace, target.name, body, subresource=target.subresource,
                                             dry_run=dry_run, field_validation=mode,
                                             manager=_manager(request, "UpdateOptions"))
    return object_response(request, target.rt, updated, 200, warnings + more)


async def _patch(request: web.Request, target: Target) -> web.Response:
    ctype = (request.content_type or "").lower()
    patch_type = PATCH_TYPES.get(ctype)
    if patch_type is None:
        raise errors.unsupported_patch_type(_patch_types(target))
    _field_validation(request)
    _dry_run(request)
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


def _patch_types(target: Target) -> list[str]:
    """The patch media types a resource accepts, in Kubernetes' order (no strategic merge for CRs)."""
    rt = target.rt
    strategic = strategic_merge.supports_strategic_merge(rt.group, rt.version, rt.kind)
    return [ctype for ctype, kind in PATCH_TYPES.items() if kind != "strategic" or strategic]


async def _delete_options(request: web.Request) -> DeleteOptions:
    body = None
    if request.can_read_body:
        raw = await request.read()
        if raw.strip():
            if request_content_type(request) == "application/vnd.kubernetes.protobuf":
                body = decode_protobuf_body(raw)
            else:
                body = decode_json(raw)
    if body is not None and not isinstance(body, dict):
        raise errors.bad_request("DeleteOptions must be an object")
    _int_param(request, "gracePeriodSeconds")  # an int64, or a 400
    opts = DeleteOptions.from_body(body, request.query.get("gracePeriodSeconds"), _dry_run(request, "DeleteOptions"))
    if opts.propagation_policy is None and request.query.get("propagationPolicy"):
        opts = DeleteOptions.from_body({**(body or {}), "propagationPolicy": request.query["propagationPolicy"]},
                                       request.query.get("gracePeriodSeconds"), _dry_run(request, "DeleteOptions"))
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
        result = await create_subresource(target.rest.ctx, target.rest, target.namespace, target.name, sub, body,
                                          dry_run=_dry_run(request, "CreateOptions"))
        return json_response(orjson.dumps(result), 201)
    handler = request.app[SUBRESOURCE_HANDLERS].get(sub)
    if handler is not None:
        return await handler(request, target)
    raise errors.method_not_allowed()


def watch_timeout(request: web.Request) -> float:
    """``timeoutSeconds``; unset or 0 is a random 30-60 minutes, negative ends the watch at once."""
    value = _int_param(request, "timeoutSeconds")
    if value is not None and value != 0:
        return float(max(value, 0))
    return WATCH_MIN_SECONDS * (1 + random.random())

