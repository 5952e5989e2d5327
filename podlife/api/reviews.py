"""Answers to the review kinds and to ``serviceaccounts/<name>/token``.

``kubectl auth can-i`` POSTs a SelfSubjectAccessReview, ``kubectl auth whoami`` a
SelfSubjectReview, ``kubectl create token`` a TokenRequest; Kubernetes answers each
at once and stores nothing. The caller's identity was set on the request by the
authentication middleware (``request[USER]``).

A TokenReview asks the API server's own authenticator (:mod:`podlife.api.authn`) about
the token alone, for the audiences it names (default: the API server's), and reports
``authenticated`` with the user and audiences, or the authenticators' error worded as
Kubernetes words it. A TokenRequest follows Kubernetes' ``TokenREST``: the service account
must exist; ``expirationSeconds`` defaults to an hour and must lie between ten minutes
and 2^32 seconds; a ``boundObjectRef`` names a Pod (which must run as that account; the
token then names its node too), a Secret or a Node, whose uid the token carries, so it
dies with the object; ``--service-account-max-token-expiration`` shortens longer requests
with a warning; and a pod-bound token asked for the kubelet's 3607 seconds lasts a year
(``--service-account-extend-token-expiration``), with ``warnafter`` set to the hour asked for.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

import orjson
from aiohttp import web

from .authn import AUTHENTICATION_OPTIONS, AUTHENTICATOR, AuthenticationOptions
from . import access_reviews
from .authorization import AUTHORIZER
from .authz.rbac import RBACAuthorizer
from .keys import TOKEN_ISSUER, USER
from ..machinery import errors
from ..registry.types import FieldError
from .handlers import Target, json_response, read_body
from .identity import (
    ADMIN_USER, DEFAULT_TOKEN_SECONDS, EXTENDED_TOKEN_SECONDS, MAX_TOKEN_SECONDS, MIN_TOKEN_SECONDS,
    WARN_ONLY_BOUND_TOKEN_SECONDS, ObjectRef, TokenIssuer, UserInfo, self_subject_access_review, self_subject_review,
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
        body["status"] = token_review_status(request, body)
        answer = body
    else:
        answer = _access_review(request, target, body)
    return json_response(orjson.dumps(answer), 201)


def _access_review(request: web.Request, target: Target, body: dict[str, Any]) -> dict[str, Any]:
    """can-i, can-i --list and (Local)SubjectAccessReview, answered by the server's authorizer."""
    authorizer = request.app.get(AUTHORIZER)
    if authorizer is None:  # authentication (and so authorization) is off: everyone may do everything
        return self_subject_access_review(body)
    rbac = authorizer.authorizers[-1]
    assert isinstance(rbac, RBACAuthorizer)
    kind = target.rt.kind
    if kind == "SelfSubjectRulesReview":
        return access_reviews.self_subject_rules_review(body, _user(request), rbac)
    if kind == "SubjectAccessReview":
        return access_reviews.subject_access_review(body, authorizer)
    if kind == "LocalSubjectAccessReview":
        return access_reviews.subject_access_review(body, authorizer, namespace=target.namespace or "")
    return access_reviews.self_subject_access_review(body, _user(request), authorizer)


