"""Admission webhooks, called as kube-apiserver calls them.

Design. Every create, update (patch and apply end in one) and delete that the REST layer
(:mod:`podlife.api.rest`) performs asks this module twice: :func:`mutate` after the
strategy's defaulting and before validation, :func:`validate` after the built-in
admission steps (and, for a delete, with the stored object as ``oldObject``). Both read
the ``admissionregistration.k8s.io/v1`` MutatingWebhookConfiguration and
ValidatingWebhookConfiguration objects from the API server's own watch caches, so a
configuration takes effect as soon as its write returns. When there is none (the usual
case, and every write of the large benchmarks) the only cost is two dict length checks.

Which webhooks are called (Kubernetes' rules): each ``rules`` entry matches on
``operations`` (CREATE/UPDATE/DELETE/CONNECT/``*``), ``apiGroups``, ``apiVersions``,
``resources`` (``pods``, ``*`` -- every resource but no subresource --, ``*/*``,
``pods/status``, ``pods/*``, ``*/status``) and ``scope`` (Cluster, Namespaced, ``*``;
a Namespace object is cluster-scoped); ``namespaceSelector`` is matched against the
labels of the object's namespace (a Namespace's own labels; cluster-scoped objects always
match); ``objectSelector`` against the labels of the object or of the old object.
``rules[].resourceNames`` (when given) must list the object's name. ``matchPolicy:
Equivalent`` (the default) also matches a request made through another served version of
the same resource (a CRD served at several versions; podlife serves its built-in kinds in
one version and none of Kubernetes' cross-group aliases): the webhook is then sent the
matched ``kind``/``resource`` and the object in that version, while ``requestKind``/
``requestResource`` stay the request's own, as Kubernetes does; ``Exact`` matches only
the request's own version. ``matchConditions`` are CEL (:mod:`podlife.api.admission_cel`,
variables ``object``, ``oldObject``, ``request``, ``authorizer``), evaluated after the
rules and selectors: any false -- the webhook is skipped; an error -- with failurePolicy
Fail a 500 ``failed calling webhook "<name>": failed to evaluate match conditions:
expression '<e>' resulted in error: <why>``, with Ignore skipped (Kubernetes'
webhook/matchconditions/matcher.go). The webhook configurations (and the
admission policy kinds) themselves are never sent to webhooks, as Kubernetes exempts them,
so a broken webhook can always be removed.

How they are called: a POST of an ``admission.k8s.io/v1`` AdmissionReview (uid, kind,
resource, subResource, requestKind, requestResource, name, namespace, operation, userInfo
-- the caller from :data:`~podlife.api.rbac_guard.CURRENT_USER` (over HTTP or an in-process
component), or the API server's loopback identity ``system:apiserver`` in ``system:masters``
for its own writes --,
object, oldObject, dryRun, options) to ``clientConfig.url`` with ``?timeout=<n>s``, over
HTTPS verified with ``clientConfig.caBundle`` (the system roots without one), within
``timeoutSeconds`` (default 10, at most 30). ``admissionReviewVersions`` must list v1.

Network safety: podlife never sends a packet to a non-loopback address. A URL whose host
is not a loopback IP literal or ``localhost`` (dialled as 127.0.0.1) is refused when the
webhook would be called, before any connection; a ``clientConfig.service`` reference is
refused too (resolving it would mean dialling a Service's cluster IP, which is not
loopback). Both are call failures, so ``failurePolicy`` decides what they do.

Outcomes, with Kubernetes' wording and codes:

* a dry-run request reaching a webhook whose ``sideEffects`` is not None/NoneOnDryRun:
  400 ``admission webhook "<name>" does not support dry run``;
* ``allowed: false``: ``admission webhook "<name>" denied the request: <message>`` (the
  response status' message, else its reason, else ``denied the request without
  explanation``), with the status' code, raised to 400 when it is below 400;
* a call failure (refused URL, connection error, timeout, bad HTTP status, malformed
  review): with ``failurePolicy: Fail`` (the default) 500 ``Internal error occurred:
  failed calling webhook "<name>": <why>``; with ``Ignore`` the webhook is skipped.
  The project answers bad *input* with 4xx, never 500; a webhook that is down is not the
  client's input but a server-side dependency failing, which Kubernetes reports as an
  internal error, and so does podlife;
* ``response.warnings`` are returned so the handlers send them as ``Warning`` headers.

Mutating webhooks run first, in order (configuration name, then webhook order); each may
answer ``patchType: JSONPatch`` with a base64 ``patch`` applied to the object (a patch
that does not apply is a 500). With ``reinvocationPolicy: IfNeeded`` a webhook is called
once more if a webhook after it changed the object. Validating webhooks run after,
sequentially (Kubernetes runs them concurrently; the outcome is the same but for which of
several denials is reported).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import orjson

from ..machinery import cel, errors
from ..machinery.patch import PatchError, apply_json_patch, json_equal
from ..machinery.selectors import SelectorError, label_selector_from_dict
from . import admission_cel
from .identity import APISERVER_USER, UserInfo
from .rbac_guard import CURRENT_USER

if TYPE_CHECKING:
    from .rest import ResourceREST

Obj = dict[str, Any]

GROUP = "admissionregistration.k8s.io"
MUTATING = "mutatingwebhookconfigurations"
VALIDATING = "validatingwebhookconfigurations"
#: never sent to webhooks (Kubernetes' IsExemptAdmissionConfigurationResource)
EXEMPT = frozenset({MUTATING, VALIDATING, "validatingadmissionpolicies", "validatingadmissionpolicybindings",
                    "mutatingadmissionpolicies", "mutatingadmissionpolicybindings"})
LOOPBACK_USER = APISERVER_USER
DEFAULT_TIMEOUT, MAX_TIMEOUT = 10, 30
_MAX_RESPONSE = 3 * 1024 * 1024


class CallError(Exception):
    """Calling a webhook failed (not a denial): failurePolicy decides."""


@dataclass
class _Attrs:
    rest: ResourceREST
    operation: str
    subresource: str
    namespace: str
    name: str
    obj: Obj | None
    old: Obj | None


def _configurations(rest: ResourceREST, plural: str) -> list[Obj]:
    configs = rest.ctx.rest_by(GROUP, "v1", plural)
    if configs is None or not configs.cache.objects:
        return []
    return sorted((co.obj for co in configs.cache.objects.values()),
                  key=lambda o: str((o.get("metadata") or {}).get("name") or ""))


def _exempt(rest: ResourceREST) -> bool:
    return rest.rt.group == GROUP and rest.rt.plural in EXEMPT


def _any_configured(rest: ResourceREST, plural: str) -> bool:
    configs = rest.ctx.rest_by(GROUP, "v1", plural)
    return configs is not None and bool(configs.cache.objects)


# ---- matching --------------------------------------------------------------------------

def _listed(values: Any, value: str) -> bool:
    return isinstance(values, list) and ("*" in values or value in values)


def _resource_matches(patterns: Any, resource: str, subresource: str) -> bool:
    """``*/*`` everything, ``pods/*`` pods and its subresources, ``*/status``, ``*`` (no subresource)."""
    if not isinstance(patterns, list):
        return False
    for pattern in patterns:
        if not isinstance(pattern, str):
            continue
        res, _, sub = pattern.partition("/")
        if (sub == "*" and res in ("*", resource)) or (res in ("*", resource) and sub == subresource):
            return True
    return False


GVR = tuple[str, str, str]


def _rule_matches(rule: Any, attrs: _Attrs, gvr: GVR | None = None) -> bool:
    """Whether one rule matches the request, taken as made to ``gvr`` (default: its own)."""
    if not isinstance(rule, dict):
        return False
    rt = attrs.rest.rt
    group, version, plural = gvr or (rt.group, rt.version, rt.plural)
    if not (_listed(rule.get("operations"), attrs.operation) and _listed(rule.get("apiGroups"), group)
            and _listed(rule.get("apiVersions"), version)
            and _resource_matches(rule.get("resources"), plural, attrs.subresource)):
        return False
    names = rule.get("resourceNames")
    if isinstance(names, list) and names and attrs.name not in names:
        return False
    scope = rule.get("scope") or "*"
    is_namespace = rt.group == "" and rt.plural == "namespaces"
    if scope == "Namespaced":
        return not is_namespace and rt.namespaced
    if scope == "Cluster":
        return is_namespace or not rt.namespaced
    return True


def equivalent_resources(rest: ResourceREST) -> list[GVR]:
    """The other served versions of the request's resource (Kubernetes' Equivalent matchPolicy).

    Kubernetes also counts cross-group aliases (extensions/v1beta1 deployments for
    apps/v1); podlife serves none of those, so what is left are the other versions of the
    same group and resource -- a CRD served at several versions.
    """
    rt = rest.rt
    return [(t.group, t.version, t.plural) for t in rest.ctx.catalog.types
            if t.group == rt.group and t.plural == rt.plural and t.version != rt.version]


def matched_resource(rules: Any, attrs: _Attrs, match_policy: Any) -> GVR | None:
    """The (group, version, resource) some rule matches, or None.

    The request's own resource first; with ``matchPolicy: Equivalent`` (the default) the
    same resource through another served version too.
    """
    rules = rules if isinstance(rules, list) else []
    rt = attrs.rest.rt
    if any(_rule_matches(rule, attrs) for rule in rules):
        return (rt.group, rt.version, rt.plural)
    if match_policy == "Exact":
        return None
    for gvr in equivalent_resources(attrs.rest):
        if any(_rule_matches(rule, attrs, gvr) for rule in rules):
            return gvr
    return None


def as_version(obj: Obj | None, rest: ResourceREST, gvr: GVR) -> Obj | None:
    """``obj`` as the matched version serves it (a CRD's versions differ only in apiVersion)."""
    if obj is None or gvr[1] == rest.rt.version:
        return obj
    converted = dict(obj)
    converted["apiVersion"] = f"{gvr[0]}/{gvr[1]}" if gvr[0] else gvr[1]
    return converted


def _labels(obj: Obj | None) -> dict[str, str]:
    labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
    return labels if isinstance(labels, dict) else {}


def _selector(hook: Obj, field: str, what: str) -> Any:
    try:
        return label_selector_from_dict(hook.get(field) if hook.get(field) is not None else {})
    except SelectorError as exc:
        raise errors.internal(f"{what}: invalid {field}: {exc}") from None


def _namespace_labels(attrs: _Attrs) -> dict[str, str] | None:
    """The labels namespaceSelector sees; None: cluster-scoped, always matches."""
    rt = attrs.rest.rt
    if rt.group == "" and rt.plural == "namespaces":
        return _labels(attrs.obj if attrs.obj is not None else attrs.old)
    if not rt.namespaced:
        return None
    ns_rest = attrs.rest.ctx.rest_by("", "v1", "namespaces")
    co = ns_rest.cache.get(ns_rest.rt.key(None, attrs.namespace)) if ns_rest is not None else None
    return _labels(co.obj) if co is not None else {}


def selectors_match(match: Obj, attrs: _Attrs, what: str) -> bool:
    """``namespaceSelector`` and ``objectSelector`` of ``match`` (a webhook or matchResources)."""
    ns_labels = _namespace_labels(attrs)
    if ns_labels is not None and not _selector(match, "namespaceSelector", what).matches(ns_labels):
        return False
    selector = _selector(match, "objectSelector", what)
    return any(selector.matches(_labels(o)) for o in (attrs.obj, attrs.old) if o is not None)


def _hook_matches(hook: Obj, attrs: _Attrs, dry_run: bool) -> GVR | None:
    gvr = matched_resource(hook.get("rules"), attrs, hook.get("matchPolicy"))
    if gvr is None or not selectors_match(hook, attrs, f'webhook "{hook.get("name")}"'):
        return None
    if hook.get("matchConditions"):
        activation = {"object": as_version(attrs.obj, attrs.rest, gvr), "oldObject": as_version(attrs.old, attrs.rest, gvr),
                      "request": _request(attrs, dry_run, gvr),
                      "authorizer": admission_cel.authorizer_of(attrs.rest, _user())}
        matches, error = admission_cel.match_conditions(hook["matchConditions"], cel_activation(activation),
                                                        cel.Budget(), hook.get("failurePolicy"))
        if error is not None:
            raise errors.internal(f'failed calling webhook "{hook.get("name")}": failed to evaluate match '
                                  f"conditions: {error}")
        if not matches:
            return None
    return gvr


def cel_activation(values: Obj) -> Obj:
    """The CEL variables of an activation, converted once."""
    return {name: cel.to_cel(value) for name, value in values.items()}


def _matching(rest: ResourceREST, plural: str, attrs: _Attrs, dry_run: bool) -> list[tuple[Obj, GVR]]:
    matched = []
    for config in _configurations(rest, plural):
        for hook in config.get("webhooks") or []:
            if isinstance(hook, dict):
                gvr = _hook_matches(hook, attrs, dry_run)
                if gvr is not None:
                    matched.append((hook, gvr))
    return matched


# ---- calling ---------------------------------------------------------------------------

def _user() -> UserInfo:
    return CURRENT_USER.get() or LOOPBACK_USER


def _request(attrs: _Attrs, dry_run: bool, gvr: GVR) -> Obj:
    return admission_cel.request_of(attrs.rest, attrs.operation, attrs.subresource, attrs.namespace, attrs.name,
                                    _user(), dry_run, gvr)


def _review(attrs: _Attrs, dry_run: bool, gvr: GVR) -> Obj:
    request = _request(attrs, dry_run, gvr)
    request["object"] = as_version(attrs.obj, attrs.rest, gvr)
    request["oldObject"] = as_version(attrs.old, attrs.rest, gvr)
    return {"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": request}


def _target(hook: Obj) -> tuple[str, str | None]:
    """The URL to dial and the TLS server name, or CallError: loopback URLs only."""
    config = hook.get("clientConfig") or {}
    if config.get("service"):
        raise CallError("clientConfig.service is not supported: podlife calls only loopback URLs "
                        "(clientConfig.url), never a Service's cluster IP")
    url = config.get("url")
    if not isinstance(url, str) or not url:
        raise CallError("clientConfig.url is required")
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise CallError(f'webhook URL "{url}" must use the https scheme')
    host = parts.hostname or ""
    if host == "localhost":
        netloc = "127.0.0.1" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc)), "localhost"
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise CallError(f'refusing to call webhook URL "{url}": only loopback addresses may be dialled '
                        f"(podlife sends no packet off this host)")
    return url, None


