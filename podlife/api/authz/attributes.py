"""What a request asks to do, in the words an authorizer understands.

Design: Kubernetes splits authorization in two. ``RequestInfoFactory`` (apiserver
``endpoints/request/requestinfo.go``) reads the method, the path and a few query
parameters once per request and names the *verb*, the API group and version, the
resource, subresource, namespace and name; every authorizer then judges only those
``authorizer.Attributes``. :func:`request_attributes` is that factory and
:class:`Attributes` the record, so the RBAC rules (``rbac.py``), the 403 text and the
access reviews all see one request the same way.

The parse, as Kubernetes does it:

- ``/api/<version>/...`` (no group) and ``/apis/<group>/<version>/...`` with at
  least one part after the version are *resource* requests; every other path
  (``/version``, ``/healthz``, ``/api``, ``/api/v1``, ``/apis/<group>/<version>``,
  ``/openapi/v3``, ``/metrics``) is a *non-resource* request whose verb is the
  lowercased method and which is judged by its ``path``.
- After the version: ``namespaces/<ns>/<resource>[/<name>[/<subresource>]]``, or a
  cluster path ``<resource>[/<name>[/<subresource>]]``. ``namespaces/<ns>`` is the
  namespace object itself: resource ``namespaces``, name *and* namespace ``<ns>``
  (so a RoleBinding in ``<ns>`` can grant ``get`` on its own namespace);
  ``namespaces/<ns>/status`` and ``/finalize`` are its subresources.
- The verb comes from the method (GET/HEAD get, POST create, PUT update, PATCH
  patch, DELETE delete, anything else ``""``); a GET without a name is ``list``, or
  ``watch`` when ``?watch`` is true; a DELETE without a name is ``deletecollection``.
  The legacy prefixes ``/watch/`` and ``/proxy/`` name the verb themselves
  (``proxy`` takes no subresource). The special verbs ``impersonate``, ``bind`` and
  ``escalate`` never come from a path: their callers build attributes for them.
- A list or watch whose ``fieldSelector`` pins ``metadata.name`` carries that name,
  so ``kubectl get pod x -w`` is judged against ``resourceNames`` rules the way a
  ``get`` of ``x`` is; Kubernetes drops the name when any list option fails to decode.

One deliberate difference: Kubernetes decodes ``?watch`` with
``runtime.Convert_Slice_string_To_bool`` (anything but ``0``/``false`` in any case is
true). podlife's handlers read it with ``strconv.ParseBool`` and refuse other values
with a 400 (:mod:`podlife.machinery.query`), so the verb authorized here is the one
the handler will serve: ``watch=f`` is a list on both sides. Only for a value
ParseBool refuses (the request then fails with 400 anyway) does this fall back to
Kubernetes' rule.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from ...machinery.query import InvalidBool, parse_bool
from ...machinery.selectors import SelectorError, parse_field_selector, parse_label_selector
from ..identity import UserInfo

__all__ = ["Attributes", "RequestInfoError", "request_attributes", "API_PREFIXES", "GROUPLESS_API_PREFIXES"]

#: the first path segments of resource requests, and those that carry no group
API_PREFIXES = frozenset({"api", "apis"})
GROUPLESS_API_PREFIXES = frozenset({"api"})

_SPECIAL_VERBS = frozenset({"proxy", "watch"})
_SPECIAL_VERBS_NO_SUBRESOURCES = frozenset({"proxy"})
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
_METHOD_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
_INT64 = re.compile(r"[+-]?[0-9]+")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True, slots=True)
class Attributes:
    """One request as an authorizer sees it (Kubernetes' ``authorizer.AttributesRecord``).

    ``path`` is set for every request; it is what non-resource rules match.
    """

    user: UserInfo
    verb: str
    resource_request: bool
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""


class RequestInfoError(ValueError):
    """A path Kubernetes cannot read (``/api/v1/watch`` with nothing after the verb).

    Kubernetes answers it with a 500 before authorization, as plain text:
    ``Internal Server Error: "<uri>": failed to create RequestInfo: <this message>``.
    """


def request_attributes(method: str, path: str, query: Mapping[str, str], user: UserInfo) -> Attributes:
    """The attributes of one request: ``path`` is the decoded URL path, ``query`` its parameters."""
    parts = _split_path(path)
    if len(parts) < 3 or parts[0] not in API_PREFIXES:
        return Attributes(user, method.lower(), False, path=path)
    prefix, parts = parts[0], parts[1:]
    group = ""
    if prefix not in GROUPLESS_API_PREFIXES:
        if len(parts) < 3:  # /apis/<group>/<version> is discovery, not a resource
            return Attributes(user, method.lower(), False, path=path)
        group, parts = parts[0], parts[1:]
    version, parts = parts[0], parts[1:]

    verb_from_path = parts[0] in _SPECIAL_VERBS
    if verb_from_path:
        if len(parts) < 2:
            shown = path + ("?" + urlencode(dict(query)) if query else "")
            raise RequestInfoError(f"unable to determine kind and namespace from url, {shown}")
        verb, parts = parts[0], parts[1:]
    else:
        verb = _METHOD_VERBS.get(method, "")

    namespace = ""
    if parts[0] == "namespaces" and len(parts) > 1:
        namespace = parts[1]
        if len(parts) > 2 and parts[2] not in _NAMESPACE_SUBRESOURCES:
            parts = parts[2:]

    resource = parts[0]
    name = parts[1] if len(parts) >= 2 else ""
    subresource = parts[2] if len(parts) >= 3 and verb not in _SPECIAL_VERBS_NO_SUBRESOURCES else ""

    if not name and verb == "get":
        verb = "watch" if _is_watch(query) else "list"
        name = _selected_name(query)
    if not name and verb == "delete":
        verb = "deletecollection"
    return Attributes(user, verb, True, group, version, resource, subresource, namespace, name, path)


def _split_path(path: str) -> list[str]:
    """Go's ``strings.Split(strings.Trim(path, "/"), "/")``, with ``""`` giving no parts."""
    trimmed = path.strip("/")
    return trimmed.split("/") if trimmed else []


def _is_watch(query: Mapping[str, str]) -> bool:
    """``?watch`` as podlife's handlers read it (ParseBool); Kubernetes' rule for other values."""
    value = query.get("watch")
    if value is None:
        return False
    try:
        return parse_bool("watch", value)
    except InvalidBool:
        return value.lower() not in ("false", "0")


def _selected_name(query: Mapping[str, str]) -> str:
    """The name a list's ``fieldSelector`` pins with ``metadata.name=`` (or ``==``), else ``""``.

    Kubernetes reads it from the decoded ``ListOptions``; a selector, a label selector or
    an integer option that fails to decode loses it, and so does a name that could not
    be a path segment (``.``, ``..``, or one holding ``/`` or ``%``).
    """
    text = query.get("fieldSelector")
    if not text or "metadata.name" not in text:
        return ""
    try:
        name = parse_field_selector(text).exact("metadata.name")
        if name is None or not _list_options_decode(query):
            return ""
    except SelectorError:
        return ""
    if name in (".", "..") or "/" in name or "%" in name:
        return ""
    return name


def _list_options_decode(query: Mapping[str, str]) -> bool:
    """Whether the other ``ListOptions`` parameters that can fail to decode decode."""
    for option in ("limit", "timeoutSeconds"):
        value = query.get(option)
        if value is not None and not (_INT64.fullmatch(value) and _INT64_MIN <= int(value) <= _INT64_MAX):
            return False
    labels = query.get("labelSelector")
    if labels:
        parse_label_selector(labels)  # SelectorError: the caller drops the name
    return True