def token_review_status(request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
    """A TokenReview's ``status`` (Kubernetes' ``tokenreview.REST.Create``)."""
    spec = _object(body.get("spec"))
    token = spec.get("token")
    if not isinstance(token, str) or not token:
        raise errors.bad_request("token is required for TokenReview in authentication")
    authenticator = request.app.get(AUTHENTICATOR)
    if authenticator is None:
        return {"user": {}}
    audiences = spec.get("audiences") or []
    return authenticator.review(token, [str(a) for a in audiences] if isinstance(audiences, list) else [])


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


_TOKEN_REQUEST = {"group": "authentication.k8s.io", "kind": "TokenRequest"}


def _token_request_invalid(name: str, problems: list[FieldError]) -> errors.ApiError:
    shown = str(problems[0]) if len(problems) == 1 else "[" + ", ".join(map(str, problems)) + "]"
    details: dict[str, Any] = {"name": name} if name else {}
    details.update(_TOKEN_REQUEST, causes=[p.cause() for p in problems])
    return errors.ApiError(422, "Invalid", f'TokenRequest.authentication.k8s.io "{name}" is invalid: {shown}', details)


def _expiration_seconds(spec: dict[str, Any]) -> int:
    """``spec.expirationSeconds``: an hour when unset, else between ten minutes and 2^32 seconds."""
    seconds = spec.get("expirationSeconds")
    if seconds is None:
        return DEFAULT_TOKEN_SECONDS
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise errors.bad_request(f"json: cannot unmarshal {type(seconds).__name__} into Go struct field "
                                 "TokenRequestSpec.spec.expirationSeconds of type int64")
    problems = []
    if seconds < MIN_TOKEN_SECONDS:
        problems.append(FieldError("FieldValueInvalid", "spec.expirationSeconds",
                                   "may not specify a duration less than 10 minutes", seconds))
    if seconds > MAX_TOKEN_SECONDS:
        problems.append(FieldError("FieldValueInvalid", "spec.expirationSeconds",
                                   "may not specify a duration larger than 2^32 seconds", seconds))
    if problems:
        raise _token_request_invalid("", problems)
    return seconds


def _get(target: Target, plural: str, namespace: str | None, name: str) -> dict[str, Any]:
    rest = target.rest.ctx.rest_by("", "v1", plural)
    if rest is None:
        raise errors.internal(f"{plural} are not served")
    return rest.get(namespace, name).obj


def _ref_of(obj: dict[str, Any]) -> ObjectRef:
    meta = obj.get("metadata") or {}
    return ObjectRef(meta.get("name", ""), meta.get("uid", ""))


def _group_version(api_version: str) -> tuple[str, str]:
    """Go's ``schema.ParseGroupVersion``, its error read as the empty group-version (as ``FromAPIVersionAndKind`` does)."""
    if api_version.count("/") > 1:
        return "", ""
    group, _, version = api_version.rpartition("/")
    return group, version


def _bound_objects(target: Target, namespace: str, account: str,
                   ref: Any) -> tuple[ObjectRef | None, ObjectRef | None, ObjectRef | None]:
    """The (pod, secret, node) a ``boundObjectRef`` names, checked as ``TokenREST.Create`` checks it."""
    if not isinstance(ref, dict):
        return None, None, None
    group, version = _group_version(str(ref.get("apiVersion") or ""))
    kind, name = str(ref.get("kind") or ""), str(ref.get("name") or "")
    pod = secret = node = None
    if group == "" and kind == "Pod":
        obj = _get(target, "pods", namespace, name)
        if (obj.get("spec") or {}).get("serviceAccountName") != account:
            raise errors.bad_request(f'cannot bind token for serviceaccount "{account}" to pod running with different '
                                     "serviceaccount name.")
        bound = pod = _ref_of(obj)
        node = _pod_node(target, (obj.get("spec") or {}).get("nodeName") or "")
    elif group == "" and kind == "Node":
        bound = node = _ref_of(_get(target, "nodes", None, name))
    elif group == "" and kind == "Secret":
        bound = secret = _ref_of(_get(target, "secrets", namespace, name))
    else:
        raise errors.bad_request(f"cannot bind token to object of type {group}/{version}, Kind={kind}")
    uid = ref.get("uid")
    if uid and uid != bound.uid:
        raise errors.ApiError(409, "Conflict", f'Operation cannot be fulfilled on {kind} "{name}": the UID in the bound '
                              f"object reference ({uid}) does not match the UID in record. The object might have "
                              "been deleted and then recreated", {"name": name, "kind": kind})
    return pod, secret, node


def _pod_node(target: Target, node_name: str) -> ObjectRef | None:
    """The node a pod runs on; its name alone when the Node object is gone."""
    if not node_name:
        return None
    try:
        return _ref_of(_get(target, "nodes", None, node_name))
    except errors.ApiError as exc:
        if exc.code != 404:
            raise
        return ObjectRef(node_name, "")


def _check_names(body: dict[str, Any], name: str, namespace: str) -> None:
    """A name or namespace in the body must be the service account's."""
    meta = _object(body.get("metadata"))
    for field, want in (("name", name), ("namespace", namespace)):
        given = meta.get(field)
        if given and given != want:
            what = "name" if field == "name" else "namespace"
            raise _token_request_invalid(name, [FieldError("FieldValueInvalid", f"metadata.{field}",
                                                           f"must match the service account {what} if specified", given)])


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


async def serve_token(request: web.Request, target: Target) -> web.Response:
    """POST serviceaccounts/<name>/token: a signed token for that service account."""
    if request.method != "POST":
        raise errors.method_not_allowed()
    body = await read_body(request)
    options = request.app.get(AUTHENTICATION_OPTIONS) or AuthenticationOptions()
    answer, headers = issue_token(target, body, request.app[TOKEN_ISSUER], options)
    return json_response(orjson.dumps(answer), 201, headers or None)


def issue_token(target: Target, body: Any, issuer: TokenIssuer,
                options: AuthenticationOptions) -> tuple[dict[str, Any], dict[str, str]]:
    """A TokenRequest's answer for ``target`` (a service account) and the answer's headers.

    Shared by the HTTP handler and the in-process client (a kubelet's projected token volume).
    """
    assert target.name is not None
    namespace, name = target.namespace or "default", target.name
    if not isinstance(body, dict):
        raise errors.bad_request("the body must be an object")
    _check_names(body, name, namespace)
    sa = target.rest.get(namespace, name).obj
    spec = _object(body.get("spec"))
    audiences = [str(a) for a in spec.get("audiences") or options.audiences]
    now = time.time()
    seconds = _expiration_seconds(spec)
    pod, secret, node = _bound_objects(target, namespace, name, spec.get("boundObjectRef"))
    headers: dict[str, str] = {}
    maximum = options.service_account_max_token_expiration
    if maximum and seconds > maximum:
        headers["Warning"] = f'299 - "requested expiration of {seconds} seconds shortened to {maximum} seconds"'
        seconds = maximum
    lifetime, warn_after = seconds, 0
    if (options.service_account_extend_token_expiration and pod is not None and seconds == WARN_ONLY_BOUND_TOKEN_SECONDS
            and set(audiences) <= set(options.audiences)):
        lifetime, warn_after = EXTENDED_TOKEN_SECONDS, seconds
    token, _ = issuer.issue(namespace, name, (sa.get("metadata") or {}).get("uid", ""), audiences, lifetime, now,
                            pod=pod, secret=secret, node=node, warn_after=warn_after)
    answer_spec: dict[str, Any] = {"audiences": audiences, "expirationSeconds": seconds}
    if isinstance(spec.get("boundObjectRef"), dict):
        answer_spec["boundObjectRef"] = spec["boundObjectRef"]
    answer = {
        "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": _rfc3339(now)},
        "spec": answer_spec,
        "status": {"token": token, "expirationTimestamp": _rfc3339(now + seconds)},
    }
    return answer, headers