def _ssl_context(hook: Obj) -> ssl.SSLContext:
    bundle = (hook.get("clientConfig") or {}).get("caBundle")
    if not bundle:
        return ssl.create_default_context()
    try:
        return ssl.create_default_context(cadata=base64.b64decode(bundle, validate=True).decode())
    except (binascii.Error, UnicodeDecodeError, ssl.SSLError, ValueError) as exc:
        raise CallError(f"invalid clientConfig.caBundle: {exc}") from None


async def _post(hook: Obj, review: Obj) -> Obj:
    """The webhook's AdmissionResponse; CallError when there is none to use."""
    if "v1" not in (hook.get("admissionReviewVersions") or []):
        raise CallError("webhook does not accept known AdmissionReview versions (v1)")
    url, server_name = _target(hook)
    timeout = hook.get("timeoutSeconds")
    timeout = min(max(timeout, 1), MAX_TIMEOUT) if isinstance(timeout, int) and not isinstance(timeout, bool) \
        else DEFAULT_TIMEOUT
    url += ("&" if "?" in url else "?") + f"timeout={timeout}s"
    tls = _ssl_context(hook)
    try:
        async with asyncio.timeout(timeout):
            async with aiohttp.ClientSession() as session:
                async with session.post(url, data=orjson.dumps(review), ssl=tls, server_hostname=server_name,
                                        headers={"Content-Type": "application/json", "Accept": "application/json"},
                                        allow_redirects=False) as resp:
                    body = await resp.content.read(_MAX_RESPONSE + 1)
                    status = resp.status
    except TimeoutError:
        raise CallError(f'failed to call webhook: Post "{url}": context deadline exceeded') from None
    except (aiohttp.ClientError, OSError) as exc:
        raise CallError(f'failed to call webhook: Post "{url}": {exc}') from None
    if status != 200:
        raise CallError(f"the server responded with HTTP status {status}")
    if len(body) > _MAX_RESPONSE:
        raise CallError("the webhook response is too large")
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise CallError(f"the webhook response is not JSON: {exc}") from None
    if not isinstance(answer, dict) or (answer.get("apiVersion"), answer.get("kind")) != \
            ("admission.k8s.io/v1", "AdmissionReview"):
        got = answer.get("apiVersion", "") if isinstance(answer, dict) else ""
        raise CallError(f"expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {got}")
    response = answer.get("response")
    if not isinstance(response, dict):
        raise CallError("webhook response was absent")
    if response.get("uid") != review["request"]["uid"]:
        raise CallError(f'expected response.uid="{review["request"]["uid"]}", got "{response.get("uid", "")}"')
    return response


