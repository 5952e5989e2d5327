"""The audit log: who did what, when, and what the server answered, as ``audit.k8s.io/v1`` events.

What: with ``--audit-log-path`` (and optionally ``--audit-policy-file``), every HTTP
request is judged by the audit policy -- Kubernetes' ``audit.k8s.io/v1`` Policy: the first
rule matching the user, groups, verb, resource, namespace or non-resource URL gives the
level ``None``, ``Metadata``, ``Request`` or ``RequestResponse`` -- and, unless the level
is ``None``, written as JSON lines of ``Event`` objects: one at ``RequestReceived`` and
one at ``ResponseComplete`` (stages a rule or the policy may omit), with the user, source
IPs, user agent, the object reference, the response code, the authorization decision and
reason as annotations, and the request and response bodies at the levels that want them.
Without a policy file every request is logged at ``Metadata``.

Where: after authentication (the event names the user) and around priority and fairness,
authorization and the handler, as kube-apiserver's audit filter sits, so forbidden and
throttled requests are logged too. The file is appended to and flushed per event; it is
the operator's to rotate.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import orjson
import yaml
from aiohttp import web

from ..machinery import errors
from .authorization import DECISION, attributes_of
from .handlers import read_body
from .authz.attributes import Attributes

Obj = dict[str, Any]
LEVELS = ("None", "Metadata", "Request", "RequestResponse")
STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")


class PolicyError(ValueError):
    """An audit policy file that cannot be used."""


@dataclass(frozen=True)
class GroupResources:
    group: str = ""
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()

    def matches(self, attrs: Attributes) -> bool:
        if self.group != attrs.api_group and self.group != "*":
            return False
        if self.resources:
            full = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
            if not any(r in ("*", attrs.resource, full) or (r.startswith("*/") and r[2:] == attrs.subresource)
                       for r in self.resources):
                return False
        return not self.resource_names or attrs.name in self.resource_names


@dataclass(frozen=True)
class Rule:
    level: str
    users: tuple[str, ...] = ()
    user_groups: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    resources: tuple[GroupResources, ...] = ()
    namespaces: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()
    omit_stages: tuple[str, ...] = ()

    def matches(self, attrs: Attributes) -> bool:
        user = attrs.user
        if self.users and user.username not in self.users:
            return False
        if self.user_groups and not set(self.user_groups) & set(user.groups):
            return False
        if self.verbs and attrs.verb not in self.verbs:
            return False
        if attrs.resource_request:
            if self.non_resource_urls:
                return False
            if self.namespaces and attrs.namespace not in self.namespaces:
                return False
            return not self.resources or any(g.matches(attrs) for g in self.resources)
        if self.resources or self.namespaces:
            return False
        return not self.non_resource_urls or any(
            u == attrs.path or (u.endswith("*") and attrs.path.startswith(u[:-1])) for u in self.non_resource_urls)


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...] = (Rule("Metadata"),)
    omit_stages: tuple[str, ...] = ()

    def level_for(self, attrs: Attributes) -> tuple[str, tuple[str, ...]]:
        """The level of a request and the stages not to log (no rule matches: None)."""
        for rule in self.rules:
            if rule.matches(attrs):
                return rule.level, self.omit_stages + rule.omit_stages
        return "None", self.omit_stages


def _strings(raw: Any, where: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise PolicyError(f"{where}: must be a list of strings")
    return tuple(raw)


def _stages(raw: Any, where: str) -> tuple[str, ...]:
    stages = _strings(raw, where)
    for stage in stages:
        if stage not in STAGES:
            raise PolicyError(f'{where}: unknown stage "{stage}" (one of {", ".join(STAGES)})')
    return stages


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    """An ``audit.k8s.io/v1`` Policy from YAML; errors name the file and the field."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}: not YAML: {exc}") from None
    if not isinstance(doc, dict) or doc.get("kind") != "Policy" or doc.get("apiVersion") not in (
            "audit.k8s.io/v1", "audit.k8s.io/v1beta1"):
        raise PolicyError(f"{source}: not an audit.k8s.io/v1 Policy")
    rules = []
    for i, raw in enumerate(doc.get("rules") or []):
        where = f"{source}: rules[{i}]"
        if not isinstance(raw, dict):
            raise PolicyError(f"{where}: must be an object")
        level = raw.get("level")
        if level not in LEVELS:
            raise PolicyError(f'{where}.level: "{level}" is not one of {", ".join(LEVELS)}')
        resources = []
        for j, group in enumerate(raw.get("resources") or []):
            if not isinstance(group, dict):
                raise PolicyError(f"{where}.resources[{j}]: must be an object")
            resources.append(GroupResources(str(group.get("group") or ""),
                                            _strings(group.get("resources"), f"{where}.resources[{j}].resources"),
                                            _strings(group.get("resourceNames"),
                                                     f"{where}.resources[{j}].resourceNames")))
        rules.append(Rule(level, _strings(raw.get("users"), f"{where}.users"),
                          _strings(raw.get("userGroups"), f"{where}.userGroups"),
                          _strings(raw.get("verbs"), f"{where}.verbs"), tuple(resources),
                          _strings(raw.get("namespaces"), f"{where}.namespaces"),
                          _strings(raw.get("nonResourceURLs"), f"{where}.nonResourceURLs"),
                          _stages(raw.get("omitStages"), f"{where}.omitStages")))
    return Policy(tuple(rules), _stages(doc.get("omitStages"), f"{source}: omitStages"))


def load_policy(path: Path | None) -> Policy:
    """The policy in ``path``; without one, everything at Metadata."""
    if path is None:
        return Policy()
    return parse_policy(path.read_text(), str(path))


