"""Kubernetes ``Status`` errors.

Every failure a client can see is an :class:`ApiError` carrying the ``Status`` object
Kubernetes would send (code, reason, message, details with causes). The HTTP layer
renders it as is; the in-process client raises it as is, so both transports fail the
same way. This module sits in the machinery layer, below the registry: it knows kinds
and field errors only by the few attributes it reads (the protocols below).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class ResourceType(Protocol):
    """What an error needs to know of a kind (the registry's ResourceType has it)."""

    @property
    def group(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def plural(self) -> str: ...

    @property
    def group_resource(self) -> str: ...


class FieldError(Protocol):
    """One invalid field (the registry's FieldError): its text and its ``StatusCause``."""

    def cause(self) -> dict[str, str]: ...


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.retry_after: int | None = None

    def status(self) -> dict[str, Any]:
        """The ``Status`` object, its fields in the order of Kubernetes' Go struct."""
        out: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            out["details"] = self.details
        out["code"] = self.code
        return out

    @classmethod
    def from_status(cls, status: dict[str, Any]) -> ApiError:
        return cls(int(status.get("code") or 500), status.get("reason", ""), status.get("message", ""), status.get("details"))

    def __repr__(self) -> str:
        return f"ApiError({self.code}, {self.reason!r}, {self.message!r})"


def _details(rt: ResourceType | None, name: str | None) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if name:
        d["name"] = name
    if rt is not None:
        if rt.group:
            d["group"] = rt.group
        d["kind"] = rt.plural
    return d


def not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{rt.group_resource} "{name}" not found', _details(rt, name))


def already_exists(rt: ResourceType, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{rt.group_resource} "{name}" already exists', _details(rt, name))


def conflict(rt: ResourceType, name: str, why: str) -> ApiError:
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {rt.group_resource} "{name}": {why}', _details(rt, name))


STALE_OBJECT = "the object has been modified; please apply your changes to the latest version and try again"


def invalid(rt: ResourceType, name: str, errors: Sequence[FieldError]) -> ApiError:
    shown = str(errors[0]) if len(errors) == 1 else "[" + ", ".join(str(e) for e in errors) + "]"
    details = _details(rt, name)
    details["kind"] = rt.kind
    details["causes"] = [e.cause() for e in errors]
    qualified = f"{rt.kind}.{rt.group}" if rt.group else rt.kind  # e.g. Deployment.apps, as Kubernetes names it
    return ApiError(422, "Invalid", f'{qualified} "{name}" is invalid: {shown}', details)


def bad_request(message: str, causes: list[dict[str, str]] | None = None) -> ApiError:
    return ApiError(400, "BadRequest", message, {"causes": causes} if causes else None)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def method_not_allowed(message: str = "the server does not allow this method on the requested resource") -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types include: application/json, "
                    f'application/yaml, application/vnd.kubernetes.protobuf (got "{content_type}")')


def not_acceptable(accept: str) -> ApiError:
    return ApiError(406, "NotAcceptable", f'the server was unable to respond with a content type that the client supports (got "{accept}")')


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def forbidden(message: str, rt: ResourceType | None = None, name: str | None = None) -> ApiError:
    return ApiError(403, "Forbidden", message, _details(rt, name) if rt else None)


def path_not_found(path: str) -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def internal(message: str) -> ApiError:
    return ApiError(500, "InternalError", f"Internal error occurred: {message}")


def timeout(message: str) -> ApiError:
    return ApiError(504, "Timeout", message)


#: the patch media types podlife applies to a ``scale`` subresource
SCALE_PATCH_TYPES = ["application/json-patch+json", "application/merge-patch+json",
                     "application/strategic-merge-patch+json"]


def unsupported_patch_type(accepted: list[str]) -> ApiError:
    """415 for a PATCH whose Content-Type is not one of the resource's patch types."""
    return ApiError(415, "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - accepted media types include: {', '.join(accepted)}")


def request_entity_too_large(message: str) -> ApiError:
    return ApiError(413, "RequestEntityTooLarge", f"Request entity too large: {message}")


def invalid_list_options(problems: Sequence[FieldError]) -> ApiError:
    """422 for list or watch options that break Kubernetes' ``ValidateListOptions`` rules."""
    shown = str(problems[0]) if len(problems) == 1 else "[" + ", ".join(map(str, problems)) + "]"
    return ApiError(422, "Invalid", f'ListOptions.meta.k8s.io "" is invalid: {shown}',
                    {"group": "meta.k8s.io", "kind": "ListOptions", "causes": [p.cause() for p in problems]})