def _denied(name: str, response: Obj) -> errors.ApiError:
    status = response.get("status")
    result: Obj = status if isinstance(status, dict) else {}
    code = result.get("code")
    code = code if isinstance(code, int) and code >= 400 else 400
    reason = str(result.get("reason") or "")
    denied_by = f'admission webhook "{name}" denied the request'
    if result.get("message"):
        message = f"{denied_by}: {result['message']}"
    elif reason:
        message = f"{denied_by}: {reason}"
    else:
        message = f"{denied_by} without explanation"
    details = result.get("details") if isinstance(result.get("details"), dict) else None
    return errors.ApiError(code, reason, message, details)


def _warnings(response: Obj) -> list[str]:
    return [w for w in response.get("warnings") or [] if isinstance(w, str)]


async def _call(hook: Obj, attrs: _Attrs, dry_run: bool, gvr: GVR) -> Obj | None:
    """The webhook's response, or None when it failed and failurePolicy is Ignore."""
    name = str(hook.get("name") or "")
    if dry_run and hook.get("sideEffects") not in ("None", "NoneOnDryRun"):
        raise errors.bad_request(f'admission webhook "{name}" does not support dry run')
    try:
        return await _post(hook, _review(attrs, dry_run, gvr))
    except CallError as exc:
        if hook.get("failurePolicy") == "Ignore":
            return None
        raise errors.internal(f'failed calling webhook "{name}": {exc}') from None