def micro_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class AuditLog:
    """The log backend: JSON lines appended to ``path``."""

    path: Path
    policy: Policy = field(default_factory=Policy)
    _file: IO[bytes] | None = None

    def write(self, event: Obj) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "ab")  # noqa: SIM115 -- kept open for the server's life
        self._file.write(orjson.dumps(event) + b"\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    @property
    def middleware(self) -> Any:
        @web.middleware
        async def audit(request: web.Request,
                        handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
            try:
                attrs = attributes_of(request)
            except Exception:  # a request the authorizer cannot read is answered (400) further in
                return await handler(request)
            level, omit = self.policy.level_for(attrs)
            if level == "None":
                return await handler(request)
            received = time.time()
            base = _event_base(request, attrs, level, received)
            if level in ("Request", "RequestResponse") and request.can_read_body:
                try:  # decoded as the handler will decode it (JSON, YAML, protobuf), from the same bytes
                    base["requestObject"] = await read_body(request)
                except errors.ApiError:
                    pass  # the handler answers the undecodable body
            if "RequestReceived" not in omit:
                self.write({**base, "stage": "RequestReceived", "stageTimestamp": micro_time(received)})
            code = 500
            response: web.StreamResponse | None = None
            try:
                response = await handler(request)
                code = response.status
                return response
            except errors.ApiError as exc:  # answered as its Status by the error middleware outside
                code = exc.code
                raise
            except web.HTTPException as exc:
                code = exc.status
                raise
            finally:
                if "ResponseComplete" not in omit:
                    self.write(_completed(base, request, code, response, level))

        return audit


    async def record_call(self, attrs: Attributes, uri: str, user_agent: str, call: Callable[[], Awaitable[Any]],
                          request_object: Any = None, decision: Any = None) -> Any:
        """Run an in-process call (the ``LocalClient``'s), audited as an HTTP request would be.

        The events are the ones the middleware writes, with the call's user, a request URI
        of the path the call would have had, no source IP and the component's user agent.
        """
        level, omit = self.policy.level_for(attrs)
        if level == "None":
            return await call()
        received = time.time()
        base = _base(attrs, level, received, uri, [], user_agent)
        _name_from_object(base, request_object)
        if level in ("Request", "RequestResponse") and request_object is not None:
            base["requestObject"] = request_object
        if "RequestReceived" not in omit:
            self.write({**base, "stage": "RequestReceived", "stageTimestamp": micro_time(received)})
        code = 500
        try:
            result = await call()
            code = 201 if attrs.verb == "create" else 200
            return result
        except errors.ApiError as exc:
            code = exc.code
            raise
        finally:
            if "ResponseComplete" not in omit:
                event = {**base, "stage": "ResponseComplete", "stageTimestamp": micro_time(time.time()),
                         "responseStatus": {"metadata": {}, "code": code}}
                annotations = _decision_annotations(decision, code)
                if annotations:
                    event["annotations"] = annotations
                self.write(event)


def _event_base(request: web.Request, attrs: Attributes, level: str, received: float) -> Obj:
    return _base(attrs, level, received, request.path_qs, [request.remote or ""],
                 request.headers.get("User-Agent", ""))


def _base(attrs: Attributes, level: str, received: float, uri: str, source_ips: list[str], user_agent: str) -> Obj:
    user = attrs.user
    event: Obj = {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": level, "auditID": str(uuid.uuid4()),
        "requestURI": uri, "verb": attrs.verb, "user": user.as_dict(),
        "sourceIPs": source_ips, "userAgent": user_agent,
        "requestReceivedTimestamp": micro_time(received),
    }
    if attrs.resource_request:
        ref: Obj = {"resource": attrs.resource}
        for key, value in (("namespace", attrs.namespace), ("name", attrs.name), ("apiGroup", attrs.api_group),
                           ("apiVersion", attrs.api_version), ("subresource", attrs.subresource)):
            if value:
                ref[key] = value
        event["objectRef"] = ref
    return event


def _name_from_object(event: Obj, request_object: Any) -> None:
    """A create's objectRef names the object it sent, as Kubernetes' LogRequestObject fills it in."""
    ref = event.get("objectRef")
    if ref is None or "name" in ref or not isinstance(request_object, dict):
        return
    name = (request_object.get("metadata") or {}).get("name")
    if isinstance(name, str) and name:
        ref["name"] = name


def _decision_annotations(decision: Any, code: int) -> dict[str, str]:
    """The authorizer's decision as Kubernetes annotates an event with it."""
    annotations: dict[str, str] = {}
    if decision is not None:
        annotations["authorization.k8s.io/decision"] = "allow" if decision.allowed else "forbid"
        annotations["authorization.k8s.io/reason"] = decision.reason
    elif code == 403:
        annotations["authorization.k8s.io/decision"] = "forbid"
    return annotations


def _completed(base: Obj, request: web.Request, code: int, response: web.StreamResponse | None, level: str) -> Obj:
    event = {**base, "stage": "ResponseComplete", "stageTimestamp": micro_time(time.time()),
             "responseStatus": {"metadata": {}, "code": code}}
    annotations = _decision_annotations(request.get(DECISION), code)
    if annotations:
        event["annotations"] = annotations
    if level == "RequestResponse" and isinstance(response, web.Response) and response.body:
        body = response.body
        if isinstance(body, (bytes, bytearray)):
            try:
                event["responseObject"] = orjson.loads(body)
            except orjson.JSONDecodeError:
                pass
    return event


def matching(events: Iterable[Mapping[str, Any]], **fields: Any) -> list[Mapping[str, Any]]:
    """The events whose top-level fields equal ``fields`` (for tools and tests reading a log)."""
    return [e for e in events if all(e.get(k) == v for k, v in fields.items())]


__all__ = ["AuditLog", "Policy", "PolicyError", "Rule", "load_policy", "matching", "parse_policy"]
