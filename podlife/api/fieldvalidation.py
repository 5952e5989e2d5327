"""``fieldValidation``: what the server does with fields the schema does not know.

kubectl sends ``fieldValidation=Strict`` on create and apply (after finding the
parameter in OpenAPI), so a typo such as ``imagee`` fails on the server with the
message Kubernetes' strict decoder gives, and nothing is stored. ``Warn`` answers with
``Warning`` headers instead; ``Ignore`` drops the fields silently. A value of the
wrong type is an error in every mode, because Kubernetes could not decode it at all.
The checks come from the 1.37 schemas (:mod:`podlife.registry.schemas`).
"""

from __future__ import annotations

from typing import Any

from ..registry import schemas
from ..registry.types import ResourceType
from . import errors


def schema_checker(rt: ResourceType, obj: dict[str, Any], mode: str) -> list[str]:
    """Raise for type errors (and unknown fields when Strict); return warnings for Warn."""
    issues = schemas.validate_object(obj, rt.group, rt.version, rt.kind, unknown_fields=mode != "Ignore", required=False)
    return report(rt, issues, mode)


def duplicate_checker(rt: ResourceType, raw: bytes, mode: str) -> list[str]:
    if mode == "Ignore":
        return []
    return report(rt, schemas.duplicate_fields(raw), mode)


def report(rt: ResourceType, issues: list[Any], mode: str) -> list[str]:
    if not issues:
        return []
    fatal = [i for i in issues if i.kind == "type"]
    if fatal or mode == "Strict":
        raise errors.bad_request(schemas.format_issues(issues, rt.kind, rt.version))
    return [i.message for i in issues]