def _patched(hook: Obj, response: Obj, obj: Obj) -> Obj | None:
    """The object after the response's patch (None: no patch); CallError for a malformed one."""
    patch, patch_type = response.get("patch"), response.get("patchType")
    if not patch and not patch_type:
        return None
    if not patch:
        raise CallError("webhook returned response.patchType but not response.patch")
    if not patch_type:
        raise CallError("webhook returned response.patch but not response.patchType")
    if patch_type != "JSONPatch":
        raise CallError(f'webhook returned invalid response.patchType of "{patch_type}"')
    try:
        operations = orjson.loads(base64.b64decode(patch, validate=True))
    except (binascii.Error, ValueError, TypeError) as exc:
        raise CallError(f"webhook returned an undecodable response.patch: {exc}") from None
    try:
        result = apply_json_patch(obj, operations)
    except PatchError as exc:
        raise errors.internal(str(exc)) from None
    if not isinstance(result, dict):
        raise errors.internal("the patched object must be a JSON object")
    return result


# ---- the entry points --------------------------------------------------------------------

def _attrs(rest: ResourceREST, obj: Obj | None, old: Obj | None, operation: str, subresource: str | None) -> _Attrs:
    meta = ((obj if obj is not None else old) or {}).get("metadata") or {}
    return _Attrs(rest, operation, subresource or "", str(meta.get("namespace") or ""), str(meta.get("name") or ""),
                  obj, old)


