"""``fieldValidation``: what the server does with fields the schema does not know.

kubectl sends ``fieldValidation=Strict`` on create and apply (after finding the
parameter in OpenAPI), so a typo such as ``imagee`` fails on the server with the
message Kubernetes' strict decoder gives, and nothing is stored. ``Warn`` (what a
request without the parameter gets, as on Kubernetes) answers with ``Warning`` headers
instead and ``Ignore`` says nothing; in both the unknown fields are dropped, because
Kubernetes decodes into Go structs that have no place for them, so they are never
stored. A value of the wrong type is an error in every mode, because Kubernetes could
not decode it at all. The checks come from the 1.37 schemas and, for custom kinds,
from the schemas of this API server's catalog (:mod:`podlife.registry.schemas`): each
API server's :class:`SchemaChecker` holds its own catalog's.

Dropping copies each dict and list on the way to the unknown field before it deletes
it: the object being checked may share its unchanged parts with the watch cache's
version (a merge patch starts from a shallow copy), which must never change.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..registry.schemas.custom import CustomSchemas
from ..registry.schemas.decoder import duplicate_fields, format_issues, validate_object
from ..registry.types import ResourceType
from ..machinery import errors


class SchemaChecker:
    """The object checker of one API server: strict decoding against its catalog's schemas."""

    def __init__(self, schemas: CustomSchemas) -> None:
        self.schemas = schemas

    def __call__(self, rt: ResourceType, obj: dict[str, Any], mode: str) -> list[str]:
        """Raise for type errors (and unknown fields when Strict); drop unknown fields; return Warn's warnings."""
        issues = validate_object(obj, rt.group, rt.version, rt.kind, schemas=self.schemas,
                                 unknown_fields=True, required=False)
        warnings = report(rt, issues, mode)
        for issue in issues:
            if issue.kind == "unknown" and issue.location:
                drop_field(obj, issue.location)
        return warnings if mode == "Warn" else []


def drop_field(obj: dict[str, Any], location: tuple[Any, ...]) -> None:
    """Remove the field at ``location`` from ``obj``, copying every container on the way."""
    parent: Any = obj
    for segment in location[:-1]:
        key = segment[0] if type(segment) is tuple else segment
        child = parent[key]
        child = dict(child) if type(child) is dict else list(child)
        parent[key] = child
        parent = child
    last = location[-1]
    parent.pop(last[0] if type(last) is tuple else last, None)


def duplicate_checker(rt: ResourceType, raw: bytes, mode: str) -> list[str]:
    if mode == "Ignore" or surely_no_duplicates(raw):
        return []
    return report(rt, duplicate_fields(raw), mode)


def surely_no_duplicates(raw: bytes) -> bool:
    """True when ``raw`` certainly has no duplicate keys; False means "look closely".

    Every create and update body is checked, and the exact search (a Python walk of
    every object's pairs) costs ~40 µs per pod, so it runs only when this C-speed test
    cannot rule duplicates out. The test counts colons: re-encoding the parsed body
    keeps every key and string once, so without ``\\u`` escapes (which could spell a
    colon) the raw body has exactly as many colons as its re-encoding, and more when a
    duplicate key (and its value) was dropped by the parse.
    """
    if b"\\u" in raw:
        return False
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return raw.count(b":") == orjson.dumps(doc).count(b":")


def report(rt: ResourceType, issues: list[Any], mode: str) -> list[str]:
    if not issues:
        return []
    fatal = [i for i in issues if i.kind == "type"]
    if fatal or mode == "Strict":
        raise errors.bad_request(format_issues(issues, rt.kind, rt.version))
    return [i.message for i in issues]
