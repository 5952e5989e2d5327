"""Answers to the review kinds and to ``serviceaccounts/<name>/token``.

``kubectl auth can-i`` POSTs a SelfSubjectAccessReview, ``kubectl auth whoami`` a
SelfSubjectReview, ``kubectl create token`` a TokenRequest; Kubernetes answers each
at once and stores nothing. The caller's identity was set on the request by the
authentication middleware (``request[USER]``).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import orjson
from aiohttp import web

from .keys import TOKEN_ISSUER, USER
from ..machinery import errors
from .handlers import Target, json_response, read_body
from .identity import (
    ADMIN_USER, DEFAULT_TOKEN_SECONDS, TokenIssuer, UserInfo, self_subject_access_review,
    self_subject_review,
)


def _user(request: web.Request) -> UserInfo:
    return request.get(USER) or ADMIN_USER


def answer_review(request: web.Request, target: Target, body: Any) -> web.Response:
    if not isinstance(body, dict):
        raise errors.bad_request("the body must be an object")
    body = {**body, "kind": target.rt.kind, "apiVersion": target.rt.api_version}
    body.setdefault("metadata", {})
    kind = target.rt.kind
    if kind == "SelfSubjectReview":
        answer = self_subject_review(body, _user(request))
    elif kind == "TokenReview":
        token = ((body.get("spec") or {}).get("token")) or ""
        issuer: TokenIssuer = request.app[TOKEN_ISSUER]
        user = issuer.verify(token)
        body["status"] = {"authenticated": user is not None, **({"user": user.as_dict()} if user else {})}
        answer = body
    else:
        answer = self_subject_access_review(body)
    return json_response(orjson.dumps(answer), 201)


async def serve_token(request: web.Request, target: Target) -> web.Response:
    """POST serviceaccounts/<name>/token: a signed token for that service account."""
    if request.method != "POST":
        raise errors.method_not_allowed()
    assert target.name is not None
    sa = target.rest.get(target.namespace, target.name).obj
    body = await read_body(request)
    spec = (body.get("spec") if isinstance(body, dict) else None) or {}
    seconds = spec.get("expirationSeconds") or DEFAULT_TOKEN_SECONDS
    if not isinstance(seconds, int) or seconds < 600:
        raise errors.ApiError(422, "Invalid", "TokenRequest.authentication.k8s.io \"\" is invalid: spec.expirationSeconds: Invalid value: "
                              f"{seconds}: may not specify a duration less than 10 minutes",
                              {"kind": "TokenRequest", "group": "authentication.k8s.io",
                               "causes": [{"reason": "FieldValueInvalid", "message": "may not specify a duration less than 10 "
                                                                                     "minutes", "field": "spec.expirationSeconds"}]})
    audiences = spec.get("audiences") or ["https://kubernetes.default.svc.cluster.local"]
    issuer: TokenIssuer = request.app[TOKEN_ISSUER]
    token, expires = issuer.issue(target.namespace or "default", target.name, sa["metadata"].get("uid", ""), audiences, seconds)
    answer = {
        "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": target.name, "namespace": target.namespace, "creationTimestamp": None},
        "spec": {"audiences": audiences, "expirationSeconds": seconds, "boundObjectRef": spec.get("boundObjectRef")},
        "status": {"token": token,
                   "expirationTimestamp": datetime.fromtimestamp(expires, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")},
    }
    return json_response(orjson.dumps(answer), 201)