async def mutate(rest: ResourceREST, obj: Obj, old: Obj | None, operation: str, *, dry_run: bool,
                 subresource: str | None = None) -> list[str]:
    """Call the matching mutating webhooks; ``obj`` is patched in place (top level). Returns warnings."""
    if not _any_configured(rest, MUTATING) or _exempt(rest):
        return []
    attrs = _attrs(rest, obj, old, operation, subresource)
    hooks = _matching(rest, MUTATING, attrs, dry_run)
    warnings: list[str] = []
    changes = 0
    seen: list[int] = []  # the number of changes made when each webhook last saw the object
    for hook, gvr in hooks:
        changes += await _mutate_once(hook, gvr, attrs, obj, dry_run, warnings)
        seen.append(changes)
    for (hook, gvr), saw in zip(hooks, seen):
        if hook.get("reinvocationPolicy") == "IfNeeded" and saw < changes:
            await _mutate_once(hook, gvr, attrs, obj, dry_run, warnings)
    return warnings


async def _mutate_once(hook: Obj, gvr: GVR, attrs: _Attrs, obj: Obj, dry_run: bool, warnings: list[str]) -> int:
    response = await _call(hook, attrs, dry_run, gvr)
    if response is None:
        return 0
    warnings += _warnings(response)
    if not response.get("allowed"):
        raise _denied(str(hook.get("name") or ""), response)
    try:
        patched = _patched(hook, response, obj)
    except CallError as exc:
        if hook.get("failurePolicy") == "Ignore":
            return 0
        raise errors.internal(f'failed calling webhook "{hook.get("name")}": {exc}') from None
    if patched is None or json_equal(patched, obj):
        return 0
    obj.clear()
    obj.update(patched)
    return 1


async def validate(rest: ResourceREST, obj: Obj | None, old: Obj | None, operation: str, *, dry_run: bool,
                   subresource: str | None = None) -> list[str]:
    """Call the matching validating webhooks (a DELETE has no ``obj``). Returns warnings."""
    if not _any_configured(rest, VALIDATING) or _exempt(rest):
        return []
    attrs = _attrs(rest, obj, old, operation, subresource)
    warnings: list[str] = []
    for hook, gvr in _matching(rest, VALIDATING, attrs, dry_run):
        response = await _call(hook, attrs, dry_run, gvr)
        if response is None:
            continue
        warnings += _warnings(response)
        if not response.get("allowed"):
            raise _denied(str(hook.get("name") or ""), response)
        if response.get("patch") or response.get("patchType"):
            if hook.get("failurePolicy") != "Ignore":
                raise errors.internal(f'failed calling webhook "{hook.get("name")}": '
                                      f"validating webhook may not return response.patch")
    return warnings
